// SPDX-License-Identifier: GPL-2.0
/* Benchmark-only program (not a tool): every getppid() of one process emits one struct retrans_event, the
 * size and layout of a real retrans record, through the shared ring buffer with the shared reserve/submit/lost
 * policy (netbpf.bpf.h). The generator (bench/gen.c) calls getppid() in a loop; consumers count what arrives.
 * The fields are plausible, not real: a few hundred distinct destinations, so per-destination aggregation in
 * user space does the work it does in production. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "netbpf.bpf.h"
#include "agg.bpf.h"
#include "owner.bpf.h"
#include "retrans.h"
#include "retrans.bpf.h"
#include "life.h"

char LICENSE[] SEC("license") = "GPL";

/* Process whose getppid() calls produce records (set before load). */
const volatile __u32 target_pid = 0;
/* Distinct destination addresses the records cycle through. */
const volatile __u32 destinations = 256;
/* Emit struct life_event records (one connection end each, a storm's shape) instead of retrans_event. */
const volatile __u8 life_records = 0;

/* Records produced so far; also the sequence number written into each record. Single producer thread. In a section
 * of its own, so consumers find it at offset 0 whatever other globals the shared headers add. */
__u64 produced SEC(".data.produced") = 0;

#if defined(__TARGET_ARCH_x86)
#define NB_NR_GETPPID 110
#elif defined(__TARGET_ARCH_arm64)
#define NB_NR_GETPPID 173
#else
#error "getppid's syscall number is not known for this architecture"
#endif

/* A retransmit with plausible fields: `destinations` remote addresses, a few kinds and segment counts. */
static __always_inline void fill(struct retrans_event *e, __u64 seq)
{
	__u32 dest = destinations ? (__u32)(seq % destinations) : 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = 1;
	addr_from_v4(e->saddr, bpf_htonl(0x0ae70001));               /* 10.231.0.1 */
	addr_from_v4(e->daddr, bpf_htonl(0x0ae80000 | (dest + 1)));  /* 10.232.x.y */
	e->netns = 4026531840;
	e->pid = target_pid;
	e->srtt_us = 200 + (__u32)(seq & 1023);
	e->segs = 1 + (__u32)(seq & 3);
	e->total_retrans = (__u32)(seq >> 4) + 1;
	e->segs_out = (__u32)seq + 100;
	e->err = 0;
	e->family = NETBPF_AF_INET;
	e->sport = 40000 + (__u16)(seq & 63);
	e->dport = 443;
	e->state = 1;                  /* ESTABLISHED */
	e->kind = 1 + (__u8)(seq % 3); /* rto, fast, tlp */
	e->ca_state = 4;               /* Loss */
	e->retransmits = (__u8)(seq & 7);
	__builtin_memcpy(e->comm, "bench-gen\0\0\0\0\0\0", NETBPF_COMM_LEN);
	__builtin_memset(e->pad, 0, sizeof(e->pad));
}

/* A connection end of a loopback storm: client and server ends alternate, 64 client addresses, 8 server ports. */
static __always_inline void fill_life(struct life_event *e, __u64 seq)
{
	bool accept = seq & 1;
	__u32 client = bpf_htonl(0x7f630100 | (1 + (__u32)(seq % 64))), server = bpf_htonl(0x7f630001);
	__u16 eph = 1024 + (__u16)(seq % 60000), port = 20000 + (__u16)(seq & 7);
	e->ts_ns = bpf_ktime_get_ns();
	e->birth_ns = e->ts_ns - 200000;
	e->established_ns = e->ts_ns - 150000;
	e->cgroup_id = 1;
	e->bytes_acked = accept ? 1 : 2;
	e->bytes_received = 1;
	addr_from_v4(e->saddr, accept ? server : client);
	addr_from_v4(e->daddr, accept ? client : server);
	e->netns = 4026531840;
	e->pid = target_pid;
	e->srtt_us = 20 + (__u32)(seq % 50);
	e->total_retrans = 0;
	e->segs_out = 3;
	e->segs_in = 3;
	e->sk_err = 0;
	e->family = NETBPF_AF_INET;
	e->sport = accept ? port : eph;
	e->dport = accept ? eph : port;
	e->kind = LIFE_CLOSED;
	e->direction = accept ? LIFE_DIR_ACCEPT : LIFE_DIR_CONNECT;
	e->old_state = accept ? 9 : 5; /* LAST_ACK, FIN_WAIT2 */
	e->flags = LIFE_FIN_RECEIVED | LIFE_FIN_ACKED | (accept ? 0 : LIFE_SYN_ACKED);
	e->owner_source = accept ? NETBPF_OWNER_CLOSE : NETBPF_OWNER_CONNECT;
	e->pad = 0;
	__builtin_memcpy(e->comm, "bench-gen\0\0\0\0\0\0", NETBPF_COMM_LEN);
}

/* The raw syscall-entry tracepoint as tp_btf: attaches by name, no tracefs (as the tools do). It runs for every
 * syscall of the host, so it compares the number and the process first. With aggregate_in_kernel (summary-only
 * runs) each record is counted into retrans's summary maps (bpf/retrans.bpf.h) instead, as `retrans --summary`. */
SEC("tp_btf/sys_enter")
int BPF_PROG(handle_getppid, struct pt_regs *regs, long id)
{
	if (id != NB_NR_GETPPID || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	__u64 seq = produced++;
	if (life_records) {
		struct life_event *l = reserve_event(sizeof(*l));
		if (l) {
			fill_life(l, seq);
			submit_event(l);
		}
		return 0;
	}
	if (aggregate_in_kernel) {
		struct retrans_event e;
		fill(&e, seq);
		aggregate(&e, NULL);
		return 0;
	}
	struct retrans_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	fill(e, seq);
	submit_event(e);
	return 0;
}
