/*
 * fuzz_envelope: the receive path of a signed message.
 *
 * The input is a `.qmsg` message file as `qiao envelope open` reads it
 * (frames, each a 4-byte big-endian length and its bytes; the split below
 * is the one of gateway/cli_envelope.c, which is static there).  The frames
 * go to qiao_cmd_parse() and qiao_envelope_open() as the gateway does on
 * receive (gw_gate.c: with the wire limits and a legacy-USCC policy) and as
 * the CLI does (no limits); an opened envelope is verified against a fixed
 * key and a reply template is made from it.
 */
#include "qiao_envelope.h"
#include "qiao_id.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define MAXF 8

static int s_split(const uint8_t *buf, size_t len, struct qiao_frame *f, size_t maxf, size_t *nf)
{
	size_t off = 0, n = 0;
	while (off < len) {
		if (n == maxf || len - off < 4)
			return -1;
		size_t l = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 |
			   (size_t)buf[off + 2] << 8 | buf[off + 3];
		off += 4;
		if (l > len - off)
			return -1;
		f[n].data = buf + off;
		f[n].len = l;
		n++;
		off += l;
	}
	*nf = n;
	return 0;
}

static qiao_id_policy_t *s_ids;
static uint8_t s_pk[32];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	s_ids = qiao_id_policy_new();
	if (!s_ids || qiao_id_policy_add_legacy_uscc(s_ids, "911506000000000000") != 0)
		abort();
	uint8_t seed[32], sk[64];
	memset(seed, 1, sizeof seed);
	crypto_sign_seed_keypair(s_pk, sk, seed);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qiao_frame f[MAXF];
	size_t nf = 0;
	if (s_split(data, size, f, MAXF, &nf) != 0)
		return 0;
	uint8_t cmd;
	if (nf > 0)
		(void)qiao_cmd_parse(&f[0], &cmd);
	struct qiao_wire_limits lim;
	qiao_wire_limits_default(&lim);
	lim.ids = s_ids;
	for (int pass = 0; pass < 2; pass++) {
		qiao_envelope_t *env = NULL;
		char why[256];
		int rc = qiao_envelope_open(f, nf, pass ? NULL : &lim, &env, why, sizeof why);
		if (rc == 0) {
			(void)qiao_envelope_verify(env, s_pk);
			uint8_t hh[QIAO_HASH_LEN];
			qiao_envelope_header_hash(env, hh);
			struct qiao_frame out[4];
			qiao_envelope_frames(env, out);
			Qiao__V1__Header r;
			qiao__v1__header__init(&r);
			uint8_t store[QIAO_MSGID_LEN + QIAO_HASH_LEN];
			qiao_envelope_reply_template(env, QIAO__V1__MESSAGE_KIND__RESPONSE, "x", &r, store);
		} else if (env) {
			abort(); /* a failure must not hand out an envelope */
		}
		qiao_envelope_destroy(&env);
	}
	return 0;
}
