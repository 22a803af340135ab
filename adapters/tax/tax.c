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

static const struct dept_service s_services[] = {
	{"tax-assessment.v1", &qiao__v1__tax_assessment_request__descriptor, &qiao__v1__tax_clearance__descriptor,
	 on_tax_assessment},
	{"filing-notice.v1", &qiao__v1__filing_notice__descriptor, &qiao__v1__filing_notice_result__descriptor,
	 on_filing_notice},
};

int main(int argc, char **argv)
{
	static const struct dept_def def = {"tax", s_services, sizeof s_services / sizeof s_services[0], NULL};
	return dept_main(argc, argv, &def);
}
