/* How netbpf's programs attach to kernel tracepoints, and the leading fields of the classic tracepoint
 * records they read.
 *
 * Every tracepoint handler exists in up to three programs; user space (src/core/hooks.ts) loads the first one
 * the kernel accepts:
 *   <prog>_btf  tp_btf/<tp>   BTF-typed tracepoint: typed arguments, no tracefs (Linux >= 5.5)
 *   <prog>_raw  raw_tp/<tp>   raw tracepoint attached by name through bpf(): no tracefs (Linux >= 4.17)
 *   <prog>_tp   tp/<cat>/<tp> classic tracepoint: its id is read from tracefs, which hosts, containers and
 *                             `ip netns exec` often do not mount; kept as the last resort
 * tp_btf and raw_tp receive the same arguments (the tracepoint's TP_PROTO, as u64 words), so one body serves
 * both. That body must read through pointers with BPF_CORE_READ: raw_tp pointers are not BTF-typed. */
#ifndef NETBPF_TRACEPOINTS_BPF_H
#define NETBPF_TRACEPOINTS_BPF_H

/* Defines <prog>_btf and <prog>_raw for tracepoint `tp`, both returning `call`, which may use the
 * arguments named in `args` (the tracepoint's prototype, leading arguments only). */
#define TRACEPOINT_PROGRAMS(tp, prog, call, args...)					\
	SEC("tp_btf/" #tp) int BPF_PROG(prog##_btf, args) { return call; }		\
	SEC("raw_tp/" #tp) int BPF_PROG(prog##_raw, args) { return call; }

/* The same with a different expression for each: `btf_call` may read the BTF-typed arguments directly (a plain
 * load, no helper call), `raw_call` must read through BPF_CORE_READ. */
#define TRACEPOINT_PROGRAMS_BTF_RAW(tp, prog, btf_call, raw_call, args...)		\
	SEC("tp_btf/" #tp) int BPF_PROG(prog##_btf, args) { return btf_call; }		\
	SEC("raw_tp/" #tp) int BPF_PROG(prog##_raw, args) { return raw_call; }

/* Only these fields of the classic records are declared: their offsets have been stable since Linux 4.16;
 * anything newer is read from the socket with CO-RE or located with bpf_core_field_offset. */

/* sock:inet_sock_set_state */
struct tp_inet_sock_set_state {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
};

/* tcp:tcp_retransmit_skb and tcp:tcp_send_reset (both start with the skb and the socket) */
struct tp_tcp_sk_skb {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

/* tcp:tcp_receive_reset (and the other tcp_event_sk tracepoints) */
struct tp_tcp_sk {
	__u64 common;
	const void *skaddr;
};

/* syscalls:sys_enter_* and sys_exit_* */
struct tp_sys_enter {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct tp_sys_exit {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

#endif
