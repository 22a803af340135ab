/*
 * qiao_store.c - environment, format check, tables, transactions, map
 * growth and backup.  Records and iteration are in qiao_store_rec.c, the
 * group-commit writer in qiao_store_gc.c.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define DEF_INITIAL_MAP ((size_t)64 * MIB)
#define DEF_MAX_MAP ((size_t)16 * 1024 * MIB)
#define DEF_TABLES 64u
#define DEF_READERS 256u
#define MIN_MAP ((size_t)64 * 1024)
#define MAX_TABLES 4096u
#define MIN_RESERVE ((size_t)256 * 1024)
#define MAX_RESERVE ((size_t)1024 * MIB)
/* How long a resize waits for this process's transactions to end. */
#define GATE_WAIT_S 5
#define META_NAME "qiao.meta"
#define META_FORMAT "format"

/* The calling thread's last error sentence. */
static _Thread_local char s_errmsg[512];
/* Write transactions this thread holds (they cannot change threads). */
static _Thread_local unsigned s_wdepth;

/*
 * How many top-level transactions (any store) a thread has begun and not yet
 * seen ended.  A read transaction may be ended by another thread (MDB_NOTLS),
 * so the count is not a plain thread-local: each thread has a small
 * refcounted holder, every transaction points to its beginner's holder, and
 * whoever ends it decrements that one.  The holder outlives its thread while
 * transactions still point to it.
 */
struct qs_holder {
	atomic_int depth;
	atomic_int refs;
};
static pthread_key_t s_holder_key;
static pthread_once_t s_holder_once = PTHREAD_ONCE_INIT;
static _Thread_local struct qs_holder *s_me;

static void s_holder_put(struct qs_holder *h)
{
	if (atomic_fetch_sub(&h->refs, 1) == 1)
		free(h);
}

static void s_holder_dtor(void *p)
{
	s_holder_put(p);
}

static void s_holder_key_init(void)
{
	pthread_key_create(&s_holder_key, s_holder_dtor);
}

static struct qs_holder *s_holder(void)
{
	if (!s_me) {
		struct qs_holder *h = calloc(1, sizeof *h);
		if (!h)
			return NULL;
		atomic_init(&h->depth, 0);
		atomic_init(&h->refs, 1); /* the thread's own reference */
		pthread_once(&s_holder_once, s_holder_key_init);
		pthread_setspecific(s_holder_key, h);
		s_me = h;
	}
	return s_me;
}

/* Transactions the calling thread holds. */
static int s_held(void)
{
	return s_me ? atomic_load(&s_me->depth) : 0;
}

/* Stores open in this process: LMDB forbids opening one twice. */
static pthread_mutex_t s_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static qiao_store_t *s_reg;

int qs_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s_errmsg, sizeof s_errmsg, fmt, ap);
	va_end(ap);
	return rc;
}

const char *qiao_store_last_error(void)
{
	return s_errmsg;
}

int qs_mdb_err(int mrc, const char *what)
{
	int rc;
	switch (mrc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		rc = QIAO_ENOTFOUND;
		break;
	case MDB_MAP_FULL:
		rc = QIAO_ESTOREFULL;
		break;
	case MDB_TXN_FULL:
	case MDB_DBS_FULL:
		rc = QIAO_ESTORELIMIT;
		break;
	case MDB_READERS_FULL:
		rc = QIAO_ESTOREBUSY;
		break;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		rc = QIAO_ESTORECORRUPT;
		break;
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		rc = QIAO_ESTOREFORMAT;
		break;
	case MDB_BAD_VALSIZE:
		rc = QIAO_ETOOBIG;
		break;
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
	case MDB_BAD_RSLOT:
	case MDB_INCOMPATIBLE:
	case EINVAL:
		rc = QIAO_EINVAL;
		break;
	case ENOMEM:
		rc = QIAO_ENOMEM;
		break;
	default:
		rc = (mrc > 0 && mrc < 1000) ? -mrc : QIAO_ESTORE;
		break;
	}
	return qs_fail(rc, "%s: %s", what, mdb_strerror(mrc));
}

/* ------------------------------------------------------------------------
 * The resize gate (see struct qiao_store).
 */

/* Enter the gate shared for the calling thread; returns the holder to pass
 * to s_gate_leave(), or NULL when out of memory. */
static struct qs_holder *s_gate_enter(qiao_store_t *st)
{
	struct qs_holder *h = s_holder();
	if (!h)
		return NULL;
	pthread_mutex_lock(&st->gate_mu);
	while (st->resizing || (st->waiting && atomic_load(&h->depth) == 0))
		pthread_cond_wait(&st->gate_cv, &st->gate_mu);
	st->active++;
	pthread_mutex_unlock(&st->gate_mu);
	atomic_fetch_add(&h->depth, 1);
	atomic_fetch_add(&h->refs, 1);
	return h;
}

static void s_gate_leave(qiao_store_t *st, struct qs_holder *h)
{
	atomic_fetch_sub(&h->depth, 1);
	s_holder_put(h);
	pthread_mutex_lock(&st->gate_mu);
	st->active--;
	if (st->active == 0 && st->waiting)
		pthread_cond_broadcast(&st->gate_cv);
	pthread_mutex_unlock(&st->gate_mu);
}

/* Take the gate exclusively; -1 when transactions stayed open `wait_s`
 * seconds (0: do not wait). */
static int s_gate_excl(qiao_store_t *st, int wait_s)
{
	struct timespec dl;
	int busy;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += wait_s;
	pthread_mutex_lock(&st->gate_mu);
	st->waiting++;
	while ((busy = st->active || st->resizing) != 0)
		if (!wait_s || (pthread_cond_timedwait(&st->gate_cv, &st->gate_mu, &dl) == ETIMEDOUT &&
				(st->active || st->resizing)))
			break;
	st->waiting--;
	if (busy) {
		pthread_cond_broadcast(&st->gate_cv);
		pthread_mutex_unlock(&st->gate_mu);
		return -1;
	}
	st->resizing = 1;
	pthread_mutex_unlock(&st->gate_mu);
	return 0;
}

static void s_gate_excl_end(qiao_store_t *st)
{
	pthread_mutex_lock(&st->gate_mu);
	st->resizing = 0;
	pthread_cond_broadcast(&st->gate_cv);
	pthread_mutex_unlock(&st->gate_mu);
}

/* Under the exclusive gate (or before the store is shared). */
static void s_refresh_map(qiao_store_t *st)
{
	MDB_envinfo ei;
	if (mdb_env_info(st->env, &ei) == 0)
		st->map_size = ei.me_mapsize;
}

/*
 * mdb_env_info() reads the meta pages through the map: outside a transaction
 * it must hold the gate too, or a concurrent remap could pull the map away.
 * *used gets the end of the data in bytes.
 */
static int s_env_info(qiao_store_t *st, MDB_envinfo *ei, size_t *used)
{
	MDB_stat ms;
	struct qs_holder *h = s_gate_enter(st);
	int mrc;
	if (!h)
		return ENOMEM;
	mrc = mdb_env_info(st->env, ei);
	if (mrc == 0 && used)
		mrc = mdb_env_stat(st->env, &ms);
	if (mrc == 0 && used)
		*used = (ei->me_last_pgno + 1) * (size_t)ms.ms_psize;
	s_gate_leave(st, h);
	return mrc;
}

/* Under the exclusive gate: remap at `size` (0: the size in the file). */
static int s_remap(qiao_store_t *st, size_t size)
{
	size_t old = st->map_size;
	int mrc = mdb_env_set_mapsize(st->env, size);
	if (mrc) {
		int rc = qs_mdb_err(mrc, "resizing the map");
		/* A failed mmap leaves LMDB without a map: try the old size. */
		if (mdb_env_set_mapsize(st->env, old) != 0) {
			st->broken = 1;
			return qs_fail(rc, "store %s: remapping failed and the old map could not be restored; close the store",
				       st->dir);
		}
		s_refresh_map(st);
		return rc;
	}
	s_refresh_map(st);
	st->grows++;
	return 0;
}

static size_t s_round(const qiao_store_t *st, size_t n)
{
	return (n + st->page - 1) / st->page * st->page;
}

/*
 * Grow the map after a transaction that began at map size `seen` ran out of
 * space.  0 when the map is now larger than `seen` (grown here or by another
 * thread); *now gets the new size.
 */
static int s_grow(qiao_store_t *st, size_t seen, int deletes_only, size_t *now, int *at_limit)
{
	size_t cur, limit, want;
	int rc;

	*at_limit = 0;
	if (s_held())
		return qs_fail(QIAO_ESTOREFULL,
			       "store %s: map full at %zu KiB; it cannot grow while this thread holds another transaction",
			       st->dir, seen / 1024);
	if (s_gate_excl(st, GATE_WAIT_S))
		return qs_fail(QIAO_ESTOREFULL,
			       "store %s: map full at %zu KiB; it could not grow because transactions of this process stayed open for %d s",
			       st->dir, seen / 1024, GATE_WAIT_S);
	cur = st->map_size;
	*now = cur;
	if (cur > seen) {
		s_gate_excl_end(st);
		return 0;
	}
	limit = deletes_only ? st->max_map + st->reserve : st->max_map;
	if (cur >= limit) {
		s_gate_excl_end(st);
		*at_limit = 1;
		return qs_fail(QIAO_ESTOREFULL,
			       "store %s is full: map is %zu KiB, maximum %zu KiB (raise max_map_size, or delete records)",
			       st->dir, cur / 1024, st->max_map / 1024);
	}
	if (cur < st->max_map)
		want = cur > st->max_map / 2 ? st->max_map : cur * 2;
	else
		want = limit;
	rc = s_remap(st, s_round(st, want));
	*now = st->map_size;
	s_gate_excl_end(st);
	return rc;
}

/*
 * Deletions (and ticks) may take the map past max_map into the reserve.  Once
 * such a transaction has committed, bring the map back to max_map (LMDB keeps
 * it at least as large as the data), so that puts cannot use up the reserve.
 * Best effort: when transactions are running, the next commit tries again.
 */
static void s_shrink(qiao_store_t *st)
{
	MDB_envinfo ei;
	size_t used;

	if (s_held())
		return;
	/* Nothing to gain once the data itself reaches past max_map. */
	if (s_env_info(st, &ei, &used) != 0 || used >= ei.me_mapsize)
		return;
	if (s_gate_excl(st, 0))
		return;
	if (st->map_size > st->max_map)
		s_remap(st, st->max_map);
	s_gate_excl_end(st);
}

/*
 * LMDB reuses a page freed by transaction t only from transaction t+2 on.
 * So in a map at its maximum, the first put after a large delete finds no
 * usable free page although plenty were just freed, and would fail for ever
 * if nothing else committed.  A tick, a tiny commit to the meta table that
 * may use the deletion reserve, moves the transaction id on so that the put,
 * run again, can use them.  Once per committed transaction at most.
 * 0 when a tick was committed (run the put again).
 */
static int s_tick(qiao_store_t *st)
{
	MDB_envinfo ei;
	unsigned char buf[8];
	MDB_val k = {4, (void *)"tick"}, v = {sizeof buf, buf};

	if (s_env_info(st, &ei, NULL) != 0 ||
	    (uint64_t)ei.me_last_txnid == atomic_load(&st->tick_txnid))
		return -1;
	/* Whatever happens, not again before the next commit. */
	atomic_store(&st->tick_txnid, (uint64_t)ei.me_last_txnid);
	for (int tries = 0; tries < 8; tries++) {
		qiao_txn_t *t;
		int rc, mrc;
		if (qs_txn_begin(st, 1, &t) != 0)
			return -1;
		t->maint = 1;
		for (int i = 0; i < 8; i++)
			buf[i] = (unsigned char)((uint64_t)ei.me_last_txnid >> (8 * i));
		mrc = mdb_put(t->t, st->meta, &k, &v, 0);
		if (mrc == MDB_MAP_FULL)
			qs_full_rc(t);
		else if (mrc) {
			qs_txn_end(t, 0);
			return -1;
		}
		rc = qs_txn_end(t, 1);
		if (rc == 0) {
			if (s_env_info(st, &ei, NULL) == 0)
				atomic_store(&st->tick_txnid, (uint64_t)ei.me_last_txnid);
			return 0;
		}
		if (rc != QIAO_ESTOREAGAIN)
			return -1;
	}
	return -1;
}

/* Another process grew the map past ours: map the size recorded in the file. */
static int s_follow_resize(qiao_store_t *st)
{
	int rc;
	if (s_held())
		return qs_fail(QIAO_ESTOREBUSY,
			       "store %s was grown by another process; this thread must end its other transactions before it can follow",
			       st->dir);
	if (s_gate_excl(st, GATE_WAIT_S))
		return qs_fail(QIAO_ESTOREBUSY,
			       "store %s was grown by another process; transactions of this process stayed open for %d s",
			       st->dir, GATE_WAIT_S);
	rc = s_remap(st, 0);
	s_gate_excl_end(st);
	return rc;
}

/* Will a tick (see s_tick) let a put that found the map full run again?
 * Called inside a transaction, so the map cannot move. */
static int s_tick_would_help(qiao_store_t *st)
{
	MDB_envinfo ei;
	return mdb_env_info(st->env, &ei) == 0 &&
	       (uint64_t)ei.me_last_txnid != atomic_load(&st->tick_txnid);
}

int qs_full_rc(qiao_txn_t *t)
{
	qiao_txn_t *r = t->root;
	qiao_store_t *st = t->st;
	int puts = r->did_put && !r->maint;
	size_t limit;

	if (r->full)
		return r->full_rc;
	r->full = 1;
	limit = puts ? st->max_map : st->max_map + st->reserve;
	/* Predict exactly what ending the txn will do, so that a caller who
	 * retries on QIAO_ESTOREAGAIN cannot loop for ever. */
	if (s_held() > 1)
		r->full_rc = qs_fail(QIAO_ESTOREFULL,
				     "store %s: map full at %zu KiB; it cannot grow while this thread holds another transaction",
				     st->dir, r->map_at_begin / 1024);
	else if (r->map_at_begin < limit || (puts && s_tick_would_help(st)))
		r->full_rc = qs_fail(QIAO_ESTOREAGAIN,
				     "store %s: transaction ran out of map space at %zu KiB; abort it and run it again (the map grows when it ends)",
				     st->dir, r->map_at_begin / 1024);
	else
		r->full_rc = qs_fail(QIAO_ESTOREFULL,
				     "store %s is full: map is %zu KiB, maximum %zu KiB (raise max_map_size, or delete records)",
				     st->dir, r->map_at_begin / 1024, st->max_map / 1024);
	return r->full_rc;
}

/* ------------------------------------------------------------------------
 * Transactions
 */

int qs_txn_begin(qiao_store_t *st, int write, qiao_txn_t **out)
{
	qiao_txn_t *t;
	int rc, resized = 0, reaped = 0;

	*out = NULL;
	if (write && st->read_only)
		return qs_fail(QIAO_EINVAL, "store %s is open read-only", st->dir);
	if (write && s_wdepth)
		return qs_fail(QIAO_EINVAL,
			       "this thread already holds a write transaction (LMDB allows one writer; it would deadlock)");
	t = calloc(1, sizeof *t);
	if (!t)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	for (;;) {
		int mrc;
		t->holder = s_gate_enter(st);
		if (!t->holder) {
			free(t);
			return qs_fail(QIAO_ENOMEM, "out of memory");
		}
		if (st->broken) {
			s_gate_leave(st, t->holder);
			free(t);
			return qs_fail(QIAO_ESTORE, "store %s lost its map after a failed resize; close it", st->dir);
		}
		mrc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->t);
		if (mrc == 0)
			break;
		s_gate_leave(st, t->holder);
		if (mrc == MDB_MAP_RESIZED && resized++ < 3) {
			rc = s_follow_resize(st);
			if (rc == 0)
				continue;
		} else if (mrc == MDB_READERS_FULL && !reaped++) {
			int dead = 0;
			/* Slots of crashed processes are freed lazily: reap, retry. */
			if (mdb_reader_check(st->env, &dead) == 0 && dead > 0)
				continue;
			rc = qs_fail(QIAO_ESTOREBUSY, "store %s: every reader slot is in use (max_readers)", st->dir);
		} else {
			rc = qs_mdb_err(mrc, write ? "beginning a write transaction"
						  : "beginning a read transaction");
		}
		free(t);
		return rc;
	}
	t->st = st;
	t->root = t;
	t->write = write ? 1 : 0;
	t->map_at_begin = st->map_size;
	if (write)
		s_wdepth++;
	*out = t;
	return 0;
}

/*
 * A failed write commit.  LMDB reports a short write as EIO ("short write,
 * filesystem full?"), and a write ends short exactly when the filesystem or
 * the process's file-size limit ran out: tell those apart from a real I/O
 * error, so that the caller (the gateway's health check, its answers) can
 * say "disk full" (-ENOSPC) or "file-size limit" (-EFBIG).  Nothing of the
 * transaction is durable either way, and the next commit works once there
 * is room again: the meta page was not written.
 */
static int s_commit_err(qiao_store_t *st, int mrc)
{
	mdb_filehandle_t fd;
	struct stat sb;
	struct statvfs vs;
	struct rlimit rl;

	if ((mrc != EIO && mrc != ENOSPC && mrc != EFBIG) || mdb_env_get_fd(st->env, &fd) != 0 ||
	    fstat(fd, &sb) != 0)
		return qs_mdb_err(mrc, "committing a transaction");
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (uint64_t)sb.st_size + MIB > (uint64_t)rl.rlim_cur)
		return qs_fail(-EFBIG,
			       "store %s: committing a transaction: the data file (%lld KiB) reached the file-size "
			       "limit (RLIMIT_FSIZE %llu KiB); nothing of it was written (%s)",
			       st->dir, (long long)sb.st_size / 1024, (unsigned long long)rl.rlim_cur / 1024,
			       mdb_strerror(mrc));
	/* free space as an unprivileged writer sees it: root may still dig
	 * into the reserved blocks, but then the disk is as good as full */
	int vok = fstatvfs(fd, &vs) == 0;
	uint64_t avail = vok ? (uint64_t)vs.f_bavail * vs.f_frsize : 0;
	if (mrc == ENOSPC || (vok && avail < MIB))
		return qs_fail(-ENOSPC,
			       "store %s: committing a transaction: the disk is full (%llu KiB free); nothing of it "
			       "was written (%s)",
			       st->dir, (unsigned long long)avail / 1024, mdb_strerror(mrc));
	return qs_mdb_err(mrc, "committing a transaction");
}

int qs_txn_end(qiao_txn_t *t, int commit)
{
	qiao_store_t *st = t->st;
	int full = t->full, write = t->write, rc = 0, at_limit = 0, over = 0;
	int deletes_only = !t->did_put || t->maint;
	size_t seen = t->map_at_begin, now = 0;

	if (commit && !full) {
		int mrc = mdb_txn_commit(t->t);
		if (mrc == MDB_MAP_FULL)
			full = 1;
		else if (mrc)
			rc = write ? s_commit_err(st, mrc) : qs_mdb_err(mrc, "committing a transaction");
		else
			over = write && st->map_size > st->max_map;
	} else {
		mdb_txn_abort(t->t);
	}
	s_gate_leave(st, t->holder);
	if (write)
		s_wdepth--;
	free(t);
	if (over)
		s_shrink(st);
	if (!full || !write)
		return rc;
	/* The map can only be resized with no transaction running: now. */
	rc = s_grow(st, seen, deletes_only, &now, &at_limit);
	if (rc == QIAO_ESTOREFULL && at_limit && !deletes_only && s_tick(st) == 0)
		return qs_fail(QIAO_ESTOREAGAIN,
			       "store %s: map full at its maximum, but pages freed by the last commit become usable now: run the transaction again",
			       st->dir);
	if (rc)
		return rc;
	return qs_fail(QIAO_ESTOREAGAIN,
		       "store %s: transaction ran out of map space at %zu KiB; map is now %zu KiB, run it again",
		       st->dir, seen / 1024, now / 1024);
}

int qs_txn_child(qiao_txn_t *parent, qiao_txn_t **out)
{
	qiao_txn_t *c;
	int mrc;

	*out = NULL;
	c = calloc(1, sizeof *c);
	if (!c)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	mrc = mdb_txn_begin(parent->st->env, parent->t, 0, &c->t);
	if (mrc) {
		free(c);
		if (mrc == MDB_MAP_FULL)
			return qs_full_rc(parent);
		return qs_mdb_err(mrc, "beginning a nested transaction");
	}
	c->st = parent->st;
	c->root = parent->root;
	c->write = 1;
	c->nested = 1;
	c->borrowed = 1;
	c->map_at_begin = parent->map_at_begin;
	*out = c;
	return 0;
}

int qs_txn_child_end(qiao_txn_t *c, int commit)
{
	int rc = 0;
	if (commit && !c->root->full) {
		int mrc = mdb_txn_commit(c->t);
		if (mrc == MDB_MAP_FULL) {
			c->root->did_put = 1;
			rc = qs_full_rc(c);
		} else if (mrc) {
			rc = qs_mdb_err(mrc, "committing a nested transaction");
		}
	} else {
		mdb_txn_abort(c->t);
	}
	free(c);
	return rc;
}

int qiao_txn_begin(qiao_store_t *st, int write, qiao_txn_t **out)
{
	if (!out)
		return qs_fail(QIAO_EINVAL, "qiao_txn_begin: NULL out");
	*out = NULL;
	if (!st)
		return qs_fail(QIAO_EINVAL, "qiao_txn_begin: NULL store");
	return qs_txn_begin(st, write, out);
}

int qiao_txn_commit(qiao_txn_t **txn)
{
	qiao_txn_t *t;
	if (!txn || !*txn)
		return qs_fail(QIAO_EINVAL, "qiao_txn_commit: NULL transaction");
	t = *txn;
	if (t->borrowed)
		return qs_fail(QIAO_EINVAL, "the transaction of a group-commit apply is committed by the writer");
	*txn = NULL;
	return qs_txn_end(t, 1);
}

void qiao_txn_abort(qiao_txn_t **txn)
{
	qiao_txn_t *t;
	if (!txn || !*txn || (*txn)->borrowed)
		return;
	t = *txn;
	*txn = NULL;
	qs_txn_end(t, 0);
}

/* ------------------------------------------------------------------------
 * Open, format, close
 */

static void s_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t s_get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Check the format record; with `create`, write it into an empty store.
 * Runs before the store is shared, so mdb_dbi_open needs no lock.
 */
static int s_check_format(qiao_store_t *st, int create, int *need_create)
{
	qiao_txn_t *t;
	MDB_dbi meta;
	MDB_val k = {sizeof META_FORMAT - 1, (void *)META_FORMAT}, v;
	unsigned char buf[4];
	int rc, mrc;

	*need_create = 0;
	rc = qs_txn_begin(st, create, &t);
	if (rc)
		return rc;
	mrc = mdb_dbi_open(t->t, META_NAME, 0, &meta);
	if (mrc == MDB_NOTFOUND) {
		MDB_dbi main;
		MDB_stat ms;
		mrc = mdb_dbi_open(t->t, NULL, 0, &main);
		if (mrc == 0)
			mrc = mdb_stat(t->t, main, &ms);
		if (mrc) {
			rc = qs_mdb_err(mrc, "reading the main table");
		} else if (ms.ms_entries > 0) {
			rc = qs_fail(QIAO_ESTOREFORMAT,
				     "store %s holds LMDB data but no %s table: it is not a Qiao store",
				     st->dir, META_NAME);
		} else if (st->read_only) {
			rc = qs_fail(QIAO_ENOTFOUND,
				     "store %s was never initialised (open it once for writing)", st->dir);
		} else if (!create) {
			*need_create = 1;
		} else {
			mrc = mdb_dbi_open(t->t, META_NAME, MDB_CREATE, &meta);
			s_le32(buf, QIAO_STORE_FORMAT);
			v.mv_size = sizeof buf;
			v.mv_data = buf;
			t->did_put = 1;
			if (mrc == 0)
				mrc = mdb_put(t->t, meta, &k, &v, 0);
			if (mrc == MDB_MAP_FULL)
				rc = qs_full_rc(t);
			else if (mrc)
				rc = qs_mdb_err(mrc, "writing the format record");
			if (rc == 0) {
				st->meta = meta;
				return qs_txn_end(t, 1);
			}
		}
		qs_txn_end(t, 0);
		return rc;
	}
	if (mrc) {
		rc = qs_mdb_err(mrc, "opening the meta table");
	} else if ((mrc = mdb_get(t->t, meta, &k, &v)) != 0) {
		rc = mrc == MDB_NOTFOUND
			     ? qs_fail(QIAO_ESTOREFORMAT, "store %s has no format record", st->dir)
			     : qs_mdb_err(mrc, "reading the format record");
	} else if (v.mv_size != 4) {
		rc = qs_fail(QIAO_ESTORECORRUPT, "store %s: format record has %zu bytes, expected 4",
			     st->dir, v.mv_size);
	} else if (s_get_le32(v.mv_data) != QIAO_STORE_FORMAT) {
		rc = qs_fail(QIAO_ESTOREFORMAT,
			     "store %s was written by format %u; this build reads format %d",
			     st->dir, (unsigned)s_get_le32(v.mv_data), QIAO_STORE_FORMAT);
	}
	if (rc) {
		qs_txn_end(t, 0);
		return rc;
	}
	st->meta = meta;
	/* Commit (not abort) so the meta handle stays open in the environment. */
	return qs_txn_end(t, 1);
}

static void s_reg_remove(qiao_store_t *st)
{
	pthread_mutex_lock(&s_reg_mu);
	for (qiao_store_t **pp = &s_reg; *pp; pp = &(*pp)->reg_next)
		if (*pp == st) {
			*pp = st->reg_next;
			break;
		}
	pthread_mutex_unlock(&s_reg_mu);
}

/* Register st as open; QIAO_EEXIST when this process already has it open. */
static int s_reg_add(qiao_store_t *st)
{
	int rc = 0;
	pthread_mutex_lock(&s_reg_mu);
	for (qiao_store_t *o = s_reg; o; o = o->reg_next)
		if (o->dev == st->dev && o->ino == st->ino && o->pid == st->pid) {
			rc = qs_fail(QIAO_EEXIST,
				     "store %s is already open in this process (as %s); LMDB forbids opening it twice",
				     st->dir, o->dir);
			break;
		}
	if (rc == 0) {
		st->reg_next = s_reg;
		s_reg = st;
	}
	pthread_mutex_unlock(&s_reg_mu);
	return rc;
}

static int s_init_sync(qiao_store_t *st)
{
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca))
		return -1;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&st->gate_cv, &ca)) {
		pthread_condattr_destroy(&ca);
		return -1;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&st->gate_mu, NULL);
	pthread_mutex_init(&st->tbl_mu, NULL);
	pthread_mutex_init(&st->clock_mu, NULL);
	return 0;
}

static void s_free(qiao_store_t *st, int registered)
{
	if (registered)
		s_reg_remove(st);
	if (st->env)
		mdb_env_close(st->env);
	while (st->tables) {
		struct qiao_table *n = st->tables->next;
		free(st->tables);
		st->tables = n;
	}
	pthread_cond_destroy(&st->gate_cv);
	pthread_mutex_destroy(&st->gate_mu);
	pthread_mutex_destroy(&st->tbl_mu);
	pthread_mutex_destroy(&st->clock_mu);
	free(st->dir);
	free(st);
}

int qiao_store_open(qiao_store_t **out, const char *dir,
		    const struct qiao_store_opts *opts)
{
	struct qiao_store_opts o = {0};
	qiao_store_t *st;
	struct stat sb;
	size_t initial;
	int rc, mrc, dead, need_create;

	if (!out)
		return qs_fail(QIAO_EINVAL, "qiao_store_open: NULL out");
	*out = NULL;
	if (!dir || !*dir)
		return qs_fail(QIAO_EINVAL, "qiao_store_open: empty directory name");
	if (opts)
		o = *opts;
	if (!o.initial_map_size)
		o.initial_map_size = DEF_INITIAL_MAP;
	if (!o.max_map_size)
		o.max_map_size = DEF_MAX_MAP;
	if (!o.max_tables)
		o.max_tables = DEF_TABLES;
	if (!o.max_readers)
		o.max_readers = DEF_READERS;
	if (o.max_map_size < MIN_MAP || o.max_tables > MAX_TABLES)
		return qs_fail(QIAO_EINVAL, "qiao_store_open: max_map_size below %zu KiB or more than %u tables",
			       MIN_MAP / 1024, MAX_TABLES);
	if (o.initial_map_size > o.max_map_size)
		o.initial_map_size = o.max_map_size;
	if (o.initial_map_size < MIN_MAP)
		o.initial_map_size = MIN_MAP;

	st = calloc(1, sizeof *st);
	if (!st)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	if (s_init_sync(st)) {
		free(st);
		return qs_fail(QIAO_ENOMEM, "out of memory");
	}
	st->dir = strdup(dir);
	if (!st->dir) {
		s_free(st, 0);
		return qs_fail(QIAO_ENOMEM, "out of memory");
	}
	st->read_only = o.read_only ? 1 : 0;
	st->max_tables = o.max_tables;
	st->pid = getpid();
	{
		long pg = sysconf(_SC_PAGESIZE);
		st->page = pg > 0 ? (size_t)pg : 4096;
	}
	st->max_map = s_round(st, o.max_map_size);
	st->reserve = st->max_map / 8;
	if (st->reserve < MIN_RESERVE)
		st->reserve = MIN_RESERVE;
	if (st->reserve > MAX_RESERVE)
		st->reserve = MAX_RESERVE;
	st->reserve = s_round(st, st->reserve);
	initial = s_round(st, o.initial_map_size);

	if (!st->read_only && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = qs_fail(-errno, "creating store directory %s: %s", dir, strerror(errno));
		s_free(st, 0);
		return rc;
	}
	if (stat(dir, &sb) != 0) {
		rc = errno == ENOENT ? qs_fail(QIAO_ENOTFOUND, "no store at %s: directory does not exist", dir)
				     : qs_fail(-errno, "store directory %s: %s", dir, strerror(errno));
		s_free(st, 0);
		return rc;
	}
	if (!S_ISDIR(sb.st_mode)) {
		s_free(st, 0);
		return qs_fail(QIAO_EINVAL, "store path %s is not a directory", dir);
	}
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	if (st->read_only) {
		char p[4096];
		snprintf(p, sizeof p, "%s/data.mdb", dir);
		if (access(p, F_OK) != 0) {
			s_free(st, 0);
			return qs_fail(QIAO_ENOTFOUND, "no store at %s: data.mdb is missing", dir);
		}
	}
	rc = s_reg_add(st);
	if (rc) {
		s_free(st, 0);
		return rc;
	}

	mrc = mdb_env_create(&st->env);
	if (mrc) {
		st->env = NULL;
		rc = qs_mdb_err(mrc, "creating the LMDB environment");
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, (MDB_dbi)o.max_tables + 1);
	mdb_env_set_maxreaders(st->env, o.max_readers);
	/* Durable commits: neither MDB_NOSYNC nor MDB_NOMETASYNC. */
	mrc = mdb_env_open(st->env, dir, MDB_NOTLS | (st->read_only ? MDB_RDONLY : 0), 0600);
	if (mrc) {
		if (mrc == ENOENT)
			rc = qs_fail(QIAO_ENOTFOUND, "no store at %s", dir);
		else
			rc = qs_mdb_err(mrc, "opening the store");
		qs_fail(rc, "opening store %s: %s", dir, mdb_strerror(mrc));
		goto fail;
	}
	s_refresh_map(st);
	if (!st->read_only) {
		MDB_envinfo ei;
		size_t want = st->map_size;
		mdb_env_info(st->env, &ei);
		if (ei.me_last_pgno < 2) /* new: only the two meta pages */
			want = initial;
		else if (want < initial)
			want = initial;
		else if (want > st->max_map) /* grown into the reserve, or max lowered */
			want = st->max_map;  /* LMDB keeps it >= the data */
		if (want != st->map_size) {
			mrc = mdb_env_set_mapsize(st->env, want);
			if (mrc) {
				rc = qs_mdb_err(mrc, "setting the map size");
				goto fail;
			}
			s_refresh_map(st);
		}
	}
	/* Free the reader slots of processes that died with a transaction open. */
	mdb_reader_check(st->env, &dead);

	/* A read txn first, so a second writer process does not queue for the lock. */
	rc = s_check_format(st, 0, &need_create);
	if (rc == 0 && need_create)
		rc = s_check_format(st, 1, &need_create);
	if (rc)
		goto fail;
	*out = st;
	return 0;
fail:
	s_free(st, 1);
	return rc;
}

void qiao_store_close(qiao_store_t **stp)
{
	if (!stp || !*stp)
		return;
	s_free(*stp, 1);
	*stp = NULL;
}

/* ------------------------------------------------------------------------
 * Clock and info
 */

static int64_t s_real_now(void *arg)
{
	struct timespec ts;
	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qiao_store_set_clock(qiao_store_t *st, int64_t (*now_ms)(void *arg), void *arg)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->clock_mu);
	st->now_fn = now_ms;
	st->now_arg = arg;
	pthread_mutex_unlock(&st->clock_mu);
}

int64_t qiao_store_now_ms(qiao_store_t *st)
{
	int64_t (*fn)(void *);
	void *arg;
	pthread_mutex_lock(&st->clock_mu);
	fn = st->now_fn;
	arg = st->now_arg;
	pthread_mutex_unlock(&st->clock_mu);
	return fn ? fn(arg) : s_real_now(NULL);
}

int qiao_store_info(qiao_store_t *st, struct qiao_store_info *info)
{
	MDB_envinfo ei;
	MDB_stat ms;
	struct qs_holder *h;
	int mrc;

	if (!st || !info)
		return qs_fail(QIAO_EINVAL, "qiao_store_info: NULL argument");
	memset(info, 0, sizeof *info);
	h = s_gate_enter(st);
	if (!h)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	mrc = mdb_env_info(st->env, &ei);
	if (mrc == 0)
		mrc = mdb_env_stat(st->env, &ms);
	info->map_size = st->map_size;
	info->grows = st->grows;
	s_gate_leave(st, h);
	if (mrc)
		return qs_mdb_err(mrc, "reading store information");
	info->max_map_size = st->max_map;
	info->page_size = ms.ms_psize;
	info->used_bytes = (ei.me_last_pgno + 1) * (size_t)ms.ms_psize;
	info->last_txnid = ei.me_last_txnid;
	info->max_readers = ei.me_maxreaders;
	info->readers = ei.me_numreaders;
	info->read_only = st->read_only;
	return 0;
}

/* ------------------------------------------------------------------------
 * Tables
 */

const char *qiao_table_name(const qiao_table_t *tbl)
{
	return tbl ? tbl->name : NULL;
}

uint16_t qiao_table_type(const qiao_table_t *tbl)
{
	return tbl ? tbl->type : 0;
}

/* Open (maybe create) `name` in txn t and check its recorded type. */
static int s_table_in_txn(qiao_store_t *st, qiao_txn_t *t, const char *name,
			  uint16_t type, MDB_dbi *dbi)
{
	char mkey[8 + QIAO_STORE_MAX_NAME];
	MDB_val k, v;
	unsigned char buf[2];
	int mrc;

	mrc = mdb_dbi_open(t->t, name, st->read_only ? 0 : MDB_CREATE, dbi);
	if (mrc == MDB_NOTFOUND)
		return qs_fail(QIAO_ENOTFOUND, "store %s has no table %s", st->dir, name);
	if (mrc == MDB_DBS_FULL)
		return qs_fail(QIAO_ESTORELIMIT, "store %s: cannot open table %s: max_tables (%u) reached",
			       st->dir, name, st->max_tables);
	if (mrc == MDB_INCOMPATIBLE)
		return qs_fail(QIAO_ESTOREFORMAT, "store %s: %s is not a table", st->dir, name);
	if (mrc == MDB_MAP_FULL)
		return qs_full_rc(t);
	if (mrc)
		return qs_mdb_err(mrc, "opening a table");
	k.mv_size = (size_t)snprintf(mkey, sizeof mkey, "t/%s", name);
	k.mv_data = mkey;
	mrc = mdb_get(t->t, st->meta, &k, &v);
	if (mrc == 0) {
		unsigned have;
		if (v.mv_size != 2)
			return qs_fail(QIAO_ESTORECORRUPT, "store %s: type record of table %s has %zu bytes",
				       st->dir, name, v.mv_size);
		have = (unsigned)((const unsigned char *)v.mv_data)[0] |
		       (unsigned)((const unsigned char *)v.mv_data)[1] << 8;
		if (have != type)
			return qs_fail(QIAO_ESTORETYPE,
				       "store %s: table %s was created with record type %u, opened as type %u",
				       st->dir, name, have, (unsigned)type);
		return 0;
	}
	if (mrc != MDB_NOTFOUND)
		return qs_mdb_err(mrc, "reading a table's type");
	if (st->read_only)
		return 0; /* created outside this layer: nothing to check against */
	buf[0] = (unsigned char)type;
	buf[1] = (unsigned char)(type >> 8);
	v.mv_size = 2;
	v.mv_data = buf;
	t->did_put = 1;
	mrc = mdb_put(t->t, st->meta, &k, &v, 0);
	if (mrc == MDB_MAP_FULL)
		return qs_full_rc(t);
	if (mrc)
		return qs_mdb_err(mrc, "recording a table's type");
	return 0;
}

int qiao_store_table(qiao_store_t *st, const char *name, uint16_t type,
		     qiao_table_t **out)
{
	struct qiao_table *tb;
	size_t len;
	MDB_dbi dbi = 0;
	int rc;

	if (!out)
		return qs_fail(QIAO_EINVAL, "qiao_store_table: NULL out");
	*out = NULL;
	if (!st || !name)
		return qs_fail(QIAO_EINVAL, "qiao_store_table: NULL argument");
	len = strlen(name);
	if (len == 0 || len > QIAO_STORE_MAX_NAME)
		return qs_fail(QIAO_EINVAL, "table name must have 1..%d bytes", QIAO_STORE_MAX_NAME);
	if (strncmp(name, "qiao.", 5) == 0)
		return qs_fail(QIAO_EINVAL, "table names starting with \"qiao.\" are reserved (%s)", name);
	if (s_wdepth)
		return qs_fail(QIAO_EINVAL,
			       "qiao_store_table: open tables before, not inside, a write transaction (%s)", name);

	pthread_mutex_lock(&st->tbl_mu);
	for (tb = st->tables; tb; tb = tb->next)
		if (strcmp(tb->name, name) == 0)
			break;
	if (tb) {
		rc = 0;
		if (tb->type != type)
			rc = qs_fail(QIAO_ESTORETYPE,
				     "store %s: table %s was created with record type %u, opened as type %u",
				     st->dir, name, (unsigned)tb->type, (unsigned)type);
		else
			*out = tb;
		pthread_mutex_unlock(&st->tbl_mu);
		return rc;
	}
	for (int tries = 0;; tries++) {
		qiao_txn_t *t;
		rc = qs_txn_begin(st, !st->read_only, &t);
		if (rc)
			break;
		rc = s_table_in_txn(st, t, name, type, &dbi);
		if (rc && !t->full) {
			qs_txn_end(t, 0);
			break;
		}
		rc = qs_txn_end(t, 1);
		if (rc != QIAO_ESTOREAGAIN || tries > 32)
			break;
	}
	if (rc == 0) {
		tb = malloc(sizeof *tb + len + 1);
		if (!tb) {
			rc = qs_fail(QIAO_ENOMEM, "out of memory");
		} else {
			tb->st = st;
			tb->dbi = dbi;
			tb->type = type;
			memcpy(tb->name, name, len + 1);
			tb->next = st->tables;
			st->tables = tb;
			*out = tb;
		}
	}
	pthread_mutex_unlock(&st->tbl_mu);
	return rc;
}

/* ------------------------------------------------------------------------
 * Backup
 */

static int s_dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

static int s_fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC), rc = 0;
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int qiao_store_backup(qiao_store_t *st, const char *dest)
{
	struct stat sb;
	char data[4096];
	int created = 0, rc = 0, mrc, tries = 0;

	if (!st || !dest || !*dest)
		return qs_fail(QIAO_EINVAL, "qiao_store_backup: NULL argument");
	if ((size_t)snprintf(data, sizeof data, "%s/data.mdb", dest) >= sizeof data)
		return qs_fail(QIAO_EINVAL, "backup path too long");
	if (stat(dest, &sb) == 0) {
		int e;
		if (!S_ISDIR(sb.st_mode))
			return qs_fail(QIAO_EEXIST, "backup destination %s exists and is not a directory", dest);
		e = s_dir_empty(dest);
		if (e < 0)
			return qs_fail(-errno, "backup destination %s: %s", dest, strerror(errno));
		if (!e)
			return qs_fail(QIAO_EEXIST, "backup destination %s exists and is not empty", dest);
	} else if (errno == ENOENT) {
		if (mkdir(dest, 0700) != 0)
			return qs_fail(-errno, "creating backup directory %s: %s", dest, strerror(errno));
		created = 1;
	} else {
		return qs_fail(-errno, "backup destination %s: %s", dest, strerror(errno));
	}

	for (;;) {
		/* The copy runs a read txn inside LMDB: hold the gate like one. */
		struct qs_holder *h = s_gate_enter(st);
		if (!h)
			mrc = ENOMEM;
		else if (st->broken)
			mrc = MDB_PANIC;
		else
			mrc = mdb_env_copy2(st->env, dest, MDB_CP_COMPACT);
		if (h)
			s_gate_leave(st, h);
		if (mrc == MDB_MAP_RESIZED && tries++ < 3) {
			unlink(data);
			rc = s_follow_resize(st);
			if (rc == 0)
				continue;
		} else if (mrc) {
			rc = qs_mdb_err(mrc, "copying the store");
		}
		break;
	}
	if (rc == 0) {
		chmod(data, 0600);
		rc = s_fsync_path(data, O_RDONLY);
		if (rc == 0)
			rc = s_fsync_path(dest, O_RDONLY | O_DIRECTORY);
		if (rc)
			qs_fail(rc, "syncing backup %s: %s", dest, strerror(-rc));
	}
	if (rc) {
		unlink(data);
		if (created)
			rmdir(dest);
	}
	return rc;
}
