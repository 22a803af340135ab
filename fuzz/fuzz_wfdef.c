/*
 * fuzz_wfdef: workflow definitions (gateway/gw_wfdef.c).
 *
 * The gateway configuration is fuzz/wfdef-gateway.conf (the demo
 * departments with the services of adapters/<dept>/services.conf, as the
 * department tests build it), loaded once.  The input is
 * split at its first NUL byte:
 *   before: a definition file, given to gw_wfdef_load(); when empty, the
 *           shipped ops/workflows/daiya-guohu.wf (loaded once) is used;
 *   after:  JSON text, the case input (also the variables when an object,
 *           and the reply every `reply.PATH` reads), against which every
 *           template and condition of the definition is evaluated with
 *           gw_wf_eval() / gw_wf_cond() / gw_wf_eval_ref().
 */
#include "fuzz_util.h"
#include "gw_config.h"
#include "gw_wfdef.h"

#include <jansson.h>

#ifndef QIAO_FUZZ_SRC
#define QIAO_FUZZ_SRC "."
#endif

static struct gw_config *s_cfg;
static struct wf_def *s_def;
static json_t *s_case;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[512];
	const char *src = getenv("QIAO_SRC");
	if (!src)
		src = QIAO_FUZZ_SRC;
	char p[4096];
	snprintf(p, sizeof p, "%s/fuzz/wfdef-gateway.conf", src);
	if (gw_config_load(p, &s_cfg, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_wfdef: %s\n", err);
		abort();
	}
	snprintf(p, sizeof p, "%s/ops/workflows/daiya-guohu.wf", src);
	if (gw_wfdef_load(p, s_cfg, &s_def, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_wfdef: %s\n", err);
		abort();
	}
	s_case = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", "dyhg-20261203-000001", "workflow",
			   "daiya-guohu", "user", "staff-0042", "purpose", "带押过户", "failure", "",
			   "failure_code", "");
	if (!s_case)
		abort();
	return 0;
}

static void s_tpl(const struct wf_tpl *t, const struct wf_ctx *c)
{
	char err[256];
	if (t->kind == 0)
		return;
	json_decref(gw_wf_eval(t, c, err, sizeof err));
}

static void s_cond(const struct wf_cond *k, size_t n, const struct wf_ctx *c)
{
	char err[256];
	for (size_t i = 0; i < n; i++)
		(void)gw_wf_cond(&k[i], c, err, sizeof err);
}

static void s_call(const struct wf_call *call, const struct wf_ctx *c)
{
	s_tpl(&call->service, c);
	s_tpl(&call->request, c);
	s_tpl(&call->subjects, c);
	s_cond(call->fail, call->nfail, c);
	s_tpl(&call->fail_reason, c);
}

static void s_eval(const struct wf_def *d, const json_t *in)
{
	json_t *vars = json_is_object(in) ? json_incref((json_t *)in) : json_object();
	struct wf_ctx c = {.input = in, .vars = vars, .reply = in, .casev = s_case, .now_ms = 1764720000000};
	s_tpl(&d->subjects, &c);
	s_cond(d->input_checks, d->ninput_checks, &c);
	for (size_t i = 0; i < d->nsteps; i++) {
		const struct wf_step *st = &d->steps[i];
		s_cond(st->when, st->nwhen, &c);
		s_call(&st->call, &c);
		for (size_t j = 0; j < st->nout; j++) {
			char err[256];
			json_t *v = gw_wf_eval_ref(&st->out_refs[j], &c, err, sizeof err);
			char *t = v ? gw_wf_text(v) : NULL;
			free(t);
			json_decref(v);
		}
		if (st->has_comp)
			s_call(&st->comp, &c);
	}
	json_decref(vars);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	size_t wlen = nul ? (size_t)(nul - data) : size;
	struct wf_def *d = NULL;
	if (wlen > 0) {
		const char *p = fz_tmpfile("wfdef", ".wf", data, wlen);
		if (!p)
			return 0;
		char err[512];
		int rc = gw_wfdef_load(p, s_cfg, &d, err, sizeof err);
		fz_tmpdone();
		if (rc != 0) {
			if (d)
				abort();
			return 0;
		}
	}
	if (nul) {
		json_error_t e;
		json_t *in = json_loadb((const char *)nul + 1, size - wlen - 1, JSON_DECODE_ANY, &e);
		if (in)
			s_eval(d ? d : s_def, in);
		json_decref(in);
	}
	gw_wfdef_free(&d);
	return 0;
}
