/*
 * gw_wfdef.c - workflow definitions (see gw_wfdef.h and docs/workflow.md).
 */
#include "gw_wfdef.h"

#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config.h"
#include "qiao_err.h"
#include "qiao_pbjson.h"
#include "qiao_types.h"

#define MAX_STEPS 128
#define MAX_PATH_EL 16

struct vdecl {
	char *name;
	size_t step;
	const ProtobufCMessageDescriptor *d; /* the reply type of the step */
	const struct wf_ref *ref;            /* its R_REPLY path */
};

struct ld {
	const char *file;
	const struct gw_config *cfg;
	char *err;
	size_t errlen;
	struct wf_def *def;
	bool anc[MAX_STEPS][MAX_STEPS]; /* anc[s][t]: t runs before s (transitively) */
	struct vdecl *vars;
	size_t nvars;
	unsigned line;        /* when set: the line of the value being checked */
};

static int s_fail(struct ld *c, const config_setting_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(struct ld *c, const config_setting_t *at, const char *fmt, ...)
{
	char why[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	unsigned line = c->line ? c->line : at ? config_setting_source_line(at) : 0;
	if (c->err && c->errlen) {
		if (line)
			snprintf(c->err, c->errlen, "%s:%u: %s", c->file, line, why);
		else
			snprintf(c->err, c->errlen, "%s: %s", c->file, why);
	}
	return QIAO_ECONFIG;
}

#define TRY(x)                                                                                                     \
	do {                                                                                                       \
		int rc_ = (x);                                                                                     \
		if (rc_ != 0)                                                                                      \
			return rc_;                                                                                \
	} while (0)

/* ---- references ------------------------------------------------------------- */

static void s_ref_free(struct wf_ref *r)
{
	for (size_t i = 0; i < r->nel; i++)
		free(r->el[i].name);
	free(r->el);
	free(r->var);
	free(r->text);
	memset(r, 0, sizeof *r);
}

static int s_ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '-';
}

static const char *const s_case_attrs[] = {"id", "workflow", "user", "started_by", "purpose", "failure",
					   "failure_code", "failed_step", "created_ms", NULL};

/* Parse "input.a.b[0]", "var.x.y", "case.id", "now+1000", "reply.x[*].y". */
static int s_parse_ref(const char *text, struct wf_ref *r, char *why, size_t wl)
{
	memset(r, 0, sizeof *r);
	r->text = strdup(text);
	if (!r->text) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	const char *p = text;
	while (*p == ' ')
		p++;
	size_t n = 0;
	while (s_ident_char(p[n]) && p[n] != '-')
		n++;
	if (n == 3 && strncmp(p, "now", 3) == 0) {
		r->root = R_NOW;
		p += 3;
		while (*p == ' ')
			p++;
		if (*p == '+' || *p == '-') {
			char *end;
			errno = 0;
			long long v = strtoll(p + 1, &end, 10);
			if (end == p + 1 || errno || v < 0) {
				snprintf(why, wl, "'%s': now+N or now-N takes a number of milliseconds", text);
				return -1;
			}
			r->add = *p == '+' ? v : -v;
			p = end;
		}
		while (*p == ' ')
			p++;
		if (*p) {
			snprintf(why, wl, "'%s': nothing may follow now[+N]", text);
			return -1;
		}
		return 0;
	}
	if (n == 5 && strncmp(p, "input", 5) == 0)
		r->root = R_INPUT;
	else if (n == 3 && strncmp(p, "var", 3) == 0)
		r->root = R_VAR;
	else if (n == 4 && strncmp(p, "case", 4) == 0)
		r->root = R_CASE;
	else if (n == 5 && strncmp(p, "reply", 5) == 0)
		r->root = R_REPLY;
	else {
		snprintf(why, wl, "'%s': a reference starts with input., var., case., reply. or now", text);
		return -1;
	}
	p += n;
	int need_name = r->root == R_VAR || r->root == R_CASE;
	while (*p && *p != ' ') {
		if (*p == '.') {
			p++;
			size_t k = 0;
			while (s_ident_char(p[k]))
				k++;
			if (k == 0) {
				snprintf(why, wl, "'%s': a name must follow '.'", text);
				return -1;
			}
			char *name = strndup(p, k);
			if (!name) {
				snprintf(why, wl, "out of memory");
				return -1;
			}
			p += k;
			if (need_name) {
				r->var = name;
				need_name = 0;
				continue;
			}
			if (r->nel >= MAX_PATH_EL) {
				free(name);
				snprintf(why, wl, "'%s': more than %d path elements", text, MAX_PATH_EL);
				return -1;
			}
			struct wf_pel *ne = realloc(r->el, (r->nel + 1) * sizeof *ne);
			if (!ne) {
				free(name);
				snprintf(why, wl, "out of memory");
				return -1;
			}
			r->el = ne;
			r->el[r->nel].name = name;
			r->el[r->nel].index = 0;
			r->nel++;
		} else if (*p == '[') {
			if (need_name || r->nel == 0) {
				snprintf(why, wl, "'%s': [ ] must follow a field name", text);
				return -1;
			}
			long idx;
			char *end;
			if (p[1] == '*' && p[2] == ']') {
				idx = -1;
				end = (char *)p + 3;
			} else {
				errno = 0;
				idx = strtol(p + 1, &end, 10);
				if (end == p + 1 || *end != ']' || errno || idx < 0 || idx > 1000000) {
					snprintf(why, wl, "'%s': an index is [N] or [*]", text);
					return -1;
				}
				end++;
			}
			if (r->nel >= MAX_PATH_EL) {
				snprintf(why, wl, "'%s': more than %d path elements", text, MAX_PATH_EL);
				return -1;
			}
			struct wf_pel *ne = realloc(r->el, (r->nel + 1) * sizeof *ne);
			if (!ne) {
				snprintf(why, wl, "out of memory");
				return -1;
			}
			r->el = ne;
			r->el[r->nel].name = NULL;
			r->el[r->nel].index = idx;
			r->nel++;
			p = end;
		} else {
			snprintf(why, wl, "'%s': unexpected '%c'", text, *p);
			return -1;
		}
	}
	while (*p == ' ')
		p++;
	if (*p) {
		snprintf(why, wl, "'%s': unexpected text after the reference", text);
		return -1;
	}
	if (need_name) {
		snprintf(why, wl, "'%s': %s.NAME expected", text, r->root == R_VAR ? "var" : "case");
		return -1;
	}
	if (r->root == R_CASE) {
		int ok = 0;
		for (int i = 0; s_case_attrs[i]; i++)
			ok |= strcmp(s_case_attrs[i], r->var) == 0;
		if (!ok || r->nel) {
			snprintf(why, wl, "'%s': case.id, case.workflow, case.user, case.started_by, case.purpose, "
					  "case.failure, case.failure_code, case.failed_step or case.created_ms", text);
			return -1;
		}
	}
	return 0;
}

/* Walk `el` from message `m` (f NULL) or field `f` of it. */
static int s_walk(const ProtobufCMessageDescriptor *m, const struct wf_pel *el, size_t nel, char *why, size_t wl)
{
	const ProtobufCFieldDescriptor *f = NULL;
	int indexed = 0;
	for (size_t i = 0; i < nel; i++) {
		if (el[i].name) {
			if (f) {
				if (f->label == PROTOBUF_C_LABEL_REPEATED && !indexed) {
					snprintf(why, wl, "%s is repeated: index it ([N] or [*]) before .%s", f->name,
						 el[i].name);
					return -1;
				}
				if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
					snprintf(why, wl, "%s is not a message: it has no field %s", f->name, el[i].name);
					return -1;
				}
				m = f->descriptor;
			}
			f = qiao_pb_field(m, el[i].name);
			if (!f) {
				char list[600] = "";
				size_t o = 0;
				for (unsigned k = 0; k < m->n_fields && o + 40 < sizeof list; k++)
					o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "", m->fields[k].name);
				snprintf(why, wl, "%s has no field '%s' (it has: %s)", m->name, el[i].name, list);
				return -1;
			}
			indexed = 0;
		} else {
			if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || indexed) {
				snprintf(why, wl, "[%s] on a field that is not repeated", el[i].index < 0 ? "*" : "N");
				return -1;
			}
			indexed = 1;
		}
	}
	return 0;
}

/* Check a reference where it is used by step `s` (SIZE_MAX: the workflow level, before any step),
 * `self` whether variables of s itself are visible (its compensation), `reply` the reply type
 * visible (NULL: none). */
static int s_check_ref(struct ld *c, const config_setting_t *at, const char *where, const struct wf_ref *r, size_t s,
		       int self, const ProtobufCMessageDescriptor *reply)
{
	char why[700];
	switch (r->root) {
	case R_INPUT:
		if (s_walk(c->def->input_d, r->el, r->nel, why, sizeof why) != 0)
			return s_fail(c, at, "%s: %s: %s", where, r->text, why);
		return 0;
	case R_REPLY:
		if (!reply)
			return s_fail(c, at, "%s: %s: no reply is available here (reply. is for outputs, fail_when and "
					     "fail_reason)",
				      where, r->text);
		if (s_walk(reply, r->el, r->nel, why, sizeof why) != 0)
			return s_fail(c, at, "%s: %s: %s", where, r->text, why);
		return 0;
	case R_VAR: {
		int declared = 0, visible = 0;
		for (size_t i = 0; i < c->nvars; i++) {
			const struct vdecl *v = &c->vars[i];
			if (strcmp(v->name, r->var) != 0)
				continue;
			declared = 1;
			if (s == SIZE_MAX || !(c->anc[s][v->step] || (self && v->step == s)))
				continue;
			visible = 1;
			/* the variable's path then the reference's */
			struct wf_pel el[2 * MAX_PATH_EL];
			size_t n = 0;
			for (size_t k = 0; k < v->ref->nel; k++)
				el[n++] = v->ref->el[k];
			for (size_t k = 0; k < r->nel; k++)
				el[n++] = r->el[k];
			if (s_walk(v->d, el, n, why, sizeof why) != 0)
				return s_fail(c, at, "%s: %s: %s", where, r->text, why);
		}
		if (!declared)
			return s_fail(c, at, "%s: %s: no step sets variable '%s' (outputs)", where, r->text, r->var);
		if (!visible)
			return s_fail(c, at, "%s: %s: variable '%s' is set only by steps this one does not run after "
					     "(add them to `after`)",
				      where, r->text, r->var);
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- templates --------------------------------------------------------------- */

static void s_tpl_free(struct wf_tpl *t)
{
	if (t->lit)
		json_decref(t->lit);
	s_ref_free(&t->ref);
	for (size_t i = 0; i < t->nparts; i++) {
		free(t->parts[i].text);
		s_ref_free(&t->parts[i].ref);
	}
	free(t->parts);
	for (size_t i = 0; i < t->n; i++) {
		if (t->keys)
			free(t->keys[i]);
		s_tpl_free(&t->vals[i]);
	}
	free(t->keys);
	free(t->vals);
	memset(t, 0, sizeof *t);
}

static int s_parse_string(struct ld *c, const config_setting_t *at, const char *where, const char *s, struct wf_tpl *t)
{
	char why[600];
	if (!strstr(s, "${")) {
		t->kind = T_LIT;
		t->lit = json_string(s);
		return t->lit ? 0 : QIAO_ENOMEM;
	}
	size_t len = strlen(s);
	if (len > 3 && strncmp(s, "${", 2) == 0 && s[len - 1] == '}' && !strchr(s + 2, '{') &&
	    strchr(s + 2, '}') == s + len - 1) {
		char *inner = strndup(s + 2, len - 3);
		if (!inner)
			return QIAO_ENOMEM;
		t->kind = T_REF;
		int rc = s_parse_ref(inner, &t->ref, why, sizeof why);
		free(inner);
		return rc ? s_fail(c, at, "%s: %s", where, why) : 0;
	}
	t->kind = T_STR;
	const char *p = s;
	while (*p) {
		struct wf_part *np = realloc(t->parts, (t->nparts + 1) * sizeof *np);
		if (!np)
			return QIAO_ENOMEM;
		t->parts = np;
		struct wf_part *part = &t->parts[t->nparts];
		memset(part, 0, sizeof *part);
		const char *open = strstr(p, "${");
		if (open == p) {
			const char *close = strchr(p + 2, '}');
			if (!close)
				return s_fail(c, at, "%s: '${' without a closing '}' in \"%s\"", where, s);
			char *inner = strndup(p + 2, (size_t)(close - p - 2));
			if (!inner)
				return QIAO_ENOMEM;
			t->nparts++;
			int rc = s_parse_ref(inner, &part->ref, why, sizeof why);
			free(inner);
			if (rc)
				return s_fail(c, at, "%s: %s", where, why);
			p = close + 1;
		} else {
			size_t k = open ? (size_t)(open - p) : strlen(p);
			part->text = strndup(p, k);
			if (!part->text)
				return QIAO_ENOMEM;
			t->nparts++;
			p += k;
		}
	}
	return 0;
}

static int s_parse_tpl(struct ld *c, const config_setting_t *v, const char *where, struct wf_tpl *t)
{
	memset(t, 0, sizeof *t);
	t->line = config_setting_source_line(v);
	switch (config_setting_type(v)) {
	case CONFIG_TYPE_STRING:
		return s_parse_string(c, v, where, config_setting_get_string(v), t);
	case CONFIG_TYPE_INT:
		t->kind = T_LIT;
		t->lit = json_integer(config_setting_get_int(v));
		return 0;
	case CONFIG_TYPE_INT64:
		t->kind = T_LIT;
		t->lit = json_integer(config_setting_get_int64(v));
		return 0;
	case CONFIG_TYPE_FLOAT:
		t->kind = T_LIT;
		t->lit = json_real(config_setting_get_float(v));
		return 0;
	case CONFIG_TYPE_BOOL:
		t->kind = T_LIT;
		t->lit = json_boolean(config_setting_get_bool(v));
		return 0;
	case CONFIG_TYPE_GROUP:
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_ARRAY: {
		int grp = config_setting_type(v) == CONFIG_TYPE_GROUP;
		int n = config_setting_length(v);
		t->kind = grp ? T_OBJ : T_ARR;
		t->vals = calloc((size_t)(n ? n : 1), sizeof *t->vals);
		if (grp)
			t->keys = calloc((size_t)(n ? n : 1), sizeof *t->keys);
		if (!t->vals || (grp && !t->keys))
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
			char w[300];
			if (grp) {
				t->keys[i] = strdup(config_setting_name(e));
				if (!t->keys[i])
					return QIAO_ENOMEM;
				snprintf(w, sizeof w, "%s.%s", where, config_setting_name(e));
			} else {
				snprintf(w, sizeof w, "%s[%d]", where, i);
			}
			t->n = (size_t)i + 1;
			TRY(s_parse_tpl(c, e, w, &t->vals[i]));
		}
		return 0;
	}
	default:
		return s_fail(c, v, "%s: unsupported value", where);
	}
}

/* Every reference of t checked. */
static int s_check_tpl(struct ld *c, const config_setting_t *at, const char *where, const struct wf_tpl *t, size_t s,
		       int self, const ProtobufCMessageDescriptor *reply)
{
	unsigned saved = c->line;
	int rc = 0;
	switch (t->kind) {
	case T_REF:
		c->line = t->line;
		rc = s_check_ref(c, at, where, &t->ref, s, self, reply);
		c->line = rc ? c->line : saved;
		return rc;
	case T_STR:
		c->line = t->line;
		for (size_t i = 0; i < t->nparts && !rc; i++)
			if (!t->parts[i].text)
				rc = s_check_ref(c, at, where, &t->parts[i].ref, s, self, reply);
		c->line = rc ? c->line : saved;
		return rc;
	case T_OBJ:
	case T_ARR:
		for (size_t i = 0; i < t->n; i++)
			TRY(s_check_tpl(c, at, where, &t->vals[i], s, self, reply));
		return 0;
	default:
		return 0;
	}
}

/* The keys of an object template against message type d. */
static int s_check_fields(struct ld *c, const config_setting_t *at, const char *where, const struct wf_tpl *t,
			  const ProtobufCMessageDescriptor *d)
{
	if (t->kind != T_OBJ)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		const ProtobufCFieldDescriptor *f = qiao_pb_field(d, t->keys[i]);
		const config_setting_t *e = config_setting_get_elem(at, (unsigned)i);
		if (!f) {
			char list[700] = "";
			size_t o = 0;
			for (unsigned k = 0; k < d->n_fields && o + 40 < sizeof list; k++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "", d->fields[k].name);
			return s_fail(c, e ? e : at, "%s: %s has no field '%s' (it has: %s)", where, d->name, t->keys[i],
				      list);
		}
		const struct wf_tpl *v = &t->vals[i];
		char w[300];
		snprintf(w, sizeof w, "%s.%s", where, t->keys[i]);
		int rep = f->label == PROTOBUF_C_LABEL_REPEATED, msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
		if (v->kind == T_OBJ) {
			if (!msg || rep)
				return s_fail(c, e, "%s: %s is not a single message: give it a %s", w, f->name,
					      rep ? "list" : "value");
			TRY(s_check_fields(c, e, w, v, f->descriptor));
		} else if (v->kind == T_ARR) {
			if (!rep)
				return s_fail(c, e, "%s: %s is not repeated: give it one value", w, f->name);
			for (size_t k = 0; k < v->n; k++)
				if (msg && v->vals[k].kind == T_OBJ)
					TRY(s_check_fields(c, config_setting_get_elem(e, (unsigned)k), w, &v->vals[k],
							   f->descriptor));
		} else if (v->kind == T_LIT || v->kind == T_STR) {
			if (msg)
				return s_fail(c, e, "%s: %s is a message (%s): give it a group { } or a ${reference}", w,
					      f->name, f->descriptor ? ((const ProtobufCMessageDescriptor *)f->descriptor)->name : "");
			if (rep)
				return s_fail(c, e, "%s: %s is repeated: give it a list [ ] or a ${reference}", w, f->name);
		}
	}
	return 0;
}

/* ---- conditions -------------------------------------------------------------- */

static void s_cond_free(struct wf_cond *k)
{
	free(k->text);
	s_ref_free(&k->lhs);
	s_ref_free(&k->rhs);
	if (k->rhs_lit)
		json_decref(k->rhs_lit);
	memset(k, 0, sizeof *k);
}

static int s_parse_cond(struct ld *c, const config_setting_t *at, const char *where, const char *text,
			struct wf_cond *k)
{
	memset(k, 0, sizeof *k);
	k->text = strdup(text);
	if (!k->text)
		return QIAO_ENOMEM;
	static const struct {
		const char *s;
		int op;
	} ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT}};
	const char *opat = NULL;
	size_t oplen = 0;
	for (const char *p = text; *p && !opat; p++) {
		if (*p == '\'')
			break;
		for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
			if (strncmp(p, ops[i].s, strlen(ops[i].s)) == 0) {
				opat = p;
				oplen = strlen(ops[i].s);
				k->op = ops[i].op;
				break;
			}
	}
	char lhs[512], rhs[512], why[600];
	if (opat) {
		snprintf(lhs, sizeof lhs, "%.*s", (int)(opat - text), text);
		snprintf(rhs, sizeof rhs, "%s", opat + oplen);
	} else {
		snprintf(lhs, sizeof lhs, "%s", text);
		rhs[0] = '\0';
	}
	/* trim */
	char *l = lhs;
	while (*l == ' ')
		l++;
	for (size_t n = strlen(l); n && l[n - 1] == ' ';)
		l[--n] = '\0';
	if (!opat && *l == '!') {
		k->neg = 1;
		l++;
		while (*l == ' ')
			l++;
	}
	if (s_parse_ref(l, &k->lhs, why, sizeof why) != 0)
		return s_fail(c, at, "%s: condition \"%s\": %s", where, text, why);
	if (!opat)
		return 0;
	char *r = rhs;
	while (*r == ' ')
		r++;
	for (size_t n = strlen(r); n && r[n - 1] == ' ';)
		r[--n] = '\0';
	if (!*r)
		return s_fail(c, at, "%s: condition \"%s\": nothing after the operator", where, text);
	size_t rn = strlen(r);
	if (r[0] == '\'') {
		if (rn < 2 || r[rn - 1] != '\'')
			return s_fail(c, at, "%s: condition \"%s\": unterminated 'string'", where, text);
		r[rn - 1] = '\0';
		k->rhs_lit = json_string(r + 1);
	} else if (strcmp(r, "true") == 0 || strcmp(r, "false") == 0) {
		k->rhs_lit = json_boolean(r[0] == 't');
	} else if (strcmp(r, "null") == 0) {
		k->rhs_lit = json_null();
	} else if ((r[0] >= '0' && r[0] <= '9') || r[0] == '-') {
		char *end;
		errno = 0;
		long long v = strtoll(r, &end, 10);
		if (*end || errno)
			return s_fail(c, at, "%s: condition \"%s\": '%s' is not an integer", where, text, r);
		k->rhs_lit = json_integer(v);
	} else {
		k->rhs_ref = 1;
		if (s_parse_ref(r, &k->rhs, why, sizeof why) != 0)
			return s_fail(c, at, "%s: condition \"%s\": %s (a string is written 'in single quotes')", where,
				      text, why);
	}
	return k->rhs_ref || k->rhs_lit ? 0 : QIAO_ENOMEM;
}

/* A string or a list of strings: conditions. */
static int s_parse_conds(struct ld *c, const config_setting_t *g, const char *key, const char *where,
			 struct wf_cond **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	const config_setting_t *v = config_setting_get_member(g, key);
	if (!v)
		return 0;
	int t = config_setting_type(v);
	if (t == CONFIG_TYPE_STRING) {
		*out = calloc(1, sizeof **out);
		if (!*out)
			return QIAO_ENOMEM;
		*n = 1;
		return s_parse_cond(c, v, where, config_setting_get_string(v), *out);
	}
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
		return s_fail(c, v, "%s: %s is a condition string or a list of them", where, key);
	int m = config_setting_length(v);
	*out = calloc((size_t)(m ? m : 1), sizeof **out);
	if (!*out)
		return QIAO_ENOMEM;
	for (int i = 0; i < m; i++) {
		const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return s_fail(c, e, "%s: %s[%d] must be a condition string", where, key, i);
		*n = (size_t)i + 1;
		TRY(s_parse_cond(c, e, where, config_setting_get_string(e), &(*out)[i]));
	}
	return 0;
}

static int s_check_conds(struct ld *c, const config_setting_t *at, const char *where, const struct wf_cond *k,
			 size_t n, size_t s, int self, const ProtobufCMessageDescriptor *reply)
{
	for (size_t i = 0; i < n; i++) {
		TRY(s_check_ref(c, at, where, &k[i].lhs, s, self, reply));
		if (k[i].rhs_ref)
			TRY(s_check_ref(c, at, where, &k[i].rhs, s, self, reply));
	}
	return 0;
}

/* ---- settings ------------------------------------------------------------------ */

static int s_keys(struct ld *c, const config_setting_t *g, const char *where, const char *const *known)
{
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(e);
		int ok = 0;
		for (int k = 0; known[k] && !ok; k++)
			ok = strcmp(known[k], name) == 0;
		if (!ok) {
			char list[600] = "";
			size_t o = 0;
			for (int k = 0; known[k] && o + 40 < sizeof list; k++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "", known[k]);
			return s_fail(c, e, "%s: unknown key '%s' (known: %s)", where, name, list);
		}
	}
	return 0;
}

static int s_str(struct ld *c, const config_setting_t *g, const char *key, int required, const char *where,
		 char **out)
{
	const config_setting_t *v = config_setting_get_member(g, key);
	if (!v) {
		if (required)
			return s_fail(c, g, "%s: %s is required", where, key);
		return 0;
	}
	if (config_setting_type(v) != CONFIG_TYPE_STRING)
		return s_fail(c, v, "%s: %s must be a string", where, key);
	free(*out);
	*out = strdup(config_setting_get_string(v));
	return *out ? 0 : QIAO_ENOMEM;
}

static int s_int(struct ld *c, const config_setting_t *g, const char *key, long long lo, long long hi,
		 const char *where, int64_t *out)
{
	const config_setting_t *v = config_setting_get_member(g, key);
	if (!v)
		return 0;
	long long x;
	if (config_setting_type(v) == CONFIG_TYPE_INT)
		x = config_setting_get_int(v);
	else if (config_setting_type(v) == CONFIG_TYPE_INT64)
		x = config_setting_get_int64(v);
	else
		return s_fail(c, v, "%s: %s must be an integer", where, key);
	if (x < lo || x > hi)
		return s_fail(c, v, "%s: %s = %lld is outside %lld..%lld", where, key, x, lo, hi);
	*out = x;
	return 0;
}

static int s_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 48)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static const char *const s_codes_ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

/* The service of a call: exact, or "${...}/name.vN" resolved by name. */
static int s_resolve_service(struct ld *c, const config_setting_t *at, const char *where, struct wf_call *k)
{
	if (k->service.kind == T_LIT) {
		const char *id = json_string_value(k->service.lit);
		const struct gw_service *s = id ? gw_config_service(c->cfg, id) : NULL;
		if (!s)
			return s_fail(c, at, "%s: service '%s' is not in the gateway's member registry", where,
				      id ? id : "");
		if (s->one_way)
			return s_fail(c, at, "%s: service %s is one-way (an EVENT): a step needs an answer", where, s->id);
		k->req_type = s->request_type;
		k->resp_type = s->response_type;
		k->idempotent = s->idempotent;
		/* an alias becomes the service id: what the audit and the timeline show */
		json_t *canon = json_string(s->id);
		if (!canon)
			return s_fail(c, at, "%s: out of memory", where);
		json_decref(k->service.lit);
		k->service.lit = canon;
	} else if (k->service.kind == T_STR) {
		const struct wf_part *last = &k->service.parts[k->service.nparts - 1];
		const char *slash = last->text ? strrchr(last->text, '/') : NULL;
		if (!slash || !slash[1] || strchr(slash + 1, '$'))
			return s_fail(c, at, "%s: a service with a ${reference} must end in a literal /NAME.vN "
					     "(\"${input.lender}/payoff-quote.v1\")",
				      where);
		const char *name = slash + 1;
		int found = 0;
		k->idempotent = 1;
		for (size_t i = 0; i < gw_config_service_count(c->cfg); i++) {
			const struct gw_service *s = gw_config_service_at(c->cfg, i);
			if (strcmp(s->name, name) != 0)
				continue;
			if (found && (strcmp(k->req_type, s->request_type) != 0 || strcmp(k->resp_type, s->response_type) != 0))
				return s_fail(c, at, "%s: members offering %s disagree on its types (%s and %s): name the "
						     "member",
					      where, name, k->req_type, s->request_type);
			k->req_type = s->request_type;
			k->resp_type = s->response_type;
			k->idempotent &= s->idempotent;
			if (s->one_way)
				return s_fail(c, at, "%s: %s is one-way (an EVENT): a step needs an answer", where, name);
			found = 1;
		}
		if (!found)
			return s_fail(c, at, "%s: no member of the registry offers a service named %s", where, name);
	} else {
		return s_fail(c, at, "%s: service must be a string", where);
	}
	k->req_d = qiao_type_by_name(k->req_type);
	k->resp_d = qiao_type_by_name(k->resp_type);
	if (!k->req_d || !k->resp_d)
		return s_fail(c, at, "%s: the registry names types %s / %s that this gateway does not know", where,
			      k->req_type, k->resp_type);
	/* the descriptors' names: the config (and its strings) may be freed */
	k->req_type = k->req_d->name;
	k->resp_type = k->resp_d->name;
	return 0;
}

struct defaults {
	int64_t timeout_ms, deadline_ms, backoff_ms, max_backoff_ms, retries;
};

static int s_parse_call(struct ld *c, const config_setting_t *g, const char *where, const struct defaults *df,
			struct wf_call *k)
{
	const config_setting_t *sv = config_setting_get_member(g, "service");
	if (!sv)
		return s_fail(c, g, "%s: service is required", where);
	char w[300];
	snprintf(w, sizeof w, "%s: service", where);
	TRY(s_parse_tpl(c, sv, w, &k->service));
	TRY(s_resolve_service(c, sv, where, k));
	const config_setting_t *rq = config_setting_get_member(g, "request");
	if (rq) {
		if (config_setting_type(rq) != CONFIG_TYPE_GROUP)
			return s_fail(c, rq, "%s: request must be a group { field = value; ... }", where);
		snprintf(w, sizeof w, "%s: request", where);
		TRY(s_parse_tpl(c, rq, w, &k->request));
		TRY(s_check_fields(c, rq, w, &k->request, k->req_d));
	} else {
		k->request.kind = T_OBJ;
	}
	const config_setting_t *sb = config_setting_get_member(g, "subjects");
	if (sb) {
		if (config_setting_type(sb) != CONFIG_TYPE_ARRAY && config_setting_type(sb) != CONFIG_TYPE_LIST)
			return s_fail(c, sb, "%s: subjects must be a list of ${references} to DataSubjects", where);
		snprintf(w, sizeof w, "%s: subjects", where);
		TRY(s_parse_tpl(c, sb, w, &k->subjects));
	}
	k->timeout_ms = df->timeout_ms;
	k->deadline_ms = df->deadline_ms;
	k->backoff_ms = df->backoff_ms;
	k->max_backoff_ms = df->max_backoff_ms;
	int64_t retries = df->retries;
	TRY(s_int(c, g, "timeout_ms", 100, 600000, where, &k->timeout_ms));
	TRY(s_int(c, g, "deadline_ms", 100, 31622400000LL, where, &k->deadline_ms));
	TRY(s_int(c, g, "backoff_ms", 10, 3600000, where, &k->backoff_ms));
	TRY(s_int(c, g, "max_backoff_ms", 10, 3600000, where, &k->max_backoff_ms));
	TRY(s_int(c, g, "retries", 0, 1000000, where, &retries));
	k->retries = (unsigned)retries;
	TRY(s_parse_conds(c, g, "fail_when", where, &k->fail, &k->nfail));
	const config_setting_t *fr = config_setting_get_member(g, "fail_reason");
	if (fr) {
		if (config_setting_type(fr) != CONFIG_TYPE_STRING)
			return s_fail(c, fr, "%s: fail_reason must be a string", where);
		snprintf(w, sizeof w, "%s: fail_reason", where);
		TRY(s_parse_tpl(c, fr, w, &k->fail_reason));
	}
	return 0;
}

static void s_call_free(struct wf_call *k)
{
	s_tpl_free(&k->service);
	s_tpl_free(&k->request);
	s_tpl_free(&k->subjects);
	for (size_t i = 0; i < k->nfail; i++)
		s_cond_free(&k->fail[i]);
	free(k->fail);
	s_tpl_free(&k->fail_reason);
}

static int s_check_call(struct ld *c, const config_setting_t *g, const char *where, const struct wf_call *k, size_t s,
			int self)
{
	TRY(s_check_tpl(c, g, where, &k->service, s, self, NULL));
	TRY(s_check_tpl(c, g, where, &k->request, s, self, NULL));
	TRY(s_check_tpl(c, g, where, &k->subjects, s, self, NULL));
	TRY(s_check_conds(c, g, where, k->fail, k->nfail, s, self, k->resp_d));
	TRY(s_check_tpl(c, g, where, &k->fail_reason, s, self, k->resp_d));
	return 0;
}

static int s_code_ok(const char *s)
{
	return s[0] && strspn(s, s_codes_ok) == strlen(s) && strlen(s) <= 64;
}

static int s_load_step(struct ld *c, const config_setting_t *g, size_t idx, const struct defaults *df)
{
	struct wf_def *d = c->def;
	struct wf_step *st = &d->steps[idx];
	char where[200];
	snprintf(where, sizeof where, "steps[%zu]", idx);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return s_fail(c, g, "%s: each step is a group { name = ...; service = ...; }", where);
	static const char *const known[] = {"name", "service", "after", "when", "request", "subjects", "outputs",
					    "fail_when", "fail_reason", "failure_code", "timeout_ms", "deadline_ms",
					    "backoff_ms", "max_backoff_ms", "retries", "compensation", "description",
					    "pivot", NULL};
	TRY(s_keys(c, g, where, known));
	TRY(s_str(c, g, "name", 1, where, &st->name));
	if (!s_name_ok(st->name))
		return s_fail(c, g, "%s: step name '%s': 1..48 characters of a-z, 0-9 and -", where, st->name);
	const config_setting_t *pv = config_setting_get_member(g, "pivot");
	if (pv) {
		if (config_setting_type(pv) != CONFIG_TYPE_BOOL)
			return s_fail(c, pv, "step %s: pivot must be true or false", st->name);
		st->pivot = config_setting_get_bool(pv);
	}
	st->line = config_setting_source_line(g);
	for (size_t i = 0; i < idx; i++)
		if (strcmp(d->steps[i].name, st->name) == 0)
			return s_fail(c, g, "%s: a step named %s is already defined (line %u)", where, st->name,
				      d->steps[i].line);
	snprintf(where, sizeof where, "step %s", st->name);
	TRY(s_parse_call(c, g, where, df, &st->call));
	/* after */
	const config_setting_t *af = config_setting_get_member(g, "after");
	if (af) {
		int t = config_setting_type(af);
		if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
			return s_fail(c, af, "%s: after must be a list of step names [ \"a\", \"b\" ]", where);
		int n = config_setting_length(af);
		st->after = calloc((size_t)(n ? n : 1), sizeof *st->after);
		if (!st->after)
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(af, (unsigned)i);
			const char *name = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
			size_t k = idx;
			for (size_t j = 0; name && j < idx; j++)
				if (strcmp(d->steps[j].name, name) == 0)
					k = j;
			if (k == idx)
				return s_fail(c, e, "%s: after: '%s' is not a step defined above this one", where,
					      name ? name : "?");
			st->after[st->nafter++] = k;
			c->anc[idx][k] = true;
			for (size_t j = 0; j < idx; j++)
				if (c->anc[k][j])
					c->anc[idx][j] = true;
		}
	}
	TRY(s_parse_conds(c, g, "when", where, &st->when, &st->nwhen));
	TRY(s_str(c, g, "failure_code", 0, where, &st->failure_code));
	if (st->failure_code && !s_code_ok(st->failure_code))
		return s_fail(c, g, "%s: failure_code '%s': an enum value name (A-Z, 0-9, _)", where, st->failure_code);
	/* the step's own references */
	TRY(s_check_call(c, g, where, &st->call, idx, 0));
	TRY(s_check_conds(c, g, where, st->when, st->nwhen, idx, 0, NULL));
	/* outputs */
	const config_setting_t *out = config_setting_get_member(g, "outputs");
	if (out) {
		if (config_setting_type(out) != CONFIG_TYPE_GROUP)
			return s_fail(c, out, "%s: outputs must be a group { variable = \"reply.field\"; }", where);
		int n = config_setting_length(out);
		st->out_names = calloc((size_t)(n ? n : 1), sizeof *st->out_names);
		st->out_refs = calloc((size_t)(n ? n : 1), sizeof *st->out_refs);
		if (!st->out_names || !st->out_refs)
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(out, (unsigned)i);
			const char *vn = config_setting_name(e);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return s_fail(c, e, "%s: outputs.%s must be a string \"reply.PATH\"", where, vn);
			st->out_names[i] = strdup(vn);
			if (!st->out_names[i])
				return QIAO_ENOMEM;
			st->nout = (size_t)i + 1;
			char why[600];
			if (s_parse_ref(config_setting_get_string(e), &st->out_refs[i], why, sizeof why) != 0)
				return s_fail(c, e, "%s: outputs.%s: %s", where, vn, why);
			if (st->out_refs[i].root != R_REPLY)
				return s_fail(c, e, "%s: outputs.%s: an output is taken from the reply (reply.PATH)", where,
					      vn);
			TRY(s_check_ref(c, e, where, &st->out_refs[i], idx, 0, st->call.resp_d));
			struct vdecl *nv = realloc(c->vars, (c->nvars + 1) * sizeof *nv);
			if (!nv)
				return QIAO_ENOMEM;
			c->vars = nv;
			c->vars[c->nvars++] = (struct vdecl){.name = st->out_names[i], .step = idx, .d = st->call.resp_d,
							     .ref = &st->out_refs[i]};
		}
	}
	const config_setting_t *cp = config_setting_get_member(g, "compensation");
	if (cp) {
		char w[240];
		snprintf(w, sizeof w, "step %s: compensation", st->name);
		if (config_setting_type(cp) != CONFIG_TYPE_GROUP)
			return s_fail(c, cp, "%s must be a group { service = ...; request = { ... }; }", w);
		static const char *const ck[] = {"service", "request", "subjects", "timeout_ms", "deadline_ms",
						 "backoff_ms", "max_backoff_ms", "retries", "fail_when", "fail_reason",
						 "description", NULL};
		TRY(s_keys(c, cp, w, ck));
		struct defaults cdf = *df;
		cdf.deadline_ms = df->deadline_ms * 24; /* undoing is worth waiting for */
		TRY(s_parse_call(c, cp, w, &cdf, &st->comp));
		st->has_comp = 1;
		TRY(s_check_call(c, cp, w, &st->comp, idx, 1));
	}
	return 0;
}

static void s_def_free(struct wf_def *d)
{
	if (!d)
		return;
	free(d->file);
	free(d->name);
	free(d->title);
	free(d->case_prefix);
	free(d->input_type);
	free(d->purpose);
	free(d->legal_basis);
	s_tpl_free(&d->subjects);
	for (size_t i = 0; i < d->ninput_checks; i++) {
		s_cond_free(&d->input_checks[i]);
		free(d->input_check_msgs[i]);
	}
	free(d->input_checks);
	free(d->input_check_msgs);
	free(d->cancel_code);
	free(d->default_failure_code);
	for (size_t i = 0; i < d->nsteps; i++) {
		struct wf_step *s = &d->steps[i];
		free(s->name);
		s_call_free(&s->call);
		free(s->after);
		for (size_t k = 0; k < s->nwhen; k++)
			s_cond_free(&s->when[k]);
		free(s->when);
		free(s->failure_code);
		for (size_t k = 0; k < s->nout; k++) {
			free(s->out_names[k]);
			s_ref_free(&s->out_refs[k]);
		}
		free(s->out_names);
		free(s->out_refs);
		/* also when has_comp is not yet set: a compensation that failed
		 * to load half-way (s_call_free is a no-op on the zeroed call) */
		s_call_free(&s->comp);
	}
	free(d->steps);
	free(d);
}

void gw_wfdef_free(struct wf_def **d)
{
	if (d && *d) {
		s_def_free(*d);
		*d = NULL;
	}
}

static int s_load(struct ld *c, config_t *lc)
{
	const config_setting_t *root = config_root_setting(lc);
	static const char *const known[] = {"workflow", "steps", NULL};
	TRY(s_keys(c, root, "the top level", known));
	const config_setting_t *w = config_setting_get_member(root, "workflow");
	if (!w || config_setting_type(w) != CONFIG_TYPE_GROUP)
		return s_fail(c, w, "a group workflow = { name = ...; version = ...; input = ...; } is required");
	static const char *const wk[] = {"name", "version", "title", "input", "case_prefix", "purpose", "legal_basis",
					 "subjects", "require", "cancel_code", "failure_code", "deadline_ms",
					 "defaults", "description", NULL};
	TRY(s_keys(c, w, "workflow", wk));
	struct wf_def *d = c->def;
	TRY(s_str(c, w, "name", 1, "workflow", &d->name));
	if (!s_name_ok(d->name))
		return s_fail(c, w, "workflow.name '%s': 1..48 characters of a-z, 0-9 and -", d->name);
	int64_t ver = 1;
	TRY(s_int(c, w, "version", 1, 1000000, "workflow", &ver));
	d->version = (unsigned)ver;
	TRY(s_str(c, w, "title", 0, "workflow", &d->title));
	if (!d->title && !(d->title = strdup(d->name)))
		return QIAO_ENOMEM;
	TRY(s_str(c, w, "input", 1, "workflow", &d->input_type));
	d->input_d = qiao_type_by_name(d->input_type);
	if (!d->input_d)
		return s_fail(c, config_setting_get_member(w, "input"), "workflow.input: no message type %s in proto/",
			      d->input_type);
	TRY(s_str(c, w, "case_prefix", 1, "workflow", &d->case_prefix));
	size_t pl = strlen(d->case_prefix);
	if (pl == 0 || pl > 16 || strspn(d->case_prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != pl)
		return s_fail(c, w, "workflow.case_prefix '%s': 1..16 characters of A-Z and 0-9", d->case_prefix);
	TRY(s_str(c, w, "purpose", 1, "workflow", &d->purpose));
	TRY(s_str(c, w, "legal_basis", 0, "workflow", &d->legal_basis));
	if (!d->legal_basis && !(d->legal_basis = strdup("")))
		return QIAO_ENOMEM;
	TRY(s_str(c, w, "cancel_code", 0, "workflow", &d->cancel_code));
	TRY(s_str(c, w, "failure_code", 0, "workflow", &d->default_failure_code));
	if (!d->cancel_code && !(d->cancel_code = strdup("CANCELLED")))
		return QIAO_ENOMEM;
	if (!d->default_failure_code && !(d->default_failure_code = strdup("FAILED")))
		return QIAO_ENOMEM;
	if (!s_code_ok(d->cancel_code) || !s_code_ok(d->default_failure_code))
		return s_fail(c, w, "workflow.cancel_code / failure_code: enum value names (A-Z, 0-9, _)");
	TRY(s_int(c, w, "deadline_ms", 0, 31622400000LL, "workflow", &d->deadline_ms));
	const config_setting_t *sb = config_setting_get_member(w, "subjects");
	if (!sb || (config_setting_type(sb) != CONFIG_TYPE_ARRAY && config_setting_type(sb) != CONFIG_TYPE_LIST))
		return s_fail(c, sb ? sb : w, "workflow.subjects: a list of ${input...} references to the data "
					      "subjects (DataSubject) every exchange of a case concerns; required");
	TRY(s_parse_tpl(c, sb, "workflow.subjects", &d->subjects));
	TRY(s_check_tpl(c, sb, "workflow.subjects", &d->subjects, SIZE_MAX, 0, NULL));
	const config_setting_t *rq = config_setting_get_member(w, "require");
	if (rq) {
		if (config_setting_type(rq) != CONFIG_TYPE_LIST)
			return s_fail(c, rq, "workflow.require: a list ( { check = \"...\"; message = \"...\"; }, ... )");
		int n = config_setting_length(rq);
		d->input_checks = calloc((size_t)(n ? n : 1), sizeof *d->input_checks);
		d->input_check_msgs = calloc((size_t)(n ? n : 1), sizeof *d->input_check_msgs);
		if (!d->input_checks || !d->input_check_msgs)
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(rq, (unsigned)i);
			static const char *const rk[] = {"check", "message", NULL};
			if (config_setting_type(e) != CONFIG_TYPE_GROUP)
				return s_fail(c, e, "workflow.require[%d]: a group { check = ...; message = ...; }", i);
			TRY(s_keys(c, e, "workflow.require", rk));
			char *chk = NULL;
			TRY(s_str(c, e, "check", 1, "workflow.require", &chk));
			d->ninput_checks = (size_t)i + 1;
			int rc = s_parse_cond(c, e, "workflow.require", chk, &d->input_checks[i]);
			free(chk);
			TRY(rc);
			TRY(s_str(c, e, "message", 1, "workflow.require", &d->input_check_msgs[i]));
			TRY(s_check_conds(c, e, "workflow.require", &d->input_checks[i], 1, SIZE_MAX, 0, NULL));
		}
	}
	struct defaults df = {.timeout_ms = 10000, .deadline_ms = 3600000, .backoff_ms = 500, .max_backoff_ms = 60000,
			      .retries = 0};
	const config_setting_t *dg = config_setting_get_member(w, "defaults");
	if (dg) {
		static const char *const dk[] = {"timeout_ms", "deadline_ms", "backoff_ms", "max_backoff_ms", "retries",
						 NULL};
		TRY(s_keys(c, dg, "workflow.defaults", dk));
		TRY(s_int(c, dg, "timeout_ms", 100, 600000, "workflow.defaults", &df.timeout_ms));
		TRY(s_int(c, dg, "deadline_ms", 100, 31622400000LL, "workflow.defaults", &df.deadline_ms));
		TRY(s_int(c, dg, "backoff_ms", 10, 3600000, "workflow.defaults", &df.backoff_ms));
		TRY(s_int(c, dg, "max_backoff_ms", 10, 3600000, "workflow.defaults", &df.max_backoff_ms));
		TRY(s_int(c, dg, "retries", 0, 1000000, "workflow.defaults", &df.retries));
	}
	const config_setting_t *steps = config_setting_get_member(root, "steps");
	if (!steps || config_setting_type(steps) != CONFIG_TYPE_LIST || config_setting_length(steps) == 0)
		return s_fail(c, steps, "steps = ( { name = ...; service = ...; }, ... ) with at least one step is "
					"required");
	int n = config_setting_length(steps);
	if (n > MAX_STEPS)
		return s_fail(c, steps, "at most %d steps", MAX_STEPS);
	d->steps = calloc((size_t)n, sizeof *d->steps);
	if (!d->steps)
		return QIAO_ENOMEM;
	for (int i = 0; i < n; i++) {
		d->nsteps = (size_t)i + 1;
		TRY(s_load_step(c, config_setting_get_elem(steps, (unsigned)i), (size_t)i, &df));
	}
	return 0;
}

int gw_wfdef_load(const char *path, const struct gw_config *cfg, struct wf_def **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	config_t lc;
	config_init(&lc);
	int ok = config_read(&lc, f);
	fclose(f);
	if (!ok) {
		if (err && errlen)
			snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&lc), config_error_text(&lc));
		config_destroy(&lc);
		return QIAO_ECONFIG;
	}
	struct ld *c = calloc(1, sizeof *c);
	struct wf_def *d = calloc(1, sizeof *d);
	if (!c || !d) {
		free(c);
		free(d);
		config_destroy(&lc);
		return QIAO_ENOMEM;
	}
	const char *base = strrchr(path, '/');
	c->file = base ? base + 1 : path;
	c->cfg = cfg;
	c->err = err;
	c->errlen = errlen;
	c->def = d;
	d->file = strdup(path);
	int rc = d->file ? s_load(c, &lc) : QIAO_ENOMEM;
	config_destroy(&lc);
	free(c->vars);
	free(c);
	if (rc != 0) {
		if (rc == QIAO_ENOMEM && err && errlen && !err[0])
			snprintf(err, errlen, "%s: out of memory", path);
		s_def_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

static int s_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int gw_wfdef_load_dir(const char *dir, const struct gw_config *cfg, struct wf_def ***out, size_t *n, char *err,
		      size_t errlen)
{
	*out = NULL;
	*n = 0;
	DIR *dh = opendir(dir);
	if (!dh) {
		int e = errno;
		snprintf(err, errlen, "workflow definitions %s: %s", dir, strerror(e));
		return -e;
	}
	char **names = NULL;
	size_t nn = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(dh)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 4 || strcmp(de->d_name + l - 3, ".wf") != 0 || de->d_name[0] == '.')
			continue;
		char **nv = realloc(names, (nn + 1) * sizeof *nv);
		if (!nv || !(nv[nn] = strdup(de->d_name))) {
			names = nv ? nv : names;
			rc = QIAO_ENOMEM;
			break;
		}
		names = nv;
		nn++;
	}
	closedir(dh);
	if (nn)
		qsort(names, nn, sizeof *names, s_cmp);
	struct wf_def **defs = calloc(nn ? nn : 1, sizeof *defs);
	if (!defs)
		rc = QIAO_ENOMEM;
	size_t nd = 0;
	for (size_t i = 0; rc == 0 && i < nn; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		rc = gw_wfdef_load(p, cfg, &defs[nd], err, errlen);
		if (rc != 0)
			break;
		for (size_t k = 0; k < nd; k++)
			if (strcmp(defs[k]->name, defs[nd]->name) == 0) {
				snprintf(err, errlen, "%s: workflow %s is already defined by %s", names[i], defs[nd]->name,
					 defs[k]->file);
				rc = QIAO_ECONFIG;
			}
		nd++;
	}
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	if (rc != 0) {
		gw_wfdef_free_all(&defs, nd);
		return rc;
	}
	*out = defs;
	*n = nd;
	return 0;
}

void gw_wfdef_free_all(struct wf_def ***defs, size_t n)
{
	if (!defs || !*defs)
		return;
	for (size_t i = 0; i < n; i++)
		gw_wfdef_free(&(*defs)[i]);
	free(*defs);
	*defs = NULL;
}

/* ---- evaluation ------------------------------------------------------------------ */

static json_t *s_path_eval(json_t *v, const struct wf_pel *el, size_t nel, const char *text, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < nel; i++) {
		if (!v || json_is_null(v)) {
			snprintf(err, errlen, "%s is not set", text);
			return NULL;
		}
		if (el[i].name) {
			if (!json_is_object(v)) {
				snprintf(err, errlen, "%s: .%s of something that is not an object", text, el[i].name);
				return NULL;
			}
			v = json_object_get(v, el[i].name);
		} else if (el[i].index >= 0) {
			if (!json_is_array(v)) {
				snprintf(err, errlen, "%s: [%ld] of something that is not a list", text, el[i].index);
				return NULL;
			}
			if ((size_t)el[i].index >= json_array_size(v)) {
				snprintf(err, errlen, "%s: the list has %zu elements", text, json_array_size(v));
				return NULL;
			}
			v = json_array_get(v, (size_t)el[i].index);
		} else {
			if (!json_is_array(v)) {
				snprintf(err, errlen, "%s: [*] of something that is not a list", text);
				return NULL;
			}
			json_t *a = json_array();
			size_t k;
			json_t *e;
			/* a projection leaves out what is unset, null or "" in an
			 * element (e.g. the voucher of a tax item not due) */
			json_array_foreach(v, k, e) {
				json_t *x = s_path_eval(e, el + i + 1, nel - i - 1, text, err, errlen);
				if (!x || json_is_null(x) || (json_is_string(x) && !json_string_value(x)[0])) {
					json_decref(x);
					continue;
				}
				json_array_append_new(a, x);
			}
			return a;
		}
	}
	if (!v) {
		snprintf(err, errlen, "%s is not set", text);
		return NULL;
	}
	return json_incref(v);
}

json_t *gw_wf_eval_ref(const struct wf_ref *r, const struct wf_ctx *c, char *err, size_t errlen)
{
	switch (r->root) {
	case R_NOW:
		return json_integer(c->now_ms + r->add);
	case R_INPUT:
		return s_path_eval((json_t *)c->input, r->el, r->nel, r->text, err, errlen);
	case R_REPLY:
		if (!c->reply) {
			snprintf(err, errlen, "%s: no reply here", r->text);
			return NULL;
		}
		return s_path_eval((json_t *)c->reply, r->el, r->nel, r->text, err, errlen);
	case R_VAR: {
		json_t *v = c->vars ? json_object_get(c->vars, r->var) : NULL;
		if (!v) {
			snprintf(err, errlen, "%s: variable %s is not set (the step that sets it did not run)", r->text,
				 r->var);
			return NULL;
		}
		return s_path_eval(v, r->el, r->nel, r->text, err, errlen);
	}
	case R_CASE: {
		json_t *v = c->casev ? json_object_get(c->casev, r->var) : NULL;
		return v ? json_incref(v) : json_string("");
	}
	}
	snprintf(err, errlen, "bad reference");
	return NULL;
}

char *gw_wf_text(const json_t *v)
{
	if (!v || json_is_null(v))
		return strdup("");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

json_t *gw_wf_eval(const struct wf_tpl *t, const struct wf_ctx *c, char *err, size_t errlen)
{
	switch (t->kind) {
	case T_LIT:
		return json_incref(t->lit);
	case T_REF:
		return gw_wf_eval_ref(&t->ref, c, err, errlen);
	case T_STR: {
		size_t len = 0, cap = 64;
		char *buf = malloc(cap);
		if (!buf)
			return NULL;
		buf[0] = '\0';
		for (size_t i = 0; i < t->nparts; i++) {
			char *piece;
			if (t->parts[i].text) {
				piece = strdup(t->parts[i].text);
			} else {
				json_t *v = gw_wf_eval_ref(&t->parts[i].ref, c, err, errlen);
				if (!v) {
					free(buf);
					return NULL;
				}
				piece = gw_wf_text(v);
				json_decref(v);
			}
			if (!piece) {
				free(buf);
				return NULL;
			}
			size_t pl = strlen(piece);
			if (len + pl + 1 > cap) {
				while (len + pl + 1 > cap)
					cap *= 2;
				char *nb = realloc(buf, cap);
				if (!nb) {
					free(piece);
					free(buf);
					return NULL;
				}
				buf = nb;
			}
			memcpy(buf + len, piece, pl + 1);
			len += pl;
			free(piece);
		}
		json_t *s = json_string(buf);
		free(buf);
		return s;
	}
	case T_OBJ: {
		json_t *o = json_object();
		for (size_t i = 0; o && i < t->n; i++) {
			json_t *v = gw_wf_eval(&t->vals[i], c, err, errlen);
			if (!v) {
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, t->keys[i], v);
		}
		return o;
	}
	case T_ARR: {
		json_t *a = json_array();
		for (size_t i = 0; a && i < t->n; i++) {
			json_t *v = gw_wf_eval(&t->vals[i], c, err, errlen);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	}
	return json_null();
}

static int s_truthy(const json_t *v)
{
	if (!v || json_is_null(v) || json_is_false(v))
		return 0;
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_real(v))
		return json_real_value(v) != 0;
	if (json_is_string(v))
		return json_string_value(v)[0] != '\0';
	if (json_is_array(v))
		return json_array_size(v) != 0;
	return 1;
}

int gw_wf_cond(const struct wf_cond *k, const struct wf_ctx *c, char *err, size_t errlen)
{
	json_t *l = gw_wf_eval_ref(&k->lhs, c, err, errlen);
	if (!l) {
		/* an unset message reads as "no": `reply.mortgage` of a reply without one */
		if (k->op == OP_TRUE) {
			err[0] = '\0';
			return k->neg ? 1 : 0;
		}
		return -1;
	}
	int res;
	if (k->op == OP_TRUE) {
		res = s_truthy(l);
		json_decref(l);
		return k->neg ? !res : res;
	}
	json_t *r = k->rhs_ref ? gw_wf_eval_ref(&k->rhs, c, err, errlen) : json_incref(k->rhs_lit);
	if (!r) {
		json_decref(l);
		return -1;
	}
	int cmp = 0, comparable = 1;
	if (json_is_number(l) && json_is_number(r)) {
		double a = json_number_value(l), b = json_number_value(r);
		if (json_is_integer(l) && json_is_integer(r)) {
			json_int_t x = json_integer_value(l), y = json_integer_value(r);
			cmp = x < y ? -1 : x > y;
		} else {
			cmp = a < b ? -1 : a > b;
		}
	} else if (json_is_string(l) && json_is_string(r)) {
		cmp = strcmp(json_string_value(l), json_string_value(r));
	} else if (json_is_boolean(l) && json_is_boolean(r)) {
		cmp = json_is_true(l) == json_is_true(r) ? 0 : 1;
	} else {
		comparable = json_equal(l, r);
		cmp = comparable ? 0 : 1;
		comparable = k->op == OP_EQ || k->op == OP_NE;
	}
	json_decref(l);
	json_decref(r);
	if (!comparable) {
		snprintf(err, errlen, "condition \"%s\": the two sides cannot be ordered", k->text);
		return -1;
	}
	switch (k->op) {
	case OP_EQ: return cmp == 0;
	case OP_NE: return cmp != 0;
	case OP_LT: return cmp < 0;
	case OP_LE: return cmp <= 0;
	case OP_GT: return cmp > 0;
	case OP_GE: return cmp >= 0;
	}
	return -1;
}
