/*
 * conn_bench - peak RSS of the gateway with 1,000 connected adapters
 * (target: at most 64 MiB).
 *
 *   build/bench/conn_bench [N]        (N adapters, default 1000)
 *
 * Starts the real qiao-gateway with production limits (every default of
 * ops/qiao-gateway.conf: heartbeats, queue_hwm, max_body) and N + 3
 * members allowlisted, each with its own CURVE and Ed25519 keys; a gw_peer
 * provider (its own process) offers echo.v1.  The baseline is the
 * gateway's VmRSS with the provider and one adapter that has done one
 * exchange; then N adapters (raw DEALER sockets in this process, CURVE on,
 * speaking the protocol as the SDK does: READY, WELCOME, heartbeats, one
 * signed REQUEST each, its RESPONSE verified) connect at once.  Prints the
 * gateway's VmRSS and VmHWM (/proc/PID/status) with all connected and
 * after they idled for three heartbeat intervals, and the cost per
 * adapter.  Exit 0 when every adapter was welcomed and answered, 1
 * otherwise (the RSS target is reported, not enforced).
 */
#include "gw_many.h"

#define AGE 300 /* round trips per connection before the last measurement */

static void s_mem(const char *what, long base_kib)
{
	long rss = gm_proc_kib(h_gw_pid, "VmRSS"), hwm = gm_proc_kib(h_gw_pid, "VmHWM");
	printf("%-34s VmRSS %6.1f MiB (anon %6.1f, file %5.1f)  VmHWM %6.1f MiB", what, rss / 1024.0,
	       gm_proc_kib(h_gw_pid, "RssAnon") / 1024.0, gm_proc_kib(h_gw_pid, "RssFile") / 1024.0, hwm / 1024.0);
	if (base_kib > 0)
		printf("  (+%.1f MiB)", (rss - base_kib) / 1024.0);
	printf("  fds %d\n", gm_proc_fds(h_gw_pid));
}

/* The largest mappings of the gateway by Rss (/proc/PID/smaps): which heap
 * (the main one, a thread's malloc arena, libzmq) holds the memory. */
static void s_smaps(int top)
{
	char path[64], line[512], name[256] = "";
	snprintf(path, sizeof path, "/proc/%ld/smaps", (long)h_gw_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	struct { long rss; char name[300]; } best[16] = {{0}};
	if (top > 16)
		top = 16;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		long kb;
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) == 3) {
			const char *p = line;
			for (int k = 0; k < 5 && p; k++)
				p = strchr(p + 1, ' ');
			while (p && *p == ' ')
				p++;
			snprintf(name, sizeof name, "%.*s %s (%lu KiB)", (int)strcspn(p ? p : "", "\n"),
				 p && *p != '\n' ? p : "[anon]", perm, (hi - lo) / 1024);
		} else if (sscanf(line, "Rss: %ld kB", &kb) == 1) {
			for (int i = 0; i < top; i++)
				if (kb > best[i].rss) {
					memmove(&best[i + 1], &best[i], (size_t)(top - 1 - i) * sizeof best[0]);
					best[i].rss = kb;
					snprintf(best[i].name, sizeof best[i].name, "%s", name);
					break;
				}
		}
	}
	fclose(f);
	printf("largest gateway mappings by Rss:\n");
	for (int i = 0; i < top && best[i].rss; i++)
		printf("  %7.1f MiB  %s\n", best[i].rss / 1024.0, best[i].name);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	if (n < 1 || n > 10000) {
		fprintf(stderr, "usage: conn_bench [N]   (1..10000 adapters, default 1000)\n");
		return 2;
	}
	if (!getenv("QIAO_BIN"))
		setenv("QIAO_BIN", QIAO_BIN_DEFAULT, 0);
	long nofile = gm_raise_nofile();
	if (nofile < 2L * n + 100) {
		fprintf(stderr, "conn_bench: RLIMIT_NOFILE is %ld; %d adapters need about %d (ulimit -Hn)\n", nofile, n,
			2 * n + 100);
		return 1;
	}
	if (h_setup("conn-bench") != 0 || gm_make(n) != 0) {
		fprintf(stderr, "conn_bench: set-up failed\n");
		h_teardown();
		return 1;
	}
	/* each DEALER is a ZeroMQ socket (the default limit is 1023) */
	zmq_ctx_set(h_zctx, ZMQ_MAX_SOCKETS, n + 64);
	int rc = 1;
	struct h_peer P;
	struct gm_conn *v = calloc((size_t)n + 1, sizeof *v);
	int hb = 1000; /* the default limits.heartbeat_ms (WELCOME says so) */
	gm_write_config("");
	if (!v || h_gw_start() != 0 || h_peer_start(&P, GM_SERVICE, "echo") != 0) {
		fprintf(stderr, "conn_bench: gateway or provider did not start\n");
		h_log_show(NULL, 30);
		goto out;
	}
	printf("conn_bench: %d adapters, gateway pid %ld, RLIMIT_NOFILE %ld, load:", n, (long)h_gw_pid, nofile);
	fflush(stdout);
	if (system("uptime") != 0)
		printf("\n");
	h_sleep_ms(500);
	s_mem("idle (provider only)", 0);

	/* the baseline: one adapter, one exchange */
	if (gm_open(&v[n], -(M_BANK_A + 1), 100) != 0 || gm_drive(&v[n], 1, true, hb, 10000) != 1) {
		fprintf(stderr, "conn_bench: the baseline adapter got no answer\n");
		goto out;
	}
	h_sleep_ms(300);
	long base = gm_proc_kib(h_gw_pid, "VmRSS");
	s_mem("baseline (provider + 1 adapter)", 0);

	int64_t t0 = h_now();
	for (int i = 0; i < n; i++)
		if (gm_open(&v[i], i, 100) != 0) {
			fprintf(stderr, "conn_bench: adapter %d could not be opened\n", i);
			n = i;
			break;
		}
	/* v[n], the baseline adapter, stays connected (and heartbeating) */
	int done = gm_drive(v, n + 1, true, hb, 120000) - 1;
	int64_t took = h_now() - t0;
	int answers = 0, refusals = 0, busy = 0;
	for (int i = 0; i < n; i++) {
		answers += v[i].answers;
		refusals += v[i].refusals;
		busy += v[i].busy;
	}
	printf("%d adapters connected, welcomed and answered: %d (%d RESPONSEs, %d refusals, %d BUSY retried) "
	       "in %lld ms\n",
	       n, done, answers, refusals, busy, (long long)took);
	long conns = gm_connections();
	printf("gateway connections (admin socket): %ld\n", conns);
	long peak = gm_proc_kib(h_gw_pid, "VmRSS");
	s_mem("all connected, after the exchanges", base);
	gm_idle(v, n + 1, hb, 3 * hb);
	long idle = gm_proc_kib(h_gw_pid, "VmRSS");
	s_mem("all connected, idle 3 heartbeats", base);
	/* A connection some minutes old has cycled its libzmq pipes (their
	 * queues grow in chunks of 256 messages, each direction, and keep a
	 * spare chunk): age every connection by AGE round trips (an unknown
	 * command, answered with a NOTICE: cheap, unaudited), about AGE
	 * heartbeat intervals' worth of traffic. */
	int64_t ta = h_now();
	for (int round = 0; round < AGE / 50; round++) {
		uint8_t cmd[QIAO_CMD_LEN];
		qiao_cmd_make(0x7f, cmd);
		for (int i = 0; i <= n; i++)
			for (int k = 0; k < 50; k++)
				zmq_send(v[i].s, cmd, sizeof cmd, ZMQ_DONTWAIT);
		int64_t until = h_now() + 30000;
		for (int i = 0; i <= n && h_now() < until; i++)
			while (v[i].notices < 50 * (round + 1) && h_now() < until) {
				zmq_pollitem_t it = {v[i].s, 0, ZMQ_POLLIN, 0};
				zmq_poll(&it, 1, 10);
				gm_pump(&v[i], false, hb);
			}
		for (int i = 0; i <= n; i++)
			gm_pump(&v[i], false, hb);
	}
	long notices = 0;
	for (int i = 0; i <= n; i++)
		notices += v[i].notices;
	printf("aged: %ld NOTICE round trips (%d per connection) in %lld ms\n", notices, AGE,
	       (long long)(h_now() - ta));
	long aged = gm_proc_kib(h_gw_pid, "VmRSS");
	s_mem("all connected, aged", base);
	if (aged > peak)
		peak = aged;
	long hwm = gm_proc_kib(h_gw_pid, "VmHWM");
	s_smaps(6);
	if (idle > peak)
		peak = idle;
	printf("\npeak gateway RSS with %d adapters: %.1f MiB (VmHWM %.1f MiB); baseline %.1f MiB; "
	       "per adapter %.1f KiB; target <= 64 MiB: %s\n",
	       n, peak / 1024.0, hwm / 1024.0, base / 1024.0, (double)(peak - base) / n,
	       hwm <= 64 * 1024 ? "met" : "MISSED");
	rc = done == n && conns == n + 2 && notices == (long)AGE * (n + 1) ? 0 : 1;
	for (int i = 0; i <= n; i++)
		gm_close(&v[i]);
	h_peer_stop(&P, SIGTERM);
	h_gw_stop(10000);
out:
	if (rc)
		h_log_show("level=warn", 20);
	free(v);
	gm_free();
	h_teardown();
	return rc;
}
