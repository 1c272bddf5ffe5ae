/**
 * A bounded uniform sample (Vitter's algorithm R) for quantiles: exact while fewer than `capacity` values
 * were added, a uniform sample of all values after that. Log2 histograms only bound a quantile within 2x.
 */
export class Reservoir {
  readonly capacity: number;
  private readonly values: number[] = [];
  private sorted = true;
  /** Values offered, kept or not. */
  count = 0;
  private readonly random: () => number;

  constructor(capacity = 1024, random: () => number = Math.random) {
    this.capacity = capacity;
    this.random = random;
  }

  add(value: number): void {
    this.count++;
    if (this.values.length < this.capacity) {
      this.values.push(value);
      this.sorted = false;
      return;
    }
    const j = Math.floor(this.random() * this.count);
    if (j < this.capacity) {
      this.values[j] = value;
      this.sorted = false;
    }
  }

  /** Whether quantiles are exact (every value kept). */
  get exact(): boolean {
    return this.count <= this.capacity;
  }

  /** Nearest-rank quantile (q in 0..1) of the kept values; 0 when empty. */
  quantile(q: number): number {
    if (this.values.length === 0) return 0;
    if (!this.sorted) {
      this.values.sort((a, b) => a - b);
      this.sorted = true;
    }
    const rank = Math.min(this.values.length, Math.max(1, Math.ceil(q * this.values.length)));
    return this.values[rank - 1];
  }
}
