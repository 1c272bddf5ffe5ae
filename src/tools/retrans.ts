/**
 * netbpf retrans: live TCP retransmits (bpf/retrans.bpf.c), decoded into typed events and aggregated per
 * destination: events, segments (GSO-aware, agreeing with the kernel's RetransSegs), rate, connections
 * affected, retransmitted/sent ratio, and log2 histograms of consecutive retransmits and RTT.
 */
import { formatEndpoint, type Family, AF_INET } from '../core/address.js';
import { filterConstants, type FilterOptions } from '../core/filters.js';
import { preferHook, tracepoint, type HookPreference } from '../core/hooks.js';
import { Log2Histogram, type HistogramData } from '../core/histogram.js';
import { ClockMapper, hashWords, readAddress, readCString, readU64 } from '../core/record.js';
import { BoundedTable, OTHER_KEY } from '../core/table.js';
import { tcpCaStateName, tcpStateName, type TcpCaState, type TcpState } from '../core/tcp.js';
import { Trace, type TraceOptions, type TraceSpec } from '../core/trace.js';
import { RETRANS_EVENT_LAYOUT, RETRANS_KIND_NAMES, RETRANS_RODATA } from './retrans/bpf.gen.js';

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
}

const F = RETRANS_EVENT_LAYOUT.fields;
/** connId hashes saddr, daddr, netns as consecutive words, then sport+dport as one (test/unit/contract.test.ts checks they adjoin). */
const CONN_ID_WORDS = (F.netns[0] + F.netns[1] - F.saddr[0]) / 4;

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
    connId: hashWords(view, o + F.sport[0], 1, hashWords(view, o + F.saddr[0], CONN_ID_WORDS)),
  };
}

export interface RetransOptions extends FilterOptions, TraceOptions {
  /** Force how retransmits are hooked instead of the best available: "tp_btf", "raw_tp" or "tracepoint" (classic: needs tracefs). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'>;
}

export function retransSpec(opts: RetransOptions = {}): TraceSpec<RetransEvent> {
  const clock = new ClockMapper();
  return {
    tool: 'retrans',
    recordSize: RETRANS_EVENT_LAYOUT.size,
    constants: filterConstants(opts),
    rodata: RETRANS_RODATA,
    hooks: [
      { feature: 'retransmits', required: true, alternatives: preferHook(tracepoint('tcp', 'tcp_retransmit_skb', 'handle_retransmit'), opts.hook) },
      { feature: 'SYN-ACK retransmits', required: false, alternatives: tracepoint('tcp', 'tcp_retransmit_synack', 'handle_retransmit_synack') },
      { feature: 'process attribution (connect)', required: false, alternatives: tracepoint('sock', 'inet_sock_set_state', 'handle_set_state') },
    ],
    decode: (view, o) => decodeRetrans(view, o, clock),
  };
}

/** Traces TCP retransmits: `for await (const ev of retrans({ remotePort: 443 })) ...`. */
export function retrans(opts: RetransOptions = {}): Trace<RetransEvent> {
  return new Trace(retransSpec(opts), opts);
}

/** Per-destination retransmit statistics. */
export interface RetransRow {
  /** "addr:port" for endpoint rows, "addr" for address rows, "other" for the folded row. */
  key: string;
  daddr: string;
  dport: number | null;
  events: number;
  segs: number;
  /** Retransmits that failed (err != 0); their segments count in segs only where the kernel counted them. */
  failed: number;
  /** Retransmitted segments per second over the last interval and over the whole run. */
  rate: number;
  avgRate: number;
  /** Distinct connections with retransmits (counted up to connectionsCap). */
  connections: number;
  connectionsCapped: boolean;
  /** Retransmitted / sent segments over the affected connections' lives, from the kernel's own counters. */
  retransRatio: number;
  kinds: Record<RetransKind, number>;
  firstSeen: number;
  lastSeen: number;
  histograms: { retransmits: HistogramData; srttUs: HistogramData };
}

export interface RetransSummary {
  type: 'summary';
  tool: 'retrans';
  time: number;
  /** Seconds covered: since the aggregator started, and since the previous snapshot. */
  elapsedS: number;
  intervalS: number;
  /** connections: distinct connections, counted up to 65536 (connectionsCapped then). */
  totals: { events: number; segs: number; failed: number; connections: number; connectionsCapped: boolean };
  byEndpoint: RetransRow[];
  byAddress: RetransRow[];
  /** Destinations that did not get a row of their own (counted in the "other" rows). */
  folded: { endpoints: number; addresses: number };
}

const CONNECTIONS_CAP = 1024;
const CONNECTIONS_TOTAL_CAP = 65536;

class RowStats {
  events = 0;
  segs = 0;
  failed = 0;
  segsAtLastSnapshot = 0;
  firstSeen = 0;
  lastSeen = 0;
  kinds: Record<RetransKind, number> = { other: 0, rto: 0, fast: 0, tlp: 0, syn: 0, synack: 0 };
  /** connId -> latest [total_retrans, segs_out] of that connection. */
  conns = new Map<number, [number, number]>();
  connectionsCapped = false;
  retransmits = new Log2Histogram('count');
  srttUs = new Log2Histogram('us');
  daddr = '';
  dport: number | null = null;
  constructor(readonly key: string, private readonly byEndpoint: boolean) {}

  add(e: RetransEvent): void {
    if (this.events === 0) {
      this.firstSeen = e.time;
      if (this.key !== OTHER_KEY) {
        this.daddr = e.daddr;
        if (this.byEndpoint) this.dport = e.dport;
      }
    }
    this.lastSeen = e.time;
    this.events++;
    if (e.err !== 0) this.failed++;
    if (!countedByKernel(e)) return;
    this.segs += e.segs;
    this.kinds[e.kind] += e.segs;
    this.retransmits.add(e.retransmits);
    if (e.srttUs > 0) this.srttUs.add(e.srttUs);
    if (e.kind === 'synack') return;
    const conn = this.conns.get(e.connId);
    if (conn) { conn[0] = e.totalRetrans; conn[1] = e.segsOut; }
    else if (this.conns.size < CONNECTIONS_CAP) this.conns.set(e.connId, [e.totalRetrans, e.segsOut]);
    else this.connectionsCapped = true;
  }

  row(elapsedS: number, intervalS: number): RetransRow {
    let retr = 0, out = 0;
    for (const [r, o] of this.conns.values()) { retr += r; out += o; }
    const row: RetransRow = {
      key: this.key, daddr: this.daddr, dport: this.dport,
      events: this.events, segs: this.segs, failed: this.failed,
      rate: intervalS > 0 ? (this.segs - this.segsAtLastSnapshot) / intervalS : 0,
      avgRate: elapsedS > 0 ? this.segs / elapsedS : 0,
      connections: this.conns.size, connectionsCapped: this.connectionsCapped,
      retransRatio: out > 0 ? retr / out : 0,
      kinds: { ...this.kinds }, firstSeen: this.firstSeen, lastSeen: this.lastSeen,
      histograms: { retransmits: this.retransmits.toJSON(), srttUs: this.srttUs.toJSON() },
    };
    return row;
  }
}

export interface AggregatorOptions {
  /** Most destinations with a row of their own per table; the rest fold into "other". Default 4096. */
  maxDestinations?: number;
  /** Clock for rates, ms (tests pass their own). */
  now?: () => number;
}

/** Aggregates retransmit events per remote endpoint and per remote address. Usable on its own. */
export class RetransAggregator {
  private readonly endpoints: BoundedTable<RowStats>;
  private readonly addresses: BoundedTable<RowStats>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastSnapshotAt: number;
  private totals = { events: 0, segs: 0, failed: 0 };
  /** Distinct connections seen, counted exactly up to CONNECTIONS_TOTAL_CAP (memory stays bounded). */
  private readonly allConns = new Set<number>();
  /** daddr -> dport -> row, for rows of their own: the per-event lookup builds no key string. */
  private readonly endpointIndex = new Map<string, Map<number, RowStats>>();

  constructor(opts: AggregatorOptions = {}) {
    const max = opts.maxDestinations ?? 4096;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.lastSnapshotAt = this.now();
    this.endpoints = new BoundedTable(max, (key) => new RowStats(key, true));
    this.addresses = new BoundedTable(max, (key) => new RowStats(key, false));
  }

  add(e: RetransEvent): void {
    this.totals.events++;
    if (e.err !== 0) this.totals.failed++;
    if (countedByKernel(e)) this.totals.segs += e.segs;
    if (this.allConns.size < CONNECTIONS_TOTAL_CAP) this.allConns.add(e.connId);
    this.endpointRow(e).add(e);
    this.addresses.row(e.daddr).add(e);
  }

  private endpointRow(e: RetransEvent): RowStats {
    let ports = this.endpointIndex.get(e.daddr);
    let row = ports?.get(e.dport);
    if (row) return row;
    row = this.endpoints.row(formatEndpoint(e.daddr, e.dport));
    if (row.key !== OTHER_KEY) {
      if (!ports) this.endpointIndex.set(e.daddr, (ports = new Map()));
      ports.set(e.dport, row);
    }
    return row;
  }

  addAll(events: RetransEvent[]): void {
    for (const e of events) this.add(e);
  }

  /** Current statistics; rates cover the time since the previous snapshot. Rows sorted by segments. */
  snapshot(): RetransSummary {
    const t = this.now();
    const elapsedS = (t - this.startedAt) / 1000;
    const intervalS = (t - this.lastSnapshotAt) / 1000;
    const rows = (table: BoundedTable<RowStats>): RetransRow[] => {
      const all = table.allRows();
      const out = all.map((s) => s.row(elapsedS, intervalS)).sort((a, b) => b.segs - a.segs || b.events - a.events);
      for (const s of all) s.segsAtLastSnapshot = s.segs;
      return out;
    };
    const summary: RetransSummary = {
      type: 'summary', tool: 'retrans', time: t, elapsedS, intervalS,
      totals: { ...this.totals, connections: this.allConns.size, connectionsCapped: this.allConns.size >= CONNECTIONS_TOTAL_CAP },
      byEndpoint: rows(this.endpoints),
      byAddress: rows(this.addresses),
      folded: { endpoints: this.endpoints.foldedKeys, addresses: this.addresses.foldedKeys },
    };
    this.lastSnapshotAt = t;
    return summary;
  }
}
