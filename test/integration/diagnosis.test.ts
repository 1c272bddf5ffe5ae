/**
 * `netbpf top --json` (the CLI, a separate process) against the classic network failures (test/scenarios), each
 * in private namespaces with the kernel's or nft's own counters as the oracle: the right diagnosis, its
 * evidence equal to the oracle, and no wrong diagnosis beside it. One top run watches all the failures (each on
 * its own port, so its own row); a healthy workload must give no diagnosis 20 times in a row, and 5% loss outside
 * this host the loss verdict 20 times out of 20.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, hasCommand, netfilterDropReason } from '../helpers.js';
import * as s from '../scenarios/failures.js';
import type { ScenarioResult } from '../scenarios/failures.js';
import { topAround, type TopRun, type TopSnapshot } from '../scenarios/top-run.js';

const SUBNET = 243;
const NETFILTER_REASON = netfilterDropReason();
const CIDR = `10.${SUBNET}.0.0/16`;

type Row = TopSnapshot['rows'][number] & {
  diagnoses: Array<{ code: string; severity: string; confidence: string; text: string; action: string; evidence: Array<{ count: number; what: string; source: string }>; explains: number }>;
};
type HostDiagnosis = Row['diagnoses'][number] & { subject: string };

describeBpf('top names the classic failures right (kernel counters as the oracle)', () => {
  let p: NetnsPair;
  let top: TopRun;
  const results: Record<string, ScenarioResult & { serverPid?: number }> = {};
  let portExhaustionEnded = 0;
  const row = (r: ScenarioResult): Row => {
    const found = top.final.rows.find((x) => x.key === `${r.addr}:${r.port}`) as Row | undefined;
    expect(found, `no row for ${r.addr}:${r.port}: ${top.final.rows.map((x) => x.key).join(', ')}`).toBeDefined();
    return found!;
  };
  const codes = (r: ScenarioResult) => row(r).diagnoses.map((d) => d.code);
  /** What the row and the scenario said, for a failing assertion's message. */
  const seen = (r: ScenarioResult) => JSON.stringify({ row: row(r), client: r.client, oracle: r.oracle, a: r.a, b: r.b });
  const host = () => (top.final.host as { diagnoses: HostDiagnosis[] }).diagnoses;

  beforeAll(async () => {
    if (!hasCommand('curl')) throw new Error('curl is required (apt-get install curl)');
    p = await NetnsPair.create('dg', SUBNET);
    await p.startServer(6000);
    await p.client(p.addrB, 6000, { conns: 1 }); // warm the neighbour caches
    ({ top } = await topAround(CIDR, async () => {
      results.appTimeout = await s.appTimeout(p);
      results.appTimeoutLocalFirewall = await s.appTimeoutLocalFirewall(p);
      results.portExhaustion = await s.portExhaustion(p);
      portExhaustionEnded = Date.now();
      results.rejectReset = await s.rejectReset(p);
      results.rejectIcmp = await s.rejectIcmp(p);
      results.noListener = await s.noListener(p);
      results.conntrackFull = await s.conntrackFull(p);
      // The listener stays a little after its clients gave up, so top reads its final drop count.
      results.backlogOverflow = await s.backlogOverflow(p, 8, () => new Promise((r) => setTimeout(r, 1500)));
      results.unreadReset = await s.unreadReset(p);
      results.zeroWindow = await s.zeroWindow(p, 4);
      const leak = await s.closeWaitLeak(p);
      // Leave the leak in place for two of top's intervals, so it is seen idle for over a second.
      await new Promise((r) => setTimeout(r, 2500));
      await leak.server.result();
      results.closeWaitLeak = { ...leak, serverPid: leak.server.child.pid };
      results.healthy = await s.healthy(p);
    }));
  }, 600000); // a minute here; many under emulation (the kernel matrix guests)
  afterAll(async () => { await p?.destroy(); });

  it('top ran cleanly and lost nothing', () => {
    if (process.env.NETBPF_DEBUG_TOP) console.info(JSON.stringify({ host: top.final.host, rows: top.final.rows.map((r) => ({ key: r.key, ev: (r as unknown as { evidence: unknown }).evidence })) }, null, 1));
    expect(top.code).toBe(0);
    expect(top.lines.filter((l) => l.type === 'counters').map((l) => l.lost)).toEqual([0, 0, 0, 0]);
    expect((top.final.host as { unavailable: string | null }).unavailable).toBeNull();
  });

  it('application gives up first (SYNs lost outside this host): an application-side connect timeout, not "ok"', () => {
    const r = results.appTimeout;
    expect(r.client.curlExit, seen(r)).toBe(28);
    expect(codes(r), seen(r)).toEqual(['app-connect-timeout']);
    const [d] = row(r).diagnoses;
    expect(d.text, seen(r)).toMatch(/^timing out: the application gave up waiting for an answer to its SYNs \(1 of 1 connects, after up to [23]\.\d s, \d SYNs? retransmitted\): filtered or host down$/);
    // The SYN retransmits it counts are the kernel's own (TCPSynRetrans), all of them discarded by the relay.
    expect(d.evidence.find((e) => /SYNs retransmitted/.test(e.what))!.count, seen(r)).toBe(r.a['TcpExt.TCPSynRetrans']);
    expect(r.oracle.relaySynDiscarded).toBe(1 + r.a['TcpExt.TCPSynRetrans']);
  });

  it('application gives up while a firewall rule here drops the SYNs: the local firewall, with its drops', () => {
    const r = results.appTimeoutLocalFirewall;
    expect(codes(r), seen(r)).toEqual(['local-firewall']);
    expect(row(r).drops.byReason[NETFILTER_REASON], seen(r)).toBe(r.oracle.nftDropped);
    expect(row(r).diagnoses[0].text, seen(r)).toMatch(/^local firewall dropping packets \(2 packets dropped by netfilter on this host, 1 connect unanswered\)/);
  });

  it('ephemeral ports exhausted: EADDRNOTAVAIL, the port range and the sockets in TIME_WAIT holding the ports', () => {
    const r = results.portExhaustion;
    expect(r.client).toMatchObject({ ok: 8, errors: { EADDRNOTAVAIL: 4 } });
    expect(codes(r)).toEqual(['port-exhaustion']);
    const [d] = row(r).diagnoses;
    expect(d.text).toMatch(/^no free local port: ephemeral ports exhausted \(4 of 12 connects failed with EADDRNOTAVAIL; local ports 41000-41007 \(8\), \d+ sockets? to it holding one\)$/);
    expect(d.action).toMatch(/ip_local_port_range/);
    // The ports held are counted as they are when top reports: TIME_WAIT ends after 60 s, and the final snapshot
    // comes after every other scenario (minutes later under emulation). So the oracle (`ss state time-wait`,
    // read as the scenario ended) is compared with the first of top's snapshots after the scenario that holds it.
    expect(r.oracle.timeWait).toBe(8);
    const expected = `no free local port: ephemeral ports exhausted (4 of 12 connects failed with EADDRNOTAVAIL; local ports 41000-41007 (8), ${r.oracle.timeWait} sockets to it holding one)`;
    const after = top.lines.filter((l) => l.type === 'top' && (l.time as number) >= portExhaustionEnded) as Array<TopSnapshot & { time: number }>;
    const texts = after.map((snap) => ({ time: snap.time, text: (snap.rows.find((x) => x.key === `${r.addr}:${r.port}`) as Row | undefined)?.diagnoses[0]?.text }));
    const held = texts.find((x) => x.text === expected);
    expect(held, JSON.stringify(texts.slice(0, 5))).toBeDefined();
    expect(held!.time - portExhaustionEnded).toBeLessThan(60000);
  });

  it('firewall reject with a TCP reset: told apart from nothing listening', () => {
    const r = results.rejectReset;
    expect(codes(r)).toEqual(['firewall-reject']);
    expect(row(r).diagnoses[0].text).toMatch(/^rejected by a firewall rule on this host: TCP reset \(2 of 2 connects/);
    expect(row(r).drops.byReason[NETFILTER_REASON]).toBe(r.oracle.nftRejected);
  });

  it('firewall reject with ICMP port unreachable: no RST was received, so not "nothing listening"', () => {
    const r = results.rejectIcmp;
    expect(codes(r)).toEqual(['firewall-reject']);
    expect(row(r).diagnoses[0].text).toMatch(/^rejected by a firewall rule on this host: ICMP port unreachable \(2 of 2 connects refused without a RST/);
    expect(r.a['Icmp.InDestUnreachs']).toBe(2);
    expect(row(r).drops.byReason[NETFILTER_REASON]).toBe(r.oracle.nftRejected);
  });

  it('nothing listening: refused, with the kernel\'s own resets (Tcp OutRsts) as NO_SOCKET', () => {
    const r = results.noListener;
    expect(codes(r)).toEqual(['refused']);
    expect(row(r).diagnoses[0]).toMatchObject({ confidence: 'high', text: 'refused: nothing listening (2 of 2 connects answered with RST)' });
    expect(row(r).drops.byReason[NETFILTER_REASON === 'UNAVAILABLE' ? 'UNAVAILABLE' : 'NO_SOCKET']).toBe(r.b['Tcp.OutRsts']);
  });

  it('conntrack table full: its drops attributed to conntrack (the kernel\'s drop counter), not to the firewall', () => {
    const r = results.conntrackFull;
    expect(r.oracle.ctDrop).toBeGreaterThan(0);
    expect(codes(r)).toEqual(['conntrack-full']);
    expect(row(r).drops.byReason[NETFILTER_REASON]).toBe(r.oracle.ctDrop);
    expect(row(r).diagnoses[0].text).toMatch(new RegExp(`^conntrack table full: ${r.oracle.ctDrop} packets to it dropped for want of an entry \\(conntrack's drop counter \\+${r.oracle.ctDrop};`));
    const h = host().filter((d) => d.code === 'conntrack-full');
    expect(h).toHaveLength(1);
    expect(h[0].evidence[0].count).toBe(r.oracle.ctDrop);
    expect(h[0].action).toMatch(/nf_conntrack_max/);
  });

  it('listen backlog overflow: the listener, its queue and limit, its drops equal to ListenDrops', () => {
    const r = results.backlogOverflow;
    expect(codes(r)).toEqual(['listen-overflow']);
    const [d] = row(r).diagnoses;
    expect(d.text).toMatch(new RegExp(`^accept queue full: listener \\[::\\]:${r.port} \\(python3, pid \\d+\\) has ${r.oracle.listenRecvQ} connections waiting for a limit of ${r.oracle.listenLimit} and dropped ${r.b['TcpExt.ListenDrops']} SYNs`));
    expect(d.evidence.find((e) => /dropped/.test(e.what))!.count).toBe(r.b['TcpExt.ListenDrops']);
    expect(host().filter((x) => x.code === 'listen-overflow' && x.subject.includes(`:${r.port} `))).toHaveLength(1);
  });

  it('server closing with unread data: the server reset them (TCPAbortOnClose), not the network', () => {
    const r = results.unreadReset;
    expect(codes(r)).toEqual(['reset-unread']);
    const [d] = row(r).diagnoses;
    expect(d.evidence[0].count).toBe(r.b['TcpExt.TCPAbortOnClose']);
    expect(d.evidence[1].count).toBe(r.a['Tcp.EstabResets']);
  });

  it('receiver stops reading: zero window, who is not reading; its window probes are no drops', () => {
    const r = results.zeroWindow;
    expect(r.b['TcpExt.TCPToZeroWindowAdv']).toBeGreaterThan(0);
    expect(codes(r)).toEqual(['zero-window']);
    expect(row(r).diagnoses[0].text).toMatch(/^receiver not reading: python3 \(pid \d+\) on this host has not read for \d+\.\d s, \d+ bytes unread/);
    // Without drop reasons, late segments to the sender's closed connections (tcp_v4_rcv: no socket or TIME_WAIT)
    // are counted, as NO_SOCKET would be on later kernels; never as a local drop (the codes above).
    if (NETFILTER_REASON !== 'UNAVAILABLE') expect(row(r).drops.total).toBe(0);
    expect(host().filter((d) => d.code === 'zero-window' && d.subject.startsWith('python3 ('))).toHaveLength(1);
  });

  it('CLOSE_WAIT leak: the process, how many sockets, how long idle', () => {
    const r = results.closeWaitLeak;
    const leak = host().filter((d) => d.code === 'close-wait-leak' && d.subject === `python3 (pid ${r.serverPid})`);
    expect(leak).toHaveLength(1);
    expect(leak[0].text).toMatch(new RegExp(`^connection leak: python3 \\(pid ${r.serverPid}\\) holds ${r.oracle.closeWait} sockets in CLOSE_WAIT`));
    expect(leak[0].evidence[0].count).toBe(r.oracle.closeWait); // `ss state close-wait`
  });

  it('healthy workload: no diagnosis, no drop that hurts', () => {
    const r = results.healthy;
    expect(codes(r)).toEqual([]);
    expect(row(r).health).toBe('ok');
    expect(row(r).drops.total).toBe(0);
  });

  it('no host diagnosis that none of the failures explains', () => {
    expect(host().map((d) => d.code).filter((c) => !['conntrack-full', 'listen-overflow', 'zero-window', 'close-wait-leak'].includes(c))).toEqual([]);
  });
});

describeBpf('top is not flaky: 20 healthy runs, 20 runs of 5% loss outside the host', () => {
  let p: NetnsPair;
  beforeAll(async () => {
    p = await NetnsPair.create('dr', SUBNET + 1);
    await p.startServer(6000);
    await p.client(p.addrB, 6000, { conns: 1 });
  });
  afterAll(async () => { await p?.destroy(); });

  describe('', () => {
    it('a healthy workload (short connections, clean closes, TIME_WAIT) gives no diagnosis in 20 of 20 runs', async () => {
      const t0 = Date.now();
      const { top, result } = await topAround(`10.${SUBNET + 1}.0.0/16`, async () => {
        const runs: ScenarioResult[] = [];
        for (let i = 0; i < 20; i++) runs.push(await s.healthy(p, 20, 6100 + i));
        return runs;
      });
      const rows = result.map((r) => top.final.rows.find((x) => x.key === `${r.addr}:${r.port}`));
      expect(rows.map((x) => x?.connects.successes), JSON.stringify(rows.map((x) => x && { key: x.key, connects: x.connects, drops: x.drops, d: x.diagnoses }))).toEqual(result.map(() => 20));
      expect(rows.map((x) => x!.diagnoses.map((d) => d.text))).toEqual(result.map(() => []));
      console.info(`20 healthy runs under top: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }, 600000); // seconds here; minutes under emulation

    it('5% loss outside this host (a TUN relay discards packets) gives the loss verdict in 20 of 20 runs', async () => {
      const t0 = Date.now();
      const { top, result } = await topAround(`10.${SUBNET + 1}.0.0/16`, async () => {
        const runs: ScenarioResult[] = [];
        for (let i = 0; i < 20; i++) runs.push(await s.pathLoss(p, 5, 400_000, 3, i + 1, 6200 + i));
        return runs;
      });
      const verdicts = result.map((r) => {
        const x = top.final.rows.find((y) => y.key === `${r.addr}:${r.port}`);
        const kernel = r.a['Tcp.RetransSegs'] / r.a['Tcp.OutSegs'];
        return { codes: x?.diagnoses.map((d) => d.code), ratio: x?.retrans.ratio ?? 0, kernel, discarded: r.oracle.relayDiscarded, row: x };
      });
      for (const v of verdicts) {
        expect(v.codes, JSON.stringify(v.row)).toEqual(['path-loss']);
        expect(v.discarded).toBeGreaterThan(0);
        // The ratio top reports is the kernel's own (RetransSegs / OutSegs of the client namespace) within 20%.
        expect(Math.abs(v.ratio - v.kernel)).toBeLessThan(0.2 * v.kernel + 0.005);
      }
      console.info(`20 runs of 5% loss under top: ${((Date.now() - t0) / 1000).toFixed(1)} s; ratios ${verdicts.map((v) => (v.ratio * 100).toFixed(1)).join(' ')}%`);
    }, 600000); // seconds here; minutes under emulation (the TUN relay runs in user space)
  });
});
