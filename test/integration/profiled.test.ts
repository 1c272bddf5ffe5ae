/** Tools load under a sampling profiler: the verifier gives up (EAGAIN) on a large program when a signal is pending,
 * and `node --cpu-prof` sends SIGPROF to the loading thread every sampling interval. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describeBpf } from '../helpers.js';

const BIN = fileURLToPath(new URL('../../bin/netbpf.js', import.meta.url));

describeBpf('netbpf under a sampling profiler', () => {
  it('life (the largest programs) loads and attaches under node --cpu-prof sampling every 100 us, and writes its profile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netbpf-prof-'));
    try {
      const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '100', `--cpu-prof-dir=${dir}`, BIN, 'life', '--duration', '1'],
        { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      expect(stderr).not.toMatch(/EAGAIN/);
      expect(stderr).toMatch(/connection state changes via \S+; .*attached in/);
      expect(code, stderr).toBe(0);
      expect(readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);
});
