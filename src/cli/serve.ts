/** `netbpf serve --prometheus [ADDR]`: the top session's events as Prometheus metrics (loopback by default). */
import { Command } from 'commander';
import { parseListenAddress, PrometheusExporter, TcpStateCensus } from '../tools/prometheus/index.js';
import { describeNetns } from '../core/ctnetlink.js';
import { parseGroupBy, top } from '../tools/top/index.js';
import { SocketReader } from '../tools/sockets/index.js';
import type { TraceCounters } from '../core/trace.js';
import { reportStart, sessionCountersLine, untilStopped } from './run.js';
import { addCgroupRootOption, containerResolver, type ContainerCliOptions } from './containers.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, filterOptions, positiveNumber, runSettings, type CommonCliOptions } from './common.js';

interface ServeCliOptions extends CommonCliOptions, ContainerCliOptions {
  prometheus?: string | boolean;
  by: string;
  maxSeries: string;
  evictIdle: string;
  scrapeInterval: string;
  linger?: string;
  conntrack?: boolean;
  netns?: string[];
  diagnosisWindow: string;
  sockets: boolean;
  life: boolean;
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('export per-destination connect, retransmit, drop and connection metrics for Prometheus')
    .option('--prometheus [addr]', 'serve /metrics on this address (default 127.0.0.1:9464; give 0.0.0.0:PORT to expose it)')
    .option('-b, --by <grouping>', 'destination label: addr, endpoint, service, cidr/N', 'addr')
    .option('--max-series <n>', 'destination label values at once; new ones share "other" while all are in use', '100')
    .option('--evict-idle <seconds>', 'a destination idle this long gives its label slot (and series) to a new one', '600')
    .option('--scrape-interval <seconds>', 'the scrape interval of your Prometheus: new series show zero for one interval first', '15')
    .option('--linger <seconds>', 'after SIGTERM/SIGINT, keep serving the final values this long (default: one scrape interval)')
    .option('--conntrack', 'also trace conntrack entries and export table pressure')
    .option('--netns <ns>', 'network namespace to watch besides this one: its TCP connections by state (and with --conntrack its conntrack table; without --netns, conntrack watches this one); a PID, a namespace file, an ip netns name, or "all"; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-life', 'do not trace connection lifetimes')
    .option('--diagnosis-window <seconds>', 'publish what top would diagnose over windows this long (netbpf_diagnosis; 0: none)', '60')
    .option('--no-sockets', 'no socket iterator for the diagnoses (listener overflows, CLOSE_WAIT leaks, stalled windows)')
    .option('-w, --container', 'add a container label (cgroup id -> container id)');
  addCgroupRootOption(cmd);
  addCommonOptions(cmd);
  addAggregateOption(cmd, true);
  cmd.action(async (o: ServeCliOptions) => {
    process.exitCode = await runServe(o);
  });
  return cmd;
}

async function runServe(o: ServeCliOptions): Promise<number> {
  const s = runSettings(o);
  const listen = parseListenAddress(typeof o.prometheus === 'string' ? o.prometheus : '127.0.0.1:9464');
  const maxSeries = positiveNumber(o.maxSeries, '--max-series', { integer: true })!;
  const evictIdleS = positiveNumber(o.evictIdle, '--evict-idle', { allowZero: true })!;
  const scrapeS = positiveNumber(o.scrapeInterval, '--scrape-interval', { allowZero: true })!;
  const windowS = positiveNumber(o.diagnosisWindow, '--diagnosis-window', { allowZero: true })!;
  const lingerS = positiveNumber(o.linger, '--linger', { allowZero: true }) ?? scrapeS;
  const by = parseGroupBy(o.by);
  const containers = containerResolver('serve', o);
  const containerOf = containers ? (id: number) => containers.containerOf(id) : undefined;
  const tcpStates = new TcpStateCensus(o.netns ?? [], {
    onError: (ns, message) => process.stderr.write(`netbpf serve: cannot count TCP connections of network namespace ${describeNetns(ns)} (netbpf_tcp_connections_read_errors_total): ${message}\n`),
  });
  const filters = filterOptions(o);
  // The exporter diagnoses over windows with its own socket reader; the session's run-long host evidence is for top.
  const session = top({ ...filters, by, life: o.life, conntrack: !!o.conntrack, conntrackNetns: o.netns, sockets: false, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, containerOf,
    aggregate: aggregateInKernel(o, true, null, true) ? 'kernel' : 'events' });
  const sockets = o.sockets && windowS > 0 ? new SocketReader(filters) : null;
  const exporter = new PrometheusExporter(session, { maxSeries, evictIdleMs: evictIdleS * 1000, scrapeIntervalMs: scrapeS * 1000, diagnosisWindowMs: windowS * 1000, sockets, by, containerOf, tcpStates }).attach();
  // Listen first: the port must be known to tell scrapes from traffic, and a taken port fails before any loading.
  let bound: { host: string; port: number };
  try {
    bound = await exporter.listen(listen.host, listen.port);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    await exporter.close();
    if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') {
      process.stderr.write(`netbpf: cannot listen on ${listen.host}:${listen.port}: ${e.code}\n`);
      return 1;
    }
    throw err;
  }
  // Listen for the end before attaching: a signal during start stops the run cleanly once attached.
  const ended = untilStopped(s);
  try {
    const info = await session.start();
    for (const [tool, i] of Object.entries(info)) reportStart(`serve/${tool}`, i, false);
    exporter.started(info);
    if (exporter.socketsError) process.stderr.write(`netbpf serve: diagnoses without socket evidence (listeners, CLOSE_WAIT, windows): ${exporter.socketsError}\n`);
    const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
    process.stderr.write(`netbpf serve: Prometheus metrics on http://${host}:${bound.port}/metrics\n`);
    await ended;
    await session.stop();
    process.stderr.write(sessionCountersLine('serve', session.counters() as Record<string, TraceCounters>) + '\n');
    // The last counts (a loss burst just before the stop) reach Prometheus only if it scrapes once more.
    exporter.finish();
    if (lingerS > 0) {
      process.stderr.write(`netbpf serve: stopped tracing; serving the final values for ${lingerS} s (--linger; a second signal exits now)\n`);
      await lingerFor(lingerS * 1000);
    }
  } finally {
    await session.stop();
    await exporter.close();
  }
  return 0;
}

/** Waits `ms`, or until the next SIGINT/SIGTERM/SIGHUP. */
function lingerFor(ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const done = () => { clearTimeout(timer); for (const sig of signals) process.off(sig, done); resolve(); };
    const timer = setTimeout(done, ms);
    for (const sig of signals) process.once(sig, done);
  });
}
