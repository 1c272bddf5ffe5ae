/**
 * What the failure scenarios need beyond NetnsPair: the kernel's own counters of a namespace (/proc/net/snmp
 * and /proc/net/netstat, flattened as "Tcp.RetransSegs", "TcpExt.ListenOverflows"), sockets as `ss` lists
 * them, conntrack's per-CPU statistics, and the misbehaving peers of peers.py.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type NetnsPair, parseSnmp } from '../../src/testing/netns.js';

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
