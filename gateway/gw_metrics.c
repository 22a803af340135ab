/*
 * gw_metrics.c - the Prometheus endpoint (see gw_metrics.h).
 *
 * libmicrohttpd (Debian libmicrohttpd-dev) runs the HTTP side on its own
 * internal thread with tight limits: a few connections, a small memory
 * pool per connection (a request whose headers do not fit is answered
 * with an error by the library itself), a short idle timeout.  Handlers
 * only copy the latest published text under a mutex, so they never wait
 * on the reactor and the reactor never waits on them longer than a copy.
 */
#include "gw_metrics.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gw_log.h"
#include "qiao_err.h"

#define MAX_SERVICES 1024 /* label values kept; more are counted as "other" */
#define MAX_OUTCOMES 40   /* per service */
#define OUTCOME_MAX 32

static const double s_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
#define NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

struct outcome {
	char name[OUTCOME_MAX];
	uint64_t n;
};

struct msvc {
	char *id;
	struct outcome out[MAX_OUTCOMES];
	size_t nout;
	uint64_t bucket[NBUCKETS]; /* not cumulative: rendered cumulatively */
	uint64_t count;
	double sum;
};

struct gw_metrics {
	struct MHD_Daemon *d;
	/* reactor only */
	struct msvc **svcs; /* sorted by id */
	size_t nsvcs, capsvcs;
	/* shared with the HTTP thread, under mu */
	pthread_mutex_t mu;
	char *text;
	size_t len;
	int healthy;
	char reason[256];
	int64_t published_mono; /* 0: never */
};

static int64_t s_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the reactor's counters ---------------------------------------------- */

static struct msvc *s_svc(gw_metrics_t *m, const char *id)
{
	size_t lo = 0, hi = m->nsvcs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->svcs[mid]->id, id);
		if (c == 0)
			return m->svcs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (m->nsvcs >= MAX_SERVICES && strcmp(id, "other") != 0)
		return s_svc(m, "other"); /* found, or made once past the limit */
	if (m->nsvcs == m->capsvcs) {
		size_t nc = m->capsvcs ? m->capsvcs * 2 : 32;
		struct msvc **v = realloc(m->svcs, nc * sizeof *v);
		if (!v)
			return NULL;
		m->svcs = v;
		m->capsvcs = nc;
	}
	struct msvc *s = calloc(1, sizeof *s);
	if (!s || !(s->id = strdup(id))) {
		free(s);
		return NULL;
	}
	memmove(m->svcs + lo + 1, m->svcs + lo, (m->nsvcs - lo) * sizeof *m->svcs);
	m->svcs[lo] = s;
	m->nsvcs++;
	return s;
}

void gw_metrics_request(gw_metrics_t *m, const char *service, const char *outcome, double seconds)
{
	if (!m)
		return;
	struct msvc *s = s_svc(m, service && *service ? service : "unknown");
	if (!s)
		return;
	char o[OUTCOME_MAX];
	size_t i;
	for (i = 0; outcome[i] && i + 1 < sizeof o; i++)
		o[i] = (char)tolower((unsigned char)outcome[i]);
	o[i] = '\0';
	for (i = 0; i < s->nout && strcmp(s->out[i].name, o) != 0; i++)
		;
	if (i == s->nout) {
		if (s->nout == MAX_OUTCOMES)
			i = s->nout - 1; /* cannot happen with the ErrorCode enum; lumped into the last */
		else
			snprintf(s->out[s->nout++].name, OUTCOME_MAX, "%s", o);
	}
	s->out[i].n++;
	if (seconds >= 0) {
		size_t b = 0;
		while (b < NBUCKETS && seconds > s_buckets[b])
			b++;
		if (b < NBUCKETS)
			s->bucket[b]++;
		s->count++;
		s->sum += seconds;
	}
}

/* ---- rendering ------------------------------------------------------------ */

struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void s_put(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(struct sb *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = (b->cap + (size_t)n + 1) * 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
}

/* A label value, escaped as the text format wants: \\ \" \n. */
static void s_label(struct sb *b, const char *v)
{
	char tmp[512];
	size_t o = 0;
	for (const char *p = v; *p; p++) {
		if (o + 3 >= sizeof tmp) {
			tmp[o] = '\0';
			s_put(b, "%s", tmp);
			o = 0;
		}
		if (*p == '\\' || *p == '"') {
			tmp[o++] = '\\';
			tmp[o++] = *p;
		} else if (*p == '\n') {
			tmp[o++] = '\\';
			tmp[o++] = 'n';
		} else {
			tmp[o++] = *p;
		}
	}
	tmp[o] = '\0';
	s_put(b, "%s", tmp);
}

static void s_head(struct sb *b, const char *name, const char *type, const char *help)
{
	s_put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_one(struct sb *b, const char *name, const char *type, const char *help, double v)
{
	s_head(b, name, type, help);
	s_put(b, "%s %.15g\n", name, v);
}

/* Resident set size and thread count from /proc/self/status; 0 when unknown. */
static void s_proc(uint64_t *rss, uint64_t *threads)
{
	*rss = *threads = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	char line[256];
	unsigned long long v;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "VmRSS: %llu kB", &v) == 1)
			*rss = (uint64_t)v * 1024;
		else if (sscanf(line, "Threads: %llu", &v) == 1)
			*threads = (uint64_t)v;
	}
	fclose(f);
}

static void s_render(gw_metrics_t *m, const struct gw_metrics_snap *s, struct sb *b)
{
	s_head(b, "qiao_requests_total", "counter",
	       "Requests answered, by service and outcome (ok, or the ErrorCode name of the answer, e.g. timeout, "
	       "not_authorized, no_instance).");
	for (size_t i = 0; i < m->nsvcs; i++)
		for (size_t k = 0; k < m->svcs[i]->nout; k++) {
			s_put(b, "qiao_requests_total{service=\"");
			s_label(b, m->svcs[i]->id);
			s_put(b, "\",outcome=\"");
			s_label(b, m->svcs[i]->out[k].name);
			s_put(b, "\"} %llu\n", (unsigned long long)m->svcs[i]->out[k].n);
		}
	s_head(b, "qiao_request_duration_seconds", "histogram",
	       "Time from receiving a request to sending its answer, for requests routed to a provider or answered "
	       "by the gateway itself.");
	for (size_t i = 0; i < m->nsvcs; i++) {
		const struct msvc *v = m->svcs[i];
		uint64_t cum = 0;
		for (size_t k = 0; k < NBUCKETS; k++) {
			cum += v->bucket[k];
			s_put(b, "qiao_request_duration_seconds_bucket{service=\"");
			s_label(b, v->id);
			s_put(b, "\",le=\"%g\"} %llu\n", s_buckets[k], (unsigned long long)cum);
		}
		s_put(b, "qiao_request_duration_seconds_bucket{service=\"");
		s_label(b, v->id);
		s_put(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)v->count);
		s_put(b, "qiao_request_duration_seconds_sum{service=\"");
		s_label(b, v->id);
		s_put(b, "\"} %.15g\n", v->sum);
		s_put(b, "qiao_request_duration_seconds_count{service=\"");
		s_label(b, v->id);
		s_put(b, "\"} %llu\n", (unsigned long long)v->count);
	}
	s_one(b, "qiao_requests_in_flight", "gauge", "Requests accepted and not yet answered.",
	      (double)s->requests_inflight);
	s_head(b, "qiao_queue_length", "gauge",
	       "Work waiting: providers (requests sent to an instance, not yet answered), verify (envelopes waiting "
	       "for a signature check), commit (operations waiting for the store's writer).");
	s_put(b, "qiao_queue_length{queue=\"providers\"} %llu\n", (unsigned long long)s->queue_providers);
	s_put(b, "qiao_queue_length{queue=\"verify\"} %llu\n", (unsigned long long)s->queue_verify);
	s_put(b, "qiao_queue_length{queue=\"commit\"} %llu\n", (unsigned long long)s->queue_commit);
	s_one(b, "qiao_messages_received_total", "counter", "Messages received from adapters.", (double)s->received);
	s_one(b, "qiao_bad_signatures_total", "counter", "Envelopes whose signature did not verify.",
	      (double)s->bad_signatures);
	s_one(b, "qiao_replays_total", "counter", "Envelopes refused because their message id was seen before.",
	      (double)s->replays);
	s_one(b, "qiao_zap_refused_total", "counter", "Connections refused by CURVE authentication (ZAP).",
	      (double)s->zap_refused);
	s_one(b, "qiao_timeouts_total", "counter", "Requests whose provider did not answer before the deadline.",
	      (double)s->timeouts);
	s_one(b, "qiao_cache_hits_total", "counter", "Lookups answered from the licence and credit cache.",
	      (double)s->cache_hits);
	s_one(b, "qiao_cache_misses_total", "counter", "Cacheable lookups the cache could not answer.",
	      (double)s->cache_misses);
	s_one(b, "qiao_cache_stale_served_total", "counter",
	      "Stale copies served because the issuer was offline (marked stale).", (double)s->cache_stale);
	uint64_t look = s->cache_hits + s->cache_misses;
	s_one(b, "qiao_cache_hit_ratio", "gauge", "cache hits / (hits + misses) since start; 0 before any lookup.",
	      look ? (double)s->cache_hits / (double)look : 0.0);
	s_one(b, "qiao_audit_log_entries", "gauge", "Entries in the audit log (its tree size).",
	      (double)s->audit_size);
	s_one(b, "qiao_audit_uncovered_entries", "gauge", "Audit entries not yet covered by a signed checkpoint.",
	      (double)s->audit_uncovered);
	s_one(b, "qiao_audit_checkpoint_age_seconds", "gauge",
	      "Seconds since the latest signed checkpoint (since start when there is none).",
	      (double)(s->now_ms - (s->checkpoint_ms ? s->checkpoint_ms : s->started_ms)) / 1000.0);
	s_one(b, "qiao_audit_entries_written_total", "counter", "Audit entries this process made durable.",
	      (double)s->audit_entries_written);
	s_one(b, "qiao_audit_commit_failures_total", "counter",
	      "Durable commits that failed (the store could not write).", (double)s->commit_failures);
	s_one(b, "qiao_audit_entries_lost_total", "counter",
	      "Audit entries of failed commits (their requests were refused, not served).",
	      (double)s->audit_failures);
	s_one(b, "qiao_audit_last_commit_ok", "gauge", "1 when the most recent durable commit succeeded.",
	      s->last_commit_ok ? 1.0 : 0.0);
	s_one(b, "qiao_connections", "gauge", "Adapter connections (instances) connected now.",
	      (double)s->connections);
	s_one(b, "qiao_members_connected", "gauge", "Distinct members with at least one connection now.",
	      (double)s->members);
	if (s->nwf) {
		s_head(b, "qiao_workflow_open_cases", "gauge", "Workflow cases not yet final, by workflow and state.");
		for (size_t i = 0; i < s->nwf; i++) {
			s_put(b, "qiao_workflow_open_cases{workflow=\"");
			s_label(b, s->wf[i].workflow);
			s_put(b, "\",state=\"");
			s_label(b, s->wf[i].state);
			s_put(b, "\"} %llu\n", (unsigned long long)s->wf[i].open);
		}
		s_head(b, "qiao_workflow_oldest_open_case_age_seconds", "gauge",
		       "Age of the oldest open case, by workflow and state; 0 when there is none.");
		for (size_t i = 0; i < s->nwf; i++) {
			s_put(b, "qiao_workflow_oldest_open_case_age_seconds{workflow=\"");
			s_label(b, s->wf[i].workflow);
			s_put(b, "\",state=\"");
			s_label(b, s->wf[i].state);
			s_put(b, "\"} %.3f\n", (double)s->wf[i].oldest_age_ms / 1000.0);
		}
	}
	s_one(b, "qiao_healthy", "gauge", "1 when /healthz answers 200.", s->healthy ? 1.0 : 0.0);
	s_one(b, "qiao_start_time_seconds", "gauge", "When the gateway started (Unix time).",
	      (double)s->started_ms / 1000.0);
	uint64_t rss, thr;
	s_proc(&rss, &thr);
	s_one(b, "qiao_process_resident_memory_bytes", "gauge", "Resident set size of the gateway process.",
	      (double)rss);
	s_one(b, "qiao_process_threads", "gauge", "Threads of the gateway process.", (double)thr);
}

void gw_metrics_publish(gw_metrics_t *m, const struct gw_metrics_snap *s)
{
	if (!m)
		return;
	struct sb b = {0};
	s_render(m, s, &b);
	pthread_mutex_lock(&m->mu);
	if (!b.oom) {
		free(m->text);
		m->text = b.p;
		m->len = b.len;
		b.p = NULL;
	}
	m->healthy = s->healthy;
	snprintf(m->reason, sizeof m->reason, "%s", s->healthy ? "ok" : s->reason ? s->reason : "unhealthy");
	m->published_mono = s_mono_ms();
	pthread_mutex_unlock(&m->mu);
	free(b.p);
}

/* ---- the HTTP side (libmicrohttpd's thread) ------------------------------- */

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const char *body,
			       size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result s_text(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	return s_reply(conn, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				const char *version, const char *upload_data, size_t *upload_data_size,
				void **con_cls)
{
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	gw_metrics_t *m = cls;
	/* Answer at the first call (headers only): a body is never read; the
	 * library closes the connection after an answer that left one. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return s_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
	if (strcmp(url, "/metrics") == 0) {
		enum MHD_Result rc;
		pthread_mutex_lock(&m->mu);
		if (m->text)
			rc = s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", m->text, m->len);
		else
			rc = s_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no metrics yet: the gateway is starting\n");
		pthread_mutex_unlock(&m->mu);
		return rc;
	}
	if (strcmp(url, "/healthz") == 0 || strcmp(url, "/health") == 0) {
		char msg[300];
		unsigned status;
		pthread_mutex_lock(&m->mu);
		int64_t age = m->published_mono ? s_mono_ms() - m->published_mono : -1;
		if (age < 0) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			snprintf(msg, sizeof msg, "starting\n");
		} else if (age > GW_METRICS_STALE_MS) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			snprintf(msg, sizeof msg, "the gateway's reactor has not reported for %lld ms\n", (long long)age);
		} else {
			status = m->healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
			snprintf(msg, sizeof msg, "%s\n", m->reason);
		}
		pthread_mutex_unlock(&m->mu);
		return s_text(conn, status, msg);
	}
	return s_text(conn, MHD_HTTP_NOT_FOUND, "not found: the paths are /metrics and /healthz\n");
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[300];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_info("metrics.http message=\"%s\"", msg);
}

int gw_metrics_start(const struct gw_metrics_conf *mc, gw_metrics_t **out, char *err, size_t errlen)
{
	*out = NULL;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, mc->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)mc->port);
	} else if (inet_pton(AF_INET6, mc->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)mc->port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "metrics.listen %s: not a numeric address", mc->listen);
		return QIAO_ECONFIG;
	}
	gw_metrics_t *m = calloc(1, sizeof *m);
	if (!m)
		return QIAO_ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	snprintf(m->reason, sizeof m->reason, "starting");
	errno = 0;
	/* the logger first, or the library logs the options before it to stderr */
	m->d = MHD_start_daemon(flags, (uint16_t)mc->port, NULL, NULL, s_handle, m, MHD_OPTION_EXTERNAL_LOGGER,
				s_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)32, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				(unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
	if (!m->d) {
		int e = errno ? errno : EADDRINUSE;
		snprintf(err, errlen, "metrics.listen %s: cannot serve HTTP there: %s", mc->listen, strerror(e));
		pthread_mutex_destroy(&m->mu);
		free(m);
		return -e;
	}
	*out = m;
	return 0;
}

void gw_metrics_stop(gw_metrics_t **mp)
{
	if (!mp || !*mp)
		return;
	gw_metrics_t *m = *mp;
	if (m->d)
		MHD_stop_daemon(m->d);
	for (size_t i = 0; i < m->nsvcs; i++) {
		free(m->svcs[i]->id);
		free(m->svcs[i]);
	}
	free(m->svcs);
	free(m->text);
	pthread_mutex_destroy(&m->mu);
	free(m);
	*mp = NULL;
}
