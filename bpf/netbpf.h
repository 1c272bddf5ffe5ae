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

/* A remote-address filter: prefix_len counts bits of the 16-byte form (IPv4 /24 is 96 + 24). */
struct netbpf_cidr {
	__u8 addr[NETBPF_ADDR_LEN];
	__u32 prefix_len;
};

#endif
