/** `netbpf life`: one line per closed TCP connection (tcplife columns plus direction, retransmits, RTT,
 * close reason), JSON or CSV, and a per-destination summary; over the public API only. */
import { Command, Option } from 'commander';
import { usageError } from '../core/errors.js';
import { csvHeader, csvLine, life, LifeAggregator, lifeEventJson, lifeHeader, lifeLine, lifeSummary, renderLifeSummary, type LifeClosedEvent, type LifeEvent, type LifeFormat, type LifeSummary, type Trace } from '../index.js';
import { addAggregateOption, addCommonOptions, aggregateInKernel, existingPid, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { runTool, type Summarizer } from './run.js';

interface LifeCliOptions extends CommonCliOptions {
  pid?: string;
  time?: boolean;
  timestamp?: boolean;
  wide?: boolean;
  csv?: boolean;
  established?: boolean;
  singleStateProgram?: boolean;
  hook: 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint';
}

export function lifeCommand(): Command {
  const cmd = new Command('life')
    .description('trace TCP connection lifetimes (like tcplife): who talked to whom, bytes each way, duration, retransmits, close reason')
    .option('-p, --pid <pid>', 'only connections owned by this process (filtered in user space)')
    .option('-T, --time', 'include a time column (HH:MM:SS)')
    .option('-t, --timestamp', 'include a timestamp column (seconds since the first event)')
    .option('-w, --wide', 'wide columns (IPv6 addresses) plus netns and cgroup ids')
    .option('--csv', 'comma-separated values, one line per closed connection')
    .option('--established', 'also a record when each handshake completes (JSON lines of type "established")')
    .addOption(new Option('--single-state-program', 'one state-change program for process and softirq context (measuring recursion misses)').hideHelp())
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint']).default('auto'));
  addCommonOptions(cmd);
  addAggregateOption(cmd);
  cmd.action(async (o: LifeCliOptions) => {
    process.exitCode = await runLife(o);
  });
  return cmd;
}

async function runLife(o: LifeCliOptions): Promise<number> {
  const s = runSettings(o);
  const filters = filterOptions(o);
  if (o.csv && o.json) throw usageError('--csv and --json exclude each other');
  const pid = existingPid(o.pid);
  const common = { ...filters, hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, singleStateProgram: !!o.singleStateProgram };
  let trace: Trace<LifeEvent>, summary: Summarizer<LifeEvent, LifeSummary>;
  if (aggregateInKernel(o, s.summary, o.pid !== undefined ? '--pid' : o.established ? '--established' : null)) {
    // Summary-only: every connection end is counted in the kernel; no record crosses into Node.
    const kernel = lifeSummary({ ...common, maxDestinations: s.maxDestinations });
    trace = kernel.trace;
    summary = kernel;
  } else {
    // Summaries from events count handshakes too (ESTAB, OPEN): they need the handshake records.
    trace = life({ ...common, pid, established: !!o.established || s.summary });
    summary = new LifeAggregator({ maxDestinations: s.maxDestinations });
  }
  const fmt: LifeFormat = { time: !!o.time, timestamp: !!o.timestamp, wide: !!o.wide };
  let first = 0;
  return runTool({
    tool: 'life',
    trace,
    summary,
    live: {
      header: o.csv ? csvHeader() : lifeHeader(fmt),
      lines(events) {
        const closed = events.filter((e): e is LifeClosedEvent => e.type === 'closed');
        if (closed.length && !first) first = closed[0].time;
        return closed.map((e) => (o.csv ? csvLine(e) : lifeLine(e, fmt, first)));
      },
    },
    eventJson: lifeEventJson,
    summaryText: renderLifeSummary,
    extraLosses: () => [{ key: 'untracked', count: trace.kernelCount('untracked'), words: 'connections untracked (map full)' }],
  }, s);
}
