/** netbpf's Prometheus exporter over a top session: per-destination series with bounded labels. */
export { BoundedLabels, parseListenAddress, PrometheusExporter } from './exporter.js';
export type { PrometheusExporterOptions } from './exporter.js';
