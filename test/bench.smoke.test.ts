/** The benchmark harness in its quick mode: it runs end to end and reports rates and ratios, and every pipeline
 * run's loss accounting is exact (lost counted by the kernel == generated - received). Not a timing test. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { describeBpf } from './helpers.js';

const run = promisify(execFile);

interface PipelineRun { consumer: string; generated: number; received: number; lost: number; offeredRate: number; receivedRate: number; cpuNsPerEvent: number }

describeBpf('benchmark harness (quick mode)', () => {
  it('measures pipeline rates with exact loss accounting, workloads, start-up and memory', async () => {
    const { stdout } = await run(process.execPath, ['bench/run.js', '--quick', '--no-write', '--json'], { timeout: 60_000, maxBuffer: 16 << 20 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    const runs: PipelineRun[] = [...r.pipeline.runs, ...r.pipelineSmallRing.runs];
    expect(runs.length).toBeGreaterThanOrEqual(4);
    for (const p of runs) {
      expect(p.lost).toBe(p.generated - p.received);
      expect(p.receivedRate).toBeGreaterThan(0);
      expect(p.cpuNsPerEvent).toBeGreaterThan(0);
    }
    // Both consumers were measured (the small-ring runs usually include lossy ones: accounting checked above).
    expect(new Set(runs.map((p) => p.consumer))).toEqual(new Set(['c', 'netbpf']));
    expect(r.pipeline.netbpfToC).toBeGreaterThan(0);
    expect(r.startup.wallMs).toBeGreaterThan(r.startup.startupMs);
    expect(r.memory.map((m: { tool: string }) => m.tool)).toEqual(['retrans', 'drops', 'life']);
    for (const m of r.memory) {
      expect(m.rowsByAddress).toBe(4097);
      expect(m.foldedAddresses).toBe(m.destinations - 4096);
    }
    type Row = { workload: string; tracer: string; ratioToNone: number; reportedEvents: number; expectedEvents: number; oracles: Record<string, number> };
    const row = (w: string, t: string): Row => r.workloads.find((x: Row) => x.workload === w && x.tracer === t);
    const retrans = row('retrans-bulk', 'netbpf retrans');
    expect(retrans.ratioToNone).toBeGreaterThan(0);
    // Events reported vs tracepoint hits counted by perf (perf counts from before the tracer attached to after it stopped).
    expect(retrans.reportedEvents).toBeGreaterThan(0);
    expect(retrans.reportedEvents).toBeLessThanOrEqual(retrans.expectedEvents);
    expect(retrans.oracles.RetransSegs).toBeGreaterThan(0);
    // life on loopback connect/close: one line per connection, against the kernel's ActiveOpens.
    const life = row('connect-close', 'netbpf life');
    expect(life.ratioToNone).toBeGreaterThan(0);
    expect(life.expectedEvents).toBe(300);
    expect(life.reportedEvents).toBe(life.expectedEvents);
  });
});
