/*
 * workflow_bench - 带押过户 cases end to end through the gateway's workflow
 * engine with every real department adapter (tests/wf_harness.h), against
 * the gateway's plain exchange rate measured in the same run.
 *
 *   workflow_bench [SECONDS] [HAPPY]           (defaults: 8 s, 5 cases)
 *
 * QIAO_SRC / QIAO_BIN / QIAO_SHARED default to the source and build
 * directories this program was built from (set them to run it elsewhere).
 *
 * The seeds hold one flat that can be sold (unit ...0001), and the happy
 * path sells it, so:
 *  - baseline: title-summary.v1 of the demo flat called directly by bank
 *    B's SDK consumer, K threads with one call in flight each (the first
 *    exchange of every case, the same gateway, same checks);
 *  - seized title (unit ...0002, 查封): K = 1 and K = 16 cases in flight,
 *    SECONDS each.  Each case is started on the engine's control socket,
 *    runs its title step (one exchange with the registry), fails with
 *    TITLE_ENCUMBERED and ends COMPENSATED: every transition durably
 *    audited, nothing filed anywhere, so the flat can be reused;
 *  - the full happy path: HAPPY cases one at a time, every department reset
 *    to its seed between cases (untimed), so K = 1 only.
 * A case's latency runs from the start request to the first status poll
 * that sees it final (polls every 5 ms).  Exchanges and audit entries per
 * case come from the case's timeline (op "timeline").  The ratio printed is
 * (cases/s x exchanges per case) / baseline exchanges/s at the same K.
 */
#include "realestate.pb-c.h"
#include "wf_harness.h"

#define SEIZED_UNIT "150602001001GB00001F00010002"
#define SEIZED_CERT "蒙(2020)鄂尔多斯市不动产权第0023456号"
#define POLL_MS 5

static qiao_adapter_t *s_bank;
static volatile int s_stop;
static int s_seq;
static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;

struct worker {
	pthread_t t;
	int mode; /* 0: title-summary exchange, 1: seized-title case */
	double *lat;
	size_t n, cap;
	uint64_t failed;
	char last_case[64];
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

static Qiao__V1__Party *s_party(Qiao__V1__Party *p, Qiao__V1__DataSubject *s, const char *name, const char *id)
{
	qiao__v1__party__init(p);
	qiao__v1__data_subject__init(s);
	p->name = (char *)name;
	s->type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	s->id = (char *)id;
	p->id = s;
	return p;
}

/* One title-summary exchange as bank B: 0 or -1. */
static int s_summary(char *msg, size_t msglen)
{
	Qiao__V1__TitleSummaryRequest q = QIAO__V1__TITLE_SUMMARY_REQUEST__INIT;
	Qiao__V1__Party p;
	Qiao__V1__DataSubject s;
	q.unit_no = DEMO_UNIT;
	q.cert_no = "";
	q.authorisation_no = "SQ-2026-LJG-0001";
	q.authorised_by = s_party(&p, &s, "李建国", "15060219850612003X");
	q.purpose = "带押过户";
	int code;
	ProtobufCMessage *m = d_call(s_bank, "12150600MB0A12342K/realestate/title-summary.v1", &q.base,
				     &qiao__v1__title_summary__descriptor, "带押过户", "case-2026-bench", NULL, 0, &code,
				     msg, msglen);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	return m ? 0 : -1;
}

/* Poll case `id` until final: its state into st, 0; -1 after ms. */
static int s_wait(const char *id, char *st, size_t stlen, int ms)
{
	int64_t until = h_now() + ms;
	while (h_now() < until) {
		json_t *c = wf_status(id);
		const char *s = c ? wf_s(c, "state") : "";
		if (wf_final(s)) {
			snprintf(st, stlen, "%s", s);
			json_decref(c);
			return 0;
		}
		json_decref(c);
		h_sleep_ms(POLL_MS);
	}
	snprintf(st, stlen, "(not final after %d ms)", ms);
	return -1;
}

/* One seized-title case: 0 when it ended COMPENSATED. */
static int s_seized(struct worker *w)
{
	pthread_mutex_lock(&s_mu);
	int n = ++s_seq;
	pthread_mutex_unlock(&s_mu);
	char contract[64], id[64], st[64];
	snprintf(contract, sizeof contract, "HT-2026-BENCH-%06d", n);
	json_t *in = wf_input(contract);
	json_object_set_new(in, "unit_no", json_string(SEIZED_UNIT));
	json_object_set_new(in, "cert_no", json_string(SEIZED_CERT));
	if (!wf_start(in, id, sizeof id))
		return -1;
	snprintf(w->last_case, sizeof w->last_case, "%s", id);
	if (s_wait(id, st, sizeof st, 30000) != 0 || strcmp(st, "COMPENSATED") != 0) {
		fprintf(stderr, "seized-title case %s: %s\n", id, st);
		return -1;
	}
	return 0;
}

static void *s_worker(void *arg)
{
	struct worker *w = arg;
	char msg[300];
	while (!s_stop) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = w->mode ? s_seized(w) : s_summary(msg, sizeof msg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc != 0) {
			if (w->failed++ == 0 && !w->mode)
				fprintf(stderr, "title-summary failed: %s\n", msg);
			if (w->failed > 20)
				break;
			continue;
		}
		if (w->n < w->cap)
			w->lat[w->n++] = s_ms(&t0, &t1);
	}
	return NULL;
}

struct result {
	double rate, p50, p99;
	uint64_t failed;
	char a_case[64];
};

/* K workers of `mode` for `seconds`. */
static struct result s_run(int mode, int k, int seconds)
{
	struct result r = {0};
	struct worker *w = calloc((size_t)k, sizeof *w);
	s_stop = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < k; i++) {
		w[i].mode = mode;
		w[i].cap = 200000;
		w[i].lat = malloc(w[i].cap * sizeof *w[i].lat);
		pthread_create(&w[i].t, NULL, s_worker, &w[i]);
	}
	h_sleep_ms(seconds * 1000);
	s_stop = 1;
	size_t n = 0;
	for (int i = 0; i < k; i++) {
		pthread_join(w[i].t, NULL);
		n += w[i].n;
		r.failed += w[i].failed;
		if (!r.a_case[0] && w[i].last_case[0])
			snprintf(r.a_case, sizeof r.a_case, "%s", w[i].last_case);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double *all = malloc((n ? n : 1) * sizeof *all);
	size_t j = 0;
	for (int i = 0; i < k; i++) {
		memcpy(all + j, w[i].lat, w[i].n * sizeof *all);
		j += w[i].n;
		free(w[i].lat);
	}
	free(w);
	qsort(all, n, sizeof *all, s_cmp);
	r.p50 = n ? all[n / 2] : 0;
	r.p99 = n ? all[n * 99 / 100] : 0;
	free(all);
	r.rate = (double)n / (s_ms(&t0, &t1) / 1000.0);
	return r;
}

/* Audit entries and exchanges (RESPONSE_DELIVERED) in a case's timeline. */
static void s_count(const char *id, size_t *entries, size_t *exchanges)
{
	*entries = *exchanges = 0;
	json_t *tl = wf_ctl(json_pack("{s:s, s:s}", "op", "timeline", "case_id", id));
	json_t *es = json_object_get(tl, "entries");
	*entries = json_array_size(es);
	for (size_t i = 0; i < json_array_size(es); i++)
		*exchanges += strcmp(wf_s(json_array_get(es, i), "event"), "RESPONSE_DELIVERED") == 0;
	json_decref(tl);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 8;
	int happy = argc > 2 ? atoi(argv[2]) : 5;
	if (seconds < 1 || seconds > 3600 || happy < 0 || happy > 1000) {
		fprintf(stderr, "usage: workflow_bench [SECONDS 1..3600] [HAPPY 0..1000]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("QIAO_SRC", QIAO_SRC_DEFAULT, 0);
	setenv("QIAO_BIN", QIAO_BIN_DEFAULT, 0);
	setenv("QIAO_SHARED", QIAO_SRC_DEFAULT "/../shared", 0);
	if (wf_setup("wf-bench", NULL) != 0 || !(s_bank = d_consumer(D_BANK_B))) {
		fprintf(stderr, "set-up failed (QIAO_SRC=%s QIAO_BIN=%s)\n", getenv("QIAO_SRC"), getenv("QIAO_BIN"));
		h_log_show(NULL, 40);
		d_teardown();
		return 1;
	}
	char msg[300];
	if (s_summary(msg, sizeof msg) != 0) {
		fprintf(stderr, "title-summary as bank B failed: %s\n", msg);
		qiao_adapter_destroy(&s_bank);
		d_teardown();
		return 1;
	}
	printf("gateway pid %d; %d s per setting; case latency polled every %d ms\n", (int)h_gw_pid, seconds, POLL_MS);
	const int ks[] = {1, 16};
	struct result base[2], seized[2];
	for (int i = 0; i < 2; i++) {
		base[i] = s_run(0, ks[i], seconds);
		printf("baseline: title-summary exchanges, %2d in flight: %7.1f exchanges/s, p50 %.2f ms, p99 %.2f ms "
		       "(%llu failed)\n",
		       ks[i], base[i].rate, base[i].p50, base[i].p99, (unsigned long long)base[i].failed);
	}
	size_t ent = 0, exch = 0;
	for (int i = 0; i < 2; i++) {
		seized[i] = s_run(1, ks[i], seconds);
		if (seized[i].a_case[0] && !ent)
			s_count(seized[i].a_case, &ent, &exch);
		printf("seized-title cases (COMPENSATED), %2d in flight: %6.1f cases/s, p50 %.1f ms, p99 %.1f ms "
		       "(%llu failed)\n",
		       ks[i], seized[i].rate, seized[i].p50, seized[i].p99, (unsigned long long)seized[i].failed);
	}
	printf("  per seized-title case: %zu exchange(s), %zu audit entries\n", exch, ent);
	for (int i = 0; i < 2; i++)
		printf("  ratio at %2d in flight: (%.1f cases/s x %zu exchanges) / %.1f exchanges/s = %.2f\n", ks[i],
		       seized[i].rate, exch, base[i].rate, base[i].rate > 0 ? seized[i].rate * (double)exch / base[i].rate : 0);

	/* the full happy path, one case at a time, fresh departments for each */
	double *lat = malloc((size_t)(happy ? happy : 1) * sizeof *lat);
	int done = 0;
	size_t hent = 0, hexch = 0;
	for (int n = 0; n < happy; n++) {
		if (n > 0) {
			for (int i = 0; i < D_N; i++)
				d_reset_dept(i);
			int up = 1;
			for (int i = 0; i < D_N && up; i++)
				up = d_start_dept(i) == 0;
			if (!up) {
				fprintf(stderr, "departments did not restart\n");
				break;
			}
		}
		char contract[64], id[64], st[64];
		snprintf(contract, sizeof contract, "HT-2026-DYGH-%04d", 100 + n);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (!wf_start(wf_input(contract), id, sizeof id))
			break;
		int rc = s_wait(id, st, sizeof st, 60000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc != 0 || strcmp(st, "COMPLETED") != 0) {
			fprintf(stderr, "happy-path case %s: %s\n", id, st);
			json_t *c = wf_status(id);
			wf_show(c);
			json_decref(c);
			continue;
		}
		lat[done++] = s_ms(&t0, &t1);
		if (!hent)
			s_count(id, &hent, &hexch);
	}
	if (done) {
		double sum = 0;
		for (int i = 0; i < done; i++)
			sum += lat[i];
		qsort(lat, (size_t)done, sizeof *lat, s_cmp);
		double rate = 1000.0 * done / sum;
		printf("happy-path cases (COMPLETED), 1 in flight, %d of %d: %.2f cases/s, p50 %.0f ms, max %.0f ms\n",
		       done, happy, rate, lat[done / 2], lat[done - 1]);
		printf("  per happy-path case: %zu exchanges, %zu audit entries\n", hexch, hent);
		printf("  ratio at  1 in flight: (%.2f cases/s x %zu exchanges) / %.1f exchanges/s = %.2f\n", rate, hexch,
		       base[0].rate, base[0].rate > 0 ? rate * (double)hexch / base[0].rate : 0);
	} else if (happy) {
		printf("happy-path cases: none completed\n");
	}
	free(lat);
	qiao_adapter_destroy(&s_bank);
	d_teardown();
	qiao_keys_destroy(&wf_k);
	return 0;
}
