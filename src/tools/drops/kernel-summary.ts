/**
 * netbpf drops, summaries counted in the kernel: summary-only runs keep a per-CPU map entry per summary key
 * instead of sending a record per drop; this reads those maps and feeds the same aggregator as the event path.
 */
import { addon, type MapDump, type NativeBpfObject } from '../../core/addon.js';
import { KernelTable } from '../../core/kernel-table.js';
import { usageError } from '../../core/errors.js';
import { ClockMapper } from '../../core/record.js';
import { Trace, type StartInfo } from '../../core/trace.js';
import { DROP_AGG_CONSTS, DROP_AGG_KEY_LAYOUT, DROP_AGG_VALUE_LAYOUT, DROP_EVENT_LAYOUT, DROP_FLAGS } from './bpf.gen.js';
import { DropsAggregator, type DropsAggregatorOptions, type DropsSummary } from './aggregator.js';
import { decodeDrop, type DropDecodeContext, type DropEvent } from './decode.js';
import { DropReasons } from './reasons.js';
import { dropsSpec, type DropsOptions } from './trace.js';

const { DROP_AGG_OTHER } = DROP_AGG_CONSTS;
const F = DROP_EVENT_LAYOUT.fields;

/** struct drop_agg_key (bpf/drops.h): the in-kernel summary key of summary-only runs. */
export { DROP_AGG_KEY_LAYOUT as DROPS_AGG_KEY_LAYOUT };
/** struct drop_agg_value (bpf/drops.h): one CPU's cumulative counts for a key. */
export { DROP_AGG_VALUE_LAYOUT as DROPS_AGG_VALUE_LAYOUT };
const AK = DROP_AGG_KEY_LAYOUT.fields;

/**
 * Turns dumps of the kernel's cumulative `drop_agg` / `drop_agg_other` maps into DropsAggregator input: per
 * key, what was added since the previous dump. The key is decoded by decodeDrop itself (written into a
 * drop_event), so orientation, names and purge/drop category are exactly those of the event path.
 */
export class KernelDropsReader {
  private readonly table = new KernelTable(DROP_AGG_KEY_LAYOUT, DROP_AGG_VALUE_LAYOUT);
  private readonly events_ = new Map<string, DropEvent>();
  private readonly scratch = Buffer.alloc(DROP_EVENT_LAYOUT.size);
  /** Drops counted in the kernel as of the last dump. */
  events = 0;

  /** `agg`: a DropsAggregator, or any sink of the same bulk input (e.g. top's session). */
  constructor(private readonly agg: Pick<DropsAggregator, 'addBulk'>, private readonly ctx: DropDecodeContext) {}

  /** The event a key stands for (time and length are per drop, so they come from the value instead). */
  keyEvent(key: Buffer): DropEvent {
    const r = this.scratch;
    r.fill(0);
    key.copy(r, F.saddr[0], AK.saddr[0], AK.saddr[0] + AK.saddr[1]);
    key.copy(r, F.daddr[0], AK.daddr[0], AK.daddr[0] + AK.daddr[1]);
    key.copy(r, F.location[0], AK.location[0], AK.location[0] + AK.location[1]);
    r.writeUInt32LE(key.readUInt32LE(AK.reason[0]), F.reason[0]);
    r.writeUInt32LE(key.readUInt32LE(AK.netns[0]), F.netns[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.family[0]), F.family[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.sport[0]), F.sport[0]);
    r.writeUInt16LE(key.readUInt16LE(AK.dport[0]), F.dport[0]);
    r.writeUInt8(key.readUInt8(AK.l4_proto[0]), F.l4_proto[0]);
    // TCP flags are kept only for SYNs and SYN-ACKs, read from the packet's own headers.
    const tcpFlags = key.readUInt8(AK.tcp_flags[0]);
    r.writeUInt8((key.readUInt8(AK.flags[0]) & ~DROP_AGG_OTHER) | (tcpFlags ? DROP_FLAGS.DROP_F_HEADERS : 0), F.flags[0]);
    r.writeUInt8(tcpFlags, F.tcp_flags[0]);
    r.writeInt32LE(-1, F.stack_id[0]);
    return decodeDrop(new DataView(r.buffer, r.byteOffset, r.length), 0, this.ctx);
  }

  /** Feeds one dump (packed keys and per-CPU values, as mapDump returns them) into the aggregator. */
  ingest(dump: MapDump, cpus: number): void {
    for (const { key, total, delta } of this.table.readDump(dump, cpus)) {
      const added = delta.count as number;
      if (added <= 0) continue;
      const id = key.toString('latin1');
      let event = this.events_.get(id);
      if (!event) this.events_.set(id, (event = this.keyEvent(key)));
      this.agg.addBulk(event, {
        count: added, bytes: delta.bytes as number, lenLog2: delta.len_log2 as Float64Array,
        minLen: total.min_len as number, maxLen: total.max_len as number,
        firstSeen: this.ctx.clock.toEpochMs(total.first_ns as number), lastSeen: this.ctx.clock.toEpochMs(total.last_ns as number),
      }, (key.readUInt8(AK.flags[0]) & DROP_AGG_OTHER) !== 0);
      this.events += added;
    }
  }
}

export interface DropsSummaryOptions extends DropsOptions, DropsAggregatorOptions {
  /** Keys the kernel map holds before drops fold into "other"; default 4 x maxDestinations. */
  kernelKeys?: number;
}

/**
 * Per-destination drop summaries aggregated in the kernel: no record per drop, so a drop flood costs a map
 * update per packet instead of a ring buffer record, a crossing and decoding in Node. Same DropsSummary as
 * DropsAggregator over drops() events. No per-drop events (and no stacks): use drops() for those.
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
    this.aggregator = new DropsAggregator({ maxDestinations, now: opts.now });
    this.reader = new KernelDropsReader(this.aggregator, { clock: new ClockMapper(), reasons: DropReasons.kernel() });
    this.cpus = addon().numPossibleCpus;
    const spec = dropsSpec(opts, undefined, {
      keys,
      beforeClose: (obj) => this.read(obj),
      events: () => this.reader.events,
    });
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
    this.reader.ingest(obj.mapDump('drop_agg'), this.cpus);
    this.reader.ingest(obj.mapDump('drop_agg_other'), this.cpus);
  }
}

/** Drop summaries aggregated in the kernel (see DropsSummaryTrace). */
export function dropsSummary(opts: DropsSummaryOptions = {}): DropsSummaryTrace {
  return new DropsSummaryTrace(opts);
}
