/*
 * test_dept_market.c - qiao-market, the market regulator's adapter, behind
 * the real gateway: the seeded licence library signed at first start,
 * licence-by-holder.v1, licence-by-id.v1, licence-issue.v1 and
 * licence-revoke.v1 with their rows, signatures, idempotent repeats,
 * refusals and invalid identifiers, the outbox of licence events, and a
 * restart on the same database.
 */
/* dept_harness.h's d_path() trips -Wformat-truncation (PATH_MAX buffers
 * joined into a PATH_MAX buffer); reported to the lead. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "dept_harness.h"
#pragma GCC diagnostic pop
#include "licence.pb-c.h"
#include "qiao_id.h"
#include "qiao_issuer.h"

#include <sqlite3.h>

#define MKT "11150600MB0E78900J/market"
#define MKT_USCC "11150600MB0E78900J"
#define T_BL "11100000000013338W011" /* 营业执照 */
#define T_SE "11100000000013338W040" /* 特种设备安全管理和作业人员证 */
#define HENGXIN "91150602MA0H864248"
#define XINDA "91150621MA0R6D2C03"   /* 吊销 */
#define YUNFAN "91150602MA0Y7C3E2X"  /* registered, no licence yet */
#define PERSON_A "15060219850612003X"
#define PERSON_B "150621199003154522"

#define LS(x) QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_##x
#define HT(x) QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_##x
#define EC(x) QIAO__V1__ERROR_CODE__##x

static qiao_adapter_t *bank, *reg; /* bank B; the regulator's registration system */
static sqlite3 *db;

/* ---- helpers -------------------------------------------------------------- */

/* Today in China Standard Time, "YYYY-MM-DD". */
static void s_today(char out[11])
{
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static ProtobufCMessage *s_call(qiao_adapter_t *a, const char *name, const ProtobufCMessage *req,
				const ProtobufCMessageDescriptor *rd, const char *purpose, int *code, char *msg)
{
	char svc[128];
	snprintf(svc, sizeof svc, MKT "/%s", name);
	ProtobufCMessage *m = d_call(a, svc, req, rd, purpose, NULL, NULL, 0, code, msg, 600);
	if (*code != 0 && getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "  %s: %d %s\n", name, *code, msg);
	return m;
}

/* msg is "NAME field: message": the error names `field`. */
static bool s_field_is(const char *msg, const char *field)
{
	const char *p = strchr(msg, ' ');
	size_t n = strlen(field);
	return p && strncmp(p + 1, field, n) == 0 && p[1 + n] == ':';
}

#define CHECK_ERROR(code, msg, want, field)                                                  \
	do {                                                                                 \
		CHECK((code) == (want));                                                     \
		CHECK(s_field_is(msg, field));                                               \
		if ((code) != (want) || !s_field_is(msg, field))                             \
			fprintf(stderr, "  wanted %d naming %s, got %d: %s\n", (int)(want), field, \
				code, msg);                                                  \
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

/* The blob of the first row (malloc'd) or NULL. */
static uint8_t *s_blob(const char *sql, const char *arg, long long iarg, size_t *len)
{
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	*len = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
		if (iarg >= 0)
			sqlite3_bind_int64(st, 2, iarg);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0) {
			*len = (size_t)sqlite3_column_bytes(st, 0);
			b = malloc(*len);
			memcpy(b, sqlite3_column_blob(st, 0), *len);
		}
	}
	sqlite3_finalize(st);
	return b;
}

/* The stored bytes of version `v` of licence `id`. */
static uint8_t *s_version_bytes(const char *id, long long v, size_t *len)
{
	return s_blob("SELECT b.zzbw FROM dzzz_bb b JOIN dzzz d ON d.zzid = b.zzid WHERE d.zzbs = ? AND b.bbh = ?", id,
		      v, len);
}

/* Verify the issuer signature, then decode; NULL when either fails. */
static Qiao__V1__ElectronicLicence *s_open(const Qiao__V1__SignedLicence *sl)
{
	if (!sl || !sl->signature)
		return NULL;
	char why[200];
	if (qiao_issuer_verify(sl->signature, QIAO_DOMAIN_LICENCE, sl->licence.data, sl->licence.len, MKT,
			       d_m[D_MARKET].k->sign_pk, why, sizeof why) != 0) {
		fprintf(stderr, "  signature: %s\n", why);
		return NULL;
	}
	return qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data);
}

/* `id` with its MOD 37,36 check character replaced by another one. */
static void s_mutate(const char *id, char *out, size_t n)
{
	snprintf(out, n, "%s", id);
	size_t l = strlen(out);
	out[l - 1] = out[l - 1] == '7' ? 'Q' : '7';
}

/* A valid licence id of this issuer that it never issued. */
static void s_unknown_id(char *out, size_t n)
{
	const char *body = T_BL MKT_USCC "20990000001" "001";
	char c = qiao_id_mod3736(body, strlen(body));
	snprintf(out, n, "1.2.156.3005.2." T_BL "." MKT_USCC ".20990000001.001.%c", c);
}

/* Segment k (0 = T … 4 = C) of a licence id. */
static void s_segment(const char *id, int k, char *out, size_t n)
{
	const char *p = id + strlen("1.2.156.3005.2.");
	for (int i = 0; i < k && p; i++) {
		p = strchr(p, '.');
		if (p)
			p++;
	}
	out[0] = '\0';
	if (p)
		snprintf(out, n, "%.*s", (int)strcspn(p, "."), p);
}

static Qiao__V1__LicenceByHolderReply *s_by_holder(const char *code, int type, const char *type_code, bool inactive,
						   const char *purpose, int *rc, char *msg)
{
	Qiao__V1__LicenceByHolderRequest q = QIAO__V1__LICENCE_BY_HOLDER_REQUEST__INIT;
	q.holder_code = (char *)code;
	q.holder_code_type = (Qiao__V1__HolderCodeType)type;
	q.type_code = (char *)(type_code ? type_code : "");
	q.purpose = (char *)(purpose ? purpose : "");
	q.include_inactive = inactive;
	return (Qiao__V1__LicenceByHolderReply *)s_call(bank, "licence-by-holder.v1", &q.base,
							&qiao__v1__licence_by_holder_reply__descriptor, "贷款审批",
							rc, msg);
}

static Qiao__V1__LicenceByIdReply *s_by_id(const char *id, const char *purpose, int *rc, char *msg)
{
	Qiao__V1__LicenceByIdRequest q = QIAO__V1__LICENCE_BY_ID_REQUEST__INIT;
	q.licence_id = (char *)id;
	q.purpose = (char *)(purpose ? purpose : "");
	return (Qiao__V1__LicenceByIdReply *)s_call(bank, "licence-by-id.v1", &q.base,
						    &qiao__v1__licence_by_id_reply__descriptor, purpose, rc, msg);
}

/* ---- the draft of 云帆's business licence --------------------------------- */

static Qiao__V1__LicenceItem it_v[4];
static Qiao__V1__LicenceItem *it_p[4];

static void s_draft(Qiao__V1__ElectronicLicence *l)
{
	static const char *const kv[4][2] = {
		{"名称", "鄂尔多斯市东胜区云帆信息技术有限公司"},
		{"类型", "有限责任公司(自然人投资或控股)"},
		{"法定代表人", "陈思远"},
		{"经营范围", "软件开发；信息系统集成服务"},
	};
	qiao__v1__electronic_licence__init(l);
	for (int i = 0; i < 4; i++) {
		qiao__v1__licence_item__init(&it_v[i]);
		it_v[i].name = (char *)kv[i][0];
		it_v[i].value = (char *)kv[i][1];
		it_p[i] = &it_v[i];
	}
	l->name = "营业执照";
	l->type_code = T_BL;
	l->number = YUNFAN;
	l->jurisdiction_code = "150602";
	l->holder_name = "鄂尔多斯市东胜区云帆信息技术有限公司";
	l->holder_code = YUNFAN;
	l->holder_code_type = HT(USCC);
	l->valid_from = "2026-11-28";
	l->n_items = 4;
	l->items = it_p;
	/* the issuer assigns these and ignores what the draft says */
	l->licence_id = "ignored";
	l->status = LS(REVOKED);
	l->version = 42;
}

static Qiao__V1__LicenceIssueResult *s_issue(const char *appno, Qiao__V1__ElectronicLicence *draft, int *rc,
					     char *msg)
{
	Qiao__V1__LicenceIssueRequest q = QIAO__V1__LICENCE_ISSUE_REQUEST__INIT;
	q.application_no = (char *)appno;
	q.draft = draft;
	return (Qiao__V1__LicenceIssueResult *)s_call(reg, "licence-issue.v1", &q.base,
						      &qiao__v1__licence_issue_result__descriptor, "企业设立登记", rc,
						      msg);
}

static Qiao__V1__LicenceRevokeResult *s_revoke(const char *id, int status, const char *decision, int *rc, char *msg)
{
	Qiao__V1__LicenceRevokeRequest q = QIAO__V1__LICENCE_REVOKE_REQUEST__INIT;
	q.licence_id = (char *)id;
	q.new_status = (Qiao__V1__LicenceStatus)status;
	q.decision_no = (char *)decision;
	q.reason = "未按规定公示年度报告且通过登记的住所无法联系";
	q.effective_date = "2026-12-01";
	return (Qiao__V1__LicenceRevokeResult *)s_call(reg, "licence-revoke.v1", &q.base,
						       &qiao__v1__licence_revoke_result__descriptor, "行政处罚", rc, msg);
}

/* ---- the seeded library ---------------------------------------------------- */

static char id_hengxin[160], id_hengxin_old[160], id_xinda[160], id_person[160];

static void t_seeded(void)
{
	CHECK(s_int("SELECT count(*) FROM dzzz", NULL) == 9);
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE zzbs IS NULL", NULL) == 0);
	CHECK(s_int("SELECT count(*) FROM dzzz d WHERE NOT EXISTS (SELECT 1 FROM dzzz_bb b WHERE b.zzid = d.zzid"
		    " AND b.bbh = d.bbh)",
		    NULL) == 0);
	sqlite3_stmt *st = NULL;
	int rows = 0, good = 0;
	sqlite3_prepare_v2(db,
			   "SELECT d.zzbs, d.zzzt, d.bbh, d.czztdm, b.zzbw, b.qmsf, b.qmmy, b.qmz, b.qmsj FROM dzzz d"
			   " JOIN dzzz_bb b ON b.zzid = d.zzid AND b.bbh = d.bbh ORDER BY d.zzid",
			   -1, &st, NULL);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		rows++;
		const char *id = (const char *)sqlite3_column_text(st, 0);
		Qiao__V1__IssuerSignature sig = QIAO__V1__ISSUER_SIGNATURE__INIT;
		sig.algorithm = (Qiao__V1__Algorithm)sqlite3_column_int(st, 5);
		sig.key_id = (char *)sqlite3_column_text(st, 6);
		sig.signature.data = (uint8_t *)sqlite3_column_blob(st, 7);
		sig.signature.len = (size_t)sqlite3_column_bytes(st, 7);
		sig.domain = QIAO_DOMAIN_LICENCE;
		sig.signed_ms = sqlite3_column_int64(st, 8);
		Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
		sl.licence.data = (uint8_t *)sqlite3_column_blob(st, 4);
		sl.licence.len = (size_t)sqlite3_column_bytes(st, 4);
		sl.signature = &sig;
		Qiao__V1__ElectronicLicence *l = s_open(&sl);
		bool ok = id && qiao_id_check_licence(id, NULL, 0) == 0 && l && strcmp(l->licence_id, id) == 0 &&
			  (int)l->status == atoi((const char *)sqlite3_column_text(st, 1)) &&
			  (long long)l->version == sqlite3_column_int64(st, 2) &&
			  strcmp(l->holder_code, (const char *)sqlite3_column_text(st, 3)) == 0 &&
			  strcmp(l->issuer_uscc, MKT_USCC) == 0;
		if (!ok)
			fprintf(stderr, "  seeded licence %s does not verify or differs from its row\n", id ? id : "?");
		good += ok;
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	sqlite3_finalize(st);
	CHECK(rows == 9);
	CHECK(good == 9);
	s_text("SELECT zzbs FROM dzzz WHERE zzid = 2", NULL, id_hengxin, sizeof id_hengxin);
	s_text("SELECT zzbs FROM dzzz WHERE zzid = 1", NULL, id_hengxin_old, sizeof id_hengxin_old);
	s_text("SELECT zzbs FROM dzzz WHERE zzid = 6", NULL, id_xinda, sizeof id_xinda);
	s_text("SELECT zzbs FROM dzzz WHERE zzid = 9", NULL, id_person, sizeof id_person);
	char rel[160];
	s_text("SELECT glzzbs FROM dzzz_glzz WHERE zzid = 2", NULL, rel, sizeof rel);
	CHECK(rel[0] && strcmp(rel, id_hengxin_old) == 0);
	/* the 吊销 and 注销 licences are seeded at version 2 */
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE zzzt = '07' AND bbh = 2", NULL) == 1);
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE zzzt = '04' AND bbh = 2", NULL) == 1);
	/* nothing is published for seeded licences */
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == 0);
}

/* ---- licence-by-holder.v1 ------------------------------------------------------ */

static void t_by_holder(void)
{
	int rc;
	char msg[600];
	Qiao__V1__LicenceByHolderReply *r = s_by_holder(HENGXIN, HT(USCC), NULL, false, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 1);
	if (r && r->n_licences == 1) {
		Qiao__V1__ElectronicLicence *l = s_open(r->licences[0]->licence);
		CHECK(l && strcmp(l->licence_id, id_hengxin) == 0 && l->status == LS(VALID));
		CHECK(l && l->n_related_licence_ids == 1 && strcmp(l->related_licence_ids[0], id_hengxin_old) == 0);
		CHECK(l && l->n_items == 8 && strcmp(l->items[0]->name, "名称") == 0);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* include_inactive: the 失效 one too, newest issue date first */
	r = s_by_holder(HENGXIN, HT(USCC), T_BL, true, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 2);
	if (r && r->n_licences == 2) {
		Qiao__V1__ElectronicLicence *a = s_open(r->licences[0]->licence);
		Qiao__V1__ElectronicLicence *b = s_open(r->licences[1]->licence);
		CHECK(a && strcmp(a->licence_id, id_hengxin) == 0 && strcmp(a->issue_date, "2023-07-20") == 0);
		CHECK(b && strcmp(b->licence_id, id_hengxin_old) == 0 && b->status == LS(EXPIRED));
		if (a)
			qiao__v1__electronic_licence__free_unpacked(a, NULL);
		if (b)
			qiao__v1__electronic_licence__free_unpacked(b, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* a 吊销 licence only with include_inactive */
	r = s_by_holder(XINDA, HT(USCC), NULL, false, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	r = s_by_holder(XINDA, HT(USCC), NULL, true, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 1);
	if (r && r->n_licences == 1) {
		Qiao__V1__ElectronicLicence *l = s_open(r->licences[0]->licence);
		CHECK(l && l->status == LS(REVOKED) && l->version == 2 && strcmp(l->licence_id, id_xinda) == 0);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the type filter */
	r = s_by_holder(HENGXIN, HT(USCC), T_SE, true, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* a natural person's licence */
	r = s_by_holder(PERSON_A, HT(RESIDENT_ID), NULL, false, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->n_licences == 1);
	if (r && r->n_licences == 1) {
		Qiao__V1__ElectronicLicence *l = s_open(r->licences[0]->licence);
		CHECK(l && strcmp(l->licence_id, id_person) == 0 && l->holder_code_type == HT(RESIDENT_ID));
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* refusals */
	r = s_by_holder(HENGXIN, HT(USCC), NULL, false, "", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
	r = s_by_holder("91150602MA0H864249", HT(USCC), NULL, false, "贷款审批", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "holder_code");
	r = s_by_holder("110105195001010014", HT(RESIDENT_ID), NULL, false, "贷款审批", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "holder_code");
	r = s_by_holder(HENGXIN, HT(USCC), "11100000000013338X011", false, "贷款审批", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "type_code");
	r = s_by_holder(HENGXIN, HT(UNSPECIFIED), NULL, false, "贷款审批", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "holder_code_type");
	/* the body's purpose must agree with the header's */
	r = s_by_holder(HENGXIN, HT(USCC), NULL, false, "贷款审批 另一笔贷款", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
}

/* ---- licence-by-id.v1 ---------------------------------------------------------- */

static void t_by_id(void)
{
	int rc;
	char msg[600];
	Qiao__V1__LicenceByIdReply *r = s_by_id(id_hengxin, NULL, &rc, msg);
	CHECK(rc == 0 && r && r->licence && r->licence->licence);
	if (r && r->licence && r->licence->licence) {
		size_t n;
		uint8_t *b = s_version_bytes(id_hengxin, 1, &n);
		/* the stored bytes, exactly */
		CHECK(b && n == r->licence->licence->licence.len && memcmp(b, r->licence->licence->licence.data, n) == 0);
		free(b);
		char kid[128];
		s_text("SELECT b.qmmy FROM dzzz_bb b JOIN dzzz d ON d.zzid = b.zzid WHERE d.zzbs = ?", id_hengxin, kid,
		       sizeof kid);
		CHECK(r->licence->licence->signature && strcmp(r->licence->licence->signature->key_id, kid) == 0);
		Qiao__V1__ElectronicLicence *l = s_open(r->licence->licence);
		CHECK(l && strcmp(l->licence_id, id_hengxin) == 0 && strcmp(l->number, HENGXIN) == 0);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	char id[160];
	s_unknown_id(id, sizeof id);
	CHECK(qiao_id_check_licence(id, NULL, 0) == 0);
	r = s_by_id(id, NULL, &rc, msg);
	CHECK(!r && rc == EC(NOT_FOUND));

	s_mutate(id_hengxin, id, sizeof id);
	CHECK(qiao_id_check_licence(id, NULL, 0) != 0);
	r = s_by_id(id, NULL, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "licence_id");

	/* a natural person's licence needs a purpose */
	r = s_by_id(id_person, NULL, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
	r = s_by_id(id_person, "贷款审批", &rc, msg);
	CHECK(rc == 0 && r && r->licence);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the policy: bank B may read, not issue */
	Qiao__V1__ElectronicLicence dr;
	s_draft(&dr);
	Qiao__V1__LicenceIssueRequest q = QIAO__V1__LICENCE_ISSUE_REQUEST__INIT;
	q.application_no = "DJ-BANK-1";
	q.draft = &dr;
	ProtobufCMessage *m = s_call(bank, "licence-issue.v1", &q.base, &qiao__v1__licence_issue_result__descriptor,
				     "企业设立登记", &rc, msg);
	CHECK(!m && rc == EC(POLICY_DENIED));
}

/* ---- licence-issue.v1 ----------------------------------------------------------- */

static char id_yunfan[160];
static uint8_t *yunfan_v1;
static size_t yunfan_v1_len;

static void t_issue(void)
{
	int rc;
	char msg[600], today[11], year[5];
	s_today(today);
	snprintf(year, sizeof year, "%.4s", today);
	Qiao__V1__ElectronicLicence dr;
	s_draft(&dr);
	Qiao__V1__LicenceIssueResult *r = s_issue("DJ-150602-2026-001287", &dr, &rc, msg);
	CHECK(rc == 0 && r && r->issued && r->licence && !r->refusal_reason[0]);
	Qiao__V1__ElectronicLicence *l = r ? s_open(r->licence) : NULL;
	CHECK(l != NULL);
	if (l) {
		snprintf(id_yunfan, sizeof id_yunfan, "%s", l->licence_id);
		CHECK(qiao_id_check_licence(l->licence_id, NULL, 0) == 0);
		/* the result names the licence it signed */
		CHECK(r && strcmp(r->licence_id, l->licence_id) == 0);
		char seg[64], want[32];
		s_segment(l->licence_id, 0, seg, sizeof seg);
		CHECK(strcmp(seg, T_BL) == 0);
		s_segment(l->licence_id, 1, seg, sizeof seg);
		CHECK(strcmp(seg, MKT_USCC) == 0);
		s_segment(l->licence_id, 2, seg, sizeof seg);
		snprintf(want, sizeof want, "%s%07d", year, strcmp(year, "2026") == 0 ? 5121 : 1);
		CHECK(strcmp(seg, want) == 0);
		s_segment(l->licence_id, 3, seg, sizeof seg);
		CHECK(strcmp(seg, "001") == 0);
		CHECK(l->status == LS(VALID) && l->version == 1 && l->version_ms > 0);
		CHECK(strcmp(l->issue_date, today) == 0 && strcmp(l->valid_from, "2026-11-28") == 0);
		CHECK(strcmp(l->issuer_uscc, MKT_USCC) == 0 && strcmp(l->issuer_name, "鄂尔多斯市市场监督管理局") == 0);
		CHECK(strcmp(l->holder_code, YUNFAN) == 0 && l->n_items == 4);
		char bad[160];
		s_mutate(l->licence_id, bad, sizeof bad);
		CHECK(qiao_id_check_licence(bad, NULL, 0) != 0);
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	/* rows: the licence, its items, the signed version, the outbox event */
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE sqbh = 'DJ-150602-2026-001287' AND zzzt = '01' AND bbh = 1"
		    " AND sqf = '" MKT "'",
		    NULL) == 1);
	char got[160];
	s_text("SELECT zzbs FROM dzzz WHERE sqbh = 'DJ-150602-2026-001287'", NULL, got, sizeof got);
	CHECK(strcmp(got, id_yunfan) == 0);
	CHECK(s_int("SELECT count(*) FROM dzzz_zmxx m JOIN dzzz d ON d.zzid = m.zzid WHERE d.zzbs = ?", id_yunfan) == 4);
	yunfan_v1 = s_version_bytes(id_yunfan, 1, &yunfan_v1_len);
	CHECK(r && r->licence && yunfan_v1 && yunfan_v1_len == r->licence->licence.len &&
	      memcmp(yunfan_v1, r->licence->licence.data, yunfan_v1_len) == 0);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE zzbs = ? AND bbh = 1 AND sjlx = 1", id_yunfan) == 1);
	size_t evn;
	uint8_t *evb = s_blob("SELECT sjbw FROM dzzz_sjfb WHERE zzbs = ?", id_yunfan, -1, &evn);
	Qiao__V1__LicenceEvent *ev = evb ? qiao__v1__licence_event__unpack(NULL, evn, evb) : NULL;
	CHECK(ev && ev->event_type == QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_ISSUED && ev->version == 1 &&
	      strcmp(ev->licence_id, id_yunfan) == 0 && ev->new_status == LS(VALID) && ev->licence &&
	      ev->licence->licence.len == yunfan_v1_len &&
	      memcmp(ev->licence->licence.data, yunfan_v1, yunfan_v1_len) == 0);
	if (ev)
		qiao__v1__licence_event__free_unpacked(ev, NULL);
	free(evb);
	uint8_t *first = NULL;
	size_t first_len = 0;
	if (r && r->licence) {
		first_len = r->licence->licence.len;
		first = malloc(first_len);
		memcpy(first, r->licence->licence.data, first_len);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the same application again: the same licence, nothing new */
	long long nlic = s_int("SELECT count(*) FROM dzzz", NULL);
	long long nbb = s_int("SELECT count(*) FROM dzzz_bb", NULL);
	long long nev = s_int("SELECT count(*) FROM dzzz_sjfb", NULL);
	r = s_issue("DJ-150602-2026-001287", &dr, &rc, msg);
	CHECK(rc == 0 && r && r->issued && r->licence && first && r->licence->licence.len == first_len &&
	      memcmp(r->licence->licence.data, first, first_len) == 0 && strcmp(r->licence_id, id_yunfan) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	free(first);
	CHECK(s_int("SELECT count(*) FROM dzzz", NULL) == nlic);
	CHECK(s_int("SELECT count(*) FROM dzzz_bb", NULL) == nbb);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == nev);

	/* the same number for another holder */
	Qiao__V1__ElectronicLicence other;
	s_draft(&other);
	other.holder_code = HENGXIN;
	other.number = HENGXIN;
	other.holder_name = "鄂尔多斯市东胜区恒信商贸有限公司";
	r = s_issue("DJ-150602-2026-001287", &other, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(REJECTED), "application_no");

	/* business refusals: already holds one, 吊销, name differs */
	r = s_issue("DJ-150602-2026-001288", &dr, &rc, msg);
	CHECK(rc == 0 && r && !r->issued && !r->licence && !r->licence_id[0] && strstr(r->refusal_reason, "已持有"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	Qiao__V1__ElectronicLicence x;
	s_draft(&x);
	x.holder_code = XINDA;
	x.number = XINDA;
	x.holder_name = "达拉特旗鑫达建材有限公司";
	r = s_issue("DJ-150621-2026-000311", &x, &rc, msg);
	CHECK(rc == 0 && r && !r->issued && strstr(r->refusal_reason, "吊销"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	s_draft(&x);
	x.holder_code = "91150622MA0U1G5J0W";
	x.number = "91150622MA0U1G5J0W";
	x.holder_name = "准格尔旗金阳光伏有限公司";
	r = s_issue("DJ-150622-2026-000107", &x, &rc, msg);
	CHECK(rc == 0 && r && !r->issued && strstr(r->refusal_reason, "不一致"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(s_int("SELECT count(*) FROM dzzz", NULL) == nlic);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == nev);

	/* invalid identifiers and fields of the draft */
	s_draft(&x);
	x.holder_code = "91150602MA0Y7C3E2Y";
	x.number = x.holder_code;
	r = s_issue("DJ-150602-2026-001290", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "draft.holder_code");
	s_draft(&x);
	x.type_code = "11100000000013338V011";
	r = s_issue("DJ-150602-2026-001291", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "draft.type_code");
	s_draft(&x);
	char bad[160];
	s_mutate(id_hengxin, bad, sizeof bad);
	char *rel[1] = {bad};
	x.n_related_licence_ids = 1;
	x.related_licence_ids = rel;
	r = s_issue("DJ-150602-2026-001292", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "draft.related_licence_ids");
	s_draft(&x);
	x.valid_until = "2026-02-30";
	r = s_issue("DJ-150602-2026-001293", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "draft.valid_until");
	s_draft(&x);
	x.issuer_uscc = "91350203M0001QAY9B";
	r = s_issue("DJ-150602-2026-001294", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "draft.issuer_uscc");
	r = s_issue("DJ-150602-2026-001295", NULL, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "draft");
	r = s_issue("DJ 150602/2026", &dr, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "application_no");

	/* a natural person's certificate */
	Qiao__V1__ElectronicLicence p;
	s_draft(&p);
	p.name = "特种设备安全管理和作业人员证";
	p.type_code = T_SE;
	p.number = PERSON_B;
	p.holder_name = "刘芳";
	p.holder_code = PERSON_B;
	p.holder_code_type = HT(RESIDENT_ID);
	p.jurisdiction_code = "150600";
	p.valid_from = "";
	p.valid_until = "2030-11-30";
	p.n_items = 0;
	p.items = NULL;
	x = p;
	x.holder_code = "110105195001010014";
	r = s_issue("TS-150600-2026-000088", &x, &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "draft.holder_code");
	r = s_issue("TS-150600-2026-000088", &p, &rc, msg);
	CHECK(rc == 0 && r && r->issued);
	l = r && r->issued ? s_open(r->licence) : NULL;
	CHECK(l && l->holder_code_type == HT(RESIDENT_ID) && strcmp(l->valid_from, today) == 0 &&
	      qiao_id_check_licence(l->licence_id, NULL, 0) == 0);
	if (l) {
		Qiao__V1__LicenceByIdReply *b = s_by_id(l->licence_id, NULL, &rc, msg);
		CHECK(!b);
		CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "purpose");
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* a person cannot hold a 营业执照 */
	x = p;
	x.name = "营业执照";
	x.type_code = T_BL;
	r = s_issue("DJ-150600-2026-000089", &x, &rc, msg);
	CHECK(rc == 0 && r && !r->issued && r->refusal_reason[0]);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ---- licence-revoke.v1 ------------------------------------------------------------ */

static void t_revoke(void)
{
	int rc;
	char msg[600];
	if (!id_yunfan[0])
		return;
	long long nev = s_int("SELECT count(*) FROM dzzz_sjfb", NULL);
	Qiao__V1__LicenceRevokeResult *r = s_revoke(id_yunfan, LS(SUSPENDED), "鄂市监处罚〔2026〕101号", &rc, msg);
	CHECK(rc == 0 && r && r->changed && r->licence);
	Qiao__V1__ElectronicLicence *l = r && r->licence ? s_open(r->licence) : NULL;
	CHECK(l && strcmp(l->licence_id, id_yunfan) == 0 && l->version == 2 && l->status == LS(SUSPENDED));
	if (l)
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	/* a new version beside the old one, which is kept as it was */
	size_t n1, n2;
	uint8_t *v1 = s_version_bytes(id_yunfan, 1, &n1), *v2 = s_version_bytes(id_yunfan, 2, &n2);
	CHECK(v1 && yunfan_v1 && n1 == yunfan_v1_len && memcmp(v1, yunfan_v1, n1) == 0);
	CHECK(v2 && r && r->licence && n2 == r->licence->licence.len && memcmp(v2, r->licence->licence.data, n2) == 0);
	uint8_t *first = v2;
	size_t first_len = n2;
	free(v1);
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE zzbs = ? AND zzzt = '02' AND bbh = 2", id_yunfan) == 1);
	CHECK(s_int("SELECT count(*) FROM dzzz_ztbg g JOIN dzzz d ON d.zzid = g.zzid WHERE d.zzbs = ? AND g.ybbh = 1"
		    " AND g.xbbh = 2 AND g.yzt = '01' AND g.xzt = '02' AND g.jdswh = '鄂市监处罚〔2026〕101号'",
		    id_yunfan) == 1);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE zzbs = ? AND bbh = 2 AND sjlx = 3", id_yunfan) == 1);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == nev + 1);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the same decision again: the same version, nothing new */
	r = s_revoke(id_yunfan, LS(SUSPENDED), "鄂市监处罚〔2026〕101号", &rc, msg);
	CHECK(rc == 0 && r && r->changed && r->licence && first && r->licence->licence.len == first_len &&
	      memcmp(r->licence->licence.data, first, first_len) == 0);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	free(first);
	CHECK(s_int("SELECT count(*) FROM dzzz_bb b JOIN dzzz d ON d.zzid = b.zzid WHERE d.zzbs = ?", id_yunfan) == 2);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == nev + 1);

	/* another decision for the status it already has */
	r = s_revoke(id_yunfan, LS(SUSPENDED), "鄂市监处罚〔2026〕105号", &rc, msg);
	CHECK(rc == 0 && r && !r->changed && !r->licence && strstr(r->refusal_reason, "已处于"));
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* 吊销: version 3 */
	r = s_revoke(id_yunfan, LS(REVOKED), "鄂市监处罚〔2026〕102号", &rc, msg);
	CHECK(rc == 0 && r && r->changed);
	l = r && r->licence ? s_open(r->licence) : NULL;
	CHECK(l && l->version == 3 && l->status == LS(REVOKED) && strcmp(l->licence_id, id_yunfan) == 0);
	if (l)
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE zzbs = ? AND bbh = 3 AND sjlx = 4", id_yunfan) == 1);
	CHECK(s_int("SELECT count(*) FROM dzzz_bb b JOIN dzzz d ON d.zzid = b.zzid WHERE d.zzbs = ?", id_yunfan) == 3);
	char state[32];
	s_text("SELECT regstate FROM sczt WHERE uniscid = ?", YUNFAN, state, sizeof state);
	CHECK(strcmp(state, "吊销") == 0);

	/* nothing changes a 吊销 licence */
	r = s_revoke(id_yunfan, LS(CANCELLED), "鄂市监注销〔2026〕7号", &rc, msg);
	CHECK(rc == 0 && r && !r->changed && r->refusal_reason[0]);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	/* neither a seeded one */
	r = s_revoke(id_xinda, LS(SUSPENDED), "达市监处罚〔2026〕3号", &rc, msg);
	CHECK(rc == 0 && r && !r->changed);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);

	/* errors */
	char id[160];
	s_unknown_id(id, sizeof id);
	r = s_revoke(id, LS(REVOKED), "鄂市监处罚〔2026〕103号", &rc, msg);
	CHECK(!r && rc == EC(NOT_FOUND));
	s_mutate(id_yunfan, id, sizeof id);
	r = s_revoke(id, LS(REVOKED), "鄂市监处罚〔2026〕103号", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(INVALID_IDENTIFIER), "licence_id");
	r = s_revoke(id_hengxin, LS(VALID), "鄂市监处罚〔2026〕103号", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "new_status");
	r = s_revoke(id_hengxin, LS(REVOKED), "", &rc, msg);
	CHECK(!r);
	CHECK_ERROR(rc, msg, EC(BAD_REQUEST), "decision_no");
	CHECK(s_int("SELECT count(*) FROM dzzz WHERE zzbs = ? AND zzzt = '01' AND bbh = 1", id_hengxin) == 1);

	/* what readers see now: the gateway's cached copy is replaced when the
	 * regulator's LicenceEvent arrives (asynchronously): wait for it */
	Qiao__V1__LicenceByIdReply *b = NULL;
	l = NULL;
	for (int64_t until = h_now() + 5000;;) {
		b = s_by_id(id_yunfan, NULL, &rc, msg);
		l = b && b->licence ? s_open(b->licence->licence) : NULL;
		if ((l && l->version == 3) || h_now() >= until)
			break;
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
		if (b)
			protobuf_c_message_free_unpacked(&b->base, NULL);
		h_sleep_ms(50);
	}
	CHECK(l && l->version == 3 && l->status == LS(REVOKED));
	if (l)
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
	if (b)
		protobuf_c_message_free_unpacked(&b->base, NULL);
	Qiao__V1__LicenceByHolderReply *h = s_by_holder(YUNFAN, HT(USCC), NULL, false, "贷款审批", &rc, msg);
	CHECK(rc == 0 && h && h->n_licences == 0);
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
}

/* ---- the outbox --------------------------------------------------------------------- */

static void t_outbox(void)
{
	/* 2 licences issued, 2 status changes: in order, each tried */
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb", NULL) == 4);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb a JOIN dzzz_sjfb b ON b.sjid > a.sjid AND b.zzbs = a.zzbs"
		    " WHERE b.bbh <= a.bbh",
		    NULL) == 0);
	WAIT_FOR(s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 0 AND cscs = 0", NULL) == 0, 8000);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 0 AND cscs = 0", NULL) == 0);
	long long pub = s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 1", NULL);
	/* published rows are a prefix: never one after an unpublished one */
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb a JOIN dzzz_sjfb b ON b.sjid > a.sjid WHERE a.fbbz = 0 AND"
		    " b.fbbz = 1",
		    NULL) == 0);
	/* none of our events is refused by the gateway */
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 2", NULL) == 0);
	char err[300];
	s_text("SELECT zhcw FROM dzzz_sjfb WHERE fbbz = 0 ORDER BY sjid LIMIT 1", NULL, err, sizeof err);
	printf("outbox: %lld of 4 events published by the gateway%s%s\n", pub, err[0] ? "; first failure: " : "", err);
}

/* ---- an event that cannot be delivered is retried ---------------------------------------

 * With the gateway down, the last event is marked undelivered (as if the
 * adapter had made the change just before the gateway went away): the
 * publisher's attempts fail and are counted, and once the gateway is back
 * the event goes out. */
static void t_retry(void)
{
	long long pub = s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 1", NULL);
	if (pub != 4) {
		printf("outbox retry: skipped, the gateway does not take licence events\n");
		return;
	}
	int st = h_gw_stop(10000);
	CHECK(h_exited_0(st));
	char path[PATH_MAX];
	d_db_path(D_MARKET, path, sizeof path);
	sqlite3 *rw = NULL;
	CHECK(sqlite3_open_v2(path, &rw, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	sqlite3_busy_timeout(rw, 5000);
	CHECK(sqlite3_exec(rw,
			   "UPDATE dzzz_sjfb SET fbbz = 0, fbsj = NULL, cscs = 0 WHERE sjid = (SELECT max(sjid) FROM dzzz_sjfb)",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(rw);
	const char *q = "SELECT count(*) FROM dzzz_sjfb WHERE sjid = (SELECT max(sjid) FROM dzzz_sjfb) AND fbbz = 0"
			" AND cscs > 0 AND zhcw IS NOT NULL";
	WAIT_FOR(s_int(q, NULL) == 1, 15000);
	CHECK(s_int(q, NULL) == 1);
	CHECK_RC(h_gw_start());
	q = "SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 1";
	WAIT_FOR(s_int(q, NULL) == 4, 30000);
	CHECK(s_int(q, NULL) == 4);
	CHECK(s_int("SELECT count(*) FROM dzzz_sjfb WHERE fbbz = 1 AND zhcw IS NULL AND cscs >= 2 AND"
		    " sjid = (SELECT max(sjid) FROM dzzz_sjfb)",
		    NULL) == 1);
	/* the publisher said so once, not at every attempt */
	char log[PATH_MAX + 32];
	snprintf(log, sizeof log, "%s/market.log", h_dir);
	char *t = h_read_file(log);
	int n = 0;
	for (const char *p = t; p && (p = strstr(p, "not published, will retry")) != NULL; p++)
		n++;
	CHECK(n >= 1 && n <= 3);
	CHECK(t && strstr(t, "published again"));
	free(t);
}

/* ---- restart on the same database --------------------------------------------------- */

static void t_restart(void)
{
	char before[8192], after[8192];
	s_text("SELECT group_concat(hex(qmz), ',') FROM (SELECT qmz FROM dzzz_bb ORDER BY zzid, bbh)", NULL, before,
	       sizeof before);
	long long nbb = s_int("SELECT count(*) FROM dzzz_bb", NULL);
	int st = h_peer_stop(&d_m[D_MARKET].proc, SIGTERM);
	CHECK(h_exited_0(st));
	if (!h_exited_0(st))
		fprintf(stderr, "  qiao-market exit status %d\n", st);
	CHECK_RC(d_start_dept(D_MARKET));
	CHECK(s_int("SELECT count(*) FROM dzzz_bb", NULL) == nbb);
	s_text("SELECT group_concat(hex(qmz), ',') FROM (SELECT qmz FROM dzzz_bb ORDER BY zzid, bbh)", NULL, after,
	       sizeof after);
	CHECK(before[0] && strcmp(before, after) == 0);
	int rc;
	char msg[600];
	Qiao__V1__LicenceByHolderReply *h = NULL;
	for (int i = 0; i < 50 && !h; i++) {
		h = s_by_holder(HENGXIN, HT(USCC), NULL, false, "贷款审批", &rc, msg);
		if (!h)
			h_sleep_ms(100);
	}
	CHECK(h && h->n_licences == 1);
	if (h)
		protobuf_c_message_free_unpacked(&h->base, NULL);
	st = h_peer_stop(&d_m[D_MARKET].proc, SIGTERM);
	CHECK(h_exited_0(st));
}

int main(void)
{
	if (d_setup("dept-market", NULL) != 0 || d_start_dept(D_MARKET) != 0) {
		fprintf(stderr, "set-up failed\n");
		d_teardown();
		return 1;
	}
	bank = d_consumer(D_BANK_B);
	reg = d_consumer(D_MARKET);
	char path[PATH_MAX];
	d_db_path(D_MARKET, path, sizeof path);
	CHECK(bank && reg && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	if (bank && reg && db) {
		sqlite3_busy_timeout(db, 5000);
		t_seeded();
		t_by_holder();
		t_by_id();
		t_issue();
		t_revoke();
		t_outbox();
		t_retry();
		t_restart();
	}
	free(yunfan_v1);
	sqlite3_close(db);
	qiao_adapter_destroy(&bank);
	qiao_adapter_destroy(&reg);
	d_teardown();
	return check_done();
}
