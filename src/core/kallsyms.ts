/**
 * Kernel symbols from /proc/kallsyms, for naming drop locations and stack frames. Read once (about 100k
 * text symbols), sorted, then looked up by binary search. Kernel addresses (0xffff...) exceed 2^53, so they
 * are kept as exact Numbers relative to 0xffff000000000000 (see kernelAddressKey).
 */
import { readFileSync } from 'node:fs';

const KERNEL_BASE_HI = 0xffff0000;

/** An exact Number for a kernel address given as its two 32-bit halves; -1 for non-kernel addresses. */
export function kernelAddressKey(hi: number, lo: number): number {
  if (hi < KERNEL_BASE_HI) return -1;
  return (hi - KERNEL_BASE_HI) * 0x1_0000_0000 + lo;
}

/** The same key from a hex string (as /proc/kallsyms prints addresses). */
export function kernelAddressKeyFromHex(hex: string): number {
  const h = hex.padStart(16, '0');
  return kernelAddressKey(parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16));
}

export interface KernelSymbol { name: string; offset: number }

export class Kallsyms {
  private readonly addrs: Float64Array;
  private readonly names: string[];
  private readonly cache = new Map<number, string>();

  /** Parses kallsyms text; only text symbols (t/T/w/W) are kept. */
  constructor(text: string) {
    const entries: Array<[number, string]> = [];
    for (const line of text.split('\n')) {
      // "ffffffff81000080 T entry_SYSCALL_64" or "... t name\t[module]"
      const sp1 = line.indexOf(' ');
      if (sp1 !== 16) continue;
      const type = line.charCodeAt(17) | 0x20; // lower case
      if (type !== 0x74 /* t */ && type !== 0x77 /* w */) continue;
      const key = kernelAddressKeyFromHex(line.slice(0, 16));
      if (key <= 0) continue;
      const rest = line.slice(19);
      const tab = rest.indexOf('\t');
      entries.push([key, tab < 0 ? rest : `${rest.slice(0, tab)} ${rest.slice(tab + 1)}`]);
    }
    entries.sort((a, b) => a[0] - b[0]);
    this.addrs = Float64Array.from(entries, (e) => e[0]);
    this.names = entries.map((e) => e[1]);
  }

  private static shared: Kallsyms | null = null;

  /** The running kernel's symbols, read once. Addresses read as zero without CAP_SYSLOG (kptr_restrict). */
  static load(path = '/proc/kallsyms'): Kallsyms {
    if (!Kallsyms.shared) Kallsyms.shared = new Kallsyms(readFileSync(path, 'latin1'));
    return Kallsyms.shared;
  }

  get size(): number {
    return this.addrs.length;
  }

  /** The symbol containing `key` (largest start <= key), or null before the first symbol. */
  lookup(key: number): KernelSymbol | null {
    if (key <= 0) return null;
    let lo = 0, hi = this.addrs.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.addrs[mid] <= key) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found < 0 ? null : { name: this.names[found], offset: key - this.addrs[found] };
  }

  /** "function+0xoff" (cached), or the raw hex address when no symbol covers it; '' for 0. */
  symbolize(key: number): string {
    if (key <= 0) return '';
    let s = this.cache.get(key);
    if (s === undefined) {
      const sym = this.lookup(key);
      s = sym ? `${sym.name}+0x${sym.offset.toString(16)}` : `0x${(BigInt(key) + 0xffff_0000_0000_0000n).toString(16)}`;
      if (this.cache.size > 65536) this.cache.clear();
      this.cache.set(key, s);
    }
    return s;
  }
}
