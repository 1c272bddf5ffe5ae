/* Load for the overload test: each getppid() fires bench/bench.bpf.c once (one record through the shared ring
 * buffer policy). Prints its pid, then for each stdin line "CALLS RATE" makes CALLS calls at RATE per second
 * (0 = as fast as it goes) and prints "done CALLS". Several bursts from one process: the BPF program is
 * filtered to this pid, loaded once. */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	printf("%d\n", getpid());
	fflush(stdout);
	long long calls;
	double rate;
	while (scanf("%lld %lf", &calls, &rate) == 2) {
		long long t0 = now_ns();
		for (long long done = 0; done < calls; done++) {
			while (rate > 0 && done >= (long long)(rate * (now_ns() - t0) / 1e9)) {
				struct timespec pause = { 0, 200000 };
				nanosleep(&pause, NULL);
			}
			syscall(SYS_getppid);
		}
		printf("done %lld\n", calls);
		fflush(stdout);
	}
	return 0;
}
