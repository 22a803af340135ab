/*
 * test_dept_tax.c - qiao-tax (adapters/tax/) end to end: the real
 * gateway, the tax adapter on its seeded database, SDK consumers in the
 * test acting as the registry and the housing bureau (the policy of
 * adapters/tax/policy.conf).
 *
 * tax-assessment.v1: a 满五唯一 flat (契税 only, split between two
 * buyers), a flat held one year (增值税 and its surcharges, 个人所得税,
 * second-home 契税), a buyer without housing record (3 % 契税); every
 * item against the seeded rate table, the 税票号 and rows in the
 * database; repeats answered from the record without new rows; a buyer
 * with arrears refused; identifiers in body fields refused naming the
 * field.  filing-notice.v1: recorded, repeated, and an assessment that
 * disagrees with it refused.
 *
 * taxpayer-registration.v1 (企业开办, the market regulator as caller): a
 * 小规模 registration with both invoice types and a 一般纳税人 one without
 * (levies, office, credit lines, rows); repeated from the record; the same
 * number with another request and the same taxpayer under another number
 * refused (REJECTED); a legal representative or financial officer of a
 * 非正常户 and a division outside the bureau refused (REFUSED, nothing
 * recorded); bad identifiers and fields named.
 * taxpayer-registration-cancel.v1: cancelled, repeated, wrong taxpayer,
 * unknown number, and a new registration afterwards.
 */
/* dept_harness.h's d_path() snprintf()s a PATH_MAX source dir into a
 * PATH_MAX buffer, which gcc -Wformat-truncation flags; not ours to edit. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "dept_harness.h"
#include "dept_test_util.h"

#include "housing.pb-c.h"
#include "tax.pb-c.h"

#define SVC_TAX "11150600MB0D34560K/tax/"
#define CASE "case-2026-000123"
#define PURPOSE "带押过户"

#define SELLER "150621199003154522"
#define BUYER "15060219850612003X"
#define CO_BUYER "150602198709301527"
#define ARREARS "150621198204180036"
#define UNIT "150602001001GB00001F00010001"
#define CERT "蒙(2020)鄂尔多斯市不动产权第0001234号"

static qiao_adapter_t *s_reg, *s_house;

/* ---- the tax bureau's database (read-only) ------------------------------ */

#define q_int(...) dt_q_int(D_TAX, __VA_ARGS__)
#define q_text(...) dt_q_text(D_TAX, __VA_ARGS__)

/* ---- calls ---------------------------------------------------------------- */

struct transfer {
	const char *contract, *filing, *unit, *cert;
	long long price, area;
	const char *seller_name, *seller, *buyer_name, *buyer, *buyer2;
};

static Qiao__V1__TaxClearance *assess(const struct transfer *t, int *code)
{
	struct party sp, bp[2];
	Qiao__V1__Party *sellers[1] = {mk_party(&sp, t->seller_name, t->seller)};
	Qiao__V1__Party *buyers[2] = {t->buyer ? mk_party(&bp[0], t->buyer_name, t->buyer) : NULL,
				      t->buyer2 ? mk_party(&bp[1], "刘芳", t->buyer2) : NULL};
	Qiao__V1__TaxAssessmentRequest q = QIAO__V1__TAX_ASSESSMENT_REQUEST__INIT;
	q.contract_no = (char *)t->contract;
	q.filing_no = (char *)t->filing;
	q.unit_no = (char *)t->unit;
	q.cert_no = (char *)t->cert;
	q.price_fen = t->price;
	q.building_area_dm2 = t->area;
	q.n_sellers = 1;
	q.sellers = sellers;
	q.n_buyers = t->buyer ? (t->buyer2 ? 2 : 1) : 0;
	q.buyers = buyers;
	struct qiao_subject subj[3];
	size_t ns = 0;
	const char *who[3] = {t->seller, t->buyer, t->buyer2};
	for (int i = 0; i < 3; i++)
		if (who[i] && qiao_id_check_resident(who[i], NULL, 0) == 0)
			subj[ns++] = (struct qiao_subject){QIAO_SUBJECT_RESIDENT_ID, who[i]};
	ProtobufCMessage *o = d_call(s_reg, SVC_TAX "tax-assessment.v1", &q.base, &qiao__v1__tax_clearance__descriptor,
				     PURPOSE, CASE, subj, ns, code, s_msg, sizeof s_msg);
	if (getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "tax-assessment %s -> %d %s\n", t->contract, *code, s_msg);
	return (Qiao__V1__TaxClearance *)o;
}

/* The item of `type` paid by `payer` (NULL: the first of that type). */
static const Qiao__V1__TaxItem *item(const Qiao__V1__TaxClearance *c, int type, const char *payer)
{
	for (size_t i = 0; i < c->n_items; i++)
		if ((int)c->items[i]->tax_type == type &&
		    (!payer || (c->items[i]->payer && strcmp(c->items[i]->payer->id->id, payer) == 0)))
			return c->items[i];
	return NULL;
}

/* Σ items = totals, each item base × rate, each paid item with its 税票号. */
static void check_sums(int line, const Qiao__V1__TaxClearance *c)
{
	long long due = 0, paid = 0;
	int ok = 1;
	for (size_t i = 0; i < c->n_items; i++) {
		const Qiao__V1__TaxItem *it = c->items[i];
		due += it->amount_due_fen;
		paid += it->amount_paid_fen;
		if (it->amount_due_fen > 0)
			ok &= strlen(it->voucher_no) == 18 && it->voucher_no[0] == '3' && it->paid_ms > 0 &&
			      it->amount_paid_fen == it->amount_due_fen;
		else
			ok &= it->voucher_no[0] == '\0' && it->rate_ppm == 0;
		ok &= it->payer && it->payer->name[0] && it->payer->id;
	}
	ok &= due == c->total_due_fen && paid == c->total_paid_fen;
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  line %d: items do not add up (due %lld/%lld, paid %lld/%lld)\n", line, due,
			(long long)c->total_due_fen, paid, (long long)c->total_paid_fen);
}

/* ---- tax-assessment.v1 ---------------------------------------------------- */

static const struct transfer s_main = {
	"WQ-2026-150602-000777",
	"BA150602-2026-000777",
	UNIT,
	CERT,
	138000000,
	12856,
	"张晓梅",
	SELLER,
	"李建国",
	BUYER,
	CO_BUYER,
};

static void test_main_transfer(void)
{
	int code;
	char t[256];
	Qiao__V1__TaxClearance *c = assess(&s_main, &code);
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "assessment: %s\n", s_msg);
		return;
	}
	CHECK(strncmp(c->assessment_no, "HD150600-", 9) == 0);
	CHECK(strcmp(c->contract_no, s_main.contract) == 0 && strcmp(c->unit_no, UNIT) == 0);
	CHECK(c->status == QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID);
	CHECK(c->assessed_price_fen == 140000000); /* the 评估价 is above the declared price */
	CHECK(c->total_due_fen == 1400000 && c->total_paid_fen == 1400000 && c->cleared_ms > 0);
	CHECK(c->n_items == 7); /* 增值税, 契税 ×2, 个人所得税, 印花税 ×3 */
	check_sums(__LINE__, c);
	const Qiao__V1__TaxItem *deed1 = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX, BUYER);
	const Qiao__V1__TaxItem *deed2 = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX, CO_BUYER);
	CHECK(deed1 && deed1->rate_ppm == 10000 && deed1->amount_due_fen == 700000 &&
	      deed1->taxable_base_fen == 70000000);
	CHECK(deed2 && deed2->rate_ppm == 10000 && deed2->amount_due_fen == 700000);
	CHECK(deed1 && deed2 && strcmp(deed1->voucher_no, deed2->voucher_no) != 0);
	const Qiao__V1__TaxItem *vat = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_VAT, SELLER);
	CHECK(vat && vat->amount_due_fen == 0 && vat->taxable_base_fen == 140000000); /* held 2+ years */
	const Qiao__V1__TaxItem *iit = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_INDIVIDUAL_INCOME_TAX, SELLER);
	CHECK(iit && iit->amount_due_fen == 0);                                /* 满五唯一 */
	CHECK(!item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_URBAN_MAINTENANCE, NULL)); /* no VAT, no surcharge */
	char ano[72], v1[40];
	snprintf(ano, sizeof ano, "%s", c->assessment_no);
	snprintf(v1, sizeof v1, "%s", deed1 ? deed1->voucher_no : "");
	protobuf_c_message_free_unpacked(&c->base, NULL);

	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM tax_assessment WHERE contract_no = ?", s_main.contract,
			    NULL),
		     "PAID") == 0);
	CHECK(q_int("SELECT assessed_price_fen FROM tax_assessment WHERE assessment_no = ?", ano, NULL) == 140000000);
	CHECK(q_int("SELECT declared_price_fen FROM tax_assessment WHERE assessment_no = ?", ano, NULL) == 138000000);
	CHECK(q_int("SELECT COUNT(*) FROM tax_item WHERE assessment_no = ?", ano, NULL) == 7);
	CHECK(q_int("SELECT amount_paid_fen FROM tax_item WHERE voucher_no = ?", v1, NULL) == 700000);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT payer_id_no FROM tax_item WHERE voucher_no = ?", v1, NULL), BUYER) ==
	      0);
	CHECK(q_int("SELECT rate_id FROM tax_item WHERE voucher_no = ?", v1, NULL) == 101);
	CHECK(q_int("SELECT COUNT(*) FROM tax_party WHERE assessment_no = ?", ano, NULL) == 3);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT case_id FROM tax_assessment WHERE assessment_no = ?", ano, NULL),
		     CASE) == 0);

	/* repeated: the same assessment and 税票号, no new rows */
	c = assess(&s_main, &code);
	CHECK(c && strcmp(c->assessment_no, ano) == 0 && c->total_paid_fen == 1400000);
	if (c) {
		const Qiao__V1__TaxItem *again = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX, BUYER);
		CHECK(again && strcmp(again->voucher_no, v1) == 0);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	CHECK(q_int("SELECT COUNT(*) FROM tax_assessment", NULL) == 1);
	CHECK(q_int("SELECT COUNT(*) FROM tax_item", NULL) == 7);
	/* the same contract with another price */
	struct transfer other = s_main;
	other.price = 120000000;
	c = assess(&other, &code);
	EXPECT_ERR(c, code, E_REJECTED, "contract_no");
	CHECK(q_int("SELECT COUNT(*) FROM tax_assessment", NULL) == 1);
}

static void test_vat_transfer(void)
{
	/* held one year: 增值税 5 % on the price without VAT, surcharges
	 * 7/3/2 % of it, 个人所得税 1 %, second-home 契税 2 % (> 140 m²) */
	static const struct transfer t = {
		"WQ-2026-150602-000901",
		"BA150602-2026-000901",
		"150602001002GB00031F00030502",
		"蒙(2025)鄂尔多斯市不动产权第0023456号",
		210000000,
		14600,
		"高雅琴",
		"150627199201050028",
		"马骏",
		"150603199502140616",
		NULL,
	};
	int code;
	Qiao__V1__TaxClearance *c = assess(&t, &code); /* 马骏's old arrears are CLEARED */
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "assessment: %s\n", s_msg);
		return;
	}
	CHECK(c->assessed_price_fen == 210000000); /* declared above the 评估价 */
	const Qiao__V1__TaxItem *vat = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_VAT, NULL);
	CHECK(vat && vat->taxable_base_fen == 200000000 && vat->rate_ppm == 50000 && vat->amount_due_fen == 10000000);
	const Qiao__V1__TaxItem *u = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_URBAN_MAINTENANCE, NULL);
	const Qiao__V1__TaxItem *e = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_EDUCATION_SURCHARGE, NULL);
	const Qiao__V1__TaxItem *le = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_LOCAL_EDUCATION_SURCHARGE, NULL);
	CHECK(u && u->taxable_base_fen == 10000000 && u->amount_due_fen == 700000);
	CHECK(e && e->amount_due_fen == 300000 && le && le->amount_due_fen == 200000);
	const Qiao__V1__TaxItem *iit = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_INDIVIDUAL_INCOME_TAX, NULL);
	CHECK(iit && iit->taxable_base_fen == 200000000 && iit->amount_due_fen == 2000000);
	const Qiao__V1__TaxItem *deed = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX, NULL);
	CHECK(deed && deed->rate_ppm == 20000 && deed->taxable_base_fen == 200000000 &&
	      deed->amount_due_fen == 4000000);
	CHECK(c->total_due_fen == 17200000 && c->status == QIAO__V1__TAX_CLEARANCE_STATUS__TAX_CLEARANCE_STATUS_PAID);
	check_sums(__LINE__, c);
	CHECK(q_int("SELECT total_paid_fen FROM tax_assessment WHERE contract_no = ?", t.contract, NULL) == 17200000);
	CHECK(q_int("SELECT hold_years FROM tax_assessment WHERE contract_no = ?", t.contract, NULL) == 1);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void test_refusals(void)
{
	int code;
	long long before = q_int("SELECT COUNT(*) FROM tax_assessment", NULL);
	/* a buyer with arrears */
	struct transfer t = s_main;
	t.contract = "WQ-2026-150602-000902";
	t.buyer_name = "韩旭东";
	t.buyer = ARREARS;
	t.buyer2 = NULL;
	Qiao__V1__TaxClearance *c = assess(&t, &code);
	EXPECT_ERR(c, code, E_REJECTED, "buyers[0].id.id");
	CHECK(strstr(s_msg, "欠税") != NULL);
	/* the base data disagree */
	t = s_main;
	t.contract = "WQ-2026-150602-000903";
	t.unit = "150602001001GB00009F00010009";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_NOTFOUND, "unit_no");
	t.unit = UNIT;
	t.cert = "蒙(2021)鄂尔多斯市不动产权第0009876号";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_REJECTED, "cert_no");
	t.cert = CERT;
	t.area = 12850;
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_REJECTED, "building_area_dm2");
	/* identifiers in the body */
	t = s_main;
	t.contract = "WQ-2026-150602-000904";
	t.seller = "150621199003154523";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_IDENT, "sellers[0].id.id");
	t = s_main;
	t.contract = "WQ-2026-150602-000904";
	t.buyer2 = "91150602MA0H864249";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_IDENT, "buyers[1].id.id");
	t = s_main;
	t.contract = "WQ-2026-150602-000904";
	t.unit = "15060200100GB00001F00010001";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_IDENT, "unit_no");
	t.unit = UNIT;
	t.cert = "蒙(20)鄂尔多斯市不动产权第0001234号";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_IDENT, "cert_no");
	/* fields */
	t = s_main;
	t.contract = "WQ-2026-150602-000904";
	t.price = 0;
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_BAD, "price_fen");
	t.price = s_main.price;
	t.buyer = NULL;
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_BAD, "buyers");
	t.buyer = SELLER;
	t.buyer2 = NULL;
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_BAD, "buyers[0]");
	t = s_main;
	t.contract = "";
	c = assess(&t, &code);
	EXPECT_ERR(c, code, E_BAD, "contract_no");
	CHECK(q_int("SELECT COUNT(*) FROM tax_assessment", NULL) == before);
	CHECK(q_int("SELECT COUNT(*) FROM tax_assessment WHERE contract_no = ?", "WQ-2026-150602-000902", NULL) == 0);
}

/* ---- filing-notice.v1 ----------------------------------------------------- */

static Qiao__V1__FilingNoticeResult *notice(const char *contract, const char *filing, const char *cert, long long price,
					    int *code)
{
	struct party sp, bp;
	Qiao__V1__Party *sellers[1] = {mk_party(&sp, "马骏", "150603199502140616")};
	Qiao__V1__Party *buyers[1] = {mk_party(&bp, "高雅琴", "150627199201050028")};
	Qiao__V1__FilingNotice q = QIAO__V1__FILING_NOTICE__INIT;
	q.contract_no = (char *)contract;
	q.filing_no = (char *)filing;
	q.unit_no = "150602001001GB00002F00010002";
	q.cert_no = (char *)cert;
	q.price_fen = price;
	q.n_sellers = 1;
	q.sellers = sellers;
	q.n_buyers = 1;
	q.buyers = buyers;
	q.escrow_agreement_no = "ZJJG-2026-000046";
	q.escrow_amount_fen = 90000000;
	/* fixed once: a repeat must be the same body, even across a second */
	static int64_t filed;
	if (!filed)
		filed = (int64_t)time(NULL) * 1000 - 3600000;
	q.filed_ms = filed;
	struct qiao_subject subj[2] = {{QIAO_SUBJECT_RESIDENT_ID, "150603199502140616"},
				       {QIAO_SUBJECT_RESIDENT_ID, "150627199201050028"}};
	return (Qiao__V1__FilingNoticeResult *)d_call(s_house, SVC_TAX "filing-notice.v1", &q.base,
						      &qiao__v1__filing_notice_result__descriptor, PURPOSE, CASE, subj,
						      2, code, s_msg, sizeof s_msg);
}

static void test_filing_notice(void)
{
	int code;
	const char *contract = "WQ-2026-150602-000950", *filing = "BA150602-2026-000950";
	const char *cert = "蒙(2021)鄂尔多斯市不动产权第0009876号";
	Qiao__V1__FilingNoticeResult *n = notice(contract, filing, cert, 165000000, &code);
	CHECK(n && n->received && n->received_ms > 0 && n->refusal_reason[0] == '\0');
	if (!n)
		fprintf(stderr, "filing notice: %s\n", s_msg);
	int64_t when = n ? n->received_ms : 0;
	if (n)
		protobuf_c_message_free_unpacked(&n->base, NULL);
	char t[128];
	CHECK(strcmp(q_text(t, sizeof t, "SELECT filing_no FROM filing_notice WHERE contract_no = ?", contract, NULL),
		     filing) == 0);
	CHECK(q_int("SELECT escrow_amount_fen FROM filing_notice WHERE contract_no = ?", contract, NULL) == 90000000);
	n = notice(contract, filing, cert, 165000000, &code); /* repeated */
	CHECK(n && n->received && n->received_ms == when);
	if (n)
		protobuf_c_message_free_unpacked(&n->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM filing_notice", NULL) == 1);
	n = notice(contract, filing, cert, 160000000, &code); /* another price */
	CHECK(n && !n->received && n->refusal_reason[0] != '\0');
	if (n)
		protobuf_c_message_free_unpacked(&n->base, NULL);
	CHECK(q_int("SELECT price_fen FROM filing_notice WHERE contract_no = ?", contract, NULL) == 165000000);
	n = notice(contract, filing, "蒙(2021)鄂尔多斯市不动产权第98号", 165000000, &code);
	EXPECT_ERR(n, code, E_IDENT, "cert_no");

	/* the assessment must agree with the filing */
	struct transfer a = {
		contract,
		"BA150602-2026-000951",
		"150602001001GB00002F00010002",
		cert,
		165000000,
		11820,
		"马骏",
		"150603199502140616",
		"高雅琴",
		"150627199201050028",
		NULL,
	};
	Qiao__V1__TaxClearance *c = assess(&a, &code);
	EXPECT_ERR(c, code, E_REJECTED, "filing_no");
	a.filing = filing;
	a.price = 160000000;
	c = assess(&a, &code);
	EXPECT_ERR(c, code, E_REJECTED, "price_fen");
	a.price = 165000000;
	c = assess(&a, &code);
	CHECK(c != NULL);
	if (c) {
		/* no housing record of the buyer: no relief, 3 % 契税; held 5+
		 * years but not the only home: 个人所得税 1 %; no 增值税 */
		const Qiao__V1__TaxItem *deed = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_DEED_TAX, NULL);
		const Qiao__V1__TaxItem *iit = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_INDIVIDUAL_INCOME_TAX, NULL);
		const Qiao__V1__TaxItem *vat = item(c, QIAO__V1__TAX_TYPE__TAX_TYPE_VAT, NULL);
		CHECK(deed && deed->rate_ppm == 30000 && deed->amount_due_fen == 4950000);
		CHECK(iit && iit->rate_ppm == 10000 && iit->amount_due_fen == 1650000);
		CHECK(vat && vat->amount_due_fen == 0);
		CHECK(c->total_due_fen == 6600000);
		check_sums(__LINE__, c);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	CHECK(q_int("SELECT buyer_homes IS NULL FROM tax_assessment WHERE contract_no = ?", contract, NULL) == 1);
}

/* ---- taxpayer-registration.v1, taxpayer-registration-cancel.v1 ---------- */

#define KB_PURPOSE "企业开办"
#define KB_CASE "QYKB-20261203-000042"
#define YUNFAN "91150602MA0Y7C3E2X"
#define BEICHEN "91150602MA0W5D8R02"
#define RUIFENG "91150603MA0X3H7L68"
#define CHEN "150602198809150316"  /* 陈思远 */
#define WANG "150603199103220424"  /* 王丽娜: her 非正常户 tie was lifted */
#define ZHANG "150621199307080155" /* 张伟 */
#define GUO "150627197904110534"   /* 郭宏伟: legal representative of a 非正常户 */
#define LIU "150602198501270688"   /* 刘静 */

struct reg {
	const char *no, *name, *uscc, *rep_name, *rep, *fin_name, *fin;
	long long capital, sub1, sub2;
	const char *inv2_name, *inv2; /* NULL: one investor (the legal representative) */
	int vat, ninv;
	const char *established;
	const char *licence; /* NULL: a valid one of the market regulator */
};

/* A valid 电子营业执照标识 of the market regulator with serial `n`. */
static void s_licence_id(long n, char *out, size_t len)
{
	char body[80], serial[16];
	snprintf(serial, sizeof serial, "2026%07ld", n);
	snprintf(body, sizeof body, "11100000000013338W011" "11150600MB0E78900J" "%s" "001", serial);
	snprintf(out, len, "1.2.156.3005.2.11100000000013338W011.11150600MB0E78900J.%s.001.%c", serial,
		 qiao_id_mod3736(body, strlen(body)));
}

static qiao_adapter_t *s_mkt;

/* The header subjects of a call: those of `ids` that are valid (a bad one
 * would be refused by the SDK before the body is seen). */
static size_t s_subjects(struct qiao_subject *out, const char *const *ids, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ids[i])
			continue;
		if (qiao_id_check_resident(ids[i], NULL, 0) == 0)
			out[k++] = (struct qiao_subject){QIAO_SUBJECT_RESIDENT_ID, ids[i]};
		else if (qiao_id_check_uscc(NULL, ids[i], NULL, 0) == 0)
			out[k++] = (struct qiao_subject){QIAO_SUBJECT_USCC, ids[i]};
	}
	return k;
}

static Qiao__V1__TaxpayerRegistration *s_register(const struct reg *g, int *code)
{
	struct party tp, rep, fin, tax, ip[2];
	char lic[96];
	s_licence_id(5121, lic, sizeof lic);
	Qiao__V1__Investor iv[2], *ivp[2];
	for (int i = 0; i < 2; i++)
		qiao__v1__investor__init(&iv[i]);
	iv[0].party = mk_party(&ip[0], g->rep_name, g->rep);
	iv[0].subscribed_capital_fen = g->sub1;
	iv[0].contribution_method = "货币";
	iv[0].contribution_due_date = "2031-11-27";
	iv[1].party = g->inv2 ? mk_party(&ip[1], g->inv2_name, g->inv2) : NULL;
	iv[1].subscribed_capital_fen = g->sub2;
	iv[1].contribution_method = "货币";
	iv[1].contribution_due_date = "2030-12-31";
	ivp[0] = &iv[0];
	ivp[1] = &iv[1];
	Qiao__V1__InvoiceType inv[2] = {QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_ORDINARY,
					QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_SPECIAL};
	Qiao__V1__TaxpayerRegistrationRequest q = QIAO__V1__TAXPAYER_REGISTRATION_REQUEST__INIT;
	q.registration_no = (char *)g->no;
	q.taxpayer = mk_party(&tp, g->name, g->uscc);
	q.licence_id = g->licence ? (char *)g->licence : lic;
	q.enterprise_type = "有限责任公司(自然人投资或控股)";
	q.registered_address = "内蒙古自治区鄂尔多斯市东胜区科技园区创业大厦B座901";
	q.established_date = (char *)(g->established ? g->established : "2026-11-28");
	q.registered_capital_fen = g->capital;
	q.business_scope = "软件开发；信息系统集成服务";
	q.legal_representative = mk_party(&rep, g->rep_name, g->rep);
	q.financial_officer = mk_party(&fin, g->fin_name, g->fin);
	q.tax_officer = mk_party(&tax, "张伟", ZHANG);
	q.n_investors = g->inv2 ? 2 : 1;
	q.investors = ivp;
	q.vat_taxpayer_type = g->vat;
	q.n_invoice_types = (size_t)g->ninv;
	q.invoice_types = inv;
	struct qiao_subject subj[3];
	const char *ids[3] = {g->uscc, g->rep, g->fin};
	size_t ns = s_subjects(subj, ids, 3);
	return (Qiao__V1__TaxpayerRegistration *)d_call(s_mkt, SVC_TAX "taxpayer-registration.v1", &q.base,
							&qiao__v1__taxpayer_registration__descriptor, KB_PURPOSE,
							KB_CASE, subj, ns, code, s_msg, sizeof s_msg);
}

static Qiao__V1__TaxpayerRegistration *s_cancel(const char *no, const char *uscc, int *code)
{
	Qiao__V1__TaxpayerRegistrationCancelRequest q = QIAO__V1__TAXPAYER_REGISTRATION_CANCEL_REQUEST__INIT;
	q.registration_no = (char *)no;
	q.taxpayer_id = (char *)uscc;
	q.reason = "企业开办一链办未办结，撤销新办纳税人套餐";
	struct qiao_subject subj[1];
	size_t ns = s_subjects(subj, &uscc, 1);
	return (Qiao__V1__TaxpayerRegistration *)d_call(s_mkt, SVC_TAX "taxpayer-registration-cancel.v1", &q.base,
							&qiao__v1__taxpayer_registration__descriptor, KB_PURPOSE,
							KB_CASE, subj, ns, code, s_msg, sizeof s_msg);
}

#define SMALL QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_SMALL_SCALE
#define GENERAL QIAO__V1__VAT_TAXPAYER_TYPE__VAT_TAXPAYER_TYPE_GENERAL
#define TR(x) QIAO__V1__TAXPAYER_REGISTRATION_STATUS__TAXPAYER_REGISTRATION_STATUS_##x

static const struct reg s_yunfan = {
	"QYKB-20261203-000042-SW", "鄂尔多斯市东胜区云帆信息技术有限公司", YUNFAN, "陈思远", CHEN, "王丽娜", WANG,
	200000000, 120000000, 80000000, "王丽娜", WANG, SMALL, 2, NULL, NULL,
};

static const Qiao__V1__TaxLevy *s_levy(const Qiao__V1__TaxpayerRegistration *g, int type)
{
	for (size_t i = 0; i < g->n_levies; i++)
		if ((int)g->levies[i]->tax_type == type)
			return g->levies[i];
	return NULL;
}

static void test_registration(void)
{
	int code;
	char t[256];
	Qiao__V1__TaxpayerRegistration *g = s_register(&s_yunfan, &code);
	CHECK(g != NULL);
	if (!g) {
		fprintf(stderr, "registration: %s\n", s_msg);
		return;
	}
	CHECK(g->status == TR(ACTIVE) && strcmp(g->registration_no, s_yunfan.no) == 0);
	CHECK(strcmp(g->taxpayer_id, YUNFAN) == 0 && strcmp(g->taxpayer_name, s_yunfan.name) == 0);
	CHECK(strcmp(g->tax_office_code, "11506020000") == 0 &&
	      strcmp(g->tax_office_name, "国家税务总局鄂尔多斯市东胜区税务局") == 0);
	CHECK(g->vat_taxpayer_type == SMALL && g->registered_ms > 0 && g->cancelled_ms == 0 && !g->refusal_reason[0]);
	/* 小规模: 增值税 1 % and its three surcharges by quarter, 企业所得税, 印花税 (营业账簿) */
	CHECK(g->n_levies == 6);
	const Qiao__V1__TaxLevy *vat = s_levy(g, QIAO__V1__TAX_TYPE__TAX_TYPE_VAT);
	CHECK(vat && vat->rate_ppm == 10000 && vat->filing_period == QIAO__V1__FILING_PERIOD__FILING_PERIOD_QUARTERLY &&
	      vat->valid_from[0]);
	const Qiao__V1__TaxLevy *eit = s_levy(g, QIAO__V1__TAX_TYPE__TAX_TYPE_ENTERPRISE_INCOME_TAX);
	CHECK(eit && eit->rate_ppm == 250000 && strcmp(eit->tax_name, "企业所得税") == 0);
	const Qiao__V1__TaxLevy *stamp = s_levy(g, QIAO__V1__TAX_TYPE__TAX_TYPE_STAMP_DUTY);
	CHECK(stamp && stamp->rate_ppm == 250 &&
	      stamp->filing_period == QIAO__V1__FILING_PERIOD__FILING_PERIOD_PER_TRANSACTION);
	CHECK(s_levy(g, QIAO__V1__TAX_TYPE__TAX_TYPE_URBAN_MAINTENANCE) != NULL);
	CHECK(g->n_invoices == 2 && g->invoices[0]->credit_limit_fen == 10000000 &&
	      g->invoices[0]->invoice_type == QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_ORDINARY &&
	      g->invoices[1]->invoice_type == QIAO__V1__INVOICE_TYPE__INVOICE_TYPE_DIGITAL_SPECIAL);
	int64_t when = g->registered_ms;
	protobuf_c_message_free_unpacked(&g->base, NULL);
	/* in the bureau's database */
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM taxpayer_registration WHERE registration_no = ?",
			    s_yunfan.no, NULL),
		     "ACTIVE") == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT case_id FROM taxpayer_registration WHERE taxpayer_id = ?", YUNFAN,
			    NULL),
		     KB_CASE) == 0);
	CHECK(q_int("SELECT COUNT(*) FROM registration_party WHERE registration_no = ?", s_yunfan.no, NULL) == 5);
	CHECK(q_int("SELECT subscribed_capital_fen FROM registration_party WHERE registration_no = ? AND role = "
		    "'INVESTOR' AND id_no = ?",
		    s_yunfan.no, WANG, NULL) == 80000000);
	CHECK(q_int("SELECT COUNT(*) FROM registration_levy WHERE registration_no = ?", s_yunfan.no, NULL) == 6);
	CHECK(q_int("SELECT COUNT(*) FROM registration_invoice WHERE registration_no = ?", s_yunfan.no, NULL) == 2);

	/* repeated: the same registration from the record, no new rows */
	g = s_register(&s_yunfan, &code);
	CHECK(g && g->status == TR(ACTIVE) && g->registered_ms == when && g->n_levies == 6 && g->n_invoices == 2);
	if (g)
		protobuf_c_message_free_unpacked(&g->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL) == 1);
	CHECK(q_int("SELECT COUNT(*) FROM registration_levy", NULL) == 6);
	/* the same number with another request */
	struct reg other = s_yunfan;
	other.vat = GENERAL;
	g = s_register(&other, &code);
	EXPECT_ERR(g, code, E_REJECTED, "registration_no");
	/* the same taxpayer under another number */
	other = s_yunfan;
	other.no = "QYKB-20261203-000043-SW";
	g = s_register(&other, &code);
	EXPECT_ERR(g, code, E_REJECTED, "taxpayer.id.id");
	CHECK(q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL) == 1);

	/* 一般纳税人, no invoices, another district */
	static const struct reg ruifeng = {
		"QYKB-20261203-000044-SW", "鄂尔多斯市康巴什区瑞丰科技有限公司", RUIFENG, "刘静", LIU, "刘静", LIU,
		3000000000, 3000000000, 0, NULL, NULL, GENERAL, 0, NULL, NULL,
	};
	g = s_register(&ruifeng, &code);
	CHECK(g && g->status == TR(ACTIVE) && strcmp(g->tax_office_code, "11506030000") == 0 && g->n_invoices == 0);
	if (g) {
		vat = s_levy(g, QIAO__V1__TAX_TYPE__TAX_TYPE_VAT);
		CHECK(vat && vat->rate_ppm == 130000 && vat->filing_period == QIAO__V1__FILING_PERIOD__FILING_PERIOD_MONTHLY);
		CHECK(g->n_levies == 6);
		protobuf_c_message_free_unpacked(&g->base, NULL);
	} else {
		fprintf(stderr, "registration: %s\n", s_msg);
	}
}

static void test_registration_refused(void)
{
	int code;
	long long before = q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL);
	/* 郭宏伟 is the legal representative of a 非正常户 */
	struct reg g = {
		"QYKB-20261203-000045-SW", "鄂尔多斯市东胜区北辰商贸有限公司", BEICHEN, "郭宏伟", GUO, "刘静", LIU,
		5000000, 5000000, 0, NULL, NULL, SMALL, 1, "2026-11-30", NULL,
	};
	for (int i = 0; i < 2; i++) { /* asked again: refused again (a refusal is not recorded) */
		Qiao__V1__TaxpayerRegistration *r = s_register(&g, &code);
		CHECK(r && r->status == TR(REFUSED) && strstr(r->refusal_reason, "非正常户") &&
		      strstr(r->refusal_reason, "91150602MA0Q8N2F2R") && r->n_levies == 0 && r->registered_ms == 0);
		if (!r)
			fprintf(stderr, "registration: %s\n", s_msg);
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* the same as the financial officer */
	g.rep_name = "刘静";
	g.rep = LIU;
	g.fin_name = "郭宏伟";
	g.fin = GUO;
	Qiao__V1__TaxpayerRegistration *r = s_register(&g, &code);
	CHECK(r && r->status == TR(REFUSED) && strstr(r->refusal_reason, "财务负责人郭宏伟"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* registered elsewhere (北京市海淀区) */
	g = (struct reg){"QYKB-20261203-000046-SW", "北京某科技有限公司", "91110108MA01ABCD5T", "刘静", LIU, "刘静", LIU,
			 5000000, 5000000, 0, NULL, NULL, SMALL, 0, NULL, NULL};
	r = s_register(&g, &code);
	CHECK(r && r->status == TR(REFUSED) && strstr(r->refusal_reason, "不属本局管辖"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL) == before);
}

static void test_registration_bad(void)
{
	int code;
	long long before = q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL);
	struct reg g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.uscc = "91150602MA0Y7C3E2Y"; /* check character */
	Qiao__V1__TaxpayerRegistration *r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_IDENT, "taxpayer.id.id");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.rep = "150602198809150317";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_IDENT, "legal_representative.id.id");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.fin = "15060219880231031X"; /* no such day */
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_IDENT, "financial_officer.id.id");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.inv2 = "91150622MA0U1G5J0X";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_IDENT, "investors[1].party.id.id");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.licence = "1.2.156.3005.2.11100000000013338W011.11150600MB0E78900J.20260005121.001.A";
	char good[96];
	s_licence_id(5121, good, sizeof good);
	if (good[strlen(good) - 1] == 'A')
		g.licence = "1.2.156.3005.2.11100000000013338W011.11150600MB0E78900J.20260005121.001.B";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_IDENT, "licence_id");
	/* shapes and fields */
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.uscc = CHEN; /* a person cannot be the taxpayer of a company */
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "taxpayer.id.type");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.rep = "91150602MA0H864248"; /* the legal representative is a person */
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "legal_representative.id.type");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.sub2 = 70000000; /* subscriptions 190万 for 200万 */
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "investors");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.inv2 = CHEN; /* twice */
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "investors[1]");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.vat = 0;
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "vat_taxpayer_type");
	g = s_yunfan;
	g.no = "QYKB-20261203-000047-SW";
	g.established = "2099-01-01";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "established_date");
	g.established = "2026-02-30";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "established_date");
	g = s_yunfan;
	g.no = "QYKB 000047";
	r = s_register(&g, &code);
	EXPECT_ERR(r, code, E_BAD, "registration_no");
	CHECK(q_int("SELECT COUNT(*) FROM taxpayer_registration", NULL) == before);
}

static void test_registration_cancel(void)
{
	int code;
	char t[64];
	Qiao__V1__TaxpayerRegistration *r = s_cancel(s_yunfan.no, BEICHEN, &code);
	EXPECT_ERR(r, code, E_REJECTED, "taxpayer_id");
	r = s_cancel("QYKB-20261203-000099-SW", YUNFAN, &code);
	EXPECT_ERR(r, code, E_NOTFOUND, "registration_no");
	r = s_cancel(s_yunfan.no, "91150602MA0Y7C3E2Y", &code);
	EXPECT_ERR(r, code, E_IDENT, "taxpayer_id");
	r = s_cancel(s_yunfan.no, YUNFAN, &code);
	CHECK(r && r->status == TR(CANCELLED) && r->cancelled_ms > 0 && r->n_levies == 6);
	int64_t when = r ? r->cancelled_ms : 0;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	else
		fprintf(stderr, "cancel: %s\n", s_msg);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM taxpayer_registration WHERE registration_no = ?",
			    s_yunfan.no, NULL),
		     "CANCELLED") == 0);
	/* again: as it stands */
	r = s_cancel(s_yunfan.no, YUNFAN, &code);
	CHECK(r && r->status == TR(CANCELLED) && r->cancelled_ms == when);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* the original request again: its registration, now cancelled */
	r = s_register(&s_yunfan, &code);
	CHECK(r && r->status == TR(CANCELLED) && r->cancelled_ms == when);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* the taxpayer may apply again under a new number */
	struct reg again = s_yunfan;
	again.no = "QYKB-20261203-000048-SW";
	r = s_register(&again, &code);
	CHECK(r && r->status == TR(ACTIVE));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM taxpayer_registration WHERE taxpayer_id = ?", YUNFAN, NULL) == 2);
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
	if (d_setup("dept-tax", NULL) != 0 || d_start_dept(D_TAX) != 0) {
		fprintf(stderr, "set-up failed\n");
		CHECK(0);
		d_teardown();
		return check_done();
	}
	s_reg = d_consumer(D_REGISTRY);
	s_house = d_consumer(D_HOUSING);
	s_mkt = d_consumer(D_MARKET);
	CHECK(s_reg && s_house && s_mkt);
	if (s_reg && s_house && s_mkt) {
		test_main_transfer();
		test_vat_transfer();
		test_refusals();
		test_filing_notice();
		test_registration();
		test_registration_refused();
		test_registration_bad();
		test_registration_cancel();
		stop_dept(D_TAX);
	}
	qiao_adapter_destroy(&s_reg);
	qiao_adapter_destroy(&s_house);
	qiao_adapter_destroy(&s_mkt);
	d_teardown();
	return check_done();
}
