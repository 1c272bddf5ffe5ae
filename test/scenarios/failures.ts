/**
 * The classic network failures of issue 16, each reproduced between the two private namespaces of a NetnsPair
 * (A: client, B: server) and returned with the kernel's or nft's own account as the oracle. Every scenario
 * sets up what it needs (nft tables, sysctls, peers), runs a bounded workload, and removes what it added.
 * Ports are distinct per scenario, so several can share one pair.
 */
import type { NetnsPair } from '../../src/testing/netns.js';
import { conntrackStat, counters, delta, lockConntrackMax, peer, peerClient, sockets, type Counters, type Peer } from './lab.js';

export const SCENARIO_PORTS = {
  appTimeout: 6001, portExhaustion: 6002, rejectReset: 6003, rejectIcmp: 6004, noListener: 6005,
  conntrackFull: 6006, backlog: 6007, unreadReset: 6008, zeroWindow: 6009, pathLoss: 6010, closeWait: 6011, healthy: 6012,
} as const;

export interface ScenarioResult {
  /** The destination the failure concerns. */
  addr: string;
  port: number;
  /** What the client process saw (its own account). */
  client: Record<string, unknown>;
  /** Kernel counters that moved in the client (A) and server (B) namespaces. */
  a: Counters;
  b: Counters;
  /** Further oracles: nft rule counters, conntrack statistics, `ss` counts, the relay's own count. */
  oracle: Record<string, number>;
}

/** Called while the failure is still in progress (its sockets alive), e.g. to read them. */
export type During = () => Promise<void>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work` between two counter readings of both namespaces. */
async function measured(p: NetnsPair, work: () => Promise<Omit<ScenarioResult, 'a' | 'b'>>): Promise<ScenarioResult> {
  const a0 = await counters(p, p.a), b0 = await counters(p, p.b);
  const r = await work();
  const a1 = await counters(p, p.a), b1 = await counters(p, p.b);
  return { ...r, a: delta(a0, a1), b: delta(b0, b1) };
}

async function withNft<T>(p: NetnsPair, ns: string, table: string, rules: string, fn: () => Promise<T>): Promise<T> {
  await p.nft(ns, `table inet ${table} {\n${rules}\n}\n`);
  try {
    return await fn();
  } finally {
    await p.exec(ns, ['nft', 'delete', 'table', 'inet', table]).catch(() => undefined);
  }
}

/** The same client while a firewall rule on this host (in B) drops the SYNs: the drops are seen here. */
export async function appTimeoutLocalFirewall(p: NetnsPair): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.appTimeout;
  return withNft(p, p.b, 'nb_apptimeout', `  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} counter drop
  }`, () => measured(p, async () => {
    const t0 = Date.now();
    const r = await p.exec(p.a, ['curl', '-sS', '--connect-timeout', '2', `http://${p.addrB}:${port}/`]).then(() => 0, (e: { code?: number }) => e.code ?? -1);
    const elapsedMs = Date.now() - t0;
    return { addr: p.addrB, port, client: { curlExit: r, elapsedMs }, oracle: { nftDropped: await p.nftCounter(p.b, 'nb_apptimeout', 'input') } };
  }));
}

/** Ephemeral ports run out: 8 local ports, 12 short sequential connections; each one's TIME_WAIT holds its port. */
export async function portExhaustion(p: NetnsPair, ports = 8, conns = 12): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.portExhaustion;
  const original = (await p.exec(p.a, ['sysctl', '-n', 'net.ipv4.ip_local_port_range'])).stdout.trim().split(/\s+/).join(' ');
  const server = await p.startServer(port, ['--reply', '100']);
  try {
    await p.exec(p.a, ['sysctl', '-qw', `net.ipv4.ip_local_port_range=41000 ${41000 + ports - 1}`]);
    return await measured(p, async () => {
      const client = await p.client(p.addrB, port, { conns, bytes: 100 });
      const timeWait = (await sockets(p, p.a, ['state', 'time-wait', `( dport = :${port} )`])).length;
      return { addr: p.addrB, port, client: { ...client }, oracle: { localPorts: ports, timeWait } };
    });
  } finally {
    await p.exec(p.a, ['sysctl', '-qw', `net.ipv4.ip_local_port_range=${original}`]);
    server.kill('SIGKILL');
  }
}

/** A firewall on B rejects with a TCP reset: the client sees ECONNREFUSED as if nothing listened. */
export async function rejectReset(p: NetnsPair, conns = 2): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.rejectReset;
  return withNft(p, p.b, 'nb_rejrst', `  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} counter reject with tcp reset
  }`, () => measured(p, async () => {
    const client = await p.client(p.addrB, port, { conns });
    return { addr: p.addrB, port, client: { ...client }, oracle: { nftRejected: await p.nftCounter(p.b, 'nb_rejrst', 'input') } };
  }));
}

/** A firewall on B rejects with ICMP port-unreachable: ECONNREFUSED again, but no RST ever arrives. */
export async function rejectIcmp(p: NetnsPair, conns = 2): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.rejectIcmp;
  return withNft(p, p.b, 'nb_rejicmp', `  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} counter reject with icmpx type port-unreachable
  }`, () => measured(p, async () => {
    const client = await p.client(p.addrB, port, { conns });
    return { addr: p.addrB, port, client: { ...client }, oracle: { nftRejected: await p.nftCounter(p.b, 'nb_rejicmp', 'input') } };
  }));
}

/** Nothing listens on the port: B's kernel answers each SYN with a RST (Tcp OutRsts). */
export async function noListener(p: NetnsPair, conns = 2): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.noListener;
  return measured(p, async () => {
    const client = await p.client(p.addrB, port, { conns });
    return { addr: p.addrB, port, client: { ...client }, oracle: {} };
  });
}

/**
 * conntrack's table is full: A tracks its connections (an nft `ct state new` rule), `hold` established
 * (assured, so not early-droppable) connections fill it once nf_conntrack_max is lowered to their number, and a
 * burst of new connects has its SYNs dropped until the limit is restored `windowMs` later (their retransmits
 * then get through). nf_conntrack_max is global on this kernel (read-only in other namespaces), so the window
 * is kept short, and the limit is taken under a lock and lowered only while no other namespace is near it
 * (lockConntrackMax). `during` runs while the table is full (the window lasts until it is done too).
 */
export async function conntrackFull(p: NetnsPair, hold = 8, burst = 6, windowMs = 400, during?: During): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.conntrackFull;
  const server = await p.startServer(port);
  const limit = await lockConntrackMax();
  try {
    return await withNft(p, p.a, 'nb_ctfull', `  chain out { type filter hook output priority 0; policy accept;
    tcp dport ${port} ct state new counter
  }`, () => measured(p, async () => {
      await p.exec(p.a, ['conntrack', '-F']).catch(() => undefined);
      await limit.quiet(hold, await p.netnsInode(p.a));
      // Held long enough to outlast the window even where starting the client alone takes seconds (emulated kernels).
      const holding = p.client(p.addrB, port, { conns: hold, parallel: hold, 'hold-ms': 10000 + windowMs });
      for (const t0 = Date.now(); (await conntrackStat(p, p.a)).entries < hold && Date.now() - t0 < 60000; ) await sleep(50);
      const stat0 = await conntrackStat(p, p.a);
      // Never lower the limit to fewer entries than were held (0 would even mean no limit at all).
      if (stat0.entries < hold) throw new Error(`conntrack-full: ${stat0.entries} of ${hold} held connections in A's table after 60 s`);
      let burstResult: Promise<unknown>;
      limit.set(stat0.entries);
      try {
        burstResult = p.client(p.addrB, port, { conns: burst, parallel: burst });
        // At least the window, and until the kernel dropped a SYN of each burst connect (bounded): starting the
        // client takes seconds under emulation, longer than the window.
        const dropped = async () => { for (const t0 = Date.now(); (await conntrackStat(p, p.a)).drop - stat0.drop < burst && Date.now() - t0 < 30000; ) await sleep(50); };
        await Promise.all([sleep(windowMs), dropped(), during?.()]);
      } finally {
        limit.restore();
      }
      const [held, burstClient] = await Promise.all([holding, burstResult]);
      const stat1 = await conntrackStat(p, p.a);
      return {
        addr: p.addrB, port, client: { held, burst: burstClient },
        oracle: { ctEntriesAtLimit: stat0.entries, ctDrop: stat1.drop - stat0.drop, ctEarlyDrop: stat1.early_drop - stat0.early_drop, ctInsertFailed: stat1.insert_failed - stat0.insert_failed, nftNew: await p.nftCounter(p.a, 'nb_ctfull', 'out') },
      };
    }));
  } finally {
    limit.release();
    server.kill('SIGKILL');
  }
}

/** A server that never accepts (backlog 1): its accept queue overflows (TcpExt ListenOverflows). */
export async function backlogOverflow(p: NetnsPair, conns = 8, during?: During): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.backlog;
  const server = await peer(p, p.b, 'noaccept', { port, backlog: 1, seconds: 30 }).ready();
  try {
    return await measured(p, async () => {
      const client = await p.client(p.addrB, port, { conns, parallel: conns, bytes: 100, 'timeout-ms': 2500 });
      const queue = await sockets(p, p.b, ['state', 'listening', `( sport = :${port} )`]);
      await during?.();
      return { addr: p.addrB, port, client: { ...client }, oracle: { listenRecvQ: queue[0]?.recvQ ?? -1, listenLimit: queue[0]?.sendQ ?? -1 } };
    });
  } finally {
    await server.result();
  }
}

/** A server that closes with the client's data unread: its kernel resets the connection (TCPAbortOnClose). */
export async function unreadReset(p: NetnsPair, conns = 2): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.unreadReset;
  const server = await peer(p, p.b, 'closeunread', { port, 'delay-ms': 300, seconds: 30 }).ready();
  return measured(p, async () => {
    const client = await peerClient(p, p.a, 'sendwait', { host: p.addrB, port, conns, bytes: 2000, 'wait-ms': 2000 });
    return { addr: p.addrB, port, client, oracle: { serverClosedUnread: Number((await server.result()).closed_unread) } };
  });
}

/** A receiver that stops reading: its window closes, the sender probes it (TCPToZeroWindowAdv, TCPWinProbe). */
export async function zeroWindow(p: NetnsPair, seconds = 3, during?: During): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.zeroWindow;
  const server = await peer(p, p.b, 'noread', { port, seconds: 30 }).ready();
  try {
    return await measured(p, async () => {
      const flood = peerClient(p, p.a, 'flood', { host: p.addrB, port, seconds });
      await sleep(seconds * 1000 - 500);
      const stuck = await sockets(p, p.b, ['state', 'established', `( sport = :${port} )`]);
      await during?.();
      const client = await flood;
      return { addr: p.addrB, port, client, oracle: { receiverRecvQ: stuck[0]?.recvQ ?? -1 } };
    });
  } finally {
    await server.result();
  }
}

/** Two TUN devices, in A and B, joined by a relay process (peers.py relay): a path outside this host's kernel. */
export interface TunPath {
  addrA: string;
  addrB: string;
  relay: Peer;
  /** Stops the relay (if still running) and removes the devices. */
  close(): Promise<void>;
}

/** Sets up a TUN path between A and B in the pair's own 10.X.1.0/24; relay options as peers.py takes them. */
export async function tunPath(p: NetnsPair, relayArgs: Record<string, string | number>): Promise<TunPath> {
  const tunA = `nbtA${p.a.slice(-6, -2)}`, tunB = `nbtB${p.b.slice(-6, -2)}`;
  const net = p.addrA.split('.').slice(0, 2).join('.');
  const addrA = `${net}.1.1`, addrB = `${net}.1.2`;
  await p.exec(p.a, ['ip', 'tuntap', 'add', 'dev', tunA, 'mode', 'tun']);
  await p.exec(p.b, ['ip', 'tuntap', 'add', 'dev', tunB, 'mode', 'tun']);
  const close = async () => {
    await relay?.result().catch(() => undefined);
    await p.exec(p.a, ['ip', 'link', 'del', tunA]).catch(() => undefined);
    await p.exec(p.b, ['ip', 'link', 'del', tunB]).catch(() => undefined);
  };
  let relay: Peer | undefined;
  try {
    for (const [ns, dev, local, remote] of [[p.a, tunA, addrA, addrB], [p.b, tunB, addrB, addrA]]) {
      await p.exec(ns, ['ip', 'addr', 'add', local, 'peer', remote, 'dev', dev]);
      await p.exec(ns, ['ip', 'link', 'set', dev, 'up']);
    }
    relay = await peer(p, p.a, 'relay', { 'ns-a': p.a, 'tun-a': tunA, 'ns-b': p.b, 'tun-b': tunB, seconds: 60, ...relayArgs }).ready();
    return { addrA, addrB, relay, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A client that gives up before the kernel: curl --connect-timeout 2 to a host whose SYNs are lost outside
 * this host (the relay discards them: no kernel on this host sees a drop). */
export async function appTimeout(p: NetnsPair): Promise<ScenarioResult> {
  const port = SCENARIO_PORTS.appTimeout;
  const path = await tunPath(p, { loss: 0, 'drop-syn-port': port });
  try {
    return await measured(p, async () => {
      const t0 = Date.now();
      const r = await p.exec(p.a, ['curl', '-sS', '--connect-timeout', '2', `http://${path.addrB}:${port}/`]).then(() => 0, (e: { code?: number }) => e.code ?? -1);
      const elapsedMs = Date.now() - t0;
      const relay = await path.relay.result();
      return { addr: path.addrB, port, client: { curlExit: r, elapsedMs, relay }, oracle: { relaySynDiscarded: Number(relay.syn_discarded) } };
    });
  } finally {
    await path.close();
  }
}

/**
 * Loss outside this host: A and B talk over two TUN devices joined by a user-space relay that discards
 * `lossPercent`% of the A->B packets carrying TCP payload. The kernels see every packet consumed, none dropped.
 */
export async function pathLoss(p: NetnsPair, lossPercent = 5, bytes = 400_000, conns = 3, seed = 1, port: number = SCENARIO_PORTS.pathLoss): Promise<ScenarioResult> {
  const path = await tunPath(p, { loss: lossPercent, seed });
  const server = await p.startServer(port, ['--reply', '1000']);
  try {
    return await measured(p, async () => {
      const client = await p.client(path.addrB, port, { conns, bytes, parallel: conns });
      await p.waitQuiet(p.a, port);
      const r = await path.relay.result();
      return { addr: path.addrB, port, client: { ...client, relay: r }, oracle: { relayDiscarded: Number(r.discarded), relayPayloadPackets: Number(r.payload_a_to_b) } };
    });
  } finally {
    server.kill('SIGKILL');
    await path.close();
  }
}

/** A server that never closes what its clients closed: sockets pile up in CLOSE_WAIT (`ss state close-wait`). */
export async function closeWaitLeak(p: NetnsPair, conns = 5): Promise<ScenarioResult & { server: ReturnType<typeof peer> }> {
  const port = SCENARIO_PORTS.closeWait;
  const server = await peer(p, p.b, 'noclose', { port, seconds: 60 }).ready();
  const r = await measured(p, async () => {
    // The client closes its side at once (end) and waits 300 ms for the server's close, which never comes.
    const client = await p.client(p.addrB, port, { conns, bytes: 500, 'timeout-ms': 300 });
    let leaked = 0;
    for (const t0 = Date.now(); leaked < conns && Date.now() - t0 < 3000; await sleep(50)) leaked = (await sockets(p, p.b, ['state', 'close-wait', `( sport = :${port} )`])).length;
    return { addr: p.addrB, port, client: { ...client, serverPid: server.child.pid }, oracle: { closeWait: leaked } };
  });
  // The server keeps its sockets until the caller stops it (server.result()), so they can be looked at.
  return { ...r, server };
}

/** A healthy workload: short connections with replies, clean closes, TIME_WAIT on the client. */
export async function healthy(p: NetnsPair, conns = 20, port: number = SCENARIO_PORTS.healthy): Promise<ScenarioResult> {
  const server = await p.startServer(port, ['--reply', '2000']);
  try {
    return await measured(p, async () => {
      const client = await p.client(p.addrB, port, { conns, bytes: 2000, parallel: 2 });
      const timeWait = (await sockets(p, p.a, ['state', 'time-wait', `( dport = :${port} )`])).length;
      return { addr: p.addrB, port, client: { ...client }, oracle: { timeWait } };
    });
  } finally {
    server.kill('SIGKILL');
  }
}
