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

/* life_event.flags */
enum life_flags {
	LIFE_RST_SENT = 1,     /* tcp:tcp_send_reset for this socket */
	LIFE_RST_RECEIVED = 2, /* tcp:tcp_receive_reset for this socket */
	LIFE_FIN_RECEIVED = 4, /* SOCK_DONE at close: the peer's FIN was received (counted in bytes_received) */
	LIFE_RST_UNREAD = 8,   /* closed by its owner with received data unread: the kernel resets it (TCPAbortOnClose) */
	LIFE_SYN_ACKED = 16,   /* bytes_acked counts our SYN (an active open whose handshake completed) */
	LIFE_FIN_ACKED = 32,   /* bytes_acked counts our FIN (closed from FIN_WAIT2/LAST_ACK/CLOSING/TIME_WAIT, no error) */
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
	__u8 owner_source;    /* enum netbpf_owner_source */
	__u8 pad;             /* explicit: no implicit padding, every byte written */
	char comm[NETBPF_COMM_LEN];
};

/* Summary-only runs (aggregate_in_kernel): no records, one per-CPU map entry per summary key instead. */
enum life_agg_consts {
	LIFE_AGG_BUCKETS = 33, /* log2 buckets of a u32 (lifetimes in ms, retransmits per connection); larger in the last */
	LIFE_AGG_RST_FLAGS = LIFE_RST_SENT | LIFE_RST_RECEIVED | LIFE_RST_UNREAD, /* what a key keeps (with sk_err: the close reason) */
	LIFE_AGG_ACTIVE_CLOSE = 0x40, /* life_agg_key.flags: closed from FIN_WAIT1/FIN_WAIT2/CLOSING/TIME_WAIT (our FIN first) */
	LIFE_AGG_OTHER = 0x80, /* life_agg_key.flags: folded into "other" (the key map was full); address, port zero */
};

/* What the summaries group by: the remote address and port (connect) or local port (accept), the direction, and
 * what decides the close reason (handshake completed, resets, sk_err), for closes and for handshakes apart. */
struct life_agg_key {
	__u8 daddr[NETBPF_ADDR_LEN];
	__u8 saddr[NETBPF_ADDR_LEN]; /* the local address of an accepted connection closed with unread data, in a session (agg_session), else zero */
	__u64 cgroup_id;    /* socket's cgroup v2 id when summaries are kept per cgroup (containers), else 0 */
	__s32 sk_err;
	__u16 family;
	__u16 port;         /* connect: remote port; accept: local port */
	__u8 kind;          /* enum life_kind: LIFE_ESTABLISHED counts handshakes, LIFE_CLOSED connections closed */
	__u8 direction;     /* enum life_direction */
	__u8 flags;         /* life_flags & LIFE_AGG_RST_FLAGS, | LIFE_AGG_ACTIVE_CLOSE, | LIFE_AGG_OTHER when folded */
	__u8 established;   /* closed after its handshake completed */
	__u32 netns;        /* the socket's network namespace in a session's summaries (agg_session), else 0 */
};

/* Cumulative per CPU; user space sums the CPUs and takes differences between reads (src/core/kernel-table.ts). */
struct life_agg_value {
	__u64 count;              /* connections closed (LIFE_CLOSED), handshakes completed (LIFE_ESTABLISHED) */
	__u64 connections;        /* of those, sockets no other tool of the session had counted (bpf/owner.bpf.h) */
	__u64 tx_bytes;           /* payload bytes, as the records' txBytes / rxBytes */
	__u64 rx_bytes;
	__u64 total_retrans;
	__u64 ratio_retrans;      /* total_retrans and segs_out no other tool of the session had added yet */
	__u64 ratio_sent;
	__u64 duration_ns;        /* sum of lifetimes (first state change -> CLOSE) */
	__u64 min_duration_ns;
	__u64 max_duration_ns;
	__u64 min_total_retrans;
	__u64 max_total_retrans;
	__u64 srtt_count;         /* ends with a smoothed RTT */
	__u64 srtt_us;            /* sum of smoothed RTTs at close */
	__u64 min_srtt_us;        /* over the ends with an RTT */
	__u64 max_srtt_us;
	__u64 duration_ms_log2[LIFE_AGG_BUCKETS];
	__u64 total_retrans_log2[LIFE_AGG_BUCKETS];
	__u64 srtt_us_log2[LIFE_AGG_BUCKETS];
};

#endif
