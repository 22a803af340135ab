/*
 * gw_wfdef.h - workflow definition files: load, validate, evaluate.
 *
 * A definition (docs/workflow.md gives the whole language) is a libconfig
 * file with a `workflow` group (name, version, input type, purpose,
 * subjects, defaults) and a `steps` list.  Each step calls one service; its
 * request is a template built from the case's input (`input.PATH`), the
 * variables earlier steps set (`var.NAME.PATH`), the case itself
 * (`case.id`, `case.user`, `case.failure_code` ...) and the clock (`now`,
 * `now+MS`); its `outputs` copy fields of the reply into variables; `after`
 * orders it behind other steps (steps whose `after` are all satisfied run
 * in parallel); `when` skips it; `fail_when` turns a business refusal in
 * the reply into a failure of the case; `compensation` is the call that
 * undoes it when the case fails later.
 *
 * gw_wfdef_load() checks everything it can before a case runs: keys,
 * types, that every service exists in the gateway's registry (or, for a
 * service whose member comes from the input, that some member offers the
 * name), that every request field exists in the request type, that every
 * `reply.PATH` exists in the response type, that every `var.NAME` is set
 * by a step the reader depends on, that every `input.PATH` exists in the
 * input type, that `after` names earlier steps.  Errors name the file and
 * the line: "daiya-guohu.wf:42: step payoff-quote: request.seler: ...".
 *
 * Evaluation (gw_wf_eval_*) works on JSON (proto/qiao_pbjson.h): the input
 * and every reply are turned into JSON objects, templates produce JSON,
 * and the request JSON is turned into the request message.
 */
#ifndef QIAO_GW_WFDEF_H
#define QIAO_GW_WFDEF_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

struct gw_config;

enum wf_root { R_INPUT = 1, R_VAR, R_CASE, R_REPLY, R_NOW };

struct wf_pel {
	char *name;   /* a key, or NULL for an index */
	long index;   /* >= 0: [N]; -1: [*] (every element) */
};

struct wf_ref {
	int root;             /* enum wf_root */
	char *var;            /* R_VAR: the variable; R_CASE: the attribute */
	struct wf_pel *el;
	size_t nel;
	int64_t add;          /* R_NOW: now + add */
	char *text;           /* as written, for messages */
};

enum wf_tpl_kind { T_LIT = 1, T_REF, T_STR, T_OBJ, T_ARR };

struct wf_part {
	char *text;           /* literal text, or NULL */
	struct wf_ref ref;    /* when text is NULL */
};

struct wf_tpl {
	int kind;
	unsigned line;                /* of the definition file, for messages */
	json_t *lit;                  /* T_LIT */
	struct wf_ref ref;            /* T_REF: "${...}" alone keeps the JSON type */
	struct wf_part *parts;        /* T_STR: text with ${...} */
	size_t nparts;
	char **keys;                  /* T_OBJ */
	struct wf_tpl *vals;          /* T_OBJ / T_ARR */
	size_t n;
};

enum wf_op { OP_TRUE = 0, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct wf_cond {
	char *text;
	int neg;                      /* "!x" */
	struct wf_ref lhs;
	int op;
	int rhs_ref;
	struct wf_ref rhs;
	json_t *rhs_lit;
};

/* One service call: a step's, or its compensation's. */
struct wf_call {
	struct wf_tpl service;        /* T_LIT string or T_STR */
	const char *req_type, *resp_type;
	const ProtobufCMessageDescriptor *req_d, *resp_d;
	int idempotent;               /* every service it may resolve to is idempotent */
	struct wf_tpl request;        /* T_OBJ */
	struct wf_tpl subjects;       /* T_ARR, or kind 0: the workflow's */
	int64_t timeout_ms;           /* per attempt */
	int64_t deadline_ms;          /* give up retrying this long after the first attempt */
	int64_t backoff_ms, max_backoff_ms;
	unsigned retries;             /* 0 = until the deadline */
	struct wf_cond *fail;         /* fail_when: any holds -> failed */
	size_t nfail;
	struct wf_tpl fail_reason;    /* kind 0: a default text */
};

struct wf_step {
	char *name;
	unsigned line;
	struct wf_call call;
	size_t *after;                /* indexes of earlier steps */
	size_t nafter;
	struct wf_cond *when;         /* all must hold, else SKIPPED */
	size_t nwhen;
	char *failure_code;           /* case.failure_code when this step fails; NULL: the default */
	char **out_names;
	struct wf_ref *out_refs;      /* R_REPLY refs */
	size_t nout;
	int has_comp;
	struct wf_call comp;
	int pivot;                    /* once DONE, the case can no longer be unwound */
};

struct wf_def {
	char *file;                   /* path as loaded */
	char *name;                   /* [a-z0-9-], unique */
	unsigned version;
	char *title;
	char *case_prefix;            /* case ids "<prefix>-YYYYMMDD-NNNNNN" */
	char *input_type;
	const ProtobufCMessageDescriptor *input_d;
	char *purpose, *legal_basis;
	struct wf_tpl subjects;       /* T_ARR of DataSubject (or arrays of them) */
	struct wf_cond *input_checks; /* `require`: all must hold for a case to start */
	size_t ninput_checks;
	char **input_check_msgs;
	char *cancel_code;            /* case.failure_code on cancel */
	char *default_failure_code;
	int64_t deadline_ms;          /* of a whole case; 0: none */
	struct wf_step *steps;
	size_t nsteps;
};

/* Load and check one file.  0 and *out, or QIAO_ECONFIG with err "FILE:LINE: why". */
int gw_wfdef_load(const char *path, const struct gw_config *cfg, struct wf_def **out, char *err, size_t errlen);
void gw_wfdef_free(struct wf_def **d);

/* Every *.wf of `dir` (sorted by name); names must be unique. */
int gw_wfdef_load_dir(const char *dir, const struct gw_config *cfg, struct wf_def ***out, size_t *n, char *err,
		      size_t errlen);
void gw_wfdef_free_all(struct wf_def ***defs, size_t n);

/* What a template or condition may refer to. */
struct wf_ctx {
	const json_t *input;          /* the case input */
	const json_t *vars;           /* object: variables */
	const json_t *reply;          /* the reply being judged, or NULL */
	const json_t *casev;          /* object: id, workflow, user, purpose, failure, failure_code ... */
	int64_t now_ms;
};

/* Evaluate: a new JSON value, or NULL with err (a reference that is not set). */
json_t *gw_wf_eval(const struct wf_tpl *t, const struct wf_ctx *c, char *err, size_t errlen);
json_t *gw_wf_eval_ref(const struct wf_ref *r, const struct wf_ctx *c, char *err, size_t errlen);
/* 1 holds, 0 not, -1 err set. */
int gw_wf_cond(const struct wf_cond *k, const struct wf_ctx *c, char *err, size_t errlen);
/* A JSON value as text (strings as is, null as ""); malloc'd. */
char *gw_wf_text(const json_t *v);

#endif
