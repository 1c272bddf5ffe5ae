/** life and connect: decoding synthetic records built from the layouts, failure classes, aggregation,
 * tcplife formatting and command-line flags. No kernel needed. */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import {
  CONNECT_LAYOUT, ConnectAggregator, LIFE_LAYOUT, LifeAggregator, Reservoir, classifyFailure, closeReason,
  decodeConnect, decodeLife, type ConnectEvent, type LifeClosedEvent, type LifeEvent,
} from '../../src/index.js';
import { ClockMapper } from '../../src/core/record.js';
import { csvHeader, csvLine, lifeHeader, lifeLine } from '../../src/tools/life/index.js';
import { connectLine } from '../../src/tools/connect/index.js';
import { LIFE_FLAGS } from '../../src/tools/life/bpf.gen.js';

const { LIFE_FIN_RECEIVED, LIFE_SYN_ACKED, LIFE_FIN_ACKED } = LIFE_FLAGS;
import { main } from '../../src/cli/main.js';

const E = constants.errno;
type Fields = Record<string, readonly [number, number]>;

function put(view: DataView, fields: Fields, name: string, value: number | bigint | Uint8Array | string): void {
  const [off, size] = fields[name];
  if (value instanceof Uint8Array) { new Uint8Array(view.buffer).set(value, off); return; }
  if (typeof value === 'string') { new Uint8Array(view.buffer).set(new TextEncoder().encode(value), off); return; }
  if (size === 8) view.setBigUint64(off, BigInt(value), true);
  else if (size === 4) view.setInt32(off, Number(value), true);
  else if (size === 2) view.setUint16(off, Number(value), true);
  else view.setUint8(off, Number(value));
}

const v4 = (a: string) => { const b = new Uint8Array(16); b[10] = 0xff; b[11] = 0xff; a.split('.').forEach((x, i) => { b[12 + i] = Number(x); }); return b; };

function lifeRecord(over: Record<string, number | bigint | Uint8Array | string> = {}): DataView {
  const view = new DataView(new ArrayBuffer(LIFE_LAYOUT.size));
  const base = {
    ts_ns: 3_000_000_000n, birth_ns: 1_000_000_000n, established_ns: 1_000_100_000n, cgroup_id: 7n,
    bytes_acked: 20002n, bytes_received: 3001n, saddr: v4('10.0.0.1'), daddr: v4('10.0.0.2'), netns: 4026531840,
    pid: 4242, srtt_us: 1500, total_retrans: 3, segs_out: 20, segs_in: 12, sk_err: 0, family: 2, sport: 40000,
    // flags as bpf/life.bpf.c sets them for this close: FIN received, our SYN and FIN acknowledged.
    dport: 443, kind: 2, direction: 1, old_state: 5 /* FIN_WAIT2 */, flags: LIFE_FIN_RECEIVED | LIFE_SYN_ACKED | LIFE_FIN_ACKED, owner_source: 1, comm: 'curl',
  };
  for (const [k, v] of Object.entries({ ...base, ...over })) put(view, LIFE_LAYOUT.fields, k, v);
  return view;
}

function connectRecord(over: Record<string, number | bigint | Uint8Array | string> = {}): DataView {
  const view = new DataView(new ArrayBuffer(CONNECT_LAYOUT.size));
  const base = {
    ts_ns: 2_000_250_000n, start_ns: 2_000_000_000n, cgroup_id: 1n, saddr: v4('10.0.0.1'), daddr: v4('10.0.0.9'),
    netns: 1, pid: 99, err: 0, syn_retrans: 0, family: 2, sport: 40001, dport: 80, kind: 1, flags: 0, comm: 'wget',
  };
  for (const [k, v] of Object.entries({ ...base, ...over })) put(view, CONNECT_LAYOUT.fields, k, v);
  return view;
}

const clock = new ClockMapper();

describe('life decoding', () => {
  it('decodes a closed record: payload bytes without SYN/FIN, duration, owner, reason', () => {
    const e = decodeLife(lifeRecord(), 0, clock) as LifeClosedEvent;
    expect(e).toMatchObject({
      type: 'closed', family: 4, saddr: '10.0.0.1', sport: 40000, daddr: '10.0.0.2', dport: 443, direction: 'connect',
      pid: 4242, comm: 'curl', ownerSource: 'connect', txBytes: 20000, rxBytes: 3000, bytesAcked: 20002, bytesReceived: 3001,
      totalRetrans: 3, srttUs: 1500, established: true, closedFrom: 'FIN_WAIT2', reason: 'fin', netns: 4026531840, cgroupId: 7,
    });
    expect(e.durationMs).toBe(2000);
  });

  it('an accepted connection has no SYN in bytes_acked; a failed connect has no bytes at all', () => {
    const acc = decodeLife(lifeRecord({ direction: 2, bytes_acked: 3001n, bytes_received: 20001n, old_state: 9 /* LAST_ACK */, flags: LIFE_FIN_RECEIVED | LIFE_FIN_ACKED }), 0, clock) as LifeClosedEvent;
    expect([acc.txBytes, acc.rxBytes]).toEqual([3000, 20000]);
    const failed = decodeLife(lifeRecord({ established_ns: 0n, bytes_acked: 0n, bytes_received: 0n, old_state: 2, flags: 0, sk_err: E.ECONNREFUSED }), 0, clock) as LifeClosedEvent;
    expect(failed).toMatchObject({ txBytes: 0, rxBytes: 0, established: false, reason: 'failed', error: 'ECONNREFUSED', closedFrom: 'SYN_SENT' });
  });

  it('decodes an established record with the handshake time', () => {
    const e = decodeLife(lifeRecord({ kind: 1, ts_ns: 1_000_100_000n, bytes_acked: 1n, bytes_received: 0n, flags: LIFE_SYN_ACKED }), 0, clock);
    expect(e).toMatchObject({ type: 'established', txBytes: 0, rxBytes: 0 });
    expect(e.type === 'established' && e.handshakeMs).toBeCloseTo(0.1);
  });

  it('classifies close reasons: resets beat FIN, timeouts are ETIMEDOUT, never-established is failed', () => {
    expect(closeReason(true, 0, 0)).toBe('fin');
    expect(closeReason(true, 0, 2)).toBe('reset-received');
    expect(closeReason(true, E.ECONNRESET, 0)).toBe('reset-received');
    expect(closeReason(true, 0, 1)).toBe('reset-sent');
    expect(closeReason(true, E.ETIMEDOUT, 0)).toBe('timeout');
    expect(closeReason(true, E.EHOSTUNREACH, 0)).toBe('error');
    expect(closeReason(false, 0, 0)).toBe('failed');
  });
});

describe('connect decoding', () => {
  it('decodes an established attempt with its latency', () => {
    const e = decodeConnect(connectRecord(), 0, clock);
    expect(e).toMatchObject({ type: 'established', daddr: '10.0.0.9', dport: 80, pid: 99, comm: 'wget', latencyUs: 250 });
  });

  it('classifies failures by errno and flags', () => {
    expect(decodeConnect(connectRecord({ kind: 2, err: E.ECONNREFUSED, flags: 1 }), 0, clock)).toMatchObject({ type: 'failed', failure: 'refused', rstReceived: true, error: 'ECONNREFUSED' });
    expect(decodeConnect(connectRecord({ kind: 2, err: E.EHOSTUNREACH, flags: 2 }), 0, clock)).toMatchObject({ failure: 'unreachable', beforeSyn: true });
    expect(classifyFailure(E.ETIMEDOUT)).toBe('timeout');
    expect(classifyFailure(E.ENETUNREACH)).toBe('unreachable');
    expect(classifyFailure(0, 1)).toBe('refused');
    expect(classifyFailure(0)).toBe('aborted');
    expect(classifyFailure(E.EADDRNOTAVAIL)).toBe('other');
  });
});

const closedEvent = (over: Partial<LifeClosedEvent>): LifeClosedEvent => ({
  ...(decodeLife(lifeRecord(), 0, clock) as LifeClosedEvent), ...over,
});

describe('LifeAggregator', () => {
  it('sums per destination, keys accepted connections by local port, and counts still-open ones', () => {
    const agg = new LifeAggregator({ now: () => 0 });
    const est = (over: Partial<LifeEvent>): LifeEvent => ({ ...decodeLife(lifeRecord({ kind: 1, flags: LIFE_SYN_ACKED }), 0, clock), ...over } as LifeEvent);
    agg.addAll([
      est({}), closedEvent({ durationMs: 3, totalRetrans: 0 }),
      est({}), closedEvent({ durationMs: 100, totalRetrans: 4, reason: 'reset-received' }),
      est({}), // still open
      est({ direction: 'accept', daddr: '10.0.0.5', dport: 5555, sport: 8080 }),
      closedEvent({ direction: 'accept', daddr: '10.0.0.5', dport: 5555, sport: 8080, txBytes: 10, rxBytes: 20 }),
    ]);
    const s = agg.snapshot();
    const out = s.byDestination.find((r) => r.key === '10.0.0.2:443')!;
    expect(out).toMatchObject({ connections: 2, established: 3, open: 1, txBytes: 40000, rxBytes: 6000, totalRetrans: 4, retransPerConnection: 2 });
    expect(out.reasons).toMatchObject({ fin: 1, 'reset-received': 1 });
    expect(out.histograms.durationMs.buckets.map((b) => [b.low, b.count]).filter(([, c]) => c)).toEqual([[2, 1], [64, 1]]);
    const acc = s.byDestination.find((r) => r.key === '10.0.0.5 -> :8080')!;
    expect(acc).toMatchObject({ direction: 'accept', connections: 1, open: 0, txBytes: 10, rxBytes: 20 });
    expect(s.totals).toMatchObject({ connections: 3, established: 4, open: 1 });
  });

  it('folds destinations past the cap into "other"', () => {
    const agg = new LifeAggregator({ maxDestinations: 1 });
    agg.add(closedEvent({ daddr: '10.0.0.2' }));
    agg.add(closedEvent({ daddr: '10.0.0.3' }));
    const s = agg.snapshot();
    expect(s.byDestination.map((r) => r.key).sort()).toEqual(['10.0.0.2:443', 'other']);
    expect(s.folded.destinations).toBe(1);
  });
});

describe('ConnectAggregator', () => {
  it('counts attempts, classes and exact quantiles while the reservoir holds every value', () => {
    const agg = new ConnectAggregator();
    const ok = (us: number): ConnectEvent => ({ ...(decodeConnect(connectRecord(), 0, clock)), latencyUs: us } as ConnectEvent);
    for (let i = 1; i <= 100; i++) agg.add(ok(i * 10));
    agg.add(decodeConnect(connectRecord({ kind: 2, err: E.ECONNREFUSED }), 0, clock));
    agg.add(decodeConnect(connectRecord({ kind: 2, err: E.ETIMEDOUT, syn_retrans: 2 }), 0, clock));
    const [r] = agg.snapshot().byEndpoint;
    expect(r).toMatchObject({ key: '10.0.0.9:80', attempts: 102, successes: 100, failures: 2, synRetrans: 2 });
    expect(r.byClass).toMatchObject({ refused: 1, timeout: 1, unreachable: 0 });
    expect(r.errors).toEqual({ ECONNREFUSED: 1, ETIMEDOUT: 1 });
    expect(r.latencyUs).toMatchObject({ p50: 500, p99: 990, max: 1000, exact: true });
    expect(r.histograms.latencyUs.count).toBe(100);
  });

  it('Reservoir stays bounded and approximately right past its capacity', () => {
    const res = new Reservoir(100, () => 0.5);
    for (let i = 1; i <= 1000; i++) res.add(i);
    expect(res.exact).toBe(false);
    expect(res.count).toBe(1000);
    expect(res.quantile(1)).toBeLessThanOrEqual(1000);
  });
});

describe('life formatting', () => {
  const e = closedEvent({ time: new Date(2024, 0, 1, 12, 0, 0).getTime(), comm: 'a\u001b[2Jverylongname' });
  it('prints tcplife columns first, then netbpf columns', () => {
    const h = lifeHeader({ time: false, timestamp: false, wide: false });
    expect(h.split(/\s+/).slice(0, 9)).toEqual(['PID', 'COMM', 'LADDR', 'LPORT', 'RADDR', 'RPORT', 'TX_KB', 'RX_KB', 'MS']);
    expect(h.split(/\s+/).slice(9)).toEqual(['DIR', 'RETR', 'RTT_MS', 'CLOSE']);
    const l = lifeLine(e, { time: false, timestamp: false, wide: false }, e.time);
    expect(l.split(/\s+/)).toEqual(['4242', 'a\\x1b[2Jveryl', '10.0.0.1', '40000', '10.0.0.2', '443', '19', '2', '2000.00', 'connect', '3', '1.50', 'fin']);
  });
  it('-T and -t add time columns; -w adds netns and cgroup', () => {
    expect(lifeHeader({ time: true, timestamp: true, wide: true }).split(/\s+/)).toEqual(['TIME', 'TIME(s)', 'PID', 'COMM', 'LADDR', 'LPORT', 'RADDR', 'RPORT', 'TX_KB', 'RX_KB', 'MS', 'DIR', 'RETR', 'RTT_MS', 'CLOSE', 'NETNS', 'CGROUP']);
    const l = lifeLine(e, { time: true, timestamp: true, wide: true }, e.time - 1500).split(/\s+/);
    expect(l.slice(0, 2)).toEqual(['12:00:00', '1.500000']);
    expect(l.slice(-2)).toEqual(['4026531840', '7']);
  });
  it('CSV has a header and quotes process names', () => {
    expect(csvHeader().split(',')).toHaveLength(csvLine(e).split(',').length);
    expect(csvLine(closedEvent({ comm: 'x,"y"' }))).toContain('"x,""y"""');
  });
  it('connect lines say ok with latency, or the class and errno', () => {
    expect(connectLine(decodeConnect(connectRecord(), 0, clock))).toMatch(/ok\s+0\.250\s+0$/);
    expect(connectLine(decodeConnect(connectRecord({ kind: 2, err: E.EHOSTUNREACH, flags: 2 }), 0, clock))).toMatch(/unreachable .* EHOSTUNREACH \(no SYN sent\)$/);
  });
});

describe('life and connect flags', () => {
  const quiet = async (argv: string[]) => {
    const write = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try { return await main(argv); } finally { process.stderr.write = write; }
  };
  it('rejects bad values with exit code 2 before loading anything', async () => {
    expect(await quiet(['life', '-p', 'abc'])).toBe(2);
    expect(await quiet(['life', '-p', '0'])).toBe(2);
    expect(await quiet(['life', '-4', '-6'])).toBe(2);
    expect(await quiet(['life', '--csv', '--json'])).toBe(2);
    expect(await quiet(['life', '-L', '70000'])).toBe(2);
    expect(await quiet(['connect', '-D', 'x'])).toBe(2);
    expect(await quiet(['connect', '--hook', 'kprobe'])).toBe(2);
  });
});
