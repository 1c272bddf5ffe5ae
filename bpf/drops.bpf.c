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
#include "drops.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/drops/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct drop_event);
NETBPF_CONTRACT(struct drop_agg_key);
NETBPF_CONTRACT(struct drop_agg_value);
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

/* Summary-only runs: count each drop into `drop_agg` instead of sending a record (a drop flood then costs
 * a map update, not a ring buffer record plus decoding in user space). */
const volatile __u8 aggregate_in_kernel = 0;
/* With aggregate_in_kernel: 0 keeps no ports in the summary keys (views that group by address: top, serve), so a
 * connection storm's one drop per connection does not make a key per connection. */
const volatile __u8 agg_key_ports = 1;
/* With aggregate_in_kernel, for a session's views (top, serve): keys keep the freeing function of every drop and the
 * namespace (what their diagnoses weigh drops by, and how the exporter leaves its own scrapes out). */
const volatile __u8 agg_session = 0;

/* Per summary key; user space sizes it (1 entry when not aggregating). No prealloc: memory grows with use. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct drop_agg_key);
	__type(value, struct drop_agg_value);
} drop_agg SEC(".maps");

/* Drops whose key found `drop_agg` full: per reason (+ location), so totals per reason stay exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct drop_agg_key);
	__type(value, struct drop_agg_value);
} drop_agg_other SEC(".maps");

/* The value new keys start from (a map value pointer, so it does not take 300 bytes of stack). */
static const struct drop_agg_value agg_zero;

/* Kernel stacks by id (with --stack). User space sizes it to 1 entry when stacks are off. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

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

/* Reads the L4 ports (and TCP flags) at offset `off` of the skb's linear data, if they fit before tail. */
static __always_inline void parse_l4(const unsigned char *head, __u32 off, __u32 tail, struct parsed *p)
{
	if (p->l4_proto == IPPROTO_TCP) {
		__u8 th[14]; /* ports (0..3) ... flags byte at 13 */
		if (off + sizeof(th) > tail || bpf_probe_read_kernel(th, sizeof(th), head + off))
			goto no_ports;
		p->sport = (th[0] << 8) | th[1];
		p->dport = (th[2] << 8) | th[3];
		p->tcp_flags = th[13];
		return;
	}
	if (p->l4_proto == IPPROTO_UDP || p->l4_proto == IPPROTO_UDPLITE) {
		__u8 uh[4];
		if (off + sizeof(uh) > tail || bpf_probe_read_kernel(uh, sizeof(uh), head + off))
			goto no_ports;
		p->sport = (uh[0] << 8) | uh[1];
		p->dport = (uh[2] << 8) | uh[3];
		return;
	}
no_ports:
	p->flags |= DROP_F_NO_PORTS;
}

/* Parses IPv4/IPv6 and TCP/UDP headers from skb->head + network_header. The transport header offset is
 * computed from the IP header (IHL, IPv6 extension headers), never taken from transport_header: on the
 * receive path it is unset (~0) or equal to the network header until the IP layer has run. */
static __always_inline bool parse_headers(const struct sk_buff *skb, struct parsed *p)
{
	const unsigned char *head = BPF_CORE_READ(skb, head);
	__u32 nh = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail); /* an offset from head on 64-bit kernels */
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));

	if (!head || nh == NO_HEADER)
		return false;
	if (proto == ETH_P_IP) {
		struct iphdr iph;
		if (nh + sizeof(iph) > tail || bpf_probe_read_kernel(&iph, sizeof(iph), head + nh))
			return false;
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
static __always_inline bool full_socket(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
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

/* floor(log2(v)) for v > 0. */
/* Set when drop_agg / drop_agg_other found no room (agg.bpf.h): new keys then skip the insert. */
volatile __u8 drop_agg_full = 0;
volatile __u8 drop_agg_other_full = 0;

static __always_inline void aggregate_drop(const struct parsed *p, __u32 reason, __u64 location, __u32 len, __u32 netns)
{
	struct drop_agg_key k;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.saddr, p->saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(k.daddr, p->daddr, NETBPF_ADDR_LEN);
	k.reason = reason;
	/* The generic reason is a purge or a drop depending on the function that freed the skb. */
	if (agg_session || (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED) &&
			    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED)))
		k.location = location;
	k.netns = netns;
	k.family = p->family;
	k.sport = agg_key_ports ? p->sport : 0;
	k.dport = agg_key_ports ? p->dport : 0;
	k.l4_proto = p->l4_proto;
	k.flags = p->flags & DROP_AGG_FLAGS;
	/* A SYN goes to the server, a SYN-ACK comes from it: kept so the views can place the drop (tcp_flags & SYN). */
	if (p->tcp_flags & 0x02)
		k.tcp_flags = p->tcp_flags & 0x12;

	struct drop_agg_value *v = agg_slot(&drop_agg, &k, &agg_zero, &drop_agg_full);
	if (!v) {
		/* Full: fold into "other" for this reason, never lose the drop silently. */
		__builtin_memset(k.saddr, 0, NETBPF_ADDR_LEN);
		__builtin_memset(k.daddr, 0, NETBPF_ADDR_LEN);
		k.family = 0;
		k.sport = 0;
		k.dport = 0;
		k.l4_proto = 0;
		k.flags = DROP_AGG_OTHER;
		k.tcp_flags = 0;
		k.netns = 0;
		v = agg_slot(&drop_agg_other, &k, &agg_zero, &drop_agg_other_full);
		if (!v) {
			/* Both maps full (over 1024 reason x location folds): counted as lost, reported as such. */
			__u32 zero = 0;
			__u64 *lost_count = bpf_map_lookup_elem(&lost, &zero);
			if (lost_count)
				__sync_fetch_and_add(lost_count, 1);
			return;
		}
	}
	__u64 now = bpf_ktime_get_ns();
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

static __always_inline int record_drop(void *ctx, const struct sk_buff *skb, __u64 location, __u32 reason,
				       const struct sock *sk)
{
	if (reason != DROP_REASON_UNAVAILABLE && !reason_wanted(reason))
		return 0;
	if (!skb)
		return 0;

	struct parsed p = {};
	__u32 iif = BPF_CORE_READ(skb, skb_iif);
	if (iif)
		p.flags |= DROP_F_RECEIVED;
	if (!sk) {
		sk = BPF_CORE_READ(skb, sk);
		/* A packet that crossed from another namespace (veth) holds its sender's socket until the IP layer
		 * orphans it (ip_rcv_core, ipv6_rcv): that socket is not the receiver's, so it is not reported. */
		if (sk && iif && sock_netns(sk) != BPF_CORE_READ(skb, dev, nd_net.net, ns.inum))
			sk = NULL;
	}
	if (!parse_headers(skb, &p) && sk) {
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
		p.l4_proto = full_socket(sk) ? BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) : IPPROTO_TCP;
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
		__u32 netns = !agg_session ? 0 : sk ? sock_netns(sk) : BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
		aggregate_drop(&p, reason, location, p.ip_len ? p.ip_len : BPF_CORE_READ(skb, len), netns);
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
		e->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	e->reason = reason;
	/* skb->len depends on how far the stack has pulled the packet; the IP length does not. */
	e->len = p.ip_len ? p.ip_len : BPF_CORE_READ(skb, len);
	e->stack_id = capture_stack ? bpf_get_stackid(ctx, &stacks, 0) : -1;
	/* With a socket, skb->dev may hold a protocol's scratch value instead of a device pointer. */
	e->ifindex = iif ? iif : (sk ? 0 : BPF_CORE_READ(skb, dev, ifindex));
	e->l3_proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	e->family = p.family;
	e->sport = p.sport;
	e->dport = p.dport;
	e->l4_proto = p.l4_proto;
	e->tcp_flags = p.tcp_flags;
	e->state = 0;
	if (sk) {
		p.flags |= DROP_F_SOCKET;
		if (p.l4_proto == IPPROTO_TCP)
			e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	}
	e->flags = p.flags;
	submit_event(e);
	return 0;
}

/* The reason argument exists since 5.17, rx_sk since 6.12ish; the classic tracepoint record gained the same
 * fields at the same time, so CO-RE on its struct tells which arguments this kernel passes. Arguments the
 * kernel does not have are never read (the branch is removed at load). */
static __always_inline int on_kfree_skb(__u64 *ctx, struct sk_buff *skb, void *location)
{
	__u32 reason = DROP_REASON_UNAVAILABLE;
	const struct sock *rx_sk = NULL;
	if (bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->reason))
		reason = (__u32)ctx[2];
	if (bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->rx_sk))
		rx_sk = (const struct sock *)ctx[3];
	return record_drop(ctx, skb, (__u64)location, reason, rx_sk);
}

TRACEPOINT_PROGRAMS(kfree_skb, handle_kfree_skb, on_kfree_skb(ctx, skb, location), struct sk_buff *skb, void *location)

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
	return record_drop(ctx, ctx->skbaddr, (__u64)ctx->location, reason, rx_sk);
}

/* Kernels without drop reasons: TCP's own drop function (removed in 5.19), which has the socket. */
SEC("fentry/tcp_drop")
int BPF_PROG(handle_tcp_drop_fentry, struct sock *sk, struct sk_buff *skb)
{
	return record_drop(ctx, skb, 0, DROP_REASON_UNAVAILABLE, sk);
}

SEC("kprobe/tcp_drop")
int BPF_KPROBE(handle_tcp_drop_kprobe, struct sock *sk, struct sk_buff *skb)
{
	return record_drop(ctx, skb, 0, DROP_REASON_UNAVAILABLE, sk);
}
