/**
 * netbpf conntrack, table dumps: every entry of a namespace (a ctnetlink dump, no conntrack(8) process), and the NAT feed
 * --resolve-nat uses.
 */
import type { NativeCtnetlink } from '../../core/addon.js';
import { ctnetlinkError, dumpConntrackTable, openCtnetlink, ownNetns, resolveNetns } from '../../core/ctnetlink.js';
import type { NatResolver } from '../../core/nat.js';
import { ClockMapper } from '../../core/record.js';
import { decodeConntrack, forEachRecord, tcpConntrackStates, type ConntrackEntry, type ConntrackEvent } from './decode.js';

/** Every entry of a namespace's conntrack table (a ctnetlink dump; no conntrack(8) process). */
export async function conntrackSnapshot(opts: { netns?: string } = {}): Promise<ConntrackEntry[]> {
  const target = opts.netns ? resolveNetns([opts.netns]).targets[0] : null;
  const batch = await dumpConntrackTable(target && target.netns !== ownNetns() ? target.path : null);
  const clock = new ClockMapper();
  const states = tcpConntrackStates();
  const out: ConntrackEntry[] = [];
  forEachRecord(batch, (view, o) => {
    const e: Partial<ConntrackEvent> = decodeConntrack(view, o, clock, states);
    delete e.type;
    delete e.kind;
    delete e.lifetimeMs;
    out.push(e as ConntrackEntry);
  });
  return out;
}

/**
 * Keeps a NatResolver fed from the caller's namespace: ctnetlink NEW events from now on, then one table dump
 * (so nothing created in between is missed). Stop with stop().
 */
export async function startNatFeed(resolver: NatResolver): Promise<{ stop(): Promise<void> }> {
  const clock = new ClockMapper();
  const states = tcpConntrackStates();
  let native: NativeCtnetlink;
  try {
    native = openCtnetlink((batch) => forEachRecord(batch, (view, o) => resolver.add(decodeConntrack(view, o, clock, states))), { newEvents: true, destroyEvents: false });
  } catch (err) {
    throw ctnetlinkError('ctnetlink (NAT resolution)', err);
  }
  try {
    native.addNetns(null);
  } catch (err) {
    await native.stop();
    throw ctnetlinkError('ctnetlink (NAT resolution)', err);
  }
  try {
    for (const e of await conntrackSnapshot()) resolver.add(e);
  } catch (err) {
    await native.stop();
    throw err;
  }
  return { stop: () => native.stop() };
}
