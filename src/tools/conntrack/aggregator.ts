/**
 * netbpf conntrack, the aggregator: entries per real destination (reply source, after DNAT), created/destroyed rates, open
 * entries, states at destroy, lifetimes.
 */
import { formatEndpoint } from '../../core/address.js';
import { Log2Histogram, type HistogramData } from '../../core/histogram.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import type { ConntrackEvent } from './decode.js';
import type { ConntrackPressure } from './stats.js';

/** Per-destination conntrack statistics: the destination is the real backend (reply source). */
export interface ConntrackRow {
  /** "backend:port" (after DNAT) or "other". */
  key: string;
  /** Addresses clients used to reach it (VIPs), up to 8. */
  via: string[];
  protocol: string;
  created: number;
  destroyed: number;
  /** Per second over the last interval. */
  createdRate: number;
  destroyedRate: number;
  /** Entries created and not yet destroyed while tracing. */
  open: number;
  lifetimeMs: HistogramData;
  /** TCP state at destroy (or at creation for entries still open), counts. */
  states: Record<string, number>;
  packets: number;
  bytes: number;
}

export interface ConntrackSummary {
  type: 'summary';
  tool: 'conntrack';
  time: number;
  elapsedS: number;
  intervalS: number;
  totals: { created: number; destroyed: number; dnat: number; snat: number };
  byDestination: ConntrackRow[];
  folded: number;
  /** Per watched namespace (empty when unreadable). */
  pressure: ConntrackPressure[];
}

class CtRow {
  created = 0;
  destroyed = 0;
  createdAtSnap = 0;
  destroyedAtSnap = 0;
  via = new Set<string>();
  protocol = '';
  lifetime = new Log2Histogram('ms');
  states: Record<string, number> = {};
  packets = 0;
  bytes = 0;
  constructor(readonly key: string) {}
}

/** Aggregates conntrack events per real destination (the backend after DNAT). Usable on its own. */
export class ConntrackAggregator {
  private readonly rows: BoundedTable<CtRow>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { created: 0, destroyed: 0, dnat: 0, snat: 0 };

  constructor(opts: { maxDestinations?: number; now?: () => number } = {}) {
    this.rows = new BoundedTable(opts.maxDestinations ?? 4096, (k) => new CtRow(k));
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
  }

  add(e: ConntrackEvent): void {
    const row = this.rows.row(formatEndpoint(e.reply.src, e.reply.sport));
    row.protocol ||= e.protocolName;
    if (e.dnat && row.via.size < 8 && row.key !== OTHER_KEY) row.via.add(formatEndpoint(e.orig.dst, e.orig.dport));
    if (e.kind === 'new') {
      this.totals.created++;
      if (e.dnat) this.totals.dnat++;
      if (e.snat) this.totals.snat++;
      row.created++;
      return;
    }
    this.totals.destroyed++;
    row.destroyed++;
    if (e.lifetimeMs !== null) row.lifetime.add(Math.round(e.lifetimeMs));
    const state = e.tcpState ?? e.protocolName;
    row.states[state] = (row.states[state] ?? 0) + 1;
    if (e.packets) row.packets += e.packets[0] + e.packets[1];
    if (e.bytes) row.bytes += e.bytes[0] + e.bytes[1];
  }

  addAll(events: ConntrackEvent[]): void {
    for (const e of events) this.add(e);
  }

  snapshot(pressure: ConntrackPressure[] = []): ConntrackSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000, intervalS = (t - this.lastSnapshotAt) / 1000;
    const all = this.rows.allRows();
    const byDestination = all.map((r): ConntrackRow => ({
      key: r.key, via: [...r.via], protocol: r.protocol, created: r.created, destroyed: r.destroyed,
      createdRate: intervalS > 0 ? (r.created - r.createdAtSnap) / intervalS : 0,
      destroyedRate: intervalS > 0 ? (r.destroyed - r.destroyedAtSnap) / intervalS : 0,
      open: Math.max(0, r.created - r.destroyed), lifetimeMs: r.lifetime.toJSON(), states: { ...r.states }, packets: r.packets, bytes: r.bytes,
    })).sort((a, b) => b.created + b.destroyed - (a.created + a.destroyed));
    for (const r of all) { r.createdAtSnap = r.created; r.destroyedAtSnap = r.destroyed; }
    this.lastSnapshotAt = t;
    return { type: 'summary', tool: 'conntrack', time: t, elapsedS, intervalS, totals: { ...this.totals }, byDestination, folded: this.rows.foldedKeys, pressure };
  }
}
