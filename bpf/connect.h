/* netbpf connect: the record one TCP connect attempt produces (established or failed). The contract
 * between bpf/connect.bpf.c and src/tools/connect.ts (generated into src/tools/connect/bpf.gen.ts from BTF). */
#ifndef NETBPF_CONNECT_H
#define NETBPF_CONNECT_H

#include "netbpf.h"

enum connect_kind {
	CONNECT_ESTABLISHED = 1, /* SYN_SENT -> ESTABLISHED */
	CONNECT_FAILED = 2,      /* SYN_SENT -> CLOSE, or connect() failed before any SYN */
};

/* connect_event.flags */
enum connect_flags {
	CONNECT_RST_RECEIVED = 1,   /* tcp:tcp_receive_reset while in SYN_SENT (refused) */
	CONNECT_BEFORE_SYN = 2,     /* connect() returned an error before the socket left CLOSE (no route, ...) */
	CONNECT_ERROR_REPORTED = 4, /* err came from sock:inet_sk_error_report, not sk_err at close */
	CONNECT_IN_SYSCALL = 8,     /* failed inside connect() after SYN_SENT but before any SYN (no local port): errno from its exit */
};

struct connect_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() of the outcome */
	__u64 start_ns;     /* connect(): CLOSE -> SYN_SENT (or syscall entry for BEFORE_SYN) */
	__u64 cgroup_id;    /* socket's cgroup v2 id */
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u32 netns;        /* network namespace inode */
	__u32 pid;          /* process that called connect() */
	__s32 err;          /* positive errno of a failure (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...); 0 if none */
	__u32 syn_retrans;  /* SYNs retransmitted during this attempt */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 kind;          /* enum connect_kind */
	__u8 flags;         /* enum connect_flags */
	char comm[NETBPF_COMM_LEN];
	__u16 ports_low;    /* the namespace's net.ipv4.ip_local_port_range, for a failure inside connect() (EADDRNOTAVAIL) */
	__u16 ports_high;
	__u32 pad;          /* explicit: no implicit padding, every byte written */
};

#endif
