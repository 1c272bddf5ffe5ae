/** `netbpf connect`: live connect outcomes (latency, or why it failed) and a per-destination summary. */
import { Command, Option } from 'commander';
import { connect, ConnectAggregator, connectEventJson, CONNECT_HEADER, connectLine, connectSummary, renderConnectSummary } from '../index.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, existingPid, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { runTool } from './run.js';

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
  addAggregateOption(cmd);
  cmd.action(async (o: ConnectCliOptions) => {
    process.exitCode = await runConnect(o);
  });
  return cmd;
}

async function runConnect(o: ConnectCliOptions): Promise<number> {
  const s = runSettings(o);
  const pid = existingPid(o.pid);
  const opts = { ...filterOptions(o), pid, hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs };
  // Summary-only: outcomes are counted in the kernel; no record crosses into Node.
  const kernel = aggregateInKernel(o, s.summary) ? connectSummary({ ...opts, maxDestinations: s.maxDestinations }) : null;
  const trace = kernel ? kernel.trace : connect(opts);
  const shown = <E extends { type: string }>(e: E) => !o.failedOnly || e.type === 'failed';
  return runTool({
    tool: 'connect',
    trace,
    summary: kernel ?? new ConnectAggregator({ maxDestinations: s.maxDestinations }),
    live: { header: CONNECT_HEADER, lines: (events) => events.filter(shown).map(connectLine) },
    eventJson: (e) => (shown(e) ? connectEventJson(e) : null),
    summaryText: renderConnectSummary,
  }, s);
}
