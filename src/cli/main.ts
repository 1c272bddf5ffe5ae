/** The netbpf command line: one subcommand per tool, each a thin user of the public API. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../core/addon.js';
import { reportError } from './common.js';
import { retransCommand } from './retrans.js';
import { conntrackCommand } from './conntrack.js';
import { dropsCommand } from './drops.js';
import { lifeCommand } from './life.js';
import { connectCommand } from './connect.js';
import { topCommand } from './top.js';
import { serveCommand } from './serve.js';

export async function main(argv: string[]): Promise<number> {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const program = new Command('netbpf')
    .description('eBPF TCP tracing: retransmits, drops, connection lifetimes, connect failures, conntrack — per destination')
    .version(pkg.version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(`netbpf: ${s.split('\n').filter(Boolean)[0].replace(/^error: /, '')}\n`) })
    .showSuggestionAfterError(true);
  for (const cmd of [retransCommand(), dropsCommand(), lifeCommand(), connectCommand(), conntrackCommand(), topCommand(), serveCommand()]) {
    program.addCommand(cmd.copyInheritedSettings(program));
  }
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every usage error is one line (printed by commander) and exit 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    return reportError(err, verbose);
  }
}
