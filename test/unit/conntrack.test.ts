import { describe, expect, it } from 'vitest';
import { NatResolver } from '../../src/core/nat.js';
import { parseConntrackStat, resolveNetns, describeNetns, ownNetns } from '../../src/core/ctnetlink.js';
import { ConntrackAggregator, CONNTRACK_LAYOUT, decodeConntrack, forEachRecord, netlinkCounts, recordFilter, type ConntrackEvent } from '../../src/tools/conntrack/index.js';
import { ClockMapper } from '../../src/core/record.js';
import type { CtnetlinkNetnsStats } from '../../src/core/addon.js';

const F = CONNTRACK_LAYOUT.fields;

/** A struct ct_event as bpf/conntrack.bpf.c or addon/ctnetlink.cc writes it: a DNAT'd TCP entry 10.0.0.1:41234 -> VIP 10.96.0.10:80 -> 10.1.2.3:8080. */
function record(over: { kind?: number; flags?: number; sport?: number; dport?: number; family?: number; netns?: number } = {}): DataView {
  const buf = new DataView(new ArrayBuffer(CONNTRACK_LAYOUT.size));
  const v4 = (off: number, a: number[]) => { buf.setUint8(off + 10, 0xff); buf.setUint8(off + 11, 0xff); a.forEach((b, i) => buf.setUint8(off + 12 + i, b)); };
  v4(F.orig_src[0], [10, 0, 0, 1]); v4(F.orig_dst[0], [10, 96, 0, 10]); v4(F.reply_src[0], [10, 1, 2, 3]); v4(F.reply_dst[0], [10, 0, 0, 1]);
  buf.setUint16(F.family[0], over.family ?? 2, true);
  buf.setUint16(F.orig_sport[0], over.sport ?? 41234, true); buf.setUint16(F.orig_dport[0], over.dport ?? 80, true);
  buf.setUint16(F.reply_sport[0], 8080, true); buf.setUint16(F.reply_dport[0], over.sport ?? 41234, true);
  buf.setUint8(F.protocol[0], 6); buf.setUint8(F.kind[0], over.kind ?? 2); buf.setUint8(F.tcp_state[0], 3); buf.setUint8(F.flags[0], over.flags ?? 1);
  buf.setUint32(F.netns[0], over.netns ?? 4026531840, true);
  buf.setBigUint64(F.packets[0], 6n, true); buf.setBigUint64(F.packets[0] + 8, 4n, true);
  return buf;
}
const STATES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED'];
const decode = (v: DataView): ConntrackEvent => decodeConntrack(v, 0, new ClockMapper(), STATES);

describe('decodeConntrack', () => {
  it('decodes a ct_event record: tuples, NAT flags, counters only when flagged, lifetime from start', () => {
    const e = decode(record());
    expect(e.kind).toBe('destroy');
    expect(e.orig).toEqual({ src: '10.0.0.1', dst: '10.96.0.10', sport: 41234, dport: 80 });
    expect(e.reply.src).toBe('10.1.2.3');
    expect([e.dnat, e.snat]).toEqual([true, false]);
    expect(e.tcpState).toBe('ESTABLISHED');
    expect(e.packets).toEqual([6, 4]);
    expect(e.lifetimeMs).toBeNull(); // no CT_FLAG_TSTAMP
    expect([e.netns, e.source]).toEqual([4026531840, 'bpf']);
  });
  it('marks records the addon wrote from ctnetlink (CT_FLAG_NETLINK) as such; a dump listing is not a destroy', () => {
    expect(decode(record({ flags: 1 | 4 })).source).toBe('ctnetlink');
    expect(decode(record({ kind: 3, flags: 4 })).kind).toBe('new');
  });
});

describe('records framed in batches', () => {
  it('walks [u32 length][record]... and counts records of another size', () => {
    const r = new Uint8Array(record().buffer);
    const batch = new Uint8Array(2 * (4 + r.length) + 4 + 8);
    const dv = new DataView(batch.buffer);
    dv.setUint32(0, r.length, true); batch.set(r, 4);
    dv.setUint32(4 + r.length, r.length, true); batch.set(r, 8 + r.length);
    dv.setUint32(8 + 2 * r.length, 8, true);
    const seen: number[] = [];
    expect(forEachRecord(batch.buffer, (_v, o) => seen.push(o))).toBe(1);
    expect(seen).toEqual([4, 8 + r.length]);
  });
  it('filters the original direction in user space as the BPF programs do in the kernel', () => {
    expect(recordFilter({})(record(), 0)).toBe(true);
    expect(recordFilter({ remotePort: 80 })(record(), 0)).toBe(true);
    expect(recordFilter({ remotePort: 81 })(record(), 0)).toBe(false);
    expect(recordFilter({ localPort: 41234 })(record(), 0)).toBe(true);
    expect(recordFilter({ family: 6 })(record(), 0)).toBe(false);
    expect(recordFilter({ remoteCidrs: ['10.96.0.0/16'] })(record(), 0)).toBe(true);
    expect(recordFilter({ remoteCidrs: ['10.1.0.0/16'] })(record(), 0)).toBe(false); // the backend is not the original destination
  });
});

describe('NatResolver', () => {
  it('maps a connection to its DNAT backend exactly, and a VIP to the latest backend seen', () => {
    const r = new NatResolver();
    r.add(decode(record()));
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
    const destroy = { ...decode(record()), lifetimeMs: 12000 };
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
    expect(s.pressure).toEqual([]);
  });
});

describe('ctnetlink loss accounting', () => {
  const sock = (received: number, drops: number, reliable: boolean) => ({ portid: 1, rcvbuf: 65536, reliable, received, drops });
  const ns = (o: Partial<CtnetlinkNetnsStats>): CtnetlinkNetnsStats => ({ netns: 1, closed: true, new: null, destroy: null, duplicates: 0, ignored: 0, malformed: 0, recoveredAtStop: 0, recvErrors: 0, lastError: null, ...o });
  it('NEW drops are lost; reliable DESTROY drops were retried, unreliable ones lost; summed over namespaces', () => {
    const c = netlinkCounts([
      ns({ new: sock(141, 859, false), destroy: sock(1000, 1092, true), duplicates: 2 }),
      ns({ netns: 2, new: sock(235, 765, false), destroy: sock(25, 975, false), recoveredAtStop: 3 }),
    ]);
    expect(c.received).toEqual({ new: 376, destroy: 1025 });
    expect(c.lost).toEqual({ new: 859 + 765, destroy: 975 });
    expect([c.retried, c.duplicates, c.recoveredAtStop]).toEqual([1092, 2, 3]);
  });
});

describe('namespaces and statistics', () => {
  it('sums /proc/net/stat/nf_conntrack per column over CPUs (hex), leaving out the entries copies', () => {
    const text = 'entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n' +
      '0000000a  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000001 0000000f 00000002 00000000  00000000 00000000 00000000 00000004\n' +
      '0000000a  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000011 00000000 00000000  00000000 00000000 00000000 00000000\n';
    const s = parseConntrackStat(text);
    expect(s.entries).toBeUndefined();
    expect([s.invalid, s.insert_failed, s.drop, s.early_drop, s.search_restart]).toEqual([4, 1, 32, 2, 4]);
  });
  it('resolves --netns: default and own PID are this namespace; bad values are usage errors', () => {
    const own = ownNetns();
    expect(resolveNetns([]).targets.map((t) => t.netns)).toEqual([own]);
    expect(resolveNetns([]).onlyOwn).toBe(true);
    const byPid = resolveNetns([String(process.pid)]);
    expect([byPid.onlyOwn, byPid.targets[0].netns]).toEqual([true, own]);
    expect(resolveNetns(['all']).all).toBe(true);
    expect(resolveNetns(['all']).targets[0].netns).toBe(own);
    expect(() => resolveNetns(['999999999'])).toThrow(/no process with pid 999999999/);
    expect(() => resolveNetns(['/no/such/file'])).toThrow(/no network namespace at \/no\/such\/file/);
    expect(() => resolveNetns(['/etc/hostname'])).toThrow(/not a namespace file/);
    expect(() => resolveNetns(['no-such-ip-netns-name'])).toThrow(/\/run\/netns\/no-such-ip-netns-name/);
    expect(describeNetns({ netns: own, path: '/proc/self/ns/net', name: null, pids: [1] }, own)).toBe(`${own} (this process)`);
    expect(describeNetns({ netns: 5, path: '/run/netns/a', name: 'a', pids: [7, 8] }, own)).toBe('5 (ip netns a, pid 7 +1)');
  });
});
