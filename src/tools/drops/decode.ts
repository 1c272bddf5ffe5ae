/**
 * netbpf drops, the record: one dropped packet (struct drop_event, bpf/drops.h) decoded into a typed event.
 *
 * Orientation rule (documented in docs/drops.md): a packet that came in through an interface (skb_iif set)
 * was received, so its remote side is the source; a packet built on this host was being sent, so its remote
 * side is the destination. When the skb had no usable headers the socket's own tuple is used (remote = peer).
 */
import { AF_INET, AF_INET6, type Family } from '../../core/address.js';
import { Kallsyms, kernelAddressKey } from '../../core/kallsyms.js';
import { ClockMapper, readAddress } from '../../core/record.js';
import { tcpStateName, type TcpState } from '../../core/tcp.js';
import { DROP_EVENT_LAYOUT, DROP_FLAGS } from './bpf.gen.js';
import { dropCategory, DROP_REASON_UNAVAILABLE, type DropCategory, type DropReasons } from './reasons.js';

/** struct drop_event (bpf/drops.h): [offset, size] of each field. */
export { DROP_EVENT_LAYOUT as DROPS_LAYOUT };
/** enum drop_flags (bpf/drops.h): drop_event.flags. */
export { DROP_FLAGS };

const { DROP_F_RECEIVED, DROP_F_SOCKET, DROP_F_HEADERS, DROP_F_SOCK_TUPLE, DROP_F_NO_PORTS } = DROP_FLAGS;

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

/** One side of a dropped packet: address and port (null when the packet did not tell). */
export interface DropSide { addr: string; port: number | null }

/**
 * The two sides of a dropped packet from this host's point of view, and which of them is the server when the
 * packet says so (a SYN goes to the server, a SYN-ACK comes from it). Every view that places drops against
 * destinations starts from this (top, the exporter: core/placement.ts).
 */
export function dropSides(e: DropEvent): { remote: DropSide | null; local: DropSide | null; server: 'remote' | 'local' | null } {
  const remote = e.remoteAddr === null ? null : { addr: e.remoteAddr, port: e.remotePort };
  const localAddr = e.direction === 'received' ? e.daddr : e.saddr;
  const local = localAddr === null ? null : { addr: localAddr, port: e.direction === 'received' ? e.dport : e.sport };
  let server: 'remote' | 'local' | null = null;
  if (e.proto === 'tcp' && e.tcpFlags) {
    const syn = e.tcpFlags.includes('SYN'), ack = e.tcpFlags.includes('ACK');
    // A SYN's destination is the server; a SYN-ACK's source is. Which of them is local depends on the direction.
    const towardsServer = syn && !ack ? 'dst' : syn && ack ? 'src' : null;
    if (towardsServer) server = (towardsServer === 'dst') === (e.direction === 'received') ? 'local' : 'remote';
  }
  return { remote, local, server };
}
