/**
 * The socket iterator (bpf/sockets.bpf.c) against `ss` and the kernel's counters, on three failures that only
 * a look at the sockets themselves can name: a listener whose accept queue overflows, a process that leaves
 * sockets in CLOSE_WAIT, and a receiver that stopped reading.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SocketReader, type SocketInfo } from '../../src/tools/sockets/index.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf } from '../helpers.js';
import { backlogOverflow, closeWaitLeak, zeroWindow } from '../scenarios/failures.js';
import { sockets } from '../scenarios/lab.js';

describeBpf('socket iterator: owners, queues and windows of every process socket, all namespaces', () => {
  let p: NetnsPair;
  let reader: SocketReader;
  let nsA = 0, nsB = 0;
  beforeAll(async () => {
    p = await NetnsPair.create('sk', 241);
    nsA = await p.netnsInode(p.a);
    nsB = await p.netnsInode(p.b);
    reader = new SocketReader().open();
  });
  afterAll(async () => {
    reader?.close();
    await p?.destroy();
  });
  const inB = (port: number, state: string) => reader.read().filter((s) => s.netns === nsB && s.sport === port && s.state === state);

  it('names the listener whose accept queue overflows: queue length, limit, its drops equal ListenDrops', async () => {
    let listener: SocketInfo[] = [];
    const r = await backlogOverflow(p, 8, async () => { listener = inB(6007, 'LISTEN'); });
    expect(listener).toHaveLength(1);
    const l = listener[0];
    // ss prints a listener's accept queue length as Recv-Q and its limit as Send-Q.
    expect({ rx: l.rxQueue, tx: l.txQueue }).toEqual({ rx: r.oracle.listenRecvQ, tx: r.oracle.listenLimit });
    expect(l.rxQueue).toBeGreaterThan(l.txQueue); // full: the kernel admits backlog + 1
    expect(l.comm).toBe('python3');
    // The listener is the namespace's only one: all of its ListenDrops are this socket's drops.
    expect(l.drops).toBeGreaterThan(0);
    expect(l.drops).toBe(r.b['TcpExt.ListenDrops']);
  }, 30000);

  it('finds the CLOSE_WAIT sockets of the process that does not close them, with how long they have been idle', async () => {
    const t0 = Date.now();
    const r = await closeWaitLeak(p, 5);
    try {
      await new Promise((res) => setTimeout(res, 500));
      const mine = inB(6011, 'CLOSE_WAIT');
      const ss = await sockets(p, p.b, ['state', 'close-wait', '( sport = :6011 )']);
      expect(mine).toHaveLength(ss.length);
      expect(mine).toHaveLength(5);
      for (const s of mine) {
        expect(s.pid).toBe(r.server.child.pid);
        expect(s.comm).toBe('python3');
        expect(s.netns).toBe(nsB);
        // Idle since the client's FIN: at least the 500 ms waited, at most since the scenario started.
        expect(s.idleMs).toBeGreaterThanOrEqual(450);
        expect(s.idleMs).toBeLessThanOrEqual(Date.now() - t0 + 50);
      }
      // The client side of each is not held by a process (closed by node): not listed.
      expect(reader.read().filter((s) => s.netns === nsA && s.dport === 6011)).toEqual([]);
    } finally {
      await r.server.result();
    }
  }, 30000);

  it('sees the receiver that stopped reading (window 0, data queued) and its sender facing the zero window', async () => {
    let receiver: SocketInfo[] = [], sender: SocketInfo[] = [], ssQ = -1, again: SocketInfo[] = [];
    await zeroWindow(p, 3, async () => {
      receiver = inB(6009, 'ESTABLISHED');
      sender = reader.read().filter((s) => s.netns === nsA && s.dport === 6009 && s.state === 'ESTABLISHED');
      ssQ = (await sockets(p, p.b, ['state', 'established', '( sport = :6009 )']))[0]?.recvQ ?? -1;
      await new Promise((res) => setTimeout(res, 200));
      again = inB(6009, 'ESTABLISHED');
    });
    expect(receiver).toHaveLength(1);
    expect(receiver[0].rxQueue).toBe(ssQ);
    expect(receiver[0].rxQueue).toBeGreaterThan(100_000);
    expect(receiver[0].rcvWnd).toBe(0);
    expect(receiver[0].comm).toBe('python3');
    // Not reading: the read position did not move between two reads.
    expect(again[0].copiedSeq).toBe(receiver[0].copiedSeq);
    expect(sender).toHaveLength(1);
    expect(sender[0].sndWnd).toBe(0);
    expect(sender[0].txQueue).toBeGreaterThan(0);
  }, 30000);
});
