/**
 * netbpf connect, summaries counted in the kernel: summary-only runs (and top, serve) set aggregate_in_kernel, so
 * each connect outcome updates a per-CPU map entry keyed by destination, outcome and errno (struct
 * connect_agg_key) instead of sending a record; this decodes those keys and feeds ConnectAggregator in bulk.
 */
import { AF_INET, type Family } from '../../core/address.js';
import { errnoName } from '../../core/errno.js';
import { KernelBulkReader, kernelSummary, type KernelSummaryTrace, type BulkHistogram } from '../../core/kernel-summary.js';
import type { KernelValues } from '../../core/kernel-table.js';
import { readAddress } from '../../core/record.js';
import { Trace } from '../../core/trace.js';
import { CONNECT_AGG_CONSTS, CONNECT_AGG_KEY_LAYOUT, CONNECT_AGG_VALUE_LAYOUT, CONNECT_FLAGS, CONNECT_KIND } from './bpf.gen.js';
import { ConnectAggregator, type ConnectAggregatorOptions, type ConnectSummary } from './aggregator.js';
import { classifyFailure, type ConnectEvent, type FailureClass } from './decode.js';
import { connectSpec, type ConnectOptions } from './trace.js';

const { CONNECT_AGG_OTHER, CONNECT_AGG_SYN_RETRANSMITTED } = CONNECT_AGG_CONSTS;
const K = CONNECT_AGG_KEY_LAYOUT.fields;

/** One in-kernel summary key: a remote endpoint and an outcome (for failures: class and errno).
 * `other`: outcomes folded in the kernel (its map was full). */
export interface ConnectKey {
  type: 'established' | 'failed';
  family: Family;
  daddr: string;
  dport: number;
  cgroupId: number;
  failure: FailureClass | null;
  err: number;
  error: string;
  beforeSyn: boolean;
  /** A reset answered the SYN (refused by RST, not by ICMP). */
  rstReceived: boolean;
  /** The attempts retransmitted their SYN. */
  synRetransmitted: boolean;
  /** The namespace's local port range, for failures inside connect() (EADDRNOTAVAIL); null when not reported. */
  localPorts: { low: number; high: number } | null;
  /** Network namespace inode (kept only in a session's summaries: top, serve), else 0. */
  netns: number;
  other: boolean;
}

/** What one key gained since the previous read. */
export interface ConnectBulk {
  count: number;
  /** Established connections no other tool of the session had counted (top's distinct connections). */
  connections: number;
  synRetrans: number;
  /** Latency of the established ones, microseconds. */
  latencyUs: BulkHistogram;
  /** The longest connect() -> failure of the failed ones, microseconds. */
  maxElapsedUs: number;
}

export function decodeConnectKey(key: Buffer): ConnectKey {
  const view = new DataView(key.buffer, key.byteOffset, key.length);
  const family = view.getUint16(K.family[0], true);
  const flags = view.getUint8(K.flags[0]);
  const err = view.getInt32(K.err[0], true);
  const other = (flags & CONNECT_AGG_OTHER) !== 0;
  const failed = view.getUint8(K.kind[0]) !== CONNECT_KIND.CONNECT_ESTABLISHED;
  const ports = view.getUint16(K.ports_low[0], true) | (view.getUint16(K.ports_high[0], true) << 16);
  return {
    type: failed ? 'failed' : 'established',
    family: family === AF_INET ? 4 : 6,
    daddr: other ? '' : readAddress(view, K.daddr[0], family),
    dport: view.getUint16(K.dport[0], true),
    cgroupId: view.getUint32(K.cgroup_id[0], true) + view.getUint32(K.cgroup_id[0] + 4, true) * 4294967296,
    failure: failed ? classifyFailure(err, flags) : null,
    err, error: errnoName(err), beforeSyn: (flags & CONNECT_FLAGS.CONNECT_BEFORE_SYN) !== 0,
    rstReceived: (flags & CONNECT_FLAGS.CONNECT_RST_RECEIVED) !== 0, synRetransmitted: (flags & CONNECT_AGG_SYN_RETRANSMITTED) !== 0,
    localPorts: ports ? { low: ports & 0xffff, high: ports >>> 16 } : null,
    netns: view.getUint32(K.netns[0], true), other,
  };
}

export function connectBulk(d: KernelValues, t: KernelValues): ConnectBulk {
  return {
    count: d.count as number, connections: d.connections as number, synRetrans: d.syn_retrans as number,
    latencyUs: { log2: d.latency_us_log2 as Float64Array, sum: (d.latency_ns as number) / 1000, min: (t.min_latency_ns as number) / 1000, max: (t.max_latency_ns as number) / 1000 },
    maxElapsedUs: (t.max_elapsed_ns as number) / 1000,
  };
}

/** Reads connect's summary maps (connect_agg, connect_agg_other) as keys and bulks; `counted`: the outcomes read. */
export class ConnectKernelReader extends KernelBulkReader<ConnectKey, ConnectBulk> {
  constructor() {
    super(CONNECT_AGG_KEY_LAYOUT, CONNECT_AGG_VALUE_LAYOUT, ['connect_agg', 'connect_agg_other'], decodeConnectKey, connectBulk);
  }
}

export interface ConnectSummaryOptions extends ConnectOptions, ConnectAggregatorOptions {
  /** Keys the kernel map holds before outcomes fold into "other"; default 2 x maxDestinations. */
  kernelKeys?: number;
}

/**
 * Per-destination connect summaries counted in the kernel: no record per connect. Same ConnectSummary as
 * ConnectAggregator over connect() events, except that p50/p99 latency come from the log2 histogram (exact: false).
 *   const s = connectSummary(); await s.start(); ...; console.log(s.snapshot());
 */
export function connectSummary(opts: ConnectSummaryOptions = {}): KernelSummaryTrace<ConnectEvent, ConnectSummary> {
  const maxDestinations = opts.maxDestinations ?? 4096;
  const aggregator = new ConnectAggregator({ maxDestinations, now: opts.now });
  // No records flow: the smallest ring buffer (one page) is enough for the object to load.
  return kernelSummary((kernel) => new Trace(connectSpec(opts, kernel), { ...opts, ringBufferBytes: 4096 }),
    opts.kernelKeys ?? Math.max(1024, 2 * maxDestinations), new ConnectKernelReader(), aggregator);
}
