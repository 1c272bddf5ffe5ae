/** What the running kernel offers to attach to, checked before load so tools can choose and say why. */
import { existsSync, readFileSync } from 'node:fs';
import { addon } from './addon.js';

const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

function tracefsRoot(): string | null {
  for (const root of TRACEFS) if (existsSync(`${root}/events`)) return root;
  return null;
}

/** null when the classic tracepoint exists (or tracefs is not mounted, leaving it to libbpf), else why not. */
export function tracepointMissing(category: string, name: string): string | null {
  const root = tracefsRoot();
  if (!root) return null;
  return existsSync(`${root}/events/${category}/${name}`) ? null : `tracepoint ${category}:${name} not in this kernel`;
}

/** null when a BTF-typed tracepoint (tp_btf) can attach, else why not. */
export function btfTracepointMissing(name: string): string | null {
  try {
    return addon().kernelBtfHas('typedef', `btf_trace_${name}`) ? null : `no BTF for tracepoint ${name}`;
  } catch {
    return 'kernel BTF unavailable';
  }
}

/** null when kprobes can attach to `fn`, else why not. */
export function kprobeMissing(fn: string): string | null {
  const root = tracefsRoot();
  if (!existsSync('/sys/bus/event_source/devices/kprobe') && !(root && existsSync(`${root}/kprobe_events`))) {
    return 'kprobes not supported by this kernel (CONFIG_KPROBES off)';
  }
  let text: string;
  try {
    text = readFileSync(`${root}/available_filter_functions`, 'latin1');
  } catch {
    return null; // not readable here (no ftrace, or locked down): let the attach decide
  }
  return new RegExp(`^${fn}( |$)`, 'm').test(text) ? null : `kernel function ${fn} cannot be probed`;
}

/** null when fentry/fexit could attach to `fn` by BTF (the kernel may still refuse at load: tools fall back). */
export function fentryMissing(fn: string): string | null {
  try {
    return addon().kernelBtfHas('func', fn) ? null : `no BTF for kernel function ${fn}`;
  } catch {
    return 'kernel BTF unavailable';
  }
}
