/**
 * netbpf retrans: live TCP retransmits (bpf/retrans.bpf.c). A tool is its BPF object, its generated record contract
 * (bpf.gen.ts), a decoder (decode.ts), its trace (trace.ts: hooks and filters), an aggregator and renderers.
 */
export { RETRANS_LAYOUT, RETRANS_KINDS, countedByKernel, decodeRetrans } from './decode.js';
export type { RetransEvent, RetransKind } from './decode.js';
export { retrans, retransSpec } from './trace.js';
export type { RetransOptions } from './trace.js';
export { RetransAggregator } from './aggregator.js';
export { retransSummary, RetransKernelReader, decodeRetransKey, retransBulk } from './kernel.js';
export type { RetransKey, RetransBulk, RetransSummaryOptions } from './kernel.js';
export type { AggregatorOptions, RetransRow, RetransSummary } from './aggregator.js';
export { RETRANS_HEADER, retransLine, retransEventJson, renderRetransSummary } from './render.js';
