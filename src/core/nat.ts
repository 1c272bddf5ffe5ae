/**
 * NAT resolution: which real backend a connection to a virtual address (a Service VIP, a DNAT rule) reaches.
 * conntrack knows: an entry's original tuple is what the client sent (destination = VIP) and its reply
 * tuple's source is who really answers. Fed by conntrack entries (netbpf conntrack events, a ctnetlink table
 * dump: startNatFeed() in src/tools/conntrack.ts); any tool that reports sockets (retrans, drops, life) asks it
 * per 5-tuple.
 */

/** One direction of a conntrack entry. */
export interface CtTuple { src: string; dst: string; sport: number; dport: number }

/** What NAT resolution needs from a conntrack entry. */
export interface NatEntry { protocol: number; orig: CtTuple; reply: CtTuple }

/** The destination a socket's packets really reach. */
export interface NatTarget { daddr: string; dport: number }

const key5 = (protocol: number, saddr: string, sport: number, daddr: string, dport: number) => `${protocol}|${saddr}|${sport}|${daddr}|${dport}`;
const key2 = (protocol: number, daddr: string, dport: number) => `${protocol}|${daddr}|${dport}`;

/** Is the entry's destination translated (reply source differs from original destination)? */
export function isDnat(e: NatEntry): boolean {
  return e.reply.src !== e.orig.dst || e.reply.sport !== e.orig.dport;
}

/** Bounded maps from original 5-tuple (exact) and original destination (latest backend seen) to the backend. */
export class NatResolver {
  private readonly exact = new Map<string, NatTarget>();
  private readonly byVip = new Map<string, NatTarget>();
  constructor(private readonly maxEntries = 262144) {}

  /** Learns from a conntrack entry (new, snapshot or destroy); entries without DNAT are ignored. */
  add(e: NatEntry): void {
    if (!isDnat(e)) return;
    const target = { daddr: e.reply.src, dport: e.reply.sport };
    if (this.exact.size >= this.maxEntries) this.exact.delete(this.exact.keys().next().value as string);
    this.exact.set(key5(e.protocol, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport), target);
    if (this.byVip.size >= this.maxEntries) this.byVip.delete(this.byVip.keys().next().value as string);
    this.byVip.set(key2(e.protocol, e.orig.dst, e.orig.dport), target);
  }

  /** The backend of this connection (exact), or the latest backend seen for its destination, or null. */
  resolve(protocol: number, saddr: string, sport: number, daddr: string, dport: number): NatTarget | null {
    return this.exact.get(key5(protocol, saddr, sport, daddr, dport)) ?? this.byVip.get(key2(protocol, daddr, dport)) ?? null;
  }

  get size(): number {
    return this.exact.size;
  }
}
