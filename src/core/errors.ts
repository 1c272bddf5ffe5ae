/** Errors a user can cause or fix, each with the exit code of its class (documented in the README). */
import { memlockCause } from './memlock.js';

export type ErrorKind = 'usage' | 'privilege' | 'kernel' | 'runtime';

/** Exit codes by class: usage 2, missing privilege 77 (EX_NOPERM), kernel feature missing 69 (EX_UNAVAILABLE), runtime 1. */
export const EXIT_CODES: Record<ErrorKind, number> = { usage: 2, privilege: 77, kernel: 69, runtime: 1 };

export class NetbpfError extends Error {
  readonly kind: ErrorKind;
  /** errno from libbpf or the kernel, when there is one. */
  readonly errno?: number;
  /** libbpf's own log lines for this failure (verifier output), for --verbose. */
  readonly details?: string;
  constructor(kind: ErrorKind, message: string, opts: { errno?: number; details?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'NetbpfError';
    this.kind = kind;
    this.errno = opts.errno;
    this.details = opts.details;
  }
  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

export function usageError(message: string): NetbpfError {
  return new NetbpfError('usage', message);
}

interface AddonError extends Error {
  errno?: number;
  code?: string;
  libbpfLog?: string;
}

/** Turns an addon/libbpf error into a NetbpfError whose message says what to do. */
export function fromAddonError(what: string, err: unknown): NetbpfError {
  if (err instanceof NetbpfError) return err;
  const e = err as AddonError;
  const errno = e?.errno;
  const log = e?.libbpfLog ?? '';
  if (errno === 1 || errno === 13) {
    const memlock = errno === 1 ? memlockCause() : null;
    if (memlock) return new NetbpfError('privilege', `${what}: permission denied (${e.code}): ${memlock}`, { errno, details: log, cause: err });
    return new NetbpfError(
      'privilege',
      `${what}: permission denied (${e.code}); run as root or with CAP_BPF and CAP_PERFMON`,
      { errno, details: log, cause: err },
    );
  }
  if (errno === 2 && /btf|vmlinux/i.test(e.message + log)) {
    return new NetbpfError('kernel', `${what}: kernel BTF not found (/sys/kernel/btf/vmlinux); netbpf needs a kernel built with CONFIG_DEBUG_INFO_BTF=y`, { errno, details: log, cause: err });
  }
  if (errno === 95 || errno === 524 || errno === 38) {
    return new NetbpfError('kernel', `${what}: not supported by this kernel (${e.code})`, { errno, details: log, cause: err });
  }
  return new NetbpfError('runtime', `${what}: ${e?.message ?? String(err)}`, { errno, details: log, cause: err });
}
