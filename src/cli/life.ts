/** `netbpf life`: one line per closed TCP connection (tcplife columns plus direction, retransmits, RTT,
 * close reason), JSON or CSV, and a per-destination summary; over the public API only. */
import { Command, Option } from 'commander';
import { usageError } from '../core/errors.js';
import { csvHeader, csvLine, life, LifeAggregator, lifeEventJson, lifeHeader, lifeLine, renderLifeSummary, type LifeClosedEvent, type LifeFormat } from '../index.js';
import { addCommonOptions, existingPid, filterOptions, runSettings, type CommonCliOptions } from './common.js';
import { runTool } from './run.js';

interface LifeCliOptions extends CommonCliOptions {
  pid?: string;
  time?: boolean;
  timestamp?: boolean;
  wide?: boolean;
  csv?: boolean;
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
    .addOption(new Option('--hook <hook>', 'how to attach: auto (the best the kernel offers), tp_btf, raw_tp, tracepoint (classic: needs tracefs)').choices(['auto', 'tp_btf', 'raw_tp', 'tracepoint']).default('auto'));
  addCommonOptions(cmd);
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
  const trace = life({ ...filters, pid, hook: o.hook, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs });
  const agg = new LifeAggregator({ maxDestinations: s.maxDestinations });
  const fmt: LifeFormat = { time: !!o.time, timestamp: !!o.timestamp, wide: !!o.wide };
  let first = 0;
  return runTool({
    tool: 'life',
    trace,
    summary: agg,
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
    extraLosses: () => [{ key: 'untracked', count: trace.untracked(), words: 'connections untracked (map full)' }],
  }, s);
}
