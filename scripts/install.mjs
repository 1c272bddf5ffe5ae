#!/usr/bin/env node
// npm install hook. Uses the prebuilt addon and CO-RE objects shipped in the package when they fit this
// machine (platform, CPU, C library, N-API version: src/core/native.ts) and load here; compiles nothing then.
// Otherwise builds the native parts from source (static libbpf fetched from the Debian pool, the addon with
// cmake-js, the BPF objects with clang). Never runs apt. The TypeScript ships prebuilt in dist/.
// NETBPF_BUILD_FROM_SOURCE=1 (or `npm install --build-from-source`) skips the prebuilt; NETBPF_REBUILD=1
// rebuilds a build made here.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tools = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c')).map((f) => f.slice(0, -'.bpf.c'.length));
const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v !== 'false';
const fromSource = truthy(process.env.NETBPF_BUILD_FROM_SOURCE) || truthy(process.env.npm_config_build_from_source);

const built = existsSync(join(root, 'build/Release/netbpf.node')) && tools.every((t) => existsSync(join(root, 'build/bpf', `${t}.bpf.o`)));
if (built && !truthy(process.env.NETBPF_REBUILD)) process.exit(0);

// dist/ is in the package (and absent from a fresh checkout, which has no prebuilt parts either).
const nativeJs = join(root, 'dist/core/native.js');
if (!fromSource && existsSync(nativeJs)) {
  const native = await import(pathToFileURL(nativeJs).href);
  const target = native.currentTarget();
  const addonPath = native.fittingPrebuiltAddon(root, target);
  const missing = tools.filter((t) => !existsSync(join(native.prebuiltDir(root, target), 'bpf', `${t}.bpf.o`)));
  if (addonPath && missing.length === 0) {
    // Load it in a child: a missing shared library or a newer glibc than this machine's shows up here.
    try {
      execFileSync(process.execPath, ['-e', 'require(process.argv[1])', addonPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      process.exit(0);
    } catch (err) {
      const why = String(err.stderr ?? err.message).split('\n').find((l) => /Error/.test(l)) ?? err.message;
      process.stderr.write(`netbpf: the prebuilt addon for ${native.describeTarget(target)} does not load here (${why.trim()}); building from source\n`);
    }
  } else {
    process.stderr.write(`netbpf: no prebuilt native parts for ${native.describeTarget(target)}; building from source\n`);
  }
}

const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
try {
  process.stderr.write('netbpf: building the addon and BPF objects (needs clang, cmake, g++, make, libelf-dev, zlib1g-dev, bpftool; see scripts/setup.sh)\n');
  run('bash', ['scripts/build-libbpf.sh']);
  const cmakeJs = createRequire(join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
  run(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn']);
  run('make', ['-s', '-C', 'bpf']);
} catch (err) {
  process.stderr.write(`netbpf: build failed: ${err.message}\n`);
  process.exit(1);
}
