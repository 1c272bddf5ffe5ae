/**
 * What the diagnosis engine weighs: per-destination counts from the tracing tools (connect, retrans, drops,
 * life) and host evidence read from the kernel (listeners, CLOSE_WAIT sockets, stalled windows from the socket
 * iterator; conntrack statistics). Plain data, so any collector (top, the exporter, a library user, a test)
 * can fill it.
 */

/** Outcomes of connects to one destination, as connect() and the kernel reported them. */
export interface ConnectEvidence {
  attempts: number;
  successes: number;
  /** ECONNREFUSED with a RST in answer to the SYN (tcp:tcp_receive_reset). */
  refusedRst: number;
  /** ECONNREFUSED with no RST: an ICMP port-unreachable answered (a TCP stack answers a closed port with a RST). */
  refusedIcmp: number;
  /** ETIMEDOUT: the kernel's SYN retries ran out with no answer. */
  timedOut: number;
  /** EHOSTUNREACH / ENETUNREACH, before or after the SYN. */
  unreachable: number;
  /** Closed by the application while still in SYN_SENT after at least one SYN retransmit: it gave up first. */
  abandoned: number;
  /** SYNs retransmitted by the abandoned attempts, and the longest such attempt (ms). */
  abandonedSynRetrans: number;
  abandonedMaxMs: number;
  /** Closed by the application in SYN_SENT before any SYN retransmit (e.g. Happy Eyeballs cancelling the slower
   * family): not trouble. */
  cancelled: number;
  /** EADDRNOTAVAIL from connect(): no free local port for this destination. */
  noLocalPort: number;
  /** Other errno names and counts. */
  otherErrors: Record<string, number>;
}

/** Frees of packets of this destination on this host, by kernel drop reason and freeing function. */
export interface FreeCount {
  reason: string;
  /** kfree_skb's caller ("nft_do_chain", "nf_hook_slow+0x9c", ...; "" when unknown). */
  location: string;
  /** Network namespace (inode) where it was freed; 0 when unknown. */
  netns: number;
  count: number;
  /** Their bytes (skb lengths; 0 when unknown): one dropped GSO/GRO packet can carry many segments. */
  bytes: number;
}

/** How this destination's connections ended (life), for resets. */
export interface CloseEvidence {
  closed: number;
  /** Established connections closed by a RST from the peer. */
  resetReceived: number;
  /** Connections this host reset because their application closed them with data unread (TCPAbortOnClose). */
  resetUnread: number;
  /** Established connections this host reset for another reason. */
  resetSentOther: number;
}

/** One destination: what the tools counted for it over the period looked at. */
export interface DestinationEvidence {
  /** Row key (address, endpoint, service or network, as grouped). */
  key: string;
  /** Address and port, when the key is one endpoint or one address (for matching host evidence). */
  addr: string | null;
  port: number | null;
  connects: ConnectEvidence;
  /** Data segments retransmitted and sent over the connections seen (the kernel's per-connection counters). */
  retrans: { segs: number; sent: number };
  frees: FreeCount[];
  closes: CloseEvidence;
  /** The local port range of the namespace that failed with EADDRNOTAVAIL (from the kernel), when known. */
  portRange: { low: number; high: number } | null;
  /** Sockets to this destination holding a local port now or recently (open, plus closed actively in the last
   * 60 s: TIME_WAIT), when known. */
  portsHeld: number | null;
}

/** A listening socket and its accept queue (socket iterator: sk_ack_backlog, sk_max_ack_backlog, sk_drops). */
export interface ListenerEvidence {
  addr: string;
  port: number;
  pid: number;
  comm: string;
  netns: number;
  /** Connections waiting to be accept()ed now, and the limit (backlog). */
  queue: number;
  limit: number;
  /** SYNs and handshake ACKs the listener dropped over the period (ListenDrops for this socket). */
  drops: number;
}

/** A process's sockets in CLOSE_WAIT: the peer closed, the process has not. */
export interface CloseWaitEvidence {
  pid: number;
  comm: string;
  netns: number;
  count: number;
  /** How long the oldest has been idle (no segment sent or received), ms. */
  oldestIdleMs: number;
  /** Local endpoints ("addr:port") they belong to, a few. */
  local: string[];
}

/** A connection whose receive window stays closed: on this host the receiver, or the sender facing it. */
export interface StalledWindowEvidence {
  side: 'receiver' | 'sender';
  pid: number;
  comm: string;
  netns: number;
  /** This side's endpoint and the other side's. */
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  /** Bytes waiting: unread (receiver) or unsent (sender). */
  queued: number;
  /** How long the window has been closed with no progress, ms. */
  stalledMs: number;
}

/** conntrack of one network namespace over the period. */
export interface ConntrackEvidence {
  netns: number;
  /** Entries now and the limit (net.netfilter.nf_conntrack_max). */
  count: number;
  max: number;
  /** Packets dropped because no entry could be allocated (the table was full), entries evicted, insert failures. */
  drops: number;
  earlyDrops: number;
  insertFailed: number;
}

/** Evidence about this host rather than one destination. */
export interface HostEvidence {
  listeners: ListenerEvidence[];
  closeWait: CloseWaitEvidence[];
  stalled: StalledWindowEvidence[];
  conntrack: ConntrackEvidence[];
}

/** Everything the engine weighs. */
export interface Evidence {
  destinations: DestinationEvidence[];
  host: HostEvidence;
}

/** An empty ConnectEvidence, to fill in. */
export const noConnects = (): ConnectEvidence => ({
  attempts: 0, successes: 0, refusedRst: 0, refusedIcmp: 0, timedOut: 0, unreachable: 0, abandoned: 0,
  abandonedSynRetrans: 0, abandonedMaxMs: 0, cancelled: 0, noLocalPort: 0, otherErrors: {},
});

/** An empty DestinationEvidence for a key, to fill in. */
export const emptyDestination = (key: string, addr: string | null = null, port: number | null = null): DestinationEvidence => ({
  key, addr, port, connects: noConnects(), retrans: { segs: 0, sent: 0 }, frees: [],
  closes: { closed: 0, resetReceived: 0, resetUnread: 0, resetSentOther: 0 }, portRange: null, portsHeld: null,
});

export const noHostEvidence = (): HostEvidence => ({ listeners: [], closeWait: [], stalled: [], conntrack: [] });
