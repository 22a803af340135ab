/*
 * dept_util.c - see dept_util.h.
 */
#include "dept_util.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "qiao_envelope.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

int dept_fail(struct dept_fail *f, int code, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	f->code = code;
	f->field = field;
	return -1;
}

int dept_dberr(struct dept_fail *f, struct dept *d, sqlite3 *db, const char *what)
{
	dept_log(d, "database: %s: %s", what, sqlite3_errmsg(db));
	return dept_fail(f, E_INTERNAL, NULL, "database error (%s)", what);
}

sqlite3_stmt *dept_prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

void dept_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s && s[0])
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void dept_bind_int(sqlite3_stmt *st, int i, long long v)
{
	sqlite3_bind_int64(st, i, v);
}

int dept_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int dept_run(sqlite3_stmt *st)
{
	int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

void dept_copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

long long dept_next_seq(sqlite3 *db, const char *seq)
{
	sqlite3_stmt *st = dept_prep(db, "INSERT INTO doc_sequence (seq_name, next_value) VALUES (?1, 2) "
					 "ON CONFLICT (seq_name) DO UPDATE SET next_value = next_value + 1 "
					 "RETURNING next_value - 1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, seq);
	long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	return v;
}

void dept_body_hash(const struct qiao_request *req, char out[65])
{
	uint8_t h[32];
	crypto_hash_sha256(h, req->body ? req->body : (const uint8_t *)"", req->body_len);
	qiao_hex(h, sizeof h, out);
}

const char *dept_case_id(const struct qiao_request *req)
{
	return req->hdr->case_id ? req->hdr->case_id : "";
}

int dept_check_printable(struct qiao_responder **r, const char *v, const char *field, long max, int optional)
{
	if ((!v || !v[0]) && optional)
		return 0;
	if (dept_check_text(r, v, field, max) != 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			dept_error(r, E_BAD, field, "%s: control characters are not allowed", field);
			return -1;
		}
	return 0;
}

int dept_check_ref(struct qiao_responder **r, const char *v, const char *field)
{
	if (!v || !v[0]) {
		dept_error(r, E_BAD, field, "%s is required", field);
		return -1;
	}
	size_t n = strlen(v);
	if (n > 64) {
		dept_error(r, E_BAD, field, "%s: at most 64 bytes", field);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("._:-", v[i])) {
			dept_error(r, E_BAD, field, "%s: only [A-Za-z0-9._:-] allowed", field);
			return -1;
		}
	return 0;
}

int dept_check_party(struct qiao_responder **r, const Qiao__V1__Party *p, const char *field, int uscc_only)
{
	char f[96];
	if (!p) {
		dept_error(r, E_BAD, field, "%s is required", field);
		return -1;
	}
	snprintf(f, sizeof f, "%s.name", field);
	if (dept_check_printable(r, p->name, f, 100, 0) != 0)
		return -1;
	snprintf(f, sizeof f, "%s.id.type", field);
	if (!p->id || (p->id->type != QIAO__V1__SUBJECT_TYPE__USCC &&
		       (uscc_only || p->id->type != QIAO__V1__SUBJECT_TYPE__RESIDENT_ID))) {
		dept_error(r, E_BAD, f, "%s must be %s", f, uscc_only ? "USCC" : "RESIDENT_ID or USCC");
		return -1;
	}
	snprintf(f, sizeof f, "%s.id.id", field);
	return dept_check_id(r, p->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID ? QIAO_ID_RESIDENT : QIAO_ID_USCC,
			     p->id->id, f, 0);
}

const char *dept_party_type(const Qiao__V1__Party *p)
{
	return p->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID ? "RESIDENT_ID" : "USCC";
}

int dept_check_account(struct qiao_responder **r, const Qiao__V1__BankAccount *a, const char *field)
{
	char f[96];
	if (!a) {
		dept_error(r, E_BAD, field, "%s is required", field);
		return -1;
	}
	snprintf(f, sizeof f, "%s.account_name", field);
	if (dept_check_printable(r, a->account_name, f, 100, 0) != 0)
		return -1;
	snprintf(f, sizeof f, "%s.account_no", field);
	size_t n = a->account_no ? strlen(a->account_no) : 0;
	int digits = n >= 8 && n <= 40;
	for (size_t i = 0; digits && i < n; i++)
		digits = isdigit((unsigned char)a->account_no[i]) != 0;
	if (!digits) {
		dept_error(r, E_BAD, f, "%s: 8 to 40 digits", f);
		return -1;
	}
	snprintf(f, sizeof f, "%s.bank_name", field);
	if (dept_check_printable(r, a->bank_name, f, 100, 0) != 0)
		return -1;
	snprintf(f, sizeof f, "%s.bank_code", field);
	n = a->bank_code ? strlen(a->bank_code) : 0;
	digits = n == 0 || n == 12;
	for (size_t i = 0; digits && i < n; i++)
		digits = isdigit((unsigned char)a->bank_code[i]) != 0;
	if (!digits) {
		dept_error(r, E_BAD, f, "%s: the CNAPS code has 12 digits", f);
		return -1;
	}
	return 0;
}

int dept_check_unwind_reason(struct qiao_responder **r, int reason, const char *note, const char *field)
{
	if (reason < QIAO__V1__UNWIND_REASON__UNWIND_REASON_LOAN_DECLINED ||
	    reason > QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER) {
		dept_error(r, E_BAD, field, "%s: a valid UnwindReason is required", field);
		return -1;
	}
	return dept_check_printable(r, note, "reason_note", 500,
				    reason != QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER);
}

void dept_norm_id(enum qiao_id_kind kind, const char *in, char *out, size_t n)
{
	char why[8];
	int rc = kind == QIAO_ID_CERT ? qiao_id_check_cert(in, out, n, why, sizeof why)
				      : qiao_id_check_proof(in, out, n, why, sizeof why);
	if (rc != 0)
		dept_copy(out, n, in);
}

long long dept_ppm(long long a, long long ppm)
{
	__int128 x = (__int128)a * ppm;
	return (long long)((x + 500000) / 1000000);
}

/* ---- statements bound from a format string ---------------------------- */

/*
 * Bind the values that follow by `fmt`, one character per parameter:
 * t text, T text or NULL when empty, i long long, b blob (const void *,
 * int length; NULL when empty).
 */
static int s_bindv(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int i = 1, rc = SQLITE_OK;
	for (const char *f = fmt; *f && rc == SQLITE_OK; f++, i++) {
		switch (*f) {
		case 't': rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
		case 'T': {
			const char *s = va_arg(ap, const char *);
			rc = s && s[0] ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
			break;
		}
		case 'i': rc = sqlite3_bind_int64(st, i, va_arg(ap, long long)); break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			int n = va_arg(ap, int);
			rc = p && n > 0 ? sqlite3_bind_blob(st, i, p, n, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
			break;
		}
		default: rc = SQLITE_MISUSE; break;
		}
	}
	return rc;
}

/* A prepared, bound statement, or NULL (logged). */
sqlite3_stmt *dept_sql_query(struct dept *d, sqlite3 *db, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dept_log(d, "sql prepare: %s", sqlite3_errmsg(db));
		return NULL;
	}
	va_list ap;
	va_start(ap, fmt);
	int rc = s_bindv(st, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		dept_log(d, "sql bind: %s", sqlite3_errstr(rc));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Run a statement to its end: 0, or -1 (logged). */
int dept_sql_exec(struct dept *d, sqlite3 *db, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dept_log(d, "sql prepare: %s", sqlite3_errmsg(db));
		return -1;
	}
	va_list ap;
	va_start(ap, fmt);
	int rc = s_bindv(st, fmt, ap);
	va_end(ap);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	if (rc != SQLITE_DONE)
		dept_log(d, "sql: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
