// The connection storm, side by side: bench/storm.c's client connects to 8 listening ports on the loopback of a
// private namespace and closes each connection at once, as fast as it goes (or at a given rate), for a bounded
// time; each tracer runs in turn on the host (no tracer, libbpf-tools tcplife, netbpf life, life --summary, top,
// serve), interleaved over rounds. Per run: connections/s (the client's own count), the tracer's CPU (utime+stime
// from /proc/<pid>/stat over the storm) per connection, connection ends it recorded against the ends made (the
// namespace's ActiveOpens + PassiveOpens: two per connection), and what it says it lost (ring buffer, recursion
// misses, untracked). Every address of the storm is in 127.99.0.0/16 (server 127.99.0.1, clients bound to
// 127.99.1.1-64), so every tracer can be told (or its output filtered) to look at the storm only.
import { createWriteStream, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPair } from '../dist/testing/netns.js';
import { start, cpuNsOf, rssOf, median, sleep } from './lib.js';

const SERVER = '127.99.0.1';
const SRC_PREFIX = '127.99.1';
const CIDR = '127.99.0.0/16';
const PORTS = 8;
// NETBPF_STORM_PROF=DIR: each netbpf tracer writes a V8 CPU profile there (node --cpu-prof), to see where its time goes.
const PROF = process.env.NETBPF_STORM_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.NETBPF_STORM_PROF}`] : [];
const netbpf = (root, ...args) => [process.execPath, ...PROF, join(root, 'bin/netbpf.js'), ...args];
const STORM_LINE = /\b127\.99\.\d+\.\d+\b/;

/** Lines of a file that mention the storm's addresses (a tracer's live output). */
function stormLines(file) {
  let n = 0;
  for (const l of readFileSync(file, 'latin1').split('\n')) if (STORM_LINE.test(l)) n++;
  return n;
}

/** The losses on a netbpf exit line: "... N lost ..., M missed by recursion ..., K connections untracked". */
function netbpfLosses(stderr) {
  let lost = 0, misses = 0, untracked = 0, skipped = 0;
  for (const m of stderr.matchAll(/(\d+) lost/g)) lost += Number(m[1]);
  for (const m of stderr.matchAll(/(\d+) missed by recursion/g)) misses += Number(m[1]);
  for (const m of stderr.matchAll(/and (\d+) skipped runs/g)) skipped += Number(m[1]);
  for (const m of stderr.matchAll(/(\d+) connections untracked/g)) untracked += Number(m[1]);
  return { lost, misses, untracked, skipped };
}

function scrape(port) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

/** serve's scrape interval in the storm, seconds (--scrape-interval, and how often the storm scrapes it): 5 s, three
 * times as often as a common 15 s; a second row scrapes every second, where rendering the scrapes is most of its cost. */
const SCRAPE_S = 5;

/** `netbpf serve` scraped every `every` seconds during the storm (a new series shows zero for one interval first);
 * recorded: the closed-connections counter in a scrape one interval after the storm. */
function serveTracer(every) {
  return {
    argv: (root, o) => netbpf(root, 'serve', '-c', CIDR, '--prometheus', `127.0.0.1:${o.metricsPort}`, '--scrape-interval', String(every)),
    ready: [/Prometheus metrics on/, 'stderr'],
    recorded: ({ metrics }) => metricSum(metrics, 'netbpf_connections_closed_total'),
    scrape: every,
    losses: true,
  };
}

/** Sum of a Prometheus counter's samples (optionally only those whose labels match). */
function metricSum(text, name, labelRe = null) {
  let n = 0;
  for (const l of text.split('\n')) {
    if (!l.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([\d.e+-]+)$/.exec(l);
    if (m && m[1] === name && (!labelRe || labelRe.test(m[2] ?? ''))) n += Number(m[3]);
  }
  return n;
}

/**
 * Tracers: argv, how to tell it attached, and how to count the connection ends it recorded (`out`: its stdout
 * file; `run`: the process). `losses` reads what it says it lost (netbpf's exit line); peers say nothing.
 */
export const STORM_TRACERS = {
  'libbpf-tools tcplife': {
    argv: () => ['stdbuf', '-oL', 'tcplife'],
    ready: [/^PID/m, 'out'],
    recorded: ({ out }) => stormLines(out),
  },
  'netbpf life': {
    argv: (root) => netbpf(root, 'life', '-c', CIDR),
    ready: [/attached in/, 'stderr'],
    recorded: ({ out }) => stormLines(out),
    losses: true,
  },
  // The same with one state-change program for process and softirq context (what the split saves: recursion misses).
  'netbpf life (one program)': {
    argv: (root) => netbpf(root, 'life', '-c', CIDR, '--single-state-program'),
    ready: [/attached in/, 'stderr'],
    recorded: ({ out }) => stormLines(out),
    losses: true,
  },
  'netbpf life --summary (one program)': {
    argv: (root) => netbpf(root, 'life', '-c', CIDR, '--summary', '--single-state-program'),
    ready: [/attached in/, 'stderr'],
    recorded: ({ out }) => Number(/whole run \([\d.]+ s\): (\d+) closed/.exec(readFileSync(out, 'utf8'))?.[1] ?? NaN),
    losses: true,
  },
  'netbpf life --summary': {
    argv: (root) => netbpf(root, 'life', '-c', CIDR, '--summary'),
    ready: [/attached in/, 'stderr'],
    // The final summary's header: "... whole run (N s): N closed, ...".
    recorded: ({ out }) => Number(/whole run \([\d.]+ s\): (\d+) closed/.exec(readFileSync(out, 'utf8'))?.[1] ?? NaN),
    losses: true,
  },
  'netbpf top': {
    argv: (root) => netbpf(root, 'top', '-c', CIDR, '--snapshots', '--json', '-i', '1'),
    ready: [/top\/life: .*attached in|top\/connect: .*attached in/, 'stderr'],
    // top shows destinations, not connections: the life tool's count of connection ends (its exit line).
    recorded: ({ stderr }) => Number(/life (\d+) events/.exec(stderr)?.[1] ?? NaN),
    losses: true,
  },
  'netbpf serve': serveTracer(SCRAPE_S),
  'netbpf serve (scraped every 1 s)': serveTracer(1),
};

/** The storm in one namespace; each round runs every tracer once, in a rotating order. */
export async function runStorm(root, q, log) {
  const tracers = ['none', ...(q.stormTracers ?? Object.keys(STORM_TRACERS))];
  const pair = await NetnsPair.create('storm');
  const ns = pair.a;
  const port0 = 20000 + Math.floor(Math.random() * 20000);
  const stormBin = join(root, 'build/bench/storm');
  const rows = Object.fromEntries(tracers.map((t) => [t, []]));
  let burst = null;
  try {
    await pair.exec(ns, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
    const server = pair.spawn(ns, [stormBin, 'server', SERVER, String(port0), String(PORTS), '3600']);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('storm server did not start')), 10000);
      server.stdout.once('data', () => { clearTimeout(t); resolve(); });
    });
    const client = async (seconds, rate) => {
      const { stdout } = await pair.exec(ns, [stormBin, 'client', SERVER, String(port0), String(PORTS), String(seconds), String(q.stormMaxConns),
        String(rate), String(q.stormParallel), SRC_PREFIX], { timeoutMs: (seconds + 30) * 1000 });
      return JSON.parse(stdout.trim().split('\n').pop());
    };
    await client(1, q.stormRate ?? 0); // warm-up
    for (let rep = 0; rep < q.stormReps; rep++) {
      const order = tracers.map((_, i) => tracers[(i + rep) % tracers.length]);
      for (const t of order) {
        const r = await stormOnce(root, pair, ns, t, t === 'none' ? null : STORM_TRACERS[t], () => client(q.stormSeconds, q.stormRate ?? 0));
        log(`  storm / ${t}: ${r.connPerS.toFixed(0)} conn/s (${r.made} made, ${r.failed} failed); ends ${r.endsMade}` +
          (r.recorded !== null ? `, recorded ${r.recorded}, lost ${r.lost}, missed ${r.misses} (skipped ${r.skipped}), untracked ${r.untracked}, tracer CPU ${(r.cpuNs / 1e6).toFixed(0)} ms = ${(r.cpuNs / 1e3 / r.made).toFixed(1)} us/conn, RSS ${(r.rss / 1048576).toFixed(0)} MiB` : ''));
        rows[t].push(r);
      }
    }
    if (q.stormBurst) {
      // A 10x burst for one second on top of a steady rate, netbpf life live: are the burst's ends all recorded?
      const { rate, seconds } = q.stormBurst;
      burst = await stormOnce(root, pair, ns, 'netbpf life', STORM_TRACERS['netbpf life'], async () => {
        const { stdout } = await pair.exec(ns, [stormBin, 'client', SERVER, String(port0), String(PORTS), String(seconds), String(q.stormMaxConns),
          String(rate), String(q.stormParallel), SRC_PREFIX, '2', '1', String(10 * rate)], { timeoutMs: (seconds + 30) * 1000 });
        return JSON.parse(stdout.trim().split('\n').pop());
      });
      burst = { ...burst, steadyRate: rate, burstRate: 10 * rate, seconds };
      log(`  storm burst (${rate}/s, ${10 * rate}/s for 1 s) / netbpf life: ${burst.made} made, ends ${burst.endsMade}, recorded ${burst.recorded}, lost ${burst.lost}, missed ${burst.misses}`);
    }
  } finally {
    await pair.destroy();
  }
  const base = median(rows.none.map((r) => r.connPerS));
  const table = tracers.map((t) => {
    const rs = rows[t];
    const sum = (f) => rs.reduce((s, r) => s + f(r), 0);
    const tracer = t !== 'none';
    return {
      tracer: t, runs: rs.length,
      connPerS: median(rs.map((r) => r.connPerS)), min: Math.min(...rs.map((r) => r.connPerS)), max: Math.max(...rs.map((r) => r.connPerS)),
      ratioToNone: median(rs.map((r) => r.connPerS)) / base,
      made: sum((r) => r.made), endsMade: sum((r) => r.endsMade),
      recorded: tracer ? sum((r) => r.recorded) : null,
      lost: tracer ? sum((r) => r.lost) : null, misses: tracer ? sum((r) => r.misses) : null, untracked: tracer ? sum((r) => r.untracked) : null,
      skipped: tracer ? sum((r) => r.skipped) : null,
      // Median over rounds of the tracer's CPU per connection made, microseconds.
      cpuUsPerConn: tracer ? median(rs.map((r) => r.cpuNs / 1e3 / r.made)) : null,
      cpuUsPerConnAll: tracer ? rs.map((r) => r.cpuNs / 1e3 / r.made) : null,
      rss: tracer ? median(rs.map((r) => r.rss)) : null,
      peerSaysLost: tracer && !STORM_TRACERS[t].losses,
    };
  });
  return { rows: table, burst };
}

/** Waits (bounded) until no TCP socket of the namespace is between its birth and its close. */
async function quiet(pair, ns, timeoutMs = 15000) {
  const busy = ['established', 'syn-sent', 'syn-recv', 'fin-wait-1', 'fin-wait-2', 'close-wait', 'closing', 'last-ack'].flatMap((s) => ['state', s]);
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) {
    if ((await pair.exec(ns, ['ss', '-Htn', ...busy])).stdout.trim() === '') return;
  }
}

async function stormOnce(root, pair, ns, name, tracer, drive) {
  const snmp = async () => (await pair.snmp(ns)).Tcp;
  const outFile = join(tmpdir(), `netbpf-storm-${process.pid}-${Date.now()}.out`);
  let proc = null;
  const metricsPort = 19000 + Math.floor(Math.random() * 1000);
  try {
    if (tracer) {
      const out = createWriteStream(outFile);
      await new Promise((r) => out.once('open', r));
      proc = start(tracer.argv(root, { metricsPort }), { stdio: ['ignore', out, 'pipe'] });
      const [re, stream] = tracer.ready;
      if (stream === 'out') {
        for (const t0 = Date.now(); !re.test(readFileSync(outFile, 'latin1')); ) {
          if (Date.now() - t0 > 30000 || proc.exited) throw new Error(`${name} did not start: ${proc.stderr.slice(-500)}`);
          await sleep(20);
        }
      } else await proc.waitFor(re, 30000, stream);
      if (name === 'netbpf top') await proc.waitFor(/top\/life: .*attached in/, 30000, 'stderr');
      out.close();
    }
    const s0 = await snmp();
    const cpu0 = proc ? cpuNsOf(proc.child.pid) : 0;
    let scraping = null;
    if (tracer?.scrape) {
      let stop = false;
      const loop = (async () => { while (!stop) { await scrape(metricsPort).catch(() => ''); await sleep(tracer.scrape * 1000); } })();
      scraping = async () => { stop = true; await loop; };
    }
    const c = await drive();
    // Every end of the storm's connections has happened once the namespace has no socket left in a closing state.
    await quiet(pair, ns);
    await scraping?.();
    const s1 = await snmp();
    let recorded = null, cpuNs = 0, rss = 0, losses = { lost: 0, misses: 0, untracked: 0, skipped: 0 }, metrics = '';
    if (proc) {
      cpuNs = cpuNsOf(proc.child.pid) - cpu0;
      rss = rssOf(proc.child.pid);
      if (tracer.scrape) {
        await sleep(tracer.scrape * 1000 + 300);
        metrics = await scrape(metricsPort);
      }
      await proc.stop('SIGINT', 30000);
      recorded = tracer.recorded({ out: outFile, stderr: proc.stderr, metrics });
      if (tracer.losses) losses = netbpfLosses(proc.stderr);
    }
    const endsMade = (s1.ActiveOpens - s0.ActiveOpens) + (s1.PassiveOpens - s0.PassiveOpens);
    return { made: c.made, failed: c.failed, connPerS: c.made / (c.elapsedNs / 1e9), endsMade, recorded, cpuNs, rss, ...losses };
  } finally {
    await proc?.stop('SIGKILL', 2000);
    rmSync(outFile, { force: true });
  }
}
