/**
 * The series netbpf exports (names, help, labels, buckets: docs/prometheus.md) and the one way to record into
 * them. Whatever feeds the exporter (events, or counts read from in-kernel aggregation maps: every method takes a
 * count, every histogram one value or log2 buckets) calls these methods with destination keys as top groups them;
 * label slots, eviction, container labels and the zero hold are handled here.
 */
import { OTHER_KEY } from '../../core/table.js';
import type { StartInfo, TraceCounters } from '../../core/trace.js';
import type { RetransKind } from '../retrans/index.js';
import type { FailureClass } from '../connect/index.js';
import type { CloseReason } from '../life/index.js';
import type { ConntrackPressure } from '../conntrack/index.js';
import type { GroupBy, TopSummary } from '../top/index.js';
import type { TcpNamespaceCount } from './tcp-states.js';
import { LabelSlots } from './label-slots.js';
import { SeriesRegistry, ZeroHold, type Log2Buckets, type MetricFamily, type Observation } from './series.js';

/** conntrack and TCP state series are per network namespace: its inode (as events carry it) and its `ip netns`
 * name, if any. */
const NETNS_LABELS = ['netns', 'netns_name'];

/** Destination label value for drops whose packet had no usable address. */
export const UNKNOWN_DESTINATION = 'unknown';

/** Connect latency: microseconds, bounds 8 us .. 8.4 s, every power of two. */
export const CONNECT_LATENCY_BUCKETS: Log2Buckets = { lowPow: 3, highPow: 23, step: 1, scale: 1e-6 };
/** Smoothed RTT: microseconds, bounds 8 us .. 4.2 s, every power of two. */
export const RTT_BUCKETS: Log2Buckets = { lowPow: 3, highPow: 22, step: 1, scale: 1e-6 };
/** Connection lifetime: milliseconds, bounds 1 ms .. 70 min, every power of four. */
export const LIFETIME_BUCKETS: Log2Buckets = { lowPow: 0, highPow: 22, step: 2, scale: 1e-3 };

export interface NetbpfMetricsOptions {
  /** How destination keys were made (adds `address`/`port` labels for endpoints). */
  by: GroupBy;
  /** Most destination label values at once (the rest share "other"). Default 100. */
  maxSeries?: number;
  /** Most container label values at once. Default 100. */
  maxContainers?: number;
  /** Idle time after which a destination's or container's slot may go to a new one, ms. Default 10 min. */
  evictIdleMs?: number;
  /** How long a new series stays at zero after its first scrape, ms (one scrape interval). Default 15 s. */
  holdMs?: number;
  /** Adds a `container_id` label to per-process series (not `container`: Kubernetes scrape configs add a target
   * label of that name, the pod's container name, which would rename ours to exported_container). */
  containers?: boolean;
  now?: () => number;
}

/** Which series group by what (label names after `destination`). */
type DestinationLabels = readonly string[];

/** The label names that carry a destination under a grouping: endpoints also as separate address and port. */
export function destinationLabelNames(by: GroupBy): DestinationLabels {
  return by.kind === 'endpoint' ? ['destination', 'address', 'port'] : ['destination'];
}

/** The destination label values of a key under a grouping ("other" and "unknown" have no address or port). */
export function destinationLabelValues(by: GroupBy, key: string): string[] {
  if (by.kind !== 'endpoint') return [key];
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(key) ?? /^([^:]+):(\d+)$/.exec(key);
  return m ? [key, m[1], m[2]] : [key, key === OTHER_KEY || key === UNKNOWN_DESTINATION ? '' : key, ''];
}

export type ConnectResult = 'ok' | FailureClass;
export type Direction = 'sent' | 'received';

/** The exporter's series and the methods that record into them. */
export class NetbpfMetrics {
  readonly series: SeriesRegistry;
  readonly destinations: LabelSlots;
  readonly containerSlots: LabelSlots | null;
  private readonly by: GroupBy;
  private readonly destNames: DestinationLabels;
  private readonly labelCache = new Map<string, string[]>();
  private conntrackNetns = new Set<string>();
  /** The namespaces whose TCP connections were counted, with the name their series carry. */
  private tcpNetns = new Map<string, string>();
  readonly f: Record<
    'connects' | 'latency' | 'retrans' | 'sent' | 'bytes' | 'drops' | 'droppedBytes' | 'purges' | 'closed' | 'lifetime' | 'rtt' |
    'events' | 'lost' | 'misses' | 'malformed' | 'sourceLost' | 'folded' | 'evicted' | 'buildInfo' | 'hookInfo' | 'toolUp' |
    'tcpConnections' | 'tcpReadErrors' | 'ctEntries' | 'ctLimit' | 'ctDrop' | 'ctEarlyDrop' | 'ctInsertFailed' | 'ctInvalid' | 'diagnosis' | 'hostDiagnosis',
    MetricFamily
  >;

  constructor(opts: NetbpfMetricsOptions) {
    const now = opts.now ?? Date.now;
    this.by = opts.by;
    this.destNames = destinationLabelNames(opts.by);
    this.series = new SeriesRegistry(new ZeroHold(opts.holdMs ?? 15000, now));
    const idle = opts.evictIdleMs ?? 600000;
    this.destinations = new LabelSlots(opts.maxSeries ?? 100, idle, (k) => { this.labelCache.delete(k); this.series.deleteWhere('destination', k); }, now, new Set([UNKNOWN_DESTINATION]));
    this.containerSlots = opts.containers ? new LabelSlots(opts.maxContainers ?? 100, idle, (c) => this.series.deleteWhere('container_id', c), now) : null;
    const d = this.destNames;
    const c = opts.containers ? ['container_id'] : [];
    const s = this.series;
    this.f = {
      connects: s.counter('netbpf_connect_attempts_total', 'TCP connect attempts, by destination and result (ok, refused, timeout, unreachable, aborted, other)', [...d, 'result', ...c]),
      latency: s.histogram('netbpf_connect_latency_seconds', 'Successful TCP connect latency: SYN sent to ESTABLISHED', [...d, ...c], CONNECT_LATENCY_BUCKETS),
      retrans: s.counter('netbpf_retransmitted_segments_total', 'TCP segments retransmitted, by destination and kind (rto, fast, tlp, syn, synack, other); equals the kernel\'s RetransSegs', [...d, 'kind', ...c]),
      sent: s.counter('netbpf_sent_segments_total', 'TCP segments sent for the first time, as OutSegs counts them (per connection: segs_out less total_retrans, counted as records report it and at close), by destination', [...d, ...c]),
      bytes: s.counter('netbpf_bytes_total', 'TCP payload bytes of closed connections, by destination and direction (sent: acknowledged by the peer; received: in order)', [...d, 'direction', ...c]),
      drops: s.counter('netbpf_drops_total', 'Packets dropped on this host, by destination, kernel drop reason and direction (socket teardown purges excluded)', [...d, 'reason', 'direction']),
      droppedBytes: s.counter('netbpf_dropped_bytes_total', 'Bytes of the packets dropped on this host (skb length), by destination, reason and direction', [...d, 'reason', 'direction']),
      purges: s.counter('netbpf_purged_packets_total', 'Queued packets freed with their socket (close, queue purge): not loss'),
      closed: s.counter('netbpf_connections_closed_total', 'TCP connections closed, by destination and how they ended (fin, reset-received, reset-sent, timeout, error)', [...d, 'reason', ...c]),
      lifetime: s.histogram('netbpf_connection_duration_seconds', 'TCP connection lifetime: first state change to CLOSE', [...d], LIFETIME_BUCKETS),
      rtt: s.histogram('netbpf_rtt_seconds', 'Smoothed round-trip time of each established connection when it closed', [...d], RTT_BUCKETS),
      events: s.counter('netbpf_events_total', 'Events delivered to user space, per tool', ['tool']),
      lost: s.counter('netbpf_lost_events_total', 'Events lost in the kernel, per tool: ring buffer full, or (counted in the kernel) a summary map and its "other" fold both full', ['tool']),
      misses: s.counter('netbpf_recursion_misses_total', 'BPF program runs the kernel skipped (recursion), per tool', ['tool']),
      malformed: s.counter('netbpf_malformed_records_total', 'Records of an unexpected size (BPF object and decoder disagree), per tool', ['tool']),
      sourceLost: s.counter('netbpf_source_lost_events_total', 'Events an event source outside the ring buffer (conntrack\'s ctnetlink sockets) could not deliver, as the kernel counted them, per tool', ['tool']),
      folded: s.counter('netbpf_destinations_folded_total', 'New destinations that got the "other" label because every label slot was in use (--max-series)'),
      evicted: s.counter('netbpf_destinations_evicted_total', 'Destinations whose series were deleted to give their label slot to a new destination, after --evict-idle without activity'),
      buildInfo: s.gauge('netbpf_build_info', 'netbpf version, Node.js version and kernel release (value 1)', ['version', 'nodejs', 'kernel']),
      hookInfo: s.gauge('netbpf_hook_info', 'The hook serving each feature of each tool on this host (value 1); hook="" when unavailable, with the cause', ['tool', 'feature', 'hook', 'unavailable']),
      toolUp: s.gauge('netbpf_tool_up', 'Whether each tool is running (1) or could not start (0)', ['tool']),
      tcpConnections: s.gauge('netbpf_tcp_connections', 'TCP sockets now, by network namespace and state (kernel TCP_* names without the prefix; `ss -tan` in that namespace lists the same), IPv4 and IPv6: listeners, connections, request sockets (half-open, as SYN_RECV) and timewait sockets (TIME_WAIT; FIN_WAIT2 once orphaned) included; sockets never connected nor listening are not. Counted at each scrape (inet_diag); absent for a namespace whose count failed (netbpf_tcp_connections_read_errors_total)', [...NETNS_LABELS, 'state']),
      tcpReadErrors: s.counter('netbpf_tcp_connections_read_errors_total', 'Scrapes that could not count a network namespace\'s TCP sockets (namespace gone, no permission to enter it): its netbpf_tcp_connections series are absent from those scrapes', NETNS_LABELS),
      ctEntries: s.gauge('netbpf_conntrack_entries', 'conntrack entries now, per watched network namespace (nf_conntrack_count)', NETNS_LABELS),
      ctLimit: s.gauge('netbpf_conntrack_entries_limit', 'Most conntrack entries the table takes (nf_conntrack_max), per watched network namespace', NETNS_LABELS),
      ctDrop: s.counter('netbpf_conntrack_stat_drop_total', 'Packets dropped because no conntrack entry could be made (table full, nothing to evict): "nf_conntrack: table full, dropping packet"', NETNS_LABELS),
      ctEarlyDrop: s.counter('netbpf_conntrack_stat_early_drop_total', 'conntrack entries evicted to make room for new ones (table full)', NETNS_LABELS),
      ctInsertFailed: s.counter('netbpf_conntrack_stat_insert_failed_total', 'conntrack entries that could not be inserted (a clash, or the table full at confirm)', NETNS_LABELS),
      ctInvalid: s.counter('netbpf_conntrack_stat_invalid_total', 'Packets conntrack could not track (invalid)', NETNS_LABELS),
      diagnosis: s.gauge('netbpf_diagnosis', 'What top would diagnose for the destination over the last diagnosis window (code as in docs/top.md); the value is the units of trouble it explains', [...d, 'code', 'severity', 'confidence']),
      hostDiagnosis: s.gauge('netbpf_host_diagnosis', 'What top would diagnose about this host over the last diagnosis window: a listener, a process, a namespace (subject); the value is the units of trouble it explains', ['code', 'subject', 'severity', 'confidence']),
    };
    this.f.folded.inc([], 0);
    this.f.evicted.inc([], 0);
  }

  /** Label values of a destination key, through its slot ("other" when none). */
  private dest(key: string): string[] {
    const label = this.destinations.label(key);
    let v = this.labelCache.get(label);
    if (!v) { v = destinationLabelValues(this.by, label); this.labelCache.set(label, v); }
    return v;
  }

  /** The container label values ([] without container labels). */
  private cont(container: string | null): string[] {
    if (!this.containerSlots) return [];
    return [container ? this.containerSlots.label(container.slice(0, 12)) : ''];
  }

  /** `count` connects with one result; the latency (us) of successful ones, one value or bucketed. */
  connect(key: string, result: ConnectResult, container: string | null, latencyUs?: Observation, count = 1): void {
    const d = this.dest(key), c = this.cont(container);
    this.f.connects.inc([...d, result, ...c], count);
    if (latencyUs !== undefined) this.f.latency.record([...d, ...c], latencyUs);
  }

  retransmitted(key: string, kind: RetransKind, segs: number, container: string | null): void {
    this.f.retrans.inc([...this.dest(key), kind, ...this.cont(container)], segs);
  }

  sent(key: string, segs: number, container: string | null): void {
    this.f.sent.inc([...this.dest(key), ...this.cont(container)], segs);
  }

  bytes(key: string, sent: number, received: number, container: string | null): void {
    const d = this.dest(key), c = this.cont(container);
    this.f.bytes.inc([...d, 'sent', ...c], sent);
    this.f.bytes.inc([...d, 'received', ...c], received);
  }

  drops(key: string, reason: string, direction: Direction, count: number, bytes: number): void {
    const labels = [...this.dest(key), reason, direction];
    this.f.drops.inc(labels, count);
    this.f.droppedBytes.inc(labels, bytes);
  }

  purges(count: number): void {
    this.f.purges.inc([], count);
  }

  /** `count` connections closed after their handshake: how they ended, their lifetimes (ms) and smoothed RTTs (us),
   * each one value or bucketed. */
  closed(key: string, reason: CloseReason, container: string | null, durationMs: Observation, srttUs: Observation | null, count = 1): void {
    const d = this.dest(key);
    this.f.closed.inc([...d, reason, ...this.cont(container)], count);
    this.f.lifetime.record(d, durationMs);
    if (srttUs !== null) this.f.rtt.record(d, srttUs);
  }

  /** A tool's counters as its trace reports them (totals since start). */
  toolCounters(tool: string, c: TraceCounters): void {
    this.f.events.set([tool], c.events);
    this.f.lost.set([tool], c.lost);
    this.f.misses.set([tool], c.recursionMisses);
    this.f.malformed.set([tool], c.malformed);
    if (c.sourceLost !== undefined) this.f.sourceLost.set([tool], c.sourceLost);
  }

  /** The slot counters, read at scrape time. */
  slotCounters(): void {
    this.f.folded.set([], this.destinations.folded);
    this.f.evicted.set([], this.destinations.evicted);
  }

  /** Table pressure of each watched conntrack table; series of namespaces no longer watched are deleted. */
  conntrack(tables: readonly ConntrackPressure[]): void {
    const now = new Set(tables.map((t) => String(t.netns)));
    const families = [this.f.ctEntries, this.f.ctLimit, this.f.ctDrop, this.f.ctEarlyDrop, this.f.ctInsertFailed, this.f.ctInvalid];
    for (const netns of this.conntrackNetns) if (!now.has(netns)) for (const f of families) f.deleteWhere('netns', netns);
    this.conntrackNetns = now;
    for (const t of tables) {
      const l = [String(t.netns), t.name ?? ''];
      this.f.ctEntries.set(l, t.count);
      this.f.ctLimit.set(l, t.max);
      this.f.ctDrop.set(l, t.drop);
      this.f.ctEarlyDrop.set(l, t.earlyDrop);
      this.f.ctInsertFailed.set(l, t.insertFailed);
      this.f.ctInvalid.set(l, t.invalid);
    }
  }

  /** TCP sockets by state of each counted namespace, as read at this scrape: a namespace whose read failed has no
   * series (never stale counts) and one more error; series of namespaces no longer counted are deleted. */
  tcpConnections(counts: readonly TcpNamespaceCount[]): void {
    const now = new Map(counts.map((c) => [String(c.netns), c.name ?? '']));
    for (const [netns, name] of this.tcpNetns) {
      if (now.get(netns) === name) continue;
      this.f.tcpConnections.deleteWhere('netns', netns);
      this.f.tcpReadErrors.deleteWhere('netns', netns);
    }
    this.tcpNetns = now;
    for (const c of counts) {
      const l = [String(c.netns), c.name ?? ''];
      this.f.tcpReadErrors.inc(l, c.error === null ? 0 : 1);
      if (c.error !== null) { this.f.tcpConnections.deleteWhere('netns', l[0]); continue; }
      for (const [state, n] of c.states) this.f.tcpConnections.set([...l, state], n);
    }
  }

  /** The diagnoses of a window (DiagnosisWindow.close()): they replace the previous window's. */
  diagnoses(summary: Pick<TopSummary, 'rows' | 'host'>): void {
    this.f.diagnosis.clear();
    this.f.hostDiagnosis.clear();
    for (const row of summary.rows) {
      if (!row.diagnoses.length) continue;
      const d = this.dest(row.key);
      for (const g of row.diagnoses) this.f.diagnosis.set([...d, g.code, g.severity, g.confidence], g.explains);
    }
    for (const g of summary.host.diagnoses) this.f.hostDiagnosis.set([g.code, g.subject, g.severity, g.confidence], g.explains);
  }

  /** What each tool started with: the hook serving each feature, or why it could not start. */
  startInfo(version: string, kernel: string, info: Record<string, StartInfo | { error: string }>): void {
    this.f.buildInfo.set([version, process.version, kernel], 1);
    for (const [tool, i] of Object.entries(info)) {
      this.f.toolUp.set([tool], 'error' in i ? 0 : 1);
      if ('error' in i) continue;
      for (const h of i.hooks) this.f.hookInfo.set([tool, h.feature, h.hook ?? '', h.hook ? '' : (h.unavailable ?? 'kernel')], 1);
    }
  }
}
