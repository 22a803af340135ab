/*
 * test_cache.c - the gateway's licence cache with the real gateway:
 *  - a licence fetched from its issuer is cached (its signature verified)
 *    and the next lookup is answered by the gateway, marked cached with its
 *    version, audited as CACHE_HIT, without asking the issuer;
 *  - a licence whose issuer signature does not verify is never cached or
 *    served (the requester gets BAD_SIGNATURE, every time);
 *  - a revocation published by the issuer replaces the cached copy at once
 *    (never again served as valid), and a subscriber that was offline
 *    during the revocation receives it after connecting;
 *  - with the issuer offline, a stale copy is served only when the request
 *    allows it and the policy rule says serve_stale, and is marked stale;
 *  - hits, misses, stale answers and refusals are counted by qiao status.
 */
#include "gw_harness.h"
#include "licence.pb-c.h"
#include "qiao_id.h"
#include "qiao_issuer.h"

#include <jansson.h>
#include <stdatomic.h>

#define ISSUER PRV                    /* 12150600MB0A12342K/realestate issues here */
#define ISSUER_USCC "12150600MB0A12342K"
#define SUB BANK_A                    /* subscribed to licence events */
#define TYPE_CODE "11100000000013338W011"

struct lic {
	char id[120];
	uint64_t version;
	int status;
	int bad_sig;
	uint8_t *signed_bytes; /* packed SignedLicence */
	size_t len;
};

static struct lic L[3];
static atomic_int s_issuer_calls;
static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static char s_events[8][120];
static uint64_t s_event_versions[8];
static int s_nevents;

/* A valid 电子证照标识 for serial n. */
static void s_make_id(int n, char out[120])
{
	char body[100];
	snprintf(body, sizeof body, "%s%s2026%05d001", TYPE_CODE, ISSUER_USCC, n);
	char c = qiao_id_mod3736(body, strlen(body));
	snprintf(out, 120, "1.2.156.3005.2.%s.%s.2026%05d.001.%c", TYPE_CODE, ISSUER_USCC, n, c);
}

/* Build and sign licence i at its version/status (a corrupted signature
 * when bad_sig). */
static void s_sign(struct lic *l)
{
	Qiao__V1__ElectronicLicence e = QIAO__V1__ELECTRONIC_LICENCE__INIT;
	e.licence_id = l->id;
	e.name = "不动产权证书";
	e.type_code = TYPE_CODE;
	e.number = "蒙(2026)鄂尔多斯市不动产权第0000001号";
	e.issuer_name = "鄂尔多斯市不动产登记中心";
	e.issuer_uscc = ISSUER_USCC;
	e.jurisdiction_code = "150600";
	e.holder_name = "某某有限公司";
	e.holder_code = "91150602MA0H864248";
	e.holder_code_type = QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
	e.issue_date = "2026-01-05";
	e.valid_from = "2026-01-05";
	e.status = (Qiao__V1__LicenceStatus)l->status;
	e.version = l->version;
	e.version_ms = qiao_now_ms();
	size_t n = qiao__v1__electronic_licence__get_packed_size(&e);
	uint8_t *b = malloc(n);
	qiao__v1__electronic_licence__pack(&e, b);
	Qiao__V1__IssuerSignature sig;
	char kid[QIAO_KEY_ID_MAX];
	uint8_t sb[64];
	CHECK_RC(qiao_issuer_sign(QIAO_DOMAIN_LICENCE, b, n, ISSUER, h_m[M_PRV].k->sign_sk, h_m[M_PRV].k->sign_pk, &sig,
				  kid, sb));
	if (l->bad_sig)
		sb[10] ^= 0x40;
	Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
	sl.licence.data = b;
	sl.licence.len = n;
	sl.signature = &sig;
	free(l->signed_bytes);
	l->len = qiao__v1__signed_licence__get_packed_size(&sl);
	l->signed_bytes = malloc(l->len);
	qiao__v1__signed_licence__pack(&sl, l->signed_bytes);
	free(b);
}

/* The issuer's licence-by-id.v1. */
static void on_by_id(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	atomic_fetch_add(&s_issuer_calls, 1);
	Qiao__V1__LicenceByIdRequest *q = qiao__v1__licence_by_id_request__unpack(NULL, req->body_len, req->body);
	struct lic *l = NULL;
	pthread_mutex_lock(&s_mu);
	for (int i = 0; q && i < 3; i++)
		if (strcmp(L[i].id, q->licence_id) == 0)
			l = &L[i];
	if (!l) {
		pthread_mutex_unlock(&s_mu);
		qiao_respond_error(&r, QIAO__V1__ERROR_CODE__NOT_FOUND, "no such licence", "licence_id");
	} else {
		Qiao__V1__SignedLicence *sl = qiao__v1__signed_licence__unpack(NULL, l->len, l->signed_bytes);
		pthread_mutex_unlock(&s_mu);
		Qiao__V1__ServedLicence sv = QIAO__V1__SERVED_LICENCE__INIT;
		sv.licence = sl;
		Qiao__V1__LicenceByIdReply rep = QIAO__V1__LICENCE_BY_ID_REPLY__INIT;
		rep.licence = &sv;
		size_t n = qiao__v1__licence_by_id_reply__get_packed_size(&rep);
		uint8_t *b = malloc(n);
		qiao__v1__licence_by_id_reply__pack(&rep, b);
		qiao_respond(&r, b, n);
		free(b);
		qiao__v1__signed_licence__free_unpacked(sl, NULL);
	}
	if (q)
		qiao__v1__licence_by_id_request__free_unpacked(q, NULL);
}

/* The subscriber's licence-notify.v1. */
static void on_notify(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	Qiao__V1__LicenceEvent *ev = qiao__v1__licence_event__unpack(NULL, req->body_len, req->body);
	pthread_mutex_lock(&s_mu);
	if (ev && s_nevents < 8) {
		snprintf(s_events[s_nevents], sizeof s_events[0], "%s", ev->licence_id);
		s_event_versions[s_nevents] = ev->version;
		s_nevents++;
	}
	pthread_mutex_unlock(&s_mu);
	if (ev)
		qiao__v1__licence_event__free_unpacked(ev, NULL);
	Qiao__V1__Empty e = QIAO__V1__EMPTY__INIT;
	uint8_t b[4];
	size_t n = qiao__v1__empty__pack(&e, b);
	qiao_respond(&r, b, n);
}

static qiao_adapter_t *s_issuer(void)
{
	qiao_adapter_t *a = h_adapter(M_PRV, "issuer", 2);
	if (!a || qiao_adapter_offer(a, "licence-by-id.v1", "qiao.v1.LicenceByIdReply", on_by_id, NULL) != 0 ||
	    qiao_adapter_start(a) != 0 || qiao_adapter_wait_connected(a, 10000) != 0) {
		qiao_adapter_destroy(&a);
		return NULL;
	}
	return a;
}

static qiao_adapter_t *s_subscriber(void)
{
	qiao_adapter_t *a = h_adapter(M_BANK_A, "subscriber", 1);
	if (!a || qiao_adapter_offer(a, "licence-notify.v1", "qiao.v1.Empty", on_notify, NULL) != 0 ||
	    qiao_adapter_start(a) != 0 || qiao_adapter_wait_connected(a, 10000) != 0) {
		qiao_adapter_destroy(&a);
		return NULL;
	}
	return a;
}

struct got {
	int code;           /* 0 RESPONSE, else the ERROR code, -1 nothing */
	char responder[96];
	int from_cache, stale;
	uint64_t version;
	int status;
};

static struct got s_lookup(qiao_adapter_t *a, const char *id, int allow_stale)
{
	struct got g = {.code = -1};
	Qiao__V1__LicenceByIdRequest q = QIAO__V1__LICENCE_BY_ID_REQUEST__INIT;
	q.licence_id = (char *)id;
	q.allow_stale = allow_stale;
	uint8_t b[256];
	size_t n = qiao__v1__licence_by_id_request__pack(&q, b);
	struct qiao_call c = {.service = ISSUER "/licence-by-id.v1", .user_id = "clerk-0001",
			      .purpose = "贷款审批", .body_type = "qiao.v1.LicenceByIdRequest", .body = b,
			      .body_len = n, .timeout_ms = 3000};
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(a, &c, &r);
	if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		g.code = 0;
		snprintf(g.responder, sizeof g.responder, "%s", r->responder);
		Qiao__V1__LicenceByIdReply *rep = qiao__v1__licence_by_id_reply__unpack(NULL, r->body_len, r->body);
		if (rep && rep->licence) {
			if (rep->licence->cache) {
				g.from_cache = rep->licence->cache->from_cache;
				g.stale = rep->licence->cache->stale;
				g.version = rep->licence->cache->cached_version;
			}
			const Qiao__V1__SignedLicence *sl = rep->licence->licence;
			Qiao__V1__ElectronicLicence *e =
				sl ? qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data) : NULL;
			/* whoever served it, the issuer's signature holds */
			char why[200];
			CHECK(sl && qiao_issuer_verify(sl->signature, QIAO_DOMAIN_LICENCE, sl->licence.data,
						       sl->licence.len, ISSUER, h_m[M_PRV].k->sign_pk, why,
						       sizeof why) == 0);
			if (e) {
				g.status = e->status;
				if (!g.version)
					g.version = e->version;
				qiao__v1__electronic_licence__free_unpacked(e, NULL);
			}
		}
		if (rep)
			qiao__v1__licence_by_id_reply__free_unpacked(rep, NULL);
	} else if (rc == 0) {
		g.code = r->error.code;
		snprintf(g.responder, sizeof g.responder, "%s", r->responder);
	}
	qiao_result_free(&r);
	return g;
}

/* The issuer publishes licence i's current version to the gateway. */
static int s_publish(qiao_adapter_t *issuer, struct lic *l, int type)
{
	Qiao__V1__SignedLicence *sl = qiao__v1__signed_licence__unpack(NULL, l->len, l->signed_bytes);
	Qiao__V1__LicenceEvent ev = QIAO__V1__LICENCE_EVENT__INIT;
	ev.event_type = (Qiao__V1__LicenceEventType)type;
	ev.licence_id = l->id;
	ev.version = l->version;
	ev.event_ms = qiao_now_ms();
	ev.new_status = (Qiao__V1__LicenceStatus)l->status;
	ev.reason = "吊销 (test)";
	ev.licence = sl;
	size_t n = qiao__v1__licence_event__get_packed_size(&ev);
	uint8_t *b = malloc(n);
	qiao__v1__licence_event__pack(&ev, b);
	qiao__v1__signed_licence__free_unpacked(sl, NULL);
	struct qiao_call c = {.service = GWM "/licence-publish.v1", .user_id = "system", .purpose = "证照变更",
			      .body_type = "qiao.v1.LicenceEvent", .body = b, .body_len = n, .timeout_ms = 3000};
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(issuer, &c, &r);
	int code = rc != 0 ? -1 : r->kind == QIAO_RESULT_RESPONSE ? 0 : r->error.code;
	if (code != 0)
		h_show_result("publish", rc, r);
	qiao_result_free(&r);
	free(b);
	return code;
}

static json_t *s_status(void)
{
	char q_bin[PATH_MAX], out[65536];
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN"));
	char *argv[] = {q_bin, "status", "--socket", h_admin, "--json", NULL};
	if (!h_exited_0(h_run(argv, out, sizeof out)))
		return NULL;
	return json_loads(out, 0, NULL);
}

static void s_write_config(void)
{
	char t[8192];
	snprintf(t, sizeof t,
		 "gateway: { member = \"" GWM "\"; key_file = \"%s\"; listen = [ \"%s\" ];\n"
		 "  store = \"store\"; admin_socket = \"admin.sock\"; };\n"
		 "limits: { heartbeat_ms = %d; heartbeat_liveness = 3; };\n"
		 "cache: { licence_fresh_ms = 1500; stale_max_ms = 60000; subscribers = [ \"" SUB "\" ]; };\n"
		 "members = (\n"
		 "  { id = \"" ISSUER "\"; name = \"登记中心\"; curve_public = \"%s\"; sign_public = \"%s\";\n"
		 "    services = ( { name = \"licence-by-id.v1\"; request = \"qiao.v1.LicenceByIdRequest\";\n"
		 "      response = \"qiao.v1.LicenceByIdReply\"; class = \"unconditional\"; idempotent = true; } ); },\n"
		 "  { id = \"" BANK_B "\"; name = \"银行B\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		 "  { id = \"" SUB "\"; name = \"银行A\"; curve_public = \"%s\"; sign_public = \"%s\";\n"
		 "    services = ( { name = \"licence-notify.v1\"; request = \"qiao.v1.LicenceEvent\";\n"
		 "      response = \"qiao.v1.Empty\"; class = \"unconditional\"; } ); }\n"
		 ");\n"
		 "policy = (\n"
		 "  { consumer = \"" BANK_B "\"; service = \"" ISSUER "/licence-by-id.v1\"; class = \"unconditional\";\n"
		 "    serve_stale = true; }\n"
		 ");\n",
		 strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, check_ms(200), h_m[M_PRV].curve_b64,
		 h_m[M_PRV].sign_b64, h_m[M_BANK_B].curve_b64, h_m[M_BANK_B].sign_b64, h_m[M_BANK_A].curve_b64,
		 h_m[M_BANK_A].sign_b64);
	h_write_file(h_conf, t);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("cache") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	for (int i = 0; i < 3; i++) {
		s_make_id(i + 1, L[i].id);
		char why[200];
		CHECK_RC(qiao_id_check_licence(L[i].id, why, sizeof why));
		L[i].version = 1;
		L[i].status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID;
	}
	L[1].bad_sig = 1;
	for (int i = 0; i < 3; i++)
		s_sign(&L[i]);
	s_write_config();
	qiao_adapter_t *issuer = NULL, *bank = NULL, *sub = NULL;
	bool up = h_gw_start() == 0 && (issuer = s_issuer()) != NULL;
	if (up) {
		bank = h_adapter(M_BANK_B, "bank", 1);
		up = bank && qiao_adapter_start(bank) == 0 && qiao_adapter_wait_connected(bank, 10000) == 0;
	}
	CHECK(up);
	if (!up) {
		h_log_show(NULL, 40);
		goto out;
	}

	/* 1. miss, then hit */
	struct got g1 = s_lookup(bank, L[0].id, 0);
	CHECK(g1.code == 0 && strcmp(g1.responder, ISSUER) == 0 && !g1.from_cache);
	CHECK(atomic_load(&s_issuer_calls) == 1);
	struct got g2 = s_lookup(bank, L[0].id, 0);
	CHECK(g2.code == 0 && strcmp(g2.responder, GWM) == 0 && g2.from_cache && !g2.stale && g2.version == 1);
	CHECK(atomic_load(&s_issuer_calls) == 1); /* the issuer was not asked */
	printf("miss then hit: first from %s, then from %s (cached version %llu); issuer asked %d time(s)\n",
	       g1.responder, g2.responder, (unsigned long long)g2.version, atomic_load(&s_issuer_calls));

	/* 2. a bad issuer signature: never cached, never served */
	for (int k = 0; k < 2; k++) {
		struct got gb = s_lookup(bank, L[1].id, 0);
		CHECK(gb.code == QIAO__V1__ERROR_CODE__BAD_SIGNATURE && strcmp(gb.responder, GWM) == 0);
	}
	CHECK(atomic_load(&s_issuer_calls) == 3); /* asked again: nothing was cached */
	CHECK(h_log_has("cache.refused"));

	/* 3. revocation while the subscriber is offline */
	pthread_mutex_lock(&s_mu);
	L[0].version = 2;
	L[0].status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED;
	s_sign(&L[0]);
	pthread_mutex_unlock(&s_mu);
	CHECK(s_publish(issuer, &L[0], QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_REVOKED) == 0);
	struct got g3 = s_lookup(bank, L[0].id, 0);
	CHECK(g3.code == 0 && g3.from_cache && g3.version == 2 &&
	      g3.status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED);
	printf("after the revocation: served from %s, version %llu, status %d (07 吊销)\n", g3.responder,
	       (unsigned long long)g3.version, g3.status);
	/* a forged event (bad signature) is refused and changes nothing */
	struct lic forged = L[0];
	forged.signed_bytes = NULL;
	forged.version = 3;
	forged.status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID;
	forged.bad_sig = 1;
	s_sign(&forged);
	CHECK(s_publish(issuer, &forged, QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_REINSTATED) ==
	      QIAO__V1__ERROR_CODE__BAD_SIGNATURE);
	free(forged.signed_bytes);
	struct got g4 = s_lookup(bank, L[0].id, 0);
	CHECK(g4.code == 0 && g4.version == 2 && g4.status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED);

	/* the subscriber connects after the fact and receives it */
	sub = s_subscriber();
	CHECK(sub != NULL);
	int64_t until = h_now() + 5000;
	int n = 0;
	while (h_now() < until) {
		pthread_mutex_lock(&s_mu);
		n = s_nevents;
		pthread_mutex_unlock(&s_mu);
		if (n >= 1)
			break;
		h_sleep_ms(20);
	}
	CHECK(n == 1 && strcmp(s_events[0], L[0].id) == 0 && s_event_versions[0] == 2);
	printf("subscriber offline during the revocation: received %d event(s) after connecting\n", n);
	/* and one published while it is online */
	pthread_mutex_lock(&s_mu);
	L[2].version = 2;
	L[2].status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_SUSPENDED;
	s_sign(&L[2]);
	pthread_mutex_unlock(&s_mu);
	struct got g5 = s_lookup(bank, L[2].id, 0); /* not cached yet: from the issuer */
	CHECK(g5.code == 0 && !g5.from_cache && g5.version == 2);
	CHECK(s_publish(issuer, &L[2], QIAO__V1__LICENCE_EVENT_TYPE__LICENCE_EVENT_TYPE_SUSPENDED) == 0);
	WAIT_FOR(s_nevents >= 2, 5000);
	CHECK(s_nevents == 2 && strcmp(s_events[1], L[2].id) == 0);

	/* 4. stale: the issuer goes away; after the freshness window */
	qiao_adapter_destroy(&issuer);
	h_sleep_ms(1700);
	struct got g6 = s_lookup(bank, L[2].id, 0);
	CHECK(g6.code == QIAO__V1__ERROR_CODE__NO_INSTANCE);
	struct got g7 = s_lookup(bank, L[2].id, 1);
	CHECK(g7.code == 0 && g7.from_cache && g7.stale && g7.version == 2);
	printf("issuer offline: without allow_stale %d (NO_INSTANCE), with it: from cache, stale=%d\n", g6.code,
	       g7.stale);

	/* 5. the counters */
	json_t *st = s_status();
	json_t *ca = st ? json_object_get(st, "cache") : NULL;
	CHECK(ca != NULL);
	if (ca) {
		json_int_t hits = json_integer_value(json_object_get(ca, "hits"));
		json_int_t misses = json_integer_value(json_object_get(ca, "misses"));
		json_int_t stale = json_integer_value(json_object_get(ca, "stale_served"));
		json_int_t refused = json_integer_value(json_object_get(ca, "refused_unverified"));
		printf("qiao status: %lld hits, %lld misses, %lld stale, %lld refused\n", (long long)hits,
		       (long long)misses, (long long)stale, (long long)refused);
		CHECK(hits == 3);   /* g2, g3, g4 */
		CHECK(misses == 2); /* g1, g5 */
		CHECK(stale == 1);  /* g7 */
		CHECK(refused == 3); /* two answers and one forged event */
		json_t *subs = json_object_get(ca, "subscribers");
		CHECK(json_array_size(subs) == 1 &&
		      json_integer_value(json_object_get(json_array_get(subs, 0), "behind")) == 0);
	}
	json_decref(st);
	/* the human table shows them too */
	char q_bin[PATH_MAX], out[65536];
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN"));
	char *argv[] = {q_bin, "status", "--socket", h_admin, NULL};
	CHECK(h_exited_0(h_run(argv, out, sizeof out)));
	CHECK(strstr(out, "cache:") != NULL);
out:
	qiao_adapter_destroy(&issuer);
	qiao_adapter_destroy(&bank);
	qiao_adapter_destroy(&sub);
	if (h_gw_pid > 0)
		CHECK(h_exited_0(h_gw_stop(10000)));
	/* the audit log has the cache hits and the invalidations */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/store", h_dir);
	char *av[] = {q_bin, "audit", "verify", "--store", dir, NULL};
	CHECK(h_exited_0(h_run(av, out, sizeof out)));
	for (int i = 0; i < 3; i++)
		free(L[i].signed_bytes);
	h_teardown();
	return check_done();
}
