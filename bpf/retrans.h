/* netbpf retrans: the record one TCP retransmit produces. The contract between bpf/retrans.bpf.c and
 * src/tools/retrans.ts (generated into src/tools/retrans/bpf.gen.ts from BTF). */
#ifndef NETBPF_RETRANS_H
#define NETBPF_RETRANS_H

#include "netbpf.h"

/* What made the kernel retransmit, as far as the socket's state tells. */
enum retrans_kind {
	RETRANS_OTHER = 0,
	RETRANS_RTO = 1,    /* retransmission timer fired (congestion state Loss) */
	RETRANS_FAST = 2,   /* fast retransmit / recovery on dupacks, SACK or RACK */
	RETRANS_TLP = 3,    /* tail loss probe (loss-probe timer) */
	RETRANS_SYN = 4,    /* SYN retransmitted by a connecting socket */
	RETRANS_SYNACK = 5, /* SYN-ACK retransmitted by a listener */
};

struct retrans_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() */
	__u64 cgroup_id;    /* socket's cgroup v2 id */
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u32 netns;        /* network namespace inode */
	__u32 pid;          /* owning process, from connect(); 0 when unknown */
	__u32 srtt_us;      /* smoothed RTT */
	__u32 segs;         /* segments in this retransmitted skb (GSO/TSO: often more than one) */
	__u32 total_retrans;/* segments retransmitted over the socket's life, including these */
	__u32 segs_out;     /* segments sent over the socket's life: retransmitted / sent is the loss signal */
	__s32 err;          /* 0, or the error that stopped this retransmit (kernels >= 6.11 report it) */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 state;         /* TCP state */
	__u8 kind;          /* enum retrans_kind */
	__u8 ca_state;      /* congestion-avoidance state */
	__u8 retransmits;   /* consecutive timer retransmits without progress */
	char comm[NETBPF_COMM_LEN]; /* owning process name; empty when unknown */
	__u8 pad[10];      /* explicit: no implicit padding, every byte written */
};

/* Summary-only runs (aggregate_in_kernel): no records, one per-CPU map entry per summary key instead. */
enum retrans_agg_consts {
	RETRANS_AGG_BUCKETS = 33,          /* log2 buckets of a u32 (smoothed RTT in microseconds); larger in the last */
	RETRANS_AGG_RETRANSMITS_BUCKETS = 9, /* log2 buckets of a u8 (consecutive timer retransmits) */
	RETRANS_AGG_OTHER = 0x80,          /* retrans_agg_key.flags: folded into "other" (the key map was full) */
};

/* What the summaries group by: the remote endpoint, the kind of retransmit and its error (which decides whether the
 * kernel counted its segments). */
struct retrans_agg_key {
	__u8 daddr[NETBPF_ADDR_LEN];
	__u64 cgroup_id;    /* socket's cgroup v2 id when summaries are kept per cgroup (containers), else 0 */
	__s32 err;
	__u32 netns;        /* the socket's network namespace in a session's summaries (agg_session), else 0 */
	__u16 family;
	__u16 dport;
	__u8 kind;          /* enum retrans_kind */
	__u8 flags;         /* RETRANS_AGG_OTHER when folded */
	__u8 pad[2];        /* explicit: keys are compared as bytes */
};

/* Cumulative per CPU; user space sums the CPUs and takes differences between reads (src/core/kernel-table.ts). */
struct retrans_agg_value {
	__u64 count;            /* retransmit events */
	__u64 segs;             /* segments in them */
	__u64 connections;      /* connections no other tool of the session had counted (bpf/owner.bpf.h) */
	__u64 ratio_retrans;    /* total_retrans and segs_out no other tool of the session had added yet */
	__u64 ratio_sent;
	__u64 first_ns;         /* bpf_ktime_get_ns() of the first and last event */
	__u64 last_ns;
	__u64 retransmits;      /* sum of consecutive timer retransmits */
	__u64 min_retransmits;
	__u64 max_retransmits;
	__u64 srtt_count;       /* events with a smoothed RTT (not SYN-ACKs) */
	__u64 srtt_us;          /* sum of smoothed RTTs */
	__u64 min_srtt_us;      /* over the events with an RTT */
	__u64 max_srtt_us;
	__u64 retransmits_log2[RETRANS_AGG_RETRANSMITS_BUCKETS];
	__u64 srtt_us_log2[RETRANS_AGG_BUCKETS];
};

#endif
