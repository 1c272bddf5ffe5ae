/* One socket-owner map for every tool: which process owns a TCP socket, learned in process context only (a
 * softirq or timer runs on behalf of whatever task the CPU was running: BCC's PID 0 / bystander problem). Owners
 * are captured at connect() (CLOSE -> SYN_SENT), at the first recvmsg()/sendmsg() of an accepted socket and at
 * close()/shutdown() (-> FIN_WAIT1 / LAST_ACK), invalidated when a socket address is reused for a new connection
 * (SYN_SENT overwrites, a listener's new child SYN_RECV deletes), and forgotten at tcp:tcp_destroy_sock.
 *
 * Every object that reads or writes owners declares the map from this header; the objects of one session share it
 * (src/core/shared-maps.ts: the first to load creates it, the others reuse its fd before they load), so a
 * session keeps one entry per socket however many tools run, and only one of them needs the capture hooks.
 *
 * In-kernel aggregation also keeps here what a socket has already added to a destination's counters (whether it
 * was counted among the destination's connections, and the total_retrans / segs_out already added to its
 * retransmit ratio), so the tools of one session count each connection once between them. */
#ifndef NETBPF_OWNER_BPF_H
#define NETBPF_OWNER_BPF_H

#include "netbpf.h"

struct sock_owner {
	__u32 pid;            /* owning process (tgid); 0 when not seen in process context yet */
	__u8 source;          /* enum netbpf_owner_source */
	__u8 counted;         /* in-kernel aggregation: already counted among a destination's connections */
	__u16 pad;
	__u32 retrans_added;  /* in-kernel aggregation: total_retrans already added to a retransmit ratio */
	__u32 segs_out_added; /* in-kernel aggregation: segs_out already added to a retransmit ratio */
	char comm[NETBPF_COMM_LEN];
};

/* Socket address -> owner. LRU: a session never fails to record a new owner; entries are removed at socket
 * destruction, so only more live sockets than entries push old ones out. User space sizes it before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sock_owner);
} owners SEC(".maps");

/* The socket's entry, or NULL. */
static __always_inline struct sock_owner *owner_of(const void *sk)
{
	__u64 key = (__u64)sk;
	return bpf_map_lookup_elem(&owners, &key);
}

static __always_inline void owner_fill(struct sock_owner *o, __u8 source)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	o->source = source;
}

/* A new connection on this socket address, in the task calling connect(): whatever was known is discarded. */
static __always_inline void owner_capture_connect(const void *sk)
{
	__u64 key = (__u64)sk;
	struct sock_owner o = {};
	owner_fill(&o, NETBPF_OWNER_CONNECT);
	bpf_map_update_elem(&owners, &key, &o, BPF_ANY);
}

/* In the task that owns sk (recvmsg, sendmsg, close): records it unless an owner is known already. */
static __always_inline void owner_capture(const void *sk, __u8 source)
{
	__u64 key = (__u64)sk;
	struct sock_owner *o = bpf_map_lookup_elem(&owners, &key);
	if (!o) {
		struct sock_owner n = {};
		owner_fill(&n, source);
		if (!bpf_map_update_elem(&owners, &key, &n, BPF_NOEXIST))
			return;
		/* Another CPU created the entry meanwhile (e.g. a retransmit counted in softirq): fill that one. */
		o = bpf_map_lookup_elem(&owners, &key);
		if (!o)
			return;
	}
	if (o->source == NETBPF_OWNER_NONE)
		owner_fill(o, source);
}

/* The socket address now names another connection (or none): its entry is stale. */
static __always_inline void owner_forget(const void *sk)
{
	__u64 key = (__u64)sk;
	bpf_map_delete_elem(&owners, &key);
}

/* The socket's entry, created without an owner when absent (for what in-kernel aggregation keeps); NULL only
 * when the map could not take it. */
static __always_inline struct sock_owner *owner_entry(const void *sk)
{
	__u64 key = (__u64)sk;
	struct sock_owner *o = bpf_map_lookup_elem(&owners, &key);
	if (o)
		return o;
	struct sock_owner n = {};
	bpf_map_update_elem(&owners, &key, &n, BPF_NOEXIST);
	return bpf_map_lookup_elem(&owners, &key);
}

/* In-kernel aggregation: what this socket adds to a destination now. `*new_conn` is 1 the first time any tool
 * of the session counts it; `*d_retrans` and `*d_sent` are its total_retrans and segs_out since they were last
 * added (its whole counters the first time), so the ratio over a destination sums each connection's latest
 * counters exactly once, whichever tools saw it. */
static __always_inline void owner_take_counts(const void *sk, __u32 retrans, __u32 segs_out, __u64 *new_conn,
					      __u64 *d_retrans, __u64 *d_sent)
{
	struct sock_owner *o = owner_entry(sk);
	*new_conn = 0;
	*d_retrans = retrans;
	*d_sent = segs_out;
	if (!o) {
		*new_conn = 1;
		return;
	}
	if (!o->counted) {
		o->counted = 1;
		*new_conn = 1;
	}
	*d_retrans = retrans > o->retrans_added ? retrans - o->retrans_added : 0;
	*d_sent = segs_out > o->segs_out_added ? segs_out - o->segs_out_added : 0;
	if (retrans > o->retrans_added)
		o->retrans_added = retrans;
	if (segs_out > o->segs_out_added)
		o->segs_out_added = segs_out;
}

#endif
