/**
 * Reads top-talker maps (bpf/topk.bpf.h), written once for every tool: a per-CPU array of buckets, each with a few
 * space-saving slots (key, count, err, then the tool's own fields). Each read merges the CPUs into one row per key
 * with an exact count and a proven upper bound:
 *
 *   count    = sum over the CPUs holding the key of (count - err): its drops since it took its slot there (exact)
 *   countMax = sum over those CPUs of count, plus, for each CPU not holding it, the smallest count of its bucket
 *              there (a key that is not in a space-saving summary had at most that many)
 *
 * so the key's true number is in [count, countMax], and countMax - count <= bucketTotal / slots, where bucketTotal
 * is the number of events whose keys hashed to the key's bucket (all CPUs): each err and each minimum is at most
 * its CPU's bucket total divided by the slots. A key with more than bucketTotal / slots events is always named.
 * `total` (all slots' counts) is exactly the number of events the map took: rows plus "other" account for all.
 *
 * The tool's own fields merge by name as in kernel-table.ts (first_* earliest, last_* latest, others add up) and
 * cover the same events as `count`.
 *
 * Reads happen while the kernel writes: a slot being rewritten at that instant can be copied half old, half new.
 * Given the hash seed, such a slot (its key no longer matching its stored hash) is left out of the rows (its
 * count stays in the total, so it lands in "other"); reads after detaching are exact.
 */
import { addon, type MapDump, type NativeBpfObject } from './addon.js';
import type { Layout } from './record.js';

/** One key of a top-talker map, merged over the CPUs. */
export interface TopKRow {
  /** The key's bytes (a copy, decode with the key layout). */
  key: Buffer;
  /** Events counted since the key took its slot (exact): a lower bound of its events. */
  count: number;
  /** An upper bound of its events (count + what it may have had before it took its slots). */
  countMax: number;
  /** Events whose keys hashed to the same bucket, all CPUs: countMax - count <= bucketTotal / slots. */
  bucketTotal: number;
  /** The tool's own fields, merged over the CPUs holding the key. */
  values: Record<string, number>;
}

export interface TopKRead {
  /** Every key held by at least one CPU, by count (descending). */
  rows: TopKRow[];
  /** Events the map took (the sum of every slot's count): exact. */
  total: number;
  /** Slots per bucket (the divisor of the bound). */
  slots: number;
}

type Merge = 'sum' | 'min' | 'max';

const MASK64 = (1n << 64n) - 1n;

/** topk_hash() of bpf/topk.bpf.h: the 32-bit hash of a key (a multiple of 8 bytes) with the run's seed. */
export function topkHash(key: Buffer, seed: bigint): number {
  let h = seed & MASK64;
  for (let o = 0; o + 8 <= key.length; o += 8) h = ((h ^ key.readBigUInt64LE(o)) * 0x9e3779b97f4a7c15n) & MASK64;
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & MASK64;
  h ^= h >> 33n;
  return Number(h & 0xffffffffn);
}

const u64 = (b: Buffer, o: number): number => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 4294967296;

/** A per-CPU array of space-saving buckets (bpf/topk.bpf.h): `bucketLayout` has arrays `count` (u64) and `slots`
 * (`slotLayout` structs starting with `key` and u64 `err`), one element per slot. */
export class TopKTable {
  private readonly slots: number;
  private readonly slotSize: number;
  private readonly slotsAt: number;
  private readonly countAt: number;
  private readonly hashAt: number | null;
  private readonly key: readonly [number, number];
  private readonly err: number;
  private readonly extra: Array<{ name: string; offset: number; merge: Merge }>;

  /** `seed`: the hash seed the kernel side was loaded with (topk_hash), to leave out slots read mid-rewrite. */
  constructor(readonly bucketLayout: Layout, readonly slotLayout: Layout, private readonly seed: bigint | null = null) {
    const b = bucketLayout.fields as Record<string, readonly [number, number]>;
    const ba = bucketLayout.arrays as Record<string, readonly [number, number]>;
    if (!b.slots || !b.count || ba.slots?.[0] !== slotLayout.size || ba.count?.[0] !== 8 || ba.count[1] !== ba.slots[1]) {
      throw new Error(`top-k: ${bucketLayout.struct} needs u64 count[n] and ${slotLayout.struct} slots[n]`);
    }
    this.slots = ba.slots[1];
    this.slotSize = slotLayout.size;
    this.slotsAt = b.slots[0];
    this.countAt = b.count[0];
    this.hashAt = b.hash && ba.hash?.[0] === 4 ? b.hash[0] : null;
    const f = slotLayout.fields as Record<string, readonly [number, number]>;
    if (!f.key || f.err?.[1] !== 8) throw new Error(`top-k: ${slotLayout.struct} needs key and u64 err`);
    this.key = f.key;
    this.err = f.err[0];
    this.extra = Object.entries(f)
      .filter(([name, [, size]]) => !['key', 'err'].includes(name) && !name.startsWith('pad') && size === 8)
      .map(([name, [offset]]) => ({ name, offset, merge: name.startsWith('first_') ? 'min' : name.startsWith('last_') ? 'max' : 'sum' }));
  }

  /** Dumps `map` of a running (or detached) object and merges it. */
  read(obj: NativeBpfObject, map: string): TopKRead {
    return this.readDump(obj.mapDump(map), addon().numPossibleCpus);
  }

  /** The same for a dump taken elsewhere: u32 bucket indexes, and `cpus` per-CPU copies of each bucket. */
  readDump(dump: MapDump, cpus: number): TopKRead {
    const stride = this.bucketLayout.stride;
    const [ko, ks] = this.key;
    let total = 0;
    const rows = new Map<string, TopKRow & { cpus: Set<number>; bucket: number }>();
    const minima: number[][] = []; // [bucket][cpu]
    const masses: number[] = [];
    for (let i = 0; i < dump.count; i++) {
      const mins: number[] = [];
      let mass = 0;
      for (let c = 0; c < cpus; c++) {
        const base = (i * cpus + c) * stride;
        let min = Infinity;
        for (let s = 0; s < this.slots; s++) {
          const o = base + this.slotsAt + s * this.slotSize;
          const count = u64(dump.values, base + this.countAt + s * 8);
          if (count < min) min = count;
          if (!count) continue;
          mass += count;
          if (this.seed !== null && this.hashAt !== null &&
              topkHash(dump.values.subarray(o + ko, o + ko + ks), this.seed) !== dump.values.readUInt32LE(base + this.hashAt + s * 4)) {
            continue; // copied while the kernel rewrote it: counted in the total, not named
          }
          const id = dump.values.toString('latin1', o + ko, o + ko + ks);
          let row = rows.get(id);
          if (!row) {
            row = { key: Buffer.from(dump.values.subarray(o + ko, o + ko + ks)), count: 0, countMax: 0, bucketTotal: 0, values: {}, cpus: new Set(), bucket: i };
            for (const x of this.extra) row.values[x.name] = x.merge === 'min' ? Infinity : 0;
            rows.set(id, row);
          }
          const err = u64(dump.values, o + this.err);
          row.count += count - err;
          row.countMax += count;
          row.cpus.add(c);
          for (const x of this.extra) {
            const v = u64(dump.values, o + x.offset);
            const cur = row.values[x.name];
            row.values[x.name] = x.merge === 'sum' ? cur + v : x.merge === 'min' ? Math.min(cur, v) : Math.max(cur, v);
          }
        }
        mins.push(min === Infinity ? 0 : min);
      }
      minima.push(mins);
      masses.push(mass);
      total += mass;
    }
    const out: TopKRow[] = [];
    for (const row of rows.values()) {
      const mins = minima[row.bucket];
      for (let c = 0; c < cpus; c++) if (!row.cpus.has(c)) row.countMax += mins[c];
      for (const x of this.extra) if (row.values[x.name] === Infinity) row.values[x.name] = 0;
      out.push({ key: row.key, count: row.count, countMax: row.countMax, bucketTotal: masses[row.bucket], values: row.values });
    }
    out.sort((a, b) => b.count - a.count);
    return { rows: out, total, slots: this.slots };
  }
}
