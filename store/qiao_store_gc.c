/*
 * qiao_store_gc.c - the group-commit writer.
 *
 * Submitters append operations to a bounded FIFO; one writer thread takes
 * everything queued (up to max_batch), applies every operation in one write
 * transaction, commits once (one fsync for the whole batch), then calls the
 * done callbacks in order.  If an apply fails, the batch is run again with
 * each apply in a nested transaction of its own, so that only the failed
 * one's changes are undone.
 *
 * When the batch runs out of map space, the map is grown and the whole batch
 * re-applied.  When the map is at its maximum, the batch is re-run one
 * operation per transaction, so that what still fits is committed and only
 * the operations that do not fit get QIAO_ESTOREFULL.
 */
#include "store_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define DEF_MAX_QUEUE 65536
#define DEF_MAX_BATCH 4096
#define MAX_ATTEMPTS 64
/* s_batch_once: an apply failed, run the batch again with nested txns */
#define RERUN_NESTED 2

struct gc_op {
	struct gc_op *next;
	qiao_gc_apply_fn apply;
	void *apply_arg;
	qiao_gc_done_fn done;
	void *done_arg;
	int rc;
	/* qiao_gc_put / qiao_gc_del: key then value, copied */
	qiao_table_t *tbl;
	size_t klen, vlen;
	int64_t expires;
	unsigned char data[];
};

struct qiao_gc {
	qiao_store_t *st;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv_work;  /* writer waits for operations */
	pthread_cond_t cv_done;  /* flush waits for progress */
	struct gc_op *head, *tail;
	size_t queued, max_queue, max_batch;
	int stopping;
	uint64_t submitted, finished;
	struct qiao_gc_stats stats;
};

static void s_reset(struct gc_op *ops)
{
	for (struct gc_op *op = ops; op; op = op->next)
		op->rc = 0;
}

/*
 * All operations in one write transaction.  Returns 1 when committed,
 * 0 when the ops carry their final rc without a commit, QIAO_ESTOREAGAIN
 * when the map grew and the batch should run again, QIAO_ESTOREFULL when it
 * is at the maximum, RERUN_NESTED (!nested only) when an apply failed and
 * the batch must run again with nested transactions.
 *
 * Why not always nested: LMDB allocates about 3 MiB for every nested
 * transaction and merges its dirty pages into the parent's at each commit,
 * a cost that grows with the batch.  Applies rarely fail, so a batch runs
 * plain first and pays for isolation only when one does.
 */
static int s_batch_once(qiao_store_t *st, struct gc_op *ops, int nested)
{
	qiao_txn_t *root;
	int rc;

	s_reset(ops);
	rc = qs_txn_begin(st, 1, &root);
	if (rc) {
		for (struct gc_op *op = ops; op; op = op->next)
			op->rc = rc;
		return 0;
	}
	if (!nested) {
		root->borrowed = 1;
		for (struct gc_op *op = ops; op && !root->full; op = op->next) {
			op->rc = op->apply(root, op->apply_arg);
			if (op->rc && !root->full) {
				root->borrowed = 0;
				qs_txn_end(root, 0);
				return RERUN_NESTED;
			}
		}
		root->borrowed = 0;
	}
	for (struct gc_op *op = nested ? ops : NULL; op && !root->full; op = op->next) {
		qiao_txn_t *c;
		int arc = qs_txn_child(root, &c);
		if (arc) {
			op->rc = arc;
			continue;
		}
		arc = op->apply(c, op->apply_arg);
		if (root->full) {
			qs_txn_child_end(c, 0);
			break;
		}
		if (arc == 0)
			arc = qs_txn_child_end(c, 1);
		else
			qs_txn_child_end(c, 0);
		op->rc = arc;
	}
	if (root->full) {
		rc = qs_txn_end(root, 0);
		return rc == QIAO_ESTOREAGAIN ? rc : QIAO_ESTOREFULL;
	}
	rc = qs_txn_end(root, 1);
	if (rc == 0)
		return 1;
	if (rc == QIAO_ESTOREAGAIN || rc == QIAO_ESTOREFULL)
		return rc;
	/* The commit failed (I/O error, ...): nothing of the batch is stored. */
	for (struct gc_op *op = ops; op; op = op->next)
		if (op->rc == 0)
			op->rc = rc;
	return 0;
}

/* One operation in its own transaction; returns the number of commits. */
static unsigned s_single(qiao_store_t *st, struct gc_op *op, uint64_t *retries)
{
	for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
		qiao_txn_t *t;
		int arc, rc = qs_txn_begin(st, 1, &t);
		if (rc) {
			op->rc = rc;
			return 0;
		}
		t->borrowed = 1;
		arc = op->apply(t, op->apply_arg);
		t->borrowed = 0;
		if (t->full) {
			rc = qs_txn_end(t, 0);
		} else if (arc) {
			qs_txn_end(t, 0);
			op->rc = arc;
			return 0;
		} else {
			rc = qs_txn_end(t, 1);
		}
		if (rc == QIAO_ESTOREAGAIN) {
			(*retries)++;
			continue;
		}
		op->rc = rc;
		return rc == 0;
	}
	op->rc = QIAO_ESTOREFULL;
	return 0;
}

static void s_run_batch(qiao_gc_t *gc, struct gc_op *ops, uint64_t *commits, uint64_t *retries)
{
	int nested = 0;
	for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
		int r = s_batch_once(gc->st, ops, nested);
		if (r == 1) {
			(*commits)++;
			return;
		}
		if (r == 0)
			return;
		if (r == QIAO_ESTOREFULL)
			break;
		if (r == RERUN_NESTED)
			nested = 1;
		else
			(*retries)++;
	}
	/* At the maximum size: commit what still fits, one by one. */
	for (struct gc_op *op = ops; op; op = op->next) {
		op->rc = 0;
		*commits += s_single(gc->st, op, retries);
	}
}

static void *s_writer(void *arg)
{
	qiao_gc_t *gc = arg;

	pthread_mutex_lock(&gc->mu);
	for (;;) {
		struct gc_op *first, *last;
		size_t n = 1;
		uint64_t commits = 0, retries = 0, failed = 0;

		while (!gc->head && !gc->stopping)
			pthread_cond_wait(&gc->cv_work, &gc->mu);
		if (!gc->head)
			break;
		first = last = gc->head;
		while (last->next && n < gc->max_batch) {
			last = last->next;
			n++;
		}
		gc->head = last->next;
		if (!gc->head)
			gc->tail = NULL;
		last->next = NULL;
		gc->queued -= n;
		pthread_mutex_unlock(&gc->mu);

		s_run_batch(gc, first, &commits, &retries);
		while (first) {
			struct gc_op *next = first->next;
			if (first->rc)
				failed++;
			if (first->done)
				first->done(first->done_arg, first->rc);
			free(first);
			first = next;
		}

		pthread_mutex_lock(&gc->mu);
		gc->stats.batches += commits;
		gc->stats.retries += retries;
		gc->stats.ops += n;
		gc->stats.failed_ops += failed;
		gc->stats.last_batch = n;
		if (n > gc->stats.max_batch_seen)
			gc->stats.max_batch_seen = n;
		gc->finished += n;
		pthread_cond_broadcast(&gc->cv_done);
	}
	pthread_mutex_unlock(&gc->mu);
	return NULL;
}

int qiao_gc_new(qiao_store_t *st, const struct qiao_gc_opts *opts, qiao_gc_t **out)
{
	qiao_gc_t *gc;
	sigset_t all, old;
	int e;

	if (!out)
		return qs_fail(QIAO_EINVAL, "qiao_gc_new: NULL out");
	*out = NULL;
	if (!st)
		return qs_fail(QIAO_EINVAL, "qiao_gc_new: NULL store");
	if (st->read_only)
		return qs_fail(QIAO_EINVAL, "store %s is open read-only", st->dir);
	gc = calloc(1, sizeof *gc);
	if (!gc)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	gc->st = st;
	gc->max_queue = opts && opts->max_queue ? opts->max_queue : DEF_MAX_QUEUE;
	gc->max_batch = opts && opts->max_batch ? opts->max_batch : DEF_MAX_BATCH;
	pthread_mutex_init(&gc->mu, NULL);
	pthread_cond_init(&gc->cv_work, NULL);
	pthread_cond_init(&gc->cv_done, NULL);
	/* Signals belong to the main loop: the writer thread blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&gc->thr, NULL, s_writer, gc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		pthread_cond_destroy(&gc->cv_done);
		pthread_cond_destroy(&gc->cv_work);
		pthread_mutex_destroy(&gc->mu);
		free(gc);
		return qs_fail(-e, "starting the group-commit writer: %s", strerror(e));
	}
	*out = gc;
	return 0;
}

static int s_enqueue(qiao_gc_t *gc, struct gc_op *op)
{
	int rc = 0;
	pthread_mutex_lock(&gc->mu);
	if (gc->stopping) {
		rc = qs_fail(QIAO_ECLOSED, "group-commit writer is shutting down");
	} else if (gc->queued >= gc->max_queue) {
		rc = qs_fail(QIAO_ESTOREBUSY, "group-commit queue is full (%zu operations)", gc->max_queue);
	} else {
		op->next = NULL;
		if (gc->tail)
			gc->tail->next = op;
		else
			gc->head = op;
		gc->tail = op;
		gc->queued++;
		gc->submitted++;
		pthread_cond_signal(&gc->cv_work);
	}
	pthread_mutex_unlock(&gc->mu);
	return rc;
}

int qiao_gc_submit(qiao_gc_t *gc, qiao_gc_apply_fn apply, void *apply_arg,
		   qiao_gc_done_fn done, void *done_arg)
{
	struct gc_op *op;
	int rc;

	if (!gc || !apply)
		return qs_fail(QIAO_EINVAL, "qiao_gc_submit: NULL argument");
	op = calloc(1, sizeof *op);
	if (!op)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	op->apply = apply;
	op->apply_arg = apply_arg;
	op->done = done;
	op->done_arg = done_arg;
	rc = s_enqueue(gc, op);
	if (rc)
		free(op);
	return rc;
}

static int s_put_apply(qiao_txn_t *txn, void *arg)
{
	struct gc_op *op = arg;
	return qiao_store_put(txn, op->tbl, op->data, op->klen, op->data + op->klen, op->vlen,
			      op->expires);
}

static int s_del_apply(qiao_txn_t *txn, void *arg)
{
	struct gc_op *op = arg;
	return qiao_store_del(txn, op->tbl, op->data, op->klen);
}

static int s_submit_copy(qiao_gc_t *gc, qiao_gc_apply_fn apply, qiao_table_t *tbl,
			 const void *key, size_t klen, const void *val, size_t vlen,
			 int64_t expires, qiao_gc_done_fn done, void *done_arg)
{
	struct gc_op *op;
	int rc;

	if (!gc)
		return qs_fail(QIAO_EINVAL, "NULL group-commit writer");
	if (tbl && tbl->st != gc->st)
		return qs_fail(QIAO_EINVAL, "table %s belongs to another store", tbl->name);
	rc = apply == s_put_apply ? qs_check_put(tbl, key, klen, val, vlen, expires)
				  : qs_check_key(tbl, key, klen);
	if (rc)
		return rc;
	op = malloc(sizeof *op + klen + vlen);
	if (!op)
		return qs_fail(QIAO_ENOMEM, "out of memory");
	memset(op, 0, sizeof *op);
	op->apply = apply;
	op->apply_arg = op;
	op->done = done;
	op->done_arg = done_arg;
	op->tbl = tbl;
	op->klen = klen;
	op->vlen = vlen;
	op->expires = expires;
	memcpy(op->data, key, klen);
	if (vlen)
		memcpy(op->data + klen, val, vlen);
	rc = s_enqueue(gc, op);
	if (rc)
		free(op);
	return rc;
}

int qiao_gc_put(qiao_gc_t *gc, qiao_table_t *tbl, const void *key, size_t klen,
		const void *val, size_t vlen, int64_t expires_at_ms,
		qiao_gc_done_fn done, void *done_arg)
{
	return s_submit_copy(gc, s_put_apply, tbl, key, klen, val, vlen, expires_at_ms, done, done_arg);
}

int qiao_gc_del(qiao_gc_t *gc, qiao_table_t *tbl, const void *key, size_t klen,
		qiao_gc_done_fn done, void *done_arg)
{
	return s_submit_copy(gc, s_del_apply, tbl, key, klen, NULL, 0, 0, done, done_arg);
}

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, rc;
};

static void s_wake(void *arg, int rc)
{
	struct waiter *w = arg;
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int qiao_gc_sync_put(qiao_gc_t *gc, qiao_table_t *tbl, const void *key,
		     size_t klen, const void *val, size_t vlen,
		     int64_t expires_at_ms)
{
	struct waiter w = {.done = 0};
	int rc;

	if (!gc)
		return qs_fail(QIAO_EINVAL, "NULL group-commit writer");
	if (pthread_equal(pthread_self(), gc->thr))
		return qs_fail(QIAO_EINVAL, "qiao_gc_sync_put from the writer thread would deadlock");
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	rc = qiao_gc_put(gc, tbl, key, klen, val, vlen, expires_at_ms, s_wake, &w);
	if (rc == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		rc = w.rc;
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return rc;
}

int qiao_gc_flush(qiao_gc_t *gc)
{
	uint64_t target;

	if (!gc)
		return qs_fail(QIAO_EINVAL, "NULL group-commit writer");
	if (pthread_equal(pthread_self(), gc->thr))
		return qs_fail(QIAO_EINVAL, "qiao_gc_flush from the writer thread would deadlock");
	pthread_mutex_lock(&gc->mu);
	target = gc->submitted;
	while (gc->finished < target)
		pthread_cond_wait(&gc->cv_done, &gc->mu);
	pthread_mutex_unlock(&gc->mu);
	return 0;
}

void qiao_gc_stats(qiao_gc_t *gc, struct qiao_gc_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!gc)
		return;
	pthread_mutex_lock(&gc->mu);
	*out = gc->stats;
	out->queued = gc->queued;
	pthread_mutex_unlock(&gc->mu);
}

void qiao_gc_destroy(qiao_gc_t **gcp)
{
	qiao_gc_t *gc;

	if (!gcp || !*gcp)
		return;
	gc = *gcp;
	*gcp = NULL;
	pthread_mutex_lock(&gc->mu);
	gc->stopping = 1;
	pthread_cond_broadcast(&gc->cv_work);
	pthread_mutex_unlock(&gc->mu);
	pthread_join(gc->thr, NULL);
	pthread_cond_destroy(&gc->cv_done);
	pthread_cond_destroy(&gc->cv_work);
	pthread_mutex_destroy(&gc->mu);
	free(gc);
}
