/**
 * netbpf life, summaries counted in the kernel: summary-only runs (and top, serve) set aggregate_in_kernel, so
 * each connection end updates a per-CPU map entry keyed by destination and close reason (struct life_agg_key)
 * instead of sending a record; this decodes those keys and feeds what each gained into LifeAggregator in bulk.
 */
import { AF_INET, type Family } from '../../core/address.js';
import { errnoName } from '../../core/errno.js';
import { usageError } from '../../core/errors.js';
import { KernelBulkReader, kernelSummary, type KernelSummaryTrace, type BulkHistogram } from '../../core/kernel-summary.js';
import type { KernelValues } from '../../core/kernel-table.js';
import { readAddress } from '../../core/record.js';
import { LIFE_AGG_CONSTS, LIFE_AGG_KEY_LAYOUT, LIFE_AGG_VALUE_LAYOUT, LIFE_DIRECTION_NAMES, LIFE_FLAGS, LIFE_KIND } from './bpf.gen.js';
import { LifeAggregator, type LifeAggregatorOptions, type LifeSummary } from './aggregator.js';
import { closeReason, type CloseReason, type LifeDirection, type LifeEvent } from './decode.js';
import { LifeTrace, type LifeOptions } from './trace.js';

const { LIFE_AGG_OTHER, LIFE_AGG_ACTIVE_CLOSE } = LIFE_AGG_CONSTS;
const K = LIFE_AGG_KEY_LAYOUT.fields;

/** One in-kernel summary key: a destination (remote address and port, or local port for accepted connections)
 * and, for ends, what decides the close reason. `other`: ends folded in the kernel (its map was full). */
export interface LifeKey {
  kind: 'established' | 'closed';
  direction: LifeDirection;
  family: Family;
  daddr: string;
  /** The local address (kept only in a session's summaries: top, serve), else ''. */
  saddr: string;
  /** connect: remote port; accept: local port. */
  port: number;
  cgroupId: number;
  /** Closed after its handshake completed. */
  established: boolean;
  reason: CloseReason;
  skErr: number;
  error: string;
  /** Reset by this host because its application closed it with received data unread (TCPAbortOnClose). */
  rstUnread: boolean;
  /** Closed from FIN_WAIT1/FIN_WAIT2/CLOSING/TIME_WAIT: this side sent its FIN first (then TIME_WAIT). */
  activeClose: boolean;
  /** Network namespace inode (kept only in a session's summaries: top, serve), else 0. */
  netns: number;
  other: boolean;
}

/** What one key gained since the previous read. */
export interface LifeBulk {
  /** Connections closed (kind closed) or handshakes completed (kind established). */
  count: number;
  /** Of those, connections no other tool of the session had counted (top's distinct connections). */
  connections: number;
  txBytes: number;
  rxBytes: number;
  totalRetrans: number;
  /** Retransmitted / sent segments not yet added by another tool of the session (top's retransmit ratio). */
  ratioRetrans: number;
  ratioSent: number;
  durationMs: BulkHistogram;
  retrans: BulkHistogram;
  /** Smoothed RTT at close of the ends that had one, microseconds. */
  srttUs: BulkHistogram;
}

export function decodeLifeKey(key: Buffer): LifeKey {
  const view = new DataView(key.buffer, key.byteOffset, key.length);
  const family = view.getUint16(K.family[0], true);
  const flags = view.getUint8(K.flags[0]);
  const established = view.getUint8(K.established[0]) !== 0;
  const skErr = view.getInt32(K.sk_err[0], true);
  const other = (flags & LIFE_AGG_OTHER) !== 0;
  return {
    kind: view.getUint8(K.kind[0]) === LIFE_KIND.LIFE_ESTABLISHED ? 'established' : 'closed',
    direction: LIFE_DIRECTION_NAMES[view.getUint8(K.direction[0])] ?? 'unknown',
    family: family === AF_INET ? 4 : 6,
    daddr: other ? '' : readAddress(view, K.daddr[0], family),
    saddr: other || !view.getUint32(K.netns[0], true) ? '' : readAddress(view, K.saddr[0], family),
    port: view.getUint16(K.port[0], true),
    cgroupId: view.getUint32(K.cgroup_id[0], true) + view.getUint32(K.cgroup_id[0] + 4, true) * 4294967296,
    established, reason: closeReason(established, skErr, flags), skErr, error: errnoName(skErr),
    rstUnread: (flags & LIFE_FLAGS.LIFE_RST_UNREAD) !== 0, activeClose: (flags & LIFE_AGG_ACTIVE_CLOSE) !== 0,
    netns: view.getUint32(K.netns[0], true), other,
  };
}

export function lifeBulk(d: KernelValues, t: KernelValues): LifeBulk {
  return {
    count: d.count as number, connections: d.connections as number,
    txBytes: d.tx_bytes as number, rxBytes: d.rx_bytes as number, totalRetrans: d.total_retrans as number,
    ratioRetrans: d.ratio_retrans as number, ratioSent: d.ratio_sent as number,
    durationMs: { log2: d.duration_ms_log2 as Float64Array, sum: (d.duration_ns as number) / 1e6, min: (t.min_duration_ns as number) / 1e6, max: (t.max_duration_ns as number) / 1e6 },
    retrans: { log2: d.total_retrans_log2 as Float64Array, sum: d.total_retrans as number, min: t.min_total_retrans as number, max: t.max_total_retrans as number },
    srttUs: { log2: d.srtt_us_log2 as Float64Array, sum: d.srtt_us as number, min: t.min_srtt_us as number, max: t.max_srtt_us as number },
  };
}

/** Reads life's summary maps (life_agg, life_agg_other) as keys and bulks; `counted`: the connection ends read. */
export class LifeKernelReader extends KernelBulkReader<LifeKey, LifeBulk> {
  constructor() {
    super(LIFE_AGG_KEY_LAYOUT, LIFE_AGG_VALUE_LAYOUT, ['life_agg', 'life_agg_other'], decodeLifeKey, lifeBulk, (key) => key.kind === 'closed');
  }
}

export interface LifeSummaryOptions extends Omit<LifeOptions, 'established'>, LifeAggregatorOptions {
  /** Keys the kernel map holds before ends fold into "other"; default 2 x maxDestinations. */
  kernelKeys?: number;
}

/**
 * Per-destination connection summaries counted in the kernel: no record per connection end, so a connection storm
 * costs a map update per end instead of a ring buffer record, a crossing and decoding in Node. Same LifeSummary as
 * LifeAggregator over life() events. No per-connection events: use life() for those.
 *   const s = lifeSummary(); await s.start(); ...; console.log(s.snapshot());
 */
export function lifeSummary(opts: LifeSummaryOptions = {}): KernelSummaryTrace<LifeEvent, LifeSummary> {
  const maxDestinations = opts.maxDestinations ?? 4096;
  const aggregator = new LifeAggregator({ maxDestinations, now: opts.now });
  if (opts.pid !== undefined) throw usageError('--pid is filtered in user space, on each connection\'s record: it needs the event path (--aggregate events)');
  // No records flow: the smallest ring buffer (one page) is enough for the object to load.
  const summary = kernelSummary((kernel) => new LifeTrace({ ...opts, ringBufferBytes: 4096 }, kernel),
    opts.kernelKeys ?? Math.max(1024, 2 * maxDestinations), new LifeKernelReader(), aggregator);
  // Ends still held for a late reset at stop arrive as events (LifeTrace): counted like the event path counts them.
  summary.trace.onEvents((events) => aggregator.addAll(events));
  return summary;
}
