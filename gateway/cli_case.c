/*
 * qiao case - start, follow and cancel 办件 (cases) of the gateway's
 * workflow engine through its unix socket (workflow.socket).
 *
 * Protocol (gateway/gw_wf.c, s_handle): connect, write one JSON object and
 * "\n", read one JSON object and "\n" until the engine closes.  Replies are
 * {"ok":true,...} or {"ok":false,"error":"text"}.
 *
 * Everything the engine sends is distrusted: a field that is absent or of
 * another type is shown as empty, control characters are replaced before
 * they reach the terminal, and a reply is read up to CASE_REPLY_MAX bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gw_config.h"

#define CASE_DEFAULT_CONFIG "/etc/qiao/qiao-gateway.conf"
#define CASE_REPLY_MAX (64u << 20)   /* the largest reply read (a long timeline) */
#define CASE_REQUEST_MAX (4u << 20)  /* the engine reads at most 4 MiB (gw_wf.c CTL_MAX) */
#define CASE_IO_TIMEOUT_MS 30000     /* per request: connect, write, read the reply */
#define CASE_POLL_MS 200             /* --wait: one status request this often */
#define CASE_WAIT_DEFAULT_S 120
#define CASE_NOTE_MAX 100            /* characters of a step's note in tables */

static const char s_exit_codes[] =
	"exit codes:\n"
	"  0  done (with --wait: the case COMPLETED)\n"
	"  1  the engine refused (no such workflow or case, input rejected, case\n"
	"     already closed), or with --wait the case ended COMPENSATED or FAILED\n"
	"  2  usage error (unknown flag, missing argument, input file unreadable or\n"
	"     not one JSON object)\n"
	"  3  the gateway cannot be reached (no socket, nobody listening, no answer,\n"
	"     a reply that is not JSON, configuration unreadable)\n"
	"  4  --wait: the time passed before the case ended (it goes on in the gateway)\n";

static const char s_conn_help[] =
	"  --socket PATH   the workflow engine's socket (workflow.socket)\n"
	"  --config FILE   read workflow.socket from the gateway's configuration\n"
	"                  (default " CASE_DEFAULT_CONFIG ")\n"
	"  --json          print the engine's reply as indented JSON instead of a table\n";

/* ---- small helpers ------------------------------------------------------------ */

static void s_oom(void)
{
	cli_err("out of memory");
	exit(CLI_ENV);
}

static const char *s_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* An integer field; a real is truncated; anything else is 0. */
static int64_t s_int(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		double d = json_real_value(v);
		return d > -9.2e18 && d < 9.2e18 ? (int64_t)d : 0;
	}
	return 0;
}

/* A scalar as text (a string, a number, true/false); "" otherwise. */
static const char *s_text(const json_t *v, char *buf, size_t n)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, n, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
	else
		snprintf(buf, n, "%s", "");
	return buf;
}

/* Local "YYYY-MM-DD HH:MM:SS"; "-" for 0 (never set) or a time out of range. */
static const char *s_time(int64_t ms, char *buf, size_t n)
{
	snprintf(buf, n, "-");
	if (ms <= 0 || ms / 1000 > (int64_t)253402300799) /* after 9999-12-31 */
		return buf;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

static int64_t s_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Decode one UTF-8 sequence at s (jansson has validated it): the code
 * point, and its length in *len. */
static unsigned s_utf8(const unsigned char *s, size_t *len)
{
	if (s[0] < 0x80 || !s[1]) {
		*len = 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0) {
		*len = 2;
		return (unsigned)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if ((s[0] & 0xf0) == 0xe0 && s[2]) {
		*len = 3;
		return (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	if ((s[0] & 0xf8) == 0xf0 && s[2] && s[3]) {
		*len = 4;
		return (unsigned)(s[0] & 0x07) << 18 | (unsigned)(s[1] & 0x3f) << 12 | (unsigned)(s[2] & 0x3f) << 6 |
		       (s[3] & 0x3f);
	}
	*len = 1;
	return '?';
}

/* Terminal columns of a code point: 2 for CJK and other wide forms (names,
 * titles and messages here are often Chinese), 1 otherwise. */
static size_t s_cpwidth(unsigned c)
{
	return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) ||
			       (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) ||
			       (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) || c >= 0x20000
		       ? 2
		       : 1;
}

static size_t s_width(const char *s)
{
	size_t w = 0, l;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += l)
		w += s_cpwidth(s_utf8(p, &l));
	return w;
}

/* A copy safe to print: control characters become '?' (tab and newline a
 * space), and at most `maxw` columns are kept ("..." marks a cut; 0: all). */
static char *s_clean(const char *s, size_t maxw)
{
	size_t n = strlen(s);
	char *o = malloc(n + 4);
	if (!o)
		s_oom();
	size_t w = 0, k = 0, l;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += l) {
		unsigned c = s_utf8(p, &l);
		size_t cw = s_cpwidth(c);
		if (maxw && w + cw > maxw - 3 && s_width((const char *)p) + w > maxw) {
			memcpy(o + k, "...", 3);
			k += 3;
			break;
		}
		w += cw;
		if (c == '\t' || c == '\n' || c == '\r')
			o[k++] = ' ';
		else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
			o[k++] = '?';
		else {
			memcpy(o + k, p, l);
			k += l;
		}
	}
	o[k] = '\0';
	return o;
}

/* Print text from the engine, cleaned. */
static void s_put(const char *s)
{
	char *c = s_clean(s, 0);
	fputs(c, stdout);
	free(c);
}

/* ---- tables ----------------------------------------------------------------------- */

#define TAB_MAXCOL 10

/* Rows of cells padded to the widest cell of their column; a "line" row is
 * printed as is and takes no part in the widths. */
struct tab {
	size_t ncol, nrow, cap;
	char **cell;          /* nrow * ncol, cleaned copies */
	unsigned char *line;  /* per row: 1 = a line, its text in the first cell */
};

static void s_tab_init(struct tab *t, size_t ncol)
{
	memset(t, 0, sizeof *t);
	t->ncol = ncol;
}

static size_t s_tab_grow(struct tab *t)
{
	if (t->nrow == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cell, nc * t->ncol * sizeof *c);
		if (!c)
			s_oom();
		t->cell = c;
		unsigned char *l = realloc(t->line, nc);
		if (!l)
			s_oom();
		t->line = l;
		t->cap = nc;
	}
	return t->nrow++;
}

/* ncol strings (NULL = empty); the last one is cut at CASE_NOTE_MAX columns
 * when `cut`. */
static void s_tab_row(struct tab *t, int cut, ...)
{
	size_t r = s_tab_grow(t);
	va_list ap;
	va_start(ap, cut);
	for (size_t i = 0; i < t->ncol; i++) {
		const char *s = va_arg(ap, const char *);
		t->cell[r * t->ncol + i] = s_clean(s ? s : "", cut && i + 1 == t->ncol ? CASE_NOTE_MAX : 0);
	}
	va_end(ap);
	t->line[r] = 0;
}

static void s_tab_line(struct tab *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_tab_line(struct tab *t, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	size_t r = s_tab_grow(t);
	t->cell[r * t->ncol] = s_clean(buf, 0);
	for (size_t i = 1; i < t->ncol; i++)
		t->cell[r * t->ncol + i] = NULL;
	t->line[r] = 1;
}

/* Print with two spaces between columns, no trailing blanks; frees. */
static void s_tab_print(struct tab *t, const char *indent)
{
	size_t w[TAB_MAXCOL] = {0};
	for (size_t r = 0; r < t->nrow; r++)
		for (size_t i = 0; i < t->ncol && !t->line[r]; i++) {
			size_t cw = s_width(t->cell[r * t->ncol + i]);
			if (cw > w[i])
				w[i] = cw;
		}
	for (size_t r = 0; r < t->nrow; r++) {
		char **c = t->cell + r * t->ncol;
		if (t->line[r]) {
			printf("%s\n", c[0]);
		} else {
			size_t last = 0;
			for (size_t i = 0; i < t->ncol; i++)
				if (c[i][0])
					last = i;
			fputs(indent, stdout);
			for (size_t i = 0; i <= last; i++) {
				fputs(c[i], stdout);
				if (i < last)
					printf("%*s", (int)(w[i] - s_width(c[i]) + 2), "");
			}
			putchar('\n');
		}
		for (size_t i = 0; i < t->ncol; i++)
			free(c[i]);
	}
	free(t->cell);
	free(t->line);
	memset(t, 0, sizeof *t);
}

/* ---- the connection ------------------------------------------------------------- */

struct conn {
	const char *sock;  /* --socket, or from the config */
	const char *conf;  /* --config */
	char *sock_owned;  /* the config's socket path, copied */
	char *store;       /* the config's gateway.store, copied, or NULL */
	int json;
};

/* Where the engine listens: --socket, or workflow.socket of the config. */
static int s_resolve(struct conn *cn)
{
	if (cn->sock && cn->conf) {
		cli_err("give --socket PATH or --config FILE, not both");
		return CLI_USAGE;
	}
	if (cn->sock)
		return CLI_OK;
	const char *path = cn->conf ? cn->conf : CASE_DEFAULT_CONFIG;
	struct gw_config *cfg = NULL;
	char err[1024];
	if (gw_config_load(path, &cfg, err, sizeof err) != 0) {
		cli_err("%s", err);
		cli_err("cannot find the workflow engine: give --config FILE (the gateway's configuration) or "
			"--socket PATH");
		return CLI_ENV;
	}
	const struct gw_workflow *wf = gw_config_workflow(cfg);
	if (!wf->enabled || !wf->socket || !wf->socket[0]) {
		cli_err("%s has no workflow { } section: the gateway runs no workflow engine (add the section, or "
			"give --socket PATH)",
			path);
		gw_config_free(&cfg);
		return CLI_ENV;
	}
	cn->sock_owned = strdup(wf->socket);
	const char *st = gw_config_gateway(cfg)->store;
	cn->store = st ? strdup(st) : NULL;
	gw_config_free(&cfg);
	if (!cn->sock_owned)
		s_oom();
	cn->sock = cn->sock_owned;
	return CLI_OK;
}

static void s_conn_free(struct conn *cn)
{
	free(cn->sock_owned);
	free(cn->store);
	cn->sock_owned = cn->store = NULL;
}

/* Wait until fd is ready for `ev` or the deadline passes: 0, or -1. */
static int s_wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - s_mono_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = fd, .events = ev};
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static void s_connect_err(const char *path, int e)
{
	if (e == ENOENT)
		cli_err("no socket at %s: is qiao-gateway running with a workflow section? (socket %s)", path, path);
	else if (e == ECONNREFUSED)
		cli_err("nothing listens on %s: is qiao-gateway running with a workflow section? (socket %s; a "
			"socket file left by a stopped gateway refuses too)",
			path, path);
	else if (e == EACCES || e == EPERM)
		cli_err("may not open %s (%s): run qiao as a user allowed to use the workflow socket", path,
			strerror(e));
	else
		cli_err("cannot reach the workflow engine at %s: %s (is qiao-gateway running with a workflow "
			"section?)",
			path, strerror(e));
}

/* Read until EOF (at most CASE_REPLY_MAX bytes, until `deadline`): 0 and
 * the malloc'd bytes, or -1 (printed). */
static int s_read_reply(int fd, const char *path, int64_t deadline, char **out, size_t *outlen)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		s_oom();
	for (;;) {
		if (len == cap) {
			if (cap >= CASE_REPLY_MAX) {
				cli_err("the reply from %s is larger than %u MiB: not read", path, CASE_REPLY_MAX >> 20);
				break;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				s_oom();
			buf = nb;
			cap *= 2;
		}
		if (s_wait_fd(fd, POLLIN, deadline) != 0) {
			cli_err("no answer from %s within %d s (the request may still be carried out: look with "
				"qiao case list)",
				path, CASE_IO_TIMEOUT_MS / 1000);
			break;
		}
		ssize_t r = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0) {
			cli_err("reading the reply from %s: %s", path, strerror(errno));
			break;
		}
		if (r == 0) {
			*out = buf;
			*outlen = len;
			return 0;
		}
		len += (size_t)r;
	}
	free(buf);
	return -1;
}

/* One exchange: `req` (consumed) out, the reply in. *out is the reply when
 * it says ok (CLI_OK), or when it says no (CLI_NO: the engine's error
 * printed); CLI_ENV: unreachable or no readable reply (printed). */
static int s_call(const struct conn *cn, json_t *req, json_t **out)
{
	*out = NULL;
	const char *path = cn->sock;
	char op[32]; /* for messages: req is gone by then */
	snprintf(op, sizeof op, "%s", s_str(req, "op"));
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		s_oom();
	size_t tlen = strlen(text);
	if (tlen + 1 > CASE_REQUEST_MAX) {
		cli_err("the request is %zu bytes; the workflow engine reads at most %u", tlen + 1, CASE_REQUEST_MAX);
		free(text);
		return CLI_USAGE;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		cli_err("socket path too long (at most %zu bytes): %s", sizeof sa.sun_path - 1, path);
		free(text);
		return CLI_ENV;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int64_t deadline = s_mono_ms() + CASE_IO_TIMEOUT_MS;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		cli_err("socket: %s", strerror(errno));
		free(text);
		return CLI_ENV;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		if (e == EINTR || e == EINPROGRESS) {
			/* the connection goes on; its result comes as writability */
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (s_wait_fd(fd, POLLOUT, deadline) != 0)
				e = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
				e = errno;
			else
				e = soerr;
		}
		if (e) {
			s_connect_err(path, e);
			close(fd);
			free(text);
			return CLI_ENV;
		}
	}
	text[tlen] = '\n'; /* the request is one line: its NUL becomes the newline */
	size_t off = 0;
	while (off < tlen + 1) {
		ssize_t k = send(fd, text + off, tlen + 1 - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			off += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && s_wait_fd(fd, POLLOUT, deadline) == 0)
			continue;
		cli_err("sending the request to %s: %s", path,
			k < 0 && errno != EAGAIN && errno != EWOULDBLOCK ? strerror(errno) : "timed out");
		close(fd);
		free(text);
		return CLI_ENV;
	}
	free(text);
	shutdown(fd, SHUT_WR);

	char *buf = NULL;
	size_t len = 0;
	int rd = s_read_reply(fd, path, deadline, &buf, &len);
	close(fd);
	if (rd != 0)
		return CLI_ENV;
	if (len == 0) {
		cli_err("%s closed the connection without a reply to '%s'", path, op);
		free(buf);
		return CLI_ENV;
	}
	json_error_t je;
	json_t *rep = json_loadb(buf, len, 0, &je);
	free(buf);
	if (!rep || !json_is_object(rep)) {
		cli_err("the reply from %s is not a JSON object (%s): is this the workflow socket?", path,
			rep ? "another JSON value" : je.text);
		json_decref(rep);
		return CLI_ENV;
	}
	const json_t *ok = json_object_get(rep, "ok");
	if (json_is_true(ok)) {
		*out = rep;
		return CLI_OK;
	}
	if (json_is_false(ok)) {
		const char *e = s_str(rep, "error");
		char *c = s_clean(e[0] ? e : "refused without saying why", 0);
		cli_err("%s: %s", op, c);
		free(c);
		*out = rep;
		return CLI_NO;
	}
	cli_err("the reply from %s has no \"ok\": is this the workflow socket?", path);
	json_decref(rep);
	return CLI_ENV;
}

static void s_json_out(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	if (!s)
		s_oom();
	puts(s);
	free(s);
}

/* The exchange, and with --json the reply printed (a refusal too, so that
 * scripts see it).  Returns as s_call. */
static int s_call_print(const struct conn *cn, json_t *req, json_t **out)
{
	int rc = s_call(cn, req, out);
	if (cn->json && *out)
		s_json_out(*out);
	return rc;
}

/* ---- option parsing --------------------------------------------------------------- */

enum {
	OPT_INPUT = 256,
	OPT_USER,
	OPT_CLIENT_REF,
	OPT_WAIT,
	OPT_WORKFLOW,
	OPT_STATE,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_LIMIT,
	OPT_REASON,
};

#define COMMON_OPTS                                                                                 \
	{"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'f'},          \
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}

/* A common option: 1 taken, 0 not one of them. */
static int s_common(int c, struct conn *cn)
{
	switch (c) {
	case 's':
		cn->sock = optarg;
		return 1;
	case 'f':
		cn->conf = optarg;
		return 1;
	case 'j':
		cn->json = 1;
		return 1;
	default:
		return 0;
	}
}

/* getopt names the program after argv[0] in its messages. */
static void s_name_argv(char **argv, const char *sub)
{
	static char name[64];
	snprintf(name, sizeof name, "qiao case %s", sub);
	argv[0] = name;
}

static int s_bad_usage(const char *sub, const char *what)
{
	if (what)
		cli_err("%s (try qiao case %s --help)", what, sub);
	else
		cli_err("try qiao case %s --help", sub);
	return CLI_USAGE;
}

/* A case id from the command line: printable, not empty, not huge. */
static int s_check_id(const char *sub, const char *id)
{
	size_t n = strlen(id);
	int bad = n == 0 || n > 128;
	for (size_t i = 0; i < n && !bad; i++)
		bad = (unsigned char)id[i] < 0x21 || id[i] == 0x7f;
	if (bad) {
		cli_err("'%s' is not a case id (like DY-20261202-0001; qiao case list shows them)", id);
		return s_bad_usage(sub, NULL);
	}
	return CLI_OK;
}

/* ---- printing a case ---------------------------------------------------------------- */

static int s_final(const char *state)
{
	return !strcmp(state, "COMPLETED") || !strcmp(state, "COMPENSATED") || !strcmp(state, "FAILED");
}

/* A step's (or compensation's) short note: the error's name and message,
 * else the cause; an unknown outcome and a planned retry are added. */
static void s_note(const json_t *st, char *out, size_t n)
{
	char b1[64], b2[64];
	const json_t *e = json_object_get(st, "error");
	size_t k = 0;
	out[0] = '\0';
	if (json_is_object(e)) {
		const char *name = s_text(json_object_get(e, "name"), b1, sizeof b1);
		if (!name[0])
			name = s_text(json_object_get(e, "code"), b2, sizeof b2);
		const char *msg = s_str(e, "message");
		k = (size_t)snprintf(out, n, "%s%s%s", name, name[0] && msg[0] ? ": " : "", msg);
	} else if (json_is_string(e)) {
		k = (size_t)snprintf(out, n, "%s", json_string_value(e));
	} else if (strcmp(s_str(st, "state"), "DONE") != 0) {
		/* a DONE step's cause only says that its service answered */
		k = (size_t)snprintf(out, n, "%s", s_str(st, "cause"));
	}
	if (k >= n)
		return;
	if (json_is_true(json_object_get(st, "unknown")))
		k += (size_t)snprintf(out + k, n - k, "%s(outcome unknown)", k ? " " : "");
	int64_t next = s_int(st, "next_attempt_ms");
	const char *state = s_str(st, "state");
	if (k < n && next > 0 && (!strcmp(state, "PENDING") || !strcmp(state, "RUNNING") ||
				  !strcmp(state, "COMPENSATING"))) {
		char t[32];
		snprintf(out + k, n - k, "%snext attempt %s", k ? "; " : "", s_time(next, t, sizeof t));
	}
}

static void s_print_header(const json_t *rec)
{
	char t[32], b[32];
	struct tab tb;
	s_tab_init(&tb, 2);
	const char *title = s_str(rec, "title");
	const char *ver = s_text(json_object_get(rec, "version"), b, sizeof b);
	char wf[512];
	snprintf(wf, sizeof wf, "%s%s%s%s%s", s_str(rec, "workflow"), ver[0] ? " v" : "", ver, title[0] ? "  " : "",
		 title);
	s_tab_row(&tb, 0, "case", s_str(rec, "case_id"));
	s_tab_row(&tb, 0, "workflow", wf);
	s_tab_row(&tb, 0, "state", s_str(rec, "state"));
	s_tab_row(&tb, 0, "user", s_str(rec, "user"));
	s_tab_row(&tb, 0, "started by", s_str(rec, "started_by"));
	if (s_str(rec, "client_ref")[0])
		s_tab_row(&tb, 0, "client ref", s_str(rec, "client_ref"));
	s_tab_row(&tb, 0, "created", s_time(s_int(rec, "created_ms"), t, sizeof t));
	s_tab_row(&tb, 0, "updated", s_time(s_int(rec, "updated_ms"), t, sizeof t));
	if (s_int(rec, "closed_ms") > 0)
		s_tab_row(&tb, 0, "closed", s_time(s_int(rec, "closed_ms"), t, sizeof t));
	if (s_int(rec, "deadline_ms") > 0 && !s_final(s_str(rec, "state")))
		s_tab_row(&tb, 0, "deadline", s_time(s_int(rec, "deadline_ms"), t, sizeof t));
	const json_t *f = json_object_get(rec, "failure");
	if (json_is_object(f)) {
		char fl[1200], cb[32];
		const char *code = s_text(json_object_get(f, "code"), cb, sizeof cb);
		const char *step = s_str(f, "step");
		snprintf(fl, sizeof fl, "%s%s%s%s%s%s", code, code[0] ? ": " : "", s_str(f, "reason"),
			 step[0] ? " (step " : "", step, step[0] ? ")" : "");
		s_tab_row(&tb, 0, "failure", fl);
		if (s_int(f, "time_ms") > 0)
			s_tab_row(&tb, 0, "failed at", s_time(s_int(f, "time_ms"), t, sizeof t));
	}
	s_tab_print(&tb, "");
}

static void s_print_case(const json_t *rec)
{
	s_print_header(rec);
	const json_t *steps = json_object_get(rec, "steps");
	printf("\nsteps: %zu\n", json_array_size(steps));
	if (!json_array_size(steps))
		return;
	struct tab tb;
	s_tab_init(&tb, 5);
	s_tab_row(&tb, 0, "STEP", "STATE", "TRIES", "SERVICE", "NOTE");
	size_t i;
	const json_t *st;
	json_array_foreach(steps, i, st)
	{
		char note[1200], tries[32];
		s_note(st, note, sizeof note);
		snprintf(tries, sizeof tries, "%lld", (long long)s_int(st, "attempts"));
		s_tab_row(&tb, 1, s_str(st, "name"), s_str(st, "state"), tries, s_str(st, "service"), note);
		const json_t *cp = json_object_get(st, "compensation");
		if (json_is_object(cp)) {
			s_note(cp, note, sizeof note);
			snprintf(tries, sizeof tries, "%lld", (long long)s_int(cp, "attempts"));
			s_tab_row(&tb, 1, "  compensation", s_str(cp, "state"), tries, s_str(cp, "service"), note);
		}
	}
	s_tab_print(&tb, "  ");
}

/* The case record of a reply ({} when absent or not an object). */
static const json_t *s_case_of(const json_t *rep)
{
	static json_t *empty;
	const json_t *c = json_object_get(rep, "case");
	if (json_is_object(c))
		return c;
	if (!empty && !(empty = json_object()))
		s_oom();
	return empty;
}

/* ---- qiao case workflows ---------------------------------------------------------- */

static int s_workflows(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
	struct conn cn = {0};
	int c;
	s_name_argv(argv, "workflows");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		if (c == 'h') {
			printf("usage: qiao case workflows [--socket PATH | --config FILE] [--json]\n"
			       "\n"
			       "Lists the workflows the engine has loaded (the *.wf files of\n"
			       "workflow.definitions): name, version, title, input type, case number\n"
			       "prefix, file, and each step with the steps it waits for, the service it\n"
			       "calls, its request type, and whether it is compensated (undone when the\n"
			       "case fails) and idempotent (retried safely).\n"
			       "\n%s\n%s\n"
			       "examples:\n"
			       "  qiao case workflows --config /etc/qiao/qiao-gateway.conf\n"
			       "  qiao case workflows --socket /run/qiao/workflow.sock --json | jq '.workflows[].name'\n",
			       s_conn_help, s_exit_codes);
			return CLI_OK;
		}
		return s_bad_usage("workflows", NULL);
	}
	if (optind != argc)
		return s_bad_usage("workflows", "workflows takes no arguments");
	int rc = s_resolve(&cn);
	if (rc != CLI_OK)
		return rc;
	json_t *rep = NULL;
	rc = s_call_print(&cn, json_pack("{s:s}", "op", "workflows"), &rep);
	if (rc == CLI_OK && !cn.json) {
		const json_t *wfs = json_object_get(rep, "workflows");
		size_t i;
		const json_t *w;
		json_array_foreach(wfs, i, w)
		{
			char b[32];
			const char *title = s_str(w, "title");
			printf("%s", i ? "\n" : "");
			s_put(s_str(w, "name"));
			printf(" v%s%s", s_text(json_object_get(w, "version"), b, sizeof b), title[0] ? "  " : "");
			s_put(title);
			printf("\n  input ");
			s_put(s_str(w, "input_type"));
			printf(", case numbers ");
			s_put(s_str(w, "case_prefix"));
			printf("-..., file ");
			s_put(s_str(w, "file"));
			putchar('\n');
			const json_t *steps = json_object_get(w, "steps");
			struct tab tb;
			s_tab_init(&tb, 5);
			s_tab_row(&tb, 0, "STEP", "AFTER", "SERVICE", "REQUEST", "FLAGS");
			size_t j;
			const json_t *st;
			json_array_foreach(steps, j, st)
			{
				char after[1024] = "", flags[64] = "";
				size_t k = 0, a;
				const json_t *an;
				json_array_foreach(json_object_get(st, "after"), a, an)
				{
					if (json_is_string(an) && k < sizeof after)
						k += (size_t)snprintf(after + k, sizeof after - k, "%s%s", k ? "," : "",
								      json_string_value(an));
				}
				snprintf(flags, sizeof flags, "%s%s%s",
					 json_is_true(json_object_get(st, "compensated")) ? "compensated" : "",
					 json_is_true(json_object_get(st, "compensated")) &&
							 json_is_true(json_object_get(st, "idempotent"))
						 ? ","
						 : "",
					 json_is_true(json_object_get(st, "idempotent")) ? "idempotent" : "");
				s_tab_row(&tb, 0, s_str(st, "name"), k ? after : "-", s_str(st, "service"),
					  s_str(st, "request_type"), flags);
			}
			s_tab_print(&tb, "  ");
		}
		printf("%s%zu workflow%s loaded\n", json_array_size(wfs) ? "\n" : "", json_array_size(wfs),
		       json_array_size(wfs) == 1 ? "" : "s");
	}
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- qiao case start -------------------------------------------------------------- */

static void s_start_usage(void)
{
	printf("usage: qiao case start WORKFLOW --input FILE [--user ID] [--client-ref REF]\n"
	       "                      [--wait [SECONDS]] [--socket PATH | --config FILE] [--json]\n"
	       "\n"
	       "Opens a case of WORKFLOW with the input read from FILE: one JSON object\n"
	       "of the workflow's input type (qiao case workflows names it), \"-\" for\n"
	       "standard input.  Prints the case id.\n"
	       "\n"
	       "  --input FILE       the input object (required)\n"
	       "  --user ID          the clerk (经办人) the case is for; default: your login\n"
	       "  --client-ref REF   your own reference, kept with the case (at most 128 bytes)\n"
	       "  --wait [SECONDS]   poll the case every %d ms until it is COMPLETED,\n"
	       "                     COMPENSATED or FAILED, or SECONDS pass (default %d), then\n"
	       "                     print its status; exit 0 only when it COMPLETED\n"
	       "%s\n%s\n"
	       "examples:\n"
	       "  qiao case start daiya-guohu --input sale.json --user clerk-0007\n"
	       "  id=$(qiao case start daiya-guohu --input sale.json --client-ref WIN3-0815)\n"
	       "  qiao case start daiya-guohu --input - --wait 300 < sale.json\n",
	       CASE_POLL_MS, CASE_WAIT_DEFAULT_S, s_conn_help, s_exit_codes);
}

/* The input object of FILE ("-": stdin); NULL and a message naming it. */
static json_t *s_read_input(const char *path)
{
	const char *name = strcmp(path, "-") == 0 ? "standard input" : path;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = cli_read_file(path, CASE_REQUEST_MAX, &buf, &len);
	if (rc == -EFBIG) {
		cli_err("the input file %s is larger than %u MiB, the most the workflow engine reads", name,
			CASE_REQUEST_MAX >> 20);
		return NULL;
	}
	if (rc != 0) {
		cli_err("cannot read the input file %s: %s", name, strerror(-rc));
		return NULL;
	}
	json_error_t je;
	json_t *in = json_loadb((const char *)buf, len, 0, &je);
	free(buf);
	if (!in) {
		cli_err("the input file %s is not JSON: line %d column %d: %s", name, je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(in)) {
		cli_err("the input file %s must hold one JSON object (the workflow's input), not %s", name,
			json_is_array(in) ? "an array" : "a single value");
		json_decref(in);
		return NULL;
	}
	return in;
}

/* Poll the case until it is final or the time passes; the last reply in
 * *rep (replaced); CLI_OK final, CLI_TIMEOUT, or an error of s_call. */
static int s_wait_final(const struct conn *cn, const char *id, int64_t secs, json_t **rep)
{
	int64_t until = s_mono_ms() + secs * 1000;
	for (;;) {
		if (s_final(s_str(s_case_of(*rep), "state")))
			return CLI_OK;
		if (s_mono_ms() >= until)
			return CLI_TIMEOUT;
		s_sleep_ms(CASE_POLL_MS);
		json_t *r = NULL;
		int rc = s_call(cn, json_pack("{s:s, s:s}", "op", "status", "case_id", id), &r);
		if (rc != CLI_OK) {
			json_decref(r);
			return rc;
		}
		json_decref(*rep);
		*rep = r;
	}
}

static int s_start(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS,
					     {"input", required_argument, NULL, OPT_INPUT},
					     {"user", required_argument, NULL, OPT_USER},
					     {"client-ref", required_argument, NULL, OPT_CLIENT_REF},
					     {"wait", optional_argument, NULL, OPT_WAIT},
					     {NULL, 0, NULL, 0}};
	struct conn cn = {0};
	const char *input = NULL, *user = NULL, *ref = NULL;
	int64_t wait = -1;
	int c;
	s_name_argv(argv, "start");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		switch (c) {
		case 'h':
			s_start_usage();
			return CLI_OK;
		case OPT_INPUT:
			input = optarg;
			break;
		case OPT_USER:
			user = optarg;
			break;
		case OPT_CLIENT_REF:
			ref = optarg;
			break;
		case OPT_WAIT: {
			/* "--wait 30" as well as "--wait=30": a number right after it is its value */
			const char *v = optarg;
			if (!v && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
				v = argv[optind++];
			wait = CASE_WAIT_DEFAULT_S;
			if (v && cli_parse_i64(v, 1, 7 * 86400, "--wait SECONDS", &wait) != 0)
				return s_bad_usage("start", NULL);
			break;
		}
		default:
			return s_bad_usage("start", NULL);
		}
	}
	if (optind + 1 != argc)
		return s_bad_usage("start", optind == argc ? "start needs the workflow's name"
							   : "start takes one workflow name");
	const char *wfname = argv[optind];
	if (!input)
		return s_bad_usage("start", "start needs --input FILE (the case's input, a JSON object)");
	if ((user && strlen(user) > 128) || (ref && strlen(ref) > 128))
		return s_bad_usage("start", "--user and --client-ref are at most 128 bytes");
	json_t *in = s_read_input(input);
	if (!in)
		return CLI_USAGE;
	int rc = s_resolve(&cn);
	if (rc != CLI_OK) {
		json_decref(in);
		return rc;
	}
	json_t *req = json_pack("{s:s, s:s, s:o}", "op", "start", "workflow", wfname, "input", in);
	if (!req)
		s_oom();
	if (user)
		json_object_set_new(req, "user", json_string(user));
	if (ref)
		json_object_set_new(req, "client_ref", json_string(ref));
	json_t *rep = NULL;
	rc = s_call(&cn, req, &rep);
	const char *id = s_str(rep, "case_id");
	if (rc == CLI_OK && !id[0]) {
		cli_err("the engine accepted the case but sent no case id: look with qiao case list");
		rc = CLI_ENV;
	}
	if (rc != CLI_OK || wait < 0) {
		if (cn.json && rep)
			s_json_out(rep);
		else if (rc == CLI_OK) {
			s_put(id);
			putchar('\n');
		}
		json_decref(rep);
		s_conn_free(&cn);
		return rc;
	}
	char *cid = s_clean(id, 0); /* it goes into messages */
	if (!cn.json) {
		s_put(cid);
		putchar('\n');
		fflush(stdout);
	}
	rc = s_wait_final(&cn, cid, wait, &rep);
	if (rc == CLI_OK || rc == CLI_TIMEOUT) {
		const json_t *rec = s_case_of(rep);
		const char *state = s_str(rec, "state");
		if (cn.json) {
			s_json_out(rep);
		} else {
			putchar('\n');
			s_print_case(rec);
		}
		if (rc == CLI_TIMEOUT) {
			char *c = s_clean(state, 0);
			cli_err("case %s is still %s after %lld s; it goes on in the gateway: follow it with qiao case "
				"status %s",
				cid, c[0] ? c : "(no state)", (long long)wait, cid);
			free(c);
		} else if (strcmp(state, "COMPLETED") != 0) {
			const json_t *f = json_object_get(rec, "failure");
			char cb[32], why[1200];
			const char *code = s_text(json_object_get(f, "code"), cb, sizeof cb);
			snprintf(why, sizeof why, "%s%s%s%s", state, code[0] ? ": " : "", code,
				 s_str(f, "reason")[0] ? " " : "");
			size_t k = strlen(why);
			if (s_str(f, "reason")[0])
				snprintf(why + k, sizeof why - k, "(%s)", s_str(f, "reason"));
			char *c = s_clean(why, 0);
			cli_err("case %s ended %s; qiao case timeline %s shows what happened", cid, c, cid);
			free(c);
			rc = CLI_NO;
		}
	}
	free(cid);
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- qiao case status ------------------------------------------------------------- */

static int s_status(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
	struct conn cn = {0};
	int c;
	s_name_argv(argv, "status");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		if (c == 'h') {
			printf("usage: qiao case status ID [--socket PATH | --config FILE] [--json]\n"
			       "\n"
			       "Shows one case: its workflow, state, clerk, who started it, when it was\n"
			       "created and last changed, why it failed (code and reason) when it did,\n"
			       "and every step with its state, attempts, service and a short note (the\n"
			       "error's name and message, or the cause of its last transition).  A\n"
			       "step that has been or is being undone has a 'compensation' line under it.\n"
			       "\n%s\n%s\n"
			       "examples:\n"
			       "  qiao case status DY-20261202-0001\n"
			       "  qiao case status DY-20261202-0001 --json | jq -r .case.state\n",
			       s_conn_help, s_exit_codes);
			return CLI_OK;
		}
		return s_bad_usage("status", NULL);
	}
	if (optind + 1 != argc)
		return s_bad_usage("status", "status takes one case id");
	int rc = s_check_id("status", argv[optind]);
	if (rc == CLI_OK)
		rc = s_resolve(&cn);
	if (rc != CLI_OK)
		return rc;
	json_t *rep = NULL;
	rc = s_call_print(&cn, json_pack("{s:s, s:s}", "op", "status", "case_id", argv[optind]), &rep);
	if (rc == CLI_OK && !cn.json)
		s_print_case(s_case_of(rep));
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- qiao case list --------------------------------------------------------------- */

/* YYYY-MM-DD as local midnight of that day plus `days` days, in ms. */
static int s_parse_day(const char *s, const char *what, int days, int64_t *out)
{
	int y, m, d;
	char extra;
	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || strlen(s) != 10 || y < 1970) {
		cli_err("%s: '%s' is not a day (YYYY-MM-DD, local time)", what, s);
		return -1;
	}
	struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_isdst = -1};
	struct tm chk = tm;
	if (mktime(&chk) == (time_t)-1 || chk.tm_year != y - 1900 || chk.tm_mon != m - 1 || chk.tm_mday != d) {
		cli_err("%s: '%s' is not a day of the calendar", what, s);
		return -1;
	}
	tm.tm_mday += days;
	time_t t = mktime(&tm);
	if (t == (time_t)-1) {
		cli_err("%s: '%s' is out of range", what, s);
		return -1;
	}
	*out = (int64_t)t * 1000;
	return 0;
}

static int s_list(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS,
					     {"workflow", required_argument, NULL, OPT_WORKFLOW},
					     {"state", required_argument, NULL, OPT_STATE},
					     {"since", required_argument, NULL, OPT_SINCE},
					     {"until", required_argument, NULL, OPT_UNTIL},
					     {"limit", required_argument, NULL, OPT_LIMIT},
					     {NULL, 0, NULL, 0}};
	static const char *const states[] = {"CREATED",   "RUNNING",     "WAITING", "COMPENSATING",
					     "COMPLETED", "COMPENSATED", "FAILED",  "open"};
	struct conn cn = {0};
	const char *wf = NULL, *state = NULL;
	int64_t since = 0, until = 0, limit = 0;
	int c;
	s_name_argv(argv, "list");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		switch (c) {
		case 'h':
			printf("usage: qiao case list [--workflow NAME] [--state STATE|open]\n"
			       "                      [--since DAY] [--until DAY] [--limit N]\n"
			       "                      [--socket PATH | --config FILE] [--json]\n"
			       "\n"
			       "Lists cases, in case id order, with their state, steps done, when they\n"
			       "were created and last changed, clerk, client reference and failure code.\n"
			       "\n"
			       "  --workflow NAME   only cases of this workflow\n"
			       "  --state STATE     only cases in this state: CREATED, RUNNING, WAITING,\n"
			       "                    COMPENSATING, COMPLETED, COMPENSATED, FAILED; or 'open':\n"
			       "                    every case not yet COMPLETED, COMPENSATED or FAILED\n"
			       "  --since DAY       only cases created at or after 00:00:00 local time on\n"
			       "                    DAY (YYYY-MM-DD)\n"
			       "  --until DAY       only cases created before 00:00:00 local time of the day\n"
			       "                    AFTER DAY: DAY itself is included, so --since 2026-12-01\n"
			       "                    --until 2026-12-03 is the three days 1, 2 and 3 December\n"
			       "  --limit N         at most N cases (the first N in case id order)\n"
			       "%s\n%s\n"
			       "examples:\n"
			       "  qiao case list --state open\n"
			       "  qiao case list --workflow daiya-guohu --since 2026-12-01 --until 2026-12-31\n"
			       "  qiao case list --state FAILED --json | jq -r '.cases[].case_id'\n",
			       s_conn_help, s_exit_codes);
			return CLI_OK;
		case OPT_WORKFLOW:
			wf = optarg;
			break;
		case OPT_STATE:
			state = NULL;
			for (size_t i = 0; i < sizeof states / sizeof *states; i++)
				if (!strcasecmp(optarg, states[i]))
					state = states[i];
			if (!state) {
				cli_err("--state: '%s' is not a case state (CREATED RUNNING WAITING COMPENSATING "
					"COMPLETED COMPENSATED FAILED, or open)",
					optarg);
				return s_bad_usage("list", NULL);
			}
			break;
		case OPT_SINCE:
			if (s_parse_day(optarg, "--since", 0, &since) != 0)
				return s_bad_usage("list", NULL);
			break;
		case OPT_UNTIL:
			if (s_parse_day(optarg, "--until", 1, &until) != 0)
				return s_bad_usage("list", NULL);
			break;
		case OPT_LIMIT:
			if (cli_parse_i64(optarg, 1, 1000000, "--limit", &limit) != 0)
				return s_bad_usage("list", NULL);
			break;
		default:
			return s_bad_usage("list", NULL);
		}
	}
	if (optind != argc)
		return s_bad_usage("list", "list takes no arguments, only flags");
	if (since && until && until <= since)
		return s_bad_usage("list", "--until is before --since: no case could match");
	int rc = s_resolve(&cn);
	if (rc != CLI_OK)
		return rc;
	json_t *req = json_pack("{s:s}", "op", "list");
	if (!req)
		s_oom();
	if (wf)
		json_object_set_new(req, "workflow", json_string(wf));
	if (state)
		json_object_set_new(req, "state", json_string(state));
	if (since)
		json_object_set_new(req, "since_ms", json_integer(since));
	if (until)
		json_object_set_new(req, "until_ms", json_integer(until));
	if (limit)
		json_object_set_new(req, "limit", json_integer(limit));
	json_t *rep = NULL;
	rc = s_call_print(&cn, req, &rep);
	if (rc == CLI_OK && !cn.json) {
		const json_t *cases = json_object_get(rep, "cases");
		size_t n = json_array_size(cases);
		if (n) {
			struct tab tb;
			s_tab_init(&tb, 9);
			s_tab_row(&tb, 0, "CASE", "WORKFLOW", "STATE", "STEPS", "CREATED", "UPDATED", "USER", "CLIENT REF",
				  "FAILURE");
			size_t i;
			const json_t *x;
			json_array_foreach(cases, i, x)
			{
				char steps[48], cr[32], up[32], fb[32];
				snprintf(steps, sizeof steps, "%lld/%lld", (long long)s_int(x, "steps_done"),
					 (long long)s_int(x, "steps"));
				const json_t *f = json_object_get(x, "failure");
				s_tab_row(&tb, 0, s_str(x, "case_id"), s_str(x, "workflow"), s_str(x, "state"), steps,
					  s_time(s_int(x, "created_ms"), cr, sizeof cr),
					  s_time(s_int(x, "updated_ms"), up, sizeof up), s_str(x, "user"),
					  s_str(x, "client_ref"), s_text(json_object_get(f, "code"), fb, sizeof fb));
			}
			s_tab_print(&tb, "");
		}
		printf("%s%zu case%s", n ? "\n" : "", n, n == 1 ? "" : "s");
		if (limit && (int64_t)n >= limit)
			printf(" (--limit %lld reached: there may be more)", (long long)limit);
		putchar('\n');
	}
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- qiao case timeline ----------------------------------------------------------- */

/* Entries are shown in audit order. */
static int s_by_index(const void *a, const void *b)
{
	int64_t x = s_int(*(const json_t *const *)a, "index"), y = s_int(*(const json_t *const *)b, "index");
	return x < y ? -1 : x > y;
}

static int s_same_id(const char *a, const char *b)
{
	return a[0] && b[0] && strcasecmp(a, b) == 0;
}

/* Does `e` concern message `id` of the step? */
static int s_entry_msg(const json_t *e, const json_t *who)
{
	static const char *const keys[] = {"request_message_id", "response_message_id"};
	for (size_t k = 0; k < 2; k++) {
		const char *id = s_str(who, keys[k]);
		if (s_same_id(s_str(e, "message_id"), id) || s_same_id(s_str(e, "in_reply_to"), id))
			return 1;
	}
	return 0;
}

/* The step an entry concerns: its index in steps, -1 the case itself (a
 * case transition), -2 none found. */
static long s_entry_step(const json_t *e, const json_t *steps)
{
	const json_t *tr = json_object_get(e, "transition");
	if (json_is_object(tr)) {
		const char *sn = s_str(tr, "step");
		if (!sn[0])
			return -1;
		for (size_t i = 0; i < json_array_size(steps); i++)
			if (!strcmp(sn, s_str(json_array_get(steps, i), "name")))
				return (long)i;
	}
	for (size_t i = 0; i < json_array_size(steps); i++) {
		const json_t *st = json_array_get(steps, i);
		if (s_entry_msg(e, st) || s_entry_msg(e, json_object_get(st, "compensation")))
			return (long)i;
	}
	return -2;
}

static void s_entry_row(struct tab *tb, const json_t *e)
{
	char t[32], idx[32], what[600], note[1200], ob[16];
	const json_t *tr = json_object_get(e, "transition");
	snprintf(idx, sizeof idx, "#%lld", (long long)s_int(e, "index"));
	if (json_is_object(tr)) {
		snprintf(what, sizeof what, "%s -> %s", s_str(tr, "from"), s_str(tr, "to"));
		/* the engine is the actor of its own transitions: named only when another is */
		const char *actor = s_str(tr, "actor");
		int by = actor[0] && strcmp(actor, s_str(e, "requester")) != 0;
		snprintf(note, sizeof note, "%s%s%s%s", s_str(tr, "cause"), by ? " (by " : "", by ? actor : "",
			 by ? ")" : "");
	} else {
		/* "<member>/<name>.v<N>" already names its provider */
		const char *svc = s_str(e, "service"), *prov = s_str(e, "provider");
		size_t pl = strlen(prov);
		int named = pl && strncmp(svc, prov, pl) == 0 && svc[pl] == '/';
		snprintf(what, sizeof what, "%s%s%s", svc, svc[0] && prov[0] && !named ? " @ " : "",
			 named ? "" : prov);
		const char *r = s_str(e, "reason");
		snprintf(note, sizeof note, "%s", r[0] ? r : s_str(e, "detail"));
	}
	s_tab_row(tb, 1, "", s_time(s_int(e, "time_ms"), t, sizeof t), idx, s_str(e, "event"), what,
		  s_text(json_object_get(e, "outcome"), ob, sizeof ob), s_str(e, "error_code"), note);
}

static int s_timeline(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
	struct conn cn = {0};
	int c;
	s_name_argv(argv, "timeline");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		if (c == 'h') {
			printf("usage: qiao case timeline ID [--socket PATH | --config FILE] [--json]\n"
			       "\n"
			       "What happened to a case, from its audit entries: the case's own\n"
			       "transitions, then every step in the order of the definition with its\n"
			       "state and under it the entries that concern it (its transitions, the\n"
			       "requests it sent, the answers and errors it got, its compensation's),\n"
			       "each with time, audit index, event, service @ provider or\n"
			       "from -> to, outcome, error code and cause; the case's last transitions\n"
			       "close it.  The indexes let an auditor check every entry against the\n"
			       "tamper-evident log (qiao audit query / prove / verify).\n"
			       "\n%s\n%s\n"
			       "examples:\n"
			       "  qiao case timeline DY-20261202-0001\n"
			       "  qiao case timeline DY-20261202-0001 --json | jq '.entries | length'\n",
			       s_conn_help, s_exit_codes);
			return CLI_OK;
		}
		return s_bad_usage("timeline", NULL);
	}
	if (optind + 1 != argc)
		return s_bad_usage("timeline", "timeline takes one case id");
	const char *id = argv[optind];
	int rc = s_check_id("timeline", id);
	if (rc == CLI_OK)
		rc = s_resolve(&cn);
	if (rc != CLI_OK)
		return rc;
	json_t *rep = NULL;
	rc = s_call_print(&cn, json_pack("{s:s, s:s}", "op", "timeline", "case_id", id), &rep);
	if (rc != CLI_OK || cn.json) {
		json_decref(rep);
		s_conn_free(&cn);
		return rc;
	}
	const json_t *rec = s_case_of(rep);
	const json_t *steps = json_object_get(rec, "steps");
	const json_t *ents = json_object_get(rep, "entries");
	size_t n = 0, ns = json_array_size(steps);
	const json_t **ev = malloc((json_array_size(ents) + 1) * sizeof *ev);
	long *where = malloc((json_array_size(ents) + 1) * sizeof *where);
	if (!ev || !where)
		s_oom();
	for (size_t i = 0; i < json_array_size(ents); i++)
		if (json_is_object(json_array_get(ents, i)))
			ev[n++] = json_array_get(ents, i);
	qsort(ev, n, sizeof *ev, s_by_index);
	/* case transitions before the first entry of a step open the timeline, the others close it */
	int64_t first_step = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		where[i] = s_entry_step(ev[i], steps);
		if (where[i] >= 0 && s_int(ev[i], "index") < first_step)
			first_step = s_int(ev[i], "index");
	}

	s_print_header(rec);
	putchar('\n');
	struct tab tb;
	s_tab_init(&tb, 8);
	int opening = 0;
	for (size_t i = 0; i < n; i++)
		if (where[i] == -1 && s_int(ev[i], "index") < first_step) {
			if (!opening++)
				s_tab_line(&tb, "case");
			s_entry_row(&tb, ev[i]);
		}
	for (size_t s = 0; s < ns; s++) {
		const json_t *st = json_array_get(steps, s);
		char note[1200];
		s_note(st, note, sizeof note);
		/* s_tab_line cleans the whole line; the note is cut short here */
		char *nt = s_clean(note, CASE_NOTE_MAX);
		const char *sv = s_str(st, "service"), *ss = s_str(st, "state");
		long long tries = (long long)s_int(st, "attempts");
		s_tab_line(&tb, "step %s  %s  (%s%s%lld attempt%s)%s%s", s_str(st, "name"), ss[0] ? ss : "?", sv,
			   sv[0] ? ", " : "", tries, tries == 1 ? "" : "s", nt[0] ? "  " : "", nt);
		free(nt);
		const json_t *cp = json_object_get(st, "compensation");
		if (json_is_object(cp)) {
			const char *cs = s_str(cp, "state");
			long long ct = (long long)s_int(cp, "attempts");
			s_tab_line(&tb, "  compensation %s  (%s%s%lld attempt%s)", cs[0] ? cs : "?", s_str(cp, "service"),
				   s_str(cp, "service")[0] ? ", " : "", ct, ct == 1 ? "" : "s");
		}
		for (size_t i = 0; i < n; i++)
			if (where[i] == (long)s)
				s_entry_row(&tb, ev[i]);
	}
	int closing = 0;
	for (size_t i = 0; i < n; i++)
		if (where[i] == -1 && s_int(ev[i], "index") >= first_step) {
			if (!closing++)
				s_tab_line(&tb, "case");
			s_entry_row(&tb, ev[i]);
		}
	int other = 0;
	for (size_t i = 0; i < n; i++)
		if (where[i] == -2) {
			if (!other++)
				s_tab_line(&tb, "other entries of the case");
			s_entry_row(&tb, ev[i]);
		}
	s_tab_print(&tb, "  ");
	char *cid = s_clean(s_str(rec, "case_id")[0] ? s_str(rec, "case_id") : id, 0);
	printf("\n%zu audit entr%s; verify them with: qiao audit query --store %s --case %s "
	       "(and qiao audit verify --store %s)\n",
	       n, n == 1 ? "y" : "ies", cn.store ? cn.store : "DIR", cid, cn.store ? cn.store : "DIR");
	free(cid);
	free(ev);
	free(where);
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- qiao case cancel ------------------------------------------------------------- */

static int s_cancel(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, {"reason", required_argument, NULL, OPT_REASON},
					     {NULL, 0, NULL, 0}};
	struct conn cn = {0};
	const char *reason = "";
	int c;
	s_name_argv(argv, "cancel");
	while ((c = getopt_long(argc, argv, "s:f:jh", opts, NULL)) != -1) {
		if (s_common(c, &cn))
			continue;
		if (c == OPT_REASON) {
			reason = optarg;
			continue;
		}
		if (c == 'h') {
			printf("usage: qiao case cancel ID [--reason TEXT] [--socket PATH | --config FILE] [--json]\n"
			       "\n"
			       "Cancels an open case: the engine marks it failed with the workflow's\n"
			       "cancel code and undoes (compensates) the steps already done, in reverse\n"
			       "order; the case ends COMPENSATED (or FAILED when an undo fails).  The\n"
			       "reason, with your login, is kept in the case and its audit entries.\n"
			       "A closed case cannot be cancelled (exit 1).\n"
			       "\n"
			       "  --reason TEXT   why (the citizen withdrew, a document is missing, ...)\n"
			       "%s\n%s\n"
			       "examples:\n"
			       "  qiao case cancel DY-20261202-0001 --reason \"buyer withdrew\"\n"
			       "  qiao case cancel DY-20261202-0001 --json | jq -r .case.state\n",
			       s_conn_help, s_exit_codes);
			return CLI_OK;
		}
		return s_bad_usage("cancel", NULL);
	}
	if (optind + 1 != argc)
		return s_bad_usage("cancel", "cancel takes one case id");
	if (strlen(reason) > 512)
		return s_bad_usage("cancel", "--reason is at most 512 bytes");
	const char *id = argv[optind];
	int rc = s_check_id("cancel", id);
	if (rc == CLI_OK)
		rc = s_resolve(&cn);
	if (rc != CLI_OK)
		return rc;
	json_t *rep = NULL;
	rc = s_call_print(&cn, json_pack("{s:s, s:s, s:s}", "op", "cancel", "case_id", id, "reason", reason), &rep);
	if (rc == CLI_OK && !cn.json) {
		const json_t *rec = s_case_of(rep);
		printf("cancel of ");
		s_put(id);
		printf(" accepted; the steps done are being undone (qiao case status ");
		s_put(id);
		printf(" follows it)\n\n");
		if (json_object_size(rec))
			s_print_case(rec);
	}
	json_decref(rep);
	s_conn_free(&cn);
	return rc;
}

/* ---- dispatch --------------------------------------------------------------------- */

static void s_usage(FILE *out)
{
	fprintf(out,
		"usage: qiao case SUBCOMMAND [ARGS] [--socket PATH | --config FILE] [--json]\n"
		"\n"
		"Cases (办件) of the gateway's workflow engine, through its socket\n"
		"(workflow.socket of the gateway's configuration).\n"
		"\n"
		"subcommands:\n"
		"  workflows                       the workflows loaded and their steps\n"
		"  start WORKFLOW --input FILE     open a case (--user, --client-ref, --wait [S])\n"
		"  status ID                       a case and its steps\n"
		"  list                            cases (--workflow, --state, --since, --until, --limit)\n"
		"  timeline ID                     what happened to a case, from the audit log\n"
		"  cancel ID [--reason TEXT]       cancel an open case; what was done is undone\n"
		"\n"
		"Every subcommand takes --help.\n"
		"\n%s\n%s\n"
		"examples:\n"
		"  qiao case workflows\n"
		"  qiao case start daiya-guohu --input sale.json --user clerk-0007 --wait\n"
		"  qiao case list --state open --socket /run/qiao/workflow.sock\n",
		s_conn_help, s_exit_codes);
}

int cli_case(int argc, char **argv)
{
	if (argc < 2) {
		s_usage(stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		s_usage(stdout);
		return CLI_OK;
	}
	optind = 1;
	if (!strcmp(sub, "workflows"))
		return s_workflows(argc - 1, argv + 1);
	if (!strcmp(sub, "start"))
		return s_start(argc - 1, argv + 1);
	if (!strcmp(sub, "status"))
		return s_status(argc - 1, argv + 1);
	if (!strcmp(sub, "list"))
		return s_list(argc - 1, argv + 1);
	if (!strcmp(sub, "timeline"))
		return s_timeline(argc - 1, argv + 1);
	if (!strcmp(sub, "cancel"))
		return s_cancel(argc - 1, argv + 1);
	cli_err("unknown case subcommand '%s': workflows, start, status, list, timeline or cancel (try qiao case "
		"--help)",
		sub);
	return CLI_USAGE;
}
