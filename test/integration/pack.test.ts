/**
 * The npm package as users get it. `npm pack` (prepack builds and copies the prebuilt addon and CO-RE objects
 * into prebuilds/linux-x64), then:
 * - on a bare target (test/integration/bare-target.sh: a private mount namespace where every compiler, build
 *   tool, bpftool and apt binary is a logging tripwire), `npm install ./netbpf-<version>.tgz` runs no compiler
 *   and no apt, and the installed CLI, an ESM consumer and a CommonJS consumer work, seeing the retransmits of a
 *   lossy link made here;
 * - where no prebuilt is wanted (NETBPF_BUILD_FROM_SOURCE=1), the install builds libbpf, the addon and the
 *   objects from source, and the CLI runs on what it built.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;
const PORT = 5431;
const CIDR = '10.231.0.0/24';

interface PackResult { filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }

describeBpf('npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netbpf-pack-'));
  let packed: PackResult;
  let tarball = '';
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeAll(() => {
    // prepack writes its build output to stderr, so stdout is the JSON alone.
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8', timeout: 600000, stdio: ['ignore', 'pipe', 'pipe'] });
    packed = (JSON.parse(out) as PackResult[])[0];
    tarball = join(dir, packed.filename);
    process.stderr.write(`netbpf pack: ${packed.filename} ${packed.size} bytes, ${packed.unpackedSize} unpacked, ${packed.files.length} files\n`);
  }, 600000);

  it('carries the prebuilt native parts, the sources to rebuild them, and the licences; no test helpers or build outputs', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(packed.filename).toBe(`netbpf-${version}.tgz`);
    const files = packed.files.map((f) => f.path);
    const tools = ['retrans', 'drops', 'life', 'connect', 'conntrack'];
    for (const f of ['LICENSE', 'LICENSES/GPL-2.0-only.txt', 'bin/netbpf.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'cjs/index.cjs',
      'prebuilds/linux-x64/netbpf.napi.glibc.node', ...tools.map((t) => `prebuilds/linux-x64/bpf/${t}.bpf.o`),
      'bpf/retrans.bpf.c', 'bpf/netbpf.h', 'bpf/Makefile', 'CMakeLists.txt', 'addon/bpf_object.cc',
      'scripts/install.mjs', 'scripts/build-libbpf.sh', 'scripts/tcp-load.mjs', 'docs/json.md', 'docs/schema/retrans.json',
      'deploy/prometheus/netbpf-rules.yml', 'deploy/prometheus/prometheus.yml', 'deploy/grafana/netbpf-dashboard.json', 'deploy/netbpf-daemonset.yaml', 'deploy/netbpf.service']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(build|node_modules|deps|src|test)\//.test(f) || f.startsWith('dist/testing/'))).toEqual([]);
    // Source maps ship only with their sources inlined (tsconfig inlineSources).
    const map = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/dist/core/addon.js.map'], { encoding: 'utf8' })) as { sourcesContent?: string[] };
    expect(map.sourcesContent?.[0]).toContain('export function addon()');
  });

  it('installs on a target without compilers (runs none) and works as a CLI, an ES module and from CommonJS', async () => {
    const p = await NetnsPair.create('pk');
    try {
      await p.addLoss(3, PORT);
      await p.startServer(PORT);
      const app = join(dir, 'bare');
      const script = join(root, 'test/integration/bare-target.sh');
      const child = spawn('bash', [script, tarball, app, CIDR, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const records: Array<Record<string, unknown>> = [];
      let stdout = '', stderr = '', seen = 0, traffic: Promise<void> | null = null, running = true;
      child.stderr.on('data', (d) => { stderr += d; });
      child.stdout.on('data', (d) => {
        stdout += d;
        const lines = stdout.split('\n');
        for (; seen < lines.length - 1; seen++) {
          const line = lines[seen];
          if (!line.startsWith('BARE ')) continue;
          const rec = JSON.parse(line.slice(5)) as Record<string, unknown>;
          records.push(rec);
          // Lossy bulk transfers (bounded) once the package is installed, until the script is done.
          if (rec.type === 'installed') traffic = (async () => {
            for (let i = 0; running && i < 200; i++) await p.client(p.addrB, PORT, { bytes: 2_000_000, conns: 2, parallel: 2 }).catch(() => undefined);
          })();
        }
      });
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      running = false;
      await traffic;
      expect(code, stderr).toBe(0);
      const rec = (type: string) => records.find((r) => r.type === type) as Record<string, never>;

      expect(rec('tripwires').covered).toBeGreaterThan(20);
      expect(rec('tripwires').selfCheckCalls).toBe(7); // clang cc g++ make cmake bpftool apt-get: all refused
      const installed = rec('installed');
      expect(installed).toMatchObject({ builtHere: false, compilerCalls: 0 });
      expect(rec('done').compilerCalls).toBe(0);
      expect(readFileSync(join(app, 'tripwire.log'), 'utf8')).toBe('');
      process.stderr.write(`netbpf pack: bare-target install ${installed.ms} ms\n`);

      const cliText = readFileSync(join(app, 'cli.txt'), 'utf8');
      const cliErr = readFileSync(join(app, 'cli.err'), 'utf8');
      expect(cliErr).toMatch(/retransmits via tp_btf\/tcp_retransmit_skb/);
      expect(cliErr).not.toMatch(/unavailable/); // every feature, without tracefs (this namespace has none)
      expect(cliText).toContain(`${p.addrB}:${PORT}`);
      const lines = readFileSync(join(app, 'cli.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ type: 'start', tool: 'retrans' });
      expect(lines.filter((l) => l.type === 'retransmit' && l.daddr === p.addrB && l.dport === PORT).length).toBeGreaterThan(0);
      expect(lines.at(-1)).toMatchObject({ type: 'counters', tool: 'retrans', lost: 0 });

      const esm = rec('esm').result as { hooks: Array<{ hook: string }>; events: number; segs: number; counters: { lost: number } };
      expect(esm.hooks[0].hook).toMatch(/tcp_retransmit_skb/);
      expect(esm.hooks.filter((h) => !h.hook)).toEqual([]);
      expect(esm.events).toBeGreaterThan(0);
      expect(esm.segs).toBeGreaterThanOrEqual(esm.events);
      expect(esm.counters.lost).toBe(0);

      // require('netbpf') loads the ES module where Node can (require(esm)); elsewhere it says to use import.
      const requireEsm = (process.features as { require_module?: boolean }).require_module === true;
      expect(rec('cjs').retrans).toBe(requireEsm ? 'function' : null);
      expect(rec('cjs-legacy').message).toMatch(/^NetbpfError: netbpf is an ES module .* use import \{ retrans \} from 'netbpf'/);
    } finally {
      await p.destroy();
    }
  }, 300000);

  it('builds from source where asked (NETBPF_BUILD_FROM_SOURCE=1) and runs on what it built', () => {
    const app = join(dir, 'source');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], {
      cwd: app, encoding: 'utf8', timeout: 540000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NETBPF_BUILD_FROM_SOURCE: '1' },
    });
    const pkg = join(app, 'node_modules/netbpf');
    expect(existsSync(join(pkg, 'build/Release/netbpf.node'))).toBe(true);
    expect(existsSync(join(pkg, 'build/bpf/retrans.bpf.o'))).toBe(true);
    // The addon built there links the static libbpf it built from the pinned Debian source.
    const link = execFileSync(process.execPath, ['-p', 'require(process.argv[1]).libbpfLink', join(pkg, 'build/Release/netbpf.node')], { encoding: 'utf8' }).trim();
    expect(link).toBe('static');
    const res = execFileSync('npx', ['--no-install', 'netbpf', 'retrans', '--duration', '1', '--json'], { cwd: app, encoding: 'utf8', timeout: 30000 });
    const lines = res.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: 'start', tool: 'retrans' });
    expect(lines.at(-1)).toMatchObject({ type: 'counters', tool: 'retrans', lost: 0 });
  }, 600000);
});
