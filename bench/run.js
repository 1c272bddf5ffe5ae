#!/usr/bin/env node
// netbpf benchmark harness: `npm run bench` (as root, after `npm run build`).
//   node bench/run.js [--quick] [--no-write] [--json] [--only pipeline,workloads,startup,memory,attack,storm]
//                     [--workloads retrans-bulk,connect-close,drop-flood,conntrack-churn] [--reps N]
//                     [--storm-tracers 'netbpf life,netbpf top'] [--storm-seconds S] [--storm-rate R]
// Builds bench/ (make -C bench), runs each section and writes BENCHMARKS.md (unless --no-write). Every figure
// is a rate or ratio measured in this run against a baseline from this run. --quick is the smoke-test size.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipelineSweep, runPipeline } from './pipeline.js';
import { runWorkloads } from './workloads.js';
import { runStorm } from './storm.js';
import { runAttack, renderAttack } from './attack.js';
import { start, median, fmtRate, fmtMiB } from './lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// netbpf needs no tracefs, but the peers and oracles measured beside it do (perf and bpftrace tracepoints,
// libbpf-tools, kfree_skb's format file). Without it, run the whole harness in a private mount namespace with
// tracefs mounted there: the host's mounts stay as they are.
if (!existsSync('/sys/kernel/tracing/events') && !process.env.NETBPF_BENCH_TRACEFS) {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tracefs nodev /sys/kernel/tracing && exec "$0" "$@"', process.execPath, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, NETBPF_BENCH_TRACEFS: 'private' } });
  process.exit(r.status ?? 1);
}
const args = process.argv.slice(2);
// Help before anything runs (the whole harness takes many minutes and loads the machine).
if (args.includes('-h') || args.includes('--help')) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 7).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}
const KNOWN = new Set(['--quick', '--no-write', '--json', '--only', '--workloads', '--reps', '--storm-tracers', '--storm-seconds', '--storm-rate']);
for (let i = 0; i < args.length; i++) {
  if (!KNOWN.has(args[i])) { process.stderr.write(`bench: unknown argument ${args[i]} (see --help)\n`); process.exit(2); }
  if (!['--quick', '--no-write', '--json'].includes(args[i])) i++;
}
const quick = args.includes('--quick');
const onlyArg = args.indexOf('--only');
const only = onlyArg >= 0 ? new Set(args[onlyArg + 1].split(',')) : null;
const wants = (s) => !only || only.has(s);
const log = (s) => process.stderr.write(s + '\n');

const Q = quick
  ? { events: 200_000, fractions: [0.5], consumers: ['c', 'netbpf'], stress: true, startupRuns: 2, memoryN: 100_000,
      lossPercent: 5, bulkBytes: 2_000_000, bulkConns: 2, conns: 300, parallel: 8, floodSeconds: 0.5, ctConns: 200, reps: 1, attackPackets: 200_000,
      workloads: ['retrans-bulk', 'connect-close'], tracers: ['netbpf retrans', 'netbpf life'],
      stormSeconds: 2, stormReps: 1, stormRate: 2000, stormParallel: 16, stormMaxConns: 4000, stormTracers: ['netbpf life', 'netbpf life --summary'] }
  : { events: 2_000_000, fractions: [0.25, 0.5, 0.75], consumers: ['c', 'netbpf', 'netbpf-decode'], stress: true, startupRuns: 7,
      memoryN: 1_000_000, lossPercent: 5, bulkBytes: 20_000_000, bulkConns: 4, conns: 2000, parallel: 16, floodSeconds: 1.5,
      ctConns: 1000, reps: 5, attackPackets: 2_000_000, workloads: ['retrans-bulk', 'connect-close', 'drop-flood', 'conntrack-churn'], tracers: null,
      stormSeconds: 8, stormReps: 3, stormRate: 0, stormParallel: 64, stormMaxConns: 1_000_000, stormTracers: null, stormBurst: { rate: 1500, seconds: 5 } };
const wlArg = args.indexOf('--workloads');
if (wlArg >= 0) Q.workloads = args[wlArg + 1].split(',');
const repsArg = args.indexOf('--reps');
if (repsArg >= 0) Q.reps = Q.stormReps = Number(args[repsArg + 1]);
// --storm-tracers 'netbpf life,netbpf top' picks storm tracers; --storm-seconds, --storm-rate set the storm.
const argOf = (name) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : undefined);
if (argOf('--storm-tracers')) Q.stormTracers = argOf('--storm-tracers').split(',');
if (argOf('--storm-seconds')) Q.stormSeconds = Number(argOf('--storm-seconds'));
if (argOf('--storm-rate')) Q.stormRate = Number(argOf('--storm-rate'));
// The netbpf defaults (src/core/trace.ts): 4 MiB ring, 20 ms timed poll, wakeup past a quarter of the ring.
const RING = { ringBytes: 4 * 1024 * 1024, pollMs: 20, wakeupBytes: 1024 * 1024, destinations: 256 };
// A small ring makes loss start within the generator's reach, so where loss starts (and its exact
// accounting) is measured, not assumed.
const SMALL_RING = { ringBytes: 64 * 1024, pollMs: 20, wakeupBytes: 16 * 1024, destinations: 256 };

if (process.getuid() !== 0) { log('bench: needs root (loads BPF programs, creates namespaces)'); process.exit(2); }
if (!existsSync(join(root, 'dist/index.js')) || !existsSync(join(root, 'build/Release/netbpf.node'))) {
  log('bench: build first: npm run build'); process.exit(2);
}
execFileSync('make', ['-s', '-C', join(root, 'bench')], { stdio: ['ignore', 'ignore', 'inherit'] });

const machine = {
  date: new Date().toISOString(),
  nproc: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  kernel: release(),
  memory: fmtMiB(totalmem()),
  node: process.version,
  loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
};
const results = { machine, quick, command: `node bench/run.js ${args.join(' ')}`.trim() };

if (wants('pipeline')) {
  log('pipeline (default ring):');
  results.pipeline = await pipelineSweep(root, Q.consumers, { events: Q.events, ...RING }, Q.fractions, log);
  const s = results.pipeline.summary;
  results.pipeline.netbpfToC = s.netbpf.zeroLossRate / s.c.zeroLossRate;
  if (Q.stress) {
    log('pipeline (64 KiB ring: where loss starts):');
    results.pipelineSmallRing = await pipelineSweep(root, ['c', 'netbpf'], { events: Q.events / 2, ...SMALL_RING }, Q.fractions, log);
  }
}

if (wants('startup')) {
  log('start-up:');
  const runs = [];
  for (let i = 0; i < Q.startupRuns; i++) {
    const t0 = performance.now();
    const p = start([process.execPath, join(root, 'bin/netbpf.js'), 'retrans', '--duration', '0.2', '--json']);
    const m = await p.waitFor(/^(\{"type":"start".*)$/m, 30000);
    const wallMs = performance.now() - t0;
    await p.stop('SIGINT');
    runs.push({ wallMs, startupMs: JSON.parse(m[1]).startupMs });
  }
  results.startup = { runs: runs.length, wallMs: median(runs.map((r) => r.wallMs)), startupMs: median(runs.map((r) => r.startupMs)) };
  log(`  median: ${results.startup.wallMs.toFixed(0)} ms from exec to attached, Trace.start ${results.startup.startupMs.toFixed(1)} ms`);
}

if (wants('memory')) {
  log('memory under a destination flood:');
  results.memory = [];
  for (const tool of ['retrans', 'drops', 'life']) {
    const p = start([process.execPath, '--expose-gc', join(root, 'bench/memory.js'), String(Q.memoryN), '4096', tool]);
    await p.exit;
    if (p.exited.code !== 0) throw new Error(`memory.js failed: ${p.stderr}`);
    const x = JSON.parse(p.stdout.trim());
    results.memory.push(x);
    log(`  ${tool}: ${x.destinations} destinations: RSS ${fmtMiB(x.rssBefore)} -> ${fmtMiB(x.rssAfter)}, ${x.rowsByAddress} rows, ${x.foldedAddresses} folded`);
  }
}

if (wants('workloads')) {
  log('workloads:');
  results.workloads = await runWorkloads(root, Q, log);
}

// Line rate (issue 14), its own block of BENCHMARKS.md: the connection storm side by side, the pipeline rows of
// the consumers that matter to it (summary counted in the kernel, life's live lines; the C consumer beside them)
// and bursts. Not part of --quick's smoke run (test/storm.smoke.test.ts runs a quick storm).
if (only ? only.has('storm') : !quick) {
  if (!quick) {
    log('line rate: pipeline (summary in the kernel, life lines, C):');
    results.lineRatePipeline = await pipelineSweep(root, ['c', 'netbpf-summary', 'netbpf-life-lines'], { events: Q.events, ...RING }, Q.fractions, log);
    const s = results.lineRatePipeline.summary;
    results.lineRatePipeline.summaryCpuToC = s['netbpf-summary'].cpuNsPerEvent / s.c.cpuNsPerEvent;
    results.lineRatePipeline.lifeLinesCpuToC = s['netbpf-life-lines'].cpuNsPerEvent / s.c.cpuNsPerEvent;
    // Bursts: a storm's steady rate of connection ends (30k/s: 15k connections/s, two ends each), then ten times
    // that for one second, then steady again; netbpf life's live path (decode, lines, write) with rings of 1 and 4 MiB.
    log('line rate: pipeline (10x burst for 1 s):');
    results.pipelineBurst = [];
    for (const ringBytes of [1 << 20, RING.ringBytes]) {
      for (const consumer of ['c', 'netbpf-life-lines']) {
        const S = 30000;
        const r = await runPipeline(root, consumer, { events: 13 * S, rate: S, ringBytes, pollMs: RING.pollMs, wakeupBytes: ringBytes / 4, destinations: RING.destinations, burst: { at: 2, seconds: 1, rate: 10 * S } });
        log(`  ${consumer} ring ${ringBytes >> 10} KiB: ${r.generated} records in ${r.seconds.toFixed(2)} s (steady ${S}/s, burst ${10 * S}/s for 1 s), lost ${r.lost}; ${r.accounting}`);
        results.pipelineBurst.push({ ...r, steadyRate: S });
      }
    }
  }
  log('connection storm:');
  results.storm = await runStorm(root, Q, log);
}

// The attack floods take minutes: in the full run and when asked for, not in --quick's smoke run.
if (only ? only.has('attack') : !quick) {
  log('drop flood under attack (spoofed sources):');
  results.attack = await runAttack(root, Q, log);
}

if (args.includes('--json')) process.stdout.write(JSON.stringify(results) + '\n');
if (!args.includes('--no-write')) {
  // `--only attack` or `--only storm` replaces its own block of the existing file; any other run writes the whole file.
  const block = only?.size === 1 ? (only.has('attack') ? ['ATTACK', attackBlock] : only.has('storm') ? ['STORM', stormBlock] : null) : null;
  writeFileSync(join(root, 'BENCHMARKS.md'), block ? spliceBlock(block[0], block[1](results)) : render(results));
  log('wrote BENCHMARKS.md');
}

/** The attack section between its markers (kept by later runs that do not measure it). */
function attackBlock(r) {
  return ['<!-- ATTACK -->', ...renderAttack(r.attack, `sudo ${r.command}`), '<!-- /ATTACK -->'].join('\n');
}

/** The existing BENCHMARKS.md with the block between `<!-- NAME -->` markers replaced (or added before "How to run"). */
function spliceBlock(name, block) {
  const old = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
  const re = new RegExp(`<!-- ${name} -->[\\s\\S]*?<!-- /${name} -->`);
  if (re.test(old)) return old.replace(re, () => block);
  return old.replace('## How to run', () => `${block}\n\n## How to run`);
}

/** The kept block `name` of the existing file, or null. */
function keptBlock(name, oldFile) {
  return new RegExp(`<!-- ${name} -->[\\s\\S]*?<!-- /${name} -->`).exec(oldFile)?.[0] ?? null;
}

/** The line-rate block (issue 14): pipeline rows of the summary and live-lines consumers, bursts, the storm. */
function stormBlock(r) {
  const L = ['<!-- STORM -->', `## Line rate (issue 14): \`sudo ${r.command}\` on ${r.machine.date.slice(0, 10)}, load average at start ${r.machine.loadavg}`, ''];
  const p = r.lineRatePipeline;
  if (p) {
    L.push('### Pipeline: summary counted in the kernel, life\'s live lines, the C consumer', '');
    L.push('As the pipeline section (bench/gen, one record per getppid()), with two more consumers: `netbpf-summary` (bench.bpf.c counts each',
      'record in retrans\'s in-kernel map instead of sending it, as `--summary`, `top` and `serve` do; the consumer reads the maps every second)',
      'and `netbpf-life-lines` (one 120-byte `struct life_event` per call, decoded and written as `netbpf life` writes its lines).', '');
    L.push('| consumer | zero-loss rate | CPU ns/event | vs C | loss starts at (offered) |', '|---|---:|---:|---:|---:|');
    for (const [c, v] of Object.entries(p.summary)) {
      L.push(`| ${c} | ${fmtRate(v.zeroLossRate)} | ${v.cpuNsPerEvent.toFixed(0)} | ${(v.cpuNsPerEvent / p.summary.c.cpuNsPerEvent).toFixed(1)}x | ${v.lossStartsAt ? fmtRate(v.lossStartsAt) : `no loss up to ${fmtRate(v.maxOffered)}`} |`);
    }
    L.push('', `**Summary mode / C consumer, CPU per event: ${p.summaryCpuToC.toFixed(1)}x** (goal <= 10x). ` +
      'Its CPU is mostly fixed per second (one read of the maps, the timers): per event it falls as the rate rises.', '');
  }
  if (r.pipelineBurst) {
    L.push('### Bursts: ten times the steady rate for one second', '');
    L.push('`bench/gen` at a storm\'s steady rate of connection ends (30k/s: 15k connections/s, two ends each), 10x that for one second from t = 2 s, then steady again;',
      '`netbpf-life-lines` does what `netbpf life` does with each record (struct life_event: decode, tcplife line, one write per batch). On 2 cores the',
      'generator and the consumer share the CPUs, so the burst takes longer than its second when the consumer needs one of them.', '');
    L.push('| consumer | ring | records | seconds | lost | CPU ns/event | accounting |', '|---|---:|---:|---:|---:|---:|---|');
    for (const x of r.pipelineBurst) L.push(`| ${x.consumer} | ${x.ringBytes >> 10} KiB | ${x.generated} | ${x.seconds.toFixed(2)} | ${x.lost} | ${x.cpuNsPerEvent.toFixed(0)} | ${x.accounting} |`);
    L.push('');
  }
  {
    const rows = r.storm.rows;
    const tcplife = rows.find((x) => x.tracer === 'libbpf-tools tcplife');
    L.push('### Connection storm: every end recorded, side by side', '');
    L.push(`\`bench/storm.c\` in a private namespace: a client connects to 8 listening ports on loopback (127.99.0.1, from 64 source addresses in`,
      `127.99.1.0/24) and closes each connection as soon as it is established, as fast as it goes, ${r.storm.rows[0].runs} rounds of ${Q.stormSeconds} s; the server accepts and`,
      'closes at once. Tracers run one at a time on the host, interleaved (none, tcplife, netbpf life, ...), each filtered to 127.99.0.0/16 (or its',
      'output counted for it). Ends made: the namespace\'s ActiveOpens + PassiveOpens (two per connection). Recorded: lines with a storm address (tcplife,',
      '`netbpf life`), the final summary\'s closed connections (`life --summary`), life\'s exit count (`top`), `netbpf_connections_closed_total` in a',
      'scrape one interval after the storm (`serve`, scraped every 5 s during the storm, or every second in its second row; `--scrape-interval` set to match).',
      'Tracer CPU: utime+stime of the tracer process over the storm (not the final scrape), per connection made (median over rounds).',
      'Lost: ring buffer and kernel-map losses netbpf reports; misses: BPF program runs the kernel skipped (recursion) that could cost an end.', '');
    L.push('| tracer | connections/s median [min - max] | vs untraced | tracer CPU per connection | vs tcplife | ends recorded / made | lost | recursion misses | RSS |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const x of rows) {
      const rec = x.recorded === null ? '-' : `${x.recorded} / ${x.endsMade} (${(100 * x.recorded / x.endsMade).toFixed(2)}%)`;
      const vsTcplife = x.cpuUsPerConn !== null && tcplife?.cpuUsPerConn ? `${(100 * x.cpuUsPerConn / tcplife.cpuUsPerConn).toFixed(0)}%` : '-';
      L.push(`| ${x.tracer} | ${x.connPerS.toFixed(0)} [${x.min.toFixed(0)} - ${x.max.toFixed(0)}] | ${(100 * x.ratioToNone).toFixed(0)}% | ` +
        `${x.cpuUsPerConn === null ? '-' : `${x.cpuUsPerConn.toFixed(1)} us`} | ${vsTcplife} | ${rec} | ${x.lost === null ? '-' : x.peerSaysLost ? 'not reported' : x.lost} | ` +
        `${x.misses === null ? '-' : x.peerSaysLost ? 'not reported' : x.misses} | ${x.rss ? fmtMiB(x.rss) : '-'} |`);
    }
    L.push('');
    if (r.storm.burst) {
      const b = r.storm.burst;
      L.push(`Burst: \`netbpf life\` while the client runs ${b.seconds} s at ${b.steadyRate} connections/s with ${b.burstRate}/s for one second from t = 2 s: ` +
        `${b.made} connections, ${b.recorded} / ${b.endsMade} ends recorded, ${b.lost} lost, ${b.misses} recursion misses.`, '');
    }
  }
  L.push('<!-- /STORM -->');
  return L.join('\n');
}

function render(r) {
  const L = [];
  const m = r.machine;
  L.push('# netbpf benchmarks', '');
  L.push(`Run: \`sudo npm run bench\` (= \`${r.command}\`) on ${m.date.slice(0, 10)}, after \`npm run build\`.`);
  L.push(`Machine: ${m.nproc} CPUs (${m.cpu}), Linux ${m.kernel}, ${m.memory} RAM, Node ${m.node}; load average at start ${m.loadavg}.`);
  L.push('', '<!-- NOTES -->', '');
  if (r.pipeline) {
    const s = r.pipeline.summary;
    L.push('## Pipeline throughput (synthetic records, same size and ring policy as retrans)', '');
    L.push('`bench/gen` calls getppid(); `bench/bench.bpf.c` (tp_btf/sys_enter, filtered to getppid() by the',
      'generator\'s pid) emits one 112-byte `struct retrans_event` per call through netbpf.bpf.h\'s reserve/submit/lost',
      'path. Consumers run as separate processes; CPU is the consumer process\'s own (getrusage / process.cpuUsage).',
      `Default ring: ${RING.ringBytes / 1048576} MiB, ${RING.pollMs} ms timed poll, wakeup past ${RING.wakeupBytes / 1024} KiB.`,
      'Every run asserts produced (counted by the BPF program) == generated and lost (kernel counter) == generated - received.', '');
    L.push('| consumer | zero-loss rate | CPU ns/event | loss starts at (offered) | max offered |', '|---|---:|---:|---:|---:|');
    for (const [c, v] of Object.entries(s)) {
      L.push(`| ${c} | ${fmtRate(v.zeroLossRate)} | ${v.cpuNsPerEvent.toFixed(0)} | ${v.lossStartsAt ? fmtRate(v.lossStartsAt) : `no loss up to ${fmtRate(v.maxOffered)}`} | ${fmtRate(v.maxOffered)} |`);
    }
    L.push('', `**netbpf / C zero-loss rate: ${(r.pipeline.netbpfToC * 100).toFixed(0)}%** (goal >= 50%).`, '');
    if (r.pipeline.summaryCpuToC) {
      L.push(`**Summary mode (netbpf-summary: records counted in the kernel, maps read every second) / C consumer, CPU per event: ${r.pipeline.summaryCpuToC.toFixed(1)}x** (goal <= 10x). ` +
        'Its CPU is mostly fixed per second (one read of the maps, the timers): per event it falls as the rate rises.', '');
    }
    const runsTable = (runs) => {
      L.push('| consumer | ring | offered | received | lost | CPU ns/event | consumer CPU share | accounting |', '|---|---:|---:|---:|---:|---:|---:|---|');
      for (const x of runs) {
        L.push(`| ${x.consumer} | ${x.ringBytes / 1024} KiB | ${fmtRate(x.offeredRate)} | ${fmtRate(x.receivedRate)} | ${x.lost} | ${x.cpuNsPerEvent.toFixed(0)} | ${(x.consumerCpuShare * 100).toFixed(0)}% | ${x.accounting} |`);
      }
      L.push('');
    };
    L.push('<details><summary>All pipeline runs</summary>', '');
    runsTable(r.pipeline.runs);
    if (r.pipelineSmallRing) runsTable(r.pipelineSmallRing.runs);
    L.push('</details>', '');
    if (r.pipelineSmallRing) {
      const ss = r.pipelineSmallRing.summary;
      L.push(`With a ${SMALL_RING.ringBytes / 1024} KiB ring (loss made reachable): ` + Object.entries(ss).map(([c, v]) =>
        `${c} zero-loss ${fmtRate(v.zeroLossRate)}, loss from ${v.lossStartsAt ? fmtRate(v.lossStartsAt) : `none up to ${fmtRate(v.maxOffered)}`}`).join('; ') + '.', '');
    }
  }
  if (r.workloads) {
    L.push('## Real workloads: cost of tracing, netbpf vs peers', '');
    L.push(`Each workload runs in private namespaces (veth pair A/B), ${r.workloads[0]?.runs ?? 0} rounds, tracers interleaved within each round`,
      '(none, netbpf, peer A, peer B, ... rotated each round); one warm-up run first. Throughput: median over rounds, [min - max] shows the spread.',
      'Tracer CPU: utime+stime from /proc/<pid>/stat over the workload, per second of workload (median). RSS: VmRSS at the end of the workload.',
      '"reported / happened": events the tracer printed (netbpf drops: its exit counter of delivered events) summed over rounds, against the',
      'oracle named in the last column (kernel counters, nft counters, `conntrack -D`, perf tracepoint hits). Peers run as shipped',
      '(libbpf-tools 0.26 from Debian 12, bpftrace 0.17, conntrack-tools); libbpf-tools with `stdbuf -oL` (line-buffered, as on a terminal).', '');
    L.push('| workload (tool) | tracer | throughput median [min - max] | vs no tracer | tracer CPU ms/s | tracer RSS | reported / happened | oracle |',
      '|---|---|---:|---:|---:|---:|---:|---|');
    for (const w of r.workloads) {
      const spread = `${w.value.toFixed(0)} [${w.min.toFixed(0)} - ${w.max.toFixed(0)}] ${w.unit}`;
      const rep = w.reportedEvents === null ? '-' : `${w.reportedEvents} / ${w.expectedEvents}${w.oracleEstimated ? ' (est.)' : ''}`;
      L.push(`| ${w.workload} (${w.tool}) | ${w.tracer} | ${spread} | ${(w.ratioToNone * 100).toFixed(0)}% | ${w.tracerCpuMsPerS === null ? '-' : w.tracerCpuMsPerS.toFixed(0)} | ` +
        `${w.tracerRss ? fmtMiB(w.tracerRss) : '-'} | ${rep} | ${w.oracleKey ?? Object.entries(w.oracles).map(([k, v]) => `${k} ${v}`).join(', ')} |`);
    }
    L.push('');
    const seen = new Set();
    for (const w of r.workloads) {
      if (seen.has(w.workload)) continue;
      seen.add(w.workload);
      L.push(`- **${w.workload}**: ${w.title}. Oracles: ${w.oracleText}.`);
    }
    L.push('');
  }
  if (r.startup) {
    L.push('## Start-up', '');
    L.push(`\`netbpf retrans --duration 0.2 --json\`, median of ${r.startup.runs}: **${r.startup.wallMs.toFixed(0)} ms** from exec to the "start" line (attached); ` +
      `Trace.start() (open, load, attach: StartInfo.startupMs) **${r.startup.startupMs.toFixed(1)} ms**.`, '');
  }
  if (r.memory) {
    L.push('## Memory under a destination flood', '');
    L.push(`Each aggregator fed ${r.memory[0].destinations.toLocaleString('en')} synthetic events with distinct remote addresses (one connection each), table cap ${r.memory[0].maxDestinations} (\`bench/memory.js N CAP TOOL\`).`, '');
    L.push('| aggregator | RSS before | RSS after | at 25% / 50% / 75% / 100% | address rows | folded into "other" | ns per event |', '|---|---:|---:|---|---:|---:|---:|');
    for (const x of r.memory) {
      L.push(`| ${x.tool} | ${fmtMiB(x.rssBefore)} | ${fmtMiB(x.rssAfter)} | ${x.rssCheckpoints.map(([, b]) => fmtMiB(b)).join(' / ')} | ${x.rowsByAddress} | ${x.foldedAddresses.toLocaleString('en')} | ${x.nsPerEvent.toFixed(0)} |`);
    }
    L.push('');
  }
  const oldFile = existsSync(join(root, 'BENCHMARKS.md')) ? readFileSync(join(root, 'BENCHMARKS.md'), 'utf8') : '';
  for (const [name, has, make] of [['STORM', r.storm, stormBlock], ['ATTACK', r.attack, attackBlock]]) {
    const block = has ? make(r) : keptBlock(name, oldFile);
    if (block) L.push(block, '');
  }
  L.push('## How to run', '',
    '```', 'npm run build', 'sudo npm run bench            # full run, writes BENCHMARKS.md (a few minutes)',
    'sudo node bench/run.js --quick --no-write   # smoke size (test/bench.smoke.test.ts)',
    'sudo node bench/run.js --only pipeline      # sections: pipeline, workloads, startup, memory',
    'sudo node bench/run.js --only workloads --workloads drop-flood --reps 3   # one workload',
    'sudo node bench/run.js --only storm --reps 3 --storm-seconds 8   # the connection storm (tracers: --storm-tracers a,b)',
    'sudo node bench/run.js --only attack --reps 3   # the spoofed-source drop floods (issue 19); replaces only its section', '```', '',
    'Needs root, kernel BTF, clang, bpftool, perf (hit counting), bpftrace, libbpf-tools, conntrack (peers). Files: bench/run.js (harness), pipeline.js,',
    'workloads.js (TRACERS and WORKLOADS: a new tool adds one entry to each), storm.js + storm.c (the connection storm, STORM_TRACERS), memory.js,',
    'bench.bpf.c, gen.c, cconsumer.c, jsconsumer.js, live.js and decode.js (in-process costs), Makefile (builds into build/bench/).', '');
  let text = L.join('\n');
  // Hand-written notes (between the markers in the existing file) survive re-runs.
  const old = existsSync(join(root, 'BENCHMARKS.md')) ? readFileSync(join(root, 'BENCHMARKS.md'), 'utf8') : '';
  const notes = /<!-- NOTES -->\n([\s\S]*?)<!-- \/NOTES -->/.exec(old)?.[1] ?? '';
  return text.replace('<!-- NOTES -->', `<!-- NOTES -->\n${notes}<!-- /NOTES -->`);
}
