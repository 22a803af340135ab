/*
 * qiao_adapter.h - libqiao-adapter, the SDK a department links against to
 * offer services through the Qiao gateway and to call other departments'
 * services.  docs/adapter-guide.md walks through it; docs/protocol.md is the
 * wire contract it implements.
 *
 * What the SDK does for you:
 *  - connects one ZeroMQ DEALER to the gateway with CURVE (your CURVE pair
 *    from the key file, the gateway's CURVE public key from the operator);
 *  - sends READY with the services you offer, reads WELCOME (the gateway's
 *    signing key, the directory of every member's signing key, heartbeat
 *    and size limits);
 *  - signs every envelope it sends with your Ed25519 key, and opens (size
 *    caps, field validation, body hash) and verifies (sender's key from the
 *    directory) every envelope it receives;
 *  - heartbeats; when the gateway falls silent or the connection drops it
 *    reconnects with doubling back-off and jitter, and sends READY again;
 *  - hands requests to your handlers on its handler threads and matches
 *    answers to your calls; refuses what is not for you.
 *
 * Threads.  qiao_adapter_start() starts one I/O thread, which alone touches
 * the ZeroMQ socket, and `handler_threads` handler threads, which run your
 * request handlers and your asynchronous-call callbacks.  Every other
 * function may be called from any thread, except qiao_adapter_destroy()
 * (never from a handler or callback) and the functions marked "before
 * start".
 *
 * Errors.  Functions return 0 or a negative code from qiao_err.h;
 * qiao_strerror() names every code.  Functions that build something the
 * caller may want explained write a reason into err[] / the result.
 *
 * Ownership.  Strings and buffers passed in are copied unless said
 * otherwise.  A function taking `T **` consumes the object and sets the
 * caller's pointer to NULL (CZMQ style).  Pointers inside a result or a
 * request are borrowed from that object and live as long as it does.
 */
#ifndef QIAO_ADAPTER_H
#define QIAO_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.pb-c.h"
#include "qiao_err.h"

/* "libqiao-adapter 0.1.0": what READY reports as `sdk`. */
#define QIAO_ADAPTER_SDK "libqiao-adapter 0.1.0"

typedef struct qiao_adapter qiao_adapter_t;

/* Log levels, most severe first (0 is "default" in the options). */
enum qiao_log_level {
	QIAO_LOG_ERROR = 1,
	QIAO_LOG_WARN = 2,
	QIAO_LOG_INFO = 3,
	QIAO_LOG_DEBUG = 4,
};

/* A log sink: one call per event, `msg` is one line without a newline,
 * borrowed for the duration of the call.  May be called from any SDK
 * thread, also concurrently; it must not call back into the adapter. */
typedef void (*qiao_log_fn)(void *arg, enum qiao_log_level level, const char *msg);

/*
 * Options.  Zero (or NULL) in any field means its default, so
 *   struct qiao_adapter_opts o = { .endpoint = ..., .key_file = ...,
 *                                  .gateway_curve_public = ... };
 * is a complete configuration.  Strings are copied by qiao_adapter_new().
 */
struct qiao_adapter_opts {
	const char *endpoint;             /* required: "tcp://gateway.example:7700" */
	const char *key_file;             /* required: from `qiao keygen` (mode 0600) */
	const char *gateway_curve_public; /* required: base64 of the gateway's 32-byte CURVE key */
	const char *instance;             /* label shown by `qiao status`; default "<host> pid <pid>" */
	uint32_t max_inflight;            /* requests worked on at once; more are answered BUSY; 64 */
	uint32_t max_pending_calls;       /* outgoing calls awaiting answers; more fail QIAO_EBUSY; 256 */
	uint32_t reconnect_min_ms;        /* first reconnect delay; doubles per failure; each
					   * delay is jittered to between half and all of it; 100 */
	uint32_t reconnect_max_ms;        /* upper bound of the delay; 5000 */
	uint32_t handler_threads;         /* threads running handlers and async callbacks; 1 */
	uint32_t call_timeout_ms;         /* deadline of a call whose timeout_ms is 0; 30000 */
	uint32_t call_grace_ms;           /* wait past a call's deadline for the gateway's TIMEOUT; 2000 */
	uint32_t hello_timeout_ms;        /* wait this long for WELCOME before reconnecting; 3000 */
	uint32_t drain_ms;                /* destroy: time for in-flight requests to be answered; 2000 */
	uint32_t sndhwm, rcvhwm;          /* ZeroMQ high-water marks, messages; 1000 */
	qiao_log_fn log;                  /* default: one line per event on stderr */
	void *log_arg;
	enum qiao_log_level log_level;    /* log this level and more severe; INFO */
};

/*
 * Load the key file (refused when group or others may read it, or when a
 * public key does not match its secret), check the options, allocate.
 * Nothing is connected until qiao_adapter_start().  0 and *out, or
 * QIAO_EINVAL (an option is missing or invalid), QIAO_EKEYPERM,
 * QIAO_EKEYFILE, -errno (key file unreadable), QIAO_ENOMEM, QIAO_ECRYPTO;
 * err[] (may be NULL) says what was wrong.  Free with qiao_adapter_destroy().
 */
__attribute__((warn_unused_result))
int qiao_adapter_new(const struct qiao_adapter_opts *opts, qiao_adapter_t **out,
		     char *err, size_t errlen);

/*
 * Orderly shutdown: new calls fail QIAO_ECLOSED, pending calls complete
 * with QIAO_ECLOSED, BYE goes to the gateway, requests in flight get up to
 * drain_ms to be answered, then the threads stop and the socket closes.
 * Asynchronous callbacks still queued run before it returns.  A responder
 * still held by the application stays valid: answering it afterwards
 * returns QIAO_ECLOSED and frees it.  Sets *a to NULL; safe on NULL and
 * twice.  Never call it from a handler or a callback (it waits for them).
 */
void qiao_adapter_destroy(qiao_adapter_t **a);

/* Replace the log sink and level (see the options).  Before start. */
void qiao_adapter_set_log(qiao_adapter_t *a, qiao_log_fn fn, void *arg, enum qiao_log_level level);

/* This adapter's member id, "<USCC>/<subsystem>", from the key file.
 * Borrowed; valid until destroy. */
const char *qiao_adapter_member(const qiao_adapter_t *a);

/* ---- offering services ------------------------------------------------ */

/* A verified request, as the handler sees it.  Everything is borrowed from
 * the responder and valid until the request is answered. */
struct qiao_request {
	const Qiao__V1__Header *hdr;  /* the verified header (sender, user_id, purpose, subjects, ...) */
	const char *requester;        /* hdr->sender: the calling member */
	const char *service;          /* the offered name it matched, e.g. "title-summary.v1" */
	const uint8_t *body;          /* the body frame (protobuf of hdr->body_type); NULL when empty */
	size_t body_len;
	/* Evidence for your own records: the header frame exactly as signed,
	 * and the requester's 64-byte Ed25519 signature over
	 * "qiao.v1.envelope\0" || header. */
	const uint8_t *header_bytes;
	size_t header_len;
	const uint8_t *signature;
};

/* The one-shot handle through which a request is answered. */
struct qiao_responder;

/*
 * A request handler.  Runs on a handler thread.  It must answer exactly
 * once through `r`, with qiao_respond() or qiao_respond_error(); it may
 * answer before returning or keep `r` and answer later from any thread
 * (an asynchronous provider).  Until it is answered the request counts
 * against max_inflight.
 */
typedef void (*qiao_handler_fn)(void *arg, const struct qiao_request *req,
				struct qiao_responder *r);

/*
 * Offer `service` ("<name>.v<N>", relative to this member, e.g.
 * "title-summary.v1"), answered with bodies of type `response_type`
 * ("qiao.v1.TitleSummary").  Before or after start; after start READY is
 * sent again with the new list.  The gateway may refuse a service not
 * registered for this member (logged when WELCOME says so).  0, QIAO_EINVAL
 * (bad name or type, NULL fn, more than 64 services), QIAO_EEXIST,
 * QIAO_ENOMEM, QIAO_ECLOSED.
 */
int qiao_adapter_offer(qiao_adapter_t *a, const char *service, const char *response_type,
		       qiao_handler_fn fn, void *arg);

/* The request being answered (borrowed from r). */
const struct qiao_request *qiao_responder_request(const struct qiao_responder *r);

/*
 * Answer with a RESPONSE carrying `body` (protobuf of the offer's
 * response_type; copied).  Signs it and queues it for the I/O thread.
 * Always consumes *r and sets it to NULL: if the response cannot be sealed
 * (e.g. larger than the gateway's body limit) the SDK answers ERROR
 * INTERNAL in its place and returns the reason.  0, QIAO_ETOOBIG,
 * QIAO_EFIELD, QIAO_ENOMEM, QIAO_ECLOSED (adapter destroyed; nothing sent),
 * QIAO_EINVAL (r NULL).
 */
int qiao_respond(struct qiao_responder **r, const void *body, size_t body_len);

/* The fields of an ERROR answer (qiao.v1.ErrorReply).  Strings borrowed,
 * may be NULL; message is cut to 1024 bytes, field to 256, missing_rule to
 * 512, on character boundaries; text that is not UTF-8 is made ASCII. */
struct qiao_error_info {
	int code;                 /* Qiao__V1__ErrorCode, e.g. QIAO__V1__ERROR_CODE__NOT_FOUND */
	const char *message;      /* for people */
	const char *field;        /* the offending field, if any */
	const char *missing_rule; /* POLICY_DENIED only */
	uint32_t retry_after_ms;  /* BUSY / UNAVAILABLE: suggested wait */
};

/* Answer with a signed ERROR: `code` from ErrorCode (1..21), message and
 * field may be NULL.  Consumes *r as qiao_respond() does.  0, QIAO_EINVAL
 * (code out of range: INTERNAL is sent instead), QIAO_ENOMEM, QIAO_ECLOSED. */
int qiao_respond_error(struct qiao_responder **r, int code, const char *message,
		       const char *field);
/* The same with every ErrorReply field. */
int qiao_respond_error_info(struct qiao_responder **r, const struct qiao_error_info *e);

/* ---- calling services ------------------------------------------------- */

enum qiao_subject_type {
	QIAO_SUBJECT_RESIDENT_ID = 1, /* 居民身份证号码 */
	QIAO_SUBJECT_USCC = 2,        /* 统一社会信用代码 */
};

struct qiao_subject {
	enum qiao_subject_type type;
	const char *id;
};

/* One call.  Everything is borrowed for the duration of the call function
 * (the SDK copies what it keeps).  NULL strings are empty. */
struct qiao_call {
	const char *service;     /* "<USCC>/<subsystem>/<name>.v<N>" or a registered alias */
	const char *user_id;     /* the person (经办人) you act for; required */
	const char *purpose;     /* 申请事由; required with a RESIDENT_ID subject */
	const char *legal_basis;
	const char *case_id;
	const struct qiao_subject *subjects; /* at most 32 */
	size_t n_subjects;
	const char *body_type;   /* "qiao.v1.TitleSummaryRequest" */
	const void *body;        /* protobuf bytes of body_type */
	size_t body_len;
	uint32_t timeout_ms;     /* deadline = now + timeout_ms; 0 = opts.call_timeout_ms */
};

enum qiao_result_kind {
	QIAO_RESULT_LOCAL = 0,    /* no trusted answer; `status` says why */
	QIAO_RESULT_RESPONSE = 1, /* the provider answered */
	QIAO_RESULT_ERROR = 2,    /* the provider or the gateway refused; see `error` */
};

/*
 * What became of a call.  Every pointer is borrowed from the result and
 * lives until qiao_result_free().
 *
 *  status 0, kind RESPONSE: hdr, body, body_type are the verified answer.
 *  status 0, kind ERROR:    error.* holds the verified ErrorReply.
 *  status < 0, kind LOCAL:  no trusted answer arrived: QIAO_ETIMEOUT (none
 *    before deadline + grace), QIAO_EBADSIG (an answer came but its
 *    signature did not verify, or its signer is unknown), QIAO_EAUTH (signed
 *    by a member that is neither the provider nor the gateway), QIAO_EFIELD
 *    (the answer does not match the request: request_hash, recipient,
 *    service or case_id; or the call itself was invalid), QIAO_EIDENT,
 *    QIAO_EDECODE (an ErrorReply that does not decode), QIAO_EBUSY,
 *    QIAO_ECLOSED; error.message explains.
 */
struct qiao_result {
	int status;
	enum qiao_result_kind kind;
	const Qiao__V1__Header *hdr;   /* the answer's verified header; NULL when LOCAL */
	const char *responder;         /* hdr->sender: the provider, or the gateway */
	const char *body_type;
	const uint8_t *body;
	size_t body_len;
	struct {
		int code;              /* ErrorCode; 0 when not an ERROR */
		const char *name;      /* "NOT_FOUND"; "" when not an ERROR */
		const char *message;   /* never NULL */
		const char *field;
		const char *missing_rule;
		uint32_t retry_after_ms;
		const char *origin;
	} error;
	uint8_t request_id[16];        /* message_id of the request sent (all zero if never sealed) */
	/* Evidence: the answer's header frame as signed, and its signature. */
	const uint8_t *header_bytes;
	size_t header_len;
	const uint8_t *signature;
};

/*
 * Call a service and wait for the answer.  Never hangs: without an answer
 * it returns at deadline + call_grace_ms with QIAO_ETIMEOUT.  Returns
 * res->status: 0 when a verified answer arrived (RESPONSE or ERROR; look at
 * res->kind), else a negative code as described above.  *res is set in
 * every case except QIAO_EINVAL for NULL arguments and QIAO_ENOMEM; free it
 * with qiao_result_free().  A call made while the gateway is unreachable
 * waits (until its deadline) to be sent on the next connection; a call
 * already sent when the connection drops stays pending, since the gateway
 * may still answer it on the next connection, and is never sent twice.
 * QIAO_ECLOSED before start or after destroy began; QIAO_EBUSY when
 * max_pending_calls calls are already waiting.
 */
int qiao_adapter_call(qiao_adapter_t *a, const struct qiao_call *c, struct qiao_result **res);

/* Callback of an asynchronous call: runs on a handler thread, exactly once
 * per accepted call; `res` belongs to the callback (qiao_result_free it). */
typedef void (*qiao_call_cb)(void *arg, struct qiao_result *res);

/*
 * Start a call and return at once.  0 when accepted: `cb` will run exactly
 * once.  Otherwise `cb` never runs and the code says why: QIAO_EINVAL,
 * QIAO_EFIELD / QIAO_EIDENT (the call is invalid: err[] says why),
 * QIAO_EBUSY, QIAO_ECLOSED, QIAO_ENOMEM.  err may be NULL.
 */
int qiao_adapter_call_async(qiao_adapter_t *a, const struct qiao_call *c, qiao_call_cb cb,
			    void *arg, char *err, size_t errlen);

/* Free a result; *res set to NULL; safe on NULL and twice. */
void qiao_result_free(struct qiao_result **res);

/* "NOT_FOUND" for 17, and so on; "UNKNOWN" for other values.  Static. */
const char *qiao_error_code_name(int code);

/* ---- running ---------------------------------------------------------- */

/* Start the I/O thread and the handler threads and connect.  0,
 * QIAO_EINVAL (already started), QIAO_ECLOSED, QIAO_ENOMEM, -errno. */
int qiao_adapter_start(qiao_adapter_t *a);

/* Wait until the gateway has welcomed this adapter (or timeout_ms
 * passes).  0, QIAO_ETIMEOUT, QIAO_ECLOSED. */
int qiao_adapter_wait_connected(qiao_adapter_t *a, uint32_t timeout_ms);

struct qiao_adapter_stats {
	int connected;               /* 1 while welcomed and the gateway is alive */
	uint64_t welcomes;           /* WELCOMEs received (one per connection, plus re-READYs) */
	uint64_t reconnects;         /* connections re-made after one was lost or timed out */
	uint64_t calls_sent;         /* requests put on the wire */
	uint64_t calls_answered;     /* calls that ended with a RESPONSE */
	uint64_t calls_failed;       /* calls that ended with an ERROR or a local failure */
	uint64_t calls_timed_out;    /* of those, local timeouts */
	uint64_t requests_handled;   /* requests given to a handler */
	uint64_t requests_refused;   /* requests the SDK answered itself (BUSY, NO_SUCH_SERVICE, ...) */
	uint64_t answers_sent;       /* RESPONSE and ERROR envelopes put on the wire */
	uint64_t dropped;            /* incoming messages dropped: malformed, unexpected, unknown
				      * sender, answer to no pending call, replay */
	uint64_t bad_signatures;     /* incoming envelopes whose signature did not verify */
	uint64_t notices;            /* NOTICEs from the gateway */
	uint32_t pending_calls;      /* calls now waiting for an answer */
	uint32_t inflight_requests;  /* requests now being worked on */
};

/* A snapshot of the counters (each counter read atomically). */
void qiao_adapter_stats(qiao_adapter_t *a, struct qiao_adapter_stats *out);

#endif
