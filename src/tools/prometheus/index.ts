/** netbpf's Prometheus exporter over a top session: per-destination series with bounded, self-renewing labels. */
export { parseListenAddress, PrometheusExporter } from './exporter.js';
export type { PrometheusExporterOptions } from './exporter.js';
export { LabelSlots } from './label-slots.js';
export { CONNECT_LATENCY_BUCKETS, LIFETIME_BUCKETS, NetbpfMetrics, RTT_BUCKETS, UNKNOWN_DESTINATION } from './metrics.js';
export type { ConnectResult, NetbpfMetricsOptions } from './metrics.js';
export { ScrapeTraffic } from './scrape-traffic.js';
export { DiagnosisWindow } from './diagnoses.js';
export { TcpStateCensus } from './tcp-states.js';
export type { TcpNamespaceCount, TcpStateCensusOptions } from './tcp-states.js';
export type { DiagnosisWindowOptions } from './diagnoses.js';
export { MetricFamily, SeriesRegistry, ZeroHold } from './series.js';
export type { Log2Buckets, Log2Counts, Observation } from './series.js';
