/**
 * netbpf top, the aggregator: retrans, drops, connect, life and conntrack events correlated into one row per
 * destination, with a per-interval trouble history and a diagnosis in plain words (src/core/diagnosis.ts).
 * Usable on its own: feed it any tool's events.
 */
import { diagnose, type Diagnosis, type DiagnosisThresholds, type Severity } from '../../core/diagnosis.js';
import { DropPlacement } from '../../core/placement.js';
import { Reservoir } from '../../core/reservoir.js';
import { RetransRatio } from '../../core/retrans-ratio.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import { Log2Histogram } from '../../core/histogram.js';
import type { ConnectBulk, ConnectEvent, ConnectKey, FailureClass } from '../connect/index.js';
import type { ConntrackEvent } from '../conntrack/index.js';
import { dropSides, type DropEvent } from '../drops/index.js';
import type { LifeBulk, LifeEvent, LifeKey } from '../life/index.js';
import type { RetransBulk, RetransEvent, RetransKey } from '../retrans/index.js';
import type { TopBulk } from './session.js';
import { byText, destinationKey, type GroupBy } from './group-by.js';

/** One destination, correlated across tools. */
export interface TopRow {
  key: string;
  /** Distinct connections seen (established connects, connection lifetimes, retransmitting connections). */
  connections: number;
  connectionsCapped: boolean;
  connects: { attempts: number; successes: number; failures: number; byClass: Record<FailureClass, number> };
  /** Successful connect latency, milliseconds (0 when none). */
  connectMs: { p50: number; p99: number };
  retrans: {
    /** Retransmitted data segments (whole run) and per second over the last interval; SYN/SYN-ACK retransmits apart. */
    segs: number;
    rate: number;
    /** Retransmitted / sent segments over the connections seen, from the kernel's own per-connection counters. */
    ratio: number;
    segsOut: number;
    synSegs: number;
  };
  /** Packets dropped on this host for this destination (purges excluded), by reason, most first. */
  drops: { total: number; topReason: string | null; byReason: Record<string, number>; purges: number };
  /** Live conntrack entries towards this destination; null when conntrack is not traced. */
  conntrackEntries: number | null;
  /** Trouble (retransmitted segments + failed connects + drops) per interval, oldest first. */
  history: number[];
  /** Container ids of the local processes talking to this destination (when cgroup ids resolve to containers). */
  containers: string[];
  health: 'ok' | Severity;
  diagnoses: Diagnosis[];
  lastSeen: number;
}

export interface TopSummary {
  type: 'top';
  time: number;
  by: string;
  elapsedS: number;
  intervalS: number;
  rows: TopRow[];
  totals: { destinations: number; unhealthy: number; connects: number; failures: number; retransSegs: number; drops: number };
  folded: number;
}

export type TopSortKey = 'health' | 'connections' | 'failures' | 'retrans' | 'ratio' | 'drops' | 'latency' | 'key';
export const TOP_SORT_KEYS: readonly TopSortKey[] = ['health', 'failures', 'retrans', 'ratio', 'drops', 'latency', 'connections', 'key'];

const emptyClasses = (): Record<FailureClass, number> => ({ refused: 0, timeout: 0, unreachable: 0, aborted: 0, other: 0 });
const CONNS_CAP = 4096;
const SEVERITY_RANK = { critical: 2, warning: 1, ok: 0 } as const;

class DestinationStats {
  attempts = 0;
  successes = 0;
  failures = 0;
  byClass = emptyClasses();
  latency = new Reservoir(512);
  /** Latencies counted in the kernel (no samples): quantiles from the log2 histogram. */
  latencyLog2 = new Log2Histogram('us');
  retransSegs = 0;
  synRetrans = 0;
  retransAtLastSnapshot = 0;
  /** Retransmitted / sent segments of the connections seen (the same keeper as retrans summaries). */
  readonly ratio = new RetransRatio(CONNS_CAP);
  drops: Record<string, number> = {};
  dropTotal = 0;
  purges = 0;
  conntrack = 0;
  trouble = 0;
  history: number[] = [];
  containers = new Set<string>();
  lastSeen = 0;
  constructor(readonly key: string) {}
}

export interface TopAggregatorOptions {
  by?: GroupBy;
  /** Most destinations with a row of their own; the rest fold into "other". Default 4096. */
  maxDestinations?: number;
  /** Intervals of history kept per row (the sparkline). Default 30. */
  historyLength?: number;
  thresholds?: DiagnosisThresholds;
  /** Maps an event's cgroup id to a container id (null: not in a container). */
  containerOf?: (cgroupId: number) => string | null;
  /** Longest time a drop waits to learn which side is the destination (core/placement.ts), ms. Default DROP_HOLD_MS. */
  dropHoldMs?: number;
  /** Whether conntrack is traced (rows then report entries, else null). */
  conntrack?: boolean;
  now?: () => number;
}

/** Correlates retrans, drops, connect, life and conntrack events per destination. Usable on its own. */
export class TopAggregator {
  readonly by: GroupBy;
  private readonly table: BoundedTable<DestinationStats>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private readonly historyLength: number;
  private readonly opts: TopAggregatorOptions;
  /** Which destination each drop counts for: the rule the exporter uses too. Tagged with the reason (null: a purge). */
  private readonly placement: DropPlacement<string | null>;

  constructor(opts: TopAggregatorOptions = {}) {
    this.opts = opts;
    this.by = opts.by ?? { kind: 'addr' };
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    this.historyLength = opts.historyLength ?? 30;
    this.placement = new DropPlacement({ holdMs: opts.dropHoldMs });
    this.table = new BoundedTable(opts.maxDestinations ?? 4096, (k) => new DestinationStats(k));
  }

  private row(key: string, time: number, cgroupId?: number, folded = false): DestinationStats {
    const r = folded ? this.table.foldedRow() : this.table.row(key);
    if (time > r.lastSeen) r.lastSeen = time;
    if (cgroupId && this.opts.containerOf && r.containers.size < 8) {
      const c = this.opts.containerOf(cgroupId);
      if (c) r.containers.add(c);
    }
    return r;
  }

  addConnect(e: ConnectEvent): void {
    const r = this.row(destinationKey(this.by, e.daddr, e.dport), e.time, e.cgroupId);
    r.attempts++;
    this.placement.connectedTo(r.key === OTHER_KEY ? destinationKey(this.by, e.daddr, e.dport) : r.key);
    if (e.type === 'established') {
      r.successes++;
      r.latency.add(e.latencyUs);
      r.ratio.touch(e.connId);
    } else {
      r.failures++;
      r.trouble++;
      r.byClass[e.failure]++;
    }
  }

  addRetrans(e: RetransEvent): void {
    const r = this.row(destinationKey(this.by, e.daddr, e.dport), e.time, e.cgroupId);
    // Handshake retransmits belong to the connect verdicts (timeouts, latency), not to loss on a connection.
    if (e.kind === 'syn' || e.kind === 'synack') { r.synRetrans += e.segs; return; }
    r.retransSegs += e.segs;
    r.trouble += e.segs;
    r.ratio.update(e.connId, e.totalRetrans, e.segsOut);
  }

  addLife(e: LifeEvent): void {
    if (e.type === 'closed' && !e.established) return; // a failed connect: counted by connect, not a connection
    // Accepted connections: the remote side is a client; its ephemeral port says nothing, the local port does.
    const port = e.direction === 'accept' ? (this.by.kind === 'service' ? e.sport : null) : e.dport;
    const r = this.row(destinationKey(this.by, e.daddr, port), e.time, e.cgroupId);
    r.ratio.update(e.connId, e.totalRetrans, e.segsOut);
  }

  /** A drop counts for the destination core/placement.ts's rule gives it (shared with the exporter). */
  addDrop(e: DropEvent, count = 1, time = e.time): void {
    const sides = dropSides(e);
    if (sides.remote === null) return;
    const remote = destinationKey(this.by, sides.remote.addr, sides.remote.port);
    const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
    const placed = this.placement.add(remote, local, e.category === 'purge' ? null : e.reason, time, count, sides.server);
    if (placed) this.countDrop(placed.destination, placed.tag, placed.time, placed.count);
  }

  /** What the kernel counted for one key of a tool since the previous read (TopSession with aggregate 'kernel'):
   * the same rows as the events would give, without a JavaScript object per event. */
  addBulk(b: TopBulk): void {
    if (b.tool === 'connect') this.addConnectBulk(b.key, b.bulk);
    else if (b.tool === 'retrans') this.addRetransBulk(b.key, b.bulk);
    else if (b.tool === 'life') this.addLifeBulk(b.key, b.bulk);
    else if (b.folded) this.countDrop(OTHER_KEY, b.event.category === 'purge' ? null : b.event.reason, b.bulk.lastSeen, b.bulk.count, true);
    else this.addDrop(b.event, b.bulk.count, b.bulk.firstSeen);
  }

  /** The row of a key the kernel counted: its destination's, or "other" when the kernel folded it. */
  private bulkRow(other: boolean, addr: string, port: number | null, cgroupId: number): DestinationStats {
    return this.row(other ? OTHER_KEY : destinationKey(this.by, addr, port), this.now(), cgroupId, other);
  }

  addConnectBulk(k: ConnectKey, b: ConnectBulk): void {
    const r = this.bulkRow(k.other, k.daddr, k.dport, k.cgroupId);
    r.attempts += b.count;
    if (!k.other) this.placement.connectedTo(r.key === OTHER_KEY ? destinationKey(this.by, k.daddr, k.dport) : r.key);
    if (k.type === 'established') {
      r.successes += b.count;
      r.latencyLog2.addBuckets(b.latencyUs.log2, b.latencyUs.sum, b.latencyUs.min, b.latencyUs.max);
      r.ratio.addBulk(b.connections, 0, 0);
    } else {
      r.failures += b.count;
      r.trouble += b.count;
      r.byClass[k.failure ?? 'other'] += b.count;
    }
  }

  addRetransBulk(k: RetransKey, b: RetransBulk): void {
    const r = this.bulkRow(k.other, k.daddr, k.dport, k.cgroupId);
    // Each connection's latest counters once (whichever retransmit reported them); SYN-ACKs have no connection.
    if (k.kind !== 'synack') r.ratio.addBulk(b.connections, b.ratioRetrans, b.ratioSent);
    if (!k.counted) return;
    if (k.kind === 'syn' || k.kind === 'synack') { r.synRetrans += b.segs; return; }
    r.retransSegs += b.segs;
    r.trouble += b.segs;
  }

  addLifeBulk(k: LifeKey, b: LifeBulk): void {
    if (k.kind !== 'closed' || !k.established) return; // handshakes add nothing here; failed connects are connect's
    const port = k.direction === 'accept' ? (this.by.kind === 'service' ? k.port : null) : k.port;
    this.bulkRow(k.other, k.daddr, port, k.cgroupId).ratio.addBulk(b.connections, b.ratioRetrans, b.ratioSent);
  }

  private countDrop(key: string, reason: string | null, time: number, n: number, folded = false): void {
    const r = this.row(key, time, undefined, folded);
    if (reason === null) { r.purges += n; return; }
    r.drops[reason] = (r.drops[reason] ?? 0) + n;
    r.dropTotal += n;
    r.trouble += n;
  }

  addConntrack(e: ConntrackEvent): void {
    const r = this.row(destinationKey(this.by, e.orig.dst, e.orig.dport || null), e.time);
    r.conntrack += e.kind === 'new' ? 1 : -1;
  }

  /** Current rows (unsorted: see sortRows), closing the current history interval. */
  snapshot(): TopSummary {
    const t = this.now();
    for (const p of this.placement.flush(t)) this.countDrop(p.destination, p.tag, p.time, p.count);
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const stats = this.table.allRows();
    const rows = stats.map((s) => this.rowOf(s, intervalS));
    const totals = { destinations: rows.length, unhealthy: 0, connects: 0, failures: 0, retransSegs: 0, drops: 0 };
    for (const r of rows) {
      if (r.health !== 'ok') totals.unhealthy++;
      totals.connects += r.connects.attempts;
      totals.failures += r.connects.failures;
      totals.retransSegs += r.retrans.segs;
      totals.drops += r.drops.total;
    }
    this.lastSnapshotAt = t;
    return { type: 'top', time: t, by: byText(this.by), elapsedS: (t - this.startedAt) / 1000, intervalS, rows, totals, folded: this.table.foldedKeys };
  }

  private rowOf(s: DestinationStats, intervalS: number): TopRow {
    const { sent: out, ratio } = s.ratio.totals();
    s.history.push(s.trouble);
    if (s.history.length > this.historyLength) s.history.shift();
    s.trouble = 0;
    const byReason = Object.fromEntries(Object.entries(s.drops).sort((a, b) => b[1] - a[1]));
    const diagnoses = diagnose({
      connects: { attempts: s.attempts, failures: s.failures, refused: s.byClass.refused, timeout: s.byClass.timeout, unreachable: s.byClass.unreachable },
      retrans: { segs: s.retransSegs, ratio },
      drops: s.drops,
    }, this.opts.thresholds);
    const rate = intervalS > 0 ? (s.retransSegs - s.retransAtLastSnapshot) / intervalS : 0;
    s.retransAtLastSnapshot = s.retransSegs;
    return {
      key: s.key,
      connections: s.ratio.connections, connectionsCapped: s.ratio.capped,
      connects: { attempts: s.attempts, successes: s.successes, failures: s.failures, byClass: { ...s.byClass } },
      connectMs: s.latencyLog2.count > 0
        ? { p50: s.latencyLog2.quantile(0.5) / 1000, p99: s.latencyLog2.quantile(0.99) / 1000 }
        : { p50: s.latency.quantile(0.5) / 1000, p99: s.latency.quantile(0.99) / 1000 },
      retrans: { segs: s.retransSegs, rate, ratio, segsOut: out, synSegs: s.synRetrans },
      drops: { total: s.dropTotal, topReason: Object.keys(byReason)[0] ?? null, byReason, purges: s.purges },
      conntrackEntries: this.opts.conntrack ? Math.max(0, s.conntrack) : null,
      history: [...s.history],
      containers: [...s.containers],
      health: diagnoses.some((d) => d.severity === 'critical') ? 'critical' : diagnoses.length ? 'warning' : 'ok',
      diagnoses,
      lastSeen: s.lastSeen,
    };
  }
}


/** Sorts rows in place by a key, worst/largest first ("key" sorts by name); "other" always last. */
export function sortRows(rows: TopRow[], key: TopSortKey): TopRow[] {
  const trouble = (r: TopRow) => r.connects.failures + r.retrans.segs + r.drops.total;
  const value: Record<TopSortKey, (r: TopRow) => number> = {
    health: (r) => SEVERITY_RANK[r.health] * 1e12 + trouble(r),
    connections: (r) => r.connections,
    failures: (r) => r.connects.failures,
    retrans: (r) => r.retrans.segs,
    ratio: (r) => r.retrans.ratio,
    drops: (r) => r.drops.total,
    latency: (r) => r.connectMs.p99,
    key: () => 0,
  };
  const v = value[key];
  return rows.sort((a, b) => (a.key === OTHER_KEY ? 1 : 0) - (b.key === OTHER_KEY ? 1 : 0) || (key === 'key' ? a.key.localeCompare(b.key) : v(b) - v(a) || b.lastSeen - a.lastSeen || a.key.localeCompare(b.key)));
}
