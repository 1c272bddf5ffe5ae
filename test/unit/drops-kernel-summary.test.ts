/** Summary-only drops counted in the kernel: turning dumps of the per-CPU view maps (`drop_dest*` exact,
 * `drop_top_*` top talkers) into the same DropsSummary the event path builds. Runs anywhere (dumps built byte by
 * byte from the shared layouts). */
import { describe, expect, it } from 'vitest';
import {
  decodeDrop, DropReasons, DropsAggregator, KernelDropsReader, DROPS_VIEW_KEY_LAYOUT, DROPS_AGG_VALUE_LAYOUT, DROPS_LAYOUT, DROP_FLAGS,
  DROPS_TOP_BUCKET_LAYOUT, DROPS_TOP_SLOT_LAYOUT, DROPS_DEST_BUCKET_LAYOUT, DROPS_DEST_SLOT_LAYOUT, destinationDump,
  type DropDecodeContext, type DropEvent,
} from '../../src/tools/drops/index.js';
import { DROP_AGG_CONSTS } from '../../src/tools/drops/bpf.gen.js';
import { Log2Histogram } from '../../src/core/histogram.js';
import { ClockMapper } from '../../src/core/record.js';

const K = DROPS_VIEW_KEY_LAYOUT.fields;
const V = DROPS_AGG_VALUE_LAYOUT.fields;
const E = DROPS_LAYOUT.fields;
const reasons = new DropReasons([['SKB_DROP_REASON_NOT_SPECIFIED', 2], ['SKB_DROP_REASON_NO_SOCKET', 3], ['SKB_DROP_REASON_NETFILTER_DROP', 12]]);
const PURGE_AT = 0xffffffff81b00020n;
const symbols = new Map<bigint, string>([[PURGE_AT, 'udp_destruct_common+0x20']]);
const clock = new ClockMapper();
const ctx: DropDecodeContext = { clock, reasons, symbolize: (hi, lo) => symbols.get((BigInt(hi) << 32n) | BigInt(lo)) ?? '' };
const OTHER = DROP_AGG_CONSTS.DROP_AGG_OTHER;

interface Key { saddr?: number[]; daddr?: number[]; sport?: number; dport?: number; reason: number; flags: number; l4?: number; location?: bigint }
const v4 = (a: number[]) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a];


/** One CPU's slot of a per-CPU value as the BPF program leaves it after counting `lens` (times in ns of ktime). */
function cpuValue(lens: number[], firstNs = 1e9, lastNs = 2e9): Buffer {
  const b = Buffer.alloc(DROPS_AGG_VALUE_LAYOUT.stride);
  if (!lens.length) return b;
  b.writeBigUInt64LE(BigInt(lens.length), V.count[0]);
  b.writeBigUInt64LE(BigInt(lens.reduce((a, l) => a + l, 0)), V.bytes[0]);
  b.writeBigUInt64LE(BigInt(firstNs), V.first_ns[0]);
  b.writeBigUInt64LE(BigInt(lastNs), V.last_ns[0]);
  b.writeUInt32LE(Math.min(...lens), V.min_len[0]);
  b.writeUInt32LE(Math.max(...lens), V.max_len[0]);
  for (const l of lens) {
    const o = V.len_log2[0] + Log2Histogram.bucketOf(l) * 8;
    b.writeBigUInt64LE(b.readBigUInt64LE(o) + 1n, o);
  }
  return b;
}

/** The destination view's key of a drop (the packet's daddr:dport). */
function destKey(k: Key): Buffer {
  const b = Buffer.alloc(DROPS_VIEW_KEY_LAYOUT.size);
  if (k.daddr) b.set(v4(k.daddr), K.addr[0]);
  b.writeBigUInt64LE(k.location ?? 0n, K.location[0]);
  b.writeUInt32LE(k.reason, K.reason[0]);
  b.writeUInt16LE(k.flags & OTHER ? 0 : 2, K.family[0]);
  b.writeUInt16LE(k.dport ?? 0, K.port[0]);
  b.writeUInt8(k.flags & OTHER ? 0 : k.l4 ?? 17, K.l4_proto[0]);
  b.writeUInt8(k.flags, K.flags[0]);
  return b;
}

/** A mapDump of a per-CPU map: packed keys, and per key one value slot per CPU. */
function dump(entries: Array<[Buffer, Buffer[]]>) {
  return { count: entries.length, keys: Buffer.concat(entries.map(([k]) => k)), values: Buffer.concat(entries.flatMap(([, v]) => v)) };
}

/** The event the kernel would have sent for a drop of this key (what the event path aggregates). */
function eventOf(k: Key, len: number, timeNs: number): DropEvent {
  const r = Buffer.alloc(DROPS_LAYOUT.size);
  if (k.saddr) r.set(v4(k.saddr), E.saddr[0]);
  if (k.daddr) r.set(v4(k.daddr), E.daddr[0]);
  r.writeBigUInt64LE(BigInt(timeNs), E.ts_ns[0]);
  r.writeBigUInt64LE(k.location ?? 0n, E.location[0]);
  r.writeUInt32LE(k.reason, E.reason[0]);
  r.writeUInt32LE(len, E.len[0]);
  r.writeInt32LE(-1, E.stack_id[0]);
  r.writeUInt16LE(2, E.family[0]);
  r.writeUInt16LE(k.sport ?? 0, E.sport[0]);
  r.writeUInt16LE(k.dport ?? 0, E.dport[0]);
  r.writeUInt8(k.l4 ?? 17, E.l4_proto[0]);
  r.writeUInt8(k.flags | DROP_FLAGS.DROP_F_HEADERS, E.flags[0]);
  return decodeDrop(new DataView(r.buffer, r.byteOffset, r.length), 0, ctx);
}

const sent: Key = { saddr: [10, 0, 0, 1], daddr: [10, 0, 0, 2], sport: 5000, dport: 53, reason: 12, flags: 0 };
const received: Key = { saddr: [10, 0, 0, 9], daddr: [10, 0, 0, 1], sport: 40000, dport: 80, reason: 3, flags: DROP_FLAGS.DROP_F_RECEIVED, l4: 6 };
const purge: Key = { saddr: [10, 0, 0, 1], daddr: [10, 0, 0, 3], sport: 6000, dport: 7000, reason: 2, flags: DROP_FLAGS.DROP_F_SOCK_TUPLE, location: PURGE_AT };

/** A remote view's key: the remote address (and port, protocol, flags for endpoints). */
function remoteKey(addr: number[], reason: number, endpoint?: { port: number; l4?: number; flags?: number }, location = 0n): Buffer {
  const b = Buffer.alloc(DROPS_VIEW_KEY_LAYOUT.size);
  b.set(v4(addr), K.addr[0]);
  b.writeBigUInt64LE(location, K.location[0]);
  b.writeUInt32LE(reason, K.reason[0]);
  b.writeUInt16LE(2, K.family[0]);
  if (endpoint) {
    b.writeUInt16LE(endpoint.port, K.port[0]);
    b.writeUInt8(endpoint.l4 ?? 17, K.l4_proto[0]);
    b.writeUInt8(endpoint.flags ?? 0, K.flags[0]);
  }
  return b;
}

interface Slot { key: Buffer; count: number; err?: number; bytes?: number; firstNs?: number; lastNs?: number }
const B = DROPS_TOP_BUCKET_LAYOUT, S = DROPS_TOP_SLOT_LAYOUT;

/** A dump of a top-talker map: per bucket, per CPU, its slots (as the BPF program leaves them). */
function topDump(buckets: Slot[][][]) {
  const keys = Buffer.alloc(4 * buckets.length);
  const values = Buffer.alloc(B.stride * buckets.reduce((n, cpus) => n + cpus.length, 0));
  let o = 0;
  buckets.forEach((cpus, i) => {
    keys.writeUInt32LE(i, i * 4);
    for (const slots of cpus) {
      slots.forEach((sl, j) => {
        values.writeBigUInt64LE(BigInt(sl.count), o + B.fields.count[0] + 8 * j);
        const so = o + B.fields.slots[0] + j * S.size;
        sl.key.copy(values, so + S.fields.key[0]);
        values.writeBigUInt64LE(BigInt(sl.err ?? 0), so + S.fields.err[0]);
        values.writeBigUInt64LE(BigInt(sl.bytes ?? 0), so + S.fields.bytes[0]);
        values.writeBigUInt64LE(BigInt(sl.firstNs ?? 1e9), so + S.fields.first_ns[0]);
        values.writeBigUInt64LE(BigInt(sl.lastNs ?? 2e9), so + S.fields.last_ns[0]);
      });
      o += B.stride;
    }
  });
  return { count: buckets.length, keys, values };
}

describe('KernelDropsReader (map dumps -> DropsSummary)', () => {
  it('gives the same destination rows, counts, bytes, histograms, categories and totals as aggregating the events, per-CPU values summed', () => {
    let t = 0;
    const now = () => t;
    const fromKernel = new DropsAggregator({ now });
    const fromEvents = new DropsAggregator({ now });
    const reader = new KernelDropsReader(fromKernel, ctx);
    // Two CPUs: the sent key on both, the received key on CPU 1 only, the purge on CPU 0.
    reader.ingest(dump([
      [destKey(sent), [cpuValue([64, 64, 100], 1e9, 2e9), cpuValue([1500], 1.5e9, 3e9)]],
      [destKey(received), [cpuValue([]), cpuValue([60, 60])]],
      [destKey(purge), [cpuValue([0, 4000]), cpuValue([])]],
    ]), 2);
    for (const l of [64, 64, 100, 1500]) fromEvents.add(eventOf(sent, l, 1e9));
    for (const l of [60, 60]) fromEvents.add(eventOf(received, l, 1e9));
    for (const l of [0, 4000]) fromEvents.add(eventOf(purge, l, 1e9));
    t = 2000;
    const a = fromKernel.snapshot(), b = fromEvents.snapshot();
    expect(reader.events).toBe(8);
    expect(a.totals).toEqual({ events: 8, drops: 6, purges: 2 });
    expect(a.totals).toEqual(b.totals);
    expect(a.byReason).toEqual(b.byReason);
    const strip = (rows: typeof a.byEndpoint) => rows.map(({ firstSeen, lastSeen, ...r }) => r);
    expect(strip(a.byDestination)).toEqual(strip(b.byDestination));
    expect(a.byDestination.find((r) => r.key === '10.0.0.2:53 NETFILTER_DROP')).toMatchObject({ count: 4, bytes: 1728, rate: 2, category: 'drop' });
    expect(a.byDestination.find((r) => r.key === '10.0.0.3:7000 NOT_SPECIFIED')?.category).toBe('purge');
    // First and last drop from the kernel's timestamps, across CPUs.
    const row = a.byDestination.find((r) => r.key === '10.0.0.2:53 NETFILTER_DROP')!;
    expect(row.firstSeen).toBeCloseTo(clock.toEpochMs(1e9), 6);
    expect(row.lastSeen).toBeCloseTo(clock.toEpochMs(3e9), 6);
    // Remote views are not fed by destination dumps: no rows until the top-talker maps are read.
    expect(a.byEndpoint).toEqual([]);
  });

  it('adds only what is new since the previous dump (the kernel counts cumulatively), so rates cover the interval', () => {
    let t = 0;
    const agg = new DropsAggregator({ now: () => t });
    const reader = new KernelDropsReader(agg, ctx);
    reader.ingest(dump([[destKey(sent), [cpuValue([64, 64])]]]), 1);
    t = 1000;
    expect(agg.snapshot().byDestination[0]).toMatchObject({ count: 2, rate: 2 });
    reader.ingest(dump([[destKey(sent), [cpuValue([64, 64, 64, 64, 200])]]]), 1);
    reader.ingest(dump([[destKey(sent), [cpuValue([64, 64, 64, 64, 200])]]]), 1); // unchanged: adds nothing
    t = 2000;
    const s = agg.snapshot();
    expect(s.byDestination[0]).toMatchObject({ count: 5, rate: 3, bytes: 456 });
    expect(s.byDestination[0].histograms.len).toMatchObject({ count: 5, sum: 456, min: 64, max: 200 });
    expect(reader.events).toBe(5);
  });

  it('joins the destination front (per-CPU array of slots) and the hash map: per CPU, a key counted in either', () => {
    const DB = DROPS_DEST_BUCKET_LAYOUT, DS = DROPS_DEST_SLOT_LAYOUT;
    // One front bucket, 2 CPUs: CPU 0 holds `sent` in slot 0; CPU 1's bucket was full of others, so `sent` went to
    // the hash map there; `received` is in CPU 1's front only. A slot being taken (count 0) is skipped.
    const other = (port: number) => destKey({ ...sent, dport: port });
    const front = { count: 1, keys: Buffer.alloc(4), values: Buffer.alloc(2 * DB.stride) };
    const slot = (cpu: number, way: number, key: Buffer, value: Buffer) => {
      const o = cpu * DB.stride + DB.fields.slots[0] + way * DS.size;
      key.copy(front.values, o + DS.fields.key[0]);
      value.copy(front.values, o + DS.fields.value[0], 0, DROPS_AGG_VALUE_LAYOUT.size);
    };
    slot(0, 0, destKey(sent), cpuValue([64, 64]));
    slot(0, 1, other(1), Buffer.alloc(DROPS_AGG_VALUE_LAYOUT.stride)); // being taken: no count yet
    slot(1, 0, other(2), cpuValue([10]));
    slot(1, 1, destKey(received), cpuValue([60]));
    slot(1, 2, other(3), cpuValue([10]));
    slot(1, 3, other(4), cpuValue([10]));
    const table = dump([[destKey(sent), [cpuValue([]), cpuValue([100, 100, 100])]]]);
    const agg = new DropsAggregator();
    new KernelDropsReader(agg, ctx).ingest(destinationDump(front, table, 2), 2);
    const rows = Object.fromEntries(agg.snapshot().byDestination.map((r) => [r.key, [r.count, r.bytes]]));
    expect(rows).toEqual({
      '10.0.0.2:53 NETFILTER_DROP': [5, 428], '10.0.0.1:80 NO_SOCKET': [1, 60],
      '10.0.0.2:2 NETFILTER_DROP': [1, 10], '10.0.0.2:3 NETFILTER_DROP': [1, 10], '10.0.0.2:4 NETFILTER_DROP': [1, 10],
    });
  });

  it('puts destinations the kernel folded (map full) into the destination "other" row, counted as folded, reason totals exact', () => {
    const agg = new DropsAggregator();
    const reader = new KernelDropsReader(agg, ctx);
    reader.ingest(dump([[destKey(sent), [cpuValue([64])]]]), 1);
    reader.ingest(dump([[destKey({ reason: 12, flags: OTHER }), [cpuValue([64, 64, 64])]]]), 1);
    const s = agg.snapshot();
    expect(s.totals.events).toBe(4);
    expect(s.folded.kernel).toBe(3);
    expect(s.byReason).toEqual([expect.objectContaining({ reason: 'NETFILTER_DROP', count: 4, share: 1 })]);
    expect(s.byDestination.map((r) => [r.key, r.count])).toEqual([['other', 3], ['10.0.0.2:53 NETFILTER_DROP', 1]]);
    expect(s.byDestination[0]).toMatchObject({ reason: '', addr: null, category: 'drop' });
  });

  it('names remote endpoints and addresses from the top-talker maps: without evictions exact (countMax = count), rows per remote side', () => {
    let t = 0;
    const agg = new DropsAggregator({ now: () => t });
    const reader = new KernelDropsReader(agg, ctx);
    reader.ingest(dump([[destKey(received), [cpuValue([60, 60, 60])]], [destKey(sent), [cpuValue([64])]]]), 1);
    const ep = remoteKey([10, 0, 0, 9], 3, { port: 40000, l4: 6, flags: DROP_FLAGS.DROP_F_RECEIVED });
    const ep2 = remoteKey([10, 0, 0, 2], 12, { port: 53 });
    // Two CPUs: the received endpoint's 3 drops split 2 + 1, in different slots; the sent one on CPU 0.
    reader.ingestTop('endpoints', topDump([
      [[{ key: ep, count: 2, bytes: 120 }, { key: ep2, count: 1, bytes: 64 }], [{ key: ep, count: 1, bytes: 60, lastNs: 3e9 }]],
    ]), 2);
    reader.ingestTop('addresses', topDump([
      [[{ key: remoteKey([10, 0, 0, 9], 3), count: 2, bytes: 120 }], []],
      [[{ key: remoteKey([10, 0, 0, 2], 12), count: 1, bytes: 64 }], [{ key: remoteKey([10, 0, 0, 9], 3), count: 1, bytes: 60 }]],
    ]), 2);
    t = 1000;
    const s = agg.snapshot();
    expect(s.byEndpoint.map((r) => [r.key, r.count, r.countMax, r.bytes])).toEqual([
      ['10.0.0.9:40000 NO_SOCKET', 3, 3, 180], ['10.0.0.2:53 NETFILTER_DROP', 1, 1, 64],
    ]);
    expect(s.byAddress.map((r) => [r.key, r.count, r.countMax, r.bytes])).toEqual([
      ['10.0.0.9 NO_SOCKET', 3, 3, 180], ['10.0.0.2 NETFILTER_DROP', 1, 1, 64],
    ]);
    expect(s.byEndpoint[0]).toMatchObject({ addr: '10.0.0.9', port: 40000, category: 'drop', rate: 3, share: 0.75 });
    expect(s.byEndpoint[0].lastSeen).toBeCloseTo(clock.toEpochMs(3e9), 6);
    expect(s.byAddress[0].port).toBeNull();
    expect(s.folded).toEqual({ endpoints: 0, addresses: 0, destinations: 0 });
  });

  it('after evictions: count is the exact part, countMax the bound (other CPUs add their bucket minimum), "other" holds the rest', () => {
    const agg = new DropsAggregator({ maxDestinations: 2 });
    const reader = new KernelDropsReader(agg, ctx);
    reader.ingest(dump([[destKey(received), [cpuValue(Array(21).fill(60))]]]), 1);
    const a = (i: number) => remoteKey([10, 0, 1, i], 3);
    // CPU 0: a1 admitted over a slot of count 3 (err 3); a2 exact; a3, a4 light. CPU 1: a full bucket without a1.
    reader.ingestTop('addresses', topDump([[
      [{ key: a(1), count: 10, err: 3, bytes: 420 }, { key: a(2), count: 4, bytes: 240 }, { key: a(3), count: 1 }, { key: a(4), count: 1 }],
      [{ key: a(2), count: 2 }, { key: a(5), count: 1 }, { key: a(6), count: 1 }, { key: a(7), count: 1 }],
    ]]), 2);
    const s = agg.snapshot();
    // The map took 16 + 5 drops. a1: 7 exact on CPU 0, at most 10 there, and at most CPU 1's minimum (1) there: [7, 11].
    expect(s.byAddress.slice(0, 3).map((r) => [r.key, r.count, r.countMax])).toEqual([
      ['other', 21 - 7 - 6, undefined], ['10.0.1.1 NO_SOCKET', 7, 11], ['10.0.1.2 NO_SOCKET', 6, 6],
    ]);
    expect(s.byAddress).toHaveLength(3); // maxDestinations 2, plus "other"
    expect(s.folded.addresses).toBe(5); // a3..a7 known but not shown
  });
});
