/** Kernels before 5.11 charge BPF maps and programs to the caller's locked-memory limit (RLIMIT_MEMLOCK); when
 * that limit is too small the bpf() syscall fails with EPERM, which looks like a missing capability but is not. */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';

const CAP_SYS_ADMIN = 21n, CAP_SYS_RESOURCE = 24n, CAP_BPF = 39n;

/** Whether kernel `rel` charges BPF memory to RLIMIT_MEMLOCK (memory cgroup accounting replaced it in 5.11). */
export function chargesMemlock(rel: string = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return !!m && (Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 11));
}

/** This process's locked-memory limit in bytes (soft, hard); null for unlimited. */
export function memlockLimit(limits: string = readFileSync('/proc/self/limits', 'utf8')): { soft: number | null; hard: number | null } | null {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return null;
  const bytes = (s: string) => (s === 'unlimited' ? null : Number(s));
  return { soft: bytes(m[1]), hard: bytes(m[2]) };
}

/** Whether this process holds capability `cap` in its effective set. */
function hasCapability(cap: bigint, status: string): boolean {
  const m = /^CapEff:\s+([0-9a-f]+)/m.exec(status);
  return !!m && ((BigInt(`0x${m[1]}`) >> cap) & 1n) === 1n;
}

/** Sizes in the units `ulimit -l` and systemd speak. */
function kib(bytes: number): string {
  return bytes >= 1 << 20 ? `${Math.round(bytes / (1 << 20))} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/**
 * Why an EPERM from bpf() is the locked-memory limit and not a missing capability, in one clause naming the fix;
 * null when that is not the cause: a kernel that does not charge RLIMIT_MEMLOCK, an unlimited limit, or a process
 * that may raise it itself (CAP_SYS_RESOURCE: libbpf raises it before loading), or one lacking CAP_BPF and
 * CAP_SYS_ADMIN (then the capability is what is missing).
 */
export function memlockCause(rel: string = release(), limits?: string, status?: string): string | null {
  if (!chargesMemlock(rel)) return null;
  let lim: ReturnType<typeof memlockLimit>;
  let st: string;
  try {
    lim = memlockLimit(limits);
    st = status ?? readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  if (!lim || lim.soft === null) return null;
  if (hasCapability(CAP_SYS_RESOURCE, st)) return null;
  if (!hasCapability(CAP_BPF, st) && !hasCapability(CAP_SYS_ADMIN, st)) return null;
  return `kernel ${rel} (before 5.11) charges BPF maps to the locked-memory limit, ${kib(lim.soft)} here, which this process cannot raise: ` +
    'grant CAP_SYS_RESOURCE or raise the limit (ulimit -l unlimited; systemd LimitMEMLOCK=infinity)';
}
