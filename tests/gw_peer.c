/*
 * gw_peer - a provider process for the gateway integration tests
 * (tests/test_gateway.c, tests/test_gateway_load.c), built on
 * libqiao-adapter.
 *
 *   gw_peer ENDPOINT KEYFILE GATEWAY_CURVE_PUBLIC_B64 SERVICE MODE
 *
 * MODE:
 *   echo     answer every request with "<pid>:" followed by its body
 *   silent   never answer: keep the responder (the gateway must answer
 *            TIMEOUT at the request's deadline)
 *   hang     the same; the test SIGKILLs the process with requests in
 *            flight (the gateway must answer PROVIDER_GONE or retry)
 *   slow:MS  sleep MS milliseconds, then answer as echo
 *
 * Environment: GW_PEER_HELLO_FACTOR multiplies hello_timeout_ms (below).
 *
 * Prints "ready" on stdout (flushed) once the gateway has welcomed it, and
 * "got <n>" for every request it receives in the modes other than echo, so
 * that the test knows a request is in flight here.  Exits 0 on SIGTERM or
 * SIGINT (after qiao_adapter_destroy), 1 when it cannot connect.
 */
#include "qiao_adapter.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_ECHO, MODE_SILENT, MODE_HANG, MODE_SLOW };

static enum mode s_mode;
static unsigned s_slow_ms;
static char s_prefix[32];
static size_t s_prefix_len;

/* Responders held in the silent and hang modes, answered (and so freed)
 * after qiao_adapter_destroy(). */
#define HELD_MAX 4096
static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static struct qiao_responder *s_held[HELD_MAX];
static size_t s_n_held;
static unsigned long s_got;

static void s_echo(const struct qiao_request *req, struct qiao_responder **r)
{
	size_t n = s_prefix_len + req->body_len;
	char *buf = malloc(n ? n : 1);
	if (!buf) {
		qiao_respond_error(r, QIAO__V1__ERROR_CODE__INTERNAL, "out of memory", NULL);
		return;
	}
	memcpy(buf, s_prefix, s_prefix_len);
	if (req->body_len)
		memcpy(buf + s_prefix_len, req->body, req->body_len);
	int rc = qiao_respond(r, buf, n);
	if (rc != 0)
		fprintf(stderr, "gw_peer %s: respond: %s\n", s_prefix, qiao_strerror(rc));
	free(buf);
}

static void on_request(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	if (s_mode != MODE_ECHO) {
		pthread_mutex_lock(&s_mu);
		unsigned long n = ++s_got;
		pthread_mutex_unlock(&s_mu);
		printf("got %lu\n", n);
		fflush(stdout);
	}
	switch (s_mode) {
	case MODE_ECHO:
		s_echo(req, &r);
		break;
	case MODE_SLOW: {
		struct timespec ts = {s_slow_ms / 1000, (long)(s_slow_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
		s_echo(req, &r);
		break;
	}
	case MODE_SILENT:
	case MODE_HANG:
		pthread_mutex_lock(&s_mu);
		if (s_n_held < HELD_MAX) {
			s_held[s_n_held++] = r;
			r = NULL;
		}
		pthread_mutex_unlock(&s_mu);
		if (r) /* more held than we can keep: answer rather than leak */
			qiao_respond_error(&r, QIAO__V1__ERROR_CODE__UNAVAILABLE, "too many held", NULL);
		break;
	}
}

/* GW_PEER_HELLO_FACTOR (1..30): hello_timeout_ms, which is also the CURVE
 * handshake timeout, times this.  tests/test_faults_conn.c: 1,000 adapters
 * connecting at once keep a gateway on a small machine from finishing a
 * handshake within 1 s. */
static uint32_t s_hello_factor(void)
{
	const char *f = getenv("GW_PEER_HELLO_FACTOR");
	int v = f ? atoi(f) : 1;
	return v >= 1 && v <= 30 ? (uint32_t)v : 1;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: gw_peer ENDPOINT KEYFILE GATEWAY_CURVE_PUBLIC SERVICE "
				"echo|silent|hang|slow:MS\n");
		return 2;
	}
	const char *mode = argv[5];
	if (strcmp(mode, "echo") == 0) {
		s_mode = MODE_ECHO;
	} else if (strcmp(mode, "silent") == 0) {
		s_mode = MODE_SILENT;
	} else if (strcmp(mode, "hang") == 0) {
		s_mode = MODE_HANG;
	} else if (strncmp(mode, "slow:", 5) == 0 && atoi(mode + 5) > 0) {
		s_mode = MODE_SLOW;
		s_slow_ms = (unsigned)atoi(mode + 5);
	} else {
		fprintf(stderr, "gw_peer: unknown mode %s\n", mode);
		return 2;
	}
	snprintf(s_prefix, sizeof s_prefix, "%ld:", (long)getpid());
	s_prefix_len = strlen(s_prefix);

	/* Block the signals before any thread exists so that every SDK thread
	 * inherits the mask and sigwait() below receives them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	char instance[64];
	snprintf(instance, sizeof instance, "gw_peer %s pid %ld", mode, (long)getpid());
	/* QIAO_TIME_SCALE as in tests/check.h check_ms() (runs under valgrind) */
	const char *ts = getenv("QIAO_TIME_SCALE");
	int scale = ts && atoi(ts) >= 1 && atoi(ts) <= 100 ? atoi(ts) : 1;
	struct qiao_adapter_opts o = {
		.endpoint = argv[1],
		.key_file = argv[2],
		.gateway_curve_public = argv[3],
		.instance = instance,
		.max_inflight = 256,
		.handler_threads = 4,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 300,
		.hello_timeout_ms = 1000 * (uint32_t)scale * s_hello_factor(),
		.drain_ms = 500,
		.log_level = QIAO_LOG_WARN,
	};
	qiao_adapter_t *a = NULL;
	char err[300];
	int rc = qiao_adapter_new(&o, &a, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "gw_peer: %s: %s\n", qiao_strerror(rc), err);
		return 1;
	}
	rc = qiao_adapter_offer(a, argv[4], "test.v1.Echo", on_request, NULL);
	if (rc == 0)
		rc = qiao_adapter_start(a);
	if (rc == 0)
		rc = qiao_adapter_wait_connected(a, 10000 * scale);
	if (rc != 0) {
		fprintf(stderr, "gw_peer: not connected: %s\n", qiao_strerror(rc));
		qiao_adapter_destroy(&a);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	int sig = 0;
	while (sigwait(&sigs, &sig) != 0)
		;
	qiao_adapter_destroy(&a);
	pthread_mutex_lock(&s_mu);
	for (size_t i = 0; i < s_n_held; i++)
		qiao_respond_error(&s_held[i], QIAO__V1__ERROR_CODE__UNAVAILABLE, "shutting down", NULL);
	s_n_held = 0;
	pthread_mutex_unlock(&s_mu);
	return 0;
}
