/*
 * audit_bench - the audit log at scale.
 *
 *   audit_bench DIR N [--keep | --load-only | --reuse]
 *
 * Writes N exchanges (tests/audit_fixture.h: real signed headers, 5 data
 * subjects in rotation, one case per 4 entries) into a fresh store in DIR,
 * then measures, each against its baseline in the same run:
 *   - append: entries/s in 10,000-entry transactions (bulk load), and
 *     durable group commits through the group-commit writer (one entry per
 *     operation, many operations per fsync) against one bare durable LMDB
 *     commit per entry;
 *   - queries by subject (a subject with N/5 entries, the newest 100) and
 *     by case (4 entries), with an inclusion proof to the latest checkpoint
 *     for every entry, median and p99 of 200 runs and the first (cold) run:
 *     proofs sharing their node reads (audit_log_prove_cached, what
 *     `qiao audit query` does) against one read per proof hash;
 *   - verify: entries/s with and without header signature checks, on every
 *     CPU against one thread, with the CPU time used; baselines: SHA-256
 *     leaf hashing alone and Ed25519 verification alone (one thread and
 *     every CPU), i.e. the ceilings the walk can reach.
 * Prints one line per figure, and the load average before and after (the
 * machine may be shared).  DIR is removed afterwards unless --keep.
 * --load-only writes the log and stops (keeping it); --reuse measures on
 * the log such a run left, so a 10,000,000-entry log is loaded once.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_fixture.h"
#include "audit_merkle.h"

static double s_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double s_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_load(const char *when)
{
	char b[128] = "?";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(b, sizeof b, f))
			snprintf(b, sizeof b, "?");
		fclose(f);
	}
	b[strcspn(b, "\n")] = '\0';
	printf("load average %s: %s (%ld CPUs online)\n", when, b, sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
}

static int s_cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct qcount {
	audit_log_t *log;
	qiao_txn_t *t;
	audit_proof_cache_t *pc;
	uint64_t size;
	const uint8_t *root;
	unsigned n, bad, hashes;
};

static int s_row(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)e;
	struct qcount *q = arg;
	uint8_t proof[AUDIT_MAX_PROOF][32], leaf[32];
	size_t np = 0;
	merkle_leaf_hash(b, len, leaf);
	if (audit_log_prove_cached(q->log, q->t, q->pc, index, q->size, proof, &np) != 0 ||
	    merkle_verify_inclusion(index, q->size, leaf, (const uint8_t(*)[32])proof, np, q->root) != 0)
		q->bad++;
	q->n++;
	q->hashes += (unsigned)np;
	return 0;
}

/* 200 runs of query q, each in its own read transaction with a fresh node
 * cache (shared: as `qiao audit query`) or none (one read per hash). */
static void s_query_bench(struct fx *f, const char *what, struct audit_query *q, int shared)
{
	double t[200];
	unsigned n = 0, bad = 0, hashes = 0;
	uint64_t lookups = 0, reads = 0;
	for (int i = 0; i < 200; i++) {
		double t0 = s_now();
		qiao_txn_t *tx = NULL;
		if (qiao_txn_begin(f->st, 0, &tx) != 0)
			return;
		Qiao__V1__Checkpoint *ck = NULL;
		if (audit_log_checkpoint_get(f->log, tx, UINT64_MAX, &ck) != 0) {
			qiao_txn_abort(&tx);
			return;
		}
		struct qcount c = {f->log, tx, shared ? audit_proof_cache_new() : NULL, ck->tree_size, ck->root_hash.data,
				   0, 0, 0};
		(void)audit_log_query(f->log, tx, q, s_row, &c);
		if (c.pc)
			audit_proof_cache_stats(c.pc, &lookups, &reads);
		audit_proof_cache_free(&c.pc);
		qiao__v1__checkpoint__free_unpacked(ck, NULL);
		qiao_txn_abort(&tx);
		t[i] = (s_now() - t0) * 1000;
		n = c.n;
		bad += c.bad;
		hashes = c.hashes;
	}
	double cold = t[0];
	qsort(t, 200, sizeof t[0], s_cmpd);
	char reads_s[80] = "one node read per proof hash";
	if (shared)
		snprintf(reads_s, sizeof reads_s, "%llu node reads for %llu proof nodes", (unsigned long long)reads,
			 (unsigned long long)lookups);
	printf("query by %-7s %3u entries, %4u proof hashes (%s): median %.3f ms, p99 %.3f ms, first run %.3f "
	       "ms%s\n",
	       what, n, hashes, reads_s, t[100], t[197], cold, bad ? "  (PROOFS FAILED)" : "");
	fflush(stdout);
}

/* ---- durable group commits vs. one commit per entry -------------------- */

struct gcjob {
	struct fx *f;
	uint64_t i;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
	uint64_t *done;
};

static int s_gc_apply(qiao_txn_t *txn, void *arg)
{
	struct gcjob *j = arg;
	return fx_exchange(j->f, txn, j->i, 1797000000000LL);
}

static void s_gc_done(void *arg, int rc)
{
	struct gcjob *j = arg;
	(void)rc;
	pthread_mutex_lock(j->mu);
	(*j->done)++;
	pthread_cond_signal(j->cv);
	pthread_mutex_unlock(j->mu);
}

static void s_append_bench(struct fx *f)
{
	/* baseline: one durable commit per entry */
	int n1 = 300;
	double t0 = s_now();
	for (int i = 0; i < n1; i++) {
		qiao_txn_t *t = NULL;
		if (qiao_txn_begin(f->st, 1, &t) != 0 || fx_exchange(f, t, (uint64_t)i, 1797000000000LL) != 0 ||
		    qiao_txn_commit(&t) != 0) {
			qiao_txn_abort(&t);
			printf("append baseline failed\n");
			return;
		}
	}
	double single = n1 / (s_now() - t0);
	/* group commit: 20,000 entries with up to 4,096 waiting */
	qiao_gc_t *gc = NULL;
	if (qiao_gc_new(f->st, NULL, &gc) != 0)
		return;
	const uint64_t n2 = 20000;
	struct gcjob *jobs = calloc(n2, sizeof *jobs);
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	uint64_t done = 0;
	t0 = s_now();
	for (uint64_t i = 0; jobs && i < n2; i++) {
		jobs[i] = (struct gcjob){f, i, &mu, &cv, &done};
		pthread_mutex_lock(&mu);
		while (i - done >= 4096)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		while (qiao_gc_submit(gc, s_gc_apply, &jobs[i], s_gc_done, &jobs[i]) == QIAO_ESTOREBUSY)
			;
	}
	pthread_mutex_lock(&mu);
	while (done < n2)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	double grouped = n2 / (s_now() - t0);
	struct qiao_gc_stats gs;
	qiao_gc_stats(gc, &gs);
	qiao_gc_destroy(&gc);
	free(jobs);
	printf("durable append: %.0f entries/s with group commit (%llu commits, largest batch %zu) vs %.0f/s one "
	       "commit each: x%.1f\n",
	       grouped, (unsigned long long)gs.batches, gs.max_batch_seen, single, grouped / single);
}

/* ---- verify ------------------------------------------------------------- */

struct edjob {
	const uint8_t *pk, *sig, *msg;
	size_t len;
	uint64_t n, ok;
	double cpu;
};

static void *s_ed_thread(void *arg)
{
	struct edjob *j = arg;
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	for (uint64_t i = 0; i < j->n; i++)
		j->ok += crypto_sign_verify_detached(j->sig, j->msg, j->len, j->pk) == 0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	j->cpu = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	return NULL;
}

static double s_ed_cpu_us; /* CPU time per verification, last s_ed_rate */

/* Ed25519 verifications per second on `threads` threads at once. */
static double s_ed_rate(unsigned threads, uint64_t per_thread)
{
	uint8_t pk[32], sk[64], sig[64], msg[317];
	memset(msg, 'h', sizeof msg); /* about a header with its prefix */
	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
	pthread_t th[16];
	struct edjob j[16];
	if (threads > 16)
		threads = 16;
	double t0 = s_now();
	for (unsigned i = 0; i < threads; i++) {
		j[i] = (struct edjob){pk, sig, msg, sizeof msg, per_thread, 0, 0};
		if (pthread_create(&th[i], NULL, s_ed_thread, &j[i]) != 0)
			return 0;
	}
	uint64_t ok = 0;
	double cpu = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		ok += j[i].ok;
		cpu += j[i].cpu;
	}
	s_ed_cpu_us = ok ? cpu * 1e6 / (double)ok : 0;
	double dt = s_now() - t0;
	return ok == per_thread * threads ? (double)ok / dt : 0;
}

struct vres {
	int rc;
	double rate, cpu_per_entry_us, wall;
	struct audit_verify_report r;
};

static struct vres s_verify_once(struct fx *f, int sigs, unsigned threads)
{
	struct vres v = {0};
	qiao_txn_t *tx = NULL;
	if (qiao_txn_begin(f->st, 0, &tx) != 0) {
		v.rc = -1;
		return v;
	}
	struct audit_verify_opts o = {.check_sigs = sigs, .threads = threads};
	double t0 = s_now(), c0 = s_cpu();
	v.rc = audit_log_verify_opts(f->log, tx, &o, &v.r);
	v.wall = s_now() - t0;
	double cpu = s_cpu() - c0;
	qiao_txn_abort(&tx);
	v.rate = (double)v.r.entries / v.wall;
	v.cpu_per_entry_us = v.r.entries ? cpu * 1e6 / (double)v.r.entries : 0;
	return v;
}

static void s_verify_print(const char *what, const struct vres *v)
{
	printf("verify %-15s %u thread%s: %8.0f entries/s (%.1f s, %.2f us CPU per entry)%s\n", what, v->r.threads,
	       v->r.threads == 1 ? " " : "s", v->rate, v->wall, v->cpu_per_entry_us,
	       v->rc ? "  (FAILED)" : "");
	fflush(stdout);
}

static void s_verify_bench(struct fx *f, uint64_t n)
{
	/* baselines: hashing alone (libcrypto, then libsodium) and
	 * Ed25519 alone, on one thread and on every CPU */
	uint8_t buf[4096], h[32];
	size_t elen = 0;
	qiao_txn_t *tx = NULL;
	if (qiao_txn_begin(f->st, 0, &tx) == 0) {
		uint8_t *b = NULL;
		if (audit_log_entry(f->log, tx, 1, &b, &elen) != 0 || elen > sizeof buf)
			elen = 700;
		else
			memcpy(buf, b, elen);
		free(b);
		qiao_txn_abort(&tx);
	}
	double hr[2];
	for (int p = 0; p < 2; p++) {
		merkle_sha256_force_portable(p);
		uint64_t hn = 300000;
		double t0 = s_now();
		for (uint64_t i = 0; i < hn; i++)
			merkle_leaf_hash(buf, elen, h);
		hr[p] = (double)hn / (s_now() - t0);
	}
	merkle_sha256_force_portable(0);
	unsigned ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	double ed1 = s_ed_rate(1, 20000), edcpu = s_ed_cpu_us, edn = s_ed_rate(ncpu, 20000);
	printf("baselines: leaf hashing alone (%zu-byte entries) %.0f/s with libcrypto%s, %.0f/s with "
	       "libsodium; Ed25519 verify alone %.0f/s on 1 thread (%.1f us CPU each), %.0f/s on %u\n",
	       elen, hr[0], merkle_sha256_accelerated() ? "" : " (libsodium: forced)", hr[1], ed1, edcpu, edn,
	       ncpu);
	fflush(stdout);

	/* a first pass reads the store into the page cache (as far as it fits) */
	struct vres s0 = s_verify_once(f, 0, 0);
	printf("verify structure only, first pass (pages cold): %.0f entries/s (%.1f s)%s\n", s0.rate, s0.wall,
	       s0.rc ? "  (FAILED)" : "");
	struct vres s1 = s_verify_once(f, 0, 1), sn = s_verify_once(f, 0, 0);
	s_verify_print("structure only", &s1);
	s_verify_print("structure only", &sn);
	printf("  structure only: x%.2f on %u threads against 1; %.0f%% of hashing alone (one thread)\n",
	       sn.rate / s1.rate, sn.r.threads, 100.0 * s1.rate / hr[0]);
	struct vres g1 = {0}, gn = s_verify_once(f, 1, 0);
	s_verify_print("with signatures", &gn);
	double per = gn.r.entries ? (double)(gn.r.signatures + gn.r.checkpoints) / (double)gn.r.entries : 0;
	printf("  with signatures: %.4f Ed25519 verifications per entry (%llu header signatures, %llu repeated ones "
	       "not re-checked, %llu checkpoints); ceiling at %.0f verifications/s on %u CPUs: %.0f entries/s, "
	       "reached %.0f%%\n",
	       per, (unsigned long long)gn.r.signatures, (unsigned long long)gn.r.signatures_repeated,
	       (unsigned long long)gn.r.checkpoints, edn, ncpu, per > 0 ? edn / per : 0,
	       per > 0 ? 100.0 * gn.rate / (edn / per) : 0);
	if (n <= 2000000) {
		g1 = s_verify_once(f, 1, 1);
		s_verify_print("with signatures", &g1);
		printf("  with signatures: x%.2f on %u threads against 1\n", gn.rate / g1.rate, gn.r.threads);
	} else {
		printf("  with signatures on 1 thread: not run at N > 2,000,000 (%.0f s at the 1-thread Ed25519 rate); "
		       "see the 1,000,000 run\n",
		       per * (double)n / ed1);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int keep = 0, reuse = 0, load_only = 0;
	char *end = NULL;
	uint64_t n = argc >= 3 ? strtoull(argv[2], &end, 10) : 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--keep") == 0)
			keep = 1;
		else if (strcmp(argv[i], "--reuse") == 0)
			reuse = keep = 1;
		else if (strcmp(argv[i], "--load-only") == 0)
			load_only = keep = 1;
		else
			argc = 0;
	}
	if (argc < 3 || !end || *end || n == 0) {
		fprintf(stderr, "usage: audit_bench DIR N [--keep] [--load-only] [--reuse]\n"
				"  --load-only  write the log of N entries into DIR, keep it, measure nothing else\n"
				"  --reuse      measure on the log a --load-only run left in DIR (kept)\n");
		return 2;
	}
	const char *dir = argv[1];
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (!reuse && system(cmd) != 0)
		return 1;
	s_load("at start");
	struct fx f;
	/* about 2.5 KB per entry with tree and indexes: size the map up front */
	size_t map = (size_t)(n + 100000) * 4096;
	if (fx_open(&f, dir, 1000, map) != 0)
		return 1;
	double t0 = s_now();
	if (reuse) {
		qiao_txn_t *tx = NULL;
		uint64_t have = 0;
		if (qiao_txn_begin(f.st, 0, &tx) != 0 || audit_log_size(f.log, tx, &have) != 0)
			have = 0;
		qiao_txn_abort(&tx);
		/* the load's N + 1 entries, plus any a previous --reuse run's append bench added */
		if (have == 0) {
			fprintf(stderr, "%s holds no audit log: run with --load-only first\n", dir);
			return 1;
		}
		if (have < n + 1) {
			/* a load that stopped (the map was full): go on from there */
			uint64_t from = have - 1;
			int rc = qiao_txn_begin(f.st, 1, &tx);
			for (uint64_t i = from; rc == 0 && i < n; i++) {
				rc = fx_exchange(&f, tx, i, 1796000000000LL);
				if (rc == 0 && ((i + 1) % 10000 == 0 || i + 1 == n)) {
					rc = qiao_txn_commit(&tx);
					if (rc == 0 && i + 1 < n)
						rc = qiao_txn_begin(f.st, 1, &tx);
				}
			}
			if (rc != 0) {
				qiao_txn_abort(&tx);
				fprintf(stderr, "continuing the load: %s\n", qiao_strerror(rc));
				return 1;
			}
			double fill = s_now() - t0;
			printf("bulk load continued: %llu entries (from %llu) in %.1f s, %.0f entries/s\n",
			       (unsigned long long)(n - from), (unsigned long long)from, fill, (double)(n - from) / fill);
			have = n + 1;
		}
		n = have - 1;
		/* a previous run's append bench left entries after the last
		 * checkpoint: cover them, so every query result has its proof */
		int made = 0;
		if (qiao_txn_begin(f.st, 1, &tx) != 0 || audit_log_checkpoint(f.log, tx, 1797000000000LL, &made) != 0 ||
		    qiao_txn_commit(&tx) != 0) {
			qiao_txn_abort(&tx);
			fprintf(stderr, "%s: cannot write a checkpoint\n", dir);
			return 1;
		}
		printf("reusing %s: %llu entries (bulk load figure: see the --load-only run)\n", dir,
		       (unsigned long long)have);
	} else {
		if (fx_fill(&f, n, 10000, 1796000000000LL) != 0) {
			fprintf(stderr, "fill failed\n");
			return 1;
		}
		double fill = s_now() - t0;
		printf("bulk load: %llu entries in %.1f s, %.0f entries/s (10,000 per transaction)\n",
		       (unsigned long long)n, fill, (double)n / fill);
	}
	if (load_only) {
		fx_close(&f);
		return 0;
	}
	struct qiao_store_info si;
	if (qiao_store_info(f.st, &si) == 0)
		printf("store: %.1f MiB used, %.0f bytes per entry\n", (double)si.used_bytes / 1048576.0,
		       (double)si.used_bytes / (double)(n + 1));

	uint8_t sh[32];
	audit_log_subject_hash(f.log, "RESIDENT_ID", fx_people[3], sh);
	struct audit_query qs = {.subject = sh, .limit = 100, .newest_first = 1};
	s_query_bench(&f, "subject", &qs, 1);
	s_query_bench(&f, "subject", &qs, 0);
	char case_id[32];
	snprintf(case_id, sizeof case_id, "case-%llu", (unsigned long long)(n / 8));
	struct audit_query qc = {.case_id = case_id};
	s_query_bench(&f, "case", &qc, 1);
	s_query_bench(&f, "case", &qc, 0);

	s_load("before verify");
	s_verify_bench(&f, n);
	s_load("after verify");
	s_append_bench(&f);
	s_load("at the end");
	fx_close(&f);
	if (!keep) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
