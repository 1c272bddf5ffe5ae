/** Helpers for the reliability suite: run the CLI as a separate process (as users do), read BPF object ids a
 * process holds (from its fds), ask bpftool which ids still exist, sample memory, build the C helpers. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const netbpfBin = join(root, 'bin', 'netbpf.js');

export interface CliResult { code: number | null; signal: string | null; stdout: string; stderr: string }

/** A running `netbpf ...`: output collected, waitFor() on stderr/stdout, bounded stop. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exit: Promise<CliResult>;
  constructor(args: string[], opts: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}) {
    const argv = [...(opts.prefix ?? []), process.execPath, netbpfBin, ...args];
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exit = new Promise((resolve) => this.child.once('close', (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })));
  }

  get pid(): number { return this.child.pid!; }

  /** Resolves once `re` matches the stream; rejects on exit or after timeoutMs. */
  async waitFor(re: RegExp, stream: 'stdout' | 'stderr' = 'stderr', timeoutMs = 15000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exit.then(() => { exited = true; });
    for (;;) {
      const m = re.exec(this[stream]);
      if (m) return m;
      if (exited || Date.now() > deadline) throw new Error(`no ${re} on ${stream} (${exited ? 'exited' : 'timeout'}): ${this.stderr.slice(-600)}`);
      await sleep(20);
    }
  }

  /** Sends `signal` and waits (bounded) for the exit; SIGKILL after the bound. */
  async stop(signal: NodeJS.Signals = 'SIGINT', timeoutMs = 10000): Promise<CliResult> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exit;
    clearTimeout(timer);
    return r;
  }
}

/** Runs `netbpf args` to completion (bounded). */
export function runCli(args: string[], opts: { prefix?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const p = new CliProcess(args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 20000);
  return p.exit.finally(() => clearTimeout(timer));
}

export interface BpfIds { progs: number[]; maps: number[]; links: number[] }

/** BPF programs, maps and links a process holds open, read from its fds' fdinfo (exact, whoever else runs BPF). */
export function bpfIdsOf(pid: number): BpfIds {
  const ids: BpfIds = { progs: [], maps: [], links: [] };
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    if (!target.startsWith('anon_inode:bpf')) continue;
    let info = '';
    try { info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
    if (target === 'anon_inode:bpf-prog') ids.progs.push(field('prog_id'));
    else if (target === 'anon_inode:bpf-map') ids.maps.push(field('map_id'));
    else if (target === 'anon_inode:bpf_link') ids.links.push(field('link_id'));
  }
  return ids;
}

/** Ids that bpftool still lists (the kernel's view), with the names of programs that remain. */
export function bpftoolLive(): { progs: Map<number, string>; maps: Set<number>; links: Set<number> } {
  const json = (what: string) => JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8', maxBuffer: 64 << 20 }) || '[]') as Array<{ id: number; name?: string }>;
  return {
    progs: new Map(json('prog').map((p) => [p.id, p.name ?? ''])),
    maps: new Set(json('map').map((m) => m.id)),
    links: new Set(json('link').map((l) => l.id)),
  };
}

/** Resident set size of a process in KiB (0 once it is gone). */
export function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Children of a process (all its threads). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try { out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)); } catch { /* thread gone */ }
  }
  return out;
}

/** Whether a pid runs (a zombie awaiting its reaper does not run). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Compiles test/reliability/<name>.c into build/reliability/<name> (once per run). */
export function buildHelper(name: string): string {
  const dir = join(root, 'build', 'reliability');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  execFileSync('cc', ['-O2', '-Wall', '-o', out, join(root, 'test', 'reliability', `${name}.c`)]);
  return out;
}

/** JSON lines of a stream (lines that are not JSON are skipped). */
export function jsonLines(text: string): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try { out.push(JSON.parse(l)); } catch { /* partial line */ }
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it returns true or timeoutMs passes. */
export async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(50);
  }
  return check();
}
