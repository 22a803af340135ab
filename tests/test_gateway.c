/*
 * test_gateway.c - the gateway daemon (qiao-gateway) end to end, over
 * tcp://127.0.0.1 with CURVE.
 *
 * The test writes keys and a config into a temporary directory, starts
 * the real daemon, gw_peer provider processes (tests/gw_peer.c) and SDK
 * adapters in this process, and a raw ZeroMQ client for what the SDK
 * would refuse to send.  It checks what comes back (every refusal is an
 * ERROR signed by the gateway, answering the request) and what the
 * gateway logs, and that the gateway keeps serving everyone else after
 * each refusal.  tests/test_gateway_load.c runs the load test.
 *
 * Order: config check (-n), round trip with signatures, discovery,
 * refusals one by one, SIGHUP reload (bad, then good), replay across a
 * restart, drain on SIGTERM.
 */
#include "gw_harness.h"

#include "identity.pb-c.h"

/* ---- the config ---------------------------------------------------------- */

#define SVC(name, extra)                                                                   \
	"      { name = \"" name "\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";" \
	" class = \"unconditional\"; " extra " }"

static const char *const s_services =
	SVC("echo.v1", "description = \"echo\";") ",\n"
	SVC("roundtrip.v1", "alias = \"roundtrip.v1\";") ",\n"
	SVC("silent.v1", "") ",\n"
	SVC("hang.v1", "idempotent = false;") ",\n"
	SVC("idem.v1", "idempotent = true;") ",\n"
	SVC("slow.v1", "") ",\n"
	SVC("offline.v1", "") ",\n"
	"      { name = \"title-summary.v1\"; request = \"qiao.v1.TitleSummaryRequest\";\n"
	"        response = \"qiao.v1.TitleSummary\"; class = \"conditional\"; personal = true; }\n";

/* Every service of PRV, as discovery must list them. */
static const char *const s_all[] = {"echo.v1", "hang.v1", "idem.v1", "offline.v1", "roundtrip.v1",
				    "silent.v1", "slow.v1", "title-summary.v1"};
#define N_ALL (sizeof s_all / sizeof s_all[0])

#define RULE(consumer, svc)                                                      \
	"  { consumer = \"" consumer "\"; service = \"" PRV "/" svc "\"; class = \"unconditional\"; }"

static const char *const s_policy =
	RULE(BANK_B, "echo.v1") ",\n"
	RULE(BANK_B, "roundtrip.v1") ",\n"
	RULE(BANK_B, "silent.v1") ",\n"
	RULE(BANK_B, "hang.v1") ",\n"
	RULE(BANK_B, "idem.v1") ",\n"
	RULE(BANK_B, "slow.v1") ",\n"
	RULE(BANK_B, "offline.v1") ",\n"
	"  { consumer = \"" BANK_B "\"; service = \"" PRV "/title-summary.v1\"; class = \"conditional\";\n"
	"    purposes = [ \"带押过户\" ]; },\n"
	RULE(BANK_A, "echo.v1") "\n";

/* The same plus the rule the SIGHUP test adds. */
static const char *const s_policy_tax =
	RULE(BANK_B, "echo.v1") ",\n"
	RULE(BANK_B, "roundtrip.v1") ",\n"
	RULE(BANK_B, "silent.v1") ",\n"
	RULE(BANK_B, "hang.v1") ",\n"
	RULE(BANK_B, "idem.v1") ",\n"
	RULE(BANK_B, "slow.v1") ",\n"
	RULE(BANK_B, "offline.v1") ",\n"
	"  { consumer = \"" BANK_B "\"; service = \"" PRV "/title-summary.v1\"; class = \"conditional\";\n"
	"    purposes = [ \"带押过户\" ]; },\n"
	RULE(BANK_A, "echo.v1") ",\n"
	RULE(TAX, "echo.v1") "\n";

#define LIMITS "  max_inflight_per_member = 16;\n"

static void s_config(const char *path, const char *policy)
{
	h_write_config(path, s_services, policy, LIMITS);
}

/* ---- state --------------------------------------------------------------- */

/* A_A (BANK_A) only makes the normal calls that show that the gateway
 * still serves others after A_B was refused something. */
static qiao_adapter_t *A_PRV, *A_B, *A_A, *A_TAX;
static struct h_peer P_echo, P_silent, P_hang, P_slow;

/* The in-process provider's record of the last roundtrip.v1 request. */
static struct {
	pthread_mutex_t mu;
	int n;
	bool sig_ok;      /* the requester's signature verifies with BANK_B's registered key */
	bool wrong_fails; /* ... and not with another member's key */
	bool fields_ok;   /* requester, user_id, service as sent */
	uint8_t hdr_hash[32];
} s_rt = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool s_sig_ok(const uint8_t *hdr, size_t len, const uint8_t *sig, const uint8_t *pk)
{
	uint8_t *buf = malloc(QIAO_SIG_PREFIX_LEN + len);
	memcpy(buf, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
	memcpy(buf + QIAO_SIG_PREFIX_LEN, hdr, len);
	bool ok = crypto_sign_verify_detached(sig, buf, QIAO_SIG_PREFIX_LEN + len, pk) == 0;
	free(buf);
	return ok;
}

static void on_roundtrip(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	pthread_mutex_lock(&s_rt.mu);
	s_rt.n++;
	s_rt.sig_ok = s_sig_ok(req->header_bytes, req->header_len, req->signature, h_m[M_BANK_B].k->sign_pk);
	s_rt.wrong_fails = !s_sig_ok(req->header_bytes, req->header_len, req->signature, h_m[M_BANK_A].k->sign_pk);
	s_rt.fields_ok = strcmp(req->requester, BANK_B) == 0 && strcmp(req->hdr->user_id, "staff-0042") == 0 &&
			 strcmp(req->service, "roundtrip.v1") == 0;
	crypto_hash_sha256(s_rt.hdr_hash, req->header_bytes, req->header_len);
	pthread_mutex_unlock(&s_rt.mu);
	char out[300];
	int n = snprintf(out, sizeof out, "rt:%.*s", (int)(req->body_len < 200 ? req->body_len : 200),
			 req->body ? (const char *)req->body : "");
	qiao_respond(&r, out, (size_t)n);
}

/* Collector for asynchronous calls. */
#define COL_MAX 64
static struct {
	pthread_mutex_t mu;
	int n;
	struct qiao_result *res[COL_MAX];
	int64_t at[COL_MAX]; /* h_now() when it arrived */
} s_col = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_done(void *arg, struct qiao_result *res)
{
	(void)arg;
	pthread_mutex_lock(&s_col.mu);
	if (s_col.n < COL_MAX) {
		s_col.at[s_col.n] = h_now();
		s_col.res[s_col.n++] = res;
		res = NULL;
	}
	pthread_mutex_unlock(&s_col.mu);
	qiao_result_free(&res);
}

static int s_collected(void)
{
	pthread_mutex_lock(&s_col.mu);
	int n = s_col.n;
	pthread_mutex_unlock(&s_col.mu);
	return n;
}

static void s_col_reset(void)
{
	pthread_mutex_lock(&s_col.mu);
	for (int i = 0; i < s_col.n; i++)
		qiao_result_free(&s_col.res[i]);
	s_col.n = 0;
	pthread_mutex_unlock(&s_col.mu);
}

/* A normal call that must succeed: `a` asks PRV/echo.v1 and gets the
 * echo peer's answer. */
static bool s_echo_ok(qiao_adapter_t *a, const char *what)
{
	static int seq;
	char body[64], want[96], got[256];
	snprintf(body, sizeof body, "ping-%d", ++seq);
	snprintf(want, sizeof want, "%ld:%s", (long)P_echo.pid, body);
	struct qiao_call c = h_call(PRV "/echo.v1", body, 5000);
	int code = h_call_code(a, &c, 0, got, sizeof got, what);
	bool ok = code == 0 && strcmp(got, want) == 0;
	if (!ok)
		fprintf(stderr, "  %s: normal call after it failed: code %d body '%s' want '%s'\n", what, code,
			got, want);
	return ok;
}

/* After a gateway restart: retry the normal call until it works (10 s). */
static bool s_echo_ok_eventually(qiao_adapter_t *a)
{
	int64_t until = h_now() + 10000;
	while (h_now() < until) {
		struct qiao_call c = h_call(PRV "/echo.v1", "again", 2000);
		char got[256];
		if (h_call_code(a, &c, 0, got, sizeof got, NULL) == 0)
			return true;
		h_sleep_ms(100);
	}
	return s_echo_ok(a, "after restart");
}

/* ---- 4. qiao-gateway -n --------------------------------------------------- */

/* The line (1-based) of `needle` in `text`, or 0. */
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

/* Write the good config with `from` replaced by `to` to `path`; the line of
 * the edit. */
static int s_broken(const char *path, const char *from, const char *to)
{
	char *t = h_read_file(h_conf);
	if (!t)
		return 0;
	char *p = strstr(t, from);
	int line = s_line_of(t, from);
	if (!p) {
		fprintf(stderr, "test bug: '%s' not in the config\n", from);
		free(t);
		return 0;
	}
	size_t a = (size_t)(p - t), fl = strlen(from), tl = strlen(to), n = strlen(t);
	char *out = malloc(n - fl + tl + 1);
	memcpy(out, t, a);
	memcpy(out + a, to, tl);
	memcpy(out + a + tl, p + fl, n - a - fl + 1);
	h_write_file(path, out);
	free(out);
	free(t);
	return line;
}

/* `qiao-gateway -n -f path` exits 1 and says "path:line: reason". */
static void s_check_broken(const char *path, int line, const char *reason_word)
{
	char out[8192], want[PATH_MAX + 32];
	char *argv[] = {h_gw_bin, "-n", "-f", (char *)path, NULL};
	int st = h_run(argv, out, sizeof out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(want, sizeof want, "%s:%d: ", path, line);
	const char *at = strstr(out, want);
	CHECK(line > 0 && at != NULL);
	CHECK(at && strlen(at + strlen(want)) >= 5 && at[strlen(want)] != '\n'); /* a reason follows */
	if (reason_word)
		CHECK(at && strstr(at, reason_word) != NULL);
	CHECK(strstr(out, "configuration OK") == NULL);
	if (!at || (st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 1)))
		fprintf(stderr, "  -n on %s (want '%s...'), status 0x%x, said:\n%s\n", path, want, st, out);
}

static void test_config_check(void)
{
	char out[8192];
	char *argv[] = {h_gw_bin, "-n", "-f", h_conf, NULL};
	int st = h_run(argv, out, sizeof out);
	CHECK(h_exited_0(st));
	CHECK(strstr(out, "configuration OK") != NULL);
	if (!h_exited_0(st) || !strstr(out, "configuration OK"))
		fprintf(stderr, "  -n on the good config: status 0x%x, said:\n%s\n", st, out);

	/* An unknown key, on a known line. */
	char p1[PATH_MAX + 32], p2[PATH_MAX + 32];
	snprintf(p1, sizeof p1, "%s/bad-key.conf", h_dir);
	int l1 = s_broken(p1, "  verify_threads = 2;\n", "  verify_threads = 2;\n  bogus_key = 1;\n");
	s_check_broken(p1, l1 + 1, "bogus_key");

	/* An invalid USCC (check character) in a member id. */
	snprintf(p2, sizeof p2, "%s/bad-uscc.conf", h_dir);
	int l2 = s_broken(p2, "id = \"" TAX "\"", "id = \"11150600MB0D34560X/tax\"");
	s_check_broken(p2, l2, NULL);
}

/* ---- 1. a signed round trip ----------------------------------------------- */

static void test_round_trip(void)
{
	struct qiao_call c = h_call(PRV "/roundtrip.v1", "hello, Qiao", 5000);
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(A_B, &c, &r);
	CHECK(rc == 0 && r && r->kind == QIAO_RESULT_RESPONSE);
	if (rc != 0 || !r || r->kind != QIAO_RESULT_RESPONSE) {
		h_show_result("round trip", rc, r);
		qiao_result_free(&r);
		return;
	}
	CHECK(r->body_len == 14 && memcmp(r->body, "rt:hello, Qiao", 14) == 0);
	CHECK(strcmp(r->responder, PRV) == 0);
	/* The response: signed by the provider over exactly these bytes. */
	CHECK(r->header_bytes && r->signature &&
	      s_sig_ok(r->header_bytes, r->header_len, r->signature, h_m[M_PRV].k->sign_pk));
	CHECK(!s_sig_ok(r->header_bytes, r->header_len, r->signature, h_m[M_GW].k->sign_pk));
	/* It names the request by id and by the hash of the header the
	 * provider received: the gateway forwarded the signed bytes as they were. */
	CHECK(r->hdr->in_reply_to.len == 16 && memcmp(r->hdr->in_reply_to.data, r->request_id, 16) == 0);
	pthread_mutex_lock(&s_rt.mu);
	CHECK(s_rt.n == 1);
	CHECK(s_rt.sig_ok);
	CHECK(s_rt.wrong_fails);
	CHECK(s_rt.fields_ok);
	CHECK(r->hdr->request_hash.len == 32 && memcmp(r->hdr->request_hash.data, s_rt.hdr_hash, 32) == 0);
	pthread_mutex_unlock(&s_rt.mu);
	CHECK(strcmp(r->hdr->recipient, BANK_B) == 0);
	qiao_result_free(&r);

	/* By its alias too. */
	c = h_call("roundtrip.v1", "alias", 5000);
	char got[64];
	CHECK(h_call_code(A_B, &c, 0, got, sizeof got, "alias call") == 0);
	CHECK(strcmp(got, "rt:alias") == 0);
}

/* ---- discovery ------------------------------------------------------------ */

/* Call a gateway service; the packed reply body (caller frees) or NULL. */
static uint8_t *s_gw_service(qiao_adapter_t *a, const char *name, const char *type, const void *body,
			     size_t len, size_t *outlen, const char *want_type)
{
	char svc[128];
	snprintf(svc, sizeof svc, GWM "/%s", name);
	struct qiao_call c = h_call(svc, NULL, 5000);
	c.body_type = type;
	c.body = body;
	c.body_len = len;
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(a, &c, &r);
	bool ok = rc == 0 && r->kind == QIAO_RESULT_RESPONSE && strcmp(r->responder, GWM) == 0 &&
		  strcmp(r->body_type, want_type) == 0;
	CHECK(ok);
	uint8_t *out = NULL;
	if (ok) {
		out = malloc(r->body_len ? r->body_len : 1);
		memcpy(out, r->body, r->body_len);
		*outlen = r->body_len;
	} else {
		h_show_result(name, rc, r);
	}
	qiao_result_free(&r);
	return out;
}

static void s_listing_name(const Qiao__V1__ServiceListing *l, char *out, size_t n)
{
	const Qiao__V1__ServiceId *id = l ? l->id : NULL;
	if (!id || !id->provider) {
		snprintf(out, n, "?");
		return;
	}
	snprintf(out, n, "%s/%s/%s.v%u", id->provider->uscc, id->provider->subsystem, id->name, id->version);
}

/* The listings name exactly PRV's services in s_all (any order). */
static bool s_lists_all(Qiao__V1__ServiceListing *const *l, size_t n, const char *what)
{
	bool seen[N_ALL] = {false};
	bool ok = n == N_ALL;
	for (size_t i = 0; i < n; i++) {
		char name[200];
		s_listing_name(l[i], name, sizeof name);
		bool known = false;
		for (size_t k = 0; k < N_ALL; k++) {
			char want[200];
			snprintf(want, sizeof want, PRV "/%s", s_all[k]);
			if (strcmp(name, want) == 0 && !seen[k])
				seen[k] = known = true;
		}
		if (!known) {
			fprintf(stderr, "  %s: unexpected or repeated listing %s\n", what, name);
			ok = false;
		}
	}
	if (n != N_ALL)
		fprintf(stderr, "  %s: %zu services listed, want %zu\n", what, n, N_ALL);
	return ok;
}

static const Qiao__V1__ServiceListing *s_find_listing(Qiao__V1__ServiceListing *const *l, size_t n,
						      const char *svc)
{
	for (size_t i = 0; i < n; i++) {
		char name[200];
		s_listing_name(l[i], name, sizeof name);
		if (strcmp(name, svc) == 0)
			return l[i];
	}
	return NULL;
}

static void test_discovery(void)
{
	/* list-services, restricted to PRV, asked by BANK_B. */
	Qiao__V1__ListServicesRequest lq = QIAO__V1__LIST_SERVICES_REQUEST__INIT;
	lq.provider = PRV;
	uint8_t buf[256];
	size_t n = qiao__v1__list_services_request__pack(&lq, buf), len = 0;
	uint8_t *b = s_gw_service(A_B, "list-services.v1", "qiao.v1.ListServicesRequest", buf, n, &len,
				  "qiao.v1.ListServicesReply");
	Qiao__V1__ListServicesReply *lr = b ? qiao__v1__list_services_reply__unpack(NULL, len, b) : NULL;
	CHECK(lr != NULL);
	if (lr) {
		CHECK(s_lists_all(lr->services, lr->n_services, "list-services (provider)"));
		const Qiao__V1__ServiceListing *echo = s_find_listing(lr->services, lr->n_services, PRV "/echo.v1");
		const Qiao__V1__ServiceListing *off = s_find_listing(lr->services, lr->n_services, PRV "/offline.v1");
		CHECK(echo && echo->available);   /* the echo peer is connected */
		CHECK(off && !off->available);    /* nobody offers it */
		const Qiao__V1__ServiceListing *idem = s_find_listing(lr->services, lr->n_services, PRV "/idem.v1");
		CHECK(idem && idem->descriptor && idem->descriptor->idempotent);
		qiao__v1__list_services_reply__free_unpacked(lr, NULL);
	}
	free(b);

	/* TAX has no rule at all and may still list everything. */
	b = s_gw_service(A_TAX, "list-services.v1", "qiao.v1.ListServicesRequest", NULL, 0, &len,
			 "qiao.v1.ListServicesReply");
	lr = b ? qiao__v1__list_services_reply__unpack(NULL, len, b) : NULL;
	CHECK(lr != NULL);
	if (lr) {
		CHECK(s_lists_all(lr->services, lr->n_services, "list-services (all, by TAX)"));
		qiao__v1__list_services_reply__free_unpacked(lr, NULL);
	}
	free(b);

	/* allowed-services: BANK_B's rules. */
	b = s_gw_service(A_B, "allowed-services.v1", "qiao.v1.AllowedServicesRequest", NULL, 0, &len,
			 "qiao.v1.AllowedServicesReply");
	Qiao__V1__AllowedServicesReply *ar = b ? qiao__v1__allowed_services_reply__unpack(NULL, len, b) : NULL;
	CHECK(ar != NULL);
	if (ar) {
		CHECK(ar->client && strcmp(ar->client, BANK_B) == 0);
		Qiao__V1__ServiceListing *l[64];
		size_t k = 0;
		bool title_purpose = false;
		for (size_t i = 0; i < ar->n_services && k < 64; i++) {
			l[k++] = ar->services[i]->service;
			char name[200];
			s_listing_name(ar->services[i]->service, name, sizeof name);
			if (strcmp(name, PRV "/title-summary.v1") == 0)
				title_purpose = ar->services[i]->purpose_required;
		}
		CHECK(s_lists_all(l, k, "allowed-services (BANK_B)"));
		CHECK(title_purpose);
		qiao__v1__allowed_services_reply__free_unpacked(ar, NULL);
	}
	free(b);

	/* ... and TAX's: none. */
	b = s_gw_service(A_TAX, "allowed-services.v1", "qiao.v1.AllowedServicesRequest", NULL, 0, &len,
			 "qiao.v1.AllowedServicesReply");
	ar = b ? qiao__v1__allowed_services_reply__unpack(NULL, len, b) : NULL;
	CHECK(ar != NULL);
	if (ar) {
		CHECK(ar->client && strcmp(ar->client, TAX) == 0);
		CHECK(ar->n_services == 0);
		qiao__v1__allowed_services_reply__free_unpacked(ar, NULL);
	}
	free(b);
}

/* ---- 2. refusals ---------------------------------------------------------- */

static void test_unregistered_key(void)
{
	int before = h_log_count("zap.refused");
	qiao_adapter_t *s = h_adapter(M_STRANGER, "stranger", 1);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_RC(qiao_adapter_start(s));
	CHECK_ERR(qiao_adapter_wait_connected(s, 1500), QIAO_ETIMEOUT);
	struct qiao_adapter_stats st;
	qiao_adapter_stats(s, &st);
	CHECK(st.welcomes == 0 && !st.connected);
	WAIT_FOR(h_log_count("zap.refused") > before, 3000);
	CHECK(h_log_count("zap.refused") > before);
	qiao_adapter_destroy(&s);
	CHECK(s_echo_ok(A_B, "unregistered key"));
}

static void test_notices(void)
{
	struct h_answer a;
	/* An envelope before READY. */
	struct h_raw r;
	CHECK(h_raw_open(&r, M_BANK_A, false) == 0);
	struct h_msg m;
	uint8_t id[16];
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "early", .body_len = 5};
	h_raw_seal(M_BANK_A, &q, &m, id);
	h_raw_send(&r, &m);
	h_msg_free(&m);
	h_raw_answer(&r, NULL, 5000, &a);
	CHECK(a.cmd == QIAO_CMD_NOTICE && a.code > 0);
	if (a.cmd != QIAO_CMD_NOTICE)
		h_answer_show("envelope before READY", &a);
	h_raw_close(&r);

	CHECK(h_raw_open(&r, M_BANK_A, true) == 0);
	CHECK(r.welcome && strcmp(r.welcome->member, BANK_A) == 0 && strcmp(r.welcome->gateway, GWM) == 0);
	CHECK(r.welcome && r.welcome->gateway_sign_public.len == 32 &&
	      memcmp(r.welcome->gateway_sign_public.data, h_m[M_GW].k->sign_pk, 32) == 0);
	CHECK(r.welcome && r.welcome->heartbeat_ms == (uint32_t)check_ms(200) && r.welcome->liveness == 3 &&
	      r.welcome->max_body == 65536);

	/* Three frames instead of four. */
	h_raw_seal(M_BANK_A, &q, &m, id);
	free(m.f[3]);
	m.n = 3;
	h_raw_send(&r, &m);
	h_msg_free(&m);
	h_raw_answer(&r, NULL, 5000, &a);
	CHECK(a.cmd == QIAO_CMD_NOTICE && a.code > 0);
	if (a.cmd != QIAO_CMD_NOTICE)
		h_answer_show("three frames", &a);

	/* A bad command frame (magic). */
	h_raw_seal(M_BANK_A, &q, &m, id);
	memcpy(m.f[0], "QIAX", 4);
	h_raw_send(&r, &m);
	h_msg_free(&m);
	h_raw_answer(&r, NULL, 5000, &a);
	CHECK(a.cmd == QIAO_CMD_NOTICE && a.code > 0);
	if (a.cmd != QIAO_CMD_NOTICE)
		h_answer_show("bad magic", &a);

	/* A header that is not protobuf. */
	h_raw_seal(M_BANK_A, &q, &m, id);
	free(m.f[1]);
	m.f[1] = malloc(8);
	memset(m.f[1], 0xff, 8);
	m.len[1] = 8;
	h_raw_send(&r, &m);
	h_msg_free(&m);
	h_raw_answer(&r, NULL, 5000, &a);
	CHECK(a.cmd == QIAO_CMD_NOTICE && a.code > 0);
	if (a.cmd != QIAO_CMD_NOTICE)
		h_answer_show("garbage header", &a);

	/* The connection still works: a good request is answered by PRV. */
	h_raw_seal(M_BANK_A, &q, &m, id);
	h_raw_send(&r, &m);
	h_raw_answer(&r, &m, 5000, &a);
	h_msg_free(&m);
	char want[64];
	snprintf(want, sizeof want, "%ld:early", (long)P_echo.pid);
	CHECK(a.kind == QIAO__V1__MESSAGE_KIND__RESPONSE && a.verified && a.hash_ok && strcmp(a.sender, PRV) == 0 &&
	      strcmp(a.recipient, BANK_A) == 0 && strcmp(a.body, want) == 0);
	if (a.kind != QIAO__V1__MESSAGE_KIND__RESPONSE)
		h_answer_show("good request after the notices", &a);
	h_raw_close(&r);
	CHECK(s_echo_ok(A_B, "notices"));
}

static void test_impersonation(void)
{
	/* BANK_A's connection, a header claiming BANK_B, validly signed with
	 * BANK_B's own key: the sender is not the authenticated member. */
	struct h_rawreq q = {.sender = BANK_B, .service = PRV "/echo.v1", .body = "x", .body_len = 1,
			     .sign_sk = h_m[M_BANK_B].k->sign_sk};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__NOT_AUTHENTICATED, "impersonation"));
	CHECK(s_echo_ok(A_B, "impersonation"));
}

static void test_bad_signature(void)
{
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "x", .body_len = 1, .bad_signature = true};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__BAD_SIGNATURE, "bad signature"));
	/* Signed with another member's key (BANK_B's) under BANK_A's name. */
	struct h_rawreq q2 = {.service = PRV "/echo.v1", .body = "x", .body_len = 1,
			      .sign_sk = h_m[M_BANK_B].k->sign_sk};
	h_raw_once(M_BANK_A, &q2, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__BAD_SIGNATURE, "signed with another key"));
	CHECK(s_echo_ok(A_B, "bad signature"));
}

static void test_stale_time(void)
{
	int64_t now = qiao_now_ms();
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "x", .body_len = 1,
			     .time_ms = now - 120000, .deadline_ms = now + 5000};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__STALE_TIME, "time 2 min in the past"));
	q.time_ms = now + 120000;
	q.deadline_ms = now + 125000;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__STALE_TIME, "time 2 min in the future"));
	CHECK(s_echo_ok(A_B, "stale time"));
}

static void test_too_large(void)
{
	size_t n = 70000; /* > max_body 65536 */
	char *big = malloc(n);
	memset(big, 'x', n);
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = big, .body_len = n};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__TOO_LARGE, "body of 70000 bytes"));
	free(big);
	CHECK(s_echo_ok(A_B, "too large"));
}

static void test_personal_without_purpose(void)
{
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "x", .body_len = 1, .resident_id = PERSON};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, NULL);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED, "RESIDENT_ID subject, no purpose"));
	CHECK(s_echo_ok(A_B, "personal data without purpose"));
}

static void test_policy_denied(void)
{
	struct qiao_call c = h_call(PRV "/echo.v1", "x", 5000);
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(A_TAX, &c, &r);
	bool ok = rc == 0 && r->kind == QIAO_RESULT_ERROR && r->error.code == QIAO__V1__ERROR_CODE__POLICY_DENIED;
	CHECK(ok);
	CHECK(r && r->responder && strcmp(r->responder, GWM) == 0);
	CHECK(r && r->error.missing_rule && r->error.missing_rule[0] != '\0');
	CHECK(r && r->error.missing_rule && strstr(r->error.missing_rule, TAX) != NULL &&
	      strstr(r->error.missing_rule, "echo.v1") != NULL);
	if (!ok || !r->error.missing_rule || !strstr(r->error.missing_rule, TAX))
		h_show_result("policy denied", rc, r);
	qiao_result_free(&r);
	CHECK(s_echo_ok(A_B, "policy denied"));
}

static void test_no_service(void)
{
	struct qiao_call c = h_call(PRV "/nosuch.v1", "x", 5000);
	CHECK(h_call_code(A_B, &c, QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE, NULL, 0, "no such service") ==
	      QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);
	c = h_call("nosuch-alias.v1", "x", 5000);
	CHECK(h_call_code(A_B, &c, QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE, NULL, 0, "no such alias") ==
	      QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);
	CHECK(s_echo_ok(A_B, "no such service"));
	CHECK(s_echo_ok(A_A, "no such service"));
	c = h_call(PRV "/offline.v1", "x", 5000);
	CHECK(h_call_code(A_B, &c, QIAO__V1__ERROR_CODE__NO_INSTANCE, NULL, 0, "no instance") ==
	      QIAO__V1__ERROR_CODE__NO_INSTANCE);
	CHECK(s_echo_ok(A_B, "no instance"));
	CHECK(s_echo_ok(A_A, "no instance"));
}

static void test_timeout_and_busy(void)
{
	/* The provider never answers: the gateway's TIMEOUT at the deadline,
	 * before the SDK's own (deadline + 2 s grace). */
	struct qiao_call c = h_call(PRV "/silent.v1", "x", 1500);
	struct qiao_result *r = NULL;
	int64_t t0 = h_now();
	int rc = qiao_adapter_call(A_B, &c, &r);
	int64_t took = h_now() - t0;
	bool ok = rc == 0 && r->kind == QIAO_RESULT_ERROR && r->error.code == QIAO__V1__ERROR_CODE__TIMEOUT &&
		  strcmp(r->responder, GWM) == 0;
	CHECK(ok);
	CHECK(took >= 1400 && took < 3000);
	if (!ok || took < 1400 || took >= 3000) {
		fprintf(stderr, "  timeout: answered after %lld ms\n", (long long)took);
		h_show_result("timeout", rc, r);
	}
	qiao_result_free(&r);
	CHECK(s_echo_ok(A_B, "timeout"));
	CHECK(s_echo_ok(A_A, "timeout"));

	/* 20 at once where BANK_B may have 16 in flight: the rest are BUSY. */
	s_col_reset();
	int accepted = 0;
	for (int i = 0; i < 20; i++) {
		c = h_call(PRV "/silent.v1", "x", 1500);
		if (qiao_adapter_call_async(A_B, &c, on_done, NULL, NULL, 0) == 0)
			accepted++;
	}
	CHECK(accepted == 20);
	WAIT_FOR(s_collected() == accepted, 6000);
	CHECK(s_collected() == accepted);
	int busy = 0, timeout = 0, other = 0;
	bool retry_after = true;
	pthread_mutex_lock(&s_col.mu);
	for (int i = 0; i < s_col.n; i++) {
		struct qiao_result *x = s_col.res[i];
		if (x->status == 0 && x->kind == QIAO_RESULT_ERROR && x->error.code == QIAO__V1__ERROR_CODE__BUSY) {
			busy++;
			retry_after = retry_after && x->error.retry_after_ms > 0;
		} else if (x->status == 0 && x->kind == QIAO_RESULT_ERROR &&
			   x->error.code == QIAO__V1__ERROR_CODE__TIMEOUT) {
			timeout++;
		} else {
			other++;
			h_show_result("busy burst", x->status, x);
		}
	}
	pthread_mutex_unlock(&s_col.mu);
	CHECK(busy == 4 && timeout == 16 && other == 0);
	CHECK(retry_after);
	if (busy != 4 || timeout != 16)
		fprintf(stderr, "  busy burst: %d BUSY, %d TIMEOUT, %d other (want 4, 16, 0)\n", busy, timeout, other);
	s_col_reset();
	CHECK(s_echo_ok(A_B, "busy"));
	CHECK(s_echo_ok(A_A, "busy"));
}

static void test_provider_gone(void)
{
	s_col_reset();
	struct qiao_call c = h_call(PRV "/hang.v1", "x", 10000);
	int64_t t0 = h_now();
	CHECK_RC(qiao_adapter_call_async(A_B, &c, on_done, NULL, NULL, 0));
	CHECK(h_peer_wait_got(&P_hang, 1, 5000));
	int64_t killed = h_now();
	int st = h_peer_stop(&P_hang, SIGKILL);
	CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	WAIT_FOR(s_collected() == 1, 8000);
	CHECK(s_collected() == 1);
	if (s_collected() == 1) {
		pthread_mutex_lock(&s_col.mu);
		struct qiao_result *r = s_col.res[0];
		int64_t after = s_col.at[0] - killed;
		bool ok = r->status == 0 && r->kind == QIAO_RESULT_ERROR &&
			  r->error.code == QIAO__V1__ERROR_CODE__PROVIDER_GONE && strcmp(r->responder, GWM) == 0;
		CHECK(ok);
		/* liveness 3 x heartbeat 200 ms after its last message, with slack
		 * (both scaled under valgrind: check_ms); far before the request's
		 * deadline (10 s). */
		CHECK(after < check_ms(1500));
		fprintf(stderr, "  provider gone: answered %lld ms after the kill (%lld ms after the call)\n",
			(long long)after, (long long)(s_col.at[0] - t0));
		if (!ok)
			h_show_result("provider gone", r->status, r);
		pthread_mutex_unlock(&s_col.mu);
	}
	s_col_reset();
	CHECK(s_echo_ok(A_B, "provider gone"));
	CHECK(s_echo_ok(A_A, "provider gone"));
}

static void test_idempotent_retry(void)
{
	struct h_peer first, second;
	memset(&second, 0, sizeof second);
	CHECK(h_peer_start(&first, "idem.v1", "hang") == 0);
	s_col_reset();
	/* the deadline must outlast starting the second peer (slow under valgrind) */
	struct qiao_call c = h_call(PRV "/idem.v1", "idem", (uint32_t)check_ms(10000));
	CHECK_RC(qiao_adapter_call_async(A_B, &c, on_done, NULL, NULL, 0));
	CHECK(h_peer_wait_got(&first, 1, 5000));
	CHECK(h_peer_start(&second, "idem.v1", "echo") == 0);
	int64_t killed = h_now();
	h_peer_stop(&first, SIGKILL);
	WAIT_FOR(s_collected() == 1, 8000);
	CHECK(s_collected() == 1);
	if (s_collected() == 1) {
		pthread_mutex_lock(&s_col.mu);
		struct qiao_result *r = s_col.res[0];
		char want[64];
		snprintf(want, sizeof want, "%ld:idem", (long)second.pid);
		bool ok = r->status == 0 && r->kind == QIAO_RESULT_RESPONSE && r->body_len == strlen(want) &&
			  memcmp(r->body, want, r->body_len) == 0;
		CHECK(ok);
		if (!ok)
			h_show_result("idempotent retry", r->status, r);
		fprintf(stderr, "  idempotent retry: answered %lld ms after the kill\n",
			(long long)(s_col.at[0] - killed));
		pthread_mutex_unlock(&s_col.mu);
	}
	s_col_reset();
	CHECK(h_exited_0(h_peer_stop(&second, SIGTERM)));
	CHECK(s_echo_ok(A_B, "idempotent retry"));
	CHECK(s_echo_ok(A_A, "idempotent retry"));
}

/* ---- replay, across a restart --------------------------------------------- */

static struct h_msg s_replayed; /* the captured frames of an answered request */

static void s_replay_once(const char *what)
{
	struct h_raw r;
	struct h_answer a;
	memset(&a, 0, sizeof a);
	a.cmd = -1;
	if (h_raw_open(&r, M_BANK_A, true) == 0) {
		h_raw_send(&r, &s_replayed);
		h_raw_answer(&r, &s_replayed, 5000, &a);
	}
	h_raw_close(&r);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__REPLAY, what));
}

static void test_replay(void)
{
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "once", .body_len = 4};
	struct h_answer a;
	h_raw_once(M_BANK_A, &q, &a, &s_replayed);
	char want[64];
	snprintf(want, sizeof want, "%ld:once", (long)P_echo.pid);
	CHECK(a.kind == QIAO__V1__MESSAGE_KIND__RESPONSE && a.verified && a.hash_ok && strcmp(a.body, want) == 0);
	CHECK(s_replayed.n == 4);
	if (a.kind != QIAO__V1__MESSAGE_KIND__RESPONSE)
		h_answer_show("the request to replay", &a);
	s_replay_once("replay");
	CHECK(s_echo_ok(A_B, "replay"));
}

static void test_restart_replay(void)
{
	CHECK(h_exited_0(h_gw_stop(10000)));
	CHECK(h_gw_start() == 0);
	CHECK(s_echo_ok_eventually(A_B));
	s_replay_once("replay after restart");
	CHECK(s_echo_ok(A_B, "replay after restart"));
}

/* ---- SIGHUP --------------------------------------------------------------- */

static void test_reload(void)
{
	/* A broken file: the old config stays. */
	int before = h_log_count("reload.failed");
	char *good = h_read_file(h_conf);
	char *bad = malloc(strlen(good) + 64);
	char *p = strstr(good, "limits: {\n");
	size_t at = p ? (size_t)(p - good) + strlen("limits: {\n") : 0;
	memcpy(bad, good, at);
	strcpy(bad + at, "  no_such_limit = 5;\n");
	strcat(bad, good + at);
	h_write_file(h_conf, bad);
	free(bad);
	kill(h_gw_pid, SIGHUP);
	WAIT_FOR(h_log_count("reload.failed") > before, 5000);
	CHECK(h_log_count("reload.failed") > before);
	if (h_log_count("reload.failed") > before)
		h_log_show("reload.failed", 3);
	struct qiao_call c = h_call(PRV "/echo.v1", "x", 5000);
	CHECK(h_call_code(A_TAX, &c, QIAO__V1__ERROR_CODE__POLICY_DENIED, NULL, 0, "after failed reload") ==
	      QIAO__V1__ERROR_CODE__POLICY_DENIED);
	CHECK(s_echo_ok(A_B, "failed reload"));
	free(good);

	/* A good one with a new rule: TAX may call echo.v1 at once. */
	s_config(h_conf, s_policy_tax);
	kill(h_gw_pid, SIGHUP);
	int64_t t0 = h_now();
	int code = -1;
	char got[128] = "";
	while (h_now() - t0 < 5000) {
		c = h_call(PRV "/echo.v1", "granted", 3000);
		code = h_call_code(A_TAX, &c, 0, got, sizeof got, NULL);
		if (code != QIAO__V1__ERROR_CODE__POLICY_DENIED)
			break;
		h_sleep_ms(50);
	}
	char want[64];
	snprintf(want, sizeof want, "%ld:granted", (long)P_echo.pid);
	CHECK(code == 0 && strcmp(got, want) == 0);
	if (code != 0)
		fprintf(stderr, "  after a good reload TAX still gets %d (%s)\n", code, qiao_error_code_name(code));
	else
		fprintf(stderr, "  reload took effect within %lld ms of SIGHUP\n", (long long)(h_now() - t0));
	CHECK(s_echo_ok(A_B, "good reload"));

	/* Discovery follows the new policy. */
	size_t len = 0;
	uint8_t *b = s_gw_service(A_TAX, "allowed-services.v1", "qiao.v1.AllowedServicesRequest", NULL, 0, &len,
				  "qiao.v1.AllowedServicesReply");
	Qiao__V1__AllowedServicesReply *ar = b ? qiao__v1__allowed_services_reply__unpack(NULL, len, b) : NULL;
	CHECK(ar && ar->n_services == 1);
	if (ar && ar->n_services == 1) {
		char name[200];
		s_listing_name(ar->services[0]->service, name, sizeof name);
		CHECK(strcmp(name, PRV "/echo.v1") == 0);
	}
	if (ar)
		qiao__v1__allowed_services_reply__free_unpacked(ar, NULL);
	free(b);
}

/* ---- SIGTERM drains ------------------------------------------------------- */

static void test_drain(void)
{
	s_col_reset();
	struct qiao_call c = h_call(PRV "/slow.v1", "drain", 10000);
	CHECK_RC(qiao_adapter_call_async(A_B, &c, on_done, NULL, NULL, 0));
	CHECK(h_peer_wait_got(&P_slow, 1, 5000));
	int64_t t0 = h_now(), exited_at = 0;
	kill(h_gw_pid, SIGTERM);
	/* Until the answer arrives, or a second after the gateway exited
	 * (nothing can come after that), at most 8 s. */
	int st = -1;
	while (s_collected() < 1 && h_now() - t0 < 8000 && !(exited_at && h_now() - exited_at > 1000)) {
		if (!exited_at && (st = h_wait_exit(h_gw_pid, 0)) != -1)
			exited_at = h_now();
		usleep(5000);
	}
	CHECK(s_collected() == 1);
	if (s_collected() != 1)
		fprintf(stderr, "  drain: no answer to the request in flight at SIGTERM; the gateway %s\n",
			exited_at ? "exited without delivering it" : "is still running");
	if (s_collected() == 1) {
		pthread_mutex_lock(&s_col.mu);
		struct qiao_result *r = s_col.res[0];
		char want[64];
		snprintf(want, sizeof want, "%ld:drain", (long)P_slow.pid);
		bool ok = r->status == 0 && r->kind == QIAO_RESULT_RESPONSE && r->body_len == strlen(want) &&
			  memcmp(r->body, want, r->body_len) == 0;
		CHECK(ok);
		if (!ok)
			h_show_result("in flight at SIGTERM", r->status, r);
		pthread_mutex_unlock(&s_col.mu);
	}
	s_col_reset();
	if (!exited_at)
		st = h_wait_exit(h_gw_pid, 10000);
	if (exited_at)
		fprintf(stderr, "  drain: the gateway exited %lld ms after SIGTERM\n", (long long)(exited_at - t0));
	CHECK(h_exited_0(st));
	if (!h_exited_0(st))
		fprintf(stderr, "  gateway after SIGTERM: wait status 0x%x\n", st);
	if (st == -1)
		kill(h_gw_pid, SIGKILL);
	h_wait_exit(h_gw_pid, 5000);
	h_gw_pid = 0;
}

/* ---- main ----------------------------------------------------------------- */

static int s_start_all(void)
{
	if (h_gw_start() != 0)
		return -1;
	if (h_peer_start(&P_echo, "echo.v1", "echo") != 0 || h_peer_start(&P_silent, "silent.v1", "silent") != 0 ||
	    h_peer_start(&P_hang, "hang.v1", "hang") != 0 || h_peer_start(&P_slow, "slow.v1", "slow:1500") != 0)
		return -1;
	A_PRV = h_adapter(M_PRV, "PRV", 2);
	A_B = h_adapter(M_BANK_B, "BANK_B", 2);
	A_A = h_adapter(M_BANK_A, "BANK_A", 1);
	A_TAX = h_adapter(M_TAX, "TAX", 1);
	if (!A_PRV || !A_B || !A_A || !A_TAX)
		return -1;
	CHECK_RC(qiao_adapter_offer(A_PRV, "roundtrip.v1", "test.v1.Echo", on_roundtrip, NULL));
	CHECK_RC(qiao_adapter_start(A_PRV));
	CHECK_RC(qiao_adapter_start(A_B));
	CHECK_RC(qiao_adapter_start(A_A));
	CHECK_RC(qiao_adapter_start(A_TAX));
	int rc = 0;
	CHECK_RC(rc = qiao_adapter_wait_connected(A_PRV, 10000));
	if (rc == 0)
		CHECK_RC(rc = qiao_adapter_wait_connected(A_B, 10000));
	if (rc == 0)
		CHECK_RC(rc = qiao_adapter_wait_connected(A_A, 10000));
	if (rc == 0)
		CHECK_RC(rc = qiao_adapter_wait_connected(A_TAX, 10000));
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("gateway-test") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	s_config(h_conf, s_policy);
	int64_t t0 = h_now();
	test_config_check();
	printf("%-28s %5lld ms\n", "config check (-n)", (long long)(h_now() - t0));

	if (s_start_all() != 0) {
		CHECK(!"start the gateway, the peers and the adapters");
		h_log_show(NULL, 60);
	} else {
		struct { const char *name; void (*fn)(void); } tests[] = {
			{"round trip", test_round_trip},
			{"discovery", test_discovery},
			{"unregistered key", test_unregistered_key},
			{"notices", test_notices},
			{"impersonation", test_impersonation},
			{"bad signature", test_bad_signature},
			{"stale time", test_stale_time},
			{"too large", test_too_large},
			{"personal, no purpose", test_personal_without_purpose},
			{"policy denied", test_policy_denied},
			{"no service / instance", test_no_service},
			{"timeout and busy", test_timeout_and_busy},
			{"provider gone", test_provider_gone},
			{"idempotent retry", test_idempotent_retry},
			{"replay", test_replay},
			{"restart, replay", test_restart_replay},
			{"reload (SIGHUP)", test_reload},
			{"drain (SIGTERM)", test_drain},
		};
		for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
			int64_t t = h_now();
			int failed = check_fail_;
			tests[i].fn();
			printf("%-28s %5lld ms%s\n", tests[i].name, (long long)(h_now() - t),
			       check_fail_ > failed ? "  FAILED" : "");
			if (h_gw_pid > 0 && h_wait_exit(h_gw_pid, 0) >= 0) {
				CHECK(!"the gateway died");
				h_log_show(NULL, 60);
				h_gw_pid = 0;
				break;
			}
		}
	}
	if (check_fail_ || getenv("QIAO_TEST_VERBOSE")) {
		fprintf(stderr, "--- gateway log (warnings and errors) ---\n");
		h_log_show("level=error", 40);
		h_log_show("level=warn", 60);
		h_peers_log_show(40);
	}
	qiao_adapter_destroy(&A_PRV);
	qiao_adapter_destroy(&A_B);
	qiao_adapter_destroy(&A_A);
	qiao_adapter_destroy(&A_TAX);
	if (h_gw_pid > 0)
		CHECK(h_exited_0(h_gw_stop(10000)));
	struct h_peer *peers[] = {&P_echo, &P_silent, &P_hang, &P_slow};
	for (size_t i = 0; i < 4; i++)
		if (peers[i]->pid > 0)
			CHECK(h_exited_0(h_peer_stop(peers[i], SIGTERM)));
	h_msg_free(&s_replayed);
	s_col_reset();
	printf("total %lld ms\n", (long long)(h_now() - t0));
	h_teardown();
	return check_done();
}
