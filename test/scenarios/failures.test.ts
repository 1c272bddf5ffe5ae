/**
 * The failure scenarios themselves, checked against the kernel's own account: each one really produces the
 * failure it is named after (counters of the namespaces, nft counters, conntrack statistics, `ss`). The
 * diagnosis tests build on these fixtures.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf } from '../helpers.js';
import * as s from './failures.js';
import { sockets } from './lab.js';

const only = process.env.NETBPF_SCENARIO;
const show = (name: string, r: unknown) => { if (process.env.NETBPF_SCENARIO_SHOW) console.info(name, JSON.stringify(r)); };

describeBpf('failure scenarios reproduce what they are named after', () => {
  let p: NetnsPair;
  beforeAll(async () => {
    p = await NetnsPair.create('fs', 240);
    await p.startServer(6000);
    await p.client(p.addrB, 6000, { conns: 1 }); // warm the neighbour caches
  });
  afterAll(async () => { await p?.destroy(); });
  const scenario = (name: string, fn: () => Promise<void>, timeout = 30000) => (only && only !== name ? it.skip : it)(name, fn, timeout);

  scenario('appTimeout', async () => {
    const r = await s.appTimeout(p);
    show('appTimeout', r);
    expect(r.client.curlExit).toBe(28); // curl: operation timed out
    expect(r.a['TcpExt.TCPSynRetrans']).toBeGreaterThanOrEqual(1);
    // Every SYN (first and retransmits) was discarded by the relay, outside both kernels.
    expect(r.oracle.relaySynDiscarded).toBe(1 + r.a['TcpExt.TCPSynRetrans']);
    expect(r.b['Tcp.InSegs'] ?? 0).toBe(0);
  });

  scenario('appTimeoutLocalFirewall', async () => {
    const r = await s.appTimeoutLocalFirewall(p);
    show('appTimeoutLocalFirewall', r);
    expect(r.client.curlExit).toBe(28);
    expect(r.oracle.nftDropped).toBe(1 + r.a['TcpExt.TCPSynRetrans']);
  });

  scenario('portExhaustion', async () => {
    const r = await s.portExhaustion(p);
    show('portExhaustion', r);
    expect(r.client).toMatchObject({ ok: 8, failed: 4, errors: { EADDRNOTAVAIL: 4 } });
    expect(r.oracle.timeWait).toBe(8);
  });

  scenario('rejectReset', async () => {
    const r = await s.rejectReset(p);
    show('rejectReset', r);
    expect(r.client).toMatchObject({ failed: 2, errors: { ECONNREFUSED: 2 } });
    expect(r.oracle.nftRejected).toBe(2);
    expect(r.b['Tcp.OutRsts'] ?? 0).toBe(0); // the reset came from nft, not from B's TCP
  });

  scenario('rejectIcmp', async () => {
    const r = await s.rejectIcmp(p);
    show('rejectIcmp', r);
    expect(r.client).toMatchObject({ failed: 2, errors: { ECONNREFUSED: 2 } });
    expect(r.oracle.nftRejected).toBe(2);
    expect(r.a['Icmp.InDestUnreachs']).toBe(2);
    expect(r.b['Tcp.OutRsts'] ?? 0).toBe(0);
  });

  scenario('noListener', async () => {
    const r = await s.noListener(p);
    show('noListener', r);
    expect(r.client).toMatchObject({ failed: 2, errors: { ECONNREFUSED: 2 } });
    expect(r.b['Tcp.OutRsts']).toBe(2);
    expect(r.a['Icmp.InDestUnreachs'] ?? 0).toBe(0);
  });

  scenario('conntrackFull', async () => {
    const r = await s.conntrackFull(p);
    show('conntrackFull', r);
    expect(r.oracle.ctDrop).toBeGreaterThan(0);
    expect(r.client).toMatchObject({ held: { ok: 8 }, burst: { ok: 6 } });
  });

  scenario('backlogOverflow', async () => {
    const r = await s.backlogOverflow(p);
    show('backlogOverflow', r);
    expect(r.b['TcpExt.ListenOverflows']).toBeGreaterThan(0);
    expect(r.b['TcpExt.ListenDrops']).toBeGreaterThanOrEqual(r.b['TcpExt.ListenOverflows']);
  });

  scenario('unreadReset', async () => {
    const r = await s.unreadReset(p);
    show('unreadReset', r);
    expect(r.b['TcpExt.TCPAbortOnClose']).toBe(2);
    expect(r.a['Tcp.EstabResets']).toBe(2);
    expect(r.oracle.serverClosedUnread).toBe(2);
  });

  scenario('zeroWindow', async () => {
    const r = await s.zeroWindow(p);
    show('zeroWindow', r);
    expect(r.b['TcpExt.TCPToZeroWindowAdv']).toBeGreaterThan(0);
    expect(r.a['TcpExt.TCPWinProbe']).toBeGreaterThan(0);
    expect(r.oracle.receiverRecvQ).toBeGreaterThan(100_000);
  });

  scenario('pathLoss', async () => {
    const r = await s.pathLoss(p);
    show('pathLoss', r);
    const ratio = r.a['Tcp.RetransSegs'] / r.a['Tcp.OutSegs'];
    expect(r.oracle.relayDiscarded).toBeGreaterThan(0);
    expect(ratio).toBeGreaterThan(0.02);
    expect(ratio).toBeLessThan(0.12);
  });

  scenario('closeWaitLeak', async () => {
    const r = await s.closeWaitLeak(p);
    show('closeWaitLeak', r);
    try {
      expect(r.oracle.closeWait).toBe(5);
      const leaked = await sockets(p, p.b, ['state', 'close-wait', `( sport = :${r.port} )`]);
      for (const l of leaked) expect(l.process).toContain(`pid=${r.server.child.pid}`);
    } finally {
      await r.server.result();
    }
  });

  scenario('healthy', async () => {
    const r = await s.healthy(p);
    show('healthy', r);
    expect(r.client).toMatchObject({ ok: 20, failed: 0 });
    expect(r.oracle.timeWait).toBe(20);
    for (const c of ['Tcp.AttemptFails', 'Tcp.EstabResets', 'Tcp.RetransSegs', 'Tcp.OutRsts']) {
      expect(r.a[c] ?? 0, c).toBe(0);
      expect(r.b[c] ?? 0, c).toBe(0);
    }
  });
});
