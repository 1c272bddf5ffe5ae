// SPDX-License-Identifier: GPL-2.0
/* netbpf life: one record per TCP connection end, at its end (like tcplife), with bytes each way, retransmits,
 * RTT, the owning process and why it closed; a record when the handshake completes only when asked
 * (emit_established). Summary-only runs count each end into a per-destination map instead (aggregate_in_kernel).
 * Hooks (each tp_btf, else raw_tp, else the classic tracepoint: see tracepoints.bpf.h):
 * sock:inet_sock_set_state (births, handshakes, closes, owners at connect and close); tcp:tcp_send_reset and
 * tcp:tcp_receive_reset to remember resets; tcp:tcp_destroy_sock, where an end that could still send a reset
 * after CLOSE is delivered and the socket's entries are dropped; sock:sock_recv_length / sock:sock_send_length
 * (else fentry, else kprobe on tcp_recvmsg / tcp_sendmsg) to
 * learn, in process context, which process owns an accepted connection (its handshake completes in softirq). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "tracepoints.bpf.h"
#include "agg.bpf.h"
#include "owner.bpf.h"
#include "life.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/life/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct life_event);
NETBPF_CONTRACT(struct life_agg_key);
NETBPF_CONTRACT(struct life_agg_value);
NETBPF_CONTRACT(enum life_kind);
NETBPF_CONTRACT(enum life_direction);
NETBPF_CONTRACT(enum life_flags);
NETBPF_CONTRACT(enum life_agg_consts);

/* Hold an end that may still send its reset until the reset or tcp:tcp_destroy_sock (0 where that tracepoint is
 * missing: the end is final at CLOSE, with an unread-data reset decided by __tcp_close's own condition). */
const volatile __u8 hold_for_reset = 1;
/* A record when the handshake completes, besides the one at the end (`netbpf life --established`). */
const volatile __u8 emit_established = 0;
/* Summary-only runs: count each end into `life_agg` instead of sending a record. */
const volatile __u8 aggregate_in_kernel = 0;
/* With aggregate_in_kernel: keep summaries per cgroup too (container attribution). */
const volatile __u8 agg_by_cgroup = 0;
/* With aggregate_in_kernel, for a session's views (top, serve): keys carry the socket's namespace, and distinct
 * connections and their retransmit ratio are counted with the session's other tools (bpf/owner.bpf.h). life's own
 * summaries need neither, and the counting costs a map update per end. */
const volatile __u8 agg_session = 0;

/* What is known about a live connection between its first state change and its close. */
struct birth {
	__u64 ts_ns;
	__u64 established_ns;
	__u8 direction;
	__u8 flags;      /* life_flags seen so far (resets) */
	__u8 owner_seen; /* the owner was captured (owners map): later recvmsg/sendmsg need not look */
	__u8 pad[5];
};

/* Socket -> birth. A plain hash (not LRU) so a live connection is never evicted silently: when it is
 * full, new connections are not tracked and `untracked` counts them. Entries are removed at TCP_CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct birth);
} births SEC(".maps");

/* Ends whose close path may still send a reset (a close with unread data or SO_LINGER 0 moves the socket to
 * CLOSE before tcp_send_reset fires): held here until the reset, else until tcp_destroy_sock. When it is full the
 * end is delivered at once (only a later reset would then be missed). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct life_event);
} closing SEC(".maps");

/* Connections not tracked because `births` was full (per CPU, summed by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} untracked SEC(".maps");

/* Ends per summary key; the fold (life_agg_other) keeps them per direction and close reason (agg.bpf.h). */
AGG_MAPS(life_agg, struct life_agg_key, struct life_agg_value);

static __always_inline void count_untracked(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&untracked, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline bool sock_flag_set(const struct sock *sk, int flag)
{
	return BPF_CORE_READ(sk, __sk_common.skc_flags) & (1ULL << flag);
}

/* The connection's addresses and ports, if the filters want it. */
static __always_inline bool wanted_tuple(const struct sock *sk, struct sock_tuple *t)
{
	if (read_sock_tuple(sk, t))
		return false;
	/* skc_num is cleared when the port is released, before the move to CLOSE; inet_sport is not. */
	t->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	return tuple_wanted(t);
}

/* Payload bytes: bytes_acked counts our SYN and FIN, bytes_received the peer's FIN (flags say which). */
static __always_inline __u64 payload_tx(const struct life_event *e)
{
	__u64 seq = !!(e->flags & LIFE_SYN_ACKED) + !!(e->flags & LIFE_FIN_ACKED);
	return e->bytes_acked > seq ? e->bytes_acked - seq : 0;
}

static __always_inline __u64 payload_rx(const struct life_event *e)
{
	__u64 seq = !!(e->flags & LIFE_FIN_RECEIVED);
	return e->bytes_received > seq ? e->bytes_received - seq : 0;
}

static __always_inline void fill_event(struct life_event *e, const struct sock *sk, const struct sock_tuple *t,
				       const struct birth *b, __u8 kind, int oldstate, __u64 now)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	struct sock_owner *o = owner_of(sk);
	e->ts_ns = now;
	e->birth_ns = b->ts_ns;
	e->established_ns = b->established_ns;
	e->cgroup_id = sock_cgroup_id(sk);
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	__builtin_memcpy(e->saddr, t->saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e->daddr, t->daddr, NETBPF_ADDR_LEN);
	e->netns = sock_netns(sk);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->segs_out = BPF_CORE_READ(tp, segs_out);
	e->segs_in = BPF_CORE_READ(tp, segs_in);
	e->sk_err = BPF_CORE_READ(sk, sk_err);
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
	e->kind = kind;
	e->direction = b->direction;
	e->old_state = oldstate;
	__u8 flags = b->flags;
	/* bytes_received counts the FIN's sequence number; tcp_fin() sets SOCK_DONE (bit from BTF, via CO-RE). */
	if (sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
		flags |= LIFE_FIN_RECEIVED;
	/* An active open's bytes_acked includes the SYN once acknowledged (a passive child starts past it). */
	if (b->direction == LIFE_DIR_CONNECT && b->established_ns)
		flags |= LIFE_SYN_ACKED;
	/* Closed from a state our FIN was acknowledged in, with no error or reset: bytes_acked includes the FIN. */
	if (kind == LIFE_CLOSED && !e->sk_err && !(flags & LIFE_RST_RECEIVED) &&
	    (oldstate == TCP_FIN_WAIT2 || oldstate == TCP_LAST_ACK || oldstate == TCP_CLOSING || oldstate == TCP_TIME_WAIT))
		flags |= LIFE_FIN_ACKED;
	e->flags = flags;
	e->pad = 0;
	if (o) {
		e->pid = o->pid;
		e->owner_source = o->source;
		__builtin_memcpy(e->comm, o->comm, NETBPF_COMM_LEN);
	} else {
		e->pid = 0;
		e->owner_source = NETBPF_OWNER_NONE;
		__builtin_memset(e->comm, 0, NETBPF_COMM_LEN);
	}
}

/* Counts a record into the summary maps: handshakes by destination, ends by destination and close reason. */
static __always_inline void aggregate(const struct life_event *e, const void *sk)
{
	struct life_agg_key k;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.daddr, e->daddr, NETBPF_ADDR_LEN);
	k.cgroup_id = agg_by_cgroup ? e->cgroup_id : 0;
	k.family = e->family;
	k.port = e->direction == LIFE_DIR_ACCEPT ? e->sport : e->dport;
	k.kind = e->kind;
	k.direction = e->direction;
	if (e->kind == LIFE_CLOSED) {
		k.sk_err = e->sk_err;
		k.flags = e->flags & LIFE_AGG_RST_FLAGS;
		if (e->old_state == TCP_FIN_WAIT1 || e->old_state == TCP_FIN_WAIT2 || e->old_state == TCP_CLOSING ||
		    e->old_state == TCP_TIME_WAIT)
			k.flags |= LIFE_AGG_ACTIVE_CLOSE;
		k.established = e->established_ns != 0;
	}
	if (agg_session) {
		k.netns = e->netns;
		/* The local address places an accepted connection's unread-data reset (top's placement); elsewhere it
		 * would only multiply the keys (a client with many source addresses). */
		if (k.direction == LIFE_DIR_ACCEPT && (k.flags & LIFE_RST_UNREAD))
			__builtin_memcpy(k.saddr, e->saddr, NETBPF_ADDR_LEN);
	}
	struct life_agg_value *v = AGG_SLOT_OR_OTHER(&life_agg, &life_agg_other, &k, &agg_zero, &life_agg_full,
						     &life_agg_other_full, ({
		__builtin_memset(k.daddr, 0, NETBPF_ADDR_LEN);
		__builtin_memset(k.saddr, 0, NETBPF_ADDR_LEN);
		k.cgroup_id = 0;
		k.family = 0;
		k.port = 0;
		k.netns = 0;
		k.flags |= LIFE_AGG_OTHER;
	}));
	if (!v)
		return;
	if (e->kind != LIFE_CLOSED) {
		v->count++;
		return;
	}
	__u64 duration = e->ts_ns - e->birth_ns, new_conn = 0, d_retrans = 0, d_sent = 0;
	if (agg_session)
		owner_take_counts(sk, e->total_retrans, e->segs_out, &new_conn, &d_retrans, &d_sent);
	AGG_MIN_MAX(v, duration_ns, duration);
	AGG_MIN_MAX(v, total_retrans, e->total_retrans);
	AGG_SRTT_ADD(v, e->srtt_us, LIFE_AGG_BUCKETS);
	v->count++;
	v->connections += new_conn;
	v->tx_bytes += payload_tx(e);
	v->rx_bytes += payload_rx(e);
	v->total_retrans += e->total_retrans;
	v->ratio_retrans += d_retrans;
	v->ratio_sent += d_sent;
	v->duration_ns += duration;
	AGG_HIST_ADD(v->duration_ms_log2, LIFE_AGG_BUCKETS, duration / 1000000);
	AGG_HIST_ADD(v->total_retrans_log2, LIFE_AGG_BUCKETS, e->total_retrans);
}

/* A filled record (on the stack or held in `closing`) to user space, or into the summary maps. */
AGG_DELIVER(struct life_event);

/* Sends (or counts) the record of a state change of sk's connection. */
static __always_inline void record(const struct sock *sk, const struct birth *b, __u8 kind, int oldstate, __u64 now)
{
	struct sock_tuple t;
	if (!wanted_tuple(sk, &t))
		return;
	if (aggregate_in_kernel) {
		struct life_event e;
		fill_event(&e, sk, &t, b, kind, oldstate, now);
		aggregate(&e, sk);
		return;
	}
	struct life_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	fill_event(e, sk, &t, b, kind, oldstate, now);
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

/* The connection reached CLOSE. A close in its owner's close() with unread data, or with SO_LINGER 0, or a
 * disconnect, sends its reset after this state change: such an end (the owner still holds the socket, no error
 * ended it, it was past SYN_SENT) waits in `closing` for the reset or the socket's destruction. Every other end
 * (an orphan the owner closed earlier, an error, a failed connect) is final here. */
static __always_inline void end(const struct sock *sk, const struct birth *b, int oldstate, __u64 now)
{
	bool may_reset = oldstate != TCP_SYN_SENT && !BPF_CORE_READ(sk, sk_err) &&
			 !sock_flag_set(sk, bpf_core_enum_value(enum sock_flags, SOCK_DEAD));
	if (!may_reset) {
		record(sk, b, LIFE_CLOSED, oldstate, now);
		return;
	}
	/* In the owner's close() (the socket lock is held: process context), the owner of an accepted connection that
	 * never read or wrote is known now. */
	if (!b->owner_seen && BPF_CORE_READ(sk, sk_lock.owned))
		owner_capture(sk, NETBPF_OWNER_CLOSE);
	struct sock_tuple t;
	if (!wanted_tuple(sk, &t))
		return;
	struct life_event e;
	fill_event(&e, sk, &t, b, LIFE_CLOSED, oldstate, now);
	/* Closed in its owner's close() with received data unread: the reset that follows is the kernel's abort. */
	if ((oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT) && closed_with_unread_data(sk))
		e.flags |= LIFE_RST_UNREAD;
	__u64 key = (__u64)sk;
	if (!hold_for_reset || bpf_map_update_elem(&closing, &key, &e, BPF_ANY)) {
		/* Not waiting for the reset (no room, or no destruction hook): an unread-data close is known to send one. */
		if (e.flags & LIFE_RST_UNREAD)
			e.flags |= LIFE_RST_SENT;
		deliver(&e, sk);
	}
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
			/* A socket reconnected after a disconnect, before its destruction: its last end is final now. */
			struct life_event *held = bpf_map_lookup_elem(&closing, &key);
			if (held) {
				deliver(held, sk);
				bpf_map_delete_elem(&closing, &key);
			}
			b.direction = LIFE_DIR_CONNECT;
			b.owner_seen = 1;
			owner_capture_connect(sk);
		} else {
			b.direction = LIFE_DIR_ACCEPT;
			owner_forget(sk);
		}
		if (bpf_map_update_elem(&births, &key, &b, BPF_ANY))
			count_untracked();
		return 0;
	}

	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (newstate == TCP_ESTABLISHED) {
		if (!b) {
			/* The birth was missed (recursion) or happened just before the trace: the end is still worth a record,
			 * with its lifetime counted from here. */
			if (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
				return 0;
			struct birth late = { .ts_ns = now, .direction = oldstate == TCP_SYN_SENT ? LIFE_DIR_CONNECT : LIFE_DIR_ACCEPT };
			if (bpf_map_update_elem(&births, &key, &late, BPF_NOEXIST))
				return 0;
			b = bpf_map_lookup_elem(&births, &key);
			if (!b)
				return 0;
		}
		b->established_ns = now;
		if (emit_established || aggregate_in_kernel)
			record(sk, b, LIFE_ESTABLISHED, oldstate, now);
		return 0;
	}
	if (!b)
		return 0; /* born before the trace started (or untracked): no lifetime to report */
	/* close()/shutdown() start the FIN exchange in the owning task. */
	if ((newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) && !b->owner_seen) {
		b->owner_seen = 1;
		owner_capture(sk, NETBPF_OWNER_CLOSE);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		end(sk, b, oldstate, now);
		bpf_map_delete_elem(&births, &key);
	}
	return 0;
}

/* Two programs share the state changes: one for sockets held by their owner's task (connect(), close(), the
 * backlog at release_sock: process context) and one for the rest (softirq and timers). A softirq that interrupts
 * a program on the same CPU re-enters the tracepoint, and the kernel skips a program that is already running there
 * (a recursion miss: the softirq's state change would be lost). With the work split, the program a softirq
 * re-enters is the process-context one, which has nothing to do for it; the softirq program runs only in softirq
 * (softirqs do not nest) apart from the check that lets it return, and that check is what remains exposed (a
 * reschedule IPI landing in it lets a softirq in): measured, an empty program got no misses where one that read the
 * socket got nearly as many as the softirq program. So the states that only ever happen in one context are told
 * apart by the tracepoint's arguments alone (registers, no memory read), and only the others read sk_lock.owned
 * (a plain load on tp_btf, where the socket is a BTF pointer; a CO-RE read on raw_tp). Measured in BENCHMARKS.md. */
static __always_inline bool owned_by_task(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_lock.owned) != 0;
}

/* connect(), close() and shutdown() (and listen()) are the only ways into these states: always the owner's task. */
#define TASK_ONLY_STATE(s) ((s) == TCP_SYN_SENT || (s) == TCP_FIN_WAIT1 || (s) == TCP_LAST_ACK || (s) == TCP_LISTEN)
/* A listener's child is created in softirq. */
#define SOFTIRQ_ONLY_STATE(s) ((s) == TCP_SYN_RECV)

TRACEPOINT_PROGRAMS_BTF_RAW(inet_sock_set_state, handle_set_state_task,
	TASK_ONLY_STATE(newstate) || (!SOFTIRQ_ONLY_STATE(newstate) && sk->sk_lock.owned) ? on_set_state(sk, oldstate, newstate) : 0,
	TASK_ONLY_STATE(newstate) || (!SOFTIRQ_ONLY_STATE(newstate) && owned_by_task(sk)) ? on_set_state(sk, oldstate, newstate) : 0,
	const struct sock *sk, int oldstate, int newstate)
TRACEPOINT_PROGRAMS_BTF_RAW(inet_sock_set_state, handle_set_state_soft,
	!TASK_ONLY_STATE(newstate) && (SOFTIRQ_ONLY_STATE(newstate) || !sk->sk_lock.owned) ? on_set_state(sk, oldstate, newstate) : 0,
	!TASK_ONLY_STATE(newstate) && (SOFTIRQ_ONLY_STATE(newstate) || !owned_by_task(sk)) ? on_set_state(sk, oldstate, newstate) : 0,
	const struct sock *sk, int oldstate, int newstate)
/* One program for both, for measuring what the split saves (NETBPF_LIFE_SINGLE_PROGRAM=1). */
TRACEPOINT_PROGRAMS(inet_sock_set_state, handle_set_state, on_set_state(sk, oldstate, newstate),
		    const struct sock *sk, int oldstate, int newstate)

/* Classic tracepoint: stable leading fields since 4.16. */
SEC("tp/sock/inet_sock_set_state")
int handle_set_state_tp(struct tp_inet_sock_set_state *ctx)
{
	return on_set_state((const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
}

/* Resets sent: sk may be NULL (no socket) or a timewait/request socket, which are never in births. After CLOSE
 * (a close with unread data, SO_LINGER 0) the reset belongs to an end held in `closing`: it is final now. */
static __always_inline int on_send_reset(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct life_event *e = bpf_map_lookup_elem(&closing, &key);
	if (e) {
		e->flags |= LIFE_RST_SENT;
		deliver(e, sk);
		bpf_map_delete_elem(&closing, &key);
		return 0;
	}
	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (b)
		b->flags |= LIFE_RST_SENT;
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_send_reset, handle_send_reset, on_send_reset(sk), const struct sock *sk, const struct sk_buff *skb)

SEC("tp/tcp/tcp_send_reset")
int handle_send_reset_tp(struct tp_tcp_sk_skb *ctx)
{
	return on_send_reset(ctx->skaddr);
}

/* Only sockets with a birth record (TCP, born during the trace) are marked: the lookup is the filter. */
static __always_inline int on_receive_reset(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (b)
		b->flags |= LIFE_RST_RECEIVED;
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_receive_reset, handle_receive_reset, on_receive_reset(sk), const struct sock *sk)

SEC("tp/tcp/tcp_receive_reset")
int handle_receive_reset_tp(struct tp_tcp_sk *ctx)
{
	return on_receive_reset(ctx->skaddr);
}

/* The socket is destroyed: an end still held is final (no reset came), a birth still here means its CLOSE was
 * missed (recursion) and ends now, and the socket's owner is forgotten. */
static __always_inline int on_destroy(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct life_event *e = bpf_map_lookup_elem(&closing, &key);
	if (e) {
		deliver(e, sk);
		bpf_map_delete_elem(&closing, &key);
	} else {
		struct birth *b = bpf_map_lookup_elem(&births, &key);
		if (b) {
			record(sk, b, LIFE_CLOSED, TCP_CLOSE, bpf_ktime_get_ns());
			bpf_map_delete_elem(&births, &key);
		}
	}
	owner_forget(sk);
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_destroy_sock, handle_destroy, on_destroy(sk), const struct sock *sk)

SEC("tp/tcp/tcp_destroy_sock")
int handle_destroy_tp(struct tp_tcp_sk *ctx)
{
	return on_destroy(ctx->skaddr);
}

/* recvmsg()/sendmsg() run in the task that owns the socket: the first one names an accepted connection's
 * owner. These fire for every socket of the host; one hash lookup is the whole cost for sockets without a
 * birth record (non-TCP, or born before the trace) or whose owner is known. */
static __always_inline int on_sock_io(const struct sock *sk, __u8 source)
{
	__u64 key = (__u64)sk;
	struct birth *b = bpf_map_lookup_elem(&births, &key);
	if (b && !b->owner_seen) {
		b->owner_seen = 1;
		owner_capture(sk, source);
	}
	return 0;
}

TRACEPOINT_PROGRAMS(sock_recv_length, handle_recv_length, on_sock_io(sk, NETBPF_OWNER_RECV), const struct sock *sk)
TRACEPOINT_PROGRAMS(sock_send_length, handle_send_length, on_sock_io(sk, NETBPF_OWNER_SEND), const struct sock *sk)

/* Kernels without those tracepoints (< 6.3, e.g. Debian 12's 6.1 and Debian 11's 5.10): TCP's own receive and
 * send functions, entered from recvmsg()/read() and sendmsg()/write() in the calling task, for TCP sockets only
 * (IPv6 included: inet6_recvmsg and inet6_sendmsg call the same functions). Only the socket argument is read:
 * the other arguments changed across kernels. */
SEC("fentry/tcp_recvmsg")
int BPF_PROG(handle_recvmsg_fentry, const struct sock *sk)
{
	return on_sock_io(sk, NETBPF_OWNER_RECV);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(handle_recvmsg_kprobe, const struct sock *sk)
{
	return on_sock_io(sk, NETBPF_OWNER_RECV);
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(handle_sendmsg_fentry, const struct sock *sk)
{
	return on_sock_io(sk, NETBPF_OWNER_SEND);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(handle_sendmsg_kprobe, const struct sock *sk)
{
	return on_sock_io(sk, NETBPF_OWNER_SEND);
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
	return ctx->protocol == IPPROTO_TCP ? on_sock_io(ctx->sk, NETBPF_OWNER_RECV) : 0;
}

SEC("tp/sock/sock_send_length")
int handle_send_length_tp(struct sock_length_args *ctx)
{
	return ctx->protocol == IPPROTO_TCP ? on_sock_io(ctx->sk, NETBPF_OWNER_SEND) : 0;
}
