/** netbpf connect, the renderers: live lines, the documented JSON line, the summary text. */
import { formatEndpoint } from '../../core/address.js';
import { clockTime, safeText, table } from '../../core/format.js';
import { renderHistogram } from '../../core/histogram.js';
import type { ConnectSummary } from './aggregator.js';
import type { ConnectEvent } from './decode.js';

/** Header of the live lines. */
export const CONNECT_HEADER = `${'TIME'.padEnd(8)} ${'PID'.padEnd(7)} ${'COMM'.padEnd(12)} ${'IP'.padEnd(2)} ${'LADDR:LPORT'.padEnd(26)}    ${'RADDR:RPORT'.padEnd(26)} ${'RESULT'.padEnd(11)} ${'MS'.padStart(9)} SYN_RETR ERROR`;

/** One live line: who connected where, the result, how long it took, SYN retransmits, the error. */
export function connectLine(e: ConnectEvent): string {
  const head = `${clockTime(e.time).padEnd(8)} ${String(e.pid || '-').padEnd(7)} ${safeText((e.comm || '-').slice(0, 12)).padEnd(12)} ${String(e.family).padEnd(2)} ${formatEndpoint(e.saddr, e.sport).padEnd(26)} -> ${formatEndpoint(e.daddr, e.dport).padEnd(26)}`;
  if (e.type === 'established') return `${head} ${'ok'.padEnd(11)} ${(e.latencyUs / 1000).toFixed(3).padStart(9)} ${String(e.synRetrans).padStart(8)}`;
  return `${head} ${e.failure.padEnd(11)} ${(e.elapsedUs / 1000).toFixed(3).padStart(9)} ${String(e.synRetrans).padStart(8)} ${e.error || '-'}${e.beforeSyn ? ' (no SYN sent)' : ''}${e.localPorts ? ` (local ports ${e.localPorts.low}-${e.localPorts.high})` : ''}`;
}

/** The documented JSON line of a connect event (docs/json.md). */
export function connectEventJson(e: ConnectEvent): Record<string, unknown> {
  // connId is an in-process join key (a hash), not part of the documented line.
  const { connId: _connId, ...fields } = e;
  return { ...fields, time: new Date(e.time).toISOString() };
}

/** The per-destination summary as text, with latency histograms of the top destinations. */
export function renderConnectSummary(s: ConnectSummary, top: number, final: boolean): string[] {
  const t = s.totals;
  const lines = ['', `${clockTime(s.time)} connects, ${final ? 'whole run' : 'so far'} (${s.elapsedS.toFixed(1)} s): ${t.attempts} attempts, ${t.successes} ok, ${t.failures} failed (refused ${t.byClass.refused}, timeout ${t.byClass.timeout}, unreachable ${t.byClass.unreachable}, aborted ${t.byClass.aborted}, other ${t.byClass.other})`];
  if (!s.byEndpoint.length) lines.push('  (no connects)');
  else {
    const header = ['RADDR:RPORT', 'ATTEMPTS', 'OK', 'REFUSED', 'TIMEOUT', 'UNREACH', 'ABORTED', 'OTHER', 'P50_MS', 'P99_MS', 'SYN_RETR'];
    const rows = s.byEndpoint.slice(0, top).map((r) => [r.key, r.attempts, r.successes, r.byClass.refused, r.byClass.timeout, r.byClass.unreachable, r.byClass.aborted, r.byClass.other, r.latencyUs.p50 / 1000, r.latencyUs.p99 / 1000, r.synRetrans]);
    lines.push(...table(header, rows).map((l) => `  ${l}`));
    for (const r of s.byEndpoint.slice(0, Math.min(3, top))) {
      if (!r.histograms.latencyUs.count) continue;
      lines.push('', `  ${safeText(r.key)}`);
      lines.push(...renderHistogram(r.histograms.latencyUs, 'connect latency (us)'));
    }
  }
  if (s.folded.endpoints) lines.push(`  folded into "other": ${s.folded.endpoints} endpoints`);
  return lines;
}
