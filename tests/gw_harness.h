/*
 * gw_harness.h - what the gateway integration tests share
 * (tests/test_gateway.c, tests/test_gateway_load.c): a temporary
 * directory with the members' key files and a gateway config, the real
 * qiao-gateway started with fork/exec (log to a file the test greps),
 * gw_peer provider processes, SDK adapters in this process, and a raw
 * ZeroMQ DEALER client that sends what the SDK would refuse to send.
 *
 * Every child is started with PR_SET_PDEATHSIG so that none outlives a
 * test that ctest kills at its timeout; h_kill_all() ends them on the
 * test's own failure paths.
 */
#ifndef QIAO_GW_HARNESS_H
#define QIAO_GW_HARNESS_H

#include "check.h"
#include "control.pb-c.h"
#include "qiao_adapter.h"
#include "qiao_envelope.h"
#include "qiao_keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define H_FN static __attribute__((unused))

#define GWM "11150600MB0K24684F/gateway"
#define PRV "12150600MB0A12342K/realestate"  /* the provider (in-process and gw_peer) */
#define BANK_B "91150600MA0C9012X7/bank"     /* the main consumer (SDK) */
#define BANK_A "91150600MA0B56780F/bank"     /* another consumer (raw client) */
#define TAX "11150600MB0D34560K/tax"         /* a consumer without rules */
#define STRANGER "11150600MB0E78900J/market" /* keys the gateway does not know */
#define PERSON "110105198001010016"          /* a valid 居民身份证号码 */

/* The provider's echo service (test.v1.Echo both ways, unconditional) as
 * h_write_config()'s services text, and a policy that lets `consumer` call
 * it. */
#define H_ECHO_SERVICES                                                                   \
	"      { name = \"echo.v1\"; request = \"test.v1.Echo\"; response = \"test.v1.Echo\";\n" \
	"        class = \"unconditional\"; }\n"
#define H_ECHO_POLICY(consumer) \
	"  { consumer = \"" consumer "\"; service = \"" PRV "/echo.v1\"; class = \"unconditional\"; }\n"

/* The configs' gateway section; its arguments: the key file's name (in
 * h_dir), the endpoint. */
#define H_GATEWAY_SECTION_FMT                 \
	"gateway: {\n"                         \
	"  member = \"" GWM "\";\n"            \
	"  key_file = \"%s\";\n"               \
	"  listen = [ \"%s\" ];\n"             \
	"  store = \"store\";\n"               \
	"  admin_socket = \"admin.sock\";\n"   \
	"  verify_threads = 2;\n"              \
	"};\n"

enum { M_GW, M_PRV, M_BANK_B, M_BANK_A, M_TAX, M_STRANGER, M_N };

struct h_member {
	const char *id;
	qiao_keys_t *k;
	char key_path[PATH_MAX];
	char curve_b64[45], sign_b64[45];
};

static struct h_member h_m[M_N] = {
	{.id = GWM}, {.id = PRV}, {.id = BANK_B}, {.id = BANK_A}, {.id = TAX}, {.id = STRANGER},
};

static char h_dir[64];
static char h_conf[PATH_MAX], h_log[PATH_MAX], h_admin[PATH_MAX];
static char h_gw_bin[PATH_MAX], h_peer_bin[PATH_MAX];
static char h_endpoint[64];
static int h_port;
static pid_t h_gw_pid;
static void *h_zctx;

H_FN int64_t h_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(cond, ms)                                                       \
	do {                                                                     \
		int64_t until_ = h_now() + check_ms(ms);                         \
		while (!(cond) && h_now() < until_)                              \
			usleep(5000);                                            \
	} while (0)

H_FN void h_sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* ---- children ------------------------------------------------------------ */

#define H_CHILDREN 64
static pid_t h_children[H_CHILDREN];

static void h_child_add(pid_t p)
{
	for (int i = 0; i < H_CHILDREN; i++)
		if (h_children[i] == 0) {
			h_children[i] = p;
			return;
		}
}

static void h_child_forget(pid_t p)
{
	for (int i = 0; i < H_CHILDREN; i++)
		if (h_children[i] == p)
			h_children[i] = 0;
}

/* SIGKILL and reap every child still running. */
H_FN void h_kill_all(void)
{
	for (int i = 0; i < H_CHILDREN; i++)
		if (h_children[i] > 0) {
			kill(h_children[i], SIGKILL);
			waitpid(h_children[i], NULL, 0);
			h_children[i] = 0;
		}
	h_gw_pid = 0;
}

/* Wait up to ms for `p` to exit: its wait status, or -1 (still running). */
H_FN int h_wait_exit(pid_t p, int ms)
{
	int64_t until = h_now() + check_ms(ms);
	for (;;) {
		int st = 0;
		pid_t r = waitpid(p, &st, WNOHANG);
		if (r == p) {
			h_child_forget(p);
			return st;
		}
		if (r < 0) {
			h_child_forget(p);
			return -2;
		}
		if (h_now() >= until)
			return -1;
		usleep(5000);
	}
}

/* fork + exec argv with stdout to out_fd and stderr to err_fd (-1: the
 * test's own).  The child dies with the test (PR_SET_PDEATHSIG). */
static pid_t h_spawn(char *const argv[], int out_fd, int err_fd)
{
	pid_t parent = getpid();
	pid_t p = fork();
	if (p < 0) {
		perror("fork");
		return -1;
	}
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		if (out_fd >= 0)
			dup2(out_fd, 1);
		if (err_fd >= 0)
			dup2(err_fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	h_child_add(p);
	return p;
}

/* ---- files --------------------------------------------------------------- */

H_FN void h_write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		perror(tmp);
		return;
	}
	fputs(text, f);
	fclose(f);
	if (rename(tmp, path) != 0)
		perror(path);
}

/* The whole file, NUL-terminated (caller frees), or NULL. */
H_FN char *h_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The gateway's log contains `needle`. */
H_FN bool h_log_has(const char *needle)
{
	char *t = h_read_file(h_log);
	bool v = t && strstr(t, needle) != NULL;
	free(t);
	return v;
}

/* Number of occurrences of `needle` in the gateway's log. */
H_FN int h_log_count(const char *needle)
{
	char *t = h_read_file(h_log);
	int n = 0;
	for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(t);
	return n;
}

/* The gateway log's lines containing `needle`, at most `max`, to stderr. */
H_FN void h_log_show(const char *needle, int max)
{
	char *t = h_read_file(h_log);
	if (!t)
		return;
	int n = 0;
	for (char *line = strtok(t, "\n"); line && n < max; line = strtok(NULL, "\n"))
		if (!needle || strstr(line, needle)) {
			fprintf(stderr, "  gw.log: %s\n", line);
			n++;
		}
	free(t);
}

/* The last `max` lines the gw_peer processes wrote on stderr. */
H_FN void h_peers_log_show(int max)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/peer.log", h_dir);
	char *t = h_read_file(path);
	if (!t || !*t) {
		free(t);
		return;
	}
	/* without the SDK's note for each held responder answered after
	 * destroy (the silent and hang modes) */
	for (char *l = strstr(t, "adapter already closed"); l; l = strstr(l, "adapter already closed")) {
		char *b = l;
		while (b > t && b[-1] != '\n')
			b--;
		char *e = strchr(l, '\n');
		e = e ? e + 1 : l + strlen(l);
		memmove(b, e, strlen(e) + 1);
		l = b;
	}
	int lines = 0;
	for (char *p = t; *p; p++)
		lines += *p == '\n';
	int skip = lines > max ? lines - max : 0;
	char *p = t;
	while (skip > 0 && (p = strchr(p, '\n')) != NULL) {
		p++;
		skip--;
	}
	fprintf(stderr, "--- gw_peer stderr (last %d lines) ---\n%s", max, p ? p : "");
	free(t);
}

/* ---- set-up -------------------------------------------------------------- */

H_FN int h_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(s, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

/* Temp dir, keys of every member, paths of the binaries.  0 or -1. */
H_FN int h_setup(const char *name)
{
	if (qiao_crypto_init() != 0)
		return -1;
	snprintf(h_dir, sizeof h_dir, "/tmp/qiao-%s-XXXXXX", name);
	if (!mkdtemp(h_dir)) {
		perror("mkdtemp");
		return -1;
	}
	for (int i = 0; i < M_N; i++) {
		CHECK_RC(qiao_keys_generate(h_m[i].id, &h_m[i].k));
		if (!h_m[i].k)
			return -1;
		const char *slash = strchr(h_m[i].id, '/');
		snprintf(h_m[i].key_path, sizeof h_m[i].key_path, "%s/%s-%d.key", h_dir, slash + 1, i);
		CHECK_RC(qiao_keys_save(h_m[i].k, h_m[i].key_path));
		qiao_b64_32(h_m[i].k->curve_pk, h_m[i].curve_b64);
		qiao_b64_32(h_m[i].k->sign_pk, h_m[i].sign_b64);
	}
	snprintf(h_conf, sizeof h_conf, "%s/gateway.conf", h_dir);
	snprintf(h_log, sizeof h_log, "%s/gw.log", h_dir);
	snprintf(h_admin, sizeof h_admin, "%s/admin.sock", h_dir);
	h_port = h_free_port();
	snprintf(h_endpoint, sizeof h_endpoint, "tcp://127.0.0.1:%d", h_port);
	const char *bin = getenv("QIAO_BIN");
	snprintf(h_gw_bin, sizeof h_gw_bin, "%s/gateway/qiao-gateway", bin ? bin : ".");
	snprintf(h_peer_bin, sizeof h_peer_bin, "%s/tests/gw_peer", bin ? bin : ".");
	if (access(h_gw_bin, X_OK) != 0) {
		fprintf(stderr, "no gateway binary at %s (QIAO_BIN=%s)\n", h_gw_bin, bin ? bin : "unset");
		return -1;
	}
	if (access(h_peer_bin, X_OK) != 0) {
		fprintf(stderr, "no gw_peer binary at %s\n", h_peer_bin);
		return -1;
	}
	h_zctx = zmq_ctx_new();
	return h_port > 0 ? 0 : -1;
}

H_FN void h_teardown(void)
{
	h_kill_all();
	if (h_zctx)
		zmq_ctx_term(h_zctx);
	h_zctx = NULL;
	for (int i = 0; i < M_N; i++)
		qiao_keys_destroy(&h_m[i].k);
	if (h_dir[0] && !getenv("QIAO_TEST_KEEP")) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", h_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", h_dir);
	} else if (h_dir[0]) {
		fprintf(stderr, "kept %s\n", h_dir);
	}
}

/*
 * The gateway config (ops/qiao-gateway.conf documents every key), written
 * to `path`: the provider PRV offers `prv_services` (the inside of its
 * services list), BANK_B, BANK_A and TAX only call, `policy` is the inside
 * of the policy list, `limits` extra lines of the limits group.
 */
H_FN void h_write_config(const char *path, const char *prv_services, const char *policy,
			 const char *limits)
{
	size_t cap = 16384 + strlen(prv_services) + strlen(policy) + strlen(limits);
	char *t = malloc(cap);
	snprintf(t, cap,
		 "# written by the gateway integration test\n"
		 H_GATEWAY_SECTION_FMT
		 "limits: {\n"
		 "  heartbeat_ms = %d;\n"
		 "  heartbeat_liveness = 3;\n"
		 "  max_body = 65536;\n"
		 "  clock_skew_ms = 30000;\n"
		 "%s"
		 "};\n"
		 "members = (\n"
		 "  { id = \"" PRV "\"; name = \"鄂尔多斯市不动产登记中心\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\";\n"
		 "    services = (\n"
		 "%s"
		 "    ); },\n"
		 "  { id = \"" BANK_B "\"; name = \"银行B 鄂尔多斯分行\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; },\n"
		 "  { id = \"" BANK_A "\"; name = \"银行A 鄂尔多斯分行\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; },\n"
		 "  { id = \"" TAX "\"; name = \"鄂尔多斯市税务局\";\n"
		 "    curve_public = \"%s\";\n"
		 "    sign_public = \"%s\"; }\n"
		 ");\n"
		 "policy = (\n"
		 "%s"
		 ");\n",
		 strrchr(h_m[M_GW].key_path, '/') + 1, h_endpoint, check_ms(200), limits, h_m[M_PRV].curve_b64,
		 h_m[M_PRV].sign_b64, prv_services, h_m[M_BANK_B].curve_b64, h_m[M_BANK_B].sign_b64,
		 h_m[M_BANK_A].curve_b64, h_m[M_BANK_A].sign_b64, h_m[M_TAX].curve_b64,
		 h_m[M_TAX].sign_b64, policy);
	h_write_file(path, t);
	free(t);
}

/* ---- the gateway --------------------------------------------------------- */

/* The number after "field:" in /proc/PID/file (status: KiB, io: bytes),
 * or -1 when it cannot be read. */
H_FN long long h_proc_field(pid_t pid, const char *file, const char *field)
{
	char path[96], line[256];
	snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long long v = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtoll(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A TCP socket connected to 127.0.0.1:port, or -1. */
H_FN int h_tcp_connect(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(s);
		s = -1;
	}
	return s;
}

/* A stream socket connected to the Unix socket `path`, or -1. */
H_FN int h_unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof sa.sun_path)
		return -1;
	memcpy(sa.sun_path, path, n + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(s);
		s = -1;
	}
	return s;
}

H_FN bool h_admin_accepts(void)
{
	int s = h_unix_connect(h_admin);
	if (s >= 0)
		close(s);
	return s >= 0;
}

/* Start `qiao-gateway -d -f h_conf`, log appended to h_log; wait up to 10 s
 * for its admin socket.  0, or -1 (the log is shown). */
H_FN int h_gw_start(void)
{
	int fd = open(h_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(h_log);
		return -1;
	}
	char *argv[] = {h_gw_bin, "-d", "-f", h_conf, NULL};
	h_gw_pid = h_spawn(argv, fd, fd);
	close(fd);
	if (h_gw_pid < 0)
		return -1;
	int64_t until = h_now() + check_ms(10000);
	while (h_now() < until) {
		if (h_admin_accepts())
			return 0;
		int st = h_wait_exit(h_gw_pid, 0);
		if (st >= 0) {
			fprintf(stderr, "qiao-gateway exited during start-up (status 0x%x)\n", st);
			h_log_show(NULL, 40);
			h_gw_pid = 0;
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "qiao-gateway: admin socket %s not accepting after 10 s\n", h_admin);
	h_log_show(NULL, 40);
	return -1;
}

/* SIGTERM the gateway and wait up to ms: its wait status, or -1 when it
 * did not exit (then it is SIGKILLed). */
H_FN int h_gw_stop(int ms)
{
	if (h_gw_pid <= 0)
		return -1;
	kill(h_gw_pid, SIGTERM);
	int st = h_wait_exit(h_gw_pid, ms);
	if (st == -1) {
		fprintf(stderr, "qiao-gateway did not exit %d ms after SIGTERM; killing it\n", ms);
		kill(h_gw_pid, SIGKILL);
		h_wait_exit(h_gw_pid, 5000);
	}
	h_gw_pid = 0;
	return st;
}

H_FN bool h_exited_0(int st)
{
	return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Run `argv` to completion (bounded by 20 s) with stdout and stderr
 * captured into out[outlen] (both together); its wait status or -1. */
H_FN int h_run(char *const argv[], char *out, size_t outlen)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/run.out", h_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	pid_t p = h_spawn(argv, fd, fd);
	close(fd);
	if (p < 0)
		return -1;
	int st = h_wait_exit(p, 20000); /* scaled by h_wait_exit */
	if (st == -1) {
		kill(p, SIGKILL);
		h_wait_exit(p, 5000);
	}
	char *t = h_read_file(path);
	snprintf(out, outlen, "%s", t ? t : "");
	free(t);
	return st;
}

/* ---- gw_peer processes --------------------------------------------------- */

struct h_peer {
	pid_t pid;
	int out;          /* read end of its stdout */
	char buf[4096];
	size_t len;
	unsigned got;     /* "got N" lines seen */
	char name[48];
};

/* Read what the peer printed, for up to ms; true once a line starting with
 * `want` has been read (NULL: just drain).  Counts "got" lines. */
H_FN bool h_peer_read(struct h_peer *p, const char *want, int ms)
{
	int64_t until = h_now() + check_ms(ms);
	for (;;) {
		char *nl;
		while ((nl = memchr(p->buf, '\n', p->len)) != NULL) {
			*nl = '\0';
			bool hit = want && strncmp(p->buf, want, strlen(want)) == 0;
			if (strncmp(p->buf, "got ", 4) == 0)
				p->got++;
			size_t used = (size_t)(nl - p->buf) + 1;
			memmove(p->buf, nl + 1, p->len - used);
			p->len -= used;
			if (hit)
				return true;
		}
		int64_t left = until - h_now();
		if (left <= 0 || p->out < 0)
			return false;
		struct pollfd pf = {p->out, POLLIN, 0};
		if (poll(&pf, 1, (int)(left > 50 ? 50 : left)) <= 0)
			continue;
		ssize_t n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
		if (n <= 0) {
			close(p->out);
			p->out = -1;
			return false;
		}
		p->len += (size_t)n;
	}
}

/* Wait up to ms until the peer has reported n requests. */
H_FN bool h_peer_wait_got(struct h_peer *p, unsigned n, int ms)
{
	int64_t until = h_now() + ms;
	while (p->got < n && h_now() < until)
		h_peer_read(p, "got ", (int)(until - h_now()));
	return p->got >= n;
}

/* Start a gw_peer as PRV offering `service` in `mode`; wait up to 10 s
 * for "ready".  0 or -1. */
H_FN int h_peer_start(struct h_peer *p, const char *service, const char *mode)
{
	memset(p, 0, sizeof *p);
	p->out = -1;
	snprintf(p->name, sizeof p->name, "%s/%s", service, mode);
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	char errpath[PATH_MAX + 64];
	snprintf(errpath, sizeof errpath, "%s/peer.log", h_dir);
	int efd = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char *argv[] = {h_peer_bin, h_endpoint, h_m[M_PRV].key_path, h_m[M_GW].curve_b64,
			(char *)service, (char *)mode, NULL};
	p->pid = h_spawn(argv, fds[1], efd);
	close(fds[1]);
	if (efd >= 0)
		close(efd);
	p->out = fds[0];
	if (p->pid < 0)
		return -1;
	if (!h_peer_read(p, "ready", 10000)) {
		fprintf(stderr, "gw_peer %s (pid %ld) not ready within 10 s\n", p->name, (long)p->pid);
		return -1;
	}
	return 0;
}

/* Signal the peer and wait for it (up to 5 s); its wait status. */
H_FN int h_peer_stop(struct h_peer *p, int sig)
{
	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	int st = h_wait_exit(p->pid, 5000);
	if (st == -1) {
		kill(p->pid, SIGKILL);
		st = h_wait_exit(p->pid, 5000);
	}
	p->pid = 0;
	if (p->out >= 0)
		close(p->out);
	p->out = -1;
	return st;
}

/* ---- SDK adapters in this process ---------------------------------------- */

static void h_log_sink(void *arg, enum qiao_log_level lvl, const char *msg)
{
	if (lvl <= QIAO_LOG_WARN || getenv("QIAO_TEST_VERBOSE"))
		fprintf(stderr, "[adapter %s] %d %s\n", (const char *)arg, (int)lvl, msg);
}

/* The harness's adapter options for member m (label: the instance name
 * and the log prefix, kept by the caller). */
H_FN struct qiao_adapter_opts h_adapter_opts(int m, const char *label, uint32_t handler_threads)
{
	return (struct qiao_adapter_opts){
		.endpoint = h_endpoint,
		.key_file = h_m[m].key_path,
		.gateway_curve_public = h_m[M_GW].curve_b64,
		.instance = label,
		.handler_threads = handler_threads,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 300,
		.hello_timeout_ms = (uint32_t)check_ms(1000),
		.drain_ms = 500,
		.log = h_log_sink,
		.log_arg = (void *)label,
		.log_level = getenv("QIAO_TEST_VERBOSE") ? QIAO_LOG_DEBUG : QIAO_LOG_WARN,
	};
}

/* An adapter with options o (not started), or NULL (the error shown). */
H_FN qiao_adapter_t *h_adapter_with(const struct qiao_adapter_opts *o)
{
	qiao_adapter_t *a = NULL;
	char err[300];
	int rc = qiao_adapter_new(o, &a, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "qiao_adapter_new(%s): %s: %s\n", o->instance, qiao_strerror(rc), err);
	return a;
}

/* An adapter for member m (not started), or NULL. */
H_FN qiao_adapter_t *h_adapter(int m, const char *label, uint32_t handler_threads)
{
	struct qiao_adapter_opts o = h_adapter_opts(m, label, handler_threads);
	return h_adapter_with(&o);
}

H_FN struct qiao_call h_call(const char *service, const char *body, uint32_t timeout_ms)
{
	struct qiao_call c = {
		.service = service,
		.user_id = "staff-0042",
		.body_type = "test.v1.Echo",
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.timeout_ms = timeout_ms,
	};
	return c;
}

/* Describe a result on stderr (for failed checks). */
H_FN void h_show_result(const char *what, int rc, const struct qiao_result *r)
{
	if (!r) {
		fprintf(stderr, "  %s: rc %d (%s), no result\n", what, rc, qiao_strerror(rc));
		return;
	}
	fprintf(stderr, "  %s: rc %d (%s) kind %d from %s code %d %s: %s [field %s] [rule %s]\n", what, rc,
		qiao_strerror(rc), (int)r->kind, r->responder ? r->responder : "-", r->error.code,
		r->error.name ? r->error.name : "", r->error.message ? r->error.message : "",
		r->error.field ? r->error.field : "", r->error.missing_rule ? r->error.missing_rule : "");
}

/* A synchronous call; the ErrorCode of a verified ERROR, 0 for a RESPONSE
 * (whose body is copied to body[bodylen] when given), or the negative
 * local status.  `want` only decides whether the result is shown (never
 * when `what` is NULL). */
H_FN int h_call_code(qiao_adapter_t *a, const struct qiao_call *c, int want, char *body, size_t bodylen,
		     const char *what)
{
	struct qiao_result *r = NULL;
	int rc = qiao_adapter_call(a, c, &r);
	int code = rc != 0 ? rc : r->kind == QIAO_RESULT_RESPONSE ? 0 : r->error.code;
	if (body && bodylen) {
		body[0] = '\0';
		if (rc == 0 && r->kind == QIAO_RESULT_RESPONSE)
			snprintf(body, bodylen, "%.*s", (int)r->body_len, (const char *)r->body);
	}
	if (code != want && what)
		h_show_result(what, rc, r);
	qiao_result_free(&r);
	return code;
}

/* ---- the raw client ------------------------------------------------------ */

/* Frames of one message, owned. */
struct h_msg {
	size_t n;
	uint8_t *f[8];
	size_t len[8];
};

H_FN void h_msg_free(struct h_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->f[i]);
	memset(m, 0, sizeof *m);
}

H_FN void h_msg_add(struct h_msg *m, const void *data, size_t len)
{
	if (m->n >= 8)
		return;
	m->f[m->n] = malloc(len ? len : 1);
	if (len)
		memcpy(m->f[m->n], data, len);
	m->len[m->n++] = len;
}

H_FN void h_msg_copy(struct h_msg *dst, const struct h_msg *src)
{
	memset(dst, 0, sizeof *dst);
	for (size_t i = 0; i < src->n; i++)
		h_msg_add(dst, src->f[i], src->len[i]);
}

H_FN int h_msg_cmd(const struct h_msg *m)
{
	return m->n >= 1 && m->len[0] == QIAO_CMD_LEN && memcmp(m->f[0], "QIAO\x01", 5) == 0 ? m->f[0][5] : -1;
}

struct h_raw {
	void *s;
	int m;
	int64_t last_hb;
	Qiao__V1__Welcome *welcome;
};

H_FN int h_raw_send(struct h_raw *r, const struct h_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (zmq_send(r->s, m->len[i] ? m->f[i] : (const void *)"", m->len[i],
			     i + 1 < m->n ? ZMQ_SNDMORE : 0) < 0)
			return -1;
	return 0;
}

H_FN int h_raw_send_ctl(struct h_raw *r, int cmd, const void *body, size_t len, bool with_body)
{
	uint8_t c[QIAO_CMD_LEN];
	qiao_cmd_make((uint8_t)cmd, c);
	struct h_msg m = {0};
	h_msg_add(&m, c, sizeof c);
	if (with_body)
		h_msg_add(&m, body, len);
	int rc = h_raw_send(r, &m);
	h_msg_free(&m);
	return rc;
}

/* Receive the next message that is not a HEARTBEAT or DIRECTORY, for up to
 * ms, sending HEARTBEATs meanwhile so that the gateway keeps the
 * connection.  0 and *out, or QIAO_ETIMEOUT. */
H_FN int h_raw_recv(struct h_raw *r, struct h_msg *out, int ms)
{
	memset(out, 0, sizeof *out);
	int64_t until = h_now() + ms;
	while (h_now() < until) {
		if (h_now() - r->last_hb >= 100) {
			h_raw_send_ctl(r, QIAO_CMD_HEARTBEAT, NULL, 0, false);
			r->last_hb = h_now();
		}
		zmq_pollitem_t it = {r->s, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 50) <= 0)
			continue;
		struct h_msg m = {0};
		int more = 1;
		while (more) {
			zmq_msg_t z;
			zmq_msg_init(&z);
			if (zmq_msg_recv(&z, r->s, 0) < 0) {
				zmq_msg_close(&z);
				break;
			}
			more = zmq_msg_more(&z);
			h_msg_add(&m, zmq_msg_data(&z), zmq_msg_size(&z));
			zmq_msg_close(&z);
		}
		int cmd = h_msg_cmd(&m);
		if (cmd == QIAO_CMD_HEARTBEAT || cmd == QIAO_CMD_DIRECTORY) {
			h_msg_free(&m);
			continue;
		}
		*out = m;
		return 0;
	}
	return QIAO_ETIMEOUT;
}

/* Connect a raw DEALER as member m (CURVE with m's pair and the gateway's
 * key), send READY with no services unless !ready, wait for WELCOME.
 * 0, or -1 (nothing welcomed it). */
H_FN int h_raw_open(struct h_raw *r, int m, bool ready)
{
	memset(r, 0, sizeof *r);
	r->m = m;
	r->s = zmq_socket(h_zctx, ZMQ_DEALER);
	int linger = 0;
	zmq_setsockopt(r->s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(r->s, ZMQ_CURVE_SERVERKEY, h_m[M_GW].k->curve_pk, 32);
	zmq_setsockopt(r->s, ZMQ_CURVE_PUBLICKEY, h_m[m].k->curve_pk, 32);
	zmq_setsockopt(r->s, ZMQ_CURVE_SECRETKEY, h_m[m].k->curve_sk, 32);
	if (zmq_connect(r->s, h_endpoint) != 0) {
		fprintf(stderr, "raw connect %s: %s\n", h_endpoint, zmq_strerror(errno));
		return -1;
	}
	r->last_hb = h_now();
	if (!ready)
		return 0;
	Qiao__V1__Ready rd = QIAO__V1__READY__INIT;
	rd.instance = "raw test client";
	rd.sdk = "test_gateway raw";
	uint8_t buf[256];
	size_t n = qiao__v1__ready__pack(&rd, buf);
	h_raw_send_ctl(r, QIAO_CMD_READY, buf, n, true);
	struct h_msg w;
	if (h_raw_recv(r, &w, check_ms(5000)) != 0) {
		fprintf(stderr, "raw %s: no WELCOME within 5 s\n", h_m[m].id);
		return -1;
	}
	int cmd = h_msg_cmd(&w);
	if (cmd == QIAO_CMD_WELCOME && w.n == 2)
		r->welcome = qiao__v1__welcome__unpack(NULL, w.len[1], w.f[1]);
	h_msg_free(&w);
	if (!r->welcome) {
		fprintf(stderr, "raw %s: expected WELCOME, got command %d\n", h_m[m].id, cmd);
		return -1;
	}
	return 0;
}

H_FN void h_raw_close(struct h_raw *r)
{
	if (r->s)
		zmq_close(r->s);
	r->s = NULL;
	if (r->welcome)
		qiao__v1__welcome__free_unpacked(r->welcome, NULL);
	r->welcome = NULL;
}

/* What the raw sealer puts into a REQUEST; zero fields get sane values. */
struct h_rawreq {
	const char *sender;      /* default: the member's own id */
	const char *service;     /* required */
	int64_t time_ms;         /* default: now */
	int64_t deadline_ms;     /* default: time_ms + 5000 */
	const char *purpose;
	const char *resident_id; /* one RESIDENT_ID subject when set */
	const void *body;
	size_t body_len;
	const uint8_t *sign_sk;  /* default: the member's own key */
	bool bad_signature;      /* flip a bit of the signature */
};

/*
 * Seal a REQUEST by hand (protobuf-c pack + crypto_sign_detached over
 * "qiao.v1.envelope\0" || header), since qiao_envelope_seal refuses the
 * invalid ones the tests need.  Frames into *out, message id into msgid.
 */
H_FN void h_raw_seal(int m, const struct h_rawreq *q, struct h_msg *out, uint8_t msgid[16])
{
	int64_t now = qiao_now_ms();
	uint8_t body_hash[32];
	crypto_hash_sha256(body_hash, q->body, q->body_len);
	randombytes_buf(msgid, 16);
	Qiao__V1__DataSubject subj = QIAO__V1__DATA_SUBJECT__INIT, *sp[1] = {&subj};
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	h.version = 1;
	h.message_id.data = msgid;
	h.message_id.len = 16;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = (char *)(q->sender ? q->sender : h_m[m].id);
	h.user_id = "raw-user-0001";
	h.service = (char *)q->service;
	h.time_ms = q->time_ms ? q->time_ms : now;
	h.deadline_ms = q->deadline_ms ? q->deadline_ms : h.time_ms + 5000;
	h.purpose = (char *)(q->purpose ? q->purpose : "");
	if (q->resident_id) {
		subj.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
		subj.id = (char *)q->resident_id;
		h.subjects = sp;
		h.n_subjects = 1;
	}
	h.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	h.body_hash.data = body_hash;
	h.body_hash.len = 32;
	h.body_type = "test.v1.Echo";
	size_t hlen = qiao__v1__header__get_packed_size(&h);
	uint8_t *signed_bytes = malloc(QIAO_SIG_PREFIX_LEN + hlen);
	memcpy(signed_bytes, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN); /* with its NUL */
	qiao__v1__header__pack(&h, signed_bytes + QIAO_SIG_PREFIX_LEN);
	uint8_t sig[64];
	crypto_sign_detached(sig, NULL, signed_bytes, QIAO_SIG_PREFIX_LEN + hlen,
			     q->sign_sk ? q->sign_sk : h_m[m].k->sign_sk);
	if (q->bad_signature)
		sig[17] ^= 0x40;
	uint8_t cmd[QIAO_CMD_LEN];
	qiao_cmd_make(QIAO_CMD_ENVELOPE, cmd);
	memset(out, 0, sizeof *out);
	h_msg_add(out, cmd, sizeof cmd);
	h_msg_add(out, signed_bytes + QIAO_SIG_PREFIX_LEN, hlen);
	h_msg_add(out, sig, sizeof sig);
	h_msg_add(out, q->body, q->body_len);
	free(signed_bytes);
}

/* What came back to a raw request. */
struct h_answer {
	int cmd;            /* command code of the message received; -1: nothing */
	int kind;           /* Header.kind of an envelope; 0 otherwise */
	int code;           /* ErrorReply.code of an ERROR or NOTICE; 0 otherwise */
	bool verified;      /* envelope: opened, and signed by `sender`'s registered key */
	bool replies;       /* envelope: in_reply_to is the request's message id */
	bool hash_ok;       /* envelope: request_hash = SHA-256 of the request's header frame */
	char sender[QIAO_MEMBER_MAX];
	char recipient[QIAO_MEMBER_MAX];
	char me[QIAO_MEMBER_MAX];  /* the member the raw connection authenticated as */
	char message[1100]; /* ErrorReply.message */
	char field[300];
	char missing_rule[520];
	uint32_t retry_after_ms;
	char body[256];     /* a RESPONSE body (text) */
};

H_FN void h_answer_show(const char *what, const struct h_answer *a)
{
	fprintf(stderr, "  %s: cmd %d kind %d code %d (%s) from %s to %s verified %d replies %d hash %d: %s "
			"[field %s] [rule %s] body '%s'\n",
		what, a->cmd, a->kind, a->code, qiao_error_code_name(a->code), a->sender, a->recipient, a->verified,
		a->replies, a->hash_ok, a->message, a->field, a->missing_rule, a->body);
}

static void h_answer_error(struct h_answer *a, const uint8_t *body, size_t len)
{
	Qiao__V1__ErrorReply *er = qiao__v1__error_reply__unpack(NULL, len, body);
	if (!er) {
		a->code = -1;
		return;
	}
	a->code = (int)er->code;
	snprintf(a->message, sizeof a->message, "%s", er->message ? er->message : "");
	snprintf(a->field, sizeof a->field, "%s", er->field ? er->field : "");
	snprintf(a->missing_rule, sizeof a->missing_rule, "%s", er->missing_rule ? er->missing_rule : "");
	a->retry_after_ms = er->retry_after_ms;
	qiao__v1__error_reply__free_unpacked(er, NULL);
}

/* Wait up to ms for the answer to the request `req` (its frames as sent;
 * NULL: take any message), decode it (qiao_envelope_open) and check its
 * signature with the registered key of its sender (the gateway's, or PRV's
 * for a RESPONSE), in_reply_to and request_hash.  Envelopes answering
 * other requests are skipped. */
H_FN void h_raw_answer(struct h_raw *r, const struct h_msg *req, int ms, struct h_answer *a)
{
	memset(a, 0, sizeof *a);
	a->cmd = -1;
	snprintf(a->me, sizeof a->me, "%s", h_m[r->m].id);
	uint8_t msgid_buf[16], req_hash[32];
	const uint8_t *msgid = NULL;
	if (req && req->n >= 2) {
		Qiao__V1__Header *rh = qiao__v1__header__unpack(NULL, req->len[1], req->f[1]);
		if (rh && rh->message_id.len == 16) {
			memcpy(msgid_buf, rh->message_id.data, 16);
			msgid = msgid_buf;
		}
		if (rh)
			qiao__v1__header__free_unpacked(rh, NULL);
		crypto_hash_sha256(req_hash, req->f[1], req->len[1]);
	}
	int64_t until = h_now() + check_ms(ms);
	for (;;) {
		int64_t left = until - h_now();
		struct h_msg m;
		if (left <= 0 || h_raw_recv(r, &m, (int)left) != 0)
			return;
		a->cmd = h_msg_cmd(&m);
		if (a->cmd == QIAO_CMD_NOTICE) {
			if (m.n == 2)
				h_answer_error(a, m.f[1], m.len[1]);
			else
				a->code = -1;
			h_msg_free(&m);
			return;
		}
		if (a->cmd != QIAO_CMD_ENVELOPE) {
			h_msg_free(&m);
			return;
		}
		struct qiao_frame f[8];
		for (size_t i = 0; i < m.n; i++)
			f[i] = (struct qiao_frame){m.f[i], m.len[i]};
		qiao_envelope_t *e = NULL;
		char why[300];
		struct qiao_wire_limits lim;
		qiao_wire_limits_default(&lim);
		int rc = qiao_envelope_open(f, m.n, &lim, &e, why, sizeof why);
		h_msg_free(&m);
		if (rc != 0) {
			fprintf(stderr, "  raw: an envelope that does not open: %s: %s\n", qiao_strerror(rc), why);
			a->kind = -1;
			return;
		}
		const Qiao__V1__Header *h = e->hdr;
		a->replies = msgid && h->in_reply_to.len == 16 && memcmp(h->in_reply_to.data, msgid, 16) == 0;
		if (msgid && !a->replies) {
			qiao_envelope_destroy(&e);
			continue; /* an answer to something else */
		}
		a->kind = (int)h->kind;
		a->hash_ok = msgid && h->request_hash.len == 32 && memcmp(h->request_hash.data, req_hash, 32) == 0;
		snprintf(a->sender, sizeof a->sender, "%s", h->sender);
		snprintf(a->recipient, sizeof a->recipient, "%s", h->recipient);
		for (int i = 0; i < M_N; i++)
			if (strcmp(h->sender, h_m[i].id) == 0)
				a->verified = qiao_envelope_verify(e, h_m[i].k->sign_pk) == 0;
		if (h->kind == QIAO__V1__MESSAGE_KIND__ERROR)
			h_answer_error(a, e->body, e->body_len);
		else
			snprintf(a->body, sizeof a->body, "%.*s", (int)(e->body_len < 255 ? e->body_len : 255),
				 e->body ? (const char *)e->body : "");
		qiao_envelope_destroy(&e);
		return;
	}
}

/* True when `a` is an ERROR with `code`, signed by the gateway, answering
 * the request (by id and hash) and addressed to the member the connection
 * authenticated as; shows it otherwise. */
H_FN bool h_is_gw_error(const struct h_answer *a, int code, const char *what)
{
	bool ok = a->cmd == QIAO_CMD_ENVELOPE && a->kind == QIAO__V1__MESSAGE_KIND__ERROR && a->code == code &&
		  a->verified && a->replies && a->hash_ok && strcmp(a->sender, GWM) == 0 &&
		  strcmp(a->recipient, a->me) == 0;
	if (!ok) {
		fprintf(stderr, "  %s: want ERROR %d (%s) signed by the gateway\n", what, code,
			qiao_error_code_name(code));
		h_answer_show(what, a);
	}
	return ok;
}

/* Open a raw connection as m, send one sealed request, read its answer. */
H_FN void h_raw_once(int m, const struct h_rawreq *q, struct h_answer *a, struct h_msg *keep)
{
	struct h_raw r;
	memset(a, 0, sizeof *a);
	a->cmd = -1;
	if (keep)
		memset(keep, 0, sizeof *keep);
	if (h_raw_open(&r, m, true) == 0) {
		struct h_msg msg;
		uint8_t id[16];
		h_raw_seal(m, q, &msg, id);
		h_raw_send(&r, &msg);
		(void)id;
		h_raw_answer(&r, &msg, 8000, a);
		if (keep)
			*keep = msg;
		else
			h_msg_free(&msg);
	}
	h_raw_close(&r);
}

#endif
