/**
 * netbpf sockets: every TCP socket a process holds, read on demand by a BPF iterator (bpf/sockets.bpf.c): owner,
 * state, queues, windows, listener backlog and drops, idle time. The object, its generated contract
 * (bpf.gen.ts), the decoder and reader.
 */
export { SOCKETS_LAYOUT, SocketReader, decodeSocket, decodeSockets } from './reader.js';
export type { SocketInfo } from './reader.js';
