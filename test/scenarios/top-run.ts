/**
 * `netbpf top --json` as a user runs it, around one scenario: started before the workload, stopped (SIGINT)
 * after it, its final snapshot returned. The CLI is a separate process, as in production.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/netbpf.js', import.meta.url));

/** The parts of a top JSON snapshot the scenario tests read. */
export interface TopSnapshot {
  type: 'top';
  final?: boolean;
  rows: Array<{
    key: string;
    health: string;
    connects: { attempts: number; failures: number; byClass: Record<string, number> };
    retrans: { segs: number; ratio: number; segsOut: number };
    drops: { total: number; byReason: Record<string, number>; purges: number };
    diagnoses: Array<{ code: string; severity: string; text: string }>;
  }>;
  [k: string]: unknown;
}

export interface TopRun { lines: Array<Record<string, unknown>>; final: TopSnapshot; stderr: string; code: number | null }

/**
 * Runs top for remote addresses in `cidr` (extra args appended, e.g. --conntrack) around `work`; `prefix` runs it inside a namespace
 * (e.g. ['nsenter', '--net=/run/netns/X']). `settleMs` after the work lets late events arrive.
 */
export async function topAround<T>(cidr: string, work: () => Promise<T>, opts: { args?: string[]; prefix?: string[]; settleMs?: number } = {}): Promise<{ top: TopRun; result: T }> {
  const argv = [...(opts.prefix ?? []), process.execPath, BIN, 'top', '--json', '-i', '1', '-b', 'endpoint', '--top', '1000', '-c', cidr, ...(opts.args ?? [])];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  try {
    // Every tool reports its start (or its error) before tracing begins.
    for (const t0 = Date.now(); (out.match(/"type":"start"/g) ?? []).length < 4; ) {
      // Bounded at 90 s: about a second here, far longer under emulation (the kernel matrix guests).
      if (child.exitCode !== null || Date.now() - t0 > 90000) throw new Error(`top did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await work();
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 1500));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const code = await exited;
    clearTimeout(timer);
    const lines = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const final = lines.filter((l) => l.type === 'top').pop() as TopSnapshot | undefined;
    if (!final) throw new Error(`top printed no snapshot: ${err}`);
    return { top: { lines, final, stderr: err, code }, result };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** The final row of a destination, or undefined. */
export function rowOf(top: TopRun, key: string): TopSnapshot['rows'][number] | undefined {
  return top.final.rows.find((r) => r.key === key);
}
