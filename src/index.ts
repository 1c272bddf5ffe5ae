/** netbpf: eBPF TCP tracing as a library. Each tool is a function returning a Trace (async iterable of
 * typed events, with counters for events seen and lost) plus an aggregator usable on its own. */
export { retrans, retransSpec, decodeRetrans, countedByKernel, RetransAggregator, retransSummary, RetransKernelReader, decodeRetransKey, RETRANS_LAYOUT, RETRANS_KINDS, RETRANS_HEADER, retransLine, retransEventJson, renderRetransSummary } from './tools/retrans/index.js';
export type { RetransEvent, RetransKind, RetransOptions, RetransRow, RetransSummary, AggregatorOptions, RetransKey, RetransBulk, RetransSummaryOptions } from './tools/retrans/index.js';
export { conntrack, conntrackSpec, decodeConntrack, ConntrackTrace, ConntrackAggregator, CONNTRACK_LAYOUT, readConntrackStats, conntrackSysctls, conntrackSnapshot, startNatFeed, netlinkCounts, CONNTRACK_HEADER, conntrackEventJson, conntrackLine, renderConntrackSummary } from './tools/conntrack/index.js';
export type { ConntrackEvent, ConntrackEntry, ConntrackOptions, ConntrackRow, ConntrackSummary, ConntrackStats, ConntrackPressure, NetnsChange, NetlinkCounts } from './tools/conntrack/index.js';
export { NatResolver, isDnat } from './core/nat.js';
export type { NatEntry, NatTarget, CtTuple } from './core/nat.js';
export { resolveNetns, scanNetns, readNetnsTable } from './core/ctnetlink.js';
export type { NetnsInfo, NetnsPlan, NetnsTableStats } from './core/ctnetlink.js';
export { Trace } from './core/trace.js';
export { SharedMaps } from './core/shared-maps.js';
export { KernelSummaryTrace } from './core/kernel-summary.js';
export type { KernelAggregation, BulkHistogram } from './core/kernel-summary.js';
export type { TraceOptions, TraceCounters, TraceSpec, HookChoice, HookSpec, StartInfo } from './core/trace.js';
export type { FilterOptions } from './core/filters.js';
export { NetbpfError, EXIT_CODES } from './core/errors.js';
export type { ErrorKind } from './core/errors.js';
export { Log2Histogram, renderHistogram } from './core/histogram.js';
export { ListenQueueCounters, parseTcpExt } from './core/listen-queue.js';
export type { ListenQueueCounts } from './core/listen-queue.js';
export { TopKTable } from './core/top-k.js';
export type { TopKRead, TopKRow } from './core/top-k.js';
export type { HistogramData } from './core/histogram.js';
export { parseCidr, formatAddress, formatEndpoint } from './core/address.js';
export type { Family, Cidr } from './core/address.js';
export { drops, dropsSpec, decodeDrop, dropsConstants, dropReasonsNote, DropsAggregator, DropReasons, DROPS_LAYOUT, DROPS_VIEW_KEY_LAYOUT, DROPS_AGG_VALUE_LAYOUT, DROPS_TOP_BUCKET_LAYOUT, DROPS_TOP_SLOT_LAYOUT, DROPS_TOP_MAPS, dropsSummary, DropsSummaryTrace, KernelDropsReader, KernelSessionDropsReader, DROPS_SESSION_KEY_LAYOUT, DROP_FLAGS, DROP_REASON_UNAVAILABLE, PURGE_REASONS, PURGE_FUNCTIONS, dropCategory, tcpFlagsText, DROPS_HEADER, dropJson, dropLine, renderDropsSummary } from './tools/drops/index.js';
export type { DropEvent, DropsOptions, DropRow, DropsSummary, DropCategory, Direction, DropDecodeContext, ReasonTotal, DropsAggregatorOptions, DropBulk, DropsSummaryOptions, RemoteCount, RemoteCounts, RemoteView } from './tools/drops/index.js';
export { Kallsyms } from './core/kallsyms.js';
export { life, lifeSpec, decodeLife, closeReason, payloadBytes, lifeKey, LifeTrace, LifeAggregator, lifeSummary, LifeKernelReader, decodeLifeKey, LIFE_LAYOUT, CLOSE_REASONS, csvHeader, csvLine, lifeEventJson, lifeHeader, lifeLine, renderLifeSummary } from './tools/life/index.js';
export type { LifeEvent, LifeEstablishedEvent, LifeClosedEvent, LifeOptions, LifeRow, LifeSummary, LifeDirection, LifeOwnerSource, CloseReason, LifeAggregatorOptions, LifeFormat, LifeKey, LifeBulk, LifeSummaryOptions } from './tools/life/index.js';
/** `connections` is another name for `life` (who talked to whom, and for how long). */
export { life as connections } from './tools/life/index.js';
export { connect, connectSpec, decodeConnect, classifyFailure, ConnectAggregator, connectSummary, ConnectKernelReader, decodeConnectKey, CONNECT_LAYOUT, FAILURE_CLASSES, CONNECT_HEADER, connectEventJson, connectLine, renderConnectSummary } from './tools/connect/index.js';
export type { ConnectEvent, ConnectEstablishedEvent, ConnectFailedEvent, ConnectOptions, ConnectRow, ConnectSummary, FailureClass, ConnectAggregatorOptions, ConnectKey, ConnectBulk, ConnectSummaryOptions } from './tools/connect/index.js';
export { SocketReader, decodeSocket, decodeSockets, SOCKETS_LAYOUT } from './tools/sockets/index.js';
export type { SocketInfo } from './tools/sockets/index.js';
export { Reservoir } from './core/reservoir.js';
export { top, TopSession, TopAggregator, parseGroupBy, destinationKey, sortRows, serviceName, TOP_SORT_KEYS, HostEvidenceCollector } from './tools/top/index.js';
export type { TopOptions, TopRow, TopSummary, TopSortKey, GroupBy, TopAggregatorOptions, TopStartInfo, TopToolName } from './tools/top/index.js';
export { diagnose, diagnoseDestination, diagnoseHost, DIAGNOSIS_CODES, HARMLESS_FREES, freeKind, harmlessFree, emptyDestination, noHostEvidence } from './core/diagnosis/index.js';
export type {
  Diagnosis, DiagnosisCode, DiagnosisResult, DiagnosisThresholds, Severity, Confidence, EvidenceItem, Evidence, DestinationEvidence, HostEvidence,
  ConnectEvidence, FreeCount, FreeKind, HarmlessFree, CloseEvidence, ListenerEvidence, CloseWaitEvidence, StalledWindowEvidence, ConntrackEvidence,
} from './core/diagnosis/index.js';
export { PrometheusExporter, LabelSlots, NetbpfMetrics, parseListenAddress } from './tools/prometheus/index.js';
export type { NetbpfMetricsOptions, PrometheusExporterOptions } from './tools/prometheus/index.js';
export { ContainerResolver, containerFromPath } from './core/containers.js';
export type { ContainerResolverOptions } from './core/containers.js';
