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

/* Summary-only runs (aggregate_in_kernel): no records, one per-CPU map entry per summary key instead. */
enum connect_agg_consts {
	CONNECT_AGG_BUCKETS = 33, /* log2 buckets of a u32 latency in microseconds; larger in the last */
	CONNECT_AGG_SYN_RETRANSMITTED = 0x40, /* connect_agg_key.flags: the attempt retransmitted its SYN */
	CONNECT_AGG_OTHER = 0x80, /* connect_agg_key.flags: folded into "other" (the key map was full) */
};

/* What the summaries group by: the remote endpoint, the outcome and what classifies a failure (errno, flags). */
struct connect_agg_key {
	__u8 daddr[NETBPF_ADDR_LEN];
	__u64 cgroup_id;    /* socket's cgroup v2 id when summaries are kept per cgroup (containers), else 0 */
	__s32 err;
	__u32 netns;        /* the socket's network namespace in a session's summaries (agg_session), else 0 */
	__u16 family;
	__u16 dport;
	__u16 ports_low;    /* the namespace's local port range, for a failure inside connect() (EADDRNOTAVAIL) */
	__u16 ports_high;
	__u8 kind;          /* enum connect_kind */
	__u8 flags;         /* enum connect_flags, | CONNECT_AGG_SYN_RETRANSMITTED, | CONNECT_AGG_OTHER when folded */
	__u8 pad[6];        /* explicit: keys are compared as bytes */
};

/* Cumulative per CPU; user space sums the CPUs and takes differences between reads (src/core/kernel-table.ts). */
struct connect_agg_value {
	__u64 count;          /* attempts with this outcome */
	__u64 connections;    /* established connections no other tool of the session had counted (bpf/owner.bpf.h) */
	__u64 syn_retrans;
	__u64 latency_ns;     /* sum of connect() -> ESTABLISHED (established attempts only) */
	__u64 min_latency_ns;
	__u64 max_latency_ns;
	__u64 max_elapsed_ns; /* longest connect() -> failure (a connect abandoned after SYN retransmits: how long it tried) */
	__u64 latency_us_log2[CONNECT_AGG_BUCKETS];
};

#endif
