// The running kernel as the matrix reports it: release, version line, and the BPF-relevant facilities
// visible from user space. Prints one JSON document.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';

const read = (p) => { try { return readFileSync(p, 'utf8').trim(); } catch { return null; } };
const tracing = existsSync('/sys/kernel/tracing/events') ? '/sys/kernel/tracing' : '/sys/kernel/debug/tracing';
process.stdout.write(`${JSON.stringify({
  release: release(),
  version: read('/proc/version'),
  btf: existsSync('/sys/kernel/btf/vmlinux'),
  kprobes: existsSync('/sys/bus/event_source/devices/kprobe') || existsSync(`${tracing}/kprobe_events`),
  cpus: read('/sys/devices/system/cpu/online'),
}, null, 1)}\n`);
