import { describe, expect, it } from 'vitest';
import { cidrContains, formatAddress, formatEndpoint, parseAddress, parseCidr, parsePort, AF_INET, AF_INET6 } from '../../src/core/address.js';
import { NetbpfError } from '../../src/core/errors.js';

const bytes = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));

describe('addresses', () => {
  it('formats IPv4-mapped bytes as dotted quad', () => {
    expect(formatAddress(bytes('00000000000000000000ffff0ae70002'), 0, AF_INET)).toBe('10.231.0.2');
  });
  it('formats IPv6 per RFC 5952 (longest zero run shortened, lower case)', () => {
    expect(formatAddress(bytes('fd000231000000000000000000000002'), 0, AF_INET6)).toBe('fd00:231::2');
    expect(formatAddress(bytes('00000000000000000000000000000001'), 0, AF_INET6)).toBe('::1');
    expect(formatAddress(bytes('20010db8000000010000000000000001'), 0, AF_INET6)).toBe('2001:db8:0:1::1');
    expect(formatAddress(bytes('20010db8000000000001000000000001'), 0, AF_INET6)).toBe('2001:db8::1:0:0:1');
    expect(formatAddress(bytes('00000000000000000000000000000000'), 0, AF_INET6)).toBe('::');
  });
  it('round-trips parse and format for both families', () => {
    for (const a of ['10.0.0.1', '255.255.255.255', 'fd00:231::2', '::1', '2001:db8:0:1::1', 'fe80::1:2:3:4']) {
      const p = parseAddress(a)!;
      expect(formatAddress(p.bytes, 0, p.family === 4 ? AF_INET : AF_INET6)).toBe(a);
    }
    expect(parseAddress('::ffff:1.2.3.4')!.family).toBe(4);
    expect(parseAddress('not-an-ip')).toBeNull();
  });
  it('brackets IPv6 endpoints', () => {
    expect(formatEndpoint('fd00::1', 80)).toBe('[fd00::1]:80');
    expect(formatEndpoint('10.0.0.1', 80)).toBe('10.0.0.1:80');
  });
});

describe('CIDRs', () => {
  it('maps IPv4 prefixes onto the 16-byte form and clears host bits', () => {
    const c = parseCidr('10.231.7.9/16');
    expect(c.prefixLen).toBe(96 + 16);
    expect(c.text).toBe('10.231.0.0/16');
    expect(cidrContains(c, parseAddress('10.231.200.1')!.bytes)).toBe(true);
    expect(cidrContains(c, parseAddress('10.232.0.1')!.bytes)).toBe(false);
    expect(cidrContains(c, parseAddress('fd00::1')!.bytes)).toBe(false);
  });
  it('handles IPv6 prefixes not on a byte boundary', () => {
    const c = parseCidr('fd00:231::/31');
    expect(cidrContains(c, parseAddress('fd00:230::5')!.bytes)).toBe(true);
    expect(cidrContains(c, parseAddress('fd00:232::5')!.bytes)).toBe(false);
  });
  it('treats a bare address as a host route', () => {
    expect(parseCidr('10.0.0.1').prefixLen).toBe(128);
    expect(parseCidr('::1').prefixLen).toBe(128);
  });
  it.each(['10.0.0.0/33', 'fd00::/129', '10.0.0/8', 'banana', '10.0.0.0/8/1', '10.0.0.0/-1', ''])('rejects %j with a usage error', (bad) => {
    expect(() => parseCidr(bad)).toThrow(NetbpfError);
    try { parseCidr(bad); } catch (e) { expect((e as NetbpfError).kind).toBe('usage'); expect((e as Error).message).toContain('invalid CIDR'); }
  });
  it('validates ports', () => {
    expect(parsePort('443')).toBe(443);
    for (const bad of ['0', '65536', '70000', '-1', 'http', '1.5']) expect(() => parsePort(bad)).toThrow(/must be a number from 1 to 65535/);
  });
});
