/*
 * test_workflow_kaiban.c - 企业开办 "一链办" (ops/workflows/qiye-kaiban.wf)
 * run by the gateway's workflow engine against the real department
 * adapters (tests/wf_harness.h): the second workflow of the engine, made of
 * a definition file and department services only.  Each case ends in its
 * defined state, checked in the case record, in the timeline and in the
 * departments' own databases:
 *  - inputs the definition's `require` refuses (4 investors, no VAT type, a
 *    company without a USCC);
 *  - the legal representative on the 失信被执行人名单: COMPENSATED
 *    (KAIBAN_SERIOUS_DISHONESTY) before anything is issued;
 *  - an investor (a company) on the 市场监督管理严重违法失信名单: the same,
 *    at its own credit step;
 *  - the tax bureau refuses (the legal representative of a 非正常户):
 *    COMPENSATED (KAIBAN_TAX_REFUSED) with the licence the case issued
 *    annulled (03 撤销) at the market regulator;
 *  - the happy path: the licence issued (signed, its face items), the
 *    taxpayer registered with its levies and invoice credit lines, the
 *    licence id carried from one department to the other;
 *  - the same company again: the regulator will not issue a second
 *    licence: COMPENSATED (KAIBAN_LICENCE_REFUSED), nothing registered;
 *  - the credit, market and tax adapters exit 0 with clean logs (ASan).
 */
#include "wf_harness.h"

#define KB "qiye-kaiban"
#define YUNFAN "91150602MA0Y7C3E2X"
#define BEICHEN "91150602MA0W5D8R02"
#define RUIFENG "91150603MA0X3H7L68"
#define XINDA "91150621MA0R6D2C03"

static char s_case[64];

static json_t *s_person(const char *name, const char *id)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "name", name, "id", "type", "RESIDENT_ID", "id", id);
}

static json_t *s_org(const char *name, const char *uscc)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "name", name, "id", "type", "USCC", "id", uscc);
}

static json_t *s_investor(json_t *party, long long fen, const char *due)
{
	return json_pack("{s:o, s:I, s:s, s:s}", "party", party, "subscribed_capital_fen", (json_int_t)fen,
			 "contribution_method", "货币", "contribution_due_date", due);
}

/* A 企业开办 input: `company` / `uscc` with legal representative rep (name,
 * id), the given investors (consumed), capital in fen. */
static json_t *s_input(const char *company, const char *uscc, const char *area, const char *rep_name,
		       const char *rep, json_t *investors, long long capital, const char *printed)
{
	return json_pack("{s:o, s:s, s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:[s, s]}",
			 "company", s_org(company, uscc), "enterprise_type", "有限责任公司(自然人投资或控股)",
			 "registered_address", "内蒙古自治区鄂尔多斯市东胜区科技园区创业大厦B座901",
			 "jurisdiction_code", area, "legal_representative", s_person(rep_name, rep), "investors",
			 investors, "registered_capital_fen", (json_int_t)capital, "registered_capital_printed", printed,
			 "business_scope", "软件开发；信息系统集成服务", "established_date", "2026-11-28",
			 "operating_until", "", "financial_officer", s_person("王丽娜", "150603199103220424"),
			 "tax_officer", s_person("张伟", "150621199307080155"), "vat_taxpayer_type",
			 "VAT_TAXPAYER_TYPE_SMALL_SCALE", "invoice_types", "INVOICE_TYPE_DIGITAL_ORDINARY",
			 "INVOICE_TYPE_DIGITAL_SPECIAL");
}

/* 云帆: 陈思远 (legal representative, 120万) and 王丽娜 (80万). */
static json_t *s_yunfan(void)
{
	return s_input("鄂尔多斯市东胜区云帆信息技术有限公司", YUNFAN, "150602", "陈思远", "150602198809150316",
		       json_pack("[o, o]",
				 s_investor(s_person("陈思远", "150602198809150316"), 120000000, "2031-11-27"),
				 s_investor(s_person("王丽娜", "150603199103220424"), 80000000, "2031-11-27")),
		       200000000, "贰佰万元整");
}

static json_t *s_run(json_t *input, const char *want_state, int ms)
{
	if (!wf_start_wf(KB, input, s_case, sizeof s_case)) {
		CHECK(0);
		return NULL;
	}
	json_t *c = wf_wait(s_case, ms);
	CHECK(c != NULL);
	if (!c)
		return NULL;
	wf_show(c);
	CHECK(strcmp(wf_s(c, "state"), want_state) == 0);
	return c;
}

static const char *s_step_state(const json_t *c, const char *step)
{
	return wf_s(wf_step(c, step), "state");
}

static const char *s_failure_code(const json_t *c)
{
	return wf_s(json_object_get(c, "failure"), "code");
}

/* Entries of the case's timeline matching (event, step, to, service). */
static int s_tl_count(const char *id, const char *event, const char *step, const char *to, const char *service)
{
	json_t *tl = wf_ctl(json_pack("{s:s, s:s}", "op", "timeline", "case_id", id));
	CHECK(tl && json_is_true(json_object_get(tl, "ok")));
	json_t *es = json_object_get(tl, "entries");
	int n = 0;
	for (size_t i = 0; i < json_array_size(es); i++) {
		json_t *e = json_array_get(es, i);
		json_t *t = json_object_get(e, "transition");
		if (event && strcmp(wf_s(e, "event"), event) != 0)
			continue;
		if (step && (!t || strcmp(wf_s(t, "step"), step) != 0))
			continue;
		if (to && (!t || strcmp(wf_s(t, "to"), to) != 0))
			continue;
		if (service && strcmp(wf_s(e, "service"), service) != 0)
			continue;
		n++;
	}
	json_decref(tl);
	return n;
}

/* Nothing was issued or registered for case s_case. */
static void s_nothing_issued(const char *uscc)
{
	char app[80];
	snprintf(app, sizeof app, "%s-ZZ", s_case);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz WHERE sqbh = ?", app, NULL) == 0);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz WHERE czztdm = ?", uscc, NULL) == 0);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM taxpayer_registration WHERE taxpayer_id = ?", uscc, NULL) == 0);
}

static void test_refused_inputs(void)
{
	printf("inputs the definition refuses\n");
	json_t *in = s_yunfan();
	json_t *inv = json_object_get(in, "investors");
	for (int i = 0; i < 2; i++)
		json_array_append_new(inv, s_investor(s_person("张伟", "150621199307080155"), 1, "2031-11-27"));
	json_t *r = wf_ctl(json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", KB, "input", in));
	CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "at most 3"));
	json_decref(r);
	in = s_yunfan();
	json_object_set_new(in, "vat_taxpayer_type", json_string("VAT_TAXPAYER_TYPE_UNSPECIFIED"));
	r = wf_ctl(json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", KB, "input", in));
	CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "vat_taxpayer_type"));
	json_decref(r);
	in = s_yunfan();
	json_object_set_new(in, "company", s_person("陈思远", "150602198809150316"));
	r = wf_ctl(json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", KB, "input", in));
	CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "company.id"));
	json_decref(r);
}

static void test_dishonest_legal_rep(void)
{
	printf("legal representative on the 失信被执行人名单\n");
	json_t *in = s_input("鄂尔多斯市康巴什区瑞丰科技有限公司", RUIFENG, "150603", "孙海峰", "150621197605030173",
			     json_pack("[o]", s_investor(s_person("孙海峰", "150621197605030173"), 300000000,
							 "2031-11-27")),
			     300000000, "叁佰万元整");
	json_t *c = s_run(in, "COMPENSATED", 20000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "KAIBAN_SERIOUS_DISHONESTY") == 0);
	CHECK(strstr(wf_s(json_object_get(c, "failure"), "reason"), "孙海峰") != NULL);
	CHECK(strcmp(s_step_state(c, "credit-legal-rep"), "FAILED") == 0);
	/* the same person as investor 1: refused too, or not asked once the case unwound */
	const char *i1 = s_step_state(c, "credit-investor-1");
	CHECK(strcmp(i1, "FAILED") == 0 || strcmp(i1, "SKIPPED") == 0);
	CHECK(strcmp(s_step_state(c, "credit-investor-2"), "SKIPPED") == 0);
	CHECK(strcmp(s_step_state(c, "licence"), "SKIPPED") == 0);
	CHECK(strcmp(s_step_state(c, "tax"), "SKIPPED") == 0);
	CHECK(json_object_get(wf_step(c, "licence"), "compensation") == NULL);
	s_nothing_issued(RUIFENG);
	CHECK(s_tl_count(s_case, "WORKFLOW_TRANSITION", "credit-legal-rep", "FAILED", NULL) == 1);
	CHECK(s_tl_count(s_case, "WORKFLOW_TRANSITION", "", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(s_case, "RESPONSE_DELIVERED", NULL, NULL, "12150600MB0F2468XF/credit/credit-records.v1") >= 1);
	CHECK(s_tl_count(s_case, "RESPONSE_DELIVERED", NULL, NULL, "11150600MB0E78900J/market/licence-issue.v1") == 0);
	json_decref(c);
}

static void test_dishonest_investor(void)
{
	printf("an investor on the 严重违法失信名单\n");
	json_t *in = s_input("鄂尔多斯市康巴什区瑞丰科技有限公司", RUIFENG, "150603", "赵娜", "150602199008190240",
			     json_pack("[o, o]",
				       s_investor(s_person("赵娜", "150602199008190240"), 200000000, "2031-11-27"),
				       s_investor(s_org("达拉特旗鑫达建材有限公司", XINDA), 100000000, "2031-11-27")),
			     300000000, "叁佰万元整");
	json_t *c = s_run(in, "COMPENSATED", 20000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "KAIBAN_SERIOUS_DISHONESTY") == 0);
	CHECK(strcmp(wf_s(json_object_get(c, "failure"), "step"), "credit-investor-2") == 0);
	CHECK(strstr(wf_s(json_object_get(c, "failure"), "reason"), "鑫达") != NULL);
	CHECK(strcmp(s_step_state(c, "credit-investor-2"), "FAILED") == 0);
	CHECK(strcmp(s_step_state(c, "credit-legal-rep"), "DONE") == 0);
	CHECK(strcmp(s_step_state(c, "licence"), "SKIPPED") == 0);
	s_nothing_issued(RUIFENG);
	json_decref(c);
}

static void test_tax_refused(void)
{
	printf("the tax bureau refuses: the licence is annulled\n");
	json_t *in = s_input("鄂尔多斯市东胜区北辰商贸有限公司", BEICHEN, "150602", "郭宏伟", "150627197904110534",
			     json_pack("[o]", s_investor(s_person("郭宏伟", "150627197904110534"), 5000000,
							 "2031-11-29")),
			     5000000, "伍拾万元整");
	json_object_set_new(in, "established_date", json_string("2026-11-30"));
	json_t *c = s_run(in, "COMPENSATED", 30000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "KAIBAN_TAX_REFUSED") == 0);
	CHECK(strstr(wf_s(json_object_get(c, "failure"), "reason"), "非正常户") != NULL);
	CHECK(strcmp(s_step_state(c, "tax"), "FAILED") == 0);
	CHECK(strcmp(s_step_state(c, "licence"), "COMPENSATED") == 0);
	CHECK(json_object_get(wf_step(c, "tax"), "compensation") == NULL); /* refused: nothing to undo */
	const char *lic = wf_s(json_object_get(json_object_get(c, "vars"), "licence"), "licence_id");
	CHECK(lic[0] && qiao_id_check_licence(lic, NULL, 0) == 0);
	/* at the market regulator: issued by this case, then 03 撤销 by its decision */
	char app[80], dec[80], t[200];
	snprintf(app, sizeof app, "%s-ZZ", s_case);
	snprintf(dec, sizeof dec, "%s-CX", s_case);
	CHECK(strcmp(dt_q_text(D_MARKET, t, sizeof t, "SELECT zzbs FROM dzzz WHERE sqbh = ?", app, NULL), lic) == 0);
	CHECK(strcmp(dt_q_text(D_MARKET, t, sizeof t, "SELECT zzzt FROM dzzz WHERE sqbh = ?", app, NULL), "03") == 0);
	CHECK(dt_q_int(D_MARKET, "SELECT bbh FROM dzzz WHERE sqbh = ?", app, NULL) == 2);
	CHECK(dt_q_int(D_MARKET,
		       "SELECT COUNT(*) FROM dzzz_ztbg g JOIN dzzz d ON d.zzid = g.zzid WHERE d.sqbh = ? AND g.jdswh = ? "
		       "AND g.yzt = '01' AND g.xzt = '03' AND g.sxrq = '2026-11-30' AND g.sqf = '" WFM "'",
		       app, dec, NULL) == 1);
	CHECK(strstr(dt_q_text(D_MARKET, t, sizeof t, "SELECT bgyy FROM dzzz_ztbg g JOIN dzzz d ON d.zzid = g.zzid "
				      "WHERE d.sqbh = ?", app, NULL),
		     "KAIBAN_TAX_REFUSED") != NULL);
	/* the registration itself stands (撤销 of the licence only) */
	CHECK(strcmp(dt_q_text(D_MARKET, t, sizeof t, "SELECT regstate FROM sczt WHERE uniscid = ?", BEICHEN, NULL),
		     "存续") == 0);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM taxpayer_registration WHERE taxpayer_id = ?", BEICHEN, NULL) == 0);
	CHECK(s_tl_count(s_case, "WORKFLOW_TRANSITION", "licence", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(s_case, "RESPONSE_DELIVERED", NULL, NULL, "11150600MB0E78900J/market/licence-revoke.v1") == 1);
	json_decref(c);
}

static void test_happy(void)
{
	printf("happy path\n");
	json_t *c = s_run(s_yunfan(), "COMPLETED", 30000);
	if (!c)
		return;
	static const char *const done[] = {"credit-legal-rep", "credit-investor-1", "credit-investor-2", "licence",
					   "tax"};
	for (size_t i = 0; i < sizeof done / sizeof *done; i++)
		CHECK(strcmp(s_step_state(c, done[i]), "DONE") == 0);
	CHECK(strcmp(s_step_state(c, "credit-investor-3"), "SKIPPED") == 0); /* two investors */
	json_t *vars = json_object_get(c, "vars");
	const char *lic = wf_s(json_object_get(vars, "licence"), "licence_id");
	CHECK(lic[0] && qiao_id_check_licence(lic, NULL, 0) == 0);
	/* the licence, in the regulator's library, valid, with its face items */
	char app[80], reg[80], t[200];
	snprintf(app, sizeof app, "%s-ZZ", s_case);
	snprintf(reg, sizeof reg, "%s-SW", s_case);
	CHECK(strcmp(dt_q_text(D_MARKET, t, sizeof t, "SELECT zzbs FROM dzzz WHERE sqbh = ?", app, NULL), lic) == 0);
	CHECK(dt_q_int(D_MARKET,
		       "SELECT COUNT(*) FROM dzzz WHERE sqbh = ? AND zzzt = '01' AND czztdm = ? AND zzmc = '营业执照' "
		       "AND yxqqsrq = '2026-11-28' AND yxqjzrq IS NULL AND sqf = '" WFM "'",
		       app, YUNFAN, NULL) == 1);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz_zmxx m JOIN dzzz d ON d.zzid = m.zzid WHERE d.sqbh = ?", app,
		       NULL) == 7);
	CHECK(strcmp(dt_q_text(D_MARKET, t, sizeof t,
			       "SELECT xmnr FROM dzzz_zmxx m JOIN dzzz d ON d.zzid = m.zzid WHERE d.sqbh = ? AND "
			       "m.xmmc = '注册资本'",
			       app, NULL),
		     "贰佰万元整") == 0);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz_bb b JOIN dzzz d ON d.zzid = b.zzid WHERE d.sqbh = ?", app,
		       NULL) == 1);
	/* the taxpayer, registered with the licence the regulator issued */
	CHECK(strcmp(dt_q_text(D_TAX, t, sizeof t, "SELECT status FROM taxpayer_registration WHERE registration_no = ?",
			       reg, NULL),
		     "ACTIVE") == 0);
	CHECK(strcmp(dt_q_text(D_TAX, t, sizeof t,
			       "SELECT licence_id FROM taxpayer_registration WHERE registration_no = ? AND taxpayer_id = ?",
			       reg, YUNFAN, NULL),
		     lic) == 0);
	CHECK(strcmp(dt_q_text(D_TAX, t, sizeof t, "SELECT case_id FROM taxpayer_registration WHERE registration_no = ?",
			       reg, NULL),
		     s_case) == 0);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM registration_levy WHERE registration_no = ?", reg, NULL) == 6);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM registration_invoice WHERE registration_no = ?", reg, NULL) == 2);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM registration_party WHERE registration_no = ? AND role = 'INVESTOR'",
		       reg, NULL) == 2);
	json_t *tax = json_object_get(vars, "tax");
	CHECK(strcmp(wf_s(tax, "status"), "TAXPAYER_REGISTRATION_STATUS_ACTIVE") == 0);
	CHECK(strcmp(wf_s(tax, "tax_office_name"), "国家税务总局鄂尔多斯市东胜区税务局") == 0);
	/* every step's exchange is in the log under the case id */
	json_t *steps = json_object_get(c, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++) {
		json_t *s = json_array_get(steps, i);
		if (strcmp(wf_s(s, "state"), "DONE") != 0)
			continue;
		CHECK(s_tl_count(s_case, "RESPONSE_DELIVERED", NULL, NULL, wf_s(s, "service")) >= 1);
		CHECK(s_tl_count(s_case, "WORKFLOW_TRANSITION", wf_s(s, "name"), "DONE", NULL) == 1);
	}
	CHECK(s_tl_count(s_case, "WORKFLOW_TRANSITION", "", "COMPLETED", NULL) == 1);
	/* list finds it */
	json_t *l = wf_ctl(json_pack("{s:s, s:s, s:s}", "op", "list", "workflow", KB, "state", "COMPLETED"));
	int found = 0;
	for (size_t i = 0; l && i < json_array_size(json_object_get(l, "cases")); i++)
		found += strcmp(wf_s(json_array_get(json_object_get(l, "cases"), i), "case_id"), s_case) == 0;
	CHECK(found == 1);
	json_decref(l);
	json_decref(c);
}

static void test_licence_refused(void)
{
	printf("the same company again: no second licence\n");
	json_t *c = s_run(s_yunfan(), "COMPENSATED", 30000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "KAIBAN_LICENCE_REFUSED") == 0);
	CHECK(strstr(wf_s(json_object_get(c, "failure"), "reason"), "已持有") != NULL);
	CHECK(strcmp(s_step_state(c, "licence"), "FAILED") == 0);
	CHECK(strcmp(s_step_state(c, "tax"), "SKIPPED") == 0);
	char app[80];
	snprintf(app, sizeof app, "%s-ZZ", s_case);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz WHERE sqbh = ?", app, NULL) == 0);
	CHECK(dt_q_int(D_MARKET, "SELECT COUNT(*) FROM dzzz WHERE czztdm = ? AND zzzt = '01'", YUNFAN, NULL) == 1);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM taxpayer_registration WHERE taxpayer_id = ?", YUNFAN, NULL) == 1);
	json_decref(c);
}

/* Stop department i: it must exit 0 on SIGTERM (under ASan a leak or an
 * error makes that fail) with no sanitizer report in its log. */
static void s_stop_dept(int i)
{
	char log[PATH_MAX + 64];
	snprintf(log, sizeof log, "%s/%s.log", h_dir, d_m[i].proc.name);
	int st = h_peer_stop(&d_m[i].proc, SIGTERM);
	d_m[i].proc.pid = 0;
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
	bool up = wf_setup("workflow-kaiban", NULL) == 0;
	CHECK(up);
	if (up) {
		json_t *r = wf_ctl(json_pack("{s:s}", "op", "workflows"));
		int found = 0;
		for (size_t i = 0; r && i < json_array_size(json_object_get(r, "workflows")); i++)
			found += strcmp(wf_s(json_array_get(json_object_get(r, "workflows"), i), "name"), KB) == 0;
		CHECK(found == 1);
		json_decref(r);
		test_refused_inputs();
		test_dishonest_legal_rep();
		test_dishonest_investor();
		test_tax_refused();
		test_happy();
		test_licence_refused();
		s_stop_dept(D_CREDIT);
		s_stop_dept(D_MARKET);
		s_stop_dept(D_TAX);
	} else {
		h_log_show(NULL, 60);
	}
	if (check_fail_)
		h_log_show("case.", 120);
	d_teardown();
	qiao_keys_destroy(&wf_k);
	return check_done();
}
