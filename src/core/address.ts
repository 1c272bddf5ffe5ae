/** Addresses as the BPF side stores them: 16 bytes, IPv4 in IPv4-mapped form (::ffff:a.b.c.d). */
import { isIPv4, isIPv6 } from 'node:net';
import { usageError } from './errors.js';
import { NETBPF_FAMILY } from './netbpf.gen.js';

/** Address families as records carry them (enum netbpf_family: the kernel's AF_INET, AF_INET6). */
export const { NETBPF_AF_INET: AF_INET, NETBPF_AF_INET6: AF_INET6 } = NETBPF_FAMILY;
export type Family = 4 | 6;

/** Formats 16 address bytes at `offset`; IPv4 when `family` is AF_INET (or the bytes are IPv4-mapped). */
export function formatAddress(bytes: Uint8Array, offset: number, family: number): string {
  if (family === AF_INET || isV4Mapped(bytes, offset)) {
    return `${bytes[offset + 12]}.${bytes[offset + 13]}.${bytes[offset + 14]}.${bytes[offset + 15]}`;
  }
  return formatIPv6(bytes, offset);
}

function isV4Mapped(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 10; i++) if (b[o + i] !== 0) return false;
  return b[o + 10] === 0xff && b[o + 11] === 0xff;
}

/** RFC 5952 text form: lower case, longest run of two or more zero groups shortened to "::". */
function formatIPv6(b: Uint8Array, o: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[o + i] << 8) | b[o + i + 1]);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Parses an IPv4 or IPv6 address into the 16-byte form; null when it is not an address. */
export function parseAddress(text: string): { bytes: Uint8Array; family: Family } | null {
  const bytes = new Uint8Array(16);
  if (isIPv4(text)) {
    bytes[10] = 0xff; bytes[11] = 0xff;
    text.split('.').forEach((part, i) => { bytes[12 + i] = Number(part); });
    return { bytes, family: 4 };
  }
  if (!isIPv6(text)) return null;
  let s = text;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4tail) {
    const p = v4tail[1].split('.').map(Number);
    s = s.slice(0, -v4tail[1].length) + `${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const [headText, tailText] = s.includes('::') ? s.split('::') : [s, undefined];
  const head = headText ? headText.split(':') : [];
  const tail = tailText ? tailText.split(':') : [];
  const groups = tailText === undefined ? head : [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  groups.forEach((g, i) => { const v = parseInt(g, 16); bytes[2 * i] = v >> 8; bytes[2 * i + 1] = v & 0xff; });
  const mapped = isV4Mapped(bytes, 0);
  return { bytes, family: mapped ? 4 : 6 };
}

export interface Cidr {
  /** The network in 16-byte form, host bits cleared. */
  bytes: Uint8Array;
  /** Prefix length over the 16-byte form (IPv4 /24 is 120). */
  prefixLen: number;
  family: Family;
  /** Canonical text, e.g. 10.1.0.0/16. */
  text: string;
}

/** Parses "addr" or "addr/len" (IPv4 or IPv6); throws a usage error naming the bad value. */
export function parseCidr(text: string): Cidr {
  const [addrText, lenText, extra] = text.trim().split('/');
  const addr = parseAddress(addrText ?? '');
  if (!addr || extra !== undefined) throw usageError(`invalid CIDR '${text}': expected an address or address/prefix, e.g. 10.0.0.0/8 or 2001:db8::/32`);
  const max = addr.family === 4 ? 32 : 128;
  let len = max;
  if (lenText !== undefined) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw usageError(`invalid CIDR '${text}': prefix length must be 0..${max}`);
    len = Number(lenText);
  }
  const prefixLen = addr.family === 4 ? 96 + len : len;
  const bytes = addr.bytes;
  for (let i = 0; i < 16; i++) {
    const bits = prefixLen - 8 * i;
    bytes[i] &= bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return { bytes, prefixLen, family: addr.family, text: `${formatAddress(bytes, 0, addr.family === 4 ? AF_INET : AF_INET6)}/${len}` };
}

/** Whether a 16-byte address lies inside a CIDR (the same test the BPF filter makes). */
export function cidrContains(cidr: Cidr, bytes: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < 16; i++) {
    const bits = cidr.prefixLen - 8 * i;
    if (bits <= 0) return true;
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[offset + i] ^ cidr.bytes[i]) & mask) !== 0) return false;
  }
  return true;
}

/** "addr:port", with IPv6 in brackets. */
export function formatEndpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Parses a TCP/UDP port number given on the command line. */
export function parsePort(text: string, what = 'port'): number {
  if (!/^\d{1,5}$/.test(text.trim()) || Number(text) < 1 || Number(text) > 65535) {
    throw usageError(`invalid ${what} '${text}': must be a number from 1 to 65535`);
  }
  return Number(text);
}
