/**
 * TCP sockets by state in one network namespace, as `ss -tan` lists them: one inet_diag (NETLINK_SOCK_DIAG) dump
 * per address family, counted in the addon (addon/sock_diag.cc), so only the counts cross into JavaScript.
 */
import { addon } from './addon.js';
import { TCP_STATES, tcpStateName, type TcpState } from './tcp.js';

/** The states a dump reports (include/net/tcp_states.h): request sockets come as SYN_RECV and timewait sockets as
 * TIME_WAIT or FIN_WAIT2 (their substate), as ss shows them; CLOSE only for a socket caught while it closes. */
export const TCP_DUMP_STATES = TCP_STATES.slice(1, 12) as readonly TcpState[];

/** One namespace's TCP sockets by state. */
export interface TcpStateCounts {
  /** The namespace's inode. */
  netns: number;
  /** Sockets per state: every state of TCP_DUMP_STATES (0 when none), others only if the kernel reported one. */
  states: Map<TcpState, number>;
  /** How long the dumps took (entering the namespace included), ms. */
  elapsedMs: number;
}

/** An error of a dump: the message names the namespace and the step; errno as the kernel returned it. */
export interface SockDiagError extends Error { errno?: number }

/** Counts the TCP sockets of a namespace (a namespace file; null: this process's) by state. */
export async function countTcpStates(netnsPath: string | null): Promise<TcpStateCounts> {
  const r = await addon().sockDiagTcpStates(netnsPath);
  const states = new Map<TcpState, number>(TCP_DUMP_STATES.map((s) => [s, 0]));
  r.states.forEach((n, i) => { if (n > 0) states.set(tcpStateName(i), (states.get(tcpStateName(i)) ?? 0) + n); });
  return { netns: r.netns, states, elapsedMs: r.elapsedNs / 1e6 };
}
