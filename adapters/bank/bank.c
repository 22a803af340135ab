/*
 * bank.c - qiao-bank, the adapter of a lender (金融机构) in 带押过户.
 *
 * One program for every bank: the bank's name, USCC and lending rules come
 * from its --config file (bank-a.conf, bank-b.conf), its customers, loans
 * and risk list from its own database (schema.sql + seed-<bank>.sql).  A
 * bank is the old lender (原贷款行) of the loans in its ledger and the new
 * lender (新贷款行) of the applications it approves, so it offers both
 * sides (proto/bank.proto):
 *
 *   old lender  payoff-quote.v1          结清金额 + 同意带押函 for a loan contract
 *               payoff-confirmation.v1   the payoff received: the loan is closed
 *               consent-withdrawal.v1    the 同意带押函 withdrawn
 *   new lender  loan-application.v1      approve or decline by the bank's rules
 *               disbursement.v1          pay an approved loan into escrow
 *               loan-approval-revocation.v1  revoke an approval not yet paid
 *
 * Interest follows the usual Chinese convention: daily rate = annual rate /
 * 360, accrued on the outstanding principal from the last monthly 还款日.
 * Every amount is integer fen; products that may exceed 64 bits are done
 * in 128-bit integers.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bank.pb-c.h"
#include "dept.h"
#include "dept_util.h"
#include "qiao_envelope.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_IDENT QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

#define MAX_FEN 100000000000000LL /* 1 万亿元: no single amount is larger */

/* ---- the bank's configuration ------------------------------------------ */

struct bank_conf {
	const char *name;      /* bank_name: 贷款人 / 抵押权人 名称 */
	const char *uscc;      /* bank_uscc */
	const char *prefix;    /* doc_prefix: of every number this bank issues */
	long long max_ltv_ppm; /* 最高贷款价值比 */
	long long min_loan_fen, max_loan_fen;
	long long max_term_months;
	long long annual_rate_ppm;          /* 执行年利率 of new loans */
	long long max_age_at_maturity;      /* 借款人到期年龄上限 (years) */
	long long max_dti_ppm;              /* 月还款额 / 月收入 上限 */
	long long quote_valid_days;         /* 结清报价有效期 (days) */
	long long approval_valid_days;      /* 批复有效期 (days) */
	long long prepay_fee_ppm;           /* 提前还款违约金 of the outstanding principal */
	long long consent_max_overdue_days; /* 同意带押 only up to this many days overdue */
	long long expected_rank;            /* 预期抵押顺位 of a new loan in 带押过户 */
	const char *payoff_account_name, *payoff_account_no, *payoff_bank_name, *payoff_bank_code;
	const char *guarantee_scope;    /* 担保范围 */
	const char *consent_conditions; /* 同意条件 printed on the 同意带押函 */
};

static struct bank_conf s_c;

/* ---- small helpers ------------------------------------------------------ */

/* The next number of sequence `seq`: "<prefix>-<kind>-<YYYYMMDD>-<NNNNNN>". */
static int s_next_no(sqlite3 *db, const char *seq, char *out, size_t n)
{
	long long v = dept_next_seq(db, seq);
	if (v < 0)
		return -1;
	char today[11];
	dept_date(today, 0);
	snprintf(out, n, "%s-%s-%.4s%.2s%.2s-%06lld", s_c.prefix, seq, today, today + 5, today + 8, v);
	return 0;
}

/* ---- dates (proleptic Gregorian, days since 1970-01-01) ------------------ */

static long s_days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

static void s_civil_from_days(long z, long *y, unsigned *m, unsigned *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = (long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

static unsigned s_month_days(long y, unsigned m)
{
	static const unsigned md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : md[m - 1];
}

/* "YYYY-MM-DD" (a real date, years 1900..2999) into days; 0 or -1. */
static int s_parse_date(const char *s, long *days)
{
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	long y = strtol(s, NULL, 10);
	unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
	unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > s_month_days(y, m))
		return -1;
	*days = s_days_from_civil(y, m, d);
	return 0;
}

static void s_fmt_date(long days, char out[11])
{
	long y;
	unsigned m, d;
	s_civil_from_days(days, &y, &m, &d);
	char t[48];
	snprintf(t, sizeof t, "%04ld-%02u-%02u", y, m, d);
	memcpy(out, t, 10);
	out[10] = '\0';
}

/* Today in China Standard Time. */
static long s_today(void)
{
	return (long)((qiao_now_ms() / 1000 + 8 * 3600) / 86400);
}

/* The CST calendar day of an instant. */
static long s_day_of_ms(int64_t ms)
{
	int64_t s = ms / 1000 + 8 * 3600;
	return (long)(s >= 0 ? s / 86400 : (s - 86399) / 86400);
}

/* "有效期至 D" = the instant D+1 00:00 CST. */
static int64_t s_end_of_day_ms(long days)
{
	return ((int64_t)(days + 1) * 86400 - 8 * 3600) * 1000;
}

/* `months` after `days`, the day of month clamped to the month's end. */
static long s_add_months(long days, long months)
{
	long y;
	unsigned m, d;
	s_civil_from_days(days, &y, &m, &d);
	long mm = (long)m - 1 + months;
	y += mm >= 0 ? mm / 12 : (mm - 11) / 12;
	mm = ((mm % 12) + 12) % 12;
	unsigned nm = (unsigned)mm + 1;
	unsigned md = s_month_days(y, nm);
	return s_days_from_civil(y, nm, d > md ? md : d);
}

/* The last monthly 还款日 (day `repay_day`) on or before `day`. */
static long s_last_repay_day(long day, int repay_day)
{
	long y;
	unsigned m, d;
	s_civil_from_days(day, &y, &m, &d);
	if ((int)d >= repay_day)
		return s_days_from_civil(y, m, (unsigned)repay_day);
	long prev = s_add_months(s_days_from_civil(y, m, 1), -1);
	s_civil_from_days(prev, &y, &m, &d);
	return s_days_from_civil(y, m, (unsigned)repay_day);
}

/* Interest on `principal` at `rate_ppm` a year for `days` days (annual / 360),
 * rounded half up to the fen. */
static long long s_interest(long long principal, long long rate_ppm, long days)
{
	if (days <= 0)
		return 0;
	__int128 x = (__int128)principal * rate_ppm * days;
	return (long long)((x + 180000000) / 360000000);
}

/* ---- request checks ----------------------------------------------------- */

static int s_positive(struct qiao_responder **r, long long v, const char *field)
{
	if (v <= 0 || v > MAX_FEN) {
		dept_error(r, E_BAD, field, "%s must be a positive amount in fen (at most %lld)", field, MAX_FEN);
		return -1;
	}
	return 0;
}

/* ---- payoff-quote.v1 ---------------------------------------------------- */

struct quote_row {
	char quote_no[72], contract_no[72], cert_no[128], proof_no[128];
	long long principal, interest, fees, payoff, valid_until;
	int consent_given;
	char consent_no[72], consent_date[11], consent_conditions[1100], decline_reason[520];
};

static int s_quote_load(sqlite3 *db, const char *quote_no, struct quote_row *q)
{
	sqlite3_stmt *st = dept_prep(
		db, "SELECT q.quote_no, q.contract_no, q.cert_no, l.mortgage_proof_no, "
		    "q.principal_fen, q.interest_fen, q.fees_fen, q.payoff_amount_fen, q.valid_until_ms, "
		    "q.consent_status, q.consent_no, q.consent_date, q.consent_conditions, q.decline_reason "
		    "FROM payoff_quote q JOIN loan_contract l ON l.contract_no = q.contract_no "
		    "WHERE q.quote_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, quote_no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dept_copy(q->quote_no, sizeof q->quote_no, dept_col_text(st, 0));
		dept_copy(q->contract_no, sizeof q->contract_no, dept_col_text(st, 1));
		dept_copy(q->cert_no, sizeof q->cert_no, dept_col_text(st, 2));
		dept_copy(q->proof_no, sizeof q->proof_no, dept_col_text(st, 3));
		q->principal = sqlite3_column_int64(st, 4);
		q->interest = sqlite3_column_int64(st, 5);
		q->fees = sqlite3_column_int64(st, 6);
		q->payoff = sqlite3_column_int64(st, 7);
		q->valid_until = sqlite3_column_int64(st, 8);
		/* a withdrawn consent was given: the quote shows the letter it was */
		const char *cs = dept_col_text(st, 9);
		q->consent_given = strcmp(cs, "GIVEN") == 0 || strcmp(cs, "WITHDRAWN") == 0;
		dept_copy(q->consent_no, sizeof q->consent_no, dept_col_text(st, 10));
		dept_copy(q->consent_date, sizeof q->consent_date, dept_col_text(st, 11));
		dept_copy(q->consent_conditions, sizeof q->consent_conditions, dept_col_text(st, 12));
		dept_copy(q->decline_reason, sizeof q->decline_reason, dept_col_text(st, 13));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int s_quote_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
		      const Qiao__V1__PayoffQuoteRequest *m, const char *cert, long planned, struct quote_row *q,
		      struct dept_fail *f)
{
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT borrower_id_no, collateral_cert_no, mortgage_proof_no, outstanding_fen, "
				     "annual_rate_ppm, repay_day, start_date, maturity_date, status, overdue_days, "
				     "classification FROM loan_contract WHERE contract_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "loan_contract");
	dept_bind_text(st, 1, m->loan_contract_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "loan_contract_no", "no loan contract %.64s at %s", m->loan_contract_no,
				 s_c.name);
	}
	char borrower[32], lcert[128], proof[128], start[11], status[16], cls[16];
	dept_copy(borrower, sizeof borrower, dept_col_text(st, 0));
	dept_copy(lcert, sizeof lcert, dept_col_text(st, 1));
	dept_copy(proof, sizeof proof, dept_col_text(st, 2));
	long long outstanding = sqlite3_column_int64(st, 3);
	long long rate = sqlite3_column_int64(st, 4);
	int repay_day = sqlite3_column_int(st, 5);
	dept_copy(start, sizeof start, dept_col_text(st, 6));
	dept_copy(status, sizeof status, dept_col_text(st, 8));
	long long overdue = sqlite3_column_int64(st, 9);
	dept_copy(cls, sizeof cls, dept_col_text(st, 10));
	sqlite3_finalize(st);

	if (strcmp(borrower, m->seller->id->id) != 0)
		return dept_fail(f, E_REJECTED, "seller.id.id", "the seller is not the borrower of loan contract %.64s",
				 m->loan_contract_no);
	if (strcmp(lcert, cert) != 0)
		return dept_fail(f, E_REJECTED, "cert_no",
				 "不动产权证书号 %.100s is not the collateral of loan contract %.64s", m->cert_no,
				 m->loan_contract_no);
	if (strcmp(status, "ACTIVE") != 0)
		return dept_fail(f, E_REJECTED, "loan_contract_no", "loan contract %.64s is already settled (已结清)",
				 m->loan_contract_no);

	long today = s_today();
	long valid_to = today + (long)s_c.quote_valid_days - 1;
	if (planned < today)
		return dept_fail(f, E_BAD, "planned_payoff_date", "planned_payoff_date %s is in the past",
				 m->planned_payoff_date);
	if (planned > valid_to) {
		char vt[11];
		s_fmt_date(valid_to, vt);
		return dept_fail(
			f, E_REJECTED, "planned_payoff_date",
			"planned_payoff_date %s is after the last day a quote of %s can be valid (%s, %lld days)",
			m->planned_payoff_date, s_c.name, vt, s_c.quote_valid_days);
	}
	char planned_s[11];
	s_fmt_date(planned, planned_s);
	const char *prev = m->previous_quote_no ? m->previous_quote_no : "";

	/* A repeat of a request whose quote is still valid answers that quote. */
	st = dept_prep(db, "SELECT quote_no FROM payoff_quote WHERE contract_no = ?1 AND planned_payoff_date = ?2 "
			   "AND consent_requested = ?3 AND IFNULL(previous_quote_no, '') = ?4 AND seller_id_no = ?5 "
			   "AND status = 'VALID' AND consent_status <> 'WITHDRAWN' AND valid_until_ms > ?6 "
			   "ORDER BY created_ms DESC LIMIT 1");
	if (!st)
		return dept_dberr(f, d, db, "payoff_quote");
	dept_bind_text(st, 1, m->loan_contract_no);
	dept_bind_text(st, 2, planned_s);
	dept_bind_int(st, 3, m->request_consent ? 1 : 0);
	sqlite3_bind_text(st, 4, prev, -1, SQLITE_TRANSIENT);
	dept_bind_text(st, 5, m->seller->id->id);
	dept_bind_int(st, 6, qiao_now_ms());
	int rc = sqlite3_step(st);
	char existing[72] = "";
	if (rc == SQLITE_ROW)
		dept_copy(existing, sizeof existing, dept_col_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dept_dberr(f, d, db, "payoff_quote");
	if (existing[0])
		return s_quote_load(db, existing, q) == 1 ? 0 : dept_dberr(f, d, db, "payoff_quote");

	if (prev[0]) {
		st = dept_prep(db, "SELECT status FROM payoff_quote WHERE quote_no = ?1 AND contract_no = ?2");
		if (!st)
			return dept_dberr(f, d, db, "payoff_quote");
		dept_bind_text(st, 1, prev);
		dept_bind_text(st, 2, m->loan_contract_no);
		rc = sqlite3_step(st);
		char pst[16] = "";
		if (rc == SQLITE_ROW)
			dept_copy(pst, sizeof pst, dept_col_text(st, 0));
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			return dept_fail(f, E_NOTFOUND, "previous_quote_no", "no quote %.64s for loan contract %.64s",
					 prev, m->loan_contract_no);
		if (strcmp(pst, "SETTLED") == 0)
			return dept_fail(f, E_REJECTED, "previous_quote_no", "quote %.64s was settled", prev);
	}

	/* The amount: principal + interest from the last 还款日 (not before the
	 * loan's start) to the planned payoff date + the early-repayment fee. */
	long start_d = 0, from;
	if (s_parse_date(start, &start_d) != 0)
		return dept_fail(f, E_INTERNAL, NULL, "loan contract %.64s has a bad start_date", m->loan_contract_no);
	from = s_last_repay_day(today, repay_day);
	if (from < start_d)
		from = start_d;
	char from_s[11];
	s_fmt_date(from, from_s);
	long long interest = s_interest(outstanding, rate, planned - from);
	long long fees = dept_ppm(outstanding, s_c.prepay_fee_ppm);
	long long payoff = outstanding + interest + fees;
	if (payoff <= 0)
		return dept_fail(f, E_REJECTED, "loan_contract_no", "nothing is owed on loan contract %.64s",
				 m->loan_contract_no);
	int64_t valid_until = s_end_of_day_ms(valid_to);
	int64_t now = qiao_now_ms();

	char quote_no[72], consent_no[72] = "", consent_date[11] = "", decline[520] = "";
	const char *consent_status = "NONE";
	if (s_next_no(db, "JQBJ", quote_no, sizeof quote_no) != 0)
		return dept_dberr(f, d, db, "doc_sequence");
	if (m->request_consent) {
		if (overdue > s_c.consent_max_overdue_days || strcmp(cls, "正常") != 0) {
			consent_status = "DECLINED";
			snprintf(decline, sizeof decline,
				 "贷款存在逾期（%lld天，五级分类：%s），不同意带押过户；请先归还逾期款项", overdue,
				 cls);
		} else {
			consent_status = "GIVEN";
			if (s_next_no(db, "TYDY", consent_no, sizeof consent_no) != 0)
				return dept_dberr(f, d, db, "doc_sequence");
			dept_date(consent_date, 0);
		}
	}
	st = dept_prep(
		db, "INSERT INTO payoff_quote (quote_no, contract_no, seller_id_no, seller_name, cert_no, "
		    "planned_payoff_date, interest_from_date, principal_fen, interest_fen, fees_fen, "
		    "payoff_amount_fen, valid_until_ms, consent_requested, consent_status, consent_no, consent_date, "
		    "consent_conditions, decline_reason, previous_quote_no, status, requester, case_id, created_ms) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, "
		    "'VALID', ?20, ?21, ?22)");
	if (!st)
		return dept_dberr(f, d, db, "payoff_quote");
	dept_bind_text(st, 1, quote_no);
	dept_bind_text(st, 2, m->loan_contract_no);
	dept_bind_text(st, 3, m->seller->id->id);
	dept_bind_text(st, 4, m->seller->name);
	dept_bind_text(st, 5, cert);
	dept_bind_text(st, 6, planned_s);
	dept_bind_text(st, 7, from_s);
	dept_bind_int(st, 8, outstanding);
	dept_bind_int(st, 9, interest);
	dept_bind_int(st, 10, fees);
	dept_bind_int(st, 11, payoff);
	dept_bind_int(st, 12, valid_until);
	dept_bind_int(st, 13, m->request_consent ? 1 : 0);
	dept_bind_text(st, 14, consent_status);
	dept_bind_text(st, 15, consent_no);
	dept_bind_text(st, 16, consent_date);
	dept_bind_text(st, 17, strcmp(consent_status, "GIVEN") == 0 ? s_c.consent_conditions : "");
	dept_bind_text(st, 18, decline);
	dept_bind_text(st, 19, prev);
	dept_bind_text(st, 20, req->requester);
	dept_bind_text(st, 21, dept_case_id(req));
	dept_bind_int(st, 22, now);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "payoff_quote insert");
	if (prev[0]) {
		st = dept_prep(
			db, "UPDATE payoff_quote SET status = 'SUPERSEDED' WHERE quote_no = ?1 AND status = 'VALID'");
		if (!st)
			return dept_dberr(f, d, db, "payoff_quote");
		dept_bind_text(st, 1, prev);
		if (dept_run(st) != 0)
			return dept_dberr(f, d, db, "payoff_quote supersede");
	}
	return s_quote_load(db, quote_no, q) == 1 ? 0 : dept_dberr(f, d, db, "payoff_quote");
}

static void on_payoff_quote(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			    struct qiao_responder *r)
{
	const Qiao__V1__PayoffQuoteRequest *m = (const Qiao__V1__PayoffQuoteRequest *)body;
	long planned;
	if (dept_check_party(&r, m->seller, "seller", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->cert_no, "cert_no", 0) != 0 ||
	    dept_check_printable(&r, m->loan_contract_no, "loan_contract_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->previous_quote_no, "previous_quote_no", 64, 1) != 0)
		return;
	if (!m->planned_payoff_date || !m->planned_payoff_date[0] ||
	    s_parse_date(m->planned_payoff_date, &planned) != 0) {
		dept_error(&r, E_BAD, "planned_payoff_date", "planned_payoff_date: a date YYYY-MM-DD is required");
		return;
	}
	char cert[128];
	dept_norm_id(QIAO_ID_CERT, m->cert_no, cert, sizeof cert);
	struct quote_row q;
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_quote_tx(d, db, req, m, cert, planned, &q, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__BankAccount acc = QIAO__V1__BANK_ACCOUNT__INIT;
	acc.account_name = (char *)s_c.payoff_account_name;
	acc.account_no = (char *)s_c.payoff_account_no;
	acc.bank_name = (char *)s_c.payoff_bank_name;
	acc.bank_code = (char *)s_c.payoff_bank_code;
	Qiao__V1__PayoffQuote out = QIAO__V1__PAYOFF_QUOTE__INIT;
	out.quote_no = q.quote_no;
	out.loan_contract_no = q.contract_no;
	out.cert_no = q.cert_no;
	out.mortgage_proof_no = q.proof_no;
	out.principal_fen = q.principal;
	out.interest_fen = q.interest;
	out.fees_fen = q.fees;
	out.payoff_amount_fen = q.payoff;
	out.valid_until_ms = q.valid_until;
	out.payoff_account = &acc;
	out.consent_given = q.consent_given;
	out.consent_no = q.consent_no;
	out.consent_date = q.consent_date;
	out.consent_conditions = q.consent_conditions;
	out.decline_reason = q.decline_reason;
	dept_reply(&r, &out.base);
}

/* ---- payoff-confirmation.v1 --------------------------------------------- */

struct confirm_row {
	int settled;
	char settlement_no[72], proof_no[128];
	long long settled_ms, received, shortfall;
};

static int s_receipt_load(sqlite3 *db, const char *payment_no, char hash[65], struct confirm_row *c)
{
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT p.settled, p.settlement_no, p.settled_ms, p.received_total_fen, "
				     "p.shortfall_fen, l.mortgage_proof_no, p.request_hash FROM payoff_receipt p "
				     "JOIN loan_contract l ON l.contract_no = p.contract_no WHERE p.payment_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, payment_no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->settled = sqlite3_column_int(st, 0);
		dept_copy(c->settlement_no, sizeof c->settlement_no, dept_col_text(st, 1));
		c->settled_ms = sqlite3_column_int64(st, 2);
		c->received = sqlite3_column_int64(st, 3);
		c->shortfall = sqlite3_column_int64(st, 4);
		dept_copy(c->proof_no, sizeof c->proof_no, dept_col_text(st, 5));
		dept_copy(hash, 65, dept_col_text(st, 6));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int s_confirm_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			const Qiao__V1__PayoffConfirmationRequest *m, const char *hash, struct confirm_row *c,
			struct dept_fail *f)
{
	char old_hash[65] = "";
	int rc = s_receipt_load(db, m->payment_no, old_hash, c);
	if (rc < 0)
		return dept_dberr(f, d, db, "payoff_receipt");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "payment_no",
					 "payment_no %.64s was already confirmed for a different payment",
					 m->payment_no);
		return 0;
	}
	sqlite3_stmt *st = dept_prep(db, "SELECT q.contract_no, q.consent_no, q.consent_status, q.status, "
					 "q.planned_payoff_date, q.principal_fen, q.interest_fen, q.fees_fen, "
					 "q.payoff_amount_fen, q.interest_from_date, l.annual_rate_ppm, l.status "
					 "FROM payoff_quote q JOIN loan_contract l ON l.contract_no = q.contract_no "
					 "WHERE q.quote_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "payoff_quote");
	dept_bind_text(st, 1, m->quote_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "quote_no", "no payoff quote %.64s at %s", m->quote_no, s_c.name);
	}
	char contract[72], consent[72], cstatus[16], qstatus[16], planned_s[11], from_s[11], lstatus[16];
	dept_copy(contract, sizeof contract, dept_col_text(st, 0));
	dept_copy(consent, sizeof consent, dept_col_text(st, 1));
	dept_copy(cstatus, sizeof cstatus, dept_col_text(st, 2));
	dept_copy(qstatus, sizeof qstatus, dept_col_text(st, 3));
	dept_copy(planned_s, sizeof planned_s, dept_col_text(st, 4));
	long long principal = sqlite3_column_int64(st, 5);
	long long fees = sqlite3_column_int64(st, 7);
	long long owed = sqlite3_column_int64(st, 8);
	dept_copy(from_s, sizeof from_s, dept_col_text(st, 9));
	long long rate = sqlite3_column_int64(st, 10);
	dept_copy(lstatus, sizeof lstatus, dept_col_text(st, 11));
	sqlite3_finalize(st);

	if (strcmp(contract, m->loan_contract_no) != 0)
		return dept_fail(f, E_REJECTED, "loan_contract_no", "quote %.64s is for loan contract %s, not %.64s",
				 m->quote_no, contract, m->loan_contract_no);
	if (strcmp(consent, m->consent_no) != 0)
		return dept_fail(f, E_REJECTED, "consent_no", "quote %.64s carries no 同意带押函 %.64s", m->quote_no,
				 m->consent_no);
	if (strcmp(cstatus, "WITHDRAWN") == 0)
		return dept_fail(f, E_REJECTED, "consent_no", "同意带押函 %.64s was withdrawn", m->consent_no);
	if (strcmp(lstatus, "ACTIVE") != 0)
		return dept_fail(f, E_REJECTED, "loan_contract_no", "loan contract %.64s is already settled (已结清)",
				 contract);
	if (strcmp(qstatus, "SUPERSEDED") == 0)
		return dept_fail(f, E_REJECTED, "quote_no", "quote %.64s was superseded by a renewed quote",
				 m->quote_no);

	/* Paid after the planned date: interest ran on to the day of payment. */
	long planned = 0, from = 0, paid_day = s_day_of_ms(m->paid_ms);
	if (s_parse_date(planned_s, &planned) != 0 || s_parse_date(from_s, &from) != 0)
		return dept_fail(f, E_INTERNAL, NULL, "quote %.64s has bad dates", m->quote_no);
	if (paid_day > planned)
		owed = principal + s_interest(principal, rate, paid_day - from) + fees;

	st = dept_prep(db, "SELECT IFNULL(SUM(amount_paid_fen), 0) FROM payoff_receipt WHERE quote_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "payoff_receipt");
	dept_bind_text(st, 1, m->quote_no);
	long long before = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	long long total = before + m->amount_paid_fen;
	int settled = total >= owed;
	char settlement_no[72] = "";
	int64_t now = qiao_now_ms();
	if (settled && s_next_no(db, "JQZM", settlement_no, sizeof settlement_no) != 0)
		return dept_dberr(f, d, db, "doc_sequence");
	st = dept_prep(db,
		       "INSERT INTO payoff_receipt (payment_no, quote_no, contract_no, amount_paid_fen, paid_ms, "
		       "owed_fen, received_total_fen, shortfall_fen, settled, settlement_no, settled_ms, request_hash, "
		       "requester, case_id, recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
		       "?13, ?14, ?15)");
	if (!st)
		return dept_dberr(f, d, db, "payoff_receipt");
	dept_bind_text(st, 1, m->payment_no);
	dept_bind_text(st, 2, m->quote_no);
	dept_bind_text(st, 3, contract);
	dept_bind_int(st, 4, m->amount_paid_fen);
	dept_bind_int(st, 5, m->paid_ms);
	dept_bind_int(st, 6, owed);
	dept_bind_int(st, 7, total);
	dept_bind_int(st, 8, settled ? 0 : owed - total);
	dept_bind_int(st, 9, settled);
	dept_bind_text(st, 10, settlement_no);
	if (settled)
		dept_bind_int(st, 11, now);
	dept_bind_text(st, 12, hash);
	dept_bind_text(st, 13, req->requester);
	dept_bind_text(st, 14, dept_case_id(req));
	dept_bind_int(st, 15, now);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "payoff_receipt insert");
	if (settled) {
		st = dept_prep(db,
			       "UPDATE loan_contract SET status = 'SETTLED', outstanding_fen = 0, settlement_no = ?2, "
			       "settled_ms = ?3 WHERE contract_no = ?1");
		if (!st)
			return dept_dberr(f, d, db, "loan_contract");
		dept_bind_text(st, 1, contract);
		dept_bind_text(st, 2, settlement_no);
		dept_bind_int(st, 3, now);
		if (dept_run(st) != 0)
			return dept_dberr(f, d, db, "loan_contract settle");
		st = dept_prep(db, "UPDATE payoff_quote SET status = 'SETTLED' WHERE quote_no = ?1");
		if (!st)
			return dept_dberr(f, d, db, "payoff_quote");
		dept_bind_text(st, 1, m->quote_no);
		if (dept_run(st) != 0)
			return dept_dberr(f, d, db, "payoff_quote settle");
	}
	return s_receipt_load(db, m->payment_no, old_hash, c) == 1 ? 0 : dept_dberr(f, d, db, "payoff_receipt");
}

static void on_payoff_confirmation(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				   struct qiao_responder *r)
{
	const Qiao__V1__PayoffConfirmationRequest *m = (const Qiao__V1__PayoffConfirmationRequest *)body;
	if (dept_check_printable(&r, m->quote_no, "quote_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->consent_no, "consent_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->loan_contract_no, "loan_contract_no", 64, 0) != 0 ||
	    s_positive(&r, m->amount_paid_fen, "amount_paid_fen") != 0 ||
	    dept_check_ref(&r, m->payment_no, "payment_no") != 0)
		return;
	if (m->paid_ms <= 0 || m->paid_ms > qiao_now_ms() + 300000) {
		dept_error(&r, E_BAD, "paid_ms", "paid_ms: the instant of payment is required (not in the future)");
		return;
	}
	char hash[65];
	dept_body_hash(req, hash);
	struct confirm_row c;
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_confirm_tx(d, db, req, m, hash, &c, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__PayoffConfirmation out = QIAO__V1__PAYOFF_CONFIRMATION__INIT;
	out.settled = c.settled;
	out.settlement_no = c.settlement_no;
	out.settled_ms = c.settled_ms;
	out.amount_received_fen = c.received;
	out.shortfall_fen = c.shortfall;
	out.mortgage_proof_no = c.proof_no;
	dept_reply(&r, &out.base);
}

/* ---- consent-withdrawal.v1 ---------------------------------------------- */

static void on_consent_withdrawal(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				  struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__ConsentWithdrawal *m = (const Qiao__V1__ConsentWithdrawal *)body;
	if (dept_check_printable(&r, m->consent_no, "consent_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->quote_no, "quote_no", 64, 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_PROOF, m->mortgage_proof_no, "mortgage_proof_no", 0) != 0 ||
	    dept_check_unwind_reason(&r, m->reason, m->reason_note, "reason") != 0)
		return;
	char proof[128];
	dept_norm_id(QIAO_ID_PROOF, m->mortgage_proof_no, proof, sizeof proof);
	struct dept_fail f = {0};
	int withdrawn = 0;
	long long when = 0;
	char refusal[200] = "";
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc != 0)
		dept_dberr(&f, d, db, "begin");
	sqlite3_stmt *st = rc == 0 ? dept_prep(db,
					       "SELECT q.consent_no, q.consent_status, q.withdrawn_ms, "
					       "l.mortgage_proof_no, l.status, q.status FROM payoff_quote q JOIN "
					       "loan_contract l ON l.contract_no = q.contract_no WHERE q.quote_no = ?1")
				   : NULL;
	if (rc == 0 && !st)
		rc = dept_dberr(&f, d, db, "payoff_quote");
	if (rc == 0) {
		dept_bind_text(st, 1, m->quote_no);
		if (sqlite3_step(st) != SQLITE_ROW) {
			rc = dept_fail(&f, E_NOTFOUND, "quote_no", "no payoff quote %.64s at %s", m->quote_no,
				       s_c.name);
		} else if (strcmp(dept_col_text(st, 0), m->consent_no) != 0) {
			rc = dept_fail(&f, E_NOTFOUND, "consent_no", "quote %.64s carries no 同意带押函 %.64s",
				       m->quote_no, m->consent_no);
		} else if (strcmp(dept_col_text(st, 3), proof) != 0) {
			rc = dept_fail(&f, E_REJECTED, "mortgage_proof_no",
				       "同意带押函 %.64s concerns another mortgage than %.100s", m->consent_no,
				       m->mortgage_proof_no);
		} else if (strcmp(dept_col_text(st, 1), "WITHDRAWN") == 0) {
			withdrawn = 1;
			when = sqlite3_column_int64(st, 2);
		} else if (strcmp(dept_col_text(st, 4), "SETTLED") == 0 ||
			   strcmp(dept_col_text(st, 5), "SETTLED") == 0) {
			snprintf(refusal, sizeof refusal, "贷款已结清，同意带押函已履行，不能撤回");
		} else {
			withdrawn = 2;
		}
		sqlite3_finalize(st);
	}
	if (rc == 0 && withdrawn == 2) {
		when = qiao_now_ms();
		st = dept_prep(db, "UPDATE payoff_quote SET consent_status = 'WITHDRAWN', withdrawn_ms = ?2, "
				   "withdraw_reason = ?3, withdraw_note = ?4 WHERE quote_no = ?1");
		if (st) {
			dept_bind_text(st, 1, m->quote_no);
			dept_bind_int(st, 2, when);
			dept_bind_int(st, 3, m->reason);
			dept_bind_text(st, 4, m->reason_note);
		}
		if (dept_run(st) != 0)
			rc = dept_dberr(&f, d, db, "payoff_quote withdraw");
	}
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__ConsentWithdrawalResult out = QIAO__V1__CONSENT_WITHDRAWAL_RESULT__INIT;
	out.withdrawn = withdrawn != 0;
	out.withdrawn_ms = withdrawn ? when : 0;
	out.refusal_reason = refusal;
	dept_reply(&r, &out.base);
}

/* ---- loan-application.v1 ------------------------------------------------ */

struct approval_row {
	char application_no[72], decision[16], decline_reason[520], approval_no[72];
	long long amount, rate, secured, valid_until, decided;
	int term, rank;
	char loan_contract_no[72], mortgage_contract_no[72], start[11], end[11], scope[520];
};

static int s_application_load(sqlite3 *db, const char *no, char hash[65], struct approval_row *a)
{
	sqlite3_stmt *st = dept_prep(
		db, "SELECT application_no, decision, decline_reason, approval_no, amount_fen, "
		    "term_months, annual_rate_ppm, expected_rank, loan_contract_no, mortgage_contract_no, "
		    "secured_amount_fen, debt_start_date, debt_end_date, guarantee_scope, valid_until_ms, "
		    "decided_ms, request_hash FROM loan_application WHERE application_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dept_copy(a->application_no, sizeof a->application_no, dept_col_text(st, 0));
		dept_copy(a->decision, sizeof a->decision, dept_col_text(st, 1));
		dept_copy(a->decline_reason, sizeof a->decline_reason, dept_col_text(st, 2));
		dept_copy(a->approval_no, sizeof a->approval_no, dept_col_text(st, 3));
		a->amount = sqlite3_column_int64(st, 4);
		a->term = sqlite3_column_int(st, 5);
		a->rate = sqlite3_column_int64(st, 6);
		a->rank = sqlite3_column_int(st, 7);
		dept_copy(a->loan_contract_no, sizeof a->loan_contract_no, dept_col_text(st, 8));
		dept_copy(a->mortgage_contract_no, sizeof a->mortgage_contract_no, dept_col_text(st, 9));
		a->secured = sqlite3_column_int64(st, 10);
		dept_copy(a->start, sizeof a->start, dept_col_text(st, 11));
		dept_copy(a->end, sizeof a->end, dept_col_text(st, 12));
		dept_copy(a->scope, sizeof a->scope, dept_col_text(st, 13));
		a->valid_until = sqlite3_column_int64(st, 14);
		a->decided = sqlite3_column_int64(st, 15);
		dept_copy(hash, 65, dept_col_text(st, 16));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* 等额本息 monthly payment in fen (used for the debt-to-income rule only). */
static long long s_monthly_payment(long long amount, long long rate_ppm, int months)
{
	double r = (double)rate_ppm / 1e6 / 12.0;
	if (months <= 0)
		return amount;
	if (r <= 0)
		return (amount + months - 1) / months;
	double f = 1.0;
	for (int i = 0; i < months; i++)
		f *= 1.0 + r;
	double x = (double)amount * r * f / (f - 1.0);
	long long p = (long long)x;
	return p + (x > (double)p);
}

/* The borrower's age in whole years on `day`, from the birth date of a
 * 居民身份证号码; -1 for anything else. */
static int s_age_on(const char *id, long day)
{
	char b[11];
	if (strlen(id) != 18)
		return -1;
	snprintf(b, sizeof b, "%.4s-%.2s-%.2s", id + 6, id + 10, id + 12);
	long birth;
	if (s_parse_date(b, &birth) != 0)
		return -1;
	long by, y;
	unsigned bm, bd, m, dd;
	s_civil_from_days(birth, &by, &bm, &bd);
	s_civil_from_days(day, &y, &m, &dd);
	long age = y - by - (m < bm || (m == bm && dd < bd));
	return (int)age;
}

/* The bank's rules: "" when the loan may be approved, else why not. */
static int s_assess(struct dept *d, sqlite3 *db, const Qiao__V1__LoanApplication *m, long long ltv, long long payment,
		    char *why, size_t n, struct dept_fail *f)
{
	long long income = 0, debt = 0;
	for (size_t i = 0; i < m->n_borrowers; i++) {
		const Qiao__V1__Party *p = m->borrowers[i];
		sqlite3_stmt *st = dept_prep(db, "SELECT list_type, reason FROM risk_list WHERE id_no = ?1 AND "
						 "(expires_date IS NULL OR expires_date >= ?2)");
		if (!st)
			return dept_dberr(f, d, db, "risk_list");
		char today[11];
		dept_date(today, 0);
		dept_bind_text(st, 1, p->id->id);
		dept_bind_text(st, 2, today);
		int hit = sqlite3_step(st) == SQLITE_ROW && strcmp(dept_col_text(st, 0), "BLACKLIST") == 0;
		if (hit)
			snprintf(why, n, "借款人%s在本行风险名单（%s），不予贷款", p->name, dept_col_text(st, 1));
		sqlite3_finalize(st);
		if (hit)
			return 0;
		st = dept_prep(db, "SELECT monthly_income_fen, monthly_debt_fen FROM customer WHERE id_no = ?1");
		if (!st)
			return dept_dberr(f, d, db, "customer");
		dept_bind_text(st, 1, p->id->id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			income += sqlite3_column_int64(st, 0);
			debt += sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	if (m->amount_fen < s_c.min_loan_fen) {
		snprintf(why, n, "申请金额低于本行个人住房贷款最低金额 %lld.%02lld 元", s_c.min_loan_fen / 100,
			 s_c.min_loan_fen % 100);
		return 0;
	}
	if (m->amount_fen > s_c.max_loan_fen) {
		snprintf(why, n, "申请金额超过本行个人住房贷款最高金额 %lld.%02lld 元", s_c.max_loan_fen / 100,
			 s_c.max_loan_fen % 100);
		return 0;
	}
	if ((long long)m->term_months > s_c.max_term_months) {
		snprintf(why, n, "申请期限 %u 个月超过本行最长期限 %lld 个月", m->term_months, s_c.max_term_months);
		return 0;
	}
	if (ltv > s_c.max_ltv_ppm) {
		snprintf(why, n, "贷款价值比 %lld.%02lld%% 超过本行上限 %lld.%02lld%%", ltv / 10000, ltv / 100 % 100,
			 s_c.max_ltv_ppm / 10000, s_c.max_ltv_ppm / 100 % 100);
		return 0;
	}
	long maturity = s_add_months(s_today(), m->term_months);
	for (size_t i = 0; i < m->n_borrowers; i++) {
		const Qiao__V1__Party *p = m->borrowers[i];
		if (p->id->type != QIAO__V1__SUBJECT_TYPE__RESIDENT_ID)
			continue;
		int age = s_age_on(p->id->id, maturity);
		if (age > s_c.max_age_at_maturity) {
			snprintf(why, n, "借款人%s贷款到期时年龄 %d 岁，超过本行上限 %lld 岁", p->name, age,
				 s_c.max_age_at_maturity);
			return 0;
		}
	}
	/* Debt to income, where the bank knows the borrowers' income. */
	if (income > 0 && (__int128)(payment + debt) * 1000000 > (__int128)income * s_c.max_dti_ppm) {
		snprintf(why, n, "月还款额（含现有负债）%lld.%02lld 元超过月收入的 %lld%%", (payment + debt) / 100,
			 (payment + debt) % 100, s_c.max_dti_ppm / 10000);
		return 0;
	}
	why[0] = '\0';
	return 0;
}

static int s_application_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			    const Qiao__V1__LoanApplication *m, const char *cert, const char *hash,
			    struct approval_row *a, struct dept_fail *f)
{
	char old_hash[65] = "";
	int rc = s_application_load(db, m->application_no, old_hash, a);
	if (rc < 0)
		return dept_dberr(f, d, db, "loan_application");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "application_no",
					 "application_no %.64s was already used for a different application",
					 m->application_no);
		return 0;
	}
	long long ltv = (long long)((__int128)m->amount_fen * 1000000 / m->price_fen);
	long long payment = s_monthly_payment(m->amount_fen, s_c.annual_rate_ppm, (int)m->term_months);
	char why[520];
	if (s_assess(d, db, m, ltv, payment, why, sizeof why, f) != 0)
		return -1;
	int approved = why[0] == '\0';
	int64_t now = qiao_now_ms();
	long today = s_today();
	char approval_no[72] = "", loan_no[72] = "", mort_no[72] = "", start[11] = "", end[11] = "";
	if (approved) {
		if (s_next_no(db, "SP", approval_no, sizeof approval_no) != 0 ||
		    s_next_no(db, "JK", loan_no, sizeof loan_no) != 0 ||
		    s_next_no(db, "DY", mort_no, sizeof mort_no) != 0)
			return dept_dberr(f, d, db, "doc_sequence");
		s_fmt_date(today, start);
		s_fmt_date(s_add_months(today, m->term_months), end);
	}
	sqlite3_stmt *st = dept_prep(
		db, "INSERT INTO loan_application (application_no, request_hash, unit_no, cert_no, "
		    "contract_no, price_fen, amount_fen, term_months, authorisation_no, ltv_ppm, "
		    "monthly_payment_fen, decision, decline_reason, approval_no, annual_rate_ppm, "
		    "expected_rank, loan_contract_no, mortgage_contract_no, secured_amount_fen, "
		    "debt_start_date, debt_end_date, guarantee_scope, valid_until_ms, decided_ms, status, "
		    "requester, case_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		    "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?12, ?25, ?26)");
	if (!st)
		return dept_dberr(f, d, db, "loan_application");
	dept_bind_text(st, 1, m->application_no);
	dept_bind_text(st, 2, hash);
	dept_bind_text(st, 3, m->unit_no);
	dept_bind_text(st, 4, cert);
	dept_bind_text(st, 5, m->contract_no);
	dept_bind_int(st, 6, m->price_fen);
	dept_bind_int(st, 7, m->amount_fen);
	dept_bind_int(st, 8, m->term_months);
	dept_bind_text(st, 9, m->authorisation_no);
	dept_bind_int(st, 10, ltv);
	dept_bind_int(st, 11, payment);
	dept_bind_text(st, 12, approved ? "APPROVED" : "DECLINED");
	dept_bind_text(st, 13, approved ? "" : why);
	dept_bind_text(st, 14, approval_no);
	if (approved) {
		dept_bind_int(st, 15, s_c.annual_rate_ppm);
		dept_bind_int(st, 16, s_c.expected_rank);
		dept_bind_int(st, 19, m->amount_fen);
		dept_bind_int(st, 23, s_end_of_day_ms(today + (long)s_c.approval_valid_days - 1));
	}
	dept_bind_text(st, 17, loan_no);
	dept_bind_text(st, 18, mort_no);
	dept_bind_text(st, 20, start);
	dept_bind_text(st, 21, end);
	dept_bind_text(st, 22, approved ? s_c.guarantee_scope : "");
	dept_bind_int(st, 24, now);
	dept_bind_text(st, 25, req->requester);
	dept_bind_text(st, 26, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "loan_application insert");
	for (size_t i = 0; i < m->n_borrowers; i++) {
		st = dept_prep(db, "INSERT INTO loan_borrower (application_no, seq, name, id_type, id_no) "
				   "VALUES (?1, ?2, ?3, ?4, ?5)");
		if (!st)
			return dept_dberr(f, d, db, "loan_borrower");
		dept_bind_text(st, 1, m->application_no);
		dept_bind_int(st, 2, (long long)i);
		dept_bind_text(st, 3, m->borrowers[i]->name);
		dept_bind_text(st, 4, dept_party_type(m->borrowers[i]));
		dept_bind_text(st, 5, m->borrowers[i]->id->id);
		if (dept_run(st) != 0)
			return dept_dberr(f, d, db, "loan_borrower insert");
	}
	dept_log(d, "application %s: %s%s", m->application_no,
		 approved ? "approved " : "declined: ", approved ? approval_no : why);
	return s_application_load(db, m->application_no, old_hash, a) == 1 ? 0
									   : dept_dberr(f, d, db, "loan_application");
}

static void on_loan_application(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				struct qiao_responder *r)
{
	const Qiao__V1__LoanApplication *m = (const Qiao__V1__LoanApplication *)body;
	if (dept_check_ref(&r, m->application_no, "application_no") != 0)
		return;
	if (m->n_borrowers < 1 || m->n_borrowers > 8) {
		dept_error(&r, E_BAD, "borrowers", "borrowers: 1 to 8 are required, not %zu", m->n_borrowers);
		return;
	}
	for (size_t i = 0; i < m->n_borrowers; i++) {
		char f[32];
		snprintf(f, sizeof f, "borrowers[%zu]", i);
		if (dept_check_party(&r, m->borrowers[i], f, 0) != 0)
			return;
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->borrowers[k]->id->id, m->borrowers[i]->id->id) == 0) {
				dept_error(&r, E_BAD, f, "%s names the same borrower as borrowers[%zu]", f, k);
				return;
			}
	}
	if (dept_check_id(&r, QIAO_ID_UNIT, m->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->cert_no, "cert_no", 0) != 0 ||
	    dept_check_printable(&r, m->contract_no, "contract_no", 64, 1) != 0 ||
	    s_positive(&r, m->price_fen, "price_fen") != 0 || s_positive(&r, m->amount_fen, "amount_fen") != 0 ||
	    dept_check_printable(&r, m->authorisation_no, "authorisation_no", 64, 0) != 0)
		return;
	if (m->term_months < 1 || m->term_months > 360) {
		dept_error(&r, E_BAD, "term_months", "term_months: 1 to 360");
		return;
	}
	char cert[128], hash[65];
	dept_norm_id(QIAO_ID_CERT, m->cert_no, cert, sizeof cert);
	dept_body_hash(req, hash);
	struct approval_row a;
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_application_tx(d, db, req, m, cert, hash, &a, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__DataSubject lid = QIAO__V1__DATA_SUBJECT__INIT;
	lid.type = QIAO__V1__SUBJECT_TYPE__USCC;
	lid.id = (char *)s_c.uscc;
	Qiao__V1__Party lender = QIAO__V1__PARTY__INIT;
	lender.name = (char *)s_c.name;
	lender.id = &lid;
	Qiao__V1__LoanApproval out = QIAO__V1__LOAN_APPROVAL__INIT;
	out.application_no = a.application_no;
	out.decided_ms = a.decided;
	if (strcmp(a.decision, "APPROVED") == 0) {
		out.decision = QIAO__V1__LOAN_DECISION__LOAN_DECISION_APPROVED;
		out.approval_no = a.approval_no;
		out.lender = &lender;
		out.amount_fen = a.amount;
		out.term_months = (uint32_t)a.term;
		out.annual_rate_ppm = (uint32_t)a.rate;
		out.expected_rank = (uint32_t)a.rank;
		out.loan_contract_no = a.loan_contract_no;
		out.mortgage_contract_no = a.mortgage_contract_no;
		out.mortgage_type = QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL;
		out.secured_amount_fen = a.secured;
		out.debt_start_date = a.start;
		out.debt_end_date = a.end;
		out.guarantee_scope = a.scope;
		out.valid_until_ms = a.valid_until;
	} else {
		out.decision = QIAO__V1__LOAN_DECISION__LOAN_DECISION_DECLINED;
		out.decline_reason = a.decline_reason;
	}
	dept_reply(&r, &out.base);
}

/* ---- disbursement.v1 ---------------------------------------------------- */

struct disb_row {
	int disbursed;
	char transaction_no[72], refusal[520];
	long long amount, when;
};

static int s_disb_load(sqlite3 *db, const char *ref, char hash[65], struct disb_row *o)
{
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT transaction_no, amount_fen, disbursed_ms, request_hash FROM disbursement "
				     "WHERE disbursement_ref = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, ref);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		o->disbursed = 1;
		dept_copy(o->transaction_no, sizeof o->transaction_no, dept_col_text(st, 0));
		o->amount = sqlite3_column_int64(st, 1);
		o->when = sqlite3_column_int64(st, 2);
		dept_copy(hash, 65, dept_col_text(st, 3));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A refusal is an answer, not a record: nothing is paid, nothing stored,
 * so a corrected request under the same reference may still succeed. */
static int s_disb_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
		     const Qiao__V1__DisbursementRequest *m, const char *proof, const char *hash, struct disb_row *o,
		     struct dept_fail *f)
{
	char old_hash[65] = "";
	int rc = s_disb_load(db, m->disbursement_ref, old_hash, o);
	if (rc < 0)
		return dept_dberr(f, d, db, "disbursement");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "disbursement_ref",
					 "disbursement_ref %.64s was already used for a different disbursement",
					 m->disbursement_ref);
		return 0;
	}
	sqlite3_stmt *st = dept_prep(
		db, "SELECT a.status, a.loan_contract_no, a.amount_fen, a.valid_until_ms, "
		    "a.application_no, a.unit_no, a.cert_no, a.annual_rate_ppm, a.debt_end_date, "
		    "a.expected_rank, b.name, b.id_type, b.id_no, "
		    "(SELECT disbursement_ref FROM disbursement WHERE approval_no = a.approval_no) "
		    "FROM loan_application a JOIN loan_borrower b ON b.application_no = a.application_no "
		    "AND b.seq = 0 WHERE a.approval_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "loan_application");
	dept_bind_text(st, 1, m->approval_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "approval_no", "no loan approval %.64s at %s", m->approval_no,
				 s_c.name);
	}
	char status[16], loan_no[72], unit[40], cert[128], end[11], bname[128], btype[16], bid[32], other[72];
	dept_copy(status, sizeof status, dept_col_text(st, 0));
	dept_copy(loan_no, sizeof loan_no, dept_col_text(st, 1));
	long long approved = sqlite3_column_int64(st, 2);
	long long valid_until = sqlite3_column_int64(st, 3);
	dept_copy(unit, sizeof unit, dept_col_text(st, 5));
	dept_copy(cert, sizeof cert, dept_col_text(st, 6));
	long long rate = sqlite3_column_int64(st, 7);
	dept_copy(end, sizeof end, dept_col_text(st, 8));
	int rank = sqlite3_column_int(st, 9);
	dept_copy(bname, sizeof bname, dept_col_text(st, 10));
	dept_copy(btype, sizeof btype, dept_col_text(st, 11));
	dept_copy(bid, sizeof bid, dept_col_text(st, 12));
	dept_copy(other, sizeof other, dept_col_text(st, 13));
	sqlite3_finalize(st);
	int64_t now = qiao_now_ms();

	if (strcmp(loan_no, m->loan_contract_no) != 0)
		return dept_fail(f, E_REJECTED, "loan_contract_no", "approval %.64s is for loan contract %s, not %.64s",
				 m->approval_no, loan_no, m->loan_contract_no);
	if (strcmp(status, "REVOKED") == 0)
		snprintf(o->refusal, sizeof o->refusal, "贷款批复 %.64s 已撤销，不予放款", m->approval_no);
	else if (strcmp(status, "DISBURSED") == 0 || other[0])
		snprintf(o->refusal, sizeof o->refusal, "贷款批复 %.64s 已放款（放款请求编号 %.64s），不重复放款",
			 m->approval_no, other);
	else if (strcmp(status, "APPROVED") != 0)
		snprintf(o->refusal, sizeof o->refusal, "贷款批复 %.64s 状态为 %s，不予放款", m->approval_no, status);
	else if (now >= valid_until)
		snprintf(o->refusal, sizeof o->refusal, "贷款批复 %.64s 已过有效期，不予放款", m->approval_no);
	else if (m->amount_fen > approved)
		snprintf(o->refusal, sizeof o->refusal, "放款金额 %lld.%02lld 元超过批贷金额 %lld.%02lld 元",
			 (long long)m->amount_fen / 100, (long long)m->amount_fen % 100, approved / 100,
			 approved % 100);
	if (o->refusal[0]) {
		o->disbursed = 0;
		dept_log(d, "disbursement %s refused: %s", m->disbursement_ref, o->refusal);
		return 0;
	}
	if (s_next_no(db, "FK", o->transaction_no, sizeof o->transaction_no) != 0)
		return dept_dberr(f, d, db, "doc_sequence");
	st = dept_prep(db, "INSERT INTO disbursement (disbursement_ref, request_hash, approval_no, loan_contract_no, "
			   "amount_fen, escrow_account_name, escrow_account_no, escrow_bank_name, escrow_bank_code, "
			   "escrow_agreement_no, mortgage_proof_no, transaction_no, disbursed_ms, requester, case_id) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
	if (!st)
		return dept_dberr(f, d, db, "disbursement");
	dept_bind_text(st, 1, m->disbursement_ref);
	dept_bind_text(st, 2, hash);
	dept_bind_text(st, 3, m->approval_no);
	dept_bind_text(st, 4, m->loan_contract_no);
	dept_bind_int(st, 5, m->amount_fen);
	dept_bind_text(st, 6, m->escrow_account->account_name);
	dept_bind_text(st, 7, m->escrow_account->account_no);
	dept_bind_text(st, 8, m->escrow_account->bank_name);
	dept_bind_text(st, 9, m->escrow_account->bank_code);
	dept_bind_text(st, 10, m->escrow_agreement_no);
	dept_bind_text(st, 11, proof);
	dept_bind_text(st, 12, o->transaction_no);
	dept_bind_int(st, 13, now);
	dept_bind_text(st, 14, req->requester);
	dept_bind_text(st, 15, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "disbursement insert");
	st = dept_prep(db, "UPDATE loan_application SET status = 'DISBURSED' WHERE approval_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "loan_application");
	dept_bind_text(st, 1, m->approval_no);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "loan_application disburse");
	/* The new loan enters the ledger (借据), secured by the new mortgage. */
	char start[11];
	dept_date(start, 0);
	long sd = s_today();
	long y;
	unsigned mo, dd;
	s_civil_from_days(sd, &y, &mo, &dd);
	st = dept_prep(
		db, "INSERT INTO loan_contract (contract_no, cust_no, borrower_name, borrower_id_type, "
		    "borrower_id_no, product, principal_fen, outstanding_fen, annual_rate_ppm, start_date, "
		    "maturity_date, repay_day, collateral_unit_no, collateral_cert_no, mortgage_proof_no, "
		    "mortgage_rank, status, approval_no, disbursement_ref) VALUES (?1, (SELECT cust_no FROM customer "
		    "WHERE id_no = ?4), ?2, ?3, ?4, '个人住房贷款（带押过户）', ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
		    "?12, ?13, 'ACTIVE', ?14, ?15)");
	if (!st)
		return dept_dberr(f, d, db, "loan_contract");
	dept_bind_text(st, 1, m->loan_contract_no);
	dept_bind_text(st, 2, bname);
	dept_bind_text(st, 3, btype);
	dept_bind_text(st, 4, bid);
	dept_bind_int(st, 5, m->amount_fen);
	dept_bind_int(st, 6, rate);
	dept_bind_text(st, 7, start);
	dept_bind_text(st, 8, end);
	dept_bind_int(st, 9, dd > 28 ? 28 : dd);
	dept_bind_text(st, 10, unit);
	dept_bind_text(st, 11, cert);
	dept_bind_text(st, 12, proof);
	dept_bind_int(st, 13, rank);
	dept_bind_text(st, 14, m->approval_no);
	dept_bind_text(st, 15, m->disbursement_ref);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "loan_contract insert");
	o->disbursed = 1;
	o->amount = m->amount_fen;
	o->when = now;
	return 0;
}

static void on_disbursement(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			    struct qiao_responder *r)
{
	const Qiao__V1__DisbursementRequest *m = (const Qiao__V1__DisbursementRequest *)body;
	if (dept_check_ref(&r, m->disbursement_ref, "disbursement_ref") != 0 ||
	    dept_check_printable(&r, m->approval_no, "approval_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->loan_contract_no, "loan_contract_no", 64, 0) != 0 ||
	    s_positive(&r, m->amount_fen, "amount_fen") != 0 ||
	    dept_check_account(&r, m->escrow_account, "escrow_account") != 0 ||
	    dept_check_printable(&r, m->escrow_agreement_no, "escrow_agreement_no", 64, 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_PROOF, m->mortgage_proof_no, "mortgage_proof_no", 0) != 0)
		return;
	char proof[128], hash[65];
	dept_norm_id(QIAO_ID_PROOF, m->mortgage_proof_no, proof, sizeof proof);
	dept_body_hash(req, hash);
	struct disb_row o = {0};
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_disb_tx(d, db, req, m, proof, hash, &o, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__DisbursementResult out = QIAO__V1__DISBURSEMENT_RESULT__INIT;
	out.disbursement_ref = m->disbursement_ref;
	if (o.disbursed) {
		out.status = QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_DISBURSED;
		out.transaction_no = o.transaction_no;
		out.amount_fen = o.amount;
		out.disbursed_ms = o.when;
	} else {
		out.status = QIAO__V1__DISBURSEMENT_STATUS__DISBURSEMENT_STATUS_REFUSED;
		out.refusal_reason = o.refusal;
	}
	dept_reply(&r, &out.base);
}

/* ---- loan-approval-revocation.v1 ---------------------------------------- */

static void on_revocation(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			  struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__LoanApprovalRevocation *m = (const Qiao__V1__LoanApprovalRevocation *)body;
	if (dept_check_printable(&r, m->approval_no, "approval_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->application_no, "application_no", 64, 0) != 0 ||
	    dept_check_unwind_reason(&r, m->reason, m->reason_note, "reason") != 0)
		return;
	struct dept_fail f = {0};
	int revoked = 0;
	long long when = 0;
	char refusal[300] = "";
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc != 0)
		dept_dberr(&f, d, db, "begin");
	sqlite3_stmt *st = rc == 0 ? dept_prep(db, "SELECT application_no, status, revoked_ms FROM loan_application "
						   "WHERE approval_no = ?1")
				   : NULL;
	if (rc == 0 && !st)
		rc = dept_dberr(&f, d, db, "loan_application");
	if (rc == 0) {
		dept_bind_text(st, 1, m->approval_no);
		if (sqlite3_step(st) != SQLITE_ROW)
			rc = dept_fail(&f, E_NOTFOUND, "approval_no", "no loan approval %.64s at %s", m->approval_no,
				       s_c.name);
		else if (strcmp(dept_col_text(st, 0), m->application_no) != 0)
			rc = dept_fail(&f, E_REJECTED, "application_no",
				       "approval %.64s belongs to another application", m->approval_no);
		else if (strcmp(dept_col_text(st, 1), "REVOKED") == 0) {
			revoked = 1;
			when = sqlite3_column_int64(st, 2);
		} else if (strcmp(dept_col_text(st, 1), "DISBURSED") == 0)
			snprintf(refusal, sizeof refusal, "已放款，不能撤销贷款批复");
		else
			revoked = 2;
		sqlite3_finalize(st);
	}
	if (rc == 0 && revoked == 2) {
		when = qiao_now_ms();
		st = dept_prep(db,
			       "UPDATE loan_application SET status = 'REVOKED', revoked_ms = ?2, revoke_reason = ?3, "
			       "revoke_note = ?4 WHERE approval_no = ?1 AND status = 'APPROVED'");
		if (st) {
			dept_bind_text(st, 1, m->approval_no);
			dept_bind_int(st, 2, when);
			dept_bind_int(st, 3, m->reason);
			dept_bind_text(st, 4, m->reason_note);
		}
		if (dept_run(st) != 0)
			rc = dept_dberr(&f, d, db, "loan_application revoke");
	}
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__LoanApprovalRevocationResult out = QIAO__V1__LOAN_APPROVAL_REVOCATION_RESULT__INIT;
	out.revoked = revoked != 0;
	out.revoked_ms = revoked ? when : 0;
	out.refusal_reason = refusal;
	dept_reply(&r, &out.base);
}

/* ---- set-up ------------------------------------------------------------- */

static int s_conf_int(struct dept *d, const char *key, long long lo, long long hi, long long *out)
{
	const char *v = dept_config(d, key, NULL);
	long long x = dept_config_int(d, key, LLONG_MIN);
	if (!v || x == LLONG_MIN || x < lo || x > hi) {
		dept_log(d, "config: %s must be an integer %lld..%lld (is %s)", key, lo, hi, v ? v : "missing");
		return -1;
	}
	*out = x;
	return 0;
}

static int s_conf_str(struct dept *d, const char *key, int required, const char **out)
{
	*out = dept_config(d, key, "");
	if (required && !(*out)[0]) {
		dept_log(d, "config: %s is required", key);
		return -1;
	}
	return 0;
}

static int s_init(struct dept *d)
{
	struct bank_conf *c = &s_c;
	if (s_conf_str(d, "bank_name", 1, &c->name) || s_conf_str(d, "bank_uscc", 1, &c->uscc) ||
	    s_conf_str(d, "doc_prefix", 1, &c->prefix) || s_conf_int(d, "max_ltv_ppm", 1, 1000000, &c->max_ltv_ppm) ||
	    s_conf_int(d, "min_loan_fen", 1, MAX_FEN, &c->min_loan_fen) ||
	    s_conf_int(d, "max_loan_fen", 1, MAX_FEN, &c->max_loan_fen) ||
	    s_conf_int(d, "max_term_months", 1, 360, &c->max_term_months) ||
	    s_conf_int(d, "annual_rate_ppm", 1, 1000000, &c->annual_rate_ppm) ||
	    s_conf_int(d, "max_age_at_maturity", 18, 120, &c->max_age_at_maturity) ||
	    s_conf_int(d, "max_dti_ppm", 1, 1000000, &c->max_dti_ppm) ||
	    s_conf_int(d, "quote_valid_days", 1, 365, &c->quote_valid_days) ||
	    s_conf_int(d, "approval_valid_days", 1, 365, &c->approval_valid_days) ||
	    s_conf_int(d, "prepay_fee_ppm", 0, 100000, &c->prepay_fee_ppm) ||
	    s_conf_int(d, "consent_max_overdue_days", 0, 3650, &c->consent_max_overdue_days) ||
	    s_conf_int(d, "expected_rank", 1, 9, &c->expected_rank) ||
	    s_conf_str(d, "payoff_account_name", 1, &c->payoff_account_name) ||
	    s_conf_str(d, "payoff_account_no", 1, &c->payoff_account_no) ||
	    s_conf_str(d, "payoff_bank_name", 1, &c->payoff_bank_name) ||
	    s_conf_str(d, "payoff_bank_code", 0, &c->payoff_bank_code) ||
	    s_conf_str(d, "guarantee_scope", 1, &c->guarantee_scope) ||
	    s_conf_str(d, "consent_conditions", 0, &c->consent_conditions))
		return 2;
	char why[200];
	if (qiao_id_check_uscc(NULL, c->uscc, why, sizeof why) != 0) {
		dept_log(d, "config: bank_uscc %s: %s", c->uscc, why);
		return 2;
	}
	const char *member = dept_member(d);
	if (strncmp(member, c->uscc, 18) != 0 || member[18] != '/') {
		dept_log(d, "config: bank_uscc %s is not the USCC of this member (%s)", c->uscc, member);
		return 2;
	}
	if (c->min_loan_fen > c->max_loan_fen) {
		dept_log(d, "config: min_loan_fen is above max_loan_fen");
		return 2;
	}
	size_t n = strlen(c->payoff_account_no);
	int ok = n >= 8 && n <= 40;
	for (size_t i = 0; ok && i < n; i++)
		ok = isdigit((unsigned char)c->payoff_account_no[i]) != 0;
	if (!ok || strlen(c->prefix) > 8) {
		dept_log(d, "config: payoff_account_no must be 8..40 digits, doc_prefix at most 8 characters");
		return 2;
	}
	dept_log(d, "%s (%s): LTV ≤ %lld ppm, %lld..%lld fen, rate %lld ppm, quotes valid %lld days", c->name, c->uscc,
		 c->max_ltv_ppm, c->min_loan_fen, c->max_loan_fen, c->annual_rate_ppm, c->quote_valid_days);
	return 0;
}

static const struct dept_service s_services[] = {
	{"payoff-quote.v1", &qiao__v1__payoff_quote_request__descriptor, &qiao__v1__payoff_quote__descriptor,
	 on_payoff_quote},
	{"loan-application.v1", &qiao__v1__loan_application__descriptor, &qiao__v1__loan_approval__descriptor,
	 on_loan_application},
	{"disbursement.v1", &qiao__v1__disbursement_request__descriptor, &qiao__v1__disbursement_result__descriptor,
	 on_disbursement},
	{"payoff-confirmation.v1", &qiao__v1__payoff_confirmation_request__descriptor,
	 &qiao__v1__payoff_confirmation__descriptor, on_payoff_confirmation},
	{"consent-withdrawal.v1", &qiao__v1__consent_withdrawal__descriptor,
	 &qiao__v1__consent_withdrawal_result__descriptor, on_consent_withdrawal},
	{"loan-approval-revocation.v1", &qiao__v1__loan_approval_revocation__descriptor,
	 &qiao__v1__loan_approval_revocation_result__descriptor, on_revocation},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"bank", s_services, sizeof s_services / sizeof s_services[0], s_init};
	return dept_main(argc, argv, &def);
}
