/*
 * gw_many.h - many adapters against the real gateway, for
 * tests/test_faults_conn.c and bench/conn_bench.c (on top of gw_harness.h):
 * N generated members (each its own Ed25519 and CURVE pair, registered in
 * the gateway config with a policy rule for the provider's echo service),
 * raw ZeroMQ DEALER connections that speak the protocol as the SDK does
 * (CURVE, READY, WELCOME, HEARTBEAT, signed REQUESTs), the gateway's
 * /proc/PID/status memory and its admin socket's JSON.
 *
 * Thousands of SDK instances would each bring their own threads and
 * ZeroMQ context; one context with N DEALER sockets costs the client side
 * little, and what the gateway sees on the wire is the same.
 */
#ifndef QIAO_GW_MANY_H
#define QIAO_GW_MANY_H

#include "gw_harness.h"

#include <jansson.h>
#include <sys/resource.h>

#define GM_USCC "91150600MA0C9012X7" /* BANK_B's USCC; the members differ by subsystem */
#define GM_SERVICE "echo.v1"

struct gm_member {
	char id[QIAO_MEMBER_MAX];
	uint8_t sign_pk[32], sign_sk[64];
	uint8_t curve_pk[32], curve_sk[32];
	char sign_b64[45], curve_b64[45];
};

static struct gm_member *gm_m;
static int gm_n;

/* Raise the soft RLIMIT_NOFILE to the hard one: every connection here is
 * a TCP socket plus a ZeroMQ mailbox descriptor.  The soft limit now. */
H_FN long gm_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			perror("setrlimit(RLIMIT_NOFILE)");
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

/* n members "<GM_USCC>/c0000".. with fresh keys.  0 or -1. */
H_FN int gm_make(int n)
{
	gm_m = calloc((size_t)n, sizeof *gm_m);
	if (!gm_m)
		return -1;
	gm_n = n;
	for (int i = 0; i < n; i++) {
		struct gm_member *m = &gm_m[i];
		snprintf(m->id, sizeof m->id, GM_USCC "/c%04d", i);
		crypto_sign_keypair(m->sign_pk, m->sign_sk);
		crypto_box_keypair(m->curve_pk, m->curve_sk);
		qiao_b64_32(m->sign_pk, m->sign_b64);
		qiao_b64_32(m->curve_pk, m->curve_b64);
	}
	return 0;
}

H_FN void gm_free(void)
{
	if (gm_m)
		sodium_memzero(gm_m, (size_t)gm_n * sizeof *gm_m);
	free(gm_m);
	gm_m = NULL;
	gm_n = 0;
}

/*
 * The gateway config at h_conf: PRV offers GM_SERVICE (unconditional),
 * BANK_B and BANK_A (SDK or raw clients with key files) and the gm_n
 * generated members may call it; `limits` are the lines of the limits
 * group (empty: every default, as in production).
 */
H_FN int gm_write_config(const char *limits)
{
	char *t = NULL;
	size_t tl = 0;
	FILE *f = open_memstream(&t, &tl);
	if (!f)
		return -1;
	fprintf(f,
		"# written by tests/gw_many.h\n"
		H_GATEWAY_SECTION_FMT
		"limits: {\n%s};\n"
		"members = (\n"
		"  { id = \"" PRV "\"; name = \"provider\";\n"
		"    curve_public = \"%s\"; sign_public = \"%s\";\n"
		"    services = ( { name = \"" GM_SERVICE "\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n"
		"                   class = \"unconditional\"; idempotent = false; } ); },\n"
		"  { id = \"" BANK_B "\"; name = \"bank B\"; curve_public = \"%s\"; sign_public = \"%s\"; },\n"
		"  { id = \"" BANK_A "\"; name = \"bank A\"; curve_public = \"%s\"; sign_public = \"%s\"; }",
		strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, limits, h_m[M_PRV].curve_b64, h_m[M_PRV].sign_b64,
		h_m[M_BANK_B].curve_b64, h_m[M_BANK_B].sign_b64, h_m[M_BANK_A].curve_b64, h_m[M_BANK_A].sign_b64);
	for (int i = 0; i < gm_n; i++)
		fprintf(f, ",\n  { id = \"%s\"; name = \"member %d\"; curve_public = \"%s\"; sign_public = \"%s\"; }",
			gm_m[i].id, i, gm_m[i].curve_b64, gm_m[i].sign_b64);
	fprintf(f, "\n);\npolicy = (\n"
		   "  { consumer = \"" BANK_B "\"; service = \"" PRV "/" GM_SERVICE "\"; class = \"unconditional\"; },\n"
		   "  { consumer = \"" BANK_A "\"; service = \"" PRV "/" GM_SERVICE "\"; class = \"unconditional\"; }");
	for (int i = 0; i < gm_n; i++)
		fprintf(f, ",\n  { consumer = \"%s\"; service = \"" PRV "/" GM_SERVICE "\"; class = \"unconditional\"; }",
			gm_m[i].id);
	fprintf(f, "\n);\n");
	fclose(f);
	h_write_file(h_conf, t);
	free(t);
	return 0;
}

/* ---- /proc --------------------------------------------------------------- */

/* A "VmRSS:"-style field of /proc/PID/status in KiB, or -1. */
H_FN long gm_proc_kib(pid_t pid, const char *field)
{
	return (long)h_proc_field(pid, "status", field);
}

/* Open descriptors of a process, or -1. */
H_FN int gm_proc_fds(pid_t pid)
{
	char cmd[96];
	snprintf(cmd, sizeof cmd, "ls /proc/%ld/fd 2>/dev/null | wc -l", (long)pid);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	int n = -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* ---- the admin socket ---------------------------------------------------- */

/* The gateway's status JSON (docs/protocol.md, admin socket), or NULL. */
H_FN json_t *gm_status(void)
{
	int s = h_unix_connect(h_admin);
	if (s < 0)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int64_t until = h_now() + 10000;
	while (buf && h_now() < until) {
		if (n + 4096 > cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		struct pollfd pf = {s, POLLIN, 0};
		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t r = read(s, buf + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(s);
	json_t *j = buf ? json_loadb(buf, n, 0, NULL) : NULL;
	free(buf);
	return j;
}

/* counters.<name> of a status object, or -1. */
H_FN long long gm_counter(json_t *st, const char *name)
{
	json_t *v = json_object_get(json_object_get(st, "counters"), name);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* counters.refused.<CODE NAME> (e.g. "BAD_SIGNATURE"), 0 when absent, -1
 * without a refused object. */
H_FN long long gm_refused(json_t *st, const char *code)
{
	json_t *r = json_object_get(json_object_get(st, "counters"), "refused");
	if (!json_is_object(r))
		return -1;
	json_t *v = json_object_get(r, code);
	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Entries of the connections array of a fresh status, or -1. */
H_FN long gm_connections(void)
{
	json_t *st = gm_status();
	json_t *c = json_object_get(st, "connections");
	long n = json_is_array(c) ? (long)json_array_size(c) : -1;
	json_decref(st);
	return n;
}

/* ---- raw connections ----------------------------------------------------- */

struct gm_conn {
	void *s;
	const uint8_t *curve_pk, *curve_sk, *sign_sk;
	const char *member;
	int64_t last_hb;
	bool welcomed;
	int answers;            /* RESPONSEs to our requests that echoed them */
	int refusals;           /* ERRORs answering our request, or a NOTICE instead */
	int notices;            /* NOTICEs received */
	int last_code;
	int busy;               /* BUSY answers (the provider at its max_inflight), retried */
	int64_t retry_at;       /* h_now() when to send the request again after BUSY; 0: no */
	uint8_t msgid[16];      /* of the request awaiting its answer */
	bool waiting;
};

/* Connect as generated member i (or, with i < 0, as harness member -i-1),
 * CURVE with the gateway's key, small HWMs; READY with no services is
 * queued at once (DEALER queues until the connection is up).  0 or -1. */
H_FN int gm_open(struct gm_conn *c, int i, int hwm)
{
	memset(c, 0, sizeof *c);
	if (i >= 0) {
		c->curve_pk = gm_m[i].curve_pk;
		c->curve_sk = gm_m[i].curve_sk;
		c->sign_sk = gm_m[i].sign_sk;
		c->member = gm_m[i].id;
	} else {
		c->curve_pk = h_m[-i - 1].k->curve_pk;
		c->curve_sk = h_m[-i - 1].k->curve_sk;
		c->sign_sk = h_m[-i - 1].k->sign_sk;
		c->member = h_m[-i - 1].id;
	}
	c->s = zmq_socket(h_zctx, ZMQ_DEALER);
	if (!c->s) {
		fprintf(stderr, "zmq_socket: %s\n", zmq_strerror(errno));
		return -1;
	}
	int linger = 0;
	zmq_setsockopt(c->s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(c->s, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(c->s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(c->s, ZMQ_CURVE_SERVERKEY, h_m[M_GW].k->curve_pk, 32);
	zmq_setsockopt(c->s, ZMQ_CURVE_PUBLICKEY, c->curve_pk, 32);
	zmq_setsockopt(c->s, ZMQ_CURVE_SECRETKEY, c->curve_sk, 32);
	if (zmq_connect(c->s, h_endpoint) != 0) {
		fprintf(stderr, "connect %s: %s\n", h_endpoint, zmq_strerror(errno));
		zmq_close(c->s);
		c->s = NULL;
		return -1;
	}
	Qiao__V1__Ready rd = QIAO__V1__READY__INIT;
	rd.instance = "gw_many raw";
	rd.sdk = "gw_many";
	uint8_t buf[128], cmd[QIAO_CMD_LEN];
	size_t n = qiao__v1__ready__pack(&rd, buf);
	qiao_cmd_make(QIAO_CMD_READY, cmd);
	c->last_hb = h_now();
	if (zmq_send(c->s, cmd, sizeof cmd, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(c->s, buf, n, ZMQ_DONTWAIT) < 0)
		return -1;
	return 0;
}

H_FN void gm_close(struct gm_conn *c)
{
	if (c->s)
		zmq_close(c->s);
	c->s = NULL;
}

H_FN int gm_send(struct gm_conn *c, const struct h_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (zmq_send(c->s, m->len[i] ? m->f[i] : (const void *)"", m->len[i],
			     (i + 1 < m->n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
			return -1;
	return 0;
}

/* Seal a REQUEST for PRV's GM_SERVICE as c's member, time_ms = now +
 * clock_offset_ms (a sender whose clock is off), body `body`. */
H_FN void gm_seal(const struct gm_conn *c, int64_t clock_offset_ms, const char *body, struct h_msg *out,
		  uint8_t msgid[16])
{
	size_t blen = strlen(body);
	uint8_t body_hash[32];
	crypto_hash_sha256(body_hash, (const uint8_t *)body, blen);
	randombytes_buf(msgid, 16);
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	h.version = 1;
	h.message_id.data = msgid;
	h.message_id.len = 16;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = (char *)c->member;
	h.user_id = "many-user-0001";
	h.service = PRV "/" GM_SERVICE;
	h.time_ms = qiao_now_ms() + clock_offset_ms;
	h.deadline_ms = h.time_ms + 20000;
	h.purpose = "";
	h.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	h.body_hash.data = body_hash;
	h.body_hash.len = 32;
	h.body_type = "test.v1.Echo";
	size_t hlen = qiao__v1__header__get_packed_size(&h);
	uint8_t *sb = malloc(QIAO_SIG_PREFIX_LEN + hlen);
	memcpy(sb, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
	qiao__v1__header__pack(&h, sb + QIAO_SIG_PREFIX_LEN);
	uint8_t sig[64], cmd[QIAO_CMD_LEN];
	crypto_sign_detached(sig, NULL, sb, QIAO_SIG_PREFIX_LEN + hlen, c->sign_sk);
	qiao_cmd_make(QIAO_CMD_ENVELOPE, cmd);
	memset(out, 0, sizeof *out);
	h_msg_add(out, cmd, sizeof cmd);
	h_msg_add(out, sb + QIAO_SIG_PREFIX_LEN, hlen);
	h_msg_add(out, sig, sizeof sig);
	h_msg_add(out, body, blen);
	free(sb);
}

/* Send one request (the body names the member); it is answered in gm_pump. */
H_FN int gm_request(struct gm_conn *c)
{
	struct h_msg m;
	gm_seal(c, 0, c->member, &m, c->msgid);
	int rc = gm_send(c, &m);
	h_msg_free(&m);
	c->waiting = rc == 0;
	return rc;
}

/* Receive what is queued on c without blocking and act as an adapter
 * would: WELCOME marks it welcomed (and, with `ask`, sends a request), a
 * RESPONSE to the waiting request that echoes it (gw_peer: "<pid>:<body>",
 * signed by PRV) counts as an answer, ERROR / NOTICE as a refusal; a
 * HEARTBEAT is sent when the connection has sent nothing for hb_ms. */
H_FN void gm_pump(struct gm_conn *c, bool ask, int hb_ms)
{
	for (;;) {
		struct h_msg m = {0};
		int more = 1;
		while (more) {
			zmq_msg_t z;
			zmq_msg_init(&z);
			if (zmq_msg_recv(&z, c->s, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&z);
				break;
			}
			more = zmq_msg_more(&z);
			h_msg_add(&m, zmq_msg_data(&z), zmq_msg_size(&z));
			zmq_msg_close(&z);
		}
		if (m.n == 0)
			break;
		int cmd = h_msg_cmd(&m);
		if (cmd == QIAO_CMD_WELCOME) {
			c->welcomed = true;
			if (ask && !c->waiting)
				gm_request(c);
		} else if (cmd == QIAO_CMD_NOTICE) {
			c->notices++;
			if (c->waiting) { /* a NOTICE instead of the answer */
				c->refusals++;
				c->waiting = false;
			}
			c->last_code = -1;
		} else if (cmd == QIAO_CMD_ENVELOPE && m.n == 4) {
			struct qiao_frame f[4];
			for (size_t i = 0; i < 4; i++)
				f[i] = (struct qiao_frame){m.f[i], m.len[i]};
			qiao_envelope_t *e = NULL;
			char why[200];
			struct qiao_wire_limits lim;
			qiao_wire_limits_default(&lim);
			if (qiao_envelope_open(f, 4, &lim, &e, why, sizeof why) == 0) {
				const Qiao__V1__Header *h = e->hdr;
				bool mine = c->waiting && h->in_reply_to.len == 16 &&
					    memcmp(h->in_reply_to.data, c->msgid, 16) == 0;
				if (mine && h->kind == QIAO__V1__MESSAGE_KIND__RESPONSE &&
				    strcmp(h->sender, PRV) == 0 && qiao_envelope_verify(e, h_m[M_PRV].k->sign_pk) == 0) {
					const char *colon = e->body_len ? memchr(e->body, ':', e->body_len) : NULL;
					size_t rest = colon ? e->body_len - (size_t)(colon + 1 - (const char *)e->body) : 0;
					if (colon && rest == strlen(c->member) && memcmp(colon + 1, c->member, rest) == 0)
						c->answers++;
					c->waiting = false;
				} else if (mine) {
					c->waiting = false;
					Qiao__V1__ErrorReply *er =
						h->kind == QIAO__V1__MESSAGE_KIND__ERROR
							? qiao__v1__error_reply__unpack(NULL, e->body_len, e->body)
							: NULL;
					c->last_code = er ? (int)er->code : -1;
					if (c->last_code == QIAO__V1__ERROR_CODE__BUSY) {
						/* as an adapter would: again after retry_after_ms */
						c->busy++;
						c->retry_at = h_now() + (er->retry_after_ms ? er->retry_after_ms : 50);
					} else {
						c->refusals++;
					}
					if (er)
						qiao__v1__error_reply__free_unpacked(er, NULL);
				}
			}
			qiao_envelope_destroy(&e);
		}
		h_msg_free(&m);
	}
	if (ask && c->retry_at && h_now() >= c->retry_at && !c->waiting) {
		c->retry_at = 0;
		gm_request(c);
	}
	if (h_now() - c->last_hb >= hb_ms) {
		uint8_t cmd[QIAO_CMD_LEN];
		qiao_cmd_make(QIAO_CMD_HEARTBEAT, cmd);
		zmq_send(c->s, cmd, sizeof cmd, ZMQ_DONTWAIT);
		c->last_hb = h_now();
	}
}

/*
 * Drive v[0..n): pump each (polling them all) until every one is welcomed
 * and, with `ask`, has its answer, or ms pass.  The number done.
 */
H_FN int gm_drive(struct gm_conn *v, int n, bool ask, int hb_ms, int ms)
{
	zmq_pollitem_t *it = calloc((size_t)n, sizeof *it);
	int done = 0;
	int64_t until = h_now() + ms;
	if (!it)
		return -1;
	for (;;) {
		done = 0;
		for (int i = 0; i < n; i++)
			done += v[i].welcomed && (!ask || (v[i].answers > 0 && !v[i].waiting));
		if (done == n || h_now() >= until)
			break;
		for (int i = 0; i < n; i++)
			it[i] = (zmq_pollitem_t){v[i].s, 0, ZMQ_POLLIN, 0};
		zmq_poll(it, n, 20);
		for (int i = 0; i < n; i++)
			gm_pump(&v[i], ask, hb_ms);
	}
	free(it);
	return done;
}

/* Keep v[0..n) alive (heartbeats, draining what arrives) for ms. */
H_FN void gm_idle(struct gm_conn *v, int n, int hb_ms, int ms)
{
	int64_t until = h_now() + ms;
	while (h_now() < until) {
		for (int i = 0; i < n; i++)
			gm_pump(&v[i], false, hb_ms);
		h_sleep_ms(20);
	}
}

#endif
