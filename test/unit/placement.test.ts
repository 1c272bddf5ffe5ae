/** One drop-placement rule (src/core/placement.ts) for every view: top and the Prometheus exporter must count the
 * same drop against the same destination. */
import { describe, expect, it } from 'vitest';
import { DropPlacement } from '../../src/core/placement.js';
import { PrometheusExporter } from '../../src/tools/prometheus/index.js';
import { TopAggregator, type TopSession, type TopToolName } from '../../src/tools/top/index.js';
import type { ConnectEvent } from '../../src/tools/connect/index.js';
import type { DropEvent } from '../../src/tools/drops/index.js';

describe('DropPlacement', () => {
  it('counts a drop for its remote side once that side is a known destination', () => {
    const p = new DropPlacement<string>();
    p.connectedTo('10.0.0.2');
    expect(p.add('10.0.0.2', '10.0.0.1', 'NETFILTER_DROP', 0)).toMatchObject({ destination: '10.0.0.2', count: 1 });
  });
  it('counts it for its local side when that is a destination this host connects to and the remote is not', () => {
    const p = new DropPlacement<string>();
    p.connectedTo('10.0.0.2');
    expect(p.add('10.0.0.1', '10.0.0.2', 'NETFILTER_DROP', 0)).toMatchObject({ destination: '10.0.0.2' });
  });
  it('holds a drop until a connect tells its side, or for holdMs, then places it on its remote side, with its bytes', () => {
    const p = new DropPlacement<string>({ holdMs: 1000 });
    expect(p.add('10.0.0.1', '10.0.0.2', 'R', 100, 1, null, 1500)).toBeNull();
    expect(p.add('10.0.0.1', '10.0.0.2', 'R', 150, 1, null, 60)).toBeNull();
    expect(p.add('10.0.0.9', '10.0.0.8', 'R', 150)).toBeNull();
    p.connectedTo('10.0.0.2');
    expect(p.flush(200)).toEqual([{ destination: '10.0.0.2', tag: 'R', count: 2, bytes: 1560, time: 100 }]);
    expect(p.flush(1149)).toEqual([]);
    expect(p.flush(1150)).toEqual([{ destination: '10.0.0.9', tag: 'R', count: 1, bytes: 0, time: 150 }]);
  });
  it('says which keys are connect destinations (where a reset sent by a server on this host belongs)', () => {
    const p = new DropPlacement<string>();
    p.connectedTo('10.0.0.2:80');
    expect([p.isDestination('10.0.0.2:80'), p.isDestination('10.0.0.1')]).toEqual([true, false]);
  });
  it('places a drop whose packet names the server (SYN, SYN-ACK) on that side at once', () => {
    const p = new DropPlacement<string>();
    expect(p.add('10.0.0.1', '10.0.0.2', 'R', 0, 1, 'local')).toMatchObject({ destination: '10.0.0.2' });
    expect(p.add('10.0.0.1', '10.0.0.2', 'R', 0, 1, 'remote')).toMatchObject({ destination: '10.0.0.1' });
  });
  it('places at once rather than hold more than maxPending groups', () => {
    const p = new DropPlacement<string>({ maxPending: 1 });
    expect(p.add('a', 'b', 'R', 0)).toBeNull();
    expect(p.add('c', 'd', 'R', 0)).toMatchObject({ destination: 'c' });
  });
});

const connectTo = (daddr: string, time: number): ConnectEvent => ({
  type: 'established', time, family: 4, saddr: '10.0.0.1', sport: 40000, daddr, dport: 80, pid: 1, comm: 'c', synRetrans: 0, netns: 1, cgroupId: 0, connId: 1, latencyUs: 100,
});
const dropBetween = (remote: string, local: string, time: number, direction: 'received' | 'sent' = 'received', tcpFlags = 'ACK'): DropEvent => ({
  type: 'drop', time, reason: 'NETFILTER_DROP', reasonCode: 5, category: 'drop', family: 4, l3Proto: 0x800, proto: 'tcp', protoNum: 6,
  saddr: direction === 'received' ? remote : local, sport: direction === 'received' ? 40000 : 80,
  daddr: direction === 'received' ? local : remote, dport: direction === 'received' ? 80 : 40000,
  direction, remoteAddr: remote, remotePort: 40000, addressSource: 'packet', tcpFlags, state: null, len: 60, netns: 1, ifindex: 2, location: '', stack: [],
});

describe('top and the Prometheus exporter place the same drop against the same destination', () => {
  it('for a sequence of connects and drops arriving before, after and without their connect', async () => {
    const now = Date.now();
    const events: Array<['connect', ConnectEvent] | ['drops', DropEvent]> = [
      ['drops', dropBetween('10.0.0.1', '10.0.0.2', now)],          // data to a local server, before the connect's outcome: held
      ['connect', connectTo('10.0.0.2', now + 1)],
      ['drops', dropBetween('10.0.0.1', '10.0.0.2', now + 2)],      // after it: counts for the server side
      ['drops', dropBetween('10.0.0.7', '10.0.0.1', now + 3)],      // data from a peer nobody connected to: its remote side
      ['drops', dropBetween('10.0.0.2', '10.0.0.1', now + 4, 'sent')], // sent to the connected destination
      ['drops', dropBetween('10.0.0.8', '10.0.0.1', now + 5, 'received', 'SYN')], // a SYN to this host's server: the server
      ['drops', dropBetween('10.0.0.9', '10.0.0.1', now + 6, 'sent', 'ACK|SYN')], // our SYN-ACK to a client: the server is local
    ];
    const top = new TopAggregator({ now: () => now + 10_000 });
    const listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
    const session = { aggregator: top, onEvents: (l: (tool: TopToolName, e: unknown[]) => void) => { listeners.push(l); return session; }, onBulk: () => session, refresh: () => undefined, kernel: false, counters: () => ({}) } as unknown as TopSession;
    const exporter = new PrometheusExporter(session, { processMetrics: false, scrapeIntervalMs: 0, sockets: null }).attach();
    for (const [tool, e] of events) {
      if (tool === 'connect') top.addConnect(e);
      else top.addDrop(e);
      for (const l of listeners) l(tool, [e]);
    }
    await exporter.close(); // places every drop still held
    const fromTop = Object.fromEntries(top.snapshot().rows.filter((r) => r.drops.total).map((r) => [r.key, r.drops.total]));
    const metrics = await exporter.metrics();
    const fromExporter: Record<string, number> = {};
    for (const m of metrics.matchAll(/^netbpf_drops_total\{destination="([^"]+)",reason="NETFILTER_DROP",direction="(?:received|sent)"\} (\d+)$/gm)) fromExporter[m[1]] = (fromExporter[m[1]] ?? 0) + Number(m[2]);
    expect(fromTop).toEqual({ '10.0.0.2': 3, '10.0.0.7': 1, '10.0.0.1': 2 });
    expect(fromExporter).toEqual(fromTop);
  });
});
