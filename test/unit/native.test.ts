/** Which native addon and BPF objects the loader picks: a local build, else the prebuilt that fits. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDON_NAPI_VERSION, currentTarget, fittingPrebuiltAddon, locateAddon, locateBpfObject, parsePrebuiltName, prebuiltFits, runningLibc, type NativeTarget } from '../../src/core/native.js';

const glibc: NativeTarget = { platform: 'linux', arch: 'x64', libc: 'glibc', napi: 9 };
const touch = (path: string) => { mkdirSync(join(path, '..'), { recursive: true }); writeFileSync(path, ''); };

describe('prebuilt names', () => {
  it('parses node-gyp-build tags', () => {
    expect(parsePrebuiltName('netbpf.napi.glibc.node')).toEqual({ napi: true, abi: null, libc: 'glibc', runtime: null });
    expect(parsePrebuiltName('netbpf.node.abi115.musl.node')).toEqual({ napi: false, abi: '115', libc: 'musl', runtime: 'node' });
    expect(parsePrebuiltName('README.md')).toBeNull();
  });

  it('fits by C library, N-API version and ABI', () => {
    const napi = parsePrebuiltName('netbpf.napi.glibc.node')!;
    expect(prebuiltFits(napi, glibc)).toBe(true);
    expect(prebuiltFits(napi, { ...glibc, libc: 'musl' })).toBe(false);
    expect(prebuiltFits(napi, { ...glibc, napi: ADDON_NAPI_VERSION - 1 })).toBe(false);
    expect(prebuiltFits(parsePrebuiltName('netbpf.abi115.glibc.node')!, glibc, '115')).toBe(true);
    expect(prebuiltFits(parsePrebuiltName('netbpf.abi115.glibc.node')!, glibc, '127')).toBe(false);
    expect(prebuiltFits(parsePrebuiltName('netbpf.electron.napi.node')!, glibc)).toBe(false);
  });

  it('knows the running C library and target', () => {
    const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
    expect(runningLibc()).toBe(header.glibcVersionRuntime ? 'glibc' : 'musl');
    expect(currentTarget()).toMatchObject({ platform: process.platform, arch: process.arch, napi: Number(process.versions.napi) });
  });
});

describe('locating the native parts', () => {
  const root = mkdtempSync(join(tmpdir(), 'netbpf-native-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('finds nothing in an empty package', () => {
    expect(locateAddon(root, glibc)).toBeNull();
    expect(locateBpfObject(root, 'retrans', glibc)).toBeNull();
  });

  it('takes the fitting prebuilt, and a local build over it', () => {
    touch(join(root, 'prebuilds/linux-x64/netbpf.napi.musl.node'));
    expect(fittingPrebuiltAddon(root, glibc)).toBeNull();
    touch(join(root, 'prebuilds/linux-x64/netbpf.napi.glibc.node'));
    touch(join(root, 'prebuilds/linux-x64/bpf/retrans.bpf.o'));
    expect(locateAddon(root, glibc)).toEqual({ path: join(root, 'prebuilds/linux-x64/netbpf.napi.glibc.node'), origin: 'prebuilt' });
    expect(locateAddon(root, { ...glibc, libc: 'musl' })?.path).toBe(join(root, 'prebuilds/linux-x64/netbpf.napi.musl.node'));
    expect(locateAddon(root, { ...glibc, arch: 'arm64' })).toBeNull();
    expect(locateBpfObject(root, 'retrans', glibc)).toEqual({ path: join(root, 'prebuilds/linux-x64/bpf/retrans.bpf.o'), origin: 'prebuilt' });
    touch(join(root, 'build/Release/netbpf.node'));
    touch(join(root, 'build/bpf/retrans.bpf.o'));
    expect(locateAddon(root, glibc)).toEqual({ path: join(root, 'build/Release/netbpf.node'), origin: 'built' });
    expect(locateBpfObject(root, 'retrans', glibc)?.origin).toBe('built');
  });
});
