/*
 * test_max_pending - the gateway at limits.max_pending: with 4 requests
 * held by a slow provider, a fifth request is refused BUSY naming the
 * limit, and the provider's 4 answers still get through (an answer is not
 * held to max_pending: it ends a pending request; refusing it kept the
 * gateway at its limit until every request timed out), after which new
 * requests are served again.  The real gateway, an asynchronous provider
 * adapter and a consumer adapter in this process.
 */
#include "gw_harness.h"

#define LIMIT 4

static const char *const s_services = H_ECHO_SERVICES;
static const char *const s_policy = H_ECHO_POLICY(BANK_B);

/* The provider keeps each responder until released. */
static struct {
	pthread_mutex_t mu;
	struct qiao_responder *held[LIMIT * 2];
	int n;
	bool hold;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .hold = true};

static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	pthread_mutex_lock(&P.mu);
	if (P.hold && P.n < (int)(sizeof P.held / sizeof P.held[0])) {
		P.held[P.n++] = r;
		r = NULL;
	}
	pthread_mutex_unlock(&P.mu);
	if (r)
		qiao_respond(&r, req->body, req->body_len);
}

static int s_held(void)
{
	pthread_mutex_lock(&P.mu);
	int n = P.n;
	pthread_mutex_unlock(&P.mu);
	return n;
}

/* The consumer's completions. */
static struct {
	pthread_mutex_t mu;
	int done, responses, busy, other;
	char busy_msg[300];
} C = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_done(void *arg, struct qiao_result *res)
{
	(void)arg;
	pthread_mutex_lock(&C.mu);
	if (res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		C.responses++;
	} else if (res->status == 0 && res->kind == QIAO_RESULT_ERROR && res->error.code == QIAO__V1__ERROR_CODE__BUSY) {
		C.busy++;
		snprintf(C.busy_msg, sizeof C.busy_msg, "%s", res->error.message ? res->error.message : "");
	} else {
		C.other++;
		h_show_result("a call", res->status, res);
	}
	C.done++;
	pthread_mutex_unlock(&C.mu);
	qiao_result_free(&res);
}

static int s_done(void)
{
	pthread_mutex_lock(&C.mu);
	int n = C.done;
	pthread_mutex_unlock(&C.mu);
	return n;
}

static int s_call(qiao_adapter_t *a, const char *body)
{
	struct qiao_call c = h_call(PRV "/echo.v1", body, (uint32_t)check_ms(20000));
	return qiao_adapter_call_async(a, &c, on_done, NULL, NULL, 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("max-pending") != 0)
		return 1;
	char limits[128];
	snprintf(limits, sizeof limits, "  max_pending = %d;\n  max_inflight_per_member = %d;\n", LIMIT, LIMIT);
	h_write_config(h_conf, s_services, s_policy, limits);
	CHECK(h_gw_start() == 0);
	qiao_adapter_t *prov = h_adapter(M_PRV, "provider", 2);
	CHECK(prov && qiao_adapter_offer(prov, "echo.v1", "test.v1.Echo", on_echo, NULL) == 0 &&
	      qiao_adapter_start(prov) == 0 && qiao_adapter_wait_connected(prov, check_ms(10000)) == 0);
	qiao_adapter_t *a = h_adapter(M_BANK_B, "consumer", 1);
	CHECK(a && qiao_adapter_start(a) == 0 && qiao_adapter_wait_connected(a, check_ms(10000)) == 0);
	h_sleep_ms(300); /* the provider's READY */

	/* 1. LIMIT requests reach the provider and are held there */
	for (int i = 0; i < LIMIT; i++) {
		char body[16];
		snprintf(body, sizeof body, "held-%d", i);
		CHECK(s_call(a, body) == 0);
	}
	int64_t until = h_now() + check_ms(10000);
	while (s_held() < LIMIT && h_now() < until)
		h_sleep_ms(20);
	CHECK(s_held() == LIMIT);

	/* 2. one more: BUSY, the limit named */
	CHECK(s_call(a, "over") == 0);
	until = h_now() + check_ms(10000);
	while (s_done() < 1 && h_now() < until)
		h_sleep_ms(20);
	pthread_mutex_lock(&C.mu);
	CHECK(C.busy == 1 && strstr(C.busy_msg, "limit of 4 messages in progress") != NULL);
	printf("at the limit: BUSY \"%s\"\n", C.busy_msg);
	pthread_mutex_unlock(&C.mu);

	/* 3. the held answers are delivered although the gateway is at its limit */
	pthread_mutex_lock(&P.mu);
	P.hold = false;
	int n = P.n;
	P.n = 0;
	struct qiao_responder *held[LIMIT * 2];
	memcpy(held, P.held, sizeof held);
	pthread_mutex_unlock(&P.mu);
	for (int i = 0; i < n; i++) {
		const struct qiao_request *q = qiao_responder_request(held[i]);
		CHECK(qiao_respond(&held[i], q->body, q->body_len) == 0);
	}
	until = h_now() + check_ms(10000);
	while (s_done() < LIMIT + 1 && h_now() < until)
		h_sleep_ms(20);
	pthread_mutex_lock(&C.mu);
	CHECK(C.responses == LIMIT && C.other == 0);
	printf("the %d held answers: %d delivered\n", LIMIT, C.responses);
	pthread_mutex_unlock(&C.mu);

	/* 4. and the gateway serves again */
	struct qiao_call c = h_call(PRV "/echo.v1", "after", (uint32_t)check_ms(10000));
	CHECK(h_call_code(a, &c, 0, NULL, 0, "a call after the limit") == 0);

	qiao_adapter_destroy(&a);
	qiao_adapter_destroy(&prov);
	CHECK(h_exited_0(h_gw_stop(10000)));
	h_teardown();
	return check_done();
}
