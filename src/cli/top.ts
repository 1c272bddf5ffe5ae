/**
 * `netbpf top`: one row per destination, correlated across retrans, drops, connect (and life, conntrack),
 * refreshed every interval, with a diagnosis line per unhealthy destination. Full screen on a terminal
 * (q quits, s cycles the sort key); snapshots on a pipe, with --snapshots, or once with --once.
 */
import { Command, Option } from 'commander';
import type { TraceCounters } from '../core/trace.js';
import { parseGroupBy, sortRows, top, TOP_SORT_KEYS, type TopRow, type TopSession, type TopSortKey, type TopSummary, type TopToolName } from '../tools/top.js';
import { describeStart } from './run.js';
import { addCgroupRootOption, containerResolver, type ContainerCliOptions } from './containers.js';
import { addCommonOptions, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { clockTime, jsonText, safeText, table } from '../core/format.js';

interface TopCliOptions extends CommonCliOptions, ContainerCliOptions {
  by: string;
  sort: TopSortKey;
  conntrack?: boolean;
  life: boolean;
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
    .option('-1, --once', 'print one snapshot after the interval (or --duration) and exit')
    .option('--snapshots', 'print a snapshot every interval instead of the full-screen view (default when stdout is not a terminal)')
    .option('-w, --container', 'show the containers talking to each destination (cgroup id -> container id)');
  addCgroupRootOption(cmd);
  addCommonOptions(cmd);
  cmd.action(async (o: TopCliOptions) => {
    process.exitCode = await runTop(o);
  });
  return cmd;
}

const TOOLS_LINE = (tool: string, c: TraceCounters) => `${tool} ${c.lost} lost/${c.recursionMisses} missed`;

async function runTop(o: TopCliOptions): Promise<number> {
  const s = runSettings(o);
  const by = parseGroupBy(o.by);
  const intervalMs = s.intervalMs ?? 2000;
  const containers = containerResolver('top', o);
  const session = top({
    ...filterOptions(o), by, life: o.life, conntrack: !!o.conntrack, maxDestinations: s.maxDestinations,
    ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, containerOf: containers ? (id) => containers.containerOf(id) : undefined,
  });
  const out = process.stdout;
  const interactive = !!out.isTTY && !o.once && !o.snapshots && !s.json;
  const info = await session.start();
  for (const [tool, i] of Object.entries(info)) {
    if ('error' in i) process.stderr.write(`netbpf top: ${tool} not running: ${i.error}\n`);
    else for (const line of describeStart(`top/${tool}`, i)) process.stderr.write(line + '\n');
    if (s.json) out.write(jsonText({ type: 'start', tool: `top/${tool}`, time: Date.now(), ...('error' in i ? { error: i.error } : { startupMs: i.startupMs, hooks: i.hooks }) }) + '\n');
  }
  let sort = o.sort;
  const view = new TopView(interactive);
  const print = (final: boolean) => {
    const summary = session.snapshot();
    sortRows(summary.rows, sort);
    const counters = session.counters();
    if (s.json) out.write(jsonText({ ...summary, rows: summary.rows.slice(0, s.top), final, sort, counters }) + '\n');
    else view.draw(renderTop(summary, counters, { top: s.top, sort, final, containers: !!o.container, conntrack: !!o.conntrack, columns: interactive ? out.columns : undefined, rows: interactive ? out.rows : undefined }));
  };

  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    // The terminal went away (tmux kill-session, closed ssh): detach cleanly too.
    process.once('SIGHUP', () => resolve('SIGHUP'));
    out.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') resolve('EPIPE'); });
    if (s.durationMs) setTimeout(() => resolve('duration'), s.durationMs).unref();
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
  for (const [tool, c] of Object.entries(counters)) {
    if (s.json) out.write(jsonText({ type: 'counters', tool: `top/${tool}`, time: Date.now(), ...c }) + '\n');
  }
  process.stderr.write(`netbpf top: ${Object.entries(counters).map(([t, c]) => `${t} ${c.events} events, ${c.lost} lost, ${c.recursionMisses} missed by recursion`).join('; ')}\n`);
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

const SPARKS = ' ▁▂▃▄▅▆▇█';

/** A sparkline: one character per interval, scaled to the row's own largest interval. */
export function sparkline(values: number[], width = 12): string {
  const v = values.slice(-width);
  const max = Math.max(0, ...v);
  if (max === 0) return '·'.repeat(v.length);
  return v.map((x) => (x <= 0 ? '·' : SPARKS[Math.max(1, Math.round((x / max) * 8))])).join('');
}

const ms = (x: number) => (x === 0 ? '-' : x < 10 ? x.toFixed(2) : x.toFixed(0));
const ratioText = (r: TopRow) => (r.retrans.segsOut > 0 ? `${(r.retrans.ratio * 100).toFixed(r.retrans.ratio < 0.1 ? 1 : 0)}%` : '-');

export interface RenderTopOptions {
  top: number;
  sort: TopSortKey;
  final?: boolean;
  containers?: boolean;
  conntrack?: boolean;
  /** Terminal size: lines are cut to columns and the table to rows. */
  columns?: number;
  rows?: number;
}

/** The top screen: header, one row per destination, a diagnosis line under each unhealthy one. */
export function renderTop(s: TopSummary, counters: Partial<Record<TopToolName, TraceCounters>>, o: RenderTopOptions): string[] {
  const t = s.totals;
  const lost = Object.entries(counters).map(([tool, c]) => TOOLS_LINE(tool, c!)).join(', ');
  const lines = [
    `netbpf top ${clockTime(s.time)}  by ${s.by}, sorted by ${o.sort}${o.final ? ' (final)' : ''}  ${t.destinations} destinations, ${t.unhealthy} unhealthy  connects ${t.connects} (${t.failures} failed)  retransmitted ${t.retransSegs} segs  drops ${t.drops}`,
    `events: ${lost}${s.folded ? `  folded into "other": ${s.folded}` : ''}`,
    '',
  ];
  const header = ['DESTINATION', 'HEALTH', 'CONNS', 'CONNECTS', 'FAILED', 'REFUSED', 'TIMEOUT', 'UNREACH', 'P50_MS', 'P99_MS', 'RETR_SEGS', 'RETR%', 'DROPS', 'TOP_DROP'];
  if (o.conntrack) header.push('CT');
  if (o.containers) header.push('CONTAINERS');
  header.push('TREND');
  const shown = s.rows.slice(0, o.rows ? Math.max(1, Math.min(o.top, Math.floor((o.rows - 5) / 2))) : o.top);
  if (!shown.length) {
    lines.push('  (nothing seen yet)');
    return lines;
  }
  const cells = shown.map((r) => {
    const c: Array<string | number> = [r.key, r.health, r.connections, r.connects.attempts, r.connects.failures, r.connects.byClass.refused, r.connects.byClass.timeout, r.connects.byClass.unreachable,
      ms(r.connectMs.p50), ms(r.connectMs.p99), r.retrans.segs, ratioText(r), r.drops.total, r.drops.topReason ?? '-'];
    if (o.conntrack) c.push(r.conntrackEntries ?? '-');
    if (o.containers) c.push(r.containers.map((id) => id.slice(0, 12)).join(',') || '-');
    c.push(sparkline(r.history));
    return c;
  });
  const rendered = table(header, cells);
  lines.push(rendered[0]);
  shown.forEach((r, i) => {
    lines.push(rendered[i + 1]);
    for (const d of r.diagnoses) lines.push(`  -> ${safeText(r.key)}: ${d.text}`);
  });
  return o.columns ? lines.map((l) => (l.length > o.columns! ? l.slice(0, o.columns! - 1) : l)) : lines;
}

export type { TopSession };
