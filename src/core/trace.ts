/**
 * A running BPF tool: opens its object, chooses the best hook the kernel offers for each feature (with
 * fallbacks, reported), sets kernel-side filters, loads, attaches, and streams ring buffer records.
 * Every tool in src/tools/ is a TraceSpec plus decoding and aggregation; this class is the rest.
 */
import { channel } from 'node:diagnostics_channel';
import { addon, bpfObjectPath, type NativeBpfObject, type NativeRingBuffer } from './addon.js';
import { fromAddonError, NetbpfError } from './errors.js';
import { decidingCause, TRACEFS_ACCESS_HINT, type HookSpec, type UnavailableCause } from './hooks.js';
import { NETBPF_RODATA } from './netbpf.gen.js';
import type { SharedMaps } from './shared-maps.js';

export type { HookAlternative, HookSpec } from './hooks.js';

/** The hook chosen for a feature, or null with the reasons each alternative was passed over. */
export interface HookChoice {
  feature: string;
  hook: string | null;
  /** The first of the programs serving it (most hooks have one), or null. */
  program: string | null;
  programs: string[];
  /** "hook: reason" for each alternative passed over, best first. */
  skipped: string[];
  /** When no alternative serves: whether the kernel, the caller's privileges or the environment (e.g. tracefs not
   * mounted) is the cause. */
  unavailable?: UnavailableCause;
}

export interface TraceSpec<E> {
  /** Tool name; its object is build/bpf/<tool>.bpf.o. */
  tool: string;
  hooks: HookSpec[];
  /** Read-only globals to set before load (filters), by name. */
  constants: Record<string, Buffer>;
  /** Sizes of the object's own read-only globals (its generated <TOOL>_RODATA): constants are checked against them. */
  rodata?: Readonly<Record<string, number>>;
  /** Record size the decoder expects; records of another size are counted as malformed. */
  recordSize: number;
  decode(view: DataView, offset: number): E;
  /** Optional user-space filter for what the kernel cannot filter (e.g. an owner learned late); rejected records are not events. */
  accept?(event: E): boolean;
  /** Extra maps to size before load. */
  mapSizes?: Record<string, number>;
  /** Map flags to set before load, replacing the object's (e.g. preallocate a map that holds one entry). */
  mapFlags?: Record<string, number>;
  /** Programs of the object never to load (alternatives left out when the user forces a hook). */
  disabledPrograms?: string[];
  /** Object file to load instead of build/bpf/<tool>.bpf.o (the benchmark's own program). */
  objectPath?: string;
  /** Called once on stop, after detach and before the object closes: the last read of maps aggregated in the kernel. */
  beforeClose?(obj: NativeBpfObject): void;
  /** Events counted in the kernel instead of sent as records (in-kernel aggregation); added to counters().events. */
  kernelEvents?(): number;
  /** Per-CPU u64 counter maps of the object besides `lost` (e.g. life's `untracked`), read by kernelCount(). */
  kernelCounters?: string[];
  /** Maps of the object shared with the other objects of a session (TraceOptions.shared), e.g. "owners". */
  sharedMaps?: string[];
  /**
   * Programs (name prefixes) whose recursion misses are expected to lose nothing: work split by context, so the
   * invocation the kernel skips (a softirq re-entering a process-context program) is one that program had nothing
   * to do for, and another program attached to the same hook does that work. Counted apart (recursionSkipped).
   */
  harmlessMisses?: string[];
}

export interface TraceOptions {
  /** Stops the trace when aborted. */
  signal?: AbortSignal;
  /** Ring buffer size in bytes (power of two, >= page size). Default 4 MiB. */
  ringBufferBytes?: number;
  /** Longest time a record waits in the ring buffer before delivery. Default 20 ms. */
  pollMs?: number;
  /** Wake the consumer early once this many bytes wait (0 = wake for every record). Default ring/4. */
  wakeupBytes?: number;
  /** Most decoded events kept for a slow async-iterator consumer before dropping (counted). Default 1,000,000. */
  maxQueuedEvents?: number;
  /** The session this trace belongs to: maps named in the spec's sharedMaps are shared with its other traces. */
  shared?: SharedMaps;
}

export interface TraceCounters {
  /** Records delivered to user space. */
  events: number;
  /** Records the kernel could not put in the ring buffer (counted in the kernel, per CPU). */
  lost: number;
  /** Program runs the kernel skipped because the same program was already running on that CPU (an event it would
   * have handled may be lost). */
  recursionMisses: number;
  /** Runs skipped of programs that share a hook's work by context (spec.harmlessMisses): what they skip is the
   * other context's event, which another program handles (measured: losses there are rare). Reported apart,
   * present when the trace has such programs. */
  recursionSkipped?: number;
  /** Events dropped in user space because an async-iterator consumer fell behind maxQueuedEvents. */
  droppedByConsumer: number;
  /** Records of an unexpected size (a mismatch between the BPF object and this decoder). */
  malformed: number;
  /** Events an event source outside the ring buffer (conntrack's ctnetlink sockets) could not deliver, as the kernel counted them. */
  sourceLost?: number;
  /** Deliveries of that source that failed and that the kernel retried (reliable ctnetlink): not lost. */
  sourceRetried?: number;
}

export interface StartInfo {
  hooks: HookChoice[];
  /** Milliseconds from start() to all programs attached. */
  startupMs: number;
}

/** Every trace that starts publishes { tool, hooks } here (node:diagnostics_channel), e.g. for the kernel matrix. */
export const startChannel = channel('netbpf:trace-start');

type Listener<E> = (events: E[]) => void;

export class Trace<E> implements AsyncIterable<E> {
  readonly spec: TraceSpec<E>;
  private readonly opts: Required<Omit<TraceOptions, 'signal' | 'shared'>> & { signal?: AbortSignal; shared?: SharedMaps };
  private obj: NativeBpfObject | null = null;
  private ring: NativeRingBuffer | null = null;
  private programs: string[] = [];
  private startPromise: Promise<StartInfo> | null = null;
  private stopPromise: Promise<void> | null = null;
  private listeners: Listener<E>[] = [];
  private queue: E[][] = [];
  private queued = 0;
  private waiting: (() => void) | null = null;
  private finalCounters: TraceCounters | null = null;
  private finalKernelCounts: Map<string, number> | null = null;
  private finalProgramMisses: Record<string, number> | null = null;
  private counts = { events: 0, droppedByConsumer: 0, malformed: 0 };
  private iterating = false;
  /** Hooks in use, once started. */
  info: StartInfo | null = null;

  constructor(spec: TraceSpec<E>, opts: TraceOptions = {}) {
    checkConstants(spec);
    this.spec = spec;
    const ringBufferBytes = opts.ringBufferBytes ?? 4 * 1024 * 1024;
    if (!Number.isInteger(ringBufferBytes) || ringBufferBytes < 4096 || (ringBufferBytes & (ringBufferBytes - 1)) !== 0) {
      throw new NetbpfError('usage', `ring buffer size ${ringBufferBytes} must be a power of two of at least 4096 bytes`);
    }
    this.opts = {
      signal: opts.signal,
      shared: opts.shared,
      ringBufferBytes,
      pollMs: opts.pollMs ?? 20,
      wakeupBytes: opts.wakeupBytes ?? ringBufferBytes / 4,
      maxQueuedEvents: opts.maxQueuedEvents ?? 1_000_000,
    };
    opts.signal?.addEventListener('abort', () => void this.stop(), { once: true });
  }

  /** Receives every batch of decoded events (the fast path: no async iteration, no queue). */
  onEvents(listener: Listener<E>): this {
    this.listeners.push(listener);
    return this;
  }

  /** Loads and attaches; idempotent. Resolves with the hooks in use. */
  start(): Promise<StartInfo> {
    if (!this.startPromise) this.startPromise = Promise.resolve().then(() => this.startNow());
    return this.startPromise;
  }

  private startNow(): StartInfo {
    if (this.opts.signal?.aborted) throw new NetbpfError('runtime', 'aborted before start');
    const t0 = performance.now();
    const api = addon();
    const path = this.spec.objectPath ?? bpfObjectPath(this.spec.tool);
    // Index of the alternative tried for each hook spec, and why earlier ones were passed over.
    const chosen = this.spec.hooks.map(() => 0);
    const skipped: string[][] = this.spec.hooks.map(() => []);
    const causes: UnavailableCause[][] = this.spec.hooks.map(() => []);
    const advance = (i: number, cause: UnavailableCause, reason: string) => {
      skipped[i].push(`${this.spec.hooks[i].alternatives[chosen[i]].hook}: ${reason}`);
      causes[i].push(cause);
      chosen[i]++;
    };
    // Passes over alternatives the kernel visibly lacks, recording why.
    const settle = (i: number) => {
      const alts = this.spec.hooks[i].alternatives;
      while (chosen[i] < alts.length) {
        const why = alts[chosen[i]].missing?.() ?? null;
        if (!why) break;
        advance(i, why.cause, why.reason);
      }
    };
    this.spec.hooks.forEach((_, i) => settle(i));
    for (let attempt = 0; ; attempt++) {
      for (const [i, h] of this.spec.hooks.entries()) {
        if (chosen[i] >= h.alternatives.length && h.required) {
          const why = `(${skipped[i].join('; ')})`;
          const cause = decidingCause(causes[i]);
          if (cause === 'privilege') throw new NetbpfError('privilege', `${this.spec.tool}: permission denied attaching ${h.feature} ${why}`);
          if (cause === 'environment') throw new NetbpfError('kernel', `${this.spec.tool}: cannot trace ${h.feature} in this environment ${why}`);
          throw new NetbpfError('kernel', `${this.spec.tool}: no way to trace ${h.feature} on this kernel ${why}`);
        }
      }
      let obj: NativeBpfObject | null = null;
      let failing: string | null = null;
      try {
        obj = new api.BpfObject(path);
        for (const p of this.spec.disabledPrograms ?? []) obj.setAutoload(p, false);
        for (const [i, h] of this.spec.hooks.entries()) {
          h.alternatives.forEach((alt, j) => { for (const p of alt.programs) obj!.setAutoload(p, j === chosen[i]); });
          const alt = h.alternatives[chosen[i]];
          if (alt?.prepare) for (const p of alt.programs) alt.prepare(obj, p);
        }
        obj.setMapMaxEntries('events', this.opts.ringBufferBytes);
        for (const [map, n] of Object.entries(this.spec.mapSizes ?? {})) obj.setMapMaxEntries(map, n);
        for (const [map, f] of Object.entries(this.spec.mapFlags ?? {})) obj.setMapFlags(map, f);
        const wakeup = Buffer.alloc(8);
        wakeup.writeBigUInt64LE(BigInt(Math.floor(this.opts.wakeupBytes)));
        obj.setConst('wakeup_bytes', wakeup);
        for (const [name, value] of Object.entries(this.spec.constants)) obj.setConst(name, value);
        const shared = this.opts.shared;
        for (const m of this.spec.sharedMaps ?? []) shared?.reuse(obj, m);
        obj.load();
        for (const m of this.spec.sharedMaps ?? []) shared?.adopt(obj, m);
        this.programs = [];
        for (const [i, h] of this.spec.hooks.entries()) {
          const alt = h.alternatives[chosen[i]];
          if (!alt) continue;
          for (const p of alt.programs) {
            failing = p;
            if (alt.attach) alt.attach(obj, p);
            else obj.attach(p);
            this.programs.push(p);
          }
        }
        failing = null;
        this.obj = obj;
        break;
      } catch (err) {
        obj?.close();
        const e = err as { libbpfLog?: string; message?: string; code?: string; errno?: number; reason?: string };
        // Which program failed: the one being attached, or the one libbpf names in its load log.
        const named = failing ?? /prog '([\w]+)': (?:BPF program load failed|failed to load|-- BEGIN PROG LOAD LOG)/.exec(e.libbpfLog ?? '')?.[1] ?? null;
        const i = this.spec.hooks.findIndex((h, k) => named !== null && !!h.alternatives[chosen[k]]?.programs.includes(named));
        if (i < 0 || attempt > 20) throw fromAddonError(`${this.spec.tool}: ${failing ? 'attach' : 'load'}`, err);
        // EACCES on attach: a classic tracepoint's id is read from tracefs, which a non-root user may not read.
        const denied = failing !== null && e.errno === 13;
        advance(i, denied ? 'privilege' : 'kernel', `${failing ? 'attach' : 'load'} refused (${e.reason ?? e.code ?? e.message}${denied ? `; ${TRACEFS_ACCESS_HINT}` : ''})`);
        settle(i);
      }
    }
    const obj = this.obj!;
    this.ring = new api.RingBuffer(obj.mapFd('events'), (batch) => this.deliver(batch), { pollMs: this.opts.pollMs });
    const hooks = this.spec.hooks.map((h, i): HookChoice => {
      const alt = h.alternatives[chosen[i]];
      const choice: HookChoice = { feature: h.feature, hook: alt?.hook ?? null, program: alt?.programs[0] ?? null, programs: [...(alt?.programs ?? [])], skipped: skipped[i] };
      if (!alt) choice.unavailable = decidingCause(causes[i]);
      return choice;
    });
    this.info = { hooks, startupMs: performance.now() - t0 };
    if (startChannel.hasSubscribers) startChannel.publish({ tool: this.spec.tool, hooks });
    return this.info;
  }

  private deliver(batch: ArrayBuffer): void {
    const view = new DataView(batch);
    const size = this.spec.recordSize;
    const events: E[] = [];
    for (let off = 0; off + 4 <= batch.byteLength; ) {
      const len = view.getUint32(off, true);
      if (len === size) {
        const e = this.spec.decode(view, off + 4);
        if (!this.spec.accept || this.spec.accept(e)) events.push(e);
      } else this.counts.malformed++;
      off += 4 + len;
    }
    this.emit(events);
  }

  /** Decodes `count` records packed back to back in `bytes` (e.g. map values), keeps those `accept` takes and hands
   * them on like the ring buffer's; returns how many were handed on. */
  protected emitPacked(bytes: Buffer, count: number): number {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const events: E[] = [];
    for (let i = 0; i < count; i++) {
      const e = this.spec.decode(view, i * this.spec.recordSize);
      if (!this.spec.accept || this.spec.accept(e)) events.push(e);
    }
    this.emit(events);
    return events.length;
  }

  /** Hands decoded events to listeners and iterators (subclasses also feed events from other sources). */
  protected emit(events: E[]): void {
    if (events.length === 0) return;
    this.counts.events += events.length;
    for (const l of this.listeners) l(events);
    if (this.iterating) {
      if (this.queued + events.length > this.opts.maxQueuedEvents) {
        this.counts.droppedByConsumer += events.length;
      } else {
        this.queue.push(events);
        this.queued += events.length;
      }
      this.waiting?.();
    }
  }

  /** Whether records are counted in kernel maps (summaries) rather than sent: `lost` then means maps full. */
  get countsInKernel(): boolean {
    return this.spec.kernelEvents !== undefined;
  }

  /** Kernel and user-space counters; exact after stop(). */
  counters(): TraceCounters {
    if (this.finalCounters) return this.finalCounters;
    let recursionMisses = 0, recursionSkipped = 0;
    const harmless = this.spec.harmlessMisses ?? [];
    if (this.obj) {
      for (const p of this.programs) {
        const n = this.obj.programInfo(p).recursionMisses;
        if (harmless.some((h) => p.startsWith(h))) recursionSkipped += n;
        else recursionMisses += n;
      }
    }
    const lost = this.kernelCount('lost');
    const kernelEvents = this.spec.kernelEvents?.() ?? 0;
    return { ...this.counts, events: this.counts.events + kernelEvents, lost, recursionMisses, ...(harmless.length ? { recursionSkipped } : {}) };
  }

  /** Recursion misses per attached program, including those that lose nothing (spec.harmlessMisses); exact after stop(). */
  programMisses(): Record<string, number> {
    if (this.finalProgramMisses) return this.finalProgramMisses;
    const out: Record<string, number> = {};
    if (this.obj) for (const p of this.programs) out[p] = this.obj.programInfo(p).recursionMisses;
    return out;
  }

  /** A per-CPU u64 counter map of the object (`lost`, or one named in the spec's kernelCounters), summed over
   * CPUs; 0 before start; exact and kept after stop(). */
  kernelCount(map: string): number {
    const final = this.finalKernelCounts?.get(map);
    if (final !== undefined) return final;
    if (!this.obj) return 0;
    const per = this.obj.mapLookup(map, Buffer.alloc(4));
    let n = 0;
    if (per) for (let o = 0; o + 8 <= per.length; o += 8) n += Number(per.readBigUInt64LE(o));
    return n;
  }

  /** Read access to the tool's other maps while running. */
  object(): NativeBpfObject {
    if (!this.obj) throw new NetbpfError('runtime', `${this.spec.tool}: not started`);
    return this.obj;
  }

  /** Detaches after delivering every record already in the ring buffer; idempotent. */
  stop(): Promise<void> {
    if (!this.stopPromise) this.stopPromise = this.stopNow();
    return this.stopPromise;
  }

  private async stopNow(): Promise<void> {
    if (this.startPromise) await this.startPromise.catch(() => undefined);
    // Detach first: nothing new is produced, so the final drain below is complete and the lost count final.
    this.obj?.detachAll();
    // The ring buffer's stop() resolves after its worker delivered every record it took from the buffer.
    if (this.ring) await this.ring.stop();
    if (this.obj) {
      this.spec.beforeClose?.(this.obj);
      const counts = new Map<string, number>();
      for (const m of ['lost', ...(this.spec.kernelCounters ?? [])]) counts.set(m, this.kernelCount(m));
      this.finalCounters = this.counters();
      this.finalProgramMisses = this.programMisses();
      this.finalKernelCounts = counts;
      this.obj.close();
      this.obj = null;
    }
    this.ring = null;
    this.waiting?.();
  }


  /** Decoded events in batches, until stop() or the signal. */
  async *batches(): AsyncGenerator<E[]> {
    this.iterating = true;
    await this.start();
    try {
      for (;;) {
        while (this.queue.length) {
          const b = this.queue.shift()!;
          this.queued -= b.length;
          yield b;
        }
        if (this.stopPromise) {
          await this.stopPromise;
          if (!this.queue.length) return;
          continue;
        }
        await new Promise<void>((resolve) => { this.waiting = resolve; });
        this.waiting = null;
      }
    } finally {
      this.iterating = false;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<E> {
    for await (const batch of this.batches()) yield* batch;
  }
}

/** Throws unless every constant is a read-only global of the tool's object, of its size (the generated contract). */
export function checkConstants(spec: Pick<TraceSpec<unknown>, 'tool' | 'constants' | 'rodata'>): void {
  if (!spec.rodata) return;
  const sizes: Readonly<Record<string, number>> = { ...NETBPF_RODATA, ...spec.rodata };
  for (const [name, value] of Object.entries(spec.constants)) {
    const size = sizes[name];
    if (size === undefined) throw new NetbpfError('runtime', `${spec.tool}: the BPF object has no read-only global ${name}`);
    if (value.length !== size) throw new NetbpfError('runtime', `${spec.tool}: constant ${name} is ${value.length} bytes, the BPF object's is ${size}`);
  }
}
