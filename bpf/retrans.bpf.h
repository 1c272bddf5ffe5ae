/* netbpf retrans's delivery: each retransmit record to the ring buffer, or (summary-only runs) into the per-destination
 * summary maps. A header so the pipeline benchmark (bench/bench.bpf.c) counts its synthetic records exactly as
 * retrans does. Needs netbpf.bpf.h, agg.bpf.h, owner.bpf.h and retrans.h first. */
#ifndef NETBPF_RETRANS_BPF_H
#define NETBPF_RETRANS_BPF_H

/* Summary-only runs: count each retransmit into `retrans_agg` instead of sending a record. */
const volatile __u8 aggregate_in_kernel = 0;
/* With aggregate_in_kernel: keep summaries per cgroup too (container attribution). */
const volatile __u8 agg_by_cgroup = 0;
/* With aggregate_in_kernel, for a session's views (top, serve): keys carry the namespace. */
const volatile __u8 agg_session = 0;

/* Retransmits per summary key; the fold (retrans_agg_other) keeps them per kind and error (agg.bpf.h). */
AGG_MAPS(retrans_agg, struct retrans_agg_key, struct retrans_agg_value);

/* Counts a retransmit into the summary maps; `sk` is the connection's socket (NULL for a listener's SYN-ACK). */
static __always_inline void aggregate(const struct retrans_event *e, const void *sk)
{
	struct retrans_agg_key k;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.daddr, e->daddr, NETBPF_ADDR_LEN);
	k.cgroup_id = agg_by_cgroup ? e->cgroup_id : 0;
	k.err = e->err;
	k.family = e->family;
	k.dport = e->dport;
	k.kind = e->kind;
	k.netns = agg_session ? e->netns : 0;
	struct retrans_agg_value *v = AGG_SLOT_OR_OTHER(&retrans_agg, &retrans_agg_other, &k, &agg_zero,
							&retrans_agg_full, &retrans_agg_other_full, ({
		__builtin_memset(k.daddr, 0, NETBPF_ADDR_LEN);
		k.cgroup_id = 0;
		k.family = 0;
		k.dport = 0;
		k.netns = 0;
		k.flags = RETRANS_AGG_OTHER;
	}));
	if (!v)
		return;
	/* A connect's SYN retransmits leave the connection to the outcome (connect, life): a connect that never got an
	 * answer is not a connection, as in the event path. */
	if (sk && e->kind != RETRANS_SYN) {
		__u64 new_conn, d_retrans, d_sent;
		owner_take_counts(sk, e->total_retrans, e->segs_out, &new_conn, &d_retrans, &d_sent);
		v->connections += new_conn;
		v->ratio_retrans += d_retrans;
		v->ratio_sent += d_sent;
	}
	if (!v->count)
		v->first_ns = e->ts_ns;
	v->last_ns = e->ts_ns;
	AGG_MIN_MAX(v, retransmits, e->retransmits);
	AGG_SRTT_ADD(v, e->srtt_us, RETRANS_AGG_BUCKETS);
	v->count++;
	v->segs += e->segs;
	v->retransmits += e->retransmits;
	AGG_HIST_ADD(v->retransmits_log2, RETRANS_AGG_RETRANSMITS_BUCKETS, e->retransmits);
}

/* A filled record to user space, or into the summary maps. */
AGG_DELIVER(struct retrans_event);

#endif
