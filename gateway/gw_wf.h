/*
 * gw_wf.h - the workflow engine of the gateway (docs/workflow.md).
 *
 * The engine runs inside qiao-gateway on its own thread, as a member of its
 * own (workflow.key_file, e.g. 11150600MB0K24684F/workflow): it connects to
 * the gateway through the adapter SDK like any department, with CURVE, and
 * every call it makes is signed, policy-checked, routed and audited like
 * any other exchange, under the case id.  Cases live in the gateway's LMDB
 * store (table wf_case); every transition of a case or of a step is an
 * audit entry (WORKFLOW_TRANSITION) written in the same transaction as the
 * case record, so the log and the record never disagree.
 *
 * Order of durability: a step is recorded RUNNING (with its attempt count)
 * before its request is sent, and DONE with its outputs before any step
 * that depends on it starts.  After a crash, a RUNNING step of an
 * idempotent service is sent again (the department answers the repeat from
 * its own records: every department service keys its effect by a number
 * the definition derives from the case id); a RUNNING step of a service
 * that is not idempotent is never sent again: it is failed as "outcome
 * unknown" and the case compensates.
 *
 * Operators drive it through a unix socket (workflow.socket; `qiao case`):
 * one JSON request per connection, one JSON reply.  docs/workflow.md lists
 * the requests.
 */
#ifndef QIAO_GW_WF_H
#define QIAO_GW_WF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_log.h"
#include "qiao_store.h"

struct gw_config;
typedef struct gw_wf gw_wf_t;

struct gw_wf_env {
	const struct gw_config *cfg;   /* read during gw_wf_start() only */
	qiao_store_t *st;
	qiao_gc_t *gc;
	audit_log_t *audit;
	const char *endpoint;          /* where to connect (resolved by the caller) */
	const char *gateway_curve;     /* base64 of the gateway's CURVE public key */
};

/* Load the definitions, the open cases, start the engine thread.  0 or an
 * error with err set. */
int gw_wf_start(const struct gw_wf_env *env, gw_wf_t **out, char *err, size_t errlen);

/* Stop the thread (calls in flight are abandoned: their steps stay
 * RUNNING in the store and resume at the next start); *w = NULL. */
void gw_wf_stop(gw_wf_t **w);

/* Audit entries the engine has durably appended (the gateway's checkpoint
 * timer adds them to its own count).  Any thread. */
uint64_t gw_wf_audited(gw_wf_t *w);

/* Counters for qiao status: {"workflows": n, "open": {"wf": {"RUNNING": n}}, ...}. */
json_t *gw_wf_status(gw_wf_t *w);

/* Open cases of one definition in one state (CREATED, RUNNING, WAITING,
 * COMPENSATING), as of the engine's last turn. */
struct gw_wf_count {
	const char *workflow;   /* the definition's name; owned by the engine, valid until gw_wf_stop() */
	const char *state;      /* static string */
	uint64_t open;
	int64_t oldest_age_ms;  /* age of the oldest of them (since created_ms); 0 when none */
};

/* A copy of the counts (every definition x open state, zeros included):
 * *out (free() it) and *n; NULL/0 when w is NULL.  0 or QIAO_ENOMEM.  Any
 * thread: the engine publishes them under a mutex at the end of each turn. */
int gw_wf_metrics(gw_wf_t *w, struct gw_wf_count **out, size_t *n);

#endif
