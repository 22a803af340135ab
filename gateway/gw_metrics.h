/*
 * gw_metrics.h - the gateway's Prometheus endpoint (section metrics { },
 * docs/operations.md "Monitoring").
 *
 * An HTTP server (libmicrohttpd, its own internal thread) bound to exactly
 * metrics.listen answers three GET paths with small fixed responses:
 *   /metrics            the Prometheus text exposition format 0.0.4
 *   /healthz, /health   200 "ok", or 503 and a one-line reason
 * Anything else: 404; a method other than GET/HEAD: 405.
 *
 * Threads: the HTTP thread never looks at gateway state.  The reactor (the
 * only caller of every function below except the HTTP thread's own
 * callbacks) counts answered requests with gw_metrics_request(), and on its
 * timer renders the whole text with gw_metrics_publish(); the text and the
 * health verdict are swapped in under a mutex and the HTTP thread serves a
 * copy of the latest.  When the reactor stops publishing for longer than
 * GW_METRICS_STALE_MS, /healthz answers 503 (the reactor is stuck).
 */
#ifndef QIAO_GW_METRICS_H
#define QIAO_GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gw_config.h"
#include "gw_wf.h"

#define GW_METRICS_STALE_MS 5000

typedef struct gw_metrics gw_metrics_t;

/* What the reactor knows at one moment (all plain numbers, copied). */
struct gw_metrics_snap {
	int64_t now_ms, started_ms;          /* wall clock */
	uint64_t received;                   /* messages received */
	uint64_t requests_inflight;          /* routed, awaiting an answer */
	uint64_t queue_providers;            /* ... of which sent to an instance */
	uint64_t queue_verify, queue_commit; /* jobs in the verify queue / waiting for the writer */
	uint64_t bad_signatures, replays, zap_refused, timeouts;
	uint64_t cache_hits, cache_misses, cache_stale;
	uint64_t audit_size;                 /* entries in the log (store) */
	uint64_t audit_uncovered;            /* entries after the latest checkpoint */
	int64_t checkpoint_ms;               /* time of the latest checkpoint, 0: none */
	uint64_t audit_entries_written, commit_failures, audit_failures;
	int last_commit_ok;                  /* the most recent durable commit succeeded */
	unsigned connections, members;       /* adapter connections; distinct members among them */
	const struct gw_wf_count *wf;        /* open cases (borrowed for the call) */
	size_t nwf;
	int healthy;
	const char *reason;                  /* when !healthy: one line */
};

/* Start the server on mc->host:mc->port.  0 and *out, or a negative code
 * with err set (e.g. the address is in use). */
int gw_metrics_start(const struct gw_metrics_conf *mc, gw_metrics_t **out, char *err, size_t errlen);

/* Stop the server (waits for its thread), free; *m = NULL; safe on NULL. */
void gw_metrics_stop(gw_metrics_t **m);

/* One request answered: `service` a service id (or "unknown"), `outcome`
 * "ok" or an ErrorCode name (lower-cased here), `seconds` its latency or
 * < 0 when it was not timed.  Reactor only; no-op on NULL. */
void gw_metrics_request(gw_metrics_t *m, const char *service, const char *outcome, double seconds);

/* Render everything and make it the served copy.  Reactor only. */
void gw_metrics_publish(gw_metrics_t *m, const struct gw_metrics_snap *s);

#endif
