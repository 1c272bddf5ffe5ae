// SPDX-License-Identifier: GPL-2.0
/* netbpf retrans: one record per TCP retransmit (data, SYN and SYN-ACK).
 * Hooks (each tp_btf, else raw_tp, else the classic tracepoint: see tracepoints.bpf.h): tcp:tcp_retransmit_skb;
 * tcp:tcp_retransmit_synack; and sock:inet_sock_set_state to remember, in process context, which process
 * opened a connection. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "tracepoints.bpf.h"
#include "agg.bpf.h"
#include "owner.bpf.h"
#include "retrans.h"
#include "retrans.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/retrans/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct retrans_event);
NETBPF_CONTRACT(enum retrans_kind);
NETBPF_CONTRACT(struct retrans_agg_key);
NETBPF_CONTRACT(struct retrans_agg_value);
NETBPF_CONTRACT(enum retrans_agg_consts);

/* Loss-probe timer id from include/net/inet_connection_sock.h (a #define, so not in BTF; stable since 3.10). */
#define ICSK_TIME_LOSS_PROBE 5

static __always_inline __u8 retrans_kind(const struct sock *sk, __u8 state)
{
	const struct inet_connection_sock *icsk = (const struct inet_connection_sock *)sk;
	if (state == TCP_SYN_SENT)
		return RETRANS_SYN;
	/* Timer retransmits enter Loss first; recovery is fast retransmit (dupacks, SACK, RACK). */
	__u8 ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	if (ca_state == bpf_core_enum_value(enum tcp_ca_state, TCP_CA_Loss))
		return RETRANS_RTO;
	if (ca_state == bpf_core_enum_value(enum tcp_ca_state, TCP_CA_Recovery))
		return RETRANS_FAST;
	/* A loss probe is sent from the probe timer while the connection is still Open/Disorder. */
	if (BPF_CORE_READ(icsk, icsk_pending) == ICSK_TIME_LOSS_PROBE)
		return RETRANS_TLP;
	if (ca_state == bpf_core_enum_value(enum tcp_ca_state, TCP_CA_Disorder))
		return RETRANS_FAST;
	return RETRANS_OTHER;
}

static __always_inline int record_retransmit(const struct sock *sk, const struct sk_buff *skb, int err)
{
	struct sock_tuple t;
	if (read_sock_tuple(sk, &t) || !tuple_wanted(&t))
		return 0;

	struct retrans_event e;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	const struct inet_connection_sock *icsk = (const struct inet_connection_sock *)sk;
	const struct tcp_skb_cb *cb = (const void *)__builtin_preserve_access_index(&skb->cb);
	struct sock_owner *o = owner_of(sk);

	e.ts_ns = bpf_ktime_get_ns();
	e.cgroup_id = sock_cgroup_id(sk);
	__builtin_memcpy(e.saddr, t.saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e.daddr, t.daddr, NETBPF_ADDR_LEN);
	e.netns = sock_netns(sk);
	e.srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e.segs = BPF_CORE_READ(cb, tcp_gso_segs);
	if (!e.segs)
		e.segs = 1;
	e.total_retrans = BPF_CORE_READ(tp, total_retrans);
	e.segs_out = BPF_CORE_READ(tp, segs_out);
	e.err = err;
	e.family = t.family;
	e.sport = t.sport;
	e.dport = t.dport;
	e.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e.kind = retrans_kind(sk, e.state);
	e.ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	e.retransmits = BPF_CORE_READ(icsk, icsk_retransmits);
	if (o) {
		e.pid = o->pid;
		__builtin_memcpy(e.comm, o->comm, NETBPF_COMM_LEN);
	} else {
		e.pid = 0;
		__builtin_memset(e.comm, 0, NETBPF_COMM_LEN);
	}
	__builtin_memset(e.pad, 0, sizeof(e.pad));
	deliver(&e, sk);
	return 0;
}

/* The tracepoint's third argument (err) exists since Linux 6.11; the same kernels renamed the classic
 * tracepoint's record to trace_event_raw_tcp_retransmit_skb with an err field, which CO-RE can test. */
static __always_inline int on_retransmit(__u64 *ctx, const struct sock *sk, const struct sk_buff *skb)
{
	int err = 0;
	if (bpf_core_field_exists(((struct trace_event_raw_tcp_retransmit_skb *)0)->err))
		err = (int)ctx[2];
	return record_retransmit(sk, skb, err);
}

TRACEPOINT_PROGRAMS(tcp_retransmit_skb, handle_retransmit, on_retransmit(ctx, sk, skb),
		    const struct sock *sk, const struct sk_buff *skb)

/* Classic tracepoint: only the stable leading fields (skbaddr, skaddr) are used; the rest comes from the
 * socket itself, as on the tp_btf path. */
SEC("tp/tcp/tcp_retransmit_skb")
int handle_retransmit_tp(struct tp_tcp_sk_skb *ctx)
{
	int err = 0;
	/* err sits after the addresses in kernels >= 6.11; its offset comes from the running kernel's BTF. */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err))
		err = *(int *)((void *)ctx + bpf_core_field_offset(struct trace_event_raw_tcp_retransmit_skb, err));
	return record_retransmit((const struct sock *)ctx->skaddr, (const struct sk_buff *)ctx->skbaddr, err);
}

/* A SYN-ACK retransmitted by a listener, for the connection `t` describes (local = listener side). */
static __always_inline int record_synack(const struct sock *listener, const struct sock_tuple *t)
{
	if (!tuple_wanted(t))
		return 0;
	struct retrans_event e;
	__builtin_memset(&e, 0, sizeof(e));
	e.ts_ns = bpf_ktime_get_ns();
	e.cgroup_id = sock_cgroup_id(listener);
	__builtin_memcpy(e.saddr, t->saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e.daddr, t->daddr, NETBPF_ADDR_LEN);
	e.netns = sock_netns(listener);
	e.segs = 1;
	e.family = t->family;
	e.sport = t->sport;
	e.dport = t->dport;
	e.state = TCP_SYN_RECV;
	e.kind = RETRANS_SYNACK;
	deliver(&e, NULL);
	return 0;
}

/* The request socket starts with a sock_common like a full socket: its addresses and ports are read the
 * same way (skc_num is the local port, skc_dport the peer's). */
static __always_inline int on_retransmit_synack(const struct sock *listener, const struct request_sock *req)
{
	struct sock_tuple t;
	if (read_sock_tuple((const struct sock *)req, &t))
		return 0;
	/* An IPv4 SYN to a dual-stack IPv6 listener: the request takes the listener's family, but only its IPv4
	 * addresses are set (the child socket will carry them IPv4-mapped, as they are reported here). */
	if (t.family == NETBPF_AF_INET6 && BPF_CORE_READ(req, rsk_ops, family) == NETBPF_AF_INET) {
		addr_from_v4(t.saddr, BPF_CORE_READ(req, __req_common.skc_rcv_saddr));
		addr_from_v4(t.daddr, BPF_CORE_READ(req, __req_common.skc_daddr));
	}
	return record_synack(listener, &t);
}

TRACEPOINT_PROGRAMS(tcp_retransmit_synack, handle_retransmit_synack, on_retransmit_synack(sk, req),
		    const struct sock *sk, const struct request_sock *req)

/* Classic tracepoint: its address fields changed across kernels (a family field was added after 5.10, which
 * moved the addresses), so the request socket the record points to is read instead, as on the tp_btf path. */
struct retransmit_synack_args {
	__u64 common;
	const void *skaddr;
	const void *req;
};

SEC("tp/tcp/tcp_retransmit_synack")
int handle_retransmit_synack_tp(struct retransmit_synack_args *ctx)
{
	return on_retransmit_synack((const struct sock *)ctx->skaddr, (const struct request_sock *)ctx->req);
}

/* Owners, when no other object of the session keeps them (life does): connect() moves a socket CLOSE -> SYN_SENT
 * in the caller's context (remember the caller); a listener's new child at a reused address makes what was known
 * about that address stale; tcp_destroy_sock ends the socket. */
static __always_inline int on_set_state(const struct sock *sk, int newstate)
{
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT)
		owner_capture_connect(sk);
	else if (newstate == TCP_SYN_RECV)
		owner_forget(sk);
	return 0;
}

TRACEPOINT_PROGRAMS(inet_sock_set_state, handle_set_state, on_set_state(sk, newstate),
		    const struct sock *sk, int oldstate, int newstate)

SEC("tp/sock/inet_sock_set_state")
int handle_set_state_tp(struct tp_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return on_set_state((const struct sock *)ctx->skaddr, ctx->newstate);
}

static __always_inline int on_destroy(const struct sock *sk)
{
	owner_forget(sk);
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_destroy_sock, handle_destroy, on_destroy(sk), const struct sock *sk)

SEC("tp/tcp/tcp_destroy_sock")
int handle_destroy_tp(struct tp_tcp_sk *ctx)
{
	return on_destroy(ctx->skaddr);
}
