/*
 * test_store.c - the LMDB layer: tables, typed records, expiry, iteration,
 * sweep, read-only readers in another process, format versions, map growth
 * and map full, group commit, backup.
 *
 * The format and record-corruption cases write into the environment with raw
 * LMDB (the store must be closed then: LMDB forbids two handles on one
 * environment in a process).  That is the only place outside store/ that
 * includes lmdb.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "qiao_store.h"

static char s_root[512];

static const char *s_path(const char *name)
{
	static char buf[8][600];
	static int i;
	char *p = buf[i++ % 8];
	snprintf(p, 600, "%s/%s", s_root, name);
	return p;
}

static int s_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void s_rmrf(const char *p)
{
	nftw(p, s_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void s_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A payload derived from n, so any record can be re-checked. */
static size_t s_fill(unsigned char *buf, size_t len, uint64_t n)
{
	uint64_t x = n * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	return len;
}

static int s_same_payload(const void *v, size_t vl, size_t want_len, uint64_t n)
{
	unsigned char buf[4096];
	if (vl != want_len || vl > sizeof buf)
		return 0;
	s_fill(buf, vl, n);
	return memcmp(buf, v, vl) == 0;
}

static int s_get_str(qiao_txn_t *t, qiao_table_t *tb, const char *k, char *out, size_t outlen)
{
	void *v;
	size_t vl;
	int rc = qiao_store_get(t, tb, k, strlen(k), &v, &vl, NULL);
	if (rc)
		return rc;
	if (vl >= outlen)
		vl = outlen - 1;
	memcpy(out, v, vl);
	out[vl] = 0;
	free(v);
	return 0;
}

static int s_put_str(qiao_txn_t *t, qiao_table_t *tb, const char *k, const char *v, int64_t exp)
{
	return qiao_store_put(t, tb, k, strlen(k), v, strlen(v), exp);
}

/* ------------------------------------------------------------------------ */

struct collect {
	int n;
	char keys[64][32];
	int stop_after;
	int64_t exp[64];
};

static int s_collect(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	struct collect *c = arg;
	(void)v;
	(void)vl;
	if (c->n < 64) {
		size_t n = kl < 31 ? kl : 31;
		memcpy(c->keys[c->n], k, n);
		c->keys[c->n][n] = 0;
		c->exp[c->n] = exp;
	}
	c->n++;
	if (c->stop_after && c->n == c->stop_after)
		return 42;
	return 0;
}

struct fnarg {
	qiao_table_t *tb;
	int fail;
};

static int s_write_fn(qiao_txn_t *t, void *arg)
{
	struct fnarg *a = arg;
	int rc = s_put_str(t, a->tb, "via-write", "w", 0);
	if (rc)
		return rc;
	if (a->fail)
		return QIAO_EIO;
	return qiao_txn_commit(&t) == QIAO_EINVAL ? 0 : -1; /* borrowed: refused */
}

static void test_basic(void)
{
	qiao_store_t *st = NULL, *st2 = NULL;
	qiao_table_t *users = NULL, *other = NULL, *tb = NULL;
	qiao_txn_t *t = NULL, *t2 = NULL;
	struct qiao_store_info info;
	struct stat sb;
	char buf[64];
	unsigned char big[600];
	void *v;
	size_t vl;
	int64_t exp;
	uint64_t n;
	const char *dir = s_path("basic");

	CHECK_RC(qiao_store_open(&st, dir, NULL));
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	CHECK_ERR(qiao_store_open(&st2, dir, NULL), QIAO_EEXIST);
	CHECK(st2 == NULL);
	CHECK(strstr(qiao_store_last_error(), "already open") != NULL);
	CHECK_ERR(qiao_store_open(NULL, dir, NULL), QIAO_EINVAL);

	CHECK_RC(qiao_store_table(st, "users", 1, &users));
	CHECK_RC(qiao_store_table(st, "users", 1, &tb));
	CHECK(tb == users);
	CHECK_ERR(qiao_store_table(st, "users", 2, &tb), QIAO_ESTORETYPE);
	CHECK(tb == NULL);
	CHECK_ERR(qiao_store_table(st, "qiao.meta", 1, &tb), QIAO_EINVAL);
	CHECK_ERR(qiao_store_table(st, "", 1, &tb), QIAO_EINVAL);
	CHECK_RC(qiao_store_table(st, "other", 2, &other));
	CHECK(strcmp(qiao_table_name(users), "users") == 0 && qiao_table_type(other) == 2);

	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_ERR(qiao_txn_begin(st, 1, &t2), QIAO_EINVAL); /* second writer on one thread */
	CHECK(t2 == NULL);
	CHECK_RC(s_put_str(t, users, "alice", "Alice A.", 0));
	CHECK_RC(s_put_str(t, users, "bob", "Bob B.", 0));
	CHECK_RC(s_put_str(t, other, "alice", "in other", 0));
	CHECK_RC(qiao_store_put(t, users, "empty", 5, NULL, 0, 0));
	CHECK_ERR(qiao_store_put(t, users, "", 0, "x", 1, 0), QIAO_EINVAL);
	memset(big, 'k', sizeof big);
	CHECK_ERR(qiao_store_put(t, users, big, 512, "x", 1, 0), QIAO_ETOOBIG);
	CHECK_RC(qiao_store_put(t, users, big, 511, "x", 1, 0));
	CHECK_ERR(qiao_store_put(t, users, "neg", 3, "x", 1, -5), QIAO_EINVAL);
	CHECK_ERR(qiao_store_put(t, users, "nul", 3, NULL, 4, 0), QIAO_EINVAL);
	CHECK_RC(qiao_txn_commit(&t));
	CHECK(t == NULL);
	CHECK_ERR(qiao_txn_commit(&t), QIAO_EINVAL);
	qiao_txn_abort(&t);

	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(s_get_str(t, users, "alice", buf, sizeof buf));
	CHECK(strcmp(buf, "Alice A.") == 0);
	CHECK_RC(s_get_str(t, other, "alice", buf, sizeof buf));
	CHECK(strcmp(buf, "in other") == 0);
	CHECK_RC(qiao_store_get(t, users, "empty", 5, &v, &vl, &exp));
	CHECK(v != NULL && vl == 0 && exp == 0);
	free(v);
	CHECK_RC(qiao_store_get(t, users, "bob", 3, NULL, &vl, NULL));
	CHECK(vl == 6);
	v = (void *)1;
	CHECK_ERR(qiao_store_get(t, users, "carol", 5, &v, &vl, NULL), QIAO_ENOTFOUND);
	CHECK(v == NULL && vl == 0);
	CHECK_ERR(s_put_str(t, users, "x", "y", 0), QIAO_EINVAL); /* read txn */
	CHECK_RC(qiao_store_count(t, users, &n));
	CHECK(n == 4);
	/* a second read txn on the same thread is fine */
	CHECK_RC(qiao_txn_begin(st, 0, &t2));
	CHECK_RC(qiao_txn_commit(&t2));
	qiao_txn_abort(&t);
	qiao_txn_abort(&t);

	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(qiao_store_del(t, users, "alice", 5));
	CHECK_ERR(qiao_store_del(t, users, "alice", 5), QIAO_ENOTFOUND);
	CHECK_ERR(qiao_store_insert(t, users, "bob", 3, "again", 5, 0), QIAO_EEXIST);
	CHECK_RC(qiao_store_insert(t, users, "dave", 4, "Dave", 4, 0));
	CHECK_RC(qiao_txn_commit(&t));
	/* an aborted write leaves nothing behind */
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(s_put_str(t, users, "ghost", "boo", 0));
	qiao_txn_abort(&t);
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_ERR(s_get_str(t, users, "alice", buf, sizeof buf), QIAO_ENOTFOUND);
	CHECK_ERR(s_get_str(t, users, "ghost", buf, sizeof buf), QIAO_ENOTFOUND);
	CHECK_RC(s_get_str(t, users, "dave", buf, sizeof buf));
	qiao_txn_abort(&t);

	/* qiao_store_write: commits fn's work, or none of it */
	{
		struct fnarg a = {users, 1};
		CHECK_ERR(qiao_store_write(st, s_write_fn, &a), QIAO_EIO);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_ERR(s_get_str(t, users, "via-write", buf, sizeof buf), QIAO_ENOTFOUND);
		qiao_txn_abort(&t);
		a.fail = 0;
		CHECK_RC(qiao_store_write(st, s_write_fn, &a));
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(s_get_str(t, users, "via-write", buf, sizeof buf));
		qiao_txn_abort(&t);
	}

	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size == (size_t)64 << 20);
	CHECK(info.max_map_size == (size_t)16 << 30);
	CHECK(info.read_only == 0 && info.page_size >= 4096);
	CHECK(info.max_readers >= 126);

	qiao_store_close(&st);
	CHECK(st == NULL);
	qiao_store_close(&st);

	/* everything survives a reopen, including each table's type */
	CHECK_RC(qiao_store_open(&st, dir, NULL));
	CHECK_ERR(qiao_store_table(st, "users", 7, &tb), QIAO_ESTORETYPE);
	CHECK(strstr(qiao_store_last_error(), "created with record type 1") != NULL);
	CHECK_RC(qiao_store_table(st, "users", 1, &users));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(s_get_str(t, users, "bob", buf, sizeof buf));
	CHECK(strcmp(buf, "Bob B.") == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------ */

static int64_t s_fake_now;
static int64_t s_fake_clock(void *arg)
{
	(void)arg;
	return s_fake_now;
}

static void test_expiry(void)
{
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_txn_t *t = NULL;
	struct collect c;
	char buf[64];
	int64_t exp;
	uint64_t n;
	size_t removed;

	CHECK_RC(qiao_store_open(&st, s_path("expiry"), NULL));
	CHECK_RC(qiao_store_table(st, "ttl", 9, &tb));
	s_fake_now = 500;
	qiao_store_set_clock(st, s_fake_clock, NULL);
	CHECK(qiao_store_now_ms(st) == 500);

	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(s_put_str(t, tb, "a", "1", 1000));
	CHECK_RC(s_put_str(t, tb, "b", "2", 0));
	CHECK_RC(s_put_str(t, tb, "c", "3", 2000));
	CHECK_RC(s_put_str(t, tb, "d", "4", 1500));
	CHECK_RC(qiao_txn_commit(&t));

	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(qiao_store_get(t, tb, "a", 1, NULL, NULL, &exp));
	CHECK(exp == 1000);
	qiao_txn_abort(&t);

	s_fake_now = 1500; /* a expired (1000), d expires exactly now */
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_ERR(s_get_str(t, tb, "a", buf, sizeof buf), QIAO_ENOTFOUND);
	CHECK_ERR(s_get_str(t, tb, "d", buf, sizeof buf), QIAO_ENOTFOUND);
	CHECK_RC(s_get_str(t, tb, "b", buf, sizeof buf));
	CHECK_RC(s_get_str(t, tb, "c", buf, sizeof buf));
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, NULL, 0, s_collect, &c));
	CHECK(c.n == 2 && strcmp(c.keys[0], "b") == 0 && strcmp(c.keys[1], "c") == 0);
	CHECK(c.exp[0] == 0 && c.exp[1] == 2000);
	CHECK_RC(qiao_store_count(t, tb, &n));
	CHECK(n == 4); /* count includes what is expired but not swept */
	qiao_txn_abort(&t);

	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(qiao_store_insert(t, tb, "a", 1, "new", 3, 0)); /* expired: replaced */
	CHECK_RC(qiao_txn_commit(&t));

	CHECK_RC(qiao_store_sweep_expired(st, tb, 0, 0, &removed));
	CHECK(removed == 1); /* d */
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(qiao_store_count(t, tb, &n));
	CHECK(n == 3);
	CHECK_RC(s_get_str(t, tb, "a", buf, sizeof buf));
	CHECK(strcmp(buf, "new") == 0);
	qiao_txn_abort(&t);
	CHECK_RC(qiao_store_sweep_expired(st, tb, 2500, 0, &removed));
	CHECK(removed == 1); /* c, by an explicit now */

	/* many: more than one sweep transaction, and a bounded sweep */
	{
		unsigned char k[8];
		CHECK_RC(qiao_txn_begin(st, 1, &t));
		for (uint64_t i = 0; i < 6000; i++) {
			s_be64(k, i);
			if (qiao_store_put(t, tb, k, 8, "v", 1, (i % 2) ? 0 : 100) != 0)
				break;
		}
		CHECK_RC(qiao_txn_commit(&t));
		CHECK_RC(qiao_store_sweep_expired(st, tb, 0, 10, &removed));
		CHECK(removed == 10);
		CHECK_RC(qiao_store_sweep_expired(st, tb, 0, 0, &removed));
		CHECK(removed == 2990);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(qiao_store_count(t, tb, &n));
		CHECK(n == 3002);
		qiao_txn_abort(&t);
	}

	/* back to the real clock */
	qiao_store_set_clock(st, NULL, NULL);
	{
		int64_t now = qiao_store_now_ms(st);
		CHECK(now > (int64_t)1600000000000);
		CHECK_RC(qiao_txn_begin(st, 1, &t));
		CHECK_RC(s_put_str(t, tb, "soon", "x", now + 3600 * 1000));
		CHECK_RC(s_put_str(t, tb, "past", "x", 1));
		CHECK_RC(qiao_txn_commit(&t));
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(s_get_str(t, tb, "soon", buf, sizeof buf));
		CHECK_ERR(s_get_str(t, tb, "past", buf, sizeof buf), QIAO_ENOTFOUND);
		qiao_txn_abort(&t);
	}
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------ */

struct nums {
	int n;
	uint64_t v[200];
	int stop_after;
};

static int s_collect_num(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	struct nums *c = arg;
	const unsigned char *p = k;
	uint64_t x = 0;
	(void)v;
	(void)vl;
	(void)exp;
	if (kl != 8)
		return -1;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	if (c->n < 200)
		c->v[c->n] = x;
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static int s_seq(const struct nums *c, uint64_t from, int step, int count)
{
	if (c->n != count)
		return 0;
	for (int i = 0; i < count; i++)
		if (c->v[i] != from + (uint64_t)((int64_t)step * i))
			return 0;
	return 1;
}

static void test_iter(void)
{
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL, *ts = NULL;
	qiao_txn_t *t = NULL;
	struct collect c;
	struct nums nm;
	unsigned char a[8], b[8];
	const char *keys[] = {"a/1", "a/2", "a/3", "b/1", "b/2", "c", "a", "b/"};

	CHECK_RC(qiao_store_open(&st, s_path("iter"), NULL));
	CHECK_RC(qiao_store_table(st, "ev", 3, &tb));
	CHECK_RC(qiao_store_table(st, "time", 4, &ts));
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CHECK_RC(s_put_str(t, tb, keys[i], keys[i], 0));
	for (uint64_t i = 0; i < 100; i++) {
		s_be64(a, i * 10); /* timestamps 0, 10, ..., 990 */
		CHECK_RC(qiao_store_put(t, ts, a, 8, "e", 1, 0));
	}
	CHECK_RC(qiao_txn_commit(&t));

	CHECK_RC(qiao_txn_begin(st, 0, &t));
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, "a/", 2, s_collect, &c));
	CHECK(c.n == 3 && strcmp(c.keys[0], "a/1") == 0 && strcmp(c.keys[2], "a/3") == 0);
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, "b/", 2, s_collect, &c));
	CHECK(c.n == 3 && strcmp(c.keys[0], "b/") == 0);
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, "", 0, s_collect, &c));
	CHECK(c.n == 8 && strcmp(c.keys[0], "a") == 0 && strcmp(c.keys[7], "c") == 0);
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, "zz", 2, s_collect, &c));
	CHECK(c.n == 0);
	memset(&c, 0, sizeof c);
	c.stop_after = 2;
	CHECK(qiao_store_iter_prefix(t, tb, "a", 1, s_collect, &c) == 42);
	CHECK(c.n == 2);
	CHECK_ERR(qiao_store_iter_prefix(t, tb, NULL, 3, s_collect, &c), QIAO_EINVAL);
	CHECK_ERR(qiao_store_iter_prefix(t, tb, "a", 1, NULL, NULL), QIAO_EINVAL);

	/* ranges over big-endian timestamps */
	s_be64(a, 100);
	s_be64(b, 200);
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 100, 10, 10));
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 190, -10, 10));
	s_be64(a, 105); /* bounds between keys */
	s_be64(b, 131);
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 110, 10, 3));
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 130, -10, 3));
	s_be64(b, 50);
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, NULL, 0, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 0, 10, 5));
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, NULL, 0, b, 8, s_collect_num, &nm));
	CHECK(s_seq(&nm, 40, -10, 5));
	s_be64(a, 950);
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, a, 8, NULL, 0, s_collect_num, &nm));
	CHECK(s_seq(&nm, 950, 10, 5));
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, a, 8, NULL, 0, s_collect_num, &nm));
	CHECK(s_seq(&nm, 990, -10, 5));
	s_be64(b, 100000); /* end beyond the last key */
	memset(&nm, 0, sizeof nm);
	nm.stop_after = 3;
	CHECK(qiao_store_iter_range_rev(t, ts, NULL, 0, b, 8, s_collect_num, &nm) == 7);
	CHECK(s_seq(&nm, 990, -10, 3));
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, NULL, 0, NULL, 0, s_collect_num, &nm));
	CHECK(nm.n == 100);
	s_be64(a, 500);
	s_be64(b, 400); /* empty: end before start */
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(nm.n == 0);
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, a, 8, b, 8, s_collect_num, &nm));
	CHECK(nm.n == 0);
	s_be64(a, 5000); /* start after the last key */
	memset(&nm, 0, sizeof nm);
	CHECK_RC(qiao_store_iter_range_rev(t, ts, a, 8, NULL, 0, s_collect_num, &nm));
	CHECK(nm.n == 0);
	qiao_txn_abort(&t);

	/* expired records are skipped */
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(s_put_str(t, tb, "a/2", "gone", 1));
	CHECK_RC(qiao_txn_commit(&t));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_prefix(t, tb, "a/", 2, s_collect, &c));
	CHECK(c.n == 2 && strcmp(c.keys[1], "a/3") == 0);
	memset(&c, 0, sizeof c);
	CHECK_RC(qiao_store_iter_range_rev(t, tb, "a/", 2, "a/9", 3, s_collect, &c));
	CHECK(c.n == 2 && strcmp(c.keys[0], "a/3") == 0 && strcmp(c.keys[1], "a/1") == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Raw LMDB: write what this build must refuse.
 */

static int s_raw_put(const char *dir, const char *table, const void *k, size_t kl,
		     const void *v, size_t vl)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_env_create(&env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(env, 8);
	rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, table, table ? MDB_CREATE : 0, &dbi);
		if (rc == 0)
			rc = mdb_put(txn, dbi, &key, &val, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return rc;
}

static void test_raw_records(void)
{
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_txn_t *t = NULL;
	struct collect c;
	unsigned char rec[QIAO_STORE_REC_HDR + 1] = {6, 0}; /* type 6, never expires */
	char buf[64];
	size_t removed;
	const char *dir = s_path("raw");

	CHECK_RC(qiao_store_open(&st, dir, NULL));
	CHECK_RC(qiao_store_table(st, "typed", 5, &tb));
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(s_put_str(t, tb, "good", "ok", 0));
	CHECK_RC(qiao_txn_commit(&t));
	qiao_store_close(&st);

	rec[QIAO_STORE_REC_HDR] = 'x';
	CHECK(s_raw_put(dir, "typed", "other", 5, rec, sizeof rec) == 0);
	CHECK(s_raw_put(dir, "typed", "short", 5, "abc", 3) == 0);

	CHECK_RC(qiao_store_open(&st, dir, NULL));
	CHECK_RC(qiao_store_table(st, "typed", 5, &tb));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(s_get_str(t, tb, "good", buf, sizeof buf));
	CHECK_ERR(s_get_str(t, tb, "other", buf, sizeof buf), QIAO_ESTORETYPE);
	CHECK(strstr(qiao_store_last_error(), "type 6") != NULL);
	CHECK_ERR(s_get_str(t, tb, "short", buf, sizeof buf), QIAO_ESTORECORRUPT);
	memset(&c, 0, sizeof c);
	CHECK_ERR(qiao_store_iter_prefix(t, tb, NULL, 0, s_collect, &c), QIAO_ESTORETYPE);
	CHECK(c.n == 1);
	memset(&c, 0, sizeof c);
	CHECK_ERR(qiao_store_iter_prefix(t, tb, "s", 1, s_collect, &c), QIAO_ESTORECORRUPT);
	qiao_txn_abort(&t);
	CHECK_RC(qiao_store_sweep_expired(st, tb, 0, 0, &removed)); /* leaves them alone */
	CHECK(removed == 0);
	/* a bad record can be overwritten or deleted */
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	CHECK_RC(qiao_store_insert(t, tb, "short", 5, "fixed", 5, 0));
	CHECK_RC(qiao_store_del(t, tb, "other", 5));
	CHECK_RC(qiao_txn_commit(&t));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(s_get_str(t, tb, "short", buf, sizeof buf));
	CHECK(strcmp(buf, "fixed") == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);
}

static void test_format(void)
{
	qiao_store_t *st = NULL;
	struct qiao_store_opts ro = {0};
	unsigned char seven[4] = {7, 0, 0, 0}, one[4] = {1, 0, 0, 0};
	char want[800];
	const char *dir = s_path("fmt");

	ro.read_only = 1;
	CHECK_RC(qiao_store_open(&st, dir, NULL));
	qiao_store_close(&st);
	CHECK(s_raw_put(dir, "qiao.meta", "format", 6, seven, 4) == 0);

	CHECK_ERR(qiao_store_open(&st, dir, NULL), QIAO_ESTOREFORMAT);
	CHECK(st == NULL);
	snprintf(want, sizeof want, "store %s was written by format 7; this build reads format 1", dir);
	CHECK(strcmp(qiao_store_last_error(), want) == 0);
	if (strcmp(qiao_store_last_error(), want) != 0)
		fprintf(stderr, "got: %s\n", qiao_store_last_error());
	CHECK_ERR(qiao_store_open(&st, dir, &ro), QIAO_ESTOREFORMAT);
	CHECK(strstr(qiao_store_last_error(), "format 7") != NULL);
	/* the refused store was not touched: restoring format 1 makes it usable */
	CHECK(s_raw_put(dir, "qiao.meta", "format", 6, one, 4) == 0);
	CHECK_RC(qiao_store_open(&st, dir, &ro));
	qiao_store_close(&st);

	/* an LMDB environment that is not a Qiao store */
	mkdir(s_path("foreign"), 0700);
	CHECK(s_raw_put(s_path("foreign"), NULL, "hello", 5, "world", 5) == 0);
	CHECK_ERR(qiao_store_open(&st, s_path("foreign"), NULL), QIAO_ESTOREFORMAT);
	CHECK(strstr(qiao_store_last_error(), "not a Qiao store") != NULL);

	/* read-only never creates */
	CHECK_ERR(qiao_store_open(&st, s_path("nothing"), &ro), QIAO_ENOTFOUND);
	mkdir(s_path("emptydir"), 0700);
	CHECK_ERR(qiao_store_open(&st, s_path("emptydir"), &ro), QIAO_ENOTFOUND);
	CHECK(access(s_path("emptydir/data.mdb"), F_OK) != 0);
}

/* ------------------------------------------------------------------------
 * A read-only reader in another process while this one writes and grows.
 */

static int s_verify_range(qiao_txn_t *t, qiao_table_t *tb, uint64_t from, uint64_t to, size_t len)
{
	unsigned char k[8];
	int bad = 0;
	for (uint64_t i = from; i < to; i++) {
		void *v;
		size_t vl;
		s_be64(k, i);
		if (qiao_store_get(t, tb, k, 8, &v, &vl, NULL) != 0) {
			bad++;
			continue;
		}
		if (!s_same_payload(v, vl, len, i))
			bad++;
		free(v);
	}
	return bad;
}

static int s_put_range(qiao_store_t *st, qiao_table_t *tb, uint64_t from, uint64_t to, size_t len)
{
	unsigned char k[8], v[4096];
	qiao_txn_t *t;
	int rc = qiao_txn_begin(st, 1, &t);
	for (uint64_t i = from; rc == 0 && i < to; i++) {
		s_be64(k, i);
		s_fill(v, len, i);
		rc = qiao_store_put(t, tb, k, 8, v, len, 0);
	}
	if (rc) {
		qiao_txn_abort(&t);
		return rc;
	}
	return qiao_txn_commit(&t);
}

static void s_reader_child(const char *dir, int rfd, int wfd)
{
	struct qiao_store_opts ro = {0};
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_txn_t *t = NULL;
	qiao_gc_t *gc = NULL;
	struct qiao_store_info info;
	uint64_t n = 0;
	char c = 0;

	ro.read_only = 1;
	CHECK_RC(qiao_store_open(&st, dir, &ro));
	if (!st)
		_exit(2);
	CHECK_RC(qiao_store_table(st, "t", 1, &tb));
	{
		qiao_table_t *none = NULL;
		CHECK_ERR(qiao_store_table(st, "missing", 1, &none), QIAO_ENOTFOUND);
		CHECK(none == NULL);
	}
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(qiao_store_count(t, tb, &n));
	CHECK(n == 100);
	CHECK(s_verify_range(t, tb, 0, 100, 100) == 0);
	qiao_txn_abort(&t);
	CHECK_ERR(qiao_txn_begin(st, 1, &t), QIAO_EINVAL);
	CHECK_ERR(qiao_gc_new(st, NULL, &gc), QIAO_EINVAL);
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.read_only == 1);

	if (write(wfd, "1", 1) != 1 || read(rfd, &c, 1) != 1 || c != '2')
		_exit(3);
	/* the writer grew the map far beyond ours meanwhile */
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(qiao_store_count(t, tb, &n));
	CHECK(n == 3100);
	CHECK(s_verify_range(t, tb, 0, 100, 100) == 0);
	CHECK(s_verify_range(t, tb, 100, 3100, 1000) == 0);
	qiao_txn_abort(&t);
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size >= ((size_t)3 << 20));
	qiao_store_close(&st);
	fflush(stderr);
	_exit(check_fail_ ? 1 : 0);
}

static void test_readonly_other_process(void)
{
	struct qiao_store_opts o = {0};
	struct qiao_store_info info;
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	const char *dir = s_path("ro");
	int p2c[2], c2p[2], status = -1;
	pid_t pid;
	char c = 0;

	o.initial_map_size = 64 * 1024;
	o.max_map_size = 64 << 20;
	CHECK_RC(qiao_store_open(&st, dir, &o));
	CHECK_RC(qiao_store_table(st, "t", 1, &tb));
	CHECK_RC(s_put_range(st, tb, 0, 100, 100));
	CHECK(pipe(p2c) == 0 && pipe(c2p) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		close(p2c[1]);
		close(c2p[0]);
		s_reader_child(dir, p2c[0], c2p[1]);
	}
	close(p2c[0]);
	close(c2p[1]);
	CHECK(pid > 0);
	CHECK(read(c2p[0], &c, 1) == 1 && c == '1');
	/* 3 MB more while the reader has the store open: the map must grow */
	for (uint64_t i = 100; i < 3100; i += 100) {
		int rc;
		while ((rc = s_put_range(st, tb, i, i + 100, 1000)) == QIAO_ESTOREAGAIN)
			;
		CHECK_RC(rc);
	}
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size >= ((size_t)4 << 20) && info.grows >= 5);
	CHECK(write(p2c[1], "2", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(p2c[1]);
	close(c2p[0]);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Map full, and recovering from it.
 */

struct one_put {
	qiao_table_t *tb;
	uint64_t i;
	size_t len;
};

static int s_one_put(qiao_txn_t *t, void *arg)
{
	struct one_put *p = arg;
	unsigned char k[8], v[4096];
	s_be64(k, p->i);
	s_fill(v, p->len, p->i);
	return qiao_store_put(t, p->tb, k, 8, v, p->len, 0);
}

struct del_range {
	qiao_table_t *tb;
	uint64_t from, to;
};

static int s_del_range(qiao_txn_t *t, void *arg)
{
	struct del_range *d = arg;
	unsigned char k[8];
	for (uint64_t i = d->from; i < d->to; i++) {
		int rc;
		s_be64(k, i);
		rc = qiao_store_del(t, d->tb, k, 8);
		if (rc)
			return rc;
	}
	return 0;
}

static void test_map_full(void)
{
	struct qiao_store_opts o = {0};
	struct qiao_store_info info;
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_txn_t *t = NULL;
	qiao_gc_t *gc = NULL;
	struct one_put p;
	unsigned char k[8], v[1000];
	uint64_t n = 0, cnt = 0;
	int rc = 0;
	const char *dir = s_path("full");

	o.initial_map_size = 64 * 1024;
	o.max_map_size = 1 << 20;
	CHECK_RC(qiao_store_open(&st, dir, &o));
	CHECK_RC(qiao_store_table(st, "f", 1, &tb));
	p.tb = tb;
	p.len = 1000;
	for (p.i = 0; p.i < 100000; p.i++) {
		rc = qiao_store_write(st, s_one_put, &p);
		if (rc)
			break;
	}
	n = p.i;
	CHECK_ERR(rc, QIAO_ESTOREFULL);
	CHECK(strstr(qiao_store_last_error(), "is full") != NULL);
	CHECK(n > 300);
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size == (size_t)1 << 20);
	CHECK(info.grows >= 4);
	printf("map full after %llu records of 1000 bytes; map %zu KiB, %u resizes\n",
	       (unsigned long long)n, info.map_size / 1024, info.grows);

	/* a direct transaction: QIAO_ESTOREFULL, then the txn is only abortable */
	CHECK_RC(qiao_txn_begin(st, 1, &t));
	for (uint64_t i = 0; i < 1000; i++) {
		s_be64(k, 1000000 + i);
		s_fill(v, sizeof v, 1000000 + i);
		rc = qiao_store_put(t, tb, k, 8, v, sizeof v, 0);
		if (rc)
			break;
	}
	CHECK_ERR(rc, QIAO_ESTOREFULL);
	CHECK_ERR(qiao_store_put(t, tb, "x", 1, "y", 1, 0), QIAO_ESTOREFULL);
	CHECK_ERR(qiao_txn_commit(&t), QIAO_ESTOREFULL);
	CHECK(t == NULL);

	/* the group-commit writer reports it per operation */
	CHECK_RC(qiao_gc_new(st, NULL, &gc));
	s_be64(k, 2000000);
	{
		unsigned char bigv[3000];
		s_fill(bigv, sizeof bigv, 2000000);
		for (int i = 0; i < 50 && rc != QIAO_ESTOREFULL; i++) {
			s_be64(k, 2000000 + (uint64_t)i);
			rc = qiao_gc_sync_put(gc, tb, k, 8, bigv, sizeof bigv, 0);
		}
		CHECK_ERR(rc, QIAO_ESTOREFULL);
	}
	qiao_gc_destroy(&gc);

	/* nothing committed was lost */
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK(s_verify_range(t, tb, 0, n, 1000) == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);
	CHECK_RC(qiao_store_open(&st, dir, &o));
	CHECK_RC(qiao_store_table(st, "f", 1, &tb));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK(s_verify_range(t, tb, 0, n, 1000) == 0);
	qiao_txn_abort(&t);

	/* recovery: delete half in one transaction, then write again */
	{
		struct del_range d = {tb, 0, n / 2};
		CHECK_RC(qiao_store_write(st, s_del_range, &d));
	}
	p.tb = tb;
	for (p.i = n; p.i < n + n / 4; p.i++) {
		rc = qiao_store_write(st, s_one_put, &p);
		if (rc)
			break;
	}
	CHECK_RC(rc);
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK(s_verify_range(t, tb, n / 2, n + n / 4, 1000) == 0);
	CHECK_RC(qiao_store_count(t, tb, &cnt));
	CHECK(cnt == n - n / 2 + n / 4);
	qiao_txn_abort(&t);
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size <= ((size_t)1 << 20) + ((size_t)256 << 10));
	qiao_store_close(&st);
	CHECK_RC(qiao_store_open(&st, dir, &o));
	CHECK_RC(qiao_store_table(st, "f", 1, &tb));
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK(s_verify_range(t, tb, n / 2, n + n / 4, 1000) == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);

	/* a full store of scattered expired records: the sweep still empties it */
	CHECK_RC(qiao_store_open(&st, s_path("fullsweep"), &o));
	CHECK_RC(qiao_store_table(st, "f", 1, &tb));
	{
		size_t removed = 0;
		uint64_t expired = 0, live = 0, i;
		for (i = 0;; i++) {
			s_be64(k, i);
			s_fill(v, sizeof v, i);
			CHECK_RC(qiao_txn_begin(st, 1, &t));
			rc = qiao_store_put(t, tb, k, 8, v, sizeof v, i % 2 ? 1 : 0);
			if (rc) {
				qiao_txn_abort(&t);
				if (rc == QIAO_ESTOREAGAIN)
					continue;
				break;
			}
			rc = qiao_txn_commit(&t);
			if (rc == QIAO_ESTOREAGAIN)
				continue;
			if (rc)
				break;
			if (i % 2)
				expired++;
			else
				live++;
		}
		CHECK_ERR(rc, QIAO_ESTOREFULL);
		CHECK_RC(qiao_store_sweep_expired(st, tb, 0, 0, &removed));
		CHECK(removed == expired);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(qiao_store_count(t, tb, &cnt));
		CHECK(cnt == live);
		qiao_txn_abort(&t);
		p.tb = tb;
		for (p.i = 1000000; p.i < 1000000 + expired / 2; p.i++) {
			rc = qiao_store_write(st, s_one_put, &p);
			if (rc)
				break;
		}
		CHECK_RC(rc);
		printf("full store of %llu live + %llu expired records: swept, %llu written again\n",
		       (unsigned long long)live, (unsigned long long)expired,
		       (unsigned long long)(p.i - 1000000));
	}
	qiao_store_close(&st);

	/* a direct transaction that outgrows the map: QIAO_ESTOREAGAIN, run again */
	o.max_map_size = 16 << 20;
	CHECK_RC(qiao_store_open(&st, s_path("again"), &o));
	CHECK_RC(qiao_store_table(st, "f", 1, &tb));
	{
		int again = 0;
		for (int attempt = 0; attempt < 20; attempt++) {
			rc = s_put_range(st, tb, 0, 500, 1000);
			if (rc != QIAO_ESTOREAGAIN)
				break;
			again++;
		}
		CHECK_RC(rc);
		CHECK(again >= 2);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK(s_verify_range(t, tb, 0, 500, 1000) == 0);
		qiao_txn_abort(&t);
	}
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Map growth while readers run.
 */

struct reader_arg {
	qiao_store_t *st;
	qiao_table_t *tb;
	atomic_int *stop;
	int errors;
	long reads;
};

static void *s_reader_thread(void *arg)
{
	struct reader_arg *r = arg;
	unsigned seed = (unsigned)(uintptr_t)r;
	while (!atomic_load(r->stop)) {
		qiao_txn_t *t;
		unsigned char k[8];
		uint64_t n;
		int rc = qiao_txn_begin(r->st, 0, &t);
		if (rc) {
			r->errors++;
			continue;
		}
		if (qiao_store_count(t, r->tb, &n) != 0)
			r->errors++;
		for (int i = 0; i < 20 && n; i++) {
			uint64_t x = (uint64_t)rand_r(&seed) % n;
			void *v;
			size_t vl;
			s_be64(k, x);
			rc = qiao_store_get(t, r->tb, k, 8, &v, &vl, NULL);
			if (rc == 0) {
				if (!s_same_payload(v, vl, 1000, x))
					r->errors++;
				free(v);
			} else if (rc != QIAO_ENOTFOUND) {
				r->errors++;
			}
			r->reads++;
		}
		/* sometimes a read txn passes to another thread (MDB_NOTLS) */
		qiao_txn_abort(&t);
	}
	return NULL;
}

static void test_growth(void)
{
	struct qiao_store_opts o = {0};
	struct qiao_store_info info;
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_gc_t *gc = NULL;
	qiao_txn_t *t = NULL;
	pthread_t th[2];
	struct reader_arg ra[2];
	atomic_int stop = 0;
	unsigned char k[8], v[1000];
	int busy = 0;

	o.initial_map_size = 64 * 1024;
	o.max_map_size = 256 << 20;
	CHECK_RC(qiao_store_open(&st, s_path("growth"), &o));
	CHECK_RC(qiao_store_table(st, "g", 1, &tb));
	CHECK_RC(qiao_gc_new(st, NULL, &gc));
	for (int i = 0; i < 2; i++) {
		ra[i] = (struct reader_arg){st, tb, &stop, 0, 0};
		pthread_create(&th[i], NULL, s_reader_thread, &ra[i]);
	}
	for (uint64_t i = 0; i < 6000; i++) {
		int rc;
		s_be64(k, i);
		s_fill(v, sizeof v, i);
		while ((rc = qiao_gc_put(gc, tb, k, 8, v, sizeof v, 0, NULL, NULL)) == QIAO_ESTOREBUSY)
			busy++;
		CHECK(rc == 0 || !"gc_put");
		if (i % 500 == 0)
			s_sleep_ms(1);
	}
	CHECK_RC(qiao_gc_flush(gc));
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		CHECK(ra[i].errors == 0);
		CHECK(ra[i].reads > 0);
	}
	CHECK_RC(qiao_store_info(st, &info));
	CHECK(info.map_size >= ((size_t)8 << 20));
	CHECK(info.grows >= 7);
	{
		struct qiao_gc_stats gs;
		qiao_gc_stats(gc, &gs);
		CHECK(gs.ops == 6000 && gs.failed_ops == 0);
		CHECK(gs.retries >= 1);
		printf("growth: map %zu KiB after %u resizes; %llu batches, %llu re-runs, %ld+%ld reads\n",
		       info.map_size / 1024, info.grows, (unsigned long long)gs.batches,
		       (unsigned long long)gs.retries, ra[0].reads, ra[1].reads);
	}
	qiao_gc_destroy(&gc);
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK(s_verify_range(t, tb, 0, 6000, 1000) == 0);
	qiao_txn_abort(&t);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Read transactions move between threads (MDB_NOTLS).
 */

struct hand {
	qiao_txn_t *t;
	qiao_table_t *tb;
	qiao_store_t *st;
	int rc;
};

static void *s_use_and_end(void *arg)
{
	struct hand *h = arg;
	uint64_t n;
	h->rc = qiao_store_count(h->t, h->tb, &n);
	qiao_txn_abort(&h->t);
	return NULL;
}

static void *s_begin_only(void *arg)
{
	struct hand *h = arg;
	h->rc = qiao_txn_begin(h->st, 0, &h->t);
	return NULL;
}

static int s_put_range_retry(qiao_store_t *st, qiao_table_t *tb, uint64_t from, uint64_t to)
{
	int rc;
	for (int i = 0; i < 30; i++)
		if ((rc = s_put_range(st, tb, from, to, 1000)) != QIAO_ESTOREAGAIN)
			return rc;
	return rc;
}

static void test_migrate(void)
{
	struct qiao_store_opts o = {0};
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_txn_t *r = NULL, *w = NULL;
	struct hand h = {0};
	pthread_t th;
	unsigned char k[8], v[1000];
	int rc = 0;

	o.initial_map_size = 64 * 1024;
	o.max_map_size = 64 << 20;
	CHECK_RC(qiao_store_open(&st, s_path("migrate"), &o));
	CHECK_RC(qiao_store_table(st, "m", 1, &tb));

	/* begun here, ended on another thread: this thread holds nothing after */
	CHECK_RC(qiao_txn_begin(st, 0, &h.t));
	h.tb = tb;
	pthread_create(&th, NULL, s_use_and_end, &h);
	pthread_join(th, NULL);
	CHECK_RC(h.rc);
	CHECK(h.t == NULL);
	CHECK_RC(s_put_range_retry(st, tb, 0, 300)); /* must be able to grow */

	/* begun on another thread (which exits), ended here */
	h.st = st;
	pthread_create(&th, NULL, s_begin_only, &h);
	pthread_join(th, NULL);
	CHECK_RC(h.rc);
	CHECK_RC(qiao_store_count(h.t, tb, &(uint64_t){0}));
	qiao_txn_abort(&h.t);
	CHECK_RC(s_put_range_retry(st, tb, 300, 1000));

	/* a thread that keeps a read txn open cannot grow the map for its
	 * own write txn: QIAO_ESTOREFULL at once (no deadlock), fine after */
	CHECK_RC(qiao_txn_begin(st, 0, &r));
	CHECK_RC(qiao_txn_begin(st, 1, &w));
	s_fill(v, sizeof v, 7);
	for (uint64_t i = 1000; i < 20000; i++) {
		s_be64(k, i);
		if ((rc = qiao_store_put(w, tb, k, 8, v, sizeof v, 0)) != 0)
			break;
	}
	CHECK_ERR(rc, QIAO_ESTOREFULL);
	CHECK(strstr(qiao_store_last_error(), "holds another transaction") != NULL);
	qiao_txn_abort(&w);
	qiao_txn_abort(&r);
	CHECK_RC(s_put_range_retry(st, tb, 1000, 3000));
	CHECK_RC(qiao_txn_begin(st, 0, &r));
	CHECK(s_verify_range(r, tb, 0, 300, 1000) == 0);
	qiao_txn_abort(&r);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Group commit
 */

struct slot {
	atomic_int calls;
	atomic_int rc;
};

static void s_done_slot(void *arg, int rc)
{
	struct slot *s = arg;
	atomic_store(&s->rc, rc);
	atomic_fetch_add(&s->calls, 1);
}

#define GC_THREADS 8
#define GC_PER_THREAD 2000

struct submitter {
	qiao_gc_t *gc;
	qiao_table_t *tb;
	int id;
	struct slot *slots;
	int errors;
};

static void *s_submit_thread(void *arg)
{
	struct submitter *s = arg;
	for (int i = 0; i < GC_PER_THREAD; i++) {
		unsigned char k[8], v[64];
		uint64_t n = (uint64_t)s->id * GC_PER_THREAD + (uint64_t)i;
		int rc;
		s_be64(k, n);
		s_fill(v, sizeof v, n);
		while ((rc = qiao_gc_put(s->gc, s->tb, k, 8, v, sizeof v, 0, s_done_slot,
					 &s->slots[n])) == QIAO_ESTOREBUSY)
			s_sleep_ms(1);
		if (rc)
			s->errors++;
	}
	return NULL;
}

/* An apply that assigns sequence numbers inside the commit. */
struct seq_op {
	qiao_table_t *tb;
	uint64_t got;
	struct slot slot;
};

static int s_seq_apply(qiao_txn_t *t, void *arg)
{
	struct seq_op *op = arg;
	void *v;
	size_t vl;
	uint64_t next = 0;
	unsigned char k[5 + 8];
	int rc = qiao_store_get(t, op->tb, "seq", 3, &v, &vl, NULL);
	if (rc == 0) {
		if (vl == 8)
			memcpy(&next, v, 8);
		free(v);
	} else if (rc != QIAO_ENOTFOUND) {
		return rc;
	}
	next++;
	rc = qiao_store_put(t, op->tb, "seq", 3, &next, 8, 0);
	if (rc)
		return rc;
	memcpy(k, "item/", 5);
	s_be64(k + 5, next);
	op->got = next;
	return qiao_store_put(t, op->tb, k, sizeof k, "i", 1, 0);
}

static void s_seq_done(void *arg, int rc)
{
	s_done_slot(&((struct seq_op *)arg)->slot, rc);
}

/* Holds the writer inside its transaction until released. */
struct blocker {
	atomic_int entered, release;
};

static int s_block_apply(qiao_txn_t *t, void *arg)
{
	struct blocker *b = arg;
	(void)t;
	atomic_store(&b->entered, 1);
	while (!atomic_load(&b->release))
		s_sleep_ms(1);
	return 0;
}

static void s_wait_entered(struct blocker *b)
{
	for (int i = 0; i < 5000 && !atomic_load(&b->entered); i++)
		s_sleep_ms(1);
}

struct put_then {
	qiao_table_t *tb;
	const char *key;
	int ret;
};

static int s_put_then(qiao_txn_t *t, void *arg)
{
	struct put_then *p = arg;
	int rc = s_put_str(t, p->tb, p->key, "v", 0);
	return rc ? rc : p->ret;
}

static int s_misuse_apply(qiao_txn_t *t, void *arg)
{
	qiao_store_t *st = arg;
	qiao_txn_t *w = NULL, *self = t;
	qiao_table_t *tb = NULL;
	if (qiao_txn_commit(&self) != QIAO_EINVAL || self != t)
		return -100;
	qiao_txn_abort(&self); /* ignored */
	if (self != t)
		return -101;
	if (qiao_txn_begin(st, 1, &w) != QIAO_EINVAL)
		return -102;
	if (qiao_store_table(st, "late", 1, &tb) != QIAO_EINVAL)
		return -103;
	return 0;
}

static void *s_release_later(void *arg)
{
	s_sleep_ms(50);
	atomic_store(&((struct blocker *)arg)->release, 1);
	return NULL;
}

static void test_gc(void)
{
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL, *sq = NULL;
	qiao_gc_t *gc = NULL, *gc2 = NULL;
	qiao_txn_t *t = NULL;
	struct qiao_gc_stats gs, gs0;
	struct qiao_gc_opts go = {0};
	struct slot *slots;
	pthread_t th[GC_THREADS];
	struct submitter sub[GC_THREADS];
	uint64_t n = 0;
	int bad = 0;
	char buf[16];
	struct timespec t0, t1;

	CHECK_RC(qiao_store_open(&st, s_path("gc"), NULL));
	CHECK_RC(qiao_store_table(st, "g", 1, &tb));
	CHECK_RC(qiao_store_table(st, "seq", 2, &sq));
	CHECK_RC(qiao_gc_new(st, NULL, &gc));
	CHECK_ERR(qiao_gc_submit(NULL, s_put_then, NULL, NULL, NULL), QIAO_EINVAL);
	CHECK_ERR(qiao_gc_submit(gc, NULL, NULL, NULL, NULL), QIAO_EINVAL);
	CHECK_ERR(qiao_gc_put(gc, tb, "", 0, "v", 1, 0, NULL, NULL), QIAO_EINVAL);

	/* many threads submitting at once: one done each, rc 0, grouped */
	slots = calloc(GC_THREADS * GC_PER_THREAD, sizeof *slots);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < GC_THREADS; i++) {
		sub[i] = (struct submitter){gc, tb, i, slots, 0};
		pthread_create(&th[i], NULL, s_submit_thread, &sub[i]);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(sub[i].errors == 0);
	}
	CHECK_RC(qiao_gc_flush(gc));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < GC_THREADS * GC_PER_THREAD; i++)
		if (atomic_load(&slots[i].calls) != 1 || atomic_load(&slots[i].rc) != 0)
			bad++;
	CHECK(bad == 0);
	qiao_gc_stats(gc, &gs);
	CHECK(gs.ops == GC_THREADS * GC_PER_THREAD);
	CHECK(gs.failed_ops == 0);
	CHECK(gs.batches < gs.ops);
	CHECK(gs.max_batch_seen > 1);
	CHECK(gs.queued == 0);
	printf("group commit: %llu ops in %llu batches (largest %zu) in %.0f ms\n",
	       (unsigned long long)gs.ops, (unsigned long long)gs.batches, gs.max_batch_seen,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK_RC(qiao_txn_begin(st, 0, &t));
	CHECK_RC(qiao_store_count(t, tb, &n));
	CHECK(n == GC_THREADS * GC_PER_THREAD);
	bad = 0;
	for (uint64_t i = 0; i < GC_THREADS * GC_PER_THREAD; i += 97) {
		unsigned char k[8];
		void *v;
		size_t vl;
		s_be64(k, i);
		if (qiao_store_get(t, tb, k, 8, &v, &vl, NULL) != 0 || !s_same_payload(v, vl, 64, i))
			bad++;
		else
			free(v);
	}
	CHECK(bad == 0);
	qiao_txn_abort(&t);
	free(slots);

	/* sequence numbers assigned inside the commit are dense and unique */
	{
		enum { NSEQ = 1000 };
		struct seq_op *ops = calloc(NSEQ, sizeof *ops);
		unsigned char *seen = calloc(NSEQ + 1, 1);
		int dup = 0;
		for (int i = 0; i < NSEQ; i++) {
			ops[i].tb = sq;
			CHECK(qiao_gc_submit(gc, s_seq_apply, &ops[i], s_seq_done, &ops[i]) == 0 ||
			      !"submit");
		}
		CHECK_RC(qiao_gc_flush(gc));
		for (int i = 0; i < NSEQ; i++) {
			if (atomic_load(&ops[i].slot.calls) != 1 || atomic_load(&ops[i].slot.rc) != 0 ||
			    ops[i].got == 0 || ops[i].got > NSEQ || seen[ops[i].got]++)
				dup++;
		}
		CHECK(dup == 0);
		free(ops);
		free(seen);
	}

	/* one failing apply does not sink the others of its batch */
	{
		struct blocker b = {0};
		struct put_then pa = {tb, "fa", 0}, pb = {tb, "fb", QIAO_EIDENT}, pc = {tb, "fc", 0};
		struct slot sa = {0}, sb = {0}, sc = {0}, sm = {0};
		CHECK_RC(qiao_gc_submit(gc, s_block_apply, &b, NULL, NULL));
		s_wait_entered(&b);
		qiao_gc_stats(gc, &gs0);
		CHECK_RC(qiao_gc_submit(gc, s_put_then, &pa, s_done_slot, &sa));
		CHECK_RC(qiao_gc_submit(gc, s_put_then, &pb, s_done_slot, &sb));
		CHECK_RC(qiao_gc_submit(gc, s_put_then, &pc, s_done_slot, &sc));
		CHECK_RC(qiao_gc_submit(gc, s_misuse_apply, st, s_done_slot, &sm));
		atomic_store(&b.release, 1);
		CHECK_RC(qiao_gc_flush(gc));
		qiao_gc_stats(gc, &gs);
		CHECK(gs.batches == gs0.batches + 2); /* the blocker's, then all four */
		CHECK(gs.last_batch == 4);
		CHECK(atomic_load(&sa.rc) == 0 && atomic_load(&sc.rc) == 0);
		CHECK(atomic_load(&sb.rc) == QIAO_EIDENT);
		CHECK(atomic_load(&sm.rc) == 0);
		CHECK(atomic_load(&sa.calls) == 1 && atomic_load(&sb.calls) == 1 && atomic_load(&sc.calls) == 1);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(s_get_str(t, tb, "fa", buf, sizeof buf));
		CHECK_ERR(s_get_str(t, tb, "fb", buf, sizeof buf), QIAO_ENOTFOUND);
		CHECK_RC(s_get_str(t, tb, "fc", buf, sizeof buf));
		qiao_txn_abort(&t);
	}

	/* sync put, delete */
	{
		struct slot sd = {0};
		CHECK_RC(qiao_gc_sync_put(gc, tb, "sync", 4, "now", 3, 0));
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(s_get_str(t, tb, "sync", buf, sizeof buf));
		qiao_txn_abort(&t);
		CHECK_RC(qiao_gc_del(gc, tb, "sync", 4, s_done_slot, &sd));
		CHECK_RC(qiao_gc_del(gc, tb, "never", 5, s_done_slot, &sd));
		CHECK_RC(qiao_gc_flush(gc));
		CHECK(atomic_load(&sd.calls) == 2 && atomic_load(&sd.rc) == QIAO_ENOTFOUND);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_ERR(s_get_str(t, tb, "sync", buf, sizeof buf), QIAO_ENOTFOUND);
		qiao_txn_abort(&t);
	}

	/* a full queue says QIAO_ESTOREBUSY and loses nothing */
	{
		struct blocker b = {0};
		struct slot s[5] = {0};
		go.max_queue = 4;
		CHECK_RC(qiao_gc_new(st, &go, &gc2));
		CHECK_RC(qiao_gc_submit(gc2, s_block_apply, &b, NULL, NULL));
		s_wait_entered(&b);
		for (int i = 0; i < 4; i++)
			CHECK_RC(qiao_gc_put(gc2, tb, "q", 1, "v", 1, 0, s_done_slot, &s[i]));
		CHECK_ERR(qiao_gc_put(gc2, tb, "q", 1, "v", 1, 0, s_done_slot, &s[4]), QIAO_ESTOREBUSY);
		qiao_gc_stats(gc2, &gs);
		CHECK(gs.queued == 4);
		atomic_store(&b.release, 1);
		CHECK_RC(qiao_gc_flush(gc2));
		for (int i = 0; i < 4; i++)
			CHECK(atomic_load(&s[i].calls) == 1 && atomic_load(&s[i].rc) == 0);
		CHECK(atomic_load(&s[4].calls) == 0);
		qiao_gc_destroy(&gc2);
		CHECK(gc2 == NULL);
		qiao_gc_destroy(&gc2);
	}

	/* destroy drains what was queued */
	{
		struct blocker b = {0};
		struct slot s = {0};
		pthread_t rel;
		CHECK_RC(qiao_gc_new(st, NULL, &gc2));
		CHECK_RC(qiao_gc_submit(gc2, s_block_apply, &b, NULL, NULL));
		s_wait_entered(&b);
		for (int i = 0; i < 100; i++) {
			char k[16];
			snprintf(k, sizeof k, "drain%03d", i);
			CHECK(qiao_gc_put(gc2, tb, k, strlen(k), "v", 1, 0, s_done_slot, &s) == 0 || !"put");
		}
		pthread_create(&rel, NULL, s_release_later, &b);
		qiao_gc_destroy(&gc2);
		pthread_join(rel, NULL);
		CHECK(atomic_load(&s.calls) == 100 && atomic_load(&s.rc) == 0);
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(s_get_str(t, tb, "drain099", buf, sizeof buf));
		qiao_txn_abort(&t);
	}
	qiao_gc_destroy(&gc);
	qiao_gc_destroy(&gc);
	CHECK(gc == NULL);
	qiao_store_close(&st);
}

/* ------------------------------------------------------------------------
 * Backup
 */

struct cmp {
	qiao_txn_t *other;
	qiao_table_t *otb;
	uint64_t n;
	int bad;
};

static int s_cmp_rec(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	struct cmp *c = arg;
	void *ov;
	size_t ovl;
	int64_t oexp;
	c->n++;
	if (qiao_store_get(c->other, c->otb, k, kl, &ov, &ovl, &oexp) != 0) {
		c->bad++;
		return 0;
	}
	if (ovl != vl || (vl && memcmp(ov, v, vl) != 0) || oexp != exp)
		c->bad++;
	free(ov);
	return 0;
}

/* Every record of table `name` in a is in b, identical, and (unless
 * `subset`) the counts match. */
static int s_table_in(qiao_store_t *a, qiao_store_t *b, const char *name, uint16_t type,
		      uint64_t *records, int subset)
{
	qiao_table_t *ta = NULL, *tb = NULL;
	qiao_txn_t *xa = NULL, *xb = NULL;
	struct cmp c = {0};
	uint64_t na = 0, nb = 0;
	int rc;

	if (qiao_store_table(a, name, type, &ta) || qiao_store_table(b, name, type, &tb))
		return -1;
	if (qiao_txn_begin(a, 0, &xa) || qiao_txn_begin(b, 0, &xb))
		return -2;
	c.other = xb;
	c.otb = tb;
	rc = qiao_store_iter_range(xa, ta, NULL, 0, NULL, 0, s_cmp_rec, &c);
	qiao_store_count(xa, ta, &na);
	qiao_store_count(xb, tb, &nb);
	qiao_txn_abort(&xa);
	qiao_txn_abort(&xb);
	*records = c.n;
	if (rc || c.bad || (!subset && na != nb))
		return -3;
	return 0;
}

static int s_same_table(qiao_store_t *a, qiao_store_t *b, const char *name, uint16_t type,
			uint64_t *records)
{
	return s_table_in(a, b, name, type, records, 0);
}

struct busy_writer {
	qiao_gc_t *gc;
	qiao_table_t *tb;
	atomic_int stop;
	int n;
};

static void *s_busy_writer(void *arg)
{
	struct busy_writer *w = arg;
	while (!atomic_load(&w->stop)) {
		unsigned char k[8];
		s_be64(k, (uint64_t)w->n++);
		if (qiao_gc_sync_put(w->gc, w->tb, k, 8, "busy", 4, 0) != 0)
			break;
	}
	return NULL;
}

static void test_backup(void)
{
	static const struct {
		const char *name;
		uint16_t type;
	} tables[] = {{"users", 1}, {"other", 2}};
	qiao_store_t *st = NULL, *bk = NULL;
	qiao_table_t *busy = NULL, *tb = NULL;
	struct busy_writer w = {0};
	struct stat s1, s2;
	pthread_t th;
	uint64_t n;
	FILE *f;

	/* the basic store, plus a table written while the backup runs */
	CHECK_RC(qiao_store_open(&st, s_path("basic"), NULL));
	CHECK_RC(qiao_store_table(st, "busy", 8, &busy));
	CHECK_RC(qiao_store_table(st, "users", 1, &tb));
	CHECK_RC(s_put_range(st, tb, 0, 2000, 300));
	CHECK_RC(qiao_gc_new(st, NULL, &w.gc));
	w.tb = busy;
	pthread_create(&th, NULL, s_busy_writer, &w);
	s_sleep_ms(20);
	CHECK_RC(qiao_store_backup(st, s_path("bk")));
	atomic_store(&w.stop, 1);
	pthread_join(th, NULL);
	qiao_gc_destroy(&w.gc);
	CHECK(w.n > 0);

	CHECK_ERR(qiao_store_backup(st, s_path("bk")), QIAO_EEXIST);
	CHECK(strstr(qiao_store_last_error(), "not empty") != NULL);
	f = fopen(s_path("afile"), "w");
	if (f)
		fclose(f);
	CHECK_ERR(qiao_store_backup(st, s_path("afile")), QIAO_EEXIST);
	mkdir(s_path("bk2"), 0700);
	CHECK_RC(qiao_store_backup(st, s_path("bk2")));

	CHECK_RC(qiao_store_open(&bk, s_path("bk"), NULL));
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		CHECK(s_same_table(st, bk, tables[i].name, tables[i].type, &n) == 0);
		CHECK(n > 0);
	}
	/* taken while the writer ran: a consistent prefix of what it wrote */
	CHECK(s_table_in(bk, st, "busy", 8, &n, 1) == 0);
	CHECK(n <= (uint64_t)w.n);
	CHECK(stat(s_path("basic/data.mdb"), &s1) == 0 && stat(s_path("bk/data.mdb"), &s2) == 0);
	CHECK(s2.st_size <= s1.st_size);
	CHECK((s2.st_mode & 0777) == 0600);
	qiao_store_close(&bk);

	/* the second backup was made after the writer stopped: all tables agree */
	CHECK_RC(qiao_store_open(&bk, s_path("bk2"), NULL));
	CHECK(s_same_table(st, bk, "busy", 8, &n) == 0);
	CHECK(n == (uint64_t)w.n);
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		CHECK(s_same_table(st, bk, tables[i].name, tables[i].type, &n) == 0);
	qiao_store_close(&bk);
	qiao_store_close(&st);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(s_root, sizeof s_root, "%s/qiao-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s_root)) {
		perror("mkdtemp");
		return 1;
	}
	test_basic();
	test_expiry();
	test_iter();
	test_raw_records();
	test_format();
	test_readonly_other_process();
	test_map_full();
	test_growth();
	test_migrate();
	test_gc();
	test_backup();
	if (check_fail_ == 0)
		s_rmrf(s_root);
	else
		fprintf(stderr, "store files kept in %s\n", s_root);
	return check_done();
}
