/**
 * The examples in examples/ run as written (importing 'netbpf' by name) against the real kernel: each is
 * started for a few seconds while the test refuses connects on a loopback port nobody listens on, and its
 * output must report exactly those connects.
 */
import { expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describeBpf, sleep } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;

function start(example: string, args: string[], ready: RegExp) {
  const c = spawn(process.execPath, [join(root, 'examples', example), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NETBPF_CIDR: '127.0.0.0/8' } });
  let stdout = '', stderr = '';
  c.stdout.on('data', (d) => { stdout += d; });
  c.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number>((r) => c.once('close', (code) => r(code ?? -1))); // close: after all output was read
  const isReady = async () => { for (const t0 = Date.now(); !ready.test(stderr) && Date.now() - t0 < 10000 && c.exitCode === null; ) await sleep(50); expect(stderr).toMatch(ready); };
  return { child: c, exited, isReady, out: () => stdout, err: () => stderr };
}

/** A loopback port with nothing listening (bound once, then closed), and N refused connects to it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
const refuse = async (port: number, n: number) => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => { const s = connect(port, '127.0.0.1'); s.on('error', () => r()); s.on('close', () => r()); });
};

describeBpf('examples run against the real kernel', () => {
  it('custom-aggregator counts refused connects per port', async () => {
    const port = await closedPort();
    const ex = start('custom-aggregator.mjs', ['3'], /tracing connects/);
    await ex.isReady();
    await refuse(port, 3);
    expect(await ex.exited).toBe(0);
    const result = JSON.parse(ex.out().trim().split('\n').pop()!);
    expect(result.byPort[port]).toEqual({ ok: 0, failed: { refused: 3 }, slowestMs: 0 });
    expect(result.counters.lost).toBe(0);
  }, 20000);

  it('forward-events forwards each failed connect to its callback', async () => {
    const port = await closedPort();
    const ex = start('forward-events.mjs', ['3'], /forward-events: tracing/);
    await ex.isReady();
    await refuse(port, 2);
    expect(await ex.exited).toBe(0);
    const records = ex.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const mine = records.filter((r) => r.source === 'connect' && r.event.dport === port);
    expect(mine).toHaveLength(2);
    for (const r of mine) expect(r.event).toMatchObject({ type: 'failed', failure: 'refused', error: 'ECONNREFUSED', daddr: '127.0.0.1', pid: process.pid });
    expect(ex.err()).toMatch(/forward-events: done; lost 0/);
  }, 20000);

  it('http-summary serves the current summary with a diagnosis per unhealthy destination', async () => {
    const port = await closedPort();
    const ex = start('http-summary.mjs', ['0', '12'], /http:\/\/127\.0\.0\.1:(\d+)\/summary/);
    await ex.isReady();
    const url = /(http:\/\/127\.0\.0\.1:\d+\/summary)/.exec(ex.err())![1];
    await refuse(port, 2);
    // The refused SYNs are freed for want of a socket (NO_SOCKET; without drop reasons, < 5.17, by tcp_v4_rcv, which
    // the diagnoses tell the same way): refused, and no local drop beside it on any kernel.
    const expected = ['refused: nothing listening (2 of 2 connects answered with RST)'];
    let body: { tools: string[]; unhealthy: Array<{ destination: string; diagnoses: string[] }>; summary: { rows: Array<{ key: string; connects: { failures: number } }> } } | null = null;
    // The connects' failures and the frees reach the summary on their own paths (ring buffer, kernel map read): once
    // the destination is unhealthy, one more second for anything else to arrive before the check.
    const diagnosesOf = () => body!.unhealthy.find((u) => u.destination === `127.0.0.1:${port}`)?.diagnoses ?? [];
    for (const t0 = Date.now(); Date.now() - t0 < 8000; await sleep(200)) {
      body = await (await fetch(url)).json();
      if (diagnosesOf().length) break;
    }
    await sleep(1000);
    body = await (await fetch(url)).json();
    expect(body!.tools).toEqual(['retrans', 'drops', 'connect', 'life']);
    expect(diagnosesOf()).toEqual(expected);
    expect(body!.summary.rows.find((r) => r.key === `127.0.0.1:${port}`)!.connects.failures).toBe(2);
    ex.child.kill('SIGTERM');
    expect(await ex.exited).toBe(0);
  }, 25000);
});
