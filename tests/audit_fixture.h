/*
 * audit_fixture.h - write a realistic audit log without a gateway: an
 * ADMIN_ACTION entry with the key directory, then exchanges whose entries
 * carry real signed headers (qiao_envelope_seal), subjects and case ids,
 * in the store directory given.  Shared by tests/test_audit.c,
 * tests/audit_fixture.c (the external-verifier test's fixture) and
 * bench/audit_bench.c.
 */
#ifndef QIAO_AUDIT_FIXTURE_H
#define QIAO_AUDIT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_log.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_keys.h"
#include "qiao_store.h"

#define FX_GW "11150600MB0K24684F/gateway"
#define FX_BANK "91150600MA0C9012X7/bank"
#define FX_REG "12150600MB0A12342K/realestate"
#define FX_ORIGIN "qiao.test/audit"

/* Residents the fixture's exchanges are about: entry i names
 * fx_people[i % FX_NPEOPLE]. */
#define FX_NPEOPLE 5
static const char *const fx_people[FX_NPEOPLE] __attribute__((unused)) = {
	"11010519491231002X", "440524188001010014", "110105198001010016", "15060219850612003X", "150621199003154522",
};

struct fx {
	qiao_store_t *st;
	audit_log_t *log;
	qiao_keys_t *gw, *bank, *reg;
	uint64_t n; /* entries written */
};

static __attribute__((unused)) int fx_keys(struct fx *f)
{
	uint8_t seed[32];
	memset(seed, 1, 32);
	if (qiao_keys_from_seed(FX_GW, seed, &f->gw) != 0)
		return -1;
	memset(seed, 2, 32);
	if (qiao_keys_from_seed(FX_BANK, seed, &f->bank) != 0)
		return -1;
	memset(seed, 3, 32);
	if (qiao_keys_from_seed(FX_REG, seed, &f->reg) != 0)
		return -1;
	return 0;
}

/* Open (or create) the store and the log as a writer. */
static __attribute__((unused)) int fx_open(struct fx *f, const char *dir, uint64_t checkpoint_every, size_t map_size)
{
	memset(f, 0, sizeof *f);
	if (qiao_crypto_init() != 0 || fx_keys(f) != 0)
		return -1;
	struct qiao_store_opts o = {0};
	o.initial_map_size = map_size;
	/* the bench's 10,000,000 entries need more than the store's default
	 * 16 GiB limit: let a map asked for up front grow that far */
	if (map_size > ((size_t)16 << 30))
		o.max_map_size = map_size;
	int rc = qiao_store_open(&f->st, dir, &o);
	if (rc != 0) {
		fprintf(stderr, "store %s: %s\n", dir, qiao_store_last_error());
		return rc;
	}
	struct audit_cfg ac = {.store_dir = dir,
			       .origin = FX_ORIGIN,
			       .gateway = FX_GW,
			       .checkpoint_entries = checkpoint_every,
			       .sign_sk = f->gw->sign_sk,
			       .sign_pk = f->gw->sign_pk};
	char err[256];
	rc = audit_log_open(f->st, &ac, &f->log, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "audit log: %s\n", err);
	return rc;
}

static __attribute__((unused)) void fx_close(struct fx *f)
{
	audit_log_close(&f->log);
	qiao_store_close(&f->st);
	qiao_keys_destroy(&f->gw);
	qiao_keys_destroy(&f->bank);
	qiao_keys_destroy(&f->reg);
}

/* The ADMIN_ACTION entry with the key directory. */
static __attribute__((unused)) int fx_admin(struct fx *f, qiao_txn_t *t)
{
	Qiao__V1__MemberKey k[3], *kp[3];
	qiao_keys_t *ks[3] = {f->gw, f->bank, f->reg};
	for (int i = 0; i < 3; i++) {
		qiao__v1__member_key__init(&k[i]);
		k[i].member = ks[i]->member;
		k[i].sign_public.data = ks[i]->sign_pk;
		k[i].sign_public.len = 32;
		kp[i] = &k[i];
	}
	Qiao__V1__AuditEntry e = QIAO__V1__AUDIT_ENTRY__INIT;
	e.event_type = QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_ADMIN_ACTION;
	e.outcome = QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_SUCCESS;
	e.requester = FX_GW;
	e.detail = "fixture started";
	e.directory = kp;
	e.n_directory = 3;
	int rc = audit_log_append(f->log, t, &e, NULL);
	f->n += rc == 0;
	return rc;
}

/* One accepted request (bank -> registry) about fx_people[i % 5], case
 * "case-<i / 4>", signed for real; time_ms = base + i. */
static __attribute__((unused)) int fx_exchange(struct fx *f, qiao_txn_t *t, uint64_t i, int64_t base_ms)
{
	Qiao__V1__DataSubject ds = QIAO__V1__DATA_SUBJECT__INIT, *dsp = &ds;
	ds.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	ds.id = (char *)fx_people[i % FX_NPEOPLE];
	char case_id[32];
	snprintf(case_id, sizeof case_id, "case-%llu", (unsigned long long)(i / 4));
	Qiao__V1__Header h = QIAO__V1__HEADER__INIT;
	h.kind = QIAO__V1__MESSAGE_KIND__REQUEST;
	h.sender = FX_BANK;
	h.user_id = "staff-0042";
	h.service = FX_REG "/title-summary.v1";
	h.time_ms = base_ms + (int64_t)i;
	h.deadline_ms = h.time_ms + 30000;
	h.case_id = case_id;
	h.purpose = "带押过户 新贷款审批";
	h.subjects = &dsp;
	h.n_subjects = 1;
	h.body_type = "qiao.v1.TitleSummaryRequest";
	qiao_envelope_t *env = NULL;
	char why[200];
	uint8_t body[64];
	memset(body, (int)(i & 0xff), sizeof body);
	int rc = qiao_envelope_seal(&h, body, sizeof body, f->bank->sign_sk, NULL, &env, why, sizeof why);
	if (rc != 0) {
		fprintf(stderr, "seal: %s\n", why);
		return rc;
	}
	uint8_t sh[32];
	audit_log_subject_hash(f->log, "RESIDENT_ID", ds.id, sh);
	ProtobufCBinaryData shb = {32, sh};
	Qiao__V1__AuditEntry e = QIAO__V1__AUDIT_ENTRY__INIT;
	e.event_type = QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_REQUEST_ACCEPTED;
	e.outcome = QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_SUCCESS;
	e.time_ms = h.time_ms;
	e.requester = FX_BANK;
	e.provider = FX_REG;
	e.end_user = h.user_id;
	e.service = h.service;
	e.case_id = case_id;
	e.purpose = h.purpose;
	e.subject_hashes = &shb;
	e.n_subject_hashes = 1;
	e.subject_key_id = AUDIT_SUBJECT_KEY_ID;
	e.message_id = env->hdr->message_id;
	e.header.data = env->header;
	e.header.len = env->header_len;
	e.header_signature.data = env->sig;
	e.header_signature.len = 64;
	e.signer = FX_BANK;
	e.body_hash = env->hdr->body_hash;
	e.body_type = h.body_type;
	e.body_size = sizeof body;
	rc = audit_log_append(f->log, t, &e, NULL);
	qiao_envelope_destroy(&env);
	f->n += rc == 0;
	return rc;
}

/* ADMIN_ACTION then n exchanges, in transactions of `batch` entries; a
 * checkpoint at the end.  0 or an error. */
static __attribute__((unused)) int fx_fill(struct fx *f, uint64_t n, uint64_t batch, int64_t base_ms)
{
	qiao_txn_t *t = NULL;
	int rc = qiao_txn_begin(f->st, 1, &t);
	if (rc == 0)
		rc = fx_admin(f, t);
	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		rc = fx_exchange(f, t, i, base_ms);
		if (rc == 0 && (i + 1) % batch == 0) {
			rc = qiao_txn_commit(&t);
			if (rc == 0)
				rc = qiao_txn_begin(f->st, 1, &t);
		}
	}
	if (rc == 0)
		rc = audit_log_checkpoint(f->log, t, base_ms + (int64_t)n, NULL);
	if (rc == 0)
		rc = qiao_txn_commit(&t);
	else
		qiao_txn_abort(&t);
	return rc;
}

#endif
