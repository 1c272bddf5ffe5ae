// SPDX-License-Identifier: GPL-2.0
/* netbpf life: one record when a TCP connection is established and one when it closes (like tcplife),
 * with bytes each way, retransmits, RTT, the owning process and why it closed.
 * Hooks (each tp_btf, else raw_tp, else the classic tracepoint: see tracepoints.bpf.h):
 * sock:inet_sock_set_state; tcp:tcp_send_reset and tcp:tcp_receive_reset to remember resets;
 * sock:sock_recv_length / sock:sock_send_length (else fentry, else kprobe on tcp_recvmsg / tcp_sendmsg) to
 * learn, in process context, which process owns an accepted connection (its handshake completes in softirq). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "tracepoints.bpf.h"
#include "life.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/life/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct life_event);
NETBPF_CONTRACT(enum life_kind);
NETBPF_CONTRACT(enum life_direction);
NETBPF_CONTRACT(enum life_owner_source);
NETBPF_CONTRACT(enum life_flags);

/* What is known about a live connection between its first state change and its close. */
struct birth {
	__u64 ts_ns;
	__u64 established_ns;
	__u32 pid;
	__u8 direction;
	__u8 flags;
	__u8 owner_source;
	__u8 pad;
	char comm[NETBPF_COMM_LEN];
};

/* Socket -> birth. A plain hash (not LRU) so a live connection is never evicted silently: when it is
 * full, new connections are not tracked and `untracked` counts them. Entries are removed at TCP_CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct birth);
} births SEC(".maps");

/* Connections not tracked because `births` was full (per CPU, summed by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} untracked SEC(".maps");

static __always_inline void count_untracked(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&untracked, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Only called from hooks that run in the task that owns the socket. */
static __always_inline void capture_owner(struct birth *b, __u8 source)
{
	b->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(b->comm, sizeof(b->comm));
	b->owner_source = source;
}

static __always_inline void emit(const struct sock *sk, const struct birth *b, __u8 kind, int oldstate, __u64 now)
{
	struct sock_tuple t;
	if (read_sock_tuple(sk, &t))
		return;
	/* skc_num is cleared when the port is released, before the move to CLOSE; inet_sport is not. */
	t.sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	if (!tuple_wanted(&t))
		return;
	struct life_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	e->ts_ns = now;
	e->birth_ns = b->ts_ns;
	e->established_ns = b->established_ns;
	e->cgroup_id = sock_cgroup_id(sk);
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	__builtin_memcpy(e->saddr, t.saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e->daddr, t.daddr, NETBPF_ADDR_LEN);
	e->netns = sock_netns(sk);
	e->pid = b->pid;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->segs_out = BPF_CORE_READ(tp, segs_out);
	e->segs_in = BPF_CORE_READ(tp, segs_in);
	e->sk_err = BPF_CORE_READ(sk, sk_err);
	e->family = t.family;
	e->sport = t.sport;
	e->dport = t.dport;
	e->kind = kind;
	e->direction = b->direction;
	e->old_state = oldstate;
	e->flags = b->flags;
	/* bytes_received counts the FIN's sequence number; tcp_fin() sets SOCK_DONE (bit from BTF, via CO-RE). */
	if (BPF_CORE_READ(sk, __sk_common.skc_flags) & (1ULL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		e->flags |= LIFE_FIN_RECEIVED;
	e->owner_source = b->owner_source;
	e->pad = 0;
	__builtin_memcpy(e->comm, b->comm, NETBPF_COMM_LEN);
	submit_event(e);
}

/* RCV_SHUTDOWN | SEND_SHUTDOWN (include/net/sock.h): what close() sets before it tears the connection down. */
#define NB_SHUTDOWN_MASK 3

/* Inside its owner's close() (both directions shut down) with received bytes not read: __tcp_close() counts them
 * (the peer's FIN aside), moves the socket to CLOSE and then sends a RST (TCPAbortOnClose). copied_seq is not
 * advanced when close() frees the unread data, so rcv_nxt - copied_seq still shows it here. */
static __always_inline bool closed_with_unread_data(const struct sock *sk)
{
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) != NB_SHUTDOWN_MASK)
		return false;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 unread = BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq);
	/* A FIN received and not read by the application takes one sequence number but is no data. */
	if (unread && BPF_CORE_READ(sk, __sk_common.skc_flags) & (1ULL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		unread--;
	return unread > 0;
}

static __always_inline int on_set_state(const struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;
	__u64 now = bpf_ktime_get_ns();

	/* Birth: connect() (in the connecting task) or a listener's new child (in softirq: owner unknown yet). */
	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		struct birth b = { .ts_ns = now };
		if (newstate == TCP_SYN_SENT) {
			b.direction = LIFE_DIR_CONNECT;
			capture_owner(&b, LIFE_OWNER_CONNECT);
		} else {
			b.direction = LIFE_DIR_ACCEPT;
		}
		if (bpf_map_update_elem(&births, &key, &b, BPF_ANY))
			count_untracked();
		return 0;
	}

	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (!b)
		return 0; /* born before the trace started (or untracked): no lifetime to report */

	if (newstate == TCP_ESTABLISHED) {
		b->established_ns = now;
		emit(sk, b, LIFE_ESTABLISHED, oldstate, now);
		return 0;
	}
	/* close()/shutdown() start the FIN exchange in the owning task. */
	if ((newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) && b->owner_source == LIFE_OWNER_NONE) {
		capture_owner(b, LIFE_OWNER_CLOSE);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		/* A close() with received data unread resets the connection, but the kernel moves the socket to CLOSE
		 * first and sends the RST after (tcp:tcp_send_reset comes too late for this record): decide it here,
		 * by the condition __tcp_close() itself tests. */
		if ((oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT) && closed_with_unread_data(sk)) {
			b->flags |= LIFE_RST_SENT | LIFE_RST_UNREAD;
			if (b->owner_source == LIFE_OWNER_NONE)
				capture_owner(b, LIFE_OWNER_CLOSE);
		}
		emit(sk, b, LIFE_CLOSED, oldstate, now);
		bpf_map_delete_elem(&births, &key);
	}
	return 0;
}

TRACEPOINT_PROGRAMS(inet_sock_set_state, handle_set_state, on_set_state(sk, oldstate, newstate),
		    const struct sock *sk, int oldstate, int newstate)

/* Classic tracepoint: stable leading fields since 4.16. */
SEC("tp/sock/inet_sock_set_state")
int handle_set_state_tp(struct tp_inet_sock_set_state *ctx)
{
	return on_set_state((const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
}

/* Only sockets with a birth record (TCP, born during the trace) are marked: the lookup is the filter. */
static __always_inline int mark(const void *sk, __u8 flag)
{
	__u64 key = (__u64)sk;
	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (b)
		b->flags |= flag;
	return 0;
}

/* Resets sent: sk may be NULL (no socket) or a timewait/request socket, which are never in births. */
TRACEPOINT_PROGRAMS(tcp_send_reset, handle_send_reset, mark(sk, LIFE_RST_SENT),
		    const struct sock *sk, const struct sk_buff *skb)

SEC("tp/tcp/tcp_send_reset")
int handle_send_reset_tp(struct tp_tcp_sk_skb *ctx)
{
	return mark(ctx->skaddr, LIFE_RST_SENT);
}

TRACEPOINT_PROGRAMS(tcp_receive_reset, handle_receive_reset, mark(sk, LIFE_RST_RECEIVED), const struct sock *sk)

SEC("tp/tcp/tcp_receive_reset")
int handle_receive_reset_tp(struct tp_tcp_sk *ctx)
{
	return mark(ctx->skaddr, LIFE_RST_RECEIVED);
}

/* recvmsg()/sendmsg() run in the task that owns the socket: the first one names an accepted connection's
 * owner. These fire for every socket of the host; one hash lookup is the whole cost for sockets without a
 * birth record (non-TCP, or born before the trace). */
static __always_inline int on_sock_io(const struct sock *sk, __u8 source)
{
	__u64 key = (__u64)sk;
	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (b && b->owner_source == LIFE_OWNER_NONE)
		capture_owner(b, source);
	return 0;
}

TRACEPOINT_PROGRAMS(sock_recv_length, handle_recv_length, on_sock_io(sk, LIFE_OWNER_RECV), const struct sock *sk)
TRACEPOINT_PROGRAMS(sock_send_length, handle_send_length, on_sock_io(sk, LIFE_OWNER_SEND), const struct sock *sk)

/* Kernels without those tracepoints (< 6.3, e.g. Debian 12's 6.1 and Debian 11's 5.10): TCP's own receive and
 * send functions, entered from recvmsg()/read() and sendmsg()/write() in the calling task, for TCP sockets only
 * (IPv6 included: inet6_recvmsg and inet6_sendmsg call the same functions). Only the socket argument is read:
 * the other arguments changed across kernels. */
SEC("fentry/tcp_recvmsg")
int BPF_PROG(handle_recvmsg_fentry, const struct sock *sk)
{
	return on_sock_io(sk, LIFE_OWNER_RECV);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(handle_recvmsg_kprobe, const struct sock *sk)
{
	return on_sock_io(sk, LIFE_OWNER_RECV);
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(handle_sendmsg_fentry, const struct sock *sk)
{
	return on_sock_io(sk, LIFE_OWNER_SEND);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(handle_sendmsg_kprobe, const struct sock *sk)
{
	return on_sock_io(sk, LIFE_OWNER_SEND);
}

/* Classic sock:sock_{recv,send}_length records: the socket, then its family and protocol. */
struct sock_length_args {
	__u64 common;
	const void *sk;
	__u16 family;
	__u16 protocol;
};

SEC("tp/sock/sock_recv_length")
int handle_recv_length_tp(struct sock_length_args *ctx)
{
	return ctx->protocol == IPPROTO_TCP ? on_sock_io(ctx->sk, LIFE_OWNER_RECV) : 0;
}

SEC("tp/sock/sock_send_length")
int handle_send_length_tp(struct sock_length_args *ctx)
{
	return ctx->protocol == IPPROTO_TCP ? on_sock_io(ctx->sk, LIFE_OWNER_SEND) : 0;
}
