/*
 * test_gateway_load.c - three instances of one service behind the real
 * gateway share 3,000 requests from two consumers (64 in flight); one
 * instance is SIGKILLed mid-run.  Every request must get an answer
 * (RESPONSE, or the gateway's PROVIDER_GONE for what was in flight on the
 * killed instance), none lost and none hanging, and every instance must
 * have served some before the kill.  Each answer must be the echo of its
 * own request (gw_peer prefixes its pid).
 */
#include "gw_harness.h"

#define TOTAL 3000
#define WINDOW 64
#define KILL_AFTER 1000 /* answers before one instance is killed */

static const char *const s_services =
	"      { name = \"load.v1\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n"
	"        class = \"unconditional\"; idempotent = false; }\n";
static const char *const s_policy =
	"  { consumer = \"" BANK_B "\"; service = \"" PRV "/load.v1\"; class = \"unconditional\"; },\n"
	"  { consumer = \"" BANK_A "\"; service = \"" PRV "/load.v1\"; class = \"unconditional\"; }\n";

static struct h_peer P[3];
static long s_pid[3]; /* their pids, kept after the kill */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight, done, responses, errors, locals, mismatches, unknown_pid;
	int codes[32];
	int per[3], per_at_kill[3];
	bool killed;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int s_idx[TOTAL];

static void on_done(void *arg, struct qiao_result *res)
{
	int i = *(const int *)arg;
	char want[32];
	int wl = snprintf(want, sizeof want, "load-%d", i);
	pthread_mutex_lock(&L.mu);
	if (res->status != 0) {
		if (L.locals++ < 5)
			h_show_result("load call", res->status, res);
	} else if (res->kind == QIAO_RESULT_RESPONSE) {
		L.responses++;
		/* "<pid>:load-<i>" */
		const char *b = (const char *)res->body;
		const char *colon = res->body_len ? memchr(b, ':', res->body_len) : NULL;
		long pid = colon ? strtol(b, NULL, 10) : -1;
		size_t rest = colon ? res->body_len - (size_t)(colon + 1 - b) : 0;
		if (!colon || rest != (size_t)wl || memcmp(colon + 1, want, rest) != 0)
			L.mismatches++;
		int k = -1;
		for (int j = 0; j < 3; j++)
			if (pid == s_pid[j])
				k = j;
		if (k < 0)
			L.unknown_pid++;
		else
			L.per[k]++;
	} else {
		L.errors++;
		int c = res->error.code;
		L.codes[c >= 0 && c < 32 ? c : 0]++;
		if (c != QIAO__V1__ERROR_CODE__PROVIDER_GONE && L.errors < 5)
			h_show_result("load call", res->status, res);
	}
	L.done++;
	L.inflight--;
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
	qiao_result_free(&res);
}

static void s_kill_one(void)
{
	memcpy(L.per_at_kill, L.per, sizeof L.per);
	L.killed = true;
	int done = L.done;
	pthread_mutex_unlock(&L.mu);
	int st = h_peer_stop(&P[0], SIGKILL);
	CHECK(st >= 0 && WIFSIGNALED(st));
	fprintf(stderr, "  killed instance pid %ld after %d answers (per instance %d %d %d)\n", s_pid[0],
		done, L.per_at_kill[0], L.per_at_kill[1], L.per_at_kill[2]);
	pthread_mutex_lock(&L.mu);
}

static void test_load(qiao_adapter_t *a, qiao_adapter_t *b)
{
	int64_t t0 = h_now(), until = t0 + check_ms(60000); /* scaled under valgrind */
	int submit_failed = 0;
	pthread_mutex_lock(&L.mu);
	for (int i = 0; i < TOTAL && h_now() < until; i++) {
		while (L.inflight >= WINDOW && h_now() < until) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&L.cv, &L.mu, &ts);
		}
		if (!L.killed && L.done >= KILL_AFTER && L.per[0] > 0 && L.per[1] > 0 && L.per[2] > 0)
			s_kill_one();
		L.inflight++;
		pthread_mutex_unlock(&L.mu);
		char body[32];
		snprintf(body, sizeof body, "load-%d", i);
		s_idx[i] = i;
		struct qiao_call c = h_call(PRV "/load.v1", body, 15000);
		char err[200];
		int rc = qiao_adapter_call_async(i % 2 ? b : a, &c, on_done, &s_idx[i], err, sizeof err);
		pthread_mutex_lock(&L.mu);
		if (rc != 0) {
			L.inflight--;
			if (submit_failed++ < 5)
				fprintf(stderr, "  call_async %d: %s: %s\n", i, qiao_strerror(rc), err);
		}
	}
	/* Everything accepted must be answered. */
	while (L.inflight > 0 && h_now() < until) {
		pthread_mutex_unlock(&L.mu);
		h_sleep_ms(20);
		pthread_mutex_lock(&L.mu);
	}
	if (!L.killed) /* never all three served: kill now so the checks below say so */
		s_kill_one();
	int64_t took = h_now() - t0;
	printf("  %d answered in %lld ms: %d RESPONSE, %d ERROR (%d PROVIDER_GONE), %d local failures\n", L.done,
	       (long long)took, L.responses, L.errors, L.codes[QIAO__V1__ERROR_CODE__PROVIDER_GONE], L.locals);
	printf("  per instance: at the kill %d %d %d, at the end %d %d %d\n", L.per_at_kill[0], L.per_at_kill[1],
	       L.per_at_kill[2], L.per[0], L.per[1], L.per[2]);
	CHECK(submit_failed == 0);
	CHECK(L.inflight == 0);
	CHECK(L.done == TOTAL);                        /* none lost, none hanging */
	CHECK(L.responses + L.errors == TOTAL);        /* all verified answers */
	CHECK(L.locals == 0);                          /* no local timeouts */
	/* What the kill may cost: the requests in flight on the dead instance
	 * (PROVIDER_GONE), never more than the window; the other two
	 * instances take the rest. */
	CHECK(L.errors == L.codes[QIAO__V1__ERROR_CODE__PROVIDER_GONE]);
	CHECK(L.errors <= WINDOW);
	CHECK(L.mismatches == 0);                      /* each answer echoes its own request */
	CHECK(L.unknown_pid == 0);
	CHECK(L.per_at_kill[0] > 0 && L.per_at_kill[1] > 0 && L.per_at_kill[2] > 0);
	CHECK(L.per[0] - L.per_at_kill[0] <= WINDOW);  /* answers already on their way at the kill */
	CHECK(L.per[1] > L.per_at_kill[1] && L.per[2] > L.per_at_kill[2]); /* the others carried on */
	for (int c = 0; c < 32; c++)
		if (L.codes[c] && c != QIAO__V1__ERROR_CODE__PROVIDER_GONE)
			printf("  ERROR %d (%s): %d\n", c, qiao_error_code_name(c), L.codes[c]);
	pthread_mutex_unlock(&L.mu);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("gateway-load") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	h_write_config(h_conf, s_services, s_policy, "  max_inflight_per_member = 1000;\n");
	int64_t t0 = h_now();
	qiao_adapter_t *a = NULL, *b = NULL;
	bool up = h_gw_start() == 0;
	for (int i = 0; up && i < 3; i++)
		if ((up = h_peer_start(&P[i], "load.v1", "echo") == 0))
			s_pid[i] = (long)P[i].pid;
	if (up) {
		a = h_adapter(M_BANK_B, "BANK_B", 2);
		b = h_adapter(M_BANK_A, "BANK_A", 2);
		up = a && b && qiao_adapter_start(a) == 0 && qiao_adapter_start(b) == 0 &&
		     qiao_adapter_wait_connected(a, 10000) == 0 && qiao_adapter_wait_connected(b, 10000) == 0;
	}
	CHECK(up);
	printf("%-28s %5lld ms\n", "start", (long long)(h_now() - t0));
	if (up) {
		int64_t t = h_now();
		test_load(a, b);
		printf("%-28s %5lld ms\n", "load", (long long)(h_now() - t));
		/* Still serving afterwards. */
		struct qiao_call c = h_call(PRV "/load.v1", "after", 5000);
		CHECK(h_call_code(a, &c, 0, NULL, 0, "after the load") == 0);
	} else {
		h_log_show(NULL, 60);
	}
	qiao_adapter_destroy(&a);
	qiao_adapter_destroy(&b);
	if (h_gw_pid > 0) {
		int st = h_gw_stop(10000);
		CHECK(h_exited_0(st));
		if (!h_exited_0(st))
			fprintf(stderr, "  gateway exit status 0x%x\n", st);
	}
	for (int i = 0; i < 3; i++)
		if (P[i].pid > 0)
			CHECK(h_exited_0(h_peer_stop(&P[i], SIGTERM)));
	if (check_fail_) {
		h_log_show("level=error", 40);
		h_log_show("level=warn", 40);
		h_peers_log_show(20);
	}
	printf("total %lld ms\n", (long long)(h_now() - t0));
	h_teardown();
	return check_done();
}
