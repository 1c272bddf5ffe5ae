/**
 * netbpf conntrack: conntrack entries created and destroyed (bpf/conntrack.bpf.c, or native ctnetlink where no BPF
 * hook sees them: addon/ctnetlink.cc writes the same struct ct_event records), with both tuples (DNAT/SNAT
 * visible), TCP state, zone, mark, counters and lifetime; each watched namespace's table and the kernel's
 * conntrack statistics; a per-destination aggregator.
 */
export { CONNTRACK_LAYOUT, decodeConntrack, entryKey, forEachRecord, recordFilter, tcpConntrackStates } from './decode.js';
export type { ConntrackEntry, ConntrackEvent } from './decode.js';
export { conntrack, conntrackSpec, ConntrackTrace } from './trace.js';
export type { ConntrackOptions } from './trace.js';
export { conntrackSysctls, netlinkCounts, readConntrackStats } from './stats.js';
export type { ConntrackPressure, ConntrackStats, NetlinkCounts, NetnsChange } from './stats.js';
export { conntrackSnapshot, startNatFeed } from './snapshot.js';
export { ConntrackAggregator } from './aggregator.js';
export type { ConntrackRow, ConntrackSummary } from './aggregator.js';
export { CONNTRACK_HEADER, conntrackEventJson, conntrackLine, renderConntrackSummary } from './render.js';
