/** `netbpf serve --prometheus [ADDR]`: the top session's events as Prometheus metrics (loopback by default). */
import { Command } from 'commander';
import { parseListenAddress, PrometheusExporter } from '../tools/prometheus/index.js';
import { parseGroupBy, top } from '../tools/top/index.js';
import type { TraceCounters } from '../core/trace.js';
import { reportStart, sessionCountersLine, untilStopped } from './run.js';
import { addCgroupRootOption, containerResolver, type ContainerCliOptions } from './containers.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, filterOptions, positiveNumber, runSettings, type CommonCliOptions } from './common.js';

interface ServeCliOptions extends CommonCliOptions, ContainerCliOptions {
  prometheus?: string | boolean;
  by: string;
  maxSeries: string;
  conntrack?: boolean;
  life: boolean;
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('export per-destination connect, retransmit, drop and connection metrics for Prometheus')
    .option('--prometheus [addr]', 'serve /metrics on this address (default 127.0.0.1:9464; give 0.0.0.0:PORT to expose it)')
    .option('-b, --by <grouping>', 'destination label: addr, endpoint, service, cidr/N', 'addr')
    .option('--max-series <n>', 'destination label values before folding into "other"', '100')
    .option('--conntrack', 'also trace conntrack entries')
    .option('--no-life', 'do not trace connection lifetimes')
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
  const by = parseGroupBy(o.by);
  const containers = containerResolver('serve', o);
  const containerOf = containers ? (id: number) => containers.containerOf(id) : undefined;
  const session = top({
    ...filterOptions(o), by, life: o.life, conntrack: !!o.conntrack, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, containerOf,
    aggregate: aggregateInKernel(o, true, null, true) ? 'kernel' : 'events',
  });
  const exporter = new PrometheusExporter(session, { maxSeries, by, containerOf }).attach();
  // Listen for the end before attaching: a signal during start stops the run cleanly once attached.
  const ended = untilStopped(s);
  const info = await session.start();
  for (const [tool, i] of Object.entries(info)) reportStart(`serve/${tool}`, i, false);
  try {
    const bound = await exporter.listen(listen.host, listen.port);
    const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
    process.stderr.write(`netbpf serve: Prometheus metrics on http://${host}:${bound.port}/metrics\n`);
    await ended;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') {
      process.stderr.write(`netbpf: cannot listen on ${listen.host}:${listen.port}: ${e.code}\n`);
      await session.stop();
      return 1;
    }
    throw err;
  } finally {
    await exporter.close();
  }
  await session.stop();
  const counters = session.counters();
  process.stderr.write(sessionCountersLine('serve', counters as Record<string, TraceCounters>) + '\n');
  return 0;
}
