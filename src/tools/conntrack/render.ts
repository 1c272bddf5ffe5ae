/** netbpf conntrack, the renderers: live lines, the documented JSON line, the summary text. */
import { formatEndpoint } from '../../core/address.js';
import { clockTime, safeText, table } from '../../core/format.js';
import { renderHistogram } from '../../core/histogram.js';
import type { ConntrackSummary } from './aggregator.js';
import type { ConntrackEvent } from './decode.js';
import type { NetlinkCounts } from './stats.js';

/** Header of the live lines. */
export const CONNTRACK_HEADER = `${'TIME'.padEnd(8)} ${'EVENT'.padEnd(7)} ${'PROTO'.padEnd(5)} ${'ORIG SRC'.padEnd(24)} ${'ORIG DST'.padEnd(24)} -> ${'REPLY SRC (real)'.padEnd(24)} ${'STATE'.padEnd(12)} ${'LIFE(ms)'.padStart(9)} PKTS`;

/** One live line: both tuples (DNAT/SNAT visible), state, lifetime, counters. */
export function conntrackLine(e: ConntrackEvent): string {
  const life = e.lifetimeMs === null ? '-' : e.lifetimeMs.toFixed(0);
  const pkts = e.packets ? `${e.packets[0]}/${e.packets[1]}` : '-';
  const nat = (e.dnat ? ' DNAT' : '') + (e.snat ? ` SNAT(${formatEndpoint(e.reply.dst, e.reply.dport)})` : '');
  return `${clockTime(e.time).padEnd(8)} ${e.kind.padEnd(7)} ${e.protocolName.padEnd(5)} ${formatEndpoint(e.orig.src, e.orig.sport).padEnd(24)} ${formatEndpoint(e.orig.dst, e.orig.dport).padEnd(24)} -> ${formatEndpoint(e.reply.src, e.reply.sport).padEnd(24)} ${(e.tcpState ?? '-').padEnd(12)} ${life.padStart(9)} ${pkts}${nat}${e.zone ? ` zone=${e.zone}` : ''}${e.mark ? ` mark=${e.mark}` : ''} netns=${e.netns}`;
}

/** The documented JSON line for one conntrack event (docs/conntrack.md). */
export function conntrackEventJson(e: ConntrackEvent): Record<string, unknown> {
  return { ...e, time: new Date(e.time).toISOString() };
}

/** The per-destination summary as text, with table pressure and netlink delivery. */
export function renderConntrackSummary(s: ConntrackSummary, top: number, final: boolean, netlink: NetlinkCounts | null = null): string[] {
  const lines: string[] = [];
  const title = final ? `conntrack, whole run (${s.elapsedS.toFixed(1)} s)` : `conntrack, last ${s.intervalS.toFixed(1)} s (run ${s.elapsedS.toFixed(1)} s)`;
  lines.push('', `${clockTime(s.time)} ${title}: ${s.totals.created} created (${s.totals.dnat} DNAT, ${s.totals.snat} SNAT), ${s.totals.destroyed} destroyed`);
  if (s.byDestination.length === 0) lines.push('  (no entries)');
  else {
    const header = ['DESTINATION (real)', 'PROTO', 'NEW', 'DESTROYED', 'NEW/S', 'DEL/S', 'OPEN', 'VIA', 'STATES AT DESTROY'];
    lines.push(...table(header, s.byDestination.slice(0, top).map((r) => [
      safeText(r.key), r.protocol, r.created, r.destroyed, r.createdRate.toFixed(1), r.destroyedRate.toFixed(1), r.open,
      r.via.join(',') || '-', Object.entries(r.states).map(([k, v]) => `${k}:${v}`).join(' ') || '-',
    ])).map((l) => `  ${l}`));
    for (const r of s.byDestination.slice(0, Math.min(3, top))) {
      if (r.lifetimeMs.count === 0) continue;
      lines.push('', `  ${safeText(r.key)}`, ...renderHistogram(r.lifetimeMs, 'entry lifetime (ms)'));
    }
  }
  if (s.folded) lines.push(`  folded into "other": ${s.folded} destinations`);
  for (const p of s.pressure) {
    const where = s.pressure.length > 1 ? ` (netns ${p.netns}${p.name ? ` ${safeText(p.name)}` : ''})` : '';
    lines.push(`  table${where}: ${p.count}/${p.max} entries; since start: ${p.drop} packets dropped (table full), ${p.earlyDrop} early drops, ${p.insertFailed} insert failures, ${p.invalid} invalid`);
  }
  if (netlink) {
    lines.push(`  ctnetlink: received ${netlink.received.new} new / ${netlink.received.destroy} destroy; lost ${netlink.lost.new} new / ${netlink.lost.destroy} destroy (kernel socket drop counts)` +
      `${netlink.retried ? `; ${netlink.retried} destroy deliveries retried by the kernel` : ''}${netlink.duplicates ? `; ${netlink.duplicates} duplicates passed over` : ''}${netlink.recoveredAtStop ? `; ${netlink.recoveredAtStop} destroys taken from the dying list at stop` : ''}`);
  }
  return lines;
}
