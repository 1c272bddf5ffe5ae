/**
 * The Prometheus rules and the Grafana dashboard that ship in deploy/, checked with Prometheus' own tool
 * (promtool, Debian's prometheus package): the rules load, their unit tests pass (`promtool test rules`), and
 * the exporter's full exposition passes `promtool check metrics`. The dashboard is well formed and reads only
 * series the exporter or the rules make. (test/integration/fleet.test.ts evaluates every expression against a
 * real Prometheus that scraped real traffic.)
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetbpfMetrics, PrometheusExporter, TcpStateCensus } from '../../src/tools/prometheus/index.js';
import { ownNetns } from '../../src/core/ctnetlink.js';
import type { TcpState } from '../../src/core/tcp.js';
import type { TopRow, TopSession } from '../../src/tools/top/index.js';
import { DIAGNOSIS_CODES, noHostEvidence, type Diagnosis, type DiagnosisCode } from '../../src/core/diagnosis/index.js';
import { hasCommand } from '../helpers.js';
import { dashboard, dashboardFile, dashboardTargets, exampleConfigFile, metricNames, repoRoot, rules, rulesFile, rulesTestFile, substitute } from '../prometheus-files.js';

function promtool(args: string[], input?: string): { status: number | null; out: string } {
  if (!hasCommand('promtool')) throw new Error('promtool is required (apt-get install prometheus; scripts/setup.sh installs it)');
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** An exporter whose every netbpf family has a series, as text. */
async function fullExposition(): Promise<string> {
  const session = { aggregator: { by: { kind: 'endpoint' } }, onEvents: () => session, onBulk: () => session, refresh: () => undefined, kernel: false, counters: () => ({ retrans: { events: 5, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0 }, conntrack: { events: 1, lost: 0, recursionMisses: 0, droppedByConsumer: 0, malformed: 0, sourceLost: 0 } }) } as unknown as TopSession;
  // TCP states of this process's namespace as a dump would count them (no kernel needed here).
  const tcpStates = new TcpStateCensus([], { count: async () => ({ netns: ownNetns(), states: new Map<TcpState, number>([['ESTABLISHED', 3], ['LISTEN', 1], ['TIME_WAIT', 2]]), elapsedMs: 0.2 }) });
  const exporter = new PrometheusExporter(session, { scrapeIntervalMs: 0, containerOf: () => 'c0ffee', sockets: null, tcpStates });
  const m = exporter.series;
  m.connect('10.0.0.2:443', 'ok', 'c0ffee', 250);
  m.connect('[fd00::2]:80', 'refused', null);
  m.retransmitted('10.0.0.2:443', 'rto', 2, null);
  m.sent('10.0.0.2:443', 40, null);
  m.bytes('10.0.0.2:443', 1000, 200, null);
  m.drops('10.0.0.2:443', 'NETFILTER_DROP', 'received', 1, 60);
  m.purges(1);
  m.closed('10.0.0.2:443', 'fin', null, 12, 300);
  m.conntrack([{ netns: 4026531840, name: null, count: 10, max: 262144, drop: 0, earlyDrop: 0, insertFailed: 0, invalid: 2 }]);
  const diagnosis = (code: DiagnosisCode, subject: string): Diagnosis => ({ code, subject, severity: 'critical', confidence: 'high', text: '', action: '', evidence: [], explains: 2 });
  m.diagnoses({ rows: [{ key: '[fd00::2]:80', diagnoses: [diagnosis('refused', '[fd00::2]:80')] } as TopRow], host: { diagnoses: [diagnosis('close-wait-leak', 'srv (pid 7)')], evidence: noHostEvidence(), unavailable: null } });
  exporter.started({ retrans: { hooks: [{ feature: 'retransmits', hook: 'tp_btf/tcp_retransmit_skb', program: 'p', programs: ['p'], skipped: [] }, { feature: 'x', hook: null, program: null, programs: [], skipped: ['a: no'], unavailable: 'kernel' }], startupMs: 1 }, conntrack: { error: 'no' } });
  const text = await exporter.metrics();
  await exporter.close();
  return text;
}

describe('Prometheus rules (deploy/prometheus/netbpf-rules.yml)', () => {
  it('load in Prometheus (promtool check rules)', () => {
    const r = promtool(['check', 'rules', rulesFile]);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.status).toBe(0);
  });

  it('load from the example configuration that ships next to them (promtool check config)', () => {
    const r = promtool(['check', 'config', exampleConfigFile]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('fire as their unit tests say and only then (promtool test rules)', () => {
    const r = promtool(['test', 'rules', rulesTestFile]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('alert on every diagnosis code top\'s engine has, one alert per code, with the engine\'s severity', () => {
    const byCode = new Map<string, string[]>();
    for (const r of rules()) for (const m of r.expr.matchAll(/netbpf_(?:host_)?diagnosis\{code="([^"]+)"\}/g)) byCode.set(m[1], [...new Set([...(byCode.get(m[1]) ?? []), r.alert!])]);
    expect([...byCode.keys()].sort()).toEqual([...DIAGNOSIS_CODES].sort());
    for (const [code, alerts] of byCode) expect(alerts, code).toHaveLength(1);
    // The severity is the engine's (a label of the series), never overridden by the rule.
    for (const r of rules()) if (/netbpf_(host_)?diagnosis\{/.test(r.expr)) expect(r.labels?.severity, r.alert).toBeUndefined();
  });

  it('read only series the exporter makes, and every alert has a severity, a summary and a description', async () => {
    expect(metricNames('sum without (kind) (rate(netbpf_a_total{kind!~"syn|synack"}[5m])) / on (instance) (sum by (d) (rate(b:c[1m])) > 0.01) unless max(d)')).toEqual(['netbpf_a_total', 'b:c', 'd']);
    const known = knownNames(await fullExposition());
    for (const rule of rules()) {
      for (const name of metricNames(rule.expr)) expect(known.has(name), `${rule.alert ?? rule.record} reads ${name}`).toBe(true);
      if (rule.alert) {
        expect(rule.alert).toMatch(/^Netbpf[A-Z]\w+$/);
        if (!/netbpf_(host_)?diagnosis\{/.test(rule.expr)) expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary).toBeTruthy();
        expect(rule.annotations?.description).toBeTruthy();
      }
    }
  });
});

/** Series names an exposition holds (histograms with their _bucket/_sum/_count), plus the recording rules'. */
function knownNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!m) continue;
    names.add(m[1]);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1] + s);
  }
  for (const r of rules()) if (r.record) names.add(r.record);
  return names;
}

describe('the exporter\'s exposition', () => {
  it('passes promtool check metrics with every family present, process metrics included', async () => {
    const text = await fullExposition();
    for (const name of ['netbpf_sent_segments_total', 'netbpf_rtt_seconds_bucket', 'netbpf_dropped_bytes_total', 'netbpf_hook_info', 'netbpf_tcp_connections{', 'netbpf_tcp_connections_read_errors_total', 'netbpf_process_resident_memory_bytes']) expect(text).toContain(name);
    const r = promtool(['check', 'metrics'], text);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  it('keeps the same series, label names and buckets whatever feeds it (the names docs/prometheus.md documents)', () => {
    const m = new NetbpfMetrics({ by: { kind: 'addr' }, containers: true });
    expect(m.series.families.map((f) => `${f.name} ${f.kind} ${f.labelNames.join(',')}`)).toEqual([
      'netbpf_connect_attempts_total counter destination,result,container_id',
      'netbpf_connect_latency_seconds histogram destination,container_id',
      'netbpf_retransmitted_segments_total counter destination,kind,container_id',
      'netbpf_sent_segments_total counter destination,container_id',
      'netbpf_bytes_total counter destination,direction,container_id',
      'netbpf_drops_total counter destination,reason,direction',
      'netbpf_dropped_bytes_total counter destination,reason,direction',
      'netbpf_purged_packets_total counter ',
      'netbpf_connections_closed_total counter destination,reason,container_id',
      'netbpf_connection_duration_seconds histogram destination',
      'netbpf_rtt_seconds histogram destination',
      'netbpf_events_total counter tool',
      'netbpf_lost_events_total counter tool',
      'netbpf_recursion_misses_total counter tool',
      'netbpf_malformed_records_total counter tool',
      'netbpf_source_lost_events_total counter tool',
      'netbpf_destinations_folded_total counter ',
      'netbpf_destinations_evicted_total counter ',
      'netbpf_build_info gauge version,nodejs,kernel',
      'netbpf_hook_info gauge tool,feature,hook,unavailable',
      'netbpf_tool_up gauge tool',
      'netbpf_tcp_connections gauge netns,netns_name,state',
      'netbpf_tcp_connections_read_errors_total counter netns,netns_name',
      'netbpf_conntrack_entries gauge netns,netns_name',
      'netbpf_conntrack_entries_limit gauge netns,netns_name',
      'netbpf_conntrack_stat_drop_total counter netns,netns_name',
      'netbpf_conntrack_stat_early_drop_total counter netns,netns_name',
      'netbpf_conntrack_stat_insert_failed_total counter netns,netns_name',
      'netbpf_conntrack_stat_invalid_total counter netns,netns_name',
      'netbpf_diagnosis gauge destination,code,severity,confidence',
      'netbpf_host_diagnosis gauge code,subject,severity,confidence',
    ]);
  });
});

describe('Grafana dashboard (deploy/grafana/netbpf-dashboard.json)', () => {
  it('is what scripts/gen-dashboard.py writes (regenerate it there)', () => {
    const r = spawnSync('python3', [join(repoRoot, 'scripts/gen-dashboard.py')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(readFileSync(dashboardFile, 'utf8'));
  });

  it('is one dashboard with unique panel ids, a Prometheus datasource variable, and panels that do not overlap', () => {
    const d = dashboard();
    expect(d.uid).toBe('netbpf-tcp');
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(d.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance', 'destination']);
    const cells = new Set<string>();
    for (const p of d.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        expect(cells.has(`${x},${y}`), `${p.title} overlaps`).toBe(false);
        cells.add(`${x},${y}`);
      }
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  });

  it('has the panels a fleet operator looks for, and reads only series the exporter makes', async () => {
    const known = knownNames(await fullExposition());
    const targets = dashboardTargets();
    const titles = new Set(targets.map((t) => t.panel));
    for (const t of ['Retransmit ratio per destination', 'Drops on this host by reason', 'Connect failures by class', 'Connect latency', 'Connection lifetime', 'Round-trip time', 'Lost events']) expect(titles).toContain(t);
    for (const t of targets) {
      const expr = substitute(t.expr);
      for (const name of metricNames(expr)) expect(known.has(name), `${t.panel}/${t.refId} reads ${name}`).toBe(true);
    }
    const heatmaps = dashboard().panels.filter((p) => p.type === 'heatmap');
    for (const h of heatmaps) expect(h.targets![0]).toMatchObject({ format: 'heatmap' });
  });
});
