/**
 * Reads in-kernel aggregation maps (bpf/agg.bpf.h), written once for every tool: a per-CPU hash map of summary
 * key -> counters. Each read dumps the map, merges each key's per-CPU copies field by field (stepped by the
 * generated stride, not the struct size), and returns what each key gained since the previous read, so a tool's
 * aggregator takes counts in bulk exactly as it would have taken the events one by one.
 *
 * How fields merge across CPUs follows their names in the contract: min_* take the smallest and max_* the
 * largest value of the CPUs that counted anything, first_* the earliest and last_* the latest (non-zero), every
 * other scalar and every array element (log2 histograms) adds up. Deltas subtract the previous read for the
 * adding fields; min/max/first/last are reported as they stand.
 */
import { addon, type MapDump, type NativeBpfObject } from './addon.js';
import type { Layout } from './record.js';

/** One key's merged values: scalars by field name, arrays (histograms) as Float64Array. */
export type KernelValues = Record<string, number | Float64Array>;

export interface KernelRow {
  /** The key's bytes (a copy, decode with the key layout). */
  key: Buffer;
  /** Cumulative values since the map was created. */
  total: KernelValues;
  /** What the key gained since the previous read (adding fields); min/max/first/last as in total. */
  delta: KernelValues;
}

type Merge = 'sum' | 'min' | 'max';

function mergeOf(field: string): Merge {
  if (field.startsWith('min_') || field.startsWith('first_')) return 'min';
  if (field.startsWith('max_') || field.startsWith('last_')) return 'max';
  return 'sum';
}

function readView(dv: DataView, o: number, size: number): number {
  switch (size) {
    case 1: return dv.getUint8(o);
    case 2: return dv.getUint16(o, true);
    case 4: return dv.getUint32(o, true);
    default: return dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
  }
}

/** Per-CPU aggregation maps of one key and value layout (a tool's table and its fold map), read as cumulative
 * totals and deltas per key. */
export class KernelTable {
  private readonly previous = new Map<string, KernelValues>();
  /** Each key's per-CPU bytes as of the previous read: a key whose bytes did not change is skipped unmerged (most
   * keys of a busy map, e.g. one per connection end, stop changing after their event). */
  private readonly previousBytes = new Map<string, Buffer>();
  private readonly fields: Array<{ name: string; offset: number; size: number; count: number; array: boolean; merge: Merge }>;
  /** The field that is non-zero on a CPU that counted the key: only those CPUs take part in min/max. */
  private readonly countField: { offset: number; size: number } | null;

  /**
   * `valueLayout` must be the generated layout of the map's value struct (its stride steps the per-CPU copies);
   * `countField` names the field that is non-zero on a CPU that counted the key (for min/max merging).
   */
  constructor(readonly keyLayout: Layout, readonly valueLayout: Layout, countField: string | null = 'count') {
    const arrays = valueLayout.arrays;
    this.fields = Object.entries(valueLayout.fields)
      .filter(([name]) => !name.startsWith('pad'))
      .map(([name, [offset, size]]) => {
        const array = arrays[name];
        return { name, offset, size: array ? array[0] : size, count: array ? array[1] : 1, array: !!array, merge: mergeOf(name) };
      });
    const cf = countField === null ? undefined : valueLayout.fields[countField];
    this.countField = cf ? { offset: cf[0], size: cf[1] } : null;
  }

  /** Dumps `map` of a running object and returns every key that gained something since the previous read. */
  read(obj: NativeBpfObject, map: string): KernelRow[] {
    return this.readDump(obj.mapDump(map), addon().numPossibleCpus);
  }

  /** The same for a dump taken elsewhere: packed keys, and `cpus` per-CPU copies of each value. */
  readDump(dump: MapDump, cpus: number): KernelRow[] {
    const ks = this.keyLayout.size;
    const stride = this.valueLayout.stride;
    const rows: KernelRow[] = [];
    const vs = stride * cpus;
    for (let i = 0; i < dump.count; i++) {
      const keyBytes = dump.keys.subarray(i * ks, (i + 1) * ks);
      const id = keyBytes.toString('latin1');
      const bytes = dump.values.subarray(i * vs, (i + 1) * vs);
      const before = this.previousBytes.get(id);
      if (before !== undefined && before.equals(bytes)) continue;
      if (before !== undefined && before.length === bytes.length) bytes.copy(before);
      else this.previousBytes.set(id, Buffer.from(bytes));
      const key = Buffer.from(keyBytes);
      const total = this.merge(dump.values, i * vs, stride, cpus);
      const prev = this.previous.get(id);
      const delta = this.subtract(total, prev);
      this.previous.set(id, total);
      if (!prev || this.grew(delta)) rows.push({ key, total, delta });
    }
    return rows;
  }

  /** Forgets a key's previous totals (after user space deleted it from the map). */
  forget(key: Buffer): void {
    this.previous.delete(key.toString('latin1'));
    this.previousBytes.delete(key.toString('latin1'));
  }

  private merge(values: Buffer, base: number, stride: number, cpus: number): KernelValues {
    const dv = new DataView(values.buffer, values.byteOffset, values.length);
    const out: KernelValues = {};
    for (const f of this.fields) out[f.name] = f.array ? new Float64Array(f.count) : f.merge === 'min' ? NaN : 0;
    for (let c = 0; c < cpus; c++) {
      const v = base + c * stride;
      // min/max/first/last only from CPUs that counted the key (the others hold zeros); sums from every CPU.
      const counted = !this.countField || readView(dv, v + this.countField.offset, this.countField.size) !== 0;
      for (const f of this.fields) {
        if (f.array) {
          const arr = out[f.name] as Float64Array;
          let o = v + f.offset;
          // Log2 histograms are u64 arrays: read as two u32 halves, no per-element size dispatch.
          if (f.size === 8) for (let k = 0; k < f.count; k++, o += 8) arr[k] += dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
          else for (let k = 0; k < f.count; k++, o += f.size) arr[k] += readView(dv, o, f.size);
          continue;
        }
        const x = readView(dv, v + f.offset, f.size);
        const cur = out[f.name] as number;
        if (f.merge === 'sum') out[f.name] = cur + x;
        else if (!counted) continue;
        else if (f.merge === 'min') out[f.name] = Number.isNaN(cur) || x < cur ? x : cur;
        else out[f.name] = x > cur ? x : cur;
      }
    }
    // No CPU counted anything: min fields stay 0, like the others.
    for (const f of this.fields) if (f.merge === 'min' && Number.isNaN(out[f.name] as number)) out[f.name] = 0;
    return out;
  }

  private subtract(total: KernelValues, prev: KernelValues | undefined): KernelValues {
    if (!prev) return total;
    const out: KernelValues = {};
    for (const f of this.fields) {
      const t = total[f.name];
      if (t instanceof Float64Array) {
        const p = prev[f.name] as Float64Array;
        const d = new Float64Array(t.length);
        for (let k = 0; k < t.length; k++) d[k] = t[k] - p[k];
        out[f.name] = d;
      } else out[f.name] = f.merge === 'sum' ? t - (prev[f.name] as number) : t;
    }
    return out;
  }

  private grew(delta: KernelValues): boolean {
    for (const f of this.fields) {
      if (f.merge !== 'sum') continue;
      const d = delta[f.name];
      if (d instanceof Float64Array ? d.some((x) => x > 0) : d > 0) return true;
    }
    return false;
  }
}
