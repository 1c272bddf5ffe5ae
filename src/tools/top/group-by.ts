/** How top and the exporter key destinations: remote address, endpoint, network (cidr/N) or service name. */
import { formatEndpoint, parseCidr } from '../../core/address.js';
import { usageError } from '../../core/errors.js';
import { readFileSync } from 'node:fs';

/** How rows are keyed: remote address, remote address:port, network (cidr/N for IPv4, /M for IPv6), or service name. */
export type GroupBy = { kind: 'addr' } | { kind: 'endpoint' } | { kind: 'cidr'; v4: number; v6: number } | { kind: 'service' };

/** Parses --by: "addr", "endpoint", "service", "cidr/24" or "cidr/24/64" (IPv4 prefix / IPv6 prefix, default 64). */
export function parseGroupBy(text: string): GroupBy {
  const t = text.trim().toLowerCase();
  if (t === 'addr' || t === 'address') return { kind: 'addr' };
  if (t === 'endpoint') return { kind: 'endpoint' };
  if (t === 'service') return { kind: 'service' };
  const m = /^cidr\/(\d{1,2})(?:\/(\d{1,3}))?$/.exec(t);
  if (m && Number(m[1]) <= 32 && (m[2] === undefined || Number(m[2]) <= 128)) return { kind: 'cidr', v4: Number(m[1]), v6: m[2] === undefined ? 64 : Number(m[2]) };
  throw usageError(`invalid --by '${text}': expected addr, endpoint, service, cidr/N (e.g. cidr/24) or cidr/N/M (IPv4/IPv6 prefixes)`);
}

let services: Map<number, string> | null = null;
/** TCP service names by port from /etc/services (empty when the file is missing). */
export function serviceName(port: number, text?: string): string | null {
  if (text !== undefined || !services) {
    const map = new Map<number, string>();
    let body = text ?? '';
    if (text === undefined) { try { body = readFileSync('/etc/services', 'utf8'); } catch { body = ''; } }
    for (const line of body.split('\n')) {
      const m = /^([\w.+-]+)\s+(\d+)\/tcp\b/.exec(line);
      if (m && !map.has(Number(m[2]))) map.set(Number(m[2]), m[1]);
    }
    if (text !== undefined) return map.get(port) ?? null;
    services = map;
  }
  return services.get(port) ?? null;
}

/** The row key of a remote address (and port, when known) under a grouping. */
export function destinationKey(by: GroupBy, addr: string, port: number | null): string {
  switch (by.kind) {
    case 'addr': return addr;
    case 'endpoint': return port === null ? addr : formatEndpoint(addr, port);
    case 'service': return port === null ? addr : (serviceName(port) ?? `${port}/tcp`);
    case 'cidr': return parseCidr(`${addr}/${addr.includes(':') ? by.v6 : by.v4}`).text;
  }
}

/** The row key of a connection end: an accepted connection's remote side is a client whose ephemeral port says
 * nothing (its local port names the service), a connect's remote side is the destination. */
export function connectionKey(by: GroupBy, direction: string, daddr: string, sport: number, dport: number): string {
  return destinationKey(by, daddr, direction === 'accept' ? (by.kind === 'service' ? sport : null) : dport);
}

export function byText(by: GroupBy): string {
  return by.kind === 'cidr' ? `cidr/${by.v4}/${by.v6}` : by.kind;
}
