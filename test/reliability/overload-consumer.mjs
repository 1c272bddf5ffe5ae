// The overload test's consumer: Trace (addon ring buffer + decode) on bench/bench.bpf.c records filtered to
// one pid, with a deliberately small ring buffer and a slow timed poll, so a burst overflows it.
// usage: node overload-consumer.mjs PID RING_BYTES POLL_MS
// Prints "ready"; for each stdin line "stat" prints {received, lost, produced, rssKiB}; exits on stdin end.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Trace } from '../../dist/index.js';
import { decodeRetrans, RETRANS_LAYOUT } from '../../dist/tools/retrans/index.js';
import { ClockMapper } from '../../dist/core/record.js';
import { constU32 } from '../../dist/core/rodata.js';

const [pid, ringBytes, pollMs] = process.argv.slice(2).map(Number);
const clock = new ClockMapper();
const trace = new Trace({
  tool: 'bench',
  objectPath: new URL('../../build/bench/bench.bpf.o', import.meta.url).pathname,
  recordSize: RETRANS_LAYOUT.size,
  constants: { target_pid: constU32(pid), destinations: constU32(256) },
  hooks: [{ feature: 'getppid records', required: true, alternatives: [{ kind: 'tp_btf', programs: ['handle_getppid'], hook: 'tp_btf/sys_enter (getppid)' }] }],
  decode: (view, o) => decodeRetrans(view, o, clock),
}, { ringBufferBytes: ringBytes, pollMs, wakeupBytes: ringBytes });
let seq = -1;
// Records must arrive in order: the sequence (segs_out = seq + 100) checks nothing is delivered twice.
let outOfOrder = 0;
trace.onEvents((events) => { for (const e of events) { if (e.segsOut - 100 <= seq) outOfOrder++; seq = e.segsOut - 100; } });
await trace.start();
// bench.bpf.c keeps the count in a section of its own (offset 0 whatever globals its headers add).
const bss = trace.object().maps().find((m) => m.name.endsWith('.data.produced')).name;
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'stat') continue;
  const c = trace.counters();
  const produced = Number(trace.object().mapLookup(bss, Buffer.alloc(4)).readBigUInt64LE(0));
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  process.stdout.write(JSON.stringify({ received: c.events, lost: c.lost, produced, rssKiB, outOfOrder }) + '\n');
}
await trace.stop();
