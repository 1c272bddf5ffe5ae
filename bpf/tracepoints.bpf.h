/* Leading fields of the classic tracepoint records netbpf reads, shared by every tool that uses them.
 * Only fields whose offsets have been stable since Linux 4.16 are declared; anything newer is read from the
 * socket with CO-RE or located with bpf_core_field_offset against the running kernel's BTF. */
#ifndef NETBPF_TRACEPOINTS_BPF_H
#define NETBPF_TRACEPOINTS_BPF_H

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

#endif
