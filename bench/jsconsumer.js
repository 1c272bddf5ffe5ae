// The netbpf side of the pipeline benchmark: the addon's ring buffer + Trace + decodeRetrans (+ the
// RetransAggregator in "aggregate" mode) on records from bench.bpf.c; in "summary" mode no record crosses: the
// program counts each one into retrans's summary maps and this reads them every second (as `retrans --summary -i 1`)
// and at stop, feeding the same RetransAggregator in bulk.
// In "life-lines" mode the program emits struct life_event records (a storm's connection ends) and this does what
// `netbpf life` does with them: decode, render tcplife lines, one write per batch (to /dev/null).
// usage: node bench/jsconsumer.js '{"pid":N,"ringBytes":B,"pollMs":MS,"wakeupBytes":B,"destinations":D,"mode":"aggregate|decode|summary|life-lines"}'
// Prints "ready" once attached; on SIGTERM/SIGINT stops the trace (which drains the ring) and prints one JSON
// line { received, lost, produced, cpuNs, recursionMisses, malformed, rows } with cpuNs = this process's
// user+system CPU (all threads) since "ready".
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSync, writeSync } from 'node:fs';
import { decodeLife, LIFE_LAYOUT, lifeLine, Trace, RetransAggregator, RetransKernelReader } from '../dist/index.js';
import { decodeRetrans, RETRANS_LAYOUT } from '../dist/tools/retrans/index.js';
import { ClockMapper } from '../dist/core/record.js';
import { constU32 } from '../dist/core/rodata.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cfg = JSON.parse(process.argv[2]);
const clock = new ClockMapper();
const summary = cfg.mode === 'summary';
const lifeLines = cfg.mode === 'life-lines';
const agg = new RetransAggregator();
const reader = new RetransKernelReader();
const readMaps = (obj) => reader.read(obj, (k, b) => agg.addBulk(k, b));
const spec = {
  tool: 'bench',
  objectPath: join(root, 'build', 'bench', 'bench.bpf.o'),
  recordSize: lifeLines ? LIFE_LAYOUT.size : RETRANS_LAYOUT.size,
  constants: {
    target_pid: constU32(cfg.pid), destinations: constU32(cfg.destinations), aggregate_in_kernel: Buffer.from([summary ? 1 : 0]),
    life_records: Buffer.from([lifeLines ? 1 : 0]),
  },
  mapSizes: { owners: 64, retrans_agg: summary ? 8192 : 1 },
  beforeClose: summary ? readMaps : undefined,
  kernelEvents: summary ? () => reader.counted : undefined,
  hooks: [{ feature: 'getppid records', required: true,
    alternatives: [{ kind: 'tp_btf', programs: ['handle_getppid'], hook: 'tp_btf/sys_enter (getppid)' }] }],
  decode: lifeLines ? (view, o) => decodeLife(view, o, clock) : (view, o) => decodeRetrans(view, o, clock),
};
const trace = new Trace(spec, { ringBufferBytes: summary ? 4096 : cfg.ringBytes, pollMs: cfg.pollMs, wakeupBytes: cfg.wakeupBytes });
if (cfg.mode === 'aggregate') trace.onEvents((events) => agg.addAll(events));
else if (lifeLines) {
  const out = openSync('/dev/null', 'w');
  const fmt = { time: false, timestamp: false, wide: false };
  trace.onEvents((events) => {
    const lines = [];
    for (const e of events) if (e.type === 'closed') lines.push(lifeLine(e, fmt, 0));
    writeSync(out, lines.join('\n') + '\n');
  });
} else trace.onEvents(() => {});

const info = await trace.start();
// The generator's records counted by the program itself (its own data section), read before detaching.
const bss = trace.object().maps().find((m) => m.name.endsWith('.data.produced')).name;
const cpu0 = process.cpuUsage();
const timer = summary ? setInterval(() => { readMaps(trace.object()); agg.snapshot(); }, 1000) : null;
process.stdout.write('ready\n');
await new Promise((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
const producedBuf = trace.object().mapLookup(bss, Buffer.alloc(4));
const cpuBeforeStop = process.cpuUsage(cpu0);
if (timer) clearInterval(timer);
await trace.stop();
const cpu = process.cpuUsage(cpu0);
const c = trace.counters();
const rows = cfg.mode !== 'decode' ? agg.snapshot().byAddress.length : 0;
process.stdout.write(JSON.stringify({
  received: c.events, lost: c.lost, produced: Number(producedBuf.readBigUInt64LE(0)),
  cpuNs: (cpu.user + cpu.system) * 1000, recursionMisses: c.recursionMisses, malformed: c.malformed,
  rows, startupMs: info.startupMs, cpuNsBeforeStop: (cpuBeforeStop.user + cpuBeforeStop.system) * 1000,
}) + '\n');
