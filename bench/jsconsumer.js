// The netbpf side of the pipeline benchmark: the addon's ring buffer + Trace + decodeRetrans (+ the
// RetransAggregator in "aggregate" mode) on records from bench.bpf.c.
// usage: node bench/jsconsumer.js '{"pid":N,"ringBytes":B,"pollMs":MS,"wakeupBytes":B,"destinations":D,"mode":"aggregate"}'
// Prints "ready" once attached; on SIGTERM/SIGINT stops the trace (which drains the ring) and prints one JSON
// line { received, lost, produced, cpuNs, recursionMisses, malformed, rows } with cpuNs = this process's
// user+system CPU (all threads) since "ready".
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Trace, RetransAggregator } from '../dist/index.js';
import { decodeRetrans, RETRANS_LAYOUT } from '../dist/tools/retrans/index.js';
import { ClockMapper } from '../dist/core/record.js';
import { constU32 } from '../dist/core/rodata.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cfg = JSON.parse(process.argv[2]);
const clock = new ClockMapper();
const spec = {
  tool: 'bench',
  objectPath: join(root, 'build', 'bench', 'bench.bpf.o'),
  recordSize: RETRANS_LAYOUT.size,
  constants: { target_pid: constU32(cfg.pid), destinations: constU32(cfg.destinations) },
  hooks: [{ feature: 'getppid records', required: true,
    alternatives: [{ kind: 'tp_btf', programs: ['handle_getppid'], hook: 'tp_btf/sys_enter (getppid)' }] }],
  decode: (view, o) => decodeRetrans(view, o, clock),
};
const trace = new Trace(spec, { ringBufferBytes: cfg.ringBytes, pollMs: cfg.pollMs, wakeupBytes: cfg.wakeupBytes });
const agg = new RetransAggregator();
if (cfg.mode === 'aggregate') trace.onEvents((events) => agg.addAll(events));
else trace.onEvents(() => {});

const info = await trace.start();
// The generator's records counted by the program itself (its .bss), read before detaching.
const bss = trace.object().maps().find((m) => m.name.endsWith('.bss')).name;
const cpu0 = process.cpuUsage();
process.stdout.write('ready\n');
await new Promise((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
const producedBuf = trace.object().mapLookup(bss, Buffer.alloc(4));
await trace.stop();
const cpu = process.cpuUsage(cpu0);
const c = trace.counters();
const rows = cfg.mode === 'aggregate' ? agg.snapshot().byAddress.length : 0;
process.stdout.write(JSON.stringify({
  received: c.events, lost: c.lost, produced: Number(producedBuf.readBigUInt64LE(0)),
  cpuNs: (cpu.user + cpu.system) * 1000, recursionMisses: c.recursionMisses, malformed: c.malformed,
  rows, startupMs: info.startupMs,
}) + '\n');
