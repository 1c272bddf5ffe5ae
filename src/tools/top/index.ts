/**
 * netbpf top: retrans, drops, connect (and life, conntrack when asked) run together and correlated into one row
 * per destination: connections, connect failures by class, connect latency, retransmitted/sent segments, drops on
 * this host by reason, conntrack entries, a per-interval trouble history, and diagnoses weighed from the evidence
 * (with host evidence: listeners, CLOSE_WAIT sockets, stalled windows, conntrack).
 */
export { byText, connectionKey, destinationKey, parseGroupBy, serviceName } from './group-by.js';
export type { GroupBy } from './group-by.js';
export { sortRows, TopAggregator, TOP_SORT_KEYS } from './aggregator.js';
export type { TopAggregatorOptions, TopRow, TopSortKey, TopSummary } from './aggregator.js';
export { top, TopSession } from './session.js';
export type { TopBulk, TopOptions, TopStartInfo, TopToolName } from './session.js';
export { renderTop, sparkline } from './render.js';
export { HostEvidenceCollector, kernelConntrackSource } from './host.js';
export type { SocketSource, ConntrackSource, ConntrackTable } from './host.js';
export type { RenderTopOptions } from './render.js';
