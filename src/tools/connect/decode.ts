/**
 * netbpf connect, the record: one TCP connect attempt (struct connect_event, bpf/connect.h): established with its
 * latency, or failed and classified (refused, timeout, unreachable, aborted, other).
 */
import { AF_INET, type Family } from '../../core/address.js';
import { ERRNO, errnoName } from '../../core/errno.js';
import { ClockMapper, connectionIdReader, readAddress, readCString } from '../../core/record.js';
import { CONNECT_EVENT_LAYOUT, CONNECT_FLAGS, CONNECT_KIND } from './bpf.gen.js';

/** struct connect_event (bpf/connect.h): [offset, size] of each field. */
export { CONNECT_EVENT_LAYOUT as CONNECT_LAYOUT };
const { CONNECT_RST_RECEIVED, CONNECT_BEFORE_SYN, CONNECT_IN_SYSCALL } = CONNECT_FLAGS;

/**
 * Why a connect failed: refused (RST: reached the host, nothing listening), timeout (no answer after the
 * SYN retries), unreachable (no route, or ICMP host/net unreachable), aborted (the application closed the
 * socket before an answer), other (any other errno, e.g. EADDRNOTAVAIL when ephemeral ports run out).
 */
export type FailureClass = 'refused' | 'timeout' | 'unreachable' | 'aborted' | 'other';
export const FAILURE_CLASSES: readonly FailureClass[] = ['refused', 'timeout', 'unreachable', 'aborted', 'other'];

export function classifyFailure(err: number, flags = 0): FailureClass {
  if (err === ERRNO.ECONNREFUSED || (err === 0 && flags & CONNECT_RST_RECEIVED)) return 'refused';
  if (err === ERRNO.ETIMEDOUT) return 'timeout';
  if (err === ERRNO.EHOSTUNREACH || err === ERRNO.ENETUNREACH || err === ERRNO.EHOSTDOWN || err === ERRNO.ENETDOWN) return 'unreachable';
  if (err === 0) return 'aborted';
  return 'other';
}

interface ConnectEventBase {
  /** Wall-clock time of the outcome, ms since the epoch. */
  time: number;
  family: Family;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  /** Process that called connect(). */
  pid: number;
  comm: string;
  /** SYNs retransmitted during the attempt. */
  synRetrans: number;
  netns: number;
  cgroupId: number;
  /** Hash of the connection's addresses, ports and namespace: the same in every tool's records of it. */
  connId: number;
}

/** SYN_SENT -> ESTABLISHED. */
export interface ConnectEstablishedEvent extends ConnectEventBase {
  type: 'established';
  /** connect() (SYN_SENT) -> ESTABLISHED, microseconds. */
  latencyUs: number;
}

/** SYN_SENT -> CLOSE, or connect() failed before any SYN left (beforeSyn). */
export interface ConnectFailedEvent extends ConnectEventBase {
  type: 'failed';
  failure: FailureClass;
  /** Positive errno the application saw (0 when it gave up first) and its name. */
  err: number;
  error: string;
  /** connect() -> failure, microseconds. */
  elapsedUs: number;
  /** A reset answered the SYN. */
  rstReceived: boolean;
  /** connect() returned the error before any SYN was sent (e.g. no route, no free local port). */
  beforeSyn: boolean;
  /** The namespace's net.ipv4.ip_local_port_range when connect() found no free local port (EADDRNOTAVAIL). */
  localPorts: { low: number; high: number } | null;
}

export type ConnectEvent = ConnectEstablishedEvent | ConnectFailedEvent;

const F = CONNECT_EVENT_LAYOUT.fields;
const connectionId = connectionIdReader(CONNECT_EVENT_LAYOUT);

export function decodeConnect(view: DataView, o: number, clock: ClockMapper): ConnectEvent {
  const family = view.getUint16(o + F.family[0], true);
  const ts = Number(view.getBigUint64(o + F.ts_ns[0], true));
  const start = Number(view.getBigUint64(o + F.start_ns[0], true));
  const base: ConnectEventBase = {
    time: clock.toEpochMs(ts),
    family: family === AF_INET ? 4 : 6,
    saddr: readAddress(view, o + F.saddr[0], family),
    sport: view.getUint16(o + F.sport[0], true),
    daddr: readAddress(view, o + F.daddr[0], family),
    dport: view.getUint16(o + F.dport[0], true),
    pid: view.getUint32(o + F.pid[0], true),
    comm: readCString(view, o + F.comm[0], F.comm[1]),
    synRetrans: view.getUint32(o + F.syn_retrans[0], true),
    netns: view.getUint32(o + F.netns[0], true),
    cgroupId: Number(view.getBigUint64(o + F.cgroup_id[0], true)),
    connId: connectionId(view, o),
  };
  const us = (ts - start) / 1000;
  if (view.getUint8(o + F.kind[0]) === CONNECT_KIND.CONNECT_ESTABLISHED) return { ...base, type: 'established', latencyUs: us };
  const err = view.getInt32(o + F.err[0], true);
  const flags = view.getUint8(o + F.flags[0]);
  return {
    ...base, type: 'failed', failure: classifyFailure(err, flags), err, error: errnoName(err), elapsedUs: us,
    rstReceived: (flags & CONNECT_RST_RECEIVED) !== 0, beforeSyn: (flags & CONNECT_BEFORE_SYN) !== 0,
    localPorts: flags & CONNECT_IN_SYSCALL ? { low: view.getUint16(o + F.ports_low[0], true), high: view.getUint16(o + F.ports_high[0], true) } : null,
  };
}
