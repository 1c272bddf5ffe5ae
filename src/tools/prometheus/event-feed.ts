/**
 * Feeds the exporter's series from a top session's events: connect outcomes and latency, retransmitted and sent
 * segments, drops placed by the rule top uses (core/placement.ts), and connection ends (bytes, lifetime, RTT).
 * The exporter's own scrape connections are left out (scrape-traffic.ts); the rest also goes to the diagnosis
 * window (diagnoses.ts).
 */
import { DropPlacement } from '../../core/placement.js';
import { RetransRatio } from '../../core/retrans-ratio.js';
import type { ConnectEvent } from '../connect/index.js';
import { dropSides, type DropEvent } from '../drops/index.js';
import type { LifeEvent } from '../life/index.js';
import { countedByKernel, type RetransEvent } from '../retrans/index.js';
import { OTHER_KEY } from '../../core/table.js';
import { connectionKey, destinationKey, type GroupBy, type TopBulk, type TopToolName } from '../top/index.js';
import { UNKNOWN_DESTINATION, type Direction, type NetbpfMetrics } from './metrics.js';
import type { ScrapeTraffic } from './scrape-traffic.js';
import type { DiagnosisWindow } from './diagnoses.js';
import type { ConntrackEvent } from '../conntrack/index.js';

/** Most open connections whose sent-segment counts are followed between records (the rest count at close). */
const MAX_FOLLOWED_CONNECTIONS = 65536;

/**
 * Segments a connection sent for the first time: the kernel's segs_out counts retransmissions too, OutSegs does
 * not (__tcp_transmit_skb), so retransmitted / sent here is the kernel's RetransSegs / OutSegs per destination.
 */
const firstSent = (e: { segsOut: number; totalRetrans: number }) => Math.max(0, e.segsOut - e.totalRetrans);

export interface EventFeedOptions {
  by: GroupBy;
  /** Container id of a cgroup id (null: not in a container). */
  containerOf?: (cgroupId: number) => string | null;
  /** How long a drop waits for the connect that tells which side is the destination, ms (core/placement.ts). */
  dropHoldMs?: number;
}

export class EventFeed {
  /** The exporter's own scrape connections, once it listens. */
  scrapes: ScrapeTraffic | null = null;
  /** Where the events (scrapes left out) also go to be diagnosed, when the exporter diagnoses. */
  window: DiagnosisWindow | null = null;
  private readonly by: GroupBy;
  private readonly containerOf?: (cgroupId: number) => string | null;
  /** Which destination each drop counts for; tagged "reason\0direction". */
  private readonly placement: DropPlacement<string>;
  /** Each open connection's segments sent as last reported, so the sent counter grows by what is new. */
  private readonly sentSoFar = new RetransRatio(MAX_FOLLOWED_CONNECTIONS);

  constructor(private readonly m: NetbpfMetrics, opts: EventFeedOptions) {
    this.by = opts.by;
    this.containerOf = opts.containerOf;
    this.placement = new DropPlacement({ holdMs: opts.dropHoldMs });
  }

  /** One batch of a tool's events. */
  add(tool: TopToolName, events: unknown[]): void {
    if (tool === 'connect') for (const e of events as ConnectEvent[]) this.connect(e);
    else if (tool === 'retrans') for (const e of events as RetransEvent[]) this.retrans(e);
    else if (tool === 'drops') for (const e of events as DropEvent[]) this.drop(e);
    else if (tool === 'life') for (const e of events as LifeEvent[]) this.life(e);
    else if (tool === 'conntrack' && this.window) for (const e of events as ConntrackEvent[]) this.window.addConntrack(e);
  }

  /**
   * What the kernel counted for one key since the previous read (a session counting in the kernel): the same series
   * as the events, by the count and the log2 buckets; scrapes left out by their namespace and ports, as events are.
   */
  addBulk(b: TopBulk): void {
    if (b.tool === 'drops') {
      const { event: e, bulk } = b;
      if (e.category === 'purge') { this.m.purges(bulk.count); this.window?.addBulk(b); return; }
      const sides = dropSides(e);
      if (this.isScrape(e.netns, sides.local?.port ?? null, sides.remote?.addr ?? null, sides.remote?.port ?? null)) return;
      this.window?.addBulk(b);
      if (b.folded) { this.m.drops(OTHER_KEY, e.reason, e.direction, bulk.count, bulk.bytes); return; }
      if (sides.remote === null) { this.m.drops(UNKNOWN_DESTINATION, e.reason, e.direction, bulk.count, bulk.bytes); return; }
      const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
      const placed = this.placement.add(destinationKey(this.by, sides.remote.addr, sides.remote.port), local, `${e.reason}\u0000${e.direction}`, bulk.firstSeen, bulk.count, sides.server, bulk.bytes);
      if (placed) this.countDrops(placed.destination, placed.tag, placed.count, placed.bytes);
      return;
    }
    if (b.tool === 'connect') {
      const { key: k, bulk } = b;
      if (this.isScrape(k.netns, null, k.daddr, k.dport)) return;
      this.window?.addBulk(b);
      const key = k.other ? OTHER_KEY : destinationKey(this.by, k.daddr, k.dport);
      if (!k.other) this.placement.connectedTo(key);
      const c = this.container(k.cgroupId);
      if (k.type === 'established') this.m.connect(key, 'ok', c, bulk.latencyUs, bulk.count);
      else this.m.connect(key, k.failure ?? 'other', c, undefined, bulk.count);
      return;
    }
    if (b.tool === 'retrans') {
      const { key: k, bulk } = b;
      if (this.isScrape(k.netns, null, k.daddr, k.dport)) return;
      this.window?.addBulk(b);
      const key = k.other ? OTHER_KEY : destinationKey(this.by, k.daddr, k.dport);
      const c = this.container(k.cgroupId);
      // As RetransSegs: a retransmit the kernel abandoned before sending is not counted there either.
      if (k.counted) this.m.retransmitted(key, k.kind, bulk.segs, c);
      // Segments sent for the first time (OutSegs): each connection's segs_out less its retransmits, added once.
      const sent = bulk.ratioSent - bulk.ratioRetrans;
      if (sent > 0) this.m.sent(key, sent, c);
      return;
    }
    const { key: k, bulk } = b;
    if (this.isScrape(k.netns, k.direction === 'accept' ? k.port : null, k.daddr, k.direction === 'accept' ? null : k.port)) return;
    this.window?.addBulk(b);
    if (k.kind !== 'closed') return;
    const key = k.other ? OTHER_KEY : connectionKey(this.by, k.direction, k.daddr, k.port, k.port);
    const c = this.container(k.cgroupId);
    // A failed connect's SYNs were sent too; the connect itself is counted by connect, not as a connection.
    const sent = bulk.ratioSent - bulk.ratioRetrans;
    if (sent > 0) this.m.sent(key, sent, c);
    if (!k.established) return;
    this.m.bytes(key, bulk.txBytes, bulk.rxBytes, c);
    let rtt = 0;
    for (let i = 0; i < bulk.srttUs.log2.length; i++) rtt += bulk.srttUs.log2[i];
    this.m.closed(key, k.reason, c, bulk.durationMs, rtt > 0 ? bulk.srttUs : null, bulk.count);
  }

  private container(cgroupId: number): string | null {
    return this.containerOf && cgroupId ? this.containerOf(cgroupId) : null;
  }

  private isScrape(netns: number, localPort: number | null, remoteAddr: string | null, remotePort: number | null): boolean {
    return this.scrapes !== null && this.scrapes.is(netns, localPort, remoteAddr, remotePort);
  }

  private connect(e: ConnectEvent): void {
    if (this.isScrape(e.netns, e.sport, e.daddr, e.dport)) return;
    this.window?.addConnect(e);
    const key = destinationKey(this.by, e.daddr, e.dport);
    this.placement.connectedTo(key);
    if (e.type === 'established') this.m.connect(key, 'ok', this.container(e.cgroupId), e.latencyUs);
    else this.m.connect(key, e.failure, this.container(e.cgroupId));
  }

  private retrans(e: RetransEvent): void {
    if (this.isScrape(e.netns, e.sport, e.daddr, e.dport)) return;
    this.window?.addRetrans(e);
    const key = destinationKey(this.by, e.daddr, e.dport);
    const c = this.container(e.cgroupId);
    // As RetransSegs: a retransmit the kernel abandoned before sending is not counted there either.
    if (countedByKernel(e)) this.m.retransmitted(key, e.kind, e.segs, c);
    const grew = this.sentSoFar.update(e.connId, e.totalRetrans, firstSent(e));
    if (grew.sent > 0) this.m.sent(key, grew.sent, c);
  }

  private life(e: LifeEvent): void {
    if (this.isScrape(e.netns, e.sport, e.daddr, e.dport)) return;
    this.window?.addLife(e);
    const key = connectionKey(this.by, e.direction, e.daddr, e.sport, e.dport);
    const c = this.container(e.cgroupId);
    if (e.type === 'established') {
      const grew = this.sentSoFar.update(e.connId, e.totalRetrans, firstSent(e));
      if (grew.sent > 0) this.m.sent(key, grew.sent, c);
      return;
    }
    // A failed connect's SYNs were sent too; the connect itself is counted by connect, not as a connection.
    const grew = this.sentSoFar.close(e.connId, e.totalRetrans, firstSent(e));
    if (grew.sent > 0) this.m.sent(key, grew.sent, c);
    if (!e.established) return;
    this.m.bytes(key, e.txBytes, e.rxBytes, c);
    this.m.closed(key, e.reason, c, e.durationMs, e.srttUs > 0 ? e.srttUs : null);
  }

  /** A drop counts for the destination core/placement.ts's rule gives it (shared with top). */
  private drop(e: DropEvent): void {
    if (e.category === 'purge') { this.m.purges(1); this.window?.addDrop(e); return; }
    const sides = dropSides(e);
    if (this.isScrape(e.netns, sides.local?.port ?? null, sides.remote?.addr ?? null, sides.remote?.port ?? null)) return;
    this.window?.addDrop(e);
    if (sides.remote === null) { this.m.drops(UNKNOWN_DESTINATION, e.reason, e.direction, 1, e.len); return; }
    const local = sides.local === null ? null : destinationKey(this.by, sides.local.addr, sides.local.port);
    const placed = this.placement.add(destinationKey(this.by, sides.remote.addr, sides.remote.port), local, `${e.reason}\u0000${e.direction}`, e.time, 1, sides.server, e.len);
    if (placed) this.countDrops(placed.destination, placed.tag, placed.count, placed.bytes);
  }

  private countDrops(destination: string, tag: string, count: number, bytes: number): void {
    const [reason, direction] = tag.split('\u0000');
    this.m.drops(destination, reason, direction as Direction, count, bytes);
  }

  /** Destinations connects were seen to (for the diagnosis windows' placement). */
  knownDestinations(): Iterable<string> {
    return this.placement.knownDestinations();
  }

  /** Counts the drops whose destination is known by now (all of them with force). */
  flushDrops(force = false): void {
    for (const p of this.placement.flush(Date.now(), force)) this.countDrops(p.destination, p.tag, p.count, p.bytes);
  }
}
