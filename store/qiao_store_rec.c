/*
 * qiao_store_rec.c - typed records: put/get/del, iteration, count, the
 * retrying write helper and the expiry sweep.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Largest payload accepted; LMDB's own limit is near 4 GiB. */
#define MAX_VAL ((size_t)0x7fffffff - QIAO_STORE_REC_HDR)
/* Sweep limits per write transaction, so writers are not held up. */
#define SWEEP_DEL_PER_TXN 1024
#define SWEEP_SCAN_PER_TXN 65536

struct rec {
	uint16_t type;
	int64_t expires;
	const unsigned char *payload;
	size_t plen;
};

static void s_hdr_write(unsigned char *p, uint16_t type, int64_t expires)
{
	uint64_t e = (uint64_t)expires;
	p[0] = (unsigned char)type;
	p[1] = (unsigned char)(type >> 8);
	memset(p + 2, 0, 6); /* flags, reserved */
	for (int i = 0; i < 8; i++)
		p[8 + i] = (unsigned char)(e >> (8 * i));
}

static int s_hdr_read(const MDB_val *v, struct rec *r)
{
	const unsigned char *p = v->mv_data;
	uint64_t e = 0;
	if (v->mv_size < QIAO_STORE_REC_HDR)
		return -1;
	r->type = (uint16_t)(p[0] | p[1] << 8);
	for (int i = 0; i < 8; i++)
		e |= (uint64_t)p[8 + i] << (8 * i);
	r->expires = (int64_t)e;
	r->payload = p + QIAO_STORE_REC_HDR;
	r->plen = v->mv_size - QIAO_STORE_REC_HDR;
	return 0;
}

/* Decode v for table tb: 0, QIAO_ESTORECORRUPT or QIAO_ESTORETYPE. */
static int s_decode(const qiao_table_t *tb, const MDB_val *v, struct rec *r)
{
	if (s_hdr_read(v, r) != 0)
		return qs_fail(QIAO_ESTORECORRUPT,
			       "table %s: a value of %zu bytes is shorter than the %d-byte record header",
			       tb->name, v->mv_size, QIAO_STORE_REC_HDR);
	if (r->type != tb->type)
		return qs_fail(QIAO_ESTORETYPE, "table %s holds a record of type %u where type %u is declared",
			       tb->name, (unsigned)r->type, (unsigned)tb->type);
	return 0;
}

static int s_expired(const struct rec *r, int64_t now)
{
	return r->expires != 0 && r->expires <= now;
}

static int s_check_txn(qiao_txn_t *txn, qiao_table_t *tbl, int write)
{
	if (!txn || !tbl || !txn->t)
		return qs_fail(QIAO_EINVAL, "NULL transaction or table");
	if (tbl->st != txn->st)
		return qs_fail(QIAO_EINVAL, "table %s belongs to another store", tbl->name);
	if (write && !txn->write)
		return qs_fail(QIAO_EINVAL, "cannot write table %s in a read transaction", tbl->name);
	if (txn->root->full)
		return qs_fail(txn->root->full_rc,
			       "the transaction ran out of map space earlier: abort it (%s)",
			       txn->root->full_rc == QIAO_ESTOREAGAIN ? "then run it again" : "store is full");
	return 0;
}

int qs_check_key(qiao_table_t *tbl, const void *key, size_t klen)
{
	if (!tbl)
		return qs_fail(QIAO_EINVAL, "NULL table");
	if (!key || klen == 0)
		return qs_fail(QIAO_EINVAL, "table %s: empty key", tbl->name);
	if (klen > QIAO_STORE_MAX_KEY)
		return qs_fail(QIAO_ETOOBIG, "table %s: key of %zu bytes exceeds %d", tbl->name, klen,
			       QIAO_STORE_MAX_KEY);
	return 0;
}

int qs_check_put(qiao_table_t *tbl, const void *key, size_t klen,
		 const void *val, size_t vlen, int64_t expires_at_ms)
{
	int rc = qs_check_key(tbl, key, klen);
	if (rc)
		return rc;
	if (!val && vlen)
		return qs_fail(QIAO_EINVAL, "table %s: NULL value with length %zu", tbl->name, vlen);
	if (vlen > MAX_VAL)
		return qs_fail(QIAO_ETOOBIG, "table %s: value of %zu bytes is too large", tbl->name, vlen);
	if (expires_at_ms < 0)
		return qs_fail(QIAO_EINVAL, "table %s: negative expiry time", tbl->name);
	return 0;
}

/* Map the result of a write operation; MDB_MAP_FULL marks the txn full. */
static int s_write_err(qiao_txn_t *txn, int mrc, const char *what)
{
	if (mrc == MDB_MAP_FULL)
		return qs_full_rc(txn);
	if (mrc == MDB_TXN_FULL)
		return qs_fail(QIAO_ESTORELIMIT, "%s: transaction too large (too many dirty pages)", what);
	if (mrc == EINVAL || mrc == MDB_BAD_DBI)
		return qs_fail(QIAO_EINVAL, "%s: %s (was the table opened after this transaction began?)",
			       what, mdb_strerror(mrc));
	return qs_mdb_err(mrc, what);
}

static int s_read_err(int mrc, const char *what)
{
	if (mrc == EINVAL || mrc == MDB_BAD_DBI)
		return qs_fail(QIAO_EINVAL, "%s: %s (was the table opened after this transaction began?)",
			       what, mdb_strerror(mrc));
	return qs_mdb_err(mrc, what);
}

int qiao_store_put(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen, const void *val, size_t vlen,
		   int64_t expires_at_ms)
{
	MDB_val k, v;
	int rc, mrc;

	if ((rc = s_check_txn(txn, tbl, 1)) != 0 ||
	    (rc = qs_check_put(tbl, key, klen, val, vlen, expires_at_ms)) != 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = (void *)key;
	v.mv_size = QIAO_STORE_REC_HDR + vlen;
	v.mv_data = NULL;
	txn->root->did_put = 1;
	/* MDB_RESERVE: LMDB hands out the space, we fill it: one copy. */
	mrc = mdb_put(txn->t, tbl->dbi, &k, &v, MDB_RESERVE);
	if (mrc)
		return s_write_err(txn, mrc, "storing a record");
	s_hdr_write(v.mv_data, tbl->type, expires_at_ms);
	if (vlen)
		memcpy((unsigned char *)v.mv_data + QIAO_STORE_REC_HDR, val, vlen);
	return 0;
}

int qiao_store_insert(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		      size_t klen, const void *val, size_t vlen,
		      int64_t expires_at_ms)
{
	MDB_val k, v;
	struct rec r;
	int rc, mrc;

	if ((rc = s_check_txn(txn, tbl, 1)) != 0 ||
	    (rc = qs_check_put(tbl, key, klen, val, vlen, expires_at_ms)) != 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = (void *)key;
	mrc = mdb_get(txn->t, tbl->dbi, &k, &v);
	if (mrc == 0) {
		/* A record we cannot decode is not live: replace it. */
		if (s_hdr_read(&v, &r) == 0 && !(r.expires != 0 && r.expires <= qiao_store_now_ms(txn->st)))
			return qs_fail(QIAO_EEXIST, "table %s: key exists", tbl->name);
	} else if (mrc != MDB_NOTFOUND) {
		return s_read_err(mrc, "looking a record up");
	}
	return qiao_store_put(txn, tbl, key, klen, val, vlen, expires_at_ms);
}

int qiao_store_get(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen, void **val, size_t *vlen, int64_t *expires_at_ms)
{
	MDB_val k, v;
	struct rec r;
	int rc, mrc;

	if (val)
		*val = NULL;
	if (vlen)
		*vlen = 0;
	if (expires_at_ms)
		*expires_at_ms = 0;
	if ((rc = s_check_txn(txn, tbl, 0)) != 0 || (rc = qs_check_key(tbl, key, klen)) != 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = (void *)key;
	mrc = mdb_get(txn->t, tbl->dbi, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return qs_fail(QIAO_ENOTFOUND, "table %s: no such key", tbl->name);
	if (mrc)
		return s_read_err(mrc, "looking a record up");
	if ((rc = s_decode(tbl, &v, &r)) != 0)
		return rc;
	if (r.expires != 0 && s_expired(&r, qiao_store_now_ms(txn->st)))
		return qs_fail(QIAO_ENOTFOUND, "table %s: record expired", tbl->name);
	if (val) {
		/* Copy now: the map may move once the transaction ends. */
		void *p = malloc(r.plen ? r.plen : 1);
		if (!p)
			return qs_fail(QIAO_ENOMEM, "out of memory");
		if (r.plen)
			memcpy(p, r.payload, r.plen);
		*val = p;
	}
	if (vlen)
		*vlen = r.plen;
	if (expires_at_ms)
		*expires_at_ms = r.expires;
	return 0;
}

int qiao_store_del(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen)
{
	MDB_val k;
	int rc, mrc;

	if ((rc = s_check_txn(txn, tbl, 1)) != 0 || (rc = qs_check_key(tbl, key, klen)) != 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = (void *)key;
	mrc = mdb_del(txn->t, tbl->dbi, &k, NULL);
	if (mrc == MDB_NOTFOUND)
		return qs_fail(QIAO_ENOTFOUND, "table %s: no such key", tbl->name);
	if (mrc)
		return s_write_err(txn, mrc, "deleting a record");
	return 0;
}

int qiao_store_count(qiao_txn_t *txn, qiao_table_t *tbl, uint64_t *n)
{
	MDB_stat ms;
	int rc, mrc;

	if (n)
		*n = 0;
	if (!n)
		return qs_fail(QIAO_EINVAL, "qiao_store_count: NULL out");
	if ((rc = s_check_txn(txn, tbl, 0)) != 0)
		return rc;
	mrc = mdb_stat(txn->t, tbl->dbi, &ms);
	if (mrc)
		return s_read_err(mrc, "counting records");
	*n = ms.ms_entries;
	return 0;
}

/* ------------------------------------------------------------------------
 * Iteration
 */

/* LMDB's default key order: memcmp, then the shorter key first. */
static int s_keycmp(const MDB_val *a, const void *b, size_t blen)
{
	size_t n = a->mv_size < blen ? a->mv_size : blen;
	int c = n ? memcmp(a->mv_data, b, n) : 0;
	if (c)
		return c;
	return a->mv_size < blen ? -1 : a->mv_size > blen;
}

struct iter {
	qiao_txn_t *txn;
	qiao_table_t *tbl;
	const void *start, *end, *prefix;
	size_t slen, elen, plen;
	int rev;
	qiao_store_iter_fn cb;
	void *arg;
};

static int s_iter(const struct iter *it)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, mrc;
	int64_t now;

	if ((rc = s_check_txn(it->txn, it->tbl, 0)) != 0)
		return rc;
	if (!it->cb)
		return qs_fail(QIAO_EINVAL, "iteration without a callback");
	if ((it->start == NULL && it->slen) || (it->end == NULL && it->elen) ||
	    (it->prefix == NULL && it->plen))
		return qs_fail(QIAO_EINVAL, "iteration bound is NULL with a non-zero length");
	mrc = mdb_cursor_open(it->txn->t, it->tbl->dbi, &cur);
	if (mrc)
		return s_read_err(mrc, "opening a cursor");
	now = qiao_store_now_ms(it->txn->st);

	if (!it->rev) {
		const void *from = it->plen ? it->prefix : it->start;
		size_t flen = it->plen ? it->plen : it->slen;
		if (flen) {
			k.mv_size = flen;
			k.mv_data = (void *)from;
			mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else {
			mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
	} else if (it->end) {
		k.mv_size = it->elen;
		k.mv_data = (void *)it->end;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == 0) /* positioned at the first key >= end: step below it */
			mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
		else if (mrc == MDB_NOTFOUND)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	}

	rc = 0;
	while (mrc == 0) {
		struct rec r;
		if (it->plen) {
			if (k.mv_size < it->plen || memcmp(k.mv_data, it->prefix, it->plen) != 0)
				break;
		} else if (!it->rev) {
			if (it->end && s_keycmp(&k, it->end, it->elen) >= 0)
				break;
		} else if (it->slen && s_keycmp(&k, it->start, it->slen) < 0) {
			break;
		}
		if ((rc = s_decode(it->tbl, &v, &r)) != 0)
			break;
		if (!s_expired(&r, now)) {
			rc = it->cb(it->arg, k.mv_data, k.mv_size, r.payload, r.plen, r.expires);
			if (rc)
				break;
		}
		mrc = mdb_cursor_get(cur, &k, &v, it->rev ? MDB_PREV : MDB_NEXT);
	}
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = s_read_err(mrc, "iterating");
	mdb_cursor_close(cur);
	return rc;
}

int qiao_store_iter_prefix(qiao_txn_t *txn, qiao_table_t *tbl,
			   const void *prefix, size_t plen,
			   qiao_store_iter_fn cb, void *arg)
{
	struct iter it = {.txn = txn, .tbl = tbl, .prefix = prefix, .plen = plen, .cb = cb, .arg = arg};
	if (!plen)
		it.prefix = NULL;
	return s_iter(&it);
}

int qiao_store_iter_range(qiao_txn_t *txn, qiao_table_t *tbl,
			  const void *start, size_t slen,
			  const void *end, size_t elen,
			  qiao_store_iter_fn cb, void *arg)
{
	struct iter it = {.txn = txn, .tbl = tbl, .start = start, .slen = slen,
			  .end = end, .elen = elen, .cb = cb, .arg = arg};
	return s_iter(&it);
}

int qiao_store_iter_range_rev(qiao_txn_t *txn, qiao_table_t *tbl,
			      const void *start, size_t slen,
			      const void *end, size_t elen,
			      qiao_store_iter_fn cb, void *arg)
{
	struct iter it = {.txn = txn, .tbl = tbl, .start = start, .slen = slen,
			  .end = end, .elen = elen, .rev = 1, .cb = cb, .arg = arg};
	return s_iter(&it);
}

/* ------------------------------------------------------------------------
 * Retrying write helper
 */

int qiao_store_write(qiao_store_t *st, int (*fn)(qiao_txn_t *txn, void *arg), void *arg)
{
	if (!st || !fn)
		return qs_fail(QIAO_EINVAL, "qiao_store_write: NULL argument");
	/* Each retry follows a doubling of the map, so few are ever needed. */
	for (int tries = 0;; tries++) {
		qiao_txn_t *t;
		int rc = qs_txn_begin(st, 1, &t), erc;
		if (rc)
			return rc;
		t->borrowed = 1;
		rc = fn(t, arg);
		t->borrowed = 0;
		if (t->full) {
			erc = qs_txn_end(t, 0);
		} else if (rc) {
			qs_txn_end(t, 0);
			return rc;
		} else {
			erc = qs_txn_end(t, 1);
		}
		if (erc != QIAO_ESTOREAGAIN)
			return erc;
		if (tries >= 64)
			return qs_fail(QIAO_ESTOREFULL, "store %s: transaction still does not fit after %d map resizes",
				       st->dir, tries);
	}
}

/* ------------------------------------------------------------------------
 * Expiry sweep
 */

struct sweep {
	qiao_table_t *tbl;
	int64_t now;
	size_t max, removed;
	size_t per_txn; /* deletions per transaction */
	unsigned char resume[QIAO_STORE_MAX_KEY];
	size_t rlen;
	/* results of the last run of s_sweep_txn, applied once it commits */
	size_t got;
	unsigned char next[QIAO_STORE_MAX_KEY];
	size_t nlen;
	int finished;
};

static int s_sweep_txn(qiao_txn_t *t, void *arg)
{
	struct sweep *s = arg;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t scanned = 0;
	int mrc;

	s->got = 0;
	s->finished = 1;
	mrc = mdb_cursor_open(t->t, s->tbl->dbi, &cur);
	if (mrc)
		return s_read_err(mrc, "opening a cursor");
	if (s->rlen) {
		k.mv_size = s->rlen;
		k.mv_data = s->resume;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (mrc == 0) {
		struct rec r;
		if (scanned >= SWEEP_SCAN_PER_TXN || s->got >= s->per_txn ||
		    (s->max && s->removed + s->got >= s->max)) {
			memcpy(s->next, k.mv_data, k.mv_size);
			s->nlen = k.mv_size;
			s->finished = s->max && s->removed + s->got >= s->max;
			break;
		}
		scanned++;
		if (s_hdr_read(&v, &r) == 0 && s_expired(&r, s->now)) {
			mrc = mdb_cursor_del(cur, 0);
			if (mrc) {
				mdb_cursor_close(cur);
				return s_write_err(t, mrc, "sweeping expired records");
			}
			s->got++;
		}
		/* After a delete, MDB_NEXT yields the record that followed it. */
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return s_read_err(mrc, "sweeping expired records");
	return 0;
}

int qiao_store_sweep_expired(qiao_store_t *st, qiao_table_t *tbl,
			     int64_t now_ms, size_t max, size_t *removed)
{
	struct sweep *s;
	int rc = 0;

	if (removed)
		*removed = 0;
	if (!st || !tbl || tbl->st != st)
		return qs_fail(QIAO_EINVAL, "qiao_store_sweep_expired: bad store or table");
	s = calloc(1, sizeof *s);
	if (!s)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	s->tbl = tbl;
	s->now = now_ms ? now_ms : qiao_store_now_ms(st);
	s->max = max;
	s->per_txn = SWEEP_DEL_PER_TXN;
	for (;;) {
		rc = qiao_store_write(st, s_sweep_txn, s);
		/* Scattered deletions dirty many pages; in a full store, take
		 * fewer at a time until they fit the deletion reserve. */
		if (rc == QIAO_ESTOREFULL && s->per_txn > 1) {
			s->per_txn /= 4;
			continue;
		}
		if (rc)
			break;
		s->removed += s->got;
		if (s->finished)
			break;
		memcpy(s->resume, s->next, s->nlen);
		s->rlen = s->nlen;
	}
	if (removed)
		*removed = s->removed;
	free(s);
	return rc;
}
