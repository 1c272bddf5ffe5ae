#!/usr/bin/env node
// prepack: copies this machine's build into prebuilds/<platform>-<arch>/ for the npm package (never into git):
// the addon as netbpf.napi.<libc>.node (node-gyp-build naming; N-API, so one file serves every Node >= 20) and
// the CO-RE objects in bpf/. The addon must link libbpf statically (scripts/build-libbpf.sh), so its only
// shared-library needs on a target are libc, libstdc++, libelf and zlib. Symbols and DWARF are stripped;
// the objects keep their BTF (.BTF, .BTF.ext), which CO-RE relocation needs, as libbpf-tools does.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fail = (msg) => { process.stderr.write(`netbpf prebuild: ${msg}\n`); process.exit(1); };
const native = await import(pathToFileURL(join(root, 'dist/core/native.js')).href);
const target = native.currentTarget();
const addonPath = join(root, 'build/Release/netbpf.node');
if (!existsSync(addonPath)) fail(`${addonPath} is not built; run: npm run build`);
const addon = createRequire(import.meta.url)(addonPath);
if (addon.libbpfLink !== 'static') fail('the addon links the system libbpf.so; a prebuilt must link libbpf statically (run scripts/build-libbpf.sh, then npm run build)');

const has = (cmd) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; } };
const dir = native.prebuiltDir(root, target);
rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
mkdirSync(join(dir, 'bpf'), { recursive: true });

const addonOut = join(dir, `netbpf.napi.${target.libc}.node`);
if (has('strip')) execFileSync('strip', ['--strip-unneeded', addonPath, '-o', addonOut]);
else copyFileSync(addonPath, addonOut);

const objects = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c')).map((f) => f.replace(/\.c$/, '.o'));
for (const o of objects) {
  const src = join(root, 'build/bpf', o);
  if (!existsSync(src)) fail(`${src} is not built; run: npm run build`);
  if (has('llvm-strip')) execFileSync('llvm-strip', ['-g', src, '-o', join(dir, 'bpf', o)]);
  else copyFileSync(src, join(dir, 'bpf', o));
}
process.stderr.write(`netbpf prebuild: ${addonOut.slice(root.length + 1)} (libbpf ${addon.libbpfVersion}, static) and ${objects.length} CO-RE objects\n`);
