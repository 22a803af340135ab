/*
 * gw_config.c - load and validate the gateway configuration (libconfig).
 *
 * Loading runs in passes over the parsed libconfig tree, in this order:
 * integer literals (see s_scan_file), top-level keys, identifiers, gateway,
 * limits, members, services, policy.  Each value is checked where it is read
 * and reported with the file and line libconfig recorded for it; the first
 * error ends the load.  Duplicates are reported at their second occurrence
 * in file order, naming the first.
 *
 * Everything the loaded config holds lives in one arena freed at once, so a
 * struct gw_config is a single immutable object: lookups are binary
 * searches over arrays sorted once at load.
 */
#include "gw_config.h"
#include "gw_policy.h"
#include "qiao_err.h"
#include "qiao_keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Caps that keep a single file from asking for absurd amounts of memory. */
#define GW_MAX_MEMBERS 100000
#define GW_MAX_SERVICES_PER_MEMBER 256  /* MemberRecord.services in identity.proto */
#define GW_MAX_RULES 1000000
#define GW_MAX_PURPOSES 64
#define GW_MAX_LISTEN 32
#define GW_MAX_ENDPOINT 256
#define GW_MAX_PATH 4096
#define GW_MAX_NAME_CHARS 100           /* MemberRecord.name */
#define GW_MAX_DESCRIPTION_CHARS 200
#define GW_MAX_TYPE 128                 /* Header.body_type */

/* ------------------------------------------------------------------ arena */

struct s_chunk {
	struct s_chunk *next;
	size_t used, size;
	max_align_t data[];
};

#define ARENA_CHUNK 65536

struct gw_config {
	struct s_chunk *arena;
	const char *path;
	int64_t loaded_ms;
	struct gw_gateway gw;
	struct gw_limits lim;
	struct gw_audit audit;
	struct gw_cache cache;
	struct gw_workflow wf;
	struct gw_metrics_conf met;
	qiao_id_policy_t *ids;
	struct gw_member *members;          /* sorted by id */
	size_t nmembers;
	const struct gw_member **by_curve;  /* sorted by curve_public */
	const struct gw_member **rotating;  /* members with a next_curve_public (few) */
	size_t nrotating;
	struct gw_service *services;        /* sorted by provider, name, version */
	size_t nservices;
	const struct gw_service **by_id;    /* sorted by strcmp of id */
	const struct gw_service **by_alias; /* services with an alias, sorted by alias */
	size_t naliases;
	struct gw_rule *rules;              /* sorted by consumer, service (array order) */
	size_t nrules;
};

static void *s_alloc(struct gw_config *cfg, size_t n)
{
	const size_t al = sizeof(max_align_t);
	n = (n + al - 1) / al * al;
	if (n == 0)
		n = al;
	struct s_chunk *c = cfg->arena;
	if (!c || c->size - c->used < n) {
		size_t size = n > ARENA_CHUNK / 2 ? n : ARENA_CHUNK;
		c = malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		if (n > ARENA_CHUNK / 2 && cfg->arena) {
			/* A big block gets its own chunk behind the current one, so
			 * the current one keeps serving small requests. */
			c->next = cfg->arena->next;
			cfg->arena->next = c;
		} else {
			c->next = cfg->arena;
			cfg->arena = c;
		}
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static char *s_strdup(struct gw_config *cfg, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = s_alloc(cfg, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void gw_config_free(struct gw_config **cfgp)
{
	if (!cfgp || !*cfgp)
		return;
	struct gw_config *cfg = *cfgp;
	qiao_id_policy_destroy(&cfg->ids);
	struct s_chunk *c = cfg->arena;
	while (c) {
		struct s_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(cfg);
	*cfgp = NULL;
}

/* ------------------------------------------------------------ text helpers */

/* Printable UTF-8 of 1..maxchars characters (no control characters). */
static int s_text_ok(const char *s, long maxchars)
{
	size_t n = strlen(s);
	long chars = qiao_utf8_chars(s, n);
	if (chars < 1 || chars > maxchars)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* A copy of `s` safe to put in an error message: at most ~60 characters,
 * invalid UTF-8 and control bytes replaced by '?'. */
static const char *s_safe(const char *s, char *out, size_t outlen)
{
	size_t o = 0, i = 0, n = strlen(s);
	while (i < n && o + 8 < outlen) {
		unsigned char c = (unsigned char)s[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (len == 0 || i + len > n || qiao_utf8_chars(s + i, len) != 1 ||
		    (len == 1 && (c < 0x20 || c == 0x7f))) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, len);
		o += len;
		i += len;
		if (o > 180) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o] = '\0';
	return out;
}

/* Cut s[] (NUL-terminated) so that it is valid UTF-8: drops a partial
 * character left at the end by a truncating snprintf. */
static void s_utf8_trim(char *s)
{
	size_t n = strlen(s);
	size_t i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i > 0 && (unsigned char)s[i - 1] >= 0xc0) {
		if (qiao_utf8_chars(s + i - 1, n - (i - 1)) != 1)
			s[i - 1] = '\0';
	}
}

/* "<name>.v<N>": name [a-z0-9][a-z0-9.-]{0,63}, N 1-4 digits (the rule of
 * docs/protocol.md, as qiao_envelope.c checks Header.service).  On success
 * *baselen is the length of <name> and *version is N. */
static int s_service_name_ok(const char *s, size_t *baselen, unsigned *version)
{
	const char *v = strrchr(s, '.');
	if (!v || v == s || v[1] != 'v')
		return 0;
	size_t nd = strlen(v + 2);
	if (nd < 1 || nd > 4 || strspn(v + 2, "0123456789") != nd)
		return 0;
	size_t nl = (size_t)(v - s);
	if (nl > 64)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (size_t i = 0; i < nl; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	if (baselen)
		*baselen = nl;
	if (version)
		*version = (unsigned)strtoul(v + 2, NULL, 10);
	return 1;
}

/* A protobuf full type name: [A-Za-z0-9_.], 1..128 bytes, dot-separated
 * parts that are not empty. */
static int s_type_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > GW_MAX_TYPE || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

static int s_all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

const char *gw_share_class_name(enum gw_share_class c)
{
	switch (c) {
	case GW_SHARE_UNCONDITIONAL: return "unconditional";
	case GW_SHARE_CONDITIONAL: return "conditional";
	case GW_SHARE_NONE: return "none";
	}
	return "unknown";
}

void gw_limits_default(struct gw_limits *lim)
{
	*lim = (struct gw_limits){
		.max_header = 16384,
		.max_body = 4194304,
		.max_frames = 4,
		.max_inflight_per_member = 256,
		.max_pending = 100000,
		.clock_skew_ms = 30000,
		.replay_window_ms = 600000,
		.default_deadline_ms = 30000,
		.max_deadline_ms = 600000,
		.heartbeat_ms = 1000,
		.heartbeat_liveness = 3,
		.queue_hwm = 10000,
		.idempotent_retries = 2,
	};
}

/* ------------------------------------------------------------- the loader */

struct s_ld {
	struct gw_config *cfg;
	config_t lc;
	const char *path;      /* as the caller gave it (and libconfig names it) */
	char dir[GW_MAX_PATH]; /* absolute directory of the main file */
	char *err;
	size_t errlen;
	/* libconfig's file names die with its tree: records keep copies. */
	const char *files_lc[32], *files_own[32];
	size_t nfiles;
};

/* The arena copy of the source file name of `s` (NULL when out of memory). */
static const char *s_file(struct s_ld *ld, const config_setting_t *s)
{
	const char *f = config_setting_source_file(s);
	if (!f)
		f = ld->path;
	for (size_t i = 0; i < ld->nfiles; i++)
		if (ld->files_lc[i] == f)
			return ld->files_own[i];
	const char *own = s_strdup(ld->cfg, f);
	if (own && ld->nfiles < sizeof ld->files_lc / sizeof ld->files_lc[0]) {
		ld->files_lc[ld->nfiles] = f;
		ld->files_own[ld->nfiles++] = own;
	}
	return own;
}

static int s_fail(struct s_ld *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "FILE:LINE: reason" into ld->err; returns QIAO_ECONFIG. */
static int s_fail(struct s_ld *ld, const config_setting_t *s, const char *fmt, ...)
{
	if (!ld->err || !ld->errlen)
		return QIAO_ECONFIG;
	const char *file = s ? config_setting_source_file(s) : NULL;
	unsigned line = s ? config_setting_source_line(s) : 0;
	if (!file)
		file = ld->path;
	if (line == 0) /* the root group: a whole-file problem */
		line = 1;
	int n = snprintf(ld->err, ld->errlen, "%s:%u: ", file, line);
	if (n >= 0 && (size_t)n < ld->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	s_utf8_trim(ld->err);
	return QIAO_ECONFIG;
}

#define ENOMEM_IF_NULL(p)                                                        \
	do {                                                                     \
		if (!(p))                                                        \
			return QIAO_ENOMEM;                                      \
	} while (0)

#define TRY(expr)                                                                \
	do {                                                                     \
		int rc_ = (expr);                                                \
		if (rc_)                                                         \
			return rc_;                                              \
	} while (0)

/* ------------------------------------------- integer literals (libconfig 1.5) */

/*
 * libconfig 1.5 converts an integer literal without an L suffix with atoi()
 * (hex with strtoul into an int), so 4294968320 silently becomes 1024 and
 * passes any range check.  Before the values are used, each file that
 * holds settings is scanned with the same token rules as libconfig's
 * scanner (comments: '#', '//', slash-star blocks; strings with backslash
 * escapes; names; numbers) and a literal that does not fit in 32 bits is
 * refused.
 */
static int s_scan_number(struct s_ld *ld, const char *fname, unsigned line, const char *t, size_t n)
{
	char tok[64];
	if (n >= sizeof tok)
		n = sizeof tok - 1;
	memcpy(tok, t, n);
	tok[n] = '\0';
	size_t i = 0;
	int neg = 0;
	if (tok[0] == '+' || tok[0] == '-') {
		neg = tok[0] == '-';
		i = 1;
	}
	if (tok[n - 1] == 'L')
		return 0; /* 64-bit literal: libconfig reads it with atoll */
	int hex = tok[i] == '0' && (tok[i + 1] == 'x' || tok[i + 1] == 'X');
	if (!hex && strpbrk(tok + i, ".eE"))
		return 0; /* a float: the typed readers refuse it where an integer belongs */
	unsigned long long v = 0, cap = hex ? 0x7fffffffULL : neg ? 2147483648ULL : 2147483647ULL;
	int over = 0;
	for (size_t k = i + (hex ? 2 : 0); tok[k] && !over; k++) {
		char c = tok[k];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return 0; /* not a number token libconfig accepts; the parser said so already */
		v = v * (hex ? 16 : 10) + d;
		over = v > cap;
	}
	if (!over)
		return 0;
	char safe[80];
	if (ld->err && ld->errlen)
		snprintf(ld->err, ld->errlen,
			 "%s:%u: integer %s does not fit in 32 bits and libconfig would silently "
			 "truncate it; no setting takes such a value",
			 fname, line, s_safe(tok, safe, sizeof safe));
	return QIAO_ECONFIG;
}

static int s_scan_file(struct s_ld *ld, const char *fname)
{
	char full[GW_MAX_PATH];
	if (fname[0] == '/' || strcmp(fname, ld->path) == 0)
		snprintf(full, sizeof full, "%s", fname);
	else if ((size_t)snprintf(full, sizeof full, "%s/%s", ld->dir, fname) >= sizeof full)
		return s_fail(ld, NULL, "include path %s is too long", fname);
	FILE *f = fopen(full, "r");
	if (!f) {
		int e = errno;
		if (ld->err && ld->errlen)
			snprintf(ld->err, ld->errlen, "%s: cannot read: %s", full, strerror(e));
		return -e;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 65536) {
			char *nb = realloc(buf, cap + 65536 + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return QIAO_ENOMEM;
			}
			buf = nb;
			cap += 65536;
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';

	int rc = 0;
	unsigned line = 1;
	size_t i = 0;
	while (i < len && rc == 0) {
		char c = buf[i];
		if (c == '\n') {
			line++;
			i++;
		} else if (c == '#' || (c == '/' && buf[i + 1] == '/')) {
			while (i < len && buf[i] != '\n')
				i++;
		} else if (c == '/' && buf[i + 1] == '*') {
			i += 2;
			while (i < len && !(buf[i] == '*' && buf[i + 1] == '/')) {
				if (buf[i] == '\n')
					line++;
				i++;
			}
			i += 2;
		} else if (c == '"') {
			i++;
			while (i < len && buf[i] != '"') {
				if (buf[i] == '\\' && i + 1 < len)
					i++;
				if (buf[i] == '\n')
					line++;
				i++;
			}
			i++;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*') {
			while (i < len && ((buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= 'a' && buf[i] <= 'z') ||
					   (buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-' || buf[i] == '_' ||
					   buf[i] == '*'))
				i++;
		} else if ((c >= '0' && c <= '9') ||
			   ((c == '-' || c == '+') && ((buf[i + 1] >= '0' && buf[i + 1] <= '9') || buf[i + 1] == '.'))) {
			size_t s = i++;
			while (i < len) {
				char d = buf[i];
				if ((d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || d == '.')
					i++;
				else if ((d == '+' || d == '-') && (buf[i - 1] == 'e' || buf[i - 1] == 'E'))
					i++;
				else
					break;
			}
			rc = s_scan_number(ld, fname, line, buf + s, i - s);
		} else {
			i++;
		}
	}
	free(buf);
	return rc;
}

/* Collect each distinct source file of the tree (libconfig keeps one
 * string per file, so pointers identify files). */
static int s_collect_files(const config_setting_t *s, const char ***files, size_t *n, size_t *cap)
{
	const char *f = config_setting_source_file(s);
	if (f) {
		size_t i;
		for (i = 0; i < *n && (*files)[i] != f; i++)
			;
		if (i == *n) {
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 8;
				const char **nf = realloc((void *)*files, nc * sizeof *nf);
				if (!nf)
					return QIAO_ENOMEM;
				*files = nf;
				*cap = nc;
			}
			(*files)[(*n)++] = f;
		}
	}
	if (config_setting_is_aggregate(s)) {
		int len = config_setting_length(s);
		for (int i = 0; i < len; i++)
			TRY(s_collect_files(config_setting_get_elem(s, (unsigned)i), files, n, cap));
	}
	return 0;
}

static int s_scan_integers(struct s_ld *ld)
{
	const char **files = NULL;
	size_t n = 0, cap = 0;
	int rc = s_collect_files(config_root_setting(&ld->lc), &files, &n, &cap);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = s_scan_file(ld, files[i]);
	free((void *)files);
	return rc;
}

/* --------------------------------------------------------- typed readers */

/* Refuse any key of `group` not in `known` (NULL-terminated). */
static int s_known_keys(struct s_ld *ld, const config_setting_t *group, const char *what,
			const char *const *known)
{
	int len = config_setting_length(group);
	for (int i = 0; i < len; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k;
		for (k = 0; known[k] && strcmp(known[k], name) != 0; k++)
			;
		if (known[k])
			continue;
		char list[512] = "";
		for (k = 0; known[k]; k++) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof list - l, "%s%s", k ? ", " : "", known[k]);
		}
		return s_fail(ld, s, "unknown key '%s' in %s (known keys: %s)", name, what, list);
	}
	return 0;
}

static const char *s_type_word(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP: return "a group { }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a floating-point number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array [ ]";
	case CONFIG_TYPE_LIST: return "a list ( )";
	}
	return "a value of unknown type";
}

/* `group.key` as a string: *out = NULL when absent and not required. */
static int s_get_string(struct s_ld *ld, const config_setting_t *group, const char *what,
			const char *key, int required, const char **out, const config_setting_t **at)
{
	*out = NULL;
	const config_setting_t *s = config_setting_get_member(group, key);
	if (at)
		*at = s ? s : group;
	if (!s) {
		if (required)
			return s_fail(ld, group, "%s: missing required key '%s'", what, key);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return s_fail(ld, s, "%s.%s must be a string, not %s", what, key, s_type_word(s));
	*out = config_setting_get_string(s);
	return 0;
}

/* `group.key` as an integer in [min, max]; *out unchanged when absent. */
static int s_get_int(struct s_ld *ld, const config_setting_t *group, const char *what,
		     const char *key, long long min, long long max, long long *out,
		     const config_setting_t **at)
{
	const config_setting_t *s = config_setting_get_member(group, key);
	if (at)
		*at = s;
	if (!s)
		return 0;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return s_fail(ld, s, "%s.%s must be an integer, not %s", what, key, s_type_word(s));
	long long v = config_setting_get_int64(s);
	if (v < min || v > max)
		return s_fail(ld, s, "%s.%s = %lld is out of range %lld..%lld", what, key, v, min, max);
	*out = v;
	return 0;
}

static int s_get_bool(struct s_ld *ld, const config_setting_t *group, const char *what,
		      const char *key, bool *out)
{
	const config_setting_t *s = config_setting_get_member(group, key);
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return s_fail(ld, s, "%s.%s must be true or false, not %s", what, key, s_type_word(s));
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* `group.key` as an array or list of strings; *list NULL when absent. */
static int s_get_strings(struct s_ld *ld, const config_setting_t *group, const char *what,
			 const char *key, size_t maxn, const config_setting_t **list)
{
	const config_setting_t *s = config_setting_get_member(group, key);
	*list = s;
	if (!s)
		return 0;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
		return s_fail(ld, s, "%s.%s must be an array of strings [ \"...\", ... ], not %s", what,
			      key, s_type_word(s));
	int n = config_setting_length(s);
	if ((size_t)n > maxn)
		return s_fail(ld, s, "%s.%s: %d entries, at most %zu allowed", what, key, n, maxn);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return s_fail(ld, e, "%s.%s[%d] must be a string, not %s", what, key, i,
				      s_type_word(e));
	}
	return 0;
}

/* A group `key` of the root, or of a list; NULL when absent. */
static int s_get_group(struct s_ld *ld, const config_setting_t *parent, const char *key,
		       int required, const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(parent, key);
	*out = s;
	if (!s) {
		if (required)
			return s_fail(ld, parent, "missing required section '%s: { ... };'", key);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return s_fail(ld, s, "%s must be a group { ... }, not %s", key, s_type_word(s));
	return 0;
}

static int s_get_list(struct s_ld *ld, const config_setting_t *parent, const char *key,
		      const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(parent, key);
	*out = s;
	if (!s)
		return 0;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
		return s_fail(ld, s, "%s must be a list ( { ... }, ... ), not %s", key, s_type_word(s));
	return 0;
}

/* A relative path is relative to the main file's directory. */
static int s_path(struct s_ld *ld, const config_setting_t *at, const char *what, const char *v,
		  const char **out)
{
	if (!v[0])
		return s_fail(ld, at, "%s: empty path", what);
	char full[GW_MAX_PATH];
	size_t n = v[0] == '/' ? (size_t)snprintf(full, sizeof full, "%s", v)
			       : (size_t)snprintf(full, sizeof full, "%s/%s", ld->dir, v);
	if (n >= sizeof full)
		return s_fail(ld, at, "%s: path longer than %d bytes", what, GW_MAX_PATH - 1);
	*out = s_strdup(ld->cfg, full);
	return *out ? 0 : QIAO_ENOMEM;
}

/* ------------------------------------------------ duplicate detection */

enum s_key { S_KEY_STR, S_KEY_32, S_KEY_RULE };

/* One entry per item, in file order (ord); sorted by key then ord, so two
 * adjacent equal keys are a duplicate and the second one is the later. */
struct s_ent {
	enum s_key kind;
	const void *key;
	size_t ord;
	const config_setting_t *at;
};

static int s_rule_key_cmp(const struct gw_rule *a, const struct gw_rule *b);

static int s_ent_keycmp(const struct s_ent *a, const struct s_ent *b)
{
	switch (a->kind) {
	case S_KEY_STR: return strcmp(a->key, b->key);
	case S_KEY_32: return memcmp(a->key, b->key, 32);
	case S_KEY_RULE: return s_rule_key_cmp(a->key, b->key);
	}
	return 0;
}

static int s_ent_cmp(const void *pa, const void *pb)
{
	const struct s_ent *a = pa, *b = pb;
	int c = s_ent_keycmp(a, b);
	if (c)
		return c;
	return a->ord < b->ord ? -1 : a->ord > b->ord;
}

/* Sort `e` and find the duplicate that comes first in file order: 0, or
 * *dup / *first set (indexes into the sorted e) and 1. */
static int s_find_dup(struct s_ent *e, size_t n, size_t *dup, size_t *first)
{
	if (n < 2)
		return 0;
	qsort(e, n, sizeof *e, s_ent_cmp);
	int found = 0;
	size_t start = 0;
	for (size_t i = 1; i < n; i++) {
		if (s_ent_keycmp(&e[i - 1], &e[i]) != 0) {
			start = i;
			continue;
		}
		if (!found || e[i].ord < e[*dup].ord) {
			*dup = i;
			*first = start;
			found = 1;
		}
	}
	return found;
}

/* ------------------------------------------------------------- sections */

static int s_load_identifiers(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	cfg->ids = qiao_id_policy_new();
	ENOMEM_IF_NULL(cfg->ids);
	const config_setting_t *g, *list;
	TRY(s_get_group(ld, root, "identifiers", 0, &g));
	if (!g)
		return 0;
	static const char *const known[] = {"legacy_uscc", NULL};
	TRY(s_known_keys(ld, g, "identifiers", known));
	TRY(s_get_strings(ld, g, "identifiers", "legacy_uscc", 100000, &list));
	int n = list ? config_setting_length(list) : 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *code = config_setting_get_string(e);
		int rc = qiao_id_policy_add_legacy_uscc(cfg->ids, code);
		if (rc == QIAO_ENOMEM)
			return rc;
		if (rc) {
			char safe[200];
			return s_fail(ld, e, "identifiers.legacy_uscc: '%s' is not 18 characters of the USCC alphabet",
				      s_safe(code, safe, sizeof safe));
		}
	}
	return 0;
}

static int s_check_member_id(struct s_ld *ld, const config_setting_t *at, const char *what,
			     const char *id)
{
	char why[160], safe[200];
	if (qiao_id_check_member(ld->cfg->ids, id, why, sizeof why) != 0)
		return s_fail(ld, at, "%s %s: %s", what, s_safe(id, safe, sizeof safe), why);
	if (strlen(id) >= QIAO_MEMBER_MAX)
		return s_fail(ld, at, "%s %s: longer than %d bytes", what, s_safe(id, safe, sizeof safe),
			      QIAO_MEMBER_MAX - 1);
	return 0;
}

/* sizeof(struct sockaddr_un.sun_path) on Linux, with the NUL. */
#define GW_UNIX_PATH_MAX 108

/* "tcp://HOST:PORT" (PORT digits or *) or "ipc://PATH"; printable, no
 * spaces. */
static int s_endpoint_ok(const char *s)
{
	size_t n = strlen(s);
	if (n <= 6 || n > GW_MAX_ENDPOINT)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	if (strncmp(s, "ipc://", 6) == 0)
		return 1;
	if (strncmp(s, "tcp://", 6) != 0)
		return 0;
	const char *colon = strrchr(s + 6, ':');
	if (!colon || colon == s + 6)
		return 0;
	const char *port = colon + 1;
	size_t pl = strlen(port);
	return strcmp(port, "*") == 0 || (pl >= 1 && pl <= 5 && strspn(port, "0123456789") == pl);
}

static int s_load_gateway(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	struct gw_gateway *gw = &cfg->gw;
	const config_setting_t *g, *at, *list;
	const char *v;
	TRY(s_get_group(ld, root, "gateway", 1, &g));
	static const char *const known[] = {"member", "key_file", "listen", "store",
					    "admin_socket", "verify_threads", "store_max_map_size", NULL};
	TRY(s_known_keys(ld, g, "gateway", known));

	TRY(s_get_string(ld, g, "gateway", "member", 1, &v, &at));
	TRY(s_check_member_id(ld, at, "gateway.member", v));
	gw->member = s_strdup(cfg, v);
	ENOMEM_IF_NULL(gw->member);

	TRY(s_get_string(ld, g, "gateway", "key_file", 1, &v, &at));
	TRY(s_path(ld, at, "gateway.key_file", v, &gw->key_file));
	TRY(s_get_string(ld, g, "gateway", "store", 1, &v, &at));
	TRY(s_path(ld, at, "gateway.store", v, &gw->store));
	TRY(s_get_string(ld, g, "gateway", "admin_socket", 1, &v, &at));
	TRY(s_path(ld, at, "gateway.admin_socket", v, &gw->admin_socket));
	if (strlen(gw->admin_socket) >= GW_UNIX_PATH_MAX)
		return s_fail(ld, at, "gateway.admin_socket: %s is longer than the %d bytes a unix socket "
				      "path may have",
			      gw->admin_socket, GW_UNIX_PATH_MAX - 1);

	TRY(s_get_strings(ld, g, "gateway", "listen", GW_MAX_LISTEN, &list));
	if (!list)
		return s_fail(ld, g, "gateway: missing required key 'listen'");
	int n = config_setting_length(list);
	if (n == 0)
		return s_fail(ld, list, "gateway.listen: at least one endpoint is required");
	const char **eps = s_alloc(cfg, (size_t)n * sizeof *eps);
	ENOMEM_IF_NULL(eps);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *ep = config_setting_get_string(e);
		char safe[200];
		if (!s_endpoint_ok(ep))
			return s_fail(ld, e,
				      "gateway.listen: '%s' is not a ZeroMQ endpoint tcp://HOST:PORT or ipc://PATH "
				      "(at most %d bytes, no spaces)",
				      s_safe(ep, safe, sizeof safe), GW_MAX_ENDPOINT);
		if (strncmp(ep, "ipc://", 6) == 0 && ep[6] != '/' && ep[6] != '@') {
			/* A relative ipc path is relative to this file, like every path. */
			const char *abs;
			TRY(s_path(ld, e, "gateway.listen", ep + 6, &abs));
			char *full = s_alloc(cfg, strlen(abs) + 7);
			ENOMEM_IF_NULL(full);
			memcpy(full, "ipc://", 6);
			memcpy(full + 6, abs, strlen(abs) + 1);
			ep = full;
		}
		if (strncmp(ep, "ipc://", 6) == 0 && strlen(ep + 6) >= GW_UNIX_PATH_MAX)
			return s_fail(ld, e, "gateway.listen: the ipc path %s is longer than the %d bytes a unix "
					     "socket path may have",
				      ep + 6, GW_UNIX_PATH_MAX - 1);
		for (int k = 0; k < i; k++)
			if (strcmp(eps[k], ep) == 0)
				return s_fail(ld, e, "gateway.listen: '%s' is listed twice", ep);
		eps[i] = ep == config_setting_get_string(e) ? s_strdup(cfg, ep) : ep;
		ENOMEM_IF_NULL(eps[i]);
	}
	gw->listen = eps;
	gw->nlisten = (size_t)n;

	long long vt = 2;
	TRY(s_get_int(ld, g, "gateway", "verify_threads", 1, 64, &vt, NULL));
	gw->verify_threads = (unsigned)vt;
	/* 1 MiB: below that the store's deletion reserve (256 KiB at least)
	 * and the tables' root pages leave little for entries; 1 TiB: more
	 * than any one machine of a 盟市 deployment will map */
	long long mm = 0;
	TRY(s_get_int(ld, g, "gateway", "store_max_map_size", 1048576, 1099511627776LL, &mm, NULL));
	gw->store_max_map_size = (size_t)mm;
	return 0;
}

enum s_lkind { L_SIZE, L_UINT, L_I64, L_INT };

static const struct s_limit {
	const char *key;
	enum s_lkind kind;
	size_t off;
	long long min, max;
} s_limits[] = {
	{"max_header", L_SIZE, offsetof(struct gw_limits, max_header), 1024, 16384},
	{"max_body", L_SIZE, offsetof(struct gw_limits, max_body), 1024, 4194304},
	{"max_frames", L_UINT, offsetof(struct gw_limits, max_frames), 4, 16},
	{"max_inflight_per_member", L_UINT, offsetof(struct gw_limits, max_inflight_per_member), 1, 1000000},
	{"max_pending", L_UINT, offsetof(struct gw_limits, max_pending), 1, 10000000},
	{"clock_skew_ms", L_I64, offsetof(struct gw_limits, clock_skew_ms), 1000, 3600000},
	{"replay_window_ms", L_I64, offsetof(struct gw_limits, replay_window_ms), 2000, 604800000},
	{"default_deadline_ms", L_I64, offsetof(struct gw_limits, default_deadline_ms), 100, 86400000},
	{"max_deadline_ms", L_I64, offsetof(struct gw_limits, max_deadline_ms), 100, 86400000},
	{"heartbeat_ms", L_I64, offsetof(struct gw_limits, heartbeat_ms), 100, 60000},
	{"heartbeat_liveness", L_UINT, offsetof(struct gw_limits, heartbeat_liveness), 1, 100},
	{"queue_hwm", L_INT, offsetof(struct gw_limits, queue_hwm), 1, 10000000},
	{"idempotent_retries", L_UINT, offsetof(struct gw_limits, idempotent_retries), 0, 16},
};

#define N_LIMITS (sizeof s_limits / sizeof s_limits[0])

static int s_load_limits(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_limits *lim = &ld->cfg->lim;
	gw_limits_default(lim);
	const config_setting_t *g;
	TRY(s_get_group(ld, root, "limits", 0, &g));
	if (!g)
		return 0;
	const char *known[N_LIMITS + 1];
	for (size_t i = 0; i < N_LIMITS; i++)
		known[i] = s_limits[i].key;
	known[N_LIMITS] = NULL;
	TRY(s_known_keys(ld, g, "limits", known));
	const config_setting_t *at[N_LIMITS];
	for (size_t i = 0; i < N_LIMITS; i++) {
		const struct s_limit *l = &s_limits[i];
		char *p = (char *)lim + l->off;
		long long v;
		switch (l->kind) {
		case L_SIZE: v = (long long)*(size_t *)(void *)p; break;
		case L_UINT: v = *(unsigned *)(void *)p; break;
		case L_I64: v = *(int64_t *)(void *)p; break;
		default: v = *(int *)(void *)p; break;
		}
		TRY(s_get_int(ld, g, "limits", l->key, l->min, l->max, &v, &at[i]));
		switch (l->kind) {
		case L_SIZE: *(size_t *)(void *)p = (size_t)v; break;
		case L_UINT: *(unsigned *)(void *)p = (unsigned)v; break;
		case L_I64: *(int64_t *)(void *)p = v; break;
		default: *(int *)(void *)p = (int)v; break;
		}
	}
	/* Cross-checks are reported at the key that was set (the second one
	 * named, else the first, else the section). */
#define AT(i1, i2) (at[i2] ? at[i2] : at[i1] ? at[i1] : g)
	if (lim->replay_window_ms < 2 * lim->clock_skew_ms)
		return s_fail(ld, AT(5, 6),
			      "limits.replay_window_ms = %lld must be at least 2 * clock_skew_ms = %lld: "
			      "a message id must be remembered for as long as its time_ms is accepted",
			      (long long)lim->replay_window_ms, 2 * (long long)lim->clock_skew_ms);
	if (lim->default_deadline_ms > lim->max_deadline_ms)
		return s_fail(ld, AT(8, 7),
			      "limits.default_deadline_ms = %lld exceeds max_deadline_ms = %lld",
			      (long long)lim->default_deadline_ms, (long long)lim->max_deadline_ms);
	if (lim->max_inflight_per_member > lim->max_pending)
		return s_fail(ld, AT(4, 3),
			      "limits.max_inflight_per_member = %u exceeds max_pending = %u",
			      lim->max_inflight_per_member, lim->max_pending);
#undef AT
	return 0;
}

/* A member or service while loading, in file order. */
struct s_mtmp {
	struct gw_member m;
	const config_setting_t *at, *services;
	size_t final; /* index in the sorted cfg->members */
};

struct s_stmp {
	struct gw_service s;
	size_t member;  /* index into the s_mtmp array */
	size_t baselen; /* length of <name> in "<name>.v<N>" */
	const config_setting_t *at, *alias_at;
};

static int s_key32_opt(struct s_ld *ld, const config_setting_t *m, const char *id, const char *key,
		       int required, uint8_t out[32], bool *present)
{
	const char *v = NULL;
	const config_setting_t *at = NULL;
	char what[96];
	snprintf(what, sizeof what, "member %s", id);
	TRY(s_get_string(ld, m, what, key, required, &v, &at));
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (qiao_b64_decode_exact(v, out, 32) != 0)
		return s_fail(ld, at, "member %s: %s is not base64 of exactly 32 bytes (`qiao keygen` prints it)",
			      id, key);
	if (s_all_zero(out, 32))
		return s_fail(ld, at, "member %s: %s is all zero bytes", id, key);
	return 0;
}

static int s_key32(struct s_ld *ld, const config_setting_t *m, const char *id, const char *key,
		   uint8_t out[32])
{
	return s_key32_opt(ld, m, id, key, 1, out, NULL);
}

static int s_load_member(struct s_ld *ld, const config_setting_t *ms, struct s_mtmp *t)
{
	struct gw_config *cfg = ld->cfg;
	if (config_setting_type(ms) != CONFIG_TYPE_GROUP)
		return s_fail(ld, ms, "members: each entry must be a group { id = ...; ... }, not %s",
			      s_type_word(ms));
	static const char *const known[] = {"id", "name", "curve_public", "sign_public", "next_curve_public",
					    "next_sign_public", "services", NULL};
	TRY(s_known_keys(ld, ms, "member", known));
	const char *v;
	const config_setting_t *at;
	TRY(s_get_string(ld, ms, "member", "id", 1, &v, &at));
	TRY(s_check_member_id(ld, at, "member id", v));
	if (strcmp(v, cfg->gw.member) == 0)
		return s_fail(ld, at,
			      "member id %s is the gateway's own id (gateway.member); the gateway signs "
			      "its own errors and is not a member that connects",
			      v);
	t->m.id = s_strdup(cfg, v);
	ENOMEM_IF_NULL(t->m.id);
	t->at = at;
	t->m.file = s_file(ld, ms);
	ENOMEM_IF_NULL(t->m.file);
	t->m.line = config_setting_source_line(ms);

	char what[96];
	snprintf(what, sizeof what, "member %s", t->m.id);
	TRY(s_get_string(ld, ms, what, "name", 1, &v, &at));
	if (!s_text_ok(v, GW_MAX_NAME_CHARS))
		return s_fail(ld, at, "member %s: name must be 1..%d characters of printable UTF-8",
			      t->m.id, GW_MAX_NAME_CHARS);
	t->m.name = s_strdup(cfg, v);
	ENOMEM_IF_NULL(t->m.name);
	TRY(s_key32(ld, ms, t->m.id, "curve_public", t->m.curve_public));
	TRY(s_key32(ld, ms, t->m.id, "sign_public", t->m.sign_public));
	TRY(s_key32_opt(ld, ms, t->m.id, "next_curve_public", 0, t->m.next_curve_public, &t->m.has_next_curve));
	TRY(s_key32_opt(ld, ms, t->m.id, "next_sign_public", 0, t->m.next_sign_public, &t->m.has_next_sign));
	if (t->m.has_next_curve && memcmp(t->m.next_curve_public, t->m.curve_public, 32) == 0)
		return s_fail(ld, config_setting_get_member(ms, "next_curve_public"),
			      "member %s: next_curve_public is the same as curve_public; it must be the new key "
			      "of a rotation (`qiao keygen` makes one)",
			      t->m.id);
	if (t->m.has_next_sign && memcmp(t->m.next_sign_public, t->m.sign_public, 32) == 0)
		return s_fail(ld, config_setting_get_member(ms, "next_sign_public"),
			      "member %s: next_sign_public is the same as sign_public; it must be the new key "
			      "of a rotation (`qiao keygen` makes one)",
			      t->m.id);
	TRY(s_get_list(ld, ms, "services", &t->services));
	if (t->services && config_setting_length(t->services) > GW_MAX_SERVICES_PER_MEMBER)
		return s_fail(ld, t->services, "member %s: %d services, at most %d allowed", t->m.id,
			      config_setting_length(t->services), GW_MAX_SERVICES_PER_MEMBER);
	return 0;
}

static int s_parse_class(struct s_ld *ld, const config_setting_t *at, const char *what, const char *v,
			 enum gw_share_class *out)
{
	if (strcmp(v, "unconditional") == 0)
		*out = GW_SHARE_UNCONDITIONAL;
	else if (strcmp(v, "conditional") == 0)
		*out = GW_SHARE_CONDITIONAL;
	else if (strcmp(v, "none") == 0)
		*out = GW_SHARE_NONE;
	else {
		char safe[200];
		return s_fail(ld, at,
			      "%s: class '%s' is not \"unconditional\" (无条件共享), \"conditional\" "
			      "(有条件共享) or \"none\" (不予共享)",
			      what, s_safe(v, safe, sizeof safe));
	}
	return 0;
}

static int s_load_service(struct s_ld *ld, const config_setting_t *ss, const struct s_mtmp *mt,
			  struct s_stmp *t)
{
	struct gw_config *cfg = ld->cfg;
	const char *mid = mt->m.id;
	char what[160], safe[200];
	snprintf(what, sizeof what, "member %s: service", mid);
	if (config_setting_type(ss) != CONFIG_TYPE_GROUP)
		return s_fail(ld, ss, "%s: each entry must be a group { name = ...; ... }, not %s", what,
			      s_type_word(ss));
	static const char *const known[] = {"name", "request", "response", "one_way", "class", "personal",
					    "idempotent", "alias", "description", NULL};
	TRY(s_known_keys(ld, ss, "service", known));
	const char *v;
	const config_setting_t *at;
	TRY(s_get_string(ld, ss, what, "name", 1, &v, &at));
	if (!s_service_name_ok(v, &t->baselen, &t->s.version))
		return s_fail(ld, at,
			      "%s name '%s' is not <name>.v<N> (name [a-z0-9][a-z0-9.-]{0,63}, N 1-4 digits)",
			      what, s_safe(v, safe, sizeof safe));
	if (t->s.version == 0)
		return s_fail(ld, at, "%s name '%s': versions start at 1", what, v);
	t->s.name = s_strdup(cfg, v);
	ENOMEM_IF_NULL(t->s.name);
	t->at = at;
	t->s.file = s_file(ld, ss);
	ENOMEM_IF_NULL(t->s.file);
	t->s.line = config_setting_source_line(ss);
	size_t idlen = strlen(mid) + 1 + strlen(v);
	if (idlen > QIAO_MAX_SERVICE)
		return s_fail(ld, at, "%s %s: the service id %s/%s is longer than %d bytes", what, v, mid,
			      v, QIAO_MAX_SERVICE);
	char *id = s_alloc(cfg, idlen + 1);
	ENOMEM_IF_NULL(id);
	snprintf(id, idlen + 1, "%s/%s", mid, v);
	t->s.id = id;
	snprintf(what, sizeof what, "service %s", id);

	TRY(s_get_string(ld, ss, what, "request", 1, &v, &at));
	if (!s_type_name_ok(v))
		return s_fail(ld, at, "%s: request type '%s' is not a protobuf type name "
				      "(e.g. qiao.v1.TitleSummaryRequest; [A-Za-z0-9_.], at most %d bytes)",
			      what, s_safe(v, safe, sizeof safe), GW_MAX_TYPE);
	t->s.request_type = s_strdup(cfg, v);
	ENOMEM_IF_NULL(t->s.request_type);
	TRY(s_get_bool(ld, ss, what, "one_way", &t->s.one_way));
	TRY(s_get_string(ld, ss, what, "response", !t->s.one_way, &v, &at));
	if (v && t->s.one_way)
		return s_fail(ld, at, "%s: a one-way (EVENT) service has no response type", what);
	if (v && !s_type_name_ok(v))
		return s_fail(ld, at, "%s: response type '%s' is not a protobuf type name "
				      "(e.g. qiao.v1.TitleSummary; [A-Za-z0-9_.], at most %d bytes)",
			      what, s_safe(v, safe, sizeof safe), GW_MAX_TYPE);
	t->s.response_type = s_strdup(cfg, v ? v : "");
	ENOMEM_IF_NULL(t->s.response_type);
	TRY(s_get_string(ld, ss, what, "class", 1, &v, &at));
	TRY(s_parse_class(ld, at, what, v, &t->s.share_class));
	TRY(s_get_bool(ld, ss, what, "personal", &t->s.personal));
	TRY(s_get_bool(ld, ss, what, "idempotent", &t->s.idempotent));
	TRY(s_get_string(ld, ss, what, "alias", 0, &v, &at));
	if (v) {
		if (!s_service_name_ok(v, NULL, NULL))
			return s_fail(ld, at,
				      "%s: alias '%s' is not <name>.v<N> (name [a-z0-9][a-z0-9.-]{0,63}, N 1-4 digits)",
				      what, s_safe(v, safe, sizeof safe));
		t->s.alias = s_strdup(cfg, v);
		ENOMEM_IF_NULL(t->s.alias);
		t->alias_at = at;
	}
	TRY(s_get_string(ld, ss, what, "description", 0, &v, &at));
	if (v && v[0] && !s_text_ok(v, GW_MAX_DESCRIPTION_CHARS))
		return s_fail(ld, at, "%s: description must be at most %d characters of printable UTF-8",
			      what, GW_MAX_DESCRIPTION_CHARS);
	t->s.description = s_strdup(cfg, v ? v : "");
	ENOMEM_IF_NULL(t->s.description);
	return 0;
}

/* Sorting of the final arrays. */

static int s_member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct s_mtmp *)a)->m.id, ((const struct s_mtmp *)b)->m.id);
}

static int s_curve_cmp(const void *a, const void *b)
{
	const struct gw_member *x = *(const struct gw_member *const *)a;
	const struct gw_member *y = *(const struct gw_member *const *)b;
	return memcmp(x->curve_public, y->curve_public, 32);
}

/* Provider (sorted member index), then <name>, then version. */
static int s_stmp_cmp_in(const struct s_stmp *x, const struct s_stmp *y, size_t fx, size_t fy)
{
	if (fx != fy)
		return fx < fy ? -1 : 1;
	size_t n = x->baselen < y->baselen ? x->baselen : y->baselen;
	int c = memcmp(x->s.name, y->s.name, n);
	if (c)
		return c;
	if (x->baselen != y->baselen)
		return x->baselen < y->baselen ? -1 : 1;
	return x->s.version < y->s.version ? -1 : x->s.version > y->s.version;
}

/* qsort has no context argument; the final member index travels with
 * each service to sort, so the comparator needs none. */
struct s_ssort {
	struct s_stmp *t;
	size_t final;
};

static int s_ssort_cmp(const void *a, const void *b)
{
	const struct s_ssort *x = a, *y = b;
	return s_stmp_cmp_in(x->t, y->t, x->final, y->final);
}

static int s_svc_id_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct gw_service *const *)a)->id, (*(const struct gw_service *const *)b)->id);
}

static int s_svc_alias_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct gw_service *const *)a)->alias,
		      (*(const struct gw_service *const *)b)->alias);
}

static int s_load_members(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	const config_setting_t *list;
	TRY(s_get_list(ld, root, "members", &list));
	size_t n = list ? (size_t)config_setting_length(list) : 0;
	if (n > GW_MAX_MEMBERS)
		return s_fail(ld, list, "members: %zu entries, at most %d allowed", n, GW_MAX_MEMBERS);
	if (n == 0)
		return 0;

	int rc = QIAO_ENOMEM;
	struct s_mtmp *mt = calloc(n, sizeof *mt);
	struct s_ent *ent = calloc(n, sizeof *ent);
	struct s_stmp *st = NULL;
	struct s_ent *sent = NULL;
	struct s_ssort *ss = NULL;
	size_t *order = NULL;
	if (!mt || !ent)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rc = s_load_member(ld, config_setting_get_elem(list, (unsigned)i), &mt[i]);
		if (rc)
			goto out;
	}

	/* Duplicate ids, CURVE keys and signing keys, in that order. */
	static const struct {
		enum s_key kind;
		const char *what;
	} dups[] = {{S_KEY_STR, "id"}, {S_KEY_32, "curve_public"}, {S_KEY_32, "sign_public"}};
	for (size_t d = 0; d < sizeof dups / sizeof dups[0]; d++) {
		for (size_t i = 0; i < n; i++) {
			ent[i].kind = dups[d].kind;
			ent[i].key = d == 0 ? (const void *)mt[i].m.id
					    : d == 1 ? (const void *)mt[i].m.curve_public
						     : (const void *)mt[i].m.sign_public;
			ent[i].ord = i;
			ent[i].at = d == 0 ? mt[i].at
					   : config_setting_get_member(config_setting_get_elem(list, (unsigned)i),
								       dups[d].what);
		}
		size_t dup, first;
		if (s_find_dup(ent, n, &dup, &first)) {
			const struct s_mtmp *a = &mt[ent[first].ord], *b = &mt[ent[dup].ord];
			rc = d == 0 ? s_fail(ld, ent[dup].at, "duplicate member %s (first defined at %s:%u)",
					     b->m.id, a->m.file, a->m.line)
				    : s_fail(ld, ent[dup].at,
					     "member %s has the same %s key as member %s (%s:%u); every member "
					     "needs its own keys (`qiao keygen`)",
					     b->m.id, dups[d].what, a->m.id, a->m.file, a->m.line);
			goto out;
		}
	}

	/* Next keys of a rotation: each must differ from every key of every
	 * other member (current or next), so a key names one member only.
	 * Few members rotate at once: O(rotating * members). */
	for (size_t i = 0; i < n; i++) {
		const struct gw_member *a = &mt[i].m;
		const config_setting_t *ams = config_setting_get_elem(list, (unsigned)i);
		for (int kind = 0; kind < 2; kind++) {
			const char *what = kind == 0 ? "next_curve_public" : "next_sign_public";
			if (kind == 0 ? !a->has_next_curve : !a->has_next_sign)
				continue;
			const uint8_t *key = kind == 0 ? a->next_curve_public : a->next_sign_public;
			for (size_t j = 0; j < n; j++) {
				const struct gw_member *b = &mt[j].m;
				if (j == i)
					continue;
				const uint8_t *cur = kind == 0 ? b->curve_public : b->sign_public;
				int nx = kind == 0 ? b->has_next_curve : b->has_next_sign;
				const uint8_t *nxt = kind == 0 ? b->next_curve_public : b->next_sign_public;
				int same_cur = memcmp(key, cur, 32) == 0;
				if (same_cur || (nx && memcmp(key, nxt, 32) == 0)) {
					rc = s_fail(ld, config_setting_get_member(ams, what),
						    "member %s: %s is the %s%s key of member %s (%s:%u); every "
						    "member needs its own keys (`qiao keygen`)",
						    a->id, what, same_cur ? "" : "next ",
						    kind == 0 ? "CURVE" : "signing", b->id, b->file, b->line);
					goto out;
				}
			}
		}
	}

	/* Services, in file order. */
	size_t ns = 0;
	for (size_t i = 0; i < n; i++)
		ns += mt[i].services ? (size_t)config_setting_length(mt[i].services) : 0;
	if (ns) {
		st = calloc(ns, sizeof *st);
		sent = calloc(ns, sizeof *sent);
		ss = calloc(ns, sizeof *ss);
		if (!st || !sent || !ss) {
			rc = QIAO_ENOMEM;
			goto out;
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int len = mt[i].services ? config_setting_length(mt[i].services) : 0;
		for (int j = 0; j < len; j++, k++) {
			st[k].member = i;
			rc = s_load_service(ld, config_setting_get_elem(mt[i].services, (unsigned)j), &mt[i], &st[k]);
			if (rc)
				goto out;
		}
	}
	for (size_t i = 0; i < ns; i++)
		sent[i] = (struct s_ent){S_KEY_STR, st[i].s.id, i, st[i].at};
	size_t dup, first;
	if (s_find_dup(sent, ns, &dup, &first)) {
		const struct s_stmp *a = &st[sent[first].ord];
		rc = s_fail(ld, sent[dup].at, "duplicate service %s (first defined at %s:%u)", a->s.id,
			    a->s.file, a->s.line);
		goto out;
	}
	size_t na = 0;
	for (size_t i = 0; i < ns; i++)
		if (st[i].s.alias)
			sent[na++] = (struct s_ent){S_KEY_STR, st[i].s.alias, i, st[i].alias_at};
	if (s_find_dup(sent, na, &dup, &first)) {
		const struct s_stmp *a = &st[sent[first].ord], *b = &st[sent[dup].ord];
		rc = s_fail(ld, sent[dup].at,
			    "service %s: alias '%s' is already the alias of %s (%s:%u); aliases are unique",
			    b->s.id, b->s.alias, a->s.id, a->s.file, a->s.line);
		goto out;
	}

	/* Final arrays.  Members sorted by id; services by provider, name,
	 * version, so each member's services are one contiguous run. */
	rc = QIAO_ENOMEM;
	order = calloc(n, sizeof *order);
	if (!order)
		goto out;
	for (size_t i = 0; i < n; i++)
		mt[i].final = i; /* reused below: file index before the sort */
	qsort(mt, n, sizeof *mt, s_member_cmp);
	/* mt is now sorted; order[file index] = sorted index. */
	for (size_t i = 0; i < n; i++)
		order[mt[i].final] = i;
	cfg->members = s_alloc(cfg, n * sizeof *cfg->members);
	cfg->by_curve = s_alloc(cfg, n * sizeof *cfg->by_curve);
	cfg->services = s_alloc(cfg, (ns ? ns : 1) * sizeof *cfg->services);
	cfg->by_id = s_alloc(cfg, (ns ? ns : 1) * sizeof *cfg->by_id);
	cfg->by_alias = s_alloc(cfg, (na ? na : 1) * sizeof *cfg->by_alias);
	if (!cfg->members || !cfg->by_curve || !cfg->services || !cfg->by_id || !cfg->by_alias)
		goto out;
	cfg->nmembers = n;
	for (size_t i = 0; i < n; i++) {
		cfg->members[i] = mt[i].m;
		cfg->by_curve[i] = &cfg->members[i];
	}
	qsort(cfg->by_curve, n, sizeof *cfg->by_curve, s_curve_cmp);
	for (size_t i = 0; i < n; i++)
		cfg->nrotating += cfg->members[i].has_next_curve;
	if (cfg->nrotating) {
		cfg->rotating = s_alloc(cfg, cfg->nrotating * sizeof *cfg->rotating);
		if (!cfg->rotating)
			goto out;
		for (size_t i = 0, r = 0; i < n; i++)
			if (cfg->members[i].has_next_curve)
				cfg->rotating[r++] = &cfg->members[i];
	}

	for (size_t i = 0; i < ns; i++)
		ss[i] = (struct s_ssort){&st[i], order[st[i].member]};
	if (ns)
		qsort(ss, ns, sizeof *ss, s_ssort_cmp);
	cfg->nservices = ns;
	for (size_t i = 0; i < ns; i++) {
		struct gw_service *s = &cfg->services[i];
		struct gw_member *m = &cfg->members[ss[i].final];
		*s = ss[i].t->s;
		s->provider = m;
		if (!m->services)
			m->services = s;
		m->nservices++;
		cfg->by_id[i] = s;
		if (s->alias)
			cfg->by_alias[cfg->naliases++] = s;
	}
	if (ns) {
		qsort(cfg->by_id, ns, sizeof *cfg->by_id, s_svc_id_cmp);
		if (cfg->naliases)
			qsort(cfg->by_alias, cfg->naliases, sizeof *cfg->by_alias, s_svc_alias_cmp);
	}
	rc = 0;
out:
	free(mt);
	free(ent);
	free(st);
	free(sent);
	free(ss);
	free(order);
	return rc;
}

/* ----------------------------------------------------------------- policy */

static int s_rule_key_cmp(const struct gw_rule *a, const struct gw_rule *b)
{
	/* Members and services are arrays in their sort order, so pointer
	 * order is that order. */
	if (a->consumer != b->consumer)
		return a->consumer < b->consumer ? -1 : 1;
	if (a->service != b->service)
		return a->service < b->service ? -1 : 1;
	return 0;
}

static int s_rule_cmp(const void *a, const void *b)
{
	return s_rule_key_cmp(a, b);
}

/* Append to buf[GW_RULE_MAX] at *len; 0, or -1 when it does not fit. */
static int s_put(char *buf, size_t *len, const char *s, int quote)
{
	for (const char *p = s; *p; p++) {
		int esc = quote && (*p == '"' || *p == '\\');
		if (*len + 1 + (size_t)esc >= GW_RULE_MAX)
			return -1;
		if (esc)
			buf[(*len)++] = '\\';
		buf[(*len)++] = *p;
	}
	buf[*len] = '\0';
	return 0;
}

/* The rule in config syntax, one line; cut with "..." (on a character
 * boundary) when longer than GW_RULE_MAX - 1 bytes. */
static char *s_rule_text(struct gw_config *cfg, const struct gw_rule *r)
{
	char buf[GW_RULE_MAX];
	size_t len = 0;
	buf[0] = '\0';
	int bad = s_put(buf, &len, "{ consumer = \"", 0) || s_put(buf, &len, r->consumer->id, 1) ||
		  s_put(buf, &len, "\"; service = \"", 0) || s_put(buf, &len, r->service->id, 1) ||
		  s_put(buf, &len, "\"; class = \"", 0) ||
		  s_put(buf, &len, gw_share_class_name(r->share_class), 0) || s_put(buf, &len, "\";", 0);
	if (!bad && r->npurposes) {
		bad = s_put(buf, &len, " purposes = [ ", 0);
		for (size_t i = 0; !bad && i < r->npurposes; i++)
			bad = s_put(buf, &len, i ? ", \"" : "\"", 0) || s_put(buf, &len, r->purposes[i], 1) ||
			      s_put(buf, &len, "\"", 0);
		bad = bad || s_put(buf, &len, " ];", 0);
	}
	if (!bad && r->require_case)
		bad = s_put(buf, &len, " require_case = true;", 0);
	if (!bad && r->serve_stale)
		bad = s_put(buf, &len, " serve_stale = true;", 0);
	if (!bad)
		bad = s_put(buf, &len, " }", 0);
	if (bad) {
		buf[len < GW_RULE_MAX - 4 ? len : GW_RULE_MAX - 4] = '\0';
		s_utf8_trim(buf);
		strcat(buf, "...");
	}
	return s_strdup(cfg, buf);
}

struct s_rtmp {
	struct gw_rule r;
	const config_setting_t *at;
};

static int s_load_rule(struct s_ld *ld, const config_setting_t *rs, struct gw_rule *r)
{
	struct gw_config *cfg = ld->cfg;
	char safe[200];
	if (config_setting_type(rs) != CONFIG_TYPE_GROUP)
		return s_fail(ld, rs, "policy: each rule must be a group { consumer = ...; ... }, not %s",
			      s_type_word(rs));
	static const char *const known[] = {"consumer", "service", "class", "purposes", "require_case", "serve_stale",
					    NULL};
	TRY(s_known_keys(ld, rs, "policy rule", known));
	r->file = s_file(ld, rs);
	ENOMEM_IF_NULL(r->file);
	r->line = config_setting_source_line(rs);
	const char *v;
	const config_setting_t *at;
	TRY(s_get_string(ld, rs, "policy rule", "consumer", 1, &v, &at));
	TRY(s_check_member_id(ld, at, "policy rule: consumer", v));
	r->consumer = gw_config_member(cfg, v);
	if (!r->consumer)
		return s_fail(ld, at, "policy rule: consumer %s is not a member (members = ( ... ))", v);

	TRY(s_get_string(ld, rs, "policy rule", "service", 1, &v, &at));
	r->service = gw_config_service(cfg, v);
	if (!r->service)
		return s_fail(ld, at,
			      "policy rule: no member offers service '%s' (give a full id "
			      "<member>/<name>.v<N> or a registered alias)",
			      s_safe(v, safe, sizeof safe));
	const struct gw_service *svc = r->service;
	char what[300];
	snprintf(what, sizeof what, "policy rule for %s -> %s", r->consumer->id, svc->id);

	TRY(s_get_string(ld, rs, what, "class", 1, &v, &at));
	TRY(s_parse_class(ld, at, what, v, &r->share_class));
	if (svc->share_class == GW_SHARE_NONE)
		return s_fail(ld, at,
			      "%s: the service is classed \"none\" (不予共享) and cannot be granted", what);
	if (r->share_class != svc->share_class)
		return s_fail(ld, at, "%s: class \"%s\" does not match the service's class \"%s\" (%s:%u)",
			      what, gw_share_class_name(r->share_class),
			      gw_share_class_name(svc->share_class), svc->file, svc->line);

	const config_setting_t *list;
	TRY(s_get_strings(ld, rs, what, "purposes", GW_MAX_PURPOSES, &list));
	size_t np = list ? (size_t)config_setting_length(list) : 0;
	if (np == 0 && (svc->share_class == GW_SHARE_CONDITIONAL || svc->personal))
		return s_fail(ld, list ? list : rs,
			      "%s: purposes = [ ... ] required: the service is %s, so every call must "
			      "state an allowed purpose (申请事由)",
			      what,
			      svc->share_class == GW_SHARE_CONDITIONAL ? "conditional (有条件共享)"
								       : "personal (个人信息)");
	if (np) {
		const char **p = s_alloc(cfg, np * sizeof *p);
		ENOMEM_IF_NULL(p);
		for (size_t i = 0; i < np; i++) {
			const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
			v = config_setting_get_string(e);
			if (!s_text_ok(v, QIAO_MAX_PURPOSE_CHARS))
				return s_fail(ld, e,
					      "%s: purpose %zu must be 1..%d characters of printable UTF-8",
					      what, i + 1, QIAO_MAX_PURPOSE_CHARS);
			p[i] = s_strdup(cfg, v);
			ENOMEM_IF_NULL(p[i]);
		}
		r->purposes = p;
		r->npurposes = np;
	}
	TRY(s_get_bool(ld, rs, what, "require_case", &r->require_case));
	TRY(s_get_bool(ld, rs, what, "serve_stale", &r->serve_stale));
	r->text = s_rule_text(cfg, r);
	ENOMEM_IF_NULL(r->text);
	return 0;
}

static int s_load_policy(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	const config_setting_t *list;
	TRY(s_get_list(ld, root, "policy", &list));
	size_t n = list ? (size_t)config_setting_length(list) : 0;
	if (n > GW_MAX_RULES)
		return s_fail(ld, list, "policy: %zu rules, at most %d allowed", n, GW_MAX_RULES);
	if (n == 0)
		return 0;
	int rc = QIAO_ENOMEM;
	struct s_rtmp *rt = calloc(n, sizeof *rt);
	struct s_ent *ent = calloc(n, sizeof *ent);
	if (!rt || !ent)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rt[i].at = config_setting_get_elem(list, (unsigned)i);
		rc = s_load_rule(ld, rt[i].at, &rt[i].r);
		if (rc)
			goto out;
		ent[i] = (struct s_ent){S_KEY_RULE, &rt[i].r, i, rt[i].at};
	}
	size_t dup, first;
	if (s_find_dup(ent, n, &dup, &first)) {
		const struct gw_rule *a = ent[first].key;
		rc = s_fail(ld, ent[dup].at,
			    "policy: a second rule for %s -> %s (first at %s:%u); merge their purposes "
			    "into one rule",
			    a->consumer->id, a->service->id, a->file, a->line);
		goto out;
	}
	rc = QIAO_ENOMEM;
	cfg->rules = s_alloc(cfg, n * sizeof *cfg->rules);
	if (!cfg->rules)
		goto out;
	for (size_t i = 0; i < n; i++)
		cfg->rules[i] = rt[i].r;
	cfg->nrules = n;
	qsort(cfg->rules, n, sizeof *cfg->rules, s_rule_cmp);
	rc = 0;
out:
	free(rt);
	free(ent);
	return rc;
}

/* ------------------------------------------------------------------ load */

/* The name in `@include "NAME"` on line `line` of `fname`, into out[]. */
static int s_include_name(struct s_ld *ld, const char *fname, int line, char *out, size_t outlen)
{
	char full[GW_MAX_PATH];
	if (fname[0] == '/' || strcmp(fname, ld->path) == 0)
		snprintf(full, sizeof full, "%s", fname);
	else if ((size_t)snprintf(full, sizeof full, "%s/%s", ld->dir, fname) >= sizeof full)
		return 0;
	FILE *f = fopen(full, "r");
	if (!f)
		return 0;
	char buf[GW_MAX_PATH + 64];
	int found = 0;
	for (int n = 1; fgets(buf, sizeof buf, f); n++) {
		if (n < line)
			continue;
		char *q = strstr(buf, "@include");
		char *a = q ? strchr(q, '"') : NULL;
		char *b = a ? strchr(a + 1, '"') : NULL;
		if (b) {
			*b = '\0';
			s_safe(a + 1, out, outlen);
			found = 1;
		}
		break;
	}
	fclose(f);
	return found;
}

/* libconfig's own error (syntax, include) as "FILE:LINE: text". */
static void s_parse_error(struct s_ld *ld)
{
	if (!ld->err || !ld->errlen)
		return;
	const char *file = config_error_file(&ld->lc) ? config_error_file(&ld->lc) : ld->path;
	int line = config_error_line(&ld->lc);
	const char *text = config_error_text(&ld->lc) ? config_error_text(&ld->lc) : "syntax error";
	char name[200];
	if (strstr(text, "cannot open include file") && s_include_name(ld, file, line, name, sizeof name)) {
		if (name[0] == '/')
			snprintf(ld->err, ld->errlen,
				 "%s:%d: cannot open include file \"%s\": include paths are joined to the "
				 "main file's directory %s, so absolute paths do not work; write it relative "
				 "to that directory",
				 file, line, name, ld->dir);
		else
			snprintf(ld->err, ld->errlen,
				 "%s:%d: cannot open include file \"%s\" (looked for %s/%s; include paths "
				 "are relative to the main file's directory)",
				 file, line, name, ld->dir, name);
	} else {
		snprintf(ld->err, ld->errlen, "%s:%d: %s", file, line, text);
	}
	s_utf8_trim(ld->err);
}

/* Printable ASCII, no spaces or '+' (a C2SP note key name is the origin). */
static int s_origin_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '+')
			return 0;
	return 1;
}

static int s_load_audit(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	struct gw_audit *a = &cfg->audit;
	const config_setting_t *g, *at = NULL;
	const char *v = NULL;
	TRY(s_get_group(ld, root, "audit", 0, &g));
	long long every = 1000, ms = 1000;
	if (g) {
		static const char *const known[] = {"origin", "checkpoint_entries", "checkpoint_ms", NULL};
		TRY(s_known_keys(ld, g, "audit", known));
		TRY(s_get_string(ld, g, "audit", "origin", 0, &v, &at));
		TRY(s_get_int(ld, g, "audit", "checkpoint_entries", 1, 10000000, &every, NULL));
		TRY(s_get_int(ld, g, "audit", "checkpoint_ms", 10, 86400000, &ms, NULL));
	}
	if (v) {
		char safe[300];
		if (!s_origin_ok(v))
			return s_fail(ld, at, "audit.origin: '%s' must be 1..255 printable ASCII characters without "
					      "spaces or '+' (it names the log in its checkpoints)",
				      s_safe(v, safe, sizeof safe));
		a->origin = s_strdup(cfg, v);
	} else {
		char def[QIAO_MEMBER_MAX + 16];
		snprintf(def, sizeof def, "%s/audit", cfg->gw.member);
		a->origin = s_strdup(cfg, def);
	}
	ENOMEM_IF_NULL(a->origin);
	a->checkpoint_entries = (uint64_t)every;
	a->checkpoint_ms = ms;
	return 0;
}

static int s_load_cache(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	struct gw_cache *c = &cfg->cache;
	const config_setting_t *g, *list;
	long long lic = 3600000, cred = 600000, stale = 86400000;
	c->licence_fresh_ms = lic;
	c->credit_fresh_ms = cred;
	c->stale_max_ms = stale;
	TRY(s_get_group(ld, root, "cache", 0, &g));
	if (!g)
		return 0;
	static const char *const known[] = {"licence_fresh_ms", "credit_fresh_ms", "stale_max_ms", "subscribers", NULL};
	TRY(s_known_keys(ld, g, "cache", known));
	TRY(s_get_int(ld, g, "cache", "licence_fresh_ms", 0, 604800000, &lic, NULL));
	TRY(s_get_int(ld, g, "cache", "credit_fresh_ms", 0, 604800000, &cred, NULL));
	TRY(s_get_int(ld, g, "cache", "stale_max_ms", 0, 2000000000, &stale, NULL));
	c->licence_fresh_ms = lic;
	c->credit_fresh_ms = cred;
	c->stale_max_ms = stale;
	TRY(s_get_strings(ld, g, "cache", "subscribers", 1000, &list));
	int n = list ? config_setting_length(list) : 0;
	if (n) {
		const char **v = s_alloc(cfg, (size_t)n * sizeof *v);
		ENOMEM_IF_NULL(v);
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
			const char *m = config_setting_get_string(e);
			TRY(s_check_member_id(ld, e, "cache.subscribers", m));
			v[i] = s_strdup(cfg, m);
			ENOMEM_IF_NULL(v[i]);
		}
		c->subscribers = v;
		c->nsubscribers = (size_t)n;
	}
	return 0;
}

static int s_load_workflow(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	struct gw_workflow *w = &cfg->wf;
	const config_setting_t *g, *at = NULL;
	const char *v = NULL;
	TRY(s_get_group(ld, root, "workflow", 0, &g));
	if (!g)
		return 0;
	static const char *const known[] = {"key_file", "definitions", "socket", "endpoint", "max_open_cases", NULL};
	TRY(s_known_keys(ld, g, "workflow", known));
	w->enabled = true;
	TRY(s_get_string(ld, g, "workflow", "key_file", 1, &v, &at));
	TRY(s_path(ld, at, "workflow.key_file", v, &w->key_file));
	TRY(s_get_string(ld, g, "workflow", "definitions", 1, &v, &at));
	TRY(s_path(ld, at, "workflow.definitions", v, &w->definitions));
	TRY(s_get_string(ld, g, "workflow", "socket", 1, &v, &at));
	TRY(s_path(ld, at, "workflow.socket", v, &w->socket));
	if (strlen(w->socket) >= GW_UNIX_PATH_MAX)
		return s_fail(ld, at, "workflow.socket: %s is longer than the %d bytes a unix socket path may have",
			      w->socket, GW_UNIX_PATH_MAX - 1);
	v = NULL;
	TRY(s_get_string(ld, g, "workflow", "endpoint", 0, &v, &at));
	if (v) {
		if (strncmp(v, "tcp://", 6) != 0 && strncmp(v, "ipc://", 6) != 0)
			return s_fail(ld, at, "workflow.endpoint: '%s' is not tcp://HOST:PORT or ipc://PATH", v);
		w->endpoint = s_strdup(cfg, v);
		ENOMEM_IF_NULL(w->endpoint);
	}
	long long maxc = 100000;
	TRY(s_get_int(ld, g, "workflow", "max_open_cases", 1, 10000000, &maxc, NULL));
	w->max_open_cases = (unsigned)maxc;
	return 0;
}

/* "HOST:PORT" with HOST a numeric IPv4 address or [IPv6]: the metrics
 * endpoint binds exactly there (no name lookup, no wildcard by accident). */
static int s_hostport(const char *v, char *host, size_t hostlen, unsigned *port)
{
	const char *colon = NULL, *h = v;
	size_t hl;
	if (v[0] == '[') {
		const char *rb = strchr(v, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = v + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon || memchr(v, ':', (size_t)(colon - v)))
			return -1;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	unsigned char a[16];
	if (inet_pton(v[0] == '[' ? AF_INET6 : AF_INET, host, a) != 1)
		return -1;
	const char *p = colon + 1;
	unsigned long n = 0;
	if (!*p || strlen(p) > 5)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n < 1 || n > 65535)
		return -1;
	*port = (unsigned)n;
	return 0;
}

static int s_load_metrics(struct s_ld *ld, const config_setting_t *root)
{
	struct gw_config *cfg = ld->cfg;
	struct gw_metrics_conf *m = &cfg->met;
	const config_setting_t *g, *at = NULL;
	const char *v = NULL;
	/* default: ten checkpoint intervals, never under 10 s */
	long long overdue = cfg->audit.checkpoint_ms * 10;
	if (overdue < 10000)
		overdue = 10000;
	m->checkpoint_overdue_ms = overdue;
	TRY(s_get_group(ld, root, "metrics", 0, &g));
	if (!g)
		return 0;
	static const char *const known[] = {"listen", "checkpoint_overdue_ms", NULL};
	TRY(s_known_keys(ld, g, "metrics", known));
	TRY(s_get_string(ld, g, "metrics", "listen", 1, &v, &at));
	char host[64], safe[300];
	unsigned port = 0;
	if (s_hostport(v, host, sizeof host, &port) != 0)
		return s_fail(ld, at, "metrics.listen: '%s' is not HOST:PORT with a numeric IPv4 address or [IPv6] "
				      "address and a port 1..65535 (e.g. \"127.0.0.1:9464\")",
			      s_safe(v, safe, sizeof safe));
	TRY(s_get_int(ld, g, "metrics", "checkpoint_overdue_ms", 1000, 86400000, &overdue, NULL));
	m->enabled = true;
	m->listen = s_strdup(cfg, v);
	m->host = s_strdup(cfg, host);
	ENOMEM_IF_NULL(m->listen);
	ENOMEM_IF_NULL(m->host);
	m->port = port;
	m->checkpoint_overdue_ms = overdue;
	return 0;
}

static int s_load(struct s_ld *ld)
{
	const config_setting_t *root = config_root_setting(&ld->lc);
	TRY(s_scan_integers(ld));
	static const char *const known[] = {"gateway", "limits", "audit", "cache", "identifiers", "members", "policy",
					    "workflow", "metrics", NULL};
	TRY(s_known_keys(ld, root, "the top level", known));
	TRY(s_load_identifiers(ld, root));
	TRY(s_load_gateway(ld, root));
	TRY(s_load_limits(ld, root));
	TRY(s_load_audit(ld, root));
	TRY(s_load_cache(ld, root));
	TRY(s_load_workflow(ld, root));
	TRY(s_load_metrics(ld, root));
	TRY(s_load_members(ld, root));
	TRY(s_load_policy(ld, root));
	return 0;
}

int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return QIAO_EINVAL;
	*out = NULL;
	if (!path || !path[0]) {
		if (err && errlen)
			snprintf(err, errlen, "no configuration file given");
		return QIAO_EINVAL;
	}

	/* Open it ourselves first: libconfig reports only "file I/O error". */
	struct stat st;
	FILE *f = fopen(path, "r");
	if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		int e = !f ? errno : S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		if (f)
			fclose(f);
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot read: %s", path,
				 e == EINVAL ? "not a regular file" : strerror(e));
		return -e;
	}
	fclose(f);

	struct s_ld ld = {.path = path, .err = err, .errlen = errlen};
	/* The directory is resolved, the file name is kept: when the file is a
	 * symlink, its relative paths stay relative to where it was named. */
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char dpart[GW_MAX_PATH];
	size_t dpl = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
	if (dpl >= sizeof dpart || strlen(base) >= GW_MAX_PATH / 2) {
		if (err && errlen)
			snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	if (dpl)
		memcpy(dpart, path, dpl);
	else
		dpart[dpl++] = '.';
	dpart[dpl] = '\0';
	char *absdir = realpath(dpart, NULL);
	if (!absdir || strlen(absdir) >= GW_MAX_PATH / 2) {
		int e = absdir ? ENAMETOOLONG : errno;
		free(absdir);
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot resolve its directory: %s", path, strerror(e));
		return -e;
	}
	snprintf(ld.dir, sizeof ld.dir, "%s", absdir);
	free(absdir);

	struct gw_config *cfg = calloc(1, sizeof *cfg);
	if (!cfg)
		return QIAO_ENOMEM;
	ld.cfg = cfg;
	char full[2 * GW_MAX_PATH + 2];
	snprintf(full, sizeof full, "%s%s%s", ld.dir, strcmp(ld.dir, "/") ? "/" : "", base);
	cfg->path = s_strdup(cfg, full);
	if (!cfg->path) {
		gw_config_free(&cfg);
		return QIAO_ENOMEM;
	}
	cfg->loaded_ms = qiao_now_ms();

	config_init(&ld.lc);
	config_set_include_dir(&ld.lc, ld.dir);
	int rc;
	if (config_read_file(&ld.lc, path) != CONFIG_TRUE) {
		if (config_error_type(&ld.lc) == CONFIG_ERR_FILE_IO) {
			rc = -EIO;
			if (err && errlen)
				snprintf(err, errlen, "%s: cannot read: %s", path, strerror(EIO));
		} else {
			rc = QIAO_ECONFIG;
			s_parse_error(&ld);
		}
	} else {
		rc = s_load(&ld);
	}
	config_destroy(&ld.lc);
	if (rc) {
		gw_config_free(&cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* ------------------------------------------------------------- accessors */

const char *gw_config_path(const struct gw_config *cfg)
{
	return cfg->path;
}

int64_t gw_config_loaded_ms(const struct gw_config *cfg)
{
	return cfg->loaded_ms;
}

const struct gw_gateway *gw_config_gateway(const struct gw_config *cfg)
{
	return &cfg->gw;
}

const struct gw_workflow *gw_config_workflow(const struct gw_config *cfg)
{
	return &cfg->wf;
}

const struct gw_metrics_conf *gw_config_metrics(const struct gw_config *cfg)
{
	return &cfg->met;
}

const struct gw_cache *gw_config_cache(const struct gw_config *cfg)
{
	return &cfg->cache;
}

const struct gw_audit *gw_config_audit(const struct gw_config *cfg)
{
	return &cfg->audit;
}

const struct gw_limits *gw_config_limits(const struct gw_config *cfg)
{
	return &cfg->lim;
}

const qiao_id_policy_t *gw_config_ids(const struct gw_config *cfg)
{
	return cfg->ids;
}

void gw_config_wire_limits(const struct gw_config *cfg, struct qiao_wire_limits *lim)
{
	qiao_wire_limits_default(lim);
	lim->max_header = cfg->lim.max_header;
	lim->max_body = cfg->lim.max_body;
	lim->ids = cfg->ids;
}

size_t gw_config_member_count(const struct gw_config *cfg)
{
	return cfg->nmembers;
}

const struct gw_member *gw_config_member_at(const struct gw_config *cfg, size_t i)
{
	return i < cfg->nmembers ? &cfg->members[i] : NULL;
}

static int s_member_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct gw_member *)elem)->id);
}

const struct gw_member *gw_config_member(const struct gw_config *cfg, const char *id)
{
	if (!id || !cfg->nmembers)
		return NULL;
	return bsearch(id, cfg->members, cfg->nmembers, sizeof *cfg->members, s_member_key_cmp);
}

static int s_curve_key_cmp(const void *key, const void *elem)
{
	return memcmp(key, (*(const struct gw_member *const *)elem)->curve_public, 32);
}

const struct gw_member *gw_config_member_by_curve(const struct gw_config *cfg, const uint8_t key[32])
{
	if (!key || !cfg->nmembers)
		return NULL;
	const struct gw_member *const *m =
		bsearch(key, cfg->by_curve, cfg->nmembers, sizeof *cfg->by_curve, s_curve_key_cmp);
	if (m)
		return *m;
	for (size_t i = 0; i < cfg->nrotating; i++)
		if (memcmp(cfg->rotating[i]->next_curve_public, key, 32) == 0)
			return cfg->rotating[i];
	return NULL;
}

bool gw_member_has_curve(const struct gw_member *m, const uint8_t key[32])
{
	return memcmp(m->curve_public, key, 32) == 0 ||
	       (m->has_next_curve && memcmp(m->next_curve_public, key, 32) == 0);
}

bool gw_member_has_sign(const struct gw_member *m, const uint8_t key[32])
{
	return memcmp(m->sign_public, key, 32) == 0 ||
	       (m->has_next_sign && memcmp(m->next_sign_public, key, 32) == 0);
}

size_t gw_config_service_count(const struct gw_config *cfg)
{
	return cfg->nservices;
}

const struct gw_service *gw_config_service_at(const struct gw_config *cfg, size_t i)
{
	return i < cfg->nservices ? &cfg->services[i] : NULL;
}

static int s_svc_id_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct gw_service *const *)elem)->id);
}

static int s_svc_alias_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct gw_service *const *)elem)->alias);
}

const struct gw_service *gw_config_service(const struct gw_config *cfg, const char *name)
{
	if (!name)
		return NULL;
	const struct gw_service *const *s;
	if (strchr(name, '/'))
		s = cfg->nservices ? bsearch(name, cfg->by_id, cfg->nservices, sizeof *cfg->by_id,
					     s_svc_id_key_cmp)
				   : NULL;
	else
		s = cfg->naliases ? bsearch(name, cfg->by_alias, cfg->naliases, sizeof *cfg->by_alias,
					    s_svc_alias_key_cmp)
				  : NULL;
	return s ? *s : NULL;
}

/* Rule accessors (declared in gw_policy.h; the rules live here). */

size_t gw_policy_rule_count(const struct gw_config *cfg)
{
	return cfg->nrules;
}

const struct gw_rule *gw_policy_rule_at(const struct gw_config *cfg, size_t i)
{
	return i < cfg->nrules ? &cfg->rules[i] : NULL;
}

const struct gw_rule *gw_policy_rule(const struct gw_config *cfg, const struct gw_member *consumer,
				     const struct gw_service *service)
{
	if (!consumer || !service || !cfg->nrules)
		return NULL;
	struct gw_rule key = {.consumer = consumer, .service = service};
	return bsearch(&key, cfg->rules, cfg->nrules, sizeof *cfg->rules, s_rule_cmp);
}

void gw_policy_rules_of(const struct gw_config *cfg, const struct gw_member *consumer, size_t *first,
			size_t *n)
{
	size_t lo = 0, hi = cfg->nrules;
	while (lo < hi) { /* first rule with consumer >= this one */
		size_t mid = lo + (hi - lo) / 2;
		if (cfg->rules[mid].consumer < consumer)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < cfg->nrules && cfg->rules[end].consumer == consumer)
		end++;
	*first = lo;
	*n = end - lo;
}
