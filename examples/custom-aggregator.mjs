#!/usr/bin/env node
// A custom aggregator over the public API: connect failures per remote port and class, plus the slowest
// successful connect, printed as one JSON object after DURATION seconds (default 5).
//   node examples/custom-aggregator.mjs [DURATION]
import { connect } from 'netbpf';

const durationS = Number(process.argv[2] ?? 5);

/** @type {Map<number, { ok: number, failed: Record<string, number>, slowestMs: number }>} */
const byPort = new Map();
/** @param {import('netbpf').ConnectEvent} e */
function add(e) {
  let row = byPort.get(e.dport);
  if (!row) byPort.set(e.dport, (row = { ok: 0, failed: {}, slowestMs: 0 }));
  if (e.type === 'established') {
    row.ok++;
    row.slowestMs = Math.max(row.slowestMs, e.latencyUs / 1000);
  } else {
    row.failed[e.failure] = (row.failed[e.failure] ?? 0) + 1;
  }
}

const trace = connect({ remoteCidrs: process.env.NETBPF_CIDR ? [process.env.NETBPF_CIDR] : undefined });
trace.onEvents((events) => events.forEach(add)); // the fast path: batches, no async iteration
await trace.start();
process.stderr.write('custom-aggregator: tracing connects\n');
await new Promise((r) => setTimeout(r, durationS * 1000));
await trace.stop();
console.log(JSON.stringify({ byPort: Object.fromEntries(byPort), counters: trace.counters() }));
