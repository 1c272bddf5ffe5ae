/**
 * netbpf's own Prometheus series, written out in the text exposition format (version 0.0.4): counters, gauges and
 * histograms whose label sets can be deleted (a destination evicted from its label slot takes its series with it)
 * and whose histograms keep log2 bucket counts, the form in-kernel aggregation produces (bpf/agg.bpf.h), so bucket
 * counts read from the kernel map onto `le` bounds exactly.
 *
 * A new series is first exposed at zero and shows its counts only once it has been scraped at zero and `holdMs`
 * (one scrape interval) has passed: Prometheus' rate() and increase() take a series' first sample as its
 * starting point, so a series born with its first count (a first refused connect to a new destination) would
 * otherwise never show an increase, and an alert on it would never fire.
 */
import { Log2Histogram } from '../../core/histogram.js';

/** Buckets of a histogram family: bounds 2^k native units for k = lowPow, lowPow + step, ..., highPow, times `scale`
 * (native unit -> base unit, e.g. 1e-6 for microseconds -> seconds). */
export interface Log2Buckets {
  lowPow: number;
  highPow: number;
  step: number;
  scale: number;
}

/** Log2 buckets as core/histogram.ts counts them: bucket 0 holds [0, 1), bucket k holds [2^(k-1), 2^k). */
export const LOG2_BUCKETS = 65;

/** Observations already bucketed (in-kernel aggregation): counts per log2 bucket and the sum of their values. */
export interface Log2Counts {
  log2: ArrayLike<number>;
  sum: number;
}

/** One value, or many already bucketed, in a histogram's native unit. */
export type Observation = number | Log2Counts;

type Kind = 'counter' | 'gauge' | 'histogram';

interface SeriesBase {
  labels: string[];
  /** When it was first exposed (at zero), ms; null until then. */
  shownAt: number | null;
}
interface ScalarSeries extends SeriesBase { value: number }
interface HistogramSeries extends SeriesBase { counts: Float64Array; sum: number; count: number }

/** Decides when a new series may show its counts (see the module comment). */
export class ZeroHold {
  /** When set, every series shows its counts (at shutdown: the last scrapes must carry the final values). */
  released = false;
  constructor(readonly holdMs: number, readonly now: () => number = Date.now) {}

  /** Whether a series shows its counts in a scrape at `t` (and marks it shown). */
  visible(s: SeriesBase, t: number): boolean {
    if (this.released) return true;
    if (s.shownAt === null) { s.shownAt = t; return this.holdMs <= 0; }
    return t - s.shownAt >= this.holdMs;
  }
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

/** A sample value as Prometheus reads it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A bound as a short decimal (2^9 * 1e-6 is 0.000512, not 0.0005120000000000001). */
export function formatBound(v: number): string {
  return String(Number(v.toPrecision(10)));
}

/** One metric family: a name, help, type, label names, and its series by label values. */
export class MetricFamily {
  private readonly series = new Map<string, ScalarSeries | HistogramSeries>();
  private readonly bounds: Array<{ pow: number; le: string }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly labelNames: readonly string[],
    private readonly hold: ZeroHold,
    readonly buckets?: Log2Buckets,
  ) {
    if (kind === 'histogram') {
      if (!buckets) throw new Error(`${name}: a histogram needs buckets`);
      for (let k = buckets.lowPow; k <= buckets.highPow; k += buckets.step) this.bounds.push({ pow: k, le: formatBound(2 ** k * buckets.scale) });
    }
  }

  private get(labels: readonly string[]): ScalarSeries | HistogramSeries {
    const key = labels.join('\u0001');
    let s = this.series.get(key);
    if (!s) {
      if (labels.length !== this.labelNames.length) throw new Error(`${this.name}: ${labels.length} label values for ${this.labelNames.length} labels`);
      s = this.kind === 'histogram'
        ? { labels: [...labels], shownAt: null, counts: new Float64Array(LOG2_BUCKETS), sum: 0, count: 0 }
        : { labels: [...labels], shownAt: null, value: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  /** Adds to a counter (n >= 0). */
  inc(labels: readonly string[], n = 1): void {
    if (!(n > 0)) { if (n === 0) this.get(labels); return; }
    (this.get(labels) as ScalarSeries).value += n;
  }

  /** Sets a gauge, or a counter from a total counted elsewhere (it never goes down). */
  set(labels: readonly string[], v: number): void {
    const s = this.get(labels) as ScalarSeries;
    s.value = this.kind === 'counter' ? Math.max(s.value, v) : v;
  }

  /** One observation, in the family's native unit. */
  observe(labels: readonly string[], value: number): void {
    const s = this.get(labels) as HistogramSeries;
    s.counts[Log2Histogram.bucketOf(value)]++;
    s.count++;
    s.sum += value;
  }

  /** One value or many already bucketed. */
  record(labels: readonly string[], o: Observation): void {
    if (typeof o === 'number') this.observe(labels, o);
    else this.observeBuckets(labels, o.log2, o.sum);
  }

  /** Observations already bucketed (log2, native unit), e.g. a delta read from an in-kernel histogram. */
  observeBuckets(labels: readonly string[], counts: ArrayLike<number>, sum: number): void {
    const s = this.get(labels) as HistogramSeries;
    let n = 0;
    for (let k = 0; k < counts.length && k < LOG2_BUCKETS; k++) { s.counts[k] += counts[k]; n += counts[k]; }
    s.count += n;
    s.sum += sum;
  }

  /** Deletes every series whose label `labelName` has value `value` (an evicted destination or container). */
  deleteWhere(labelName: string, value: string): number {
    const i = this.labelNames.indexOf(labelName);
    if (i < 0) return 0;
    let n = 0;
    for (const [k, s] of this.series) if (s.labels[i] === value) { this.series.delete(k); n++; }
    return n;
  }

  /** Deletes every series. */
  clear(): void {
    this.series.clear();
  }

  get size(): number {
    return this.series.size;
  }

  /** The value of a counter or gauge series as counted (not as exposed), or undefined. */
  value(labels: readonly string[]): number | undefined {
    const s = this.series.get(labels.join('\u0001'));
    return s && 'value' in s ? s.value : undefined;
  }

  private labelText(values: readonly string[], extra?: string): string {
    const parts: string[] = [];
    values.forEach((v, i) => { if (v !== '') parts.push(`${this.labelNames[i]}="${escapeLabel(v)}"`); });
    if (extra) parts.push(extra);
    return parts.length ? `{${parts.join(',')}}` : '';
  }

  /** The family in the text format (nothing when it has no series). */
  expose(t: number): string {
    if (this.series.size === 0) return '';
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`];
    const scale = this.buckets?.scale ?? 1;
    for (const s of this.series.values()) {
      const shown = this.hold.visible(s, t);
      if ('value' in s) {
        out.push(`${this.name}${this.labelText(s.labels)} ${formatValue(shown || this.kind === 'gauge' ? s.value : 0)}`);
        continue;
      }
      let cum = 0, k = 0;
      for (const b of this.bounds) {
        for (; k <= b.pow && k < LOG2_BUCKETS; k++) cum += s.counts[k];
        out.push(`${this.name}_bucket${this.labelText(s.labels, `le="${b.le}"`)} ${shown ? cum : 0}`);
      }
      out.push(`${this.name}_bucket${this.labelText(s.labels, 'le="+Inf"')} ${shown ? s.count : 0}`);
      out.push(`${this.name}_sum${this.labelText(s.labels)} ${shown ? formatValue(s.sum * scale) : 0}`);
      out.push(`${this.name}_count${this.labelText(s.labels)} ${shown ? s.count : 0}`);
    }
    return out.join('\n') + '\n';
  }
}

/** The families of one exporter, exposed together. */
export class SeriesRegistry {
  readonly families: MetricFamily[] = [];
  constructor(readonly hold: ZeroHold) {}

  counter(name: string, help: string, labelNames: readonly string[] = []): MetricFamily {
    return this.add(new MetricFamily(name, help, 'counter', labelNames, this.hold));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): MetricFamily {
    return this.add(new MetricFamily(name, help, 'gauge', labelNames, this.hold));
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: Log2Buckets): MetricFamily {
    return this.add(new MetricFamily(name, help, 'histogram', labelNames, this.hold, buckets));
  }

  private add(f: MetricFamily): MetricFamily {
    if (this.families.some((x) => x.name === f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.families.push(f);
    return f;
  }

  /** Deletes the series of every family whose label `labelName` is `value`. */
  deleteWhere(labelName: string, value: string): number {
    let n = 0;
    for (const f of this.families) n += f.deleteWhere(labelName, value);
    return n;
  }

  /** Every family in the text format. */
  expose(t = this.hold.now()): string {
    return this.families.map((f) => f.expose(t)).join('');
  }
}
