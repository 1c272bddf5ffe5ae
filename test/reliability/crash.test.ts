/** Crash safety: a SIGKILLed tool leaves no BPF program, map or link behind (the kernel's own list, via bpftool)
 * and no child process; SIGINT/SIGTERM print the final summary, detach and exit 0; two instances at once each
 * see every event (oracle: an nft rule's counter). */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf } from '../helpers.js';
import { bpfIdsOf, bpftoolLive, buildHelper, childrenOf, CliProcess, jsonLines, running, until } from './lib.js';

const TOOLS: Array<{ tool: string; args: string[]; child?: RegExp }> = [
  { tool: 'retrans', args: ['retrans'] },
  { tool: 'drops', args: ['drops', '--all'] },
  { tool: 'life', args: ['life'] },
  { tool: 'connect', args: ['connect'] },
  // auto on this kernel: a netfilter BPF program for new entries plus native ctnetlink sockets for destroys (no child).
  { tool: 'conntrack', args: ['conntrack'] },
];

describeBpf('crash safety', () => {
  for (const t of TOOLS) {
    it(`kill -9 of ${t.tool} leaves no BPF program, map, link or child process behind`, async () => {
      const p = new CliProcess(t.args);
      try {
        await p.waitFor(/attached in/);
        const held = bpfIdsOf(p.pid);
        expect(held.progs.length).toBeGreaterThan(0);
        expect(held.maps.length).toBeGreaterThan(0);
        expect(held.links.length).toBeGreaterThan(0);
        const before = bpftoolLive();
        for (const id of held.progs) expect(before.progs.has(id)).toBe(true);
        for (const id of held.links) expect(before.links.has(id)).toBe(true);
        const kids = childrenOf(p.pid);
        if (t.child) {
          expect(kids.length).toBe(1);
          expect(readCmdline(kids[0])).toMatch(t.child);
        } else {
          expect(kids).toEqual([]);
        }
        p.child.kill('SIGKILL');
        expect((await p.exit).signal).toBe('SIGKILL');
        // The kernel frees programs after an RCU grace period: wait (bounded) until bpftool no longer lists them.
        const gone = await until(() => {
          const now = bpftoolLive();
          return held.progs.every((id) => !now.progs.has(id)) && held.maps.every((id) => !now.maps.has(id)) && held.links.every((id) => !now.links.has(id));
        }, 5000);
        const now = bpftoolLive();
        expect({ gone, progs: held.progs.filter((id) => now.progs.has(id)).map((id) => now.progs.get(id)), links: held.links.filter((id) => now.links.has(id)) })
          .toEqual({ gone: true, progs: [], links: [] });
        expect(await until(() => kids.every((k) => !running(k)), 3000)).toBe(true);
      } finally {
        await p.stop('SIGKILL');
      }
    });
  }

  for (const [i, t] of TOOLS.entries()) {
    const signal: NodeJS.Signals = i % 2 ? 'SIGTERM' : 'SIGINT';
    it(`${signal} makes ${t.tool} print its final summary and counters, detach and exit 0`, async () => {
      const p = new CliProcess([...t.args, '--summary']);
      try {
        await p.waitFor(/attached in/);
        const held = bpfIdsOf(p.pid);
        const kids = childrenOf(p.pid);
        const r = await p.stop(signal);
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/whole run/);
        expect(r.stderr).toMatch(new RegExp(`netbpf ${t.tool}: \\d+ events, \\d+ lost in the kernel`));
        expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
        expect(await until(() => { const now = bpftoolLive(); return held.progs.every((id) => !now.progs.has(id)) && held.links.every((id) => !now.links.has(id)); }, 5000)).toBe(true);
        expect(await until(() => kids.every((k) => !running(k)), 3000)).toBe(true);
      } finally {
        await p.stop('SIGKILL');
      }
    });
  }

  let ns: NetnsPair;
  let flood: string;
  beforeAll(async () => {
    flood = buildHelper('flood');
    ns = await NetnsPair.create('crash');
    await ns.nft(ns.b, 'table inet twice {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    udp dport 9100 counter drop\n  }\n}\n');
  });
  afterAll(async () => { await ns?.destroy(); });

  it('two drops instances at the same time each see every drop (== the nft rule counter)', async () => {
    // Sources in 100.96.0.0/12 only: other runs (the soak) flood from other parts of 100.64.0.0/10.
    const args = ['drops', '--all', '-c', '100.96.0.0/12', '--summary', '--json'];
    const a = new CliProcess(args), b = new CliProcess(args);
    try {
      await Promise.all([a.waitFor(/attached in/), b.waitFor(/attached in/)]);
      const sent = 5000;
      const { stdout } = await ns.exec(ns.a, [flood, ns.addrB, '9100', String(sent), '20000', '1000', '100.96.0.0']);
      expect(Number(stdout.split(' ')[0])).toBe(sent);
      const dropped = await ns.nftCounter(ns.b, 'twice', 'input');
      expect(dropped).toBe(sent);
      const [ra, rb] = await Promise.all([a.stop('SIGINT'), b.stop('SIGINT')]);
      for (const r of [ra, rb]) {
        expect(r.code).toBe(0);
        const summary = jsonLines(r.stdout).filter((j) => j.type === 'summary' && j.final).at(-1)!;
        const counters = jsonLines(r.stdout).find((j) => j.type === 'counters')!;
        expect(counters.lost).toBe(0);
        expect(summary.totals.drops).toBe(dropped);
        expect(summary.byReason.find((x: { reason: string }) => x.reason === 'NETFILTER_DROP').count).toBe(dropped);
      }
    } finally {
      await a.stop('SIGKILL');
      await b.stop('SIGKILL');
    }
  });
});

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}
