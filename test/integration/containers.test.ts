/**
 * Container attribution against the real kernel: a cgroup named like Docker's (docker-<64 hex>.scope under a
 * test slice) is created in the cgroup v2 hierarchy (mounted on a temp dir when the host has none), the test
 * client is moved into it through cgroup.procs, and its connects must be attributed to that container id, in
 * top's rows and as the Prometheus `container_id` label. The cgroups (and a mount made here) are removed after.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetnsPair } from '../../src/testing/netns.js';
import { cgroup2Mount, ContainerResolver, containerFromPath } from '../../src/core/containers.js';
import { top, type TopSession } from '../../src/tools/top/index.js';
import { PrometheusExporter } from '../../src/tools/prometheus/index.js';
import { describeBpf, sleep } from '../helpers.js';

const PORT = 5321, CLOSED = 5322;
const root = new URL('../..', import.meta.url).pathname;

describeBpf('container attribution by cgroup id', () => {
  let p: NetnsPair;
  let mountedHere: string | null = null;
  let mount = '';
  let slice = '', scope = '';
  const id = randomBytes(32).toString('hex');
  let session: TopSession;
  let exporter: PrometheusExporter;

  beforeAll(async () => {
    mount = cgroup2Mount() ?? '';
    if (!mount) {
      mountedHere = mkdtempSync(join(tmpdir(), 'netbpf-cg2-'));
      execFileSync('mount', ['-t', 'cgroup2', 'none', mountedHere]);
      mount = mountedHere;
    }
    slice = join(mount, `netbpf-test-${process.pid}.slice`);
    scope = join(slice, `docker-${id}.scope`);
    mkdirSync(scope, { recursive: true });
    p = await NetnsPair.create('cg');
    await p.startServer(PORT);
    const resolver = new ContainerResolver();
    session = top({ by: { kind: 'endpoint' }, remoteCidrs: ['10.231.0.0/24'], containerOf: (c) => resolver.containerOf(c), pollMs: 10 });
    exporter = new PrometheusExporter(session, { containerOf: (c) => resolver.containerOf(c), processMetrics: false, dropHoldMs: 0, scrapeIntervalMs: 0 }).attach();
    await session.start();
  });

  afterAll(async () => {
    await exporter?.close();
    await session?.stop();
    await p?.destroy();
    for (const d of [scope, slice]) {
      for (let i = 0; i < 20; i++) { try { rmdirSync(d); break; } catch { await sleep(100); } }
    }
    if (mountedHere) { execFileSync('umount', [mountedHere]); rmdirSync(mountedHere); }
  });

  it('maps a cgroup id to its path and the container id in it', () => {
    const r = new ContainerResolver({ root: mount });
    const cgroupId = statSync(scope).ino; // cgroup v2 id == inode of the cgroup directory
    expect(r.pathOf(cgroupId)).toBe(`/netbpf-test-${process.pid}.slice/docker-${id}.scope`);
    expect(r.containerOf(cgroupId)).toBe(id);
    expect(containerFromPath(`/system.slice/docker-${id}.scope`)).toEqual({ runtime: 'docker', id });
  });

  it('attributes the connects of a process in the container cgroup to its container id', async () => {
    // The shell moves itself into the container's cgroup, then becomes the client: every connect comes from there.
    const client = join(root, 'scripts/tcp-load.mjs');
    const script = `echo $$ > ${scope}/cgroup.procs && exec ip netns exec ${p.a} ${process.execPath} ${client} client --host ${p.addrB} --port `;
    const runIn = (port: number, conns: number) => new Promise<string>((resolve) => {
      const c = spawn('sh', ['-c', `${script}${port} --conns ${conns}`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d) => { out += d; });
      c.once('close', () => resolve(out)); // close: after all output was read
    });
    const ok = JSON.parse((await runIn(PORT, 3)).trim());
    const refused = JSON.parse((await runIn(CLOSED, 2)).trim());
    expect(ok.ok).toBe(3);
    expect(refused.errors.ECONNREFUSED).toBe(2);
    // Outside the container, for contrast: no container.
    await p.client(p.addrB, PORT, { conns: 1 });
    let rows = session.snapshot().rows;
    for (const t0 = Date.now(); Date.now() - t0 < 3000 && !(rows.find((r) => r.key.endsWith(`:${CLOSED}`))?.connects.failures === 2 && rows.find((r) => r.key.endsWith(`:${PORT}`))?.connects.attempts === 4); await sleep(100)) rows = session.snapshot().rows;
    const okRow = rows.find((r) => r.key === `${p.addrB}:${PORT}`)!;
    const refusedRow = rows.find((r) => r.key === `${p.addrB}:${CLOSED}`)!;
    expect(okRow.connects.attempts).toBe(4);
    expect(okRow.containers).toEqual([id]);
    expect(refusedRow.containers).toEqual([id]);
    const metrics = await exporter.metrics();
    expect(metrics).toContain(`netbpf_connect_attempts_total{destination="${p.addrB}:${PORT}",address="${p.addrB}",port="${PORT}",result="ok",container_id="${id.slice(0, 12)}"} 3`);
    expect(metrics).toContain(`netbpf_connect_attempts_total{destination="${p.addrB}:${PORT}",address="${p.addrB}",port="${PORT}",result="ok"} 1`); // no container: no label
    expect(metrics).toContain(`netbpf_connect_attempts_total{destination="${p.addrB}:${CLOSED}",address="${p.addrB}",port="${CLOSED}",result="refused",container_id="${id.slice(0, 12)}"} 2`);
  }, 30000);
});
