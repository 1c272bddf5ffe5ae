#!/usr/bin/env node
// netbpf command line entry point (built TypeScript lives in dist/).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    // Let stdout drain (pipes are asynchronous), but never hang on a stray handle.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (err) => {
    process.stderr.write(`netbpf: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);
