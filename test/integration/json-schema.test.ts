/**
 * The real CLIs' JSON output against docs/schema/*.json: every tool runs with --json and a 1 s summary interval
 * while loopback traffic (connects that succeed, connects refused) flows; every line must match its schema.
 */
import { expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SchemaSet } from '../../src/testing/schema.js';
import { describeBpf, sleep } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;
const TOOLS = ['retrans', 'drops', 'life', 'connect', 'conntrack', 'top'] as const;

/** Runs a tool until stop() (SIGINT, as at a terminal; -d bounds it if the test dies); `started` resolves once it
 * has printed its start line (it is attached). Not a fixed duration: under emulation (the kernel matrix guests)
 * starting all six takes seconds, and a tool could end before the traffic. */
function run(tool: string): { started: Promise<void>; stop: () => void; done: Promise<{ code: number; stdout: string; stderr: string }> } {
  const c = spawn(process.execPath, [join(root, 'bin/netbpf.js'), tool, '--json', '-i', '1', '-d', '120', '-c', '127.0.0.0/8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  let onStart: () => void = () => {};
  const started = new Promise<void>((r) => { onStart = r; });
  c.stdout.on('data', (d) => { stdout += d; if (stdout.includes('"type":"start"')) onStart(); });
  c.stderr.on('data', (d) => { stderr += d; });
  // 'close', not 'exit': close comes after all of the child's output was read.
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => c.once('close', (code) => { onStart(); resolve({ code: code ?? -1, stdout, stderr }); }));
  return { started, stop: () => c.kill('SIGINT'), done };
}

async function loopbackTraffic(): Promise<void> {
  const server = createServer((s) => { s.on('error', () => {}); s.end('hello'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const once = (p: number) => new Promise<void>((r) => { const s = connect(p, '127.0.0.1'); s.on('error', () => r()); s.on('close', () => r()); s.resume(); });
  for (let i = 0; i < 3; i++) await once(port);
  server.close();
  await once(port); // refused: nothing listens any more
}

describeBpf('every CLI writes JSON lines that follow docs/schema', () => {
  it('retrans, drops, life, connect, conntrack and top', async () => {
    const schemas = new SchemaSet();
    const runs = TOOLS.map((t) => run(t));
    await Promise.all(runs.map((r) => r.started));
    await sleep(200);
    await loopbackTraffic();
    await sleep(2500); // a summary interval or two after the traffic
    for (const r of runs) r.stop();
    const results = await Promise.all(runs.map((r) => r.done));
    const seen = new Set<string>();
    results.forEach((r, i) => {
      const tool = TOOLS[i];
      expect(r.code, `${tool}: ${r.stderr}`).toBe(0);
      const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.length).toBeGreaterThanOrEqual(3);
      for (const line of lines) {
        expect(schemas.validateLine(tool, line), `${tool} ${JSON.stringify(line).slice(0, 300)}`).toEqual([]);
        seen.add(`${tool}:${String(line.type)}`);
      }
    });
    // The workload produced events of these types (the rest are covered from decoders in the unit test).
    for (const k of ['life:established', 'life:closed', 'connect:established', 'connect:failed', 'top:top', 'retrans:summary', 'drops:summary', 'conntrack:summary', 'top:start', 'conntrack:counters']) expect(seen).toContain(k);
  }, 150000);
});
