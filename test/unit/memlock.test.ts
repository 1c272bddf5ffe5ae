import { describe, expect, it } from 'vitest';
import { chargesMemlock, memlockCause, memlockLimit } from '../../src/core/memlock.js';

const limits = (soft: string, hard: string) => `Limit                     Soft Limit           Hard Limit           Units     \nMax locked memory         ${soft}                ${hard}                bytes     \n`;
/** /proc/self/status's CapEff line holding capabilities `caps`. */
const status = (...caps: number[]) => `Name:\tnode\nCapEff:\t${caps.reduce((n, c) => n | (1n << BigInt(c)), 0n).toString(16).padStart(16, '0')}\n`;
const BPF = 39, PERFMON = 38, SYS_ADMIN = 21, SYS_RESOURCE = 24;

describe('memlock: EPERM from bpf() on kernels that charge RLIMIT_MEMLOCK', () => {
  it('knows which kernels charge it (before 5.11)', () => {
    expect(['4.19.0-27-amd64', '5.10.0-46-amd64', '5.10.262'].map((r) => chargesMemlock(r))).toEqual([true, true, true]);
    expect(['5.11.0', '6.1.0-57-amd64', '6.18.44-fc-v669'].map((r) => chargesMemlock(r))).toEqual([false, false, false]);
  });
  it('reads the limit from /proc/self/limits', () => {
    expect(memlockLimit(limits('65536', '65536'))).toEqual({ soft: 65536, hard: 65536 });
    expect(memlockLimit(limits('unlimited', 'unlimited'))).toEqual({ soft: null, hard: null });
  });
  it('names the limit and CAP_SYS_RESOURCE only when that is the cause', () => {
    expect(memlockCause('5.10.0-46-amd64', limits('65536', '65536'), status(BPF, PERFMON))).toBe(
      'kernel 5.10.0-46-amd64 (before 5.11) charges BPF maps to the locked-memory limit, 64 KiB here, which this process cannot raise: grant CAP_SYS_RESOURCE or raise the limit (ulimit -l unlimited; systemd LimitMEMLOCK=infinity)');
    expect(memlockCause('5.10.0-46-amd64', limits('8388608', '8388608'), status(SYS_ADMIN))).toMatch(/, 8 MiB here,/);
    // Not the cause: a later kernel, an unlimited limit, a process that raises it itself, or one lacking CAP_BPF.
    expect(memlockCause('6.1.0-57-amd64', limits('65536', '65536'), status(BPF, PERFMON))).toBeNull();
    expect(memlockCause('5.10.0-46-amd64', limits('unlimited', 'unlimited'), status(BPF, PERFMON))).toBeNull();
    expect(memlockCause('5.10.0-46-amd64', limits('65536', '65536'), status(BPF, PERFMON, SYS_RESOURCE))).toBeNull();
    expect(memlockCause('5.10.0-46-amd64', limits('65536', '65536'), status(PERFMON))).toBeNull();
  });
});
