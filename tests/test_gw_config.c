/*
 * test_gw_config.c - gateway configuration, member registry and access
 * policy (gateway/gw_config.c, gateway/gw_policy.c).
 *
 * Configs are written into a temporary directory: a main file that
 * @includes members.conf and policy.conf.  Every broken config is the good
 * one with one edit, and must fail naming the edited file and the exact
 * line of the edit.
 */
#include "check.h"
#include "gw_config.h"
#include "gw_policy.h"
#include "qiao_err.h"
#include "qiao_keys.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GATEWAY "11150600MB0K24684F/gateway"
#define REGISTRY "12150600MB0A12342K/realestate"
#define BANK_A "91150600MA0B56780F/bank"
#define BANK_B "91150600MA0C9012X7/bank"
#define MARKET "11150600MB0E78900J/market"
#define LEGACY "91350203M0001QAY9B/legacy" /* valid only through identifiers.legacy_uscc */
#define TITLE REGISTRY "/title-summary.v1"
#define COMBINED REGISTRY "/combined-registration.v1"
#define INTERNAL REGISTRY "/internal-notes.v1"
#define LICENCE MARKET "/business-licence.v1"
#define EVENT MARKET "/licence-event.v1"

static char s_dir[PATH_MAX];
static char s_main[PATH_MAX + 16];

/* Keys of the five members: [i][0] curve, [i][1] sign, base64. */
static char s_keys[5][2][45];
static uint8_t s_curve[5][32];

static char s_main_text[8192], s_members_text[16384], s_policy_text[8192];

static void s_write(const char *name, const char *text)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", s_dir, name);
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Line (1-based) of the first occurrence of `needle`, or 0. */
static int s_line_of(const char *text, const char *needle)
{
	const char *p = strstr(text, needle);
	if (!p)
		return 0;
	int line = 1;
	for (const char *q = text; q < p; q++)
		line += *q == '\n';
	return line;
}

/* `text` with the first `from` replaced by `to` (caller frees). */
static char *s_replace(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	if (!p) {
		fprintf(stderr, "test bug: '%s' not in the template\n", from);
		exit(2);
	}
	size_t a = (size_t)(p - text), fl = strlen(from), tl = strlen(to), n = strlen(text);
	char *out = malloc(n - fl + tl + 1);
	memcpy(out, text, a);
	memcpy(out + a, to, tl);
	memcpy(out + a + tl, p + fl, n - a - fl + 1);
	return out;
}

static int t_is_null(const char *s)
{
	return s == NULL;
}

static void s_make_keys(void)
{
	static const char *const ids[5] = {REGISTRY, BANK_A, BANK_B, MARKET, LEGACY};
	for (int i = 0; i < 5; i++) {
		qiao_keys_t *k = NULL;
		CHECK_RC(qiao_keys_generate(ids[i], &k));
		if (!k)
			exit(2);
		qiao_b64_32(k->curve_pk, s_keys[i][0]);
		qiao_b64_32(k->sign_pk, s_keys[i][1]);
		memcpy(s_curve[i], k->curve_pk, 32);
		qiao_keys_destroy(&k);
	}
}

static void s_make_texts(void)
{
	snprintf(s_main_text, sizeof s_main_text,
		 "# the main file of the test gateway\n"
		 "gateway: {\n"
		 "  member = \"" GATEWAY "\";\n"
		 "  key_file = \"gateway.key\";\n"
		 "  listen = [ \"tcp://127.0.0.1:7700\",\n"
		 "             \"ipc://gw.ipc\" ];\n"
		 "  store = \"store\";\n"
		 "  admin_socket = \"/run/qiao/admin.sock\";\n"
		 "  verify_threads = 4;\n"
		 "};\n"
		 "limits: {\n"
		 "  max_header = 8192; max_body = 1048576; max_frames = 5;\n"
		 "  max_inflight_per_member = 100;\n"
		 "  max_pending = 5000;\n"
		 "  clock_skew_ms = 20000;\n"
		 "  replay_window_ms = 900000;\n"
		 "  default_deadline_ms = 15000; max_deadline_ms = 120000;\n"
		 "  heartbeat_ms = 2000; heartbeat_liveness = 5;\n"
		 "  queue_hwm = 2000;\n"
		 "  idempotent_retries = 1;\n"
		 "};\n"
		 "identifiers: { legacy_uscc = [ \"91350203M0001QAY9B\" ]; };\n"
		 "@include \"members.conf\"\n"
		 "@include \"policy.conf\"\n");

	snprintf(s_members_text, sizeof s_members_text,
		 "// the member registry\n"
		 "members = (\n"
		 "  { id = \"" REGISTRY "\"; name = \"鄂尔多斯市不动产登记中心\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\";\n"
		 "    services = (\n"
		 "      { name = \"title-summary.v1\"; request = \"qiao.v1.TitleSummaryRequest\";\n"
		 "        response = \"qiao.v1.TitleSummary\"; class = \"conditional\";\n"
		 "        personal = true; idempotent = true; alias = \"title-summary.v1\";\n"
		 "        description = \"登记簿摘要\"; },\n"
		 "      { name = \"internal-notes.v1\"; request = \"qiao.v1.Empty\"; response = \"qiao.v1.Empty\";\n"
		 "        class = \"none\"; },\n"
		 "      { name = \"combined-registration.v1\"; request = \"qiao.v1.CombinedApplication\";\n"
		 "        response = \"qiao.v1.CombinedResult\"; class = \"conditional\";\n"
		 "        alias = \"combined.v1\"; }\n"
		 "    ); },\n"
		 "  { id = \"" BANK_A "\"; name = \"银行A\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; },\n"
		 "  { id = \"" BANK_B "\"; name = \"银行B\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; },\n"
		 "  { id = \"" MARKET "\"; name = \"鄂尔多斯市市场监督管理局\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\";\n"
		 "    services = ( { name = \"business-licence.v1\"; request = \"qiao.v1.LicenceQuery\";\n"
		 "                   response = \"qiao.v1.Licence\"; class = \"unconditional\";\n"
		 "                   alias = \"business-licence.v1\"; },\n"
		 "                 { name = \"licence-event.v1\"; request = \"qiao.v1.LicenceEvent\"; one_way = true;\n"
		 "                   class = \"unconditional\"; } ); },\n"
		 "  { id = \"" LEGACY "\"; name = \"历史单位\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; }\n"
		 ");\n",
		 s_keys[0][0], s_keys[0][1], s_keys[1][0], s_keys[1][1], s_keys[2][0], s_keys[2][1],
		 s_keys[3][0], s_keys[3][1], s_keys[4][0], s_keys[4][1]);

	snprintf(s_policy_text, sizeof s_policy_text,
		 "# who may call what\n"
		 "policy = (\n"
		 "  { consumer = \"" BANK_B "\";\n"
		 "    service = \"title-summary.v1\";\n"
		 "    class = \"conditional\";\n"
		 "    purposes = [ \"带押过户\", \"贷款审批\" ];\n"
		 "    require_case = true; },\n"
		 "  { consumer = \"" BANK_B "\"; service = \"" LICENCE "\"; class = \"unconditional\"; },\n"
		 "  { consumer = \"" BANK_A "\"; service = \"" COMBINED "\"; class = \"conditional\";\n"
		 "    purposes = [ \"带押过户\" ]; },\n"
		 "  { consumer = \"" BANK_A "\"; service = \"business-licence.v1\"; class = \"unconditional\";\n"
		 "    purposes = [ \"开户审核\" ]; }\n"
		 ");\n");
}

static void s_write_good(void)
{
	s_write("main.conf", s_main_text);
	s_write("members.conf", s_members_text);
	s_write("policy.conf", s_policy_text);
}

/* ------------------------------------------------------------ good config */

static void test_good(struct gw_config **out)
{
	s_write_good();
	char err[512];
	struct gw_config *cfg = NULL;
	int rc = gw_config_load(s_main, &cfg, err, sizeof err);
	CHECK_RC(rc);
	if (rc) {
		fprintf(stderr, "good config refused: %s\n", err);
		exit(1);
	}
	CHECK(strcmp(gw_config_path(cfg), s_main) == 0);
	CHECK(gw_config_loaded_ms(cfg) > 0);

	const struct gw_gateway *gw = gw_config_gateway(cfg);
	char want[PATH_MAX + 64];
	CHECK(strcmp(gw->member, GATEWAY) == 0);
	snprintf(want, sizeof want, "%s/gateway.key", s_dir);
	CHECK(strcmp(gw->key_file, want) == 0);
	snprintf(want, sizeof want, "%s/store", s_dir);
	CHECK(strcmp(gw->store, want) == 0);
	CHECK(strcmp(gw->admin_socket, "/run/qiao/admin.sock") == 0);
	CHECK(gw->nlisten == 2);
	CHECK(strcmp(gw->listen[0], "tcp://127.0.0.1:7700") == 0);
	snprintf(want, sizeof want, "ipc://%s/gw.ipc", s_dir);
	CHECK(strcmp(gw->listen[1], want) == 0);
	CHECK(gw->verify_threads == 4);

	const struct gw_limits *l = gw_config_limits(cfg);
	CHECK(l->max_header == 8192);
	CHECK(l->max_body == 1048576);
	CHECK(l->max_frames == 5);
	CHECK(l->max_inflight_per_member == 100);
	CHECK(l->max_pending == 5000);
	CHECK(l->clock_skew_ms == 20000);
	CHECK(l->replay_window_ms == 900000);
	CHECK(l->default_deadline_ms == 15000);
	CHECK(l->max_deadline_ms == 120000);
	CHECK(l->heartbeat_ms == 2000);
	CHECK(l->heartbeat_liveness == 5);
	CHECK(l->queue_hwm == 2000);
	CHECK(l->idempotent_retries == 1);

	struct qiao_wire_limits wl;
	gw_config_wire_limits(cfg, &wl);
	CHECK(wl.max_header == 8192 && wl.max_body == 1048576 && wl.ids == gw_config_ids(cfg));

	/* The legacy exception is built into the config's identifier policy. */
	char why[128];
	CHECK(qiao_id_check_member(gw_config_ids(cfg), LEGACY, why, sizeof why) == 0);
	CHECK(qiao_id_check_member(NULL, LEGACY, why, sizeof why) == QIAO_EIDENT);

	/* Members, ordered by id. */
	CHECK(gw_config_member_count(cfg) == 5);
	static const char *const order[5] = {MARKET, REGISTRY, BANK_A, BANK_B, LEGACY};
	for (size_t i = 0; i < 5; i++)
		CHECK(strcmp(gw_config_member_at(cfg, i)->id, order[i]) == 0);
	CHECK(gw_config_member_at(cfg, 5) == NULL);
	const struct gw_member *reg = gw_config_member(cfg, REGISTRY);
	CHECK(reg && strcmp(reg->name, "鄂尔多斯市不动产登记中心") == 0);
	CHECK(reg && memcmp(reg->curve_public, s_curve[0], 32) == 0);
	CHECK(reg && strcmp(reg->file, "members.conf") == 0 && reg->line == 3);
	CHECK(gw_config_member(cfg, "12150600MB0A12342K/nobody") == NULL);
	CHECK(gw_config_member_by_curve(cfg, s_curve[2]) == gw_config_member(cfg, BANK_B));
	CHECK(gw_config_member_by_curve(cfg, s_curve[4]) == gw_config_member(cfg, LEGACY));
	uint8_t other[32] = {1};
	CHECK(gw_config_member_by_curve(cfg, other) == NULL);

	/* Services: ordered by provider, name, version; each member's run. */
	CHECK(gw_config_service_count(cfg) == 5);
	static const char *const sorder[5] = {LICENCE, EVENT, COMBINED, INTERNAL, TITLE};
	for (size_t i = 0; i < 5; i++)
		CHECK(strcmp(gw_config_service_at(cfg, i)->id, sorder[i]) == 0);
	CHECK(gw_config_service_at(cfg, 5) == NULL);
	CHECK(reg && reg->nservices == 3 && reg->services == gw_config_service_at(cfg, 2));
	const struct gw_service *ev = gw_config_service(cfg, EVENT);
	CHECK(ev && ev->one_way && strcmp(ev->response_type, "") == 0 && !t_is_null(ev->request_type));
	CHECK(ev && gw_config_member(cfg, MARKET)->services == gw_config_service_at(cfg, 0) &&
	      gw_config_member(cfg, MARKET)->nservices == 2);
	CHECK(gw_config_member(cfg, BANK_A)->nservices == 0);

	const struct gw_service *t = gw_config_service(cfg, TITLE);
	CHECK(t != NULL);
	if (t) {
		CHECK(t->provider == reg);
		CHECK(strcmp(t->name, "title-summary.v1") == 0 && t->version == 1);
		CHECK(strcmp(t->request_type, "qiao.v1.TitleSummaryRequest") == 0);
		CHECK(strcmp(t->response_type, "qiao.v1.TitleSummary") == 0);
		CHECK(t->share_class == GW_SHARE_CONDITIONAL && t->personal && t->idempotent && !t->one_way);
		CHECK(strcmp(t->alias, "title-summary.v1") == 0);
		CHECK(strcmp(t->description, "登记簿摘要") == 0);
	}
	/* Alias resolution. */
	CHECK(gw_config_service(cfg, "title-summary.v1") == t);
	CHECK(gw_config_service(cfg, "combined.v1") == gw_config_service(cfg, COMBINED));
	CHECK(gw_config_service(cfg, "combined-registration.v1") == NULL); /* not an alias */
	CHECK(gw_config_service(cfg, "internal-notes.v1") == NULL);
	const struct gw_service *in = gw_config_service(cfg, INTERNAL);
	CHECK(in && in->alias == NULL && strcmp(in->description, "") == 0 && !in->personal &&
	      in->share_class == GW_SHARE_NONE);
	CHECK(gw_config_service(cfg, "nope.v1") == NULL);
	CHECK(gw_config_service(cfg, REGISTRY "/nope.v1") == NULL);

	/* Rules: ordered by consumer then service; text is config syntax. */
	CHECK(gw_policy_rule_count(cfg) == 4);
	const struct gw_rule *r = gw_policy_rule(cfg, gw_config_member(cfg, BANK_B), t);
	CHECK(r && r->npurposes == 2 && r->require_case && r->share_class == GW_SHARE_CONDITIONAL);
	CHECK(r && strcmp(r->file, "policy.conf") == 0 && r->line == 3);
	CHECK(r && strcmp(r->text, "{ consumer = \"" BANK_B "\"; service = \"" TITLE
				   "\"; class = \"conditional\"; purposes = [ \"带押过户\", \"贷款审批\" ]; "
				   "require_case = true; }") == 0);
	CHECK(gw_policy_rule(cfg, gw_config_member(cfg, BANK_A), t) == NULL);
	*out = cfg;
}

/* ------------------------------------------------------------------ policy */

static void test_policy(const struct gw_config *cfg)
{
	struct gw_decision d;
	const struct gw_service *t = gw_config_service(cfg, TITLE);

	/* Allowed: alias, purpose prefix, case id, personal subject. */
	CHECK_RC(gw_policy_check(cfg, BANK_B, "title-summary.v1", "带押过户 新贷款审批", "case-2026-000001", 1, &d));
	CHECK(d.allowed && d.service == t && d.rule && d.code == QIAO__V1__ERROR_CODE__ERROR_CODE_UNSPECIFIED);
	CHECK(strstr(d.reason, "policy.conf:3") != NULL);
	CHECK_RC(gw_policy_check(cfg, BANK_B, TITLE, "贷款审批", "c1", 0, &d));
	CHECK(d.allowed);

	/* No rule: POLICY_DENIED with the rule that would allow it. */
	CHECK_ERR(gw_policy_check(cfg, BANK_A, "title-summary.v1", "带押过户", "c1", 1, &d), QIAO_EDENIED);
	CHECK(!d.allowed && d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED && d.service == t && !d.rule);
	CHECK(strcmp(d.missing_rule, "{ consumer = \"" BANK_A "\"; service = \"" TITLE
				     "\"; class = \"conditional\"; purposes = [ \"<purpose>\" ]; }") == 0);
	CHECK(strstr(d.reason, BANK_A) && strstr(d.reason, TITLE));
	CHECK_ERR(gw_policy_check(cfg, LEGACY, "business-licence.v1", NULL, NULL, 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED);
	CHECK(strcmp(d.missing_rule, "{ consumer = \"" LEGACY "\"; service = \"" LICENCE
				     "\"; class = \"unconditional\"; }") == 0);
	/* ... with personal data the suggested rule carries purposes. */
	CHECK_ERR(gw_policy_check(cfg, LEGACY, "business-licence.v1", "x", NULL, 1, &d), QIAO_EDENIED);
	CHECK(strstr(d.missing_rule, "purposes = [ \"<purpose>\" ]") != NULL);

	/* Unknown service. */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "nope.v1", "带押过户", "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE && d.service == NULL && !d.missing_rule[0]);
	CHECK_ERR(gw_policy_check(cfg, BANK_B, REGISTRY "/title-summary.v2", "带押过户", "c1", 0, &d),
		  QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);
	CHECK_ERR(gw_policy_check(cfg, BANK_B, NULL, NULL, NULL, 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);

	/* Purpose missing, or not among those allowed (the reason lists them). */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", NULL, "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED && d.rule && !d.missing_rule[0]);
	CHECK(strstr(d.reason, "\"带押过户\", \"贷款审批\"") != NULL);
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", "", "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED);
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", "房屋买卖", "c1", 1, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED && strstr(d.reason, "\"带押过户\""));
	/* A purpose must start with an allowed one, not merely contain it. */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", "新 带押过户", "c1", 1, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED);

	/* require_case. */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", "带押过户", NULL, 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED && strstr(d.reason, "case id"));
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "title-summary.v1", "带押过户", "", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED);
	/* ... and a conditional rule without require_case needs none. */
	CHECK_RC(gw_policy_check(cfg, BANK_A, "combined.v1", "带押过户", NULL, 0, &d));
	CHECK(d.allowed);

	/* Unconditional, non-personal, rule without purposes: nothing needed ... */
	CHECK_RC(gw_policy_check(cfg, BANK_B, "business-licence.v1", NULL, NULL, 0, &d));
	CHECK(d.allowed);
	/* ... unless the request names a person: personal data always needs a
	 * purpose the rule allows, and this rule allows none. */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, "business-licence.v1", "开户", NULL, 1, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED && strstr(d.reason, "lists no purposes"));
	/* A rule that lists purposes for an unconditional service enforces them. */
	CHECK_ERR(gw_policy_check(cfg, BANK_A, LICENCE, NULL, NULL, 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED);
	CHECK_RC(gw_policy_check(cfg, BANK_A, LICENCE, "开户审核 对公账户", NULL, 1, &d));

	/* "none" is never shared; unknown consumers get nothing. */
	CHECK_ERR(gw_policy_check(cfg, BANK_B, INTERNAL, "带押过户", "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED && !d.missing_rule[0]);
	CHECK_ERR(gw_policy_check(cfg, "91150600MA0C9012X7/other", TITLE, "带押过户", "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED && !d.missing_rule[0]);
	CHECK_ERR(gw_policy_check(cfg, NULL, TITLE, "带押过户", "c1", 0, &d), QIAO_EDENIED);
	CHECK(d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED);
}

struct s_seen {
	const char *ids[8];
	const struct gw_rule *rules[8];
	int n;
	int stop_after;
};

static int s_visit(void *arg, const struct gw_service *svc, const struct gw_rule *rule)
{
	struct s_seen *s = arg;
	if (s->n < 8) {
		s->ids[s->n] = svc->id;
		s->rules[s->n] = rule;
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after ? 42 : 0;
}

static void test_discovery(const struct gw_config *cfg)
{
	struct s_seen s = {0};
	CHECK_RC(gw_policy_allowed_services(cfg, BANK_B, s_visit, &s));
	CHECK(s.n == 2 && strcmp(s.ids[0], LICENCE) == 0 && strcmp(s.ids[1], TITLE) == 0);
	CHECK(s.rules[1] && s.rules[1]->require_case && s.rules[1]->npurposes == 2);
	CHECK(s.rules[0] && s.rules[0]->npurposes == 0 && !s.rules[0]->require_case);

	memset(&s, 0, sizeof s);
	CHECK_RC(gw_policy_allowed_services(cfg, BANK_A, s_visit, &s));
	CHECK(s.n == 2 && strcmp(s.ids[0], LICENCE) == 0 && strcmp(s.ids[1], COMBINED) == 0);

	memset(&s, 0, sizeof s);
	CHECK_RC(gw_policy_allowed_services(cfg, REGISTRY, s_visit, &s));
	CHECK(s.n == 0);
	CHECK_ERR(gw_policy_allowed_services(cfg, "91150600MA0C9012X7/other", s_visit, &s), QIAO_ENOTFOUND);

	memset(&s, 0, sizeof s);
	s.stop_after = 1;
	CHECK(gw_policy_allowed_services(cfg, BANK_B, s_visit, &s) == 42 && s.n == 1);

	/* Everything discovery lists, the check allows (with what it asks). */
	memset(&s, 0, sizeof s);
	CHECK_RC(gw_policy_allowed_services(cfg, BANK_B, s_visit, &s));
	for (int i = 0; i < s.n && i < 8; i++) {
		struct gw_decision d;
		const struct gw_rule *r = s.rules[i];
		CHECK_RC(gw_policy_check(cfg, BANK_B, s.ids[i], r->npurposes ? r->purposes[0] : NULL,
					 r->require_case ? "c1" : NULL, 0, &d));
	}
}

/* -------------------------------------------------------- broken configs */

enum { F_MAIN, F_MEMBERS, F_POLICY };

/*
 * The good config with `from` replaced by `to` in file `which`: the load
 * must fail with QIAO_ECONFIG, naming file `ewhich` and the line `plus`
 * lines below the first `at` in that file's (edited) text (`at` NULL: the
 * line of `to`); the message must contain `want`.
 */
static void s_bad_x(const char *label, int which, const char *from, const char *to, int ewhich,
		    const char *at, int plus, const char *want)
{
	const char *texts[3] = {s_main_text, s_members_text, s_policy_text};
	static const char *const names[3] = {"main.conf", "members.conf", "policy.conf"};
	char *edited = s_replace(texts[which], from, to);
	for (int i = 0; i < 3; i++)
		s_write(names[i], i == which ? edited : texts[i]);
	int line = s_line_of(ewhich == which ? edited : texts[ewhich], at ? at : to);
	if (line)
		line += plus;
	char prefix[PATH_MAX + 64];
	snprintf(prefix, sizeof prefix, "%s:%d: ", ewhich == F_MAIN ? s_main : names[ewhich], line);

	char err[1024] = "";
	struct gw_config *cfg = (struct gw_config *)&err; /* must be reset to NULL */
	int rc = gw_config_load(s_main, &cfg, err, sizeof err);
	int ok = rc == QIAO_ECONFIG && cfg == NULL && line > 0 &&
		 strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, want) != NULL;
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  case '%s': rc %d (%s)\n    got:  %s\n    want: %s... %s\n", label, rc,
			qiao_strerror(rc), err, prefix, want);
	else if (getenv("QIAO_TEST_VERBOSE"))
		printf("%-45s %s\n", label, err);
	if (cfg != NULL && cfg != (struct gw_config *)&err)
		gw_config_free(&cfg);
	free(edited);
}

#define s_bad(label, which, from, to, at, want) s_bad_x(label, which, from, to, which, at, 0, want)

static void test_broken(void)
{
	char b64short[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="; /* 31 bytes */

	s_bad("syntax error in an include", F_MEMBERS, "name = \"银行A\";", "name = \"银行A\" = ;", NULL,
	      "syntax error");
	s_bad("syntax error in the main file", F_MAIN, "  store = \"store\";\n", "  store = ;\n", NULL,
	      "syntax error");
	s_bad("unknown key in gateway", F_MAIN, "  verify_threads = 4;", "  verify_thread = 4;", NULL,
	      "unknown key 'verify_thread' in gateway");
	s_bad("unknown key in a service", F_MEMBERS, "personal = true;", "personnel = true;", NULL,
	      "unknown key 'personnel'");
	s_bad("unknown top-level key", F_POLICY, "policy = (", "policies = (", NULL,
	      "unknown key 'policies'");
	s_bad("bad member id", F_MEMBERS, "{ id = \"" BANK_A "\"", "{ id = \"12150600MB0A12342X/realestate\"",
	      NULL, "member id 12150600MB0A12342X/realestate: member USCC: check character is X, expected K");
	s_bad_x("legacy USCC without exception", F_MAIN, "legacy_uscc = [ \"91350203M0001QAY9B\" ]",
		"legacy_uscc = [ ]", F_MEMBERS, "{ id = \"" LEGACY "\"", 0,
		"member id " LEGACY ": member USCC: check character is B, expected 9");
	s_bad("bad legacy USCC", F_MAIN, "legacy_uscc = [ \"91350203M0001QAY9B\" ]",
	      "legacy_uscc = [ \"91350203M0001QAY9\" ]", NULL, "is not 18 characters of the USCC alphabet");
	s_bad("bad base64 key", F_MEMBERS, s_keys[1][0], "not*base64", "not*base64",
	      "curve_public is not base64 of exactly 32 bytes");
	s_bad("short key", F_MEMBERS, s_keys[2][1], b64short, b64short,
	      "sign_public is not base64 of exactly 32 bytes");
	s_bad("duplicate member", F_MEMBERS, "{ id = \"" LEGACY "\"", "{ id = \"" BANK_A "\"",
	      "{ id = \"" BANK_A "\"; name = \"历史单位\"", "duplicate member " BANK_A " (first defined at members.conf:17)");
	s_bad_x("duplicate CURVE key", F_MEMBERS, s_keys[4][0], s_keys[1][0], F_MEMBERS,
		"name = \"历史单位\"", 1, "same curve_public key as member " BANK_A " (members.conf:17)");
	s_bad_x("duplicate signing key", F_MEMBERS, s_keys[4][1], s_keys[0][1], F_MEMBERS,
		"name = \"历史单位\"", 2, "same sign_public key as member " REGISTRY " (members.conf:3)");
	s_bad("duplicate alias", F_MEMBERS, "alias = \"combined.v1\"", "alias = \"title-summary.v1\"",
	      "alias = \"title-summary.v1\"; }",
	      "alias 'title-summary.v1' is already the alias of " TITLE " (members.conf:7)");
	s_bad("duplicate service", F_MEMBERS, "name = \"internal-notes.v1\"", "name = \"title-summary.v1\"",
	      "name = \"title-summary.v1\"; request = \"qiao.v1.Empty\"",
	      "duplicate service " TITLE);
	s_bad("bad service name", F_MEMBERS, "name = \"internal-notes.v1\"", "name = \"Internal_notes\"", NULL,
	      "is not <name>.v<N>");
	s_bad("bad alias", F_MEMBERS, "alias = \"combined.v1\"", "alias = \"combined\"", NULL,
	      "alias 'combined' is not <name>.v<N>");
	s_bad("bad request type", F_MEMBERS, "request = \"qiao.v1.Empty\"", "request = \"qiao v1 Empty\"", NULL,
	      "is not a protobuf type name");
	s_bad("one-way service with a response", F_MEMBERS, "one_way = true;",
	      "one_way = true; response = \"qiao.v1.Empty\";", "one_way = true; response",
	      "a one-way (EVENT) service has no response type");
	s_bad("response missing", F_MEMBERS, "response = \"qiao.v1.Licence\";", "",
	      "{ name = \"business-licence.v1\"", "missing required key 'response'");
	s_bad("bad class", F_MEMBERS, "class = \"none\"", "class = \"secret\"", NULL, "class 'secret'");
	s_bad("policy names a missing service", F_POLICY, "service = \"" LICENCE "\"",
	      "service = \"" MARKET "/business-licence.v2\"", NULL,
	      "no member offers service '" MARKET "/business-licence.v2'");
	s_bad("policy names an unknown alias", F_POLICY, "service = \"title-summary.v1\"",
	      "service = \"title.v1\"", NULL, "no member offers service 'title.v1'");
	s_bad("policy names a non-member", F_POLICY, "{ consumer = \"" BANK_A "\"; service = \"" COMBINED,
	      "{ consumer = \"" BANK_A "x\"; service = \"" COMBINED, NULL, "is not a member");
	s_bad("conditional rule without purposes", F_POLICY, "    purposes = [ \"带押过户\" ]; },",
	      "    },", "{ consumer = \"" BANK_A "\"; service = \"" COMBINED, "purposes = [ ... ] required");
	s_bad("conditional rule with empty purposes", F_POLICY, "purposes = [ \"带押过户\" ];",
	      "purposes = [ ];", NULL, "purposes = [ ... ] required");
	s_bad("class mismatch", F_POLICY, "class = \"unconditional\"; },", "class = \"conditional\"; \n"
	      "    purposes = [ \"x\" ]; },", "class = \"conditional\"; \n", "does not match the service's class");
	s_bad("\"none\" cannot be granted", F_POLICY, "service = \"" LICENCE "\"; class = \"unconditional\"",
	      "service = \"" INTERNAL "\"; class = \"none\"", NULL, "cannot be granted");
	s_bad("duplicate rule", F_POLICY, "service = \"business-licence.v1\"; class = \"unconditional\";\n"
	      "    purposes = [ \"开户审核\" ];",
	      "service = \"combined.v1\"; class = \"conditional\";\n    purposes = [ \"贷款审批\" ];",
	      "service = \"combined.v1\"", "a second rule for " BANK_A " -> " COMBINED " (first at policy.conf:9)");
	char longp[700] = "purposes = [ \"";
	for (int i = 0; i < 201; i++)
		strcat(longp, "事");
	strcat(longp, "\" ];");
	s_bad("purpose too long", F_POLICY, "purposes = [ \"带押过户\" ];", longp, "事事事",
	      "purpose 1 must be 1..200 characters");
	s_bad("replay window too short", F_MAIN, "  replay_window_ms = 900000;\n",
	      "  replay_window_ms = 39999;\n", NULL, "must be at least 2 * clock_skew_ms = 40000");
	s_bad("default replay window too short for the skew", F_MAIN,
	      "  clock_skew_ms = 20000;\n  replay_window_ms = 900000;\n", "  clock_skew_ms = 400000;\n", NULL,
	      "replay_window_ms = 600000 must be at least 2 * clock_skew_ms = 800000");
	s_bad("bad endpoint", F_MAIN, "\"ipc://gw.ipc\"", "\"udp://10.0.0.1:7700\"", NULL,
	      "'udp://10.0.0.1:7700' is not a ZeroMQ endpoint");
	s_bad("tcp endpoint without a port", F_MAIN, "\"tcp://127.0.0.1:7700\"", "\"tcp://127.0.0.1\"", NULL,
	      "'tcp://127.0.0.1' is not a ZeroMQ endpoint");
	s_bad("endpoint listed twice", F_MAIN, "\"ipc://gw.ipc\"", "\"tcp://127.0.0.1:7700\"",
	      "             \"tcp://127.0.0.1:7700\"", "is listed twice");
	s_bad("endpoint with a space", F_MAIN, "\"ipc://gw.ipc\"", "\"tcp:// 10.0.0.1:7700\"", NULL,
	      "is not a ZeroMQ endpoint");
	s_bad("listen not a list", F_MAIN, "listen = [ \"tcp://127.0.0.1:7700\",\n             \"ipc://gw.ipc\" ];",
	      "listen = \"tcp://127.0.0.1:7700\";", NULL, "must be an array of strings");
	s_bad("bad gateway member", F_MAIN, "member = \"" GATEWAY "\"", "member = \"11150600MB0K24684F\"",
	      NULL, "gateway.member 11150600MB0K24684F: no '/'");
	s_bad("gateway member is a member", F_MEMBERS, "{ id = \"" LEGACY "\"", "{ id = \"" GATEWAY "\"", NULL,
	      "is the gateway's own id");
	s_bad("type error", F_MAIN, "verify_threads = 4;", "verify_threads = \"4\";", NULL,
	      "gateway.verify_threads must be an integer, not a string");
	s_bad("float for an integer", F_MAIN, "max_pending = 5000;", "max_pending = 5000.0;", NULL,
	      "must be an integer, not a floating-point number");
	s_bad("out of range", F_MAIN, "verify_threads = 4;", "verify_threads = 65;", NULL,
	      "gateway.verify_threads = 65 is out of range 1..64");
	s_bad("32-bit overflow libconfig would truncate", F_MAIN, "max_body = 1048576;",
	      "max_body = 4294968320;", NULL, "integer 4294968320 does not fit in 32 bits");
	s_bad("hex overflow", F_MAIN, "queue_hwm = 2000;", "queue_hwm = 0x100000400;", NULL,
	      "integer 0x100000400 does not fit");
	s_bad("deadline over max", F_MAIN, "default_deadline_ms = 15000;", "default_deadline_ms = 150000;",
	      "max_deadline_ms", "exceeds max_deadline_ms");
	s_bad("missing required key", F_MEMBERS, "    sign_public = \"", "    sign_publik = \"", NULL,
	      "unknown key 'sign_publik'");
	s_bad("missing name", F_MEMBERS, "name = \"银行B\";", "", "{ id = \"" BANK_B "\"",
	      "member " BANK_B ": missing required key 'name'");
	s_bad("missing include", F_MAIN, "@include \"policy.conf\"", "@include \"nosuch.conf\"", NULL,
	      "cannot open include file \"nosuch.conf\"");
	s_bad("absolute include", F_MAIN, "@include \"policy.conf\"", "@include \"/nonexistent/policy.conf\"",
	      NULL, "absolute paths do not work");
	s_bad("missing gateway section", F_MAIN, "gateway: {", "gateway_: {", NULL, "unknown key 'gateway_'");
	s_bad("member not a group", F_MEMBERS, "members = (", "members = ( 5,", NULL,
	      "each entry must be a group");
	s_bad("members not a list", F_MEMBERS, "members = (", "members = 5; xmembers = (", NULL,
	      "unknown key 'xmembers'");
}

static void test_files(void)
{
	char err[512];
	struct gw_config *cfg = NULL;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/nonexistent.conf", s_dir);
	CHECK_ERR(gw_config_load(p, &cfg, err, sizeof err), -ENOENT);
	CHECK(cfg == NULL && strstr(err, "nonexistent.conf") != NULL);
	CHECK_ERR(gw_config_load(s_dir, &cfg, err, sizeof err), -EISDIR);
	CHECK(cfg == NULL && strstr(err, s_dir) != NULL);
	CHECK_ERR(gw_config_load("", &cfg, err, sizeof err), QIAO_EINVAL);
	/* A tiny err buffer still gets a NUL-terminated prefix. */
	s_write_good();
	char *edited = s_replace(s_main_text, "verify_threads = 4;", "verify_threads = 0;");
	s_write("main.conf", edited);
	free(edited);
	char tiny[8];
	CHECK_ERR(gw_config_load(s_main, &cfg, tiny, sizeof tiny), QIAO_ECONFIG);
	CHECK(strlen(tiny) < sizeof tiny);
	CHECK_ERR(gw_config_load(s_main, &cfg, NULL, 0), QIAO_ECONFIG);

	/* Minimal config: defaults for every optional key, no members. */
	s_write("min.conf", "gateway: { member = \"" GATEWAY "\"; key_file = \"/k\"; listen = [ \"tcp://*:7700\" ];\n"
			    "  store = \"s\"; admin_socket = \"a\"; };\n");
	snprintf(p, sizeof p, "%s/min.conf", s_dir);
	CHECK_RC(gw_config_load(p, &cfg, err, sizeof err));
	if (cfg) {
		struct gw_limits def;
		gw_limits_default(&def);
		const struct gw_limits *l = gw_config_limits(cfg);
		CHECK(l->max_header == def.max_header && l->max_body == def.max_body &&
		      l->max_frames == def.max_frames && l->max_inflight_per_member == def.max_inflight_per_member &&
		      l->max_pending == def.max_pending && l->clock_skew_ms == def.clock_skew_ms &&
		      l->replay_window_ms == def.replay_window_ms &&
		      l->default_deadline_ms == def.default_deadline_ms &&
		      l->max_deadline_ms == def.max_deadline_ms && l->heartbeat_ms == def.heartbeat_ms &&
		      l->heartbeat_liveness == def.heartbeat_liveness && l->queue_hwm == def.queue_hwm &&
		      l->idempotent_retries == def.idempotent_retries);
		CHECK(def.max_header == 16384 && def.max_body == 4194304 && def.replay_window_ms == 600000);
		CHECK(gw_config_gateway(cfg)->verify_threads == 2);
		CHECK(strcmp(gw_config_gateway(cfg)->key_file, "/k") == 0);
		CHECK(gw_config_member_count(cfg) == 0 && gw_config_service_count(cfg) == 0);
		CHECK(gw_config_member_by_curve(cfg, s_curve[0]) == NULL);
		CHECK(gw_config_service(cfg, "x.v1") == NULL && gw_config_service(cfg, "a/x.v1") == NULL);
		struct gw_decision d;
		CHECK_ERR(gw_policy_check(cfg, BANK_B, "x.v1", NULL, NULL, 0, &d), QIAO_EDENIED);
		CHECK(d.code == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);
	}
	gw_config_free(&cfg);
	gw_config_free(&cfg); /* idempotent */
	gw_config_free(NULL);
	/* A group where the gateway section belongs; missing section. */
	s_write("min.conf", "limits: { };\n");
	CHECK_ERR(gw_config_load(p, &cfg, err, sizeof err), QIAO_ECONFIG);
	CHECK(strstr(err, "min.conf:1: missing required section 'gateway") != NULL);

	/* Relative main path: includes and paths resolve against its
	 * directory, whatever the working directory. */
	s_write_good();
	char cwd[PATH_MAX];
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	CHECK(chdir(s_dir) == 0);
	CHECK_RC(gw_config_load("main.conf", &cfg, err, sizeof err));
	CHECK(cfg && strcmp(gw_config_path(cfg), s_main) == 0);
	char want[PATH_MAX + 32];
	snprintf(want, sizeof want, "%s/store", s_dir);
	CHECK(cfg && strcmp(gw_config_gateway(cfg)->store, want) == 0);
	gw_config_free(&cfg);
	CHECK(chdir("/") == 0);
	CHECK_RC(gw_config_load(s_main, &cfg, err, sizeof err));
	gw_config_free(&cfg);
	CHECK(chdir(cwd) == 0);
}

/* Reload: a failed load leaves the running config untouched. */
static void test_reload(struct gw_config *running)
{
	char err[512];
	char *edited = s_replace(s_policy_text, "require_case = true;", "require_case = 1;");
	s_write_good();
	s_write("policy.conf", edited);
	free(edited);
	struct gw_config *fresh = NULL;
	CHECK_ERR(gw_config_load(s_main, &fresh, err, sizeof err), QIAO_ECONFIG);
	CHECK(fresh == NULL && strstr(err, "policy.conf:7: ") == err);
	struct gw_decision d;
	CHECK_RC(gw_policy_check(running, BANK_B, "title-summary.v1", "带押过户", "c", 0, &d));

	/* A good reload revokes a grant at once in the new config. */
	edited = s_replace(s_policy_text, "  { consumer = \"" BANK_B "\"; service = \"" LICENCE
					  "\"; class = \"unconditional\"; },\n", "");
	s_write("policy.conf", edited);
	free(edited);
	CHECK_RC(gw_config_load(s_main, &fresh, err, sizeof err));
	if (fresh) {
		CHECK_ERR(gw_policy_check(fresh, BANK_B, "business-licence.v1", NULL, NULL, 0, &d), QIAO_EDENIED);
		CHECK(d.code == QIAO__V1__ERROR_CODE__POLICY_DENIED);
	}
	CHECK_RC(gw_policy_check(running, BANK_B, "business-licence.v1", NULL, NULL, 0, &d));
	gw_config_free(&fresh);
}

/* ------------------------------------------------------ a large registry */

#define N_BIG 2000

static void test_big(void)
{
	static uint8_t curve[N_BIG][32];
	size_t cap = (size_t)N_BIG * 400 + 4096;
	char *text = malloc(cap);
	size_t len = 0;
	len += (size_t)snprintf(text + len, cap - len, "members = (\n");
	for (int i = 0; i < N_BIG; i++) {
		char id[64];
		snprintf(id, sizeof id, "12150600MB0A12342K/m%04d", i);
		qiao_keys_t *k = NULL;
		if (qiao_keys_generate(id, &k) != 0) {
			CHECK(0);
			free(text);
			return;
		}
		memcpy(curve[i], k->curve_pk, 32);
		char c[45], s[45];
		qiao_b64_32(k->curve_pk, c);
		qiao_b64_32(k->sign_pk, s);
		qiao_keys_destroy(&k);
		len += (size_t)snprintf(text + len, cap - len,
					"  { id = \"%s\"; name = \"部门%d\"; curve_public = \"%s\"; sign_public = \"%s\";\n"
					"    services = ( { name = \"svc.v1\"; request = \"a.B\"; response = \"a.C\"; "
					"class = \"unconditional\"; } ); }%s\n",
					id, i, c, s, i + 1 < N_BIG ? "," : "");
	}
	len += (size_t)snprintf(text + len, cap - len,
				");\npolicy = ( { consumer = \"12150600MB0A12342K/m0007\"; "
				"service = \"12150600MB0A12342K/m1999/svc.v1\"; class = \"unconditional\"; } );\n");
	s_write("big-members.conf", text);
	free(text);
	s_write("big.conf", "gateway: { member = \"" GATEWAY "\"; key_file = \"k\"; listen = [ \"tcp://*:1\" ];\n"
			    "  store = \"s\"; admin_socket = \"a\"; };\n@include \"big-members.conf\"\n");
	char p[PATH_MAX + 32], err[512];
	snprintf(p, sizeof p, "%s/big.conf", s_dir);
	struct gw_config *cfg = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = gw_config_load(p, &cfg, err, sizeof err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_RC(rc);
	if (rc) {
		fprintf(stderr, "big config: %s\n", err);
		return;
	}
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("loaded %d members in %.1f ms\n", N_BIG, ms);
	CHECK(gw_config_member_count(cfg) == N_BIG && gw_config_service_count(cfg) == N_BIG);
	int wrong = 0;
	for (int i = 0; i < N_BIG; i++) {
		char id[64];
		snprintf(id, sizeof id, "12150600MB0A12342K/m%04d", i);
		const struct gw_member *m = gw_config_member_by_curve(cfg, curve[i]);
		if (!m || strcmp(m->id, id) != 0 || gw_config_member(cfg, id) != m || m->nservices != 1)
			wrong++;
	}
	CHECK(wrong == 0);
	uint8_t none[32];
	memcpy(none, curve[5], 32);
	none[31] ^= 1;
	CHECK(gw_config_member_by_curve(cfg, none) == NULL);
	struct gw_decision d;
	CHECK_RC(gw_policy_check(cfg, "12150600MB0A12342K/m0007", "12150600MB0A12342K/m1999/svc.v1", NULL,
				 NULL, 0, &d));
	CHECK_ERR(gw_policy_check(cfg, "12150600MB0A12342K/m0008", "12150600MB0A12342K/m1999/svc.v1", NULL,
				  NULL, 0, &d), QIAO_EDENIED);
	gw_config_free(&cfg);
}

/* The example config shipped in ops/ must load (its keys are placeholders
 * of the right length). */
static void test_example(void)
{
	const char *src = getenv("QIAO_SRC");
	if (!src)
		return;
	char p[PATH_MAX + 64], err[512];
	snprintf(p, sizeof p, "%s/ops/qiao-gateway.conf", src);
	struct gw_config *cfg = NULL;
	int rc = gw_config_load(p, &cfg, err, sizeof err);
	CHECK_RC(rc);
	if (rc)
		fprintf(stderr, "ops/qiao-gateway.conf: %s\n", err);
	gw_config_free(&cfg);
}

static void s_rmrf(const char *dir)
{
	static const char *const names[] = {"main.conf", "members.conf", "policy.conf", "min.conf",
					    "big.conf", "big-members.conf"};
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

int main(void)
{
	char tmpl[] = "/tmp/qiao-gwcfg-XXXXXX";
	if (!mkdtemp(tmpl) || !realpath(tmpl, s_dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(s_main, sizeof s_main, "%s/main.conf", s_dir);
	CHECK_RC(qiao_crypto_init());
	s_make_keys();
	s_make_texts();

	struct gw_config *cfg = NULL;
	test_good(&cfg);
	test_policy(cfg);
	test_discovery(cfg);
	test_reload(cfg);
	gw_config_free(&cfg);
	CHECK(cfg == NULL);
	test_broken();
	test_files();
	test_big();
	test_example();

	if (!getenv("QIAO_TEST_KEEP"))
		s_rmrf(s_dir);
	else
		printf("kept %s\n", s_dir);
	return check_done();
}
