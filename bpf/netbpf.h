/* Definitions shared by every netbpf BPF program and by user space (src/core/layout.ts mirrors them;
 * test/unit/layout.test.ts checks the mirror against the compiled objects' BTF). */
#ifndef NETBPF_H
#define NETBPF_H

#define NETBPF_AF_INET 2
#define NETBPF_AF_INET6 10

/* Addresses are stored as 16 bytes in network order; IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d)
 * so one comparison serves both families (CIDR filters, aggregation keys). */
#define NETBPF_ADDR_LEN 16
#define NETBPF_COMM_LEN 16
#define NETBPF_MAX_CIDRS 8

/* A remote-address filter: prefix_len counts bits of the 16-byte form (IPv4 /24 is 96 + 24). */
struct netbpf_cidr {
	__u8 addr[NETBPF_ADDR_LEN];
	__u32 prefix_len;
};

#endif
