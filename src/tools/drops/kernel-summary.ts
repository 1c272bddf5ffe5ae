/**
 * netbpf drops, summaries counted in the kernel: summary-only runs count each view in its own per-CPU map instead
 * of sending a record per drop: destinations exactly (`drop_dest_front`, then `drop_dest`, folding into
 * `drop_dest_other` when full), remote endpoints and addresses as top talkers (`drop_top_endpoint`,
 * `drop_top_address`: space-saving, core/top-k.ts).
 * This reads those maps and feeds the same aggregator as the event path.
 */
import { randomBytes } from 'node:crypto';
import { addon, type MapDump, type NativeBpfObject } from '../../core/addon.js';
import { KernelTable } from '../../core/kernel-table.js';
import { TopKTable, type TopKRead } from '../../core/top-k.js';
import { usageError } from '../../core/errors.js';
import { ClockMapper } from '../../core/record.js';
import { Trace, type StartInfo } from '../../core/trace.js';
import {
  DROP_AGG_CONSTS, DROP_AGG_VALUE_LAYOUT, DROP_DEST_BUCKET_LAYOUT, DROP_DEST_SLOT_LAYOUT, DROP_EVENT_LAYOUT, DROP_FLAGS, DROP_SESSION_KEY_LAYOUT,
  DROP_TOP_BUCKET_LAYOUT, DROP_TOP_SLOT_LAYOUT, DROP_VIEW_KEY_LAYOUT,
} from './bpf.gen.js';
import { DropsAggregator, type DropBulk, type DropsAggregatorOptions, type DropsSummary, type RemoteView } from './aggregator.js';
import { decodeDrop, type DropDecodeContext, type DropEvent } from './decode.js';
import { DropReasons } from './reasons.js';
import { dropsSpec, type DropsOptions } from './trace.js';

const { DROP_AGG_OTHER } = DROP_AGG_CONSTS;
const F = DROP_EVENT_LAYOUT.fields;

/** struct drop_view_key (bpf/drops.h): a row of one view (destination, remote endpoint or address) x reason. */
export { DROP_VIEW_KEY_LAYOUT as DROPS_VIEW_KEY_LAYOUT };
/** struct drop_agg_value (bpf/drops.h): one CPU's cumulative counts for a destination key. */
export { DROP_AGG_VALUE_LAYOUT as DROPS_AGG_VALUE_LAYOUT };
/** struct drop_top_bucket / drop_top_slot (bpf/drops.h): one CPU's bucket of top talkers. */
export { DROP_TOP_BUCKET_LAYOUT as DROPS_TOP_BUCKET_LAYOUT, DROP_TOP_SLOT_LAYOUT as DROPS_TOP_SLOT_LAYOUT };
const AK = DROP_VIEW_KEY_LAYOUT.fields;

/** struct drop_dest_bucket / drop_dest_slot (bpf/drops.h): one CPU's bucket of the destination front. */
export { DROP_DEST_BUCKET_LAYOUT as DROPS_DEST_BUCKET_LAYOUT, DROP_DEST_SLOT_LAYOUT as DROPS_DEST_SLOT_LAYOUT };

const u64 = (b: Buffer, o: number): number => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 4294967296;

/**
 * The destination view as one dump of per-CPU values per key, from its two places: the front's taken slots
 * (`drop_dest_front`, a per-CPU array of buckets) and `drop_dest` (a per-CPU hash). On each CPU a destination is
 * counted in one of them (a slot, once taken, is kept; a key goes to the hash map only when its bucket is full),
 * so a key's per-CPU values are whichever of the two counted on that CPU.
 */
export function destinationDump(front: MapDump, table: MapDump, cpus: number): MapDump {
  const KS = DROP_VIEW_KEY_LAYOUT.size, VS = DROP_AGG_VALUE_LAYOUT.stride, COUNT = DROP_AGG_VALUE_LAYOUT.fields.count[0];
  const B = DROP_DEST_BUCKET_LAYOUT, S = DROP_DEST_SLOT_LAYOUT, ways = B.arrays.slots[1];
  const keys = new Map<string, Buffer>();
  const values = new Map<string, Buffer>();
  const place = (key: Buffer, cpu: number, src: Buffer, at: number) => {
    const id = key.toString('latin1');
    let v = values.get(id);
    if (!v) {
      keys.set(id, Buffer.from(key));
      values.set(id, (v = Buffer.alloc(VS * cpus)));
    }
    src.copy(v, cpu * VS, at, at + DROP_AGG_VALUE_LAYOUT.size);
  };
  for (let i = 0; i < front.count; i++) {
    for (let c = 0; c < cpus; c++) {
      const base = (i * cpus + c) * B.stride + B.fields.slots[0];
      for (let w = 0; w < ways; w++) {
        const o = base + w * S.size;
        // A free slot (count 0), or one being taken at this instant (its count comes after its key).
        if (!u64(front.values, o + S.fields.value[0] + COUNT)) continue;
        place(front.values.subarray(o + S.fields.key[0], o + S.fields.key[0] + KS), c, front.values, o + S.fields.value[0]);
      }
    }
  }
  for (let j = 0; j < table.count; j++) {
    const key = table.keys.subarray(j * KS, (j + 1) * KS);
    for (let c = 0; c < cpus; c++) {
      const o = (j * cpus + c) * VS;
      if (u64(table.values, o + COUNT) || !values.has(key.toString('latin1'))) place(key, c, table.values, o);
    }
  }
  return { count: keys.size, keys: Buffer.concat([...keys.values()]), values: Buffer.concat([...values.values()]) };
}

/** The kernel's map of each remote view. */
export const DROPS_TOP_MAPS: Readonly<Record<RemoteView, string>> = { endpoints: 'drop_top_endpoint', addresses: 'drop_top_address' };

/**
 * Turns dumps of the kernel's cumulative maps into DropsAggregator input: destinations (`drop_dest` /
 * `drop_dest_other`) as what each key gained since the previous dump, remote views (`drop_top_*`) as their
 * current top talkers. Keys are decoded by decodeDrop itself (written into a drop_event), so names and the
 * purge/drop category are exactly those of the event path.
 */
export class KernelDropsReader {
  private readonly table = new KernelTable(DROP_VIEW_KEY_LAYOUT, DROP_AGG_VALUE_LAYOUT);
  private readonly top: TopKTable;
  private readonly events_ = new Map<string, DropEvent>();
  private readonly scratch = Buffer.alloc(DROP_EVENT_LAYOUT.size);
  /** Drops counted in the kernel as of the last dump. */
  events = 0;

  /** `topSeed`: the top-talker maps' hash seed (slots read mid-rewrite are then left out); null: not checked. */
  constructor(private readonly agg: DropsAggregator, private readonly ctx: DropDecodeContext, topSeed: bigint | null = null) {
    this.top = new TopKTable(DROP_TOP_BUCKET_LAYOUT, DROP_TOP_SLOT_LAYOUT, topSeed);
  }

  /** The event a key stands for, with the key's address and port on both sides (so daddr:dport and the remote
   * endpoint both read as the key's): time and length are per drop, so they come from the value instead. */
  keyEvent(key: Buffer): DropEvent {
    const r = this.scratch;
    r.fill(0);
    key.copy(r, F.saddr[0], AK.addr[0], AK.addr[0] + AK.addr[1]);
    key.copy(r, F.daddr[0], AK.addr[0], AK.addr[0] + AK.addr[1]);
    key.copy(r, F.location[0], AK.location[0], AK.location[0] + AK.location[1]);
    r.writeUInt32LE(key.readUInt32LE(AK.reason[0]), F.reason[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.family[0]), F.family[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.port[0]), F.sport[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.port[0]), F.dport[0]);
    r.writeUInt8(key.readUInt8(AK.l4_proto[0]), F.l4_proto[0]);
    r.writeUInt8(key.readUInt8(AK.flags[0]) & ~DROP_AGG_OTHER, F.flags[0]);
    r.writeInt32LE(-1, F.stack_id[0]);
    return decodeDrop(new DataView(r.buffer, r.byteOffset, r.length), 0, this.ctx);
  }

  /** The event of a key, decoded once per key (the cache is bounded: past it keys are decoded each time). */
  private eventOf(key: Buffer): DropEvent {
    const id = key.toString('latin1');
    let event = this.events_.get(id);
    if (!event) {
      event = this.keyEvent(key);
      if (this.events_.size < 65536) this.events_.set(id, event);
    }
    return event;
  }

  /** Feeds one dump of the destination view (packed keys and per-CPU values, as mapDump returns them for
   * `drop_dest` and `drop_dest_other`; destinationDump() joins the front to `drop_dest`). */
  ingest(dump: MapDump, cpus: number): void {
    for (const { key, total, delta } of this.table.readDump(dump, cpus)) {
      const added = delta.count as number;
      if (added <= 0) continue;
      const event = this.eventOf(key);
      this.agg.addDestinationBulk(event, {
        count: added, bytes: delta.bytes as number, lenLog2: delta.len_log2 as Float64Array,
        minLen: total.min_len as number, maxLen: total.max_len as number,
        firstSeen: this.ctx.clock.toEpochMs(total.first_ns as number), lastSeen: this.ctx.clock.toEpochMs(total.last_ns as number),
      }, (key.readUInt8(AK.flags[0]) & DROP_AGG_OTHER) !== 0);
      this.events += added;
    }
  }

  /** Feeds one dump of a remote view's top-talker map: the view then shows those keys (cumulative). */
  ingestTop(view: RemoteView, dump: MapDump, cpus: number): TopKRead {
    const read = this.top.readDump(dump, cpus);
    const clock = this.ctx.clock;
    this.agg.setRemoteCounts(view, {
      total: read.total,
      rows: read.rows.filter((r) => r.count > 0).map((r) => ({
        event: this.eventOf(r.key), count: r.count, countMax: r.countMax, bytes: r.values.bytes,
        firstSeen: clock.toEpochMs(r.values.first_ns), lastSeen: clock.toEpochMs(r.values.last_ns),
      })),
    });
    return read;
  }
}

/** struct drop_session_key (bpf/drops.h): a session's drop key (top, serve: both sides, function, namespace). */
export { DROP_SESSION_KEY_LAYOUT as DROPS_SESSION_KEY_LAYOUT };
const SK = DROP_SESSION_KEY_LAYOUT.fields;

/** A sink of a session's drop deltas: the event a key stands for, what it gained, and whether it is a fold. */
export type DropSessionSink = (event: DropEvent, bulk: DropBulk, folded: boolean) => void;

/**
 * Reads a session's drop maps (`drop_session`, `drop_session_other`: see KernelAggregation.session) into deltas per
 * key, each with the drop event the key stands for (decoded by decodeDrop, so placement and names are the event
 * path's; time and length come from the value).
 */
export class KernelSessionDropsReader {
  private readonly table = new KernelTable(DROP_SESSION_KEY_LAYOUT, DROP_AGG_VALUE_LAYOUT);
  private readonly events_ = new Map<string, DropEvent>();
  private readonly scratch = Buffer.alloc(DROP_EVENT_LAYOUT.size);
  /** Drops counted in the kernel as of the last dump. */
  events = 0;

  constructor(private readonly sink: DropSessionSink, private readonly ctx: DropDecodeContext) {}

  keyEvent(key: Buffer): DropEvent {
    const r = this.scratch;
    r.fill(0);
    key.copy(r, F.saddr[0], SK.saddr[0], SK.saddr[0] + SK.saddr[1]);
    key.copy(r, F.daddr[0], SK.daddr[0], SK.daddr[0] + SK.daddr[1]);
    key.copy(r, F.location[0], SK.location[0], SK.location[0] + SK.location[1]);
    r.writeUInt32LE(key.readUInt32LE(SK.reason[0]), F.reason[0]);
    r.writeUInt32LE(key.readUInt32LE(SK.netns[0]), F.netns[0]);
    r.writeUInt16LE(key.readUInt16LE(SK.family[0]), F.family[0]);
    r.writeUInt16LE(key.readUInt16LE(SK.sport[0]), F.sport[0]);
    r.writeUInt16LE(key.readUInt16LE(SK.dport[0]), F.dport[0]);
    r.writeUInt8(key.readUInt8(SK.l4_proto[0]), F.l4_proto[0]);
    // TCP flags are kept only for SYNs and SYN-ACKs, read from the packet's own headers.
    const tcpFlags = key.readUInt8(SK.tcp_flags[0]);
    r.writeUInt8((key.readUInt8(SK.flags[0]) & ~DROP_AGG_OTHER) | (tcpFlags ? DROP_FLAGS.DROP_F_HEADERS : 0), F.flags[0]);
    r.writeUInt8(tcpFlags, F.tcp_flags[0]);
    r.writeInt32LE(-1, F.stack_id[0]);
    return decodeDrop(new DataView(r.buffer, r.byteOffset, r.length), 0, this.ctx);
  }

  /** Feeds one dump of `drop_session` or `drop_session_other` (packed keys and per-CPU values). */
  ingest(dump: MapDump, cpus: number): void {
    for (const { key, total, delta } of this.table.readDump(dump, cpus)) {
      const added = delta.count as number;
      if (added <= 0) continue;
      const id = key.toString('latin1');
      let event = this.events_.get(id);
      if (!event) {
        event = this.keyEvent(key);
        if (this.events_.size < 65536) this.events_.set(id, event);
      }
      this.sink(event, {
        count: added, bytes: delta.bytes as number, lenLog2: delta.len_log2 as Float64Array,
        minLen: total.min_len as number, maxLen: total.max_len as number,
        firstSeen: this.ctx.clock.toEpochMs(total.first_ns as number), lastSeen: this.ctx.clock.toEpochMs(total.last_ns as number),
      }, (key.readUInt8(SK.flags[0]) & DROP_AGG_OTHER) !== 0);
      this.events += added;
    }
  }

  /** Reads both maps of `obj`. */
  read(obj: NativeBpfObject, cpus: number): void {
    this.ingest(obj.mapDump('drop_session'), cpus);
    this.ingest(obj.mapDump('drop_session_other'), cpus);
  }
}

export interface DropsSummaryOptions extends DropsOptions, DropsAggregatorOptions {
  /** Destinations the kernel's hash map holds before they fold into "other" (past those its front holds: up to
   * DROP_DEST_WAYS per front bucket and CPU); default 4 x maxDestinations. */
  kernelKeys?: number;
  /** Buckets of each kernel top-talker map (rounded up to a power of two; DROP_TOP_SLOTS keys each, per CPU);
   * default maxDestinations / 16, at least 64. */
  topBuckets?: number;
  /** Another build of bpf/drops.bpf.c to load (benchmarks of variants, e.g. -DDROP_DEST_LRU). */
  objectPath?: string;
}

/** The power of two at or above n (at least 1). */
const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * Drop summaries aggregated in the kernel: no record per drop, so a drop flood costs a few map accesses per packet
 * instead of a ring buffer record, a crossing and decoding in Node. Destinations are exact (while the map has
 * room); remote endpoints and addresses are top talkers, each row with an exact count and an upper bound
 * (countMax). Same DropsSummary shape as DropsAggregator over drops() events. No per-drop events (and no
 * stacks): use drops() for those.
 *   const s = dropsSummary({ reasons: ['NETFILTER_DROP'] }); await s.start(); ...; console.log(s.snapshot());
 */
export class DropsSummaryTrace {
  readonly trace: Trace<DropEvent>;
  private readonly aggregator: DropsAggregator;
  private readonly reader: KernelDropsReader;
  private readonly cpus: number;

  constructor(opts: DropsSummaryOptions = {}) {
    if (opts.stack) throw usageError('kernel-aggregated summaries have no per-drop events: --stack needs the event path');
    const maxDestinations = opts.maxDestinations ?? 4096;
    const keys = opts.kernelKeys ?? Math.max(1024, 4 * maxDestinations);
    const topBuckets = pow2(opts.topBuckets ?? Math.max(64, maxDestinations / 16));
    // The destination front: 64 buckets (256 destinations per CPU), fewer for a small map.
    const frontBuckets = Math.min(64, pow2(keys / 256));
    this.aggregator = new DropsAggregator({ maxDestinations, now: opts.now, listenQueue: opts.listenQueue });
    const topSeed = randomBytes(8);
    this.reader = new KernelDropsReader(this.aggregator, { clock: new ClockMapper(), reasons: DropReasons.kernel() }, topSeed.readBigUInt64LE(0));
    this.cpus = addon().numPossibleCpus;
    const spec = dropsSpec(opts, undefined, {
      keys,
      frontBuckets,
      topBuckets,
      topSeed,
      beforeClose: (obj) => this.read(obj),
      events: () => this.reader.events,
    });
    if (opts.objectPath) spec.objectPath = opts.objectPath;
    // No records flow: the smallest ring buffer (one page) is enough for the object to load.
    this.trace = new Trace(spec, { ...opts, ringBufferBytes: 4096 });
  }

  start(): Promise<StartInfo> { return this.trace.start(); }
  stop(): Promise<void> { return this.trace.stop(); }
  counters() { return this.trace.counters(); }

  /** Reads the kernel maps (one dump each) and returns the summary; after stop(), the final one. */
  snapshot(): DropsSummary {
    let obj: NativeBpfObject | null = null;
    try { obj = this.trace.object(); } catch { obj = null; } // not started or already stopped (read at stop)
    if (obj) this.read(obj);
    return this.aggregator.snapshot();
  }

  private read(obj: NativeBpfObject): void {
    this.reader.ingest(destinationDump(obj.mapDump('drop_dest_front'), obj.mapDump('drop_dest'), this.cpus), this.cpus);
    this.reader.ingest(obj.mapDump('drop_dest_other'), this.cpus);
    for (const [view, map] of Object.entries(DROPS_TOP_MAPS) as Array<[RemoteView, string]>) this.reader.ingestTop(view, obj.mapDump(map), this.cpus);
  }
}

/** Drop summaries aggregated in the kernel (see DropsSummaryTrace). */
export function dropsSummary(opts: DropsSummaryOptions = {}): DropsSummaryTrace {
  return new DropsSummaryTrace(opts);
}
