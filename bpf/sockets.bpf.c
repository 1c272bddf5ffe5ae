// SPDX-License-Identifier: GPL-2.0
/* netbpf sockets: a BPF iterator over every process's open files (iter/task_file) that writes one record per
 * TCP socket: owner, state, queues, windows, listener backlog and drops, idle time. One pass sees every
 * network namespace (an iter/tcp or sock_diag dump sees only the caller's) and names the owner directly
 * (sock_diag needs a walk of /proc/<pid>/fd for that). Sockets nobody holds (TIME_WAIT, orphans) are not seen.
 * Read on demand from user space (addon readIter); nothing runs between reads. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "sockets.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/sockets/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct socket_record);

#define NB_S_IFMT 00170000
#define NB_S_IFSOCK 0140000

/* The socket behind a file, or NULL. bpf_sock_from_file() exists since 5.11 (the kernel's enum bpf_func_id says
 * whether this one has it); before, a socket's file is the one whose inode is a socket inode, and its
 * private_data is the socket (O_PATH files of socket nodes have none). */
static __always_inline struct socket *socket_of(struct file *file)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_sock_from_file))
		return bpf_sock_from_file(file);
	if ((BPF_CORE_READ(file, f_inode, i_mode) & NB_S_IFMT) != NB_S_IFSOCK)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

SEC("iter/task_file")
int dump_task_file(struct bpf_iter__task_file *ctx)
{
	struct file *file = ctx->file;
	struct task_struct *task = ctx->task;
	if (!file || !task)
		return 0;
	struct socket *sock = socket_of(file);
	if (!sock)
		return 0;
	const struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	struct sock_tuple t;
	if (read_sock_tuple(sk, &t))
		return 0;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* A listener has no remote side: the remote filters (address, port) do not apply to it. */
	if (state != TCP_LISTEN && !tuple_wanted(&t))
		return 0;

	struct socket_record r;
	__builtin_memset(&r, 0, sizeof(r));
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	r.sk = (__u64)sk;
	r.cgroup_id = sock_cgroup_id(sk);
	__builtin_memcpy(r.saddr, t.saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(r.daddr, t.daddr, NETBPF_ADDR_LEN);
	r.family = t.family;
	r.sport = t.sport;
	r.dport = t.dport;
	r.netns = sock_netns(sk);
	r.pid = BPF_CORE_READ(task, tgid);
	r.fd = ctx->fd;
	BPF_CORE_READ_STR_INTO(&r.comm, task, comm);
	r.state = state;
	r.drops = BPF_CORE_READ(sk, sk_drops.counter);
	r.rcvbuf = BPF_CORE_READ(sk, sk_rcvbuf);
	if (r.state == TCP_LISTEN) {
		r.rx_queue = BPF_CORE_READ(sk, sk_ack_backlog);
		r.tx_queue = BPF_CORE_READ(sk, sk_max_ack_backlog);
	} else {
		__u32 rcv_nxt = BPF_CORE_READ(tp, rcv_nxt);
		r.copied_seq = BPF_CORE_READ(tp, copied_seq);
		r.rx_queue = rcv_nxt - r.copied_seq;
		r.tx_queue = BPF_CORE_READ(tp, write_seq) - BPF_CORE_READ(tp, snd_una);
		__s32 wnd = BPF_CORE_READ(tp, rcv_wup) + BPF_CORE_READ(tp, rcv_wnd) - rcv_nxt;
		r.rcv_wnd = wnd < 0 ? 0 : wnd;
		r.snd_wnd = BPF_CORE_READ(tp, snd_wnd);
		r.probes_out = BPF_CORE_READ(tp, inet_conn.icsk_probes_out);
		/* tcp_mstamp: microseconds of the same monotonic clock as bpf_ktime_get_ns(). */
		__u64 now_us = bpf_ktime_get_ns() / 1000, last = BPF_CORE_READ(tp, tcp_mstamp);
		r.idle_us = now_us > last ? now_us - last : 0;
	}
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
