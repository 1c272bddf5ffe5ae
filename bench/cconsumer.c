/* The practical limit: a minimal libbpf ring buffer consumer that only counts records, with the same wakeup
 * policy as netbpf's addon (records submitted without wakeup, timed poll followed by consume).
 * usage: cconsumer TARGET_PID RING_BYTES POLL_MS WAKEUP_BYTES DESTINATIONS
 * Prints "ready" once attached; on SIGTERM/SIGINT drains the ring and prints one JSON line:
 * { received, lost, produced, cpuNs } with cpuNs = this process's user+system CPU since "ready". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/types.h>
#include "netbpf.h" /* struct netbpf_cidr, used by the skeleton's .rodata */
#include "bench.skel.h"

static volatile sig_atomic_t stopping;
static unsigned long long received;

static void on_signal(int sig) { stopping = 1; }

static int on_record(void *ctx, void *data, size_t size)
{
	received++;
	return 0;
}

static long long cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: cconsumer TARGET_PID RING_BYTES POLL_MS WAKEUP_BYTES DESTINATIONS\n");
		return 2;
	}
	int poll_ms = atoi(argv[3]);
	struct bench_bpf *skel = bench_bpf__open();
	if (!skel) {
		fprintf(stderr, "open: %d\n", -errno);
		return 1;
	}
	skel->rodata->target_pid = (__u32)atoi(argv[1]);
	skel->rodata->wakeup_bytes = strtoull(argv[4], NULL, 10);
	skel->rodata->destinations = (__u32)atoi(argv[5]);
	bpf_map__set_max_entries(skel->maps.events, (__u32)atoi(argv[2]));
	int err = bench_bpf__load(skel);
	if (!err)
		err = bench_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "load/attach: %d\n", err);
		bench_bpf__destroy(skel);
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "ring_buffer__new: %d\n", -errno);
		bench_bpf__destroy(skel);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	long long cpu0 = cpu_ns();
	printf("ready\n");
	fflush(stdout);
	while (!stopping) {
		int n = ring_buffer__poll(rb, poll_ms);
		if (n >= 0 || n == -EINTR)
			n = ring_buffer__consume(rb);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "poll: %d\n", n);
			break;
		}
	}
	bench_bpf__detach(skel);
	ring_buffer__consume(rb);
	long long cpu = cpu_ns() - cpu0;

	unsigned long long lost = 0;
	int ncpu = libbpf_num_possible_cpus();
	__u64 *per = calloc(ncpu, sizeof(__u64));
	__u32 zero = 0;
	if (per && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.lost), &zero, per))
		for (int i = 0; i < ncpu; i++)
			lost += per[i];
	printf("{\"received\":%llu,\"lost\":%llu,\"produced\":%llu,\"cpuNs\":%lld}\n", received, lost,
	       (unsigned long long)skel->data_produced->produced, cpu);
	free(per);
	ring_buffer__free(rb);
	bench_bpf__destroy(skel);
	return 0;
}
