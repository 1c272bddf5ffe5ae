/* Keeps the kernel's BPF run-time statistics on (run_time_ns / run_cnt in bpf_prog_info) for as long as it runs:
 * BPF_ENABLE_STATS hands out a file descriptor and the statistics stay on while any such descriptor is open,
 * so, unlike the kernel.bpf_stats_enabled sysctl, concurrent users cannot switch them off under each other.
 * Prints "enabled" once they are on, then waits for its standard input to close (or a signal).
 * usage: bpfstats */
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	int fd = syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
	if (fd < 0) {
		perror("bpfstats: BPF_ENABLE_STATS");
		return 1;
	}
	printf("enabled\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}
