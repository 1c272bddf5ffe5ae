/** netbpf life, the renderers: tcplife-style lines (text or CSV), the documented JSON line, the summary text. */
import { CellCache, clockTime, safeText, table } from '../../core/format.js';
import { renderHistogram } from '../../core/histogram.js';
import type { LifeSummary } from './aggregator.js';
import type { LifeClosedEvent, LifeEvent } from './decode.js';

/** Which optional columns the text lines have (-T, -t, -w). */
export interface LifeFormat {
  time: boolean;
  timestamp: boolean;
  wide: boolean;
}

const ADDR = (wide: boolean) => (wide ? 39 : 15);

/** tcplife's header: PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS, then netbpf's columns. */
export function lifeHeader(f: LifeFormat): string {
  const w = ADDR(f.wide);
  let h = '';
  if (f.time) h += `${'TIME'.padEnd(8)} `;
  if (f.timestamp) h += `${'TIME(s)'.padEnd(9)} `;
  h += `${'PID'.padEnd(7)} ${'COMM'.padEnd(10)} ${'LADDR'.padEnd(w)} ${'LPORT'.padEnd(5)} ${'RADDR'.padEnd(w)} ${'RPORT'.padEnd(5)} ${'TX_KB'.padStart(5)} ${'RX_KB'.padStart(5)} ${'MS'.padStart(9)}`;
  h += ` ${'DIR'.padEnd(7)} ${'RETR'.padStart(4)} ${'RTT_MS'.padStart(7)} CLOSE`;
  if (f.wide) h += `${' '.repeat(10)} ${'NETNS'.padEnd(10)} CGROUP`;
  return h;
}

/** The cells of lifeLine that repeat from line to line (names, addresses, ports, small numbers), made once each. */
const cells = {
  pid: new CellCache<number>((pid) => String(pid || '-').padEnd(7)),
  // Cut the name before escaping it: a cut escape sequence would read as other characters.
  comm: new CellCache<string>((comm) => safeText((comm || '-').slice(0, 10)).padEnd(10)),
  commWide: new CellCache<string>((comm) => safeText(comm || '-').padEnd(10)),
  addr: new CellCache<string>((a) => a.padEnd(15)),
  addrWide: new CellCache<string>((a) => a.padEnd(39)),
  port: new CellCache<number>((p) => String(p).padEnd(5), 65536),
  kb: new CellCache<number>((kb) => String(kb).padStart(5)),
  retrans: new CellCache<number>((n) => String(n).padStart(4)),
  rttMs: new CellCache<number>((us) => (us / 1000).toFixed(2).padStart(7)),
  direction: new CellCache<string>((d) => d.padEnd(7)),
};

export function lifeLine(e: LifeClosedEvent, f: LifeFormat, firstMs: number): string {
  let l = '';
  if (f.time) l += `${clockTime(e.time).padEnd(8)} `;
  if (f.timestamp) l += `${((e.time - firstMs) / 1000).toFixed(6).padEnd(9)} `;
  const addr = f.wide ? cells.addrWide : cells.addr;
  l += cells.pid.get(e.pid) + ' ' + (f.wide ? cells.commWide : cells.comm).get(e.comm) + ' ' + addr.get(e.saddr) + ' ' + cells.port.get(e.sport) + ' ' +
    addr.get(e.daddr) + ' ' + cells.port.get(e.dport) + ' ' + cells.kb.get(Math.floor(e.txBytes / 1024)) + ' ' + cells.kb.get(Math.floor(e.rxBytes / 1024)) + ' ' +
    e.durationMs.toFixed(2).padStart(9);
  const reason = e.reason === 'failed' && e.error ? `failed:${e.error}` : e.reason;
  l += ' ' + cells.direction.get(e.direction) + ' ' + cells.retrans.get(e.totalRetrans) + ' ' + cells.rttMs.get(e.srttUs) + ' ' + (f.wide ? reason.padEnd(15) : reason);
  if (f.wide) l += ` ${String(e.netns).padEnd(10)} ${e.cgroupId}`;
  return l;
}

const CSV_FIELDS = ['time', 'pid', 'comm', 'family', 'saddr', 'sport', 'daddr', 'dport', 'direction', 'txBytes', 'rxBytes', 'durationMs', 'totalRetrans', 'segsOut', 'segsIn', 'srttUs', 'established', 'closedFrom', 'reason', 'error', 'ownerSource', 'netns', 'cgroupId'] as const;

export function csvHeader(): string {
  return CSV_FIELDS.join(',');
}

/** One CSV line; text fields quoted (RFC 4180) and stripped of control characters. */
export function csvLine(e: LifeClosedEvent): string {
  return CSV_FIELDS.map((k) => {
    const v = k === 'time' ? new Date(e.time).toISOString() : (e as unknown as Record<string, unknown>)[k];
    if (typeof v === 'string') return /[",\n\r]|^\s|\s$/.test(v) || k === 'comm' ? `"${safeText(v).replace(/"/g, '""')}"` : v;
    if (typeof v === 'number' && !Number.isInteger(v)) return v.toFixed(3);
    return String(v);
  }).join(',');
}

/** The documented JSON line for a life event. */
export function lifeEventJson(e: LifeEvent): Record<string, unknown> {
  // connId is an in-process join key (a hash), not part of the documented line.
  const { connId: _connId, ...fields } = e;
  return { ...fields, time: new Date(e.time).toISOString() };
}

/** The per-destination summary as text, with lifetime and retransmit histograms of the top destinations. */
export function renderLifeSummary(s: LifeSummary, top: number, final: boolean): string[] {
  const t = s.totals;
  const lines = ['', `${clockTime(s.time)} connections, ${final ? 'whole run' : 'so far'} (${s.elapsedS.toFixed(1)} s): ${t.connections} closed, ${t.established} established, ${t.failed} failed, ${t.open} still open, TX ${t.txBytes} B, RX ${t.rxBytes} B`];
  if (!s.byDestination.length) lines.push('  (no connections)');
  else {
    const header = ['DESTINATION', 'DIR', 'CLOSED', 'ESTAB', 'OPEN', 'FAILED', 'TX_KB', 'RX_KB', 'RETR/CONN', 'FIN', 'RST_IN', 'RST_OUT', 'TIMEOUT'];
    const rows = s.byDestination.slice(0, top).map((r) => [r.key, r.direction, r.connections, r.established, r.open, r.failed, Math.floor(r.txBytes / 1024), Math.floor(r.rxBytes / 1024), r.retransPerConnection, r.reasons.fin, r.reasons['reset-received'], r.reasons['reset-sent'], r.reasons.timeout]);
    lines.push(...table(header, rows).map((l) => `  ${l}`));
    for (const r of s.byDestination.slice(0, Math.min(3, top))) {
      lines.push('', `  ${safeText(r.key)}`);
      lines.push(...renderHistogram(r.histograms.durationMs, 'lifetime (ms)'));
      lines.push(...renderHistogram(r.histograms.retransPerConnection, 'retransmits per connection'));
    }
  }
  if (s.folded.destinations) lines.push(`  folded into "other": ${s.folded.destinations} destinations`);
  return lines;
}
