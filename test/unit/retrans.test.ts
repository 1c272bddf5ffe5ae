import { describe, expect, it } from 'vitest';
import { decodeRetrans, RetransAggregator, RETRANS_LAYOUT, type RetransEvent } from '../../src/tools/retrans/index.js';
import { ClockMapper } from '../../src/core/record.js';
import { parseAddress } from '../../src/core/address.js';
import { renderRetransSummary as renderSummary, retransEventJson as eventJson } from '../../src/tools/retrans/index.js';

const F = RETRANS_LAYOUT.fields;

/** Builds a record exactly as the BPF program would, using only the layout. */
function record(v: { saddr: string; daddr: string; sport: number; dport: number; family: number; segs: number; kind?: number; state?: number; err?: number; comm?: string; pid?: number; srtt?: number; retransmits?: number; total?: number; out?: number }): DataView {
  const buf = new ArrayBuffer(RETRANS_LAYOUT.size + 8);
  const view = new DataView(buf, 8); // records sit at arbitrary offsets inside a batch
  const bytes = new Uint8Array(buf, 8);
  view.setBigUint64(F.ts_ns[0], 123_000_000n, true);
  view.setBigUint64(F.cgroup_id[0], 4242n, true);
  bytes.set(parseAddress(v.saddr)!.bytes, F.saddr[0]);
  bytes.set(parseAddress(v.daddr)!.bytes, F.daddr[0]);
  view.setUint32(F.netns[0], 4026531840, true);
  view.setUint32(F.pid[0], v.pid ?? 0, true);
  view.setUint32(F.srtt_us[0], v.srtt ?? 1500, true);
  view.setUint32(F.segs[0], v.segs, true);
  view.setUint32(F.total_retrans[0], v.total ?? v.segs, true);
  view.setUint32(F.segs_out[0], v.out ?? 100, true);
  view.setInt32(F.err[0], v.err ?? 0, true);
  view.setUint16(F.family[0], v.family, true);
  view.setUint16(F.sport[0], v.sport, true);
  view.setUint16(F.dport[0], v.dport, true);
  view.setUint8(F.state[0], v.state ?? 1);
  view.setUint8(F.kind[0], v.kind ?? 1);
  view.setUint8(F.ca_state[0], 4);
  view.setUint8(F.retransmits[0], v.retransmits ?? 2);
  bytes.set(new TextEncoder().encode(v.comm ?? ''), F.comm[0]);
  return view;
}

const clock = new ClockMapper();

describe('retrans decoding', () => {
  it('decodes every field of an IPv4 record', () => {
    const e = decodeRetrans(record({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 40000, dport: 443, family: 2, segs: 7, pid: 99, comm: 'curl', srtt: 2500, total: 9, out: 300 }), 0, clock);
    expect(e).toMatchObject({
      type: 'retransmit', family: 4, saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 443, state: 'ESTABLISHED',
      kind: 'rto', caState: 'loss', segs: 7, totalRetrans: 9, segsOut: 300, retransmits: 2, srttUs: 2500, err: 0,
      pid: 99, comm: 'curl', netns: 4026531840, cgroupId: 4242,
    });
    expect(Math.abs(e.time - clock.toEpochMs(123_000_000))).toBeLessThan(1);
  });
  it('decodes IPv6 and keeps invalid UTF-8 in comm as replacement characters', () => {
    const v = record({ saddr: 'fd00::1', daddr: 'fd00::2', sport: 1, dport: 2, family: 10, segs: 1, kind: 3 });
    new Uint8Array(v.buffer, v.byteOffset + F.comm[0], 3).set([0xff, 0x1b, 0x41]);
    const e = decodeRetrans(v, 0, clock);
    expect(e.family).toBe(6);
    expect(e.daddr).toBe('fd00::2');
    expect(e.kind).toBe('tlp');
    expect(e.comm).toBe('\ufffd\x1bA');
  });
  it('gives equal connection ids to one connection and different ids to others', () => {
    const a = decodeRetrans(record({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1000, dport: 80, family: 2, segs: 1 }), 0, clock);
    const b = decodeRetrans(record({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1000, dport: 80, family: 2, segs: 3 }), 0, clock);
    const c = decodeRetrans(record({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1001, dport: 80, family: 2, segs: 1 }), 0, clock);
    expect(a.connId).toBe(b.connId);
    expect(a.connId).not.toBe(c.connId);
  });
});

function ev(daddr: string, dport: number, sport: number, segs: number, extra: Partial<RetransEvent> = {}): RetransEvent {
  return {
    type: 'retransmit', time: 1000, family: daddr.includes(':') ? 6 : 4, saddr: '10.0.0.1', sport, daddr, dport,
    state: 'ESTABLISHED', kind: 'fast', caState: 'recovery', segs, totalRetrans: segs, segsOut: 100, retransmits: 0,
    srttUs: 1000, err: 0, pid: 0, comm: '', netns: 1, cgroupId: 1, connId: sport, ...extra,
  };
}

describe('RetransAggregator', () => {
  it('sums segments, events and connections per endpoint and per address, and computes rates', () => {
    let now = 0;
    const agg = new RetransAggregator({ now: () => now });
    agg.add(ev('10.0.0.2', 443, 1, 10, { totalRetrans: 10, segsOut: 100 }));
    agg.add(ev('10.0.0.2', 443, 1, 5, { totalRetrans: 15, segsOut: 200 }));
    agg.add(ev('10.0.0.2', 443, 2, 1, { kind: 'rto', totalRetrans: 1, segsOut: 50 }));
    agg.add(ev('10.0.0.2', 80, 3, 2));
    agg.add(ev('10.0.0.3', 80, 4, 4, { err: -16 })); // EBUSY: returned before the kernel counted it
    agg.add(ev('10.0.0.4', 80, 5, 3, { err: -105 })); // ENOBUFS: failed in transmit, counted by the kernel
    now = 2000;
    const s = agg.snapshot();
    expect(s.totals).toEqual({ events: 6, segs: 21, failed: 2, connections: 5, connectionsCapped: false });
    expect(s.byAddress.find((r) => r.key === '10.0.0.4')).toMatchObject({ events: 1, segs: 3, failed: 1 });
    const ep = s.byEndpoint.find((r) => r.key === '10.0.0.2:443')!;
    expect(ep).toMatchObject({ events: 3, segs: 16, connections: 2, rate: 8, avgRate: 8, daddr: '10.0.0.2', dport: 443 });
    expect(ep.kinds).toMatchObject({ fast: 15, rto: 1 });
    // latest counters per connection: (15 + 1) / (200 + 50)
    expect(ep.retransRatio).toBeCloseTo(16 / 250);
    const addr = s.byAddress.find((r) => r.key === '10.0.0.2')!;
    expect(addr).toMatchObject({ events: 4, segs: 18, connections: 3, dport: null });
    expect(s.byAddress.find((r) => r.key === '10.0.0.3')).toMatchObject({ events: 1, segs: 0, failed: 1 });
    // rate covers the interval since the previous snapshot
    now = 4000;
    agg.add(ev('10.0.0.2', 443, 1, 4));
    expect(agg.snapshot().byEndpoint.find((r) => r.key === '10.0.0.2:443')!.rate).toBe(2);
  });
  it('folds destinations past the cap into "other" and reports how many', () => {
    const agg = new RetransAggregator({ maxDestinations: 2 });
    for (let i = 0; i < 5; i++) agg.add(ev(`10.0.1.${i}`, 80, i, 1));
    const s = agg.snapshot();
    expect(s.byEndpoint.map((r) => r.key).sort()).toEqual(['10.0.1.0:80', '10.0.1.1:80', 'other']);
    expect(s.byEndpoint.find((r) => r.key === 'other')!.segs).toBe(3);
    expect(s.folded).toEqual({ endpoints: 3, addresses: 3 });
  });
});

describe('retrans output', () => {
  it('renders a summary table with histograms, escaping control characters', () => {
    const agg = new RetransAggregator();
    agg.add(ev('fd00::2', 443, 1, 3));
    const lines = renderSummary(agg.snapshot(), 10, true).join('\n');
    expect(lines).toContain('[fd00::2]:443');
    expect(lines).toContain('consecutive retransmits');
  });
  it('emits the documented JSON field names', () => {
    const j = eventJson(ev('10.0.0.2', 443, 1, 3, { comm: 'a\nb' }));
    for (const k of ['type', 'time', 'family', 'saddr', 'sport', 'daddr', 'dport', 'state', 'segs', 'kind']) expect(j).toHaveProperty(k);
    expect(JSON.stringify(j)).toContain('"comm":"a\\nb"');
  });
});
