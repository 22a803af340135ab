/*
 * exchange_bench - signed, verified, durably audited exchanges through the
 * real gateway (CURVE on, 1 KiB bodies), from one consumer to one provider
 * adapter in this process (4 handler threads), both on this machine.
 *
 *   QIAO_BIN=build/plain exchange_bench [SECONDS]
 *
 * Prints, for 1 request in flight and for 64: exchanges per second and the
 * p50 / p99 latency seen by the consumer.  Uses tests/gw_harness.h to set
 * up keys, config and the gateway process.
 */
#include "gw_harness.h"

static const char *const s_services =
	"      { name = \"bench.v1\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n"
	"        class = \"unconditional\"; }\n";
static const char *const s_policy =
	"  { consumer = \"" BANK_B "\"; service = \"" PRV "/bench.v1\"; class = \"unconditional\"; }\n";

static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	qiao_respond(&r, req->body, req->body_len);
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	uint64_t done, failed;
	double *lat;
	size_t nlat, cap;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct call_ctx {
	struct timespec t0;
};

static double s_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void on_done(void *arg, struct qiao_result *res)
{
	struct call_ctx *c = arg;
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&B.mu);
	if (res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		B.done++;
		if (B.nlat < B.cap)
			B.lat[B.nlat++] = s_ms(&c->t0, &t1);
	} else {
		B.failed++;
	}
	B.inflight--;
	pthread_cond_signal(&B.cv);
	pthread_mutex_unlock(&B.mu);
	free(c);
	qiao_result_free(&res);
}

static int s_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void s_run(qiao_adapter_t *a, int window, int seconds)
{
	static char body[1024];
	memset(body, 'x', sizeof body);
	B.done = B.failed = 0;
	B.nlat = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (s_ms(&t0, &now) > seconds * 1000.0)
			break;
		pthread_mutex_lock(&B.mu);
		while (B.inflight >= window)
			pthread_cond_wait(&B.cv, &B.mu);
		B.inflight++;
		pthread_mutex_unlock(&B.mu);
		struct call_ctx *c = malloc(sizeof *c);
		clock_gettime(CLOCK_MONOTONIC, &c->t0);
		struct qiao_call call = {.service = PRV "/bench.v1", .user_id = "bench", .body_type = "test.v1.Echo",
					 .body = body, .body_len = sizeof body, .timeout_ms = 10000};
		if (qiao_adapter_call_async(a, &call, on_done, c, NULL, 0) != 0) {
			free(c);
			pthread_mutex_lock(&B.mu);
			B.inflight--;
			B.failed++;
			pthread_mutex_unlock(&B.mu);
		}
	}
	pthread_mutex_lock(&B.mu);
	while (B.inflight > 0)
		pthread_cond_wait(&B.cv, &B.mu);
	pthread_mutex_unlock(&B.mu);
	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = s_ms(&t0, &now) / 1000.0;
	qsort(B.lat, B.nlat, sizeof B.lat[0], s_cmp);
	double p50 = B.nlat ? B.lat[B.nlat / 2] : 0, p99 = B.nlat ? B.lat[B.nlat * 99 / 100] : 0;
	printf("%2d in flight: %7.0f exchanges/s (%llu in %.1f s, %llu failed), latency p50 %.2f ms, p99 %.2f ms\n",
	       window, (double)B.done / secs, (unsigned long long)B.done, secs, (unsigned long long)B.failed, p50, p99);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 5;
	setvbuf(stdout, NULL, _IOLBF, 0);
	B.cap = 4000000;
	B.lat = malloc(B.cap * sizeof *B.lat);
	if (!B.lat || h_setup("bench") != 0) {
		fprintf(stderr, "set-up failed (QIAO_BIN must name the build directory)\n");
		return 1;
	}
	h_write_config(h_conf, s_services, s_policy,
		       "  max_inflight_per_member = 10000;\n");
	if (h_gw_start() != 0)
		return 1;
	qiao_adapter_t *prov = h_adapter(M_PRV, "provider", 4);
	qiao_adapter_t *cons = h_adapter(M_BANK_B, "consumer", 2);
	if (!prov || !cons || qiao_adapter_offer(prov, "bench.v1", "test.v1.Echo", on_echo, NULL) != 0 ||
	    qiao_adapter_start(prov) != 0 || qiao_adapter_start(cons) != 0 ||
	    qiao_adapter_wait_connected(prov, 10000) != 0 || qiao_adapter_wait_connected(cons, 10000) != 0) {
		fprintf(stderr, "adapters did not connect\n");
		h_teardown();
		return 1;
	}
	printf("signed, verified, durably audited exchanges, 1 KiB bodies, CURVE, %d s each:\n", seconds);
	s_run(cons, 1, seconds);
	s_run(cons, 64, seconds);
	qiao_adapter_destroy(&cons);
	qiao_adapter_destroy(&prov);
	h_gw_stop(10000);
	h_teardown();
	free(B.lat);
	return 0;
}
