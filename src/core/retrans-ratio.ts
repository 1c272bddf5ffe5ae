/**
 * Retransmitted / sent segments over a set of connections, from the kernel's own per-connection counters
 * (tcp_sock total_retrans and segs_out, carried by retrans and life records): the loss signal that matters,
 * kept one way for every view (retrans summaries, top, the exporter). The counters only grow over a connection's
 * life and records may arrive out of order, so each connection's largest values count. Bounded: past
 * maxConnections new connections are not added and `capped` says so.
 */
/** How long a closed connection is remembered, ms: far longer than records of one connection can arrive apart. */
const CLOSED_MEMORY_MS = 10000;

export class RetransRatio {
  private readonly conns = new Map<number, [retrans: number, sent: number]>();
  /** Counted in the kernel (bpf/owner.bpf.h keeps each connection's counters added once): connections and sums. */
  private bulk = { connections: 0, retrans: 0, sent: 0 };
  /** Connections closed in the last CLOSED_MEMORY_MS (close time, oldest first): a record of one that arrives after
   * its close (tools deliver their batches independently) must not count it again as a new connection. */
  private readonly closed = new Map<number, number>();
  /** New connections were turned away (the ratio then covers the first maxConnections only). */
  capped = false;

  constructor(readonly maxConnections = 4096) {}

  /**
   * A connection's counters as the kernel reported them (connId: the record's connection hash); returns how much
   * they grew since the connection's last known values (all of them when it is new; nothing when turned away).
   */
  update(connId: number, retrans: number, sent: number): { retrans: number; sent: number } {
    if (this.closed.size && this.closed.has(connId)) return { retrans: 0, sent: 0 };
    const known = this.conns.get(connId);
    if (known) {
      const grew = { retrans: Math.max(0, retrans - known[0]), sent: Math.max(0, sent - known[1]) };
      if (retrans > known[0]) known[0] = retrans;
      if (sent > known[1]) known[1] = sent;
      return grew;
    }
    if (this.conns.size < this.maxConnections) { this.conns.set(connId, [retrans, sent]); return { retrans, sent }; }
    this.capped = true;
    return { retrans: 0, sent: 0 };
  }

  /** A connection's final counters (at its close): how much they grew since its last known values (all of them
   * when it was never seen or was turned away); later records of it count nothing. For keepers that count growth. */
  close(connId: number, retrans: number, sent: number, now = Date.now()): { retrans: number; sent: number } {
    const known = this.conns.get(connId);
    this.conns.delete(connId);
    this.closed.delete(connId);
    this.closed.set(connId, now);
    for (const [id, at] of this.closed) {
      if (now - at < CLOSED_MEMORY_MS && this.closed.size <= this.maxConnections) break;
      this.closed.delete(id);
    }
    return known ? { retrans: Math.max(0, retrans - known[0]), sent: Math.max(0, sent - known[1]) } : { retrans, sent };
  }

  /** A connection seen without counters (e.g. an established connect): counted among the connections. */
  touch(connId: number): void {
    if (!this.conns.has(connId)) this.update(connId, 0, 0);
  }

  /** Connections and counter increments counted in the kernel, each connection's latest counters added once. */
  addBulk(connections: number, retrans: number, sent: number): void {
    this.bulk.connections += connections;
    this.bulk.retrans += retrans;
    this.bulk.sent += sent;
  }

  get connections(): number {
    return this.conns.size + this.bulk.connections;
  }

  /** Segments retransmitted and sent over the connections, and their ratio (0 when nothing was sent). */
  totals(): { retrans: number; sent: number; ratio: number } {
    let retrans = this.bulk.retrans, sent = this.bulk.sent;
    for (const [r, s] of this.conns.values()) { retrans += r; sent += s; }
    return { retrans, sent, ratio: sent > 0 ? retrans / sent : 0 };
  }
}
