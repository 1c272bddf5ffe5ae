/**
 * `netbpf top` in a real terminal (tmux) while a real workload runs between two private namespaces: a lossy
 * port (nftables drops 10% of packets), a port nobody listens on, and a port whose SYNs are dropped. The
 * rows and diagnoses on screen are checked against the client's own results and the nft rule counters.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, hasCommand, sleep } from '../helpers.js';

const LOSSY = 5301, REFUSED = 5302, FILTERED = 5303;
const root = new URL('../..', import.meta.url).pathname;

describeBpf('netbpf top in a terminal', () => {
  let p: NetnsPair;
  let dir: string;
  const session = `netbpf-top-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-t', session);
  const alive = () => { try { tmux('has-session', '-t', session); return true; } catch { return false; } };

  beforeAll(async () => {
    if (!hasCommand('tmux')) throw new Error('tmux is required for this test (apt-get install tmux)');
    dir = mkdtempSync(join(tmpdir(), 'netbpf-top-'));
    p = await NetnsPair.create('top');
    await p.startServer(LOSSY);
    await p.client(p.addrB, LOSSY, { conns: 1 }); // warm the neighbour cache
    await p.exec(p.a, ['sysctl', '-qw', 'net.ipv4.tcp_syn_retries=1']);
    await p.nft(p.b, `table inet toptest {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${LOSSY} numgen random mod 100 < 10 counter drop
  }
}
table inet toptest_f {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${FILTERED} counter drop
  }
}\n`);
  });

  afterAll(async () => {
    if (alive()) tmux('kill-session', '-t', session);
    await p?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows one row per destination with the right counts and a diagnosis for each unhealthy one, and quits on q', async () => {
    const cmd = `${process.execPath} ${join(root, 'bin/netbpf.js')} top -i 1 -b endpoint -c 10.231.0.0/24 2>${dir}/stderr; echo $? >${dir}/rc`;
    tmux('new-session', '-d', '-s', session, '-x', '230', '-y', '50', cmd);
    for (const t0 = Date.now(); !screen().includes('netbpf top') && Date.now() - t0 < 10000; ) await sleep(100);
    expect(screen()).toContain('netbpf top');

    const [lossy, refused, filtered] = await Promise.all([
      p.client(p.addrB, LOSSY, { conns: 4, bytes: 300000, parallel: 2 }),
      p.client(p.addrB, REFUSED, { conns: 2 }),
      p.client(p.addrB, FILTERED, { conns: 1 }),
    ]);
    expect(lossy.ok).toBe(4);
    expect(refused.errors.ECONNREFUSED).toBe(2);
    expect(filtered.errors.ETIMEDOUT).toBe(1);
    await p.waitQuiet(p.a, LOSSY);

    const want = [
      `10.231.0.2:${REFUSED}: refused: nothing listening (2 of 2 connects`,
      `10.231.0.2:${FILTERED}: timing out: filtered or host down (1 of 1 connects`,
      `10.231.0.2:${LOSSY}: local firewall dropping packets`,
    ];
    const rowOf = (text: string, port: number) => text.split('\n').find((l) => l.startsWith(`10.231.0.2:${port} `))?.trim().split(/\s+/);
    // The screen refreshes every second: wait (bounded) for the diagnoses and for the drop counts to catch up.
    let text = '', lossDrops = 0, synDrops = 0;
    for (const t0 = Date.now(); Date.now() - t0 < 15000; await sleep(250)) {
      lossDrops = await p.nftCounter(p.b, 'toptest', 'input');
      synDrops = await p.nftCounter(p.b, 'toptest_f', 'input');
      text = screen();
      if (want.every((w) => text.includes(w)) && rowOf(text, LOSSY)?.[12] === String(lossDrops) && rowOf(text, FILTERED)?.[12] === String(synDrops)) break;
    }
    for (const w of want) expect(text).toContain(w);

    const row = (port: number) => {
      const cells = rowOf(text, port);
      expect(cells, `row for ${port} in:\n${text}`).toBeDefined();
      return cells!;
    };
    // DESTINATION HEALTH CONNS CONNECTS FAILED REFUSED TIMEOUT UNREACH P50_MS P99_MS RETR_SEGS RETR% DROPS TOP_DROP TREND
    const r = row(REFUSED);
    expect(r.slice(1, 8)).toEqual(['critical', '0', '2', '2', '2', '0', '0']);
    const f = row(FILTERED);
    expect(f.slice(1, 8)).toEqual(['critical', '0', '1', '1', '0', '1', '0']);
    // Every SYN (first + retries) hit the drop rule and was seen as a NETFILTER_DROP.
    expect(synDrops).toBeGreaterThanOrEqual(2);
    expect(f[12]).toBe(String(synDrops));
    expect(f[13]).toBe('NETFILTER_DROP');
    const l = row(LOSSY);
    expect(l[1]).toBe('critical');
    expect(Number(l[3])).toBeGreaterThanOrEqual(4); // the warm-up connect came before top started
    expect(Number(l[4])).toBe(0);
    expect(Number(l[10])).toBeGreaterThan(0); // retransmitted segments
    expect(l[11]).toMatch(/%$/);
    expect(Number(l[11].slice(0, -1))).toBeGreaterThan(0);
    // Drops for the lossy port: exactly the nft rule's counter.
    expect(lossDrops).toBeGreaterThan(0);
    expect(Number(l[12])).toBe(lossDrops);
    expect(l[13]).toBe('NETFILTER_DROP');

    // s cycles the sort key; q quits, detaching everything and printing the counters.
    tmux('send-keys', '-t', session, 's');
    for (const t0 = Date.now(); !screen().includes('sorted by failures') && Date.now() - t0 < 3000; ) await sleep(100);
    expect(screen()).toContain('sorted by failures');
    tmux('send-keys', '-t', session, 'q');
    for (const t0 = Date.now(); alive() && Date.now() - t0 < 10000; ) await sleep(100);
    expect(alive()).toBe(false);
    expect(readFileSync(`${dir}/rc`, 'utf8').trim()).toBe('0');
    const stderr = readFileSync(`${dir}/stderr`, 'utf8');
    expect(stderr).toMatch(/netbpf top: retrans \d+ events, 0 lost, \d+ missed by recursion; drops \d+ events, 0 lost/);
  }, 60000);

  it('prints snapshots when stdout is not a terminal, and one JSON snapshot with --once --json', async () => {
    const out = execFileSync(process.execPath, [join(root, 'bin/netbpf.js'), 'top', '--once', '-i', '1', '--json', '-b', 'endpoint', '-c', '10.231.0.0/24'], { encoding: 'utf8', timeout: 20000 });
    const lines = out.trim().split('\n').map((x) => JSON.parse(x));
    expect(lines.filter((x) => x.type === 'start').map((x) => x.tool)).toEqual(['top/retrans', 'top/drops', 'top/connect', 'top/life']);
    const snaps = lines.filter((x) => x.type === 'top');
    expect(snaps).toHaveLength(1);
    expect(snaps[0]).toMatchObject({ final: true, by: 'endpoint', sort: 'health' });
    expect(lines.filter((x) => x.type === 'counters')).toHaveLength(4);
  }, 30000);
});
