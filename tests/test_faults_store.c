/*
 * test_faults_store.c - fault injection under the audit log (issue 8): the
 * real gateway with an echo provider and an SDK consumer keeping requests in
 * flight while
 *
 *  1. its LMDB store reaches gateway.store_max_map_size (1 MiB here);
 *  2. the filesystem under the store runs out: a 4 MiB tmpfs mounted for
 *     the test when mount(2) is permitted, else RLIMIT_FSIZE on the gateway
 *     (writes past it fail with EFBIG; the gateway ignores SIGXFSZ).
 *
 * Each time: every call ends with an answer (no hang, no local timeout), the
 * ones that cannot be recorded get UNAVAILABLE naming the cause, the gateway
 * keeps running, logs store.write_failing and /healthz answers 503 with the
 * reason; no exchange the consumer saw answered is missing from the audit
 * log, which verifies (in process and with `qiao audit verify`), keeps its
 * earlier entries unchanged, and grows again once space is freed: for (1)
 * without a restart as the replay window's expired records are swept (a
 * 2 s window), then for good with a bigger max map size and a restart; for
 * (2) more disk without a restart (tmpfs remounted bigger, or the limit
 * raised with prlimit), and after a kill -9 while the disk is full the
 * store opens and verifies before the gateway is restarted.  /healthz must
 * stay 503 while the store is full and nothing is written (also past the
 * 5 s it holds a failure).
 */
#define _GNU_SOURCE
#include "gw_harness.h"
#include "audit_check.h"

#include <sys/mount.h>
#include <sys/resource.h>

#define WINDOW 16
#define MAX_ANSWERED 200000
#define ECHO_SVC PRV "/echo.v1"

static const char *const s_services = H_ECHO_SERVICES;
static const char *const s_policy = H_ECHO_POLICY(BANK_B);

static int s_mport;
static char s_store[PATH_MAX];  /* the store directory */
static char s_mnt[PATH_MAX];    /* the tmpfs, when mounted */
static qiao_adapter_t *A;

/* What the consumer saw; ids of the RESPONSEs over the whole test. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	uint64_t answered, unavailable, other_errors, locals;
	uint32_t retry_after_ms;
	char message[300];  /* of the first UNAVAILABLE */
	char other[300];    /* of the first other outcome */
	uint8_t (*ids)[16];
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void s_reset_counts(void)
{
	pthread_mutex_lock(&L.mu);
	L.unavailable = L.other_errors = L.locals = 0;
	L.message[0] = L.other[0] = '\0';
	L.retry_after_ms = 0;
	pthread_mutex_unlock(&L.mu);
}

static void on_done(void *arg, struct qiao_result *res)
{
	(void)arg;
	pthread_mutex_lock(&L.mu);
	if (res->status == 0 && res->kind == QIAO_RESULT_RESPONSE) {
		if (L.answered < MAX_ANSWERED)
			memcpy(L.ids[L.answered], res->request_id, 16);
		L.answered++;
	} else if (res->status == 0 && res->error.code == QIAO__V1__ERROR_CODE__UNAVAILABLE) {
		if (!L.unavailable++) {
			snprintf(L.message, sizeof L.message, "%s", res->error.message);
			L.retry_after_ms = res->error.retry_after_ms;
		}
	} else {
		if (!L.other_errors++ && !L.locals)
			snprintf(L.other, sizeof L.other, "status %d (%s) code %d %s: %s", res->status,
				 qiao_strerror(res->status), res->error.code, res->error.name, res->error.message);
		if (res->status != 0)
			L.locals++;
	}
	L.inflight--;
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
	qiao_result_free(&res);
}

/* Keep WINDOW calls in flight until `stop_unavailable` UNAVAILABLE answers
 * came (0: never) or `ms` passed, then wait for every call to end. */
static void s_load(int ms, uint64_t stop_unavailable)
{
	static int seq;
	int64_t until = h_now() + ms;
	pthread_mutex_lock(&L.mu);
	while (h_now() < until && (!stop_unavailable || L.unavailable < stop_unavailable)) {
		if (L.inflight >= WINDOW) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&L.cv, &L.mu, &ts);
			continue;
		}
		L.inflight++;
		pthread_mutex_unlock(&L.mu);
		/* a longer body makes longer audit entries (its hash, size and
		 * the header only): the header carries the sequence number */
		char body[64];
		snprintf(body, sizeof body, "fault-%d", seq++);
		struct qiao_call c = h_call(ECHO_SVC, body, 5000);
		int rc = qiao_adapter_call_async(A, &c, on_done, NULL, NULL, 0);
		pthread_mutex_lock(&L.mu);
		if (rc != 0) {
			L.inflight--;
			pthread_mutex_unlock(&L.mu);
			h_sleep_ms(5);
			pthread_mutex_lock(&L.mu);
		}
	}
	/* every call ends: answered by the gateway well before its deadline
	 * plus the SDK's grace */
	int64_t t = h_now() + 15000;
	while (L.inflight > 0 && h_now() < t) {
		pthread_mutex_unlock(&L.mu);
		h_sleep_ms(10);
		pthread_mutex_lock(&L.mu);
	}
	CHECK(L.inflight == 0);
	pthread_mutex_unlock(&L.mu);
}

/* n synchronous calls; how many were answered by the provider.  `show`:
 * describe the first failure on stderr. */
static int s_calls_ok(int n, bool show)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&L.mu);
		L.inflight++;
		pthread_mutex_unlock(&L.mu);
		struct qiao_call c = h_call(ECHO_SVC, "after", 5000);
		struct qiao_result *r = NULL;
		int rc = qiao_adapter_call(A, &c, &r);
		if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE)
			ok++;
		else if (show && ok == i)
			h_show_result("call after space was freed", rc, r);
		/* counted as on_done would */
		if (r)
			on_done(NULL, r);
		else {
			pthread_mutex_lock(&L.mu);
			L.inflight--;
			L.locals++;
			pthread_mutex_unlock(&L.mu);
		}
	}
	return ok;
}

/* ---- /healthz -------------------------------------------------------------- */

/* GET path on the metrics port: the status (0: no answer) and the body. */
static int s_http_get(const char *path, char *body, size_t blen)
{
	body[0] = '\0';
	int s = h_tcp_connect(s_mport);
	if (s < 0)
		return 0;
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	if (send(s, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(s);
		return 0;
	}
	char buf[8192];
	size_t len = 0;
	int64_t until = h_now() + 5000;
	while (len + 1 < sizeof buf) {
		struct pollfd pf = {s, POLLIN, 0};
		int64_t left = until - h_now();
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			break;
		ssize_t r = recv(s, buf + len, sizeof buf - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(s);
	buf[len] = '\0';
	char *b = strstr(buf, "\r\n\r\n");
	snprintf(body, blen, "%s", b ? b + 4 : "");
	return strncmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : 0;
}

/* /healthz after the next publication (every 500 ms): its status. */
static int s_health(char *body, size_t blen)
{
	h_sleep_ms(700);
	int st = s_http_get("/healthz", body, blen);
	size_t n = strlen(body);
	if (n && body[n - 1] == '\n')
		body[n - 1] = '\0';
	return st;
}

/* ---- the audit log --------------------------------------------------------- */

/*
 * With the gateway stopped or dead: every answered exchange so far has its
 * REQUEST_ACCEPTED and RESPONSE_DELIVERED entries, the log verifies in
 * process and with the CLI.  *size gets the log's size; the root of the
 * first `keep` entries (when keep > 0) must equal *root, else *root gets
 * the root of the whole log.
 */
static void s_check_log(const char *when, uint64_t *size, uint64_t keep, uint8_t root[AUDIT_HASH])
{
	struct ac_store a;
	if (!ac_open(&a, s_store)) {
		fprintf(stderr, "  %s: the store or its audit log does not open\n", when);
		ac_close(&a);
		return;
	}
	pthread_mutex_lock(&L.mu);
	uint64_t n = L.answered < MAX_ANSWERED ? L.answered : MAX_ANSWERED, miss_d = n, miss_a = n;
	uint8_t(*ids)[16] = malloc(n * 16 + 1);
	CHECK(ids != NULL);
	if (ids)
		memcpy(ids, L.ids, n * 16);
	pthread_mutex_unlock(&L.mu);
	if (ids)
		ac_missing(&a, ids, n, &miss_a, &miss_d);
	free(ids);
	CHECK_RC(audit_log_size(a.log, a.t, size));
	struct audit_verify_report r;
	memset(&r, 0, sizeof r);
	CHECK_RC(audit_log_verify(a.log, a.t, NULL, 1, NULL, NULL, &r));
	CHECK(r.ok);
	uint8_t h[AUDIT_HASH];
	if (keep) {
		CHECK_RC(audit_log_root(a.log, a.t, keep, h));
		CHECK(memcmp(h, root, AUDIT_HASH) == 0);
	} else if (*size) {
		CHECK_RC(audit_log_root(a.log, a.t, *size, root));
	}
	printf("  %s: %llu answered exchanges, %llu without RESPONSE_DELIVERED, %llu without REQUEST_ACCEPTED; "
	       "log of %llu entries verifies: %s%s%s\n",
	       when, (unsigned long long)n, (unsigned long long)miss_d, (unsigned long long)miss_a,
	       (unsigned long long)*size, r.ok ? "yes" : "NO: ", r.ok ? "" : r.reason,
	       keep ? (memcmp(h, root, AUDIT_HASH) == 0 ? "; earlier entries unchanged" : "; EARLIER ENTRIES CHANGED")
		    : "");
	CHECK(miss_d == 0);
	CHECK(miss_a == 0);
	ac_close(&a);
	ac_cli_verify(s_store);
}

/* ---- the config ------------------------------------------------------------ */

/* The harness's config with store = `store` (relative to h_dir), the given
 * max map size (0: none), a metrics section and frequent checkpoints. */
static void s_config(const char *store, size_t max_map)
{
	/* a short replay window, so that the replay table's sweep (every
	 * 10 s) frees space in a full store; the window must be at least
	 * twice clock_skew_ms, and both grow with QIAO_TIME_SCALE: under
	 * memcheck an exchange takes longer than 1 s from the adapter's
	 * timestamp to the gateway's check, and would be STALE_TIME */
	int skew_ms = check_ms(1000) > 99999 ? 99999 : check_ms(1000);
	char extra[128], skew_line[32];
	snprintf(extra, sizeof extra, "  max_inflight_per_member = 1000;\n  replay_window_ms = %d;\n",
		 2 * skew_ms);
	h_write_config(h_conf, s_services, s_policy, extra);
	char *t = h_read_file(h_conf);
	char *skew = strstr(t, "clock_skew_ms = 30000;");
	CHECK(skew != NULL);
	snprintf(skew_line, sizeof skew_line, "clock_skew_ms = %5d;", skew_ms);
	if (skew)
		memcpy(skew, skew_line, strlen("clock_skew_ms = 30000;"));
	const char *at = strstr(t, "  store = \"store\";\n");
	CHECK(at != NULL);
	if (!at) {
		free(t);
		return;
	}
	size_t cap = strlen(t) + 1024;
	char *u = malloc(cap);
	char mm[64] = "";
	if (max_map)
		snprintf(mm, sizeof mm, "  store_max_map_size = %zu;\n", max_map);
	snprintf(u, cap,
		 "%.*s  store = \"%s\";\n%s%s"
		 "audit: { checkpoint_entries = 50; checkpoint_ms = 200; };\n"
		 "metrics: { listen = \"127.0.0.1:%d\"; checkpoint_overdue_ms = 60000; };\n",
		 (int)(at - t), t, store, mm, at + strlen("  store = \"store\";\n"), s_mport);
	h_write_file(h_conf, u);
	free(t);
	free(u);
	snprintf(s_store, sizeof s_store, "%s/%s", h_dir, store);
}

static bool s_start(void)
{
	bool up = h_gw_start() == 0 && qiao_adapter_wait_connected(A, 10000) == 0;
	/* the provider reconnects by itself: wait until it serves */
	bool served = false;
	for (int64_t t = h_now() + 10000; up && !served && h_now() < t;) {
		struct qiao_call c = h_call(ECHO_SVC, "ping", 1000);
		struct qiao_result *r = NULL;
		served = qiao_adapter_call(A, &c, &r) == 0 && r->kind == QIAO_RESULT_RESPONSE;
		if (served) {
			pthread_mutex_lock(&L.mu);
			L.inflight++; /* on_done counts the answer and ends it */
			pthread_mutex_unlock(&L.mu);
			on_done(NULL, r);
		} else {
			qiao_result_free(&r);
			h_sleep_ms(50);
		}
	}
	CHECK(up && served);
	return up && served;
}

/* The time (ms since the epoch, from its UTC timestamp) of the gateway
 * log's last line containing `needle`; 0 when there is none. */
static int64_t s_last_log_ms(const char *needle)
{
	char *t = h_read_file(h_log);
	int64_t at = 0;
	for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p++) {
		const char *line = p;
		while (line > t && line[-1] != '\n')
			line--;
		struct tm tm = {0};
		int ms = 0;
		if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
			   &tm.tm_min, &tm.tm_sec, &ms) == 7) {
			tm.tm_year -= 1900;
			tm.tm_mon -= 1;
			at = (int64_t)timegm(&tm) * 1000 + ms;
		}
	}
	free(t);
	return at;
}

/* After a load into a full store or disk: the calls that could not be
 * recorded got UNAVAILABLE naming `cause`, none hung or got anything else,
 * the gateway runs, says so in its log and on /healthz (`reason`). */
static void s_check_refusals(const char *cause, const char *reason)
{
	pthread_mutex_lock(&L.mu);
	printf("  %llu answered so far; now %llu UNAVAILABLE (\"%s\", retry after %u ms), %llu other, %llu "
	       "without an answer%s%s\n",
	       (unsigned long long)L.answered, (unsigned long long)L.unavailable, L.message, L.retry_after_ms,
	       (unsigned long long)L.other_errors, (unsigned long long)L.locals, L.other[0] ? ": " : "", L.other);
	CHECK(L.unavailable >= 20);
	CHECK(strstr(L.message, cause) != NULL);
	CHECK(strstr(L.message, "cannot record") != NULL);
	CHECK(L.retry_after_ms > 0);
	CHECK(L.other_errors == 0);
	CHECK(L.locals == 0);
	pthread_mutex_unlock(&L.mu);
	CHECK(kill(h_gw_pid, 0) == 0);
	CHECK(h_log_has("store.write_failing"));
	CHECK(h_log_has(reason));
	char body[1024];
	int st = s_health(body, sizeof body);
	/* /healthz stays 503 for 5 s after the last failed commit (the
	 * gateway's STORE_HEALTH_HOLD_MS), published every 500 ms.  Plainly
	 * the check comes well within that; under memcheck (QIAO_TIME_SCALE)
	 * draining the last calls can take longer than the hold, and then the
	 * verdict must be back to ok */
	int64_t age = qiao_now_ms() - s_last_log_ms("event=audit.commit_failed");
	printf("  /healthz: %d %s (%lld ms after the last failed commit)\n", st, body, (long long)age);
	if (age < 5000 - 1000) {
		CHECK(st == 503);
		CHECK(strstr(body, "the last audit commit failed") != NULL);
		CHECK(strstr(body, reason) != NULL);
	} else {
		CHECK(check_slowed());
		if (age > 5000 + 1000)
			CHECK(st == 200 || strstr(body, reason) != NULL); /* ok, or failing again */
	}
}

/* ---- 1. the map reaches its maximum ---------------------------------------- */

static void test_map_full(void)
{
	uint64_t size1 = 0, size2 = 0;
	uint8_t root1[AUDIT_HASH];
	s_config("store", 1048576);
	if (!s_start())
		return;
	s_reset_counts();
	s_load(90000, 50);
	s_check_refusals("the gateway's store is full", "store reached its maximum size");
	/* a checkpoint with nothing new to cover commits an empty transaction
	 * (checkpoint_ms is 200): that must not make the store look healthy
	 * again, also after the 5 s /healthz holds a failure */
	h_sleep_ms(5000);
	char body[1024];
	CHECK(s_health(body, sizeof body) == 503);
	CHECK(strstr(body, "the last audit commit failed: store reached its maximum size") != NULL);
	printf("  /healthz 5 s later, no traffic: %s\n", body);

	/* without a restart: the sweep removes expired replay records (in
	 * the deletion reserve of the full map), and the space they leave
	 * takes new exchanges */
	int ok = 0;
	int64_t t0 = h_now();
	while (!ok && h_now() - t0 < check_ms(25000)) {
		h_sleep_ms(500);
		ok = s_calls_ok(1, false);
	}
	printf("  full store, no restart: an exchange answered again %lld ms later (expired replay records swept)\n",
	       (long long)(h_now() - t0));
	CHECK(ok == 1);

	int st = h_gw_stop(10000);
	CHECK(h_exited_0(st));
	s_check_log("map full", &size1, 0, root1);

	/* recovery: a bigger maximum and a restart */
	s_config("store", 64u << 20);
	if (!s_start())
		return;
	s_reset_counts();
	ok = s_calls_ok(20, true);
	printf("  restarted with store_max_map_size 64 MiB: %d of 20 calls answered\n", ok);
	CHECK(ok == 20);
	st = s_health(body, sizeof body);
	CHECK(st == 200);
	CHECK(h_exited_0(h_gw_stop(10000)));
	s_check_log("after the restart", &size2, size1, root1);
	CHECK(size2 > size1 + 40);
}

/* ---- 2. the disk fills up -------------------------------------------------- */

static int s_tmpfs(const char *opts)
{
	if (mount("tmpfs", s_mnt, "tmpfs", MS_NOSUID | MS_NODEV | (strstr(opts, "remount") ? MS_REMOUNT : 0),
		  strchr(opts, ',') ? strchr(opts, ',') + 1 : opts) != 0) {
		fprintf(stderr, "  mount tmpfs %s (%s): %s\n", s_mnt, opts, strerror(errno));
		return -1;
	}
	return 0;
}

static void s_umount(void)
{
	if (s_mnt[0])
		umount2(s_mnt, MNT_DETACH);
	s_mnt[0] = '\0';
}

/* Bytes in use on the tmpfs. */
static size_t s_tmpfs_used(void)
{
	char cmd[PATH_MAX + 32], out[256];
	snprintf(cmd, sizeof cmd, "df -B1 --output=used %s | tail -1", s_mnt);
	FILE *p = popen(cmd, "r");
	size_t v = 0;
	if (p && fgets(out, sizeof out, p))
		v = (size_t)strtoull(out, NULL, 10);
	if (p)
		pclose(p);
	return v;
}

static size_t s_file_size(const char *name)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/%s", s_store, name);
	struct stat sb;
	return stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
}

/* Limit the gateway's file size (RLIMIT_FSIZE) to `bytes` (0: unlimited). */
static int s_limit(size_t bytes)
{
	struct rlimit r;
	if (prlimit(h_gw_pid, RLIMIT_FSIZE, NULL, &r) != 0)
		return -1;
	r.rlim_cur = bytes ? (rlim_t)bytes : r.rlim_max;
	return prlimit(h_gw_pid, RLIMIT_FSIZE, &r, NULL);
}

/* Make the disk full again about `room` bytes above what is used now. */
static int s_shrink(bool tmpfs, size_t room)
{
	if (tmpfs) {
		char o[64];
		snprintf(o, sizeof o, "remount,size=%zu", (s_tmpfs_used() + room + 4095) / 4096 * 4096);
		return s_tmpfs(o);
	}
	size_t lim = s_file_size("data.mdb") + room;
	/* the gateway's log file (its stderr) is under the same limit: let
	 * it cross the limit a few lines into the failures, so that a write
	 * past it happens on the reactor thread too (the group-commit writer
	 * blocks every signal; the reactor has only the gateway's own
	 * SIG_IGN of SIGXFSZ to keep it alive) */
	struct stat sb;
	if (stat(h_log, &sb) == 0 && (size_t)sb.st_size + 4096 < lim) {
		FILE *f = fopen(h_log, "a");
		static const char pad[] = "# padding written by the test, up to near the file-size limit\n";
		for (size_t n = (size_t)sb.st_size; f && n + 4096 < lim; n += sizeof pad - 1)
			fputs(pad, f);
		if (f)
			fclose(f);
	}
	return s_limit(lim);
}

static int s_grow(bool tmpfs)
{
	return tmpfs ? s_tmpfs("remount,size=256m") : s_limit(0);
}

static void test_disk_full(void)
{
	uint64_t size1 = 0, size2 = 0;
	uint8_t root1[AUDIT_HASH];
	snprintf(s_mnt, sizeof s_mnt, "%s/disk", h_dir);
	CHECK(mkdir(s_mnt, 0700) == 0);
	bool tmpfs = getenv("QIAO_FAULTS_RLIMIT") == NULL && s_tmpfs("size=4m") == 0;
	if (!tmpfs)
		s_mnt[0] = '\0';
	printf("  method: %s\n", tmpfs ? "a 4 MiB tmpfs under the store (mount -t tmpfs)"
				      : "RLIMIT_FSIZE on the gateway (mount not permitted, or QIAO_FAULTS_RLIMIT set)");
	/* a new store: the answers seen so far are in the other one */
	pthread_mutex_lock(&L.mu);
	L.answered = 0;
	pthread_mutex_unlock(&L.mu);
	/* under RLIMIT_FSIZE the log file is limited too: a fresh one */
	if (!tmpfs)
		snprintf(h_log, sizeof h_log, "%s/gw-disk.log", h_dir);
	const char *cause = "the gateway's disk is full";
	const char *reason = tmpfs ? strerror(ENOSPC) : strerror(EFBIG);
	s_config("disk/store", 0);
	if (!s_start())
		return;
	if (!tmpfs)
		CHECK(s_shrink(false, 65536) == 0);

	/* full, then more space without a restart */
	s_reset_counts();
	s_load(90000, 50);
	s_check_refusals(cause, reason);
	CHECK(s_grow(tmpfs) == 0);
	s_reset_counts();
	int ok = s_calls_ok(20, true);
	printf("  more space, same gateway process: %d of 20 calls answered\n", ok);
	CHECK(ok == 20);
	/* healthy again a while after the last failure (not at the first
	 * success: a nearly full disk lets small commits through) */
	char body[1024];
	int st = 0;
	for (int64_t t = h_now() + 10000; h_now() < t && (st = s_health(body, sizeof body)) != 200;)
		;
	printf("  /healthz: %d %s\n", st, body);
	CHECK(st == 200);
	CHECK(h_log_has("store.write_recovered"));

	/* full again, and kill -9 while it is */
	CHECK(s_shrink(tmpfs, 65536) == 0);
	s_reset_counts();
	s_load(90000, 50);
	s_check_refusals(cause, reason);
	kill(h_gw_pid, SIGKILL);
	st = h_wait_exit(h_gw_pid, 5000);
	CHECK(st >= 0 && WIFSIGNALED(st));
	h_gw_pid = 0;
	s_check_log("killed with the disk full", &size1, 0, root1);

	/* space freed: a restart serves and the log goes on */
	if (tmpfs)
		CHECK(s_grow(true) == 0);
	if (!s_start())
		return;
	s_reset_counts();
	ok = s_calls_ok(20, true);
	printf("  restarted with space: %d of 20 calls answered\n", ok);
	CHECK(ok == 20);
	CHECK(h_exited_0(h_gw_stop(10000)));
	s_check_log("after the restart", &size2, size1, root1);
	CHECK(size2 > size1 + 40);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	L.ids = calloc(MAX_ANSWERED, 16);
	if (!L.ids || h_setup("faults-store") != 0) {
		CHECK(!"set-up");
		h_teardown();
		return check_done();
	}
	s_mport = h_free_port();
	/* the key's range, as `qiao-gateway -n` reports it */
	s_config("store", 1000);
	char out[2048];
	char *argv[] = {h_gw_bin, "-n", "-f", h_conf, NULL};
	int rc = h_run(argv, out, sizeof out);
	CHECK(rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
	CHECK(strstr(out, "gateway.store_max_map_size = 1000 is out of range 1048576..1099511627776") != NULL);
	if (!strstr(out, "out of range"))
		fprintf(stderr, "  qiao-gateway -n: %s\n", out);
	s_config("store", 1048576);
	rc = h_run(argv, out, sizeof out);
	CHECK(h_exited_0(rc) && strstr(out, "configuration OK") != NULL);
	struct h_peer P = {0};
	bool up = h_gw_start() == 0 && h_peer_start(&P, "echo.v1", "echo") == 0;
	if (up) {
		A = h_adapter(M_BANK_B, "BANK_B", 2);
		up = A && qiao_adapter_start(A) == 0 && qiao_adapter_wait_connected(A, 10000) == 0;
	}
	CHECK(up);
	if (up)
		CHECK(h_exited_0(h_gw_stop(10000)));
	struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{"map full", test_map_full},
		{"disk full", test_disk_full},
	};
	/* QIAO_FAULTS_RLIMIT (ctest test_faults_store_rlimit): the disk
	 * test by RLIMIT_FSIZE, where the gateway's own SIG_IGN of SIGXFSZ
	 * keeps it alive */
	for (size_t i = getenv("QIAO_FAULTS_RLIMIT") ? 1 : 0; up && i < sizeof tests / sizeof tests[0]; i++) {
		int64_t t = h_now();
		int failed = check_fail_;
		printf("%s:\n", tests[i].name);
		tests[i].fn();
		printf("%-12s %6lld ms%s\n", tests[i].name, (long long)(h_now() - t), check_fail_ > failed ? "  FAILED" : "");
		if (check_fail_ > failed)
			h_log_show(NULL, 40);
		if (h_gw_pid > 0)
			h_gw_stop(10000);
	}
	qiao_adapter_destroy(&A);
	if (P.pid > 0)
		h_peer_stop(&P, SIGTERM);
	h_kill_all();
	s_umount();
	h_teardown();
	free(L.ids);
	return check_done();
}
