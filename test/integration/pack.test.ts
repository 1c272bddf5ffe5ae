/**
 * The npm package as users get it: `npm pack`, then `npm install ./netbpf-<version>.tgz` into a fresh project
 * on this machine (the install script builds libbpf, the addon and the BPF objects), then the installed CLI
 * (`npx netbpf retrans --duration 1`) and a script importing the library by name both run against the kernel.
 */
import { afterAll, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBpf } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;

describeBpf('npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netbpf-pack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('packs, installs (building the native parts), and runs as a CLI and as a library', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    const sh = (cmd: string, args: string[], cwd: string, timeout = 120000) => execFileSync(cmd, args, { cwd, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
    const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', dir], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = join(dir, packed[0].filename);
    expect(packed[0].filename).toBe(`netbpf-${version}.tgz`);
    const files = packed[0].files.map((f) => f.path);
    // Everything needed at run time or to build at install time, and no build outputs of this machine.
    for (const f of ['bin/netbpf.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bpf/retrans.bpf.c', 'bpf/netbpf.h', 'bpf/Makefile', 'CMakeLists.txt', 'scripts/install.mjs', 'scripts/build-libbpf.sh', 'addon/bpf_object.cc', 'docs/json.md', 'docs/schema/retrans.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('build/') || f.startsWith('node_modules/') || f.startsWith('deps/'))).toEqual([]);

    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], app, 540000);

    const cli = execFileSync('npx', ['--no-install', 'netbpf', 'retrans', '--duration', '1'], { cwd: app, encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(typeof cli).toBe('string');
    const res = execFileSync('npx', ['--no-install', 'netbpf', 'retrans', '--duration', '1', '--json'], { cwd: app, encoding: 'utf8', timeout: 30000 });
    const lines = res.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'start', tool: 'retrans' });
    expect(lines.at(-1)).toMatchObject({ type: 'counters', tool: 'retrans', lost: 0 });

    writeFileSync(join(app, 'use.mjs'), `import { retrans, RETRANS_LAYOUT } from 'netbpf';
const t = retrans();
const info = await t.start();
await new Promise((r) => setTimeout(r, 300));
await t.stop();
console.log(JSON.stringify({ hook: info.hooks[0].hook, size: RETRANS_LAYOUT.size, counters: t.counters() }));
`);
    const used = JSON.parse(sh(process.execPath, ['use.mjs'], app, 30000).trim());
    expect(used.hook).toMatch(/tcp_retransmit_skb/);
    expect(used.size).toBe(112);
    expect(used.counters.lost).toBe(0);
  }, 600000);
});
