/*
 * credit.c - qiao-credit, the public credit platform's (公共信用信息平台)
 * adapter, from its own database (schema.sql):
 *
 *   credit-records.v1  a subject's 双公示 行政许可 / 行政处罚, 行政强制,
 *                      严重失信主体名单, 守信激励 and 刑事裁判 records, each
 *                      a SignedCreditRecord (domain qiao.v1.credit-record)
 *   credit-report.v1   专项信用报告 (replaces 无违法违规证明) over a span of at
 *                      most 5 years chosen by the requester, numbered,
 *                      stored and signed (domain qiao.v1.credit-report)
 *
 * Publication (公示) follows the credit-repair rules: a 轻微 penalty is
 * never published, a penalty only until its 公示截止期, a list entry until
 * its removal or end date, and a repaired (信用修复) record no longer.
 * credit-records.v1 serves the records in publication; records marked
 * 已修复 only when the request sets include_repaired, which needs a purpose
 * and a case id (有条件共享).  A report covers every 行政处罚 (but 轻微 ones,
 * see report_minor), 行政强制, 严重失信主体名单 entry and 刑事裁判 of the
 * span, repaired ones included and marked 已修复.
 *
 * Configuration (--config, key = value; all optional):
 *   issuer_name   the platform's name in reports ("鄂尔多斯市公共信用信息平台")
 *   area_code     the division code in report numbers ("150600")
 *   report_minor  1: reports also list 轻微 penalties (default 0)
 */
#include "dept.h"
#include "dept_util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credit.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_issuer.h"

#define EC(x) QIAO__V1__ERROR_CODE__##x
#define RK(x) QIAO__V1__CREDIT_RECORD_KIND__CREDIT_RECORD_KIND_##x
#define SEV(x) QIAO__V1__PENALTY_SEVERITY__PENALTY_SEVERITY_##x
#define RECORDS_MAX 1024
#define DEFAULT_ISSUER_NAME "鄂尔多斯市公共信用信息平台"

/* ---- small checks --------------------------------------------------------- */

static bool s_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool s_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
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
	return dd <= mdays[m - 1] + (m == 2 && s_leap(y));
}

/* `date` minus `years` calendar years (29 February becomes the 28th). */
static void s_minus_years(const char *date, int years, char out[11])
{
	int y = atoi(date) - years, m = atoi(date + 5), dd = atoi(date + 8);
	if (m == 2 && dd == 29 && !s_leap(y))
		dd = 28;
	char buf[32];
	snprintf(buf, sizeof buf, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)dd % 100u);
	memcpy(out, buf, 10);
	out[10] = '\0';
}

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

/* The subject: RESIDENT_ID or USCC, validated; *person set. */
static int s_check_subject(struct qiao_responder **r, const Qiao__V1__DataSubject *s, bool *person)
{
	if (!s) {
		dept_error(r, EC(BAD_REQUEST), "subject", "subject is required");
		return -1;
	}
	*person = s->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	if (s->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID)
		return dept_check_id(r, QIAO_ID_RESIDENT, s->id, "subject.id", 0);
	if (s->type == QIAO__V1__SUBJECT_TYPE__USCC)
		return dept_check_id(r, QIAO_ID_USCC, s->id, "subject.id", 0);
	dept_error(r, EC(BAD_REQUEST), "subject.type", "subject.type must be RESIDENT_ID or USCC");
	return -1;
}

/* "12.75" 万元 -> fen (1 万元 = 1 000 000 fen), exactly; -1 when malformed. */
static int64_t s_wan_to_fen(const char *s)
{
	const char *dot = strchr(s, '.');
	size_t il = dot ? (size_t)(dot - s) : strlen(s);
	size_t fl = dot ? strlen(dot + 1) : 0;
	if (il < 1 || il > 9 || !s_digits(s, il) || (dot && (fl < 1 || fl > 6 || !s_digits(dot + 1, fl))))
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < il; i++)
		v = v * 10 + (s[i] - '0');
	int64_t frac = 0;
	for (size_t i = 0; i < 6; i++)
		frac = frac * 10 + (i < fl ? dot[1 + i] - '0' : 0);
	return v * 1000000 + frac;
}

/* ---- SQLite, parameters always bound --------------------------------------- */

/* ---- request-scoped memory ---------------------------------------------------- */

struct arena {
	void **v;
	size_t n, cap;
	bool failed;
};

static void *s_new(struct arena *a, size_t size)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		void **nv = realloc(a->v, nc * sizeof *nv);
		if (!nv) {
			a->failed = true;
			return NULL;
		}
		a->v = nv;
		a->cap = nc;
	}
	void *p = calloc(1, size ? size : 1);
	if (!p)
		a->failed = true;
	else
		a->v[a->n++] = p;
	return p;
}

/* A copy of s; "" (static) when out of memory, with a->failed set. */
static char *s_dup(struct arena *a, const char *s)
{
	size_t n = strlen(s ? s : "");
	char *c = s_new(a, n + 1);
	if (!c)
		return (char *)"";
	memcpy(c, s ? s : "", n);
	return c;
}

static void s_arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof *a);
}

/* ---- records from the rows -------------------------------------------------------- */

struct item {
	int kind;          /* CreditRecordKind */
	const char *date;  /* decision / listing / judgment date */
	const char *until; /* 严重失信: removal date ("" = none) */
	const char *domain;
	int severity;      /* penalties */
	Qiao__V1__CreditRecord *rec;
};

struct items {
	struct item *v;
	size_t n, cap;
};

struct subject {
	long long ztid;
	char name[600];
	Qiao__V1__CreditSubject cs;
	Qiao__V1__DataSubject ds;
	char code[32];
	char lerep[300];
	char *other[3];
	char other_buf[3][80];
};

#define COMMON "t.jlbs, t.bbh, t.sjly, t.sjlydm, t.hyly, t.gxsj, f.xf_rq, f.xf_wsh, f.xf_jg, "
#define FROM(tab) " FROM " tab " t LEFT JOIN xyxf f ON f.jlbs = t.jlbs WHERE t.ztid = ?"
#define C0 9 /* the first column after COMMON */

static struct item *s_item_add(struct items *it, struct arena *a, sqlite3_stmt *st, struct subject *sub, int kind)
{
	if (it->n == it->cap) {
		size_t nc = it->cap ? it->cap * 2 : 32;
		struct item *nv = realloc(it->v, nc * sizeof *nv);
		if (!nv) {
			a->failed = true;
			return NULL;
		}
		it->v = nv;
		it->cap = nc;
	}
	Qiao__V1__CreditRecord *r = s_new(a, sizeof *r);
	if (!r)
		return NULL;
	qiao__v1__credit_record__init(r);
	r->record_id = s_dup(a, dept_col_text(st, 0));
	r->version = (uint64_t)sqlite3_column_int64(st, 1);
	r->subject = &sub->cs;
	r->source_name = s_dup(a, dept_col_text(st, 2));
	r->source_uscc = s_dup(a, dept_col_text(st, 3));
	r->updated_ms = sqlite3_column_int64(st, 5);
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		Qiao__V1__CreditRepair *rp = s_new(a, sizeof *rp);
		if (!rp)
			return NULL;
		qiao__v1__credit_repair__init(rp);
		rp->repaired = 1;
		rp->repaired_date = s_dup(a, dept_col_text(st, 6));
		rp->decision_no = s_dup(a, dept_col_text(st, 7));
		rp->authority_name = s_dup(a, dept_col_text(st, 8));
		r->repair = rp;
	}
	struct item *x = &it->v[it->n++];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->domain = s_dup(a, dept_col_text(st, 4));
	x->until = "";
	x->rec = r;
	return x;
}

static bool s_repaired(const struct item *x)
{
	return x->rec->repair && x->rec->repair->repaired;
}

/* Every record of subject `sub`, with its publication state as of today. */
static int s_load(struct dept *d, sqlite3 *db, struct subject *sub, const char *today, struct arena *a,
		  struct items *it)
{
	sqlite3_stmt *st;
	struct item *x;

	st = dept_sql_query(d, db,
		     "SELECT " COMMON "t.xk_wsh, t.xk_xkws, t.xk_xkzs, t.xk_xkbh, t.xk_lb, t.xk_nr, t.xk_jdrq,"
		     " t.xk_yxqz, t.xk_yxqzi, t.xk_xkjg, t.xk_xkjgdm" FROM("xzxk"),
		     "i", sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(PERMIT)))) {
		Qiao__V1__AdministrativePermit *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__administrative_permit__init(p);
		p->decision_no = s_dup(a, dept_col_text(st, C0));
		p->decision_name = s_dup(a, dept_col_text(st, C0 + 1));
		p->licence_name = s_dup(a, dept_col_text(st, C0 + 2));
		p->licence_no = s_dup(a, dept_col_text(st, C0 + 3));
		p->category = s_dup(a, dept_col_text(st, C0 + 4));
		p->content = s_dup(a, dept_col_text(st, C0 + 5));
		p->decision_date = s_dup(a, dept_col_text(st, C0 + 6));
		p->valid_from = s_dup(a, dept_col_text(st, C0 + 7));
		p->valid_until = s_dup(a, dept_col_text(st, C0 + 8));
		p->authority_name = s_dup(a, dept_col_text(st, C0 + 9));
		p->authority_uscc = s_dup(a, dept_col_text(st, C0 + 10));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_PERMIT;
		x->rec->permit = p;
		x->date = p->decision_date;
		x->rec->published = !s_repaired(x) && (!p->valid_until[0] || strcmp(p->valid_until, today) >= 0);
	}
	sqlite3_finalize(st);

	st = dept_sql_query(d, db,
		     "SELECT " COMMON "t.cf_wsh, t.cf_wfxw, t.cf_sy, t.cf_yj, t.cf_cflb, t.cf_nr, t.cf_nr_fk,"
		     " t.cf_nr_wfff, t.cf_nr_zkdx, t.cf_jdrq, t.cf_gsjzq, t.cf_sxcd, t.cf_cfjg, t.cf_cfjgdm" FROM("xzcf"),
		     "i", sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(PENALTY)))) {
		Qiao__V1__AdministrativePenalty *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__administrative_penalty__init(p);
		p->decision_no = s_dup(a, dept_col_text(st, C0));
		p->violation_type = s_dup(a, dept_col_text(st, C0 + 1));
		p->violation_facts = s_dup(a, dept_col_text(st, C0 + 2));
		p->legal_basis = s_dup(a, dept_col_text(st, C0 + 3));
		char *cats = s_dup(a, dept_col_text(st, C0 + 4));
		p->categories = s_new(a, 16 * sizeof *p->categories);
		for (char *save = NULL, *c = strtok_r(cats, ";", &save); c && p->categories && p->n_categories < 16;
		     c = strtok_r(NULL, ";", &save))
			p->categories[p->n_categories++] = c;
		p->content = s_dup(a, dept_col_text(st, C0 + 5));
		p->fine_fen = s_wan_to_fen(dept_col_text(st, C0 + 6));
		p->confiscated_fen = s_wan_to_fen(dept_col_text(st, C0 + 7));
		if (p->fine_fen < 0 || p->confiscated_fen < 0) {
			dept_log(d, "penalty %s: an amount is not a decimal number of 万元", x->rec->record_id);
			a->failed = true;
			break;
		}
		p->licence_affected = s_dup(a, dept_col_text(st, C0 + 8));
		p->decision_date = s_dup(a, dept_col_text(st, C0 + 9));
		p->publicity_until = s_dup(a, dept_col_text(st, C0 + 10));
		p->severity = (Qiao__V1__PenaltySeverity)sqlite3_column_int(st, C0 + 11);
		p->authority_name = s_dup(a, dept_col_text(st, C0 + 12));
		p->authority_uscc = s_dup(a, dept_col_text(st, C0 + 13));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_PENALTY;
		x->rec->penalty = p;
		x->date = p->decision_date;
		x->severity = p->severity;
		x->rec->published = !s_repaired(x) && p->severity != SEV(MINOR) && p->publicity_until[0] &&
				    strcmp(p->publicity_until, today) >= 0;
	}
	sqlite3_finalize(st);

	st = dept_sql_query(d, db,
		     "SELECT " COMMON "t.qz_wsh, t.qz_zl, t.qz_nr, t.qz_yj, t.qz_jdrq, t.qz_ssjg, t.qz_ssjgdm" FROM("xzqz"),
		     "i", sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(COERCION)))) {
		Qiao__V1__AdministrativeCoercion *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__administrative_coercion__init(p);
		p->decision_no = s_dup(a, dept_col_text(st, C0));
		p->kind = (Qiao__V1__CoercionKind)sqlite3_column_int(st, C0 + 1);
		p->content = s_dup(a, dept_col_text(st, C0 + 2));
		p->legal_basis = s_dup(a, dept_col_text(st, C0 + 3));
		p->decision_date = s_dup(a, dept_col_text(st, C0 + 4));
		p->authority_name = s_dup(a, dept_col_text(st, C0 + 5));
		p->authority_uscc = s_dup(a, dept_col_text(st, C0 + 6));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_COERCION;
		x->rec->coercion = p;
		x->date = p->decision_date;
		x->rec->published = !s_repaired(x);
	}
	sqlite3_finalize(st);

	st = dept_sql_query(d, db,
		     "SELECT " COMMON "t.md_mc, t.lr_sy, t.rd_yj, t.rd_wsh, t.lr_rq, t.yc_rq, t.rd_jg, t.rd_jgdm"
			     FROM("yzsxmd"),
		     "i", sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(SERIOUS_DISHONESTY)))) {
		Qiao__V1__SeriousDishonestyEntry *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__serious_dishonesty_entry__init(p);
		p->list_name = s_dup(a, dept_col_text(st, C0));
		p->reason = s_dup(a, dept_col_text(st, C0 + 1));
		p->legal_basis = s_dup(a, dept_col_text(st, C0 + 2));
		p->decision_no = s_dup(a, dept_col_text(st, C0 + 3));
		p->listed_date = s_dup(a, dept_col_text(st, C0 + 4));
		p->removal_date = s_dup(a, dept_col_text(st, C0 + 5));
		p->authority_name = s_dup(a, dept_col_text(st, C0 + 6));
		p->authority_uscc = s_dup(a, dept_col_text(st, C0 + 7));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_SERIOUS_DISHONESTY;
		x->rec->serious_dishonesty = p;
		x->date = p->listed_date;
		x->until = p->removal_date;
		x->rec->published = !s_repaired(x) && (!p->removal_date[0] || strcmp(p->removal_date, today) > 0);
	}
	sqlite3_finalize(st);

	st = dept_sql_query(d, db,
		     "SELECT " COMMON "t.md_mc, t.lr_sy, t.rd_wsh, t.lr_rq, t.yxqz, t.rd_jg, t.rd_jgdm" FROM("sxjlmd"), "i",
		     sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(HONOUR)))) {
		Qiao__V1__HonourListEntry *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__honour_list_entry__init(p);
		p->list_name = s_dup(a, dept_col_text(st, C0));
		p->reason = s_dup(a, dept_col_text(st, C0 + 1));
		p->decision_no = s_dup(a, dept_col_text(st, C0 + 2));
		p->listed_date = s_dup(a, dept_col_text(st, C0 + 3));
		p->valid_until = s_dup(a, dept_col_text(st, C0 + 4));
		p->authority_name = s_dup(a, dept_col_text(st, C0 + 5));
		p->authority_uscc = s_dup(a, dept_col_text(st, C0 + 6));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_HONOUR;
		x->rec->honour = p;
		x->date = p->listed_date;
		x->rec->published = !p->valid_until[0] || strcmp(p->valid_until, today) >= 0;
	}
	sqlite3_finalize(st);

	st = dept_sql_query(d, db, "SELECT " COMMON "t.cp_ah, t.cp_fymc, t.cp_zm, t.cp_pjjg, t.cp_cprq" FROM("xscp"), "i",
		     sub->ztid);
	while (st && sqlite3_step(st) == SQLITE_ROW && (x = s_item_add(it, a, st, sub, RK(CRIMINAL_JUDGMENT)))) {
		Qiao__V1__CriminalJudgment *p = s_new(a, sizeof *p);
		if (!p)
			break;
		qiao__v1__criminal_judgment__init(p);
		p->case_no = s_dup(a, dept_col_text(st, C0));
		p->court_name = s_dup(a, dept_col_text(st, C0 + 1));
		p->charges = s_dup(a, dept_col_text(st, C0 + 2));
		p->sentence = s_dup(a, dept_col_text(st, C0 + 3));
		p->judgment_date = s_dup(a, dept_col_text(st, C0 + 4));
		x->rec->content_case = QIAO__V1__CREDIT_RECORD__CONTENT_CRIMINAL_JUDGMENT;
		x->rec->criminal_judgment = p;
		x->date = p->judgment_date;
		/* judgments are public (裁判文书公开) */
		x->rec->published = !s_repaired(x);
	}
	sqlite3_finalize(st);
	return a->failed ? -1 : 0;
}

/* Newest first, then by record id (stable answers). */
static int s_item_cmp(const void *pa, const void *pb)
{
	const struct item *a = pa, *b = pb;
	int c = strcmp(b->date, a->date);
	return c ? c : strcmp(b->rec->record_id, a->rec->record_id);
}

/* The subject by its code: 1 found, 0 not, -1 error. */
static int s_subject(struct dept *d, sqlite3 *db, const Qiao__V1__DataSubject *ds, struct subject *sub)
{
	memset(sub, 0, sizeof *sub);
	bool person = ds->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	sqlite3_stmt *st = dept_sql_query(d, db,
				   "SELECT ztid, xdr_mc, xdr_lb, coalesce(xdr_fddbr, ''), coalesce(xdr_gszc, ''),"
				   " coalesce(xdr_zzjg, ''), coalesce(xdr_sydw, '') FROM xyzt WHERE zjlx = ? AND xdr_dm = ?",
				   "tt", person ? "111" : "001", ds->id);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 0 : -1;
	}
	sub->ztid = sqlite3_column_int64(st, 0);
	snprintf(sub->name, sizeof sub->name, "%s", dept_col_text(st, 1));
	snprintf(sub->code, sizeof sub->code, "%s", ds->id);
	qiao__v1__data_subject__init(&sub->ds);
	sub->ds.type = ds->type;
	sub->ds.id = sub->code;
	qiao__v1__credit_subject__init(&sub->cs);
	sub->cs.name = sub->name;
	sub->cs.category = (Qiao__V1__CreditSubjectCategory)sqlite3_column_int(st, 2);
	sub->cs.id = &sub->ds;
	snprintf(sub->lerep, sizeof sub->lerep, "%s", dept_col_text(st, 3));
	sub->cs.legal_representative = sub->lerep;
	size_t n = 0;
	for (int c = 4; c <= 6; c++) {
		const char *t = dept_col_text(st, c);
		if (t[0]) {
			snprintf(sub->other_buf[n], sizeof sub->other_buf[n], "%s", t);
			sub->other[n] = sub->other_buf[n];
			n++;
		}
	}
	sub->cs.n_other_codes = n;
	sub->cs.other_codes = sub->other;
	sqlite3_finalize(st);
	return 1;
}

/* Pack and sign record r into *out (memory from the arena). */
static int s_sign_record(struct dept *d, struct arena *a, Qiao__V1__CreditRecord *r, Qiao__V1__ServedCreditRecord *out)
{
	size_t n = qiao__v1__credit_record__get_packed_size(r);
	uint8_t *b = s_new(a, n);
	struct dept_sig_store *ss = s_new(a, sizeof *ss);
	Qiao__V1__IssuerSignature *sig = s_new(a, sizeof *sig);
	Qiao__V1__SignedCreditRecord *sr = s_new(a, sizeof *sr);
	if (!b || !ss || !sig || !sr)
		return -1;
	qiao__v1__credit_record__pack(r, b);
	qiao__v1__issuer_signature__init(sig);
	if (dept_issuer_sign(d, QIAO_DOMAIN_CREDIT_RECORD, b, n, sig, ss) != 0)
		return -1;
	qiao__v1__signed_credit_record__init(sr);
	sr->record.data = b;
	sr->record.len = n;
	sr->signature = sig;
	qiao__v1__served_credit_record__init(out);
	out->record = sr;
	return 0;
}

/* ---- credit-records.v1 ---------------------------------------------------------------- */

static void on_records(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
		       struct qiao_responder *r)
{
	const Qiao__V1__CreditRecordsRequest *q = (const Qiao__V1__CreditRecordsRequest *)body;
	bool person = false;
	if (s_check_subject(&r, q->subject, &person) != 0)
		return;
	bool want[7] = {0};
	if (q->n_kinds > 6) {
		dept_error(&r, EC(BAD_REQUEST), "kinds", "at most 6 kinds");
		return;
	}
	for (size_t i = 0; i < q->n_kinds; i++) {
		int k = (int)q->kinds[i];
		if (k < RK(PERMIT) || k > RK(CRIMINAL_JUDGMENT) || want[k]) {
			dept_error(&r, EC(BAD_REQUEST), "kinds", "kinds: kind %d is %s", k,
				   k >= 1 && k <= 6 ? "listed twice" : "not a record kind");
			return;
		}
		want[k] = true;
	}
	if (!q->n_kinds)
		for (int k = 1; k <= 6; k++)
			want[k] = true;
	if (s_check_date(&r, q->from_date, "from_date", true) != 0 ||
	    s_check_date(&r, q->until_date, "until_date", true) != 0)
		return;
	if (q->from_date[0] && q->until_date[0] && strcmp(q->from_date, q->until_date) > 0) {
		dept_error(&r, EC(BAD_REQUEST), "until_date", "until_date is before from_date");
		return;
	}
	if (person ? dept_check_text(&r, q->purpose, "purpose", 200) : s_check_opt_text(&r, q->purpose, "purpose", 200))
		return;
	const char *hp = req->hdr->purpose ? req->hdr->purpose : "";
	const char *case_id = req->hdr->case_id ? req->hdr->case_id : "";
	if (q->include_repaired && (!case_id[0] || (!q->purpose[0] && !hp[0]))) {
		dept_error(&r, EC(BAD_REQUEST), "include_repaired",
			   "include_repaired (records marked 已修复, no longer published) needs a purpose and a case id");
		return;
	}

	char today[11];
	dept_date(today, 0);
	struct arena a = {0};
	struct items it = {0};
	struct subject sub;
	sqlite3 *db = dept_db_lock(d);
	int found = s_subject(d, db, q->subject, &sub);
	int rc = found > 0 ? s_load(d, db, &sub, today, &a, &it) : found;
	dept_db_unlock(d);
	if (rc < 0) {
		dept_error(&r, EC(INTERNAL), NULL, "the credit records could not be read");
		goto out;
	}
	if (it.n)
		qsort(it.v, it.n, sizeof *it.v, s_item_cmp);
	Qiao__V1__ServedCreditRecord *sv = s_new(&a, RECORDS_MAX * sizeof *sv);
	Qiao__V1__ServedCreditRecord **svp = s_new(&a, RECORDS_MAX * sizeof *svp);
	size_t n = 0;
	for (size_t i = 0; sv && svp && i < it.n && n < RECORDS_MAX; i++) {
		struct item *x = &it.v[i];
		if (!want[x->kind] || (q->from_date[0] && strcmp(x->date, q->from_date) < 0) ||
		    (q->until_date[0] && strcmp(x->date, q->until_date) > 0))
			continue;
		if (!x->rec->published && !(s_repaired(x) && q->include_repaired))
			continue;
		if (s_sign_record(d, &a, x->rec, &sv[n]) != 0) {
			a.failed = true;
			break;
		}
		svp[n] = &sv[n];
		n++;
	}
	if (a.failed || !sv || !svp) {
		dept_error(&r, EC(INTERNAL), NULL, "the credit records could not be signed");
		goto out;
	}
	Qiao__V1__CreditRecordsReply rep = QIAO__V1__CREDIT_RECORDS_REPLY__INIT;
	rep.n_records = n;
	rep.records = svp;
	rep.as_of_ms = qiao_now_ms();
	dept_reply(&r, &rep.base);
out:
	free(it.v);
	s_arena_free(&a);
}

/* ---- credit-report.v1 ------------------------------------------------------------------- */

/* Whether item x belongs in a report over [start, end] for `domains`. */
static bool s_in_report(const struct item *x, const Qiao__V1__CreditReportRequest *q, bool minor)
{
	const char *s = q->span_start_date, *e = q->span_end_date;
	bool in;
	switch (x->kind) {
	case RK(PENALTY):
		in = (minor || x->severity != SEV(MINOR)) && strcmp(x->date, s) >= 0 && strcmp(x->date, e) <= 0;
		break;
	case RK(COERCION):
	case RK(CRIMINAL_JUDGMENT): in = strcmp(x->date, s) >= 0 && strcmp(x->date, e) <= 0; break;
	case RK(SERIOUS_DISHONESTY):
		/* on the list at any time of the span */
		in = strcmp(x->date, e) <= 0 && (!x->until[0] || strcmp(x->until, s) >= 0);
		break;
	default: in = false; break;
	}
	if (!in || !q->n_domains)
		return in;
	for (size_t i = 0; i < q->n_domains; i++)
		if (strcmp(q->domains[i], x->domain) == 0)
			return true;
	return false;
}

struct report_out {
	int code;          /* 0, or the error to answer */
	const char *field;
	char msg[400];
	uint8_t *bytes;    /* the signed report */
	size_t len;
	Qiao__V1__IssuerSignature sig;
	struct dept_sig_store ss;
};

static int s_report_fail(struct report_out *o, int code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int s_report_fail(struct report_out *o, int code, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof o->msg, fmt, ap);
	va_end(ap);
	o->code = code;
	o->field = field;
	return -1;
}

static int s_report_locked(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			   const Qiao__V1__CreditReportRequest *q, struct arena *a, struct report_out *o)
{
	char today[11];
	dept_date(today, 0);
	struct subject sub;
	struct items it = {0};
	int rc = s_subject(d, db, q->subject, &sub);
	if (rc < 0)
		return s_report_fail(o, EC(INTERNAL), NULL, "the credit subjects could not be read");
	if (rc == 0)
		return s_report_fail(o, EC(NOT_FOUND), "subject.id", "no credit subject %s on this platform",
				     q->subject->id);
	if (strcmp(sub.name, q->subject_name) != 0)
		return s_report_fail(o, EC(REJECTED), "subject_name",
				     "subject_name does not match the platform's records for %s", q->subject->id);
	if (s_load(d, db, &sub, today, a, &it) != 0) {
		free(it.v);
		return s_report_fail(o, EC(INTERNAL), NULL, "the credit records could not be read");
	}
	if (it.n)
		qsort(it.v, it.n, sizeof *it.v, s_item_cmp);
	bool minor = dept_config_int(d, "report_minor", 0) != 0;
	Qiao__V1__CreditRecord **items = s_new(a, (it.n ? it.n : 1) * sizeof *items);
	size_t n = 0, repaired = 0;
	for (size_t i = 0; items && i < it.n && n < RECORDS_MAX; i++)
		if (s_in_report(&it.v[i], q, minor)) {
			items[n++] = it.v[i].rec;
			repaired += s_repaired(&it.v[i]);
		}
	free(it.v);
	if (!items)
		return s_report_fail(o, EC(INTERNAL), NULL, "out of memory");

	/* the row first: its id numbers the report */
	char domains[64 * 100] = "";
	for (size_t i = 0; i < q->n_domains; i++) {
		size_t l = strlen(domains);
		snprintf(domains + l, sizeof domains - l, "%s%s", i ? "、" : "", q->domains[i]);
	}
	int64_t now = qiao_now_ms();
	bool person = q->subject->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	if (dept_sql_exec(d, db,
		   "INSERT INTO xybg (zjlx, xdr_dm, xdr_mc, bgqq, bgqz, bgyt, hyly, sxs, yxfs, wbljl, sqf, jbr, sqsy, cjsj)"
		   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		   "tttttttiiittti", person ? "111" : "001", q->subject->id, sub.name, q->span_start_date,
		   q->span_end_date, q->report_use, domains, (long long)n, (long long)repaired,
		   (long long)(repaired == n), req->requester, req->hdr->user_id,
		   q->purpose[0] ? q->purpose : (req->hdr->purpose ? req->hdr->purpose : ""), (long long)now) != 0)
		return s_report_fail(o, EC(INTERNAL), NULL, "the report could not be recorded");
	long long bgid = sqlite3_last_insert_rowid(db);
	char no[64], compact[9];
	snprintf(compact, sizeof compact, "%.4s%.2s%.2s", today, today + 5, today + 8);
	snprintf(no, sizeof no, "XYBG-%.6s-%s-%06lld", dept_config(d, "area_code", "150600"), compact, bgid);

	char conclusion[4096], head[2048], area[700] = "";
	const char *scope = "行政处罚、行政强制、严重失信主体名单、刑事裁判";
	if (q->n_domains)
		snprintf(area, sizeof area, "（行业领域：%.600s）", domains);
	snprintf(head, sizeof head, "经查询，%s在报告期%s至%s内%s", sub.name, q->span_start_date, q->span_end_date,
		 area);
	if (n == 0)
		snprintf(conclusion, sizeof conclusion, "%s未发现%s记录。", head, scope);
	else if (repaired == n)
		snprintf(conclusion, sizeof conclusion, "%s有%zu条%s记录，均已完成信用修复（已修复），无未修复的违法违规记录。",
			 head, n, scope);
	else
		snprintf(conclusion, sizeof conclusion, "%s有%zu条%s记录（其中已修复%zu条），详见报告事项。", head, n,
			 scope, repaired);

	char own[19];
	const char *m = dept_member(d);
	snprintf(own, sizeof own, "%.*s", (int)strcspn(m, "/"), m);
	Qiao__V1__DataSubject ds = QIAO__V1__DATA_SUBJECT__INIT;
	ds.type = q->subject->type;
	ds.id = q->subject->id;
	Qiao__V1__CreditReport rep = QIAO__V1__CREDIT_REPORT__INIT;
	rep.report_no = no;
	rep.subject = &ds;
	rep.subject_name = sub.name;
	rep.span_start_date = q->span_start_date;
	rep.span_end_date = q->span_end_date;
	rep.n_domains = q->n_domains;
	rep.domains = q->domains;
	rep.n_items = n;
	rep.items = items;
	rep.no_adverse_records = repaired == n;
	rep.conclusion = conclusion;
	rep.issued_ms = now;
	rep.issuer_name = (char *)dept_config(d, "issuer_name", DEFAULT_ISSUER_NAME);
	rep.issuer_uscc = own;
	o->len = qiao__v1__credit_report__get_packed_size(&rep);
	o->bytes = malloc(o->len ? o->len : 1);
	if (!o->bytes)
		return s_report_fail(o, EC(INTERNAL), NULL, "out of memory");
	qiao__v1__credit_report__pack(&rep, o->bytes);
	qiao__v1__issuer_signature__init(&o->sig);
	if (dept_issuer_sign(d, QIAO_DOMAIN_CREDIT_REPORT, o->bytes, o->len, &o->sig, &o->ss) != 0)
		return s_report_fail(o, EC(INTERNAL), NULL, "the report could not be signed");
	if (dept_sql_exec(d, db, "UPDATE xybg SET bgbh = ?, bgbw = ?, qmsf = ?, qmmy = ?, qmz = ?, qmsj = ? WHERE bgid = ?",
		   "tbitbii", no, (const void *)o->bytes, (int)o->len, (long long)o->sig.algorithm, o->sig.key_id,
		   (const void *)o->sig.signature.data, (int)o->sig.signature.len, (long long)o->sig.signed_ms,
		   bgid) != 0)
		return s_report_fail(o, EC(INTERNAL), NULL, "the report could not be stored");
	dept_log(d, "report %s for %s: %zu items, %zu repaired", no, q->subject->id, n, repaired);
	return 0;
}

static void on_report(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
		      struct qiao_responder *r)
{
	const Qiao__V1__CreditReportRequest *q = (const Qiao__V1__CreditReportRequest *)body;
	bool person = false;
	if (s_check_subject(&r, q->subject, &person) != 0 ||
	    dept_check_text(&r, q->subject_name, "subject_name", 200) != 0 ||
	    s_check_date(&r, q->span_start_date, "span_start_date", false) != 0 ||
	    s_check_date(&r, q->span_end_date, "span_end_date", false) != 0)
		return;
	char today[11], earliest[11];
	dept_date(today, 0);
	if (strcmp(q->span_end_date, today) > 0) {
		dept_error(&r, EC(BAD_REQUEST), "span_end_date", "span_end_date %s is after today (%s)", q->span_end_date,
			   today);
		return;
	}
	if (strcmp(q->span_end_date, q->span_start_date) < 0) {
		dept_error(&r, EC(BAD_REQUEST), "span_end_date", "span_end_date is before span_start_date");
		return;
	}
	s_minus_years(q->span_end_date, 5, earliest);
	if (strcmp(q->span_start_date, earliest) < 0) {
		dept_error(&r, EC(BAD_REQUEST), "span_start_date",
			   "the span is at most 5 years: span_start_date must not be before %s", earliest);
		return;
	}
	if (dept_check_text(&r, q->report_use, "report_use", 100) != 0)
		return;
	if (q->n_domains > 64) {
		dept_error(&r, EC(BAD_REQUEST), "domains", "at most 64 domains");
		return;
	}
	for (size_t i = 0; i < q->n_domains; i++)
		if (dept_check_text(&r, q->domains[i], "domains", 32) != 0)
			return;
	if (person ? dept_check_text(&r, q->purpose, "purpose", 200) : s_check_opt_text(&r, q->purpose, "purpose", 200))
		return;

	struct arena a = {0};
	struct report_out o = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_sql_exec(d, db, "BEGIN IMMEDIATE", "");
	if (rc != 0)
		s_report_fail(&o, EC(INTERNAL), NULL, "the platform's database is busy");
	else
		rc = s_report_locked(d, db, req, q, &a, &o);
	if (rc == 0 && dept_sql_exec(d, db, "COMMIT", "") != 0)
		rc = s_report_fail(&o, EC(INTERNAL), NULL, "the report could not be committed");
	if (rc != 0)
		dept_sql_exec(d, db, "ROLLBACK", "");
	dept_db_unlock(d);
	if (rc == 0) {
		Qiao__V1__SignedCreditReport sr = QIAO__V1__SIGNED_CREDIT_REPORT__INIT;
		sr.report.data = o.bytes;
		sr.report.len = o.len;
		sr.signature = &o.sig;
		Qiao__V1__CreditReportReply rep = QIAO__V1__CREDIT_REPORT_REPLY__INIT;
		rep.report = &sr;
		dept_reply(&r, &rep.base);
	} else {
		dept_error(&r, o.code, o.field, "%s", o.msg);
	}
	free(o.bytes);
	s_arena_free(&a);
}

/* ---- start: refuse a database whose identifiers or amounts are not valid ---------- */

static int s_init(struct dept *d)
{
	static const char *const codes[] = {
		"SELECT 'xyzt ' || xdr_mc, zjlx, xdr_dm FROM xyzt",
		"SELECT jlbs, '001', xk_xkjgdm FROM xzxk UNION ALL SELECT jlbs, '001', sjlydm FROM xzxk",
		"SELECT jlbs, '001', cf_cfjgdm FROM xzcf UNION ALL SELECT jlbs, '001', sjlydm FROM xzcf",
		"SELECT jlbs, '001', qz_ssjgdm FROM xzqz UNION ALL SELECT jlbs, '001', sjlydm FROM xzqz",
		"SELECT jlbs, '001', rd_jgdm FROM yzsxmd UNION ALL SELECT jlbs, '001', sjlydm FROM yzsxmd",
		"SELECT jlbs, '001', rd_jgdm FROM sxjlmd UNION ALL SELECT jlbs, '001', sjlydm FROM sxjlmd",
		"SELECT jlbs, '001', sjlydm FROM xscp",
	};
	int bad = 0;
	sqlite3 *db = dept_db_lock(d);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		sqlite3_stmt *st = dept_sql_query(d, db, codes[i], "");
		bad |= !st;
		while (st && sqlite3_step(st) == SQLITE_ROW) {
			char why[200];
			const char *code = dept_col_text(st, 2);
			int rc = strcmp(dept_col_text(st, 1), "111") == 0 ? qiao_id_check_resident(code, why, sizeof why)
									: qiao_id_check_uscc(NULL, code, why, sizeof why);
			if (rc != 0) {
				dept_log(d, "%s: '%s' is not valid: %s", dept_col_text(st, 0), code, why);
				bad = 1;
			}
		}
		sqlite3_finalize(st);
	}
	sqlite3_stmt *st = dept_sql_query(d, db, "SELECT jlbs, cf_nr_fk, cf_nr_wfff FROM xzcf", "");
	bad |= !st;
	while (st && sqlite3_step(st) == SQLITE_ROW)
		if (s_wan_to_fen(dept_col_text(st, 1)) < 0 || s_wan_to_fen(dept_col_text(st, 2)) < 0) {
			dept_log(d, "penalty %s: an amount is not a decimal number of 万元", dept_col_text(st, 0));
			bad = 1;
		}
	sqlite3_finalize(st);
	dept_db_unlock(d);
	return bad ? 1 : 0;
}

static const struct dept_service services[] = {
	{"credit-records.v1", &qiao__v1__credit_records_request__descriptor,
	 &qiao__v1__credit_records_reply__descriptor, on_records},
	{"credit-report.v1", &qiao__v1__credit_report_request__descriptor, &qiao__v1__credit_report_reply__descriptor,
	 on_report},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"credit", services, sizeof services / sizeof services[0], s_init};
	return dept_main(argc, argv, &def);
}
