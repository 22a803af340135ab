/*
 * gw_wf.c - the workflow engine (gw_wf.h, docs/workflow.md).
 *
 * One thread.  A case is a JSON record (the same object `qiao case status
 * --json` prints) kept in memory while it is open and in the store table
 * wf_case always.  Each turn of the loop:
 *
 *   1. take what happened: call results (posted by the SDK's callbacks),
 *      operator requests on the control socket, timers;
 *   2. advance every case that changed (start ready steps, retry, fail,
 *      compensate, finish), collecting the calls to send;
 *   3. commit once: every changed case record and its WORKFLOW_TRANSITION
 *      audit entries in one durable transaction of the gateway's writer;
 *   4. only then send the calls and answer the operators.
 *
 * So a request is never on the wire before the store says its step is
 * RUNNING, and no step starts before the step it depends on is durably
 * DONE.  When a commit fails, the cases are put back as last committed,
 * nothing is sent, and the engine tries again a second later.
 */
#define _GNU_SOURCE
#include "gw_wf.h"

#include "gw_config.h"
#include "gw_log.h"
#include "gw_mbox.h"
#include "gw_unix.h"
#include "gw_wfdef.h"
#include "qiao_adapter.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"
#include "qiao_err.h"
#include "qiao_pbjson.h"

#include "audit.pb-c.h"
#include "workflow.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WF_CASE_TYPE 0x5743 /* 'WC' */
#define WF_META_TYPE 0x574D /* 'WM' */
#define CASE_ID_MAX 40
#define CTL_MAX (4u << 20)  /* one control request at most 4 MiB */
#define MAX_TIMELINE 20000

/* ---- states --------------------------------------------------------------- */

static const char *const s_case_states[] = {"UNSPECIFIED", "CREATED", "RUNNING", "WAITING",
					    "COMPENSATING", "COMPLETED", "COMPENSATED", "FAILED"};
static const char *const s_step_states[] = {"UNSPECIFIED", "PENDING", "RUNNING", "DONE",
					    "FAILED", "COMPENSATING", "COMPENSATED", "SKIPPED"};
#define CS(x) QIAO__V1__CASE_STATE__CASE_STATE_##x
#define SS(x) QIAO__V1__STEP_STATE__STEP_STATE_##x
#define EC(x) QIAO__V1__ERROR_CODE__##x

static int s_state_of(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 1; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return 0;
}
#define CASE_STATE(rec) s_state_of(s_case_states, 8, json_string_value(json_object_get((rec), "state")))
#define STEP_STATE(st) s_state_of(s_step_states, 8, json_string_value(json_object_get((st), "state")))

static int s_final(int cs)
{
	return cs == CS(COMPLETED) || cs == CS(COMPENSATED) || cs == CS(FAILED);
}

/* ---- small JSON helpers -------------------------------------------------- */

static const char *s_str(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}
static int64_t s_int(const json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}
static void s_set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, json_string(v ? v : ""));
}
static void s_set_int(json_t *o, const char *k, int64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* ---- the engine ------------------------------------------------------------ */

struct live {           /* what is not persisted about a step */
	uint64_t token;     /* of the call in flight, 0: none */
	uint64_t ctoken;    /* of the compensation call in flight */
};

struct wcase {
	struct wcase *next;
	char id[CASE_ID_MAX];
	const struct wf_def *def;
	json_t *rec;
	struct live *live;
	char *committed;    /* the record as last committed (for rollback) */
	int dirty;
};

/* A call result, posted by the SDK's callback thread. */
struct wres {
	struct gw_item link;
	struct gw_wf *w;
	uint64_t token;
	struct qiao_result *res;
};

/* A call to make once the turn's commit is durable. */
struct wsend {
	struct wcase *c;
	size_t step;
	int comp;
	uint64_t token;
};

/* An operator connection waiting for the commit before its answer. */
struct wreply {
	int fd;
	json_t *reply;
};

/* One durable commit (runs on the gateway's writer thread). */
struct wflush {
	qiao_table_t *cases, *meta;
	audit_log_t *audit;
	size_t nrec;
	char **keys;
	char **vals;
	size_t nmeta;
	char **mkeys;
	char **mvals;
	size_t nent;
	uint8_t **ents;
	size_t *elen;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, rc;
};

struct gw_wf {
	pthread_t thread;
	int started;
	atomic_int stop;
	int wake_fd;              /* eventfd: stop */
	int ctl_fd;
	char ctl_path[108];
	qiao_store_t *st;
	qiao_gc_t *gc;
	audit_log_t *audit;
	qiao_table_t *tcase, *tmeta;
	qiao_adapter_t *ad;
	gw_mbox_t *mb;
	char member[QIAO_MEMBER_MAX];
	char gateway[QIAO_MEMBER_MAX];
	struct wf_def **defs;
	size_t ndefs;
	unsigned max_open;
	struct wcase *cases;      /* open cases */
	size_t nopen;
	uint64_t next_token;
	/* this turn: packed WORKFLOW_TRANSITION entries, calls, operator answers */
	uint8_t **ents;
	size_t *elen;
	size_t nent, capent;
	struct wsend *sends;
	size_t nsends, capsends;
	struct wreply *replies;
	size_t nreplies, capreplies;
	/* case-id counters: "<PREFIX>-YYYYMMDD" -> last number */
	json_t *counters;
	json_t *counters_dirty;
	int64_t backoff_until;    /* after a failed commit */
	atomic_uint_fast64_t audited;  /* entries durably appended (for checkpoints) */
	atomic_int nopen_pub;
	/* gw_wf_metrics(): open cases by (definition, state), written at the
	 * end of each turn, read by the gateway's reactor */
	pthread_mutex_t met_mu;
	struct gw_wf_count *met;
	size_t nmet;
	int64_t met_next;         /* recounted at most every 250 ms (a turn runs at least every second) */
};

static int64_t s_now(void)
{
	return qiao_now_ms();
}

/*
 * Fault injection for the crash tests (tests/test_workflow_crash.c):
 * QIAO_FAULT_WF_KILL="STEP:sent" SIGKILLs the gateway right after the
 * first request of STEP was handed to the SDK, "STEP:answered" when its
 * answer arrives, before the answer is committed.  Unset in production.
 */
static char s_kill_step[64];
static int s_kill_phase; /* 1 sent, 2 answered */

static void s_fault_init(void)
{
	const char *v = getenv("QIAO_FAULT_WF_KILL");
	const char *colon = v ? strchr(v, ':') : NULL;
	if (!colon || (size_t)(colon - v) >= sizeof s_kill_step)
		return;
	memcpy(s_kill_step, v, (size_t)(colon - v));
	s_kill_step[colon - v] = '\0';
	s_kill_phase = strcmp(colon + 1, "sent") == 0 ? 1 : strcmp(colon + 1, "answered") == 0 ? 2 : 0;
	if (s_kill_phase)
		log_warn("workflow.fault_injection kill_at=%s", v);
}

static void s_fault(const char *step, int phase)
{
	if (s_kill_phase == phase && strcmp(step, s_kill_step) == 0) {
		log_warn("workflow.fault_injection step=%s phase=%s: SIGKILL", step, phase == 1 ? "sent" : "answered");
		raise(SIGKILL);
	}
}

/* ---- definitions ----------------------------------------------------------- */

static const struct wf_def *s_def(const gw_wf_t *w, const char *name)
{
	for (size_t i = 0; i < w->ndefs; i++)
		if (strcmp(w->defs[i]->name, name) == 0)
			return w->defs[i];
	return NULL;
}

static json_t *s_def_json(const struct wf_def *d)
{
	json_t *steps = json_array();
	for (size_t i = 0; i < d->nsteps; i++) {
		const struct wf_step *s = &d->steps[i];
		json_t *after = json_array();
		for (size_t a = 0; a < s->nafter; a++)
			json_array_append_new(after, json_string(d->steps[s->after[a]].name));
		json_t *svc = s->call.service.kind == T_LIT ? json_incref(s->call.service.lit) : json_string("(from the input)");
		json_array_append_new(steps, json_pack("{s:s, s:o, s:o, s:s, s:b, s:b}", "name", s->name, "service", svc,
						       "after", after, "request_type", s->call.req_type, "compensated",
						       s->has_comp, "idempotent", s->call.idempotent));
	}
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o}", "name", d->name, "version", (json_int_t)d->version,
			 "title", d->title ? d->title : "", "input_type", d->input_type, "case_prefix", d->case_prefix,
			 "file", d->file, "steps", steps);
}

/* ---- the case's evaluation context -------------------------------------- */

static json_t *s_casev(const json_t *rec)
{
	const json_t *f = json_object_get(rec, "failure");
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", s_str(rec, "case_id"), "workflow",
			 s_str(rec, "workflow"), "user", s_str(rec, "user"), "started_by", s_str(rec, "started_by"),
			 "purpose", s_str(rec, "purpose"), "failure", f ? s_str(f, "reason") : "", "failure_code",
			 f ? s_str(f, "code") : "", "failed_step", f ? s_str(f, "step") : "", "created_ms",
			 (json_int_t)s_int(rec, "created_ms"));
}

static void s_ctx(struct wf_ctx *x, const json_t *rec, json_t *casev, const json_t *reply)
{
	x->input = json_object_get(rec, "input");
	x->vars = json_object_get(rec, "vars");
	x->reply = reply;
	x->casev = casev;
	x->now_ms = s_now();
}

/* ---- transitions (audit entries) ------------------------------------------ */

static int s_subject_type(const char *t)
{
	if (t && (strcmp(t, "RESIDENT_ID") == 0 || strcmp(t, "1") == 0))
		return QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	if (t && (strcmp(t, "USCC") == 0 || strcmp(t, "2") == 0))
		return QIAO__V1__SUBJECT_TYPE__USCC;
	return 0;
}

/*
 * Record a transition of the case (step < 0) or of one of its steps; the
 * record's revision counts them.  Queued for this turn's commit.
 */
static void s_emit(gw_wf_t *w, struct wcase *c, long step, int cfrom, int cto, int sfrom, int sto, int failure,
		   const char *msgid_hex, const char *fmt, ...) __attribute__((format(printf, 10, 11)));
static void s_emit(gw_wf_t *w, struct wcase *c, long step, int cfrom, int cto, int sfrom, int sto, int failure,
		   const char *msgid_hex, const char *fmt, ...)
{
	char cause[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	json_t *rec = c->rec;
	uint64_t seq = (uint64_t)s_int(rec, "revision") + 1;
	s_set_int(rec, "revision", (int64_t)seq);
	int64_t now = s_now();
	s_set_int(rec, "updated_ms", now);

	Qiao__V1__CaseTransition t = QIAO__V1__CASE_TRANSITION__INIT;
	t.case_id = c->id;
	t.seq = seq;
	t.time_ms = now;
	t.from_state = (Qiao__V1__CaseState)cfrom;
	t.to_state = (Qiao__V1__CaseState)cto;
	const json_t *st = step >= 0 ? json_array_get(json_object_get(rec, "steps"), (size_t)step) : NULL;
	t.step = st ? (char *)s_str(st, "name") : "";
	t.step_from = (Qiao__V1__StepState)sfrom;
	t.step_to = (Qiao__V1__StepState)sto;
	t.cause = cause;
	uint8_t mid[QIAO_MSGID_LEN];
	if (msgid_hex && strlen(msgid_hex) == 2 * QIAO_MSGID_LEN) {
		for (size_t i = 0; i < QIAO_MSGID_LEN; i++) {
			unsigned b;
			sscanf(msgid_hex + 2 * i, "%2x", &b);
			mid[i] = (uint8_t)b;
		}
		t.message_id.data = mid;
		t.message_id.len = QIAO_MSGID_LEN;
	}
	t.actor = w->member;

	Qiao__V1__AuditEntry e = QIAO__V1__AUDIT_ENTRY__INIT;
	e.event_type = QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_WORKFLOW_TRANSITION;
	e.outcome = failure ? QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_FAILURE : QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_SUCCESS;
	e.time_ms = now;
	e.requester = w->member;
	char prov[QIAO_MEMBER_MAX] = "";
	const char *svc = "";
	if (st) {
		const json_t *cp = json_object_get(st, "compensation");
		svc = (sfrom == SS(COMPENSATING) || sto == SS(COMPENSATING)) && cp ? s_str(cp, "service")
										    : s_str(st, "service");
		const char *sl = strrchr(svc, '/');
		if (sl && (size_t)(sl - svc) < sizeof prov) {
			memcpy(prov, svc, (size_t)(sl - svc));
			prov[sl - svc] = '\0';
		}
	}
	e.provider = prov;
	e.service = (char *)svc;
	e.end_user = (char *)s_str(rec, "user");
	e.case_id = c->id;
	e.purpose = (char *)s_str(rec, "purpose");
	e.legal_basis = (char *)(c->def && c->def->legal_basis ? c->def->legal_basis : "");
	ProtobufCBinaryData subj[QIAO_MAX_SUBJECTS];
	uint8_t sh[QIAO_MAX_SUBJECTS][AUDIT_HASH];
	const json_t *subs = json_object_get(rec, "subjects");
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(subs) && n < QIAO_MAX_SUBJECTS; i++) {
		const json_t *d = json_array_get(subs, i);
		int ty = s_subject_type(s_str(d, "type"));
		if (!ty)
			continue;
		audit_log_subject_hash(w->audit, ty == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID ? "RESIDENT_ID" : "USCC",
				       s_str(d, "id"), sh[n]);
		subj[n].data = sh[n];
		subj[n].len = AUDIT_HASH;
		n++;
	}
	e.subject_hashes = subj;
	e.n_subject_hashes = n;
	e.subject_key_id = n ? AUDIT_SUBJECT_KEY_ID : 0;
	e.transition = &t;
	e.detail = cause;
	size_t len = 0;
	uint8_t *b = qiao_pb_pack(&e.base, &len);
	if (b && w->nent == w->capent) {
		size_t nc = w->capent ? w->capent * 2 : 32;
		uint8_t **ne = realloc(w->ents, nc * sizeof *ne);
		size_t *nl = ne ? realloc(w->elen, nc * sizeof *nl) : NULL;
		if (ne)
			w->ents = ne;
		if (nl) {
			w->elen = nl;
			w->capent = nc;
		}
	}
	if (b && w->nent < w->capent) {
		w->ents[w->nent] = b;
		w->elen[w->nent++] = len;
	} else {
		free(b);
	}
	c->dirty = 1;
	if (st)
		log_info("case.step case_id=%s step=%s from=%s to=%s msg_id=%s service=%s cause=\"%s\"", c->id,
			 s_str(st, "name"), s_step_states[sfrom], s_step_states[sto],
			 msgid_hex && msgid_hex[0] ? msgid_hex : "-", svc[0] ? svc : "-", cause);
	else
		log_info("case.state case_id=%s workflow=%s from=%s to=%s cause=\"%s\"", c->id, s_str(rec, "workflow"),
			 s_case_states[cfrom], s_case_states[cto], cause);
}

static void s_case_to(gw_wf_t *w, struct wcase *c, int to, int failure, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void s_case_to(gw_wf_t *w, struct wcase *c, int to, int failure, const char *fmt, ...)
{
	char cause[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	int from = CASE_STATE(c->rec);
	s_set_str(c->rec, "state", s_case_states[to]);
	if (s_final(to))
		s_set_int(c->rec, "closed_ms", s_now());
	s_emit(w, c, -1, from, to, 0, 0, failure, NULL, "%s", cause);
}

static void s_step_to(gw_wf_t *w, struct wcase *c, size_t i, int to, int failure, const char *msgid,
		      const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void s_step_to(gw_wf_t *w, struct wcase *c, size_t i, int to, int failure, const char *msgid,
		      const char *fmt, ...)
{
	char cause[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	int from = STEP_STATE(st);
	s_set_str(st, "state", s_step_states[to]);
	s_set_str(st, "cause", cause);
	int cs = CASE_STATE(c->rec);
	s_emit(w, c, (long)i, cs, cs, from, to, failure, msgid, "%s", cause);
}

/* The case has failed (first failure wins): record why; the next advance
 * unwinds it. */
static void s_fail_case(gw_wf_t *w, struct wcase *c, long step, const char *code, const char *reason)
{
	if (json_object_get(c->rec, "failure"))
		return;
	const json_t *st = step >= 0 ? json_array_get(json_object_get(c->rec, "steps"), (size_t)step) : NULL;
	json_object_set_new(c->rec, "failure", json_pack("{s:s, s:s, s:s, s:I}", "code", code, "reason", reason,
							 "step", st ? s_str(st, "name") : "", "time_ms",
							 (json_int_t)s_now()));
	(void)w;
}

/* ---- building calls -------------------------------------------------------- */

/* Evaluate a call's service, request and subjects into `into` (service,
 * request, subjects).  0 or -1 with err. */
static int s_build_call(const struct wf_def *d, const struct wf_call *k, const struct wf_ctx *x, json_t *into,
			char *err, size_t errlen)
{
	json_t *svc = gw_wf_eval(&k->service, x, err, errlen);
	if (!svc)
		return -1;
	if (!json_is_string(svc) || !strchr(json_string_value(svc), '/')) {
		char *t = gw_wf_text(svc);
		snprintf(err, errlen, "service '%s' is not a member's service id", t ? t : "");
		free(t);
		json_decref(svc);
		return -1;
	}
	json_t *req = k->request.kind ? gw_wf_eval(&k->request, x, err, errlen) : json_object();
	if (!req) {
		json_decref(svc);
		return -1;
	}
	ProtobufCMessage *m = NULL;
	char perr[400];
	if (qiao_pb_from_json(k->req_d, req, &m, perr, sizeof perr) != 0) {
		snprintf(err, errlen, "request %s: %s", k->req_type, perr);
		json_decref(svc);
		json_decref(req);
		return -1;
	}
	/* normalised: what the department will see, every field */
	json_t *norm = qiao_pb_to_json(m);
	protobuf_c_message_free_unpacked(m, NULL);
	json_decref(req);
	const struct wf_tpl *sub = k->subjects.kind ? &k->subjects : &d->subjects;
	json_t *sv = gw_wf_eval(sub, x, err, errlen);
	if (!sv) {
		json_decref(svc);
		json_decref(norm);
		return -1;
	}
	/* flatten: [a, [b, c]] -> [a, b, c]; drop empties and duplicates */
	json_t *flat = json_array();
	for (size_t i = 0; i < json_array_size(sv); i++) {
		json_t *e = json_array_get(sv, i);
		json_t *one = json_is_array(e) ? e : NULL;
		size_t m2 = one ? json_array_size(one) : 1;
		for (size_t j = 0; j < m2; j++) {
			json_t *s = one ? json_array_get(one, j) : e;
			const char *id = s_str(s, "id");
			if (!json_is_object(s) || !id[0])
				continue;
			int dup = 0;
			for (size_t q = 0; q < json_array_size(flat); q++)
				dup |= strcmp(s_str(json_array_get(flat, q), "id"), id) == 0;
			if (!dup && json_array_size(flat) < QIAO_MAX_SUBJECTS)
				json_array_append_new(flat, json_pack("{s:s, s:s}", "type", s_str(s, "type"), "id", id));
		}
	}
	json_decref(sv);
	json_object_set_new(into, "service", svc);
	json_object_set_new(into, "request", norm);
	json_object_set_new(into, "subjects", flat);
	return 0;
}

static void s_queue_send(gw_wf_t *w, struct wcase *c, size_t step, int comp)
{
	if (w->nsends == w->capsends) {
		size_t nc = w->capsends ? w->capsends * 2 : 16;
		struct wsend *n = realloc(w->sends, nc * sizeof *n);
		if (!n)
			return; /* the step stays RUNNING without a call: resent by the timer */
		w->sends = n;
		w->capsends = nc;
	}
	uint64_t tok = ++w->next_token;
	w->sends[w->nsends++] = (struct wsend){c, step, comp, tok};
	if (comp)
		c->live[step].ctoken = tok;
	else
		c->live[step].token = tok;
}

/* A new attempt of step i (or of its compensation): count it, persist,
 * queue the send. */
static void s_attempt(gw_wf_t *w, struct wcase *c, size_t i, int comp, const char *why)
{
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	json_t *o = comp ? json_object_get(st, "compensation") : st;
	unsigned att = (unsigned)s_int(o, "attempts") + 1;
	s_set_int(o, "attempts", att);
	s_set_int(o, "next_attempt_ms", 0);
	if (att == 1)
		s_set_int(o, "started_ms", s_now());
	if (att > 1) {
		int cs = CASE_STATE(c->rec);
		int ss = STEP_STATE(st);
		s_emit(w, c, (long)i, cs, cs, ss, ss, 0, NULL, "%s attempt %u%s%s", comp ? "compensation" : "request",
		       att, why ? ": " : "", why ? why : "");
	}
	c->dirty = 1;
	s_queue_send(w, c, i, comp);
}

/* ---- results ---------------------------------------------------------------- */

static int s_retryable_code(int code)
{
	switch (code) {
	case EC(NO_INSTANCE):
	case EC(TIMEOUT):
	case EC(PROVIDER_GONE):
	case EC(BUSY):
	case EC(INTERNAL):
	case EC(DEADLINE_EXCEEDED):
	case EC(UNAVAILABLE):
	case EC(STALE_TIME):
		return 1;
	default:
		return 0;
	}
}

/* Either retry after a backoff, or give up: 1 retry scheduled, 0 give up. */
static int s_schedule_retry(const struct wf_call *k, json_t *o, int64_t now, uint32_t hint_ms)
{
	unsigned att = (unsigned)s_int(o, "attempts");
	if (k->retries && att > k->retries)
		return 0;
	int64_t b = k->backoff_ms;
	for (unsigned i = 1; i < att && b < k->max_backoff_ms; i++)
		b *= 2;
	if (b > k->max_backoff_ms)
		b = k->max_backoff_ms;
	if (hint_ms > b)
		b = hint_ms;
	int64_t first = s_int(o, "started_ms");
	if (k->deadline_ms && now + b > first + k->deadline_ms)
		return 0;
	s_set_int(o, "next_attempt_ms", now + b);
	return 1;
}

/* Hex of a message id; 0 when it is all zero (never sealed). */
static int s_msgid_hex(const uint8_t *id, char out[2 * QIAO_MSGID_LEN + 1])
{
	int any = 0;
	for (size_t i = 0; i < QIAO_MSGID_LEN; i++)
		any |= id[i];
	qiao_hex(id, QIAO_MSGID_LEN, out);
	return any;
}

static json_t *s_error_json(const struct qiao_result *r)
{
	if (r->kind == QIAO_RESULT_ERROR)
		return json_pack("{s:i, s:s, s:s, s:s, s:s}", "code", r->error.code, "name", r->error.name, "message",
				 r->error.message ? r->error.message : "", "field", r->error.field ? r->error.field : "",
				 "origin", r->error.origin ? r->error.origin : "");
	return json_pack("{s:i, s:s, s:s}", "code", 0, "name", qiao_strerror(r->status), "message",
			 r->error.message ? r->error.message : "");
}

/* The answer to a step's request. */
static void s_on_step_result(gw_wf_t *w, struct wcase *c, size_t i, struct qiao_result *r)
{
	const struct wf_step *ds = &c->def->steps[i];
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	int64_t now = s_now();
	char rid[2 * QIAO_MSGID_LEN + 1];
	if (s_msgid_hex(r->request_id, rid))
		s_set_str(st, "request_message_id", rid);
	int compensating = json_object_get(c->rec, "failure") != NULL;
	if (r->status == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		char aid[2 * QIAO_MSGID_LEN + 1] = "";
		if (r->hdr && r->hdr->message_id.len == QIAO_MSGID_LEN)
			s_msgid_hex(r->hdr->message_id.data, aid);
		s_set_str(st, "response_message_id", aid);
		ProtobufCMessage *m = protobuf_c_message_unpack(ds->call.resp_d, NULL, r->body_len, r->body);
		if (!m || !r->body_type || strcmp(r->body_type, ds->call.resp_type) != 0) {
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
			s_set_int(st, "finished_ms", now);
			json_object_set_new(st, "error", json_pack("{s:i, s:s, s:s}", "code", 0, "name", "BAD_REPLY",
								   "message", "the reply is not a valid response"));
			s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
			json_object_set_new(st, "unknown", json_true());
			s_step_to(w, c, i, SS(FAILED), 1, aid, "the reply is not a %s", ds->call.resp_type);
			s_fail_case(w, c, (long)i, ds->failure_code ? ds->failure_code : c->def->default_failure_code,
				    "a department's reply could not be read");
			return;
		}
		json_t *reply = qiao_pb_to_json(m);
		protobuf_c_message_free_unpacked(m, NULL);
		json_t *casev = s_casev(c->rec);
		struct wf_ctx x;
		s_ctx(&x, c->rec, casev, reply);
		char err[512];
		int failed = 0;
		for (size_t f = 0; f < ds->call.nfail && !failed; f++) {
			int h = gw_wf_cond(&ds->call.fail[f], &x, err, sizeof err);
			if (h != 0)
				failed = h > 0 ? 1 : -1;
		}
		json_object_set_new(st, "reply", json_incref(reply));
		s_set_int(st, "finished_ms", now);
		s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
		if (failed) {
			char reason[800];
			if (failed < 0) {
				snprintf(reason, sizeof reason, "fail_when could not be evaluated: %s", err);
			} else if (ds->call.fail_reason.kind) {
				json_t *t = gw_wf_eval(&ds->call.fail_reason, &x, err, sizeof err);
				char *s = t ? gw_wf_text(t) : NULL;
				snprintf(reason, sizeof reason, "%s", s ? s : err);
				free(s);
				json_decref(t);
			} else {
				snprintf(reason, sizeof reason, "%s refused", ds->name);
			}
			s_step_to(w, c, i, SS(FAILED), 1, aid, "%s", reason);
			s_fail_case(w, c, (long)i, ds->failure_code ? ds->failure_code : c->def->default_failure_code,
				    reason);
		} else {
			json_t *vars = json_object_get(c->rec, "vars");
			int bad = 0;
			for (size_t o = 0; o < ds->nout; o++) {
				json_t *v = gw_wf_eval_ref(&ds->out_refs[o], &x, err, sizeof err);
				json_object_set_new(vars, ds->out_names[o], v ? v : json_null());
				bad |= v == NULL;
			}
			(void)bad; /* a reply field that is absent is an unset message: null */
			s_step_to(w, c, i, SS(DONE), 0, aid, "%s answered", s_str(st, "service"));
		}
		json_decref(reply);
		json_decref(casev);
		return;
	}
	/* an ERROR, or no trusted answer */
	json_object_set_new(st, "error", s_error_json(r));
	int retry;
	int unknown;
	if (r->status == 0) {
		retry = s_retryable_code(r->error.code);
		/* NO_INSTANCE, BUSY ...: the request reached no department */
		unknown = r->error.code == EC(TIMEOUT) || r->error.code == EC(PROVIDER_GONE) ||
			  r->error.code == EC(DEADLINE_EXCEEDED) || r->error.code == EC(UNAVAILABLE);
	} else {
		retry = r->status != QIAO_EFIELD && r->status != QIAO_EINVAL && r->status != QIAO_EIDENT;
		unknown = r->status != QIAO_EBUSY && r->status != QIAO_ECLOSED;
	}
	if (unknown)
		json_object_set_new(st, "unknown", json_true());
	const char *what = r->status == 0 ? r->error.name : qiao_strerror(r->status);
	/* while unwinding, a step that may have to be undone is still asked
	 * again (it is idempotent: the department answers from its records),
	 * so that its outcome, and what to undo, is known */
	int ask_again = !compensating || (ds->has_comp && ds->call.idempotent);
	if (retry && ask_again && s_schedule_retry(&ds->call, st, now, r->error.retry_after_ms)) {
		int cs = CASE_STATE(c->rec);
		s_emit(w, c, (long)i, cs, cs, SS(RUNNING), SS(RUNNING), 1, NULL, "%s: %s; retry in %lld ms", what,
		       r->error.message ? r->error.message : "",
		       (long long)(s_int(st, "next_attempt_ms") - now));
		return;
	}
	s_set_int(st, "finished_ms", now);
	s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
	char reason[900];
	snprintf(reason, sizeof reason, "%s: %s %s%s", ds->name, what, r->error.message ? r->error.message : "",
		 retry ? (compensating ? " (the case is being unwound: not retried)" : " (gave up retrying)") : "");
	s_step_to(w, c, i, SS(FAILED), 1, NULL, "%s", reason);
	/* the step's failure_code names its business refusal (fail_when); an
	 * ERROR is the workflow's general failure */
	s_fail_case(w, c, (long)i, c->def->default_failure_code, reason);
}

/* The answer to a compensation. */
static void s_on_comp_result(gw_wf_t *w, struct wcase *c, size_t i, struct qiao_result *r)
{
	const struct wf_step *ds = &c->def->steps[i];
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	json_t *cp = json_object_get(st, "compensation");
	int64_t now = s_now();
	char rid[2 * QIAO_MSGID_LEN + 1];
	if (s_msgid_hex(r->request_id, rid))
		s_set_str(cp, "request_message_id", rid);
	if (r->status == 0 && r->kind == QIAO_RESULT_RESPONSE) {
		char aid[2 * QIAO_MSGID_LEN + 1] = "";
		if (r->hdr && r->hdr->message_id.len == QIAO_MSGID_LEN)
			s_msgid_hex(r->hdr->message_id.data, aid);
		s_set_str(cp, "response_message_id", aid);
		ProtobufCMessage *m = protobuf_c_message_unpack(ds->comp.resp_d, NULL, r->body_len, r->body);
		json_t *reply = m ? qiao_pb_to_json(m) : NULL;
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		int failed = !reply;
		char err[512] = "the reply does not decode";
		if (reply) {
			json_t *casev = s_casev(c->rec);
			struct wf_ctx x;
			s_ctx(&x, c->rec, casev, reply);
			for (size_t f = 0; f < ds->comp.nfail && !failed; f++)
				failed = gw_wf_cond(&ds->comp.fail[f], &x, err, sizeof err) != 0;
			if (failed && ds->comp.fail_reason.kind) {
				json_t *t = gw_wf_eval(&ds->comp.fail_reason, &x, err, sizeof err);
				char *s = t ? gw_wf_text(t) : NULL;
				if (s)
					snprintf(err, sizeof err, "%s", s);
				free(s);
				json_decref(t);
			} else if (failed) {
				snprintf(err, sizeof err, "%s refused to undo %s", s_str(cp, "service"), ds->name);
			}
			json_object_set_new(cp, "reply", reply);
			json_decref(casev);
		}
		s_set_int(cp, "finished_ms", now);
		if (failed) {
			s_set_str(cp, "state", "FAILED");
			s_step_to(w, c, i, SS(COMPENSATING), 1, aid, "compensation failed: %s", err);
		} else {
			s_set_str(cp, "state", "DONE");
			s_step_to(w, c, i, SS(COMPENSATED), 0, aid, "undone by %s", s_str(cp, "service"));
		}
		return;
	}
	json_object_set_new(cp, "error", s_error_json(r));
	if (r->status == 0 && r->error.code == EC(NOT_FOUND)) {
		/* the department has nothing to undo: the step never took effect */
		s_set_int(cp, "finished_ms", now);
		s_set_str(cp, "state", "DONE");
		s_step_to(w, c, i, SS(COMPENSATED), 0, NULL, "nothing to undo (%s: NOT_FOUND %s)", s_str(cp, "service"),
			  r->error.message ? r->error.message : "");
		return;
	}
	int retry = r->status == 0 ? s_retryable_code(r->error.code)
				   : r->status != QIAO_EFIELD && r->status != QIAO_EINVAL && r->status != QIAO_EIDENT;
	const char *what = r->status == 0 ? r->error.name : qiao_strerror(r->status);
	if (retry && s_schedule_retry(&ds->comp, cp, now, r->error.retry_after_ms)) {
		int cs = CASE_STATE(c->rec);
		s_emit(w, c, (long)i, cs, cs, SS(COMPENSATING), SS(COMPENSATING), 1, NULL,
		       "compensation %s: %s; retry in %lld ms", what, r->error.message ? r->error.message : "",
		       (long long)(s_int(cp, "next_attempt_ms") - now));
		return;
	}
	s_set_int(cp, "finished_ms", now);
	s_set_str(cp, "state", "FAILED");
	s_step_to(w, c, i, SS(COMPENSATING), 1, NULL, "compensation failed: %s %s", what,
		  r->error.message ? r->error.message : "");
}

/* ---- advancing a case ------------------------------------------------------- */

/* Start step i: skip it, or build its request and send it. */
static void s_start_step(gw_wf_t *w, struct wcase *c, size_t i)
{
	const struct wf_step *ds = &c->def->steps[i];
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	json_t *casev = s_casev(c->rec);
	struct wf_ctx x;
	s_ctx(&x, c->rec, casev, NULL);
	char err[600];
	for (size_t k = 0; k < ds->nwhen; k++) {
		int h = gw_wf_cond(&ds->when[k], &x, err, sizeof err);
		if (h < 0) {
			s_step_to(w, c, i, SS(FAILED), 1, NULL, "when: %s", err);
			s_fail_case(w, c, (long)i, c->def->default_failure_code, err);
			json_decref(casev);
			return;
		}
		if (h == 0) {
			s_set_int(st, "finished_ms", s_now());
			s_step_to(w, c, i, SS(SKIPPED), 0, NULL, "not needed: %s does not hold", ds->when[k].text);
			json_decref(casev);
			return;
		}
	}
	if (s_build_call(c->def, &ds->call, &x, st, err, sizeof err) != 0) {
		s_set_int(st, "finished_ms", s_now());
		s_step_to(w, c, i, SS(FAILED), 1, NULL, "the request could not be built: %s", err);
		s_fail_case(w, c, (long)i, c->def->default_failure_code, err);
		json_decref(casev);
		return;
	}
	json_decref(casev);
	if (ds->call.deadline_ms)
		s_set_int(st, "deadline_ms", s_now() + ds->call.deadline_ms);
	s_step_to(w, c, i, SS(RUNNING), 0, NULL, "request to %s", s_str(st, "service"));
	s_attempt(w, c, i, 0, NULL);
}

static void s_start_comp(gw_wf_t *w, struct wcase *c, size_t i)
{
	const struct wf_step *ds = &c->def->steps[i];
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), i);
	json_t *cp = json_object();
	json_object_set_new(st, "compensation", cp);
	s_set_str(cp, "state", "RUNNING");
	json_t *casev = s_casev(c->rec);
	struct wf_ctx x;
	s_ctx(&x, c->rec, casev, json_object_get(st, "reply"));
	char err[600];
	int rc = s_build_call(c->def, &ds->comp, &x, cp, err, sizeof err);
	json_decref(casev);
	if (rc != 0) {
		s_set_str(cp, "state", "FAILED");
		json_object_set_new(cp, "error", json_pack("{s:i, s:s, s:s}", "code", 0, "name", "DEFINITION",
							   "message", err));
		s_step_to(w, c, i, SS(COMPENSATING), 1, NULL, "the compensation could not be built: %s", err);
		return;
	}
	s_step_to(w, c, i, SS(COMPENSATING), 0, NULL, "undo with %s", s_str(cp, "service"));
	s_attempt(w, c, i, 1, NULL);
}

/* Advance a running case as far as it goes without waiting. */
static void s_advance(gw_wf_t *w, struct wcase *c)
{
	json_t *steps = json_object_get(c->rec, "steps");
	size_t n = c->def->nsteps;
	int64_t now = s_now();
	int cs = CASE_STATE(c->rec);
	if (s_final(cs))
		return;
	if (cs == CS(CREATED))
		s_case_to(w, c, CS(RUNNING), 0, "started");
	int64_t dl = s_int(c->rec, "deadline_ms");
	if (dl && now >= dl && !json_object_get(c->rec, "failure"))
		s_fail_case(w, c, -1, c->def->default_failure_code, "the case passed its deadline");

	if (!json_object_get(c->rec, "failure")) {
		/* forward: start what is ready, resend what is due */
		for (size_t i = 0; i < n; i++) {
			json_t *st = json_array_get(steps, i);
			int ss = STEP_STATE(st);
			if (ss == SS(RUNNING) && !c->live[i].token) {
				int64_t sd = s_int(st, "deadline_ms");
				if (sd && now >= sd) {
					s_set_int(st, "finished_ms", now);
					s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
					s_step_to(w, c, i, SS(FAILED), 1, NULL, "the step passed its deadline");
					s_fail_case(w, c, (long)i,
						    c->def->steps[i].failure_code ? c->def->steps[i].failure_code
										  : c->def->default_failure_code,
						    "a step passed its deadline");
					break;
				}
				if (s_int(st, "next_attempt_ms") <= now)
					s_attempt(w, c, i, 0, s_int(st, "next_attempt_ms") ? "after backoff" : "resent");
				continue;
			}
			if (ss != SS(PENDING))
				continue;
			int ready = 1;
			for (size_t a = 0; a < c->def->steps[i].nafter; a++) {
				int as = STEP_STATE(json_array_get(steps, c->def->steps[i].after[a]));
				ready &= as == SS(DONE) || as == SS(SKIPPED);
			}
			if (ready)
				s_start_step(w, c, i);
			if (json_object_get(c->rec, "failure"))
				break;
		}
		if (!json_object_get(c->rec, "failure")) {
			int all = 1;
			for (size_t i = 0; i < n; i++) {
				int ss = STEP_STATE(json_array_get(steps, i));
				all &= ss == SS(DONE) || ss == SS(SKIPPED);
			}
			if (all)
				s_case_to(w, c, CS(COMPLETED), 0, "every step done");
			return;
		}
	}

	/* unwinding */
	const json_t *f = json_object_get(c->rec, "failure");
	if (CASE_STATE(c->rec) != CS(COMPENSATING))
		s_case_to(w, c, CS(COMPENSATING), 1, "%s: %s", s_str(f, "code"), s_str(f, "reason"));
	int busy = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *st = json_array_get(steps, i);
		int ss = STEP_STATE(st);
		if (ss == SS(PENDING)) {
			s_step_to(w, c, i, SS(SKIPPED), 0, NULL, "not run: the case is being unwound");
		} else if (ss == SS(RUNNING)) {
			const struct wf_step *ds = &c->def->steps[i];
			if (c->live[i].token) {
				busy = 1; /* its answer decides whether it needs undoing */
			} else if (ds->has_comp && ds->call.idempotent) {
				/* asked again until its outcome is known */
				int64_t sd = s_int(st, "deadline_ms");
				if (sd && now >= sd) {
					s_set_int(st, "finished_ms", now);
					s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
					s_step_to(w, c, i, SS(FAILED), 1, NULL, "the step passed its deadline while the case "
										"was being unwound");
				} else {
					if (s_int(st, "next_attempt_ms") <= now)
						s_attempt(w, c, i, 0, "to learn its outcome before undoing it");
					busy = 1;
				}
			} else {
				/* waiting to retry: abandoned; if it may have taken effect, it is undone */
				s_set_int(st, "finished_ms", now);
				s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
				json_object_set_new(st, "unknown", json_true());
				s_step_to(w, c, i, SS(FAILED), 1, NULL, "abandoned: the case is being unwound");
			}
		} else if (ss == SS(COMPENSATING)) {
			json_t *cp = json_object_get(st, "compensation");
			const char *cst = s_str(cp, "state");
			if (strcmp(cst, "FAILED") == 0) {
				s_case_to(w, c, CS(FAILED), 1,
					  "the compensation of %s failed: an operator must act (see the timeline)",
					  s_str(st, "name"));
				return;
			}
			if (c->live[i].ctoken) {
				busy = 1;
			} else if (s_int(cp, "next_attempt_ms") <= now) {
				s_attempt(w, c, i, 1, s_int(cp, "next_attempt_ms") ? "after backoff" : "resent");
				busy = 1;
			} else {
				busy = 1;
			}
		}
	}
	if (busy)
		return;
	/* past a pivot (e.g. the registration) nothing before it may be undone */
	for (size_t i = 0; i < n; i++) {
		if (c->def->steps[i].pivot && STEP_STATE(json_array_get(steps, i)) == SS(DONE)) {
			s_case_to(w, c, CS(FAILED), 1,
				  "%s failed after %s, which cannot be undone: an operator must settle the case (%s)",
				  s_str(f, "step")[0] ? s_str(f, "step") : "the case", c->def->steps[i].name,
				  s_str(f, "reason"));
			return;
		}
	}
	/* the next step to undo: the latest finished one that took (or may have taken) effect */
	long pick = -1;
	int64_t best = -1;
	for (size_t i = 0; i < n; i++) {
		json_t *st = json_array_get(steps, i);
		int ss = STEP_STATE(st);
		if (!c->def->steps[i].has_comp || json_object_get(st, "compensation"))
			continue;
		int took = ss == SS(DONE) || (ss == SS(FAILED) && json_is_true(json_object_get(st, "unknown")) &&
					     s_int(st, "attempts") > 0);
		if (took && s_int(st, "done_seq") > best) {
			best = s_int(st, "done_seq");
			pick = (long)i;
		}
	}
	if (pick >= 0) {
		s_start_comp(w, c, (size_t)pick);
		return;
	}
	s_case_to(w, c, CS(COMPENSATED), 1, "unwound: %s", s_str(f, "code"));
}

/* ---- commits ---------------------------------------------------------------- */

static int s_flush_apply(qiao_txn_t *txn, void *arg)
{
	struct wflush *f = arg;
	int rc = 0;
	for (size_t i = 0; i < f->nrec && !rc; i++)
		rc = qiao_store_put(txn, f->cases, f->keys[i], strlen(f->keys[i]), f->vals[i], strlen(f->vals[i]), 0);
	for (size_t i = 0; i < f->nmeta && !rc; i++)
		rc = qiao_store_put(txn, f->meta, f->mkeys[i], strlen(f->mkeys[i]), f->mvals[i], strlen(f->mvals[i]), 0);
	for (size_t i = 0; i < f->nent && !rc; i++) {
		Qiao__V1__AuditEntry *e = qiao__v1__audit_entry__unpack(NULL, f->elen[i], f->ents[i]);
		if (!e)
			return QIAO_ENOMEM;
		char *gw = e->gateway; /* append points it at the log's own string */
		rc = audit_log_append(f->audit, txn, e, NULL);
		e->gateway = gw;
		qiao__v1__audit_entry__free_unpacked(e, NULL);
	}
	return rc;
}

static void s_flush_done(void *arg, int rc)
{
	struct wflush *f = arg;
	pthread_mutex_lock(&f->mu);
	f->rc = rc;
	f->done = 1;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Commit every dirty case, the counters and the turn's entries.  0 or an error. */
static int s_commit(gw_wf_t *w)
{
	size_t nd = 0;
	for (struct wcase *c = w->cases; c; c = c->next)
		nd += c->dirty;
	size_t nm = json_object_size(w->counters_dirty);
	if (!nd && !nm && !w->nent)
		return 0;
	struct wflush f = {.cases = w->tcase, .meta = w->tmeta, .audit = w->audit};
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	f.keys = calloc(nd + 1, sizeof *f.keys);
	f.vals = calloc(nd + 1, sizeof *f.vals);
	f.mkeys = calloc(nm + 1, sizeof *f.mkeys);
	f.mvals = calloc(nm + 1, sizeof *f.mvals);
	int rc = f.keys && f.vals && f.mkeys && f.mvals ? 0 : QIAO_ENOMEM;
	for (struct wcase *c = w->cases; c && !rc; c = c->next) {
		if (!c->dirty)
			continue;
		f.keys[f.nrec] = c->id;
		f.vals[f.nrec] = json_dumps(c->rec, JSON_COMPACT | JSON_SORT_KEYS);
		if (!f.vals[f.nrec])
			rc = QIAO_ENOMEM;
		f.nrec++;
	}
	const char *k;
	json_t *v;
	json_object_foreach(w->counters_dirty, k, v)
	{
		if (rc)
			break;
		f.mkeys[f.nmeta] = (char *)k;
		f.mvals[f.nmeta] = gw_wf_text(v);
		if (!f.mvals[f.nmeta])
			rc = QIAO_ENOMEM;
		f.nmeta++;
	}
	f.ents = w->ents;
	f.elen = w->elen;
	f.nent = w->nent;
	if (!rc)
		rc = qiao_gc_submit(w->gc, s_flush_apply, &f, s_flush_done, &f);
	if (!rc) {
		pthread_mutex_lock(&f.mu);
		while (!f.done)
			pthread_cond_wait(&f.cv, &f.mu);
		pthread_mutex_unlock(&f.mu);
		rc = f.rc;
	}
	for (size_t i = 0; i < f.nrec; i++) {
		struct wcase *c = NULL;
		for (c = w->cases; c && c->id != f.keys[i]; c = c->next)
			;
		if (!rc && c) {
			free(c->committed);
			c->committed = f.vals[i];
			f.vals[i] = NULL;
			c->dirty = 0;
		}
		free(f.vals[i]);
	}
	for (size_t i = 0; i < f.nmeta; i++)
		free(f.mvals[i]);
	free(f.keys);
	free(f.vals);
	free(f.mkeys);
	free(f.mvals);
	pthread_mutex_destroy(&f.mu);
	pthread_cond_destroy(&f.cv);
	if (!rc) {
		atomic_fetch_add(&w->audited, w->nent);
		json_object_clear(w->counters_dirty);
	}
	return rc;
}

static void s_case_free(struct wcase *c)
{
	if (!c)
		return;
	json_decref(c->rec);
	free(c->live);
	free(c->committed);
	free(c);
}

/* After a failed commit: every case as last committed, nothing sent. */
static void s_rollback(gw_wf_t *w)
{
	struct wcase **pp = &w->cases;
	while (*pp) {
		struct wcase *c = *pp;
		if (c->dirty) {
			json_t *old = c->committed ? json_loads(c->committed, 0, NULL) : NULL;
			if (!old) {
				/* never committed: the case does not exist */
				*pp = c->next;
				w->nopen--;
				s_case_free(c);
				continue;
			}
			json_decref(c->rec);
			c->rec = old;
			c->dirty = 0;
		}
		for (size_t i = 0; i < c->def->nsteps; i++) {
			for (size_t s = 0; s < w->nsends; s++) {
				if (w->sends[s].c != c || w->sends[s].step != i)
					continue;
				if (w->sends[s].comp)
					c->live[i].ctoken = 0;
				else
					c->live[i].token = 0;
			}
		}
		pp = &c->next;
	}
	/* the counters: re-read from the store when next needed */
	json_object_clear(w->counters);
	json_object_clear(w->counters_dirty);
}

/* ---- sending ------------------------------------------------------------------ */

static void s_call_cb(void *arg, struct qiao_result *res)
{
	struct wres *r = arg;
	r->res = res;
	gw_mbox_post(r->w->mb, &r->link);
}

static int s_subjects(const json_t *a, struct qiao_subject *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(a) && n < max; i++) {
		const json_t *s = json_array_get(a, i);
		int t = s_subject_type(s_str(s, "type"));
		if (!t)
			continue;
		out[n].type = t == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID ? QIAO_SUBJECT_RESIDENT_ID : QIAO_SUBJECT_USCC;
		out[n].id = s_str(s, "id");
		n++;
	}
	return (int)n;
}

static void s_send(gw_wf_t *w, const struct wsend *s)
{
	struct wcase *c = s->c;
	const struct wf_step *ds = &c->def->steps[s->step];
	const struct wf_call *k = s->comp ? &ds->comp : &ds->call;
	json_t *st = json_array_get(json_object_get(c->rec, "steps"), s->step);
	json_t *o = s->comp ? json_object_get(st, "compensation") : st;
	struct wres *r = calloc(1, sizeof *r);
	ProtobufCMessage *m = NULL;
	char err[400] = "";
	if (!r) {
		/* stays RUNNING without a call: resent on a later turn */
		if (s->comp)
			c->live[s->step].ctoken = 0;
		else
			c->live[s->step].token = 0;
		return;
	}
	r->w = w;
	r->token = s->token;
	int rc = qiao_pb_from_json(k->req_d, json_object_get(o, "request"), &m, err, sizeof err);
	size_t len = 0;
	uint8_t *body = rc == 0 ? qiao_pb_pack(m, &len) : NULL;
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	struct qiao_subject subj[QIAO_MAX_SUBJECTS];
	int ns = s_subjects(json_object_get(o, "subjects"), subj, QIAO_MAX_SUBJECTS);
	struct qiao_call call = {
		.service = s_str(o, "service"),
		.user_id = s_str(c->rec, "user"),
		.purpose = s_str(c->rec, "purpose"),
		.legal_basis = c->def->legal_basis,
		.case_id = c->id,
		.subjects = subj,
		.n_subjects = (size_t)ns,
		.body_type = k->req_type,
		.body = body,
		.body_len = len,
		.timeout_ms = (uint32_t)k->timeout_ms,
	};
	if (body)
		rc = qiao_adapter_call_async(w->ad, &call, s_call_cb, r, err, sizeof err);
	else if (!rc)
		rc = QIAO_ENOMEM;
	free(body);
	if (!s->comp)
		s_fault(ds->name, 1);
	if (rc != 0) {
		/* refused at once: an answer like any other */
		struct qiao_result *fake = calloc(1, sizeof *fake);
		if (!fake) {
			free(r);
			return;
		}
		fake->status = rc;
		fake->kind = QIAO_RESULT_LOCAL;
		fake->error.message = strdup(err[0] ? err : qiao_strerror(rc));
		fake->error.name = "";
		r->res = fake;
		r->token = s->token | (1ull << 63); /* marks a local fake (freed by hand) */
		gw_mbox_post(w->mb, &r->link);
	}
}

static void s_result_free(struct wres *r)
{
	if (r->token >> 63) {
		free((char *)r->res->error.message);
		free(r->res);
	} else {
		qiao_result_free(&r->res);
	}
	free(r);
}

static void s_on_result(gw_wf_t *w, struct wres *r)
{
	uint64_t tok = r->token & ~(1ull << 63);
	if (w->ad == NULL || (r->res && r->res->status == QIAO_ECLOSED && atomic_load(&w->stop)))
		return; /* shutting down: the step stays RUNNING and is resent at the next start */
	for (struct wcase *c = w->cases; c; c = c->next) {
		for (size_t i = 0; i < c->def->nsteps; i++) {
			if (c->live[i].token == tok) {
				s_fault(c->def->steps[i].name, 2);
				c->live[i].token = 0;
				s_on_step_result(w, c, i, r->res);
				return;
			}
			if (c->live[i].ctoken == tok) {
				c->live[i].ctoken = 0;
				s_on_comp_result(w, c, i, r->res);
				return;
			}
		}
	}
}

/* ---- loading ------------------------------------------------------------------- */

static struct wcase *s_case_new(gw_wf_t *w, const struct wf_def *d, const char *id, json_t *rec)
{
	struct wcase *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->live = calloc(d->nsteps ? d->nsteps : 1, sizeof *c->live);
	if (!c->live) {
		free(c);
		return NULL;
	}
	snprintf(c->id, sizeof c->id, "%s", id);
	c->def = d;
	c->rec = rec;
	c->next = w->cases;
	w->cases = c;
	w->nopen++;
	return c;
}

struct load_arg {
	gw_wf_t *w;
	size_t loaded, bad;
};

static int s_load_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)exp;
	struct load_arg *la = arg;
	gw_wf_t *w = la->w;
	char id[CASE_ID_MAX];
	if (kl >= sizeof id)
		return 0;
	memcpy(id, k, kl);
	id[kl] = '\0';
	json_t *rec = json_loadb(v, vl, 0, NULL);
	if (!rec) {
		log_error("case.load.failed case_id=%s reason=\"the record is not JSON\"", id);
		la->bad++;
		return 0;
	}
	if (s_final(CASE_STATE(rec))) {
		json_decref(rec);
		return 0;
	}
	const struct wf_def *d = s_def(w, s_str(rec, "workflow"));
	if (!d || (unsigned)s_int(rec, "version") != d->version ||
	    json_array_size(json_object_get(rec, "steps")) != d->nsteps) {
		log_error("case.load.failed case_id=%s workflow=%s version=%lld reason=\"that definition is not "
			  "loaded (the case stays as it is until it is)\"",
			  id, s_str(rec, "workflow"), (long long)s_int(rec, "version"));
		la->bad++;
		json_decref(rec);
		return 0;
	}
	struct wcase *c = s_case_new(w, d, id, rec);
	if (!c) {
		json_decref(rec);
		return QIAO_ENOMEM;
	}
	c->committed = strndup(v, vl);
	la->loaded++;
	return 0;
}

/* After a restart: what was in flight when the gateway stopped. */
static void s_resume(gw_wf_t *w, struct wcase *c)
{
	json_t *steps = json_object_get(c->rec, "steps");
	int resumed = 0;
	for (size_t i = 0; i < c->def->nsteps; i++) {
		json_t *st = json_array_get(steps, i);
		int ss = STEP_STATE(st);
		if (ss == SS(RUNNING) && s_int(st, "next_attempt_ms") == 0) {
			resumed = 1;
			if (!c->def->steps[i].call.idempotent) {
				s_set_int(st, "finished_ms", s_now());
				s_set_int(st, "done_seq", s_int(c->rec, "revision") + 1);
				json_object_set_new(st, "unknown", json_true());
				s_step_to(w, c, i, SS(FAILED), 1, NULL,
					  "the gateway restarted with this request in flight; %s is not idempotent, so it "
					  "is not sent again: outcome unknown",
					  s_str(st, "service"));
				s_fail_case(w, c, (long)i, c->def->default_failure_code,
					    "a non-idempotent step's outcome is unknown after a restart");
			}
			/* idempotent: resent by s_advance (next_attempt_ms 0) */
		}
		if (ss == SS(COMPENSATING)) {
			json_t *cp = json_object_get(st, "compensation");
			if (strcmp(s_str(cp, "state"), "RUNNING") == 0 && s_int(cp, "next_attempt_ms") == 0)
				resumed = 1;
		}
	}
	if (resumed) {
		int cs = CASE_STATE(c->rec);
		s_emit(w, c, -1, cs, cs, 0, 0, 0, NULL, "resumed after a gateway restart");
	}
}

/* ---- case ids -------------------------------------------------------------------- */

static int s_new_case_id(gw_wf_t *w, const struct wf_def *d, char *out, size_t n)
{
	time_t t = (time_t)(s_now() / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	char key[64];
	snprintf(key, sizeof key, "seq/%s-%04d%02d%02d", d->case_prefix, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	json_t *v = json_object_get(w->counters, key);
	long long last = 0;
	if (v) {
		last = json_integer_value(v);
	} else {
		qiao_txn_t *txn = NULL;
		if (qiao_txn_begin(w->st, 0, &txn) != 0)
			return QIAO_ESTOREBUSY;
		void *val = NULL;
		size_t vl = 0;
		int rc = qiao_store_get(txn, w->tmeta, key, strlen(key), &val, &vl, NULL);
		if (rc == 0) {
			char buf[32];
			snprintf(buf, sizeof buf, "%.*s", (int)(vl < 31 ? vl : 31), (char *)val);
			last = atoll(buf);
		}
		free(val);
		qiao_txn_abort(&txn);
		if (rc != 0 && rc != QIAO_ENOTFOUND)
			return rc;
	}
	if (last >= 999999)
		return QIAO_ESTORELIMIT;
	last++;
	json_object_set_new(w->counters, key, json_integer(last));
	json_object_set_new(w->counters_dirty, key, json_integer(last));
	char id[160];
	snprintf(id, sizeof id, "%.16s-%04d%02d%02d-%06d", d->case_prefix, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 (int)last);
	if (strlen(id) >= n)
		return QIAO_ETOOBIG;
	memcpy(out, id, strlen(id) + 1);
	return 0;
}

/* ---- the control socket ------------------------------------------------------------- */

static json_t *s_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *s_err(const char *fmt, ...)
{
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", m);
}

static json_t *s_read_case(gw_wf_t *w, const char *id)
{
	for (struct wcase *c = w->cases; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c->committed ? json_loads(c->committed, 0, NULL) : NULL;
	qiao_txn_t *txn = NULL;
	if (qiao_txn_begin(w->st, 0, &txn) != 0)
		return NULL;
	void *v = NULL;
	size_t vl = 0;
	json_t *rec = NULL;
	if (strlen(id) < CASE_ID_MAX && qiao_store_get(txn, w->tcase, id, strlen(id), &v, &vl, NULL) == 0)
		rec = json_loadb(v, vl, 0, NULL);
	free(v);
	qiao_txn_abort(&txn);
	return rec;
}

static struct wcase *s_open_case(gw_wf_t *w, const char *id)
{
	for (struct wcase *c = w->cases; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static json_t *s_summary(const json_t *rec)
{
	json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "case_id", s_str(rec, "case_id"), "workflow",
			      s_str(rec, "workflow"), "state", s_str(rec, "state"), "user", s_str(rec, "user"),
			      "created_ms", (json_int_t)s_int(rec, "created_ms"), "updated_ms",
			      (json_int_t)s_int(rec, "updated_ms"), "client_ref", s_str(rec, "client_ref"));
	const json_t *f = json_object_get(rec, "failure");
	if (f)
		json_object_set(s, "failure", (json_t *)f);
	size_t done = 0, n = json_array_size(json_object_get(rec, "steps"));
	for (size_t i = 0; i < n; i++) {
		const char *ss = s_str(json_array_get(json_object_get(rec, "steps"), i), "state");
		done += strcmp(ss, "DONE") == 0 || strcmp(ss, "SKIPPED") == 0;
	}
	s_set_int(s, "steps", (int64_t)n);
	s_set_int(s, "steps_done", (int64_t)done);
	return s;
}

struct list_arg {
	json_t *out;
	const char *wf, *state;
	int64_t since, until;
	size_t limit;
};

static int s_list_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)k;
	(void)kl;
	(void)exp;
	struct list_arg *la = arg;
	json_t *rec = json_loadb(v, vl, 0, NULL);
	if (!rec)
		return 0;
	int64_t cr = s_int(rec, "created_ms");
	if ((!la->wf || strcmp(la->wf, s_str(rec, "workflow")) == 0) &&
	    (!la->state || strcasecmp(la->state, s_str(rec, "state")) == 0 ||
	     (strcasecmp(la->state, "open") == 0 && !s_final(CASE_STATE(rec)))) &&
	    (!la->since || cr >= la->since) && (!la->until || cr < la->until))
		json_array_append_new(la->out, s_summary(rec));
	json_decref(rec);
	return la->limit && json_array_size(la->out) >= la->limit ? 1 : 0;
}

struct tl_arg {
	json_t *out;
	size_t n;
};

static const char *s_event_name(int t)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&qiao__v1__audit_event_type__descriptor, t);
	return v ? v->name + strlen("AUDIT_EVENT_TYPE_") : "UNKNOWN";
}

static int s_tl_cb(void *arg, uint64_t index, const uint8_t *bytes, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)bytes;
	(void)len;
	struct tl_arg *t = arg;
	char mid[33] = "", irt[33] = "";
	if (e->message_id.len == QIAO_MSGID_LEN)
		qiao_hex(e->message_id.data, QIAO_MSGID_LEN, mid);
	if (e->in_reply_to.len == QIAO_MSGID_LEN)
		qiao_hex(e->in_reply_to.data, QIAO_MSGID_LEN, irt);
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(&qiao__v1__error_code__descriptor,
									     (int)e->error_code);
	json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "index",
			      (json_int_t)index, "time_ms", (json_int_t)e->time_ms, "event",
			      s_event_name((int)e->event_type), "outcome",
			      e->outcome == QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_FAILURE ? "FAILURE" : "SUCCESS",
			      "requester", e->requester, "provider", e->provider, "service", e->service, "message_id",
			      mid, "in_reply_to", irt, "error_code", e->error_code && ev ? ev->name : "", "reason",
			      e->refusal_reason, "detail", e->detail);
	if (e->transition) {
		const Qiao__V1__CaseTransition *x = e->transition;
		json_t *tj = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)x->seq, "step", x->step, "cause",
				       x->cause, "actor", x->actor);
		if (x->step[0]) {
			s_set_str(tj, "from", s_step_states[x->step_from < 8 ? x->step_from : 0]);
			s_set_str(tj, "to", s_step_states[x->step_to < 8 ? x->step_to : 0]);
		} else {
			s_set_str(tj, "from", s_case_states[x->from_state < 8 ? x->from_state : 0]);
			s_set_str(tj, "to", s_case_states[x->to_state < 8 ? x->to_state : 0]);
		}
		json_object_set_new(j, "transition", tj);
	}
	json_array_append_new(t->out, j);
	return ++t->n >= MAX_TIMELINE ? 1 : 0;
}

static json_t *s_input_error(const struct wf_def *d, json_t *input, json_t **norm)
{
	ProtobufCMessage *m = NULL;
	char err[512];
	if (!json_is_object(input))
		return s_err("input: a JSON object of type %s is required", d->input_type);
	if (qiao_pb_from_json(d->input_d, input, &m, err, sizeof err) != 0)
		return s_err("input (%s): %s", d->input_type, err);
	*norm = qiao_pb_to_json(m);
	protobuf_c_message_free_unpacked(m, NULL);
	json_t *casev = json_object();
	json_t *vars = json_object();
	struct wf_ctx x = {.input = *norm, .vars = vars, .casev = casev, .now_ms = s_now()};
	json_t *bad = NULL;
	for (size_t i = 0; i < d->ninput_checks && !bad; i++) {
		int h = gw_wf_cond(&d->input_checks[i], &x, err, sizeof err);
		if (h == 0)
			bad = s_err("input: %s", d->input_check_msgs[i] ? d->input_check_msgs[i] : d->input_checks[i].text);
		else if (h < 0)
			bad = s_err("input: %s", err);
	}
	json_decref(casev);
	json_decref(vars);
	if (bad) {
		json_decref(*norm);
		*norm = NULL;
	}
	return bad;
}

static json_t *s_op_start(gw_wf_t *w, const json_t *q, const char *operator_login)
{
	const char *name = s_str(q, "workflow");
	const struct wf_def *d = s_def(w, name);
	if (!d)
		return s_err("no workflow named '%s' is loaded (`qiao case workflows` lists them)", name);
	if (w->nopen >= w->max_open)
		return s_err("%zu cases are open, the most workflow.max_open_cases allows: try later", w->nopen);
	const char *user = s_str(q, "user");
	if (!user[0])
		user = operator_login;
	if (strlen(user) > 128 || strlen(s_str(q, "client_ref")) > 128)
		return s_err("user and client_ref are at most 128 bytes");
	json_t *input = NULL;
	json_t *bad = s_input_error(d, json_object_get(q, "input"), &input);
	if (bad)
		return bad;
	char id[CASE_ID_MAX];
	int rc = s_new_case_id(w, d, id, sizeof id);
	if (rc != 0) {
		json_decref(input);
		return s_err("no case number could be given: %s", qiao_strerror(rc));
	}
	int64_t now = s_now();
	json_t *steps = json_array();
	for (size_t i = 0; i < d->nsteps; i++) {
		json_t *after = json_array();
		for (size_t a = 0; a < d->steps[i].nafter; a++)
			json_array_append_new(after, json_string(d->steps[d->steps[i].after[a]].name));
		json_array_append_new(steps, json_pack("{s:s, s:s, s:o, s:i}", "name", d->steps[i].name, "state",
						       "PENDING", "after", after, "attempts", 0));
	}
	char started_by[200];
	snprintf(started_by, sizeof started_by, "operator:%s", operator_login);
	json_t *rec = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, "
				"s:o}",
				"case_id", id, "workflow", d->name, "version", (json_int_t)d->version, "title",
				d->title ? d->title : "", "state", "CREATED", "input_type", d->input_type, "input",
				input, "user", user, "started_by", started_by, "purpose", d->purpose, "client_ref",
				s_str(q, "client_ref"), "created_ms", (json_int_t)now, "updated_ms", (json_int_t)now,
				"deadline_ms", (json_int_t)(d->deadline_ms ? now + d->deadline_ms : 0), "revision",
				(json_int_t)0, "vars", json_object(), "steps", steps);
	if (!rec)
		return s_err("out of memory");
	/* the data subjects every exchange of the case concerns */
	json_t *casev = s_casev(rec);
	struct wf_ctx x;
	s_ctx(&x, rec, casev, NULL);
	char err[400];
	json_t *sv = gw_wf_eval(&d->subjects, &x, err, sizeof err);
	json_decref(casev);
	json_t *flat = json_array();
	for (size_t i = 0; sv && i < json_array_size(sv); i++) {
		json_t *e = json_array_get(sv, i);
		size_t m = json_is_array(e) ? json_array_size(e) : 1;
		for (size_t j = 0; j < m; j++) {
			json_t *s = json_is_array(e) ? json_array_get(e, j) : e;
			if (json_is_object(s) && s_str(s, "id")[0] && json_array_size(flat) < QIAO_MAX_SUBJECTS)
				json_array_append_new(flat, json_pack("{s:s, s:s}", "type", s_str(s, "type"), "id",
								      s_str(s, "id")));
		}
	}
	json_decref(sv);
	json_object_set_new(rec, "subjects", flat);
	struct wcase *c = s_case_new(w, d, id, rec);
	if (!c) {
		json_decref(rec);
		return s_err("out of memory");
	}
	s_emit(w, c, -1, 0, CS(CREATED), 0, 0, 0, NULL, "case created by %s for %s%s%s", started_by, user,
	       s_str(q, "client_ref")[0] ? ", client ref " : "", s_str(q, "client_ref"));
	s_advance(w, c);
	return json_pack("{s:b, s:s}", "ok", 1, "case_id", id); /* the case follows after the commit */
}

static json_t *s_handle(gw_wf_t *w, const json_t *q, const char *login, int *after_commit)
{
	const char *op = s_str(q, "op");
	*after_commit = 0;
	if (strcmp(op, "workflows") == 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < w->ndefs; i++)
			json_array_append_new(a, s_def_json(w->defs[i]));
		return json_pack("{s:b, s:o}", "ok", 1, "workflows", a);
	}
	if (strcmp(op, "start") == 0) {
		*after_commit = 1;
		return s_op_start(w, q, login);
	}
	if (strcmp(op, "status") == 0) {
		json_t *rec = s_read_case(w, s_str(q, "case_id"));
		if (!rec)
			return s_err("no case %s", s_str(q, "case_id"));
		return json_pack("{s:b, s:o}", "ok", 1, "case", rec);
	}
	if (strcmp(op, "list") == 0) {
		struct list_arg la = {.out = json_array(),
				      .wf = json_string_value(json_object_get(q, "workflow")),
				      .state = json_string_value(json_object_get(q, "state")),
				      .since = s_int(q, "since_ms"),
				      .until = s_int(q, "until_ms"),
				      .limit = (size_t)s_int(q, "limit")};
		qiao_txn_t *txn = NULL;
		int rc = qiao_txn_begin(w->st, 0, &txn);
		if (!rc)
			rc = qiao_store_iter_prefix(txn, w->tcase, "", 0, s_list_cb, &la);
		qiao_txn_abort(&txn);
		if (rc < 0) {
			json_decref(la.out);
			return s_err("the case table could not be read: %s", qiao_strerror(rc));
		}
		return json_pack("{s:b, s:o}", "ok", 1, "cases", la.out);
	}
	if (strcmp(op, "timeline") == 0) {
		const char *id = s_str(q, "case_id");
		json_t *rec = s_read_case(w, id);
		if (!rec)
			return s_err("no case %s", id);
		struct tl_arg t = {.out = json_array()};
		struct audit_query aq = {.case_id = id};
		qiao_txn_t *txn = NULL;
		int rc = qiao_txn_begin(w->st, 0, &txn);
		if (!rc)
			rc = audit_log_query(w->audit, txn, &aq, s_tl_cb, &t);
		qiao_txn_abort(&txn);
		if (rc < 0) {
			json_decref(rec);
			json_decref(t.out);
			return s_err("the audit log could not be read: %s", qiao_strerror(rc));
		}
		return json_pack("{s:b, s:o, s:o}", "ok", 1, "case", rec, "entries", t.out);
	}
	if (strcmp(op, "cancel") == 0) {
		const char *id = s_str(q, "case_id");
		struct wcase *c = s_open_case(w, id);
		if (!c) {
			json_t *rec = s_read_case(w, id);
			json_t *e = rec ? s_err("case %s is already %s: nothing to cancel", id, s_str(rec, "state"))
					: s_err("no case %s", id);
			json_decref(rec);
			return e;
		}
		if (json_object_get(c->rec, "failure"))
			return s_err("case %s is already being unwound (%s)", id, s_str(json_object_get(c->rec, "failure"), "code"));
		char reason[600];
		snprintf(reason, sizeof reason, "cancelled by operator:%s%s%s", login, s_str(q, "reason")[0] ? ": " : "",
			 s_str(q, "reason"));
		s_fail_case(w, c, -1, c->def->cancel_code, reason);
		s_advance(w, c);
		*after_commit = 1;
		return json_pack("{s:b, s:s}", "ok", 1, "case_id", id);
	}
	return s_err("unknown op '%s': workflows, start, status, list, timeline or cancel", op);
}

static void s_queue_reply(gw_wf_t *w, int fd, json_t *reply)
{
	if (w->nreplies == w->capreplies) {
		size_t nc = w->capreplies ? w->capreplies * 2 : 8;
		struct wreply *n = realloc(w->replies, nc * sizeof *n);
		if (!n) {
			json_decref(reply);
			close(fd);
			return;
		}
		w->replies = n;
		w->capreplies = nc;
	}
	w->replies[w->nreplies++] = (struct wreply){fd, reply};
}

static void s_write_reply(int fd, json_t *reply)
{
	char *t = json_dumps(reply, JSON_COMPACT);
	if (t) {
		size_t n = strlen(t), off = 0;
		t[n] = '\0';
		while (off < n) {
			ssize_t k = write(fd, t + off, n - off);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		(void)!write(fd, "\n", 1);
		free(t);
	}
	close(fd);
}

static void s_on_ctl(gw_wf_t *w)
{
	int fd = accept4(w->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct ucred cr;
	socklen_t cl = sizeof cr;
	char login[64] = "unknown";
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
		struct passwd pw, *pp = NULL;
		char buf[1024];
		if (getpwuid_r(cr.uid, &pw, buf, sizeof buf, &pp) == 0 && pp)
			snprintf(login, sizeof login, "%s", pp->pw_name);
		else
			snprintf(login, sizeof login, "uid%u", (unsigned)cr.uid);
	}
	size_t cap = 4096, len = 0;
	char *b = malloc(cap);
	int done = 0;
	while (b && !done) {
		if (len + 1 >= cap) {
			if (cap >= CTL_MAX)
				break;
			char *nb = realloc(b, cap * 2);
			if (!nb)
				break;
			b = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, b + len, cap - 1 - len);
		if (k <= 0)
			break;
		if (memchr(b + len, '\n', (size_t)k))
			done = 1;
		len += (size_t)k;
	}
	json_t *reply;
	if (!b) {
		reply = s_err("out of memory");
	} else {
		b[len] = '\0';
		json_error_t je;
		json_t *q = done || len ? json_loads(b, JSON_DISABLE_EOF_CHECK, &je) : NULL;
		int after = 0;
		if (!q)
			reply = s_err("the request is not one JSON object on one line%s%s", len ? ": " : "",
				      len ? je.text : "");
		else if (!json_is_object(q))
			reply = s_err("the request must be a JSON object");
		else
			reply = s_handle(w, q, login, &after);
		json_decref(q);
		free(b);
		if (after) {
			s_queue_reply(w, fd, reply);
			return;
		}
	}
	s_write_reply(fd, reply);
	json_decref(reply);
}

/* ---- the thread ---------------------------------------------------------------------- */

static int64_t s_next_wake(gw_wf_t *w)
{
	int64_t now = s_now(), next = now + 1000;
	for (struct wcase *c = w->cases; c; c = c->next) {
		json_t *steps = json_object_get(c->rec, "steps");
		int64_t dl = s_int(c->rec, "deadline_ms");
		if (dl && dl < next)
			next = dl;
		for (size_t i = 0; i < c->def->nsteps; i++) {
			json_t *st = json_array_get(steps, i);
			int64_t t = s_int(st, "next_attempt_ms");
			if (t && !c->live[i].token && t < next)
				next = t;
			json_t *cp = json_object_get(st, "compensation");
			t = cp ? s_int(cp, "next_attempt_ms") : 0;
			if (t && !c->live[i].ctoken && t < next)
				next = t;
		}
	}
	return next - now < 0 ? 0 : next - now;
}

/* Publish the open cases by (definition, state) for gw_wf_metrics(): the
 * engine owns w->cases, so it counts them here, once per turn. */
static void s_met_update(gw_wf_t *w)
{
	static const int open_states[] = {CS(CREATED), CS(RUNNING), CS(WAITING), CS(COMPENSATING)};
	enum { NOS = sizeof open_states / sizeof open_states[0] };
	int64_t now = s_now();
	if (now < w->met_next)
		return;
	w->met_next = now + 250;
	size_t n = w->ndefs * NOS;
	struct gw_wf_count *v = n ? calloc(n, sizeof *v) : NULL;
	if (n && !v)
		return; /* keep the previous counts */
	for (size_t d = 0; d < w->ndefs; d++)
		for (size_t k = 0; k < NOS; k++) {
			v[d * NOS + k].workflow = w->defs[d]->name;
			v[d * NOS + k].state = s_case_states[open_states[k]];
		}
	for (struct wcase *c = w->cases; c; c = c->next) {
		int cs = CASE_STATE(c->rec);
		size_t d = 0, k = 0;
		while (d < w->ndefs && w->defs[d] != c->def)
			d++;
		while (k < NOS && open_states[k] != cs)
			k++;
		if (d == w->ndefs || k == NOS)
			continue; /* final (leaving memory) or unknown */
		struct gw_wf_count *e = &v[d * NOS + k];
		e->open++;
		int64_t created = s_int(c->rec, "created_ms");
		if (created > 0 && now - created > e->oldest_age_ms)
			e->oldest_age_ms = now - created;
	}
	pthread_mutex_lock(&w->met_mu);
	free(w->met);
	w->met = v;
	w->nmet = n;
	pthread_mutex_unlock(&w->met_mu);
}

static void s_turn_end(gw_wf_t *w)
{
	int rc = s_commit(w);
	if (rc != 0) {
		log_error("case.commit.failed reason=\"%s\" cases_rolled_back=1 retry_ms=1000", qiao_strerror(rc));
		s_rollback(w);
		w->backoff_until = s_now() + 1000;
		for (size_t i = 0; i < w->nreplies; i++) {
			json_t *e = s_err("the case could not be stored (%s): nothing was done; try again",
					  qiao_strerror(rc));
			s_write_reply(w->replies[i].fd, e);
			json_decref(e);
			json_decref(w->replies[i].reply);
		}
	} else {
		/* the operators first: what they asked for is durable */
		for (size_t i = 0; i < w->nreplies; i++) {
			json_t *r = w->replies[i].reply;
			const char *id = json_string_value(json_object_get(r, "case_id"));
			json_t *rec = id ? s_read_case(w, id) : NULL;
			if (rec)
				json_object_set_new(r, "case", rec);
			s_write_reply(w->replies[i].fd, r);
			json_decref(r);
		}
		for (size_t i = 0; i < w->nsends; i++)
			s_send(w, &w->sends[i]);
	}
	for (size_t i = 0; i < w->nent; i++)
		free(w->ents[i]);
	w->nent = 0;
	w->nsends = 0;
	w->nreplies = 0;
	/* closed cases leave memory */
	struct wcase **pp = &w->cases;
	while (*pp) {
		struct wcase *c = *pp;
		int busy = 0;
		for (size_t i = 0; i < c->def->nsteps; i++)
			busy |= c->live[i].token || c->live[i].ctoken;
		if (!c->dirty && s_final(CASE_STATE(c->rec)) && !busy) {
			*pp = c->next;
			w->nopen--;
			s_case_free(c);
			continue;
		}
		pp = &c->next;
	}
	atomic_store(&w->nopen_pub, (int)w->nopen);
	s_met_update(w);
}

static void *s_thread(void *arg)
{
	gw_wf_t *w = arg;
	for (struct wcase *c = w->cases; c; c = c->next)
		s_resume(w, c);
	while (!atomic_load(&w->stop)) {
		int64_t now = s_now();
		int paused = now < w->backoff_until;
		if (!paused) {
			for (struct wcase *c = w->cases; c; c = c->next)
				s_advance(w, c);
			s_turn_end(w);
		}
		struct pollfd p[3] = {
			{gw_mbox_fd(w->mb), POLLIN, 0},
			{w->ctl_fd, POLLIN, 0},
			{w->wake_fd, POLLIN, 0},
		};
		int64_t to = paused ? w->backoff_until - now : s_next_wake(w);
		int rc = poll(p, 3, (int)(to > 1000 ? 1000 : to));
		if (rc < 0 && errno != EINTR)
			break;
		if (atomic_load(&w->stop))
			break;
		struct gw_item *it = gw_mbox_take_all(w->mb);
		while (it) {
			struct gw_item *next = it->next;
			struct wres *r = (struct wres *)it;
			s_on_result(w, r);
			s_result_free(r);
			it = next;
		}
		if (!paused && (p[1].revents & POLLIN))
			s_on_ctl(w);
	}
	return NULL;
}

/* ---- start / stop ------------------------------------------------------------------- */

static void s_sdk_log(void *arg, enum qiao_log_level level, const char *msg)
{
	(void)arg;
	if (level <= QIAO_LOG_WARN)
		log_warn("workflow.sdk msg=\"%s\"", msg);
	else if (level == QIAO_LOG_INFO)
		log_info("workflow.sdk msg=\"%s\"", msg);
}

static int s_listen(gw_wf_t *w, const char *path, char *err, size_t errlen)
{
	int rc = gw_unix_listen(path, "workflow.socket", &w->ctl_fd, err, errlen);
	if (rc == 0)
		snprintf(w->ctl_path, sizeof w->ctl_path, "%s", path);
	return rc;
}

static void s_free(gw_wf_t *w)
{
	if (!w)
		return;
	if (w->ad)
		qiao_adapter_destroy(&w->ad); /* runs the remaining callbacks: they post to mb */
	if (w->mb) {
		struct gw_item *it = gw_mbox_take_all(w->mb);
		while (it) {
			struct gw_item *next = it->next;
			s_result_free((struct wres *)it);
			it = next;
		}
		gw_mbox_destroy(&w->mb);
	}
	while (w->cases) {
		struct wcase *c = w->cases;
		w->cases = c->next;
		s_case_free(c);
	}
	for (size_t i = 0; i < w->nent; i++)
		free(w->ents[i]);
	free(w->ents);
	free(w->elen);
	free(w->sends);
	for (size_t i = 0; i < w->nreplies; i++) {
		close(w->replies[i].fd);
		json_decref(w->replies[i].reply);
	}
	free(w->replies);
	free(w->met);
	pthread_mutex_destroy(&w->met_mu);
	json_decref(w->counters);
	json_decref(w->counters_dirty);
	gw_wfdef_free_all(&w->defs, w->ndefs);
	if (w->ctl_fd >= 0) {
		close(w->ctl_fd);
		unlink(w->ctl_path);
	}
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	free(w);
}

int gw_wf_start(const struct gw_wf_env *env, gw_wf_t **out, char *err, size_t errlen)
{
	*out = NULL;
	const struct gw_workflow *wc = gw_config_workflow(env->cfg);
	if (!wc || !wc->enabled)
		return 0;
	s_fault_init();
	gw_wf_t *w = calloc(1, sizeof *w);
	if (!w)
		return QIAO_ENOMEM;
	w->ctl_fd = -1;
	pthread_mutex_init(&w->met_mu, NULL);
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->st = env->st;
	w->gc = env->gc;
	w->audit = env->audit;
	w->max_open = wc->max_open_cases;
	w->counters = json_object();
	w->counters_dirty = json_object();
	w->mb = gw_mbox_new();
	snprintf(w->gateway, sizeof w->gateway, "%s", gw_config_gateway(env->cfg)->member);
	int rc = w->wake_fd >= 0 && w->mb && w->counters && w->counters_dirty ? 0 : QIAO_ENOMEM;
	if (!rc)
		rc = gw_wfdef_load_dir(wc->definitions, env->cfg, &w->defs, &w->ndefs, err, errlen);
	if (!rc && ((rc = qiao_store_table(w->st, "wf_case", WF_CASE_TYPE, &w->tcase)) != 0 ||
		    (rc = qiao_store_table(w->st, "wf_meta", WF_META_TYPE, &w->tmeta)) != 0))
		snprintf(err, errlen, "workflow tables: %s", qiao_strerror(rc));
	if (!rc) {
		struct qiao_adapter_opts o = {
			.endpoint = env->endpoint,
			.key_file = wc->key_file,
			.gateway_curve_public = env->gateway_curve,
			.instance = "qiao-gateway workflow engine",
			.handler_threads = 1,
			.max_pending_calls = 4096,
			.reconnect_min_ms = 50,
			.reconnect_max_ms = 1000,
			.log = s_sdk_log,
		};
		char e2[300];
		rc = qiao_adapter_new(&o, &w->ad, e2, sizeof e2);
		if (rc)
			snprintf(err, errlen, "workflow.key_file %s: %s", wc->key_file, e2);
		else
			snprintf(w->member, sizeof w->member, "%s", qiao_adapter_member(w->ad));
	}
	if (!rc && !gw_config_member(env->cfg, w->member)) {
		snprintf(err, errlen, "the workflow engine's key is for %s, which is not in members: add it (with its "
				      "public keys) and policy rules for the services the workflows call",
			 w->member);
		rc = QIAO_ECONFIG;
	}
	if (!rc)
		rc = s_listen(w, wc->socket, err, errlen);
	if (!rc) {
		struct load_arg la = {.w = w};
		qiao_txn_t *txn = NULL;
		rc = qiao_txn_begin(w->st, 0, &txn);
		if (!rc)
			rc = qiao_store_iter_prefix(txn, w->tcase, "", 0, s_load_cb, &la);
		qiao_txn_abort(&txn);
		if (rc < 0)
			snprintf(err, errlen, "workflow cases could not be loaded: %s", qiao_strerror(rc));
		else
			rc = 0;
		if (!rc)
			log_info("workflow.ready member=%s workflows=%zu open_cases=%zu unloadable=%zu socket=%s", w->member,
				 w->ndefs, la.loaded, la.bad, wc->socket);
	}
	if (!rc)
		rc = qiao_adapter_start(w->ad);
	if (!rc) {
		rc = -pthread_create(&w->thread, NULL, s_thread, w);
		w->started = rc == 0;
	}
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "workflow engine: %s", qiao_strerror(rc));
		s_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void gw_wf_stop(gw_wf_t **wp)
{
	if (!wp || !*wp)
		return;
	gw_wf_t *w = *wp;
	atomic_store(&w->stop, 1);
	uint64_t one = 1;
	(void)!write(w->wake_fd, &one, sizeof one);
	if (w->started)
		pthread_join(w->thread, NULL);
	s_free(w);
	*wp = NULL;
}

uint64_t gw_wf_audited(gw_wf_t *w)
{
	return w ? atomic_load(&w->audited) : 0;
}

json_t *gw_wf_status(gw_wf_t *w)
{
	if (!w)
		return json_null();
	return json_pack("{s:i, s:i, s:s}", "workflows", (int)w->ndefs, "open_cases", atomic_load(&w->nopen_pub),
			 "member", w->member);
}

int gw_wf_metrics(gw_wf_t *w, struct gw_wf_count **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!w)
		return 0;
	int rc = 0;
	pthread_mutex_lock(&w->met_mu);
	if (w->nmet) {
		*out = malloc(w->nmet * sizeof **out);
		if (*out) {
			memcpy(*out, w->met, w->nmet * sizeof **out);
			*n = w->nmet;
		} else {
			rc = QIAO_ENOMEM;
		}
	}
	pthread_mutex_unlock(&w->met_mu);
	return rc;
}
