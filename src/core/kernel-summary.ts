/**
 * Summaries counted in the kernel, written once for every tool: a summary-only run sets its object's
 * aggregate_in_kernel, so each event updates a per-CPU map entry (bpf/agg.bpf.h) instead of sending a record; user
 * space reads the tool's key map and fold map at each interval and at exit (KernelTable: per-CPU merge, deltas) and
 * feeds what each key gained into the tool's own aggregator in bulk, so the summary is the one the event path gives.
 */
import { addon, type NativeBpfObject } from './addon.js';
import { KernelTable, type KernelValues } from './kernel-table.js';
import type { Layout } from './record.js';
import type { StartInfo, Trace, TraceCounters } from './trace.js';

/** How a summary-only run aggregates in the kernel (what the tool's spec needs to set it up). */
export interface KernelAggregation {
  /** Keys of the tool's key map before events fold into "other". */
  keys: number;
  /** The last read of the maps before the object closes. */
  beforeClose(obj: NativeBpfObject): void;
  /** Events counted in the kernel so far (as of the last read). */
  events(): number;
  /** Keep summaries per cgroup too (container attribution); default false. */
  byCgroup?: boolean;
  /** For a session's views (top, serve): keys carry what they need (the namespace; drops: the freeing function of
   * every drop), and distinct connections and retransmit ratios are counted together with the session's other
   * tools (the shared owner map says what each socket already added). Default false. */
  session?: boolean;
}

/** Keys of a fold ("other") map: one per coarse key (kind, direction, errno, ...); preallocated (per CPU). */
export const KERNEL_OTHER_KEYS = 256;

/**
 * A tool's summary maps in the kernel (a key map and its fold map), read as deltas per key. Each key's bytes are
 * decoded once (decodeKey, cached), so a read costs a dump per map and a little work per key that grew, never per
 * event.
 */
export class KernelTableReader<K> {
  private readonly table: KernelTable;
  private readonly keys = new Map<string, K>();

  constructor(keyLayout: Layout, valueLayout: Layout, private readonly maps: readonly string[], private readonly decodeKey: (key: Buffer) => K) {
    this.table = new KernelTable(keyLayout, valueLayout);
  }

  /** Dumps the maps of a running (or stopping) object and hands every key that gained something to `sink`. */
  read(obj: NativeBpfObject, sink: (key: K, delta: KernelValues, total: KernelValues) => void): void {
    const cpus = addon().numPossibleCpus;
    for (const map of this.maps) {
      for (const { key, delta, total } of this.table.readDump(obj.mapDump(map), cpus)) {
        const id = key.toString('latin1');
        let k = this.keys.get(id);
        if (k === undefined) this.keys.set(id, (k = this.decodeKey(key)));
        sink(k, delta, total);
      }
    }
  }
}

/** A tool's summary maps read as keys and what each gained (a bulk for the tool's aggregator), counting the records. */
export class KernelBulkReader<K, B> {
  private readonly reader: KernelTableReader<K>;
  /** Records counted in the kernel as of the last read (only keys `counts` accepts: life counts ends, not handshakes). */
  counted = 0;

  constructor(keyLayout: Layout, valueLayout: Layout, maps: readonly string[], decodeKey: (key: Buffer) => K,
    private readonly bulk: (delta: KernelValues, total: KernelValues) => B, private readonly counts: (key: K) => boolean = () => true) {
    this.reader = new KernelTableReader(keyLayout, valueLayout, maps, decodeKey);
  }

  /** Dumps the maps of a running (or stopping) object and hands each key that counted something, with its bulk, to `sink`. */
  read(obj: NativeBpfObject, sink: (key: K, bulk: B) => void): void {
    this.reader.read(obj, (key, d, t) => {
      const n = d.count as number;
      if (!(n > 0)) return;
      if (this.counts(key)) this.counted += n;
      sink(key, this.bulk(d, t));
    });
  }
}

/** A summary-only run of a tool counted in the kernel: its maps read into an aggregator that takes bulks. */
export function kernelSummary<E, S, K, B>(build: (kernel: KernelAggregation) => Trace<E>, keys: number, reader: KernelBulkReader<K, B>,
  aggregator: { addBulk(key: K, bulk: B): void; snapshot(): S }): KernelSummaryTrace<E, S> {
  return new KernelSummaryTrace<E, S>(build, keys, (obj) => reader.read(obj, (k, b) => aggregator.addBulk(k, b)), () => aggregator.snapshot(), () => reader.counted);
}

/** A histogram counted in the kernel, as Log2Histogram.addBuckets takes it. */
export interface BulkHistogram {
  /** Counts per log2 bucket (bucket 0: value 0; k: [2^(k-1), 2^k)). */
  log2: ArrayLike<number>;
  sum: number;
  min: number;
  max: number;
}

/**
 * A summary-only run: the tool's trace with aggregation in the kernel, and its aggregator fed from the maps at
 * every snapshot() and once more at stop. No event reaches user space; counters().events counts the events the
 * kernel counted.
 */
export class KernelSummaryTrace<E, S> {
  readonly trace: Trace<E>;

  /**
   * `build` makes the tool's trace with the given aggregation set-up; `read` feeds one read of the maps into the
   * aggregator; `summarize` is the aggregator's snapshot; `events` the count of events read so far.
   */
  constructor(build: (kernel: KernelAggregation) => Trace<E>, keys: number, private readonly read: (obj: NativeBpfObject) => void,
    private readonly summarize: () => S, events: () => number, byCgroup = false) {
    this.trace = build({ keys, beforeClose: (obj) => this.read(obj), events, byCgroup });
  }

  start(): Promise<StartInfo> { return this.trace.start(); }
  stop(): Promise<void> { return this.trace.stop(); }
  counters(): TraceCounters { return this.trace.counters(); }

  /** Reads the maps now (no-op before start and after stop, whose final read already happened). */
  refresh(): void {
    let obj: NativeBpfObject | null = null;
    try { obj = this.trace.object(); } catch { obj = null; }
    if (obj) this.read(obj);
  }

  /** Reads the maps (one dump each) and returns the summary; after stop(), the final one. */
  snapshot(): S {
    this.refresh();
    return this.summarize();
  }
}
