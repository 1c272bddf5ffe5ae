/**
 * netbpf conntrack, table pressure: each watched namespace's table (entries, max) and the kernel's conntrack statistics,
 * and the ctnetlink sockets' delivery counts.
 */
import type { CtnetlinkNetnsStats } from '../../core/addon.js';
import { readNetnsTable, type NetnsInfo } from '../../core/ctnetlink.js';

/** conntrack statistics of the caller's namespace: table fill and the kernel's per-CPU counters, summed. */
export interface ConntrackStats {
  /** Entries now (net.netfilter.nf_conntrack_count) and the limit (nf_conntrack_max; global on many kernels). */
  count: number;
  max: number;
  /** Sums over CPUs of /proc/net/stat/nf_conntrack columns (found, invalid, insert_failed, drop, early_drop, ...). */
  stat: Record<string, number>;
}

/** The caller's namespace's conntrack statistics (readNetnsTable() reads any namespace's). */
export function readConntrackStats(): ConntrackStats | null {
  try {
    const t = readNetnsTable(null);
    return t ? { count: t.entries, max: t.max, stat: t.stat } : null;
  } catch {
    return null;
  }
}

/** Table pressure of one namespace: the count now and the kernel's counters since it was first watched. */
export interface ConntrackPressure {
  netns: number;
  /** `ip netns` name, when it has one. */
  name: string | null;
  count: number;
  max: number;
  /** Packets dropped because no entry could be allocated (table full and nothing to early-drop). */
  drop: number;
  /** Entries evicted to make room (table full). */
  earlyDrop: number;
  /** Entries that could not be inserted (clash, or table full at confirm). */
  insertFailed: number;
  invalid: number;
}

/** Reads the netfilter sysctls that decide what destroy events carry (the caller's namespace). */
export function conntrackSysctls(): { acct: boolean | null; timestamp: boolean | null; events: boolean | null } {
  try {
    const t = readNetnsTable(null);
    return { acct: t?.acct ?? null, timestamp: t?.timestamp ?? null, events: t?.events === null || t?.events === undefined ? null : t.events !== 0 };
  } catch {
    return { acct: null, timestamp: null, events: null };
  }
}

/** A change in the set of watched namespaces. */
export interface NetnsChange {
  change: 'watched' | 'added' | 'removed';
  time: number;
  namespaces: NetnsInfo[];
  /** Namespaces that could not be watched, with the reason (e.g. gone before their sockets were opened). */
  failed?: Array<{ netns: number; path: string; error: string }>;
}

/**
 * Events the ctnetlink path received and lost, from the kernel's own counts. NEW sockets never ask for
 * re-delivery: each NEW the kernel could not queue is counted in that socket's sk_drops (exact). DESTROY sockets
 * in reliable mode: a failed delivery is counted in sk_drops too, but the kernel keeps the entry on its dying
 * list and re-delivers it (retried, not lost); without reliable mode each failure is a lost DESTROY.
 */
export interface NetlinkCounts {
  received: { new: number; destroy: number };
  lost: { new: number; destroy: number };
  /** Failed DESTROY deliveries the kernel retried (reliable mode). */
  retried: number;
  /** Events received twice (another reliable listener made the kernel re-send) and passed over. */
  duplicates: number;
  /** DESTROY events taken from the kernel's dying list at stop. */
  recoveredAtStop: number;
  malformed: number;
}

/** Sums the native per-namespace counters into NetlinkCounts. */
export function netlinkCounts(stats: CtnetlinkNetnsStats[]): NetlinkCounts {
  const c: NetlinkCounts = { received: { new: 0, destroy: 0 }, lost: { new: 0, destroy: 0 }, retried: 0, duplicates: 0, recoveredAtStop: 0, malformed: 0 };
  for (const s of stats) {
    if (s.new) { c.received.new += s.new.received; c.lost.new += s.new.drops; }
    if (s.destroy) {
      c.received.destroy += s.destroy.received;
      if (s.destroy.reliable) c.retried += s.destroy.drops;
      else c.lost.destroy += s.destroy.drops;
    }
    c.duplicates += s.duplicates;
    c.recoveredAtStop += s.recoveredAtStop;
    c.malformed += s.malformed;
  }
  return c;
}
