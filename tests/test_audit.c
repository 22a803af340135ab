/*
 * test_audit.c - the audit log (gateway/audit_log.c): append, checkpoints,
 * queries with proofs, and tampering that `qiao audit verify` must catch
 * and name: any single byte of a stored entry changed, an entry deleted,
 * two entries swapped, the log truncated, a checkpoint altered.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_fixture.h"
#include "audit_merkle.h"
#include "audit_note.h"
#include "check.h"

#define N_EX 40 /* exchanges after the ADMIN_ACTION entry */

static char s_dir[256];

static void s_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Raw access to the log's entry table, as an attacker with the files
 * would have. */
static int s_raw_get(struct fx *f, const char *table, uint16_t type, const void *k, size_t kl, uint8_t **v,
		     size_t *vl)
{
	qiao_table_t *t;
	int rc = qiao_store_table(f->st, table, type, &t);
	qiao_txn_t *tx = NULL;
	if (rc == 0)
		rc = qiao_txn_begin(f->st, 0, &tx);
	if (rc == 0)
		rc = qiao_store_get(tx, t, k, kl, (void **)v, vl, NULL);
	qiao_txn_abort(&tx);
	return rc;
}

static int s_raw_put(struct fx *f, const char *table, uint16_t type, const void *k, size_t kl, const void *v,
		     size_t vl)
{
	qiao_table_t *t;
	int rc = qiao_store_table(f->st, table, type, &t);
	qiao_txn_t *tx = NULL;
	if (rc == 0)
		rc = qiao_txn_begin(f->st, 1, &tx);
	if (rc == 0)
		rc = qiao_store_put(tx, t, k, kl, v, vl, 0);
	if (rc == 0)
		rc = qiao_txn_commit(&tx);
	else
		qiao_txn_abort(&tx);
	return rc;
}

static int s_raw_del(struct fx *f, const char *table, uint16_t type, const void *k, size_t kl)
{
	qiao_table_t *t;
	int rc = qiao_store_table(f->st, table, type, &t);
	qiao_txn_t *tx = NULL;
	if (rc == 0)
		rc = qiao_txn_begin(f->st, 1, &tx);
	if (rc == 0)
		rc = qiao_store_del(tx, t, k, kl);
	if (rc == 0)
		rc = qiao_txn_commit(&tx);
	else
		qiao_txn_abort(&tx);
	return rc;
}

#define T_ENTRY 0x4145
#define T_META 0x414d
#define T_CKPT 0x4143

static int s_verify(struct fx *f, int sigs, struct audit_verify_report *r)
{
	qiao_txn_t *tx = NULL;
	int rc = qiao_txn_begin(f->st, 0, &tx);
	if (rc == 0)
		rc = audit_log_verify(f->log, tx, NULL, sigs, NULL, NULL, r);
	qiao_txn_abort(&tx);
	return rc;
}

static void s_fresh(struct fx *f, uint64_t every)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s/log", s_dir);
	CHECK(system(cmd) == 0);
	char d[300];
	snprintf(d, sizeof d, "%s/log", s_dir);
	CHECK_RC(fx_open(f, d, every, 0));
	CHECK_RC(fx_fill(f, N_EX, 7, 1796000000000LL));
}

static void test_good_log(void)
{
	struct fx f;
	s_fresh(&f, 10);
	struct audit_verify_report r;
	CHECK_RC(s_verify(&f, 1, &r));
	CHECK(r.ok);
	CHECK(r.size == N_EX + 1);
	CHECK(r.entries == N_EX + 1);
	CHECK(r.signatures == N_EX); /* the ADMIN_ACTION entry has no header */
	CHECK(r.checkpoints == 5);    /* at 10, 20, 30, 40 and the final 41 */
	CHECK(r.uncovered == 0);

	/* queries: by subject, case, member; each with a proof that checks */
	qiao_txn_t *tx = NULL;
	CHECK_RC(qiao_txn_begin(f.st, 0, &tx));
	Qiao__V1__Checkpoint *ck = NULL;
	CHECK_RC(audit_log_checkpoint_get(f.log, tx, UINT64_MAX, &ck));
	CHECK(ck && ck->tree_size == N_EX + 1);
	uint8_t sh[32];
	audit_log_subject_hash(f.log, "RESIDENT_ID", fx_people[2], sh);
	struct audit_query q = {.subject = sh};
	struct hits {
		uint64_t n, idx[64];
	} h = {0};
	int fn(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e);
	CHECK_RC(audit_log_query(f.log, tx, &q, fn, &h));
	CHECK(h.n == N_EX / FX_NPEOPLE); /* exchanges 2, 7, 12, ... */
	for (uint64_t i = 0; i < h.n; i++) {
		CHECK(h.idx[i] == 1 + 2 + 5 * i);
		uint8_t proof[AUDIT_MAX_PROOF][32];
		size_t np = 0;
		CHECK_RC(audit_log_prove(f.log, tx, h.idx[i], ck->tree_size, proof, &np));
		uint8_t *b = NULL;
		size_t len = 0;
		CHECK_RC(audit_log_entry(f.log, tx, h.idx[i], &b, &len));
		uint8_t leaf[32];
		merkle_leaf_hash(b, len, leaf);
		free(b);
		CHECK_RC(merkle_verify_inclusion(h.idx[i], ck->tree_size, leaf, (const uint8_t(*)[32])proof, np,
						 ck->root_hash.data));
	}
	h.n = 0;
	struct audit_query qc = {.case_id = "case-3"};
	CHECK_RC(audit_log_query(f.log, tx, &qc, fn, &h));
	CHECK(h.n == 4 && h.idx[0] == 13 && h.idx[3] == 16);
	h.n = 0;
	struct audit_query qm = {.member = FX_REG, .limit = 5, .newest_first = 1};
	CHECK_RC(audit_log_query(f.log, tx, &qm, fn, &h));
	CHECK(h.n == 5 && h.idx[0] == N_EX && h.idx[4] == N_EX - 4);
	h.n = 0;
	struct audit_query qt = {.since_ms = 1796000000010LL, .until_ms = 1796000000013LL};
	CHECK_RC(audit_log_query(f.log, tx, &qt, fn, &h));
	CHECK(h.n == 3 && h.idx[0] == 11);
	/* a subject nobody asked about */
	h.n = 0;
	audit_log_subject_hash(f.log, "RESIDENT_ID", "110105194912310024", sh);
	CHECK_RC(audit_log_query(f.log, tx, &q, fn, &h));
	CHECK(h.n == 0);
	/* consistency between two checkpoints */
	Qiao__V1__Checkpoint *c10 = NULL;
	CHECK_RC(audit_log_checkpoint_get(f.log, tx, 10, &c10));
	uint8_t cp[AUDIT_MAX_PROOF][32];
	size_t ncp = 0;
	CHECK_RC(audit_log_consistency(f.log, tx, 10, ck->tree_size, cp, &ncp));
	CHECK_RC(merkle_verify_consistency(10, ck->tree_size, c10->root_hash.data, ck->root_hash.data,
					   (const uint8_t(*)[32])cp, ncp));
	/* the checkpoint note verifies with the stored vkey */
	char vk[512];
	CHECK_RC(audit_log_vkey(f.log, tx, vk, sizeof vk));
	const char *end = NULL;
	CHECK_RC(note_verify(ck->note, strlen(ck->note), vk, &end));
	qiao__v1__checkpoint__free_unpacked(c10, NULL);
	qiao__v1__checkpoint__free_unpacked(ck, NULL);
	qiao_txn_abort(&tx);
	fx_close(&f);
}

int fn(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)b, (void)len, (void)e;
	struct {
		uint64_t n, idx[64];
	} *h = arg;
	if (h->n < 64)
		h->idx[h->n] = index;
	h->n++;
	return 0;
}

/* Every single byte of some entries, changed one at a time. */
static void test_byte_flips(void)
{
	struct fx f;
	s_fresh(&f, 10);
	uint64_t targets[] = {0, 1, 17, N_EX};
	long caught = 0, tried = 0;
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		uint8_t k[8];
		s_be64(k, targets[t]);
		uint8_t *orig = NULL;
		size_t len = 0;
		CHECK_RC(s_raw_get(&f, "audit_entry", T_ENTRY, k, 8, &orig, &len));
		uint8_t *mod = malloc(len);
		for (size_t i = 0; orig && mod && i < len; i++) {
			memcpy(mod, orig, len);
			mod[i] ^= 0x01;
			CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k, 8, mod, len));
			struct audit_verify_report r;
			int rc = s_verify(&f, 1, &r);
			tried++;
			if (rc == QIAO_EBADSIG && !r.ok && r.bad_index == targets[t])
				caught++;
			else
				fprintf(stderr, "entry %llu byte %zu: not caught (rc %d, ok %d, bad %llu: %s)\n",
					(unsigned long long)targets[t], i, rc, r.ok, (unsigned long long)r.bad_index,
					r.reason);
		}
		CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k, 8, orig, len));
		free(mod);
		free(orig);
	}
	CHECK(tried > 500 && caught == tried);
	printf("byte flips: %ld of %ld caught, each naming its entry\n", caught, tried);
	struct audit_verify_report r;
	CHECK_RC(s_verify(&f, 1, &r)); /* restored */
	fx_close(&f);
}

static void test_delete_swap_truncate(void)
{
	struct fx f;
	struct audit_verify_report r;
	uint8_t k[8], k2[8];
	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;

	/* delete entry 5 */
	s_fresh(&f, 10);
	s_be64(k, 5);
	CHECK_RC(s_raw_del(&f, "audit_entry", T_ENTRY, k, 8));
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(r.bad_index == 5 && strstr(r.reason, "entry 5 is missing"));
	printf("delete: %s\n", r.reason);
	fx_close(&f);

	/* swap entries 8 and 9 */
	s_fresh(&f, 10);
	s_be64(k, 8);
	s_be64(k2, 9);
	CHECK_RC(s_raw_get(&f, "audit_entry", T_ENTRY, k, 8, &a, &al));
	CHECK_RC(s_raw_get(&f, "audit_entry", T_ENTRY, k2, 8, &b, &bl));
	CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k, 8, b, bl));
	CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k2, 8, a, al));
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(r.bad_index == 8);
	printf("swap: %s\n", r.reason);
	free(a);
	free(b);
	fx_close(&f);

	/* truncate: the last 6 entries removed */
	s_fresh(&f, 10);
	for (uint64_t i = N_EX + 1 - 6; i <= N_EX; i++) {
		s_be64(k, i);
		CHECK_RC(s_raw_del(&f, "audit_entry", T_ENTRY, k, 8));
	}
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(strstr(r.reason, "truncated") != NULL);
	printf("truncate: %s\n", r.reason);
	fx_close(&f);

	/* truncate harder: entries and the size record, checkpoints left */
	s_fresh(&f, 10);
	for (uint64_t i = 30; i <= N_EX; i++) {
		s_be64(k, i);
		CHECK_RC(s_raw_del(&f, "audit_entry", T_ENTRY, k, 8));
	}
	uint8_t sz[8] = {30};
	CHECK_RC(s_raw_put(&f, "audit_meta", T_META, "size", 4, sz, 8));
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(strstr(r.reason, "truncated") != NULL);
	printf("truncate with size: %s\n", r.reason);
	fx_close(&f);

	/* an entry rewritten consistently (new leaf, nodes untouched) under a
	 * checkpoint: the stored leaf no longer matches */
	s_fresh(&f, 10);
	s_be64(k, 3);
	CHECK_RC(s_raw_get(&f, "audit_entry", T_ENTRY, k, 8, &a, &al));
	Qiao__V1__AuditEntry *e = qiao__v1__audit_entry__unpack(NULL, al, a);
	CHECK(e != NULL);
	if (e) {
		char *orig_user = e->end_user;
		e->end_user = "someone-else";
		size_t nl = qiao__v1__audit_entry__get_packed_size(e);
		uint8_t *nb = malloc(nl);
		qiao__v1__audit_entry__pack(e, nb);
		CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k, 8, nb, nl));
		free(nb);
		e->end_user = orig_user;
		qiao__v1__audit_entry__free_unpacked(e, NULL);
	}
	free(a);
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(r.bad_index == 3);
	printf("re-encoded entry: %s\n", r.reason);
	fx_close(&f);

	/* a checkpoint's note altered */
	s_fresh(&f, 10);
	s_be64(k, 20);
	CHECK_RC(s_raw_get(&f, "audit_ckpt", T_CKPT, k, 8, &a, &al));
	Qiao__V1__Checkpoint *c = qiao__v1__checkpoint__unpack(NULL, al, a);
	CHECK(c != NULL);
	if (c) {
		char *p = strstr(c->note, "\n20\n");
		CHECK(p != NULL);
		if (p)
			p[2] = '1'; /* "21" */
		size_t nl = qiao__v1__checkpoint__get_packed_size(c);
		uint8_t *nb = malloc(nl);
		qiao__v1__checkpoint__pack(c, nb);
		CHECK_RC(s_raw_put(&f, "audit_ckpt", T_CKPT, k, 8, nb, nl));
		free(nb);
		qiao__v1__checkpoint__free_unpacked(c, NULL);
	}
	free(a);
	CHECK_ERR(s_verify(&f, 1, &r), QIAO_EBADSIG);
	CHECK(strstr(r.reason, "checkpoint at size 20") != NULL);
	printf("checkpoint altered: %s\n", r.reason);
	fx_close(&f);
}

/* `qiao audit verify` itself: exit 1 and the entry named. */
static void test_cli(void)
{
	const char *bin = getenv("QIAO_BIN");
	if (!bin) {
		fprintf(stderr, "QIAO_BIN not set\n");
		CHECK(0);
		return;
	}
	struct fx f;
	s_fresh(&f, 10);
	fx_close(&f);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/gateway/qiao audit verify --store %s/log > %s/ok.txt 2>&1", bin, s_dir, s_dir);
	int st = system(cmd);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char d[300];
	snprintf(d, sizeof d, "%s/log", s_dir);
	CHECK_RC(fx_open(&f, d, 10, 0));
	uint8_t k[8];
	s_be64(k, 12);
	uint8_t *a = NULL;
	size_t al = 0;
	CHECK_RC(s_raw_get(&f, "audit_entry", T_ENTRY, k, 8, &a, &al));
	if (a) {
		a[al / 2] ^= 0x80;
		CHECK_RC(s_raw_put(&f, "audit_entry", T_ENTRY, k, 8, a, al));
	}
	free(a);
	fx_close(&f);
	snprintf(cmd, sizeof cmd, "%s/gateway/qiao audit verify --store %s/log > %s/bad.txt 2>&1", bin, s_dir, s_dir);
	st = system(cmd);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(cmd, sizeof cmd, "grep -q 'first bad entry: 12' %s/bad.txt", s_dir);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof cmd, "cat %s/bad.txt", s_dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	snprintf(s_dir, sizeof s_dir, "/tmp/qiao-test-audit.XXXXXX");
	if (!mkdtemp(s_dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_good_log();
	test_byte_flips();
	test_delete_swap_truncate();
	test_cli();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", s_dir);
	return check_done();
}
