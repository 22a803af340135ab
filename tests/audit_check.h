/*
 * audit_check.h - what the crash and fault tests check in a stopped (or
 * SIGKILLed) gateway's store: every exchange the consumer saw answered has
 * its REQUEST_ACCEPTED entry (by message_id) and its RESPONSE_DELIVERED
 * entry (by in_reply_to), and `qiao audit verify` agrees that the log
 * verifies.  Used by test_audit_crash.c and test_faults_store.c; include
 * after gw_harness.h.
 */
#ifndef QIAO_TESTS_AUDIT_CHECK_H
#define QIAO_TESTS_AUDIT_CHECK_H

#include "audit_log.h"
#include "gw_harness.h"

/* A store opened read-only with its audit log and one read transaction. */
struct ac_store {
	qiao_store_t *st;
	audit_log_t *log;
	qiao_txn_t *t;
};

/* Open `dir` read-only; false (and a failed CHECK) when the store or its
 * log does not open.  ac_close() in either case. */
H_FN bool ac_open(struct ac_store *a, const char *dir)
{
	memset(a, 0, sizeof *a);
	struct qiao_store_opts o = {.read_only = 1};
	CHECK_RC(qiao_store_open(&a->st, dir, &o));
	if (!a->st) {
		fprintf(stderr, "  %s: %s\n", dir, qiao_store_last_error());
		return false;
	}
	struct audit_cfg ac = {.store_dir = dir, .read_only = 1};
	char err[256] = "";
	CHECK_RC(audit_log_open(a->st, &ac, &a->log, err, sizeof err));
	if (!a->log)
		fprintf(stderr, "  audit log of %s: %s\n", dir, err);
	if (a->log)
		CHECK_RC(qiao_txn_begin(a->st, 0, &a->t));
	return a->log && a->t;
}

H_FN void ac_close(struct ac_store *a)
{
	qiao_txn_abort(&a->t);
	audit_log_close(&a->log);
	qiao_store_close(&a->st);
}

struct ac_seen {
	uint8_t (*ids)[16]; /* sorted */
	uint64_t n;
	uint8_t *accepted, *delivered;
};

static int ac_cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static int ac_find(const struct ac_seen *s, const uint8_t *id)
{
	uint8_t(*hit)[16] = bsearch(id, s->ids, s->n, 16, ac_cmp16);
	return hit ? (int)(hit - s->ids) : -1;
}

static int ac_scan(void *arg, uint64_t index, const uint8_t *b, size_t len, const Qiao__V1__AuditEntry *e)
{
	(void)index, (void)b, (void)len;
	struct ac_seen *s = arg;
	int k;
	if (e->event_type == QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_RESPONSE_DELIVERED && e->in_reply_to.len == 16 &&
	    (k = ac_find(s, e->in_reply_to.data)) >= 0)
		s->delivered[k] = 1;
	if (e->event_type == QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_REQUEST_ACCEPTED && e->message_id.len == 16 &&
	    (k = ac_find(s, e->message_id.data)) >= 0)
		s->accepted[k] = 1;
	return 0;
}

/* Of the n request ids (sorted in place), how many have no
 * REQUEST_ACCEPTED entry (*miss_a) and no RESPONSE_DELIVERED entry
 * (*miss_d) in the whole log.  Both are n when the query fails. */
H_FN void ac_missing(struct ac_store *a, uint8_t (*ids)[16], uint64_t n, uint64_t *miss_a, uint64_t *miss_d)
{
	*miss_a = *miss_d = n;
	struct ac_seen s = {.ids = ids, .n = n, .accepted = calloc(n + 1, 1), .delivered = calloc(n + 1, 1)};
	CHECK(s.accepted && s.delivered);
	if (s.accepted && s.delivered) {
		qsort(ids, n, 16, ac_cmp16);
		struct audit_query q = {0};
		int rc = audit_log_query(a->log, a->t, &q, ac_scan, &s);
		CHECK_RC(rc);
		if (rc == 0) {
			*miss_a = *miss_d = 0;
			for (uint64_t i = 0; i < n; i++) {
				*miss_d += !s.delivered[i];
				*miss_a += !s.accepted[i];
			}
		}
	}
	free(s.accepted);
	free(s.delivered);
}

/* `qiao audit verify --store dir` exits 0; its output is printed. */
H_FN void ac_cli_verify(const char *dir)
{
	char q_bin[PATH_MAX], out[4096];
	snprintf(q_bin, sizeof q_bin, "%s/gateway/qiao", getenv("QIAO_BIN"));
	char *argv[] = {q_bin, "audit", "verify", "--store", (char *)dir, NULL};
	int rc = h_run(argv, out, sizeof out);
	printf("  qiao audit verify: %s", out);
	CHECK(h_exited_0(rc));
}

#endif
