/*
 * dept.h - what every department adapter (adapters/<department>/) shares:
 * the command line, the department's own SQLite database, the connection
 * through libqiao-adapter, decoding and validating requests, answering,
 * and issuer signatures.
 *
 * A department adapter is a table of services and a main():
 *
 *   static const struct dept_service services[] = {
 *       {"title-summary.v1", &qiao__v1__title_summary_request__descriptor,
 *        &qiao__v1__title_summary__descriptor, on_title_summary},
 *   };
 *   int main(int argc, char **argv) {
 *       static const struct dept_def def = {"registry", services, 1, NULL};
 *       return dept_main(argc, argv, &def);
 *   }
 *
 * Command line (every department):
 *   qiao-<dept> --endpoint tcp://HOST:PORT --key FILE --gateway-curve B64
 *               --db FILE [--schema FILE] [--seed FILE] [--config FILE]
 *               [--threads N] [-v]
 * --db is the department's database; when it does not exist it is
 * created from --schema (default adapters/<dept>/schema.sql next to the
 * binary's source, installed path given explicitly in production) and
 * filled from --seed.  --config is a department-specific key = value
 * file (dept_config()).
 *
 * Threads: handlers run on the SDK's handler threads; every use of the
 * database goes through dept_db_lock() / dept_db_unlock() (one SQLite
 * connection, serialized), so handlers may run in parallel otherwise.
 */
#ifndef QIAO_DEPT_H
#define QIAO_DEPT_H

#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>
#include <stdint.h>

#include "licence.pb-c.h"
#include "qiao_adapter.h"
#include "qiao_id.h"
#include "qiao_keys.h"

struct dept;

typedef void (*dept_handler_fn)(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				struct qiao_responder *r);

struct dept_service {
	const char *name;                          /* "title-summary.v1" */
	const ProtobufCMessageDescriptor *request; /* decoded before the handler runs */
	const ProtobufCMessageDescriptor *response;
	dept_handler_fn fn;
};

struct dept_def {
	const char *name;                          /* "registry": logs, default file names */
	const struct dept_service *services;
	size_t nservices;
	/* called once the database is open, before connecting; may be NULL.
	 * 0 to go on; anything else stops the adapter with that exit code. */
	int (*init)(struct dept *d);
};

/* Run the adapter until SIGTERM/SIGINT; returns the exit code. */
int dept_main(int argc, char **argv, const struct dept_def *def);

/* ---- inside handlers -------------------------------------------------- */

const char *dept_member(const struct dept *d);    /* this department's member id */
const qiao_keys_t *dept_keys(const struct dept *d);
qiao_adapter_t *dept_adapter(struct dept *d);     /* to call other departments */
/* A value of the --config file, or `def` when absent.  Borrowed. */
const char *dept_config(const struct dept *d, const char *key, const char *def);
long long dept_config_int(const struct dept *d, const char *key, long long def);

/* The database, locked for this thread until dept_db_unlock(). */
sqlite3 *dept_db_lock(struct dept *d);
void dept_db_unlock(struct dept *d);

/* Answer with `msg` (packed); consumes r. */
void dept_reply(struct qiao_responder **r, const ProtobufCMessage *msg);
/* Answer ERROR with a code and a message (printf). */
void dept_error(struct qiao_responder **r, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Identifier checks at the edge: 0 when `value` is a valid identifier of
 * `kind`; otherwise answers INVALID_IDENTIFIER naming `field` and the
 * reason, consumes *r and returns -1.  A NULL or empty value is "missing"
 * (BAD_REQUEST) unless `optional`.
 */
int dept_check_id(struct qiao_responder **r, enum qiao_id_kind kind, const char *value, const char *field,
		  int optional);
/* A required string field: non-empty, at most maxchars characters. */
int dept_check_text(struct qiao_responder **r, const char *value, const char *field, long maxchars);

/* Sign `data` as this department's issuer (qiao_issuer.h); the key id and
 * signature are copied into sig's own buffers that live in *store. */
struct dept_sig_store {
	char key_id[72];
	uint8_t sig[64];
};
int dept_issuer_sign(struct dept *d, const char *domain, const void *data, size_t len,
		     Qiao__V1__IssuerSignature *sig, struct dept_sig_store *store);

/* Today as "YYYY-MM-DD" in China Standard Time (UTC+8), and `days` later. */
void dept_date(char out[11], int days);

/* Log one line (to stderr) with the department's name. */
void dept_log(struct dept *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sqlite3 convenience: text column or "" */
const char *dept_col_text(sqlite3_stmt *st, int col);

#endif
