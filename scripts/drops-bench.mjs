#!/usr/bin/env node
// Bounded drop flood for netbpf drops: a UDP generator in a private namespace sends to a port an nft
// output rule drops (NETFILTER_DROP in the sender's own context) for --seconds; netbpf drops traces
// every protocol meanwhile. Prints events/s delivered, the nft rule's counter (oracle) and the loss.
// Usage (root, after npm run build): node scripts/drops-bench.mjs [--seconds 3] [--generators 1] [--ring-bytes 4194304]
import { NetnsPair } from '../dist/testing/netns.js';
import { drops } from '../dist/index.js';

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => (a.startsWith('--') ? [a.slice(2), all[i + 1]] : null)).filter(Boolean));
const seconds = Math.min(Number(args.seconds ?? 3), 10);
const ringBufferBytes = Number(args['ring-bytes'] ?? 4 * 1024 * 1024);
const generators = Math.min(Number(args.generators ?? 1), 4);
const port = 47399;

const pair = await NetnsPair.create('dbn');
try {
  const ns = await pair.netnsInode(pair.a);
  await pair.nft(pair.a, `table inet drops_bench {\n  chain out { type filter hook output priority 0; policy accept;\n    udp dport ${port} counter drop\n  }\n}\n`);
  const trace = drops({ all: true, reasons: ['NETFILTER_DROP'], remotePort: port, ringBufferBytes });
  let mine = 0, total = 0;
  trace.onEvents((batch) => { total += batch.length; for (const e of batch) if (e.netns === ns) mine++; });
  await trace.start();
  const t0 = performance.now();
  const gen = `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nd=('${pair.addrB}',${port});m=b'x'*64;n=0;end=time.monotonic()+${seconds}\nwhile time.monotonic()<end:\n  for _ in range(1000):\n    try: s.sendto(m,d)\n    except OSError: pass\n  n+=1000\nprint(n)`;
  const outs = await Promise.all(Array.from({ length: generators }, () => pair.exec(pair.a, ['python3', '-c', gen], { timeoutMs: (seconds + 10) * 1000 })));
  const genS = (performance.now() - t0) / 1000;
  await trace.stop();
  const c = trace.counters();
  const counter = await pair.nftCounter(pair.a, 'drops_bench', 'out');
  const result = {
    seconds: +genS.toFixed(2), generators, sent: outs.reduce((n, o) => n + Number(o.stdout.trim()), 0), nftCounter: counter, eventsInNamespace: mine, eventsTotal: total,
    lostInKernel: c.lost, recursionMisses: c.recursionMisses, droppedByConsumer: c.droppedByConsumer,
    eventsPerSecond: Math.round(mine / genS), missing: counter - mine,
  };
  console.log(JSON.stringify(result));
} finally {
  await pair.destroy();
}
