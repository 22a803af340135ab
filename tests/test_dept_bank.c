/*
 * test_dept_bank.c - qiao-bank (adapters/bank/) end to end: the real
 * gateway, the adapter started TWICE, as bank A (old lender of the
 * seller, bank-a.conf + seed-bank-a.sql) and as bank B (new lender of the
 * buyer, bank-b.conf + seed-bank-b.sql), and SDK consumers in the test
 * acting as the registry, the housing bureau and the banks, each bound
 * by the policy of adapters/bank/policy.conf.
 *
 * Every service: happy path (the answer's fields and the bank's rows,
 * read from its SQLite database), business refusals, idempotent repeats
 * (no second row), identifiers in body fields refused with
 * INVALID_IDENTIFIER naming the field; and the two banks answering the
 * same loan differently (LTV 70 % vs 60 %), with different rates, fees
 * and quote validity.
 */
/* dept_harness.h's d_path() snprintf()s a PATH_MAX source dir into a
 * PATH_MAX buffer, which gcc -Wformat-truncation flags; not ours to edit. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#define DEPT_TEST_OWN_MK_PARTY /* USCC only with a 1 or 9 first */
#include "dept_harness.h"
#include "dept_test_util.h"

#include "bank.pb-c.h"

#define SVC_A "91150600MA0B56780F/bank/"
#define SVC_B "91150600MA0C9012X7/bank/"
#define CASE "case-2026-000123"
#define PURPOSE "带押过户"

#define SELLER "150621199003154522"
#define BUYER "15060219850612003X"
#define CO_BUYER "150602198709301527"
#define BLACKLISTED "150602197811230417"
#define OLD_PERSON "150602196001010012"
#define UNIT "150602001001GB00001F00010001"
#define CERT "蒙(2020)鄂尔多斯市不动产权第0001234号"
#define CERT_FW "蒙（2020）鄂尔多斯市不动产权第0001234号"
#define PROOF "蒙(2020)鄂尔多斯市不动产证明第0005678号"
#define NEW_PROOF "蒙(2026)鄂尔多斯市不动产证明第0012345号"
#define LOAN_A "BOA-GRZF-2020-0618001"
#define LOAN_OVERDUE "BOA-GRZF-2019-1105002"
#define LOAN_B "BOB-GRZF-2021-0301007"
#define PRICE 138000000LL

static qiao_adapter_t *s_reg, *s_house, *s_bank_a, *s_bank_b;

/* ---- the banks' databases (read-only) ----------------------------------- */

/* The first column of the first row of `sql` with text parameters
 * (NULL-terminated), as an integer; -1 when there is no row. */
static long long q_int(int dept, const char *sql, ...)
{
	char path[PATH_MAX];
	d_db_path(dept, path, sizeof path);
	sqlite3 *db = NULL;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot open %s\n", path);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
	} else {
		va_list ap;
		va_start(ap, sql);
		const char *a;
		for (int i = 1; (a = va_arg(ap, const char *)) != NULL; i++)
			sqlite3_bind_text(st, i, a, -1, SQLITE_TRANSIENT);
		va_end(ap);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The same for a text column, into out ("" when there is no row). */
static const char *q_text(int dept, char *out, size_t n, const char *sql, ...)
{
	char path[PATH_MAX];
	d_db_path(dept, path, sizeof path);
	sqlite3 *db = NULL;
	out[0] = '\0';
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return out;
	}
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
	sqlite3_close(db);
	return out;
}

/* ---- dates ---------------------------------------------------------------- */

/* Days since 1970-01-01 of today in China Standard Time. */
static long today_cst(void)
{
	return (long)((time(NULL) + 8 * 3600) / 86400);
}

static long days_of(int y, int m, int d)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
	return (long)(timegm(&tm) / 86400);
}

static void ymd(long days, int *y, int *m, int *d)
{
	time_t t = (time_t)days * 86400 + 43200;
	struct tm tm;
	gmtime_r(&t, &tm);
	*y = tm.tm_year + 1900;
	*m = tm.tm_mon + 1;
	*d = tm.tm_mday;
}

static void date_str(long days, char out[11])
{
	int y, m, d;
	ymd(days, &y, &m, &d);
	char t[48];
	snprintf(t, sizeof t, "%04d-%02d-%02d", y, m, d);
	memcpy(out, t, 10);
	out[10] = '\0';
}

static int64_t end_of_day_ms(long days)
{
	return ((int64_t)(days + 1) * 86400 - 8 * 3600) * 1000;
}

/* The last monthly repayment day `rd` on or before today. */
static long last_repay(int rd)
{
	int y, m, d;
	ymd(today_cst(), &y, &m, &d);
	if (d >= rd)
		return days_of(y, m, rd);
	return m == 1 ? days_of(y - 1, 12, rd) : days_of(y, m - 1, rd);
}

static long add_months(long days, int months)
{
	int y, m, d;
	ymd(days, &y, &m, &d);
	int mm = m - 1 + months;
	y += mm / 12;
	m = mm % 12 + 1;
	static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int last = md[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return days_of(y, m, d > last ? last : d);
}

/* ---- calls ---------------------------------------------------------------- */

static Qiao__V1__Party *mk_party(struct party *x, const char *name, const char *id)
{
	qiao__v1__party__init(&x->p);
	qiao__v1__data_subject__init(&x->s);
	x->s.type = strlen(id) == 18 && (id[0] == '9' || id[0] == '1') && isalpha((unsigned char)id[8])
			    ? QIAO__V1__SUBJECT_TYPE__USCC
			    : QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	x->s.id = (char *)id;
	x->p.name = (char *)name;
	x->p.id = &x->s;
	return &x->p;
}

/* Call as `a` with the case and purpose; the answer or NULL (*code). */
static ProtobufCMessage *call(qiao_adapter_t *a, const char *svc, const void *req, const ProtobufCMessageDescriptor *rd,
			      const char *person, int *code)
{
	struct qiao_subject subj = {QIAO_SUBJECT_RESIDENT_ID, person};
	ProtobufCMessage *out = d_call(a, svc, req, rd, PURPOSE, CASE, person ? &subj : NULL, person ? 1 : 0, code,
				       s_msg, sizeof s_msg);
	if (getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "%s -> %d %s\n", svc, *code, s_msg);
	return out;
}

/* ---- payoff-quote.v1 ------------------------------------------------------ */

static Qiao__V1__PayoffQuote *quote(qiao_adapter_t *a, const char *svc, const char *seller_name, const char *seller,
				    const char *cert, const char *loan, long planned, const char *prev, int *code)
{
	struct party sp;
	char pd[11];
	date_str(planned, pd);
	Qiao__V1__PayoffQuoteRequest q = QIAO__V1__PAYOFF_QUOTE_REQUEST__INIT;
	q.seller = mk_party(&sp, seller_name, seller);
	q.cert_no = (char *)cert;
	q.loan_contract_no = (char *)loan;
	q.request_consent = 1;
	q.planned_payoff_date = pd;
	q.previous_quote_no = (char *)(prev ? prev : "");
	int valid = strlen(seller) == 18 && qiao_id_check_resident(seller, NULL, 0) == 0;
	return (Qiao__V1__PayoffQuote *)call(a, svc, &q, &qiao__v1__payoff_quote__descriptor, valid ? seller : NULL,
					     code);
}

static char s_q1[72], s_consent1[72], s_q2[72], s_consent2[72];
static long long s_payoff1;

static void test_payoff_quote(void)
{
	int code;
	long today = today_cst(), planned = today + 7;
	Qiao__V1__PayoffQuote *q =
		quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, planned, NULL, &code);
	CHECK(q != NULL);
	if (!q) {
		fprintf(stderr, "payoff quote: %s\n", s_msg);
		return;
	}
	long long want_interest = 0;
	{
		long from = last_repay(18);
		__int128 x = (__int128)81234567 * 35500 * (planned - from);
		want_interest = (long long)((x + 180000000) / 360000000);
	}
	CHECK(q->quote_no[0] != '\0' && strncmp(q->quote_no, "BOA-", 4) == 0);
	CHECK(strcmp(q->loan_contract_no, LOAN_A) == 0);
	CHECK(strcmp(q->cert_no, CERT) == 0);
	CHECK(strcmp(q->mortgage_proof_no, PROOF) == 0);
	CHECK(q->principal_fen == 81234567);
	CHECK(q->interest_fen == want_interest && q->interest_fen > 0);
	CHECK(q->fees_fen == 0); /* bank A: prepay_fee_ppm = 0 */
	CHECK(q->payoff_amount_fen == q->principal_fen + q->interest_fen + q->fees_fen);
	CHECK(q->valid_until_ms == end_of_day_ms(today + 29)); /* bank A: 30 days */
	CHECK(q->consent_given && q->consent_no[0] != '\0');
	char td[11];
	date_str(today, td);
	CHECK(strcmp(q->consent_date, td) == 0);
	CHECK(q->consent_conditions[0] != '\0' && q->decline_reason[0] == '\0');
	CHECK(q->payoff_account && strcmp(q->payoff_account->account_no, "6222150600000012345") == 0);
	snprintf(s_q1, sizeof s_q1, "%s", q->quote_no);
	snprintf(s_consent1, sizeof s_consent1, "%s", q->consent_no);
	s_payoff1 = q->payoff_amount_fen;
	protobuf_c_message_free_unpacked(&q->base, NULL);

	char t[128];
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT consent_status FROM payoff_quote WHERE quote_no = ?", s_q1,
			    NULL),
		     "GIVEN") == 0);
	CHECK(q_int(D_BANK_A, "SELECT payoff_amount_fen FROM payoff_quote WHERE quote_no = ?", s_q1, NULL) ==
	      s_payoff1);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT consent_no FROM payoff_quote WHERE quote_no = ?", s_q1,
			    NULL),
		     s_consent1) == 0);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT case_id FROM payoff_quote WHERE quote_no = ?", s_q1, NULL),
		     CASE) == 0);
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_quote", NULL) == 1);

	/* the same request again, with full-width brackets: the same quote */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT_FW, LOAN_A, planned, NULL, &code);
	CHECK(q && strcmp(q->quote_no, s_q1) == 0 && strcmp(q->consent_no, s_consent1) == 0 &&
	      q->payoff_amount_fen == s_payoff1);
	if (q)
		protobuf_c_message_free_unpacked(&q->base, NULL);
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_quote", NULL) == 1);

	/* another payoff date: a second quote with its own consent */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, today + 3, NULL, &code);
	CHECK(q && strcmp(q->quote_no, s_q1) != 0 && q->consent_given && strcmp(q->consent_no, s_consent1) != 0 &&
	      q->payoff_amount_fen < s_payoff1);
	if (q) {
		snprintf(s_q2, sizeof s_q2, "%s", q->quote_no);
		snprintf(s_consent2, sizeof s_consent2, "%s", q->consent_no);
		protobuf_c_message_free_unpacked(&q->base, NULL);
	}
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_quote", NULL) == 2);

	/* refusals */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, "BOA-GRZF-2099-0000000", planned, NULL,
		  &code);
	EXPECT_ERR(q, code, E_NOTFOUND, "loan_contract_no");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, "蒙(2019)鄂尔多斯市不动产权第0004567号", LOAN_A,
		  planned, NULL, &code);
	EXPECT_ERR(q, code, E_REJECTED, "cert_no");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "李建国", BUYER, CERT, LOAN_A, planned, NULL, &code);
	EXPECT_ERR(q, code, E_REJECTED, "seller.id.id");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, today + 30, NULL, &code);
	EXPECT_ERR(q, code, E_REJECTED, "planned_payoff_date");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, today - 1, NULL, &code);
	EXPECT_ERR(q, code, E_BAD, "planned_payoff_date");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, planned,
		  "BOA-JQBJ-20000101-999999", &code);
	EXPECT_ERR(q, code, E_NOTFOUND, "previous_quote_no");
	/* identifiers in the body */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", "150621199003154523", CERT, LOAN_A, planned, NULL,
		  &code);
	EXPECT_ERR(q, code, E_IDENT, "seller.id.id");
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, "蒙2020鄂尔多斯市不动产权第0001234号", LOAN_A,
		  planned, NULL, &code);
	EXPECT_ERR(q, code, E_IDENT, "cert_no");
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_quote", NULL) == 2);

	/* an overdue loan: a quote, but no consent */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "赵志强", "15060319880721321X",
		  "蒙(2019)鄂尔多斯市不动产权第0004567号", LOAN_OVERDUE, planned, NULL, &code);
	CHECK(q && !q->consent_given && q->consent_no[0] == '\0' && strstr(q->decline_reason, "逾期") != NULL &&
	      q->principal_fen == 52100000);
	if (q) {
		CHECK(strcmp(q_text(D_BANK_A, s_msg, sizeof s_msg,
				    "SELECT consent_status FROM payoff_quote WHERE quote_no = ?", q->quote_no, NULL),
			     "DECLINED") == 0);
		protobuf_c_message_free_unpacked(&q->base, NULL);
	}

	/* bank B knows nothing of bank A's loan, and quotes its own with its
	 * own rules: 1 % early-repayment fee, 15 days */
	q = quote(s_bank_a, SVC_B "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, planned, NULL, &code);
	EXPECT_ERR(q, code, E_NOTFOUND, "loan_contract_no");
	q = quote(s_bank_a, SVC_B "payoff-quote.v1", "马骏", "150603199502140616",
		  "蒙(2021)鄂尔多斯市不动产权第0009876号", LOAN_B, planned, NULL, &code);
	CHECK(q && q->fees_fen == 798000 && q->principal_fen == 79800000 && strncmp(q->quote_no, "BOB-", 4) == 0 &&
	      q->valid_until_ms == end_of_day_ms(today + 14) &&
	      strcmp(q->mortgage_proof_no, "蒙(2021)鄂尔多斯市不动产证明第0007788号") == 0);
	if (q)
		protobuf_c_message_free_unpacked(&q->base, NULL);
	q = quote(s_bank_a, SVC_B "payoff-quote.v1", "马骏", "150603199502140616",
		  "蒙(2021)鄂尔多斯市不动产权第0009876号", LOAN_B, today + 20, NULL, &code);
	EXPECT_ERR(q, code, E_REJECTED, "planned_payoff_date"); /* within bank A's 30 days, not bank B's 15 */
}

/* ---- loan-application.v1 -------------------------------------------------- */

static Qiao__V1__LoanApproval *apply(const char *svc, const char *no, const char *b1_name, const char *b1,
				     const char *b2, const char *unit, const char *cert, long long amount,
				     uint32_t term, int *code)
{
	struct party p[2];
	Qiao__V1__Party *bs[2] = {mk_party(&p[0], b1_name, b1), b2 ? mk_party(&p[1], "刘芳", b2) : NULL};
	Qiao__V1__LoanApplication a = QIAO__V1__LOAN_APPLICATION__INIT;
	a.application_no = (char *)no;
	a.n_borrowers = b2 ? 2 : 1;
	a.borrowers = bs;
	a.unit_no = (char *)unit;
	a.cert_no = (char *)cert;
	a.contract_no = "WQ-2026-150602-000777";
	a.price_fen = PRICE;
	a.amount_fen = amount;
	a.term_months = term;
	a.authorisation_no = "ZXSQ-2026-000123";
	int valid = qiao_id_check_resident(b1, NULL, 0) == 0;
	return (Qiao__V1__LoanApproval *)call(s_reg, svc, &a, &qiao__v1__loan_approval__descriptor, valid ? b1 : NULL,
					      code);
}

static char s_approval2[72], s_loan2[72], s_approval3[72], s_loan3[72];

static void test_loan_application(void)
{
	int code;
	long today = today_cst();
	/* the same loan, 900,000.00 元 on 1,380,000.00 元 (LTV 65.2 %): bank A
	 * (≤ 70 %) approves, bank B (≤ 60 %) declines */
	Qiao__V1__LoanApproval *a = apply(SVC_A "loan-application.v1", "LA-2026-0001", "李建国", BUYER, NULL, UNIT,
					  CERT, 90000000, 240, &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_APPROVED && a->annual_rate_ppm == 31000 &&
	      a->amount_fen == 90000000 && a->lender && strcmp(a->lender->id->id, "91150600MA0B56780F") == 0);
	if (!a)
		fprintf(stderr, "loan application at A: %s\n", s_msg);
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	a = apply(SVC_B "loan-application.v1", "LA-2026-0001", "李建国", BUYER, NULL, UNIT, CERT, 90000000, 240, &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_DECLINED && a->approval_no[0] == '\0' &&
	      strstr(a->decline_reason, "贷款价值比") != NULL && a->decided_ms > 0);
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	char t[600];
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT status FROM loan_application WHERE application_no = ?",
			    "LA-2026-0001", NULL),
		     "APPROVED") == 0);
	CHECK(q_int(D_BANK_A, "SELECT ltv_ppm FROM loan_application WHERE application_no = ?", "LA-2026-0001", NULL) ==
	      652173);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT decision FROM loan_application WHERE application_no = ?",
			    "LA-2026-0001", NULL),
		     "DECLINED") == 0);
	CHECK(q_int(D_BANK_B, "SELECT approval_no IS NULL FROM loan_application WHERE application_no = ?",
		    "LA-2026-0001", NULL) == 1);

	/* 800,000.00 元 (LTV 58 %) with a co-borrower at bank B: approved */
	a = apply(SVC_B "loan-application.v1", "LA-2026-0002", "李建国", BUYER, CO_BUYER, UNIT, CERT, 80000000, 240,
		  &code);
	CHECK(a != NULL);
	if (a) {
		char start[11], end[11];
		date_str(today, start);
		date_str(add_months(today, 240), end);
		CHECK(a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_APPROVED);
		CHECK(strcmp(a->application_no, "LA-2026-0002") == 0);
		CHECK(strncmp(a->approval_no, "BOB-SP-", 7) == 0);
		CHECK(a->lender && strcmp(a->lender->id->id, "91150600MA0C9012X7") == 0 &&
		      a->lender->id->type == QIAO__V1__SUBJECT_TYPE__USCC && a->lender->name[0]);
		CHECK(a->amount_fen == 80000000 && a->term_months == 240 && a->annual_rate_ppm == 30500);
		CHECK(a->expected_rank == 2 && a->mortgage_type == QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL);
		CHECK(a->secured_amount_fen == 80000000);
		CHECK(a->loan_contract_no[0] && a->mortgage_contract_no[0] &&
		      strcmp(a->loan_contract_no, a->mortgage_contract_no) != 0);
		CHECK(strcmp(a->debt_start_date, start) == 0 && strcmp(a->debt_end_date, end) == 0);
		CHECK(a->guarantee_scope[0] != '\0');
		CHECK(a->valid_until_ms == end_of_day_ms(today + 59)); /* bank B: 60 days */
		CHECK(a->decided_ms > 0 && a->decline_reason[0] == '\0');
		snprintf(s_approval2, sizeof s_approval2, "%s", a->approval_no);
		snprintf(s_loan2, sizeof s_loan2, "%s", a->loan_contract_no);
		protobuf_c_message_free_unpacked(&a->base, NULL);
	}
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT approval_no FROM loan_application WHERE application_no = ?",
			    "LA-2026-0002", NULL),
		     s_approval2) == 0);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_borrower WHERE application_no = ?", "LA-2026-0002", NULL) ==
	      2);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_borrower WHERE application_no = ? AND id_no = ?",
		    "LA-2026-0002", CO_BUYER, NULL) == 1);
	CHECK(q_int(D_BANK_B, "SELECT annual_rate_ppm FROM loan_application WHERE application_no = ?", "LA-2026-0002",
		    NULL) == 30500);
	/* repeated: the same approval, no new rows */
	long long napps = q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application", NULL);
	a = apply(SVC_B "loan-application.v1", "LA-2026-0002", "李建国", BUYER, CO_BUYER, UNIT, CERT, 80000000, 240,
		  &code);
	CHECK(a && strcmp(a->approval_no, s_approval2) == 0 && strcmp(a->loan_contract_no, s_loan2) == 0);
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application", NULL) == napps);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_borrower WHERE application_no = ?", "LA-2026-0002", NULL) ==
	      2);
	/* the same number for another application */
	a = apply(SVC_B "loan-application.v1", "LA-2026-0002", "李建国", BUYER, CO_BUYER, UNIT, CERT, 70000000, 240,
		  &code);
	EXPECT_ERR(a, code, E_REJECTED, "application_no");

	/* a third, approved, for the revocation test */
	a = apply(SVC_B "loan-application.v1", "LA-2026-0003", "李建国", BUYER, NULL, UNIT, CERT, 50000000, 120, &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_APPROVED);
	if (a) {
		snprintf(s_approval3, sizeof s_approval3, "%s", a->approval_no);
		snprintf(s_loan3, sizeof s_loan3, "%s", a->loan_contract_no);
		protobuf_c_message_free_unpacked(&a->base, NULL);
	}

	/* declines from the borrower's data and the bank's rules */
	a = apply(SVC_B "loan-application.v1", "LA-2026-0004", "孙立军", BLACKLISTED, NULL, UNIT, CERT, 50000000, 240,
		  &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_DECLINED &&
	      strstr(a->decline_reason, "风险名单") != NULL);
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE application_no = ?",
			    "LA-2026-0004", NULL),
		     "DECLINED") == 0);
	a = apply(SVC_B "loan-application.v1", "LA-2026-0005", "王德明", OLD_PERSON, NULL, UNIT, CERT, 50000000, 120,
		  &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_DECLINED && strstr(a->decline_reason, "年龄"));
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	a = apply(SVC_B "loan-application.v1", "LA-2026-0006", "李建国", BUYER, NULL, UNIT, CERT, 50000000, 324, &code);
	CHECK(a && a->decision == QIAO__V1__LOAN_DECISION__LOAN_DECISION_DECLINED && strstr(a->decline_reason, "期限"));
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);
	a = apply(SVC_A "loan-application.v1", "LA-2026-0006", "李建国", BUYER, NULL, UNIT, CERT, 50000000, 324, &code);
	CHECK(a &&
	      a->decision ==
		      QIAO__V1__LOAN_DECISION__LOAN_DECISION_APPROVED); /* bank A lends up to 360 months, bank B 300 */
	if (a)
		protobuf_c_message_free_unpacked(&a->base, NULL);

	/* identifiers and fields in the body */
	napps = q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application", NULL);
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "李建国", BUYER, "150602198709301528", UNIT, CERT,
		  50000000, 240, &code);
	EXPECT_ERR(a, code, E_IDENT, "borrowers[1].id.id");
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "某公司", "91150602MA0H864249", NULL, UNIT, CERT,
		  50000000, 240, &code);
	EXPECT_ERR(a, code, E_IDENT, "borrowers[0].id.id");
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "李建国", BUYER, NULL, "150602001001GB00001X00010001",
		  CERT, 50000000, 240, &code);
	EXPECT_ERR(a, code, E_IDENT, "unit_no");
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "李建国", BUYER, NULL, UNIT,
		  "蒙(2020)鄂尔多斯市不动产第0001234号", 50000000, 240, &code);
	EXPECT_ERR(a, code, E_IDENT, "cert_no");
	a = apply(SVC_B "loan-application.v1", "LA 2026/0010", "李建国", BUYER, NULL, UNIT, CERT, 50000000, 240, &code);
	EXPECT_ERR(a, code, E_BAD, "application_no");
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "李建国", BUYER, NULL, UNIT, CERT, 50000000, 0, &code);
	EXPECT_ERR(a, code, E_BAD, "term_months");
	a = apply(SVC_B "loan-application.v1", "LA-2026-0010", "李建国", BUYER, NULL, UNIT, CERT, 0, 240, &code);
	EXPECT_ERR(a, code, E_BAD, "amount_fen");
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application", NULL) == napps);
}

/* ---- disbursement.v1 and loan-approval-revocation.v1 ---------------------- */

static Qiao__V1__DisbursementResult *disburse(const char *ref, const char *approval, const char *loan, long long amount,
					      const char *acct_no, const char *proof, int *code)
{
	Qiao__V1__BankAccount acc = QIAO__V1__BANK_ACCOUNT__INIT;
	acc.account_name = "鄂尔多斯市住房和城乡建设局存量房交易资金监管专户";
	acc.account_no = (char *)acct_no;
	acc.bank_name = "银行B股份有限公司鄂尔多斯分行";
	acc.bank_code = "313205000022";
	Qiao__V1__DisbursementRequest q = QIAO__V1__DISBURSEMENT_REQUEST__INIT;
	q.disbursement_ref = (char *)ref;
	q.approval_no = (char *)approval;
	q.loan_contract_no = (char *)loan;
	q.amount_fen = amount;
	q.escrow_account = &acc;
	q.escrow_agreement_no = "ZJJG-2026-000045";
	q.mortgage_proof_no = (char *)proof;
	return (Qiao__V1__DisbursementResult *)call(s_reg, SVC_B "disbursement.v1", &q,
						    &qiao__v1__disbursement_result__descriptor, NULL, code);
}

static Qiao__V1__LoanApprovalRevocationResult *do_revoke(const char *approval, const char *app, int reason,
							 const char *note, int *code)
{
	Qiao__V1__LoanApprovalRevocation q = QIAO__V1__LOAN_APPROVAL_REVOCATION__INIT;
	q.approval_no = (char *)approval;
	q.application_no = (char *)app;
	q.reason = reason;
	q.reason_note = (char *)note;
	return (Qiao__V1__LoanApprovalRevocationResult *)call(s_reg, SVC_B "loan-approval-revocation.v1", &q,
							      &qiao__v1__loan_approval_revocation_result__descriptor,
							      NULL, code);
}

#define ESCROW_ACCT "15050170000000000001000045"

static void test_disbursement_and_revocation(void)
{
	int code;
	char t[600];
	long long nloans = q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_contract", NULL);
	Qiao__V1__DisbursementResult *o =
		disburse("FK-REQ-2026-0001", s_approval2, s_loan2, 80000000, ESCROW_ACCT, NEW_PROOF, &code);
	CHECK(o && o->status == QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_DISBURSED &&
	      o->amount_fen == 80000000 && o->transaction_no[0] && o->disbursed_ms > 0 &&
	      strcmp(o->disbursement_ref, "FK-REQ-2026-0001") == 0);
	if (!o)
		fprintf(stderr, "disbursement: %s\n", s_msg);
	char txn[72] = "";
	if (o) {
		snprintf(txn, sizeof txn, "%s", o->transaction_no);
		protobuf_c_message_free_unpacked(&o->base, NULL);
	}
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT transaction_no FROM disbursement WHERE disbursement_ref = ?",
			    "FK-REQ-2026-0001", NULL),
		     txn) == 0);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t,
			    "SELECT escrow_account_no FROM disbursement WHERE disbursement_ref = ?", "FK-REQ-2026-0001",
			    NULL),
		     ESCROW_ACCT) == 0);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE approval_no = ?",
			    s_approval2, NULL),
		     "DISBURSED") == 0);
	CHECK(q_int(D_BANK_B, "SELECT outstanding_fen FROM loan_contract WHERE contract_no = ?", s_loan2, NULL) ==
	      80000000);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT mortgage_proof_no FROM loan_contract WHERE contract_no = ?",
			    s_loan2, NULL),
		     NEW_PROOF) == 0);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_contract", NULL) == nloans + 1);
	/* repeated: the same payment, nothing paid twice */
	o = disburse("FK-REQ-2026-0001", s_approval2, s_loan2, 80000000, ESCROW_ACCT, NEW_PROOF, &code);
	CHECK(o && o->status == QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_DISBURSED &&
	      strcmp(o->transaction_no, txn) == 0);
	if (o)
		protobuf_c_message_free_unpacked(&o->base, NULL);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM disbursement", NULL) == 1);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_contract", NULL) == nloans + 1);
	/* the same reference for another payment */
	o = disburse("FK-REQ-2026-0001", s_approval2, s_loan2, 70000000, ESCROW_ACCT, NEW_PROOF, &code);
	EXPECT_ERR(o, code, E_REJECTED, "disbursement_ref");
	/* the same approval under a new reference: refused, not paid twice */
	o = disburse("FK-REQ-2026-0002", s_approval2, s_loan2, 80000000, ESCROW_ACCT, NEW_PROOF, &code);
	CHECK(o && o->status == QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_REFUSED &&
	      strstr(o->refusal_reason, "已放款") && o->transaction_no[0] == '\0');
	if (o)
		protobuf_c_message_free_unpacked(&o->base, NULL);
	/* more than approved */
	o = disburse("FK-REQ-2026-0003", s_approval3, s_loan3, 50000001, ESCROW_ACCT, NEW_PROOF, &code);
	CHECK(o && o->status == QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_REFUSED &&
	      strstr(o->refusal_reason, "超过批贷金额"));
	if (o)
		protobuf_c_message_free_unpacked(&o->base, NULL);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM disbursement", NULL) == 1);
	/* refusals as errors */
	o = disburse("FK-REQ-2026-0004", "BOB-SP-20000101-999999", s_loan3, 100, ESCROW_ACCT, NEW_PROOF, &code);
	EXPECT_ERR(o, code, E_NOTFOUND, "approval_no");
	o = disburse("FK-REQ-2026-0004", s_approval3, s_loan2, 100, ESCROW_ACCT, NEW_PROOF, &code);
	EXPECT_ERR(o, code, E_REJECTED, "loan_contract_no");
	o = disburse("FK-REQ-2026-0004", s_approval3, s_loan3, 100, ESCROW_ACCT, "蒙(2026)鄂尔多斯市不动产第0012345号",
		     &code);
	EXPECT_ERR(o, code, E_IDENT, "mortgage_proof_no");
	o = disburse("FK-REQ-2026-0004", s_approval3, s_loan3, 100, "1505A17", NEW_PROOF, &code);
	EXPECT_ERR(o, code, E_BAD, "escrow_account.account_no");

	/* revocation: the third approval, not yet paid */
	Qiao__V1__LoanApprovalRevocationResult *rv = do_revoke(
		s_approval3, "LA-2026-0003", QIAO__V1__UNWIND_REASON__UNWIND_REASON_REGISTRATION_REJECTED, "", &code);
	CHECK(rv && rv->revoked && rv->revoked_ms > 0 && rv->refusal_reason[0] == '\0');
	int64_t when = rv ? rv->revoked_ms : 0;
	if (rv)
		protobuf_c_message_free_unpacked(&rv->base, NULL);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE approval_no = ?",
			    s_approval3, NULL),
		     "REVOKED") == 0);
	CHECK(q_int(D_BANK_B, "SELECT revoke_reason FROM loan_application WHERE approval_no = ?", s_approval3, NULL) ==
	      QIAO__V1__UNWIND_REASON__UNWIND_REASON_REGISTRATION_REJECTED);
	rv = do_revoke(s_approval3, "LA-2026-0003", QIAO__V1__UNWIND_REASON__UNWIND_REASON_REGISTRATION_REJECTED, "",
		       &code);
	CHECK(rv && rv->revoked && rv->revoked_ms == when);
	if (rv)
		protobuf_c_message_free_unpacked(&rv->base, NULL);
	CHECK(q_int(D_BANK_B, "SELECT revoked_ms FROM loan_application WHERE approval_no = ?", s_approval3, NULL) ==
	      when);
	/* a revoked approval is not paid */
	o = disburse("FK-REQ-2026-0005", s_approval3, s_loan3, 50000000, ESCROW_ACCT, NEW_PROOF, &code);
	CHECK(o && o->status == QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_REFUSED &&
	      strstr(o->refusal_reason, "已撤销"));
	if (o)
		protobuf_c_message_free_unpacked(&o->base, NULL);
	CHECK(q_int(D_BANK_B, "SELECT COUNT(*) FROM disbursement", NULL) == 1);
	/* a paid approval cannot be revoked */
	rv = do_revoke(s_approval2, "LA-2026-0002", QIAO__V1__UNWIND_REASON__UNWIND_REASON_CASE_CANCELLED, "", &code);
	CHECK(rv && !rv->revoked && strstr(rv->refusal_reason, "已放款") && rv->revoked_ms == 0);
	if (rv)
		protobuf_c_message_free_unpacked(&rv->base, NULL);
	CHECK(strcmp(q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE approval_no = ?",
			    s_approval2, NULL),
		     "DISBURSED") == 0);
	rv = do_revoke("BOB-SP-20000101-999999", "LA-2026-0003", QIAO__V1__UNWIND_REASON__UNWIND_REASON_CASE_CANCELLED,
		       "", &code);
	EXPECT_ERR(rv, code, E_NOTFOUND, "approval_no");
	rv = do_revoke(s_approval3, "LA-2026-0002", QIAO__V1__UNWIND_REASON__UNWIND_REASON_CASE_CANCELLED, "", &code);
	EXPECT_ERR(rv, code, E_REJECTED, "application_no");
	rv = do_revoke(s_approval3, "LA-2026-0003", QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER, "", &code);
	EXPECT_ERR(rv, code, E_BAD, "reason_note");
	rv = do_revoke(s_approval3, "LA-2026-0003", 0, "", &code);
	EXPECT_ERR(rv, code, E_BAD, "reason");
}

/* ---- consent-withdrawal.v1 and payoff-confirmation.v1 --------------------- */

static Qiao__V1__ConsentWithdrawalResult *withdraw(const char *consent, const char *quote_no, const char *proof,
						   int *code)
{
	Qiao__V1__ConsentWithdrawal q = QIAO__V1__CONSENT_WITHDRAWAL__INIT;
	q.consent_no = (char *)consent;
	q.quote_no = (char *)quote_no;
	q.mortgage_proof_no = (char *)proof;
	q.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_LOAN_DECLINED;
	return (Qiao__V1__ConsentWithdrawalResult *)call(s_bank_b, SVC_A "consent-withdrawal.v1", &q,
							 &qiao__v1__consent_withdrawal_result__descriptor, NULL, code);
}

static Qiao__V1__PayoffConfirmation *confirm(const char *quote_no, const char *consent, long long amount,
					     const char *payment_no, int *code)
{
	Qiao__V1__PayoffConfirmationRequest q = QIAO__V1__PAYOFF_CONFIRMATION_REQUEST__INIT;
	q.quote_no = (char *)quote_no;
	q.consent_no = (char *)consent;
	q.loan_contract_no = LOAN_A;
	q.amount_paid_fen = amount;
	q.payment_no = (char *)payment_no;
	q.paid_ms = (int64_t)time(NULL) * 1000 - 60000;
	return (Qiao__V1__PayoffConfirmation *)call(s_house, SVC_A "payoff-confirmation.v1", &q,
						    &qiao__v1__payoff_confirmation__descriptor, NULL, code);
}

static void test_consent_and_payoff(void)
{
	int code;
	char t[600];
	/* the second quote's consent is withdrawn (the new lender declined) */
	Qiao__V1__ConsentWithdrawalResult *w = withdraw(s_consent2, s_q2, PROOF, &code);
	CHECK(w && w->withdrawn && w->withdrawn_ms > 0 && w->refusal_reason[0] == '\0');
	int64_t when = w ? w->withdrawn_ms : 0;
	if (!w)
		fprintf(stderr, "consent withdrawal: %s\n", s_msg);
	if (w)
		protobuf_c_message_free_unpacked(&w->base, NULL);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT consent_status FROM payoff_quote WHERE quote_no = ?", s_q2,
			    NULL),
		     "WITHDRAWN") == 0);
	CHECK(q_int(D_BANK_A, "SELECT withdraw_reason FROM payoff_quote WHERE quote_no = ?", s_q2, NULL) ==
	      QIAO__V1__UNWIND_REASON__UNWIND_REASON_LOAN_DECLINED);
	w = withdraw(s_consent2, s_q2, PROOF, &code); /* repeated */
	CHECK(w && w->withdrawn && w->withdrawn_ms == when);
	if (w)
		protobuf_c_message_free_unpacked(&w->base, NULL);
	CHECK(q_int(D_BANK_A, "SELECT withdrawn_ms FROM payoff_quote WHERE quote_no = ?", s_q2, NULL) == when);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT consent_status FROM payoff_quote WHERE quote_no = ?", s_q1,
			    NULL),
		     "GIVEN") == 0);
	w = withdraw(s_consent1, s_q2, PROOF, &code);
	EXPECT_ERR(w, code, E_NOTFOUND, "consent_no");
	w = withdraw(s_consent2, "BOA-JQBJ-20000101-999999", PROOF, &code);
	EXPECT_ERR(w, code, E_NOTFOUND, "quote_no");
	w = withdraw(s_consent1, s_q1, "蒙(2019)鄂尔多斯市不动产证明第0003344号", &code);
	EXPECT_ERR(w, code, E_REJECTED, "mortgage_proof_no");
	w = withdraw(s_consent1, s_q1, "蒙(2020)鄂尔多斯市不动产证明第56号", &code);
	EXPECT_ERR(w, code, E_IDENT, "mortgage_proof_no");

	/* a withdrawn consent cannot be paid off against */
	Qiao__V1__PayoffConfirmation *c = confirm(s_q2, s_consent2, 1000, "ZF-2026-0001", &code);
	EXPECT_ERR(c, code, E_REJECTED, "consent_no");
	/* the renewal of quote 2 supersedes it */
	Qiao__V1__PayoffQuote *q =
		quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, today_cst() + 5, s_q2, &code);
	CHECK(q && strcmp(q->quote_no, s_q2) != 0 && q->consent_given);
	if (q) {
		CHECK(strcmp(q_text(D_BANK_A, t, sizeof t,
				    "SELECT previous_quote_no FROM payoff_quote WHERE quote_no = ?", q->quote_no, NULL),
			     s_q2) == 0);
		protobuf_c_message_free_unpacked(&q->base, NULL);
	}
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT status FROM payoff_quote WHERE quote_no = ?", s_q2, NULL),
		     "SUPERSEDED") == 0);

	/* payoff of quote 1 in two payments: short, then settled */
	c = confirm(s_q1, s_consent1, 50000000, "ZF-2026-0002", &code);
	CHECK(c && !c->settled && c->amount_received_fen == 50000000 && c->shortfall_fen == s_payoff1 - 50000000 &&
	      c->settlement_no[0] == '\0' && strcmp(c->mortgage_proof_no, PROOF) == 0);
	if (!c)
		fprintf(stderr, "payoff confirmation: %s\n", s_msg);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT status FROM loan_contract WHERE contract_no = ?", LOAN_A,
			    NULL),
		     "ACTIVE") == 0);
	c = confirm(s_q1, s_consent1, 50000000, "ZF-2026-0002", &code); /* repeated */
	CHECK(c && !c->settled && c->amount_received_fen == 50000000);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_receipt", NULL) == 1);
	c = confirm(s_q1, s_consent1, s_payoff1 - 50000000, "ZF-2026-0003", &code);
	CHECK(c && c->settled && c->settlement_no[0] && c->settled_ms > 0 && c->amount_received_fen == s_payoff1 &&
	      c->shortfall_fen == 0 && strcmp(c->mortgage_proof_no, PROOF) == 0);
	char settlement[72] = "";
	if (c) {
		snprintf(settlement, sizeof settlement, "%s", c->settlement_no);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT status FROM loan_contract WHERE contract_no = ?", LOAN_A,
			    NULL),
		     "SETTLED") == 0);
	CHECK(q_int(D_BANK_A, "SELECT outstanding_fen FROM loan_contract WHERE contract_no = ?", LOAN_A, NULL) == 0);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT settlement_no FROM loan_contract WHERE contract_no = ?",
			    LOAN_A, NULL),
		     settlement) == 0);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT status FROM payoff_quote WHERE quote_no = ?", s_q1, NULL),
		     "SETTLED") == 0);
	c = confirm(s_q1, s_consent1, s_payoff1 - 50000000, "ZF-2026-0003", &code); /* repeated */
	CHECK(c && c->settled && strcmp(c->settlement_no, settlement) == 0);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_receipt", NULL) == 2);
	/* after settlement */
	c = confirm(s_q1, s_consent1, 100, "ZF-2026-0004", &code);
	EXPECT_ERR(c, code, E_REJECTED, "loan_contract_no");
	c = confirm(s_q1, s_consent1, 100, "ZF-2026-0003", &code); /* same number, other payment */
	EXPECT_ERR(c, code, E_REJECTED, "payment_no");
	c = confirm("BOA-JQBJ-20000101-999999", s_consent1, 100, "ZF-2026-0005", &code);
	EXPECT_ERR(c, code, E_NOTFOUND, "quote_no");
	c = confirm(s_q1, s_consent1, 0, "ZF-2026-0005", &code);
	EXPECT_ERR(c, code, E_BAD, "amount_paid_fen");
	CHECK(q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_receipt", NULL) == 2);
	w = withdraw(s_consent1, s_q1, PROOF, &code);
	CHECK(w && !w->withdrawn && strstr(w->refusal_reason, "已结清"));
	if (w)
		protobuf_c_message_free_unpacked(&w->base, NULL);
	CHECK(strcmp(q_text(D_BANK_A, t, sizeof t, "SELECT consent_status FROM payoff_quote WHERE quote_no = ?", s_q1,
			    NULL),
		     "GIVEN") == 0);
	/* a settled loan gets no new quote */
	q = quote(s_bank_b, SVC_A "payoff-quote.v1", "张晓梅", SELLER, CERT, LOAN_A, today_cst() + 2, NULL, &code);
	EXPECT_ERR(q, code, E_REJECTED, "loan_contract_no");
}

/* ---- policy --------------------------------------------------------------- */

static void test_policy(void)
{
	/* the housing bureau may confirm payoffs but not ask for quotes */
	struct party sp;
	Qiao__V1__PayoffQuoteRequest q = QIAO__V1__PAYOFF_QUOTE_REQUEST__INIT;
	q.seller = mk_party(&sp, "张晓梅", SELLER);
	q.cert_no = CERT;
	q.loan_contract_no = LOAN_A;
	q.planned_payoff_date = "2026-12-31";
	int code;
	ProtobufCMessage *o =
		call(s_house, SVC_A "payoff-quote.v1", &q, &qiao__v1__payoff_quote__descriptor, SELLER, &code);
	CHECK(!o && code == QIAO__V1__ERROR_CODE__POLICY_DENIED);
	if (o)
		protobuf_c_message_free_unpacked(o, NULL);
	/* without a case the gateway refuses (require_case) */
	struct qiao_subject subj = {QIAO_SUBJECT_RESIDENT_ID, SELLER};
	o = d_call(s_bank_b, SVC_A "payoff-quote.v1", &q.base, &qiao__v1__payoff_quote__descriptor, PURPOSE, NULL,
		   &subj, 1, &code, s_msg, sizeof s_msg);
	CHECK(!o && code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED);
	if (o)
		protobuf_c_message_free_unpacked(o, NULL);
}

/* Stop department i's adapter: it must exit 0 on SIGTERM (under ASan a
 * leak or an error makes that fail) with no sanitizer report in its log. */
static void stop_dept(int i)
{
	char log[PATH_MAX + 64];
	snprintf(log, sizeof log, "%s/%s.log", h_dir, d_m[i].proc.name);
	int st = h_peer_stop(&d_m[i].proc, SIGTERM);
	CHECK(h_exited_0(st));
	char *t = h_read_file(log);
	CHECK(t && !strstr(t, "Sanitizer") && !strstr(t, "runtime error"));
	if (!h_exited_0(st) || (t && (strstr(t, "Sanitizer") || strstr(t, "runtime error"))))
		fprintf(stderr, "qiao-%s log:\n%s\n", d_m[i].proc.name, t ? t : "");
	free(t);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (d_setup("dept-bank", NULL) != 0 || d_start_dept(D_BANK_A) != 0 || d_start_dept(D_BANK_B) != 0) {
		fprintf(stderr, "set-up failed\n");
		CHECK(0);
		d_teardown();
		return check_done();
	}
	s_reg = d_consumer(D_REGISTRY);
	s_house = d_consumer(D_HOUSING);
	s_bank_a = d_consumer(D_BANK_A);
	s_bank_b = d_consumer(D_BANK_B);
	CHECK(s_reg && s_house && s_bank_a && s_bank_b);
	if (s_reg && s_house && s_bank_a && s_bank_b) {
		test_payoff_quote();
		test_loan_application();
		test_disbursement_and_revocation();
		test_consent_and_payoff();
		test_policy();
		stop_dept(D_BANK_A);
		stop_dept(D_BANK_B);
	}
	qiao_adapter_destroy(&s_reg);
	qiao_adapter_destroy(&s_house);
	qiao_adapter_destroy(&s_bank_a);
	qiao_adapter_destroy(&s_bank_b);
	d_teardown();
	return check_done();
}
