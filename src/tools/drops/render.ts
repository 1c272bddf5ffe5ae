/** netbpf drops, the renderers: live lines, the documented JSON line, the summary text. */
import { formatEndpoint } from '../../core/address.js';
import { clockTime, percent, safeText, table } from '../../core/format.js';
import { renderHistogram } from '../../core/histogram.js';
import type { DropRow, DropsSummary } from './aggregator.js';
import type { DropEvent } from './decode.js';

const endpoint = (addr: string | null, port: number | null) => (addr === null ? 'unknown' : port === null ? addr : formatEndpoint(addr, port));

/** Header of the live lines. */
export const DROPS_HEADER = `${'TIME'.padEnd(8)} DIR ${'PROTO'.padEnd(8)} ${'SADDR:SPORT'.padEnd(26)}    ${'DADDR:DPORT'.padEnd(26)} ${'FLAGS/STATE'.padEnd(20)} ${'REASON'.padEnd(20)} ${'LEN'.padStart(6)} LOCATION`;

/** One live line (and the kernel stack under it, with --stack). */
export function dropLine(e: DropEvent, withStack: boolean): string {
  const proto = `${e.family ? `${e.family}/` : ''}${e.proto ?? 'unknown'}`;
  // DIR: "in" for received packets (remote = source), "out" for packets built here (remote = destination).
  const dir = e.direction === 'received' ? 'in ' : 'out';
  const flagsState = [e.tcpFlags, e.state].filter(Boolean).join(' ') || '-';
  const reason = e.category === 'purge' ? `${e.reason}(purge)` : e.reason;
  let line = `${clockTime(e.time).padEnd(8)} ${dir} ${proto.padEnd(8)} ${endpoint(e.saddr, e.sport).padEnd(26)} -> ${endpoint(e.daddr, e.dport).padEnd(26)} ${flagsState.padEnd(20)} ${reason.padEnd(20)} ${String(e.len).padStart(6)} ${e.location.replace(/\+0x[0-9a-f]+$/, '') || '-'}`;
  if (withStack && e.stack.length) line += '\n' + e.stack.map((f) => `        ${safeText(f)}`).join('\n');
  return line;
}

/** The documented JSON line for one drop (docs/drops.md). */
export function dropJson(e: DropEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: 'drop', time: new Date(e.time).toISOString(), family: e.family, proto: e.proto, protoNum: e.protoNum, l3Proto: e.l3Proto,
    saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport, direction: e.direction,
    remoteAddr: e.remoteAddr, remotePort: e.remotePort, addressSource: e.addressSource,
    reason: e.reason, reasonCode: e.reasonCode, category: e.category, len: e.len, tcpFlags: e.tcpFlags, state: e.state,
    location: e.location, netns: e.netns, ifindex: e.ifindex,
  };
  if (e.stack.length) out.stack = e.stack;
  return out;
}

function rowCells(r: DropRow, withMax: boolean): Array<string | number> {
  const cells: Array<string | number> = [r.key === 'other' ? 'other' : endpoint(r.addr, r.port), r.reason || '-', r.count];
  if (withMax) cells.push(r.countMax ?? r.count);
  cells.push(r.rate, percent(r.share), r.bytes);
  return cells;
}

/** A table of rows; with a MAX column (upper bound of each row's drops) when its rows are top talkers. */
function rowTable(title: string, rows: DropRow[]): string[] {
  const withMax = rows.some((r) => r.countMax !== undefined);
  const header = [title, 'REASON', 'COUNT', ...(withMax ? ['MAX'] : []), 'PER_S', 'SHARE', 'BYTES'];
  return table(header, rows.map((r) => rowCells(r, withMax))).map((l) => `  ${l}`);
}

/** The summary as text: drops by remote endpoint, remote address and destination x reason, purges apart, folds. */
export function renderDropsSummary(s: DropsSummary, top: number, final: boolean): string[] {
  const lines: string[] = [];
  const title = final ? `drops, whole run (${s.elapsedS.toFixed(1)} s)` : `drops, last ${s.intervalS.toFixed(1)} s (run ${s.elapsedS.toFixed(1)} s)`;
  lines.push('', `${clockTime(s.time)} ${title}: ${s.totals.drops} dropped packets, ${s.totals.purges} socket-close purges`);
  const drops = (rows: DropRow[]) => rows.filter((r) => r.category === 'drop');
  const byEndpoint = drops(s.byEndpoint);
  if (byEndpoint.length === 0) lines.push('  (no drops)');
  else {
    lines.push(...rowTable('REMOTE', byEndpoint.slice(0, top)));
    lines.push('', ...rowTable('REMOTE ADDRESS', drops(s.byAddress).slice(0, top)));
    if ([...s.byEndpoint, ...s.byAddress].some((r) => r.countMax !== undefined)) {
      lines.push('  (remote rows: top talkers counted in the kernel; COUNT is exact since each was first seen, MAX bounds its total)');
    }
    lines.push('', ...rowTable('DESTINATION', drops(s.byDestination).slice(0, top)));
    // Histograms for the top destinations: remote endpoints of received drops are often ephemeral ports.
    for (const r of drops(s.byDestination).slice(0, Math.min(3, top))) {
      lines.push('', `  ${safeText(endpoint(r.addr, r.port))} ${r.reason}`);
      lines.push(...renderHistogram(r.histograms.len, 'packet bytes'));
    }
  }
  const purges = s.byReason.filter((r) => r.category === 'purge');
  if (purges.length) {
    lines.push('', '  socket-close purges (data freed with its socket, not lost on the way):');
    lines.push(...table(['REASON', 'COUNT'], purges.map((r) => [r.reason, r.count])).map((l) => `    ${l}`));
  }
  const q = s.listen;
  if (q && (q.cookiesSent || q.synQueueDrops || q.acceptQueueOverflows || q.listenDrops || q.cookiesFailed)) {
    // Not drops the tracepoint sees: a SYN past a full SYN queue is answered with a cookie or freed without a reason.
    lines.push('', `  listen queues (kernel counters of this namespace): ${q.cookiesSent} SYNs answered with cookies (SYN queue full), ` +
      `${q.synQueueDrops} SYNs discarded (SYN queue full, cookies off), ${q.acceptQueueOverflows} accept-queue overflows, ` +
      `${q.listenDrops} listener drops in all, ${q.cookiesFailed} bad cookies; SYNs past a full queue are not traced as drops`);
  }
  const f = s.folded;
  if (f.endpoints || f.addresses || f.destinations || f.kernel) {
    lines.push(`  folded into "other": ${f.endpoints} endpoints, ${f.addresses} addresses, ${f.destinations} destinations` +
      (f.kernel ? `; ${f.kernel} drops folded in the kernel (its key map was full)` : ''));
  }
  return lines;
}
