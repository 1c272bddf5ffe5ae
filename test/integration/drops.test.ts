/**
 * netbpf drops against the real kernel: traffic between two private namespaces, drop counts compared with
 * oracles nobody here wrote (nft rule counters, /proc/net/snmp of the namespace, the kernel's own BTF enum).
 * Events are matched by the namespace inode too: other tests on this machine may use the same addresses.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describeBpf, kernelHasDropReasons, sleep } from '../helpers.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { addon, packageRoot } from '../../src/core/addon.js';
import { drops, DropsAggregator, NetbpfError, type DropEvent } from '../../src/index.js';

/** Kernels before 5.17 pass no reason to kfree_skb: every drop is UNAVAILABLE (code -1), never a guessed reason. */
const reasons = kernelHasDropReasons();

/** The value the running kernel gives a reason, straight from its BTF (independent of DropReasons); -1 where the
 * kernel has no drop reasons. */
function kernelReasonCode(name: string): number {
  if (!reasons) return -1;
  const entry = addon().kernelBtfEnum('skb_drop_reason')!.find(([n]) => n === `SKB_DROP_REASON_${name}`);
  if (!entry) throw new Error(`kernel has no SKB_DROP_REASON_${name}`);
  return entry[1];
}

/** The reason name a drop of kind `name` carries on this kernel. */
const reasonName = (name: string) => (reasons ? name : 'UNAVAILABLE');

/** Runs fn while a drops trace collects events; returns them once every record has been delivered. */
async function traced(opts: Parameters<typeof drops>[0], fn: () => Promise<void>, until?: (events: DropEvent[]) => boolean): Promise<{ events: DropEvent[]; lost: number }> {
  const trace = drops(opts);
  const events: DropEvent[] = [];
  trace.onEvents((batch) => { for (const e of batch) events.push(e); });
  await trace.start();
  try {
    await fn();
    await sleep(300);
    // What the kernel frees later (a closed socket's queue, after an RCU grace period): waited for, bounded.
    for (const t0 = Date.now(); until && !until(events) && Date.now() - t0 < 30_000; ) await sleep(100);
  } finally {
    await trace.stop();
  }
  return { events, lost: trace.counters().lost };
}

/** Connects from namespace A `n` times to host:port (nothing listens there); returns the refusals. */
async function refusedConnects(pair: NetnsPair, host: string, port: number, n: number): Promise<number> {
  const script = `const net=require('net');let refused=0;(async()=>{for(let i=0;i<${n};i++){await new Promise(r=>{const s=net.connect({host:'${host}',port:${port}});s.setTimeout(3000,()=>{s.destroy();r();});s.on('error',e=>{if(e.code==='ECONNREFUSED')refused++;r();});s.on('connect',()=>{s.destroy();r();});});}console.log(refused);})();`;
  const { stdout } = await pair.exec(pair.a, [process.execPath, '-e', script], { timeoutMs: 30000 });
  return Number(stdout.trim());
}

describeBpf('netbpf drops (real kernel, private namespaces)', () => {
  let pair: NetnsPair;
  let nsB = 0;
  beforeAll(async () => {
    pair = await NetnsPair.create('drp');
    nsB = await pair.netnsInode(pair.b);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  it('counts exactly the packets an nft drop rule drops (NETFILTER_DROP per destination = the rule counter)', async () => {
    const port = 47311;
    await pair.nft(pair.b, `table inet drops_test {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} numgen random mod 100 < 15 counter drop
  }
}\n`);
    await pair.startServer(port);
    const agg = new DropsAggregator();
    // Without drop reasons --reason cannot select them: it says so, and the trace takes every drop to the port.
    if (!reasons) expect(() => drops({ reasons: ['NETFILTER_DROP'] })).toThrow(/no drop reasons .*--reason cannot be used/);
    const { events, lost } = await traced(reasons ? { reasons: ['NETFILTER_DROP'] } : { localPort: port }, async () => {
      const r = await pair.client(pair.addrB, port, { bytes: 300000, conns: 4, parallel: 2 });
      expect(r.ok).toBeGreaterThan(0);
    });
    const counter = await pair.nftCounter(pair.b, 'drops_test', 'input');
    // Without reasons, what netfilter dropped is what nf_hook_slow freed (its NF_DROP verdict path).
    const mine = events.filter((e) => e.netns === nsB && (reasons || e.location.startsWith('nf_hook_slow+')));
    agg.addAll(mine);
    const row = agg.snapshot().byDestination.find((r) => r.key === `${pair.addrB}:${port} ${reasonName('NETFILTER_DROP')}`);
    expect(lost).toBe(0);
    expect(counter).toBeGreaterThan(0);
    expect(row?.count).toBe(counter);
    // Received packets: the remote side is the client in A, the packets are TCP with flags decoded.
    expect(mine.every((e) => e.direction === 'received' && e.remoteAddr === pair.addrA && e.proto === 'tcp')).toBe(true);
    expect(mine[0].reasonCode).toBe(kernelReasonCode('NETFILTER_DROP'));
  });

  it('reports TCP SYNs to a port with no listener as NO_SOCKET, one per refused connect (= RSTs the kernel sent)', async () => {
    const port = 47312;
    const before = (await pair.snmp(pair.b)).Tcp.OutRsts;
    let refused = 0;
    const { events } = await traced({ localPort: port }, async () => {
      refused = await refusedConnects(pair, pair.addrB, port, 5);
    });
    const rsts = (await pair.snmp(pair.b)).Tcp.OutRsts - before;
    const noSocket = events.filter((e) => e.netns === nsB && e.reason === reasonName('NO_SOCKET') && e.daddr === pair.addrB && e.dport === port);
    expect(refused).toBe(5);
    expect(rsts).toBe(5);
    expect(noSocket.length).toBe(5);
    for (const e of noSocket) {
      expect(e.reasonCode).toBe(kernelReasonCode('NO_SOCKET'));
      expect(e.tcpFlags).toBe('SYN');
      expect(e.saddr).toBe(pair.addrA);
      expect(e.remotePort).toBe(e.sport);
      expect(e.location).toMatch(/^tcp_v4_rcv\+/);
    }
  });

  it('reports UDP datagrams refused by a full receive buffer as SOCKET_RCVBUFF (= Udp RcvbufErrors) and the rest, freed at close, as purges', async () => {
    const port = 47313;
    const sent = 200;
    const receiver = pair.spawn(pair.b, ['python3', '-c',
      `import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)\ns.bind(('${pair.addrB}',${port}))\nprint('ready',flush=True)\ntime.sleep(30)`]);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('udp receiver did not start')), 10000);
      receiver.stdout!.once('data', () => { clearTimeout(t); resolve(); });
    });
    const before = (await pair.snmp(pair.b)).Udp;
    const { events } = await traced({ all: true, localPort: port }, async () => {
      await pair.exec(pair.a, ['python3', '-c',
        `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(${sent}): s.sendto(b'x'*1000,('${pair.addrB}',${port}))`]);
      await sleep(300);
      const after = (await pair.snmp(pair.b)).Udp;
      rcvbufErrors = after.RcvbufErrors - before.RcvbufErrors;
      receiver.kill('SIGKILL'); // closing the socket frees what it still holds
      await new Promise((r) => receiver.once('exit', r));
    }, (seen) => seen.filter((e) => e.category === 'purge' && e.dport === port).length >= sent - rcvbufErrors);
    const mine = events.filter((e) => e.netns === nsB && e.dport === port && e.proto === 'udp');
    // Without reasons: the drops UDP's receive path freed (the rest are purges, told apart by the freeing function).
    const full = mine.filter((e) => (reasons ? e.reason === 'SOCKET_RCVBUFF' : e.category === 'drop' && /^udp_queue_rcv/.test(e.location)));
    // Queued datagrams freed at close carry neither socket nor device (skb->dev holds UDP's scratch
    // value by then): their namespace is unknown (0), so they are matched by address and port.
    const purged = events.filter((e) => e.netns === 0 && e.daddr === pair.addrB && e.dport === port && e.category === 'purge');
    expect(rcvbufErrors).toBeGreaterThan(0);
    expect(full.length).toBe(rcvbufErrors);
    expect(full[0].reasonCode).toBe(kernelReasonCode('SOCKET_RCVBUFF'));
    expect(full.every((e) => e.category === 'drop' && e.len === 1028)).toBe(true); // IP length: 20 + 8 + 1000
    // Every datagram arrived over the veth: what the buffer did not refuse was queued, then freed at close.
    const seen = [...new Set(events.filter((e) => e.dport === port && e.proto === 'udp').map((e) => `${e.category} ${e.reason} ${e.location.replace(/\+.*/, '')} netns ${e.netns === nsB ? 'B' : e.netns}`))];
    expect(purged.length, `UDP frees to the port: ${seen.join('; ')}`).toBe(sent - rcvbufErrors);
  });
  let rcvbufErrors = 0;

  it('CLI: --json --stack prints parsable drop lines with the documented fields and the kernel stack through tcp_v4_rcv', async () => {
    const port = 47314;
    const cli = spawn(process.execPath, [join(packageRoot, 'bin', 'netbpf.js'), 'drops', '--json', '--stack', '-L', String(port), '-d', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    cli.stdout.on('data', (d) => { stdout += d; });
    const attached = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`CLI did not attach: ${stderr}`)), 15000);
      cli.stderr.on('data', (d) => { stderr += d; if (/attached in/.test(stderr)) { clearTimeout(t); resolve(); } });
    });
    const exited = new Promise<number>((r) => cli.once('close', (code) => r(code ?? -1))); // close: after all output was read
    try {
      await attached;
      expect(await refusedConnects(pair, pair.addrB, port, 3)).toBe(3);
      expect(await exited).toBe(0);
    } finally {
      cli.kill('SIGKILL');
    }
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0].type).toBe('start');
    expect(lines.at(-1)!.type).toBe('counters');
    const dropsSeen = lines.filter((l) => l.type === 'drop' && l.netns === nsB);
    expect(dropsSeen.length).toBe(3);
    for (const d of dropsSeen) {
      expect(d).toMatchObject({ family: 4, proto: 'tcp', saddr: pair.addrA, daddr: pair.addrB, dport: port, reason: reasonName('NO_SOCKET'), reasonCode: kernelReasonCode('NO_SOCKET'), category: 'drop', direction: 'received', remoteAddr: pair.addrA, tcpFlags: 'SYN', len: expect.any(Number) });
      expect(typeof d.time).toBe('string');
      expect(typeof d.sport).toBe('number');
      expect(d.stack as string[]).toEqual(expect.arrayContaining([expect.stringMatching(/^tcp_v4_rcv\+0x/)]));
    }
    expect(stderr).toMatch(/0 lost in the kernel/);
    // What this kernel cannot give is said at start-up, in one line.
    if (reasons) expect(stderr).not.toMatch(/drop reasons unavailable/);
    else expect(stderr).toMatch(/drop reasons unavailable: kfree_skb has no reason argument on this kernel \(< 5\.17\)/);
  });

  it('says which hooks were refused when forced onto tcp_drop (kprobe/fentry) on a kernel that lacks them', async () => {
    const trace = drops({ hook: 'tcp_drop' });
    const err = await trace.start().then(() => null, (e: unknown) => e);
    await trace.stop();
    // On kernels with kprobes and tcp_drop() (< 5.19) this would attach; this machine has neither.
    expect(err).toBeInstanceOf(NetbpfError);
    expect((err as NetbpfError).kind).toBe('kernel');
    expect((err as NetbpfError).message).toMatch(/fentry\/tcp_drop: .+; kprobe\/tcp_drop: /);
  });
});
