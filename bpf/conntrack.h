/* netbpf conntrack: the record one conntrack entry's creation or destruction produces. The contract between
 * bpf/conntrack.bpf.c, addon/ctnetlink.cc (which writes the same records from ctnetlink messages) and
 * src/tools/conntrack.ts (generated into src/tools/conntrack/bpf.gen.ts from BTF). */
#ifndef NETBPF_CONNTRACK_H
#define NETBPF_CONNTRACK_H

#include "netbpf.h"

enum ct_event_kind {
	CT_EVENT_NEW = 1,     /* entry confirmed (inserted into the table) */
	CT_EVENT_DESTROY = 2, /* entry removed from the table (timeout, RST/close, flush, early drop) */
	CT_EVENT_LISTED = 3,  /* entry listed by a ctnetlink table dump (addon only) */
};

/* ct_event.flags */
enum ct_flags {
	CT_FLAG_ACCT = 1,   /* packets/bytes present */
	CT_FLAG_TSTAMP = 2, /* start_ns present */
	CT_FLAG_NETLINK = 4, /* written by the addon from a ctnetlink message, not by a BPF program */
};

struct ct_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns() (CLOCK_MONOTONIC); ctnetlink: the event's time on that clock */
	__u64 start_ns;       /* entry creation, CLOCK_REALTIME ns (nf_conntrack_timestamp=1), else 0 */
	__u64 packets[2];     /* original, reply direction (nf_conntrack_acct=1), else 0 */
	__u64 bytes[2];
	__u8 orig_src[NETBPF_ADDR_LEN];  /* original direction: what the client sent (destination = VIP) */
	__u8 orig_dst[NETBPF_ADDR_LEN];
	__u8 reply_src[NETBPF_ADDR_LEN]; /* reply direction: who really answers (DNAT backend) */
	__u8 reply_dst[NETBPF_ADDR_LEN]; /* ... and to whom (SNAT address) */
	__u32 netns;          /* network namespace inode of the entry */
	__u32 mark;           /* ct mark */
	__u32 status;         /* enum ip_conntrack_status bits (IPS_*) */
	__u16 zone;
	__u16 family;
	__u16 orig_sport;
	__u16 orig_dport;
	__u16 reply_sport;
	__u16 reply_dport;
	__u8 protocol;        /* IPPROTO_* */
	__u8 kind;            /* enum ct_event_kind */
	__u8 tcp_state;       /* enum tcp_conntrack (TCP only), else 0 */
	__u8 flags;           /* enum ct_flags */
	__u8 pad[4];          /* explicit: no implicit padding, every byte written */
};

#endif
