/*
 * audit_bench - the audit log at scale.
 *
 *   audit_bench DIR N [--keep]
 *
 * Writes N exchanges (tests/audit_fixture.h: real signed headers, 5 data
 * subjects in rotation, one case per 4 entries) into a fresh store in DIR,
 * then measures, each against its baseline in the same run:
 *   - append: entries/s in 10,000-entry transactions (bulk load), and
 *     durable group commits through the group-commit writer (one entry per
 *     operation, many operations per fsync) against one bare durable LMDB
 *     commit per entry;
 *   - queries by subject (a subject with N/5 entries, limit 100) and by
 *     case (4 entries), with an inclusion proof to the latest checkpoint
 *     for every entry, median and p99 of 200 runs;
 *   - verify: entries/s with and without header signature checks, against
 *     the raw rate of SHA-256 leaf hashing alone.
 * Prints one line per figure.  DIR is removed afterwards unless --keep.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_fixture.h"
#include "audit_merkle.h"

static double s_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct qcount {
	audit_log_t *log;
	qiao_txn_t *t;
	uint64_t size;
	const uint8_t *root;
	unsigned n, bad;
};

static int s_row(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)e;
	struct qcount *q = arg;
	uint8_t proof[AUDIT_MAX_PROOF][32], leaf[32];
	size_t np = 0;
	merkle_leaf_hash(b, len, leaf);
	if (audit_log_prove(q->log, q->t, index, q->size, proof, &np) != 0 ||
	    merkle_verify_inclusion(index, q->size, leaf, (const uint8_t(*)[32])proof, np, q->root) != 0)
		q->bad++;
	q->n++;
	return 0;
}

static void s_query_bench(struct fx *f, const char *what, struct audit_query *q)
{
	double t[200];
	unsigned n = 0, bad = 0;
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
		struct qcount c = {f->log, tx, ck->tree_size, ck->root_hash.data, 0, 0};
		(void)audit_log_query(f->log, tx, q, s_row, &c);
		qiao__v1__checkpoint__free_unpacked(ck, NULL);
		qiao_txn_abort(&tx);
		t[i] = (s_now() - t0) * 1000;
		n = c.n;
		bad += c.bad;
	}
	qsort(t, 200, sizeof t[0], s_cmpd);
	printf("query by %-8s %3u entries with proofs: median %.3f ms, p99 %.3f ms%s\n", what, n, t[100], t[197],
	       bad ? "  (PROOFS FAILED)" : "");
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

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: audit_bench DIR N [--keep]\n");
		return 2;
	}
	const char *dir = argv[1];
	uint64_t n = strtoull(argv[2], NULL, 10);
	int keep = argc > 3 && strcmp(argv[3], "--keep") == 0;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	struct fx f;
	/* about 2.5 KB per entry with tree and indexes: size the map up front */
	size_t map = (size_t)(n + 100000) * 4096;
	if (fx_open(&f, dir, 1000, map) != 0)
		return 1;
	double t0 = s_now();
	if (fx_fill(&f, n, 10000, 1796000000000LL) != 0) {
		fprintf(stderr, "fill failed\n");
		return 1;
	}
	double fill = s_now() - t0;
	printf("bulk load: %llu entries in %.1f s, %.0f entries/s (10,000 per transaction)\n", (unsigned long long)n,
	       fill, (double)n / fill);
	struct qiao_store_info si;
	if (qiao_store_info(f.st, &si) == 0)
		printf("store: %.1f MiB used, %.0f bytes per entry\n", (double)si.used_bytes / 1048576.0,
		       (double)si.used_bytes / (double)(n + 1));

	uint8_t sh[32];
	audit_log_subject_hash(f.log, "RESIDENT_ID", fx_people[3], sh);
	struct audit_query qs = {.subject = sh, .limit = 100, .newest_first = 1};
	s_query_bench(&f, "subject", &qs);
	char case_id[32];
	snprintf(case_id, sizeof case_id, "case-%llu", (unsigned long long)(n / 8));
	struct audit_query qc = {.case_id = case_id};
	s_query_bench(&f, "case", &qc);

	/* verify, with and without signatures; baseline: hashing alone */
	qiao_txn_t *tx = NULL;
	if (qiao_txn_begin(f.st, 0, &tx) == 0) {
		struct audit_verify_report r;
		t0 = s_now();
		int rc = audit_log_verify(f.log, tx, NULL, 0, NULL, NULL, &r);
		double v0 = s_now() - t0;
		t0 = s_now();
		int rc2 = audit_log_verify(f.log, tx, NULL, 1, NULL, NULL, &r);
		double v1 = s_now() - t0;
		qiao_txn_abort(&tx);
		/* hashing floor: SHA-256 of as many entry-sized buffers */
		uint8_t buf[700], h[32];
		memset(buf, 7, sizeof buf);
		uint64_t hn = n < 2000000 ? n : 2000000;
		t0 = s_now();
		for (uint64_t i = 0; i < hn; i++)
			merkle_leaf_hash(buf, sizeof buf, h);
		double hr = (double)hn / (s_now() - t0);
		printf("verify: %.0f entries/s structure only%s, %.0f entries/s with signatures%s; hashing alone "
		       "%.0f/s: structure at %.0f%% of it\n",
		       (double)(n + 1) / v0, rc ? " (FAILED)" : "", (double)(n + 1) / v1, rc2 ? " (FAILED)" : "", hr,
		       100.0 * ((double)(n + 1) / v0) / hr);
	}
	s_append_bench(&f);
	fx_close(&f);
	if (!keep) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
