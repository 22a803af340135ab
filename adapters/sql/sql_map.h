/*
 * sql_map.h - the mapping file of qiao-sql (adapters/sql/): which qiao.v1
 * services a department's existing SQLite database answers, and how.
 *
 * sm_load() reads and checks a libconfig file against the protobuf-c
 * descriptors of every qiao.v1 message (field paths exist, types
 * convert, identifier kinds apply); sm_check_db() then prepares every SQL
 * statement against a database (the statement compiles against its
 * schema, takes exactly the parameters the mapping binds, returns exactly
 * the columns it maps, with declared types that convert).  Both refuse
 * with "FILE:LINE: service "NAME": what is wrong".  docs/adapter-guide.md
 * ("Plugging in an existing database") documents the format; sql_map.c
 * has the grammar in its header comment.
 *
 * Everything loaded is read-only afterwards, so the handler threads share
 * it without locks.
 */
#ifndef QIAO_SQL_MAP_H
#define QIAO_SQL_MAP_H

#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "qiao_id.h"

#define SM_MAX_DEPTH 8       /* steps of a field path */
#define SM_MAX_SERVICES 64   /* what the SDK offers per adapter */
#define SM_DEFAULT_MAX_CHARS 1024 /* request strings without their own max_chars */
#define SM_DEFAULT_MAX_ROWS 1000

enum { SM_IDX_NONE = -1, SM_IDX_EACH = -2 }; /* sm_step.index: none, "[]"; >= 0: "[N]" */

struct sm_step {
	const ProtobufCFieldDescriptor *f;
	long index;
};

/* Values a parameter may take from the request's header instead of its body. */
enum sm_meta {
	SM_META_NONE = 0,
	SM_META_REQUESTER,  /* @requester: the calling member id */
	SM_META_USER,       /* @user_id */
	SM_META_CASE,       /* @case_id ("" when none) */
	SM_META_PURPOSE,    /* @purpose */
	SM_META_SERVICE,    /* @service: "payoff-quote.v1" */
	SM_META_NOW_MS,     /* @now_ms: instant, ms UTC */
	SM_META_TODAY,      /* @today: "YYYY-MM-DD" in China Standard Time */
	SM_META_REQUEST_ID, /* @request_id: the request's message id, hex */
};

/* A field path, e.g. "seller.id.id", "sellers[0].name", "items[].payer.name". */
struct sm_path {
	char *text;
	struct sm_step st[SM_MAX_DEPTH];
	int n;
	int each;           /* index of the "[]" step, or -1 */
	enum sm_meta meta;  /* a header value ("@..."): no steps */
	int enum_name;      /* "#name": bind an enum's value name, not its number */
	enum qiao_id_kind norm; /* QIAO_ID_CERT / _PROOF: bound in normalised form */
	unsigned line;
};

struct sm_param {
	char *name;         /* ":name" as in the SQL, or NULL for positional "?" */
	struct sm_path path;
};

struct sm_col {
	char *column;       /* result column name */
	struct sm_path path;
};

enum sm_stmt_kind { SM_REFUSE, SM_WRITE, SM_QUERY };

struct sm_stmt {
	enum sm_stmt_kind kind;
	char what[32];       /* "queries[0]" for messages */
	char *sql;
	unsigned line;       /* of the sql setting */
	struct sm_param *params;
	size_t nparams;
	int named;
	/* SM_QUERY */
	struct sm_col *cols;
	size_t ncols;
	long max_rows;
	/* SM_WRITE */
	int has_for_each;
	struct sm_path for_each;
	/* SM_REFUSE: the ERROR sent when the statement returns a row */
	int code;
	char *field;
};

enum sm_format { SM_FMT_NONE = 0, SM_FMT_DATE, SM_FMT_CODE };

/* One `fields` entry: what a request field must hold. */
struct sm_check {
	struct sm_path path;
	int required;
	int is_subject;          /* id = "subject": a DataSubject checked by its type */
	enum qiao_id_kind kind;  /* id = resident-id, uscc, ... or UNKNOWN */
	long max_chars;          /* 0: SM_DEFAULT_MAX_CHARS */
	long max_items;          /* 0: no limit */
	int has_min, has_max;
	long long min, max;
	enum sm_format format;
};

enum sm_no_row { SM_NO_ROW_NOT_FOUND = 0, SM_NO_ROW_EMPTY };

struct sm_service {
	char *name;              /* "payoff-quote.v1" */
	char *description;
	unsigned line;
	const ProtobufCMessageDescriptor *req, *resp;
	struct sm_check *checks;
	size_t nchecks;
	struct sm_stmt *refuse;
	size_t nrefuse;
	struct sm_stmt *writes;
	size_t nwrites;
	struct sm_stmt *queries;
	size_t nqueries;
	struct sm_path *keys;    /* idempotency key fields */
	size_t nkeys;
	enum sm_no_row no_row;
	char *not_found_message;
};

struct sm_map {
	char *file;
	struct sm_service *svc;
	size_t n;
};

/* Load and check `file`.  0 and *out (free with sm_destroy), or
 * QIAO_ECONFIG / QIAO_ENOMEM with err[] "FILE:LINE: ...". */
int sm_load(const char *file, struct sm_map **out, char *err, size_t errlen);

/* Prepare every statement of `m` against `db` (nothing is executed) and
 * check parameters and columns.  0, or QIAO_ECONFIG with err[]. */
int sm_check_db(const struct sm_map *m, sqlite3 *db, char *err, size_t errlen);

/* Free the map and set *m to NULL; safe on NULL and twice. */
void sm_destroy(struct sm_map **m);

/* The service named `name`, or NULL. */
const struct sm_service *sm_service(const struct sm_map *m, const char *name);

/* The qiao.v1 message type with full name `name` ("qiao.v1.PayoffQuote"),
 * or NULL. */
const ProtobufCMessageDescriptor *sm_type(const char *name);
/* Every known type; returns the count. */

/* The path as written with concrete indices: "sellers[1].id.id" (the
 * "[]" step gets `each`).  Into buf[n]. */
void sm_path_name(const struct sm_path *p, long each, char *buf, size_t n);

/* "REJECTED" -> 18 and so on; 0 when unknown. */
int sm_error_code(const char *name);

#endif
