/**
 * netbpf_tcp_connections against `ss`: two private namespaces hold known numbers of sockets in each TCP state
 * (connections held open, half-closed ones in FIN_WAIT2 / CLOSE_WAIT, TIME_WAIT left by the server's close, request
 * sockets whose final ACK an nft rule drops, SYNs an nft rule drops), `netbpf serve --prometheus --netns` is
 * scraped, and each state's count in each namespace must equal `ss -Htan state X | wc -l` run in that namespace
 * just before and just after the scrape (the namespaces are quiet, so both agree). A third watched namespace is
 * deleted: its series must vanish (no stale counts) and its failed reads be counted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, sleep } from '../helpers.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const SUBNET = 247;
const EXPORTER_PORT = 23000 + (process.pid % 500);
/** B's ports: held open, left in CLOSE_WAIT, closed by the server (TIME_WAIT in B), ACK dropped (SYN_RECV in B),
 * SYN dropped (SYN_SENT in A); A's own listeners. */
const HOLD = 5471, CLOSE_WAIT = 5472, TIME_WAIT = 5473, SYN_RECV = 5474, SYN_SENT = 5475, A_LISTEN = [5476, 5477];
const N = { hold: 5, closeWait: 4, timeWait: 6, synRecv: 3, synSent: 2 };

/** The gauge's state label -> ss's state filter name. */
const SS_STATE: Record<string, string> = {
  ESTABLISHED: 'established', SYN_SENT: 'syn-sent', SYN_RECV: 'syn-recv', FIN_WAIT1: 'fin-wait-1', FIN_WAIT2: 'fin-wait-2',
  TIME_WAIT: 'time-wait', CLOSE: 'closed', CLOSE_WAIT: 'close-wait', LAST_ACK: 'last-ack', LISTEN: 'listening', CLOSING: 'closing',
};

/** B: listeners; CLOSE_WAIT's peers are never closed, TIME_WAIT's are closed at once (the server closes first). */
const SERVER = `
const net = require('node:net');
const [hold, cw, tw, sr] = process.argv.slice(1).map(Number);
const kept = [];
const listen = (port, onConn) => new Promise((r) => net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); onConn(s); }).listen(port, '::', r));
Promise.all([listen(hold, (s) => kept.push(s)), listen(cw, (s) => kept.push(s)), listen(tw, (s) => s.end()), listen(sr, (s) => kept.push(s))])
  .then(() => process.stdout.write('listening\\n'));
`;

/** A: its own listeners, connections held, half-closed (FIN_WAIT2), to a server closing (gone), unacknowledged
 * (ESTABLISHED here, SYN_RECV there), and SYNs nobody answers (SYN_SENT). */
const CLIENT = `
const net = require('node:net');
const [host, hold, cw, tw, sr, ss, l1, l2, nHold, nCw, nTw, nSr, nSs] = process.argv.slice(1);
const kept = [];
const connect = (port, onConnect) => new Promise((resolve) => {
  const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
  kept.push(s);
  s.on('error', () => {});
  s.on('connect', () => onConnect(s, resolve));
});
const times = (n, f) => Promise.all(Array.from({ length: Number(n) }, f));
(async () => {
  await Promise.all([l1, l2].map((p) => new Promise((r) => net.createServer().listen(Number(p), '0.0.0.0', r))));
  await times(nHold, () => connect(hold, (s, done) => done()));
  await times(nCw, () => connect(cw, (s, done) => s.end(done)));
  await times(nTw, () => connect(tw, (s, done) => { s.on('end', () => s.end()); s.on('close', done); }));
  await times(nSr, () => connect(sr, (s, done) => done()));
  for (let i = 0; i < Number(nSs); i++) { const s = net.connect({ host, port: Number(ss) }); s.on('error', () => {}); kept.push(s); }
  process.stdout.write('ready\\n');
})();
`;

type Samples = Map<string, number>;

function parse(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    const m = /^(netbpf_tcp_connections(?:_read_errors_total)?)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

describeBpf('netbpf_tcp_connections (serve --prometheus --netns) against ss', () => {
  let p: NetnsPair;
  let gone: string;
  let exporter: ChildProcess;
  let exporterErr = '';
  const inodes: Record<string, number> = {};

  const scrape = async () => parse(await (await fetch(`http://127.0.0.1:${EXPORTER_PORT}/metrics`)).text());
  /** `ss -Htan state X | wc -l` for every state, in a namespace (null: this one). */
  const ssCounts = async (ns: string | null): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const [state, name] of Object.entries(SS_STATE)) {
      const argv = ['ss', '-Htan', 'state', name];
      const { stdout } = ns === null ? await run(argv[0], argv.slice(1)) : await p.exec(ns, argv);
      out[state] = stdout.split('\n').filter((l) => l.trim() !== '').length;
    }
    return out;
  };
  const gauge = (s: Samples, netns: number, name: string | null, state: string) => s.get(`netbpf_tcp_connections{netns="${netns}",${name ? `netns_name="${name}",` : ''}state="${state}"}`);
  const waitOutput = (child: ChildProcess, stream: 'stdout' | 'stderr', what: RegExp, ms: number) => new Promise<void>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no '${what.source}' within ${ms} ms: ${text}`)), ms);
    child[stream]!.on('data', (d) => { text += d; if (what.test(text)) { clearTimeout(timer); resolve(); } });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited (${code}): ${text}`)); });
  });

  beforeAll(async () => {
    p = await NetnsPair.create('tcps', SUBNET);
    gone = `${p.a.slice(0, -2)}-gone`;
    await run('ip', ['netns', 'add', gone]);
    // B: the handshake's final ACK to SYN_RECV never arrives (its request sockets stay), SYNs to SYN_SENT vanish;
    // SYN-ACKs are retried long enough to outlive the test.
    await p.exec(p.b, ['sysctl', '-qw', 'net.ipv4.tcp_synack_retries=10']);
    await p.nft(p.b, `table inet netbpf_tcps {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${SYN_RECV} tcp flags & syn == 0 drop
    tcp dport ${SYN_SENT} drop
  }
}\n`);
    const server = p.spawn(p.b, [process.execPath, '-e', SERVER, String(HOLD), String(CLOSE_WAIT), String(TIME_WAIT), String(SYN_RECV)]);
    await waitOutput(server, 'stdout', /listening/, 10000);
    const client = p.spawn(p.a, [process.execPath, '-e', CLIENT, p.addrB, ...[HOLD, CLOSE_WAIT, TIME_WAIT, SYN_RECV, SYN_SENT, ...A_LISTEN, N.hold, N.closeWait, N.timeWait, N.synRecv, N.synSent].map(String)]);
    await waitOutput(client, 'stdout', /ready/, 15000);
    for (const ns of [p.a, p.b, gone]) inodes[ns] = Number((await run('ip', ['netns', 'exec', ns, 'stat', '-Lc', '%i', '/proc/self/ns/net'])).stdout.trim());
    exporter = spawn(process.execPath, [join(root, 'bin/netbpf.js'), 'serve', '--prometheus', `127.0.0.1:${EXPORTER_PORT}`, '--netns', p.a, '--netns', p.b, '--netns', gone,
      '--no-life', '--diagnosis-window', '0', '--scrape-interval', '0', '--linger', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    exporter.stderr!.on('data', (d) => { exporterErr += d; });
    await waitOutput(exporter, 'stderr', /Prometheus metrics on/, 60000);
  }, 120000);

  afterAll(async () => {
    if (exporter && exporter.exitCode === null && exporter.signalCode === null) {
      exporter.kill('SIGTERM');
      await new Promise((r) => exporter.once('exit', r));
    }
    await p?.destroy();
    if (gone) await run('ip', ['netns', 'del', gone]).catch(() => undefined);
  }, 60000);

  it('equals ss in each watched namespace, state by state, with the states the workload made', async () => {
    const before = { a: await ssCounts(p.a), b: await ssCounts(p.b) };
    const s = await scrape();
    const after = { a: await ssCounts(p.a), b: await ssCounts(p.b) };
    expect(after).toEqual(before);
    // The workload made what it meant to (so the comparison below is not 0 = 0).
    expect(before.a).toMatchObject({ ESTABLISHED: N.hold + N.synRecv, FIN_WAIT2: N.closeWait, SYN_SENT: N.synSent, LISTEN: A_LISTEN.length });
    expect(before.b).toMatchObject({ ESTABLISHED: N.hold, CLOSE_WAIT: N.closeWait, TIME_WAIT: N.timeWait, SYN_RECV: N.synRecv, LISTEN: 4 });
    for (const [ns, counts] of [[p.a, before.a], [p.b, before.b]] as const) {
      const got = Object.fromEntries(Object.keys(SS_STATE).map((state) => [state, gauge(s, inodes[ns], ns, state)]));
      expect(got, `namespace ${ns}`).toEqual(counts);
      expect(s.get(`netbpf_tcp_connections_read_errors_total{netns="${inodes[ns]}",netns_name="${ns}"}`)).toBe(0);
    }
  });

  it('covers this host\'s own namespace too, equal to ss whenever ss reads the same before and after the scrape', async () => {
    const own = Number((await run('stat', ['-Lc', '%i', '/proc/self/ns/net'])).stdout.trim());
    // The host is shared (other tests, other users): compare the states that held still around one scrape.
    const compared = new Set<string>();
    for (let i = 0; i < 10 && !compared.has('LISTEN'); i++) {
      const before = await ssCounts(null);
      const s = await scrape();
      const after = await ssCounts(null);
      for (const state of Object.keys(SS_STATE)) {
        expect(gauge(s, own, null, state), `host ${state}`).toBeTypeOf('number');
        if (before[state] !== after[state]) continue;
        expect(gauge(s, own, null, state), `host ${state}`).toBe(before[state]);
        compared.add(state);
      }
    }
    expect(compared.has('LISTEN')).toBe(true);
  });

  it('drops a namespace that is gone from the gauge (no stale counts) and counts its failed reads', async () => {
    const netns = inodes[gone];
    expect(gauge(await scrape(), netns, gone, 'LISTEN')).toBe(0);
    await run('ip', ['netns', 'del', gone]);
    const s1 = await scrape();
    const s2 = await scrape();
    for (const s of [s1, s2]) expect([...s.keys()].filter((k) => k.startsWith('netbpf_tcp_connections{') && k.includes(`netns="${netns}"`))).toEqual([]);
    const errors = (s: Samples) => s.get(`netbpf_tcp_connections_read_errors_total{netns="${netns}",netns_name="${gone}"}`);
    expect(errors(s1)).toBeGreaterThanOrEqual(1);
    expect(errors(s2)).toBe(errors(s1)! + 1);
    // The others are still counted, and the failure was said once, with its cause.
    expect(gauge(s2, inodes[p.b], p.b, 'TIME_WAIT')).toBe(N.timeWait);
    await sleep(100);
    expect(exporterErr.match(/cannot count TCP connections of network namespace/g)?.length, exporterErr).toBe(1);
    expect(exporterErr).toContain(`open network namespace /run/netns/${gone}: No such file or directory`);
  });
});
