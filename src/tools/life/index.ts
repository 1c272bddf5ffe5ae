/**
 * netbpf life: TCP connection lifetimes (bpf/life.bpf.c), like tcplife: one `closed` event per connection with
 * bytes each way, duration, retransmits, RTT, owner process and close reason; an `established` event when the
 * handshake completes. The object, its generated contract (bpf.gen.ts), decoder, trace, aggregator, renderers.
 */
export { LIFE_LAYOUT, CLOSE_REASONS, closeReason, decodeLife, payloadBytes } from './decode.js';
export type { CloseReason, LifeClosedEvent, LifeDirection, LifeEstablishedEvent, LifeEvent, LifeOwnerSource } from './decode.js';
export { life, lifeSpec, LifeTrace } from './trace.js';
export type { LifeOptions } from './trace.js';
export { LifeAggregator, lifeKey } from './aggregator.js';
export { lifeSummary, LifeKernelReader, decodeLifeKey, lifeBulk } from './kernel.js';
export type { LifeKey, LifeBulk, LifeSummaryOptions } from './kernel.js';
export type { LifeAggregatorOptions, LifeRow, LifeSummary } from './aggregator.js';
export { csvHeader, csvLine, lifeEventJson, lifeHeader, lifeLine, renderLifeSummary } from './render.js';
export type { LifeFormat } from './render.js';
