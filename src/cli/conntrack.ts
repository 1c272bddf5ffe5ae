/** `netbpf conntrack`: conntrack entries created/destroyed live (both tuples), per-destination summary, table pressure. */
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { formatEndpoint } from '../core/address.js';
import { renderHistogram } from '../core/histogram.js';
import { conntrack, ConntrackAggregator, conntrackSysctls, type ConntrackEvent, type ConntrackSummary } from '../index.js';
import { addCommonOptions, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { runTool } from './run.js';
import { clockTime, safeText, table, jsonText } from '../core/format.js';

interface ConntrackCliOptions extends CommonCliOptions {
  mechanism: 'auto' | 'bpf' | 'ctnetlink';
  enableAccounting?: boolean;
}

export function conntrackCommand(): Command {
  const cmd = new Command('conntrack')
    .description('trace conntrack entries created and destroyed (original and reply tuples: NAT visible), lifetimes, table pressure')
    .addOption(new Option('--mechanism <m>', 'how to see entries').choices(['auto', 'bpf', 'ctnetlink']).default('auto'))
    .option('--enable-accounting', 'set nf_conntrack_acct=1 and nf_conntrack_timestamp=1 in this network namespace (counters and lifetimes of new entries)');
  addCommonOptions(cmd);
  cmd.action(async (o: ConntrackCliOptions) => {
    process.exitCode = await runConntrack(o);
  });
  return cmd;
}

async function runConntrack(o: ConntrackCliOptions): Promise<number> {
  const s = runSettings(o);
  const filters = filterOptions(o);
  if (o.enableAccounting) {
    for (const n of ['nf_conntrack_acct', 'nf_conntrack_timestamp']) writeFileSync(`/proc/sys/net/netfilter/${n}`, '1\n');
  }
  const trace = conntrack({ ...filters, mechanism: o.mechanism, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs });
  const agg = new ConntrackAggregator({ maxDestinations: s.maxDestinations });
  return runTool({
    tool: 'conntrack',
    trace,
    summary: { addAll: (events) => agg.addAll(events), snapshot: () => agg.snapshot(trace.pressure()) },
    live: { header: LIVE_HEADER, lines: (events) => events.map(liveLine) },
    eventJson,
    summaryText: renderSummary,
    summaryJsonExtras: () => ({ netlinkOverruns: trace.netlinkOverruns() }),
    afterStart: async () => {
      const sys = conntrackSysctls();
      const p = trace.pressure();
      const notes: string[] = [];
      if (sys.acct === false) notes.push('nf_conntrack_acct=0: no packet/byte counters');
      if (sys.timestamp === false) notes.push('nf_conntrack_timestamp=0: lifetimes only for entries created while tracing');
      if (!p) notes.push('conntrack statistics unreadable (no /proc/net/stat/nf_conntrack)');
      else notes.push(`table ${p.count}/${p.max} entries`);
      process.stderr.write(`netbpf conntrack: ${notes.join('; ')}\n`);
      if (s.json) process.stdout.write(jsonText({ type: 'pressure', time: Date.now(), ...p, sysctls: sys }) + '\n');
    },
  }, s);
}

const LIVE_HEADER = `${'TIME'.padEnd(8)} ${'EVENT'.padEnd(7)} ${'PROTO'.padEnd(5)} ${'ORIG SRC'.padEnd(24)} ${'ORIG DST'.padEnd(24)} -> ${'REPLY SRC (real)'.padEnd(24)} ${'STATE'.padEnd(12)} ${'LIFE(ms)'.padStart(9)} PKTS`;

function liveLine(e: ConntrackEvent): string {
  const life = e.lifetimeMs === null ? '-' : e.lifetimeMs.toFixed(0);
  const pkts = e.packets ? `${e.packets[0]}/${e.packets[1]}` : '-';
  const nat = (e.dnat ? ' DNAT' : '') + (e.snat ? ` SNAT(${formatEndpoint(e.reply.dst, e.reply.dport)})` : '');
  return `${clockTime(e.time).padEnd(8)} ${e.kind.padEnd(7)} ${e.protocolName.padEnd(5)} ${formatEndpoint(e.orig.src, e.orig.sport).padEnd(24)} ${formatEndpoint(e.orig.dst, e.orig.dport).padEnd(24)} -> ${formatEndpoint(e.reply.src, e.reply.sport).padEnd(24)} ${(e.tcpState ?? '-').padEnd(12)} ${life.padStart(9)} ${pkts}${nat}${e.zone ? ` zone=${e.zone}` : ''}${e.mark ? ` mark=${e.mark}` : ''}`;
}

/** The documented JSON line for one conntrack event (docs/conntrack.md). */
export function eventJson(e: ConntrackEvent): Record<string, unknown> {
  return { ...e, time: new Date(e.time).toISOString() };
}

export function renderSummary(s: ConntrackSummary, top: number, final: boolean): string[] {
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
  const p = s.pressure;
  if (p) lines.push(`  table: ${p.count}/${p.max} entries; since start: ${p.drop} packets dropped (table full), ${p.earlyDrop} early drops, ${p.insertFailed} insert failures, ${p.invalid} invalid`);
  return lines;
}
