/**
 * The ways a BPF program can attach to the kernel, and what the running kernel offers, checked before load so
 * tools can choose and say why. Every tool builds its HookSpecs from these helpers: one place knows that a
 * tracepoint is served by tp_btf, else raw_tp (neither needs tracefs), else the classic tracepoint (needs
 * tracefs), and how to tell "the kernel lacks it" from "this environment or these privileges prevent it".
 */
import { existsSync, readFileSync } from 'node:fs';
import { addon, type NativeBpfObject } from './addon.js';

/** How a program attaches; --hook choices and the start-up report use these names. */
export type HookKind = 'tp_btf' | 'raw_tp' | 'tracepoint' | 'fentry' | 'fexit' | 'kprobe' | 'netfilter';

/** Why an alternative cannot serve: the kernel lacks it, the caller lacks privilege, or the environment
 * (a file system not mounted) prevents it. */
export type UnavailableCause = 'kernel' | 'privilege' | 'environment';

export interface Unavailable {
  cause: UnavailableCause;
  reason: string;
}

/** One way to hook a feature: the programs of the object that serve it together, and where they attach. */
export interface HookAlternative {
  kind: HookKind;
  /** Programs loaded and attached together (most alternatives have one; syscall entry/exit pairs have two). */
  programs: readonly string[];
  /** Human-readable attach point, e.g. "tp_btf/tcp_retransmit_skb". */
  hook: string;
  /** Returns null when the kernel seems to offer this hook, else why it cannot serve. */
  missing?: () => Unavailable | null;
  /** Before load, when chosen: e.g. set the program type of a section this libbpf does not know. */
  prepare?: (obj: NativeBpfObject, program: string) => void;
  /** Attaches instead of obj.attach(program) (hooks libbpf cannot auto-attach, e.g. netfilter). An error's
   * `reason`, when set, is reported as why this alternative was passed over. */
  attach?: (obj: NativeBpfObject, program: string) => void;
}

export interface HookSpec {
  /** What the hook gives the user, e.g. "data retransmits". */
  feature: string;
  /** In order of preference; the first that loads and attaches wins. */
  alternatives: HookAlternative[];
  /** When no alternative works: required features fail the start, optional ones are reported unavailable. */
  required: boolean;
}

/** A user's --hook choice: the best available, or one kind only. */
export type HookPreference = 'auto' | HookKind;

const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/** Where tracefs is mounted, or null (common: containers, `ip netns exec`, hosts without systemd). */
export function tracefsRoot(): string | null {
  for (const root of TRACEFS) if (existsSync(`${root}/events`)) return root;
  return null;
}

/** What a classic tracepoint needs when tracefs is missing, in one line. */
export const TRACEFS_MISSING = 'needs tracefs, which is not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
/** Why a non-root user with CAP_BPF + CAP_PERFMON cannot attach classic tracepoints (docs/RELIABILITY.md). */
export const TRACEFS_ACCESS_HINT = 'no read access to tracefs event ids: run as root or add CAP_DAC_READ_SEARCH';

const kernel = (reason: string): Unavailable => ({ cause: 'kernel', reason });

function kernelBtfHas(kind: 'typedef' | 'func', name: string, modules = true): boolean | null {
  try {
    return addon().kernelBtfHas(kind, name, modules);
  } catch {
    return null;
  }
}

/** null when the kernel has tracepoint `name` as seen through BTF (tp_btf and raw_tp attach by this name). */
function btfTracepointMissing(name: string): Unavailable | null {
  const has = kernelBtfHas('typedef', `btf_trace_${name}`);
  if (has === null) return kernel('kernel BTF unavailable');
  return has ? null : kernel(`no tracepoint ${name} in this kernel`);
}

/** Whether the kernel has tracepoint `name` (as tp_btf and raw_tp attach it); true when BTF cannot tell. */
export function hasTracepoint(name: string): boolean {
  return kernelBtfHas('typedef', `btf_trace_${name}`) !== false;
}

/** null when a classic tracepoint can be attached (tracefs mounted and the event there), else why not. */
function classicTracepointMissing(category: string, name: string): Unavailable | null {
  const root = tracefsRoot();
  if (!root) return { cause: 'environment', reason: TRACEFS_MISSING };
  return existsSync(`${root}/events/${category}/${name}`) ? null : kernel(`tracepoint ${category}:${name} not in this kernel`);
}

/**
 * The alternatives for the handler `prog` of tracepoint category:name, best first: `<prog>_btf` (tp_btf),
 * `<prog>_raw` (raw_tp) and, when the object has one, `<prog>_tp` (the classic tracepoint). bpf/tracepoints.bpf.h
 * defines the first two from one body with TRACEPOINT_PROGRAMS.
 */
export function tracepoint(category: string, name: string, prog: string, opts: { classic?: boolean; split?: readonly string[] } = {}): HookAlternative[] {
  // `split`: the tp_btf/raw_tp work is shared by several programs attached together (e.g. process and softirq
  // context apart), each defined with TRACEPOINT_PROGRAMS; the classic tracepoint keeps one program, `<prog>_tp`.
  const progs = opts.split ?? [prog];
  const alts: HookAlternative[] = [
    { kind: 'tp_btf', programs: progs.map((p) => `${p}_btf`), hook: `tp_btf/${name}`, missing: () => btfTracepointMissing(name) },
    { kind: 'raw_tp', programs: progs.map((p) => `${p}_raw`), hook: `raw_tp/${name}`, missing: () => btfTracepointMissing(name) },
  ];
  if (opts.classic !== false) {
    // A tracepoint the kernel's BTF does not list is missing from the kernel, whether or not tracefs is mounted.
    const missing = () => (kernelBtfHas('typedef', `btf_trace_${name}`) === false ? btfTracepointMissing(name) : classicTracepointMissing(category, name));
    alts.push({ kind: 'tracepoint', programs: [`${prog}_tp`], hook: `tracepoint/${category}/${name}`, missing });
  }
  return alts;
}

/**
 * The alternatives for syscall entry/exit handlers: the raw syscall tracepoints sys_enter/sys_exit (programs
 * `<enter>_btf`/`<exit>_btf`, `<enter>_raw`/`<exit>_raw`: no tracefs; they run for every syscall and compare
 * its number first), else the classic syscalls:sys_{enter,exit}_<name> programs given in `classic`.
 */
export function syscalls(enter: string, exit: string, classic: { names: string[]; programs: string[] }): HookAlternative[] {
  const missing = () => btfTracepointMissing('sys_enter') ?? btfTracepointMissing('sys_exit');
  return [
    { kind: 'tp_btf', programs: [`${enter}_btf`, `${exit}_btf`], hook: 'tp_btf/sys_enter+sys_exit', missing },
    { kind: 'raw_tp', programs: [`${enter}_raw`, `${exit}_raw`], hook: 'raw_tp/sys_enter+sys_exit', missing },
    {
      kind: 'tracepoint', programs: classic.programs, hook: `tracepoint/syscalls/sys_{enter,exit}_{${classic.names.join(',')}}`,
      missing: () => {
        for (const n of classic.names) {
          const why = classicTracepointMissing('syscalls', `sys_enter_${n}`) ?? classicTracepointMissing('syscalls', `sys_exit_${n}`);
          if (why) return why;
        }
        return null;
      },
    },
  ];
}

/** Names of the functions a kprobe can attach to (ftrace's list, else the symbol table). Read again only when the
 * loaded modules change: the lists are large (tens of thousands of lines, slow to generate under emulation) and
 * every tool's start asks. */
let probeable: { modules: string; names: Set<string>; source: 'ftrace' | 'kallsyms' } | null = null;

function probeableFunctions(root: string | null): { names: Set<string>; source: 'ftrace' | 'kallsyms' } | null {
  const read = (path: string) => { try { return readFileSync(path, 'latin1'); } catch { return null; } };
  const modules = read('/proc/modules') ?? '';
  if (probeable && probeable.modules === modules) return probeable;
  const names = (text: string, field: number) => new Set(text.split('\n').map((l) => l.split(/\s/)[field]).filter(Boolean));
  const ftrace = root ? read(`${root}/available_filter_functions`) : null;
  // Not readable here (no tracefs, or locked down): a function absent from the symbol table (inlined by the
  // compiler, or removed) cannot be probed either; otherwise the attach decides.
  const kallsyms = ftrace === null ? read('/proc/kallsyms') : null;
  if (ftrace !== null) probeable = { modules, names: names(ftrace, 0), source: 'ftrace' };
  else if (kallsyms !== null) probeable = { modules, names: names(kallsyms, 2), source: 'kallsyms' };
  else return null;
  return probeable;
}

/** null when kprobes can attach to `fn`, else why not. */
function kprobeMissing(fn: string): Unavailable | null {
  const root = tracefsRoot();
  if (!existsSync('/sys/bus/event_source/devices/kprobe') && !(root && existsSync(`${root}/kprobe_events`))) {
    return kernel('kprobes not supported by this kernel (CONFIG_KPROBES off)');
  }
  const known = probeableFunctions(root);
  if (!known || known.names.has(fn)) return null;
  return kernel(known.source === 'ftrace' ? `kernel function ${fn} cannot be probed (inlined, absent or not traceable)` : `kernel function ${fn} not in this kernel (inlined or absent)`);
}

/** null when fentry/fexit could attach to `fn` by BTF (the kernel may still refuse at load: tools fall back). */
function fentryMissing(fn: string): Unavailable | null {
  const has = kernelBtfHas('func', fn);
  if (has === null) return kernel('kernel BTF unavailable');
  if (!has) return kernel(`no BTF for kernel function ${fn}`);
  if (!addon().moduleBtfIdsReadable() && !kernelBtfHas('func', fn, false)) {
    return { cause: 'privilege', reason: `${fn} is a module's: attaching needs the module's BTF id, which this kernel shows only to CAP_SYS_ADMIN` };
  }
  return null;
}

/** fentry (or fexit) on kernel function `fn`, program `program`. */
export function fentry(fn: string, program: string, kind: 'fentry' | 'fexit' = 'fentry'): HookAlternative {
  return { kind, programs: [program], hook: `${kind}/${fn}`, missing: () => fentryMissing(fn) };
}

/** A kprobe on kernel function `fn`, program `program`. */
export function kprobe(fn: string, program: string): HookAlternative {
  return { kind: 'kprobe', programs: [program], hook: `kprobe/${fn}`, missing: () => kprobeMissing(fn) };
}

/** Keeps the alternatives of kind `pref` (all of them for 'auto'). A spec with none of that kind keeps its own:
 * --hook picks how the main events are hooked, not whether the other features run. */
export function preferHook(alts: HookAlternative[], pref: HookPreference = 'auto'): HookAlternative[] {
  if (pref === 'auto') return alts;
  const kept = alts.filter((a) => a.kind === pref);
  return kept.length ? kept : alts;
}

/** Which cause decides when no alternative serves: a privilege problem can be fixed by the user, a missing kernel
 * feature cannot be worked around by mounting anything, and only then does the environment decide. */
export function decidingCause(causes: UnavailableCause[]): UnavailableCause {
  if (causes.includes('privilege')) return 'privilege';
  if (causes.includes('kernel')) return 'kernel';
  return causes.length ? 'environment' : 'kernel';
}
