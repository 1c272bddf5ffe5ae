/**
 * A Prometheus exporter over a TopSession (prom-client): counters and histograms per destination and per
 * drop reason, lost events and recursion misses per tool, and process metrics. Per-destination labels are
 * bounded: the first `maxSeries` destinations keep their own label value, later ones share "other" (and are
 * counted), so a port scan or a spoofed flood cannot blow up the time-series database.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { usageError } from '../../core/errors.js';
import { DropPlacement } from '../../core/placement.js';
import { OTHER_KEY } from '../../core/table.js';
import type { TraceCounters } from '../../core/trace.js';
import type { ConnectEvent } from '../connect/index.js';
import { dropSides, type DropEvent } from '../drops/index.js';
import type { LifeEvent } from '../life/index.js';
import type { RetransEvent } from '../retrans/index.js';
import { destinationKey, type GroupBy, type TopBulk, type TopSession, type TopToolName } from '../top/index.js';
import { FedHistogram } from './fed-histogram.js';

/** Label values for an unbounded key space: the first `max` keys as themselves, the rest as "other". */
export class BoundedLabels {
  private readonly known = new Set<string>();
  /** Keys that got "other" (each counted once while the sample of them is small). */
  folded = 0;
  private readonly foldedSeen = new Set<string>();
  constructor(readonly max: number) {}
  label(key: string): string {
    if (this.known.has(key)) return key;
    if (this.known.size < this.max) { this.known.add(key); return key; }
    if (!this.foldedSeen.has(key)) { this.folded++; if (this.foldedSeen.size < 65536) this.foldedSeen.add(key); }
    return OTHER_KEY;
  }
}

export interface PrometheusExporterOptions {
  /** Most destination label values before folding into "other". Default 100. */
  maxSeries?: number;
  /** Grouping of destinations (as for top). Default by address. */
  by?: GroupBy;
  /** Container id of a cgroup id: adds a `container` label (bounded like destinations). */
  containerOf?: (cgroupId: number) => string | null;
  /** How long a drop waits for the connect that tells which side is the destination (core/placement.ts), ms. */
  dropHoldMs?: number;
  /** Registry to use (a new one by default). */
  registry?: Registry;
  /** Process metrics (CPU, memory, event loop lag, ...). Default true. */
  processMetrics?: boolean;
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LIFETIME_BUCKETS = [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600];

/** Metrics for a TopSession's events. Call `attach()` before `session.start()`. */
export class PrometheusExporter {
  readonly registry: Registry;
  private readonly destinations: BoundedLabels;
  private readonly containerLabels = new BoundedLabels(100);
  private readonly by: GroupBy;
  private readonly containerOf?: (cgroupId: number) => string | null;
  private readonly m;
  private server: Server | null = null;
  /** Which destination each drop counts for: the rule top uses too. Tagged with the drop reason. */
  private readonly placement: DropPlacement<string>;
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(private readonly session: TopSession, opts: PrometheusExporterOptions = {}) {
    this.registry = opts.registry ?? new Registry();
    this.destinations = new BoundedLabels(opts.maxSeries ?? 100);
    this.by = opts.by ?? session.aggregator.by;
    this.containerOf = opts.containerOf;
    this.placement = new DropPlacement({ holdMs: opts.dropHoldMs });
    const registers = [this.registry];
    const withContainer = (labels: string[]) => (this.containerOf ? [...labels, 'container'] : labels);
    const perTool = (name: string, help: string, pick: (c: TraceCounters) => number) => {
      const last: Record<string, number> = {};
      const session = this.session;
      return new Counter({
        name, help, labelNames: ['tool'], registers,
        collect() {
          // Counters read from the traces at scrape time: add what grew since the last scrape.
          for (const [tool, c] of Object.entries(session.counters())) {
            const v = pick(c!);
            if (v > (last[tool] ?? 0)) this.inc({ tool }, v - (last[tool] ?? 0));
            else this.inc({ tool }, 0);
            last[tool] = Math.max(v, last[tool] ?? 0);
          }
        },
      });
    };
    const labels = this.destinations;
    this.m = {
      connects: new Counter({ name: 'netbpf_connect_attempts_total', help: 'TCP connect attempts by destination and result (ok, refused, timeout, unreachable, aborted, other)', labelNames: withContainer(['destination', 'result']), registers }),
      latency: new FedHistogram({ name: 'netbpf_connect_latency_seconds', help: 'Successful TCP connect latency (SYN sent to ESTABLISHED)', labelNames: withContainer(['destination']), buckets: LATENCY_BUCKETS, registers }),
      retrans: new Counter({ name: 'netbpf_retransmitted_segments_total', help: 'TCP segments retransmitted, by destination and kind (rto, fast, tlp, syn, synack, other)', labelNames: withContainer(['destination', 'kind']), registers }),
      drops: new Counter({ name: 'netbpf_drops_total', help: 'Packets dropped on this host, by kernel drop reason and destination (socket teardown purges excluded)', labelNames: ['destination', 'reason'], registers }),
      purges: new Counter({ name: 'netbpf_purged_packets_total', help: 'Queued packets freed with their socket (close, queue purge): not loss', registers }),
      closed: new Counter({ name: 'netbpf_connections_closed_total', help: 'TCP connections closed, by destination and close reason', labelNames: withContainer(['destination', 'reason']), registers }),
      lifetime: new FedHistogram({ name: 'netbpf_connection_duration_seconds', help: 'TCP connection lifetime (first state change to CLOSE)', labelNames: ['destination'], buckets: LIFETIME_BUCKETS, registers }),
      events: perTool('netbpf_events_total', 'Events delivered to user space per tool', (c) => c.events),
      lost: perTool('netbpf_lost_events_total', 'Events lost in the kernel (ring buffer full) per tool', (c) => c.lost),
      misses: perTool('netbpf_recursion_misses_total', 'BPF program runs the kernel skipped (recursion) per tool', (c) => c.recursionMisses),
      folded: new Counter({
        name: 'netbpf_destinations_folded_total', help: 'Destinations that got the "other" label (past --max-series)', registers,
        collect() { this.reset(); this.inc(labels.folded); },
      }),
    };
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'netbpf_' });
  }

  private dest(addr: string, port: number | null): string {
    return this.destinations.label(destinationKey(this.by, addr, port));
  }

  private container(cgroupId: number): Record<string, string> {
    if (!this.containerOf) return {};
    const c = cgroupId ? this.containerOf(cgroupId) : null;
    return { container: c ? this.containerLabels.label(c.slice(0, 12)) : '' };
  }

  /** Subscribes to the session's events, or (a session counting in the kernel) to what it reads from its maps. */
  attach(): this {
    this.flushTimer = setInterval(() => this.flushDrops(), 250);
    this.flushTimer.unref();
    this.session.onBulk((b) => this.bulk(b));
    this.session.onEvents((tool: TopToolName, events: unknown[]) => {
      if (tool === 'connect') for (const e of events as ConnectEvent[]) this.connect(e);
      else if (tool === 'retrans') for (const e of events as RetransEvent[]) this.m.retrans.inc({ destination: this.dest(e.daddr, e.dport), kind: e.kind, ...this.container(e.cgroupId) }, e.segs);
      else if (tool === 'drops') for (const e of events as DropEvent[]) this.drop(e);
      else if (tool === 'life') for (const e of events as LifeEvent[]) this.life(e);
    });
    return this;
  }

  private connect(e: ConnectEvent): void {
    const key = destinationKey(this.by, e.daddr, e.dport);
    this.placement.connectedTo(key);
    const destination = this.destinations.label(key);
    const c = this.container(e.cgroupId);
    this.m.connects.inc({ destination, result: e.type === 'established' ? 'ok' : e.failure, ...c });
    if (e.type === 'established') this.m.latency.observe({ destination, ...c }, e.latencyUs / 1e6);
  }

  /** A drop counts for the destination core/placement.ts's rule gives it (shared with top). */
  private drop(e: DropEvent): void {
    if (e.category === 'purge') { this.m.purges.inc(); return; }
    const sides = dropSides(e);
    if (sides.remote === null) { this.m.drops.inc({ destination: 'unknown', reason: e.reason }); return; }
    const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
    const placed = this.placement.add(destinationKey(this.by, sides.remote.addr, sides.remote.port), local, e.reason, e.time, 1, sides.server);
    if (placed) this.m.drops.inc({ destination: this.destinations.label(placed.destination), reason: placed.tag }, placed.count);
  }

  /** Counts the drops whose destination is known by now (all of them with force). */
  flushDrops(force = false): void {
    for (const p of this.placement.flush(Date.now(), force)) this.m.drops.inc({ destination: this.destinations.label(p.destination), reason: p.tag }, p.count);
  }

  private life(e: LifeEvent): void {
    if (e.type !== 'closed') return;
    const destination = this.dest(e.daddr, e.direction === 'accept' ? null : e.dport);
    this.m.closed.inc({ destination, reason: e.reason, ...this.container(e.cgroupId) });
    this.m.lifetime.observe({ destination }, e.durationMs / 1000);
  }

  /**
   * What the kernel counted for one key since the previous read, into the same series the events feed: counters by
   * the count, histograms by their log2 buckets (FedHistogram), drops through the same placement rule.
   */
  private bulk(b: TopBulk): void {
    if (b.tool === 'connect') {
      const k = b.key;
      const key = k.other ? OTHER_KEY : destinationKey(this.by, k.daddr, k.dport);
      if (!k.other) this.placement.connectedTo(key);
      const destination = k.other ? OTHER_KEY : this.destinations.label(key);
      const c = this.container(k.cgroupId);
      this.m.connects.inc({ destination, result: k.type === 'established' ? 'ok' : (k.failure ?? 'other'), ...c }, b.bulk.count);
      if (k.type === 'established') this.m.latency.observeLog2({ destination, ...c }, b.bulk.latencyUs, 1e-6);
    } else if (b.tool === 'retrans') {
      const k = b.key;
      if (!k.counted) return;
      const destination = k.other ? OTHER_KEY : this.dest(k.daddr, k.dport);
      this.m.retrans.inc({ destination, kind: k.kind, ...this.container(k.cgroupId) }, b.bulk.segs);
    } else if (b.tool === 'life') {
      const k = b.key;
      if (k.kind !== 'closed') return;
      const destination = k.other ? OTHER_KEY : this.dest(k.daddr, k.direction === 'accept' ? null : k.port);
      this.m.closed.inc({ destination, reason: k.reason, ...this.container(k.cgroupId) }, b.bulk.count);
      this.m.lifetime.observeLog2({ destination }, b.bulk.durationMs, 1e-3);
    } else {
      const e = b.event;
      if (e.category === 'purge') { this.m.purges.inc(b.bulk.count); return; }
      const sides = dropSides(e);
      if (b.folded || sides.remote === null) { this.m.drops.inc({ destination: b.folded ? OTHER_KEY : 'unknown', reason: e.reason }, b.bulk.count); return; }
      const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
      const placed = this.placement.add(destinationKey(this.by, sides.remote.addr, sides.remote.port), local, e.reason, b.bulk.firstSeen, b.bulk.count, sides.server);
      if (placed) this.m.drops.inc({ destination: this.destinations.label(placed.destination), reason: placed.tag }, placed.count);
    }
  }

  /** The metrics in Prometheus text format (a session counting in the kernel reads its maps first). */
  metrics(): Promise<string> {
    this.session.refresh();
    return this.registry.metrics();
  }

  /** Serves /metrics over HTTP; resolves with the address bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) {
        this.metrics().then(
          (body) => { res.writeHead(200, { 'Content-Type': this.registry.contentType }); res.end(body); },
          (err: Error) => { res.writeHead(500); res.end(`${err.message}\n`); },
        );
      } else if (req.url === '/') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('netbpf exporter: metrics at /metrics\n');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const a = server.address();
        resolve({ host, port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    this.flushDrops(true);
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections?.(); });
  }
}

/** Parses "host:port", "[v6]:port", ":port" or "port" (host defaults to 127.0.0.1: loopback unless asked). */
export function parseListenAddress(text: string): { host: string; port: number } {
  const t = text.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(t) ?? (/^\d{1,5}$/.test(t) ? [t, undefined, '', t] : null);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw usageError(`invalid listen address '${text}': expected host:port, [ipv6]:port or port, e.g. 127.0.0.1:9464`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
