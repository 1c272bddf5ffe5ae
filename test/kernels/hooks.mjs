// Which hook every tool chooses on the running kernel, and whether each alternative hook loads and attaches
// when forced. Finds the tools by their exported `<tool>Spec` functions (dist/index.js), so tools added later
// are probed without changes here. Prints one JSON document.
import * as netbpf from '../../dist/index.js';

const { Trace } = netbpf;
const specs = Object.entries(netbpf).filter(([name, v]) => /^[a-z]\w*Spec$/.test(name) && typeof v === 'function');

const message = (err) => String(err?.message ?? err).split('\n')[0];

/** Starts a trace of `spec`, returns its hook choices (or the error), always stops it. */
async function tryStart(spec) {
  const trace = new Trace(spec, { ringBufferBytes: 65536 });
  try {
    const info = await trace.start();
    return { ok: true, hooks: info.hooks, startupMs: Math.round(info.startupMs) };
  } catch (err) {
    return { ok: false, error: message(err) };
  } finally {
    await trace.stop().catch(() => {});
  }
}

/** A spec where only alternative `j` of feature `i` may load; every other feature loads nothing. */
function only(spec, i, j) {
  return {
    ...spec,
    hooks: spec.hooks.map((h, k) => ({
      ...h,
      required: k === i,
      alternatives: h.alternatives.map((a, m) => (k === i && m === j ? a : { ...a, missing: () => ({ cause: 'kernel', reason: 'not probed' }) })),
    })),
  };
}

const tools = [];
for (const [name, make] of specs) {
  let spec;
  try {
    spec = make({});
  } catch (err) {
    tools.push({ tool: name.replace(/Spec$/, ''), spec: name, error: message(err) });
    continue;
  }
  const chosen = await tryStart(spec);
  const alternatives = [];
  for (const [i, h] of spec.hooks.entries()) {
    for (const [j, a] of h.alternatives.entries()) {
      const r = await tryStart(only(spec, i, j));
      // Loaded and attached as itself (not a fallback the trace moved on to after it was refused).
      const ok = r.ok && r.hooks[i].hook === a.hook;
      const reason = ok ? null : r.ok ? r.hooks[i].skipped.find((s) => s.startsWith(`${a.hook}:`)) ?? 'not chosen' : r.error;
      alternatives.push({ feature: h.feature, hook: a.hook, kind: a.kind, programs: a.programs, ok, reason });
    }
  }
  tools.push({ tool: spec.tool, spec: name, chosen, alternatives });
}
process.stdout.write(`${JSON.stringify({ tools }, null, 1)}\n`);
