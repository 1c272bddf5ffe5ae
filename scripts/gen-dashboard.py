#!/usr/bin/env python3
"""Writes the Grafana dashboard for netbpf serve (deploy/grafana/netbpf-dashboard.json) to stdout:
  python3 scripts/gen-dashboard.py > deploy/grafana/netbpf-dashboard.json
test/unit/prometheus-rules.test.ts checks that the committed file is what this writes, and that every expression
reads series the exporter makes; test/integration/fleet.test.ts evaluates each against a real Prometheus."""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance",destination=~"$destination"'
INST = 'instance=~"$instance"'
panels = []
pid = [0]
y = [0]
def row(title):
    pid[0] += 1
    panels.append({"id": pid[0], "type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1
x = [0]
def panel(kind, title, desc, targets, unit=None, w=12, h=8, extra=None, field=None):
    pid[0] += 1
    if x[0] + w > 24:
        x[0] = 0; y[0] += h
    p = {"id": pid[0], "type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x[0], "y": y[0]},
         "targets": [dict({"refId": chr(65 + i), "datasource": DS}, **t) for i, t in enumerate(targets)]}
    fc = {"defaults": {}, "overrides": []}
    if unit: fc["defaults"]["unit"] = unit
    if field: fc["defaults"].update(field)
    p["fieldConfig"] = fc
    if extra: p.update(extra)
    panels.append(p)
    x[0] += w
    if x[0] >= 24:
        x[0] = 0; y[0] += h
def flush():
    if x[0]:
        x[0] = 0; y[0] += 8

ts = lambda expr, legend: {"expr": expr, "legendFormat": legend}
hm = lambda expr: {"expr": expr, "legendFormat": "{{le}}", "format": "heatmap"}
heat = {"options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}, "tooltip": {"show": True, "yHistogram": True}}}

row("Diagnoses (what top names, per window)")
panel("table", "Destinations diagnosed", "What netbpf top's engine names for each destination over the last --diagnosis-window (docs/top.md): the code, its severity and confidence, and the units of trouble it explains.",
      [{"expr": f'max by (instance, destination, code, severity, confidence) (netbpf_diagnosis{{{SEL}}})', "format": "table", "instant": True}],
      w=14, extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "units explained"}}}]})
panel("table", "Host diagnosed", "Listeners whose accept queue overflowed, processes leaking CLOSE_WAIT sockets, receivers not reading, full conntrack tables.",
      [{"expr": f'max by (instance, code, subject, severity) (netbpf_host_diagnosis{{{INST}}})', "format": "table", "instant": True}],
      w=10, extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "units explained"}}}]})
flush()

row("Health per destination")
panel("timeseries", "Retransmit ratio per destination",
      "Data segments retransmitted / segments sent for the first time, per destination: the kernel's RetransSegs / OutSegs, split by destination (handshake retransmits are in Connect failures). NetbpfPathLoss fires from 1% with no drops on this host.",
      [ts(f'sum by (instance, destination) (rate(netbpf_retransmitted_segments_total{{{SEL},kind!~"syn|synack"}}[$__rate_interval])) / (sum by (instance, destination) (rate(netbpf_sent_segments_total{{{SEL}}}[$__rate_interval])) > 0)', "{{destination}} ({{instance}})")],
      unit="percentunit")
panel("timeseries", "Connect failures by class",
      "Failed connects per second: refused (RST), timeout (SYNs unanswered), unreachable (no route / ICMP), aborted (the application gave up), other.",
      [ts(f'sum by (result) (rate(netbpf_connect_attempts_total{{{SEL},result!="ok"}}[$__rate_interval]))', "{{result}}")],
      unit="cps", field={"custom": {"stacking": {"mode": "normal"}, "drawStyle": "bars", "fillOpacity": 80}})
panel("timeseries", "Drops on this host by reason",
      "Packets dropped per second, by the kernel's drop reason and direction (socket-teardown purges excluded).",
      [ts(f'sum by (reason, direction) (rate(netbpf_drops_total{{{SEL}}}[$__rate_interval]))', "{{reason}} {{direction}}")],
      unit="pps", field={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}})
panel("timeseries", "Dropped bytes by reason",
      "Bytes of the dropped packets per second (one GSO/GRO packet can carry many segments).",
      [ts(f'sum by (reason, direction) (rate(netbpf_dropped_bytes_total{{{SEL}}}[$__rate_interval]))', "{{reason}} {{direction}}")],
      unit="Bps")
panel("table", "Connect failures per destination",
      "Failed connects over the dashboard's time range, per destination and class.",
      [{"expr": f'sum by (instance, destination, result) (increase(netbpf_connect_attempts_total{{{SEL},result!="ok"}}[$__range])) > 0', "format": "table", "instant": True}],
      extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]})
panel("timeseries", "Retransmitted segments by kind",
      "Segments retransmitted per second: rto (timer), fast (dupacks/SACK/RACK), tlp (tail loss probe), syn, synack.",
      [ts(f'sum by (kind) (rate(netbpf_retransmitted_segments_total{{{SEL}}}[$__rate_interval]))', "{{kind}}")],
      unit="short")
flush()

row("Latency and lifetimes")
panel("heatmap", "Connect latency", "Successful connects by latency (SYN sent to ESTABLISHED).",
      [hm(f'sum by (le) (rate(netbpf_connect_latency_seconds_bucket{{{SEL}}}[$__rate_interval]))')], w=8, extra=heat)
panel("heatmap", "Connection lifetime", "Closed connections by lifetime (first state change to CLOSE).",
      [hm(f'sum by (le) (rate(netbpf_connection_duration_seconds_bucket{{{SEL}}}[$__rate_interval]))')], w=8, extra=heat)
panel("heatmap", "Round-trip time", "Smoothed RTT of each established connection at its close.",
      [hm(f'sum by (le) (rate(netbpf_rtt_seconds_bucket{{{SEL}}}[$__rate_interval]))')], w=8, extra=heat)
panel("timeseries", "Connect latency p99 per destination", "99th percentile of successful connect latency.",
      [ts(f'histogram_quantile(0.99, sum by (instance, destination, le) (rate(netbpf_connect_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))', "{{destination}} ({{instance}})")],
      unit="s")
panel("timeseries", "Connections closed by how they ended", "fin, reset-received, reset-sent, timeout, error, per second.",
      [ts(f'sum by (reason) (rate(netbpf_connections_closed_total{{{SEL}}}[$__rate_interval]))', "{{reason}}")],
      unit="cps")
flush()

row("Traffic")
panel("timeseries", "Bytes per destination", "Payload bytes of closed connections per second, by destination and direction.",
      [ts(f'sum by (instance, destination, direction) (rate(netbpf_bytes_total{{{SEL}}}[$__rate_interval]))', "{{destination}} {{direction}}")],
      unit="Bps")
panel("timeseries", "Segments sent per destination", "Segments sent for the first time per second (OutSegs per destination).",
      [ts(f'sum by (instance, destination) (rate(netbpf_sent_segments_total{{{SEL}}}[$__rate_interval]))', "{{destination}} ({{instance}})")],
      unit="short")
flush()

row("TCP connections (serve's namespace and --netns ones)")
panel("timeseries", "Open TCP connections by state", "TCP sockets now per network namespace and state, as ss -tan lists them (request sockets as SYN_RECV, TIME_WAIT included), counted at each scrape. A growing CLOSE_WAIT is an application not closing; a SYN_RECV pile-up, a handshake not completing.",
      [ts(f'sum by (instance, netns, netns_name, state) (netbpf_tcp_connections{{{INST}}})', "{{state}} {{netns_name}} {{netns}} ({{instance}})")],
      unit="short", w=24)
flush()

row("conntrack (serve --conntrack)")
panel("timeseries", "conntrack table fill", "Entries / limit per watched network namespace. A full table drops the first packet of every new connection.",
      [ts(f'max by (instance, netns, netns_name) (netbpf_conntrack_entries{{{INST}}}) / max by (instance, netns, netns_name) (netbpf_conntrack_entries_limit{{{INST}}} > 0)', "{{netns_name}} {{netns}} ({{instance}})")],
      unit="percentunit", w=8)
panel("timeseries", "conntrack entries and limit", "Entries now (nf_conntrack_count) and the limit (nf_conntrack_max), per watched namespace.",
      [ts(f'max by (instance, netns, netns_name) (netbpf_conntrack_entries{{{INST}}})', "entries {{netns_name}} {{netns}} ({{instance}})"),
       ts(f'max by (instance, netns, netns_name) (netbpf_conntrack_entries_limit{{{INST}}})', "limit {{netns_name}} {{netns}} ({{instance}})")],
      unit="short", w=8)
panel("timeseries", "conntrack table pressure", "Packets dropped for want of an entry (table full), entries evicted to make room, failed inserts and invalid packets, per second.",
      [ts(f'sum by (instance, netns_name) (rate(netbpf_conntrack_stat_drop_total{{{INST}}}[$__rate_interval]))', "table-full drops {{netns_name}} ({{instance}})"),
       ts(f'sum by (instance, netns_name) (rate(netbpf_conntrack_stat_early_drop_total{{{INST}}}[$__rate_interval]))', "early drops {{netns_name}} ({{instance}})"),
       ts(f'sum by (instance, netns_name) (rate(netbpf_conntrack_stat_insert_failed_total{{{INST}}}[$__rate_interval]))', "insert failed {{netns_name}} ({{instance}})"),
       ts(f'sum by (instance, netns_name) (rate(netbpf_conntrack_stat_invalid_total{{{INST}}}[$__rate_interval]))', "invalid {{netns_name}} ({{instance}})")],
      unit="pps", w=8)
flush()

row("The agent")
panel("timeseries", "Lost events", "Events the kernel could not hand over (ring buffer full) or skipped (recursion), per tool: counts above are low by that much.",
      [ts(f'sum by (instance, tool) (increase(netbpf_lost_events_total{{{INST}}}[$__rate_interval]))', "lost {{tool}} ({{instance}})"),
       ts(f'sum by (instance, tool) (increase(netbpf_recursion_misses_total{{{INST}}}[$__rate_interval]))', "recursion {{tool}} ({{instance}})")],
      unit="short")
panel("timeseries", "Events per tool", "Events delivered to user space per second.",
      [ts(f'sum by (instance, tool) (rate(netbpf_events_total{{{INST}}}[$__rate_interval]))', "{{tool}} ({{instance}})")],
      unit="short")
panel("timeseries", "Destination label slots", "New destinations folded into \"other\" (every slot in use) and destinations evicted after --evict-idle.",
      [ts(f'sum by (instance) (increase(netbpf_destinations_folded_total{{{INST}}}[$__rate_interval]))', "folded ({{instance}})"),
       ts(f'sum by (instance) (increase(netbpf_destinations_evicted_total{{{INST}}}[$__rate_interval]))', "evicted ({{instance}})")],
      unit="short")
panel("timeseries", "Agent CPU and memory", "CPU seconds per second and resident memory of netbpf.",
      [ts(f'rate(netbpf_process_cpu_seconds_total{{{INST}}}[$__rate_interval])', "cpu ({{instance}})"),
       ts(f'netbpf_process_resident_memory_bytes{{{INST}}}', "rss ({{instance}})")],
      extra={}, field={"custom": {}}, unit=None)
panels[-1]["fieldConfig"]["overrides"] = [{"matcher": {"id": "byRegexp", "options": "rss.*"}, "properties": [{"id": "unit", "value": "bytes"}, {"id": "custom.axisPlacement", "value": "right"}]}]
panel("table", "Hooks in use", "Which hook serves each feature of each tool on each host (hook empty: unavailable, with the cause).",
      [{"expr": f'max by (instance, tool, feature, hook, unavailable) (netbpf_hook_info{{{INST}}})', "format": "table", "instant": True},
       {"expr": f'max by (instance, version, nodejs, kernel) (netbpf_build_info{{{INST}}})', "format": "table", "instant": True}],
      w=24, extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]})
flush()

dash = {
  "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
  "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                 {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
                 {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
                 {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
                 {"type": "panel", "id": "table", "name": "Table", "version": ""}],
  "uid": "netbpf-tcp",
  "title": "netbpf: TCP health per destination",
  "description": "netbpf serve: retransmit ratio, connect failures, drops by reason, latency/lifetime/RTT heatmaps and lost events, per host and destination. docs/prometheus.md",
  "tags": ["netbpf", "ebpf", "tcp"],
  "editable": True,
  "graphTooltip": 1,
  "schemaVersion": 39,
  "version": 1,
  "time": {"from": "now-1h", "to": "now"},
  "refresh": "30s",
  "timepicker": {},
  "annotations": {"list": [
    {"name": "netbpf alerts", "datasource": DS, "enable": True, "iconColor": "red",
     "expr": 'ALERTS{alertname=~"Netbpf.*",alertstate="firing",instance=~"$instance"}', "titleFormat": "{{alertname}}", "textFormat": "{{destination}}", "useValueForTime": False, "step": "60s"}]},
  "templating": {"list": [
    {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
    {"name": "instance", "label": "Host", "type": "query", "datasource": DS, "query": {"query": "label_values(netbpf_build_info, instance)", "refId": "instance"}, "definition": "label_values(netbpf_build_info, instance)", "includeAll": True, "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1},
    {"name": "destination", "label": "Destination", "type": "query", "datasource": DS, "query": {"query": 'label_values(netbpf_connect_attempts_total{instance=~"$instance"}, destination)', "refId": "destination"}, "definition": 'label_values(netbpf_connect_attempts_total{instance=~"$instance"}, destination)', "includeAll": True, "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1},
  ]},
  "panels": panels,
}
print(json.dumps(dash, indent=2))
