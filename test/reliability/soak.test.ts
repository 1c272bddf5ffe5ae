/** The soak in its short form (30 s; the 10-minute run and its result are in docs/RELIABILITY.md): under a
 * steady spoofed-source load `netbpf drops` keeps RSS under the bound, runs to the end, and every packet the nft
 * rule dropped is an event or a counted loss. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { describeBpf } from '../helpers.js';
import { root } from './lib.js';

const run = promisify(execFile);

describeBpf('soak (short)', () => {
  it('30 s of steady load: RSS bounded, exit 0, events + lost == packets dropped by the rule', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'scripts/soak.mjs'), '--seconds', '30', '--rate', '2000', '--sample', '3', '--source', '100.112.0.0', '--json'], { timeout: 55_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.exit).toEqual({ code: 0, sig: null });
    expect(r.sent).toBe(60000);
    expect(r.nftDropped).toBe(r.sent);
    expect(r.events + r.lost).toBe(r.nftDropped);
    expect(r.rssMaxMiB).toBeLessThan(r.rssBoundMiB);
    expect(r.samples).toBeGreaterThanOrEqual(8);
    expect(r.folded.addresses).toBeGreaterThan(0);
    expect(r.ok).toBe(true);
  }, 60_000);
});
