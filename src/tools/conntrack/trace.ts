/**
 * netbpf conntrack, the trace: BPF hooks where the kernel allows (fexit/kprobe on the conntrack code, a netfilter program
 * just before confirm), native ctnetlink for what they cannot see, in every watched network namespace.
 */
import { statSync } from 'node:fs';
import { addon, type CtnetlinkNetnsStats, type NativeBpfObject, type NativeCtnetlink } from '../../core/addon.js';
import {
  ctnetlinkError, describeNetns, openCtnetlink, ownNetns, readNetnsTable, resolveNetns, scanNetns,
  type NetnsInfo, type NetnsPlan, type NetnsTableStats,
} from '../../core/ctnetlink.js';
import { usageError } from '../../core/errors.js';
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { fentry, kprobe, type HookAlternative } from '../../core/hooks.js';
import { ClockMapper } from '../../core/record.js';
import { Trace, type TraceCounters, type StartInfo, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { CONNTRACK_RODATA, CT_EVENT_LAYOUT } from './bpf.gen.js';
import { decodeConntrack, entryKey, forEachRecord, recordFilter, tcpConntrackStates, type ConntrackEvent } from './decode.js';
import { netlinkCounts, type ConntrackPressure, type NetlinkCounts, type NetnsChange } from './stats.js';
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
  /** Namespaces watched since the last rescan but not reported yet (found only through a process). */
  private readonly unreported = new Set<number>();
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
    // fexit/kprobe see every namespace: only the watched ones' entries are events (the caller's by default, as the
    // netfilter program and ctnetlink see it on other kernels), from the first event on (watched fills at start).
    if (!plan.all) {
      const planned = new Set(plan.targets.map((t) => t.netns));
      this.spec.accept = (e) => this.watched.has(e.netns) || planned.has(e.netns);
    }
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
    // A namespace seen only through a process may be one `ip netns add` is still bind-mounting (its process is in
    // it before /run/netns/NAME is): watched at once, reported on the next rescan with the name it has by then.
    const added: NetnsInfo[] = [];
    for (const netns of this.unreported) {
      const now = scan.get(netns);
      if (!now || !this.watched.has(netns)) continue;
      this.watched.set(netns, { ...this.watched.get(netns)!, name: now.name, pids: now.pids });
      added.push(this.watched.get(netns)!);
    }
    this.unreported.clear();
    const failed: NonNullable<NetnsChange['failed']> = [];
    for (const t of this.plan.all ? scan.values() : []) {
      if (this.watched.has(t.netns)) continue;
      try {
        this.watch(t);
        if (t.name === null) this.unreported.add(t.netns);
        else added.push(t);
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
