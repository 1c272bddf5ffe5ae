/**
 * netbpf retrans, the record: one TCP retransmit (struct retrans_event, bpf/retrans.h) decoded into a typed
 * event with fixed offsets from the generated contract (bpf.gen.ts).
 */
import { AF_INET, type Family } from '../../core/address.js';
import { ClockMapper, connectionIdReader, readAddress, readCString, readU64 } from '../../core/record.js';
import { tcpCaStateName, tcpStateName, type TcpCaState, type TcpState } from '../../core/tcp.js';
import { RETRANS_EVENT_LAYOUT, RETRANS_KIND_NAMES } from './bpf.gen.js';

/** struct retrans_event (bpf/retrans.h): [offset, size] of each field. */
export { RETRANS_EVENT_LAYOUT as RETRANS_LAYOUT };
/** enum retrans_kind (bpf/retrans.h) names by value. */
export const RETRANS_KINDS = RETRANS_KIND_NAMES;
/** What made the kernel retransmit: timer (rto), fast retransmit/recovery, tail loss probe, SYN, SYN-ACK. */
export type RetransKind = (typeof RETRANS_KINDS)[number];

/** One TCP retransmit. */
export interface RetransEvent {
  type: 'retransmit';
  /** Wall-clock time, milliseconds since the epoch. */
  time: number;
  family: Family;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  state: TcpState;
  kind: RetransKind;
  /** Congestion-avoidance state at the retransmit. */
  caState: TcpCaState;
  /** Segments in this retransmitted skb (one skb can carry many). */
  segs: number;
  /** Segments retransmitted over the connection's life so far. */
  totalRetrans: number;
  /** Segments sent over the connection's life so far. */
  segsOut: number;
  /** Consecutive timer retransmits without progress. */
  retransmits: number;
  /** Smoothed RTT in microseconds (0 for SYN-ACKs). */
  srttUs: number;
  /** 0, or the error that stopped this retransmit (e.g. -ENOBUFS); reported by kernels >= 6.11. */
  err: number;
  /** Owning process (captured at connect()); 0 / '' when unknown (accepted connections, SYN-ACKs). */
  pid: number;
  comm: string;
  netns: number;
  cgroupId: number;
  /** Hash of the connection's 4-tuple and namespace: equal for retransmits of one connection. */
  connId: number;
  /** With --resolve-nat: the address:port the connection was made to, when daddr/dport are the DNAT backend's. */
  natFrom?: string;
}

const F = RETRANS_EVENT_LAYOUT.fields;
const connectionId = connectionIdReader(RETRANS_EVENT_LAYOUT);

/**
 * Errors __tcp_retransmit_skb returns before it counts the segments (RetransSegs, total_retrans): the skb is
 * still in a local queue (EBUSY), outside the window (EAGAIN), could not be split (ENOMEM) or the route is
 * gone (EHOSTUNREACH). Any other error comes from the transmit itself, after the kernel counted the segments.
 */
const NOT_COUNTED_ERRNOS = new Set([16, 11, 12, 113]);

/** Whether the kernel counted this retransmit's segments as retransmitted (as in /proc/net/snmp RetransSegs). */
export function countedByKernel(e: Pick<RetransEvent, 'err'>): boolean {
  return e.err === 0 || !NOT_COUNTED_ERRNOS.has(-e.err);
}

export function decodeRetrans(view: DataView, o: number, clock: ClockMapper): RetransEvent {
  const family = view.getUint16(o + F.family[0], true);
  return {
    type: 'retransmit',
    time: clock.toEpochMs(readU64(view, o + F.ts_ns[0])),
    family: family === AF_INET ? 4 : 6,
    saddr: readAddress(view, o + F.saddr[0], family),
    sport: view.getUint16(o + F.sport[0], true),
    daddr: readAddress(view, o + F.daddr[0], family),
    dport: view.getUint16(o + F.dport[0], true),
    state: tcpStateName(view.getUint8(o + F.state[0])),
    kind: RETRANS_KINDS[view.getUint8(o + F.kind[0])] ?? 'other',
    caState: tcpCaStateName(view.getUint8(o + F.ca_state[0])),
    segs: view.getUint32(o + F.segs[0], true),
    totalRetrans: view.getUint32(o + F.total_retrans[0], true),
    segsOut: view.getUint32(o + F.segs_out[0], true),
    retransmits: view.getUint8(o + F.retransmits[0]),
    srttUs: view.getUint32(o + F.srtt_us[0], true),
    err: view.getInt32(o + F.err[0], true),
    pid: view.getUint32(o + F.pid[0], true),
    comm: readCString(view, o + F.comm[0], F.comm[1]),
    netns: view.getUint32(o + F.netns[0], true),
    cgroupId: readU64(view, o + F.cgroup_id[0]),
    connId: connectionId(view, o),
  };
}
