/* Spoofed-source UDP flood for the reliability tests and the soak (never leaves a private namespace):
 * sends COUNT IPv4/UDP packets to DST:DPORT through a raw socket, packet i from source address
 * BASE + (i % DISTINCT) (BASE = 100.64.0.0, the shared address space: up to 4,194,304 distinct sources),
 * optionally paced to RATE packets per second (0 = as fast as it goes). BASE can be moved inside 100.64.0.0/10
 * (e.g. 100.80.0.0) so that concurrent runs are told apart by a CIDR filter. Prints "<sent> <elapsed_ns>".
 * usage: flood DST DPORT COUNT [RATE] [DISTINCT] [BASE] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
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

struct packet {
	struct iphdr ip;
	struct udphdr udp;
	char payload[PAYLOAD];
} __attribute__((packed));

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: flood DST DPORT COUNT [RATE] [DISTINCT] [BASE]\n");
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "flood: bad address %s\n", argv[1]);
		return 2;
	}
	unsigned dport = atoi(argv[2]);
	long long total = atoll(argv[3]);
	double rate = argc > 4 ? atof(argv[4]) : 0;
	unsigned long long distinct = argc > 5 ? strtoull(argv[5], NULL, 10) : SOURCE_SPAN;
	if (distinct == 0 || distinct > SOURCE_SPAN)
		distinct = SOURCE_SPAN;
	struct in_addr base = { .s_addr = htonl(SOURCE_BASE) };
	if (argc > 6 && inet_pton(AF_INET, argv[6], &base) != 1) {
		fprintf(stderr, "flood: bad base address %s\n", argv[6]);
		return 2;
	}

	/* IPPROTO_RAW implies IP_HDRINCL: the kernel fills in the IP checksum and total length. */
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		perror("flood: socket");
		return 1;
	}
	static struct packet pkts[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	for (int i = 0; i < BATCH; i++) {
		struct packet *p = &pkts[i];
		p->ip.version = 4;
		p->ip.ihl = 5;
		p->ip.ttl = 64;
		p->ip.protocol = IPPROTO_UDP;
		p->ip.tot_len = htons(sizeof(*p));
		p->ip.daddr = dst.sin_addr.s_addr;
		p->udp.dest = htons(dport);
		p->udp.len = htons(sizeof(p->udp) + PAYLOAD);
		p->udp.check = 0; /* no UDP checksum (allowed for IPv4) */
		memcpy(p->payload, "netbpf-flood....", PAYLOAD);
		iov[i].iov_base = p;
		iov[i].iov_len = sizeof(*p);
		msgs[i].msg_hdr.msg_name = &dst;
		msgs[i].msg_hdr.msg_namelen = sizeof(dst);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	long long sent = 0, t0 = now_ns();
	while (sent < total) {
		long long n = total - sent;
		if (rate > 0) {
			long long allowed = (long long)(rate * (now_ns() - t0) / 1e9) + 1;
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
			pkts[i].ip.saddr = htonl(ntohl(base.s_addr) + (unsigned)(k % distinct));
			pkts[i].ip.id = htons((unsigned short)k);
			pkts[i].udp.source = htons(1024 + (unsigned)(k & 0x7fff));
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			perror("flood: sendmmsg");
			return 1;
		}
		sent += r;
	}
	printf("%lld %lld\n", sent, now_ns() - t0);
	return 0;
}
