/**
 * One rule for which destination a dropped packet counts against, shared by every view that places drops (top,
 * the Prometheus exporter), so two views never disagree about the same drop.
 *
 * The rule: a drop counts for the server side of its connection. When the packet tells (a SYN goes to the
 * server, a SYN-ACK comes from it), that side, at once. Otherwise its remote side, except when its local side is
 * a destination this host connects to and its remote side is not (traffic between namespaces of one host: data
 * a client sends to a local server is "received" by the server's namespace, whose remote side is the client).
 * Which sides are connect destinations is known once a connect to them was seen, which can come after the drop,
 * so such a drop waits (bounded in time and number) until its local side is known to be a destination, or until
 * `holdMs` after the drop, and is then placed on its remote side.
 */

/** How long a drop may wait for the connect that tells which side is the destination, ms. */
export const DROP_HOLD_MS = 2000;

/** A drop, or several drops with the same sides and reason, placed against a destination. */
export interface PlacedDrops<T> {
  destination: string;
  /** What the caller attached to the drop (e.g. its reason), passed through. */
  tag: T;
  count: number;
  /** Their bytes (0 when the caller does not give them). */
  bytes: number;
  /** Time of the first of them (the caller's clock, ms). */
  time: number;
}

interface Pending<T> { remote: string; local: string | null; tag: T; time: number; count: number; bytes: number }

export class DropPlacement<T> {
  private readonly destinations = new Set<string>();
  private readonly pending = new Map<string, Pending<T>>();

  constructor(private readonly opts: { holdMs?: number; maxDestinations?: number; maxPending?: number } = {}) {}

  /** A connect to this destination key was seen. */
  connectedTo(destination: string): void {
    if (this.destinations.size < (this.opts.maxDestinations ?? 65536)) this.destinations.add(destination);
  }

  /** Whether a connect to this destination key was seen (e.g. to place a reset this host sent as a server). */
  isDestination(destination: string): boolean {
    return this.destinations.has(destination);
  }

  /** Every destination a connect was seen to (e.g. to start another placement with what this one knows). */
  knownDestinations(): IterableIterator<string> {
    return this.destinations.values();
  }

  /** The destination of a drop now, or null while it must wait. */
  private decide(remote: string, local: string | null, expired: boolean): string | null {
    if (local !== null && this.destinations.has(local) && !this.destinations.has(remote)) return local;
    if (this.destinations.has(remote) || expired) return remote;
    return null;
  }

  /**
   * Takes `count` drops between `remote` and `local` (destination keys, local null when unknown) at `time`; `server`
   * when the packet itself says which side is the server; `bytes` their length (carried through). Returns them
   * placed at once, or null when they wait for flush(). Past maxPending waiting groups, drops are placed now.
   */
  add(remote: string, local: string | null, tag: T, time: number, count = 1, server: 'remote' | 'local' | null = null, bytes = 0): PlacedDrops<T> | null {
    if (server === 'local' && local !== null) return { destination: local, tag, count, bytes, time };
    if (server === 'remote') return { destination: remote, tag, count, bytes, time };
    const full = this.pending.size >= (this.opts.maxPending ?? 65536);
    const destination = this.decide(remote, local, full);
    if (destination !== null) return { destination, tag, count, bytes, time };
    const k = `${remote}\u0000${local ?? ''}\u0000${String(tag)}`;
    const p = this.pending.get(k);
    if (p) {
      p.count += count;
      p.bytes += bytes;
    } else this.pending.set(k, { remote, local, tag, time, count, bytes });
    return null;
  }

  /** Places every waiting group that can be placed at `now` (all of them with `force`). */
  flush(now: number, force = false): PlacedDrops<T>[] {
    const out: PlacedDrops<T>[] = [];
    const hold = this.opts.holdMs ?? DROP_HOLD_MS;
    for (const [k, p] of this.pending) {
      const destination = this.decide(p.remote, p.local, force || now - p.time >= hold);
      if (destination === null) continue;
      out.push({ destination, tag: p.tag, count: p.count, bytes: p.bytes, time: p.time });
      this.pending.delete(k);
    }
    return out;
  }
}
