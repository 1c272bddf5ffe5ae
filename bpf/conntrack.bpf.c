// SPDX-License-Identifier: GPL-2.0
/* netbpf conntrack: one record per conntrack entry confirmed (new) and per entry deleted (destroy).
 * Hooks, best first:
 *   new:     fexit/__nf_conntrack_confirm (every successful insert) > kprobe/__nf_conntrack_confirm >
 *            a BPF_PROG_TYPE_NETFILTER program at LOCAL_IN and POST_ROUTING just before conntrack's own
 *            confirm (one priority below it: INT_MAX - 1, for IPv6 LOCAL_IN INT_MAX - 2), seeing each
 *            unconfirmed entry's first packet (kernel >= 6.4).
 *   destroy: fexit/nf_ct_delete (returns true once per entry) > kprobe/nf_ct_delete.
 * Where no destroy hook loads, user space reads ctnetlink DESTROY events instead (src/tools/conntrack.ts). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netbpf.bpf.h"
#include "conntrack.h"

char LICENSE[] SEC("license") = "GPL";

/* The record contract with src/tools/conntrack/bpf.gen.ts (see NETBPF_CONTRACT). */
NETBPF_CONTRACT(struct ct_event);
NETBPF_CONTRACT(enum ct_event_kind);
NETBPF_CONTRACT(enum ct_flags);

#define NFCT_PTRMASK (~7UL) /* skb->_nfct: nf_conn pointer | ctinfo (include/linux/skbuff.h) */
#define NFCT_INFOMASK 7UL
#define NF_ACCEPT 1

static __always_inline void read_tuple_addrs(const struct nf_conntrack_tuple *t, __u16 family, __u8 src[NETBPF_ADDR_LEN], __u8 dst[NETBPF_ADDR_LEN])
{
	if (family == NETBPF_AF_INET) {
		addr_from_v4(src, BPF_CORE_READ(t, src.u3.ip));
		addr_from_v4(dst, BPF_CORE_READ(t, dst.u3.ip));
	} else {
		BPF_CORE_READ_INTO(src, t, src.u3.in6.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(dst, t, dst.u3.in6.in6_u.u6_addr8);
	}
}

/* An entry's extension area (accounting, timestamp) by id; ids differ across kernels: take them via CO-RE. */
static __always_inline const void *ct_ext(const struct nf_conn *ct, int id)
{
	const struct nf_ct_ext *ext = BPF_CORE_READ(ct, ext);
	if (!ext || id < 0 || id >= 9)
		return NULL;
	__u8 off = 0;
	bpf_probe_read_kernel(&off, 1, &ext->offset[id]);
	if (!off)
		return NULL;
	return (const void *)ext + off;
}

static __always_inline int record_ct(const struct nf_conn *ct, __u8 kind)
{
	const struct nf_conntrack_tuple *orig = &ct->tuplehash[0].tuple;
	const struct nf_conntrack_tuple *reply = &ct->tuplehash[1].tuple;
	struct sock_tuple t = {};
	t.family = BPF_CORE_READ(orig, src.l3num);
	if (t.family != NETBPF_AF_INET && t.family != NETBPF_AF_INET6)
		return 0;
	/* Filters apply to the original direction, as a client sees it: destination = where it connected. */
	read_tuple_addrs(orig, t.family, t.saddr, t.daddr);
	t.sport = bpf_ntohs(BPF_CORE_READ(orig, src.u.all));
	t.dport = bpf_ntohs(BPF_CORE_READ(orig, dst.u.all));
	if (!tuple_wanted(&t))
		return 0;

	struct ct_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(e->orig_src, t.saddr, NETBPF_ADDR_LEN);
	__builtin_memcpy(e->orig_dst, t.daddr, NETBPF_ADDR_LEN);
	read_tuple_addrs(reply, t.family, e->reply_src, e->reply_dst);
	e->family = t.family;
	e->orig_sport = t.sport;
	e->orig_dport = t.dport;
	e->reply_sport = bpf_ntohs(BPF_CORE_READ(reply, src.u.all));
	e->reply_dport = bpf_ntohs(BPF_CORE_READ(reply, dst.u.all));
	e->protocol = BPF_CORE_READ(orig, dst.protonum);
	e->kind = kind;
	e->status = BPF_CORE_READ(ct, status);
	e->netns = BPF_CORE_READ(ct, ct_net.net, ns.inum);
	if (bpf_core_field_exists(ct->mark))
		e->mark = BPF_CORE_READ(ct, mark);
	if (bpf_core_field_exists(ct->zone))
		e->zone = BPF_CORE_READ(ct, zone.id);
	if (e->protocol == IPPROTO_TCP)
		e->tcp_state = BPF_CORE_READ(ct, proto.tcp.state);
	/* The extension types are in the kernel's BTF only where built-in code uses them (5.10 has no module BTF, and
	 * neither nf_conn_acct nor nf_conn_tstamp in vmlinux): CO-RE cannot place the fields of a type the kernel does
	 * not describe, so there the layouts both have had since they exist (3.x) are read as they are. */
	if (bpf_core_enum_value_exists(enum nf_ct_ext_id, NF_CT_EXT_ACCT)) {
		const struct nf_conn_acct *acct = ct_ext(ct, bpf_core_enum_value(enum nf_ct_ext_id, NF_CT_EXT_ACCT));
		if (acct) {
			if (bpf_core_type_exists(struct nf_conn_acct)) {
				e->packets[0] = BPF_CORE_READ(acct, counter[0].packets.counter);
				e->bytes[0] = BPF_CORE_READ(acct, counter[0].bytes.counter);
				e->packets[1] = BPF_CORE_READ(acct, counter[1].packets.counter);
				e->bytes[1] = BPF_CORE_READ(acct, counter[1].bytes.counter);
			} else {
				__u64 c[4]; /* counter[dir] = { atomic64_t packets, bytes } for original, then reply */
				if (!bpf_probe_read_kernel(c, sizeof(c), acct)) {
					e->packets[0] = c[0];
					e->bytes[0] = c[1];
					e->packets[1] = c[2];
					e->bytes[1] = c[3];
				}
			}
			e->flags |= CT_FLAG_ACCT;
		}
	}
	if (bpf_core_enum_value_exists(enum nf_ct_ext_id, NF_CT_EXT_TSTAMP)) {
		const struct nf_conn_tstamp *ts = ct_ext(ct, bpf_core_enum_value(enum nf_ct_ext_id, NF_CT_EXT_TSTAMP));
		if (ts) {
			/* Without the type's BTF: `start` is its first field. */
			if (bpf_core_type_exists(struct nf_conn_tstamp))
				e->start_ns = BPF_CORE_READ(ts, start);
			else
				bpf_probe_read_kernel(&e->start_ns, sizeof(e->start_ns), ts);
			e->flags |= CT_FLAG_TSTAMP;
		}
	}
	submit_event(e);
	return 0;
}

static __always_inline const struct nf_conn *skb_ct(const struct sk_buff *skb, __u64 *ctinfo)
{
	__u64 nfct = BPF_CORE_READ(skb, _nfct);
	*ctinfo = nfct & NFCT_INFOMASK;
	return (const struct nf_conn *)(nfct & NFCT_PTRMASK);
}

/* Preferred: the confirm function itself; returning NF_ACCEPT means the entry is now in the table. */
SEC("fexit/__nf_conntrack_confirm")
int BPF_PROG(handle_confirm_fexit, struct sk_buff *skb, int ret)
{
	__u64 ctinfo;
	const struct nf_conn *ct = skb_ct(skb, &ctinfo);
	if (ret != NF_ACCEPT || !ct)
		return 0;
	return record_ct(ct, CT_EVENT_NEW);
}

/* kprobe: sees the entry just before insertion (a rare insert clash would be reported too). */
SEC("kprobe/__nf_conntrack_confirm")
int BPF_KPROBE(handle_confirm_kprobe, struct sk_buff *skb)
{
	__u64 ctinfo;
	const struct nf_conn *ct = skb_ct(skb, &ctinfo);
	if (!ct)
		return 0;
	return record_ct(ct, CT_EVENT_NEW);
}

/* Netfilter program (kernel >= 6.4, CONFIG_NETFILTER_BPF_LINK): attached at LOCAL_IN and POST_ROUTING one
 * priority below conntrack's confirm (INT_MAX; IPv6 LOCAL_IN INT_MAX - 1), so it runs right before it. An
 * entry not yet confirmed on its first packet is one about to be inserted. Always accepts the packet. */
SEC("netfilter")
int handle_nf_confirm(struct bpf_nf_ctx *ctx)
{
	__u64 ctinfo;
	const struct nf_conn *ct = skb_ct(ctx->skb, &ctinfo);
	if (!ct || ctinfo != bpf_core_enum_value(enum ip_conntrack_info, IP_CT_NEW))
		return NF_ACCEPT;
	__u64 status = BPF_CORE_READ(ct, status);
	if (status & (1UL << bpf_core_enum_value(enum ip_conntrack_status, IPS_CONFIRMED_BIT)))
		return NF_ACCEPT;
	record_ct(ct, CT_EVENT_NEW);
	return NF_ACCEPT;
}

/* Destroy: nf_ct_delete() returns true once per entry, when it marks it dying and unlinks it. */
SEC("fexit/nf_ct_delete")
int BPF_PROG(handle_delete_fexit, struct nf_conn *ct, u32 portid, int report, bool ret)
{
	if (!ret)
		return 0;
	return record_ct(ct, CT_EVENT_DESTROY);
}

/* kprobe: also called for entries already dying (rare), which it then reports a second time. */
SEC("kprobe/nf_ct_delete")
int BPF_KPROBE(handle_delete_kprobe, struct nf_conn *ct)
{
	__u64 status = BPF_CORE_READ(ct, status);
	if (status & (1UL << bpf_core_enum_value(enum ip_conntrack_status, IPS_DYING_BIT)))
		return 0;
	return record_ct(ct, CT_EVENT_DESTROY);
}
