/*
 * exchange_bench - signed, verified, durably audited exchanges through the
 * real gateway (CURVE on, 1 KiB bodies), from one consumer to one provider
 * adapter in this process, both on this machine, against two baselines
 * measured in the same run (issue 8):
 *
 *   (a) a plain libzmq relay: DEALER client -> ROUTER/DEALER zmq_proxy in a
 *       process of its own -> DEALER echo worker, the same four frames of
 *       the same sizes, CURVE on both hops (and once without CURVE);
 *   (b) the crypto floor: only the Ed25519 signing and verification work one
 *       exchange costs across all parties (with the SHA-256 of each body
 *       that the signature covers through header.body_hash), on every core.
 *
 *   QIAO_BIN=build/plain exchange_bench [SECONDS] [all|gateway|relay|floor] [WINDOW]
 *
 * (WINDOW: only that many in flight instead of the sweep, for profiling.
 * Environment: QIAO_BENCH_HANDLERS, the provider's handler threads, 2;
 * QIAO_BENCH_STORE, a store directory elsewhere, for diagnosis only.)
 *
 * The gateway is measured with 1 request in flight, closed loop with 16, 64
 * and 256 (the best is reported), and open loop at a paced 2,500 requests/s
 * whose latency runs from each request's scheduled send time (so that a
 * stall is not hidden by the sender waiting: no coordinated omission).
 * Uses tests/gw_harness.h for keys, config and the gateway process; the
 * relay is this program re-executed with --relay.
 */
#include "gw_harness.h"

#include <stdatomic.h>

#define PACED_RATE 2500
#define LAT_CAP 4000000

static const char *const s_services =
	"      { name = \"bench.v1\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n"
	"        class = \"unconditional\"; }\n";
static const char *const s_policy =
	"  { consumer = \"" BANK_B "\"; service = \"" PRV "/bench.v1\"; class = \"unconditional\"; }\n";

static int s_windows[] = {16, 64, 256};
static size_t s_nwin = sizeof s_windows / sizeof s_windows[0];

/* One measured setting. */
struct res {
	double rate, p50, p99;
	uint64_t done, failed;
	int window;
	double entries_per_commit;
	const char *peer;              /* the other process: "gateway" or "relay" */
	double gw_cpu_us, self_cpu_us; /* CPU time per exchange: that process, this one */
	double gw_kib;                 /* bytes the gateway wrote to disk per exchange, KiB (0: unknown) */
};

static int64_t s_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int s_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void s_load(char *out, size_t len)
{
	double l[3] = {0, 0, 0};
	if (getloadavg(l, 3) < 0)
		snprintf(out, len, "?");
	else
		snprintf(out, len, "%.2f %.2f %.2f", l[0], l[1], l[2]);
}

/* CPU seconds used so far by process `pid` (0: this one), from
 * /proc/PID/stat (utime + stime); -1 when unreadable. */
static double s_cpu(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid ? (long)pid : (long)getpid());
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Bytes process `pid` has caused to be written to storage (/proc/PID/io
 * write_bytes); -1 when unreadable. */
static double s_wbytes(pid_t pid)
{
	return (double)h_proc_field(pid, "io", "write_bytes");
}

/* Latencies collected by a run (ms). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	uint64_t done, failed;
	double *lat;
	size_t nlat;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void s_percentiles(struct res *r)
{
	qsort(B.lat, B.nlat, sizeof B.lat[0], s_cmp);
	r->p50 = B.nlat ? B.lat[B.nlat / 2] : 0;
	r->p99 = B.nlat ? B.lat[B.nlat * 99 / 100] : 0;
}

static void s_print(const char *what, const struct res *r)
{
	char l[64];
	s_load(l, sizeof l);
	printf("  %-34s %8.0f /s  p50 %7.2f ms  p99 %7.2f ms  (%llu done, %llu failed", what, r->rate, r->p50, r->p99,
	       (unsigned long long)r->done, (unsigned long long)r->failed);
	if (r->entries_per_commit > 0)
		printf(", %.1f audit entries per commit", r->entries_per_commit);
	printf("; load %s)\n", l);
	if (r->self_cpu_us > 0)
		printf("  %-34s CPU per exchange: %s %.0f us + this process %.0f us = %.0f us%s", "", r->peer, r->gw_cpu_us,
		       r->self_cpu_us, r->gw_cpu_us + r->self_cpu_us, r->gw_kib > 0 ? "" : "\n");
	if (r->gw_kib > 0)
		printf("; gateway disk writes %.1f KiB per exchange\n", r->gw_kib);
}

/* ---- (b) the crypto floor ------------------------------------------------ */

/*
 * What one exchange costs in signatures (read from the code):
 *   consumer   seals the request:    SHA-256(body) + Ed25519 sign   (adapters/qiao_adapter.c s_call_new)
 *   gateway    opens + verifies it:  SHA-256(body) + Ed25519 verify (qiao_envelope_open, s_verify_main)
 *   provider   opens + verifies it:  SHA-256(body) + Ed25519 verify (adapters/adapter_io.c s_on_request)
 *   provider   seals the response:   SHA-256(body) + Ed25519 sign   (qiao_respond)
 *   gateway    opens + verifies it:  SHA-256(body) + Ed25519 verify
 *   consumer   opens + verifies it:  SHA-256(body) + Ed25519 verify (s_on_answer)
 * and the gateway signs a checkpoint every audit.checkpoint_entries (1000)
 * entries, two entries per exchange: one more signature per 500 exchanges.
 * (The time-driven checkpoint, at most one a second, is not per exchange.)
 */
#define CKPT_EVERY 500

static struct {
	const qiao_envelope_t *req, *resp;
	const uint8_t *csk, *cpk, *psk, *ppk, *gsk;
	atomic_int stop;
	atomic_uint_fast64_t units, bad, cpu_ns;
} F;

static void *s_floor_main(void *arg)
{
	(void)arg;
	uint8_t h[32], sig[64];
	static const char note[] = "11150600MB0K24684F/gateway\n123456\nq2Yo3w4mXH8dT9bCwQ8Wb0V5mPqhYd8pXn9kM3lE2rU=\n";
	uint64_t n = 0, bad = 0;
	while (!atomic_load(&F.stop)) {
		const qiao_envelope_t *q = F.req, *r = F.resp;
		/* consumer seals */
		crypto_hash_sha256(h, q->body, q->body_len);
		crypto_sign_detached(sig, NULL, q->signed_bytes, q->signed_len, F.csk);
		/* gateway and provider open and verify */
		for (int k = 0; k < 2; k++) {
			crypto_hash_sha256(h, q->body, q->body_len);
			bad += crypto_sign_verify_detached(q->sig, q->signed_bytes, q->signed_len, F.cpk) != 0;
		}
		/* provider seals the response */
		crypto_hash_sha256(h, r->body, r->body_len);
		crypto_sign_detached(sig, NULL, r->signed_bytes, r->signed_len, F.psk);
		/* gateway and consumer open and verify it */
		for (int k = 0; k < 2; k++) {
			crypto_hash_sha256(h, r->body, r->body_len);
			bad += crypto_sign_verify_detached(r->sig, r->signed_bytes, r->signed_len, F.ppk) != 0;
		}
		if (++n % CKPT_EVERY == 0)
			crypto_sign_detached(sig, NULL, (const uint8_t *)note, sizeof note - 1, F.gsk);
	}
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	atomic_fetch_add(&F.cpu_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	atomic_fetch_add(&F.units, n);
	atomic_fetch_add(&F.bad, bad);
	return NULL;
}

/* Exchanges' worth of signature work per second on `threads` threads;
 * *cpu_us the CPU time one exchange's worth took. */
static double s_floor_run(int threads, double seconds, double *cpu_us)
{
	pthread_t th[64];
	if (threads > 64)
		threads = 64;
	atomic_store(&F.stop, 0);
	atomic_store(&F.units, 0);
	atomic_store(&F.bad, 0);
	atomic_store(&F.cpu_ns, 0);
	int64_t t0 = s_ns();
	int started = 0;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, s_floor_main, NULL) == 0)
			started++;
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&F.stop, 1);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(s_ns() - t0) / 1e9;
	if (atomic_load(&F.bad))
		fprintf(stderr, "crypto floor: %llu verifications failed (bug)\n", (unsigned long long)atomic_load(&F.bad));
	uint64_t units = atomic_load(&F.units);
	*cpu_us = units ? (double)atomic_load(&F.cpu_ns) / 1e3 / (double)units : 0;
	return (double)units / secs;
}

/* CPU seconds of the calling thread. */
static double s_thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The building blocks on one thread, for the record: per second of wall
 * time (what a loaded machine gives), and per second of CPU time. */
static void s_blocks(const qiao_envelope_t *req)
{
	uint8_t sig[64];
	int64_t t0 = s_ns(), n = 0;
	double c0 = s_thread_cpu();
	while (s_ns() - t0 < 500000000LL) {
		crypto_sign_detached(sig, NULL, req->signed_bytes, req->signed_len, F.csk);
		n++;
	}
	double sign = (double)n / ((double)(s_ns() - t0) / 1e9), sign_cpu = (double)n / (s_thread_cpu() - c0);
	t0 = s_ns();
	c0 = s_thread_cpu();
	n = 0;
	while (s_ns() - t0 < 500000000LL) {
		if (crypto_sign_verify_detached(req->sig, req->signed_bytes, req->signed_len, F.cpk) != 0)
			fprintf(stderr, "verify failed\n");
		n++;
	}
	double verify = (double)n / ((double)(s_ns() - t0) / 1e9), verify_cpu = (double)n / (s_thread_cpu() - c0);
	printf("  one thread: Ed25519 sign %.0f/s, verify %.0f/s of wall time; %.0f/s, %.0f/s of CPU time "
	       "(over the %zu signed bytes of a real request header)\n",
	       sign, verify, sign_cpu, verify_cpu, req->signed_len);
}

/* A real request and its response, sealed as the SDK seals them. */
static int s_real_envelopes(qiao_envelope_t **req, qiao_envelope_t **resp, const char *body, size_t blen)
{
	char why[200];
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = (char *)BANK_B;
	h.user_id = "bench";
	h.service = PRV "/bench.v1";
	h.time_ms = qiao_now_ms();
	h.deadline_ms = h.time_ms + 10000;
	h.case_id = "";
	h.purpose = "";
	h.legal_basis = "";
	h.body_type = "test.v1.Echo";
	if (qiao_envelope_seal(&h, body, blen, h_m[M_BANK_B].k->sign_sk, NULL, req, why, sizeof why) != 0) {
		fprintf(stderr, "seal: %s\n", why);
		return -1;
	}
	Qiao__V1__Header rh = QIAO__V1__HEADER__INIT;
	uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
	qiao_envelope_reply_template(*req, QIAO__V1__MESSAGE_KIND__RESPONSE, PRV, &rh, store);
	rh.body_type = "test.v1.Echo";
	if (qiao_envelope_seal(&rh, body, blen, h_m[M_PRV].k->sign_sk, NULL, resp, why, sizeof why) != 0) {
		fprintf(stderr, "seal: %s\n", why);
		return -1;
	}
	return 0;
}

/* ---- (a) the plain libzmq relay ---------------------------------------- */

/* The relay process: ROUTER frontend, DEALER backend, zmq_proxy between;
 * CURVE servers on both when a secret key is given ("-": plain TCP). */
static int s_relay_main(const char *front, const char *back, const char *secret)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	void *ctx = zmq_ctx_new();
	void *fe = zmq_socket(ctx, ZMQ_ROUTER), *be = zmq_socket(ctx, ZMQ_DEALER);
	int one = 1, hwm = 100000;
	void *socks[2] = {fe, be};
	for (int i = 0; i < 2; i++) {
		zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
		zmq_setsockopt(socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
		if (strcmp(secret, "-") != 0) {
			zmq_setsockopt(socks[i], ZMQ_CURVE_SERVER, &one, sizeof one);
			zmq_setsockopt(socks[i], ZMQ_CURVE_SECRETKEY, secret, 40);
		}
	}
	if (zmq_bind(fe, front) != 0 || zmq_bind(be, back) != 0) {
		fprintf(stderr, "relay: bind: %s\n", zmq_strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	zmq_proxy(fe, be, NULL);
	return 0;
}

struct relay {
	pid_t pid;
	char front[64], back[64];
	int curve;
	char server_pub[41], client_pub[41], client_sec[41], worker_pub[41], worker_sec[41];
	void *client, *worker;
	pthread_t wth;
	atomic_int stop;
};

static void s_curve_client(void *s, const struct relay *r, const char *pub, const char *sec)
{
	if (!r->curve)
		return;
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, r->server_pub, 40);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
}

/* The echo worker: every message back as it came. */
static void *s_worker_main(void *arg)
{
	struct relay *r = arg;
	zmq_msg_t m[8];
	while (!atomic_load(&r->stop)) {
		zmq_pollitem_t it = {r->worker, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 100) <= 0)
			continue;
		for (;;) {
			size_t n = 0;
			int more = 1;
			while (more && n < 8) {
				zmq_msg_init(&m[n]);
				if (zmq_msg_recv(&m[n], r->worker, ZMQ_DONTWAIT) < 0) {
					zmq_msg_close(&m[n]);
					break;
				}
				more = zmq_msg_more(&m[n]);
				n++;
			}
			if (n == 0)
				break;
			for (size_t i = 0; i < n; i++)
				if (zmq_msg_send(&m[i], r->worker, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
					zmq_msg_close(&m[i]);
		}
	}
	return NULL;
}

static int s_relay_start(struct relay *r, int curve, const char *self)
{
	memset(r, 0, sizeof *r);
	r->curve = curve;
	char server_sec[41] = "-";
	if (curve && (zmq_curve_keypair(r->server_pub, server_sec) != 0 ||
		      zmq_curve_keypair(r->client_pub, r->client_sec) != 0 ||
		      zmq_curve_keypair(r->worker_pub, r->worker_sec) != 0)) {
		fprintf(stderr, "zmq_curve_keypair: %s\n", zmq_strerror(errno));
		return -1;
	}
	snprintf(r->front, sizeof r->front, "tcp://127.0.0.1:%d", h_free_port());
	snprintf(r->back, sizeof r->back, "tcp://127.0.0.1:%d", h_free_port());
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	char *argv[] = {(char *)self, "--relay", r->front, r->back, server_sec, NULL};
	r->pid = h_spawn(argv, fds[1], -1);
	close(fds[1]);
	char buf[16] = "";
	struct pollfd pf = {fds[0], POLLIN, 0};
	ssize_t got = poll(&pf, 1, 5000) == 1 ? read(fds[0], buf, sizeof buf - 1) : -1;
	close(fds[0]);
	if (r->pid < 0 || got < 5 || strncmp(buf, "ready", 5) != 0) {
		fprintf(stderr, "the relay process did not start\n");
		return -1;
	}
	int hwm = 100000;
	r->client = zmq_socket(h_zctx, ZMQ_DEALER);
	r->worker = zmq_socket(h_zctx, ZMQ_DEALER);
	zmq_setsockopt(r->client, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(r->client, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(r->worker, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(r->worker, ZMQ_RCVHWM, &hwm, sizeof hwm);
	s_curve_client(r->client, r, r->client_pub, r->client_sec);
	s_curve_client(r->worker, r, r->worker_pub, r->worker_sec);
	if (zmq_connect(r->client, r->front) != 0 || zmq_connect(r->worker, r->back) != 0) {
		fprintf(stderr, "relay connect: %s\n", zmq_strerror(errno));
		return -1;
	}
	if (pthread_create(&r->wth, NULL, s_worker_main, r) != 0)
		return -1;
	return 0;
}

static void s_relay_stop(struct relay *r)
{
	atomic_store(&r->stop, 1);
	pthread_join(r->wth, NULL);
	int zero = 0;
	zmq_setsockopt(r->client, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(r->worker, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(r->client);
	zmq_close(r->worker);
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		h_wait_exit(r->pid, 5000);
	}
}

/* Send one request of the same four frames an exchange sends; the body
 * carries its send time. */
static int s_relay_send(struct relay *r, const qiao_envelope_t *req)
{
	struct qiao_frame f[4];
	qiao_envelope_frames(req, f);
	uint8_t body[4096];
	size_t bl = f[3].len < sizeof body ? f[3].len : sizeof body;
	memcpy(body, f[3].data, bl);
	int64_t t = s_ns();
	memcpy(body, &t, sizeof t);
	f[3].data = body;
	for (int i = 0; i < 4; i++)
		if (zmq_send(r->client, f[i].data, f[i].len, (i < 3 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
			return -1;
	return 0;
}

/* Receive every waiting echo; their number. */
static int s_relay_recv(struct relay *r, int wait_ms)
{
	zmq_pollitem_t it = {r->client, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, wait_ms) <= 0)
		return 0;
	int got = 0;
	for (;;) {
		zmq_msg_t m;
		int64_t t = 0;
		int parts = 0, more = 1;
		while (more) {
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, r->client, parts ? 0 : ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				return got;
			}
			more = zmq_msg_more(&m);
			if (parts == 3 && zmq_msg_size(&m) >= sizeof t)
				memcpy(&t, zmq_msg_data(&m), sizeof t);
			zmq_msg_close(&m);
			parts++;
		}
		double ms = (double)(s_ns() - t) / 1e6;
		if (B.nlat < LAT_CAP)
			B.lat[B.nlat++] = ms;
		got++;
	}
}

static int s_relay_warm(struct relay *r, const qiao_envelope_t *req)
{
	int64_t until = h_now() + 10000;
	while (h_now() < until) {
		if (s_relay_send(r, req) == 0 && s_relay_recv(r, 200) > 0) {
			while (s_relay_recv(r, 200) > 0)
				;
			return 0;
		}
	}
	fprintf(stderr, "the relay did not echo within 10 s\n");
	return -1;
}

static struct res s_relay_run(struct relay *r, const qiao_envelope_t *req, int window, int seconds)
{
	struct res out = {.window = window, .peer = "relay"};
	B.nlat = 0;
	double rc0 = s_cpu(r->pid), sc0 = s_cpu(0);
	int inflight = 0;
	uint64_t done = 0, failed = 0;
	int64_t t0 = s_ns(), end = t0 + (int64_t)seconds * 1000000000;
	while (s_ns() < end) {
		while (inflight < window) {
			if (s_relay_send(r, req) != 0) {
				failed++;
				break;
			}
			inflight++;
		}
		int got = s_relay_recv(r, 100);
		inflight -= got;
		done += (uint64_t)got;
	}
	int64_t until = h_now() + 5000;
	while (inflight > 0 && h_now() < until) {
		int got = s_relay_recv(r, 100);
		inflight -= got;
		done += (uint64_t)got;
	}
	failed += (uint64_t)inflight;
	out.rate = (double)done / ((double)(s_ns() - t0) / 1e9);
	if (done && rc0 >= 0 && sc0 >= 0) {
		out.gw_cpu_us = (s_cpu(r->pid) - rc0) * 1e6 / (double)done;
		out.self_cpu_us = (s_cpu(0) - sc0) * 1e6 / (double)done;
	}
	out.done = done;
	out.failed = failed;
	s_percentiles(&out);
	return out;
}

/* ---- the gateway -------------------------------------------------------- */

static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	qiao_respond(&r, req->body, req->body_len);
}

struct call_ctx {
	int64_t t0; /* ns: sent (closed loop) or scheduled (open loop) */
};

static void on_done(void *arg, struct qiao_result *res)
{
	struct call_ctx *c = arg;
	double ms = (double)(s_ns() - c->t0) / 1e6;
	pthread_mutex_lock(&B.mu);
	if (res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		B.done++;
		if (B.nlat < LAT_CAP)
			B.lat[B.nlat++] = ms;
	} else {
		B.failed++;
	}
	B.inflight--;
	pthread_cond_signal(&B.cv);
	pthread_mutex_unlock(&B.mu);
	free(c);
	qiao_result_free(&res);
}

static char s_body[1024];

static int s_call(qiao_adapter_t *a, int64_t t0)
{
	struct call_ctx *c = malloc(sizeof *c);
	if (!c)
		return -1;
	c->t0 = t0;
	struct qiao_call call = {.service = PRV "/bench.v1", .user_id = "bench", .body_type = "test.v1.Echo",
				 .body = s_body, .body_len = sizeof s_body, .timeout_ms = 10000};
	if (qiao_adapter_call_async(a, &call, on_done, c, NULL, 0) != 0) {
		free(c);
		return -1;
	}
	return 0;
}

/* The gateway's counters "commits" and "audit_entries", from its admin
 * socket; 0 when it cannot be read. */
static int s_gw_counts(uint64_t *commits, uint64_t *entries)
{
	*commits = *entries = 0;
	int s = h_unix_connect(h_admin);
	if (s < 0)
		return -1;
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while (buf && n + 1 < cap && (r = read(s, buf + n, cap - n - 1)) > 0)
		n += (size_t)r;
	close(s);
	if (!buf)
		return -1;
	buf[n] = '\0';
	const char *c = strstr(buf, "\"commits\":"), *e = strstr(buf, "\"audit_entries\":");
	if (c)
		*commits = strtoull(c + 10, NULL, 10);
	if (e)
		*entries = strtoull(e + 16, NULL, 10);
	free(buf);
	return c && e ? 0 : -1;
}

static double s_gcpu0, s_scpu0, s_gwb0;

static void s_gw_begin(uint64_t *c0, uint64_t *e0)
{
	B.done = B.failed = 0;
	B.nlat = 0;
	s_gw_counts(c0, e0);
	s_gcpu0 = s_cpu(h_gw_pid);
	s_scpu0 = s_cpu(0);
	s_gwb0 = s_wbytes(h_gw_pid);
}

static void s_gw_end(struct res *r, int64_t t0, uint64_t c0, uint64_t e0)
{
	pthread_mutex_lock(&B.mu);
	int64_t until = h_now() + 15000;
	while (B.inflight > 0 && h_now() < until) {
		pthread_mutex_unlock(&B.mu);
		usleep(1000);
		pthread_mutex_lock(&B.mu);
	}
	pthread_mutex_unlock(&B.mu);
	double secs = (double)(s_ns() - t0) / 1e9;
	uint64_t c1, e1;
	s_gw_counts(&c1, &e1);
	r->done = B.done;
	r->failed = B.failed;
	r->rate = (double)B.done / secs;
	r->entries_per_commit = c1 > c0 ? (double)(e1 - e0) / (double)(c1 - c0) : 0;
	if (r->done && s_gcpu0 >= 0 && s_scpu0 >= 0) {
		r->gw_cpu_us = (s_cpu(h_gw_pid) - s_gcpu0) * 1e6 / (double)r->done;
		r->self_cpu_us = (s_cpu(0) - s_scpu0) * 1e6 / (double)r->done;
	}
	double wb = s_wbytes(h_gw_pid);
	r->gw_kib = r->done && s_gwb0 >= 0 && wb >= 0 ? (wb - s_gwb0) / 1024.0 / (double)r->done : 0;
	s_percentiles(r);
}

/* One call scheduled at `at` (in flight from now on); one that cannot
 * start counts as failed. */
static void s_start(qiao_adapter_t *a, int64_t at)
{
	pthread_mutex_lock(&B.mu);
	B.inflight++;
	pthread_mutex_unlock(&B.mu);
	if (s_call(a, at) != 0) {
		pthread_mutex_lock(&B.mu);
		B.inflight--;
		B.failed++;
		pthread_mutex_unlock(&B.mu);
	}
}

/* Closed loop: `window` calls in flight, a new one as each completes. */
static struct res s_gw_run(qiao_adapter_t *a, int window, int seconds)
{
	struct res r = {.window = window, .peer = "gateway"};
	uint64_t c0, e0;
	s_gw_begin(&c0, &e0);
	int64_t t0 = s_ns(), end = t0 + (int64_t)seconds * 1000000000;
	while (s_ns() < end) {
		pthread_mutex_lock(&B.mu);
		while (B.inflight >= window)
			pthread_cond_wait(&B.cv, &B.mu);
		pthread_mutex_unlock(&B.mu);
		s_start(a, s_ns());
	}
	s_gw_end(&r, t0, c0, e0);
	return r;
}

/* Open loop: a call every 1/rate s on schedule, whatever is in flight;
 * latency from the scheduled time. */
static struct res s_gw_paced(qiao_adapter_t *a, int rate, int seconds)
{
	struct res r = {.window = 0, .peer = "gateway"};
	uint64_t c0, e0;
	s_gw_begin(&c0, &e0);
	int64_t t0 = s_ns(), step = 1000000000 / rate;
	int64_t n = (int64_t)seconds * rate;
	for (int64_t i = 0; i < n; i++) {
		int64_t at = t0 + i * step;
		struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		s_start(a, at);
	}
	s_gw_end(&r, t0, c0, e0);
	return r;
}

static qiao_adapter_t *s_adapter(int m, const char *label, uint32_t handler_threads)
{
	struct qiao_adapter_opts o = h_adapter_opts(m, label, handler_threads);
	o.max_inflight = 4096;
	o.max_pending_calls = 16384;
	o.log_level = QIAO_LOG_WARN;
	return h_adapter_with(&o);
}

/* ---- main ---------------------------------------------------------------- */

static struct res s_best(const struct res *v, size_t n)
{
	struct res b = v[0];
	for (size_t i = 1; i < n; i++)
		if (v[i].rate > b.rate)
			b = v[i];
	return b;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--relay") == 0)
		return s_relay_main(argv[2], argv[3], argv[4]);
	int seconds = argc > 1 ? atoi(argv[1]) : 5;
	const char *what = argc > 2 ? argv[2] : "all";
	int do_gw = !strcmp(what, "all") || !strcmp(what, "gateway");
	int do_relay = !strcmp(what, "all") || !strcmp(what, "relay");
	int do_floor = !strcmp(what, "all") || !strcmp(what, "floor");
	int only = argc > 3 ? atoi(argv[3]) : 0;
	if (seconds < 1 || seconds > 600 || !(do_gw || do_relay || do_floor) || (argc > 3 && (only < 1 || only > 16384))) {
		fprintf(stderr, "usage: exchange_bench [SECONDS 1..600] [all|gateway|relay|floor] [WINDOW 1..16384]\n");
		return 2;
	}
	if (only) {
		s_windows[0] = only;
		s_nwin = 1;
	}
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl <= 0)
		return 1;
	self[sl] = '\0';
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(s_body, 'x', sizeof s_body);
	B.lat = malloc(LAT_CAP * sizeof *B.lat);
	if (!B.lat || h_setup("bench") != 0) {
		fprintf(stderr, "set-up failed (QIAO_BIN must name the build directory)\n");
		return 1;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	qiao_envelope_t *req = NULL, *resp = NULL;
	if (s_real_envelopes(&req, &resp, s_body, sizeof s_body) != 0)
		return 1;
	F.req = req;
	F.resp = resp;
	F.csk = h_m[M_BANK_B].k->sign_sk;
	F.cpk = h_m[M_BANK_B].k->sign_pk;
	F.psk = h_m[M_PRV].k->sign_sk;
	F.ppk = h_m[M_PRV].k->sign_pk;
	F.gsk = h_m[M_GW].k->sign_sk;
	char l0[64];
	s_load(l0, sizeof l0);
	printf("exchange_bench: %d s per setting, 1 KiB bodies, %ld cores, load average %s\n", seconds, ncpu, l0);
	printf("  frames of one message: command %d, header %zu (request) / %zu (response), signature %d, body %zu bytes\n",
	       QIAO_CMD_LEN, req->header_len, resp->header_len, QIAO_SIG_LEN, req->body_len);

	double floor1 = 0, floor2 = 0, fcpu1 = 0, fcpu2 = 0;
	if (do_floor) {
		printf("(b) crypto floor: 2 signs + 4 verifies (+ SHA-256 of each body) per exchange, 1 checkpoint sign per %d, %ld threads\n",
		       CKPT_EVERY, ncpu);
		s_blocks(req);
		floor1 = s_floor_run((int)ncpu, seconds, &fcpu1);
		printf("  %-34s %8.0f exchanges/s  (CPU per exchange %.0f us)\n", "floor (before the gateway runs)", floor1, fcpu1);
	}

	struct res relay1 = {0}, relayw[3] = {{0}}, plain1 = {0}, plainw[3] = {{0}};
	if (do_relay) {
		for (int curve = 1; curve >= 0; curve--) {
			struct relay r;
			printf("(a) libzmq relay: DEALER -> ROUTER/zmq_proxy/DEALER (own process) -> DEALER echo, %s\n",
			       curve ? "CURVE on both hops" : "plain TCP");
			if (s_relay_start(&r, curve, self) != 0 || s_relay_warm(&r, req) != 0) {
				h_teardown();
				return 1;
			}
			struct res *one = curve ? &relay1 : &plain1, *w = curve ? relayw : plainw;
			*one = s_relay_run(&r, req, 1, seconds);
			s_print("1 in flight", one);
			for (size_t i = 0; i < s_nwin; i++) {
				char t[48];
				w[i] = s_relay_run(&r, req, s_windows[i], seconds);
				snprintf(t, sizeof t, "%d in flight", s_windows[i]);
				s_print(t, &w[i]);
			}
			s_relay_stop(&r);
		}
	}

	struct res gw1 = {0}, gww[3] = {{0}}, gwp = {0};
	if (do_gw) {
		h_write_config(h_conf, s_services, s_policy, "  max_inflight_per_member = 10000;\n");
		/* QIAO_BENCH_STORE=DIR puts the gateway's store elsewhere: a
		 * diagnostic (on tmpfs an fsync costs nothing, which shows how
		 * much of a latency is the disk); never the reported figure */
		const char *sd = getenv("QIAO_BENCH_STORE");
		if (sd && *sd) {
			char *t = h_read_file(h_conf), *at = t ? strstr(t, "store = \"store\";") : NULL;
			if (!at || strlen(sd) > 200 || strchr(sd, '"')) {
				fprintf(stderr, "QIAO_BENCH_STORE: cannot use %s\n", sd);
				free(t);
				return 1;
			}
			size_t cap = strlen(t) + 256;
			char *u = malloc(cap);
			snprintf(u, cap, "%.*sstore = \"%s\";%s", (int)(at - t), t, sd, at + strlen("store = \"store\";"));
			h_write_file(h_conf, u);
			free(u);
			free(t);
			printf("NOTE: the gateway's store is in %s (QIAO_BENCH_STORE), not the default disk\n", sd);
		}
		if (h_gw_start() != 0)
			return 1;
		/* handler threads: the provider's (the consumer's callback
		 * threads: half); 2 on this 2-core machine, where 4 cost 15 %
		 * more CPU per exchange in thread switches for nothing */
		const char *ht = getenv("QIAO_BENCH_HANDLERS");
		uint32_t nh = ht && atoi(ht) > 0 && atoi(ht) <= 64 ? (uint32_t)atoi(ht) : 2;
		qiao_adapter_t *prov = s_adapter(M_PRV, "provider", nh);
		qiao_adapter_t *cons = s_adapter(M_BANK_B, "consumer", nh > 1 ? nh / 2 : 1);
		if (!prov || !cons || qiao_adapter_offer(prov, "bench.v1", "test.v1.Echo", on_echo, NULL) != 0 ||
		    qiao_adapter_start(prov) != 0 || qiao_adapter_start(cons) != 0 ||
		    qiao_adapter_wait_connected(prov, 10000) != 0 || qiao_adapter_wait_connected(cons, 10000) != 0) {
			fprintf(stderr, "adapters did not connect\n");
			h_teardown();
			return 1;
		}
		printf("gateway: signed, verified, durably audited exchanges, CURVE (gateway pid %ld)\n", (long)h_gw_pid);
		gw1 = s_gw_run(cons, 1, 1); /* warm-up, not reported */
		gw1 = s_gw_run(cons, 1, seconds);
		s_print("1 in flight", &gw1);
		for (size_t i = 0; i < s_nwin; i++) {
			char t[48];
			gww[i] = s_gw_run(cons, s_windows[i], seconds);
			snprintf(t, sizeof t, "%d in flight", s_windows[i]);
			s_print(t, &gww[i]);
		}
		gwp = s_gw_paced(cons, PACED_RATE, seconds);
		char t[64];
		snprintf(t, sizeof t, "open loop, paced %d/s", PACED_RATE);
		s_print(t, &gwp);
		qiao_adapter_destroy(&cons);
		qiao_adapter_destroy(&prov);
		h_gw_stop(10000);
	}

	if (do_floor) {
		floor2 = s_floor_run((int)ncpu, seconds, &fcpu2);
		printf("  %-34s %8.0f exchanges/s  (CPU per exchange %.0f us)\n", "floor (after)", floor2, fcpu2);
	}

	char l1[64];
	s_load(l1, sizeof l1);
	printf("summary (load average at start %s, at end %s):\n", l0, l1);
	struct res gb = do_gw ? s_best(gww, s_nwin) : (struct res){0};
	struct res rb = do_relay ? s_best(relayw, s_nwin) : (struct res){0};
	struct res pb = do_relay ? s_best(plainw, s_nwin) : (struct res){0};
	double floor = do_floor ? (floor1 + floor2) / 2 : 0;
	if (do_gw)
		printf("  gateway: 1 in flight %.0f/s p50 %.2f ms p99 %.2f ms; best closed loop %.0f/s at %d in flight (p50 %.2f, p99 %.2f ms); paced %d/s: p50 %.2f ms p99 %.2f ms\n",
		       gw1.rate, gw1.p50, gw1.p99, gb.rate, gb.window, gb.p50, gb.p99, PACED_RATE, gwp.p50, gwp.p99);
	if (do_relay)
		printf("  relay:   CURVE 1 in flight %.0f/s p50 %.2f ms; best %.0f/s at %d in flight; plain TCP best %.0f/s at %d\n",
		       relay1.rate, relay1.p50, rb.rate, rb.window, pb.rate, pb.window);
	if (do_floor)
		printf("  floor:   %.0f exchanges/s (mean of %.0f and %.0f)\n", floor, floor1, floor2);
	if (do_gw && do_relay && rb.rate > 0)
		printf("  ratio gateway / CURVE relay: %.3f (best vs best), %.3f at 1 in flight; p50 at 1 in flight %.2f vs %.2f ms\n",
		       gb.rate / rb.rate, relay1.rate > 0 ? gw1.rate / relay1.rate : 0, gw1.p50, relay1.p50);
	if (do_gw && do_floor && floor > 0) {
		double fcpu = (fcpu1 + fcpu2) / 2, gcpu = gb.gw_cpu_us + gb.self_cpu_us;
		printf("  ratio gateway / crypto floor: %.3f (target >= 0.60)\n", gb.rate / floor);
		if (gcpu > 0)
			printf("  CPU time: floor %.0f us per exchange, gateway + adapters %.0f us at the best setting: "
			       "floor / gateway %.3f (the rate ratio on an otherwise idle machine where both are CPU-bound)\n",
			       fcpu, gcpu, fcpu / gcpu);
	}
	if (do_gw)
		printf("  targets: >= 5000/s sustained: %s; p50 <= 1.5 ms at 1 in flight: %s; p99 <= 5 ms at %d/s paced: %s\n",
		       gb.rate >= 5000 ? "met" : "MISSED", gw1.p50 <= 1.5 ? "met" : "MISSED", PACED_RATE,
		       gwp.p99 <= 5.0 && gwp.failed == 0 ? "met" : "MISSED");
	qiao_envelope_destroy(&req);
	qiao_envelope_destroy(&resp);
	h_teardown();
	free(B.lat);
	return 0;
}
