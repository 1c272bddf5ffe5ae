/**
 * Native ctnetlink (addon/ctnetlink.cc) and network namespaces: conntrack NEW/DESTROY events of chosen
 * namespaces as struct ct_event records, table dumps, each namespace's conntrack statistics as the kernel
 * reports them, and how namespaces are named (`--netns PATH|PID|NAME|all`) and found.
 */
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { addon, type NativeCtnetlink, type CtnetlinkOptions } from './addon.js';
import { NetbpfError, usageError } from './errors.js';

/** A network namespace: its inode (the identity events carry), a file that opens it, and how it is known. */
export interface NetnsInfo {
  netns: number;
  /** A file that opens it: /run/netns/NAME, /proc/PID/ns/net. */
  path: string;
  /** Its `ip netns` name, when it has one. */
  name: string | null;
  /** Some processes in it (at most 8), lowest first. */
  pids: number[];
}

const RUN_NETNS = '/run/netns';
const MAX_PIDS = 8;

/** Inode of this process's network namespace. */
export function ownNetns(): number {
  return statSync('/proc/self/ns/net').ino;
}

/** Every network namespace visible now: those of all processes (/proc/PID/ns/net) and `ip netns` mounts. */
export function scanNetns(): Map<number, NetnsInfo> {
  const found = new Map<number, NetnsInfo>();
  const nsfsDev = statSync('/proc/self/ns/net').dev;
  let names: string[] = [];
  try { names = readdirSync(RUN_NETNS); } catch { /* no ip netns namespaces */ }
  for (const name of names.sort()) {
    const path = `${RUN_NETNS}/${name}`;
    try {
      const st = statSync(path);
      // A bind-mounted namespace lives on nsfs; an unmounted leftover file does not.
      if (st.dev !== nsfsDev || found.has(st.ino)) continue;
      found.set(st.ino, { netns: st.ino, path, name, pids: [] });
    } catch { /* removed meanwhile */ }
  }
  let pids: number[] = [];
  try { pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => a - b); } catch { /* no /proc */ }
  for (const pid of pids) {
    let link: string;
    try { link = readlinkSync(`/proc/${pid}/ns/net`); } catch { continue; }
    const inode = Number(/^net:\[(\d+)\]$/.exec(link)?.[1]);
    if (!inode) continue;
    const info = found.get(inode);
    if (!info) found.set(inode, { netns: inode, path: `/proc/${pid}/ns/net`, name: null, pids: [pid] });
    else if (info.pids.length < MAX_PIDS) info.pids.push(pid);
  }
  return found;
}

/** What `--netns` asked for: every namespace (and later ones), or these. */
export interface NetnsPlan {
  all: boolean;
  /** The namespaces to watch now (with `all`: every one visible at resolution time). */
  targets: NetnsInfo[];
  /** Only this process's own namespace is watched (the default). */
  onlyOwn: boolean;
}

/**
 * Resolves `--netns` values: `all`, a PID, a namespace file (/run/netns/NAME, /proc/PID/ns/net, any bind mount
 * of one) or an `ip netns` name. No values: this process's namespace. Bad values are usage errors.
 */
export function resolveNetns(specs: string[] = []): NetnsPlan {
  const own = ownNetns();
  const scan = scanNetns();
  const ownInfo = (): NetnsInfo => scan.get(own) ?? { netns: own, path: '/proc/self/ns/net', name: null, pids: [process.pid] };
  if (specs.length === 0) return { all: false, targets: [ownInfo()], onlyOwn: true };
  if (specs.includes('all')) {
    const targets = [...scan.values()].sort((a, b) => (a.netns === own ? -1 : b.netns === own ? 1 : a.netns - b.netns));
    return { all: true, targets, onlyOwn: false };
  }
  const nsfsDev = statSync('/proc/self/ns/net').dev;
  const byInode = new Map<number, NetnsInfo>();
  for (const spec of specs) {
    let path: string;
    if (/^\d+$/.test(spec)) path = `/proc/${spec}/ns/net`;
    else if (spec.includes('/')) path = spec;
    else path = `${RUN_NETNS}/${spec}`;
    let st;
    try { st = statSync(path); } catch {
      throw usageError(/^\d+$/.test(spec) ? `--netns ${spec}: no process with pid ${spec}` : `--netns ${spec}: no network namespace at ${path}`);
    }
    if (st.dev !== nsfsDev) throw usageError(`--netns ${spec}: ${path} is not a namespace file (expected /run/netns/NAME, /proc/PID/ns/net or a PID)`);
    const known = scan.get(st.ino);
    // Which kind of namespace a nsfs file is: only a net namespace's file has the inode its /proc link names.
    const link = /^\d+$/.test(spec) ? readlinkSync(path) : null;
    if (link !== null && !link.startsWith('net:')) throw usageError(`--netns ${spec}: not a network namespace`);
    byInode.set(st.ino, { netns: st.ino, path, name: known?.name ?? null, pids: known?.pids ?? [] });
  }
  const targets = [...byInode.values()];
  return { all: false, targets, onlyOwn: targets.length === 1 && targets[0].netns === own };
}

/** How a namespace is shown: "4026531840 (ip netns ctA, pid 123)". */
export function describeNetns(n: NetnsInfo, own = ownNetns()): string {
  const parts: string[] = [];
  if (n.netns === own) parts.push('this process');
  if (n.name) parts.push(`ip netns ${n.name}`);
  if (n.pids.length && n.netns !== own) parts.push(`pid ${n.pids[0]}${n.pids.length > 1 ? ` +${n.pids.length - 1}` : ''}`);
  return `${n.netns}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** One namespace's conntrack table and statistics, exact as the kernel reports them (not since start). */
export interface NetnsTableStats {
  netns: number;
  /** When read, ms since the epoch. */
  time: number;
  /** Entries now (net.netfilter.nf_conntrack_count of that namespace). */
  entries: number;
  /** net.netfilter.nf_conntrack_max: the limit each namespace's count is compared with (global on 6.x). */
  max: number;
  /** /proc/net/stat/nf_conntrack of that namespace, each column summed over CPUs (found, invalid, insert,
   * insert_failed, drop, early_drop, error, search_restart, ... as this kernel names them); `entries` left out. */
  stat: Record<string, number>;
  /** Sysctls of that namespace that decide what events say: nf_conntrack_events (0, 1, 2), _acct, _timestamp. */
  events: number | null;
  acct: boolean | null;
  timestamp: boolean | null;
}

/** Sums /proc/net/stat/nf_conntrack (a header line, one line of hex columns per CPU) per column. */
export function parseConntrackStat(text: string): Record<string, number> {
  const lines = text.trim().split('\n');
  const names = lines[0].trim().split(/\s+/);
  const stat: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const line of lines.slice(1)) line.trim().split(/\s+/).forEach((v, i) => { if (names[i]) stat[names[i]] += parseInt(v, 16); });
  delete stat.entries; // per-CPU copies of the namespace's count, not a counter
  return stat;
}

const TABLE_FILES = [
  '/proc/thread-self/net/stat/nf_conntrack',
  '/proc/sys/net/netfilter/nf_conntrack_count',
  '/proc/sys/net/netfilter/nf_conntrack_max',
  '/proc/sys/net/netfilter/nf_conntrack_events',
  '/proc/sys/net/netfilter/nf_conntrack_acct',
  '/proc/sys/net/netfilter/nf_conntrack_timestamp',
];

/**
 * Reads a namespace's conntrack statistics from inside it (a helper thread enters the namespace: /proc/net and
 * /proc/sys/net show the reading thread's namespace). null: no conntrack there (module not loaded).
 */
export function readNetnsTable(n: Pick<NetnsInfo, 'netns' | 'path'> | null): NetnsTableStats | null {
  const [stat, count, max, events, acct, ts] = addon().netnsReadFiles(n?.path ?? null, TABLE_FILES);
  if (stat === null || count === null) return null;
  const num = (t: string | null) => (t === null ? null : Number(t.trim()));
  return {
    netns: n?.netns ?? ownNetns(), time: Date.now(), entries: Number(count.trim()), max: num(max) ?? 0, stat: parseConntrackStat(stat),
    events: num(events), acct: acct === null ? null : acct.trim() !== '0', timestamp: ts === null ? null : ts.trim() !== '0',
  };
}

/** Turns an addon ctnetlink error into one line with its class (privilege, kernel feature, runtime). */
export function ctnetlinkError(what: string, err: unknown): NetbpfError {
  const e = err as { errno?: number; message?: string };
  if (e.errno === 1 || e.errno === 13) return new NetbpfError('privilege', `${what}: ${e.message} (ctnetlink needs CAP_NET_ADMIN; entering a namespace needs CAP_SYS_ADMIN)`, { errno: e.errno, cause: err });
  if (e.errno === 93 || e.errno === 97) return new NetbpfError('kernel', `${what}: ${e.message} (no ctnetlink: CONFIG_NF_CT_NETLINK / nf_conntrack_netlink module)`, { errno: e.errno, cause: err });
  return new NetbpfError('runtime', `${what}: ${e.message ?? String(err)}`, { errno: e.errno, cause: err });
}

/** Starts the native ctnetlink reader (no namespaces yet: add them with addNetns). */
export function openCtnetlink(onBatch: (batch: ArrayBuffer) => void, opts: CtnetlinkOptions): NativeCtnetlink {
  return new (addon().Ctnetlink)(onBatch, opts);
}

/**
 * Every conntrack entry of a namespace (null: this process's), or of its dying list (entries whose DESTROY
 * event the kernel still has to re-deliver), as CT_EVENT_LISTED records framed like event batches.
 */
export async function dumpConntrackTable(netnsPath: string | null = null, dying = false): Promise<ArrayBuffer> {
  try {
    return await addon().ctnetlinkDump(netnsPath, dying);
  } catch (err) {
    throw ctnetlinkError('conntrack table dump', err);
  }
}
