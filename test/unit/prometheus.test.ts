/** The exporter's pieces: label slots that renew over days, the zero hold, log2 histograms as Prometheus buckets,
 * endpoint labels, the scrape connections left out, sent segments as OutSegs counts them, and the listen address. */
import { describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { DiagnosisWindow, LabelSlots, NetbpfMetrics, parseListenAddress, PrometheusExporter, ScrapeTraffic, SeriesRegistry, TcpStateCensus, ZeroHold } from '../../src/tools/prometheus/index.js';
import { ownNetns } from '../../src/core/ctnetlink.js';
import type { TcpState } from '../../src/core/tcp.js';
import type { TopSession, TopToolName } from '../../src/tools/top/index.js';
import type { ConnectEvent } from '../../src/tools/connect/index.js';
import type { LifeEvent } from '../../src/tools/life/index.js';
import type { RetransEvent } from '../../src/tools/retrans/index.js';
import type { DropEvent } from '../../src/tools/drops/index.js';

/** The sample lines of an exposition as name{labels} -> value. */
const samples = (text: string) => Object.fromEntries(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => { const i = l.lastIndexOf(' '); return [l.slice(0, i), Number(l.slice(i + 1))]; }));

describe('label slots', () => {
  it('keep max keys, give newcomers "other" while every slot is active, and hand the least recently active idle slot over', () => {
    let t = 0;
    const evicted: string[] = [];
    const s = new LabelSlots(2, 60_000, (k) => evicted.push(k), () => t, new Set(['unknown']));
    expect(['a', 'b', 'c', 'c', 'unknown'].map((k) => s.label(k))).toEqual(['a', 'b', 'other', 'other', 'unknown']);
    expect(s.folded).toBe(1);
    t = 30_000;
    s.label('a'); // a is active again: b is now the least recently active
    t = 61_000;
    expect(s.label('d')).toBe('d'); // b idle for 61 s: its slot goes to d
    expect(evicted).toEqual(['b']);
    expect(s.keys()).toEqual(['a', 'd']);
    expect(s.label('e')).toBe('other'); // a was active 31 s ago: not idle long enough
    expect([s.folded, s.evicted]).toEqual([2, 1]);
  });
});

describe('series exposition', () => {
  it('shows a new counter at zero until it was scraped and one hold passed; gauges at once; everything when released', () => {
    let t = 1000;
    const hold = new ZeroHold(15_000, () => t);
    const r = new SeriesRegistry(hold);
    const c = r.counter('x_total', 'x', ['d']);
    const g = r.gauge('y', 'y');
    c.inc(['a'], 3);
    g.set([], 7);
    expect(samples(r.expose())).toEqual({ 'x_total{d="a"}': 0, y: 7 });
    t += 14_999;
    expect(samples(r.expose())['x_total{d="a"}']).toBe(0);
    t += 1;
    c.inc(['b'], 2);
    expect(samples(r.expose())).toEqual({ 'x_total{d="a"}': 3, 'x_total{d="b"}': 0, y: 7 });
    hold.released = true;
    expect(samples(r.expose())['x_total{d="b"}']).toBe(2);
  });

  it('writes log2 bucket counts as cumulative le buckets in base units, the same whether observed or read as buckets', () => {
    const r = new SeriesRegistry(new ZeroHold(0));
    const buckets = { lowPow: 3, highPow: 6, step: 1, scale: 1e-6 };
    const a = r.histogram('a_seconds', 'a', ['d'], buckets);
    const b = r.histogram('b_seconds', 'b', ['d'], buckets);
    const values = [0.5, 7, 8, 40, 63, 64, 100];
    for (const v of values) a.observe(['x'], v);
    const log2 = new Array<number>(65).fill(0);
    // Bucket k holds [2^(k-1), 2^k): 0.5 -> 0, 7 -> 3, 8 -> 4, 40 -> 6, 63 -> 6, 64 -> 7, 100 -> 7.
    for (const k of [0, 3, 4, 6, 6, 7, 7]) log2[k]++;
    b.observeBuckets(['x'], log2, values.reduce((x, y) => x + y, 0));
    const s = samples(r.expose());
    expect(s['a_seconds_bucket{d="x",le="0.000008"}']).toBe(2); // 0.5 and 7 are below 8 us
    expect(s['a_seconds_bucket{d="x",le="0.000016"}']).toBe(3);
    expect(s['a_seconds_bucket{d="x",le="0.000032"}']).toBe(3);
    expect(s['a_seconds_bucket{d="x",le="0.000064"}']).toBe(5);
    expect(s['a_seconds_bucket{d="x",le="+Inf"}']).toBe(7);
    expect(s['a_seconds_count{d="x"}']).toBe(7);
    expect(s['a_seconds_sum{d="x"}']).toBeCloseTo(282.5e-6, 12);
    for (const [k, v] of Object.entries(s)) if (k.startsWith('a_')) expect(s[k.replace('a_', 'b_')]).toBe(v);
  });

  it('escapes label values and leaves empty ones out', () => {
    const r = new SeriesRegistry(new ZeroHold(0));
    r.counter('z_total', 'help with \\ and\nnewline', ['a', 'b']).inc(['q"u\\o\nte', ''], 1);
    expect(r.expose()).toBe('# HELP z_total help with \\\\ and\\nnewline\n# TYPE z_total counter\nz_total{a="q\\"u\\\\o\\nte"} 1\n');
  });
});

describe('netbpf metrics', () => {
  it('label endpoints with their address and port apart, IPv6 too', () => {
    const m = new NetbpfMetrics({ by: { kind: 'endpoint' }, holdMs: 0 });
    m.connect('10.0.0.2:443', 'ok', null, 120);
    m.connect('[fd00::2]:80', 'refused', null);
    const s = samples(m.series.expose());
    expect(s['netbpf_connect_attempts_total{destination="10.0.0.2:443",address="10.0.0.2",port="443",result="ok"}']).toBe(1);
    expect(s['netbpf_connect_attempts_total{destination="[fd00::2]:80",address="fd00::2",port="80",result="refused"}']).toBe(1);
  });

  it('take counts and histograms read in bulk (in-kernel aggregation) into the same series as single events', () => {
    const one = new NetbpfMetrics({ by: { kind: 'addr' }, holdMs: 0 });
    const bulk = new NetbpfMetrics({ by: { kind: 'addr' }, holdMs: 0 });
    const latencies = [40, 90, 3000], durations = [2, 700];
    for (const l of latencies) one.connect('10.0.0.2', 'ok', null, l);
    for (const d of durations) one.closed('10.0.0.2', 'fin', null, d, null);
    const log2 = (vs: number[]) => { const a = new Array<number>(65).fill(0); for (const v of vs) a[32 - Math.clz32(v)]++; return { log2: a, sum: vs.reduce((x, y) => x + y, 0) }; };
    bulk.connect('10.0.0.2', 'ok', null, log2(latencies), 3);
    bulk.closed('10.0.0.2', 'fin', null, log2(durations), null, 2);
    expect(bulk.series.expose()).toBe(one.series.expose());
  });

  it('delete an evicted destination\'s series in every family and count the eviction; other destinations keep theirs', () => {
    let t = 0;
    const m = new NetbpfMetrics({ by: { kind: 'addr' }, maxSeries: 2, evictIdleMs: 1000, holdMs: 0, now: () => t });
    m.connect('10.0.0.1', 'ok', null, 50);
    m.retransmitted('10.0.0.1', 'rto', 4, null);
    m.drops('10.0.0.1', 'NETFILTER_DROP', 'received', 2, 120);
    m.closed('10.0.0.1', 'fin', null, 10, 80);
    t = 500;
    m.connect('10.0.0.2', 'refused', null);
    m.connect('10.0.0.3', 'refused', null); // both slots active: "other"
    t = 1200;
    m.connect('10.0.0.4', 'timeout', null); // 10.0.0.1 idle 1.2 s: evicted
    m.slotCounters();
    const s = samples(m.series.expose());
    expect(Object.keys(s).filter((k) => k.includes('10.0.0.1'))).toEqual([]);
    expect(s['netbpf_connect_attempts_total{destination="10.0.0.2",result="refused"}']).toBe(1);
    expect(s['netbpf_connect_attempts_total{destination="other",result="refused"}']).toBe(1);
    expect(s['netbpf_connect_attempts_total{destination="10.0.0.4",result="timeout"}']).toBe(1);
    expect(s.netbpf_destinations_evicted_total).toBe(1);
    expect(s.netbpf_destinations_folded_total).toBe(1);
  });
});

describe('diagnoses', () => {
  it('are what top\'s engine says about each window, published when it closes; an empty window clears them', () => {
    const m = new NetbpfMetrics({ by: { kind: 'endpoint' }, holdMs: 0 });
    const w = new DiagnosisWindow({ by: { kind: 'endpoint' }, sockets: null });
    const refused: ConnectEvent = { ...base, type: 'failed', failure: 'refused', err: 111, error: 'ECONNREFUSED', elapsedUs: 80, rstReceived: true, beforeSyn: false, localPorts: null, synRetrans: 0 };
    w.addConnect(refused);
    w.addConnect({ ...refused, sport: 40001, connId: 8 });
    m.diagnoses(w.close());
    const s = samples(m.series.expose());
    const key = Object.keys(s).find((k) => k.startsWith('netbpf_diagnosis{'));
    expect(key).toMatch(/^netbpf_diagnosis\{destination="10\.0\.0\.2:80",address="10\.0\.0\.2",port="80",code="refused",severity="critical",confidence="(high|medium)"\}$/);
    expect(s[key!]).toBe(2);
    m.diagnoses(w.close());
    expect(Object.keys(samples(m.series.expose())).filter((k) => k.includes('diagnosis'))).toEqual([]);
  });
});

describe('conntrack table pressure', () => {
  it('is exported per watched namespace, and a namespace no longer watched takes its series with it', () => {
    const m = new NetbpfMetrics({ by: { kind: 'addr' }, holdMs: 0 });
    const table = (netns: number, name: string | null, count: number) => ({ netns, name, count, max: 1024, drop: 3, earlyDrop: 1, insertFailed: 0, invalid: 0 });
    m.conntrack([table(11, 'web', 700), table(12, null, 5)]);
    let s = samples(m.series.expose());
    expect(s['netbpf_conntrack_entries{netns="11",netns_name="web"}']).toBe(700);
    expect(s['netbpf_conntrack_entries_limit{netns="12"}']).toBe(1024);
    expect(s['netbpf_conntrack_stat_drop_total{netns="11",netns_name="web"}']).toBe(3);
    m.conntrack([table(11, 'web', 650)]);
    s = samples(m.series.expose());
    expect(s['netbpf_conntrack_entries{netns="11",netns_name="web"}']).toBe(650);
    expect(Object.keys(s).filter((k) => k.includes('netns="12"'))).toEqual([]);
  });
});

describe('TCP connections by state', () => {
  const counts = (netns: number, name: string | null, states: Array<[TcpState, number]>) => ({ netns, name, states: new Map(states), elapsedMs: 1, error: null });
  const failed = (netns: number, name: string | null) => ({ netns, name, states: null, elapsedMs: 1, error: 'open network namespace /run/netns/x: No such file or directory' });

  it('are set per namespace and state at each read; a failed read removes that namespace\'s counts and counts an error', () => {
    const m = new NetbpfMetrics({ by: { kind: 'addr' }, holdMs: 0 });
    m.tcpConnections([counts(1, null, [['ESTABLISHED', 4], ['LISTEN', 2]]), counts(2, 'web', [['TIME_WAIT', 7]])]);
    let s = samples(m.series.expose());
    expect(s['netbpf_tcp_connections{netns="1",state="ESTABLISHED"}']).toBe(4);
    expect(s['netbpf_tcp_connections{netns="2",netns_name="web",state="TIME_WAIT"}']).toBe(7);
    expect(s['netbpf_tcp_connections_read_errors_total{netns="2",netns_name="web"}']).toBe(0);
    m.tcpConnections([counts(1, null, [['ESTABLISHED', 1], ['LISTEN', 2]]), failed(2, 'web')]);
    s = samples(m.series.expose());
    expect(s['netbpf_tcp_connections{netns="1",state="ESTABLISHED"}']).toBe(1);
    expect(Object.keys(s).filter((k) => k.startsWith('netbpf_tcp_connections{') && k.includes('netns="2"'))).toEqual([]);
    expect(s['netbpf_tcp_connections_read_errors_total{netns="2",netns_name="web"}']).toBe(1);
    m.tcpConnections([counts(1, null, [['ESTABLISHED', 1]]), counts(2, 'web', [['TIME_WAIT', 3]])]);
    s = samples(m.series.expose());
    expect(s['netbpf_tcp_connections{netns="2",netns_name="web",state="TIME_WAIT"}']).toBe(3);
    expect(s['netbpf_tcp_connections_read_errors_total{netns="2",netns_name="web"}']).toBe(1);
    m.tcpConnections([counts(1, null, [['ESTABLISHED', 1]])]);
    expect(Object.keys(samples(m.series.expose())).filter((k) => k.includes('netns="2"'))).toEqual([]);
  });

  it('are not deleted when conntrack stops watching the same namespace', () => {
    const m = new NetbpfMetrics({ by: { kind: 'addr' }, holdMs: 0 });
    const table = (netns: number) => ({ netns, name: null, count: 1, max: 1024, drop: 0, earlyDrop: 0, insertFailed: 0, invalid: 0 });
    m.conntrack([table(5)]);
    m.tcpConnections([counts(5, null, [['LISTEN', 1]])]);
    m.conntrack([]);
    expect(samples(m.series.expose())['netbpf_tcp_connections{netns="5",state="LISTEN"}']).toBe(1);
  });

  it('count this process\'s namespace once even when --netns names it, and report a failing namespace once per message', async () => {
    const errors: string[] = [];
    let fail = true;
    const census = new TcpStateCensus([`/proc/${process.pid}/ns/net`], {
      onError: (ns, message) => errors.push(`${ns.netns} ${message}`),
      count: async (path) => {
        if (path !== null) throw new Error('no');
        if (fail) { fail = false; throw new Error('EPERM'); }
        return { netns: ownNetns(), states: new Map([['LISTEN', 2]]), elapsedMs: 0.1 };
      },
    });
    // The caller's own namespace named in --netns is counted once, as this process's.
    expect(census.namespaces().map((n) => n.netns)).toEqual([ownNetns()]);
    const first = await census.read();
    expect(first).toEqual([expect.objectContaining({ netns: ownNetns(), states: null, error: 'EPERM' })]);
    const second = await census.read();
    expect(second[0].states?.get('LISTEN')).toBe(2);
    expect(errors).toEqual([`${ownNetns()} EPERM`]);
  });
});

describe('scrape connections', () => {
  it('are the accepted side of the listening port, and connects to it on our loopback or our addresses, nothing else', () => {
    const s = new ScrapeTraffic(4026531840, '0.0.0.0', 9464);
    expect(s.is(4026531840, 9464, '10.9.0.7', 51000)).toBe(true); // a remote Prometheus, accepted here
    expect(s.is(4026531840, 51000, '127.0.0.1', 9464)).toBe(true); // a local Prometheus connecting
    expect(s.is(4026531841, 9464, '10.9.0.7', 51000)).toBe(false); // another namespace's port 9464
    expect(s.is(4026531840, 51000, '10.9.0.8', 9464)).toBe(false); // another host's exporter
    const bound = new ScrapeTraffic(4026531840, '10.1.1.1', 9464);
    expect(bound.is(4026531840, 51000, '10.1.1.1', 9464)).toBe(true);
    expect(bound.is(4026531840, 51000, '10.1.1.2', 9464)).toBe(false);
    expect(bound.is(4026531841, 51000, '10.1.1.1', 9464)).toBe(true); // another namespace (a Prometheus pod) to our address
    expect(s.is(4026531841, 51000, '127.0.0.1', 9464)).toBe(false); // another namespace's own loopback
  });
});

const base = { time: Date.now(), family: 4 as const, saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80, pid: 1, comm: 'c', netns: 0, cgroupId: 0, connId: 7 };
const established: ConnectEvent = { ...base, type: 'established', synRetrans: 0, latencyUs: 90 };
const retransmit = (totalRetrans: number, segsOut: number, err = 0): RetransEvent => ({ ...base, type: 'retransmit', state: 'ESTABLISHED', kind: 'rto', caState: 'loss', segs: 1, totalRetrans, segsOut, retransmits: 1, srttUs: 300, err });
const lifeBase = { ...base, direction: 'connect' as const, ownerSource: 'connect' as const, txBytes: 5000, rxBytes: 100, bytesAcked: 5002, bytesReceived: 102, segsIn: 20, srttUs: 250 };
const closed = (totalRetrans: number, segsOut: number, over: Partial<LifeEvent> = {}): LifeEvent => ({ ...lifeBase, type: 'closed', totalRetrans, segsOut, durationMs: 30, established: true, closedFrom: 'FIN_WAIT2', reason: 'fin', skErr: 0, error: '', rstSent: false, rstReceived: false, ...over } as LifeEvent);
const drop = (direction: 'received' | 'sent', len: number): DropEvent => ({
  type: 'drop', time: Date.now(), reason: 'NETFILTER_DROP', reasonCode: 5, category: 'drop', family: 4, l3Proto: 0x800, proto: 'tcp', protoNum: 6,
  saddr: direction === 'received' ? '10.0.0.2' : '10.0.0.1', sport: direction === 'received' ? 80 : 40000, daddr: direction === 'received' ? '10.0.0.1' : '10.0.0.2', dport: direction === 'received' ? 40000 : 80,
  direction, remoteAddr: '10.0.0.2', remotePort: 80, addressSource: 'packet', tcpFlags: 'ACK', state: null, len, netns: 0, ifindex: 2, location: '', stack: [],
});

/** An exporter over a stand-in session that replays the given batches. */
async function exporterFor(batches: Array<[TopToolName, unknown[]]>, dropHoldMs = 0): Promise<Record<string, number>> {
  const listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
  const session = { aggregator: { by: { kind: 'addr' } }, onEvents: (l: (tool: TopToolName, e: unknown[]) => void) => { listeners.push(l); return session; }, onBulk: () => session, refresh: () => undefined, kernel: false, counters: () => ({}) } as unknown as TopSession;
  const exporter = new PrometheusExporter(session, { processMetrics: false, scrapeIntervalMs: 0, dropHoldMs, sockets: null }).attach();
  for (const [tool, events] of batches) for (const l of listeners) l(tool, events);
  await exporter.close();
  return samples(await exporter.metrics());
}

describe('the event feed', () => {
  it('counts segments sent for the first time (segs_out less total_retrans) as they grow, and retransmits the kernel counted', async () => {
    const s = await exporterFor([
      ['connect', [established]],
      ['retrans', [retransmit(1, 11), retransmit(2, 30), retransmit(3, 31, -16)]], // the last one EBUSY: not sent, not counted
      ['life', [closed(3, 53)]],
    ]);
    expect(s['netbpf_sent_segments_total{destination="10.0.0.2"}']).toBe(50);
    expect(s['netbpf_retransmitted_segments_total{destination="10.0.0.2",kind="rto"}']).toBe(2);
    expect(s['netbpf_bytes_total{destination="10.0.0.2",direction="sent"}']).toBe(5000);
    expect(s['netbpf_bytes_total{destination="10.0.0.2",direction="received"}']).toBe(100);
    expect(s['netbpf_rtt_seconds_count{destination="10.0.0.2"}']).toBe(1);
    expect(s['netbpf_connections_closed_total{destination="10.0.0.2",reason="fin"}']).toBe(1);
  });

  it('counts a connection once when one of its records arrives after its close (tools deliver batches independently)', async () => {
    const s = await exporterFor([['life', [closed(3, 53)]], ['retrans', [retransmit(2, 30)]]]);
    expect(s['netbpf_sent_segments_total{destination="10.0.0.2"}']).toBe(50);
  });

  it('counts SYNs dropped before a connect times out for its destination, known from its SYN retransmits', async () => {
    const syn: DropEvent = { ...drop('received', 60), saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80, remoteAddr: '10.0.0.1', remotePort: 40000, tcpFlags: 'SYN' };
    const s = await exporterFor([['drops', [syn]], ['retrans', [{ ...retransmit(1, 2), kind: 'syn' }]]], 60_000);
    expect(s['netbpf_drops_total{destination="10.0.0.2",reason="NETFILTER_DROP",direction="received"}']).toBe(1);
  });

  it('counts drops with their direction and bytes', async () => {
    const s = await exporterFor([['connect', [established]], ['drops', [drop('received', 1500), drop('received', 60), drop('sent', 52)]]]);
    expect(s['netbpf_drops_total{destination="10.0.0.2",reason="NETFILTER_DROP",direction="received"}']).toBe(2);
    expect(s['netbpf_dropped_bytes_total{destination="10.0.0.2",reason="NETFILTER_DROP",direction="received"}']).toBe(1560);
    expect(s['netbpf_drops_total{destination="10.0.0.2",reason="NETFILTER_DROP",direction="sent"}']).toBe(1);
  });

  it('leaves the exporter\'s own scrape connections out once it listens', async () => {
    const netns = statSync('/proc/self/ns/net').ino;
    // The accepted side of a scrape: local port = the exporter's (found after listen: port 0 is chosen by the kernel).
    const listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
    const session = { aggregator: { by: { kind: 'addr' } }, onEvents: (l: (tool: TopToolName, e: unknown[]) => void) => { listeners.push(l); return session; }, onBulk: () => session, refresh: () => undefined, kernel: false, counters: () => ({}) } as unknown as TopSession;
    const exporter = new PrometheusExporter(session, { processMetrics: false, scrapeIntervalMs: 0, sockets: null }).attach();
    const { port } = await exporter.listen('127.0.0.1', 0);
    const scrapeAccepted = closed(0, 4, { direction: 'accept', netns, saddr: '127.0.0.1', sport: port, daddr: '127.0.0.1', dport: 50123 });
    const scrapeConnect: ConnectEvent = { ...established, netns, saddr: '127.0.0.1', sport: 50123, daddr: '127.0.0.1', dport: port };
    const realConnect: ConnectEvent = { ...established, netns, daddr: '127.0.0.1', dport: port + 1 };
    for (const l of listeners) { l('life', [scrapeAccepted]); l('connect', [scrapeConnect, realConnect]); }
    await exporter.close();
    const s = samples(await exporter.metrics());
    expect(s['netbpf_connect_attempts_total{destination="127.0.0.1",result="ok"}']).toBe(1);
    expect(Object.keys(s).filter((k) => k.startsWith('netbpf_connections_closed_total'))).toEqual([]);
  });
});

describe('listen address', () => {
  it('parses listen addresses, loopback by default, and rejects bad ones', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseListenAddress(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListenAddress('9100')).toEqual({ host: '127.0.0.1', port: 9100 });
    for (const bad of ['localhost', '1.2.3.4:99999', '[::1]', 'a:b']) expect(() => parseListenAddress(bad)).toThrow(/invalid listen address/);
  });
});
