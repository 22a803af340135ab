/*
 * qiao_store.h - the LMDB layer every Qiao component uses.
 *
 * One store is one LMDB environment (a directory holding data.mdb and
 * lock.mdb) with many named tables.  Every value is a typed record: a 16-byte
 * header (record type, flags, expiry) followed by the caller's payload.
 * Callers see only opaque handles and (const void *, size_t) pairs; nothing
 * outside store/ includes lmdb.h.
 *
 * Errors.  Every function that can fail returns 0 or a negative code from
 * qiao_err.h (qiao_strerror() names them).  A failing call also leaves a
 * human-readable sentence on the calling thread, qiao_store_last_error(),
 * e.g. "store /var/lib/qiao was written by format 7; this build reads format 1".
 *
 * Threads.  A store handle, its table handles and a group-commit writer may
 * be used from any number of threads.  A transaction may be used by one
 * thread at a time.  A read transaction may move between threads (the
 * environment is opened with MDB_NOTLS); a write transaction must be ended
 * on the thread that began it (LMDB's writer lock is a mutex).  One thread
 * may hold several read transactions but at most one write transaction; a
 * second write begin on the same thread fails with QIAO_EINVAL instead of
 * deadlocking.
 *
 * Processes.  Other processes (the qiao CLI) may open the same directory
 * read-only while the gateway writes.  Opening one directory twice in the
 * SAME process is refused (QIAO_EEXIST): LMDB forbids it, because closing the
 * second handle would drop the first one's file locks.
 *
 * Map size.  LMDB maps the file into memory at a fixed size.  The store starts
 * at opts.initial_map_size and doubles the map, up to opts.max_map_size, when
 * a write transaction runs out of space.  Resizing needs every transaction of
 * this process to be finished, so a resize waits (at most 5 s) for open
 * transactions; keep transactions short, and never wait on the group-commit
 * writer while holding a transaction.  A thread whose write transaction runs
 * out of space while the same thread still holds a read transaction gets
 * QIAO_ESTOREFULL at once (it would wait for itself): end the reader first.  A transaction that runs out of space
 * reports QIAO_ESTOREAGAIN (the map will grow when the transaction ends:
 * abort it and run it again) or QIAO_ESTOREFULL (the maximum is reached).
 * qiao_store_write() and the group-commit writer do the re-run for you.
 * Deletions must be possible in a full store too: a transaction that only
 * deletes may grow the map past max_map_size into a reserve of 1/8 of it (at
 * least 256 KiB, at most 1 GiB); after it commits the map is brought back to
 * max_map_size (or to the end of the data, if that lies beyond), so puts
 * never use the reserve.  The reserve holds a modest deletion, not any: in a
 * full store delete in small transactions (contiguous key ranges are
 * cheapest; qiao_store_sweep_expired() adapts by itself).  LMDB reuses a page
 * freed by transaction t only from transaction t+2 on, so right after a
 * delete a put may still find the map full: the store then commits a tiny
 * "tick" to the meta table and reports QIAO_ESTOREAGAIN, and the re-run put
 * uses the freed pages.
 *
 * On-disk format 1 (QIAO_STORE_FORMAT), for tools and for the record:
 *  - table "qiao.meta" (reserved; names starting with "qiao." are refused):
 *      "format"      -> u32 little-endian, the format number;
 *      "t/<name>"    -> u16 little-endian, the record type table <name> was
 *                       created with.
 *      "tick"        -> u64, internal (see "Map size" above).
 *  - every value of a user table: u16 LE record type, u16 LE flags (0),
 *    u32 LE reserved (0), i64 LE expires_at_ms (0 = never, else Unix time in
 *    milliseconds), then the payload.  Keys are the caller's bytes, ordered
 *    by memcmp (shorter first on a common prefix): encode numbers and times
 *    big-endian so that key order is numeric order.
 */
#ifndef QIAO_STORE_H
#define QIAO_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "qiao_err.h"

/* The on-disk format this build reads and writes. */
#define QIAO_STORE_FORMAT 1
/* Bytes of the record header in front of every payload. */
#define QIAO_STORE_REC_HDR 16
/* Longest key accepted (LMDB's compiled-in limit). */
#define QIAO_STORE_MAX_KEY 511
/* Longest table name accepted. */
#define QIAO_STORE_MAX_NAME 200

typedef struct qiao_store qiao_store_t;
typedef struct qiao_table qiao_table_t;
typedef struct qiao_txn qiao_txn_t;
typedef struct qiao_gc qiao_gc_t;

/* Open options.  A zero field takes its default, so
 * `struct qiao_store_opts o = {0}; o.read_only = 1;` is a valid set. */
struct qiao_store_opts {
	size_t initial_map_size; /* first map size of a new store; 64 MiB */
	size_t max_map_size;     /* growth stops here; 16 GiB */
	unsigned max_tables;     /* named tables, not counting qiao.meta; 64 */
	unsigned max_readers;    /* concurrent read txns, all processes; 256.
	                          * Fixed by whichever process creates lock.mdb. */
	int read_only;           /* 1: never writes, never creates (CLI readers) */
};

/* ---------------------------------------------------------------------------
 * Environment
 */

/*
 * qiao_store_open - open (or, unless read-only, create) the store in `dir`.
 *
 * A missing `dir` is created with mode 0700 (its parent must exist); files are
 * created 0600.  A new store gets the format record; an existing one must carry
 * format QIAO_STORE_FORMAT.  `opts` may be NULL (all defaults).  On success
 * *out owns the store until qiao_store_close().
 * Errors: QIAO_EINVAL (NULL argument, bad option), QIAO_EEXIST (already open
 * in this process), QIAO_ENOTFOUND (read-only and there is no initialised
 * store in dir), QIAO_ESTOREFORMAT (another format version, or not a Qiao
 * store), QIAO_ESTORECORRUPT, QIAO_ENOMEM, -errno (mkdir, permissions),
 * QIAO_ESTORE.  On failure *out is NULL; qiao_store_last_error() says why.
 */
int qiao_store_open(qiao_store_t **out, const char *dir,
		    const struct qiao_store_opts *opts);

/*
 * qiao_store_close - close the store and set *st to NULL.  Safe on NULL and
 * twice.  Every transaction must be ended and every group-commit writer on
 * the store destroyed before; table handles become invalid.
 */
void qiao_store_close(qiao_store_t **st);

/*
 * qiao_store_last_error - a sentence describing the most recent failure of a
 * qiao_store / qiao_txn / qiao_gc call on the calling thread (including a
 * failed qiao_store_open, which has no handle to ask).  Thread-local storage
 * owned by the store layer: valid until the next failing store call on this
 * thread.  "" when nothing failed yet.  Group-commit `done` callbacks only get
 * the code; the sentence stays on the writer thread.
 */
const char *qiao_store_last_error(void);

/*
 * qiao_store_set_clock - make `now_ms(arg)` the store's notion of "now" (Unix
 * time in milliseconds) for expiry; NULL restores the real clock
 * (CLOCK_REALTIME).  For tests and replays.  Thread-safe; `now_ms` must be.
 */
void qiao_store_set_clock(qiao_store_t *st, int64_t (*now_ms)(void *arg),
			  void *arg);

/* qiao_store_now_ms - the store clock's current time in milliseconds. */
int64_t qiao_store_now_ms(qiao_store_t *st);

/* What qiao_store_info() reports. */
struct qiao_store_info {
	size_t map_size;     /* current map size in this process */
	size_t max_map_size; /* configured growth limit for puts */
	size_t used_bytes;   /* high-water mark of the data file */
	size_t page_size;
	uint64_t last_txnid; /* id of the last committed write transaction */
	unsigned max_readers;
	unsigned readers;    /* reader slots in use, all processes */
	unsigned grows;      /* map resizes done by this handle */
	int read_only;
};

/* qiao_store_info - fill *info.  Errors: QIAO_EINVAL, QIAO_ESTORE. */
int qiao_store_info(qiao_store_t *st, struct qiao_store_info *info);

/* ---------------------------------------------------------------------------
 * Tables
 */

/*
 * qiao_store_table - the handle of table `name` (1..QIAO_STORE_MAX_NAME bytes,
 * not starting with "qiao."), whose records all have record type `type`.
 *
 * Creates the table and records its type when missing (not in read-only
 * mode).  Call it at startup, before beginning the transactions that use the
 * table, and never while this thread holds a write transaction (in particular
 * not inside a group-commit apply): a transaction begun before the table was
 * first opened in this process cannot see it (QIAO_EINVAL).
 * *out is owned by the store and valid until qiao_store_close(); asking again
 * returns the same handle.
 * Errors: QIAO_EINVAL, QIAO_ENOTFOUND (read-only and no such table),
 * QIAO_ESTORETYPE (the table was created with another type),
 * QIAO_ESTORELIMIT (opts.max_tables reached), QIAO_ESTOREFULL, QIAO_ENOMEM,
 * QIAO_ESTORE.
 */
int qiao_store_table(qiao_store_t *st, const char *name, uint16_t type,
		     qiao_table_t **out);

/* The table's name (owned by the store) and declared record type. */
const char *qiao_table_name(const qiao_table_t *tbl);
uint16_t qiao_table_type(const qiao_table_t *tbl);

/* ---------------------------------------------------------------------------
 * Transactions
 */

/*
 * qiao_txn_begin - begin a read (write = 0) or write (write != 0) transaction.
 *
 * A read transaction sees a consistent snapshot and never blocks writers.  A
 * write transaction excludes other writers, in this and other processes,
 * until it ends (the group-commit writer included): keep it short.  *out
 * belongs to the caller until qiao_txn_commit() or qiao_txn_abort().
 * Errors: QIAO_EINVAL (write on a read-only store, or this thread already
 * holds a write transaction), QIAO_ESTOREBUSY (all reader slots in use, or a
 * resize by another process cannot be followed while this thread holds
 * another transaction), QIAO_ENOMEM, QIAO_ESTORE.
 */
int qiao_txn_begin(qiao_store_t *st, int write, qiao_txn_t **out);

/*
 * qiao_txn_commit - commit and free *txn, setting *txn to NULL, whether it
 * succeeds or not.  A write commit returns after the data is durable (fsync).
 * Committing a read transaction just ends it.
 * Errors: QIAO_ESTOREAGAIN (the transaction ran out of map space; nothing was
 * written; the map has been grown: run the transaction again),
 * QIAO_ESTOREFULL (out of space at the maximum size; nothing was written),
 * QIAO_ESTORELIMIT (transaction too large), -EIO / -ENOSPC and other -errno,
 * QIAO_EINVAL (NULL, or the transaction of a group-commit apply, which the
 * writer ends itself), QIAO_ESTORE.
 */
int qiao_txn_commit(qiao_txn_t **txn);

/*
 * qiao_txn_abort - discard and free *txn, set *txn to NULL.  Safe on NULL and
 * twice.  If the transaction ran out of map space, the map is grown here
 * (this may wait for other transactions of this process to end).  Ignored for
 * the transaction handed to a group-commit apply.
 */
void qiao_txn_abort(qiao_txn_t **txn);

/*
 * qiao_store_write - run fn(txn, arg) in a write transaction and commit it
 * durably; when the transaction runs out of map space, grow the map and run
 * fn again in a fresh transaction (so fn must keep its effects inside the
 * transaction, or tolerate being re-run).  A non-zero return from fn aborts
 * the transaction and is returned.
 * Errors: fn's code, QIAO_ESTOREFULL (maximum size reached), and those of
 * qiao_txn_begin() / qiao_txn_commit().
 */
int qiao_store_write(qiao_store_t *st, int (*fn)(qiao_txn_t *txn, void *arg),
		     void *arg);

/* ---------------------------------------------------------------------------
 * Records.  Keys are 1..QIAO_STORE_MAX_KEY bytes.  `expires_at_ms` is a Unix
 * time in milliseconds; 0 means never.  A record whose expires_at_ms <= now
 * (the store clock) reads as absent and is removed by the next sweep.
 */

/*
 * qiao_store_put - store `val` under `key` in a write transaction, replacing
 * any record there.  `val` may be NULL when vlen is 0.  The bytes are copied.
 * Errors: QIAO_EINVAL (read txn, bad key, negative expiry, table of another
 * store or opened after the txn began), QIAO_ETOOBIG (key too long, value
 * over 2 GiB), QIAO_ESTOREAGAIN / QIAO_ESTOREFULL (out of map space: the
 * transaction is now unusable, abort it; see qiao_txn_commit()),
 * QIAO_ESTORELIMIT, QIAO_ESTORE.
 */
int qiao_store_put(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen, const void *val, size_t vlen,
		   int64_t expires_at_ms);

/*
 * qiao_store_insert - like qiao_store_put(), but fails with QIAO_EEXIST when
 * a live (not expired) record is stored under `key`.  An expired one is
 * replaced.  For "seen before?" tables (replay windows).
 */
int qiao_store_insert(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		      size_t klen, const void *val, size_t vlen,
		      int64_t expires_at_ms);

/*
 * qiao_store_get - look `key` up.  On success *val (when val is not NULL)
 * receives a malloc'd copy of the payload, which the caller frees with free();
 * it stays valid after the transaction ends.  A zero-length payload still
 * gives a non-NULL pointer.  vlen and expires_at_ms may be NULL.
 * Errors: QIAO_ENOTFOUND (absent or expired), QIAO_ESTORETYPE (the record's
 * type differs from the table's), QIAO_ESTORECORRUPT (value shorter than the
 * header), QIAO_EINVAL, QIAO_ENOMEM, QIAO_ESTORE.  On failure *val is NULL
 * and *vlen 0.
 */
int qiao_store_get(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen, void **val, size_t *vlen, int64_t *expires_at_ms);

/*
 * qiao_store_del - remove the record under `key` (expired or not).
 * Errors: QIAO_ENOTFOUND (no record at all), QIAO_EINVAL, QIAO_ESTOREAGAIN /
 * QIAO_ESTOREFULL (as for put), QIAO_ESTORE.
 */
int qiao_store_del(qiao_txn_t *txn, qiao_table_t *tbl, const void *key,
		   size_t klen);

/*
 * The iteration callback.  `k` and `v` (the payload, without header) are
 * borrowed from the map: valid only during this call; copy what you keep.
 * Return 0 to go on; any other value stops the iteration and is returned by
 * the iteration function.  The callback may read through the same
 * transaction but must not modify the table being iterated.
 */
typedef int (*qiao_store_iter_fn)(void *arg, const void *k, size_t kl,
				  const void *v, size_t vl, int64_t expires_at_ms);

/*
 * qiao_store_iter_prefix - call cb for every live record whose key starts
 * with `prefix` (all records when plen is 0), in key order.
 * Returns 0 at the end, the callback's non-zero value, or an error:
 * QIAO_ESTORETYPE / QIAO_ESTORECORRUPT when a record in the range is bad (the
 * iteration stops there), QIAO_EINVAL, QIAO_ESTORE.
 */
int qiao_store_iter_prefix(qiao_txn_t *txn, qiao_table_t *tbl,
			   const void *prefix, size_t plen,
			   qiao_store_iter_fn cb, void *arg);

/*
 * qiao_store_iter_range - call cb for every live record with
 * start <= key < end, in ascending key order.  start == NULL (or slen 0)
 * means from the first key; end == NULL means to the last.  Returns as
 * qiao_store_iter_prefix().  Seeking is O(log n): cheap for time ranges over
 * big-endian timestamp keys.
 */
int qiao_store_iter_range(qiao_txn_t *txn, qiao_table_t *tbl,
			  const void *start, size_t slen,
			  const void *end, size_t elen,
			  qiao_store_iter_fn cb, void *arg);

/* qiao_store_iter_range_rev - the same records as qiao_store_iter_range(), in
 * descending key order (newest first for timestamp keys). */
int qiao_store_iter_range_rev(qiao_txn_t *txn, qiao_table_t *tbl,
			      const void *start, size_t slen,
			      const void *end, size_t elen,
			      qiao_store_iter_fn cb, void *arg);

/*
 * qiao_store_count - number of records stored in the table, in O(1),
 * INCLUDING expired records not yet swept.  Errors: QIAO_EINVAL, QIAO_ESTORE.
 */
int qiao_store_count(qiao_txn_t *txn, qiao_table_t *tbl, uint64_t *n);

/*
 * qiao_store_sweep_expired - delete records with expires_at_ms <= now_ms
 * (now_ms 0: the store clock), at most `max` of them (0: no limit), in write
 * transactions of at most 1024 deletions each, so that writers are not held
 * up (fewer per transaction when the store is full).  *removed (may be NULL) gets the number deleted, also on failure.  The
 * scan reads the whole table: run it from a timer, not per request.  Records
 * that fail to decode are left alone.  Must not be called while this thread
 * holds a write transaction.
 * Errors: QIAO_EINVAL, QIAO_ESTOREFULL, and those of qiao_txn_begin/commit.
 */
int qiao_store_sweep_expired(qiao_store_t *st, qiao_table_t *tbl,
			     int64_t now_ms, size_t max, size_t *removed);

/*
 * qiao_store_backup - write a compacted, consistent copy of the store (as of
 * one committed transaction) into `dest_dir`, while the store stays in use.
 * dest_dir is created (0700) when missing; an existing dest_dir must be an
 * empty directory.  The copy is fsync'ed and opens with qiao_store_open().
 * On failure nothing is left behind in dest_dir.
 * Errors: QIAO_EINVAL, QIAO_EEXIST (dest_dir is not empty or not a
 * directory), -errno (mkdir, disk full), QIAO_ESTORE.
 */
int qiao_store_backup(qiao_store_t *st, const char *dest_dir);

/* ---------------------------------------------------------------------------
 * Group commit: one writer thread turns many small writes into few durable
 * commits.  Operations are applied in submission order.
 */

/* Group-commit options; zero fields take defaults. */
struct qiao_gc_opts {
	size_t max_queue; /* operations waiting at most; 65536 */
	size_t max_batch; /* operations in one commit at most; 4096 */
};

struct qiao_gc_stats {
	uint64_t batches;      /* durable commits made */
	uint64_t ops;          /* operations finished (done called) */
	uint64_t failed_ops;   /* ... of which with rc != 0 */
	uint64_t retries;      /* batches run again after the map grew */
	size_t last_batch;     /* operations in the most recent batch */
	size_t max_batch_seen; /* largest batch so far */
	size_t queued;         /* operations waiting now */
};

/*
 * apply runs on the writer thread inside the batch's write transaction.
 * Returning non-zero (or failing in a store call) undoes only this
 * operation's changes, and that code reaches its done: the batch is then run
 * again with every apply in a nested transaction of its own (nested
 * transactions cost LMDB ~3 MiB of allocation each, so a batch runs without
 * them until an apply fails).
 * It may call qiao_store_get, _put, _insert, _del, _iter_... and _count on
 * `txn` (so it can read and assign sequence numbers inside the commit), must
 * not commit or
 * abort it, must not begin write transactions or open tables, and must not
 * block on the group-commit writer.  It may run more than once for one
 * operation (when its batch is re-run after the map grew or after another
 * apply failed): keep its effects inside `txn`.
 */
typedef int (*qiao_gc_apply_fn)(qiao_txn_t *txn, void *arg);

/*
 * done runs on the writer thread exactly once per accepted operation, after
 * the batch holding it was durably committed (rc 0) or with the failure (rc
 * from apply, QIAO_ESTOREFULL, -EIO, ...).  It must be quick and must not
 * call qiao_gc_sync_put/flush/destroy on the same writer; it may submit.
 */
typedef void (*qiao_gc_done_fn)(void *arg, int rc);

/*
 * qiao_gc_new - start a writer thread on `st` (not read-only).  `opts` may be
 * NULL.  *out belongs to the caller until qiao_gc_destroy().
 * Errors: QIAO_EINVAL, QIAO_ENOMEM, -errno (thread creation).
 */
int qiao_gc_new(qiao_store_t *st, const struct qiao_gc_opts *opts,
		qiao_gc_t **out);

/*
 * qiao_gc_submit - queue an operation.  `done` may be NULL.  The arguments
 * are not copied: apply_arg and done_arg must stay valid until done runs.
 * Errors: QIAO_ESTOREBUSY (max_queue operations already waiting; nothing
 * queued), QIAO_ECLOSED (writer is being destroyed), QIAO_EINVAL,
 * QIAO_ENOMEM.  On error neither callback will be called.
 */
int qiao_gc_submit(qiao_gc_t *gc, qiao_gc_apply_fn apply, void *apply_arg,
		   qiao_gc_done_fn done, void *done_arg);

/* qiao_gc_put - queue a put; key and value are copied at once, so the
 * caller's buffers may be reused on return.  Errors as qiao_gc_submit() plus
 * the argument checks of qiao_store_put(). */
int qiao_gc_put(qiao_gc_t *gc, qiao_table_t *tbl, const void *key, size_t klen,
		const void *val, size_t vlen, int64_t expires_at_ms,
		qiao_gc_done_fn done, void *done_arg);

/* qiao_gc_del - queue a delete (key copied).  done gets QIAO_ENOTFOUND when
 * there was no record. */
int qiao_gc_del(qiao_gc_t *gc, qiao_table_t *tbl, const void *key, size_t klen,
		qiao_gc_done_fn done, void *done_arg);

/* qiao_gc_sync_put - qiao_gc_put() and wait until it is durable; returns its
 * outcome.  Not from the writer thread (QIAO_EINVAL). */
int qiao_gc_sync_put(qiao_gc_t *gc, qiao_table_t *tbl, const void *key,
		     size_t klen, const void *val, size_t vlen,
		     int64_t expires_at_ms);

/* qiao_gc_flush - wait until every operation submitted before the call has
 * finished and its done returned.  Not from the writer thread (QIAO_EINVAL). */
int qiao_gc_flush(qiao_gc_t *gc);

/* qiao_gc_stats - a consistent snapshot of the counters. */
void qiao_gc_stats(qiao_gc_t *gc, struct qiao_gc_stats *out);

/*
 * qiao_gc_destroy - stop accepting operations, finish everything already
 * queued (every done is called), join the thread, free, set *gc to NULL.
 * Safe on NULL and twice.  Never from a done or apply callback.
 */
void qiao_gc_destroy(qiao_gc_t **gc);

#endif
