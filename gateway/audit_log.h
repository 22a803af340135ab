/*
 * audit_log.h - the gateway's tamper-evident audit log (审计日志), kept in
 * the gateway's LMDB store.  docs/audit.md describes it for auditors.
 *
 * One leaf per event: a qiao.v1.AuditEntry (proto/audit.proto), encoded
 * once and never re-encoded; the leaves form an RFC 9162 Merkle tree
 * (audit_merkle.h) whose heads are signed as C2SP checkpoints
 * (audit_note.h) with the gateway's Ed25519 key.
 *
 * Tables (all in one store):
 *   audit_entry  u64 BE index              -> the AuditEntry bytes (the leaf data)
 *   audit_node   u8 level || u64 BE index  -> 32-byte hash of a perfect subtree
 *                                             (level 0: leaf hashes)
 *   audit_ckpt   u64 BE tree size          -> qiao.v1.Checkpoint
 *   audit_index  kind || 16-byte key || u64 BE index -> empty
 *                kind 'c' case id, 'm' member (requester and provider),
 *                'u' end user, 's' service, 'd' data subject (first 16
 *                bytes of its keyed hash); key = SHA-256(kind || value)[0..16)
 *                except for 'd'; and 't' || i64 BE time_ms || u64 BE index
 *   audit_meta   "size" -> u64 LE entries; "vkey" -> the gateway's note
 *                verifier key (informational: verify takes --vkey)
 *
 * Data subjects are indexed by HMAC-SHA-256(index key, "<TYPE>:<ID>")
 * (TYPE RESIDENT_ID or USCC): neither the log nor its index holds an ID
 * number in clear.  The 32-byte index key lives in <store>/audit-index.key
 * (mode 0600), created with the log; an auditor needs it to ask about a
 * person, and nobody who lacks it can learn whom the log is about.
 *
 * Writing happens inside the group-commit writer's transactions
 * (audit_log_append / audit_log_checkpoint from an apply callback), so an
 * entry is durable exactly when the batch holding it is committed.
 * Reading works from any process that opened the store read-only.
 */
#ifndef QIAO_AUDIT_LOG_H
#define QIAO_AUDIT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "audit.pb-c.h"
#include "qiao_store.h"

typedef struct audit_log audit_log_t;

#define AUDIT_HASH 32
#define AUDIT_MAX_PROOF 64
#define AUDIT_SUBJECT_KEY_ID 1

struct audit_cfg {
	const char *store_dir;         /* where audit-index.key lives */
	const char *origin;            /* checkpoint origin and note key name (writers) */
	const char *gateway;           /* gateway member id, AuditEntry.gateway (writers) */
	uint64_t checkpoint_entries;   /* checkpoint every this many entries (writers) */
	const uint8_t *sign_sk;        /* 64-byte Ed25519 secret key; NULL for readers */
	const uint8_t *sign_pk;        /* its public key (writers) */
	int read_only;                 /* 1: never creates tables or the index key */
};

/*
 * Open the log's tables in `st` (creating them unless read-only) and load
 * (or, for a writer, create) the subject index key.  Call before the
 * group-commit writer starts using the tables.  0, QIAO_ENOTFOUND (read-only
 * and no audit log in this store), QIAO_EKEYFILE / QIAO_EKEYPERM (index key
 * file bad or readable by others), store errors; err[] says what.
 */
int audit_log_open(qiao_store_t *st, const struct audit_cfg *cfg, audit_log_t **out, char *err, size_t errlen);
void audit_log_close(audit_log_t **l);

/* HMAC-SHA-256 keyed hash of a data subject: type "RESIDENT_ID" or "USCC",
 * id as written (upper-case). */
void audit_log_subject_hash(const audit_log_t *l, const char *type, const char *id, uint8_t out[AUDIT_HASH]);

/* ---- writing (inside a write transaction) -------------------------------- */

/*
 * Append `e`: sets e->index, e->gateway and (when 0) e->time_ms, encodes it,
 * stores the entry, the Merkle nodes it completes and its index keys, and
 * signs a checkpoint when checkpoint_entries entries have been added since
 * the last one.  `e` is otherwise the caller's.  0 and *index, or a store
 * error (the caller's transaction is then to be abandoned).
 */
int audit_log_append(audit_log_t *l, qiao_txn_t *txn, Qiao__V1__AuditEntry *e, uint64_t *index);

/* Sign and store a checkpoint of the current size unless the latest
 * checkpoint already covers it.  *made (may be NULL) = 1 when one was
 * written. */
int audit_log_checkpoint(audit_log_t *l, qiao_txn_t *txn, int64_t now_ms, int *made);

/* ---- reading -------------------------------------------------------------- */

int audit_log_size(audit_log_t *l, qiao_txn_t *txn, uint64_t *size);

/* The stored bytes of entry `index` (malloc'd copy, the caller frees). */
int audit_log_entry(audit_log_t *l, qiao_txn_t *txn, uint64_t index, uint8_t **bytes, size_t *len);

/* The checkpoint of tree size `size`, or the latest when size is
 * UINT64_MAX; QIAO_ENOTFOUND when none.  Free with
 * qiao__v1__checkpoint__free_unpacked(c, NULL). */
int audit_log_checkpoint_get(audit_log_t *l, qiao_txn_t *txn, uint64_t size, Qiao__V1__Checkpoint **out);

/* Call fn for every stored checkpoint, by size.  fn returns 0 to go on. */
int audit_log_checkpoints(audit_log_t *l, qiao_txn_t *txn,
			  int (*fn)(void *arg, const Qiao__V1__Checkpoint *c), void *arg);

/* Root of the first `size` entries, from the stored nodes. */
int audit_log_root(audit_log_t *l, qiao_txn_t *txn, uint64_t size, uint8_t out[AUDIT_HASH]);

/* RFC 9162 inclusion proof of `index` in the tree of `size`, and
 * consistency proof between two sizes; *n hashes in proof[]. */
int audit_log_prove(audit_log_t *l, qiao_txn_t *txn, uint64_t index, uint64_t size,
		    uint8_t (*proof)[AUDIT_HASH], size_t *n);
int audit_log_consistency(audit_log_t *l, qiao_txn_t *txn, uint64_t size1, uint64_t size2,
			  uint8_t (*proof)[AUDIT_HASH], size_t *n);

/*
 * Inclusion proofs for many entries (a query's page of results): the same
 * proofs as audit_log_prove, but the nodes read are kept in `c` (about
 * 100 KiB, from audit_proof_cache_new) and shared by the later proofs, which
 * need the same upper levels and the same right edge.  Stored nodes never
 * change, so a cache may outlive a transaction but must stay with one log.
 * c NULL: audit_log_prove.
 */
typedef struct audit_proof_cache audit_proof_cache_t;
audit_proof_cache_t *audit_proof_cache_new(void);
void audit_proof_cache_free(audit_proof_cache_t **c);
/* Nodes asked for, and nodes read from the store, since it was made. */
void audit_proof_cache_stats(const audit_proof_cache_t *c, uint64_t *lookups, uint64_t *reads);
int audit_log_prove_cached(audit_log_t *l, qiao_txn_t *txn, audit_proof_cache_t *c, uint64_t index, uint64_t size,
			   uint8_t (*proof)[AUDIT_HASH], size_t *n);

/* A query.  NULL / 0 fields do not restrict.  Entries come in index order
 * (oldest first), or newest first with `newest_first`. */
struct audit_query {
	const char *case_id;
	const char *member;            /* requester or provider */
	const char *user;              /* end user (经办人) */
	const char *service;
	const uint8_t *subject;        /* keyed hash (audit_log_subject_hash) */
	int64_t since_ms, until_ms;    /* time_ms in [since, until); 0 = open */
	uint64_t limit;                /* 0 = no limit */
	int newest_first;
};

/* fn gets each matching entry's index, stored bytes and decoded form
 * (borrowed for the call).  Returns 0, fn's non-zero value, or an error. */
typedef int (*audit_query_fn)(void *arg, uint64_t index, const uint8_t *bytes, size_t len,
			      const Qiao__V1__AuditEntry *e);
int audit_log_query(audit_log_t *l, qiao_txn_t *txn, const struct audit_query *q, audit_query_fn fn, void *arg);

/* ---- verifying ------------------------------------------------------------ */

struct audit_verify_report {
	uint64_t size;            /* entries the log says it has */
	uint64_t entries;         /* entries checked */
	uint64_t signatures;      /* header signatures checked */
	uint64_t checkpoints;     /* checkpoints checked */
	uint64_t uncovered;       /* entries after the latest checkpoint */
	uint64_t signatures_repeated; /* entries whose header and signature an earlier entry
				       * already had (same bytes, same keys): checked once */
	unsigned threads;         /* threads the walk used */
	int ok;
	uint64_t bad_index;       /* first bad entry (when the failure is about one), else UINT64_MAX */
	char reason[512];         /* what is wrong, precisely */
};

/*
 * Recompute the whole tree from the stored entries; check every entry
 * decodes with its own index, every leaf and every interior node the
 * entries complete against the stored tree (proofs are made of those),
 * every checkpoint's root and signature (by `vkey`, a C2SP verifier key;
 * NULL: the one the log stored), and with `check_sigs` every entry's header
 * signature against the member keys the log's own ADMIN_ACTION entries
 * recorded.  Stops at the first failure.  `progress` (may be NULL) is called
 * every 65536 entries.  Returns 0 when the log verifies, QIAO_EBADSIG when it
 * does not (report says where), or an error reading it.
 */
int audit_log_verify(audit_log_t *l, qiao_txn_t *txn, const char *vkey, int check_sigs,
		     void (*progress)(void *arg, uint64_t done, uint64_t total), void *parg,
		     struct audit_verify_report *r);

/* audit_log_verify with every option: threads 0 uses one thread per
 * online CPU (at most 16), 1 checks on the calling thread alone.  The
 * report is the same whatever the number of threads. */
struct audit_verify_opts {
	const char *vkey;
	int check_sigs;
	unsigned threads;
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *parg;
};
int audit_log_verify_opts(audit_log_t *l, qiao_txn_t *txn, const struct audit_verify_opts *o,
			  struct audit_verify_report *r);

/* The gateway's verifier key as stored ("" when none). */
int audit_log_vkey(audit_log_t *l, qiao_txn_t *txn, char *out, size_t outlen);

#endif
