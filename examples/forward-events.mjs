#!/usr/bin/env node
// Forwarding events to a callback: every retransmit and failed connect, as it happens, to `forward()` (here
// NDJSON on stdout; in real life a log shipper, a queue, a webhook). Stops DURATION seconds (default 5) after attaching.
//   node examples/forward-events.mjs [DURATION]
import { connect, retrans } from 'netbpf';

const durationS = Number(process.argv[2] ?? 5);
const stopper = new AbortController();
const stop = stopper.signal;

/** @param {{ source: string, event: object }} record */
function forward(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

const cidr = process.env.NETBPF_CIDR ? [process.env.NETBPF_CIDR] : undefined;
const retransTrace = retrans({ remoteCidrs: cidr, signal: stop });
const connectTrace = connect({ remoteCidrs: cidr, signal: stop });
// Attach both before saying so: events from then on are forwarded.
await Promise.all([retransTrace.start(), connectTrace.start()]);
process.stderr.write('forward-events: tracing\n');
setTimeout(() => stopper.abort(), durationS * 1000);
// Async iteration: each trace stops when the signal fires, and the loops end.
const pump = async (source, trace, keep) => {
  for await (const event of trace) if (keep(event)) forward({ source, event });
  return trace.counters();
};
const [retransCounters, connectCounters] = await Promise.all([
  pump('retrans', retransTrace, () => true),
  pump('connect', connectTrace, (e) => e.type === 'failed'),
]);
process.stderr.write(`forward-events: done; lost ${retransCounters.lost + connectCounters.lost}\n`);
