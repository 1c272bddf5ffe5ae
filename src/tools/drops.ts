/**
 * netbpf drops: every packet the kernel drops, with the kernel's own drop reason (bpf/drops.bpf.c), decoded
 * into typed events and aggregated per remote endpoint x reason and per destination x reason: count, rate,
 * share, log2 histogram of packet sizes. Socket teardown purges (queued data freed with its socket) are
 * reported apart from packets lost on the way.
 *
 * Orientation rule (documented in docs/drops.md): a packet that came in through an interface (skb_iif set)
 * was received, so its remote side is the source; a packet built on this host was being sent, so its remote
 * side is the destination. When the skb had no usable headers the socket's own tuple is used (remote = peer).
 */
import { AF_INET, AF_INET6, formatEndpoint, type Family } from '../core/address.js';
import { addon } from '../core/addon.js';
import { usageError, NetbpfError } from '../core/errors.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { fentry, kprobe, tracepoint, type HookAlternative, type HookPreference } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { Kallsyms, kernelAddressKey } from '../core/kallsyms.js';
import { ClockMapper, readAddress } from '../core/record.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import { tcpStateName, type TcpState } from '../core/tcp.js';
import type { NativeBpfObject } from '../core/addon.js';
import { constU32, Trace, type StartInfo, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { DROPS_RODATA, DROP_AGG_CONSTS, DROP_AGG_KEY_LAYOUT, DROP_AGG_VALUE_LAYOUT, DROP_EVENT_LAYOUT, DROP_FLAGS, DROP_REASON_CONSTS } from './drops/bpf.gen.js';

/** struct drop_event (bpf/drops.h): [offset, size] of each field. */
export { DROP_EVENT_LAYOUT as DROPS_LAYOUT };
/** struct drop_agg_key (bpf/drops.h): the in-kernel summary key of summary-only runs. */
export { DROP_AGG_KEY_LAYOUT as DROPS_AGG_KEY_LAYOUT };
/** struct drop_agg_value (bpf/drops.h): one CPU's cumulative counts for a key. */
export { DROP_AGG_VALUE_LAYOUT as DROPS_AGG_VALUE_LAYOUT };
/** enum drop_flags (bpf/drops.h): drop_event.flags. */
export { DROP_FLAGS };

const { DROP_F_RECEIVED, DROP_F_SOCKET, DROP_F_HEADERS, DROP_F_SOCK_TUPLE, DROP_F_NO_PORTS } = DROP_FLAGS;
const { DROP_AGG_LEN_BUCKETS, DROP_AGG_OTHER } = DROP_AGG_CONSTS;
const { DROP_REASON_FILTER_BITS } = DROP_REASON_CONSTS;
/** drop_event.reason when the hook has no reason argument (tcp_drop, kernels < 5.17). */
export const DROP_REASON_UNAVAILABLE = DROP_REASON_CONSTS.DROP_REASON_UNAVAILABLE;

/** Reasons that mean "a socket was torn down with data still queued", not a packet lost on the way. */
export const PURGE_REASONS: ReadonlySet<string> = new Set(['SOCKET_CLOSE', 'QUEUE_PURGE', 'UNIX_DISCONNECT']);

/** Socket teardown functions that free queued data with the generic reason (NOT_SPECIFIED): purges too. */
export const PURGE_FUNCTIONS: ReadonlySet<string> = new Set([
  'udp_destruct_common', 'inet_sock_destruct', 'skb_queue_purge_reason', '__skb_queue_purge_reason', 'tcp_write_queue_purge',
  'sk_stream_kill_queues', 'unix_release_sock', 'unix_sock_destructor', 'packet_release', 'sk_common_release',
]);

/** "purge" when the reason or, for the generic reason, the freeing function says a socket was torn down. */
export function dropCategory(reason: string, location: string): DropCategory {
  if (PURGE_REASONS.has(reason)) return 'purge';
  if (reason === 'NOT_SPECIFIED' && location) {
    const plus = location.indexOf('+');
    if (PURGE_FUNCTIONS.has(plus < 0 ? location : location.slice(0, plus))) return 'purge';
  }
  return 'drop';
}

/** Names of the running kernel's enum skb_drop_reason (from BTF), without the SKB_DROP_REASON_ prefix. */
export class DropReasons {
  private readonly byCode = new Map<number, string>();
  private readonly byName = new Map<string, number>();
  /** Whether the kernel has drop reasons at all (enum skb_drop_reason in BTF, Linux >= 5.17). */
  readonly available: boolean;

  /** `entries` as addon.kernelBtfEnum returns them; null when the kernel has no such enum. */
  constructor(entries: Array<[string, number]> | null) {
    this.available = entries !== null;
    for (const [full, code] of entries ?? []) {
      const name = full.replace(/^SKB_DROP_REASON_/, '').replace(/^SKB_/, '');
      if (name === 'MAX') continue; // a bound, not a reason
      if (!this.byCode.has(code)) this.byCode.set(code, name);
      this.byName.set(name.toUpperCase(), code);
    }
  }

  /** The running kernel's reasons (cached). */
  static kernel(): DropReasons {
    if (!kernelReasons) {
      let entries: Array<[string, number]> | null = null;
      try { entries = addon().kernelBtfEnum('skb_drop_reason'); } catch { entries = null; }
      kernelReasons = new DropReasons(entries);
    }
    return kernelReasons;
  }

  /** The reason's name; a number the kernel's enum does not name prints as that number, never a guess. */
  name(code: number): string {
    if (code === DROP_REASON_UNAVAILABLE) return 'UNAVAILABLE';
    return this.byCode.get(code) ?? String(code);
  }

  /** The code of a name (case-insensitive, SKB_DROP_REASON_ prefix optional), or undefined. */
  code(name: string): number | undefined {
    return this.byName.get(name.trim().toUpperCase().replace(/^SKB_DROP_REASON_/, ''));
  }

  /** Names of real drop reasons (not CONSUMED / NOT_DROPPED_YET), in kernel order. */
  names(): string[] {
    return [...this.byCode.values()].filter((n) => n !== 'CONSUMED' && n !== 'NOT_DROPPED_YET');
  }

  /** Resolves --reason names to codes; an unknown name is a usage error listing some valid ones. */
  resolve(names: string[]): number[] {
    if (names.length && !this.available) throw new NetbpfError('kernel', 'this kernel has no drop reasons (enum skb_drop_reason, Linux >= 5.17): --reason cannot be used');
    return names.map((n) => {
      const code = this.code(n);
      if (code === undefined) {
        const some = this.names().slice(0, 12).join(', ');
        throw usageError(`unknown drop reason '${n}'; this kernel's reasons include ${some}, ... (${this.names().length} in all)`);
      }
      if (code >= DROP_REASON_FILTER_BITS) throw usageError(`drop reason '${n}' (${code}) cannot be filtered in the kernel (values below ${DROP_REASON_FILTER_BITS} only)`);
      return code;
    });
  }
}
let kernelReasons: DropReasons | null = null;

/** "drop": lost on the way; "purge": queued data freed with its socket (close, queue purge). */
export type DropCategory = 'drop' | 'purge';
export type Direction = 'received' | 'sent';

/** One dropped packet. Fields the packet did not yield are null ("unknown" in text output). */
export interface DropEvent {
  type: 'drop';
  /** Wall-clock time, milliseconds since the epoch. */
  time: number;
  /** Reason name from this kernel's BTF (SKB_DROP_REASON_ prefix stripped); a number when unnamed. */
  reason: string;
  /** The kernel's enum value (differs between kernels); -1 when the hook has no reason. */
  reasonCode: number;
  category: DropCategory;
  family: Family | null;
  /** Ethertype (0x0800 IPv4, 0x86dd IPv6, 0 unset). */
  l3Proto: number;
  /** "tcp", "udp", "icmp", ... or the protocol number; null when unknown. */
  proto: string | null;
  protoNum: number;
  saddr: string | null;
  sport: number | null;
  daddr: string | null;
  dport: number | null;
  /** Received (came in on an interface: remote = source) or sent (built here: remote = destination). */
  direction: Direction;
  remoteAddr: string | null;
  remotePort: number | null;
  /** Where saddr/daddr came from: the packet's headers, its socket (no usable headers), or nowhere. */
  addressSource: 'packet' | 'socket' | 'none';
  /** TCP flags, e.g. "SYN" or "ACK|PSH"; '' for non-TCP or unknown. */
  tcpFlags: string;
  /** TCP state of the socket involved, when there was one. */
  state: TcpState | null;
  len: number;
  netns: number;
  ifindex: number;
  /** Kernel function that freed the skb ("tcp_v4_rcv+0x1a2"); '' when unknown. */
  location: string;
  /** Kernel stack, innermost first (with the stack option); [] otherwise or when it could not be captured. */
  stack: string[];
}

const F = DROP_EVENT_LAYOUT.fields;
const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 41: 'ipv6', 47: 'gre', 50: 'esp', 58: 'icmpv6', 132: 'sctp', 136: 'udplite' };
const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
const tcpFlagsCache: string[] = [];

export function tcpFlagsText(byte: number): string {
  let s = tcpFlagsCache[byte];
  if (s === undefined) {
    s = TCP_FLAG_NAMES.filter((_, i) => byte & (1 << i)).join('|');
    tcpFlagsCache[byte] = s;
  }
  return s;
}

/** What decoding needs besides the record: reason names, kernel symbols, stack lookup. */
export interface DropDecodeContext {
  clock: ClockMapper;
  reasons: DropReasons;
  /** Names a kernel address (hi/lo halves); defaults to /proc/kallsyms. */
  symbolize?: (hi: number, lo: number) => string;
  /** The stack for an id of the `stacks` map, innermost first. */
  stack?: (id: number) => string[];
}

function kallsymsSymbolize(hi: number, lo: number): string {
  const key = kernelAddressKey(hi, lo);
  if (key <= 0) return '';
  try { return Kallsyms.load().symbolize(key); } catch { return ''; }
}

export function decodeDrop(view: DataView, o: number, ctx: DropDecodeContext): DropEvent {
  const flags = view.getUint8(o + F.flags[0]);
  const fam = view.getUint16(o + F.family[0], true);
  const known = fam === AF_INET || fam === AF_INET6;
  const hasPorts = known && !(flags & DROP_F_NO_PORTS);
  const protoNum = view.getUint8(o + F.l4_proto[0]);
  const proto = protoNum === 0 && !known ? null : (PROTO_NAMES[protoNum] ?? String(protoNum));
  const portsKnown = hasPorts && (protoNum === 6 || protoNum === 17 || protoNum === 136 || (flags & DROP_F_SOCK_TUPLE) !== 0);
  const saddr = known ? readAddress(view, o + F.saddr[0], fam) : null;
  const daddr = known ? readAddress(view, o + F.daddr[0], fam) : null;
  const sport = portsKnown ? view.getUint16(o + F.sport[0], true) : null;
  const dport = portsKnown ? view.getUint16(o + F.dport[0], true) : null;
  const received = (flags & DROP_F_RECEIVED) !== 0;
  const sockTuple = (flags & DROP_F_SOCK_TUPLE) !== 0;
  // Socket tuples are already local (s) / remote (d); packets received have their remote side as the source.
  const remoteIsSource = received && !sockTuple;
  const code = view.getUint32(o + F.reason[0], true);
  const reason = ctx.reasons.name(code);
  const stackId = view.getInt32(o + F.stack_id[0], true);
  const symbolize = ctx.symbolize ?? kallsymsSymbolize;
  const location = symbolize(view.getUint32(o + F.location[0] + 4, true), view.getUint32(o + F.location[0], true));
  return {
    type: 'drop',
    time: ctx.clock.toEpochMs(Number(view.getBigUint64(o + F.ts_ns[0], true))),
    reason,
    reasonCode: code === DROP_REASON_UNAVAILABLE ? -1 : code,
    category: dropCategory(reason, location),
    family: fam === AF_INET ? 4 : fam === AF_INET6 ? 6 : null,
    l3Proto: view.getUint16(o + F.l3_proto[0], true),
    proto,
    protoNum,
    saddr, sport, daddr, dport,
    direction: received ? 'received' : 'sent',
    remoteAddr: remoteIsSource ? saddr : daddr,
    remotePort: remoteIsSource ? sport : dport,
    addressSource: !known ? 'none' : sockTuple ? 'socket' : 'packet',
    tcpFlags: protoNum === 6 && (flags & DROP_F_HEADERS) && portsKnown ? tcpFlagsText(view.getUint8(o + F.tcp_flags[0])) : '',
    state: flags & DROP_F_SOCKET && protoNum === 6 ? tcpStateName(view.getUint8(o + F.state[0])) : null,
    len: view.getUint32(o + F.len[0], true),
    netns: view.getUint32(o + F.netns[0], true),
    ifindex: view.getUint32(o + F.ifindex[0], true),
    location,
    stack: stackId >= 0 && ctx.stack ? ctx.stack(stackId) : [],
  };
}

export interface DropsOptions extends FilterOptions, TraceOptions {
  /** Every protocol, not only TCP. */
  all?: boolean;
  /** Only these reasons (names from this kernel's BTF, e.g. "NETFILTER_DROP"). */
  reasons?: string[];
  /** Capture and symbolize the kernel stack of each drop. */
  stack?: boolean;
  /** Force a hook: "tp_btf", "raw_tp", "tracepoint" (classic: needs tracefs), or "tcp_drop" (fentry, else kprobe; no reasons). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'> | 'tcp_drop';
}

const STACK_ENTRIES = 16384;

/** The constants of bpf/drops.bpf.c for these options (reasons resolved via the kernel's BTF). */
export function dropsConstants(opts: DropsOptions, reasons: DropReasons, aggregateInKernel = false): Record<string, Buffer> {
  const codes = reasons.resolve(opts.reasons ?? []);
  const bitmap = Buffer.alloc(DROP_REASON_FILTER_BITS / 8);
  for (const c of codes) bitmap[c >> 3] |= 1 << (c & 7); // little-endian u64 words == byte-wise bits
  return {
    ...filterConstants(opts),
    filter_l4_proto: Buffer.from([opts.all ? 0 : 6]),
    capture_stack: Buffer.from([opts.stack ? 1 : 0]),
    filter_reason_count: constU32(codes.length),
    filter_reasons: bitmap,
    aggregate_in_kernel: Buffer.from([aggregateInKernel ? 1 : 0]),
  };
}

/** How a summary-only run aggregates in the kernel (see dropsSummary). */
export interface KernelAggregation {
  /** Keys of the `drop_agg` map before drops fold into "other". */
  keys: number;
  /** The last read of the maps before the object closes. */
  beforeClose(obj: NativeBpfObject): void;
  /** Drops counted in the kernel so far (as of the last read). */
  events(): number;
}

/** Keys of the kernel's "other" map: one per reason (x freeing function for NOT_SPECIFIED). */
const AGG_OTHER_KEYS = 1024;

export function dropsSpec(opts: DropsOptions = {}, stackLookup?: (id: number) => string[], kernel?: KernelAggregation): TraceSpec<DropEvent> {
  const reasons = DropReasons.kernel();
  const ctx: DropDecodeContext = { clock: new ClockMapper(), reasons, stack: stackLookup };
  const kfree: HookAlternative[] = tracepoint('skb', 'kfree_skb', 'handle_kfree_skb');
  const tcpDrop: HookAlternative[] = [fentry('tcp_drop', 'handle_tcp_drop_fentry'), kprobe('tcp_drop', 'handle_tcp_drop_kprobe')];
  const hook = opts.hook ?? 'auto';
  // Without drop reasons kfree_skb cannot tell drops from normal frees; tcp_drop() can (TCP only).
  const auto = reasons.available ? [...kfree, ...tcpDrop] : [...tcpDrop, ...kfree];
  const alternatives = hook === 'auto' ? auto : hook === 'tcp_drop' ? tcpDrop : kfree.filter((a) => a.kind === hook);
  return {
    tool: 'drops',
    recordSize: DROP_EVENT_LAYOUT.size,
    constants: dropsConstants(opts, reasons, !!kernel),
    rodata: DROPS_RODATA,
    mapSizes: { stacks: opts.stack ? STACK_ENTRIES : 1, drop_agg: kernel ? kernel.keys : 1, drop_agg_other: kernel ? AGG_OTHER_KEYS : 1 },
    hooks: [{ feature: 'packet drops', required: true, alternatives }],
    disabledPrograms: auto.filter((a) => !alternatives.includes(a)).flatMap((a) => a.programs),
    decode: (view, o) => decodeDrop(view, o, ctx),
    beforeClose: kernel ? (obj) => kernel.beforeClose(obj) : undefined,
    kernelEvents: kernel ? () => kernel.events() : undefined,
  };
}

/** One line for the start report when this run cannot name drop reasons; null when it can. */
export function dropReasonsNote(info: StartInfo): string | null {
  const program = info.hooks[0]?.program;
  if (program === 'handle_tcp_drop_fentry' || program === 'handle_tcp_drop_kprobe') {
    return 'drop reasons unavailable: tcp_drop() has no reason argument (kernel < 5.17); only TCP drops are seen, reason prints as UNAVAILABLE';
  }
  if (!DropReasons.kernel().available) {
    return 'drop reasons unavailable: this kernel has no enum skb_drop_reason (< 5.17); every freed skb is reported, not only drops';
  }
  return null;
}

/** Reads stack `id` from the trace's `stacks` map and symbolizes it (cached: ids are stable). */
function stackReader(trace: () => Trace<DropEvent>): (id: number) => string[] {
  const cache = new Map<number, string[]>();
  return (id) => {
    let frames = cache.get(id);
    if (frames) return frames;
    frames = [];
    const key = Buffer.alloc(4);
    key.writeUInt32LE(id);
    let value: Buffer | null = null;
    try { value = trace().object().mapLookup('stacks', key); } catch { value = null; }
    if (value) {
      let syms: Kallsyms | null = null;
      try { syms = Kallsyms.load(); } catch { syms = null; }
      // The map's value: the kernel's stack depth of u64 addresses, zero after the last frame.
      for (let i = 0; (i + 1) * 8 <= value.length; i++) {
        const lo = value.readUInt32LE(i * 8), hi = value.readUInt32LE(i * 8 + 4);
        if (!lo && !hi) break;
        const k = kernelAddressKey(hi, lo);
        frames.push(syms?.symbolize(k) || `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
      }
      if (cache.size < 65536) cache.set(id, frames);
    }
    return frames;
  };
}

/** Traces dropped packets: `for await (const d of drops({ all: true })) console.log(d.reason, d.remoteAddr)`. */
export function drops(opts: DropsOptions = {}): Trace<DropEvent> {
  let trace: Trace<DropEvent> | null = null;
  const spec = dropsSpec(opts, opts.stack ? stackReader(() => trace!) : undefined);
  trace = new Trace(spec, opts);
  return trace;
}

/** Per (endpoint or address) x reason statistics. */
export interface DropRow {
  /** "addr:port REASON", "addr REASON", or "other" for the folded row. */
  key: string;
  /** Address (null when unknown), port (null for address rows and unknown ports). */
  addr: string | null;
  port: number | null;
  reason: string;
  reasonCode: number;
  category: DropCategory;
  count: number;
  bytes: number;
  /** Drops per second over the last interval and over the whole run. */
  rate: number;
  avgRate: number;
  /** count / all events of the same category. */
  share: number;
  firstSeen: number;
  lastSeen: number;
  histograms: { len: HistogramData };
}

export interface ReasonTotal { reason: string; reasonCode: number; category: DropCategory; count: number; share: number }

export interface DropsSummary {
  type: 'summary';
  tool: 'drops';
  time: number;
  elapsedS: number;
  intervalS: number;
  totals: { events: number; drops: number; purges: number };
  byReason: ReasonTotal[];
  /** Remote endpoint (non-local side, see orientation rule) x reason. */
  byEndpoint: DropRow[];
  /** Remote address x reason. */
  byAddress: DropRow[];
  /** Packet destination (daddr:dport as in the packet) x reason. */
  byDestination: DropRow[];
  /** Keys folded into "other" per table; `kernel`: drops folded in the kernel (summary-only runs, key map full). */
  folded: { endpoints: number; addresses: number; destinations: number; kernel?: number };
}

class DropRowStats {
  count = 0;
  bytes = 0;
  countAtLastSnapshot = 0;
  firstSeen = 0;
  lastSeen = 0;
  len = new Log2Histogram('bytes');
  addr: string | null = null;
  port: number | null = null;
  reason = '';
  reasonCode = 0;
  category: DropCategory = 'drop';
  constructor(readonly key: string) {}

  /** On the row's first drop: when it was seen and, unless this is "other", what the row stands for. */
  private claim(e: DropEvent, addr: string | null, port: number | null, firstSeen: number): void {
    this.firstSeen = firstSeen;
    if (this.key === OTHER_KEY) return;
    this.addr = addr;
    this.port = port;
    this.reason = e.reason;
    this.reasonCode = e.reasonCode;
    this.category = e.category;
  }

  add(e: DropEvent, addr: string | null, port: number | null): void {
    if (this.count === 0) this.claim(e, addr, port, e.time);
    this.lastSeen = e.time;
    this.count++;
    this.bytes += e.len;
    this.len.add(e.len);
  }

  /** Adds drops counted elsewhere (the kernel's map): `b.count` drops with their bytes and length histogram. */
  addBulk(e: DropEvent, addr: string | null, port: number | null, b: DropBulk): void {
    if (this.count === 0) this.claim(e, addr, port, b.firstSeen);
    if (b.firstSeen < this.firstSeen) this.firstSeen = b.firstSeen;
    if (b.lastSeen > this.lastSeen) this.lastSeen = b.lastSeen;
    this.count += b.count;
    this.bytes += b.bytes;
    this.len.addBuckets(b.lenLog2, b.bytes, b.minLen, b.maxLen);
  }

  row(elapsedS: number, intervalS: number, categoryTotal: (c: DropCategory) => number): DropRow {
    const total = categoryTotal(this.category);
    return {
      key: this.key, addr: this.addr, port: this.port, reason: this.reason, reasonCode: this.reasonCode,
      category: this.category, count: this.count, bytes: this.bytes,
      rate: intervalS > 0 ? (this.count - this.countAtLastSnapshot) / intervalS : 0,
      avgRate: elapsedS > 0 ? this.count / elapsedS : 0,
      share: total > 0 ? this.count / total : 0,
      firstSeen: this.firstSeen, lastSeen: this.lastSeen,
      histograms: { len: this.len.toJSON() },
    };
  }
}

/** Drops of one key counted in the kernel since the previous read. */
export interface DropBulk {
  count: number;
  bytes: number;
  /** Counts per log2 bucket of packet length (Log2Histogram's buckets). */
  lenLog2: ArrayLike<number>;
  minLen: number;
  maxLen: number;
  /** Epoch ms of the key's first and last drop. */
  firstSeen: number;
  lastSeen: number;
}

export interface DropsAggregatorOptions {
  /** Most rows per table before folding into "other". Default 4096. */
  maxDestinations?: number;
  /** Clock for rates, ms (tests pass their own). */
  now?: () => number;
}

const endpointText = (addr: string | null, port: number | null) => (addr === null ? 'unknown' : port === null ? addr : formatEndpoint(addr, port));

/** Aggregates drop events per remote endpoint, remote address and packet destination, each x reason. */
export class DropsAggregator {
  private readonly endpoints: BoundedTable<DropRowStats>;
  private readonly addresses: BoundedTable<DropRowStats>;
  private readonly destinations: BoundedTable<DropRowStats>;
  private readonly reasons = new Map<string, ReasonTotal>();
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { events: 0, drops: 0, purges: 0 };
  /** Drops the kernel folded into "other" (its key map was full). */
  private kernelFolded = 0;
  private lastRows: {
    reason: string; remoteAddr: string | null; remotePort: number | null; daddr: string | null; dport: number | null;
    endpoint: DropRowStats; address: DropRowStats; destination: DropRowStats;
  } | null = null;

  constructor(opts: DropsAggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    const make = (key: string) => new DropRowStats(key);
    this.endpoints = new BoundedTable(max, make);
    this.addresses = new BoundedTable(max, make);
    this.destinations = new BoundedTable(max, make);
  }

  add(e: DropEvent): void {
    this.totals.events++;
    if (e.category === 'purge') this.totals.purges++;
    else this.totals.drops++;
    let r = this.reasons.get(e.reason);
    if (!r) { r = { reason: e.reason, reasonCode: e.reasonCode, category: e.category, count: 0, share: 0 }; this.reasons.set(e.reason, r); }
    r.count++;
    // Floods repeat one (endpoint, destination, reason): reuse the previous event's rows instead of building
    // three keys and looking them up again (rows are never evicted, so the cached ones stay valid).
    const l = this.lastRows;
    if (l && l.reason === e.reason && l.remoteAddr === e.remoteAddr && l.remotePort === e.remotePort && l.daddr === e.daddr && l.dport === e.dport) {
      l.endpoint.add(e, e.remoteAddr, e.remotePort);
      l.address.add(e, e.remoteAddr, null);
      l.destination.add(e, e.daddr, e.dport);
      return;
    }
    const endpoint = this.endpoints.row(`${endpointText(e.remoteAddr, e.remotePort)} ${e.reason}`);
    const address = this.addresses.row(`${e.remoteAddr ?? 'unknown'} ${e.reason}`);
    const destination = this.destinations.row(`${endpointText(e.daddr, e.dport)} ${e.reason}`);
    endpoint.add(e, e.remoteAddr, e.remotePort);
    address.add(e, e.remoteAddr, null);
    destination.add(e, e.daddr, e.dport);
    this.lastRows = { reason: e.reason, remoteAddr: e.remoteAddr, remotePort: e.remotePort, daddr: e.daddr, dport: e.dport, endpoint, address, destination };
  }

  /**
   * Adds `b.count` drops that share `e`'s summary key (counted in the kernel). `folded`: the kernel had no
   * room for their key, so they go to the "other" rows of every table (reason totals stay exact).
   */
  addBulk(e: DropEvent, b: DropBulk, folded = false): void {
    if (b.count <= 0) return;
    this.totals.events += b.count;
    if (e.category === 'purge') this.totals.purges += b.count;
    else this.totals.drops += b.count;
    let r = this.reasons.get(e.reason);
    if (!r) { r = { reason: e.reason, reasonCode: e.reasonCode, category: e.category, count: 0, share: 0 }; this.reasons.set(e.reason, r); }
    r.count += b.count;
    if (folded) {
      this.kernelFolded += b.count;
      this.endpoints.foldedRow().addBulk(e, null, null, b);
      this.addresses.foldedRow().addBulk(e, null, null, b);
      this.destinations.foldedRow().addBulk(e, null, null, b);
      return;
    }
    this.endpoints.row(`${endpointText(e.remoteAddr, e.remotePort)} ${e.reason}`).addBulk(e, e.remoteAddr, e.remotePort, b);
    this.addresses.row(`${e.remoteAddr ?? 'unknown'} ${e.reason}`).addBulk(e, e.remoteAddr, null, b);
    this.destinations.row(`${endpointText(e.daddr, e.dport)} ${e.reason}`).addBulk(e, e.daddr, e.dport, b);
  }

  addAll(events: DropEvent[]): void {
    for (const e of events) this.add(e);
  }

  /** Current statistics; rates cover the time since the previous snapshot. Rows sorted by count. */
  snapshot(): DropsSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000;
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const categoryTotal = (c: DropCategory) => (c === 'purge' ? this.totals.purges : this.totals.drops);
    const rows = (table: BoundedTable<DropRowStats>): DropRow[] => {
      const all = table.allRows();
      const out = all.map((s) => s.row(elapsedS, intervalS, categoryTotal)).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
      for (const s of all) s.countAtLastSnapshot = s.count;
      return out;
    };
    const byReason = [...this.reasons.values()]
      .map((r) => ({ ...r, share: categoryTotal(r.category) > 0 ? r.count / categoryTotal(r.category) : 0 }))
      .sort((a, b) => b.count - a.count);
    const summary: DropsSummary = {
      type: 'summary', tool: 'drops', time: t, elapsedS, intervalS, totals: { ...this.totals }, byReason,
      byEndpoint: rows(this.endpoints), byAddress: rows(this.addresses), byDestination: rows(this.destinations),
      folded: { endpoints: this.endpoints.foldedKeys, addresses: this.addresses.foldedKeys, destinations: this.destinations.foldedKeys },
    };
    if (this.kernelFolded) summary.folded.kernel = this.kernelFolded;
    this.lastSnapshotAt = t;
    return summary;
  }
}

const AK = DROP_AGG_KEY_LAYOUT.fields;
const AV = DROP_AGG_VALUE_LAYOUT.fields;
const BUCKET = DROP_AGG_VALUE_LAYOUT.arrays.len_log2[0];
const u64 = (b: Buffer, o: number) => b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 4294967296;

/** One key's value summed over the CPUs (per-CPU map values come as `cpus` slots, each `stride` bytes). */
interface AggTotals { count: number; bytes: number; firstNs: number; lastNs: number; minLen: number; maxLen: number; lenLog2: Float64Array }

function sumPerCpu(values: Buffer, o: number, cpus: number): AggTotals {
  const t: AggTotals = { count: 0, bytes: 0, firstNs: 0, lastNs: 0, minLen: Infinity, maxLen: 0, lenLog2: new Float64Array(DROP_AGG_LEN_BUCKETS) };
  for (let c = 0; c < cpus; c++) {
    const v = o + c * DROP_AGG_VALUE_LAYOUT.stride;
    const n = u64(values, v + AV.count[0]);
    if (n === 0) continue;
    t.count += n;
    t.bytes += u64(values, v + AV.bytes[0]);
    const first = u64(values, v + AV.first_ns[0]), last = u64(values, v + AV.last_ns[0]);
    if (t.firstNs === 0 || first < t.firstNs) t.firstNs = first;
    if (last > t.lastNs) t.lastNs = last;
    t.minLen = Math.min(t.minLen, values.readUInt32LE(v + AV.min_len[0]));
    t.maxLen = Math.max(t.maxLen, values.readUInt32LE(v + AV.max_len[0]));
    for (let k = 0; k < DROP_AGG_LEN_BUCKETS; k++) t.lenLog2[k] += u64(values, v + AV.len_log2[0] + k * BUCKET);
  }
  return t;
}

/**
 * Turns dumps of the kernel's cumulative `drop_agg` / `drop_agg_other` maps into DropsAggregator input: per
 * key, what was added since the previous dump. The key is decoded by decodeDrop itself (written into a
 * drop_event), so orientation, names and purge/drop category are exactly those of the event path.
 */
export class KernelDropsReader {
  private readonly seen = new Map<string, { event: DropEvent; t: AggTotals }>();
  private readonly scratch = Buffer.alloc(DROP_EVENT_LAYOUT.size);
  /** Drops counted in the kernel as of the last dump. */
  events = 0;

  constructor(private readonly agg: DropsAggregator, private readonly ctx: DropDecodeContext) {}

  /** The event a key stands for (time and length are per drop, so they come from the value instead). */
  keyEvent(keys: Buffer, o: number): DropEvent {
    const r = this.scratch;
    r.fill(0);
    keys.copy(r, F.saddr[0], o + AK.saddr[0], o + AK.saddr[0] + AK.saddr[1]);
    keys.copy(r, F.daddr[0], o + AK.daddr[0], o + AK.daddr[0] + AK.daddr[1]);
    keys.copy(r, F.location[0], o + AK.location[0], o + AK.location[0] + AK.location[1]);
    r.writeUInt32LE(keys.readUInt32LE(o + AK.reason[0]), F.reason[0]);
    r.writeUInt16LE(keys.readUInt16LE(o + AK.family[0]), F.family[0]);
    r.writeUInt16LE(keys.readUInt16LE(o + AK.sport[0]), F.sport[0]);
    r.writeUInt16LE(keys.readUInt16LE(o + AK.dport[0]), F.dport[0]);
    r.writeUInt8(keys.readUInt8(o + AK.l4_proto[0]), F.l4_proto[0]);
    r.writeUInt8(keys.readUInt8(o + AK.flags[0]) & ~DROP_AGG_OTHER, F.flags[0]);
    r.writeInt32LE(-1, F.stack_id[0]);
    return decodeDrop(new DataView(r.buffer, r.byteOffset, r.length), 0, this.ctx);
  }

  /** Feeds one dump (packed keys and per-CPU values, as mapDump returns them) into the aggregator. */
  ingest(dump: { count: number; keys: Buffer; values: Buffer }, cpus: number): void {
    const ks = DROP_AGG_KEY_LAYOUT.size;
    const vs = DROP_AGG_VALUE_LAYOUT.stride * cpus;
    for (let i = 0; i < dump.count; i++) {
      const ko = i * ks;
      const id = dump.keys.toString('latin1', ko, ko + ks);
      const t = sumPerCpu(dump.values, i * vs, cpus);
      const prev = this.seen.get(id);
      const added = t.count - (prev?.t.count ?? 0);
      if (added <= 0) continue;
      const event = prev?.event ?? this.keyEvent(dump.keys, ko);
      const lenLog2 = new Float64Array(DROP_AGG_LEN_BUCKETS);
      for (let k = 0; k < DROP_AGG_LEN_BUCKETS; k++) lenLog2[k] = t.lenLog2[k] - (prev?.t.lenLog2[k] ?? 0);
      this.agg.addBulk(event, {
        count: added, bytes: t.bytes - (prev?.t.bytes ?? 0), lenLog2, minLen: t.minLen, maxLen: t.maxLen,
        firstSeen: this.ctx.clock.toEpochMs(t.firstNs), lastSeen: this.ctx.clock.toEpochMs(t.lastNs),
      }, (dump.keys.readUInt8(ko + AK.flags[0]) & DROP_AGG_OTHER) !== 0);
      this.events += added;
      this.seen.set(id, { event, t });
    }
  }
}

export interface DropsSummaryOptions extends DropsOptions, DropsAggregatorOptions {
  /** Keys the kernel map holds before drops fold into "other"; default 4 x maxDestinations. */
  kernelKeys?: number;
}

/**
 * Per-destination drop summaries aggregated in the kernel: no record per drop, so a drop flood costs a map
 * update per packet instead of a ring buffer record, a crossing and decoding in Node. Same DropsSummary as
 * DropsAggregator over drops() events. No per-drop events (and no stacks): use drops() for those.
 *   const s = dropsSummary({ reasons: ['NETFILTER_DROP'] }); await s.start(); ...; console.log(s.snapshot());
 */
export class DropsSummaryTrace {
  readonly trace: Trace<DropEvent>;
  private readonly aggregator: DropsAggregator;
  private readonly reader: KernelDropsReader;
  private readonly cpus: number;

  constructor(opts: DropsSummaryOptions = {}) {
    if (opts.stack) throw usageError('kernel-aggregated summaries have no per-drop events: --stack needs the event path');
    const maxDestinations = opts.maxDestinations ?? 4096;
    const keys = opts.kernelKeys ?? Math.max(1024, 4 * maxDestinations);
    this.aggregator = new DropsAggregator({ maxDestinations, now: opts.now });
    this.reader = new KernelDropsReader(this.aggregator, { clock: new ClockMapper(), reasons: DropReasons.kernel() });
    this.cpus = addon().numPossibleCpus;
    const spec = dropsSpec(opts, undefined, {
      keys,
      beforeClose: (obj) => this.read(obj),
      events: () => this.reader.events,
    });
    // No records flow: the smallest ring buffer (one page) is enough for the object to load.
    this.trace = new Trace(spec, { ...opts, ringBufferBytes: 4096 });
  }

  start(): Promise<StartInfo> { return this.trace.start(); }
  stop(): Promise<void> { return this.trace.stop(); }
  counters() { return this.trace.counters(); }

  /** Reads the kernel maps (one dump each) and returns the summary; after stop(), the final one. */
  snapshot(): DropsSummary {
    let obj: NativeBpfObject | null = null;
    try { obj = this.trace.object(); } catch { obj = null; } // not started or already stopped (read at stop)
    if (obj) this.read(obj);
    return this.aggregator.snapshot();
  }

  private read(obj: NativeBpfObject): void {
    this.reader.ingest(obj.mapDump('drop_agg'), this.cpus);
    this.reader.ingest(obj.mapDump('drop_agg_other'), this.cpus);
  }
}

/** Drop summaries aggregated in the kernel (see DropsSummaryTrace). */
export function dropsSummary(opts: DropsSummaryOptions = {}): DropsSummaryTrace {
  return new DropsSummaryTrace(opts);
}
