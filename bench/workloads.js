// Real workloads in private namespaces, each run with no tracer, with netbpf's tool and with the peers that run
// on this kernel, interleaved over rounds: the workload's own throughput, each tracer's CPU (/proc/<pid>/stat
// utime+stime over the workload) and memory, and the events it reported against what happened (oracles
// nobody here wrote: /proc/net/snmp, nft rule counters, `conntrack -D`'s count, tracepoint hits counted by
// `perf stat` with a kernel filter).
// A new tool adds TRACERS entries (how to start it, when it is attached, how to count what it reported, which
// oracle it is compared with) and names them in a WORKLOADS entry (set-up, drive, oracles).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsPair } from '../dist/testing/netns.js';
import { start, cpuNsOf, rssOf, median, sleep } from './lib.js';

const netbpf = (root, ...args) => [process.execPath, join(root, 'bin/netbpf.js'), ...args];
const lines = (text, re) => text.split('\n').filter((l) => re.test(l)).length;
/** The `netbpf <tool>: N events, ...` line every netbpf command prints on exit (records it delivered). */
const countersEvents = (stderr) => Number(/netbpf \w+: (\d+) events,/.exec(stderr)?.[1] ?? NaN);
const IPV4_LINE = /\b\d+\.\d+\.\d+\.\d+\b/;

/** Number of a kfree_skb drop reason, from the kernel's own tracepoint format (names differ between kernels). */
function dropReasonNumber(name) {
  for (const dir of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    try {
      const fmt = readFileSync(`${dir}/events/skb/kfree_skb/format`, 'utf8');
      const m = new RegExp(`\\{ (\\d+), "${name}" \\}`).exec(fmt);
      if (m) return Number(m[1]);
    } catch { /* next */ }
  }
  throw new Error(`drop reason ${name} not in the kfree_skb tracepoint format`);
}

/**
 * Tracers. `ns: 'a'` runs it inside namespace A (conntrack sees only its own namespace). `oracle` names the
 * workload's ground-truth count its reported events are compared with.
 */
export const TRACERS = {
  'netbpf retrans': {
    argv: (root, port) => netbpf(root, 'retrans', '-D', String(port), '--json'),
    ready: [/attached in/, 'stderr'],
    oracle: 'hits',
    count: (stdout) => lines(stdout, /^\{"type":"retransmit"/),
  },
  // The same tracepoint in bpftrace, one line per event as tcpretrans.bt prints (tcpretrans.bt itself uses
  // kprobes, which this kernel lacks; libbpf-tools 0.26 in Debian 12 has no tcpretrans; BCC's needs kprobes).
  'bpftrace retransmit_skb': {
    argv: (root, port) => ['bpftrace', '-e',
      `tracepoint:tcp:tcp_retransmit_skb /args->dport == ${port}/ { printf("%s %d %s %d\\n", ntop(args->saddr), args->sport, ntop(args->daddr), args->dport); }`],
    ready: [/Attaching/, 'stdout'],
    oracle: 'hits',
    count: (stdout) => lines(stdout, /^\d+\.\d+\.\d+\.\d+ \d+ /),
  },
  // life/connect family: one line per closed connection (life), per connect (connect), per state change (tcpstates).
  'netbpf life': {
    argv: (root, port) => netbpf(root, 'life', '-D', String(port)),
    ready: [/attached in/, 'stderr'],
    oracle: 'ActiveOpens', // every connection of the workload closes once the client is done (waitQuiet)
    count: (stdout) => lines(stdout, IPV4_LINE),
  },
  'netbpf connect': {
    argv: (root, port) => netbpf(root, 'connect', '-D', String(port)),
    ready: [/attached in/, 'stderr'],
    oracle: 'ActiveOpens',
    count: (stdout) => lines(stdout, IPV4_LINE),
  },
  'libbpf-tools tcplife': {
    // stdbuf -oL: line-buffered as on a terminal (its usual mode), so the header shows it attached.
    argv: (root, port) => ['stdbuf', '-oL', 'tcplife', '-D', String(port)],
    ready: [/^PID/m, 'stdout'],
    oracle: 'ActiveOpens',
    count: (stdout) => lines(stdout, IPV4_LINE),
  },
  'libbpf-tools tcpstates': {
    argv: (root, port) => ['stdbuf', '-oL', 'tcpstates', '-D', String(port)],
    ready: [/^SKADDR/m, 'stdout'],
    oracle: 'transitions',
    count: (stdout) => lines(stdout, IPV4_LINE),
  },
  // tcplife.bt needs kprobes; this is its core on the tracepoint: one line per socket reaching TCP_CLOSE (7).
  'bpftrace inet_sock_set_state': {
    argv: (root, port) => ['bpftrace', '-e',
      `tracepoint:sock:inet_sock_set_state /args->dport == ${port} && args->newstate == 7/ { printf("%d %s %s %d %s %d\\n", pid, comm, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport); }`],
    ready: [/Attaching/, 'stdout'],
    oracle: 'ActiveOpens',
    count: (stdout) => lines(stdout, IPV4_LINE),
  },
  // drops: a flood, so both sides aggregate in the kernel (--summary without --json: netbpf's per-CPU summary map,
  // read at exit; bpftrace's count() map).
  'netbpf drops': {
    argv: (root, port) => netbpf(root, 'drops', '--all', '-r', 'NETFILTER_DROP', '-D', String(port), '--summary'),
    ready: [/attached in/, 'stderr'],
    oracle: 'nftDrops',
    count: (stdout, stderr) => countersEvents(stderr),
  },
  'bpftrace kfree_skb': {
    // No port in the tracepoint's fields: counted by reason only (other drops of that reason on the machine count too).
    argv: () => ['bpftrace', '-e', `tracepoint:skb:kfree_skb /args->reason == ${dropReasonNumber('NETFILTER_DROP')}/ { @drops = count(); }`],
    ready: [/Attaching/, 'stdout'],
    oracle: 'nftDrops',
    count: (stdout) => Number(/@drops: (\d+)/.exec(stdout)?.[1] ?? 0),
  },
  'netbpf conntrack': {
    ns: 'a',
    argv: (root, port) => netbpf(root, 'conntrack', '-D', String(port), '--json'),
    ready: [/attached in/, 'stderr'],
    oracle: 'ctEvents',
    count: (stdout) => lines(stdout, /^\{"type":"conntrack"/),
  },
  // conntrack-tools' event listener (ctnetlink), the usual way to watch conntrack churn.
  'conntrack -E': {
    ns: 'a',
    argv: (root, port) => ['conntrack', '-E', '-p', 'tcp', '--dport', String(port)],
    ready: null, // prints nothing until the first event: given a moment to subscribe
    oracle: 'ctEvents',
    count: (stdout) => lines(stdout, /\[(NEW|DESTROY)\]/),
  },
};

/** Tracepoint hits with kernel-side filters, counted by perf (no BPF): oracles for events. */
async function startHitCounters(events) {
  if (!events.length) return { stop: async () => ({}) };
  // Interval mode: the first interval line proves counting is on (perf's own start-up takes a variable time).
  const argv = ['perf', 'stat', '-x,', '-I', '100', '-a'];
  for (const e of events) argv.push('-e', e.event, '--filter', e.filter);
  const p = start(argv);
  await p.waitFor(/^\s*[\d.]+,/m, 30000, 'stderr');
  return {
    async stop() {
      await p.stop('SIGINT');
      // One line per event per interval, in the order given: sum each event's counts over the intervals.
      const counts = events.map(() => 0);
      [...p.stderr.matchAll(/^\s*[\d.]+,(\d+),/gm)].forEach((m, i) => { counts[i % events.length] += Number(m[1]); });
      return Object.fromEntries(events.map((e, i) => [e.key, counts[i]]));
    },
  };
}

const bulk = (q) => ({
  name: 'retrans-bulk',
  tool: 'retrans',
  title: `bulk TCP transfer A->B over veth (${q.bulkConns} connections, ${(q.bulkBytes / 1e6).toFixed(0)} MB), ${q.lossPercent}% of packets dropped by nft in B`,
  unit: 'MB/s',
  tracers: ['none', 'netbpf retrans', 'bpftrace retransmit_skb'],
  oracles: 'hits: tcp:tcp_retransmit_skb counted by perf (filter dport); RetransSegs: A\'s /proc/net/snmp delta (GSO: one skb can be several segments)',
  perf: (port) => [{ key: 'hits', event: 'tcp:tcp_retransmit_skb', filter: `dport == ${port}` }],
  async setup(pair, port) {
    await pair.startServer(port);
    await pair.addLoss(q.lossPercent, port);
  },
  async before(pair) { return (await pair.snmp(pair.a)).Tcp.RetransSegs; },
  async after(pair, port, s0) {
    await pair.waitQuiet(pair.a, port);
    return { RetransSegs: (await pair.snmp(pair.a)).Tcp.RetransSegs - s0 };
  },
  async drive(pair, port) {
    const r = await pair.client(pair.addrB, port, { bytes: q.bulkBytes, conns: q.bulkConns, parallel: q.bulkConns });
    if (r.failed) throw new Error(`bulk transfer: ${r.failed} connections failed ${JSON.stringify(r.errors)}`);
    return { value: r.bytesSent / 1e6 / (r.elapsedMs / 1000), detail: `${(r.bytesSent / 1e6).toFixed(0)} MB in ${r.elapsedMs.toFixed(0)} ms` };
  },
});

const connectClose = (q) => ({
  name: 'connect-close',
  tool: 'life, connect',
  title: `TCP connect/close on loopback in a namespace (node client: ${q.conns} connections, ${q.parallel} in parallel, 1 byte each)`,
  unit: 'conn/s',
  tracers: ['none', 'netbpf life', 'netbpf connect', 'libbpf-tools tcplife', 'libbpf-tools tcpstates', 'bpftrace inet_sock_set_state'],
  oracles: 'ActiveOpens: /proc/net/snmp delta (each client socket closes once: the oracle of closes); transitions: sock:inet_sock_set_state hits (dport) counted by perf. ' +
    'While a classic-tracepoint BPF program that returns 0 is attached to that tracepoint (libbpf-tools tcplife, tcpstates), the kernel suppresses the perf event ' +
    '(perf_trace_run_bpf_submit), so perf counts 0 then; in those rounds transitions = ActiveOpens x the transitions per connection perf counted in the no-tracer rounds',
  perf: (port) => [
    { key: 'transitions', event: 'sock:inet_sock_set_state', filter: `dport == ${port}` },
  ],
  async setup(pair, port, root) {
    const server = pair.spawn(pair.a, [process.execPath, join(root, 'scripts', 'tcp-load.mjs'), 'server', '--port', String(port)]);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('loopback server did not start')), 10000);
      server.stdout.once('data', () => { clearTimeout(t); resolve(); });
    });
  },
  async before(pair) { return (await pair.snmp(pair.a)).Tcp.ActiveOpens; },
  async after(pair, port, s0) {
    await pair.waitQuiet(pair.a, port);
    return { ActiveOpens: (await pair.snmp(pair.a)).Tcp.ActiveOpens - s0 };
  },
  /** Rounds where perf was suppressed: estimated from the no-tracer rounds' transitions per connection. */
  estimate(run, noneRuns) {
    if (run.oracles.transitions > 0 || !run.oracles.ActiveOpens) return;
    const perConn = noneRuns.reduce((s, r) => s + r.oracles.transitions, 0) / noneRuns.reduce((s, r) => s + r.oracles.ActiveOpens, 0);
    run.oracles.transitions = Math.round(run.oracles.ActiveOpens * perConn);
    run.estimated = 'transitions';
  },
  async drive(pair, port) {
    const r = await pair.client('127.0.0.1', port, { conns: q.conns, parallel: q.parallel, bytes: 1 });
    if (r.failed) throw new Error(`connect/close: ${r.failed} failed ${JSON.stringify(r.errors)}`);
    return { value: r.ok / (r.elapsedMs / 1000), detail: `${r.ok} connections in ${r.elapsedMs.toFixed(0)} ms` };
  },
});

const dropFlood = (q) => ({
  name: 'drop-flood',
  tool: 'drops',
  title: `UDP flood from A (python sendto loop, 64 bytes, ${q.floodSeconds} s) to a port an nft output rule in A drops`,
  unit: 'pkt/s',
  tracers: ['none', 'netbpf drops', 'bpftrace kfree_skb'],
  oracles: 'nftDrops: the drop rule\'s counter delta',
  perf: () => [],
  async setup(pair, port) {
    await pair.nft(pair.a, `table inet bench_drops {\n  chain out { type filter hook output priority 0; policy accept;\n    udp dport ${port} counter drop\n  }\n}\n`);
  },
  async before(pair) { return pair.nftCounter(pair.a, 'bench_drops', 'out'); },
  async after(pair, port, c0) { return { nftDrops: (await pair.nftCounter(pair.a, 'bench_drops', 'out')) - c0 }; },
  async drive(pair, port) {
    const gen = `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nd=('${pair.addrB}',${port});m=b'x'*64;n=0\nt0=time.monotonic();end=t0+${q.floodSeconds}\nwhile time.monotonic()<end:\n  for _ in range(1000):\n    try: s.sendto(m,d)\n    except OSError: pass\n  n+=1000\nprint(n, time.monotonic()-t0)`;
    const { stdout } = await pair.exec(pair.a, ['python3', '-c', gen], { timeoutMs: (q.floodSeconds + 10) * 1000 });
    const [n, s] = stdout.trim().split(' ').map(Number);
    return { value: n / s, detail: `${n} datagrams in ${(s * 1000).toFixed(0)} ms` };
  },
});

const conntrackChurn = (q) => ({
  name: 'conntrack-churn',
  tool: 'conntrack',
  title: `conntrack churn in A: ${q.ctConns} TCP connections A->B over veth (${q.parallel} in parallel; an nft \`ct state new\` rule makes A track them), then \`conntrack -D\` of those entries`,
  unit: 'entries/s',
  tracers: ['none', 'netbpf conntrack', 'conntrack -E'],
  oracles: 'ctEvents: new (the nft `ct state new` rule\'s counter) + destroyed (the count `conntrack -D` reports)',
  // Before the tracer's CPU and RSS are read and it is sent SIGINT: conntrack -E prints events as it reads its
  // ctnetlink socket and exits on SIGINT without reading what is still queued, so it gets 500 ms to catch up after
  // the `conntrack -D` burst. netbpf needs none: its stop drains every ctnetlink socket and takes what the kernel
  // still owes from its dying list (docs/conntrack.md).
  settleMs: 500,
  perf: () => [],
  async setup(pair, port) {
    await pair.startServer(port);
    await pair.nft(pair.a, `table inet bench_ct {\n  chain out { type filter hook output priority 0; policy accept;\n    tcp dport ${port} ct state new counter\n  }\n}\n`);
  },
  async before(pair) { return pair.nftCounter(pair.a, 'bench_ct', 'out'); },
  async after(pair, port, c0, run) {
    return { ctEvents: (await pair.nftCounter(pair.a, 'bench_ct', 'out')) - c0 + run.destroyed };
  },
  async drive(pair, port) {
    const t0 = performance.now();
    const r = await pair.client(pair.addrB, port, { conns: q.ctConns, parallel: q.parallel, bytes: 1 });
    if (r.failed) throw new Error(`conntrack churn: ${r.failed} failed ${JSON.stringify(r.errors)}`);
    const del = await pair.exec(pair.a, ['conntrack', '-D', '-p', 'tcp', '--dport', String(port)]).catch((e) => ({ stdout: '', stderr: String(e.message ?? e) }));
    const destroyed = Number(/(\d+) flow entries have been deleted/.exec(del.stderr + del.stdout)?.[1] ?? 0);
    const ms = performance.now() - t0;
    return { value: (r.ok + destroyed) / (ms / 1000), destroyed, detail: `${r.ok} new + ${destroyed} destroyed in ${ms.toFixed(0)} ms` };
  },
});

export const WORKLOADS = { 'retrans-bulk': bulk, 'connect-close': connectClose, 'drop-flood': dropFlood, 'conntrack-churn': conntrackChurn };

/**
 * Runs each workload with each of its tracers, interleaved over `q.reps` rounds (none, netbpf, peer A, peer B,
 * none, ...), one namespace pair per workload. `q.workloads` picks workloads, `q.tracers` (optional) tracers.
 */
export async function runWorkloads(root, q, log) {
  const results = [];
  for (const name of q.workloads) {
    const w = WORKLOADS[name](q);
    const tracers = w.tracers.filter((t) => t === 'none' || !q.tracers || q.tracers.includes(t));
    const pair = await NetnsPair.create('bench');
    // Below the ephemeral range (32768+), so a server-side socket's remote port never equals it.
    const port = 10000 + Math.floor(Math.random() * 20000);
    try {
      await w.setup(pair, port, root);
      await w.drive(pair, port); // warm-up (JIT, caches), not measured
      const rows = Object.fromEntries(tracers.map((t) => [t, []]));
      for (let rep = 0; rep < q.reps; rep++) {
        // Rotate the order each round so no tracer always runs right after the same one.
        const order = tracers.map((_, i) => tracers[(i + rep) % tracers.length]);
        for (const t of order) {
          const r = await runOnce(root, pair, port, w, t, t === 'none' ? null : TRACERS[t]);
          log(`  ${w.name} / ${t}: ${r.value.toFixed(1)} ${w.unit} (${r.detail}); oracles ${JSON.stringify(r.oracles)}` +
            (r.reported !== null ? `; reported ${r.reported}, tracer CPU ${(r.tracerCpuNs / 1e6).toFixed(0)} ms, RSS ${(r.tracerRss / 1048576).toFixed(0)} MiB` : ''));
          rows[t].push(r);
        }
      }
      if (w.estimate) for (const t of tracers) for (const r of rows[t]) w.estimate(r, rows.none);
      const base = median(rows.none.map((r) => r.value));
      for (const t of tracers) {
        const rs = rows[t];
        const values = rs.map((r) => r.value);
        const tracer = TRACERS[t];
        const sum = (f) => rs.reduce((s, r) => s + f(r), 0);
        results.push({
          workload: w.name, tool: w.tool, title: w.title, unit: w.unit, oracleText: w.oracles, tracer: t, runs: rs.length,
          value: median(values), min: Math.min(...values), max: Math.max(...values), ratioToNone: median(values) / base,
          oracles: Object.fromEntries(Object.keys(rs[0].oracles).map((k) => [k, sum((r) => r.oracles[k] ?? 0)])),
          oracleKey: tracer?.oracle ?? null, oracleEstimated: !!tracer && rs.some((r) => r.estimated === tracer.oracle),
          expectedEvents: tracer ? sum((r) => r.oracles[tracer.oracle] ?? 0) : null,
          reportedEvents: tracer ? sum((r) => r.reported) : null,
          tracerCpuMsPerS: tracer ? median(rs.map((r) => r.tracerCpuNs / 1e6 / r.seconds)) : null,
          tracerRss: tracer ? median(rs.map((r) => r.tracerRss)) : null,
        });
      }
    } finally {
      await pair.destroy();
    }
  }
  return results;
}

async function runOnce(root, pair, port, w, name, tracer) {
  let proc = null;
  const hits = await startHitCounters(w.perf(port));
  try {
    if (tracer) {
      const argv = tracer.argv(root, port);
      proc = start(tracer.ns ? ['ip', 'netns', 'exec', pair[tracer.ns], ...argv] : argv);
      if (tracer.ready) await proc.waitFor(tracer.ready[0], 30000, tracer.ready[1]);
      else await sleep(500);
    }
    const cpu0 = proc ? cpuNsOf(proc.child.pid) : 0;
    const s0 = await w.before(pair, port);
    const t0 = performance.now();
    const r = await w.drive(pair, port);
    const seconds = (performance.now() - t0) / 1000;
    const oracles = await w.after(pair, port, s0, r);
    let reported = null, tracerCpuNs = 0, tracerRss = 0;
    if (proc) {
      if (w.settleMs) await sleep(w.settleMs);
      tracerRss = rssOf(proc.child.pid);
      // CPU over the workload, read before the signal (the exit drain is not workload cost; /proc/<pid> goes away).
      // Every tracer then stops on SIGINT and prints what it still holds (netbpf: Trace.stop detaches, then drains).
      tracerCpuNs = cpuNsOf(proc.child.pid) - cpu0;
      await proc.stop('SIGINT');
      reported = tracer.count(proc.stdout, proc.stderr);
    }
    Object.assign(oracles, await hits.stop());
    return { ...r, seconds, oracles, reported, tracerCpuNs, tracerRss };
  } finally {
    await proc?.stop('SIGKILL', 2000);
    await hits.stop().catch(() => null);
  }
}
