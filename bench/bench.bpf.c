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
#include "retrans.h"

char LICENSE[] SEC("license") = "GPL";

/* Process whose getppid() calls produce records (set before load). */
const volatile __u32 target_pid = 0;
/* Distinct destination addresses the records cycle through. */
const volatile __u32 destinations = 256;

/* Records produced so far; also the sequence number written into each record. Single producer thread. */
__u64 produced = 0;

#if defined(__TARGET_ARCH_x86)
#define NB_NR_GETPPID 110
#elif defined(__TARGET_ARCH_arm64)
#define NB_NR_GETPPID 173
#else
#error "getppid's syscall number is not known for this architecture"
#endif

/* The raw syscall-entry tracepoint as tp_btf: attaches by name, no tracefs (as the tools do). It runs for every
 * syscall of the host, so it compares the number and the process first. */
SEC("tp_btf/sys_enter")
int BPF_PROG(handle_getppid, struct pt_regs *regs, long id)
{
	if (id != NB_NR_GETPPID || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	__u64 seq = produced++;
	struct retrans_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
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
	submit_event(e);
	return 0;
}
