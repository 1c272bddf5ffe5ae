// Real workloads in private namespaces, each run with no tracer and with each tracer attached: workload
// throughput, the tracer's CPU (/proc/<pid>/stat) and memory, and events it reported against what happened
// (tracepoint hits counted by `perf stat` with a kernel filter; the sender namespace's RetransSegs).
// A new tool adds one TRACERS entry (how to start it, when it is attached, how to count its output) and one
// WORKLOADS entry (set-up, drive, which tracers).
import { join } from 'node:path';
import { NetnsPair } from '../dist/testing/netns.js';
import { start, cpuNsOf, rssOf, median, sleep } from './lib.js';

export const TRACERS = {
  'netbpf retrans': {
    argv: (root, port) => [process.execPath, join(root, 'bin/netbpf.js'), 'retrans', '-D', String(port), '--json'],
    ready: [/attached in/, 'stderr'],
    /** Events and segments reported, from its JSON lines. */
    count(stdout) {
      let events = 0, segs = 0;
      for (const l of stdout.split('\n')) {
        if (!l.startsWith('{"type":"retransmit"')) continue;
        events++;
        segs += JSON.parse(l).segs;
      }
      return { events, segs };
    },
  },
  // The same tracepoint in bpftrace, one line per event as tcpretrans.bt prints (tcpretrans.bt itself uses
  // kprobes, which this kernel lacks; libbpf-tools 0.26 in Debian 12 has no tcpretrans; BCC's needs kprobes).
  'bpftrace tracepoint': {
    argv: (root, port) => ['bpftrace', '-e',
      `tracepoint:tcp:tcp_retransmit_skb /args->dport == ${port}/ { printf("%s %d %s %d\\n", ntop(args->saddr), args->sport, ntop(args->daddr), args->dport); }`],
    ready: [/Attaching/, 'stdout'],
    count(stdout) {
      return { events: stdout.split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+ \d+ /.test(l)).length, segs: null };
    },
  },
};

/** Tracepoint hits with a kernel-side filter, counted by perf (no BPF): the oracle for events. */
async function startHitCounter(port) {
  const p = start(['perf', 'stat', '-x,', '-a', '-e', 'tcp:tcp_retransmit_skb', '--filter', `dport == ${port}`]);
  await sleep(300);
  return {
    async stop() {
      await p.stop('SIGINT');
      const m = /^(\d+),[^\n]*tcp:tcp_retransmit_skb/m.exec(p.stderr);
      return m ? Number(m[1]) : null;
    },
  };
}

const bulk = (q) => ({
  name: 'retrans-bulk',
  tool: 'retrans',
  title: `bulk TCP transfer A->B over veth, ${q.lossPercent}% of packets dropped by nft in B`,
  unit: 'MB/s',
  tracers: ['none', 'netbpf retrans', 'bpftrace tracepoint'],
  async setup(pair, port) {
    await pair.startServer(port);
    await pair.addLoss(q.lossPercent, port);
  },
  async drive(pair, port) {
    const r = await pair.client(pair.addrB, port, { bytes: q.bulkBytes, conns: q.bulkConns, parallel: q.bulkConns });
    if (r.failed) throw new Error(`bulk transfer: ${r.failed} connections failed ${JSON.stringify(r.errors)}`);
    return { value: r.bytesSent / 1e6 / (r.elapsedMs / 1000), detail: `${(r.bytesSent / 1e6).toFixed(0)} MB in ${r.elapsedMs.toFixed(0)} ms` };
  },
});

const connectClose = (q) => ({
  name: 'connect-close',
  tool: 'retrans',
  title: `TCP connect/close on loopback (in a namespace), ${q.conns} connections, ${q.parallel} in parallel`,
  unit: 'conn/s',
  tracers: ['none', 'netbpf retrans'],
  async setup(pair, port, root) {
    const server = pair.spawn(pair.a, [process.execPath, join(root, 'scripts', 'tcp-load.mjs'), 'server', '--port', String(port)]);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('loopback server did not start')), 10000);
      server.stdout.once('data', () => { clearTimeout(t); resolve(); });
    });
  },
  async drive(pair, port) {
    const r = await pair.client('127.0.0.1', port, { conns: q.conns, parallel: q.parallel, bytes: 1 });
    if (r.failed) throw new Error(`connect/close: ${r.failed} failed ${JSON.stringify(r.errors)}`);
    return { value: r.ok / (r.elapsedMs / 1000), detail: `${r.ok} connections in ${r.elapsedMs.toFixed(0)} ms` };
  },
});

export const WORKLOADS = [bulk, connectClose];

/** Runs every workload with each of its tracers (interleaved over `reps` rounds); one namespace pair each. */
export async function runWorkloads(root, q, log) {
  const results = [];
  for (const make of WORKLOADS) {
    const w = make(q);
    const pair = await NetnsPair.create('bench');
    const port = 20000 + Math.floor(Math.random() * 40000);
    try {
      await w.setup(pair, port, root);
      await w.drive(pair, port); // warm-up (JIT, caches), not measured
      const rows = Object.fromEntries(w.tracers.map((t) => [t, []]));
      for (let rep = 0; rep < q.reps; rep++) {
        for (const t of w.tracers) {
          const r = await runOnce(root, pair, port, w, t === 'none' ? null : TRACERS[t]);
          log(`  ${w.name} / ${t}: ${r.value.toFixed(1)} ${w.unit} (${r.detail}); hits ${r.hits}, RetransSegs ${r.retransSegs}` +
            (r.reported ? `; reported ${r.reported.events} events${r.reported.segs !== null ? `, ${r.reported.segs} segs` : ''}, tracer CPU ${(r.tracerCpuNs / 1e6).toFixed(0)} ms, RSS ${(r.tracerRss / 1048576).toFixed(0)} MiB` : ''));
          rows[t].push(r);
        }
      }
      const base = median(rows.none.map((r) => r.value));
      for (const t of w.tracers) {
        const rs = rows[t];
        const value = median(rs.map((r) => r.value));
        results.push({
          workload: w.name, title: w.title, unit: w.unit, tracer: t, runs: rs.length,
          value, ratioToNone: value / base,
          hits: rs.reduce((s, r) => s + (r.hits ?? 0), 0),
          retransSegs: rs.reduce((s, r) => s + r.retransSegs, 0),
          reportedEvents: t === 'none' ? null : rs.reduce((s, r) => s + r.reported.events, 0),
          reportedSegs: t === 'none' || rs[0].reported.segs === null ? null : rs.reduce((s, r) => s + r.reported.segs, 0),
          tracerCpuMsPerS: t === 'none' ? null : median(rs.map((r) => r.tracerCpuNs / 1e6 / r.seconds)),
          tracerRss: t === 'none' ? null : median(rs.map((r) => r.tracerRss)),
        });
      }
    } finally {
      await pair.destroy();
    }
  }
  return results;
}

async function runOnce(root, pair, port, w, tracer) {
  let proc = null;
  const hits = await startHitCounter(port);
  try {
    if (tracer) {
      proc = start(tracer.argv(root, port));
      await proc.waitFor(tracer.ready[0], 30000, tracer.ready[1]);
    }
    const cpu0 = proc ? cpuNsOf(proc.child.pid) : 0;
    const snmp0 = (await pair.snmp(pair.a)).Tcp.RetransSegs;
    const t0 = performance.now();
    const r = await w.drive(pair, port);
    const seconds = (performance.now() - t0) / 1000;
    await sleep(100); // the tracer's timed poll delivers what is still in its ring buffer
    const retransSegs = (await pair.snmp(pair.a)).Tcp.RetransSegs - snmp0;
    let reported = null, tracerCpuNs = 0, tracerRss = 0;
    if (proc) {
      tracerCpuNs = cpuNsOf(proc.child.pid) - cpu0;
      tracerRss = rssOf(proc.child.pid);
      await proc.stop('SIGINT');
      reported = tracer.count(proc.stdout);
    }
    return { ...r, seconds, hits: await hits.stop(), retransSegs, reported, tracerCpuNs, tracerRss };
  } finally {
    await proc?.stop('SIGKILL', 2000);
    await hits.stop().catch(() => null);
  }
}
