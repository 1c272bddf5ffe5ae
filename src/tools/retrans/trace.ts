/**
 * netbpf retrans, the trace: bpf/retrans.bpf.o with its hooks (tcp_retransmit_skb, tcp_retransmit_synack, and
 * inet_sock_set_state for the owner) and kernel-side filters.
 */
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { preferHook, tracepoint, type HookPreference } from '../../core/hooks.js';
import { ClockMapper } from '../../core/record.js';
import { Trace, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { RETRANS_EVENT_LAYOUT, RETRANS_RODATA } from './bpf.gen.js';
import { decodeRetrans, type RetransEvent } from './decode.js';

export interface RetransOptions extends FilterOptions, TraceOptions {
  /** Force how retransmits are hooked instead of the best available: "tp_btf", "raw_tp" or "tracepoint" (classic: needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
}

export function retransSpec(opts: RetransOptions = {}): TraceSpec<RetransEvent> {
  const clock = new ClockMapper();
  return {
    tool: 'retrans',
    recordSize: RETRANS_EVENT_LAYOUT.size,
    constants: filterConstants(opts),
    rodata: RETRANS_RODATA,
    hooks: [
      { feature: 'retransmits', required: true, alternatives: preferHook(tracepoint('tcp', 'tcp_retransmit_skb', 'handle_retransmit'), opts.hook) },
      { feature: 'SYN-ACK retransmits', required: false, alternatives: tracepoint('tcp', 'tcp_retransmit_synack', 'handle_retransmit_synack') },
      { feature: 'process attribution (connect)', required: false, alternatives: tracepoint('sock', 'inet_sock_set_state', 'handle_set_state') },
    ],
    decode: (view, o) => decodeRetrans(view, o, clock),
  };
}

/** Traces TCP retransmits: `for await (const ev of retrans({ remotePort: 443 })) ...`. */
export function retrans(opts: RetransOptions = {}): Trace<RetransEvent> {
  return new Trace(retransSpec(opts), opts);
}
