/**
 * netbpf conntrack, the record: one conntrack entry created, destroyed or listed (struct ct_event, bpf/conntrack.h; the BPF
 * programs and addon/ctnetlink.cc write the same records) decoded into a typed event, and record-level filters.
 */
import { cidrContains, parseCidr, type Family, AF_INET, AF_INET6 } from '../../core/address.js';
import { addon } from '../../core/addon.js';
import type { FilterOptions } from '../../core/filters.js';
import type { CtTuple } from '../../core/nat.js';
import { ClockMapper, readAddress } from '../../core/record.js';
import { CT_EVENT_KIND, CT_EVENT_LAYOUT, CT_FLAGS } from './bpf.gen.js';

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
export function tcpConntrackStates(): string[] {
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
