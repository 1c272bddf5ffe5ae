// Memory of the per-destination aggregation under a destination flood: feeds RetransAggregator synthetic
// retransmit events for N distinct remote addresses (one connection each) and reports resident memory before
// and after, and how many destinations were folded into "other" by the table cap.
// usage: node --expose-gc bench/memory.js N MAX_DESTINATIONS   (prints one JSON line)
import { RetransAggregator } from '../dist/index.js';

const n = Number(process.argv[2] ?? 1_000_000);
const maxDestinations = Number(process.argv[3] ?? 4096);
const rss = () => { global.gc?.(); return process.memoryUsage().rss; };

const agg = new RetransAggregator({ maxDestinations });
const rss0 = rss();
const t0 = performance.now();
const batch = [];
const checkpoints = [];
for (let i = 0; i < n; i++) {
  batch.push({
    type: 'retransmit', time: Date.now(), family: 4, saddr: '10.0.0.1', sport: 40000 + (i & 8191),
    daddr: `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`, dport: 443, state: 'ESTABLISHED',
    kind: 'rto', caState: 'Loss', segs: 1, totalRetrans: 1, segsOut: 100, retransmits: 1, srttUs: 1000,
    err: 0, pid: 0, comm: '', netns: 1, cgroupId: 1, connId: i,
  });
  if (batch.length === 1000) { agg.addAll(batch); batch.length = 0; }
  if ((i + 1) % (n / 4) === 0) checkpoints.push([i + 1, process.memoryUsage().rss]);
}
agg.addAll(batch);
const ms = performance.now() - t0;
const rss1 = rss();
const s = agg.snapshot();
process.stdout.write(JSON.stringify({
  destinations: n, maxDestinations, rssBefore: rss0, rssAfter: rss1, rssCheckpoints: checkpoints, nsPerEvent: (ms * 1e6) / n,
  rowsByAddress: s.byAddress.length, foldedAddresses: s.folded.addresses, foldedEndpoints: s.folded.endpoints,
  totalEvents: s.totals.events, connectionsTracked: s.totals.connections,
}) + '\n');
