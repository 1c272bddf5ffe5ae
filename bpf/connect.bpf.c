// SPDX-License-Identifier: GPL-2.0
/* netbpf connect: one record per TCP connect attempt: established (with SYN -> ESTABLISHED latency) or
 * failed (with the errno the application saw: refused, timed out, unreachable, ...).
 * Hooks (each tp_btf, else raw_tp, else the classic tracepoint: see tracepoints.bpf.h):
 * sock:inet_sock_set_state for SYN_SENT -> ESTABLISHED/CLOSE; tcp:tcp_retransmit_skb to count SYN
 * retransmits; tcp:tcp_receive_reset; sock:inet_sk_error_report (no classic variant: its record has no
 * socket pointer; before 5.14 fentry or kprobe on sock_def_error_report) to keep the error an application
 * may clear; and connect()/getsockopt(SO_ERROR) at syscall
 * entry and exit for connects that fail before any state change (no route) and errors read with SO_ERROR. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "tracepoints.bpf.h"
#include "agg.bpf.h"
#include "owner.bpf.h"
#include "connect.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/connect/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct connect_event);
NETBPF_CONTRACT(enum connect_kind);
NETBPF_CONTRACT(enum connect_flags);
NETBPF_CONTRACT(struct connect_agg_key);
NETBPF_CONTRACT(struct connect_agg_value);
NETBPF_CONTRACT(enum connect_agg_consts);

/* Only connects by this process (tgid); 0 = any. Known at connect() time, so filtered here. */
const volatile __u32 filter_pid = 0;
/* Record the connecting process in the shared owner map (0 when another object of the session does: life). */
const volatile __u8 maintain_owners = 1;
/* Summary-only runs: count each outcome into `connect_agg` instead of sending a record. */
const volatile __u8 aggregate_in_kernel = 0;
/* With aggregate_in_kernel: keep summaries per cgroup too (container attribution). */
const volatile __u8 agg_by_cgroup = 0;
/* With aggregate_in_kernel, for a session's views (top, serve): keys carry the namespace, and distinct connections
 * are counted with the session's other tools. */
const volatile __u8 agg_session = 0;

/* errno values of the Linux ABI (asm-generic) that connect() returns for "still in progress". */
#define NB_EINPROGRESS 115
#define NB_EALREADY 114
#define NB_EISCONN 106
#define NB_S_IFMT 00170000
#define NB_S_IFSOCK 0140000

/* The attempt; who made it is in the shared owner map (bpf/owner.bpf.h), captured at connect(). */
struct attempt {
	__u64 start_ns;
	__u32 syn_retrans;
	__s32 err;
	__u8 flags;
	__u8 pad[7];
};

/* Socket -> attempt in SYN_SENT. Attempts last at most the SYN timeout; LRU keeps a flood of
 * never-answered attempts from blocking new ones (an evicted attempt just produces no record). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct attempt);
} attempts SEC(".maps");

/* A connect() syscall in flight that has not reached SYN_SENT yet, keyed by thread. */
struct pending {
	__u64 start_ns;
	__u64 sk;
	__u8 daddr[NETBPF_ADDR_LEN];
	__u16 family;
	__u16 dport;
	__u8 stage;         /* enum pending_stage */
	__u8 pad;
	__u16 ports_low;    /* the namespace's local port range, when it failed inside connect() */
	__u16 ports_high;
	__u16 pad2;
};

/* How far a pending connect() got. */
enum pending_stage {
	PENDING_BEFORE_SYN_SENT = 0, /* still CLOSE: a failure now is before any state change (no route, ...) */
	PENDING_SYN_SENT = 1,        /* reached SYN_SENT: its outcome is reported at ESTABLISHED/CLOSE */
	PENDING_FAILED = 2,          /* SYN_SENT -> CLOSE inside connect() with no SYN sent: reported at the exit */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct pending);
} pending SEC(".maps");

/* Outcomes per summary key; the fold (connect_agg_other) keeps them per outcome and errno (agg.bpf.h). */
AGG_MAPS(connect_agg, struct connect_agg_key, struct connect_agg_value);

/* Counts an outcome into the summary maps (`sk` NULL: no socket to count among the connections). */
static __always_inline void aggregate(const struct connect_event *e, const void *sk)
{
	struct connect_agg_key k;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.daddr, e->daddr, NETBPF_ADDR_LEN);
	k.cgroup_id = agg_by_cgroup ? e->cgroup_id : 0;
	k.err = e->err;
	k.family = e->family;
	k.dport = e->dport;
	k.kind = e->kind;
	k.flags = e->flags | (e->syn_retrans ? CONNECT_AGG_SYN_RETRANSMITTED : 0);
	k.ports_low = e->ports_low;
	k.ports_high = e->ports_high;
	k.netns = agg_session ? e->netns : 0;
	struct connect_agg_value *v = AGG_SLOT_OR_OTHER(&connect_agg, &connect_agg_other, &k, &agg_zero,
							&connect_agg_full, &connect_agg_other_full, ({
		__builtin_memset(k.daddr, 0, NETBPF_ADDR_LEN);
		k.cgroup_id = 0;
		k.family = 0;
		k.dport = 0;
		k.ports_low = 0;
		k.ports_high = 0;
		k.netns = 0;
		k.flags |= CONNECT_AGG_OTHER;
	}));
	if (!v)
		return;
	if (e->kind == CONNECT_ESTABLISHED) {
		__u64 latency = e->ts_ns - e->start_ns, new_conn, d_retrans, d_sent;
		if (sk && agg_session) {
			owner_take_counts(sk, 0, 0, &new_conn, &d_retrans, &d_sent);
			v->connections += new_conn;
		}
		AGG_MIN_MAX(v, latency_ns, latency);
		v->latency_ns += latency;
		AGG_HIST_ADD(v->latency_us_log2, CONNECT_AGG_BUCKETS, latency / 1000);
	} else if (e->ts_ns - e->start_ns > v->max_elapsed_ns) {
		v->max_elapsed_ns = e->ts_ns - e->start_ns;
	}
	v->count++;
	v->syn_retrans += e->syn_retrans;
}

/* A filled record to user space, or into the summary maps. */
AGG_DELIVER(struct connect_event);

static __always_inline bool pid_wanted(__u32 pid)
{
	return !filter_pid || pid == filter_pid;
}

static __always_inline void fill_common(struct connect_event *e, const struct sock *sk, const struct sock_tuple *t)
{
	e->cgroup_id = sock_cgroup_id(sk);
	__builtin_memcpy(e->saddr, t->saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e->daddr, t->daddr, NETBPF_ADDR_LEN);
	e->netns = sock_netns(sk);
	e->family = t->family;
	e->sport = t->sport;
	e->dport = t->dport;
}

/* The error an application would read with SO_ERROR: sk_err, else sk_err_soft. An ICMP error that arrives
 * while connect() holds the socket lock (common on a local veth: the ICMP is processed in the connecting
 * task) only sets sk_err_soft, and the application's SO_ERROR then clears it before it closes the socket. */
static __always_inline int sock_error_now(const struct sock *sk)
{
	int err = BPF_CORE_READ(sk, sk_err);
	return err ? err : BPF_CORE_READ(sk, sk_err_soft);
}

static __always_inline void emit_outcome(const struct sock *sk, const struct attempt *a, __u8 kind, __u64 now)
{
	struct sock_tuple t;
	if (read_sock_tuple(sk, &t))
		return;
	/* skc_num is cleared when the port is released, before the move to CLOSE; inet_sport is not. */
	t.sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	if (!tuple_wanted(&t))
		return;
	struct connect_event e;
	struct sock_owner *o = owner_of(sk);
	e.ts_ns = now;
	e.start_ns = a->start_ns;
	fill_common(&e, sk, &t);
	e.syn_retrans = a->syn_retrans;
	e.kind = kind;
	e.flags = a->flags;
	e.err = 0;
	if (kind == CONNECT_FAILED) {
		/* sk_err is set before tcp_done() moves the socket to CLOSE; an error report seen earlier wins
		 * (a getsockopt(SO_ERROR) on another CPU may already have cleared sk_err). */
		e.err = a->err ? a->err : sock_error_now(sk);
	}
	if (o) {
		e.pid = o->pid;
		__builtin_memcpy(e.comm, o->comm, NETBPF_COMM_LEN);
	} else {
		e.pid = 0;
		__builtin_memset(e.comm, 0, NETBPF_COMM_LEN);
	}
	e.ports_low = 0;
	e.ports_high = 0;
	e.pad = 0;
	deliver(&e, sk);
}

/* Since Linux 6.3 the range is one u32 (high << 16 | low); before, two ints under a seqlock. Each layout has its own
 * flavour: CO-RE cannot relocate (not even size) a field whose type changed kind, array to scalar, so the running
 * kernel's layout is told by which flavour's field exists (on 6.1 and 5.10, asking the size failed the load). */
struct local_ports___v63 {
	__u32 range;
} __attribute__((preserve_access_index));

struct local_ports___pre63 {
	int range[2];
} __attribute__((preserve_access_index));

/* The socket's namespace's net.ipv4.ip_local_port_range. */
static __always_inline void local_port_range(const struct sock *sk, __u16 *low, __u16 *high)
{
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (!net)
		return;
	const void *ports = __builtin_preserve_access_index(&net->ipv4.ip_local_ports);
	const struct local_ports___v63 *now = ports;
	const struct local_ports___pre63 *old = ports;
	if (bpf_core_field_exists(now->range)) {
		__u32 range = BPF_CORE_READ(now, range);
		*low = range & 0xffff;
		*high = range >> 16;
	} else if (bpf_core_field_exists(old->range)) {
		int r[2] = {};
		BPF_CORE_READ_INTO(&r, old, range);
		*low = r[0];
		*high = r[1];
	}
}

static __always_inline int on_set_state(const struct sock *sk, int oldstate, int newstate)
{
	/* Most state changes are none of connect's business: told apart by the arguments first (registers), before any
	 * read of the socket, so a softirq that interrupts this program rarely finds it running (a recursion miss). */
	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT && !(newstate == TCP_SYN_RECV && maintain_owners))
		return 0;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;
	if (newstate == TCP_SYN_SENT) {
		/* In the task calling connect(): this connect is past the route lookup. */
		__u64 tid = bpf_get_current_pid_tgid();
		struct pending *p = bpf_map_lookup_elem(&pending, &tid);
		if (p && p->sk == key)
			p->stage = PENDING_SYN_SENT;
		struct attempt a = { .start_ns = bpf_ktime_get_ns() };
		if (!pid_wanted(tid >> 32))
			return 0;
		if (maintain_owners)
			owner_capture_connect(sk);
		bpf_map_update_elem(&attempts, &key, &a, BPF_ANY);
		return 0;
	}
	/* A listener's new child at a reused socket address: what was known about the address is stale. */
	if (newstate == TCP_SYN_RECV) {
		if (maintain_owners)
			owner_forget(sk);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;
	struct attempt *a = bpf_map_lookup_elem(&attempts, &key);
	if (!a)
		return 0;
	if (newstate == TCP_ESTABLISHED) {
		emit_outcome(sk, a, CONNECT_ESTABLISHED, bpf_ktime_get_ns());
	} else if (newstate == TCP_CLOSE) {
		/* tcp_v4_connect() moves the socket to SYN_SENT before it picks a local port; when none is free it moves
		 * it back to CLOSE without sending anything, and only connect()'s return value says why (EADDRNOTAVAIL).
		 * In the connecting thread, with no segment sent yet: leave the report to the syscall exit. */
		__u64 tid = bpf_get_current_pid_tgid();
		struct pending *p = bpf_map_lookup_elem(&pending, &tid);
		if (p && p->sk == key && p->stage == PENDING_SYN_SENT && BPF_CORE_READ((const struct tcp_sock *)sk, segs_out) == 0) {
			p->stage = PENDING_FAILED;
			p->start_ns = a->start_ns;
			local_port_range(sk, &p->ports_low, &p->ports_high);
		} else {
			emit_outcome(sk, a, CONNECT_FAILED, bpf_ktime_get_ns());
		}
	}
	bpf_map_delete_elem(&attempts, &key);
	return 0;
}

TRACEPOINT_PROGRAMS(inet_sock_set_state, handle_set_state, on_set_state(sk, oldstate, newstate),
		    const struct sock *sk, int oldstate, int newstate)

SEC("tp/sock/inet_sock_set_state")
int handle_set_state_tp(struct tp_inet_sock_set_state *ctx)
{
	return on_set_state((const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
}

/* SYN retransmits: the socket is still in SYN_SENT. */
static __always_inline int on_retransmit(const struct sock *sk)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	__u64 key = (__u64)sk;
	struct attempt *a = bpf_map_lookup_elem(&attempts, &key);
	if (a)
		__sync_fetch_and_add(&a->syn_retrans, 1);
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_retransmit_skb, handle_retransmit, on_retransmit(sk), const struct sock *sk)

SEC("tp/tcp/tcp_retransmit_skb")
int handle_retransmit_tp(struct tp_tcp_sk_skb *ctx)
{
	return on_retransmit((const struct sock *)ctx->skaddr);
}

static __always_inline int on_receive_reset(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct attempt *a = bpf_map_lookup_elem(&attempts, &key);
	if (a)
		a->flags |= CONNECT_RST_RECEIVED;
	return 0;
}

TRACEPOINT_PROGRAMS(tcp_receive_reset, handle_receive_reset, on_receive_reset(sk), const struct sock *sk)

SEC("tp/tcp/tcp_receive_reset")
int handle_receive_reset_tp(struct tp_tcp_sk *ctx)
{
	return on_receive_reset((const struct sock *)ctx->skaddr);
}

/* No classic variant: the classic record of sock:inet_sk_error_report has no socket pointer. */
static __always_inline int on_error_report(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct attempt *a = bpf_map_lookup_elem(&attempts, &key);
	if (a && !a->err) {
		a->err = sock_error_now(sk);
		if (a->err)
			a->flags |= CONNECT_ERROR_REPORTED;
	}
	return 0;
}

TRACEPOINT_PROGRAMS(inet_sk_error_report, handle_error_report, on_error_report(sk), const struct sock *sk)

/* Kernels without sock:inet_sk_error_report (< 5.14): the error-report callback itself. TCP sockets keep the
 * sock_def_error_report that sock_init_data() installs; tcp_reset(), tcp_v4_err()/tcp_v6_err() and the
 * retransmit timeout (tcp_write_err) call it after setting sk_err, where newer kernels fire the tracepoint. */
SEC("fentry/sock_def_error_report")
int BPF_PROG(handle_error_report_fentry, struct sock *sk)
{
	return on_error_report(sk);
}

SEC("kprobe/sock_def_error_report")
int BPF_KPROBE(handle_error_report_kprobe, struct sock *sk)
{
	return on_error_report(sk);
}

/* connect() and getsockopt() are seen at syscall entry and exit: through the raw syscall tracepoints
 * sys_enter/sys_exit (tp_btf or raw_tp: no tracefs; they run for every syscall of the host, so the syscall
 * number is compared first), or through the classic syscalls:sys_{enter,exit}_{connect,getsockopt}. */
#if defined(__TARGET_ARCH_x86)
#define NB_NR_CONNECT 42
#define NB_NR_GETSOCKOPT 55
#define syscall_nr(regs) BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NB_NR_CONNECT 203
#define NB_NR_GETSOCKOPT 209
#define syscall_nr(regs) BPF_CORE_READ((struct pt_regs___arm64 *)(regs), syscallno)
#else
#error "syscall numbers of connect and getsockopt are not known for this architecture"
#endif

static __always_inline const struct sock *sock_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & NB_S_IFMT) != NB_S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* connect(fd, addr, len): remember TCP connects by thread, with the destination from user memory
 * (a connect that fails in the route lookup never writes it into the socket). */
static __always_inline int on_connect_enter(__u32 fd, const void *uservaddr)
{
	__u64 tid = bpf_get_current_pid_tgid();
	if (!pid_wanted(tid >> 32))
		return 0;
	const struct sock *sk = sock_of_fd(fd);
	if (!sk || BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	/* Only a socket that has not started connecting yet (a repeated connect() on SYN_SENT is a poll). */
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_CLOSE)
		return 0;
	struct pending p = { .start_ns = bpf_ktime_get_ns(), .sk = (__u64)sk, .stage = PENDING_BEFORE_SYN_SENT };
	__u8 sa[24] = {};
	if (bpf_probe_read_user(sa, sizeof(sa), uservaddr))
		return 0;
	p.family = sa[0] | (sa[1] << 8);
	p.dport = (sa[2] << 8) | sa[3];
	if (p.family == NETBPF_AF_INET) {
		__u32 v4;
		__builtin_memcpy(&v4, sa + 4, 4);
		addr_from_v4(p.daddr, v4);
	} else if (p.family == NETBPF_AF_INET6) {
		__builtin_memcpy(p.daddr, sa + 8, NETBPF_ADDR_LEN);
	} else {
		return 0;
	}
	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
	return 0;
}

/* At exit a pending connect that never reached SYN_SENT failed before any state change (no route, ...); one that
 * went SYN_SENT -> CLOSE inside the call with nothing sent failed for want of a local port: both are reported
 * here with the errno connect() returned. */
static __always_inline int on_connect_exit(__s64 ret)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct pending *p = bpf_map_lookup_elem(&pending, &tid);
	if (!p)
		return 0;
	struct pending copy = *p;
	bpf_map_delete_elem(&pending, &tid);
	__s64 err = -ret;
	if (copy.stage == PENDING_SYN_SENT || ret >= 0 || err == NB_EINPROGRESS || err == NB_EALREADY || err == NB_EISCONN)
		return 0;
	const struct sock *sk = (const struct sock *)copy.sk;
	struct sock_tuple t = { .family = copy.family, .dport = copy.dport };
	__builtin_memcpy(t.daddr, copy.daddr, NETBPF_ADDR_LEN);
	__builtin_memset(t.saddr, 0, NETBPF_ADDR_LEN);
	t.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!tuple_wanted(&t))
		return 0;
	struct connect_event e;
	e.ts_ns = bpf_ktime_get_ns();
	e.start_ns = copy.start_ns;
	fill_common(&e, sk, &t);
	e.pid = tid >> 32;
	e.err = (__s32)err;
	e.syn_retrans = 0;
	e.kind = CONNECT_FAILED;
	e.flags = CONNECT_BEFORE_SYN | (copy.stage == PENDING_FAILED ? CONNECT_IN_SYSCALL : 0);
	e.ports_low = copy.ports_low;
	e.ports_high = copy.ports_high;
	e.pad = 0;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	deliver(&e, NULL);
	return 0;
}

/* getsockopt(fd, SOL_SOCKET, SO_ERROR): how a non-blocking connect() learns its outcome. An ICMP error
 * processed while connect() still holds the socket lock lands in sk_err_soft, which SO_ERROR returns and
 * clears before the application closes the socket (seen here: a local nft `reject with icmpx` gives
 * inet_sk_error_report with error=0 and a close with sk_err=0). So the value the application read is kept. */
#define NB_SOL_SOCKET 1
#define NB_SO_ERROR 4

struct so_error_call {
	__u64 sk;
	__u64 optval;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct so_error_call);
} so_error_calls SEC(".maps");

static __always_inline int on_getsockopt_enter(__u32 fd, int level, int optname, __u64 optval)
{
	if (level != NB_SOL_SOCKET || optname != NB_SO_ERROR)
		return 0;
	const struct sock *sk = sock_of_fd(fd);
	__u64 key = (__u64)sk;
	if (!sk || !bpf_map_lookup_elem(&attempts, &key))
		return 0;
	__u64 tid = bpf_get_current_pid_tgid();
	struct so_error_call c = { .sk = key, .optval = optval };
	bpf_map_update_elem(&so_error_calls, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int on_getsockopt_exit(__s64 ret)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct so_error_call *c = bpf_map_lookup_elem(&so_error_calls, &tid);
	if (!c)
		return 0;
	__u64 key = c->sk;
	int val = 0;
	if (ret == 0 && !bpf_probe_read_user(&val, sizeof(val), (const void *)c->optval) && val > 0) {
		struct attempt *a = bpf_map_lookup_elem(&attempts, &key);
		if (a && !a->err)
			a->err = val;
	}
	bpf_map_delete_elem(&so_error_calls, &tid);
	return 0;
}

/* sys_enter(regs, id) / sys_exit(regs, ret): the syscall's own arguments are in the user registers. */
static __always_inline int on_sys_enter(struct pt_regs *regs, long id)
{
	if (id == NB_NR_CONNECT)
		return on_connect_enter(PT_REGS_PARM1_CORE_SYSCALL(regs), (const void *)PT_REGS_PARM2_CORE_SYSCALL(regs));
	if (id == NB_NR_GETSOCKOPT)
		return on_getsockopt_enter(PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs),
					   PT_REGS_PARM3_CORE_SYSCALL(regs), PT_REGS_PARM4_CORE_SYSCALL(regs));
	return 0;
}

static __always_inline int on_sys_exit(struct pt_regs *regs, long ret)
{
	long id = syscall_nr(regs);
	if (id == NB_NR_CONNECT)
		return on_connect_exit(ret);
	if (id == NB_NR_GETSOCKOPT)
		return on_getsockopt_exit(ret);
	return 0;
}

TRACEPOINT_PROGRAMS(sys_enter, handle_sys_enter, on_sys_enter(regs, id), struct pt_regs *regs, long id)
TRACEPOINT_PROGRAMS(sys_exit, handle_sys_exit, on_sys_exit(regs, ret), struct pt_regs *regs, long ret)

SEC("tp/syscalls/sys_enter_connect")
int handle_connect_enter_tp(struct tp_sys_enter *ctx)
{
	return on_connect_enter(ctx->args[0], (const void *)ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_connect")
int handle_connect_exit_tp(struct tp_sys_exit *ctx)
{
	return on_connect_exit(ctx->ret);
}

SEC("tp/syscalls/sys_enter_getsockopt")
int handle_getsockopt_enter_tp(struct tp_sys_enter *ctx)
{
	return on_getsockopt_enter(ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);
}

SEC("tp/syscalls/sys_exit_getsockopt")
int handle_getsockopt_exit_tp(struct tp_sys_exit *ctx)
{
	return on_getsockopt_exit(ctx->ret);
}
