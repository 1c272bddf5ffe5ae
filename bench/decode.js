// In-process cost of decoding and aggregating retrans records (no kernel, no ring buffer): 200,000 synthetic
// records built from RETRANS_LAYOUT, 300 destinations, 3 rounds.   node bench/decode.js
import { decodeRetrans, RetransAggregator, RETRANS_LAYOUT } from '../dist/index.js';
import { ClockMapper } from '../dist/core/record.js';
const F = RETRANS_LAYOUT.fields, N = 200000, SZ = RETRANS_LAYOUT.size + 4;
const buf = new ArrayBuffer(N * SZ); const v = new DataView(buf); const b = new Uint8Array(buf);
for (let i = 0; i < N; i++) { const o = i * SZ; v.setUint32(o, RETRANS_LAYOUT.size, true); const r = o + 4;
  v.setBigUint64(r, BigInt(i) * 1000n, true); b.set([0,0,0,0,0,0,0,0,0,0,255,255,10,231,0,1], r + F.saddr[0]); b.set([0,0,0,0,0,0,0,0,0,0,255,255,10,232,(i%300)>>8,(i%300)&255], r + F.daddr[0]);
  v.setUint16(r + F.family[0], 2, true); v.setUint16(r + F.sport[0], 1000 + (i % 50), true); v.setUint16(r + F.dport[0], 443, true); v.setUint32(r + F.segs[0], 1 + (i%4), true); v.setUint32(r + F.srtt_us[0], 100 + i % 5000, true); v.setUint8(r + F.kind[0], 2); b.set([110,111,100,101], r + F.comm[0]); }
const clock = new ClockMapper();
for (let round = 0; round < 3; round++) {
  let t = process.hrtime.bigint(); const evs = [];
  for (let i = 0; i < N; i++) evs.push(decodeRetrans(v, i * SZ + 4, clock));
  const td = Number(process.hrtime.bigint() - t) / N;
  const agg = new RetransAggregator(); t = process.hrtime.bigint();
  for (const e of evs) agg.add(e);
  const ta = Number(process.hrtime.bigint() - t) / N;
  console.log(`decode ${td.toFixed(0)} ns/ev, aggregate ${ta.toFixed(0)} ns/ev`);
}
