/**
 * netbpf conntrack: conntrack entries created and destroyed (bpf/conntrack.bpf.c, or ctnetlink where no BPF
 * hook sees destroys), with both tuples (DNAT/SNAT visible), TCP state, zone, mark, counters and lifetime;
 * table pressure from /proc/net/stat/nf_conntrack and nf_conntrack_count/max; a per-destination aggregator.
 * The netfilter-program and ctnetlink paths work in the caller's network namespace (run it with
 * `ip netns exec NS`); the fexit/kprobe paths see every namespace (events carry the namespace inode).
 */
import { readFileSync } from 'node:fs';
import { formatEndpoint, type Family, AF_INET } from '../core/address.js';
import { addon, type NativeBpfObject } from '../core/addon.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { fentry, kprobe, type HookAlternative } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { ConntrackEventStream, type CtLine, type CtTuple } from '../core/nat.js';
import { ClockMapper, readAddress } from '../core/record.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import { Trace, type TraceCounters, type StartInfo, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { CONNTRACK_RODATA, CT_EVENT_KIND, CT_EVENT_LAYOUT, CT_FLAGS } from './conntrack/bpf.gen.js';

/** struct ct_event (bpf/conntrack.h): [offset, size] of each field. */
export { CT_EVENT_LAYOUT as CONNTRACK_LAYOUT };
const { CT_FLAG_ACCT, CT_FLAG_TSTAMP } = CT_FLAGS;
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
  /** Namespace inode of the entry (BPF paths; 0 from ctnetlink). */
  netns: number;
  /** Which mechanism reported it. */
  source: 'bpf' | 'ctnetlink';
}

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
    netns: view.getUint32(o + F.netns[0], true), source: 'bpf',
  };
}

/** A ctnetlink line as an event (lifetime from delta-time, refined by the caller when it saw the NEW). */
export function eventFromCtLine(l: CtLine, now = Date.now()): ConntrackEvent {
  return {
    type: 'conntrack', kind: l.event === 'destroy' ? 'destroy' : 'new', time: l.time ?? now, family: l.family,
    protocol: l.protocol, protocolName: PROTOCOL_NAMES[l.protocol] ?? String(l.protocol), orig: l.orig, reply: l.reply,
    dnat: l.reply.src !== l.orig.dst || l.reply.sport !== l.orig.dport, snat: l.reply.dst !== l.orig.src || l.reply.dport !== l.orig.sport,
    tcpState: l.tcpState, zone: l.zone, mark: l.mark, packets: l.packets, bytes: l.bytes,
    lifetimeMs: l.event === 'destroy' && l.lifetimeS !== null ? l.lifetimeS * 1000 : null, netns: 0, source: 'ctnetlink',
  };
}

/** Identity of an entry across its NEW and DESTROY events. */
export const entryKey = (e: { protocol: number; zone: number; orig: CtTuple }) => `${e.protocol}|${e.zone}|${e.orig.src}|${e.orig.sport}|${e.orig.dst}|${e.orig.dport}`;

export interface ConntrackOptions extends FilterOptions, TraceOptions {
  /** 'auto' (best available), 'bpf' (BPF hooks only, destroys unavailable without fexit/kprobe), 'ctnetlink'. */
  mechanism?: 'auto' | 'bpf' | 'ctnetlink';
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

/** uapi constants (stable): NFPROTO_IPV4/6, NF_INET_LOCAL_IN/POST_ROUTING; conntrack confirms at INT_MAX. */
const NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10, NF_INET_LOCAL_IN = 1, NF_INET_POST_ROUTING = 4;
const BEFORE_CONFIRM_PRIORITY = 2147483646;

const netfilterAlternative: HookAlternative = {
  kind: 'netfilter',
  programs: ['handle_nf_confirm'],
  hook: 'netfilter LOCAL_IN+POST_ROUTING just before conntrack confirm (this netns)',
  missing: () => (netfilterTypes() ? null : { cause: 'kernel', reason: 'no BPF netfilter programs in this kernel (needs >= 6.4)' }),
  prepare: (obj, program) => {
    const t = netfilterTypes()!;
    obj.setProgramType(program, t.progType, t.attachType);
  },
  attach: (obj: NativeBpfObject, program) => {
    const t = netfilterTypes()!;
    for (const pf of [NFPROTO_IPV4, NFPROTO_IPV6]) {
      for (const hooknum of [NF_INET_LOCAL_IN, NF_INET_POST_ROUTING]) {
        // The kernel allows one BPF link per hook and priority (EBUSY): a second netbpf in this namespace
        // takes the next free priority below; any priority after conntrack's and before confirm serves.
        for (let k = 0; ; k++) {
          try {
            obj.attachNetfilter(program, { attachType: t.attachType, pf, hooknum, priority: BEFORE_CONFIRM_PRIORITY - k });
            break;
          } catch (err) {
            if ((err as { code?: string }).code !== 'EBUSY' || k >= 15) throw err;
          }
        }
      }
    }
  },
};

export function conntrackSpec(opts: ConntrackOptions = {}): TraceSpec<ConntrackEvent> {
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
          netfilterAlternative,
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

export function readConntrackStats(): ConntrackStats | null {
  try {
    const num = (p: string) => Number(readFileSync(p, 'utf8').trim());
    const lines = readFileSync('/proc/net/stat/nf_conntrack', 'utf8').trim().split('\n');
    const names = lines[0].trim().split(/\s+/);
    const stat: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    for (const line of lines.slice(1)) line.trim().split(/\s+/).forEach((v, i) => { if (names[i]) stat[names[i]] += parseInt(v, 16); });
    delete stat.entries; // per-CPU copies of the global count, not a counter
    return { count: num('/proc/sys/net/netfilter/nf_conntrack_count'), max: num('/proc/sys/net/netfilter/nf_conntrack_max'), stat };
  } catch {
    return null;
  }
}

/** Table-pressure counters since start: what the kernel dropped or failed because of conntrack. */
export interface ConntrackPressure {
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

/** Reads the netfilter sysctls that decide what destroy events carry. */
export function conntrackSysctls(): { acct: boolean | null; timestamp: boolean | null; events: boolean | null } {
  const read = (n: string) => { try { return readFileSync(`/proc/sys/net/netfilter/${n}`, 'utf8').trim() !== '0'; } catch { return null; } };
  return { acct: read('nf_conntrack_acct'), timestamp: read('nf_conntrack_timestamp'), events: read('nf_conntrack_events') };
}

/**
 * The conntrack trace: BPF hooks where the kernel allows, ctnetlink (`conntrack -E`) for what they cannot see
 * (reported in start info as the hook of that feature), and table-pressure counters.
 */
export class ConntrackTrace extends Trace<ConntrackEvent> {
  private stream: ConntrackEventStream | null = null;
  private baseline: ConntrackStats | null = null;
  /** NEW times by entry, to give ctnetlink destroys an exact lifetime. Bounded. */
  private readonly born = new Map<string, number>();
  private readonly mechanism: 'auto' | 'bpf' | 'ctnetlink';

  constructor(opts: ConntrackOptions = {}) {
    super(conntrackSpec(opts), opts);
    this.mechanism = opts.mechanism ?? 'auto';
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

  private started: Promise<StartInfo> | null = null;

  override start(): Promise<StartInfo> {
    this.started ??= super.start().then(async (info) => {
      this.baseline = readConntrackStats();
      const missing = info.hooks.filter((h) => !h.hook).map((h) => h.feature);
      const wants: string[] = [];
      if (this.mechanism === 'ctnetlink' || missing.includes('new entries')) wants.push('NEW');
      if (this.mechanism === 'ctnetlink' || missing.includes('destroyed entries')) wants.push('DESTROY');
      if (wants.length && this.mechanism !== 'bpf') {
        this.stream = new ConntrackEventStream(wants, (l) => this.fromNetlink(l));
        await this.stream.start();
        const via = 'ctnetlink (conntrack -E, this netns)';
        for (const feature of ['new entries', 'destroyed entries']) {
          if (!wants.includes(feature === 'new entries' ? 'NEW' : 'DESTROY')) continue;
          const h = info.hooks.find((x) => x.feature === feature)!;
          h.hook = via;
          h.program = null;
          h.programs = [];
          delete h.unavailable;
        }
      }
      return info;
    });
    return this.started;
  }

  private fromNetlink(l: CtLine): void {
    if (l.event !== 'new' && l.event !== 'destroy') return;
    const e = eventFromCtLine(l);
    if (e.kind === 'destroy') {
      const born = this.born.get(entryKey(e));
      if (born !== undefined) e.lifetimeMs = Math.max(0, e.time - born);
    }
    this.emit([e]);
  }

  /** Table pressure now, counters relative to start (count and max are current values). */
  pressure(): ConntrackPressure | null {
    const now = readConntrackStats();
    if (!now) return null;
    const d = (k: string) => (now.stat[k] ?? 0) - (this.baseline?.stat[k] ?? 0);
    return { count: now.count, max: now.max, drop: d('drop'), earlyDrop: d('early_drop'), insertFailed: d('insert_failed'), invalid: d('invalid') };
  }

  private finalOverruns = 0;

  /** ctnetlink event overruns (events the kernel could not deliver to conntrack -E). */
  netlinkOverruns(): number {
    return this.stream?.overruns ?? this.finalOverruns;
  }

  /** The ring buffer's counters plus the ctnetlink overruns: events lost outside the ring buffer. */
  override counters(): TraceCounters {
    return { ...super.counters(), sourceOverruns: this.netlinkOverruns() };
  }

  override async stop(): Promise<void> {
    // Let ctnetlink deliver what is already queued before the BPF side detaches.
    const s = this.stream;
    if (s) {
      await new Promise((r) => setTimeout(r, 100));
      await s.stop();
      this.finalOverruns = s.overruns;
    }
    this.stream = null;
    await super.stop();
  }
}

/** Traces conntrack entries: `for await (const e of conntrack()) ...` (in the caller's network namespace). */
export function conntrack(opts: ConntrackOptions = {}): ConntrackTrace {
  return new ConntrackTrace(opts);
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
  pressure: ConntrackPressure | null;
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

  snapshot(pressure: ConntrackPressure | null = null): ConntrackSummary {
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
