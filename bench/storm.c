/* Connection storm for the line-rate benchmark: a server that accepts on NPORTS listening ports and closes each
 * connection at once, and a client that connects to those ports as fast as it can (or at a given rate) and
 * closes each connection as soon as it is established. Loopback only (the harness runs both in a private network
 * namespace); every run is bounded in time and in count.
 *
 *   storm server ADDR PORT0 NPORTS MAX_SECONDS
 *       listens on ADDR:PORT0 .. PORT0+NPORTS-1, prints "ready"; on SIGTERM/SIGINT (or after MAX_SECONDS) prints
 *       {"accepted":N} and exits.
 *   storm client ADDR PORT0 NPORTS SECONDS MAX_CONNS RATE PARALLEL SRC_PREFIX [BURST_AT BURST_SECONDS BURST_RATE]
 *       connects round-robin to the ports from source addresses SRC_PREFIX.1 .. SRC_PREFIX.64 (IPv4, any port),
 *       at most PARALLEL handshakes in flight, RATE connections/s (0: as fast as possible), until SECONDS have
 *       passed or MAX_CONNS connections were started. From BURST_AT seconds on, for BURST_SECONDS, the rate is
 *       BURST_RATE. Prints {"made":N,"failed":N,"elapsedNs":N,"errors":{"ERRNO":N,...}}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_PORTS 64
#define SOURCES 64

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int server(const char *addr, int port0, int nports, int max_seconds)
{
	int ep = epoll_create1(0);
	if (ep < 0 || nports < 1 || nports > MAX_PORTS) {
		perror("server");
		return 1;
	}
	for (int i = 0; i < nports; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port0 + i) };
		inet_pton(AF_INET, addr, &sa.sin_addr);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096)) {
			fprintf(stderr, "listen %s:%d: %s\n", addr, port0 + i, strerror(errno));
			return 1;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready\n");
	fflush(stdout);
	unsigned long long accepted = 0;
	long long end = now_ns() + (long long)max_seconds * 1000000000LL;
	struct epoll_event evs[MAX_PORTS];
	while (!stopping && now_ns() < end) {
		int n = epoll_wait(ep, evs, MAX_PORTS, 100);
		for (int i = 0; i < n; i++) {
			for (;;) {
				int c = accept4(evs[i].data.fd, NULL, NULL, SOCK_NONBLOCK);
				if (c < 0)
					break;
				accepted++;
				close(c);
			}
		}
	}
	printf("{\"accepted\":%llu}\n", accepted);
	return 0;
}

struct errcount {
	int err;
	unsigned long long n;
};

static struct errcount errs[16];

static void count_error(int err)
{
	for (int i = 0; i < 16; i++) {
		if (errs[i].err == err || errs[i].err == 0) {
			errs[i].err = err;
			errs[i].n++;
			return;
		}
	}
}

static int client(int argc, char **argv)
{
	const char *addr = argv[2];
	int port0 = atoi(argv[3]), nports = atoi(argv[4]);
	double seconds = atof(argv[5]);
	long long max_conns = atoll(argv[6]);
	double rate = atof(argv[7]);
	int parallel = atoi(argv[8]);
	const char *prefix = argv[9];
	double burst_at = argc > 12 ? atof(argv[10]) : -1, burst_seconds = argc > 12 ? atof(argv[11]) : 0;
	double burst_rate = argc > 12 ? atof(argv[12]) : 0;
	if (nports < 1 || nports > MAX_PORTS || parallel < 1 || parallel > 4096) {
		fprintf(stderr, "client: bad arguments\n");
		return 2;
	}
	struct sockaddr_in dst[MAX_PORTS], src[SOURCES];
	for (int i = 0; i < nports; i++) {
		dst[i] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port0 + i) };
		inet_pton(AF_INET, addr, &dst[i].sin_addr);
	}
	for (int i = 0; i < SOURCES; i++) {
		char text[64];
		snprintf(text, sizeof(text), "%s.%d", prefix, i + 1);
		src[i] = (struct sockaddr_in){ .sin_family = AF_INET };
		if (inet_pton(AF_INET, text, &src[i].sin_addr) != 1) {
			fprintf(stderr, "client: bad source %s\n", text);
			return 2;
		}
	}
	int ep = epoll_create1(0);
	struct epoll_event evs[256];
	long long started = 0, made = 0, failed = 0, inflight = 0;
	long long t0 = now_ns(), deadline = t0 + (long long)(seconds * 1e9);
	/* Connections allowed by the rate so far (the burst window counts at its own rate). */
	double allowed = 0;
	long long last = t0;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (;;) {
		long long t = now_ns();
		int done = stopping || t >= deadline || started >= max_conns;
		if (done && inflight == 0)
			break;
		if (done && t >= deadline + 2000000000LL)
			break; /* in-flight handshakes get 2 s more, then the run ends (they count as failed) */
		double s = (t - t0) / 1e9;
		double r = (burst_at >= 0 && s >= burst_at && s < burst_at + burst_seconds) ? burst_rate : rate;
		allowed += r * (t - last) / 1e9;
		last = t;
		if (r > 0 && allowed > parallel)
			allowed = parallel; /* no catching up after a stall beyond one window */
		while (!done && inflight < parallel && (r <= 0 || allowed >= 1) && started < max_conns) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (fd < 0) {
				count_error(errno);
				failed++;
				started++;
				continue;
			}
			int one = 1;
			setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
			bind(fd, (struct sockaddr *)&src[started % SOURCES], sizeof(src[0]));
			int rc = connect(fd, (struct sockaddr *)&dst[started % nports], sizeof(dst[0]));
			started++;
			if (r > 0)
				allowed -= 1;
			if (rc == 0) {
				made++;
				close(fd);
			} else if (errno == EINPROGRESS) {
				struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				inflight++;
			} else {
				count_error(errno);
				failed++;
				close(fd);
			}
		}
		int n = epoll_wait(ep, evs, 256, inflight ? 1 : (r > 0 ? 1 : 0));
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, err = 0;
			socklen_t len = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err) {
				count_error(err);
				failed++;
			} else {
				made++;
			}
			close(fd); /* closing removes it from the epoll set */
			inflight--;
		}
	}
	failed += inflight;
	long long elapsed = now_ns() - t0;
	printf("{\"made\":%lld,\"failed\":%lld,\"started\":%lld,\"elapsedNs\":%lld,\"errors\":{", made, failed, started, elapsed);
	for (int i = 0, first = 1; i < 16 && errs[i].err; i++, first = 0)
		printf("%s\"%s\":%llu", first ? "" : ",", strerrorname_np(errs[i].err) ?: "?", errs[i].n);
	printf("}}\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "server"))
		return server(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (argc >= 10 && !strcmp(argv[1], "client"))
		return client(argc, argv);
	fprintf(stderr, "usage: storm server ADDR PORT0 NPORTS MAX_SECONDS\n"
			"       storm client ADDR PORT0 NPORTS SECONDS MAX_CONNS RATE PARALLEL SRC_PREFIX [BURST_AT BURST_SECONDS BURST_RATE]\n");
	return 2;
}
