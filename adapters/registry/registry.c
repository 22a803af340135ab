/*
 * registry.c - qiao-registry, the adapter of 鄂尔多斯市不动产登记中心 (the
 * real-estate registration centre): the register's side of 带押过户
 * (../shared/DOMAIN.md).
 *
 * Services (proto/realestate.proto, tax.proto, housing.proto, bank.proto,
 * licence.proto) and the tables they read and write (schema.sql):
 *   title-summary.v1          登记簿摘要: bdcdy, fdcq, qlr, dyaq, cfdj, yydj, ygdj; logs cxjl
 *   mortgagee-opinion.v1      原抵押权人意见 -> ydyqryj (idempotent by 同意书编号)
 *   tax-clearance-notice.v1   完税信息 -> wsxx, wsxx_sp (idempotent by 核定编号)
 *   filing-notice.v1          网签备案 + 资金监管 -> baxx, baxx_dsr (by 备案编号)
 *   combined-registration.v1  转移登记 + 抵押权首次登记 in one transaction: fdcq,
 *                             qlr, dyaq, dyaq_dsr, dzzz, zzsj_fb, djsl (by 受理编号)
 *   mortgage-cancellation.v1  抵押权注销, later ranks promoted: dyaq, dysw_bg, zxdj
 *   consent-withdrawal.v1     voids an opinion before 登簿: ydyqryj
 *   licence-by-id.v1          the 电子不动产权证书 issued: dzzz
 *
 * Refusals: a record that does not exist is ERROR NOT_FOUND; a business
 * refusal is the answer's own refusal field where the schema has one
 * (MortgageeOpinionResult.accepted = false, outcome REJECTED, ...), as the
 * workflow reads them; malformed requests are BAD_REQUEST /
 * INVALID_IDENTIFIER naming the field.
 *
 * Licence events.  Every 电子不动产权证书 issued puts a LicenceEvent into the
 * outbox table zzsj_fb in the same transaction; a background thread
 * publishes unpublished rows in order to the gateway's
 * licence-publish.v1 every 500 ms and marks them published on a
 * RESPONSE.  dept_main() offers no hook for a thread that must stop
 * before the adapter is destroyed, so the thread takes over SIGTERM and
 * SIGINT (see s_pub_main) and hands them on to dept_main's handler once it
 * has stopped touching the adapter and the database.
 *
 * --config keys (all optional):
 *   registry_name      颁发机构 name, default 鄂尔多斯市不动产登记中心
 *   jurisdiction_code  管辖属地, default 150600
 *   cert_province      省简称 of the numbers, default 蒙
 *   cert_city          市县名 of the numbers, default 鄂尔多斯市
 *   licence_type_code  证照类型代码 of the 不动产权证书 (T segment), default
 *                      11100000000013338W013
 *   publish_service    default 11150600MB0K24684F/gateway/licence-publish.v1
 *   publish_interval_ms default 500
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bank.pb-c.h"
#include "dept.h"
#include "housing.pb-c.h"
#include "identity.pb-c.h"
#include "licence.pb-c.h"
#include "qiao_err.h"
#include "qiao_issuer.h"
#include "realestate.pb-c.h"
#include "tax.pb-c.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

#define ST_RESIDENT QIAO__V1__SUBJECT_TYPE__RESIDENT_ID
#define ST_USCC QIAO__V1__SUBJECT_TYPE__USCC

/* Registration outcome codes kept in djsl.zt */
#define OUT_REGISTERED QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REGISTERED
#define OUT_REJECTED QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REJECTED

/* ydyqryj.zt */
enum { YJ_VALID = 1, YJ_WITHDRAWN = 2, YJ_USED = 3, YJ_SUPERSEDED = 4 };

#define NO_MAX 256 /* certificate / proof numbers and other numbers we build */
#define REJECT_BASIS "不动产登记暂行条例 第二十二条"

static struct dept *s_dept; /* for logging from helpers */

/* the configuration, read once in s_init */
static struct {
	const char *registry_name;
	const char *jurisdiction;
	const char *province;
	const char *city;
	const char *type_code;
	const char *publish_service;
	long long publish_interval_ms;
	char uscc[19]; /* this registry's USCC: the I segment of its licence ids */
	const char *coordinators; /* members that may act for a mortgagee within a case */
} s_cfg;

static int64_t s_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- an arena for the strings and messages of one answer --------------- */

struct arena {
	void **v;
	size_t n, cap;
	int oom;
};

static void *s_new(struct arena *a, size_t size)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 32;
		void **nv = realloc(a->v, nc * sizeof *nv);
		if (!nv) {
			a->oom = 1;
			return NULL;
		}
		a->v = nv;
		a->cap = nc;
	}
	void *p = calloc(1, size ? size : 1);
	if (!p) {
		a->oom = 1;
		return NULL;
	}
	a->v[a->n++] = p;
	return p;
}

static char *s_dup(struct arena *a, const char *s)
{
	if (!s)
		s = "";
	size_t n = strlen(s);
	char *p = s_new(a, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p ? p : (char *)"";
}

static char *s_fmt(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *s_fmt(struct arena *a, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return s_dup(a, buf);
}

static void s_arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof *a);
}

/* ---- SQLite with bound parameters ---------------------------------------
 * `types` names the parameters that follow: 't' const char * (NULL binds
 * NULL), 'i' int64_t, 'b' const void * + size_t, 'n' NULL (no argument). */

static int s_vbind(sqlite3_stmt *st, const char *types, va_list ap)
{
	int rc = SQLITE_OK;
	/* a statement's placeholders and the arguments given must agree */
	if (sqlite3_bind_parameter_count(st) != (int)(types ? strlen(types) : 0))
		return SQLITE_RANGE;
	for (int i = 0; types && types[i] && rc == SQLITE_OK; i++) {
		switch (types[i]) {
		case 't': {
			const char *s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'i': rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = sqlite3_bind_blob(st, i + 1, p ? p : "", (int)n, SQLITE_TRANSIENT);
			break;
		}
		case 'n': rc = sqlite3_bind_null(st, i + 1); break;
		default: rc = SQLITE_MISUSE; break;
		}
	}
	return rc;
}

/* A prepared statement with its parameters bound, or NULL (logged). */
static sqlite3_stmt *s_query(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dept_log(s_dept, "SQL prepare: %s: %.80s", sqlite3_errmsg(db), sql);
		return NULL;
	}
	va_list ap;
	va_start(ap, types);
	int rc = s_vbind(st, types, ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		dept_log(s_dept, "SQL bind: %s: %.80s", sqlite3_errstr(rc), sql);
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Run a statement to completion: 0, or -1 (logged). */
static int s_exec(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dept_log(s_dept, "SQL prepare: %s: %.80s", sqlite3_errmsg(db), sql);
		return -1;
	}
	va_list ap;
	va_start(ap, types);
	int rc = s_vbind(st, types, ap);
	va_end(ap);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	if (rc != SQLITE_DONE)
		dept_log(s_dept, "SQL: %s: %.80s", sqlite3_errmsg(db), sql);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* One integer: 1 found (into *out), 0 no row, -1 error. */
static int s_int(sqlite3 *db, int64_t *out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dept_log(s_dept, "SQL prepare: %s: %.80s", sqlite3_errmsg(db), sql);
		return -1;
	}
	va_list ap;
	va_start(ap, types);
	int rc = s_vbind(st, types, ap);
	va_end(ap);
	int found = -1;
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			found = 1;
		} else if (rc == SQLITE_DONE) {
			found = 0;
		}
	}
	if (found < 0)
		dept_log(s_dept, "SQL: %s: %.80s", sqlite3_errmsg(db), sql);
	sqlite3_finalize(st);
	return found;
}

static int s_begin(sqlite3 *db)
{
	return sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int s_commit(sqlite3 *db)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	dept_log(s_dept, "COMMIT: %s", sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void s_rollback(sqlite3 *db)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Copy a blob column into a fresh malloc'd buffer (caller frees). */
static uint8_t *s_col_blob(sqlite3_stmt *st, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);
	uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
	if (b && n > 0)
		memcpy(b, p, (size_t)n);
	*len = n > 0 ? (size_t)n : 0;
	return b;
}

/* ---- numbers ------------------------------------------------------------ */

/* The next value of sequence `kind` for `year` (bhxl), inside the caller's
 * transaction.  0 or -1. */
static int s_next_seq(sqlite3 *db, const char *kind, int year, int64_t *out)
{
	if (s_exec(db,
		   "INSERT INTO bhxl (lx, nd, dqz) VALUES (?1, ?2, 1) "
		   "ON CONFLICT (lx, nd) DO UPDATE SET dqz = dqz + 1",
		   "ti", kind, (int64_t)year) != 0)
		return -1;
	return s_int(db, out, "SELECT dqz FROM bhxl WHERE lx = ?1 AND nd = ?2", "ti", kind, (int64_t)year) == 1
		       ? 0
		       : -1;
}

/* Today in CST: year and "YYYYMMDD". */
static int s_today(char ymd[9])
{
	char d[11];
	dept_date(d, 0);
	snprintf(ymd, 9, "%.4s%.2s%.2s", d, d + 5, d + 8);
	return atoi(d);
}

/* A new 不动产权证书号 (`proof` false) or 不动产登记证明号, with half-width
 * brackets; *seq gets the serial.  0 or -1. */
static int s_new_number(sqlite3 *db, int proof, char out[NO_MAX], int64_t *seq)
{
	char ymd[9];
	int year = s_today(ymd);
	if (s_next_seq(db, proof ? "BDCDJZMH" : "BDCQZH", year, seq) != 0)
		return -1;
	snprintf(out, NO_MAX, "%s(%d)%s%s第%07" PRId64 "号", s_cfg.province, year, s_cfg.city,
		 proof ? "不动产证明" : "不动产权", *seq);
	char why[128];
	int rc = proof ? qiao_id_check_proof(out, NULL, 0, why, sizeof why)
		       : qiao_id_check_cert(out, NULL, 0, why, sizeof why);
	if (rc != 0) {
		dept_log(s_dept, "generated number %s is not valid: %s (check cert_province / cert_city)", out, why);
		return -1;
	}
	return 0;
}

/* A new 受理编号 (SLBH: YYYYMMDD + 6 digits) or 收件编号 (SJ + YYYYMMDD + 5). */
static int s_new_slbh(sqlite3 *db, int receipt, char out[64])
{
	char ymd[9];
	int year = s_today(ymd);
	int64_t n;
	if (s_next_seq(db, receipt ? "SJBH" : "SLBH", year, &n) != 0)
		return -1;
	if (receipt)
		snprintf(out, 64, "SJ%s%05" PRId64, ymd, n);
	else
		snprintf(out, 64, "%s%06" PRId64, ymd, n);
	return 0;
}

/* The normalised form of a certificate / proof number already checked. */
static void s_norm(const char *in, int proof, char out[NO_MAX])
{
	int rc = proof ? qiao_id_check_proof(in, out, NO_MAX, NULL, 0) : qiao_id_check_cert(in, out, NO_MAX, NULL, 0);
	if (rc != 0)
		snprintf(out, NO_MAX, "%s", in);
}

/* The USCC part of a member id. */
static void s_member_uscc(const char *member, char out[19])
{
	snprintf(out, 19, "%.18s", member ? member : "");
}

/*
 * May this request act for the mortgagee `uscc`?  When it comes from the
 * mortgagee itself, or from a case coordinator (config case_coordinators:
 * member ids separated by spaces or commas, e.g. the gateway's workflow
 * engine, 11150600MB0K24684F/workflow) within a case: a coordinator only
 * relays what the mortgagee said in the same case, and every relay is in
 * the gateway's audit log under the case id.
 */
static int s_acts_for(const struct qiao_request *req, const char *uscc)
{
	char me[19];
	s_member_uscc(req->requester, me);
	if (strcmp(me, uscc) == 0)
		return 1;
	if (!req->hdr->case_id || !req->hdr->case_id[0] || !s_cfg.coordinators)
		return 0;
	size_t n = strlen(req->requester);
	for (const char *p = s_cfg.coordinators; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t k = strcspn(p, " ,");
		if (k == n && k && strncmp(p, req->requester, k) == 0)
			return 1;
		p += k;
	}
	return 0;
}

/* ---- request checks ------------------------------------------------------ */

static int s_bad(struct qiao_responder **r, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_bad(struct qiao_responder **r, const char *field, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dept_error(r, E_BAD, field, "%s", msg);
	return -1;
}

/* An optional text field: empty, or at most maxchars characters. */
static int s_opt_text(struct qiao_responder **r, const char *v, const char *field, long maxchars)
{
	if (!v || !v[0])
		return 0;
	return dept_check_text(r, v, field, maxchars);
}

/* "YYYY-MM-DD", a real calendar date. */
static int s_check_date(struct qiao_responder **r, const char *v, const char *field)
{
	if (!v || !v[0])
		return s_bad(r, field, "%s is required", field);
	int ok = strlen(v) == 10 && v[4] == '-' && v[7] == '-';
	for (int i = 0; ok && i < 10; i++)
		if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9'))
			ok = 0;
	if (ok) {
		int y = atoi(v), m = atoi(v + 5), d = atoi(v + 8);
		static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		ok = y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] && !(m == 2 && d == 29 && !leap);
	}
	if (!ok)
		return s_bad(r, field, "%s '%.40s' is not a date YYYY-MM-DD", field, v);
	return 0;
}

/* A Party: name, and an identity that is a valid 居民身份证号码 or USCC
 * (only a USCC when uscc_only). */
static int s_check_party(struct qiao_responder **r, const Qiao__V1__Party *p, const char *field, int uscc_only)
{
	char f[160];
	if (!p)
		return s_bad(r, field, "%s is required", field);
	snprintf(f, sizeof f, "%s.name", field);
	if (dept_check_text(r, p->name, f, 100) != 0)
		return -1;
	snprintf(f, sizeof f, "%s.id", field);
	if (!p->id)
		return s_bad(r, f, "%s is required", f);
	snprintf(f, sizeof f, "%s.id.id", field);
	if (p->id->type == ST_USCC)
		return dept_check_id(r, QIAO_ID_USCC, p->id->id, f, 0);
	if (p->id->type == ST_RESIDENT && !uscc_only)
		return dept_check_id(r, QIAO_ID_RESIDENT, p->id->id, f, 0);
	snprintf(f, sizeof f, "%s.id.type", field);
	return s_bad(r, f, "%s must be %s", f, uscc_only ? "USCC" : "RESIDENT_ID or USCC");
}

static int s_check_parties(struct qiao_responder **r, Qiao__V1__Party *const *v, size_t n, const char *field,
			   size_t max)
{
	if (n < 1 || n > max)
		return s_bad(r, field, "%s: at least 1, at most %zu", field, max);
	for (size_t i = 0; i < n; i++) {
		char f[96];
		snprintf(f, sizeof f, "%s[%zu]", field, i);
		if (s_check_party(r, v[i], f, 0) != 0)
			return -1;
	}
	return 0;
}

/* ---- building answers from rows ------------------------------------------ */

static Qiao__V1__Party *s_party(struct arena *a, const char *name, int type, const char *id)
{
	Qiao__V1__Party *p = s_new(a, sizeof *p);
	Qiao__V1__DataSubject *s = s_new(a, sizeof *s);
	if (!p || !s)
		return NULL;
	qiao__v1__party__init(p);
	qiao__v1__data_subject__init(s);
	p->name = s_dup(a, name);
	s->type = type == 2 ? ST_USCC : ST_RESIDENT;
	s->id = s_dup(a, id);
	p->id = s;
	return p;
}

/* The parties of mortgage `id` of kind lx ('DYR' / 'ZWR'). */
static int s_mortgage_parties(sqlite3 *db, struct arena *a, int64_t id, const char *lx, Qiao__V1__Party ***out,
			      size_t *n)
{
	sqlite3_stmt *st = s_query(db, "SELECT mc, zjzl, zjh FROM dyaq_dsr WHERE dyaq_id = ?1 AND lx = ?2 ORDER BY sxh",
				   "it", id, lx);
	if (!st)
		return -1;
	Qiao__V1__Party **v = s_new(a, 16 * sizeof *v);
	size_t k = 0;
	int rc;
	while (v && (rc = sqlite3_step(st)) == SQLITE_ROW && k < 16)
		v[k++] = s_party(a, dept_col_text(st, 0), sqlite3_column_int(st, 1), dept_col_text(st, 2));
	sqlite3_finalize(st);
	*out = v;
	*n = k;
	return v && !a->oom ? 0 : -1;
}

/* Mortgage `id` as a MortgageEntry. */
static Qiao__V1__MortgageEntry *s_mortgage_entry(sqlite3 *db, struct arena *a, int64_t id)
{
	sqlite3_stmt *st = s_query(db,
				   "SELECT bdcdjzmh, dysw, dyqr, dyqrzjh, dyfs, bdbzzqse, zgzqse, zwlxqssj, zwlxjssj, "
				   "sfczyd, djsj FROM dyaq WHERE id = ?1",
				   "i", id);
	if (!st)
		return NULL;
	Qiao__V1__MortgageEntry *m = NULL;
	if (sqlite3_step(st) == SQLITE_ROW && (m = s_new(a, sizeof *m)) != NULL) {
		qiao__v1__mortgage_entry__init(m);
		m->proof_no = s_dup(a, dept_col_text(st, 0));
		m->rank = (uint32_t)sqlite3_column_int(st, 1);
		m->mortgagee = s_party(a, dept_col_text(st, 2), 2, dept_col_text(st, 3));
		m->mortgage_type = sqlite3_column_int(st, 4);
		m->secured_amount_fen = sqlite3_column_int64(st, 5);
		m->max_amount_fen = sqlite3_column_int64(st, 6);
		m->debt_start_date = s_dup(a, dept_col_text(st, 7));
		m->debt_end_date = s_dup(a, dept_col_text(st, 8));
		m->transfer_restricted = sqlite3_column_int(st, 9) != 0;
		m->registered_ms = sqlite3_column_int64(st, 10);
	}
	sqlite3_finalize(st);
	if (!m || s_mortgage_parties(db, a, id, "DYR", &m->mortgagors, &m->n_mortgagors) != 0 ||
	    s_mortgage_parties(db, a, id, "ZWR", &m->debtors, &m->n_debtors) != 0)
		return NULL;
	return m;
}

/* The current title of a unit, with what the register says about it. */
struct title {
	int64_t id;
	char *unit, *cert, *zl, *ghyt, *tdyt, *qllx, *qlxz, *land_from, *land_until;
	int64_t jzmj, zdmj;
	int gyfs;
	Qiao__V1__RightHolder **holders;
	size_t nholders;
	Qiao__V1__MortgageEntry **morts; /* in force, by rank */
	int64_t *mort_ids;
	size_t nmorts;
	int seized, objection, restricted, pre_notice;
	char *seizure; /* 查封机关 + 文号 of the first seizure */
	char *restriction_note;
};

/* Load the current title by unit (unit != NULL) or by normalised cert.
 * 1 found, 0 none, -1 error. */
static int s_load_title(sqlite3 *db, struct arena *a, const char *unit, const char *cert, struct title *t)
{
	memset(t, 0, sizeof *t);
	sqlite3_stmt *st = s_query(db,
				   "SELECT f.id, f.bdcdyh, f.bdcqzh, f.gyfs, u.zl, u.ghyt, u.tdyt, u.qllx, u.qlxz, u.jzmj, "
				   "u.zdmj, u.tdsyqssj, u.tdsyjssj FROM fdcq f JOIN bdcdy u ON u.bdcdyh = f.bdcdyh "
				   "WHERE f.qszt = 1 AND (f.bdcdyh = ?1 OR f.bdcqzh = ?2)",
				   "tt", unit, cert);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 0 : -1;
	}
	t->id = sqlite3_column_int64(st, 0);
	t->unit = s_dup(a, dept_col_text(st, 1));
	t->cert = s_dup(a, dept_col_text(st, 2));
	t->gyfs = sqlite3_column_int(st, 3);
	t->zl = s_dup(a, dept_col_text(st, 4));
	t->ghyt = s_dup(a, dept_col_text(st, 5));
	t->tdyt = s_dup(a, dept_col_text(st, 6));
	t->qllx = s_dup(a, dept_col_text(st, 7));
	t->qlxz = s_dup(a, dept_col_text(st, 8));
	t->jzmj = sqlite3_column_int64(st, 9);
	t->zdmj = sqlite3_column_int64(st, 10);
	t->land_from = s_dup(a, dept_col_text(st, 11));
	t->land_until = s_dup(a, dept_col_text(st, 12));
	sqlite3_finalize(st);

	st = s_query(db, "SELECT qlrmc, zjzl, zjh, qlbl FROM qlr WHERE fdcq_id = ?1 ORDER BY sxh", "i", t->id);
	if (!st)
		return -1;
	t->holders = s_new(a, 32 * sizeof *t->holders);
	while (t->holders && sqlite3_step(st) == SQLITE_ROW && t->nholders < 32) {
		Qiao__V1__RightHolder *h = s_new(a, sizeof *h);
		if (!h)
			break;
		qiao__v1__right_holder__init(h);
		h->party = s_party(a, dept_col_text(st, 0), sqlite3_column_int(st, 1), dept_col_text(st, 2));
		h->share = s_dup(a, dept_col_text(st, 3));
		t->holders[t->nholders++] = h;
	}
	sqlite3_finalize(st);

	st = s_query(db, "SELECT id, sfczyd, ydnr FROM dyaq WHERE bdcdyh = ?1 AND qszt = 1 ORDER BY dysw", "t",
		     t->unit);
	if (!st)
		return -1;
	t->mort_ids = s_new(a, 16 * sizeof *t->mort_ids);
	while (t->mort_ids && sqlite3_step(st) == SQLITE_ROW && t->nmorts < 16) {
		t->mort_ids[t->nmorts++] = sqlite3_column_int64(st, 0);
		if (sqlite3_column_int(st, 1)) {
			t->restricted = 1;
			if (!t->restriction_note)
				t->restriction_note = s_dup(a, dept_col_text(st, 2));
		}
	}
	sqlite3_finalize(st);
	t->morts = s_new(a, (t->nmorts ? t->nmorts : 1) * sizeof *t->morts);
	for (size_t i = 0; t->morts && i < t->nmorts; i++)
		if (!(t->morts[i] = s_mortgage_entry(db, a, t->mort_ids[i])))
			return -1;

	st = s_query(db, "SELECT cfjg, cfwh, cflx FROM cfdj WHERE bdcdyh = ?1 AND qszt = 1 ORDER BY id", "t", t->unit);
	if (!st)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		t->seized = 1;
		t->seizure = s_fmt(a, "%s %s %s", dept_col_text(st, 0), dept_col_text(st, 2), dept_col_text(st, 1));
	}
	sqlite3_finalize(st);
	int64_t n = 0;
	if (s_int(db, &n, "SELECT count(*) FROM yydj WHERE bdcdyh = ?1 AND qszt = 1", "t", t->unit) != 1)
		return -1;
	t->objection = n > 0;
	if (s_int(db, &n, "SELECT count(*) FROM ygdj WHERE bdcdyh = ?1 AND qszt = 1", "t", t->unit) != 1)
		return -1;
	t->pre_notice = n > 0;
	return a->oom || !t->holders || !t->mort_ids || !t->morts ? -1 : 1;
}

static int s_unit_exists(sqlite3 *db, const char *unit)
{
	int64_t n = 0;
	return s_int(db, &n, "SELECT count(*) FROM bdcdy WHERE bdcdyh = ?1", "t", unit) == 1 ? n > 0 : -1;
}

/* ---- title-summary.v1 ------------------------------------------------------ */

static void on_title_summary(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			     struct qiao_responder *r)
{
	const Qiao__V1__TitleSummaryRequest *q = (const Qiao__V1__TitleSummaryRequest *)body;
	int has_unit = q->unit_no && q->unit_no[0], has_cert = q->cert_no && q->cert_no[0];
	if (has_unit == has_cert) {
		s_bad(&r, has_unit ? "cert_no" : "unit_no", "exactly one of unit_no and cert_no is required");
		return;
	}
	if (dept_check_id(&r, QIAO_ID_UNIT, q->unit_no, "unit_no", 1) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, q->cert_no, "cert_no", 1) != 0 ||
	    dept_check_text(&r, q->purpose, "purpose", 200) != 0)
		return;
	if (strcmp(q->purpose, req->hdr->purpose ? req->hdr->purpose : "") != 0) {
		s_bad(&r, "purpose", "purpose '%.200s' does not agree with the header's purpose", q->purpose);
		return;
	}
	/* a registry reading another's register needs no authorisation; everyone
	 * else shows the holder's (or buyer's) authorisation */
	int registry = strstr(req->requester, "/realestate") != NULL;
	if (!registry || (q->authorisation_no && q->authorisation_no[0])) {
		if (dept_check_text(&r, q->authorisation_no, "authorisation_no", 64) != 0 ||
		    s_check_party(&r, q->authorised_by, "authorised_by", 0) != 0)
			return;
	}
	char cert[NO_MAX] = "";
	if (has_cert)
		s_norm(q->cert_no, 0, cert);

	struct arena a = {0};
	struct title t;
	sqlite3 *db = dept_db_lock(d);
	int found = s_load_title(db, &a, has_unit ? q->unit_no : NULL, has_cert ? cert : NULL, &t);
	int logged = 0;
	if (found == 1)
		logged = s_exec(db,
				"INSERT INTO cxjl (cxsj, cxf, jbr, cxsy, ajbh, sqsbh, sqr, sqrzjh, bdcdyh, bdcqzh) "
				"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
				"ittttttttt", s_now_ms(), req->requester, req->hdr->user_id, q->purpose,
				req->hdr->case_id, q->authorisation_no,
				q->authorised_by ? q->authorised_by->name : NULL,
				q->authorised_by && q->authorised_by->id ? q->authorised_by->id->id : NULL, t.unit,
				t.cert);
	dept_db_unlock(d);
	if (found < 0 || logged != 0) {
		dept_error(&r, E_INTERNAL, NULL, "the register could not be read");
	} else if (found == 0) {
		dept_error(&r, E_NOTFOUND, has_unit ? "unit_no" : "cert_no", "no title in force for %s %.100s",
			   has_unit ? "不动产单元号" : "不动产权证书号", has_unit ? q->unit_no : q->cert_no);
	} else {
		Qiao__V1__TitleSummary s = QIAO__V1__TITLE_SUMMARY__INIT;
		s.unit_no = t.unit;
		s.cert_no = t.cert;
		s.location = t.zl;
		s.use = t.ghyt;
		s.building_area_dm2 = t.jzmj;
		s.holders = t.holders;
		s.n_holders = t.nholders;
		s.co_ownership = t.gyfs + 1;
		s.mortgages = t.morts;
		s.n_mortgages = t.nmorts;
		s.seized = t.seized;
		s.objection = t.objection;
		s.transfer_restricted = t.restricted;
		s.restriction_note = t.restriction_note ? t.restriction_note : (char *)"";
		s.pre_notice = t.pre_notice;
		s.as_of_ms = s_now_ms();
		dept_reply(&r, &s.base);
	}
	s_arena_free(&a);
}

/* ---- mortgagee-opinion.v1 -------------------------------------------------- */

static void s_opinion_reply(struct qiao_responder **r, int accepted, const char *receipt, int64_t when,
			    const char *reason)
{
	Qiao__V1__MortgageeOpinionResult res = QIAO__V1__MORTGAGEE_OPINION_RESULT__INIT;
	res.accepted = accepted;
	res.receipt_no = (char *)(accepted ? receipt : "");
	res.received_ms = accepted ? when : 0;
	res.refusal_reason = (char *)(accepted ? "" : reason);
	dept_reply(r, &res.base);
}

static void on_mortgagee_opinion(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				 struct qiao_responder *r)
{
	const Qiao__V1__MortgageeOpinion *q = (const Qiao__V1__MortgageeOpinion *)body;
	if (s_check_party(&r, q->mortgagee, "mortgagee", 1) != 0 ||
	    dept_check_id(&r, QIAO_ID_PROOF, q->original_proof_no, "original_proof_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, q->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, q->cert_no, "cert_no", 1) != 0 ||
	    dept_check_text(&r, q->consent_no, "consent_no", 64) != 0 ||
	    s_opt_text(&r, q->loan_contract_no, "loan_contract_no", 64) != 0)
		return;
	if (q->payoff_amount_fen <= 0) {
		s_bad(&r, "payoff_amount_fen", "payoff_amount_fen must be > 0");
		return;
	}
	if (q->consent_valid_until_ms <= 0) {
		s_bad(&r, "consent_valid_until_ms", "consent_valid_until_ms is required");
		return;
	}
	char proof[NO_MAX], cert[NO_MAX] = "", me[19];
	s_norm(q->original_proof_no, 1, proof);
	if (q->cert_no && q->cert_no[0])
		s_norm(q->cert_no, 0, cert);
	s_member_uscc(req->requester, me);
	int64_t now = s_now_ms();

	char reason[1024] = "", receipt[64] = "";
	int64_t when = 0;
	int accepted = 0, err = 0, notfound = 0;
	sqlite3 *db = dept_db_lock(d);
	/* a repeated opinion (same 同意书编号) answers what was recorded */
	sqlite3_stmt *st = s_query(db, "SELECT sjbh, jssj, bdcdjzmh, bdcdyh FROM ydyqryj WHERE tysbh = ?1", "t",
				   q->consent_no);
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) == SQLITE_ROW) {
		if (strcmp(dept_col_text(st, 2), proof) == 0 && strcmp(dept_col_text(st, 3), q->unit_no) == 0) {
			accepted = 1;
			snprintf(receipt, sizeof receipt, "%s", dept_col_text(st, 0));
			when = sqlite3_column_int64(st, 1);
		} else {
			snprintf(reason, sizeof reason, "同意书编号 %.64s 已用于另一抵押权 %s", q->consent_no,
				 dept_col_text(st, 2));
		}
	}
	sqlite3_finalize(st);
	if (!err && !accepted && !reason[0]) {
		int64_t qszt = 0;
		st = s_query(db, "SELECT qszt, bdcdyh, dyqrzjh FROM dyaq WHERE bdcdjzmh = ?1", "t", proof);
		if (!st) {
			err = 1;
		} else if (sqlite3_step(st) != SQLITE_ROW) {
			notfound = 1;
		} else {
			qszt = sqlite3_column_int64(st, 0);
			if (qszt != 1)
				snprintf(reason, sizeof reason, "抵押权 %s 已注销", proof);
			else if (strcmp(dept_col_text(st, 1), q->unit_no) != 0)
				snprintf(reason, sizeof reason, "抵押权 %s 不在不动产单元 %s 上", proof, q->unit_no);
			else if (strcmp(dept_col_text(st, 2), q->mortgagee->id->id) != 0)
				snprintf(reason, sizeof reason, "抵押权人与登记簿不符: 登记簿记载的抵押权人为 %s",
					 dept_col_text(st, 2));
			else if (!s_acts_for(req, dept_col_text(st, 2)))
				snprintf(reason, sizeof reason, "发送机构 %s 不是该抵押权的抵押权人", me);
		}
		sqlite3_finalize(st);
		if (!err && !notfound && !reason[0] && cert[0]) {
			int64_t n = 0;
			if (s_int(db, &n, "SELECT count(*) FROM fdcq WHERE bdcdyh = ?1 AND bdcqzh = ?2 AND qszt = 1",
				  "tt", q->unit_no, cert) != 1)
				err = 1;
			else if (n == 0)
				snprintf(reason, sizeof reason, "不动产权证书号 %s 不是该单元的现行证书", cert);
		}
		if (!err && !notfound && !reason[0] && q->consent_valid_until_ms <= now)
			snprintf(reason, sizeof reason, "同意书已过有效期");
		if (!err && !notfound && !reason[0]) {
			/* a newer consent for the same mortgage (a renewed quote)
			 * replaces the one before */
			err = s_begin(db) != 0 || s_new_slbh(db, 1, receipt) != 0 ||
			      s_exec(db, "UPDATE ydyqryj SET zt = ?1 WHERE bdcdjzmh = ?2 AND zt = ?3", "iti",
				     (int64_t)YJ_SUPERSEDED, proof, (int64_t)YJ_VALID) != 0 ||
			      s_exec(db,
				     "INSERT INTO ydyqryj (sjbh, tysbh, bdcdyh, bdcdjzmh, bdcqzh, dyqr, dyqrzjh, jqje, "
				     "tysyxq, dkhth, jssj, zt, sqf, jbr, ajbh) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
				     "?9, ?10, ?11, ?12, ?13, ?14, ?15)",
				     "tttttttiitiitt" "t", receipt, q->consent_no, q->unit_no, proof, cert[0] ? cert : NULL,
				     q->mortgagee->name, q->mortgagee->id->id, q->payoff_amount_fen,
				     q->consent_valid_until_ms, q->loan_contract_no[0] ? q->loan_contract_no : NULL,
				     now, (int64_t)YJ_VALID, req->requester, req->hdr->user_id, req->hdr->case_id) != 0;
			if (err)
				s_rollback(db);
			else
				err = s_commit(db) != 0;
			accepted = !err;
			when = now;
		}
	}
	dept_db_unlock(d);
	if (err)
		dept_error(&r, E_INTERNAL, NULL, "the opinion could not be recorded");
	else if (notfound)
		dept_error(&r, E_NOTFOUND, "original_proof_no", "no mortgage %s in the register", proof);
	else
		s_opinion_reply(&r, accepted, receipt, when, reason);
}

/* ---- tax-clearance-notice.v1 ------------------------------------------------ */

static void s_received_reply(struct qiao_responder **r, int tax, int received, int64_t when, const char *reason)
{
	if (tax) {
		Qiao__V1__TaxClearanceNoticeResult res = QIAO__V1__TAX_CLEARANCE_NOTICE_RESULT__INIT;
		res.received = received;
		res.received_ms = received ? when : 0;
		res.refusal_reason = (char *)(received ? "" : reason);
		dept_reply(r, &res.base);
	} else {
		Qiao__V1__FilingNoticeResult res = QIAO__V1__FILING_NOTICE_RESULT__INIT;
		res.received = received;
		res.received_ms = received ? when : 0;
		res.refusal_reason = (char *)(received ? "" : reason);
		dept_reply(r, &res.base);
	}
}

static int s_check_clearance(struct qiao_responder **r, const Qiao__V1__TaxClearance *c)
{
	if (!c)
		return s_bad(r, "clearance", "clearance is required");
	if (dept_check_text(r, c->assessment_no, "clearance.assessment_no", 64) != 0 ||
	    dept_check_text(r, c->contract_no, "clearance.contract_no", 64) != 0 ||
	    dept_check_id(r, QIAO_ID_UNIT, c->unit_no, "clearance.unit_no", 0) != 0)
		return -1;
	if (c->status != QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID &&
	    c->status != QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_EXEMPT)
		return s_bad(r, "clearance.status", "clearance.status must be PAID or EXEMPT to be delivered");
	if (c->assessed_price_fen <= 0)
		return s_bad(r, "clearance.assessed_price_fen", "clearance.assessed_price_fen must be > 0");
	if (c->n_items > 64)
		return s_bad(r, "clearance.items", "clearance.items: at most 64");
	int64_t due = 0, paid = 0;
	for (size_t i = 0; i < c->n_items; i++) {
		const Qiao__V1__TaxItem *it = c->items[i];
		char f[96];
		snprintf(f, sizeof f, "clearance.items[%zu]", i);
		if (!it)
			return s_bad(r, f, "%s is empty", f);
		if (it->tax_type < 1 || it->tax_type > 9) {
			snprintf(f, sizeof f, "clearance.items[%zu].tax_type", i);
			return s_bad(r, f, "%s is required", f);
		}
		snprintf(f, sizeof f, "clearance.items[%zu].payer", i);
		if (s_check_party(r, it->payer, f, 0) != 0)
			return -1;
		snprintf(f, sizeof f, "clearance.items[%zu].tax_name", i);
		if (s_opt_text(r, it->tax_name, f, 32) != 0)
			return -1;
		if (it->taxable_base_fen < 0 || it->amount_due_fen < 0 || it->amount_paid_fen < 0) {
			snprintf(f, sizeof f, "clearance.items[%zu]", i);
			return s_bad(r, f, "%s: amounts are never negative", f);
		}
		snprintf(f, sizeof f, "clearance.items[%zu].voucher_no", i);
		if (it->amount_paid_fen > 0 && dept_check_text(r, it->voucher_no, f, 64) != 0)
			return -1;
		if (s_opt_text(r, it->voucher_no, f, 64) != 0)
			return -1;
		due += it->amount_due_fen;
		paid += it->amount_paid_fen;
	}
	if (due != c->total_due_fen)
		return s_bad(r, "clearance.total_due_fen", "clearance.total_due_fen is not the sum of the items");
	if (paid != c->total_paid_fen)
		return s_bad(r, "clearance.total_paid_fen", "clearance.total_paid_fen is not the sum of the items");
	if (c->status == QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID && paid < due)
		return s_bad(r, "clearance.total_paid_fen", "status PAID but less paid than due");
	if (c->cleared_ms <= 0)
		return s_bad(r, "clearance.cleared_ms", "clearance.cleared_ms is required");
	return 0;
}

static void on_tax_clearance_notice(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				    struct qiao_responder *r)
{
	const Qiao__V1__TaxClearanceNotice *q = (const Qiao__V1__TaxClearanceNotice *)body;
	if (s_check_clearance(&r, q->clearance) != 0)
		return;
	const Qiao__V1__TaxClearance *c = q->clearance;
	int64_t now = s_now_ms(), when = 0;
	char reason[1024] = "";
	int err = 0, received = 0;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = s_query(db, "SELECT jssj, bdcdyh, htbh FROM wsxx WHERE hdbh = ?1", "t", c->assessment_no);
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) == SQLITE_ROW) {
		if (strcmp(dept_col_text(st, 1), c->unit_no) == 0 && strcmp(dept_col_text(st, 2), c->contract_no) == 0) {
			received = 1;
			when = sqlite3_column_int64(st, 0);
		} else {
			snprintf(reason, sizeof reason, "核定编号 %.64s 已用于另一单元或合同", c->assessment_no);
		}
	}
	sqlite3_finalize(st);
	if (!err && !received && !reason[0]) {
		int ex = s_unit_exists(db, c->unit_no);
		if (ex < 0) {
			err = 1;
		} else if (!ex) {
			snprintf(reason, sizeof reason, "不动产单元号 %s 不在本中心登记簿", c->unit_no);
		} else {
			err = s_begin(db) != 0 ||
			      s_exec(db,
				     "INSERT INTO wsxx (hdbh, htbh, bdcdyh, wszt, jsjg, ynse, yjse, wssj, jssj, sqf, jbr, "
				     "ajbh) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
				     "tttiiiiiittt", c->assessment_no, c->contract_no, c->unit_no, (int64_t)c->status,
				     c->assessed_price_fen, c->total_due_fen, c->total_paid_fen, c->cleared_ms, now,
				     req->requester, req->hdr->user_id, req->hdr->case_id) != 0;
			for (size_t i = 0; !err && i < c->n_items; i++) {
				const Qiao__V1__TaxItem *it = c->items[i];
				err = s_exec(db,
					     "INSERT INTO wsxx_sp (hdbh, sz, szmc, nsr, nsrzjzl, nsrzjh, jsyj, ynse, yjse, "
					     "sphm, jksj) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
					     "tittitiiiti", c->assessment_no, (int64_t)it->tax_type,
					     it->tax_name[0] ? it->tax_name : NULL, it->payer->name,
					     (int64_t)it->payer->id->type, it->payer->id->id, it->taxable_base_fen,
					     it->amount_due_fen, it->amount_paid_fen,
					     it->voucher_no[0] ? it->voucher_no : NULL, it->paid_ms) != 0;
			}
			if (err)
				s_rollback(db);
			else
				err = s_commit(db) != 0;
			received = !err;
			when = now;
		}
	}
	dept_db_unlock(d);
	if (err)
		dept_error(&r, E_INTERNAL, NULL, "the clearance could not be recorded");
	else
		s_received_reply(&r, 1, received, when, reason);
}

/* ---- filing-notice.v1 ------------------------------------------------------ */

static void on_filing_notice(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			     struct qiao_responder *r)
{
	const Qiao__V1__FilingNotice *q = (const Qiao__V1__FilingNotice *)body;
	if (dept_check_text(&r, q->contract_no, "contract_no", 64) != 0 ||
	    dept_check_text(&r, q->filing_no, "filing_no", 64) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, q->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, q->cert_no, "cert_no", 0) != 0 ||
	    s_check_parties(&r, q->sellers, q->n_sellers, "sellers", 32) != 0 ||
	    s_check_parties(&r, q->buyers, q->n_buyers, "buyers", 32) != 0 ||
	    s_opt_text(&r, q->escrow_agreement_no, "escrow_agreement_no", 64) != 0)
		return;
	if (q->price_fen <= 0) {
		s_bad(&r, "price_fen", "price_fen must be > 0");
		return;
	}
	if (q->escrow_amount_fen < 0 || (q->escrow_amount_fen > 0) != (q->escrow_agreement_no[0] != '\0')) {
		s_bad(&r, q->escrow_agreement_no[0] ? "escrow_amount_fen" : "escrow_agreement_no",
		      "escrow_agreement_no and escrow_amount_fen go together");
		return;
	}
	if (q->filed_ms <= 0) {
		s_bad(&r, "filed_ms", "filed_ms is required");
		return;
	}
	char cert[NO_MAX];
	s_norm(q->cert_no, 0, cert);
	int64_t now = s_now_ms(), when = 0;
	char reason[1024] = "";
	int err = 0, received = 0;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = s_query(db, "SELECT jssj, bdcdyh, htbh FROM baxx WHERE babh = ?1", "t", q->filing_no);
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) == SQLITE_ROW) {
		if (strcmp(dept_col_text(st, 1), q->unit_no) == 0 && strcmp(dept_col_text(st, 2), q->contract_no) == 0) {
			received = 1;
			when = sqlite3_column_int64(st, 0);
		} else {
			snprintf(reason, sizeof reason, "备案编号 %.64s 已用于另一单元或合同", q->filing_no);
		}
	}
	sqlite3_finalize(st);
	if (!err && !received && !reason[0]) {
		int64_t n = 0;
		int ex = s_unit_exists(db, q->unit_no);
		if (ex < 0 || (ex && s_int(db, &n,
					   "SELECT count(*) FROM fdcq WHERE bdcdyh = ?1 AND bdcqzh = ?2 AND qszt = 1",
					   "tt", q->unit_no, cert) != 1)) {
			err = 1;
		} else if (!ex) {
			snprintf(reason, sizeof reason, "不动产单元号 %s 不在本中心登记簿", q->unit_no);
		} else if (n == 0) {
			snprintf(reason, sizeof reason, "不动产权证书号 %s 不是该单元的现行证书", cert);
		} else {
			err = s_begin(db) != 0 ||
			      s_exec(db,
				     "INSERT INTO baxx (babh, htbh, bdcdyh, bdcqzh, cjj, jgxybh, jgje, basj, jssj, sqf, "
				     "jbr, ajbh) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
				     "ttttitiiittt", q->filing_no, q->contract_no, q->unit_no, cert, q->price_fen,
				     q->escrow_agreement_no[0] ? q->escrow_agreement_no : NULL, q->escrow_amount_fen,
				     q->filed_ms, now, req->requester, req->hdr->user_id, req->hdr->case_id) != 0;
			for (int k = 0; k < 2; k++) {
				Qiao__V1__Party *const *v = k ? q->buyers : q->sellers;
				size_t nv = k ? q->n_buyers : q->n_sellers;
				for (size_t i = 0; !err && i < nv; i++)
					err = s_exec(db,
						     "INSERT INTO baxx_dsr (babh, lx, sxh, mc, zjzl, zjh) "
						     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
						     "ttitit", q->filing_no, k ? "MSR" : "CMR", (int64_t)(i + 1), v[i]->name,
						     (int64_t)v[i]->id->type, v[i]->id->id) != 0;
			}
			if (err)
				s_rollback(db);
			else
				err = s_commit(db) != 0;
			received = !err;
			when = now;
		}
	}
	dept_db_unlock(d);
	if (err)
		dept_error(&r, E_INTERNAL, NULL, "the filing could not be recorded");
	else
		s_received_reply(&r, 0, received, when, reason);
}

/* ---- combined-registration.v1 ----------------------------------------------- */

static int s_check_holders(struct qiao_responder **r, const Qiao__V1__CombinedRegistrationApplication *q)
{
	if (q->n_right_holders < 1 || q->n_right_holders > 32)
		return s_bad(r, "right_holders", "right_holders: at least 1, at most 32");
	if (q->co_ownership < 1 || q->co_ownership > 4)
		return s_bad(r, "co_ownership", "co_ownership is required");
	if (q->co_ownership == QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_SOLE && q->n_right_holders != 1)
		return s_bad(r, "co_ownership", "co_ownership SOLE with %zu right holders", q->n_right_holders);
	for (size_t i = 0; i < q->n_right_holders; i++) {
		char f[96];
		snprintf(f, sizeof f, "right_holders[%zu]", i);
		if (!q->right_holders[i])
			return s_bad(r, f, "%s is empty", f);
		snprintf(f, sizeof f, "right_holders[%zu].party", i);
		if (s_check_party(r, q->right_holders[i]->party, f, 0) != 0)
			return -1;
		const char *share = q->right_holders[i]->share;
		snprintf(f, sizeof f, "right_holders[%zu].share", i);
		if (strlen(share) > 32)
			return s_bad(r, f, "%s: at most 32 bytes", f);
		if (q->co_ownership == QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_BY_SHARE && !share[0])
			return s_bad(r, f, "%s is required when co_ownership is BY_SHARE", f);
	}
	return 0;
}

static int s_check_application(struct qiao_responder **r, const Qiao__V1__CombinedRegistrationApplication *q)
{
	if (s_opt_text(r, q->slbh, "slbh", 64) != 0)
		return -1;
	if (q->mode < 1 || q->mode > 2)
		return s_bad(r, "mode", "mode is required");
	if (dept_check_id(r, QIAO_ID_CERT, q->original_cert_no, "original_cert_no", 0) != 0 ||
	    dept_check_id(r, QIAO_ID_UNIT, q->unit_no, "unit_no", 0) != 0 || s_check_holders(r, q) != 0 ||
	    s_check_parties(r, q->obligors, q->n_obligors, "obligors", 32) != 0)
		return -1;
	if (q->price_fen <= 0)
		return s_bad(r, "price_fen", "price_fen must be > 0");
	if (dept_check_text(r, q->contract_no, "contract_no", 64) != 0 ||
	    dept_check_text(r, q->filing_no, "filing_no", 64) != 0)
		return -1;
	if (q->n_tax_voucher_nos < 1 || q->n_tax_voucher_nos > 16)
		return s_bad(r, "tax_voucher_nos", "tax_voucher_nos: at least 1, at most 16");
	for (size_t i = 0; i < q->n_tax_voucher_nos; i++) {
		char f[64];
		snprintf(f, sizeof f, "tax_voucher_nos[%zu]", i);
		if (dept_check_text(r, q->tax_voucher_nos[i], f, 64) != 0)
			return -1;
	}
	if (s_check_parties(r, q->mortgagors, q->n_mortgagors, "mortgagors", 16) != 0 ||
	    s_check_party(r, q->mortgagee, "mortgagee", 1) != 0 ||
	    s_check_parties(r, q->debtors, q->n_debtors, "debtors", 16) != 0)
		return -1;
	if (q->mortgage_type == QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL) {
		if (q->secured_amount_fen <= 0)
			return s_bad(r, "secured_amount_fen", "secured_amount_fen is required for GENERAL");
		if (q->max_amount_fen != 0)
			return s_bad(r, "max_amount_fen", "max_amount_fen must be 0 for GENERAL");
	} else if (q->mortgage_type == QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_MAXIMUM) {
		if (q->max_amount_fen <= 0)
			return s_bad(r, "max_amount_fen", "max_amount_fen is required for MAXIMUM");
		if (q->secured_amount_fen != 0)
			return s_bad(r, "secured_amount_fen", "secured_amount_fen must be 0 for MAXIMUM");
	} else {
		return s_bad(r, "mortgage_type", "mortgage_type is required");
	}
	if (s_check_date(r, q->debt_start_date, "debt_start_date") != 0 ||
	    s_check_date(r, q->debt_end_date, "debt_end_date") != 0)
		return -1;
	if (strcmp(q->debt_end_date, q->debt_start_date) < 0)
		return s_bad(r, "debt_end_date", "debt_end_date is before debt_start_date");
	if (dept_check_text(r, q->guarantee_scope, "guarantee_scope", 500) != 0)
		return -1;
	if (q->rank < 1 || q->rank > 99)
		return s_bad(r, "rank", "rank: 1 .. 99");
	if (q->transfer_restricted ? dept_check_text(r, q->restriction_note, "restriction_note", 500) != 0
				   : s_opt_text(r, q->restriction_note, "restriction_note", 500) != 0)
		return -1;
	if (dept_check_text(r, q->mortgage_contract_no, "mortgage_contract_no", 64) != 0 ||
	    dept_check_text(r, q->loan_contract_no, "loan_contract_no", 64) != 0 ||
	    dept_check_id(r, QIAO_ID_PROOF, q->original_mortgage_proof_no, "original_mortgage_proof_no", 1) != 0)
		return -1;
	if (q->original_mortgage_proof_no[0]) {
		if (dept_check_text(r, q->mortgagee_consent_no, "mortgagee_consent_no", 64) != 0 ||
		    dept_check_text(r, q->escrow_agreement_no, "escrow_agreement_no", 64) != 0)
			return -1;
	} else if (s_opt_text(r, q->mortgagee_consent_no, "mortgagee_consent_no", 64) != 0 ||
		   s_opt_text(r, q->escrow_agreement_no, "escrow_agreement_no", 64) != 0) {
		return -1;
	}
	return 0;
}

/* Is every party of `a` in `b` by identity and the other way round? */
static int s_same_parties(Qiao__V1__Party *const *a, size_t na, Qiao__V1__RightHolder *const *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++) {
		int hit = 0;
		for (size_t k = 0; k < nb && !hit; k++)
			hit = b[k]->party && b[k]->party->id && strcmp(a[i]->id->id, b[k]->party->id->id) == 0;
		if (!hit)
			return 0;
	}
	return 1;
}

/* What the combined registration found about the steps before. */
struct prior {
	char opinion[64]; /* 收件编号 of the opinion relied on */
	int64_t payoff_fen;
	int64_t old_mort_id;
};

/*
 * The business checks of a combined application against the register and
 * the notices received.  0 when it may be registered; 1 with reason[]
 * when it is refused; -1 on a database error.
 */
static int s_application_refusal(sqlite3 *db, const Qiao__V1__CombinedRegistrationApplication *q,
				 const struct title *t, const char *orig_cert, struct prior *p, char *reason,
				 size_t rlen)
{
	int64_t now = s_now_ms();
	memset(p, 0, sizeof *p);
	if (q->mode != QIAO__V1__REGISTRATION_MODE__REGISTRATION_MODE_RANKED_MORTGAGE) {
		snprintf(reason, rlen, "本中心暂不办理双预告模式的合并登记，请按顺位抵押模式申请");
		return 1;
	}
	if (strcmp(t->cert, orig_cert) != 0) {
		snprintf(reason, rlen, "原证书号 %s 与登记簿现行不动产权证书号不符", orig_cert);
		return 1;
	}
	if (t->seized) {
		snprintf(reason, rlen, "不动产单元存在查封登记 (%s)，不予办理转移登记", t->seizure);
		return 1;
	}
	if (t->objection) {
		snprintf(reason, rlen, "不动产单元存在异议登记，不予办理转移登记");
		return 1;
	}
	if (t->restricted) {
		snprintf(reason, rlen, "登记簿记载禁止或限制转让的约定: %s", t->restriction_note);
		return 1;
	}
	if (!s_same_parties(q->obligors, q->n_obligors, t->holders, t->nholders)) {
		snprintf(reason, rlen, "义务人与登记簿记载的权利人不符");
		return 1;
	}
	/* the mortgage that stays in place, and its mortgagee's opinion */
	if (t->nmorts > 0 && !q->original_mortgage_proof_no[0]) {
		snprintf(reason, rlen, "不动产单元存在抵押权 %s，申请未载明原抵押登记证明号", t->morts[0]->proof_no);
		return 1;
	}
	if (q->original_mortgage_proof_no[0]) {
		char proof[NO_MAX];
		s_norm(q->original_mortgage_proof_no, 1, proof);
		size_t i = 0;
		while (i < t->nmorts && strcmp(t->morts[i]->proof_no, proof) != 0)
			i++;
		if (i == t->nmorts) {
			snprintf(reason, rlen, "原抵押登记证明号 %s 不是该单元的现势抵押权", proof);
			return 1;
		}
		p->old_mort_id = t->mort_ids[i];
		sqlite3_stmt *st = s_query(db,
					   "SELECT sjbh, tysbh, jqje, tysyxq FROM ydyqryj WHERE bdcdyh = ?1 AND "
					   "bdcdjzmh = ?2 AND zt = ?3 ORDER BY jssj DESC LIMIT 1",
					   "tti", q->unit_no, proof, (int64_t)YJ_VALID);
		if (!st)
			return -1;
		int rc = 1;
		if (sqlite3_step(st) != SQLITE_ROW)
			snprintf(reason, rlen, "未收到原抵押权人对抵押权 %s 的意见 (或已撤回)", proof);
		else if (strcmp(dept_col_text(st, 1), q->mortgagee_consent_no) != 0)
			snprintf(reason, rlen, "原抵押权人同意书编号 %.64s 与收到的意见 (%s) 不符",
				 q->mortgagee_consent_no, dept_col_text(st, 1));
		else if (sqlite3_column_int64(st, 3) <= now)
			snprintf(reason, rlen, "原抵押权人同意书已过有效期");
		else {
			snprintf(p->opinion, sizeof p->opinion, "%s", dept_col_text(st, 0));
			p->payoff_fen = sqlite3_column_int64(st, 2);
			rc = 0;
		}
		sqlite3_finalize(st);
		if (rc)
			return rc;
	}
	/* 完税信息 for this unit and contract, with the vouchers named */
	sqlite3_stmt *st = s_query(db,
				   "SELECT hdbh FROM wsxx WHERE bdcdyh = ?1 AND htbh = ?2 AND wszt IN (2, 3) "
				   "ORDER BY jssj DESC LIMIT 1",
				   "tt", q->unit_no, q->contract_no);
	if (!st)
		return -1;
	char hdbh[128] = "";
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(hdbh, sizeof hdbh, "%s", dept_col_text(st, 0));
	sqlite3_finalize(st);
	if (!hdbh[0]) {
		snprintf(reason, rlen, "未收到合同 %.64s 的完税信息", q->contract_no);
		return 1;
	}
	for (size_t i = 0; i < q->n_tax_voucher_nos; i++) {
		int64_t n = 0;
		if (s_int(db, &n, "SELECT count(*) FROM wsxx_sp WHERE hdbh = ?1 AND sphm = ?2", "tt", hdbh,
			  q->tax_voucher_nos[i]) != 1)
			return -1;
		if (n == 0) {
			snprintf(reason, rlen, "税票号 %.64s 与完税信息 %s 不符", q->tax_voucher_nos[i], hdbh);
			return 1;
		}
	}
	/* 网签备案 + 资金监管 */
	st = s_query(db, "SELECT htbh, cjj, coalesce(jgxybh, ''), jgje FROM baxx WHERE babh = ?1 AND bdcdyh = ?2", "tt",
		     q->filing_no, q->unit_no);
	if (!st)
		return -1;
	int rc = 0;
	if (sqlite3_step(st) != SQLITE_ROW)
		snprintf(reason, rlen, "未收到备案编号 %.64s 的网签备案信息", q->filing_no), rc = 1;
	else if (strcmp(dept_col_text(st, 0), q->contract_no) != 0)
		snprintf(reason, rlen, "网签合同编号与备案信息不符"), rc = 1;
	else if (sqlite3_column_int64(st, 1) != q->price_fen)
		snprintf(reason, rlen, "交易价格与网签备案成交价不符"), rc = 1;
	else if (q->original_mortgage_proof_no[0] && strcmp(dept_col_text(st, 2), q->escrow_agreement_no) != 0)
		snprintf(reason, rlen, "资金监管协议编号 %.64s 与备案信息不符", q->escrow_agreement_no), rc = 1;
	else if (q->original_mortgage_proof_no[0] && sqlite3_column_int64(st, 3) < p->payoff_fen)
		snprintf(reason, rlen, "监管金额低于原抵押权人结清金额"), rc = 1;
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (q->rank != t->nmorts + 1) {
		snprintf(reason, rlen, "抵押顺位应为 %zu (现有 %zu 个抵押权)", t->nmorts + 1, t->nmorts);
		return 1;
	}
	return 0;
}

/* The 证照标识 "1.2.156.3005.2.T.I.N.V.C" for serial N, version 001. */
static int s_licence_id(const char *serial, char out[128])
{
	char cat[128];
	snprintf(cat, sizeof cat, "%s%s%s%s", s_cfg.type_code, s_cfg.uscc, serial, "001");
	char c = qiao_id_mod3736(cat, strlen(cat));
	if (!c)
		return -1;
	snprintf(out, 128, "1.2.156.3005.2.%s.%s.%s.%s.%c", s_cfg.type_code, s_cfg.uscc, serial, "001", c);
	return qiao_id_check_licence(out, NULL, 0) == 0 ? 0 : -1;
}

/* Everything the registration writes, built while the transaction is open. */
struct issued {
	char cert[NO_MAX], proof[NO_MAX], licence_id[128];
	int64_t when;
	uint8_t *licence;     /* ElectronicLicence bytes as signed */
	size_t licence_len;
	Qiao__V1__IssuerSignature sig;
	struct dept_sig_store sigstore;
};

static int s_insert_parties(sqlite3 *db, int64_t mort, const char *lx, Qiao__V1__Party *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s_exec(db, "INSERT INTO dyaq_dsr (dyaq_id, lx, sxh, mc, zjzl, zjh) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			   "ititit", mort, lx, (int64_t)(i + 1), v[i]->name, (int64_t)v[i]->id->type, v[i]->id->id) != 0)
			return -1;
	return 0;
}

/*
 * 登簿: inside the caller's transaction, close the seller's title, create
 * the buyer's, register the new mortgage, issue and sign the
 * 电子不动产权证书, and queue its LicenceEvent.  0 or -1.
 */
static int s_register(struct dept *d, sqlite3 *db, struct arena *a, const Qiao__V1__CombinedRegistrationApplication *q,
		      const struct title *t, const struct prior *p, const char *slbh, struct issued *out)
{
	int64_t cert_seq, proof_seq;
	int64_t now = out->when;
	if (s_new_number(db, 0, out->cert, &cert_seq) != 0 || s_new_number(db, 1, out->proof, &proof_seq) != 0)
		return -1;
	/* the mortgages carried over, for the certificate's 附记 */
	char notes[1000] = "";
	size_t nl = 0;
	for (size_t i = 0; i < t->nmorts && nl < sizeof notes; i++)
		nl += (size_t)snprintf(notes + nl, sizeof notes - nl, "%s第%u顺位抵押权 %s (抵押权人 %s)",
				       i ? "；" : "", t->morts[i]->rank, t->morts[i]->proof_no,
				       t->morts[i]->mortgagee->name);
	if (nl < sizeof notes)
		snprintf(notes + nl, sizeof notes - nl, "%s第%u顺位抵押权 %s (抵押权人 %s)", nl ? "；" : "", q->rank,
			 out->proof, q->mortgagee->name);

	if (s_exec(db, "UPDATE fdcq SET qszt = 2, zxsj = ?1, zxslbh = ?2 WHERE id = ?3 AND qszt = 1", "iti", now, slbh,
		   t->id) != 0 ||
	    s_exec(db,
		   "INSERT INTO fdcq (bdcdyh, bdcqzh, gyfs, qszt, djsj, slbh, jyjg, fj) "
		   "VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7)",
		   "ttiitit", q->unit_no, out->cert, (int64_t)(q->co_ownership - 1), now, slbh, q->price_fen, notes) != 0)
		return -1;
	int64_t title = sqlite3_last_insert_rowid(db);
	for (size_t i = 0; i < q->n_right_holders; i++) {
		const Qiao__V1__RightHolder *h = q->right_holders[i];
		if (s_exec(db, "INSERT INTO qlr (fdcq_id, sxh, qlrmc, zjzl, zjh, qlbl) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			   "iitit" "t", title, (int64_t)(i + 1), h->party->name, (int64_t)h->party->id->type,
			   h->party->id->id, h->share[0] ? h->share : NULL) != 0)
			return -1;
	}
	if (s_exec(db,
		   "INSERT INTO dyaq (bdcdyh, bdcdjzmh, dysw, dyqr, dyqrzjh, dyfs, bdbzzqse, zgzqse, zwlxqssj, zwlxjssj, "
		   "dbfw, sfczyd, ydnr, dyhth, dkhth, qszt, djsj, slbh) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
		   "?10, ?11, ?12, ?13, ?14, ?15, 1, ?16, ?17)",
		   "ttittiiitttittt" "it", q->unit_no, out->proof, (int64_t)q->rank, q->mortgagee->name,
		   q->mortgagee->id->id, (int64_t)q->mortgage_type, q->secured_amount_fen, q->max_amount_fen,
		   q->debt_start_date, q->debt_end_date, q->guarantee_scope, (int64_t)(q->transfer_restricted ? 1 : 0),
		   q->restriction_note[0] ? q->restriction_note : NULL, q->mortgage_contract_no, q->loan_contract_no, now,
		   slbh) != 0)
		return -1;
	int64_t mort = sqlite3_last_insert_rowid(db);
	if (s_insert_parties(db, mort, "DYR", q->mortgagors, q->n_mortgagors) != 0 ||
	    s_insert_parties(db, mort, "ZWR", q->debtors, q->n_debtors) != 0)
		return -1;
	if (p->opinion[0] &&
	    s_exec(db, "UPDATE ydyqryj SET zt = ?1, sy_slbh = ?2 WHERE sjbh = ?3", "itt", (int64_t)YJ_USED, slbh,
		   p->opinion) != 0)
		return -1;
	if (s_exec(db, "UPDATE wsxx SET sy_slbh = ?1 WHERE bdcdyh = ?2 AND htbh = ?3", "ttt", slbh, q->unit_no,
		   q->contract_no) != 0 ||
	    s_exec(db, "UPDATE baxx SET sy_slbh = ?1 WHERE babh = ?2", "tt", slbh, q->filing_no) != 0)
		return -1;

	/* 电子不动产权证书: the typed content inside the signed licence */
	char today[11], serial[32];
	dept_date(today, 0);
	snprintf(serial, sizeof serial, "%.4s%07" PRId64, today, cert_seq);
	if (s_licence_id(serial, out->licence_id) != 0) {
		dept_log(d, "cannot make a licence id from type code %s", s_cfg.type_code);
		return -1;
	}
	Qiao__V1__ElectronicTitleCertificate etc = QIAO__V1__ELECTRONIC_TITLE_CERTIFICATE__INIT;
	etc.cert_no = out->cert;
	etc.licence_id = out->licence_id;
	etc.unit_no = q->unit_no;
	etc.holders = q->right_holders;
	etc.n_holders = q->n_right_holders;
	etc.co_ownership = q->co_ownership;
	etc.location = t->zl;
	etc.right_type = t->qllx;
	etc.right_nature = t->qlxz;
	etc.use = t->tdyt[0] && t->ghyt[0] ? s_fmt(a, "%s/%s", t->tdyt, t->ghyt) : t->ghyt;
	etc.land_area_dm2 = t->zdmj;
	etc.building_area_dm2 = t->jzmj;
	etc.land_use_start_date = t->land_from;
	etc.land_use_end_date = t->land_until;
	etc.registered_date = today;
	etc.registry_name = (char *)s_cfg.registry_name;
	etc.registry_uscc = s_cfg.uscc;
	etc.notes = notes;
	size_t clen = qiao__v1__electronic_title_certificate__get_packed_size(&etc);
	uint8_t *content = s_new(a, clen);
	if (!content)
		return -1;
	qiao__v1__electronic_title_certificate__pack(&etc, content);

	const Qiao__V1__Party *holder = q->right_holders[0]->party;
	int resident = holder->id->type == ST_RESIDENT;
	Qiao__V1__ElectronicLicence lic = QIAO__V1__ELECTRONIC_LICENCE__INIT;
	lic.licence_id = out->licence_id;
	lic.name = "不动产权证书";
	lic.type_code = (char *)s_cfg.type_code;
	lic.number = out->cert;
	lic.issuer_name = (char *)s_cfg.registry_name;
	lic.issuer_uscc = s_cfg.uscc;
	lic.jurisdiction_code = (char *)s_cfg.jurisdiction;
	lic.holder_name = holder->name;
	lic.holder_code = holder->id->id;
	lic.holder_code_type = resident ? QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_RESIDENT_ID
					: QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
	lic.issue_date = today;
	lic.valid_from = today;
	lic.valid_until = "";
	lic.status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID;
	lic.version = 1;
	lic.version_ms = now;
	lic.content_type = "qiao.v1.ElectronicTitleCertificate";
	lic.content.data = content;
	lic.content.len = clen;
	out->licence_len = qiao__v1__electronic_licence__get_packed_size(&lic);
	out->licence = s_new(a, out->licence_len);
	if (!out->licence)
		return -1;
	qiao__v1__electronic_licence__pack(&lic, out->licence);
	qiao__v1__issuer_signature__init(&out->sig);
	if (dept_issuer_sign(d, QIAO_DOMAIN_LICENCE, out->licence, out->licence_len, &out->sig, &out->sigstore) != 0) {
		dept_log(d, "cannot sign licence %s", out->licence_id);
		return -1;
	}
	if (s_exec(db,
		   "INSERT INTO dzzz (dzzzbs, zzbh, fdcq_id, zzlxdm, czzt, czztdm, czztdmlx, bbh, zt, qfrq, zzwj, "
		   "qm_keyid, qm, qm_yu, qm_sj, cjsj) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?10, ?11, ?12, "
		   "?13, ?14, ?15)",
		   "ttittti" "itbtbtii", out->licence_id, out->cert, title, s_cfg.type_code, holder->name, holder->id->id,
		   (int64_t)lic.holder_code_type, (int64_t)lic.status, today, out->licence, out->licence_len,
		   out->sig.key_id, out->sig.signature.data, out->sig.signature.len, out->sig.domain, out->sig.signed_ms,
		   now) != 0)
		return -1;

	/* the outbox row, in this same transaction */
	Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
	sl.licence.data = out->licence;
	sl.licence.len = out->licence_len;
	sl.signature = &out->sig;
	Qiao__V1__LicenceEvent ev = QIAO__V1__LICENCE_EVENT__INIT;
	ev.event_type = QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_ISSUED;
	ev.licence_id = out->licence_id;
	ev.version = 1;
	ev.event_ms = now;
	ev.new_status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID;
	ev.reason = s_fmt(a, "不动产转移登记 受理编号 %s 登簿", slbh);
	ev.licence = &sl;
	size_t elen = qiao__v1__licence_event__get_packed_size(&ev);
	uint8_t *eb = s_new(a, elen);
	if (!eb)
		return -1;
	qiao__v1__licence_event__pack(&ev, eb);
	return s_exec(db, "INSERT INTO zzsj_fb (dzzzbs, sjlx, bbh, sj, cjsj) VALUES (?1, ?2, 1, ?3, ?4)", "tibi",
		      out->licence_id, (int64_t)ev.event_type, eb, elen, now);
}

/* Pack a result (caller frees). */
static uint8_t *s_pack_result(const Qiao__V1__CombinedRegistrationResult *res, size_t *len)
{
	*len = qiao__v1__combined_registration_result__get_packed_size(res);
	uint8_t *b = malloc(*len ? *len : 1);
	if (b)
		qiao__v1__combined_registration_result__pack(res, b);
	return b;
}

static void on_combined_registration(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				     struct qiao_responder *r)
{
	const Qiao__V1__CombinedRegistrationApplication *q = (const Qiao__V1__CombinedRegistrationApplication *)body;
	if (s_check_application(&r, q) != 0)
		return;
	uint8_t hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(hash, req->body ? req->body : (const uint8_t *)"", req->body_len);
	char orig[NO_MAX];
	s_norm(q->original_cert_no, 0, orig);

	struct arena a = {0};
	struct issued out;
	memset(&out, 0, sizeof out);
	out.when = s_now_ms();
	char slbh[80], reason[1100] = "";
	snprintf(slbh, sizeof slbh, "%s", q->slbh);
	uint8_t *stored = NULL, *packed = NULL;
	size_t stored_len = 0, packed_len = 0;
	int err = 0, notfound = 0, conflict = 0;

	sqlite3 *db = dept_db_lock(d);
	/* a repeated 受理编号 answers what was decided the first time */
	if (slbh[0]) {
		sqlite3_stmt *st = s_query(db, "SELECT jg, sqnr_hash FROM djsl WHERE slbh = ?1", "t", slbh);
		if (!st) {
			err = 1;
		} else if (sqlite3_step(st) == SQLITE_ROW) {
			if (sqlite3_column_bytes(st, 1) == (int)sizeof hash &&
			    memcmp(sqlite3_column_blob(st, 1), hash, sizeof hash) == 0)
				stored = s_col_blob(st, 0, &stored_len);
			else
				conflict = 1;
			err = !stored && !conflict;
		}
		sqlite3_finalize(st);
	}
	struct title t;
	int found = 0;
	if (!err && !stored && !conflict) {
		found = s_load_title(db, &a, q->unit_no, NULL, &t);
		if (found < 0) {
			err = 1;
		} else if (found == 0) {
			int ex = s_unit_exists(db, q->unit_no);
			err = ex < 0;
			notfound = ex == 0;
			if (ex == 1) { /* a unit without a title in force */
				memset(&t, 0, sizeof t);
				t.cert = "";
				found = 1;
			}
		}
	}
	if (!err && !stored && !conflict && !notfound) {
		struct prior p;
		int refused = 0;
		if (s_begin(db) != 0) {
			err = 1;
		} else {
			if (!slbh[0] && s_new_slbh(db, 0, slbh) != 0)
				err = 1;
			if (!err) {
				refused = s_application_refusal(db, q, &t, orig, &p, reason, sizeof reason);
				err = refused < 0;
			}
			if (!err && refused == 0)
				err = s_register(d, db, &a, q, &t, &p, slbh, &out) != 0;
			Qiao__V1__CombinedRegistrationResult res = QIAO__V1__COMBINED_REGISTRATION_RESULT__INIT;
			Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
			res.slbh = slbh;
			if (!err && refused) {
				res.outcome = OUT_REJECTED;
				res.rejection_reason = reason;
				res.rejection_basis = REJECT_BASIS;
			} else if (!err) {
				res.outcome = OUT_REGISTERED;
				res.new_cert_no = out.cert;
				res.licence_id = out.licence_id;
				sl.licence.data = out.licence;
				sl.licence.len = out.licence_len;
				sl.signature = &out.sig;
				res.title_certificate = &sl;
				res.mortgage_proof_no = out.proof;
				res.mortgage_rank = q->rank;
				res.registered_ms = out.when;
			}
			if (!err && !(packed = s_pack_result(&res, &packed_len)))
				err = 1;
			if (!err)
				err = s_exec(db,
					     "INSERT INTO djsl (slbh, djlx, djms, bdcdyh, ybdcqzh, zt, xbdcqzh, bdcdjzmh, "
					     "dzzzbs, djsj, bdyy, jg, sqnr_hash, sqsj, sqf, jbr, ajbh) VALUES (?1, ?2, ?3, "
					     "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
					     "ttittittti" "tbbittt", slbh, "转移登记+抵押权首次登记", (int64_t)q->mode,
					     q->unit_no, orig, (int64_t)res.outcome, refused ? NULL : out.cert,
					     refused ? NULL : out.proof, refused ? NULL : out.licence_id,
					     refused ? (int64_t)0 : out.when, refused ? reason : NULL, packed, packed_len,
					     hash, sizeof hash, out.when, req->requester, req->hdr->user_id,
					     req->hdr->case_id) != 0;
			if (err)
				s_rollback(db);
			else
				err = s_commit(db) != 0;
			if (!err)
				dept_log(d, "受理编号 %s: %s %s", slbh, refused ? "不予登记:" : "登簿, 新证书",
					 refused ? reason : out.cert);
		}
	}
	dept_db_unlock(d);
	if (err)
		dept_error(&r, E_INTERNAL, NULL, "the application could not be processed");
	else if (conflict)
		dept_error(&r, E_REJECTED, "slbh", "受理编号 %.64s 已用于另一申请", slbh);
	else if (notfound)
		dept_error(&r, E_NOTFOUND, "unit_no", "no unit %s in the register", q->unit_no);
	else if (stored)
		qiao_respond(&r, stored, stored_len);
	else
		qiao_respond(&r, packed, packed_len);
	free(stored);
	free(packed);
	s_arena_free(&a);
}

/* ---- mortgage-cancellation.v1 ----------------------------------------------- */

static void on_mortgage_cancellation(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				     struct qiao_responder *r)
{
	const Qiao__V1__MortgageCancellationRequest *q = (const Qiao__V1__MortgageCancellationRequest *)body;
	if (dept_check_id(&r, QIAO_ID_PROOF, q->original_proof_no, "original_proof_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, q->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, q->cert_no, "cert_no", 1) != 0 ||
	    s_check_party(&r, q->mortgagee, "mortgagee", 1) != 0 || s_opt_text(&r, q->slbh, "slbh", 64) != 0)
		return;
	if (q->reason < 1 || q->reason > 4) {
		s_bad(&r, "reason", "reason is required");
		return;
	}
	if (q->reason == QIAO__V1__MORTGAGE_CANCELLATION_REASON__MORTGAGE_CANCELLATION_REASON_OTHER
		    ? dept_check_text(&r, q->reason_note, "reason_note", 500) != 0
		    : s_opt_text(&r, q->reason_note, "reason_note", 500) != 0)
		return;
	if (q->reason == QIAO__V1__MORTGAGE_CANCELLATION_REASON__MORTGAGE_CANCELLATION_REASON_DEBT_EXTINGUISHED
		    ? dept_check_text(&r, q->settlement_no, "settlement_no", 64) != 0
		    : s_opt_text(&r, q->settlement_no, "settlement_no", 64) != 0)
		return;
	char proof[NO_MAX], cert[NO_MAX] = "", me[19], slbh[80], reason[1024] = "";
	s_norm(q->original_proof_no, 1, proof);
	if (q->cert_no[0])
		s_norm(q->cert_no, 0, cert);
	s_member_uscc(req->requester, me);
	snprintf(slbh, sizeof slbh, "%s", q->slbh);
	int64_t now = s_now_ms();

	struct arena a = {0};
	uint8_t *stored = NULL, *packed = NULL;
	size_t stored_len = 0, packed_len = 0;
	int err = 0, notfound = 0, was_cancelled = 0;
	int64_t id = 0, rank = 0;
	char unit[64] = "";
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = s_query(db, "SELECT id, qszt, bdcdyh, dyqrzjh, dysw FROM dyaq WHERE bdcdjzmh = ?1", "t", proof);
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) != SQLITE_ROW) {
		notfound = 1;
	} else {
		id = sqlite3_column_int64(st, 0);
		rank = sqlite3_column_int64(st, 4);
		snprintf(unit, sizeof unit, "%s", dept_col_text(st, 2));
		if (strcmp(unit, q->unit_no) != 0)
			snprintf(reason, sizeof reason, "抵押权 %s 不在不动产单元 %s 上", proof, q->unit_no);
		else if (strcmp(dept_col_text(st, 3), q->mortgagee->id->id) != 0)
			snprintf(reason, sizeof reason, "抵押权人与登记簿不符: 登记簿记载的抵押权人为 %s",
				 dept_col_text(st, 3));
		else if (!s_acts_for(req, dept_col_text(st, 3)))
			snprintf(reason, sizeof reason, "申请机构 %s 不是该抵押权的抵押权人", me);
		else
			was_cancelled = sqlite3_column_int(st, 1) != 1;
	}
	sqlite3_finalize(st);
	/* a repeated cancellation answers what was recorded */
	if (!err && was_cancelled) {
		st = s_query(db, "SELECT jg FROM zxdj WHERE bdcdjzmh = ?1", "t", proof);
		if (!st)
			err = 1;
		else if (sqlite3_step(st) == SQLITE_ROW)
			stored = s_col_blob(st, 0, &stored_len);
		sqlite3_finalize(st);
		if (!err && !stored)
			snprintf(reason, sizeof reason, "抵押权 %s 已注销", proof);
	}
	if (!err && !notfound && !stored && !reason[0] && cert[0]) {
		int64_t n = 0;
		if (s_int(db, &n, "SELECT count(*) FROM fdcq WHERE bdcdyh = ?1 AND bdcqzh = ?2 AND qszt = 1", "tt", unit,
			  cert) != 1)
			err = 1;
		else if (n == 0)
			snprintf(reason, sizeof reason, "不动产权证书号 %s 不是该单元的现行证书", cert);
	}
	if (!err && !notfound && !stored) {
		Qiao__V1__MortgageCancellationResult res = QIAO__V1__MORTGAGE_CANCELLATION_RESULT__INIT;
		if (s_begin(db) != 0) {
			err = 1;
		} else {
			if (!slbh[0] && s_new_slbh(db, 0, slbh) != 0)
				err = 1;
			res.slbh = slbh;
			if (!err && reason[0]) {
				res.cancelled = 0;
				res.refusal_reason = reason;
			} else if (!err) {
				err = s_exec(db,
					     "UPDATE dyaq SET qszt = 2, zxsj = ?1, zxyy = ?2, zxyysm = ?3, jqzmbh = ?4, "
					     "zxslbh = ?5 WHERE id = ?6",
					     "iittti", now, (int64_t)q->reason, q->reason_note[0] ? q->reason_note : NULL,
					     q->settlement_no[0] ? q->settlement_no : NULL, slbh, id) != 0;
				/* the later ranks move up, one at a time so that the
				 * (unit, rank) index holds at every step */
				st = err ? NULL
					 : s_query(db,
						   "SELECT id, dysw, bdcdjzmh FROM dyaq WHERE bdcdyh = ?1 AND qszt = 1 AND "
						   "dysw > ?2 ORDER BY dysw",
						   "ti", unit, rank);
				err = err || !st;
				int64_t ids[16], ranks[16];
				char proofs[16][NO_MAX];
				size_t n = 0;
				while (st && sqlite3_step(st) == SQLITE_ROW && n < 16) {
					ids[n] = sqlite3_column_int64(st, 0);
					ranks[n] = sqlite3_column_int64(st, 1);
					snprintf(proofs[n], NO_MAX, "%s", dept_col_text(st, 2));
					n++;
				}
				sqlite3_finalize(st);
				for (size_t i = 0; !err && i < n; i++)
					err = s_exec(db, "UPDATE dyaq SET dysw = ?1 WHERE id = ?2", "ii", ranks[i] - 1,
						     ids[i]) != 0 ||
					      s_exec(db,
						     "INSERT INTO dysw_bg (bdcdjzmh, bdcdyh, ysw, xsw, bgsj, zx_bdcdjzmh, slbh) "
						     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
						     "ttiiitt", proofs[i], unit, ranks[i], ranks[i] - 1, now, proof, slbh) != 0;
				int64_t first = 0;
				int hit = err ? -1
					      : s_int(db, &first,
						      "SELECT id FROM dyaq WHERE bdcdyh = ?1 AND qszt = 1 AND dysw = 1", "t",
						      unit);
				err = err || hit < 0;
				if (!err && hit == 1 && !(res.first_ranked = s_mortgage_entry(db, &a, first)))
					err = 1;
				res.cancelled = 1;
				res.cancelled_ms = now;
			}
			if (!err) {
				packed_len = qiao__v1__mortgage_cancellation_result__get_packed_size(&res);
				packed = malloc(packed_len ? packed_len : 1);
				if (packed)
					qiao__v1__mortgage_cancellation_result__pack(&res, packed);
				err = !packed;
			}
			/* a cancellation is kept; a refusal is not (it may be
			 * retried once corrected) */
			if (!err && res.cancelled)
				err = s_exec(db,
					     "INSERT INTO zxdj (slbh, bdcdjzmh, bdcdyh, zxyy, jg, sqsj, sqf, jbr, ajbh) "
					     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
					     "tttibittt", slbh, proof, unit, (int64_t)q->reason, packed, packed_len, now,
					     req->requester, req->hdr->user_id, req->hdr->case_id) != 0;
			if (err)
				s_rollback(db);
			else
				err = s_commit(db) != 0;
		}
	}
	dept_db_unlock(d);
	if (err)
		dept_error(&r, E_INTERNAL, NULL, "the cancellation could not be processed");
	else if (notfound)
		dept_error(&r, E_NOTFOUND, "original_proof_no", "no mortgage %s in the register", proof);
	else if (stored)
		qiao_respond(&r, stored, stored_len);
	else
		qiao_respond(&r, packed, packed_len);
	free(stored);
	free(packed);
	s_arena_free(&a);
}

/* ---- consent-withdrawal.v1 ----------------------------------------------- */

static void on_consent_withdrawal(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				  struct qiao_responder *r)
{
	const Qiao__V1__ConsentWithdrawal *q = (const Qiao__V1__ConsentWithdrawal *)body;
	if (dept_check_text(&r, q->consent_no, "consent_no", 64) != 0 ||
	    dept_check_text(&r, q->quote_no, "quote_no", 64) != 0 ||
	    dept_check_id(&r, QIAO_ID_PROOF, q->mortgage_proof_no, "mortgage_proof_no", 0) != 0)
		return;
	if (q->reason < 1 || q->reason > 6) {
		s_bad(&r, "reason", "reason is required");
		return;
	}
	if (q->reason == QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER
		    ? dept_check_text(&r, q->reason_note, "reason_note", 500) != 0
		    : s_opt_text(&r, q->reason_note, "reason_note", 500) != 0)
		return;
	char proof[NO_MAX], me[19], reason[1024] = "";
	s_norm(q->mortgage_proof_no, 1, proof);
	s_member_uscc(req->requester, me);
	int64_t now = s_now_ms(), when = 0;
	int err = 0, notfound = 0, withdrawn = 0;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st =
		s_query(db, "SELECT sjbh, bdcdjzmh, dyqrzjh, zt, coalesce(chsj, 0), coalesce(sy_slbh, '') FROM ydyqryj "
			    "WHERE tysbh = ?1",
			"t", q->consent_no);
	char sjbh[64] = "";
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) != SQLITE_ROW) {
		notfound = 1;
	} else {
		snprintf(sjbh, sizeof sjbh, "%s", dept_col_text(st, 0));
		int zt = sqlite3_column_int(st, 3);
		if (strcmp(dept_col_text(st, 1), proof) != 0)
			snprintf(reason, sizeof reason, "同意书 %.64s 不是对抵押权 %s 出具的", q->consent_no, proof);
		else if (!s_acts_for(req, dept_col_text(st, 2)))
			snprintf(reason, sizeof reason, "申请机构 %s 不是出具该意见的抵押权人", me);
		else if (zt == YJ_USED)
			snprintf(reason, sizeof reason, "已登簿 (受理编号 %s)，不能撤回原抵押权人意见",
				 dept_col_text(st, 5));
		else if (zt == YJ_WITHDRAWN || zt == YJ_SUPERSEDED)
			withdrawn = 1, when = sqlite3_column_int64(st, 4);
	}
	sqlite3_finalize(st);
	if (!err && !notfound && !reason[0] && !withdrawn) {
		err = s_exec(db,
			     "UPDATE ydyqryj SET zt = ?1, chsj = ?2, chyy = ?3, chsm = ?4, bjbh = ?5 WHERE sjbh = ?6 "
			     "AND zt = ?7",
			     "iiittti", (int64_t)YJ_WITHDRAWN, now, (int64_t)q->reason,
			     q->reason_note[0] ? q->reason_note : NULL, q->quote_no, sjbh, (int64_t)YJ_VALID) != 0 ||
		      sqlite3_changes(db) != 1;
		withdrawn = !err;
		when = now;
	}
	dept_db_unlock(d);
	if (err) {
		dept_error(&r, E_INTERNAL, NULL, "the withdrawal could not be recorded");
	} else if (notfound) {
		dept_error(&r, E_NOTFOUND, "consent_no", "no mortgagee opinion with consent number %.64s", q->consent_no);
	} else {
		Qiao__V1__ConsentWithdrawalResult res = QIAO__V1__CONSENT_WITHDRAWAL_RESULT__INIT;
		res.withdrawn = withdrawn;
		res.withdrawn_ms = withdrawn ? when : 0;
		res.refusal_reason = withdrawn ? "" : reason;
		dept_reply(&r, &res.base);
	}
}

/* ---- licence-by-id.v1 -------------------------------------------------------- */

static void on_licence_by_id(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			     struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__LicenceByIdRequest *q = (const Qiao__V1__LicenceByIdRequest *)body;
	if (dept_check_id(&r, QIAO_ID_LICENCE, q->licence_id, "licence_id", 0) != 0 ||
	    s_opt_text(&r, q->purpose, "purpose", 200) != 0)
		return;
	uint8_t *lic = NULL, *sig = NULL;
	size_t lic_len = 0, sig_len = 0;
	char key_id[QIAO_KEY_ID_MAX] = "", domain[64] = "";
	int64_t signed_ms = 0, code_type = 0;
	int err = 0, found = 0;
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = s_query(db, "SELECT zzwj, qm_keyid, qm, qm_yu, qm_sj, czztdmlx FROM dzzz WHERE dzzzbs = ?1",
				   "t", q->licence_id);
	if (!st) {
		err = 1;
	} else if (sqlite3_step(st) == SQLITE_ROW) {
		found = 1;
		lic = s_col_blob(st, 0, &lic_len);
		snprintf(key_id, sizeof key_id, "%s", dept_col_text(st, 1));
		sig = s_col_blob(st, 2, &sig_len);
		snprintf(domain, sizeof domain, "%s", dept_col_text(st, 3));
		signed_ms = sqlite3_column_int64(st, 4);
		code_type = sqlite3_column_int64(st, 5);
		err = !lic || !sig;
	}
	sqlite3_finalize(st);
	dept_db_unlock(d);
	if (err) {
		dept_error(&r, E_INTERNAL, NULL, "the licence could not be read");
	} else if (!found) {
		dept_error(&r, E_NOTFOUND, "licence_id", "no 电子不动产权证书 %.128s issued here", q->licence_id);
	} else if (code_type == QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_RESIDENT_ID && !q->purpose[0]) {
		s_bad(&r, "purpose", "purpose is required: the holder is a natural person");
	} else {
		Qiao__V1__IssuerSignature is = QIAO__V1__ISSUER_SIGNATURE__INIT;
		is.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
		is.key_id = key_id;
		is.signature.data = sig;
		is.signature.len = sig_len;
		is.domain = domain;
		is.signed_ms = signed_ms;
		Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
		sl.licence.data = lic;
		sl.licence.len = lic_len;
		sl.signature = &is;
		Qiao__V1__ServedLicence sv = QIAO__V1__SERVED_LICENCE__INIT;
		sv.licence = &sl; /* no cache marking: the gateway fills it */
		Qiao__V1__LicenceByIdReply rep = QIAO__V1__LICENCE_BY_ID_REPLY__INIT;
		rep.licence = &sv;
		dept_reply(&r, &rep.base);
	}
	free(lic);
	free(sig);
}

/* ---- the outbox publisher ---------------------------------------------------- */

static struct {
	struct dept *d;
	pthread_t th;
	volatile sig_atomic_t sig;     /* the signal that asks us to stop */
	struct sigaction old_term, old_int;
} s_pub;

static void s_pub_on_signal(int sig)
{
	s_pub.sig = sig;
}

/* Sleep up to ms, waking early when asked to stop.  true to go on. */
static int s_pub_sleep(long long ms)
{
	for (long long t = 0; t < ms && !s_pub.sig; t += 20)
		usleep(20000);
	return !s_pub.sig;
}

/* Publish the oldest unpublished event.  1 published, 0 none left, -1
 * failed (retry later). */
static int s_pub_one(qiao_adapter_t *a, int *failing)
{
	struct dept *d = s_pub.d;
	int64_t id = 0;
	uint8_t *ev = NULL;
	size_t len = 0;
	char licence[128] = "";
	sqlite3 *db = dept_db_lock(d);
	sqlite3_stmt *st = s_query(db, "SELECT id, sj, dzzzbs FROM zzsj_fb WHERE yfb = 0 ORDER BY id LIMIT 1", NULL);
	int have = 0;
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		ev = s_col_blob(st, 1, &len);
		snprintf(licence, sizeof licence, "%s", dept_col_text(st, 2));
		have = ev != NULL;
	}
	sqlite3_finalize(st);
	dept_db_unlock(d);
	if (!have) {
		free(ev);
		return 0;
	}
	struct qiao_call c = {
		.service = s_cfg.publish_service,
		.user_id = "qiao-registry outbox",
		.purpose = "电子证照变更通知",
		.body_type = "qiao.v1.LicenceEvent",
		.body = ev,
		.body_len = len,
		.timeout_ms = 2000,
	};
	struct qiao_result *res = NULL;
	int rc = qiao_adapter_call(a, &c, &res);
	free(ev);
	int ok = rc == 0 && res && res->kind == QIAO_RESULT_RESPONSE;
	char why[400];
	if (!ok)
		snprintf(why, sizeof why, "%s%s%s", res && res->kind == QIAO_RESULT_ERROR ? res->error.name : qiao_strerror(rc),
			 res ? ": " : "", res ? res->error.message : "");
	qiao_result_free(&res);
	db = dept_db_lock(d);
	if (ok)
		s_exec(db, "UPDATE zzsj_fb SET yfb = 1, fbsj = ?1, cs = cs + 1 WHERE id = ?2", "ii", s_now_ms(), id);
	else
		s_exec(db, "UPDATE zzsj_fb SET cs = cs + 1, zhcw = ?1 WHERE id = ?2", "ti", why, id);
	dept_db_unlock(d);
	if (ok) {
		dept_log(d, "licence event %" PRId64 " (%s) published%s", id, licence, *failing ? " after retries" : "");
		*failing = 0;
		return 1;
	}
	if (!*failing)
		dept_log(d, "licence event %" PRId64 " (%s) not published: %s; retrying every %lld ms", id, licence, why,
			 s_cfg.publish_interval_ms);
	*failing = 1;
	return -1;
}

static int s_is_handler(const struct sigaction *sa)
{
	return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/*
 * The publisher.  It starts with SIGTERM and SIGINT blocked (s_init
 * blocked them before dept_main's threads existed, so every thread
 * inherits the mask), waits until dept_main has installed its own
 * handlers (it does so after the adapter exists), installs ours in their
 * place and unblocks the signals in this thread only.  A stop signal thus
 * reaches us first; we finish what we are doing, leave the adapter and
 * the database alone from then on, and call dept_main's handler, which
 * makes dept_main destroy the adapter and close the database.
 */
static void *s_pub_main(void *arg)
{
	(void)arg;
	struct sigaction cur_t, cur_i;
	for (;;) {
		sigaction(SIGTERM, NULL, &cur_t);
		sigaction(SIGINT, NULL, &cur_i);
		if (cur_t.sa_handler != SIG_DFL && cur_i.sa_handler != SIG_DFL)
			break;
		usleep(10000);
	}
	s_pub.old_term = cur_t;
	s_pub.old_int = cur_i;
	struct sigaction mine;
	memset(&mine, 0, sizeof mine);
	mine.sa_handler = s_pub_on_signal;
	sigemptyset(&mine.sa_mask);
	sigaction(SIGTERM, &mine, NULL);
	sigaction(SIGINT, &mine, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	qiao_adapter_t *a = dept_adapter(s_pub.d);
	int connected = 0;
	while (a && !s_pub.sig && !connected) {
		int rc = qiao_adapter_wait_connected(a, 100);
		if (rc == QIAO_ECLOSED)
			a = NULL; /* dept_main gave up: leave it alone */
		connected = rc == 0;
	}
	int failing = 0;
	while (a && !s_pub.sig) {
		int rc;
		while (!s_pub.sig && (rc = s_pub_one(a, &failing)) == 1)
			;
		if (!s_pub_sleep(s_cfg.publish_interval_ms))
			break;
	}
	/* hand the signal on (or stop dept_main ourselves if it had none) */
	int sig = s_pub.sig ? s_pub.sig : SIGTERM;
	const struct sigaction *old = sig == SIGINT ? &s_pub.old_int : &s_pub.old_term;
	sigaction(SIGTERM, &s_pub.old_term, NULL);
	sigaction(SIGINT, &s_pub.old_int, NULL);
	if (s_is_handler(old))
		old->sa_handler(sig);
	else
		raise(sig);
	return NULL;
}

/* ---- set-up ---------------------------------------------------------------- */

static int s_init(struct dept *d)
{
	s_dept = d;
	s_cfg.registry_name = dept_config(d, "registry_name", "鄂尔多斯市不动产登记中心");
	s_cfg.jurisdiction = dept_config(d, "jurisdiction_code", "150600");
	s_cfg.province = dept_config(d, "cert_province", "蒙");
	s_cfg.city = dept_config(d, "cert_city", "鄂尔多斯市");
	s_cfg.type_code = dept_config(d, "licence_type_code", "11100000000013338W013");
	s_cfg.publish_service = dept_config(d, "publish_service", "11150600MB0K24684F/gateway/licence-publish.v1");
	s_cfg.coordinators = dept_config(d, "case_coordinators", "");
	s_cfg.publish_interval_ms = dept_config_int(d, "publish_interval_ms", 500);
	s_member_uscc(dept_member(d), s_cfg.uscc);
	char why[200];
	if (qiao_id_check_uscc(NULL, s_cfg.uscc, why, sizeof why) != 0) {
		dept_log(d, "member %s: its USCC is not valid: %s", dept_member(d), why);
		return 2;
	}
	const char *tc = s_cfg.type_code;
	char tuscc[19];
	snprintf(tuscc, sizeof tuscc, "%.18s", tc);
	if (strlen(tc) != 21 || qiao_id_check_uscc(NULL, tuscc, why, sizeof why) != 0 || tc[18] < '0' || tc[18] > '9' ||
	    tc[19] < '0' || tc[19] > '9' || tc[20] < '0' || tc[20] > '9') {
		dept_log(d, "licence_type_code %s: want the defining authority's USCC + 3 digits", tc);
		return 2;
	}
	char probe[128];
	if (s_licence_id("20260000001", probe) != 0) {
		dept_log(d, "licence ids made from %s and %s do not validate", tc, s_cfg.uscc);
		return 2;
	}
	if (strlen(s_cfg.jurisdiction) != 6 || strspn(s_cfg.jurisdiction, "0123456789") != 6) {
		dept_log(d, "jurisdiction_code %s: want 6 digits", s_cfg.jurisdiction);
		return 2;
	}
	if (s_cfg.publish_interval_ms < 50 || s_cfg.publish_interval_ms > 600000)
		s_cfg.publish_interval_ms = 500;

	/* see s_pub_main: block the stop signals before any thread exists */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	s_pub.d = d;
	if (pthread_create(&s_pub.th, NULL, s_pub_main, NULL) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		dept_log(d, "cannot start the licence event publisher");
		return 1;
	}
	pthread_detach(s_pub.th);
	return 0;
}

static const struct dept_service s_services[] = {
	{"title-summary.v1", &qiao__v1__title_summary_request__descriptor, &qiao__v1__title_summary__descriptor,
	 on_title_summary},
	{"mortgagee-opinion.v1", &qiao__v1__mortgagee_opinion__descriptor,
	 &qiao__v1__mortgagee_opinion_result__descriptor, on_mortgagee_opinion},
	{"tax-clearance-notice.v1", &qiao__v1__tax_clearance_notice__descriptor,
	 &qiao__v1__tax_clearance_notice_result__descriptor, on_tax_clearance_notice},
	{"filing-notice.v1", &qiao__v1__filing_notice__descriptor, &qiao__v1__filing_notice_result__descriptor,
	 on_filing_notice},
	{"combined-registration.v1", &qiao__v1__combined_registration_application__descriptor,
	 &qiao__v1__combined_registration_result__descriptor, on_combined_registration},
	{"mortgage-cancellation.v1", &qiao__v1__mortgage_cancellation_request__descriptor,
	 &qiao__v1__mortgage_cancellation_result__descriptor, on_mortgage_cancellation},
	{"consent-withdrawal.v1", &qiao__v1__consent_withdrawal__descriptor,
	 &qiao__v1__consent_withdrawal_result__descriptor, on_consent_withdrawal},
	{"licence-by-id.v1", &qiao__v1__licence_by_id_request__descriptor, &qiao__v1__licence_by_id_reply__descriptor,
	 on_licence_by_id},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"registry", s_services, sizeof s_services / sizeof s_services[0], s_init};
	return dept_main(argc, argv, &def);
}
