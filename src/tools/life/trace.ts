/**
 * netbpf life, the trace: bpf/life.bpf.o with its hooks (inet_sock_set_state, resets, and the first
 * recvmsg/sendmsg that names an accepted connection's owner), filters, and the count of untracked connections.
 */
import { usageError } from '../../core/errors.js';
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { fentry, hasTracepoint, kprobe, preferHook, tracepoint, type HookPreference } from '../../core/hooks.js';
import type { NativeBpfObject } from '../../core/addon.js';
import { ClockMapper } from '../../core/record.js';
import { KERNEL_OTHER_KEYS, type KernelAggregation } from '../../core/kernel-summary.js';
import { Trace, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { LIFE_EVENT_LAYOUT, LIFE_RODATA } from './bpf.gen.js';
import { decodeLife, type LifeEvent } from './decode.js';

export interface LifeOptions extends FilterOptions, TraceOptions {
  /** Only connections owned by this process. Filtered in user space: an accepted connection's owner is
   * learned after the handshake, so the kernel cannot drop its events early. */
  pid?: number;
  /** Force how state changes are hooked instead of the best available (the classic tracepoint needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
  /** Most live connections tracked at once (kernel hash map); more are counted as untracked. Default 65536. */
  maxConnections?: number;
  /** Also a record when each handshake completes (type 'established'); by default only each end is recorded. */
  established?: boolean;
  /** One state-change program instead of a process-context and a softirq one (for measuring what the split saves). */
  singleStateProgram?: boolean;
}

/** The state-change programs (bpf/life.bpf.c): process context and softirq apart, so that a softirq interrupting
 * one re-enters the other (recursion misses are per program). */
const SPLIT_STATE_PROGRAMS = ['handle_set_state_task', 'handle_set_state_soft'];

/** The life spec's part of in-kernel aggregation: map sizes and constants. */
export function lifeKernelAggregation(kernel: KernelAggregation | undefined): { mapSizes: Record<string, number>; constants: Record<string, Buffer> } {
  return {
    mapSizes: { life_agg: kernel ? kernel.keys : 1, life_agg_other: kernel ? KERNEL_OTHER_KEYS : 1 },
    constants: {
      aggregate_in_kernel: Buffer.from([kernel ? 1 : 0]), agg_by_cgroup: Buffer.from([kernel?.byCgroup ? 1 : 0]),
      agg_session: Buffer.from([kernel?.session ? 1 : 0]),
    },
  };
}

/** The spec of bpf/life.bpf.o; with `kernel`, a summary-only run (see lifeSummary). */
export function lifeSpec(opts: LifeOptions = {}, kernel?: KernelAggregation): TraceSpec<LifeEvent> {
  const clock = new ClockMapper();
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid < 1)) throw usageError(`invalid pid ${opts.pid}: must be a positive integer`);
  const agg = lifeKernelAggregation(kernel);
  return {
    tool: 'life',
    recordSize: LIFE_EVENT_LAYOUT.size,
    constants: {
      ...filterConstants(opts), ...agg.constants, emit_established: Buffer.from([opts.established ? 1 : 0]),
      // Ends wait for a late reset only where the socket's destruction can release them.
      hold_for_reset: Buffer.from([hasTracepoint('tcp_destroy_sock') ? 1 : 0]),
    },
    rodata: LIFE_RODATA,
    mapSizes: { ...agg.mapSizes, ...(opts.maxConnections ? { births: opts.maxConnections } : {}) },
    sharedMaps: ['owners'],
    // A softirq that re-enters the process-context program skips work that program would not do (bpf/life.bpf.c).
    harmlessMisses: opts.singleStateProgram ? [] : ['handle_set_state_task'],
    // The state-change programs not used by this choice (single or split) are not loaded.
    disabledPrograms: (opts.singleStateProgram ? SPLIT_STATE_PROGRAMS : ['handle_set_state']).flatMap((p) => [`${p}_btf`, `${p}_raw`]),
    beforeClose: kernel ? (obj) => kernel.beforeClose(obj) : undefined,
    kernelEvents: kernel ? () => kernel.events() : undefined,
    hooks: [
      { feature: 'connection state changes', required: true, alternatives: preferHook(tracepoint('sock', 'inet_sock_set_state', 'handle_set_state', opts.singleStateProgram ? {} : { split: SPLIT_STATE_PROGRAMS }), opts.hook) },
      { feature: 'resets sent', required: false, alternatives: tracepoint('tcp', 'tcp_send_reset', 'handle_send_reset') },
      { feature: 'resets received', required: false, alternatives: tracepoint('tcp', 'tcp_receive_reset', 'handle_receive_reset') },
      { feature: 'socket destruction (resets sent after close, owners forgotten)', required: false, alternatives: tracepoint('tcp', 'tcp_destroy_sock', 'handle_destroy') },
      // The sock tracepoints exist since 6.3; before, TCP's own recvmsg/sendmsg (fentry, else kprobe) serve.
      {
        feature: 'owner of accepted connections (recvmsg)', required: false,
        alternatives: [...tracepoint('sock', 'sock_recv_length', 'handle_recv_length'), fentry('tcp_recvmsg', 'handle_recvmsg_fentry'), kprobe('tcp_recvmsg', 'handle_recvmsg_kprobe')],
      },
      {
        feature: 'owner of accepted connections (sendmsg)', required: false,
        alternatives: [...tracepoint('sock', 'sock_send_length', 'handle_send_length'), fentry('tcp_sendmsg', 'handle_sendmsg_fentry'), kprobe('tcp_sendmsg', 'handle_sendmsg_kprobe')],
      },
    ],
    decode: (view, o) => decodeLife(view, o, clock),
    accept: opts.pid === undefined ? undefined : (e) => e.pid === opts.pid,
    kernelCounters: ['untracked'],
  };
}

/** A running life trace; `untracked()` counts connections the kernel map had no room for. */
export class LifeTrace extends Trace<LifeEvent> {
  /** Ends still held for a late reset when the trace stopped, delivered then (as events, counted or not). */
  heldAtStop = 0;

  constructor(opts: LifeOptions = {}, kernel?: KernelAggregation) {
    super(lifeSpec(opts, kernel), opts);
    // An end waits in `closing` for a reset its close may still send, until its socket is destroyed; a socket not
    // yet destroyed when the trace stops (its owner still holds it, or the stop came within that moment) would take
    // its end with the object. Delivered as they stand, before the last read of the summary maps.
    const readMaps = this.spec.beforeClose;
    this.spec.beforeClose = (obj) => {
      this.deliverHeld(obj);
      readMaps?.(obj);
    };
  }

  private deliverHeld(obj: NativeBpfObject): void {
    let dump;
    try { dump = obj.mapDump('closing'); } catch { return; } // an object without the map (older builds)
    this.heldAtStop = this.emitPacked(dump.values, dump.count);
  }

  /** Connections not tracked because the kernel map was full; exact after stop(). */
  untracked(): number {
    return this.kernelCount('untracked');
  }
}

/** Traces TCP connection lifetimes: `for await (const ev of life()) if (ev.type === 'closed') ...`. */
export function life(opts: LifeOptions = {}): LifeTrace {
  return new LifeTrace(opts);
}
