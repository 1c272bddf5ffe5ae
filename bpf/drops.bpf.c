// SPDX-License-Identifier: GPL-2.0
/* netbpf drops: one record per packet the kernel drops, with the kernel's own drop reason.
 * Hooks, in order of preference: skb:kfree_skb (args skb, location, reason and, since 6.11-ish, rx_sk) as a
 * BTF-typed tracepoint, a raw tracepoint or the classic tracepoint (see tracepoints.bpf.h), and on kernels without
 * drop reasons (< 5.17) tcp_drop() via fentry or kprobe. Packets are parsed from the skb's own headers
 * (IPv4/IPv6 + TCP/UDP), bounds-checked; when the skb has no usable headers (queued data freed with its
 * socket) the socket's addresses are used instead and the record says so. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "tracepoints.bpf.h"
#include "agg.bpf.h"
#include "topk.bpf.h"
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/drops/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct drop_event);
NETBPF_CONTRACT(struct drop_view_key);
NETBPF_CONTRACT(struct drop_session_key);
NETBPF_CONTRACT(struct drop_agg_value);
NETBPF_CONTRACT(struct drop_top_slot);
NETBPF_CONTRACT(struct drop_top_bucket);
NETBPF_CONTRACT(struct drop_dest_state);
NETBPF_CONTRACT(struct drop_dest_slot);
NETBPF_CONTRACT(struct drop_dest_bucket);
NETBPF_CONTRACT(enum drop_flags);
NETBPF_CONTRACT(enum drop_reason_consts);
NETBPF_CONTRACT(enum drop_agg_consts);

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define NO_HEADER 0xffff       /* skb->*_header offset when not set (~0 in a u16) */
#define IP_OFFSET_MASK 0x1fff  /* fragment offset bits of iphdr.frag_off */
#define IPV6_HOPOPTS 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_DSTOPTS 60
#define MAX_IPV6_EXT_HEADERS 4

/* Only this L4 protocol (IPPROTO_TCP by default); 0 = every protocol (--all). */
const volatile __u8 filter_l4_proto = IPPROTO_TCP;
/* With --stack: capture the kernel stack into `stacks`. */
const volatile __u8 capture_stack = 0;
/* With --reason: only reasons whose bit is set (values below DROP_REASON_FILTER_BITS). */
const volatile __u32 filter_reason_count = 0;
const volatile __u64 filter_reasons[DROP_REASON_FILTER_BITS / 64] = {};

/* Summary-only runs: count each drop into the views' maps instead of sending a record (a drop flood then costs
 * a few map accesses, not a ring buffer record plus decoding in user space). */
const volatile __u8 aggregate_in_kernel = 0;
/* Buckets of the top-talker maps and of the destination front minus one (each a power of two), and the seed of
 * their hash. */
const volatile __u32 top_bucket_mask = 255;
const volatile __u32 dest_front_mask = 63;
const volatile __u64 top_hash_seed = 0;

/* A session's summaries (top, serve): drops counted by their two sides in `drop_session` only (the views above are
 * not read there); agg_key_ports 0 leaves the ports out (sessions grouped by address). */
const volatile __u8 agg_session = 0;
const volatile __u8 agg_key_ports = 1;

/* Destination view, front: where destinations are counted until their bucket is full (see struct
 * drop_dest_bucket): a hash of the key and a compare per slot, no hash map, no allocation. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct drop_dest_bucket);
} drop_dest_front SEC(".maps");

/* Destination view: per packet destination (daddr:dport) x reason, past the front, exact while the map has room;
 * user space sizes it (1 entry when not aggregating). No prealloc: memory grows with use (an insert can then fail
 * for lack of memory under a burst of new keys: the drop folds, and a later drop of that key tries again). */
struct {
#ifdef DROP_DEST_LRU /* measured against the sticky full flag (BENCHMARKS.md): not built by default */
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
#else
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
#endif
	__uint(max_entries, 16384);
	__type(key, struct drop_view_key);
	__type(value, struct drop_agg_value);
} drop_dest SEC(".maps");

/* Drops whose destination found `drop_dest` full: per reason (+ location), so totals per reason stay exact.
 * Preallocated (256 keys x 304 bytes per CPU): folding never fails for lack of memory. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct drop_view_key);
	__type(value, struct drop_agg_value);
} drop_dest_other SEC(".maps");

/* Remote views: top talkers by remote endpoint x reason and by remote address x reason (topk.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct drop_top_bucket);
} drop_top_endpoint SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct drop_top_bucket);
} drop_top_address SEC(".maps");

/* A session's view (struct drop_session_key): exact while it has room (user space sizes it: 1 entry outside
 * sessions), then per reason and function in the preallocated `drop_session_other`. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct drop_session_key);
	__type(value, struct drop_agg_value);
} drop_session SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, struct drop_session_key);
	__type(value, struct drop_agg_value);
} drop_session_other SEC(".maps");

/* Set when drop_session / drop_session_other found no room (agg_slot). */
volatile __u8 drop_session_full = 0;
volatile __u8 drop_session_other_full = 0;

/* The value new keys start from (a map value pointer, so it does not take 300 bytes of stack). */
static const struct drop_agg_value agg_zero;

/* Kernel stacks by id (with --stack). User space sizes it to 1 entry when stacks are off. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

/* skb->a->b...: a plain load where the program's arguments are BTF-typed (tp_btf: the verifier checks each
 * load, a few ns), a probe read elsewhere (raw_tp, classic tracepoint and kprobe pointers are plain numbers:
 * a helper call each, ~30 ns here). `btf` is a constant of each program, so only one side is compiled in. */
#define SKB_READ(btf, ptr, ...) ((btf) ? ___arrow(ptr, __VA_ARGS__) : BPF_CORE_READ(ptr, __VA_ARGS__))

/* What the packet parser found. */
struct parsed {
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u32 ip_len;  /* IP total length from the header; 0 when not parsed or unset (BIG TCP) */
	__u8 l4_proto;
	__u8 tcp_flags;
	__u8 flags;
};

/* The first bytes of a TCP header that matter here: ports (0..3) ... flags byte at 13; a UDP header's ports. */
#define L4_BYTES 14

/* The ports (and TCP flags) from the first bytes of the L4 header, `l4` (L4_BYTES, or 4 for UDP). */
static __always_inline void parse_l4_bytes(const __u8 *l4, struct parsed *p)
{
	p->sport = (l4[0] << 8) | l4[1];
	p->dport = (l4[2] << 8) | l4[3];
	if (p->l4_proto == IPPROTO_TCP)
		p->tcp_flags = l4[13];
}

static __always_inline bool has_ports(__u8 l4_proto)
{
	return l4_proto == IPPROTO_TCP || l4_proto == IPPROTO_UDP || l4_proto == IPPROTO_UDPLITE;
}

/* Reads the L4 ports (and TCP flags) at offset `off` of the skb's linear data, if they fit before tail. */
static __always_inline void parse_l4(const unsigned char *head, __u32 off, __u32 tail, struct parsed *p)
{
	__u8 l4[L4_BYTES];
	__u32 need = p->l4_proto == IPPROTO_TCP ? L4_BYTES : 4;
	if (!has_ports(p->l4_proto) || off + need > tail ||
	    bpf_probe_read_kernel(l4, p->l4_proto == IPPROTO_TCP ? L4_BYTES : 4, head + off)) {
		p->flags |= DROP_F_NO_PORTS;
		return;
	}
	parse_l4_bytes(l4, p);
}

/* Parses IPv4/IPv6 and TCP/UDP headers from skb->head + network_header. The transport header offset is
 * computed from the IP header (IHL, IPv6 extension headers), never taken from transport_header: on the
 * receive path it is unset (~0) or equal to the network header until the IP layer has run. */
static __always_inline bool parse_headers(const struct sk_buff *skb, struct parsed *p, const bool btf)
{
	const unsigned char *head = SKB_READ(btf, skb, head);
	__u32 nh = SKB_READ(btf, skb, network_header);
	__u32 tail = SKB_READ(btf, skb, tail); /* an offset from head on 64-bit kernels */
	__u16 proto = bpf_ntohs(SKB_READ(btf, skb, protocol));

	if (!head || nh == NO_HEADER)
		return false;
	if (proto == ETH_P_IP) {
		/* One read for the IP header and the L4 bytes after it when both fit (no IP options): floods are
		 * parsed with one helper call per packet. */
		struct {
			struct iphdr ip;
			__u8 l4[L4_BYTES];
		} h;
		bool with_l4 = nh + sizeof(h) <= tail;
		if (with_l4) {
			if (bpf_probe_read_kernel(&h, sizeof(h), head + nh))
				return false;
		} else if (nh + sizeof(h.ip) > tail || bpf_probe_read_kernel(&h.ip, sizeof(h.ip), head + nh)) {
			return false;
		}
		struct iphdr iph = h.ip;
		if (iph.version != 4 || iph.ihl < 5)
			return false;
		p->family = NETBPF_AF_INET;
		addr_from_v4(p->saddr, iph.saddr);
		addr_from_v4(p->daddr, iph.daddr);
		p->l4_proto = iph.protocol;
		p->ip_len = bpf_ntohs(iph.tot_len);
		p->flags |= DROP_F_HEADERS;
		if (bpf_ntohs(iph.frag_off) & IP_OFFSET_MASK)
			p->flags |= DROP_F_NO_PORTS; /* a later fragment: no L4 header in it */
		else if (with_l4 && iph.ihl == 5 && has_ports(p->l4_proto) &&
			 nh + sizeof(iph) + (p->l4_proto == IPPROTO_TCP ? L4_BYTES : 4) <= tail)
			parse_l4_bytes(h.l4, p);
		else
			parse_l4(head, nh + iph.ihl * 4, tail, p);
		return true;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6h;
		if (nh + sizeof(ip6h) > tail || bpf_probe_read_kernel(&ip6h, sizeof(ip6h), head + nh))
			return false;
		if (ip6h.version != 6)
			return false;
		p->family = NETBPF_AF_INET6;
		__builtin_memcpy(p->saddr, &ip6h.saddr, NETBPF_ADDR_LEN);
		__builtin_memcpy(p->daddr, &ip6h.daddr, NETBPF_ADDR_LEN);
		if (ip6h.payload_len)
			p->ip_len = sizeof(ip6h) + bpf_ntohs(ip6h.payload_len);
		p->flags |= DROP_F_HEADERS;
		__u8 next = ip6h.nexthdr;
		__u32 off = nh + sizeof(ip6h);
		for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
			__u8 ext[4];
			if (next != IPV6_HOPOPTS && next != IPV6_ROUTING && next != IPV6_DSTOPTS && next != IPV6_FRAGMENT)
				break;
			if (off + sizeof(ext) > tail || bpf_probe_read_kernel(ext, sizeof(ext), head + off)) {
				p->flags |= DROP_F_NO_PORTS;
				p->l4_proto = next;
				return true;
			}
			if (next == IPV6_FRAGMENT) {
				if (((ext[2] << 8) | ext[3]) & ~7) { /* fragment offset != 0 */
					p->flags |= DROP_F_NO_PORTS;
					p->l4_proto = ext[0];
					return true;
				}
				off += 8;
			} else {
				off += (ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		p->l4_proto = next;
		parse_l4(head, off, tail, p);
		return true;
	}
	return false;
}

/* Request and time-wait sockets share only sock_common with a full socket. */
static __always_inline bool full_socket(const struct sock *sk, const bool btf)
{
	__u8 state = SKB_READ(btf, sk, __sk_common.skc_state);
	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

static __always_inline bool reason_wanted(__u32 reason)
{
	/* Not drops: a freed skb that was used (consume) or not dropped at all. Values differ by kernel. */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_NOT_DROPPED_YET) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET))
		return false;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return false;
	if (!filter_reason_count)
		return true;
	if (reason >= DROP_REASON_FILTER_BITS)
		return false;
	/* The mask repeats the bound for the verifier (the compiler checks a copy of reason); the barrier
	 * keeps the compiler from dropping the mask as redundant. */
	__u32 word = reason / 64;
	barrier_var(word);
	word &= DROP_REASON_FILTER_BITS / 64 - 1;
	return filter_reasons[word] & (1ULL << (reason % 64));
}

/* Set when drop_dest / drop_dest_other found no room (agg.bpf.h): new keys then cost one lookup, no insert.
 * In a map rather than .bss so user space can read it by name (tests, the "map full" note). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_dest_state);
} drop_dest_state SEC(".maps");

/* The destination's value in the front: its slot, or a free slot it now takes; NULL when its bucket is full. */
static __always_inline struct drop_agg_value *front_value(const struct drop_view_key *k)
{
	__u32 h = topk_hash(k, sizeof(*k), top_hash_seed);
	__u32 index = h & dest_front_mask;
	struct drop_dest_bucket *b = bpf_map_lookup_elem(&drop_dest_front, &index);
	if (!b)
		return NULL;
	__u32 free = DROP_DEST_WAYS;
#pragma unroll
	for (__u32 i = 0; i < DROP_DEST_WAYS; i++) {
		if (!b->slots[i].value.count) {
			free = i; /* slots are taken in order and never given back: none after this one is taken */
			break;
		}
		if (b->hash[i] == h && topk_key_eq(&b->slots[i].key, k, sizeof(*k)))
			return &b->slots[i].value;
	}
	if (free == DROP_DEST_WAYS)
		return NULL;
	free &= DROP_DEST_WAYS - 1;
	__builtin_memcpy(&b->slots[free].key, k, sizeof(*k));
	b->hash[free] = h;
	return &b->slots[free].value;
}

/* Counts one drop of `len` bytes at `now` into a destination or session value. */
static __always_inline void drop_value_add(struct drop_agg_value *v, __u32 len, __u64 now)
{
	if (!v->count) {
		v->first_ns = now;
		v->min_len = len;
		v->max_len = len;
	}
	if (len < v->min_len)
		v->min_len = len;
	if (len > v->max_len)
		v->max_len = len;
	v->count++;
	v->bytes += len;
	v->last_ns = now;
	__u32 bucket = log2_bucket(len);
	/* Keep the bound check on the register that indexes: older verifiers (6.1) lose it across arithmetic. */
	barrier_var(bucket);
	if (bucket < DROP_AGG_LEN_BUCKETS)
		v->len_log2[bucket]++;
}

/* The destination view: exact per key in the front or, past it, in `drop_dest` while it has room; then per reason
 * in `drop_dest_other`. */
static __always_inline void count_destination(struct drop_view_key *k, __u32 len, __u64 now)
{
	struct drop_agg_value *v = front_value(k);
	if (!v)
		v = bpf_map_lookup_elem(&drop_dest, k);
	__u32 zero = 0;
	struct drop_dest_state *st = v ? NULL : bpf_map_lookup_elem(&drop_dest_state, &zero);
	if (st)
		v = agg_insert(&drop_dest, k, &agg_zero, &st->dest_full);
	if (!v) {
		/* Full: fold into "other" for this reason, never lose the drop silently. */
		__builtin_memset(k->addr, 0, NETBPF_ADDR_LEN);
		k->family = 0;
		k->port = 0;
		k->l4_proto = 0;
		k->flags = DROP_AGG_OTHER;
		if (st)
			v = agg_slot(&drop_dest_other, k, &agg_zero, &st->other_full);
		if (!v) {
			/* Both maps full (over 256 reason x location folds): counted as lost, reported as such. */
			__u64 *lost_count = bpf_map_lookup_elem(&lost, &zero);
			if (lost_count)
				__sync_fetch_and_add(lost_count, 1);
			return;
		}
	}
	drop_value_add(v, len, now);
}

/* A remote view: the key's slot among the top talkers of its bucket (space-saving, topk.bpf.h). */
static __always_inline void count_top(void *map, const struct drop_view_key *k, __u32 len, __u64 now)
{
	__u32 h = topk_hash(k, sizeof(*k), top_hash_seed);
	__u32 index = h & top_bucket_mask;
	struct drop_top_bucket *b = bpf_map_lookup_elem(map, &index);
	if (!b)
		return;
	bool fresh;
	__u32 i = TOPK_SLOT(b, k, h, &fresh);
	/* The verifier sees i in [0, DROP_TOP_SLOTS) on every path; the mask keeps it so on older ones. */
	i &= DROP_TOP_SLOTS - 1;
	struct drop_top_slot *s = &b->slots[i];
	if (fresh) {
		s->bytes = 0;
		s->first_ns = now;
	}
	b->count[i]++;
	s->bytes += len;
	s->last_ns = now;
}

/* The clock of first/last-seen times, per CPU: bpf_ktime_get_ns() costs ~40 ns on this VM, a drop flood's whole
 * budget; bpf_ktime_get_coarse_ns() is refused to tracing programs. So the clock is read once per tick and CPU:
 * `ns` is bpf_ktime_get_ns() at the first drop of jiffy `jiffies` on this CPU (a time at most one tick early). */
struct drop_clock {
	__u64 jiffies;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_clock);
} drop_clock SEC(".maps");

/* Nanoseconds of CLOCK_MONOTONIC, up to one tick early (exact on kernels without bpf_jiffies64, before 5.5). */
static __always_inline __u64 drop_time(void)
{
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_jiffies64))
		return bpf_ktime_get_ns();
	__u32 zero = 0;
	struct drop_clock *c = bpf_map_lookup_elem(&drop_clock, &zero);
	if (!c)
		return bpf_ktime_get_ns();
	__u64 j = bpf_jiffies64();
	if (c->jiffies != j) {
		c->jiffies = j;
		c->ns = bpf_ktime_get_ns();
	}
	return c->ns;
}

/* Counts one drop in each view: its destination (exact), its remote endpoint and its remote address (top talkers),
 * each map apart, so that churn in one view never folds another. */
static __always_inline void aggregate_drop(const struct parsed *p, __u32 reason, __u64 location, __u32 len)
{
	__u64 now = drop_time();
	struct drop_view_key k;
	__builtin_memset(&k, 0, sizeof(k));
	k.reason = reason;
	/* The generic reason (or none, before 5.17) is a purge or a drop depending on the function that freed the
	 * skb, which is then all there is to tell drops apart. */
	if (reason == DROP_REASON_UNAVAILABLE ||
	    (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED) &&
	     reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED)))
		k.location = location;
	k.family = p->family;
	k.l4_proto = p->l4_proto;
	k.flags = p->flags & DROP_AGG_FLAGS;

	/* Remote side: the source of a received packet, else its destination (socket tuples: the peer). */
	bool remote_is_source = (p->flags & DROP_F_RECEIVED) && !(p->flags & DROP_F_SOCK_TUPLE);
	__builtin_memcpy(k.addr, remote_is_source ? p->saddr : p->daddr, NETBPF_ADDR_LEN);
	k.port = remote_is_source ? p->sport : p->dport;
	count_top(&drop_top_endpoint, &k, len, now);
	/* The address view: one key per address and reason, whatever its ports, protocol or orientation. */
	k.port = 0;
	k.l4_proto = 0;
	k.flags = 0;
	count_top(&drop_top_address, &k, len, now);

	__builtin_memcpy(k.addr, p->daddr, NETBPF_ADDR_LEN);
	k.port = p->dport;
	k.l4_proto = p->l4_proto;
	k.flags = p->flags & DROP_AGG_FLAGS;
	count_destination(&k, len, now); /* last: a full map folds k in place */
}

/* A session's view: one key per drop's two sides, reason, function and namespace (struct drop_session_key). */
static __always_inline void count_session(const struct parsed *p, __u32 reason, __u64 location, __u32 len, __u32 netns)
{
	struct drop_session_key k;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.saddr, p->saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(k.daddr, p->daddr, NETBPF_ADDR_LEN);
	k.location = location;
	k.reason = reason;
	k.family = p->family;
	k.sport = agg_key_ports ? p->sport : 0;
	k.dport = agg_key_ports ? p->dport : 0;
	k.l4_proto = p->l4_proto;
	k.flags = p->flags & DROP_AGG_FLAGS;
	/* A SYN goes to the server, a SYN-ACK comes from it: kept so the session can place the drop. */
	if (p->tcp_flags & 0x02)
		k.tcp_flags = p->tcp_flags & 0x12;
	k.netns = netns;
	struct drop_agg_value *v = AGG_SLOT_OR_OTHER(&drop_session, &drop_session_other, &k, &agg_zero, &drop_session_full,
						     &drop_session_other_full, ({
		__builtin_memset(k.saddr, 0, NETBPF_ADDR_LEN);
		__builtin_memset(k.daddr, 0, NETBPF_ADDR_LEN);
		k.family = 0;
		k.sport = 0;
		k.dport = 0;
		k.l4_proto = 0;
		k.tcp_flags = 0;
		k.flags = DROP_AGG_OTHER;
	}));
	if (v)
		drop_value_add(v, len, drop_time());
}

/* `btf`: the program's pointers are BTF-typed (tp_btf), so fields are read with plain loads (SKB_READ). */
static __always_inline int record_drop(void *ctx, const struct sk_buff *skb, __u64 location, __u32 reason,
				       const struct sock *sk, const bool btf)
{
	if (reason != DROP_REASON_UNAVAILABLE && !reason_wanted(reason))
		return 0;
	if (!skb)
		return 0;

	struct parsed p = {};
	__u32 iif = SKB_READ(btf, skb, skb_iif);
	if (iif)
		p.flags |= DROP_F_RECEIVED;
	if (!sk) {
		sk = SKB_READ(btf, skb, sk);
		/* A packet that crossed from another namespace (veth) holds its sender's socket until the IP layer
		 * orphans it (ip_rcv_core, ipv6_rcv): that socket is not the receiver's, so it is not reported. */
		if (sk && iif && sock_netns(sk) != SKB_READ(btf, skb, dev, nd_net.net, ns.inum))
			sk = NULL;
	}
	if (!parse_headers(skb, &p, btf) && sk) {
		/* No usable headers (e.g. queued data freed with its socket): take the socket's own tuple. */
		struct sock_tuple t;
		if (!read_sock_tuple(sk, &t)) {
			p.family = t.family;
			__builtin_memcpy(p.saddr, t.saddr, NETBPF_ADDR_LEN);
			__builtin_memcpy(p.daddr, t.daddr, NETBPF_ADDR_LEN);
			p.sport = t.sport;
			p.dport = t.dport;
			p.flags |= DROP_F_SOCK_TUPLE;
		}
	}
	if (!p.l4_proto && sk)
		p.l4_proto = full_socket(sk, btf) ? BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) : IPPROTO_TCP;
	if (filter_l4_proto && p.l4_proto != filter_l4_proto)
		return 0;

	/* Filters apply to the local/remote orientation: the remote side of a received packet is its source. */
	if (filter_family || filter_lport || filter_rport || filter_cidr_count) {
		struct sock_tuple ft;
		bool remote_is_source = (p.flags & DROP_F_RECEIVED) && !(p.flags & DROP_F_SOCK_TUPLE);
		ft.family = p.family;
		if (remote_is_source) {
			__builtin_memcpy(ft.saddr, p.daddr, NETBPF_ADDR_LEN);
			__builtin_memcpy(ft.daddr, p.saddr, NETBPF_ADDR_LEN);
			ft.sport = p.dport;
			ft.dport = p.sport;
		} else {
			__builtin_memcpy(ft.saddr, p.saddr, NETBPF_ADDR_LEN);
			__builtin_memcpy(ft.daddr, p.daddr, NETBPF_ADDR_LEN);
			ft.sport = p.sport;
			ft.dport = p.dport;
		}
		if (!p.family || !tuple_wanted(&ft))
			return 0;
	}

	if (aggregate_in_kernel) {
		/* skb->len depends on how far the stack has pulled the packet; the IP length does not. */
		__u32 len = p.ip_len ? p.ip_len : SKB_READ(btf, skb, len);
		if (agg_session)
			count_session(&p, reason, location, len,
				      sk ? sock_netns(sk) : SKB_READ(btf, skb, dev, nd_net.net, ns.inum));
		else
			aggregate_drop(&p, reason, location, len);
		return 0;
	}

	struct drop_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->location = location;
	__builtin_memcpy(e->saddr, p.saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e->daddr, p.daddr, NETBPF_ADDR_LEN);
	if (sk)
		e->netns = sock_netns(sk);
	else
		e->netns = SKB_READ(btf, skb, dev, nd_net.net, ns.inum);
	e->reason = reason;
	/* skb->len depends on how far the stack has pulled the packet; the IP length does not. */
	e->len = p.ip_len ? p.ip_len : SKB_READ(btf, skb, len);
	e->stack_id = capture_stack ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	/* With a socket, skb->dev may hold a protocol's scratch value instead of a device pointer. */
	e->ifindex = iif ? iif : (sk ? 0 : SKB_READ(btf, skb, dev, ifindex));
	e->l3_proto = bpf_ntohs(SKB_READ(btf, skb, protocol));
	e->family = p.family;
	e->sport = p.sport;
	e->dport = p.dport;
	e->l4_proto = p.l4_proto;
	e->tcp_flags = p.tcp_flags;
	e->state = 0;
	if (sk) {
		p.flags |= DROP_F_SOCKET;
		if (p.l4_proto == IPPROTO_TCP)
			e->state = SKB_READ(btf, sk, __sk_common.skc_state);
	}
	e->flags = p.flags;
	submit_event(e);
	return 0;
}

/* The reason argument exists since 5.17, rx_sk since 6.12ish; the classic tracepoint record gained the same
 * fields at the same time, so CO-RE on its struct tells which arguments this kernel passes. Arguments the
 * kernel does not have are never read (the branch is removed at load). */
static __always_inline int on_kfree_skb(__u64 *ctx, struct sk_buff *skb, void *location, const bool btf)
{
	__u32 reason = DROP_REASON_UNAVAILABLE;
	const struct sock *rx_sk = NULL;
	if (bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->reason))
		reason = (__u32)ctx[2];
	if (bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->rx_sk))
		rx_sk = (const struct sock *)ctx[3];
	return record_drop(ctx, skb, (__u64)location, reason, rx_sk, btf);
}

/* TRACEPOINT_PROGRAMS (tracepoints.bpf.h) written out: the tp_btf body reads the skb with plain loads. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb_btf, struct sk_buff *skb, void *location)
{
	return on_kfree_skb(ctx, skb, location, true);
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(handle_kfree_skb_raw, struct sk_buff *skb, void *location)
{
	return on_kfree_skb(ctx, skb, location, false);
}

/* Classic tracepoint: the record's field offsets are relocated by CO-RE (rx_sk moved protocol and reason). */
SEC("tp/skb/kfree_skb")
int handle_kfree_skb_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = DROP_REASON_UNAVAILABLE;
	const struct sock *rx_sk = NULL;
	if (bpf_core_field_exists(ctx->reason))
		reason = ctx->reason;
	if (bpf_core_field_exists(ctx->rx_sk))
		rx_sk = ctx->rx_sk;
	return record_drop(ctx, ctx->skbaddr, (__u64)ctx->location, reason, rx_sk, false);
}

/* Kernels without drop reasons: TCP's own drop function (removed in 5.19), which has the socket. */
SEC("fentry/tcp_drop")
int BPF_PROG(handle_tcp_drop_fentry, struct sock *sk, struct sk_buff *skb)
{
	return record_drop(ctx, skb, 0, DROP_REASON_UNAVAILABLE, sk, false);
}

SEC("kprobe/tcp_drop")
int BPF_KPROBE(handle_tcp_drop_kprobe, struct sock *sk, struct sk_buff *skb)
{
	return record_drop(ctx, skb, 0, DROP_REASON_UNAVAILABLE, sk, false);
}
