/**
 * netbpf connect, the trace: bpf/connect.bpf.o with its hooks (inet_sock_set_state, SYN retransmits, resets,
 * error reports, connect()/getsockopt() at the syscalls) and filters (including the connecting pid).
 */
import { usageError } from '../../core/errors.js';
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { fentry, kprobe, preferHook, syscalls, tracepoint, type HookPreference } from '../../core/hooks.js';
import { ClockMapper } from '../../core/record.js';
import { constU32 } from '../../core/rodata.js';
import { KERNEL_OTHER_KEYS, type KernelAggregation } from '../../core/kernel-summary.js';
import { Trace, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { CONNECT_EVENT_LAYOUT, CONNECT_RODATA } from './bpf.gen.js';
import { decodeConnect, type ConnectEvent } from './decode.js';

export interface ConnectOptions extends FilterOptions, TraceOptions {
  /** Only connects by this process (filtered in the kernel: the caller is known at connect()). */
  pid?: number;
  /** Force how state changes and retransmits are hooked (the classic tracepoint needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
  /** Another trace of the session (TraceOptions.shared) keeps the shared owner map (life does): do not write it. */
  ownersKeptElsewhere?: boolean;
}

/** The spec of bpf/connect.bpf.o; with `kernel`, a summary-only run (see connectSummary). */
export function connectSpec(opts: ConnectOptions = {}, kernel?: KernelAggregation): TraceSpec<ConnectEvent> {
  const clock = new ClockMapper();
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid < 1 || opts.pid > 0xffffffff)) throw usageError(`invalid pid ${opts.pid}: must be a positive integer`);
  return {
    tool: 'connect',
    recordSize: CONNECT_EVENT_LAYOUT.size,
    constants: {
      ...filterConstants(opts), filter_pid: constU32(opts.pid ?? 0), maintain_owners: Buffer.from([opts.ownersKeptElsewhere ? 0 : 1]),
      aggregate_in_kernel: Buffer.from([kernel ? 1 : 0]), agg_by_cgroup: Buffer.from([kernel?.byCgroup ? 1 : 0]),
      agg_session: Buffer.from([kernel?.session ? 1 : 0]),
    },
    rodata: CONNECT_RODATA,
    mapSizes: { connect_agg: kernel ? kernel.keys : 1, connect_agg_other: kernel ? KERNEL_OTHER_KEYS : 1 },
    sharedMaps: ['owners'],
    beforeClose: kernel ? (obj) => kernel.beforeClose(obj) : undefined,
    kernelEvents: kernel ? () => kernel.events() : undefined,
    hooks: [
      { feature: 'connect outcomes', required: true, alternatives: preferHook(tracepoint('sock', 'inet_sock_set_state', 'handle_set_state'), opts.hook) },
      { feature: 'SYN retransmits', required: false, alternatives: preferHook(tracepoint('tcp', 'tcp_retransmit_skb', 'handle_retransmit'), opts.hook) },
      { feature: 'resets received', required: false, alternatives: tracepoint('tcp', 'tcp_receive_reset', 'handle_receive_reset') },
      // The classic record has no socket pointer: tp_btf or raw_tp only. Before 5.14 (no such tracepoint) the
      // callback it replaced, sock_def_error_report; sk_err at close is the last fallback.
      {
        feature: 'error reports', required: false,
        alternatives: [
          ...tracepoint('sock', 'inet_sk_error_report', 'handle_error_report', { classic: false }),
          fentry('sock_def_error_report', 'handle_error_report_fentry'), kprobe('sock_def_error_report', 'handle_error_report_kprobe'),
        ],
      },
      {
        feature: 'connect() and getsockopt(SO_ERROR) results (failures before SYN, errors the application read)', required: false,
        alternatives: syscalls('handle_sys_enter', 'handle_sys_exit', {
          names: ['connect', 'getsockopt'],
          programs: ['handle_connect_enter_tp', 'handle_connect_exit_tp', 'handle_getsockopt_enter_tp', 'handle_getsockopt_exit_tp'],
        }),
      },
    ],
    decode: (view, o) => decodeConnect(view, o, clock),
  };
}

/** Traces TCP connect attempts: `for await (const ev of connect()) if (ev.type === 'failed') ...`. */
export function connect(opts: ConnectOptions = {}): Trace<ConnectEvent> {
  return new Trace(connectSpec(opts), opts);
}
