/*
 * dept_util.h - small helpers the department adapters (bank, housing,
 * tax) share on top of dept.h: the transaction failure record, SQLite
 * statement shorthands, the document-number sequence, request body
 * hashes, and request field checks (free text, reference numbers,
 * parties, bank accounts, unwind reasons).
 *
 * Request checks follow dept_check_id(): 0 when the value is acceptable;
 * otherwise they answer an ERROR (BAD_REQUEST unless said otherwise)
 * naming the field, consume *r and return -1.
 *
 * Threads: nothing here holds state; the database helpers are called
 * with the database locked (dept_db_lock()).
 */
#ifndef QIAO_DEPT_UTIL_H
#define QIAO_DEPT_UTIL_H

#include <sqlite3.h>
#include <stddef.h>

#include "bank.pb-c.h"
#include "dept.h"
#include "identity.pb-c.h"

/* ---- why a transaction did not go through ------------------------------ */

/* The ERROR to answer when a transaction body fails.  `field` is borrowed
 * (a string literal or a field path that outlives the answer). */
struct dept_fail {
	int code;
	const char *field;
	char msg[480];
};

/* Fill *f with `code`, `field` and the message (printf, truncated to
 * sizeof f->msg); always returns -1, to be returned by the caller. */
int dept_fail(struct dept_fail *f, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A database error: logs "database: WHAT: <sqlite3_errmsg(db)>" with
 * dept_log() and fills *f with INTERNAL "database error (WHAT)"; -1. */
int dept_dberr(struct dept_fail *f, struct dept *d, sqlite3 *db, const char *what);

/* ---- SQLite shorthands ------------------------------------------------- */

/* A prepared statement of `sql`, or NULL when it does not prepare (nothing
 * to finalize then).  The caller finalizes it (or hands it to dept_run()). */
sqlite3_stmt *dept_prep(sqlite3 *db, const char *sql);
/* Bind text `s` (copied, SQLITE_TRANSIENT) to parameter i; a NULL or empty
 * `s` binds NULL. */
void dept_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Bind the integer v to parameter i. */
void dept_bind_int(sqlite3_stmt *st, int i, long long v);
/* Run statements without results (BEGIN, COMMIT, ...); 0 or -1. */
int dept_exec(sqlite3 *db, const char *sql);
/* Step a statement that changes rows and finalize it; a NULL `st` (a
 * failed dept_prep()) is an error.  0 when it completed (SQLITE_DONE),
 * otherwise -1. */
int dept_run(sqlite3_stmt *st);
/* Copy `src` (NULL as "") into dst[n], truncated and always terminated. */
void dept_copy(char *dst, size_t n, const char *src);

/* The next value (1, 2, ...) of sequence `seq` in the department's
 * doc_sequence (seq_name TEXT PRIMARY KEY, next_value INTEGER) table,
 * which it advances; -1 on a database error.  Inside the caller's
 * transaction. */
long long dept_next_seq(sqlite3 *db, const char *seq);

/* ---- requests ---------------------------------------------------------- */

/* SHA-256 of the request body as 64 lowercase hex digits and a NUL: what
 * an idempotency key was first used with. */
void dept_body_hash(const struct qiao_request *req, char out[65]);
/* The request's case id, or "" when it has none.  Borrowed from req. */
const char *dept_case_id(const struct qiao_request *req);

/* Free text: printable (no control characters), non-empty, at most `max`
 * characters (dept_check_text()); an absent or empty value is accepted
 * when `optional`. */
int dept_check_printable(struct qiao_responder **r, const char *v, const char *field, long max, int optional);
/* A reference number (idempotency key, contract no, ...): 1..64 bytes of
 * [A-Za-z0-9._:-]. */
int dept_check_ref(struct qiao_responder **r, const char *v, const char *field);
/* A Party at path `field` (e.g. "sellers[1]"): present, a printable name
 * of at most 100 characters, and an id of type RESIDENT_ID (a valid
 * 居民身份证号码) or USCC (a valid 统一社会信用代码, INVALID_IDENTIFIER
 * otherwise); only USCC when `uscc_only` (organisations, lenders). */
int dept_check_party(struct qiao_responder **r, const Qiao__V1__Party *p, const char *field, int uscc_only);
/* "RESIDENT_ID" or "USCC": the id type of a party dept_check_party()
 * accepted.  A string literal. */
const char *dept_party_type(const Qiao__V1__Party *p);
/* A BankAccount at path `field`: present, printable account and bank
 * names of at most 100 characters, an account number of 8 to 40 digits
 * and an optional CNAPS bank code of 12 digits. */
int dept_check_account(struct qiao_responder **r, const Qiao__V1__BankAccount *a, const char *field);
/* An UnwindReason (answered at `field` when not a valid one) and its
 * note (at "reason_note", printable, at most 500 characters), required
 * only when the reason is OTHER. */
int dept_check_unwind_reason(struct qiao_responder **r, int reason, const char *note, const char *field);

/* The normalised form (qiao_id_check_cert() / qiao_id_check_proof() for
 * kind QIAO_ID_CERT / any other kind) of a certificate or proof number
 * into out[n]; a number that does not check is copied as it is. */
void dept_norm_id(enum qiao_id_kind kind, const char *in, char *out, size_t n);

/* a × ppm / 10^6, rounded half up (in 128 bits, no overflow for amounts
 * and rates in range). */
long long dept_ppm(long long a, long long ppm);

/*
 * Prepare `sql` and bind the values that follow by `fmt`, one character
 * per parameter: t text, T text or NULL when empty, i long long, b blob
 * (const void *, int length; NULL when empty).  dept_sql_query returns the
 * statement to step (the caller finalizes it) or NULL; dept_sql_exec runs
 * it to its end: 0 or -1.  Failures are logged with dept_log.
 */
sqlite3_stmt *dept_sql_query(struct dept *d, sqlite3 *db, const char *sql, const char *fmt, ...);
int dept_sql_exec(struct dept *d, sqlite3 *db, const char *sql, const char *fmt, ...);

#endif
