/**
 * netbpf connect: TCP connect attempts (bpf/connect.bpf.c): `established` events with the SYN -> ESTABLISHED
 * latency, `failed` events classified as refused / timeout / unreachable / aborted / other, SYN retransmits
 * per attempt. ConnectAggregator summarises per destination with latency histograms and exact-while-small
 * p50/p99 (a bounded reservoir).
 */
import { formatEndpoint, type Family, AF_INET } from '../core/address.js';
import { ERRNO, errnoName } from '../core/errno.js';
import { usageError } from '../core/errors.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { preferHook, syscalls, tracepoint, type HookPreference } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { ClockMapper, readAddress, readCString } from '../core/record.js';
import { Reservoir } from '../core/reservoir.js';
import { BoundedTable } from '../core/table.js';
import { constU32, Trace, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { CONNECT_EVENT_LAYOUT, CONNECT_FLAGS, CONNECT_KIND, CONNECT_RODATA } from './connect/bpf.gen.js';

/** struct connect_event (bpf/connect.h): [offset, size] of each field. */
export { CONNECT_EVENT_LAYOUT as CONNECT_LAYOUT };
const { CONNECT_RST_RECEIVED, CONNECT_BEFORE_SYN } = CONNECT_FLAGS;

/**
 * Why a connect failed: refused (RST: reached the host, nothing listening), timeout (no answer after the
 * SYN retries), unreachable (no route, or ICMP host/net unreachable), aborted (the application closed the
 * socket before an answer), other (any other errno, e.g. EADDRNOTAVAIL when ephemeral ports run out).
 */
export type FailureClass = 'refused' | 'timeout' | 'unreachable' | 'aborted' | 'other';
export const FAILURE_CLASSES: readonly FailureClass[] = ['refused', 'timeout', 'unreachable', 'aborted', 'other'];

export function classifyFailure(err: number, flags = 0): FailureClass {
  if (err === ERRNO.ECONNREFUSED || (err === 0 && flags & CONNECT_RST_RECEIVED)) return 'refused';
  if (err === ERRNO.ETIMEDOUT) return 'timeout';
  if (err === ERRNO.EHOSTUNREACH || err === ERRNO.ENETUNREACH || err === ERRNO.EHOSTDOWN || err === ERRNO.ENETDOWN) return 'unreachable';
  if (err === 0) return 'aborted';
  return 'other';
}

interface ConnectEventBase {
  /** Wall-clock time of the outcome, ms since the epoch. */
  time: number;
  family: Family;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  /** Process that called connect(). */
  pid: number;
  comm: string;
  /** SYNs retransmitted during the attempt. */
  synRetrans: number;
  netns: number;
  cgroupId: number;
}

/** SYN_SENT -> ESTABLISHED. */
export interface ConnectEstablishedEvent extends ConnectEventBase {
  type: 'established';
  /** connect() (SYN_SENT) -> ESTABLISHED, microseconds. */
  latencyUs: number;
}

/** SYN_SENT -> CLOSE, or connect() failed before any SYN left (beforeSyn). */
export interface ConnectFailedEvent extends ConnectEventBase {
  type: 'failed';
  failure: FailureClass;
  /** Positive errno the application saw (0 when it gave up first) and its name. */
  err: number;
  error: string;
  /** connect() -> failure, microseconds. */
  elapsedUs: number;
  /** A reset answered the SYN. */
  rstReceived: boolean;
  /** connect() returned the error before the socket left CLOSE: no SYN was sent (e.g. no route). */
  beforeSyn: boolean;
}

export type ConnectEvent = ConnectEstablishedEvent | ConnectFailedEvent;

const F = CONNECT_EVENT_LAYOUT.fields;

export function decodeConnect(view: DataView, o: number, clock: ClockMapper): ConnectEvent {
  const family = view.getUint16(o + F.family[0], true);
  const ts = Number(view.getBigUint64(o + F.ts_ns[0], true));
  const start = Number(view.getBigUint64(o + F.start_ns[0], true));
  const base: ConnectEventBase = {
    time: clock.toEpochMs(ts),
    family: family === AF_INET ? 4 : 6,
    saddr: readAddress(view, o + F.saddr[0], family),
    sport: view.getUint16(o + F.sport[0], true),
    daddr: readAddress(view, o + F.daddr[0], family),
    dport: view.getUint16(o + F.dport[0], true),
    pid: view.getUint32(o + F.pid[0], true),
    comm: readCString(view, o + F.comm[0], F.comm[1]),
    synRetrans: view.getUint32(o + F.syn_retrans[0], true),
    netns: view.getUint32(o + F.netns[0], true),
    cgroupId: Number(view.getBigUint64(o + F.cgroup_id[0], true)),
  };
  const us = (ts - start) / 1000;
  if (view.getUint8(o + F.kind[0]) === CONNECT_KIND.CONNECT_ESTABLISHED) return { ...base, type: 'established', latencyUs: us };
  const err = view.getInt32(o + F.err[0], true);
  const flags = view.getUint8(o + F.flags[0]);
  return {
    ...base, type: 'failed', failure: classifyFailure(err, flags), err, error: errnoName(err), elapsedUs: us,
    rstReceived: (flags & CONNECT_RST_RECEIVED) !== 0, beforeSyn: (flags & CONNECT_BEFORE_SYN) !== 0,
  };
}

export interface ConnectOptions extends FilterOptions, TraceOptions {
  /** Only connects by this process (filtered in the kernel: the caller is known at connect()). */
  pid?: number;
  /** Force how state changes and retransmits are hooked (the classic tracepoint needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
}

export function connectSpec(opts: ConnectOptions = {}): TraceSpec<ConnectEvent> {
  const clock = new ClockMapper();
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid < 1 || opts.pid > 0xffffffff)) throw usageError(`invalid pid ${opts.pid}: must be a positive integer`);
  return {
    tool: 'connect',
    recordSize: CONNECT_EVENT_LAYOUT.size,
    constants: { ...filterConstants(opts), filter_pid: constU32(opts.pid ?? 0) },
    rodata: CONNECT_RODATA,
    hooks: [
      { feature: 'connect outcomes', required: true, alternatives: preferHook(tracepoint('sock', 'inet_sock_set_state', 'handle_set_state'), opts.hook) },
      { feature: 'SYN retransmits', required: false, alternatives: preferHook(tracepoint('tcp', 'tcp_retransmit_skb', 'handle_retransmit'), opts.hook) },
      { feature: 'resets received', required: false, alternatives: tracepoint('tcp', 'tcp_receive_reset', 'handle_receive_reset') },
      // The classic record has no socket pointer: tp_btf or raw_tp only; sk_err at close is the fallback.
      { feature: 'error reports', required: false, alternatives: tracepoint('sock', 'inet_sk_error_report', 'handle_error_report', { classic: false }) },
      {
        feature: 'connect() and getsockopt(SO_ERROR) results (failures before SYN, errors the application read)', required: false,
        alternatives: syscalls('handle_sys_enter', 'handle_sys_exit', {
          names: ['connect', 'getsockopt'],
          programs: ['handle_connect_enter_tp', 'handle_connect_exit_tp', 'handle_getsockopt_enter_tp', 'handle_getsockopt_exit_tp'],
        }),
      },
    ],
    decode: (view, o) => decodeConnect(view, o, clock),
  };
}

/** Traces TCP connect attempts: `for await (const ev of connect()) if (ev.type === 'failed') ...`. */
export function connect(opts: ConnectOptions = {}): Trace<ConnectEvent> {
  return new Trace(connectSpec(opts), opts);
}

/** Per-destination connect statistics. */
export interface ConnectRow {
  /** "raddr:rport" (endpoint rows), "raddr" (address rows) or "other". */
  key: string;
  attempts: number;
  successes: number;
  failures: number;
  byClass: Record<FailureClass, number>;
  /** errno name -> count, for failures. */
  errors: Record<string, number>;
  /** Failures where no SYN was sent (connect() failed in the route lookup, ...). */
  beforeSyn: number;
  synRetrans: number;
  /** Latency of successful connects, microseconds: p50/p99 from a bounded reservoir (exact while small). */
  latencyUs: { p50: number; p99: number; max: number; exact: boolean };
  histograms: { latencyUs: HistogramData };
}

export interface ConnectSummary {
  type: 'summary';
  tool: 'connect';
  time: number;
  elapsedS: number;
  totals: { attempts: number; successes: number; failures: number; byClass: Record<FailureClass, number> };
  byEndpoint: ConnectRow[];
  byAddress: ConnectRow[];
  folded: { endpoints: number; addresses: number };
}

const emptyClasses = (): Record<FailureClass, number> => ({ refused: 0, timeout: 0, unreachable: 0, aborted: 0, other: 0 });

class ConnectStats {
  attempts = 0;
  successes = 0;
  failures = 0;
  byClass = emptyClasses();
  errors: Record<string, number> = {};
  beforeSyn = 0;
  synRetrans = 0;
  latency = new Log2Histogram('us');
  sample: Reservoir;
  constructor(readonly key: string, reservoirSize: number) {
    this.sample = new Reservoir(reservoirSize);
  }

  add(e: ConnectEvent): void {
    this.attempts++;
    this.synRetrans += e.synRetrans;
    if (e.type === 'established') {
      this.successes++;
      this.latency.add(e.latencyUs);
      this.sample.add(e.latencyUs);
      return;
    }
    this.failures++;
    this.byClass[e.failure]++;
    const name = e.error || 'none';
    this.errors[name] = (this.errors[name] ?? 0) + 1;
    if (e.beforeSyn) this.beforeSyn++;
  }

  row(): ConnectRow {
    return {
      key: this.key, attempts: this.attempts, successes: this.successes, failures: this.failures,
      byClass: { ...this.byClass }, errors: { ...this.errors }, beforeSyn: this.beforeSyn, synRetrans: this.synRetrans,
      latencyUs: { p50: this.sample.quantile(0.5), p99: this.sample.quantile(0.99), max: this.latency.count ? this.latency.max : 0, exact: this.sample.exact },
      histograms: { latencyUs: this.latency.toJSON() },
    };
  }
}

export interface ConnectAggregatorOptions {
  maxDestinations?: number;
  /** Latencies kept per destination for p50/p99 (exact up to this many). Default 1024. */
  reservoirSize?: number;
  now?: () => number;
}

/** Aggregates connect events per remote endpoint and per remote address. Usable on its own. */
export class ConnectAggregator {
  private readonly endpoints: BoundedTable<ConnectStats>;
  private readonly addresses: BoundedTable<ConnectStats>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private totals = { attempts: 0, successes: 0, failures: 0, byClass: emptyClasses() };

  constructor(opts: ConnectAggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    const size = opts.reservoirSize ?? 1024;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.endpoints = new BoundedTable(max, (k) => new ConnectStats(k, size));
    this.addresses = new BoundedTable(max, (k) => new ConnectStats(k, size));
  }

  add(e: ConnectEvent): void {
    this.totals.attempts++;
    if (e.type === 'established') this.totals.successes++;
    else { this.totals.failures++; this.totals.byClass[e.failure]++; }
    this.endpoints.row(formatEndpoint(e.daddr, e.dport)).add(e);
    this.addresses.row(e.daddr).add(e);
  }

  addAll(events: ConnectEvent[]): void {
    for (const e of events) this.add(e);
  }

  snapshot(): ConnectSummary {
    const t = this.now();
    const rows = (table: BoundedTable<ConnectStats>): ConnectRow[] => {
      return table.allRows().map((s) => s.row()).sort((a, b) => b.failures - a.failures || b.attempts - a.attempts);
    };
    return {
      type: 'summary', tool: 'connect', time: t, elapsedS: (t - this.startedAt) / 1000,
      totals: { ...this.totals, byClass: { ...this.totals.byClass } },
      byEndpoint: rows(this.endpoints), byAddress: rows(this.addresses),
      folded: { endpoints: this.endpoints.foldedKeys, addresses: this.addresses.foldedKeys },
    };
  }
}
