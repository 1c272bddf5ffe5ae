/**
 * Every JSON line type of every tool against docs/schema/*.json: events decoded from records laid out as the
 * BPF structs (each tool's decoder) and written by the CLI's JSON functions, summaries from each aggregator,
 * start and counters lines. The real CLIs' output is checked the same way in test/integration/json-schema.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SchemaSet } from '../../src/testing/schema.js';
import { ClockMapper, type Layout } from '../../src/core/record.js';
import { decodeRetrans, RETRANS_LAYOUT, RetransAggregator } from '../../src/tools/retrans/index.js';
import { decodeDrop, DROPS_LAYOUT, DropReasons, DropsAggregator } from '../../src/tools/drops/index.js';
import { decodeLife, LIFE_LAYOUT, LifeAggregator } from '../../src/tools/life/index.js';
import { decodeConnect, CONNECT_LAYOUT, ConnectAggregator, connectEventJson } from '../../src/tools/connect/index.js';
import { decodeConntrack, CONNTRACK_LAYOUT, ConntrackAggregator } from '../../src/tools/conntrack/index.js';
import { TopAggregator } from '../../src/tools/top/index.js';
import { retransEventJson as retransJson } from '../../src/tools/retrans/index.js';
import { dropJson } from '../../src/tools/drops/index.js';
import { ListenQueueCounters } from '../../src/core/listen-queue.js';
import { lifeEventJson } from '../../src/tools/life/index.js';
import { conntrackEventJson as conntrackJson } from '../../src/tools/conntrack/index.js';

const schemas = new SchemaSet();
const valid = (tool: string, line: unknown) => expect(schemas.validateLine(tool, JSON.parse(JSON.stringify(line)))).toEqual([]);

/** A record laid out like the BPF struct: numbers by field name, IPv4-mapped addresses for *addr/src/dst fields. */
function record(layout: Layout, values: Record<string, number | string>): DataView {
  const buf = new ArrayBuffer(layout.size);
  const view = new DataView(buf);
  for (const [name, v] of Object.entries(values)) {
    const [off, size] = (layout.fields as Record<string, readonly [number, number]>)[name];
    if (typeof v === 'string' && size === 16 && /^\d+\.\d+\.\d+\.\d+$/.test(v)) {
      new Uint8Array(buf, off, 16).set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v.split('.').map(Number)]);
    } else if (typeof v === 'string') {
      new Uint8Array(buf, off, size).set(Buffer.from(v).subarray(0, size - 1));
    } else if (size === 8) view.setBigUint64(off, BigInt(v), true);
    else if (size === 4) view.setUint32(off, v >>> 0, true);
    else if (size === 2) view.setUint16(off, v, true);
    else view.setUint8(off, v);
  }
  return view;
}
const clock = new ClockMapper();
const ns = (ms: number) => Math.round(Number(process.hrtime.bigint()) - ms * 1e6);
const tcp4 = { family: 2, saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 40000, dport: 443, netns: 4026531840, pid: 42, comm: 'curl', cgroup_id: 7 };

describe('JSON lines follow docs/schema', () => {
  it('start and counters lines', () => {
    valid('retrans', { type: 'start', tool: 'retrans', time: Date.now(), startupMs: 12.5, hooks: [{ feature: 'retransmits', hook: 'tp_btf/tcp_retransmit_skb', program: 'p', programs: ['p'], skipped: [] }, { feature: 'x', hook: null, program: null, programs: [], skipped: ['kprobe/x: no kprobes'], unavailable: 'kernel' }] });
    valid('retrans', { type: 'counters', tool: 'retrans', time: Date.now(), events: 1, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0 });
    expect(schemas.validateLine('retrans', { type: 'counters', tool: 'retrans', time: 1, events: 1.5, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0, extra: 1 })).toEqual(['$.events: expected integer, got number', '$: unexpected field extra']);
  });

  it('retrans: retransmit events and summaries', () => {
    const e = decodeRetrans(record(RETRANS_LAYOUT, { ...tcp4, ts_ns: ns(1), srtt_us: 800, segs: 2, total_retrans: 3, segs_out: 100, state: 1, kind: 1, ca_state: 4, retransmits: 1 }), 0, clock);
    valid('retrans', retransJson(e));
    const a = new RetransAggregator();
    a.add(e);
    valid('retrans', { ...a.snapshot(), final: true, lost: 0, recursionMisses: 0, droppedByConsumer: 0 });
  });

  it('drops: drop events (with and without a stack) and summaries', () => {
    const reasons = new DropReasons([['SKB_DROP_REASON_NOT_SPECIFIED', 2], ['SKB_DROP_REASON_NETFILTER_DROP', 9]]);
    const e = decodeDrop(record(DROPS_LAYOUT, { ts_ns: ns(1), saddr: '10.0.0.2', daddr: '10.0.0.1', sport: 443, dport: 40000, family: 2, l3_proto: 0x800, l4_proto: 6, reason: 9, len: 60, tcp_flags: 0x12, flags: 1 | 4, netns: 1, ifindex: 2 }), 0, { clock, reasons, symbolize: () => 'nft_do_chain+0x3e8', stack: () => ['a', 'b'] });
    valid('drops', dropJson(e));
    valid('drops', dropJson({ ...e, stack: ['nft_do_chain', 'nf_hook_slow'] }));
    const unknown = decodeDrop(record(DROPS_LAYOUT, { ts_ns: ns(1), reason: 2 }), 0, { clock, reasons, symbolize: () => '' });
    valid('drops', dropJson(unknown));
    const a = new DropsAggregator();
    a.add(e);
    a.add(unknown);
    valid('drops', { ...a.snapshot(), final: false, lost: 0, recursionMisses: 0, droppedByConsumer: 0 });
    // Summary-only runs: remote views from the kernel's top talkers (countMax), listen-queue counters.
    const k = new DropsAggregator({ listenQueue: new ListenQueueCounters(() => 'TcpExt: SyncookiesSent ListenDrops\nTcpExt: 5 1\n') });
    k.addDestinationBulk(e, { count: 3, bytes: 180, lenLog2: [0, 0, 0, 0, 0, 0, 3], minLen: 60, maxLen: 60, firstSeen: 1, lastSeen: 2 });
    k.setRemoteCounts('addresses', { total: 3, rows: [{ event: e, count: 2, countMax: 3, bytes: 120, firstSeen: 1, lastSeen: 2 }] });
    const ks = k.snapshot();
    expect(ks.byAddress.map((r) => [r.key, r.count, r.countMax])).toEqual([['10.0.0.2 NETFILTER_DROP', 2, 3], ['other', 1, undefined]]);
    expect(ks.listen).toEqual({ cookiesSent: 0, cookiesFailed: 0, synQueueDrops: 0, acceptQueueOverflows: 0, listenDrops: 0 });
    valid('drops', { ...ks, final: true, lost: 0, recursionMisses: 0, droppedByConsumer: 0 });
  });

  it('life: established and closed events and summaries', () => {
    const base = { ...tcp4, ts_ns: ns(1), birth_ns: ns(20), established_ns: ns(19), bytes_acked: 1001, bytes_received: 301, srtt_us: 50, segs_out: 10, segs_in: 8, direction: 1, owner_source: 1 };
    const est = decodeLife(record(LIFE_LAYOUT, { ...base, kind: 1, old_state: 2 }), 0, clock);
    const closed = decodeLife(record(LIFE_LAYOUT, { ...base, kind: 2, old_state: 9, flags: 4 }), 0, clock);
    expect([est.type, closed.type]).toEqual(['established', 'closed']);
    valid('life', lifeEventJson(est));
    valid('life', lifeEventJson(closed));
    const a = new LifeAggregator();
    a.add(est);
    a.add(closed);
    valid('life', { ...a.snapshot(), final: true, untracked: 0, lost: 0, recursionMisses: 0, droppedByConsumer: 0 });
  });

  it('connect: established and failed events and summaries', () => {
    const ok = decodeConnect(record(CONNECT_LAYOUT, { ...tcp4, ts_ns: ns(1), start_ns: ns(2), kind: 1 }), 0, clock);
    const failed = decodeConnect(record(CONNECT_LAYOUT, { ...tcp4, ts_ns: ns(1), start_ns: ns(3001), kind: 2, err: 110, syn_retrans: 2 }), 0, clock);
    expect([ok.type, failed.type]).toEqual(['established', 'failed']);
    // The connect CLI writes each event through connectEventJson (ISO time, no in-process connId).
    for (const e of [ok, failed]) valid('connect', connectEventJson(e));
    const a = new ConnectAggregator();
    a.add(ok);
    a.add(failed);
    valid('connect', { ...a.snapshot(), final: true, lost: 0, recursionMisses: 0, droppedByConsumer: 0 });
  });

  it('conntrack: new and destroy events, pressure lines and summaries', () => {
    const f = { family: 2, protocol: 6, orig_src: '10.0.0.1', orig_dst: '10.96.0.1', orig_sport: 40000, orig_dport: 80, reply_src: '10.0.0.9', reply_dst: '10.0.0.1', reply_sport: 8080, reply_dport: 40000, tcp_state: 3, ts_ns: ns(1) };
    const created = decodeConntrack(record(CONNTRACK_LAYOUT, { ...f, kind: 1 }), 0, clock, []);
    const destroyed = decodeConntrack(record(CONNTRACK_LAYOUT, { ...f, kind: 2 }), 0, clock, []);
    valid('conntrack', conntrackJson(created));
    valid('conntrack', conntrackJson({ ...destroyed, packets: [3, 2], bytes: [180, 120], lifetimeMs: 12.5 }));
    valid('conntrack', { type: 'pressure', time: Date.now(), netns: 4026531840, name: null, count: 10, max: 65536, drop: 0, earlyDrop: 0, insertFailed: 0, invalid: 0, sysctls: { acct: false, timestamp: null, events: 2 } });
    valid('conntrack', { type: 'netns', time: Date.now(), change: 'watched', namespaces: [{ netns: 4026531840, path: '/proc/self/ns/net', name: null, pids: [1] }, { netns: 4026532300, path: '/run/netns/a', name: 'a', pids: [] }] });
    valid('conntrack', { type: 'netns', time: Date.now(), change: 'added', namespaces: [], failed: [{ netns: 4026532301, path: '/proc/77/ns/net', error: 'gone' }] });
    const a = new ConntrackAggregator();
    a.add(created);
    a.add(destroyed);
    const pressure = [{ netns: 4026531840, name: 'a', count: 1, max: 262144, drop: 0, earlyDrop: 0, insertFailed: 0, invalid: 0 }];
    const netlink = { received: { new: 1, destroy: 1 }, lost: { new: 0, destroy: 0 }, retried: 3, duplicates: 0, recoveredAtStop: 0, malformed: 0 };
    valid('conntrack', { ...a.snapshot(pressure), final: true, lost: 0, recursionMisses: 0, droppedByConsumer: 0, netlink });
    valid('conntrack', { ...a.snapshot(), final: true, lost: 0, recursionMisses: 0, droppedByConsumer: 0, netlink: null });
    valid('conntrack', { type: 'counters', tool: 'conntrack', time: Date.now(), events: 2, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0, sourceLost: 0, sourceRetried: 5 });
  });

  it('top: snapshots with rows, diagnoses and per-tool counters', () => {
    const a = new TopAggregator({ conntrack: true });
    a.addConnect(decodeConnect(record(CONNECT_LAYOUT, { ...tcp4, ts_ns: ns(1), start_ns: ns(3001), kind: 2, err: 110 }), 0, clock));
    a.addRetrans(decodeRetrans(record(RETRANS_LAYOUT, { ...tcp4, ts_ns: ns(1), segs: 5, total_retrans: 5, segs_out: 10, state: 1, kind: 1 }), 0, clock));
    const c = { events: 2, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0 };
    valid('top', { ...a.snapshot(), final: true, sort: 'health', counters: { retrans: c, connect: c } });
  });
});
