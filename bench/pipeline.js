// Pipeline throughput: bench/gen calls getppid() (each call makes bench.bpf.c emit one 112-byte retrans_event
// through the shared ring buffer policy); a consumer process counts (C, libbpf) or decodes and aggregates
// (netbpf: addon + Trace + decodeRetrans + RetransAggregator). Every run checks, exactly:
//   produced (counted by the BPF program) == generated (counted by the generator)
//   lost (the kernel-side counter)       == generated - received
import { join } from 'node:path';
import { start } from './lib.js';

/** Consumers: a later consumer (another decoder, another runtime) is one more entry. */
export const CONSUMERS = {
  c: {
    label: 'C libbpf consumer (count only)',
    argv: (root, cfg) => [join(root, 'build/bench/cconsumer'), cfg.pid, cfg.ringBytes, cfg.pollMs, cfg.wakeupBytes, cfg.destinations].map(String),
  },
  netbpf: {
    label: 'netbpf: addon + Trace + decodeRetrans + RetransAggregator',
    argv: (root, cfg) => [process.execPath, join(root, 'bench/jsconsumer.js'), JSON.stringify({ ...cfg, mode: 'aggregate' })],
  },
  'netbpf-summary': {
    label: 'netbpf summary: counted in the kernel (retrans\'s summary maps), read every second into RetransAggregator',
    argv: (root, cfg) => [process.execPath, join(root, 'bench/jsconsumer.js'), JSON.stringify({ ...cfg, mode: 'summary' })],
  },
  'netbpf-life-lines': {
    label: 'netbpf life live: addon + Trace + decodeLife + tcplife lines written (struct life_event records)',
    argv: (root, cfg) => [process.execPath, join(root, 'bench/jsconsumer.js'), JSON.stringify({ ...cfg, mode: 'life-lines' })],
  },
  'netbpf-decode': {
    label: 'netbpf: addon + Trace + decodeRetrans (no aggregation)',
    argv: (root, cfg) => [process.execPath, join(root, 'bench/jsconsumer.js'), JSON.stringify({ ...cfg, mode: 'decode' })],
  },
};

/** One run: `events` getppid() calls at `rate` per second (0 = as fast as the generator goes); `burst`: from `at`
 * seconds on, for `seconds`, at `rate` per second instead. */
export async function runPipeline(root, consumer, { events, rate = 0, ringBytes, pollMs, wakeupBytes, destinations, burst = null }) {
  const gen = start([join(root, 'build/bench/gen'), String(events), String(rate), ...(burst ? [burst.at, burst.seconds, burst.rate].map(String) : [])]);
  let cons = null;
  try {
    const pid = Number((await gen.waitFor(/^(\d+)\n/))[1]);
    const cfg = { pid, ringBytes, pollMs, wakeupBytes, destinations };
    cons = start(CONSUMERS[consumer].argv(root, cfg));
    await cons.waitFor(/ready\n/);
    gen.child.stdin.write('go\n');
    const m = await gen.waitFor(/^\d+\n(\d+) (\d+)\n/, 120000);
    const generated = Number(m[1]), elapsedNs = Number(m[2]);
    await cons.stop('SIGTERM');
    const last = cons.stdout.trim().split('\n').pop();
    if (!last?.startsWith('{')) throw new Error(`${consumer} consumer ended without its result (exit ${cons.child.exitCode ?? cons.child.signalCode}): ${cons.stderr.slice(-500)}`);
    const r = JSON.parse(last);
    if (process.env.BENCH_DEBUG) process.stderr.write(cons.stdout + cons.stderr);
    if (r.produced !== generated) {
      throw new Error(`${consumer}: the BPF program saw ${r.produced} calls, the generator made ${generated}`);
    }
    if (r.lost !== generated - r.received) {
      throw new Error(`${consumer}: lost ${r.lost} != generated ${generated} - received ${r.received}`);
    }
    const seconds = elapsedNs / 1e9;
    return {
      consumer, events, requestedRate: rate, ringBytes, pollMs, wakeupBytes, burst,
      generated, received: r.received, lost: r.lost, seconds,
      offeredRate: generated / seconds,
      receivedRate: r.received / seconds,
      cpuNsPerEvent: r.received ? r.cpuNs / r.received : NaN,
      consumerCpuShare: r.cpuNs / elapsedNs,
      accounting: `lost ${r.lost} == generated ${generated} - received ${r.received}`,
    };
  } finally {
    await cons?.stop('SIGKILL', 2000);
    await gen.stop('SIGKILL', 2000);
  }
}

/**
 * For each consumer: an unpaced run (the most the generator offers) and paced runs below it. Reports the
 * highest received rate with zero loss and the lowest offered rate at which loss appeared.
 */
export async function pipelineSweep(root, consumers, base, fractions, log) {
  const runs = [];
  // The generator's own ceiling, measured with the cheapest consumer attached, sets the paced rates.
  let ceiling = null;
  for (const consumer of consumers) {
    const max = await runPipeline(root, consumer, { ...base, rate: 0 });
    log(line(max));
    runs.push(max);
    ceiling ??= max.offeredRate;
    for (const f of fractions) {
      const r = await runPipeline(root, consumer, { ...base, events: Math.max(10000, Math.round(base.events * f)), rate: Math.round(ceiling * f) });
      log(line(r));
      runs.push(r);
    }
  }
  const summary = {};
  for (const consumer of consumers) {
    const mine = runs.filter((r) => r.consumer === consumer);
    const clean = mine.filter((r) => r.lost === 0);
    const lossy = mine.filter((r) => r.lost > 0).sort((a, b) => a.offeredRate - b.offeredRate);
    const best = clean.sort((a, b) => b.receivedRate - a.receivedRate)[0] ?? null;
    summary[consumer] = {
      zeroLossRate: best?.receivedRate ?? 0,
      cpuNsPerEvent: best?.cpuNsPerEvent ?? mine[0].cpuNsPerEvent,
      lossStartsAt: lossy[0]?.offeredRate ?? null,
      maxOffered: Math.max(...mine.map((r) => r.offeredRate)),
    };
  }
  return { runs, summary };
}

function line(r) {
  return `  ${r.consumer.padEnd(13)} offered ${(r.offeredRate / 1e3).toFixed(0).padStart(5)} k/s -> received ${(r.receivedRate / 1e3).toFixed(0).padStart(5)} k/s, ` +
    `${r.cpuNsPerEvent.toFixed(0)} ns CPU/event, ring ${r.ringBytes / 1024} KiB; ${r.accounting}`;
}
