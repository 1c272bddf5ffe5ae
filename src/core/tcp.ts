/** TCP state names (include/net/tcp_states.h; ABI-stable, also printed by the kernel's tracepoints). */
export const TCP_STATES = [
  'UNKNOWN', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV',
] as const;
export type TcpState = (typeof TCP_STATES)[number];

export function tcpStateName(n: number): TcpState {
  return TCP_STATES[n] ?? 'UNKNOWN';
}

/** Congestion-avoidance states (enum tcp_ca_state). */
export const TCP_CA_STATES = ['open', 'disorder', 'cwr', 'recovery', 'loss'] as const;
export type TcpCaState = (typeof TCP_CA_STATES)[number] | 'unknown';
export const tcpCaStateName = (n: number): TcpCaState => TCP_CA_STATES[n] ?? 'unknown';
