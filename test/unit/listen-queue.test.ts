/** Listen-queue counters (src/core/listen-queue.ts): TcpExt parsed from /proc/net/netstat text, deltas since start. */
import { describe, expect, it } from 'vitest';
import { ListenQueueCounters, parseTcpExt } from '../../src/core/listen-queue.js';

const netstat = (cookies: number, reqq: number, overflows: number, drops: number) =>
  `TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPReqQFullDrop\nTcpExt: ${cookies} 7 1 ${overflows} ${drops} ${reqq}\n` +
  'IpExt: InNoRoutes InTruncatedPkts\nIpExt: 0 0\n';

describe('ListenQueueCounters', () => {
  it('parses the TcpExt lines only', () => {
    expect(parseTcpExt(netstat(1, 2, 3, 4))).toMatchObject({ SyncookiesSent: 1, TCPReqQFullDrop: 2, ListenOverflows: 3, ListenDrops: 4 });
    expect(parseTcpExt('IpExt: A\nIpExt: 1\n')).toEqual({});
  });

  it('reports what happened since start', () => {
    let text = netstat(10, 0, 1, 1);
    const c = new ListenQueueCounters(() => text);
    text = netstat(19_991 + 10, 5, 2, 7);
    expect(c.delta()).toEqual({ cookiesSent: 19_991, cookiesFailed: 0, synQueueDrops: 5, acceptQueueOverflows: 1, listenDrops: 6 });
  });

  it('is null where the counters cannot be read', () => {
    expect(new ListenQueueCounters(() => { throw new Error('ENOENT'); }).delta()).toBeNull();
  });
});
