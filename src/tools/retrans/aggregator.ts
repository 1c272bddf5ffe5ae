/**
 * netbpf retrans, the aggregator: retransmit events per remote endpoint and per remote address: events,
 * segments (GSO-aware, agreeing with the kernel's RetransSegs), rate, connections affected, retransmitted/sent
 * ratio, and log2 histograms of consecutive retransmits and RTT.
 */
import { formatEndpoint } from '../../core/address.js';
import { Log2Histogram, type HistogramData } from '../../core/histogram.js';
import { RetransRatio } from '../../core/retrans-ratio.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import { countedByKernel, type RetransEvent, type RetransKind } from './decode.js';
import type { RetransBulk, RetransKey } from './kernel.js';

/** Per-destination retransmit statistics. */
export interface RetransRow {
  /** "addr:port" for endpoint rows, "addr" for address rows, "other" for the folded row. */
  key: string;
  daddr: string;
  dport: number | null;
  events: number;
  segs: number;
  /** Retransmits that failed (err != 0); their segments count in segs only where the kernel counted them. */
  failed: number;
  /** Retransmitted segments per second over the last interval and over the whole run. */
  rate: number;
  avgRate: number;
  /** Distinct connections with retransmits (counted up to connectionsCap). */
  connections: number;
  connectionsCapped: boolean;
  /** Retransmitted / sent segments over the affected connections' lives, from the kernel's own counters. */
  retransRatio: number;
  kinds: Record<RetransKind, number>;
  firstSeen: number;
  lastSeen: number;
  histograms: { retransmits: HistogramData; srttUs: HistogramData };
}

export interface RetransSummary {
  type: 'summary';
  tool: 'retrans';
  time: number;
  /** Seconds covered: since the aggregator started, and since the previous snapshot. */
  elapsedS: number;
  intervalS: number;
  /** connections: distinct connections, counted up to 65536 (connectionsCapped then). */
  totals: { events: number; segs: number; failed: number; connections: number; connectionsCapped: boolean };
  byEndpoint: RetransRow[];
  byAddress: RetransRow[];
  /** Destinations that did not get a row of their own (counted in the "other" rows). */
  folded: { endpoints: number; addresses: number };
}

const CONNECTIONS_CAP = 1024;
const CONNECTIONS_TOTAL_CAP = 65536;

class RowStats {
  events = 0;
  segs = 0;
  failed = 0;
  segsAtLastSnapshot = 0;
  firstSeen = 0;
  lastSeen = 0;
  kinds: Record<RetransKind, number> = { other: 0, rto: 0, fast: 0, tlp: 0, syn: 0, synack: 0 };
  /** Retransmitted / sent segments of the connections seen, from the kernel's per-connection counters. */
  readonly ratio = new RetransRatio(CONNECTIONS_CAP);
  retransmits = new Log2Histogram('count');
  srttUs = new Log2Histogram('us');
  daddr = '';
  dport: number | null = null;
  constructor(readonly key: string, private readonly byEndpoint: boolean) {}

  add(e: RetransEvent): void {
    if (this.events === 0) {
      this.firstSeen = e.time;
      if (this.key !== OTHER_KEY) {
        this.daddr = e.daddr;
        if (this.byEndpoint) this.dport = e.dport;
      }
    }
    this.lastSeen = e.time;
    this.events++;
    if (e.err !== 0) this.failed++;
    if (!countedByKernel(e)) return;
    this.segs += e.segs;
    this.kinds[e.kind] += e.segs;
    this.retransmits.add(e.retransmits);
    if (e.srttUs > 0) this.srttUs.add(e.srttUs);
    if (e.kind === 'synack') return;
    this.ratio.update(e.connId, e.totalRetrans, e.segsOut);
  }

  /** What one in-kernel summary key gained (src/tools/retrans/kernel.ts). */
  addBulk(k: RetransKey, b: RetransBulk): void {
    if (this.events === 0) {
      this.firstSeen = b.firstSeen;
      if (this.key !== OTHER_KEY) {
        this.daddr = k.daddr;
        if (this.byEndpoint) this.dport = k.dport;
      }
    }
    if (b.firstSeen < this.firstSeen) this.firstSeen = b.firstSeen;
    if (b.lastSeen > this.lastSeen) this.lastSeen = b.lastSeen;
    this.events += b.events;
    if (k.err !== 0) this.failed += b.events;
    // Each connection's latest counters, whichever retransmit (counted or not) reported them.
    if (k.kind !== 'synack') this.ratio.addBulk(b.connections, b.ratioRetrans, b.ratioSent);
    if (!k.counted) return;
    this.segs += b.segs;
    this.kinds[k.kind] += b.segs;
    this.retransmits.addBuckets(b.retransmits.log2, b.retransmits.sum, b.retransmits.min, b.retransmits.max);
    this.srttUs.addBuckets(b.srttUs.log2, b.srttUs.sum, b.srttUs.min, b.srttUs.max);
  }

  row(elapsedS: number, intervalS: number): RetransRow {
    const row: RetransRow = {
      key: this.key, daddr: this.daddr, dport: this.dport,
      events: this.events, segs: this.segs, failed: this.failed,
      rate: intervalS > 0 ? (this.segs - this.segsAtLastSnapshot) / intervalS : 0,
      avgRate: elapsedS > 0 ? this.segs / elapsedS : 0,
      connections: this.ratio.connections, connectionsCapped: this.ratio.capped,
      retransRatio: this.ratio.totals().ratio,
      kinds: { ...this.kinds }, firstSeen: this.firstSeen, lastSeen: this.lastSeen,
      histograms: { retransmits: this.retransmits.toJSON(), srttUs: this.srttUs.toJSON() },
    };
    return row;
  }
}

export interface AggregatorOptions {
  /** Most destinations with a row of their own per table; the rest fold into "other". Default 4096. */
  maxDestinations?: number;
  /** Clock for rates, ms (tests pass their own). */
  now?: () => number;
}

/** Aggregates retransmit events per remote endpoint and per remote address. Usable on its own. */
export class RetransAggregator {
  private readonly endpoints: BoundedTable<RowStats>;
  private readonly addresses: BoundedTable<RowStats>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { events: 0, segs: 0, failed: 0 };
  /** Distinct connections seen, counted exactly up to CONNECTIONS_TOTAL_CAP (memory stays bounded). */
  private readonly allConns = new Set<number>();
  /** Distinct connections counted in the kernel (no cap). */
  private bulkConnections = 0;
  /** daddr -> dport -> row, for rows of their own: the per-event lookup builds no key string. */
  private readonly endpointIndex = new Map<string, Map<number, RowStats>>();

  constructor(opts: AggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    this.endpoints = new BoundedTable(max, (key) => new RowStats(key, true));
    this.addresses = new BoundedTable(max, (key) => new RowStats(key, false));
  }

  add(e: RetransEvent): void {
    this.totals.events++;
    if (e.err !== 0) this.totals.failed++;
    if (countedByKernel(e)) this.totals.segs += e.segs;
    if (this.allConns.size < CONNECTIONS_TOTAL_CAP) this.allConns.add(e.connId);
    this.endpointRow(e).add(e);
    this.addresses.row(e.daddr).add(e);
  }

  private endpointRow(e: RetransEvent): RowStats {
    let ports = this.endpointIndex.get(e.daddr);
    let row = ports?.get(e.dport);
    if (row) return row;
    row = this.endpoints.row(formatEndpoint(e.daddr, e.dport));
    if (row.key !== OTHER_KEY) {
      if (!ports) this.endpointIndex.set(e.daddr, (ports = new Map()));
      ports.set(e.dport, row);
    }
    return row;
  }

  addAll(events: RetransEvent[]): void {
    for (const e of events) this.add(e);
  }

  /** Retransmits of one destination counted in the kernel (src/tools/retrans/kernel.ts); keys the kernel folded go
   * to the "other" rows. */
  addBulk(k: RetransKey, b: RetransBulk): void {
    if (b.events <= 0) return;
    this.totals.events += b.events;
    if (k.err !== 0) this.totals.failed += b.events;
    if (k.counted) this.totals.segs += b.segs;
    this.bulkConnections += b.connections;
    if (k.other) {
      this.endpoints.foldedRow().addBulk(k, b);
      this.addresses.foldedRow().addBulk(k, b);
      return;
    }
    let ports = this.endpointIndex.get(k.daddr);
    let row = ports?.get(k.dport);
    if (!row) {
      row = this.endpoints.row(formatEndpoint(k.daddr, k.dport));
      if (row.key !== OTHER_KEY) {
        if (!ports) this.endpointIndex.set(k.daddr, (ports = new Map()));
        ports.set(k.dport, row);
      }
    }
    row.addBulk(k, b);
    this.addresses.row(k.daddr).addBulk(k, b);
  }

  /** Current statistics; rates cover the time since the previous snapshot. Rows sorted by segments. */
  snapshot(): RetransSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000;
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const rows = (table: BoundedTable<RowStats>): RetransRow[] => {
      const all = table.allRows();
      const out = all.map((s) => s.row(elapsedS, intervalS)).sort((a, b) => b.segs - a.segs || b.events - a.events);
      for (const s of all) s.segsAtLastSnapshot = s.segs;
      return out;
    };
    const summary: RetransSummary = {
      type: 'summary', tool: 'retrans', time: t, elapsedS, intervalS,
      totals: { ...this.totals, connections: this.allConns.size + this.bulkConnections, connectionsCapped: this.allConns.size >= CONNECTIONS_TOTAL_CAP },
      byEndpoint: rows(this.endpoints),
      byAddress: rows(this.addresses),
      folded: { endpoints: this.endpoints.foldedKeys, addresses: this.addresses.foldedKeys },
    };
    this.lastSnapshotAt = t;
    return summary;
  }
}
