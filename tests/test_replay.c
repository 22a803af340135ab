/*
 * test_replay - the gateway's durable replay window (gateway/gw_gate.c
 * s_replay_key): a request sent twice is refused REPLAY, also after a
 * restart; its record is stored under the message's signed time_ms
 * (big-endian) followed by its id, so that records are appended in time
 * order; a record a store kept from before that key (the id alone) still
 * refuses its message.  The real gateway, an echo provider adapter in
 * this process and the harness's raw client, which sends the same signed
 * frames again.
 */
#include "gw_harness.h"
#include "qiao_store.h"

#define REPLAY_TYPE 0x5250 /* the gateway's table "replay" */

static const char *const s_services = H_ECHO_SERVICES;
static const char *const s_policy = H_ECHO_POLICY(BANK_A);

static void on_echo(void *arg, const struct qiao_request *req, struct qiao_responder *r)
{
	(void)arg;
	qiao_respond(&r, req->body, req->body_len);
}

/* Send `m` on a fresh raw connection; what came back. */
static struct h_answer s_send(const struct h_msg *m)
{
	struct h_raw r;
	struct h_answer a;
	memset(&a, 0, sizeof a);
	a.cmd = -1;
	if (h_raw_open(&r, M_BANK_A, true) == 0) {
		h_raw_send(&r, m);
		h_raw_answer(&r, m, 8000, &a);
	}
	h_raw_close(&r);
	return a;
}

static bool s_answered(const struct h_answer *a, const char *what)
{
	bool ok = a->cmd == QIAO_CMD_ENVELOPE && a->kind == QIAO__V1__MESSAGE_KIND__RESPONSE && a->verified;
	if (!ok)
		h_answer_show(what, a);
	return ok;
}

/* The time_ms the raw sealer signed into frame 1 of `m`. */
static int64_t s_time_of(const struct h_msg *m)
{
	Qiao__V1__Header *h = qiao__v1__header__unpack(NULL, m->len[1], m->f[1]);
	int64_t t = h ? h->time_ms : 0;
	if (h)
		qiao__v1__header__free_unpacked(h, NULL);
	return t;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (h_setup("replay") != 0)
		return 1;
	h_write_config(h_conf, s_services, s_policy, "");
	CHECK(h_gw_start() == 0);
	qiao_adapter_t *prov = h_adapter(M_PRV, "provider", 1);
	CHECK(prov && qiao_adapter_offer(prov, "echo.v1", "test.v1.Echo", on_echo, NULL) == 0 &&
	      qiao_adapter_start(prov) == 0 && qiao_adapter_wait_connected(prov, 10000) == 0);

	/* 1. sent twice: answered, then REPLAY */
	struct h_rawreq q = {.service = PRV "/echo.v1", .body = "once", .body_len = 4};
	struct h_msg m1, m2, m3;
	uint8_t id1[16], id2[16], id3[16];
	h_raw_seal(M_BANK_A, &q, &m1, id1);
	struct h_answer a = s_send(&m1);
	CHECK(s_answered(&a, "first send"));
	a = s_send(&m1);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__REPLAY, "the same frames again"));

	/* 2. on disk: m1's record under time_ms || id; then a record of the
	 * old form (the id alone) for m2, which was never sent */
	h_raw_seal(M_BANK_A, &q, &m2, id2);
	CHECK(h_exited_0(h_gw_stop(10000)));
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof dir, "%s/store", h_dir);
	qiao_store_t *st = NULL;
	qiao_table_t *tbl = NULL;
	qiao_txn_t *t = NULL;
	CHECK_RC(qiao_store_open(&st, dir, NULL));
	if (st) {
		CHECK_RC(qiao_store_table(st, "replay", REPLAY_TYPE, &tbl));
		uint8_t key[24];
		uint64_t tm = (uint64_t)s_time_of(&m1);
		for (int i = 0; i < 8; i++)
			key[i] = (uint8_t)(tm >> (56 - 8 * i));
		memcpy(key + 8, id1, 16);
		void *v = NULL;
		size_t vl = 0;
		CHECK_RC(qiao_txn_begin(st, 0, &t));
		if (t) {
			CHECK_RC(qiao_store_get(t, tbl, key, sizeof key, &v, &vl, NULL));
			free(v);
			v = NULL;
			CHECK_ERR(qiao_store_get(t, tbl, id1, 16, &v, &vl, NULL), QIAO_ENOTFOUND);
			free(v);
			qiao_txn_abort(&t);
		}
		uint8_t one = 1;
		CHECK_RC(qiao_txn_begin(st, 1, &t));
		if (t) {
			CHECK_RC(qiao_store_insert(t, tbl, id2, 16, &one, 1, qiao_now_ms() + 600000));
			CHECK_RC(qiao_txn_commit(&t));
		}
		qiao_store_close(&st);
	}

	/* 3. after the restart: m1 still refused, m2 refused by the old
	 * record, a fresh message answered */
	CHECK(h_gw_start() == 0);
	CHECK(qiao_adapter_wait_connected(prov, 10000) == 0);
	h_sleep_ms(300); /* the provider's READY after its reconnect */
	a = s_send(&m1);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__REPLAY, "the same frames after a restart"));
	a = s_send(&m2);
	CHECK(h_is_gw_error(&a, QIAO__V1__ERROR_CODE__REPLAY, "a message with an id-only record"));
	h_raw_seal(M_BANK_A, &q, &m3, id3);
	int64_t until = h_now() + 5000;
	do {
		a = s_send(&m3);
		if (a.kind == QIAO__V1__MESSAGE_KIND__RESPONSE || a.code != QIAO__V1__ERROR_CODE__NO_INSTANCE)
			break;
		h_msg_free(&m3); /* the provider is not back yet: a new message */
		h_raw_seal(M_BANK_A, &q, &m3, id3);
	} while (h_now() < until);
	CHECK(s_answered(&a, "a fresh message after the restart"));
	printf("replay: refused before and after a restart, time-ordered key on disk, id-only record honoured\n");

	qiao_adapter_destroy(&prov);
	CHECK(h_exited_0(h_gw_stop(10000)));
	h_msg_free(&m1);
	h_msg_free(&m2);
	h_msg_free(&m3);
	h_teardown();
	return check_done();
}
