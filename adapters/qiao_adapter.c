/*
 * qiao_adapter.c - the application side of libqiao-adapter: construction
 * and shutdown, offers, calls and their results, responders, the handler
 * threads, logging and counters.  The socket lives in adapter_io.c.
 */
#include "adapter_int.h"
#include "qiao_id.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ---- small helpers ------------------------------------------------------ */

int64_t adp_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec s_mono_abs(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	return ts;
}

static const char *const s_level_names[] = {"", "ERROR", "WARN", "INFO", "DEBUG"};

/* The default sink: "2026-01-01T08:00:00.123Z qiao-adapter[member] WARN text". */
static void s_log_stderr(void *arg, enum qiao_log_level lvl, const char *msg)
{
	const struct qiao_adapter *a = arg;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ qiao-adapter[%s] %s %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, a ? a->keys->member : "-",
		s_level_names[lvl >= QIAO_LOG_ERROR && lvl <= QIAO_LOG_DEBUG ? lvl : 0], msg);
}

void adp_log(struct qiao_adapter *a, enum qiao_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > a->log_level)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* Messages quote text from the network: keep each event on one line. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	a->log_fn(a->log_arg, lvl, buf);
}

void qiao_adapter_set_log(qiao_adapter_t *a, qiao_log_fn fn, void *arg, enum qiao_log_level level)
{
	if (!a)
		return;
	a->log_fn = fn ? fn : s_log_stderr;
	a->log_arg = fn ? arg : a;
	a->log_level = level >= QIAO_LOG_ERROR && level <= QIAO_LOG_DEBUG ? (int)level : QIAO_LOG_INFO;
}

const char *qiao_adapter_member(const qiao_adapter_t *a)
{
	return a ? a->keys->member : "";
}

const char *qiao_error_code_name(int code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&qiao__v1__error_code__descriptor, code);
	return v && code != 0 ? v->name : "UNKNOWN";
}

void adp_wake_locked(struct qiao_adapter *a)
{
	if (a->wake_pending)
		return;
	a->wake_pending = true;
	/* A full pipe already holds a wake-up; nothing else can fail here. */
	ssize_t w = write(a->wake_fd[1], "w", 1);
	(void)w;
}

void adp_work_push_locked(struct qiao_adapter *a, struct job *j)
{
	j->next = NULL;
	if (a->work_tail)
		a->work_tail->next = j;
	else
		a->work_head = j;
	a->work_tail = j;
	pthread_cond_signal(&a->work_cv);
}

/* "<name>.v<N>": name [a-z0-9][a-z0-9.-]{0,63}, N 1-4 digits (protocol.md). */
static bool s_service_name_ok(const char *s)
{
	const char *v = strrchr(s, '.');
	if (!v || v == s || v[1] != 'v')
		return false;
	size_t nd = strlen(v + 2);
	if (nd < 1 || nd > 4 || strspn(v + 2, "0123456789") != nd)
		return false;
	size_t nl = (size_t)(v - s);
	if (nl > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") >= nl;
}

static bool s_body_type_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= QIAO_MAX_BODY_TYPE &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.") == n;
}

/* ---- results ------------------------------------------------------------ */

struct result_priv {
	struct qiao_result pub;       /* first: the public pointer is this struct */
	qiao_envelope_t *env;
	Qiao__V1__ErrorReply *er;
	char *msg;
};

static struct result_priv *s_result_alloc(const uint8_t msgid[QIAO_MSGID_LEN])
{
	struct result_priv *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	struct qiao_result *r = &p->pub;
	r->responder = r->body_type = "";
	r->error.name = r->error.message = r->error.field = "";
	r->error.missing_rule = r->error.origin = "";
	if (msgid)
		memcpy(r->request_id, msgid, QIAO_MSGID_LEN);
	return p;
}

struct qiao_result *adp_result_local(int rc, const uint8_t msgid[QIAO_MSGID_LEN], const char *fmt, ...)
{
	struct result_priv *p = s_result_alloc(msgid);
	if (!p)
		return NULL;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	p->msg = strdup(buf);
	p->pub.status = rc;
	p->pub.kind = QIAO_RESULT_LOCAL;
	p->pub.error.message = p->msg ? p->msg : qiao_strerror(rc);
	return &p->pub;
}

struct qiao_result *adp_result_answer(qiao_envelope_t **envp, const uint8_t msgid[QIAO_MSGID_LEN])
{
	qiao_envelope_t *env = *envp;
	const Qiao__V1__Header *h = env->hdr;
	Qiao__V1__ErrorReply *er = NULL;
	if (h->kind == QIAO__V1__MESSAGE_KIND__ERROR) {
		er = qiao__v1__error_reply__unpack(NULL, env->body_len, env->body);
		if (!er) {
			struct qiao_result *r = adp_result_local(QIAO_EDECODE, msgid,
								 "ERROR from %s: body is not a valid qiao.v1.ErrorReply",
								 h->sender);
			qiao_envelope_destroy(envp);
			return r;
		}
	}
	struct result_priv *p = s_result_alloc(msgid);
	if (!p) {
		if (er)
			qiao__v1__error_reply__free_unpacked(er, NULL);
		qiao_envelope_destroy(envp);
		return NULL;
	}
	*envp = NULL;
	p->env = env;
	p->er = er;
	struct qiao_result *r = &p->pub;
	r->status = 0;
	r->hdr = h;
	r->responder = h->sender;
	r->body_type = h->body_type;
	r->body = env->body;
	r->body_len = env->body_len;
	r->header_bytes = env->header;
	r->header_len = env->header_len;
	r->signature = env->sig;
	if (er) {
		r->kind = QIAO_RESULT_ERROR;
		r->error.code = (int)er->code;
		r->error.name = qiao_error_code_name((int)er->code);
		r->error.message = er->message;
		r->error.field = er->field;
		r->error.missing_rule = er->missing_rule;
		r->error.retry_after_ms = er->retry_after_ms;
		r->error.origin = er->origin;
	} else {
		r->kind = QIAO_RESULT_RESPONSE;
	}
	return r;
}

void qiao_result_free(struct qiao_result **res)
{
	if (!res || !*res)
		return;
	struct result_priv *p = (struct result_priv *)*res;
	if (p->er)
		qiao__v1__error_reply__free_unpacked(p->er, NULL);
	qiao_envelope_destroy(&p->env);
	free(p->msg);
	free(p);
	*res = NULL;
}

/* ---- construction and shutdown ----------------------------------------- */

static void s_free(struct qiao_adapter *a)
{
	adp_io_free(a);
	while (a->out_head) {
		struct outmsg *m = a->out_head;
		a->out_head = m->next;
		qiao_envelope_destroy(&m->env);
		free(m);
	}
	if (a->zctx)
		zmq_ctx_term(a->zctx);
	for (int i = 0; i < 2; i++)
		if (a->wake_fd[i] >= 0)
			close(a->wake_fd[i]);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work_cv);
	pthread_cond_destroy(&a->call_cv);
	pthread_cond_destroy(&a->conn_cv);
	qiao_keys_destroy(&a->keys);
	free(a->endpoint);
	free(a->workers);
	free(a);
}

void adp_unref(struct qiao_adapter *a)
{
	pthread_mutex_lock(&a->mu);
	bool last = --a->refs == 0;
	pthread_mutex_unlock(&a->mu);
	if (last)
		s_free(a);
}

static uint32_t s_opt(uint32_t v, uint32_t def, uint32_t lo, uint32_t hi)
{
	if (v == 0)
		return def;
	return v < lo ? lo : v > hi ? hi : v;
}

/* Copy at most `max` bytes of `s` into dst[max + 1] as printable UTF-8:
 * cut on a character boundary, control characters made spaces, and when
 * the text is not valid UTF-8 every non-ASCII byte made '?'.  Receivers
 * in other languages refuse protobuf strings that are not UTF-8. */
static void s_copy_utf8(char *dst, size_t max, const char *s)
{
	size_t n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	bool valid = qiao_utf8_chars(dst, n) >= 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)dst[i];
		if (c < 0x20 || c == 0x7f)
			dst[i] = ' ';
		else if (c >= 0x80 && !valid)
			dst[i] = '?';
	}
}

#define ERR(...)                                                                 \
	do {                                                                     \
		if (err && errlen)                                               \
			snprintf(err, errlen, __VA_ARGS__);                      \
	} while (0)

int qiao_adapter_new(const struct qiao_adapter_opts *o, qiao_adapter_t **out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return QIAO_EINVAL;
	*out = NULL;
	if (!o || !o->endpoint || !o->endpoint[0]) {
		ERR("endpoint is required (e.g. tcp://gateway.example:7700)");
		return QIAO_EINVAL;
	}
	if (!o->key_file || !o->key_file[0]) {
		ERR("key_file is required (write one with qiao keygen)");
		return QIAO_EINVAL;
	}
	uint8_t gwpk[32];
	if (!o->gateway_curve_public ||
	    qiao_b64_decode_exact(o->gateway_curve_public, gwpk, sizeof gwpk) != 0) {
		ERR("gateway_curve_public: expected base64 of the gateway's 32-byte CURVE public key");
		return QIAO_EINVAL;
	}
	if (qiao_crypto_init() != 0) {
		ERR("libsodium could not be initialised");
		return QIAO_ECRYPTO;
	}
	struct qiao_adapter *a = calloc(1, sizeof *a);
	if (!a) {
		ERR("out of memory");
		return QIAO_ENOMEM;
	}
	a->wake_fd[0] = a->wake_fd[1] = -1;
	a->refs = 1;
	a->log_fn = o->log ? o->log : s_log_stderr;
	a->log_arg = o->log ? o->log_arg : a;
	a->log_level = o->log_level >= QIAO_LOG_ERROR && o->log_level <= QIAO_LOG_DEBUG
			       ? (int)o->log_level
			       : QIAO_LOG_INFO;
	memcpy(a->gw_curve_pk, gwpk, sizeof gwpk);
	a->max_inflight = s_opt(o->max_inflight, 64, 1, 65536);
	a->max_pending = s_opt(o->max_pending_calls, 256, 1, 65536);
	a->reconnect_min = s_opt(o->reconnect_min_ms, 100, 1, 600000);
	a->reconnect_max = s_opt(o->reconnect_max_ms, 5000, a->reconnect_min, 3600000);
	a->n_workers = s_opt(o->handler_threads, 1, 1, 256);
	a->call_timeout = s_opt(o->call_timeout_ms, 30000, 1, 86400000);
	a->call_grace = s_opt(o->call_grace_ms, 2000, 1, 600000);
	a->hello_timeout = s_opt(o->hello_timeout_ms, 3000, 10, 600000);
	a->drain_ms = s_opt(o->drain_ms, 2000, 1, 600000);
	a->sndhwm = s_opt(o->sndhwm, 1000, 1, 1000000);
	a->rcvhwm = s_opt(o->rcvhwm, 1000, 1, 1000000);
	qiao_wire_limits_default(&a->lim);

	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->work_cv, NULL);
	pthread_cond_init(&a->call_cv, &ca);
	pthread_cond_init(&a->conn_cv, &ca);
	pthread_condattr_destroy(&ca);

	char why[300];
	int rc = qiao_keys_load(o->key_file, &a->keys, why, sizeof why);
	if (rc != 0) {
		ERR("key file: %s", why[0] ? why : qiao_strerror(rc));
		goto fail;
	}
	char r[160];
	if (qiao_id_check_member(NULL, a->keys->member, r, sizeof r) != 0) {
		ERR("key file %s: member: %s", o->key_file, r);
		rc = QIAO_EKEYFILE;
		goto fail;
	}
	a->endpoint = strdup(o->endpoint);
	if (!a->endpoint) {
		rc = QIAO_ENOMEM;
		goto fail;
	}
	if (o->instance && o->instance[0]) {
		s_copy_utf8(a->instance, sizeof a->instance - 1, o->instance);
	} else {
		char host[256] = "";
		gethostname(host, sizeof host - 1);
		host[sizeof host - 1] = '\0';
		snprintf(a->instance, sizeof a->instance, "%.40s pid %ld", host[0] ? host : "?",
			 (long)getpid());
	}
	if (pipe(a->wake_fd) != 0) {
		rc = -errno;
		ERR("pipe: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(a->wake_fd[i], F_SETFL, fcntl(a->wake_fd[i], F_GETFL) | O_NONBLOCK);
		fcntl(a->wake_fd[i], F_SETFD, FD_CLOEXEC);
	}
	a->zctx = zmq_ctx_new();
	if (!a->zctx) {
		rc = -errno;
		ERR("zmq_ctx_new: %s", zmq_strerror(errno));
		goto fail;
	}
	rc = adp_io_init(a);
	if (rc != 0)
		goto fail;
	*out = a;
	return 0;
fail:
	if (rc == QIAO_ENOMEM && err && errlen && !err[0])
		ERR("out of memory");
	s_free(a);
	return rc;
}

static void *s_worker_main(void *arg);

int qiao_adapter_start(qiao_adapter_t *a)
{
	if (!a)
		return QIAO_EINVAL;
	pthread_mutex_lock(&a->mu);
	int rc = a->closing ? QIAO_ECLOSED : a->started ? QIAO_EINVAL : 0;
	if (rc == 0)
		a->started = true;
	pthread_mutex_unlock(&a->mu);
	if (rc != 0)
		return rc;
	a->workers = calloc(a->n_workers, sizeof *a->workers);
	if (!a->workers) {
		rc = QIAO_ENOMEM;
		goto fail;
	}
	/* SDK threads block asynchronous signals, so that SIGINT and SIGTERM
	 * reach the application's own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = 0;
	for (; e == 0 && a->n_started_workers < a->n_workers; a->n_started_workers++)
		e = pthread_create(&a->workers[a->n_started_workers], NULL, s_worker_main, a);
	if (e != 0)
		a->n_started_workers--;
	else
		e = pthread_create(&a->io_th, NULL, adp_io_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		rc = -e;
		goto fail;
	}
	a->io_running = true;
	adp_log(a, QIAO_LOG_INFO, "started: gateway %s, instance \"%s\", %u handler thread(s)",
		a->endpoint, a->instance, a->n_workers);
	return 0;
fail:
	pthread_mutex_lock(&a->mu);
	a->workers_stop = true;
	pthread_cond_broadcast(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	for (uint32_t i = 0; i < a->n_started_workers; i++)
		pthread_join(a->workers[i], NULL);
	pthread_mutex_lock(&a->mu);
	a->n_started_workers = 0;
	a->workers_stop = false;
	a->started = false;
	pthread_mutex_unlock(&a->mu);
	adp_log(a, QIAO_LOG_ERROR, "start failed: %s", qiao_strerror(rc));
	return rc;
}

void qiao_adapter_destroy(qiao_adapter_t **ap)
{
	if (!ap || !*ap)
		return;
	struct qiao_adapter *a = *ap;
	pthread_t self = pthread_self();
	bool own_thread = a->io_running && pthread_equal(self, a->io_th);
	for (uint32_t i = 0; i < a->n_started_workers; i++)
		own_thread = own_thread || pthread_equal(self, a->workers[i]);
	if (own_thread) {
		/* Joining ourselves would hang: a programmer error, refused. */
		adp_log(a, QIAO_LOG_ERROR, "qiao_adapter_destroy called from a handler or callback; ignored");
		return;
	}
	*ap = NULL;
	pthread_mutex_lock(&a->mu);
	a->closing = true;
	adp_wake_locked(a);
	pthread_cond_broadcast(&a->conn_cv);
	pthread_mutex_unlock(&a->mu);
	/* The I/O thread fails pending calls, says BYE, lets in-flight requests
	 * be answered for up to drain_ms, then closes the socket. */
	if (a->io_running)
		pthread_join(a->io_th, NULL);
	pthread_mutex_lock(&a->mu);
	a->io_running = false;
	a->io_stopped = true;
	a->connected = false;
	a->workers_stop = true;
	pthread_cond_broadcast(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	for (uint32_t i = 0; i < a->n_started_workers; i++)
		pthread_join(a->workers[i], NULL);
	a->n_started_workers = 0;
	adp_log(a, QIAO_LOG_INFO, "stopped");
	adp_unref(a);
}

int qiao_adapter_wait_connected(qiao_adapter_t *a, uint32_t timeout_ms)
{
	if (!a)
		return QIAO_EINVAL;
	struct timespec until = s_mono_abs(adp_mono_ms() + timeout_ms);
	pthread_mutex_lock(&a->mu);
	a->refs++; /* a concurrent destroy must not free what we wait on */
	while (!a->connected && !a->closing)
		if (pthread_cond_timedwait(&a->conn_cv, &a->mu, &until) == ETIMEDOUT)
			break;
	int rc = a->connected ? 0 : a->closing ? QIAO_ECLOSED : QIAO_ETIMEOUT;
	pthread_mutex_unlock(&a->mu);
	adp_unref(a);
	return rc;
}

void qiao_adapter_stats(qiao_adapter_t *a, struct qiao_adapter_stats *s)
{
	memset(s, 0, sizeof *s);
	if (!a)
		return;
	s->welcomes = atomic_load(&a->st.welcomes);
	s->reconnects = atomic_load(&a->st.reconnects);
	s->calls_sent = atomic_load(&a->st.calls_sent);
	s->calls_answered = atomic_load(&a->st.calls_answered);
	s->calls_failed = atomic_load(&a->st.calls_failed);
	s->calls_timed_out = atomic_load(&a->st.calls_timed_out);
	s->requests_handled = atomic_load(&a->st.requests_handled);
	s->requests_refused = atomic_load(&a->st.requests_refused);
	s->answers_sent = atomic_load(&a->st.answers_sent);
	s->dropped = atomic_load(&a->st.dropped);
	s->bad_signatures = atomic_load(&a->st.bad_signatures);
	s->notices = atomic_load(&a->st.notices);
	pthread_mutex_lock(&a->mu);
	s->connected = a->connected;
	s->pending_calls = a->n_calls;
	s->inflight_requests = a->n_inflight;
	pthread_mutex_unlock(&a->mu);
}

/* ---- offers ------------------------------------------------------------- */

int qiao_adapter_offer(qiao_adapter_t *a, const char *service, const char *response_type,
		       qiao_handler_fn fn, void *arg)
{
	if (!a || !service || !response_type || !fn || !s_service_name_ok(service) ||
	    !s_body_type_ok(response_type)) {
		if (a)
			adp_log(a, QIAO_LOG_ERROR, "offer %s: want a name <name>.v<N> and a protobuf type name",
				service ? service : "(null)");
		return QIAO_EINVAL;
	}
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	if (a->closing) {
		rc = QIAO_ECLOSED;
		goto out;
	}
	for (size_t i = 0; i < a->n_offers; i++)
		if (strcmp(a->offers[i].name, service) == 0) {
			rc = QIAO_EEXIST;
			goto out;
		}
	if (a->n_offers == ADP_MAX_OFFERS) {
		rc = QIAO_EINVAL;
		goto out;
	}
	struct offer *of = &a->offers[a->n_offers++];
	snprintf(of->name, sizeof of->name, "%s", service);
	snprintf(of->type, sizeof of->type, "%s", response_type);
	of->fn = fn;
	of->arg = arg;
	if (a->started) {
		a->ready_dirty = true;
		adp_wake_locked(a);
	}
out:
	pthread_mutex_unlock(&a->mu);
	if (rc == 0)
		adp_log(a, QIAO_LOG_INFO, "offering %s (answers %s)", service, response_type);
	return rc;
}

/* ---- responders --------------------------------------------------------- */

struct qiao_responder *adp_responder_new_locked(struct qiao_adapter *a, qiao_envelope_t **envp,
						const struct offer *o)
{
	struct qiao_responder *r = calloc(1, sizeof *r);
	if (!r) {
		qiao_envelope_destroy(envp);
		return NULL;
	}
	qiao_envelope_t *env = *envp;
	*envp = NULL;
	r->job.kind = JOB_REQUEST;
	r->a = a;
	a->refs++;
	r->env = env;
	r->fn = o->fn;
	r->arg = o->arg;
	snprintf(r->service, sizeof r->service, "%s", o->name);
	snprintf(r->response_type, sizeof r->response_type, "%s", o->type);
	r->req.hdr = env->hdr;
	r->req.requester = env->hdr->sender;
	r->req.service = r->service;
	r->req.body = env->body;
	r->req.body_len = env->body_len;
	r->req.header_bytes = env->header;
	r->req.header_len = env->header_len;
	r->req.signature = env->sig;
	return r;
}

const struct qiao_request *qiao_responder_request(const struct qiao_responder *r)
{
	return r ? &r->req : NULL;
}

static void s_responder_free(struct qiao_responder *r)
{
	struct qiao_adapter *a = r->a;
	qiao_envelope_destroy(&r->env);
	free(r);
	adp_unref(a);
}

/* Hand a sealed answer to the I/O thread, release the in-flight slot and
 * the responder.  `ans` NULL: nothing could be sealed (`seal_rc` says why)
 * and the request stays unanswered here; the gateway's deadline ends it. */
static int s_answer(struct qiao_responder *r, qiao_envelope_t *ans, int seal_rc)
{
	struct qiao_adapter *a = r->a;
	struct outmsg *m = ans ? calloc(1, sizeof *m) : NULL;
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	a->n_inflight--;
	if (a->io_stopped) {
		rc = QIAO_ECLOSED;
	} else if (!ans) {
		rc = seal_rc ? seal_rc : QIAO_EINVAL;
	} else if (!m) {
		rc = QIAO_ENOMEM;
	} else {
		m->env = ans;
		ans = NULL;
		if (a->out_tail)
			a->out_tail->next = m;
		else
			a->out_head = m;
		a->out_tail = m;
		a->n_out++;
		m = NULL;
		adp_wake_locked(a);
	}
	pthread_mutex_unlock(&a->mu);
	if (rc == QIAO_ECLOSED)
		adp_log(a, QIAO_LOG_WARN, "answer to %s for %s dropped: adapter already closed",
			r->req.requester, r->service);
	free(m);
	qiao_envelope_destroy(&ans);
	s_responder_free(r);
	return rc;
}

int adp_seal_error(struct qiao_adapter *a, const qiao_envelope_t *req,
		   const struct qiao_error_info *e, qiao_envelope_t **out)
{
	*out = NULL;
	char msg[1025], field[257], rule[513];
	s_copy_utf8(msg, sizeof msg - 1, e->message ? e->message : "");
	s_copy_utf8(field, sizeof field - 1, e->field ? e->field : "");
	s_copy_utf8(rule, sizeof rule - 1, e->missing_rule ? e->missing_rule : "");
	Qiao__V1__ErrorReply er = QIAO__V1__ERROR_REPLY__INIT;
	er.code = (Qiao__V1__ErrorCode)e->code;
	er.message = msg;
	er.field = field;
	er.missing_rule = rule;
	er.retry_after_ms = e->retry_after_ms;
	er.origin = a->keys->member;
	size_t n = qiao__v1__error_reply__get_packed_size(&er);
	uint8_t *body = malloc(n ? n : 1);
	if (!body)
		return QIAO_ENOMEM;
	qiao__v1__error_reply__pack(&er, body);
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(req, QIAO__V1__MESSAGE_KIND__ERROR, a->keys->member, &h, store);
	h.body_type = "qiao.v1.ErrorReply";
	char why[200];
	int rc = qiao_envelope_seal(&h, body, n, a->keys->sign_sk, NULL, out, why, sizeof why);
	free(body);
	if (rc != 0)
		adp_log(a, QIAO_LOG_ERROR, "cannot seal an ERROR for %s: %s", req->hdr->sender, why);
	return rc;
}

int qiao_respond(struct qiao_responder **rp, const void *body, size_t body_len)
{
	if (!rp || !*rp)
		return QIAO_EINVAL;
	struct qiao_responder *r = *rp;
	*rp = NULL;
	struct qiao_adapter *a = r->a;
	pthread_mutex_lock(&a->mu);
	struct qiao_wire_limits lim = a->lim;
	bool stopped = a->io_stopped;
	pthread_mutex_unlock(&a->mu);
	if (stopped)
		return s_answer(r, NULL, QIAO_ECLOSED);

	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(r->env, QIAO__V1__MESSAGE_KIND__RESPONSE, a->keys->member, &h, store);
	h.body_type = r->response_type;
	qiao_envelope_t *ans = NULL;
	char why[200];
	int rc = qiao_envelope_seal(&h, body, body_len, a->keys->sign_sk, &lim, &ans, why, sizeof why);
	if (rc != 0) {
		adp_log(a, QIAO_LOG_ERROR, "response to %s for %s cannot be sealed (%s); answering INTERNAL",
			r->req.requester, r->service, why);
		struct qiao_error_info e = {
			.code = QIAO__V1__ERROR_CODE__INTERNAL,
			.message = "the provider could not encode its response",
		};
		int rc3 = adp_seal_error(a, r->env, &e, &ans);
		int rc2 = s_answer(r, ans, rc3);
		return rc2 == QIAO_ECLOSED ? rc2 : rc;
	}
	return s_answer(r, ans, 0);
}

int qiao_respond_error_info(struct qiao_responder **rp, const struct qiao_error_info *e_in)
{
	if (!rp || !*rp)
		return QIAO_EINVAL;
	struct qiao_responder *r = *rp;
	*rp = NULL;
	struct qiao_adapter *a = r->a;
	struct qiao_error_info e = e_in ? *e_in : (struct qiao_error_info){0};
	int rc = 0;
	if (e.code < QIAO__V1__ERROR_CODE__BAD_REQUEST || e.code > QIAO__V1__ERROR_CODE__UNAVAILABLE) {
		adp_log(a, QIAO_LOG_ERROR, "qiao_respond_error: code %d is not an ErrorCode; answering INTERNAL",
			e.code);
		e.code = QIAO__V1__ERROR_CODE__INTERNAL;
		rc = QIAO_EINVAL;
	}
	qiao_envelope_t *ans = NULL;
	pthread_mutex_lock(&a->mu);
	bool stopped = a->io_stopped;
	pthread_mutex_unlock(&a->mu);
	int seal_rc = stopped ? QIAO_ECLOSED : adp_seal_error(a, r->env, &e, &ans);
	int rc2 = s_answer(r, ans, seal_rc);
	return rc2 ? rc2 : rc;
}

int qiao_respond_error(struct qiao_responder **rp, int code, const char *message, const char *field)
{
	struct qiao_error_info e = {.code = code, .message = message, .field = field};
	return qiao_respond_error_info(rp, &e);
}

/* ---- handler threads ---------------------------------------------------- */

static void s_call_free(struct call *c)
{
	qiao_result_free(&c->res);
	qiao_envelope_destroy(&c->env);
	free(c);
}

static void *s_worker_main(void *arg)
{
	struct qiao_adapter *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->work_head && !a->workers_stop)
			pthread_cond_wait(&a->work_cv, &a->mu);
		struct job *j = a->work_head;
		if (!j)
			break; /* stopping and nothing left */
		a->work_head = j->next;
		if (!a->work_head)
			a->work_tail = NULL;
		bool stopped = a->io_stopped;
		pthread_mutex_unlock(&a->mu);
		if (j->kind == JOB_REQUEST) {
			struct qiao_responder *r = (struct qiao_responder *)j;
			if (stopped) {
				/* The socket is closed: no answer could leave. */
				adp_log(a, QIAO_LOG_WARN, "request from %s for %s not handled: adapter closed",
					r->req.requester, r->service);
				s_answer(r, NULL, QIAO_ECLOSED);
			} else {
				atomic_fetch_add(&a->st.requests_handled, 1);
				r->fn(r->arg, &r->req, r);
			}
		} else {
			struct call *c = (struct call *)j;
			struct qiao_result *res = c->res;
			c->res = NULL;
			c->cb(c->cb_arg, res);
			s_call_free(c);
		}
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- calls -------------------------------------------------------------- */

void adp_call_complete(struct qiao_adapter *a, struct call *c, struct qiao_result *res)
{
	if (!res)
		res = adp_result_local(QIAO_ENOMEM, c->msgid, "out of memory");
	if (res && res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		atomic_fetch_add(&a->st.calls_answered, 1);
	} else {
		atomic_fetch_add(&a->st.calls_failed, 1);
		if (res && res->status == QIAO_ETIMEOUT)
			atomic_fetch_add(&a->st.calls_timed_out, 1);
	}
	bool free_it = false;
	pthread_mutex_lock(&a->mu);
	a->n_calls--;
	c->res = res;
	c->done = true;
	if (c->cb) {
		adp_work_push_locked(a, &c->job);
	} else {
		pthread_cond_broadcast(&a->call_cv);
		free_it = --c->refs == 0;
	}
	pthread_mutex_unlock(&a->mu);
	if (free_it)
		s_call_free(c);
}

#define WHY(...)                                                                 \
	do {                                                                     \
		if (why && whylen)                                               \
			snprintf(why, whylen, __VA_ARGS__);                      \
	} while (0)

/* Seal the request described by `c` into a new call object. */
static int s_call_new(struct qiao_adapter *a, const struct qiao_call *c, struct call **out,
		      char *why, size_t whylen)
{
	*out = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (!c->service || !c->service[0]) {
		WHY("service: required");
		return QIAO_EFIELD;
	}
	if (c->n_subjects > QIAO_MAX_SUBJECTS || (c->n_subjects && !c->subjects)) {
		WHY("subjects: at most %d, and a pointer to them", QIAO_MAX_SUBJECTS);
		return QIAO_EFIELD;
	}
	Qiao__V1__DataSubject subj[QIAO_MAX_SUBJECTS], *sp[QIAO_MAX_SUBJECTS];
	for (size_t i = 0; i < c->n_subjects; i++) {
		qiao__v1__data_subject__init(&subj[i]);
		subj[i].type = (Qiao__V1__SubjectType)c->subjects[i].type;
		subj[i].id = (char *)(c->subjects[i].id ? c->subjects[i].id : "");
		sp[i] = &subj[i];
	}
	uint32_t timeout = c->timeout_ms ? c->timeout_ms : a->call_timeout;
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = a->keys->member;
	h.user_id = (char *)(c->user_id ? c->user_id : "");
	h.service = (char *)c->service;
	h.time_ms = qiao_now_ms();
	h.deadline_ms = h.time_ms + timeout;
	h.case_id = (char *)(c->case_id ? c->case_id : "");
	h.purpose = (char *)(c->purpose ? c->purpose : "");
	h.legal_basis = (char *)(c->legal_basis ? c->legal_basis : "");
	h.subjects = c->n_subjects ? sp : NULL;
	h.n_subjects = c->n_subjects;
	h.body_type = (char *)(c->body_type ? c->body_type : "");

	pthread_mutex_lock(&a->mu);
	struct qiao_wire_limits lim = a->lim;
	pthread_mutex_unlock(&a->mu);
	qiao_envelope_t *env = NULL;
	int rc = qiao_envelope_seal(&h, c->body, c->body_len, a->keys->sign_sk, &lim, &env, why, whylen);
	if (rc != 0) {
		if (rc == QIAO_EINVAL)
			WHY("body: NULL with a non-zero length");
		return rc;
	}
	struct call *k = calloc(1, sizeof *k);
	if (!k) {
		qiao_envelope_destroy(&env);
		WHY("out of memory");
		return QIAO_ENOMEM;
	}
	k->job.kind = JOB_CALLBACK;
	k->env = env;
	memcpy(k->msgid, env->hdr->message_id.data, QIAO_MSGID_LEN);
	qiao_envelope_header_hash(env, k->req_hash);
	const char *slash = strrchr(c->service, '/');
	if (slash && (size_t)(slash - c->service) < sizeof k->provider) {
		memcpy(k->provider, c->service, (size_t)(slash - c->service));
		k->provider[slash - c->service] = '\0';
	}
	k->expire_mono = adp_mono_ms() + timeout + a->call_grace;
	*out = k;
	return 0;
}

/* Queue a call for the I/O thread.  0, QIAO_ECLOSED, QIAO_EBUSY. */
static int s_call_submit(struct qiao_adapter *a, struct call *k, char *why, size_t whylen)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	if (!a->started || a->closing) {
		rc = QIAO_ECLOSED;
		WHY("%s", a->closing ? "the adapter is shutting down" : "the adapter is not started");
	} else if (a->n_calls >= a->max_pending) {
		rc = QIAO_EBUSY;
		WHY("%u calls already wait for answers (max_pending_calls)", a->n_calls);
	} else {
		a->n_calls++;
		if (!k->cb)
			a->refs++; /* the synchronous waiter's; dropped when it returns */
		k->next = NULL;
		k->prev = a->submit_tail;
		if (a->submit_tail)
			a->submit_tail->next = k;
		else
			a->submit_head = k;
		a->submit_tail = k;
		adp_wake_locked(a);
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int qiao_adapter_call(qiao_adapter_t *a, const struct qiao_call *c, struct qiao_result **res)
{
	if (!res)
		return QIAO_EINVAL;
	*res = NULL;
	if (!a || !c)
		return QIAO_EINVAL;
	char why[300];
	struct call *k = NULL;
	int rc = s_call_new(a, c, &k, why, sizeof why);
	if (rc == 0) {
		k->refs = 2; /* the I/O side and this waiter */
		rc = s_call_submit(a, k, why, sizeof why);
		if (rc != 0) {
			*res = adp_result_local(rc, k->msgid, "%s", why);
			s_call_free(k);
		}
	} else {
		*res = adp_result_local(rc, NULL, "%s", why);
	}
	if (rc != 0) {
		atomic_fetch_add(&a->st.calls_failed, 1);
		return *res ? rc : QIAO_ENOMEM;
	}
	/* The I/O thread completes the call by deadline + grace at the latest;
	 * the extra second only guards against a stalled I/O thread. */
	struct timespec until = s_mono_abs(k->expire_mono + 1000);
	uint8_t msgid[QIAO_MSGID_LEN];
	memcpy(msgid, k->msgid, sizeof msgid);
	pthread_mutex_lock(&a->mu);
	while (!k->done)
		if (pthread_cond_timedwait(&a->call_cv, &a->mu, &until) == ETIMEDOUT)
			break;
	struct qiao_result *r = k->done ? k->res : NULL;
	if (k->done)
		k->res = NULL;
	bool free_it = --k->refs == 0;
	pthread_mutex_unlock(&a->mu);
	if (free_it)
		s_call_free(k);
	adp_unref(a);
	if (!r)
		r = adp_result_local(QIAO_ETIMEOUT, msgid, "no answer in time (I/O thread stalled)");
	*res = r;
	return r ? r->status : QIAO_ENOMEM;
}

int qiao_adapter_call_async(qiao_adapter_t *a, const struct qiao_call *c, qiao_call_cb cb, void *arg,
			    char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!a || !c || !cb)
		return QIAO_EINVAL;
	struct call *k = NULL;
	int rc = s_call_new(a, c, &k, err, errlen);
	if (rc == 0) {
		k->cb = cb;
		k->cb_arg = arg;
		k->refs = 1;
		rc = s_call_submit(a, k, err, errlen);
		if (rc != 0)
			s_call_free(k);
	}
	if (rc != 0)
		atomic_fetch_add(&a->st.calls_failed, 1);
	return rc;
}
