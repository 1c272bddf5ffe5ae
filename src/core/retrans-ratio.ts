/**
 * Retransmitted / sent segments over a set of connections, from the kernel's own per-connection counters
 * (tcp_sock total_retrans and segs_out, carried by retrans and life records): the loss signal that matters,
 * kept one way for every view (retrans summaries, top, the exporter). The counters only grow over a connection's
 * life and records may arrive out of order, so each connection's largest values count. Bounded: past
 * maxConnections new connections are not added and `capped` says so.
 */
export class RetransRatio {
  private readonly conns = new Map<number, [retrans: number, sent: number]>();
  /** Counted in the kernel (bpf/owner.bpf.h keeps each connection's counters added once): connections and sums. */
  private bulk = { connections: 0, retrans: 0, sent: 0 };
  /** New connections were turned away (the ratio then covers the first maxConnections only). */
  capped = false;

  constructor(readonly maxConnections = 4096) {}

  /** A connection's counters as the kernel reported them (connId: the record's connection hash). */
  update(connId: number, retrans: number, sent: number): void {
    const known = this.conns.get(connId);
    if (known) {
      if (retrans > known[0]) known[0] = retrans;
      if (sent > known[1]) known[1] = sent;
    } else if (this.conns.size < this.maxConnections) this.conns.set(connId, [retrans, sent]);
    else this.capped = true;
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
