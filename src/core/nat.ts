/**
 * NAT resolution: which real backend a connection to a virtual address (a Service VIP, a DNAT rule) reaches.
 * conntrack knows: an entry's original tuple is what the client sent (destination = VIP) and its reply
 * tuple's source is who really answers. Fed by conntrack events (netbpf conntrack, `conntrack -E`) or
 * `conntrack -L` snapshots; any tool that reports sockets (retrans, drops, life) asks it per 5-tuple.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { NetbpfError } from './errors.js';
import { existsSync } from 'node:fs';

/** One direction of a conntrack entry. */
export interface CtTuple { src: string; dst: string; sport: number; dport: number }

/** What NAT resolution needs from a conntrack entry. */
export interface NatEntry { protocol: number; orig: CtTuple; reply: CtTuple }

/** The destination a socket's packets really reach. */
export interface NatTarget { daddr: string; dport: number }

const key5 = (protocol: number, saddr: string, sport: number, daddr: string, dport: number) => `${protocol}|${saddr}|${sport}|${daddr}|${dport}`;
const key2 = (protocol: number, daddr: string, dport: number) => `${protocol}|${daddr}|${dport}`;

/** Is the entry's destination translated (reply source differs from original destination)? */
export function isDnat(e: NatEntry): boolean {
  return e.reply.src !== e.orig.dst || e.reply.sport !== e.orig.dport;
}

/** Bounded maps from original 5-tuple (exact) and original destination (latest backend seen) to the backend. */
export class NatResolver {
  private readonly exact = new Map<string, NatTarget>();
  private readonly byVip = new Map<string, NatTarget>();
  constructor(private readonly maxEntries = 262144) {}

  /** Learns from a conntrack entry (new, snapshot or destroy); entries without DNAT are ignored. */
  add(e: NatEntry): void {
    if (!isDnat(e)) return;
    const target = { daddr: e.reply.src, dport: e.reply.sport };
    if (this.exact.size >= this.maxEntries) this.exact.delete(this.exact.keys().next().value as string);
    this.exact.set(key5(e.protocol, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport), target);
    if (this.byVip.size >= this.maxEntries) this.byVip.delete(this.byVip.keys().next().value as string);
    this.byVip.set(key2(e.protocol, e.orig.dst, e.orig.dport), target);
  }

  /** The backend of this connection (exact), or the latest backend seen for its destination, or null. */
  resolve(protocol: number, saddr: string, sport: number, daddr: string, dport: number): NatTarget | null {
    return this.exact.get(key5(protocol, saddr, sport, daddr, dport)) ?? this.byVip.get(key2(protocol, daddr, dport)) ?? null;
  }

  get size(): number {
    return this.exact.size;
  }
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, dccp: 33, gre: 47, icmpv6: 58, sctp: 132, udplite: 136 };

/** One line of `conntrack -L/-E -o extended[,timestamp,id]`, parsed. */
export interface CtLine extends NatEntry {
  event: 'new' | 'update' | 'destroy' | null;
  /** Event time from -o timestamp, ms since the epoch; null when absent. */
  time: number | null;
  family: 4 | 6;
  tcpState: string | null;
  packets: [number, number] | null;
  bytes: [number, number] | null;
  mark: number;
  zone: number;
  /** delta-time= on DESTROY lines (seconds, needs nf_conntrack_timestamp=1), else null. */
  lifetimeS: number | null;
  id: number | null;
  flags: string[];
}

/** Parses a `conntrack` text line (extended output); null for lines that are not entries. */
export function parseConntrackLine(line: string): CtLine | null {
  const tokens = line.trim().split(/\s+/);
  let i = 0;
  let time: number | null = null;
  let event: CtLine['event'] = null;
  const ts = /^\[(\d+)\.(\d+)\]$/.exec(tokens[i] ?? '');
  if (ts) { time = Number(ts[1]) * 1000 + Number(ts[2].padEnd(6, '0').slice(0, 6)) / 1000; i++; }
  const ev = /^\[(NEW|UPDATE|DESTROY)\]$/.exec(tokens[i] ?? '');
  if (ev) { event = ev[1].toLowerCase() as CtLine['event']; i++; }
  if (tokens[i] !== 'ipv4' && tokens[i] !== 'ipv6') return null;
  const family = tokens[i] === 'ipv4' ? 4 : 6;
  i += 2;
  const protoName = tokens[i];
  const protocol = Number(tokens[i + 1]);
  if (!protoName || !Number.isInteger(protocol)) return null;
  i += 2;
  let tcpState: string | null = null;
  const tuples: Array<Partial<CtTuple> & { packets?: number; bytes?: number }> = [];
  const out: CtLine = {
    event, time, family, protocol: PROTOCOLS[protoName] ?? protocol, orig: null as unknown as CtTuple, reply: null as unknown as CtTuple,
    tcpState, packets: null, bytes: null, mark: 0, zone: 0, lifetimeS: null, id: null, flags: [],
  };
  for (; i < tokens.length; i++) {
    const t = tokens[i];
    const eq = t.indexOf('=');
    if (eq < 0) {
      if (/^\[\w+\]$/.test(t)) out.flags.push(t.slice(1, -1));
      else if (/^[A-Z_]+$/.test(t)) tcpState = t;
      continue;
    }
    const k = t.slice(0, eq), v = t.slice(eq + 1);
    if (k === 'src') tuples.push({ src: v });
    const cur = tuples[tuples.length - 1];
    if (k === 'dst' && cur) cur.dst = v;
    else if (k === 'sport' && cur) cur.sport = Number(v);
    else if (k === 'dport' && cur) cur.dport = Number(v);
    else if (k === 'packets' && cur) cur.packets = Number(v);
    else if (k === 'bytes' && cur) cur.bytes = Number(v);
    else if (k === 'mark') out.mark = Number(v);
    else if (k === 'zone') out.zone = Number(v);
    else if (k === 'delta-time') out.lifetimeS = Number(v);
    else if (k === 'id') out.id = Number(v);
  }
  if (tuples.length < 2 || !tuples[0].dst || !tuples[1].dst) return null;
  const tuple = (p: Partial<CtTuple>): CtTuple => ({ src: p.src!, dst: p.dst!, sport: p.sport ?? 0, dport: p.dport ?? 0 });
  out.orig = tuple(tuples[0]);
  out.reply = tuple(tuples[1]);
  out.tcpState = tcpState;
  if (tuples[0].packets !== undefined) out.packets = [tuples[0].packets, tuples[1].packets ?? 0];
  if (tuples[0].bytes !== undefined) out.bytes = [tuples[0].bytes, tuples[1].bytes ?? 0];
  return out;
}

/** Entries of `conntrack -L -o extended` in the caller's network namespace. */
export function conntrackSnapshot(timeoutMs = 10000): Promise<CtLine[]> {
  return new Promise((resolve, reject) => {
    execFile('conntrack', ['-L', '-o', 'extended'], { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') reject(new NetbpfError('runtime', 'conntrack(8) not found: install conntrack (conntrack-tools)'));
      else if (err) reject(new NetbpfError('runtime', `conntrack -L failed: ${err.message.split('\n')[0]}`));
      else resolve(String(stdout).split('\n').map(parseConntrackLine).filter((l): l is CtLine => l !== null));
    });
  });
}

/**
 * Streams ctnetlink events through a child `conntrack -E` (the kernel's NEW/DESTROY multicast groups) in the
 * caller's network namespace. `events` is e.g. ['NEW', 'DESTROY']. Stop with stop().
 */
export class ConntrackEventStream {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** Lines that did not parse (the conntrack tool's own messages, e.g. overrun warnings). */
  unparsed: string[] = [];
  /** Event overruns the tool reported (ctnetlink's socket buffer overflowed: events lost). */
  overruns = 0;

  constructor(private readonly events: string[], private readonly onLine: (l: CtLine) => void) {}

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const argv = ['conntrack', '-E', '-e', this.events.join(','), '-o', 'timestamp,extended,id', '--buffer-size', String(8 * 1024 * 1024)];
      // A child blocked on netlink outlives a SIGKILLed parent (nothing ever writes to its closed stdout):
      // setpriv --pdeathsig has the kernel kill it when its parent dies.
      const tied = pdeathsigWrapper() ? [pdeathsigWrapper()!, '--pdeathsig', 'KILL', '--', ...argv] : argv;
      const child = spawn(tied[0], tied.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      let started = false;
      const stderrLines: string[] = [];
      this.exited = new Promise((r) => child.once('close', (code) => {
        r();
        // Failing right away (no CAP_NET_ADMIN, no conntrack module) must not look like a quiet table.
        if (!started) {
          const why = stderrLines.join('; ') || `exit status ${code}`;
          if (/failed to execute/.test(why)) {
            reject(new NetbpfError('runtime', `cannot run conntrack -E: ${why.replace(/^setpriv: /, '')} (install conntrack-tools)`));
            return;
          }
          const kind = /not permitted|permission denied/i.test(why) ? 'privilege' : 'runtime';
          reject(new NetbpfError(kind, `conntrack -E failed: ${why}${kind === 'privilege' ? ' (ctnetlink needs CAP_NET_ADMIN)' : ''}`));
        }
      }));
      child.once('error', (err) => reject(new NetbpfError('runtime', `cannot run conntrack -E: ${err.message} (install conntrack-tools)`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const l = parseConntrackLine(line);
        if (l) this.onLine(l);
        else if (line.trim() && this.unparsed.length < 100) this.unparsed.push(line);
      });
      createInterface({ input: child.stderr! }).on('line', (line) => {
        if (!started && stderrLines.length < 5 && line.trim()) stderrLines.push(line.trim().replace(/^conntrack v[\d.]+ \(conntrack-tools\): /, ''));
        if (/overrun|No buffer space/i.test(line)) this.overruns++;
        else if (line.trim() && this.unparsed.length < 100) this.unparsed.push(line);
      });
      // conntrack -E has subscribed once it is running; give it a moment to bind before traffic starts.
      child.once('spawn', () => setTimeout(() => { if (child.exitCode === null && child.signalCode === null) { started = true; resolve(); } }, 150));
    });
  }

  async stop(): Promise<void> {
    if (!this.child) return;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
    this.child = null;
  }
}

let wrapper: string | null | undefined;
/** util-linux setpriv, when it is installed (it sets PR_SET_PDEATHSIG, then execs the command). */
function pdeathsigWrapper(): string | null {
  if (wrapper === undefined) wrapper = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((p) => existsSync(p)) ?? null;
  return wrapper;
}

/** Keeps a NatResolver fed: one `conntrack -L` snapshot, then NEW events as they come. */
export async function startNatFeed(resolver: NatResolver): Promise<{ stop(): Promise<void> }> {
  const stream = new ConntrackEventStream(['NEW'], (l) => resolver.add(l));
  await stream.start();
  for (const l of await conntrackSnapshot()) resolver.add(l);
  return stream;
}
