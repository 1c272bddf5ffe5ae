/** Overload: a burst far larger than the ring buffer. The synthetic source (bench/bench.bpf.c, fired by getppid()
 * from test/reliability/burst.c) counts what it produced; lost events must equal produced - received exactly,
 * the consumer keeps running with bounded memory, and after the burst it catches up (nothing more lost). The
 * CLI's own report of such losses is checked against an nft counter in hostile.test.ts and soak.test.ts. */
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeBpf } from '../helpers.js';
import { buildHelper, root } from './lib.js';

const RING = 16384; // ~135 records of 120 bytes
const BURST = 300_000;
const AFTER = 2000;
const RSS_BOUND_MIB = 160;

interface Stat { received: number; lost: number; produced: number; rssKiB: number; outOfOrder: number }

/** A child speaking a line protocol: send() a line, next() the next output line (bounded). */
function lineChild(argv: string[]) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  createInterface({ input: child.stdout! }).on('line', (l) => { lines.push(l); wake?.(); });
  return {
    child,
    send: (l: string) => child.stdin!.write(l + '\n'),
    async next(timeoutMs = 20000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (!lines.length) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${argv[0]}: no output`);
        await new Promise<void>((r) => { wake = r; setTimeout(r, 100); });
      }
      return lines.shift()!;
    },
  };
}

describeBpf('overload', () => {
  it(`a ${BURST}-event burst into a ${RING}-byte ring: losses counted exactly, bounded memory, then it catches up`, async () => {
    execFileSync('make', ['-s', '-C', join(root, 'bench'), '../build/bench/bench.bpf.o'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const gen = lineChild([buildHelper('burst')]);
    let cons: ReturnType<typeof lineChild> | null = null;
    try {
      const pid = await gen.next();
      cons = lineChild([process.execPath, join(root, 'test/reliability/overload-consumer.mjs'), pid, String(RING), '50']);
      expect(await cons.next()).toBe('ready');
      const stat = async (): Promise<Stat> => { cons!.send('stat'); return JSON.parse(await cons!.next()) as Stat; };
      /** Waits (bounded) until every produced record was delivered or counted lost. */
      const settled = async (): Promise<Stat> => {
        for (let i = 0; ; i++) {
          const s = await stat();
          if (s.received + s.lost === s.produced || i > 50) return s;
          await new Promise((r) => setTimeout(r, 100));
        }
      };

      gen.send(`${BURST} 0`);
      expect(await gen.next(30000)).toBe(`done ${BURST}`);
      const burst = await settled();
      expect(burst.produced).toBe(BURST); // the program saw every call
      expect(burst.lost).toBeGreaterThan(BURST / 2); // the ring overflowed, far
      expect(burst.received + burst.lost).toBe(BURST); // exact: counted where it happened
      expect(burst.outOfOrder).toBe(0);
      expect(burst.rssKiB / 1024).toBeLessThan(RSS_BOUND_MIB);

      // After the burst: a paced load the consumer can keep up with is delivered completely.
      gen.send(`${AFTER} 1000`); // ~50 records per 50 ms poll: fits the ring
      expect(await gen.next(30000)).toBe(`done ${AFTER}`);
      const after = await settled();
      expect(after.produced).toBe(BURST + AFTER);
      expect(after.lost).toBe(burst.lost);
      expect(after.received).toBe(burst.received + AFTER);
      expect(after.outOfOrder).toBe(0);
      expect(after.rssKiB / 1024).toBeLessThan(RSS_BOUND_MIB);
      console.log(`overload: burst ${BURST} -> ${burst.received} received, ${burst.lost} lost; then ${AFTER} paced -> all received; RSS ${(after.rssKiB / 1024).toFixed(1)} MiB`);
    } finally {
      cons?.child.stdin!.end();
      gen.child.stdin!.end();
      for (const c of [cons?.child, gen.child]) {
        if (c && c.exitCode === null) {
          const t = setTimeout(() => c.kill('SIGKILL'), 5000);
          await new Promise((r) => c.once('close', r));
          clearTimeout(t);
        }
      }
    }
  });
});
