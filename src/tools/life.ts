/**
 * netbpf life: TCP connection lifetimes (bpf/life.bpf.c), like tcplife: one `closed` event per connection
 * with bytes each way, duration, retransmits, RTT, owner process and close reason; an `established` event
 * when the handshake completes. LifeAggregator summarises per destination (connect: the remote endpoint;
 * accept: the remote address and local port), with lifetime histograms and connections still open.
 */
import { formatEndpoint, type Family, AF_INET } from '../core/address.js';
import { ERRNO, errnoName } from '../core/errno.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { preferHook, tracepoint, type HookPreference } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { ClockMapper, readAddress, readCString } from '../core/record.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import { tcpStateName, type TcpState } from '../core/tcp.js';
import { Trace, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { usageError } from '../core/errors.js';
import { LIFE_DIRECTION_NAMES, LIFE_EVENT_LAYOUT, LIFE_FLAGS, LIFE_KIND, LIFE_OWNER_SOURCE_NAMES, LIFE_RODATA } from './life/bpf.gen.js';

/** struct life_event (bpf/life.h): [offset, size] of each field. */
export { LIFE_EVENT_LAYOUT as LIFE_LAYOUT };
const { LIFE_RST_SENT, LIFE_RST_RECEIVED, LIFE_FIN_RECEIVED } = LIFE_FLAGS;
/** Which side opened the connection (enum life_direction). */
export type LifeDirection = (typeof LIFE_DIRECTION_NAMES)[number];
/** Where the owning process was seen (always process context): connect(), recvmsg(), sendmsg(), close()/shutdown(). */
export type LifeOwnerSource = (typeof LIFE_OWNER_SOURCE_NAMES)[number];
/** States whose move to CLOSE means our FIN was acknowledged (when no error or reset intervened). */
const FIN_ACKED_FROM = new Set<TcpState>(['FIN_WAIT2', 'LAST_ACK', 'CLOSING', 'TIME_WAIT']);

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
}

export type LifeEvent = LifeEstablishedEvent | LifeClosedEvent;

const F = LIFE_EVENT_LAYOUT.fields;

export function closeReason(established: boolean, skErr: number, flags: number): CloseReason {
  if (!established) return 'failed';
  if (flags & LIFE_RST_RECEIVED || skErr === ERRNO.ECONNRESET || skErr === ERRNO.EPIPE) return 'reset-received';
  if (skErr === ERRNO.ETIMEDOUT) return 'timeout';
  if (flags & LIFE_RST_SENT) return 'reset-sent';
  if (skErr !== 0) return 'error';
  return 'fin';
}

export function decodeLife(view: DataView, o: number, clock: ClockMapper): LifeEvent {
  const family = view.getUint16(o + F.family[0], true);
  const ts = Number(view.getBigUint64(o + F.ts_ns[0], true));
  const birth = Number(view.getBigUint64(o + F.birth_ns[0], true));
  const est = Number(view.getBigUint64(o + F.established_ns[0], true));
  const base: LifeEventBase = {
    time: clock.toEpochMs(ts),
    family: family === AF_INET ? 4 : 6,
    saddr: readAddress(view, o + F.saddr[0], family),
    sport: view.getUint16(o + F.sport[0], true),
    daddr: readAddress(view, o + F.daddr[0], family),
    dport: view.getUint16(o + F.dport[0], true),
    direction: LIFE_DIRECTION_NAMES[view.getUint8(o + F.direction[0])] ?? 'unknown',
    pid: view.getUint32(o + F.pid[0], true),
    comm: readCString(view, o + F.comm[0], F.comm[1]),
    ownerSource: LIFE_OWNER_SOURCE_NAMES[view.getUint8(o + F.owner_source[0])] ?? 'none',
    txBytes: 0,
    rxBytes: 0,
    bytesAcked: Number(view.getBigUint64(o + F.bytes_acked[0], true)),
    bytesReceived: Number(view.getBigUint64(o + F.bytes_received[0], true)),
    totalRetrans: view.getUint32(o + F.total_retrans[0], true),
    segsOut: view.getUint32(o + F.segs_out[0], true),
    segsIn: view.getUint32(o + F.segs_in[0], true),
    srttUs: view.getUint32(o + F.srtt_us[0], true),
    netns: view.getUint32(o + F.netns[0], true),
    cgroupId: Number(view.getBigUint64(o + F.cgroup_id[0], true)),
  };
  // An active open's bytes_acked includes the SYN once it is acknowledged (a passive child starts past it).
  const synAcked = base.direction === 'connect' && (est !== 0) ? 1 : 0;
  const flags = view.getUint8(o + F.flags[0]);
  if (view.getUint8(o + F.kind[0]) === LIFE_KIND.LIFE_ESTABLISHED) {
    base.txBytes = Math.max(0, base.bytesAcked - synAcked);
    base.rxBytes = base.bytesReceived;
    return { ...base, type: 'established', handshakeMs: (ts - birth) / 1e6 };
  }
  const skErr = view.getInt32(o + F.sk_err[0], true);
  const closedFrom = tcpStateName(view.getUint8(o + F.old_state[0]));
  const finAcked = FIN_ACKED_FROM.has(closedFrom) && skErr === 0 && !(flags & LIFE_RST_RECEIVED) ? 1 : 0;
  base.txBytes = Math.max(0, base.bytesAcked - synAcked - finAcked);
  base.rxBytes = Math.max(0, base.bytesReceived - (flags & LIFE_FIN_RECEIVED ? 1 : 0));
  return {
    ...base,
    type: 'closed',
    durationMs: (ts - birth) / 1e6,
    established: est !== 0,
    closedFrom,
    reason: closeReason(est !== 0, skErr, flags),
    skErr,
    error: errnoName(skErr),
    rstSent: (flags & LIFE_RST_SENT) !== 0,
    rstReceived: (flags & LIFE_RST_RECEIVED) !== 0,
  };
}

export interface LifeOptions extends FilterOptions, TraceOptions {
  /** Only connections owned by this process. Filtered in user space: an accepted connection's owner is
   * learned after the handshake, so the kernel cannot drop its events early. */
  pid?: number;
  /** Force how state changes are hooked instead of the best available (the classic tracepoint needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
  /** Most live connections tracked at once (kernel hash map); more are counted as untracked. Default 65536. */
  maxConnections?: number;
}

export function lifeSpec(opts: LifeOptions = {}): TraceSpec<LifeEvent> {
  const clock = new ClockMapper();
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid < 1)) throw usageError(`invalid pid ${opts.pid}: must be a positive integer`);
  return {
    tool: 'life',
    recordSize: LIFE_EVENT_LAYOUT.size,
    constants: filterConstants(opts),
    rodata: LIFE_RODATA,
    mapSizes: opts.maxConnections ? { births: opts.maxConnections } : undefined,
    hooks: [
      { feature: 'connection state changes', required: true, alternatives: preferHook(tracepoint('sock', 'inet_sock_set_state', 'handle_set_state'), opts.hook) },
      { feature: 'resets sent', required: false, alternatives: tracepoint('tcp', 'tcp_send_reset', 'handle_send_reset') },
      { feature: 'resets received', required: false, alternatives: tracepoint('tcp', 'tcp_receive_reset', 'handle_receive_reset') },
      { feature: 'owner of accepted connections (recvmsg)', required: false, alternatives: tracepoint('sock', 'sock_recv_length', 'handle_recv_length') },
      { feature: 'owner of accepted connections (sendmsg)', required: false, alternatives: tracepoint('sock', 'sock_send_length', 'handle_send_length') },
    ],
    decode: (view, o) => decodeLife(view, o, clock),
    accept: opts.pid === undefined ? undefined : (e) => e.pid === opts.pid,
  };
}

/** A running life trace; `untracked()` counts connections the kernel map had no room for. */
export class LifeTrace extends Trace<LifeEvent> {
  private finalUntracked: number | null = null;
  constructor(opts: LifeOptions = {}) {
    super(lifeSpec(opts), opts);
  }
  /** Connections not tracked because the kernel map was full; exact after stop(). */
  untracked(): number {
    if (this.finalUntracked !== null) return this.finalUntracked;
    try {
      const per = this.object().mapLookup('untracked', Buffer.alloc(4));
      let n = 0;
      if (per) for (let o = 0; o + 8 <= per.length; o += 8) n += Number(per.readBigUInt64LE(o));
      return n;
    } catch {
      return 0;
    }
  }
  override async stop(): Promise<void> {
    if (this.finalUntracked === null) {
      try { this.finalUntracked = this.untracked(); } catch { /* not started */ }
    }
    return super.stop();
  }
}

/** Traces TCP connection lifetimes: `for await (const ev of life()) if (ev.type === 'closed') ...`. */
export function life(opts: LifeOptions = {}): LifeTrace {
  return new LifeTrace(opts);
}

/** Per-destination connection statistics. */
export interface LifeRow {
  /** connect: "raddr:rport"; accept: "raddr -> :lport"; "other" for the folded row; address rows: "raddr". */
  key: string;
  direction: LifeDirection | 'mixed';
  /** Connections closed (established or not). */
  connections: number;
  /** Handshakes completed during the trace. */
  established: number;
  /** Connections that closed without completing the handshake. */
  failed: number;
  /** Established during the trace and not closed yet. */
  open: number;
  txBytes: number;
  rxBytes: number;
  totalRetrans: number;
  /** Retransmitted segments per closed connection. */
  retransPerConnection: number;
  reasons: Record<CloseReason, number>;
  histograms: { durationMs: HistogramData; retransPerConnection: HistogramData };
}

export interface LifeSummary {
  type: 'summary';
  tool: 'life';
  time: number;
  elapsedS: number;
  totals: { connections: number; established: number; failed: number; open: number; txBytes: number; rxBytes: number; totalRetrans: number };
  byDestination: LifeRow[];
  byAddress: LifeRow[];
  folded: { destinations: number; addresses: number };
}

/** Row key of a connection: who this host talked to, as the user thinks of it. */
export function lifeKey(e: LifeEvent): string {
  return e.direction === 'accept' ? `${e.daddr} -> :${e.sport}` : formatEndpoint(e.daddr, e.dport);
}

class LifeStats {
  direction: LifeDirection | 'mixed' | null = null;
  connections = 0;
  established = 0;
  failed = 0;
  closedEstablished = 0;
  txBytes = 0;
  rxBytes = 0;
  totalRetrans = 0;
  reasons: Record<CloseReason, number> = { fin: 0, 'reset-received': 0, 'reset-sent': 0, timeout: 0, error: 0, failed: 0 };
  durationMs = new Log2Histogram('ms');
  retrans = new Log2Histogram('count');
  constructor(readonly key: string) {}

  add(e: LifeEvent): void {
    if (this.direction === null) this.direction = e.direction;
    else if (this.direction !== e.direction) this.direction = 'mixed';
    if (e.type === 'established') { this.established++; return; }
    this.connections++;
    if (e.established) this.closedEstablished++;
    else this.failed++;
    this.txBytes += e.txBytes;
    this.rxBytes += e.rxBytes;
    this.totalRetrans += e.totalRetrans;
    this.reasons[e.reason]++;
    this.durationMs.add(e.durationMs);
    this.retrans.add(e.totalRetrans);
  }

  row(): LifeRow {
    return {
      key: this.key, direction: this.direction ?? 'unknown',
      connections: this.connections, established: this.established, failed: this.failed,
      // Connections established before a row's first close are counted once they close; never negative.
      open: Math.max(0, this.established - this.closedEstablished),
      txBytes: this.txBytes, rxBytes: this.rxBytes, totalRetrans: this.totalRetrans,
      retransPerConnection: this.connections ? this.totalRetrans / this.connections : 0,
      reasons: { ...this.reasons },
      histograms: { durationMs: this.durationMs.toJSON(), retransPerConnection: this.retrans.toJSON() },
    };
  }
}

export interface LifeAggregatorOptions {
  /** Most destinations with a row of their own per table; the rest fold into "other". Default 4096. */
  maxDestinations?: number;
  now?: () => number;
}

/** Aggregates life events per destination and per remote address. Usable on its own. */
export class LifeAggregator {
  private readonly destinations: BoundedTable<LifeStats>;
  private readonly addresses: BoundedTable<LifeStats>;
  private readonly now: () => number;
  private readonly startedAt: number;

  constructor(opts: LifeAggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.destinations = new BoundedTable(max, (k) => new LifeStats(k));
    this.addresses = new BoundedTable(max, (k) => new LifeStats(k));
  }

  add(e: LifeEvent): void {
    this.destinations.row(lifeKey(e)).add(e);
    this.addresses.row(e.daddr).add(e);
  }

  addAll(events: LifeEvent[]): void {
    for (const e of events) this.add(e);
  }

  snapshot(): LifeSummary {
    const t = this.now();
    const rows = (table: BoundedTable<LifeStats>): LifeRow[] => {
      return table.allRows().map((s) => s.row()).sort((a, b) => b.connections - a.connections || b.established - a.established || (a.key === OTHER_KEY ? 1 : 0));
    };
    const byDestination = rows(this.destinations);
    const totals = { connections: 0, established: 0, failed: 0, open: 0, txBytes: 0, rxBytes: 0, totalRetrans: 0 };
    for (const r of byDestination) {
      totals.connections += r.connections; totals.established += r.established; totals.failed += r.failed;
      totals.open += r.open; totals.txBytes += r.txBytes; totals.rxBytes += r.rxBytes; totals.totalRetrans += r.totalRetrans;
    }
    return {
      type: 'summary', tool: 'life', time: t, elapsedS: (t - this.startedAt) / 1000, totals,
      byDestination, byAddress: rows(this.addresses),
      folded: { destinations: this.destinations.foldedKeys, addresses: this.addresses.foldedKeys },
    };
  }
}
