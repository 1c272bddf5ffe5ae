/**
 * netbpf retrans, summaries counted in the kernel: summary-only runs (and top, serve) set aggregate_in_kernel, so
 * each retransmit updates a per-CPU map entry keyed by destination, kind and error (struct retrans_agg_key)
 * instead of sending a record; this decodes those keys and feeds RetransAggregator in bulk.
 */
import { AF_INET, type Family } from '../../core/address.js';
import { KernelBulkReader, kernelSummary, type KernelSummaryTrace, type BulkHistogram } from '../../core/kernel-summary.js';
import type { KernelValues } from '../../core/kernel-table.js';
import { ClockMapper, readAddress } from '../../core/record.js';
import { Trace } from '../../core/trace.js';
import { RETRANS_AGG_CONSTS, RETRANS_AGG_KEY_LAYOUT, RETRANS_AGG_VALUE_LAYOUT } from './bpf.gen.js';
import { RetransAggregator, type AggregatorOptions, type RetransSummary } from './aggregator.js';
import { countedByKernel, RETRANS_KINDS, type RetransEvent, type RetransKind } from './decode.js';
import { retransSpec, type RetransOptions } from './trace.js';

const { RETRANS_AGG_OTHER } = RETRANS_AGG_CONSTS;
const K = RETRANS_AGG_KEY_LAYOUT.fields;

/** One in-kernel summary key: a remote endpoint, a kind of retransmit and its error. `other`: retransmits folded
 * in the kernel (its map was full). */
export interface RetransKey {
  family: Family;
  daddr: string;
  dport: number;
  cgroupId: number;
  kind: RetransKind;
  err: number;
  /** Whether the kernel counted these retransmits' segments (as RetransSegs does): countedByKernel(). */
  counted: boolean;
  /** Network namespace inode (kept only in a session's summaries: top, serve), else 0. */
  netns: number;
  other: boolean;
}

/** What one key gained since the previous read. */
export interface RetransBulk {
  events: number;
  segs: number;
  /** Connections no other tool of the session had counted. */
  connections: number;
  /** Retransmitted and sent segments of those connections not added before (their latest counters, once). */
  ratioRetrans: number;
  ratioSent: number;
  /** Epoch ms of the key's first and last retransmit. */
  firstSeen: number;
  lastSeen: number;
  retransmits: BulkHistogram;
  srttUs: BulkHistogram;
}

export function decodeRetransKey(key: Buffer): RetransKey {
  const view = new DataView(key.buffer, key.byteOffset, key.length);
  const family = view.getUint16(K.family[0], true);
  const other = (view.getUint8(K.flags[0]) & RETRANS_AGG_OTHER) !== 0;
  const err = view.getInt32(K.err[0], true);
  return {
    family: family === AF_INET ? 4 : 6,
    daddr: other ? '' : readAddress(view, K.daddr[0], family),
    dport: view.getUint16(K.dport[0], true),
    cgroupId: view.getUint32(K.cgroup_id[0], true) + view.getUint32(K.cgroup_id[0] + 4, true) * 4294967296,
    kind: RETRANS_KINDS[view.getUint8(K.kind[0])] ?? 'other',
    err, counted: countedByKernel({ err }), netns: view.getUint32(K.netns[0], true), other,
  };
}

export function retransBulk(d: KernelValues, t: KernelValues, clock: ClockMapper): RetransBulk {
  return {
    events: d.count as number, segs: d.segs as number, connections: d.connections as number,
    ratioRetrans: d.ratio_retrans as number, ratioSent: d.ratio_sent as number,
    firstSeen: clock.toEpochMs(t.first_ns as number), lastSeen: clock.toEpochMs(t.last_ns as number),
    retransmits: { log2: d.retransmits_log2 as Float64Array, sum: d.retransmits as number, min: t.min_retransmits as number, max: t.max_retransmits as number },
    srttUs: { log2: d.srtt_us_log2 as Float64Array, sum: d.srtt_us as number, min: t.min_srtt_us as number, max: t.max_srtt_us as number },
  };
}

/** Reads retrans's summary maps (retrans_agg, retrans_agg_other) as keys and bulks; `counted`: the retransmits read. */
export class RetransKernelReader extends KernelBulkReader<RetransKey, RetransBulk> {
  constructor() {
    const clock = new ClockMapper();
    super(RETRANS_AGG_KEY_LAYOUT, RETRANS_AGG_VALUE_LAYOUT, ['retrans_agg', 'retrans_agg_other'], decodeRetransKey, (d, t) => retransBulk(d, t, clock));
  }
}

export interface RetransSummaryOptions extends RetransOptions, AggregatorOptions {
  /** Keys the kernel map holds before retransmits fold into "other"; default 2 x maxDestinations. */
  kernelKeys?: number;
}

/**
 * Per-destination retransmit summaries counted in the kernel: no record per retransmit. Same RetransSummary as
 * RetransAggregator over retrans() events (connections are counted without a cap).
 *   const s = retransSummary(); await s.start(); ...; console.log(s.snapshot());
 */
export function retransSummary(opts: RetransSummaryOptions = {}): KernelSummaryTrace<RetransEvent, RetransSummary> {
  const maxDestinations = opts.maxDestinations ?? 4096;
  const aggregator = new RetransAggregator({ maxDestinations, now: opts.now });
  // No records flow: the smallest ring buffer (one page) is enough for the object to load.
  return kernelSummary((kernel) => new Trace(retransSpec(opts, kernel), { ...opts, ringBufferBytes: 4096 }),
    opts.kernelKeys ?? Math.max(1024, 2 * maxDestinations), new RetransKernelReader(), aggregator);
}
