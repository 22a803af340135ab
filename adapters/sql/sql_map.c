/*
 * sql_map.c - the mapping file of qiao-sql: loading, checking against the
 * qiao.v1 descriptors, and checking the SQL against the database.
 *
 * The file (libconfig syntax, the same as the gateway's; every error names
 * its file and line):
 *
 *   services = (
 *     { name = "payoff-quote.v1";                 # "<name>.v<N>"
 *       request = "qiao.v1.PayoffQuoteRequest";    # any qiao.v1 message
 *       response = "qiao.v1.PayoffQuote";
 *       description = "...";                       # optional, for --help
 *       fields = (                                 # checks of request fields
 *         { field = "seller.id"; required = true; id = "subject"; },
 *         { field = "cert_no"; required = true; id = "cert"; },
 *         { field = "loan_contract_no"; required = true; max_chars = 64; },
 *         { field = "planned_payoff_date"; required = true; format = "date"; },
 *         { field = "amount_fen"; min = 1; },
 *         { field = "sellers"; required = true; max_items = 32; },
 *         { field = "sellers[].id"; id = "subject"; } );
 *       refuse = (                                 # a row = a refusal
 *         { sql = "SELECT '...' FROM ... WHERE x = :x"; params = { x = "loan_contract_no"; };
 *           code = "REJECTED"; field = "loan_contract_no"; } );
 *       idempotency_key = [ "loan_contract_no", "planned_payoff_date" ];
 *       write = (                                  # in one transaction
 *         { sql = "INSERT ..."; params = { ... }; },
 *         { for_each = "sellers"; sql = "INSERT ..."; params = { n = "sellers[].name"; }; } );
 *       queries = (                                # build the response
 *         { sql = "SELECT a AS quote_no, ... WHERE k = ?"; params = [ "loan_contract_no" ];
 *           columns = { quote_no = "quote_no"; acct = "payoff_account.account_no"; };
 *           max_rows = 1000; } );
 *       on_no_row = "not-found";                  # or "empty"
 *       not_found_message = "..."; }
 *   );
 *
 * Field paths: names joined by "."; a repeated field takes "[N]" (that
 * element, absent when there is none) or "[]" (every element: in `fields`,
 * in a write's for_each parameters and in response columns, where each
 * row adds one element).  Parameters may also be header values: @requester,
 * @user_id, @case_id, @purpose, @service, @now_ms, @today, @request_id; an
 * enum parameter written "reason#name" binds the value's name.
 */
#include "sql_map.h"
#include "qiao_types.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.pb-c.h"
#include "bank.pb-c.h"
#include "control.pb-c.h"
#include "credit.pb-c.h"
#include "envelope.pb-c.h"
#include "housing.pb-c.h"
#include "identity.pb-c.h"
#include "licence.pb-c.h"
#include "qiao_err.h"
#include "realestate.pb-c.h"
#include "tax.pb-c.h"
#include "workflow.pb-c.h"

/*
 * Every qiao.v1 message a mapping may name.  protobuf-c keeps no registry
 * of the descriptors it generated, so they are listed here;
 * tests/test_sql_adapter.c checks (through qiao-sql --list-types) that the
 * list names every message declared in the .proto files of proto/.
 */
const ProtobufCMessageDescriptor *sm_type(const char *name)
{
	return qiao_type_by_name(name);
}

int sm_error_code(const char *name)
{
	static const struct {
		const char *n;
		int code;
	} t[] = {
		{"BAD_REQUEST", QIAO__V1__ERROR_CODE__BAD_REQUEST},
		{"INVALID_IDENTIFIER", QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER},
		{"NOT_FOUND", QIAO__V1__ERROR_CODE__NOT_FOUND},
		{"REJECTED", QIAO__V1__ERROR_CODE__REJECTED},
	};
	for (size_t i = 0; name && i < sizeof t / sizeof t[0]; i++)
		if (strcmp(t[i].n, name) == 0)
			return t[i].code;
	return 0;
}

/* ---- loading context and errors -------------------------------------- */

struct s_ctx {
	const char *path;
	const char *svc;     /* name of the service being read, or NULL */
	int svc_no;
	char *err;
	size_t errlen;
};

static int s_fail_at(struct s_ctx *c, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int s_fail_at(struct s_ctx *c, const char *file, unsigned line, const char *fmt, ...)
{
	if (!c->err || !c->errlen)
		return QIAO_ECONFIG;
	if (!file)
		file = c->path;
	if (line == 0)
		line = 1;
	int n;
	if (c->svc)
		n = snprintf(c->err, c->errlen, "%s:%u: service \"%s\": ", file, line, c->svc);
	else if (c->svc_no > 0)
		n = snprintf(c->err, c->errlen, "%s:%u: service #%d: ", file, line, c->svc_no);
	else
		n = snprintf(c->err, c->errlen, "%s:%u: ", file, line);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return QIAO_ECONFIG;
}

#define S_FAIL(c, s, ...)                                                                          \
	s_fail_at((c), (s) ? config_setting_source_file(s) : NULL, (s) ? config_setting_source_line(s) : 0, \
		  __VA_ARGS__)

static char *s_dup(const char *s)
{
	return strdup(s ? s : "");
}

/* Refuse members of group `g` not in `allowed` (NULL-terminated). */
static int s_keys(struct s_ctx *c, const config_setting_t *g, const char *what, const char *const *allowed)
{
	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return S_FAIL(c, g, "%s must be a group { ... }", what);
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		int ok = 0;
		for (size_t k = 0; allowed[k]; k++)
			ok |= name && strcmp(name, allowed[k]) == 0;
		if (!ok) {
			char list[400] = "";
			size_t len = 0;
			for (size_t k = 0; allowed[k] && len + 1 < sizeof list; k++)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "",
							allowed[k]);
			return S_FAIL(c, m, "unknown key '%s' in %s (allowed: %s)", name ? name : "?", what, list);
		}
	}
	return 0;
}

/* The string member `key` of `g`: 0 and *out (borrowed; NULL when absent and
 * !required), or an error. */
static int s_str(struct s_ctx *c, const config_setting_t *g, const char *key, int required, const char *what,
		 const char **out)
{
	*out = NULL;
	config_setting_t *s = config_setting_get_member(g, key);
	if (!s) {
		if (required)
			return S_FAIL(c, g, "%s needs %s = \"...\"", what, key);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return S_FAIL(c, s, "%s.%s must be a string in double quotes", what, key);
	*out = config_setting_get_string(s);
	if (required && (!*out || !**out))
		return S_FAIL(c, s, "%s.%s must not be empty", what, key);
	return 0;
}

static int s_bool(struct s_ctx *c, const config_setting_t *g, const char *key, const char *what, int *out)
{
	*out = 0;
	config_setting_t *s = config_setting_get_member(g, key);
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return S_FAIL(c, s, "%s.%s must be true or false", what, key);
	*out = config_setting_get_bool(s);
	return 0;
}

static int s_int(struct s_ctx *c, const config_setting_t *g, const char *key, const char *what, int *has,
		 long long *out)
{
	*has = 0;
	*out = 0;
	config_setting_t *s = config_setting_get_member(g, key);
	if (!s)
		return 0;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return S_FAIL(c, s, "%s.%s must be an integer (beyond 2^31, with the suffix L)", what, key);
	*has = 1;
	*out = config_setting_get_int64(s);
	return 0;
}

/* ---- field paths ----------------------------------------------------- */

static const char *s_type_name(const ProtobufCFieldDescriptor *f, char *buf, size_t n)
{
	static const char *const names[] = {
		[PROTOBUF_C_TYPE_INT32] = "int32",   [PROTOBUF_C_TYPE_SINT32] = "sint32",
		[PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
		[PROTOBUF_C_TYPE_SINT64] = "sint64", [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
		[PROTOBUF_C_TYPE_UINT32] = "uint32", [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
		[PROTOBUF_C_TYPE_UINT64] = "uint64", [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
		[PROTOBUF_C_TYPE_FLOAT] = "float",   [PROTOBUF_C_TYPE_DOUBLE] = "double",
		[PROTOBUF_C_TYPE_BOOL] = "bool",     [PROTOBUF_C_TYPE_ENUM] = "enum",
		[PROTOBUF_C_TYPE_STRING] = "string", [PROTOBUF_C_TYPE_BYTES] = "bytes",
		[PROTOBUF_C_TYPE_MESSAGE] = "message",
	};
	const char *t = (unsigned)f->type < sizeof names / sizeof names[0] && names[f->type] ? names[f->type] : "?";
	const char *rep = f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated " : "";
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		snprintf(buf, n, "%smessage %s", rep, ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
	else if (f->type == PROTOBUF_C_TYPE_ENUM)
		snprintf(buf, n, "%senum %s", rep, ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
	else
		snprintf(buf, n, "%s%s", rep, t);
	return buf;
}

static int s_is_int(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 1;
	default:
		return 0;
	}
}

void sm_path_name(const struct sm_path *p, long each, char *buf, size_t n)
{
	if (!n)
		return;
	buf[0] = '\0';
	if (p->meta != SM_META_NONE || p->n == 0) {
		snprintf(buf, n, "%s", p->text ? p->text : "");
		return;
	}
	size_t len = 0;
	for (int i = 0; i < p->n && len < n; i++) {
		int w;
		const char *dot = i ? "." : "";
		if (p->st[i].index == SM_IDX_EACH)
			w = each >= 0 ? snprintf(buf + len, n - len, "%s%s[%ld]", dot, p->st[i].f->name, each)
				      : snprintf(buf + len, n - len, "%s%s[]", dot, p->st[i].f->name);
		else if (p->st[i].index >= 0)
			w = snprintf(buf + len, n - len, "%s%s[%ld]", dot, p->st[i].f->name, p->st[i].index);
		else
			w = snprintf(buf + len, n - len, "%s%s", dot, p->st[i].f->name);
		if (w < 0)
			return;
		len += (size_t)w;
	}
}

static const struct {
	const char *name;
	enum sm_meta meta;
} s_metas[] = {
	{"@requester", SM_META_REQUESTER}, {"@user_id", SM_META_USER},     {"@case_id", SM_META_CASE},
	{"@purpose", SM_META_PURPOSE},     {"@service", SM_META_SERVICE},  {"@now_ms", SM_META_NOW_MS},
	{"@today", SM_META_TODAY},         {"@request_id", SM_META_REQUEST_ID},
};

/* The list of a message's field names, for error messages. */
static void s_field_list(const ProtobufCMessageDescriptor *d, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_fields && len + 1 < n; i++) {
		int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", d->fields[i].name);
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

/*
 * Parse `text` against `root` into *p (generic rules: every name a field,
 * only the last step may be a non-message, indices only on repeated
 * fields, at most one "[]").  `s` is the setting (for the line).
 */
static int s_path(struct s_ctx *c, const config_setting_t *s, const char *text, const ProtobufCMessageDescriptor *root,
		  int allow_meta, int allow_enum_name, struct sm_path *p)
{
	memset(p, 0, sizeof *p);
	p->each = -1;
	p->line = s ? config_setting_source_line(s) : 0;
	p->text = s_dup(text);
	if (!p->text)
		return QIAO_ENOMEM;
	if (!text || !*text)
		return S_FAIL(c, s, "an empty field path");
	if (text[0] == '@') {
		for (size_t i = 0; i < sizeof s_metas / sizeof s_metas[0]; i++)
			if (strcmp(s_metas[i].name, text) == 0) {
				if (!allow_meta)
					return S_FAIL(c, s, "'%s': header values can only be SQL parameters", text);
				p->meta = s_metas[i].meta;
				return 0;
			}
		return S_FAIL(c, s, "'%s' is not a header value (@requester, @user_id, @case_id, @purpose, "
				    "@service, @now_ms, @today, @request_id)", text);
	}
	const ProtobufCMessageDescriptor *d = root;
	const char *q = text;
	char fl[600], tn[160];
	for (;;) {
		if (p->n == SM_MAX_DEPTH)
			return S_FAIL(c, s, "'%s': deeper than %d fields", text, SM_MAX_DEPTH);
		if (!d) {
			const ProtobufCFieldDescriptor *prev = p->st[p->n - 1].f;
			return S_FAIL(c, s, "'%s': '%s' is %s, it has no fields", text, prev->name,
				      s_type_name(prev, tn, sizeof tn));
		}
		char name[64];
		size_t k = 0;
		while (*q && (isalnum((unsigned char)*q) || *q == '_')) {
			if (k + 1 >= sizeof name)
				return S_FAIL(c, s, "'%s': a field name is too long", text);
			name[k++] = *q++;
		}
		name[k] = '\0';
		if (k == 0)
			return S_FAIL(c, s, "'%s' is not a field path (names joined by '.', e.g. \"seller.id.id\", "
					    "\"items[].tax_type\", \"sellers[0].name\")", text);
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
		if (!f) {
			s_field_list(d, fl, sizeof fl);
			return S_FAIL(c, s, "'%s': %s has no field '%s' (its fields: %s)", text, d->name, name, fl);
		}
		long index = SM_IDX_NONE;
		if (*q == '[') {
			q++;
			if (*q == ']') {
				index = SM_IDX_EACH;
			} else {
				char *end;
				errno = 0;
				long v = strtol(q, &end, 10);
				if (end == q || *end != ']' || errno || v < 0 || v > 100000 || !isdigit((unsigned char)*q))
					return S_FAIL(c, s, "'%s': after '%s' write [] or [N]", text, name);
				index = v;
				q = end;
			}
			q++;
			if (f->label != PROTOBUF_C_LABEL_REPEATED)
				return S_FAIL(c, s, "'%s': '%s' is not repeated, so it takes no [ ]", text, name);
			if (index == SM_IDX_EACH) {
				if (p->each >= 0)
					return S_FAIL(c, s, "'%s': at most one [] in a path", text);
				p->each = p->n;
			}
		}
		p->st[p->n].f = f;
		p->st[p->n].index = index;
		p->n++;
		d = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
		if (*q == '.') {
			if (f->label == PROTOBUF_C_LABEL_REPEATED && index == SM_IDX_NONE)
				return S_FAIL(c, s, "'%s': '%s' is repeated: write %s[N] for one element or %s[] "
						    "for each", text, name, name, name);
			q++;
			continue;
		}
		if (*q == '#' && strcmp(q, "#name") == 0) {
			if (!allow_enum_name)
				return S_FAIL(c, s, "'%s': #name only applies to SQL parameters", text);
			if (f->type != PROTOBUF_C_TYPE_ENUM)
				return S_FAIL(c, s, "'%s': #name needs an enum field, '%s' is %s", text, name,
					      s_type_name(f, tn, sizeof tn));
			p->enum_name = 1;
			break;
		}
		if (*q)
			return S_FAIL(c, s, "'%s': unexpected '%c' after '%s'", text, *q, name);
		break;
	}
	return 0;
}

static const ProtobufCFieldDescriptor *s_last(const struct sm_path *p)
{
	return p->n ? p->st[p->n - 1].f : NULL;
}

/* A path whose last step is one value to bind (request side). */
static int s_path_value(struct s_ctx *c, const config_setting_t *s, const struct sm_path *p, const char *what)
{
	if (p->meta)
		return 0;
	const ProtobufCFieldDescriptor *f = s_last(p);
	char tn[160];
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return S_FAIL(c, s, "%s '%s' is %s: bind one of its fields", what, p->text,
			      s_type_name(f, tn, sizeof tn));
	if (f->label == PROTOBUF_C_LABEL_REPEATED && p->st[p->n - 1].index == SM_IDX_NONE)
		return S_FAIL(c, s, "%s '%s' is %s: bind %s[N]", what, p->text, s_type_name(f, tn, sizeof tn),
			      p->text);
	return 0;
}

static int s_same_steps(const struct sm_path *a, const struct sm_path *b, int n)
{
	if (a->n < n || b->n < n)
		return 0;
	for (int i = 0; i < n; i++)
		if (a->st[i].f != b->st[i].f || (i < n - 1 && a->st[i].index != b->st[i].index))
			return 0;
	return 1;
}

/* ---- statements ------------------------------------------------------ */

static int s_params(struct s_ctx *c, const config_setting_t *g, const char *what, const struct sm_service *sv,
		    struct sm_stmt *st)
{
	config_setting_t *ps = config_setting_get_member(g, "params");
	if (!ps)
		return 0;
	int t = config_setting_type(ps);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_GROUP)
		return S_FAIL(c, ps, "%s.params must be [ \"path\", ... ] (for ?) or { name = \"path\"; ... } "
				     "(for :name)", what);
	st->named = t == CONFIG_TYPE_GROUP;
	int n = config_setting_length(ps);
	st->params = calloc((size_t)n + 1, sizeof *st->params);
	if (!st->params)
		return QIAO_ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(ps, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return S_FAIL(c, e, "%s.params: each parameter is a field path in double quotes", what);
		struct sm_param *pm = &st->params[st->nparams++];
		if (st->named) {
			pm->name = s_dup(config_setting_name(e));
			if (!pm->name)
				return QIAO_ENOMEM;
		}
		int rc = s_path(c, e, config_setting_get_string(e), sv->req, 1, 1, &pm->path);
		if (rc)
			return rc;
		char pw[96];
		snprintf(pw, sizeof pw, "%s parameter", what);
		if ((rc = s_path_value(c, e, &pm->path, pw)) != 0)
			return rc;
		if (pm->path.each >= 0) {
			if (!st->has_for_each)
				return S_FAIL(c, e, "%s: '%s' has [], which only a write with for_each binds "
						    "(else write [N])", what, pm->path.text);
			const struct sm_path *fe = &st->for_each;
			if (pm->path.each != fe->n - 1 || !s_same_steps(&pm->path, fe, fe->n))
				return S_FAIL(c, e, "%s: '%s' has [] on another field than for_each \"%s\"", what,
					      pm->path.text, fe->text);
		}
		/* identifiers checked as cert/proof numbers are bound normalised */
		for (size_t k = 0; k < sv->nchecks; k++) {
			const struct sm_check *ck = &sv->checks[k];
			if ((ck->kind == QIAO_ID_CERT || ck->kind == QIAO_ID_PROOF) && ck->path.n == pm->path.n &&
			    s_same_steps(&ck->path, &pm->path, pm->path.n))
				pm->path.norm = ck->kind;
		}
	}
	return 0;
}

static const char *const s_stmt_keys[][7] = {
	[SM_REFUSE] = {"sql", "params", "code", "field", NULL},
	[SM_WRITE] = {"sql", "params", "for_each", NULL},
	[SM_QUERY] = {"sql", "params", "columns", "max_rows", NULL},
};

static int s_stmt(struct s_ctx *c, const config_setting_t *g, enum sm_stmt_kind kind, const char *list, int i,
		  const struct sm_service *sv, struct sm_stmt *st)
{
	st->kind = kind;
	snprintf(st->what, sizeof st->what, "%s[%d]", list, i);
	int rc = s_keys(c, g, st->what, s_stmt_keys[kind]);
	if (rc)
		return rc;
	const char *sql;
	if ((rc = s_str(c, g, "sql", 1, st->what, &sql)) != 0)
		return rc;
	st->sql = s_dup(sql);
	if (!st->sql)
		return QIAO_ENOMEM;
	st->line = config_setting_source_line(config_setting_get_member(g, "sql"));
	if (kind == SM_WRITE) {
		const char *fe;
		if ((rc = s_str(c, g, "for_each", 0, st->what, &fe)) != 0)
			return rc;
		if (fe) {
			config_setting_t *fs = config_setting_get_member(g, "for_each");
			if ((rc = s_path(c, fs, fe, sv->req, 0, 0, &st->for_each)) != 0)
				return rc;
			st->has_for_each = 1;
			const ProtobufCFieldDescriptor *f = s_last(&st->for_each);
			if (f->label != PROTOBUF_C_LABEL_REPEATED || st->for_each.st[st->for_each.n - 1].index != SM_IDX_NONE ||
			    st->for_each.each >= 0)
				return S_FAIL(c, fs, "%s.for_each '%s' must name a repeated field (without [ ])",
					      st->what, fe);
		}
	}
	if ((rc = s_params(c, g, st->what, sv, st)) != 0)
		return rc;
	if (kind == SM_REFUSE) {
		const char *code, *field;
		if ((rc = s_str(c, g, "code", 0, st->what, &code)) != 0 ||
		    (rc = s_str(c, g, "field", 0, st->what, &field)) != 0)
			return rc;
		st->code = code ? sm_error_code(code) : QIAO__V1__ERROR_CODE__REJECTED;
		if (!st->code)
			return S_FAIL(c, config_setting_get_member(g, "code"),
				      "%s.code '%s': REJECTED, BAD_REQUEST, NOT_FOUND or INVALID_IDENTIFIER", st->what,
				      code);
		if (field) {
			st->field = s_dup(field);
			if (!st->field)
				return QIAO_ENOMEM;
		}
	}
	if (kind == SM_QUERY) {
		int has;
		long long mr;
		if ((rc = s_int(c, g, "max_rows", st->what, &has, &mr)) != 0)
			return rc;
		if (has && (mr < 1 || mr > 100000))
			return S_FAIL(c, config_setting_get_member(g, "max_rows"), "%s.max_rows: 1 .. 100000",
				      st->what);
		st->max_rows = has ? (long)mr : SM_DEFAULT_MAX_ROWS;
		config_setting_t *cs = config_setting_get_member(g, "columns");
		if (!cs)
			return S_FAIL(c, g, "%s needs columns = { column = \"response.field\"; ... }", st->what);
		if (config_setting_type(cs) != CONFIG_TYPE_GROUP)
			return S_FAIL(c, cs, "%s.columns must be a group { column = \"response.field\"; ... }",
				      st->what);
		int n = config_setting_length(cs);
		st->cols = calloc((size_t)n + 1, sizeof *st->cols);
		if (!st->cols)
			return QIAO_ENOMEM;
		const struct sm_path *group = NULL;
		for (int k = 0; k < n; k++) {
			config_setting_t *e = config_setting_get_elem(cs, (unsigned)k);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return S_FAIL(c, e, "%s.columns.%s must be a response field path in double quotes",
					      st->what, config_setting_name(e));
			struct sm_col *col = &st->cols[st->ncols++];
			col->column = s_dup(config_setting_name(e));
			if (!col->column)
				return QIAO_ENOMEM;
			if ((rc = s_path(c, e, config_setting_get_string(e), sv->resp, 0, 0, &col->path)) != 0)
				return rc;
			struct sm_path *p = &col->path;
			char tn[160];
			const ProtobufCFieldDescriptor *f = s_last(p);
			for (int j = 0; j < p->n; j++) {
				if (p->st[j].index >= 0)
					return S_FAIL(c, e, "'%s': response paths take [] (one element per row), "
							    "not [N]", p->text);
				if (p->st[j].f->label == PROTOBUF_C_LABEL_REPEATED && p->st[j].index != SM_IDX_EACH)
					return S_FAIL(c, e, "'%s': '%s' is repeated: write %s[] (one element per row)",
						      p->text, p->st[j].f->name, p->st[j].f->name);
			}
			if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				return S_FAIL(c, e, "'%s' is %s: map columns to its fields, e.g. \"%s.%s\"", p->text,
					      s_type_name(f, tn, sizeof tn), p->text,
					      ((const ProtobufCMessageDescriptor *)f->descriptor)->n_fields
						      ? ((const ProtobufCMessageDescriptor *)f->descriptor)->fields[0].name
						      : "x");
			if (p->each >= 0) {
				if (!group)
					group = p;
				else if (group->each != p->each || !s_same_steps(group, p, p->each + 1))
					return S_FAIL(c, e, "%s fills both '%s' and '%s': one query fills at most one "
							    "repeated field (use another query)",
						      st->what, group->text, p->text);
			}
			for (int j = 0; j < k; j++)
				if (st->cols[j].path.n == p->n && s_same_steps(&st->cols[j].path, p, p->n))
					return S_FAIL(c, e, "%s: '%s' is filled by both columns %s and %s", st->what,
						      p->text, st->cols[j].column, col->column);
		}
		if (st->ncols == 0)
			return S_FAIL(c, cs, "%s.columns maps no column", st->what);
	}
	return 0;
}

static int s_stmts(struct s_ctx *c, const config_setting_t *g, const char *key, enum sm_stmt_kind kind,
		   const struct sm_service *sv, struct sm_stmt **out, size_t *nout)
{
	config_setting_t *l = config_setting_get_member(g, key);
	*out = NULL;
	*nout = 0;
	if (!l)
		return 0;
	if (config_setting_type(l) != CONFIG_TYPE_LIST)
		return S_FAIL(c, l, "%s must be a list ( { sql = \"...\"; ... }, ... )", key);
	int n = config_setting_length(l);
	if (n > 32)
		return S_FAIL(c, l, "%s: at most 32 statements", key);
	*out = calloc((size_t)n + 1, sizeof **out);
	if (!*out)
		return QIAO_ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		(*nout)++;
		int rc = s_stmt(c, e, kind, key, i, sv, &(*out)[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- request field checks -------------------------------------------- */

static const struct {
	const char *name;
	enum qiao_id_kind kind;
} s_kinds[] = {
	{"resident-id", QIAO_ID_RESIDENT}, {"uscc", QIAO_ID_USCC},       {"unit", QIAO_ID_UNIT},
	{"cert", QIAO_ID_CERT},            {"proof", QIAO_ID_PROOF},     {"licence", QIAO_ID_LICENCE},
	{"member", QIAO_ID_MEMBER},
};

static int s_check(struct s_ctx *c, const config_setting_t *g, int i, const struct sm_service *sv,
		   struct sm_check *ck)
{
	static const char *const keys[] = {"field", "required", "id", "max_chars", "max_items",
					   "min", "max", "format", NULL};
	char what[32];
	snprintf(what, sizeof what, "fields[%d]", i);
	int rc = s_keys(c, g, what, keys);
	if (rc)
		return rc;
	const char *field, *id, *format;
	if ((rc = s_str(c, g, "field", 1, what, &field)) != 0)
		return rc;
	config_setting_t *fs = config_setting_get_member(g, "field");
	if ((rc = s_path(c, fs, field, sv->req, 0, 0, &ck->path)) != 0)
		return rc;
	struct sm_path *p = &ck->path;
	for (int j = 0; j + 1 < p->n; j++)
		if (p->st[j].f->label == PROTOBUF_C_LABEL_REPEATED && p->st[j].index == SM_IDX_NONE)
			return S_FAIL(c, fs, "'%s': write [] or [N] after '%s'", field, p->st[j].f->name);
	const ProtobufCFieldDescriptor *f = s_last(p);
	int list = f->label == PROTOBUF_C_LABEL_REPEATED && p->st[p->n - 1].index == SM_IDX_NONE;
	char tn[160];
	s_type_name(f, tn, sizeof tn);
	if ((rc = s_bool(c, g, "required", what, &ck->required)) != 0)
		return rc;
	if (ck->required && f->type == PROTOBUF_C_TYPE_BOOL && !list)
		return S_FAIL(c, fs, "'%s' is a bool: false is a value, it cannot be required", field);
	if ((rc = s_str(c, g, "id", 0, what, &id)) != 0)
		return rc;
	if (id) {
		config_setting_t *is = config_setting_get_member(g, "id");
		if (strcmp(id, "subject") == 0) {
			if (f->type != PROTOBUF_C_TYPE_MESSAGE || list ||
			    strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "qiao.v1.DataSubject") != 0)
				return S_FAIL(c, is, "id \"subject\" needs a qiao.v1.DataSubject, '%s' is %s", field, tn);
			ck->is_subject = 1;
		} else {
			for (size_t k = 0; k < sizeof s_kinds / sizeof s_kinds[0]; k++)
				if (strcmp(s_kinds[k].name, id) == 0)
					ck->kind = s_kinds[k].kind;
			if (ck->kind == QIAO_ID_UNKNOWN)
				return S_FAIL(c, is, "id '%s' is not an identifier kind (resident-id, uscc, unit, cert, "
						     "proof, licence, member, subject)", id);
			if (f->type != PROTOBUF_C_TYPE_STRING || list)
				return S_FAIL(c, is, "id \"%s\" needs a string field, '%s' is %s", id, field, tn);
		}
	}
	int has;
	long long v;
	if ((rc = s_int(c, g, "max_chars", what, &has, &v)) != 0)
		return rc;
	if (has) {
		if (f->type != PROTOBUF_C_TYPE_STRING || list)
			return S_FAIL(c, config_setting_get_member(g, "max_chars"), "max_chars needs a string, '%s' is %s",
				      field, tn);
		if (v < 1 || v > 1000000)
			return S_FAIL(c, config_setting_get_member(g, "max_chars"), "max_chars: 1 .. 1000000");
		ck->max_chars = (long)v;
	}
	if ((rc = s_int(c, g, "max_items", what, &has, &v)) != 0)
		return rc;
	if (has) {
		if (!list)
			return S_FAIL(c, config_setting_get_member(g, "max_items"),
				      "max_items needs a repeated field (without [ ]), '%s' is not one", field);
		if (v < 1 || v > 1000000)
			return S_FAIL(c, config_setting_get_member(g, "max_items"), "max_items: 1 .. 1000000");
		ck->max_items = (long)v;
	}
	if ((rc = s_int(c, g, "min", what, &ck->has_min, &ck->min)) != 0 ||
	    (rc = s_int(c, g, "max", what, &ck->has_max, &ck->max)) != 0)
		return rc;
	if ((ck->has_min || ck->has_max) && (!s_is_int(f->type) || list))
		return S_FAIL(c, config_setting_get_member(g, ck->has_min ? "min" : "max"),
			      "min and max need an integer field, '%s' is %s", field, tn);
	if (ck->has_min && ck->has_max && ck->min > ck->max)
		return S_FAIL(c, g, "min is above max");
	if ((rc = s_str(c, g, "format", 0, what, &format)) != 0)
		return rc;
	if (format) {
		config_setting_t *fm = config_setting_get_member(g, "format");
		if (strcmp(format, "date") == 0)
			ck->format = SM_FMT_DATE;
		else if (strcmp(format, "code") == 0)
			ck->format = SM_FMT_CODE;
		else
			return S_FAIL(c, fm, "format '%s': \"date\" (YYYY-MM-DD) or \"code\" ([A-Za-z0-9._:-])", format);
		if (f->type != PROTOBUF_C_TYPE_STRING || list)
			return S_FAIL(c, fm, "format needs a string field, '%s' is %s", field, tn);
	}
	if (!ck->required && !id && !has && !ck->has_min && !ck->has_max && !format && !ck->max_chars &&
	    !ck->max_items)
		return S_FAIL(c, g, "%s checks nothing (give required, id, max_chars, max_items, min, max or format)",
			      what);
	return 0;
}

/* ---- services -------------------------------------------------------- */

static int s_service_name_ok(const char *n)
{
	const char *v = strrchr(n, '.');
	if (!v || v == n || v[1] != 'v' || !v[2])
		return 0;
	size_t len = (size_t)(v - n);
	if (len > 64 || !(islower((unsigned char)n[0]) || isdigit((unsigned char)n[0])))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)n[i]) || isdigit((unsigned char)n[i]) || n[i] == '.' || n[i] == '-'))
			return 0;
	if (v[2] == '0' || strlen(v + 2) > 4)
		return 0;
	for (const char *d = v + 2; *d; d++)
		if (!isdigit((unsigned char)*d))
			return 0;
	return 1;
}

static int s_service(struct s_ctx *c, const config_setting_t *g, struct sm_service *sv)
{
	static const char *const keys[] = {"name", "request", "response", "description", "fields", "refuse",
					   "idempotency_key", "write", "queries", "on_no_row",
					   "not_found_message", NULL};
	sv->line = config_setting_source_line(g);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return S_FAIL(c, g, "each service is a group { name = ...; ... }");
	const char *name, *req, *resp, *desc, *nr, *nfm;
	int rc = s_str(c, g, "name", 1, "the service", &name);
	if (rc)
		return rc;
	sv->name = s_dup(name);
	if (!sv->name)
		return QIAO_ENOMEM;
	c->svc = sv->name;
	if ((rc = s_keys(c, g, "the service", keys)) != 0)
		return rc;
	if (!s_service_name_ok(name))
		return S_FAIL(c, config_setting_get_member(g, "name"),
			      "the name must be \"<name>.v<N>\": name [a-z0-9][a-z0-9.-]{0,63}, N 1..9999");
	if ((rc = s_str(c, g, "request", 1, "the service", &req)) != 0 ||
	    (rc = s_str(c, g, "response", 1, "the service", &resp)) != 0)
		return rc;
	if (!(sv->req = sm_type(req)))
		return S_FAIL(c, config_setting_get_member(g, "request"),
			      "request type '%s' is not a qiao.v1 message (qiao-sql --list-types lists them)", req);
	if (!(sv->resp = sm_type(resp)))
		return S_FAIL(c, config_setting_get_member(g, "response"),
			      "response type '%s' is not a qiao.v1 message (qiao-sql --list-types lists them)", resp);
	if ((rc = s_str(c, g, "description", 0, "the service", &desc)) != 0)
		return rc;
	if (desc && !(sv->description = s_dup(desc)))
		return QIAO_ENOMEM;
	if ((rc = s_str(c, g, "on_no_row", 0, "the service", &nr)) != 0)
		return rc;
	if (nr && strcmp(nr, "not-found") == 0)
		sv->no_row = SM_NO_ROW_NOT_FOUND;
	else if (nr && strcmp(nr, "empty") == 0)
		sv->no_row = SM_NO_ROW_EMPTY;
	else if (nr)
		return S_FAIL(c, config_setting_get_member(g, "on_no_row"),
			      "on_no_row '%s': \"not-found\" (ERROR NOT_FOUND) or \"empty\" (an empty response)", nr);
	if ((rc = s_str(c, g, "not_found_message", 0, "the service", &nfm)) != 0)
		return rc;
	if (nfm && !(sv->not_found_message = s_dup(nfm)))
		return QIAO_ENOMEM;

	/* fields first: parameters bound from cert/proof fields are normalised */
	config_setting_t *fl = config_setting_get_member(g, "fields");
	if (fl) {
		if (config_setting_type(fl) != CONFIG_TYPE_LIST)
			return S_FAIL(c, fl, "fields must be a list ( { field = \"...\"; ... }, ... )");
		int n = config_setting_length(fl);
		sv->checks = calloc((size_t)n + 1, sizeof *sv->checks);
		if (!sv->checks)
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			sv->nchecks++;
			if ((rc = s_check(c, config_setting_get_elem(fl, (unsigned)i), i, sv, &sv->checks[i])) != 0)
				return rc;
		}
	}
	config_setting_t *ks = config_setting_get_member(g, "idempotency_key");
	if (ks) {
		int t = config_setting_type(ks);
		int n = t == CONFIG_TYPE_STRING ? 1 : (t == CONFIG_TYPE_ARRAY ? config_setting_length(ks) : -1);
		if (n < 1 || n > 8)
			return S_FAIL(c, ks, "idempotency_key must be a field path or an array of 1 to 8 of them");
		sv->keys = calloc((size_t)n, sizeof *sv->keys);
		if (!sv->keys)
			return QIAO_ENOMEM;
		for (int i = 0; i < n; i++) {
			config_setting_t *e = t == CONFIG_TYPE_STRING ? ks : config_setting_get_elem(ks, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return S_FAIL(c, e, "idempotency_key: field paths in double quotes");
			sv->nkeys++;
			if ((rc = s_path(c, e, config_setting_get_string(e), sv->req, 0, 0, &sv->keys[i])) != 0 ||
			    (rc = s_path_value(c, e, &sv->keys[i], "idempotency_key")) != 0)
				return rc;
			if (sv->keys[i].each >= 0)
				return S_FAIL(c, e, "idempotency_key '%s': no [] in a key", sv->keys[i].text);
		}
	}
	if ((rc = s_stmts(c, g, "refuse", SM_REFUSE, sv, &sv->refuse, &sv->nrefuse)) != 0 ||
	    (rc = s_stmts(c, g, "write", SM_WRITE, sv, &sv->writes, &sv->nwrites)) != 0 ||
	    (rc = s_stmts(c, g, "queries", SM_QUERY, sv, &sv->queries, &sv->nqueries)) != 0)
		return rc;
	if (sv->nwrites && !sv->nkeys)
		return S_FAIL(c, config_setting_get_member(g, "write"),
			      "a service that writes needs idempotency_key (the request field(s) that make a "
			      "repeated request the same request), so that a repeat has no second effect");
	if (sv->nkeys && !sv->nwrites)
		return S_FAIL(c, ks, "idempotency_key without write: a lookup needs none");
	if (!sv->nqueries && sv->resp->n_fields)
		return S_FAIL(c, g, "queries: at least one query builds the %s response", sv->resp->name);
	/* a response field filled by two queries: the second would overwrite */
	for (size_t a = 0; a < sv->nqueries; a++)
		for (size_t ca = 0; ca < sv->queries[a].ncols; ca++) {
			const struct sm_path *pa = &sv->queries[a].cols[ca].path;
			if (pa->each >= 0)
				continue;
			for (size_t b = a + 1; b < sv->nqueries; b++)
				for (size_t cb = 0; cb < sv->queries[b].ncols; cb++) {
					const struct sm_path *pb = &sv->queries[b].cols[cb].path;
					if (pb->n == pa->n && s_same_steps(pa, pb, pa->n))
						return s_fail_at(c, NULL, pb->line,
								 "'%s' is filled by queries[%zu] (line %u) and "
								 "queries[%zu]",
								 pb->text, a, pa->line, b);
				}
		}
	return 0;
}

static void s_path_free(struct sm_path *p)
{
	free(p->text);
	p->text = NULL;
}

static void s_stmts_free(struct sm_stmt *st, size_t n)
{
	for (size_t i = 0; st && i < n; i++) {
		free(st[i].sql);
		for (size_t k = 0; k < st[i].nparams; k++) {
			free(st[i].params[k].name);
			s_path_free(&st[i].params[k].path);
		}
		free(st[i].params);
		for (size_t k = 0; k < st[i].ncols; k++) {
			free(st[i].cols[k].column);
			s_path_free(&st[i].cols[k].path);
		}
		free(st[i].cols);
		s_path_free(&st[i].for_each);
		free(st[i].field);
	}
	free(st);
}

void sm_destroy(struct sm_map **mp)
{
	if (!mp || !*mp)
		return;
	struct sm_map *m = *mp;
	for (size_t i = 0; i < m->n; i++) {
		struct sm_service *sv = &m->svc[i];
		free(sv->name);
		free(sv->description);
		free(sv->not_found_message);
		for (size_t k = 0; k < sv->nchecks; k++)
			s_path_free(&sv->checks[k].path);
		free(sv->checks);
		for (size_t k = 0; k < sv->nkeys; k++)
			s_path_free(&sv->keys[k]);
		free(sv->keys);
		s_stmts_free(sv->refuse, sv->nrefuse);
		s_stmts_free(sv->writes, sv->nwrites);
		s_stmts_free(sv->queries, sv->nqueries);
	}
	free(m->svc);
	free(m->file);
	free(m);
	*mp = NULL;
}

int sm_load(const char *file, struct sm_map **out, char *err, size_t errlen)
{
	*out = NULL;
	struct s_ctx c = {.path = file, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	FILE *fp = fopen(file, "r");
	if (!fp) {
		snprintf(err, errlen, "%s: cannot read the mapping file: %s", file, strerror(errno));
		return QIAO_ECONFIG;
	}
	fclose(fp);
	config_t lc;
	config_init(&lc);
	if (config_read_file(&lc, file) != CONFIG_TRUE) {
		const char *ef = config_error_file(&lc);
		int line = config_error_line(&lc);
		const char *text = config_error_text(&lc);
		snprintf(err, errlen, "%s:%d: %s", ef ? ef : file, line, text ? text : "syntax error");
		config_destroy(&lc);
		return QIAO_ECONFIG;
	}
	int rc = 0;
	struct sm_map *m = calloc(1, sizeof *m);
	if (!m || !(m->file = s_dup(file))) {
		free(m);
		config_destroy(&lc);
		return QIAO_ENOMEM;
	}
	config_setting_t *root = config_root_setting(&lc);
	static const char *const top[] = {"services", NULL};
	if ((rc = s_keys(&c, root, "the mapping file", top)) != 0)
		goto out;
	config_setting_t *l = config_setting_get_member(root, "services");
	if (!l) {
		rc = s_fail_at(&c, NULL, 1, "no services = ( ... ); list");
		goto out;
	}
	if (config_setting_type(l) != CONFIG_TYPE_LIST) {
		rc = S_FAIL(&c, l, "services must be a list ( { name = ...; ... }, ... )");
		goto out;
	}
	int n = config_setting_length(l);
	if (n < 1 || n > SM_MAX_SERVICES) {
		rc = S_FAIL(&c, l, "services: 1 to %d services", SM_MAX_SERVICES);
		goto out;
	}
	m->svc = calloc((size_t)n, sizeof *m->svc);
	if (!m->svc) {
		rc = QIAO_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		c.svc = NULL;
		c.svc_no = i + 1;
		config_setting_t *g = config_setting_get_elem(l, (unsigned)i);
		m->n++;
		if ((rc = s_service(&c, g, &m->svc[i])) != 0)
			goto out;
		for (int k = 0; k < i; k++)
			if (strcmp(m->svc[k].name, m->svc[i].name) == 0) {
				rc = S_FAIL(&c, g, "a second service of this name (the first is on line %u)",
					    m->svc[k].line);
				goto out;
			}
	}
out:
	config_destroy(&lc);
	if (rc == QIAO_ENOMEM && err && errlen && !err[0])
		snprintf(err, errlen, "%s: out of memory", file);
	if (rc) {
		sm_destroy(&m);
		return rc;
	}
	*out = m;
	return 0;
}

const struct sm_service *sm_service(const struct sm_map *m, const char *name)
{
	for (size_t i = 0; m && name && i < m->n; i++)
		if (strcmp(m->svc[i].name, name) == 0)
			return &m->svc[i];
	return NULL;
}

/* ---- the SQL against the database ------------------------------------ */

enum s_aff { AFF_UNKNOWN, AFF_INTEGER, AFF_TEXT, AFF_REAL, AFF_NUMERIC, AFF_BLOB };

/* SQLite's affinity rules (https://sqlite.org/datatype3.html 3.1). */
static enum s_aff s_affinity(const char *decl)
{
	if (!decl)
		return AFF_UNKNOWN;
	char u[128];
	size_t i;
	for (i = 0; decl[i] && i + 1 < sizeof u; i++)
		u[i] = (char)toupper((unsigned char)decl[i]);
	u[i] = '\0';
	if (strstr(u, "INT"))
		return AFF_INTEGER;
	if (strstr(u, "CHAR") || strstr(u, "CLOB") || strstr(u, "TEXT"))
		return AFF_TEXT;
	if (!u[0] || strstr(u, "BLOB"))
		return AFF_BLOB;
	if (strstr(u, "REAL") || strstr(u, "FLOA") || strstr(u, "DOUB"))
		return AFF_REAL;
	return AFF_NUMERIC;
}

/* Whether a column of declared affinity `a` can fill field `f` (the rules
 * sql_adapter.c applies to each value; NUMERIC may hold either). */
static const char *s_aff_refusal(const char *decl, const ProtobufCFieldDescriptor *f)
{
	enum s_aff a = s_affinity(decl);
	/* NUMERIC(18,2) / DECIMAL(10,2): stored REAL whenever not whole */
	const char *comma = decl ? strchr(decl, ',') : NULL;
	int decimals = a == AFF_NUMERIC && comma && atoi(comma + 1) > 0;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return a == AFF_REAL ? "a REAL column does not fill a string (format it in the SQL, e.g. printf('%.2f', x))"
		       : a == AFF_BLOB ? "a BLOB column does not fill a string (CAST(x AS TEXT) if it holds text)"
				       : NULL;
	case PROTOBUF_C_TYPE_BYTES:
		return a == AFF_INTEGER || a == AFF_REAL || a == AFF_NUMERIC ? "a number does not fill bytes" : NULL;
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (a == AFF_REAL || decimals)
			return "a column of decimals does not fill an integer field (convert in the SQL: 元 to fen "
			       "is CAST(ROUND(x * 100) AS INTEGER))";
		if (a == AFF_TEXT)
			return "a TEXT column does not fill an integer field (CAST(x AS INTEGER) in the SQL, or a CASE)";
		return NULL;
	case PROTOBUF_C_TYPE_ENUM:
		return a == AFF_REAL ? "a REAL column does not fill an enum (its number or its name)" : NULL;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return a == AFF_TEXT ? "a TEXT column does not fill a floating-point field" : NULL;
	default:
		return "not a scalar field";
	}
}

/* Only whitespace and SQL comments left in `s`. */
static int s_blank_sql(const char *s)
{
	while (*s) {
		if (isspace((unsigned char)*s)) {
			s++;
		} else if (s[0] == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			const char *e = strstr(s + 2, "*/");
			if (!e)
				return 1;
			s = e + 2;
		} else {
			return 0;
		}
	}
	return 1;
}

/* The first keyword of the statement, upper-cased, into kw[n]. */
static void s_first_word(const char *s, char *kw, size_t n)
{
	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (s[0] == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			const char *e = strstr(s + 2, "*/");
			s = e ? e + 2 : s + strlen(s);
		} else {
			break;
		}
	}
	size_t i = 0;
	while (isalpha((unsigned char)s[i]) && i + 1 < n) {
		kw[i] = (char)toupper((unsigned char)s[i]);
		i++;
	}
	kw[i] = '\0';
}

static int s_check_stmt(struct s_ctx *c, const struct sm_service *sv, const struct sm_stmt *st, sqlite3 *db)
{
	sqlite3_stmt *ps = NULL;
	const char *tail = NULL;
	int rc = sqlite3_prepare_v2(db, st->sql, -1, &ps, &tail);
	char tn[160];
	if (rc != SQLITE_OK) {
		rc = s_fail_at(c, NULL, st->line, "%s.sql does not prepare: %s", st->what, sqlite3_errmsg(db));
		goto out;
	}
	if (!ps) {
		rc = s_fail_at(c, NULL, st->line, "%s.sql holds no statement", st->what);
		goto out;
	}
	if (tail && !s_blank_sql(tail)) {
		rc = s_fail_at(c, NULL, st->line, "%s.sql holds more than one statement (one per entry; the text "
						  "after the first is \"%.40s\")", st->what, tail);
		goto out;
	}
	int ncol = sqlite3_column_count(ps);
	if (ncol > 128) {
		rc = s_fail_at(c, NULL, st->line, "%s.sql returns %d columns; at most 128", st->what, ncol);
		goto out;
	}
	if (st->kind == SM_QUERY || st->kind == SM_REFUSE) {
		if (!sqlite3_stmt_readonly(ps) || ncol == 0) {
			rc = s_fail_at(c, NULL, st->line, "%s.sql must be a SELECT (it may not change the database; "
							  "changes go in write)", st->what);
			goto out;
		}
	} else {
		char kw[16];
		s_first_word(st->sql, kw, sizeof kw);
		if (sqlite3_stmt_readonly(ps) || ncol != 0 ||
		    !(strcmp(kw, "INSERT") == 0 || strcmp(kw, "UPDATE") == 0 || strcmp(kw, "DELETE") == 0 ||
		      strcmp(kw, "REPLACE") == 0 || strcmp(kw, "WITH") == 0)) {
			rc = s_fail_at(c, NULL, st->line, "%s.sql must be an INSERT, UPDATE or DELETE without RETURNING "
							  "(it runs in the service's transaction)", st->what);
			goto out;
		}
	}
	/* parameters */
	int np = sqlite3_bind_parameter_count(ps);
	if (!st->named) {
		for (int i = 1; i <= np; i++) {
			const char *pn = sqlite3_bind_parameter_name(ps, i);
			if (pn && pn[0] != '?') {
				rc = s_fail_at(c, NULL, st->line, "%s.sql uses the named parameter %s: give params as a "
								  "group { %s = \"field\"; }", st->what, pn, pn + 1);
				goto out;
			}
		}
		if ((size_t)np != st->nparams) {
			rc = s_fail_at(c, NULL, st->line, "%s.sql takes %d parameter%s but params binds %zu", st->what,
				       np, np == 1 ? "" : "s", st->nparams);
			goto out;
		}
	} else {
		unsigned char used[64] = {0};
		if (st->nparams > sizeof used) {
			rc = s_fail_at(c, NULL, st->line, "%s: at most %zu parameters", st->what, sizeof used);
			goto out;
		}
		for (int i = 1; i <= np; i++) {
			const char *pn = sqlite3_bind_parameter_name(ps, i);
			if (!pn || pn[0] == '?') {
				rc = s_fail_at(c, NULL, st->line, "%s.sql uses a positional parameter ?: with params as a "
								  "group, name each one (:name)", st->what);
				goto out;
			}
			size_t k;
			for (k = 0; k < st->nparams; k++)
				if (strcmp(st->params[k].name, pn + 1) == 0)
					break;
			if (k == st->nparams) {
				rc = s_fail_at(c, NULL, st->line, "%s.sql uses %s, which params does not bind", st->what, pn);
				goto out;
			}
			used[k] = 1;
		}
		for (size_t k = 0; k < st->nparams; k++)
			if (!used[k]) {
				rc = s_fail_at(c, NULL, st->params[k].path.line, "%s.params.%s: the SQL has no :%s",
					       st->what, st->params[k].name, st->params[k].name);
				goto out;
			}
	}
	/* columns */
	if (st->kind == SM_QUERY) {
		char names[600];
		size_t len = 0;
		names[0] = '\0';
		for (int i = 0; i < ncol && len + 1 < sizeof names; i++) {
			int w = snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
					 sqlite3_column_name(ps, i));
			if (w < 0)
				break;
			len += (size_t)w;
		}
		for (int i = 0; i < ncol; i++) {
			const char *cn = sqlite3_column_name(ps, i);
			for (int j = 0; j < i; j++)
				if (strcmp(sqlite3_column_name(ps, j), cn) == 0) {
					rc = s_fail_at(c, NULL, st->line, "%s.sql returns two columns named %s (name them "
									  "apart with AS)", st->what, cn);
					goto out;
				}
			size_t k;
			for (k = 0; k < st->ncols; k++)
				if (strcmp(st->cols[k].column, cn) == 0)
					break;
			if (k == st->ncols) {
				rc = s_fail_at(c, NULL, st->line, "%s.sql returns the column %s, which columns does not "
								  "map (map it, or leave it out of the SELECT)", st->what, cn);
				goto out;
			}
			const ProtobufCFieldDescriptor *f = s_last(&st->cols[k].path);
			const char *decl = sqlite3_column_decltype(ps, i);
			const char *why = s_aff_refusal(decl, f);
			if (why) {
				rc = s_fail_at(c, NULL, st->cols[k].path.line, "%s.columns.%s: column declared %s cannot "
									       "fill '%s' (%s): %s", st->what, cn, decl,
					       st->cols[k].path.text, s_type_name(f, tn, sizeof tn), why);
				goto out;
			}
		}
		for (size_t k = 0; k < st->ncols; k++) {
			int i;
			for (i = 0; i < ncol; i++)
				if (strcmp(st->cols[k].column, sqlite3_column_name(ps, i)) == 0)
					break;
			if (i == ncol) {
				rc = s_fail_at(c, NULL, st->cols[k].path.line, "%s.columns.%s: the query returns no such "
									       "column (it returns %s)", st->what,
					       st->cols[k].column, names);
				goto out;
			}
		}
	}
	if (st->kind == SM_REFUSE && ncol < 1) {
		rc = s_fail_at(c, NULL, st->line, "%s.sql must return the refusal message as its first column",
			       st->what);
		goto out;
	}
	rc = 0;
out:
	(void)sv;
	sqlite3_finalize(ps);
	return rc;
}

int sm_check_db(const struct sm_map *m, sqlite3 *db, char *err, size_t errlen)
{
	struct s_ctx c = {.path = m->file, .err = err, .errlen = errlen};
	for (size_t i = 0; i < m->n; i++) {
		const struct sm_service *sv = &m->svc[i];
		c.svc = sv->name;
		const struct {
			const struct sm_stmt *st;
			size_t n;
		} lists[] = {{sv->refuse, sv->nrefuse}, {sv->writes, sv->nwrites}, {sv->queries, sv->nqueries}};
		for (size_t l = 0; l < 3; l++)
			for (size_t k = 0; k < lists[l].n; k++) {
				int rc = s_check_stmt(&c, sv, &lists[l].st[k], db);
				if (rc)
					return rc;
			}
	}
	return 0;
}
