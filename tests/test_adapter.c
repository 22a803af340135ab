/*
 * libqiao-adapter (adapters/) against a fake gateway that lives in this
 * test: a ROUTER with CURVE server security and a ZAP handler thread that
 * admits the registered CURVE keys only.  It answers READY with WELCOME
 * (a directory with both members' signing keys), relays envelopes between
 * two adapters of this process (a requester and a provider), heartbeats,
 * and on the test's command misbehaves: swallows requests, forges answers,
 * sends garbage, freezes, closes its socket and binds again.
 */
#include "check.h"
#include "control.pb-c.h"
#include "qiao_adapter.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define REQ "91150600MA0C9012X7/bank"       /* the requester, adapter A */
#define PRV "12150600MB0A12342K/realestate" /* the provider, adapter B */
#define GWM "11150600MB0E78900J/gateway"    /* the fake gateway */
#define STRANGER "91150600MA0B56780F/bank"  /* a key the gateway does not know */
#define HB_MS 300

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(cond, ms)                                                       \
	do {                                                                     \
		int64_t until_ = now_ms() + (ms);                                \
		while (!(cond) && now_ms() < until_)                             \
			usleep(5000);                                            \
	} while (0)

/* ---- the fake gateway --------------------------------------------------- */

#define GW_CONNS 32
#define GW_REG 2

struct conn {
	uint8_t rid[256];
	size_t rid_len;
	char member[QIAO_MEMBER_MAX];
	uint64_t seen; /* sequence of the last message: the newest connection wins */
	char services[16][80];
	size_t n_services;
	bool bye; /* said BYE: nothing new is routed to it */
};

struct inject {
	struct inject *next;
	char member[QIAO_MEMBER_MAX];
	size_t n;
	uint8_t *data[16];
	size_t len[16];
};

/* Copy of the frames of an envelope the gateway relayed. */
struct copy {
	uint8_t *f[4];
	size_t len[4];
};

struct gw {
	void *ctx, *router;
	pthread_t th, zap_th;
	int port;
	char endpoint[64];
	uint8_t curve_pk[32], curve_sk[32];
	char curve_pk_b64[45];
	qiao_keys_t *sign; /* the gateway's signing key */
	qiao_keys_t *reg[GW_REG]; /* registered members (public parts used) */
	uint64_t seq;
	struct conn conns[GW_CONNS]; /* gateway thread only */
	size_t n_conns;

	pthread_mutex_t mu; /* guards everything below */
	bool stop, want_down, want_up, up, zap_ready;
	int freeze_ms;
	int ready[GW_REG], bye[GW_REG], heartbeats[GW_REG];
	char ready_services[GW_REG][16][80];
	size_t n_ready_services[GW_REG];
	int zap_denied, zap_allowed;
	int envelopes_ok, envelopes_bad;
	struct copy last_req, last_answer;
	int last_answer_code; /* ErrorReply code of the last ERROR relayed, 0 for RESPONSE */
	struct inject *inj;
};

static int s_reg_index(struct gw *g, const char *member)
{
	for (int i = 0; i < GW_REG; i++)
		if (strcmp(g->reg[i]->member, member) == 0)
			return i;
	return -1;
}

static void s_copy_set(struct copy *c, const struct qiao_frame *f)
{
	for (int i = 0; i < 4; i++) {
		free(c->f[i]);
		c->f[i] = malloc(f[i].len ? f[i].len : 1);
		memcpy(c->f[i], f[i].len ? f[i].data : "", f[i].len);
		c->len[i] = f[i].len;
	}
}

static void s_copy_free(struct copy *c)
{
	for (int i = 0; i < 4; i++) {
		free(c->f[i]);
		c->f[i] = NULL;
	}
}

/* ZAP (RFC 27): admit a CURVE key listed in the registry, as its member. */
static void *s_zap_main(void *arg)
{
	struct gw *g = arg;
	void *z = zmq_socket(g->ctx, ZMQ_REP);
	int linger = 0;
	zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
	int rc = zmq_bind(z, "inproc://zeromq.zap.01");
	pthread_mutex_lock(&g->mu);
	g->zap_ready = true;
	pthread_mutex_unlock(&g->mu);
	if (rc != 0) {
		fprintf(stderr, "zap bind: %s\n", zmq_strerror(errno));
		zmq_close(z);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&g->mu);
		bool stop = g->stop;
		pthread_mutex_unlock(&g->mu);
		if (stop)
			break;
		zmq_pollitem_t it = {z, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 50) <= 0)
			continue;
		char part[8][300];
		size_t plen[8];
		int n = 0, more = 1;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, z, 0) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (n < 8) {
				plen[n] = zmq_msg_size(&m) < 300 ? zmq_msg_size(&m) : 300;
				memcpy(part[n], zmq_msg_data(&m), plen[n]);
				n++;
			}
			zmq_msg_close(&m);
		}
		/* version, request id, domain, address, identity, mechanism, key */
		const char *user = "";
		bool ok = false;
		if (n == 7 && plen[5] == 5 && memcmp(part[5], "CURVE", 5) == 0 && plen[6] == 32)
			for (int i = 0; i < GW_REG; i++)
				if (memcmp(g->reg[i]->curve_pk, part[6], 32) == 0) {
					user = g->reg[i]->member;
					ok = true;
				}
		pthread_mutex_lock(&g->mu);
		if (ok)
			g->zap_allowed++;
		else
			g->zap_denied++;
		pthread_mutex_unlock(&g->mu);
		zmq_send(z, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(z, part[1], n > 1 ? plen[1] : 0, ZMQ_SNDMORE);
		zmq_send(z, ok ? "200" : "400", 3, ZMQ_SNDMORE);
		zmq_send(z, ok ? "OK" : "unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
		zmq_send(z, user, strlen(user), ZMQ_SNDMORE);
		zmq_send(z, "", 0, 0);
	}
	zmq_close(z);
	return NULL;
}

static int s_gw_bind(struct gw *g)
{
	void *r = zmq_socket(g->ctx, ZMQ_ROUTER);
	int one = 1, linger = 0;
	zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
	zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, g->curve_sk, 32);
	zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof linger);
	char ep[64];
	if (g->port)
		snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", g->port);
	else
		snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
	/* The old listening socket closes asynchronously: retry a moment. */
	int rc = -1;
	for (int i = 0; i < 200 && rc != 0; i++) {
		rc = zmq_bind(r, ep);
		if (rc != 0)
			usleep(10000);
	}
	if (rc != 0) {
		fprintf(stderr, "fake gateway: bind %s: %s\n", ep, zmq_strerror(errno));
		zmq_close(r);
		return -1;
	}
	if (!g->port) {
		char last[64];
		size_t l = sizeof last;
		zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, last, &l);
		g->port = atoi(strrchr(last, ':') + 1);
		snprintf(g->endpoint, sizeof g->endpoint, "tcp://127.0.0.1:%d", g->port);
	}
	g->router = r;
	return 0;
}

static struct conn *s_conn_of(struct gw *g, const char *member)
{
	struct conn *best = NULL;
	for (size_t i = 0; i < g->n_conns; i++)
		if (!g->conns[i].bye && strcmp(g->conns[i].member, member) == 0 &&
		    (!best || g->conns[i].seen > best->seen))
			best = &g->conns[i];
	return best;
}

static void s_gw_send(struct gw *g, const struct conn *c, const struct qiao_frame *f, size_t n)
{
	if (!c || !g->router)
		return;
	zmq_send(g->router, c->rid, c->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	for (size_t i = 0; i < n; i++)
		zmq_send(g->router, f[i].len ? f[i].data : "", f[i].len,
			 ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0));
}

static void s_gw_send_env(struct gw *g, const struct conn *c, const qiao_envelope_t *e)
{
	struct qiao_frame f[4];
	qiao_envelope_frames(e, f);
	s_gw_send(g, c, f, 4);
}

static void s_gw_welcome(struct gw *g, struct conn *c, const Qiao__V1__Ready *r)
{
	Qiao__V1__Welcome w = QIAO__V1__WELCOME__INIT;
	Qiao__V1__MemberKey mk[GW_REG], *mkp[GW_REG];
	char acc[16][200];
	char *accp[16];
	w.member = c->member;
	w.gateway = GWM;
	w.gateway_sign_public.data = g->sign->sign_pk;
	w.gateway_sign_public.len = 32;
	w.heartbeat_ms = HB_MS;
	w.liveness = 3;
	w.max_header = 16384;
	w.max_body = 4 << 20;
	w.max_skew_ms = 60000;
	c->n_services = 0;
	for (size_t i = 0; i < r->n_services && i < 16; i++) {
		snprintf(c->services[i], sizeof c->services[i], "%s", r->services[i]);
		snprintf(acc[i], sizeof acc[i], "%s/%s", c->member, r->services[i]);
		accp[i] = acc[i];
		c->n_services++;
	}
	w.accepted = accp;
	w.n_accepted = c->n_services;
	for (int i = 0; i < GW_REG; i++) {
		qiao__v1__member_key__init(&mk[i]);
		mk[i].member = g->reg[i]->member;
		mk[i].sign_public.data = g->reg[i]->sign_pk;
		mk[i].sign_public.len = 32;
		mkp[i] = &mk[i];
	}
	w.directory = mkp;
	w.n_directory = GW_REG;
	uint8_t buf[8192], cmd[QIAO_CMD_LEN];
	size_t len = qiao__v1__welcome__pack(&w, buf);
	qiao_cmd_make(QIAO_CMD_WELCOME, cmd);
	struct qiao_frame f[2] = {{cmd, sizeof cmd}, {buf, len}};
	s_gw_send(g, c, f, 2);
}

/* The gateway's own ERROR to a request. */
static void s_gw_error(struct gw *g, const qiao_envelope_t *req, int code, const char *rule)
{
	Qiao__V1__ErrorReply er = QIAO__V1__ERROR_REPLY__INIT;
	er.code = code;
	er.message = "no policy rule grants this call";
	er.missing_rule = (char *)rule;
	er.origin = GWM;
	uint8_t body[512];
	size_t n = qiao__v1__error_reply__pack(&er, body);
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__ERROR, GWM, &h, store);
	h.body_type = "qiao.v1.ErrorReply";
	qiao_envelope_t *e = NULL;
	char why[200];
	if (qiao_envelope_seal(&h, body, n, g->sign->sign_sk, NULL, &e, why, sizeof why) == 0)
		s_gw_send_env(g, s_conn_of(g, req->hdr->sender), e);
	qiao_envelope_destroy(&e);
}

/* A RESPONSE to `req` claiming to be from `claimed`, signed with `sk`. */
static void s_gw_fake_answer(struct gw *g, const qiao_envelope_t *req, const char *claimed, const uint8_t *sk)
{
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__RESPONSE, claimed, &h, store);
	h.body_type = "test.v1.Forged";
	qiao_envelope_t *e = NULL;
	char why[200];
	if (qiao_envelope_seal(&h, "forged", 6, sk, NULL, &e, why, sizeof why) == 0)
		s_gw_send_env(g, s_conn_of(g, req->hdr->sender), e);
	qiao_envelope_destroy(&e);
}

static void s_gw_envelope(struct gw *g, struct conn *c, const struct qiao_frame *f, size_t n)
{
	qiao_envelope_t *e = NULL;
	char why[200];
	int ri = s_reg_index(g, c->member);
	bool ok = qiao_envelope_open(f, n, NULL, &e, why, sizeof why) == 0 && ri >= 0 &&
		  strcmp(e->hdr->sender, c->member) == 0 && qiao_envelope_verify(e, g->reg[ri]->sign_pk) == 0;
	pthread_mutex_lock(&g->mu);
	if (ok)
		g->envelopes_ok++;
	else
		g->envelopes_bad++;
	if (ok && e->hdr->kind == QIAO__V1__MESSAGE_KIND__REQUEST)
		s_copy_set(&g->last_req, f);
	if (ok && e->hdr->kind != QIAO__V1__MESSAGE_KIND__REQUEST) {
		s_copy_set(&g->last_answer, f);
		g->last_answer_code = 0;
		if (e->hdr->kind == QIAO__V1__MESSAGE_KIND__ERROR) {
			Qiao__V1__ErrorReply *er = qiao__v1__error_reply__unpack(NULL, e->body_len, e->body);
			g->last_answer_code = er ? (int)er->code : -1;
			if (er)
				qiao__v1__error_reply__free_unpacked(er, NULL);
		}
	}
	pthread_mutex_unlock(&g->mu);
	if (!ok) {
		qiao_envelope_destroy(&e);
		return;
	}
	const Qiao__V1__Header *h = e->hdr;
	if (h->kind != QIAO__V1__MESSAGE_KIND__REQUEST) {
		s_gw_send(g, s_conn_of(g, h->recipient), f, 4);
		qiao_envelope_destroy(&e);
		return;
	}
	/* Route a request: "<member>/<name>" or an alias offered by someone. */
	const char *slash = strrchr(h->service, '/');
	const char *name = slash ? slash + 1 : h->service;
	struct conn *to = NULL;
	if (slash) {
		char member[QIAO_MEMBER_MAX];
		snprintf(member, sizeof member, "%.*s", (int)(slash - h->service), h->service);
		to = s_conn_of(g, member);
	} else {
		for (size_t i = 0; i < g->n_conns; i++)
			for (size_t k = 0; k < g->conns[i].n_services; k++)
				if (!g->conns[i].bye && strcmp(g->conns[i].services[k], name) == 0 &&
				    (!to || g->conns[i].seen > to->seen))
					to = &g->conns[i];
	}
	if (strcmp(name, "sink.v1") == 0) {
		/* swallowed: the requester's local timeout must end the call */
	} else if (strcmp(name, "gwerror.v1") == 0) {
		s_gw_error(g, e, QIAO__V1__ERROR_CODE__POLICY_DENIED, "allow " REQ " -> gwerror.v1");
	} else if (strcmp(name, "forge.v1") == 0) {
		uint8_t pk[32], sk[64];
		crypto_sign_keypair(pk, sk);
		s_gw_fake_answer(g, e, PRV, sk);
	} else if (strcmp(name, "wrongsigner.v1") == 0) {
		/* validly signed, but by the requester itself, not the provider */
		s_gw_fake_answer(g, e, REQ, g->reg[0]->sign_sk);
	} else if (!to) {
		s_gw_error(g, e, QIAO__V1__ERROR_CODE__NO_INSTANCE, "");
	} else {
		s_gw_send(g, to, f, 4);
	}
	qiao_envelope_destroy(&e);
}

static void s_gw_message(struct gw *g, zmq_msg_t *m, size_t n)
{
	/* The ZAP user id comes with the frames the peer sent, not with the
	 * routing id the ROUTER prepends. */
	const char *user = n >= 2 ? zmq_msg_gets(&m[1], "User-Id") : NULL;
	if (!user || zmq_msg_size(&m[0]) > sizeof g->conns[0].rid)
		return;
	struct conn *c = NULL;
	for (size_t i = 0; i < g->n_conns && !c; i++)
		if (g->conns[i].rid_len == zmq_msg_size(&m[0]) &&
		    memcmp(g->conns[i].rid, zmq_msg_data(&m[0]), g->conns[i].rid_len) == 0)
			c = &g->conns[i];
	if (!c) {
		if (g->n_conns == GW_CONNS)
			memmove(g->conns, g->conns + 1, --g->n_conns * sizeof *g->conns);
		c = &g->conns[g->n_conns++];
		memset(c, 0, sizeof *c);
		c->rid_len = zmq_msg_size(&m[0]);
		memcpy(c->rid, zmq_msg_data(&m[0]), c->rid_len);
		snprintf(c->member, sizeof c->member, "%s", user);
	}
	c->seen = ++g->seq;
	struct qiao_frame f[8];
	for (size_t i = 1; i < n; i++)
		f[i - 1] = (struct qiao_frame){zmq_msg_data(&m[i]), zmq_msg_size(&m[i])};
	uint8_t cmd;
	if (qiao_cmd_parse(&f[0], &cmd) != 0)
		return;
	int ri = s_reg_index(g, c->member);
	if (cmd == QIAO_CMD_READY && n == 3) {
		Qiao__V1__Ready *r = qiao__v1__ready__unpack(NULL, f[1].len, f[1].data);
		if (!r)
			return;
		pthread_mutex_lock(&g->mu);
		if (ri >= 0) {
			g->ready[ri]++;
			g->n_ready_services[ri] = 0;
			for (size_t i = 0; i < r->n_services && i < 16; i++)
				snprintf(g->ready_services[ri][g->n_ready_services[ri]++], 80, "%s", r->services[i]);
		}
		pthread_mutex_unlock(&g->mu);
		s_gw_welcome(g, c, r);
		qiao__v1__ready__free_unpacked(r, NULL);
	} else if (cmd == QIAO_CMD_HEARTBEAT || cmd == QIAO_CMD_BYE) {
		pthread_mutex_lock(&g->mu);
		if (ri >= 0)
			(cmd == QIAO_CMD_BYE ? g->bye : g->heartbeats)[ri]++;
		pthread_mutex_unlock(&g->mu);
		if (cmd == QIAO_CMD_BYE)
			c->bye = true;
	} else if (cmd == QIAO_CMD_ENVELOPE) {
		s_gw_envelope(g, c, f, n - 1);
	}
}

static void *s_gw_main(void *arg)
{
	struct gw *g = arg;
	int64_t next_hb = now_ms() + HB_MS;
	for (;;) {
		pthread_mutex_lock(&g->mu);
		bool stop = g->stop, down = g->want_down, up = g->want_up;
		int freeze = g->freeze_ms;
		struct inject *inj = g->inj;
		g->inj = NULL;
		g->want_down = g->want_up = false;
		g->freeze_ms = 0;
		pthread_mutex_unlock(&g->mu);
		if (stop)
			break;
		if (down && g->router) {
			zmq_close(g->router);
			g->router = NULL;
			g->n_conns = 0;
		}
		if (up && !g->router)
			s_gw_bind(g);
		pthread_mutex_lock(&g->mu);
		g->up = g->router != NULL;
		pthread_mutex_unlock(&g->mu);
		if (freeze)
			usleep((useconds_t)freeze * 1000);
		while (inj) {
			struct inject *x = inj;
			inj = x->next;
			struct qiao_frame f[16];
			for (size_t i = 0; i < x->n; i++)
				f[i] = (struct qiao_frame){x->data[i], x->len[i]};
			s_gw_send(g, s_conn_of(g, x->member), f, x->n);
			for (size_t i = 0; i < x->n; i++)
				free(x->data[i]);
			free(x);
		}
		if (!g->router) {
			usleep(10000);
			continue;
		}
		if (now_ms() >= next_hb) {
			uint8_t cmd[QIAO_CMD_LEN];
			qiao_cmd_make(QIAO_CMD_HEARTBEAT, cmd);
			struct qiao_frame f = {cmd, sizeof cmd};
			for (size_t i = 0; i < g->n_conns; i++)
				s_gw_send(g, &g->conns[i], &f, 1);
			next_hb = now_ms() + HB_MS;
		}
		zmq_pollitem_t it = {g->router, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 20) <= 0)
			continue;
		for (int k = 0; k < 100; k++) {
			zmq_msg_t m[9];
			size_t n = 0;
			int more = 1;
			while (more) {
				zmq_msg_t t;
				zmq_msg_init(&t);
				if (zmq_msg_recv(&t, g->router, ZMQ_DONTWAIT) < 0) {
					zmq_msg_close(&t);
					break;
				}
				more = zmq_msg_more(&t);
				if (n < 9) {
					zmq_msg_init(&m[n]);
					zmq_msg_move(&m[n++], &t);
				}
				zmq_msg_close(&t);
			}
			if (n == 0)
				break;
			s_gw_message(g, m, n);
			for (size_t i = 0; i < n; i++)
				zmq_msg_close(&m[i]);
		}
	}
	if (g->router)
		zmq_close(g->router);
	return NULL;
}

static void s_gw_start(struct gw *g, qiao_keys_t *a, qiao_keys_t *b)
{
	memset(g, 0, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	crypto_box_keypair(g->curve_pk, g->curve_sk);
	qiao_b64_32(g->curve_pk, g->curve_pk_b64);
	CHECK_RC(qiao_keys_generate(GWM, &g->sign));
	g->reg[0] = a;
	g->reg[1] = b;
	g->ctx = zmq_ctx_new();
	pthread_create(&g->zap_th, NULL, s_zap_main, g);
	bool ready = false;
	while (!ready) {
		pthread_mutex_lock(&g->mu);
		ready = g->zap_ready;
		pthread_mutex_unlock(&g->mu);
		usleep(1000);
	}
	CHECK(s_gw_bind(g) == 0);
	g->up = true;
	pthread_create(&g->th, NULL, s_gw_main, g);
}

static void s_gw_stop(struct gw *g)
{
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->th, NULL);
	pthread_join(g->zap_th, NULL);
	zmq_ctx_term(g->ctx);
	s_copy_free(&g->last_req);
	s_copy_free(&g->last_answer);
	while (g->inj) {
		struct inject *x = g->inj;
		g->inj = x->next;
		for (size_t i = 0; i < x->n; i++)
			free(x->data[i]);
		free(x);
	}
	qiao_keys_destroy(&g->sign);
	pthread_mutex_destroy(&g->mu);
}

static int s_gw_get(struct gw *g, const int *field)
{
	pthread_mutex_lock(&g->mu);
	int v = *field;
	pthread_mutex_unlock(&g->mu);
	return v;
}

static bool s_gw_is_up(struct gw *g)
{
	pthread_mutex_lock(&g->mu);
	bool v = g->up;
	pthread_mutex_unlock(&g->mu);
	return v;
}

/* Queue a message for the gateway to send to `member`. */
static void s_gw_inject(struct gw *g, const char *member, const struct qiao_frame *f, size_t n)
{
	struct inject *x = calloc(1, sizeof *x);
	snprintf(x->member, sizeof x->member, "%s", member);
	x->n = n;
	for (size_t i = 0; i < n; i++) {
		x->data[i] = malloc(f[i].len ? f[i].len : 1);
		memcpy(x->data[i], f[i].len ? f[i].data : "", f[i].len);
		x->len[i] = f[i].len;
	}
	pthread_mutex_lock(&g->mu);
	struct inject **pp = &g->inj;
	while (*pp)
		pp = &(*pp)->next;
	*pp = x;
	pthread_mutex_unlock(&g->mu);
}

static void s_gw_inject_env(struct gw *g, const char *member, const qiao_envelope_t *e)
{
	struct qiao_frame f[4];
	qiao_envelope_frames(e, f);
	s_gw_inject(g, member, f, 4);
}

/* ---- adapters under test ------------------------------------------------ */

static char s_dir[64];
static struct gw G;
static qiao_keys_t *KA, *KB, *KC; /* requester, provider, stranger */
static qiao_adapter_t *A, *B;

/* Log lines of every adapter, for checks on what was logged. */
static pthread_mutex_t s_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char s_log[1 << 16];
static size_t s_log_len;

static void s_log_sink(void *arg, enum qiao_log_level lvl, const char *msg)
{
	pthread_mutex_lock(&s_log_mu);
	int n = snprintf(s_log + s_log_len, sizeof s_log - s_log_len, "%s %d %s\n", (const char *)arg,
			 (int)lvl, msg);
	if (n > 0 && s_log_len + (size_t)n < sizeof s_log)
		s_log_len += (size_t)n;
	else
		s_log_len = 0; /* wrap: only recent lines matter */
	pthread_mutex_unlock(&s_log_mu);
	if (getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "[%s] %d %s\n", (const char *)arg, (int)lvl, msg);
}

static bool s_logged(const char *needle)
{
	pthread_mutex_lock(&s_log_mu);
	s_log[s_log_len] = '\0';
	bool v = strstr(s_log, needle) != NULL;
	pthread_mutex_unlock(&s_log_mu);
	return v;
}

static struct qiao_adapter_stats st(qiao_adapter_t *a)
{
	struct qiao_adapter_stats s;
	qiao_adapter_stats(a, &s);
	return s;
}

static char *s_keyfile(const char *name, qiao_keys_t *k)
{
	static char paths[8][128];
	static int np;
	char *p = paths[np++];
	snprintf(p, 128, "%s/%s.key", s_dir, name);
	CHECK_RC(qiao_keys_save(k, p));
	return p;
}

static qiao_adapter_t *s_adapter(const char *key_file, const char *label, uint32_t max_pending)
{
	struct qiao_adapter_opts o = {
		.endpoint = G.endpoint,
		.key_file = key_file,
		.gateway_curve_public = G.curve_pk_b64,
		.instance = label,
		.max_pending_calls = max_pending,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 400,
		.hello_timeout_ms = 1000,
		.call_grace_ms = 200,
		.drain_ms = 500,
		.handler_threads = 2,
		.log = s_log_sink,
		.log_arg = (void *)label,
		.log_level = QIAO_LOG_DEBUG,
	};
	qiao_adapter_t *a = NULL;
	char err[300];
	int rc = qiao_adapter_new(&o, &a, err, sizeof err);
	CHECK_RC(rc);
	if (rc)
		fprintf(stderr, "adapter: %s\n", err);
	return a;
}

/* What the provider's handlers saw. */
static pthread_mutex_t s_seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char s_seen_user[200], s_seen_purpose[300], s_seen_requester[100], s_seen_service[100];
static size_t s_seen_subjects;
static int s_handled;

static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	pthread_mutex_lock(&s_seen_mu);
	snprintf(s_seen_user, sizeof s_seen_user, "%s", req->hdr->user_id);
	snprintf(s_seen_purpose, sizeof s_seen_purpose, "%s", req->hdr->purpose);
	snprintf(s_seen_requester, sizeof s_seen_requester, "%s", req->requester);
	snprintf(s_seen_service, sizeof s_seen_service, "%s", req->service);
	s_seen_subjects = req->hdr->n_subjects;
	s_handled++;
	pthread_mutex_unlock(&s_seen_mu);
	CHECK(qiao_responder_request(r) == req);
	CHECK_RC(qiao_respond(&r, req->body, req->body_len));
	CHECK(r == NULL);
}

static void on_notfound(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	(void)req;
	CHECK_RC(qiao_respond_error(&r, QIAO__V1__ERROR_CODE__NOT_FOUND, "no title for this unit", "unit_no"));
}

/* An asynchronous provider: answers from another thread, later. */
static void *s_later_thread(void *arg)
{
	struct qiao_responder *r = arg;
	usleep(50000);
	const struct qiao_request *req = qiao_responder_request(r);
	char body[64];
	int n = snprintf(body, sizeof body, "later:%.*s", (int)req->body_len, (const char *)req->body);
	CHECK_RC(qiao_respond(&r, body, (size_t)n));
	return NULL;
}

static void on_later(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	(void)req;
	pthread_t t;
	pthread_create(&t, NULL, s_later_thread, r);
	pthread_detach(t);
}

/* A slow provider, and one that keeps its responder without answering. */
static void on_slow(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	usleep(300000);
	CHECK_RC(qiao_respond(&r, req->body, req->body_len));
}

static struct qiao_responder *s_held;

static void on_hold(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	(void)req;
	pthread_mutex_lock(&s_seen_mu);
	s_held = r;
	pthread_mutex_unlock(&s_seen_mu);
}

/* Collects asynchronous results. */
struct collector {
	pthread_mutex_t mu;
	int n;
	struct qiao_result *res[32];
};
static struct collector s_col = {PTHREAD_MUTEX_INITIALIZER, 0, {0}};

static void on_done(void *arg, struct qiao_result *res)
{
	struct collector *c = arg;
	pthread_mutex_lock(&c->mu);
	if (c->n < 32)
		c->res[c->n++] = res;
	else
		qiao_result_free(&res);
	pthread_mutex_unlock(&c->mu);
}

static int s_collected(void)
{
	pthread_mutex_lock(&s_col.mu);
	int n = s_col.n;
	pthread_mutex_unlock(&s_col.mu);
	return n;
}

static void s_collector_reset(void)
{
	pthread_mutex_lock(&s_col.mu);
	for (int i = 0; i < s_col.n; i++)
		qiao_result_free(&s_col.res[i]);
	s_col.n = 0;
	pthread_mutex_unlock(&s_col.mu);
}

static struct qiao_call s_call(const char *service, const char *body, uint32_t timeout_ms)
{
	struct qiao_call c = {
		.service = service,
		.user_id = "staff-0042",
		.purpose = "带押过户 新贷款审批",
		.legal_basis = "民法典第406条",
		.case_id = "case-2026-000001",
		.body_type = "test.v1.Text",
		.body = body,
		.body_len = strlen(body),
		.timeout_ms = timeout_ms,
	};
	return c;
}

/* ---- the checks --------------------------------------------------------- */

static void test_new_refuses(void)
{
	qiao_keys_t *k = NULL;
	CHECK_RC(qiao_keys_generate(REQ, &k));
	char *path = s_keyfile("loose", k);
	chmod(path, 0644);
	struct qiao_adapter_opts o = {.endpoint = "tcp://127.0.0.1:1", .key_file = path,
				      .gateway_curve_public = G.curve_pk_b64};
	qiao_adapter_t *a = NULL;
	char err[300];
	CHECK_ERR(qiao_adapter_new(&o, &a, err, sizeof err), QIAO_EKEYPERM);
	CHECK(a == NULL && strstr(err, "chmod 600") != NULL);
	chmod(path, 0600);
	o.gateway_curve_public = "not base64";
	CHECK_ERR(qiao_adapter_new(&o, &a, err, sizeof err), QIAO_EINVAL);
	CHECK(strstr(err, "gateway_curve_public") != NULL);
	o.gateway_curve_public = G.curve_pk_b64;
	o.endpoint = NULL;
	CHECK_ERR(qiao_adapter_new(&o, &a, err, sizeof err), QIAO_EINVAL);
	o.endpoint = "tcp://127.0.0.1:1";
	o.key_file = "/nonexistent/qiao.key";
	CHECK(qiao_adapter_new(&o, &a, err, sizeof err) < 0 && a == NULL);
	/* An adapter that is not started refuses calls and can be destroyed. */
	o.key_file = path;
	CHECK_RC(qiao_adapter_new(&o, &a, err, sizeof err));
	CHECK_ERR(qiao_adapter_offer(a, "Bad Name", "x.v1.T", on_echo, NULL), QIAO_EINVAL);
	CHECK_ERR(qiao_adapter_offer(a, "echo.v1", "not a type", on_echo, NULL), QIAO_EINVAL);
	CHECK_RC(qiao_adapter_offer(a, "echo.v1", "x.v1.T", on_echo, NULL));
	CHECK_ERR(qiao_adapter_offer(a, "echo.v1", "x.v1.T", on_echo, NULL), QIAO_EEXIST);
	struct qiao_call c = s_call(PRV "/echo.v1", "x", 1000);
	struct qiao_result *res = NULL;
	CHECK_ERR(qiao_adapter_call(a, &c, &res), QIAO_ECLOSED);
	CHECK(res && res->kind == QIAO_RESULT_LOCAL && res->status == QIAO_ECLOSED);
	qiao_result_free(&res);
	qiao_result_free(&res);
	qiao_adapter_destroy(&a);
	qiao_adapter_destroy(&a);
	CHECK(a == NULL);
	qiao_keys_destroy(&k);
}

static void test_sync_round_trip(void)
{
	struct qiao_subject subj = {QIAO_SUBJECT_RESIDENT_ID, "110105198001010016"};
	struct qiao_call c = s_call(PRV "/echo.v1", "title please", 5000);
	c.subjects = &subj;
	c.n_subjects = 1;
	struct qiao_result *res = NULL;
	uint64_t sent0 = st(A).calls_sent;
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	if (!res)
		return;
	CHECK(res->kind == QIAO_RESULT_RESPONSE);
	CHECK(res->body_len == 12 && memcmp(res->body, "title please", 12) == 0);
	CHECK(strcmp(res->responder, PRV) == 0);
	CHECK(strcmp(res->body_type, "test.v1.Echo") == 0);
	CHECK(res->hdr && res->hdr->kind == QIAO__V1__MESSAGE_KIND__RESPONSE);
	CHECK(strcmp(res->hdr->recipient, REQ) == 0);
	CHECK(res->hdr->in_reply_to.len == 16 && memcmp(res->hdr->in_reply_to.data, res->request_id, 16) == 0);
	CHECK(st(A).calls_sent == sent0 + 1);

	/* The provider's signature, checked here by hand over the exact bytes. */
	uint8_t *sb = malloc(QIAO_SIG_PREFIX_LEN + res->header_len);
	memcpy(sb, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
	memcpy(sb + QIAO_SIG_PREFIX_LEN, res->header_bytes, res->header_len);
	CHECK(crypto_sign_verify_detached(res->signature, sb, QIAO_SIG_PREFIX_LEN + res->header_len,
					  KB->sign_pk) == 0);
	CHECK(crypto_sign_verify_detached(res->signature, sb, QIAO_SIG_PREFIX_LEN + res->header_len,
					  KA->sign_pk) != 0);
	free(sb);

	/* The requester's signature on the request as the gateway received it. */
	pthread_mutex_lock(&G.mu);
	struct qiao_frame f[4];
	for (int i = 0; i < 4; i++)
		f[i] = (struct qiao_frame){G.last_req.f[i], G.last_req.len[i]};
	qiao_envelope_t *req = NULL;
	char why[200];
	CHECK_RC(qiao_envelope_open(f, 4, NULL, &req, why, sizeof why));
	pthread_mutex_unlock(&G.mu);
	if (req) {
		CHECK_RC(qiao_envelope_verify(req, KA->sign_pk));
		CHECK_ERR(qiao_envelope_verify(req, KB->sign_pk), QIAO_EBADSIG);
		CHECK(memcmp(req->hdr->message_id.data, res->request_id, 16) == 0);
		CHECK(strcmp(req->hdr->sender, REQ) == 0 && strcmp(req->hdr->user_id, "staff-0042") == 0);
		CHECK(req->hdr->deadline_ms > req->hdr->time_ms);
		uint8_t hh[32];
		qiao_envelope_header_hash(req, hh);
		CHECK(memcmp(res->hdr->request_hash.data, hh, 32) == 0);
	}
	qiao_envelope_destroy(&req);
	qiao_result_free(&res);

	pthread_mutex_lock(&s_seen_mu);
	CHECK(strcmp(s_seen_user, "staff-0042") == 0);
	CHECK(strcmp(s_seen_purpose, "带押过户 新贷款审批") == 0);
	CHECK(strcmp(s_seen_requester, REQ) == 0);
	CHECK(strcmp(s_seen_service, "echo.v1") == 0);
	CHECK(s_seen_subjects == 1);
	pthread_mutex_unlock(&s_seen_mu);

	/* By the alias, as a registered short name. */
	c = s_call("echo.v1", "alias", 5000);
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	CHECK(res && res->kind == QIAO_RESULT_RESPONSE && res->body_len == 5);
	qiao_result_free(&res);

	/* An invalid call is refused locally with a reason. */
	c = s_call(PRV "/echo.v1", "x", 5000);
	subj.id = "110105198001010017"; /* wrong check digit */
	c.subjects = &subj;
	c.n_subjects = 1;
	CHECK_ERR(qiao_adapter_call(A, &c, &res), QIAO_EIDENT);
	CHECK(res && res->kind == QIAO_RESULT_LOCAL && strstr(res->error.message, "subjects[0]"));
	qiao_result_free(&res);
	c.n_subjects = 0;
	c.user_id = NULL;
	char err[200];
	CHECK_ERR(qiao_adapter_call_async(A, &c, on_done, &s_col, err, sizeof err), QIAO_EFIELD);
	CHECK(strstr(err, "user_id") != NULL);
}

static void test_async(void)
{
	s_collector_reset();
	struct qiao_call c = s_call(PRV "/echo.v1", "async one", 5000);
	CHECK_RC(qiao_adapter_call_async(A, &c, on_done, &s_col, NULL, 0));
	c = s_call(PRV "/later.v1", "two", 5000); /* answered later, from another thread */
	CHECK_RC(qiao_adapter_call_async(A, &c, on_done, &s_col, NULL, 0));
	WAIT_FOR(s_collected() == 2, 5000);
	CHECK(s_collected() == 2);
	pthread_mutex_lock(&s_col.mu);
	int seen = 0;
	for (int i = 0; i < s_col.n; i++) {
		struct qiao_result *r = s_col.res[i];
		CHECK(r->status == 0 && r->kind == QIAO_RESULT_RESPONSE);
		if (r->body_len == 9 && memcmp(r->body, "async one", 9) == 0)
			seen |= 1;
		if (r->body_len == 9 && memcmp(r->body, "later:two", 9) == 0)
			seen |= 2;
	}
	pthread_mutex_unlock(&s_col.mu);
	CHECK(seen == 3);
	s_collector_reset();
}

static void test_error_answers(void)
{
	struct qiao_call c = s_call(PRV "/notfound.v1", "x", 5000);
	struct qiao_result *res = NULL;
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	if (res) {
		CHECK(res->kind == QIAO_RESULT_ERROR);
		CHECK(res->error.code == QIAO__V1__ERROR_CODE__NOT_FOUND);
		CHECK(strcmp(res->error.name, "NOT_FOUND") == 0);
		CHECK(strcmp(res->error.message, "no title for this unit") == 0);
		CHECK(strcmp(res->error.field, "unit_no") == 0);
		CHECK(strcmp(res->error.origin, PRV) == 0);
		CHECK(strcmp(res->body_type, "qiao.v1.ErrorReply") == 0);
	}
	qiao_result_free(&res);

	/* An error the gateway makes, signed with the gateway's key. */
	c = s_call(PRV "/gwerror.v1", "x", 5000);
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	if (res) {
		CHECK(res->kind == QIAO_RESULT_ERROR);
		CHECK(res->error.code == QIAO__V1__ERROR_CODE__POLICY_DENIED);
		CHECK(strcmp(res->error.missing_rule, "allow " REQ " -> gwerror.v1") == 0);
		CHECK(strcmp(res->responder, GWM) == 0 && strcmp(res->error.origin, GWM) == 0);
	}
	qiao_result_free(&res);
	CHECK(strcmp(qiao_error_code_name(21), "UNAVAILABLE") == 0);
	CHECK(strcmp(qiao_error_code_name(99), "UNKNOWN") == 0);
}

static void test_untrusted_answers(void)
{
	/* A forged answer (bad signature) fails that call with QIAO_EBADSIG. */
	uint64_t bad0 = st(A).bad_signatures;
	struct qiao_call c = s_call(PRV "/forge.v1", "x", 5000);
	struct qiao_result *res = NULL;
	int64_t t0 = now_ms();
	CHECK_ERR(qiao_adapter_call(A, &c, &res), QIAO_EBADSIG);
	CHECK(now_ms() - t0 < 2000);
	CHECK(res && res->kind == QIAO_RESULT_LOCAL && res->hdr == NULL && res->body == NULL);
	qiao_result_free(&res);
	CHECK(st(A).bad_signatures == bad0 + 1);

	/* Validly signed, but by a member that is not the provider. */
	c = s_call(PRV "/wrongsigner.v1", "x", 5000);
	CHECK_ERR(qiao_adapter_call(A, &c, &res), QIAO_EAUTH);
	qiao_result_free(&res);

	/* A correctly signed answer to a request nobody made: dropped, counted. */
	Qiao__V1__Header rq = QIAO__V1__HEADER__INIT;
	rq.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	rq.sender = REQ;
	rq.user_id = "staff-0042";
	rq.service = PRV "/echo.v1";
	rq.time_ms = qiao_now_ms();
	rq.deadline_ms = rq.time_ms + 5000;
	rq.body_type = "test.v1.Text";
	qiao_envelope_t *req = NULL, *ans = NULL;
	char why[200];
	CHECK_RC(qiao_envelope_seal(&rq, "x", 1, KA->sign_sk, NULL, &req, why, sizeof why));
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[48];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__RESPONSE, PRV, &h, store);
	h.body_type = "test.v1.Echo";
	CHECK_RC(qiao_envelope_seal(&h, "x", 1, KB->sign_sk, NULL, &ans, why, sizeof why));
	uint64_t dropped0 = st(A).dropped;
	s_gw_inject_env(&G, REQ, ans);
	WAIT_FOR(st(A).dropped == dropped0 + 1, 3000);
	CHECK(st(A).dropped == dropped0 + 1);
	CHECK(s_logged("answers no pending call"));
	qiao_envelope_destroy(&req);
	qiao_envelope_destroy(&ans);
}

static void test_timeout_and_busy(void)
{
	/* No answer at all: the local timeout ends the call, no hang. */
	struct qiao_call c = s_call(PRV "/sink.v1", "x", 300);
	struct qiao_result *res = NULL;
	uint64_t to0 = st(A).calls_timed_out;
	int64_t t0 = now_ms();
	CHECK_ERR(qiao_adapter_call(A, &c, &res), QIAO_ETIMEOUT);
	int64_t took = now_ms() - t0;
	CHECK(took >= 450 && took < 3000); /* 300 ms deadline + 200 ms grace */
	CHECK(res && res->kind == QIAO_RESULT_LOCAL);
	qiao_result_free(&res);
	CHECK(st(A).calls_timed_out == to0 + 1);

	/* A has max_pending_calls 8: the ninth waiting call is refused. */
	s_collector_reset();
	for (int i = 0; i < 8; i++)
		CHECK_RC(qiao_adapter_call_async(A, &c, on_done, &s_col, NULL, 0));
	CHECK(st(A).pending_calls == 8);
	char err[200];
	CHECK_ERR(qiao_adapter_call_async(A, &c, on_done, &s_col, err, sizeof err), QIAO_EBUSY);
	CHECK_ERR(qiao_adapter_call(A, &c, &res), QIAO_EBUSY);
	qiao_result_free(&res);
	WAIT_FOR(s_collected() == 8, 5000);
	CHECK(s_collected() == 8);
	pthread_mutex_lock(&s_col.mu);
	for (int i = 0; i < s_col.n; i++)
		CHECK(s_col.res[i]->status == QIAO_ETIMEOUT);
	pthread_mutex_unlock(&s_col.mu);
	s_collector_reset();
	CHECK(st(A).pending_calls == 0);
}

/* A request as if from A, sealed here and pushed to B by the gateway. */
static qiao_envelope_t *s_request_from_a(const char *service, const uint8_t *sk)
{
	Qiao__V1__Header rq = QIAO__V1__HEADER__INIT;
	rq.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	rq.sender = REQ;
	rq.user_id = "staff-0042";
	rq.service = (char *)service;
	rq.time_ms = qiao_now_ms();
	rq.deadline_ms = rq.time_ms + 5000;
	rq.body_type = "test.v1.Text";
	qiao_envelope_t *req = NULL;
	char why[200];
	CHECK_RC(qiao_envelope_seal(&rq, "hi", 2, sk, NULL, &req, why, sizeof why));
	return req;
}

static void test_provider_checks(void)
{
	/* A request for a service B does not offer: B answers NO_SUCH_SERVICE. */
	qiao_envelope_t *req = s_request_from_a(REQ "/echo.v1", KA->sign_sk);
	int ok0 = s_gw_get(&G, &G.envelopes_ok);
	uint64_t refused0 = st(B).requests_refused;
	s_gw_inject_env(&G, PRV, req);
	WAIT_FOR(st(B).requests_refused == refused0 + 1 && s_gw_get(&G, &G.envelopes_ok) > ok0, 3000);
	CHECK(st(B).requests_refused == refused0 + 1);
	CHECK(s_gw_get(&G, &G.last_answer_code) == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE);
	qiao_envelope_destroy(&req);

	/* A request with a bad signature: dropped, counted, no handler runs. */
	uint8_t pk[32], sk[64];
	crypto_sign_keypair(pk, sk);
	req = s_request_from_a(PRV "/echo.v1", sk);
	pthread_mutex_lock(&s_seen_mu);
	int handled0 = s_handled;
	pthread_mutex_unlock(&s_seen_mu);
	uint64_t bad0 = st(B).bad_signatures;
	s_gw_inject_env(&G, PRV, req);
	WAIT_FOR(st(B).bad_signatures == bad0 + 1, 3000);
	CHECK(st(B).bad_signatures == bad0 + 1);
	qiao_envelope_destroy(&req);

	/* The same valid request twice: the second is a replay. */
	req = s_request_from_a(PRV "/echo.v1", KA->sign_sk);
	uint64_t dropped0 = st(B).dropped;
	s_gw_inject_env(&G, PRV, req);
	s_gw_inject_env(&G, PRV, req);
	WAIT_FOR(st(B).dropped == dropped0 + 1, 3000);
	CHECK(st(B).dropped == dropped0 + 1);
	usleep(100000);
	pthread_mutex_lock(&s_seen_mu);
	CHECK(s_handled == handled0 + 1);
	pthread_mutex_unlock(&s_seen_mu);
	qiao_envelope_destroy(&req);
}

static void test_garbage(void)
{
	uint8_t env_cmd[QIAO_CMD_LEN], v2[QIAO_CMD_LEN], bad_magic[QIAO_CMD_LEN], wel[QIAO_CMD_LEN],
		hb[QIAO_CMD_LEN], dir[QIAO_CMD_LEN], note[QIAO_CMD_LEN], unk[QIAO_CMD_LEN];
	qiao_cmd_make(QIAO_CMD_ENVELOPE, env_cmd);
	qiao_cmd_make(QIAO_CMD_ENVELOPE, v2);
	v2[4] = 2;
	qiao_cmd_make(QIAO_CMD_ENVELOPE, bad_magic);
	bad_magic[0] = 'X';
	qiao_cmd_make(QIAO_CMD_WELCOME, wel);
	qiao_cmd_make(QIAO_CMD_HEARTBEAT, hb);
	qiao_cmd_make(QIAO_CMD_DIRECTORY, dir);
	qiao_cmd_make(QIAO_CMD_NOTICE, note);
	qiao_cmd_make(0x7f, unk);
	uint8_t sig[64] = {0}, junk[100];
	memset(junk, 0xff, sizeof junk);
	const struct qiao_frame msgs[][4] = {
		{{"hello", 5}},
		{{bad_magic, 6}, {junk, 10}, {sig, 64}, {"", 0}},
		{{v2, 6}, {junk, 10}, {sig, 64}, {"", 0}},
		{{env_cmd, 6}, {junk, 10}, {sig, 64}},
		{{env_cmd, 6}, {junk, 100}, {sig, 64}, {"", 0}},
		{{env_cmd, 6}, {"", 0}, {sig, 64}, {"", 0}},
		{{env_cmd, 6}, {"\x08\x01", 2}, {sig, 10}, {"", 0}},
		{{wel, 6}, {junk, 100}},
		{{wel, 6}},
		{{hb, 6}, {junk, 1}},
		{{dir, 6}, {junk, 50}},
		{{note, 6}, {junk, 50}},
		{{unk, 6}},
		{{"", 0}},
	};
	const size_t counts[] = {1, 4, 4, 3, 4, 4, 4, 2, 1, 2, 2, 2, 1, 1};
	size_t nmsg = sizeof counts / sizeof counts[0];
	uint64_t dropped0 = st(A).dropped, welcomes0 = st(A).welcomes;
	for (size_t i = 0; i < nmsg; i++)
		s_gw_inject(&G, REQ, msgs[i], counts[i]);
	/* Too many frames. */
	struct qiao_frame many[12];
	for (int i = 0; i < 12; i++)
		many[i] = (struct qiao_frame){env_cmd, 6};
	s_gw_inject(&G, REQ, many, 12);
	nmsg++;
	WAIT_FOR(st(A).dropped >= dropped0 + nmsg, 3000);
	CHECK(st(A).dropped == dropped0 + nmsg);
	CHECK(st(A).welcomes == welcomes0);

	/* Random frames, some behind a valid command frame. */
	uint64_t dropped1 = st(B).dropped;
	for (int i = 0; i < 200; i++) {
		struct qiao_frame f[5];
		uint8_t buf[5][64];
		size_t n = 1 + randombytes_uniform(5);
		for (size_t k = 0; k < 5; k++) {
			size_t len = randombytes_uniform(64);
			randombytes_buf(buf[k], len);
			f[k] = (struct qiao_frame){buf[k], len};
		}
		if (i % 2) {
			qiao_cmd_make((uint8_t)(1 + randombytes_uniform(8)), buf[0]);
			f[0].len = 6;
			if (buf[0][5] == QIAO_CMD_HEARTBEAT || buf[0][5] == QIAO_CMD_BYE)
				n = n > 1 ? n : 2; /* a lone HEARTBEAT/BYE is valid */
			if (buf[0][5] == QIAO_CMD_WELCOME || buf[0][5] == QIAO_CMD_NOTICE ||
			    buf[0][5] == QIAO_CMD_DIRECTORY)
				n = 3; /* valid commands with the wrong frame count */
		}
		s_gw_inject(&G, PRV, f, n);
	}
	WAIT_FOR(st(B).dropped >= dropped1 + 200, 5000);
	CHECK(st(B).dropped == dropped1 + 200);

	/* Both still work. */
	CHECK(st(A).connected && st(B).connected);
	struct qiao_call c = s_call(PRV "/echo.v1", "still here", 5000);
	struct qiao_result *res = NULL;
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	CHECK(res && res->kind == QIAO_RESULT_RESPONSE);
	qiao_result_free(&res);
}

static void test_offer_after_start(void)
{
	int ready0 = s_gw_get(&G, &G.ready[1]);
	CHECK_RC(qiao_adapter_offer(B, "late.v1", "test.v1.Echo", on_echo, NULL));
	WAIT_FOR(s_gw_get(&G, &G.ready[1]) > ready0, 3000);
	CHECK(s_gw_get(&G, &G.ready[1]) > ready0);
	pthread_mutex_lock(&G.mu);
	bool listed = false;
	for (size_t i = 0; i < G.n_ready_services[1]; i++)
		listed = listed || strcmp(G.ready_services[1][i], "late.v1") == 0;
	pthread_mutex_unlock(&G.mu);
	CHECK(listed);
	usleep(50000); /* the WELCOME answering the new READY */
	struct qiao_call c = s_call(PRV "/late.v1", "late", 5000);
	struct qiao_result *res = NULL;
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	CHECK(res && res->kind == QIAO_RESULT_RESPONSE && res->body_len == 4);
	qiao_result_free(&res);
}

static void s_call_ok(const char *what)
{
	struct qiao_call c = s_call(PRV "/echo.v1", what, 5000);
	struct qiao_result *res = NULL;
	int rc = qiao_adapter_call(A, &c, &res);
	CHECK_RC(rc);
	CHECK(res && res->kind == QIAO_RESULT_RESPONSE && res->body_len == strlen(what));
	if (rc)
		fprintf(stderr, "  call %s: %s\n", what, res ? res->error.message : "");
	qiao_result_free(&res);
}

static void test_liveness(void)
{
	/* The gateway freezes (no heartbeats, reads nothing) longer than
	 * liveness x heartbeat: the adapters reconnect and READY again. */
	uint64_t rec0 = st(A).reconnects;
	int ready0 = s_gw_get(&G, &G.ready[0]);
	pthread_mutex_lock(&G.mu);
	G.freeze_ms = 2000;
	pthread_mutex_unlock(&G.mu);
	WAIT_FOR(!st(A).connected, 3000);
	CHECK(!st(A).connected);
	WAIT_FOR(st(A).connected && st(B).connected && s_gw_get(&G, &G.ready[0]) > ready0, 8000);
	CHECK(st(A).connected && st(B).connected);
	CHECK(st(A).reconnects > rec0);
	CHECK(s_gw_get(&G, &G.ready[0]) > ready0);
	CHECK(s_logged("gateway silent for"));
	usleep(3 * HB_MS * 1000); /* let the gateway see heartbeats on the new connections */
	s_call_ok("after freeze");
}

static void test_reconnect(void)
{
	int ready_a = s_gw_get(&G, &G.ready[0]), ready_b = s_gw_get(&G, &G.ready[1]);
	uint64_t rec0 = st(A).reconnects;
	pthread_mutex_lock(&G.mu);
	G.want_down = true;
	pthread_mutex_unlock(&G.mu);
	WAIT_FOR(!s_gw_is_up(&G) && !st(A).connected && !st(B).connected, 5000);
	CHECK(!st(A).connected && !st(B).connected);

	/* A call made while the gateway is away waits for the next connection
	 * (made by the provider to itself, so that its answer does not depend
	 * on which adapter reconnects first). */
	s_collector_reset();
	struct qiao_call c = s_call(PRV "/echo.v1", "queued", 8000);
	CHECK_RC(qiao_adapter_call_async(B, &c, on_done, &s_col, NULL, 0));
	usleep(300000);
	CHECK(s_collected() == 0);

	pthread_mutex_lock(&G.mu);
	G.want_up = true;
	pthread_mutex_unlock(&G.mu);
	WAIT_FOR(st(A).connected && st(B).connected, 8000);
	CHECK(st(A).connected && st(B).connected);
	CHECK(s_gw_get(&G, &G.ready[0]) > ready_a && s_gw_get(&G, &G.ready[1]) > ready_b);
	CHECK(st(A).reconnects > rec0);
	WAIT_FOR(s_collected() == 1, 8000);
	CHECK(s_collected() == 1);
	pthread_mutex_lock(&s_col.mu);
	if (s_col.n == 1) {
		struct qiao_result *r = s_col.res[0];
		CHECK(r->status == 0 && r->kind == QIAO_RESULT_RESPONSE);
		if (r->status)
			fprintf(stderr, "  queued call: %s\n", r->error.message);
	}
	pthread_mutex_unlock(&s_col.mu);
	s_collector_reset();
	s_call_ok("after restart");
}

static void test_stranger(void)
{
	/* A key the gateway's ZAP handler does not know never gets in. */
	char *path = s_keyfile("stranger", KC);
	qiao_adapter_t *c = s_adapter(path, "C", 0);
	if (!c)
		return;
	int denied0 = s_gw_get(&G, &G.zap_denied);
	CHECK_RC(qiao_adapter_start(c));
	CHECK_ERR(qiao_adapter_wait_connected(c, 800), QIAO_ETIMEOUT);
	CHECK(s_gw_get(&G, &G.zap_denied) > denied0);
	CHECK(!st(c).connected && st(c).welcomes == 0);
	CHECK(s_logged("refused this member's CURVE key"));
	qiao_adapter_destroy(&c);

	/* A registered member that has the wrong gateway key never gets in. */
	uint8_t wrong[32];
	char wrong_b64[45], err[300];
	randombytes_buf(wrong, sizeof wrong);
	qiao_b64_32(wrong, wrong_b64);
	struct qiao_adapter_opts o = {.endpoint = G.endpoint, .key_file = s_keyfile("a2", KA),
				      .gateway_curve_public = wrong_b64, .reconnect_min_ms = 50,
				      .reconnect_max_ms = 200, .hello_timeout_ms = 300,
				      .log = s_log_sink, .log_arg = (void *)"A2", .log_level = QIAO_LOG_DEBUG};
	CHECK_RC(qiao_adapter_new(&o, &c, err, sizeof err));
	if (!c)
		return;
	int ready0 = s_gw_get(&G, &G.ready[0]);
	CHECK_RC(qiao_adapter_start(c));
	CHECK_ERR(qiao_adapter_wait_connected(c, 800), QIAO_ETIMEOUT);
	CHECK(st(c).welcomes == 0 && st(c).reconnects > 0);
	CHECK(s_gw_get(&G, &G.ready[0]) == ready0);
	CHECK(s_logged("is gateway_curve_public the gateway's key?"));
	qiao_adapter_destroy(&c);
}

static void test_shutdown(void)
{
	struct qiao_adapter_stats sb = st(B);
	CHECK(sb.requests_handled > 0 && sb.answers_sent > 0 && sb.inflight_requests == 0);
	struct qiao_adapter_stats sa = st(A);
	CHECK(sa.calls_answered > 0 && sa.calls_failed > 0 && sa.pending_calls == 0);

	/* Destroy the provider with two requests in flight: the slow one is
	 * still answered (drain), the held one outlives the adapter. */
	s_collector_reset();
	struct qiao_call c = s_call(PRV "/slow.v1", "slow", 3000);
	CHECK_RC(qiao_adapter_call_async(A, &c, on_done, &s_col, NULL, 0));
	c = s_call(PRV "/hold.v1", "held", 500);
	CHECK_RC(qiao_adapter_call_async(A, &c, on_done, &s_col, NULL, 0));
	WAIT_FOR(st(B).inflight_requests == 2, 3000);
	CHECK(st(B).inflight_requests == 2);
	int bye0 = s_gw_get(&G, &G.bye[1]);
	int64_t t0 = now_ms();
	qiao_adapter_destroy(&B);
	CHECK(B == NULL);
	CHECK(now_ms() - t0 < 2000); /* drain_ms is 500 */
	WAIT_FOR(s_gw_get(&G, &G.bye[1]) > bye0, 2000);
	CHECK(s_gw_get(&G, &G.bye[1]) == bye0 + 1);
	CHECK(s_logged("closing with 1 request(s) still unanswered"));
	qiao_adapter_destroy(&B);
	WAIT_FOR(s_collected() == 2, 3000);
	CHECK(s_collected() == 2);
	pthread_mutex_lock(&s_col.mu);
	for (int i = 0; i < s_col.n; i++) {
		struct qiao_result *r = s_col.res[i];
		if (r->status == 0)
			CHECK(r->kind == QIAO_RESULT_RESPONSE && r->body_len == 4 && memcmp(r->body, "slow", 4) == 0);
		else
			CHECK(r->status == QIAO_ETIMEOUT);
	}
	pthread_mutex_unlock(&s_col.mu);
	s_collector_reset();
	pthread_mutex_lock(&s_seen_mu);
	struct qiao_responder *held = s_held;
	s_held = NULL;
	pthread_mutex_unlock(&s_seen_mu);
	CHECK(held != NULL);
	CHECK_ERR(qiao_respond(&held, "late", 4), QIAO_ECLOSED); /* frees the last of B */
	CHECK(held == NULL);

	/* The provider is gone: the gateway answers NO_INSTANCE. */
	c = s_call(PRV "/echo.v1", "x", 2000);
	struct qiao_result *res = NULL;
	CHECK_RC(qiao_adapter_call(A, &c, &res));
	CHECK(res && res->kind == QIAO_RESULT_ERROR && res->error.code == QIAO__V1__ERROR_CODE__NO_INSTANCE);
	qiao_result_free(&res);
	qiao_adapter_destroy(&A);
}

/* adapters/example/echo_adapter.c, run as the provider's member: it
 * offers echo.v1, calls it through the gateway and prints the answer. */
static void test_example(void)
{
	const char *bin = getenv("QIAO_BIN");
	char path[512], cmd[1024], out[4096] = "";
	snprintf(path, sizeof path, "%s/adapters/qiao-example-adapter", bin ? bin : ".");
	if (access(path, X_OK) != 0) {
		printf("(example not found at %s; skipped)\n", path);
		return;
	}
	snprintf(cmd, sizeof cmd, "%s %s %s/b.key %s 2>&1", path, G.endpoint, s_dir, G.curve_pk_b64);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	if (!p)
		return;
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	CHECK(status == 0);
	CHECK(strstr(out, "request from " PRV " for user staff-0001") != NULL);
	CHECK(strstr(out, "answer from " PRV ": hello, Qiao") != NULL);
	if (status != 0 || !strstr(out, "hello, Qiao") || getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "example said:\n%s\n", out);
}

int main(void)
{
	if (qiao_crypto_init() != 0)
		return 1;
	snprintf(s_dir, sizeof s_dir, "/tmp/qiao-adapter-test-XXXXXX");
	if (!mkdtemp(s_dir)) {
		perror("mkdtemp");
		return 1;
	}
	CHECK_RC(qiao_keys_generate(REQ, &KA));
	CHECK_RC(qiao_keys_generate(PRV, &KB));
	CHECK_RC(qiao_keys_generate(STRANGER, &KC));
	s_gw_start(&G, KA, KB);
	int64_t t0 = now_ms();

	test_new_refuses();
	A = s_adapter(s_keyfile("a", KA), "A", 8);
	B = s_adapter(s_keyfile("b", KB), "B", 0);
	if (!A || !B)
		return check_done();
	CHECK_RC(qiao_adapter_offer(B, "echo.v1", "test.v1.Echo", on_echo, NULL));
	CHECK_RC(qiao_adapter_offer(B, "notfound.v1", "test.v1.Echo", on_notfound, NULL));
	CHECK_RC(qiao_adapter_offer(B, "later.v1", "test.v1.Echo", on_later, NULL));
	CHECK_RC(qiao_adapter_offer(B, "slow.v1", "test.v1.Echo", on_slow, NULL));
	CHECK_RC(qiao_adapter_offer(B, "hold.v1", "test.v1.Echo", on_hold, NULL));
	CHECK_RC(qiao_adapter_start(A));
	CHECK_RC(qiao_adapter_start(B));
	CHECK_ERR(qiao_adapter_start(B), QIAO_EINVAL);
	CHECK_RC(qiao_adapter_wait_connected(A, 5000));
	CHECK_RC(qiao_adapter_wait_connected(B, 5000));
	CHECK(s_gw_get(&G, &G.ready[0]) == 1 && s_gw_get(&G, &G.ready[1]) == 1);

	struct { const char *name; void (*fn)(void); } tests[] = {
		{"sync round trip", test_sync_round_trip},
		{"async", test_async},
		{"error answers", test_error_answers},
		{"untrusted answers", test_untrusted_answers},
		{"timeout and busy", test_timeout_and_busy},
		{"provider checks", test_provider_checks},
		{"garbage", test_garbage},
		{"offer after start", test_offer_after_start},
		{"liveness", test_liveness},
		{"reconnect", test_reconnect},
		{"stranger", test_stranger},
		{"shutdown", test_shutdown},
		{"example", test_example},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		int64_t t = now_ms();
		tests[i].fn();
		printf("%-20s %5lld ms\n", tests[i].name, (long long)(now_ms() - t));
	}
	printf("total %lld ms\n", (long long)(now_ms() - t0));

	s_gw_stop(&G);
	qiao_keys_destroy(&KA);
	qiao_keys_destroy(&KB);
	qiao_keys_destroy(&KC);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", s_dir);
	return check_done();
}
