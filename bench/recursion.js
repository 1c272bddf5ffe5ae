// Recursion misses under the connection storm, per program: netbpf life with one state-change program for every
// context against the split one (process context and softirq apart, bpf/life.bpf.c), live and counted in the
// kernel, in alternation. For each run: connections, ends the kernel counted (ActiveOpens + PassiveOpens), ends
// life recorded, and the misses of each program (the kernel's recursion_misses: runs it skipped because the
// program was already running on that CPU).
//   sudo node bench/recursion.js [ROUNDS] [SECONDS]
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { life, lifeSummary } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv[2] ?? 3), seconds = Number(process.argv[3] ?? 5);
const ns = `nb-recursion-${process.pid}`;
const sh = (...argv) => execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' });
const snmp = () => {
  const [names, values] = sh('ip', 'netns', 'exec', ns, 'cat', '/proc/net/snmp').split('\n').filter((l) => l.startsWith('Tcp:')).map((l) => l.split(/\s+/));
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
};

execFileSync('make', ['-s', '-C', join(root, 'bench')], { stdio: ['ignore', 'ignore', 'inherit'] });
sh('ip', 'netns', 'add', ns);
const server = spawn('ip', ['netns', 'exec', ns, join(root, 'build/bench/storm'), 'server', '127.99.0.1', '23000', '8', '3600'], { stdio: ['ignore', 'pipe', 'inherit'] });
const results = [];
try {
  sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535');
  await new Promise((r) => server.stdout.once('data', r));
  for (let round = 0; round < rounds; round++) {
    for (const [mode, single] of [['events', true], ['events', false], ['kernel', true], ['kernel', false]]) {
      const opts = { remoteCidrs: ['127.99.0.0/16'], singleStateProgram: single };
      const summary = mode === 'kernel' ? lifeSummary(opts) : null;
      const trace = summary ? summary.trace : life(opts);
      let ends = 0;
      if (!summary) trace.onEvents((b) => { ends += b.length; });
      await trace.start();
      const s0 = snmp();
      const client = await new Promise((resolve) => {
        const c = spawn('ip', ['netns', 'exec', ns, join(root, 'build/bench/storm'), 'client', '127.99.0.1', '23000', '8', String(seconds), '1000000', '0', '64', '127.99.1']);
        let out = '';
        c.stdout.on('data', (d) => { out += d; });
        c.on('close', () => resolve(JSON.parse(out.trim().split('\n').pop())));
      });
      // Every end has happened once no socket is between birth and close (bounded), then reaches user space.
      const busy = ['established', 'syn-sent', 'syn-recv', 'fin-wait-1', 'fin-wait-2', 'close-wait', 'closing', 'last-ack'].flatMap((x) => ['state', x]);
      for (const t0 = Date.now(); Date.now() - t0 < 15000 && sh('ip', 'netns', 'exec', ns, 'ss', '-Htn', ...busy).trim() !== ''; ) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      const s1 = snmp();
      const misses = trace.programMisses();
      const untracked = trace.kernelCount('untracked'), lost = trace.kernelCount('lost');
      if (summary) ends = summary.snapshot().totals.connections;
      await trace.stop();
      const made = (s1.ActiveOpens - s0.ActiveOpens) + (s1.PassiveOpens - s0.PassiveOpens);
      const row = { mode, programs: single ? 'one' : 'split', connections: client.made, endsMade: made, recorded: ends, missing: made - ends, lost, untracked, misses };
      results.push(row);
      process.stderr.write(`${mode} ${row.programs}: ${client.made} connections, ${ends} / ${made} ends recorded, lost ${lost}, untracked ${untracked}; misses ${JSON.stringify(misses)}\n`);
    }
  }
} finally {
  server.kill();
  sh('ip', 'netns', 'del', ns);
}
process.stdout.write(JSON.stringify(results) + '\n');
