/*
 * gw_gate.c - the gateway reactor (see gw_gate.h for the life of a message).
 *
 * Threads: the reactor (this file, everything that touches sockets and the
 * connection table), `verify_threads` verify workers (gw_verify_*), and the
 * store's group-commit writer.  Jobs go reactor -> verify queue -> reactor
 * mailbox -> group commit -> reactor mailbox; the reactor counts what it has
 * handed out, so both queues are bounded by limits.max_pending.
 */
#include "gw_gate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "audit.pb-c.h"
#include "audit_log.h"
#include "control.pb-c.h"
#include "credit.pb-c.h"
#include "gw_cache.h"
#include "licence.pb-c.h"
#include "envelope.pb-c.h"
#include "gw_log.h"
#include "gw_map.h"
#include "gw_mbox.h"
#include "gw_metrics.h"
#include "gw_policy.h"
#include "gw_unix.h"
#include "gw_wf.h"
#include "identity.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_keys.h"
#include "qiao_store.h"

#define RID_MAX 32          /* ROUTER routing ids are 5 bytes; peers may set up to 255: refused above 32 */
#define READY_MAX_SERVICES 64
#define REPLAY_TYPE 0x5250  /* record type of table "replay" ("RP") */
#define SWEEP_EVERY_MS 10000
/* retry_after_ms of an UNAVAILABLE for a store that cannot write: a full
 * store or disk needs the operator, so not the usual 1 s */
#define STORE_RETRY_MS 5000
/* /healthz stays 503 this long after a failed commit (s_met_publish) */
#define STORE_HEALTH_HOLD_MS 5000
#define ADMIN_MAX 1048576
#define ADMIN_SEND_MS 250 /* at most this long writing one status document (s_on_admin) */

/* Names of the services the gateway answers itself (discovery). */
#define SVC_LIST "list-services.v1"
#define SVC_ALLOWED "allowed-services.v1"
#define SVC_PUBLISH "licence-publish.v1"
#define SVC_NOTIFY "licence-notify.v1" /* offered by subscribers */
#define NOTIFY_TIMEOUT_MS 10000

/* ---- small helpers -------------------------------------------------------- */

static int64_t s_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 16-byte key for strings longer than a gw_map key. */
static void s_key16(const char *s, uint8_t out[16])
{
	crypto_generichash(out, 16, (const unsigned char *)s, strlen(s), NULL, 0);
}

static const char *s_code_name(int code)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&qiao__v1__error_code__descriptor, code);
	return v ? v->name : "UNKNOWN";
}

/* ---- state ---------------------------------------------------------------- */

struct conn;

/* One service id and the connections that offer it now. */
struct slot {
	char id[QIAO_MAX_SERVICE + 1];
	struct conn **v;
	size_t n, cap;
	size_t rr; /* round-robin start */
};

struct conn {
	uint8_t rid[RID_MAX];
	size_t rid_len;
	char member[QIAO_MEMBER_MAX]; /* as authenticated by ZAP */
	uint8_t curve[32];            /* the CURVE key ZAP admitted (X-Qiao-Curve) */
	int has_curve;                /* curve is known */
	char peer[64];                /* Peer-Address, for logs */
	char instance[65], sdk[65];
	int ready, bye;
	int dead;                     /* a send found it gone: dropped by the timers */
	uint32_t cap;                 /* requests routed to it at once */
	uint32_t inflight;            /* routed to it, not yet answered */
	uint32_t verifying;           /* its envelopes with the verify threads (s_on_envelope) */
	uint64_t served;
	int64_t last_recv, last_send; /* monotonic ms */
	int64_t since_ms;             /* wall clock, connected */
	char **svcs;                  /* accepted full service ids */
	size_t nsvcs;
	struct conn *prev, *next;
};

/* Per consumer member: requests in flight (limits.max_inflight_per_member). */
struct mcount {
	char member[QIAO_MEMBER_MAX];
	unsigned n;
};

/* What happens once a job's durable commit is done. */
enum job_kind {
	K_REQUEST = 1, /* route the request (or answer it: the gateway's own services) */
	K_EVENT,       /* route the event */
	K_ANSWER,      /* forward the provider's answer to the requester */
	K_SEND,        /* send `out`, an answer the gateway made, to `rid` */
	K_NONE,        /* nothing: an audit entry of its own (connections, admin) */
};
enum job_stage { ST_VERIFY = 1, ST_VERIFIED, ST_COMMITTED };

/* One audit entry to write with a job (built on the writer thread). */
struct aev {
	int type, outcome, code;
	char *reason;                 /* malloc'd, may be NULL */
	char *detail;                 /* malloc'd, may be NULL */
	char requester[QIAO_MEMBER_MAX], provider[QIAO_MEMBER_MAX];
	uint8_t *hdr;                 /* copy of the header frame the entry is about */
	size_t hdr_len;
	uint8_t sig[QIAO_SIG_LEN];
	uint32_t body_size;
	uint8_t *ctx;                 /* for answers: the request's header frame (its subjects, purpose) */
	size_t ctx_len;
	uint8_t req_body_hash[QIAO_HASH_LEN];
	int has_req_body_hash;
	char *cached_id;              /* CACHE_HIT / CACHE_INVALIDATED: the object, malloc'd */
	uint64_t cached_version;
	uint8_t cached_hash[QIAO_HASH_LEN];
	Qiao__V1__MemberKey *dir;     /* ADMIN_ACTION: the key directory (strings in dir_names) */
	size_t ndir;
	char *dir_names;
};

struct gw_gate;

/* An envelope on its way through the gateway, or an answer and its audit
 * entries on their way to durability. */
struct job {
	struct gw_item link;          /* first: the mailboxes' item */
	struct gw_gate *g;
	int stage;
	int kind;
	int rc;                       /* verify or commit result */
	qiao_envelope_t *env;         /* the envelope received (NULL for K_SEND / K_NONE) */
	qiao_envelope_t *out;         /* K_SEND: what to send */
	uint8_t rid[RID_MAX];         /* the connection it came from / goes to */
	size_t rid_len;
	char member[QIAO_MEMBER_MAX]; /* its authenticated member */
	uint8_t pk[32];               /* key to verify with; after ST_VERIFIED the key that verified */
	uint8_t pk2[32];              /* the member's other key during a rotation (next_sign_public) */
	int has_pk2;
	int replay;                   /* record env's message id in the replay table */
	int64_t expires_ms;           /* replay record expiry */
	struct aev ev[2];
	int nev;
	audit_log_t *audit;
	qiao_table_t *replay_tbl;
	/* REQUEST, after the routing decision */
	char service[QIAO_MAX_SERVICE + 1];
	int idempotent;
	int64_t deadline_ms;
	/* RESPONSE/ERROR: the pending request it answers */
	uint8_t reply_to[QIAO_MSGID_LEN];
	/* the cache: what this job's commit also writes */
	int cache_op;                 /* C_* */
	int cache_kind;               /* CK_*: what a request asked of a cacheable service */
	char cache_id[QIAO_MAX_SERVICE + 1];  /* licence id, or the subscriber member for C_CURSOR */
	uint8_t cache_key[32];        /* credit query key */
	struct gw_cached cval;        /* bytes owned */
	uint8_t *event;               /* C_PUBLISH: the LicenceEvent as received */
	size_t event_len;
	gw_cache_t *cache;
	int stale_ok;                 /* the request allows a stale copy and a rule grants it */
	int has_purpose;              /* the lookup states a purpose (申请事由) */
	int64_t t0_us;                /* monotonic µs, created: request latency (gw_metrics) */
	int threaded;                 /* verified on a verify thread (counted in g->verifying) */
};

enum { C_NONE = 0, C_LIC_PUT, C_LIC_REFRESH, C_CRED_PUT, C_PUBLISH, C_CURSOR };
enum { CK_NONE = 0, CK_LICENCE_ID, CK_LICENCE_HOLDER, CK_CREDIT };

/* A request routed to a provider, awaiting its answer. */
struct pend {
	uint8_t msgid[QIAO_MSGID_LEN];
	qiao_envelope_t *req;         /* kept for retries and for gateway errors */
	uint8_t req_hash[QIAO_HASH_LEN];
	uint8_t rrid[RID_MAX];        /* requester connection */
	size_t rrid_len;
	char requester[QIAO_MEMBER_MAX];
	struct conn *prov;            /* NULL once the provider is gone */
	char service[QIAO_MAX_SERVICE + 1];
	int idempotent;
	unsigned tries;
	int64_t deadline_ms;          /* wall clock */
	size_t heap_i;
	int answering;                /* an answer is being committed */
	int cache_kind;               /* CK_* */
	char cache_id[QIAO_MAX_SERVICE + 1];
	uint8_t cache_key[32];
	int stale_ok;
	int64_t t0_us;                /* monotonic µs, the request received (gw_metrics) */
};

/* A member subscribed to licence events, and the event in flight to it. */
struct sub {
	char member[QIAO_MEMBER_MAX];
	int inflight;
	uint8_t msgid[QIAO_MSGID_LEN];
	uint64_t seq;
	int64_t deadline;             /* monotonic */
	int64_t retry_at;             /* monotonic: after an error */
	qiao_envelope_t *req;         /* the notification sent */
	uint64_t delivered;
};

struct counters {
	uint64_t received, requests, responses, errors_forwarded, events;
	uint64_t refused[32];         /* by ErrorCode */
	uint64_t notices, zap_ok, zap_refused, timeouts, provider_gone, retries;
	uint64_t bad_signatures, replays, dropped_sends, late_answers, reloads, reload_failures;
	uint64_t conn_busy;           /* envelopes refused: their connection had too many being verified */
	uint64_t commit_failures, audit_entries, audit_failures, zap_unaudited;
	uint64_t cache_hits, cache_misses, cache_stale, cache_refused, cache_invalidations, notify_sent, notify_acked;
};

struct gw_gate {
	struct gw_config *cfg;
	qiao_keys_t *keys;
	struct qiao_wire_limits wl;
	void *ctx, *router, *zap;
	int admin_fd;
	char admin_path[108];
	qiao_store_t *st;
	qiao_table_t *replay_tbl;
	audit_log_t *audit;
	gw_cache_t *cache;
	struct sub *subs;
	size_t nsubs;
	int64_t next_notify;
	qiao_gc_t *gc;
	uint64_t audit_submitted;     /* audit entries handed to the writer (the engine's included) */
	uint64_t wf_audited;          /* the workflow engine's count when last looked at */
	gw_wf_t *wf;                  /* the workflow engine, or NULL */
	char wf_endpoint[300];        /* where it connects */
	uint64_t audit_at_ckpt;       /* ... when the last checkpoint op was submitted */
	int64_t next_ckpt;            /* monotonic ms */
	int64_t last_ckpt_ms;         /* wall clock of the last checkpoint op */
	int64_t zap_window;           /* CONNECTION_REFUSED entries: rate limit (monotonic s) */
	unsigned zap_logged;
	gw_mbox_t *vq;                /* to the verify threads */
	gw_mbox_t *rq;                /* back to the reactor */
	pthread_t *vthreads;
	unsigned nvthreads;
	atomic_uint vqueued;
	unsigned verifying;           /* jobs handed to the verify threads, not back yet */
	int burst_first;              /* the message in hand is the first of its zmq_poll wake-up */
	unsigned outstanding;         /* jobs handed to verify or commit */
	gw_map_t *conns;              /* rid -> conn */
	struct conn *conn_list;
	size_t nconns;
	gw_map_t *slots;              /* key16(service id) -> slot */
	gw_map_t *mcounts;            /* key16(member) -> mcount */
	gw_map_t *pending;            /* msgid -> pend */
	struct pend **heap;           /* by deadline */
	size_t nheap, capheap;
	gw_map_t *recent;             /* msgid -> (void*)1: ids accepted, not yet durable */
	int draining;
	int64_t started_ms;
	int64_t next_sweep;
	struct counters c;
	/* metrics { } (gw_metrics.h): the endpoint, and what /healthz judges by */
	gw_metrics_t *met;
	int64_t next_met;             /* monotonic ms */
	int commit_rc;                /* of the most recent durable commit (a replay is not a failure) */
	uint64_t commits_failing;     /* failed commits since the last one that wrote */
	int64_t commit_failed_mono;   /* s_mono_ms() of the latest failed commit; 0: none */
	int commit_failed_rc;         /* ... and its code */
	uint64_t met_ck_size;         /* tree size of the latest checkpoint seen */
	int64_t uncovered_since;      /* monotonic ms: entries uncovered since, 0 none */
};

/* ---- deadline heap -------------------------------------------------------- */

static void s_heap_swap(gw_gate_t *g, size_t i, size_t j)
{
	struct pend *t = g->heap[i];
	g->heap[i] = g->heap[j];
	g->heap[j] = t;
	g->heap[i]->heap_i = i;
	g->heap[j]->heap_i = j;
}

static void s_heap_up(gw_gate_t *g, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (g->heap[p]->deadline_ms <= g->heap[i]->deadline_ms)
			break;
		s_heap_swap(g, i, p);
		i = p;
	}
}

static void s_heap_down(gw_gate_t *g, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < g->nheap && g->heap[l]->deadline_ms < g->heap[m]->deadline_ms)
			m = l;
		if (r < g->nheap && g->heap[r]->deadline_ms < g->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			return;
		s_heap_swap(g, i, m);
		i = m;
	}
}

static int s_heap_push(gw_gate_t *g, struct pend *p)
{
	if (g->nheap == g->capheap) {
		size_t nc = g->capheap ? 2 * g->capheap : 256;
		struct pend **nh = realloc(g->heap, nc * sizeof *nh);
		if (!nh)
			return QIAO_ENOMEM;
		g->heap = nh;
		g->capheap = nc;
	}
	p->heap_i = g->nheap;
	g->heap[g->nheap++] = p;
	s_heap_up(g, p->heap_i);
	return 0;
}

static void s_heap_remove(gw_gate_t *g, struct pend *p)
{
	size_t i = p->heap_i;
	if (i >= g->nheap || g->heap[i] != p)
		return;
	g->nheap--;
	if (i != g->nheap) {
		g->heap[i] = g->heap[g->nheap];
		g->heap[i]->heap_i = i;
		s_heap_down(g, i);
		s_heap_up(g, i);
	}
}

/* ---- member counters ------------------------------------------------------ */

static struct mcount *s_mcount(gw_gate_t *g, const char *member, int create)
{
	uint8_t k[16];
	s_key16(member, k);
	struct mcount *m = gw_map_get(g->mcounts, k, 16);
	if (m || !create)
		return m;
	m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	snprintf(m->member, sizeof m->member, "%s", member);
	if (gw_map_put(g->mcounts, k, 16, m) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

/* ---- sending -------------------------------------------------------------- */

/* Send frames to a connection; never blocks.  0, or -1 when the peer is gone
 * or its queue is full (counted, logged at debug). */
static int s_send(gw_gate_t *g, const uint8_t *rid, size_t rid_len, const struct qiao_frame *f, size_t n)
{
	if (zmq_send(g->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (zmq_send(g->router, f[i].data, f[i].len, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
			goto fail; /* libzmq sends a multipart message whole or not at all */
	struct conn *c = gw_map_get(g->conns, rid, rid_len);
	if (c)
		c->last_send = s_mono_ms();
	return 0;
fail:;
	int e = errno;
	g->c.dropped_sends++;
	log_debug("send.failed reason=\"%s\"", zmq_strerror(e));
	if (e == EHOSTUNREACH) {
		/* the peer is gone: the timers drop the connection */
		struct conn *gone = gw_map_get(g->conns, rid, rid_len);
		if (gone)
			gone->dead = 1;
		return 1;
	}
	return -1;
}

static void s_send_cmd(gw_gate_t *g, const uint8_t *rid, size_t rid_len, uint8_t cmd, const void *pb, size_t pblen)
{
	uint8_t c[QIAO_CMD_LEN];
	qiao_cmd_make(cmd, c);
	struct qiao_frame f[2] = {{c, sizeof c}, {pb, pblen}};
	(void)s_send(g, rid, rid_len, f, pb ? 2 : 1);
}

static void s_notice(gw_gate_t *g, const uint8_t *rid, size_t rid_len, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void s_notice(gw_gate_t *g, const uint8_t *rid, size_t rid_len, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	Qiao__V1__ErrorReply e = QIAO__V1__ERROR_REPLY__INIT;
	e.code = (Qiao__V1__ErrorCode)code;
	e.message = msg;
	e.origin = (char *)gw_config_gateway(g->cfg)->member;
	uint8_t buf[1024];
	size_t n = qiao__v1__error_reply__get_packed_size(&e);
	if (n > sizeof buf)
		return;
	qiao__v1__error_reply__pack(&e, buf);
	g->c.notices++;
	s_send_cmd(g, rid, rid_len, QIAO_CMD_NOTICE, buf, n);
}

/* ---- audit events ------------------------------------------------------- */

static void s_aev_free(struct aev *e)
{
	free(e->reason);
	free(e->detail);
	free(e->hdr);
	free(e->ctx);
	free(e->dir);
	free(e->dir_names);
	free(e->cached_id);
	memset(e, 0, sizeof *e);
}

/* Fill ev about envelope `about` (copies what it keeps); ctx (may be NULL)
 * is the request an answer belongs to.  0 or QIAO_ENOMEM. */
static int s_aev_about(struct aev *e, int type, int outcome, int code, const char *reason, const char *requester,
		       const char *provider, const qiao_envelope_t *about, const qiao_envelope_t *ctx)
{
	memset(e, 0, sizeof *e);
	e->type = type;
	e->outcome = outcome;
	e->code = code;
	snprintf(e->requester, sizeof e->requester, "%s", requester ? requester : "");
	snprintf(e->provider, sizeof e->provider, "%s", provider ? provider : "");
	if (reason && !(e->reason = strndup(reason, 1023)))
		return QIAO_ENOMEM;
	if (about && about->header_len) {
		if (!(e->hdr = malloc(about->header_len)))
			return QIAO_ENOMEM;
		memcpy(e->hdr, about->header, about->header_len);
		e->hdr_len = about->header_len;
		memcpy(e->sig, about->sig, QIAO_SIG_LEN);
		e->body_size = (uint32_t)about->body_len;
	}
	if (ctx && ctx->header_len) {
		if (!(e->ctx = malloc(ctx->header_len)))
			return QIAO_ENOMEM;
		memcpy(e->ctx, ctx->header, ctx->header_len);
		e->ctx_len = ctx->header_len;
		if (ctx->hdr && ctx->hdr->body_hash.len == QIAO_HASH_LEN) {
			memcpy(e->req_body_hash, ctx->hdr->body_hash.data, QIAO_HASH_LEN);
			e->has_req_body_hash = 1;
		}
	}
	return 0;
}

static struct job *s_job_new(gw_gate_t *g, int kind, const uint8_t *rid, size_t rid_len, const char *member)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->g = g;
	j->kind = kind;
	j->t0_us = s_mono_us();
	if (rid && rid_len <= RID_MAX) {
		memcpy(j->rid, rid, rid_len);
		j->rid_len = rid_len;
	}
	snprintf(j->member, sizeof j->member, "%s", member ? member : "");
	return j;
}

static void s_job_free(struct job *j)
{
	if (!j)
		return;
	qiao_envelope_destroy(&j->env);
	qiao_envelope_destroy(&j->out);
	for (int i = 0; i < j->nev; i++)
		s_aev_free(&j->ev[i]);
	free(j->cval.bytes);
	free(j->event);
	free(j);
}

static void s_commit(gw_gate_t *g, struct job *j);

/* Seal an ERROR answering `req` (signed by the gateway) for `recipient`.
 * NULL when even a stripped-down answer cannot be sealed (why[] says). */
static qiao_envelope_t *s_seal_error(gw_gate_t *g, const qiao_envelope_t *req, const char *recipient, int code,
				     const char *field, const char *missing_rule, uint32_t retry_after_ms,
				     const char *msg, char *why, size_t whylen)
{
	const char *gwm = gw_config_gateway(g->cfg)->member;
	Qiao__V1__ErrorReply e = QIAO__V1__ERROR_REPLY__INIT;
	e.code = (Qiao__V1__ErrorCode)code;
	e.message = (char *)msg;
	e.field = (char *)(field ? field : "");
	e.missing_rule = (char *)(missing_rule ? missing_rule : "");
	e.retry_after_ms = retry_after_ms;
	e.origin = (char *)gwm;
	size_t blen = qiao__v1__error_reply__get_packed_size(&e);
	uint8_t *body = malloc(blen ? blen : 1);
	if (!body) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	qiao__v1__error_reply__pack(&e, body);

	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__ERROR, gwm, &h, store);
	h.recipient = (char *)recipient;
	h.body_type = "qiao.v1.ErrorReply";
	const Qiao__V1__Header *rh = req->hdr;
	/* Text fields of a refused request may be what was wrong with it:
	 * answer with them only when they pass the rules. */
	if (qiao_utf8_chars(rh->user_id, strlen(rh->user_id)) < 0 || strlen(rh->user_id) > QIAO_MAX_USER)
		h.user_id = "";
	if (strlen(rh->case_id) > QIAO_MAX_CASE)
		h.case_id = "";
	qiao_envelope_t *out = NULL;
	int rc = qiao_envelope_seal(&h, body, blen, g->keys->sign_sk, &g->wl, &out, why, whylen);
	if (rc != 0) {
		/* e.g. the service name itself is invalid: again without the
		 * fields that may be at fault */
		h.service = "";
		h.case_id = "";
		h.user_id = "";
		rc = qiao_envelope_seal(&h, body, blen, g->keys->sign_sk, &g->wl, &out, why, whylen);
	}
	free(body);
	return rc == 0 ? out : NULL;
}

/*
 * Answer `req` with an ERROR signed by the gateway, sent to the connection
 * rid (whose authenticated member becomes the recipient) once its audit
 * entry (`ev_type` about the request) is durable.  Falls back to a NOTICE
 * when the request's fields are too broken to be answered.
 */
static const char *s_own_service(gw_gate_t *g, const char *service);

/* Count an answered request for gw_metrics: `service` as the request named
 * it (only registered ids and the gateway's own services become labels),
 * timed from p->t0_us when it was routed (p may be NULL). */
static void s_met_answered(gw_gate_t *g, const char *service, int code, const struct pend *p)
{
	if (!g->met)
		return;
	const struct gw_service *s = gw_config_service(g->cfg, service);
	const char *own = s ? NULL : s_own_service(g, service);
	gw_metrics_request(g->met, s ? s->id : own ? own : "unknown", code ? s_code_name(code) : "ok",
			   p && p->t0_us ? (double)(s_mono_us() - p->t0_us) / 1e6 : -1.0);
}

static void s_answer(gw_gate_t *g, int ev_type, const qiao_envelope_t *req, const uint8_t *rid, size_t rid_len,
		     const char *recipient, const char *provider, int code, const char *field,
		     const char *missing_rule, uint32_t retry_after_ms, const char *fmt, ...)
	__attribute__((format(printf, 12, 13)));
static void s_answer(gw_gate_t *g, int ev_type, const qiao_envelope_t *req, const uint8_t *rid, size_t rid_len,
		     const char *recipient, const char *provider, int code, const char *field,
		     const char *missing_rule, uint32_t retry_after_ms, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (code > 0 && code < 32)
		g->c.refused[code]++;
	const Qiao__V1__Header *rh = req->hdr;
	s_met_answered(g, rh->service, code, rh->message_id.len == QIAO_MSGID_LEN
						       ? gw_map_get(g->pending, rh->message_id.data, QIAO_MSGID_LEN)
						       : NULL);
	char mid[33];
	qiao_hex(rh->message_id.data, rh->message_id.len == QIAO_MSGID_LEN ? QIAO_MSGID_LEN : 0, mid);
	char q[300];
	log_info("request.refused code=%s member=%s msg_id=%s case_id=\"%s\" service=\"%s\" reason=\"%s\"",
		 s_code_name(code), recipient, mid, gw_log_q(rh->case_id, q, 80), gw_log_q(rh->service, q + 100, 200),
		 gw_log_q(msg, q + 200, 100));
	char why[200];
	qiao_envelope_t *out = s_seal_error(g, req, recipient, code, field, missing_rule, retry_after_ms, msg, why,
					    sizeof why);
	if (!out) {
		s_notice(g, rid, rid_len, code, "%s (%s)", msg, why);
		return;
	}
	struct job *j = s_job_new(g, K_SEND, rid, rid_len, recipient);
	if (!j || s_aev_about(&j->ev[0], ev_type, QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_FAILURE, code, msg,
			      recipient, provider, req, NULL) != 0) {
		/* no memory to audit: the refusal still goes out */
		log_error("audit.skipped reason=\"out of memory\" msg_id=%s", mid);
		struct qiao_frame f[4];
		qiao_envelope_frames(out, f);
		(void)s_send(g, rid, rid_len, f, 4);
		qiao_envelope_destroy(&out);
		if (j)
			j->nev = 1;
		s_job_free(j);
		return;
	}
	j->nev = 1;
	j->out = out;
	s_commit(g, j);
}

#define AEV(x) QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_##x
#define OUTCOME(x) QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_##x

/* A refusal by the gateway (audited REQUEST_REFUSED). */
#define s_error(g, req, rid, rid_len, recipient, code, field, rule, retry, ...)                                   \
	s_answer(g, AEV(REQUEST_REFUSED), req, rid, rid_len, recipient, NULL, code, field, rule, retry, __VA_ARGS__)

/* ---- connections ---------------------------------------------------------- */

static struct slot *s_slot(gw_gate_t *g, const char *id, int create)
{
	uint8_t k[16];
	s_key16(id, k);
	struct slot *s = gw_map_get(g->slots, k, 16);
	if (s || !create)
		return s;
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	snprintf(s->id, sizeof s->id, "%s", id);
	if (gw_map_put(g->slots, k, 16, s) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static void s_slot_remove(gw_gate_t *g, const char *id, struct conn *c)
{
	struct slot *s = s_slot(g, id, 0);
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == c) {
			s->v[i] = s->v[--s->n];
			break;
		}
}

static void s_conn_unroute(gw_gate_t *g, struct conn *c)
{
	for (size_t i = 0; i < c->nsvcs; i++) {
		s_slot_remove(g, c->svcs[i], c);
		free(c->svcs[i]);
	}
	free(c->svcs);
	c->svcs = NULL;
	c->nsvcs = 0;
}

static void s_pend_finish(gw_gate_t *g, struct pend *p);
static void s_route(gw_gate_t *g, struct pend *p);

/* The connection is dead (silent for too long) or went away: stop routing
 * to it, and answer or re-route what it had in flight. */
static void s_conn_drop(gw_gate_t *g, struct conn *c, const char *why)
{
	log_info("adapter.gone member=%s instance=\"%s\" peer=%s inflight=%u reason=\"%s\"", c->member, c->instance,
		 c->peer, c->inflight, why);
	s_conn_unroute(g, c);
	gw_map_del(g->conns, c->rid, c->rid_len);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conn_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->nconns--;
	if (c->inflight) {
		/* collect first: re-routing changes the heap */
		struct pend **v = malloc(c->inflight * sizeof *v);
		size_t n = 0;
		for (size_t i = 0; v && i < g->nheap && n < c->inflight; i++)
			if (g->heap[i]->prov == c && !g->heap[i]->answering)
				v[n++] = g->heap[i];
		for (size_t i = 0; i < n; i++) {
			struct pend *p = v[i];
			p->prov = NULL;
			if (p->idempotent && p->tries <= gw_config_limits(g->cfg)->idempotent_retries) {
				g->c.retries++;
				char mid[33];
				qiao_hex(p->msgid, QIAO_MSGID_LEN, mid);
				char cq[80];
				log_info("request.retry msg_id=%s case_id=%s service=%s try=%u", mid,
					 gw_log_q(p->req && p->req->hdr ? p->req->hdr->case_id : "", cq, sizeof cq), p->service,
					 p->tries + 1);
				s_route(g, p);
			} else {
				g->c.provider_gone++;
				s_answer(g, AEV(ERROR), p->req, p->rrid, p->rrid_len, p->requester, c->member,
					 QIAO__V1__ERROR_CODE__PROVIDER_GONE, NULL, NULL, 0,
					"the provider's instance (%s) went away with the request in flight; "
					"it may or may not have been processed",
					c->member);
				s_pend_finish(g, p);
			}
		}
		free(v);
	}
	/* pendings whose answer is being committed keep a dangling pointer
	 * otherwise */
	for (size_t i = 0; i < g->nheap; i++)
		if (g->heap[i]->prov == c)
			g->heap[i]->prov = NULL;
	free(c);
}

static struct conn *s_conn_get(gw_gate_t *g, const uint8_t *rid, size_t rid_len, zmq_msg_t *first)
{
	struct conn *c = gw_map_get(g->conns, rid, rid_len);
	if (c)
		return c;
	const char *user = zmq_msg_gets(first, "User-Id");
	if (!user || !*user || strlen(user) >= QIAO_MEMBER_MAX || !gw_config_member(g->cfg, user)) {
		/* cannot happen with CURVE + ZAP; be safe */
		log_warn("message.dropped reason=\"connection not bound to a member\"");
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	memcpy(c->rid, rid, rid_len);
	c->rid_len = rid_len;
	snprintf(c->member, sizeof c->member, "%s", user);
	/* the CURVE key s_on_zap admitted, as ZAP metadata: a reload that
	 * retires the key drops the connection */
	const char *ck = zmq_msg_gets(first, "X-Qiao-Curve");
	c->has_curve = ck && qiao_b64_decode_exact(ck, c->curve, 32) == 0;
	const char *addr = zmq_msg_gets(first, "Peer-Address");
	snprintf(c->peer, sizeof c->peer, "%s", addr ? addr : "?");
	c->last_recv = c->last_send = s_mono_ms();
	c->since_ms = qiao_now_ms();
	if (gw_map_put(g->conns, rid, rid_len, c) != 0) {
		free(c);
		return NULL;
	}
	c->next = g->conn_list;
	if (g->conn_list)
		g->conn_list->prev = c;
	g->conn_list = c;
	g->nconns++;
	log_info("adapter.connected member=%s peer=%s", c->member, c->peer);
	return c;
}

/* ---- WELCOME / DIRECTORY -------------------------------------------------- */

/* Every member's key, for Welcome.directory and Directory.members; a
 * member in a key rotation is listed twice (sign_public, then
 * next_sign_public). */
static Qiao__V1__MemberKey **s_directory(gw_gate_t *g, Qiao__V1__MemberKey **store_out, size_t *n)
{
	size_t nm = gw_config_member_count(g->cfg), nk = nm;
	for (size_t i = 0; i < nm; i++)
		nk += gw_config_member_at(g->cfg, i)->has_next_sign;
	Qiao__V1__MemberKey *keys = calloc(nk ? nk : 1, sizeof *keys);
	Qiao__V1__MemberKey **ptrs = calloc(nk ? nk : 1, sizeof *ptrs);
	if (!keys || !ptrs) {
		free(keys);
		free(ptrs);
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < nm; i++) {
		const struct gw_member *m = gw_config_member_at(g->cfg, i);
		for (int x = 0; x < 1 + m->has_next_sign; x++, k++) {
			qiao__v1__member_key__init(&keys[k]);
			keys[k].member = (char *)m->id;
			keys[k].sign_public.data = (uint8_t *)(x ? m->next_sign_public : m->sign_public);
			keys[k].sign_public.len = 32;
			ptrs[k] = &keys[k];
		}
	}
	*store_out = keys;
	*n = nk;
	return ptrs;
}

/* Re-resolve a connection's services against the current config (after
 * READY, and after a reload) and send WELCOME. */
static void s_welcome(gw_gate_t *g, struct conn *c, char **offered, size_t noffered)
{
	const struct gw_member *m = gw_config_member(g->cfg, c->member);
	s_conn_unroute(g, c);
	char **acc = calloc(noffered ? noffered : 1, sizeof *acc);
	Qiao__V1__RefusedService *rs = calloc(noffered ? noffered : 1, sizeof *rs);
	Qiao__V1__RefusedService **rsp = calloc(noffered ? noffered : 1, sizeof *rsp);
	char reasons[READY_MAX_SERVICES][96];
	size_t nacc = 0, nref = 0;
	if (!acc || !rs || !rsp)
		goto out;
	for (size_t i = 0; i < noffered; i++) {
		const char *why = NULL;
		char id[QIAO_MAX_SERVICE + 1];
		snprintf(id, sizeof id, "%s/%s", c->member, offered[i]);
		const struct gw_service *s = m ? gw_config_service(g->cfg, id) : NULL;
		if (!m)
			why = "the member is no longer registered";
		else if (!s || s->provider != m)
			why = "not registered for this member";
		for (size_t j = 0; !why && j < nacc; j++)
			if (strcmp(acc[j], id) == 0)
				why = "offered twice";
		if (why) {
			qiao__v1__refused_service__init(&rs[nref]);
			rs[nref].service = offered[i];
			snprintf(reasons[nref], sizeof reasons[nref], "%s", why);
			rs[nref].reason = reasons[nref];
			rsp[nref] = &rs[nref];
			nref++;
			log_warn("ready.refused member=%s service=\"%.200s\" reason=\"%s\"", c->member, offered[i], why);
			continue;
		}
		acc[nacc] = strdup(s->id);
		if (!acc[nacc])
			goto out;
		struct slot *sl = s_slot(g, s->id, 1);
		if (!sl)
			goto out;
		if (sl->n == sl->cap) {
			size_t nc = sl->cap ? 2 * sl->cap : 4;
			struct conn **nv = realloc(sl->v, nc * sizeof *nv);
			if (!nv)
				goto out;
			sl->v = nv;
			sl->cap = nc;
		}
		sl->v[sl->n++] = c;
		nacc++;
	}
	c->svcs = acc;
	c->nsvcs = nacc;
	acc = NULL;

	Qiao__V1__Welcome w = QIAO__V1__WELCOME__INIT;
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	w.member = c->member;
	w.gateway = (char *)gw_config_gateway(g->cfg)->member;
	w.gateway_sign_public.data = g->keys->sign_pk;
	w.gateway_sign_public.len = 32;
	w.heartbeat_ms = (uint32_t)lim->heartbeat_ms;
	w.liveness = lim->heartbeat_liveness;
	w.max_header = (uint32_t)lim->max_header;
	w.max_body = lim->max_body;
	w.max_skew_ms = lim->clock_skew_ms;
	w.accepted = c->svcs;
	w.n_accepted = c->nsvcs;
	w.refused = rsp;
	w.n_refused = nref;
	Qiao__V1__ServiceAlias al[READY_MAX_SERVICES], *alp[READY_MAX_SERVICES];
	size_t nal = 0;
	for (size_t i = 0; i < c->nsvcs && nal < READY_MAX_SERVICES; i++) {
		const struct gw_service *s = gw_config_service(g->cfg, c->svcs[i]);
		if (s && s->alias) {
			qiao__v1__service_alias__init(&al[nal]);
			al[nal].alias = (char *)s->alias;
			al[nal].service = (char *)s->id;
			alp[nal] = &al[nal];
			nal++;
		}
	}
	w.aliases = alp;
	w.n_aliases = nal;
	Qiao__V1__MemberKey *keys = NULL;
	w.directory = s_directory(g, &keys, &w.n_directory);
	size_t len = qiao__v1__welcome__get_packed_size(&w);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf) {
		qiao__v1__welcome__pack(&w, buf);
		s_send_cmd(g, c->rid, c->rid_len, QIAO_CMD_WELCOME, buf, len);
	}
	free(buf);
	free(keys);
	free(w.directory);
	log_info("adapter.ready member=%s instance=\"%s\" sdk=\"%s\" accepted=%zu refused=%zu", c->member, c->instance,
		 c->sdk, c->nsvcs, nref);
out:
	if (acc) {
		for (size_t i = 0; i < nacc; i++)
			free(acc[i]);
		free(acc);
	}
	free(rs);
	free(rsp);
}

static void s_on_ready(gw_gate_t *g, struct conn *c, const struct qiao_frame *f, size_t n)
{
	if (n != 2) {
		s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "READY takes exactly one frame after the command");
		return;
	}
	Qiao__V1__Ready *r = qiao__v1__ready__unpack(NULL, f[1].len, f[1].data);
	if (!r) {
		s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "READY does not decode as qiao.v1.Ready");
		return;
	}
	const char *bad = NULL;
	if (r->n_services > READY_MAX_SERVICES)
		bad = "more than 64 services";
	else if (strlen(r->instance) > 64 || qiao_utf8_chars(r->instance, strlen(r->instance)) < 0)
		bad = "instance: at most 64 bytes of UTF-8";
	else if (strlen(r->sdk) > 64 || qiao_utf8_chars(r->sdk, strlen(r->sdk)) < 0)
		bad = "sdk: at most 64 bytes of UTF-8";
	for (size_t i = 0; !bad && i < r->n_services; i++)
		if (strlen(r->services[i]) > 80)
			bad = "a service name is longer than 80 bytes";
	if (bad) {
		s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "READY refused: %s", bad);
		qiao__v1__ready__free_unpacked(r, NULL);
		return;
	}
	snprintf(c->instance, sizeof c->instance, "%s", r->instance);
	snprintf(c->sdk, sizeof c->sdk, "%s", r->sdk);
	unsigned max = gw_config_limits(g->cfg)->max_inflight_per_member;
	c->cap = r->max_inflight && r->max_inflight < max ? r->max_inflight : max;
	c->ready = 1;
	c->bye = 0;
	s_welcome(g, c, r->services, r->n_services);
	qiao__v1__ready__free_unpacked(r, NULL);
}

/* ---- routing -------------------------------------------------------------- */

static struct conn *s_pick(gw_gate_t *g, const char *svc_id, struct conn *const *avoid, size_t navoid, int *busy)
{
	struct slot *s = s_slot(g, svc_id, 0);
	*busy = 0;
	if (!s || s->n == 0)
		return NULL;
	struct conn *best = NULL;
	for (size_t k = 0; k < s->n; k++) {
		struct conn *c = s->v[(s->rr + k) % s->n];
		int skip = c->bye || c->dead;
		for (size_t a = 0; a < navoid && !skip; a++)
			skip = avoid[a] == c;
		if (skip)
			continue;
		if (c->inflight >= c->cap) {
			*busy = 1;
			continue;
		}
		if (!best || c->inflight < best->inflight)
			best = c;
	}
	s->rr++;
	if (best)
		*busy = 0;
	return best;
}

static void s_pend_finish(gw_gate_t *g, struct pend *p)
{
	s_heap_remove(g, p);
	gw_map_del(g->pending, p->msgid, QIAO_MSGID_LEN);
	if (p->prov && p->prov->inflight)
		p->prov->inflight--;
	struct mcount *m = s_mcount(g, p->requester, 0);
	if (m && m->n)
		m->n--;
	qiao_envelope_destroy(&p->req);
	free(p);
}

/* Send p->req to an instance of its service (again, for a retry). */
static void s_route(gw_gate_t *g, struct pend *p)
{
	/* an instance that turns out gone or full is skipped: the request
	 * never reached it, so trying another is safe for any service */
	struct conn *tried[8];
	size_t ntried = 0;
	for (;;) {
		int busy = 0;
		struct conn *c = s_pick(g, p->service, tried, ntried, &busy);
		if (!c) {
			if (busy || ntried)
				s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__BUSY, NULL,
					NULL, 100, "every instance of %s is working at its limit or unreachable",
					p->service);
			else
				s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__NO_INSTANCE,
					NULL, NULL, 1000, "no instance of %s is connected", p->service);
			s_pend_finish(g, p);
			return;
		}
		struct qiao_frame f[4];
		qiao_envelope_frames(p->req, f);
		if (s_send(g, c->rid, c->rid_len, f, 4) == 0) {
			p->prov = c;
			p->tries++;
			c->inflight++;
			c->served++;
			return;
		}
		if (ntried == sizeof tried / sizeof tried[0]) {
			s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL,
				NULL, 200, "no instance of %s could take the request", p->service);
			s_pend_finish(g, p);
			return;
		}
		tried[ntried++] = c;
	}
}

/* ---- discovery (services the gateway answers itself) ---------------------- */

static int s_slot_available(gw_gate_t *g, const char *id)
{
	struct slot *s = s_slot(g, id, 0);
	if (!s)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (!s->v[i]->bye)
			return 1;
	return 0;
}

/* One ServiceListing with the messages it points to; strings borrowed
 * from the config except the split member id. */
struct lst {
	Qiao__V1__ServiceListing l;
	Qiao__V1__ServiceId id;
	Qiao__V1__MemberId mid;
	Qiao__V1__ServiceDescriptor d;
	char uscc[24], sub[40];
};

static void s_listing(gw_gate_t *g, const struct gw_service *s, struct lst *x)
{
	qiao__v1__service_listing__init(&x->l);
	qiao__v1__service_id__init(&x->id);
	qiao__v1__member_id__init(&x->mid);
	qiao__v1__service_descriptor__init(&x->d);
	const char *slash = strchr(s->provider->id, '/');
	size_t ul = slash ? (size_t)(slash - s->provider->id) : 0;
	if (ul >= sizeof x->uscc)
		ul = 0;
	memcpy(x->uscc, s->provider->id, ul);
	x->uscc[ul] = '\0';
	snprintf(x->sub, sizeof x->sub, "%s", slash ? slash + 1 : "");
	x->mid.uscc = x->uscc;
	x->mid.subsystem = x->sub;
	x->id.provider = &x->mid;
	/* name without ".v<N>" */
	char name[80];
	snprintf(name, sizeof name, "%s", s->name);
	char *dot = strrchr(name, '.');
	if (dot && dot[1] == 'v')
		*dot = '\0';
	x->id.name = x->d.name = strdup(name);
	x->id.version = x->d.version = s->version;
	x->id.alias = (char *)(s->alias ? s->alias : "");
	x->d.title = (char *)s->description;
	x->d.request_type = (char *)s->request_type;
	x->d.response_type = (char *)s->response_type;
	x->d.sharing_class = (Qiao__V1__SharingClass)s->share_class;
	x->d.personal_data = s->personal;
	x->d.idempotent = s->idempotent;
	x->d.one_way = s->one_way;
	x->l.id = &x->id;
	x->l.descriptor = &x->d;
	x->l.available = s_slot_available(g, s->id);
}

static void s_listing_free(struct lst *x)
{
	free(x->id.name);
}

struct allowed_walk {
	gw_gate_t *g;
	const char *provider;
	Qiao__V1__AllowedService **v;
	size_t n, cap;
};

static int s_allowed_visit(void *arg, const struct gw_service *svc, const struct gw_rule *rule)
{
	struct allowed_walk *w = arg;
	if (w->provider[0] && strcmp(svc->provider->id, w->provider) != 0)
		return 0;
	if (w->n == w->cap)
		return 1;
	struct {
		Qiao__V1__AllowedService a;
		struct lst x;
	} *b = calloc(1, sizeof *b);
	if (!b)
		return QIAO_ENOMEM;
	Qiao__V1__AllowedService *a = &b->a;
	qiao__v1__allowed_service__init(a);
	s_listing(w->g, svc, &b->x);
	Qiao__V1__ServiceListing *l = &b->x.l;
	a->service = l;
	a->purpose_required = rule->npurposes > 0 || svc->personal || svc->share_class == GW_SHARE_CONDITIONAL;
	a->case_required = rule->require_case;
	a->rule = (char *)rule->text;
	w->v[w->n++] = a;
	return 0;
}

/* A request to one of the gateway's own services: its signed answer, or
 * NULL when the gateway refused it instead (s_error done). */
static qiao_envelope_t *s_gateway_service(gw_gate_t *g, const qiao_envelope_t *req, const uint8_t *rid,
					  size_t rid_len, const char *member, const char *name)
{
	const Qiao__V1__Header *h = req->hdr;
	uint8_t *body = NULL;
	size_t blen = 0;
	const char *rtype;
	if (strcmp(name, SVC_LIST) == 0) {
		if (strcmp(h->body_type, "qiao.v1.ListServicesRequest") != 0) {
			s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body_type", NULL, 0,
				"%s takes qiao.v1.ListServicesRequest", SVC_LIST);
			return NULL;
		}
		Qiao__V1__ListServicesRequest *q =
			qiao__v1__list_services_request__unpack(NULL, req->body_len, req->body);
		if (!q) {
			s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body", NULL, 0,
				"the body does not decode as qiao.v1.ListServicesRequest");
			return NULL;
		}
		size_t ns = gw_config_service_count(g->cfg), n = 0;
		struct lst *ls = calloc(ns ? ns : 1, sizeof *ls);
		Qiao__V1__ServiceListing **lp = calloc(ns ? ns : 1, sizeof *lp);
		if (ls && lp) {
			for (size_t i = 0; i < ns && n < 4096; i++) {
				const struct gw_service *s = gw_config_service_at(g->cfg, i);
				if (q->provider[0] && strcmp(q->provider, s->provider->id) != 0)
					continue;
				s_listing(g, s, &ls[n]);
				lp[n] = &ls[n].l;
				n++;
			}
			Qiao__V1__ListServicesReply r = QIAO__V1__LIST_SERVICES_REPLY__INIT;
			r.services = lp;
			r.n_services = n;
			r.registry_updated_ms = gw_config_loaded_ms(g->cfg);
			blen = qiao__v1__list_services_reply__get_packed_size(&r);
			body = malloc(blen ? blen : 1);
			if (body)
				qiao__v1__list_services_reply__pack(&r, body);
		}
		for (size_t i = 0; ls && i < n; i++)
			s_listing_free(&ls[i]);
		free(ls);
		free(lp);
		qiao__v1__list_services_request__free_unpacked(q, NULL);
		rtype = "qiao.v1.ListServicesReply";
	} else {
		if (strcmp(h->body_type, "qiao.v1.AllowedServicesRequest") != 0) {
			s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body_type", NULL, 0,
				"%s takes qiao.v1.AllowedServicesRequest", SVC_ALLOWED);
			return NULL;
		}
		Qiao__V1__AllowedServicesRequest *q =
			qiao__v1__allowed_services_request__unpack(NULL, req->body_len, req->body);
		if (!q) {
			s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body", NULL, 0,
				"the body does not decode as qiao.v1.AllowedServicesRequest");
			return NULL;
		}
		if (q->client[0] && strcmp(q->client, member) != 0) {
			s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__POLICY_DENIED, "client", NULL, 0,
				"only the gateway's auditor and administrator roles may ask about another member");
			qiao__v1__allowed_services_request__free_unpacked(q, NULL);
			return NULL;
		}
		struct allowed_walk w = {.g = g, .provider = q->provider, .cap = 4096};
		w.v = calloc(w.cap, sizeof *w.v);
		if (w.v && gw_policy_allowed_services(g->cfg, member, s_allowed_visit, &w) >= 0) {
			Qiao__V1__AllowedServicesReply r = QIAO__V1__ALLOWED_SERVICES_REPLY__INIT;
			r.client = (char *)member;
			r.services = w.v;
			r.n_services = w.n;
			r.policy_loaded_ms = gw_config_loaded_ms(g->cfg);
			blen = qiao__v1__allowed_services_reply__get_packed_size(&r);
			body = malloc(blen ? blen : 1);
			if (body)
				qiao__v1__allowed_services_reply__pack(&r, body);
		}
		for (size_t i = 0; w.v && i < w.n; i++) {
			/* each AllowedService heads the block that holds its listing */
			struct lst *x = (struct lst *)((char *)w.v[i]->service - offsetof(struct lst, l));
			s_listing_free(x);
			free(w.v[i]);
		}
		free(w.v);
		qiao__v1__allowed_services_request__free_unpacked(q, NULL);
		rtype = "qiao.v1.AllowedServicesReply";
	}
	if (!body) {
		s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500, "out of memory");
		return NULL;
	}
	Qiao__V1__Header rh = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__RESPONSE, gw_config_gateway(g->cfg)->member, &rh,
				     store);
	rh.body_type = (char *)rtype;
	qiao_envelope_t *out = NULL;
	char why[200];
	int rc = qiao_envelope_seal(&rh, body, blen, g->keys->sign_sk, &g->wl, &out, why, sizeof why);
	free(body);
	if (rc != 0) {
		s_error(g, req, rid, rid_len, member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 0,
			"the answer could not be sealed: %s", why);
		return NULL;
	}
	return out;
}

/* ---- replay window --------------------------------------------------------- */

/*
 * The replay record's key: the message's signed time_ms (big-endian), then
 * its id.  Keyed by the id alone, every record landed on a random leaf of
 * the table, so each group commit rewrote one leaf (and its branch path)
 * per message; in time order they are appended at the right edge, a few
 * pages per commit whatever its size.  A replay is a resend of the same
 * signed header, so it carries the same time_ms and finds the same key;
 * a message whose time_ms is outside clock_skew_ms is refused before this
 * check anyway.  (An id reused by its sender in a new message with a new
 * time is refused while the first is in flight, by `recent`, not later.)
 */
#define REPLAY_KEY_LEN (8 + QIAO_MSGID_LEN)

static void s_replay_key(const Qiao__V1__Header *h, uint8_t key[REPLAY_KEY_LEN])
{
	uint64_t t = (uint64_t)h->time_ms;
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(t >> (56 - 8 * i));
	memcpy(key + 8, h->message_id.data, QIAO_MSGID_LEN);
}

/* 1 when the message was seen (accepted before, durable or not). */
static int s_replay_seen(gw_gate_t *g, const Qiao__V1__Header *h)
{
	const uint8_t *id = h->message_id.data;
	if (gw_map_get(g->recent, id, QIAO_MSGID_LEN))
		return 1;
	qiao_txn_t *t = NULL;
	/* a lookup that fails is no proof of freshness (the record's insert
	 * would not catch a record under a store's older id-only key) */
	if (qiao_txn_begin(g->st, 0, &t) != 0)
		return -1;
	uint8_t key[REPLAY_KEY_LEN];
	s_replay_key(h, key);
	void *v = NULL;
	size_t vl = 0;
	int rc = qiao_store_get(t, g->replay_tbl, key, sizeof key, &v, &vl, NULL);
	free(v);
	/* records of a store written before the time-ordered key: the id
	 * alone (gone once replay_window_ms has passed since the upgrade) */
	if (rc != 0) {
		v = NULL;
		rc = qiao_store_get(t, g->replay_tbl, id, QIAO_MSGID_LEN, &v, &vl, NULL);
		free(v);
	}
	qiao_txn_abort(&t);
	return rc == 0 ? 1 : rc == QIAO_ENOTFOUND ? 0 : -1;
}

/* Writer thread: one audit entry from its event. */
static int s_aev_write(audit_log_t *audit, qiao_txn_t *txn, const struct aev *ev)
{
	Qiao__V1__AuditEntry e = QIAO__V1__AUDIT_ENTRY__INIT;
	e.event_type = (Qiao__V1__AuditEventType)ev->type;
	e.outcome = (Qiao__V1__AuditOutcome)ev->outcome;
	e.error_code = (Qiao__V1__ErrorCode)ev->code;
	e.refusal_reason = ev->reason ? ev->reason : "";
	e.detail = ev->detail ? ev->detail : "";
	e.requester = (char *)ev->requester;
	e.provider = (char *)ev->provider;
	Qiao__V1__Header *h = ev->hdr ? qiao__v1__header__unpack(NULL, ev->hdr_len, ev->hdr) : NULL;
	Qiao__V1__Header *c = ev->ctx ? qiao__v1__header__unpack(NULL, ev->ctx_len, ev->ctx) : NULL;
	/* who, for whom, why: from the request (ctx) for answers */
	const Qiao__V1__Header *who = c ? c : h;
	ProtobufCBinaryData subj[QIAO_MAX_SUBJECTS];
	uint8_t subj_h[QIAO_MAX_SUBJECTS][AUDIT_HASH];
	if (who) {
		e.end_user = who->user_id;
		e.service = who->service;
		e.case_id = who->case_id;
		e.purpose = who->purpose;
		e.legal_basis = who->legal_basis;
		size_t n = who->n_subjects < QIAO_MAX_SUBJECTS ? who->n_subjects : QIAO_MAX_SUBJECTS;
		for (size_t i = 0; i < n; i++) {
			const Qiao__V1__DataSubject *d = who->subjects[i];
			audit_log_subject_hash(audit, d->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID ? "RESIDENT_ID" : "USCC",
					       d->id, subj_h[i]);
			subj[i].data = subj_h[i];
			subj[i].len = AUDIT_HASH;
		}
		e.subject_hashes = subj;
		e.n_subject_hashes = n;
		e.subject_key_id = n ? AUDIT_SUBJECT_KEY_ID : 0;
	}
	if (h) {
		e.message_id = h->message_id;
		e.in_reply_to = h->in_reply_to;
		e.header.data = ev->hdr;
		e.header.len = ev->hdr_len;
		e.header_signature.data = (uint8_t *)ev->sig;
		e.header_signature.len = QIAO_SIG_LEN;
		e.signer = h->sender;
		e.body_hash = h->body_hash;
		e.body_type = h->body_type;
		e.body_size = ev->body_size;
	}
	if (ev->cached_id) {
		e.cached_object_id = ev->cached_id;
		e.cached_version = ev->cached_version;
		e.cached_object_hash.data = (uint8_t *)ev->cached_hash;
		e.cached_object_hash.len = QIAO_HASH_LEN;
	}
	if (ev->has_req_body_hash) {
		e.request_body_hash.data = (uint8_t *)ev->req_body_hash;
		e.request_body_hash.len = QIAO_HASH_LEN;
	}
	Qiao__V1__MemberKey **dirp = NULL;
	if (ev->ndir) {
		dirp = malloc(ev->ndir * sizeof *dirp);
		if (!dirp) {
			e.n_directory = 0;
		} else {
			for (size_t i = 0; i < ev->ndir; i++)
				dirp[i] = &ev->dir[i];
			e.directory = dirp;
			e.n_directory = ev->ndir;
		}
	}
	int rc = dirp || !ev->ndir ? audit_log_append(audit, txn, &e, NULL) : QIAO_ENOMEM;
	free(dirp);
	if (h)
		qiao__v1__header__free_unpacked(h, NULL);
	if (c)
		qiao__v1__header__free_unpacked(c, NULL);
	return rc;
}

/* Writer thread: the job's durable part.  A replayed message id makes the
 * operation fail (and undoes its entries). */
static int s_job_apply(qiao_txn_t *txn, void *arg)
{
	struct job *j = arg;
	if (j->replay) {
		uint8_t v = 1, key[REPLAY_KEY_LEN];
		s_replay_key(j->env->hdr, key);
		int rc = qiao_store_insert(txn, j->replay_tbl, key, sizeof key, &v, 1, j->expires_ms);
		if (rc != 0)
			return rc;
	}
	for (int i = 0; i < j->nev; i++) {
		int rc = s_aev_write(j->audit, txn, &j->ev[i]);
		if (rc != 0)
			return rc;
	}
	int stored = 0, rc = 0;
	switch (j->cache_op) {
	case C_LIC_PUT:
	case C_LIC_REFRESH:
		rc = gw_cache_licence_put(j->cache, txn, j->cache_id, &j->cval, j->cache_op == C_LIC_REFRESH, &stored);
		break;
	case C_CRED_PUT:
		rc = gw_cache_credit_put(j->cache, txn, j->cache_key, &j->cval);
		break;
	case C_PUBLISH:
		/* the newer version replaces the cached one at once; the event
		 * goes to the subscribers' outbox (a re-published old event
		 * does neither) */
		rc = gw_cache_licence_put(j->cache, txn, j->cache_id, &j->cval, 0, &stored);
		if (rc == 0)
			rc = gw_cache_outbox_publish(j->cache, txn, j->cache_id, j->cval.version, j->cval.issuer, j->event,
						     j->event_len, &stored);
		break;
	case C_CURSOR:
		rc = gw_cache_cursor_put(j->cache, txn, j->cache_id, j->cval.version);
		break;
	default:
		break;
	}
	return rc;
}

static void s_job_done(void *arg, int rc)
{
	struct job *j = arg;
	j->rc = rc;
	j->stage = ST_COMMITTED;
	gw_mbox_post(j->g->rq, &j->link);
}

/* Make the job durable (its message id when j->replay, its audit
 * entries), then continue in s_on_job. */
static void s_commit(gw_gate_t *g, struct job *j)
{
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	j->expires_ms = qiao_now_ms() + lim->replay_window_ms;
	/* the id must outlive the envelope's acceptance: s_on_envelope takes
	 * time_ms up to time_ms + clock_skew_ms inclusive, and a record is
	 * gone at its expiry itself; replay_window_ms >= 2 x clock_skew_ms
	 * leaves exactly that millisecond open otherwise */
	if (j->replay && j->env && j->env->hdr->time_ms + lim->clock_skew_ms >= j->expires_ms)
		j->expires_ms = j->env->hdr->time_ms + lim->clock_skew_ms + 1;
	j->replay_tbl = g->replay_tbl;
	j->audit = g->audit;
	j->cache = g->cache;
	j->stage = ST_COMMITTED;
	/* counted until the job comes back through the mailbox, also when
	 * it comes back at once because it could not be submitted */
	g->outstanding++;
	int rc = 0;
	if (j->replay)
		rc = gw_map_put(g->recent, j->env->hdr->message_id.data, QIAO_MSGID_LEN, (void *)1);
	if (rc == 0) {
		rc = qiao_gc_submit(g->gc, s_job_apply, j, s_job_done, j);
		if (rc != 0 && j->replay)
			gw_map_del(g->recent, j->env->hdr->message_id.data, QIAO_MSGID_LEN);
	}
	if (rc != 0) {
		j->replay = 0; /* nothing of it is in `recent` */
		j->rc = rc;
		gw_mbox_post(g->rq, &j->link); /* handled like a failed commit */
		return;
	}
	g->audit_submitted += (uint64_t)j->nev;
}

/* An audit entry of its own (no message to deliver): connection refused,
 * administrator action. */
static void s_audit_only(gw_gate_t *g, struct job *j)
{
	j->kind = K_NONE;
	s_commit(g, j);
}

/* ---- envelopes -------------------------------------------------------------- */

/* Map a qiao_envelope_open() failure to an ErrorCode and field. */
static int s_open_code(int rc, const char *why, char *field, size_t flen)
{
	field[0] = '\0';
	const char *colon = strchr(why, ':');
	if (colon && (size_t)(colon - why) < flen) {
		memcpy(field, why, (size_t)(colon - why));
		field[colon - why] = '\0';
	}
	switch (rc) {
	case QIAO_ETOOBIG:
		return QIAO__V1__ERROR_CODE__TOO_LARGE;
	case QIAO_EVERSION:
		return QIAO__V1__ERROR_CODE__UNSUPPORTED_VERSION;
	case QIAO_EBODYHASH:
		return QIAO__V1__ERROR_CODE__BODY_HASH_MISMATCH;
	case QIAO_EIDENT:
		return QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER;
	case QIAO_EFIELD:
		if (strcmp(field, "purpose") == 0 && strstr(why, "required"))
			return QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED;
		return QIAO__V1__ERROR_CODE__BAD_REQUEST;
	default:
		return QIAO__V1__ERROR_CODE__BAD_REQUEST;
	}
}

/* A message that failed qiao_envelope_open(): answer with an ERROR when the
 * header frame decodes into something answerable, else with a NOTICE. */
static void s_refuse_unopened(gw_gate_t *g, struct conn *c, const struct qiao_frame *f, size_t n, int rc,
			      const char *why)
{
	char field[64];
	int code = s_open_code(rc, why, field, sizeof field);
	if (n == 4 && f[1].len <= g->wl.max_header && rc != QIAO_EFRAMES && rc != QIAO_EDECODE) {
		Qiao__V1__Header *h = qiao__v1__header__unpack(NULL, f[1].len, f[1].data);
		if (h && h->message_id.len == QIAO_MSGID_LEN && h->kind == QIAO__V1__MESSAGE_KIND__REQUEST) {
			qiao_envelope_t fake = {0};
			fake.header = (uint8_t *)f[1].data;
			fake.header_len = f[1].len;
			fake.hdr = h;
			s_error(g, &fake, c->rid, c->rid_len, c->member, code, field, NULL, 0, "%s", why);
			qiao__v1__header__free_unpacked(h, NULL);
			return;
		}
		if (h)
			qiao__v1__header__free_unpacked(h, NULL);
	}
	if (code > 0 && code < 32)
		g->c.refused[code]++;
	log_info("message.refused member=%s code=%s reason=\"%s\"", c->member, s_code_name(code), why);
	s_notice(g, c->rid, c->rid_len, code, "message refused: %s", why);
}

/* Check the job's signature (with the member's next key during a
 * rotation); on a verify thread or, at light load, on the reactor. */
static void s_verify_job(struct job *j)
{
	j->rc = qiao_envelope_verify(j->env, j->pk);
	if (j->rc != 0 && j->has_pk2 && qiao_envelope_verify(j->env, j->pk2) == 0) {
		j->rc = 0;
		memcpy(j->pk, j->pk2, 32); /* the key that verified */
	}
	j->stage = ST_VERIFIED;
}

static void s_on_job(gw_gate_t *g, struct job *j);

static void s_on_envelope(gw_gate_t *g, struct conn *c, const struct qiao_frame *f, size_t n)
{
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	if (!c->ready) {
		s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "send READY before any envelope");
		return;
	}
	qiao_envelope_t *env = NULL;
	char why[256];
	int rc = qiao_envelope_open(f, n, &g->wl, &env, why, sizeof why);
	if (rc != 0) {
		s_refuse_unopened(g, c, f, n, rc, why);
		return;
	}
	const Qiao__V1__Header *h = env->hdr;
	int is_req = h->kind == QIAO__V1__MESSAGE_KIND__REQUEST || h->kind == QIAO__V1__MESSAGE_KIND__EVENT;
	if (strcmp(h->sender, c->member) != 0) {
		char q[120];
		log_warn("impersonation.refused member=%s claimed=%s peer=%s", c->member, gw_log_q(h->sender, q, sizeof q),
			 c->peer);
		if (is_req)
			s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__NOT_AUTHENTICATED, "sender",
				NULL, 0, "header.sender is %s but this connection authenticated as %s", h->sender,
				c->member);
		else
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__NOT_AUTHENTICATED,
				 "answer refused: header.sender is %s but this connection authenticated as %s",
				 h->sender, c->member);
		qiao_envelope_destroy(&env);
		return;
	}
	int64_t skew = h->time_ms - qiao_now_ms();
	if (skew > lim->clock_skew_ms || -skew > lim->clock_skew_ms) {
		if (is_req)
			s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__STALE_TIME, "time_ms", NULL,
				0,
				"clock skew: time_ms is %+" PRId64 " ms from the gateway's clock, beyond the %" PRId64
				" ms allowed (limits.clock_skew_ms); check the sender's clock (NTP)",
				skew, lim->clock_skew_ms);
		else
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__STALE_TIME,
				 "answer refused: clock skew: time_ms is %+" PRId64 " ms from the gateway's clock, "
				 "beyond the %" PRId64 " ms allowed",
				 skew, lim->clock_skew_ms);
		qiao_envelope_destroy(&env);
		return;
	}
	int seen = s_replay_seen(g, h);
	if (seen < 0) {
		if (is_req)
			s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL, NULL,
				STORE_RETRY_MS, "the gateway's store cannot be read: the replay check failed");
		else
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__UNAVAILABLE,
				 "answer refused: the gateway's store cannot be read (replay check)");
		qiao_envelope_destroy(&env);
		return;
	}
	if (seen) {
		g->c.replays++;
		if (is_req)
			s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__REPLAY, "message_id", NULL,
				0, "this message id was seen before");
		else
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__REPLAY, "answer refused: message id seen before");
		qiao_envelope_destroy(&env);
		return;
	}
	/* an answer is not held to max_pending: it ends a pending request
	 * (one that matches none is dropped after its verification), and
	 * refusing it would keep the gateway at its limit until timeouts */
	if (is_req && g->outstanding + gw_map_count(g->pending) >= lim->max_pending) {
		s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__BUSY, NULL, NULL, 100,
			"the gateway is at its limit of %u messages in progress", lim->max_pending);
		qiao_envelope_destroy(&env);
		return;
	}
	/* One connection may not fill the verify queue: it is first come,
	 * first served, so everybody else's envelopes would wait behind its
	 * backlog, and a flood of bad signatures (an id is remembered only
	 * once its signature verified, so one envelope can be sent again and
	 * again, each a verification) would starve every other member.  A
	 * well-behaved adapter has at most max_inflight_per_member requests
	 * and as many answers in progress. */
	if (c->verifying >= 2 * lim->max_inflight_per_member) {
		g->c.conn_busy++;
		if (is_req)
			s_error(g, env, c->rid, c->rid_len, c->member, QIAO__V1__ERROR_CODE__BUSY, NULL, NULL, 100,
				"%u envelopes of this connection are being verified (at most %u at once)", c->verifying,
				2 * lim->max_inflight_per_member);
		else
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BUSY,
				 "answer refused: %u envelopes of this connection are being verified", c->verifying);
		qiao_envelope_destroy(&env);
		return;
	}
	const struct gw_member *m = gw_config_member(g->cfg, c->member);
	if (!m) { /* removed by a reload */
		s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__NOT_AUTHENTICATED, "member no longer registered");
		qiao_envelope_destroy(&env);
		return;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		qiao_envelope_destroy(&env);
		return;
	}
	j->g = g;
	j->env = env;
	j->t0_us = s_mono_us();
	memcpy(j->rid, c->rid, c->rid_len);
	j->rid_len = c->rid_len;
	snprintf(j->member, sizeof j->member, "%s", c->member);
	memcpy(j->pk, m->sign_public, 32);
	if (m->has_next_sign) {
		memcpy(j->pk2, m->next_sign_public, 32);
		j->has_pk2 = 1;
	}
	j->stage = ST_VERIFY;
	g->outstanding++;
	/* Light load (the verify threads have nothing, and this is the first
	 * message of its wake-up): verify here.  Handing the job to a verify
	 * thread and back costs two thread wake-ups, about as long as the
	 * verification itself; under load the threads take every message
	 * but the first of each burst, so the reactor keeps routing. */
	if (g->verifying == 0 && g->burst_first) {
		s_verify_job(j);
		s_on_job(g, j);
		return;
	}
	j->threaded = 1;
	g->verifying++;
	c->verifying++;
	atomic_fetch_add(&g->vqueued, 1);
	gw_mbox_post(g->vq, &j->link);
}

/* ---- the licence and credit cache ------------------------------------------ */

static int s_cache_kind(const struct gw_service *s)
{
	if (strcmp(s->request_type, "qiao.v1.LicenceByIdRequest") == 0)
		return CK_LICENCE_ID;
	if (strcmp(s->request_type, "qiao.v1.LicenceByHolderRequest") == 0)
		return CK_LICENCE_HOLDER;
	if (strcmp(s->request_type, "qiao.v1.CreditRecordsRequest") == 0)
		return CK_CREDIT;
	return CK_NONE;
}

/* Seal a RESPONSE from the gateway answering req with body. */
static qiao_envelope_t *s_seal_response(gw_gate_t *g, const qiao_envelope_t *req, const char *body_type,
					const uint8_t *body, size_t blen)
{
	Qiao__V1__Header rh = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__RESPONSE, gw_config_gateway(g->cfg)->member, &rh,
				     store);
	rh.body_type = (char *)body_type;
	qiao_envelope_t *out = NULL;
	char why[200];
	if (qiao_envelope_seal(&rh, body, blen, g->keys->sign_sk, &g->wl, &out, why, sizeof why) != 0) {
		log_error("seal.failed reason=\"%s\"", why);
		return NULL;
	}
	return out;
}

/* Answer j's request from the cached copy v (stale or fresh).  Consumes j. */
static void s_cache_serve(gw_gate_t *g, struct job *j, const struct gw_service *s, struct gw_cached *v, int stale)
{
	const char *gwm = gw_config_gateway(g->cfg)->member;
	Qiao__V1__CacheMarking cm = QIAO__V1__CACHE_MARKING__INIT;
	cm.from_cache = 1;
	cm.cached_version = v->version;
	cm.stale = stale;
	cm.fetched_ms = v->fetched_ms;
	cm.fresh_until_ms = v->fresh_until_ms;
	uint8_t *body = NULL;
	size_t blen = 0;
	uint8_t hash[QIAO_HASH_LEN];
	char id[QIAO_MAX_SERVICE + 1];
	if (j->cache_kind == CK_LICENCE_ID) {
		Qiao__V1__SignedLicence *sl = qiao__v1__signed_licence__unpack(NULL, v->len, v->bytes);
		if (sl) {
			Qiao__V1__ServedLicence sv = QIAO__V1__SERVED_LICENCE__INIT;
			sv.licence = sl;
			sv.cache = &cm;
			Qiao__V1__LicenceByIdReply r = QIAO__V1__LICENCE_BY_ID_REPLY__INIT;
			r.licence = &sv;
			blen = qiao__v1__licence_by_id_reply__get_packed_size(&r);
			body = malloc(blen ? blen : 1);
			if (body)
				qiao__v1__licence_by_id_reply__pack(&r, body);
			crypto_hash_sha256(hash, sl->licence.data, sl->licence.len);
			qiao__v1__signed_licence__free_unpacked(sl, NULL);
		}
		snprintf(id, sizeof id, "%s", j->cache_id);
	} else {
		Qiao__V1__CreditRecordsReply *cr = qiao__v1__credit_records_reply__unpack(NULL, v->len, v->bytes);
		if (cr) {
			/* the markings are the gateway's: cached records carry none */
			Qiao__V1__CacheMarking *saved[256];
			size_t n = cr->n_records < 256 ? cr->n_records : 256;
			for (size_t i = 0; i < n; i++) {
				saved[i] = cr->records[i]->cache;
				cr->records[i]->cache = &cm;
			}
			blen = qiao__v1__credit_records_reply__get_packed_size(cr);
			body = malloc(blen ? blen : 1);
			if (body)
				qiao__v1__credit_records_reply__pack(cr, body);
			for (size_t i = 0; i < n; i++)
				cr->records[i]->cache = saved[i];
			qiao__v1__credit_records_reply__free_unpacked(cr, NULL);
		}
		crypto_hash_sha256(hash, v->bytes, v->len);
		char hex[33];
		qiao_hex(j->cache_key, 16, hex);
		snprintf(id, sizeof id, "credit:%s", hex); /* no ID number in clear */
	}
	qiao_envelope_t *out = body ? s_seal_response(g, j->env, s->response_type, body, blen) : NULL;
	free(body);
	if (!out) {
		s_error(g, j->env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
			"the cached copy could not be served");
		s_job_free(j);
		return;
	}
	if (stale)
		g->c.cache_stale++;
	else
		g->c.cache_hits++;
	g->c.requests++;
	j->kind = K_SEND;
	j->out = out;
	j->replay = 1;
	j->nev = 2;
	char reason[160];
	snprintf(reason, sizeof reason, "served from the gateway's cache, version %llu%s", (unsigned long long)v->version,
		 stale ? ", STALE: the issuer is offline" : "");
	if (s_aev_about(&j->ev[0], AEV(CACHE_HIT), OUTCOME(SUCCESS), 0, reason, j->member, s->provider->id, j->env,
			NULL) ||
	    s_aev_about(&j->ev[1], AEV(RESPONSE_DELIVERED), OUTCOME(SUCCESS), 0, NULL, j->member, gwm, out, j->env) ||
	    !(j->ev[0].cached_id = strdup(id))) {
		s_error(g, j->env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
			"out of memory at the gateway");
		s_job_free(j);
		return;
	}
	j->ev[0].cached_version = v->version;
	memcpy(j->ev[0].cached_hash, hash, QIAO_HASH_LEN);
	char q[120], lmid[33] = "-", cq[80];
	if (j->env && j->env->hdr->message_id.len == QIAO_MSGID_LEN)
		qiao_hex(j->env->hdr->message_id.data, QIAO_MSGID_LEN, lmid);
	log_info("cache.%s member=%s msg_id=%s case_id=%s object=%s version=%llu", stale ? "stale" : "hit", j->member,
		 lmid, gw_log_q(j->env ? j->env->hdr->case_id : "", cq, sizeof cq), gw_log_q(id, q, sizeof q),
		 (unsigned long long)v->version);
	s_commit(g, j);
}

/*
 * A request to a cacheable service: note what it asks (j->cache_*), and
 * answer it from a fresh cached copy.  1 when answered (j consumed), 0 to
 * go on to the issuer.  With `offline` (no instance of the issuer) a stale
 * copy is served when the request and its rule allow it.
 */
static int s_cache_try(gw_gate_t *g, struct job *j, const struct gw_service *s, const struct gw_rule *rule,
		       int offline)
{
	if (!j->cache_kind) {
		j->cache_kind = s_cache_kind(s);
		const qiao_envelope_t *env = j->env;
		int allow = 0;
		if (j->cache_kind == CK_LICENCE_ID) {
			Qiao__V1__LicenceByIdRequest *q =
				qiao__v1__licence_by_id_request__unpack(NULL, env->body_len, env->body);
			if (!q || !q->licence_id[0] || strlen(q->licence_id) > QIAO_MAX_SERVICE) {
				j->cache_kind = CK_NONE; /* the issuer refuses it */
			} else {
				snprintf(j->cache_id, sizeof j->cache_id, "%s", q->licence_id);
				allow = q->allow_stale;
				j->has_purpose = q->purpose[0] != '\0';
			}
			if (q)
				qiao__v1__licence_by_id_request__free_unpacked(q, NULL);
		} else if (j->cache_kind == CK_CREDIT) {
			Qiao__V1__CreditRecordsRequest *q =
				qiao__v1__credit_records_request__unpack(NULL, env->body_len, env->body);
			if (!q || !q->subject || q->include_repaired) {
				/* repaired records need a grant the issuer checks per request: never from the cache */
				j->cache_kind = CK_NONE;
			} else {
				gw_cache_credit_key(q, j->cache_key);
				allow = q->allow_stale;
			}
			if (q)
				qiao__v1__credit_records_request__free_unpacked(q, NULL);
		}
		j->stale_ok = allow && rule && rule->serve_stale;
	}
	if (j->cache_kind != CK_LICENCE_ID && j->cache_kind != CK_CREDIT)
		return 0;
	qiao_txn_t *t = NULL;
	if (qiao_txn_begin(g->st, 0, &t) != 0)
		return 0;
	struct gw_cached v;
	int rc = j->cache_kind == CK_LICENCE_ID ? gw_cache_licence_get(g->cache, t, j->cache_id, &v)
						 : gw_cache_credit_get(g->cache, t, j->cache_key, &v);
	qiao_txn_abort(&t);
	if (rc != 0)
		return 0;
	if (j->cache_kind == CK_LICENCE_ID && !j->has_purpose) {
		/* a natural person's licence needs a purpose: the issuer decides */
		Qiao__V1__SignedLicence *sl = qiao__v1__signed_licence__unpack(NULL, v.len, v.bytes);
		Qiao__V1__ElectronicLicence *l =
			sl ? qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data) : NULL;
		int person = !l || l->holder_code_type == QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_RESIDENT_ID;
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
		if (sl)
			qiao__v1__signed_licence__free_unpacked(sl, NULL);
		if (person) {
			free(v.bytes);
			return 0;
		}
	}
	int64_t now = qiao_now_ms();
	const struct gw_cache *cc = gw_config_cache(g->cfg);
	int answered = 0;
	if (now < v.fresh_until_ms) {
		s_cache_serve(g, j, s, &v, 0);
		answered = 1;
	} else if (offline && j->stale_ok && now - v.fetched_ms <= cc->stale_max_ms) {
		s_cache_serve(g, j, s, &v, 1);
		answered = 1;
	}
	free(v.bytes);
	return answered;
}

/*
 * A provider's RESPONSE to a cacheable request: check the issuer's
 * signature on everything it carries before anything is cached or served.
 * 0 (j->cache_op set to store it), or -1: the requester was answered with
 * an ERROR instead, p finished and j freed.
 */
static int s_cache_check_answer(gw_gate_t *g, struct job *j, struct pend *p)
{
	const struct gw_member *m = gw_config_member(g->cfg, j->member);
	const qiao_envelope_t *env = j->env;
	char why[300] = "";
	int ok = 0;
	int64_t now = qiao_now_ms();
	const struct gw_cache *cc = gw_config_cache(g->cfg);
	if (!m) {
		snprintf(why, sizeof why, "the provider is no longer registered");
	} else if (p->cache_kind == CK_LICENCE_ID) {
		Qiao__V1__LicenceByIdReply *r = qiao__v1__licence_by_id_reply__unpack(NULL, env->body_len, env->body);
		Qiao__V1__ElectronicLicence *l = NULL;
		if (!r || !r->licence || !r->licence->licence)
			snprintf(why, sizeof why, "the answer is not a LicenceByIdReply with a licence");
		else if (gw_cache_verify_licence(r->licence->licence, j->member, j->pk, &l, why, sizeof why) == 0) {
			if (strcmp(l->licence_id, p->cache_id) != 0) {
				snprintf(why, sizeof why, "asked for licence %.80s, answered %.80s", p->cache_id, l->licence_id);
			} else {
				size_t n = qiao__v1__signed_licence__get_packed_size(r->licence->licence);
				j->cval.bytes = malloc(n ? n : 1);
				if (j->cval.bytes) {
					qiao__v1__signed_licence__pack(r->licence->licence, j->cval.bytes);
					j->cval.len = n;
					j->cval.version = l->version;
					j->cval.fetched_ms = now;
					j->cval.fresh_until_ms = now + cc->licence_fresh_ms;
					snprintf(j->cval.issuer, sizeof j->cval.issuer, "%s", j->member);
					snprintf(j->cache_id, sizeof j->cache_id, "%s", l->licence_id);
					j->cache_op = C_LIC_REFRESH;
				}
				ok = 1;
			}
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
		}
		if (r)
			qiao__v1__licence_by_id_reply__free_unpacked(r, NULL);
	} else if (p->cache_kind == CK_LICENCE_HOLDER) {
		Qiao__V1__LicenceByHolderReply *r =
			qiao__v1__licence_by_holder_reply__unpack(NULL, env->body_len, env->body);
		ok = r != NULL;
		if (!r)
			snprintf(why, sizeof why, "the answer is not a LicenceByHolderReply");
		for (size_t i = 0; r && ok && i < r->n_licences; i++) {
			Qiao__V1__ElectronicLicence *l = NULL;
			ok = r->licences[i] && gw_cache_verify_licence(r->licences[i]->licence, j->member, j->pk,
								       &l, why, sizeof why) == 0;
			if (l)
				qiao__v1__electronic_licence__free_unpacked(l, NULL);
		}
		if (r)
			qiao__v1__licence_by_holder_reply__free_unpacked(r, NULL);
	} else if (p->cache_kind == CK_CREDIT) {
		Qiao__V1__CreditRecordsReply *r = qiao__v1__credit_records_reply__unpack(NULL, env->body_len, env->body);
		if (!r)
			snprintf(why, sizeof why, "the answer is not a CreditRecordsReply");
		else if (gw_cache_verify_credit(r, j->member, j->pk, why, sizeof why) == 0) {
			ok = 1;
			j->cval.bytes = malloc(env->body_len ? env->body_len : 1);
			if (j->cval.bytes) {
				memcpy(j->cval.bytes, env->body, env->body_len);
				j->cval.len = env->body_len;
				j->cval.version = 1;
				j->cval.fetched_ms = now;
				j->cval.fresh_until_ms = now + cc->credit_fresh_ms;
				snprintf(j->cval.issuer, sizeof j->cval.issuer, "%s", j->member);
				memcpy(j->cache_key, p->cache_key, 32);
				j->cache_op = C_CRED_PUT;
			}
		}
		if (r)
			qiao__v1__credit_records_reply__free_unpacked(r, NULL);
	} else {
		return 0;
	}
	if (ok) {
		g->c.cache_misses++;
		return 0;
	}
	g->c.cache_refused++;
	log_warn("cache.refused provider=%s reason=\"%s\"", j->member, why);
	s_answer(g, AEV(ERROR), p->req, p->rrid, p->rrid_len, p->requester, j->member, QIAO__V1__ERROR_CODE__BAD_SIGNATURE,
		 NULL, NULL, 0, "the issuer's answer was withheld: %s", why);
	s_pend_finish(g, p);
	s_job_free(j);
	return -1;
}

/* licence-publish.v1: an issuer reports a new version of a licence. */
static void s_publish(gw_gate_t *g, struct job *j)
{
	const qiao_envelope_t *env = j->env;
	const char *gwm = gw_config_gateway(g->cfg)->member;
	if (strcmp(env->hdr->body_type, "qiao.v1.LicenceEvent") != 0) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body_type", NULL, 0,
			"%s takes qiao.v1.LicenceEvent", SVC_PUBLISH);
		s_job_free(j);
		return;
	}
	Qiao__V1__LicenceEvent *ev = qiao__v1__licence_event__unpack(NULL, env->body_len, env->body);
	const struct gw_member *m = gw_config_member(g->cfg, j->member);
	Qiao__V1__ElectronicLicence *l = NULL;
	char why[300];
	int code = QIAO__V1__ERROR_CODE__BAD_REQUEST;
	const char *field = "body";
	if (!ev || !m) {
		snprintf(why, sizeof why, "the body does not decode as qiao.v1.LicenceEvent");
	} else if (gw_cache_verify_licence(ev->licence, j->member, j->pk, &l, why, sizeof why) != 0) {
		code = QIAO__V1__ERROR_CODE__BAD_SIGNATURE;
		field = "licence";
	} else if (strcmp(ev->licence_id, l->licence_id) != 0 || ev->version != l->version ||
		   (int)ev->new_status != (int)l->status) {
		snprintf(why, sizeof why, "the event's licence_id, version or new_status differ from its signed licence");
		field = "licence_id";
	} else {
		code = 0;
	}
	if (code) {
		if (code == QIAO__V1__ERROR_CODE__BAD_SIGNATURE)
			g->c.cache_refused++;
		s_error(g, env, j->rid, j->rid_len, j->member, code, field, NULL, 0, "licence event refused: %s", why);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
		if (ev)
			qiao__v1__licence_event__free_unpacked(ev, NULL);
		s_job_free(j);
		return;
	}
	int64_t now = qiao_now_ms();
	size_t n = qiao__v1__signed_licence__get_packed_size(ev->licence);
	j->cval.bytes = malloc(n ? n : 1);
	j->event = malloc(env->body_len ? env->body_len : 1);
	Qiao__V1__Empty empty = QIAO__V1__EMPTY__INIT;
	uint8_t eb[8];
	size_t el = qiao__v1__empty__pack(&empty, eb);
	qiao_envelope_t *out = s_seal_response(g, env, "qiao.v1.Empty", eb, el);
	uint8_t hash[QIAO_HASH_LEN];
	crypto_hash_sha256(hash, ev->licence->licence.data, ev->licence->licence.len);
	if (j->cval.bytes && j->event && out) {
		qiao__v1__signed_licence__pack(ev->licence, j->cval.bytes);
		j->cval.len = n;
		j->cval.version = l->version;
		j->cval.fetched_ms = now;
		j->cval.fresh_until_ms = now + gw_config_cache(g->cfg)->licence_fresh_ms;
		snprintf(j->cval.issuer, sizeof j->cval.issuer, "%s", j->member);
		memcpy(j->event, env->body, env->body_len);
		j->event_len = env->body_len;
		snprintf(j->cache_id, sizeof j->cache_id, "%s", l->licence_id);
		j->cache_op = C_PUBLISH;
		j->kind = K_SEND;
		j->out = out;
		out = NULL;
		j->replay = 1;
		j->nev = 2;
		char reason[120];
		snprintf(reason, sizeof reason, "licence event: version %llu, status %d", (unsigned long long)l->version,
			 (int)l->status);
		if (s_aev_about(&j->ev[0], AEV(REQUEST_ACCEPTED), OUTCOME(SUCCESS), 0, NULL, j->member, gwm, env, NULL) == 0 &&
		    s_aev_about(&j->ev[1], AEV(CACHE_INVALIDATED), OUTCOME(SUCCESS), 0, reason, j->member, gwm, env, NULL) ==
			    0 &&
		    (j->ev[1].cached_id = strdup(l->licence_id)) != NULL) {
			j->ev[1].cached_version = l->version;
			memcpy(j->ev[1].cached_hash, hash, QIAO_HASH_LEN);
			g->c.cache_invalidations++;
			g->c.requests++;
			log_info("cache.invalidated issuer=%s licence=%s version=%llu status=%d", j->member, l->licence_id,
				 (unsigned long long)l->version, (int)l->status);
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
			qiao__v1__licence_event__free_unpacked(ev, NULL);
			s_commit(g, j);
			return;
		}
	}
	qiao_envelope_destroy(&out);
	s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500, "out of memory");
	qiao__v1__electronic_licence__free_unpacked(l, NULL);
	qiao__v1__licence_event__free_unpacked(ev, NULL);
	s_job_free(j);
}

/* ---- licence events to subscribers ------------------------------------------- */

static void s_subs_build(gw_gate_t *g)
{
	const struct gw_cache *cc = gw_config_cache(g->cfg);
	for (size_t i = 0; i < g->nsubs; i++)
		qiao_envelope_destroy(&g->subs[i].req);
	free(g->subs);
	g->subs = calloc(cc->nsubscribers ? cc->nsubscribers : 1, sizeof *g->subs);
	g->nsubs = g->subs ? cc->nsubscribers : 0;
	for (size_t i = 0; i < g->nsubs; i++)
		snprintf(g->subs[i].member, sizeof g->subs[i].member, "%s", cc->subscribers[i]);
}

/* Send each subscriber that has nothing in flight its next event. */
static void s_notify_kick(gw_gate_t *g)
{
	int64_t mono = s_mono_ms();
	const char *gwm = gw_config_gateway(g->cfg)->member;
	for (size_t i = 0; i < g->nsubs; i++) {
		struct sub *sb = &g->subs[i];
		if (sb->inflight) {
			if (mono < sb->deadline)
				continue;
			log_warn("notify.timeout subscriber=%s seq=%llu", sb->member, (unsigned long long)sb->seq);
			sb->inflight = 0;
			qiao_envelope_destroy(&sb->req);
		}
		if (mono < sb->retry_at)
			continue;
		char svc[QIAO_MAX_SERVICE + 1];
		snprintf(svc, sizeof svc, "%s/%s", sb->member, SVC_NOTIFY);
		int busy;
		struct conn *c = s_pick(g, svc, NULL, 0, &busy);
		if (!c)
			continue;
		qiao_txn_t *t = NULL;
		if (qiao_txn_begin(g->st, 0, &t) != 0)
			continue;
		uint64_t cur = 0, seq = 0;
		uint8_t *ev = NULL;
		size_t evl = 0;
		int rc = gw_cache_cursor_get(g->cache, t, sb->member, &cur);
		if (rc == 0)
			rc = gw_cache_outbox_next(g->cache, t, cur, &seq, &ev, &evl);
		qiao_txn_abort(&t);
		if (rc != 0) {
			free(ev);
			continue;
		}
		Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
		h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
		h.sender = (char *)gwm;
		h.user_id = "qiao-gateway";
		h.service = svc;
		h.purpose = "证照变更通知 (licence event)";
		h.deadline_ms = qiao_now_ms() + NOTIFY_TIMEOUT_MS;
		h.body_type = "qiao.v1.LicenceEvent";
		qiao_envelope_t *env = NULL;
		char why[200];
		rc = qiao_envelope_seal(&h, ev, evl, g->keys->sign_sk, &g->wl, &env, why, sizeof why);
		free(ev);
		if (rc != 0) {
			log_error("notify.seal_failed subscriber=%s reason=\"%s\"", sb->member, why);
			sb->retry_at = mono + 5000;
			continue;
		}
		struct qiao_frame f[4];
		qiao_envelope_frames(env, f);
		if (s_send(g, c->rid, c->rid_len, f, 4) != 0) {
			qiao_envelope_destroy(&env);
			continue;
		}
		memcpy(sb->msgid, env->hdr->message_id.data, QIAO_MSGID_LEN);
		sb->req = env;
		sb->seq = seq;
		sb->inflight = 1;
		sb->deadline = mono + NOTIFY_TIMEOUT_MS;
		g->c.notify_sent++;
		log_debug("notify.sent subscriber=%s seq=%llu", sb->member, (unsigned long long)seq);
	}
}

/* An answer that is not for a routed request: a subscriber acknowledging
 * an event.  1 when it was one (j consumed). */
static int s_notify_answer(gw_gate_t *g, struct job *j)
{
	const Qiao__V1__Header *h = j->env->hdr;
	for (size_t i = 0; i < g->nsubs; i++) {
		struct sub *sb = &g->subs[i];
		if (!sb->inflight || memcmp(sb->msgid, h->in_reply_to.data, QIAO_MSGID_LEN) != 0)
			continue;
		uint8_t rh[QIAO_HASH_LEN];
		qiao_envelope_header_hash(sb->req, rh);
		if (strcmp(j->member, sb->member) != 0 || memcmp(h->request_hash.data, rh, QIAO_HASH_LEN) != 0) {
			log_warn("notify.answer_refused member=%s subscriber=%s", j->member, sb->member);
			s_job_free(j);
			return 1;
		}
		if (h->kind != QIAO__V1__MESSAGE_KIND__RESPONSE) {
			log_warn("notify.refused subscriber=%s seq=%llu (it answered ERROR; retrying in 1 s)", sb->member,
				 (unsigned long long)sb->seq);
			sb->inflight = 0;
			sb->retry_at = s_mono_ms() + 1000;
			qiao_envelope_destroy(&sb->req);
			s_job_free(j);
			return 1;
		}
		j->kind = K_NONE;
		j->replay = 1;
		j->cache_op = C_CURSOR;
		snprintf(j->cache_id, sizeof j->cache_id, "%s", sb->member);
		j->cval.version = sb->seq;
		j->nev = 1;
		const char *gwm = gw_config_gateway(g->cfg)->member;
		if (s_aev_about(&j->ev[0], AEV(EVENT_DELIVERED), OUTCOME(SUCCESS), 0, NULL, gwm, sb->member, sb->req, NULL)) {
			s_job_free(j);
			return 1;
		}
		s_commit(g, j);
		return 1;
	}
	return 0;
}

/* The subscriber's cursor is durable: next event. */
static void s_notify_committed(gw_gate_t *g, struct job *j)
{
	for (size_t i = 0; i < g->nsubs; i++) {
		struct sub *sb = &g->subs[i];
		if (strcmp(sb->member, j->cache_id) != 0 || !sb->inflight || sb->seq != j->cval.version)
			continue;
		sb->inflight = 0;
		sb->delivered++;
		qiao_envelope_destroy(&sb->req);
		g->c.notify_acked++;
	}
	s_notify_kick(g);
}

/* The gateway's own service named by a request, or NULL. */
static const char *s_own_service(gw_gate_t *g, const char *service)
{
	const char *gwm = gw_config_gateway(g->cfg)->member;
	size_t gl = strlen(gwm);
	const char *own = NULL;
	if (strncmp(service, gwm, gl) == 0 && service[gl] == '/')
		own = service + gl + 1;
	else if (!strchr(service, '/') && !gw_config_service(g->cfg, service))
		own = service;
	return own && (strcmp(own, SVC_LIST) == 0 || strcmp(own, SVC_ALLOWED) == 0 || strcmp(own, SVC_PUBLISH) == 0)
		       ? own
		       : NULL;
}

/* A request whose signature verified: decide, then make its id and its
 * audit entry durable. */
static void s_on_request(gw_gate_t *g, struct job *j)
{
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	qiao_envelope_t *env = j->env;
	const Qiao__V1__Header *h = env->hdr;
	const char *gwm = gw_config_gateway(g->cfg)->member;
	if (g->draining) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL, NULL, 2000,
			"the gateway is shutting down");
		goto drop;
	}
	const char *own = s_own_service(g, h->service);
	if (own) {
		if (h->kind != QIAO__V1__MESSAGE_KIND__REQUEST) {
			s_notice(g, j->rid, j->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "%s takes requests", own);
			goto drop;
		}
		if (strcmp(own, SVC_PUBLISH) == 0) {
			s_publish(g, j);
			return;
		}
		qiao_envelope_t *out = s_gateway_service(g, env, j->rid, j->rid_len, j->member, own);
		if (!out)
			goto drop; /* refused, audited as such */
		g->c.requests++;
		j->kind = K_SEND;
		j->out = out;
		j->replay = 1;
		if (s_aev_about(&j->ev[0], AEV(REQUEST_ACCEPTED), OUTCOME(SUCCESS), 0, NULL, j->member, gwm, env, NULL) ||
		    s_aev_about(&j->ev[1], AEV(RESPONSE_DELIVERED), OUTCOME(SUCCESS), 0, NULL, j->member, gwm, out,
				env)) {
			j->nev = 2;
			goto nomem;
		}
		j->nev = 2;
		s_commit(g, j);
		return;
	}
	int personal = 0;
	for (size_t i = 0; i < h->n_subjects; i++)
		if (h->subjects[i]->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID)
			personal = 1;
	struct gw_decision d;
	if (gw_policy_check(g->cfg, j->member, h->service, h->purpose, h->case_id, personal, &d) != 0) {
		s_error(g, env, j->rid, j->rid_len, j->member, d.code,
			d.code == QIAO__V1__ERROR_CODE__PURPOSE_REQUIRED ? "purpose" : "service",
			d.missing_rule[0] ? d.missing_rule : NULL, 0, "%s", d.reason);
		goto drop;
	}
	const struct gw_service *s = d.service;
	int is_event = h->kind == QIAO__V1__MESSAGE_KIND__EVENT;
	if (is_event != (s->one_way ? 1 : 0)) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "kind", NULL, 0,
			"%s %s", s->id, s->one_way ? "is one-way: send an EVENT" : "takes a REQUEST, not an EVENT");
		goto drop;
	}
	if (strcmp(h->body_type, s->request_type) != 0) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body_type", NULL, 0,
			"%s takes %s, not %s", s->id, s->request_type, h->body_type);
		goto drop;
	}
	int64_t now = qiao_now_ms();
	if (!is_event && h->deadline_ms <= now) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__DEADLINE_EXCEEDED, "deadline_ms",
			NULL, 0, "the deadline passed %" PRId64 " ms before the request could be routed",
			now - h->deadline_ms);
		goto drop;
	}
	if (!is_event && s_cache_try(g, j, s, d.rule, 0))
		return; /* answered from the cache */
	struct mcount *mc = s_mcount(g, j->member, 1);
	if (!is_event && mc && mc->n >= lim->max_inflight_per_member) {
		s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BUSY, NULL, NULL, 100,
			"%s already has %u requests in flight (the limit)", j->member, mc->n);
		goto drop;
	}
	int busy;
	if (!s_pick(g, s->id, NULL, 0, &busy)) {
		if (busy)
			s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BUSY, NULL, NULL, 100,
				"every instance of %s is working at its limit", s->id);
		else if (j->stale_ok && s_cache_try(g, j, s, d.rule, 1))
			return; /* the issuer is offline: a stale copy, marked so */
		else
			s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__NO_INSTANCE, NULL, NULL, 1000,
				"no instance of %s is connected", s->id);
		goto drop;
	}
	snprintf(j->service, sizeof j->service, "%s", s->id);
	j->idempotent = s->idempotent;
	int64_t cap = now + lim->max_deadline_ms;
	j->deadline_ms = h->deadline_ms && h->deadline_ms < cap ? h->deadline_ms : cap;
	j->kind = is_event ? K_EVENT : K_REQUEST;
	j->replay = 1;
	j->nev = 1;
	if (s_aev_about(&j->ev[0], is_event ? AEV(EVENT_DELIVERED) : AEV(REQUEST_ACCEPTED), OUTCOME(SUCCESS), 0, NULL,
			j->member, s->provider->id, env, NULL))
		goto nomem;
	if (!is_event && mc)
		mc->n++; /* counted from acceptance, so commits in progress count too */
	g->c.requests += !is_event;
	g->c.events += is_event;
	s_commit(g, j);
	return;
nomem:
	s_error(g, env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
		"out of memory at the gateway");
drop:
	s_job_free(j);
}

/* The request's id and entry are durable: route it. */
static void s_request_committed(gw_gate_t *g, struct job *j)
{
	const Qiao__V1__Header *h = j->env->hdr;
	if (j->kind == K_EVENT) {
		int busy;
		struct conn *c = s_pick(g, j->service, NULL, 0, &busy);
		struct qiao_frame f[4];
		qiao_envelope_frames(j->env, f);
		if (!c || s_send(g, c->rid, c->rid_len, f, 4) != 0)
			log_warn("event.undelivered member=%s service=%s", j->member, j->service);
		s_job_free(j);
		return;
	}
	struct pend *p = calloc(1, sizeof *p);
	if (!p) {
		struct mcount *mc = s_mcount(g, j->member, 0);
		if (mc && mc->n)
			mc->n--;
		s_error(g, j->env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
			"out of memory");
		s_job_free(j);
		return;
	}
	memcpy(p->msgid, h->message_id.data, QIAO_MSGID_LEN);
	p->req = j->env;
	j->env = NULL;
	qiao_envelope_header_hash(p->req, p->req_hash);
	memcpy(p->rrid, j->rid, j->rid_len);
	p->rrid_len = j->rid_len;
	snprintf(p->requester, sizeof p->requester, "%s", j->member);
	snprintf(p->service, sizeof p->service, "%s", j->service);
	p->idempotent = j->idempotent;
	p->deadline_ms = j->deadline_ms;
	p->cache_kind = j->cache_kind;
	snprintf(p->cache_id, sizeof p->cache_id, "%s", j->cache_id);
	memcpy(p->cache_key, j->cache_key, 32);
	p->stale_ok = j->stale_ok;
	p->t0_us = j->t0_us;
	s_job_free(j);
	if (gw_map_put(g->pending, p->msgid, QIAO_MSGID_LEN, p) != 0 || s_heap_push(g, p) != 0) {
		gw_map_del(g->pending, p->msgid, QIAO_MSGID_LEN);
		s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
			"out of memory");
		struct mcount *mc = s_mcount(g, p->requester, 0);
		if (mc && mc->n)
			mc->n--;
		qiao_envelope_destroy(&p->req);
		free(p);
		return;
	}
	s_route(g, p);
}

/* A RESPONSE or ERROR whose signature verified. */
static void s_on_answer(gw_gate_t *g, struct job *j)
{
	const Qiao__V1__Header *h = j->env->hdr;
	struct pend *p = gw_map_get(g->pending, h->in_reply_to.data, QIAO_MSGID_LEN);
	char mid[33];
	qiao_hex(h->in_reply_to.data, QIAO_MSGID_LEN, mid);
	if (!p && s_notify_answer(g, j))
		return;
	if (!p || p->answering) {
		g->c.late_answers++;
		char am[33], cq[80];
		qiao_hex(h->message_id.data, QIAO_MSGID_LEN, am);
		log_info("answer.dropped member=%s msg_id=%s in_reply_to=%s case_id=%s reason=\"no request waits for it "
			 "(answered, timed out or never routed here)\"",
			 j->member, am, mid, gw_log_q(h->case_id, cq, sizeof cq));
		s_job_free(j);
		return;
	}
	const char *bad = NULL;
	if (!p->prov || p->prov->rid_len != j->rid_len || memcmp(p->prov->rid, j->rid, j->rid_len) != 0)
		bad = "the request was not routed to this connection";
	else if (memcmp(h->request_hash.data, p->req_hash, QIAO_HASH_LEN) != 0)
		bad = "request_hash does not match the request";
	else if (strcmp(h->recipient, p->requester) != 0)
		bad = "recipient is not the requester";
	if (bad) {
		char am[33], cq[80];
		qiao_hex(h->message_id.data, QIAO_MSGID_LEN, am);
		log_warn("answer.refused member=%s msg_id=%s in_reply_to=%s case_id=%s reason=\"%s\"", j->member, am, mid,
			 gw_log_q(h->case_id, cq, sizeof cq), bad);
		struct conn *c = gw_map_get(g->conns, j->rid, j->rid_len);
		if (c)
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST, "answer refused: %s", bad);
		s_job_free(j);
		return;
	}
	int is_err = h->kind == QIAO__V1__MESSAGE_KIND__ERROR;
	if (!is_err && p->cache_kind && s_cache_check_answer(g, j, p) != 0)
		return; /* withheld: the issuer's signature did not verify */
	int code = 0;
	if (is_err) {
		Qiao__V1__ErrorReply *er = qiao__v1__error_reply__unpack(NULL, j->env->body_len, j->env->body);
		if (er) {
			code = er->code;
			qiao__v1__error_reply__free_unpacked(er, NULL);
		}
	}
	j->kind = K_ANSWER;
	j->replay = 1;
	j->nev = 1;
	if (s_aev_about(&j->ev[0], is_err ? AEV(ERROR) : AEV(RESPONSE_DELIVERED), is_err ? OUTCOME(FAILURE) : OUTCOME(SUCCESS),
			code, NULL, p->requester, j->member, j->env, p->req)) {
		s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 500,
			"out of memory at the gateway");
		s_pend_finish(g, p);
		s_job_free(j);
		return;
	}
	p->answering = 1;
	memcpy(j->reply_to, p->msgid, QIAO_MSGID_LEN);
	s_commit(g, j);
}

static void s_answer_committed(gw_gate_t *g, struct job *j)
{
	struct pend *p = gw_map_get(g->pending, j->reply_to, QIAO_MSGID_LEN);
	if (!p) { /* cannot happen: an answering pending is not timed out */
		g->c.late_answers++;
		s_job_free(j);
		return;
	}
	struct qiao_frame f[4];
	qiao_envelope_frames(j->env, f);
	(void)s_send(g, p->rrid, p->rrid_len, f, 4);
	if (j->env->hdr->kind == QIAO__V1__MESSAGE_KIND__ERROR)
		g->c.errors_forwarded++;
	else
		g->c.responses++;
	s_met_answered(g, p->service, j->ev[0].code, p);
	s_pend_finish(g, p);
	s_job_free(j);
}

/* What a requester is told when the store cannot write (docs/protocol.md,
 * UNAVAILABLE): which of the operator's problems it is, without detail. */
static const char *s_store_why(int rc)
{
	if (rc == QIAO_ESTOREFULL)
		return "the gateway's store is full";
	if (rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG)
		return "the gateway's disk is full";
	if (rc == QIAO_ESTOREBUSY)
		return "the gateway's store is overloaded";
	if (rc == QIAO_ENOMEM)
		return "the gateway is out of memory";
	return "the gateway's store cannot be written";
}

/* A commit refused for overload (the group-commit queue full, memory
 * short) rather than by the store: the store itself is fine. */
static int s_commit_overload(int rc)
{
	return rc == QIAO_ESTOREBUSY || rc == QIAO_ENOMEM;
}

/* retry_after_ms for a commit that failed with rc */
static uint32_t s_store_retry(int rc)
{
	return s_commit_overload(rc) ? 100 : STORE_RETRY_MS;
}

/* A job's commit failed: the message id was seen (replay), or the store
 * cannot write.  Nothing of it is durable. */
static void s_commit_failed(gw_gate_t *g, struct job *j)
{
	int replay = j->rc == QIAO_EEXIST;
	if (!replay) {
		g->c.commit_failures++;
		g->c.audit_failures += (uint64_t)j->nev;
		char fm[33] = "-", cq[80];
		if (j->env && j->env->hdr && j->env->hdr->message_id.len == QIAO_MSGID_LEN)
			qiao_hex(j->env->hdr->message_id.data, QIAO_MSGID_LEN, fm);
		log_error("audit.commit_failed member=%s msg_id=%s case_id=%s entries=%d reason=\"%s\"", j->member, fm,
			  gw_log_q(j->env && j->env->hdr ? j->env->hdr->case_id : "", cq, sizeof cq), j->nev,
			  qiao_strerror(j->rc));
	}
	switch (j->kind) {
	case K_REQUEST:
	case K_EVENT: {
		if (j->kind == K_REQUEST) {
			struct mcount *mc = s_mcount(g, j->member, 0);
			if (mc && mc->n)
				mc->n--;
		}
		if (replay) {
			g->c.replays++;
			s_error(g, j->env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__REPLAY, "message_id", NULL,
				0, "this message id was seen before");
			break;
		}
		/* the store is failing: answer without an audit entry */
		if (j->kind == K_REQUEST)
			s_met_answered(g, j->env->hdr->service, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL);
		char why[200], msg[200];
		snprintf(msg, sizeof msg, "%s: the gateway cannot record the request durably", s_store_why(j->rc));
		qiao_envelope_t *out = s_seal_error(g, j->env, j->member, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL, NULL,
						    s_store_retry(j->rc), msg, why, sizeof why);
		if (out) {
			struct qiao_frame f[4];
			qiao_envelope_frames(out, f);
			(void)s_send(g, j->rid, j->rid_len, f, 4);
			qiao_envelope_destroy(&out);
		}
		break;
	}
	case K_ANSWER: {
		struct pend *p = gw_map_get(g->pending, j->reply_to, QIAO_MSGID_LEN);
		if (!p)
			break;
		p->answering = 0;
		if (replay) {
			/* the provider reused a message id: never deliver it */
			s_error(g, p->req, p->rrid, p->rrid_len, p->requester, QIAO__V1__ERROR_CODE__INTERNAL, NULL, NULL, 0,
				"the provider's answer reused a message id and was refused");
		} else {
			s_met_answered(g, p->service, QIAO__V1__ERROR_CODE__UNAVAILABLE, p);
			char why[200], msg[240];
			snprintf(msg, sizeof msg,
				 "%s: the provider answered, but the gateway cannot record the answer durably, so it "
				 "is withheld",
				 s_store_why(j->rc));
			qiao_envelope_t *out = s_seal_error(g, p->req, p->requester, QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL,
							    NULL, s_store_retry(j->rc), msg, why, sizeof why);
			if (out) {
				struct qiao_frame f[4];
				qiao_envelope_frames(out, f);
				(void)s_send(g, p->rrid, p->rrid_len, f, 4);
				qiao_envelope_destroy(&out);
			}
		}
		s_pend_finish(g, p);
		break;
	}
	case K_SEND:
		/* a refusal the gateway made still goes out: it delivers no data */
		if (j->out) {
			struct qiao_frame f[4];
			qiao_envelope_frames(j->out, f);
			(void)s_send(g, j->rid, j->rid_len, f, 4);
		}
		break;
	default:
		break;
	}
	s_job_free(j);
}

/* What the operator does about a failing store (docs/operations.md). */
static const char *s_store_hint(int rc)
{
	if (rc == QIAO_ESTOREFULL)
		return "raise gateway.store_max_map_size and restart";
	if (rc == -ENOSPC || rc == -EDQUOT)
		return "free disk space under the store; commits resume by themselves";
	if (rc == -EFBIG)
		return "raise the file-size limit (LimitFSIZE=) and restart";
	return "check the disk (dmesg) and the store (qiao store info)";
}

/* The health verdict's "last commit" (s_met_publish): a replay is not a
 * failure, and a job that writes nothing (a checkpoint with nothing new to
 * cover commits an empty transaction even in a full store) is no sign of
 * recovery.  The change between writing and failing is logged once each
 * way; every failed job is also logged by s_commit_failed. */
static void s_commit_outcome(gw_gate_t *g, struct job *j)
{
	if (j->rc == QIAO_EEXIST || (j->rc == 0 && !j->nev && !j->replay && !j->cache_op))
		return;
	if (s_commit_overload(j->rc))
		return; /* an overload says nothing of the store's health */
	if (j->rc != 0 && g->commits_failing++ == 0)
		log_error("store.write_failing store=%s reason=\"%s\" hint=\"%s\"", gw_config_gateway(g->cfg)->store,
			  qiao_strerror(j->rc), s_store_hint(j->rc));
	if (j->rc != 0) {
		g->commit_failed_mono = s_mono_ms();
		g->commit_failed_rc = j->rc;
	}
	if (j->rc == 0 && g->commits_failing) {
		log_info("store.write_recovered store=%s failed_commits=%" PRIu64, gw_config_gateway(g->cfg)->store,
			 g->commits_failing);
		g->commits_failing = 0;
	}
	g->commit_rc = j->rc;
}

/* A job came back from a verify thread or the writer. */
static void s_on_job(gw_gate_t *g, struct job *j)
{
	g->outstanding--;
	if (j->stage == ST_VERIFIED) {
		if (j->threaded) {
			j->threaded = 0;
			g->verifying--;
			struct conn *vc = gw_map_get(g->conns, j->rid, j->rid_len);
			if (vc && vc->verifying)
				vc->verifying--;
		}
		const Qiao__V1__Header *h = j->env->hdr;
		int is_req = h->kind == QIAO__V1__MESSAGE_KIND__REQUEST || h->kind == QIAO__V1__MESSAGE_KIND__EVENT;
		if (j->rc == 0) {
			/* a reload while it was verified may have retired the key
			 * (or the member): the audit entry must verify against the
			 * directory recorded by that reload */
			const struct gw_member *vm = gw_config_member(g->cfg, j->member);
			if (!vm || !gw_member_has_sign(vm, j->pk))
				j->rc = QIAO_EBADSIG;
		}
		if (j->rc != 0) {
			g->c.bad_signatures++;
			char bm[33] = "-", cq[80];
			if (j->env->hdr->message_id.len == QIAO_MSGID_LEN)
				qiao_hex(j->env->hdr->message_id.data, QIAO_MSGID_LEN, bm);
			log_warn("signature.bad member=%s msg_id=%s case_id=%s", j->member, bm,
				 gw_log_q(j->env->hdr->case_id, cq, sizeof cq));
			if (is_req)
				s_error(g, j->env, j->rid, j->rid_len, j->member, QIAO__V1__ERROR_CODE__BAD_SIGNATURE, NULL,
					NULL, 0, "the signature does not verify with %s's registered key", j->member);
			else
				s_notice(g, j->rid, j->rid_len, QIAO__V1__ERROR_CODE__BAD_SIGNATURE,
					 "answer refused: the signature does not verify");
			s_job_free(j);
			return;
		}
		if (is_req)
			s_on_request(g, j);
		else
			s_on_answer(g, j);
		return;
	}
	/* ST_COMMITTED */
	if (j->replay)
		gw_map_del(g->recent, j->env->hdr->message_id.data, QIAO_MSGID_LEN);
	s_commit_outcome(g, j);
	if (j->rc != 0) {
		s_commit_failed(g, j);
		return;
	}
	g->c.audit_entries += (uint64_t)j->nev;
	switch (j->kind) {
	case K_REQUEST:
	case K_EVENT:
		s_request_committed(g, j);
		break;
	case K_ANSWER:
		s_answer_committed(g, j);
		break;
	case K_SEND: {
		struct qiao_frame f[4];
		qiao_envelope_frames(j->out, f);
		(void)s_send(g, j->rid, j->rid_len, f, 4);
		if (j->env)
			g->c.responses++;
		if (j->env && g->met) { /* answered by the gateway itself (discovery, the cache) */
			struct pend t = {.t0_us = j->t0_us};
			s_met_answered(g, j->env->hdr->service, 0, &t);
		}
		int kick = j->cache_op == C_PUBLISH;
		s_job_free(j);
		if (kick)
			s_notify_kick(g);
		break;
	}
	default:
		if (j->cache_op == C_CURSOR)
			s_notify_committed(g, j);
		s_job_free(j);
		break;
	}
}

/* ---- verify threads ------------------------------------------------------- */

static void *s_verify_main(void *arg)
{
	gw_gate_t *g = arg;
	struct gw_item *it;
	while ((it = gw_mbox_wait(g->vq)) != NULL) {
		struct job *j = (struct job *)it;
		atomic_fetch_sub(&g->vqueued, 1);
		s_verify_job(j);
		gw_mbox_post(g->rq, &j->link);
	}
	return NULL;
}

/* ---- audit entries of the gateway's own ---------------------------------- */

/* ADMIN_ACTION: the gateway started or reloaded; the entry carries every
 * member's signing key (and the gateway's), so that verify can check the
 * signatures of what follows from the log alone. */
static void s_audit_admin(gw_gate_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_audit_admin(gw_gate_t *g, const char *fmt, ...)
{
	const char *gwm = gw_config_gateway(g->cfg)->member;
	struct job *j = s_job_new(g, K_NONE, NULL, 0, gwm);
	if (!j)
		goto fail;
	j->nev = 1;
	struct aev *e = &j->ev[0];
	e->type = AEV(ADMIN_ACTION);
	e->outcome = OUTCOME(SUCCESS);
	snprintf(e->requester, sizeof e->requester, "%s", gwm);
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	size_t nm = gw_config_member_count(g->cfg), n = nm + 1;
	for (size_t i = 0; i < nm; i++)
		n += gw_config_member_at(g->cfg, i)->has_next_sign; /* a rotation: both keys */
	const size_t slot = QIAO_MEMBER_MAX + 32;
	e->detail = strdup(detail);
	e->dir = calloc(n, sizeof *e->dir);
	e->dir_names = malloc(n * slot);
	if (!e->detail || !e->dir || !e->dir_names)
		goto fail;
	/* i: directory entry; k: member; second: k's next_sign_public */
	for (size_t i = 0, k = 0, second = 0; i < n; i++) {
		const struct gw_member *dm = k < nm ? gw_config_member_at(g->cfg, k) : NULL;
		const char *id = dm ? dm->id : gwm;
		const uint8_t *pk = dm ? (second ? dm->next_sign_public : dm->sign_public) : g->keys->sign_pk;
		if (dm && dm->has_next_sign && !second) {
			second = 1;
		} else {
			second = 0;
			k++;
		}
		char *name = e->dir_names + i * slot;
		snprintf(name, QIAO_MEMBER_MAX, "%s", id);
		memcpy(name + QIAO_MEMBER_MAX, pk, 32);
		qiao__v1__member_key__init(&e->dir[i]);
		e->dir[i].member = name;
		e->dir[i].sign_public.data = (uint8_t *)name + QIAO_MEMBER_MAX;
		e->dir[i].sign_public.len = 32;
	}
	e->ndir = n;
	s_audit_only(g, j);
	return;
fail:
	log_error("audit.skipped event=admin_action reason=\"out of memory\"");
	s_job_free(j);
}

/* CONNECTION_REFUSED, at most 20 a second (a loop of refused handshakes
 * must not flood the log; the rest are counted). */
static void s_audit_zap(gw_gate_t *g, const char *peer, const char *key, const char *why)
{
	int64_t sec = s_mono_ms() / 1000;
	if (sec != g->zap_window) {
		g->zap_window = sec;
		g->zap_logged = 0;
	}
	if (g->zap_logged >= 20) {
		g->c.zap_unaudited++;
		return;
	}
	g->zap_logged++;
	struct job *j = s_job_new(g, K_NONE, NULL, 0, NULL);
	if (!j)
		return;
	j->nev = 1;
	struct aev *e = &j->ev[0];
	e->type = AEV(CONNECTION_REFUSED);
	e->outcome = OUTCOME(FAILURE);
	e->code = QIAO__V1__ERROR_CODE__NOT_AUTHENTICATED;
	char d[256];
	snprintf(d, sizeof d, "peer=%s curve_key=%s", peer, key[0] ? key : "-");
	e->detail = strdup(d);
	e->reason = strdup(why);
	if (!e->detail || !e->reason) {
		s_job_free(j);
		return;
	}
	s_audit_only(g, j);
}

/* Writer thread: sign a checkpoint if entries are uncovered. */
static int s_ckpt_apply(qiao_txn_t *txn, void *arg)
{
	struct job *j = arg;
	return audit_log_checkpoint(j->audit, txn, qiao_now_ms(), NULL);
}

static void s_checkpoint_now(gw_gate_t *g)
{
	struct job *j = s_job_new(g, K_NONE, NULL, 0, NULL);
	if (!j)
		return;
	j->audit = g->audit;
	j->stage = ST_COMMITTED;
	g->outstanding++;
	if (qiao_gc_submit(g->gc, s_ckpt_apply, j, s_job_done, j) != 0) {
		g->outstanding--;
		s_job_free(j);
		return;
	}
	g->audit_at_ckpt = g->audit_submitted;
	g->last_ckpt_ms = qiao_now_ms();
}

/* ---- ZAP ------------------------------------------------------------------ */

/* One ZAP request (RFC 27): admit registered CURVE keys only; the user id
 * binds the connection to its member. */
static void s_on_zap(gw_gate_t *g)
{
	zmq_msg_t part[8];
	size_t n = 0;
	int more = 1;
	while (more) {
		zmq_msg_t scratch, *m = n < 8 ? &part[n] : &scratch;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, g->zap, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (m == &scratch)
			zmq_msg_close(m);
		else
			n++;
	}
	if (n == 0)
		return;
	const char *status = "400", *text = "unknown CURVE key";
	const char *user = "";
	char peer[64] = "?", keyb64[45] = "";
	if (n >= 7 && zmq_msg_size(&part[3]) < sizeof peer) {
		memcpy(peer, zmq_msg_data(&part[3]), zmq_msg_size(&part[3]));
		peer[zmq_msg_size(&part[3])] = '\0';
	}
	if (n < 6 || zmq_msg_size(&part[0]) != 3 || memcmp(zmq_msg_data(&part[0]), "1.0", 3) != 0) {
		text = "malformed ZAP request";
	} else if (zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) != 0) {
		text = "only CURVE is accepted";
	} else if (n != 7 || zmq_msg_size(&part[6]) != 32) {
		text = "malformed CURVE credentials";
	} else {
		const uint8_t *key = zmq_msg_data(&part[6]);
		qiao_b64_32(key, keyb64);
		const struct gw_member *m = gw_config_member_by_curve(g->cfg, key);
		if (m) {
			status = "200";
			text = "OK";
			user = m->id;
		}
	}
	if (status[0] == '2') {
		g->c.zap_ok++;
		log_debug("zap.admitted member=%s peer=%s", user, peer);
	} else {
		g->c.zap_refused++;
		log_warn("zap.refused peer=%s curve_key=%s reason=\"%s\"", peer, keyb64[0] ? keyb64 : "-", text);
		s_audit_zap(g, peer, keyb64, text);
	}
	const void *rid = n >= 2 ? zmq_msg_data(&part[1]) : "";
	size_t rlen = n >= 2 ? zmq_msg_size(&part[1]) : 0;
	zmq_send(g->zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(g->zap, rid, rlen, ZMQ_SNDMORE);
	zmq_send(g->zap, status, 3, ZMQ_SNDMORE);
	zmq_send(g->zap, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(g->zap, user, strlen(user), ZMQ_SNDMORE);
	/* metadata (ZMTP property format): X-Qiao-Curve = the admitted key in
	 * base64, so the connection knows which of a rotating member's keys
	 * it authenticated with (s_conn_get, s_reload) */
	uint8_t meta[1 + 12 + 4 + 44];
	size_t mlen = 0, klen = strlen(keyb64);
	if (status[0] == '2' && klen <= 44) {
		meta[0] = 12;
		memcpy(meta + 1, "X-Qiao-Curve", 12);
		meta[13] = meta[14] = meta[15] = 0;
		meta[16] = (uint8_t)klen;
		memcpy(meta + 17, keyb64, klen);
		mlen = 17 + klen;
	}
	zmq_send(g->zap, meta, mlen, 0);
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&part[i]);
}

/* ---- ROUTER input --------------------------------------------------------- */

static void s_on_router(gw_gate_t *g)
{
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	for (int burst = 0; burst < 256; burst++) {
		zmq_msg_t part[8];
		size_t n = 0, total = 0;
		int more = 1;
		while (more) {
			zmq_msg_t scratch, *m = n < 8 ? &part[n] : &scratch;
			zmq_msg_init(m);
			if (zmq_msg_recv(m, g->router, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(m);
				if (total == 0) {
					for (size_t i = 0; i < n; i++)
						zmq_msg_close(&part[i]);
					return;
				}
				break;
			}
			total++;
			more = zmq_msg_more(m);
			if (m == &scratch)
				zmq_msg_close(m);
			else
				n++;
		}
		g->c.received++;
		if (n < 2 || zmq_msg_size(&part[0]) > RID_MAX)
			goto next;
		struct conn *c = s_conn_get(g, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]), &part[1]);
		if (!c)
			goto next;
		c->last_recv = s_mono_ms();
		struct qiao_frame f[8];
		size_t nf = n - 1;
		for (size_t i = 0; i < nf; i++) {
			f[i].data = zmq_msg_data(&part[i + 1]);
			f[i].len = zmq_msg_size(&part[i + 1]);
		}
		uint8_t cmd = 0;
		if (total - 1 > lim->max_frames) {
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__TOO_LARGE,
				 "message of %zu frames refused (at most %u)", total - 1, lim->max_frames);
			goto next;
		}
		if (qiao_cmd_parse(&f[0], &cmd) != 0) {
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST,
				 "message without a QIAO v1 command frame refused");
			goto next;
		}
		switch (cmd) {
		case QIAO_CMD_ENVELOPE:
			g->burst_first = burst == 0;
			s_on_envelope(g, c, f, nf);
			g->burst_first = 0;
			break;
		case QIAO_CMD_READY:
			s_on_ready(g, c, f, nf);
			break;
		case QIAO_CMD_HEARTBEAT:
			break;
		case QIAO_CMD_BYE:
			log_info("adapter.bye member=%s instance=\"%s\" inflight=%u", c->member, c->instance, c->inflight);
			c->bye = 1;
			break;
		default:
			s_notice(g, c->rid, c->rid_len, QIAO__V1__ERROR_CODE__BAD_REQUEST,
				 "command 0x%02x is not one an adapter sends", cmd);
			break;
		}
	next:
		for (size_t i = 0; i < n; i++)
			zmq_msg_close(&part[i]);
	}
}

/* ---- admin socket --------------------------------------------------------- */

static json_t *s_status_json(gw_gate_t *g)
{
	json_t *o = json_object();
	json_t *gw = json_object();
	json_object_set_new(gw, "member", json_string(gw_config_gateway(g->cfg)->member));
	json_object_set_new(gw, "pid", json_integer(getpid()));
	json_object_set_new(gw, "started_ms", json_integer(g->started_ms));
	json_object_set_new(gw, "uptime_ms", json_integer(qiao_now_ms() - g->started_ms));
	json_object_set_new(gw, "config", json_string(gw_config_path(g->cfg)));
	json_object_set_new(gw, "config_loaded_ms", json_integer(gw_config_loaded_ms(g->cfg)));
	json_object_set_new(gw, "draining", json_boolean(g->draining));
	json_object_set_new(o, "gateway", gw);

	json_t *conns = json_array();
	int64_t now = s_mono_ms();
	for (struct conn *c = g->conn_list; c; c = c->next) {
		json_t *x = json_object();
		json_object_set_new(x, "member", json_string(c->member));
		json_object_set_new(x, "instance", json_string(c->instance));
		json_object_set_new(x, "sdk", json_string(c->sdk));
		json_object_set_new(x, "peer", json_string(c->peer));
		json_object_set_new(x, "state", json_string(c->bye ? "bye" : c->ready ? "ready" : "connected"));
		json_object_set_new(x, "connected_ms", json_integer(c->since_ms));
		json_object_set_new(x, "last_heard_ms_ago", json_integer(now - c->last_recv));
		json_object_set_new(x, "inflight", json_integer(c->inflight));
		json_object_set_new(x, "max_inflight", json_integer(c->cap));
		json_object_set_new(x, "served", json_integer((json_int_t)c->served));
		json_t *sv = json_array();
		for (size_t i = 0; i < c->nsvcs; i++)
			json_array_append_new(sv, json_string(c->svcs[i]));
		json_object_set_new(x, "services", sv);
		json_array_append_new(conns, x);
	}
	json_object_set_new(o, "connections", conns);

	json_t *svcs = json_array();
	for (size_t i = 0; i < gw_config_service_count(g->cfg); i++) {
		const struct gw_service *s = gw_config_service_at(g->cfg, i);
		struct slot *sl = s_slot(g, s->id, 0);
		unsigned inst = 0, infl = 0;
		for (size_t k = 0; sl && k < sl->n; k++) {
			inst += !sl->v[k]->bye;
			infl += sl->v[k]->inflight;
		}
		json_t *x = json_object();
		json_object_set_new(x, "id", json_string(s->id));
		json_object_set_new(x, "alias", s->alias ? json_string(s->alias) : json_null());
		json_object_set_new(x, "class", json_string(gw_share_class_name(s->share_class)));
		json_object_set_new(x, "instances", json_integer(inst));
		json_object_set_new(x, "inflight", json_integer(infl));
		json_array_append_new(svcs, x);
	}
	json_object_set_new(o, "services", svcs);

	json_t *members = json_array();
	for (size_t i = 0; i < gw_config_member_count(g->cfg); i++) {
		const struct gw_member *m = gw_config_member_at(g->cfg, i);
		unsigned nc = 0;
		for (struct conn *c = g->conn_list; c; c = c->next)
			nc += strcmp(c->member, m->id) == 0;
		struct mcount *mc = s_mcount(g, m->id, 0);
		json_t *x = json_object();
		json_object_set_new(x, "id", json_string(m->id));
		json_object_set_new(x, "name", json_string(m->name));
		json_object_set_new(x, "connections", json_integer(nc));
		json_object_set_new(x, "requests_inflight", json_integer(mc ? mc->n : 0));
		json_array_append_new(members, x);
	}
	json_object_set_new(o, "members", members);

	struct qiao_gc_stats gs;
	qiao_gc_stats(g->gc, &gs);
	json_t *q = json_object();
	json_object_set_new(q, "pending_requests", json_integer((json_int_t)gw_map_count(g->pending)));
	json_object_set_new(q, "verify_queue", json_integer(atomic_load(&g->vqueued)));
	json_object_set_new(q, "commit_queue", json_integer((json_int_t)gs.queued));
	json_object_set_new(q, "in_progress", json_integer(g->outstanding));
	json_object_set_new(q, "max_pending", json_integer(gw_config_limits(g->cfg)->max_pending));
	json_object_set_new(o, "queues", q);
	json_t *au = json_object();
	json_object_set_new(au, "origin", json_string(gw_config_audit(g->cfg)->origin));
	json_object_set_new(au, "entries_written", json_integer((json_int_t)g->c.audit_entries));
	json_object_set_new(au, "last_checkpoint_ms", json_integer(g->last_ckpt_ms));
	json_object_set_new(o, "audit", au);
	json_t *ca = json_object();
	json_object_set_new(ca, "hits", json_integer((json_int_t)g->c.cache_hits));
	json_object_set_new(ca, "misses", json_integer((json_int_t)g->c.cache_misses));
	json_object_set_new(ca, "stale_served", json_integer((json_int_t)g->c.cache_stale));
	json_object_set_new(ca, "refused_unverified", json_integer((json_int_t)g->c.cache_refused));
	json_object_set_new(ca, "invalidations", json_integer((json_int_t)g->c.cache_invalidations));
	uint64_t nl = 0, nc = 0, last = 0;
	qiao_txn_t *ct = NULL;
	if (qiao_txn_begin(g->st, 0, &ct) == 0) {
		(void)gw_cache_counts(g->cache, ct, &nl, &nc);
		(void)gw_cache_outbox_size(g->cache, ct, &last);
	}
	json_object_set_new(ca, "licences_cached", json_integer((json_int_t)nl));
	json_object_set_new(ca, "credit_answers_cached", json_integer((json_int_t)nc));
	json_object_set_new(ca, "events", json_integer((json_int_t)last));
	json_t *sa = json_array();
	for (size_t i = 0; i < g->nsubs; i++) {
		uint64_t cur = 0;
		if (ct)
			(void)gw_cache_cursor_get(g->cache, ct, g->subs[i].member, &cur);
		json_t *x = json_object();
		json_object_set_new(x, "member", json_string(g->subs[i].member));
		json_object_set_new(x, "delivered_up_to", json_integer((json_int_t)cur));
		json_object_set_new(x, "behind", json_integer((json_int_t)(last - cur)));
		json_object_set_new(x, "inflight", json_boolean(g->subs[i].inflight));
		json_array_append_new(sa, x);
	}
	qiao_txn_abort(&ct);
	json_object_set_new(ca, "subscribers", sa);
	json_object_set_new(o, "cache", ca);
	if (g->wf)
		json_object_set_new(o, "workflow", gw_wf_status(g->wf));

	json_t *k = json_object();
#define CNT(name) json_object_set_new(k, #name, json_integer((json_int_t)g->c.name))
	CNT(received);
	CNT(requests);
	CNT(responses);
	CNT(errors_forwarded);
	CNT(events);
	CNT(notices);
	CNT(zap_ok);
	CNT(zap_refused);
	CNT(timeouts);
	CNT(provider_gone);
	CNT(retries);
	CNT(bad_signatures);
	CNT(conn_busy);
	CNT(replays);
	CNT(dropped_sends);
	CNT(late_answers);
	CNT(reloads);
	CNT(reload_failures);
	CNT(commit_failures);
	CNT(audit_entries);
	CNT(audit_failures);
	CNT(zap_unaudited);
#undef CNT
	json_object_set_new(k, "commits", json_integer((json_int_t)gs.batches));
	json_t *ref = json_object();
	for (int i = 1; i < 32; i++)
		if (g->c.refused[i])
			json_object_set_new(ref, s_code_name(i), json_integer((json_int_t)g->c.refused[i]));
	json_object_set_new(k, "refused", ref);
	json_object_set_new(o, "counters", k);
	return o;
}

static void s_on_admin(gw_gate_t *g)
{
	int fd = accept(g->admin_fd, NULL, NULL);
	if (fd < 0)
		return;
	json_t *o = s_status_json(g);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text) {
		/* with many connections the status outgrows the socket buffer
		 * (about 300 bytes per connection: 1,000 adapters are more than
		 * the usual 208 KiB), so wait for the client to read, but at most
		 * ADMIN_SEND_MS in all: one that does not read gets a cut document
		 * rather than stalling the reactor */
		size_t len = strlen(text), off = 0;
		int64_t until = s_mono_ms() + ADMIN_SEND_MS;
		while (off < len) {
			ssize_t w = send(fd, text + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0) {
				off += (size_t)w;
				continue;
			}
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				break;
			int64_t left = until - s_mono_ms();
			if (left <= 0)
				break;
			struct pollfd pf = {fd, POLLOUT, 0};
			(void)poll(&pf, 1, (int)left);
		}
		(void)send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
	}
	close(fd);
}

static int s_admin_open(gw_gate_t *g, const char *path, char *err, size_t errlen)
{
	int rc = gw_unix_listen(path, "admin_socket", &g->admin_fd, err, errlen);
	if (rc == 0)
		snprintf(g->admin_path, sizeof g->admin_path, "%s", path);
	return rc;
}

/* ---- timers --------------------------------------------------------------- */

/* ---- metrics (gw_metrics.h) ----------------------------------------------- */

/* Numbers for the HTTP thread, and the health verdict: the last commit
 * succeeded, and no entries stayed uncovered by a checkpoint for longer
 * than metrics.checkpoint_overdue_ms. */
static void s_met_publish(gw_gate_t *g)
{
	struct gw_metrics_snap s = {.now_ms = qiao_now_ms(), .started_ms = g->started_ms};
	int64_t mono = s_mono_ms();
	char reason[300] = "";
	s.received = g->c.received;
	s.requests_inflight = gw_map_count(g->pending);
	for (struct conn *c = g->conn_list; c; c = c->next) {
		s.queue_providers += c->inflight;
		s.connections++;
		struct conn *o = g->conn_list;
		while (o != c && strcmp(o->member, c->member) != 0)
			o = o->next;
		s.members += o == c;
	}
	struct qiao_gc_stats gs;
	qiao_gc_stats(g->gc, &gs);
	s.queue_verify = atomic_load(&g->vqueued);
	s.queue_commit = gs.queued;
	s.bad_signatures = g->c.bad_signatures;
	s.replays = g->c.replays;
	s.zap_refused = g->c.zap_refused;
	s.timeouts = g->c.timeouts;
	s.cache_hits = g->c.cache_hits;
	s.cache_misses = g->c.cache_misses;
	s.cache_stale = g->c.cache_stale;
	s.audit_entries_written = g->c.audit_entries;
	s.commit_failures = g->c.commit_failures;
	s.audit_failures = g->c.audit_failures;
	s.last_commit_ok = g->commit_rc == 0;
	qiao_txn_t *t = NULL;
	Qiao__V1__Checkpoint *ck = NULL;
	int rc = qiao_txn_begin(g->st, 0, &t);
	if (rc == 0)
		rc = audit_log_size(g->audit, t, &s.audit_size);
	if (rc == 0) {
		rc = audit_log_checkpoint_get(g->audit, t, UINT64_MAX, &ck);
		if (rc == QIAO_ENOTFOUND)
			rc = 0;
	}
	qiao_txn_abort(&t);
	uint64_t cks = ck ? ck->tree_size : 0;
	s.checkpoint_ms = ck ? ck->time_ms : 0;
	if (ck)
		qiao__v1__checkpoint__free_unpacked(ck, NULL);
	s.audit_uncovered = s.audit_size > cks ? s.audit_size - cks : 0;
	if (!s.audit_uncovered)
		g->uncovered_since = 0;
	else if (!g->uncovered_since || cks != g->met_ck_size)
		g->uncovered_since = mono;
	g->met_ck_size = cks;
	int64_t overdue = gw_config_metrics(g->cfg)->checkpoint_overdue_ms;
	if (rc != 0)
		snprintf(reason, sizeof reason, "the audit log cannot be read: %s", qiao_strerror(rc));
	else if (g->commit_rc != 0)
		snprintf(reason, sizeof reason, "the last audit commit failed: %s", qiao_strerror(g->commit_rc));
	else if (g->commit_failed_mono && mono - g->commit_failed_mono < STORE_HEALTH_HOLD_MS)
		/* a nearly full store or disk lets small commits through between
		 * failing ones: not healthy until commits stopped failing */
		snprintf(reason, sizeof reason,
			 "the last audit commit failed %" PRId64 " ms ago: %s; later ones succeeded (healthy again %d s "
			 "after the last failure)",
			 mono - g->commit_failed_mono, qiao_strerror(g->commit_failed_rc), STORE_HEALTH_HOLD_MS / 1000);
	else if (g->uncovered_since && mono - g->uncovered_since > overdue)
		snprintf(reason, sizeof reason,
			 "checkpoint overdue: %" PRIu64 " audit entries uncovered for %" PRId64
			 " ms (checkpoint_overdue_ms %" PRId64 ")",
			 s.audit_uncovered, mono - g->uncovered_since, overdue);
	s.healthy = !reason[0];
	s.reason = reason;
	struct gw_wf_count *wf = NULL;
	(void)gw_wf_metrics(g->wf, &wf, &s.nwf); /* out of memory: no workflow series this time */
	s.wf = wf;
	gw_metrics_publish(g->met, &s);
	free(wf);
}

static void s_timers(gw_gate_t *g)
{
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	int64_t mono = s_mono_ms(), now = qiao_now_ms();
	/* deadlines */
	while (g->nheap && g->heap[0]->deadline_ms <= now) {
		struct pend *p = g->heap[0];
		if (p->answering) { /* its answer is being committed: give it that */
			s_heap_remove(g, p);
			p->deadline_ms = now + 1000;
			if (s_heap_push(g, p) != 0)
				break;
			continue;
		}
		g->c.timeouts++;
		s_answer(g, AEV(TIMEOUT), p->req, p->rrid, p->rrid_len, p->requester, p->prov ? p->prov->member : NULL,
			 QIAO__V1__ERROR_CODE__TIMEOUT, NULL, NULL, 0, "%s did not answer before the deadline", p->service);
		s_pend_finish(g, p);
	}
	/* heartbeats and liveness */
	int64_t dead = lim->heartbeat_ms * (int64_t)lim->heartbeat_liveness;
	for (struct conn *c = g->conn_list, *next; c; c = next) {
		next = c->next;
		if (c->dead) {
			s_conn_drop(g, c, "disconnected");
			continue;
		}
		if (mono - c->last_recv > dead) {
			s_conn_drop(g, c, "silent for longer than heartbeat_ms x heartbeat_liveness");
			continue;
		}
		if (mono - c->last_send >= lim->heartbeat_ms)
			s_send_cmd(g, c->rid, c->rid_len, QIAO_CMD_HEARTBEAT, NULL, 0);
	}
	if (mono >= g->next_notify) {
		g->next_notify = mono + 500;
		s_notify_kick(g);
	}
	if (mono >= g->next_ckpt) {
		g->next_ckpt = mono + gw_config_audit(g->cfg)->checkpoint_ms;
		uint64_t wa = gw_wf_audited(g->wf);
		g->audit_submitted += wa - g->wf_audited;
		g->wf_audited = wa;
		if (g->audit_submitted != g->audit_at_ckpt)
			s_checkpoint_now(g);
	}
	if (g->met && mono >= g->next_met) {
		g->next_met = mono + 500;
		s_met_publish(g);
	}
	if (mono >= g->next_sweep) {
		g->next_sweep = mono + SWEEP_EVERY_MS;
		size_t removed = 0;
		/* bounded per run so the reactor is not held up */
		if (qiao_store_sweep_expired(g->st, g->replay_tbl, 0, 4096, &removed) != 0)
			log_warn("replay.sweep_failed reason=\"%s\"", qiao_store_last_error());
	}
}

static long s_next_timeout(gw_gate_t *g)
{
	long t = (long)gw_config_limits(g->cfg)->heartbeat_ms / 2;
	if (t < 10)
		t = 10;
	if (g->nheap) {
		int64_t d = g->heap[0]->deadline_ms - qiao_now_ms();
		if (d < t)
			t = d < 0 ? 0 : (long)d;
	}
	return t;
}

/* ---- reload --------------------------------------------------------------- */

static void s_reload(gw_gate_t *g)
{
	struct gw_config *nc = NULL;
	char err[1024];
	int rc = gw_config_load(gw_config_path(g->cfg), &nc, err, sizeof err);
	if (rc == 0) {
		const struct gw_gateway *a = gw_config_gateway(g->cfg), *b = gw_config_gateway(nc);
		int same = strcmp(a->member, b->member) == 0 && strcmp(a->key_file, b->key_file) == 0 &&
			   strcmp(a->store, b->store) == 0 && a->nlisten == b->nlisten;
		for (size_t i = 0; same && i < a->nlisten; i++)
			same = strcmp(a->listen[i], b->listen[i]) == 0;
		if (!same) {
			rc = QIAO_ECONFIG;
			snprintf(err, sizeof err,
				 "gateway.member, key_file, store and listen cannot change on reload (restart for that)");
			gw_config_free(&nc);
		}
	}
	if (rc != 0) {
		g->c.reload_failures++;
		char q[1100];
		log_error("reload.failed reason=\"%s\" (the previous configuration stays in force)", gw_log_q(err, q, sizeof q));
		return;
	}
	struct gw_config *old = g->cfg;
	g->cfg = nc;
	gw_config_wire_limits(g->cfg, &g->wl);
	g->c.reloads++;
	/* connections: drop members that left; re-check every offer; push the
	 * new key directory */
	for (struct conn *c = g->conn_list, *next; c; c = next) {
		next = c->next;
		const struct gw_member *cm = gw_config_member(g->cfg, c->member);
		if (!cm) {
			s_send_cmd(g, c->rid, c->rid_len, QIAO_CMD_BYE, NULL, 0);
			s_conn_drop(g, c, "member removed from the registry by a reload");
			continue;
		}
		if (c->has_curve && !gw_member_has_curve(cm, c->curve)) {
			/* a key rotation finished: the old CURVE key is refused from
			 * now on, also on connections it already authenticated */
			char kb[45];
			qiao_b64_32(c->curve, kb);
			log_warn("adapter.key_retired member=%s peer=%s curve_key=%s", c->member, c->peer, kb);
			s_audit_zap(g, c->peer, kb, "CURVE key retired by a reload (key rotation); connection closed");
			s_send_cmd(g, c->rid, c->rid_len, QIAO_CMD_BYE, NULL, 0);
			s_conn_drop(g, c, "its CURVE key was retired by a reload");
			continue;
		}
		if (c->ready) {
			/* names relative to the member, as READY offered them */
			size_t ml = strlen(c->member) + 1, n = c->nsvcs;
			char **names = calloc(n ? n : 1, sizeof *names);
			for (size_t i = 0; names && i < n; i++)
				names[i] = strdup(c->svcs[i] + ml);
			if (names)
				s_welcome(g, c, names, n);
			for (size_t i = 0; names && i < n; i++)
				free(names[i]);
			free(names);
		}
	}
	gw_config_free(&old);
	s_subs_build(g); /* events in flight are sent again: delivery is at least once */
	s_audit_admin(g, "configuration reloaded from %s: %zu members, %zu services, %zu policy rules",
		      gw_config_path(g->cfg), gw_config_member_count(g->cfg), gw_config_service_count(g->cfg),
		      gw_policy_rule_count(g->cfg));
	log_info("reload.ok members=%zu services=%zu rules=%zu", gw_config_member_count(g->cfg),
		 gw_config_service_count(g->cfg), gw_policy_rule_count(g->cfg));
}

/* ---- lifecycle ------------------------------------------------------------ */

/* The endpoint the workflow engine connects to: the first listen endpoint
 * as bound (a port of 0 resolved), a wildcard address made loopback. */
static void s_wf_endpoint(gw_gate_t *g)
{
	char ep[256] = "";
	size_t len = sizeof ep;
	if (zmq_getsockopt(g->router, ZMQ_LAST_ENDPOINT, ep, &len) != 0)
		return;
	const char *wild[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"};
	for (size_t i = 0; i < 3; i++)
		if (strncmp(ep, wild[i], strlen(wild[i])) == 0) {
			snprintf(g->wf_endpoint, sizeof g->wf_endpoint, "tcp://127.0.0.1:%s", ep + strlen(wild[i]));
			return;
		}
	snprintf(g->wf_endpoint, sizeof g->wf_endpoint, "%s", ep);
}

int gw_gate_new(struct gw_config **cfgp, gw_gate_t **out, char *err, size_t errlen)
{
	*out = NULL;
	gw_gate_t *g = calloc(1, sizeof *g);
	if (!g)
		return QIAO_ENOMEM;
	g->admin_fd = -1;
	g->cfg = *cfgp;
	const struct gw_gateway *gw = gw_config_gateway(g->cfg);
	const struct gw_limits *lim = gw_config_limits(g->cfg);
	gw_config_wire_limits(g->cfg, &g->wl);
	g->started_ms = qiao_now_ms();
	char why[256];
	int rc = qiao_keys_load(gw->key_file, &g->keys, why, sizeof why);
	if (rc != 0) {
		snprintf(err, errlen, "key_file %s: %s", gw->key_file, why);
		goto fail;
	}
	if (strcmp(g->keys->member, gw->member) != 0) {
		rc = QIAO_ECONFIG;
		snprintf(err, errlen, "key_file %s is for %s, not for gateway.member %s", gw->key_file, g->keys->member,
			 gw->member);
		goto fail;
	}
	struct qiao_store_opts so = {.max_map_size = gw->store_max_map_size}; /* 0: the default */
	rc = qiao_store_open(&g->st, gw->store, &so);
	if (rc != 0) {
		snprintf(err, errlen, "store %s: %s", gw->store, qiao_store_last_error());
		goto fail;
	}
	rc = qiao_store_table(g->st, "replay", REPLAY_TYPE, &g->replay_tbl);
	if (rc != 0) {
		snprintf(err, errlen, "store %s, table replay: %s", gw->store, qiao_strerror(rc));
		goto fail;
	}
	const struct gw_audit *au = gw_config_audit(g->cfg);
	struct audit_cfg ac = {.store_dir = gw->store,
			       .origin = au->origin,
			       .gateway = gw->member,
			       .checkpoint_entries = au->checkpoint_entries,
			       .sign_sk = g->keys->sign_sk,
			       .sign_pk = g->keys->sign_pk};
	rc = audit_log_open(g->st, &ac, &g->audit, err, errlen);
	if (rc != 0)
		goto fail;
	rc = gw_cache_open(g->st, &g->cache);
	if (rc != 0) {
		snprintf(err, errlen, "store %s, cache tables: %s", gw->store, qiao_strerror(rc));
		goto fail;
	}
	s_subs_build(g);
	rc = qiao_gc_new(g->st, NULL, &g->gc);
	if (rc != 0) {
		snprintf(err, errlen, "group-commit writer: %s", qiao_strerror(rc));
		goto fail;
	}
	rc = QIAO_ENOMEM;
	g->conns = gw_map_new();
	g->slots = gw_map_new();
	g->mcounts = gw_map_new();
	g->pending = gw_map_new();
	g->recent = gw_map_new();
	g->vq = gw_mbox_new();
	g->rq = gw_mbox_new();
	if (!g->conns || !g->slots || !g->mcounts || !g->pending || !g->recent || !g->vq || !g->rq) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	g->nvthreads = gw->verify_threads;
	g->vthreads = calloc(g->nvthreads, sizeof *g->vthreads);
	if (!g->vthreads)
		goto fail;
	for (unsigned i = 0; i < g->nvthreads; i++)
		if (pthread_create(&g->vthreads[i], NULL, s_verify_main, g) != 0) {
			g->nvthreads = i;
			rc = QIAO_ENOMEM;
			snprintf(err, errlen, "cannot start verify threads");
			goto fail;
		}

	g->ctx = zmq_ctx_new();
	if (!g->ctx) {
		snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
		goto fail;
	}
	/* The ZAP handler must be bound before any socket that uses CURVE. */
	g->zap = zmq_socket(g->ctx, ZMQ_REP);
	if (!g->zap || zmq_bind(g->zap, "inproc://zeromq.zap.01") != 0) {
		rc = QIAO_EIO;
		snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(errno));
		goto fail;
	}
	g->router = zmq_socket(g->ctx, ZMQ_ROUTER);
	int one = 1, zero = 0, hwm = lim->queue_hwm;
	/* frames above this are cut off by libzmq (the connection is dropped);
	 * between max_body and this the gateway answers TOO_LARGE itself */
	int64_t maxmsg = (int64_t)lim->max_body * 2 + (int64_t)lim->max_header + 65536;
	if (!g->router || zmq_setsockopt(g->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_CURVE_SECRETKEY, g->keys->curve_sk, 32) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_ZAP_DOMAIN, "qiao", 4) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
	    zmq_setsockopt(g->router, ZMQ_LINGER, &zero, sizeof zero) != 0) {
		rc = QIAO_EIO;
		snprintf(err, errlen, "ROUTER socket: %s", zmq_strerror(errno));
		goto fail;
	}
	for (size_t i = 0; i < gw->nlisten; i++) {
		if (zmq_bind(g->router, gw->listen[i]) != 0) {
			rc = QIAO_EIO;
			snprintf(err, errlen, "cannot listen on %s: %s", gw->listen[i], zmq_strerror(errno));
			goto fail;
		}
		if (i == 0)
			s_wf_endpoint(g);
	}
	rc = s_admin_open(g, gw->admin_socket, err, errlen);
	if (rc != 0)
		goto fail;
	if (gw_config_metrics(g->cfg)->enabled) {
		rc = gw_metrics_start(gw_config_metrics(g->cfg), &g->met, err, errlen);
		if (rc != 0)
			goto fail;
		s_met_publish(g);
		log_info("metrics.listening address=%s", gw_config_metrics(g->cfg)->listen);
	}
	*cfgp = NULL;
	*out = g;
	return 0;
fail:
	g->cfg = NULL; /* still the caller's */
	gw_gate_destroy(&g);
	return rc ? rc : QIAO_EIO;
}

static void s_free_map_val(void *arg, const void *k, size_t kl, void *v)
{
	(void)arg, (void)k, (void)kl;
	free(v);
}

static void s_free_slot(void *arg, const void *k, size_t kl, void *v)
{
	(void)arg, (void)k, (void)kl;
	struct slot *s = v;
	free(s->v);
	free(s);
}

static void s_drain_mailbox(gw_gate_t *g)
{
	struct gw_item *it = gw_mbox_take_all(g->rq);
	while (it) {
		struct gw_item *next = it->next;
		s_on_job(g, (struct job *)it);
		it = next;
	}
}

int gw_gate_run(gw_gate_t *g, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload, int64_t drain_ms)
{
	const struct gw_gateway *gw = gw_config_gateway(g->cfg);
	const struct gw_workflow *wfc = gw_config_workflow(g->cfg);
	if (wfc && wfc->enabled) {
		char curve[45], err[1024] = "";
		qiao_b64_32(g->keys->curve_pk, curve);
		struct gw_wf_env env = {.cfg = g->cfg, .st = g->st, .gc = g->gc, .audit = g->audit,
					.endpoint = wfc->endpoint ? wfc->endpoint : g->wf_endpoint,
					.gateway_curve = curve};
		int rc = gw_wf_start(&env, &g->wf, err, sizeof err);
		if (rc != 0) {
			log_error("workflow.start_failed reason=\"%s\"", err);
			return rc;
		}
	}
	log_info("gateway.ready member=%s listen=%s members=%zu services=%zu rules=%zu verify_threads=%u", gw->member,
		 gw->listen[0], gw_config_member_count(g->cfg), gw_config_service_count(g->cfg),
		 gw_policy_rule_count(g->cfg), g->nvthreads);
	s_audit_admin(g, "gateway started with %s: %zu members, %zu services, %zu policy rules", gw_config_path(g->cfg),
		      gw_config_member_count(g->cfg), gw_config_service_count(g->cfg), gw_policy_rule_count(g->cfg));
	int64_t drain_until = 0;
	for (;;) {
		if (*stop && !g->draining) {
			/* the engine first: its calls in flight stay RUNNING and resume at the next start */
			gw_wf_stop(&g->wf);
			g->draining = 1;
			drain_until = s_mono_ms() + drain_ms;
			log_info("gateway.draining pending=%zu in_progress=%u", gw_map_count(g->pending), g->outstanding);
		}
		if (g->draining && ((gw_map_count(g->pending) == 0 && g->outstanding == 0) || s_mono_ms() >= drain_until))
			break;
		if (*reload) {
			*reload = 0;
			s_reload(g);
		}
		zmq_pollitem_t items[4] = {
			{g->router, 0, ZMQ_POLLIN, 0},
			{g->zap, 0, ZMQ_POLLIN, 0},
			{NULL, gw_mbox_fd(g->rq), ZMQ_POLLIN, 0},
			{NULL, g->admin_fd, ZMQ_POLLIN, 0},
		};
		int rc = zmq_poll(items, 4, s_next_timeout(g));
		if (rc < 0 && errno != EINTR) {
			log_error("poll.failed reason=\"%s\"", zmq_strerror(errno));
			return QIAO_EIO;
		}
		if (rc > 0) {
			if (items[1].revents & ZMQ_POLLIN)
				s_on_zap(g);
			if (items[2].revents & ZMQ_POLLIN)
				s_drain_mailbox(g);
			if (items[0].revents & ZMQ_POLLIN)
				s_on_router(g);
			if (items[3].revents & ZMQ_POLLIN)
				s_on_admin(g);
		}
		s_timers(g);
	}
	/* answer what is still waiting (audited), sign a last checkpoint,
	 * then say goodbye */
	while (g->nheap) {
		struct pend *p = g->heap[0];
		s_answer(g, AEV(TIMEOUT), p->req, p->rrid, p->rrid_len, p->requester, p->prov ? p->prov->member : NULL,
			 QIAO__V1__ERROR_CODE__UNAVAILABLE, NULL, NULL, 2000, "the gateway shut down before %s answered",
			 p->service);
		s_pend_finish(g, p);
	}
	s_checkpoint_now(g);
	for (int spin = 0; g->outstanding && spin < 1000; spin++) {
		(void)qiao_gc_flush(g->gc);
		s_drain_mailbox(g);
	}
	for (struct conn *c = g->conn_list; c; c = c->next)
		s_send_cmd(g, c->rid, c->rid_len, QIAO_CMD_BYE, NULL, 0);
	log_info("gateway.stopped requests=%" PRIu64 " responses=%" PRIu64, g->c.requests, g->c.responses);
	return 0;
}

void gw_gate_destroy(gw_gate_t **gp)
{
	if (!gp || !*gp)
		return;
	gw_gate_t *g = *gp;
	gw_metrics_stop(&g->met); /* first: its thread reads nothing of ours, but serves until stopped */
	gw_wf_stop(&g->wf);
	if (g->vq) {
		gw_mbox_close(g->vq);
		for (unsigned i = 0; i < g->nvthreads; i++)
			pthread_join(g->vthreads[i], NULL);
	}
	free(g->vthreads);
	qiao_gc_destroy(&g->gc); /* every done has run: their jobs are in rq */
	if (g->rq) {
		struct gw_item *it = gw_mbox_take_all(g->rq);
		while (it) {
			struct gw_item *next = it->next;
			s_job_free((struct job *)it);
			it = next;
		}
	}
	if (g->vq) {
		struct gw_item *it = gw_mbox_take_all(g->vq);
		while (it) {
			struct gw_item *next = it->next;
			s_job_free((struct job *)it);
			it = next;
		}
	}
	while (g->nheap) {
		struct pend *p = g->heap[--g->nheap];
		qiao_envelope_destroy(&p->req);
		free(p);
	}
	free(g->heap);
	for (struct conn *c = g->conn_list, *next; c; c = next) {
		next = c->next;
		for (size_t i = 0; i < c->nsvcs; i++)
			free(c->svcs[i]);
		free(c->svcs);
		free(c);
	}
	if (g->slots)
		gw_map_each(g->slots, s_free_slot, NULL);
	if (g->mcounts)
		gw_map_each(g->mcounts, s_free_map_val, NULL);
	gw_map_destroy(&g->conns);
	gw_map_destroy(&g->slots);
	gw_map_destroy(&g->mcounts);
	gw_map_destroy(&g->pending);
	gw_map_destroy(&g->recent);
	gw_mbox_destroy(&g->vq);
	gw_mbox_destroy(&g->rq);
	if (g->router) {
		/* let the last answers and the BYEs of a drain reach the wire */
		int linger = 1000;
		zmq_setsockopt(g->router, ZMQ_LINGER, &linger, sizeof linger);
		zmq_close(g->router);
	}
	if (g->zap)
		zmq_close(g->zap);
	if (g->ctx)
		zmq_ctx_term(g->ctx);
	if (g->admin_fd >= 0) {
		close(g->admin_fd);
		unlink(g->admin_path);
	}
	audit_log_close(&g->audit);
	gw_cache_close(&g->cache);
	for (size_t i = 0; i < g->nsubs; i++)
		qiao_envelope_destroy(&g->subs[i].req);
	free(g->subs);
	qiao_store_close(&g->st);
	qiao_keys_destroy(&g->keys);
	gw_config_free(&g->cfg);
	free(g);
	*gp = NULL;
}
