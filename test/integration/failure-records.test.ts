/**
 * What connect and life record for two failures their hooks used to get wrong, against the kernel's counters:
 * ephemeral ports exhausted (connect() fails with EADDRNOTAVAIL after the socket went SYN_SENT and back to CLOSE
 * with nothing sent) and a server that closes with data unread (the kernel moves the socket to CLOSE first, then
 * sends the RST).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connect, life, type ConnectEvent, type LifeClosedEvent, type LifeEvent } from '../../src/index.js';
import type { Trace } from '../../src/core/trace.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, sleep } from '../helpers.js';
import { portExhaustion, unreadReset } from '../scenarios/failures.js';

describeBpf('connect and life on failures inside connect() and resets after close', () => {
  let p: NetnsPair;
  let nsA = 0, nsB = 0;
  let connectTrace: Trace<ConnectEvent>;
  let lifeTrace: Trace<LifeEvent>;
  const connects: ConnectEvent[] = [];
  const lives: LifeEvent[] = [];
  beforeAll(async () => {
    p = await NetnsPair.create('fr', 242);
    nsA = await p.netnsInode(p.a);
    nsB = await p.netnsInode(p.b);
    const mine = (e: { netns: number }) => e.netns === nsA || e.netns === nsB;
    connectTrace = connect({ pollMs: 10 });
    lifeTrace = life({ pollMs: 10 });
    connectTrace.onEvents((b) => connects.push(...b.filter(mine)));
    lifeTrace.onEvents((b) => lives.push(...b.filter(mine)));
    await connectTrace.start();
    await lifeTrace.start();
  });
  afterAll(async () => {
    await connectTrace?.stop();
    await lifeTrace?.stop();
    await p?.destroy();
  });

  it('ports exhausted: EADDRNOTAVAIL with the namespace\'s port range, never "aborted"', async () => {
    const r = await portExhaustion(p, 8, 12);
    expect(r.client).toMatchObject({ ok: 8, errors: { EADDRNOTAVAIL: 4 } });
    const pid = r.client.pid as number;
    for (const t0 = Date.now(); connects.filter((e) => e.pid === pid).length < 12 && Date.now() - t0 < 3000; ) await sleep(50);
    const mine = connects.filter((e) => e.pid === pid);
    const failed = mine.filter((e) => e.type === 'failed');
    expect(mine.filter((e) => e.type === 'established')).toHaveLength(8);
    expect(failed).toHaveLength(4);
    for (const e of failed) {
      expect(e).toMatchObject({ failure: 'other', error: 'EADDRNOTAVAIL', beforeSyn: true, synRetrans: 0, daddr: p.addrB, dport: r.port, localPorts: { low: 41000, high: 41007 } });
    }
    // The kernel counts an active open when the SYN goes out: the 8 that connected; the 4 failures sent none.
    expect(r.a['Tcp.ActiveOpens']).toBe(8);
    expect(r.a['Tcp.AttemptFails'] ?? 0).toBe(0);
  });

  it('a server closing with data unread: its record says it reset the connection (as many as TCPAbortOnClose)', async () => {
    const r = await unreadReset(p, 3);
    expect(r.b['TcpExt.TCPAbortOnClose']).toBe(3);
    const server = () => lives.filter((e): e is LifeClosedEvent => e.type === 'closed' && e.netns === nsB && e.sport === r.port);
    const client = () => lives.filter((e): e is LifeClosedEvent => e.type === 'closed' && e.netns === nsA && e.dport === r.port);
    for (const t0 = Date.now(); (server().length < 3 || client().length < 3) && Date.now() - t0 < 3000; ) await sleep(50);
    expect(server()).toHaveLength(3);
    for (const e of server()) expect(e).toMatchObject({ reason: 'reset-sent', rstSent: true, rstUnread: true, closedFrom: 'ESTABLISHED', comm: 'python3' });
    expect(server().length).toBe(r.b['TcpExt.TCPAbortOnClose']);
    // The clients saw the reset: as many as the kernel's EstabResets.
    expect(client().filter((e) => e.reason === 'reset-received')).toHaveLength(r.a['Tcp.EstabResets']);
    // An orderly close is not taken for one with unread data.
    const healthy = lives.filter((e): e is LifeClosedEvent => e.type === 'closed' && e.rstUnread && e.sport !== r.port);
    expect(healthy).toEqual([]);
  });
});
