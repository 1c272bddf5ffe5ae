/**
 * Connection ends and summaries counted in the kernel, against the real kernel: the same workload traced at once by
 * the event path (life, connect, retrans) and by the summaries counted in the kernel (lifeSummary, connectSummary,
 * retransSummary), checked against each other and against the namespaces' own counters (/proc/net/snmp ActiveOpens,
 * PassiveOpens, AttemptFails, EstabResets, RetransSegs; /proc/net/netstat TCPAbortOnClose); a server that closes
 * with unread data (its reset goes out after the socket reached CLOSE); and the socket-owner map shared by the
 * objects of a session (retrans names an accepted connection's owner that only life's hooks captured).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import {
  connect, connectSummary, countedByKernel, life, lifeSummary, retrans, retransSummary, SharedMaps,
  type ConnectEvent, type LifeClosedEvent, type LifeEvent, type RetransEvent,
} from '../../src/index.js';
import { NetnsPair, parseSnmp } from '../../src/testing/netns.js';
import { describeBpf, sleep } from '../helpers.js';

const PORT = 5121, UNREAD = 5122, CLOSED = 5123, DROPPED = 5124, LOSSY = 5125;

// Its own addresses: the summaries see every namespace, and other suites use the default subnet at the same time.
const SUBNET = 245;

describeBpf('summaries counted in the kernel (real kernel, private namespaces)', () => {
  let p: NetnsPair;
  let unreadServer: ChildProcess;
  let nsA = 0, nsB = 0;
  const tcp = async (ns: string) => (await p.snmp(ns)).Tcp;
  const tcpExt = async (ns: string) => parseSnmp((await p.exec(ns, ['cat', '/proc/net/netstat'])).stdout).TcpExt;
  const until = async (pred: () => boolean, ms = 5000) => { for (const t0 = Date.now(); !pred() && Date.now() - t0 < ms; ) await sleep(50); };

  beforeAll(async () => {
    p = await NetnsPair.create('ks', SUBNET);
    nsA = await p.netnsInode(p.a);
    nsB = await p.netnsInode(p.b);
    await p.startServer(PORT, ['--reply', '2000']);
    // A server that never reads: it closes each connection 300 ms after accepting it, with the client's data unread.
    unreadServer = p.spawn(p.b, [process.execPath, '-e', `require('net').createServer({ pauseOnConnect: true }, (s) => setTimeout(() => s.destroy(), 300)).listen(${UNREAD}, () => console.log('listening'))`]);
    await new Promise((r) => unreadServer.stdout!.once('data', r));
    await p.client(p.addrB, PORT, { conns: 1 }); // warm the neighbour cache
    await p.exec(p.a, ['sysctl', '-qw', 'net.ipv4.tcp_syn_retries=1']);
    await p.nft(p.b, `table inet ks {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${DROPPED} counter drop
    tcp dport ${LOSSY} numgen random mod 100 < 10 counter drop
  }
}\n`);
  });

  afterAll(async () => { await p?.destroy(); });

  it('counts every connection end and outcome exactly as the event path and the kernel counters do', async () => {
    const cidr = { remoteCidrs: [`10.${SUBNET}.0.0/24`] };
    const events = life({ ...cidr, established: true, pollMs: 10 });
    const summary = lifeSummary(cidr);
    const connects = connect({ ...cidr, pollMs: 10 });
    const connectSum = connectSummary(cidr);
    const lifeEvents: LifeEvent[] = [], connectEvents: ConnectEvent[] = [];
    events.onEvents((b) => lifeEvents.push(...b.filter((e) => e.netns === nsA || e.netns === nsB)));
    connects.onEvents((b) => connectEvents.push(...b.filter((e) => e.netns === nsA)));
    for (const t of [events, summary, connects, connectSum]) await t.start();
    const a0 = await tcp(p.a), b0 = await tcp(p.b);
    const ok = await p.client(p.addrB, PORT, { conns: 20, bytes: 12345, parallel: 4 });
    const refused = await p.client(p.addrB, CLOSED, { conns: 3 });
    const timedOut = await p.client(p.addrB, DROPPED, { conns: 1 });
    expect(ok.ok).toBe(20);
    expect(refused.errors.ECONNREFUSED).toBe(3);
    expect(timedOut.errors.ETIMEDOUT).toBe(1);
    await p.waitQuiet(p.a, PORT);
    const a1 = await tcp(p.a), b1 = await tcp(p.b);
    const ends = (a1.ActiveOpens - a0.ActiveOpens) + (b1.PassiveOpens - b0.PassiveOpens);
    await until(() => lifeEvents.filter((e) => e.type === 'closed').length >= ends && connectEvents.length >= 24);
    const s = summary.snapshot();
    const c = connectSum.snapshot();
    for (const t of [events, summary, connects, connectSum]) await t.stop();

    // Ends: 20 connections (both sides) + 4 failed connects, exactly what the kernel counted as opens.
    expect(ends).toBe(2 * 20 + 4);
    const closed = lifeEvents.filter((e): e is LifeClosedEvent => e.type === 'closed');
    expect(closed).toHaveLength(ends);
    expect(s.totals.connections).toBe(ends);
    expect(summary.counters().events).toBe(ends);
    expect(s.totals.failed).toBe(a1.AttemptFails - a0.AttemptFails);
    // Bytes exact, per direction of each destination, in both paths.
    const row = (key: string) => s.byDestination.find((r) => r.key === key)!;
    const client = row(`${p.addrB}:${PORT}`), server = row(`${p.addrA} -> :${PORT}`);
    expect(client).toMatchObject({ direction: 'connect', connections: 20, established: 20, open: 0, failed: 0, txBytes: 20 * 12345, rxBytes: 20 * 2000 });
    expect(server).toMatchObject({ direction: 'accept', connections: 20, established: 20, txBytes: 20 * 2000, rxBytes: 20 * 12345 });
    expect(client.txBytes).toBe(ok.bytesSent);
    expect(client.rxBytes).toBe(ok.bytesReceived);
    expect(client.reasons.fin).toBe(20);
    expect(row(`${p.addrB}:${CLOSED}`)).toMatchObject({ connections: 3, failed: 3 });
    // The event path's own sums agree with the kernel's, and so do the lifetime histograms' counts.
    const fromEvents = closed.filter((e) => e.dport === PORT && e.direction === 'connect');
    expect(fromEvents.reduce((n, e) => n + e.txBytes, 0)).toBe(client.txBytes);
    expect(client.histograms.durationMs.count).toBe(20);
    // Each path's programs read the clock themselves: the lifetimes agree to microseconds.
    expect(Math.abs(client.histograms.durationMs.sum - fromEvents.reduce((n, e) => n + e.durationMs, 0))).toBeLessThan(20 * 0.05);
    // Connects: outcomes by class, as connect's events and the kernel count them.
    expect(c.totals).toMatchObject({ attempts: 24, successes: 20, failures: 4, byClass: { refused: 3, timeout: 1, unreachable: 0, aborted: 0, other: 0 } });
    expect(connectEvents.filter((e) => e.type === 'established')).toHaveLength(c.totals.successes);
    const ep = c.byEndpoint.find((r) => r.key === `${p.addrB}:${PORT}`)!;
    expect(ep).toMatchObject({ attempts: 20, successes: 20 });
    expect(ep.histograms.latencyUs.count).toBe(20);
    expect(ep.latencyUs.exact).toBe(false);
    expect(c.byEndpoint.find((r) => r.key === `${p.addrB}:${DROPPED}`)).toMatchObject({ failures: 1, errors: { ETIMEDOUT: 1 } });
    for (const t of [events, summary, connects, connectSum]) expect(t.counters().lost).toBe(0);
  }, 60000);

  it('a server that closes with unread data: its end is reset-sent (TCPAbortOnClose), the client\'s reset-received (EstabResets)', async () => {
    const cidr = { remoteCidrs: [`10.${SUBNET}.0.0/24`] };
    const events = life({ ...cidr, pollMs: 10 });
    const summary = lifeSummary(cidr);
    const seen: LifeClosedEvent[] = [];
    events.onEvents((b) => { for (const e of b) if (e.type === 'closed' && (e.netns === nsA || e.netns === nsB) && (e.sport === UNREAD || e.dport === UNREAD)) seen.push(e); });
    await events.start();
    await summary.start();
    const abort0 = (await tcpExt(p.b)).TCPAbortOnClose, resets0 = (await tcp(p.a)).EstabResets;
    // Two clients that send and wait (ESTABLISHED when the reset comes: EstabResets counts it there).
    const client = `const net = require('net'); let n = 0; for (let i = 0; i < 2; i++) { const s = net.connect(${UNREAD}, '${p.addrB}', () => s.write(Buffer.alloc(5000))); s.on('error', (e) => { if (e.code === 'ECONNRESET' && ++n === 2) console.log('reset 2'); }); }`;
    const out = await p.exec(p.a, [process.execPath, '-e', client], { timeoutMs: 10000 });
    expect(out.stdout.trim()).toBe('reset 2');
    await until(() => seen.length >= 4);
    const aborts = (await tcpExt(p.b)).TCPAbortOnClose - abort0, resets = (await tcp(p.a)).EstabResets - resets0;
    const s = summary.snapshot();
    await events.stop();
    await summary.stop();
    expect(aborts).toBe(2);
    expect(resets).toBe(2);
    const servers = seen.filter((e) => e.direction === 'accept'), clients = seen.filter((e) => e.direction === 'connect');
    expect(servers).toHaveLength(aborts);
    for (const e of servers) expect(e).toMatchObject({ reason: 'reset-sent', rstSent: true, closedFrom: 'ESTABLISHED', rxBytes: 5000, comm: 'node' });
    expect(clients).toHaveLength(resets);
    for (const e of clients) expect(e).toMatchObject({ reason: 'reset-received' });
    expect(s.byDestination.find((x) => x.key === `${p.addrA} -> :${UNREAD}`)?.reasons['reset-sent']).toBe(aborts);
    expect(s.byDestination.find((x) => x.key === `${p.addrB}:${UNREAD}`)?.reasons['reset-received']).toBe(resets);
  }, 30000);

  it('retransmits counted in the kernel equal RetransSegs and the event path, with the retransmit ratio', async () => {
    const filter = { remotePort: LOSSY };
    const server = await p.startServer(LOSSY);
    try {
      const events = retrans(filter);
      const summary = retransSummary(filter);
      const seen: RetransEvent[] = [];
      events.onEvents((b) => seen.push(...b.filter((e) => e.netns === nsA)));
      await events.start();
      await summary.start();
      const s0 = await tcp(p.a);
      const r = await p.client(p.addrB, LOSSY, { conns: 2, bytes: 5_000_000, parallel: 2 });
      await p.waitQuiet(p.a, LOSSY);
      const s1 = await tcp(p.a);
      await sleep(100);
      const s = summary.snapshot();
      await events.stop();
      await summary.stop();
      expect(r.ok).toBe(2);
      const retransSegs = s1.RetransSegs - s0.RetransSegs;
      expect(retransSegs).toBeGreaterThan(10);
      const row = s.byEndpoint.find((x) => x.key === `${p.addrB}:${LOSSY}`)!;
      expect(row.segs).toBe(retransSegs);
      expect(row.segs).toBe(seen.filter(countedByKernel).reduce((n, e) => n + e.segs, 0));
      expect(row.events).toBe(seen.length);
      expect(row.connections).toBe(2);
      // Each connection's latest counters once: the same ratio the events give.
      const latest = new Map<number, [number, number]>();
      for (const e of seen) latest.set(e.connId, [Math.max(e.totalRetrans, latest.get(e.connId)?.[0] ?? 0), Math.max(e.segsOut, latest.get(e.connId)?.[1] ?? 0)]);
      const [rt, so] = [...latest.values()].reduce(([a, b], [x, y]) => [a + x, b + y], [0, 0]);
      expect(row.retransRatio).toBeCloseTo(rt / so, 9);
      expect(summary.counters()).toMatchObject({ lost: 0, events: seen.length });
    } finally {
      server.kill();
    }
  }, 60000);

  it('objects of a session share one owner map: retrans names an accepted connection\'s owner that life captured', async () => {
    const shared = new SharedMaps();
    const lifeTrace = life({ localPort: LOSSY, shared });
    // No owner programs of its own: it reads what life keeps.
    const rt = retrans({ localPort: LOSSY, shared, ownersKeptElsewhere: true });
    const seen: RetransEvent[] = [];
    rt.onEvents((b) => seen.push(...b.filter((e) => e.netns === nsB)));
    await lifeTrace.start();
    const info = await rt.start();
    expect(info.hooks.map((h) => h.feature)).toEqual(['retransmits', 'SYN-ACK retransmits']);
    expect(shared.has('owners')).toBe(true);
    // B sends (a reply) over the lossy direction: nft drops 5% of what B receives, so A's ACKs are lost and B retransmits.
    await p.nft(p.a, `table inet ksa {
  chain input { type filter hook input priority 0; policy accept;
    tcp sport ${LOSSY} numgen random mod 100 < 5 counter drop
  }
}\n`);
    const server = await p.startServer(LOSSY, ['--reply', '2000000']);
    try {
      const r = await p.client(p.addrB, LOSSY, { conns: 2, bytes: 10, parallel: 2 });
      expect(r.ok).toBe(2);
      await until(() => seen.length > 0);
    } finally {
      server.kill();
      await p.exec(p.a, ['nft', 'delete', 'table', 'inet', 'ksa']);
      await rt.stop();
      await lifeTrace.stop();
      shared.close();
    }
    const data = seen.filter((e) => e.kind !== 'synack');
    expect(data.length).toBeGreaterThan(0);
    for (const e of data) expect(e).toMatchObject({ pid: server.pid, comm: 'node' });
  }, 60000);
});
