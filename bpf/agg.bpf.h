/* In-kernel aggregation, written once for every tool: a summary key's counters live in a per-CPU hash map
 * (no record per event, no lock), user space reads the maps at each interval and at exit (src/core/kernel-table.ts)
 * and takes differences. Maps are bounded: a key that finds its map full (or no memory for a new entry: key maps
 * allocate on first use) is counted under a coarser key in a fold map instead ("other", kept per reason or kind so totals stay exact), and once a map is full it stays full for
 * the run, so new keys cost one lookup instead of a failing insert per event. */
#ifndef NETBPF_AGG_BPF_H
#define NETBPF_AGG_BPF_H

/* log2 bucket of v: 0 for 0, k for [2^(k-1), 2^k); up to 64 for a u64. */
static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 r = 0, shift;
	if (!v)
		return 0;
	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r + 1;
}

/* For a `key` a lookup in the per-CPU `map` just missed: inserts `zero` and returns the new value; NULL when the
 * map is full (then *full is set, and later calls skip the insert: a full map costs the caller's one lookup).
 * EEXIST from the insert: another CPU inserted the key meanwhile, and the second lookup finds it. */
static __always_inline void *agg_insert(void *map, const void *key, const void *zero, volatile __u8 *full)
{
	if (*full)
		return NULL;
	/* Compared as 32 bits: before 6.4 the verifier turns the helper into a direct call of the map's update
	 * function, which returns an int, so -E2BIG arrives as 0xfffffff9, not sign-extended (Debian's 5.10 and
	 * 6.1; 6.4's "bpf: return long from bpf_map_ops funcs" fixed it). As a 64-bit compare, a full map was never
	 * seen there and every later new key paid a failing insert. */
	if ((int)bpf_map_update_elem(map, key, zero, BPF_NOEXIST) == -7 /* -E2BIG: no room */) {
		*full = 1;
		return NULL;
	}
	return bpf_map_lookup_elem(map, key);
}

/* The value of `key` in the per-CPU `map`, inserting `zero` when absent; NULL when the map is full (then *full is
 * set, and later calls for new keys skip the insert). */
static __always_inline void *agg_slot(void *map, const void *key, const void *zero, volatile __u8 *full)
{
	void *v = bpf_map_lookup_elem(map, key);
	return v ? v : agg_insert(map, key, zero, full);
}

/* Adds 1 to the log2 bucket of v in hist[n] (the last bucket takes every larger value). */
#define AGG_HIST_ADD(hist, n, v)						\
	do {									\
		__u32 b_ = log2_bucket(v);					\
		if (b_ >= (n))							\
			b_ = (n) - 1;						\
		/* Keep the bound check on the register that indexes: older verifiers lose it across arithmetic. */ \
		barrier_var(b_);						\
		if (b_ < (n))							\
			(hist)[b_]++;						\
	} while (0)

/* min/max of a value field pair (min_x, max_x) once `count` says whether the slot had counted anything yet. */
#define AGG_MIN_MAX(v, field, x)						\
	do {									\
		if (!(v)->count || (x) < (v)->min_##field)			\
			(v)->min_##field = (x);					\
		if (!(v)->count || (x) > (v)->max_##field)			\
			(v)->max_##field = (x);					\
	} while (0)

/* A record's smoothed RTT (0: none, not counted) into a value's srtt_count, srtt_us, min/max_srtt_us and its log2
 * histogram srtt_us_log2[buckets]: min and max from the records that had one. */
#define AGG_SRTT_ADD(v, srtt, buckets)						\
	do {									\
		if (srtt) {							\
			if (!(v)->srtt_count || (srtt) < (v)->min_srtt_us)	\
				(v)->min_srtt_us = (srtt);			\
			if (!(v)->srtt_count || (srtt) > (v)->max_srtt_us)	\
				(v)->max_srtt_us = (srtt);			\
			(v)->srtt_count++;					\
			(v)->srtt_us += (srtt);					\
			AGG_HIST_ADD((v)->srtt_us_log2, buckets, srtt);		\
		}								\
	} while (0)

/* Counts an event that found both its key map and its fold map full: reported with the ring buffer losses. */
static __always_inline void agg_count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* The slot of `key` in `map`; when `map` is full, the slot of the same key after `fold` (a statement that turns
 * `key` into its coarser "other" key) in `other`; NULL when both are full (the event is then counted as lost). */
#define AGG_SLOT_OR_OTHER(map, other, key, zero, full, other_full, fold)	\
	({									\
		void *s_ = agg_slot(map, key, zero, full);			\
		if (!s_) {							\
			fold;							\
			s_ = agg_slot(other, key, zero, other_full);		\
			if (!s_)						\
				agg_count_lost();				\
		}								\
		s_;								\
	})

/* A tool's summary maps, declared once: `name` (per key; user space sizes it, one entry when not aggregating; no
 * prealloc: memory grows with use), `name`_other (what found `name` full, or no memory for a new entry, folded per
 * coarse key: preallocated, so the folds always have room), their full flags (agg_slot), and `agg_zero`, the value
 * new keys start from (a map value pointer, so a large value is never built on the stack). */
#define AGG_MAPS(name, key_type, value_type)					\
	struct {								\
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);				\
		__uint(max_entries, 16384);					\
		__uint(map_flags, BPF_F_NO_PREALLOC);				\
		__type(key, key_type);						\
		__type(value, value_type);					\
	} name SEC(".maps");							\
	struct {								\
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);				\
		__uint(max_entries, 256);					\
		__type(key, key_type);						\
		__type(value, value_type);					\
	} name##_other SEC(".maps");						\
	volatile __u8 name##_full = 0;						\
	volatile __u8 name##_other_full = 0;					\
	static const value_type agg_zero

/* `deliver(e, sk)`: a filled record of `event_type` to user space, or (summary-only runs: the tool's
 * aggregate_in_kernel) into its summary maps through the tool's own aggregate(e, sk). */
#define AGG_DELIVER(event_type)							\
	static __always_inline void deliver(const event_type *e, const void *sk)	\
	{									\
		if (aggregate_in_kernel) {					\
			aggregate(e, sk);					\
			return;							\
		}								\
		event_type *r = reserve_event(sizeof(*r));			\
		if (!r)								\
			return;							\
		__builtin_memcpy(r, e, sizeof(*r));				\
		submit_event(r);						\
	}

#endif
