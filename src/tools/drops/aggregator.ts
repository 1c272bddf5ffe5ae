/**
 * netbpf drops, the aggregator: drops per remote endpoint, remote address and packet destination, each x reason:
 * count, rate, share, bytes, log2 histogram of packet sizes; purges apart from drops. Fed by events, or by counts
 * the kernel kept (kernel-summary.ts): destinations in bulk, remote views as the kernel's top talkers.
 */
import { formatEndpoint } from '../../core/address.js';
import { Log2Histogram, type HistogramData } from '../../core/histogram.js';
import type { ListenQueueCounters, ListenQueueCounts } from '../../core/listen-queue.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import type { DropEvent } from './decode.js';
import type { DropCategory } from './reasons.js';

/** Per (endpoint or address) x reason statistics. */
export interface DropRow {
  /** "addr:port REASON", "addr REASON", or "other" for the folded row. */
  key: string;
  /** Address (null when unknown), port (null for address rows and unknown ports). */
  addr: string | null;
  port: number | null;
  reason: string;
  reasonCode: number;
  category: DropCategory;
  count: number;
  bytes: number;
  /** Drops per second over the last interval and over the whole run. */
  rate: number;
  avgRate: number;
  /** count / all events of the same category. */
  share: number;
  /**
   * Rows of a remote view counted by the kernel's top talkers (summary-only runs): an upper bound of the row's
   * drops. `count` is then exact for the drops since the source was admitted, a lower bound of its total; the
   * true number is in [count, countMax] (docs/drops.md). Absent where every drop was counted.
   */
  countMax?: number;
  firstSeen: number;
  lastSeen: number;
  histograms: { len: HistogramData };
}

export interface ReasonTotal { reason: string; reasonCode: number; category: DropCategory; count: number; share: number }

export interface DropsSummary {
  type: 'summary';
  tool: 'drops';
  time: number;
  elapsedS: number;
  intervalS: number;
  totals: { events: number; drops: number; purges: number };
  byReason: ReasonTotal[];
  /** Remote endpoint (non-local side, see orientation rule) x reason. */
  byEndpoint: DropRow[];
  /** Remote address x reason. */
  byAddress: DropRow[];
  /** Packet destination (daddr:dport as in the packet) x reason. */
  byDestination: DropRow[];
  /** Keys folded into "other" per table; `kernel`: drops folded in the kernel (summary-only runs, key map full). */
  folded: { endpoints: number; addresses: number; destinations: number; kernel?: number };
  /** The kernel's listen-queue counters since start (this network namespace): SYN-flood effects no drop
   * tracepoint shows (see core/listen-queue.ts). Present when the aggregator was given them. */
  listen?: ListenQueueCounts;
}

/** One key of a remote view counted elsewhere (the kernel's top talkers). */
export interface RemoteCount {
  /** The drop the key stands for: its remote address and port, reason and category. */
  event: DropEvent;
  /** Drops counted exactly (since the key was admitted), and an upper bound of all its drops. */
  count: number;
  countMax: number;
  /** Bytes of the `count` drops; epoch ms of the first and last of them. */
  bytes: number;
  firstSeen: number;
  lastSeen: number;
}

/** A remote view counted elsewhere: its keys, and every drop it took (rows plus "other"). */
export interface RemoteCounts {
  rows: RemoteCount[];
  total: number;
}

/** The remote views (fed by events, or replaced by counts kept elsewhere). */
export type RemoteView = 'endpoints' | 'addresses';

class DropRowStats {
  count = 0;
  bytes = 0;
  countAtLastSnapshot = 0;
  firstSeen = 0;
  lastSeen = 0;
  len = new Log2Histogram('bytes');
  addr: string | null = null;
  port: number | null = null;
  reason = '';
  reasonCode = 0;
  category: DropCategory = 'drop';
  constructor(readonly key: string) {}

  /** On the row's first drop: when it was seen and, unless this is "other", what the row stands for. */
  private claim(e: DropEvent, addr: string | null, port: number | null, firstSeen: number): void {
    this.firstSeen = firstSeen;
    if (this.key === OTHER_KEY) return;
    this.addr = addr;
    this.port = port;
    this.reason = e.reason;
    this.reasonCode = e.reasonCode;
    this.category = e.category;
  }

  add(e: DropEvent, addr: string | null, port: number | null): void {
    if (this.count === 0) this.claim(e, addr, port, e.time);
    this.lastSeen = e.time;
    this.count++;
    this.bytes += e.len;
    this.len.add(e.len);
  }

  /** Adds drops counted elsewhere (the kernel's map): `b.count` drops with their bytes and length histogram. */
  addBulk(e: DropEvent, addr: string | null, port: number | null, b: DropBulk): void {
    if (this.count === 0) this.claim(e, addr, port, b.firstSeen);
    if (b.firstSeen < this.firstSeen) this.firstSeen = b.firstSeen;
    if (b.lastSeen > this.lastSeen) this.lastSeen = b.lastSeen;
    this.count += b.count;
    this.bytes += b.bytes;
    this.len.addBuckets(b.lenLog2, b.bytes, b.minLen, b.maxLen);
  }

  row(elapsedS: number, intervalS: number, categoryTotal: (c: DropCategory) => number): DropRow {
    const total = categoryTotal(this.category);
    return {
      key: this.key, addr: this.addr, port: this.port, reason: this.reason, reasonCode: this.reasonCode,
      category: this.category, count: this.count, bytes: this.bytes,
      rate: intervalS > 0 ? (this.count - this.countAtLastSnapshot) / intervalS : 0,
      avgRate: elapsedS > 0 ? this.count / elapsedS : 0,
      share: total > 0 ? this.count / total : 0,
      firstSeen: this.firstSeen, lastSeen: this.lastSeen,
      histograms: { len: this.len.toJSON() },
    };
  }
}

/** Drops of one key counted in the kernel since the previous read. */
export interface DropBulk {
  count: number;
  bytes: number;
  /** Counts per log2 bucket of packet length (Log2Histogram's buckets). */
  lenLog2: ArrayLike<number>;
  minLen: number;
  maxLen: number;
  /** Epoch ms of the key's first and last drop. */
  firstSeen: number;
  lastSeen: number;
}

export interface DropsAggregatorOptions {
  /** Most rows per table before folding into "other". Default 4096. */
  maxDestinations?: number;
  /** Clock for rates, ms (tests pass their own). */
  now?: () => number;
  /** The kernel's listen-queue counters, reported with each summary (the CLI passes them). */
  listenQueue?: ListenQueueCounters;
}

const endpointText = (addr: string | null, port: number | null) => (addr === null ? 'unknown' : port === null ? addr : formatEndpoint(addr, port));
/** Rows counted by the kernel's top talkers keep no size histogram (sizes are kept per destination). */
const noSizes = (): HistogramData => new Log2Histogram('bytes').toJSON();

/** Aggregates drop events per remote endpoint, remote address and packet destination, each x reason. */
export class DropsAggregator {
  private readonly endpoints: BoundedTable<DropRowStats>;
  private readonly addresses: BoundedTable<DropRowStats>;
  private readonly destinations: BoundedTable<DropRowStats>;
  private readonly reasons = new Map<string, ReasonTotal>();
  private readonly now: () => number;
  private readonly listenQueue: ListenQueueCounters | null;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { events: 0, drops: 0, purges: 0 };
  /** Drops the kernel folded into "other" (its key map was full). */
  private kernelFolded = 0;
  /** Bytes of every drop (for the "other" row of remote views counted elsewhere). */
  private totalBytes = 0;
  /** Remote views counted elsewhere (the kernel's top talkers), replacing the tables; counts at the last snapshot. */
  private readonly remote: Partial<Record<RemoteView, RemoteCounts>> = {};
  private readonly remoteBefore: Record<RemoteView, Map<string, number>> = { endpoints: new Map(), addresses: new Map() };
  private lastRows: {
    reason: string; remoteAddr: string | null; remotePort: number | null; daddr: string | null; dport: number | null;
    endpoint: DropRowStats; address: DropRowStats; destination: DropRowStats;
  } | null = null;

  constructor(opts: DropsAggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    this.now = opts.now ?? Date.now;
    this.listenQueue = opts.listenQueue ?? null;
    this.startedAt = this.lastSnapshotAt = this.now();
    const make = (key: string) => new DropRowStats(key);
    this.endpoints = new BoundedTable(max, make);
    this.addresses = new BoundedTable(max, make);
    this.destinations = new BoundedTable(max, make);
  }

  add(e: DropEvent): void {
    this.totals.events++;
    this.totalBytes += e.len;
    if (e.category === 'purge') this.totals.purges++;
    else this.totals.drops++;
    let r = this.reasons.get(e.reason);
    if (!r) { r = { reason: e.reason, reasonCode: e.reasonCode, category: e.category, count: 0, share: 0 }; this.reasons.set(e.reason, r); }
    r.count++;
    // Floods repeat one (endpoint, destination, reason): reuse the previous event's rows instead of building
    // three keys and looking them up again (rows are never evicted, so the cached ones stay valid).
    const l = this.lastRows;
    if (l && l.reason === e.reason && l.remoteAddr === e.remoteAddr && l.remotePort === e.remotePort && l.daddr === e.daddr && l.dport === e.dport) {
      l.endpoint.add(e, e.remoteAddr, e.remotePort);
      l.address.add(e, e.remoteAddr, null);
      l.destination.add(e, e.daddr, e.dport);
      return;
    }
    const endpoint = this.endpoints.row(`${endpointText(e.remoteAddr, e.remotePort)} ${e.reason}`);
    const address = this.addresses.row(`${e.remoteAddr ?? 'unknown'} ${e.reason}`);
    const destination = this.destinations.row(`${endpointText(e.daddr, e.dport)} ${e.reason}`);
    endpoint.add(e, e.remoteAddr, e.remotePort);
    address.add(e, e.remoteAddr, null);
    destination.add(e, e.daddr, e.dport);
    this.lastRows = { reason: e.reason, remoteAddr: e.remoteAddr, remotePort: e.remotePort, daddr: e.daddr, dport: e.dport, endpoint, address, destination };
  }

  /**
   * Adds `b.count` drops that share `e`'s summary key (counted in the kernel) to every view. `folded`: the kernel
   * had no room for their key, so they go to the "other" rows of every table (reason totals stay exact).
   */
  addBulk(e: DropEvent, b: DropBulk, folded = false): void {
    if (!this.addDestinationBulk(e, b, folded)) return;
    if (folded) {
      this.endpoints.foldedRow().addBulk(e, null, null, b);
      this.addresses.foldedRow().addBulk(e, null, null, b);
      return;
    }
    this.endpoints.row(`${endpointText(e.remoteAddr, e.remotePort)} ${e.reason}`).addBulk(e, e.remoteAddr, e.remotePort, b);
    this.addresses.row(`${e.remoteAddr ?? 'unknown'} ${e.reason}`).addBulk(e, e.remoteAddr, null, b);
  }

  /**
   * Adds `b.count` drops of `e`'s destination and reason (counted in the kernel) to the destination view and the
   * totals only: the remote views are counted apart (setRemoteCounts). `folded`: the kernel had no room for the
   * destination, so they go to its "other" row. False when there was nothing to add.
   */
  addDestinationBulk(e: DropEvent, b: DropBulk, folded = false): boolean {
    if (b.count <= 0) return false;
    this.totals.events += b.count;
    this.totalBytes += b.bytes;
    if (e.category === 'purge') this.totals.purges += b.count;
    else this.totals.drops += b.count;
    let r = this.reasons.get(e.reason);
    if (!r) { r = { reason: e.reason, reasonCode: e.reasonCode, category: e.category, count: 0, share: 0 }; this.reasons.set(e.reason, r); }
    r.count += b.count;
    if (folded) {
      this.kernelFolded += b.count;
      this.destinations.foldedRow().addBulk(e, null, null, b);
    } else {
      this.destinations.row(`${endpointText(e.daddr, e.dport)} ${e.reason}`).addBulk(e, e.daddr, e.dport, b);
    }
    return true;
  }

  /**
   * Replaces a remote view with counts kept elsewhere (the kernel's top talkers, cumulative): the view then shows
   * the heaviest keys (at most maxDestinations rows, with countMax) and "other" = every drop not counted in a row.
   */
  setRemoteCounts(view: RemoteView, counts: RemoteCounts): void {
    this.remote[view] = counts;
  }

  addAll(events: DropEvent[]): void {
    for (const e of events) this.add(e);
  }

  /** Current statistics; rates cover the time since the previous snapshot. Rows sorted by count. */
  snapshot(): DropsSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000;
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const categoryTotal = (c: DropCategory) => (c === 'purge' ? this.totals.purges : this.totals.drops);
    const rows = (table: BoundedTable<DropRowStats>): DropRow[] => {
      const all = table.allRows();
      const out = all.map((s) => s.row(elapsedS, intervalS, categoryTotal)).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
      for (const s of all) s.countAtLastSnapshot = s.count;
      return out;
    };
    const byReason = [...this.reasons.values()]
      .map((r) => ({ ...r, share: categoryTotal(r.category) > 0 ? r.count / categoryTotal(r.category) : 0 }))
      .sort((a, b) => b.count - a.count);
    const byDestination = rows(this.destinations);
    // The time span of all drops (for the "other" row of a remote view counted elsewhere).
    const span = { first: Math.min(...byDestination.map((r) => r.firstSeen)), last: Math.max(0, ...byDestination.map((r) => r.lastSeen)) };
    const remote = (view: RemoteView, table: BoundedTable<DropRowStats>): [DropRow[], number] => {
      const counts = this.remote[view];
      return counts ? this.remoteRows(view, counts, { elapsedS, intervalS, categoryTotal, span }) : [rows(table), table.foldedKeys];
    };
    const [byEndpoint, foldedEndpoints] = remote('endpoints', this.endpoints);
    const [byAddress, foldedAddresses] = remote('addresses', this.addresses);
    const summary: DropsSummary = {
      type: 'summary', tool: 'drops', time: t, elapsedS, intervalS, totals: { ...this.totals }, byReason,
      byEndpoint, byAddress, byDestination,
      folded: { endpoints: foldedEndpoints, addresses: foldedAddresses, destinations: this.destinations.foldedKeys },
    };
    if (this.kernelFolded) summary.folded.kernel = this.kernelFolded;
    const listen = this.listenQueue?.delta();
    if (listen) summary.listen = listen;
    this.lastSnapshotAt = t;
    return summary;
  }

  /** A remote view from counts kept elsewhere: keys merged by row, the heaviest maxDestinations of them, "other". */
  private remoteRows(view: RemoteView, counts: RemoteCounts, at: {
    elapsedS: number; intervalS: number; categoryTotal: (c: DropCategory) => number; span: { first: number; last: number };
  }): [DropRow[], number] {
    const { elapsedS, intervalS, categoryTotal } = at;
    const merged = new Map<string, DropRow>();
    for (const c of counts.rows) {
      const e = c.event;
      const port = view === 'endpoints' ? e.remotePort : null;
      const key = view === 'endpoints' ? `${endpointText(e.remoteAddr, port)} ${e.reason}` : `${e.remoteAddr ?? 'unknown'} ${e.reason}`;
      const r = merged.get(key);
      if (r) {
        r.count += c.count;
        r.countMax! += c.countMax;
        r.bytes += c.bytes;
        r.firstSeen = Math.min(r.firstSeen, c.firstSeen);
        r.lastSeen = Math.max(r.lastSeen, c.lastSeen);
        continue;
      }
      merged.set(key, {
        key, addr: e.remoteAddr, port, reason: e.reason, reasonCode: e.reasonCode, category: e.category,
        count: c.count, bytes: c.bytes, rate: 0, avgRate: 0, share: 0, firstSeen: c.firstSeen, lastSeen: c.lastSeen,
        histograms: { len: noSizes() }, countMax: c.countMax,
      });
    }
    const all = [...merged.values()].sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
    const max = this.destinations.maxKeys;
    const shown = all.slice(0, max);
    const before = this.remoteBefore[view];
    const now = new Map<string, number>();
    let counted = 0, countedBytes = 0;
    for (const r of shown) {
      const total = categoryTotal(r.category);
      r.rate = intervalS > 0 ? (r.count - Math.min(r.count, before.get(r.key) ?? 0)) / intervalS : 0;
      r.avgRate = elapsedS > 0 ? r.count / elapsedS : 0;
      r.share = total > 0 ? r.count / total : 0;
      now.set(r.key, r.count);
      counted += r.count;
      countedBytes += r.bytes;
    }
    const otherCount = counts.total - counted;
    if (otherCount > 0) {
      const drops = categoryTotal('drop');
      shown.push({
        key: OTHER_KEY, addr: null, port: null, reason: '', reasonCode: 0, category: 'drop', count: otherCount,
        bytes: Math.max(0, this.totalBytes - countedBytes),
        rate: intervalS > 0 ? (otherCount - Math.min(otherCount, before.get(OTHER_KEY) ?? 0)) / intervalS : 0,
        avgRate: elapsedS > 0 ? otherCount / elapsedS : 0, share: drops > 0 ? otherCount / drops : 0,
        firstSeen: Number.isFinite(at.span.first) ? at.span.first : 0, lastSeen: at.span.last, histograms: { len: noSizes() },
      });
      now.set(OTHER_KEY, otherCount);
    }
    this.remoteBefore[view] = now;
    return [shown.sort((a, b) => b.count - a.count || a.key.localeCompare(b.key)), all.length - Math.min(all.length, max)];
  }
}
