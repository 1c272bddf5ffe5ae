/**
 * Listen-queue counters of the kernel (/proc/net/netstat, TcpExt), for what no drop tracepoint shows: a SYN that
 * finds its listener's SYN queue full is answered with a SYN cookie, or, with cookies off, discarded and freed
 * with consume_skb (not kfree_skb, so no drop reason reaches skb:kfree_skb); a handshake that finds the accept
 * queue full is counted as an overflow. Under a SYN flood these counters are the only witnesses on the target.
 * Read for the network namespace this process runs in; reported as deltas since start.
 */
import { readFileSync } from 'node:fs';

/** Listen-queue events since the counters were first read. */
export interface ListenQueueCounts {
  /** SYNs answered with a SYN cookie (the SYN queue was full, or cookies are always on). */
  cookiesSent: number;
  /** ACKs with a cookie that did not check out. */
  cookiesFailed: number;
  /** SYNs discarded because the SYN queue was full and cookies were off (freed without a drop reason). */
  synQueueDrops: number;
  /** Handshakes that found the accept queue full. */
  acceptQueueOverflows: number;
  /** Every packet a listener discarded (includes the two above). */
  listenDrops: number;
}

const FIELDS: Record<keyof ListenQueueCounts, string> = {
  cookiesSent: 'SyncookiesSent',
  cookiesFailed: 'SyncookiesFailed',
  synQueueDrops: 'TCPReqQFullDrop',
  acceptQueueOverflows: 'ListenOverflows',
  listenDrops: 'ListenDrops',
};

/** TcpExt counters of a /proc/net/netstat text (header line, then values line). */
export function parseTcpExt(text: string): Record<string, number> {
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return {};
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

/** Deltas of the listen-queue counters since construction; null where /proc/net/netstat cannot be read. */
export class ListenQueueCounters {
  private readonly start: Record<string, number> | null;

  constructor(private readonly read: () => string = () => readFileSync('/proc/net/netstat', 'utf8')) {
    this.start = this.sample();
  }

  private sample(): Record<string, number> | null {
    try { return parseTcpExt(this.read()); } catch { return null; }
  }

  /** What happened since start; null when the counters are unavailable. */
  delta(): ListenQueueCounts | null {
    const now = this.sample();
    if (!this.start || !now) return null;
    const out = {} as ListenQueueCounts;
    for (const [k, field] of Object.entries(FIELDS) as Array<[keyof ListenQueueCounts, string]>) out[k] = (now[field] ?? 0) - (this.start[field] ?? 0);
    return out;
  }
}
