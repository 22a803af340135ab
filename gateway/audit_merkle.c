/*
 * audit_merkle.c - RFC 9162 Merkle tree hashes, proofs and verification.
 *
 * Every loop here walks the bits of a 64-bit size or index, so the work and
 * the stack are bounded by 64 steps whatever the tree size.
 */
#include "audit_merkle.h"
#include "qiao_err.h"

#include <sodium.h>
#include <string.h>

/* SHA-256 of the empty string: the root of the empty tree. */
static void s_empty_root(uint8_t out[32])
{
	crypto_hash_sha256(out, NULL, 0);
}

/*
 * SHA-256 with the x86 SHA extensions (SHA-NI), when the CPU has them.
 *
 * Hashing the leaves is most of the work of `qiao audit verify` (every entry
 * is hashed once), and libsodium's SHA-256 is portable C: on a CPU with the
 * SHA instructions this is several times faster.  It computes the same
 * function (tests/test_merkle.c compares the two on every length up to a few
 * blocks and on the RFC 9162 vectors); the hashed data is public, so nothing
 * here needs to be constant-time.  Other CPUs and compilers use libsodium.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHANI_CODE 1

static const uint32_t s_k256[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Compress n 64-byte blocks into state[8] (FIPS 180-4 word order). */
__attribute__((target("sha,sse4.1,ssse3"))) static void s_shani_blocks(uint32_t state[8], const uint8_t *p,
									size_t n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i t = _mm_loadu_si128((const __m128i *)&state[0]);
	__m128i s1 = _mm_loadu_si128((const __m128i *)&state[4]);
	t = _mm_shuffle_epi32(t, 0xb1);          /* CDAB */
	s1 = _mm_shuffle_epi32(s1, 0x1b);        /* EFGH */
	__m128i s0 = _mm_alignr_epi8(t, s1, 8);  /* ABEF */
	s1 = _mm_blend_epi16(s1, t, 0xf0);       /* CDGH */
	for (; n; n--, p += 64) {
		__m128i save0 = s0, save1 = s1, m[4];
		/* unrolled, m[] lives in registers */
#if defined(__clang__)
#pragma unroll
#else
#pragma GCC unroll 16
#endif
		for (int i = 0; i < 16; i++) {
			if (i < 4) {
				m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
			} else {
				/* W[t] from W[t-16..t-1]: msg1 adds sigma0, msg2 sigma1 */
				__m128i x = _mm_sha256msg1_epu32(m[i & 3], m[(i - 3) & 3]);
				x = _mm_add_epi32(x, _mm_alignr_epi8(m[(i - 1) & 3], m[(i - 2) & 3], 4));
				m[i & 3] = _mm_sha256msg2_epu32(x, m[(i - 1) & 3]);
			}
			__m128i w = _mm_add_epi32(m[i & 3], _mm_load_si128((const __m128i *)&s_k256[4 * i]));
			s1 = _mm_sha256rnds2_epu32(s1, s0, w);
			s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(w, 0x0e));
		}
		s0 = _mm_add_epi32(s0, save0);
		s1 = _mm_add_epi32(s1, save1);
	}
	t = _mm_shuffle_epi32(s0, 0x1b);         /* FEBA */
	s1 = _mm_shuffle_epi32(s1, 0xb1);        /* DCHG */
	s0 = _mm_blend_epi16(t, s1, 0xf0);       /* DCBA */
	s1 = _mm_alignr_epi8(s1, t, 8);          /* HGFE */
	_mm_storeu_si128((__m128i *)&state[0], s0);
	_mm_storeu_si128((__m128i *)&state[4], s1);
}

/* 1: use s_shani_blocks; 0: libsodium; -1: not yet asked (a benign race:
 * every thread computes the same answer). */
static int s_have_shani = -1;

static int s_shani(void)
{
	int v = __atomic_load_n(&s_have_shani, __ATOMIC_RELAXED);
	if (v < 0) {
		unsigned a, b, c, d;
		v = 0;
		if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) && (c & bit_SSSE3) &&
		    __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA))
			v = 1;
		__atomic_store_n(&s_have_shani, v, __ATOMIC_RELAXED);
	}
	return v;
}

/* SHA-256(prefix || data[0..len)) with SHA-NI. */
static void s_shani_hash(uint8_t prefix, const uint8_t *data, size_t len, uint8_t out[32])
{
	uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	uint8_t blk[128];
	uint64_t bits = ((uint64_t)len + 1) * 8;
	size_t done;
	/* first block: the prefix byte and up to 63 data bytes */
	blk[0] = prefix;
	if (len >= 63) {
		memcpy(blk + 1, data, 63);
		s_shani_blocks(st, blk, 1);
		done = 63 + (len - 63) / 64 * 64;
		s_shani_blocks(st, data + 63, (len - 63) / 64);
		len -= done;
		data += done;
		memcpy(blk, data, len);
	} else {
		if (len)
			memcpy(blk + 1, data, len);
		len += 1;
	}
	/* now blk[0..len) is the tail, len < 64: pad it */
	blk[len++] = 0x80;
	size_t total = len + 8 <= 64 ? 64 : 128;
	memset(blk + len, 0, total - 8 - len);
	for (int i = 0; i < 8; i++)
		blk[total - 1 - i] = (uint8_t)(bits >> (8 * i));
	s_shani_blocks(st, blk, total / 64);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(st[i] >> 24);
		out[4 * i + 1] = (uint8_t)(st[i] >> 16);
		out[4 * i + 2] = (uint8_t)(st[i] >> 8);
		out[4 * i + 3] = (uint8_t)st[i];
	}
}
#endif

void merkle_leaf_hash(const void *data, size_t len, uint8_t out[32])
{
#ifdef HAVE_SHANI_CODE
	if (s_shani()) {
		s_shani_hash(0x00, data, len, out);
		return;
	}
#endif
	static const uint8_t prefix = 0x00;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	if (len)
		crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

void merkle_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
	uint8_t buf[65];
	buf[0] = 0x01;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
#ifdef HAVE_SHANI_CODE
	if (s_shani()) {
		s_shani_hash(0x01, buf + 1, 64, out);
		return;
	}
#endif
	crypto_hash_sha256(out, buf, sizeof buf);
}

int merkle_sha256_accelerated(void)
{
#ifdef HAVE_SHANI_CODE
	return s_shani();
#else
	return 0;
#endif
}

void merkle_sha256_force_portable(int on)
{
#ifdef HAVE_SHANI_CODE
	__atomic_store_n(&s_have_shani, on ? 0 : -1, __ATOMIC_RELAXED);
#else
	(void)on;
#endif
}

/* The largest power of two strictly below s (s >= 2). */
static uint64_t s_split(uint64_t s)
{
	return (uint64_t)1 << (63 - __builtin_clzll(s - 1));
}

/*
 * MTH(D[begin:end)) for an aligned range (checked by the caller), folding the
 * perfect pieces of end - begin from the right: the RFC's recursion splits
 * off the largest power of two first, so MTH = node(p1, node(p2, ... pk)),
 * which is this fold from the smallest (rightmost) piece up.
 */
static int s_range_hash(merkle_get_fn get, void *arg, uint64_t begin, uint64_t end,
			uint8_t out[32])
{
	uint64_t n = end - begin, pos = end;
	uint8_t acc[32], h[32];
	int first = 1;

	if (n == 0) {
		s_empty_root(out);
		return 0;
	}
	for (unsigned level = 0; level < 64; level++) {
		if (!(n >> level & 1))
			continue;
		pos -= (uint64_t)1 << level;
		int rc = get(arg, level, pos >> level, h);
		if (rc) {
			sodium_memzero(out, 32);
			return rc < 0 ? rc : QIAO_ESTORE;
		}
		if (first)
			memcpy(acc, h, 32), first = 0;
		else
			merkle_node_hash(h, acc, acc);
	}
	memcpy(out, acc, 32);
	return 0;
}

int merkle_root(merkle_get_fn get, void *arg, uint64_t size, uint8_t out[32])
{
	return s_range_hash(get, arg, 0, size, out);
}

int merkle_subtree_hash(merkle_get_fn get, void *arg, uint64_t begin, uint64_t end,
			uint8_t out[32])
{
	if (end < begin) {
		sodium_memzero(out, 32);
		return QIAO_EINVAL;
	}
	uint64_t n = end - begin;
	if (n > 1) {
		/* begin must be a multiple of the smallest power of two >= n. */
		unsigned bits = 64 - (unsigned)__builtin_clzll(n - 1);
		if (bits == 64 ? begin != 0 : (begin & (((uint64_t)1 << bits) - 1)) != 0) {
			sodium_memzero(out, 32);
			return QIAO_EINVAL;
		}
	}
	return s_range_hash(get, arg, begin, end, out);
}

/*
 * How many hashes the verification loop of RFC 9162 (2.1.3.2 step 4 and
 * 2.1.4.2 step 6) consumes from (fn, sn) before sn reaches 0.  The loop's
 * control flow depends only on fn and sn, never on the hashes, so this is
 * the exact proof length both sides must agree on.
 */
static size_t s_loop_len(uint64_t fn, uint64_t sn)
{
	size_t n = 0;
	while (sn != 0) {
		n++;
		if ((fn & 1) == 0 && fn == sn) {
			while ((fn & 1) == 0 && fn != 0)
				fn >>= 1, sn >>= 1;
		}
		fn >>= 1, sn >>= 1;
	}
	return n;
}

static size_t s_inclusion_len(uint64_t index, uint64_t size)
{
	return s_loop_len(index, size - 1);
}

/* 0 < size1 < size2. */
static size_t s_consistency_len(uint64_t size1, uint64_t size2)
{
	uint64_t fn = size1 - 1, sn = size2 - 1;
	int pow2 = (size1 & (size1 - 1)) == 0;
	while (fn & 1)
		fn >>= 1, sn >>= 1;
	/* A power-of-two size1 takes root1 itself as the first path element. */
	return s_loop_len(fn, sn) + (pow2 ? 0 : 1);
}

int merkle_inclusion_proof(merkle_get_fn get, void *arg, uint64_t index, uint64_t size,
			   uint8_t (*out)[32], size_t max, size_t *n)
{
	*n = 0;
	if (index >= size)
		return QIAO_EINVAL;
	size_t len = s_inclusion_len(index, size);
	if (len > max) {
		*n = len;
		return QIAO_ETOOBIG;
	}
	/* Walk from the root down to the leaf; the proof lists the siblings
	 * from the leaf up, so the t-th sibling found goes to out[len-1-t]. */
	uint64_t lo = 0, hi = size;
	size_t t = 0;
	while (hi - lo > 1) {
		uint64_t mid = lo + s_split(hi - lo);
		if (t >= len)
			return QIAO_EINVAL; /* cannot happen: len is exact */
		int rc;
		if (index < mid) {
			rc = s_range_hash(get, arg, mid, hi, out[len - 1 - t]);
			hi = mid;
		} else {
			rc = s_range_hash(get, arg, lo, mid, out[len - 1 - t]);
			lo = mid;
		}
		if (rc)
			return rc;
		t++;
	}
	if (t != len)
		return QIAO_EINVAL;
	*n = len;
	return 0;
}

int merkle_consistency_proof(merkle_get_fn get, void *arg, uint64_t size1, uint64_t size2,
			     uint8_t (*out)[32], size_t max, size_t *n)
{
	*n = 0;
	if (size1 == 0 || size1 > size2)
		return QIAO_EINVAL;
	if (size1 == size2)
		return 0;
	size_t len = s_consistency_len(size1, size2);
	if (len > max) {
		*n = len;
		return QIAO_ETOOBIG;
	}
	/* SUBPROOF(m, D[lo:hi), b) of RFC 9162 2.1.4.1, unrolled from the top;
	 * each level appends its hash after the deeper ones, so again the t-th
	 * hash found goes to out[len-1-t]. */
	uint64_t lo = 0, hi = size2, m = size1;
	int b = 1;
	size_t t = 0;
	for (;;) {
		int rc;
		if (m == hi) {
			if (b)
				break;
			if (t >= len)
				return QIAO_EINVAL;
			if ((rc = s_range_hash(get, arg, lo, hi, out[len - 1 - t])))
				return rc;
			t++;
			break;
		}
		uint64_t k = s_split(hi - lo);
		if (t >= len)
			return QIAO_EINVAL;
		if (m - lo <= k) {
			rc = s_range_hash(get, arg, lo + k, hi, out[len - 1 - t]);
			hi = lo + k;
		} else {
			rc = s_range_hash(get, arg, lo, lo + k, out[len - 1 - t]);
			lo = lo + k;
			b = 0;
		}
		if (rc)
			return rc;
		t++;
	}
	if (t != len)
		return QIAO_EINVAL;
	*n = len;
	return 0;
}

int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
			    const uint8_t (*proof)[32], size_t n, const uint8_t root[32])
{
	if (index >= size || (n > 0 && proof == NULL))
		return QIAO_EINVAL;
	if (n != s_inclusion_len(index, size))
		return QIAO_EINVAL;

	uint64_t fn = index, sn = size - 1;
	uint8_t r[32];
	memcpy(r, leaf_hash, 32);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return QIAO_EINVAL;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(proof[i], r, r);
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0)
					fn >>= 1, sn >>= 1;
			}
		} else {
			merkle_node_hash(r, proof[i], r);
		}
		fn >>= 1, sn >>= 1;
	}
	if (sn != 0)
		return QIAO_EINVAL;
	return sodium_memcmp(r, root, 32) == 0 ? 0 : QIAO_EBADSIG;
}

int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[32],
			      const uint8_t root2[32], const uint8_t (*proof)[32], size_t n)
{
	if (size1 == 0 || size1 > size2 || (n > 0 && proof == NULL))
		return QIAO_EINVAL;
	if (size1 == size2) {
		if (n != 0)
			return QIAO_EINVAL;
		return sodium_memcmp(root1, root2, 32) == 0 ? 0 : QIAO_EBADSIG;
	}
	if (n != s_consistency_len(size1, size2))
		return QIAO_EINVAL;

	/* Step 2: a power-of-two size1 is a node of the new tree: root1 itself
	 * starts the path. */
	size_t i = 0;
	uint8_t fr[32], sr[32];
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, 32);
	} else {
		memcpy(fr, proof[0], 32);
		i = 1;
	}
	memcpy(sr, fr, 32);
	uint64_t fn = size1 - 1, sn = size2 - 1;
	while (fn & 1)
		fn >>= 1, sn >>= 1;
	for (; i < n; i++) {
		if (sn == 0)
			return QIAO_EINVAL;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(proof[i], fr, fr);
			merkle_node_hash(proof[i], sr, sr);
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0)
					fn >>= 1, sn >>= 1;
			}
		} else {
			merkle_node_hash(sr, proof[i], sr);
		}
		fn >>= 1, sn >>= 1;
	}
	if (sn != 0)
		return QIAO_EINVAL;
	/* Both comparisons always run: no early exit says which root failed. */
	int bad1 = sodium_memcmp(fr, root1, 32) != 0;
	int bad2 = sodium_memcmp(sr, root2, 32) != 0;
	return (bad1 | bad2) ? QIAO_EBADSIG : 0;
}

void merkle_frontier_init(struct merkle_frontier *f)
{
	memset(f, 0, sizeof *f);
}

int merkle_frontier_append(struct merkle_frontier *f, const uint8_t leaf_hash[32],
			   int (*emit)(void *arg, unsigned level, uint64_t index, const uint8_t h[32]),
			   void *arg)
{
	if (f->size == UINT64_MAX)
		return QIAO_ETOOBIG;
	uint8_t cur[32];
	uint64_t idx = f->size;
	unsigned level = 0;
	int rc;

	memcpy(cur, leaf_hash, 32);
	if (emit && (rc = emit(arg, 0, idx, cur)))
		return rc < 0 ? rc : QIAO_ESTORE;
	/* Each set low bit of the old size is a left sibling the new node
	 * completes; f->h[] below the final level is left stale, which is fine
	 * because those bits are clear in the new size. */
	while (f->size >> level & 1) {
		merkle_node_hash(f->h[level], cur, cur);
		level++;
		idx >>= 1;
		if (emit && (rc = emit(arg, level, idx, cur)))
			return rc < 0 ? rc : QIAO_ESTORE;
	}
	memcpy(f->h[level], cur, 32);
	f->size++;
	return 0;
}

void merkle_frontier_root(const struct merkle_frontier *f, uint8_t out[32])
{
	uint8_t acc[32];
	int first = 1;
	if (f->size == 0) {
		s_empty_root(out);
		return;
	}
	for (unsigned level = 0; level < 64; level++) {
		if (!(f->size >> level & 1))
			continue;
		if (first)
			memcpy(acc, f->h[level], 32), first = 0;
		else
			merkle_node_hash(f->h[level], acc, acc);
	}
	memcpy(out, acc, 32);
}

int merkle_frontier_load(struct merkle_frontier *f, uint64_t size, merkle_get_fn get, void *arg)
{
	merkle_frontier_init(f);
	for (unsigned level = 0; level < 64; level++) {
		if (!(size >> level & 1))
			continue;
		/* The subtree of this bit starts at the sum of the higher bits. */
		int rc = get(arg, level, (size >> level) - 1, f->h[level]);
		if (rc) {
			merkle_frontier_init(f);
			return rc < 0 ? rc : QIAO_ESTORE;
		}
	}
	f->size = size;
	return 0;
}
