#!/usr/bin/env node
// A bounded TCP workload for tests, benchmarks and the demo (run inside a namespace with `ip netns exec`).
//   server --port P [--host H] [--reply BYTES]        accept, read everything, optionally reply, close
//   client --host H --port P [--bytes N] [--conns C] [--parallel K] [--hold-ms MS] [--timeout-ms MS]
// The client prints one JSON line: { ok, failed, errors: {code: n}, bytesSent, bytesReceived, pid, elapsedMs }.
import net from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const num = (k, d) => (opt[k] === undefined ? d : Number(opt[k]));

if (mode === 'server') {
  const reply = num('reply', 0);
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.on('data', () => {});
    sock.on('end', () => {
      if (reply > 0) sock.end(Buffer.alloc(reply, 0x62));
      else sock.end();
    });
  });
  server.listen(num('port', 5001), opt.host ?? '::', () => process.stdout.write('listening\n'));
} else if (mode === 'client') {
  const total = num('conns', 1), parallel = num('parallel', 1), bytes = num('bytes', 0);
  const holdMs = num('hold-ms', 0), timeoutMs = num('timeout-ms', 30000);
  const result = { ok: 0, failed: 0, errors: {}, bytesSent: 0, bytesReceived: 0, pid: process.pid };
  let started = 0;
  const t0 = performance.now();
  const one = () => new Promise((resolve) => {
    const sock = net.connect({ host: opt.host, port: num('port', 5001) });
    let received = 0;
    const timer = setTimeout(() => sock.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT_CLIENT' })), timeoutMs);
    sock.on('connect', () => {
      const payload = Buffer.alloc(bytes, 0x61);
      setTimeout(() => sock.end(payload, () => { result.bytesSent += bytes; }), holdMs);
    });
    sock.on('data', (d) => { received += d.length; });
    sock.on('error', (err) => { result.errors[err.code ?? err.message] = (result.errors[err.code ?? err.message] ?? 0) + 1; });
    sock.on('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) result.failed++; else { result.ok++; result.bytesReceived += received; }
      resolve();
    });
  });
  const worker = async () => { while (started < total) { started++; await one(); } };
  await Promise.all(Array.from({ length: Math.min(parallel, total) }, worker));
  result.elapsedMs = performance.now() - t0;
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  process.stderr.write('usage: tcp-load.mjs server|client [--options]\n');
  process.exit(2);
}
