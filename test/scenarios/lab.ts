/**
 * What the failure scenarios need beyond NetnsPair: the kernel's own counters of a namespace (/proc/net/snmp
 * and /proc/net/netstat, flattened as "Tcp.RetransSegs", "TcpExt.ListenOverflows"), sockets as `ss` lists
 * them, conntrack's per-CPU statistics, and the misbehaving peers of peers.py.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type NetnsPair, parseSnmp } from '../../src/testing/netns.js';
import { readNetnsTable, scanNetns } from '../../src/core/ctnetlink.js';

export const PEERS = fileURLToPath(new URL('./peers.py', import.meta.url));

/** Kernel counters of one namespace, "Group.Name" -> value (snmp and netstat together). */
export type Counters = Record<string, number>;

export async function counters(p: NetnsPair, ns: string): Promise<Counters> {
  const { stdout } = await p.exec(ns, ['cat', '/proc/net/snmp', '/proc/net/netstat']);
  const out: Counters = {};
  for (const [group, values] of Object.entries(parseSnmp(stdout))) for (const [k, v] of Object.entries(values)) out[`${group}.${k}`] = v;
  return out;
}

/** after - before for every counter that moved. */
export function delta(before: Counters, after: Counters): Counters {
  const out: Counters = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

/** One socket as `ss -Htanp` prints it. */
export interface SsSocket { state: string; recvQ: number; sendQ: number; local: string; peer: string; process: string }

/** Sockets in a namespace (`ss -Htanp` plus a filter such as `state close-wait`). */
export async function sockets(p: NetnsPair, ns: string, filter: string[] = []): Promise<SsSocket[]> {
  const { stdout } = await p.exec(ns, ['ss', '-Htanp', ...filter]);
  return stdout.split('\n').filter((l) => l.trim()).map((l) => {
    // With a state filter ss leaves the state column out.
    const cells = l.trim().split(/\s+/);
    const hasState = !/^\d+$/.test(cells[0]);
    const [state, recvQ, sendQ, local, peer, ...rest] = hasState ? cells : ['', ...cells];
    return { state, recvQ: Number(recvQ), sendQ: Number(sendQ), local, peer, process: rest.join(' ') };
  });
}

/** Sums of /proc/net/stat/nf_conntrack columns over CPUs (entries: the namespace's count, repeated per CPU). */
export async function conntrackStat(p: NetnsPair, ns: string): Promise<Record<string, number>> {
  const { stdout } = await p.exec(ns, ['cat', '/proc/net/stat/nf_conntrack']);
  const [head, ...rows] = stdout.trim().split('\n');
  const names = head.trim().split(/\s+/);
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const r of rows) r.trim().split(/\s+/).forEach((v, i) => { out[names[i]] += parseInt(v, 16); });
  out.entries = rows.length ? parseInt(rows[0].trim().split(/\s+/)[0], 16) : 0;
  return out;
}

/** A peers.py process: ready() once it listens, stop() for its JSON account. */
export class Peer {
  private out = '';
  private readonly exited: Promise<void>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    this.exited = new Promise((r) => child.once('close', () => r()));
  }

  async ready(timeoutMs = 10000): Promise<this> {
    for (const t0 = Date.now(); !this.out.includes('ready'); ) {
      if (this.child.exitCode !== null || Date.now() - t0 > timeoutMs) throw new Error(`peer not ready: ${this.out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this;
  }

  /** Its JSON line (after SIGTERM, or once it ends on its own). */
  async result(signal = true, timeoutMs = 15000): Promise<Record<string, unknown>> {
    if (signal && this.child.exitCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    const line = this.out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    if (!line) throw new Error(`peer printed no result: ${this.out}`);
    return JSON.parse(line) as Record<string, unknown>;
  }
}

/** Starts peers.py MODE in a namespace (a server: wait for ready()). */
export function peer(p: NetnsPair, ns: string, mode: string, args: Record<string, string | number>): Peer {
  const argv = ['python3', PEERS, mode];
  for (const [k, v] of Object.entries(args)) argv.push(`--${k}`, String(v));
  return new Peer(p.spawn(ns, argv));
}

/** Runs a peers.py client to completion and returns its JSON account. */
export function peerClient(p: NetnsPair, ns: string, mode: string, args: Record<string, string | number>): Promise<Record<string, unknown>> {
  return peer(p, ns, mode, args).result(false);
}

const CT_MAX = '/proc/sys/net/netfilter/nf_conntrack_max';
const CT_MAX_LOCK = '/run/netbpf-test-nf_conntrack_max.lock';

/** The global nf_conntrack_max, held by one test at a time (lockConntrackMax()). */
export interface ConntrackMaxLock {
  /** The value before this test lowered it, restored by restore() and release(). */
  original: number;
  /** Waits (bounded) until every namespace on this machine but `own` (inode) holds under half of `max` entries:
   * the limit is global, a neighbour at it would have its packets dropped too. */
  quiet(max: number, own: number): Promise<void>;
  set(max: number): void;
  restore(): void;
  /** Restores the original and lets the next test take the lock. */
  release(): void;
}

const alive = (pid: number) => {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
};

/**
 * Takes the global nf_conntrack_max for a test that lowers it (on 6.18 it is read-only in any namespace but the
 * initial one, so a "per-namespace" limit is this global one compared with each namespace's own count). A lock
 * directory, made atomically, holds the owner's pid and the value to restore: two tests (or two worktrees on one
 * machine) never save each other's lowered value as "the original", and a test killed while it held the limit
 * low has the value restored by the next one.
 */
export async function lockConntrackMax(timeoutMs = 60000): Promise<ConntrackMaxLock> {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 100))) {
    try {
      mkdirSync(CT_MAX_LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: { pid: number; original: number } | null = null;
    try { owner = JSON.parse(readFileSync(`${CT_MAX_LOCK}/owner`, 'utf8')) as { pid: number; original: number }; } catch { /* being written */ }
    let age = 0;
    try { age = Date.now() - statSync(CT_MAX_LOCK).mtimeMs; } catch { continue; }
    if (owner ? !alive(owner.pid) : age > 10000) {
      if (owner) writeFileSync(CT_MAX, `${owner.original}\n`);
      rmSync(CT_MAX_LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`nf_conntrack_max is held by pid ${owner?.pid} (${CT_MAX_LOCK})`);
  }
  const original = Number(readFileSync(CT_MAX, 'utf8').trim());
  writeFileSync(`${CT_MAX_LOCK}/owner`, JSON.stringify({ pid: process.pid, original }));
  const restore = () => writeFileSync(CT_MAX, `${original}\n`);
  return {
    original,
    quiet: async (max, own) => {
      for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 250))) {
        const busy = [...scanNetns().values()].filter((n) => n.netns !== own).map((n) => {
          try { return { n, entries: readNetnsTable(n)?.entries ?? 0 }; } catch { return { n, entries: 0 }; }
        }).filter((x) => x.entries * 2 >= max);
        if (!busy.length) break;
        if (Date.now() - t0 > timeoutMs) {
          throw new Error(`not lowering the global nf_conntrack_max to ${max}: ${busy.map((x) => `${x.n.name ?? x.n.path} holds ${x.entries} entries`).join(', ')}`);
        }
      }
    },
    set: (max) => writeFileSync(CT_MAX, `${max}\n`),
    restore,
    release: () => {
      restore();
      rmSync(CT_MAX_LOCK, { recursive: true, force: true });
    },
  };
}
