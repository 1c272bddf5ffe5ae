/**
 * netbpf connect: TCP connect attempts (bpf/connect.bpf.c): `established` events with the SYN -> ESTABLISHED
 * latency, `failed` events classified as refused / timeout / unreachable / aborted / other, SYN retransmits per
 * attempt. The object, its generated contract (bpf.gen.ts), decoder, trace, aggregator, renderers.
 */
export { CONNECT_LAYOUT, FAILURE_CLASSES, classifyFailure, decodeConnect } from './decode.js';
export type { ConnectEstablishedEvent, ConnectEvent, ConnectFailedEvent, FailureClass } from './decode.js';
export { connect, connectSpec } from './trace.js';
export type { ConnectOptions } from './trace.js';
export { ConnectAggregator } from './aggregator.js';
export { connectSummary, ConnectKernelReader, decodeConnectKey, connectBulk } from './kernel.js';
export type { ConnectKey, ConnectBulk, ConnectSummaryOptions } from './kernel.js';
export type { ConnectAggregatorOptions, ConnectRow, ConnectSummary } from './aggregator.js';
export { CONNECT_HEADER, connectEventJson, connectLine, renderConnectSummary } from './render.js';
