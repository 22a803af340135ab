/*
 * store_int.h - what the store's .c files share.  Private to store/: this is
 * the only header that includes lmdb.h.
 */
#ifndef QIAO_STORE_INT_H
#define QIAO_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <sys/types.h>

#include "qiao_store.h"

struct qiao_table {
	qiao_store_t *st;
	MDB_dbi dbi;
	uint16_t type;
	struct qiao_table *next;
	char name[];
};

struct qiao_store {
	MDB_env *env;
	char *dir;
	int read_only;
	size_t max_map;     /* growth limit for puts */
	size_t reserve;     /* extra room deletions may use past max_map */
	size_t page;        /* OS page size; map sizes are multiples of it */
	unsigned max_tables;
	MDB_dbi meta;

	/*
	 * The resize gate.  mdb_env_set_mapsize() remaps the file, so no
	 * transaction of this process may be running.  Every top-level
	 * transaction holds the gate shared (`active`); a resize holds it
	 * exclusively (`resizing`).  While a resize waits (`waiting`), threads
	 * that hold no transaction are kept out so the resize is not starved;
	 * threads that already hold one are let in, so that a thread opening a
	 * second transaction cannot deadlock against a waiting resize.  (A
	 * pthread rwlock cannot express both: reader preference starves the
	 * resize, writer preference deadlocks the second, recursive, shared
	 * acquisition.)  `map_size` changes only under the exclusive gate, so
	 * it may be read by any holder of the shared gate.
	 */
	pthread_mutex_t gate_mu;
	pthread_cond_t gate_cv;
	unsigned active;
	unsigned waiting;
	int resizing;
	size_t map_size;
	unsigned grows;
	_Atomic uint64_t tick_txnid; /* txn id our last tick committed */

	pthread_mutex_t tbl_mu; /* table list and every mdb_dbi_open() */
	struct qiao_table *tables;
	int broken;             /* a failed remap left no usable map */

	pthread_mutex_t clock_mu;
	int64_t (*now_fn)(void *);
	void *now_arg;

	/* the process-wide registry of open stores */
	dev_t dev;
	ino_t ino;
	pid_t pid;
	struct qiao_store *reg_next;
};

struct qs_holder;

struct qiao_txn {
	qiao_store_t *st;
	MDB_txn *t;
	struct qs_holder *holder; /* the beginning thread's txn count (top-level) */
	struct qiao_txn *root; /* self for a top-level txn */
	unsigned write : 1;
	unsigned nested : 1;   /* the txn of a group-commit apply */
	unsigned full : 1;     /* ran out of map space: can only be aborted */
	unsigned did_put : 1;  /* made the tree grow (not only deletions) */
	unsigned borrowed : 1; /* handed to an apply: the caller may not end it */
	unsigned maint : 1;    /* a tick: may use the deletion reserve */
	int full_rc;           /* QIAO_ESTOREAGAIN or QIAO_ESTOREFULL once full */
	size_t map_at_begin;
};

/* Record the thread's error sentence and return rc. */
int qs_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Map an LMDB/errno code to a Qiao code, recording "<what>: <lmdb text>". */
int qs_mdb_err(int mrc, const char *what);

/* Begin a top-level txn (the work behind qiao_txn_begin). */
int qs_txn_begin(qiao_store_t *st, int write, qiao_txn_t **out);
/*
 * End a top-level txn: commit when `commit` and the txn is usable, else
 * abort.  If the txn ran out of map space, grow the map after ending it and
 * return QIAO_ESTOREAGAIN (grown: run it again) or QIAO_ESTOREFULL.  Frees t.
 */
int qs_txn_end(qiao_txn_t *t, int commit);
/* A nested write txn under `parent` (a top-level write txn), for one apply. */
int qs_txn_child(qiao_txn_t *parent, qiao_txn_t **out);
/* Commit (merge into the parent) or abort a child; frees it. */
int qs_txn_child_end(qiao_txn_t *c, int commit);

/* Key and size checks shared by the direct and group-commit paths. */
int qs_check_put(qiao_table_t *tbl, const void *key, size_t klen,
		 const void *val, size_t vlen, int64_t expires_at_ms);
int qs_check_key(qiao_table_t *tbl, const void *key, size_t klen);

/*
 * Mark t's top-level txn as out of map space; returns (and records the
 * sentence of) QIAO_ESTOREAGAIN when ending the txn will grow the map, or
 * QIAO_ESTOREFULL when it cannot.
 */
int qs_full_rc(qiao_txn_t *t);

#endif
