/** netbpf conntrack against the real kernel: DNAT in a private namespace, conntrack(8) as the oracle. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { NetnsPair } from '../../src/testing/netns.js';
import { packageRoot } from '../../src/core/addon.js';
import { describeBpf, hasCommand, sleep } from '../helpers.js';

const VIP = '10.231.99.99'; // exists only in namespace A's nft DNAT rule
const VIP_PORT = 80;
const PORT = 18080;
const CLI = join(packageRoot, 'bin', 'netbpf.js');

/** The CLI in a namespace, its JSON lines collected; resolves once it has started. */
class CliRun {
  lines: Array<Record<string, unknown>> = [];
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  constructor(pair: NetnsPair, ns: string, args: string[]) {
    this.child = pair.spawn(ns, [process.execPath, CLI, ...args, '--json']);
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.lines.push(JSON.parse(l) as Record<string, unknown>));
    this.child.stderr!.on('data', (d) => { this.stderr += String(d); });
    this.exited = new Promise((r) => this.child.once('close', (code) => r(code)));
  }
  async started(): Promise<void> {
    for (let i = 0; i < 100 && !this.lines.some((l) => l.type === 'start'); i++) {
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    if (!this.lines.some((l) => l.type === 'start')) throw new Error(`CLI did not start: ${this.stderr}`);
    await sleep(200); // ctnetlink subscription settles
  }
  async stop(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.exited;
  }
  of(type: string) { return this.lines.filter((l) => l.type === type); }
}

async function dnat(pair: NetnsPair): Promise<void> {
  await pair.nft(pair.a, `table ip netbpf_nat {
  chain out { type nat hook output priority -100; policy accept;
    ip daddr ${VIP} tcp dport ${VIP_PORT} dnat to ${pair.addrB}:${PORT}
  }
}\n`);
  await pair.exec(pair.a, ['ip', 'route', 'add', `${VIP}/32`, 'via', pair.addrB]);
}

describeBpf('netbpf conntrack (real kernel, namespaces, conntrack(8) oracle)', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    expect(hasCommand('conntrack'), 'conntrack(8) is the oracle: apt install conntrack').toBe(true);
    pair = await NetnsPair.create('ct');
    await dnat(pair);
    await pair.startServer(PORT);
  }, 30000);
  afterAll(async () => { await pair?.destroy(); });

  it('reports N new and N destroyed entries with both tuples (VIP -> real server), agreeing with conntrack -L/-D', async () => {
    const N = 12;
    const cli = new CliRun(pair, pair.a, ['conntrack', '--enable-accounting', '-D', String(VIP_PORT)]);
    try {
      await cli.started();
      const res = await pair.client(VIP, VIP_PORT, { conns: N, parallel: 4, bytes: 1000 });
      expect(res.ok).toBe(N);
      // Oracle 1: conntrack -L in namespace A lists exactly the entries the connections created.
      const { stdout } = await pair.exec(pair.a, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', VIP]);
      const listed = stdout.trim().split('\n').filter((l) => l.includes(`dst=${VIP}`));
      expect(listed.length).toBe(N);
      // Oracle 2: conntrack -D says how many entries it deleted; each must produce one destroy event.
      const del = await pair.exec(pair.a, ['conntrack', '-D', '-p', 'tcp', '--orig-dst', VIP]);
      const deleted = Number(/(\d+) flow entries have been deleted/.exec(del.stdout + del.stderr)?.[1]);
      expect(deleted).toBe(N);
      for (let i = 0; i < 50 && cli.lines.filter((l) => l.kind === 'destroy').length < N; i++) await sleep(100);
    } finally {
      expect(await cli.stop()).toBe(0);
    }
    const events = cli.of('conntrack') as Array<{ kind: string; orig: { dst: string; dport: number; sport: number }; reply: { src: string; sport: number }; dnat: boolean; tcpState: string; lifetimeMs: number | null; packets: number[] | null }>;
    const news = events.filter((e) => e.kind === 'new');
    const destroys = events.filter((e) => e.kind === 'destroy');
    console.info(`conntrack: ${news.length} new / ${destroys.length} destroy events; conntrack -L listed and -D deleted ${N}`);
    expect(news.length).toBe(N);
    expect(destroys.length).toBe(N);
    for (const e of events) {
      expect(e.orig.dst).toBe(VIP);
      expect(e.orig.dport).toBe(VIP_PORT);
      expect(e.reply.src).toBe(pair.addrB);
      expect(e.reply.sport).toBe(PORT);
      expect(e.dnat).toBe(true);
    }
    // Same connections on both sides (source ports), lifetimes known, counters present (acct enabled before).
    expect(new Set(destroys.map((e) => e.orig.sport))).toEqual(new Set(news.map((e) => e.orig.sport)));
    for (const e of destroys) {
      expect(e.lifetimeMs).not.toBeNull();
      expect(e.packets![0]).toBeGreaterThan(0);
    }
    const start = cli.of('start')[0] as { hooks: Array<{ feature: string; hook: string | null }> };
    expect(start.hooks.map((h) => h.feature).sort()).toEqual(['destroyed entries', 'new entries']);
    expect(start.hooks.every((h) => h.hook)).toBe(true);
  }, 60000);

  it('retrans --resolve-nat groups retransmits on a lossy DNAT path under the real server, not the VIP', async () => {
    await pair.addLoss(10, PORT);
    const cli = new CliRun(pair, pair.a, ['retrans', '--resolve-nat', '--summary', '-D', String(VIP_PORT)]);
    let drops = 0;
    try {
      await cli.started();
      const res = await pair.client(VIP, VIP_PORT, { conns: 4, parallel: 4, bytes: 2_000_000 });
      expect(res.ok).toBe(4);
      drops = await pair.nftCounter(pair.b, 'netbpf_loss', 'input');
      await sleep(300);
    } finally {
      expect(await cli.stop()).toBe(0);
      await pair.exec(pair.b, ['nft', 'delete', 'table', 'inet', 'netbpf_loss']);
    }
    expect(drops).toBeGreaterThan(0);
    console.info(`resolve-nat: nft dropped ${drops} packets; ${cli.of('retransmit').length} retransmit events`);
    const summary = cli.lines.find((l) => l.type === 'summary' && l.final) as { byAddress: Array<{ daddr: string; segs: number }> };
    expect(summary.byAddress.length).toBeGreaterThan(0);
    expect(summary.byAddress.map((r) => r.daddr)).toEqual([pair.addrB]);
    const live = cli.of('retransmit') as Array<{ daddr: string; dport: number; natFrom?: string }>;
    expect(live.length).toBeGreaterThan(0);
    for (const e of live) {
      expect(e.daddr).toBe(pair.addrB);
      expect(e.natFrom).toBe(`${VIP}:${VIP_PORT}`);
    }
  }, 90000);

  it('counts table-full drops as the kernel does (/proc/net/stat/nf_conntrack) under a tiny nf_conntrack_max', async () => {
    // nf_conntrack_max is global on this kernel (read-only in other namespaces): lowered for well under a
    // second around a bounded burst, then restored. Namespace A's own count is what is compared with it.
    const maxPath = '/proc/sys/net/netfilter/nf_conntrack_max';
    const statDrop = async () => {
      const { stdout } = await pair.exec(pair.a, ['cat', '/proc/net/stat/nf_conntrack']);
      const [head, ...rows] = stdout.trim().split('\n');
      const col = head.trim().split(/\s+/).indexOf('drop');
      return rows.reduce((n, r) => n + parseInt(r.trim().split(/\s+/)[col], 16), 0);
    };
    await pair.exec(pair.a, ['conntrack', '-F']).catch(() => undefined);
    await pair.nft(pair.a, `table inet netbpf_ct {
  chain out { type filter hook output priority 0; policy accept;
    udp dport 20000-20999 ct state new counter
  }
}\n`);
    const cli = new CliRun(pair, pair.a, ['conntrack', '--summary', '-c', `${pair.addrB}/32`]);
    const before = await statDrop();
    const original = readFileSync(maxPath, 'utf8').trim();
    const BURST = 40, MAX = 8;
    try {
      await cli.started();
      writeFileSync(maxPath, `${MAX}\n`);
      try {
        // One process, 40 datagrams to distinct ports: 40 would-be entries, bounded and fast.
        await pair.exec(pair.a, [process.execPath, '-e', `const s=require('dgram').createSocket('udp4');let n=0;const go=()=>{if(n>=${BURST})return s.close();s.send('x',20000+n++,'${pair.addrB}',()=>go())};go();`], { timeoutMs: 5000 }).catch(() => undefined);
      } finally {
        writeFileSync(maxPath, `${original}\n`);
      }
      await sleep(300);
    } finally {
      writeFileSync(maxPath, `${original}\n`);
      expect(await cli.stop()).toBe(0);
      await pair.exec(pair.a, ['nft', 'delete', 'table', 'inet', 'netbpf_ct']).catch(() => undefined);
    }
    const kernelDrops = (await statDrop()) - before;
    const summary = cli.lines.find((l) => l.type === 'summary' && l.final) as { pressure: Array<{ netns: number; drop: number; max: number }>; totals: { created: number } };
    const inode = await pair.netnsInode(pair.a);
    const pressure = summary.pressure.find((p) => p.netns === inode)!;
    console.info(`table full: kernel drop column +${kernelDrops}, netbpf ${pressure.drop}, created ${summary.totals.created} of ${BURST}`);
    expect(kernelDrops).toBeGreaterThan(0);
    expect(summary.pressure.map((p) => p.netns)).toEqual([inode]);
    expect(pressure.drop).toBe(kernelDrops);
    // Entries that made it in plus packets dropped for want of one account for the burst.
    expect(summary.totals.created + kernelDrops).toBe(BURST);
  }, 60000);
});
