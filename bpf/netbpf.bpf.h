/* Kernel-side helpers shared by netbpf's BPF programs: the event ring buffer with its loss counter and
 * wakeup policy, socket address extraction, and the kernel-side filters set from user space before load. */
#ifndef NETBPF_BPF_H
#define NETBPF_BPF_H

#include "netbpf.h"

/* The record contract (like bpf2go's -type): each anchor keeps a type in this object's BTF even when no code
 * names it (enums used only for their constants are not emitted otherwise), and marks it as shared with user
 * space. scripts/gen-contract.mjs generates TypeScript from the anchored types: NETBPF_CONTRACT in a tool's
 * .bpf.c -> src/tools/<tool>/bpf.gen.ts; NETBPF_CONTRACT_CORE (netbpf.h, below) -> src/core/netbpf.gen.ts. */
#define NETBPF_ANCHOR_(prefix, type, n) const type *prefix##n __attribute__((unused))
#define NETBPF_ANCHOR(prefix, type, n) NETBPF_ANCHOR_(prefix, type, n)
#define NETBPF_CONTRACT(type) NETBPF_ANCHOR(netbpf_contract_, type, __COUNTER__)
#define NETBPF_CONTRACT_CORE(type) NETBPF_ANCHOR(netbpf_contract_core_, type, __COUNTER__)

NETBPF_CONTRACT_CORE(struct netbpf_cidr);
NETBPF_CONTRACT_CORE(enum netbpf_family);
NETBPF_CONTRACT_CORE(enum netbpf_limits);
NETBPF_CONTRACT_CORE(enum netbpf_owner_source);

/* One ring buffer per tool; user space sizes it before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

/* Records the ring buffer could not take, counted where it happens (per CPU, summed by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Wakeups cost microseconds each: submit without one, and let the consumer's timed poll pick records up,
 * unless this much data is waiting (then wake it so the buffer does not fill). 0 = wake on every record. */
const volatile __u64 wakeup_bytes = 256 * 1024;

/* Kernel-side filters, set before load; zero means "any". Ports in host order. */
const volatile __u16 filter_family = 0;
const volatile __u16 filter_lport = 0;
const volatile __u16 filter_rport = 0;
const volatile __u32 filter_cidr_count = 0;
const volatile struct netbpf_cidr filter_cidrs[NETBPF_MAX_CIDRS] = {};

static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *count = bpf_map_lookup_elem(&lost, &zero);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
	return e;
}

static __always_inline void submit_event(void *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (!wakeup_bytes || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/* IPv4 address (network order) into the 16-byte IPv4-mapped form. */
static __always_inline void addr_from_v4(__u8 out[NETBPF_ADDR_LEN], __u32 v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &v4, 4);
}

/* The fields of a socket that every netbpf event carries. */
struct sock_tuple {
	__u8 saddr[NETBPF_ADDR_LEN];
	__u8 daddr[NETBPF_ADDR_LEN];
	__u16 family;
	__u16 sport;
	__u16 dport;
};

static __always_inline int read_sock_tuple(const struct sock *sk, struct sock_tuple *t)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == NETBPF_AF_INET) {
		addr_from_v4(t->saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		addr_from_v4(t->daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else if (t->family == NETBPF_AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return -1;
	}
	return 0;
}

static __always_inline bool cidr_match(const __u8 addr[NETBPF_ADDR_LEN], const volatile struct netbpf_cidr *c)
{
	for (int i = 0; i < NETBPF_ADDR_LEN; i++) {
		int bits = (int)c->prefix_len - 8 * i;
		if (bits <= 0)
			break;
		__u8 mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[i] ^ c->addr[i]) & mask)
			return false;
	}
	return true;
}

/* True when an event for this tuple passes the filters set from user space. */
static __always_inline bool tuple_wanted(const struct sock_tuple *t)
{
	if (filter_family && t->family != filter_family)
		return false;
	if (filter_lport && t->sport != filter_lport)
		return false;
	if (filter_rport && t->dport != filter_rport)
		return false;
	if (!filter_cidr_count)
		return true;
	for (int i = 0; i < NETBPF_MAX_CIDRS; i++) {
		if (i >= filter_cidr_count)
			break;
		if (cidr_match(t->daddr, &filter_cidrs[i]))
			return true;
	}
	return false;
}

/* Network namespace inode and cgroup v2 id of the socket (not of whatever task is on the CPU). */
static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return 0;
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

#endif
