/*
 * test_dept_credit.c - qiao-credit, the public credit platform's adapter,
 * behind the real gateway: credit-records.v1 (publication rules, 已修复
 * records only on request, filters, signatures) and credit-report.v1 (the
 * 5-year span, what a report covers, repaired items marked, the report
 * number and row stored, the signature), with refusals and invalid
 * identifiers.
 */
/* dept_harness.h's d_path() trips -Wformat-truncation (PATH_MAX buffers
 * joined into a PATH_MAX buffer); reported to the lead. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "dept_harness.h"
#pragma GCC diagnostic pop
#include "credit.pb-c.h"
#include "qiao_issuer.h"

#include <sqlite3.h>

#define CRD "12150600MB0F2468XF/credit"
#define CRD_USCC "12150600MB0F2468XF"
#define HENGXIN "91150602MA0H864248"   /* permit, honour, a repaired penalty */
#define MENGYUAN "91150602MA0N2K7P25"  /* penalties of every kind and age */
#define LVZHOU "91150603MA0P5R1T40"    /* nothing at all */
#define XINDA "91150621MA0R6D2C03"     /* 严重失信主体名单 */
#define SHAOMAI "92150602MA0Q3W8L72"   /* one 轻微 penalty */
#define HONGYUAN "91150627MA0T9F4H8B"  /* a penalty older than 5 years */
#define YUNFAN "91150602MA0Y7C3E2X"    /* unknown to the platform */
#define WANG "15060219850612003X"    /* a natural person with a 刑事裁判 */

#define EC(x) QIAO__V1__ERROR_CODE__##x
#define RK(x) QIAO__V1__CREDIT_RECORD_KIND__CREDIT_RECORD_KIND_##x
#define CC(x) QIAO__V1__CREDIT_RECORD__CONTENT_##x
#define ST_USCC QIAO__V1__SUBJECT_TYPE__USCC
#define ST_RES QIAO__V1__SUBJECT_TYPE__RESIDENT_ID

static qiao_adapter_t *bank, *market;
static sqlite3 *db;
static char today[11];

/* ---- helpers ---------------------------------------------------------------- */

static bool s_field_is(const char *msg, const char *field)
{
	const char *p = strchr(msg, ' ');
	size_t n = strlen(field);
	return p && strncmp(p + 1, field, n) == 0 && p[1 + n] == ':';
}

#define CHECK_ERROR(code, msg, want, field)                                                        \
	do {                                                                                       \
		CHECK((code) == (want));                                                           \
		CHECK(s_field_is(msg, field));                                                     \
		if ((code) != (want) || !s_field_is(msg, field))                                   \
			fprintf(stderr, "  wanted %d naming %s, got %d: %s\n", (int)(want), field, code, msg); \
	} while (0)

static long long s_int(const char *sql, const char *arg)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	} else {
		fprintf(stderr, "sql: %s\n", sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	return v;
}

static void s_text(const char *sql, const char *arg, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
}

/* `date` minus `years` calendar years (29 February becomes the 28th). */
static void s_minus_years(const char *date, int years, char out[11])
{
	int y = atoi(date) - years, m = atoi(date + 5), d = atoi(date + 8);
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		d = 28;
	char buf[32];
	snprintf(buf, sizeof buf, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)d % 100u);
	memcpy(out, buf, 11);
}

/* SQLite's date(`date`, `mod`), e.g. one day earlier. */
static void s_date_mod(const char *date, const char *mod, char out[11])
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT date(?, ?)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, date, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, mod, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(out, 11, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
}

/* Verify a record's signature, then decode it; NULL when either fails. */
static Qiao__V1__CreditRecord *s_open_record(const Qiao__V1__ServedCreditRecord *sv)
{
	if (!sv || !sv->record || !sv->record->signature)
		return NULL;
	char why[200];
	if (qiao_issuer_verify(sv->record->signature, QIAO_DOMAIN_CREDIT_RECORD, sv->record->record.data,
			       sv->record->record.len, CRD, d_m[D_CREDIT].k->sign_pk, why, sizeof why) != 0) {
		fprintf(stderr, "  record signature: %s\n", why);
		return NULL;
	}
	return qiao__v1__credit_record__unpack(NULL, sv->record->record.len, sv->record->record.data);
}

static Qiao__V1__CreditReport *s_open_report(const Qiao__V1__CreditReportReply *r)
{
	if (!r || !r->report || !r->report->signature)
		return NULL;
	char why[200];
	if (qiao_issuer_verify(r->report->signature, QIAO_DOMAIN_CREDIT_REPORT, r->report->report.data,
			       r->report->report.len, CRD, d_m[D_CREDIT].k->sign_pk, why, sizeof why) != 0) {
		fprintf(stderr, "  report signature: %s\n", why);
		return NULL;
	}
	return qiao__v1__credit_report__unpack(NULL, r->report->report.len, r->report->report.data);
}

/* ---- calls ---------------------------------------------------------------------- */

struct rq {
	int type;
	const char *id;
	const int *kinds;
	size_t nkinds;
	bool repaired;
	const char *from, *until;
	const char *purpose;  /* body */
	const char *case_id;  /* header */
	qiao_adapter_t *as;   /* default bank B */
	const char *hpurpose; /* header; default 贷款审批 (信用监管 for the market) */
};

static Qiao__V1__CreditRecordsReply *s_records(const struct rq *w, int *rc, char *msg)
{
	Qiao__V1__DataSubject ds = QIAO__V1__DATA_SUBJECT__INIT;
	ds.type = (Qiao__V1__SubjectType)w->type;
	ds.id = (char *)(w->id ? w->id : "");
	Qiao__V1__CreditRecordsRequest q = QIAO__V1__CREDIT_RECORDS_REQUEST__INIT;
	q.subject = w->type < 0 ? NULL : &ds;
	q.n_kinds = w->nkinds;
	q.kinds = (Qiao__V1__CreditRecordKind *)w->kinds;
	q.include_repaired = w->repaired;
	q.from_date = (char *)(w->from ? w->from : "");
	q.until_date = (char *)(w->until ? w->until : "");
	q.purpose = (char *)(w->purpose ? w->purpose : "");
	qiao_adapter_t *a = w->as ? w->as : bank;
	const char *hp = w->hpurpose ? w->hpurpose : a == market ? "信用监管" : "贷款审批";
	ProtobufCMessage *m = d_call(a, CRD "/credit-records.v1", &q.base, &qiao__v1__credit_records_reply__descriptor,
				     hp, w->case_id, NULL, 0, rc, msg, 600);
	if (*rc && getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "  credit-records: %d %s\n", *rc, msg);
	return (Qiao__V1__CreditRecordsReply *)m;
}

struct rp {
	int type;
	const char *id, *name, *start, *end, *use, *purpose;
	const char *const *domains;
	size_t ndomains;
};

static Qiao__V1__CreditReportReply *s_report(const struct rp *w, int *rc, char *msg)
{
	Qiao__V1__DataSubject ds = QIAO__V1__DATA_SUBJECT__INIT;
	ds.type = (Qiao__V1__SubjectType)w->type;
	ds.id = (char *)w->id;
	Qiao__V1__CreditReportRequest q = QIAO__V1__CREDIT_REPORT_REQUEST__INIT;
	q.subject = &ds;
	q.subject_name = (char *)(w->name ? w->name : "");
	q.span_start_date = (char *)(w->start ? w->start : "");
	q.span_end_date = (char *)(w->end ? w->end : "");
	q.report_use = (char *)(w->use ? w->use : "");
	q.purpose = (char *)(w->purpose ? w->purpose : "");
	q.n_domains = w->ndomains;
	q.domains = (char **)w->domains;
	ProtobufCMessage *m = d_call(bank, CRD "/credit-report.v1", &q.base, &qiao__v1__credit_report_reply__descriptor,
				     "贷款审批", NULL, NULL, 0, rc, msg, 600);
	if (*rc && getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "  credit-report: %d %s\n", *rc, msg);
	return (Qiao__V1__CreditReportReply *)m;
}

/* Decode every record of an answer (signatures verified) into recs[]; how
 * many verified. */
static size_t s_open_all(const Qiao__V1__CreditRecordsReply *r, Qiao__V1__CreditRecord **recs, size_t max)
{
	size_t ok = 0;
	for (size_t i = 0; r && i < r->n_records && i < max; i++) {
		recs[i] = s_open_record(r->records[i]);
		ok += recs[i] != NULL;
	}
	return ok;
}

static void s_free_all(Qiao__V1__CreditRecord **recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i])
			qiao__v1__credit_record__free_unpacked(recs[i], NULL);
}

/* ---- credit-records.v1 ------------------------------------------------------------ */

static void t_records(void)
{
	int rc;
	char msg[600];
	Qiao__V1__CreditRecord *rec[16] = {0};

	/* 恒信: in publication the permit and the A级纳税人 honour; the repaired
	 * penalty is not published */
	Qiao__V1__CreditRecordsReply *r = s_records(&(struct rq){.type = ST_USCC, .id = HENGXIN}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 2 && r->as_of_ms > 0);
	if (r && r->n_records == 2) {
		CHECK(s_open_all(r, rec, 16) == 2);
		CHECK(rec[0] && rec[0]->content_case == CC(HONOUR) && strcmp(rec[0]->record_id, "HM-150600-2025-000731") == 0 &&
		      rec[0]->published && strcmp(rec[0]->honour->list_name, "A级纳税人") == 0 &&
		      strcmp(rec[0]->source_uscc, "11150600MB0D34560K") == 0);
		CHECK(rec[1] && rec[1]->content_case == CC(PERMIT) &&
		      strcmp(rec[1]->permit->decision_no, "东市监许〔2023〕0218号") == 0 && rec[1]->published &&
		      !rec[1]->repair && rec[1]->version == 1);
		CHECK(rec[1] && rec[1]->subject && rec[1]->subject->id && strcmp(rec[1]->subject->id->id, HENGXIN) == 0 &&
		      rec[1]->subject->id->type == ST_USCC &&
		      strcmp(rec[1]->subject->name, "鄂尔多斯市东胜区恒信商贸有限公司") == 0 &&
		      rec[1]->subject->category == QIAO__V1__CREDIT_SUBJECT_CATEGORY__CREDIT_SUBJECT_CATEGORY_LEGAL_ENTITY &&
		      strcmp(rec[1]->subject->legal_representative, "李国强") == 0);
		s_free_all(rec, 2);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 已修复 records need a purpose and a case id */
	r = s_records(&(struct rq){.type = ST_USCC, .id = HENGXIN, .repaired = true}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "include_repaired");
	r = s_records(&(struct rq){.type = ST_USCC, .id = HENGXIN, .repaired = true, .case_id = "DYGH-150602-2026-0417"},
		      &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 3);
	if (r && r->n_records == 3) {
		CHECK(s_open_all(r, rec, 16) == 3);
		Qiao__V1__CreditRecord *p = NULL;
		for (int i = 0; i < 3; i++)
			if (rec[i] && rec[i]->content_case == CC(PENALTY))
				p = rec[i];
		CHECK(p && p->repair && p->repair->repaired && p->repair->repaired_date[0] &&
		      strcmp(p->repair->decision_no, "鄂信修〔2026〕112号") == 0 && !p->published && p->version == 2);
		CHECK(p && p->penalty->fine_fen == 500000 && p->penalty->n_categories == 2 &&
		      strcmp(p->penalty->categories[0], "警告") == 0 && strcmp(p->penalty->categories[1], "罚款") == 0 &&
		      p->penalty->severity == QIAO__V1__PENALTY_SEVERITY__PENALTY_SEVERITY_GENERAL);
		s_free_all(rec, 3);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 蒙源: only the penalty still in publication and the coercion */
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .as = market}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 2);
	if (r && r->n_records == 2) {
		CHECK(s_open_all(r, rec, 16) == 2);
		CHECK(rec[0] && rec[0]->content_case == CC(PENALTY) &&
		      strcmp(rec[0]->record_id, "CF-150602-2026-000088") == 0 && rec[0]->penalty->fine_fen == 3200000 &&
		      rec[0]->penalty->confiscated_fen == 836000 && rec[0]->published);
		CHECK(rec[1] && rec[1]->content_case == CC(COERCION) &&
		      rec[1]->coercion->kind == QIAO__V1__COERCION_KIND__COERCION_KIND_MEASURE);
		CHECK(rec[0] && rec[1] && strcmp(rec[0]->penalty->decision_date, rec[1]->coercion->decision_date) > 0);
		CHECK(rec[1] && rec[1]->subject && rec[1]->subject->n_other_codes == 1 &&
		      strcmp(rec[1]->subject->other_codes[0], "MA0N2K7P-2") == 0);
		s_free_all(rec, 2);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* filters */
	static const int pen[] = {RK(PENALTY)}, dup[] = {RK(COERCION), RK(COERCION)}, zero[] = {0},
			 serious[] = {RK(SERIOUS_DISHONESTY)};
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .kinds = pen, .nkinds = 1}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 1);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	char from[11];
	s_date_mod(today, "-6 months", from);
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .from = from}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 1);
	if (r && r->n_records == 1) {
		CHECK(s_open_all(r, rec, 16) == 1);
		CHECK(rec[0] && rec[0]->content_case == CC(PENALTY));
		s_free_all(rec, 1);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .kinds = dup, .nkinds = 2}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "kinds");
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .kinds = zero, .nkinds = 1}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "kinds");
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .from = "2026-13-01"}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "from_date");
	r = s_records(&(struct rq){.type = ST_USCC, .id = MENGYUAN, .from = "2026-06-01", .until = "2026-01-01"}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "until_date");

	/* 鑫达 on the 严重失信主体名单 */
	r = s_records(&(struct rq){.type = ST_USCC, .id = XINDA}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 3);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = s_records(&(struct rq){.type = ST_USCC, .id = XINDA, .kinds = serious, .nkinds = 1}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 1);
	if (r && r->n_records == 1) {
		CHECK(s_open_all(r, rec, 16) == 1);
		CHECK(rec[0] && rec[0]->content_case == CC(SERIOUS_DISHONESTY) && rec[0]->published &&
		      strcmp(rec[0]->serious_dishonesty->list_name, "市场监督管理严重违法失信名单") == 0 &&
		      !rec[0]->serious_dishonesty->removal_date[0]);
		s_free_all(rec, 1);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 轻微 is never published; an unknown subject has no records */
	r = s_records(&(struct rq){.type = ST_USCC, .id = SHAOMAI}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = s_records(&(struct rq){.type = ST_USCC, .id = YUNFAN}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 0 && r->as_of_ms > 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* a natural person: purpose required in the body */
	r = s_records(&(struct rq){.type = ST_RES, .id = WANG}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
	r = s_records(&(struct rq){.type = ST_RES, .id = WANG, .purpose = "贷款审批 个人住房贷款"}, &rc, msg);
	CHECK(rc == 0 && r && r->n_records == 1);
	if (r && r->n_records == 1) {
		CHECK(s_open_all(r, rec, 16) == 1);
		CHECK(rec[0] && rec[0]->content_case == CC(CRIMINAL_JUDGMENT) &&
		      strcmp(rec[0]->criminal_judgment->charges, "危险驾驶罪") == 0 &&
		      rec[0]->subject->category == QIAO__V1__CREDIT_SUBJECT_CATEGORY__CREDIT_SUBJECT_CATEGORY_NATURAL_PERSON &&
		      rec[0]->subject->id->type == ST_RES);
		s_free_all(rec, 1);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* invalid identifiers and fields */
	r = s_records(&(struct rq){.type = ST_USCC, .id = "91150602MA0N2K7P26"}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "subject.id");
	r = s_records(&(struct rq){.type = ST_RES, .id = "110105195001010014", .purpose = "贷款审批"}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "subject.id");
	r = s_records(&(struct rq){.type = 0, .id = HENGXIN}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "subject.type");
	r = s_records(&(struct rq){.type = -1}, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "subject");

	/* the policy: the tax bureau has no grant */
	qiao_adapter_t *tax = d_consumer(D_TAX);
	CHECK(tax != NULL);
	if (tax) {
		r = s_records(&(struct rq){.type = ST_USCC, .id = HENGXIN, .as = tax, .hpurpose = "贷款审批"}, &rc, msg);
		CHECK(!r && rc == EC(POLICY_DENIED));
		qiao_adapter_destroy(&tax);
	}
}

/* ---- credit-report.v1 --------------------------------------------------------------- */

static int n_reports; /* reports issued so far */

/* A report over [start, end] checked against its stored row; the decoded
 * report (caller frees) or NULL. */
static Qiao__V1__CreditReport *s_good_report(const struct rp *w)
{
	int rc;
	char msg[600];
	Qiao__V1__CreditReportReply *r = s_report(w, &rc, msg);
	CHECK(rc == 0 && r && r->report);
	Qiao__V1__CreditReport *rep = s_open_report(r);
	CHECK(rep != NULL);
	if (rep) {
		n_reports++;
		CHECK(strncmp(rep->report_no, "XYBG-150600-", 12) == 0 && strlen(rep->report_no) <= 64);
		CHECK(rep->subject && strcmp(rep->subject->id, w->id) == 0 && strcmp(rep->subject_name, w->name) == 0);
		CHECK(strcmp(rep->span_start_date, w->start) == 0 && strcmp(rep->span_end_date, w->end) == 0);
		CHECK(strcmp(rep->issuer_uscc, CRD_USCC) == 0 && rep->issued_ms > 0 && rep->conclusion[0]);
		/* the row: the exact bytes signed, the counts */
		sqlite3_stmt *st = NULL;
		bool row = false;
		if (sqlite3_prepare_v2(db,
				       "SELECT bgbw, qmz, sxs, yxfs, wbljl, xdr_dm, bgqq, bgqz, sqf FROM xybg WHERE bgbh = ?",
				       -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, rep->report_no, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(st) == SQLITE_ROW) {
				size_t n = (size_t)sqlite3_column_bytes(st, 0);
				row = n == r->report->report.len &&
				      memcmp(sqlite3_column_blob(st, 0), r->report->report.data, n) == 0 &&
				      sqlite3_column_bytes(st, 1) == 64 &&
				      memcmp(sqlite3_column_blob(st, 1), r->report->signature->signature.data, 64) == 0 &&
				      (size_t)sqlite3_column_int64(st, 2) == rep->n_items &&
				      sqlite3_column_int(st, 4) == (int)rep->no_adverse_records &&
				      strcmp((const char *)sqlite3_column_text(st, 5), w->id) == 0 &&
				      strcmp((const char *)sqlite3_column_text(st, 6), w->start) == 0 &&
				      strcmp((const char *)sqlite3_column_text(st, 7), w->end) == 0 &&
				      strcmp((const char *)sqlite3_column_text(st, 8), "91150600MA0C9012X7/bank") == 0;
			}
		}
		sqlite3_finalize(st);
		CHECK(row);
		/* only the kinds a report covers; no_adverse_records exactly when all are repaired */
		bool kinds_ok = true, all_repaired = true;
		for (size_t i = 0; i < rep->n_items; i++) {
			int c = rep->items[i]->content_case;
			kinds_ok = kinds_ok && (c == CC(PENALTY) || c == CC(COERCION) || c == CC(SERIOUS_DISHONESTY) ||
						c == CC(CRIMINAL_JUDGMENT));
			all_repaired = all_repaired && rep->items[i]->repair && rep->items[i]->repair->repaired;
		}
		CHECK(kinds_ok);
		CHECK((bool)rep->no_adverse_records == all_repaired);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return rep;
}

static const Qiao__V1__CreditRecord *s_find(const Qiao__V1__CreditReport *rep, const char *record_id)
{
	for (size_t i = 0; rep && i < rep->n_items; i++)
		if (strcmp(rep->items[i]->record_id, record_id) == 0)
			return rep->items[i];
	return NULL;
}

static void t_report(void)
{
	int rc;
	char msg[600], start5[11], too_long[11], tomorrow[11];
	s_minus_years(today, 5, start5);
	s_date_mod(start5, "-1 day", too_long);
	s_date_mod(today, "+1 day", tomorrow);
	const char *mengyuan = "鄂尔多斯市蒙源煤炭运销有限责任公司";

	/* 蒙源 over the full 5 years */
	Qiao__V1__CreditReport *rep = s_good_report(&(struct rp){
		.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = start5, .end = today, .use = "招投标"});
	CHECK(rep && rep->n_items == 4 && !rep->no_adverse_records);
	if (rep) {
		const Qiao__V1__CreditRecord *x = s_find(rep, "CF-150600-2022-000144");
		CHECK(x && x->repair && x->repair->repaired && strcmp(x->repair->decision_no, "鄂信修〔2025〕37号") == 0);
		CHECK(x && x->penalty && x->penalty->fine_fen == 20000000 && x->penalty->confiscated_fen == 8360000);
		CHECK(s_find(rep, "CF-150600-2024-000058") && s_find(rep, "CF-150602-2026-000088") &&
		      s_find(rep, "QZ-150600-2025-000012"));
		/* older than the span, and 轻微: not in it */
		CHECK(!s_find(rep, "CF-150600-2019-000027") && !s_find(rep, "CF-150602-2025-001203"));
		/* newest first */
		CHECK(rep->n_items == 4 && strcmp(rep->items[0]->record_id, "CF-150602-2026-000088") == 0);
		CHECK(strstr(rep->conclusion, "已修复1条") != NULL);
		qiao__v1__credit_report__free_unpacked(rep, NULL);
	}
	CHECK(s_int("SELECT count(*) FROM xybg WHERE xdr_dm = ? AND sxs = 4 AND yxfs = 1 AND wbljl = 0", MENGYUAN) == 1);

	/* the span: at most 5 years, not after today, not reversed */
	Qiao__V1__CreditReportReply *r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan,
							      .start = too_long, .end = today, .use = "招投标"},
						  &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "span_start_date");
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = "2016-01-01",
				  .end = "2026-01-01", .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "span_start_date");
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = start5, .end = tomorrow,
				  .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "span_end_date");
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = today, .end = start5,
				  .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "span_end_date");
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = "2024-02-30",
				  .end = today, .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "span_start_date");
	CHECK(s_int("SELECT count(*) FROM xybg", NULL) == n_reports);

	/* domains */
	static const char *const env[] = {"生态环境"};
	rep = s_good_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = start5, .end = today,
					 .use = "招投标", .domains = env, .ndomains = 1});
	CHECK(rep && rep->n_items == 2 && rep->n_domains == 1 && s_find(rep, "CF-150600-2024-000058") &&
	      s_find(rep, "QZ-150600-2025-000012"));
	if (rep)
		qiao__v1__credit_report__free_unpacked(rep, NULL);

	/* 恒信: its one penalty repaired, so no adverse record, the item marked 已修复 */
	rep = s_good_report(&(struct rp){.type = ST_USCC, .id = HENGXIN, .name = "鄂尔多斯市东胜区恒信商贸有限公司",
					 .start = start5, .end = today, .use = "上市融资"});
	CHECK(rep && rep->n_items == 1 && rep->no_adverse_records);
	if (rep) {
		const Qiao__V1__CreditRecord *x = s_find(rep, "CF-150602-2025-000036");
		CHECK(x && x->repair && x->repair->repaired && !x->published);
		CHECK(strstr(rep->conclusion, "已修复") != NULL);
		qiao__v1__credit_report__free_unpacked(rep, NULL);
	}

	/* clean: nothing at all; a penalty older than 5 years */
	rep = s_good_report(&(struct rp){.type = ST_USCC, .id = LVZHOU, .name = "鄂尔多斯市康巴什区绿洲餐饮管理有限公司",
					 .start = start5, .end = today, .use = "招投标"});
	CHECK(rep && rep->n_items == 0 && rep->no_adverse_records && strstr(rep->conclusion, "未发现"));
	if (rep)
		qiao__v1__credit_report__free_unpacked(rep, NULL);
	rep = s_good_report(&(struct rp){.type = ST_USCC, .id = HONGYUAN, .name = "伊金霍洛旗宏远物流有限公司",
					 .start = start5, .end = today, .use = "招投标"});
	CHECK(rep && rep->n_items == 0 && rep->no_adverse_records);
	if (rep)
		qiao__v1__credit_report__free_unpacked(rep, NULL);
	CHECK(s_int("SELECT count(*) FROM xybg WHERE xdr_dm = ? AND sxs = 0 AND wbljl = 1", LVZHOU) == 1);

	/* 鑫达: on the 严重失信主体名单 */
	rep = s_good_report(&(struct rp){.type = ST_USCC, .id = XINDA, .name = "达拉特旗鑫达建材有限公司",
					 .start = start5, .end = today, .use = "招投标"});
	CHECK(rep && rep->n_items == 3 && !rep->no_adverse_records);
	if (rep) {
		const Qiao__V1__CreditRecord *x = s_find(rep, "MD-150600-2025-000009");
		CHECK(x && x->content_case == CC(SERIOUS_DISHONESTY) && !x->repair);
		qiao__v1__credit_report__free_unpacked(rep, NULL);
	}

	/* a natural person: the 刑事裁判; purpose required */
	r = s_report(&(struct rp){.type = ST_RES, .id = WANG, .name = "王建军", .start = start5, .end = today,
				  .use = "个人住房贷款"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
	rep = s_good_report(&(struct rp){.type = ST_RES, .id = WANG, .name = "王建军", .start = start5, .end = today,
					 .use = "个人住房贷款", .purpose = "贷款审批"});
	CHECK(rep && rep->n_items == 1 && rep->items[0]->content_case == CC(CRIMINAL_JUDGMENT) &&
	      !rep->no_adverse_records);
	if (rep)
		qiao__v1__credit_report__free_unpacked(rep, NULL);

	/* every report is a new one with its own number */
	char a[64], b[64];
	s_text("SELECT bgbh FROM xybg WHERE xdr_dm = ? ORDER BY bgid LIMIT 1", MENGYUAN, a, sizeof a);
	s_text("SELECT bgbh FROM xybg WHERE xdr_dm = ? ORDER BY bgid DESC LIMIT 1", MENGYUAN, b, sizeof b);
	CHECK(a[0] && b[0] && strcmp(a, b) != 0);
	CHECK(s_int("SELECT count(*) FROM xybg", NULL) == n_reports);
	CHECK(s_int("SELECT count(DISTINCT bgbh) FROM xybg", NULL) == n_reports);

	/* refusals and invalid identifiers */
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = "鄂尔多斯市蒙源煤炭有限公司", .start = start5,
				  .end = today, .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(REJECTED), "subject_name");
	r = s_report(&(struct rp){.type = ST_USCC, .id = YUNFAN, .name = "鄂尔多斯市东胜区云帆信息技术有限公司",
				  .start = start5, .end = today, .use = "招投标"},
		     &rc, msg);
	CHECK(!r && rc == EC(NOT_FOUND));
	r = s_report(&(struct rp){.type = ST_USCC, .id = "91150602MA0N2K7P2X", .name = mengyuan, .start = start5,
				  .end = today, .use = "招投标"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "subject.id");
	r = s_report(&(struct rp){.type = ST_RES, .id = "15060219850612003Y", .name = "王建军", .start = start5,
				  .end = today, .use = "个人住房贷款", .purpose = "贷款审批"},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "subject.id");
	r = s_report(&(struct rp){.type = ST_USCC, .id = MENGYUAN, .name = mengyuan, .start = start5, .end = today},
		     &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "report_use");
	CHECK(s_int("SELECT count(*) FROM xybg", NULL) == n_reports);
}

int main(void)
{
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	if (d_setup("dept-credit", NULL) != 0 || d_start_dept(D_CREDIT) != 0) {
		fprintf(stderr, "set-up failed\n");
		d_teardown();
		return 1;
	}
	bank = d_consumer(D_BANK_B);
	market = d_consumer(D_MARKET);
	char path[PATH_MAX];
	d_db_path(D_CREDIT, path, sizeof path);
	CHECK(bank && market && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	if (bank && market && db) {
		sqlite3_busy_timeout(db, 5000);
		t_records();
		t_report();
		int st = h_peer_stop(&d_m[D_CREDIT].proc, SIGTERM);
		CHECK(h_exited_0(st));
	}
	sqlite3_close(db);
	qiao_adapter_destroy(&bank);
	qiao_adapter_destroy(&market);
	d_teardown();
	return check_done();
}
