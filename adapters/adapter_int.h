/*
 * adapter_int.h - the inside of libqiao-adapter, shared by qiao_adapter.c
 * (the API, handler threads, results, responders) and adapter_io.c (the I/O
 * thread).  Not installed; nothing outside adapters/ includes it.
 *
 * Locking: one mutex, a->mu, guards everything that several threads touch
 * (queues, counts, call completion, offers, limits, the connected flag).
 * The `io` part of the adapter belongs to the I/O thread alone: the socket,
 * the directory, the pending-call table, timers.  Counters are atomics.
 */
#ifndef QIAO_ADAPTER_INT_H
#define QIAO_ADAPTER_INT_H

#include "qiao_adapter.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define ADP_MAX_OFFERS 64
#define ADP_NAME_MAX 72          /* "<name>.v<N>": 64 + ".v" + 4 digits + NUL */
#define ADP_REPLAY_SLOTS 4096    /* request ids remembered against replay */
#define ADP_MAX_FRAMES 8         /* more frames than this: dropped unread */
#define ADP_CTL_MAX (4u << 20)   /* cap on a control message (WELCOME, DIRECTORY) */
#define ADP_MAX_REFUSALS 1024    /* SDK-made ERRORs queued beyond max_inflight answers */

struct offer {
	char name[ADP_NAME_MAX];
	char type[QIAO_MAX_BODY_TYPE + 1];
	qiao_handler_fn fn;
	void *arg;
};

/* A unit of work for the handler threads: a request to hand to its
 * handler, or a finished asynchronous call whose callback is due. */
enum job_kind { JOB_REQUEST = 1, JOB_CALLBACK = 2 };
struct job {
	struct job *next;
	enum job_kind kind;
};

struct qiao_responder {
	struct job job;               /* first: the work queue links responders */
	struct qiao_adapter *a;       /* holds a reference (a->refs) */
	qiao_envelope_t *env;         /* the request; owns everything req points to */
	struct qiao_request req;
	qiao_handler_fn fn;
	void *arg;
	char service[ADP_NAME_MAX];
	char response_type[QIAO_MAX_BODY_TYPE + 1];
};

/* An outgoing call, from qiao_adapter_call*() until it completes. */
struct call {
	struct job job;               /* first: queued for its callback when async */
	struct call *next, *prev;     /* submit queue (a->mu), then the pending list (I/O) */
	struct call *hnext;           /* pending hash chain (I/O) */
	qiao_envelope_t *env;         /* sealed request; body freed once sent */
	uint8_t msgid[QIAO_MSGID_LEN];
	uint8_t req_hash[QIAO_HASH_LEN];
	char provider[QIAO_MEMBER_MAX]; /* member part of a full service id; "" for an alias */
	int64_t expire_mono;          /* local timeout: deadline + grace */
	bool sent;
	qiao_call_cb cb;              /* NULL: a synchronous caller waits on a->call_cv */
	void *cb_arg;
	/* completion, under a->mu */
	struct qiao_result *res;
	bool done;
	int refs;                     /* the I/O side + a synchronous waiter */
};

struct outmsg {
	struct outmsg *next;
	qiao_envelope_t *env;
};

struct dir_entry {
	char member[QIAO_MEMBER_MAX];
	uint8_t pk[32];
	uint8_t pk2[32]; /* a second key during the member's key rotation */
	int has_pk2;
};

enum io_state {
	IO_IDLE = 0,   /* no socket; (re)connect at next_connect */
	IO_HELLO,      /* socket connecting, READY sent, waiting for WELCOME */
	IO_LIVE,       /* welcomed */
};

/* State of the I/O thread; nobody else touches it. */
struct io {
	void *dealer;
	void *mon;                    /* PAIR receiving the DEALER's monitor events */
	unsigned mon_seq;
	enum io_state state;
	bool ever_live;
	unsigned attempt;             /* failures since the last WELCOME (back-off exponent) */
	int64_t next_connect;         /* monotonic ms */
	int64_t hello_deadline;
	int64_t last_send, last_recv;
	uint32_t heartbeat_ms, liveness;
	int64_t max_skew_ms;
	char gateway[QIAO_MEMBER_MAX];
	uint8_t gateway_pk[32];
	bool have_gateway;
	struct dir_entry *dir;        /* sorted by member */
	size_t n_dir;
	/* aliases of our services, from WELCOME: alias -> offered name */
	struct {
		char alias[80];
		char name[80];
	} aliases[64];
	size_t n_aliases;
	/* pending calls: list in send order + hash by message id */
	struct call *pend_head, *pend_tail;
	struct call **hash;
	size_t hash_size;             /* power of two */
	size_t n_unsent;
	/* answers taken from a->out_head, waiting for the socket */
	struct outmsg *out_head, *out_tail;
	size_t n_out;
	struct qiao_wire_limits lim;  /* limits for opening incoming envelopes */
	uint64_t connects;            /* sockets made so far */
	/* replay window for requests: ring of ids + hash of ring slots */
	uint8_t (*replay_ids)[QIAO_MSGID_LEN];
	int32_t *replay_next;         /* chain per slot, -1 ends */
	int32_t *replay_heads;        /* per bucket, -1 empty */
	size_t replay_fill, replay_pos;
	/* shutdown */
	bool bye_sent;
	int64_t drain_deadline;
	/* log rate limit for dropped input */
	int64_t drop_log_at;
	uint64_t drop_log_suppressed;
};

struct adp_stats {
	atomic_uint_fast64_t welcomes, reconnects, calls_sent, calls_answered, calls_failed,
		calls_timed_out, requests_handled, requests_refused, answers_sent, dropped,
		bad_signatures, notices;
};

struct qiao_adapter {
	/* configuration, immutable after qiao_adapter_new() (log: before start) */
	char *endpoint;
	char instance[65];
	uint8_t gw_curve_pk[32];
	qiao_keys_t *keys;
	uint32_t max_inflight, max_pending, reconnect_min, reconnect_max, n_workers;
	uint32_t call_timeout, call_grace, hello_timeout, drain_ms, sndhwm, rcvhwm;
	qiao_log_fn log_fn;
	void *log_arg;
	int log_level;
	void *zctx;
	int wake_fd[2];               /* self-pipe: app threads wake the I/O thread */

	pthread_mutex_t mu;
	pthread_cond_t work_cv;       /* handler threads wait for jobs */
	pthread_cond_t call_cv;       /* synchronous callers wait for completion */
	pthread_cond_t conn_cv;       /* qiao_adapter_wait_connected */
	/* --- under mu --- */
	int refs;                     /* 1 for the application + 1 per live responder */
	bool started, closing, io_stopped, workers_stop, wake_pending, ready_dirty, connected;
	struct offer offers[ADP_MAX_OFFERS];
	size_t n_offers;
	struct call *submit_head, *submit_tail;
	struct outmsg *out_head, *out_tail;
	size_t n_out;
	struct job *work_head, *work_tail;
	uint32_t n_calls;             /* accepted, not yet completed */
	uint32_t n_inflight;          /* requests dispatched, not yet answered */
	struct qiao_wire_limits lim;  /* the gateway's limits (defaults until WELCOME) */
	/* --- threads --- */
	pthread_t io_th;
	pthread_t *workers;
	uint32_t n_started_workers;
	bool io_running;

	struct adp_stats st;
	struct io io;
};

/* Logging (qiao_adapter.c); checks the level before formatting. */
void adp_log(struct qiao_adapter *a, enum qiao_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic milliseconds. */
int64_t adp_mono_ms(void);

/* Wake the I/O thread; caller holds a->mu. */
void adp_wake_locked(struct qiao_adapter *a);

/* Append to the handler threads' queue; caller holds a->mu. */
void adp_work_push_locked(struct qiao_adapter *a, struct job *j);

/* Complete a call with `res` (consumed): wakes the synchronous waiter or
 * queues the callback; frees the call when nobody needs it.  Takes a->mu.
 * The caller (I/O thread) has already unlinked it from the pending table. */
void adp_call_complete(struct qiao_adapter *a, struct call *c, struct qiao_result *res);

/* A local (LOCAL kind) result with status `rc` and a message. */
struct qiao_result *adp_result_local(int rc, const uint8_t msgid[QIAO_MSGID_LEN], const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A result built from a verified answer; takes ownership of *env.  When an
 * ERROR body does not decode, a LOCAL QIAO_EDECODE result. */
struct qiao_result *adp_result_answer(qiao_envelope_t **env, const uint8_t msgid[QIAO_MSGID_LEN]);

/* Seal an ERROR answering `req` (sender = this member) into *out.
 * 0 or the seal's code. */
int adp_seal_error(struct qiao_adapter *a, const qiao_envelope_t *req,
		   const struct qiao_error_info *e, qiao_envelope_t **out);

/* A responder for `env` (consumed), handled by `o`.  Takes a reference on
 * a; caller holds a->mu.  NULL when out of memory (env then freed). */
struct qiao_responder *adp_responder_new_locked(struct qiao_adapter *a, qiao_envelope_t **env,
						const struct offer *o);

/* The I/O thread (adapter_io.c). */
void *adp_io_main(void *arg);
/* Allocate / free the I/O state's tables. 0 or QIAO_ENOMEM. */
int adp_io_init(struct qiao_adapter *a);
void adp_io_free(struct qiao_adapter *a);

/* Drop a reference; frees the adapter at zero.  Takes a->mu. */
void adp_unref(struct qiao_adapter *a);

#endif
