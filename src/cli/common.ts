/** Options and the run loop every CLI command shares: filters, output modes, interval/duration, signals. */
import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { parsePort } from '../core/address.js';
import { NetbpfError, usageError } from '../core/errors.js';
import type { FilterOptions } from '../core/filters.js';
import type { Trace, TraceCounters, StartInfo } from '../core/trace.js';
import { jsonText } from './format.js';

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
}

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

const UNAVAILABLE_WHERE = { kernel: 'on this kernel', privilege: 'with these privileges', environment: 'in this environment' } as const;

/** Startup report on stderr: which hook serves each feature, what is unavailable and why. */
export function describeStart(tool: string, info: StartInfo): string[] {
  const lines: string[] = [];
  const used = info.hooks.filter((h) => h.hook).map((h) => `${h.feature} via ${h.hook}`);
  lines.push(`netbpf ${tool}: ${used.join('; ')}; attached in ${info.startupMs.toFixed(0)} ms`);
  for (const h of info.hooks) {
    if (!h.hook) lines.push(`netbpf ${tool}: unavailable ${UNAVAILABLE_WHERE[h.unavailable ?? 'kernel']}: ${h.feature} (${h.skipped.join('; ')})`);
    else if (h.skipped.length) lines.push(`netbpf ${tool}: ${h.feature}: fell back to ${h.hook} (${h.skipped.join('; ')})`);
  }
  return lines;
}

export function countersLine(tool: string, c: TraceCounters): string {
  return `netbpf ${tool}: ${c.events} events, ${c.lost} lost in the kernel (ring buffer full), ${c.recursionMisses} missed by recursion` +
    (c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by a slow consumer` : '') +
    (c.malformed ? `, ${c.malformed} malformed` : '') +
    (c.sourceOverruns !== undefined ? `, ${c.sourceOverruns} netlink overruns (events lost, number unknown)` : '');
}

export interface Runner<E> {
  trace: Trace<E>;
  onEvents(events: E[]): void;
  /** Prints a summary (called at each interval and at exit when summaries are on). */
  printSummary(final: boolean, counters: TraceCounters): void;
}

/**
 * Runs a trace until SIGINT/SIGTERM or --duration: prints the start report, feeds events, prints the
 * summary at each interval and at exit with the lost-event counters, then detaches. Resolves with the exit code.
 */
export async function runTrace<E>(tool: string, s: RunSettings, r: Runner<E>, hooks: { beforeStart?: () => Promise<void>; afterStart?: () => Promise<void> } = {}): Promise<number> {
  const out = process.stdout;
  r.trace.onEvents((events) => r.onEvents(events));
  await hooks.beforeStart?.();
  const info = await r.trace.start();
  for (const line of describeStart(tool, info)) process.stderr.write(line + '\n');
  if (s.json) out.write(jsonText({ type: 'start', tool, time: Date.now(), startupMs: info.startupMs, hooks: info.hooks }) + '\n');
  let interval: NodeJS.Timeout | undefined;
  if (s.intervalMs) interval = setInterval(() => r.printSummary(false, r.trace.counters()), s.intervalMs);
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (sig: string) => resolve(sig);
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    // A closed pipe (`netbpf retrans | head`) ends the run cleanly: detach and clean up, do not crash.
    out.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') resolve('EPIPE'); });
    if (s.durationMs) setTimeout(() => resolve('duration'), s.durationMs).unref();
  });
  await hooks.afterStart?.();
  await stopped;
  if (interval) clearInterval(interval);
  await r.trace.stop();
  const counters = r.trace.counters();
  if (s.summary) r.printSummary(true, counters);
  if (s.json) out.write(jsonText({ type: 'counters', tool, time: Date.now(), ...counters }) + '\n');
  process.stderr.write(countersLine(tool, counters) + '\n');
  return 0;
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
