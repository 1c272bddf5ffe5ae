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

/* Summary-only runs (aggregate_in_kernel): no records; each view of the summary is counted in its own map. */
enum drop_agg_consts {
	DROP_AGG_LEN_BUCKETS = 33, /* log2 buckets of a u32 length: 0 for 0, k for [2^(k-1), 2^k) */
	DROP_AGG_FLAGS = DROP_F_RECEIVED | DROP_F_SOCK_TUPLE | DROP_F_NO_PORTS, /* what decides orientation */
	DROP_AGG_OTHER = 0x80,     /* drop_view_key.flags: a drop folded into "other" (the destination map was full) */
	DROP_TOP_SLOTS = 4,        /* slots per bucket of the top-talker maps (space-saving per bucket, topk.bpf.h) */
	DROP_DEST_WAYS = 4,        /* slots per bucket of the destination front (`drop_dest_front`) */
};

/* One row of a view: an address and port (the packet's destination, or its remote side), the reason, and what
 * decides the row's meaning: orientation flags, protocol (whether the ports are known) and, for
 * SKB_DROP_REASON_NOT_SPECIFIED, the freeing function (purge or drop). Compared as bytes: padding is explicit. */
struct drop_view_key {
	__u8 addr[NETBPF_ADDR_LEN];
	__u64 location;     /* freeing function for NOT_SPECIFIED or no reason (purge or drop), else 0 */
	__u32 reason;
	__u16 family;       /* 0 with DROP_AGG_OTHER */
	__u16 port;
	__u8 l4_proto;
	__u8 flags;         /* drop_flags & DROP_AGG_FLAGS, or DROP_AGG_OTHER (address and port zero) */
	__u8 pad[6];
};

/* A session's view (top, serve: agg_session): every drop by its packet's two sides, so the session places it as the
 * event path does (core/placement.ts), with the freeing function of every drop and the namespace (what the
 * diagnoses weigh drops by, and how the exporter leaves its own scrapes out). Counted in `drop_session` (exact
 * while it has room), then per reason in `drop_session_other`; values are struct drop_agg_value. */
struct drop_session_key {
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u64 location;     /* the freeing function */
	__u32 reason;
	__u16 family;       /* 0 with DROP_AGG_OTHER */
	__u16 sport;        /* 0 without agg_key_ports (views by address: a storm's drops are one per connection) */
	__u16 dport;
	__u8 l4_proto;
	__u8 flags;         /* drop_flags & DROP_AGG_FLAGS, or DROP_AGG_OTHER (addresses and ports zero) */
	__u8 tcp_flags;     /* SYN and ACK of a SYN or SYN-ACK (which side is the server), else 0 */
	__u8 pad[3];        /* explicit: keys are compared as bytes */
	__u32 netns;
	__u32 pad2;
};

/* Destination view (`drop_dest`, exact): cumulative per CPU; user space sums the CPUs and takes differences. */
struct drop_agg_value {
	__u64 count;
	__u64 bytes;
	__u64 first_ns;     /* bpf_ktime_get_ns() of the first and last drop */
	__u64 last_ns;
	__u32 min_len;
	__u32 max_len;
	__u64 len_log2[DROP_AGG_LEN_BUCKETS];
};

/* The destination view's front (`drop_dest_front`, a per-CPU array: preallocated, so no insert can fail for lack
 * of memory): a destination takes a free slot of the bucket its hash picks and keeps it for the run (nothing is
 * evicted: counts stay exact); one whose bucket is full goes to `drop_dest`. A slot with value.count 0 is free. */
struct drop_dest_slot {
	struct drop_view_key key;
	struct drop_agg_value value;
};

struct drop_dest_bucket {
	__u32 hash[DROP_DEST_WAYS];   /* each slot's key hash: keys are compared only where it matches */
	struct drop_dest_slot slots[DROP_DEST_WAYS];
};

/* Whether `drop_dest` / `drop_dest_other` found no room (sticky: set once per run, see agg_slot in agg.bpf.h). */
struct drop_dest_state {
	__u8 dest_full;
	__u8 other_full;
	__u8 pad[6];
};

/* Remote views (`drop_top_endpoint`, `drop_top_address`): one space-saving slot (topk.bpf.h), the rest of it (the
 * counts and key hashes of a bucket sit together in its first cache line, so a miss reads one line). count - err
 * drops were counted since the key took the slot, with their bytes and times; count bounds its drops from above. */
struct drop_top_slot {
	struct drop_view_key key;
	__u64 err;
	__u64 bytes;        /* of the count - err drops since the key took the slot */
	__u64 first_ns;     /* when the key took the slot, and its last drop */
	__u64 last_ns;
};

struct drop_top_bucket {
	__u64 count[DROP_TOP_SLOTS];
	__u32 hash[DROP_TOP_SLOTS];   /* each slot's key hash: keys are compared only where it matches */
	struct drop_top_slot slots[DROP_TOP_SLOTS];
};

#endif
