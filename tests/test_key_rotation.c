/*
 * test_key_rotation.c - a member's keys are rotated while traffic flows
 * (issue 7): the old key is refused afterwards and no request is lost.
 *
 * The provider PRV (two gw_peer instances of an idempotent echo service)
 * and the consumer BANK_B (an SDK adapter in this process, called from a
 * thread in a loop) both rotate their CURVE and signing keys with the
 * procedure of docs/protocol.md "Keys":
 *   1. `qiao keygen --member M --out new.key`;
 *   2. next_curve_public / next_sign_public = the new keys, SIGHUP;
 *   3. the adapters restart with new.key one at a time;
 *   4. curve_public / sign_public = the new keys, next_* removed, SIGHUP.
 * Then: every call was answered OK; an adapter with the old key file is
 * never welcomed (zap.refused, a CONNECTION_REFUSED audit entry); a
 * connection still authenticated with the old key is closed with BYE at
 * the reload of step 4; a request signed with the old signing key is
 * refused with BAD_SIGNATURE; `qiao audit verify` passes (signatures made
 * with either key verify against the directories the log recorded).
 *
 * Also the config checks of next_* (gw_config_load): equal to the current
 * key, equal to another member's key, not base64.
 */
#include "gw_harness.h"

#include "gw_config.h"
#include "qiao_err.h"

#include <stdatomic.h>

#define SVC "idem.v1"

struct keyset {
	char curve[45], sign[45];
};

/* PRV and BANK_B: current keys, and the next ones (NULL: no rotation). */
static void s_config(const char *path, const struct keyset *prv, const struct keyset *prv_next,
		     const struct keyset *bank, const struct keyset *bank_next)
{
	char pn[256] = "", bn[256] = "";
	if (prv_next)
		snprintf(pn, sizeof pn, "    next_curve_public = \"%s\";\n    next_sign_public = \"%s\";\n",
			 prv_next->curve, prv_next->sign);
	if (bank_next)
		snprintf(bn, sizeof bn, "    next_curve_public = \"%s\";\n    next_sign_public = \"%s\";\n",
			 bank_next->curve, bank_next->sign);
	char t[8192];
	snprintf(t, sizeof t,
		 "# written by test_key_rotation\n"
		 H_GATEWAY_SECTION_FMT
		 "limits: {\n"
		 "  heartbeat_ms = %d;\n"
		 "  heartbeat_liveness = 3;\n"
		 "  idempotent_retries = 2;\n"
		 "};\n"
		 "members = (\n"
		 "  { id = \"" PRV "\"; name = \"鄂尔多斯市不动产登记中心\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\";\n"
		 "%s"
		 "    services = (\n"
		 "      { name = \"" SVC "\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n"
		 "        class = \"unconditional\"; idempotent = true; }\n"
		 "    ); },\n"
		 "  { id = \"" BANK_B "\"; name = \"银行B 鄂尔多斯分行\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\";\n"
		 "%s"
		 "  },\n"
		 "  { id = \"" BANK_A "\"; name = \"银行A 鄂尔多斯分行\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; }\n"
		 ");\n"
		 "policy = (\n"
		 "  { consumer = \"" BANK_B "\"; service = \"" PRV "/" SVC "\"; class = \"unconditional\"; }\n"
		 ");\n",
		 strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, check_ms(200), prv->curve, prv->sign, pn,
		 bank->curve, bank->sign, bn, h_m[M_BANK_A].curve_b64, h_m[M_BANK_A].sign_b64);
	h_write_file(path, t);
}

/* ---- config checks --------------------------------------------------------- */

/* Load a config with PRV's next keys; the error, "" when it loads. */
static void s_load(const struct keyset *prv_next, char *err, size_t errlen, struct gw_config **out)
{
	struct keyset prv, bank;
	snprintf(prv.curve, 45, "%s", h_m[M_PRV].curve_b64);
	snprintf(prv.sign, 45, "%s", h_m[M_PRV].sign_b64);
	snprintf(bank.curve, 45, "%s", h_m[M_BANK_B].curve_b64);
	snprintf(bank.sign, 45, "%s", h_m[M_BANK_B].sign_b64);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/check.conf", h_dir);
	s_config(path, &prv, prv_next, &bank, NULL);
	struct gw_config *cfg = NULL;
	err[0] = '\0';
	int rc = gw_config_load(path, &cfg, err, errlen);
	if (rc == 0)
		err[0] = '\0';
	if (out)
		*out = cfg;
	else
		gw_config_free(&cfg);
}

static bool s_err_has(const char *err, const char *a, const char *b)
{
	bool ok = strstr(err, "check.conf:") && strstr(err, a) && (!b || strstr(err, b));
	if (!ok)
		fprintf(stderr, "  config error '%s' lacks '%s' / '%s'\n", err, a, b ? b : "");
	return ok;
}

static void test_config_errors(void)
{
	char err[1024];
	qiao_keys_t *k = NULL;
	CHECK_RC(qiao_keys_generate(PRV, &k));
	if (!k)
		return;
	struct keyset good;
	qiao_b64_32(k->curve_pk, good.curve);
	qiao_b64_32(k->sign_pk, good.sign);

	/* a valid rotation: both CURVE keys name PRV, both signing keys too */
	struct gw_config *cfg = NULL;
	s_load(&good, err, sizeof err, &cfg);
	CHECK(err[0] == '\0' && cfg);
	if (err[0])
		fprintf(stderr, "  valid next keys refused: %s\n", err);
	if (cfg) {
		const struct gw_member *m = gw_config_member(cfg, PRV);
		CHECK(m && m->has_next_curve && m->has_next_sign);
		CHECK(gw_config_member_by_curve(cfg, k->curve_pk) == m);
		CHECK(gw_config_member_by_curve(cfg, h_m[M_PRV].k->curve_pk) == m);
		CHECK(gw_config_member_by_curve(cfg, h_m[M_BANK_B].k->curve_pk) == gw_config_member(cfg, BANK_B));
		CHECK(gw_config_member_by_curve(cfg, h_m[M_STRANGER].k->curve_pk) == NULL);
		CHECK(m && gw_member_has_sign(m, k->sign_pk) && gw_member_has_sign(m, h_m[M_PRV].k->sign_pk));
		CHECK(m && !gw_member_has_sign(m, h_m[M_BANK_B].k->sign_pk));
		CHECK(m && gw_member_has_curve(m, k->curve_pk) && !gw_member_has_curve(m, h_m[M_BANK_A].k->curve_pk));
		const struct gw_member *b = gw_config_member(cfg, BANK_B);
		CHECK(b && !b->has_next_curve && !b->has_next_sign);
		gw_config_free(&cfg);
	}

	/* the next key equal to the current one */
	struct keyset x = good;
	snprintf(x.curve, 45, "%s", h_m[M_PRV].curve_b64);
	s_load(&x, err, sizeof err, NULL);
	CHECK(s_err_has(err, "next_curve_public is the same as curve_public", PRV));
	x = good;
	snprintf(x.sign, 45, "%s", h_m[M_PRV].sign_b64);
	s_load(&x, err, sizeof err, NULL);
	CHECK(s_err_has(err, "next_sign_public is the same as sign_public", PRV));

	/* the next key is another member's key */
	x = good;
	snprintf(x.curve, 45, "%s", h_m[M_BANK_B].curve_b64);
	s_load(&x, err, sizeof err, NULL);
	CHECK(s_err_has(err, "next_curve_public is the CURVE key of member " BANK_B, NULL));
	x = good;
	snprintf(x.sign, 45, "%s", h_m[M_BANK_A].sign_b64);
	s_load(&x, err, sizeof err, NULL);
	CHECK(s_err_has(err, "next_sign_public is the signing key of member " BANK_A, NULL));

	/* not a key */
	x = good;
	snprintf(x.curve, 45, "%s", "not base64!");
	s_load(&x, err, sizeof err, NULL);
	CHECK(s_err_has(err, "next_curve_public is not base64 of exactly 32 bytes", NULL));

	/* the next key of another member (BANK_B rotating to the key PRV
	 * rotates to) */
	{
		struct keyset prv = {0}, bank = {0};
		snprintf(prv.curve, 45, "%s", h_m[M_PRV].curve_b64);
		snprintf(prv.sign, 45, "%s", h_m[M_PRV].sign_b64);
		snprintf(bank.curve, 45, "%s", h_m[M_BANK_B].curve_b64);
		snprintf(bank.sign, 45, "%s", h_m[M_BANK_B].sign_b64);
		struct keyset bn;
		qiao_keys_t *k2 = NULL;
		CHECK_RC(qiao_keys_generate(BANK_B, &k2));
		if (k2) {
			qiao_b64_32(k2->curve_pk, bn.curve);
			snprintf(bn.sign, 45, "%s", good.sign); /* PRV's next signing key */
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/check.conf", h_dir);
			s_config(path, &prv, &good, &bank, &bn);
			struct gw_config *c2 = NULL;
			err[0] = '\0';
			int rc = gw_config_load(path, &c2, err, sizeof err);
			CHECK(rc == QIAO_ECONFIG && c2 == NULL);
			CHECK(s_err_has(err, "next_sign_public is the next signing key of member", NULL));
			gw_config_free(&c2);
			qiao_keys_destroy(&k2);
		}
	}
	qiao_keys_destroy(&k);
}

/* ---- the consumer loop ----------------------------------------------------- */

static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static qiao_adapter_t *s_consumer; /* under s_mu: the adapter the loop calls through */
static atomic_int s_stop;
static atomic_ulong s_sent, s_ok, s_errors;
static int s_first_error;          /* written by the loop, read after the join */
static char s_last_body[128];      /* under s_mu */

static void *s_loop(void *arg)
{
	(void)arg;
	while (!s_stop) {
		char body[32], got[128];
		snprintf(body, sizeof body, "n%lu", (unsigned long)s_sent);
		struct qiao_call c = h_call(PRV "/" SVC, body, 5000);
		pthread_mutex_lock(&s_mu);
		s_sent++;
		int code = h_call_code(s_consumer, &c, 0, got, sizeof got, "rotation call");
		const char *colon = strchr(got, ':');
		int ok = code == 0 && colon && strcmp(colon + 1, body) == 0;
		if (ok)
			snprintf(s_last_body, sizeof s_last_body, "%s", got);
		pthread_mutex_unlock(&s_mu);
		if (ok) {
			s_ok++;
		} else {
			if (!s_errors)
				s_first_error = code;
			s_errors++;
		}
		h_sleep_ms(2);
	}
	return NULL;
}

/* The pid of the instance that answered the last call. */
static long s_last_pid(void)
{
	pthread_mutex_lock(&s_mu);
	long pid = atol(s_last_body);
	pthread_mutex_unlock(&s_mu);
	return pid;
}

static bool s_reload(void)
{
	int before = h_log_count("reload.ok"), bad = h_log_count("reload.failed");
	kill(h_gw_pid, SIGHUP);
	WAIT_FOR(h_log_count("reload.ok") > before || h_log_count("reload.failed") > bad, 5000);
	if (h_log_count("reload.ok") > before)
		return true;
	h_log_show("reload.failed", 3);
	return false;
}

/* Wait until the loop has made n more calls (at most ms). */
static void s_traffic(unsigned long n, int ms)
{
	unsigned long want = s_sent + n;
	WAIT_FOR(s_sent >= want, ms);
}

/* `qiao keygen --member m --out path`, then load it. */
static qiao_keys_t *s_keygen(const char *member, const char *path)
{
	char q_bin[PATH_MAX], out[4096];
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN") ? getenv("QIAO_BIN") : ".");
	char *av[] = {q_bin, "keygen", "--member", (char *)member, "--out", (char *)path, NULL};
	int st = h_run(av, out, sizeof out);
	CHECK(h_exited_0(st));
	if (!h_exited_0(st)) {
		fprintf(stderr, "  qiao keygen: %s\n", out);
		return NULL;
	}
	qiao_keys_t *k = NULL;
	char why[200];
	CHECK_RC(qiao_keys_load(path, &k, why, sizeof why));
	return k;
}

static void test_rotation(void)
{
	char prv_new_path[PATH_MAX], bank_new_path[PATH_MAX], prv_old_path[PATH_MAX], bank_old_path[PATH_MAX];
	snprintf(prv_new_path, sizeof prv_new_path, "%s/realestate-new.key", h_dir);
	snprintf(bank_new_path, sizeof bank_new_path, "%s/bank-new.key", h_dir);
	snprintf(prv_old_path, sizeof prv_old_path, "%s", h_m[M_PRV].key_path);
	snprintf(bank_old_path, sizeof bank_old_path, "%s", h_m[M_BANK_B].key_path);
	struct keyset prv_old, bank_old, prv_new, bank_new;
	snprintf(prv_old.curve, 45, "%s", h_m[M_PRV].curve_b64);
	snprintf(prv_old.sign, 45, "%s", h_m[M_PRV].sign_b64);
	snprintf(bank_old.curve, 45, "%s", h_m[M_BANK_B].curve_b64);
	snprintf(bank_old.sign, 45, "%s", h_m[M_BANK_B].sign_b64);

	s_config(h_conf, &prv_old, NULL, &bank_old, NULL);
	struct h_peer p[4];
	memset(p, 0, sizeof p);
	qiao_adapter_t *a_new = NULL;
	qiao_keys_t *prv_k = NULL, *bank_k = NULL;
	pthread_t th;
	int th_started = 0;
	if (h_gw_start() != 0) {
		CHECK(!"gateway start");
		return;
	}
	/* two instances of PRV with the old key */
	if (h_peer_start(&p[0], SVC, "echo") != 0 || h_peer_start(&p[1], SVC, "echo") != 0) {
		CHECK(!"old PRV instances start");
		goto out;
	}
	s_consumer = h_adapter(M_BANK_B, "BANK_B-old", 1);
	CHECK(s_consumer != NULL);
	if (!s_consumer)
		goto out;
	CHECK_RC(qiao_adapter_start(s_consumer));
	CHECK_RC(qiao_adapter_wait_connected(s_consumer, 10000));
	CHECK(pthread_create(&th, NULL, s_loop, NULL) == 0);
	th_started = 1;
	s_traffic(30, 5000);

	/* 1. new keys */
	prv_k = s_keygen(PRV, prv_new_path);
	bank_k = s_keygen(BANK_B, bank_new_path);
	if (!prv_k || !bank_k)
		goto out;
	qiao_b64_32(prv_k->curve_pk, prv_new.curve);
	qiao_b64_32(prv_k->sign_pk, prv_new.sign);
	qiao_b64_32(bank_k->curve_pk, bank_new.curve);
	qiao_b64_32(bank_k->sign_pk, bank_new.sign);

	/* 2. the next keys beside the current ones */
	s_config(h_conf, &prv_old, &prv_new, &bank_old, &bank_new);
	CHECK(s_reload());
	s_traffic(30, 5000);

	/* during the rotation: a request signed with BANK_B's old signing key
	 * over a connection with its new CURVE key is served */
	{
		qiao_keys_t *keep = h_m[M_BANK_B].k;
		h_m[M_BANK_B].k = bank_k;
		struct h_answer an;
		struct h_rawreq q = {.service = PRV "/" SVC, .body = "mixed", .body_len = 5, .sign_sk = keep->sign_sk};
		h_raw_once(M_BANK_B, &q, &an, NULL);
		CHECK(an.cmd == QIAO_CMD_ENVELOPE && an.kind == QIAO__V1__MESSAGE_KIND__RESPONSE);
		if (an.kind != QIAO__V1__MESSAGE_KIND__RESPONSE)
			h_answer_show("old signing key during the rotation", &an);
		struct h_rawreq q2 = {.service = PRV "/" SVC, .body = "newsig", .body_len = 6};
		h_raw_once(M_BANK_B, &q2, &an, NULL);
		CHECK(an.cmd == QIAO_CMD_ENVELOPE && an.kind == QIAO__V1__MESSAGE_KIND__RESPONSE);
		if (an.kind != QIAO__V1__MESSAGE_KIND__RESPONSE)
			h_answer_show("new keys during the rotation", &an);
		h_m[M_BANK_B].k = keep;
	}

	/* 3. the provider's instances restart with the new key, one at a
	 * time; then the consumer's adapter */
	snprintf(h_m[M_PRV].key_path, sizeof h_m[M_PRV].key_path, "%s", prv_new_path);
	for (int i = 0; i < 2; i++) {
		if (h_peer_start(&p[2 + i], SVC, "echo") != 0) {
			CHECK(!"new PRV instance start");
			goto out;
		}
		s_traffic(20, 5000);
		CHECK(h_exited_0(h_peer_stop(&p[i], SIGTERM)));
		s_traffic(20, 5000);
	}
	long last = s_last_pid();
	CHECK(last == (long)p[2].pid || last == (long)p[3].pid);
	if (last != (long)p[2].pid && last != (long)p[3].pid)
		fprintf(stderr, "  last answer from pid %ld, not a new instance (%ld, %ld)\n", last, (long)p[2].pid,
			(long)p[3].pid);

	snprintf(h_m[M_BANK_B].key_path, sizeof h_m[M_BANK_B].key_path, "%s", bank_new_path);
	a_new = h_adapter(M_BANK_B, "BANK_B-new", 1);
	CHECK(a_new != NULL);
	if (!a_new)
		goto out;
	CHECK_RC(qiao_adapter_start(a_new));
	CHECK_RC(qiao_adapter_wait_connected(a_new, 10000));
	pthread_mutex_lock(&s_mu);
	qiao_adapter_t *old = s_consumer;
	s_consumer = a_new;
	a_new = NULL;
	pthread_mutex_unlock(&s_mu);
	qiao_adapter_destroy(&old);
	s_traffic(30, 5000);

	/* a connection still authenticated with BANK_B's old CURVE key */
	struct h_raw oldc;
	CHECK(h_raw_open(&oldc, M_BANK_B, true) == 0);

	/* 4. the new keys become the current ones */
	int retired = h_log_count("adapter.key_retired");
	s_config(h_conf, &prv_new, NULL, &bank_new, NULL);
	CHECK(s_reload());
	struct h_msg m;
	int cmd = -1;
	if (oldc.s && h_raw_recv(&oldc, &m, 3000) == 0) {
		cmd = h_msg_cmd(&m);
		h_msg_free(&m);
	}
	CHECK(cmd == QIAO_CMD_BYE);
	if (cmd != QIAO_CMD_BYE)
		fprintf(stderr, "  the old-key connection got command %d at the reload, not BYE\n", cmd);
	h_raw_close(&oldc);
	CHECK(h_log_count("adapter.key_retired") > retired);
	s_traffic(50, 5000);

	s_stop = 1;
	pthread_join(th, NULL);
	th_started = 0;
	unsigned long sent = s_sent, ok = s_ok, errors = s_errors;
	fprintf(stderr, "  calls during the rotation: %lu sent, %lu answered OK, %lu errors\n", sent, ok, errors);
	CHECK(sent >= 200);
	CHECK(sent == ok && errors == 0);
	if (errors)
		fprintf(stderr, "  first error: %d (%s)\n", s_first_error, qiao_error_code_name(s_first_error));

	/* the old key files are refused */
	int zap = h_log_count("zap.refused");
	snprintf(h_m[M_PRV].key_path, sizeof h_m[M_PRV].key_path, "%s", prv_old_path);
	qiao_adapter_t *stale = h_adapter(M_PRV, "PRV-old-key", 1);
	CHECK(stale != NULL);
	if (stale) {
		CHECK_RC(qiao_adapter_start(stale));
		CHECK_ERR(qiao_adapter_wait_connected(stale, 1500), QIAO_ETIMEOUT);
		struct qiao_adapter_stats st;
		qiao_adapter_stats(stale, &st);
		CHECK(st.welcomes == 0 && !st.connected);
		qiao_adapter_destroy(&stale);
	}
	WAIT_FOR(h_log_count("zap.refused") > zap, 3000);
	CHECK(h_log_count("zap.refused") > zap);
	/* BANK_B's old CURVE key over a raw connection: never welcomed (a
	 * DEALER without a connection would block on send: SNDTIMEO) */
	zap = h_log_count("zap.refused");
	struct h_raw rc2;
	CHECK(h_raw_open(&rc2, M_BANK_B, false) == 0);
	int sndto = 50;
	zmq_setsockopt(rc2.s, ZMQ_SNDTIMEO, &sndto, sizeof sndto);
	Qiao__V1__Ready rd = QIAO__V1__READY__INIT;
	rd.instance = "old key";
	uint8_t rbuf[64];
	h_raw_send_ctl(&rc2, QIAO_CMD_READY, rbuf, qiao__v1__ready__pack(&rd, rbuf), true);
	struct h_msg w;
	CHECK(h_raw_recv(&rc2, &w, 1500) == QIAO_ETIMEOUT);
	h_msg_free(&w);
	h_raw_close(&rc2);
	WAIT_FOR(h_log_count("zap.refused") > zap, 3000);
	CHECK(h_log_count("zap.refused") > zap);

	/* a request signed with the old signing key, over the new CURVE key */
	{
		qiao_keys_t *keep = h_m[M_BANK_B].k;
		h_m[M_BANK_B].k = bank_k;
		struct h_answer an;
		struct h_rawreq q = {.service = PRV "/" SVC, .body = "oldsig", .body_len = 6, .sign_sk = keep->sign_sk};
		h_raw_once(M_BANK_B, &q, &an, NULL);
		CHECK(h_is_gw_error(&an, QIAO__V1__ERROR_CODE__BAD_SIGNATURE, "old signing key after the rotation"));
		struct h_rawreq q2 = {.service = PRV "/" SVC, .body = "newsig", .body_len = 6};
		h_raw_once(M_BANK_B, &q2, &an, NULL);
		CHECK(an.cmd == QIAO_CMD_ENVELOPE && an.kind == QIAO__V1__MESSAGE_KIND__RESPONSE);
		h_m[M_BANK_B].k = keep;
	}

out:
	if (th_started) {
		s_stop = 1;
		pthread_join(th, NULL);
	}
	qiao_adapter_destroy(&a_new);
	qiao_adapter_destroy(&s_consumer);
	for (int i = 0; i < 4; i++)
		if (p[i].pid > 0)
			CHECK(h_exited_0(h_peer_stop(&p[i], SIGTERM)));
	if (h_gw_pid > 0)
		CHECK(h_exited_0(h_gw_stop(10000)));
	snprintf(h_m[M_PRV].key_path, sizeof h_m[M_PRV].key_path, "%s", prv_old_path);
	snprintf(h_m[M_BANK_B].key_path, sizeof h_m[M_BANK_B].key_path, "%s", bank_old_path);
	qiao_keys_destroy(&prv_k);
	qiao_keys_destroy(&bank_k);

	/* the audit log: every signature verifies against the directory
	 * recorded before it, and the refusals are in it */
	char q_bin[PATH_MAX], dir[PATH_MAX], *out = malloc(1 << 20);
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN") ? getenv("QIAO_BIN") : ".");
	snprintf(dir, sizeof dir, "%s/store", h_dir);
	char *av[] = {q_bin, "audit", "verify", "--store", dir, NULL};
	int st = h_run(av, out, 1 << 20);
	CHECK(h_exited_0(st));
	fprintf(stderr, "  qiao audit verify: %.300s\n", out);
	char *aq[] = {q_bin, "audit", "query", "--store", dir, "--limit", "0", "--json", NULL};
	st = h_run(aq, out, 1 << 20);
	CHECK(h_exited_0(st));
	/* h_run keeps only the first 1 MB; the refusals come last, after the
	 * traffic of the whole test (more of it the longer the test runs, as
	 * under memcheck), so the whole output is read from h_run's file */
	char qpath[PATH_MAX + 16];
	snprintf(qpath, sizeof qpath, "%s/run.out", h_dir);
	char *all = h_read_file(qpath);
	CHECK(all != NULL);
	fprintf(stderr, "  qiao audit query: %zu bytes\n", all ? strlen(all) : 0);
	CHECK(all && strstr(all, "CONNECTION_REFUSED") != NULL);
	CHECK(all && strstr(all, "CURVE key retired by a reload") != NULL);
	free(all);
	free(out);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("key-rotation") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	int64_t t0 = h_now();
	test_config_errors();
	printf("%-28s %5lld ms\n", "config errors", (long long)(h_now() - t0));
	int64_t t = h_now();
	int failed = check_fail_;
	test_rotation();
	printf("%-28s %5lld ms%s\n", "rotation under traffic", (long long)(h_now() - t),
	       check_fail_ > failed ? "  FAILED" : "");
	if (check_fail_ || getenv("QIAO_TEST_VERBOSE")) {
		fprintf(stderr, "--- gateway log (warnings and errors) ---\n");
		h_log_show("level=error", 40);
		h_log_show("level=warn", 60);
		h_peers_log_show(40);
	}
	h_teardown();
	return check_done();
}
