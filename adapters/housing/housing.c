/*
 * housing.c - qiao-housing, the adapter of the housing bureau (住建局) in
 * 带押过户 (proto/housing.proto):
 *
 *   contract-filing.v1      存量房买卖合同网签备案: one filing per 合同编号,
 *                           checked against the 楼盘表 (owners, restrictions,
 *                           one live filing per unit)
 *   escrow-agreement.v1     资金监管协议: 监管子账户 and 监管金额 (≥ 结清金额)
 *   escrow-payment.v1       payments out of escrow: PAYOFF to the old lender,
 *                           then REMAINDER to the seller; balance checked;
 *                           idempotent per 付款编号
 *   escrow-release.v1       解除资金监管: the balance refunded (failure path)
 *   filing-cancellation.v1  撤销网签备案 (failure path)
 *
 * Business refusals the proto models (filed / agreed / released /
 * cancelled false, payment REFUSED) are answers, not records: nothing is
 * stored, so a corrected request may succeed later.  Records are keyed by
 * their idempotency numbers; a number reused for different particulars is
 * REJECTED.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dept.h"
#include "dept_util.h"
#include "housing.pb-c.h"
#include "qiao_envelope.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

#define MAX_FEN 100000000000000LL
#define MAX_PARTIES 32

/* ---- small helpers (the shared ones are in dept_util.h) ----------------- */

/* Evaluate `call` (a transaction body: 0, or -1 with *f set) inside one
 * IMMEDIATE transaction under the database lock, committed when it gave 0,
 * rolled back otherwise; the outcome in the caller's `rc`. */
#define IN_TX(d, db, f, call)                                                                                          \
	do {                                                                                                           \
		db = dept_db_lock(d);                                                                                  \
		rc = dept_exec(db, "BEGIN IMMEDIATE");                                                                 \
		if (rc == 0)                                                                                           \
			rc = (call);                                                                                   \
		else                                                                                                   \
			dept_dberr(f, d, db, "begin");                                                                 \
		if (rc == 0 && dept_exec(db, "COMMIT") != 0)                                                           \
			rc = dept_dberr(f, d, db, "commit");                                                           \
		if (rc != 0)                                                                                           \
			dept_exec(db, "ROLLBACK");                                                                     \
		dept_db_unlock(d);                                                                                     \
	} while (0)

static int s_positive(struct qiao_responder **r, long long v, const char *field)
{
	if (v <= 0 || v > MAX_FEN) {
		dept_error(r, E_BAD, field, "%s must be positive (at most %lld)", field, MAX_FEN);
		return -1;
	}
	return 0;
}

/* "YYYY-MM-DD", a real date no later than today (CST). */
static int s_past_date(const char *s)
{
	int y, m, d;
	char today[11];
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	if (sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3 || y < 1990 || m < 1 || m > 12 || d < 1)
		return -1;
	static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int last = md[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	dept_date(today, 0);
	return d <= last && strcmp(s, today) <= 0 ? 0 : -1;
}

/* ---- contract-filing.v1 ------------------------------------------------- */

struct filing_out {
	int filed;
	char filing_no[72], refusal[520];
	long long filed_ms;
};

static int s_filing_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
		       const Qiao__V1__ContractFilingRequest *m, const char *cert, const char *hash,
		       struct filing_out *o, struct dept_fail *f)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT request_hash, filing_no, filed_ms, status, IFNULL(cancelled_ms, 0) "
					 "FROM contract_filing WHERE contract_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->contract_no);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int same = strcmp(dept_col_text(st, 0), hash) == 0;
		dept_copy(o->filing_no, sizeof o->filing_no, dept_col_text(st, 1));
		o->filed_ms = sqlite3_column_int64(st, 2);
		int cancelled = strcmp(dept_col_text(st, 3), "CANCELLED") == 0;
		sqlite3_finalize(st);
		if (!same)
			return dept_fail(f, E_REJECTED, "contract_no",
					 "合同编号 %.64s is already filed (%s) with other particulars", m->contract_no,
					 o->filing_no);
		if (cancelled) {
			snprintf(o->refusal, sizeof o->refusal, "合同 %.64s 的网签备案 %s 已撤销", m->contract_no,
				 o->filing_no);
			o->filing_no[0] = '\0';
			o->filed_ms = 0;
			return 0;
		}
		o->filed = 1;
		return 0;
	}
	sqlite3_finalize(st);

	st = dept_prep(db, "SELECT cert_no, building_area_dm2, restricted, IFNULL(restriction_reason, '') FROM house "
			   "WHERE unit_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "house");
	dept_bind_text(st, 1, m->unit_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "unit_no", "unit %.40s is not in the 楼盘表", m->unit_no);
	}
	char hcert[128], why[300];
	dept_copy(hcert, sizeof hcert, dept_col_text(st, 0));
	long long area = sqlite3_column_int64(st, 1);
	int restricted = sqlite3_column_int(st, 2);
	dept_copy(why, sizeof why, dept_col_text(st, 3));
	sqlite3_finalize(st);
	if (strcmp(hcert, cert) != 0)
		return dept_fail(f, E_REJECTED, "cert_no", "不动产权证书号 %.100s is not the certificate of unit %s",
				 m->cert_no, m->unit_no);
	if (area != m->building_area_dm2)
		return dept_fail(f, E_REJECTED, "building_area_dm2",
				 "建筑面积 %lld dm² differs from the 楼盘表 (%lld dm²)",
				 (long long)m->building_area_dm2, area);
	if (restricted) {
		snprintf(o->refusal, sizeof o->refusal, "房屋已限制交易（%s），不予网签备案", why);
		return 0;
	}
	/* the sellers are exactly the owners */
	st = dept_prep(db, "SELECT COUNT(*) FROM house_owner WHERE unit_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "house_owner");
	dept_bind_text(st, 1, m->unit_no);
	long long owners = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	long long matched = 0;
	for (size_t i = 0; i < m->n_sellers; i++) {
		st = dept_prep(db, "SELECT COUNT(*) FROM house_owner WHERE unit_no = ?1 AND id_no = ?2");
		if (!st)
			return dept_dberr(f, d, db, "house_owner");
		dept_bind_text(st, 1, m->unit_no);
		dept_bind_text(st, 2, m->sellers[i]->id->id);
		matched += sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_finalize(st);
	}
	if (matched != owners || (long long)m->n_sellers != owners) {
		snprintf(o->refusal, sizeof o->refusal, "出卖人与楼盘表登记的产权人不一致，不予网签备案");
		return 0;
	}
	st = dept_prep(db, "SELECT contract_no FROM contract_filing WHERE unit_no = ?1 AND status = 'FILED'");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->unit_no);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(o->refusal, sizeof o->refusal, "该房屋已有有效的网签备案合同 %.64s，不予重复备案",
			 dept_col_text(st, 0));
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);

	long long seq = dept_next_seq(db, "BA");
	if (seq < 0)
		return dept_dberr(f, d, db, "doc_sequence");
	char today[11];
	dept_date(today, 0);
	snprintf(o->filing_no, sizeof o->filing_no, "BA%.6s-%.4s-%06lld", m->unit_no, today, seq);
	o->filed_ms = qiao_now_ms();
	st = dept_prep(
		db,
		"INSERT INTO contract_filing (contract_no, filing_no, unit_no, cert_no, price_fen, payment_method, "
		"signed_date, building_area_dm2, with_mortgage, status, filed_ms, request_hash, requester, case_id) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'FILED', ?10, ?11, ?12, ?13)");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->contract_no);
	dept_bind_text(st, 2, o->filing_no);
	dept_bind_text(st, 3, m->unit_no);
	dept_bind_text(st, 4, cert);
	dept_bind_int(st, 5, m->price_fen);
	dept_bind_int(st, 6, m->payment_method);
	dept_bind_text(st, 7, m->signed_date);
	dept_bind_int(st, 8, m->building_area_dm2);
	dept_bind_int(st, 9, m->with_mortgage ? 1 : 0);
	dept_bind_int(st, 10, o->filed_ms);
	dept_bind_text(st, 11, hash);
	dept_bind_text(st, 12, req->requester);
	dept_bind_text(st, 13, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "contract_filing insert");
	for (int role = 0; role < 2; role++) {
		Qiao__V1__Party *const *ps = role ? m->buyers : m->sellers;
		size_t n = role ? m->n_buyers : m->n_sellers;
		for (size_t i = 0; i < n; i++) {
			st = dept_prep(db, "INSERT INTO filing_party (contract_no, role, seq, name, id_type, id_no) "
					   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
			if (!st)
				return dept_dberr(f, d, db, "filing_party");
			dept_bind_text(st, 1, m->contract_no);
			dept_bind_text(st, 2, role ? "BUYER" : "SELLER");
			dept_bind_int(st, 3, (long long)i);
			dept_bind_text(st, 4, ps[i]->name);
			dept_bind_text(st, 5, dept_party_type(ps[i]));
			dept_bind_text(st, 6, ps[i]->id->id);
			if (dept_run(st) != 0)
				return dept_dberr(f, d, db, "filing_party insert");
		}
	}
	o->filed = 1;
	return 0;
}

static void on_contract_filing(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			       struct qiao_responder *r)
{
	const Qiao__V1__ContractFilingRequest *m = (const Qiao__V1__ContractFilingRequest *)body;
	if (dept_check_printable(&r, m->contract_no, "contract_no", 64, 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, m->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->cert_no, "cert_no", 0) != 0 ||
	    s_positive(&r, m->price_fen, "price_fen") != 0)
		return;
	if (m->n_sellers < 1 || m->n_sellers > MAX_PARTIES || m->n_buyers < 1 || m->n_buyers > MAX_PARTIES) {
		dept_error(&r, E_BAD, m->n_sellers < 1 || m->n_sellers > MAX_PARTIES ? "sellers" : "buyers",
			   "sellers and buyers: 1 to %d each", MAX_PARTIES);
		return;
	}
	char fld[32];
	for (size_t i = 0; i < m->n_sellers + m->n_buyers; i++) {
		int seller = i < m->n_sellers;
		size_t k = seller ? i : i - m->n_sellers;
		const Qiao__V1__Party *p = seller ? m->sellers[k] : m->buyers[k];
		snprintf(fld, sizeof fld, "%s[%zu]", seller ? "sellers" : "buyers", k);
		if (dept_check_party(&r, p, fld, 0) != 0)
			return;
		for (size_t j = 0; j < i; j++) {
			const Qiao__V1__Party *q = j < m->n_sellers ? m->sellers[j] : m->buyers[j - m->n_sellers];
			if (strcmp(p->id->id, q->id->id) == 0) {
				dept_error(&r, E_BAD, fld, "%s names a party that is already a seller or buyer", fld);
				return;
			}
		}
	}
	if (m->payment_method < QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_FULL ||
	    m->payment_method > QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_COMBINED_LOAN) {
		dept_error(&r, E_BAD, "payment_method", "payment_method: a valid PaymentMethod is required");
		return;
	}
	if (s_past_date(m->signed_date) != 0) {
		dept_error(&r, E_BAD, "signed_date", "signed_date: a date YYYY-MM-DD not after today is required");
		return;
	}
	if (s_positive(&r, m->building_area_dm2, "building_area_dm2") != 0)
		return;
	char cert[128], hash[65];
	dept_norm_id(QIAO_ID_CERT, m->cert_no, cert, sizeof cert);
	dept_body_hash(req, hash);
	struct filing_out o = {0};
	struct dept_fail f = {0};
	sqlite3 *db;
	int rc;
	IN_TX(d, db, &f, s_filing_tx(d, db, req, m, cert, hash, &o, &f));
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__ContractFilingResult out = QIAO__V1__CONTRACT_FILING_RESULT__INIT;
	out.filed = o.filed;
	out.contract_no = m->contract_no;
	out.filing_no = o.filed ? o.filing_no : "";
	out.filed_ms = o.filed ? o.filed_ms : 0;
	out.refusal_reason = o.filed ? "" : o.refusal;
	dept_reply(&r, &out.base);
}

/* ---- escrow-agreement.v1 ------------------------------------------------ */

struct agreement_out {
	int agreed;
	char agreement_no[72], acc_name[128], acc_no[48], bank_name[128], bank_code[16], refusal[520];
	long long amount, agreed_ms;
};

static int s_agreement_load(sqlite3 *db, const char *contract_no, char hash[65], char status[16],
			    struct agreement_out *o)
{
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT agreement_no, escrow_account_name, escrow_account_no, escrow_bank_name, "
				     "IFNULL(escrow_bank_code, ''), escrow_amount_fen, agreed_ms, request_hash, status "
				     "FROM escrow_agreement WHERE contract_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, contract_no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dept_copy(o->agreement_no, sizeof o->agreement_no, dept_col_text(st, 0));
		dept_copy(o->acc_name, sizeof o->acc_name, dept_col_text(st, 1));
		dept_copy(o->acc_no, sizeof o->acc_no, dept_col_text(st, 2));
		dept_copy(o->bank_name, sizeof o->bank_name, dept_col_text(st, 3));
		dept_copy(o->bank_code, sizeof o->bank_code, dept_col_text(st, 4));
		o->amount = sqlite3_column_int64(st, 5);
		o->agreed_ms = sqlite3_column_int64(st, 6);
		dept_copy(hash, 65, dept_col_text(st, 7));
		dept_copy(status, 16, dept_col_text(st, 8));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void s_bind_account(sqlite3_stmt *st, int i, const Qiao__V1__BankAccount *a)
{
	dept_bind_text(st, i, a ? a->account_name : NULL);
	dept_bind_text(st, i + 1, a ? a->account_no : NULL);
	dept_bind_text(st, i + 2, a ? a->bank_name : NULL);
	dept_bind_text(st, i + 3, a ? a->bank_code : NULL);
}

static int s_agreement_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			  const Qiao__V1__EscrowAgreementRequest *m, const char *hash, struct agreement_out *o,
			  struct dept_fail *f)
{
	char old_hash[65] = "", status[16] = "";
	int rc = s_agreement_load(db, m->contract_no, old_hash, status, o);
	if (rc < 0)
		return dept_dberr(f, d, db, "escrow_agreement");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "contract_no",
					 "contract %.64s already has escrow agreement %s with other particulars",
					 m->contract_no, o->agreement_no);
		if (strcmp(status, "RELEASED") == 0) {
			snprintf(o->refusal, sizeof o->refusal, "资金监管协议 %s 已解除", o->agreement_no);
			return 0;
		}
		o->agreed = 1;
		return 0;
	}
	sqlite3_stmt *st = dept_prep(db, "SELECT filing_no, status, price_fen, with_mortgage, payment_method "
					 "FROM contract_filing WHERE contract_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->contract_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "contract_no", "no filed contract %.64s", m->contract_no);
	}
	int bad_filing = strcmp(dept_col_text(st, 0), m->filing_no) != 0;
	char fstatus[16];
	dept_copy(fstatus, sizeof fstatus, dept_col_text(st, 1));
	long long price = sqlite3_column_int64(st, 2);
	int with_mortgage = sqlite3_column_int(st, 3);
	int method = sqlite3_column_int(st, 4);
	sqlite3_finalize(st);
	if (bad_filing)
		return dept_fail(f, E_NOTFOUND, "filing_no", "contract %.64s has no filing %.64s", m->contract_no,
				 m->filing_no);
	if (strcmp(fstatus, "FILED") != 0) {
		snprintf(o->refusal, sizeof o->refusal, "网签备案状态为 %s，不予签订资金监管协议", fstatus);
		return 0;
	}
	/* what a 带押过户 and a loan need, now that the filing says which */
	if (with_mortgage) {
		if (m->payoff_amount_fen <= 0)
			return dept_fail(f, E_BAD, "payoff_amount_fen", "payoff_amount_fen is required in 带押过户");
		if (!m->payoff_consent_no[0])
			return dept_fail(f, E_BAD, "payoff_consent_no", "payoff_consent_no is required in 带押过户");
		if (!m->payoff_account)
			return dept_fail(f, E_BAD, "payoff_account", "payoff_account is required in 带押过户");
		if (!m->old_lender)
			return dept_fail(f, E_BAD, "old_lender", "old_lender is required in 带押过户");
	}
	if (method != QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_FULL && !m->new_lender)
		return dept_fail(f, E_BAD, "new_lender", "new_lender is required when a loan funds the purchase");
	if (m->escrow_amount_fen > price) {
		snprintf(o->refusal, sizeof o->refusal, "监管金额 %lld.%02lld 元超过成交价 %lld.%02lld 元",
			 (long long)m->escrow_amount_fen / 100, (long long)m->escrow_amount_fen % 100, price / 100,
			 price % 100);
		return 0;
	}
	/* the escrow bank: the new lender's when it keeps an escrow account */
	st = dept_prep(db, "SELECT account_no, account_name, bank_name, IFNULL(bank_code, '') FROM escrow_bank_account "
			   "WHERE active = 1 ORDER BY (bank_uscc = ?1) DESC, account_no LIMIT 1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_bank_account");
	dept_bind_text(st, 1, m->new_lender ? m->new_lender->id->id : "");
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_INTERNAL, NULL, "no active escrow account is configured");
	}
	char base[48];
	dept_copy(base, sizeof base, dept_col_text(st, 0));
	dept_copy(o->acc_name, sizeof o->acc_name, dept_col_text(st, 1));
	dept_copy(o->bank_name, sizeof o->bank_name, dept_col_text(st, 2));
	dept_copy(o->bank_code, sizeof o->bank_code, dept_col_text(st, 3));
	sqlite3_finalize(st);
	long long seq = dept_next_seq(db, "ZJJG");
	if (seq < 0)
		return dept_dberr(f, d, db, "doc_sequence");
	char today[11];
	dept_date(today, 0);
	snprintf(o->acc_no, sizeof o->acc_no, "%.20s%06lld", base, seq); /* 监管子账号 */
	snprintf(o->agreement_no, sizeof o->agreement_no, "ZJJG150600-%.4s-%06lld", today, seq);
	o->amount = m->escrow_amount_fen;
	o->agreed_ms = qiao_now_ms();
	st = dept_prep(
		db,
		"INSERT INTO escrow_agreement (agreement_no, contract_no, filing_no, escrow_account_no, "
		"escrow_account_name, escrow_bank_name, escrow_bank_code, escrow_amount_fen, payoff_amount_fen, "
		"payoff_consent_no, payoff_account_name, payoff_account_no, payoff_bank_name, payoff_bank_code, "
		"seller_account_name, seller_account_no, seller_bank_name, seller_bank_code, refund_account_name, "
		"refund_account_no, refund_bank_name, refund_bank_code, old_lender_name, old_lender_uscc, "
		"new_lender_name, new_lender_uscc, balance_fen, status, agreed_ms, request_hash, requester, case_id) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
		"?21, ?22, ?23, ?24, ?25, ?26, ?8, 'AGREED', ?27, ?28, ?29, ?30)");
	if (!st)
		return dept_dberr(f, d, db, "escrow_agreement");
	dept_bind_text(st, 1, o->agreement_no);
	dept_bind_text(st, 2, m->contract_no);
	dept_bind_text(st, 3, m->filing_no);
	dept_bind_text(st, 4, o->acc_no);
	dept_bind_text(st, 5, o->acc_name);
	dept_bind_text(st, 6, o->bank_name);
	dept_bind_text(st, 7, o->bank_code);
	dept_bind_int(st, 8, m->escrow_amount_fen);
	dept_bind_int(st, 9, m->payoff_amount_fen);
	dept_bind_text(st, 10, m->payoff_consent_no);
	s_bind_account(st, 11, m->payoff_account);
	s_bind_account(st, 15, m->seller_account);
	s_bind_account(st, 19, m->refund_account);
	dept_bind_text(st, 23, m->old_lender ? m->old_lender->name : NULL);
	dept_bind_text(st, 24, m->old_lender ? m->old_lender->id->id : NULL);
	dept_bind_text(st, 25, m->new_lender ? m->new_lender->name : NULL);
	dept_bind_text(st, 26, m->new_lender ? m->new_lender->id->id : NULL);
	dept_bind_int(st, 27, o->agreed_ms);
	dept_bind_text(st, 28, hash);
	dept_bind_text(st, 29, req->requester);
	dept_bind_text(st, 30, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "escrow_agreement insert");
	o->agreed = 1;
	return 0;
}

static void on_escrow_agreement(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				struct qiao_responder *r)
{
	const Qiao__V1__EscrowAgreementRequest *m = (const Qiao__V1__EscrowAgreementRequest *)body;
	if (dept_check_printable(&r, m->contract_no, "contract_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->filing_no, "filing_no", 64, 0) != 0 ||
	    s_positive(&r, m->escrow_amount_fen, "escrow_amount_fen") != 0)
		return;
	if (m->payoff_amount_fen < 0 || m->payoff_amount_fen > MAX_FEN) {
		dept_error(&r, E_BAD, "payoff_amount_fen", "payoff_amount_fen: an amount in fen");
		return;
	}
	if (m->escrow_amount_fen < m->payoff_amount_fen) {
		dept_error(&r, E_BAD, "escrow_amount_fen",
			   "escrow_amount_fen %lld is below the payoff amount %lld: 监管金额 must cover 结清金额",
			   (long long)m->escrow_amount_fen, (long long)m->payoff_amount_fen);
		return;
	}
	if (dept_check_printable(&r, m->payoff_consent_no, "payoff_consent_no", 64, 1) != 0 ||
	    (m->payoff_account && dept_check_account(&r, m->payoff_account, "payoff_account") != 0) ||
	    dept_check_account(&r, m->seller_account, "seller_account") != 0 ||
	    dept_check_account(&r, m->refund_account, "refund_account") != 0 ||
	    (m->old_lender && dept_check_party(&r, m->old_lender, "old_lender", 1) != 0) ||
	    (m->new_lender && dept_check_party(&r, m->new_lender, "new_lender", 1) != 0))
		return;
	char hash[65];
	dept_body_hash(req, hash);
	struct agreement_out o = {0};
	struct dept_fail f = {0};
	sqlite3 *db;
	int rc;
	IN_TX(d, db, &f, s_agreement_tx(d, db, req, m, hash, &o, &f));
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__BankAccount acc = QIAO__V1__BANK_ACCOUNT__INIT;
	acc.account_name = o.acc_name;
	acc.account_no = o.acc_no;
	acc.bank_name = o.bank_name;
	acc.bank_code = o.bank_code;
	Qiao__V1__EscrowAgreementResult out = QIAO__V1__ESCROW_AGREEMENT_RESULT__INIT;
	out.agreed = o.agreed;
	if (o.agreed) {
		out.agreement_no = o.agreement_no;
		out.escrow_account = &acc;
		out.escrow_amount_fen = o.amount;
		out.agreed_ms = o.agreed_ms;
	} else {
		out.refusal_reason = o.refusal;
	}
	dept_reply(&r, &out.base);
}

/* ---- escrow-payment.v1 -------------------------------------------------- */

struct payment_out {
	int paid;
	char transaction_no[72], refusal[520];
	long long amount, paid_ms, balance;
};

static int s_payment_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			const Qiao__V1__EscrowPaymentRequest *m, const char *new_cert, const char *hash,
			struct payment_out *o, struct dept_fail *f)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT request_hash, transaction_no, amount_fen, paid_ms, balance_after_fen "
					 "FROM escrow_payment WHERE payment_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_payment");
	dept_bind_text(st, 1, m->payment_no);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int same = strcmp(dept_col_text(st, 0), hash) == 0;
		dept_copy(o->transaction_no, sizeof o->transaction_no, dept_col_text(st, 1));
		o->amount = sqlite3_column_int64(st, 2);
		o->paid_ms = sqlite3_column_int64(st, 3);
		o->balance = sqlite3_column_int64(st, 4);
		sqlite3_finalize(st);
		if (!same)
			return dept_fail(f, E_REJECTED, "payment_no",
					 "payment_no %.64s was already used for another payment", m->payment_no);
		o->paid = 1;
		return 0;
	}
	sqlite3_finalize(st);
	st = dept_prep(db,
		       "SELECT status, balance_fen, payoff_amount_fen, IFNULL(payoff_account_no, ''), "
		       "IFNULL(payoff_account_name, ''), seller_account_no, seller_account_name, contract_no, "
		       "(SELECT COUNT(*) FROM escrow_payment p WHERE p.agreement_no = a.agreement_no AND p.kind = 1) "
		       "FROM escrow_agreement a WHERE agreement_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_agreement");
	dept_bind_text(st, 1, m->agreement_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "agreement_no", "no escrow agreement %.64s", m->agreement_no);
	}
	char status[16], pay_no[48], pay_name[128], sel_no[48], sel_name[128], contract[72];
	dept_copy(status, sizeof status, dept_col_text(st, 0));
	long long balance = sqlite3_column_int64(st, 1);
	long long payoff = sqlite3_column_int64(st, 2);
	dept_copy(pay_no, sizeof pay_no, dept_col_text(st, 3));
	dept_copy(pay_name, sizeof pay_name, dept_col_text(st, 4));
	dept_copy(sel_no, sizeof sel_no, dept_col_text(st, 5));
	dept_copy(sel_name, sizeof sel_name, dept_col_text(st, 6));
	dept_copy(contract, sizeof contract, dept_col_text(st, 7));
	int payoff_done = sqlite3_column_int(st, 8) > 0;
	sqlite3_finalize(st);
	int is_payoff = m->kind == QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_PAYOFF;
	const char *want_no = is_payoff ? pay_no : sel_no, *want_name = is_payoff ? pay_name : sel_name;

	if (strcmp(status, "RELEASED") == 0)
		snprintf(o->refusal, sizeof o->refusal, "资金监管协议 %.64s 已解除，不予支付", m->agreement_no);
	else if (strcmp(status, "COMPLETED") == 0)
		snprintf(o->refusal, sizeof o->refusal, "资金监管协议 %.64s 的监管资金已支付完毕", m->agreement_no);
	else if (is_payoff && payoff <= 0)
		snprintf(o->refusal, sizeof o->refusal, "该监管协议未约定结清款");
	else if (is_payoff && payoff_done)
		snprintf(o->refusal, sizeof o->refusal, "结清款已支付，不重复支付");
	else if (!is_payoff && payoff > 0 && !payoff_done)
		snprintf(o->refusal, sizeof o->refusal, "结清款尚未支付给原贷款行，不予支付余款");
	else if (strcmp(m->payee->account_no, want_no) != 0 || strcmp(m->payee->account_name, want_name) != 0)
		snprintf(o->refusal, sizeof o->refusal, "收款账户与监管协议约定的%s不符",
			 is_payoff ? "结清收款账户" : "出卖人收款账户");
	else if (is_payoff && m->amount_fen != payoff)
		snprintf(o->refusal, sizeof o->refusal,
			 "结清款金额 %lld.%02lld 元与协议约定的结清金额 %lld.%02lld 元不符",
			 (long long)m->amount_fen / 100, (long long)m->amount_fen % 100, payoff / 100, payoff % 100);
	else if (m->amount_fen > balance)
		snprintf(o->refusal, sizeof o->refusal, "监管余额不足：余额 %lld.%02lld 元", balance / 100,
			 balance % 100);
	if (o->refusal[0]) {
		o->balance = balance;
		return 0;
	}
	long long seq = dept_next_seq(db, "ZF");
	if (seq < 0)
		return dept_dberr(f, d, db, "doc_sequence");
	char today[11];
	dept_date(today, 0);
	snprintf(o->transaction_no, sizeof o->transaction_no, "JGZF%.4s%.2s%.2s%08lld", today, today + 5, today + 8,
		 seq);
	o->amount = m->amount_fen;
	o->paid_ms = qiao_now_ms();
	o->balance = balance - m->amount_fen;
	st = dept_prep(
		db, "INSERT INTO escrow_payment (payment_no, agreement_no, kind, payee_name, payee_account_no, "
		    "payee_bank_name, amount_fen, new_cert_no, cancellation_slbh, transaction_no, paid_ms, "
		    "balance_after_fen, request_hash, requester, case_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
		    "?10, ?11, ?12, ?13, ?14, ?15)");
	if (!st)
		return dept_dberr(f, d, db, "escrow_payment");
	dept_bind_text(st, 1, m->payment_no);
	dept_bind_text(st, 2, m->agreement_no);
	dept_bind_int(st, 3, m->kind);
	dept_bind_text(st, 4, m->payee->account_name);
	dept_bind_text(st, 5, m->payee->account_no);
	dept_bind_text(st, 6, m->payee->bank_name);
	dept_bind_int(st, 7, m->amount_fen);
	dept_bind_text(st, 8, new_cert);
	dept_bind_text(st, 9, m->cancellation_slbh);
	dept_bind_text(st, 10, o->transaction_no);
	dept_bind_int(st, 11, o->paid_ms);
	dept_bind_int(st, 12, o->balance);
	dept_bind_text(st, 13, hash);
	dept_bind_text(st, 14, req->requester);
	dept_bind_text(st, 15, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "escrow_payment insert");
	st = dept_prep(db, "UPDATE escrow_agreement SET balance_fen = ?2, paid_out_fen = paid_out_fen + ?3, "
			   "status = CASE WHEN ?2 = 0 THEN 'COMPLETED' ELSE status END WHERE agreement_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_agreement");
	dept_bind_text(st, 1, m->agreement_no);
	dept_bind_int(st, 2, o->balance);
	dept_bind_int(st, 3, m->amount_fen);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "escrow_agreement update");
	/* the payment's evidence: the transfer is registered */
	st = dept_prep(db, "UPDATE contract_filing SET status = 'REGISTERED', new_cert_no = ?2 WHERE contract_no = ?1 "
			   "AND status = 'FILED'");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, contract);
	dept_bind_text(st, 2, new_cert);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "contract_filing update");
	o->paid = 1;
	return 0;
}

static void on_escrow_payment(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			      struct qiao_responder *r)
{
	const Qiao__V1__EscrowPaymentRequest *m = (const Qiao__V1__EscrowPaymentRequest *)body;
	if (dept_check_printable(&r, m->agreement_no, "agreement_no", 64, 0) != 0 ||
	    dept_check_ref(&r, m->payment_no, "payment_no") != 0)
		return;
	if (m->kind != QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_PAYOFF &&
	    m->kind != QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_REMAINDER) {
		dept_error(&r, E_BAD, "kind", "kind: PAYOFF or REMAINDER");
		return;
	}
	if (dept_check_account(&r, m->payee, "payee") != 0 || s_positive(&r, m->amount_fen, "amount_fen") != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->new_cert_no, "new_cert_no", 0) != 0 ||
	    dept_check_printable(&r, m->cancellation_slbh, "cancellation_slbh", 64,
				 m->kind != QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_REMAINDER) != 0)
		return;
	char cert[128], hash[65];
	dept_norm_id(QIAO_ID_CERT, m->new_cert_no, cert, sizeof cert);
	dept_body_hash(req, hash);
	struct payment_out o = {0};
	struct dept_fail f = {0};
	sqlite3 *db;
	int rc;
	IN_TX(d, db, &f, s_payment_tx(d, db, req, m, cert, hash, &o, &f));
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__EscrowPaymentResult out = QIAO__V1__ESCROW_PAYMENT_RESULT__INIT;
	out.payment_no = m->payment_no;
	out.balance_fen = o.balance;
	if (o.paid) {
		out.status = QIAO__V1__ESCROW_PAYMENT_STATUS__ESCROW_PAYMENT_STATUS_PAID;
		out.amount_fen = o.amount;
		out.paid_ms = o.paid_ms;
		out.transaction_no = o.transaction_no;
	} else {
		out.status = QIAO__V1__ESCROW_PAYMENT_STATUS__ESCROW_PAYMENT_STATUS_REFUSED;
		out.refusal_reason = o.refusal;
	}
	dept_reply(&r, &out.base);
}

/* ---- escrow-release.v1 -------------------------------------------------- */

struct release_out {
	int released;
	long long when, refunded;
	char refusal[300];
};

static int s_release_tx(struct dept *d, sqlite3 *db, const Qiao__V1__EscrowRelease *m, struct release_out *o,
			struct dept_fail *f)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT status, balance_fen, paid_out_fen, IFNULL(released_ms, 0), "
					 "IFNULL(refunded_fen, 0) FROM escrow_agreement WHERE agreement_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_agreement");
	dept_bind_text(st, 1, m->agreement_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "agreement_no", "no escrow agreement %.64s", m->agreement_no);
	}
	char status[16];
	dept_copy(status, sizeof status, dept_col_text(st, 0));
	long long balance = sqlite3_column_int64(st, 1), paid_out = sqlite3_column_int64(st, 2);
	o->when = sqlite3_column_int64(st, 3);
	o->refunded = sqlite3_column_int64(st, 4);
	sqlite3_finalize(st);
	if (strcmp(status, "RELEASED") == 0) {
		o->released = 1;
		return 0;
	}
	o->when = o->refunded = 0;
	if (paid_out > 0) {
		snprintf(o->refusal, sizeof o->refusal, "监管资金已支付（结清款已付原贷款行），不能解除资金监管");
		return 0;
	}
	o->when = qiao_now_ms();
	o->refunded = balance;
	st = dept_prep(db, "UPDATE escrow_agreement SET status = 'RELEASED', balance_fen = 0, released_ms = ?2, "
			   "refunded_fen = ?3, release_reason = ?4, release_note = ?5 WHERE agreement_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "escrow_agreement");
	dept_bind_text(st, 1, m->agreement_no);
	dept_bind_int(st, 2, o->when);
	dept_bind_int(st, 3, o->refunded);
	dept_bind_int(st, 4, m->reason);
	dept_bind_text(st, 5, m->reason_note);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "escrow_agreement release");
	o->released = 1;
	return 0;
}

static void on_escrow_release(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			      struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__EscrowRelease *m = (const Qiao__V1__EscrowRelease *)body;
	if (dept_check_printable(&r, m->agreement_no, "agreement_no", 64, 0) != 0 ||
	    dept_check_unwind_reason(&r, m->reason, m->reason_note, "reason") != 0)
		return;
	struct release_out o = {0};
	struct dept_fail f = {0};
	sqlite3 *db;
	int rc;
	IN_TX(d, db, &f, s_release_tx(d, db, m, &o, &f));
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__EscrowReleaseResult out = QIAO__V1__ESCROW_RELEASE_RESULT__INIT;
	out.released = o.released;
	out.released_ms = o.when;
	out.refunded_fen = o.refunded;
	out.refusal_reason = o.refusal;
	dept_reply(&r, &out.base);
}

/* ---- filing-cancellation.v1 --------------------------------------------- */

static int s_cancel_tx(struct dept *d, sqlite3 *db, const Qiao__V1__FilingCancellation *m, int *cancelled,
		       long long *when, char *refusal, size_t rn, struct dept_fail *f)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT contract_no, status, IFNULL(cancelled_ms, 0), "
					 "(SELECT status FROM escrow_agreement e WHERE e.contract_no = c.contract_no) "
					 "FROM contract_filing c WHERE filing_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->filing_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "filing_no", "no filing %.64s", m->filing_no);
	}
	int other = strcmp(dept_col_text(st, 0), m->contract_no) != 0;
	char status[16], escrow[16];
	dept_copy(status, sizeof status, dept_col_text(st, 1));
	*when = sqlite3_column_int64(st, 2);
	dept_copy(escrow, sizeof escrow, dept_col_text(st, 3));
	sqlite3_finalize(st);
	if (other)
		return dept_fail(f, E_REJECTED, "contract_no", "filing %.64s is not of contract %.64s", m->filing_no,
				 m->contract_no);
	if (strcmp(status, "CANCELLED") == 0) {
		*cancelled = 1;
		return 0;
	}
	*when = 0;
	if (strcmp(status, "REGISTERED") == 0) {
		snprintf(refusal, rn, "已办理转移登记，不能撤销网签备案");
		return 0;
	}
	if (strcmp(escrow, "AGREED") == 0 || strcmp(escrow, "COMPLETED") == 0) {
		snprintf(refusal, rn, "资金监管协议未解除，请先解除资金监管");
		return 0;
	}
	*when = qiao_now_ms();
	st = dept_prep(db, "UPDATE contract_filing SET status = 'CANCELLED', cancelled_ms = ?2, cancel_reason = ?3, "
			   "cancel_note = ?4 WHERE filing_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "contract_filing");
	dept_bind_text(st, 1, m->filing_no);
	dept_bind_int(st, 2, *when);
	dept_bind_int(st, 3, m->reason);
	dept_bind_text(st, 4, m->reason_note);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "contract_filing cancel");
	*cancelled = 1;
	return 0;
}

static void on_filing_cancellation(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				   struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__FilingCancellation *m = (const Qiao__V1__FilingCancellation *)body;
	if (dept_check_printable(&r, m->filing_no, "filing_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->contract_no, "contract_no", 64, 0) != 0 ||
	    dept_check_unwind_reason(&r, m->reason, m->reason_note, "reason") != 0)
		return;
	int cancelled = 0;
	long long when = 0;
	char refusal[300] = "";
	struct dept_fail f = {0};
	sqlite3 *db;
	int rc;
	IN_TX(d, db, &f, s_cancel_tx(d, db, m, &cancelled, &when, refusal, sizeof refusal, &f));
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		return;
	}
	Qiao__V1__FilingCancellationResult out = QIAO__V1__FILING_CANCELLATION_RESULT__INIT;
	out.cancelled = cancelled;
	out.cancelled_ms = when;
	out.refusal_reason = refusal;
	dept_reply(&r, &out.base);
}

static const struct dept_service s_services[] = {
	{"contract-filing.v1", &qiao__v1__contract_filing_request__descriptor,
	 &qiao__v1__contract_filing_result__descriptor, on_contract_filing},
	{"escrow-agreement.v1", &qiao__v1__escrow_agreement_request__descriptor,
	 &qiao__v1__escrow_agreement_result__descriptor, on_escrow_agreement},
	{"escrow-payment.v1", &qiao__v1__escrow_payment_request__descriptor,
	 &qiao__v1__escrow_payment_result__descriptor, on_escrow_payment},
	{"escrow-release.v1", &qiao__v1__escrow_release__descriptor, &qiao__v1__escrow_release_result__descriptor,
	 on_escrow_release},
	{"filing-cancellation.v1", &qiao__v1__filing_cancellation__descriptor,
	 &qiao__v1__filing_cancellation_result__descriptor, on_filing_cancellation},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"housing", s_services, sizeof s_services / sizeof s_services[0], NULL};
	return dept_main(argc, argv, &def);
}
