/*
 * test_dept_registry.c - qiao-registry (adapters/registry/) behind the real
 * gateway, called by the members that call it in 带押过户 (DOMAIN.md):
 * bank A (the old lender) for the opinion, its withdrawal and the
 * mortgage cancellation, bank B (the new lender) for the title summary,
 * the combined application and the e-title lookup, tax and housing for
 * their notices.  The happy path runs in the order of DOMAIN.md's steps;
 * every refusal, every idempotent repeat and every identifier kind the
 * services accept is tried, and the registry's database is read (read-only)
 * after each change.
 */
/* dept_harness.h's d_path() snprintf draws -Wformat-truncation from gcc
 * 12 at -O2 (reported to the lead); silenced for the harness only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "dept_harness.h"
#pragma GCC diagnostic pop

#include <sqlite3.h>

#include "bank.pb-c.h"
#include "housing.pb-c.h"
#include "licence.pb-c.h"
#include "qiao_id.h"
#include "qiao_issuer.h"
#include "realestate.pb-c.h"
#include "tax.pb-c.h"

#define REG "12150600MB0A12342K/realestate/"
#define REG_MEMBER "12150600MB0A12342K/realestate"
#define REG_USCC "12150600MB0A12342K"
#define P "带押过户"
#define CASE "case-2026-000888"

#define UNIT1 "150602001001GB00001F00010001" /* 张晓梅, bank A first rank */
#define UNIT2 "150602001001GB00001F00010002" /* 查封 */
#define UNIT3 "150602002003GB00012F00020101" /* 禁止转让约定 */
#define UNIT4 "150603001002GB00045F00030502" /* 共同共有, no mortgage */
#define UNIT5 "150602003001GB00078F00010103" /* 异议 */
#define UNIT_NONE "150602009009GB00999F00990099" /* valid, not in the register */
#define CERT1 "蒙(2020)鄂尔多斯市不动产权第0001234号"
#define CERT1_FW "蒙（2020）鄂尔多斯市不动产权第0001234号"
#define CERT1_OLD "蒙(2016)鄂尔多斯市不动产权第0003021号"
#define CERT2 "蒙(2020)鄂尔多斯市不动产权第0023456号"
#define CERT3 "蒙(2021)鄂尔多斯市不动产权第0034567号"
#define CERT5 "蒙(2022)鄂尔多斯市不动产权第0056789号"
#define PROOF_A "蒙(2020)鄂尔多斯市不动产证明第0005678号"
#define PROOF_B3 "蒙(2021)鄂尔多斯市不动产证明第0005678号"
#define PROOF_NONE "蒙(2019)鄂尔多斯市不动产证明第0999999号"
#define BANK_A_USCC "91150600MA0B56780F"
#define BANK_B_USCC "91150600MA0C9012X7"
#define SELLER "150621199003154522" /* 张晓梅 */
#define BUYER "15060219850612003X"  /* 李建国 */

/* invalid identifiers, one per kind */
#define BAD_UNIT "150602001001GB00001X00010001"     /* 定着物特征码 X */
#define BAD_CERT "蒙(2019)鄂尔多斯市不动产权第12345号" /* N of 5 digits */
#define BAD_PROOF "蒙(2019)鄂尔多斯市不动产证明第A004567号"
#define BAD_RESIDENT "150621199003154521"           /* check digit */
#define BAD_USCC "91150600MA0B56780G"               /* check character */

#define C1 "A-TY-2026-0001"
#define C2 "A-TY-2026-0002"
#define CONTRACT "HT-150602-2026-00088"
#define FILING "BA-150602-2026-00088"
#define ESCROW "JG-150602-2026-00088"
#define ASSESS "HD-150602-2026-00088"
#define VOUCHER "SP-150602-2026-00001"
#define SLBH "SL-150600-2026-000888"
#define PAYOFF 85000000LL
#define PRICE 160000000LL

static qiao_adapter_t *s_a, *s_b, *s_tax, *s_housing, *s_market;
static sqlite3 *s_db;

/* ---- the registry's database, read-only ------------------------------- */

static sqlite3_stmt *q_prep(const char *sql, const char *p1, const char *p2)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s_db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "SQL %s: %s\n", sql, sqlite3_errmsg(s_db));
		return NULL;
	}
	if (p1)
		sqlite3_bind_text(st, 1, p1, -1, SQLITE_TRANSIENT);
	if (p2)
		sqlite3_bind_text(st, 2, p2, -1, SQLITE_TRANSIENT);
	return st;
}

/* The first column of the first row as an integer; -999 without a row. */
static long long q_int(const char *sql, const char *p1, const char *p2)
{
	sqlite3_stmt *st = q_prep(sql, p1, p2);
	long long v = -999;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ... as text into buf ("" without a row). */
static const char *q_text(char *buf, size_t n, const char *sql, const char *p1, const char *p2)
{
	sqlite3_stmt *st = q_prep(sql, p1, p2);
	buf[0] = '\0';
	if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* ... as a blob (malloc'd, caller frees) or NULL. */
static uint8_t *q_blob(size_t *len, const char *sql, const char *p1)
{
	sqlite3_stmt *st = q_prep(sql, p1, NULL);
	uint8_t *b = NULL;
	*len = 0;
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 0);
		b = malloc(n > 0 ? (size_t)n : 1);
		if (b && n > 0)
			memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
		*len = n > 0 ? (size_t)n : 0;
	}
	sqlite3_finalize(st);
	return b;
}

/* ---- calls -------------------------------------------------------------- */

static char s_msg[1024];

static ProtobufCMessage *call(qiao_adapter_t *a, const char *svc, const ProtobufCMessage *req,
			      const ProtobufCMessageDescriptor *rd, int *code)
{
	char service[200];
	snprintf(service, sizeof service, REG "%s", svc);
	ProtobufCMessage *m = d_call(a, service, req, rd, P, CASE, NULL, 0, code, s_msg, sizeof s_msg);
	if (*code != 0 && getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "  %s -> %d %s\n", svc, *code, s_msg);
	return m;
}

/* A call that must succeed; the answer (free with protobuf_c_message_free_unpacked). */
static ProtobufCMessage *ok(qiao_adapter_t *a, const char *svc, const ProtobufCMessage *req,
			    const ProtobufCMessageDescriptor *rd, int line)
{
	int code;
	ProtobufCMessage *m = call(a, svc, req, rd, &code);
	if (!m)
		fprintf(stderr, "line %d: %s failed: %d %s\n", line, svc, code, s_msg);
	CHECK(m != NULL);
	return m;
}
#define OK(a, svc, req, rd) ok(a, svc, &(req).base, rd, __LINE__)

/* A call that must be refused with `want` naming `field` (NULL: any). */
static void err(qiao_adapter_t *a, const char *svc, const ProtobufCMessage *req, int want, const char *field, int line)
{
	int code;
	ProtobufCMessage *m = call(a, svc, req, &qiao__v1__empty__descriptor, &code);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	char f[300];
	snprintf(f, sizeof f, " %s:", field ? field : "");
	int good = code == want && (!field || strstr(s_msg, f) != NULL);
	if (!good)
		fprintf(stderr, "line %d: %s: want %s field %s, got %d: %s\n", line, svc, qiao_error_code_name(want),
			field ? field : "-", code, s_msg);
	CHECK(good);
}
#define ERR(a, svc, req, want, field) err(a, svc, &(req).base, QIAO__V1__ERROR_CODE__##want, field, __LINE__)

/* ---- message builders ------------------------------------------------------ */

/* Wall-clock ms (instants in messages are UTC ms; h_now() is monotonic). */
static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct party {
	Qiao__V1__Party p;
	Qiao__V1__DataSubject s;
};

static Qiao__V1__Party *mkparty(struct party *x, const char *name, int type, const char *id)
{
	qiao__v1__party__init(&x->p);
	qiao__v1__data_subject__init(&x->s);
	x->p.name = (char *)name;
	x->s.type = type;
	x->s.id = (char *)id;
	x->p.id = &x->s;
	return &x->p;
}

#define RES QIAO__V1__SUBJECT_TYPE__RESIDENT_ID
#define USCC QIAO__V1__SUBJECT_TYPE__USCC

struct opinion {
	Qiao__V1__MortgageeOpinion m;
	struct party bank;
};

static void mk_opinion(struct opinion *o, const char *consent)
{
	qiao__v1__mortgagee_opinion__init(&o->m);
	o->m.mortgagee = mkparty(&o->bank, "银行A 鄂尔多斯分行", USCC, BANK_A_USCC);
	o->m.original_proof_no = PROOF_A;
	o->m.unit_no = UNIT1;
	o->m.cert_no = CERT1;
	o->m.payoff_amount_fen = PAYOFF;
	o->m.consent_no = (char *)consent;
	o->m.consent_valid_until_ms = wall_ms() + 30LL * 86400000;
	o->m.loan_contract_no = "BOA-GRZF-2020-0618001";
}

struct withdrawal {
	Qiao__V1__ConsentWithdrawal w;
};

static void mk_withdrawal(struct withdrawal *w, const char *consent)
{
	qiao__v1__consent_withdrawal__init(&w->w);
	w->w.consent_no = (char *)consent;
	w->w.quote_no = "A-BJ-2026-0001";
	w->w.mortgage_proof_no = PROOF_A;
	w->w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_QUOTE_SUPERSEDED;
}

struct taxn {
	Qiao__V1__TaxClearanceNotice n;
	Qiao__V1__TaxClearance c;
	Qiao__V1__TaxItem it[2], *itp[2];
	struct party buyer, seller;
};

static void mk_tax(struct taxn *t)
{
	qiao__v1__tax_clearance_notice__init(&t->n);
	qiao__v1__tax_clearance__init(&t->c);
	t->c.assessment_no = ASSESS;
	t->c.contract_no = CONTRACT;
	t->c.unit_no = UNIT1;
	t->c.status = QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID;
	t->c.assessed_price_fen = PRICE;
	for (int i = 0; i < 2; i++) {
		qiao__v1__tax_item__init(&t->it[i]);
		t->itp[i] = &t->it[i];
	}
	t->it[0].tax_type = QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX;
	t->it[0].payer = mkparty(&t->buyer, "李建国", RES, BUYER);
	t->it[0].taxable_base_fen = PRICE;
	t->it[0].rate_ppm = 15000;
	t->it[0].amount_due_fen = 2400000;
	t->it[0].amount_paid_fen = 2400000;
	t->it[0].voucher_no = VOUCHER;
	t->it[0].paid_ms = wall_ms() - 3600000;
	t->it[1].tax_type = QIAO__V1__TAX_TYPE__TAX_TYPE_INDIVIDUAL_INCOME_TAX; /* 满五唯一: exempt */
	t->it[1].payer = mkparty(&t->seller, "张晓梅", RES, SELLER);
	t->it[1].taxable_base_fen = PRICE;
	t->c.items = t->itp;
	t->c.n_items = 2;
	t->c.total_due_fen = 2400000;
	t->c.total_paid_fen = 2400000;
	t->c.cleared_ms = wall_ms() - 3600000;
	t->n.clearance = &t->c;
}

struct filing {
	Qiao__V1__FilingNotice n;
	struct party seller, buyer;
	Qiao__V1__Party *sp[1], *bp[1];
};

static void mk_filing(struct filing *f)
{
	qiao__v1__filing_notice__init(&f->n);
	f->n.contract_no = CONTRACT;
	f->n.filing_no = FILING;
	f->n.unit_no = UNIT1;
	f->n.cert_no = CERT1_FW; /* full-width brackets: normalised */
	f->n.price_fen = PRICE;
	f->sp[0] = mkparty(&f->seller, "张晓梅", RES, SELLER);
	f->bp[0] = mkparty(&f->buyer, "李建国", RES, BUYER);
	f->n.sellers = f->sp;
	f->n.n_sellers = 1;
	f->n.buyers = f->bp;
	f->n.n_buyers = 1;
	f->n.escrow_agreement_no = ESCROW;
	f->n.escrow_amount_fen = 90000000;
	f->n.filed_ms = wall_ms() - 7200000;
}

struct app {
	Qiao__V1__CombinedRegistrationApplication a;
	Qiao__V1__RightHolder holder, *holders[1];
	struct party buyer, seller, mgor, debtor, bank;
	Qiao__V1__Party *obligors[1], *mortgagors[1], *debtors[1];
	char *vouchers[1];
};

static void mk_app(struct app *x, const char *slbh)
{
	Qiao__V1__CombinedRegistrationApplication *a = &x->a;
	qiao__v1__combined_registration_application__init(a);
	a->slbh = (char *)slbh;
	a->mode = QIAO__V1__REGISTRATION_MODE__REGISTRATION_MODE_RANKED_MORTGAGE;
	a->original_cert_no = CERT1;
	a->unit_no = UNIT1;
	qiao__v1__right_holder__init(&x->holder);
	x->holder.party = mkparty(&x->buyer, "李建国", RES, BUYER);
	x->holders[0] = &x->holder;
	a->right_holders = x->holders;
	a->n_right_holders = 1;
	a->co_ownership = QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_SOLE;
	x->obligors[0] = mkparty(&x->seller, "张晓梅", RES, SELLER);
	a->obligors = x->obligors;
	a->n_obligors = 1;
	a->price_fen = PRICE;
	a->contract_no = CONTRACT;
	a->filing_no = FILING;
	x->vouchers[0] = VOUCHER;
	a->tax_voucher_nos = x->vouchers;
	a->n_tax_voucher_nos = 1;
	x->mortgagors[0] = mkparty(&x->mgor, "李建国", RES, BUYER);
	a->mortgagors = x->mortgagors;
	a->n_mortgagors = 1;
	a->mortgagee = mkparty(&x->bank, "银行B 鄂尔多斯分行", USCC, BANK_B_USCC);
	x->debtors[0] = mkparty(&x->debtor, "李建国", RES, BUYER);
	a->debtors = x->debtors;
	a->n_debtors = 1;
	a->mortgage_type = QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL;
	a->secured_amount_fen = 110000000;
	a->debt_start_date = "2026-12-01";
	a->debt_end_date = "2056-11-30";
	a->guarantee_scope = "主债权及利息、违约金、损害赔偿金和实现抵押权的费用";
	a->rank = 2;
	a->mortgage_contract_no = "B-DY-2026-0088";
	a->loan_contract_no = "B-JK-2026-0088";
	a->original_mortgage_proof_no = PROOF_A;
	a->mortgagee_consent_no = C2;
	a->escrow_agreement_no = ESCROW;
}

static Qiao__V1__TitleSummary *summary_of(const char *unit, const char *cert)
{
	Qiao__V1__TitleSummaryRequest q = QIAO__V1__TITLE_SUMMARY_REQUEST__INIT;
	struct party buyer;
	q.unit_no = (char *)(unit ? unit : "");
	q.cert_no = (char *)(cert ? cert : "");
	q.authorisation_no = "SQ-2026-0088";
	q.authorised_by = mkparty(&buyer, "李建国", RES, BUYER);
	q.purpose = P;
	return (Qiao__V1__TitleSummary *)OK(s_b, "title-summary.v1", q, &qiao__v1__title_summary__descriptor);
}

/* A combined application that must be answered REJECTED with a reason
 * containing `why`; no title may be created by it. */
static void rejected(struct app *x, const char *why, int line)
{
	long long titles = q_int("SELECT count(*) FROM fdcq", NULL, NULL);
	int code;
	Qiao__V1__CombinedRegistrationResult *r = (Qiao__V1__CombinedRegistrationResult *)call(
		s_b, "combined-registration.v1", &x->a.base, &qiao__v1__combined_registration_result__descriptor, &code);
	int good = r && r->outcome == QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REJECTED &&
		   strstr(r->rejection_reason, why) != NULL && r->new_cert_no[0] == '\0' && r->slbh[0] != '\0';
	if (!good)
		fprintf(stderr, "line %d: want REJECTED with '%s', got %d %s / %s\n", line, why, code, s_msg,
			r ? r->rejection_reason : "-");
	CHECK(good);
	CHECK(q_int("SELECT count(*) FROM fdcq", NULL, NULL) == titles);
	if (r && x->a.slbh[0])
		CHECK(q_int("SELECT zt FROM djsl WHERE slbh = ?1", x->a.slbh, NULL) == 3);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}
#define REJECTED_WITH(x, why) rejected(x, why, __LINE__)

/* The licence bytes verify as the registry's issuer signature and decode. */
static Qiao__V1__ElectronicLicence *verified_licence(const Qiao__V1__SignedLicence *sl)
{
	CHECK(sl != NULL && sl->signature != NULL);
	if (!sl || !sl->signature)
		return NULL;
	char why[200] = "";
	int rc = qiao_issuer_verify(sl->signature, QIAO_DOMAIN_LICENCE, sl->licence.data, sl->licence.len, REG_MEMBER,
				    d_m[D_REGISTRY].k->sign_pk, why, sizeof why);
	if (rc != 0)
		fprintf(stderr, "issuer signature: %s\n", why);
	CHECK(rc == 0);
	/* a changed byte does not verify */
	uint8_t *copy = malloc(sl->licence.len);
	memcpy(copy, sl->licence.data, sl->licence.len);
	copy[sl->licence.len / 2] ^= 1;
	CHECK(qiao_issuer_verify(sl->signature, QIAO_DOMAIN_LICENCE, copy, sl->licence.len, REG_MEMBER,
				 d_m[D_REGISTRY].k->sign_pk, NULL, 0) != 0);
	free(copy);
	return qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data);
}

/* ---- the steps ------------------------------------------------------------- */

static void t_title_summary(void)
{
	Qiao__V1__TitleSummary *s = summary_of(UNIT1, NULL);
	if (s) {
		CHECK(strcmp(s->unit_no, UNIT1) == 0);
		CHECK(strcmp(s->cert_no, CERT1) == 0);
		CHECK(strstr(s->location, "锦绣园") != NULL);
		CHECK(s->n_holders == 1 && strcmp(s->holders[0]->party->id->id, SELLER) == 0 &&
		      strcmp(s->holders[0]->party->name, "张晓梅") == 0);
		CHECK(s->co_ownership == QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_SOLE);
		CHECK(s->n_mortgages == 1);
		if (s->n_mortgages == 1) {
			CHECK(s->mortgages[0]->rank == 1);
			CHECK(strcmp(s->mortgages[0]->proof_no, PROOF_A) == 0);
			CHECK(strcmp(s->mortgages[0]->mortgagee->id->id, BANK_A_USCC) == 0);
			CHECK(s->mortgages[0]->secured_amount_fen == 105000000);
			CHECK(s->mortgages[0]->n_mortgagors == 1 && s->mortgages[0]->n_debtors == 1);
		}
		CHECK(!s->seized && !s->objection && !s->transfer_restricted && !s->pre_notice);
		CHECK(s->as_of_ms > 0 && s->building_area_dm2 == 12856);
		protobuf_c_message_free_unpacked(&s->base, NULL);
	}
	/* by certificate number, full-width brackets */
	s = summary_of(NULL, CERT1_FW);
	CHECK(s && strcmp(s->unit_no, UNIT1) == 0);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
	s = summary_of(UNIT2, NULL);
	CHECK(s && s->seized && !s->transfer_restricted);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
	s = summary_of(UNIT3, NULL);
	CHECK(s && s->transfer_restricted && !s->seized && s->n_mortgages == 1 &&
	      strstr(s->restriction_note, "不得转让") != NULL && s->mortgages[0]->transfer_restricted);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
	s = summary_of(UNIT4, NULL);
	CHECK(s && s->n_mortgages == 0 && s->n_holders == 2 &&
	      s->co_ownership == QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_JOINT);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
	s = summary_of(UNIT5, NULL);
	CHECK(s && s->objection && s->holders[0]->party->id->type == USCC);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
	CHECK(q_int("SELECT count(*) FROM cxjl WHERE cxf = ?1 AND cxsy = ?2", BANK_B, P) == 6);
	CHECK(q_int("SELECT count(*) FROM cxjl WHERE bdcdyh = ?1 AND sqsbh = 'SQ-2026-0088' AND sqrzjh = ?2", UNIT1,
		    BUYER) == 2);

	/* refusals */
	Qiao__V1__TitleSummaryRequest q = QIAO__V1__TITLE_SUMMARY_REQUEST__INIT;
	struct party who;
	q.authorisation_no = "SQ-2026-0088";
	q.authorised_by = mkparty(&who, "李建国", RES, BUYER);
	q.purpose = P;
	q.unit_no = UNIT_NONE;
	ERR(s_b, "title-summary.v1", q, NOT_FOUND, "unit_no");
	q.unit_no = "";
	q.cert_no = CERT1_OLD; /* a closed certificate is not a title in force */
	ERR(s_b, "title-summary.v1", q, NOT_FOUND, "cert_no");
	q.unit_no = UNIT1;
	q.cert_no = CERT1;
	ERR(s_b, "title-summary.v1", q, BAD_REQUEST, NULL);
	q.unit_no = "";
	q.cert_no = "";
	ERR(s_b, "title-summary.v1", q, BAD_REQUEST, "unit_no");
	q.unit_no = BAD_UNIT;
	ERR(s_b, "title-summary.v1", q, INVALID_IDENTIFIER, "unit_no");
	q.unit_no = "";
	q.cert_no = BAD_CERT;
	ERR(s_b, "title-summary.v1", q, INVALID_IDENTIFIER, "cert_no");
	q.cert_no = "";
	q.unit_no = UNIT1;
	mkparty(&who, "李建国", RES, BAD_RESIDENT);
	ERR(s_b, "title-summary.v1", q, INVALID_IDENTIFIER, "authorised_by.id.id");
	mkparty(&who, "李建国", RES, BUYER);
	q.authorisation_no = "";
	ERR(s_b, "title-summary.v1", q, BAD_REQUEST, "authorisation_no");
	q.authorisation_no = "SQ-2026-0088";
	q.purpose = "带押过户 其他事由";
	ERR(s_b, "title-summary.v1", q, BAD_REQUEST, "purpose");
	q.purpose = P;
	/* the market regulator has no grant */
	ERR(s_market, "title-summary.v1", q, POLICY_DENIED, NULL);
	CHECK(q_int("SELECT count(*) FROM cxjl", NULL, NULL) == 6);
}

static void t_opinion_and_withdrawal(void)
{
	struct opinion o;
	mk_opinion(&o, C1);
	Qiao__V1__MortgageeOpinionResult *r = (Qiao__V1__MortgageeOpinionResult *)OK(
		s_a, "mortgagee-opinion.v1", o.m, &qiao__v1__mortgagee_opinion_result__descriptor);
	char receipt[64] = "", buf[256];
	int64_t when = 0;
	if (r) {
		if (!r->accepted)
			fprintf(stderr, "opinion refused: %s\n", r->refusal_reason);
		CHECK(r->accepted && r->receipt_no[0] && r->received_ms > 0 && !r->refusal_reason[0]);
		snprintf(receipt, sizeof receipt, "%s", r->receipt_no);
		when = r->received_ms;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	CHECK(q_int("SELECT zt FROM ydyqryj WHERE tysbh = ?1", C1, NULL) == 1);
	CHECK(q_int("SELECT jqje FROM ydyqryj WHERE tysbh = ?1", C1, NULL) == PAYOFF);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT bdcdjzmh FROM ydyqryj WHERE tysbh = ?1", C1, NULL), PROOF_A) == 0);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT sqf FROM ydyqryj WHERE tysbh = ?1", C1, NULL), BANK_A) == 0);
	/* repeated: the same receipt, no second row */
	r = (Qiao__V1__MortgageeOpinionResult *)OK(s_a, "mortgagee-opinion.v1", o.m,
						   &qiao__v1__mortgagee_opinion_result__descriptor);
	CHECK(r && r->accepted && strcmp(r->receipt_no, receipt) == 0 && r->received_ms == when);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM ydyqryj", NULL, NULL) == 1);

	/* refusals: invalid identifiers, unknown mortgage, wrong mortgagee, expired */
	struct opinion x;
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.mortgagee = mkparty(&x.bank, "银行A 鄂尔多斯分行", USCC, BAD_USCC);
	ERR(s_a, "mortgagee-opinion.v1", x.m, INVALID_IDENTIFIER, "mortgagee.id.id");
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.original_proof_no = BAD_PROOF;
	ERR(s_a, "mortgagee-opinion.v1", x.m, INVALID_IDENTIFIER, "original_proof_no");
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.unit_no = BAD_UNIT;
	ERR(s_a, "mortgagee-opinion.v1", x.m, INVALID_IDENTIFIER, "unit_no");
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.cert_no = BAD_CERT;
	ERR(s_a, "mortgagee-opinion.v1", x.m, INVALID_IDENTIFIER, "cert_no");
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.payoff_amount_fen = 0;
	ERR(s_a, "mortgagee-opinion.v1", x.m, BAD_REQUEST, "payoff_amount_fen");
	mk_opinion(&x, "A-TY-2026-0099");
	x.m.original_proof_no = PROOF_NONE;
	ERR(s_a, "mortgagee-opinion.v1", x.m, NOT_FOUND, "original_proof_no");
	const char *why[] = {"抵押权人与登记簿不符", "同意书已过有效期", "不在不动产单元", "不是该抵押权的抵押权人"};
	for (int i = 0; i < 4; i++) {
		mk_opinion(&x, "A-TY-2026-0099");
		if (i == 0)
			x.m.mortgagee = mkparty(&x.bank, "银行B 鄂尔多斯分行", USCC, BANK_B_USCC);
		if (i == 1)
			x.m.consent_valid_until_ms = wall_ms() - 1000;
		if (i == 2)
			x.m.unit_no = UNIT2;
		if (i == 3) { /* bank B's mortgage on unit 3, claimed by bank A for bank B */
			x.m.original_proof_no = PROOF_B3;
			x.m.unit_no = UNIT3;
			x.m.cert_no = CERT3;
			x.m.mortgagee = mkparty(&x.bank, "银行B 鄂尔多斯分行", USCC, BANK_B_USCC);
		}
		r = (Qiao__V1__MortgageeOpinionResult *)OK(s_a, "mortgagee-opinion.v1", x.m,
							   &qiao__v1__mortgagee_opinion_result__descriptor);
		int good = r && !r->accepted && !r->receipt_no[0] && strstr(r->refusal_reason, why[i]);
		if (!good)
			fprintf(stderr, "opinion refusal %d: %s\n", i, r ? r->refusal_reason : "-");
		CHECK(good);
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	CHECK(q_int("SELECT count(*) FROM ydyqryj", NULL, NULL) == 1);

	/* the old lender withdraws C1 (the quote is superseded) */
	struct withdrawal w;
	mk_withdrawal(&w, C1);
	Qiao__V1__ConsentWithdrawalResult *wr = (Qiao__V1__ConsentWithdrawalResult *)OK(
		s_a, "consent-withdrawal.v1", w.w, &qiao__v1__consent_withdrawal_result__descriptor);
	int64_t wms = 0;
	CHECK(wr && wr->withdrawn && wr->withdrawn_ms > 0);
	if (wr) {
		wms = wr->withdrawn_ms;
		protobuf_c_message_free_unpacked(&wr->base, NULL);
	}
	CHECK(q_int("SELECT zt FROM ydyqryj WHERE tysbh = ?1", C1, NULL) == 2);
	CHECK(q_int("SELECT chyy FROM ydyqryj WHERE tysbh = ?1", C1, NULL) == 4);
	wr = (Qiao__V1__ConsentWithdrawalResult *)OK(s_a, "consent-withdrawal.v1", w.w,
						     &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(wr && wr->withdrawn && wr->withdrawn_ms == wms);
	if (wr)
		protobuf_c_message_free_unpacked(&wr->base, NULL);
	mk_withdrawal(&w, "A-TY-2026-0404");
	ERR(s_a, "consent-withdrawal.v1", w.w, NOT_FOUND, "consent_no");
	mk_withdrawal(&w, C1);
	w.w.mortgage_proof_no = BAD_PROOF;
	ERR(s_a, "consent-withdrawal.v1", w.w, INVALID_IDENTIFIER, "mortgage_proof_no");
	mk_withdrawal(&w, C1);
	w.w.reason = QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER;
	ERR(s_a, "consent-withdrawal.v1", w.w, BAD_REQUEST, "reason_note");

	/* without a valid opinion the combined application is refused */
	struct app ap;
	mk_app(&ap, "SL-REJ-0001");
	REJECTED_WITH(&ap, "未收到原抵押权人");

	/* the renewed quote's consent C2 */
	mk_opinion(&o, C2);
	r = (Qiao__V1__MortgageeOpinionResult *)OK(s_a, "mortgagee-opinion.v1", o.m,
						   &qiao__v1__mortgagee_opinion_result__descriptor);
	CHECK(r && r->accepted && strcmp(r->receipt_no, receipt) != 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT zt FROM ydyqryj WHERE tysbh = ?1", C2, NULL) == 1);
}

static void t_notices(void)
{
	struct app ap;
	mk_app(&ap, "SL-REJ-0002");
	REJECTED_WITH(&ap, "完税信息");

	/* step 5: tax */
	struct taxn t;
	mk_tax(&t);
	Qiao__V1__TaxClearanceNoticeResult *r = (Qiao__V1__TaxClearanceNoticeResult *)OK(
		s_tax, "tax-clearance-notice.v1", t.n, &qiao__v1__tax_clearance_notice_result__descriptor);
	int64_t when = 0;
	CHECK(r && r->received && r->received_ms > 0);
	if (r) {
		when = r->received_ms;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	char buf[256];
	CHECK(q_int("SELECT wszt FROM wsxx WHERE hdbh = ?1", ASSESS, NULL) == 2);
	CHECK(q_int("SELECT count(*) FROM wsxx_sp WHERE hdbh = ?1", ASSESS, NULL) == 2);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT nsrzjh FROM wsxx_sp WHERE sphm = ?1", VOUCHER, NULL), BUYER) == 0);
	r = (Qiao__V1__TaxClearanceNoticeResult *)OK(s_tax, "tax-clearance-notice.v1", t.n,
						     &qiao__v1__tax_clearance_notice_result__descriptor);
	CHECK(r && r->received && r->received_ms == when);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM wsxx", NULL, NULL) == 1 && q_int("SELECT count(*) FROM wsxx_sp", NULL, NULL) == 2);
	mk_tax(&t);
	t.c.unit_no = BAD_UNIT;
	ERR(s_tax, "tax-clearance-notice.v1", t.n, INVALID_IDENTIFIER, "clearance.unit_no");
	mk_tax(&t);
	mkparty(&t.buyer, "李建国", RES, BAD_RESIDENT);
	ERR(s_tax, "tax-clearance-notice.v1", t.n, INVALID_IDENTIFIER, "clearance.items[0].payer.id.id");
	mk_tax(&t);
	t.c.status = QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_ASSESSED;
	ERR(s_tax, "tax-clearance-notice.v1", t.n, BAD_REQUEST, "clearance.status");
	mk_tax(&t);
	t.c.total_paid_fen = 1;
	ERR(s_tax, "tax-clearance-notice.v1", t.n, BAD_REQUEST, "clearance.total_paid_fen");
	mk_tax(&t);
	t.c.assessment_no = "HD-150602-2026-00404";
	t.c.unit_no = UNIT_NONE;
	r = (Qiao__V1__TaxClearanceNoticeResult *)OK(s_tax, "tax-clearance-notice.v1", t.n,
						     &qiao__v1__tax_clearance_notice_result__descriptor);
	CHECK(r && !r->received && strstr(r->refusal_reason, UNIT_NONE));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM wsxx", NULL, NULL) == 1);

	mk_app(&ap, "SL-REJ-0003");
	REJECTED_WITH(&ap, "网签备案");

	/* step 5: housing */
	struct filing f;
	mk_filing(&f);
	Qiao__V1__FilingNoticeResult *fr = (Qiao__V1__FilingNoticeResult *)OK(
		s_housing, "filing-notice.v1", f.n, &qiao__v1__filing_notice_result__descriptor);
	CHECK(fr && fr->received && fr->received_ms > 0);
	if (fr) {
		when = fr->received_ms;
		protobuf_c_message_free_unpacked(&fr->base, NULL);
	}
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT bdcqzh FROM baxx WHERE babh = ?1", FILING, NULL), CERT1) == 0);
	CHECK(q_int("SELECT jgje FROM baxx WHERE babh = ?1", FILING, NULL) == 90000000);
	CHECK(q_int("SELECT count(*) FROM baxx_dsr WHERE babh = ?1", FILING, NULL) == 2);
	fr = (Qiao__V1__FilingNoticeResult *)OK(s_housing, "filing-notice.v1", f.n,
						&qiao__v1__filing_notice_result__descriptor);
	CHECK(fr && fr->received && fr->received_ms == when);
	if (fr)
		protobuf_c_message_free_unpacked(&fr->base, NULL);
	CHECK(q_int("SELECT count(*) FROM baxx", NULL, NULL) == 1 && q_int("SELECT count(*) FROM baxx_dsr", NULL, NULL) == 2);
	mk_filing(&f);
	f.n.cert_no = BAD_CERT;
	ERR(s_housing, "filing-notice.v1", f.n, INVALID_IDENTIFIER, "cert_no");
	mk_filing(&f);
	mkparty(&f.buyer, "李建国", RES, BAD_RESIDENT);
	ERR(s_housing, "filing-notice.v1", f.n, INVALID_IDENTIFIER, "buyers[0].id.id");
	mk_filing(&f);
	f.n.escrow_amount_fen = 0;
	ERR(s_housing, "filing-notice.v1", f.n, BAD_REQUEST, "escrow_amount_fen");
	mk_filing(&f);
	f.n.filing_no = "BA-150602-2026-00404";
	f.n.cert_no = CERT2; /* not this unit's certificate */
	fr = (Qiao__V1__FilingNoticeResult *)OK(s_housing, "filing-notice.v1", f.n,
						&qiao__v1__filing_notice_result__descriptor);
	CHECK(fr && !fr->received && strstr(fr->refusal_reason, "现行证书"));
	if (fr)
		protobuf_c_message_free_unpacked(&fr->base, NULL);
	CHECK(q_int("SELECT count(*) FROM baxx", NULL, NULL) == 1);
}

static void t_combined_refusals(void)
{
	struct app x;
	/* the register forbids it */
	mk_app(&x, "SL-REJ-0010");
	x.a.unit_no = UNIT2;
	x.a.original_cert_no = CERT2;
	REJECTED_WITH(&x, "查封");
	mk_app(&x, "SL-REJ-0011");
	x.a.unit_no = UNIT3;
	x.a.original_cert_no = CERT3;
	REJECTED_WITH(&x, "禁止或限制转让");
	mk_app(&x, "SL-REJ-0012");
	x.a.unit_no = UNIT5;
	x.a.original_cert_no = CERT5;
	REJECTED_WITH(&x, "异议");
	mk_app(&x, "SL-REJ-0013");
	x.a.original_cert_no = CERT2; /* valid, but not unit 1's */
	REJECTED_WITH(&x, "原证书号");
	mk_app(&x, "SL-REJ-0014");
	mkparty(&x.seller, "王强", RES, "150602197803150011");
	REJECTED_WITH(&x, "义务人");
	mk_app(&x, "SL-REJ-0015");
	x.a.mortgagee_consent_no = C1; /* the withdrawn consent */
	REJECTED_WITH(&x, "同意书编号");
	mk_app(&x, "SL-REJ-0016");
	x.a.tax_voucher_nos[0] = "SP-150602-2026-09999";
	REJECTED_WITH(&x, "税票号");
	mk_app(&x, "SL-REJ-0017");
	x.a.price_fen = PRICE - 100;
	REJECTED_WITH(&x, "交易价格");
	mk_app(&x, "SL-REJ-0018");
	x.a.rank = 1;
	REJECTED_WITH(&x, "抵押顺位应为 2");
	mk_app(&x, "SL-REJ-0019");
	x.a.original_mortgage_proof_no = "";
	x.a.mortgagee_consent_no = "";
	REJECTED_WITH(&x, "原抵押登记证明号");
	mk_app(&x, "SL-REJ-0020");
	x.a.mode = QIAO__V1__REGISTRATION_MODE__REGISTRATION_MODE_DOUBLE_PRE_NOTICE;
	REJECTED_WITH(&x, "双预告");
	/* a refusal is the answer to its 受理编号: asked again, the same */
	mk_app(&x, "SL-REJ-0002");
	REJECTED_WITH(&x, "完税信息");
	mk_app(&x, "");
	x.a.unit_no = UNIT2;
	x.a.original_cert_no = CERT2;
	REJECTED_WITH(&x, "查封"); /* the registry assigns a 受理编号 */
	mk_app(&x, "SL-REJ-0021");
	x.a.unit_no = UNIT_NONE;
	ERR(s_b, "combined-registration.v1", x.a, NOT_FOUND, "unit_no");

	/* malformed applications never reach the register */
	mk_app(&x, "SL-BAD-0001");
	x.a.unit_no = BAD_UNIT;
	ERR(s_b, "combined-registration.v1", x.a, INVALID_IDENTIFIER, "unit_no");
	mk_app(&x, "SL-BAD-0001");
	x.a.original_cert_no = BAD_CERT;
	ERR(s_b, "combined-registration.v1", x.a, INVALID_IDENTIFIER, "original_cert_no");
	mk_app(&x, "SL-BAD-0001");
	x.a.original_mortgage_proof_no = BAD_PROOF;
	ERR(s_b, "combined-registration.v1", x.a, INVALID_IDENTIFIER, "original_mortgage_proof_no");
	mk_app(&x, "SL-BAD-0001");
	mkparty(&x.buyer, "李建国", RES, BAD_RESIDENT);
	ERR(s_b, "combined-registration.v1", x.a, INVALID_IDENTIFIER, "right_holders[0].party.id.id");
	mk_app(&x, "SL-BAD-0001");
	mkparty(&x.bank, "银行B 鄂尔多斯分行", USCC, BAD_USCC);
	ERR(s_b, "combined-registration.v1", x.a, INVALID_IDENTIFIER, "mortgagee.id.id");
	mk_app(&x, "SL-BAD-0001");
	mkparty(&x.bank, "李建国", RES, BUYER);
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "mortgagee.id.type");
	mk_app(&x, "SL-BAD-0001");
	x.a.debt_end_date = "2026-11-30";
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "debt_end_date");
	mk_app(&x, "SL-BAD-0001");
	x.a.debt_start_date = "2026-02-30";
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "debt_start_date");
	mk_app(&x, "SL-BAD-0001");
	x.a.max_amount_fen = 5;
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "max_amount_fen");
	mk_app(&x, "SL-BAD-0001");
	x.a.escrow_agreement_no = "";
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "escrow_agreement_no");
	mk_app(&x, "SL-BAD-0001");
	x.a.n_tax_voucher_nos = 0;
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "tax_voucher_nos");
	mk_app(&x, "SL-BAD-0001");
	x.a.transfer_restricted = 1;
	ERR(s_b, "combined-registration.v1", x.a, BAD_REQUEST, "restriction_note");
	CHECK(q_int("SELECT count(*) FROM djsl WHERE slbh = 'SL-BAD-0001'", NULL, NULL) == 0);
	CHECK(q_int("SELECT qszt FROM fdcq WHERE bdcqzh = ?1", CERT1, NULL) == 1);
}

static char s_cert[256], s_proof[256], s_licence[128];
static uint8_t *s_licence_bytes;
static size_t s_licence_len;

static void t_combined_registration(void)
{
	struct app x;
	mk_app(&x, SLBH);
	Qiao__V1__CombinedRegistrationResult *r = (Qiao__V1__CombinedRegistrationResult *)OK(
		s_b, "combined-registration.v1", x.a, &qiao__v1__combined_registration_result__descriptor);
	if (!r)
		return;
	char why[200] = "", buf[512], want_prefix[128];
	CHECK(r->outcome == QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REGISTERED);
	CHECK(strcmp(r->slbh, SLBH) == 0 && !r->rejection_reason[0]);
	CHECK(qiao_id_check_cert(r->new_cert_no, NULL, 0, why, sizeof why) == 0);
	char year[5], today[11];
	time_t now = time(NULL) + 8 * 3600; /* the registry dates in China Standard Time */
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	snprintf(year, sizeof year, "%.4s", today);
	snprintf(want_prefix, sizeof want_prefix, "蒙(%s)鄂尔多斯市不动产权第", year);
	CHECK(strncmp(r->new_cert_no, want_prefix, strlen(want_prefix)) == 0 && strcmp(r->new_cert_no, CERT1) != 0);
	CHECK(qiao_id_check_proof(r->mortgage_proof_no, NULL, 0, why, sizeof why) == 0);
	CHECK(strcmp(r->mortgage_proof_no, PROOF_A) != 0);
	CHECK(r->mortgage_rank == 2 && r->registered_ms > 0);
	if (qiao_id_check_licence(r->licence_id, why, sizeof why) != 0)
		fprintf(stderr, "licence id %s: %s\n", r->licence_id, why);
	CHECK(qiao_id_check_licence(r->licence_id, why, sizeof why) == 0);
	CHECK(strncmp(r->licence_id, "1.2.156.3005.2.11100000000013338W013." REG_USCC ".",
		      strlen("1.2.156.3005.2.11100000000013338W013." REG_USCC ".")) == 0);
	snprintf(s_cert, sizeof s_cert, "%s", r->new_cert_no);
	snprintf(s_proof, sizeof s_proof, "%s", r->mortgage_proof_no);
	snprintf(s_licence, sizeof s_licence, "%s", r->licence_id);
	int64_t registered = r->registered_ms;

	/* the 电子不动产权证书 */
	Qiao__V1__ElectronicLicence *lic = verified_licence(r->title_certificate);
	CHECK(lic != NULL);
	if (lic) {
		CHECK(strcmp(lic->licence_id, s_licence) == 0 && strcmp(lic->number, s_cert) == 0);
		CHECK(strcmp(lic->issuer_uscc, REG_USCC) == 0 && strcmp(lic->type_code, "11100000000013338W013") == 0);
		CHECK(strcmp(lic->holder_code, BUYER) == 0 &&
		      lic->holder_code_type == QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_RESIDENT_ID);
		CHECK(lic->status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID && lic->version == 1);
		CHECK(strcmp(lic->jurisdiction_code, "150600") == 0 && strcmp(lic->issue_date, today) == 0);
		CHECK(strcmp(lic->content_type, "qiao.v1.ElectronicTitleCertificate") == 0);
		Qiao__V1__ElectronicTitleCertificate *etc =
			qiao__v1__electronic_title_certificate__unpack(NULL, lic->content.len, lic->content.data);
		CHECK(etc != NULL);
		if (etc) {
			CHECK(strcmp(etc->cert_no, s_cert) == 0 && strcmp(etc->licence_id, s_licence) == 0);
			CHECK(strcmp(etc->unit_no, UNIT1) == 0 && etc->n_holders == 1 &&
			      strcmp(etc->holders[0]->party->id->id, BUYER) == 0);
			CHECK(strcmp(etc->registry_uscc, REG_USCC) == 0 && strstr(etc->notes, PROOF_A) != NULL &&
			      strstr(etc->notes, s_proof) != NULL);
			qiao__v1__electronic_title_certificate__free_unpacked(etc, NULL);
		}
		qiao__v1__electronic_licence__free_unpacked(lic, NULL);
	}
	if (r->title_certificate) {
		s_licence_len = r->title_certificate->licence.len;
		s_licence_bytes = malloc(s_licence_len);
		memcpy(s_licence_bytes, r->title_certificate->licence.data, s_licence_len);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the rows: seller's title closed, buyer's created, two mortgages */
	CHECK(q_int("SELECT qszt FROM fdcq WHERE bdcqzh = ?1", CERT1, NULL) == 2);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT zxslbh FROM fdcq WHERE bdcqzh = ?1", CERT1, NULL), SLBH) == 0);
	CHECK(q_int("SELECT qszt FROM fdcq WHERE bdcqzh = ?1", s_cert, NULL) == 1);
	CHECK(q_int("SELECT count(*) FROM fdcq WHERE bdcdyh = ?1 AND qszt = 1", UNIT1, NULL) == 1);
	CHECK(q_int("SELECT jyjg FROM fdcq WHERE bdcqzh = ?1", s_cert, NULL) == PRICE);
	CHECK(strcmp(q_text(buf, sizeof buf,
			    "SELECT q.zjh FROM qlr q JOIN fdcq f ON f.id = q.fdcq_id WHERE f.bdcqzh = ?1", s_cert, NULL),
		     BUYER) == 0);
	CHECK(q_int("SELECT dysw FROM dyaq WHERE bdcdjzmh = ?1 AND qszt = 1", PROOF_A, NULL) == 1);
	CHECK(q_int("SELECT dysw FROM dyaq WHERE bdcdjzmh = ?1 AND qszt = 1", s_proof, NULL) == 2);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT dyqrzjh FROM dyaq WHERE bdcdjzmh = ?1", s_proof, NULL),
		     BANK_B_USCC) == 0);
	CHECK(q_int("SELECT bdbzzqse FROM dyaq WHERE bdcdjzmh = ?1", s_proof, NULL) == 110000000);
	CHECK(q_int("SELECT count(*) FROM dyaq_dsr d JOIN dyaq m ON m.id = d.dyaq_id WHERE m.bdcdjzmh = ?1", s_proof,
		    NULL) == 2);
	CHECK(q_int("SELECT zt FROM ydyqryj WHERE tysbh = ?1", C2, NULL) == 3);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT sy_slbh FROM ydyqryj WHERE tysbh = ?1", C2, NULL), SLBH) == 0);
	CHECK(q_int("SELECT zt FROM djsl WHERE slbh = ?1", SLBH, NULL) == 2);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT dzzzbs FROM djsl WHERE slbh = ?1", SLBH, NULL), s_licence) == 0);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT zzbh FROM dzzz WHERE dzzzbs = ?1", s_licence, NULL), s_cert) == 0);
	CHECK(q_int("SELECT count(*) FROM zzsj_fb WHERE dzzzbs = ?1", s_licence, NULL) == 1);

	/* the outbox event: ISSUED, version 1, the same signed licence */
	size_t elen;
	uint8_t *eb = q_blob(&elen, "SELECT sj FROM zzsj_fb WHERE dzzzbs = ?1", s_licence);
	Qiao__V1__LicenceEvent *ev = eb ? qiao__v1__licence_event__unpack(NULL, elen, eb) : NULL;
	CHECK(ev != NULL);
	if (ev) {
		CHECK(ev->event_type == QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_ISSUED);
		CHECK(strcmp(ev->licence_id, s_licence) == 0 && ev->version == 1 && ev->event_ms == registered);
		CHECK(ev->new_status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID);
		Qiao__V1__ElectronicLicence *l2 = verified_licence(ev->licence);
		CHECK(l2 && strcmp(l2->licence_id, s_licence) == 0);
		if (l2)
			qiao__v1__electronic_licence__free_unpacked(l2, NULL);
		qiao__v1__licence_event__free_unpacked(ev, NULL);
	}
	free(eb);

	/* repeated: the same result, no second title, licence or event */
	long long titles = q_int("SELECT count(*) FROM fdcq", NULL, NULL);
	r = (Qiao__V1__CombinedRegistrationResult *)OK(s_b, "combined-registration.v1", x.a,
						       &qiao__v1__combined_registration_result__descriptor);
	CHECK(r && r->outcome == QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REGISTERED &&
	      strcmp(r->new_cert_no, s_cert) == 0 && strcmp(r->licence_id, s_licence) == 0 &&
	      strcmp(r->mortgage_proof_no, s_proof) == 0 && r->registered_ms == registered);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM fdcq", NULL, NULL) == titles);
	CHECK(q_int("SELECT count(*) FROM dzzz", NULL, NULL) == 1 && q_int("SELECT count(*) FROM zzsj_fb", NULL, NULL) == 1);
	CHECK(q_int("SELECT count(*) FROM dyaq WHERE bdcdyh = ?1 AND qszt = 1", UNIT1, NULL) == 2);
	/* the same 受理编号 for another application is refused */
	mk_app(&x, SLBH);
	x.a.price_fen = PRICE + 1;
	ERR(s_b, "combined-registration.v1", x.a, REJECTED, "slbh");
	/* and the same application under a new number finds the seller's title closed */
	mk_app(&x, "SL-150600-2026-000889");
	REJECTED_WITH(&x, "原证书号");
	CHECK(q_int("SELECT count(*) FROM dzzz", NULL, NULL) == 1);

	/* the old lender can no longer withdraw */
	struct withdrawal w;
	mk_withdrawal(&w, C2);
	Qiao__V1__ConsentWithdrawalResult *wr = (Qiao__V1__ConsentWithdrawalResult *)OK(
		s_a, "consent-withdrawal.v1", w.w, &qiao__v1__consent_withdrawal_result__descriptor);
	CHECK(wr && !wr->withdrawn && strstr(wr->refusal_reason, "已登簿"));
	if (wr)
		protobuf_c_message_free_unpacked(&wr->base, NULL);
	CHECK(q_int("SELECT zt FROM ydyqryj WHERE tysbh = ?1", C2, NULL) == 3);

	/* the register now shows the buyer, bank A first, bank B second */
	Qiao__V1__TitleSummary *s = summary_of(UNIT1, NULL);
	CHECK(s && strcmp(s->cert_no, s_cert) == 0 && s->n_holders == 1 &&
	      strcmp(s->holders[0]->party->id->id, BUYER) == 0 && s->n_mortgages == 2);
	if (s && s->n_mortgages == 2)
		CHECK(s->mortgages[0]->rank == 1 && strcmp(s->mortgages[0]->proof_no, PROOF_A) == 0 &&
		      s->mortgages[1]->rank == 2 && strcmp(s->mortgages[1]->proof_no, s_proof) == 0 &&
		      strcmp(s->mortgages[1]->mortgagee->id->id, BANK_B_USCC) == 0);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void t_licence_by_id(void)
{
	CHECK(s_licence[0] != '\0');
	if (!s_licence[0])
		return;
	Qiao__V1__LicenceByIdRequest q = QIAO__V1__LICENCE_BY_ID_REQUEST__INIT;
	q.licence_id = s_licence;
	q.purpose = P;
	Qiao__V1__LicenceByIdReply *r =
		(Qiao__V1__LicenceByIdReply *)OK(s_b, "licence-by-id.v1", q, &qiao__v1__licence_by_id_reply__descriptor);
	CHECK(r && r->licence && r->licence->licence);
	if (r && r->licence && r->licence->licence) {
		const Qiao__V1__SignedLicence *sl = r->licence->licence;
		CHECK(!r->licence->cache || !r->licence->cache->from_cache); /* the registry's own answer */
		CHECK(s_licence_bytes && sl->licence.len == s_licence_len &&
		      memcmp(sl->licence.data, s_licence_bytes, s_licence_len) == 0);
		Qiao__V1__ElectronicLicence *lic = verified_licence(sl);
		CHECK(lic && strcmp(lic->licence_id, s_licence) == 0);
		if (lic)
			qiao__v1__electronic_licence__free_unpacked(lic, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* a valid id the registry never issued: serial changed, check recomputed */
	char other[160], body[128];
	snprintf(other, sizeof other, "%s", s_licence);
	char *serial = strstr(other, REG_USCC ".") + strlen(REG_USCC ".");
	serial[strlen(serial) - 7] = serial[strlen(serial) - 7] == '9' ? '8' : '9'; /* inside N */
	size_t k = 0;
	for (const char *c = other + strlen("1.2.156.3005.2."); *c && k + 1 < sizeof body; c++)
		if (*c != '.')
			body[k++] = *c;
	k--; /* drop the old check character */
	body[k] = '\0';
	other[strlen(other) - 1] = qiao_id_mod3736(body, k);
	CHECK(qiao_id_check_licence(other, NULL, 0) == 0);
	q.licence_id = other;
	ERR(s_b, "licence-by-id.v1", q, NOT_FOUND, "licence_id");
	/* a wrong check character */
	snprintf(other, sizeof other, "%s", s_licence);
	other[strlen(other) - 1] = other[strlen(other) - 1] == 'A' ? 'B' : 'A';
	CHECK(qiao_id_check_licence(other, NULL, 0) != 0);
	ERR(s_b, "licence-by-id.v1", q, INVALID_IDENTIFIER, "licence_id");
	/* the holder is a person: a purpose is required */
	q.licence_id = s_licence;
	q.purpose = "";
	ERR(s_b, "licence-by-id.v1", q, BAD_REQUEST, "purpose");
}

static void t_cancellation(void)
{
	CHECK(s_proof[0] != '\0');
	if (!s_proof[0])
		return;
	Qiao__V1__MortgageCancellationRequest q = QIAO__V1__MORTGAGE_CANCELLATION_REQUEST__INIT;
	struct party bank;
	q.original_proof_no = PROOF_A;
	q.unit_no = UNIT1;
	q.cert_no = s_cert;
	q.mortgagee = mkparty(&bank, "银行A 鄂尔多斯分行", USCC, BANK_A_USCC);
	q.reason = QIAO__V1__MORTGAGE_CANCELLATION_REASON__MORTGAGE_CANCELLATION_REASON_DEBT_EXTINGUISHED;
	q.settlement_no = "A-JQ-2026-0088";

	/* refusals first */
	Qiao__V1__MortgageCancellationRequest x = q;
	x.original_proof_no = PROOF_NONE;
	ERR(s_a, "mortgage-cancellation.v1", x, NOT_FOUND, "original_proof_no");
	x = q;
	x.original_proof_no = BAD_PROOF;
	ERR(s_a, "mortgage-cancellation.v1", x, INVALID_IDENTIFIER, "original_proof_no");
	x = q;
	x.cert_no = BAD_CERT;
	ERR(s_a, "mortgage-cancellation.v1", x, INVALID_IDENTIFIER, "cert_no");
	x = q;
	x.settlement_no = "";
	ERR(s_a, "mortgage-cancellation.v1", x, BAD_REQUEST, "settlement_no");
	x = q;
	x.reason = 0;
	ERR(s_a, "mortgage-cancellation.v1", x, BAD_REQUEST, "reason");
	x = q;
	x.original_proof_no = s_proof; /* bank B's mortgage: bank A may not cancel it */
	x.mortgagee = mkparty(&bank, "银行B 鄂尔多斯分行", USCC, BANK_B_USCC);
	Qiao__V1__MortgageCancellationResult *r = (Qiao__V1__MortgageCancellationResult *)OK(
		s_a, "mortgage-cancellation.v1", x, &qiao__v1__mortgage_cancellation_result__descriptor);
	CHECK(r && !r->cancelled && strstr(r->refusal_reason, "不是该抵押权的抵押权人"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	mkparty(&bank, "银行A 鄂尔多斯分行", USCC, BANK_A_USCC);
	x = q;
	x.cert_no = CERT1; /* the seller's, closed */
	r = (Qiao__V1__MortgageCancellationResult *)OK(s_a, "mortgage-cancellation.v1", x,
						       &qiao__v1__mortgage_cancellation_result__descriptor);
	CHECK(r && !r->cancelled && strstr(r->refusal_reason, "现行证书"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT qszt FROM dyaq WHERE bdcdjzmh = ?1", PROOF_A, NULL) == 1);

	/* step 9: 主债权消灭, bank B's mortgage moves up */
	r = (Qiao__V1__MortgageCancellationResult *)OK(s_a, "mortgage-cancellation.v1", q,
						       &qiao__v1__mortgage_cancellation_result__descriptor);
	char slbh[80] = "", buf[256];
	int64_t when = 0;
	CHECK(r && r->cancelled && r->slbh[0] && r->cancelled_ms > 0 && r->first_ranked);
	if (r && r->first_ranked) {
		CHECK(r->first_ranked->rank == 1 && strcmp(r->first_ranked->proof_no, s_proof) == 0 &&
		      strcmp(r->first_ranked->mortgagee->id->id, BANK_B_USCC) == 0);
		CHECK(r->first_ranked->n_mortgagors == 1 &&
		      strcmp(r->first_ranked->mortgagors[0]->id->id, BUYER) == 0);
	}
	if (r) {
		snprintf(slbh, sizeof slbh, "%s", r->slbh);
		when = r->cancelled_ms;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	CHECK(q_int("SELECT qszt FROM dyaq WHERE bdcdjzmh = ?1", PROOF_A, NULL) == 2);
	CHECK(q_int("SELECT zxyy FROM dyaq WHERE bdcdjzmh = ?1", PROOF_A, NULL) == 1);
	CHECK(strcmp(q_text(buf, sizeof buf, "SELECT jqzmbh FROM dyaq WHERE bdcdjzmh = ?1", PROOF_A, NULL),
		     "A-JQ-2026-0088") == 0);
	CHECK(q_int("SELECT dysw FROM dyaq WHERE bdcdjzmh = ?1 AND qszt = 1", s_proof, NULL) == 1);
	CHECK(q_int("SELECT count(*) FROM dyaq WHERE bdcdyh = ?1 AND qszt = 1", UNIT1, NULL) == 1);
	CHECK(q_int("SELECT ysw * 10 + xsw FROM dysw_bg WHERE bdcdjzmh = ?1 AND zx_bdcdjzmh = ?2", s_proof, PROOF_A) ==
	      21);
	CHECK(q_int("SELECT count(*) FROM zxdj WHERE bdcdjzmh = ?1", PROOF_A, NULL) == 1);

	/* repeated: the same answer, nothing more changes */
	r = (Qiao__V1__MortgageCancellationResult *)OK(s_a, "mortgage-cancellation.v1", q,
						       &qiao__v1__mortgage_cancellation_result__descriptor);
	CHECK(r && r->cancelled && strcmp(r->slbh, slbh) == 0 && r->cancelled_ms == when && r->first_ranked &&
	      r->first_ranked->rank == 1);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM zxdj", NULL, NULL) == 1 && q_int("SELECT count(*) FROM dysw_bg", NULL, NULL) == 1);
	CHECK(q_int("SELECT dysw FROM dyaq WHERE bdcdjzmh = ?1", s_proof, NULL) == 1);

	Qiao__V1__TitleSummary *s = summary_of(UNIT1, NULL);
	CHECK(s && s->n_mortgages == 1 && s->mortgages[0]->rank == 1 && strcmp(s->mortgages[0]->proof_no, s_proof) == 0);
	if (s)
		protobuf_c_message_free_unpacked(&s->base, NULL);
}

/* The outbox row is published by the adapter's background thread; while
 * the gateway does not take licence-publish.v1 the failure is logged once
 * and retried. */
static void t_outbox(void)
{
	int64_t until = h_now() + 4000;
	long long pub = 0, tries = 0;
	while (h_now() < until) {
		pub = q_int("SELECT yfb FROM zzsj_fb WHERE dzzzbs = ?1", s_licence, NULL);
		tries = q_int("SELECT cs FROM zzsj_fb WHERE dzzzbs = ?1", s_licence, NULL);
		if (pub == 1 || tries >= 3)
			break;
		h_sleep_ms(100);
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/registry.log", h_dir);
	char *log = h_read_file(path);
	int failures = 0;
	for (const char *p = log; p && (p = strstr(p, "not published")) != NULL; p++)
		failures++;
	if (pub != 1)
		fprintf(stderr, "outbox: not published after %lld attempts (gateway without licence-publish.v1?)\n", tries);
	CHECK(tries >= 1);
	CHECK(pub == 1 ? strstr(log ? log : "", "published") != NULL : tries >= 3 && failures == 1);
	free(log);
}

/* SIGTERM: the publisher hands the signal on and the adapter exits 0; a
 * restart on the same database keeps every record and every answer. */
static void t_restart(void)
{
	int st = h_peer_stop(&d_m[D_REGISTRY].proc, SIGTERM);
	CHECK(h_exited_0(st));
	CHECK(d_start_dept(D_REGISTRY) == 0);
	struct app x;
	mk_app(&x, SLBH);
	Qiao__V1__CombinedRegistrationResult *r = NULL;
	int64_t until = h_now() + 5000; /* until the gateway has its new instance */
	do {
		int code;
		r = (Qiao__V1__CombinedRegistrationResult *)call(s_b, "combined-registration.v1", &x.a.base,
								 &qiao__v1__combined_registration_result__descriptor, &code);
		if (!r)
			h_sleep_ms(100);
	} while (!r && h_now() < until);
	CHECK(r && r->outcome == QIAO__V1__REGISTRATION_OUTCOME__REGISTRATION_OUTCOME_REGISTERED &&
	      strcmp(r->new_cert_no, s_cert) == 0 && strcmp(r->licence_id, s_licence) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT count(*) FROM dzzz", NULL, NULL) == 1);
}

int main(void)
{
	/* the gateway's licence cache never fresh: every licence-by-id reaches
	 * the registry (docs/cache.md), which is what this test is about */
	if (d_setup("dept_registry", "cache: { licence_fresh_ms = 0; };\n") != 0 || d_start_dept(D_REGISTRY) != 0) {
		fprintf(stderr, "set-up failed\n");
		h_peers_log_show(40);
		d_teardown();
		return 1;
	}
	s_a = d_consumer(D_BANK_A);
	s_b = d_consumer(D_BANK_B);
	s_tax = d_consumer(D_TAX);
	s_housing = d_consumer(D_HOUSING);
	s_market = d_consumer(D_MARKET);
	char db[PATH_MAX];
	d_db_path(D_REGISTRY, db, sizeof db);
	CHECK(s_a && s_b && s_tax && s_housing && s_market);
	CHECK(sqlite3_open_v2(db, &s_db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	if (s_a && s_b && s_tax && s_housing && s_market && s_db) {
		sqlite3_busy_timeout(s_db, 2000);
		t_title_summary();
		t_opinion_and_withdrawal();
		t_notices();
		t_combined_refusals();
		t_combined_registration();
		t_licence_by_id();
		t_cancellation();
		t_outbox();
		t_restart();
	}
	sqlite3_close(s_db);
	free(s_licence_bytes);
	qiao_adapter_destroy(&s_a);
	qiao_adapter_destroy(&s_b);
	qiao_adapter_destroy(&s_tax);
	qiao_adapter_destroy(&s_housing);
	qiao_adapter_destroy(&s_market);
	/* SIGTERM: the publisher hands the signal on and the adapter exits 0 */
	int st = h_peer_stop(&d_m[D_REGISTRY].proc, SIGTERM);
	CHECK(h_exited_0(st));
	if (check_fail_) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof path, "%s/registry.log", h_dir);
		char *log = h_read_file(path);
		fprintf(stderr, "--- registry.log ---\n%s\n", log ? log : "");
		free(log);
	}
	d_teardown();
	return check_done();
}
