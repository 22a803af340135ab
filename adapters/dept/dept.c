/*
 * dept.c - see dept.h.
 */
#include "dept.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "licence.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_issuer.h"

#define CONF_MAX 64

struct dept {
	const struct dept_def *def;
	qiao_adapter_t *a;
	qiao_keys_t *keys;
	sqlite3 *db;
	pthread_mutex_t dbmu;
	char *conf_k[CONF_MAX], *conf_v[CONF_MAX];
	size_t nconf;
	int verbose;
};

struct offer {
	struct dept *d;
	const struct dept_service *s;
};

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
	(void)sig;
	s_stop = 1;
}

/* One key=value line on stderr (journald keeps it), the message quoted. */
static void s_logline(struct dept *d, const char *level, const char *event, const char *fields, const char *msg)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	char q[1200];
	size_t o = 0;
	for (const char *p = msg; *p && o + 3 < sizeof q; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\') {
			q[o++] = '\\';
			q[o++] = (char)ch;
		} else if (ch < 0x20) {
			q[o++] = ' ';
		} else {
			q[o++] = (char)ch;
		}
	}
	q[o] = '\0';
	fprintf(stderr, "%s.%03ldZ level=%s adapter=qiao-%s event=%s%s%s%s%s%s\n", when, ts.tv_nsec / 1000000, level,
		d->def->name, event, fields && fields[0] ? " " : "", fields ? fields : "", msg[0] ? " msg=\"" : "",
		msg[0] ? q : "", msg[0] ? "\"" : "");
}

/* The SDK's events (connection, welcome, reconnects) in the same format. */
static void s_sdk_log(void *arg, enum qiao_log_level level, const char *msg)
{
	static const char *const lv[] = {"info", "error", "warn", "info", "debug"};
	s_logline(arg, lv[level >= QIAO_LOG_ERROR && level <= QIAO_LOG_DEBUG ? level : 0], "sdk", NULL, msg);
}

void dept_log(struct dept *d, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s_logline(d, "info", "adapter.note", NULL, msg);
}

/* How the request being handled on this thread was answered (for the
 * request.handled line). */
static __thread int t_answered, t_code;

const char *dept_member(const struct dept *d)
{
	return d->keys->member;
}

const qiao_keys_t *dept_keys(const struct dept *d)
{
	return d->keys;
}

qiao_adapter_t *dept_adapter(struct dept *d)
{
	return d->a;
}

const char *dept_config(const struct dept *d, const char *key, const char *def)
{
	for (size_t i = 0; i < d->nconf; i++)
		if (strcmp(d->conf_k[i], key) == 0)
			return d->conf_v[i];
	return def;
}

long long dept_config_int(const struct dept *d, const char *key, long long def)
{
	const char *v = dept_config(d, key, NULL);
	if (!v)
		return def;
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	return (errno || *end || end == v) ? def : x;
}

sqlite3 *dept_db_lock(struct dept *d)
{
	pthread_mutex_lock(&d->dbmu);
	return d->db;
}

void dept_db_unlock(struct dept *d)
{
	pthread_mutex_unlock(&d->dbmu);
}

const char *dept_col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? (const char *)t : "";
}

void dept_date(char out[11], int days)
{
	time_t t = time(NULL) + 8 * 3600 + (time_t)days * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

void dept_reply(struct qiao_responder **r, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		qiao_respond_error(r, QIAO__V1__ERROR_CODE__INTERNAL, "out of memory", NULL);
		return;
	}
	protobuf_c_message_pack(msg, b);
	qiao_respond(r, b, n);
	free(b);
	t_answered = 1;
	t_code = 0;
}

void dept_error(struct qiao_responder **r, int code, const char *field, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	qiao_respond_error(r, code, msg, field);
	t_answered = 1;
	t_code = code;
}

int dept_check_text(struct qiao_responder **r, const char *value, const char *field, long maxchars)
{
	if (!value || !value[0]) {
		dept_error(r, QIAO__V1__ERROR_CODE__BAD_REQUEST, field, "%s is required", field);
		return -1;
	}
	long n = qiao_utf8_chars(value, strlen(value));
	if (n < 0 || n > maxchars) {
		dept_error(r, QIAO__V1__ERROR_CODE__BAD_REQUEST, field, "%s: at most %ld characters of UTF-8", field,
			   maxchars);
		return -1;
	}
	return 0;
}

int dept_check_id(struct qiao_responder **r, enum qiao_id_kind kind, const char *value, const char *field,
		  int optional)
{
	if (!value || !value[0]) {
		if (optional)
			return 0;
		dept_error(r, QIAO__V1__ERROR_CODE__BAD_REQUEST, field, "%s (%s) is required", field,
			   qiao_id_kind_name(kind));
		return -1;
	}
	char why[200];
	char norm[256];
	int rc;
	switch (kind) {
	case QIAO_ID_RESIDENT: rc = qiao_id_check_resident(value, why, sizeof why); break;
	case QIAO_ID_USCC: rc = qiao_id_check_uscc(NULL, value, why, sizeof why); break;
	case QIAO_ID_UNIT: rc = qiao_id_check_unit(value, why, sizeof why); break;
	case QIAO_ID_CERT: rc = qiao_id_check_cert(value, norm, sizeof norm, why, sizeof why); break;
	case QIAO_ID_PROOF: rc = qiao_id_check_proof(value, norm, sizeof norm, why, sizeof why); break;
	case QIAO_ID_LICENCE: rc = qiao_id_check_licence(value, why, sizeof why); break;
	case QIAO_ID_MEMBER: rc = qiao_id_check_member(NULL, value, why, sizeof why); break;
	default: rc = qiao_id_check(NULL, value, NULL, why, sizeof why); break;
	}
	if (rc == 0)
		return 0;
	dept_error(r, QIAO__V1__ERROR_CODE__INVALID_IDENTIFIER, field, "%s '%.100s' is not a valid %s: %s", field,
		   value, qiao_id_kind_name(kind), why);
	return -1;
}

int dept_issuer_sign(struct dept *d, const char *domain, const void *data, size_t len,
		     Qiao__V1__IssuerSignature *sig, struct dept_sig_store *store)
{
	return qiao_issuer_sign(domain, data, len, d->keys->member, d->keys->sign_sk, d->keys->sign_pk, sig,
				store->key_id, store->sig);
}

/* ---- requests -------------------------------------------------------- */

static void s_handler(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	struct offer *o = arg;
	const struct dept_service *s = o->s;
	if (strcmp(req->hdr->body_type, s->request->name) != 0) {
		dept_error(&r, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body_type", "%s takes %s, not %.128s", s->name,
			   s->request->name, req->hdr->body_type);
		return;
	}
	ProtobufCMessage *m = protobuf_c_message_unpack(s->request, NULL, req->body_len, req->body);
	if (!m) {
		dept_error(&r, QIAO__V1__ERROR_CODE__BAD_REQUEST, "body", "the body does not decode as %s",
			   s->request->name);
		return;
	}
	/* the request is borrowed until it is answered: take what the log line needs first */
	char mid[2 * QIAO_MSGID_LEN + 1] = "-";
	if (req->hdr->message_id.len == QIAO_MSGID_LEN)
		qiao_hex(req->hdr->message_id.data, QIAO_MSGID_LEN, mid);
	char f[900];
	int fl = snprintf(f, sizeof f, "service=%s requester=%s user=\"%.128s\" msg_id=%s case_id=\"%.64s\"", s->name,
			  req->requester, req->hdr->user_id ? req->hdr->user_id : "", mid,
			  req->hdr->case_id ? req->hdr->case_id : "");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t_answered = 0;
	t_code = 0;
	s->fn(o->d, req, m, r);
	protobuf_c_message_free_unpacked(m, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* one line per exchange: who asked what, for which case, how it ended */
	if (fl > 0 && (size_t)fl < sizeof f)
		snprintf(f + fl, sizeof f - (size_t)fl, " outcome=%s ms=%.1f",
			 !t_answered ? "answered" : t_code ? qiao_error_code_name(t_code) : "ok",
			 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	s_logline(o->d, t_answered && t_code ? "warn" : "info", "request.handled", f, "");
}

/* ---- set-up ---------------------------------------------------------- */

static int s_exec_file(sqlite3 *db, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!buf)
		return -1;
	buf[n] = '\0';
	char *err = NULL;
	int rc = sqlite3_exec(db, buf, NULL, NULL, &err);
	free(buf);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", path, err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int s_load_config(struct dept *d, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[1024];
	unsigned ln = 0;
	while (fgets(line, sizeof line, f)) {
		ln++;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		char *eq = strchr(p, '=');
		if (!eq || d->nconf == CONF_MAX) {
			fprintf(stderr, "%s:%u: expected 'key = value'\n", path, ln);
			fclose(f);
			return -1;
		}
		char *k = p, *v = eq + 1;
		*eq = '\0';
		for (char *e = eq - 1; e >= k && (*e == ' ' || *e == '\t'); e--)
			*e = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\r\n")] = '\0';
		for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		d->conf_k[d->nconf] = strdup(k);
		d->conf_v[d->nconf] = strdup(v);
		d->nconf++;
	}
	fclose(f);
	return 0;
}

static void s_usage(const struct dept_def *def, FILE *out)
{
	fprintf(out,
		"usage: qiao-%s --endpoint tcp://HOST:PORT --key FILE --gateway-curve B64 --db FILE\n"
		"                 [--schema FILE] [--seed FILE] [--config FILE] [--threads N] [-v]\n"
		"\n"
		"The %s's adapter: connects to the Qiao gateway with its key file and serves\n"
		"these services from its own database:\n",
		def->name, def->name);
	for (size_t i = 0; i < def->nservices; i++)
		fprintf(out, "  %-28s %s -> %s\n", def->services[i].name, def->services[i].request->name,
			def->services[i].response->name);
	fprintf(out, "\nA --db that does not exist is created from --schema and filled from --seed.\n"
		     "SIGTERM: finish the requests in progress, say goodbye, exit.\n");
}

int dept_main(int argc, char **argv, const struct dept_def *def)
{
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'}, {"key", required_argument, NULL, 'k'},
		{"gateway-curve", required_argument, NULL, 'g'}, {"db", required_argument, NULL, 'D'},
		{"schema", required_argument, NULL, 's'},   {"seed", required_argument, NULL, 'S'},
		{"config", required_argument, NULL, 'c'},   {"threads", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *ep = NULL, *key = NULL, *gwc = NULL, *dbp = NULL, *schema = NULL, *seed = NULL, *conf = NULL;
	int threads = 2, c;
	struct dept d = {.def = def};
	pthread_mutex_init(&d.dbmu, NULL);
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'e': ep = optarg; break;
		case 'k': key = optarg; break;
		case 'g': gwc = optarg; break;
		case 'D': dbp = optarg; break;
		case 's': schema = optarg; break;
		case 'S': seed = optarg; break;
		case 'c': conf = optarg; break;
		case 't': threads = atoi(optarg); break;
		case 'v': d.verbose = 1; break;
		case 'h': s_usage(def, stdout); return 0;
		default: s_usage(def, stderr); return 2;
		}
	}
	if (!ep || !key || !gwc || !dbp || threads < 1 || threads > 64) {
		fprintf(stderr, "qiao-%s: --endpoint, --key, --gateway-curve and --db are required (try --help)\n",
			def->name);
		return 2;
	}
	if (conf && s_load_config(&d, conf) != 0)
		return 2;
	char why[256];
	int rc = qiao_keys_load(key, &d.keys, why, sizeof why);
	if (rc != 0) {
		fprintf(stderr, "qiao-%s: key file %s: %s\n", def->name, key, why);
		return 1;
	}
	struct stat sb;
	int fresh = stat(dbp, &sb) != 0;
	if (fresh && !schema) {
		fprintf(stderr, "qiao-%s: %s does not exist and no --schema to create it from\n", def->name, dbp);
		return 1;
	}
	if (sqlite3_open_v2(dbp, &d.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "qiao-%s: cannot open %s: %s\n", def->name, dbp, d.db ? sqlite3_errmsg(d.db) : "");
		return 1;
	}
	sqlite3_busy_timeout(d.db, 5000);
	sqlite3_exec(d.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", NULL, NULL,
		     NULL);
	if (fresh) {
		if (s_exec_file(d.db, schema) != 0 || (seed && s_exec_file(d.db, seed) != 0)) {
			sqlite3_close(d.db);
			unlink(dbp);
			return 1;
		}
		dept_log(&d, "created %s from %s%s%s", dbp, schema, seed ? " and " : "", seed ? seed : "");
	}
	if (def->init && (rc = def->init(&d)) != 0)
		return rc;
	struct qiao_adapter_opts o = {
		.endpoint = ep,
		.key_file = key,
		.gateway_curve_public = gwc,
		.handler_threads = (uint32_t)threads,
		.log = s_sdk_log,
		.log_arg = &d,
		.log_level = d.verbose ? QIAO_LOG_DEBUG : QIAO_LOG_INFO,
	};
	char err[300];
	rc = qiao_adapter_new(&o, &d.a, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "qiao-%s: %s\n", def->name, err);
		return 1;
	}
	struct offer *offers = calloc(def->nservices, sizeof *offers);
	for (size_t i = 0; offers && i < def->nservices; i++) {
		offers[i] = (struct offer){&d, &def->services[i]};
		rc = qiao_adapter_offer(d.a, def->services[i].name, def->services[i].response->name, s_handler,
					&offers[i]);
		if (rc != 0) {
			fprintf(stderr, "qiao-%s: cannot offer %s: %s\n", def->name, def->services[i].name,
				qiao_strerror(rc));
			return 1;
		}
	}
	signal(SIGTERM, s_on_signal);
	signal(SIGINT, s_on_signal);
	rc = qiao_adapter_start(d.a);
	if (rc == 0)
		rc = qiao_adapter_wait_connected(d.a, 15000);
	if (rc != 0) {
		fprintf(stderr, "qiao-%s: cannot reach the gateway at %s: %s\n", def->name, ep, qiao_strerror(rc));
		qiao_adapter_destroy(&d.a);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	dept_log(&d, "serving %zu services as %s", def->nservices, d.keys->member);
	while (!s_stop)
		usleep(100000);
	qiao_adapter_destroy(&d.a);
	free(offers);
	sqlite3_close(d.db);
	qiao_keys_destroy(&d.keys);
	for (size_t i = 0; i < d.nconf; i++) {
		free(d.conf_k[i]);
		free(d.conf_v[i]);
	}
	return 0;
}
