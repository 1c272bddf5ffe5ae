/**
 * An end that waits for a late reset (bpf/life.bpf.c `closing`) until its socket is destroyed is not lost when the
 * trace stops first: a client that closes its side with shutdown() after the server's FIN reaches CLOSE (its last
 * ACK answered) but keeps the socket open, so it is not destroyed, while the trace stops; its end must still be
 * delivered, live and counted in the kernel.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { life, lifeSummary, type LifeClosedEvent, type LifeEvent } from '../../src/index.js';
import { LifeTrace } from '../../src/tools/life/trace.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, sleep } from '../helpers.js';

const PORT = 5481;

/** Server: accepts and closes each connection (a FIN). Prints "ready". */
const SERVER = `
import socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16); print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
`;

/** Client: connects N times; after the server's FIN, shuts its side down (LAST_ACK, then CLOSE once acknowledged) and
 * keeps the socket open; prints "ended N closed M"; holds the sockets until stdin closes. */
const CLIENT = `
import socket, sys, time
held = []
for _ in range(int(sys.argv[3])):
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    assert c.recv(1) == b""
    c.shutdown(socket.SHUT_WR)
    held.append(c)
# tcpi_state (the first byte of TCP_INFO): 7 is TCP_CLOSE; the sockets stay open in this process all the same.
for _ in range(100):
    closed = sum(1 for c in held if c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 7)
    if closed == len(held): break
    time.sleep(0.01)
print("ended", len(held), "closed", closed, flush=True)
sys.stdin.read()
`;

describeBpf('life: ends held for a late reset are delivered when the trace stops first', () => {
  let p: NetnsPair;
  let nsA = 0;
  beforeAll(async () => {
    p = await NetnsPair.create('lh', 248);
    nsA = await p.netnsInode(p.a);
    const server = p.spawn(p.b, ['python3', '-c', SERVER, p.addrB, String(PORT)]);
    await new Promise<void>((resolve) => server.stdout!.on('data', (d) => { if (String(d).includes('ready')) resolve(); }));
  });
  afterAll(async () => { await p?.destroy(); });

  /** Runs `n` client connections to their end; stops `stop` while the client still holds its sockets. */
  async function resetWhileHeld(n: number, stop: () => Promise<void>): Promise<void> {
    // Its own spawn: the client holds its sockets until its stdin closes (NetnsPair.spawn gives it none).
    const client = spawn('ip', ['netns', 'exec', p.a, 'python3', '-c', CLIENT, p.addrB, String(PORT), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        client.stdout!.on('data', (d) => { out += d; if (out.includes('\n')) resolve(out.trim()); });
        client.once('exit', (code) => reject(new Error(`client exited ${code}`)));
      });
      // Every socket is in CLOSE (unhashed: ss no longer lists it) and not destroyed: the client still holds it.
      expect(line).toBe(`ended ${n} closed ${n}`);
      await sleep(200);
      await stop();
    } finally {
      client.stdin!.end();
      await new Promise((r) => client.once('exit', r));
    }
  }

  it('live: every client end is delivered at stop, as many as the namespace\'s ActiveOpens', async () => {
    const trace = life({ pollMs: 10 });
    const events: LifeEvent[] = [];
    trace.onEvents((b) => events.push(...b));
    await trace.start();
    const before = (await p.snmp(p.a)).Tcp;
    await resetWhileHeld(3, () => trace.stop());
    const after = (await p.snmp(p.a)).Tcp;
    const ends = events.filter((e): e is LifeClosedEvent => e.type === 'closed' && e.netns === nsA && e.dport === PORT);
    expect(after.ActiveOpens - before.ActiveOpens).toBe(3);
    expect(ends).toHaveLength(3);
    for (const e of ends) expect(e).toMatchObject({ direction: 'connect', rstReceived: false, rstSent: false });
    expect((trace as LifeTrace).heldAtStop).toBeGreaterThanOrEqual(3);
  });

  it('counted in the kernel: the same ends are in the summary', async () => {
    // Only the client ends (remote: the server), which the kernel holds until their sockets are destroyed.
    const s = lifeSummary({ pollMs: 10, remoteCidrs: [`${p.addrB}/32`] });
    await s.start();
    await resetWhileHeld(2, () => s.stop());
    expect(s.snapshot().totals.connections).toBe(2);
    expect(s.counters().events).toBe(2);
  });
});
