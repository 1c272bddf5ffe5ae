/** netbpf top, the renderer: the screen (or snapshot) of one row per destination with its diagnoses. */
import { clockTime, safeText, table } from '../../core/format.js';
import type { TraceCounters } from '../../core/trace.js';
import type { TopRow, TopSortKey, TopSummary } from './aggregator.js';
import type { TopToolName } from './session.js';

const TOOLS_LINE = (tool: string, c: TraceCounters) => `${tool} ${c.lost} lost/${c.recursionMisses} missed`;

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
  // Diagnoses about the host itself (listeners, leaking processes, conntrack), before the rows.
  for (const d of s.host.diagnoses) lines.splice(lines.length - 1, 0, `  host -> ${safeText(d.text)}`);
  if (s.host.unavailable) lines.splice(lines.length - 1, 0, `  host: socket evidence unavailable (${safeText(s.host.unavailable)})`);
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
    for (const d of r.diagnoses) lines.push(`  -> ${safeText(r.key)}: ${safeText(d.text)}`);
  });
  return o.columns ? lines.map((l) => (l.length > o.columns! ? l.slice(0, o.columns! - 1) : l)) : lines;
}
