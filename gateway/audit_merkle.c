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
 * SHA-256 from OpenSSL's libcrypto, libsodium's as the fallback.
 *
 * Hashing the leaves is most of the work of `qiao audit verify` (every entry
 * is hashed once).  libsodium's SHA-256 is portable C; libcrypto's uses the
 * CPU's SHA instructions (x86 SHA-NI, ARMv8 SHA2) where there are any, and
 * is several times faster here.  Both compute the same function
 * (tests/test_merkle.c compares them on every length up to a few blocks and
 * on the RFC 9162 vectors).  libcrypto's one-shot SHA256_* functions are
 * deprecated in OpenSSL 3 in favour of EVP, but EVP allocates a context per
 * digest, which costs more than hashing 65 bytes; the low-level functions
 * are kept in OpenSSL 3.x and run the same assembly.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

/* 0: libcrypto; 1: libsodium (merkle_sha256_force_portable, for tests). */
static int s_portable;

static void s_hash2(uint8_t prefix, const void *data, size_t len, uint8_t out[32])
{
	if (!__atomic_load_n(&s_portable, __ATOMIC_RELAXED)) {
		SHA256_CTX c;
		SHA256_Init(&c);
		SHA256_Update(&c, &prefix, 1);
		if (len)
			SHA256_Update(&c, data, len);
		SHA256_Final(out, &c);
		return;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	if (len)
		crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

void merkle_leaf_hash(const void *data, size_t len, uint8_t out[32])
{
	s_hash2(0x00, data, len, out);
}

void merkle_node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
	uint8_t buf[64];
	memcpy(buf, l, 32);
	memcpy(buf + 32, r, 32);
	s_hash2(0x01, buf, sizeof buf, out);
}

int merkle_sha256_accelerated(void)
{
	return !__atomic_load_n(&s_portable, __ATOMIC_RELAXED);
}

void merkle_sha256_force_portable(int on)
{
	__atomic_store_n(&s_portable, on ? 1 : 0, __ATOMIC_RELAXED);
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
