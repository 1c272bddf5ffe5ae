/**
 * Where the native parts (the addon and the CO-RE BPF objects) come from: a build made on this machine
 * (build/Release, build/bpf: a checkout, or an install that built from source) wins; otherwise the prebuilt
 * ones shipped in the npm package, laid out as prebuildify / node-gyp-build do:
 * prebuilds/<platform>-<arch>/netbpf.<tags>.node (tags: napi, glibc|musl) and prebuilds/<platform>-<arch>/bpf/.
 * scripts/install.mjs asks the same questions at install time, so it builds from source only where nothing fits.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** The N-API version the addon is compiled against (CMakeLists.txt: -DNAPI_VERSION=8). */
export const ADDON_NAPI_VERSION = 8;

export type Libc = 'glibc' | 'musl';

/** What a prebuilt binary must fit: the running Node's platform, CPU, C library and N-API version. */
export interface NativeTarget { platform: string; arch: string; libc: Libc | null; napi: number }

/** A prebuilt addon file's tags, parsed from its name as node-gyp-build does (netbpf.napi.glibc.node). */
export interface PrebuiltTags { napi: boolean; abi: string | null; libc: Libc | null; runtime: string | null }

/** Where each native part was found: built here, or prebuilt in the package. */
export interface NativeLocation { path: string; origin: 'built' | 'prebuilt' }

let detectedLibc: Libc | null | undefined;

/** The C library the running Node is linked against: its ELF interpreter (ld-linux-* or ld-musl-*), which is
 * cheap to read, or else process.report (a few ms). null off Linux. */
export function runningLibc(): Libc | null {
  if (detectedLibc !== undefined) return detectedLibc;
  detectedLibc = null;
  if (process.platform !== 'linux') return detectedLibc;
  try {
    const fd = openSync('/proc/self/exe', 'r');
    const head = Buffer.alloc(4096);
    try { readSync(fd, head, 0, head.length, 0); } finally { closeSync(fd); }
    const text = head.toString('latin1');
    if (text.includes('/ld-musl-')) detectedLibc = 'musl';
    else if (text.includes('/ld-linux')) detectedLibc = 'glibc';
  } catch { /* no /proc: ask the report below */ }
  if (detectedLibc === null) {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    detectedLibc = header?.glibcVersionRuntime ? 'glibc' : 'musl';
  }
  return detectedLibc;
}

/** The running process as a target for prebuilt binaries. */
export function currentTarget(): NativeTarget {
  return { platform: process.platform, arch: process.arch, libc: runningLibc(), napi: Number(process.versions.napi ?? 0) };
}

/** The prebuilt folder for a target: prebuilds/linux-x64. */
export function prebuiltDir(root: string, target: NativeTarget): string {
  return join(root, 'prebuilds', `${target.platform}-${target.arch}`);
}

/** Tags of a prebuilt file name (netbpf.napi.glibc.node -> napi, glibc); null when it is not an addon. */
export function parsePrebuiltName(file: string): PrebuiltTags | null {
  if (!file.endsWith('.node')) return null;
  const tags: PrebuiltTags = { napi: false, abi: null, libc: null, runtime: null };
  for (const tag of file.split('.').slice(1, -1)) {
    if (tag === 'napi') tags.napi = true;
    else if (tag === 'glibc' || tag === 'musl') tags.libc = tag;
    else if (/^abi\d+$/.test(tag)) tags.abi = tag.slice(3);
    else if (tag === 'node' || tag === 'electron') tags.runtime = tag;
  }
  return tags;
}

/** Whether a prebuilt with these tags runs in the target: an N-API build (ABI-stable) or this exact Node ABI,
 * the same C library, and a Node with at least the N-API version the addon needs. */
export function prebuiltFits(tags: PrebuiltTags, target: NativeTarget, nodeAbi = process.versions.modules): boolean {
  if (tags.runtime !== null && tags.runtime !== 'node') return false;
  if (tags.napi ? target.napi < ADDON_NAPI_VERSION : tags.abi !== nodeAbi) return false;
  return tags.libc === null || tags.libc === target.libc;
}

/** The prebuilt addon that fits the target, or null. */
export function fittingPrebuiltAddon(root: string, target: NativeTarget = currentTarget()): string | null {
  const dir = prebuiltDir(root, target);
  let files: string[];
  try { files = readdirSync(dir); } catch { return null; }
  // Prefer a build for this exact ABI over the N-API one, as node-gyp-build does.
  const fitting = files.filter((f) => { const t = parsePrebuiltName(f); return t !== null && prebuiltFits(t, target); });
  fitting.sort((x, y) => Number(parsePrebuiltName(x)!.napi) - Number(parsePrebuiltName(y)!.napi));
  return fitting.length ? join(dir, fitting[0]) : null;
}

/** The addon to load: built here (build/Release/netbpf.node), else the fitting prebuilt; null when neither. */
export function locateAddon(root: string, target: NativeTarget = currentTarget()): NativeLocation | null {
  const built = join(root, 'build', 'Release', 'netbpf.node');
  if (existsSync(built)) return { path: built, origin: 'built' };
  const prebuilt = fittingPrebuiltAddon(root, target);
  return prebuilt ? { path: prebuilt, origin: 'prebuilt' } : null;
}

/** A tool's CO-RE object: built here (build/bpf/<tool>.bpf.o), else the prebuilt one; null when neither. */
export function locateBpfObject(root: string, tool: string, target: NativeTarget = currentTarget()): NativeLocation | null {
  const built = join(root, 'build', 'bpf', `${tool}.bpf.o`);
  if (existsSync(built)) return { path: built, origin: 'built' };
  const prebuilt = join(prebuiltDir(root, target), 'bpf', `${tool}.bpf.o`);
  return existsSync(prebuilt) ? { path: prebuilt, origin: 'prebuilt' } : null;
}

/** One line naming the target, for messages: "linux-x64 (glibc, N-API 9)". */
export function describeTarget(target: NativeTarget): string {
  return `${target.platform}-${target.arch} (${target.libc ?? 'unknown libc'}, N-API ${target.napi})`;
}
