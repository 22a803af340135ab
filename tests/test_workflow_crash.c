/*
 * test_workflow_crash.c - kill -9 the gateway at every step of a 带押过户
 * case, restart it, and check that the case completes and that no
 * department acted twice.
 *
 * For each step and each of two moments - just after its request was
 * handed to the SDK ("sent": the department may or may not have it), and
 * when its answer arrives but before the engine has committed it
 * ("answered": the department has acted, the gateway does not know) - the
 * gateway is started with QIAO_FAULT_WF_KILL=STEP:PHASE, which SIGKILLs
 * it there (gw_wf.c).  The departments start from their seed data each
 * run.  After the restart the case must end COMPLETED, the killed step
 * must have been sent again (it was in flight), and the departments'
 * databases must show every effect exactly once: one loan application,
 * one disbursement, one payoff quote, one payoff receipt, one filing, one
 * escrow agreement with exactly two payments and nothing left, one
 * registration (受理编号), one mortgage cancellation, one rank change, one
 * current title (the buyer's) and one current mortgage (the new bank's, at
 * rank 1).  Finally the gateway's audit log verifies (qiao audit verify).
 */
#include "wf_harness.h"

static int s_runs, s_completed;

static void s_check_once(const char *id, const json_t *c, const char *contract)
{
	json_t *vars = json_object_get(c, "vars");
	const char *quote = wf_s(json_object_get(vars, "quote"), "quote_no");
	const char *agreement = wf_s(json_object_get(vars, "escrow"), "agreement_no");
	const char *newproof = wf_s(json_object_get(vars, "registration"), "mortgage_proof_no");
	CHECK(dt_q_int(D_BANK_B, "SELECT COUNT(*) FROM loan_application WHERE case_id = ?", id, NULL) == 1);
	CHECK(dt_q_int(D_BANK_B, "SELECT COUNT(*) FROM disbursement WHERE case_id = ?", id, NULL) == 1);
	CHECK(dt_q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_quote WHERE case_id = ?", id, NULL) == 1);
	CHECK(dt_q_int(D_BANK_A, "SELECT COUNT(*) FROM payoff_receipt WHERE quote_no = ?", quote, NULL) == 1);
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM contract_filing WHERE unit_no = ?", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM escrow_agreement WHERE contract_no = ?", contract, NULL) == 1);
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM escrow_payment WHERE agreement_no = ?", agreement, NULL) == 2);
	CHECK(dt_q_int(D_HOUSING, "SELECT balance_fen FROM escrow_agreement WHERE agreement_no = ?", agreement, NULL) ==
	      0);
	CHECK(dt_q_int(D_TAX, "SELECT COUNT(*) FROM tax_assessment WHERE unit_no = ?", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT COUNT(*) FROM djsl WHERE bdcdyh = ?", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT COUNT(*) FROM zxdj WHERE bdcdyh = ?", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT COUNT(*) FROM dysw_bg WHERE bdcdyh = ?", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY,
		       "SELECT COUNT(*) FROM fdcq f JOIN qlr q ON q.fdcq_id = f.id WHERE f.bdcdyh = ? AND f.qszt = 1 "
		       "AND q.zjh = '15060219850612003X'",
		       DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT COUNT(*) FROM fdcq WHERE bdcdyh = ? AND qszt = 1", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT COUNT(*) FROM dyaq WHERE bdcdyh = ? AND qszt = 1", DEMO_UNIT, NULL) == 1);
	CHECK(dt_q_int(D_REGISTRY, "SELECT dysw FROM dyaq WHERE bdcdjzmh = ? AND qszt = 1", newproof, NULL) == 1);
}

/* One run: kill at step:phase, restart, finish, check. */
static void s_one(const char *step, const char *phase, int n)
{
	char contract[64], kill_at[96];
	snprintf(contract, sizeof contract, "HT-2026-CRASH-%04d", n);
	snprintf(kill_at, sizeof kill_at, "%s:%s", step, phase);
	for (int i = 0; i < D_N; i++)
		d_reset_dept(i);
	for (int i = 0; i < D_N; i++)
		if (d_start_dept(i) != 0) {
			CHECK(0);
			return;
		}
	/* the gateway that will die */
	h_gw_stop(10000);
	setenv("QIAO_FAULT_WF_KILL", kill_at, 1);
	int up = h_gw_start() == 0;
	unsetenv("QIAO_FAULT_WF_KILL");
	CHECK(up);
	if (!up)
		return;
	char id[64];
	if (!wf_start(wf_input(contract), id, sizeof id)) {
		CHECK(0);
		return;
	}
	int st = h_wait_exit(h_gw_pid, 20000);
	CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	if (st == -1) {
		fprintf(stderr, "  %s: the gateway was not killed\n", kill_at);
		kill(h_gw_pid, SIGKILL);
		h_wait_exit(h_gw_pid, 5000);
	}
	h_gw_pid = 0;
	/* restart: the store opens, the case resumes */
	CHECK(h_gw_start() == 0);
	json_t *c = wf_wait(id, 30000);
	s_runs++;
	int ok = c && strcmp(wf_s(c, "state"), "COMPLETED") == 0;
	CHECK(ok);
	if (!ok) {
		fprintf(stderr, "  kill at %s: case %s did not complete\n", kill_at, id);
		wf_show(c);
		json_decref(c);
		return;
	}
	s_completed++;
	/* the killed step was in flight: sent again after the restart (more
	 * than once if its department had not reconnected yet) */
	json_t *s = wf_step(c, step);
	long long att = json_integer_value(json_object_get(s, "attempts"));
	CHECK(att >= 2);
	printf("  kill -9 at %-22s -> %s %s, %s sent %lld times\n", kill_at, id, wf_s(c, "state"), step, att);
	s_check_once(id, c, contract);
	json_decref(c);
}

/*
 * Past the pivot: the registry has registered the transfer, then the case
 * is cancelled (bank B is down, the disbursement waits): nothing is undone,
 * the case is FAILED for an operator, the title stays with the buyer.
 */
static void s_pivot(void)
{
	printf("a failure after the registration (the pivot)\n");
	for (int i = 0; i < D_N; i++)
		d_reset_dept(i);
	for (int i = 0; i < D_N; i++)
		if (d_start_dept(i) != 0) {
			CHECK(0);
			return;
		}
	h_gw_stop(10000);
	setenv("QIAO_FAULT_WF_KILL", "disburse:sent", 1);
	int up = h_gw_start() == 0;
	unsetenv("QIAO_FAULT_WF_KILL");
	char id[64];
	if (!up || !wf_start(wf_input("HT-2026-PIVOT-0001"), id, sizeof id)) {
		CHECK(0);
		return;
	}
	int st = h_wait_exit(h_gw_pid, 20000);
	CHECK(st != -1 && WIFSIGNALED(st));
	h_gw_pid = 0;
	d_reset_dept(D_BANK_B); /* bank B is gone */
	CHECK(h_gw_start() == 0);
	json_t *c = NULL;
	int64_t until = h_now() + 15000;
	while (h_now() < until) {
		json_decref(c);
		c = wf_status(id);
		if (c && json_integer_value(json_object_get(wf_step(c, "disburse"), "attempts")) >= 3)
			break;
		h_sleep_ms(50);
	}
	json_decref(c);
	json_t *r = wf_ctl(json_pack("{s:s, s:s, s:s}", "op", "cancel", "case_id", id, "reason", "放款行停止放款"));
	CHECK(r && json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	c = wf_wait(id, 20000);
	wf_show(c);
	CHECK(c && strcmp(wf_s(c, "state"), "FAILED") == 0);
	CHECK(c && strcmp(wf_s(wf_step(c, "register"), "state"), "DONE") == 0);
	/* nothing before the pivot was undone */
	static const char *const kept[] = {"quote", "opinion", "loan", "filing", "escrow"};
	for (size_t i = 0; c && i < sizeof kept / sizeof *kept; i++) {
		CHECK(strcmp(wf_s(wf_step(c, kept[i]), "state"), "DONE") == 0);
		CHECK(json_object_get(wf_step(c, kept[i]), "compensation") == NULL);
	}
	char t[64];
	CHECK(strcmp(dt_q_text(D_HOUSING, t, sizeof t, "SELECT status FROM escrow_agreement WHERE contract_no = ?",
			       "HT-2026-PIVOT-0001", NULL),
		     "AGREED") == 0);
	CHECK(dt_q_int(D_REGISTRY,
		       "SELECT COUNT(*) FROM fdcq f JOIN qlr q ON q.fdcq_id = f.id WHERE f.bdcdyh = ? AND f.qszt = 1 "
		       "AND q.zjh = '15060219850612003X'",
		       DEMO_UNIT, NULL) == 1);
	json_decref(c);
}

/*
 * A service the registry marks not idempotent is never sent twice: the
 * housing bureau's escrow payment, declared idempotent = false for this
 * run, is in flight when the gateway is killed; after the restart the step
 * is FAILED "outcome unknown" (it is past the pivot: the case waits for an
 * operator), and the bureau shows exactly one payment.
 */
static void s_non_idempotent(void)
{
	printf("a non-idempotent step in flight at a crash\n");
	char *conf = h_read_file(h_conf);
	char *p = conf ? strstr(conf, "\"escrow-payment.v1\"") : NULL;
	char *q = p ? strstr(p, "idempotent = true") : NULL;
	CHECK(q != NULL);
	if (!q) {
		free(conf);
		return;
	}
	/* the same config with idempotent = false for this one service */
	size_t n = strlen(conf) + 8;
	char *patched = malloc(n);
	snprintf(patched, n, "%.*sidempotent = false%s", (int)(q - conf), conf, q + strlen("idempotent = true"));
	for (int i = 0; i < D_N; i++)
		d_reset_dept(i);
	for (int i = 0; i < D_N; i++)
		if (d_start_dept(i) != 0) {
			CHECK(0);
			free(conf);
			return;
		}
	h_gw_stop(10000);
	h_write_file(h_conf, patched);
	free(patched);
	setenv("QIAO_FAULT_WF_KILL", "payoff:answered", 1);
	int up = h_gw_start() == 0;
	unsetenv("QIAO_FAULT_WF_KILL");
	char id[64];
	if (!up || !wf_start(wf_input("HT-2026-NONIDEM-0001"), id, sizeof id)) {
		CHECK(0);
		free(conf);
		return;
	}
	int st = h_wait_exit(h_gw_pid, 20000);
	CHECK(st != -1 && WIFSIGNALED(st));
	h_gw_pid = 0;
	CHECK(h_gw_start() == 0);
	json_t *c = wf_wait(id, 20000);
	wf_show(c);
	CHECK(c && strcmp(wf_s(c, "state"), "FAILED") == 0);
	json_t *s = c ? wf_step(c, "payoff") : NULL;
	CHECK(s && strcmp(wf_s(s, "state"), "FAILED") == 0 &&
	      json_integer_value(json_object_get(s, "attempts")) == 1 && strstr(wf_s(s, "cause"), "not idempotent"));
	const char *agreement = wf_s(json_object_get(json_object_get(c, "vars"), "escrow"), "agreement_no");
	CHECK(dt_q_int(D_HOUSING, "SELECT COUNT(*) FROM escrow_payment WHERE agreement_no = ?", agreement, NULL) == 1);
	json_decref(c);
	/* the registry as it was */
	h_gw_stop(10000);
	h_write_file(h_conf, conf);
	free(conf);
	CHECK(h_gw_start() == 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool up = wf_setup("workflow-crash", NULL) == 0;
	CHECK(up);
	if (up) {
		static const char *const steps[] = {"title",	"quote",     "opinion", "loan",     "filing",
						    "escrow",	"notice-registry", "notice-tax", "tax", "clearance",
						    "register", "disburse",  "payoff",	"confirm",  "cancel-mortgage",
						    "remainder"};
		static const char *const phases[] = {"sent", "answered"};
		int n = 0;
		const char *only = getenv("QIAO_CRASH_ONLY"); /* "step" to run one step's two kills */
		for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
			for (size_t p = 0; p < 2; p++)
				if (!only || strcmp(only, steps[i]) == 0)
					s_one(steps[i], phases[p], ++n);
		printf("%d crash runs, %d cases completed\n", s_runs, s_completed);
		CHECK(s_runs == (only ? 2 : 32) && s_completed == s_runs);
		s_pivot();
		s_non_idempotent();
		/* the audit log survived 32 kills */
		h_gw_stop(10000);
		char store[PATH_MAX + 16], out[8192], cli[PATH_MAX + 32];
		snprintf(store, sizeof store, "%s/store", h_dir);
		snprintf(cli, sizeof cli, "%s/gateway/qiao", getenv("QIAO_BIN"));
		char *argv[] = {cli, "audit", "verify", "--store", store, NULL};
		int st = h_run(argv, out, sizeof out);
		CHECK(h_exited_0(st));
		printf("qiao audit verify: %s", out);
	} else {
		h_log_show(NULL, 60);
	}
	if (check_fail_)
		h_log_show("workflow.", 40);
	d_teardown();
	qiao_keys_destroy(&wf_k);
	return check_done();
}
