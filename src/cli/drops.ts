/** `netbpf drops`: dropped packets with the kernel's drop reason, live or per destination, over the public API. */
import { Command, Option } from 'commander';
import { formatEndpoint } from '../core/address.js';
import { renderHistogram } from '../core/histogram.js';
import type { TraceCounters } from '../core/trace.js';
import { usageError } from '../core/errors.js';
import { drops, dropsSummary, DropsAggregator, dropReasonsNote, type DropEvent, type DropRow, type DropsSummary } from '../index.js';
import { addCommonOptions, filterOptions, runSettings, runTrace, type CommonCliOptions, type RunSettings } from './common.js';
import { clockTime, percent, safeText, table, jsonText } from './format.js';

interface DropsCliOptions extends CommonCliOptions {
  hook: 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint' | 'tcp_drop';
  all?: boolean;
  reason?: string[];
  stack?: boolean;
  aggregate: 'auto' | 'kernel' | 'events';
}

const collect = (value: string, prev: string[] = []) => [...prev, value];

export function dropsCommand(): Command {
  const cmd = new Command('drops')
    .description('trace dropped packets with the kernel\'s drop reason (TCP by default), live or per destination x reason')
    .option('-a, --all', 'every protocol, not only TCP')
    .option('-r, --reason <name>', 'only this drop reason, e.g. NETFILTER_DROP (repeatable; names from this kernel)', collect)
    .option('--stack', 'capture and print the kernel stack of each drop')
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs), tcp_drop (fentry or kprobe: kernels without drop reasons)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint', 'tcp_drop']).default('auto'))
    .addOption(new Option('--aggregate <where>', 'where summaries are counted: kernel (a map, no per-drop events; the default for text summaries), events (every drop to user space; with --json also prints each drop)').choices(['auto', 'kernel', 'events']).default('auto'));
  addCommonOptions(cmd);
  cmd.action(async (o: DropsCliOptions) => {
    process.exitCode = await runDrops(o);
  });
  return cmd;
}

/** Whether this run counts its summaries in the kernel: only summaries wanted, and nothing that needs events. */
export function aggregateInKernel(o: { aggregate: string; stack?: boolean; json?: boolean }, summary: boolean): boolean {
  if (o.aggregate === 'events') return false;
  if (o.aggregate === 'kernel') {
    if (!summary) throw usageError('--aggregate kernel prints summaries only: add --summary or --interval');
    if (o.stack) throw usageError('--aggregate kernel has no per-drop events: --stack needs --aggregate events');
    return true;
  }
  // auto: text summaries (no live lines); --json --summary keeps its drop lines unless --aggregate kernel.
  return summary && !o.json && !o.stack;
}

async function runDrops(o: DropsCliOptions): Promise<number> {
  const s = runSettings(o);
  if (aggregateInKernel(o, s.summary)) return runDropsSummary(o, s);
  const trace = drops({
    ...filterOptions(o), all: !!o.all, reasons: o.reason ?? [], stack: !!o.stack, hook: o.hook,
    ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs,
  });
  const agg = new DropsAggregator({ maxDestinations: s.maxDestinations });
  let header = false;
  const live = !s.summary || s.json;
  return runTrace('drops', s, {
    trace,
    onEvents(events) {
      if (s.summary) agg.addAll(events);
      if (!live || events.length === 0) return;
      if (s.json) {
        process.stdout.write(events.map((e) => jsonText(dropJson(e))).join('\n') + '\n');
        return;
      }
      if (!header) { process.stdout.write(LIVE_HEADER + '\n'); header = true; }
      process.stdout.write(events.map((e) => liveLines(e, !!o.stack)).join('\n') + '\n');
    },
    printSummary(final, counters) {
      const summary = agg.snapshot();
      if (s.json) process.stdout.write(jsonText({ ...summary, final, lost: counters.lost, recursionMisses: counters.recursionMisses, droppedByConsumer: counters.droppedByConsumer }) + '\n');
      else process.stdout.write(renderDropsSummary(summary, counters, s.top, final).join('\n') + '\n');
    },
  }, {
    afterStart: async () => {
      const note = trace.info ? dropReasonsNote(trace.info) : null;
      if (note) process.stderr.write(`netbpf drops: ${note}\n`);
    },
  });
}

/** Summary-only run counted in the kernel: no events cross into Node; the map is read at each summary. */
async function runDropsSummary(o: DropsCliOptions, s: RunSettings): Promise<number> {
  const summaries = dropsSummary({
    ...filterOptions(o), all: !!o.all, reasons: o.reason ?? [], hook: o.hook, maxDestinations: s.maxDestinations, pollMs: s.pollMs,
  });
  return runTrace('drops', s, {
    trace: summaries.trace,
    onEvents() { /* none: drops are counted in the kernel */ },
    printSummary(final, counters) {
      const summary = summaries.snapshot();
      if (s.json) process.stdout.write(jsonText({ ...summary, final, lost: counters.lost, recursionMisses: counters.recursionMisses, droppedByConsumer: counters.droppedByConsumer }) + '\n');
      else process.stdout.write(renderDropsSummary(summary, counters, s.top, final).join('\n') + '\n');
    },
  }, {
    afterStart: async () => {
      const note = summaries.trace.info ? dropReasonsNote(summaries.trace.info) : null;
      if (note) process.stderr.write(`netbpf drops: ${note}\n`);
    },
  });
}

const endpoint = (addr: string | null, port: number | null) => (addr === null ? 'unknown' : port === null ? addr : formatEndpoint(addr, port));

const LIVE_HEADER = `${'TIME'.padEnd(8)} DIR ${'PROTO'.padEnd(8)} ${'SADDR:SPORT'.padEnd(26)}    ${'DADDR:DPORT'.padEnd(26)} ${'FLAGS/STATE'.padEnd(20)} ${'REASON'.padEnd(20)} ${'LEN'.padStart(6)} LOCATION`;

function liveLines(e: DropEvent, withStack: boolean): string {
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

function rowCells(r: DropRow): Array<string | number> {
  return [r.key === 'other' ? 'other' : endpoint(r.addr, r.port), r.reason || '-', r.count, r.rate, percent(r.share), r.bytes];
}

export function renderDropsSummary(s: DropsSummary, c: TraceCounters, top: number, final: boolean): string[] {
  const lines: string[] = [];
  const title = final ? `drops, whole run (${s.elapsedS.toFixed(1)} s)` : `drops, last ${s.intervalS.toFixed(1)} s (run ${s.elapsedS.toFixed(1)} s)`;
  lines.push('', `${clockTime(s.time)} ${title}: ${s.totals.drops} dropped packets, ${s.totals.purges} socket-close purges`);
  const drops = (rows: DropRow[]) => rows.filter((r) => r.category === 'drop');
  const header = ['REASON', 'COUNT', 'PER_S', 'SHARE', 'BYTES'];
  const byEndpoint = drops(s.byEndpoint);
  if (byEndpoint.length === 0) lines.push('  (no drops)');
  else {
    lines.push(...table(['REMOTE', ...header], byEndpoint.slice(0, top).map(rowCells)).map((l) => `  ${l}`));
    lines.push('', ...table(['DESTINATION', ...header], drops(s.byDestination).slice(0, top).map(rowCells)).map((l) => `  ${l}`));
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
  const f = s.folded;
  if (f.endpoints || f.addresses || f.destinations || f.kernel) {
    lines.push(`  folded into "other": ${f.endpoints} endpoints, ${f.addresses} addresses, ${f.destinations} destinations` +
      (f.kernel ? `; ${f.kernel} drops folded in the kernel (its key map was full)` : ''));
  }
  lines.push(`  lost: ${c.lost} events (ring buffer full), ${c.recursionMisses} recursion misses${c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by consumer` : ''}`);
  return lines;
}
