/** Kernel-side filters every tool shares: address family, local/remote port, remote CIDRs. */
import { parseCidr, type Cidr, type Family, AF_INET, AF_INET6 } from './address.js';
import { usageError } from './errors.js';
import { NETBPF_CIDR_LAYOUT, NETBPF_LIMITS } from './netbpf.gen.js';
import { constU16, constU32 } from './rodata.js';

/** Remote CIDRs the kernel can filter (NETBPF_MAX_CIDRS, bpf/netbpf.h). */
export const MAX_CIDRS = NETBPF_LIMITS.NETBPF_MAX_CIDRS;
const C = NETBPF_CIDR_LAYOUT;

export interface FilterOptions {
  /** Only IPv4 (4) or IPv6 (6). */
  family?: Family;
  /** Only this local port. */
  localPort?: number;
  /** Only this remote port. */
  remotePort?: number;
  /** Only remote addresses inside these networks (e.g. "10.0.0.0/8", "2001:db8::/32"), at most 8. */
  remoteCidrs?: string[];
}

export function parseCidrs(list: string[] | undefined): Cidr[] {
  const cidrs = (list ?? []).map(parseCidr);
  if (cidrs.length > MAX_CIDRS) throw usageError(`at most ${MAX_CIDRS} remote CIDRs can be filtered in the kernel, got ${cidrs.length}`);
  return cidrs;
}

function checkPort(p: number | undefined, what: string): void {
  if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > 65535)) throw usageError(`invalid ${what} ${p}: must be 1..65535`);
}

/** The read-only globals of bpf/netbpf.bpf.h for these filters. */
export function filterConstants(f: FilterOptions): Record<string, Buffer> {
  checkPort(f.localPort, 'local port');
  checkPort(f.remotePort, 'remote port');
  if (f.family !== undefined && f.family !== 4 && f.family !== 6) throw usageError(`invalid address family ${f.family}: use 4 or 6`);
  const cidrs = parseCidrs(f.remoteCidrs);
  if (f.family && cidrs.some((c) => c.family !== f.family)) {
    throw usageError(`remote CIDR ${cidrs.find((c) => c.family !== f.family)!.text} does not match the IPv${f.family} filter`);
  }
  const table = Buffer.alloc(MAX_CIDRS * C.size);
  cidrs.forEach((c, i) => {
    table.set(c.bytes, i * C.size + C.fields.addr[0]);
    table.writeUInt32LE(c.prefixLen, i * C.size + C.fields.prefix_len[0]);
  });
  return {
    filter_family: constU16(f.family === 4 ? AF_INET : f.family === 6 ? AF_INET6 : 0),
    filter_lport: constU16(f.localPort ?? 0),
    filter_rport: constU16(f.remotePort ?? 0),
    filter_cidr_count: constU32(cidrs.length),
    filter_cidrs: table,
  };
}
