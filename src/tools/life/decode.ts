/**
 * netbpf life, the record: one TCP connection's establishment or close (struct life_event, bpf/life.h) decoded
 * into a typed event with payload bytes, duration, owner and close reason.
 */
import { AF_INET, type Family } from '../../core/address.js';
import { ERRNO, errnoName } from '../../core/errno.js';
import { ClockMapper, connectionIdReader, readAddress, readComm, readU64 } from '../../core/record.js';
import { NETBPF_OWNER_SOURCE_NAMES } from '../../core/netbpf.gen.js';
import { tcpStateName, type TcpState } from '../../core/tcp.js';
import { LIFE_DIRECTION_NAMES, LIFE_EVENT_LAYOUT, LIFE_FLAGS, LIFE_KIND } from './bpf.gen.js';

/** struct life_event (bpf/life.h): [offset, size] of each field. */
export { LIFE_EVENT_LAYOUT as LIFE_LAYOUT };
const { LIFE_RST_SENT, LIFE_RST_RECEIVED, LIFE_FIN_RECEIVED, LIFE_RST_UNREAD, LIFE_SYN_ACKED, LIFE_FIN_ACKED } = LIFE_FLAGS;
/** Which side opened the connection (enum life_direction). */
export type LifeDirection = (typeof LIFE_DIRECTION_NAMES)[number];
/** Where the owning process was seen (always process context): connect(), recvmsg(), sendmsg(), close()/shutdown(). */
export type LifeOwnerSource = (typeof NETBPF_OWNER_SOURCE_NAMES)[number];

/**
 * Why a connection closed: orderly FIN exchange; reset received or sent; retransmission/keepalive timeout
 * (ETIMEDOUT); another socket error; or `failed` when the handshake never completed (see connect).
 */
export type CloseReason = 'fin' | 'reset-received' | 'reset-sent' | 'timeout' | 'error' | 'failed';
export const CLOSE_REASONS: readonly CloseReason[] = ['fin', 'reset-received', 'reset-sent', 'timeout', 'error', 'failed'];

interface LifeEventBase {
  /** Wall-clock time of the state change, ms since the epoch. */
  time: number;
  family: Family;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  direction: LifeDirection;
  /** Owning process; 0 / '' when it was not seen in process context (ownerSource 'none'). */
  pid: number;
  comm: string;
  ownerSource: LifeOwnerSource;
  /** Payload bytes sent and acknowledged / received in order: the kernel's bytes_acked and bytes_received
   * less the SYN and FIN sequence numbers they include. */
  txBytes: number;
  rxBytes: number;
  /** The kernel's raw tcp_sock bytes_acked / bytes_received (tcplife's TX_KB / RX_KB source). */
  bytesAcked: number;
  bytesReceived: number;
  /** Segments retransmitted over the connection's life (tcp_sock total_retrans). */
  totalRetrans: number;
  segsOut: number;
  segsIn: number;
  /** Smoothed RTT, microseconds. */
  srttUs: number;
  netns: number;
  cgroupId: number;
  /** Hash of the connection's addresses, ports and namespace: the same in every tool's records of it. */
  connId: number;
}

/** The handshake completed. */
export interface LifeEstablishedEvent extends LifeEventBase {
  type: 'established';
  /** Handshake time: first state change -> ESTABLISHED, ms. */
  handshakeMs: number;
}

/** The connection reached TCP_CLOSE (one per connection, like a tcplife line). */
export interface LifeClosedEvent extends LifeEventBase {
  type: 'closed';
  /** First state change (SYN_SENT / SYN_RECV) -> CLOSE, ms (tcplife's MS column). */
  durationMs: number;
  /** Whether the handshake ever completed. */
  established: boolean;
  /** State the socket closed from. */
  closedFrom: TcpState;
  reason: CloseReason;
  /** sk_err at close, positive errno (0 = none), and its name. */
  skErr: number;
  error: string;
  rstSent: boolean;
  rstReceived: boolean;
  /** This host reset it because its application closed it with received data unread (TCPAbortOnClose). */
  rstUnread: boolean;
}

export type LifeEvent = LifeEstablishedEvent | LifeClosedEvent;

const F = LIFE_EVENT_LAYOUT.fields;
const connectionId = connectionIdReader(LIFE_EVENT_LAYOUT);

export function closeReason(established: boolean, skErr: number, flags: number): CloseReason {
  if (!established) return 'failed';
  if (flags & LIFE_RST_RECEIVED || skErr === ERRNO.ECONNRESET || skErr === ERRNO.EPIPE) return 'reset-received';
  if (skErr === ERRNO.ETIMEDOUT) return 'timeout';
  if (flags & LIFE_RST_SENT) return 'reset-sent';
  if (skErr !== 0) return 'error';
  return 'fin';
}

/** Payload bytes from the kernel's counters: bytes_acked counts our SYN and FIN, bytes_received the peer's FIN;
 * the record's flags say which of them it counted (decided in bpf/life.bpf.c, one rule for records and summaries). */
export function payloadBytes(bytesAcked: number, bytesReceived: number, flags: number): { tx: number; rx: number } {
  const tx = bytesAcked - (flags & LIFE_SYN_ACKED ? 1 : 0) - (flags & LIFE_FIN_ACKED ? 1 : 0);
  const rx = bytesReceived - (flags & LIFE_FIN_RECEIVED ? 1 : 0);
  return { tx: tx > 0 ? tx : 0, rx: rx > 0 ? rx : 0 };
}

/** Decodes one record at offset `o`: every field read once at its fixed offset, one object literal per type (a
 * stable shape for V8), no BigInt, no intermediate object. */
export function decodeLife(view: DataView, o: number, clock: ClockMapper): LifeEvent {
  const family = view.getUint16(o + F.family[0], true);
  const ts = readU64(view, o + F.ts_ns[0]);
  const birth = readU64(view, o + F.birth_ns[0]);
  const est = readU64(view, o + F.established_ns[0]);
  const flags = view.getUint8(o + F.flags[0]);
  const bytesAcked = readU64(view, o + F.bytes_acked[0]);
  const bytesReceived = readU64(view, o + F.bytes_received[0]);
  const tx = bytesAcked - (flags & LIFE_SYN_ACKED ? 1 : 0) - (flags & LIFE_FIN_ACKED ? 1 : 0);
  const rx = bytesReceived - (flags & LIFE_FIN_RECEIVED ? 1 : 0);
  const time = clock.toEpochMs(ts);
  const fam: Family = family === AF_INET ? 4 : 6;
  const saddr = readAddress(view, o + F.saddr[0], family);
  const sport = view.getUint16(o + F.sport[0], true);
  const daddr = readAddress(view, o + F.daddr[0], family);
  const dport = view.getUint16(o + F.dport[0], true);
  const direction = LIFE_DIRECTION_NAMES[view.getUint8(o + F.direction[0])] ?? 'unknown';
  const pid = view.getUint32(o + F.pid[0], true);
  const comm = readComm(view, o + F.comm[0]);
  const ownerSource = NETBPF_OWNER_SOURCE_NAMES[view.getUint8(o + F.owner_source[0])] ?? 'none';
  const totalRetrans = view.getUint32(o + F.total_retrans[0], true);
  const segsOut = view.getUint32(o + F.segs_out[0], true);
  const segsIn = view.getUint32(o + F.segs_in[0], true);
  const srttUs = view.getUint32(o + F.srtt_us[0], true);
  const netns = view.getUint32(o + F.netns[0], true);
  const cgroupId = readU64(view, o + F.cgroup_id[0]);
  const connId = connectionId(view, o);
  if (view.getUint8(o + F.kind[0]) === LIFE_KIND.LIFE_ESTABLISHED) {
    return {
      time, family: fam, saddr, sport, daddr, dport, direction, pid, comm, ownerSource,
      txBytes: tx > 0 ? tx : 0, rxBytes: rx > 0 ? rx : 0, bytesAcked, bytesReceived, totalRetrans, segsOut, segsIn, srttUs, netns, cgroupId, connId,
      type: 'established', handshakeMs: (ts - birth) / 1e6,
    };
  }
  const skErr = view.getInt32(o + F.sk_err[0], true);
  return {
    time, family: fam, saddr, sport, daddr, dport, direction, pid, comm, ownerSource,
    txBytes: tx > 0 ? tx : 0, rxBytes: rx > 0 ? rx : 0, bytesAcked, bytesReceived, totalRetrans, segsOut, segsIn, srttUs, netns, cgroupId, connId,
    type: 'closed',
    durationMs: (ts - birth) / 1e6,
    established: est !== 0,
    closedFrom: tcpStateName(view.getUint8(o + F.old_state[0])),
    reason: closeReason(est !== 0, skErr, flags),
    skErr,
    error: skErr === 0 ? '' : errnoName(skErr),
    rstSent: (flags & LIFE_RST_SENT) !== 0,
    rstReceived: (flags & LIFE_RST_RECEIVED) !== 0,
    rstUnread: (flags & LIFE_RST_UNREAD) !== 0,
  };
}
