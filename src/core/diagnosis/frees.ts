/**
 * What a kernel free (skb:kfree_skb, reason and freeing function) means for a diagnosis: normal TCP
 * housekeeping, a socket-teardown purge, a firewall rule, another netfilter hook (conntrack), a segment for no
 * socket, a receiver that could not take it, or a packet lost on this host. The one list of frees that never
 * count as drops that hurt, each with the reason why (measured on Linux 6.18 with bpftrace; docs/diagnoses.md).
 */
import { kernelDropReasonEnum } from '../kernel-drop-reasons.js';

/** What a free is, for a diagnosis. */
export type FreeKind =
  /** Normal TCP housekeeping: the segment did its job or was a duplicate; nothing was lost. */
  | 'housekeeping'
  /** Data queued on a socket freed when the socket was torn down: not loss on the way. */
  | 'purge'
  /** An nftables rule dropped or rejected it (NETFILTER_DROP freed in nft_do_chain). */
  | 'firewall-rule'
  /** A netfilter hook other than an nftables rule dropped it (freed in nf_hook_slow): conntrack (table full,
   * invalid) or an iptables-legacy rule. */
  | 'netfilter-hook'
  /** A segment for no connection: nothing listens on its port (a refused connect), or its connection is gone (a
   * late segment after a close, answered with a RST). Evidence for "refused", no trouble on its own. */
  | 'no-socket'
  /** The receiving socket could not take it: its buffer or window was full, or memory ran out. */
  | 'receiver'
  /** Any other drop on this host. */
  | 'drop';

/** A harmless free: a reason, optionally only when freed by one of `functions`, and why it is harmless. */
export interface HarmlessFree {
  reason: string;
  /** Freeing functions (kfree_skb's caller) this applies to; undefined: any. */
  functions?: readonly string[];
  kind: 'housekeeping' | 'purge';
  why: string;
}

/** The frees that never count as drops that hurt. */
export const HARMLESS_FREES: readonly HarmlessFree[] = [
  { reason: 'TCP_OLD_DATA', kind: 'housekeeping', why: 'a retransmitted segment whose data had already arrived (the retransmit was spurious or crossed the ACK); the receiver acknowledges it again (DSACK); the retransmit itself is counted on the sender' },
  { reason: 'TCP_OFOMERGE', kind: 'housekeeping', why: 'a segment whose data was already in the out-of-order queue (a retransmit of data that had arrived, seen under loss on the path); the data is there, nothing more is lost' },
  { reason: 'TCP_OLD_SEQUENCE', kind: 'housekeeping', why: 'a segment below the window: zero-window probes and keepalives are sent with an old sequence number on purpose; the receiver answers with an ACK' },
  { reason: 'TCP_OLD_ACK', kind: 'housekeeping', why: 'an ACK older than one already processed (reordered or duplicate ACK); it carries nothing new' },
  { reason: 'TCP_TOO_OLD_ACK', kind: 'housekeeping', why: 'an ACK for data acknowledged long ago (a late duplicate); it carries nothing new' },
  { reason: 'TCP_RESET', kind: 'housekeeping', why: 'a received RST, freed after the kernel acted on it; the reset itself is reported (connection reset), not the freed segment' },
  { reason: 'TCP_RFC7323_TW_PAWS', kind: 'housekeeping', why: 'an old duplicate for a TIME_WAIT socket, rejected by the timestamp check (PAWS) as RFC 7323 asks' },
  { reason: 'NOT_SPECIFIED', functions: ['tcp_rcv_state_process'], kind: 'housekeeping', why: 'the final ACK of a close (LAST_ACK or CLOSING to CLOSE), freed with the generic reason after it completed the close' },
  { reason: 'NOT_SPECIFIED', functions: ['tcp_v4_rcv', 'tcp_v6_rcv'], kind: 'housekeeping', why: 'a segment handled by a TIME_WAIT socket (the peer\'s FIN or its retransmit, answered with an ACK), freed with the generic reason' },
  { reason: 'SOCKET_CLOSE', kind: 'purge', why: 'data still queued on a socket when it was closed' },
  { reason: 'QUEUE_PURGE', kind: 'purge', why: 'a socket\'s queue emptied at teardown (e.g. tcp_disconnect)' },
  { reason: 'UNIX_DISCONNECT', kind: 'purge', why: 'a Unix socket\'s queue emptied at disconnect' },
  ...['udp_destruct_common', 'inet_sock_destruct', 'skb_queue_purge_reason', '__skb_queue_purge_reason', 'tcp_write_queue_purge', 'tcp_disconnect',
    'sk_stream_kill_queues', 'unix_release_sock', 'unix_sock_destructor', 'packet_release', 'sk_common_release'].map((fn): HarmlessFree => ({
    reason: 'NOT_SPECIFIED', functions: [fn], kind: 'purge', why: `queued data freed with the generic reason by ${fn} when its socket was torn down`,
  })),
  // Kernels before 5.17 pass no reason (UNAVAILABLE): the freeing function alone tells a teardown purge (seen on
  // Debian's 5.10: udp_destruct_common for a UDP socket's queue on 5.10.262, whose stable updates renamed
  // udp_destruct_sock's loop; skb_queue_purge for others).
  ...['udp_destruct_common', 'udp_destruct_sock', 'skb_queue_purge', 'tcp_disconnect', 'inet_sock_destruct', 'sk_stream_kill_queues', 'unix_release_sock', 'packet_release',
    'sk_common_release'].map((fn): HarmlessFree => ({
    reason: 'UNAVAILABLE', functions: [fn], kind: 'purge', why: `queued data freed by ${fn} when its socket was torn down (no drop reason on this kernel)`,
  })),
];

/** Reasons that mean a firewall on this host threw the packet away (its rule, or the hook it runs in). */
const FIREWALL_REASONS: ReadonlySet<string> = new Set(['NETFILTER_DROP', 'IPTABLES_DROP', 'NFT_DROP', 'BPF_CGROUP_EGRESS', 'TC_DROP', 'TC_INGRESS', 'TC_EGRESS']);
/** Reasons that mean the receiving socket could not take the packet (buffer, window or memory). */
const RECEIVER_REASONS: ReadonlySet<string> = new Set(['SOCKET_RCVBUFF', 'SOCKET_BACKLOG', 'PROTO_MEM', 'TCP_ZEROWINDOW', 'TCP_OFO_QUEUE_PRUNE', 'TCP_OFO_DROP', 'TCP_OVERWINDOW']);

/** Where a segment refused by tcp_rcv_state_process (with a RST in answer) is freed. */
const STRAY_FUNCTIONS: ReadonlySet<string> = new Set(['tcp_v4_do_rcv', 'tcp_v6_do_rcv']);

/** The function name of a kfree_skb location ("nf_hook_slow+0x9c" -> "nf_hook_slow"). */
export function freeingFunction(location: string): string {
  const plus = location.indexOf('+');
  return plus < 0 ? location : location.slice(0, plus);
}

const harmless = new Map<string, HarmlessFree[]>();
for (const h of HARMLESS_FREES) harmless.set(h.reason, [...(harmless.get(h.reason) ?? []), h]);

/** The harmless-list entry a free by function `fn` matches, or undefined. */
function harmlessIn(reason: string, fn: string): HarmlessFree | undefined {
  return harmless.get(reason)?.find((h) => !h.functions || h.functions.includes(fn));
}

/** The harmless-list entry a free matches, or undefined. */
export function harmlessFree(reason: string, location: string): HarmlessFree | undefined {
  return harmlessIn(reason, freeingFunction(location));
}

/** Whether the running kernel names segments below the window apart (TCP_OLD_SEQUENCE, 6.3+); true without drop
 * reasons (or BTF), where the reasons then come from elsewhere, named as later kernels do. */
function kernelNamesOldSequence(): boolean {
  const reasons = kernelDropReasonEnum();
  return reasons === null || reasons.some(([name]) => name === 'SKB_DROP_REASON_TCP_OLD_SEQUENCE');
}

/** What a free is (reason name from the kernel's BTF, location as "function+offset" or ""). */
export function freeKind(reason: string, location: string, namesOldSequence: boolean = kernelNamesOldSequence()): FreeKind {
  const fn = freeingFunction(location);
  const h = harmlessIn(reason, fn);
  if (h) return h.kind;
  // Before 6.3 (6.1) every segment outside the window is TCP_INVALID_SEQUENCE, the zero-window probes and keepalives
  // sent below it on purpose (TCP_OLD_SEQUENCE later: housekeeping) among them, and they are most of them.
  if (reason === 'TCP_INVALID_SEQUENCE' && !namesOldSequence) return 'housekeeping';
  if (reason === 'NETFILTER_DROP') return fn === 'nf_hook_slow' ? 'netfilter-hook' : 'firewall-rule';
  // Without drop reasons (< 5.17) the freeing function still names a netfilter verdict: nf_hook_slow frees a packet
  // only for NF_DROP (a rule's drop or reject, or conntrack's), what later kernels call NETFILTER_DROP there.
  if (reason === 'UNAVAILABLE' && fn === 'nf_hook_slow') return 'netfilter-hook';
  // ...and TCP's receive entry frees there what finds no socket to take it (answered with a RST: NO_SOCKET later) or
  // what a TIME_WAIT socket handled (housekeeping later), tcp_v{4,6}_do_rcv what a socket refused with a RST (a stray
  // segment, TCP_FLAGS later): no loss of wanted data, so never "local drops" (seen on 5.10: a refused connect's
  // SYNs, late segments to connections this host had closed).
  if (reason === 'UNAVAILABLE' && (fn === 'tcp_v4_rcv' || fn === 'tcp_v6_rcv' || STRAY_FUNCTIONS.has(fn))) return 'no-socket';
  if (FIREWALL_REASONS.has(reason)) return 'firewall-rule';
  if (reason === 'NO_SOCKET') return 'no-socket';
  // A listener (or a closed socket) that got an ACK for a connection it no longer has: tcp_rcv_state_process
  // refuses it (TCP_FLAGS) and tcp_v{4,6}_do_rcv answers with a RST (seen here: a late ACK after a close). Kernels
  // with drop reasons before tcp_rcv_state_process returned one (6.1) free it there as NOT_SPECIFIED: the same
  // stray segment (the 6.1 guest: one beside a 5% path loss, a listen overflow and a zero window).
  if ((reason === 'TCP_FLAGS' || reason === 'NOT_SPECIFIED') && STRAY_FUNCTIONS.has(fn)) return 'no-socket';
  // A segment reaching a socket already in CLOSE (its connection torn down a moment before, still hashed): the same
  // kind of late segment (seen once beside a full conntrack table's retried connects).
  if (reason === 'TCP_CLOSE') return 'no-socket';
  if (RECEIVER_REASONS.has(reason)) return 'receiver';
  return 'drop';
}

/** Whether a free is a drop that hurts (neither housekeeping nor a purge). */
export const hurts = (kind: FreeKind): boolean => kind !== 'housekeeping' && kind !== 'purge';
