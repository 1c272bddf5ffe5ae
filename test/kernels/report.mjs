// Folds the per-kernel outputs of test/kernels/run.sh (build/kernels/out/<label>/) into
// build/kernels/results.json (also kept as docs/kernel-matrix.json) and docs/kernel-matrix.md.
// The matrix is generated from these runs only: nothing in it is written by hand.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = join(root, 'build', 'kernels', 'out');

const readJson = (p) => { try { return JSON.parse(readFileSync(p, 'utf8')); } catch { return null; } };
const readText = (p) => { try { return readFileSync(p, 'utf8').trim(); } catch { return null; } };

/** Numeric order of kernel releases: 6.1.0-56 < 6.12.95 < 6.18.44. */
const versionKey = (r) => (r.match(/\d+/g) ?? []).slice(0, 3).map((n) => n.padStart(5, '0')).join('.');

function suiteOf(dir) {
  const v = readJson(join(dir, 'vitest.json'));
  const rc = readText(join(dir, 'vitest.rc'));
  if (!v) return { ran: false, rc: rc === null ? null : Number(rc) };
  const tests = [];
  for (const file of v.testResults ?? []) {
    for (const a of file.assertionResults ?? []) {
      tests.push({
        file: relative(root, file.name),
        name: a.fullName ?? a.title,
        status: a.status === 'pending' ? 'skipped' : a.status,
        durationMs: Math.round(a.duration ?? 0),
        failure: a.failureMessages?.length ? a.failureMessages[0].split('\n')[0].slice(0, 300) : null,
      });
    }
    // A file that failed before its tests ran (import error, beforeAll) has no assertion results.
    if (!file.assertionResults?.length && file.status === 'failed') {
      tests.push({ file: relative(root, file.name), name: '(file)', status: 'failed', durationMs: 0, failure: (file.message ?? '').split('\n')[0].slice(0, 300) });
    }
  }
  const count = (s) => tests.filter((t) => t.status === s).length;
  return {
    ran: true, rc: rc === null ? null : Number(rc), seconds: Number(readText(join(dir, 'vitest.seconds')) ?? NaN),
    passed: count('passed'), failed: count('failed'), skipped: count('skipped'), tests,
  };
}

/** Hooks the traces started by the suite used (NETBPF_HOOK_LOG lines): tool -> feature -> hook -> starts. */
function suiteHooksOf(dir) {
  const text = readText(join(dir, 'hooks-used.jsonl'));
  if (text === null) return null;
  const used = {};
  for (const line of text.split('\n').filter(Boolean)) {
    let r;
    try { r = JSON.parse(line); } catch { continue; }
    for (const h of r.hooks ?? []) {
      const byHook = ((used[r.tool] ??= {})[h.feature] ??= {});
      const key = h.hook ?? '(none)';
      byHook[key] = (byHook[key] ?? 0) + 1;
    }
  }
  return used;
}

/** The suite filter a run was started with (run.sh --filter: env.sh), '' for the whole suite. */
const filterOf = (dir) => /NETBPF_SUITE_FILTER="([^"]*)"/.exec(readText(join(dir, 'env.sh')) ?? '')?.[1] ?? '';
const committed = readJson(join(root, 'docs', 'kernel-matrix.json'))?.kernels ?? [];

/**
 * A filtered run (run.sh --filter, after fixing what one test file showed) on a kernel whose whole-suite results
 * are committed: the tests of the files it ran replace theirs, each marked with the rerun's time; every other
 * test keeps its whole-suite result. The kernels table says how many came from a rerun.
 */
function mergeRerun(k, base, filter) {
  const files = new Set(k.suite.tests.map((t) => t.file));
  const rerun = k.suite.tests.map((t) => ({ ...t, rerunAt: k.ranAt }));
  const tests = [...base.suite.tests.filter((t) => !files.has(t.file)), ...rerun];
  const count = (st) => tests.filter((t) => t.status === st).length;
  const failed = count('failed');
  return {
    ...base, tools: k.tools ?? base.tools,
    suite: { ...base.suite, rc: failed ? 1 : 0, passed: count('passed'), failed, skipped: count('skipped'), tests },
    reruns: [...(base.reruns ?? []).filter((r) => !r.files.every((f) => files.has(f))), { at: k.ranAt, filter, files: [...files], tests: rerun.length }],
  };
}

const kernels = [];
for (const label of existsSync(outDir) ? readdirSync(outDir) : []) {
  const dir = join(outDir, label);
  const kernel = readJson(join(dir, 'kernel.json'));
  if (!kernel) { console.error(`report: ${label}: no kernel.json (the guest did not get that far; see ${relative(root, dir)}/console.log)`); continue; }
  const meta = readJson(join(dir, 'meta.json')) ?? { label };
  const hooks = readJson(join(dir, 'hooks.json'));
  const k = {
    label, release: kernel.release, package: meta.package, packageVersion: meta.version,
    ranAt: statSync(join(dir, 'kernel.json')).mtime.toISOString(),
    btf: kernel.btf, kprobes: kernel.kprobes, vm: label !== 'host', vmSeconds: Number(readText(join(dir, 'vm.seconds')) ?? NaN) || null,
    tools: hooks?.tools ?? null, suite: suiteOf(dir), suiteHooks: suiteHooksOf(dir),
  };
  const filter = filterOf(dir);
  const base = committed.find((c) => c.label === label && c.release === k.release && c.suite?.ran);
  if (filter && k.suite.ran && base) {
    console.error(`report: ${label}: a filtered run (${filter}) merged into the whole-suite results of ${base.ranAt}`);
    kernels.push(mergeRerun(k, base, filter));
  } else kernels.push(k);
}
// A kernel not run in this checkout (its out folder is a build output: another worktree ran it, or it was not
// selected) keeps its last committed results, with their run date: rerunning one kernel never drops the others.
for (const k of committed) {
  if (kernels.some((x) => x.label === k.label)) continue;
  console.error(`report: ${k.label}: not run here, its results of ${k.ranAt} kept from docs/kernel-matrix.json`);
  kernels.push(k);
}
kernels.sort((a, b) => versionKey(a.release).localeCompare(versionKey(b.release)));

const results = { generatedBy: 'test/kernels/run.sh', generatedAt: new Date().toISOString(), kernels };
mkdirSync(join(root, 'build', 'kernels'), { recursive: true });
writeFileSync(join(root, 'build', 'kernels', 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
writeFileSync(join(root, 'docs', 'kernel-matrix.json'), `${JSON.stringify(results, null, 1)}\n`);

// ---- markdown ----
const esc = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
const col = (k) => `${k.release}${k.vm ? '' : ' (host)'}`;
/** The part of a trace error that concerns one hook ("hook: reason; other: ..." lists). */
const reasonFor = (hook, reason) => {
  if (!reason) return '';
  const at = reason.indexOf(`${hook}: `);
  if (at < 0) return reason.slice(0, 90);
  const rest = reason.slice(at + hook.length + 2);
  let part = rest.slice(0, rest.indexOf('; ') < 0 ? undefined : rest.indexOf('; '));
  // The last reason of a list ends with the list's own closing parenthesis.
  if (part.split(')').length > part.split('(').length) part = part.slice(0, -1);
  return part.slice(0, 90);
};

const toolNames = [...new Set(kernels.flatMap((k) => (k.tools ?? []).map((t) => t.tool)))].sort();
const lines = [];
lines.push('# Kernel matrix', '');
lines.push('Generated by `npm run test:kernels` (test/kernels/run.sh, test/kernels/report.mjs) from its last runs; do not edit by hand.');
lines.push('Debian kernels boot under qemu (software emulation) with the same BPF objects and addon built on the host (CO-RE);');
lines.push('each runs the BPF integration suite (test/integration) as root. Raw results: docs/kernel-matrix.json.');
lines.push('Tests marked "rerun" come from a run of their file alone (run.sh --filter) after a fix; every other result of that');
lines.push('kernel is from its last whole-suite run.', '');
lines.push('## Kernels', '');
lines.push(table(['kernel', 'package', 'BTF', 'kprobes', 'integration tests', 'suite time', 'run at'], kernels.map((k) => [
  col(k), k.package ? `${k.package} ${k.packageVersion}` : 'this machine', k.btf ? 'yes' : 'no', k.kprobes ? 'yes' : 'no',
  (k.suite.ran ? `${k.suite.passed} passed, ${k.suite.failed} failed, ${k.suite.skipped} skipped` : `not run (exit ${k.suite.rc ?? 'none'})`)
    + (k.reruns ?? []).map((r) => ` (${r.tests} of them rerun ${r.at.slice(0, 16).replace('T', ' ')}: ${r.files.map((f) => f.replace(/^test\/integration\//, '')).join(', ')})`).join(''),
  k.suite.ran ? `${k.suite.seconds} s${k.vm ? ` (guest ${k.vmSeconds} s)` : ''}` : '', k.ranAt.slice(0, 16).replace('T', ' '),
])));
lines.push('', '## Feature coverage (the hook that serves each feature of each tool: its first choice that loads and attaches)', '');
lines.push('One row per feature a tool declares (its HookSpecs), one column per kernel. "no BPF hook" cells give the reason each');
lines.push('alternative was passed over (the hook kinds that share a reason are named once), and the non-BPF source the tool');
lines.push('used instead during the suite, if any.', '');
const BPF_HOOK = /^(tp_btf|raw_tp|tracepoint|fentry|fexit|kprobe|netfilter)\b/;
/** "reason (kinds); reason (kinds)" from a choice's skipped list ("hook: reason" each, best first). */
const whyNone = (skipped) => {
  const byReason = new Map();
  for (const s of skipped ?? []) {
    const at = s.indexOf(': ');
    const hook = at < 0 ? s : s.slice(0, at);
    const reason = at < 0 ? 'refused' : s.slice(at + 2);
    byReason.set(reason, [...(byReason.get(reason) ?? []), hook.split('/')[0]]);
  }
  return [...byReason].map(([reason, kinds]) => `${reason} (${[...new Set(kinds)].join(', ')})`).join('; ') || 'no alternative declared';
};
const hookRows = [];
for (const tool of toolNames) {
  const features = [...new Set(kernels.flatMap((k) => (k.tools ?? []).find((t) => t.tool === tool)?.alternatives.map((a) => a.feature) ?? []))];
  for (const feature of features) {
    hookRows.push([tool, feature, ...kernels.map((k) => {
      const t = (k.tools ?? []).find((x) => x.tool === tool);
      if (!t) return 'not probed';
      if (!t.chosen?.ok) return `fails: ${t.chosen?.error ?? t.error}`;
      const h = t.chosen.hooks.find((x) => x.feature === feature);
      if (h?.hook) return `\`${h.hook}\``;
      const instead = Object.keys(k.suiteHooks?.[tool]?.[feature] ?? {}).filter((x) => x !== '(none)' && !BPF_HOOK.test(x));
      return `no BPF hook: ${whyNone(h?.skipped)}${instead.length ? `; the tool uses ${instead.join(', ')} instead` : ''}`;
    })]);
  }
}
lines.push(table(['tool', 'feature', ...kernels.map(col)], hookRows));
lines.push('', '## Hooks the integration tests exercised (traces started during the suite, by hook)', '');
const usedRows = [];
for (const tool of [...new Set(kernels.flatMap((k) => Object.keys(k.suiteHooks ?? {})))].sort()) {
  const features = [...new Set(kernels.flatMap((k) => Object.keys(k.suiteHooks?.[tool] ?? {})))];
  for (const feature of features) {
    usedRows.push([tool, feature, ...kernels.map((k) => {
      const byHook = k.suiteHooks?.[tool]?.[feature];
      if (!byHook) return k.suiteHooks ? 'not started' : 'not recorded';
      return Object.entries(byHook).map(([h, n]) => `${h === '(none)' ? 'no BPF hook' : `\`${h}\``} ×${n}`).join(', ');
    })]);
  }
}
lines.push(table(['tool', 'feature', ...kernels.map(col)], usedRows));
lines.push('', '"no BPF hook": the trace started without a BPF program for that feature (none loads on that kernel, or the caller');
lines.push('asked for another mechanism or only some features); tools may then use a non-BPF source (conntrack: ctnetlink).');
lines.push('', '## Every alternative, forced alone: does it load and attach?', '');
const altRows = [];
for (const tool of toolNames) {
  const alts = [];
  for (const k of kernels) for (const a of (k.tools ?? []).find((t) => t.tool === tool)?.alternatives ?? []) if (!alts.some((x) => x.hook === a.hook && x.feature === a.feature)) alts.push(a);
  for (const a of alts) {
    altRows.push([tool, a.feature, `\`${a.hook}\``, ...kernels.map((k) => {
      const r = (k.tools ?? []).find((t) => t.tool === tool)?.alternatives.find((x) => x.hook === a.hook && x.feature === a.feature);
      if (!r) return 'not probed';
      return r.ok ? 'yes' : `no: ${reasonFor(a.hook, r.reason)}`;
    })]);
  }
}
lines.push(table(['tool', 'feature', 'hook', ...kernels.map(col)], altRows));
lines.push('', '## Integration tests', '');
const testKeys = [];
for (const k of kernels) for (const t of k.suite.tests ?? []) if (!testKeys.some((x) => x.file === t.file && x.name === t.name)) testKeys.push(t);
lines.push(table(['file', 'test', ...kernels.map(col)], testKeys.map((t) => [t.file.replace(/^test\/integration\//, ''), t.name, ...kernels.map((k) => {
  const r = (k.suite.tests ?? []).find((x) => x.file === t.file && x.name === t.name);
  if (!r) return k.suite.ran ? 'absent' : 'not run';
  const rerun = r.rerunAt ? ', rerun' : '';
  return r.status === 'passed' ? `pass (${(r.durationMs / 1000).toFixed(1)} s${rerun})` : r.status === 'failed' ? `FAIL${rerun}: ${r.failure ?? ''}`.slice(0, 160) : r.status;
})])));
const failures = kernels.flatMap((k) => (k.suite.tests ?? []).filter((t) => t.status === 'failed').map((t) => ({ k, t })));
if (failures.length) {
  lines.push('', '### Failures', '');
  for (const { k, t } of failures) lines.push(`- ${col(k)}: ${t.file} — ${t.name}: ${t.failure ?? ''}`);
}
lines.push('');
writeFileSync(join(root, 'docs', 'kernel-matrix.md'), lines.join('\n'));
console.error(`report: ${kernels.length} kernel(s) -> build/kernels/results.json, docs/kernel-matrix.json, docs/kernel-matrix.md`);
const bad = kernels.filter((k) => !k.suite.ran || k.suite.failed > 0 || k.suite.rc !== 0);
process.exitCode = bad.length ? 1 : 0;
