/**
 * The deploy/ files are valid and agree with each other and with netbpf: the manifest against Kubernetes' own
 * OpenAPI schemas (kubernetes-models, which validates with ajv; shown to reject broken variants), the
 * Containerfile with dockerfile-utils' linter (the one behind the Dockerfile language server), and the facts the
 * three files share (command, port, capabilities, what is mounted). The unit is checked by systemd-analyze and
 * all three are run in test/integration/deploy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { validate as lintContainerfile } from 'dockerfile-utils';
import { containerfile, daemonSetCapabilities, daemonSetCommand, daemonSetPodSpec, manifestDocuments, unitDirectives } from '../deploy-files.js';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('deploy/netbpf-daemonset.yaml', () => {
  const docs = manifestDocuments();
  const ds = docs.find((d) => d.kind === 'DaemonSet')!;

  it('validates against the Kubernetes schemas, which reject broken variants', () => {
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'DaemonSet']);
    expect(() => new Namespace(docs[0] as never).validate()).not.toThrow();
    expect(() => new DaemonSet(ds as never).validate()).not.toThrow();
    const broken = (edit: (spec: Record<string, any>) => void) => {
      const copy = structuredClone(ds);
      edit(copy.spec.template.spec);
      return () => new DaemonSet(copy as never).validate();
    };
    expect(broken((s) => { s.containers[0].ports[0].containerPort = 'metrics'; })).toThrow(/containerPort must be integer/);
    expect(broken((s) => { s.containers[0].securityContext.capabilities.add = 'BPF'; })).toThrow(/add must be array/);
    expect(broken((s) => { s.hostPID = 'yes'; })).toThrow(/hostPID must be boolean/);
    expect(broken((s) => { delete s.containers; })).toThrow(/must have required property containers/);
  });

  it('runs serve with only CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, no host namespaces, bounded resources', () => {
    const spec = daemonSetPodSpec();
    const c = spec.containers[0];
    expect(daemonSetCapabilities()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON']);
    expect(c.securityContext).toMatchObject({ runAsUser: 0, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect([spec.hostPID, spec.hostNetwork, spec.hostIPC ?? false]).toEqual([false, false, false]);
    expect(c.resources.limits).toEqual({ cpu: '1', memory: '512Mi' });
    expect(c.resources.requests).toEqual({ cpu: '100m', memory: '192Mi' });
    expect(c.image).toBe(`netbpf:${version}`);
  });

  it('is scraped where serve listens, and names containers from the host cgroup tree it mounts (no tracefs, no debugfs)', () => {
    const args = daemonSetCommand();
    const spec = daemonSetPodSpec();
    const port = spec.containers[0].ports[0].containerPort as number;
    expect(args.slice(0, 3)).toEqual(['serve', '--prometheus', `0.0.0.0:${port}`]);
    expect(ds.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    const mounts = spec.containers[0].volumeMounts as Array<{ name: string; mountPath: string; readOnly: boolean }>;
    const hostPaths = Object.fromEntries((spec.volumes as Array<{ name: string; hostPath: { path: string } }>).map((v) => [v.name, v.hostPath.path]));
    const cgroupRoot = args[args.indexOf('--cgroup-root') + 1];
    expect(args).toContain('--container');
    expect(mounts.find((m) => m.mountPath === cgroupRoot)).toMatchObject({ readOnly: true });
    expect(hostPaths[mounts.find((m) => m.mountPath === cgroupRoot)!.name]).toBe('/sys/fs/cgroup');
    expect(mounts.every((m) => m.readOnly)).toBe(true);
    expect(Object.values(hostPaths).sort()).toEqual(['/sys/fs/cgroup', '/sys/kernel/btf']);
  });
});

describe('deploy/Containerfile', () => {
  const text = containerfile();

  it('passes the Dockerfile linter, which flags broken files', () => {
    expect(lintContainerfile(text).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
    expect(lintContainerfile('FROM\nEXPOSE http\nCOPY only-one\n').map((d) => d.message)).toEqual(['Instruction has no arguments', 'Invalid containerPort: http', 'COPY requires at least two arguments']);
  });

  it('installs the packed tarball of this version, with libelf and no toolchain, and runs what the DaemonSet runs', () => {
    expect(text).toMatch(/^FROM docker\.io\/library\/node:20-bookworm-slim$/m);
    expect(text).toContain(`ARG NETBPF_VERSION=${version}\n`);
    expect(text).toMatch(/npm install --global --omit=dev .*\/tmp\/netbpf-\$\{NETBPF_VERSION\}\.tgz/);
    expect(text).toMatch(/apt-get install -y --no-install-recommends libelf1\s/);
    expect(text).not.toMatch(/\b(clang|gcc|g\+\+|cmake|make|build-essential|bpftool)\b/);
    expect(/^ENTRYPOINT (.*)$/m.exec(text)![1]).toBe('["netbpf"]');
    expect(JSON.parse(/^CMD (.*)$/m.exec(text)![1])).toEqual(daemonSetCommand());
    expect(text).toMatch(/^EXPOSE 9464$/m);
  });
});

describe('deploy/netbpf.service', () => {
  it('serves on loopback as a dynamic user with the capabilities the DaemonSet adds, hardened', () => {
    const u = unitDirectives();
    expect(u.ExecStart).toBe('netbpf serve --prometheus 127.0.0.1:9464 --container');
    const caps = u.AmbientCapabilities.split(' ').map((c) => c.replace(/^CAP_/, '')).sort();
    expect(caps).toEqual(daemonSetCapabilities());
    expect(u.CapabilityBoundingSet).toBe(u.AmbientCapabilities);
    expect(u).toMatchObject({ DynamicUser: 'yes', NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectKernelModules: 'yes', MemoryMax: '512M' });
    expect(u.SystemCallFilter.split(' ')).toEqual(['@system-service', 'bpf', 'perf_event_open']);
  });
});
