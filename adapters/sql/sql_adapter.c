/*
 * sql_adapter.c - qiao-sql, the generic adapter: a department that already
 * has a database plugs into Qiao by writing a mapping file (sql_map.c
 * reads it; docs/adapter-guide.md, "Plugging in an existing database",
 * documents it), no C code.
 *
 *   qiao-sql --mapping FILE [--check] --endpoint ... --key ... --gateway-curve ...
 *            --db FILE [--schema FILE] [--seed FILE] [--config FILE] [-v]
 *   qiao-sql --mapping FILE --check (--db FILE | --schema FILE)
 *   qiao-sql --list-types
 *
 * Start-up: the mapping is loaded and checked against the qiao.v1
 * descriptors, then every statement is prepared against the database (the
 * existing --db opened read-only, or a scratch copy of --schema when the
 * database is still to be created); any error stops the adapter before it
 * connects, naming the file, the line and the service.  Then dept_main()
 * (adapters/dept/) runs the adapter with one offer per mapped service.
 *
 * A request, in this order (the first failure answers):
 *  1. `fields`: required fields, identifiers (INVALID_IDENTIFIER naming the
 *     field, e.g. "sellers[1].id.id"), lengths, formats, ranges;
 *  2. one transaction (BEGIN IMMEDIATE when the service writes):
 *     - the idempotency key: a request seen before answers its stored
 *       result (the same request) or REJECTED (another request under the
 *       same key);
 *     - `refuse` statements: the first that returns a row answers its code
 *       (REJECTED by default) with the row's first column as message;
 *     - `write` statements (a constraint or a trigger's RAISE(ABORT, 'msg')
 *       answers REJECTED with the database's message);
 *     - `queries` build the response; no row from the first one answers
 *       NOT_FOUND (or an empty response, on_no_row = "empty") and rolls
 *       back;
 *     - the response is stored under the idempotency key, COMMIT;
 *  3. the answer.
 * Every value is bound as an SQL parameter (never pasted into SQL text);
 * every request string bound is checked as printable UTF-8 of at most
 * max_chars (default 1024) characters, every enum against its values.  A
 * database value that does not convert to its response field answers
 * INTERNAL (details in the log, not to the caller).
 *
 * The adapter keeps one table of its own in the department's database,
 * created when a service has an idempotency key:
 *   qiao_sql_idempotency(service, idem_key, request_sha256, response,
 *                        requester, created_ms)
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "dept.h"
#include "envelope.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_types.h"
#include "sql_map.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

#define S_IDEM_DDL                                                                                   \
	"CREATE TABLE IF NOT EXISTS qiao_sql_idempotency (\n"                                        \
	"  service        TEXT NOT NULL,     -- the mapped service, e.g. payoff-quote.v1\n"           \
	"  idem_key       TEXT NOT NULL,     -- the idempotency key fields' values\n"                \
	"  request_sha256 BLOB NOT NULL,     -- of the request body (re-encoded)\n"                  \
	"  response       BLOB NOT NULL,     -- the response body answered\n"                        \
	"  requester      TEXT NOT NULL,     -- the calling member\n"                                \
	"  created_ms     INTEGER NOT NULL,  -- instant, ms UTC\n"                                   \
	"  PRIMARY KEY (service, idem_key)\n"                                                        \
	");"

static struct sm_map *s_map;

/* One request being answered. */
struct s_req {
	struct dept *d;
	const struct qiao_request *rq;
	const ProtobufCMessage *body;
	const struct sm_service *sv;
	struct qiao_responder *r; /* NULL once answered */
	sqlite3 *db;              /* while locked */
	int in_txn;
};

/* ---- reading the request -------------------------------------------- */

struct s_val {
	int found;      /* the path leads to a value (its parents exist) */
	int present;    /* non-empty / non-zero (proto3 "set") */
	int list;       /* the path names a repeated field itself: count */
	size_t count;
	const ProtobufCFieldDescriptor *f;
	int64_t i;
	uint64_t u;
	double dbl;
	const char *s;  /* STRING (NUL-terminated) / BYTES */
	size_t len;
	const ProtobufCMessage *m;
};

static size_t s_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return sizeof(int32_t);
	}
}

static void s_read_scalar(const ProtobufCFieldDescriptor *f, const void *addr, struct s_val *v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		v->i = *(const int32_t *)addr;
		v->present = v->i != 0;
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		v->i = *(const uint32_t *)addr;
		v->present = v->i != 0;
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		v->i = *(const int64_t *)addr;
		v->present = v->i != 0;
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		v->u = *(const uint64_t *)addr;
		v->present = v->u != 0;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		v->i = *(const protobuf_c_boolean *)addr ? 1 : 0;
		v->present = (int)v->i;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		v->dbl = *(const float *)addr;
		v->present = v->dbl != 0;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		v->dbl = *(const double *)addr;
		v->present = v->dbl != 0;
		break;
	case PROTOBUF_C_TYPE_STRING:
		v->s = *(const char *const *)addr;
		if (!v->s)
			v->s = "";
		v->len = strlen(v->s);
		v->present = v->len > 0;
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = addr;
		v->s = (const char *)b->data;
		v->len = b->data ? b->len : 0;
		v->present = v->len > 0;
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		v->m = *(const ProtobufCMessage *const *)addr;
		v->present = v->m != NULL;
		break;
	}
}

/* Follow `p` through `msg`; the "[]" step takes element `each`. */
static void s_get(const ProtobufCMessage *msg, const struct sm_path *p, long each, struct s_val *v)
{
	memset(v, 0, sizeof *v);
	const ProtobufCMessage *cur = msg;
	for (int i = 0; i < p->n && cur; i++) {
		const ProtobufCFieldDescriptor *f = p->st[i].f;
		const char *base = (const char *)cur;
		const char *addr = base + f->offset;
		v->f = f;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				return;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
			   f->type != PROTOBUF_C_TYPE_MESSAGE) {
			if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
				return;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			long idx = p->st[i].index == SM_IDX_EACH ? each : p->st[i].index;
			if (idx == SM_IDX_NONE) { /* the list itself */
				v->found = 1;
				v->list = 1;
				v->count = n;
				v->present = n > 0;
				return;
			}
			if (idx < 0 || (size_t)idx >= n)
				return;
			addr = *(const char *const *)addr + (size_t)idx * s_elem_size(f->type);
		}
		if (i + 1 < p->n) {
			cur = *(const ProtobufCMessage *const *)addr;
			continue;
		}
		v->found = 1;
		s_read_scalar(f, addr, v);
	}
}

/* Elements of the "[]" step of p (0 when a parent is absent). */
static size_t s_each_count(const ProtobufCMessage *msg, const struct sm_path *p)
{
	if (p->each < 0)
		return 0;
	struct sm_path q = *p;
	q.n = p->each + 1;
	q.st[p->each].index = SM_IDX_NONE;
	q.each = -1;
	struct s_val v;
	s_get(msg, &q, SM_IDX_NONE, &v);
	return v.list ? v.count : 0;
}

/* ---- answering ------------------------------------------------------- */

static void s_error(struct s_req *q, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void s_error(struct s_req *q, int code, const char *field, const char *fmt, ...)
{
	if (!q->r)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dept_error(&q->r, code, field, "%s", msg);
}

/* An INTERNAL answer; the details go to the log only. */
static void s_internal(struct s_req *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_internal(struct s_req *q, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dept_log(q->d, "%s: %s", q->sv->name, msg);
	s_error(q, E_INTERNAL, NULL, "the department's system could not answer (its log says why); retry later");
}

/* Printable UTF-8 of at most maxchars characters: NULL, or why not. */
static const char *s_text_refusal(const char *s, size_t len, long maxchars)
{
	long n = qiao_utf8_chars(s, len);
	if (n < 0 || strlen(s) != len)
		return "is not valid UTF-8 text";
	if (n > maxchars)
		return "is too long";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "holds a control character";
	return NULL;
}

static int s_date_ok(const char *s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
	if (y < 1900 || m < 1 || m > 12 || d < 1)
		return 0;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

static int s_code_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '_' || *s == ':' || *s == '-'))
			return 0;
	return 1;
}

/* max_chars of the `fields` entry for this path, or the default. */
static long s_max_chars(const struct sm_service *sv, const struct sm_path *p)
{
	for (size_t k = 0; k < sv->nchecks; k++) {
		const struct sm_path *c = &sv->checks[k].path;
		if (!sv->checks[k].max_chars || c->n != p->n)
			continue;
		int same = 1;
		for (int i = 0; i < p->n && same; i++)
			same = c->st[i].f == p->st[i].f &&
			       (c->st[i].index == p->st[i].index || c->st[i].index == SM_IDX_EACH);
		if (same)
			return sv->checks[k].max_chars;
	}
	return SM_DEFAULT_MAX_CHARS;
}

/* ---- the `fields` checks -------------------------------------------- */

static int s_check_one(struct s_req *q, const struct sm_check *ck, long each)
{
	struct s_val v;
	s_get(q->body, &ck->path, each, &v);
	char name[256];
	sm_path_name(&ck->path, each, name, sizeof name);
	if (v.list) {
		if (ck->required && v.count == 0) {
			s_error(q, E_BAD, name, "%s is required (at least one)", name);
			return -1;
		}
		if (ck->max_items && v.count > (size_t)ck->max_items) {
			s_error(q, E_BAD, name, "%s: at most %ld, not %zu", name, ck->max_items, v.count);
			return -1;
		}
		return 0;
	}
	if (!v.present) {
		if (ck->required) {
			if (ck->kind != QIAO_ID_UNKNOWN)
				s_error(q, E_BAD, name, "%s (%s) is required", name, qiao_id_kind_name(ck->kind));
			else
				s_error(q, E_BAD, name, "%s is required", name);
			return -1;
		}
		if (!(v.found && (ck->has_min || ck->has_max)))
			return 0; /* absent and optional; 0 is still checked against min */
	}
	const ProtobufCFieldDescriptor *f = v.f;
	if (f->type == PROTOBUF_C_TYPE_ENUM && !protobuf_c_enum_descriptor_get_value(f->descriptor, (int)v.i)) {
		s_error(q, E_BAD, name, "%s: %" PRId64 " is not a value of %s", name, v.i,
			((const ProtobufCEnumDescriptor *)f->descriptor)->name);
		return -1;
	}
	if (f->type == PROTOBUF_C_TYPE_STRING) {
		const char *why = s_text_refusal(v.s, v.len, ck->max_chars ? ck->max_chars : SM_DEFAULT_MAX_CHARS);
		if (why) {
			if (ck->max_chars && strcmp(why, "is too long") == 0)
				s_error(q, E_BAD, name, "%s: at most %ld characters", name, ck->max_chars);
			else
				s_error(q, E_BAD, name, "%s %s", name, why);
			return -1;
		}
		if (ck->format == SM_FMT_DATE && !s_date_ok(v.s)) {
			s_error(q, E_BAD, name, "%s '%.40s' is not a date YYYY-MM-DD", name, v.s);
			return -1;
		}
		if (ck->format == SM_FMT_CODE && !s_code_ok(v.s)) {
			s_error(q, E_BAD, name, "%s: only A-Z a-z 0-9 . _ : - are allowed", name);
			return -1;
		}
		if (ck->kind != QIAO_ID_UNKNOWN && dept_check_id(&q->r, ck->kind, v.s, name, 0) != 0)
			return -1;
	}
	if (ck->is_subject) {
		const Qiao__V1__DataSubject *ds = (const Qiao__V1__DataSubject *)v.m;
		char sub[300];
		enum qiao_id_kind kind;
		if (ds->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID)
			kind = QIAO_ID_RESIDENT;
		else if (ds->type == QIAO__V1__SUBJECT_TYPE__USCC)
			kind = QIAO_ID_USCC;
		else {
			snprintf(sub, sizeof sub, "%s.type", name);
			s_error(q, E_BAD, sub, "%s must be RESIDENT_ID or USCC", sub);
			return -1;
		}
		snprintf(sub, sizeof sub, "%s.id", name);
		const char *id = ds->id ? ds->id : "";
		const char *why = s_text_refusal(id, strlen(id), 64);
		if (why && id[0]) {
			s_error(q, E_BAD, sub, "%s %s", sub, why);
			return -1;
		}
		if (dept_check_id(&q->r, kind, id, sub, 0) != 0)
			return -1;
	}
	if (ck->has_min || ck->has_max) {
		int neg = 0;
		long long x = 0;
		if (f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_FIXED64) {
			if (v.u > (uint64_t)INT64_MAX)
				neg = -1; /* above every limit */
			else
				x = (long long)v.u;
		} else {
			x = v.i;
		}
		if (ck->has_min && neg == 0 && x < ck->min) {
			s_error(q, E_BAD, name, "%s must be at least %lld", name, ck->min);
			return -1;
		}
		if (ck->has_max && (neg || x > ck->max)) {
			s_error(q, E_BAD, name, "%s must be at most %lld", name, ck->max);
			return -1;
		}
	}
	return 0;
}

static int s_checks(struct s_req *q)
{
	for (size_t k = 0; k < q->sv->nchecks; k++) {
		const struct sm_check *ck = &q->sv->checks[k];
		if (ck->path.each >= 0) {
			size_t n = s_each_count(q->body, &ck->path);
			for (size_t i = 0; i < n; i++)
				if (s_check_one(q, ck, (long)i) != 0)
					return -1;
		} else if (s_check_one(q, ck, SM_IDX_NONE) != 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- binding --------------------------------------------------------- */

static int s_bind_one(struct s_req *q, sqlite3_stmt *ps, int idx, const struct sm_path *p, long each)
{
	const Qiao__V1__Header *h = q->rq->hdr;
	char buf[64];
	const char *t = NULL;
	switch (p->meta) {
	case SM_META_NONE: break;
	case SM_META_REQUESTER: t = q->rq->requester; break;
	case SM_META_USER: t = h->user_id; break;
	case SM_META_CASE: t = h->case_id; break;
	case SM_META_PURPOSE: t = h->purpose; break;
	case SM_META_SERVICE: t = q->sv->name; break;
	case SM_META_NOW_MS: return sqlite3_bind_int64(ps, idx, qiao_now_ms());
	case SM_META_TODAY: dept_date(buf, 0); t = buf; break;
	case SM_META_REQUEST_ID:
		if (h->message_id.len != 16)
			return sqlite3_bind_null(ps, idx);
		qiao_hex(h->message_id.data, 16, buf);
		t = buf;
		break;
	}
	if (p->meta != SM_META_NONE)
		return sqlite3_bind_text(ps, idx, t ? t : "", -1, SQLITE_TRANSIENT);
	struct s_val v;
	s_get(q->body, p, each, &v);
	if (!v.found)
		return sqlite3_bind_null(ps, idx);
	char name[256];
	const ProtobufCFieldDescriptor *f = v.f;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *why = s_text_refusal(v.s, v.len, s_max_chars(q->sv, p));
		if (why) {
			sm_path_name(p, each, name, sizeof name);
			s_error(q, E_BAD, name, "%s %s", name, why);
			return -1;
		}
		if (p->norm != QIAO_ID_UNKNOWN && v.len) {
			char norm[256], w[200];
			int rc = p->norm == QIAO_ID_CERT ? qiao_id_check_cert(v.s, norm, sizeof norm, w, sizeof w)
							 : qiao_id_check_proof(v.s, norm, sizeof norm, w, sizeof w);
			if (rc == 0)
				return sqlite3_bind_text(ps, idx, norm, -1, SQLITE_TRANSIENT);
		}
		return sqlite3_bind_text(ps, idx, v.s, (int)v.len, SQLITE_TRANSIENT);
	}
	case PROTOBUF_C_TYPE_BYTES:
		if (v.len > 1000000) {
			sm_path_name(p, each, name, sizeof name);
			s_error(q, E_BAD, name, "%s: too large", name);
			return -1;
		}
		return sqlite3_bind_blob(ps, idx, v.len ? v.s : "", (int)v.len, SQLITE_TRANSIENT);
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, (int)v.i);
		if (!ev) {
			sm_path_name(p, each, name, sizeof name);
			s_error(q, E_BAD, name, "%s: %" PRId64 " is not a value of %s", name, v.i,
				((const ProtobufCEnumDescriptor *)f->descriptor)->name);
			return -1;
		}
		if (p->enum_name)
			return sqlite3_bind_text(ps, idx, ev->name, -1, SQLITE_STATIC);
		return sqlite3_bind_int64(ps, idx, v.i);
	}
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (v.u > (uint64_t)INT64_MAX) {
			sm_path_name(p, each, name, sizeof name);
			s_error(q, E_BAD, name, "%s: too large", name);
			return -1;
		}
		return sqlite3_bind_int64(ps, idx, (sqlite3_int64)v.u);
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return sqlite3_bind_double(ps, idx, v.dbl);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sqlite3_bind_null(ps, idx); /* refused at load */
	default:
		return sqlite3_bind_int64(ps, idx, v.i);
	}
}

/* Prepare `st` and bind its parameters (element `each` for for_each).
 * The statement, or NULL when answered. */
static sqlite3_stmt *s_prepare(struct s_req *q, const struct sm_stmt *st, long each)
{
	sqlite3_stmt *ps = NULL;
	if (sqlite3_prepare_v2(q->db, st->sql, -1, &ps, NULL) != SQLITE_OK || !ps) {
		s_internal(q, "%s (line %u) does not prepare: %s", st->what, st->line, sqlite3_errmsg(q->db));
		sqlite3_finalize(ps);
		return NULL;
	}
	int np = sqlite3_bind_parameter_count(ps);
	for (size_t k = 0; k < st->nparams; k++) {
		int idx = (int)k + 1;
		if (st->named) {
			idx = 0;
			for (int i = 1; i <= np && !idx; i++) {
				const char *pn = sqlite3_bind_parameter_name(ps, i);
				if (pn && strcmp(pn + 1, st->params[k].name) == 0)
					idx = i;
			}
			if (!idx) {
				s_internal(q, "%s (line %u): the SQL lost :%s", st->what, st->line, st->params[k].name);
				sqlite3_finalize(ps);
				return NULL;
			}
			/* a name used as :x and @x is one parameter each: bind both */
			for (int i = idx + 1; i <= np; i++) {
				const char *pn = sqlite3_bind_parameter_name(ps, i);
				if (pn && strcmp(pn + 1, st->params[k].name) == 0 &&
				    s_bind_one(q, ps, i, &st->params[k].path, each) != SQLITE_OK) {
					sqlite3_finalize(ps);
					return NULL;
				}
			}
		}
		int rc = s_bind_one(q, ps, idx, &st->params[k].path, each);
		if (rc != SQLITE_OK) {
			if (rc > 0)
				s_internal(q, "%s: binding %s: %s", st->what, st->params[k].path.text, sqlite3_errstr(rc));
			sqlite3_finalize(ps);
			return NULL;
		}
	}
	return ps;
}

/* ---- building the response ------------------------------------------ */

static const ProtobufCFieldDescriptor *s_last(const struct sm_path *p)
{
	return p->st[p->n - 1].f;
}

static ProtobufCMessage *s_msg_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

/* A value converted for field f. */
struct s_conv {
	int64_t i;
	double dbl;
	char *s;        /* STRING / BYTES, malloc'd */
	size_t len;
};

static const char *s_sqlite_type(int t)
{
	switch (t) {
	case SQLITE_INTEGER: return "INTEGER";
	case SQLITE_FLOAT: return "REAL";
	case SQLITE_TEXT: return "TEXT";
	case SQLITE_BLOB: return "BLOB";
	default: return "NULL";
	}
}

/* CamelCase "TaxType" -> "TAX_TYPE_" (the prefix of its value names). */
static void s_enum_prefix(const char *camel, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; camel[i] && k + 3 < n; i++) {
		if (i && camel[i] >= 'A' && camel[i] <= 'Z')
			out[k++] = '_';
		out[k++] = (char)(camel[i] >= 'a' && camel[i] <= 'z' ? camel[i] - 32 : camel[i]);
	}
	out[k++] = '_';
	out[k] = '\0';
}

/* Convert column `col` of the current row for f: 0, or -1 with why[]. */
static int s_convert(sqlite3_stmt *ps, int col, const ProtobufCFieldDescriptor *f, struct s_conv *c, char *why,
		     size_t whylen)
{
	memset(c, 0, sizeof *c);
	int t = sqlite3_column_type(ps, col);
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		if (t != SQLITE_TEXT && t != SQLITE_INTEGER)
			break;
		const char *s = (const char *)sqlite3_column_text(ps, col);
		int n = sqlite3_column_bytes(ps, col);
		if (!s || n < 0 || strlen(s) != (size_t)n || qiao_utf8_chars(s, (size_t)n) < 0) {
			snprintf(why, whylen, "not valid UTF-8 text");
			return -1;
		}
		c->s = strndup(s, (size_t)n);
		if (!c->s) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		c->len = (size_t)n;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		if (t != SQLITE_BLOB && t != SQLITE_TEXT)
			break;
		const void *b = sqlite3_column_blob(ps, col);
		int n = sqlite3_column_bytes(ps, col);
		c->s = malloc(n > 0 ? (size_t)n : 1);
		if (!c->s) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		if (n > 0)
			memcpy(c->s, b, (size_t)n);
		c->len = n > 0 ? (size_t)n : 0;
		return 0;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev = NULL;
		if (t == SQLITE_INTEGER) {
			sqlite3_int64 x = sqlite3_column_int64(ps, col);
			if (x >= INT32_MIN && x <= INT32_MAX)
				ev = protobuf_c_enum_descriptor_get_value(ed, (int)x);
			if (!ev) {
				snprintf(why, whylen, "%lld is not a value of %s", (long long)x, ed->name);
				return -1;
			}
		} else if (t == SQLITE_TEXT) {
			const char *s = (const char *)sqlite3_column_text(ps, col);
			char full[160];
			s_enum_prefix(ed->short_name, full, sizeof full);
			size_t pl = strlen(full);
			snprintf(full + pl, sizeof full - pl, "%s", s ? s : "");
			ev = s ? protobuf_c_enum_descriptor_get_value_by_name(ed, s) : NULL;
			if (!ev)
				ev = protobuf_c_enum_descriptor_get_value_by_name(ed, full);
			if (!ev) {
				snprintf(why, whylen, "'%.60s' is not a value name of %s", s ? s : "", ed->name);
				return -1;
			}
		} else {
			break;
		}
		c->i = ev->value;
		return 0;
	}
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		if (t != SQLITE_INTEGER && t != SQLITE_FLOAT)
			break;
		c->dbl = sqlite3_column_double(ps, col);
		return 0;
	case PROTOBUF_C_TYPE_BOOL: {
		if (t != SQLITE_INTEGER)
			break;
		sqlite3_int64 x = sqlite3_column_int64(ps, col);
		if (x != 0 && x != 1) {
			snprintf(why, whylen, "%lld is not a bool (0 or 1)", (long long)x);
			return -1;
		}
		c->i = x;
		return 0;
	}
	default: {
		if (t != SQLITE_INTEGER)
			break;
		sqlite3_int64 x = sqlite3_column_int64(ps, col);
		int64_t lo = INT64_MIN, hi = INT64_MAX;
		switch (f->type) {
		case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
			lo = INT32_MIN, hi = INT32_MAX;
			break;
		case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
			lo = 0, hi = UINT32_MAX;
			break;
		case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
			lo = 0;
			break;
		default:
			break;
		}
		if (x < lo || x > hi) {
			snprintf(why, whylen, "%lld is out of range", (long long)x);
			return -1;
		}
		c->i = x;
		return 0;
	}
	}
	if (t == SQLITE_FLOAT && f->type != PROTOBUF_C_TYPE_STRING)
		snprintf(why, whylen, "a REAL value (%g) for an integer field", sqlite3_column_double(ps, col));
	else
		snprintf(why, whylen, "a %s value does not convert", s_sqlite_type(t));
	return -1;
}

/* Store a converted value at addr (a field of type f); takes c's string. */
static void s_store(const ProtobufCFieldDescriptor *f, void *addr, struct s_conv *c, int fresh)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		*(int32_t *)addr = (int32_t)c->i;
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)addr = (uint32_t)c->i;
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *)addr = c->i;
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)addr = (uint64_t)c->i;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)addr = c->i != 0;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)addr = (float)c->dbl;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)addr = c->dbl;
		break;
	case PROTOBUF_C_TYPE_STRING: {
		char **sp = addr;
		if (!fresh && *sp && *sp != (const char *)f->default_value)
			free(*sp);
		*sp = c->s;
		c->s = NULL;
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = addr;
		if (!fresh)
			free(b->data);
		b->data = (uint8_t *)c->s;
		b->len = c->len;
		c->s = NULL;
		break;
	}
	default:
		break;
	}
}

/* Append one zeroed element to repeated field f of msg: its address. */
static void *s_append(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	char *base = (char *)msg;
	size_t *n = (size_t *)(base + f->quantifier_offset);
	char **arr = (char **)(base + f->offset);
	size_t es = s_elem_size(f->type);
	char *na = realloc(*arr, (*n + 1) * es);
	if (!na)
		return NULL;
	*arr = na;
	memset(na + *n * es, 0, es);
	return na + (*n)++ * es;
}

/* Mark f set in msg (oneof case, proto3 optional flag).  -1 when another
 * member of its oneof is set already. */
static int s_mark(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	char *base = (char *)msg;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *cs = (uint32_t *)(base + f->quantifier_offset);
		if (*cs && *cs != f->id)
			return -1;
		*cs = f->id;
	} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
		   f->type != PROTOBUF_C_TYPE_MESSAGE) {
		*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
	}
	return 0;
}

/* The sub-message at non-repeated message field f of msg, created. */
static ProtobufCMessage *s_sub(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	ProtobufCMessage **sp = (ProtobufCMessage **)((char *)msg + f->offset);
	if (!*sp) {
		if (s_mark(msg, f) != 0)
			return NULL;
		*sp = s_msg_new(f->descriptor);
	}
	return *sp;
}

/*
 * Set steps [from, p->n) of path p below msg to c.  For a path with "[]",
 * from is past the "[]" step and msg is the row's element.
 */
static int s_set(ProtobufCMessage *msg, const struct sm_path *p, int from, struct s_conv *c)
{
	for (int i = from; i < p->n; i++) {
		const ProtobufCFieldDescriptor *f = p->st[i].f;
		if (i + 1 < p->n) {
			msg = s_sub(msg, f);
			if (!msg)
				return -1;
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) { /* "tags[]": one value per row */
			void *slot = s_append(msg, f);
			if (!slot)
				return -1;
			s_store(f, slot, c, 1);
			return 0;
		}
		if (s_mark(msg, f) != 0)
			return -1;
		s_store(f, (char *)msg + f->offset, c, 0);
	}
	return 0;
}

/* Run query `st` into resp.  Its row count, or -1 when answered. */
static long s_query(struct s_req *q, const struct sm_stmt *st, ProtobufCMessage *resp)
{
	sqlite3_stmt *ps = s_prepare(q, st, SM_IDX_NONE);
	if (!ps)
		return -1;
	int ncol = sqlite3_column_count(ps);
	int map[128];
	const struct sm_path *group = NULL;
	if (ncol > (int)(sizeof map / sizeof map[0])) {
		s_internal(q, "%s returns %d columns", st->what, ncol);
		sqlite3_finalize(ps);
		return -1;
	}
	for (int i = 0; i < ncol; i++) {
		map[i] = -1;
		for (size_t k = 0; k < st->ncols; k++)
			if (strcmp(st->cols[k].column, sqlite3_column_name(ps, i)) == 0)
				map[i] = (int)k;
		if (map[i] < 0) {
			s_internal(q, "%s (line %u) returns the unmapped column %s (the schema changed?)", st->what,
				   st->line, sqlite3_column_name(ps, i));
			sqlite3_finalize(ps);
			return -1;
		}
		if (st->cols[map[i]].path.each >= 0)
			group = &st->cols[map[i]].path;
	}
	long rows = 0;
	int rc;
	char why[200];
	while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
		rows++;
		if (rows > st->max_rows || (!group && rows > 1)) {
			s_internal(q, "%s (line %u) returned more than %ld row%s", st->what, st->line,
				   group ? st->max_rows : 1L, group ? "s (max_rows)" : " (it fills no repeated field)");
			sqlite3_finalize(ps);
			return -1;
		}
		ProtobufCMessage *elem = NULL;
		if (group) {
			int any = 0;
			for (int i = 0; i < ncol; i++)
				any |= st->cols[map[i]].path.each >= 0 && sqlite3_column_type(ps, i) != SQLITE_NULL;
			const ProtobufCFieldDescriptor *gf = group->st[group->each].f;
			if (any && gf->type == PROTOBUF_C_TYPE_MESSAGE) {
				ProtobufCMessage *parent = resp;
				for (int i = 0; i < group->each && parent; i++)
					parent = s_sub(parent, group->st[i].f);
				ProtobufCMessage **slot = parent ? s_append(parent, gf) : NULL;
				if (slot)
					*slot = elem = s_msg_new(gf->descriptor);
				if (!elem) {
					s_internal(q, "out of memory");
					sqlite3_finalize(ps);
					return -1;
				}
			}
		}
		for (int i = 0; i < ncol; i++) {
			const struct sm_col *col = &st->cols[map[i]];
			if (sqlite3_column_type(ps, i) == SQLITE_NULL)
				continue;
			if (col->path.each < 0 && rows > 1)
				continue; /* the record's own fields come from its first row */
			struct s_conv c;
			if (s_convert(ps, i, s_last(&col->path), &c, why, sizeof why) != 0) {
				s_internal(q, "%s (line %u) row %ld column %s -> %s: %s", st->what, st->line, rows,
					   col->column, col->path.text, why);
				sqlite3_finalize(ps);
				return -1;
			}
			int set;
			if (col->path.each < 0) {
				set = s_set(resp, &col->path, 0, &c);
			} else if (col->path.each == col->path.n - 1) { /* repeated scalar */
				ProtobufCMessage *parent = resp;
				for (int k = 0; k < col->path.each && parent; k++)
					parent = s_sub(parent, col->path.st[k].f);
				set = parent ? s_set(parent, &col->path, col->path.each, &c) : -1;
			} else {
				set = elem ? s_set(elem, &col->path, col->path.each + 1, &c) : -1;
			}
			free(c.s);
			if (set != 0) {
				s_internal(q, "%s column %s -> %s: cannot set the field (out of memory, or two members "
					      "of one oneof)", st->what, col->column, col->path.text);
				sqlite3_finalize(ps);
				return -1;
			}
		}
	}
	if (rc != SQLITE_DONE) {
		s_internal(q, "%s (line %u): %s", st->what, st->line, sqlite3_errmsg(q->db));
		sqlite3_finalize(ps);
		return -1;
	}
	sqlite3_finalize(ps);
	return rows;
}

/* ---- refusals and writes -------------------------------------------- */

/* 0: no refusal; -1: answered. */
static int s_refuse(struct s_req *q, const struct sm_stmt *st)
{
	sqlite3_stmt *ps = s_prepare(q, st, SM_IDX_NONE);
	if (!ps)
		return -1;
	int rc = sqlite3_step(ps);
	if (rc == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(ps, 0);
		char msg[600];
		snprintf(msg, sizeof msg, "%s", m && *m ? m : "refused by the department");
		if (qiao_utf8_chars(msg, strlen(msg)) < 0)
			snprintf(msg, sizeof msg, "refused by the department");
		s_error(q, st->code, st->field, "%s", msg);
		sqlite3_finalize(ps);
		return -1;
	}
	if (rc != SQLITE_DONE) {
		s_internal(q, "%s (line %u): %s", st->what, st->line, sqlite3_errmsg(q->db));
		sqlite3_finalize(ps);
		return -1;
	}
	sqlite3_finalize(ps);
	return 0;
}

static int s_write_once(struct s_req *q, const struct sm_stmt *st, long each)
{
	sqlite3_stmt *ps = s_prepare(q, st, each);
	if (!ps)
		return -1;
	int rc = sqlite3_step(ps);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(ps);
		return 0;
	}
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		/* a UNIQUE / CHECK / FOREIGN KEY constraint, or a trigger's
		 * RAISE(ABORT, '...'): the department's own business rule */
		s_error(q, E_REJECTED, NULL, "refused by the department's database: %.500s", sqlite3_errmsg(q->db));
		dept_log(q->d, "%s: %s refused: %s", q->sv->name, st->what, sqlite3_errmsg(q->db));
	} else {
		s_internal(q, "%s (line %u): %s", st->what, st->line, sqlite3_errmsg(q->db));
	}
	sqlite3_finalize(ps);
	return -1;
}

static int s_writes(struct s_req *q)
{
	for (size_t k = 0; k < q->sv->nwrites; k++) {
		const struct sm_stmt *st = &q->sv->writes[k];
		if (st->has_for_each) {
			struct s_val v;
			s_get(q->body, &st->for_each, SM_IDX_NONE, &v);
			for (size_t i = 0; v.list && i < v.count; i++)
				if (s_write_once(q, st, (long)i) != 0)
					return -1;
		} else if (s_write_once(q, st, SM_IDX_NONE) != 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- idempotency ----------------------------------------------------- */

/* The key "len:value;..." of the request (malloc'd), or NULL when answered. */
static char *s_idem_key(struct s_req *q)
{
	size_t cap = 64, len = 0;
	char *k = malloc(cap);
	if (!k) {
		s_internal(q, "out of memory");
		return NULL;
	}
	k[0] = '\0';
	for (size_t i = 0; i < q->sv->nkeys; i++) {
		const struct sm_path *p = &q->sv->keys[i];
		struct s_val v;
		s_get(q->body, p, SM_IDX_NONE, &v);
		char name[256], num[32];
		sm_path_name(p, SM_IDX_NONE, name, sizeof name);
		if (!v.present) {
			s_error(q, E_BAD, name, "%s is required (it identifies the request: a repeat with the same "
						"value returns the same result)", name);
			free(k);
			return NULL;
		}
		const char *s = num;
		size_t n;
		if (v.f->type == PROTOBUF_C_TYPE_STRING || v.f->type == PROTOBUF_C_TYPE_BYTES) {
			if (v.f->type == PROTOBUF_C_TYPE_STRING) {
				const char *why = s_text_refusal(v.s, v.len, s_max_chars(q->sv, p));
				if (why) {
					s_error(q, E_BAD, name, "%s %s", name, why);
					free(k);
					return NULL;
				}
			}
			s = v.s;
			n = v.len;
		} else if (v.f->type == PROTOBUF_C_TYPE_UINT64 || v.f->type == PROTOBUF_C_TYPE_FIXED64) {
			n = (size_t)snprintf(num, sizeof num, "%" PRIu64, v.u);
		} else {
			n = (size_t)snprintf(num, sizeof num, "%" PRId64, v.i);
		}
		if (len + n + 32 > cap) {
			cap = len + n + 64;
			char *nk = realloc(k, cap);
			if (!nk) {
				free(k);
				s_internal(q, "out of memory");
				return NULL;
			}
			k = nk;
		}
		len += (size_t)snprintf(k + len, cap - len, "%zu:", n);
		memcpy(k + len, s, n);
		len += n;
		k[len++] = ';';
		k[len] = '\0';
	}
	return k;
}

/* ---- one request ----------------------------------------------------- */

static void s_rollback(struct s_req *q)
{
	if (q->in_txn)
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	q->in_txn = 0;
}

static void s_handle(struct dept *d, const struct qiao_request *rq, const ProtobufCMessage *body,
		     struct qiao_responder *r)
{
	struct s_req q = {.d = d, .rq = rq, .body = body, .r = r};
	q.sv = sm_service(s_map, rq->service);
	if (!q.sv) {
		dept_error(&q.r, E_INTERNAL, NULL, "no mapping for %.100s", rq->service);
		return;
	}
	if (s_checks(&q) != 0)
		return;
	const struct sm_service *sv = q.sv;
	uint8_t hash[32];
	char *key = NULL;
	if (sv->nkeys) {
		if (!(key = s_idem_key(&q)))
			return;
		size_t n = protobuf_c_message_get_packed_size(body);
		uint8_t *b = malloc(n ? n : 1);
		if (!b) {
			free(key);
			s_internal(&q, "out of memory");
			return;
		}
		protobuf_c_message_pack(body, b);
		crypto_hash_sha256(hash, b, n);
		free(b);
	}
	ProtobufCMessage *resp = s_msg_new(sv->resp);
	uint8_t *out = NULL;
	size_t outlen = 0;
	int replay = 0;
	if (!resp) {
		free(key);
		s_internal(&q, "out of memory");
		return;
	}
	q.db = dept_db_lock(d);
	char *emsg = NULL;
	if (sqlite3_exec(q.db, sv->nwrites ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, &emsg) != SQLITE_OK) {
		s_internal(&q, "BEGIN: %s", emsg ? emsg : sqlite3_errmsg(q.db));
		sqlite3_free(emsg);
		goto done;
	}
	q.in_txn = 1;
	if (key) {
		sqlite3_stmt *ps = NULL;
		if (sqlite3_prepare_v2(q.db, "SELECT request_sha256, response FROM qiao_sql_idempotency "
					     "WHERE service = ? AND idem_key = ?", -1, &ps, NULL) != SQLITE_OK) {
			s_internal(&q, "the idempotency table: %s", sqlite3_errmsg(q.db));
			sqlite3_finalize(ps);
			goto done;
		}
		sqlite3_bind_text(ps, 1, sv->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(ps, 2, key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(ps);
		if (rc == SQLITE_ROW) {
			const void *h = sqlite3_column_blob(ps, 0);
			int hl = sqlite3_column_bytes(ps, 0);
			if (hl != 32 || !h || memcmp(h, hash, 32) != 0) {
				char name[256];
				sm_path_name(&sv->keys[0], SM_IDX_NONE, name, sizeof name);
				s_error(&q, E_REJECTED, name, "%s was already used for a different request (a repeat "
							      "must be the same request)", name);
			} else {
				int n = sqlite3_column_bytes(ps, 1);
				out = malloc(n > 0 ? (size_t)n : 1);
				if (out && n > 0)
					memcpy(out, sqlite3_column_blob(ps, 1), (size_t)n);
				outlen = n > 0 ? (size_t)n : 0;
				replay = out != NULL;
				if (!out)
					s_internal(&q, "out of memory");
			}
			sqlite3_finalize(ps);
			goto done;
		}
		sqlite3_finalize(ps);
		if (rc != SQLITE_DONE) {
			s_internal(&q, "the idempotency table: %s", sqlite3_errmsg(q.db));
			goto done;
		}
	}
	for (size_t k = 0; k < sv->nrefuse; k++)
		if (s_refuse(&q, &sv->refuse[k]) != 0)
			goto done;
	if (s_writes(&q) != 0)
		goto done;
	for (size_t k = 0; k < sv->nqueries; k++) {
		long rows = s_query(&q, &sv->queries[k], resp);
		if (rows < 0)
			goto done;
		if (k == 0 && rows == 0 && sv->no_row == SM_NO_ROW_NOT_FOUND) {
			s_error(&q, E_NOTFOUND, NULL, "%s",
				sv->not_found_message ? sv->not_found_message : "no record matches the request");
			goto done;
		}
	}
	outlen = protobuf_c_message_get_packed_size(resp);
	out = malloc(outlen ? outlen : 1);
	if (!out) {
		s_internal(&q, "out of memory");
		goto done;
	}
	protobuf_c_message_pack(resp, out);
	if (key) {
		sqlite3_stmt *ps = NULL;
		int rc = sqlite3_prepare_v2(q.db, "INSERT INTO qiao_sql_idempotency (service, idem_key, request_sha256, "
						  "response, requester, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
					    -1, &ps, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(ps, 1, sv->name, -1, SQLITE_STATIC);
			sqlite3_bind_text(ps, 2, key, -1, SQLITE_STATIC);
			sqlite3_bind_blob(ps, 3, hash, 32, SQLITE_STATIC);
			sqlite3_bind_blob(ps, 4, out, (int)outlen, SQLITE_STATIC);
			sqlite3_bind_text(ps, 5, rq->requester, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ps, 6, qiao_now_ms());
			rc = sqlite3_step(ps);
		}
		sqlite3_finalize(ps);
		if (rc != SQLITE_DONE) {
			s_internal(&q, "storing the result: %s", sqlite3_errmsg(q.db));
			free(out);
			out = NULL;
			goto done;
		}
	}
	if (sqlite3_exec(q.db, "COMMIT", NULL, NULL, &emsg) != SQLITE_OK) {
		s_internal(&q, "COMMIT: %s", emsg ? emsg : sqlite3_errmsg(q.db));
		sqlite3_free(emsg);
		free(out);
		out = NULL;
		goto done;
	}
	q.in_txn = 0;
done:
	s_rollback(&q); /* no-op after COMMIT */
	dept_db_unlock(d);
	q.db = NULL;
	if (out && q.r) {
		if (replay)
			dept_log(d, "%s: repeated request from %s answered with the stored result", sv->name,
				 rq->requester);
		qiao_respond(&q.r, out, outlen);
	} else if (q.r) {
		s_internal(&q, "no answer was produced");
	}
	free(out);
	free(key);
	protobuf_c_message_free_unpacked(resp, NULL);
}

/* ---- start-up -------------------------------------------------------- */

static char *s_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);
	while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/*
 * The database the statements are checked against before connecting: the
 * existing `db` (read-only), or, when it does not exist yet, an in-memory
 * one built from `schema`.  NULL with err[] when neither works.
 */
static sqlite3 *s_open_check_db(const char *dbp, const char *schema, char *err, size_t errlen)
{
	struct stat sb;
	sqlite3 *db = NULL;
	if (dbp && stat(dbp, &sb) == 0) {
		if (sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot open %s: %s", dbp, db ? sqlite3_errmsg(db) : "out of memory");
			sqlite3_close(db);
			return NULL;
		}
		return db;
	}
	if (!schema) {
		snprintf(err, errlen, "%s does not exist and no --schema to check the mapping against",
			 dbp ? dbp : "no --db");
		return NULL;
	}
	char *sql = s_read_file(schema);
	if (!sql) {
		snprintf(err, errlen, "cannot read %s: %s", schema, strerror(errno));
		return NULL;
	}
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: out of memory");
		sqlite3_close(db);
		free(sql);
		return NULL;
	}
	char *emsg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &emsg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", schema, emsg ? emsg : sqlite3_errmsg(db));
		sqlite3_free(emsg);
		sqlite3_close(db);
		db = NULL;
	}
	free(sql);
	return db;
}

static int s_has_keys(void)
{
	for (size_t i = 0; i < s_map->n; i++)
		if (s_map->svc[i].nkeys)
			return 1;
	return 0;
}

static struct dept_service *s_services;

/* dept_def.init: the real database is open. */
static int s_init(struct dept *d)
{
	sqlite3 *db = dept_db_lock(d);
	char err[1200] = "";
	char *emsg = NULL;
	int rc = 0;
	if (s_has_keys() && sqlite3_exec(db, S_IDEM_DDL, NULL, NULL, &emsg) != SQLITE_OK) {
		snprintf(err, sizeof err, "cannot create qiao_sql_idempotency: %s", emsg ? emsg : sqlite3_errmsg(db));
		rc = 1;
	}
	sqlite3_free(emsg);
	if (!rc && sm_check_db(s_map, db, err, sizeof err) != 0)
		rc = 1;
	dept_db_unlock(d);
	if (rc) {
		fprintf(stderr, "qiao-sql: %s\n", err);
		/* dept_main() returns an init failure without closing what it
		 * opened; exiting here keeps its state reachable on the stack. */
		free(s_services);
		sm_destroy(&s_map);
		exit(1);
	}
	dept_log(d, "mapping %s: %zu services", s_map->file, s_map->n);
	return 0;
}

static void s_usage(FILE *out)
{
	fprintf(out,
		"usage: qiao-sql --mapping FILE --endpoint tcp://HOST:PORT --key FILE --gateway-curve B64\n"
		"                --db FILE [--schema FILE] [--seed FILE] [--config FILE] [--threads N] [-v]\n"
		"       qiao-sql --mapping FILE --check (--db FILE | --schema FILE)\n"
		"       qiao-sql --list-types\n"
		"\n"
		"The generic SQL adapter: answers the qiao.v1 services the mapping file describes\n"
		"from the department's own SQLite database (docs/adapter-guide.md, \"Plugging in an\n"
		"existing database\").  The mapping is checked at start-up against the message types\n"
		"and the database; any error stops the adapter, naming the file and line.\n"
		"\n"
		"  --mapping FILE   the mapping file (libconfig syntax)\n"
		"  --check          check the mapping against --db (or a scratch database built from\n"
		"                   --schema), print \"mapping OK\" and exit\n"
		"  --list-types     print every qiao.v1 message type a mapping may name\n"
		"  other options    as for every department adapter (adapters/dept/dept.h)\n"
		"\n"
		"Example:\n"
		"  qiao-sql --mapping adapters/sql/example/mapping.conf --check \\\n"
		"           --schema adapters/sql/example/schema.sql\n");
	if (s_map) {
		fprintf(out, "\nServices of %s:\n", s_map->file);
		for (size_t i = 0; i < s_map->n; i++)
			fprintf(out, "  %-28s %s -> %s%s%s\n", s_map->svc[i].name, s_map->svc[i].req->name,
				s_map->svc[i].resp->name, s_map->svc[i].description ? "  " : "",
				s_map->svc[i].description ? s_map->svc[i].description : "");
	}
}

/* The value of option `name` ("--db") in argv, either "--db X" or "--db=X". */
static const char *s_opt(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], name) == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mapping = NULL;
	int check = 0, list = 0, help = 0;
	char **dargv = calloc((size_t)argc + 1, sizeof *dargv);
	int dargc = 0;
	if (!dargv)
		return 1;
	dargv[dargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mapping") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "qiao-sql: --mapping needs a file\n");
				free(dargv);
				return 2;
			}
			mapping = argv[++i];
		} else if (strncmp(argv[i], "--mapping=", 10) == 0) {
			mapping = argv[i] + 10;
		} else if (strcmp(argv[i], "--check") == 0) {
			check = 1;
		} else if (strcmp(argv[i], "--list-types") == 0) {
			list = 1;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			help = 1;
		} else {
			dargv[dargc++] = argv[i];
		}
	}
	if (list) {
		for (size_t i = 0; i < qiao_type_count(); i++)
			printf("%s\n", qiao_type_at(i)->name);
		free(dargv);
		return 0;
	}
	char err[1200];
	if (mapping && sm_load(mapping, &s_map, err, sizeof err) != 0) {
		fprintf(stderr, "qiao-sql: %s\n", err);
		free(dargv);
		return 1;
	}
	if (help || !mapping) {
		s_usage(help ? stdout : stderr);
		if (!help)
			fprintf(stderr, "\nqiao-sql: --mapping FILE is required\n");
		sm_destroy(&s_map);
		free(dargv);
		return help ? 0 : 2;
	}
	/* the statements against the database, before anything connects */
	const char *dbp = s_opt(argc, argv, "--db"), *schema = s_opt(argc, argv, "--schema");
	struct stat sb;
	int rc = 0;
	if (check || (dbp && stat(dbp, &sb) == 0) || schema) {
		sqlite3 *db = s_open_check_db(dbp, schema, err, sizeof err);
		if (!db || sm_check_db(s_map, db, err, sizeof err) != 0) {
			fprintf(stderr, "qiao-sql: %s\n", err);
			rc = 1;
		}
		sqlite3_close(db);
	}
	if (rc || check) {
		if (!rc)
			printf("mapping OK: %s, %zu service%s\n", mapping, s_map->n, s_map->n == 1 ? "" : "s");
		sm_destroy(&s_map);
		free(dargv);
		return rc;
	}
	s_services = calloc(s_map->n, sizeof *s_services);
	if (!s_services) {
		sm_destroy(&s_map);
		free(dargv);
		return 1;
	}
	for (size_t i = 0; i < s_map->n; i++)
		s_services[i] = (struct dept_service){s_map->svc[i].name, s_map->svc[i].req, s_map->svc[i].resp,
						      s_handle};
	const struct dept_def def = {"sql", s_services, s_map->n, s_init};
	rc = dept_main(dargc, dargv, &def);
	free(s_services);
	sm_destroy(&s_map);
	free(dargv);
	return rc;
}
