/*
 * The audit log's Merkle tree (gateway/audit_merkle.c):
 *
 *  1. every RFC 9162 conformance probe under $QIAO_SHARED/testdata/rfc9162
 *     (from transparency-dev/merkle) must fail exactly when it says wantErr;
 *  2. trees of 1..130 leaves built through merkle_frontier_append into an
 *     in-memory node store: roots agree with a naive recursive MTH, every
 *     inclusion and consistency proof verifies, and every mutation of one
 *     (a flipped byte, a hash dropped, a hash added) fails;
 *  3. lookups stay within the documented bound on a 10-million-leaf tree and
 *     at the top of the 64-bit range; store errors pass through.
 */
#include "check.h"
#include "audit_merkle.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Light mode, under valgrind or with QIAO_TIME_SCALE > 1 (ops/valgrind):
 * memcheck makes this CPU-bound test some 100 times slower, and its 3.7
 * million proof mutations alone then outlast any timeout.  Light mode flips
 * one byte of each proof hash (a different byte for each hash and proof)
 * instead of all 32; every proof of every (index, size) and (m, n) is
 * still made, verified and mutated (each hash flipped, dropped, one added),
 * so every code path runs, only fewer byte positions per hash. */
static int s_light;

/* ---- the in-memory node store every test uses ---- */

#define NMAX 130
#define LEVELS 8

struct store {
	uint8_t node[LEVELS][NMAX][32];
	uint8_t have[LEVELS][NMAX];
	uint64_t limit; /* the tree size being queried: nothing beyond may be read */
	long lookups;
	int dup_emits;
};

static int s_emit(void *arg, unsigned level, uint64_t index, const uint8_t h[32])
{
	struct store *s = arg;
	if (level >= LEVELS || index >= NMAX)
		return QIAO_EINVAL;
	if (s->have[level][index])
		s->dup_emits++;
	memcpy(s->node[level][index], h, 32);
	s->have[level][index] = 1;
	return 0;
}

static int s_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	struct store *s = arg;
	s->lookups++;
	if (level >= LEVELS || index >= NMAX || ((index + 1) << level) > s->limit ||
	    !s->have[level][index])
		return QIAO_ENOTFOUND;
	memcpy(out, s->node[level][index], 32);
	return 0;
}

/* ---- 1. RFC 9162 probes ---- */

/*
 * The probes' tree: the eight leaves of the RFC 6962 reference data that
 * transparency-dev/merkle generated them from.  Our own proofs for the
 * probes' happy paths must equal theirs byte for byte.
 */
static struct store s_ref;
static int s_ref_proofs;

static void s_ref_build(void)
{
	static const struct {
		const char *hex;
	} leaves[8] = {{""}, {"00"}, {"10"}, {"2021"}, {"3031"}, {"40414243"},
		       {"5051525354555657"}, {"606162636465666768696a6b6c6d6e6f"}};
	struct merkle_frontier f;
	merkle_frontier_init(&f);
	memset(&s_ref, 0, sizeof s_ref);
	for (int i = 0; i < 8; i++) {
		uint8_t data[16], leaf[32];
		size_t dl = 0;
		CHECK(sodium_hex2bin(data, sizeof data, leaves[i].hex, strlen(leaves[i].hex), NULL, &dl,
				     NULL) == 0);
		merkle_leaf_hash(data, dl, leaf);
		CHECK_RC(merkle_frontier_append(&f, leaf, s_emit, &s_ref));
	}
	s_ref.limit = 8;
}

/* Our proof for a happy-path probe on the reference tree, compared with the
 * probe's (and the probe's roots with ours). */
static void s_ref_check(int incl, uint64_t a, uint64_t b, const uint8_t (*want)[32], size_t wn,
			const uint8_t *root_a, const uint8_t *root_b, const char *path)
{
	uint8_t proof[MERKLE_PROOF_MAX][32], r[32];
	size_t n = 0;
	int rc;
	if (b > 8)
		return;
	if (incl)
		rc = merkle_inclusion_proof(s_get, &s_ref, a, b, proof, MERKLE_PROOF_MAX, &n);
	else
		rc = merkle_consistency_proof(s_get, &s_ref, a, b, proof, MERKLE_PROOF_MAX, &n);
	int ok = rc == 0 && n == wn && (n == 0 || memcmp(proof, want, n * 32) == 0);
	if (incl) {
		ok = ok && merkle_root(s_get, &s_ref, b, r) == 0 && memcmp(r, root_b, 32) == 0;
	} else {
		ok = ok && merkle_root(s_get, &s_ref, a, r) == 0 && memcmp(r, root_a, 32) == 0;
		ok = ok && merkle_root(s_get, &s_ref, b, r) == 0 && memcmp(r, root_b, 32) == 0;
	}
	if (!ok)
		fprintf(stderr, "%s: our proof or root differs from the probe's\n", path);
	CHECK(ok);
	s_ref_proofs++;
}

static int s_probes, s_probes_ok, s_incl, s_cons, s_standins;

/*
 * A JSON base64 value as a 32-byte hash.  A value that does not decode to 32
 * bytes cannot be a SHA-256 hash, but the API takes only 32-byte arrays; it is
 * replaced by a deterministic stand-in no real hash equals (SHA-256 of a
 * marker, the value's role and the string), so the verifier sees an invalid
 * hash.  Two equal roots still compare equal (the probe "sizes are equal
 * (one) and proof is empty" gives two equal 12-byte roots and expects
 * success, as Go's bytes.Equal does); a leaf never equals a root, as Go
 * refuses a leaf hash of the wrong size outright ("empty root and leaf").
 */
static void s_hash(json_t *v, const char *role, uint8_t out[32])
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";
	size_t sl = strlen(s), n = 0;
	uint8_t buf[64];
	if (sodium_base642bin(buf, sizeof buf, s, sl, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) == 0 && n == 32) {
		memcpy(out, buf, 32);
		return;
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)"qiao-test:not-a-32-byte-hash:", 29);
	crypto_hash_sha256_update(&st, (const unsigned char *)role, strlen(role) + 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)s, sl);
	crypto_hash_sha256_final(&st, out);
	s_standins++;
}

/* The "proof" member: null is the empty proof.  *out is malloc'd. */
static size_t s_proof(json_t *v, uint8_t (**out)[32])
{
	size_t n = json_is_array(v) ? json_array_size(v) : 0;
	*out = calloc(n ? n : 1, 32);
	for (size_t i = 0; i < n; i++)
		s_hash(json_array_get(v, i), "proof", (*out)[i]);
	return n;
}

/* An unsigned 64-bit member: a JSON integer, or a string of digits put
 * there by s_load for integers above jansson's signed 64-bit range. */
static int s_u64(json_t *o, const char *k, uint64_t *v)
{
	json_t *x = json_object_get(o, k);
	if (json_is_integer(x) && json_integer_value(x) >= 0) {
		*v = (uint64_t)json_integer_value(x);
		return 0;
	}
	if (json_is_string(x)) {
		const char *s = json_string_value(x);
		char *end;
		errno = 0;
		unsigned long long u = strtoull(s, &end, 10);
		if (*s >= '0' && *s <= '9' && *end == '\0' && errno == 0) {
			*v = u;
			return 0;
		}
	}
	return -1;
}

/*
 * Load a probe.  jansson's integers are signed 64-bit, and some probes hold
 * 2^64 - 1 (an index of 0 minus 1, wrapped), so integer literals of 19 digits
 * or more outside strings are quoted before parsing; s_u64 reads them back.
 */
static json_t *s_load(const char *path, json_error_t *err)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err->text, sizeof err->text, "%s", strerror(errno));
		return NULL;
	}
	char *in = NULL, *out = NULL;
	size_t len = 0, cap = 0, o = 0;
	int c;
	while ((c = fgetc(fp)) != EOF) {
		if (len + 1 >= cap) {
			cap = cap ? cap * 2 : 4096;
			in = realloc(in, cap);
		}
		in[len++] = (char)c;
	}
	fclose(fp);
	out = malloc(2 * len + 1);
	int in_str = 0;
	for (size_t i = 0; i < len;) {
		if (in_str) {
			if (in[i] == '\\' && i + 1 < len) {
				out[o++] = in[i++];
			} else if (in[i] == '"') {
				in_str = 0;
			}
			out[o++] = in[i++];
		} else if (in[i] == '"') {
			in_str = 1;
			out[o++] = in[i++];
		} else if (in[i] >= '0' && in[i] <= '9') {
			size_t j = i;
			while (j < len && in[j] >= '0' && in[j] <= '9')
				j++;
			int quote = j - i >= 19;
			if (quote)
				out[o++] = '"';
			memcpy(out + o, in + i, j - i), o += j - i;
			if (quote)
				out[o++] = '"';
			i = j;
		} else {
			out[o++] = in[i++];
		}
	}
	json_t *j = json_loadb(out ? out : "", o, 0, err);
	free(in);
	free(out);
	return j;
}

static void s_probe(const char *path)
{
	json_error_t err;
	json_t *o = s_load(path, &err);
	if (!o) {
		fprintf(stderr, "%s: %s\n", path, err.text);
		CHECK(o != NULL);
		return;
	}
	json_t *want = json_object_get(o, "wantErr");
	CHECK(json_is_boolean(want));
	int want_err = json_is_true(want);
	uint8_t (*proof)[32] = NULL;
	size_t n = s_proof(json_object_get(o, "proof"), &proof);
	int rc = 1;
	uint64_t a = 0, b = 0;

	if (json_object_get(o, "leafIdx")) {
		uint8_t root[32], leaf[32];
		CHECK(s_u64(o, "leafIdx", &a) == 0 && s_u64(o, "treeSize", &b) == 0);
		s_hash(json_object_get(o, "root"), "root", root);
		s_hash(json_object_get(o, "leafHash"), "leaf", leaf);
		rc = merkle_verify_inclusion(a, b, leaf, (const uint8_t (*)[32])proof, n, root);
		if (!want_err && strstr(path, "/happy-path.json"))
			s_ref_check(1, a, b, (const uint8_t (*)[32])proof, n, NULL, root, path);
		s_incl++;
	} else if (json_object_get(o, "size1")) {
		uint8_t r1[32], r2[32];
		CHECK(s_u64(o, "size1", &a) == 0 && s_u64(o, "size2", &b) == 0);
		s_hash(json_object_get(o, "root1"), "root", r1);
		s_hash(json_object_get(o, "root2"), "root", r2);
		rc = merkle_verify_consistency(a, b, r1, r2, (const uint8_t (*)[32])proof, n);
		if (!want_err && a > 0 && strstr(path, "/happy-path.json"))
			s_ref_check(0, a, b, (const uint8_t (*)[32])proof, n, r1, r2, path);
		s_cons++;
	} else {
		fprintf(stderr, "%s: neither an inclusion nor a consistency probe\n", path);
		CHECK(0);
	}
	s_probes++;
	if ((rc != 0) == want_err) {
		s_probes_ok++;
		check_pass_++;
	} else {
		check_fail_++;
		fprintf(stderr, "%s: wantErr %d but verify returned %d (%s)\n", path, want_err, rc,
			qiao_strerror(rc));
	}
	free(proof);
	json_decref(o);
}

static void s_walk(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		CHECK(d != NULL);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		size_t l = strlen(e->d_name);
		if (S_ISDIR(st.st_mode))
			s_walk(path);
		else if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
			s_probe(path);
	}
	closedir(d);
}

static void test_rfc9162_vectors(void)
{
	const char *shared = getenv("QIAO_SHARED");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/testdata/rfc9162", shared ? shared : "../shared");
	s_ref_build();
	s_walk(dir);
	printf("rfc9162 vectors: %d of %d probes passed (%d inclusion, %d consistency; "
	       "%d non-32-byte values given stand-ins)\n",
	       s_probes_ok, s_probes, s_incl, s_cons, s_standins);
	printf("rfc9162 vectors: %d happy-path proofs regenerated byte for byte\n", s_ref_proofs);
	CHECK(s_probes >= 190);
	CHECK(s_ref_proofs >= 10);
	CHECK(s_probes_ok == s_probes);
}

/* ---- 2. trees of 1..130 leaves ---- */

static uint8_t s_leaf[NMAX][32];

/* MTH by the RFC's definition, recursively (depth log n, tests only). */
static void s_mth(size_t begin, size_t end, uint8_t out[32])
{
	size_t n = end - begin;
	if (n == 0) {
		crypto_hash_sha256(out, NULL, 0);
		return;
	}
	if (n == 1) {
		memcpy(out, s_leaf[begin], 32);
		return;
	}
	size_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t l[32], r[32];
	s_mth(begin, begin + k, l);
	s_mth(begin + k, end, r);
	merkle_node_hash(l, r, out);
}

static int s_frontier_eq(const struct merkle_frontier *a, const struct merkle_frontier *b)
{
	if (a->size != b->size)
		return 0;
	for (unsigned l = 0; l < 64; l++)
		if ((a->size >> l & 1) && memcmp(a->h[l], b->h[l], 32) != 0)
			return 0;
	return 1;
}

static long s_mutations_failed, s_mutations;

/* Every mutation of a valid proof must fail: each byte flipped (one bit),
 * each hash dropped, a hash added in front and at the end. */
typedef int (*verify_fn)(const void *ctx, const uint8_t (*proof)[32], size_t n);

static void s_mutate(verify_fn verify, const void *ctx, const uint8_t (*proof)[32], size_t n)
{
	uint8_t m[MERKLE_PROOF_MAX + 1][32];
	int bad = 0;
	static size_t rot;
	for (size_t i = 0; i < n * 32; i++) {
		if (s_light && i % 32 != (i / 32 + rot) % 32)
			continue;
		memcpy(m, proof, n * 32);
		m[i / 32][i % 32] ^= (uint8_t)(1u << (i % 8));
		s_mutations++;
		if (verify(ctx, (const uint8_t (*)[32])m, n) == 0)
			bad++;
	}
	for (size_t d = 0; d < n; d++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (i != d)
				memcpy(m[k++], proof[i], 32);
		s_mutations++;
		if (verify(ctx, (const uint8_t (*)[32])m, n - 1) == 0)
			bad++;
	}
	if (n < MERKLE_PROOF_MAX) {
		memcpy(m, proof, n * 32);
		memset(m[n], 0x5a, 32);
		s_mutations++;
		if (verify(ctx, (const uint8_t (*)[32])m, n + 1) == 0)
			bad++;
		memset(m[0], 0xa5, 32);
		memcpy(m + 1, proof, n * 32);
		s_mutations++;
		if (verify(ctx, (const uint8_t (*)[32])m, n + 1) == 0)
			bad++;
	}
	rot += 7;
	s_mutations_failed += bad;
	CHECK(bad == 0);
}

struct incl_ctx {
	uint64_t index, size;
	const uint8_t *leaf, *root;
};

static int s_verify_incl(const void *c, const uint8_t (*proof)[32], size_t n)
{
	const struct incl_ctx *x = c;
	return merkle_verify_inclusion(x->index, x->size, x->leaf, proof, n, x->root);
}

struct cons_ctx {
	uint64_t m, n;
	const uint8_t *r1, *r2;
};

static int s_verify_cons(const void *c, const uint8_t (*proof)[32], size_t n)
{
	const struct cons_ctx *x = c;
	return merkle_verify_consistency(x->m, x->n, x->r1, x->r2, proof, n);
}

static void test_trees(void)
{
	static struct store st;
	struct merkle_frontier f, g;
	uint8_t roots[NMAX + 1][32];
	uint8_t a[32], b[32];

	memset(&st, 0, sizeof st);
	merkle_frontier_init(&f);
	merkle_frontier_root(&f, a);
	crypto_hash_sha256(b, NULL, 0);
	CHECK(memcmp(a, b, 32) == 0);
	CHECK_RC(merkle_root(s_get, &st, 0, a));
	CHECK(memcmp(a, b, 32) == 0);
	memcpy(roots[0], b, 32);

	int roots_ok = 1, load_ok = 1;
	for (uint64_t size = 1; size <= NMAX; size++) {
		char text[24];
		int tl = snprintf(text, sizeof text, "%llu", (unsigned long long)(size - 1));
		merkle_leaf_hash(text, (size_t)tl, s_leaf[size - 1]);
		CHECK_RC(merkle_frontier_append(&f, s_leaf[size - 1], s_emit, &st));
		CHECK(f.size == size);
		s_mth(0, size, roots[size]);
		merkle_frontier_root(&f, a);
		st.limit = size;
		if (merkle_root(s_get, &st, size, b) != 0 || memcmp(a, roots[size], 32) != 0 ||
		    memcmp(b, roots[size], 32) != 0)
			roots_ok = 0;
		if (merkle_frontier_load(&g, size, s_get, &st) != 0 || !s_frontier_eq(&f, &g))
			load_ok = 0;
	}
	CHECK(roots_ok);
	CHECK(load_ok);
	CHECK(st.dup_emits == 0);
	/* Every perfect node of the 130-leaf tree was emitted, nothing more. */
	int emitted_ok = 1;
	for (unsigned l = 0; l < LEVELS; l++)
		for (uint64_t i = 0; i < NMAX; i++)
			if (st.have[l][i] != (((i + 1) << l) <= NMAX))
				emitted_ok = 0;
	CHECK(emitted_ok);

	/* A leaf hash is SHA-256(0x00 || data). */
	uint8_t pre[2] = {0x00, '0'};
	crypto_hash_sha256(a, pre, 2);
	CHECK(memcmp(a, s_leaf[0], 32) == 0);

	/* Subtree hashes: every aligned range, against the naive MTH; an
	 * unaligned range is refused. */
	int sub_ok = 1;
	st.limit = NMAX;
	for (uint64_t begin = 0; begin < NMAX; begin++) {
		for (uint64_t end = begin; end <= NMAX; end++) {
			uint64_t n = end - begin, p = 1;
			while (p < n)
				p *= 2;
			int aligned = begin % p == 0;
			int rc = merkle_subtree_hash(s_get, &st, begin, end, a);
			if (aligned) {
				s_mth(begin, end, b);
				if (rc != 0 || memcmp(a, b, 32) != 0)
					sub_ok = 0;
			} else if (rc != QIAO_EINVAL) {
				sub_ok = 0;
			}
		}
	}
	CHECK(sub_ok);
	CHECK_ERR(merkle_subtree_hash(s_get, &st, 5, 4, a), QIAO_EINVAL);

	/* Inclusion proofs for every (index, size). */
	uint8_t proof[MERKLE_PROOF_MAX][32];
	size_t n;
	int incl_ok = 1, incl_neg_ok = 1;
	long max_lookups = 0, pairs = 0;
	for (uint64_t size = 1; size <= NMAX; size++) {
		st.limit = size;
		for (uint64_t i = 0; i < size; i++) {
			st.lookups = 0;
			int rc = merkle_inclusion_proof(s_get, &st, i, size, proof, MERKLE_PROOF_MAX, &n);
			if (st.lookups > max_lookups)
				max_lookups = st.lookups;
			pairs++;
			if (rc != 0 ||
			    merkle_verify_inclusion(i, size, s_leaf[i], (const uint8_t (*)[32])proof, n,
						    roots[size]) != 0) {
				incl_ok = 0;
				continue;
			}
			struct incl_ctx c = {i, size, s_leaf[i], roots[size]};
			s_mutate(s_verify_incl, &c, (const uint8_t (*)[32])proof, n);
			/* Another leaf, another index, another root, another size. */
			uint64_t other = (i + 1) % size;
			if (size > 1 &&
			    (merkle_verify_inclusion(i, size, s_leaf[other], (const uint8_t (*)[32])proof,
						     n, roots[size]) == 0 ||
			     merkle_verify_inclusion(other, size, s_leaf[i],
						     (const uint8_t (*)[32])proof, n, roots[size]) == 0))
				incl_neg_ok = 0;
			if (merkle_verify_inclusion(i, size, s_leaf[i], (const uint8_t (*)[32])proof, n,
						    roots[size - 1]) == 0)
				incl_neg_ok = 0;
			if (size < NMAX &&
			    merkle_verify_inclusion(i, size + 1, s_leaf[i], (const uint8_t (*)[32])proof,
						    n, roots[size + 1]) == 0)
				incl_neg_ok = 0;
		}
		CHECK_ERR(merkle_inclusion_proof(s_get, &st, size, size, proof, MERKLE_PROOF_MAX, &n),
			  QIAO_EINVAL);
	}
	CHECK(incl_ok);
	CHECK(incl_neg_ok);
	printf("inclusion: %ld (index, size) pairs, at most %ld lookups per proof\n", pairs,
	       max_lookups);

	/* Consistency proofs for every (m, n). */
	int cons_ok = 1, cons_neg_ok = 1;
	max_lookups = 0, pairs = 0;
	for (uint64_t s2 = 1; s2 <= NMAX; s2++) {
		st.limit = s2;
		for (uint64_t s1 = 1; s1 <= s2; s1++) {
			st.lookups = 0;
			int rc = merkle_consistency_proof(s_get, &st, s1, s2, proof, MERKLE_PROOF_MAX, &n);
			if (st.lookups > max_lookups)
				max_lookups = st.lookups;
			pairs++;
			if (rc != 0 || (s1 == s2 && n != 0) ||
			    merkle_verify_consistency(s1, s2, roots[s1], roots[s2],
						      (const uint8_t (*)[32])proof, n) != 0) {
				cons_ok = 0;
				continue;
			}
			struct cons_ctx c = {s1, s2, roots[s1], roots[s2]};
			s_mutate(s_verify_cons, &c, (const uint8_t (*)[32])proof, n);
			/* Other roots. */
			if (s1 > 1 && merkle_verify_consistency(s1, s2, roots[s1 - 1], roots[s2],
								(const uint8_t (*)[32])proof, n) == 0)
				cons_neg_ok = 0;
			if (s2 < NMAX && merkle_verify_consistency(s1, s2, roots[s1], roots[s2 + 1],
								   (const uint8_t (*)[32])proof, n) == 0)
				cons_neg_ok = 0;
		}
		CHECK_ERR(merkle_consistency_proof(s_get, &st, 0, s2, proof, MERKLE_PROOF_MAX, &n),
			  QIAO_EINVAL);
		if (s2 > 1)
			CHECK_ERR(merkle_consistency_proof(s_get, &st, s2, s2 - 1, proof,
							   MERKLE_PROOF_MAX, &n),
				  QIAO_EINVAL);
	}
	CHECK(cons_ok);
	CHECK(cons_neg_ok);
	printf("consistency: %ld (m, n) pairs, at most %ld lookups per proof\n", pairs, max_lookups);
	printf("mutations: %ld, %ld verified (must be 0)\n", s_mutations, s_mutations_failed);

	/* Consistency from 0 always fails, even 0 to 0 with the empty roots. */
	CHECK_ERR(merkle_verify_consistency(0, 0, roots[0], roots[0], NULL, 0), QIAO_EINVAL);
	CHECK_ERR(merkle_verify_consistency(0, 5, roots[0], roots[5], NULL, 0), QIAO_EINVAL);
	CHECK_ERR(merkle_verify_consistency(3, 3, roots[3], roots[4], NULL, 0), QIAO_EBADSIG);
	CHECK_ERR(merkle_verify_consistency(6, 5, roots[6], roots[5], NULL, 0), QIAO_EINVAL);
	CHECK_ERR(merkle_verify_consistency(3, 3, roots[3], roots[3], (const uint8_t (*)[32])proof, 1),
		  QIAO_EINVAL);
	CHECK_ERR(merkle_verify_inclusion(0, 0, s_leaf[0], NULL, 0, roots[0]), QIAO_EINVAL);
	CHECK_RC(merkle_verify_inclusion(0, 1, s_leaf[0], NULL, 0, roots[1]));

	/* Output too short: ETOOBIG and the needed length, nothing looked up. */
	st.limit = NMAX;
	st.lookups = 0;
	CHECK_ERR(merkle_inclusion_proof(s_get, &st, 5, NMAX, proof, 3, &n), QIAO_ETOOBIG);
	CHECK(n == 8 && st.lookups == 0);
	CHECK_ERR(merkle_consistency_proof(s_get, &st, 5, NMAX, proof, 2, &n), QIAO_ETOOBIG);
	CHECK(n > 2 && st.lookups == 0);

	/* Reading beyond the tree the caller names is the store's business:
	 * the store says ENOTFOUND and the code comes back unchanged. */
	st.limit = 10;
	CHECK_ERR(merkle_root(s_get, &st, 11, a), QIAO_ENOTFOUND);
	CHECK_ERR(merkle_inclusion_proof(s_get, &st, 0, 11, proof, MERKLE_PROOF_MAX, &n), QIAO_ENOTFOUND);
	CHECK_ERR(merkle_frontier_load(&g, 11, s_get, &st), QIAO_ENOTFOUND);
	CHECK(g.size == 0);
}

/* ---- 3. bounds and errors ---- */

static long s_dummy_lookups;

/* A store that invents nodes (a hash of level and index): enough to count
 * lookups and check proof lengths on trees too big to build. */
static int s_dummy_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	(void)arg;
	uint8_t in[9];
	in[0] = (uint8_t)level;
	for (int i = 0; i < 8; i++)
		in[1 + i] = (uint8_t)(index >> (8 * i));
	crypto_hash_sha256(out, in, sizeof in);
	s_dummy_lookups++;
	return 0;
}

static int s_fail_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	(void)arg, (void)level, (void)index;
	memset(out, 0, 32);
	return -EIO;
}

static int s_fail_emit_at;

static int s_fail_emit(void *arg, unsigned level, uint64_t index, const uint8_t h[32])
{
	(void)arg, (void)index, (void)h;
	return (int)level == s_fail_emit_at ? -EIO : 0;
}

static void test_bounds(void)
{
	static const uint64_t sizes[] = {10000000, 10000001, 16777216, 16777217,
					 (uint64_t)1 << 63, UINT64_MAX - 1, UINT64_MAX};
	uint8_t proof[MERKLE_PROOF_MAX][32], root[32], root2[32], leaf[32];
	size_t n;
	long worst = 0;
	size_t longest = 0;
	int ok = 1;

	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		uint64_t size = sizes[s];
		uint64_t idx[] = {0, 1, size / 3, size / 2, size - 2, size - 1};
		CHECK_RC(merkle_root(s_dummy_get, NULL, size, root));
		for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
			s_dummy_lookups = 0;
			if (merkle_inclusion_proof(s_dummy_get, NULL, idx[k], size, proof, MERKLE_PROOF_MAX,
						   &n) != 0) {
				ok = 0;
				continue;
			}
			if (s_dummy_lookups > worst)
				worst = s_dummy_lookups;
			if (n > longest)
				longest = n;
			/* The invented nodes do not form a tree, so most such
			 * proofs cannot verify (those made only of nodes the
			 * root is made of do); but every length must be the
			 * one the verifier expects: never EINVAL. */
			s_dummy_get(NULL, 0, idx[k], leaf);
			if (merkle_verify_inclusion(idx[k], size, leaf, (const uint8_t (*)[32])proof, n,
						    root) == QIAO_EINVAL)
				ok = 0;
			if (idx[k] == 0)
				continue;
			s_dummy_lookups = 0;
			if (merkle_consistency_proof(s_dummy_get, NULL, idx[k], size, proof,
						     MERKLE_PROOF_MAX, &n) != 0) {
				ok = 0;
				continue;
			}
			if (s_dummy_lookups > worst)
				worst = s_dummy_lookups;
			if (n > longest)
				longest = n;
			CHECK_RC(merkle_root(s_dummy_get, NULL, idx[k], root2));
			if (merkle_verify_consistency(idx[k], size, root2, root,
						      (const uint8_t (*)[32])proof, n) == QIAO_EINVAL)
				ok = 0;
		}
	}
	CHECK(ok);
	CHECK(worst <= 129);
	CHECK(longest <= MERKLE_PROOF_MAX);
	printf("large trees: at most %ld lookups and %zu hashes per proof\n", worst, longest);

	/* Store errors pass through; outputs are cleared. */
	struct merkle_frontier f;
	CHECK_ERR(merkle_root(s_fail_get, NULL, 7, root), -EIO);
	CHECK(sodium_is_zero(root, 32));
	CHECK_ERR(merkle_inclusion_proof(s_fail_get, NULL, 3, 7, proof, MERKLE_PROOF_MAX, &n), -EIO);
	CHECK_ERR(merkle_consistency_proof(s_fail_get, NULL, 3, 7, proof, MERKLE_PROOF_MAX, &n), -EIO);
	CHECK_ERR(merkle_frontier_load(&f, 7, s_fail_get, NULL), -EIO);
	CHECK(f.size == 0);

	/* A failing emit leaves the frontier as it was. */
	merkle_frontier_init(&f);
	for (int i = 0; i < 3; i++) {
		merkle_leaf_hash(&i, sizeof i, leaf);
		CHECK_RC(merkle_frontier_append(&f, leaf, NULL, NULL));
	}
	struct merkle_frontier before = f;
	s_fail_emit_at = 2; /* the 4th leaf completes levels 1 and 2 */
	CHECK_ERR(merkle_frontier_append(&f, leaf, s_fail_emit, NULL), -EIO);
	CHECK(memcmp(&before, &f, sizeof f) == 0);
	s_fail_emit_at = -1;
	CHECK_RC(merkle_frontier_append(&f, leaf, s_fail_emit, NULL));
	CHECK(f.size == 4);
	f.size = UINT64_MAX;
	CHECK_ERR(merkle_frontier_append(&f, leaf, NULL, NULL), QIAO_ETOOBIG);
}

/* The leaf and node hashes with the CPU's SHA instructions (where it has
 * them) against libsodium's SHA-256 of the same bytes: every length across
 * the one-, two- and multi-block cases, at every alignment of the data. */
static void test_sha256_paths(void)
{
	static uint8_t data[1200 + 16];
	randombytes_buf(data, sizeof data);
	printf("sha256: %s\n", merkle_sha256_accelerated() ? "libcrypto" : "libsodium only");
	long bad = 0, n = 0;
	for (size_t len = 0; len <= 1200; len++) {
		for (size_t off = 0; off < (len < 200 ? 16u : 1u); off++) {
			uint8_t buf[1 + 1200], want[32], got[32], port[32];
			buf[0] = 0x00;
			memcpy(buf + 1, data + off, len);
			crypto_hash_sha256(want, buf, len + 1);
			merkle_leaf_hash(data + off, len, got);
			merkle_sha256_force_portable(1);
			merkle_leaf_hash(data + off, len, port);
			merkle_sha256_force_portable(0);
			bad += memcmp(want, got, 32) != 0 || memcmp(want, port, 32) != 0;
			n++;
		}
	}
	CHECK(bad == 0 && n > 4000);
	uint8_t l[32], r[32], buf[65], want[32], got[32];
	for (int i = 0; i < 100; i++) {
		randombytes_buf(l, 32);
		randombytes_buf(r, 32);
		buf[0] = 0x01;
		memcpy(buf + 1, l, 32);
		memcpy(buf + 33, r, 32);
		crypto_hash_sha256(want, buf, 65);
		merkle_node_hash(l, r, got);
		bad += memcmp(want, got, 32) != 0;
		merkle_node_hash(l, r, l); /* out aliasing an input */
		bad += memcmp(want, l, 32) != 0;
	}
	CHECK(bad == 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	s_light = RUNNING_ON_VALGRIND || check_slowed();
	if (s_light)
		printf("light mode (%s): one byte flipped per proof hash instead of all 32\n",
		       RUNNING_ON_VALGRIND ? "under valgrind" : "QIAO_TIME_SCALE > 1");
	test_sha256_paths();
	test_rfc9162_vectors();
	merkle_sha256_force_portable(1);
	test_rfc9162_vectors(); /* the same vectors through libsodium */
	merkle_sha256_force_portable(0);
	test_trees();
	test_bounds();
	return check_done();
}
