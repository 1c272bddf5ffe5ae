/* netbpf life: the records one TCP connection produces (established, closed). The contract between
 * bpf/life.bpf.c and src/tools/life.ts (generated into src/tools/life/bpf.gen.ts from BTF). */
#ifndef NETBPF_LIFE_H
#define NETBPF_LIFE_H

#include "netbpf.h"

enum life_kind {
	LIFE_ESTABLISHED = 1, /* handshake completed (SYN_SENT/SYN_RECV -> ESTABLISHED) */
	LIFE_CLOSED = 2,      /* socket reached TCP_CLOSE: one record per connection, like tcplife */
};

enum life_direction {
	LIFE_DIR_UNKNOWN = 0,
	LIFE_DIR_CONNECT = 1, /* active open: this host sent the SYN */
	LIFE_DIR_ACCEPT = 2,  /* passive open: a listener's child */
};

/* How the owning process was learned; always in process context, never from softirq. */
enum life_owner_source {
	LIFE_OWNER_NONE = 0,    /* not seen in process context (e.g. accepted, never read/written, not closed yet) */
	LIFE_OWNER_CONNECT = 1, /* CLOSE -> SYN_SENT, in the task calling connect() */
	LIFE_OWNER_RECV = 2,    /* sock:sock_recv_length or tcp_recvmsg(), in the task calling recvmsg() */
	LIFE_OWNER_SEND = 3,    /* sock:sock_send_length or tcp_sendmsg(), in the task calling sendmsg() */
	LIFE_OWNER_CLOSE = 4,   /* -> FIN_WAIT1 / LAST_ACK, in the task calling close() or shutdown() */
};

/* life_event.flags */
enum life_flags {
	LIFE_RST_SENT = 1,     /* tcp:tcp_send_reset for this socket */
	LIFE_RST_RECEIVED = 2, /* tcp:tcp_receive_reset for this socket */
	LIFE_FIN_RECEIVED = 4, /* SOCK_DONE at close: the peer's FIN was received (counted in bytes_received) */
	LIFE_RST_UNREAD = 8,   /* closed by its owner with received data unread: the kernel resets it (TCPAbortOnClose) */
};

struct life_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns() of this state change */
	__u64 birth_ns;       /* first state change seen (SYN_SENT or SYN_RECV) */
	__u64 established_ns; /* 0 when the handshake never completed */
	__u64 cgroup_id;      /* socket's cgroup v2 id */
	__u64 bytes_acked;    /* tcp_sock: bytes sent and acknowledged (TX) */
	__u64 bytes_received; /* tcp_sock: bytes received in order (RX) */
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u32 netns;          /* network namespace inode */
	__u32 pid;            /* owning process (see owner_source); 0 when unknown */
	__u32 srtt_us;        /* smoothed RTT */
	__u32 total_retrans;  /* segments retransmitted over the connection's life */
	__u32 segs_out;
	__u32 segs_in;
	__s32 sk_err;         /* sk->sk_err at close: ECONNRESET, ETIMEDOUT, ECONNREFUSED, ... or 0 */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 kind;            /* enum life_kind */
	__u8 direction;       /* enum life_direction */
	__u8 old_state;       /* state left by this change: for LIFE_CLOSED the state it closed from */
	__u8 flags;           /* enum life_flags */
	__u8 owner_source;    /* enum life_owner_source */
	__u8 pad;             /* explicit: no implicit padding, every byte written */
	char comm[NETBPF_COMM_LEN];
};

#endif
