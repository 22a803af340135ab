/*
 * test_dept_housing.c - qiao-housing (adapters/housing/) end to end: the
 * real gateway, the housing bureau's adapter on its seeded database, an
 * SDK consumer in the test acting as the registry (the policy of
 * adapters/housing/policy.conf).
 *
 * The demonstration 带押过户 filed, escrowed, its payoff paid to the old
 * lender and the remainder to the seller; a second sale filed, escrowed,
 * released and cancelled (the failure path), after which the unit can be
 * sold again.  Every service: the answer's fields and the rows in the
 * database, business refusals, idempotent repeats without a second
 * effect, identifiers in body fields refused naming the field.
 */
/* dept_harness.h's d_path() snprintf()s a PATH_MAX source dir into a
 * PATH_MAX buffer, which gcc -Wformat-truncation flags; not ours to edit. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "dept_harness.h"
#include "dept_test_util.h"

#include "housing.pb-c.h"

#define SVC "11150600MB0G13578E/housing/"
#define CASE "case-2026-000123"
#define PURPOSE "带押过户"

#define SELLER "150621199003154522"
#define BUYER "15060219850612003X"
#define CO_BUYER "150602198709301527"
#define UNIT "150602001001GB00001F00010001"
#define CERT "蒙(2020)鄂尔多斯市不动产权第0001234号"
#define NEW_CERT "蒙(2026)鄂尔多斯市不动产权第0034567号"
#define CONTRACT "WQ-2026-150602-000777"
#define PRICE 138000000LL
#define PAYOFF 81500000LL
#define BANK_A_USCC "91150600MA0B56780F"
#define BANK_B_USCC "91150600MA0C9012X7"
#define PAYOFF_ACCT "6222150600000012345"
#define SELLER_ACCT "6217000150600001234"
#define REFUND_ACCT "6217150600000055555"

static qiao_adapter_t *s_reg;

/* ---- the housing bureau's database (read-only) -------------------------- */

#define q_int(...) dt_q_int(D_HOUSING, __VA_ARGS__)
#define q_text(...) dt_q_text(D_HOUSING, __VA_ARGS__)

/* ---- calls ---------------------------------------------------------------- */

static ProtobufCMessage *call(const char *svc, const void *req, const ProtobufCMessageDescriptor *rd,
			      const char *const *persons, int *code)
{
	struct qiao_subject subj[4];
	size_t n = 0;
	for (size_t i = 0; persons && persons[i] && n < 4; i++)
		if (qiao_id_check_resident(persons[i], NULL, 0) == 0)
			subj[n++] = (struct qiao_subject){QIAO_SUBJECT_RESIDENT_ID, persons[i]};
	ProtobufCMessage *o = d_call(s_reg, svc, req, rd, PURPOSE, CASE, subj, n, code, s_msg, sizeof s_msg);
	if (getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "%s -> %d %s\n", svc, *code, s_msg);
	return o;
}

/* ---- contract-filing.v1 --------------------------------------------------- */

struct sale {
	const char *contract, *unit, *cert;
	long long price, area;
	const char *seller_name, *seller, *buyer_name, *buyer, *buyer2;
	int method;
	const char *signed_date;
	int with_mortgage;
};

static Qiao__V1__ContractFilingResult *file_contract(const struct sale *s, int *code)
{
	struct party sp, bp[2];
	Qiao__V1__Party *sellers[1] = {mk_party(&sp, s->seller_name, s->seller)};
	Qiao__V1__Party *buyers[2] = {mk_party(&bp[0], s->buyer_name, s->buyer),
				      s->buyer2 ? mk_party(&bp[1], "刘芳", s->buyer2) : NULL};
	char today[11];
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	Qiao__V1__ContractFilingRequest q = QIAO__V1__CONTRACT_FILING_REQUEST__INIT;
	q.contract_no = (char *)s->contract;
	q.unit_no = (char *)s->unit;
	q.cert_no = (char *)s->cert;
	q.price_fen = s->price;
	q.n_sellers = 1;
	q.sellers = sellers;
	q.n_buyers = s->buyer2 ? 2 : 1;
	q.buyers = buyers;
	q.payment_method = s->method;
	q.signed_date = (char *)(s->signed_date ? s->signed_date : today);
	q.building_area_dm2 = s->area;
	q.with_mortgage = s->with_mortgage;
	const char *persons[] = {s->seller, s->buyer, s->buyer2, NULL};
	return (Qiao__V1__ContractFilingResult *)call(SVC "contract-filing.v1", &q,
						      &qiao__v1__contract_filing_result__descriptor, persons, code);
}

static const struct sale s_main = {
	CONTRACT,
	UNIT,
	CERT,
	PRICE,
	12856,
	"张晓梅",
	SELLER,
	"李建国",
	BUYER,
	CO_BUYER,
	QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_COMMERCIAL_LOAN,
	NULL,
	1,
};
/* the second sale, which fails and is unwound */
static const struct sale s_second = {
	"WQ-2026-150602-000901",
	"150602001002GB00031F00030502",
	"蒙(2025)鄂尔多斯市不动产权第0023456号",
	210000000,
	14600,
	"高雅琴",
	"150627199201050028",
	"马骏",
	"150603199502140616",
	NULL,
	QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_COMMERCIAL_LOAN,
	NULL,
	0,
};

static char s_filing[72], s_filing2[72];

static void test_filing(void)
{
	int code;
	char t[256];
	Qiao__V1__ContractFilingResult *r = file_contract(&s_main, &code);
	CHECK(r && r->filed && strcmp(r->contract_no, CONTRACT) == 0 && strncmp(r->filing_no, "BA150602-", 9) == 0 &&
	      r->filed_ms > 0 && r->refusal_reason[0] == '\0');
	if (!r) {
		fprintf(stderr, "filing: %s\n", s_msg);
		return;
	}
	snprintf(s_filing, sizeof s_filing, "%s", r->filing_no);
	int64_t when = r->filed_ms;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM contract_filing WHERE contract_no = ?", CONTRACT, NULL),
		     "FILED") == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT filing_no FROM contract_filing WHERE contract_no = ?", CONTRACT, NULL),
		     s_filing) == 0);
	CHECK(q_int("SELECT price_fen FROM contract_filing WHERE contract_no = ?", CONTRACT, NULL) == PRICE);
	CHECK(q_int("SELECT with_mortgage FROM contract_filing WHERE contract_no = ?", CONTRACT, NULL) == 1);
	CHECK(q_int("SELECT COUNT(*) FROM filing_party WHERE contract_no = ? AND role = 'BUYER'", CONTRACT, NULL) == 2);
	CHECK(q_int("SELECT COUNT(*) FROM filing_party WHERE contract_no = ? AND role = 'SELLER' AND id_no = ?",
		    CONTRACT, SELLER, NULL) == 1);
	/* repeated */
	r = file_contract(&s_main, &code);
	CHECK(r && r->filed && strcmp(r->filing_no, s_filing) == 0 && r->filed_ms == when);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM contract_filing", NULL) == 1);
	CHECK(q_int("SELECT COUNT(*) FROM filing_party", NULL) == 3);
	/* the same number, another price */
	struct sale s = s_main;
	s.price = PRICE - 100;
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_REJECTED, "contract_no");

	/* refusals of the 楼盘表 */
	s = s_main;
	s.contract = "WQ-2026-150602-000778"; /* the unit already has a live filing */
	r = file_contract(&s, &code);
	CHECK(r && !r->filed && strstr(r->refusal_reason, CONTRACT) && r->filing_no[0] == '\0');
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	struct sale seized = {
		"WQ-2026-150603-000010",
		"150603002003GB00015F00020101",
		"蒙(2019)鄂尔多斯市不动产权第0004567号",
		90000000,
		10230,
		"赵志强",
		"15060319880721321X",
		"李建国",
		BUYER,
		NULL,
		QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_FULL,
		NULL,
		0,
	};
	r = file_contract(&seized, &code);
	CHECK(r && !r->filed && strstr(r->refusal_reason, "查封"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	s = s_second;
	s.seller_name = "李建国";
	s.seller = BUYER;
	s.buyer = CO_BUYER;
	r = file_contract(&s, &code);
	CHECK(r && !r->filed && strstr(r->refusal_reason, "产权人"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	s = s_second;
	s.unit = "150602001002GB00099F00030599";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_NOTFOUND, "unit_no");
	s = s_second;
	s.cert = CERT;
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_REJECTED, "cert_no");
	s = s_second;
	s.area = 14500;
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_REJECTED, "building_area_dm2");
	/* identifiers and fields in the body */
	s = s_second;
	s.seller = "150627199201050029";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_IDENT, "sellers[0].id.id");
	s = s_second;
	s.buyer2 = "91150602MA0H86424A";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_IDENT, "buyers[1].id.id");
	s = s_second;
	s.unit = "150602001002AB00031F00030502";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_IDENT, "unit_no");
	s = s_second;
	s.cert = "(2025)鄂尔多斯市不动产权第0023456号";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_IDENT, "cert_no");
	s = s_second;
	s.method = 0;
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_BAD, "payment_method");
	s = s_second;
	s.signed_date = "2026-02-30";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_BAD, "signed_date");
	s = s_second;
	s.signed_date = "2099-01-01";
	r = file_contract(&s, &code);
	EXPECT_ERR(r, code, E_BAD, "signed_date");
	CHECK(q_int("SELECT COUNT(*) FROM contract_filing", NULL) == 1);

	r = file_contract(&s_second, &code);
	CHECK(r && r->filed);
	if (r) {
		snprintf(s_filing2, sizeof s_filing2, "%s", r->filing_no);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	CHECK(q_int("SELECT COUNT(*) FROM contract_filing", NULL) == 2);
}

/* ---- escrow-agreement.v1 -------------------------------------------------- */

static void mk_account(Qiao__V1__BankAccount *a, const char *name, const char *no, const char *bank)
{
	qiao__v1__bank_account__init(a);
	a->account_name = (char *)name;
	a->account_no = (char *)no;
	a->bank_name = (char *)bank;
}

struct escrow {
	const char *contract, *filing;
	long long amount, payoff;
	const char *consent;
	int with_payoff_account;
	const char *old_lender, *new_lender;
};

static Qiao__V1__EscrowAgreementResult *agree(const struct escrow *e, int *code)
{
	Qiao__V1__BankAccount pay, sel, ref;
	mk_account(&pay, "银行A股份有限公司鄂尔多斯分行个人贷款结清专户", PAYOFF_ACCT,
		   "银行A股份有限公司鄂尔多斯分行营业部");
	mk_account(&sel, "张晓梅", SELLER_ACCT, "银行A股份有限公司鄂尔多斯分行");
	mk_account(&ref, "李建国", REFUND_ACCT, "银行B股份有限公司鄂尔多斯分行");
	struct party ol, nl;
	Qiao__V1__EscrowAgreementRequest q = QIAO__V1__ESCROW_AGREEMENT_REQUEST__INIT;
	q.contract_no = (char *)e->contract;
	q.filing_no = (char *)e->filing;
	q.escrow_amount_fen = e->amount;
	q.payoff_amount_fen = e->payoff;
	q.payoff_consent_no = (char *)(e->consent ? e->consent : "");
	q.payoff_account = e->with_payoff_account ? &pay : NULL;
	q.seller_account = &sel;
	q.refund_account = &ref;
	q.old_lender = e->old_lender ? mk_party(&ol, "银行A股份有限公司鄂尔多斯分行", e->old_lender) : NULL;
	q.new_lender = e->new_lender ? mk_party(&nl, "银行B股份有限公司鄂尔多斯分行", e->new_lender) : NULL;
	return (Qiao__V1__EscrowAgreementResult *)call(SVC "escrow-agreement.v1", &q,
						       &qiao__v1__escrow_agreement_result__descriptor, NULL, code);
}

static char s_agreement[72], s_escrow_acct[48], s_agreement2[72];

static void test_agreement(void)
{
	int code;
	char t[256];
	struct escrow e = {CONTRACT, s_filing, PRICE, PAYOFF, "BOA-TYDY-20261202-000001", 1, BANK_A_USCC, BANK_B_USCC};
	Qiao__V1__EscrowAgreementResult *r = agree(&e, &code);
	CHECK(r && r->agreed && strncmp(r->agreement_no, "ZJJG", 4) == 0 && r->escrow_amount_fen == PRICE &&
	      r->agreed_ms > 0 && r->escrow_account);
	if (!r) {
		fprintf(stderr, "escrow agreement: %s\n", s_msg);
		return;
	}
	/* the new lender (bank B) keeps an escrow account: the sub-account is there */
	CHECK(r->escrow_account && strncmp(r->escrow_account->account_no, "15050170000000000001", 20) == 0 &&
	      strlen(r->escrow_account->account_no) == 26 && strcmp(r->escrow_account->bank_code, "313205000022") == 0);
	snprintf(s_agreement, sizeof s_agreement, "%s", r->agreement_no);
	snprintf(s_escrow_acct, sizeof s_escrow_acct, "%s", r->escrow_account ? r->escrow_account->account_no : "");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) == PRICE);
	CHECK(q_int("SELECT payoff_amount_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) ==
	      PAYOFF);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT escrow_account_no FROM escrow_agreement WHERE contract_no = ?",
			    CONTRACT, NULL),
		     s_escrow_acct) == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM escrow_agreement WHERE agreement_no = ?", s_agreement,
			    NULL),
		     "AGREED") == 0);
	/* repeated */
	r = agree(&e, &code);
	CHECK(r && r->agreed && strcmp(r->agreement_no, s_agreement) == 0 && r->escrow_account &&
	      strcmp(r->escrow_account->account_no, s_escrow_acct) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM escrow_agreement", NULL) == 1);
	/* the same contract, other particulars */
	struct escrow x = e;
	x.amount = PRICE - 1000;
	r = agree(&x, &code);
	EXPECT_ERR(r, code, E_REJECTED, "contract_no");
	/* 监管金额 below 结清金额 */
	x = e;
	x.amount = PAYOFF - 1;
	r = agree(&x, &code);
	EXPECT_ERR(r, code, E_BAD, "escrow_amount_fen");
	/* the second sale: above the price, then without a new lender, then right */
	struct escrow e2 = {s_second.contract, s_filing2, s_second.price + 1, 0, NULL, 0, NULL, BANK_B_USCC};
	r = agree(&e2, &code);
	CHECK(r && !r->agreed && strstr(r->refusal_reason, "超过成交价") && r->agreement_no[0] == '\0');
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	e2.amount = 60000000;
	e2.new_lender = NULL;
	r = agree(&e2, &code);
	EXPECT_ERR(r, code, E_BAD, "new_lender");
	e2.new_lender = "91150602MA0H864249";
	r = agree(&e2, &code);
	EXPECT_ERR(r, code, E_IDENT, "new_lender.id.id");
	e2.new_lender = BANK_B_USCC;
	e2.filing = s_filing;
	r = agree(&e2, &code);
	EXPECT_ERR(r, code, E_NOTFOUND, "filing_no");
	e2.filing = s_filing2;
	e2.contract = "WQ-2026-150602-999999";
	r = agree(&e2, &code);
	EXPECT_ERR(r, code, E_NOTFOUND, "contract_no");
	e2.contract = s_second.contract;
	CHECK(q_int("SELECT COUNT(*) FROM escrow_agreement", NULL) == 1);
	r = agree(&e2, &code);
	CHECK(r && r->agreed && r->escrow_amount_fen == 60000000);
	if (r) {
		snprintf(s_agreement2, sizeof s_agreement2, "%s", r->agreement_no);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* 带押过户 needs the payoff particulars (a third sale, with mortgage) */
	static const struct sale third = {
		"WQ-2026-150602-000903",
		"150602001001GB00002F00010002",
		"蒙(2021)鄂尔多斯市不动产权第0009876号",
		165000000,
		11820,
		"马骏",
		"150603199502140616",
		"高雅琴",
		"150627199201050028",
		NULL,
		QIAO__V1__PAYMENT_METHOD__PAYMENT_METHOD_COMMERCIAL_LOAN,
		NULL,
		1,
	};
	Qiao__V1__ContractFilingResult *fr = file_contract(&third, &code);
	CHECK(fr && fr->filed);
	struct escrow e3 = {third.contract, fr ? fr->filing_no : "", 100000000, 0, NULL, 1, BANK_B_USCC, BANK_A_USCC};
	r = agree(&e3, &code);
	EXPECT_ERR(r, code, E_BAD, "payoff_amount_fen");
	e3.payoff = 79800000;
	r = agree(&e3, &code);
	EXPECT_ERR(r, code, E_BAD, "payoff_consent_no");
	e3.consent = "BOB-TYDY-20261202-000001";
	e3.with_payoff_account = 0;
	r = agree(&e3, &code);
	EXPECT_ERR(r, code, E_BAD, "payoff_account");
	if (fr)
		protobuf_c_message_free_unpacked(&fr->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM escrow_agreement WHERE contract_no = ?", third.contract, NULL) == 0);
	x = e;
	x.old_lender = "91150600MA0B5678OF"; /* letter O */
	r = agree(&x, &code);
	EXPECT_ERR(r, code, E_IDENT, "old_lender.id.id");
}

/* ---- escrow-payment.v1 ---------------------------------------------------- */

static Qiao__V1__EscrowPaymentResult *pay(const char *agreement, const char *no, int kind, const char *payee_name,
					  const char *payee_no, long long amount, const char *new_cert,
					  const char *slbh, int *code)
{
	Qiao__V1__BankAccount payee;
	mk_account(&payee, payee_name, payee_no, "银行A股份有限公司鄂尔多斯分行");
	Qiao__V1__EscrowPaymentRequest q = QIAO__V1__ESCROW_PAYMENT_REQUEST__INIT;
	q.agreement_no = (char *)agreement;
	q.payment_no = (char *)no;
	q.kind = kind;
	q.payee = &payee;
	q.amount_fen = amount;
	q.new_cert_no = (char *)new_cert;
	q.cancellation_slbh = (char *)(slbh ? slbh : "");
	return (Qiao__V1__EscrowPaymentResult *)call(SVC "escrow-payment.v1", &q,
						     &qiao__v1__escrow_payment_result__descriptor, NULL, code);
}

#define PAYOFF_K QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_PAYOFF
#define REMAINDER_K QIAO__V1__ESCROW_PAYMENT_KIND__ESCROW_PAYMENT_KIND_REMAINDER
#define PAID QIAO__V1__ESCROW_PAYMENT_STATUS__ESCROW_PAYMENT_STATUS_PAID
#define REFUSED QIAO__V1__ESCROW_PAYMENT_STATUS__ESCROW_PAYMENT_STATUS_REFUSED
#define PAYOFF_NAME "银行A股份有限公司鄂尔多斯分行个人贷款结清专户"
#define SLBH "SL150602-2026-012345"

static void test_payment(void)
{
	int code;
	char t[256];
	/* refused: the remainder before the payoff, wrong payee, wrong amount */
	Qiao__V1__EscrowPaymentResult *r =
		pay(s_agreement, "ZF-2026-0001", REMAINDER_K, "张晓梅", SELLER_ACCT, 1000, NEW_CERT, SLBH, &code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "结清款尚未支付") && r->balance_fen == PRICE);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = pay(s_agreement, "ZF-2026-0001", PAYOFF_K, PAYOFF_NAME, SELLER_ACCT, PAYOFF, NEW_CERT, NULL, &code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "收款账户"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = pay(s_agreement, "ZF-2026-0001", PAYOFF_K, PAYOFF_NAME, PAYOFF_ACCT, PAYOFF - 1, NEW_CERT, NULL, &code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "结清金额"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM escrow_payment", NULL) == 0);

	/* the payoff to the old lender */
	r = pay(s_agreement, "ZF-2026-0001", PAYOFF_K, PAYOFF_NAME, PAYOFF_ACCT, PAYOFF, NEW_CERT, NULL, &code);
	CHECK(r && r->status == PAID && r->amount_fen == PAYOFF && r->paid_ms > 0 && r->transaction_no[0] &&
	      r->balance_fen == PRICE - PAYOFF && strcmp(r->payment_no, "ZF-2026-0001") == 0);
	if (!r)
		fprintf(stderr, "payment: %s\n", s_msg);
	char txn[72] = "";
	if (r) {
		snprintf(txn, sizeof txn, "%s", r->transaction_no);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	CHECK(q_int("SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) ==
	      PRICE - PAYOFF);
	CHECK(q_int("SELECT paid_out_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) == PAYOFF);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT transaction_no FROM escrow_payment WHERE payment_no = ?",
			    "ZF-2026-0001", NULL),
		     txn) == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM contract_filing WHERE contract_no = ?", CONTRACT, NULL),
		     "REGISTERED") == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT new_cert_no FROM contract_filing WHERE contract_no = ?", CONTRACT,
			    NULL),
		     NEW_CERT) == 0);
	/* repeated: the same payment, paid once */
	r = pay(s_agreement, "ZF-2026-0001", PAYOFF_K, PAYOFF_NAME, PAYOFF_ACCT, PAYOFF, NEW_CERT, NULL, &code);
	CHECK(r && r->status == PAID && strcmp(r->transaction_no, txn) == 0 && r->balance_fen == PRICE - PAYOFF);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM escrow_payment", NULL) == 1);
	CHECK(q_int("SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) ==
	      PRICE - PAYOFF);
	/* the same number, another payment; a second payoff */
	r = pay(s_agreement, "ZF-2026-0001", REMAINDER_K, "张晓梅", SELLER_ACCT, 1000, NEW_CERT, SLBH, &code);
	EXPECT_ERR(r, code, E_REJECTED, "payment_no");
	r = pay(s_agreement, "ZF-2026-0002", PAYOFF_K, PAYOFF_NAME, PAYOFF_ACCT, PAYOFF, NEW_CERT, NULL, &code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "已支付"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* the remainder: evidence of the cancellation, within the balance */
	r = pay(s_agreement, "ZF-2026-0003", REMAINDER_K, "张晓梅", SELLER_ACCT, PRICE - PAYOFF, NEW_CERT, NULL, &code);
	EXPECT_ERR(r, code, E_BAD, "cancellation_slbh");
	r = pay(s_agreement, "ZF-2026-0003", REMAINDER_K, "张晓梅", SELLER_ACCT, PRICE - PAYOFF + 1, NEW_CERT, SLBH,
		&code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "余额不足") && r->balance_fen == PRICE - PAYOFF);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = pay(s_agreement, "ZF-2026-0003", REMAINDER_K, "张晓梅", SELLER_ACCT, PRICE - PAYOFF,
		"蒙(2026)鄂尔多斯市0034567号", SLBH, &code);
	EXPECT_ERR(r, code, E_IDENT, "new_cert_no");
	r = pay(s_agreement, "ZF 2026 0003", REMAINDER_K, "张晓梅", SELLER_ACCT, PRICE - PAYOFF, NEW_CERT, SLBH, &code);
	EXPECT_ERR(r, code, E_BAD, "payment_no");
	r = pay("ZJJG150600-2000-999999", "ZF-2026-0003", REMAINDER_K, "张晓梅", SELLER_ACCT, 100, NEW_CERT, SLBH,
		&code);
	EXPECT_ERR(r, code, E_NOTFOUND, "agreement_no");
	CHECK(q_int("SELECT COUNT(*) FROM escrow_payment", NULL) == 1);
	r = pay(s_agreement, "ZF-2026-0003", REMAINDER_K, "张晓梅", SELLER_ACCT, PRICE - PAYOFF, NEW_CERT, SLBH, &code);
	CHECK(r && r->status == PAID && r->amount_fen == PRICE - PAYOFF && r->balance_fen == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM escrow_agreement WHERE agreement_no = ?", s_agreement,
			    NULL),
		     "COMPLETED") == 0);
	CHECK(q_int("SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement, NULL) == 0);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT cancellation_slbh FROM escrow_payment WHERE payment_no = ?",
			    "ZF-2026-0003", NULL),
		     SLBH) == 0);
	r = pay(s_agreement, "ZF-2026-0004", REMAINDER_K, "张晓梅", SELLER_ACCT, 1, NEW_CERT, SLBH, &code);
	CHECK(r && r->status == REFUSED && strstr(r->refusal_reason, "支付完毕"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM escrow_payment", NULL) == 2);
}

/* ---- escrow-release.v1 and filing-cancellation.v1 ------------------------- */

static Qiao__V1__EscrowReleaseResult *release(const char *agreement, int reason, const char *note, int *code)
{
	Qiao__V1__EscrowRelease q = QIAO__V1__ESCROW_RELEASE__INIT;
	q.agreement_no = (char *)agreement;
	q.reason = reason;
	q.reason_note = (char *)note;
	return (Qiao__V1__EscrowReleaseResult *)call(SVC "escrow-release.v1", &q,
						     &qiao__v1__escrow_release_result__descriptor, NULL, code);
}

static Qiao__V1__FilingCancellationResult *cancel(const char *filing, const char *contract, int reason, int *code)
{
	Qiao__V1__FilingCancellation q = QIAO__V1__FILING_CANCELLATION__INIT;
	q.filing_no = (char *)filing;
	q.contract_no = (char *)contract;
	q.reason = reason;
	return (Qiao__V1__FilingCancellationResult *)call(
		SVC "filing-cancellation.v1", &q, &qiao__v1__filing_cancellation_result__descriptor, NULL, code);
}

#define REJ QIAO__V1__UNWIND_REASON__UNWIND_REASON_REGISTRATION_REJECTED

static void test_unwind(void)
{
	int code;
	char t[256];
	/* the filing cannot go while its escrow holds money */
	Qiao__V1__FilingCancellationResult *c = cancel(s_filing2, s_second.contract, REJ, &code);
	CHECK(c && !c->cancelled && strstr(c->refusal_reason, "资金监管") && c->cancelled_ms == 0);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	/* release: the whole balance refunded */
	Qiao__V1__EscrowReleaseResult *r = release(s_agreement2, REJ, "", &code);
	CHECK(r && r->released && r->released_ms > 0 && r->refunded_fen == 60000000 && r->refusal_reason[0] == '\0');
	if (!r)
		fprintf(stderr, "release: %s\n", s_msg);
	int64_t when = r ? r->released_ms : 0;
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM escrow_agreement WHERE agreement_no = ?", s_agreement2,
			    NULL),
		     "RELEASED") == 0);
	CHECK(q_int("SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement2, NULL) == 0);
	CHECK(q_int("SELECT refunded_fen FROM escrow_agreement WHERE agreement_no = ?", s_agreement2, NULL) ==
	      60000000);
	CHECK(q_int("SELECT release_reason FROM escrow_agreement WHERE agreement_no = ?", s_agreement2, NULL) == REJ);
	r = release(s_agreement2, REJ, "", &code); /* repeated */
	CHECK(r && r->released && r->released_ms == when && r->refunded_fen == 60000000);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(q_int("SELECT released_ms FROM escrow_agreement WHERE agreement_no = ?", s_agreement2, NULL) == when);
	/* a released escrow pays nothing */
	Qiao__V1__EscrowPaymentResult *p =
		pay(s_agreement2, "ZF-2026-0010", REMAINDER_K, "张晓梅", SELLER_ACCT, 100, NEW_CERT, SLBH, &code);
	CHECK(p && p->status == REFUSED && strstr(p->refusal_reason, "已解除"));
	if (p)
		protobuf_c_message_free_unpacked(&p->base, NULL);
	/* the main escrow paid the payoff: it cannot be released */
	r = release(s_agreement, REJ, "", &code);
	CHECK(r && !r->released && strstr(r->refusal_reason, "已支付") && r->refunded_fen == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM escrow_agreement WHERE agreement_no = ?", s_agreement,
			    NULL),
		     "COMPLETED") == 0);
	r = release("ZJJG150600-2000-999999", REJ, "", &code);
	EXPECT_ERR(r, code, E_NOTFOUND, "agreement_no");
	r = release(s_agreement2, QIAO__V1__UNWIND_REASON__UNWIND_REASON_OTHER, "", &code);
	EXPECT_ERR(r, code, E_BAD, "reason_note");
	r = release(s_agreement2, 99, "", &code);
	EXPECT_ERR(r, code, E_BAD, "reason");

	/* now the filing goes */
	c = cancel(s_filing2, s_second.contract, REJ, &code);
	CHECK(c && c->cancelled && c->cancelled_ms > 0);
	when = c ? c->cancelled_ms : 0;
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	CHECK(strcmp(q_text(t, sizeof t, "SELECT status FROM contract_filing WHERE filing_no = ?", s_filing2, NULL),
		     "CANCELLED") == 0);
	c = cancel(s_filing2, s_second.contract, REJ, &code); /* repeated */
	CHECK(c && c->cancelled && c->cancelled_ms == when);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	CHECK(q_int("SELECT cancelled_ms FROM contract_filing WHERE filing_no = ?", s_filing2, NULL) == when);
	/* a registered transfer cannot be unfiled */
	c = cancel(s_filing, CONTRACT, REJ, &code);
	CHECK(c && !c->cancelled && strstr(c->refusal_reason, "转移登记"));
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	c = cancel(s_filing, s_second.contract, REJ, &code);
	EXPECT_ERR(c, code, E_REJECTED, "contract_no");
	c = cancel("BA150602-2000-999999", CONTRACT, REJ, &code);
	EXPECT_ERR(c, code, E_NOTFOUND, "filing_no");
	/* a cancelled filing answers so, and the unit may be sold again */
	Qiao__V1__ContractFilingResult *f = file_contract(&s_second, &code);
	CHECK(f && !f->filed && strstr(f->refusal_reason, "撤销"));
	if (f)
		protobuf_c_message_free_unpacked(&f->base, NULL);
	struct sale again = s_second;
	again.contract = "WQ-2026-150602-000902";
	f = file_contract(&again, &code);
	CHECK(f && f->filed && strcmp(f->filing_no, s_filing2) != 0);
	if (f)
		protobuf_c_message_free_unpacked(&f->base, NULL);
	CHECK(q_int("SELECT COUNT(*) FROM contract_filing WHERE unit_no = ? AND status = 'FILED'", s_second.unit,
		    NULL) == 1);
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
	if (d_setup("dept-housing", NULL) != 0 || d_start_dept(D_HOUSING) != 0) {
		fprintf(stderr, "set-up failed\n");
		CHECK(0);
		d_teardown();
		return check_done();
	}
	s_reg = d_consumer(D_REGISTRY);
	CHECK(s_reg != NULL);
	if (s_reg) {
		test_filing();
		test_agreement();
		test_payment();
		test_unwind();
		stop_dept(D_HOUSING);
	}
	qiao_adapter_destroy(&s_reg);
	d_teardown();
	return check_done();
}
