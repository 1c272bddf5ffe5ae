/* Spoofed-source flood for the reliability tests, the soak and the benchmarks (never leaves a private namespace):
 * sends COUNT IPv4 packets to DST:DPORT through a raw socket, packet i from source address BASE + (i % DISTINCT)
 * (BASE = 100.64.0.0, the shared address space: up to 4,194,304 distinct sources) with source port
 * 1024 + (i % 32768), optionally paced to RATE packets per second (0 = as fast as it goes). BASE can be moved
 * inside 100.64.0.0/10 (e.g. 100.80.0.0) so that concurrent runs are told apart by a CIDR filter.
 * Options (after the positional arguments):
 *   --heavy N      skewed: every other packet comes from one of N heavy sources (BASE + DISTINCT + j, in turn);
 *                  the rest from the DISTINCT light ones as above (i counts only light packets then)
 *   --syn          TCP SYNs (checksummed) instead of 16-byte UDP datagrams
 *   --dports N     destination port DPORT + (i % N): N destinations
 *   --counts FILE  writes what each source sent: "<address> <packets>" per source with at least --counts-min
 *                  packets (default 1), heaviest first, then "# rest <sources> <packets> <max per source>"
 * Prints "<sent> <elapsed_ns> <cpu_ns>" (cpu_ns: this process's CPU time, which includes the receiving
 * namespace's softirq work done on its behalf, so a tracer's per-packet cost shows in it).
 * usage: flood DST DPORT COUNT [RATE] [DISTINCT] [BASE] [--heavy N] [--syn] [--dports N] [--counts FILE [--counts-min M]] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 16
#define SOURCE_BASE 0x64400000u /* 100.64.0.0 */
#define SOURCE_SPAN (1u << 22)  /* 100.64.0.0/10 */

struct udp_packet {
	struct iphdr ip;
	struct udphdr udp;
	char payload[PAYLOAD];
} __attribute__((packed));

struct syn_packet {
	struct iphdr ip;
	struct tcphdr tcp;
};
_Static_assert(sizeof(struct syn_packet) == 40, "IPv4 + TCP headers without options, no padding");

union packet {
	struct iphdr ip;
	struct udp_packet udp;
	struct syn_packet syn;
};

static long long clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The TCP checksum over the IPv4 pseudo-header and a 20-byte header without options. */
static uint16_t tcp_checksum(const struct iphdr *ip, const struct tcphdr *tcp)
{
	uint32_t sum = 0;
	const uint16_t *w = (const uint16_t *)&ip->saddr;
	for (int i = 0; i < 4; i++) /* saddr, daddr */
		sum += w[i];
	sum += htons(IPPROTO_TCP);
	sum += htons(sizeof(*tcp));
	w = (const uint16_t *)tcp;
	for (size_t i = 0; i < sizeof(*tcp) / 2; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int by_count_desc(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x >> 32) < (y >> 32) ? 1 : (x >> 32) > (y >> 32) ? -1 : 0;
}

/* "<address> <packets>" per source with at least `min` packets, heaviest first, then the rest in one line. */
static int write_counts(const char *path, const uint32_t *counts, unsigned long long sources, uint32_t base, uint32_t min)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror("flood: counts file");
		return -1;
	}
	uint64_t *listed = malloc(sizeof(*listed) * (sources ? sources : 1));
	unsigned long long n = 0, rest = 0, rest_packets = 0, rest_max = 0;
	for (unsigned long long i = 0; i < sources; i++) {
		if (!counts[i])
			continue;
		if (counts[i] >= min) {
			listed[n++] = ((uint64_t)counts[i] << 32) | (uint32_t)i;
		} else {
			rest++;
			rest_packets += counts[i];
			if (counts[i] > rest_max)
				rest_max = counts[i];
		}
	}
	qsort(listed, n, sizeof(*listed), by_count_desc);
	for (unsigned long long i = 0; i < n; i++) {
		struct in_addr a = { .s_addr = htonl(base + (uint32_t)listed[i]) };
		fprintf(f, "%s %u\n", inet_ntoa(a), (unsigned)(listed[i] >> 32));
	}
	fprintf(f, "# rest %llu %llu %llu\n", rest, rest_packets, rest_max);
	free(listed);
	return fclose(f);
}

int main(int argc, char **argv)
{
	const char *pos[6] = { 0 };
	int npos = 0;
	unsigned heavy = 0, dports = 1, counts_min = 1;
	int syn = 0;
	const char *counts_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--heavy") && i + 1 < argc)
			heavy = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dports") && i + 1 < argc)
			dports = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--counts") && i + 1 < argc)
			counts_path = argv[++i];
		else if (!strcmp(argv[i], "--counts-min") && i + 1 < argc)
			counts_min = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--syn"))
			syn = 1;
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			npos = 7; /* unknown option: usage */
		else if (npos < 6)
			pos[npos++] = argv[i];
		else
			npos = 7;
	}
	if (npos < 3 || npos > 6 || dports == 0) {
		fprintf(stderr, "usage: flood DST DPORT COUNT [RATE] [DISTINCT] [BASE] [--heavy N] [--syn] [--dports N] [--counts FILE [--counts-min M]]\n");
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, pos[0], &dst.sin_addr) != 1) {
		fprintf(stderr, "flood: bad address %s\n", pos[0]);
		return 2;
	}
	unsigned dport = atoi(pos[1]);
	long long total = atoll(pos[2]);
	double rate = npos > 3 ? atof(pos[3]) : 0;
	unsigned long long distinct = npos > 4 ? strtoull(pos[4], NULL, 10) : SOURCE_SPAN;
	if (distinct == 0 || distinct > SOURCE_SPAN)
		distinct = SOURCE_SPAN;
	struct in_addr base = { .s_addr = htonl(SOURCE_BASE) };
	if (npos > 5 && inet_pton(AF_INET, pos[5], &base) != 1) {
		fprintf(stderr, "flood: bad base address %s\n", pos[5]);
		return 2;
	}
	uint32_t base_host = ntohl(base.s_addr);
	if ((uint64_t)(base_host - SOURCE_BASE) + distinct + heavy > SOURCE_SPAN) {
		fprintf(stderr, "flood: %llu + %u sources from %s leave 100.64.0.0/10\n", distinct, heavy, pos[5] ? pos[5] : "100.64.0.0");
		return 2;
	}
	uint32_t *counts = NULL;
	if (counts_path && !(counts = calloc(distinct + heavy, sizeof(*counts)))) {
		perror("flood: counts");
		return 1;
	}

	/* IPPROTO_RAW implies IP_HDRINCL: the kernel fills in the IP checksum and total length. */
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		perror("flood: socket");
		return 1;
	}
	static union packet pkts[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	for (int i = 0; i < BATCH; i++) {
		union packet *p = &pkts[i];
		p->ip.version = 4;
		p->ip.ihl = 5;
		p->ip.ttl = 64;
		p->ip.daddr = dst.sin_addr.s_addr;
		if (syn) {
			p->ip.protocol = IPPROTO_TCP;
			p->ip.tot_len = htons(sizeof(p->syn));
			p->syn.tcp.doff = sizeof(p->syn.tcp) / 4;
			p->syn.tcp.syn = 1;
			p->syn.tcp.window = htons(64240);
			iov[i].iov_len = sizeof(p->syn);
		} else {
			p->ip.protocol = IPPROTO_UDP;
			p->ip.tot_len = htons(sizeof(p->udp));
			p->udp.udp.len = htons(sizeof(p->udp.udp) + PAYLOAD);
			p->udp.udp.check = 0; /* no UDP checksum (allowed for IPv4) */
			memcpy(p->udp.payload, "netbpf-flood....", PAYLOAD);
			iov[i].iov_len = sizeof(p->udp);
		}
		iov[i].iov_base = p;
		msgs[i].msg_hdr.msg_name = &dst;
		msgs[i].msg_hdr.msg_namelen = sizeof(dst);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	long long sent = 0, t0 = clock_ns(CLOCK_MONOTONIC), cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	while (sent < total) {
		long long n = total - sent;
		if (rate > 0) {
			long long allowed = (long long)(rate * (clock_ns(CLOCK_MONOTONIC) - t0) / 1e9) + 1;
			if (allowed <= sent) {
				struct timespec pause = { 0, 1000000 };
				nanosleep(&pause, NULL);
				continue;
			}
			if (n > allowed - sent)
				n = allowed - sent;
		}
		if (n > BATCH)
			n = BATCH;
		for (int i = 0; i < n; i++) {
			unsigned long long k = (unsigned long long)(sent + i);
			/* Skewed: even packets from the heavy sources in turn, odd ones (k / 2) from the light ones. */
			unsigned long long j = heavy ? k / 2 : k;
			uint32_t source = heavy && !(k & 1) ? distinct + (uint32_t)(j % heavy) : (uint32_t)(j % distinct);
			union packet *p = &pkts[i];
			p->ip.saddr = htonl(base_host + source);
			p->ip.id = htons((unsigned short)k);
			uint16_t sport = htons(1024 + (unsigned)(k & 0x7fff));
			uint16_t port = htons(dport + (unsigned)(k % dports));
			if (syn) {
				p->syn.tcp.source = sport;
				p->syn.tcp.dest = port;
				p->syn.tcp.seq = htonl((uint32_t)(k * 2654435761u));
				p->syn.tcp.check = 0;
				p->syn.tcp.check = tcp_checksum(&p->ip, &p->syn.tcp);
			} else {
				p->udp.udp.source = sport;
				p->udp.udp.dest = port;
			}
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			perror("flood: sendmmsg");
			return 1;
		}
		if (counts) {
			for (int i = 0; i < r; i++) {
				unsigned long long k = (unsigned long long)(sent + i);
				unsigned long long j = heavy ? k / 2 : k;
				counts[heavy && !(k & 1) ? distinct + (uint32_t)(j % heavy) : (uint32_t)(j % distinct)]++;
			}
		}
		sent += r;
	}
	long long elapsed = clock_ns(CLOCK_MONOTONIC) - t0, cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	if (counts && write_counts(counts_path, counts, distinct + heavy, base_host, counts_min))
		return 1;
	printf("%lld %lld %lld\n", sent, elapsed, cpu);
	return 0;
}
