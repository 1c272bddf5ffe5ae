/**
 * netbpf life and connect against the real kernel: a known workload between two private namespaces,
 * checked against what the client itself counted, the process ids it printed, and the kernel's own
 * counters (/proc/net/snmp Tcp ActiveOpens/PassiveOpens/AttemptFails, /proc/net/netstat TCPSynRetrans).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { connect, life, type ConnectEvent, type LifeClosedEvent, type LifeEvent } from '../../src/index.js';
import type { LifeTrace } from '../../src/tools/life/index.js';
import type { Trace } from '../../src/core/trace.js';
import { NetnsPair, parseSnmp } from '../../src/testing/netns.js';
import { addon } from '../../src/core/addon.js';
import { existsSync } from 'node:fs';
import { describeBpf, sleep } from '../helpers.js';

const PORT = 5101;
const DROP_PORT = 5103;
const REJECT_PORT = 5104;
const CLOSED_PORT = 5102;
const UNROUTED = '10.233.7.1';

describeBpf('life and connect on a real kernel', () => {
  let p: NetnsPair;
  let server: ChildProcess;
  let lifeTrace: LifeTrace;
  let connectTrace: Trace<ConnectEvent>;
  const lifeEvents: LifeEvent[] = [];
  const connectEvents: ConnectEvent[] = [];
  let nsA = 0, nsB = 0;

  const tcpA = async () => (await p.snmp(p.a)).Tcp;
  const tcpB = async () => (await p.snmp(p.b)).Tcp;
  const synRetransA = async () => parseSnmp((await p.exec(p.a, ['cat', '/proc/net/netstat'])).stdout).TcpExt.TCPSynRetrans;
  /** Waits (bounded) until `pred` holds over the collected events: records reach user space within pollMs. */
  const until = async (pred: () => boolean, ms = 3000) => {
    for (const t0 = Date.now(); !pred() && Date.now() - t0 < ms; ) await sleep(50);
  };
  const closed = (pid: number) => lifeEvents.filter((e): e is LifeClosedEvent => e.type === 'closed' && e.pid === pid);
  const hookOf = (t: Trace<unknown>, feature: string) => t.info!.hooks.find((h) => h.feature === feature)!;
  /** Whether the accepted side's owner is learned where it reads or writes (else only when it closes). */
  const ownerHooked = () => hookOf(lifeTrace, 'owner of accepted connections (recvmsg)').hook !== null;

  beforeAll(async () => {
    p = await NetnsPair.create('lc');
    nsA = await p.netnsInode(p.a);
    nsB = await p.netnsInode(p.b);
    const mine = (e: { netns: number }) => e.netns === nsA || e.netns === nsB;
    lifeTrace = life({ pollMs: 10 });
    connectTrace = connect({ pollMs: 10 });
    lifeTrace.onEvents((b) => lifeEvents.push(...b.filter(mine)));
    connectTrace.onEvents((b) => connectEvents.push(...b.filter(mine)));
    await lifeTrace.start();
    await connectTrace.start();
    server = await p.startServer(PORT, ['--reply', '3000']);
    // Warm neighbour caches so the first SYN is not delayed by ARP/ND (seen: a 1 s SYN retransmit on IPv6).
    await p.client(p.addrB, PORT, { conns: 1 });
    await p.client(p.addr6B, PORT, { conns: 1 });
    await p.exec(p.a, ['sysctl', '-qw', 'net.ipv4.tcp_syn_retries=1']);
    await p.exec(p.a, ['ip', 'route', 'add', 'unreachable', `${UNROUTED}/32`]);
    await p.nft(p.b, `table inet lc {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${DROP_PORT} counter drop
    tcp dport ${REJECT_PORT} counter reject with icmpx type host-unreachable
  }
}\n`);
  });

  afterAll(async () => {
    await lifeTrace?.stop();
    await connectTrace?.stop();
    await p?.destroy();
  });

  it('learns owners of accepted connections and error reports through the best hook this kernel has, or says why not', () => {
    // Facts of the running kernel, read apart from netbpf: its BTF lists its tracepoints; kprobes have a PMU.
    const hasTracepoint = (name: string) => addon().kernelBtfHas('typedef', `btf_trace_${name}`);
    const kprobes = existsSync('/sys/bus/event_source/devices/kprobe');
    const cases = [
      [lifeTrace, 'owner of accepted connections (recvmsg)', 'sock_recv_length', 'tcp_recvmsg'],
      [lifeTrace, 'owner of accepted connections (sendmsg)', 'sock_send_length', 'tcp_sendmsg'],
      [connectTrace, 'error reports', 'inet_sk_error_report', 'sock_def_error_report'],
    ] as const;
    for (const [trace, feature, tracepoint, fn] of cases) {
      const h = hookOf(trace as Trace<unknown>, feature);
      if (hasTracepoint(tracepoint)) expect(h.hook).toBe(`tp_btf/${tracepoint}`);
      else if (kprobes) expect(h.hook).toMatch(new RegExp(`^(fentry|kprobe)/${fn}$`));
      else {
        expect(h.hook).toBeNull();
        expect(h.unavailable).toBe('kernel');
        expect(h.skipped.join('; ')).toMatch(new RegExp(`no tracepoint ${tracepoint} in this kernel.*fentry/${fn}: .+; kprobe/${fn}: `));
      }
    }
  });

  for (const [family, addr] of [[4, '10.231.0.2'], [6, 'fd00:231::2']] as const) {
    it(`IPv${family}: one closed record per connection with exact bytes, durations and both owners`, async () => {
      const before = { a: await tcpA(), b: await tcpB() };
      const conns = 4, bytes = 20000, holdMs = 150;
      const r = await p.client(addr, PORT, { conns, bytes, 'hold-ms': holdMs });
      expect(r.ok).toBe(conns);
      const ports = () => new Set(closed(r.pid).map((e) => e.sport));
      // The server listens on :: so IPv4 clients arrive on IPv4-mapped IPv6 sockets: match by the client's ports.
      // Match the client's address too: the IPv6 warm-up connection may have used the same port number.
      const clientAddr = family === 4 ? p.addrA : p.addr6A;
      const acceptedOf = () => closed(server.pid!).filter((e) => e.sport === PORT && ports().has(e.dport) && e.daddr === clientAddr);
      await until(() => closed(r.pid).length >= conns && acceptedOf().length >= conns);
      const after = { a: await tcpA(), b: await tcpB() };

      const client = closed(r.pid).filter((e) => e.dport === PORT);
      expect(client).toHaveLength(conns);
      // Kernel counters: every active open in A and passive open in B was traced exactly once.
      expect(client.length).toBe(after.a.ActiveOpens - before.a.ActiveOpens);
      for (const e of client) {
        expect(e).toMatchObject({ family, direction: 'connect', comm: 'node', ownerSource: 'connect', reason: 'fin', established: true, daddr: addr, netns: nsA });
        expect(e.txBytes).toBe(bytes);
        expect(e.rxBytes).toBe(3000);
        // Lower bound: the client holds each connection holdMs; upper: generous for a shared 2-core VM.
        expect(e.durationMs).toBeGreaterThanOrEqual(holdMs);
        expect(e.durationMs).toBeLessThan(holdMs + 1500);
      }
      expect(client.reduce((s, e) => s + e.txBytes, 0)).toBe(r.bytesSent);
      expect(client.reduce((s, e) => s + e.rxBytes, 0)).toBe(r.bytesReceived);

      // Accepted side: owner is the server process (learned in recvmsg), never a softirq bystander.
      const accepted = acceptedOf();
      expect(accepted).toHaveLength(conns);
      expect(accepted.length).toBe(after.b.PassiveOpens - before.b.PassiveOpens);
      for (const e of accepted) {
        expect(e).toMatchObject({ direction: 'accept', comm: 'node', netns: nsB, saddr: addr });
        expect(ownerHooked() ? ['recv', 'send'] : ['close']).toContain(e.ownerSource);
        expect(e.rxBytes).toBe(bytes);
        expect(e.txBytes).toBe(3000);
      }
      const unowned = lifeEvents.filter((e) => e.type === 'closed' && e.direction === 'accept' && e.netns === nsB && e.pid !== server.pid);
      expect(unowned).toEqual([]);

      // connect: one established event per connection, latency > 0 and well under the hold time.
      const ok = connectEvents.filter((e) => e.type === 'established' && e.pid === r.pid);
      expect(ok).toHaveLength(conns);
      for (const e of ok) if (e.type === 'established') expect(e.latencyUs).toBeGreaterThan(0);
    });

    it(`IPv${family}: a port with no listener is refused`, async () => {
      const before = await tcpA();
      const r = await p.client(addr, CLOSED_PORT, { conns: 2 });
      expect(r.errors.ECONNREFUSED).toBe(2);
      await until(() => connectEvents.filter((e) => e.pid === r.pid).length >= 2);
      const after = await tcpA();
      const failed = connectEvents.filter((e) => e.pid === r.pid);
      expect(failed).toHaveLength(2);
      expect(failed.length).toBe(after.AttemptFails - before.AttemptFails);
      for (const e of failed) expect(e).toMatchObject({ type: 'failed', failure: 'refused', error: 'ECONNREFUSED', rstReceived: true, beforeSyn: false, dport: CLOSED_PORT });
      const lifeFailed = closed(r.pid);
      expect(lifeFailed).toHaveLength(2);
      for (const e of lifeFailed) expect(e).toMatchObject({ reason: 'failed', closedFrom: 'SYN_SENT', error: 'ECONNREFUSED', established: false });
    });

    it(`IPv${family}: SYNs dropped by nftables time out, with SYN retransmits counted like the kernel`, async () => {
      const before = await synRetransA();
      const drops0 = await p.nftCounter(p.b, 'lc', 'input');
      const r = await p.client(addr, DROP_PORT, { conns: 1 });
      expect(r.errors.ETIMEDOUT).toBe(1);
      await until(() => connectEvents.some((e) => e.pid === r.pid));
      const [e] = connectEvents.filter((x) => x.pid === r.pid);
      expect(e).toMatchObject({ type: 'failed', failure: 'timeout', error: 'ETIMEDOUT' });
      expect(e.synRetrans).toBe((await synRetransA()) - before);
      // Every SYN (first + retransmits) hit the drop rule in B.
      expect((await p.nftCounter(p.b, 'lc', 'input')) - drops0).toBe(e.synRetrans + 1);
    });

    it(`IPv${family}: an ICMP host-unreachable answer is classified unreachable`, async () => {
      const r = await p.client(addr, REJECT_PORT, { conns: 1 });
      expect(r.errors.EHOSTUNREACH).toBe(1);
      await until(() => connectEvents.some((e) => e.pid === r.pid));
      const [e] = connectEvents.filter((x) => x.pid === r.pid);
      expect(e).toMatchObject({ type: 'failed', failure: 'unreachable', error: 'EHOSTUNREACH', beforeSyn: false });
    });
  }

  it('a destination with an unreachable route fails before any SYN and is still reported', async () => {
    const before = await tcpA();
    const r = await p.client(UNROUTED, 80, { conns: 1 });
    expect(r.errors.EHOSTUNREACH).toBe(1);
    await until(() => connectEvents.some((e) => e.pid === r.pid));
    const after = await tcpA();
    // No state change, so the kernel counts neither an active open nor a failed attempt.
    expect(after.ActiveOpens - before.ActiveOpens).toBe(0);
    const [e] = connectEvents.filter((x) => x.pid === r.pid);
    expect(e).toMatchObject({ type: 'failed', failure: 'unreachable', error: 'EHOSTUNREACH', beforeSyn: true, daddr: UNROUTED, dport: 80, synRetrans: 0 });
    expect(closed(r.pid)).toEqual([]);
  });

  it('counts nothing lost or untracked', async () => {
    expect(lifeTrace.counters().lost).toBe(0);
    expect(connectTrace.counters().lost).toBe(0);
    expect(lifeTrace.untracked()).toBe(0);
  });
});
