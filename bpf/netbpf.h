/* Definitions shared by every netbpf BPF program and by user space. Constants are enums, not #defines, so that
 * they reach BTF: scripts/gen-contract.mjs generates src/core/netbpf.gen.ts from the compiled objects (the
 * anchors are in netbpf.bpf.h). */
#ifndef NETBPF_H
#define NETBPF_H

/* Address families as records carry them (the kernel's AF_INET, AF_INET6). */
enum netbpf_family {
	NETBPF_AF_INET = 2,
	NETBPF_AF_INET6 = 10,
};

enum netbpf_limits {
	/* Addresses are stored as 16 bytes in network order; IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d)
	 * so one comparison serves both families (CIDR filters, aggregation keys). */
	NETBPF_ADDR_LEN = 16,
	NETBPF_COMM_LEN = 16,   /* task comm, NUL-terminated (TASK_COMM_LEN) */
	NETBPF_MAX_CIDRS = 8,   /* entries of filter_cidrs */
};

/* How a socket's owning process was learned (bpf/owner.bpf.h); always in process context, never from softirq. */
enum netbpf_owner_source {
	NETBPF_OWNER_NONE = 0,    /* not seen in process context (e.g. accepted, never read/written, not closed yet) */
	NETBPF_OWNER_CONNECT = 1, /* CLOSE -> SYN_SENT, in the task calling connect() */
	NETBPF_OWNER_RECV = 2,    /* sock:sock_recv_length or tcp_recvmsg(), in the task calling recvmsg() */
	NETBPF_OWNER_SEND = 3,    /* sock:sock_send_length or tcp_sendmsg(), in the task calling sendmsg() */
	NETBPF_OWNER_CLOSE = 4,   /* -> FIN_WAIT1 / LAST_ACK, in the task calling close() or shutdown() */
};

/* A remote-address filter: prefix_len counts bits of the 16-byte form (IPv4 /24 is 96 + 24). */
struct netbpf_cidr {
	__u8 addr[NETBPF_ADDR_LEN];
	__u32 prefix_len;
};

#endif
