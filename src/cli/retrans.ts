/** `netbpf retrans`: live TCP retransmits and the per-destination summary, over the public API only. */
import { Command, Option } from 'commander';
import { formatEndpoint } from '../core/address.js';
import { NatResolver, renderRetransSummary, retrans, RETRANS_HEADER, RetransAggregator, retransEventJson, retransLine, retransSummary, startNatFeed, type RetransEvent } from '../index.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { startDemo, type Demo } from './demo.js';
import { runTool } from './run.js';

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
  addAggregateOption(cmd);
  cmd.action(async (o: RetransCliOptions) => {
    process.exitCode = await runRetrans(o);
  });
  return cmd;
}

async function runRetrans(o: RetransCliOptions): Promise<number> {
  const s = runSettings(o);
  let demo: Demo | null = null;
  if (o.demo) {
    if (s.durationMs === undefined) s.durationMs = 10_000;
    if (!o.json && o.interval === undefined) { s.summary = true; s.intervalMs = 5000; }
  }
  const opts = { ...filterOptions(o), hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs };
  // Summary-only: retransmits are counted in the kernel (--resolve-nat rewrites each event: it needs them).
  const kernel = aggregateInKernel(o, s.summary, o.resolveNat ? '--resolve-nat' : null) ? retransSummary({ ...opts, maxDestinations: s.maxDestinations }) : null;
  const trace = kernel ? kernel.trace : retrans(opts);
  const agg = kernel ?? new RetransAggregator({ maxDestinations: s.maxDestinations });
  // --resolve-nat: each event's destination becomes the backend conntrack says it reaches.
  const nat = o.resolveNat ? new NatResolver() : null;
  let natFeed: { stop(): Promise<void> } | null = null;
  const resolve = (e: RetransEvent): RetransEvent => {
    const t = nat!.resolve(6, e.saddr, e.sport, e.daddr, e.dport);
    return t ? { ...e, daddr: t.daddr, dport: t.dport, natFrom: formatEndpoint(e.daddr, e.dport) } : e;
  };
  return runTool({
    tool: 'retrans',
    trace,
    map: nat ? (events) => events.map(resolve) : undefined,
    summary: agg,
    live: { header: RETRANS_HEADER, lines: (events) => events.map(retransLine) },
    eventJson: retransEventJson,
    summaryText: renderRetransSummary,
    beforeStart: async () => {
      if (nat) natFeed = await startNatFeed(nat);
      if (o.demo) demo = await startDemo();
    },
    afterStart: async () => { demo?.run(); },
    afterStop: async () => {
      await natFeed?.stop();
      await demo?.stop();
    },
  }, s);
}
