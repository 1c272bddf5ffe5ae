/* netbpf drops: the record one dropped packet (kfree_skb with a drop reason) produces. The contract between
 * bpf/drops.bpf.c and src/tools/drops.ts (generated into src/tools/drops/bpf.gen.ts from BTF). */
#ifndef NETBPF_DROPS_H
#define NETBPF_DROPS_H

#include "netbpf.h"

enum drop_reason_consts {
	/* Reasons below this can be selected with --reason (a bitmap in the kernel). */
	DROP_REASON_FILTER_BITS = 512,
	/* drop_event.reason when the hook has no reason argument (tcp_drop on kernels before 5.17). */
	DROP_REASON_UNAVAILABLE = 0xffffffffu,
};

/* drop_event.flags */
enum drop_flags {
	DROP_F_RECEIVED = 1,  /* came in through an interface (skb_iif != 0): the remote side is the source */
	DROP_F_SOCKET = 2,    /* a socket was known (rx_sk or skb->sk): state is its TCP state */
	DROP_F_HEADERS = 4,   /* addresses/ports parsed from the packet's own IP/TCP/UDP headers */
	DROP_F_SOCK_TUPLE = 8,/* no parsable headers: addresses/ports are the socket's (local = saddr) */
	DROP_F_NO_PORTS = 16, /* IP header parsed, but no L4 ports (fragment, other protocol, truncated) */
};

struct drop_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() */
	__u64 location;     /* kernel address that freed the skb (tracepoint's location); 0 when unknown */
	__u8 saddr[NETBPF_ADDR_LEN]; /* packet source (or socket local address, see DROP_F_SOCK_TUPLE) */
	__u8 daddr[NETBPF_ADDR_LEN]; /* packet destination (or socket remote address) */
	__u32 netns;        /* network namespace inode (socket's, else the device's) */
	__u32 reason;       /* enum skb_drop_reason value of the running kernel, or DROP_REASON_UNAVAILABLE */
	__u32 len;          /* IP packet length from its header; skb->len when there is no parsed header */
	__s32 stack_id;     /* id in the `stacks` map with --stack; negative when not captured */
	__u32 ifindex;      /* receiving interface (skb_iif), else the skb's device; 0 when none */
	__u16 l3_proto;     /* ethertype (host order), e.g. 0x0800 IPv4, 0x86dd IPv6; 0 when unset */
	__u16 family;       /* AF_INET / AF_INET6; 0 when addresses are unknown */
	__u16 sport;        /* host order; 0 when unknown */
	__u16 dport;
	__u8 l4_proto;      /* IPPROTO_*; 0 with family 0 when unknown */
	__u8 tcp_flags;     /* TCP header flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128) */
	__u8 state;         /* TCP state of the socket when DROP_F_SOCKET, else 0 */
	__u8 flags;         /* enum drop_flags */
};

/* Summary-only runs (aggregate_in_kernel): no records, one per-CPU map entry per summary key instead. */
enum drop_agg_consts {
	DROP_AGG_LEN_BUCKETS = 33, /* log2 buckets of a u32 length: 0 for 0, k for [2^(k-1), 2^k) */
	DROP_AGG_FLAGS = DROP_F_RECEIVED | DROP_F_SOCK_TUPLE | DROP_F_NO_PORTS, /* what decides orientation */
	DROP_AGG_OTHER = 0x80,     /* drop_agg_key.flags: a drop folded into "other" (the key map was full) */
};

/* Exactly what the summary tables group by: remote endpoint/address and packet destination (from the
 * addresses, ports and orientation flags) x reason; location only where it decides purge vs drop. */
struct drop_agg_key {
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u64 location;     /* freeing function for SKB_DROP_REASON_NOT_SPECIFIED (purge or drop), for every reason in a
	                     * session's summaries (agg_session: the diagnoses weigh drops by function), else 0 */
	__u32 reason;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 l4_proto;
	__u8 flags;         /* drop_flags & DROP_AGG_FLAGS, or DROP_AGG_OTHER (addresses and ports zero) */
	__u8 tcp_flags;     /* SYN and ACK of a SYN or SYN-ACK (which side is the server: top, serve), else 0 */
	__u8 pad[3];        /* explicit: keys are compared as bytes */
	__u32 netns;        /* in a session's summaries (agg_session: top, serve): the namespace, else 0 */
	__u32 pad2;
};

/* Cumulative per CPU; user space sums the CPUs and takes differences between reads. */
struct drop_agg_value {
	__u64 count;
	__u64 bytes;
	__u64 first_ns;     /* bpf_ktime_get_ns() of the first and last drop */
	__u64 last_ns;
	__u32 min_len;
	__u32 max_len;
	__u64 len_log2[DROP_AGG_LEN_BUCKETS];
};

#endif
