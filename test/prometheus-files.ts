/** The Prometheus rules and the Grafana dashboard in deploy/, read the way the tests need them: every PromQL
 * expression they hold, with Grafana's variables replaced by values Prometheus accepts. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const rulesFile = new URL('../deploy/prometheus/netbpf-rules.yml', import.meta.url).pathname;
export const exampleConfigFile = new URL('../deploy/prometheus/prometheus.yml', import.meta.url).pathname;
export const rulesTestFile = new URL('./prometheus/rules.test.yml', import.meta.url).pathname;
export const dashboardFile = new URL('../deploy/grafana/netbpf-dashboard.json', import.meta.url).pathname;

export interface Rule { record?: string; alert?: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }

/** Every rule of deploy/prometheus/netbpf-rules.yml, in order. */
export function rules(): Rule[] {
  const doc = parse(readFileSync(rulesFile, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

export interface DashboardPanel { id: number; type: string; title: string; targets?: Array<{ refId: string; expr: string; format?: string; instant?: boolean }>; panels?: DashboardPanel[]; gridPos: { h: number; w: number; x: number; y: number } }
export interface Dashboard { uid: string; title: string; panels: DashboardPanel[]; templating: { list: Array<{ name: string; type: string; query?: unknown }> }; annotations: { list: Array<{ expr?: string }> } }

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;
}

/** Grafana's variables as the test's Prometheus evaluates them: all hosts and destinations, a rate window. */
export const GRAFANA_VARIABLES: Record<string, string> = { instance: '.*', destination: '.*', __rate_interval: '1m', __range: '5m', __interval: '10s' };

/** `expr` with $var and ${var} replaced from `vars`; throws on a variable it does not know. */
export function substitute(expr: string, vars: Record<string, string> = GRAFANA_VARIABLES): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (!(name in vars)) throw new Error(`unknown Grafana variable ${m} in ${expr}`);
    return vars[name];
  });
}

/** Every panel target of the dashboard: panel title, refId and the expression (variables still in). */
export function dashboardTargets(d: Dashboard = dashboard()): Array<{ panel: string; refId: string; expr: string }> {
  const out: Array<{ panel: string; refId: string; expr: string }> = [];
  const walk = (ps: DashboardPanel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, refId: t.refId, expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

/** Metric names a PromQL expression reads (identifiers before `{` or `[` or standing alone, not functions or keywords). */
export function metricNames(expr: string): string[] {
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool',
    'sum', 'avg', 'min', 'max', 'count', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values']);
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '[]');
  const names = new Set<string>();
  for (const m of noStrings.matchAll(/(?<![a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(|\{|\[)?/g)) {
    const [, name, next] = m;
    if (next === '(' || keywords.has(name)) continue;
    // Label names inside by (...) / without (...) / on (...) lists and label matchers are not metrics.
    const before = noStrings.slice(0, m.index);
    const open = before.lastIndexOf('(') > before.lastIndexOf(')') && /\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*$/.test(before);
    const inMatcher = before.lastIndexOf('{') > before.lastIndexOf('}');
    if (open || inMatcher || /^\d/.test(name)) continue;
    if (/^(le|inf|nan)$/i.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

/** Path helper for the tests. */
export const repoRoot = join(new URL('..', import.meta.url).pathname);
