/*
 * market.c - qiao-market, the market regulator's (市场监督管理局) adapter:
 * electronic business licences (电子营业执照) and the other licences it
 * issues, from its licence library (schema.sql).
 *
 *   licence-issue.v1      issue a licence from a draft (idempotent by 申请编号)
 *   licence-by-id.v1      one licence, as stored and signed
 *   licence-by-holder.v1  a holder's licences, newest first
 *   licence-revoke.v1     暂扣 / 撤销 / 注销 / 吊销: a new signed version
 *
 * Every version of every licence is signed once (dept_issuer_sign, domain
 * qiao.v1.licence) and its exact bytes are stored in dzzz_bb; answers serve
 * those bytes, never a re-encoding.  Seeded licences are given their
 * 证照标识 and signed at the first start (s_init).
 *
 * Every issue and status change also writes a qiao.v1.LicenceEvent into the
 * outbox dzzz_sjfb in the same transaction; a publisher thread sends the
 * unpublished events in order to the gateway's licence-publish.v1 and marks
 * them published when the gateway answers.  See "Publisher" below for how
 * it shares the process's shutdown with dept_main().
 */
#include "dept.h"
#include "dept_util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "licence.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_issuer.h"

#define EC(x) QIAO__V1__ERROR_CODE__##x
#define LS(x) QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_##x
#define HT(x) QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_##x
#define EV(x) QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_##x

#define LIC_PREFIX "1.2.156.3005.2."
#define BY_HOLDER_MAX 256
#define DEFAULT_ISSUER_NAME "鄂尔多斯市市场监督管理局"
#define DEFAULT_PUBLISH "11150600MB0K24684F/gateway/licence-publish.v1"
#define BUSINESS_LICENCE "营业执照"

/* ---- small checks ------------------------------------------------------- */

static bool s_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "YYYY-MM-DD", a real calendar date between 1900 and 2999. */
static bool s_date_ok(const char *s)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !s_digits(s, 4) || !s_digits(s + 5, 2) ||
	    !s_digits(s + 8, 2))
		return false;
	int y = atoi(s), m = atoi(s + 5), dd = atoi(s + 8);
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || dd < 1)
		return false;
	int max = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return dd <= max;
}

/* At most `max` bytes of [A-Za-z0-9` extra`]. */
static bool s_charset(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr(extra, c)))
			return false;
	}
	return true;
}

/* Optional free text: valid UTF-8 of at most maxchars characters. */
static int s_check_opt_text(struct qiao_responder **r, const char *v, const char *field, long maxchars)
{
	if (!v || !v[0])
		return 0;
	return dept_check_text(r, v, field, maxchars);
}

static int s_check_date(struct qiao_responder **r, const char *v, const char *field, bool optional)
{
	if ((!v || !v[0]) && optional)
		return 0;
	if (!v || !s_date_ok(v)) {
		dept_error(r, EC(BAD_REQUEST), field, "%s '%.20s' is not a date YYYY-MM-DD", field, v ? v : "");
		return -1;
	}
	return 0;
}

/* 证照类型代码: a USCC (the defining authority) + 3 digits. */
static int s_check_type_code(struct qiao_responder **r, const char *v, const char *field, bool optional)
{
	if (!v || !v[0]) {
		if (optional)
			return 0;
		dept_error(r, EC(BAD_REQUEST), field, "%s is required", field);
		return -1;
	}
	char why[200] = "";
	char uscc[19];
	bool ok = strlen(v) == 21 && s_digits(v + 18, 3);
	if (!ok)
		snprintf(why, sizeof why, "expected the defining authority's USCC + 3 digits (21 characters)");
	if (ok) {
		memcpy(uscc, v, 18);
		uscc[18] = '\0';
		ok = qiao_id_check_uscc(NULL, uscc, why, sizeof why) == 0;
	}
	if (ok)
		return 0;
	dept_error(r, EC(INVALID_IDENTIFIER), field, "%s '%.40s' is not a licence type code: %s", field, v, why);
	return -1;
}

/* The holder code checked by its type; `tfield` names the type field. */
static int s_check_holder(struct qiao_responder **r, int type, const char *code, const char *field,
			  const char *tfield)
{
	if (type == HT(USCC))
		return dept_check_id(r, QIAO_ID_USCC, code, field, 0);
	if (type == HT(RESIDENT_ID))
		return dept_check_id(r, QIAO_ID_RESIDENT, code, field, 0);
	dept_error(r, EC(BAD_REQUEST), tfield, "%s must be USCC (001) or RESIDENT_ID (111)", tfield);
	return -1;
}

static const char *s_holder_code_str(int type)
{
	return type == HT(RESIDENT_ID) ? "111" : "001";
}

static int s_holder_type_of(const char *code)
{
	return strcmp(code, "111") == 0 ? HT(RESIDENT_ID) : HT(USCC);
}

static const char *s_status_code(int st)
{
	switch (st) {
	case LS(VALID): return "01";
	case LS(SUSPENDED): return "02";
	case LS(ANNULLED): return "03";
	case LS(CANCELLED): return "04";
	case LS(EXPIRED): return "05";
	case LS(REVOKED): return "07";
	default: return NULL;
	}
}

static int s_status_of(const char *code)
{
	int v = atoi(code);
	return s_status_code(v) ? v : 0;
}

static const char *s_status_name(int st)
{
	switch (st) {
	case LS(VALID): return "01 有效";
	case LS(SUSPENDED): return "02 暂扣";
	case LS(ANNULLED): return "03 撤销";
	case LS(CANCELLED): return "04 注销";
	case LS(EXPIRED): return "05 失效";
	case LS(REVOKED): return "07 吊销";
	default: return "未知";
	}
}

/* This department's USCC: the member id before '/'. */
static void s_own_uscc(const struct dept *d, char out[19])
{
	const char *m = dept_member(d);
	size_t n = strcspn(m, "/");
	if (n > 18)
		n = 18;
	memcpy(out, m, n);
	out[n] = '\0';
}

/* 1.2.156.3005.2.T.I.N.V.C with C = ISO 7064 MOD 37,36 over T‖I‖N‖V. */
static int s_make_licence_id(const char *t, const char *i, const char *n, const char *v, char *out, size_t outlen)
{
	char body[128];
	int k = snprintf(body, sizeof body, "%s%s%s%s", t, i, n, v);
	if (k < 0 || (size_t)k >= sizeof body)
		return -1;
	char c = qiao_id_mod3736(body, (size_t)k);
	if (!c)
		return -1;
	k = snprintf(out, outlen, LIC_PREFIX "%s.%s.%s.%s.%c", t, i, n, v, c);
	if (k < 0 || (size_t)k >= outlen)
		return -1;
	return qiao_id_check_licence(out, NULL, 0) == 0 ? 0 : -1;
}

/* Copy at most maxchars UTF-8 characters of s into out[outlen]. */
static void s_utf8_cut(char *out, size_t outlen, const char *s, long maxchars)
{
	size_t i = 0;
	long chars = 0;
	while (s[i] && chars < maxchars) {
		size_t len = 1;
		unsigned char c = (unsigned char)s[i];
		if (c >= 0xf0)
			len = 4;
		else if (c >= 0xe0)
			len = 3;
		else if (c >= 0xc0)
			len = 2;
		if (i + len >= outlen)
			break;
		i += len;
		chars++;
	}
	memcpy(out, s, i);
	out[i] = '\0';
}

/* ---- SQLite, parameters always bound ------------------------------------ */

/* ---- stored signed versions --------------------------------------------- */

/* One signed version as stored (dzzz_bb), wired up as a ServedLicence.  The
 * protobuf structs point into the struct itself: never copy it. */
struct stored {
	uint8_t *bytes;
	size_t len;
	char key_id[QIAO_KEY_ID_MAX];
	uint8_t sigv[64];
	Qiao__V1__IssuerSignature sig;
	Qiao__V1__SignedLicence sl;
	Qiao__V1__ServedLicence sv;
};

#define STORED_COLS "b.zzbw, b.qmsf, b.qmmy, b.qmz, b.qmsj"

/* Load the 5 STORED_COLS starting at column `col`.  0 or -1. */
static int s_stored_load(struct stored *s, sqlite3_stmt *st, int col)
{
	memset(s, 0, sizeof *s);
	const void *b = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);
	const void *sg = sqlite3_column_blob(st, col + 3);
	int sn = sqlite3_column_bytes(st, col + 3);
	if (!b || n <= 0 || !sg || sn != 64)
		return -1;
	s->bytes = malloc((size_t)n);
	if (!s->bytes)
		return -1;
	memcpy(s->bytes, b, (size_t)n);
	s->len = (size_t)n;
	memcpy(s->sigv, sg, 64);
	snprintf(s->key_id, sizeof s->key_id, "%s", dept_col_text(st, col + 2));
	qiao__v1__issuer_signature__init(&s->sig);
	s->sig.algorithm = (Qiao__V1__Algorithm)sqlite3_column_int(st, col + 1);
	s->sig.key_id = s->key_id;
	s->sig.signature.data = s->sigv;
	s->sig.signature.len = 64;
	s->sig.domain = (char *)QIAO_DOMAIN_LICENCE;
	s->sig.signed_ms = sqlite3_column_int64(st, col + 4);
	qiao__v1__signed_licence__init(&s->sl);
	s->sl.licence.data = s->bytes;
	s->sl.licence.len = s->len;
	s->sl.signature = &s->sig;
	qiao__v1__served_licence__init(&s->sv);
	s->sv.licence = &s->sl;
	return 0;
}

static void s_stored_free(struct stored *s)
{
	free(s->bytes);
	s->bytes = NULL;
}

/* Store a signed version. */
static int s_version_put(struct dept *d, sqlite3 *db, long long zzid, long long bbh, int status, const uint8_t *b,
			 size_t n, const Qiao__V1__IssuerSignature *sig)
{
	return dept_sql_exec(d, db,
		      "INSERT INTO dzzz_bb (zzid, bbh, zzzt, zzbw, qmsf, qmmy, qmz, qmsj) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		      "iitbitbi", zzid, bbh, s_status_code(status), (const void *)b, (int)n, (long long)sig->algorithm,
		      sig->key_id, (const void *)sig->signature.data, (int)sig->signature.len, (long long)sig->signed_ms);
}

/* Put a LicenceEvent for a new signed version into the outbox. */
static int s_outbox_add(struct dept *d, sqlite3 *db, long long zzid, const char *licence_id, uint64_t version,
			int event_type, int status, const char *reason, int64_t event_ms, const uint8_t *b, size_t n,
			Qiao__V1__IssuerSignature *sig)
{
	Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
	sl.licence.data = (uint8_t *)b;
	sl.licence.len = n;
	sl.signature = sig;
	Qiao__V1__LicenceEvent ev = QIAO__V1__LICENCE_EVENT__INIT;
	char why[1600];
	s_utf8_cut(why, sizeof why, reason, 500);
	ev.event_type = (Qiao__V1__LicenceEventType)event_type;
	ev.licence_id = (char *)licence_id;
	ev.version = version;
	ev.event_ms = event_ms;
	ev.new_status = (Qiao__V1__LicenceStatus)status;
	ev.reason = why;
	ev.licence = &sl;
	size_t en = qiao__v1__licence_event__get_packed_size(&ev);
	uint8_t *eb = malloc(en ? en : 1);
	if (!eb)
		return -1;
	qiao__v1__licence_event__pack(&ev, eb);
	int rc = dept_sql_exec(d, db, "INSERT INTO dzzz_sjfb (zzid, zzbs, bbh, sjlx, sjsj, sjbw) VALUES (?, ?, ?, ?, ?, ?)",
			"itiiib", zzid, licence_id, (long long)version, (long long)event_type, (long long)event_ms,
			(const void *)eb, (int)en);
	free(eb);
	return rc;
}

/* ---- licence-by-id.v1 ----------------------------------------------------- */

static void on_by_id(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
		     struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__LicenceByIdRequest *q = (const Qiao__V1__LicenceByIdRequest *)body;
	if (dept_check_id(&r, QIAO_ID_LICENCE, q->licence_id, "licence_id", 0) != 0 ||
	    s_check_opt_text(&r, q->purpose, "purpose", 200) != 0)
		return;
	struct stored s;
	int found = 0, holder_type = 0;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = dept_sql_query(d, db,
				   "SELECT d.czztdmlx, " STORED_COLS " FROM dzzz d JOIN dzzz_bb b"
				   " ON b.zzid = d.zzid AND b.bbh = d.bbh WHERE d.zzbs = ?",
				   "t", q->licence_id);
	int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
	if (rc == SQLITE_ROW) {
		holder_type = s_holder_type_of(dept_col_text(st, 0));
		found = s_stored_load(&s, st, 1) == 0 ? 1 : -1;
	} else if (rc != SQLITE_DONE) {
		found = -1;
	}
	sqlite3_finalize(st);
	dept_db_unlock(d);
	if (found < 0) {
		dept_error(&r, EC(INTERNAL), NULL, "the licence library could not be read");
		return;
	}
	if (!found) {
		dept_error(&r, EC(NOT_FOUND), "licence_id", "no licence %s in this issuer's library", q->licence_id);
		return;
	}
	if (holder_type == HT(RESIDENT_ID) && !q->purpose[0]) {
		dept_error(&r, EC(BAD_REQUEST), "purpose", "purpose is required: the holder of %s is a natural person",
			   q->licence_id);
	} else {
		Qiao__V1__LicenceByIdReply rep = QIAO__V1__LICENCE_BY_ID_REPLY__INIT;
		rep.licence = &s.sv;
		dept_reply(&r, &rep.base);
	}
	s_stored_free(&s);
}

/* ---- licence-by-holder.v1 ------------------------------------------------- */

static void on_by_holder(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			 struct qiao_responder *r)
{
	const Qiao__V1__LicenceByHolderRequest *q = (const Qiao__V1__LicenceByHolderRequest *)body;
	if (s_check_holder(&r, q->holder_code_type, q->holder_code, "holder_code", "holder_code_type") != 0 ||
	    s_check_type_code(&r, q->type_code, "type_code", true) != 0 ||
	    dept_check_text(&r, q->purpose, "purpose", 200) != 0)
		return;
	const char *hp = req->hdr->purpose;
	if (hp && hp[0] && strcmp(hp, q->purpose) != 0) {
		dept_error(&r, EC(BAD_REQUEST), "purpose", "purpose must agree with the header's purpose");
		return;
	}
	struct stored *s = calloc(BY_HOLDER_MAX, sizeof *s);
	Qiao__V1__ServedLicence **sv = calloc(BY_HOLDER_MAX, sizeof *sv);
	size_t n = 0;
	int bad = !s || !sv;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = bad ? NULL
			       : dept_sql_query(d, db,
					 "SELECT " STORED_COLS " FROM dzzz d JOIN dzzz_bb b"
					 " ON b.zzid = d.zzid AND b.bbh = d.bbh"
					 " WHERE d.czztdm = ?1 AND d.czztdmlx = ?2 AND (?3 = '' OR d.zzlxdm = ?3)"
					 " AND (?4 OR d.zzzt = '01') ORDER BY d.qfrq DESC, d.zzid DESC LIMIT 256",
					 "ttti", q->holder_code, s_holder_code_str(q->holder_code_type), q->type_code,
					 (long long)(q->include_inactive ? 1 : 0));
	int rc = st ? SQLITE_ROW : SQLITE_ERROR;
	while (st && n < BY_HOLDER_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s_stored_load(&s[n], st, 0) != 0) {
			bad = 1;
			break;
		}
		sv[n] = &s[n].sv;
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		bad = 1;
	sqlite3_finalize(st);
	dept_db_unlock(d);
	if (bad) {
		dept_error(&r, EC(INTERNAL), NULL, "the licence library could not be read");
	} else {
		Qiao__V1__LicenceByHolderReply rep = QIAO__V1__LICENCE_BY_HOLDER_REPLY__INIT;
		rep.n_licences = n;
		rep.licences = sv;
		dept_reply(&r, &rep.base);
	}
	for (size_t i = 0; s && i < n; i++)
		s_stored_free(&s[i]);
	free(s);
	free(sv);
}

/* ---- licence-issue.v1 ----------------------------------------------------- */

static int s_check_draft(struct qiao_responder **r, const Qiao__V1__ElectronicLicence *l)
{
	if (dept_check_text(r, l->name, "draft.name", 100) != 0 ||
	    s_check_type_code(r, l->type_code, "draft.type_code", false) != 0 ||
	    dept_check_text(r, l->number, "draft.number", 64) != 0 ||
	    s_check_opt_text(r, l->issuer_name, "draft.issuer_name", 100) != 0 ||
	    dept_check_id(r, QIAO_ID_USCC, l->issuer_uscc, "draft.issuer_uscc", 1) != 0 ||
	    dept_check_text(r, l->holder_name, "draft.holder_name", 100) != 0 ||
	    s_check_holder(r, l->holder_code_type, l->holder_code, "draft.holder_code", "draft.holder_code_type") != 0 ||
	    s_check_date(r, l->issue_date, "draft.issue_date", true) != 0 ||
	    s_check_date(r, l->valid_from, "draft.valid_from", true) != 0 ||
	    s_check_date(r, l->valid_until, "draft.valid_until", true) != 0)
		return -1;
	if (strlen(l->jurisdiction_code) != 6 || !s_digits(l->jurisdiction_code, 6)) {
		dept_error(r, EC(BAD_REQUEST), "draft.jurisdiction_code",
			   "draft.jurisdiction_code must be a 6-digit division code (GB/T 2260)");
		return -1;
	}
	if (strcmp(l->name, BUSINESS_LICENCE) == 0 && strcmp(l->number, l->holder_code) != 0) {
		dept_error(r, EC(BAD_REQUEST), "draft.number", "the number of a 营业执照 is its holder's USCC");
		return -1;
	}
	if (l->n_related_licence_ids > 16) {
		dept_error(r, EC(BAD_REQUEST), "draft.related_licence_ids", "at most 16 related licence ids");
		return -1;
	}
	for (size_t i = 0; i < l->n_related_licence_ids; i++)
		if (dept_check_id(r, QIAO_ID_LICENCE, l->related_licence_ids[i], "draft.related_licence_ids", 0) != 0)
			return -1;
	if (l->n_items > 128) {
		dept_error(r, EC(BAD_REQUEST), "draft.items", "at most 128 face items");
		return -1;
	}
	for (size_t i = 0; i < l->n_items; i++)
		if (dept_check_text(r, l->items[i]->name, "draft.items.name", 64) != 0 ||
		    s_check_opt_text(r, l->items[i]->value, "draft.items.value", 4000) != 0)
			return -1;
	if (l->content_type[0] && !s_charset(l->content_type, 128, "_.")) {
		dept_error(r, EC(BAD_REQUEST), "draft.content_type", "draft.content_type: at most 128 of [A-Za-z0-9_.]");
		return -1;
	}
	if (l->content.len && !l->content_type[0]) {
		dept_error(r, EC(BAD_REQUEST), "draft.content_type", "draft.content needs its content_type");
		return -1;
	}
	if (l->content.len > (1u << 20)) {
		dept_error(r, EC(BAD_REQUEST), "draft.content", "draft.content: at most 1 MiB");
		return -1;
	}
	if (l->layout_file_sha256.len != 0 && l->layout_file_sha256.len != 32) {
		dept_error(r, EC(BAD_REQUEST), "draft.layout_file_sha256", "draft.layout_file_sha256 is 32 bytes");
		return -1;
	}
	return 0;
}

enum { R_OK, R_REPEAT, R_REFUSED, R_ERROR, R_NOT_FOUND };

/* What a locked step decided, answered after the lock is released. */
struct outcome {
	int kind;
	int code;           /* R_ERROR: the error code */
	const char *field;  /* R_ERROR */
	char msg[600];      /* R_REFUSED: refusal reason; R_ERROR: message */
	struct stored s;    /* R_OK / R_REPEAT: the signed version */
	char licence_id[160]; /* issue, R_OK / R_REPEAT: its 证照标识 */
};

static int s_fail(struct outcome *o, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int s_fail(struct outcome *o, int code, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof o->msg, fmt, ap);
	va_end(ap);
	o->kind = code == 0 ? R_REFUSED : R_ERROR;
	o->code = code;
	o->field = field;
	return -1;
}

/* Load the signed version (zzid, bbh) into o->s. */
static int s_load_version(struct dept *d, sqlite3 *db, long long zzid, long long bbh, struct outcome *o)
{
	sqlite3_stmt *st =
		dept_sql_query(d, db, "SELECT " STORED_COLS " FROM dzzz_bb b WHERE b.zzid = ? AND b.bbh = ?", "ii", zzid, bbh);
	int rc = st && sqlite3_step(st) == SQLITE_ROW && s_stored_load(&o->s, st, 0) == 0 ? 0 : -1;
	sqlite3_finalize(st);
	if (rc)
		s_fail(o, EC(INTERNAL), NULL, "version %lld of licence row %lld is missing", bbh, zzid);
	return rc;
}

/* Sign `b` and keep the result in o->s (which takes b). */
static int s_sign_into(struct dept *d, uint8_t *b, size_t n, struct outcome *o)
{
	struct dept_sig_store ss;
	Qiao__V1__IssuerSignature sig = QIAO__V1__ISSUER_SIGNATURE__INIT;
	if (dept_issuer_sign(d, QIAO_DOMAIN_LICENCE, b, n, &sig, &ss) != 0) {
		free(b);
		return s_fail(o, EC(INTERNAL), NULL, "the licence could not be signed");
	}
	struct stored *s = &o->s;
	memset(s, 0, sizeof *s);
	s->bytes = b;
	s->len = n;
	snprintf(s->key_id, sizeof s->key_id, "%s", ss.key_id);
	memcpy(s->sigv, ss.sig, 64);
	s->sig = sig;
	s->sig.key_id = s->key_id;
	s->sig.signature.data = s->sigv;
	s->sig.signature.len = 64;
	s->sig.domain = (char *)QIAO_DOMAIN_LICENCE;
	qiao__v1__signed_licence__init(&s->sl);
	s->sl.licence.data = s->bytes;
	s->sl.licence.len = s->len;
	s->sl.signature = &s->sig;
	qiao__v1__served_licence__init(&s->sv);
	s->sv.licence = &s->sl;
	return 0;
}

/* Pack l into a fresh buffer. */
static uint8_t *s_pack_licence(const Qiao__V1__ElectronicLicence *l, size_t *n)
{
	*n = qiao__v1__electronic_licence__get_packed_size(l);
	uint8_t *b = malloc(*n ? *n : 1);
	if (b)
		qiao__v1__electronic_licence__pack(l, b);
	return b;
}

/* The whole issue, inside one transaction. */
static int s_issue_locked(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			  const Qiao__V1__LicenceIssueRequest *q, struct outcome *o)
{
	const Qiao__V1__ElectronicLicence *dr = q->draft;
	char own[19], today[11];
	s_own_uscc(d, own);
	dept_date(today, 0);
	const char *holder_type = s_holder_code_str(dr->holder_code_type);

	/* a repeated application gets the licence it got the first time */
	sqlite3_stmt *st = dept_sql_query(d, db, "SELECT zzid, czztdm, czztdmlx, zzlxdm, zzbs FROM dzzz WHERE sqbh = ?",
				   "t", q->application_no);
	if (!st)
		return s_fail(o, EC(INTERNAL), NULL, "the licence library could not be read");
	if (sqlite3_step(st) == SQLITE_ROW) {
		long long zzid = sqlite3_column_int64(st, 0);
		bool same = strcmp(dept_col_text(st, 1), dr->holder_code) == 0 &&
			    strcmp(dept_col_text(st, 2), holder_type) == 0 &&
			    strcmp(dept_col_text(st, 3), dr->type_code) == 0;
		snprintf(o->licence_id, sizeof o->licence_id, "%s", dept_col_text(st, 4));
		sqlite3_finalize(st);
		if (!same)
			return s_fail(o, EC(REJECTED), "application_no",
				      "application %s was already used for another holder or licence type",
				      q->application_no);
		if (s_load_version(d, db, zzid, 1, o) != 0)
			return -1;
		o->kind = R_REPEAT;
		return 0;
	}
	sqlite3_finalize(st);

	/* the licence type: issued here, by this name, to this kind of holder */
	st = dept_sql_query(d, db, "SELECT zzlxmc, czztlx, wyyx FROM zzlx WHERE zzlxdm = ?", "t", dr->type_code);
	if (!st)
		return s_fail(o, EC(INTERNAL), NULL, "the licence types could not be read");
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return s_fail(o, 0, NULL, "本机关不签发类型代码为 %s 的证照", dr->type_code);
	}
	char tname[256];
	snprintf(tname, sizeof tname, "%s", dept_col_text(st, 0));
	bool holder_ok = strcmp(dept_col_text(st, 1), holder_type) == 0;
	bool unique = sqlite3_column_int(st, 2) != 0;
	sqlite3_finalize(st);
	if (strcmp(tname, dr->name) != 0)
		return s_fail(o, EC(BAD_REQUEST), "draft.name", "licence type %s is named %s, not %s", dr->type_code,
			      tname, dr->name);
	if (!holder_ok)
		return s_fail(o, 0, NULL, "%s的持证主体代码类型应为%s", tname,
			      strcmp(holder_type, "001") == 0 ? "居民身份证" : "统一社会信用代码");

	/* an entity's licence needs its registration, in force, under this name */
	if (dr->holder_code_type == HT(USCC)) {
		st = dept_sql_query(d, db, "SELECT entname, regstate FROM sczt WHERE uniscid = ?", "t", dr->holder_code);
		if (!st)
			return s_fail(o, EC(INTERNAL), NULL, "the register could not be read");
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			return s_fail(o, 0, NULL, "未查到统一社会信用代码为 %s 的市场主体登记信息", dr->holder_code);
		}
		char name[400], state[64];
		snprintf(name, sizeof name, "%s", dept_col_text(st, 0));
		snprintf(state, sizeof state, "%s", dept_col_text(st, 1));
		sqlite3_finalize(st);
		if (strcmp(state, "存续") != 0 && strcmp(state, "在业") != 0)
			return s_fail(o, 0, NULL, "市场主体 %s 的登记状态为%s，不予签发%s", dr->holder_code, state,
				      tname);
		if (strcmp(name, dr->holder_name) != 0)
			return s_fail(o, 0, NULL, "持证主体名称与登记名称“%s”不一致", name);
	}
	if (unique) {
		st = dept_sql_query(d, db,
			     "SELECT zzbs FROM dzzz WHERE czztdm = ? AND czztdmlx = ? AND zzlxdm = ?"
			     " AND zzzt IN ('01', '02') LIMIT 1",
			     "ttt", dr->holder_code, holder_type, dr->type_code);
		if (!st)
			return s_fail(o, EC(INTERNAL), NULL, "the licence library could not be read");
		if (sqlite3_step(st) == SQLITE_ROW) {
			char held[160];
			snprintf(held, sizeof held, "%s", dept_col_text(st, 0));
			sqlite3_finalize(st);
			return s_fail(o, 0, NULL, "持证主体已持有%s %s，不予重复签发", tname, held);
		}
		sqlite3_finalize(st);
	}

	/* the serial number: this year + the next sequence */
	char year[5];
	memcpy(year, today, 4);
	year[4] = '\0';
	st = dept_sql_query(d, db,
		     "INSERT INTO zzxlh (nd, dqz) VALUES (?, 1) ON CONFLICT (nd) DO UPDATE SET dqz = dqz + 1 RETURNING dqz",
		     "i", (long long)atoi(year));
	long long seq = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	char serial[32], id[160];
	if (seq < 1 || seq > 9999999)
		return s_fail(o, EC(INTERNAL), NULL, "no serial number left for %s", year);
	snprintf(serial, sizeof serial, "%s%07lld", year, seq);
	if (s_make_licence_id(dr->type_code, own, serial, "001", id, sizeof id) != 0)
		return s_fail(o, EC(INTERNAL), NULL, "could not make a licence id");

	/* the licence: the draft's metadata and content, the issuer's fields */
	int64_t now = qiao_now_ms();
	const char *issuer_name = dept_config(d, "issuer_name", DEFAULT_ISSUER_NAME);
	const char *issue_date = dr->issue_date[0] ? dr->issue_date : today;
	const char *valid_from = dr->valid_from[0] ? dr->valid_from : issue_date;
	if (strcmp(issue_date, today) > 0)
		return s_fail(o, EC(BAD_REQUEST), "draft.issue_date", "draft.issue_date %s is after today", issue_date);
	if (dr->valid_until[0] && strcmp(dr->valid_until, valid_from) < 0)
		return s_fail(o, EC(BAD_REQUEST), "draft.valid_until", "draft.valid_until is before valid_from");
	Qiao__V1__ElectronicLicence l = QIAO__V1__ELECTRONIC_LICENCE__INIT;
	l.licence_id = id;
	l.name = dr->name;
	l.type_code = dr->type_code;
	l.number = dr->number;
	l.issuer_name = (char *)issuer_name;
	l.issuer_uscc = own;
	l.jurisdiction_code = dr->jurisdiction_code;
	l.holder_name = dr->holder_name;
	l.holder_code = dr->holder_code;
	l.holder_code_type = dr->holder_code_type;
	l.issue_date = (char *)issue_date;
	l.valid_from = (char *)valid_from;
	l.valid_until = dr->valid_until;
	l.status = LS(VALID);
	l.n_related_licence_ids = dr->n_related_licence_ids;
	l.related_licence_ids = dr->related_licence_ids;
	l.version = 1;
	l.version_ms = now;
	l.content_type = dr->content_type;
	l.content = dr->content;
	l.layout_file_sha256 = dr->layout_file_sha256;
	Qiao__V1__LicenceItem *items = calloc(dr->n_items ? dr->n_items : 1, sizeof *items);
	Qiao__V1__LicenceItem **itemp = calloc(dr->n_items ? dr->n_items : 1, sizeof *itemp);
	if (!items || !itemp) {
		free(items);
		free(itemp);
		return s_fail(o, EC(INTERNAL), NULL, "out of memory");
	}
	for (size_t i = 0; i < dr->n_items; i++) {
		qiao__v1__licence_item__init(&items[i]);
		items[i].name = dr->items[i]->name;
		items[i].value = dr->items[i]->value;
		itemp[i] = &items[i];
	}
	l.n_items = dr->n_items;
	l.items = itemp;
	size_t n;
	uint8_t *b = s_pack_licence(&l, &n);
	free(items);
	free(itemp);
	if (!b)
		return s_fail(o, EC(INTERNAL), NULL, "out of memory");
	if (s_sign_into(d, b, n, o) != 0)
		return -1;

	/* the rows */
	if (dept_sql_exec(d, db,
		   "INSERT INTO dzzz (zzbs, zzmc, zzlxdm, zzbh, xlh, bbdm, qfjg, qfjgdm, gxsd, czzt, czztdm, czztdmlx,"
		   " qfrq, yxqqsrq, yxqjzrq, zzzt, bbh, bbsj, nrlx, nr, bswjzy, sqbh, sqf)"
		   " VALUES (?, ?, ?, ?, ?, '001', ?, ?, ?, ?, ?, ?, ?, ?, ?, '01', 1, ?, ?, ?, ?, ?, ?)",
		   "tttttttttttttTiTbbtt", id, dr->name, dr->type_code, dr->number, serial, issuer_name, own,
		   dr->jurisdiction_code, dr->holder_name, dr->holder_code, holder_type, issue_date, valid_from,
		   dr->valid_until, (long long)now, dr->content_type, (const void *)dr->content.data,
		   (int)dr->content.len, (const void *)dr->layout_file_sha256.data, (int)dr->layout_file_sha256.len,
		   q->application_no, req->requester) != 0)
		return s_fail(o, EC(INTERNAL), NULL, "the licence could not be stored");
	long long zzid = sqlite3_last_insert_rowid(db);
	for (size_t i = 0; i < dr->n_items; i++)
		if (dept_sql_exec(d, db, "INSERT INTO dzzz_zmxx (zzid, xh, xmmc, xmnr) VALUES (?, ?, ?, ?)", "iitt", zzid,
			   (long long)i + 1, dr->items[i]->name, dr->items[i]->value) != 0)
			return s_fail(o, EC(INTERNAL), NULL, "the face items could not be stored");
	for (size_t i = 0; i < dr->n_related_licence_ids; i++)
		if (dept_sql_exec(d, db,
			   "INSERT INTO dzzz_glzz (zzid, xh, glzzid, glzzbs) VALUES (?, ?, (SELECT zzid FROM dzzz WHERE"
			   " zzbs = ?3), ?3)",
			   "iit", zzid, (long long)i + 1, dr->related_licence_ids[i]) != 0)
			return s_fail(o, EC(INTERNAL), NULL, "the related licences could not be stored");
	char reason[200];
	snprintf(reason, sizeof reason, "签发 申请编号 %s", q->application_no);
	if (s_version_put(d, db, zzid, 1, LS(VALID), o->s.bytes, o->s.len, &o->s.sig) != 0 ||
	    s_outbox_add(d, db, zzid, id, 1, EV(ISSUED), LS(VALID), reason, now, o->s.bytes, o->s.len, &o->s.sig) != 0)
		return s_fail(o, EC(INTERNAL), NULL, "the signed licence could not be stored");
	snprintf(o->licence_id, sizeof o->licence_id, "%s", id);
	o->kind = R_OK;
	return 0;
}

/* Run `step` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK unless R_OK). */
static void s_in_txn(struct dept *d, sqlite3 *db, struct outcome *o, int ok)
{
	if (ok && o->kind == R_OK) {
		if (dept_sql_exec(d, db, "COMMIT", "") != 0) {
			s_stored_free(&o->s);
			s_fail(o, EC(INTERNAL), NULL, "the change could not be committed");
			dept_sql_exec(d, db, "ROLLBACK", "");
		}
	} else {
		dept_sql_exec(d, db, "ROLLBACK", "");
	}
}

static void on_issue(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
		     struct qiao_responder *r)
{
	const Qiao__V1__LicenceIssueRequest *q = (const Qiao__V1__LicenceIssueRequest *)body;
	if (dept_check_text(&r, q->application_no, "application_no", 64) != 0)
		return;
	if (!s_charset(q->application_no, 64, "._:-")) {
		dept_error(&r, EC(BAD_REQUEST), "application_no", "application_no: at most 64 of [A-Za-z0-9._:-]");
		return;
	}
	if (!q->draft) {
		dept_error(&r, EC(BAD_REQUEST), "draft", "draft is required");
		return;
	}
	if (s_check_draft(&r, q->draft) != 0)
		return;
	char own[19];
	s_own_uscc(d, own);
	if (q->draft->issuer_uscc[0] && strcmp(q->draft->issuer_uscc, own) != 0) {
		dept_error(&r, EC(BAD_REQUEST), "draft.issuer_uscc", "this issuer is %s, not %s", own,
			   q->draft->issuer_uscc);
		return;
	}
	struct outcome o = {.kind = R_ERROR};
	sqlite3 *db = dept_db_lock(d);
	int ok = dept_sql_exec(d, db, "BEGIN IMMEDIATE", "") == 0;
	if (!ok)
		s_fail(&o, EC(INTERNAL), NULL, "the licence library is busy");
	else
		ok = s_issue_locked(d, db, req, q, &o) == 0;
	s_in_txn(d, db, &o, ok);
	dept_db_unlock(d);
	Qiao__V1__LicenceIssueResult res = QIAO__V1__LICENCE_ISSUE_RESULT__INIT;
	switch (o.kind) {
	case R_OK:
	case R_REPEAT:
		if (o.kind == R_OK)
			dept_log(d, "issued %s to %s (application %s)", q->draft->name, q->draft->holder_code,
				 q->application_no);
		res.issued = 1;
		res.licence = &o.s.sl;
		res.licence_id = o.licence_id;
		dept_reply(&r, &res.base);
		s_stored_free(&o.s);
		break;
	case R_REFUSED:
		res.issued = 0;
		res.refusal_reason = o.msg;
		dept_reply(&r, &res.base);
		break;
	default: dept_error(&r, o.code, o.field, "%s", o.msg); break;
	}
}

/* ---- licence-revoke.v1 ---------------------------------------------------- */

static int s_revoke_locked(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			   const Qiao__V1__LicenceRevokeRequest *q, struct outcome *o)
{
	sqlite3_stmt *st = dept_sql_query(d, db,
				   "SELECT zzid, zzlxdm, czztdm, czztdmlx, zzzt, bbh, zzmc FROM dzzz WHERE zzbs = ?",
				   "t", q->licence_id);
	if (!st)
		return s_fail(o, EC(INTERNAL), NULL, "the licence library could not be read");
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		o->kind = R_NOT_FOUND;
		return -1;
	}
	long long zzid = sqlite3_column_int64(st, 0);
	char holder[64], holder_type[8], name[256];
	snprintf(holder, sizeof holder, "%s", dept_col_text(st, 2));
	snprintf(holder_type, sizeof holder_type, "%s", dept_col_text(st, 3));
	int cur = s_status_of(dept_col_text(st, 4));
	long long bbh = sqlite3_column_int64(st, 5);
	snprintf(name, sizeof name, "%s", dept_col_text(st, 6));
	sqlite3_finalize(st);

	/* the same decision again: the version it made */
	st = dept_sql_query(d, db, "SELECT xbbh FROM dzzz_ztbg WHERE zzid = ? AND jdswh = ? AND xzt = ?", "itt", zzid,
		     q->decision_no, s_status_code(q->new_status));
	if (!st)
		return s_fail(o, EC(INTERNAL), NULL, "the decisions could not be read");
	if (sqlite3_step(st) == SQLITE_ROW) {
		long long v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (s_load_version(d, db, zzid, v, o) != 0)
			return -1;
		o->kind = R_REPEAT;
		return 0;
	}
	sqlite3_finalize(st);
	if (cur == (int)q->new_status)
		return s_fail(o, 0, NULL, "证照 %s 已处于%s状态", q->licence_id, s_status_name(cur));
	if (cur != LS(VALID) && cur != LS(SUSPENDED))
		return s_fail(o, 0, NULL, "证照 %s 已%s，状态不能再变更", q->licence_id, s_status_name(cur));

	/* the new version: the current one with the new status */
	struct outcome prev = {.kind = R_ERROR};
	if (s_load_version(d, db, zzid, bbh, &prev) != 0)
		return s_fail(o, EC(INTERNAL), NULL, "%s", prev.msg);
	Qiao__V1__ElectronicLicence *l = qiao__v1__electronic_licence__unpack(NULL, prev.s.len, prev.s.bytes);
	s_stored_free(&prev.s);
	if (!l)
		return s_fail(o, EC(INTERNAL), NULL, "the stored version %lld does not decode", bbh);
	int64_t now = qiao_now_ms();
	l->status = q->new_status;
	l->version = (uint64_t)bbh + 1;
	l->version_ms = now;
	size_t n;
	uint8_t *b = s_pack_licence(l, &n);
	qiao__v1__electronic_licence__free_unpacked(l, NULL);
	if (!b)
		return s_fail(o, EC(INTERNAL), NULL, "out of memory");
	if (s_sign_into(d, b, n, o) != 0)
		return -1;
	const char *code = s_status_code(q->new_status);
	char reason[1200];
	snprintf(reason, sizeof reason, "%s %s", q->decision_no, q->reason);
	int ev = q->new_status == LS(SUSPENDED) ? EV(SUSPENDED) : EV(REVOKED);
	if (s_version_put(d, db, zzid, bbh + 1, q->new_status, o->s.bytes, o->s.len, &o->s.sig) != 0 ||
	    dept_sql_exec(d, db, "UPDATE dzzz SET zzzt = ?, bbh = ?, bbsj = ? WHERE zzid = ?", "tiii", code, bbh + 1,
		   (long long)now, zzid) != 0 ||
	    dept_sql_exec(d, db,
		   "INSERT INTO dzzz_ztbg (zzid, ybbh, xbbh, yzt, xzt, jdswh, bgyy, sxrq, sqf, jbr, bgsj)"
		   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		   "iiittttttti", zzid, bbh, bbh + 1, s_status_code(cur), code, q->decision_no, q->reason,
		   q->effective_date, req->requester, req->hdr->user_id, (long long)now) != 0 ||
	    s_outbox_add(d, db, zzid, q->licence_id, (uint64_t)bbh + 1, ev, q->new_status, reason, now, o->s.bytes,
			 o->s.len, &o->s.sig) != 0) {
		s_stored_free(&o->s);
		return s_fail(o, EC(INTERNAL), NULL, "the new version could not be stored");
	}
	/* a business licence revoked or cancelled ends the registration too */
	if (strcmp(name, BUSINESS_LICENCE) == 0 && strcmp(holder_type, "001") == 0 &&
	    (q->new_status == LS(REVOKED) || q->new_status == LS(CANCELLED)) &&
	    dept_sql_exec(d, db, "UPDATE sczt SET regstate = ?, apprdate = ? WHERE uniscid = ?", "ttt",
		   q->new_status == LS(REVOKED) ? "吊销" : "注销", q->effective_date, holder) != 0) {
		s_stored_free(&o->s);
		return s_fail(o, EC(INTERNAL), NULL, "the register could not be updated");
	}
	o->kind = R_OK;
	return 0;
}

static void on_revoke(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
		      struct qiao_responder *r)
{
	const Qiao__V1__LicenceRevokeRequest *q = (const Qiao__V1__LicenceRevokeRequest *)body;
	if (dept_check_id(&r, QIAO_ID_LICENCE, q->licence_id, "licence_id", 0) != 0)
		return;
	if (q->new_status != LS(SUSPENDED) && q->new_status != LS(ANNULLED) && q->new_status != LS(CANCELLED) &&
	    q->new_status != LS(REVOKED)) {
		dept_error(&r, EC(BAD_REQUEST), "new_status",
			   "new_status must be SUSPENDED (02), ANNULLED (03), CANCELLED (04) or REVOKED (07)");
		return;
	}
	if (dept_check_text(&r, q->decision_no, "decision_no", 64) != 0 ||
	    dept_check_text(&r, q->reason, "reason", 500) != 0 ||
	    s_check_date(&r, q->effective_date, "effective_date", false) != 0)
		return;
	struct outcome o = {.kind = R_ERROR};
	sqlite3 *db = dept_db_lock(d);
	int ok = dept_sql_exec(d, db, "BEGIN IMMEDIATE", "") == 0;
	if (!ok)
		s_fail(&o, EC(INTERNAL), NULL, "the licence library is busy");
	else
		ok = s_revoke_locked(d, db, req, q, &o) == 0;
	s_in_txn(d, db, &o, ok);
	dept_db_unlock(d);
	Qiao__V1__LicenceRevokeResult res = QIAO__V1__LICENCE_REVOKE_RESULT__INIT;
	switch (o.kind) {
	case R_OK:
	case R_REPEAT:
		if (o.kind == R_OK)
			dept_log(d, "licence %s is now %s (%s)", q->licence_id, s_status_name(q->new_status),
				 q->decision_no);
		res.changed = 1;
		res.licence = &o.s.sl;
		dept_reply(&r, &res.base);
		s_stored_free(&o.s);
		break;
	case R_REFUSED:
		res.changed = 0;
		res.refusal_reason = o.msg;
		dept_reply(&r, &res.base);
		break;
	case R_NOT_FOUND:
		dept_error(&r, EC(NOT_FOUND), "licence_id", "no licence %s in this issuer's library", q->licence_id);
		break;
	default: dept_error(&r, o.code, o.field, "%s", o.msg); break;
	}
}

/* ---- first start: the seeded licences get their ids and signatures -------- */

/* strdup'd strings of one licence being built from its rows */
struct strs {
	char **v;
	size_t n, cap;
};

static char *s_dup(struct strs *s, const char *t)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 32;
		char **nv = realloc(s->v, nc * sizeof *nv);
		if (!nv)
			return NULL;
		s->v = nv;
		s->cap = nc;
	}
	char *c = strdup(t ? t : "");
	if (c)
		s->v[s->n++] = c;
	return c;
}

static void s_strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* Build, check, sign and store the current version of licence row zzid. */
static int s_sign_row(struct dept *d, sqlite3 *db, long long zzid, const char *own, char *why, size_t whylen)
{
	struct strs S = {0};
	Qiao__V1__ElectronicLicence l = QIAO__V1__ELECTRONIC_LICENCE__INIT;
	Qiao__V1__LicenceItem *items = NULL;
	Qiao__V1__LicenceItem **itemp = NULL;
	char **rel = NULL;
	uint8_t *content = NULL, *layout = NULL, *b = NULL;
	int rc = -1;
	sqlite3_stmt *st = dept_sql_query(d, db,
				   "SELECT zzbs, zzmc, zzlxdm, zzbh, qfjg, qfjgdm, gxsd, czzt, czztdm, czztdmlx, qfrq,"
				   " yxqqsrq, coalesce(yxqjzrq, ''), zzzt, bbh, bbsj, coalesce(nrlx, ''), nr, bswjzy"
				   " FROM dzzz WHERE zzid = ?",
				   "i", zzid);
	if (!st || sqlite3_step(st) != SQLITE_ROW) {
		snprintf(why, whylen, "row %lld cannot be read", zzid);
		goto out;
	}
	l.licence_id = s_dup(&S, dept_col_text(st, 0));
	l.name = s_dup(&S, dept_col_text(st, 1));
	l.type_code = s_dup(&S, dept_col_text(st, 2));
	l.number = s_dup(&S, dept_col_text(st, 3));
	l.issuer_name = s_dup(&S, dept_col_text(st, 4));
	l.issuer_uscc = s_dup(&S, dept_col_text(st, 5));
	l.jurisdiction_code = s_dup(&S, dept_col_text(st, 6));
	l.holder_name = s_dup(&S, dept_col_text(st, 7));
	l.holder_code = s_dup(&S, dept_col_text(st, 8));
	l.holder_code_type = (Qiao__V1__HolderCodeType)s_holder_type_of(dept_col_text(st, 9));
	l.issue_date = s_dup(&S, dept_col_text(st, 10));
	l.valid_from = s_dup(&S, dept_col_text(st, 11));
	l.valid_until = s_dup(&S, dept_col_text(st, 12));
	l.status = (Qiao__V1__LicenceStatus)s_status_of(dept_col_text(st, 13));
	l.version = (uint64_t)sqlite3_column_int64(st, 14);
	l.version_ms = sqlite3_column_int64(st, 15);
	l.content_type = s_dup(&S, dept_col_text(st, 16));
	for (int c = 17; c <= 18; c++) {
		const void *p = sqlite3_column_blob(st, c);
		int n = sqlite3_column_bytes(st, c);
		if (p && n > 0) {
			uint8_t *copy = malloc((size_t)n);
			if (!copy)
				goto out;
			memcpy(copy, p, (size_t)n);
			if (c == 17) {
				content = copy;
				l.content.data = copy;
				l.content.len = (size_t)n;
			} else {
				layout = copy;
				l.layout_file_sha256.data = copy;
				l.layout_file_sha256.len = (size_t)n;
			}
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	for (size_t i = 0; i < S.n; i++)
		if (!S.v[i])
			goto out;
	char w[200] = "";
	if (qiao_id_check_licence(l.licence_id, w, sizeof w) != 0 ||
	    (l.holder_code_type == HT(USCC) ? qiao_id_check_uscc(NULL, l.holder_code, w, sizeof w)
					   : qiao_id_check_resident(l.holder_code, w, sizeof w)) != 0 ||
	    strcmp(l.issuer_uscc, own) != 0 || !l.status || l.version < 1 || !s_date_ok(l.issue_date) ||
	    !s_date_ok(l.valid_from) || (l.valid_until[0] && !s_date_ok(l.valid_until))) {
		snprintf(why, whylen, "licence row %lld (%s) is not valid: %s", zzid, l.licence_id,
			 w[0] ? w : "issuer, status, version or a date");
		goto out;
	}

	st = dept_sql_query(d, db, "SELECT xmmc, xmnr FROM dzzz_zmxx WHERE zzid = ? ORDER BY xh", "i", zzid);
	size_t cap = 0;
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (l.n_items == cap) {
			cap = cap ? cap * 2 : 16;
			Qiao__V1__LicenceItem *ni = realloc(items, cap * sizeof *ni);
			if (!ni)
				goto out;
			items = ni;
		}
		Qiao__V1__LicenceItem *it = &items[l.n_items++];
		qiao__v1__licence_item__init(it);
		it->name = s_dup(&S, dept_col_text(st, 0));
		it->value = s_dup(&S, dept_col_text(st, 1));
		if (!it->name || !it->value)
			goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	itemp = calloc(l.n_items ? l.n_items : 1, sizeof *itemp);
	if (!itemp)
		goto out;
	for (size_t i = 0; i < l.n_items; i++)
		itemp[i] = &items[i];
	l.items = itemp;

	st = dept_sql_query(d, db,
		     "SELECT coalesce(g.glzzbs, r.zzbs, '') FROM dzzz_glzz g LEFT JOIN dzzz r ON r.zzid = g.glzzid"
		     " WHERE g.zzid = ? ORDER BY g.xh",
		     "i", zzid);
	rel = calloc(16, sizeof *rel);
	while (st && rel && sqlite3_step(st) == SQLITE_ROW) {
		const char *t = dept_col_text(st, 0);
		if (l.n_related_licence_ids == 16 || qiao_id_check_licence(t, w, sizeof w) != 0) {
			snprintf(why, whylen, "licence row %lld: related licence '%s' is not valid", zzid, t);
			goto out;
		}
		if (!(rel[l.n_related_licence_ids++] = s_dup(&S, t)))
			goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!rel)
		goto out;
	l.related_licence_ids = rel;

	size_t n;
	b = s_pack_licence(&l, &n);
	struct dept_sig_store ss;
	Qiao__V1__IssuerSignature sig = QIAO__V1__ISSUER_SIGNATURE__INIT;
	if (!b || dept_issuer_sign(d, QIAO_DOMAIN_LICENCE, b, n, &sig, &ss) != 0) {
		snprintf(why, whylen, "licence row %lld could not be signed", zzid);
		goto out;
	}
	if (s_version_put(d, db, zzid, (long long)l.version, l.status, b, n, &sig) != 0 ||
	    dept_sql_exec(d, db, "UPDATE dzzz_glzz SET glzzbs = (SELECT zzbs FROM dzzz WHERE zzid = glzzid)"
			  " WHERE zzid = ? AND glzzbs IS NULL",
		   "i", zzid) != 0) {
		snprintf(why, whylen, "licence row %lld: the signed version could not be stored", zzid);
		goto out;
	}
	rc = 0;
out:
	if (rc && !why[0])
		snprintf(why, whylen, "licence row %lld: out of memory", zzid);
	sqlite3_finalize(st);
	free(b);
	free(content);
	free(layout);
	free(items);
	free(itemp);
	free(rel);
	s_strs_free(&S);
	return rc;
}

/* Give every licence row without an id its id, then sign every current
 * version not signed yet; one transaction.  0, or -1 with why[]. */
static int s_sign_seeded(struct dept *d, sqlite3 *db, int *count, char *why, size_t whylen)
{
	char own[19];
	s_own_uscc(d, own);
	*count = 0;
	why[0] = '\0';
	long long *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;
	sqlite3_stmt *st = dept_sql_query(d, db, "SELECT zzid, zzlxdm, qfjgdm, xlh, bbdm FROM dzzz WHERE zzbs IS NULL", "");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		char id[160];
		if (s_make_licence_id(dept_col_text(st, 1), dept_col_text(st, 2), dept_col_text(st, 3),
				      dept_col_text(st, 4), id, sizeof id) != 0) {
			snprintf(why, whylen, "licence row %lld: no valid licence id from %s, %s, %s, %s",
				 (long long)sqlite3_column_int64(st, 0), dept_col_text(st, 1), dept_col_text(st, 2),
				 dept_col_text(st, 3), dept_col_text(st, 4));
			goto out;
		}
		if (dept_sql_exec(d, db, "UPDATE dzzz SET zzbs = ? WHERE zzid = ?", "ti", id,
			   (long long)sqlite3_column_int64(st, 0)) != 0)
			goto out;
	}
	sqlite3_finalize(st);
	if (dept_sql_exec(d, db, "UPDATE dzzz SET bbsj = ? WHERE bbsj IS NULL", "i", (long long)qiao_now_ms()) != 0) {
		st = NULL;
		goto out;
	}
	st = dept_sql_query(d, db,
		     "SELECT zzid FROM dzzz d WHERE NOT EXISTS"
		     " (SELECT 1 FROM dzzz_bb b WHERE b.zzid = d.zzid AND b.bbh = d.bbh) ORDER BY zzid",
		     "");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			long long *ni = realloc(ids, cap * sizeof *ni);
			if (!ni)
				goto out;
			ids = ni;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	st = NULL;
	for (size_t i = 0; i < n; i++)
		if (s_sign_row(d, db, ids[i], own, why, whylen) != 0)
			goto out;
	*count = (int)n;
	rc = 0;
out:
	sqlite3_finalize(st);
	free(ids);
	return rc;
}

/* ---- publisher ------------------------------------------------------------

 * The outbox is published by one thread.  It must stop using the adapter
 * and the database before dept_main() destroys and closes them, and
 * dept_def has no hook for that, so the publisher owns the shutdown
 * signals: main() blocks SIGTERM and SIGINT before dept_main() starts any
 * thread (every thread inherits the mask), the publisher takes them with
 * sigtimedwait(), stops, and only then runs the handler dept_main()
 * installed, which ends dept_main()'s loop.  Events go out with
 * qiao_adapter_call_async(), one at a time, so the thread never blocks on
 * the network; a callback still pending at shutdown runs inside
 * qiao_adapter_destroy(), before the database is closed.
 */
static struct {
	struct dept *d;
	pthread_t th;
	bool running;
	atomic_int stop;     /* main(): dept_main() has returned */
	atomic_int inflight; /* one event is on its way */
	atomic_int kick;     /* an event was published: try the next at once */
	pthread_mutex_t mu;  /* last_err */
	char last_err[300];  /* the failure last logged, "" after a success */
	long long interval_ms;
	const char *service;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct pub_call {
	long long sjid;
	char licence_id[160];
	long long version;
};

/* Log a failure once until it changes or an event goes through. */
static void s_pub_note(const char *err, const struct pub_call *pc)
{
	pthread_mutex_lock(&P.mu);
	bool changed = strcmp(P.last_err, err) != 0;
	if (changed)
		snprintf(P.last_err, sizeof P.last_err, "%s", err);
	pthread_mutex_unlock(&P.mu);
	if (changed && err[0])
		dept_log(P.d, "licence event %lld (%s v%lld) not published, will retry: %s", pc->sjid, pc->licence_id,
			 pc->version, err);
	else if (changed)
		dept_log(P.d, "licence events are being published again (event %lld)", pc->sjid);
}

/* The gateway refused the event for good: retrying the same bytes cannot
 * help, and holding it would stop every later event. */
static bool s_pub_refused(const struct qiao_result *res)
{
	if (res->kind != QIAO_RESULT_ERROR)
		return false;
	switch (res->error.code) {
	case QIAO__V1__ERROR_CODE__BAD_REQUEST:
	case QIAO__V1__ERROR_CODE__BAD_SIGNATURE:
	case QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER:
	case QIAO__V1__ERROR_CODE__REJECTED:
	case QIAO__V1__ERROR_CODE__TOO_LARGE: return true;
	default: return false;
	}
}

static void s_pub_record(const struct pub_call *pc, bool ok, const char *err)
{
	sqlite3 *db = dept_db_lock(P.d);
	if (ok)
		dept_sql_exec(P.d, db, "UPDATE dzzz_sjfb SET fbbz = 1, fbsj = ?, cscs = cscs + 1, zhcw = NULL WHERE sjid = ?",
		       "ii", (long long)qiao_now_ms(), pc->sjid);
	else
		dept_sql_exec(P.d, db, "UPDATE dzzz_sjfb SET cscs = cscs + 1, zhcw = ? WHERE sjid = ?", "ti", err, pc->sjid);
	dept_db_unlock(P.d);
	s_pub_note(ok ? "" : err, pc);
}

static void s_pub_done(void *arg, struct qiao_result *res)
{
	struct pub_call *pc = arg;
	bool ok = res->status == 0 && res->kind == QIAO_RESULT_RESPONSE;
	char err[300];
	if (res->kind == QIAO_RESULT_ERROR)
		snprintf(err, sizeof err, "%s: %s", res->error.name, res->error.message);
	else
		snprintf(err, sizeof err, "%s: %s", qiao_strerror(res->status), res->error.message);
	if (s_pub_refused(res)) {
		sqlite3 *db = dept_db_lock(P.d);
		dept_sql_exec(P.d, db, "UPDATE dzzz_sjfb SET fbbz = 2, cscs = cscs + 1, zhcw = ? WHERE sjid = ?", "ti", err,
		       pc->sjid);
		dept_db_unlock(P.d);
		dept_log(P.d, "licence event %lld (%s v%lld) refused by the gateway, not retried: %s", pc->sjid,
			 pc->licence_id, pc->version, err);
		ok = true; /* go on with the next one */
	} else {
		s_pub_record(pc, ok, err);
	}
	if (ok)
		atomic_store(&P.kick, 1);
	atomic_store(&P.inflight, 0);
	qiao_result_free(&res);
	free(pc);
}

/* Send the oldest unpublished event, if none is on its way. */
static void s_pub_step(void)
{
	if (atomic_load(&P.inflight))
		return;
	struct pub_call *pc = calloc(1, sizeof *pc);
	if (!pc)
		return;
	uint8_t *ev = NULL;
	int evlen = 0;
	sqlite3 *db = dept_db_lock(P.d);
	sqlite3_stmt *st =
		dept_sql_query(P.d, db, "SELECT sjid, zzbs, bbh, sjbw FROM dzzz_sjfb WHERE fbbz = 0 ORDER BY sjid LIMIT 1", "");
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		pc->sjid = sqlite3_column_int64(st, 0);
		snprintf(pc->licence_id, sizeof pc->licence_id, "%s", dept_col_text(st, 1));
		pc->version = sqlite3_column_int64(st, 2);
		const void *b = sqlite3_column_blob(st, 3);
		evlen = sqlite3_column_bytes(st, 3);
		if (b && evlen > 0 && (ev = malloc((size_t)evlen)) != NULL)
			memcpy(ev, b, (size_t)evlen);
	}
	sqlite3_finalize(st);
	dept_db_unlock(P.d);
	qiao_adapter_t *a = dept_adapter(P.d);
	if (!ev || !a) {
		free(ev);
		free(pc);
		return;
	}
	struct qiao_call c = {
		.service = P.service,
		.user_id = "qiao-market-publisher",
		.purpose = "电子证照变更通知",
		.body_type = "qiao.v1.LicenceEvent",
		.body = ev,
		.body_len = (size_t)evlen,
		.timeout_ms = 5000,
	};
	char err[300] = "";
	atomic_store(&P.inflight, 1);
	int rc = qiao_adapter_call_async(a, &c, s_pub_done, pc, err, sizeof err);
	free(ev);
	if (rc != 0) {
		char why[400];
		snprintf(why, sizeof why, "%s%s%s", qiao_strerror(rc), err[0] ? ": " : "", err);
		atomic_store(&P.inflight, 0);
		s_pub_record(pc, false, why);
		free(pc);
	}
}

/* The handler dept_main() installed for `sig`, once it has. */
static void (*s_dept_handler(int sig))(int)
{
	struct sigaction cur;
	if (sigaction(sig, NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) || cur.sa_handler == SIG_DFL ||
	    cur.sa_handler == SIG_IGN)
		return NULL;
	return cur.sa_handler;
}

static void *s_publisher(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int pending = 0;
	long long since = 0;
	while (!atomic_load(&P.stop)) {
		struct timespec ts = {0, 50 * 1000000L};
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			pending = sig;
		void (*h)(int) = s_dept_handler(SIGTERM);
		if (pending && h) {
			/* stopped using the adapter: let dept_main() end */
			void (*hs)(int) = s_dept_handler(pending);
			(hs ? hs : h)(pending);
			break;
		}
		if (!h || pending)
			continue; /* dept_main() is not serving yet */
		since += 50;
		if (since >= P.interval_ms || atomic_exchange(&P.kick, 0)) {
			since = 0;
			s_pub_step();
		}
	}
	return NULL;
}

static int s_pub_start(struct dept *d)
{
	P.d = d;
	P.service = dept_config(d, "publish_service", DEFAULT_PUBLISH);
	P.interval_ms = dept_config_int(d, "publish_interval_ms", 500);
	if (P.interval_ms < 50)
		P.interval_ms = 50;
	if (pthread_create(&P.th, NULL, s_publisher, NULL) != 0)
		return -1;
	P.running = true;
	return 0;
}

static void s_pub_stop(void)
{
	atomic_store(&P.stop, 1);
	if (P.running)
		pthread_join(P.th, NULL);
	P.running = false;
}

/* ---- start ------------------------------------------------------------------ */

static int s_init(struct dept *d)
{
	sqlite3 *db = dept_db_lock(d);
	char why[400];
	int count = 0;
	int rc = dept_sql_exec(d, db, "BEGIN IMMEDIATE", "");
	if (rc == 0) {
		rc = s_sign_seeded(d, db, &count, why, sizeof why);
		if (rc == 0)
			rc = dept_sql_exec(d, db, "COMMIT", "");
		else
			dept_sql_exec(d, db, "ROLLBACK", "");
	} else {
		snprintf(why, sizeof why, "the database is busy");
	}
	dept_db_unlock(d);
	if (rc != 0) {
		dept_log(d, "cannot sign the licence library: %s", why);
		return 1;
	}
	if (count)
		dept_log(d, "signed %d licence versions that had no signature yet", count);
	if (s_pub_start(d) != 0) {
		dept_log(d, "cannot start the licence event publisher");
		return 1;
	}
	return 0;
}

static const struct dept_service services[] = {
	{"licence-by-holder.v1", &qiao__v1__licence_by_holder_request__descriptor,
	 &qiao__v1__licence_by_holder_reply__descriptor, on_by_holder},
	{"licence-by-id.v1", &qiao__v1__licence_by_id_request__descriptor, &qiao__v1__licence_by_id_reply__descriptor,
	 on_by_id},
	{"licence-issue.v1", &qiao__v1__licence_issue_request__descriptor,
	 &qiao__v1__licence_issue_result__descriptor, on_issue},
	{"licence-revoke.v1", &qiao__v1__licence_revoke_request__descriptor,
	 &qiao__v1__licence_revoke_result__descriptor, on_revoke},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"market", services, sizeof services / sizeof services[0], s_init};
	/* see "Publisher": the shutdown signals go to the publisher thread */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int rc = dept_main(argc, argv, &def);
	s_pub_stop();
	return rc;
}
