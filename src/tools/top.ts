/**
 * netbpf top: retrans, drops, connect (and life, conntrack when asked) run together and correlated into one
 * row per destination: connections, connect failures by class, connect latency p50/p99, retransmitted/sent
 * segments, drops on this host by reason, conntrack entries, a per-interval trouble history, and a diagnosis
 * in plain words (src/core/diagnosis.ts). TopAggregator is usable on its own (feed it any tool's events);
 * TopSession runs the traces.
 */
import { readFileSync } from 'node:fs';
import { formatEndpoint, parseCidr } from '../core/address.js';
import { diagnose, type Diagnosis, type DiagnosisThresholds, type Severity } from '../core/diagnosis.js';
import { usageError } from '../core/errors.js';
import type { FilterOptions } from '../core/filters.js';
import { Reservoir } from '../core/reservoir.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import type { StartInfo, Trace, TraceCounters } from '../core/trace.js';
import { connect, type ConnectEvent, type FailureClass } from './connect/index.js';
import { conntrack, type ConntrackEvent } from './conntrack.js';
import { drops, type DropEvent } from './drops/index.js';
import { life, type LifeEvent } from './life/index.js';
import { retrans, type RetransEvent } from './retrans/index.js';

/** How rows are keyed: remote address, remote address:port, network (cidr/N for IPv4, /M for IPv6), or service name. */
export type GroupBy = { kind: 'addr' } | { kind: 'endpoint' } | { kind: 'cidr'; v4: number; v6: number } | { kind: 'service' };

/** Parses --by: "addr", "endpoint", "service", "cidr/24" or "cidr/24/64" (IPv4 prefix / IPv6 prefix, default 64). */
export function parseGroupBy(text: string): GroupBy {
  const t = text.trim().toLowerCase();
  if (t === 'addr' || t === 'address') return { kind: 'addr' };
  if (t === 'endpoint') return { kind: 'endpoint' };
  if (t === 'service') return { kind: 'service' };
  const m = /^cidr\/(\d{1,2})(?:\/(\d{1,3}))?$/.exec(t);
  if (m && Number(m[1]) <= 32 && (m[2] === undefined || Number(m[2]) <= 128)) return { kind: 'cidr', v4: Number(m[1]), v6: m[2] === undefined ? 64 : Number(m[2]) };
  throw usageError(`invalid --by '${text}': expected addr, endpoint, service, cidr/N (e.g. cidr/24) or cidr/N/M (IPv4/IPv6 prefixes)`);
}

let services: Map<number, string> | null = null;
/** TCP service names by port from /etc/services (empty when the file is missing). */
export function serviceName(port: number, text?: string): string | null {
  if (text !== undefined || !services) {
    const map = new Map<number, string>();
    let body = text ?? '';
    if (text === undefined) { try { body = readFileSync('/etc/services', 'utf8'); } catch { body = ''; } }
    for (const line of body.split('\n')) {
      const m = /^([\w.+-]+)\s+(\d+)\/tcp\b/.exec(line);
      if (m && !map.has(Number(m[2]))) map.set(Number(m[2]), m[1]);
    }
    if (text !== undefined) return map.get(port) ?? null;
    services = map;
  }
  return services.get(port) ?? null;
}

/** The row key of a remote address (and port, when known) under a grouping. */
export function destinationKey(by: GroupBy, addr: string, port: number | null): string {
  switch (by.kind) {
    case 'addr': return addr;
    case 'endpoint': return port === null ? addr : formatEndpoint(addr, port);
    case 'service': return port === null ? addr : (serviceName(port) ?? `${port}/tcp`);
    case 'cidr': return parseCidr(`${addr}/${addr.includes(':') ? by.v6 : by.v4}`).text;
  }
}

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
/** Drops waiting for their side to be known (addDrop); past this they count for their remote side at once. */
const PENDING_CAP = 65536;
const SEVERITY_RANK = { critical: 2, warning: 1, ok: 0 } as const;

class DestinationStats {
  attempts = 0;
  successes = 0;
  failures = 0;
  byClass = emptyClasses();
  latency = new Reservoir(512);
  retransSegs = 0;
  synRetrans = 0;
  retransAtLastSnapshot = 0;
  /** connection -> [retransmitted, sent] segments, latest values the kernel reported. */
  conns = new Map<string, [number, number]>();
  connsCapped = false;
  drops: Record<string, number> = {};
  dropTotal = 0;
  purges = 0;
  conntrack = 0;
  trouble = 0;
  history: number[] = [];
  containers = new Set<string>();
  lastSeen = 0;
  constructor(readonly key: string) {}

  conn(id: string, retr?: number, out?: number): void {
    const known = this.conns.get(id);
    if (!known && this.conns.size >= CONNS_CAP) { this.connsCapped = true; return; }
    if (retr === undefined || out === undefined) { if (!known) this.conns.set(id, [0, 0]); return; }
    // Counters only grow over a connection's life: keep the largest seen (events may arrive out of order).
    this.conns.set(id, [Math.max(retr, known?.[0] ?? 0), Math.max(out, known?.[1] ?? 0)]);
  }
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
  /** Longest time a drop waits to learn which side is the destination (see addDrop), ms. Default 5000. */
  dropHoldMs?: number;
  /** Whether conntrack is traced (rows then report entries, else null). */
  conntrack?: boolean;
  now?: () => number;
}

const connId = (netns: number, saddr: string, sport: number, daddr: string, dport: number) => `${netns}|${saddr}|${sport}|${daddr}|${dport}`;

/** Correlates retrans, drops, connect, life and conntrack events per destination. Usable on its own. */
export class TopAggregator {
  readonly by: GroupBy;
  private readonly table: BoundedTable<DestinationStats>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private readonly historyLength: number;
  private readonly opts: TopAggregatorOptions;
  private readonly pending = new Map<string, { remote: string; local: string | null; reason: string | null; first: number; count: number }>();
  private readonly dropHoldMs: number;

  constructor(opts: TopAggregatorOptions = {}) {
    this.opts = opts;
    this.by = opts.by ?? { kind: 'addr' };
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    this.historyLength = opts.historyLength ?? 30;
    this.dropHoldMs = opts.dropHoldMs ?? 5000;
    this.table = new BoundedTable(opts.maxDestinations ?? 4096, (k) => new DestinationStats(k));
  }

  private row(key: string, time: number, cgroupId?: number): DestinationStats {
    const r = this.table.row(key);
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
    if (e.type === 'established') {
      r.successes++;
      r.latency.add(e.latencyUs);
      r.conn(connId(e.netns, e.saddr, e.sport, e.daddr, e.dport));
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
    r.conn(connId(e.netns, e.saddr, e.sport, e.daddr, e.dport), e.totalRetrans, e.segsOut);
  }

  addLife(e: LifeEvent): void {
    if (e.type === 'closed' && !e.established) return; // a failed connect: counted by connect, not a connection
    // Accepted connections: the remote side is a client; its ephemeral port says nothing, the local port does.
    const port = e.direction === 'accept' ? (this.by.kind === 'service' ? e.sport : null) : e.dport;
    const r = this.row(destinationKey(this.by, e.daddr, port), e.time, e.cgroupId);
    r.conn(connId(e.netns, e.saddr, e.sport, e.daddr, e.dport), e.totalRetrans, e.segsOut);
  }

  /**
   * A drop counts for the destination it belongs to: its remote side, or, for traffic between namespaces of
   * this host, its local side when that is a destination this host connects to. Which side is known once a
   * connect to either has been seen (a dropped SYN comes before its connect's outcome), so drops wait in a
   * bounded pending table until then, at most `dropHoldMs`, and then count for their remote side.
   */
  addDrop(e: DropEvent): void {
    if (e.remoteAddr === null) return;
    const remote = destinationKey(this.by, e.remoteAddr, e.remotePort);
    const localAddr = e.direction === 'received' ? e.daddr : e.saddr;
    const localPort = e.direction === 'received' ? e.dport : e.sport;
    const local = localAddr === null ? null : destinationKey(this.by, localAddr, localPort);
    const reason = e.category === 'purge' ? null : e.reason;
    const placed = this.placeDrop(remote, local, false);
    if (placed || this.pending.size >= PENDING_CAP) { this.countDrop(placed ?? remote, reason, e.time, 1); return; }
    const k = `${remote}\u0000${local ?? ''}\u0000${reason ?? ''}`;
    const p = this.pending.get(k);
    if (p) p.count++;
    else this.pending.set(k, { remote, local, reason, first: e.time, count: 1 });
  }

  private placeDrop(remote: string, local: string | null, expired: boolean): string | null {
    if (local && this.table.peek(local)?.attempts) return local;
    if (this.table.peek(remote)?.attempts || expired) return remote;
    return null;
  }

  private countDrop(key: string, reason: string | null, time: number, n: number): void {
    const r = this.row(key, time);
    if (reason === null) { r.purges += n; return; }
    r.drops[reason] = (r.drops[reason] ?? 0) + n;
    r.dropTotal += n;
    r.trouble += n;
  }

  private placePending(now: number): void {
    for (const [k, p] of this.pending) {
      const key = this.placeDrop(p.remote, p.local, now - p.first >= this.dropHoldMs);
      if (key === null) continue;
      this.countDrop(key, p.reason, p.first, p.count);
      this.pending.delete(k);
    }
  }

  addConntrack(e: ConntrackEvent): void {
    const r = this.row(destinationKey(this.by, e.orig.dst, e.orig.dport || null), e.time);
    r.conntrack += e.kind === 'new' ? 1 : -1;
  }

  /** Current rows (unsorted: see sortRows), closing the current history interval. */
  snapshot(): TopSummary {
    const t = this.now();
    this.placePending(t);
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
    let retr = 0, out = 0;
    for (const [r, o] of s.conns.values()) { retr += r; out += o; }
    const ratio = out > 0 ? retr / out : 0;
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
      connections: s.conns.size, connectionsCapped: s.connsCapped,
      connects: { attempts: s.attempts, successes: s.successes, failures: s.failures, byClass: { ...s.byClass } },
      connectMs: { p50: s.latency.quantile(0.5) / 1000, p99: s.latency.quantile(0.99) / 1000 },
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

export function byText(by: GroupBy): string {
  return by.kind === 'cidr' ? `cidr/${by.v4}/${by.v6}` : by.kind;
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

export interface TopOptions extends FilterOptions {
  by?: GroupBy;
  /** Also trace connection lifetimes (more connections and sent-segment counts). Default true. */
  life?: boolean;
  /** Also trace conntrack entries. Default false. */
  conntrack?: boolean;
  maxDestinations?: number;
  historyLength?: number;
  thresholds?: DiagnosisThresholds;
  containerOf?: (cgroupId: number) => string | null;
  ringBufferBytes?: number;
  pollMs?: number;
}

export type TopToolName = 'retrans' | 'drops' | 'connect' | 'life' | 'conntrack';

/** What happened to each tool at start: the hooks in use, or why it is not running. */
export type TopStartInfo = Record<string, StartInfo | { error: string }>;

/** Runs the tools `top` correlates and feeds one TopAggregator. Tools that cannot start are reported, not fatal,
 * as long as one runs. */
export class TopSession {
  readonly aggregator: TopAggregator;
  readonly traces: Array<{ name: TopToolName; trace: Trace<unknown> }> = [];
  private readonly listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
  private running: TopToolName[] = [];

  constructor(opts: TopOptions = {}) {
    this.aggregator = new TopAggregator({ by: opts.by, maxDestinations: opts.maxDestinations, historyLength: opts.historyLength, thresholds: opts.thresholds, containerOf: opts.containerOf, conntrack: !!opts.conntrack });
    const filters: FilterOptions = { family: opts.family, localPort: opts.localPort, remotePort: opts.remotePort, remoteCidrs: opts.remoteCidrs };
    const common = { ...filters, ringBufferBytes: opts.ringBufferBytes, pollMs: opts.pollMs };
    const a = this.aggregator;
    this.add('retrans', retrans(common), (e: RetransEvent) => a.addRetrans(e));
    this.add('drops', drops(common), (e: DropEvent) => a.addDrop(e));
    this.add('connect', connect(common), (e: ConnectEvent) => a.addConnect(e));
    if (opts.life !== false) this.add('life', life(common), (e: LifeEvent) => a.addLife(e));
    if (opts.conntrack) this.add('conntrack', conntrack(common), (e: ConntrackEvent) => a.addConntrack(e));
  }

  private add<E>(name: TopToolName, trace: Trace<E>, feed: (e: E) => void): void {
    trace.onEvents((events) => {
      for (const e of events) feed(e);
      for (const l of this.listeners) l(name, events);
    });
    this.traces.push({ name, trace: trace as Trace<unknown> });
  }

  /** Every batch of raw events, by tool (e.g. to forward them elsewhere). */
  onEvents(listener: (tool: TopToolName, events: unknown[]) => void): this {
    this.listeners.push(listener);
    return this;
  }

  /** Starts every tool; fails only when none can start. */
  async start(): Promise<TopStartInfo> {
    const info: TopStartInfo = {};
    let firstError: unknown = null;
    for (const { name, trace } of this.traces) {
      try {
        info[name] = await trace.start();
        this.running.push(name);
      } catch (err) {
        firstError ??= err;
        info[name] = { error: (err as Error).message };
      }
    }
    if (!this.running.length) throw firstError;
    return info;
  }

  /** Tools running. */
  tools(): TopToolName[] {
    return [...this.running];
  }

  /** Events, lost events and recursion misses per running tool. */
  counters(): Partial<Record<TopToolName, TraceCounters>> {
    const out: Partial<Record<TopToolName, TraceCounters>> = {};
    for (const { name, trace } of this.traces) if (this.running.includes(name)) out[name] = trace.counters();
    return out;
  }

  snapshot(): TopSummary {
    return this.aggregator.snapshot();
  }

  async stop(): Promise<void> {
    await Promise.all(this.traces.map(({ trace }) => trace.stop()));
  }
}

/** Runs retrans, drops, connect (and life, conntrack) together: `const t = top(); await t.start(); t.snapshot()`. */
export function top(opts: TopOptions = {}): TopSession {
  return new TopSession(opts);
}
