/*
 * tax.c - qiao-tax, the adapter of the tax bureau (税务局) in 带押过户
 * (proto/tax.proto, proto/housing.proto):
 *
 *   tax-assessment.v1  TaxAssessmentRequest -> TaxClearance
 *       assesses the taxes of a transfer from the bureau's rate table
 *       (契税 of the buyer; 增值税 and its surcharges, 个人所得税 of the
 *       seller; 印花税), with the 计税价格 the higher of the declared price
 *       and the bureau's 评估价; collects them (三方协议) and records each
 *       payment with its 税票号.  Idempotent per contract_no.  A party
 *       with outstanding arrears (欠税) is refused (REJECTED).
 *   filing-notice.v1   FilingNotice -> FilingNoticeResult
 *       the housing bureau's filing (网签备案) of the contract; once
 *       received, an assessment of that contract must agree with it.
 *
 * and in 企业开办 (proto/tax.proto, ops/workflows/qiye-kaiban.wf):
 *
 *   taxpayer-registration.v1  TaxpayerRegistrationRequest -> TaxpayerRegistration
 *       新办纳税人套餐: confirms the registration the market regulator
 *       shared (登记信息确认, with the officers and investors), assigns the
 *       主管税务机关 by the division of the USCC, determines the levies
 *       from the rule table (税费种认定) and the invoice credit lines
 *       (发票票种核定).  Idempotent per registration_no (same number, same
 *       request: the registration as recorded; other request: REJECTED).
 *       Refused (status REFUSED, nothing recorded, so it may be asked
 *       again) when the legal representative or the financial officer is
 *       tied to a 非正常户 or the division is not the bureau's.
 *   taxpayer-registration-cancel.v1  TaxpayerRegistrationCancelRequest -> TaxpayerRegistration
 *       withdraws a registration (the compensation of 企业开办);
 *       idempotent; an unknown number is NOT_FOUND.
 *
 * Amounts are integer fen; base × rate is rounded half up to the fen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dept.h"
#include "dept_util.h"
#include "housing.pb-c.h"
#include "qiao_envelope.h"
#include "tax.pb-c.h"

#define E_BAD QIAO__V1__ERROR_CODE__BAD_REQUEST
#define E_NOTFOUND QIAO__V1__ERROR_CODE__NOT_FOUND
#define E_REJECTED QIAO__V1__ERROR_CODE__REJECTED
#define E_INTERNAL QIAO__V1__ERROR_CODE__INTERNAL

#define MAX_FEN 100000000000000LL
#define MAX_PARTIES 32
#define MAX_ITEMS 64
#define MAX_RATES 128

/* ---- small helpers (the shared ones are in dept_util.h) ----------------- */

static int s_positive(struct qiao_responder **r, long long v, const char *field)
{
	if (v <= 0 || v > MAX_FEN) {
		dept_error(r, E_BAD, field, "%s must be positive (at most %lld)", field, MAX_FEN);
		return -1;
	}
	return 0;
}

/* Sellers and buyers: 1..32 each, valid, nobody twice. */
static int s_parties(struct qiao_responder **r, Qiao__V1__Party *const *sellers, size_t ns,
		     Qiao__V1__Party *const *buyers, size_t nb)
{
	if (ns < 1 || ns > MAX_PARTIES) {
		dept_error(r, E_BAD, "sellers", "sellers: 1 to %d are required", MAX_PARTIES);
		return -1;
	}
	if (nb < 1 || nb > MAX_PARTIES) {
		dept_error(r, E_BAD, "buyers", "buyers: 1 to %d are required", MAX_PARTIES);
		return -1;
	}
	char f[32];
	for (size_t i = 0; i < ns; i++) {
		snprintf(f, sizeof f, "sellers[%zu]", i);
		if (dept_check_party(r, sellers[i], f, 0) != 0)
			return -1;
	}
	for (size_t i = 0; i < nb; i++) {
		snprintf(f, sizeof f, "buyers[%zu]", i);
		if (dept_check_party(r, buyers[i], f, 0) != 0)
			return -1;
	}
	for (size_t i = 0; i < ns + nb; i++)
		for (size_t k = 0; k < i; k++) {
			const Qiao__V1__Party *a = i < ns ? sellers[i] : buyers[i - ns];
			const Qiao__V1__Party *b = k < ns ? sellers[k] : buyers[k - ns];
			if (strcmp(a->id->id, b->id->id) == 0) {
				snprintf(f, sizeof f, "%s[%zu]", i < ns ? "sellers" : "buyers", i < ns ? i : i - ns);
				dept_error(r, E_BAD, f, "%s names a party that is already a seller or buyer", f);
				return -1;
			}
		}
	return 0;
}

/* Full years from "YYYY-MM-DD" `from` to `to`; -1 when either is bad. */
static int s_years(const char *from, const char *to)
{
	int y1, m1, d1, y2, m2, d2;
	if (sscanf(from, "%4d-%2d-%2d", &y1, &m1, &d1) != 3 || sscanf(to, "%4d-%2d-%2d", &y2, &m2, &d2) != 3)
		return -1;
	int y = y2 - y1 - (m2 < m1 || (m2 == m1 && d2 < d1));
	return y < 0 ? 0 : y;
}

/* ---- tax-assessment.v1 -------------------------------------------------- */

struct rate {
	long long id;
	int type;
	char name[48], role[8], base[16];
	long long ppm;
	int has_amin, has_amax, has_hmin, has_hmax, has_ymin, has_ymax, has_only;
	long long amin, amax, hmin, hmax, ymin, ymax, only;
};

/* The facts the rate conditions are tested on. */
struct facts {
	long long area; /* dm² */
	int homes;      /* buyers' household homes; -1 unknown */
	int hold_years; /* the seller's holding; -1 unknown */
	int only_home;  /* 0/1; -1 unknown */
};

static int s_rate_applies(const struct rate *t, const struct facts *x)
{
	if ((t->has_amin && x->area < t->amin) || (t->has_amax && x->area > t->amax))
		return 0;
	if ((t->has_hmin || t->has_hmax) && x->homes < 0)
		return 0;
	if ((t->has_hmin && x->homes < t->hmin) || (t->has_hmax && x->homes > t->hmax))
		return 0;
	if ((t->has_ymin || t->has_ymax) && x->hold_years < 0)
		return 0;
	if ((t->has_ymin && x->hold_years < t->ymin) || (t->has_ymax && x->hold_years >= t->ymax))
		return 0;
	if (t->has_only && x->only_home != t->only)
		return 0;
	return 1;
}

static int s_load_rates(sqlite3 *db, const char *today, struct rate *rt, size_t *n)
{
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT rate_id, tax_type, tax_name, payer_role, base, rate_ppm, area_min_dm2, "
				     "area_max_dm2, homes_min, homes_max, hold_min_years, hold_max_years, only_home "
				     "FROM tax_rate WHERE effective_from <= ?1 AND (effective_to IS NULL OR "
				     "effective_to >= ?1) ORDER BY tax_type, payer_role, rate_id");
	if (!st)
		return -1;
	dept_bind_text(st, 1, today);
	*n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < MAX_RATES) {
		struct rate *t = &rt[(*n)++];
		memset(t, 0, sizeof *t);
		t->id = sqlite3_column_int64(st, 0);
		t->type = sqlite3_column_int(st, 1);
		dept_copy(t->name, sizeof t->name, dept_col_text(st, 2));
		dept_copy(t->role, sizeof t->role, dept_col_text(st, 3));
		dept_copy(t->base, sizeof t->base, dept_col_text(st, 4));
		t->ppm = sqlite3_column_int64(st, 5);
		int *has[7] = {&t->has_amin, &t->has_amax, &t->has_hmin, &t->has_hmax,
			       &t->has_ymin, &t->has_ymax, &t->has_only};
		long long *val[7] = {&t->amin, &t->amax, &t->hmin, &t->hmax, &t->ymin, &t->ymax, &t->only};
		for (int k = 0; k < 7; k++) {
			*has[k] = sqlite3_column_type(st, 6 + k) != SQLITE_NULL;
			*val[k] = sqlite3_column_int64(st, 6 + k);
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* One tax of one role, before it is split among the payers. */
struct levy {
	const struct rate *t;
	long long base, amount;
};

/* The answer, read back from the database (new or repeated). */
struct clearance {
	char assessment_no[72], contract_no[72], unit_no[32], status[12];
	long long assessed, due, paid, cleared;
	size_t n;
	struct {
		int type;
		char name[48], payer_name[128], payer_type[16], payer_id[32], voucher[40];
		long long base, ppm, due, paid, paid_ms;
	} it[MAX_ITEMS];
};

static int s_clearance_load(sqlite3 *db, const char *contract_no, char hash[65], struct clearance *c)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT assessment_no, contract_no, unit_no, status, assessed_price_fen, "
					 "total_due_fen, total_paid_fen, IFNULL(cleared_ms, 0), request_hash "
					 "FROM tax_assessment WHERE contract_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, contract_no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dept_copy(c->assessment_no, sizeof c->assessment_no, dept_col_text(st, 0));
		dept_copy(c->contract_no, sizeof c->contract_no, dept_col_text(st, 1));
		dept_copy(c->unit_no, sizeof c->unit_no, dept_col_text(st, 2));
		dept_copy(c->status, sizeof c->status, dept_col_text(st, 3));
		c->assessed = sqlite3_column_int64(st, 4);
		c->due = sqlite3_column_int64(st, 5);
		c->paid = sqlite3_column_int64(st, 6);
		c->cleared = sqlite3_column_int64(st, 7);
		dept_copy(hash, 65, dept_col_text(st, 8));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : -1;
	st = dept_prep(db,
		       "SELECT tax_type, tax_name, payer_name, payer_id_type, payer_id_no, taxable_base_fen, rate_ppm, "
		       "amount_due_fen, amount_paid_fen, IFNULL(voucher_no, ''), IFNULL(paid_ms, 0) FROM tax_item "
		       "WHERE assessment_no = ?1 ORDER BY seq");
	if (!st)
		return -1;
	dept_bind_text(st, 1, c->assessment_no);
	c->n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && c->n < MAX_ITEMS) {
		size_t i = c->n++;
		c->it[i].type = sqlite3_column_int(st, 0);
		dept_copy(c->it[i].name, sizeof c->it[i].name, dept_col_text(st, 1));
		dept_copy(c->it[i].payer_name, sizeof c->it[i].payer_name, dept_col_text(st, 2));
		dept_copy(c->it[i].payer_type, sizeof c->it[i].payer_type, dept_col_text(st, 3));
		dept_copy(c->it[i].payer_id, sizeof c->it[i].payer_id, dept_col_text(st, 4));
		c->it[i].base = sqlite3_column_int64(st, 5);
		c->it[i].ppm = sqlite3_column_int64(st, 6);
		c->it[i].due = sqlite3_column_int64(st, 7);
		c->it[i].paid = sqlite3_column_int64(st, 8);
		dept_copy(c->it[i].voucher, sizeof c->it[i].voucher, dept_col_text(st, 9));
		c->it[i].paid_ms = sqlite3_column_int64(st, 10);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : -1;
}

/* Outstanding arrears of any party: REJECTED naming it. */
static int s_check_arrears(struct dept *d, sqlite3 *db, Qiao__V1__Party *const *ps, size_t n, const char *role,
			   const char *label, char *field, size_t fieldlen, struct dept_fail *f)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = dept_prep(db,
					     "SELECT COUNT(*), IFNULL(SUM(amount_fen), 0), IFNULL(MIN(tax_name), ''), "
					     "IFNULL(MIN(period), '') FROM tax_arrears WHERE id_no = ?1 AND "
					     "status = 'OUTSTANDING'");
		if (!st)
			return dept_dberr(f, d, db, "tax_arrears");
		dept_bind_text(st, 1, ps[i]->id->id);
		int hit = 0;
		long long sum = 0;
		char tax[64] = "", period[128] = "";
		if (sqlite3_step(st) == SQLITE_ROW) {
			hit = sqlite3_column_int(st, 0) > 0;
			sum = sqlite3_column_int64(st, 1);
			dept_copy(tax, sizeof tax, dept_col_text(st, 2));
			dept_copy(period, sizeof period, dept_col_text(st, 3));
		}
		sqlite3_finalize(st);
		if (hit) {
			snprintf(field, fieldlen, "%s[%zu].id.id", role, i);
			return dept_fail(f, E_REJECTED, field,
					 "%s%s有欠税 %lld.%02lld 元未缴清（%s，%s），请先缴清欠税再办理存量房交易申报",
					 label, ps[i]->name, sum / 100, sum % 100, tax, period);
		}
	}
	return 0;
}

static int s_insert_party(sqlite3 *db, const char *ano, const char *role, size_t seq, const Qiao__V1__Party *p)
{
	sqlite3_stmt *st = dept_prep(db, "INSERT INTO tax_party (assessment_no, role, seq, name, id_type, id_no) "
					 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
	if (!st)
		return -1;
	dept_bind_text(st, 1, ano);
	dept_bind_text(st, 2, role);
	dept_bind_int(st, 3, (long long)seq);
	dept_bind_text(st, 4, p->name);
	dept_bind_text(st, 5, dept_party_type(p));
	dept_bind_text(st, 6, p->id->id);
	return dept_run(st);
}

static int s_assess_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
		       const Qiao__V1__TaxAssessmentRequest *m, const char *cert, const char *hash, struct clearance *c,
		       char *field, size_t fieldlen, struct dept_fail *f)
{
	char old_hash[65] = "";
	int rc = s_clearance_load(db, m->contract_no, old_hash, c);
	if (rc < 0)
		return dept_dberr(f, d, db, "tax_assessment");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "contract_no",
					 "contract %.64s was already assessed (%s) with other particulars",
					 m->contract_no, c->assessment_no);
		return 0;
	}
	/* the filing, when the housing bureau has sent it, must agree */
	sqlite3_stmt *st = dept_prep(db,
				     "SELECT filing_no, unit_no, price_fen FROM filing_notice WHERE contract_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "filing_notice");
	dept_bind_text(st, 1, m->contract_no);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int bad_filing = strcmp(dept_col_text(st, 0), m->filing_no) != 0;
		int bad_unit = strcmp(dept_col_text(st, 1), m->unit_no) != 0;
		int bad_price = sqlite3_column_int64(st, 2) != m->price_fen;
		sqlite3_finalize(st);
		if (bad_filing)
			return dept_fail(f, E_REJECTED, "filing_no",
					 "contract %.64s was filed under another filing number", m->contract_no);
		if (bad_unit)
			return dept_fail(f, E_REJECTED, "unit_no", "contract %.64s was filed for another unit",
					 m->contract_no);
		if (bad_price)
			return dept_fail(f, E_REJECTED, "price_fen",
					 "the declared price differs from the filed 成交价");
	} else {
		sqlite3_finalize(st);
	}
	if (s_check_arrears(d, db, m->buyers, m->n_buyers, "buyers", "买受人", field, fieldlen, f) != 0 ||
	    s_check_arrears(d, db, m->sellers, m->n_sellers, "sellers", "出卖人", field, fieldlen, f) != 0)
		return -1;

	st = dept_prep(db, "SELECT cert_no, building_area_dm2, assessed_price_fen, acquired_date, seller_only_home "
			   "FROM property_valuation WHERE unit_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "property_valuation");
	dept_bind_text(st, 1, m->unit_no);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return dept_fail(f, E_NOTFOUND, "unit_no", "no 存量房计税价格 valuation for unit %.40s", m->unit_no);
	}
	char vcert[128], acquired[16];
	dept_copy(vcert, sizeof vcert, dept_col_text(st, 0));
	long long varea = sqlite3_column_int64(st, 1);
	long long valuation = sqlite3_column_int64(st, 2);
	dept_copy(acquired, sizeof acquired, dept_col_text(st, 3));
	int only_home = sqlite3_column_int(st, 4);
	sqlite3_finalize(st);
	if (strcmp(vcert, cert) != 0)
		return dept_fail(f, E_REJECTED, "cert_no", "不动产权证书号 %.100s is not the certificate of unit %s",
				 m->cert_no, m->unit_no);
	if (varea != m->building_area_dm2)
		return dept_fail(f, E_REJECTED, "building_area_dm2",
				 "建筑面积 %lld dm² differs from the registered %lld dm² of unit %s",
				 (long long)m->building_area_dm2, varea, m->unit_no);

	char today[11];
	dept_date(today, 0);
	struct facts x = {.area = m->building_area_dm2, .homes = -1, .hold_years = -1, .only_home = -1};
	/* the household relief of 契税 needs every buyer's housing on file */
	int known = 1, homes = 0;
	for (size_t i = 0; i < m->n_buyers; i++) {
		st = dept_prep(db, "SELECT homes_owned FROM buyer_housing WHERE id_no = ?1");
		if (!st)
			return dept_dberr(f, d, db, "buyer_housing");
		dept_bind_text(st, 1, m->buyers[i]->id->id);
		if (m->buyers[i]->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID && sqlite3_step(st) == SQLITE_ROW) {
			int h = sqlite3_column_int(st, 0);
			homes = h > homes ? h : homes;
		} else {
			known = 0;
		}
		sqlite3_finalize(st);
	}
	if (known)
		x.homes = homes;
	/* the holding reliefs are for natural persons */
	int persons = 1;
	for (size_t i = 0; i < m->n_sellers; i++)
		persons &= m->sellers[i]->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	if (persons) {
		x.hold_years = s_years(acquired, today);
		x.only_home = only_home;
	}

	struct rate rt[MAX_RATES];
	size_t nrt = 0;
	if (s_load_rates(db, today, rt, &nrt) != 0)
		return dept_dberr(f, d, db, "tax_rate");
	long long assessed = m->price_fen > valuation ? m->price_fen : valuation;
	struct levy lv[MAX_RATES];
	size_t nlv = 0;
	long long vat = 0;
	/* pass 0: 增值税, on which the others depend; pass 1: the rest */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < nrt; i++) {
			const struct rate *t = &rt[i];
			if ((pass == 0) != (t->type == QIAO__V1__TAX_TYPE__TAX_TYPE_VAT))
				continue;
			int decided = 0;
			for (size_t k = 0; k < nlv; k++)
				decided |= lv[k].t->type == t->type && strcmp(lv[k].t->role, t->role) == 0;
			if (decided || !s_rate_applies(t, &x))
				continue;
			long long base;
			if (strcmp(t->base, "PRICE_EX_VAT") == 0)
				base = (long long)(((__int128)assessed * 1000000 + (1000000 + t->ppm) / 2) /
						   (1000000 + t->ppm));
			else if (strcmp(t->base, "PRICE_NET") == 0)
				base = assessed - vat;
			else if (strcmp(t->base, "VAT") == 0)
				base = vat;
			else
				base = assessed;
			if (strcmp(t->base, "VAT") == 0 && base == 0)
				continue; /* no 增值税, no surcharge */
			lv[nlv].t = t;
			lv[nlv].base = base;
			lv[nlv].amount = dept_ppm(base, t->ppm);
			if (t->type == QIAO__V1__TAX_TYPE__TAX_TYPE_VAT)
				vat += lv[nlv].amount;
			nlv++;
		}
	size_t nitems = 0;
	for (size_t k = 0; k < nlv; k++)
		nitems += strcmp(lv[k].t->role, "SELLER") == 0 ? m->n_sellers : m->n_buyers;
	if (nitems > MAX_ITEMS)
		return dept_fail(f, E_REJECTED, "sellers",
				 "%zu tax items: more than %d in one assessment; assess the "
				 "transfer in parts",
				 nitems, MAX_ITEMS);

	long long seqv = dept_next_seq(db, "HD");
	if (seqv < 0)
		return dept_dberr(f, d, db, "doc_sequence");
	char ano[72];
	snprintf(ano, sizeof ano, "HD150600-%.4s-%06lld", today, seqv);
	int64_t now = qiao_now_ms();
	long long due = 0;
	for (size_t k = 0; k < nlv; k++)
		due += lv[k].amount;
	/* collected at once under the 三方协议: every item due is paid */
	const char *status = due > 0 ? "PAID" : "EXEMPT";
	st = dept_prep(db,
		       "INSERT INTO tax_assessment (assessment_no, contract_no, filing_no, unit_no, cert_no, "
		       "declared_price_fen, assessed_price_fen, building_area_dm2, hold_years, buyer_homes, status, "
		       "total_due_fen, total_paid_fen, cleared_ms, request_hash, requester, case_id, created_ms) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15, ?16, ?13)");
	if (!st)
		return dept_dberr(f, d, db, "tax_assessment");
	dept_bind_text(st, 1, ano);
	dept_bind_text(st, 2, m->contract_no);
	dept_bind_text(st, 3, m->filing_no);
	dept_bind_text(st, 4, m->unit_no);
	dept_bind_text(st, 5, cert);
	dept_bind_int(st, 6, m->price_fen);
	dept_bind_int(st, 7, assessed);
	dept_bind_int(st, 8, m->building_area_dm2);
	dept_bind_int(st, 9, x.hold_years);
	if (x.homes >= 0)
		dept_bind_int(st, 10, x.homes);
	dept_bind_text(st, 11, status);
	dept_bind_int(st, 12, due);
	dept_bind_int(st, 13, now);
	dept_bind_text(st, 14, hash);
	dept_bind_text(st, 15, req->requester);
	dept_bind_text(st, 16, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "tax_assessment insert");
	for (size_t i = 0; i < m->n_sellers; i++)
		if (s_insert_party(db, ano, "SELLER", i, m->sellers[i]) != 0)
			return dept_dberr(f, d, db, "tax_party insert");
	for (size_t i = 0; i < m->n_buyers; i++)
		if (s_insert_party(db, ano, "BUYER", i, m->buyers[i]) != 0)
			return dept_dberr(f, d, db, "tax_party insert");
	/* items: each tax split equally among the payers of its role, the
	 * remainder fen to the first */
	size_t seq = 0;
	for (size_t k = 0; k < nlv; k++) {
		int seller = strcmp(lv[k].t->role, "SELLER") == 0;
		Qiao__V1__Party *const *ps = seller ? m->sellers : m->buyers;
		size_t np = seller ? m->n_sellers : m->n_buyers;
		for (size_t i = 0; i < np; i++) {
			long long base = lv[k].base / (long long)np + (i == 0 ? lv[k].base % (long long)np : 0);
			long long amt = lv[k].amount / (long long)np + (i == 0 ? lv[k].amount % (long long)np : 0);
			char voucher[40] = "";
			if (amt > 0) {
				long long v = dept_next_seq(db, "SP");
				if (v < 0)
					return dept_dberr(f, d, db, "doc_sequence");
				/* 电子缴税付款凭证号: 3 + 税务机关 150600 + 年 + 序号 */
				snprintf(voucher, sizeof voucher, "3150600%.4s%07lld", today, v);
			}
			st = dept_prep(
				db,
				"INSERT INTO tax_item (assessment_no, seq, tax_type, tax_name, rate_id, payer_role, "
				"payer_name, payer_id_type, payer_id_no, taxable_base_fen, rate_ppm, amount_due_fen, "
				"amount_paid_fen, voucher_no, paid_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
				"?10, ?11, ?12, ?12, ?13, ?14)");
			if (!st)
				return dept_dberr(f, d, db, "tax_item");
			dept_bind_text(st, 1, ano);
			dept_bind_int(st, 2, (long long)seq++);
			dept_bind_int(st, 3, lv[k].t->type);
			dept_bind_text(st, 4, lv[k].t->name);
			dept_bind_int(st, 5, lv[k].t->id);
			dept_bind_text(st, 6, lv[k].t->role);
			dept_bind_text(st, 7, ps[i]->name);
			dept_bind_text(st, 8, dept_party_type(ps[i]));
			dept_bind_text(st, 9, ps[i]->id->id);
			dept_bind_int(st, 10, base);
			dept_bind_int(st, 11, lv[k].t->ppm);
			dept_bind_int(st, 12, amt);
			dept_bind_text(st, 13, voucher);
			if (amt > 0)
				dept_bind_int(st, 14, now);
			if (dept_run(st) != 0)
				return dept_dberr(f, d, db, "tax_item insert");
		}
	}
	dept_log(d, "assessment %s of contract %s: %lld fen due and collected", ano, m->contract_no, due);
	return s_clearance_load(db, m->contract_no, old_hash, c) == 1 ? 0 : dept_dberr(f, d, db, "tax_assessment");
}

static void on_tax_assessment(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			      struct qiao_responder *r)
{
	const Qiao__V1__TaxAssessmentRequest *m = (const Qiao__V1__TaxAssessmentRequest *)body;
	if (dept_check_printable(&r, m->contract_no, "contract_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->filing_no, "filing_no", 64, 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, m->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->cert_no, "cert_no", 0) != 0 ||
	    s_positive(&r, m->price_fen, "price_fen") != 0 ||
	    s_positive(&r, m->building_area_dm2, "building_area_dm2") != 0 ||
	    s_parties(&r, m->sellers, m->n_sellers, m->buyers, m->n_buyers) != 0)
		return;
	char cert[128], hash[65], field[48] = "";
	dept_norm_id(QIAO_ID_CERT, m->cert_no, cert, sizeof cert);
	dept_body_hash(req, hash);
	struct clearance *c = calloc(1, sizeof *c);
	if (!c) {
		dept_error(&r, E_INTERNAL, NULL, "out of memory");
		return;
	}
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_assess_tx(d, db, req, m, cert, hash, c, field, sizeof field, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0) {
		dept_error(&r, f.code, f.field, "%s", f.msg);
		free(c);
		return;
	}
	Qiao__V1__TaxItem items[MAX_ITEMS], *ip[MAX_ITEMS];
	Qiao__V1__Party parties[MAX_ITEMS];
	Qiao__V1__DataSubject ids[MAX_ITEMS];
	for (size_t i = 0; i < c->n; i++) {
		qiao__v1__tax_item__init(&items[i]);
		qiao__v1__party__init(&parties[i]);
		qiao__v1__data_subject__init(&ids[i]);
		ids[i].type = strcmp(c->it[i].payer_type, "USCC") == 0 ? QIAO__V1__SUBJECT_TYPE__USCC
								       : QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
		ids[i].id = c->it[i].payer_id;
		parties[i].name = c->it[i].payer_name;
		parties[i].id = &ids[i];
		items[i].tax_type = c->it[i].type;
		items[i].tax_name = c->it[i].type == QIAO__V1__TAX_TYPE__TAX_TYPE_OTHER ? c->it[i].name : "";
		items[i].payer = &parties[i];
		items[i].taxable_base_fen = c->it[i].base;
		items[i].rate_ppm = (uint32_t)c->it[i].ppm;
		items[i].amount_due_fen = c->it[i].due;
		items[i].amount_paid_fen = c->it[i].paid;
		items[i].voucher_no = c->it[i].voucher;
		items[i].paid_ms = c->it[i].paid_ms;
		ip[i] = &items[i];
	}
	Qiao__V1__TaxClearance out = QIAO__V1__TAX_CLEARANCE__INIT;
	out.assessment_no = c->assessment_no;
	out.contract_no = c->contract_no;
	out.unit_no = c->unit_no;
	out.status = strcmp(c->status, "PAID") == 0     ? QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID
		     : strcmp(c->status, "EXEMPT") == 0 ? QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_EXEMPT
							: QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_ASSESSED;
	out.assessed_price_fen = c->assessed;
	out.n_items = c->n;
	out.items = ip;
	out.total_due_fen = c->due;
	out.total_paid_fen = c->paid;
	out.cleared_ms = c->cleared;
	dept_reply(&r, &out.base);
	free(c);
}

/* ---- filing-notice.v1 --------------------------------------------------- */

static void on_filing_notice(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			     struct qiao_responder *r)
{
	const Qiao__V1__FilingNotice *m = (const Qiao__V1__FilingNotice *)body;
	if (dept_check_printable(&r, m->contract_no, "contract_no", 64, 0) != 0 ||
	    dept_check_printable(&r, m->filing_no, "filing_no", 64, 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_UNIT, m->unit_no, "unit_no", 0) != 0 ||
	    dept_check_id(&r, QIAO_ID_CERT, m->cert_no, "cert_no", 0) != 0 ||
	    s_positive(&r, m->price_fen, "price_fen") != 0 ||
	    s_parties(&r, m->sellers, m->n_sellers, m->buyers, m->n_buyers) != 0 ||
	    dept_check_printable(&r, m->escrow_agreement_no, "escrow_agreement_no", 64, 1) != 0)
		return;
	if (m->escrow_amount_fen < 0 || m->escrow_amount_fen > MAX_FEN ||
	    (m->escrow_agreement_no[0] && m->escrow_amount_fen == 0)) {
		dept_error(&r, E_BAD, "escrow_amount_fen", "escrow_amount_fen is required with escrow_agreement_no");
		return;
	}
	if (m->filed_ms <= 0) {
		dept_error(&r, E_BAD, "filed_ms", "filed_ms is required");
		return;
	}
	char cert[128], hash[65], refusal[300] = "";
	dept_norm_id(QIAO_ID_CERT, m->cert_no, cert, sizeof cert);
	dept_body_hash(req, hash);
	struct dept_fail f = {0};
	long long received = 0;
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc != 0)
		dept_dberr(&f, d, db, "begin");
	sqlite3_stmt *st =
		rc == 0 ? dept_prep(db, "SELECT request_hash, received_ms FROM filing_notice WHERE contract_no = ?1")
			: NULL;
	if (rc == 0 && !st)
		rc = dept_dberr(&f, d, db, "filing_notice");
	int have = 0;
	if (rc == 0) {
		dept_bind_text(st, 1, m->contract_no);
		if (sqlite3_step(st) == SQLITE_ROW) {
			have = 1;
			if (strcmp(dept_col_text(st, 0), hash) == 0)
				received = sqlite3_column_int64(st, 1);
			else
				snprintf(refusal, sizeof refusal,
					 "合同 %.64s 的备案信息已接收，内容不一致；请先撤销原备案", m->contract_no);
		}
		sqlite3_finalize(st);
	}
	if (rc == 0 && !have) {
		/* a contract already assessed must not be re-filed with another price */
		st = dept_prep(db, "SELECT declared_price_fen FROM tax_assessment WHERE contract_no = ?1");
		if (!st)
			rc = dept_dberr(&f, d, db, "tax_assessment");
		else {
			dept_bind_text(st, 1, m->contract_no);
			if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) != m->price_fen)
				snprintf(refusal, sizeof refusal, "合同 %.64s 已按其他成交价核定", m->contract_no);
			sqlite3_finalize(st);
		}
	}
	if (rc == 0 && !have && !refusal[0]) {
		received = qiao_now_ms();
		st = dept_prep(
			db, "INSERT INTO filing_notice (contract_no, filing_no, unit_no, cert_no, price_fen, "
			    "escrow_agreement_no, escrow_amount_fen, filed_ms, received_ms, request_hash, requester, "
			    "case_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
		if (st) {
			dept_bind_text(st, 1, m->contract_no);
			dept_bind_text(st, 2, m->filing_no);
			dept_bind_text(st, 3, m->unit_no);
			dept_bind_text(st, 4, cert);
			dept_bind_int(st, 5, m->price_fen);
			dept_bind_text(st, 6, m->escrow_agreement_no);
			if (m->escrow_amount_fen > 0)
				dept_bind_int(st, 7, m->escrow_amount_fen);
			dept_bind_int(st, 8, m->filed_ms);
			dept_bind_int(st, 9, received);
			dept_bind_text(st, 10, hash);
			dept_bind_text(st, 11, req->requester);
			dept_bind_text(st, 12, dept_case_id(req));
		}
		if (dept_run(st) != 0)
			rc = dept_dberr(&f, d, db, "filing_notice insert");
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
	Qiao__V1__FilingNoticeResult out = QIAO__V1__FILING_NOTICE_RESULT__INIT;
	out.received = !refusal[0];
	out.received_ms = refusal[0] ? 0 : received;
	out.refusal_reason = refusal;
	dept_reply(&r, &out.base);
}

/* ---- taxpayer-registration.v1, taxpayer-registration-cancel.v1 ---------- */

#define MAX_INVESTORS 32
#define MAX_LEVIES 32
#define MAX_INVOICE_TYPES 2

/* "YYYY-MM-DD", a real calendar date between 1900 and 2999. */
static int s_date_ok(const char *s)
{
	int y, m, dd;
	char tail;
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &dd, &tail) != 3)
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || dd < 1)
		return 0;
	return dd <= mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

static int s_check_date(struct qiao_responder **r, const char *v, const char *field)
{
	if (s_date_ok(v))
		return 0;
	dept_error(r, E_BAD, field, "%s '%.20s' is not a date YYYY-MM-DD", field, v ? v : "");
	return -1;
}

/* A natural person (RESIDENT_ID) at path `field`. */
static int s_person(struct qiao_responder **r, const Qiao__V1__Party *p, const char *field)
{
	if (dept_check_party(r, p, field, 0) != 0)
		return -1;
	if (p->id->type != QIAO__V1__SUBJECT_TYPE__RESIDENT_ID) {
		char f[96];
		snprintf(f, sizeof f, "%s.id.type", field);
		dept_error(r, E_BAD, f, "%s: %s must be a natural person (RESIDENT_ID)", f, field);
		return -1;
	}
	return 0;
}

static const char *s_vat_name(int v)
{
	return v == QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_SMALL_SCALE ? "SMALL_SCALE"
	       : v == QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_GENERAL   ? "GENERAL"
									       : NULL;
}

static int s_vat_of(const char *s)
{
	return strcmp(s, "GENERAL") == 0 ? QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_GENERAL
					 : QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_SMALL_SCALE;
}

static const char *s_invoice_name(int v)
{
	return v == QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_ORDINARY  ? "DIGITAL_ORDINARY"
	       : v == QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_SPECIAL ? "DIGITAL_SPECIAL"
									   : NULL;
}

static int s_invoice_of(const char *s)
{
	return strcmp(s, "DIGITAL_SPECIAL") == 0 ? QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_SPECIAL
						 : QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_ORDINARY;
}

static int s_period_of(const char *s)
{
	if (strcmp(s, "MONTHLY") == 0)
		return QIAO__V1__FILING_PERIOD__FILING_PERIOD_MONTHLY;
	if (strcmp(s, "QUARTERLY") == 0)
		return QIAO__V1__FILING_PERIOD__FILING_PERIOD_QUARTERLY;
	if (strcmp(s, "PER_TRANSACTION") == 0)
		return QIAO__V1__FILING_PERIOD__FILING_PERIOD_PER_TRANSACTION;
	return QIAO__V1__FILING_PERIOD__FILING_PERIOD_ANNUAL;
}

/* A registration as recorded (or a refusal, never recorded). */
struct registration {
	char no[72], taxpayer_id[24], taxpayer_name[320], office_code[16], office_name[320], vat[16], status[12];
	long long registered_ms, cancelled_ms;
	char refusal[600];
	size_t nlevy, ninv;
	struct {
		int type;
		char tax_name[100], item[200], period[20], from[12];
		long long ppm;
	} lv[MAX_LEVIES];
	struct {
		char type[20];
		long long limit;
	} inv[MAX_INVOICE_TYPES];
};

/* Load registration `no` into *g (and its request hash): 1, 0 when there
 * is none, -1 on a database error. */
static int s_reg_load(sqlite3 *db, const char *no, char hash[65], struct registration *g)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT registration_no, taxpayer_id, taxpayer_name, office_code, office_name, "
					 "vat_type, status, registered_ms, IFNULL(cancelled_ms, 0), request_hash "
					 "FROM taxpayer_registration WHERE registration_no = ?1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, no);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		dept_copy(g->no, sizeof g->no, dept_col_text(st, 0));
		dept_copy(g->taxpayer_id, sizeof g->taxpayer_id, dept_col_text(st, 1));
		dept_copy(g->taxpayer_name, sizeof g->taxpayer_name, dept_col_text(st, 2));
		dept_copy(g->office_code, sizeof g->office_code, dept_col_text(st, 3));
		dept_copy(g->office_name, sizeof g->office_name, dept_col_text(st, 4));
		dept_copy(g->vat, sizeof g->vat, dept_col_text(st, 5));
		dept_copy(g->status, sizeof g->status, dept_col_text(st, 6));
		g->registered_ms = sqlite3_column_int64(st, 7);
		g->cancelled_ms = sqlite3_column_int64(st, 8);
		dept_copy(hash, 65, dept_col_text(st, 9));
		g->refusal[0] = '\0';
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : -1;
	st = dept_prep(db, "SELECT tax_type, tax_name, item_name, rate_ppm, period, valid_from FROM registration_levy "
			   "WHERE registration_no = ?1 ORDER BY seq");
	if (!st)
		return -1;
	dept_bind_text(st, 1, no);
	g->nlevy = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && g->nlevy < MAX_LEVIES) {
		size_t i = g->nlevy++;
		g->lv[i].type = sqlite3_column_int(st, 0);
		dept_copy(g->lv[i].tax_name, sizeof g->lv[i].tax_name, dept_col_text(st, 1));
		dept_copy(g->lv[i].item, sizeof g->lv[i].item, dept_col_text(st, 2));
		g->lv[i].ppm = sqlite3_column_int64(st, 3);
		dept_copy(g->lv[i].period, sizeof g->lv[i].period, dept_col_text(st, 4));
		dept_copy(g->lv[i].from, sizeof g->lv[i].from, dept_col_text(st, 5));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	st = dept_prep(db, "SELECT invoice_type, credit_limit_fen FROM registration_invoice WHERE registration_no = ?1 "
			   "ORDER BY seq");
	if (!st)
		return -1;
	dept_bind_text(st, 1, no);
	g->ninv = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && g->ninv < MAX_INVOICE_TYPES) {
		size_t i = g->ninv++;
		dept_copy(g->inv[i].type, sizeof g->inv[i].type, dept_col_text(st, 0));
		g->inv[i].limit = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : -1;
}

static int s_reg_party(sqlite3 *db, const char *no, const char *role, size_t seq, const Qiao__V1__Party *p,
		       const Qiao__V1__Investor *iv)
{
	sqlite3_stmt *st = dept_prep(db, "INSERT INTO registration_party (registration_no, role, seq, name, id_type, "
					 "id_no, subscribed_capital_fen, contribution_method, contribution_due_date) "
					 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
	if (!st)
		return -1;
	dept_bind_text(st, 1, no);
	dept_bind_text(st, 2, role);
	dept_bind_int(st, 3, (long long)seq);
	dept_bind_text(st, 4, p->name);
	dept_bind_text(st, 5, dept_party_type(p));
	dept_bind_text(st, 6, p->id->id);
	if (iv) {
		dept_bind_int(st, 7, iv->subscribed_capital_fen);
		dept_bind_text(st, 8, iv->contribution_method);
		dept_bind_text(st, 9, iv->contribution_due_date);
	}
	return dept_run(st);
}

/* A person of the new taxpayer tied to an abnormal taxpayer: the refusal
 * in g->refusal; 1 refused, 0 not, -1 database error. */
static int s_abnormal(sqlite3 *db, const Qiao__V1__Party *p, const char *role, struct registration *g)
{
	sqlite3_stmt *st = dept_prep(db, "SELECT taxpayer_id, taxpayer_name, recognised_date, "
					 "CASE WHEN legal_rep_id = ?1 THEN '法定代表人' ELSE '财务负责人' END "
					 "FROM abnormal_taxpayer WHERE status = 'ABNORMAL' AND "
					 "(legal_rep_id = ?1 OR finance_officer_id = ?1) ORDER BY recognised_date LIMIT 1");
	if (!st)
		return -1;
	dept_bind_text(st, 1, p->id->id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(g->refusal, sizeof g->refusal,
			 "%s%s是非正常户%s（纳税人识别号 %s，%s认定）的%s，该户尚未解除非正常状态，暂不予办理新办纳税人套餐",
			 role, p->name, dept_col_text(st, 1), dept_col_text(st, 0), dept_col_text(st, 2),
			 dept_col_text(st, 3));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int s_register_tx(struct dept *d, sqlite3 *db, const struct qiao_request *req,
			 const Qiao__V1__TaxpayerRegistrationRequest *m, const char *hash, struct registration *g,
			 struct dept_fail *f)
{
	const char *uscc = m->taxpayer->id->id;
	char old_hash[65] = "";
	int rc = s_reg_load(db, m->registration_no, old_hash, g);
	if (rc < 0)
		return dept_dberr(f, d, db, "taxpayer_registration");
	if (rc == 1) {
		if (strcmp(old_hash, hash) != 0)
			return dept_fail(f, E_REJECTED, "registration_no",
					 "registration %.64s was already applied for (%s) with other particulars",
					 m->registration_no, g->taxpayer_id);
		return 0; /* the same application: its registration as it stands */
	}
	/* a refusal is answered, not recorded */
	dept_copy(g->no, sizeof g->no, m->registration_no);
	dept_copy(g->taxpayer_id, sizeof g->taxpayer_id, uscc);
	dept_copy(g->taxpayer_name, sizeof g->taxpayer_name, m->taxpayer->name);
	dept_copy(g->status, sizeof g->status, "REFUSED");
	sqlite3_stmt *st = dept_prep(db, "SELECT registration_no FROM taxpayer_registration WHERE taxpayer_id = ?1 AND "
					 "status = 'ACTIVE'");
	if (!st)
		return dept_dberr(f, d, db, "taxpayer_registration");
	dept_bind_text(st, 1, uscc);
	if (sqlite3_step(st) == SQLITE_ROW) {
		char other[72];
		dept_copy(other, sizeof other, dept_col_text(st, 0));
		sqlite3_finalize(st);
		return dept_fail(f, E_REJECTED, "taxpayer.id.id",
				 "纳税人 %s 已办理新办纳税人套餐（套餐申请编号 %s），不能重复办理", uscc, other);
	}
	sqlite3_finalize(st);

	/* 主管税务机关: the division of the USCC, else its city */
	char area[7], city[7];
	memcpy(area, uscc + 2, 6);
	area[6] = '\0';
	memcpy(city, area, 4);
	memcpy(city + 4, "00", 3);
	st = dept_prep(db, "SELECT office_code, office_name FROM tax_office WHERE area_code IN (?1, ?2) "
			   "ORDER BY area_code = ?1 DESC LIMIT 1");
	if (!st)
		return dept_dberr(f, d, db, "tax_office");
	dept_bind_text(st, 1, area);
	dept_bind_text(st, 2, city);
	int found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		dept_copy(g->office_code, sizeof g->office_code, dept_col_text(st, 0));
		dept_copy(g->office_name, sizeof g->office_name, dept_col_text(st, 1));
	}
	sqlite3_finalize(st);
	if (!found) {
		snprintf(g->refusal, sizeof g->refusal, "纳税人 %s 的登记地（行政区划 %s）不属本局管辖，请向登记地税务机关申请",
			 uscc, area);
		return 0;
	}
	/* the people: none may be tied to an abnormal taxpayer */
	const Qiao__V1__Party *who[2] = {m->legal_representative, m->financial_officer};
	const char *role[2] = {"法定代表人", "财务负责人"};
	for (int i = 0; i < 2; i++) {
		rc = s_abnormal(db, who[i], role[i], g);
		if (rc < 0)
			return dept_dberr(f, d, db, "abnormal_taxpayer");
		if (rc == 1)
			return 0;
	}

	char today[11];
	dept_date(today, 0);
	const char *vat = s_vat_name(m->vat_taxpayer_type);
	int64_t now = qiao_now_ms();
	st = dept_prep(db, "INSERT INTO taxpayer_registration (registration_no, taxpayer_id, taxpayer_name, licence_id, "
			   "enterprise_type, registered_address, established_date, registered_capital_fen, business_scope, "
			   "vat_type, office_code, office_name, status, registered_ms, request_hash, requester, case_id) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'ACTIVE', ?13, ?14, ?15, ?16)");
	if (!st)
		return dept_dberr(f, d, db, "taxpayer_registration");
	dept_bind_text(st, 1, m->registration_no);
	dept_bind_text(st, 2, uscc);
	dept_bind_text(st, 3, m->taxpayer->name);
	dept_bind_text(st, 4, m->licence_id);
	dept_bind_text(st, 5, m->enterprise_type);
	dept_bind_text(st, 6, m->registered_address);
	dept_bind_text(st, 7, m->established_date);
	dept_bind_int(st, 8, m->registered_capital_fen);
	dept_bind_text(st, 9, m->business_scope);
	dept_bind_text(st, 10, vat);
	dept_bind_text(st, 11, g->office_code);
	dept_bind_text(st, 12, g->office_name);
	dept_bind_int(st, 13, now);
	dept_bind_text(st, 14, hash);
	dept_bind_text(st, 15, req->requester);
	dept_bind_text(st, 16, dept_case_id(req));
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "taxpayer_registration insert");
	if (s_reg_party(db, m->registration_no, "LEGAL_REP", 0, m->legal_representative, NULL) != 0 ||
	    s_reg_party(db, m->registration_no, "FINANCE", 0, m->financial_officer, NULL) != 0 ||
	    s_reg_party(db, m->registration_no, "TAX_OFFICER", 0, m->tax_officer, NULL) != 0)
		return dept_dberr(f, d, db, "registration_party insert");
	for (size_t i = 0; i < m->n_investors; i++)
		if (s_reg_party(db, m->registration_no, "INVESTOR", i, m->investors[i]->party, m->investors[i]) != 0)
			return dept_dberr(f, d, db, "registration_party insert");

	/* 税费种认定: every rule in force for this VAT type */
	st = dept_prep(db, "INSERT INTO registration_levy (registration_no, seq, rule_id, tax_type, tax_name, item_name, "
			   "rate_ppm, period, valid_from) SELECT ?1, ROW_NUMBER() OVER (ORDER BY tax_type, rule_id) - 1, "
			   "rule_id, tax_type, tax_name, item_name, rate_ppm, period, ?3 FROM levy_rule WHERE "
			   "(vat_type IS NULL OR vat_type = ?2) AND effective_from <= ?3 AND (effective_to IS NULL OR "
			   "effective_to >= ?3) ORDER BY tax_type, rule_id LIMIT 32");
	if (!st)
		return dept_dberr(f, d, db, "registration_levy");
	dept_bind_text(st, 1, m->registration_no);
	dept_bind_text(st, 2, vat);
	dept_bind_text(st, 3, today);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "registration_levy insert");
	/* 发票票种核定: the initial credit line of each type asked for */
	for (size_t i = 0; i < m->n_invoice_types; i++) {
		const char *it = s_invoice_name(m->invoice_types[i]);
		st = dept_prep(db, "INSERT INTO registration_invoice (registration_no, seq, invoice_type, credit_limit_fen) "
				   "SELECT ?1, ?2, invoice_type, credit_limit_fen FROM invoice_rule WHERE vat_type = ?3 "
				   "AND invoice_type = ?4");
		if (!st)
			return dept_dberr(f, d, db, "registration_invoice");
		dept_bind_text(st, 1, m->registration_no);
		dept_bind_int(st, 2, (long long)i);
		dept_bind_text(st, 3, vat);
		dept_bind_text(st, 4, it);
		if (dept_run(st) != 0)
			return dept_dberr(f, d, db, "registration_invoice insert");
		if (sqlite3_changes(db) != 1)
			return dept_fail(f, E_INTERNAL, NULL, "no invoice rule for %s %s", vat, it);
	}
	dept_log(d, "taxpayer %s registered (%s, %s)", uscc, m->registration_no, g->office_name);
	rc = s_reg_load(db, m->registration_no, old_hash, g);
	return rc == 1 ? 0 : dept_dberr(f, d, db, "taxpayer_registration");
}

/* Answer with g as a TaxpayerRegistration. */
static void s_reg_reply(struct qiao_responder **r, const struct registration *g)
{
	Qiao__V1__TaxLevy lv[MAX_LEVIES], *lvp[MAX_LEVIES];
	Qiao__V1__InvoiceApproval inv[MAX_INVOICE_TYPES], *invp[MAX_INVOICE_TYPES];
	for (size_t i = 0; i < g->nlevy; i++) {
		qiao__v1__tax_levy__init(&lv[i]);
		lv[i].tax_type = g->lv[i].type;
		lv[i].tax_name = (char *)g->lv[i].tax_name;
		lv[i].item_name = (char *)g->lv[i].item;
		lv[i].rate_ppm = (uint32_t)g->lv[i].ppm;
		lv[i].filing_period = s_period_of(g->lv[i].period);
		lv[i].valid_from = (char *)g->lv[i].from;
		lvp[i] = &lv[i];
	}
	for (size_t i = 0; i < g->ninv; i++) {
		qiao__v1__invoice_approval__init(&inv[i]);
		inv[i].invoice_type = s_invoice_of(g->inv[i].type);
		inv[i].credit_limit_fen = g->inv[i].limit;
		invp[i] = &inv[i];
	}
	Qiao__V1__TaxpayerRegistration out = QIAO__V1__TAXPAYER_REGISTRATION__INIT;
	int refused = strcmp(g->status, "REFUSED") == 0;
	out.registration_no = (char *)g->no;
	out.status = refused ? QIAO__V1__TAXPAYER_REGISTRATION_STATUS__TAXPAYER_REGISTRATION_STATUS_REFUSED
		     : strcmp(g->status, "CANCELLED") == 0
			     ? QIAO__V1__TAXPAYER_REGISTRATION_STATUS__TAXPAYER_REGISTRATION_STATUS_CANCELLED
			     : QIAO__V1__TAXPAYER_REGISTRATION_STATUS__TAXPAYER_REGISTRATION_STATUS_ACTIVE;
	out.taxpayer_id = (char *)g->taxpayer_id;
	out.taxpayer_name = (char *)g->taxpayer_name;
	out.tax_office_code = (char *)g->office_code;
	out.tax_office_name = (char *)g->office_name;
	out.vat_taxpayer_type = refused ? 0 : s_vat_of(g->vat);
	out.n_levies = g->nlevy;
	out.levies = lvp;
	out.n_invoices = g->ninv;
	out.invoices = invp;
	out.registered_ms = g->registered_ms;
	out.cancelled_ms = g->cancelled_ms;
	out.refusal_reason = (char *)g->refusal;
	dept_reply(r, &out.base);
}

static int s_check_registration(struct qiao_responder **r, const Qiao__V1__TaxpayerRegistrationRequest *m)
{
	char today[11];
	dept_date(today, 0);
	if (dept_check_ref(r, m->registration_no, "registration_no") != 0 ||
	    dept_check_party(r, m->taxpayer, "taxpayer", 1) != 0 ||
	    dept_check_id(r, QIAO_ID_LICENCE, m->licence_id, "licence_id", 0) != 0 ||
	    dept_check_printable(r, m->enterprise_type, "enterprise_type", 64, 0) != 0 ||
	    dept_check_printable(r, m->registered_address, "registered_address", 200, 0) != 0 ||
	    s_check_date(r, m->established_date, "established_date") != 0)
		return -1;
	if (strcmp(m->established_date, today) > 0) {
		dept_error(r, E_BAD, "established_date", "established_date %s is after today", m->established_date);
		return -1;
	}
	if (s_positive(r, m->registered_capital_fen, "registered_capital_fen") != 0 ||
	    dept_check_printable(r, m->business_scope, "business_scope", 2000, 0) != 0 ||
	    s_person(r, m->legal_representative, "legal_representative") != 0 ||
	    s_person(r, m->financial_officer, "financial_officer") != 0 ||
	    s_person(r, m->tax_officer, "tax_officer") != 0)
		return -1;
	if (m->n_investors < 1 || m->n_investors > MAX_INVESTORS) {
		dept_error(r, E_BAD, "investors", "investors: 1 to %d are required", MAX_INVESTORS);
		return -1;
	}
	char f[64];
	long long sum = 0;
	for (size_t i = 0; i < m->n_investors; i++) {
		const Qiao__V1__Investor *iv = m->investors[i];
		snprintf(f, sizeof f, "investors[%zu]", i);
		if (!iv) {
			dept_error(r, E_BAD, f, "%s is required", f);
			return -1;
		}
		snprintf(f, sizeof f, "investors[%zu].party", i);
		if (dept_check_party(r, iv->party, f, 0) != 0)
			return -1;
		snprintf(f, sizeof f, "investors[%zu].subscribed_capital_fen", i);
		if (s_positive(r, iv->subscribed_capital_fen, f) != 0)
			return -1;
		snprintf(f, sizeof f, "investors[%zu].contribution_method", i);
		if (dept_check_printable(r, iv->contribution_method, f, 32, 0) != 0)
			return -1;
		snprintf(f, sizeof f, "investors[%zu].contribution_due_date", i);
		if (s_check_date(r, iv->contribution_due_date, f) != 0)
			return -1;
		if (strcmp(iv->contribution_due_date, m->established_date) < 0) {
			dept_error(r, E_BAD, f, "%s is before established_date", f);
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->investors[k]->party->id->id, iv->party->id->id) == 0) {
				snprintf(f, sizeof f, "investors[%zu]", i);
				dept_error(r, E_BAD, f, "%s is already investors[%zu]", f, k);
				return -1;
			}
		sum += iv->subscribed_capital_fen;
	}
	if (sum != m->registered_capital_fen) {
		dept_error(r, E_BAD, "investors",
			   "investors: the subscribed capital adds up to %lld fen, the registered capital is %lld fen", sum,
			   (long long)m->registered_capital_fen);
		return -1;
	}
	if (!s_vat_name(m->vat_taxpayer_type)) {
		dept_error(r, E_BAD, "vat_taxpayer_type", "vat_taxpayer_type: SMALL_SCALE or GENERAL is required");
		return -1;
	}
	if (m->n_invoice_types > MAX_INVOICE_TYPES) {
		dept_error(r, E_BAD, "invoice_types", "invoice_types: at most %d", MAX_INVOICE_TYPES);
		return -1;
	}
	for (size_t i = 0; i < m->n_invoice_types; i++) {
		if (!s_invoice_name(m->invoice_types[i]) ||
		    (i == 1 && m->invoice_types[0] == m->invoice_types[1])) {
			dept_error(r, E_BAD, "invoice_types", "invoice_types: DIGITAL_ORDINARY and DIGITAL_SPECIAL, each once");
			return -1;
		}
	}
	return 0;
}

static void on_registration(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
			    struct qiao_responder *r)
{
	const Qiao__V1__TaxpayerRegistrationRequest *m = (const Qiao__V1__TaxpayerRegistrationRequest *)body;
	if (s_check_registration(&r, m) != 0)
		return;
	char hash[65];
	dept_body_hash(req, hash);
	struct registration *g = calloc(1, sizeof *g);
	if (!g) {
		dept_error(&r, E_INTERNAL, NULL, "out of memory");
		return;
	}
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_register_tx(d, db, req, m, hash, g, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0)
		dept_error(&r, f.code, f.field, "%s", f.msg);
	else
		s_reg_reply(&r, g);
	free(g);
}

static int s_cancel_tx(struct dept *d, sqlite3 *db, const Qiao__V1__TaxpayerRegistrationCancelRequest *m,
		       struct registration *g, struct dept_fail *f)
{
	char hash[65];
	int rc = s_reg_load(db, m->registration_no, hash, g);
	if (rc < 0)
		return dept_dberr(f, d, db, "taxpayer_registration");
	if (rc == 0)
		return dept_fail(f, E_NOTFOUND, "registration_no", "no taxpayer registration %.64s", m->registration_no);
	if (strcmp(g->taxpayer_id, m->taxpayer_id) != 0)
		return dept_fail(f, E_REJECTED, "taxpayer_id", "registration %.64s is not of taxpayer %s",
				 m->registration_no, m->taxpayer_id);
	if (strcmp(g->status, "CANCELLED") == 0)
		return 0; /* already undone: as it stands */
	sqlite3_stmt *st = dept_prep(db, "UPDATE taxpayer_registration SET status = 'CANCELLED', cancelled_ms = ?2, "
					 "cancel_reason = ?3 WHERE registration_no = ?1");
	if (!st)
		return dept_dberr(f, d, db, "taxpayer_registration");
	dept_bind_text(st, 1, m->registration_no);
	dept_bind_int(st, 2, qiao_now_ms());
	dept_bind_text(st, 3, m->reason);
	if (dept_run(st) != 0)
		return dept_dberr(f, d, db, "taxpayer_registration update");
	dept_log(d, "taxpayer registration %s of %s cancelled", m->registration_no, g->taxpayer_id);
	return s_reg_load(db, m->registration_no, hash, g) == 1 ? 0 : dept_dberr(f, d, db, "taxpayer_registration");
}

static void on_registration_cancel(struct dept *d, const struct qiao_request *req, const ProtobufCMessage *body,
				   struct qiao_responder *r)
{
	(void)req;
	const Qiao__V1__TaxpayerRegistrationCancelRequest *m = (const Qiao__V1__TaxpayerRegistrationCancelRequest *)body;
	if (dept_check_ref(&r, m->registration_no, "registration_no") != 0 ||
	    dept_check_id(&r, QIAO_ID_USCC, m->taxpayer_id, "taxpayer_id", 0) != 0 ||
	    dept_check_printable(&r, m->reason, "reason", 500, 0) != 0)
		return;
	struct registration *g = calloc(1, sizeof *g);
	if (!g) {
		dept_error(&r, E_INTERNAL, NULL, "out of memory");
		return;
	}
	struct dept_fail f = {0};
	sqlite3 *db = dept_db_lock(d);
	int rc = dept_exec(db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = s_cancel_tx(d, db, m, g, &f);
	else
		dept_dberr(&f, d, db, "begin");
	if (rc == 0 && dept_exec(db, "COMMIT") != 0)
		rc = dept_dberr(&f, d, db, "commit");
	if (rc != 0)
		dept_exec(db, "ROLLBACK");
	dept_db_unlock(d);
	if (rc != 0)
		dept_error(&r, f.code, f.field, "%s", f.msg);
	else
		s_reg_reply(&r, g);
	free(g);
}

static const struct dept_service s_services[] = {
	{"tax-assessment.v1", &qiao__v1__tax_assessment_request__descriptor, &qiao__v1__tax_clearance__descriptor,
	 on_tax_assessment},
	{"filing-notice.v1", &qiao__v1__filing_notice__descriptor, &qiao__v1__filing_notice_result__descriptor,
	 on_filing_notice},
	{"taxpayer-registration.v1", &qiao__v1__taxpayer_registration_request__descriptor,
	 &qiao__v1__taxpayer_registration__descriptor, on_registration},
	{"taxpayer-registration-cancel.v1", &qiao__v1__taxpayer_registration_cancel_request__descriptor,
	 &qiao__v1__taxpayer_registration__descriptor, on_registration_cancel},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"tax", s_services, sizeof s_services / sizeof s_services[0], NULL};
	return dept_main(argc, argv, &def);
}
