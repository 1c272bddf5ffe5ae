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

#endif
