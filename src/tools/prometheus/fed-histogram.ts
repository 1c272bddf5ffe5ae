/**
 * A prom-client Histogram that also takes counts aggregated elsewhere: log2-bucketed counts from the kernel's maps
 * (bpf/agg.bpf.h) added in bulk, without one observe() call (and one labels object) per event. Same name, help,
 * labels and buckets as the plain Histogram; the kernel's counts are added to the exposition at scrape time.
 *
 * Placement: a log2 bucket [2^(k-1), 2^k) of the source unit goes to the first Prometheus bucket whose bound is at
 * least its upper edge 2^k (converted to the histogram's unit), so no value is counted below its true bucket; a
 * value can show up to one log2 step (2x) high. _sum and _count are exact.
 */
import { Histogram, type LabelValues } from 'prom-client';
import type { BulkHistogram } from '../../core/kernel-summary.js';

interface FedSeries { labels: Record<string, string | number>; buckets: Float64Array; sum: number; count: number }
interface ValuePair { labels: Record<string, string | number>; sharedLabels?: Record<string, string | number>; value: number; metricName?: string }
interface PromData { values: ValuePair[] }

export class FedHistogram<T extends string> extends Histogram<T> {
  private readonly fed = new Map<string, FedSeries>();
  private readonly bounds: number[];

  constructor(config: ConstructorParameters<typeof Histogram<T>>[0] & { buckets: number[] }) {
    super(config);
    this.bounds = [...config.buckets].sort((a, b) => a - b);
  }

  /** Adds counts bucketed by log2 of a value in some unit; `toUnit` converts that unit to this histogram's. */
  observeLog2(labels: LabelValues<T>, h: BulkHistogram, toUnit: number): void {
    let n = 0;
    for (let k = 0; k < h.log2.length; k++) n += h.log2[k];
    if (n === 0) return;
    const id = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    let s = this.fed.get(id);
    if (!s) this.fed.set(id, (s = { labels: { ...labels } as Record<string, string | number>, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 }));
    for (let k = 0; k < h.log2.length; k++) {
      const c = h.log2[k];
      if (!c) continue;
      const upper = (k === 0 ? 1 : 2 ** k) * toUnit;
      const i = this.bounds.findIndex((b) => b >= upper);
      if (i >= 0) s.buckets[i] += c; // past the last bound: only in +Inf (the count)
    }
    s.sum += h.sum * toUnit;
    s.count += n;
  }

  /** prom-client's exposition (what registry.metrics() prints) with the fed series appended. */
  async getForPromString(): Promise<PromData> {
    const base = await (Histogram.prototype as unknown as { getForPromString(this: Histogram<T>): Promise<PromData> }).getForPromString.call(this);
    const name = (this as unknown as { name: string }).name; // prom-client keeps it on the instance
    const bucketName = `${name}_bucket`;
    for (const s of this.fed.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i];
        base.values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: bucketName });
      });
      base.values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucketName });
      base.values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${name}_sum` });
      base.values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${name}_count` });
    }
    return base;
  }

  override reset(): void {
    super.reset();
    this.fed?.clear();
  }
}
