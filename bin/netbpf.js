#!/usr/bin/env node
// netbpf command line entry point (built TypeScript lives in dist/).
import { main } from '../dist/cli/main.js';

/** Resolves once everything written to `stream` so far has reached the kernel (a pipe's reader may be slow). */
const flushed = (stream) => new Promise((resolve) => {
  if (!stream.writableLength) resolve();
  else stream.write('', () => resolve());
});

main(process.argv.slice(2)).then(
  async (code) => {
    process.exitCode = code;
    // Exit as soon as the output is out: process.exit() would drop what a pipe has not taken yet. A stray handle
    // must not hold the process forever, so give up after a bound (long enough for a slow reader).
    const timer = setTimeout(() => process.exit(code), 30_000);
    timer.unref();
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err) => {
    process.stderr.write(`netbpf: ${err?.message ?? err}\n`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 1000).unref();
  },
);
