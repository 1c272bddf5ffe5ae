/** `netbpf connect`: live connect outcomes (latency, or why it failed) and a per-destination summary. */
import { Command, Option } from 'commander';
import { formatEndpoint } from '../core/address.js';
import { renderHistogram } from '../core/histogram.js';
import type { TraceCounters } from '../core/trace.js';
import { connect, ConnectAggregator, type ConnectEvent, type ConnectSummary } from '../index.js';
import { addCommonOptions, filterOptions, positiveNumber, runSettings, runTrace, type CommonCliOptions, existingPid } from './common.js';
import { clockTime, safeText, table, jsonText } from './format.js';

interface ConnectCliOptions extends CommonCliOptions {
  pid?: string;
  failedOnly?: boolean;
  hook: 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint';
}

export function connectCommand(): Command {
  const cmd = new Command('connect')
    .description('trace TCP connects: latency per destination, and each failure classified (refused, timeout, unreachable)')
    .option('-p, --pid <pid>', 'only connects by this process (filtered in the kernel)')
    .option('-F, --failed-only', 'live lines for failed connects only')
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint']).default('auto'));
  addCommonOptions(cmd);
  cmd.action(async (o: ConnectCliOptions) => {
    process.exitCode = await runConnect(o);
  });
  return cmd;
}

async function runConnect(o: ConnectCliOptions): Promise<number> {
  const s = runSettings(o);
  const filters = filterOptions(o);
  const pid = existingPid(o.pid);
  const trace = connect({ ...filters, pid, hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs });
  const agg = new ConnectAggregator({ maxDestinations: s.maxDestinations });
  let header = false;
  const live = !s.summary || s.json;
  return runTrace('connect', s, {
    trace,
    onEvents(events) {
      if (s.summary) agg.addAll(events);
      if (!live) return;
      const shown = o.failedOnly ? events.filter((e) => e.type === 'failed') : events;
      if (!shown.length) return;
      if (s.json) {
        process.stdout.write(shown.map((e) => jsonText({ ...e, time: new Date(e.time).toISOString() })).join('\n') + '\n');
        return;
      }
      if (!header) { process.stdout.write(CONNECT_HEADER + '\n'); header = true; }
      process.stdout.write(shown.map(connectLine).join('\n') + '\n');
    },
    printSummary(final, counters) {
      const summary = agg.snapshot();
      if (s.json) process.stdout.write(jsonText({ ...summary, final, lost: counters.lost, recursionMisses: counters.recursionMisses }) + '\n');
      else process.stdout.write(renderConnectSummary(summary, counters, s.top, final).join('\n') + '\n');
    },
  });
}

export const CONNECT_HEADER = `${'TIME'.padEnd(8)} ${'PID'.padEnd(7)} ${'COMM'.padEnd(12)} ${'IP'.padEnd(2)} ${'LADDR:LPORT'.padEnd(26)}    ${'RADDR:RPORT'.padEnd(26)} ${'RESULT'.padEnd(11)} ${'MS'.padStart(9)} SYN_RETR ERROR`;

export function connectLine(e: ConnectEvent): string {
  const head = `${clockTime(e.time).padEnd(8)} ${String(e.pid || '-').padEnd(7)} ${safeText((e.comm || '-').slice(0, 12)).padEnd(12)} ${String(e.family).padEnd(2)} ${formatEndpoint(e.saddr, e.sport).padEnd(26)} -> ${formatEndpoint(e.daddr, e.dport).padEnd(26)}`;
  if (e.type === 'established') return `${head} ${'ok'.padEnd(11)} ${(e.latencyUs / 1000).toFixed(3).padStart(9)} ${String(e.synRetrans).padStart(8)}`;
  return `${head} ${e.failure.padEnd(11)} ${(e.elapsedUs / 1000).toFixed(3).padStart(9)} ${String(e.synRetrans).padStart(8)} ${e.error || '-'}${e.beforeSyn ? ' (no SYN sent)' : ''}`;
}

export function renderConnectSummary(s: ConnectSummary, c: TraceCounters, top: number, final: boolean): string[] {
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
  lines.push(`  lost: ${c.lost} events (ring buffer full), ${c.recursionMisses} recursion misses`);
  return lines;
}
