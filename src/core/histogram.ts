/** Log2 histograms, as BCC/bpftrace print them: bucket k holds values in [2^(k-1), 2^k), bucket 0 holds 0. */
export interface HistogramData {
  /** Unit of the values, e.g. "us", "ms", "bytes", "count". */
  unit: string;
  /** Bucket lower bounds and counts, only non-empty ranges between the first and last used bucket. */
  buckets: Array<{ low: number; high: number; count: number }>;
  count: number;
  sum: number;
  min: number;
  max: number;
}

export class Log2Histogram {
  readonly unit: string;
  private counts = new Float64Array(65);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(unit: string) {
    this.unit = unit;
  }

  /** Bucket index of a value: 0 for 0 (and negatives), else floor(log2(v)) + 1. */
  static bucketOf(value: number): number {
    if (!(value >= 1)) return 0;
    // Integers below 2^32 (nearly all values) by counting leading zeros; the rest by log2.
    if (value < 4294967296) return 32 - Math.clz32(value);
    return Math.min(64, Math.floor(Math.log2(value)) + 1);
  }

  add(value: number, times = 1): void {
    this.counts[Log2Histogram.bucketOf(value)] += times;
    this.count += times;
    this.sum += value * times;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /** Adds counts already bucketed elsewhere (e.g. by a BPF program): counts[k] into bucket k, with their sum and range. */
  addBuckets(counts: ArrayLike<number>, sum: number, min: number, max: number): void {
    let n = 0;
    for (let i = 0; i < counts.length && i < 65; i++) { this.counts[i] += counts[i]; n += counts[i]; }
    if (n === 0) return;
    this.count += n;
    this.sum += sum;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
  }

  merge(other: Log2Histogram): void {
    for (let i = 0; i < 65; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** Approximate quantile (q in 0..1): the upper bound of the bucket holding it, clamped to the observed max. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = q * this.count;
    let seen = 0;
    for (let i = 0; i < 65; i++) {
      seen += this.counts[i];
      if (seen >= target && this.counts[i] > 0) return Math.min(i === 0 ? 0 : 2 ** i - 1, this.max);
    }
    return this.max;
  }

  toJSON(): HistogramData {
    const buckets: HistogramData['buckets'] = [];
    let first = -1, last = -1;
    for (let i = 0; i < 65; i++) if (this.counts[i] > 0) { if (first < 0) first = i; last = i; }
    for (let i = first; i >= 0 && i <= last; i++) {
      buckets.push({ low: i === 0 ? 0 : 2 ** (i - 1), high: i === 0 ? 0 : 2 ** i - 1, count: this.counts[i] });
    }
    return {
      unit: this.unit, buckets, count: this.count, sum: this.sum,
      min: this.count ? this.min : 0, max: this.count ? this.max : 0,
    };
  }
}

/** Renders a histogram as BCC-style bar chart lines. */
export function renderHistogram(h: HistogramData, title: string, width = 40): string[] {
  if (h.count === 0) return [`     ${title}: (none)`];
  const peak = Math.max(...h.buckets.map((b) => b.count));
  const label = (b: { low: number; high: number }) => `${b.low} -> ${b.high}`;
  const labelWidth = Math.max(...h.buckets.map((b) => label(b).length), title.length);
  const lines = [`     ${title.padStart(labelWidth)} : count     distribution`];
  for (const b of h.buckets) {
    const bar = '*'.repeat(Math.round((b.count / peak) * width));
    lines.push(`     ${label(b).padStart(labelWidth)} : ${String(b.count).padEnd(9)} |${bar.padEnd(width)}|`);
  }
  return lines;
}
