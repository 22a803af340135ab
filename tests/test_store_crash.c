/*
 * test_store_crash.c - durability when the writer process is SIGKILLed.
 *
 * usage: test_store_crash [iterations [seed]]     (default 200 iterations)
 *
 * Each iteration forks a child that opens the store and streams group
 * commits: key "c" + big-endian counter, payload = counter, length, bytes
 * derived from the counter, FNV-1a checksum.  After each done(rc 0) the child
 * writes the counter to a pipe.  The parent reads these acknowledgements and
 * SIGKILLs the child at a random moment: every tenth time right after fork,
 * every tenth (other) time 0..30 ms after fork (both often while the child
 * opens or even creates the store), otherwise 0..30 ms after the child said
 * it has the store open (so that slow builds, e.g. under ASan, are killed
 * while streaming too).  Then the parent opens the store as a restarted
 * gateway would, and checks that
 *  - every record is intact (counter, length and checksum agree) and the
 *    keys are exactly 0..n-1: a batch commits a prefix of the queue, never a
 *    hole;
 *  - every counter acknowledged as durable is there, byte for byte;
 * and the next child resumes at n.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "qiao_store.h"

#define TABLE "crash"
#define TYPE 7
#define KEYLEN 9
#define MAXPAY 8192
#define FAIL_MARK (UINT64_C(1) << 63)
#define READY_MARK (UINT64_C(1) << 62) /* the child has the store open */
/* The child keeps at most this many operations in flight, so batches form
 * but the queue does not run far ahead of the disk. */
#define IN_FLIGHT 48

static uint64_t s_fnv(const unsigned char *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static void s_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t s_get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void s_key(unsigned char *k, uint64_t c)
{
	k[0] = 'c';
	for (int i = 8; i >= 1; i--, c >>= 8)
		k[i] = (unsigned char)c;
}

/* Mostly small records, every 40th one spills to overflow pages. */
static size_t s_payload(unsigned char *buf, uint64_t c)
{
	size_t len = c % 40 == 39 ? 4500 + (size_t)(c % 1500) : 8 + (size_t)((c * 7919) % 300);
	uint64_t x = c * UINT64_C(0x9E3779B97F4A7C15) + 1;
	s_le(buf, c, 8);
	s_le(buf + 8, len, 4);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[12 + i] = (unsigned char)x;
	}
	s_le(buf + 12 + len, s_fnv(buf, 12 + len), 8);
	return 12 + len + 8;
}

/* Counter, length and checksum agree; with `exact`, every byte is the one
 * written for counter c. */
static int s_payload_ok(const unsigned char *v, size_t vl, uint64_t c, int exact)
{
	unsigned char want[MAXPAY];
	size_t len;
	if (vl < 20)
		return 0;
	len = (size_t)s_get_le(v + 8, 4);
	if (len + 20 != vl || s_get_le(v, 8) != c || s_get_le(v + 12 + len, 8) != s_fnv(v, 12 + len))
		return 0;
	return !exact || (s_payload(want, c) == vl && memcmp(want, v, vl) == 0);
}

static struct qiao_store_opts s_opts(void)
{
	struct qiao_store_opts o = {0};
	/* small start, so the children also grow the map under fire */
	o.initial_map_size = 256 * 1024;
	o.max_map_size = (size_t)1 << 30;
	return o;
}

/* ------------------------------------------------------------------------
 * The child: a writer that never stops on its own.
 */

static int s_ackfd;
static atomic_uint_fast64_t s_acked_upto;

static void s_ack(void *arg, int rc)
{
	uint64_t c = (uint64_t)(uintptr_t)arg;
	if (rc != 0)
		c = FAIL_MARK | (uint32_t)-rc;
	if (write(s_ackfd, &c, 8) != 8)
		_exit(4);
	if (rc != 0)
		_exit(5);
	atomic_store(&s_acked_upto, c + 1);
}

static void s_child(const char *dir, uint64_t next, int fd)
{
	struct qiao_store_opts o = s_opts();
	qiao_store_t *st = NULL;
	qiao_table_t *tb = NULL;
	qiao_gc_t *gc = NULL;
	unsigned char k[KEYLEN], v[MAXPAY];
	uint64_t fail;

	s_ackfd = fd;
	atomic_store(&s_acked_upto, next);
	if (qiao_store_open(&st, dir, &o) || qiao_store_table(st, TABLE, TYPE, &tb) ||
	    qiao_gc_new(st, NULL, &gc)) {
		fprintf(stderr, "child: %s\n", qiao_store_last_error());
		fail = FAIL_MARK | 1;
		if (write(fd, &fail, 8) != 8)
			_exit(6);
		_exit(2);
	}
	fail = READY_MARK;
	if (write(fd, &fail, 8) != 8)
		_exit(6);
	for (uint64_t c = next; c < next + 10000000; c++) {
		size_t vl = s_payload(v, c);
		int rc;
		s_key(k, c);
		while (c - atomic_load(&s_acked_upto) >= IN_FLIGHT)
			usleep(50);
		while ((rc = qiao_gc_put(gc, tb, k, KEYLEN, v, vl, 0, s_ack, (void *)(uintptr_t)c)) ==
		       QIAO_ESTOREBUSY)
			usleep(50);
		if (rc) {
			fail = FAIL_MARK | (uint32_t)-rc;
			if (write(fd, &fail, 8) != 8)
				_exit(6);
			_exit(3);
		}
	}
	_exit(0);
}

/* ------------------------------------------------------------------------
 * The parent: kill, reopen, verify.
 */

struct scan {
	uint64_t n;   /* records seen; must equal the next expected counter */
	uint64_t bad; /* torn, out of place or wrong content */
};

static int s_scan_rec(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	struct scan *s = arg;
	unsigned char want[KEYLEN];
	s_key(want, s->n);
	if (kl != KEYLEN || memcmp(k, want, KEYLEN) != 0 || exp != 0 || !s_payload_ok(v, vl, s->n, 0)) {
		if (s->bad++ < 5)
			fprintf(stderr, "bad record at position %llu (key length %zu, value %zu bytes)\n",
				(unsigned long long)s->n, kl, vl);
	}
	s->n++;
	return 0;
}

static int64_t s_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct acks {
	uint64_t *v;
	size_t n, cap;
	unsigned char part[8];
	size_t plen;
	int failed;
	int ready;
};

static void s_take(struct acks *a, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		a->part[a->plen++] = buf[i];
		if (a->plen == 8) {
			uint64_t c;
			memcpy(&c, a->part, 8);
			a->plen = 0;
			if (c == READY_MARK) {
				a->ready = 1;
				continue;
			}
			if (c & FAIL_MARK) {
				fprintf(stderr, "child reported failure %d (%s)\n", -(int)(uint32_t)c,
					qiao_strerror(-(int)(uint32_t)c));
				a->failed = 1;
				continue;
			}
			if (a->n == a->cap) {
				a->cap = a->cap ? a->cap * 2 : 1024;
				a->v = realloc(a->v, a->cap * sizeof *a->v);
				if (!a->v)
					abort();
			}
			a->v[a->n++] = c;
		}
	}
}

static int s_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
	unsigned seed = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10)
				 : (unsigned)time(NULL) ^ (unsigned)getpid();
	const char *tmp = getenv("TMPDIR");
	char root[512], dir[600];
	struct acks a = {0};
	uint64_t next = 0, total_acks = 0, max_batch_gap = 0;
	unsigned long early = 0;
	int64_t t0 = s_now_us();
	int broke = 0;

	signal(SIGPIPE, SIG_IGN);
	printf("crash test: %lu iterations, seed %u\n", iters, seed);
	snprintf(root, sizeof root, "%s/qiao-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dir, sizeof dir, "%s/store", root);

	for (unsigned long it = 0; it < iters && !broke; it++) {
		int p[2];
		pid_t pid;
		int64_t delay, deadline;
		int armed;
		unsigned char buf[4096];
		struct qiao_store_opts o = s_opts();
		qiao_store_t *st = NULL;
		qiao_table_t *tb = NULL;
		qiao_txn_t *t = NULL;
		struct scan sc = {0};
		uint64_t missing = 0;

		if (pipe(p) != 0) {
			perror("pipe");
			return 1;
		}
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(p[0]);
			s_child(dir, next, p[1]);
		}
		close(p[1]);
		delay = it % 10 == 0 ? 0 : (int64_t)(rand_r(&seed) % 30001);
		a.n = 0;
		a.plen = 0;
		a.ready = 0;
		/* it % 10 == 0 or 1: timed from fork; else from the child's READY
		 * (and should it never come, from a 10 s safety limit) */
		armed = it % 10 < 2;
		deadline = s_now_us() + (armed ? delay : 10 * 1000000);
		for (;;) {
			int64_t left = deadline - s_now_us();
			struct pollfd pf = {p[0], POLLIN, 0};
			ssize_t r;
			if (left <= 0)
				break;
			if (poll(&pf, 1, (int)((left + 999) / 1000)) <= 0)
				continue;
			r = read(p[0], buf, sizeof buf);
			if (r <= 0)
				break;
			s_take(&a, buf, (size_t)r);
			if (!armed && a.ready) {
				armed = 1;
				deadline = s_now_us() + delay;
			}
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		for (;;) { /* acknowledgements still in the pipe */
			ssize_t r = read(p[0], buf, sizeof buf);
			if (r <= 0)
				break;
			s_take(&a, buf, (size_t)r);
		}
		close(p[0]);
		CHECK(a.failed == 0);
		CHECK(a.plen == 0);
		if (a.n == 0)
			early++;
		total_acks += a.n;

		/* restart: open cleanly, every record intact, every ack present */
		CHECK_RC(qiao_store_open(&st, dir, &o));
		if (!st) {
			fprintf(stderr, "iteration %lu: %s\n", it, qiao_store_last_error());
			broke = 1;
			break;
		}
		CHECK_RC(qiao_store_table(st, TABLE, TYPE, &tb));
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		CHECK_RC(qiao_store_iter_range(t, tb, NULL, 0, NULL, 0, s_scan_rec, &sc));
		CHECK(sc.bad == 0);
		CHECK(sc.n >= next);
		for (size_t i = 0; i < a.n; i++) {
			unsigned char k[KEYLEN];
			void *v = NULL;
			size_t vl = 0;
			s_key(k, a.v[i]);
			if (a.v[i] < next || (i > 0 && a.v[i] != a.v[i - 1] + 1) ||
			    qiao_store_get(t, tb, k, KEYLEN, &v, &vl, NULL) != 0 || !s_payload_ok(v, vl, a.v[i], 1))
				missing++;
			free(v);
		}
		CHECK(missing == 0);
		if (a.n && sc.n - (a.v[a.n - 1] + 1) > max_batch_gap)
			max_batch_gap = sc.n - (a.v[a.n - 1] + 1);
		qiao_txn_abort(&t);
		qiao_store_close(&st);
		if (sc.bad || missing || a.failed) {
			fprintf(stderr, "iteration %lu: %llu bad, %llu acknowledged but missing\n", it,
				(unsigned long long)sc.bad, (unsigned long long)missing);
			broke = 1;
		}
		next = sc.n;
	}

	{
		double secs = (double)(s_now_us() - t0) / 1e6;
		printf("%lu kills (%lu before any acknowledgement); %llu records durable, %llu acknowledged; "
		       "at most %llu committed but not yet acknowledged at a kill; %.1f s\n",
		       iters, early, (unsigned long long)next, (unsigned long long)total_acks,
		       (unsigned long long)max_batch_gap, secs);
	}
	free(a.v);
	if (check_fail_ == 0)
		nftw(root, s_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "store kept in %s\n", root);
	return check_done();
}
