// Memory of the per-destination aggregation under a destination flood: feeds a tool's aggregator synthetic
// events for N distinct remote addresses (one connection each) and reports resident memory before and after,
// and how many destinations were folded into "other" by the table cap.
// usage: node --expose-gc bench/memory.js N MAX_DESTINATIONS [retrans|drops|life]   (prints one JSON line)
import { RetransAggregator, DropsAggregator, LifeAggregator } from '../dist/index.js';

const n = Number(process.argv[2] ?? 1_000_000);
const maxDestinations = Number(process.argv[3] ?? 4096);
const tool = process.argv[4] ?? 'retrans';
const rss = () => { global.gc?.(); return process.memoryUsage().rss; };
const addr = (i) => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;

/** One event of each tool as its decoder returns it, towards destination i. */
const TOOLS = {
  retrans: {
    make: () => new RetransAggregator({ maxDestinations }),
    event: (i) => ({
      type: 'retransmit', time: Date.now(), family: 4, saddr: '10.0.0.1', sport: 40000 + (i & 8191),
      daddr: addr(i), dport: 443, state: 'ESTABLISHED',
      kind: 'rto', caState: 'Loss', segs: 1, totalRetrans: 1, segsOut: 100, retransmits: 1, srttUs: 1000,
      err: 0, pid: 0, comm: '', netns: 1, cgroupId: 1, connId: i,
    }),
  },
  drops: {
    make: () => new DropsAggregator({ maxDestinations }),
    event: (i) => ({
      type: 'drop', time: Date.now(), reason: 'NETFILTER_DROP', reasonCode: 12, category: 'netfilter', family: 4,
      l3Proto: 0x800, proto: 'UDP', protoNum: 17, saddr: '10.0.0.1', sport: 40000 + (i & 8191), daddr: addr(i), dport: 443,
      direction: 'sent', remoteAddr: addr(i), remotePort: 443, addressSource: 'packet', tcpFlags: '', state: null,
      len: 92, netns: 1, ifindex: 2, location: 'nft_do_chain+0x3c1', stack: [],
    }),
  },
  life: {
    make: () => new LifeAggregator({ maxDestinations }),
    event: (i) => ({
      type: 'closed', time: Date.now(), family: 4, saddr: '10.0.0.1', sport: 40000 + (i & 8191), daddr: addr(i), dport: 443,
      pid: 1234, comm: 'client', ownerSource: 'process', txBytes: 100, rxBytes: 1000, bytesAcked: 101, bytesReceived: 1001,
      totalRetrans: 0, segsOut: 5, segsIn: 5, srttUs: 1000, netns: 1, cgroupId: 1,
      durationMs: 3, established: true, closedFrom: 'FIN_WAIT2', reason: 'fin', skErr: 0, error: '', rstSent: false, rstReceived: false,
    }),
  },
};

const t = TOOLS[tool];
const agg = t.make();
const rss0 = rss();
const t0 = performance.now();
const batch = [];
const checkpoints = [];
for (let i = 0; i < n; i++) {
  batch.push(t.event(i));
  if (batch.length === 1000) { agg.addAll(batch); batch.length = 0; }
  if ((i + 1) % (n / 4) === 0) checkpoints.push([i + 1, process.memoryUsage().rss]);
}
agg.addAll(batch);
const ms = performance.now() - t0;
const rss1 = rss();
const s = agg.snapshot();
process.stdout.write(JSON.stringify({
  tool, destinations: n, maxDestinations, rssBefore: rss0, rssAfter: rss1, rssCheckpoints: checkpoints, nsPerEvent: (ms * 1e6) / n,
  rowsByAddress: s.byAddress.length, foldedAddresses: s.folded.addresses,
  connectionsTracked: s.totals?.connections ?? null,
}) + '\n');
