/**
 * netbpf conntrack: conntrack entries created and destroyed (bpf/conntrack.bpf.c, or native ctnetlink where no
 * BPF hook sees them: addon/ctnetlink.cc writes the same struct ct_event records), with both tuples (DNAT/SNAT
 * visible), TCP state, zone, mark, counters and lifetime; each watched namespace's table and the kernel's
 * conntrack statistics; a per-destination aggregator. The ctnetlink and netfilter-program paths watch chosen
 * network namespaces (`netns`: the caller's by default); the fexit/kprobe paths see every namespace.
 */
import { statSync } from 'node:fs';
import { formatEndpoint, cidrContains, parseCidr, type Family, AF_INET, AF_INET6 } from '../core/address.js';
import { addon, type CtnetlinkNetnsStats, type NativeBpfObject, type NativeCtnetlink } from '../core/addon.js';
import {
  ctnetlinkError, describeNetns, dumpConntrackTable, openCtnetlink, ownNetns, readNetnsTable, resolveNetns, scanNetns,
  type NetnsInfo, type NetnsPlan, type NetnsTableStats,
} from '../core/ctnetlink.js';
import { usageError } from '../core/errors.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { fentry, kprobe, type HookAlternative } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { type CtTuple, type NatResolver } from '../core/nat.js';
import { ClockMapper, readAddress } from '../core/record.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import { Trace, type TraceCounters, type StartInfo, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { CONNTRACK_RODATA, CT_EVENT_KIND, CT_EVENT_LAYOUT, CT_FLAGS } from './conntrack/bpf.gen.js';

/** struct ct_event (bpf/conntrack.h): [offset, size] of each field. */
export { CT_EVENT_LAYOUT as CONNTRACK_LAYOUT };
const { CT_FLAG_ACCT, CT_FLAG_TSTAMP, CT_FLAG_NETLINK } = CT_FLAGS;
const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 58: 'icmpv6', 132: 'sctp', 136: 'udplite' };

/** A conntrack entry created (confirmed into the table) or destroyed. */
export interface ConntrackEvent {
  type: 'conntrack';
  kind: 'new' | 'destroy';
  /** Wall-clock time, ms since the epoch. */
  time: number;
  family: Family;
  protocol: number;
  protocolName: string;
  /** Original direction (as the client sent it: dst is the address it connected to, e.g. a VIP). */
  orig: CtTuple;
  /** Reply direction: src is who really answers (the DNAT backend), dst the (SNAT) address answered. */
  reply: CtTuple;
  /** Destination / source translated. */
  dnat: boolean;
  snat: boolean;
  /** TCP conntrack state name (ESTABLISHED, TIME_WAIT, ...), null for other protocols. */
  tcpState: string | null;
  zone: number;
  mark: number;
  /** [original, reply] counters; null unless nf_conntrack_acct=1 when the entry was created. */
  packets: [number, number] | null;
  bytes: [number, number] | null;
  /** Destroy events: how long the entry lived, ms; null when unknown. */
  lifetimeMs: number | null;
  /** Inode of the entry's network namespace. */
  netns: number;
  /** Which mechanism reported it. */
  source: 'bpf' | 'ctnetlink';
}

/** A conntrack entry as a table dump lists it. */
export type ConntrackEntry = Omit<ConntrackEvent, 'type' | 'kind' | 'lifetimeMs'>;

/** TCP conntrack state names by number, from the running kernel's enum tcp_conntrack. */
function tcpConntrackStates(): string[] {
  const names: string[] = [];
  try {
    for (const [name, value] of addon().kernelBtfEnum('tcp_conntrack') ?? []) names[value] = name.replace(/^TCP_CONNTRACK_/, '');
  } catch { /* no BTF: numbers are shown */ }
  return names;
}

const F = CT_EVENT_LAYOUT.fields;
/** Element sizes of the [original, reply] counter arrays. */
const A = CT_EVENT_LAYOUT.arrays;

/** Decodes one struct ct_event, written by a BPF program or by the addon from a ctnetlink message. */
export function decodeConntrack(view: DataView, o: number, clock: ClockMapper, tcpStates: string[]): ConntrackEvent {
  const family = view.getUint16(o + F.family[0], true);
  const tuple = (src: number, dst: number, sport: number, dport: number): CtTuple => ({
    src: readAddress(view, o + src, family), dst: readAddress(view, o + dst, family),
    sport: view.getUint16(o + sport, true), dport: view.getUint16(o + dport, true),
  });
  const orig = tuple(F.orig_src[0], F.orig_dst[0], F.orig_sport[0], F.orig_dport[0]);
  const reply = tuple(F.reply_src[0], F.reply_dst[0], F.reply_sport[0], F.reply_dport[0]);
  const flags = view.getUint8(o + F.flags[0]);
  const protocol = view.getUint8(o + F.protocol[0]);
  const kind = view.getUint8(o + F.kind[0]) === CT_EVENT_KIND.CT_EVENT_DESTROY ? 'destroy' : 'new';
  const time = clock.toEpochMs(Number(view.getBigUint64(o + F.ts_ns[0], true)));
  const u64 = (off: number) => Number(view.getBigUint64(o + off, true));
  const startNs = u64(F.start_ns[0]);
  const tcpStateNum = view.getUint8(o + F.tcp_state[0]);
  return {
    type: 'conntrack', kind, time, family: family === AF_INET ? 4 : 6, protocol, protocolName: PROTOCOL_NAMES[protocol] ?? String(protocol),
    orig, reply, dnat: reply.src !== orig.dst || reply.sport !== orig.dport, snat: reply.dst !== orig.src || reply.dport !== orig.sport,
    tcpState: protocol === 6 ? (tcpStates[tcpStateNum] ?? String(tcpStateNum)) : null,
    zone: view.getUint16(o + F.zone[0], true), mark: view.getUint32(o + F.mark[0], true),
    packets: flags & CT_FLAG_ACCT ? [u64(F.packets[0]), u64(F.packets[0] + A.packets[0])] : null,
    bytes: flags & CT_FLAG_ACCT ? [u64(F.bytes[0]), u64(F.bytes[0] + A.bytes[0])] : null,
    // start is CLOCK_REALTIME ns; the event time is wall-clock too.
    lifetimeMs: kind === 'destroy' && flags & CT_FLAG_TSTAMP && startNs > 0 ? Math.max(0, time - startNs / 1e6) : null,
    netns: view.getUint32(o + F.netns[0], true), source: flags & CT_FLAG_NETLINK ? 'ctnetlink' : 'bpf',
  };
}

/**
 * The user's filters applied to a record in user space (the ctnetlink path; BPF programs filter in the kernel),
 * on the original direction as bpf/conntrack.bpf.c does: family, local port = orig sport, remote port = orig
 * dport, remote CIDRs = orig dst.
 */
export function recordFilter(f: FilterOptions): (view: DataView, o: number) => boolean {
  const family = f.family === 4 ? AF_INET : f.family === 6 ? AF_INET6 : 0;
  const cidrs = (f.remoteCidrs ?? []).map(parseCidr);
  if (!family && !f.localPort && !f.remotePort && !cidrs.length) return () => true;
  return (view, o) => {
    if (family && view.getUint16(o + F.family[0], true) !== family) return false;
    if (f.localPort && view.getUint16(o + F.orig_sport[0], true) !== f.localPort) return false;
    if (f.remotePort && view.getUint16(o + F.orig_dport[0], true) !== f.remotePort) return false;
    if (cidrs.length) {
      const addr = new Uint8Array(view.buffer, view.byteOffset + o + F.orig_dst[0], 16);
      if (!cidrs.some((c) => cidrContains(c, addr))) return false;
    }
    return true;
  };
}

/** Calls `each` for every record of a batch framed [u32 length][record]...; returns how many had another size. */
export function forEachRecord(batch: ArrayBuffer, each: (view: DataView, offset: number) => void): number {
  const view = new DataView(batch);
  let malformed = 0;
  for (let off = 0; off + 4 <= batch.byteLength; ) {
    const len = view.getUint32(off, true);
    if (len === CT_EVENT_LAYOUT.size && off + 4 + len <= batch.byteLength) each(view, off + 4);
    else malformed++;
    off += 4 + len;
  }
  return malformed;
}

/** Identity of an entry across its NEW and DESTROY events. */
export const entryKey = (e: { protocol: number; zone: number; netns: number; orig: CtTuple }) => `${e.netns}|${e.protocol}|${e.zone}|${e.orig.src}|${e.orig.sport}|${e.orig.dst}|${e.orig.dport}`;

export interface ConntrackOptions extends FilterOptions, TraceOptions {
  /** 'auto' (best available), 'bpf' (BPF hooks only, destroys unavailable without fexit/kprobe), 'ctnetlink'. */
  mechanism?: 'auto' | 'bpf' | 'ctnetlink';
  /**
   * Network namespaces to watch: 'all' (every one visible, and those created later), PIDs, namespace files
   * (/run/netns/NAME, /proc/PID/ns/net) or `ip netns` names. Default: the caller's.
   */
  netns?: string[];
  /** Ask the kernel to re-deliver DESTROY events it could not queue (NETLINK_BROADCAST_ERROR). Default true. */
  reliable?: boolean;
  /** ctnetlink receive buffer requested per socket, bytes (the kernel doubles it). Default 16 MiB. */
  netlinkBufferBytes?: number;
  /** How often to look for gone namespaces (released) and, with 'all', new ones (watched), ms; 0: never. Default 2000. */
  rescanMs?: number;
  /** Test hook: the ctnetlink reader sleeps this long per message (a deliberately slow reader). */
  netlinkReadDelayUs?: number;
}

/** NETFILTER program type and link attach type, by name from the kernel's BTF (null: kernel < 6.4). */
function netfilterTypes(): { progType: number; attachType: number } | null {
  try {
    const prog = addon().kernelBtfEnum('bpf_prog_type')?.find(([n]) => n === 'BPF_PROG_TYPE_NETFILTER');
    const attach = addon().kernelBtfEnum('bpf_attach_type')?.find(([n]) => n === 'BPF_NETFILTER');
    return prog && attach ? { progType: prog[1], attachType: attach[1] } : null;
  } catch {
    return null;
  }
}

/** uapi constants (stable): NFPROTO_IPV4/6, NF_INET_LOCAL_IN/POST_ROUTING. */
const NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10, NF_INET_LOCAL_IN = 1, NF_INET_POST_ROUTING = 4;
const INT_MAX = 2147483647;
/**
 * Where conntrack confirms (net/netfilter/nf_conntrack_proto.c): IPv4 LOCAL_IN and POST_ROUTING and IPv6
 * POST_ROUTING at INT_MAX (NF_IP_PRI_CONNTRACK_CONFIRM / NF_IP6_PRI_LAST), but IPv6 LOCAL_IN at
 * NF_IP6_PRI_LAST - 1. The program must run just before each: one below it.
 */
const NETFILTER_HOOKS = [
  { pf: NFPROTO_IPV4, hooknum: NF_INET_LOCAL_IN, name: 'IPv4 LOCAL_IN', confirm: INT_MAX },
  { pf: NFPROTO_IPV4, hooknum: NF_INET_POST_ROUTING, name: 'IPv4 POST_ROUTING', confirm: INT_MAX },
  { pf: NFPROTO_IPV6, hooknum: NF_INET_LOCAL_IN, name: 'IPv6 LOCAL_IN', confirm: INT_MAX - 1 },
  { pf: NFPROTO_IPV6, hooknum: NF_INET_POST_ROUTING, name: 'IPv6 POST_ROUTING', confirm: INT_MAX },
];
/** Free priorities looked for below the first choice when other hooks hold it. */
const NETFILTER_PRIORITIES = 16;
const NETFILTER_HOOK = 'netfilter LOCAL_IN+POST_ROUTING just before conntrack confirm (this netns)';

/**
 * The netfilter program's hook: LOCAL_IN and POST_ROUTING, IPv4 and IPv6, one priority below conntrack's
 * confirm hook there. The kernel refuses a BPF hook at a priority another hook of that family and hook point
 * already uses (EBUSY: net/netfilter/core.c nf_hook_entries_grow, "Restrict BPF hook type to force a unique
 * priority"). That is what refused the old single priority INT_MAX - 1 in every namespace where conntrack is
 * active: IPv6 confirms at LOCAL_IN at exactly INT_MAX - 1. Another BPF netfilter program (a second netbpf
 * conntrack here) can still hold a priority: the next free one below is taken, and the one used reported.
 */
function netfilterAlternative(onlyOwnNetns: boolean): HookAlternative {
  const alt: HookAlternative = {
    kind: 'netfilter',
    programs: ['handle_nf_confirm'],
    hook: NETFILTER_HOOK,
    missing: () => {
      if (!netfilterTypes()) return { cause: 'kernel', reason: 'no BPF netfilter programs in this kernel (needs >= 6.4)' };
      return onlyOwnNetns ? null : { cause: 'environment', reason: 'sees only the caller\'s namespace (other namespaces are watched)' };
    },
    prepare: (obj, program) => {
      const t = netfilterTypes()!;
      obj.setProgramType(program, t.progType, t.attachType);
    },
    attach: (obj: NativeBpfObject, program) => {
      const t = netfilterTypes()!;
      const lower: string[] = [];
      for (const h of NETFILTER_HOOKS) {
        for (let k = 1; ; k++) {
          try {
            obj.attachNetfilter(program, { attachType: t.attachType, pf: h.pf, hooknum: h.hooknum, priority: h.confirm - k });
            if (k > 1) lower.push(`${h.name} at confirm-${k}`);
            break;
          } catch (err) {
            const e = err as { code?: string; reason?: string };
            if (e.code !== 'EBUSY') throw err;
            if (k >= NETFILTER_PRIORITIES) {
              e.reason = `EBUSY at every priority from confirm-1 to confirm-${NETFILTER_PRIORITIES} of ${h.name}: each is held by another ` +
                'hook in this namespace (the kernel allows one BPF netfilter hook per priority; other netbpf conntrack instances here?)';
              throw err;
            }
          }
        }
      }
      alt.hook = lower.length ? `${NETFILTER_HOOK}; ${lower.join(', ')} (the priority just before confirm is held by another BPF netfilter hook here)` : NETFILTER_HOOK;
    },
  };
  return alt;
}

export function conntrackSpec(opts: ConntrackOptions = {}, onlyOwnNetns = true): TraceSpec<ConntrackEvent> {
  const clock = new ClockMapper();
  const states = tcpConntrackStates();
  // --mechanism ctnetlink: every BPF alternative is passed over (so none autoloads), and user space reads ctnetlink.
  const notWanted = (alt: HookAlternative): HookAlternative => (opts.mechanism === 'ctnetlink' ? { ...alt, missing: () => ({ cause: 'environment', reason: 'ctnetlink requested' }) } : alt);
  return {
    tool: 'conntrack',
    recordSize: CT_EVENT_LAYOUT.size,
    constants: filterConstants(opts),
    rodata: CONNTRACK_RODATA,
    hooks: [
      {
        feature: 'new entries',
        required: false,
        alternatives: [
          fentry('__nf_conntrack_confirm', 'handle_confirm_fexit', 'fexit'),
          kprobe('__nf_conntrack_confirm', 'handle_confirm_kprobe'),
          netfilterAlternative(onlyOwnNetns),
        ].map(notWanted),
      },
      {
        feature: 'destroyed entries',
        required: false,
        alternatives: [
          fentry('nf_ct_delete', 'handle_delete_fexit', 'fexit'),
          kprobe('nf_ct_delete', 'handle_delete_kprobe'),
        ].map(notWanted),
      },
    ],
    decode: (view, o) => decodeConntrack(view, o, clock, states),
  };
}

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

/**
 * The conntrack trace: BPF hooks where the kernel allows, native ctnetlink for what they cannot see (reported in
 * start info as the hook of that feature), in every watched network namespace; table pressure per namespace.
 */
export class ConntrackTrace extends Trace<ConntrackEvent> {
  private readonly mechanism: 'auto' | 'bpf' | 'ctnetlink';
  private readonly plan: NetnsPlan;
  private readonly options: ConntrackOptions;
  private readonly own = ownNetns();
  /** Namespaces watched now, and every one watched at some point (for pressure and counters). */
  private readonly watched = new Map<number, NetnsInfo>();
  private readonly baselines = new Map<number, NetnsTableStats>();
  private native: NativeCtnetlink | null = null;
  private finalNetlink: CtnetlinkNetnsStats[] | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private readonly netnsListeners: Array<(c: NetnsChange) => void> = [];
  private readonly wanted: (view: DataView, o: number) => boolean;
  private netlinkMalformed = 0;
  private netlinkDestroys = false;
  /** NEW times by entry, to give ctnetlink destroys a lifetime when the entry has no timestamp. Bounded. */
  private readonly born = new Map<string, number>();
  private started: Promise<StartInfo> | null = null;
  /** The first NetnsChange (what start watched), for listeners added later. */
  startNetns: NetnsChange | null = null;

  constructor(opts: ConntrackOptions = {}) {
    const plan = resolveNetns(opts.netns);
    super(conntrackSpec(opts, plan.onlyOwn), opts);
    this.plan = plan;
    this.options = opts;
    this.mechanism = opts.mechanism ?? 'auto';
    if (opts.netlinkBufferBytes !== undefined && (!Number.isInteger(opts.netlinkBufferBytes) || opts.netlinkBufferBytes < 4096)) {
      throw usageError(`netlink buffer ${opts.netlinkBufferBytes} must be a whole number of at least 4096 bytes`);
    }
    this.wanted = recordFilter(opts);
    // fexit/kprobe see every namespace: with named namespaces, only theirs are events.
    if (opts.netns?.length && !plan.all) this.spec.accept = (e) => this.watched.has(e.netns);
    this.onEvents((events) => { for (const e of events) this.remember(e); });
  }

  private remember(e: ConntrackEvent): void {
    const k = entryKey(e);
    if (e.kind === 'new') {
      if (this.born.size >= 1_000_000) this.born.delete(this.born.keys().next().value as string);
      this.born.set(k, e.time);
    } else {
      this.born.delete(k);
    }
  }

  /** Called with each change of the watched namespaces (at start, and as `all` finds or loses some). */
  onNetns(listener: (c: NetnsChange) => void): this {
    this.netnsListeners.push(listener);
    return this;
  }

  override start(): Promise<StartInfo> {
    this.started ??= super.start().then((info) => this.startNetlink(info));
    return this.started;
  }

  private startNetlink(info: StartInfo): StartInfo {
    const missing = info.hooks.filter((h) => !h.hook).map((h) => h.feature);
    const wantsNew = this.mechanism === 'ctnetlink' || missing.includes('new entries');
    const wantsDestroy = this.mechanism === 'ctnetlink' || missing.includes('destroyed entries');
    const failed: NonNullable<NetnsChange['failed']> = [];
    if ((wantsNew || wantsDestroy) && this.mechanism !== 'bpf') {
      this.netlinkDestroys = wantsDestroy;
      this.native = openCtnetlink((batch) => this.fromNetlink(batch), {
        newEvents: wantsNew, destroyEvents: wantsDestroy, reliable: this.options.reliable ?? true,
        rcvbufBytes: this.options.netlinkBufferBytes ?? 16 * 1024 * 1024, pollMs: this.options.pollMs ?? 20, readDelayUs: this.options.netlinkReadDelayUs ?? 0,
      });
      for (const t of this.plan.targets) {
        try {
          this.watch(t);
        } catch (err) {
          // With `all`, a namespace may vanish between the scan and here; a named one must work.
          if (!this.plan.all || t.netns === this.own) {
            void this.native.stop();
            this.native = null;
            throw ctnetlinkError(`ctnetlink in network namespace ${describeNetns(t, this.own)}`, err);
          }
          failed.push({ netns: t.netns, path: t.path, error: (err as Error).message });
        }
      }
      const n = this.watched.size;
      const where = `${n} network namespace${n === 1 ? '' : 's'}${this.plan.all ? ', all' : ''}`;
      const reliable = this.options.reliable ?? true;
      for (const h of info.hooks) {
        if (h.feature === 'new entries' && wantsNew) h.hook = `ctnetlink NEW (${where}; losses counted by the kernel)`;
        else if (h.feature === 'destroyed entries' && wantsDestroy) h.hook = `ctnetlink DESTROY (${where}; ${reliable ? 'reliable delivery: the kernel re-delivers what it could not queue' : 'reliable delivery off: losses counted by the kernel'})`;
        else continue;
        h.program = null;
      }
    } else {
      for (const t of this.plan.targets) this.watch(t);
    }
    // Rescans: `all` watches namespaces that appear; any watched namespace that is gone is released.
    if (!this.plan.onlyOwn && (this.options.rescanMs ?? 2000) > 0) {
      this.rescanTimer = setInterval(() => this.rescan(), this.options.rescanMs ?? 2000);
      this.rescanTimer.unref();
    }
    this.startNetns = { change: 'watched', time: Date.now(), namespaces: [...this.watched.values()], ...(failed.length ? { failed } : {}) };
    for (const l of this.netnsListeners) l(this.startNetns);
    return info;
  }

  /** Starts watching a namespace: its ctnetlink sockets (when ctnetlink is used) and its statistics' baseline. */
  private watch(t: NetnsInfo): void {
    if (this.native) this.native.addNetns(t.netns === this.own ? null : t.path);
    this.watched.set(t.netns, t);
    if (!this.baselines.has(t.netns)) {
      try {
        const base = readNetnsTable(t.netns === this.own ? null : t);
        if (base) this.baselines.set(t.netns, base);
      } catch { /* no statistics there: pressure() leaves it out */ }
    }
  }

  /** Releases watched namespaces that are gone (a socket would keep a namespace alive); `all`: watches new ones. */
  private rescan(): void {
    let scan: Map<number, NetnsInfo>;
    try { scan = scanNetns(); } catch { return; }
    const gone = [...this.watched.values()].filter((t) => t.netns !== this.own && !scan.has(t.netns) && !stillThere(t));
    for (const t of gone) {
      this.native?.removeNetns(t.netns);
      this.watched.delete(t.netns);
    }
    const added: NetnsInfo[] = [];
    const failed: NonNullable<NetnsChange['failed']> = [];
    for (const t of this.plan.all ? scan.values() : []) {
      if (this.watched.has(t.netns)) continue;
      try {
        this.watch(t);
        added.push(t);
      } catch (err) {
        failed.push({ netns: t.netns, path: t.path, error: (err as Error).message });
      }
    }
    const time = Date.now();
    if (gone.length) for (const l of this.netnsListeners) l({ change: 'removed', time, namespaces: gone });
    if (added.length || failed.length) for (const l of this.netnsListeners) l({ change: 'added', time, namespaces: added, ...(failed.length ? { failed } : {}) });
  }

  private fromNetlink(batch: ArrayBuffer): void {
    const events: ConntrackEvent[] = [];
    this.netlinkMalformed += forEachRecord(batch, (view, o) => {
      if (!this.wanted(view, o)) return;
      const e = this.spec.decode(view, o);
      if (e.kind === 'destroy' && e.lifetimeMs === null) {
        const born = this.born.get(entryKey(e));
        if (born !== undefined) e.lifetimeMs = Math.max(0, e.time - born);
      }
      events.push(e);
    });
    this.emit(events);
  }

  /** The namespaces start() will watch (resolved from `netns` when the trace was made). */
  plannedNamespaces(): NetnsInfo[] {
    return [...this.plan.targets];
  }

  /** Whether destroyed entries come from ctnetlink (then nf_conntrack_events decides which entries report). */
  destroysFromNetlink(): boolean {
    return this.netlinkDestroys;
  }

  /** Namespaces watched now. */
  namespaces(): NetnsInfo[] {
    return [...this.watched.values()];
  }

  /** Each watched namespace's conntrack table and statistics, exact as the kernel reports them now. */
  tableStats(): NetnsTableStats[] {
    const out: NetnsTableStats[] = [];
    for (const t of this.watched.values()) {
      try {
        const s = readNetnsTable(t.netns === this.own ? null : t);
        if (s) out.push(s);
      } catch { /* namespace gone meanwhile */ }
    }
    return out;
  }

  /** Table pressure per watched namespace: count now, the kernel's counters since the namespace was first watched. */
  pressure(): ConntrackPressure[] {
    return this.tableStats().map((now) => {
      const base = this.baselines.get(now.netns);
      const d = (k: string) => (now.stat[k] ?? 0) - (base?.stat[k] ?? 0);
      return {
        netns: now.netns, name: this.watched.get(now.netns)?.name ?? null, count: now.entries, max: now.max,
        drop: d('drop'), earlyDrop: d('early_drop'), insertFailed: d('insert_failed'), invalid: d('invalid'),
      };
    });
  }

  /** What the ctnetlink path received and lost (null when it is not used); final after stop(). */
  netlinkCounts(): NetlinkCounts | null {
    const stats = this.finalNetlink ?? this.native?.stats() ?? null;
    if (!stats) return null;
    const c = netlinkCounts(stats);
    c.malformed += this.netlinkMalformed;
    return c;
  }

  /** The ring buffer's counters plus the ctnetlink path's: every event lost outside the ring buffer, as counted by the kernel. */
  override counters(): TraceCounters {
    const base = super.counters();
    const nl = this.netlinkCounts();
    if (!nl) return base;
    return { ...base, malformed: base.malformed + nl.malformed, sourceLost: nl.lost.new + nl.lost.destroy, sourceRetried: nl.retried };
  }

  override async stop(): Promise<void> {
    if (this.started) await this.started.catch(() => undefined);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.rescanTimer = null;
    const native = this.native;
    if (native) {
      // Drains every namespace (and what the kernel still owes from its dying list) before the BPF side detaches.
      await native.stop();
      this.finalNetlink = native.stats();
      this.native = null;
    }
    await super.stop();
  }
}

/** A watched namespace is still there when its file still opens it (e.g. a bind mount outside /run/netns). */
function stillThere(t: NetnsInfo): boolean {
  try { return statSync(t.path).ino === t.netns; } catch { return false; }
}

/** Traces conntrack entries: `for await (const e of conntrack()) ...` (the caller's network namespace by default). */
export function conntrack(opts: ConntrackOptions = {}): ConntrackTrace {
  return new ConntrackTrace(opts);
}

/** Every entry of a namespace's conntrack table (a ctnetlink dump; no conntrack(8) process). */
export async function conntrackSnapshot(opts: { netns?: string } = {}): Promise<ConntrackEntry[]> {
  const target = opts.netns ? resolveNetns([opts.netns]).targets[0] : null;
  const batch = await dumpConntrackTable(target && target.netns !== ownNetns() ? target.path : null);
  const clock = new ClockMapper();
  const states = tcpConntrackStates();
  const out: ConntrackEntry[] = [];
  forEachRecord(batch, (view, o) => {
    const e: Partial<ConntrackEvent> = decodeConntrack(view, o, clock, states);
    delete e.type;
    delete e.kind;
    delete e.lifetimeMs;
    out.push(e as ConntrackEntry);
  });
  return out;
}

/**
 * Keeps a NatResolver fed from the caller's namespace: ctnetlink NEW events from now on, then one table dump
 * (so nothing created in between is missed). Stop with stop().
 */
export async function startNatFeed(resolver: NatResolver): Promise<{ stop(): Promise<void> }> {
  const clock = new ClockMapper();
  const states = tcpConntrackStates();
  let native: NativeCtnetlink;
  try {
    native = openCtnetlink((batch) => forEachRecord(batch, (view, o) => resolver.add(decodeConntrack(view, o, clock, states))), { newEvents: true, destroyEvents: false });
  } catch (err) {
    throw ctnetlinkError('ctnetlink (NAT resolution)', err);
  }
  try {
    native.addNetns(null);
  } catch (err) {
    await native.stop();
    throw ctnetlinkError('ctnetlink (NAT resolution)', err);
  }
  try {
    for (const e of await conntrackSnapshot()) resolver.add(e);
  } catch (err) {
    await native.stop();
    throw err;
  }
  return { stop: () => native.stop() };
}

/** Per-destination conntrack statistics: the destination is the real backend (reply source). */
export interface ConntrackRow {
  /** "backend:port" (after DNAT) or "other". */
  key: string;
  /** Addresses clients used to reach it (VIPs), up to 8. */
  via: string[];
  protocol: string;
  created: number;
  destroyed: number;
  /** Per second over the last interval. */
  createdRate: number;
  destroyedRate: number;
  /** Entries created and not yet destroyed while tracing. */
  open: number;
  lifetimeMs: HistogramData;
  /** TCP state at destroy (or at creation for entries still open), counts. */
  states: Record<string, number>;
  packets: number;
  bytes: number;
}

export interface ConntrackSummary {
  type: 'summary';
  tool: 'conntrack';
  time: number;
  elapsedS: number;
  intervalS: number;
  totals: { created: number; destroyed: number; dnat: number; snat: number };
  byDestination: ConntrackRow[];
  folded: number;
  /** Per watched namespace (empty when unreadable). */
  pressure: ConntrackPressure[];
}

class CtRow {
  created = 0;
  destroyed = 0;
  createdAtSnap = 0;
  destroyedAtSnap = 0;
  via = new Set<string>();
  protocol = '';
  lifetime = new Log2Histogram('ms');
  states: Record<string, number> = {};
  packets = 0;
  bytes = 0;
  constructor(readonly key: string) {}
}

/** Aggregates conntrack events per real destination (the backend after DNAT). Usable on its own. */
export class ConntrackAggregator {
  private readonly rows: BoundedTable<CtRow>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { created: 0, destroyed: 0, dnat: 0, snat: 0 };

  constructor(opts: { maxDestinations?: number; now?: () => number } = {}) {
    this.rows = new BoundedTable(opts.maxDestinations ?? 4096, (k) => new CtRow(k));
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
  }

  add(e: ConntrackEvent): void {
    const row = this.rows.row(formatEndpoint(e.reply.src, e.reply.sport));
    row.protocol ||= e.protocolName;
    if (e.dnat && row.via.size < 8 && row.key !== OTHER_KEY) row.via.add(formatEndpoint(e.orig.dst, e.orig.dport));
    if (e.kind === 'new') {
      this.totals.created++;
      if (e.dnat) this.totals.dnat++;
      if (e.snat) this.totals.snat++;
      row.created++;
      return;
    }
    this.totals.destroyed++;
    row.destroyed++;
    if (e.lifetimeMs !== null) row.lifetime.add(Math.round(e.lifetimeMs));
    const state = e.tcpState ?? e.protocolName;
    row.states[state] = (row.states[state] ?? 0) + 1;
    if (e.packets) row.packets += e.packets[0] + e.packets[1];
    if (e.bytes) row.bytes += e.bytes[0] + e.bytes[1];
  }

  addAll(events: ConntrackEvent[]): void {
    for (const e of events) this.add(e);
  }

  snapshot(pressure: ConntrackPressure[] = []): ConntrackSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000, intervalS = (t - this.lastSnapshotAt) / 1000;
    const all = this.rows.allRows();
    const byDestination = all.map((r): ConntrackRow => ({
      key: r.key, via: [...r.via], protocol: r.protocol, created: r.created, destroyed: r.destroyed,
      createdRate: intervalS > 0 ? (r.created - r.createdAtSnap) / intervalS : 0,
      destroyedRate: intervalS > 0 ? (r.destroyed - r.destroyedAtSnap) / intervalS : 0,
      open: Math.max(0, r.created - r.destroyed), lifetimeMs: r.lifetime.toJSON(), states: { ...r.states }, packets: r.packets, bytes: r.bytes,
    })).sort((a, b) => b.created + b.destroyed - (a.created + a.destroyed));
    for (const r of all) { r.createdAtSnap = r.created; r.destroyedAtSnap = r.destroyed; }
    this.lastSnapshotAt = t;
    return { type: 'summary', tool: 'conntrack', time: t, elapsedS, intervalS, totals: { ...this.totals }, byDestination, folded: this.rows.foldedKeys, pressure };
  }
}
