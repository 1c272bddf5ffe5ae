/**
 * netbpf life, the aggregator: connections per destination (connect: the remote endpoint; accept: the remote
 * address and local port) and per remote address, with lifetime histograms and connections still open.
 */
import { formatEndpoint } from '../../core/address.js';
import { Log2Histogram, type HistogramData } from '../../core/histogram.js';
import { BoundedTable, OTHER_KEY } from '../../core/table.js';
import type { CloseReason, LifeDirection, LifeEvent } from './decode.js';
import type { LifeBulk, LifeKey } from './kernel.js';

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
  return e.direction === 'accept' ? lifeKeyOf('accept', e.daddr, e.sport) : lifeKeyOf(e.direction, e.daddr, e.dport);
}

/** The row key of a remote address and port (connect) or local port (accept). */
function lifeKeyOf(direction: LifeDirection, daddr: string, port: number): string {
  return direction === 'accept' ? `${daddr} -> :${port}` : formatEndpoint(daddr, port);
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

  /** What one in-kernel summary key gained (its key gives direction, handshake and close reason). */
  addBulk(k: LifeKey, b: LifeBulk): void {
    if (this.direction === null) this.direction = k.direction;
    else if (this.direction !== k.direction) this.direction = 'mixed';
    if (k.kind === 'established') { this.established += b.count; return; }
    this.connections += b.count;
    if (k.established) this.closedEstablished += b.count;
    else this.failed += b.count;
    this.txBytes += b.txBytes;
    this.rxBytes += b.rxBytes;
    this.totalRetrans += b.totalRetrans;
    this.reasons[k.reason] += b.count;
    this.durationMs.addBuckets(b.durationMs.log2, b.durationMs.sum, b.durationMs.min, b.durationMs.max);
    this.retrans.addBuckets(b.retrans.log2, b.retrans.sum, b.retrans.min, b.retrans.max);
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

  /** Ends (or handshakes) of one destination counted in the kernel (src/tools/life/kernel.ts); keys the kernel
   * folded into "other" go to the "other" rows. */
  addBulk(k: LifeKey, b: LifeBulk): void {
    if (b.count <= 0) return;
    if (k.other) {
      this.destinations.foldedRow().addBulk(k, b);
      this.addresses.foldedRow().addBulk(k, b);
      return;
    }
    this.destinations.row(lifeKeyOf(k.direction, k.daddr, k.port)).addBulk(k, b);
    this.addresses.row(k.daddr).addBulk(k, b);
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
