/**
 * netbpf drops, the reasons: names of the running kernel's enum skb_drop_reason (from BTF, never a table: the
 * numbering differs between kernels), and which frees are socket-teardown purges rather than packets lost.
 */
import { HARMLESS_FREES, freeKind } from '../../core/diagnosis/frees.js';
import { kernelDropReasonEnum } from '../../core/kernel-drop-reasons.js';
import { NetbpfError, usageError } from '../../core/errors.js';
import { DROP_REASON_CONSTS } from './bpf.gen.js';

const { DROP_REASON_FILTER_BITS } = DROP_REASON_CONSTS;
/** drop_event.reason when the hook has no reason argument (tcp_drop, kernels < 5.17). */
export const DROP_REASON_UNAVAILABLE = DROP_REASON_CONSTS.DROP_REASON_UNAVAILABLE;

/** Reasons that mean "a socket was torn down with data still queued", not a packet lost on the way (from the one
 * list of harmless frees, src/core/diagnosis/frees.ts). */
export const PURGE_REASONS: ReadonlySet<string> = new Set(HARMLESS_FREES.filter((h) => h.kind === 'purge' && !h.functions).map((h) => h.reason));

/** Socket teardown functions that free queued data with the generic reason (NOT_SPECIFIED): purges too. */
export const PURGE_FUNCTIONS: ReadonlySet<string> = new Set(HARMLESS_FREES.filter((h) => h.kind === 'purge' && h.reason === 'NOT_SPECIFIED').flatMap((h) => h.functions ?? []));

/** "purge" when the reason or, for the generic reason, the freeing function says a socket was torn down. */
export function dropCategory(reason: string, location: string): DropCategory {
  return freeKind(reason, location) === 'purge' ? 'purge' : 'drop';
}

/** Names of the running kernel's enum skb_drop_reason (from BTF), without the SKB_DROP_REASON_ prefix. */
export class DropReasons {
  private readonly byCode = new Map<number, string>();
  private readonly byName = new Map<string, number>();
  /** Whether the kernel has drop reasons at all (enum skb_drop_reason in BTF, Linux >= 5.17). */
  readonly available: boolean;

  /** `entries` as addon.kernelBtfEnum returns them; null when the kernel has no such enum. */
  constructor(entries: Array<[string, number]> | null) {
    this.available = entries !== null;
    for (const [full, code] of entries ?? []) {
      const name = full.replace(/^SKB_DROP_REASON_/, '').replace(/^SKB_/, '');
      if (name === 'MAX') continue; // a bound, not a reason
      if (!this.byCode.has(code)) this.byCode.set(code, name);
      this.byName.set(name.toUpperCase(), code);
    }
  }

  /** The running kernel's reasons (cached). */
  static kernel(): DropReasons {
    if (!kernelReasons) kernelReasons = new DropReasons(kernelDropReasonEnum());
    return kernelReasons;
  }

  /** The reason's name; a number the kernel's enum does not name prints as that number, never a guess. */
  name(code: number): string {
    if (code === DROP_REASON_UNAVAILABLE) return 'UNAVAILABLE';
    return this.byCode.get(code) ?? String(code);
  }

  /** The code of a name (case-insensitive, SKB_DROP_REASON_ prefix optional), or undefined. */
  code(name: string): number | undefined {
    return this.byName.get(name.trim().toUpperCase().replace(/^SKB_DROP_REASON_/, ''));
  }

  /** Names of real drop reasons (not CONSUMED / NOT_DROPPED_YET), in kernel order. */
  names(): string[] {
    return [...this.byCode.values()].filter((n) => n !== 'CONSUMED' && n !== 'NOT_DROPPED_YET');
  }

  /** Resolves --reason names to codes; an unknown name is a usage error listing some valid ones. */
  resolve(names: string[]): number[] {
    if (names.length && !this.available) throw new NetbpfError('kernel', 'this kernel has no drop reasons (enum skb_drop_reason, Linux >= 5.17): --reason cannot be used');
    return names.map((n) => {
      const code = this.code(n);
      if (code === undefined) {
        const some = this.names().slice(0, 12).join(', ');
        throw usageError(`unknown drop reason '${n}'; this kernel's reasons include ${some}, ... (${this.names().length} in all)`);
      }
      if (code >= DROP_REASON_FILTER_BITS) throw usageError(`drop reason '${n}' (${code}) cannot be filtered in the kernel (values below ${DROP_REASON_FILTER_BITS} only)`);
      return code;
    });
  }
}
let kernelReasons: DropReasons | null = null;

/** "drop": lost on the way; "purge": queued data freed with its socket (close, queue purge). */
export type DropCategory = 'drop' | 'purge';
