/*
 * dept_test_util.h - what the department adapter tests (test_dept_bank.c,
 * test_dept_housing.c, test_dept_tax.c) share on top of dept_harness.h:
 * the error codes they expect, the message of the last call (s_msg), a
 * Party builder, EXPECT_ERR() and read-only queries of a department's
 * database.  Include it once, after dept_harness.h.
 */
#ifndef QIAO_DEPT_TEST_UTIL_H
#define QIAO_DEPT_TEST_UTIL_H

#include <ctype.h>
#include <sqlite3.h>
#include <stdarg.h>

#include "dept_harness.h"
#include "identity.pb-c.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_IDENT QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED

/* The message of the last call's ERROR (d_call() writes it). */
static char s_msg[1200];

/* ---- a department's database (read-only) -------------------------------- */

/* The first column of the first row of `sql` in the database of department
 * `dept` (D_*), with text parameters (NULL-terminated), as an integer; -1
 * when there is no row or the database does not open.  A statement that
 * does not prepare is reported on stderr. */
H_FN long long dt_q_int(int dept, const char *sql, ...)
{
	char path[PATH_MAX];
	d_db_path(dept, path, sizeof path);
	sqlite3 *db = NULL;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			va_list ap;
			va_start(ap, sql);
			const char *a;
			for (int i = 1; (a = va_arg(ap, const char *)) != NULL; i++)
				sqlite3_bind_text(st, i, a, -1, SQLITE_TRANSIENT);
			va_end(ap);
			if (sqlite3_step(st) == SQLITE_ROW)
				v = sqlite3_column_int64(st, 0);
		} else {
			fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

/* The same for a text column, into out[n] ("" when there is no row or it
 * is NULL); returns out. */
H_FN const char *dt_q_text(int dept, char *out, size_t n, const char *sql, ...)
{
	char path[PATH_MAX];
	d_db_path(dept, path, sizeof path);
	sqlite3 *db = NULL;
	out[0] = '\0';
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			va_list ap;
			va_start(ap, sql);
			const char *a;
			for (int i = 1; (a = va_arg(ap, const char *)) != NULL; i++)
				sqlite3_bind_text(st, i, a, -1, SQLITE_TRANSIENT);
			va_end(ap);
			if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
				snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
		} else {
			fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return out;
}

/* ---- calls ---------------------------------------------------------------- */

/* A Party and its DataSubject, in the caller's storage. */
struct party {
	Qiao__V1__Party p;
	Qiao__V1__DataSubject s;
};

#ifndef DEPT_TEST_OWN_MK_PARTY
/* The Party `name` with id `id` (both borrowed), in x: USCC when it has 18
 * characters and a letter at the 9th, RESIDENT_ID otherwise.  A test that
 * needs another rule defines DEPT_TEST_OWN_MK_PARTY and its own. */
static __attribute__((unused)) Qiao__V1__Party *mk_party(struct party *x, const char *name, const char *id)
{
	qiao__v1__party__init(&x->p);
	qiao__v1__data_subject__init(&x->s);
	x->s.type = strlen(id) == 18 && isalpha((unsigned char)id[8]) ? QIAO__V1__SUBJECT_TYPE__USCC
								      : QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	x->s.id = (char *)id;
	x->p.name = (char *)name;
	x->p.id = &x->s;
	return &x->p;
}
#endif

/* An ERROR `want` naming `field` ("NAME field: message" in s_msg), and no
 * answer; frees an answer there was. */
static __attribute__((unused)) void expect_err(int line, ProtobufCMessage *out, int code, int want, const char *field)
{
	char prefix[160];
	snprintf(prefix, sizeof prefix, "%s %s:", qiao_error_code_name(want), field);
	int ok = !out && code == want && strncmp(s_msg, prefix, strlen(prefix)) == 0;
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  line %d: wanted %s, got code %d: %s\n", line, prefix, code, s_msg);
	if (out)
		protobuf_c_message_free_unpacked(out, NULL);
}
#define EXPECT_ERR(out, code, want, field) expect_err(__LINE__, (ProtobufCMessage *)(out), code, want, field)

#endif
