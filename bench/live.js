// In-process cost of the live path of `netbpf life` (no kernel, no ring buffer): N synthetic life records (a storm's
// worth: 64 client addresses, 8 server ports, both directions) decoded, filtered to closed ends and rendered as
// tcplife lines joined for one write, as the CLI does per batch; 5 rounds (the first is V8 warm-up).
//   node bench/live.js [N]
import { decodeLife, LIFE_LAYOUT, lifeLine } from '../dist/index.js';
import { ClockMapper } from '../dist/core/record.js';

const F = LIFE_LAYOUT.fields, N = Number(process.argv[2] ?? 200000), SZ = LIFE_LAYOUT.size + 4, BATCH = 2000;
const buf = new ArrayBuffer(N * SZ); const v = new DataView(buf); const b = new Uint8Array(buf);
for (let i = 0; i < N; i++) {
  const o = i * SZ; v.setUint32(o, LIFE_LAYOUT.size, true); const r = o + 4;
  const accept = i % 2 === 1;
  v.setBigUint64(r + F.ts_ns[0], BigInt(1e9 + i * 50000), true); v.setBigUint64(r + F.birth_ns[0], BigInt(1e9 + i * 50000 - 200000), true);
  v.setBigUint64(r + F.established_ns[0], BigInt(1e9 + i * 50000 - 150000), true);
  const client = [127, 99, 1, 1 + (i % 64)], server = [127, 99, 0, 1];
  b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...(accept ? server : client)], r + F.saddr[0]);
  b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...(accept ? client : server)], r + F.daddr[0]);
  const eph = 1024 + (i % 60000), port = 20000 + (i % 8);
  v.setUint16(r + F.family[0], 2, true); v.setUint16(r + F.sport[0], accept ? port : eph, true); v.setUint16(r + F.dport[0], accept ? eph : port, true);
  v.setUint32(r + F.pid[0], accept ? 4242 : 4343, true); b.set([115, 116, 111, 114, 109], r + F.comm[0]);
  v.setUint8(r + F.kind[0], 2); v.setUint8(r + F.direction[0], accept ? 2 : 1); v.setUint8(r + F.old_state[0], accept ? 9 : 5);
  v.setUint8(r + F.flags[0], accept ? 20 : 28); v.setUint8(r + F.owner_source[0], accept ? 4 : 1);
  v.setUint32(r + F.srtt_us[0], 20 + (i % 50), true); v.setUint32(r + F.segs_out[0], 3, true); v.setUint32(r + F.segs_in[0], 3, true);
  v.setBigUint64(r + F.bytes_acked[0], accept ? 1n : 2n, true); v.setBigUint64(r + F.bytes_received[0], 1n, true);
}
const clock = new ClockMapper();
const fmt = { time: false, timestamp: false, wide: false };
let sink = 0;
for (let round = 0; round < 5; round++) {
  const t0 = process.hrtime.bigint();
  let td = 0n;
  for (let start = 0; start < N; start += BATCH) {
    const d0 = process.hrtime.bigint();
    const events = [];
    for (let i = start; i < Math.min(N, start + BATCH); i++) events.push(decodeLife(v, i * SZ + 4, clock));
    td += process.hrtime.bigint() - d0;
    const lines = [];
    for (const e of events) if (e.type === 'closed') lines.push(lifeLine(e, fmt, 0));
    sink += (lines.join('\n') + '\n').length;
  }
  const total = Number(process.hrtime.bigint() - t0) / N;
  console.log(`round ${round}: ${total.toFixed(0)} ns/record (decode ${(Number(td) / N).toFixed(0)}, lines + join ${(total - Number(td) / N).toFixed(0)})`);
}
if (sink < 0) console.log(sink);
