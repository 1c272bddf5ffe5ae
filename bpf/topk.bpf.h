/* Top talkers under churn, written once for every tool: space-saving (Metwally et al., 2005) run per bucket.
 * A key hashes to one bucket of a per-CPU array; a bucket holds a few slots (key, count, err). A key found in
 * its bucket counts +1; a new key takes the slot with the smallest count c and starts at count c + 1 with
 * err = c (at most c of its events came before it was admitted). Per CPU and bucket this keeps, exactly:
 *   - the counts of a bucket's slots add up to the events that hashed to it (M),
 *   - count - err = the key's events since it was admitted (exact), count >= its true number,
 *   - a key not in its bucket had at most min(count) <= M / slots events, so any key with more is named.
 * No lock (per-CPU), no insert, no loop the verifier cannot unroll: one array lookup, then the bucket's first
 * cache line (counts and key hashes) decides; full keys are compared only where the hash matches.
 * User space (src/core/top-k.ts) sums the CPUs and states each row's error from err and the bucket minima.
 *
 * A bucket is a struct with arrays `count` (u64), `hash` (u32) and `slots` (structs starting with `key`, `err`). */
#ifndef NETBPF_TOPK_BPF_H
#define NETBPF_TOPK_BPF_H

/* Equality of two keys of `size` bytes (a multiple of 8, 8-aligned), word by word. */
static __always_inline bool topk_key_eq(const void *a, const void *b, const __u32 size)
{
	const __u64 *x = a, *y = b;
#pragma unroll
	for (__u32 i = 0; i < size / 8; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/* A 32-bit hash of a key of `size` bytes (a multiple of 8, 8-aligned): each word multiplied in, murmur3's
 * 64-bit finalizer on the result. `seed` is chosen by user space at load, so the buckets sources land in
 * cannot be aimed at from outside. */
static __always_inline __u32 topk_hash(const void *key, const __u32 size, __u64 seed)
{
	const __u64 *w = key;
	__u64 h = seed;
#pragma unroll
	for (__u32 i = 0; i < size / 8; i++)
		h = (h ^ w[i]) * 0x9E3779B97F4A7C15ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (__u32)h;
}

/* The slot index of `key_ptr` (hash `h`) in `bucket`, claiming the slot with the smallest count when the key is
 * not there: *fresh is then set, and the slot's key, hash and err are the new key's (err = the replaced count).
 * The caller adds the event: bucket->count[i]++ and its own fields (reset when fresh). */
#define TOPK_SLOT(bucket, key_ptr, h, fresh)								\
	({												\
		const __u32 __n = sizeof((bucket)->count) / sizeof((bucket)->count[0]);		\
		__u32 __hit = __n, __min = 0;								\
		_Pragma("unroll")									\
		for (__u32 __i = 0; __i < __n; __i++) {							\
			if ((bucket)->hash[__i] == (h) && (bucket)->count[__i] &&			\
			    topk_key_eq(&(bucket)->slots[__i].key, (key_ptr), sizeof(*(key_ptr)))) {	\
				__hit = __i;								\
				break;									\
			}										\
			if ((bucket)->count[__i] < (bucket)->count[__min])				\
				__min = __i;								\
		}											\
		*(fresh) = __hit == __n;								\
		if (__hit == __n) {									\
			__hit = __min;									\
			__builtin_memcpy(&(bucket)->slots[__hit].key, (key_ptr), sizeof(*(key_ptr)));	\
			(bucket)->hash[__hit] = (h);							\
			(bucket)->slots[__hit].err = (bucket)->count[__hit];				\
		}											\
		__hit;											\
	})

#endif
