/**
 * A per-destination table with a hard cap: per-destination labels explode on busy hosts (and under
 * spoofed-source floods), so past `maxKeys` new keys fold into one "other" row, and the fold is counted.
 */
export const OTHER_KEY = 'other';

export class BoundedTable<V> {
  readonly maxKeys: number;
  private readonly rows = new Map<string, V>();
  private readonly create: (key: string) => V;
  private other: V | null = null;
  /** Distinct keys that did not get a row of their own (an upper bound: a key folded twice counts twice). */
  foldedKeys = 0;
  private readonly seenFolded = new Set<string>();

  constructor(maxKeys: number, create: (key: string) => V) {
    this.maxKeys = maxKeys;
    this.create = create;
  }

  /** The row for `key`, creating it, or the "other" row when the table is full. */
  row(key: string): V {
    let v = this.rows.get(key);
    if (v !== undefined) return v;
    if (this.rows.size < this.maxKeys) {
      v = this.create(key);
      this.rows.set(key, v);
      return v;
    }
    // Remember a bounded sample of folded keys so repeat visitors are not counted again.
    if (!this.seenFolded.has(key)) {
      this.foldedKeys++;
      if (this.seenFolded.size < 65536) this.seenFolded.add(key);
    }
    if (!this.other) this.other = this.create(OTHER_KEY);
    return this.other;
  }

  /** The "other" row, created if needed, for data folded before it reached this table (e.g. in the kernel). */
  foldedRow(): V {
    if (!this.other) this.other = this.create(OTHER_KEY);
    return this.other;
  }

  /** The row for `key` if it has one of its own (never creates, never folds). */
  peek(key: string): V | undefined {
    return this.rows.get(key);
  }

  get size(): number {
    return this.rows.size;
  }

  /** Every row: those of their own, then "other" if anything folded into it. */
  allRows(): V[] {
    const all = [...this.rows.values()];
    if (this.other) all.push(this.other);
    return all;
  }

  otherRow(): V | null {
    return this.other;
  }
}
