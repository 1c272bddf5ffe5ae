import { describe, expect, it } from 'vitest';
import { NatResolver, parseConntrackLine } from '../../src/core/nat.js';
import { ConntrackAggregator, CONNTRACK_LAYOUT, decodeConntrack, eventFromCtLine } from '../../src/tools/conntrack.js';
import { ClockMapper } from '../../src/core/record.js';

const DESTROY = '[1700000000.250000]\t [DESTROY] ipv4     2 tcp      6 src=10.0.0.1 dst=10.96.0.10 sport=41234 dport=80 packets=6 bytes=400 src=10.1.2.3 dst=10.0.0.1 sport=8080 dport=41234 packets=4 bytes=300 [ASSURED] mark=7 zone=3 delta-time=12 id=3735928559';
const LISTED = 'ipv4     2 tcp      6 119 TIME_WAIT src=10.77.0.1 dst=10.77.9.9 sport=44884 dport=80 packets=5 bytes=268 src=10.77.0.1 dst=10.77.0.1 sport=8080 dport=44884 packets=3 bytes=166 [ASSURED] mark=0 delta-time=0 use=1';

describe('parseConntrackLine', () => {
  it('reads an extended DESTROY event with timestamp, both tuples, counters, zone, mark, lifetime and id', () => {
    const l = parseConntrackLine(DESTROY)!;
    expect(l.event).toBe('destroy');
    expect(l.time).toBe(1700000000250);
    expect(l.protocol).toBe(6);
    expect(l.orig).toEqual({ src: '10.0.0.1', dst: '10.96.0.10', sport: 41234, dport: 80 });
    expect(l.reply).toEqual({ src: '10.1.2.3', dst: '10.0.0.1', sport: 8080, dport: 41234 });
    expect(l.packets).toEqual([6, 4]);
    expect(l.bytes).toEqual([400, 300]);
    expect([l.mark, l.zone, l.lifetimeS, l.id]).toEqual([7, 3, 12, 3735928559]);
    expect(l.flags).toEqual(['ASSURED']);
  });
  it('reads a conntrack -L line with its TCP state and ignores non-entry lines', () => {
    const l = parseConntrackLine(LISTED)!;
    expect(l.event).toBeNull();
    expect(l.tcpState).toBe('TIME_WAIT');
    expect(l.reply.sport).toBe(8080);
    expect(parseConntrackLine('conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.')).toBeNull();
    expect(parseConntrackLine('')).toBeNull();
  });
});

describe('NatResolver', () => {
  it('maps a connection to its DNAT backend exactly, and a VIP to the latest backend seen', () => {
    const r = new NatResolver();
    r.add(parseConntrackLine(DESTROY)!);
    expect(r.resolve(6, '10.0.0.1', 41234, '10.96.0.10', 80)).toEqual({ daddr: '10.1.2.3', dport: 8080 });
    expect(r.resolve(6, '10.0.0.9', 5555, '10.96.0.10', 80)).toEqual({ daddr: '10.1.2.3', dport: 8080 });
    expect(r.resolve(17, '10.0.0.1', 41234, '10.96.0.10', 80)).toBeNull();
  });
  it('ignores entries without destination NAT and stays bounded', () => {
    const r = new NatResolver(2);
    r.add({ protocol: 6, orig: { src: 'a', dst: 'b', sport: 1, dport: 2 }, reply: { src: 'b', dst: 'a', sport: 2, dport: 1 } });
    expect(r.size).toBe(0);
    for (let i = 0; i < 5; i++) r.add({ protocol: 6, orig: { src: 'a', dst: 'v', sport: i, dport: 80 }, reply: { src: 'r', dst: 'a', sport: 8080, dport: i } });
    expect(r.size).toBe(2);
  });
});

describe('ConntrackAggregator', () => {
  it('groups by the real backend with VIPs, new/destroy counts, lifetimes and states', () => {
    let t = 0;
    const agg = new ConntrackAggregator({ now: () => t });
    const destroy = eventFromCtLine(parseConntrackLine(DESTROY)!);
    const created = { ...destroy, kind: 'new' as const, lifetimeMs: null };
    agg.addAll([created, created, destroy]);
    t = 2000;
    const s = agg.snapshot();
    expect(s.totals).toEqual({ created: 2, destroyed: 1, dnat: 2, snat: 0 });
    const row = s.byDestination[0];
    expect(row.key).toBe('10.1.2.3:8080');
    expect(row.via).toEqual(['10.96.0.10:80']);
    expect([row.created, row.destroyed, row.open, row.createdRate]).toEqual([2, 1, 1, 1]);
    expect(row.lifetimeMs.count).toBe(1);
    expect(row.lifetimeMs.sum).toBe(12000);
    expect(row.packets).toBe(10);
  });
});

describe('decodeConntrack', () => {
  it('decodes a ct_event record: tuples, NAT flags, counters only when flagged, lifetime from start', () => {
    const F = CONNTRACK_LAYOUT.fields;
    const buf = new DataView(new ArrayBuffer(CONNTRACK_LAYOUT.size));
    const v4 = (off: number, a: number[]) => { buf.setUint8(off + 10, 0xff); buf.setUint8(off + 11, 0xff); a.forEach((b, i) => buf.setUint8(off + 12 + i, b)); };
    v4(F.orig_src[0], [10, 0, 0, 1]); v4(F.orig_dst[0], [10, 96, 0, 10]); v4(F.reply_src[0], [10, 1, 2, 3]); v4(F.reply_dst[0], [10, 0, 0, 1]);
    buf.setUint16(F.family[0], 2, true);
    buf.setUint16(F.orig_sport[0], 41234, true); buf.setUint16(F.orig_dport[0], 80, true);
    buf.setUint16(F.reply_sport[0], 8080, true); buf.setUint16(F.reply_dport[0], 41234, true);
    buf.setUint8(F.protocol[0], 6); buf.setUint8(F.kind[0], 2); buf.setUint8(F.tcp_state[0], 3); buf.setUint8(F.flags[0], 1);
    buf.setBigUint64(F.packets[0], 5n, true); buf.setBigUint64(F.packets[0] + 8, 4n, true);
    const e = decodeConntrack(buf, 0, new ClockMapper(), ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED']);
    expect(e.kind).toBe('destroy');
    expect(e.orig).toEqual({ src: '10.0.0.1', dst: '10.96.0.10', sport: 41234, dport: 80 });
    expect(e.reply.src).toBe('10.1.2.3');
    expect([e.dnat, e.snat]).toEqual([true, false]);
    expect(e.tcpState).toBe('ESTABLISHED');
    expect(e.packets).toEqual([5, 4]);
    expect(e.lifetimeMs).toBeNull(); // no CT_FLAG_TSTAMP
  });
});
