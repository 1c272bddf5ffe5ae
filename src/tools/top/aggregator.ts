/**
 * netbpf top, the aggregator: retrans, drops, connect, life and conntrack events correlated into one row per
 * destination, with a per-interval trouble history and diagnoses weighed from the evidence (src/core/diagnosis/).
 * Usable on its own: feed it any tool's events (and host evidence, tools/top/host.ts).
 */
import {
  diagnoseDestination, diagnoseHost, emptyDestination, freeKind, freeingFunction, noHostEvidence,
  type DestinationEvidence, type Diagnosis, type DiagnosisThresholds, type HostEvidence, type Severity,
} from '../../core/diagnosis/index.js';
import { DropPlacement } from '../../core/placement.js';
import { Reservoir } from '../../core/reservoir.js';
import { RetransRatio } from '../../core/retrans-ratio.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import { Log2Histogram } from '../../core/histogram.js';
import type { ConnectBulk, ConnectEvent, ConnectKey, FailureClass } from '../connect/index.js';
import type { ConntrackEvent } from '../conntrack/index.js';
import { dropSides, type DropBulk, type DropEvent } from '../drops/index.js';
import type { LifeBulk, LifeEvent, LifeKey } from '../life/index.js';
import type { RetransBulk, RetransEvent, RetransKey } from '../retrans/index.js';
import type { TopBulk } from './session.js';
import { byText, connectionKey, destinationKey, type GroupBy } from './group-by.js';

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
  /** Packets dropped on this host for this destination, by reason, most first: drops that hurt only. Socket
   * teardown purges and normal TCP housekeeping frees (src/core/diagnosis/frees.ts) are counted apart. */
  drops: { total: number; topReason: string | null; byReason: Record<string, number>; purges: number; housekeeping: number };
  /** Live conntrack entries towards this destination; null when conntrack is not traced. */
  conntrackEntries: number | null;
  /** Trouble (retransmitted segments + failed connects + drops) per interval, oldest first. */
  history: number[];
  /** Container ids of the local processes talking to this destination (when cgroup ids resolve to containers). */
  containers: string[];
  health: 'ok' | Severity;
  /** What is wrong, weighed from the evidence: most explaining first; [] when healthy. */
  diagnoses: Diagnosis[];
  /** The evidence the diagnoses were weighed from (counts only; stable field names). */
  evidence: DestinationEvidence;
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
  /** Diagnoses about the host (listeners, leaking processes, conntrack, receivers not reading) and their evidence. */
  host: { diagnoses: Diagnosis[]; evidence: HostEvidence; unavailable: string | null };
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
  housekeeping = 0;
  /** What the diagnosis engine weighs, filled as events come. */
  readonly evidence: DestinationEvidence;
  /** Drops that hurt by reason x freeing function x namespace (bounded), with their bytes. */
  readonly frees = new Map<string, { reason: string; location: string; netns: number; count: number; bytes: number }>();
  /** Connections this host closed first (they sit in TIME_WAIT for 60 s), per second over the last minute. */
  readonly activeCloses = new Array<number>(TIME_WAIT_S).fill(0);
  activeClosesAt = 0;
  /** Connections this host opened to it that closed (life), to tell how many are still open. */
  connectCloses = 0;
  conntrack = 0;
  trouble = 0;
  history: number[] = [];
  containers = new Set<string>();
  lastSeen = 0;
  constructor(readonly key: string) {
    this.evidence = emptyDestination(key);
  }

  /** Active closes in the last TIME_WAIT_S seconds, the bucket of `time` advanced to. */
  closedActively(time: number, n: number): void {
    const sec = Math.floor(time / 1000);
    this.timeWaitAt(sec);
    this.activeCloses[sec % TIME_WAIT_S] += n;
  }

  timeWaitAt(sec: number): number {
    for (let s = Math.max(this.activeClosesAt + 1, sec - TIME_WAIT_S + 1); s <= sec; s++) this.activeCloses[s % TIME_WAIT_S] = 0;
    if (sec > this.activeClosesAt) this.activeClosesAt = sec;
    return this.activeCloses.reduce((a, b) => a + b, 0);
  }
}

/** How long a socket closed actively stays in TIME_WAIT, holding its local port (TCP_TIMEWAIT_LEN), s. */
const TIME_WAIT_S = 60;
/** Most distinct (reason, function, namespace) drop groups kept per row; the rest fold into one. */
const FREES_CAP = 64;
/** States from which a close means this side sent its FIN first: the socket goes on in TIME_WAIT. */
const ACTIVE_CLOSE_FROM = new Set(['FIN_WAIT1', 'FIN_WAIT2', 'CLOSING', 'TIME_WAIT']);

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
  /** Destinations connects were seen to before this aggregator started (a window of a longer run): drops of their
   * connections are placed on them at once. */
  knownDestinations?: Iterable<string>;
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
  private readonly placement: DropPlacement<string>;
  private readonly hookNetns = new Set<number>();

  constructor(opts: TopAggregatorOptions = {}) {
    this.opts = opts;
    this.by = opts.by ?? { kind: 'addr' };
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    this.historyLength = opts.historyLength ?? 30;
    this.placement = new DropPlacement<string>({ holdMs: opts.dropHoldMs });
    for (const d of opts.knownDestinations ?? []) this.placement.connectedTo(d);
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
    this.locate(r, e.daddr, e.dport);
    r.attempts++;
    this.placement.connectedTo(r.key === OTHER_KEY ? destinationKey(this.by, e.daddr, e.dport) : r.key);
    const c = r.evidence.connects;
    c.attempts++;
    if (e.type === 'established') {
      r.successes++;
      c.successes++;
      r.latency.add(e.latencyUs);
      r.ratio.touch(e.connId);
      return;
    }
    r.failures++;
    r.byClass[e.failure]++;
    // A connect the application cancelled before any SYN retransmit (Happy Eyeballs) is not trouble.
    if (e.failure !== 'aborted' || e.synRetrans > 0) r.trouble++;
    switch (e.failure) {
      case 'refused': if (e.rstReceived) c.refusedRst++; else c.refusedIcmp++; break;
      case 'timeout': c.timedOut++; break;
      case 'unreachable': c.unreachable++; break;
      case 'aborted':
        if (e.synRetrans > 0) {
          c.abandoned++;
          c.abandonedSynRetrans += e.synRetrans;
          c.abandonedMaxMs = Math.max(c.abandonedMaxMs, e.elapsedUs / 1000);
        } else c.cancelled++;
        break;
      default:
        if (e.error === 'EADDRNOTAVAIL') {
          c.noLocalPort++;
          if (e.localPorts) r.evidence.portRange = { ...e.localPorts };
        } else c.otherErrors[e.error || 'unknown'] = (c.otherErrors[e.error || 'unknown'] ?? 0) + 1;
    }
  }

  /** The row's address and port, when its key is one endpoint or one address (host evidence is matched by them). */
  private locate(r: DestinationStats, addr: string, port: number | null): void {
    if (r.evidence.addr !== null || r.key === OTHER_KEY) return;
    if (this.by.kind === 'endpoint') { r.evidence.addr = addr; r.evidence.port = port; }
    else if (this.by.kind === 'addr') r.evidence.addr = addr;
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
    const r = this.row(connectionKey(this.by, e.direction, e.daddr, e.sport, e.dport), e.time, e.cgroupId);
    r.ratio.update(e.connId, e.totalRetrans, e.segsOut);
    if (e.type !== 'closed') return;
    if (e.direction === 'connect') {
      r.connectCloses++;
      if (e.reason === 'fin' && ACTIVE_CLOSE_FROM.has(e.closedFrom)) r.closedActively(e.time, 1);
    }
    const closes = r.evidence.closes;
    closes.closed++;
    if (e.reason === 'reset-received') { closes.resetReceived++; r.trouble++; }
    else if (e.rstUnread) {
      // This host's server reset a client's connection: it belongs to the destination the client connects to when
      // that client is on this host. The same rule as for drops (core/placement.ts), which also waits for the
      // client's connect (another ring buffer) to be seen.
      const remote = destinationKey(this.by, unmapped(e.daddr), e.direction === 'accept' ? null : e.dport);
      const local = e.direction === 'accept' ? destinationKey(this.by, unmapped(e.saddr), e.sport) : null;
      const placed = this.placement.add(remote, local, RESET_UNREAD_TAG, e.time);
      if (placed) this.countDrop(placed.destination, placed.tag, placed.time, placed.count, placed.bytes);
    } else if (e.reason === 'reset-sent') { closes.resetSentOther++; r.trouble++; }
  }

  /** A drop counts for the destination core/placement.ts's rule gives it (shared with the exporter); `count` drops
   * of `bytes` in all when they were counted in the kernel. */
  addDrop(e: DropEvent, count = 1, bytes = e.len, time = e.time): void {
    const sides = dropSides(e);
    if (sides.remote === null) return;
    const remote = destinationKey(this.by, sides.remote.addr, sides.remote.port);
    const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
    const placed = this.placement.add(remote, local, this.dropTagOf(e), time, count, sides.server, bytes);
    if (placed) this.countDrop(placed.destination, placed.tag, placed.time, placed.count, placed.bytes);
  }

  private dropTagOf(e: DropEvent): string {
    const kind = freeKind(e.reason, e.location);
    return kind === 'purge' || kind === 'housekeeping' ? kind : dropTag(e.reason, freeingFunction(e.location), e.netns);
  }

  /**
   * What the kernel counted for one key of a tool since the previous read (TopSession counting in the kernel): the
   * same rows and evidence the events give, without a JavaScript object per event. The kernel's keys keep what
   * the evidence is made of (outcome classes, resets, active closes, freeing functions, namespaces).
   */
  addBulk(b: TopBulk): void {
    if (b.tool === 'connect') this.addConnectBulk(b.key, b.bulk);
    else if (b.tool === 'retrans') this.addRetransBulk(b.key, b.bulk);
    else if (b.tool === 'life') this.addLifeBulk(b.key, b.bulk);
    else this.addDropBulk(b.event, b.bulk, b.folded);
  }

  addConnectBulk(k: ConnectKey, b: ConnectBulk): void {
    const key = destinationKey(this.by, k.daddr, k.dport);
    const r = this.row(key, this.now(), k.cgroupId, k.other);
    if (!k.other) {
      this.locate(r, k.daddr, k.dport);
      this.placement.connectedTo(r.key === OTHER_KEY ? key : r.key);
    }
    const n = b.count;
    r.attempts += n;
    const c = r.evidence.connects;
    c.attempts += n;
    if (k.type === 'established') {
      r.successes += n;
      c.successes += n;
      r.latencyLog2.addBuckets(b.latencyUs.log2, b.latencyUs.sum, b.latencyUs.min, b.latencyUs.max);
      r.ratio.addBulk(b.connections, 0, 0);
      return;
    }
    const failure = k.failure ?? 'other';
    r.failures += n;
    r.byClass[failure] += n;
    if (failure !== 'aborted' || k.synRetransmitted) r.trouble += n;
    switch (failure) {
      case 'refused': if (k.rstReceived) c.refusedRst += n; else c.refusedIcmp += n; break;
      case 'timeout': c.timedOut += n; break;
      case 'unreachable': c.unreachable += n; break;
      case 'aborted':
        if (k.synRetransmitted) {
          c.abandoned += n;
          c.abandonedSynRetrans += b.synRetrans;
          c.abandonedMaxMs = Math.max(c.abandonedMaxMs, b.maxElapsedUs / 1000);
        } else c.cancelled += n;
        break;
      default:
        if (k.error === 'EADDRNOTAVAIL') {
          c.noLocalPort += n;
          if (k.localPorts) r.evidence.portRange = { ...k.localPorts };
        } else c.otherErrors[k.error || 'unknown'] = (c.otherErrors[k.error || 'unknown'] ?? 0) + n;
    }
  }

  addRetransBulk(k: RetransKey, b: RetransBulk): void {
    const r = this.row(destinationKey(this.by, k.daddr, k.dport), this.now(), k.cgroupId, k.other);
    // Each connection's latest counters once (whichever retransmit reported them); SYN-ACKs have no connection.
    if (k.kind !== 'synack') r.ratio.addBulk(b.connections, b.ratioRetrans, b.ratioSent);
    if (!k.counted) return;
    if (k.kind === 'syn' || k.kind === 'synack') { r.synRetrans += b.segs; return; }
    r.retransSegs += b.segs;
    r.trouble += b.segs;
  }

  addLifeBulk(k: LifeKey, b: LifeBulk): void {
    if (k.kind !== 'closed' || !k.established) return; // handshakes add nothing here; failed connects are connect's
    const t = this.now();
    const r = this.row(connectionKey(this.by, k.direction, k.daddr, k.port, k.port), t, k.cgroupId, k.other);
    r.ratio.addBulk(b.connections, b.ratioRetrans, b.ratioSent);
    const n = b.count;
    if (k.direction === 'connect') {
      r.connectCloses += n;
      if (k.reason === 'fin' && k.activeClose) r.closedActively(t, n);
    }
    const closes = r.evidence.closes;
    closes.closed += n;
    if (k.reason === 'reset-received') { closes.resetReceived += n; r.trouble += n; }
    else if (k.rstUnread) {
      // Placed like the events' (see addLife): on the destination the client connects to when it is on this host.
      const remote = destinationKey(this.by, unmapped(k.daddr), k.direction === 'accept' ? null : k.port);
      const local = k.direction === 'accept' && k.saddr ? destinationKey(this.by, unmapped(k.saddr), k.port) : null;
      const placed = this.placement.add(remote, local, RESET_UNREAD_TAG, t, n);
      if (placed) this.countDrop(placed.destination, placed.tag, placed.time, placed.count, placed.bytes);
    } else if (k.reason === 'reset-sent') { closes.resetSentOther += n; r.trouble += n; }
  }

  addDropBulk(e: DropEvent, b: DropBulk, folded: boolean): void {
    if (!folded) { this.addDrop(e, b.count, b.bytes, b.firstSeen); return; }
    this.countDrop(OTHER_KEY, this.dropTagOf(e), b.lastSeen, b.count, b.bytes, true);
  }

  private countDrop(key: string, tag: string, time: number, n: number, bytes: number, folded = false): void {
    const r = this.row(key, time, undefined, folded);
    if (tag === 'purge') { r.purges += n; return; }
    if (tag === 'housekeeping') { r.housekeeping += n; return; }
    if (tag === RESET_UNREAD_TAG) { r.evidence.closes.resetUnread += n; r.trouble += n; return; }
    const [reason, fn, netns] = tag.split('\u0001');
    r.drops[reason] = (r.drops[reason] ?? 0) + n;
    r.dropTotal += n;
    r.trouble += n;
    const k = r.frees.size < FREES_CAP || r.frees.has(tag) ? tag : dropTag(reason, '', 0);
    const f = r.frees.get(k) ?? { reason, location: k === tag ? fn : '', netns: k === tag ? Number(netns) : 0, count: 0, bytes: 0 };
    f.count += n;
    f.bytes += bytes;
    r.frees.set(k, f);
    if (freeKind(reason, fn) === 'netfilter-hook' && Number(netns)) this.hookNetns.add(Number(netns));
  }

  /** Namespaces where a netfilter hook that is not an nftables rule dropped packets (conntrack's candidates). */
  hookDropNetns(): ReadonlySet<number> {
    return this.hookNetns;
  }

  addConntrack(e: ConntrackEvent): void {
    const r = this.row(destinationKey(this.by, e.orig.dst, e.orig.dport || null), e.time);
    r.conntrack += e.kind === 'new' ? 1 : -1;
  }

  /** Current rows (unsorted: see sortRows), closing the current history interval; `host` is the host evidence
   * gathered so far (tools/top/host.ts), matched to destinations and diagnosed on its own. */
  snapshot(host: HostEvidence = noHostEvidence(), unavailable: string | null = null): TopSummary {
    const t = this.now();
    for (const p of this.placement.flush(t)) this.countDrop(p.destination, p.tag, p.time, p.count, p.bytes);
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const stats = this.table.allRows();
    const rows = stats.map((s) => this.rowOf(s, intervalS, host, t));
    const totals = { destinations: rows.length, unhealthy: 0, connects: 0, failures: 0, retransSegs: 0, drops: 0 };
    for (const r of rows) {
      if (r.health !== 'ok') totals.unhealthy++;
      totals.connects += r.connects.attempts;
      totals.failures += r.connects.failures;
      totals.retransSegs += r.retrans.segs;
      totals.drops += r.drops.total;
    }
    this.lastSnapshotAt = t;
    return {
      type: 'top', time: t, by: byText(this.by), elapsedS: (t - this.startedAt) / 1000, intervalS, rows, totals, folded: this.table.foldedKeys,
      host: { diagnoses: diagnoseHost(host, this.opts.thresholds), evidence: host, unavailable },
    };
  }

  private rowOf(s: DestinationStats, intervalS: number, host: HostEvidence, t: number): TopRow {
    const { sent: out, ratio } = s.ratio.totals();
    s.history.push(s.trouble);
    if (s.history.length > this.historyLength) s.history.shift();
    s.trouble = 0;
    const byReason = Object.fromEntries(Object.entries(s.drops).sort((a, b) => b[1] - a[1]));
    const evidence: DestinationEvidence = {
      ...s.evidence,
      connects: { ...s.evidence.connects, otherErrors: { ...s.evidence.connects.otherErrors } },
      retrans: { segs: s.retransSegs, sent: out },
      frees: [...s.frees.values()].map((f) => ({ ...f })),
      closes: { ...s.evidence.closes },
      portRange: s.evidence.portRange ? { ...s.evidence.portRange } : null,
      portsHeld: s.evidence.connects.noLocalPort > 0 ? Math.max(0, s.successes - s.connectCloses) + s.timeWaitAt(Math.floor(t / 1000)) : null,
    };
    const diagnoses = diagnoseDestination(evidence, host, this.opts.thresholds);
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
      drops: { total: s.dropTotal, topReason: Object.keys(byReason)[0] ?? null, byReason, purges: s.purges, housekeeping: s.housekeeping },
      conntrackEntries: this.opts.conntrack ? Math.max(0, s.conntrack) : null,
      history: [...s.history],
      containers: [...s.containers],
      health: diagnoses.some((d) => d.severity === 'critical') ? 'critical' : diagnoses.length ? 'warning' : 'ok',
      diagnoses,
      evidence,
      lastSeen: s.lastSeen,
    };
  }
}


/** An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as the IPv4 address it is. */
const unmapped = (addr: string) => (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(addr) ? addr.slice(7) : addr);

/** The placement tag of a reset this host sent for a close with unread data (placed like a drop). */
const RESET_UNREAD_TAG = 'reset-unread';

/** The placement tag of a drop that hurts: reason, freeing function and namespace (split again when counted). */
const dropTag = (reason: string, fn: string, netns: number) => `${reason}\u0001${fn}\u0001${netns}`;

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
