/** `netbpf retrans`: live TCP retransmits and the per-destination summary, over the public API only. */
import { Command, Option } from 'commander';
import { formatEndpoint } from '../core/address.js';
import { renderHistogram } from '../core/histogram.js';
import type { TraceCounters } from '../core/trace.js';
import { retrans, RetransAggregator, type RetransEvent, type RetransRow, type RetransSummary } from '../index.js';
import { addCommonOptions, filterOptions, runSettings, runTrace, type CommonCliOptions } from './common.js';
import { startDemo, type Demo } from './demo.js';
import { NatResolver, startNatFeed } from '../core/nat.js';
import { clockTime, percent, safeText, table, jsonText } from './format.js';

interface RetransCliOptions extends CommonCliOptions {
  hook: 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint';
  demo?: boolean;
  resolveNat?: boolean;
}

export function retransCommand(): Command {
  const cmd = new Command('retrans')
    .description('trace TCP retransmits live, aggregated per destination (count, segments, rate, histograms)')
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint']).default('auto'))
    .option('--resolve-nat', 'group by the real backend behind DNAT (from conntrack in this network namespace)')
    .option('--demo', 'create a lossy link between two private network namespaces, drive a bulk transfer over it and trace it');
  addCommonOptions(cmd);
  cmd.action(async (o: RetransCliOptions) => {
    process.exitCode = await runRetrans(o);
  });
  return cmd;
}

async function runRetrans(o: RetransCliOptions): Promise<number> {
  const s = runSettings(o);
  const filters = filterOptions(o);
  let demo: Demo | null = null;
  if (o.demo) {
    if (s.durationMs === undefined) s.durationMs = 10_000;
    if (!o.json && o.interval === undefined) { s.summary = true; s.intervalMs = 5000; }
  }
  const trace = retrans({ ...filters, hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs });
  const agg = new RetransAggregator({ maxDestinations: s.maxDestinations });
  let header = false;
  const live = !s.summary || s.json;
  // --resolve-nat: rewrite each event's destination to the backend conntrack says it reaches.
  const nat = o.resolveNat ? new NatResolver() : null;
  let natFeed: { stop(): Promise<void> } | null = null;
  const resolved = (e: RetransEvent): RetransEvent => {
    const t = nat?.resolve(6, e.saddr, e.sport, e.daddr, e.dport);
    return t ? { ...e, daddr: t.daddr, dport: t.dport, natFrom: formatEndpoint(e.daddr, e.dport) } as RetransEvent : e;
  };
  try {
    return await runTrace('retrans', s, {
      trace,
      onEvents(events) {
        if (nat) events = events.map(resolved);
        if (s.summary) agg.addAll(events);
        if (!live) return;
        if (s.json) {
          process.stdout.write(events.map((e) => jsonText(eventJson(e))).join('\n') + '\n');
          return;
        }
        if (!header) { process.stdout.write(LIVE_HEADER + '\n'); header = true; }
        process.stdout.write(events.map(liveLine).join('\n') + '\n');
      },
      printSummary(final, counters) {
        const summary = agg.snapshot();
        if (s.json) process.stdout.write(jsonText({ ...summary, final, lost: counters.lost, recursionMisses: counters.recursionMisses, droppedByConsumer: counters.droppedByConsumer }) + '\n');
        else process.stdout.write(renderSummary(summary, counters, s.top, final).join('\n') + '\n');
      },
    }, {
      beforeStart: async () => {
        if (nat) natFeed = await startNatFeed(nat);
        if (o.demo) demo = await startDemo();
      },
      afterStart: async () => { demo?.run(); },
    });
  } finally {
    await (natFeed as { stop(): Promise<void> } | null)?.stop();
    await (demo as Demo | null)?.stop();
  }
}

const LIVE_HEADER = `${'TIME'.padEnd(8)} ${'PID'.padEnd(7)} ${'IP'.padEnd(2)} ${'LADDR:LPORT'.padEnd(26)} T> ${'RADDR:RPORT'.padEnd(26)} ${'STATE'.padEnd(11)} ${'KIND'.padEnd(6)} ${'SEGS'.padStart(4)} ${'RTT(ms)'.padStart(8)} COMM`;

function liveLine(e: RetransEvent): string {
  const t = e.kind === 'tlp' ? 'L' : 'R';
  return `${clockTime(e.time).padEnd(8)} ${String(e.pid || '-').padEnd(7)} ${String(e.family).padEnd(2)} ${formatEndpoint(e.saddr, e.sport).padEnd(26)} ${t}> ${formatEndpoint(e.daddr, e.dport).padEnd(26)} ${e.state.padEnd(11)} ${e.kind.padEnd(6)} ${String(e.segs).padStart(4)} ${(e.srttUs / 1000).toFixed(2).padStart(8)} ${safeText(e.comm) || '-'}${e.err ? ` err=${e.err}` : ''}`;
}

/** The documented JSON line for one retransmit (docs/json.md). */
export function eventJson(e: RetransEvent): Record<string, unknown> {
  return {
    type: 'retransmit', time: new Date(e.time).toISOString(), family: e.family,
    saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport, state: e.state, kind: e.kind,
    caState: e.caState, segs: e.segs, totalRetrans: e.totalRetrans, segsOut: e.segsOut, retransmits: e.retransmits,
    srttUs: e.srttUs, err: e.err, pid: e.pid, comm: e.comm, netns: e.netns, cgroupId: e.cgroupId,
    ...((e as { natFrom?: string }).natFrom ? { natFrom: (e as { natFrom?: string }).natFrom } : {}),
  };
}

function rowCells(r: RetransRow): Array<string | number> {
  return [r.key, r.events, r.segs, r.rate, r.connections, percent(r.retransRatio), r.kinds.rto, r.kinds.fast, r.kinds.tlp, r.kinds.syn + r.kinds.synack, r.failed];
}

export function renderSummary(s: RetransSummary, c: TraceCounters, top: number, final: boolean): string[] {
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
  lines.push(`  lost: ${c.lost} events (ring buffer full), ${c.recursionMisses} recursion misses${c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by consumer` : ''}`);
  return lines;
}
