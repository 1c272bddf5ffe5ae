/**
 * `netbpf top`: one row per destination, correlated across retrans, drops, connect (and life, conntrack),
 * refreshed every interval, with a diagnosis line per unhealthy destination. Full screen on a terminal
 * (q quits, s cycles the sort key); snapshots on a pipe, with --snapshots, or once with --once.
 */
import { Command, Option } from 'commander';
import { parseGroupBy, renderTop, sortRows, top, TOP_SORT_KEYS, type TopSortKey } from '../tools/top/index.js';
import type { TraceCounters } from '../core/trace.js';
import { reportCounters, reportStart, sessionCountersLine, untilStopped } from './run.js';
import { addCgroupRootOption, containerResolver, type ContainerCliOptions } from './containers.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { jsonText } from '../core/format.js';

interface TopCliOptions extends CommonCliOptions, ContainerCliOptions {
  by: string;
  sort: TopSortKey;
  conntrack?: boolean;
  life: boolean;
  sockets: boolean;
  once?: boolean;
  snapshots?: boolean;
}

export function topCommand(): Command {
  const cmd = new Command('top')
    .description('what is wrong with the network to each destination: connects, failures, latency, retransmits, drops, diagnosis')
    .option('-b, --by <grouping>', 'one row per: addr, endpoint, service, cidr/N (e.g. cidr/24)', 'addr')
    .addOption(new Option('-S, --sort <key>', 'sort rows by').choices([...TOP_SORT_KEYS]).default('health'))
    .option('--conntrack', 'also trace conntrack entries per destination')
    .option('--no-life', 'do not trace connection lifetimes (fewer hooks; retransmit ratios only from retransmitting connections)')
    .option('--no-sockets', 'do not read the processes\' TCP sockets each interval (no listener-overflow, CLOSE_WAIT or zero-window diagnoses)')
    .option('-1, --once', 'print one snapshot after the interval (or --duration) and exit')
    .option('--snapshots', 'print a snapshot every interval instead of the full-screen view (default when stdout is not a terminal)')
    .option('-w, --container', 'show the containers talking to each destination (cgroup id -> container id)');
  addCgroupRootOption(cmd);
  addCommonOptions(cmd);
  addAggregateOption(cmd, true);
  cmd.action(async (o: TopCliOptions) => {
    process.exitCode = await runTop(o);
  });
  return cmd;
}


async function runTop(o: TopCliOptions): Promise<number> {
  const s = runSettings(o);
  const by = parseGroupBy(o.by);
  const intervalMs = s.intervalMs ?? 2000;
  const containers = containerResolver('top', o);
  const session = top({
    ...filterOptions(o), by, life: o.life, sockets: o.sockets, conntrack: !!o.conntrack, maxDestinations: s.maxDestinations,
    ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, containerOf: containers ? (id) => containers.containerOf(id) : undefined,
    aggregate: aggregateInKernel(o, true, null, true) ? 'kernel' : 'events',
  });
  const out = process.stdout;
  const interactive = !!out.isTTY && !o.once && !o.snapshots && !s.json;
  // Listen for the end before attaching: a signal during start stops the run cleanly once attached.
  const ended = untilStopped(s);
  const info = await session.start();
  for (const [tool, i] of Object.entries(info)) reportStart(`top/${tool}`, i, s.json);
  let sort = o.sort;
  const view = new TopView(interactive);
  const print = (final: boolean) => {
    const summary = session.snapshot();
    sortRows(summary.rows, sort);
    const counters = session.counters();
    if (s.json) out.write(jsonText({ ...summary, rows: summary.rows.slice(0, s.top), final, sort, counters }) + '\n');
    else view.draw(renderTop(summary, counters, { top: s.top, sort, final, containers: !!o.container, conntrack: !!o.conntrack, columns: interactive ? out.columns : undefined, rows: interactive ? out.rows : undefined }));
  };

  // Signals, --duration and a closed pipe end it as any run (a SIGHUP: the terminal went away); also --once and q.
  const stopped = new Promise<string>((resolve) => {
    void ended.then(resolve);
    if (o.once && !s.durationMs) setTimeout(() => resolve('once'), intervalMs).unref();
    if (interactive && process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', (d: Buffer) => {
        const k = d.toString();
        if (k === 'q' || k === '\x03') resolve('quit');
        else if (k === 's') { sort = TOP_SORT_KEYS[(TOP_SORT_KEYS.indexOf(sort) + 1) % TOP_SORT_KEYS.length]; print(false); }
      });
    }
  });
  view.open();
  const timer = o.once ? undefined : setInterval(() => print(false), intervalMs);
  if (interactive) print(false);
  try {
    await stopped;
  } finally {
    if (timer) clearInterval(timer);
    await session.stop();
    view.close();
    if (interactive && process.stdin.isTTY) { process.stdin.setRawMode(false); process.stdin.pause(); }
  }
  print(true);
  const counters = session.counters();
  for (const [tool, c] of Object.entries(counters)) reportCounters(`top/${tool}`, c!, s.json);
  process.stderr.write(sessionCountersLine('top', counters as Record<string, TraceCounters>) + '\n');
  return 0;
}

/** Full-screen redraws on a terminal (alternate screen, cursor hidden); plain appended snapshots otherwise. */
class TopView {
  private opened = false;
  constructor(private readonly fullScreen: boolean) {}
  open(): void {
    if (this.fullScreen) { process.stdout.write('\x1b[?1049h\x1b[?25l'); this.opened = true; }
  }
  draw(lines: string[]): void {
    if (this.opened) process.stdout.write('\x1b[H\x1b[2J' + lines.join('\n'));
    else process.stdout.write(lines.join('\n') + '\n\n');
  }
  close(): void {
    if (this.opened) { process.stdout.write('\x1b[?25h\x1b[?1049l'); this.opened = false; }
  }
}
