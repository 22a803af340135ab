/*
 * test_workflow.c - 带押过户 run by the gateway's workflow engine against
 * every real department adapter (tests/wf_harness.h).  Each case ends in
 * its defined state; its compensations are checked in the case record, in
 * the timeline (audit entries under the case id) and in the departments'
 * own databases:
 *  - title under seizure, title with a registered transfer restriction:
 *    COMPENSATED (TITLE_ENCUMBERED) before anything is filed;
 *  - loan declined: COMPENSATED (LOAN_DECLINED): the old lender's consent
 *    withdrawn, the filing cancelled;
 *  - registration rejected (双预告 not offered): COMPENSATED
 *    (REGISTRATION_REJECTED): escrow released, loan approval revoked,
 *    consent withdrawn at the registry and the bank, filing cancelled;
 *  - cancelled by an operator while the housing bureau is down: the step
 *    retries, the cancel unwinds what was done, the housing bureau's
 *    compensation waits for it to come back: COMPENSATED (CASE_CANCELLED);
 *  - the happy path: the buyer's new certificate issued, the old mortgage
 *    cancelled, the new bank's mortgage first-ranked, the escrow settled;
 *  - the payoff quote about to run out: re-quoted before the payoff, the
 *    new amount paid (fresh databases, bank A quoting for one day only);
 *  - definitions with errors are refused with FILE:LINE.
 */
#include "wf_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static char s_case[64];
static int s_metrics_port;

/* GET http://127.0.0.1:<metrics port>PATH: the body (malloc'd) or NULL. */
static char *s_http_get(const char *path)
{
	int fd = h_tcp_connect(s_metrics_port);
	if (fd < 0)
		return NULL;
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return NULL;
	}
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);
	ssize_t k;
	while (b && (k = read(fd, b + len, cap - len - 1)) > 0) {
		len += (size_t)k;
		if (len + 1 >= cap) {
			char *nb = realloc(b, cap * 2);
			if (!nb)
				break;
			b = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (!b)
		return NULL;
	b[len] = '\0';
	char *body = strstr(b, "\r\n\r\n");
	char *out = body ? strdup(body + 4) : NULL;
	free(b);
	return out;
}

/* promtool check metrics on the text: true when it passes (or, with
 * QIAO_NO_PROMTOOL=1, when promtool is absent). */
static bool s_promtool_ok(const char *text)
{
	char path[PATH_MAX], cmd[PATH_MAX * 2 + 64], out[8192];
	snprintf(path, sizeof path, "%s/scrape.prom", h_dir);
	h_write_file(path, text);
	char *which[] = {"/bin/sh", "-c", "command -v promtool", NULL};
	if (!h_exited_0(h_run(which, out, sizeof out))) {
		const char *no = getenv("QIAO_NO_PROMTOOL");
		if (no && strcmp(no, "1") == 0) {
			printf("  SKIPPED promtool (QIAO_NO_PROMTOOL=1)\n");
			return true;
		}
		fprintf(stderr, "promtool is not installed (Debian package prometheus; ops/test installs it)\n");
		return false;
	}
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	int st = h_run(argv, out, sizeof out);
	if (!h_exited_0(st))
		fprintf(stderr, "promtool check metrics: %s\n", out);
	return h_exited_0(st);
}

static json_t *s_run(json_t *input, const char *want_state, int ms)
{
	if (!wf_start(input, s_case, sizeof s_case)) {
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

/* The timeline of the case; count entries matching (event, step, to). */
static int s_tl_count(json_t *tl, const char *event, const char *step, const char *to, const char *service)
{
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
	return n;
}

static json_t *s_timeline(const char *id)
{
	json_t *r = wf_ctl(json_pack("{s:s, s:s}", "op", "timeline", "case_id", id));
	CHECK(r && json_is_true(json_object_get(r, "ok")));
	return r;
}

/* Every other step of a case that stopped at `at` was never started. */
static void s_rest_skipped(const json_t *c, const char *at)
{
	json_t *steps = json_object_get(c, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++) {
		json_t *s = json_array_get(steps, i);
		if (strcmp(wf_s(s, "name"), at) == 0)
			continue;
		CHECK(strcmp(wf_s(s, "state"), "SKIPPED") == 0);
		CHECK(json_object_get(s, "compensation") == NULL);
	}
}

static void test_encumbered(const char *what, const char *unit, const char *cert, const char *contract)
{
	printf("%s\n", what);
	json_t *in = wf_input(contract);
	json_object_set_new(in, "unit_no", json_string(unit));
	json_object_set_new(in, "cert_no", json_string(cert));
	json_t *c = s_run(in, "COMPENSATED", 20000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "UNWIND_REASON_TITLE_ENCUMBERED") == 0);
	CHECK(strcmp(s_step_state(c, "title"), "FAILED") == 0);
	s_rest_skipped(c, "title");
	/* nothing was filed anywhere */
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM contract_filing WHERE contract_no = ?", contract, NULL) == 0);
	char app[80];
	snprintf(app, sizeof app, "%s-DK", s_case);
	CHECK(dt_q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application WHERE application_no = ?", app, NULL) == 0);
	json_t *tl = s_timeline(s_case);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "title", "FAILED", NULL) == 1);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL, "12150600MB0A12342K/realestate/title-summary.v1") == 1);
	json_decref(tl);
	json_decref(c);
}

static void test_loan_declined(void)
{
	printf("loan declined\n");
	const char *contract = "HT-2026-DYGH-0003";
	json_t *in = wf_input(contract);
	json_object_set_new(in, "loan_amount_fen", json_integer(140000000)); /* 93 % of the price: over bank B's LTV */
	json_t *c = s_run(in, "COMPENSATED", 20000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "UNWIND_REASON_LOAN_DECLINED") == 0);
	CHECK(strcmp(s_step_state(c, "loan"), "FAILED") == 0);
	CHECK(strcmp(s_step_state(c, "quote"), "COMPENSATED") == 0);
	CHECK(strcmp(s_step_state(c, "filing"), "COMPENSATED") == 0);
	const char *op = s_step_state(c, "opinion");
	CHECK(strcmp(op, "COMPENSATED") == 0 || strcmp(op, "SKIPPED") == 0);
	CHECK(strcmp(s_step_state(c, "escrow"), "SKIPPED") == 0);
	CHECK(strcmp(s_step_state(c, "register"), "SKIPPED") == 0);
	/* in the departments */
	char app[80], t[64];
	snprintf(app, sizeof app, "%s-DK", s_case);
	CHECK(strcmp(dt_q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE application_no = ?",
			       app, NULL),
		     "DECLINED") == 0);
	const char *quote = wf_s(json_object_get(json_object_get(c, "vars"), "quote"), "quote_no");
	CHECK(strcmp(dt_q_text(D_BANK_A, t, sizeof t, "SELECT consent_status FROM payoff_quote WHERE quote_no = ?",
			       quote, NULL),
		     "WITHDRAWN") == 0);
	CHECK(strcmp(dt_q_text(D_HOUSING, t, sizeof t, "SELECT status FROM contract_filing WHERE contract_no = ?",
			       contract, NULL),
		     "CANCELLED") == 0);
	json_t *tl = s_timeline(s_case);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "quote", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "filing", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL, "91150600MA0B56780F/bank/consent-withdrawal.v1") == 1);
	CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL, "11150600MB0G13578E/housing/filing-cancellation.v1") ==
	      1);
	json_decref(tl);
	json_decref(c);
}

static void test_registration_rejected(void)
{
	printf("registration rejected\n");
	const char *contract = "HT-2026-DYGH-0004";
	json_t *in = wf_input(contract);
	json_object_set_new(in, "registration_mode", json_string("REGISTRATION_MODE_DOUBLE_PRE_NOTICE"));
	json_t *c = s_run(in, "COMPENSATED", 20000);
	if (!c)
		return;
	CHECK(strcmp(s_failure_code(c), "UNWIND_REASON_REGISTRATION_REJECTED") == 0);
	CHECK(strcmp(s_step_state(c, "register"), "FAILED") == 0);
	static const char *const undone[] = {"quote", "opinion", "loan", "filing", "escrow"};
	for (size_t i = 0; i < sizeof undone / sizeof *undone; i++)
		CHECK(strcmp(s_step_state(c, undone[i]), "COMPENSATED") == 0);
	static const char *const never[] = {"disburse", "requote", "payoff", "confirm", "cancel-mortgage", "remainder"};
	for (size_t i = 0; i < sizeof never / sizeof *never; i++)
		CHECK(strcmp(s_step_state(c, never[i]), "SKIPPED") == 0);
	/* undone in the reverse of the order they were done: escrow first */
	int64_t esc = json_integer_value(json_object_get(json_object_get(wf_step(c, "escrow"), "compensation"),
							 "finished_ms"));
	int64_t fil = json_integer_value(json_object_get(json_object_get(wf_step(c, "filing"), "compensation"),
							 "finished_ms"));
	CHECK(esc > 0 && fil > 0 && esc <= fil);
	char app[80], t[64];
	snprintf(app, sizeof app, "%s-DK", s_case);
	CHECK(strcmp(dt_q_text(D_BANK_B, t, sizeof t, "SELECT status FROM loan_application WHERE application_no = ?",
			       app, NULL),
		     "REVOKED") == 0);
	CHECK(strcmp(dt_q_text(D_HOUSING, t, sizeof t, "SELECT status FROM escrow_agreement WHERE contract_no = ?",
			       contract, NULL),
		     "RELEASED") == 0);
	CHECK(strcmp(dt_q_text(D_HOUSING, t, sizeof t, "SELECT status FROM contract_filing WHERE contract_no = ?",
			       contract, NULL),
		     "CANCELLED") == 0);
	/* the flat still belongs to the seller, its mortgage still first */
	CHECK(dt_q_int(D_REGISTRY,
		       "SELECT COUNT(*) FROM fdcq f JOIN qlr q ON q.fdcq_id = f.id WHERE f.bdcdyh = ? AND f.qszt = 1 "
		       "AND q.zjh = '150621199003154522'",
		       DEMO_UNIT, NULL) == 1);
	json_t *tl = s_timeline(s_case);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "escrow", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "loan", "COMPENSATED", NULL) == 1);
	CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL, "11150600MB0G13578E/housing/escrow-release.v1") == 1);
	CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL,
			 "91150600MA0C9012X7/bank/loan-approval-revocation.v1") == 1);
	json_decref(tl);
	json_decref(c);
}

static void test_cancel_while_down(void)
{
	printf("cancelled while the housing bureau is down\n");
	const char *contract = "HT-2026-DYGH-0005";
	CHECK(h_exited_0(h_peer_stop(&d_m[D_HOUSING].proc, SIGTERM)));
	d_m[D_HOUSING].proc.pid = 0;
	if (!wf_start(wf_input(contract), s_case, sizeof s_case)) {
		CHECK(0);
		return;
	}
	/* the filing step retries (NO_INSTANCE) */
	json_t *c = NULL;
	int64_t until = h_now() + 15000;
	while (h_now() < until) {
		json_decref(c);
		c = wf_status(s_case);
		if (c && json_integer_value(json_object_get(wf_step(c, "filing"), "attempts")) >= 2 &&
		    strcmp(s_step_state(c, "quote"), "DONE") == 0 && strcmp(s_step_state(c, "loan"), "DONE") == 0)
			break;
		h_sleep_ms(50);
	}
	CHECK(c && json_integer_value(json_object_get(wf_step(c, "filing"), "attempts")) >= 2);
	CHECK(c && strcmp(wf_s(c, "state"), "RUNNING") == 0);
	json_decref(c);
	json_t *r = wf_ctl(json_pack("{s:s, s:s, s:s}", "op", "cancel", "case_id", s_case, "reason", "买方撤回申请"));
	CHECK(r && json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* a second cancel is refused with a reason */
	r = wf_ctl(json_pack("{s:s, s:s}", "op", "cancel", "case_id", s_case));
	CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "unwound"));
	json_decref(r);
	h_sleep_ms(500);
	c = wf_status(s_case);
	CHECK(c && strcmp(wf_s(c, "state"), "COMPENSATING") == 0);
	json_decref(c);
	/* the operator's view while it waits: the open case in the metrics, a
	 * scrape promtool accepts */
	h_sleep_ms(700);
	char *m = s_http_get("/metrics");
	CHECK(m && strstr(m, "qiao_workflow_open_cases{workflow=\"daiya-guohu\",state=\"COMPENSATING\"} 1\n"));
	CHECK(m && s_promtool_ok(m));
	if (m && !strstr(m, "qiao_workflow_open_cases{"))
		fprintf(stderr, "no qiao_workflow_open_cases in:\n%.2000s\n", m);
	free(m);
	CHECK(d_start_dept(D_HOUSING) == 0);
	c = wf_wait(s_case, 60000);
	wf_show(c);
	CHECK(c && strcmp(wf_s(c, "state"), "COMPENSATED") == 0);
	CHECK(c && strcmp(s_failure_code(c), "UNWIND_REASON_CASE_CANCELLED") == 0);
	CHECK(c && strstr(wf_s(json_object_get(c, "failure"), "reason"), "买方撤回申请") != NULL);
	CHECK(c && strcmp(s_step_state(c, "quote"), "COMPENSATED") == 0);
	CHECK(c && strcmp(s_step_state(c, "loan"), "COMPENSATED") == 0);
	/* the filing may or may not have reached the bureau: undone (or nothing to undo) */
	CHECK(c && strcmp(s_step_state(c, "filing"), "COMPENSATED") == 0);
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM contract_filing WHERE contract_no = ? AND status <> 'CANCELLED'",
		       contract, NULL) == 0);
	json_decref(c);
}

static void test_happy(void)
{
	printf("happy path\n");
	const char *contract = "HT-2026-DYGH-0001";
	json_t *c = s_run(wf_input(contract), "COMPLETED", 30000);
	if (!c)
		return;
	json_t *vars = json_object_get(c, "vars");
	const char *newcert = wf_s(json_object_get(vars, "registration"), "new_cert_no");
	const char *newproof = wf_s(json_object_get(vars, "registration"), "mortgage_proof_no");
	const char *oldproof = wf_s(json_object_get(vars, "quote"), "mortgage_proof_no");
	CHECK(newcert[0] && newproof[0] && oldproof[0]);
	CHECK(strcmp(s_step_state(c, "requote"), "SKIPPED") == 0);
	/* the buyer's new certificate, in the register */
	CHECK(dt_q_int(D_REGISTRY,
		       "SELECT COUNT(*) FROM fdcq f JOIN qlr q ON q.fdcq_id = f.id WHERE f.bdcdyh = ? AND f.qszt = 1 "
		       "AND f.bdcqzh = ? AND q.zjh = '15060219850612003X'",
		       DEMO_UNIT, newcert, NULL) == 1);
	/* the old mortgage cancelled, the new bank's first-ranked */
	CHECK(dt_q_int(D_REGISTRY, "SELECT qszt FROM dyaq WHERE bdcdjzmh = ?", oldproof, NULL) == 2);
	CHECK(dt_q_int(D_REGISTRY, "SELECT dysw FROM dyaq WHERE bdcdjzmh = ? AND qszt = 1 AND dyqrzjh = '91150600MA0C9012X7'",
		       newproof, NULL) == 1);
	CHECK(json_integer_value(json_object_get(
		      json_object_get(json_object_get(vars, "cancellation"), "first_ranked"), "rank")) == 1);
	/* the escrow settled: payoff and remainder paid, nothing left */
	char t[64];
	CHECK(strcmp(dt_q_text(D_HOUSING, t, sizeof t, "SELECT status FROM escrow_agreement WHERE contract_no = ?",
			       contract, NULL),
		     "COMPLETED") == 0);
	CHECK(dt_q_int(D_HOUSING, "SELECT balance_fen FROM escrow_agreement WHERE contract_no = ?", contract, NULL) == 0);
	CHECK(dt_q_int(D_HOUSING,
		       "SELECT COUNT(*) FROM escrow_payment p JOIN escrow_agreement a ON a.agreement_no = p.agreement_no "
		       "WHERE a.contract_no = ?",
		       contract, NULL) == 2);
	/* the old loan settled */
	CHECK(strcmp(dt_q_text(D_BANK_A, t, sizeof t, "SELECT status FROM loan_contract WHERE contract_no = ?",
			       "BOA-GRZF-2020-0618001", NULL),
		     "SETTLED") == 0 ||
	      dt_q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_receipt", NULL) >= 1);
	/* every step's exchange is in the log under the case id */
	json_t *tl = s_timeline(s_case);
	json_t *steps = json_object_get(c, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++) {
		json_t *s = json_array_get(steps, i);
		if (strcmp(wf_s(s, "state"), "DONE") != 0)
			continue;
		CHECK(s_tl_count(tl, "RESPONSE_DELIVERED", NULL, NULL, wf_s(s, "service")) >= 1);
		CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", wf_s(s, "name"), "DONE", NULL) == 1);
	}
	CHECK(s_tl_count(tl, "WORKFLOW_TRANSITION", "", "COMPLETED", NULL) == 1);
	size_t ntl = json_array_size(json_object_get(tl, "entries"));
	printf("  timeline: %zu audit entries\n", ntl);
	json_decref(tl);
	/* the auditor's view: qiao audit query --case, every entry with a checked
	 * inclusion proof (once a checkpoint covers them: checkpoint_ms 100) */
	h_sleep_ms(400);
	char store[PATH_MAX + 16], cli[PATH_MAX + 32];
	snprintf(store, sizeof store, "%s/store", h_dir);
	snprintf(cli, sizeof cli, "%s/gateway/qiao", getenv("QIAO_BIN"));
	char *argv[] = {cli, "audit", "query", "--store", store, "--case", s_case, "--limit", "0", "--json", NULL};
	static char out[4 << 20];
	int st = h_run(argv, out, sizeof out);
	CHECK(h_exited_0(st));
	json_t *q = json_loads(out, 0, NULL);
	json_t *es = json_object_get(q, "entries");
	CHECK(json_array_size(es) == ntl);
	size_t proven = 0, exch = 0, trans = 0;
	for (size_t i = 0; i < json_array_size(es); i++) {
		json_t *e = json_array_get(es, i);
		proven += json_is_array(json_object_get(e, "inclusion_proof")) ||
			  json_is_object(json_object_get(e, "inclusion_proof"));
		exch += strcmp(wf_s(e, "event"), "RESPONSE_DELIVERED") == 0;
		trans += json_object_get(e, "transition") != NULL;
	}
	printf("  qiao audit query --case: %zu entries (%zu responses, %zu transitions), %zu with inclusion proofs\n",
	       json_array_size(es), exch, trans, proven);
	CHECK(proven == json_array_size(es) && exch >= 16 && trans >= 30);
	json_decref(q);
	/* list finds it */
	json_t *l = wf_ctl(json_pack("{s:s, s:s, s:s}", "op", "list", "workflow", "daiya-guohu", "state", "COMPLETED"));
	int found = 0;
	for (size_t i = 0; l && i < json_array_size(json_object_get(l, "cases")); i++)
		found += strcmp(wf_s(json_array_get(json_object_get(l, "cases"), i), "case_id"), s_case) == 0;
	CHECK(found == 1);
	json_decref(l);
	json_decref(c);
}

static void test_requote(void)
{
	printf("payoff quote runs out: re-quoted\n");
	/* fresh departments (the flat was sold above); bank A quotes for one day */
	char conf[PATH_MAX], src[PATH_MAX + 64];
	snprintf(src, sizeof src, "%s/adapters/bank/bank-a.conf", d_src);
	snprintf(conf, sizeof conf, "%s/bank-a-1day.conf", h_dir);
	char *t = h_read_file(src);
	CHECK(t != NULL);
	if (!t)
		return;
	/* the same settings, quote_valid_days = 1 */
	char *k = strstr(t, "\nquote_valid_days");
	CHECK(k != NULL);
	if (!k) {
		free(t);
		return;
	}
	char *eol = strchr(k + 1, '\n');
	size_t n = strlen(t) + 64;
	char *t2 = malloc(n);
	snprintf(t2, n, "%.*s\nquote_valid_days = 1%s", (int)(k - t), t, eol ? eol : "\n");
	h_write_file(conf, t2);
	free(t);
	free(t2);
	d_m[D_BANK_A].conf_override = conf;
	for (int i = 0; i < D_N; i++)
		d_reset_dept(i);
	for (int i = 0; i < D_N; i++)
		CHECK(d_start_dept(i) == 0);
	/* the departments' "today" is China Standard Time (adapters/dept/dept.h),
	 * whatever this machine's zone: UTC+8 */
	time_t now = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&now, &tm);
	char today[16];
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	json_t *in = wf_input("HT-2026-DYGH-0006");
	json_object_set_new(in, "planned_payoff_date", json_string(today));
	json_t *c = s_run(in, "COMPLETED", 30000);
	if (!c)
		return;
	CHECK(strcmp(s_step_state(c, "requote"), "DONE") == 0);
	json_t *vars = json_object_get(c, "vars");
	const char *q2 = wf_s(json_object_get(vars, "quote"), "quote_no");
	const char *first = wf_s(json_object_get(wf_step(c, "quote"), "reply"), "quote_no");
	CHECK(q2[0] && first[0] && strcmp(q2, first) != 0);
	char s[64];
	CHECK(strcmp(dt_q_text(D_BANK_A, s, sizeof s, "SELECT status FROM payoff_quote WHERE quote_no = ?", first, NULL),
		     "SUPERSEDED") == 0);
	/* the payoff paid the new quote's amount */
	CHECK(json_integer_value(json_object_get(json_object_get(vars, "payoff"), "amount_fen")) ==
	      json_integer_value(json_object_get(json_object_get(vars, "quote"), "payoff_amount_fen")));
	json_decref(c);
}

/* Definitions with errors: `qiao-gateway -n` names the file and the line. */
static void test_bad_definitions(void)
{
	printf("definition errors\n");
	static const struct {
		const char *body, *want;
	} bad[] = {
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\";\n  service = \"12150600MB0A12342K/realestate/no-such.v1\"; } );\n",
		 "bad.wf:4: step a: service '12150600MB0A12342K/realestate/no-such.v1' is not in the gateway's member registry"},
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  request = { unit_nr = \"${input.unit_no}\"; }; } );\n",
		 "bad.wf:4:"},
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  request = { unit_no = \"${var.nothing.x}\"; }; } );\n",
		 "no step sets variable 'nothing'"},
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  request = { unit_no = \"${input.unit_number}\"; }; } );\n",
		 "bad.wf:4:"},
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  outputs = { t = \"reply.unit_no\"; }; },\n"
		 "  { name = \"b\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  request = { unit_no = \"${var.t}\"; }; } );\n",
		 "add them to `after`"},
		{"workflow = { name = \"x\"; version = 1; input = \"qiao.v1.MortgagedTransferInput\"; case_prefix = \"X\";\n"
		 "  purpose = \"带押过户\"; subjects = [ \"${input.sellers[*].id}\" ]; };\n"
		 "steps = ( { name = \"a\"; service = \"12150600MB0A12342K/realestate/title-summary.v1\";\n"
		 "  after = [ \"b\" ]; } );\n",
		 "bad.wf:4:"},
		{"workflow = { name = \"x\" version = 1; };\n", "bad.wf:1:"},
	};
	char dir[PATH_MAX], f[PATH_MAX + 16], conf[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/baddefs", h_dir);
	mkdir(dir, 0700);
	snprintf(f, sizeof f, "%s/bad.wf", dir);
	snprintf(conf, sizeof conf, "%s/bad.conf", h_dir);
	char *base = h_read_file(h_conf);
	CHECK(base != NULL);
	if (!base)
		return;
	/* the same config with definitions from dir */
	char *p = strstr(base, "definitions = \"");
	CHECK(p != NULL);
	if (!p) {
		free(base);
		return;
	}
	char *q = strchr(p + 15, '"');
	size_t n = strlen(base) + strlen(dir) + 64;
	char *t = malloc(n);
	snprintf(t, n, "%.*sdefinitions = \"%s\"%s", (int)(p - base), base, dir, q + 1);
	h_write_file(conf, t);
	free(t);
	free(base);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		h_write_file(f, bad[i].body);
		char out[4096];
		char *argv[] = {h_gw_bin, "-n", "-f", conf, NULL};
		int st = h_run(argv, out, sizeof out);
		CHECK(!h_exited_0(st));
		CHECK(strstr(out, bad[i].want) != NULL);
		if (!strstr(out, bad[i].want))
			fprintf(stderr, "  definition %zu: want '%s', got: %s\n", i, bad[i].want, out);
	}
	unlink(f);
}

/* qiao call: a member's call from the command line. */
static void test_qiao_call(void)
{
	printf("qiao call\n");
	char cli[PATH_MAX + 32], body[PATH_MAX + 16];
	snprintf(cli, sizeof cli, "%s/gateway/qiao", getenv("QIAO_BIN"));
	snprintf(body, sizeof body, "%s/call.json", h_dir);
	h_write_file(body, "{\"unit_no\": \"" DEMO_UNIT "\", \"purpose\": \"贷款审批\",\n"
			   " \"authorisation_no\": \"SQ-2026-LJG-0002\",\n"
			   " \"authorised_by\": {\"name\": \"李建国\", \"id\": {\"type\": \"RESIDENT_ID\", \"id\": "
			   "\"15060219850612003X\"}}}\n");
	static char out[1 << 20];
	/* bank B reads the title summary for its loan, in a case */
	char *ok[] = {cli, "call", "12150600MB0A12342K/realestate/title-summary.v1", "--key", d_m[D_BANK_B].key_path,
		      "--endpoint", h_endpoint, "--gateway-curve", h_m[M_GW].curve_b64, "--type",
		      "qiao.v1.TitleSummaryRequest", "--json", body, "--user", "clerk-0042", "--purpose", "贷款审批",
		      "--case", "LOAN-2026-0042", "--subject", "15060219850612003X", NULL};
	int st = h_run(ok, out, sizeof out);
	CHECK(h_exited_0(st));
	json_t *j = json_loads(out, 0, NULL);
	CHECK(j && strcmp(wf_s(j, "unit_no"), DEMO_UNIT) == 0 && json_array_size(json_object_get(j, "holders")) >= 1);
	if (!j)
		fprintf(stderr, "qiao call: %s\n", out);
	json_decref(j);
	/* without the case id the rule (require_case) refuses: exit 1, the reason printed */
	char *denied[] = {cli, "call", "12150600MB0A12342K/realestate/title-summary.v1", "--key", d_m[D_BANK_B].key_path,
			  "--endpoint", h_endpoint, "--gateway-curve", h_m[M_GW].curve_b64, "--type",
			  "qiao.v1.TitleSummaryRequest", "--json", body, "--user", "clerk-0042", "--purpose", "贷款审批",
			  "--subject", "15060219850612003X", NULL};
	st = h_run(denied, out, sizeof out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out, "ERROR"));
	/* a type the contract does not have: usage, exit 2 */
	char *bad[] = {cli, "call", "x/y/z.v1", "--key", d_m[D_BANK_B].key_path, "--endpoint", h_endpoint,
		       "--gateway-curve", h_m[M_GW].curve_b64, "--type", "qiao.v1.NoSuchType", "--user", "u", NULL};
	st = h_run(bad, out, sizeof out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(out, "NoSuchType"));
	/* a request field that does not exist: exit 2, the field named */
	h_write_file(body, "{\"unit_number\": \"x\"}");
	st = h_run(ok, out, sizeof out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(out, "unit_number"));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	s_metrics_port = h_free_port();
	char extra[128];
	snprintf(extra, sizeof extra, "metrics: { listen = \"127.0.0.1:%d\"; };\n", s_metrics_port);
	bool up = wf_setup("workflow", extra) == 0;
	CHECK(up);
	if (up) {
		json_t *r = wf_ctl(json_pack("{s:s}", "op", "workflows"));
		CHECK(r && json_array_size(json_object_get(r, "workflows")) >= 1);
		json_decref(r);
		/* an input that does not fit the workflow is refused, with the field */
		json_t *in = wf_input("HT-2026-DYGH-0009");
		json_object_set_new(in, "price_fen", json_string("a lot"));
		r = wf_ctl(json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", "daiya-guohu", "input", in));
		CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "price_fen"));
		json_decref(r);
		in = wf_input("HT-2026-DYGH-0009");
		json_object_set_new(in, "registration_mode", json_string("REGISTRATION_MODE_UNSPECIFIED"));
		r = wf_ctl(json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", "daiya-guohu", "input", in));
		CHECK(r && !json_is_true(json_object_get(r, "ok")) && strstr(wf_s(r, "error"), "registration_mode"));
		json_decref(r);

		test_encumbered("title under seizure", "150602001001GB00001F00010002",
				"蒙(2020)鄂尔多斯市不动产权第0023456号", "HT-2026-DYGH-0007");
		test_encumbered("title with a registered transfer restriction", "150602002003GB00012F00020101",
				"蒙(2021)鄂尔多斯市不动产权第0034567号", "HT-2026-DYGH-0008");
		test_loan_declined();
		test_registration_rejected();
		test_cancel_while_down();
		test_happy();
		test_requote();
		test_bad_definitions();
		test_qiao_call();
	} else {
		h_log_show(NULL, 60);
	}
	if (check_fail_)
		h_log_show("case.", 120);
	d_teardown();
	qiao_keys_destroy(&wf_k);
	return check_done();
}
