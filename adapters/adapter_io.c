/*
 * adapter_io.c - the I/O thread of libqiao-adapter.
 *
 * One thread owns the DEALER socket (ZeroMQ sockets are not thread-safe).
 * Its loop, in the STYLE.md habit-7 shape: take what application threads
 * queued (calls, answers, a changed offer list, shutdown), run due timers
 * (connect, WELCOME timeout, heartbeats, peer liveness, call timeouts),
 * flush what can be sent, then zmq_poll with the timeout set to the next
 * timer and dispatch what arrived.  Nothing in here blocks: handlers run on
 * the handler threads, sends use ZMQ_DONTWAIT and wait for POLLOUT.
 *
 * Connection life (docs/protocol.md, "Control commands"): IDLE -> socket +
 * READY -> HELLO -> WELCOME -> LIVE.  Any of: the monitor reporting a
 * disconnect or a failed CURVE handshake, no WELCOME within
 * hello_timeout_ms, liveness x heartbeat_ms of silence, or BYE from the
 * gateway closes the socket and goes back to IDLE, to reconnect after a
 * back-off that doubles from reconnect_min_ms to reconnect_max_ms, with
 * jitter so that a restarted gateway is not hit by every adapter at once.
 * Each reconnect uses a fresh socket, so nothing queued for the old
 * connection leaks into the new one.
 */
#include "adapter_int.h"
#include "control.pb-c.h"
#include "qiao_id.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define REPLAY_BUCKETS (2 * ADP_REPLAY_SLOTS)
#define INPUT_BURST 64 /* messages read per poll before timers run again */

static const uint8_t s_nothing[1];

/* ---- tables ------------------------------------------------------------- */

int adp_io_init(struct qiao_adapter *a)
{
	struct io *io = &a->io;
	io->hash_size = 16;
	while (io->hash_size < 2 * (size_t)a->max_pending)
		io->hash_size *= 2;
	io->hash = calloc(io->hash_size, sizeof *io->hash);
	io->replay_ids = calloc(ADP_REPLAY_SLOTS, sizeof *io->replay_ids);
	io->replay_next = malloc(ADP_REPLAY_SLOTS * sizeof *io->replay_next);
	io->replay_heads = malloc(REPLAY_BUCKETS * sizeof *io->replay_heads);
	if (!io->hash || !io->replay_ids || !io->replay_next || !io->replay_heads)
		return QIAO_ENOMEM;
	for (size_t i = 0; i < REPLAY_BUCKETS; i++)
		io->replay_heads[i] = -1;
	qiao_wire_limits_default(&io->lim);
	io->heartbeat_ms = 5000;
	io->liveness = 3;
	return 0;
}

void adp_io_free(struct qiao_adapter *a)
{
	struct io *io = &a->io;
	while (io->out_head) {
		struct outmsg *m = io->out_head;
		io->out_head = m->next;
		qiao_envelope_destroy(&m->env);
		free(m);
	}
	free(io->hash);
	free(io->replay_ids);
	free(io->replay_next);
	free(io->replay_heads);
	free(io->dir);
	io->hash = NULL;
	io->replay_ids = NULL;
	io->replay_next = io->replay_heads = NULL;
	io->dir = NULL;
}

static size_t s_bucket(const uint8_t *id, size_t size)
{
	uint64_t x;
	memcpy(&x, id, sizeof x); /* message ids are random: any 8 bytes hash well */
	return (size_t)(x & (size - 1));
}

static void s_pend_add(struct io *io, struct call *c)
{
	c->next = NULL;
	c->prev = io->pend_tail;
	if (io->pend_tail)
		io->pend_tail->next = c;
	else
		io->pend_head = c;
	io->pend_tail = c;
	size_t b = s_bucket(c->msgid, io->hash_size);
	c->hnext = io->hash[b];
	io->hash[b] = c;
	if (!c->sent)
		io->n_unsent++;
}

static struct call *s_pend_find(struct io *io, const uint8_t *id)
{
	for (struct call *c = io->hash[s_bucket(id, io->hash_size)]; c; c = c->hnext)
		if (memcmp(c->msgid, id, QIAO_MSGID_LEN) == 0)
			return c;
	return NULL;
}

static void s_pend_remove(struct io *io, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		io->pend_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		io->pend_tail = c->prev;
	c->next = c->prev = NULL;
	for (struct call **pp = &io->hash[s_bucket(c->msgid, io->hash_size)]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	c->hnext = NULL;
	if (!c->sent)
		io->n_unsent--;
}

/* True when `id` was seen; otherwise remembers it (oldest forgotten first). */
static bool s_replay_seen(struct io *io, const uint8_t *id)
{
	size_t b = s_bucket(id, REPLAY_BUCKETS);
	for (int32_t i = io->replay_heads[b]; i >= 0; i = io->replay_next[i])
		if (memcmp(io->replay_ids[i], id, QIAO_MSGID_LEN) == 0)
			return true;
	int32_t slot = (int32_t)io->replay_pos;
	if (io->replay_fill == ADP_REPLAY_SLOTS) {
		/* Evict the oldest id from its bucket chain. */
		size_t ob = s_bucket(io->replay_ids[slot], REPLAY_BUCKETS);
		for (int32_t *pp = &io->replay_heads[ob]; *pp >= 0; pp = &io->replay_next[*pp])
			if (*pp == slot) {
				*pp = io->replay_next[slot];
				break;
			}
	} else {
		io->replay_fill++;
	}
	memcpy(io->replay_ids[slot], id, QIAO_MSGID_LEN);
	io->replay_next[slot] = io->replay_heads[b];
	io->replay_heads[b] = slot;
	io->replay_pos = (io->replay_pos + 1) % ADP_REPLAY_SLOTS;
	return false;
}

/* ---- directory ---------------------------------------------------------- */

static int s_dir_cmp(const void *x, const void *y)
{
	return strcmp(((const struct dir_entry *)x)->member, ((const struct dir_entry *)y)->member);
}

/* Replace the directory with `keys` (entries that are not a valid member
 * id with a 32-byte key are skipped and logged).  0 or QIAO_ENOMEM. */
static int s_dir_set(struct qiao_adapter *a, Qiao__V1__MemberKey **keys, size_t n)
{
	struct dir_entry *d = calloc(n ? n : 1, sizeof *d);
	if (!d)
		return QIAO_ENOMEM;
	size_t k = 0;
	char why[160];
	for (size_t i = 0; i < n; i++) {
		const Qiao__V1__MemberKey *m = keys[i];
		if (!m->member || strlen(m->member) >= QIAO_MEMBER_MAX ||
		    qiao_id_check_member(NULL, m->member, why, sizeof why) != 0 ||
		    m->sign_public.len != 32) {
			adp_log(a, QIAO_LOG_WARN, "directory entry %zu skipped: not a member id with a 32-byte key",
				i);
			continue;
		}
		snprintf(d[k].member, sizeof d[k].member, "%s", m->member);
		memcpy(d[k].pk, m->sign_public.data, 32);
		k++;
	}
	qsort(d, k, sizeof *d, s_dir_cmp);
	size_t w = 0;
	for (size_t i = 0; i < k; i++) {
		if (w && strcmp(d[w - 1].member, d[i].member) == 0) {
			/* a member in a key rotation is listed with both keys */
			if (!d[w - 1].has_pk2) {
				memcpy(d[w - 1].pk2, d[i].pk, 32);
				d[w - 1].has_pk2 = 1;
			} else {
				adp_log(a, QIAO_LOG_WARN, "directory lists %s more than twice; keeping the first two keys",
					d[i].member);
			}
			continue;
		}
		d[w++] = d[i];
	}
	free(a->io.dir);
	a->io.dir = d;
	a->io.n_dir = w;
	return 0;
}

/* The signing key of `member`: the gateway's own, or the directory's
 * (and *pk2 its second key during a key rotation, else NULL). */
static const uint8_t *s_key_for(const struct io *io, const char *member, const uint8_t **pk2)
{
	*pk2 = NULL;
	if (io->have_gateway && strcmp(member, io->gateway) == 0)
		return io->gateway_pk;
	struct dir_entry key;
	if (strlen(member) >= sizeof key.member)
		return NULL;
	snprintf(key.member, sizeof key.member, "%s", member);
	const struct dir_entry *e = bsearch(&key, io->dir, io->n_dir, sizeof *io->dir, s_dir_cmp);
	if (e && e->has_pk2)
		*pk2 = e->pk2;
	return e ? e->pk : NULL;
}

/* Verify with the sender's key, or its second key during a rotation. */
static int s_verify_by(const qiao_envelope_t *env, const uint8_t *pk, const uint8_t *pk2)
{
	if (qiao_envelope_verify(env, pk) == 0)
		return 0;
	return pk2 ? qiao_envelope_verify(env, pk2) : QIAO_EBADSIG;
}

/* ---- dropping ----------------------------------------------------------- */

/* Count a dropped message and log it, at most one line per second. */
__attribute__((format(printf, 2, 3)))
static void s_drop(struct qiao_adapter *a, const char *fmt, ...)
{
	struct io *io = &a->io;
	int64_t now = adp_mono_ms();
	if (now < io->drop_log_at) {
		io->drop_log_suppressed++;
		atomic_fetch_add(&a->st.dropped, 1);
		return;
	}
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (io->drop_log_suppressed)
		adp_log(a, QIAO_LOG_WARN, "dropped: %s (and %llu more since the last report)", buf,
			(unsigned long long)io->drop_log_suppressed);
	else
		adp_log(a, QIAO_LOG_WARN, "dropped: %s", buf);
	io->drop_log_at = now + 1000;
	io->drop_log_suppressed = 0;
	/* counted after the line is written: whoever sees the counter move
	 * finds the reason in the log */
	atomic_fetch_add(&a->st.dropped, 1);
}

/* ---- sending ------------------------------------------------------------ */

/* 0 sent, 1 would block (nothing sent), or -errno. */
static int s_send(struct qiao_adapter *a, const struct qiao_frame *f, size_t n)
{
	struct io *io = &a->io;
	if (!io->dealer)
		return -ENOTCONN;
	for (size_t i = 0; i < n; i++) {
		int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
		const void *d = f[i].len ? f[i].data : s_nothing;
		if (zmq_send(io->dealer, d, f[i].len, flags) < 0) {
			int e = errno;
			/* Only the first part can meet the high-water mark: the
			 * rest of a multipart message always follows it. */
			if (i == 0 && e == EAGAIN)
				return 1;
			adp_log(a, QIAO_LOG_ERROR, "send failed: %s", zmq_strerror(e));
			return -e;
		}
	}
	io->last_send = adp_mono_ms();
	return 0;
}

static int s_send_ctl(struct qiao_adapter *a, uint8_t cmd, const void *payload, size_t len)
{
	uint8_t c[QIAO_CMD_LEN];
	qiao_cmd_make(cmd, c);
	struct qiao_frame f[2] = {{c, sizeof c}, {payload, len}};
	return s_send(a, f, payload ? 2 : 1);
}

static void s_send_ready(struct qiao_adapter *a)
{
	char names[ADP_MAX_OFFERS][ADP_NAME_MAX];
	char *ptrs[ADP_MAX_OFFERS];
	pthread_mutex_lock(&a->mu);
	size_t n = a->n_offers;
	for (size_t i = 0; i < n; i++) {
		memcpy(names[i], a->offers[i].name, ADP_NAME_MAX);
		ptrs[i] = names[i];
	}
	pthread_mutex_unlock(&a->mu);
	Qiao__V1__Ready r = QIAO__V1__READY__INIT;
	r.services = n ? ptrs : NULL;
	r.n_services = n;
	r.max_inflight = a->max_inflight;
	r.instance = a->instance;
	r.sdk = QIAO_ADAPTER_SDK;
	size_t len = qiao__v1__ready__get_packed_size(&r);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		adp_log(a, QIAO_LOG_ERROR, "READY: out of memory");
		return;
	}
	qiao__v1__ready__pack(&r, buf);
	int rc = s_send_ctl(a, QIAO_CMD_READY, buf, len);
	free(buf);
	if (rc == 0)
		adp_log(a, QIAO_LOG_DEBUG, "READY sent (%zu services)", n);
	else
		adp_log(a, QIAO_LOG_WARN, "READY could not be sent; waiting for the WELCOME timeout");
}

/* ---- connection --------------------------------------------------------- */

static void s_close_socket(struct qiao_adapter *a, int linger)
{
	struct io *io = &a->io;
	if (io->mon) {
		zmq_socket_monitor(io->dealer, NULL, 0);
		zmq_close(io->mon);
		io->mon = NULL;
	}
	if (io->dealer) {
		zmq_setsockopt(io->dealer, ZMQ_LINGER, &linger, sizeof linger);
		zmq_close(io->dealer);
		io->dealer = NULL;
	}
}

/* Doubling delay from reconnect_min to reconnect_max, jittered to between
 * half and all of it. */
static int64_t s_backoff(struct qiao_adapter *a)
{
	unsigned shift = a->io.attempt < 30 ? a->io.attempt : 30;
	uint64_t base = (uint64_t)a->reconnect_min << shift;
	if (base > a->reconnect_max)
		base = a->reconnect_max;
	a->io.attempt++;
	return (int64_t)(base / 2 + randombytes_uniform((uint32_t)(base / 2 + 1)));
}

/* Close the connection and schedule the next one. */
__attribute__((format(printf, 3, 4)))
static void s_lost(struct qiao_adapter *a, enum qiao_log_level lvl, const char *fmt, ...)
{
	struct io *io = &a->io;
	bool was_live = io->state == IO_LIVE;
	s_close_socket(a, 0);
	io->state = IO_IDLE;
	if (was_live) {
		pthread_mutex_lock(&a->mu);
		a->connected = false;
		pthread_mutex_unlock(&a->mu);
	}
	int64_t delay = s_backoff(a);
	io->next_connect = adp_mono_ms() + delay;
	char buf[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	adp_log(a, lvl, "%s; reconnecting in %lld ms", buf, (long long)delay);
}

#define SETOPT(opt, val, len)                                                    \
	do {                                                                     \
		if (zmq_setsockopt(d, opt, val, len) != 0) {                     \
			adp_log(a, QIAO_LOG_ERROR, "zmq_setsockopt(" #opt "): %s",  \
				zmq_strerror(errno));                            \
			goto fail;                                               \
		}                                                                \
	} while (0)

static void s_connect(struct qiao_adapter *a)
{
	struct io *io = &a->io;
	void *d = zmq_socket(a->zctx, ZMQ_DEALER);
	if (!d) {
		s_lost(a, QIAO_LOG_ERROR, "zmq_socket: %s", zmq_strerror(errno));
		return;
	}
	int linger = 0, sndhwm = (int)a->sndhwm, rcvhwm = (int)a->rcvhwm;
	int ivl = (int)a->reconnect_min, ivl_max = (int)a->reconnect_max;
	int hs = (int)a->hello_timeout;
	/* A frame larger than any the protocol allows makes ZeroMQ drop the
	 * connection before we ever buffer it. */
	int64_t maxmsg = (int64_t)(io->lim.max_body > ADP_CTL_MAX ? io->lim.max_body : ADP_CTL_MAX) + 65536;
	SETOPT(ZMQ_LINGER, &linger, sizeof linger);
	SETOPT(ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
	SETOPT(ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
	SETOPT(ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	SETOPT(ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	SETOPT(ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
	SETOPT(ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
	SETOPT(ZMQ_CURVE_SERVERKEY, a->gw_curve_pk, 32);
	SETOPT(ZMQ_CURVE_PUBLICKEY, a->keys->curve_pk, 32);
	SETOPT(ZMQ_CURVE_SECRETKEY, a->keys->curve_sk, 32);

	char ep[96];
	snprintf(ep, sizeof ep, "inproc://qiao-adapter-monitor-%p-%u", (void *)a, ++io->mon_seq);
	void *mon = NULL;
	if (zmq_socket_monitor(d, ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
				       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
		mon = zmq_socket(a->zctx, ZMQ_PAIR);
		if (mon && zmq_connect(mon, ep) != 0) {
			zmq_close(mon);
			mon = NULL;
		}
		if (!mon)
			zmq_socket_monitor(d, NULL, 0);
	}
	if (!mon)
		adp_log(a, QIAO_LOG_WARN, "no socket monitor: disconnects are noticed by heartbeats only");
	if (zmq_connect(d, a->endpoint) != 0) {
		int e = errno;
		if (mon) {
			zmq_socket_monitor(d, NULL, 0);
			zmq_close(mon);
		}
		zmq_close(d);
		s_lost(a, QIAO_LOG_ERROR, "cannot connect to %s: %s", a->endpoint, zmq_strerror(e));
		return;
	}
	io->dealer = d;
	io->mon = mon;
	io->state = IO_HELLO;
	int64_t now = adp_mono_ms();
	io->hello_deadline = now + a->hello_timeout;
	io->last_send = io->last_recv = now;
	if (io->connects++ > 0)
		atomic_fetch_add(&a->st.reconnects, 1);
	adp_log(a, QIAO_LOG_DEBUG, "connecting to %s", a->endpoint);
	s_send_ready(a);
	return;
fail:
	zmq_close(d);
	s_lost(a, QIAO_LOG_ERROR, "cannot configure the socket");
}

/* ---- control messages --------------------------------------------------- */

static void s_on_welcome(struct qiao_adapter *a, const struct qiao_frame *f)
{
	struct io *io = &a->io;
	if (io->state == IO_IDLE)
		return;
	if (f->len > ADP_CTL_MAX) {
		s_drop(a, "WELCOME of %zu bytes", f->len);
		return;
	}
	Qiao__V1__Welcome *w = qiao__v1__welcome__unpack(NULL, f->len, f->data);
	if (!w) {
		s_drop(a, "WELCOME does not decode as qiao.v1.Welcome");
		return;
	}
	char why[160];
	if (!w->gateway || strlen(w->gateway) >= QIAO_MEMBER_MAX ||
	    qiao_id_check_member(NULL, w->gateway, why, sizeof why) != 0 ||
	    w->gateway_sign_public.len != 32) {
		s_drop(a, "WELCOME without a valid gateway member id and 32-byte signing key");
		qiao__v1__welcome__free_unpacked(w, NULL);
		return;
	}
	if (s_dir_set(a, w->directory, w->n_directory) != 0) {
		adp_log(a, QIAO_LOG_ERROR, "WELCOME: out of memory for the directory");
		qiao__v1__welcome__free_unpacked(w, NULL);
		return;
	}
	if (strcmp(w->member, a->keys->member) != 0)
		adp_log(a, QIAO_LOG_ERROR,
			"the gateway authenticated this connection as \"%.96s\", but the key file is for %s: "
			"its envelopes will be refused (check the gateway's registry)",
			w->member, a->keys->member);
	snprintf(io->gateway, sizeof io->gateway, "%s", w->gateway);
	memcpy(io->gateway_pk, w->gateway_sign_public.data, 32);
	io->have_gateway = true;
	io->heartbeat_ms = w->heartbeat_ms ? (w->heartbeat_ms < 20 ? 20 : w->heartbeat_ms > 600000 ? 600000 : w->heartbeat_ms) : 5000;
	io->liveness = w->liveness ? (w->liveness > 100 ? 100 : w->liveness) : 3;
	io->max_skew_ms = w->max_skew_ms > 0 ? w->max_skew_ms : 0;
	struct qiao_wire_limits def;
	qiao_wire_limits_default(&def);
	io->lim = def;
	if (w->max_header && w->max_header < def.max_header)
		io->lim.max_header = w->max_header;
	if (w->max_body && w->max_body < def.max_body)
		io->lim.max_body = (size_t)w->max_body;
	io->n_aliases = 0;
	size_t ml = strlen(a->keys->member);
	for (size_t i = 0; i < w->n_aliases && io->n_aliases < sizeof io->aliases / sizeof io->aliases[0]; i++) {
		const Qiao__V1__ServiceAlias *al = w->aliases[i];
		/* only aliases of our own services, "<member>/<name>" */
		if (!al->alias || !al->service || strncmp(al->service, a->keys->member, ml) != 0 ||
		    al->service[ml] != '/' || strlen(al->alias) >= sizeof io->aliases[0].alias ||
		    strlen(al->service + ml + 1) >= sizeof io->aliases[0].name)
			continue;
		snprintf(io->aliases[io->n_aliases].alias, sizeof io->aliases[0].alias, "%s", al->alias);
		snprintf(io->aliases[io->n_aliases].name, sizeof io->aliases[0].name, "%s", al->service + ml + 1);
		io->n_aliases++;
	}
	for (size_t i = 0; i < w->n_refused; i++)
		adp_log(a, QIAO_LOG_WARN, "gateway refused service %.80s: %.200s",
			w->refused[i]->service, w->refused[i]->reason);
	adp_log(a, QIAO_LOG_INFO,
		"welcomed by gateway %s: %zu service(s) accepted, %zu refused, %zu member key(s), heartbeat %u ms",
		io->gateway, w->n_accepted, w->n_refused, io->n_dir, io->heartbeat_ms);
	for (size_t i = 0; i < w->n_accepted; i++)
		adp_log(a, QIAO_LOG_DEBUG, "accepted: %.200s", w->accepted[i]);
	qiao__v1__welcome__free_unpacked(w, NULL);

	io->state = IO_LIVE;
	io->ever_live = true;
	io->attempt = 0;
	atomic_fetch_add(&a->st.welcomes, 1);
	pthread_mutex_lock(&a->mu);
	a->lim.max_header = io->lim.max_header;
	a->lim.max_body = io->lim.max_body;
	a->connected = true;
	pthread_cond_broadcast(&a->conn_cv);
	pthread_mutex_unlock(&a->mu);
}

static void s_on_directory(struct qiao_adapter *a, const struct qiao_frame *f)
{
	if (a->io.state != IO_LIVE || f->len > ADP_CTL_MAX) {
		s_drop(a, "DIRECTORY before WELCOME or too large");
		return;
	}
	Qiao__V1__Directory *d = qiao__v1__directory__unpack(NULL, f->len, f->data);
	if (!d) {
		s_drop(a, "DIRECTORY does not decode as qiao.v1.Directory");
		return;
	}
	if (s_dir_set(a, d->members, d->n_members) == 0)
		adp_log(a, QIAO_LOG_INFO, "directory replaced: %zu member key(s)", a->io.n_dir);
	qiao__v1__directory__free_unpacked(d, NULL);
}

static void s_on_notice(struct qiao_adapter *a, const struct qiao_frame *f)
{
	Qiao__V1__ErrorReply *e = f->len <= ADP_CTL_MAX ? qiao__v1__error_reply__unpack(NULL, f->len, f->data) : NULL;
	if (!e) {
		s_drop(a, "NOTICE does not decode as qiao.v1.ErrorReply");
		return;
	}
	atomic_fetch_add(&a->st.notices, 1);
	adp_log(a, QIAO_LOG_WARN, "gateway notice: %s (%d): %.300s%s%.100s", qiao_error_code_name((int)e->code),
		(int)e->code, e->message, e->field[0] ? " field " : "", e->field);
	qiao__v1__error_reply__free_unpacked(e, NULL);
}

/* ---- envelopes ---------------------------------------------------------- */

static void s_out_push(struct io *io, qiao_envelope_t *env)
{
	struct outmsg *m = calloc(1, sizeof *m);
	if (!m) {
		qiao_envelope_destroy(&env);
		return;
	}
	m->env = env;
	if (io->out_tail)
		io->out_tail->next = m;
	else
		io->out_head = m;
	io->out_tail = m;
	io->n_out++;
}

/* Answer a request with an ERROR the SDK makes itself. */
__attribute__((format(printf, 5, 6)))
static void s_refuse(struct qiao_adapter *a, const qiao_envelope_t *req, int code, uint32_t retry_ms,
		     const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct qiao_error_info e = {.code = code, .message = msg, .retry_after_ms = retry_ms};
	if (code == QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE)
		e.field = "service";
	else if (code == QIAO__V1__ERROR_CODE__STALE_TIME)
		e.field = "time_ms";
	/* Refusals are not bounded by max_inflight: when the gateway stops
	 * reading, stop queueing them (it ends those requests itself). */
	if (a->io.n_out >= a->max_inflight + ADP_MAX_REFUSALS) {
		s_drop(a, "request from %s: output queue full, not even refused", req->hdr->sender);
		return;
	}
	qiao_envelope_t *ans = NULL;
	if (adp_seal_error(a, req, &e, &ans) == 0)
		s_out_push(&a->io, ans);
	atomic_fetch_add(&a->st.requests_refused, 1);
	adp_log(a, QIAO_LOG_INFO, "refused a request from %s for %.200s: %s: %s", req->hdr->sender,
		req->hdr->service, qiao_error_code_name(code), msg);
}

/* The offered name a request's service designates, or NULL: either
 * "<this member>/<name>" or the alias "<name>". */
static const char *s_service_name(const struct qiao_adapter *a, const char *service)
{
	const char *slash = strrchr(service, '/');
	if (!slash) {
		/* an alias the gateway told us about, else our own name */
		for (size_t i = 0; i < a->io.n_aliases; i++)
			if (strcmp(a->io.aliases[i].alias, service) == 0)
				return a->io.aliases[i].name;
		return service;
	}
	size_t ml = (size_t)(slash - service);
	if (ml != strlen(a->keys->member) || memcmp(service, a->keys->member, ml) != 0)
		return NULL;
	return slash + 1;
}

static void s_on_request(struct qiao_adapter *a, qiao_envelope_t *env)
{
	struct io *io = &a->io;
	const Qiao__V1__Header *h = env->hdr;
	const uint8_t *pk2;
	const uint8_t *pk = s_key_for(io, h->sender, &pk2);
	if (!pk) {
		s_drop(a, "request from %s, which is not in the directory", h->sender);
		goto out;
	}
	if (s_verify_by(env, pk, pk2) != 0) {
		atomic_fetch_add(&a->st.bad_signatures, 1);
		s_drop(a, "request from %s for %.200s: bad signature", h->sender, h->service);
		goto out;
	}
	if (s_replay_seen(io, h->message_id.data)) {
		s_drop(a, "request from %s: message id seen before (replay)", h->sender);
		goto out;
	}
	if (io->max_skew_ms) {
		int64_t d = h->time_ms - qiao_now_ms();
		if (d > io->max_skew_ms || -d > io->max_skew_ms) {
			s_refuse(a, env, QIAO__V1__ERROR_CODE__STALE_TIME, 0,
				 "time_ms is %lld ms from this provider's clock (allowed %lld)", (long long)d,
				 (long long)io->max_skew_ms);
			goto out;
		}
	}
	const char *name = s_service_name(a, h->service);
	char from[QIAO_MEMBER_MAX]; /* for the log: env passes to another thread */
	snprintf(from, sizeof from, "%s", h->sender);
	struct offer o;
	bool found = false, busy = false;
	struct qiao_responder *r = NULL;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; name && i < a->n_offers && !found; i++)
		if (strcmp(a->offers[i].name, name) == 0) {
			o = a->offers[i];
			found = true;
		}
	if (found && a->n_inflight >= a->max_inflight) {
		busy = true;
	} else if (found) {
		r = adp_responder_new_locked(a, &env, &o);
		if (r) {
			a->n_inflight++;
			adp_work_push_locked(a, &r->job);
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (!found) {
		s_refuse(a, env, QIAO__V1__ERROR_CODE__NO_SUCH_SERVICE, 0, "%s does not offer %.200s",
			 a->keys->member, h->service);
	} else if (busy) {
		s_refuse(a, env, QIAO__V1__ERROR_CODE__BUSY, 100, "%u requests already in progress",
			 a->max_inflight);
	} else if (!r) {
		adp_log(a, QIAO_LOG_ERROR, "request dropped: out of memory");
	} else {
		adp_log(a, QIAO_LOG_DEBUG, "request from %s for %s dispatched", from, o.name);
	}
out:
	qiao_envelope_destroy(&env);
}

static void s_complete(struct qiao_adapter *a, struct call *c, struct qiao_result *res)
{
	s_pend_remove(&a->io, c);
	adp_call_complete(a, c, res);
}

static void s_on_answer(struct qiao_adapter *a, qiao_envelope_t *env)
{
	struct io *io = &a->io;
	const Qiao__V1__Header *h = env->hdr;
	const char *kind = h->kind == QIAO__V1__MESSAGE_KIND__ERROR ? "ERROR" : "RESPONSE";
	struct call *c = s_pend_find(io, h->in_reply_to.data);
	if (!c || !c->sent) {
		char hex[2 * QIAO_MSGID_LEN + 1];
		qiao_hex(h->in_reply_to.data, QIAO_MSGID_LEN, hex);
		s_drop(a, "%s from %s answers no pending call (in_reply_to %s)", kind, h->sender, hex);
		qiao_envelope_destroy(&env);
		return;
	}
	const Qiao__V1__Header *rq = c->env->hdr;
	const uint8_t *pk2;
	const uint8_t *pk = s_key_for(io, h->sender, &pk2);
	if (!pk || s_verify_by(env, pk, pk2) != 0) {
		atomic_fetch_add(&a->st.bad_signatures, 1);
		adp_log(a, QIAO_LOG_WARN, "%s from %s for %.200s: %s; the call fails with QIAO_EBADSIG", kind,
			h->sender, rq->service, pk ? "bad signature" : "signer not in the directory");
		s_complete(a, c, adp_result_local(QIAO_EBADSIG, c->msgid, "%s claiming to be from %s: %s", kind,
						 h->sender, pk ? "signature does not verify" : "unknown signer"));
		qiao_envelope_destroy(&env);
		return;
	}
	/* Who may answer: the gateway, and for a full service id its provider;
	 * for an alias the adapter cannot know the provider, so any member
	 * whose signature verifies. */
	bool is_gateway = io->have_gateway && strcmp(h->sender, io->gateway) == 0;
	if (!is_gateway && c->provider[0] && strcmp(h->sender, c->provider) != 0) {
		adp_log(a, QIAO_LOG_WARN, "%s for %.200s signed by %s, which does not provide it", kind,
			rq->service, h->sender);
		s_complete(a, c, adp_result_local(QIAO_EAUTH, c->msgid, "%s signed by %s, not by the provider %s",
						 kind, h->sender, c->provider));
		qiao_envelope_destroy(&env);
		return;
	}
	const char *bad = NULL;
	if (memcmp(h->request_hash.data, c->req_hash, QIAO_HASH_LEN) != 0)
		bad = "request_hash";
	else if (strcmp(h->recipient, a->keys->member) != 0)
		bad = "recipient";
	if (bad) {
		adp_log(a, QIAO_LOG_WARN, "%s from %s for %.200s: %s does not match the request", kind, h->sender,
			rq->service, bad);
		s_complete(a, c, adp_result_local(QIAO_EFIELD, c->msgid, "%s from %s: %s does not match the request",
						 kind, h->sender, bad));
		qiao_envelope_destroy(&env);
		return;
	}
	/* request_hash already binds the answer to every field of the request;
	 * the repeated fields are only checked for the log. */
	if (strcmp(h->service, rq->service) != 0 || strcmp(h->case_id, rq->case_id) != 0 ||
	    strcmp(h->user_id, rq->user_id) != 0)
		adp_log(a, QIAO_LOG_WARN, "%s from %s: service, case_id or user_id differs from the request's",
			kind, h->sender);
	adp_log(a, QIAO_LOG_DEBUG, "%s from %s for %s", kind, h->sender, rq->service);
	s_complete(a, c, adp_result_answer(&env, c->msgid));
}

static void s_on_envelope(struct qiao_adapter *a, const struct qiao_frame *f, size_t n)
{
	if (a->io.state != IO_LIVE) {
		s_drop(a, "envelope before WELCOME");
		return;
	}
	qiao_envelope_t *env = NULL;
	char why[200];
	int rc = qiao_envelope_open(f, n, &a->io.lim, &env, why, sizeof why);
	if (rc != 0) {
		s_drop(a, "envelope refused (%s): %s", qiao_errname(rc), why);
		return;
	}
	switch (env->hdr->kind) {
	case QIAO__V1__MESSAGE_KIND__REQUEST:
		s_on_request(a, env);
		break;
	case QIAO__V1__MESSAGE_KIND__RESPONSE:
	case QIAO__V1__MESSAGE_KIND__ERROR:
		s_on_answer(a, env);
		break;
	default:
		s_drop(a, "EVENT from %s for %.200s: this SDK version does not take events", env->hdr->sender,
		       env->hdr->service);
		qiao_envelope_destroy(&env);
		break;
	}
}

/* ---- input -------------------------------------------------------------- */

/* Read one whole message into m[] (at most ADP_MAX_FRAMES parts, the rest
 * discarded).  Number of parts kept, 0 when nothing was waiting; *more_
 * set when parts were discarded. */
static size_t s_recv(void *sock, zmq_msg_t *m, bool *overflow)
{
	size_t n = 0;
	*overflow = false;
	for (;;) {
		zmq_msg_t scratch, *t = n < ADP_MAX_FRAMES ? &m[n] : &scratch;
		zmq_msg_init(t);
		if (zmq_msg_recv(t, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(t);
			return n;
		}
		int more = zmq_msg_more(t);
		if (t == &scratch) {
			zmq_msg_close(t);
			*overflow = true;
		} else {
			n++;
		}
		if (!more)
			return n;
	}
}

static void s_on_message(struct qiao_adapter *a, zmq_msg_t *m, size_t n, bool overflow)
{
	struct io *io = &a->io;
	struct qiao_frame f[ADP_MAX_FRAMES];
	for (size_t i = 0; i < n; i++) {
		f[i].data = zmq_msg_data(&m[i]);
		f[i].len = zmq_msg_size(&m[i]);
	}
	/* Anything at all from the gateway shows it is alive. */
	io->last_recv = adp_mono_ms();
	uint8_t cmd = 0;
	if (overflow) {
		s_drop(a, "message of more than %d frames", ADP_MAX_FRAMES);
		return;
	}
	if (qiao_cmd_parse(&f[0], &cmd) != 0) {
		s_drop(a, "message without a QIAO v1 command frame (%zu frames)", n);
		return;
	}
	switch (cmd) {
	case QIAO_CMD_ENVELOPE:
		s_on_envelope(a, f, n);
		return;
	case QIAO_CMD_WELCOME:
		if (n == 2) {
			s_on_welcome(a, &f[1]);
			return;
		}
		break;
	case QIAO_CMD_HEARTBEAT:
		if (n == 1)
			return;
		break;
	case QIAO_CMD_BYE:
		if (n == 1) {
			io->attempt = 0;
			s_lost(a, QIAO_LOG_INFO, "the gateway said BYE");
			return;
		}
		break;
	case QIAO_CMD_DIRECTORY:
		if (n == 2) {
			s_on_directory(a, &f[1]);
			return;
		}
		break;
	case QIAO_CMD_NOTICE:
		if (n == 2) {
			s_on_notice(a, &f[1]);
			return;
		}
		break;
	default:
		s_drop(a, "unknown command 0x%02x", cmd);
		return;
	}
	s_drop(a, "command 0x%02x with %zu frames", cmd, n);
}

static void s_on_input(struct qiao_adapter *a)
{
	zmq_msg_t m[ADP_MAX_FRAMES];
	for (int k = 0; k < INPUT_BURST && a->io.dealer; k++) {
		bool overflow;
		size_t n = s_recv(a->io.dealer, m, &overflow);
		if (n == 0 && !overflow)
			return;
		if (n > 0)
			s_on_message(a, m, n, overflow);
		for (size_t i = 0; i < n; i++)
			zmq_msg_close(&m[i]);
	}
}

static void s_on_monitor(struct qiao_adapter *a)
{
	struct io *io = &a->io;
	while (io->mon) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, io->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		uint16_t ev = 0;
		uint32_t val = 0;
		if (zmq_msg_size(&m) >= 6) {
			memcpy(&ev, zmq_msg_data(&m), 2);
			memcpy(&val, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
		}
		int more = zmq_msg_more(&m);
		zmq_msg_close(&m);
		while (more) { /* the endpoint frame */
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, io->mon, ZMQ_DONTWAIT) < 0)
				more = 0;
			else
				more = zmq_msg_more(&m);
			zmq_msg_close(&m);
		}
		switch (ev) {
		case ZMQ_EVENT_CONNECTED:
			adp_log(a, QIAO_LOG_DEBUG, "TCP connection to %s up", a->endpoint);
			break;
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			adp_log(a, QIAO_LOG_DEBUG, "CURVE handshake with the gateway done");
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			s_lost(a, QIAO_LOG_WARN,
			       "the gateway refused this member's CURVE key (ZAP status %u): is the key file's "
			       "curve-public line in the gateway's registry?", val);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
			s_lost(a, QIAO_LOG_WARN,
			       "CURVE handshake with %s failed (is gateway_curve_public the gateway's key?)",
			       a->endpoint);
			break;
		case ZMQ_EVENT_DISCONNECTED:
			if (io->state != IO_IDLE)
				s_lost(a, io->state == IO_LIVE ? QIAO_LOG_WARN : QIAO_LOG_INFO,
				       "connection to the gateway closed");
			break;
		default:
			break;
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

/* Take what application threads queued.  *closing reports shutdown. */
static void s_take(struct qiao_adapter *a, bool *closing)
{
	struct io *io = &a->io;
	pthread_mutex_lock(&a->mu);
	a->wake_pending = false;
	struct call *sub = a->submit_head;
	a->submit_head = a->submit_tail = NULL;
	struct outmsg *oh = a->out_head, *ot = a->out_tail;
	a->out_head = a->out_tail = NULL;
	io->n_out += a->n_out;
	a->n_out = 0;
	bool dirty = a->ready_dirty;
	a->ready_dirty = false;
	*closing = a->closing;
	pthread_mutex_unlock(&a->mu);
	if (oh) {
		if (io->out_tail)
			io->out_tail->next = oh;
		else
			io->out_head = oh;
		io->out_tail = ot;
	}
	while (sub) {
		struct call *c = sub;
		sub = c->next;
		if (*closing) {
			adp_call_complete(a, c, adp_result_local(QIAO_ECLOSED, c->msgid, "the adapter is shutting down"));
		} else {
			s_pend_add(io, c);
		}
	}
	if (dirty && io->state != IO_IDLE)
		s_send_ready(a);
}

static void s_fail_pending(struct qiao_adapter *a, int rc, const char *why)
{
	while (a->io.pend_head) {
		struct call *c = a->io.pend_head;
		s_complete(a, c, adp_result_local(rc, c->msgid, "%s", why));
	}
}

static void s_timers(struct qiao_adapter *a, int64_t now, bool closing)
{
	struct io *io = &a->io;
	switch (io->state) {
	case IO_IDLE:
		if (!closing && now >= io->next_connect)
			s_connect(a);
		break;
	case IO_HELLO:
		if (now >= io->hello_deadline)
			s_lost(a, io->attempt == 0 || io->attempt % 10 == 0 ? QIAO_LOG_WARN : QIAO_LOG_DEBUG,
			       "no WELCOME from %s within %u ms", a->endpoint, a->hello_timeout);
		break;
	case IO_LIVE: {
		int64_t dead = (int64_t)io->liveness * io->heartbeat_ms;
		if (now - io->last_recv >= dead)
			s_lost(a, QIAO_LOG_WARN, "gateway silent for %lld ms (liveness %u x heartbeat %u ms)",
			       (long long)(now - io->last_recv), io->liveness, io->heartbeat_ms);
		else if (now - io->last_send >= io->heartbeat_ms)
			s_send_ctl(a, QIAO_CMD_HEARTBEAT, NULL, 0);
		break;
	}
	}
	for (struct call *c = io->pend_head, *next; c; c = next) {
		next = c->next;
		if (c->expire_mono > now)
			continue;
		const char *svc = c->env->hdr->service;
		s_complete(a, c, c->sent ? adp_result_local(QIAO_ETIMEOUT, c->msgid,
							     "no answer for %s before the deadline (+%u ms grace)",
							     svc, a->call_grace)
					 : adp_result_local(QIAO_ETIMEOUT, c->msgid,
							     "%s not sent before its deadline: gateway unreachable",
							     svc));
	}
}

static void s_flush(struct qiao_adapter *a)
{
	struct io *io = &a->io;
	if (io->state != IO_LIVE)
		return;
	while (io->out_head) {
		struct outmsg *m = io->out_head;
		struct qiao_frame f[4];
		qiao_envelope_frames(m->env, f);
		int rc = s_send(a, f, 4);
		if (rc == 1)
			return;
		io->out_head = m->next;
		if (!io->out_head)
			io->out_tail = NULL;
		io->n_out--;
		if (rc == 0)
			atomic_fetch_add(&a->st.answers_sent, 1);
		qiao_envelope_destroy(&m->env);
		free(m);
	}
	for (struct call *c = io->pend_head; c && io->n_unsent; c = c->next) {
		if (c->sent)
			continue;
		struct qiao_frame f[4];
		qiao_envelope_frames(c->env, f);
		int rc = s_send(a, f, 4);
		if (rc == 1)
			return;
		/* Sent, or failed for good (the timeout will report it): either
		 * way it is never sent twice. */
		c->sent = true;
		io->n_unsent--;
		if (rc == 0)
			atomic_fetch_add(&a->st.calls_sent, 1);
		free(c->env->body); /* only the header is needed from now on */
		c->env->body = NULL;
		c->env->body_len = 0;
	}
}

static long s_poll_timeout(struct qiao_adapter *a, int64_t now, bool closing)
{
	struct io *io = &a->io;
	int64_t next = now + 1000;
#define EARLIER(t)                                                               \
	do {                                                                     \
		if ((t) < next)                                                  \
			next = (t);                                              \
	} while (0)
	switch (io->state) {
	case IO_IDLE:
		if (!closing)
			EARLIER(io->next_connect);
		break;
	case IO_HELLO:
		EARLIER(io->hello_deadline);
		break;
	case IO_LIVE:
		EARLIER(io->last_recv + (int64_t)io->liveness * io->heartbeat_ms);
		EARLIER(io->last_send + io->heartbeat_ms);
		break;
	}
	for (struct call *c = io->pend_head; c; c = c->next)
		EARLIER(c->expire_mono);
	if (closing)
		EARLIER(io->drain_deadline);
#undef EARLIER
	return next <= now ? 0 : (long)(next - now);
}

static bool s_drained(struct qiao_adapter *a, int64_t now)
{
	struct io *io = &a->io;
	if (io->state != IO_LIVE)
		return true;
	pthread_mutex_lock(&a->mu);
	uint32_t inflight = a->n_inflight;
	bool queued = a->out_head != NULL;
	pthread_mutex_unlock(&a->mu);
	if (inflight == 0 && !queued && !io->out_head)
		return true;
	if (now >= io->drain_deadline) {
		adp_log(a, QIAO_LOG_WARN, "closing with %u request(s) still unanswered", inflight);
		return true;
	}
	return false;
}

void *adp_io_main(void *arg)
{
	struct qiao_adapter *a = arg;
	struct io *io = &a->io;
	io->state = IO_IDLE;
	io->next_connect = adp_mono_ms();
	bool closing = false;
	for (;;) {
		bool was_closing = closing;
		s_take(a, &closing);
		int64_t now = adp_mono_ms();
		if (closing && !was_closing) {
			s_fail_pending(a, QIAO_ECLOSED, "the adapter is shutting down");
			if (io->state == IO_LIVE && s_send_ctl(a, QIAO_CMD_BYE, NULL, 0) == 0)
				io->bye_sent = true;
			io->drain_deadline = now + a->drain_ms;
		}
		if (closing && s_drained(a, now))
			break;
		s_timers(a, now, closing);
		s_flush(a);

		zmq_pollitem_t it[3] = {{NULL, a->wake_fd[0], ZMQ_POLLIN, 0}};
		int n = 1, imon = -1, idealer = -1;
		if (io->mon) {
			imon = n;
			it[n++] = (zmq_pollitem_t){io->mon, 0, ZMQ_POLLIN, 0};
		}
		if (io->dealer) {
			bool want_out = io->state == IO_LIVE && (io->out_head || io->n_unsent);
			idealer = n;
			it[n++] = (zmq_pollitem_t){io->dealer, 0, (short)(ZMQ_POLLIN | (want_out ? ZMQ_POLLOUT : 0)), 0};
		}
		void *dealer = io->dealer;
		if (zmq_poll(it, n, s_poll_timeout(a, adp_mono_ms(), closing)) < 0) {
			if (errno == EINTR)
				continue;
			adp_log(a, QIAO_LOG_ERROR, "zmq_poll: %s", zmq_strerror(errno));
			if (errno == ETERM)
				break;
			usleep(10000);
			continue;
		}
		if (it[0].revents & ZMQ_POLLIN) {
			char buf[64];
			while (read(a->wake_fd[0], buf, sizeof buf) > 0)
				;
		}
		if (imon >= 0 && (it[imon].revents & ZMQ_POLLIN))
			s_on_monitor(a);
		/* The monitor may have closed the socket we polled. */
		if (idealer >= 0 && io->dealer == dealer && (it[idealer].revents & ZMQ_POLLIN))
			s_on_input(a);
	}
	if (io->dealer && io->state == IO_LIVE && !io->bye_sent)
		s_send_ctl(a, QIAO_CMD_BYE, NULL, 0);
	/* A short linger lets BYE and the last answers leave. */
	s_close_socket(a, 500);
	io->state = IO_IDLE;
	s_fail_pending(a, QIAO_ECLOSED, "the adapter is shutting down");
	bool dummy;
	s_take(a, &dummy); /* fails calls queued meanwhile */
	pthread_mutex_lock(&a->mu);
	a->connected = false;
	pthread_cond_broadcast(&a->conn_cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}
