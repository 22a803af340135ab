/*
 * test_audit_crash.c - kill -9 under load: a consumer keeps 32 requests in
 * flight through the real gateway to an echo provider; the gateway is
 * SIGKILLed at a random moment, restarted on the same store, and killed
 * again, several times.  Afterwards every exchange that the consumer saw
 * answered must be in the audit log (its RESPONSE_DELIVERED entry names
 * the request by in_reply_to, and so does a REQUEST_ACCEPTED entry by
 * message_id), and the log must verify (here and with `qiao audit verify`).
 */
#include "gw_harness.h"
#include "audit_check.h"

#define ROUNDS 4
#define WINDOW 32
#define MAX_ANSWERED 200000

static const char *const s_services = H_ECHO_SERVICES;
static const char *const s_policy = H_ECHO_POLICY(BANK_B);

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	uint64_t answered, errors, locals;
	uint8_t (*ids)[16]; /* request ids of the RESPONSEs seen */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_done(void *arg, struct qiao_result *res)
{
	(void)arg;
	pthread_mutex_lock(&L.mu);
	if (res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		if (L.answered < MAX_ANSWERED)
			memcpy(L.ids[L.answered], res->request_id, 16);
		L.answered++;
	} else if (res->status == 0) {
		L.errors++;
	} else {
		L.locals++;
	}
	L.inflight--;
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
	qiao_result_free(&res);
}

/* Keep WINDOW calls in flight for `ms`. */
static void s_load(qiao_adapter_t *a, int ms)
{
	int64_t until = h_now() + ms;
	static int seq;
	pthread_mutex_lock(&L.mu);
	while (h_now() < until) {
		while (L.inflight >= WINDOW && h_now() < until) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&L.cv, &L.mu, &ts);
		}
		if (h_now() >= until)
			break;
		L.inflight++;
		pthread_mutex_unlock(&L.mu);
		char body[32];
		snprintf(body, sizeof body, "crash-%d", seq++);
		struct qiao_call c = h_call(PRV "/echo.v1", body, 1500);
		int rc = qiao_adapter_call_async(a, &c, on_done, NULL, NULL, 0);
		pthread_mutex_lock(&L.mu);
		if (rc != 0) {
			L.inflight--;
			pthread_mutex_unlock(&L.mu);
			h_sleep_ms(5); /* BUSY while the gateway is down: the SDK queues only so much */
			pthread_mutex_lock(&L.mu);
		}
	}
	pthread_mutex_unlock(&L.mu);
}

static void s_check_log(void)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/store", h_dir);
	struct ac_store a;
	bool open = ac_open(&a, dir);
	uint64_t n = L.answered < MAX_ANSWERED ? L.answered : MAX_ANSWERED, miss_d = n, miss_a = n;
	if (open)
		ac_missing(&a, L.ids, n, &miss_a, &miss_d);
	printf("  %llu answered exchanges: %llu without RESPONSE_DELIVERED, %llu without REQUEST_ACCEPTED\n",
	       (unsigned long long)n, (unsigned long long)miss_d, (unsigned long long)miss_a);
	CHECK(n > 100);
	CHECK(miss_d == 0);
	CHECK(miss_a == 0);
	struct audit_verify_report r;
	if (open) {
		CHECK_RC(audit_log_verify(a.log, a.t, NULL, 1, NULL, NULL, &r));
		CHECK(r.ok);
		printf("  log: %llu entries, %llu signatures and %llu checkpoints verified%s%s\n",
		       (unsigned long long)r.entries, (unsigned long long)r.signatures,
		       (unsigned long long)r.checkpoints, r.ok ? "" : ": ", r.ok ? "" : r.reason);
	}
	ac_close(&a);

	/* and the CLI agrees */
	ac_cli_verify(dir);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	L.ids = calloc(MAX_ANSWERED, 16);
	if (!L.ids || h_setup("audit-crash") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	/* checkpoints often, so that kills also land inside checkpoint commits */
	h_write_config(h_conf, s_services, s_policy, "  max_inflight_per_member = 1000;\n");
	FILE *f = fopen(h_conf, "a");
	if (f) {
		fputs("audit: { checkpoint_entries = 50; checkpoint_ms = 50; };\n", f);
		fclose(f);
	}
	struct h_peer P = {0};
	qiao_adapter_t *a = NULL;
	bool up = h_gw_start() == 0 && h_peer_start(&P, "echo.v1", "echo") == 0;
	if (up) {
		a = h_adapter(M_BANK_B, "BANK_B", 2);
		up = a && qiao_adapter_start(a) == 0 && qiao_adapter_wait_connected(a, 10000) == 0;
	}
	CHECK(up);
	unsigned seed = (unsigned)time(NULL);
	srand(seed);
	printf("seed %u\n", seed);
	if (up) {
		/* the CLI reads the log while the gateway writes it */
		char q_bin[PATH_MAX], cmd[PATH_MAX * 3];
		snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN"));
		pid_t reader = fork();
		if (reader == 0) {
			h_sleep_ms(100);
			for (int i = 0; i < 5; i++) {
				snprintf(cmd, sizeof cmd,
					 "%s audit verify --store %s/store > /dev/null && "
					 "%s audit query --store %s/store --member %s --limit 20 --newest-first > /dev/null",
					 q_bin, h_dir, q_bin, h_dir, BANK_B);
				if (system(cmd) != 0)
					_exit(1);
			}
			_exit(0);
		}
		s_load(a, 1500);
		int st = -1;
		CHECK(reader > 0 && waitpid(reader, &st, 0) == reader);
		CHECK(h_exited_0(st));
		printf("qiao audit verify and query ran 5 times while the gateway was writing: %s\n",
		       h_exited_0(st) ? "all OK" : "FAILED");
	}
	for (int round = 0; up && round < ROUNDS; round++) {
		int ms = 300 + rand() % 700;
		s_load(a, ms); /* the gateway dies while this load is in flight */
		kill(h_gw_pid, SIGKILL);
		int st = h_wait_exit(h_gw_pid, 5000);
		CHECK(st >= 0 && WIFSIGNALED(st));
		pthread_mutex_lock(&L.mu);
		printf("round %d: killed after %d ms under load; %llu answered so far\n", round, ms,
		       (unsigned long long)L.answered);
		pthread_mutex_unlock(&L.mu);
		h_gw_pid = 0;
		/* restart on the same store: it must open, recover and serve */
		up = h_gw_start() == 0;
		CHECK(up);
		if (up)
			up = qiao_adapter_wait_connected(a, 10000) == 0;
		CHECK(up);
		/* and the provider is back too, before the next load */
		bool served = false;
		for (int64_t t = h_now() + 10000; up && !served && h_now() < t;) {
			struct qiao_call c = h_call(PRV "/echo.v1", "ping", 1000);
			struct qiao_result *r = NULL;
			served = qiao_adapter_call(a, &c, &r) == 0 && r->kind == QIAO_RESULT_RESPONSE;
			qiao_result_free(&r);
			if (!served)
				h_sleep_ms(50);
		}
		CHECK(served);
		/* calls in flight at the kill end at their deadline: let them */
		int64_t t = h_now() + 6000;
		pthread_mutex_lock(&L.mu);
		while (L.inflight > 0 && h_now() < t) {
			pthread_mutex_unlock(&L.mu);
			h_sleep_ms(20);
			pthread_mutex_lock(&L.mu);
		}
		pthread_mutex_unlock(&L.mu);
	}
	if (up)
		s_load(a, 300);
	/* everything outstanding ends (answer or local timeout) */
	int64_t until = h_now() + 10000;
	pthread_mutex_lock(&L.mu);
	while (L.inflight > 0 && h_now() < until) {
		pthread_mutex_unlock(&L.mu);
		h_sleep_ms(20);
		pthread_mutex_lock(&L.mu);
	}
	CHECK(L.inflight == 0);
	printf("%llu RESPONSE, %llu ERROR, %llu without an answer (gateway killed)\n", (unsigned long long)L.answered,
	       (unsigned long long)L.errors, (unsigned long long)L.locals);
	pthread_mutex_unlock(&L.mu);
	qiao_adapter_destroy(&a);
	if (h_gw_pid > 0)
		CHECK(h_exited_0(h_gw_stop(10000)));
	if (P.pid > 0)
		h_peer_stop(&P, SIGTERM);
	s_check_log();
	h_teardown();
	free(L.ids);
	return check_done();
}
