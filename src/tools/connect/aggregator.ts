/**
 * netbpf connect, the aggregator: attempts per destination (remote endpoint and address) with failures by class
 * and errno, latency histograms and exact-while-small p50/p99 (a bounded reservoir).
 */
import { formatEndpoint } from '../../core/address.js';
import { Log2Histogram, type HistogramData } from '../../core/histogram.js';
import { Reservoir } from '../../core/reservoir.js';
import { BoundedTable } from '../../core/table.js';
import type { ConnectEvent, FailureClass } from './decode.js';
import type { ConnectBulk, ConnectKey } from './kernel.js';

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

  /** What one in-kernel summary key gained (src/tools/connect/kernel.ts). */
  addBulk(k: ConnectKey, b: ConnectBulk): void {
    this.attempts += b.count;
    this.synRetrans += b.synRetrans;
    if (k.type === 'established') {
      this.successes += b.count;
      this.latency.addBuckets(b.latencyUs.log2, b.latencyUs.sum, b.latencyUs.min, b.latencyUs.max);
      return;
    }
    this.failures += b.count;
    this.byClass[k.failure ?? 'other'] += b.count;
    const name = k.error || 'none';
    this.errors[name] = (this.errors[name] ?? 0) + b.count;
    if (k.beforeSyn) this.beforeSyn += b.count;
  }

  row(): ConnectRow {
    // Latencies counted in the kernel have no samples: their quantiles come from the log2 histogram (not exact).
    const sampled = this.latency.count <= this.sample.count;
    const q = (x: number) => (sampled ? this.sample.quantile(x) : this.latency.quantile(x));
    return {
      key: this.key, attempts: this.attempts, successes: this.successes, failures: this.failures,
      byClass: { ...this.byClass }, errors: { ...this.errors }, beforeSyn: this.beforeSyn, synRetrans: this.synRetrans,
      latencyUs: { p50: q(0.5), p99: q(0.99), max: this.latency.count ? this.latency.max : 0, exact: sampled && this.sample.exact },
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

  /** Outcomes of one destination counted in the kernel (src/tools/connect/kernel.ts); keys the kernel folded go
   * to the "other" rows. */
  addBulk(k: ConnectKey, b: ConnectBulk): void {
    if (b.count <= 0) return;
    this.totals.attempts += b.count;
    if (k.type === 'established') this.totals.successes += b.count;
    else { this.totals.failures += b.count; this.totals.byClass[k.failure ?? 'other'] += b.count; }
    if (k.other) {
      this.endpoints.foldedRow().addBulk(k, b);
      this.addresses.foldedRow().addBulk(k, b);
      return;
    }
    this.endpoints.row(formatEndpoint(k.daddr, k.dport)).addBulk(k, b);
    this.addresses.row(k.daddr).addBulk(k, b);
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
