/* netbpf sockets: one record per TCP socket a process holds, read on demand by a BPF iterator over every
 * process's open files (all network namespaces at once). The contract between bpf/sockets.bpf.c and
 * src/tools/sockets.ts (offsets checked against this object's BTF). */
#ifndef NETBPF_SOCKETS_H
#define NETBPF_SOCKETS_H

#include "netbpf.h"

struct socket_record {
	__u64 sk;           /* kernel address: one socket held through several fds/processes is reported once */
	__u64 idle_us;      /* since the socket last sent or processed a segment (now - tcp_mstamp); 0 for LISTEN */
	__u64 cgroup_id;    /* socket's cgroup v2 id */
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u32 netns;        /* network namespace inode */
	__u32 pid;          /* a process holding the socket (tgid) */
	__u32 fd;           /* its file descriptor there */
	__u32 rx_queue;     /* received, not read by the application (rcv_nxt - copied_seq); LISTEN: accept queue length */
	__u32 tx_queue;     /* written, not acknowledged (write_seq - snd_una); LISTEN: accept queue limit (backlog) */
	__u32 rcv_wnd;      /* receive window this socket advertises now (rcv_wup + rcv_wnd - rcv_nxt) */
	__u32 snd_wnd;      /* window the peer advertises */
	__u32 drops;        /* sk_drops: for a listener, SYNs and handshake ACKs dropped (tcp_listendrop: ListenDrops) */
	__u32 copied_seq;   /* next byte the application will read: unchanged between reads = not reading */
	__u32 rcvbuf;       /* sk_rcvbuf */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 state;         /* TCP state (TCP_LISTEN, TCP_CLOSE_WAIT, ...) */
	__u8 probes_out;    /* unanswered zero-window or keepalive probes */
	char comm[NETBPF_COMM_LEN];
	__u32 pad[2];       /* explicit: no implicit padding, every byte written */
};

#endif
