/**
 * netbpf retrans, the trace: bpf/retrans.bpf.o with its hooks (tcp_retransmit_skb, tcp_retransmit_synack, and
 * inet_sock_set_state for the owner) and kernel-side filters.
 */
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { preferHook, tracepoint, type HookPreference, type HookSpec } from '../../core/hooks.js';
import { KERNEL_OTHER_KEYS, type KernelAggregation } from '../../core/kernel-summary.js';
import { ClockMapper } from '../../core/record.js';
import { Trace, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { RETRANS_EVENT_LAYOUT, RETRANS_RODATA } from './bpf.gen.js';
import { decodeRetrans, type RetransEvent } from './decode.js';

export interface RetransOptions extends FilterOptions, TraceOptions {
  /** Force how retransmits are hooked instead of the best available: "tp_btf", "raw_tp" or "tracepoint" (classic: needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
  /** Another trace of the session (TraceOptions.shared) keeps the shared owner map (life does): leave out the
   * programs that would keep it here (one fewer on inet_sock_set_state). */
  ownersKeptElsewhere?: boolean;
}

/** The spec of bpf/retrans.bpf.o; with `kernel`, a summary-only run (see retransSummary). */
export function retransSpec(opts: RetransOptions = {}, kernel?: KernelAggregation): TraceSpec<RetransEvent> {
  const clock = new ClockMapper();
  const owners: HookSpec[] = opts.ownersKeptElsewhere ? [] : [
    { feature: 'process attribution (connect)', required: false, alternatives: tracepoint('sock', 'inet_sock_set_state', 'handle_set_state') },
    { feature: 'process attribution (socket destruction)', required: false, alternatives: tracepoint('tcp', 'tcp_destroy_sock', 'handle_destroy') },
  ];
  return {
    tool: 'retrans',
    recordSize: RETRANS_EVENT_LAYOUT.size,
    constants: {
      ...filterConstants(opts), aggregate_in_kernel: Buffer.from([kernel ? 1 : 0]), agg_by_cgroup: Buffer.from([kernel?.byCgroup ? 1 : 0]),
      agg_session: Buffer.from([kernel?.session ? 1 : 0]),
    },
    rodata: RETRANS_RODATA,
    mapSizes: { retrans_agg: kernel ? kernel.keys : 1, retrans_agg_other: kernel ? KERNEL_OTHER_KEYS : 1 },
    sharedMaps: ['owners'],
    beforeClose: kernel ? (obj) => kernel.beforeClose(obj) : undefined,
    kernelEvents: kernel ? () => kernel.events() : undefined,
    disabledPrograms: opts.ownersKeptElsewhere ? ['handle_set_state', 'handle_destroy'].flatMap((p) => [`${p}_btf`, `${p}_raw`, `${p}_tp`]) : undefined,
    hooks: [
      { feature: 'retransmits', required: true, alternatives: preferHook(tracepoint('tcp', 'tcp_retransmit_skb', 'handle_retransmit'), opts.hook) },
      { feature: 'SYN-ACK retransmits', required: false, alternatives: tracepoint('tcp', 'tcp_retransmit_synack', 'handle_retransmit_synack') },
      ...owners,
    ],
    decode: (view, o) => decodeRetrans(view, o, clock),
  };
}

/** Traces TCP retransmits: `for await (const ev of retrans({ remotePort: 443 })) ...`. */
export function retrans(opts: RetransOptions = {}): Trace<RetransEvent> {
  return new Trace(retransSpec(opts), opts);
}
