/**
 * The diagnosis engine: weighs the evidence for each destination and for the host, and says in plain words
 * what is wrong, why it thinks so (counts, hook, kernel counter), how sure it is, and what to do.
 *
 * How evidence is weighed. A destination's trouble is counted in units: failed connects, retransmitted data
 * segments, packets dropped on this host (harmless frees never count: ./frees.ts) and connections reset.
 * Causes with direct kernel evidence claim the units they account for, most specific first (ports exhausted,
 * conntrack table full, firewall reject, accept queue full, firewall drop, reset on unread data, receiver not
 * reading, other local drops). What no cause claims is then reported as what it looks like from here
 * (refused, timing out, loss on the path, reset by the peer), with a lower confidence where other causes look
 * the same. Diagnoses are ordered by how many units they explain. Pure: no I/O.
 *
 * Retransmits are claimed whole by a cause that drops packets of the destination on this host: how many
 * segments one drop costs varies too much to split them (a fast retransmit resends one, a timeout the whole
 * window, a dropped GRO packet carries many), so loss on the path on top of local drops to the same destination
 * is not told apart (docs/top.md).
 */
import type { CloseWaitEvidence, ConntrackEvidence, DestinationEvidence, Evidence, FreeCount, HostEvidence, ListenerEvidence, StalledWindowEvidence } from './evidence.js';
import { freeKind, type FreeKind } from './frees.js';

/** Stable codes: what alerts and scripts key on. */
export type DiagnosisCode =
  | 'port-exhaustion' | 'conntrack-full' | 'firewall-reject' | 'listen-overflow' | 'local-firewall' | 'reset-unread'
  | 'zero-window' | 'receiver-drops' | 'local-drops' | 'refused' | 'timeout' | 'app-connect-timeout' | 'unreachable'
  | 'connect-error' | 'path-loss' | 'peer-reset' | 'close-wait-leak' | 'conntrack-near-full';

export const DIAGNOSIS_CODES: readonly DiagnosisCode[] = [
  'port-exhaustion', 'conntrack-full', 'firewall-reject', 'listen-overflow', 'local-firewall', 'reset-unread', 'zero-window',
  'receiver-drops', 'local-drops', 'refused', 'timeout', 'app-connect-timeout', 'unreachable', 'connect-error', 'path-loss',
  'peer-reset', 'close-wait-leak', 'conntrack-near-full',
];

export type Severity = 'critical' | 'warning';
/** high: direct kernel evidence of the cause; medium: the symptom is certain, other causes look the same from here. */
export type Confidence = 'high' | 'medium' | 'low';

/** One piece of evidence: a count, what it counts, and where it comes from (hook or kernel counter). */
export interface EvidenceItem {
  count: number;
  what: string;
  source: string;
}

export interface Diagnosis {
  code: DiagnosisCode;
  /** What it is about: a destination key, a listener, a process or a namespace. */
  subject: string;
  severity: Severity;
  confidence: Confidence;
  /** One line in plain words, with the numbers that support it. */
  text: string;
  /** What to do about it. */
  action: string;
  evidence: EvidenceItem[];
  /** Units of the subject's trouble it accounts for (failed connects, retransmitted segments, drops, resets). */
  explains: number;
}

export interface DiagnosisThresholds {
  /** Retransmitted / sent at or above which unexplained retransmits are loss on the path. Default 0.01. */
  lossRatio?: number;
  /** Ratio from which path loss is critical. Default 0.05. */
  criticalLossRatio?: number;
  /** Fewest unexplained retransmitted segments worth a verdict. Default 3. */
  minRetransSegs?: number;
  /** CLOSE_WAIT: fewest sockets of one process, and how long the oldest must have been idle (ms). Defaults 2, 1000. */
  closeWaitMinCount?: number;
  closeWaitMinIdleMs?: number;
  /** CLOSE_WAIT: sockets or idle time (ms) from which the leak is critical. Defaults 100, 60000. */
  closeWaitCriticalCount?: number;
  closeWaitCriticalIdleMs?: number;
  /** How long a window must stay closed without progress to be a stalled receiver, ms. Default 1000. */
  stallMs?: number;
  /** conntrack entries / limit from which a table is reported as nearly full (before it drops). Default 0.9. */
  conntrackNearFull?: number;
}

/** Diagnoses per destination key and for the host, each list ordered by how much it explains. */
export interface DiagnosisResult {
  destinations: Map<string, Diagnosis[]>;
  host: Diagnosis[];
}

/** Where each kind of evidence comes from, as the diagnoses cite it. */
export const SOURCES = {
  connect: 'connect (sock:inet_sock_set_state SYN_SENT->CLOSE, connect() exit, SO_ERROR)',
  connectRst: 'connect (tcp:tcp_receive_reset in SYN_SENT)',
  connectExit: 'connect (connect() syscall exit)',
  retrans: 'retrans/life (tcp_sock total_retrans and segs_out)',
  drops: (reason: string, fn: string) => `drops (skb:kfree_skb reason ${reason}${fn ? ` in ${fn}` : ''})`,
  life: 'life (sock:inet_sock_set_state to CLOSE, tcp:tcp_receive_reset)',
  resetSent: 'life (tcp:tcp_send_reset reason TCP_ABORT_ON_CLOSE; TcpExt.TCPAbortOnClose)',
  listener: 'sockets (iter/task_file: sk_ack_backlog, sk_max_ack_backlog, sk_drops = TcpExt.ListenDrops)',
  closeWait: 'sockets (iter/task_file: state CLOSE_WAIT, idle since tcp_mstamp)',
  window: 'sockets (iter/task_file: receive window, queued bytes, read position)',
  conntrack: '/proc/net/stat/nf_conntrack drop, nf_conntrack_count / nf_conntrack_max',
  portRange: 'connect (net.ipv4.ip_local_port_range of the socket\'s namespace)',
} as const;

const pct = (r: number) => `${(r * 100).toFixed(r >= 0.1 ? 0 : 1)}%`;
const plural = (n: number, word: string, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;
const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
const SEVERITY_RANK: Record<Severity, number> = { critical: 1, warning: 0 };
const CONFIDENCE_RANK: Record<Confidence, number> = { high: 2, medium: 1, low: 0 };

function order(list: Diagnosis[]): Diagnosis[] {
  return list.sort((a, b) => b.explains - a.explains || SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || CONFIDENCE_RANK[b.confidence] - CONFIDENCE_RANK[a.confidence]);
}

/** A listener serves a destination when it listens on its port (any, when the row is a whole address) and on its
 * address or all of them. A row whose address is not known (a network, a service) matches no host evidence. */
function serves(l: { addr: string; port: number }, d: DestinationEvidence): boolean {
  if (d.addr === null || (d.port !== null && l.port !== d.port)) return false;
  return l.addr === d.addr || l.addr === '0.0.0.0' || l.addr === '::' || l.addr === `::ffff:${d.addr}`;
}

/** Frees of a destination by kind, with the reasons behind each kind. */
class Frees {
  readonly byKind = new Map<FreeKind, { count: number; byReason: Map<string, { count: number; fn: string }> }>();
  /** Namespaces of the drops that are conntrack's (a destination's packets are dropped in one or a few). */
  readonly conntrackNetns = new Set<number>();
  constructor(frees: FreeCount[], conntrackNetns: ReadonlySet<number>) {
    for (const f of frees) {
      let kind = freeKind(f.reason, f.location);
      // A netfilter hook's drop in a namespace whose conntrack dropped packets for want of an entry: conntrack's.
      if (kind === 'netfilter-hook' && !conntrackNetns.has(f.netns)) kind = 'firewall-rule';
      if (kind === 'netfilter-hook') this.conntrackNetns.add(f.netns);
      let k = this.byKind.get(kind);
      if (!k) this.byKind.set(kind, (k = { count: 0, byReason: new Map() }));
      k.count += f.count;
      const fn = f.location.split('+')[0];
      const r = k.byReason.get(f.reason);
      if (r) r.count += f.count;
      else k.byReason.set(f.reason, { count: f.count, fn });
    }
  }
  count(kind: FreeKind): number {
    return this.byKind.get(kind)?.count ?? 0;
  }
  evidence(kind: FreeKind, what: string): EvidenceItem[] {
    return [...(this.byKind.get(kind)?.byReason ?? [])].map(([reason, r]) => ({ count: r.count, what, source: SOURCES.drops(reason, r.fn) }));
  }
  topReason(kind: FreeKind): string {
    return [...(this.byKind.get(kind)?.byReason ?? [])].sort((a, b) => b[1].count - a[1].count)[0]?.[0] ?? '';
  }
}

/** Units of a destination's trouble still unexplained, taken by causes as they claim them. */
class Trouble {
  refusedRst: number;
  refusedIcmp: number;
  timedOut: number;
  abandoned: number;
  retrans: number;
  resetReceived: number;
  constructor(d: DestinationEvidence) {
    this.refusedRst = d.connects.refusedRst;
    this.refusedIcmp = d.connects.refusedIcmp;
    this.timedOut = d.connects.timedOut;
    this.abandoned = d.connects.abandoned;
    this.retrans = d.retrans.segs;
    this.resetReceived = d.closes.resetReceived;
  }
  /** Takes up to n units of one kind; returns how many were taken. */
  take(kind: 'refusedRst' | 'refusedIcmp' | 'timedOut' | 'abandoned' | 'retrans' | 'resetReceived', n = Infinity): number {
    const k = Math.min(this[kind], n);
    this[kind] -= k;
    return k;
  }
  /** Connects that got no answer at all (kernel timeout or abandoned by the application). */
  unanswered(): number {
    return this.timedOut + this.abandoned;
  }
  takeUnanswered(): number {
    return this.take('timedOut') + this.take('abandoned');
  }
}

/** Diagnoses for one destination (host evidence matched to it where it applies). */
export function diagnoseDestination(d: DestinationEvidence, host: HostEvidence, t: DiagnosisThresholds = {}): Diagnosis[] {
  const c = d.connects;
  const out: Diagnosis[] = [];
  const ctNetns = new Set(host.conntrack.filter((x) => x.drops > 0).map((x) => x.netns));
  const frees = new Frees(d.frees, ctNetns);
  const left = new Trouble(d);
  const subject = d.key;
  const of = (n: number) => `${n}${c.attempts > 0 ? ` of ${c.attempts}` : ''}`;
  const add = (x: Omit<Diagnosis, 'subject'>) => out.push({ subject, ...x });

  // Local causes with direct evidence, most specific first.
  if (c.noLocalPort > 0) {
    const range = d.portRange ? `; local ports ${d.portRange.low}-${d.portRange.high} (${d.portRange.high - d.portRange.low + 1})` : '';
    const held = d.portsHeld !== null ? `, ${plural(d.portsHeld, 'socket')} to it holding one` : '';
    add({
      code: 'port-exhaustion', severity: 'critical', confidence: 'high', explains: c.noLocalPort,
      text: `no free local port: ephemeral ports exhausted (${of(c.noLocalPort)} connects failed with EADDRNOTAVAIL${range}${held})`,
      action: 'reuse connections (keep-alive, pooling); short connections hold their port in TIME_WAIT for 60 s: widen net.ipv4.ip_local_port_range or set net.ipv4.tcp_tw_reuse=1',
      evidence: [
        { count: c.noLocalPort, what: 'connect() failed with EADDRNOTAVAIL', source: SOURCES.connectExit },
        ...(d.portRange ? [{ count: d.portRange.high - d.portRange.low + 1, what: `local ports in net.ipv4.ip_local_port_range (${d.portRange.low}-${d.portRange.high})`, source: SOURCES.portRange }] : []),
        ...(d.portsHeld !== null ? [{ count: d.portsHeld, what: 'sockets to this destination holding a local port (open or TIME_WAIT)', source: SOURCES.life }] : []),
      ],
    });
  }

  const ctDrops = frees.count('netfilter-hook');
  if (ctDrops > 0) {
    // Only the tables where this destination's packets were dropped (the limit is global: others may drop too).
    const ct = host.conntrack.filter((x) => x.drops > 0 && frees.conntrackNetns.has(x.netns));
    const all = ct.reduce((n, x) => n + x.drops, 0);
    const table = ct.map((x) => `${x.count} entries now, limit ${x.max}`).join('; ');
    const unanswered = left.takeUnanswered();
    const retrans = left.take('retrans');
    add({
      code: 'conntrack-full', severity: 'critical', confidence: 'high', explains: ctDrops + unanswered + retrans,
      text: `conntrack table full: ${plural(ctDrops, 'packet')} to it dropped for want of an entry (conntrack's drop counter +${all}; ${table})`,
      action: 'raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), shorten conntrack timeouts, or exempt this traffic from tracking (notrack)',
      evidence: [
        ...frees.evidence('netfilter-hook', 'packets dropped by a netfilter hook that is not an nftables rule'),
        ...ct.map((x) => ({ count: x.drops, what: `packets conntrack dropped, table ${x.count}/${x.max} (netns ${x.netns})`, source: SOURCES.conntrack })),
        ...(unanswered ? [{ count: unanswered, what: 'connects that got no answer meanwhile', source: SOURCES.connect }] : []),
      ],
    });
  }

  let fwRule = frees.count('firewall-rule');
  if (c.refusedIcmp > 0) {
    const local = Math.min(fwRule, c.refusedIcmp);
    fwRule -= local;
    add({
      code: 'firewall-reject', severity: 'critical', confidence: 'high', explains: left.take('refusedIcmp') + local,
      text: `rejected by a firewall${local ? ' rule on this host' : ''}: ICMP port unreachable (${of(c.refusedIcmp)} connects refused without a RST; a TCP stack answers a closed port with a RST, a REJECT rule with ICMP)`,
      action: local ? 'a reject rule on this host (nft list ruleset) blocks this port: allow it if the traffic is wanted' : 'a firewall between here and the destination rejects this port: ask for it to be opened',
      evidence: [
        { count: c.refusedIcmp, what: 'connects refused (ECONNREFUSED) with no RST received', source: SOURCES.connectRst },
        ...(local ? frees.evidence('firewall-rule', 'packets rejected by a firewall rule on this host') : []),
      ],
    });
  }
  const noSocket = frees.count('no-socket');
  if (left.refusedRst > 0 && fwRule > 0 && noSocket === 0) {
    const n = Math.min(fwRule, left.refusedRst);
    fwRule -= n;
    add({
      code: 'firewall-reject', severity: 'critical', confidence: 'high', explains: left.take('refusedRst', n) + n,
      text: `rejected by a firewall rule on this host: TCP reset (${of(n)} connects answered with a RST by a rule that dropped their SYN; nothing listening would show no firewall drop)`,
      action: 'a reject rule on this host (nft list ruleset) blocks this port: allow it if the traffic is wanted',
      evidence: [
        { count: n, what: 'connects refused with a RST', source: SOURCES.connectRst },
        ...frees.evidence('firewall-rule', 'SYNs dropped by a firewall rule on this host'),
      ],
    });
  }

  const listeners = host.listeners.filter((l) => serves(l, d) && (l.drops > 0 || l.queue > l.limit));
  if (listeners.length) {
    const l = listeners.reduce((a, b) => (b.drops > a.drops ? b : a));
    const unanswered = left.takeUnanswered();
    add({
      code: 'listen-overflow', severity: 'critical', confidence: unanswered > 0 ? 'high' : 'medium', explains: unanswered + l.drops,
      text: `accept queue full: ${listenerName(l)} has ${l.queue} connections waiting for a limit of ${l.limit} and dropped ${plural(l.drops, 'SYN')}${unanswered ? `; ${of(unanswered)} connects got no answer` : ''}`,
      action: `${l.comm} (pid ${l.pid}) does not accept() fast enough: accept faster (more workers) or raise its listen() backlog (capped by net.core.somaxconn)`,
      evidence: [
        { count: l.queue, what: `connections in the accept queue (limit ${l.limit})`, source: SOURCES.listener },
        { count: l.drops, what: 'SYNs and handshake ACKs the listener dropped', source: SOURCES.listener },
        ...(unanswered ? [{ count: unanswered, what: 'connects with no answer to their SYNs', source: SOURCES.connect }] : []),
      ],
    });
  }

  if (fwRule > 0) {
    const unanswered = left.takeUnanswered();
    const retrans = left.take('retrans');
    const ratio = d.retrans.sent > 0 ? d.retrans.segs / d.retrans.sent : 0;
    add({
      code: 'local-firewall', severity: retrans > 0 || unanswered > 0 ? 'critical' : 'warning', confidence: 'high', explains: fwRule + unanswered + retrans,
      text: `local firewall dropping packets (${plural(fwRule, 'packet')} dropped by netfilter on this host${retrans ? `, ${d.retrans.segs} segments retransmitted${ratio > 0 ? `, ${pct(ratio)} retransmitted` : ''}` : ''}${unanswered ? `, ${plural(unanswered, 'connect')} unanswered` : ''})`,
      action: 'a firewall rule on this host drops this traffic (nft list ruleset; iptables -S): fix or remove it if the traffic is wanted',
      evidence: [
        ...frees.evidence('firewall-rule', 'packets dropped by netfilter on this host'),
        ...(unanswered ? [{ count: unanswered, what: 'connects with no answer to their SYNs', source: SOURCES.connect }] : []),
        ...(retrans ? [{ count: retrans, what: 'segments retransmitted', source: SOURCES.retrans }] : []),
      ],
    });
  }

  if (d.closes.resetUnread > 0) {
    const received = left.take('resetReceived', d.closes.resetUnread);
    add({
      code: 'reset-unread', severity: 'warning', confidence: 'high', explains: d.closes.resetUnread + received,
      text: `connections reset by the server: its application closed ${plural(d.closes.resetUnread, 'connection')} without reading the data sent (the kernel answers with a RST)`,
      action: 'the server application closes connections with unread data (an error path, a request too large, SO_LINGER 0): read or drain the request before closing',
      evidence: [
        { count: d.closes.resetUnread, what: 'RSTs sent for a close with unread data', source: SOURCES.resetSent },
        ...(received ? [{ count: received, what: 'established connections closed by a received RST', source: SOURCES.life }] : []),
      ],
    });
  }

  const stalled = host.stalled.filter((s) => s.stalledMs >= (t.stallMs ?? 1000) && stalledFor(s, d));
  if (stalled.length) {
    const receiver = stalled.find((s) => s.side === 'receiver');
    const sender = stalled.find((s) => s.side === 'sender');
    const longest = Math.max(...stalled.map((s) => s.stalledMs));
    const who = receiver ? `${receiver.comm} (pid ${receiver.pid}) on this host has not read for ${secs(receiver.stalledMs)}, ${receiver.queued} bytes unread` : `the receiver's window has been 0 for ${secs(longest)}`;
    add({
      code: 'zero-window', severity: 'warning', confidence: receiver ? 'high' : 'medium', explains: stalled.length,
      text: `receiver not reading: ${who}${sender ? `; ${sender.queued} bytes wait to be sent` : ''} (zero window)`,
      action: receiver ? `${receiver.comm} (pid ${receiver.pid}) stopped reading its socket: it is blocked, overloaded or leaking the connection` : 'the remote application stopped reading (blocked or overloaded): look at it, not at the network',
      evidence: stalled.map((s) => ({ count: s.queued, what: s.side === 'receiver' ? `bytes unread, window 0, no read for ${secs(s.stalledMs)}` : `bytes waiting to be sent, peer window 0 for ${secs(s.stalledMs)}`, source: SOURCES.window })),
    });
  }

  for (const kind of ['receiver', 'drop'] as const) {
    const n = frees.count(kind);
    if (n === 0) continue;
    const retrans = left.take('retrans');
    const top = frees.topReason(kind);
    // Kernels before 5.17 give no drop reasons: say so rather than name "UNAVAILABLE" as one.
    const mostly = top === 'UNAVAILABLE' ? 'this kernel gives no drop reasons' : `mostly ${top}`;
    add({
      code: kind === 'receiver' ? 'receiver-drops' : 'local-drops', severity: 'warning', confidence: 'high', explains: n + retrans,
      text: kind === 'receiver'
        ? `the receiving socket could not keep up: ${plural(n, 'packet')} dropped on this host (${mostly})`
        : `packets dropped on this host (${plural(n, 'drop')}, ${mostly})`,
      action: kind === 'receiver' ? 'the receiving application reads too slowly or its buffers are too small (net.ipv4.tcp_rmem, net.core.rmem_max)'
        : top === 'UNAVAILABLE' ? 'see where the kernel freed them (netbpf drops --stack): this kernel (< 5.17) names no drop reasons'
        : `look up the kernel's drop reason ${top} (netbpf drops -r ${top})`,
      evidence: frees.evidence(kind, 'packets dropped on this host'),
    });
  }

  // What no cause claimed: reported as it looks from here.
  if (left.refusedRst > 0) {
    const n = left.take('refusedRst');
    add({
      code: 'refused', severity: 'critical', confidence: noSocket > 0 ? 'high' : 'medium', explains: n + noSocket,
      text: `refused: nothing listening (${of(n)} connects answered with RST)`,
      action: noSocket > 0 ? 'nothing listens on this port on this host: start the service or fix the port' : 'nothing listens on this port (or a firewall on the way rejects with a TCP reset): check the service',
      evidence: [
        { count: n, what: 'connects refused with a RST', source: SOURCES.connectRst },
        ...frees.evidence('no-socket', 'SYNs for no socket on this host (its kernel sent the RST)'),
      ],
    });
  }
  if (left.timedOut > 0) {
    const n = left.take('timedOut');
    add({
      code: 'timeout', severity: 'critical', confidence: 'medium', explains: n,
      text: `timing out: filtered or host down (${of(n)} connects got no answer to their SYNs)`,
      action: 'the destination does not answer SYNs: a firewall on the way drops them, the host is down, or its accept queue is full',
      evidence: [{ count: n, what: 'connects failed with ETIMEDOUT after the SYN retries', source: SOURCES.connect }],
    });
  }
  if (left.abandoned > 0) {
    const n = left.take('abandoned');
    add({
      code: 'app-connect-timeout', severity: 'critical', confidence: 'medium', explains: n,
      text: `timing out: the application gave up waiting for an answer to its SYNs (${of(n)} connects, after up to ${secs(c.abandonedMaxMs)}, ${plural(c.abandonedSynRetrans, 'SYN')} retransmitted): filtered or host down`,
      action: 'the destination does not answer SYNs (a firewall on the way drops them, the host is down, or its accept queue is full); the application\'s connect timeout is shorter than the kernel\'s',
      evidence: [
        { count: n, what: 'connects closed by the application in SYN_SENT after a SYN retransmit', source: SOURCES.connect },
        { count: c.abandonedSynRetrans, what: 'SYNs retransmitted before the application gave up', source: 'connect (tcp:tcp_retransmit_skb in SYN_SENT)' },
      ],
    });
  }
  if (c.unreachable > 0) {
    add({
      code: 'unreachable', severity: 'critical', confidence: 'high', explains: c.unreachable,
      text: `unreachable: no route / ICMP unreachable (${of(c.unreachable)} connects)`,
      action: 'no route to the destination, or a router answered host/network unreachable: check routes (ip route get) and the path',
      evidence: [{ count: c.unreachable, what: 'connects failed with EHOSTUNREACH/ENETUNREACH', source: SOURCES.connect }],
    });
  }
  const other = Object.entries(c.otherErrors).filter(([, n]) => n > 0);
  if (other.length) {
    const n = other.reduce((s, [, k]) => s + k, 0);
    add({
      code: 'connect-error', severity: 'warning', confidence: 'high', explains: n,
      text: `connect() failed: ${other.map(([e, k]) => `${e} x${k}`).join(', ')}`,
      action: 'see connect(2) for these errors',
      evidence: other.map(([e, k]) => ({ count: k, what: `connect() failed with ${e}`, source: SOURCES.connectExit })),
    });
  }
  const minSegs = t.minRetransSegs ?? 3;
  if (left.retrans >= minSegs && d.retrans.sent > 0) {
    const ratio = left.retrans / d.retrans.sent;
    if (ratio >= (t.lossRatio ?? 0.01)) {
      const n = left.take('retrans');
      add({
        code: 'path-loss', severity: ratio >= (t.criticalLossRatio ?? 0.05) ? 'critical' : 'warning', confidence: 'medium', explains: n,
        text: `loss on the path (${pct(ratio)} retransmitted, no drops on this host)`,
        action: 'packets are lost between this host and the destination (a link, a router, the far host): compare with other destinations on the same path',
        evidence: [
          { count: n, what: 'segments retransmitted', source: SOURCES.retrans },
          { count: d.retrans.sent, what: 'segments sent', source: SOURCES.retrans },
        ],
      });
    }
  }
  if (left.resetReceived > 0) {
    const n = left.take('resetReceived');
    add({
      code: 'peer-reset', severity: 'warning', confidence: 'medium', explains: n,
      text: `connections reset by the peer (${plural(n, 'established connection')} closed by a RST)`,
      action: 'the peer aborts connections (its application closed with unread data, crashed, or a middlebox timed them out)',
      evidence: [{ count: n, what: 'established connections closed by a received RST', source: SOURCES.life }],
    });
  }
  return order(out);
}

/** Whether a stalled window belongs to a destination: the sender's peer, or the receiver's own endpoint. */
function stalledFor(s: StalledWindowEvidence, d: DestinationEvidence): boolean {
  const [addr, port] = s.side === 'sender' ? [s.remoteAddr, s.remotePort] : [s.localAddr, s.localPort];
  const plain = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return d.addr !== null && (d.addr === plain || d.addr === addr) && (d.port === null || d.port === port);
}

function listenerName(l: ListenerEvidence): string {
  const addr = l.addr.includes(':') ? `[${l.addr}]` : l.addr;
  return `listener ${addr}:${l.port} (${l.comm}, pid ${l.pid})`;
}

/** Diagnoses about the host itself: listeners, leaking processes, conntrack, receivers not reading. */
export function diagnoseHost(host: HostEvidence, t: DiagnosisThresholds = {}): Diagnosis[] {
  const out: Diagnosis[] = [];
  for (const l of host.listeners) {
    if (l.drops <= 0) continue;
    out.push({
      code: 'listen-overflow', subject: listenerName(l), severity: 'critical', confidence: 'high', explains: l.drops,
      text: `accept queue full: ${listenerName(l)} has ${l.queue} connections waiting for a limit of ${l.limit} and dropped ${plural(l.drops, 'SYN')}`,
      action: `${l.comm} (pid ${l.pid}) does not accept() fast enough: accept faster (more workers) or raise its listen() backlog (capped by net.core.somaxconn)`,
      evidence: [
        { count: l.queue, what: `connections in the accept queue (limit ${l.limit})`, source: SOURCES.listener },
        { count: l.drops, what: 'SYNs and handshake ACKs dropped', source: SOURCES.listener },
      ],
    });
  }
  for (const w of host.closeWait) out.push(...closeWaitLeak(w, t));
  for (const ct of host.conntrack) out.push(...conntrackFull(ct, t));
  for (const s of host.stalled) {
    if (s.side !== 'receiver' || s.stalledMs < (t.stallMs ?? 1000)) continue;
    out.push({
      code: 'zero-window', subject: `${s.comm} (pid ${s.pid})`, severity: 'warning', confidence: 'high', explains: 1,
      text: `receiver not reading: ${s.comm} (pid ${s.pid}) has not read from ${s.remoteAddr}:${s.remotePort} for ${secs(s.stalledMs)} (${s.queued} bytes unread, window 0)`,
      action: `${s.comm} (pid ${s.pid}) stopped reading this socket: it is blocked, overloaded or leaking the connection`,
      evidence: [{ count: s.queued, what: 'bytes unread with the window closed', source: SOURCES.window }],
    });
  }
  return order(out);
}

function closeWaitLeak(w: CloseWaitEvidence, t: DiagnosisThresholds): Diagnosis[] {
  if (w.count < (t.closeWaitMinCount ?? 2) || w.oldestIdleMs < (t.closeWaitMinIdleMs ?? 1000)) return [];
  const critical = w.count >= (t.closeWaitCriticalCount ?? 100) || w.oldestIdleMs >= (t.closeWaitCriticalIdleMs ?? 60000);
  return [{
    code: 'close-wait-leak', subject: `${w.comm} (pid ${w.pid})`, severity: critical ? 'critical' : 'warning', confidence: 'high', explains: w.count,
    text: `connection leak: ${w.comm} (pid ${w.pid}) holds ${plural(w.count, 'socket')} in CLOSE_WAIT (the peer closed, it did not; oldest idle ${secs(w.oldestIdleMs)}${w.local.length ? `; ${w.local.join(', ')}` : ''})`,
    action: `${w.comm} (pid ${w.pid}) does not close connections its peers closed: a missing close() on an error or end-of-stream path; they hold file descriptors until it runs out`,
    evidence: [{ count: w.count, what: `sockets in CLOSE_WAIT, oldest idle ${secs(w.oldestIdleMs)}`, source: SOURCES.closeWait }],
  }];
}

function conntrackFull(ct: ConntrackEvidence, t: DiagnosisThresholds): Diagnosis[] {
  if (ct.drops <= 0) {
    // Not dropping yet: worth a warning while there is time to raise the limit.
    const near = t.conntrackNearFull ?? 0.9;
    if (!(ct.max > 0 && ct.count >= near * ct.max)) return [];
    const pct = Math.floor((100 * ct.count) / ct.max);
    return [{
      code: 'conntrack-near-full', subject: `conntrack (netns ${ct.netns})`, severity: 'warning', confidence: 'high', explains: 0,
      text: `conntrack table nearly full in netns ${ct.netns}: ${ct.count} entries of a limit of ${ct.max} (${pct}%); at the limit new connections' packets are dropped`,
      action: 'raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets) before it fills, shorten conntrack timeouts, or exempt busy traffic from tracking (notrack)',
      evidence: [{ count: ct.count, what: `entries now (limit ${ct.max} net.netfilter.nf_conntrack_max)`, source: SOURCES.conntrack }],
    }];
  }
  return [{
    code: 'conntrack-full', subject: `conntrack (netns ${ct.netns})`, severity: 'critical', confidence: 'high', explains: ct.drops,
    text: `conntrack table full in netns ${ct.netns}: ${plural(ct.drops, 'packet')} dropped for want of an entry (conntrack's drop counter +${ct.drops}${ct.earlyDrops ? `, ${ct.earlyDrops} entries evicted` : ''}; ${ct.count} entries now, limit ${ct.max} net.netfilter.nf_conntrack_max)`,
    action: 'raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), shorten conntrack timeouts, or exempt busy traffic from tracking (notrack)',
    evidence: [
      { count: ct.drops, what: 'packets dropped, no conntrack entry could be allocated', source: SOURCES.conntrack },
      { count: ct.count, what: `entries now (limit ${ct.max})`, source: SOURCES.conntrack },
      ...(ct.earlyDrops ? [{ count: ct.earlyDrops, what: 'entries evicted to make room', source: SOURCES.conntrack }] : []),
    ],
  }];
}

/** All diagnoses: per destination and for the host. */
export function diagnose(e: Evidence, t: DiagnosisThresholds = {}): DiagnosisResult {
  const destinations = new Map<string, Diagnosis[]>();
  for (const d of e.destinations) destinations.set(d.key, diagnoseDestination(d, e.host, t));
  return { destinations, host: diagnoseHost(e.host, t) };
}
