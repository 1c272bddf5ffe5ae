/**
 * A Prometheus exporter over a TopSession: netbpf's series (metrics.ts, fed by event-feed.ts) and the process
 * metrics of prom-client, served over HTTP. Per-destination labels are bounded and stay useful over days
 * (label-slots.ts), new series start at zero (series.ts), the exporter's own scrape connections are not
 * destinations (scrape-traffic.ts), top's diagnoses are published per window (diagnoses.ts), and at shutdown the
 * final values stay served for a last scrape (finish()).
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { packageRoot } from '../../core/addon.js';
import { usageError } from '../../core/errors.js';
import { ConntrackTrace } from '../conntrack/index.js';
import type { GroupBy, SocketSource, TopSession, TopStartInfo } from '../top/index.js';
import { EventFeed } from './event-feed.js';
import { DiagnosisWindow } from './diagnoses.js';
import { SocketReader } from '../sockets/index.js';
import type { DiagnosisThresholds } from '../../core/diagnosis/index.js';
import { NetbpfMetrics } from './metrics.js';
import { ownNetns, ScrapeTraffic } from './scrape-traffic.js';
import { TcpStateCensus } from './tcp-states.js';

export interface PrometheusExporterOptions {
  /** Most destination label values at once before new ones share "other". Default 100. */
  maxSeries?: number;
  /** Idle time after which a destination's (or container's) label slot may go to a new one, ms. Default 10 min. */
  evictIdleMs?: number;
  /** Grouping of destinations (as for top). Default the session's. */
  by?: GroupBy;
  /** Container id of a cgroup id: adds a `container_id` label (bounded like destinations). */
  containerOf?: (cgroupId: number) => string | null;
  /** How long a drop waits for the connect that tells which side is the destination (core/placement.ts), ms. */
  dropHoldMs?: number;
  /** The scrape interval of the Prometheus scraping this exporter, ms: a new series stays at zero for one interval
   * after its first scrape (so rate() sees its first count). 0 shows counts at once. Default 15 s. */
  scrapeIntervalMs?: number;
  /** Process metrics (CPU, memory, file descriptors, event loop lag, heap, GC). Default true. */
  processMetrics?: boolean;
  /** Diagnoses (netbpf_diagnosis, netbpf_host_diagnosis) over windows of this length, ms; 0: none. Default 60 s. */
  diagnosisWindowMs?: number;
  /** Where the diagnoses' host evidence reads sockets (listeners, CLOSE_WAIT, stalled windows): a SocketReader
   * (opened and closed by the exporter), or null for none. Default: a SocketReader without filters. */
  sockets?: SocketSource | null;
  /** Diagnosis thresholds (as for top). */
  thresholds?: DiagnosisThresholds;
  /** Where netbpf_tcp_connections comes from: a census of this process's namespace and the watched ones, or null
   * for none. Default: this process's namespace only. */
  tcpStates?: TcpStateCensus | null;
}

/** How often a session counting in the kernel has its maps read besides at each scrape, at least, ms: a scrape
 * interval (a new series is shown at zero from its first scrape on, so reading between scrapes adds nothing a
 * scrape would not show; the read costs a per-CPU merge of every key that grew, hundreds under a storm). */
const KERNEL_READ_MIN_MS = 1000;

/** How often host evidence is read within a diagnosis window at most, ms (a stalled window needs several readings). */
const HOST_READ_MS = 5000;

/** prom-client's default metrics that `promtool check metrics` rejects: gauges named _total (their labelled
 * siblings carry the same numbers by type; sum() gives the totals). */
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
const PREFIX = 'netbpf_';

function packageVersion(): string {
  try { return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version; } catch { return 'unknown'; }
}

/** Metrics for a TopSession. Call `attach()` before `session.start()` and `started()` after it. */
export class PrometheusExporter {
  /** netbpf's own series. */
  readonly series: NetbpfMetrics;
  /** prom-client's registry with the process metrics. */
  readonly registry = new Registry();
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly feed: EventFeed;
  private server: Server | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  /** When the kernel maps were last read (Date.now()). */
  private lastRead = 0;
  private readonly window: DiagnosisWindow | null;
  private readonly windowMs: number;
  private readonly scrapeIntervalMs: number;
  private readonly sockets: SocketSource | null;
  private readonly tcpStates: TcpStateCensus | null;
  private windowTimers: NodeJS.Timeout[] = [];
  /** Why the diagnoses have no socket evidence (the iterator could not load; known after started()), or null. */
  socketsError: string | null = null;

  constructor(private readonly session: TopSession, opts: PrometheusExporterOptions = {}) {
    const by = opts.by ?? session.aggregator.by;
    this.series = new NetbpfMetrics({ by, maxSeries: opts.maxSeries, evictIdleMs: opts.evictIdleMs, holdMs: opts.scrapeIntervalMs, containers: !!opts.containerOf });
    this.feed = new EventFeed(this.series, { by, containerOf: opts.containerOf, dropHoldMs: opts.dropHoldMs });
    this.windowMs = opts.diagnosisWindowMs ?? 60000;
    this.scrapeIntervalMs = opts.scrapeIntervalMs ?? 15000;
    this.sockets = this.windowMs > 0 ? (opts.sockets === undefined ? new SocketReader() : opts.sockets) : null;
    this.window = this.windowMs > 0 ? new DiagnosisWindow({ by, sockets: this.sockets, thresholds: opts.thresholds, dropHoldMs: opts.dropHoldMs, knownDestinations: () => this.feed.knownDestinations() }) : null;
    this.feed.window = this.window;
    this.tcpStates = opts.tcpStates === undefined ? new TcpStateCensus() : opts.tcpStates;
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
      for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(PREFIX + name);
    }
  }

  /** Subscribes to the session's events. */
  attach(): this {
    this.flushTimer = setInterval(() => this.feed.flushDrops(), 250);
    this.flushTimer.unref();
    const w = this.window;
    if (w) {
      this.windowTimers = [
        setInterval(() => w.tick(), Math.min(HOST_READ_MS, this.windowMs / 4)),
        // A session counting in the kernel hands over what it counted first, so the window closes with it.
        setInterval(() => { this.read(); this.series.diagnoses(w.close()); }, this.windowMs),
      ];
      for (const t of this.windowTimers) t.unref();
    }
    this.session.onEvents((tool, events) => this.feed.add(tool, events));
    // A session counting in the kernel (the default): what it read from its maps, key by key, into the same series;
    // read once per scrape interval too, so a Prometheus that stops scraping does not leave the maps unread.
    this.session.onBulk((b) => this.feed.addBulk(b));
    if (this.session.kernel) {
      const every = Math.max(KERNEL_READ_MIN_MS, this.scrapeIntervalMs);
      // Only when no scrape (nor window) has read the maps for an interval: a read costs a merge per key that grew.
      this.refreshTimer = setInterval(() => { if (Date.now() - this.lastRead >= every * 0.9) this.read(); }, every);
      this.refreshTimer.unref();
    }
    return this;
  }

  /** Reads the session's kernel maps into the series (a session counting events: nothing to read). */
  private read(): void {
    this.lastRead = Date.now();
    this.session.refresh();
  }

  /** What the session started with (netbpf_build_info, netbpf_hook_info, netbpf_tool_up). */
  started(info: TopStartInfo): this {
    const all: TopStartInfo = { ...info };
    if (this.sockets instanceof SocketReader) {
      // The diagnoses' socket iterator: in netbpf_hook_info and netbpf_tool_up like the tools.
      const feature = 'sockets of every process (listeners, CLOSE_WAIT, windows)';
      try {
        this.sockets.open();
        all.sockets = { hooks: [{ feature, hook: 'iter/task_file', program: 'dump_task_file', programs: ['dump_task_file'], skipped: [] }], startupMs: 0 };
      } catch (err) {
        all.sockets = { error: (err as Error).message };
        this.socketsError = (err as Error).message;
      }
    }
    this.series.startInfo(packageVersion(), release(), all);
    this.window?.tick(); // host evidence baselines, now that the tools see everything
    return this;
  }


  /** The metrics in Prometheus text format (a session counting in the kernel reads its maps first; TCP sockets by
   * state are counted now, per namespace). */
  async metrics(): Promise<string> {
    // Counted on the addon's threads while the rest is read here; handled now, so a failure is this scrape's error.
    const tcp = this.tcpStates?.read();
    tcp?.catch(() => undefined);
    this.read();
    for (const [tool, c] of Object.entries(this.session.counters())) if (c) this.series.toolCounters(tool, c);
    for (const { trace } of this.session.traces ?? []) if (trace instanceof ConntrackTrace) this.series.conntrack(trace.pressure());
    this.series.slotCounters();
    if (tcp) this.series.tcpConnections(await tcp);
    return this.series.series.expose() + (await this.registry.metrics());
  }

  /**
   * Serves /metrics over HTTP; resolves with the address bound. Connections to this listener (and, from this
   * network namespace, to its port) are scrapes, not destinations, from then on.
   */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) {
        this.metrics().then(
          (body) => { res.writeHead(200, { 'Content-Type': this.contentType }); res.end(body); },
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
        const bound = typeof a === 'object' && a ? a.port : port;
        this.feed.scrapes = new ScrapeTraffic(ownNetns(), host, bound);
        resolve({ host, port: bound });
      });
    });
  }

  /** After the session stopped: every drop still waiting is placed and every series shows its final counts, so
   * the next scrape carries the last values of the run. Keep serving for a scrape interval, then close(). */
  finish(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
    this.feed.flushDrops(true);
    for (const t of this.windowTimers) clearInterval(t);
    // The last, partial window: its diagnoses (a failure just before the stop) are the ones the last scrape shows.
    if (this.windowTimers.length && this.window) this.series.diagnoses(this.window.close());
    this.windowTimers = [];
    this.series.series.hold.released = true;
  }

  /** Stops serving (after finish(), which it calls if needed). */
  async close(): Promise<void> {
    this.finish();
    this.sockets?.close();
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
