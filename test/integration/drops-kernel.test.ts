/**
 * Summary-only drops counted in the kernel (dropsSummary, `netbpf drops --summary`) against the real kernel:
 * per-destination counts equal nft rule counters, equal what the event path aggregates for the same traffic,
 * and a flood over more destinations than the kernel map holds folds into "other" without losing a drop.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeBpf, kernelHasDropReasons, netfilterDropReason, sleep } from '../helpers.js';
import { NetnsPair } from '../../src/testing/netns.js';
import { drops, dropsSummary, DropsAggregator, type DropEvent } from '../../src/index.js';
import { addon } from '../../src/core/addon.js';
import { DROP_AGG_CONSTS } from '../../src/tools/drops/bpf.gen.js';

/** Kernels before 5.17 give no drop reasons: the same drops are counted, all as UNAVAILABLE, with no --reason filter. */
const reasons = kernelHasDropReasons();
const netfilterReason = netfilterDropReason();
const onlyNetfilter = reasons ? { reasons: ['NETFILTER_DROP'] } : {};

describeBpf('netbpf drops aggregated in the kernel (real kernel, private namespaces)', () => {
  let pair: NetnsPair;
  let nsB = 0;
  beforeAll(async () => {
    pair = await NetnsPair.create('drk');
    nsB = await pair.netnsInode(pair.b);
  });
  afterAll(async () => {
    await pair?.destroy();
  });

  it('counts NETFILTER_DROP per destination exactly as the nft rule counter, and as the event path does (count, bytes, sizes)', async () => {
    const port = 47321;
    await pair.nft(pair.b, `table inet drk_test {
  chain input { type filter hook input priority 0; policy accept;
    tcp dport ${port} numgen random mod 100 < 15 counter drop
  }
}\n`);
    await pair.startServer(port);
    // Both paths on the same traffic: the kernel map and the ring buffer events.
    const summary = dropsSummary({ ...onlyNetfilter, localPort: port });
    const events: DropEvent[] = [];
    const trace = drops({ ...onlyNetfilter, localPort: port });
    trace.onEvents((batch) => { for (const e of batch) events.push(e); });
    await summary.start();
    await trace.start();
    try {
      const r = await pair.client(pair.addrB, port, { bytes: 300000, conns: 4, parallel: 2 });
      expect(r.ok).toBeGreaterThan(0);
      await sleep(300);
    } finally {
      await trace.stop();
      await summary.stop();
    }
    const counter = await pair.nftCounter(pair.b, 'drk_test', 'input');
    const key = `${pair.addrB}:${port} ${netfilterReason}`;
    const kernelRow = summary.snapshot().byDestination.find((r) => r.key === key);
    const agg = new DropsAggregator();
    agg.addAll(events.filter((e) => e.netns === nsB));
    const eventRow = agg.snapshot().byDestination.find((r) => r.key === key);
    expect(counter).toBeGreaterThan(0);
    // Without reasons the row also holds any other drop to the port; the event path says which were netfilter's.
    if (reasons) expect(kernelRow?.count).toBe(counter);
    else expect(events.filter((e) => e.netns === nsB && e.location.startsWith('nf_hook_slow+')).length).toBe(counter);
    expect(summary.counters().lost).toBe(0);
    expect(kernelRow).toMatchObject({ count: eventRow!.count, bytes: eventRow!.bytes, category: 'drop', addr: pair.addrB, port });
    expect(kernelRow!.histograms.len).toEqual(eventRow!.histograms.len);
  });

  it('folds a flood over more destinations than the kernel map holds into "other", counted, with totals = the nft counter', async () => {
    const first = 48000, ports = 300, perPort = 4, kernelKeys = 64;
    await pair.nft(pair.a, `table inet drk_flood {
  chain out { type filter hook output priority 0; policy accept;
    udp dport ${first}-${first + ports - 1} counter drop
  }
}\n`);
    const summary = dropsSummary({ all: true, ...onlyNetfilter, remoteCidrs: [`${pair.addrB}/32`], kernelKeys });
    await summary.start();
    try {
      await pair.exec(pair.a, ['python3', '-c',
        `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(${ports * perPort}):\n  try: s.sendto(b'x'*32,('${pair.addrB}',${first}+i%${ports}))\n  except OSError: pass`]);
      await sleep(200);
    } finally {
      await summary.stop();
    }
    const counter = await pair.nftCounter(pair.a, 'drk_flood', 'out');
    const s = summary.snapshot();
    const own = s.byDestination.filter((r) => r.key !== 'other');
    const other = s.byDestination.find((r) => r.key === 'other');
    expect(counter).toBe(ports * perPort);
    expect(s.totals.events).toBe(counter);
    expect(summary.counters()).toMatchObject({ events: counter, lost: 0 });
    expect(s.byReason).toEqual([expect.objectContaining({ reason: netfilterReason, count: counter })]);
    // The hash map's keys, and those the destination front took (one bucket for so small a map, per CPU).
    expect(own.length).toBeLessThanOrEqual(kernelKeys + DROP_AGG_CONSTS.DROP_DEST_WAYS * addon().numPossibleCpus);
    expect(s.folded.kernel).toBeGreaterThan(0);
    expect(other?.count).toBe(s.folded.kernel);
    expect(own.reduce((a, r) => a + r.count, 0) + s.folded.kernel!).toBe(counter);
    // Packets sent from A: the remote side is the destination, every kept row is one of the flooded ports.
    expect(own.every((r) => r.addr === pair.addrB && r.port! >= first && r.port! < first + ports && r.count === perPort)).toBe(true);
  });
});
