/** The top-talker reader (src/core/top-k.ts) against a model of the kernel's space-saving buckets (bpf/topk.bpf.h
 * TOPK_SLOT, step by step): on skewed and uniform streams split over CPUs, every named key's true count lies in
 * [count, countMax], the width is within bucketTotal / slots, every key above that is named, and the total is exact. */
import { describe, expect, it } from 'vitest';
import { TopKTable, topkHash } from '../../src/core/top-k.js';
import { DROP_TOP_BUCKET_LAYOUT as B, DROP_TOP_SLOT_LAYOUT as S } from '../../src/tools/drops/bpf.gen.js';

const SLOTS = B.arrays.count[1];

/** One CPU's bucket as the kernel keeps it. */
interface Bucket { count: number[]; hash: number[]; key: number[]; err: number[]; bytes: number[] }

/** The kernel's per-CPU arrays of buckets, updated exactly as TOPK_SLOT and count_top do. */
class KernelModel {
  readonly cpus: Bucket[][];
  constructor(readonly buckets: number, cpus: number) {
    this.cpus = Array.from({ length: cpus }, () => Array.from({ length: buckets }, () => ({
      count: Array(SLOTS).fill(0), hash: Array(SLOTS).fill(0), key: Array(SLOTS).fill(0), err: Array(SLOTS).fill(0), bytes: Array(SLOTS).fill(0),
    })));
  }

  static hash(key: number): number {
    return Math.imul(key ^ (key >>> 16), 0x45d9f3b) >>> 0;
  }

  add(cpu: number, key: number, len = 100): void {
    const h = KernelModel.hash(key);
    const b = this.cpus[cpu][h % this.buckets];
    let hit = SLOTS, min = 0;
    for (let i = 0; i < SLOTS; i++) {
      if (b.hash[i] === h && b.count[i] && b.key[i] === key) { hit = i; break; }
      if (b.count[i] < b.count[min]) min = i;
    }
    if (hit === SLOTS) {
      hit = min;
      b.key[hit] = key;
      b.hash[hit] = h;
      b.err[hit] = b.count[hit];
      b.bytes[hit] = 0;
    }
    b.count[hit]++;
    b.bytes[hit] += len;
  }

  /** The map as mapDump returns a per-CPU array: u32 indexes, then each bucket's per-CPU copies. */
  dump() {
    const keys = Buffer.alloc(4 * this.buckets);
    const values = Buffer.alloc(B.stride * this.buckets * this.cpus.length);
    for (let i = 0; i < this.buckets; i++) {
      keys.writeUInt32LE(i, 4 * i);
      this.cpus.forEach((arr, c) => {
        const o = (i * this.cpus.length + c) * B.stride, b = arr[i];
        for (let s = 0; s < SLOTS; s++) {
          values.writeBigUInt64LE(BigInt(b.count[s]), o + B.fields.count[0] + 8 * s);
          values.writeUInt32LE(b.hash[s], o + B.fields.hash[0] + 4 * s);
          const so = o + B.fields.slots[0] + s * S.size;
          values.writeUInt32LE(b.key[s], so + S.fields.key[0]);
          values.writeBigUInt64LE(BigInt(b.err[s]), so + S.fields.err[0]);
          values.writeBigUInt64LE(BigInt(b.bytes[s]), so + S.fields.bytes[0]);
        }
      });
    }
    return { count: this.buckets, keys, values };
  }
}

/** A deterministic pseudo-random sequence (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

function check(model: KernelModel, truth: Map<number, number>, events: number) {
  const read = new TopKTable(B, S).readDump(model.dump(), model.cpus.length);
  expect(read.total).toBe(events);
  expect(read.slots).toBe(SLOTS);
  const named = new Map(read.rows.map((r) => [r.key.readUInt32LE(0), r]));
  for (const r of read.rows) {
    const t = truth.get(r.key.readUInt32LE(0)) ?? 0;
    expect(t).toBeGreaterThanOrEqual(r.count);
    expect(t).toBeLessThanOrEqual(r.countMax);
    expect(r.countMax - r.count).toBeLessThanOrEqual(r.bucketTotal / SLOTS);
    expect(r.values.bytes).toBe(r.count * 100); // bytes cover exactly the counted drops
  }
  // Every key with more than its bucket's total / slots is named.
  const bucketTotals = new Map<number, number>();
  for (const [k, n] of truth) bucketTotals.set(KernelModel.hash(k) % model.buckets, (bucketTotals.get(KernelModel.hash(k) % model.buckets) ?? 0) + n);
  for (const [k, n] of truth) if (n > bucketTotals.get(KernelModel.hash(k) % model.buckets)! / SLOTS) expect(named.has(k)).toBe(true);
  return { read, named };
}

describe('TopKTable (space-saving per bucket, per CPU)', () => {
  it('a skewed flood over 2 CPUs: half from 10 heavy sources, half from 100,000 light ones; the 10 are the top rows, within bound', () => {
    const model = new KernelModel(64, 2);
    const truth = new Map<number, number>();
    const rand = rng(7);
    const N = 200_000;
    for (let i = 0; i < N; i++) {
      const key = i % 2 === 0 ? 1 + ((i / 2) % 10) : 1000 + Math.floor(rand() * 100_000);
      model.add(rand() < 0.3 ? 1 : 0, key);
      truth.set(key, (truth.get(key) ?? 0) + 1);
    }
    const { read } = check(model, truth, N);
    const top = read.rows.slice(0, 10).map((r) => r.key.readUInt32LE(0)).sort((a, b) => a - b);
    expect(top).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const r of read.rows.slice(0, 10)) expect(r.countMax - r.count).toBeLessThan(0.01 * r.count);
  });

  it('uniform churn (every key new): counts stay within bound and the total exact; without evictions every count is exact', () => {
    const churn = new KernelModel(16, 2);
    const truth = new Map<number, number>();
    for (let i = 0; i < 5000; i++) { churn.add(i % 2, 100 + i); truth.set(100 + i, 1); }
    check(churn, truth, 5000);

    const few = new KernelModel(16, 2);
    const exact = new Map<number, number>();
    for (let i = 0; i < 300; i++) { const k = 1 + (i % 5); few.add(i % 3 === 0 ? 1 : 0, k); exact.set(k, (exact.get(k) ?? 0) + 1); }
    const { read } = check(few, exact, 300);
    for (const r of read.rows) expect([r.count, r.countMax]).toEqual([exact.get(r.key.readUInt32LE(0)), exact.get(r.key.readUInt32LE(0))]);
  });

  it('given the seed, leaves out a slot whose key no longer matches its stored hash (copied mid-rewrite); its count stays in the total', () => {
    const seed = 0x1234_5678_9abc_def0n;
    const model = new KernelModel(1, 1);
    for (let i = 0; i < 7; i++) model.add(0, 1);
    for (let i = 0; i < 3; i++) model.add(0, 2);
    const dump = model.dump();
    const key = (k: number) => { const b = Buffer.alloc(S.fields.key[1]); b.writeUInt32LE(k); return b; };
    // Stored hashes as the kernel writes them (topk_hash with the seed), then one slot torn: key 2 half-rewritten to 3.
    dump.values.writeUInt32LE(topkHash(key(1), seed), B.fields.hash[0]);
    dump.values.writeUInt32LE(topkHash(key(2), seed), B.fields.hash[0] + 4);
    const intact = new TopKTable(B, S, seed).readDump(dump, 1);
    expect(intact.rows.map((r) => [r.key.readUInt32LE(0), r.count])).toEqual([[1, 7], [2, 3]]);
    dump.values.writeUInt32LE(3, B.fields.slots[0] + S.size + S.fields.key[0]);
    const torn = new TopKTable(B, S, seed).readDump(dump, 1);
    expect(torn.rows.map((r) => [r.key.readUInt32LE(0), r.count])).toEqual([[1, 7]]);
    expect(torn.total).toBe(10);
    // The hash is topk_hash's: words xor-multiplied in, murmur3's finalizer (pinned: the kernel side must agree).
    expect(topkHash(Buffer.alloc(8), 0n)).toBe(0);
    expect(topkHash(key(1), seed)).toBe(topkHash(key(1), seed));
    expect(topkHash(key(1), seed)).not.toBe(topkHash(key(1), seed + 1n));
  });

  it('refuses layouts without count and slots arrays', () => {
    expect(() => new TopKTable(S, S)).toThrow(/needs u64 count/);
  });
});
