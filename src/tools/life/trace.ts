/**
 * netbpf life, the trace: bpf/life.bpf.o with its hooks (inet_sock_set_state, resets, and the first
 * recvmsg/sendmsg that names an accepted connection's owner), filters, and the count of untracked connections.
 */
import { usageError } from '../../core/errors.js';
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { fentry, kprobe, preferHook, tracepoint, type HookPreference } from '../../core/hooks.js';
import { ClockMapper } from '../../core/record.js';
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
}

export function lifeSpec(opts: LifeOptions = {}): TraceSpec<LifeEvent> {
  const clock = new ClockMapper();
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid < 1)) throw usageError(`invalid pid ${opts.pid}: must be a positive integer`);
  return {
    tool: 'life',
    recordSize: LIFE_EVENT_LAYOUT.size,
    constants: filterConstants(opts),
    rodata: LIFE_RODATA,
    mapSizes: opts.maxConnections ? { births: opts.maxConnections } : undefined,
    hooks: [
      { feature: 'connection state changes', required: true, alternatives: preferHook(tracepoint('sock', 'inet_sock_set_state', 'handle_set_state'), opts.hook) },
      { feature: 'resets sent', required: false, alternatives: tracepoint('tcp', 'tcp_send_reset', 'handle_send_reset') },
      { feature: 'resets received', required: false, alternatives: tracepoint('tcp', 'tcp_receive_reset', 'handle_receive_reset') },
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
  constructor(opts: LifeOptions = {}) {
    super(lifeSpec(opts), opts);
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
