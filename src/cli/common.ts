/** Options every CLI command shares: filters, output modes, interval/duration, ring buffer; error reporting. */
import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { parsePort } from '../core/address.js';
import { NetbpfError, usageError } from '../core/errors.js';
import type { FilterOptions } from '../core/filters.js';

export interface CommonCliOptions {
  ipv4?: boolean;
  ipv6?: boolean;
  lport?: string;
  rport?: string;
  cidr?: string[];
  json?: boolean;
  summary?: boolean;
  interval?: string;
  duration?: string;
  top?: string;
  ringBytes?: string;
  pollMs?: string;
  maxDestinations?: string;
  verbose?: boolean;
  aggregate?: AggregateWhere;
}

/** Where summaries are counted: in the kernel (a per-destination map, no event per connection or packet), from
 * every event in user space, or the best for the run (auto). */
export type AggregateWhere = 'auto' | 'kernel' | 'events';

const collect = (value: string, prev: string[] = []) => [...prev, value];

/** Adds the kernel-side filter and output options every tool takes. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('-4, --ipv4', 'trace IPv4 only')
    .option('-6, --ipv6', 'trace IPv6 only')
    .option('-L, --lport <port>', 'only this local port (filtered in the kernel)')
    .option('-D, --rport <port>', 'only this remote port (filtered in the kernel)')
    .option('-c, --cidr <cidr>', 'only remote addresses in this network, e.g. 10.0.0.0/8 (repeatable, up to 8)', collect)
    .option('-j, --json', 'one JSON object per line (events, summaries, counters)')
    .option('-s, --summary', 'per-destination summary instead of live lines')
    .option('-i, --interval <seconds>', 'print the summary every N seconds (implies --summary)')
    .option('-d, --duration <seconds>', 'stop after N seconds, printing the final summary')
    .option('--top <n>', 'rows per summary table', '20')
    .option('--max-destinations <n>', 'destinations kept per table before folding into "other"', '4096')
    .addOption(new Option('--ring-bytes <bytes>', 'ring buffer size (power of two)').default('4194304').hideHelp())
    .addOption(new Option('--poll-ms <ms>', 'longest delay before records reach user space').default('20').hideHelp())
    .option('-v, --verbose', 'print libbpf details on errors');
}

export function positiveNumber(text: string | undefined, what: string, opts: { integer?: boolean; allowZero?: boolean } = {}): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  const ok = text.trim() !== '' && Number.isFinite(n) && (opts.allowZero ? n >= 0 : n > 0) && (!opts.integer || Number.isInteger(n));
  if (!ok) throw usageError(`invalid ${what} '${text}': must be a ${opts.integer ? 'whole ' : ''}number ${opts.allowZero ? '>= 0' : '> 0'}`);
  return n;
}

/** A --pid value: a whole number naming a process that exists now (a typo would otherwise trace nothing, silently). */
export function existingPid(text: string | undefined): number | undefined {
  const pid = positiveNumber(text, 'pid', { integer: true });
  if (pid !== undefined && !existsSync(`/proc/${pid}`)) throw usageError(`no process with pid ${pid}`);
  return pid;
}

export function filterOptions(o: CommonCliOptions): FilterOptions {
  if (o.ipv4 && o.ipv6) throw usageError('-4 and -6 exclude each other');
  return {
    family: o.ipv4 ? 4 : o.ipv6 ? 6 : undefined,
    localPort: o.lport === undefined ? undefined : parsePort(o.lport, 'local port'),
    remotePort: o.rport === undefined ? undefined : parsePort(o.rport, 'remote port'),
    remoteCidrs: o.cidr,
  };
}

/** Adds --aggregate (tools whose summaries can be counted in the kernel). */
export function addAggregateOption(cmd: Command, view = false): Command {
  const auto = view ? 'the default' : 'the default for text summaries';
  return cmd.addOption(new Option('--aggregate <where>', `where summaries are counted: kernel (per-destination maps in the kernel, no event per connection or packet; ${auto}), events (every event to user space${view ? '' : '; with --json --summary also prints each event'})`)
    .choices(['auto', 'kernel', 'events']).default('auto'));
}

/**
 * Whether this run counts its summaries in the kernel: only when summaries are all it prints, and nothing asked
 * for needs each event. `needsEvents` names the option given that does (e.g. "--stack"), or null. auto: text
 * summaries count in the kernel; --json --summary keeps its event lines; `views` (top, serve) always can.
 */
export function aggregateInKernel(o: { aggregate?: string; json?: boolean }, summary: boolean, needsEvents: string | null = null, view = false): boolean {
  if (o.aggregate === 'events') return false;
  if (o.aggregate === 'kernel') {
    if (!summary && !view) throw usageError('--aggregate kernel prints summaries only: add --summary or --interval');
    if (needsEvents) throw usageError(`--aggregate kernel has no per-event records: ${needsEvents} needs --aggregate events`);
    return true;
  }
  return (view || (summary && !o.json)) && !needsEvents;
}

export interface RunSettings {
  json: boolean;
  summary: boolean;
  intervalMs?: number;
  durationMs?: number;
  top: number;
  maxDestinations: number;
  ringBufferBytes: number;
  pollMs: number;
}

export function runSettings(o: CommonCliOptions): RunSettings {
  const interval = positiveNumber(o.interval, 'interval');
  const duration = positiveNumber(o.duration, 'duration');
  return {
    json: !!o.json,
    summary: !!o.summary || interval !== undefined,
    intervalMs: interval === undefined ? undefined : interval * 1000,
    durationMs: duration === undefined ? undefined : duration * 1000,
    top: positiveNumber(o.top, '--top', { integer: true })!,
    maxDestinations: positiveNumber(o.maxDestinations, '--max-destinations', { integer: true })!,
    ringBufferBytes: positiveNumber(o.ringBytes, '--ring-bytes', { integer: true })!,
    pollMs: positiveNumber(o.pollMs, '--poll-ms', { integer: true })!,
  };
}

/** Prints a NetbpfError as one line and returns its exit code; anything else is a runtime error. */
export function reportError(err: unknown, verbose: boolean): number {
  if (err instanceof NetbpfError) {
    process.stderr.write(`netbpf: ${err.message}\n`);
    if (verbose && err.details) process.stderr.write(err.details.trimEnd() + '\n');
    return err.exitCode;
  }
  const e = err as { code?: string; message?: string };
  if (e?.code?.startsWith('commander.')) return 2;
  process.stderr.write(`netbpf: unexpected error: ${e?.message ?? String(err)}\n`);
  if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  return 1;
}
