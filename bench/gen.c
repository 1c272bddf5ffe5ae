/* Load generator for the pipeline benchmark: calls getppid() N times (each call fires bench.bpf.c once),
 * optionally paced to R calls per second, optionally with a burst: from BURST_AT seconds on, for BURST_SECONDS,
 * at BURST_RATE calls per second. Protocol with the harness: prints its pid, waits for one line on stdin (so the
 * consumer can load a program filtered to this pid first), runs, then prints "<calls> <elapsed_ns>".
 *   gen CALLS [CALLS_PER_SECOND [BURST_AT BURST_SECONDS BURST_RATE]] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: gen CALLS [CALLS_PER_SECOND]\n");
		return 2;
	}
	long long total = atoll(argv[1]);
	double rate = argc > 2 ? atof(argv[2]) : 0; /* 0: as fast as possible */
	double burst_at = argc > 5 ? atof(argv[3]) : -1, burst_seconds = argc > 5 ? atof(argv[4]) : 0;
	double burst_rate = argc > 5 ? atof(argv[5]) : 0;
	printf("%d\n", getpid());
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	long long done = 0, t0 = now_ns();
	while (done < total) {
		long long chunk = total - done;
		if (rate > 0) {
			/* Calls allowed so far at the requested rate (the burst window at its own); sleep when ahead. */
			double s = (now_ns() - t0) / 1e9, allowed_f = rate * s;
			if (burst_at >= 0 && s > burst_at)
				allowed_f += (burst_rate - rate) * (s < burst_at + burst_seconds ? s - burst_at : burst_seconds);
			long long allowed = (long long)allowed_f + 1;
			if (allowed <= done) {
				struct timespec pause = { 0, 100000 };
				nanosleep(&pause, NULL);
				continue;
			}
			if (chunk > allowed - done)
				chunk = allowed - done;
		}
		if (chunk > 4096)
			chunk = 4096;
		for (long long i = 0; i < chunk; i++)
			syscall(SYS_getppid); /* not getppid(): never cached by libc */
		done += chunk;
	}
	printf("%lld %lld\n", done, now_ns() - t0);
	return 0;
}
