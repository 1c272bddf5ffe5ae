/**
 * netbpf drops, the trace: bpf/drops.bpf.o with its hooks (kfree_skb, or tcp_drop where the kernel has no drop
 * reasons), filters (protocol, reasons), and the kernel stacks of --stack.
 */
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { fentry, kprobe, tracepoint, type HookAlternative, type HookPreference } from '../../core/hooks.js';
import { Kallsyms, kernelAddressKey } from '../../core/kallsyms.js';
import type { NativeBpfObject } from '../../core/addon.js';
import { ClockMapper } from '../../core/record.js';
import { randomBytes } from 'node:crypto';
import { constU32 } from '../../core/rodata.js';
import { Trace, type StartInfo, type TraceOptions, type TraceSpec } from '../../core/trace.js';
import { DROPS_RODATA, DROP_EVENT_LAYOUT, DROP_REASON_CONSTS } from './bpf.gen.js';
import { decodeDrop, type DropDecodeContext, type DropEvent } from './decode.js';
import { DropReasons } from './reasons.js';

const { DROP_REASON_FILTER_BITS } = DROP_REASON_CONSTS;

export interface DropsOptions extends FilterOptions, TraceOptions {
  /** Every protocol, not only TCP. */
  all?: boolean;
  /** Only these reasons (names from this kernel's BTF, e.g. "NETFILTER_DROP"). */
  reasons?: string[];
  /** Capture and symbolize the kernel stack of each drop. */
  stack?: boolean;
  /** Force a hook: "tp_btf", "raw_tp", "tracepoint" (classic: needs tracefs), or "tcp_drop" (fentry, else kprobe; no reasons). */
  hook?: Extract<HookPreference, 'auto' | 'tp_btf' | 'raw_tp' | 'tracepoint'> | 'tcp_drop';
}

const STACK_ENTRIES = 16384;

/** The constants of bpf/drops.bpf.c for these options (reasons resolved via the kernel's BTF); `kernel`: how a
 * summary-only run aggregates in the kernel (map sizes, hash seed). */
export function dropsConstants(opts: DropsOptions, reasons: DropReasons, kernel?: Pick<KernelAggregation, 'topBuckets' | 'frontBuckets' | 'topSeed' | 'session'>): Record<string, Buffer> {
  const codes = reasons.resolve(opts.reasons ?? []);
  const bitmap = Buffer.alloc(DROP_REASON_FILTER_BITS / 8);
  for (const c of codes) bitmap[c >> 3] |= 1 << (c & 7); // little-endian u64 words == byte-wise bits
  return {
    ...filterConstants(opts),
    filter_l4_proto: Buffer.from([opts.all ? 0 : 6]),
    capture_stack: Buffer.from([opts.stack ? 1 : 0]),
    filter_reason_count: constU32(codes.length),
    filter_reasons: bitmap,
    aggregate_in_kernel: Buffer.from([kernel ? 1 : 0]),
    top_bucket_mask: constU32((kernel?.topBuckets ?? 1) - 1),
    dest_front_mask: constU32((kernel?.frontBuckets ?? 1) - 1),
    // A fresh seed per run: which sources share a bucket cannot be chosen from outside.
    top_hash_seed: kernel?.topSeed ?? randomBytes(8),
    agg_session: Buffer.from([kernel?.session ? 1 : 0]),
    agg_key_ports: Buffer.from([kernel?.session?.ports === false ? 0 : 1]),
  };
}

/** How a summary-only run aggregates in the kernel (see dropsSummary). */
export interface KernelAggregation {
  /** Keys of the `drop_dest` map before destinations fold into "other" (past those the front holds). */
  keys: number;
  /** Buckets of the destination front (`drop_dest_front`, DROP_DEST_WAYS destinations each, per CPU): a power of two. */
  frontBuckets: number;
  /** Buckets of each top-talker map (`drop_top_endpoint`, `drop_top_address`): a power of two. */
  topBuckets: number;
  /** Their hash seed (8 bytes, random per run; the reader checks slots against it). */
  topSeed: Buffer;
  /** A session's view instead of the tool's (top, serve): drops by their two sides, function and namespace, in
   * `drop_session` (`keys` entries; the views' maps then take one entry each); `ports: false` leaves ports out. */
  session?: { ports: boolean };
  /** The last read of the maps before the object closes. */
  beforeClose(obj: NativeBpfObject): void;
  /** Drops counted in the kernel so far (as of the last read). */
  events(): number;
}

/** Keys of the kernel's destination "other" map: one per reason (x freeing function for NOT_SPECIFIED). */
const AGG_OTHER_KEYS = 256;

export function dropsSpec(opts: DropsOptions = {}, stackLookup?: (id: number) => string[], kernel?: KernelAggregation): TraceSpec<DropEvent> {
  const reasons = DropReasons.kernel();
  const ctx: DropDecodeContext = { clock: new ClockMapper(), reasons, stack: stackLookup };
  const kfree: HookAlternative[] = tracepoint('skb', 'kfree_skb', 'handle_kfree_skb');
  const tcpDrop: HookAlternative[] = [fentry('tcp_drop', 'handle_tcp_drop_fentry'), kprobe('tcp_drop', 'handle_tcp_drop_kprobe')];
  const hook = opts.hook ?? 'auto';
  // Without drop reasons kfree_skb cannot tell drops from normal frees; tcp_drop() can (TCP only).
  const auto = reasons.available ? [...kfree, ...tcpDrop] : [...tcpDrop, ...kfree];
  const alternatives = hook === 'auto' ? auto : hook === 'tcp_drop' ? tcpDrop : kfree.filter((a) => a.kind === hook);
  return {
    tool: 'drops',
    recordSize: DROP_EVENT_LAYOUT.size,
    constants: dropsConstants(opts, reasons, kernel),
    rodata: DROPS_RODATA,
    mapSizes: {
      stacks: opts.stack ? STACK_ENTRIES : 1,
      drop_dest: kernel && !kernel.session ? kernel.keys : 1,
      drop_dest_front: kernel?.frontBuckets ?? 1,
      drop_dest_other: kernel && !kernel.session ? AGG_OTHER_KEYS : 1,
      drop_session: kernel?.session ? kernel.keys : 1,
      drop_session_other: kernel?.session ? AGG_OTHER_KEYS : 1,
      drop_top_endpoint: kernel?.topBuckets ?? 1,
      drop_top_address: kernel?.topBuckets ?? 1,
    },
    // Not aggregating, the destination map holds one entry: preallocate it. Kernels before 6.1 want every hash map a
    // kprobe or (raw) tracepoint program references preallocated, and 5.10 warns (taints the kernel) otherwise.
    mapFlags: kernel ? undefined : { drop_dest: 0 },
    hooks: [{ feature: 'packet drops', required: true, alternatives }],
    disabledPrograms: auto.filter((a) => !alternatives.includes(a)).flatMap((a) => a.programs),
    decode: (view, o) => decodeDrop(view, o, ctx),
    beforeClose: kernel ? (obj) => kernel.beforeClose(obj) : undefined,
    kernelEvents: kernel ? () => kernel.events() : undefined,
  };
}

/** One line for the start report when this run cannot name drop reasons; null when it can. */
export function dropReasonsNote(info: StartInfo): string | null {
  const program = info.hooks[0]?.program;
  if (program === 'handle_tcp_drop_fentry' || program === 'handle_tcp_drop_kprobe') {
    return 'drop reasons unavailable: tcp_drop() has no reason argument (kernel < 5.17); only TCP drops are seen, reason prints as UNAVAILABLE';
  }
  if (!DropReasons.kernel().available) {
    return 'drop reasons unavailable: kfree_skb has no reason argument on this kernel (< 5.17); reason prints as UNAVAILABLE, with the freeing function as the only clue (purges at socket close are told apart by it)';
  }
  return null;
}

/** Reads stack `id` from the trace's `stacks` map and symbolizes it (cached: ids are stable). */
function stackReader(trace: () => Trace<DropEvent>): (id: number) => string[] {
  const cache = new Map<number, string[]>();
  return (id) => {
    let frames = cache.get(id);
    if (frames) return frames;
    frames = [];
    const key = Buffer.alloc(4);
    key.writeUInt32LE(id);
    let value: Buffer | null = null;
    try { value = trace().object().mapLookup('stacks', key); } catch { value = null; }
    if (value) {
      let syms: Kallsyms | null = null;
      try { syms = Kallsyms.load(); } catch { syms = null; }
      // The map's value: the kernel's stack depth of u64 addresses, zero after the last frame.
      for (let i = 0; (i + 1) * 8 <= value.length; i++) {
        const lo = value.readUInt32LE(i * 8), hi = value.readUInt32LE(i * 8 + 4);
        if (!lo && !hi) break;
        const k = kernelAddressKey(hi, lo);
        frames.push(syms?.symbolize(k) || `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
      }
      if (cache.size < 65536) cache.set(id, frames);
    }
    return frames;
  };
}

/** Traces dropped packets: `for await (const d of drops({ all: true })) console.log(d.reason, d.remoteAddr)`. */
export function drops(opts: DropsOptions = {}): Trace<DropEvent> {
  let trace: Trace<DropEvent> | null = null;
  const spec = dropsSpec(opts, opts.stack ? stackReader(() => trace!) : undefined);
  trace = new Trace(spec, opts);
  return trace;
}
