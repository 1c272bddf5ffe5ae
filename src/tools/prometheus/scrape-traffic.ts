/**
 * The exporter's own scrape connections, told apart from the traffic it reports: Prometheus connects to the
 * exporter every scrape interval, and without this its connections would take destination slots and show up as
 * connects, lifetimes and bytes of their own. A connection end is a scrape when
 * - it is in the exporter's network namespace and its local port is the listening port (the accepted side,
 *   whoever scrapes from wherever), or
 * - it goes to the listening port on an address the exporter listens on: loopback in the exporter's own namespace
 *   (a Prometheus next to it), or one of its namespace's interface addresses from any namespace of this host (a
 *   Prometheus in another pod of the node scraping the pod IP).
 */
import { statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

/** The network namespace inode of this process (what events carry as `netns`), 0 when unknown. */
export function ownNetns(): number {
  try { return statSync('/proc/self/ns/net').ino; } catch { return 0; }
}

/** Addresses of this namespace's interfaces, IPv4-mapped IPv6 folded to IPv4 (as events carry them). */
function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address.replace(/^::ffff:/, '').replace(/%.*$/, ''));
  return out;
}

const isLoopback = (addr: string) => addr.startsWith('127.') || addr === '::1';

export class ScrapeTraffic {
  private addresses: Set<string>;
  private addressesAt: number;

  /** `host` is the listening address ("0.0.0.0" or "::" for every address of the namespace). */
  constructor(readonly netns: number, readonly host: string, readonly port: number, private readonly now: () => number = Date.now) {
    this.addresses = localAddresses();
    this.addressesAt = now();
  }

  /** Whether a connection end seen in `netns` with this local port and remote address:port is a scrape. */
  is(netns: number, localPort: number | null, remoteAddr: string | null, remotePort: number | null): boolean {
    if (this.netns === 0) return false;
    if (netns === this.netns && localPort === this.port) return true;
    if (remotePort !== this.port || remoteAddr === null) return false;
    if (isLoopback(remoteAddr)) return netns === this.netns;
    return this.isListeningAddress(remoteAddr);
  }

  private isListeningAddress(addr: string): boolean {
    if (this.host !== '0.0.0.0' && this.host !== '::') return addr === this.host;
    // Interfaces come and go (a pod's address is set after start): look again at most every 10 s.
    if (!this.addresses.has(addr) && this.now() - this.addressesAt > 10000) {
      this.addresses = localAddresses();
      this.addressesAt = this.now();
    }
    return this.addresses.has(addr);
  }
}
