// Small process helpers for the benchmark harness: spawn with line waiting, CPU and memory of a pid, medians.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = 100; // USER_HZ on Linux: /proc/<pid>/stat times are in 1/100 s

/** A child process whose stdout/stderr are collected; waitFor() resolves on the first matching line. */
export function start(argv, opts = {}) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  const out = { stdout: '', stderr: '', child, exited: null };
  child.stdout?.setEncoding('utf8').on('data', (d) => { out.stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d) => { out.stderr += d; });
  out.exit = new Promise((resolve) => child.once('close', (code, sig) => { out.exited = { code, sig }; resolve(out.exited); }));
  out.waitFor = (re, timeoutMs = 20000, stream = 'stdout') => new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      const m = re.exec(out[stream]);
      if (m) return resolve(m);
      if (out.exited) return reject(new Error(`${argv.join(' ')} exited (${JSON.stringify(out.exited)}) before ${re}: ${out.stderr.slice(-500)}`));
      if (Date.now() > deadline) return reject(new Error(`${argv.join(' ')}: no ${re} within ${timeoutMs} ms: ${out.stderr.slice(-500)}`));
      setTimeout(check, 5);
    };
    check();
  });
  /** Signals the process and waits (bounded) for it to exit; SIGKILL after the bound. */
  out.stop = async (sig = 'SIGINT', timeoutMs = 15000) => {
    if (!out.exited) child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await out.exit;
    clearTimeout(timer);
    return out;
  };
  return out;
}

/** User + system CPU of a process so far, in ns (tick resolution: 10 ms). */
export function cpuNsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is state (field 3); utime and stime are fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) * (1e9 / CLK_TCK);
}

/** Resident memory of a process, bytes. */
export function rssOf(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function fmtRate(x) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M/s`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k/s`;
  return `${x.toFixed(1)}/s`;
}

export const fmtMiB = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
