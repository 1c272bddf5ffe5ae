/** `netbpf drops`: dropped packets with the kernel's drop reason, live or per destination, over the public API. */
import { Command, Option } from 'commander';
import { ListenQueueCounters } from '../core/listen-queue.js';
import { dropJson, dropLine, dropReasonsNote, drops, DROPS_HEADER, DropsAggregator, dropsSummary, renderDropsSummary, type DropEvent, type DropsSummary } from '../index.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { runTool, type Summarizer } from './run.js';

interface DropsCliOptions extends CommonCliOptions {
  hook: 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint' | 'tcp_drop';
  all?: boolean;
  reason?: string[];
  stack?: boolean;
}

const collect = (value: string, prev: string[] = []) => [...prev, value];

export function dropsCommand(): Command {
  const cmd = new Command('drops')
    .description('trace dropped packets with the kernel\'s drop reason (TCP by default), live or per destination x reason')
    .option('-a, --all', 'every protocol, not only TCP')
    .option('-r, --reason <name>', 'only this drop reason, e.g. NETFILTER_DROP (repeatable; names from this kernel)', collect)
    .option('--stack', 'capture and print the kernel stack of each drop')
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs), tcp_drop (fentry or kprobe: kernels without drop reasons)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint', 'tcp_drop']).default('auto'));
  addCommonOptions(cmd);
  addAggregateOption(cmd);
  cmd.action(async (o: DropsCliOptions) => {
    process.exitCode = await runDrops(o);
  });
  return cmd;
}

async function runDrops(o: DropsCliOptions): Promise<number> {
  const s = runSettings(o);
  const opts = { ...filterOptions(o), all: !!o.all, reasons: o.reason ?? [], hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs };
  let trace, summary: Summarizer<DropEvent, DropsSummary>;
  // SYN-flood effects no drop tracepoint shows (cookies, SYN-queue drops freed without a reason).
  const listenQueue = new ListenQueueCounters();
  if (aggregateInKernel(o, s.summary, o.stack ? '--stack' : null)) {
    // Summary-only: drops are counted in the kernel; no event crosses into Node.
    const kernel = dropsSummary({ ...opts, maxDestinations: s.maxDestinations, listenQueue });
    trace = kernel.trace;
    summary = kernel;
  } else {
    trace = drops({ ...opts, stack: !!o.stack });
    summary = new DropsAggregator({ maxDestinations: s.maxDestinations, listenQueue });
  }
  return runTool({
    tool: 'drops',
    trace,
    summary,
    live: { header: DROPS_HEADER, lines: (events) => events.map((e) => dropLine(e, !!o.stack)) },
    eventJson: dropJson,
    summaryText: renderDropsSummary,
    startNotes: (info) => { const note = dropReasonsNote(info); return note ? [note] : []; },
  }, s);
}
