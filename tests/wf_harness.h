/*
 * wf_harness.h - the gateway with its workflow engine and every department
 * (dept_harness.h), for tests/test_workflow*.c:
 *  - wf_setup(): the engine's key (11150600MB0K24684F/workflow) in the
 *    member registry, its grants (ops/workflows/policy.conf), a workflow
 *    section loading the definitions of ops/workflows, every department
 *    started;
 *  - wf_ctl(): one request on the engine's control socket;
 *  - wf_input(): a 带押过户 input for the demo flat (unit ...0001, 张晓梅
 *    sells to 李建国, bank A old lender, bank B new lender);
 *  - wf_wait(): poll a case until it is final.
 */
#ifndef QIAO_WF_HARNESS_H
#define QIAO_WF_HARNESS_H

#include "dept_test_util.h"

#include <jansson.h>
#include <sys/un.h>

#define WFM "11150600MB0K24684F/workflow"
#define DEMO_UNIT "150602001001GB00001F00010001"
#define DEMO_CERT "蒙(2020)鄂尔多斯市不动产权第0001234号"

static qiao_keys_t *wf_k;
static char wf_key_path[PATH_MAX], wf_sock[PATH_MAX];

/* The engine's key into the test directory (d_pre_start). */
static int wf_save_key(void)
{
	snprintf(wf_key_path, sizeof wf_key_path, "%s/workflow.key", h_dir);
	snprintf(wf_sock, sizeof wf_sock, "%s/wf.sock", h_dir);
	return qiao_keys_save(wf_k, wf_key_path) == 0 ? 0 : -1;
}

/* Keys, config (with a workflow section; `extra` appended, may be NULL),
 * the gateway and every department started.  0 or -1. */
H_FN int wf_setup(const char *name, const char *extra)
{
	static char members[1024];
	static char *policy;
	static char more[2048];
	const char *src = getenv("QIAO_SRC");
	if (!src)
		src = ".";
	if (qiao_keys_generate(WFM, &wf_k) != 0)
		return -1;
	char c[45], s[45];
	qiao_b64_32(wf_k->curve_pk, c);
	qiao_b64_32(wf_k->sign_pk, s);
	snprintf(members, sizeof members,
		 "  { id = \"" WFM "\"; name = \"鄂尔多斯市政务服务中心 联办引擎\";\n"
		 "    curve_public = \"%s\"; sign_public = \"%s\"; services = (); }",
		 c, s);
	char pp[PATH_MAX];
	snprintf(pp, sizeof pp, "%s/ops/workflows/policy.conf", src);
	policy = h_read_file(pp);
	if (!policy) {
		fprintf(stderr, "cannot read %s\n", pp);
		return -1;
	}
	d_extra_members = members;
	d_extra_policy = policy;
	snprintf(more, sizeof more,
		 "workflow: { key_file = \"workflow.key\"; definitions = \"%s/ops/workflows\";\n"
		 "  socket = \"wf.sock\"; };\n%s",
		 src, extra ? extra : "");
	d_pre_start = wf_save_key;
	if (d_setup(name, more) != 0)
		return -1;
	for (int i = 0; i < D_N; i++)
		if (d_start_dept(i) != 0)
			return -1;
	return 0;
}

/* One control request; the reply (caller decrefs) or NULL. */
H_FN json_t *wf_ctl(json_t *req)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(wf_sock) >= sizeof sa.sun_path) {
		json_decref(req);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	memcpy(sa.sun_path, wf_sock, strlen(wf_sock) + 1);
	json_t *out = NULL;
	/* the engine's socket appears a moment after the gateway's admin socket */
	int rc = -1;
	for (int i = 0; fd >= 0 && i < check_ms(100) && (rc = connect(fd, (struct sockaddr *)&sa, sizeof sa)) != 0;
	     i++) {
		if (errno != ENOENT && errno != ECONNREFUSED)
			break;
		h_sleep_ms(50);
	}
	if (fd >= 0 && rc == 0) {
		char *t = json_dumps(req, JSON_COMPACT);
		size_t n = strlen(t);
		if (write(fd, t, n) == (ssize_t)n && write(fd, "\n", 1) == 1) {
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
			if (b) {
				b[len] = '\0';
				out = json_loads(b, 0, NULL);
			}
			free(b);
		}
		free(t);
	}
	if (fd >= 0)
		close(fd);
	json_decref(req);
	return out;
}

H_FN const char *wf_s(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

static json_t *wf_party(const char *name, const char *id)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "name", name, "id", "type", "RESIDENT_ID", "id", id);
}

/* The demo 带押过户 input; `contract` makes each case's numbers its own. */
H_FN json_t *wf_input(const char *contract)
{
	/* dates as the departments see them: China Standard Time (UTC+8,
	 * adapters/dept/dept.h), whatever this machine's zone */
	time_t t = time(NULL) + 8 * 3600;
	struct tm tm;
	gmtime_r(&t, &tm);
	char today[16], payoff[16];
	strftime(today, sizeof today, "%Y-%m-%d", &tm);
	t += 7 * 86400;
	gmtime_r(&t, &tm);
	strftime(payoff, sizeof payoff, "%Y-%m-%d", &tm);
	json_t *in = json_pack(
		"{s:s, s:s, s:[o], s:[o], s:I, s:s, s:s, s:s, s:s, s:I, s:i, s:s, "
		"s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:[{s:o}], s:s}",
		"unit_no", DEMO_UNIT, "cert_no", DEMO_CERT, "sellers", wf_party("张晓梅", "150621199003154522"), "buyers",
		wf_party("李建国", "15060219850612003X"), "price_fen", (json_int_t)150000000, "contract_no", contract,
		"old_lender", "91150600MA0B56780F/bank", "old_loan_contract_no", "BOA-GRZF-2020-0618001", "new_lender",
		"91150600MA0C9012X7/bank", "loan_amount_fen", (json_int_t)80000000, "loan_term_months", 240,
		"buyer_authorisation_no", "SQ-2026-LJG-0001", "seller_account", "account_name", "张晓梅", "account_no",
		"6222021506001234567", "bank_name", "银行C鄂尔多斯东胜支行", "refund_account", "account_name", "李建国",
		"account_no", "6222031506007654321", "bank_name", "银行B股份有限公司鄂尔多斯分行", "planned_payoff_date",
		payoff, "registration_mode", "REGISTRATION_MODE_RANKED_MORTGAGE", "contract_signed_date", today,
		"buyer_holders", "party", wf_party("李建国", "15060219850612003X"), "co_ownership", "CO_OWNERSHIP_SOLE");
	return in;
}

/* Start a case of `workflow` (input consumed): its id in `id`, or NULL
 * with the error shown. */
H_FN const char *wf_start_wf(const char *workflow, json_t *input, char *id, size_t idlen)
{
	json_t *r = wf_ctl(json_pack("{s:s, s:s, s:o, s:s}", "op", "start", "workflow", workflow, "input", input,
				     "user", "clerk-0007"));
	if (!r || !json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "case start refused: %s\n", r ? wf_s(r, "error") : "(no answer)");
		json_decref(r);
		return NULL;
	}
	snprintf(id, idlen, "%s", wf_s(r, "case_id"));
	json_decref(r);
	return id;
}

/* A 带押过户 case. */
H_FN const char *wf_start(json_t *input, char *id, size_t idlen)
{
	return wf_start_wf("daiya-guohu", input, id, idlen);
}

H_FN json_t *wf_status(const char *id)
{
	json_t *r = wf_ctl(json_pack("{s:s, s:s}", "op", "status", "case_id", id));
	json_t *c = r ? json_incref(json_object_get(r, "case")) : NULL;
	json_decref(r);
	return c;
}

H_FN bool wf_final(const char *state)
{
	return strcmp(state, "COMPLETED") == 0 || strcmp(state, "COMPENSATED") == 0 || strcmp(state, "FAILED") == 0;
}

/* Poll until the case is final (or ms pass): the case record or NULL. */
H_FN json_t *wf_wait(const char *id, int ms)
{
	int64_t until = h_now() + check_ms(ms);
	while (h_now() < until) {
		json_t *c = wf_status(id);
		if (c && wf_final(wf_s(c, "state")))
			return c;
		json_decref(c);
		h_sleep_ms(50);
	}
	fprintf(stderr, "case %s not final after %d ms\n", id, ms);
	return wf_status(id);
}

H_FN json_t *wf_step(const json_t *c, const char *name)
{
	json_t *steps = json_object_get(c, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++)
		if (strcmp(wf_s(json_array_get(steps, i), "name"), name) == 0)
			return json_array_get(steps, i);
	return NULL;
}

/* Print the case's steps (for the log of a failing test). */
H_FN void wf_show(const json_t *c)
{
	if (!c)
		return;
	const json_t *f = json_object_get(c, "failure");
	printf("  case %s %s%s%s%s%s\n", wf_s(c, "case_id"), wf_s(c, "state"), f ? " (" : "", f ? wf_s(f, "code") : "",
	       f ? ": " : "", f ? wf_s(f, "reason") : "");
	json_t *steps = json_object_get(c, "steps");
	for (size_t i = 0; i < json_array_size(steps); i++) {
		json_t *s = json_array_get(steps, i);
		json_t *e = json_object_get(s, "error");
		json_t *cp = json_object_get(s, "compensation");
		printf("    %-16s %-12s x%lld %s%s%s%s%s\n", wf_s(s, "name"), wf_s(s, "state"),
		       (long long)json_integer_value(json_object_get(s, "attempts")), wf_s(s, "cause"), e ? " | " : "",
		       e ? wf_s(e, "name") : "", e ? " " : "", e ? wf_s(e, "message") : "");
		if (cp)
			printf("    %-16s comp %-7s %s\n", "", wf_s(cp, "state"), wf_s(cp, "service"));
	}
}

#endif
