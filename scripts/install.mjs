#!/usr/bin/env node
// npm install hook: builds the native parts (static libbpf when its source is available, the addon with
// cmake-js, the CO-RE BPF objects) unless they are already built. The TypeScript ships prebuilt in dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = readdirSync(join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c'));
const built = existsSync(join(root, 'build/Release/netbpf.node')) && sources.every((f) => existsSync(join(root, 'build/bpf', f.replace(/\.c$/, '.o'))));
if (built && !process.env.NETBPF_REBUILD) process.exit(0);

const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
try {
  process.stderr.write('netbpf: building the addon and BPF objects (needs clang, cmake, g++, libelf-dev, zlib1g-dev, bpftool; see scripts/setup.sh)\n');
  run('bash', ['scripts/build-libbpf.sh']);
  const cmakeJs = createRequire(join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
  run(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn']);
  run('make', ['-s', '-C', 'bpf']);
} catch (err) {
  process.stderr.write(`netbpf: build failed: ${err.message}\n`);
  process.exit(1);
}
