#!/usr/bin/env node
// Embedding netbpf in a service: a top session (retrans, drops, connect, life correlated per destination) and
// an HTTP endpoint serving its current summary with diagnoses as JSON.
//   node examples/http-summary.mjs [PORT] [DURATION]      then: curl http://127.0.0.1:PORT/summary
import { createServer } from 'node:http';
import { top } from 'netbpf';

const port = Number(process.argv[2] ?? 8080);
const durationS = Number(process.argv[3] ?? 0);

const session = top({ by: { kind: 'endpoint' }, remoteCidrs: process.env.NETBPF_CIDR ? [process.env.NETBPF_CIDR] : undefined });
const started = await session.start();
const server = createServer((req, res) => {
  if (req.url !== '/summary') { res.writeHead(404).end(); return; }
  const summary = session.snapshot();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({
    tools: Object.keys(started),
    unhealthy: summary.rows.filter((r) => r.health !== 'ok').map((r) => ({ destination: r.key, diagnoses: r.diagnoses.map((d) => d.text) })),
    summary,
    counters: session.counters(),
  }));
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`http-summary: http://127.0.0.1:${server.address().port}/summary\n`));

const shutdown = async () => { server.close(); await session.stop(); process.exit(0); };
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
if (durationS > 0) setTimeout(shutdown, durationS * 1000);
