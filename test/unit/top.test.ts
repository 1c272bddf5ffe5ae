/** Diagnosis rules, the per-destination correlation of `netbpf top`, its grouping, sorting and rendering. */
import { describe, expect, it } from 'vitest';
import { destinationKey, parseGroupBy, serviceName, sortRows, TopAggregator } from '../../src/tools/top/index.js';
import { renderTop, sparkline } from '../../src/tools/top/index.js';
import type { ConnectEvent } from '../../src/tools/connect/index.js';
import type { RetransEvent } from '../../src/tools/retrans/index.js';
import type { DropEvent } from '../../src/tools/drops/index.js';
import type { LifeClosedEvent } from '../../src/tools/life/index.js';

describe('top grouping', () => {
  it('parses --by and rejects the rest with a usage error', () => {
    expect(parseGroupBy('addr')).toEqual({ kind: 'addr' });
    expect(parseGroupBy('cidr/24')).toEqual({ kind: 'cidr', v4: 24, v6: 64 });
    expect(parseGroupBy('cidr/16/48')).toEqual({ kind: 'cidr', v4: 16, v6: 48 });
    for (const bad of ['cidr/33', 'cidr', 'port', 'cidr/24/129']) expect(() => parseGroupBy(bad)).toThrow(/invalid --by/);
  });
  it('keys destinations by address, endpoint, network and service', () => {
    expect(destinationKey({ kind: 'addr' }, '10.1.2.3', 443)).toBe('10.1.2.3');
    expect(destinationKey({ kind: 'endpoint' }, 'fd00::1', 443)).toBe('[fd00::1]:443');
    expect(destinationKey({ kind: 'cidr', v4: 24, v6: 64 }, '10.1.2.3', 443)).toBe('10.1.2.0/24');
    expect(destinationKey({ kind: 'cidr', v4: 24, v6: 64 }, 'fd00:1:2:3:4::9', 443)).toBe('fd00:1:2:3::/64');
    expect(serviceName(443, 'https\t\t443/tcp\t\t\t# http protocol over TLS/SSL\nhttps\t\t443/udp\n')).toBe('https');
    expect(serviceName(444, 'https\t\t443/tcp\n')).toBeNull();
  });
});

// connId: the records' connection hash; here simply the client port, which names the connection in these tests.
const base = { family: 4 as const, saddr: '10.0.0.1', sport: 40000, dport: 80, pid: 1, comm: 'c', netns: 1, cgroupId: 0, synRetrans: 0, connId: 40000 };
const ok = (daddr: string, latencyUs: number, sport = 40000): ConnectEvent => ({ ...base, sport, connId: sport, daddr, time: 1, type: 'established', latencyUs });
const failed = (daddr: string, failure: 'refused' | 'timeout'): ConnectEvent => ({ ...base, daddr, time: 1, type: 'failed', failure, err: 0, error: '', elapsedUs: 1, rstReceived: failure === 'refused', beforeSyn: false });
const retr = (daddr: string, segs: number, totalRetrans: number, segsOut: number): RetransEvent => ({
  ...base, daddr, type: 'retransmit', time: 2, state: 'ESTABLISHED', kind: 'rto', caState: 'Loss', segs, totalRetrans, segsOut, retransmits: 1, srttUs: 100, err: 0,
});

describe('TopAggregator', () => {
  it('correlates connects, retransmits, lifetimes and drops per destination, with a diagnosis', () => {
    let now = 0;
    const a = new TopAggregator({ now: () => now });
    for (let i = 0; i < 4; i++) a.addConnect(ok('10.0.0.2', 1000 * (i + 1), 40000 + i));
    a.addConnect(failed('10.0.0.3', 'timeout'));
    a.addConnect(failed('10.0.0.4', 'refused'));
    a.addRetrans(retr('10.0.0.2', 5, 5, 50));
    a.addRetrans(retr('10.0.0.2', 3, 8, 60));
    // A closed connection's final counters: retransmitted 0 of 40 sent.
    const closed = { ...base, sport: 40001, connId: 40001, daddr: '10.0.0.2', time: 3, type: 'closed', direction: 'connect', established: true, totalRetrans: 0, segsOut: 40 } as unknown as LifeClosedEvent;
    a.addLife(closed);
    // A packet received from 10.0.0.2 and dropped by an nftables rule here: a GRO packet of 10 segments.
    const drop = { type: 'drop', time: 3, reason: 'NETFILTER_DROP', location: 'nft_do_chain+0x3b0', netns: 1, len: 14600, category: 'drop', direction: 'received', saddr: '10.0.0.2', sport: 80, daddr: '10.0.0.1', dport: 40000, remoteAddr: '10.0.0.2', remotePort: 80 } as DropEvent;
    a.addDrop(drop);
    a.addDrop({ ...drop, reason: 'SOCKET_CLOSE', location: '', category: 'purge' });
    // Housekeeping (the final ACK of a close) is counted apart, never as a drop.
    a.addDrop({ ...drop, reason: 'NOT_SPECIFIED', location: 'tcp_rcv_state_process+0x4c' });
    now = 2000;
    const s = a.snapshot();
    const row = s.rows.find((r) => r.key === '10.0.0.2')!;
    expect(row.connects).toMatchObject({ attempts: 4, successes: 4, failures: 0 });
    expect(row.connectMs).toEqual({ p50: 2, p99: 4 });
    expect(row.connections).toBe(4); // the retransmitting connection is 40000, the closed one 40001
    expect(row.retrans).toEqual({ segs: 8, rate: 4, ratio: 8 / 100, segsOut: 100, synSegs: 0 });
    expect(row.drops).toEqual({ total: 1, topReason: 'NETFILTER_DROP', byReason: { NETFILTER_DROP: 1 }, purges: 1, housekeeping: 1 });
    expect(row.evidence.frees).toEqual([{ reason: 'NETFILTER_DROP', location: 'nft_do_chain', netns: 1, count: 1, bytes: 14600 }]);
    expect(row.history).toEqual([9]);
    expect(row.diagnoses.map((d) => d.code)).toEqual(['local-firewall']);
    expect(s.rows.find((r) => r.key === '10.0.0.3')!.diagnoses[0].code).toBe('timeout');
    expect(s.rows.find((r) => r.key === '10.0.0.4')!.health).toBe('critical');
    expect(s.totals).toMatchObject({ destinations: 3, unhealthy: 3, connects: 6, failures: 2, retransSegs: 8, drops: 1 });
    // The next interval starts a new history bucket and a new rate.
    now = 3000;
    const s2 = a.snapshot();
    expect(s2.rows.find((r) => r.key === '10.0.0.2')!.history).toEqual([9, 0]);
    expect(s2.rows.find((r) => r.key === '10.0.0.2')!.retrans.rate).toBe(0);
  });

  it('a drop seen between two local namespaces counts for the side this host connected to', () => {
    const a = new TopAggregator();
    a.addConnect(ok('10.0.0.2', 100));
    // Dropped on input of the server side: remote (source) is the client 10.0.0.1, destination 10.0.0.2.
    a.addDrop({ type: 'drop', time: 3, reason: 'NETFILTER_DROP', location: 'nft_do_chain', netns: 1, len: 60, category: 'drop', direction: 'received', saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80, remoteAddr: '10.0.0.1', remotePort: 40000 } as DropEvent);
    const rows = a.snapshot().rows;
    expect(rows.map((r) => [r.key, r.drops.total])).toEqual([['10.0.0.2', 1]]);
  });

  it('a drop seen before any connect waits to learn its side, then counts for its remote side after the hold time', () => {
    let now = 0;
    const a = new TopAggregator({ now: () => now, dropHoldMs: 5000 });
    const syn = { type: 'drop', time: 0, reason: 'NETFILTER_DROP', location: 'nft_do_chain', netns: 1, len: 60, category: 'drop', direction: 'received', saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 80, remoteAddr: '10.0.0.1', remotePort: 40000 } as DropEvent;
    a.addDrop(syn);
    a.addDrop({ ...syn, saddr: '10.9.9.9', remoteAddr: '10.9.9.9', daddr: '10.0.0.7' });
    expect(a.snapshot().rows).toEqual([]);
    a.addConnect(failed('10.0.0.2', 'timeout'));
    now = 1000;
    expect(a.snapshot().rows.map((r) => [r.key, r.drops.total])).toEqual([['10.0.0.2', 1]]);
    now = 6000;
    expect(a.snapshot().rows.map((r) => [r.key, r.drops.total])).toEqual([['10.0.0.2', 1], ['10.9.9.9', 1]]);
  });

  it('SYN retransmits and failed handshakes are not counted as loss or connections', () => {
    const a = new TopAggregator();
    a.addConnect(failed('10.0.0.3', 'timeout'));
    a.addRetrans({ ...retr('10.0.0.3', 1, 1, 1), kind: 'syn' });
    a.addLife({ ...base, daddr: '10.0.0.3', time: 3, type: 'closed', direction: 'connect', established: false, totalRetrans: 1, segsOut: 2 } as unknown as LifeClosedEvent);
    const [row] = a.snapshot().rows;
    expect(row.retrans).toMatchObject({ segs: 0, synSegs: 1, ratio: 0 });
    expect(row.connections).toBe(0);
    expect(row.diagnoses.map((d) => d.code)).toEqual(['timeout']);
  });

  it('folds destinations past the cap into "other" and sorts it last', () => {
    const a = new TopAggregator({ maxDestinations: 2 });
    for (const d of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) a.addConnect(failed(d, 'refused'));
    a.addConnect(failed('10.0.0.1', 'refused'));
    const s = a.snapshot();
    expect(s.folded).toBe(2);
    expect(sortRows(s.rows, 'failures').map((r) => [r.key, r.connects.failures])).toEqual([['10.0.0.1', 2], ['10.0.0.2', 1], ['other', 2]]);
    expect(sortRows(s.rows, 'key').map((r) => r.key)).toEqual(['10.0.0.1', '10.0.0.2', 'other']);
  });
});

describe('top rendering', () => {
  it('draws a sparkline scaled to the row', () => {
    expect(sparkline([0, 1, 2, 4, 8])).toBe('·▁▂▄█');
    expect(sparkline([0, 0])).toBe('··');
  });
  it('prints a row per destination and a diagnosis line under unhealthy ones', () => {
    const a = new TopAggregator();
    a.addConnect(failed('10.0.0.3', 'timeout'));
    a.addConnect(ok('10.0.0.2', 1500));
    const s = a.snapshot();
    const lines = renderTop({ ...s, rows: sortRows(s.rows, 'health') }, {}, { top: 10, sort: 'health' });
    const i = lines.findIndex((l) => l.startsWith('DESTINATION'));
    expect(lines[i + 1]).toMatch(/^10\.0\.0\.3\s+critical/);
    expect(lines[i + 2]).toBe('  -> 10.0.0.3: timing out: filtered or host down (1 of 1 connects got no answer to their SYNs)');
    expect(lines[i + 3]).toMatch(/^10\.0\.0\.2\s+ok\s+1\s+1\s+0\s+0\s+0\s+0\s+1\.50\s+1\.50/);
  });
});
