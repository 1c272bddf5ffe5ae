#!/usr/bin/env node
// Soak: runs `netbpf drops --all` for a long time under a steady, bounded load and samples its resident memory
// and event/lost counters every few seconds. The load: test/reliability/flood.c sends paced UDP packets from
// many distinct spoofed sources (100.64.0.0/10) into namespace B, where an nft rule drops them and counts them
// (the oracle). Everything happens inside two private namespaces that are removed at the end.
// usage (root, after npm run build):
//   node scripts/soak.mjs [--seconds 600] [--rate 2000] [--distinct 200000] [--sample 5] [--rss-bound-mib 256] [--source 100.64.0.0] [--json]
// Exit 0 when RSS stayed under the bound, the tool ran to the end and events + lost == packets the rule dropped.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { NetnsPair } from '../dist/testing/netns.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const seconds = opt('seconds', 600), rate = opt('rate', 2000), distinct = opt('distinct', 200000);
const sampleS = opt('sample', 5), boundMiB = opt('rss-bound-mib', 256);
const asJson = args.includes('--json');
// Sources: a /12 inside 100.64.0.0/10 (the CIDR filter keeps concurrent runs apart).
const sourceIdx = args.indexOf('--source'), source = sourceIdx >= 0 ? args[sourceIdx + 1] : '100.64.0.0';
const PORT = 9999;
const log = (s) => process.stderr.write(`soak: ${s}\n`);

export function buildFlood() {
  execFileSync('mkdir', ['-p', join(root, 'build/reliability')]);
  execFileSync('cc', ['-O2', '-Wall', '-o', join(root, 'build/reliability/flood'), join(root, 'test/reliability/flood.c')]);
  return join(root, 'build/reliability/flood');
}

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

const flood = buildFlood();
const ns = await NetnsPair.create('soak');
const cleanup = () => { sender?.kill('SIGKILL'); tool?.kill('SIGKILL'); void ns.destroy().then(() => process.exit(1)); };
process.once('SIGINT', cleanup).once('SIGTERM', cleanup).once('uncaughtException', (e) => { log(String(e?.stack ?? e)); cleanup(); });
let tool = null, sender = null;
try {
  await ns.nft(ns.b, `table inet soak {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    udp dport ${PORT} counter drop\n  }\n}\n`);
  const argv = [join(root, 'bin/netbpf.js'), 'drops', '--all', '-c', `${source}/12`, '--interval', String(sampleS), '--json', '--summary', '--max-destinations', '4096'];
  // --summary --json: no live lines, one summary JSON line per interval (with lost) and one at the end.
  tool = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Summary lines are large (every row of every table): keep only the latest summary and the counters.
  let err = '', last = null, finalSummary = null, counters = null;
  createInterface({ input: tool.stdout }).on('line', (l) => {
    const j = JSON.parse(l);
    if (j.type === 'summary') { last = { totals: j.totals, lost: j.lost, folded: j.folded }; if (j.final) finalSummary = last; }
    if (j.type === 'counters') counters = j;
  });
  tool.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const exited = new Promise((r) => tool.once('close', (code, sig) => r({ code, sig })));
  for (let i = 0; i < 200 && !/attached in/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
  if (!/attached in/.test(err)) throw new Error(`netbpf drops did not start: ${err}`);
  const samples = [];
  const t0 = Date.now();
  sender = spawn('ip', ['netns', 'exec', ns.a, flood, ns.addrB, String(PORT), String(Math.round(rate * seconds)), String(rate), String(distinct), source], { stdio: ['ignore', 'pipe', 'inherit'] });
  let senderOut = '';
  sender.stdout.setEncoding('utf8').on('data', (d) => { senderOut += d; });
  const senderDone = new Promise((r) => sender.once('close', r));
  let done = false;
  senderDone.then(() => { done = true; });
  while (!done && Date.now() - t0 < (seconds + 30) * 1000) {
    await Promise.race([senderDone, new Promise((r) => setTimeout(r, sampleS * 1000))]);
    const s = { t: Math.round((Date.now() - t0) / 1000), rssKiB: rssKiB(tool.pid), drops: last?.totals?.drops ?? 0, lost: last?.lost ?? 0 };
    samples.push(s);
    if (!asJson) log(`t=${s.t}s rss=${(s.rssKiB / 1024).toFixed(1)} MiB drops=${s.drops} lost=${s.lost}`);
  }
  await new Promise((r) => setTimeout(r, 500));
  tool.kill('SIGINT');
  const exit = await exited;
  const dropped = await ns.nftCounter(ns.b, 'soak', 'input');
  const final = finalSummary;
  const rss = samples.map((s) => s.rssKiB);
  const result = {
    command: `node scripts/soak.mjs ${args.join(' ')}`.trim(), seconds, rate, distinct, sampleS,
    sent: Number(senderOut.split(' ')[0]), nftDropped: dropped, events: counters?.events, lost: counters?.lost,
    recursionMisses: counters?.recursionMisses, exit,
    rssStartMiB: rss[0] / 1024, rssMaxMiB: Math.max(...rss) / 1024, rssEndMiB: rss.at(-1) / 1024, rssBoundMiB: boundMiB,
    folded: final?.folded, samples: samples.length,
  };
  const ok = exit.code === 0 && result.rssMaxMiB < boundMiB && result.events + result.lost === dropped;
  result.ok = ok;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exitCode = ok ? 0 : 1;
} finally {
  sender?.kill('SIGKILL');
  tool?.kill('SIGKILL');
  await ns.destroy();
}
