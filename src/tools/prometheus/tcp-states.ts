/**
 * Open TCP connections by state, per network namespace, for netbpf_tcp_connections: this process's namespace
 * and every one `--netns` names (PIDs, files, `ip netns` names, or `all`, rescanned at each read), counted at
 * scrape time from inet_diag dumps (core/sock-diag.ts: what `ss -tan` lists, TIME_WAIT and request sockets
 * included, which the socket iterator cannot see). A namespace whose dump fails has no counts in that read
 * (never the previous ones) and an error; with `all`, a namespace that vanished since the scan is simply gone.
 */
import { statSync } from 'node:fs';
import { ownNetns, resolveNetns, scanNetns, type NetnsInfo, type NetnsPlan } from '../../core/ctnetlink.js';
import { countTcpStates, type TcpStateCounts } from '../../core/sock-diag.js';
import type { TcpState } from '../../core/tcp.js';

/** One namespace's read: its sockets by state, or why they could not be counted. */
export type TcpNamespaceCount =
  | { netns: number; name: string | null; states: Map<TcpState, number>; elapsedMs: number; error: null }
  | { netns: number; name: string | null; states: null; elapsedMs: number; error: string };

export interface TcpStateCensusOptions {
  /** Called once per namespace and distinct error message (not at every scrape), e.g. to log it. */
  onError?: (ns: NetnsInfo, message: string) => void;
  /** How a namespace is counted (a namespace file; null: this process's). Default: an inet_diag dump. */
  count?: (netnsPath: string | null) => Promise<TcpStateCounts>;
}

/** Counts TCP sockets by state in this process's namespace and the watched ones. */
export class TcpStateCensus {
  private readonly plan: NetnsPlan;
  private readonly own: NetnsInfo;
  private readonly count: (netnsPath: string | null) => Promise<TcpStateCounts>;
  private readonly onError?: (ns: NetnsInfo, message: string) => void;
  /** The error last reported per namespace (so a persistent one is reported once). */
  private readonly reported = new Map<number, string>();

  /** `netns`: as `--netns` (usage errors for names that do not resolve); this process's namespace is always counted. */
  constructor(netns: string[] = [], opts: TcpStateCensusOptions = {}) {
    this.own = resolveNetns([]).targets[0];
    this.plan = netns.length ? resolveNetns(netns) : { all: false, targets: [], onlyOwn: true };
    this.count = opts.count ?? countTcpStates;
    this.onError = opts.onError;
  }

  /** The namespaces a read counts now: this process's first, then the watched ones (with `all`: as scanned now). */
  namespaces(): NetnsInfo[] {
    const own = ownNetns();
    const targets = this.plan.all ? [...scanNetns().values()] : this.plan.targets;
    return [this.own, ...targets.filter((t) => t.netns !== own)];
  }

  /** Every namespace's counts now (dumps run in parallel, on the addon's worker threads). */
  async read(): Promise<TcpNamespaceCount[]> {
    const own = ownNetns();
    const out = await Promise.all(this.namespaces().map(async (ns): Promise<TcpNamespaceCount | null> => {
      const t0 = performance.now();
      try {
        const c = await this.count(ns.netns === own ? null : ns.path);
        // A path that now opens another namespace (a PID reused, a name re-created) is not the one watched.
        if (c.netns !== ns.netns) throw new Error(`${ns.path} is now network namespace ${c.netns}, not ${ns.netns}`);
        this.reported.delete(ns.netns);
        return { netns: ns.netns, name: ns.name, states: c.states, elapsedMs: c.elapsedMs, error: null };
      } catch (err) {
        if (this.plan.all && ns.netns !== own && gone(ns)) return null;
        const message = (err as Error).message;
        if (this.reported.get(ns.netns) !== message) { this.reported.set(ns.netns, message); this.onError?.(ns, message); }
        return { netns: ns.netns, name: ns.name, states: null, elapsedMs: performance.now() - t0, error: message };
      }
    }));
    return out.filter((c): c is TcpNamespaceCount => c !== null);
  }
}

/** A namespace whose file no longer opens it (its last process exited, its `ip netns` name removed). */
function gone(ns: NetnsInfo): boolean {
  try { return statSync(ns.path).ino !== ns.netns; } catch { return true; }
}
