/** netbpf retrans, the renderers: tcpretrans-style live lines, the documented JSON line, the summary text. */
import { formatEndpoint } from '../../core/address.js';
import { clockTime, percent, safeText, table } from '../../core/format.js';
import { renderHistogram } from '../../core/histogram.js';
import type { RetransRow, RetransSummary } from './aggregator.js';
import type { RetransEvent } from './decode.js';

/** Header of the live lines. */
export const RETRANS_HEADER = `${'TIME'.padEnd(8)} ${'PID'.padEnd(7)} ${'IP'.padEnd(2)} ${'LADDR:LPORT'.padEnd(26)} T> ${'RADDR:RPORT'.padEnd(26)} ${'STATE'.padEnd(11)} ${'KIND'.padEnd(6)} ${'SEGS'.padStart(4)} ${'RTT(ms)'.padStart(8)} COMM`;

/** One live line (BCC tcpretrans columns plus kind, segments, RTT and owner). */
export function retransLine(e: RetransEvent): string {
  const t = e.kind === 'tlp' ? 'L' : 'R';
  return `${clockTime(e.time).padEnd(8)} ${String(e.pid || '-').padEnd(7)} ${String(e.family).padEnd(2)} ${formatEndpoint(e.saddr, e.sport).padEnd(26)} ${t}> ${formatEndpoint(e.daddr, e.dport).padEnd(26)} ${e.state.padEnd(11)} ${e.kind.padEnd(6)} ${String(e.segs).padStart(4)} ${(e.srttUs / 1000).toFixed(2).padStart(8)} ${safeText(e.comm) || '-'}${e.err ? ` err=${e.err}` : ''}`;
}

/** The documented JSON line for one retransmit (docs/json.md). */
export function retransEventJson(e: RetransEvent): Record<string, unknown> {
  return {
    type: 'retransmit', time: new Date(e.time).toISOString(), family: e.family,
    saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport, state: e.state, kind: e.kind,
    caState: e.caState, segs: e.segs, totalRetrans: e.totalRetrans, segsOut: e.segsOut, retransmits: e.retransmits,
    srttUs: e.srttUs, err: e.err, pid: e.pid, comm: e.comm, netns: e.netns, cgroupId: e.cgroupId,
    ...(e.natFrom ? { natFrom: e.natFrom } : {}),
  };
}

function rowCells(r: RetransRow): Array<string | number> {
  return [r.key, r.events, r.segs, r.rate, r.connections, percent(r.retransRatio), r.kinds.rto, r.kinds.fast, r.kinds.tlp, r.kinds.syn + r.kinds.synack, r.failed];
}

/** The per-destination summary as text: tables by endpoint and address, histograms of the top endpoints. */
export function renderRetransSummary(s: RetransSummary, top: number, final: boolean): string[] {
  const lines: string[] = [];
  const title = final ? `retransmits, whole run (${s.elapsedS.toFixed(1)} s)` : `retransmits, last ${s.intervalS.toFixed(1)} s (run ${s.elapsedS.toFixed(1)} s)`;
  lines.push('', `${clockTime(s.time)} ${title}: ${s.totals.events} events, ${s.totals.segs} segments, ${s.totals.connections} connections`);
  const header = ['RADDR:RPORT', 'EVENTS', 'SEGS', 'SEGS/S', 'CONNS', 'RETRANS%', 'RTO', 'FAST', 'TLP', 'SYN', 'FAILED'];
  if (s.byEndpoint.length === 0) lines.push('  (no retransmits)');
  else {
    lines.push(...table(header, s.byEndpoint.slice(0, top).map(rowCells)).map((l) => `  ${l}`));
    lines.push('', ...table(['RADDR', ...header.slice(1)], s.byAddress.slice(0, top).map(rowCells)).map((l) => `  ${l}`));
    for (const r of s.byEndpoint.slice(0, Math.min(3, top))) {
      lines.push('', `  ${safeText(r.key)}`);
      lines.push(...renderHistogram(r.histograms.retransmits, 'consecutive retransmits'));
      lines.push(...renderHistogram(r.histograms.srttUs, 'srtt (us)'));
    }
  }
  if (s.folded.endpoints || s.folded.addresses) lines.push(`  folded into "other": ${s.folded.endpoints} endpoints, ${s.folded.addresses} addresses`);
  return lines;
}
