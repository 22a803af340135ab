/*
 * cache_bench - 无证明 licence lookups answered from the gateway's cache,
 * against the same kind of lookup answered by the market regulator itself,
 * through the real gateway (CURVE, signatures, audit) with the real
 * qiao-market adapter (tests/dept_harness.h).
 *
 *   cache_bench [SECONDS] [THREADS]            (defaults: 10 s, 4 threads)
 *
 * QIAO_SRC / QIAO_BIN default to the source and build directories this
 * program was built from (set them to run it elsewhere).
 *
 * Bank B's SDK consumer, THREADS threads each with one synchronous call in
 * flight:
 *  - cached: licence-by-id.v1 of 恒信's licence, fetched once from the
 *    regulator first, so every timed lookup is a cache hit (each reply is
 *    checked for from_cache; misses are counted and reported);
 *  - baseline: licence-by-holder.v1 of the same holder, which the gateway
 *    never caches: forwarded to qiao-market, its licence verified, audited.
 * Prints lookups/s, p50 / p99 for both and the ratio.  The gateway's pid
 * is printed before the cached phase (to attach `perf record -g -p`).
 */
#include "dept_harness.h"
#include "licence.pb-c.h"

#define MKT "11150600MB0E78900J/market"
#define HENGXIN "91150602MA0H864248"

static qiao_adapter_t *s_bank;
static char s_id[128];
static volatile int s_stop;

struct worker {
	pthread_t t;
	int holder; /* 1: licence-by-holder (baseline), 0: licence-by-id */
	double *lat;
	size_t n, cap;
	uint64_t failed, not_cached;
};

static double s_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static int s_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* One lookup: 0 (and *cached) or -1. */
static int s_lookup(int holder, int *cached, char *msg, size_t msglen)
{
	int code;
	*cached = 0;
	if (holder) {
		Qiao__V1__LicenceByHolderRequest q = QIAO__V1__LICENCE_BY_HOLDER_REQUEST__INIT;
		q.holder_code = HENGXIN;
		q.holder_code_type = QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
		q.purpose = "贷款审批";
		struct qiao_subject subj = {QIAO_SUBJECT_USCC, HENGXIN};
		Qiao__V1__LicenceByHolderReply *r = (Qiao__V1__LicenceByHolderReply *)d_call(
			s_bank, MKT "/licence-by-holder.v1", &q.base, &qiao__v1__licence_by_holder_reply__descriptor,
			"贷款审批", NULL, &subj, 1, &code, msg, msglen);
		int ok = r && r->n_licences >= 1;
		if (r)
			qiao__v1__licence_by_holder_reply__free_unpacked(r, NULL);
		return ok ? 0 : -1;
	}
	Qiao__V1__LicenceByIdRequest q = QIAO__V1__LICENCE_BY_ID_REQUEST__INIT;
	q.licence_id = s_id;
	Qiao__V1__LicenceByIdReply *r = (Qiao__V1__LicenceByIdReply *)d_call(
		s_bank, MKT "/licence-by-id.v1", &q.base, &qiao__v1__licence_by_id_reply__descriptor, NULL, NULL, NULL,
		0, &code, msg, msglen);
	int ok = r && r->licence && r->licence->licence;
	*cached = ok && r->licence->cache && r->licence->cache->from_cache;
	if (r)
		qiao__v1__licence_by_id_reply__free_unpacked(r, NULL);
	return ok ? 0 : -1;
}

static void *s_worker(void *arg)
{
	struct worker *w = arg;
	char msg[300];
	while (!s_stop) {
		struct timespec t0, t1;
		int cached;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = s_lookup(w->holder, &cached, msg, sizeof msg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc != 0) {
			if (w->failed++ == 0)
				fprintf(stderr, "lookup failed: %s\n", msg);
			continue;
		}
		if (!w->holder && !cached)
			w->not_cached++;
		if (w->n < w->cap)
			w->lat[w->n++] = s_ms(&t0, &t1);
	}
	return NULL;
}

/* THREADS workers for SECONDS; lookups/s (p50, p99 into *p50, *p99). */
static double s_run(const char *what, int holder, int threads, int seconds, double *p50, double *p99)
{
	struct worker *w = calloc((size_t)threads, sizeof *w);
	s_stop = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++) {
		w[i].holder = holder;
		w[i].cap = 500000;
		w[i].lat = malloc(w[i].cap * sizeof *w[i].lat);
		pthread_create(&w[i].t, NULL, s_worker, &w[i]);
	}
	h_sleep_ms(seconds * 1000);
	s_stop = 1;
	size_t n = 0;
	uint64_t failed = 0, not_cached = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].t, NULL);
		n += w[i].n;
		failed += w[i].failed;
		not_cached += w[i].not_cached;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double *all = malloc((n ? n : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof *all);
		k += w[i].n;
		free(w[i].lat);
	}
	free(w);
	qsort(all, n, sizeof *all, s_cmp);
	*p50 = n ? all[n / 2] : 0;
	*p99 = n ? all[n * 99 / 100] : 0;
	free(all);
	double secs = s_ms(&t0, &t1) / 1000.0;
	double rate = (double)n / secs;
	printf("%-44s %7.0f lookups/s (%zu in %.1f s, %llu failed", what, rate, n, secs, (unsigned long long)failed);
	if (!holder)
		printf(", %llu not from the cache", (unsigned long long)not_cached);
	printf("), p50 %.2f ms, p99 %.2f ms\n", *p50, *p99);
	return rate;
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 10;
	int threads = argc > 2 ? atoi(argv[2]) : 4;
	if (seconds < 1 || seconds > 3600 || threads < 1 || threads > 256) {
		fprintf(stderr, "usage: cache_bench [SECONDS 1..3600] [THREADS 1..256]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("QIAO_SRC", QIAO_SRC_DEFAULT, 0);
	setenv("QIAO_BIN", QIAO_BIN_DEFAULT, 0);
	setenv("QIAO_SHARED", QIAO_SRC_DEFAULT "/../shared", 0);
	if (d_setup("cache-bench", NULL) != 0 ||
	    d_start_dept(D_MARKET) != 0 || !(s_bank = d_consumer(D_BANK_B))) {
		fprintf(stderr, "set-up failed (QIAO_SRC=%s QIAO_BIN=%s)\n", getenv("QIAO_SRC"), getenv("QIAO_BIN"));
		h_log_show(NULL, 40);
		d_teardown();
		return 1;
	}
	/* 恒信's licence id, from the regulator; then once by id (cached) */
	int code;
	char msg[300];
	Qiao__V1__LicenceByHolderRequest hq = QIAO__V1__LICENCE_BY_HOLDER_REQUEST__INIT;
	hq.holder_code = HENGXIN;
	hq.holder_code_type = QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
	hq.purpose = "贷款审批";
	struct qiao_subject subj = {QIAO_SUBJECT_USCC, HENGXIN};
	Qiao__V1__LicenceByHolderReply *hr = (Qiao__V1__LicenceByHolderReply *)d_call(
		s_bank, MKT "/licence-by-holder.v1", &hq.base, &qiao__v1__licence_by_holder_reply__descriptor, "贷款审批",
		NULL, &subj, 1, &code, msg, sizeof msg);
	for (size_t i = 0; hr && i < hr->n_licences && !s_id[0]; i++) {
		const Qiao__V1__SignedLicence *sl = hr->licences[i]->licence;
		Qiao__V1__ElectronicLicence *l =
			sl ? qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data) : NULL;
		if (l && l->licence_id)
			snprintf(s_id, sizeof s_id, "%s", l->licence_id);
		if (l)
			qiao__v1__electronic_licence__free_unpacked(l, NULL);
	}
	if (hr)
		qiao__v1__licence_by_holder_reply__free_unpacked(hr, NULL);
	int c1 = 0, c2 = 0;
	if (!s_id[0] || s_lookup(0, &c1, msg, sizeof msg) != 0 || s_lookup(0, &c2, msg, sizeof msg) != 0 || !c2) {
		fprintf(stderr, "no cached licence of %s (%s)\n", HENGXIN, s_id[0] ? msg : "licence-by-holder failed");
		qiao_adapter_destroy(&s_bank);
		d_teardown();
		return 1;
	}
	printf("licence %s of %s cached; %d consumer threads, one lookup in flight each, %d s per phase\n", s_id,
	       HENGXIN, threads, seconds);
	printf("gateway pid %d\n", (int)h_gw_pid);
	double p50c, p99c, p50b, p99b;
	double cached = s_run("licence-by-id, from the gateway's cache:", 0, threads, seconds, &p50c, &p99c);
	double base = s_run("baseline: licence-by-holder, by the regulator:", 1, threads, seconds, &p50b, &p99b);
	printf("cached / regulator: x%.2f lookups/s, p50 %.2f vs %.2f ms (target: >= 10,000 cached lookups/s: %s)\n",
	       base > 0 ? cached / base : 0, p50c, p50b, cached >= 10000 ? "met" : "NOT met");
	qiao_adapter_destroy(&s_bank);
	d_teardown();
	return 0;
}
