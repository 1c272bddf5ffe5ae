/**
 * Private network namespaces joined by a veth pair, for tests, benchmarks and the demo. Addresses exist only
 * inside these namespaces; everything is removed by destroy(). Loss is made with nftables (netem is often
 * not built in): `numgen random mod 100 < N drop`, whose counter is an oracle for the drops.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packageRoot } from '../core/addon.js';

const run = promisify(execFile);
let sequence = 0;

export interface ExecResult { stdout: string; stderr: string }

export class NetnsPair {
  /** Namespace names; side A is the client, side B the server. */
  readonly a: string;
  readonly b: string;
  readonly addrA: string;
  readonly addrB: string;
  readonly addr6A: string;
  readonly addr6B: string;
  private readonly children: ChildProcess[] = [];
  private destroyed = false;

  private constructor(tag: string, subnet: number) {
    this.addrA = `10.${subnet}.0.1`;
    this.addrB = `10.${subnet}.0.2`;
    this.addr6A = `fd00:${subnet}::1`;
    this.addr6B = `fd00:${subnet}::2`;
    const id = `${process.pid % 100000}${sequence++}`;
    this.a = `nb-${tag}-${id}-a`;
    this.b = `nb-${tag}-${id}-b`;
  }

  /**
   * Creates both namespaces, the veth pair and addresses (IPv4 and IPv6, DAD off), lo up in each. `subnet`
   * picks the addresses (10.<subnet>.0.1/2, fd00:<subnet>::1/2; default 231): tests that watch the whole
   * host (e.g. top) use their own, so traffic of other pairs on the machine is not mistaken for theirs.
   */
  static async create(tag = 't', subnet = 231): Promise<NetnsPair> {
    if (!Number.isInteger(subnet) || subnet < 1 || subnet > 254) throw new Error(`invalid subnet ${subnet}`);
    const p = new NetnsPair(tag, subnet);
    const va = `va${p.a.slice(-8, -2)}`, vb = `vb${p.b.slice(-8, -2)}`;
    try {
      await sh('ip', ['netns', 'add', p.a]);
      await sh('ip', ['netns', 'add', p.b]);
      await sh('ip', ['link', 'add', va, 'netns', p.a, 'type', 'veth', 'peer', 'name', vb, 'netns', p.b]);
      for (const [ns, dev, v4, v6] of [[p.a, va, p.addrA, p.addr6A], [p.b, vb, p.addrB, p.addr6B]]) {
        await p.exec(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
        await p.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
        await p.exec(ns, ['ip', 'addr', 'add', `${v4}/24`, 'dev', dev]);
        await p.exec(ns, ['ip', '-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
        await p.exec(ns, ['ip', 'link', 'set', dev, 'up']);
      }
      return p;
    } catch (err) {
      await p.destroy();
      throw err;
    }
  }

  exec(ns: string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return sh('ip', ['netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a long-running process in a namespace; killed by destroy(). */
  spawn(ns: string, argv: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** Starts scripts/tcp-load.mjs as a server in B and resolves once it listens. */
  async startServer(port: number, extra: string[] = []): Promise<ChildProcess> {
    const child = this.spawn(this.b, [process.execPath, join(packageRoot, 'scripts', 'tcp-load.mjs'), 'server', '--port', String(port), ...extra]);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('tcp-load server did not start')), 10000);
      child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`tcp-load server exited (${code})`)); });
    });
    return child;
  }

  /** Runs the tcp-load client in A (bounded by its own timeout) and returns its JSON result. */
  async client(host: string, port: number, args: Record<string, number> = {}): Promise<ClientResult> {
    const argv = [process.execPath, join(packageRoot, 'scripts', 'tcp-load.mjs'), 'client', '--host', host, '--port', String(port)];
    for (const [k, v] of Object.entries(args)) argv.push(`--${k}`, String(v));
    const { stdout } = await this.exec(this.a, argv, { timeoutMs: 120000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as ClientResult;
  }

  /**
   * Waits (bounded) until no TCP socket of a connection to `port` still has unacknowledged data or an unacked
   * FIN: neither the client side in `ns` (towards the port) nor the server side in the other namespace (from the
   * port; e.g. a server in LAST_ACK re-sending its FIN because the final ACK was dropped). Kernel and nft
   * counters read afterwards then include every retransmit and every drop of the workload.
   */
  async waitQuiet(ns: string, port: number, timeoutMs = 15000): Promise<void> {
    const peer = ns === this.a ? this.b : this.a;
    const busy = ['state', 'established', 'state', 'syn-sent', 'state', 'syn-recv', 'state', 'fin-wait-1', 'state', 'close-wait', 'state', 'closing', 'state', 'last-ack'];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const client = (await this.exec(ns, ['ss', '-Htn', ...busy, `( dport = :${port} )`])).stdout.trim();
      const server = (await this.exec(peer, ['ss', '-Htn', ...busy, `( sport = :${port} )`])).stdout.trim();
      if (client === '' && server === '') return;
      if (Date.now() > deadline) throw new Error(`connections to port ${port} still busy: ${client} ${server}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Loads an nftables ruleset into a namespace. */
  async nft(ns: string, ruleset: string): Promise<void> {
    await this.exec(ns, ['nft', '-f', '-'], { input: ruleset });
  }

  /** Drops `percent`% of TCP packets to `port` arriving in B, counted by the rule (table inet netbpf_loss). */
  async addLoss(percent: number, port: number): Promise<void> {
    await this.nft(this.b, `table inet netbpf_loss {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} numgen random mod 100 < ${percent} counter drop
  }
}\n`);
  }

  /** The packet count of the first counter in a table/chain (an oracle nobody here wrote). */
  async nftCounter(ns: string, table: string, chain: string, family = 'inet'): Promise<number> {
    const { stdout } = await this.exec(ns, ['nft', '-j', 'list', 'chain', family, table, chain]);
    const items = (JSON.parse(stdout) as { nftables: Array<{ rule?: { expr: Array<Record<string, { packets: number }>> } }> }).nftables;
    for (const it of items) for (const e of it.rule?.expr ?? []) if (e.counter) return e.counter.packets;
    throw new Error(`no counter in ${family} ${table} ${chain}`);
  }

  /** /proc/net/snmp of a namespace as { Tcp: { RetransSegs: n, ... }, ... }. */
  async snmp(ns: string): Promise<Record<string, Record<string, number>>> {
    const { stdout } = await this.exec(ns, ['cat', '/proc/net/snmp']);
    return parseSnmp(stdout);
  }

  /** Namespace inode, as netbpf events report it. */
  async netnsInode(ns: string): Promise<number> {
    const { stdout } = await this.exec(ns, ['stat', '-Lc', '%i', '/proc/self/ns/net']);
    return Number(stdout.trim());
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all(this.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    for (const ns of [this.a, this.b]) {
      // Close every TCP socket first: orphans (unacked data, FIN_WAIT) would otherwise outlive the namespace
      // and keep retransmitting for minutes, showing up in later measurements.
      await sh('ip', ['netns', 'exec', ns, 'ss', '-K', '-t', '-a']).catch(() => undefined);
      await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
  }
}

export interface ClientResult { ok: number; failed: number; errors: Record<string, number>; bytesSent: number; bytesReceived: number; pid: number; elapsedMs: number }

export function parseSnmp(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const lines = text.trim().split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [proto, ...names] = lines[i].split(/\s+/);
    const values = lines[i + 1].split(/\s+/).slice(1).map(Number);
    const key = proto.replace(/:$/, '');
    out[key] = Object.fromEntries(names.map((n, j) => [n, values[j]]));
  }
  return out;
}

async function sh(cmd: string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  const p = run(cmd, argv, { timeout: opts.timeoutMs ?? 30000, maxBuffer: 64 * 1024 * 1024 });
  if (opts.input !== undefined) { p.child.stdin!.end(opts.input); }
  const { stdout, stderr } = await p;
  return { stdout: String(stdout), stderr: String(stderr) };
}
