/** Pure logic of netbpf drops: record decoding from the shared layout, reason names, categories, the
 * aggregator, kernel symbol lookup and the kernel-side constants. Runs anywhere (no BPF). */
import { describe, expect, it } from 'vitest';
import {
  decodeDrop, dropCategory, dropsConstants, DropReasons, DropsAggregator, DROPS_LAYOUT, DROP_FLAGS, DROP_REASON_UNAVAILABLE,
  type DropDecodeContext, type DropEvent,
} from '../../src/tools/drops/index.js';
import { Kallsyms, kernelAddressKey, kernelAddressKeyFromHex } from '../../src/core/kallsyms.js';
import { ClockMapper } from '../../src/core/record.js';
import { NetbpfError } from '../../src/core/errors.js';

const F = DROPS_LAYOUT.fields;
/** A kernel enum as BTF gives it, numbered like 6.18 (values differ on other kernels). */
const ENUM: Array<[string, number]> = [
  ['SKB_NOT_DROPPED_YET', 0], ['SKB_CONSUMED', 1], ['SKB_DROP_REASON_NOT_SPECIFIED', 2], ['SKB_DROP_REASON_NO_SOCKET', 3],
  ['SKB_DROP_REASON_SOCKET_CLOSE', 4], ['SKB_DROP_REASON_NETFILTER_DROP', 12], ['SKB_DROP_REASON_QUEUE_PURGE', 104], ['SKB_DROP_REASON_MAX', 128],
];
const reasons = new DropReasons(ENUM);

interface Rec {
  family?: number; saddr?: number[]; daddr?: number[]; sport?: number; dport?: number; l4?: number; tcpFlags?: number;
  state?: number; flags?: number; reason?: number; len?: number; location?: bigint; stackId?: number; netns?: number;
}

/** Builds one record exactly as bpf/drops.h lays it out (little-endian). */
function record(r: Rec): DataView {
  const buf = new ArrayBuffer(DROPS_LAYOUT.size);
  const v = new DataView(buf);
  const b = new Uint8Array(buf);
  v.setBigUint64(F.ts_ns[0], 1_000_000_000n, true);
  v.setBigUint64(F.location[0], r.location ?? 0n, true);
  const v4 = (a: number[]) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a];
  if (r.saddr) b.set(r.saddr.length === 4 ? v4(r.saddr) : r.saddr, F.saddr[0]);
  if (r.daddr) b.set(r.daddr.length === 4 ? v4(r.daddr) : r.daddr, F.daddr[0]);
  v.setUint32(F.netns[0], r.netns ?? 4026531840, true);
  v.setUint32(F.reason[0], r.reason ?? 3, true);
  v.setUint32(F.len[0], r.len ?? 60, true);
  v.setInt32(F.stack_id[0], r.stackId ?? -1, true);
  v.setUint16(F.l3_proto[0], 0x0800, true);
  v.setUint16(F.family[0], r.family ?? 2, true);
  v.setUint16(F.sport[0], r.sport ?? 0, true);
  v.setUint16(F.dport[0], r.dport ?? 0, true);
  v.setUint8(F.l4_proto[0], r.l4 ?? 6);
  v.setUint8(F.tcp_flags[0], r.tcpFlags ?? 0);
  v.setUint8(F.state[0], r.state ?? 0);
  v.setUint8(F.flags[0], r.flags ?? DROP_FLAGS.DROP_F_HEADERS);
  return v;
}

const symbols = new Map<bigint, string>([[0xffffffff81a00010n, 'tcp_v4_rcv+0x10'], [0xffffffff81b00020n, 'udp_destruct_common+0x20'], [0xffffffff81c00000n, 'nft_do_chain+0x0']]);
const ctx: DropDecodeContext = {
  clock: new ClockMapper(),
  reasons,
  symbolize: (hi, lo) => symbols.get((BigInt(hi) << 32n) | BigInt(lo)) ?? '',
  stack: (id) => (id === 7 ? ['sk_skb_reason_drop+0x90', 'tcp_v4_rcv+0x91'] : []),
};

describe('decodeDrop (synthetic records built from DROPS_LAYOUT)', () => {
  it('decodes a received TCP SYN to a closed port: remote side is the source, flags and reason by name', () => {
    const e = decodeDrop(record({ saddr: [10, 0, 0, 1], daddr: [10, 0, 0, 2], sport: 40000, dport: 80, tcpFlags: 0x02, flags: DROP_FLAGS.DROP_F_HEADERS | DROP_FLAGS.DROP_F_RECEIVED, reason: 3, len: 60, location: 0xffffffff81a00010n }), 0, ctx);
    expect(e).toMatchObject({
      type: 'drop', family: 4, proto: 'tcp', saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80,
      direction: 'received', remoteAddr: '10.0.0.1', remotePort: 40000, addressSource: 'packet',
      tcpFlags: 'SYN', state: null, reason: 'NO_SOCKET', reasonCode: 3, category: 'drop', len: 60, location: 'tcp_v4_rcv+0x10', stack: [],
    });
  });

  it('orients a packet built on this host toward its destination and reads the socket state', () => {
    const e = decodeDrop(record({ saddr: [10, 0, 0, 2], daddr: [192, 0, 2, 9], sport: 5000, dport: 443, tcpFlags: 0x18, state: 1, flags: DROP_FLAGS.DROP_F_HEADERS | DROP_FLAGS.DROP_F_SOCKET, reason: 12 }), 0, ctx);
    expect(e).toMatchObject({ direction: 'sent', remoteAddr: '192.0.2.9', remotePort: 443, tcpFlags: 'PSH|ACK', state: 'ESTABLISHED', reason: 'NETFILTER_DROP' });
  });

  it('takes local/remote from the socket tuple when the skb had no headers, even if it was received', () => {
    const e = decodeDrop(record({ saddr: [10, 0, 0, 2], daddr: [10, 0, 0, 1], sport: 22, dport: 51000, flags: DROP_FLAGS.DROP_F_SOCK_TUPLE | DROP_FLAGS.DROP_F_SOCKET | DROP_FLAGS.DROP_F_RECEIVED, state: 8 }), 0, ctx);
    expect(e).toMatchObject({ addressSource: 'socket', remoteAddr: '10.0.0.1', remotePort: 51000, tcpFlags: '', state: 'CLOSE_WAIT' });
  });

  it('yields nulls ("unknown"), never garbage, for a packet whose headers could not be parsed', () => {
    const e = decodeDrop(record({ family: 0, l4: 0, flags: 0, saddr: [1, 2, 3, 4], sport: 99 }), 0, ctx);
    expect(e).toMatchObject({ family: null, proto: null, saddr: null, daddr: null, sport: null, dport: null, remoteAddr: null, addressSource: 'none', tcpFlags: '' });
  });

  it('drops ports (not addresses) for IP fragments and protocols without ports', () => {
    const frag = decodeDrop(record({ saddr: [10, 0, 0, 1], daddr: [10, 0, 0, 2], sport: 1, dport: 2, l4: 17, flags: DROP_FLAGS.DROP_F_HEADERS | DROP_FLAGS.DROP_F_NO_PORTS }), 0, ctx);
    expect(frag).toMatchObject({ proto: 'udp', saddr: '10.0.0.1', sport: null, dport: null });
    const icmp = decodeDrop(record({ saddr: [10, 0, 0, 1], daddr: [10, 0, 0, 2], l4: 1 }), 0, ctx);
    expect(icmp).toMatchObject({ proto: 'icmp', sport: null, dport: null });
  });

  it('decodes IPv6 addresses in RFC 5952 form', () => {
    const s = [0xfd, 0, 0, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const e = decodeDrop(record({ family: 10, saddr: s, daddr: [0xfd, 0, 0, 0x31, ...Array(11).fill(0), 2], sport: 1, dport: 2, flags: DROP_FLAGS.DROP_F_HEADERS | DROP_FLAGS.DROP_F_RECEIVED }), 0, ctx);
    expect(e).toMatchObject({ family: 6, saddr: 'fd00:31::1', daddr: 'fd00:31::2', remoteAddr: 'fd00:31::1' });
  });

  it('prints a reason value the kernel enum does not name as its number, and a missing reason as UNAVAILABLE/-1', () => {
    expect(decodeDrop(record({ reason: 999 }), 0, ctx)).toMatchObject({ reason: '999', reasonCode: 999, category: 'drop' });
    expect(decodeDrop(record({ reason: 0x10001 }), 0, ctx).reason).toBe('65537');
    expect(decodeDrop(record({ reason: DROP_REASON_UNAVAILABLE }), 0, ctx)).toMatchObject({ reason: 'UNAVAILABLE', reasonCode: -1 });
  });

  it('resolves the stack id through the stack reader, and decodes at an offset inside a batch', () => {
    const one = record({ stackId: 7, reason: 12 });
    const batch = new Uint8Array(8 + DROPS_LAYOUT.size);
    batch.set(new Uint8Array(one.buffer), 8);
    const e: DropEvent = decodeDrop(new DataView(batch.buffer), 8, ctx);
    expect(e.reason).toBe('NETFILTER_DROP');
    expect(e.stack).toEqual(['sk_skb_reason_drop+0x90', 'tcp_v4_rcv+0x91']);
  });
});

describe('DropReasons (names from the kernel enum)', () => {
  it('strips the SKB_DROP_REASON_ prefix and never names MAX', () => {
    expect(reasons.name(12)).toBe('NETFILTER_DROP');
    expect(reasons.name(128)).toBe('128');
    expect(reasons.names()).toEqual(['NOT_SPECIFIED', 'NO_SOCKET', 'SOCKET_CLOSE', 'NETFILTER_DROP', 'QUEUE_PURGE']);
  });

  it('uses the running kernel numbering: the same name maps to another value on another kernel', () => {
    const k61 = new DropReasons([['SKB_DROP_REASON_NOT_SPECIFIED', 1], ['SKB_DROP_REASON_NO_SOCKET', 2]]);
    expect(k61.name(2)).toBe('NO_SOCKET');
    expect(reasons.name(2)).toBe('NOT_SPECIFIED');
  });

  it('resolves --reason names case-insensitively, with or without the prefix', () => {
    expect(reasons.resolve(['netfilter_drop', 'SKB_DROP_REASON_NO_SOCKET'])).toEqual([12, 3]);
  });

  it('rejects an unknown reason name with a usage error that lists valid ones', () => {
    let err: unknown;
    try { reasons.resolve(['NOPE']); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(NetbpfError);
    expect((err as NetbpfError).kind).toBe('usage');
    expect((err as NetbpfError).message).toMatch(/unknown drop reason 'NOPE'.*NO_SOCKET.*NETFILTER_DROP/);
  });

  it('reports drop reasons unavailable on a kernel without the enum, and refuses --reason there', () => {
    const none = new DropReasons(null);
    expect(none.available).toBe(false);
    expect(none.name(3)).toBe('3');
    expect(() => none.resolve(['NO_SOCKET'])).toThrow(/no drop reasons/);
  });
});

describe('dropCategory', () => {
  it('separates socket-close purges from packets lost on the way', () => {
    expect(dropCategory('SOCKET_CLOSE', '')).toBe('purge');
    expect(dropCategory('QUEUE_PURGE', 'skb_queue_purge_reason+0x1')).toBe('purge');
    expect(dropCategory('NOT_SPECIFIED', 'udp_destruct_common+0xb9')).toBe('purge');
    expect(dropCategory('NOT_SPECIFIED', 'ip6_mc_input+0x10')).toBe('drop');
    expect(dropCategory('NETFILTER_DROP', 'udp_destruct_common+0xb9')).toBe('drop');
  });
  it('without drop reasons (kernels < 5.17) tells purges apart by the freeing function alone', () => {
    expect(dropCategory('UNAVAILABLE', 'udp_destruct_sock+0x7a')).toBe('purge');
    expect(dropCategory('UNAVAILABLE', 'udp_destruct_common+0x51')).toBe('purge'); // Debian's 5.10.262 (stable rename)
    expect(dropCategory('UNAVAILABLE', 'skb_queue_purge+0x1c')).toBe('purge');
    expect(dropCategory('UNAVAILABLE', 'tcp_disconnect+0x2d4')).toBe('purge'); // its queues emptied (QUEUE_PURGE later)
    expect(dropCategory('UNAVAILABLE', 'nf_hook_slow+0x90')).toBe('drop');
    expect(dropCategory('UNAVAILABLE', '')).toBe('drop');
  });
});

describe('DropsAggregator', () => {
  const ev = (over: Partial<DropEvent>): DropEvent => ({
    type: 'drop', time: 1000, reason: 'NO_SOCKET', reasonCode: 3, category: 'drop', family: 4, l3Proto: 0x800, proto: 'tcp', protoNum: 6,
    saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80, direction: 'received', remoteAddr: '10.0.0.1', remotePort: 40000,
    addressSource: 'packet', tcpFlags: 'SYN', state: null, len: 60, netns: 1, ifindex: 2, location: '', stack: [], ...over,
  });

  it('counts per remote endpoint x reason, per remote address and per destination, with shares and size histograms', () => {
    let now = 0;
    const agg = new DropsAggregator({ now: () => now });
    for (let i = 0; i < 3; i++) agg.add(ev({ len: 60 }));
    agg.add(ev({ reason: 'NETFILTER_DROP', reasonCode: 12, len: 1500 }));
    agg.add(ev({ remotePort: 40001, sport: 40001, len: 100 }));
    agg.add(ev({ reason: 'SOCKET_CLOSE', reasonCode: 4, category: 'purge', len: 500 }));
    now = 2000;
    const s = agg.snapshot();
    expect(s.totals).toEqual({ events: 6, drops: 5, purges: 1 });
    const top = s.byEndpoint[0];
    expect(top).toMatchObject({ key: '10.0.0.1:40000 NO_SOCKET', addr: '10.0.0.1', port: 40000, reason: 'NO_SOCKET', count: 3, rate: 1.5, avgRate: 1.5, share: 3 / 5, bytes: 180 });
    expect(top.histograms.len).toMatchObject({ unit: 'bytes', count: 3, buckets: [{ low: 32, high: 63, count: 3 }] });
    expect(s.byAddress.find((r) => r.key === '10.0.0.1 NO_SOCKET')?.count).toBe(4);
    expect(s.byDestination.find((r) => r.key === '10.0.0.2:80 NO_SOCKET')?.count).toBe(4);
    const purge = s.byReason.find((r) => r.reason === 'SOCKET_CLOSE');
    expect(purge).toMatchObject({ category: 'purge', count: 1, share: 1 });
    expect(s.byReason.find((r) => r.reason === 'NO_SOCKET')?.share).toBe(4 / 5);
  });

  it('rates cover only the time since the previous snapshot', () => {
    let now = 0;
    const agg = new DropsAggregator({ now: () => now });
    agg.add(ev({}));
    now = 1000;
    agg.snapshot();
    agg.add(ev({})); agg.add(ev({}));
    now = 3000;
    expect(agg.snapshot().byEndpoint[0]).toMatchObject({ count: 3, rate: 1, avgRate: 1 });
  });

  it('keys unknown addresses as "unknown" and folds destinations past the cap into "other"', () => {
    const agg = new DropsAggregator({ maxDestinations: 2 });
    agg.add(ev({ remoteAddr: null, remotePort: null, saddr: null, daddr: null, sport: null, dport: null }));
    for (let i = 0; i < 4; i++) agg.add(ev({ remoteAddr: `10.0.1.${i}`, daddr: `10.0.2.${i}` }));
    const s = agg.snapshot();
    expect(s.byEndpoint.map((r) => r.key)).toContain('unknown NO_SOCKET');
    expect(s.byEndpoint.find((r) => r.key === 'other')?.count).toBe(3);
    expect(s.folded.endpoints).toBe(3);
  });
});

describe('Kallsyms', () => {
  const text = [
    'ffffffff81000000 T _stext',
    'ffffffff81a00000 T tcp_v4_rcv',
    'ffffffff81a00800 t tcp_v4_fill_cb',
    'ffffffff81c00000 D some_data',
    'ffffffffc0a00000 t nft_do_chain\t[nf_tables]',
    '0000000000000000 A fixed_percpu_data',
  ].join('\n');
  const k = new Kallsyms(text);

  it('keeps text symbols only and finds the function containing an address by binary search', () => {
    expect(k.size).toBe(4);
    expect(k.lookup(kernelAddressKeyFromHex('ffffffff81a00010'))).toEqual({ name: 'tcp_v4_rcv', offset: 16 });
    expect(k.symbolize(kernelAddressKeyFromHex('ffffffff81a00900'))).toBe('tcp_v4_fill_cb+0x100');
    expect(k.symbolize(kernelAddressKeyFromHex('ffffffffc0a00004'))).toBe('nft_do_chain [nf_tables]+0x4');
  });

  it('keeps 64-bit kernel addresses exact and leaves user/zero addresses unnamed', () => {
    expect(kernelAddressKey(0xffffffff, 0x81a00010)).toBe(kernelAddressKeyFromHex('ffffffff81a00010'));
    expect(kernelAddressKey(0xffffffff, 0x81a00011) - kernelAddressKey(0xffffffff, 0x81a00010)).toBe(1);
    expect(kernelAddressKey(0, 0x1000)).toBe(-1);
    expect(k.symbolize(0)).toBe('');
  });
});

describe('dropsConstants', () => {
  it('sets the TCP-only scope unless --all, and one bit per --reason value', () => {
    const c = dropsConstants({ reasons: ['NO_SOCKET', 'QUEUE_PURGE'] }, reasons);
    expect(c.filter_l4_proto[0]).toBe(6);
    expect(c.filter_reason_count.readUInt32LE(0)).toBe(2);
    const words = [0, 1].map((i) => c.filter_reasons.readBigUInt64LE(i * 8));
    expect(words[0]).toBe(1n << 3n);
    expect(words[1]).toBe(1n << BigInt(104 - 64));
    expect(dropsConstants({ all: true }, reasons).filter_l4_proto[0]).toBe(0);
  });
});
