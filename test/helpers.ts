/** Shared test helpers: BPF integration tests run as root; in CI (NETBPF_REQUIRE_BPF=1) a missing
 * privilege is a failure, never a silent skip. */
import { describe } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { addon } from '../src/core/addon.js';

export function bpfUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'no kernel BTF';
  if (!existsSync(new URL('../build/Release/netbpf.node', import.meta.url))) return 'addon not built (npm run build)';
  return null;
}

/** describe() for tests that load BPF programs and create namespaces. */
export function describeBpf(name: string, fn: () => void): void {
  const reason = bpfUnavailableReason();
  if (reason && process.env.NETBPF_REQUIRE_BPF) {
    describe(name, () => { throw new Error(`BPF integration tests required but cannot run: ${reason}`); });
    return;
  }
  if (reason) {
    describe.skip(`${name} (skipped: ${reason})`, fn);
    return;
  }
  describe(name, fn);
}

/** Whether a command exists on this machine (bpftrace, conntrack, ...). */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether tracefs is mounted where this test runs (CI runs the BPF suite with and without it). */
export function tracefsMounted(): boolean {
  return existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events');
}

/** `argv` run in a private mount namespace with tracefs mounted there: peer tools and oracles (bpftrace, perf)
 * need it, netbpf does not, and the host's own mounts stay as they are. Same pid as the command (exec). */
export function withTracefs(argv: string[]): string[] {
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
    'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || exit 1; exec "$0" "$@"', ...argv];
}

/** Whether the running kernel names its drop reasons (enum skb_drop_reason in its BTF: Linux >= 5.17). Tests
 * assert reasons where the kernel has them, and the "no reasons" behaviour (UNAVAILABLE, said at start-up) where
 * it does not. Read from the kernel's BTF directly, not through netbpf's DropReasons. */
export function kernelHasDropReasons(): boolean {
  return addon().kernelBtfEnum('skb_drop_reason') !== null;
}

/** The reason netfilter's drops carry here: NETFILTER_DROP, or UNAVAILABLE on kernels without drop reasons
 * (< 5.17), where the diagnoses still tell netfilter's by the freeing function (nf_hook_slow). */
export function netfilterDropReason(): 'NETFILTER_DROP' | 'UNAVAILABLE' {
  return kernelHasDropReasons() ? 'NETFILTER_DROP' : 'UNAVAILABLE';
}

/** Whether the running kernel is older than major.minor (uname's release). */
export function kernelBefore(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map((x) => parseInt(x, 10));
  return a < major || (a === major && b < minor);
}
