/**
 * The run loop every command shares, written once: the start report (hooks in use, what is unavailable and why),
 * live lines or JSON events, summaries at each interval and at exit, stopping on a signal, --duration or a closed
 * pipe, and the footer that accounts for every event lost anywhere. A command declares a ToolView; runTool does
 * the rest. Multi-tool commands (top, serve) use the same start report, stop and footer pieces.
 */
import { jsonText } from '../core/format.js';
import type { Trace, TraceCounters, StartInfo } from '../core/trace.js';
import type { RunSettings } from './common.js';

/** Where a summary comes from: an aggregator fed with every event, or the kernel's own maps (nothing to add). */
export interface Summarizer<E, S> {
  addAll?(events: E[]): void;
  snapshot(): S;
}

/** A loss outside the trace's own counters, e.g. connections the kernel map had no room for. */
export interface ExtraLoss {
  /** Its field in the JSON summary and counters lines. */
  key: string;
  count: number;
  /** What the count is, in words ("connections untracked (map full)"). */
  words: string;
}

/** How one tool's command shows what its trace sees. */
export interface ToolView<E, S> {
  tool: string;
  trace: Trace<E>;
  /** Rewrites each batch once, before summaries and output see it (e.g. --resolve-nat's real backends). */
  map?(events: E[]): E[];
  summary: Summarizer<E, S>;
  /** Live text: the header and the lines for a batch (events a view does not show give no line). */
  live: { header: string; lines(events: E[]): string[] };
  /** The documented JSON line of an event, or null when this view does not show it. */
  eventJson(e: E): Record<string, unknown> | null;
  summaryText(s: S, top: number, final: boolean): string[];
  /** Fields of the JSON summary line besides the summary and the losses. */
  summaryJsonExtras?(): Record<string, unknown>;
  /** Losses besides ring buffer, recursion and consumer drops (counted where they happen). */
  extraLosses?(): ExtraLoss[];
  /** Start-report lines besides the hooks (e.g. "drop reasons unavailable"). */
  startNotes?(info: StartInfo): string[];
  /** Before the trace starts (e.g. create a demo's namespaces), after it started, after it stopped. */
  beforeStart?(): Promise<void>;
  afterStart?(): Promise<void>;
  afterStop?(): Promise<void>;
}

const UNAVAILABLE_WHERE = { kernel: 'on this kernel', privilege: 'with these privileges', environment: 'in this environment' } as const;

/** Start report lines: which hook serves each feature, what fell back, what is unavailable and why. */
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

/** Prints the start report of one tool (of a command or of a multi-tool session) on stderr, and its JSON start record. */
export function reportStart(tool: string, info: StartInfo | { error: string }, json: boolean): void {
  if ('error' in info) process.stderr.write(`netbpf ${tool}: not running: ${info.error}\n`);
  else for (const line of describeStart(tool, info)) process.stderr.write(line + '\n');
  const record = 'error' in info ? { error: info.error } : { startupMs: info.startupMs, hooks: info.hooks };
  if (json) process.stdout.write(jsonText({ type: 'start', tool, time: Date.now(), ...record }) + '\n');
}

/** Where the kernel loses records: the ring buffer, or (counted in the kernel) a summary map and its fold both full. */
export type KernelLossCause = 'ring' | 'maps';

const LOST_WHY: Record<KernelLossCause, string> = { ring: 'ring buffer full', maps: 'summary map and its "other" fold both full' };

/** The losses of a run in words: ring buffer, recursion, a slow consumer, malformed records, and the tool's own. */
export function lossText(c: TraceCounters, extra: ExtraLoss[] = [], cause: KernelLossCause = 'ring'): string {
  return `${c.lost} lost in the kernel (${LOST_WHY[cause]}), ${c.recursionMisses} missed by recursion` +
    (c.recursionSkipped ? ` (and ${c.recursionSkipped} skipped runs of a program that shares the work by context)` : '') +
    (c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by a slow consumer` : '') +
    (c.malformed ? `, ${c.malformed} malformed` : '') +
    (c.sourceLost !== undefined ? `, ${c.sourceLost} lost by ctnetlink (kernel socket drop count)` : '') +
    (c.sourceRetried ? `, ${c.sourceRetried} ctnetlink deliveries failed and were retried by the kernel (not lost)` : '') +
    extra.map((x) => `, ${x.count} ${x.words}`).join('');
}

/** The last line of every text summary: the losses so far. */
export function summaryLossLine(c: TraceCounters, extra: ExtraLoss[] = [], cause: KernelLossCause = 'ring'): string {
  return `  lost: ${c.lost} events (${LOST_WHY[cause]}), ${c.recursionMisses} recursion misses` +
    (c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by consumer` : '') +
    (c.malformed ? `, ${c.malformed} malformed` : '') +
    extra.map((x) => `, ${x.count} ${x.words}`).join('');
}

/** The final line on stderr: events seen and every loss. */
export function countersLine(tool: string, c: TraceCounters, extra: ExtraLoss[] = [], cause: KernelLossCause = 'ring'): string {
  return `netbpf ${tool}: ${c.events} events, ${lossText(c, extra, cause)}`;
}

/** The final stderr line of a multi-tool session (top, serve): each tool's events and losses. */
export function sessionCountersLine(label: string, counters: Record<string, TraceCounters>): string {
  const part = (t: string, c: TraceCounters) => `${t} ${c.events} events, ${c.lost} lost, ${c.recursionMisses} missed by recursion` +
    (c.droppedByConsumer ? `, ${c.droppedByConsumer} dropped by a slow consumer` : '') +
    (c.malformed ? `, ${c.malformed} malformed` : '') +
    (c.sourceLost !== undefined ? `, ${c.sourceLost} lost by ctnetlink` : '');
  return `netbpf ${label}: ${Object.entries(counters).map(([t, c]) => part(t, c)).join('; ')}`;
}

/** The JSON counters record of a tool at exit. */
export function reportCounters(tool: string, c: TraceCounters, json: boolean, extra: ExtraLoss[] = []): void {
  if (json) process.stdout.write(jsonText({ type: 'counters', tool, time: Date.now(), ...c, ...Object.fromEntries(extra.map((x) => [x.key, x.count])) }) + '\n');
}

/** Resolves with why the run ends: SIGINT, SIGTERM, SIGHUP, --duration, or stdout closed (`| head`). */
export function untilStopped(s: Pick<RunSettings, 'durationMs'>): Promise<string> {
  return new Promise<string>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => resolve(sig));
    // A closed pipe ends the run cleanly: detach and clean up, do not crash.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') resolve('EPIPE'); });
    if (s.durationMs) setTimeout(() => resolve('duration'), s.durationMs).unref();
  });
}

/**
 * Runs one tool until stopped: start report, events (live text or JSON), summaries at each interval and at exit
 * with every loss, then detaches. Resolves with the exit code.
 */
export async function runTool<E, S extends object>(view: ToolView<E, S>, s: RunSettings): Promise<number> {
  const out = process.stdout;
  const { trace } = view;
  const live = !s.summary || s.json;
  let header = false;
  const lostCause: KernelLossCause = trace.countsInKernel ? 'maps' : 'ring';
  trace.onEvents((batch) => {
    const events = view.map ? view.map(batch) : batch;
    if (s.summary) view.summary.addAll?.(events);
    if (!live) return;
    if (s.json) {
      const lines: string[] = [];
      for (const e of events) {
        const j = view.eventJson(e);
        if (j) lines.push(jsonText(j));
      }
      if (lines.length) out.write(lines.join('\n') + '\n');
      return;
    }
    const lines = view.live.lines(events);
    if (!lines.length) return;
    if (!header) { out.write(view.live.header + '\n'); header = true; }
    out.write(lines.join('\n') + '\n');
  });
  const printSummary = (final: boolean) => {
    const c = trace.counters();
    const extra = view.extraLosses?.() ?? [];
    const summary = view.summary.snapshot();
    if (s.json) {
      const losses = { lost: c.lost, recursionMisses: c.recursionMisses, droppedByConsumer: c.droppedByConsumer, ...Object.fromEntries(extra.map((x) => [x.key, x.count])) };
      out.write(jsonText({ ...summary, final, ...losses, ...view.summaryJsonExtras?.() }) + '\n');
    } else {
      out.write([...view.summaryText(summary, s.top, final), summaryLossLine(c, extra, lostCause)].join('\n') + '\n');
    }
  };
  // Listen for the end before anything starts: a signal that arrives while attaching (or right after the start
  // report) stops the run cleanly once attached, instead of killing the process with the default action.
  const stopped = untilStopped(s);
  await view.beforeStart?.();
  try {
    const info = await trace.start();
    reportStart(view.tool, info, s.json);
    for (const note of view.startNotes?.(info) ?? []) process.stderr.write(`netbpf ${view.tool}: ${note}\n`);
    const interval = s.intervalMs ? setInterval(() => printSummary(false), s.intervalMs) : undefined;
    await view.afterStart?.();
    await stopped;
    if (interval) clearInterval(interval);
    await trace.stop();
  } finally {
    await view.afterStop?.();
  }
  if (s.summary) printSummary(true);
  const c = trace.counters();
  const extra = view.extraLosses?.() ?? [];
  reportCounters(view.tool, c, s.json, extra);
  process.stderr.write(countersLine(view.tool, c, extra, lostCause) + '\n');
  return 0;
}
