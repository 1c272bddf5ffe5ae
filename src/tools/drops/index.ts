/**
 * netbpf drops: every packet the kernel drops, with the kernel's own drop reason (bpf/drops.bpf.c), per remote
 * endpoint x reason and per destination x reason; socket-teardown purges apart from packets lost on the way.
 * The object, its generated contract (bpf.gen.ts), reasons from BTF, decoder, trace, aggregators (events, or
 * counts kept in the kernel), renderers.
 */
export { DropReasons, DROP_REASON_UNAVAILABLE, PURGE_FUNCTIONS, PURGE_REASONS, dropCategory } from './reasons.js';
export type { DropCategory } from './reasons.js';
export { DROPS_LAYOUT, DROP_FLAGS, decodeDrop, dropSides, tcpFlagsText } from './decode.js';
export type { Direction, DropDecodeContext, DropEvent, DropSide } from './decode.js';
export { dropReasonsNote, drops, dropsConstants, dropsSpec } from './trace.js';
export type { DropsOptions } from './trace.js';
export { DropsAggregator } from './aggregator.js';
export type { DropBulk, DropRow, DropsAggregatorOptions, DropsSummary, ReasonTotal, RemoteCount, RemoteCounts, RemoteView } from './aggregator.js';
export { DROPS_AGG_VALUE_LAYOUT, DROPS_DEST_BUCKET_LAYOUT, DROPS_DEST_SLOT_LAYOUT, DROPS_TOP_BUCKET_LAYOUT, DROPS_TOP_MAPS, DROPS_TOP_SLOT_LAYOUT, DROPS_VIEW_KEY_LAYOUT, destinationDump, dropsSummary, DropsSummaryTrace, KernelDropsReader, KernelSessionDropsReader, DROPS_SESSION_KEY_LAYOUT } from './kernel-summary.js';
export type { DropsSummaryOptions, DropSessionSink } from './kernel-summary.js';
export { DROPS_HEADER, dropJson, dropLine, renderDropsSummary } from './render.js';
