/**
 * netbpf retrans against the real kernel: a lossy veth link between two private namespaces (nftables drops a
 * random share of packets in B), bounded bulk transfers from A, and oracles nobody here wrote: namespace A's
 * own RetransSegs counter (/proc/net/snmp) and bpftrace counting the same tracepoint.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { retrans, RetransAggregator, countedByKernel, type RetransEvent } from '../../src/index.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, sleep, tracefsMounted, withTracefs } from '../helpers.js';

const PORT = 5111;

describeBpf('retrans on a lossy link (real kernel)', () => {
  let pair: NetnsPair;
  let netnsA: number;

  const kernelCounted = (events: RetransEvent[]) => events.filter(countedByKernel).reduce((n, e) => n + e.segs, 0);

  beforeAll(async () => {
    pair = await NetnsPair.create('rt');
    await pair.addLoss(5, PORT);
    await pair.startServer(PORT);
    netnsA = await pair.netnsInode(pair.a);
  });
  afterAll(async () => { await pair?.destroy(); });

  /** Runs a bounded transfer while tracing; returns A's RetransSegs delta and the events from namespace A. */
  async function traced(opts: Parameters<typeof retrans>[0], host: string, bytes: number) {
    const trace = retrans(opts);
    const events: RetransEvent[] = [];
    trace.onEvents((batch) => { for (const e of batch) if (e.netns === netnsA) events.push(e); });
    const info = await trace.start();
    const before = (await pair.snmp(pair.a)).Tcp;
    const client = await pair.client(host, PORT, { bytes, conns: 2, parallel: 2 });
    await pair.waitQuiet(pair.a, PORT);
    const after = (await pair.snmp(pair.a)).Tcp;
    await trace.stop();
    expect(client.ok).toBe(2);
    return { info, events, retransSegs: after.RetransSegs - before.RetransSegs, counters: trace.counters() };
  }

  it('counts exactly the segments the kernel counts in RetransSegs, per destination, over IPv4', async () => {
    const r = await traced({ remotePort: PORT }, pair.addrB, 15_000_000);
    expect(r.info.hooks[0]).toMatchObject({ feature: 'retransmits', hook: 'tp_btf/tcp_retransmit_skb' });
    expect(r.retransSegs).toBeGreaterThan(20); // the loss rule really caused retransmits
    const agg = new RetransAggregator();
    agg.addAll(r.events);
    const row = agg.snapshot().byEndpoint.find((x) => x.key === `${pair.addrB}:${PORT}`)!;
    expect(row.segs).toBe(r.retransSegs);
    expect(row.connections).toBe(2);
    // GSO: one event can carry many segments, so events alone would undercount
    expect(row.segs).toBeGreaterThan(row.events);
    expect(r.counters.lost).toBe(0);
    for (const e of r.events) {
      expect(e).toMatchObject({ family: 4, saddr: pair.addrA, daddr: pair.addrB, dport: PORT });
      // the loss rule may also drop a SYN: that retransmit has no RTT sample yet
      if (e.kind === 'syn') expect(e.state).toBe('SYN_SENT');
      else expect(e.srttUs).toBeGreaterThan(0);
      expect(['rto', 'fast', 'tlp', 'syn', 'other']).toContain(e.kind);
      expect(e.comm).toBe('node'); // the tcp-load client that connected, not a softirq bystander
    }
  });

  it('agrees with RetransSegs over IPv6 and on the raw tracepoint fallback (no tracefs needed)', async () => {
    const r = await traced({ remotePort: PORT, hook: 'raw_tp', family: 6 }, pair.addr6B, 10_000_000);
    expect(r.info.hooks[0].hook).toBe('raw_tp/tcp_retransmit_skb');
    expect(r.retransSegs).toBeGreaterThan(10);
    const segs = kernelCounted(r.events);
    expect(segs).toBe(r.retransSegs);
    expect(r.events.every((e) => e.family === 6 && e.daddr === pair.addr6B)).toBe(true);
  });

  it('the classic tracepoint: agrees with RetransSegs where tracefs is mounted, says what is missing where not', async () => {
    if (!tracefsMounted()) {
      await expect(traced({ remotePort: PORT, hook: 'tracepoint' }, pair.addrB, 1_000_000))
        .rejects.toThrow(/cannot trace retransmits in this environment \(tracepoint\/tcp\/tcp_retransmit_skb: needs tracefs, which is not mounted \(mount -t tracefs/);
      return;
    }
    const r = await traced({ remotePort: PORT, hook: 'tracepoint' }, pair.addrB, 10_000_000);
    expect(r.info.hooks[0].hook).toBe('tracepoint/tcp/tcp_retransmit_skb');
    expect(r.retransSegs).toBeGreaterThan(10);
    expect(kernelCounted(r.events)).toBe(r.retransSegs);
  });

  it('filters in the kernel: a remote-port or CIDR filter that excludes the traffic sees nothing', async () => {
    const other = await traced({ remotePort: PORT + 1 }, pair.addrB, 5_000_000);
    expect(other.retransSegs).toBeGreaterThan(0);
    expect(other.events).toHaveLength(0);
    expect(other.counters.events).toBe(0);
    const v6only = await traced({ remoteCidrs: ['fd00:231::/64'] }, pair.addrB, 5_000_000);
    expect(v6only.retransSegs).toBeGreaterThan(0);
    expect(v6only.events).toHaveLength(0);
    const v4net = await traced({ remoteCidrs: ['10.231.0.0/24'] }, pair.addrB, 5_000_000);
    expect(kernelCounted(v4net.events)).toBe(v4net.retransSegs);
  });

  it('sees the same number of tracepoint hits as bpftrace counting tcp:tcp_retransmit_skb', async () => {
    // Only namespace A's sockets: other runs of this suite on the same machine use the same port and addresses.
    const inA = `((struct sock *)args->skaddr)->__sk_common.skc_net.net->ns.inum == ${netnsA}`;
    const [cmd, ...argv] = withTracefs(['bpftrace', '-e', `tracepoint:tcp:tcp_retransmit_skb /args->dport == ${PORT} && ${inA}/ { @hits = count(); }`]);
    const bt = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    bt.stdout.on('data', (d) => { out += d; });
    bt.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => bt.once('close', resolve));
    try {
      for (let i = 0; i < 600 && !/Attaching/.test(out) && bt.exitCode === null; i++) await sleep(100);
      expect(out).toMatch(/Attaching/);
      await sleep(300);
      const r = await traced({ remotePort: PORT }, pair.addrB, 10_000_000);
      await sleep(200);
      // Under slow (emulated) kernels bpftrace can miss a SIGINT that lands while it is still attaching: ask
      // again, bounded, rather than wait forever.
      const running = () => bt.exitCode === null && bt.signalCode === null;
      for (let i = 0; i < 3 && running(); i++) {
        bt.kill('SIGINT');
        await Promise.race([exited, sleep(10_000)]);
      }
      expect(running(), `bpftrace did not exit on SIGINT: ${out}`).toBe(false);
      const hits = Number(/@hits: (\d+)/.exec(out)?.[1] ?? 0);
      expect(hits).toBeGreaterThan(0);
      expect(r.events.length).toBe(hits);
    } finally {
      if (bt.exitCode === null) { bt.kill('SIGKILL'); await exited; }
    }
  });
});
