/*
 * fuzz_audit: signed notes, checkpoints, tlog proofs (gateway/audit_note.c)
 * and RFC 9162 proof verification (gateway/audit_merkle.c).
 *
 * Every input goes through all of these (each is cheap):
 *   - note_vkey_parse() on the input as a string;
 *   - note_verify_why() against a fixed key "qiao.test/audit" (seed 7s), and
 *     checkpoint_parse_why() on the verified text (or on the whole input);
 *   - tlog_proof_parse(), then tlog_proof_verify() with the fixed key, the
 *     origin and a leaf hash read from the proof's "extra" (else zero);
 *   - the input decoded as binary: index (8), size (8), leaf hash (32),
 *     root (32), then up to 64 hashes of 32 bytes, for
 *     merkle_verify_inclusion(), and size1, size2, root1, root2 the same way
 *     for merkle_verify_consistency().
 */
#include "audit_merkle.h"
#include "audit_note.h"
#include "fuzz_util.h"

#include <sodium.h>

static char s_vkey[NOTE_VKEY_LEN(32)];
static const char *ORIGIN = "qiao.test/audit";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	uint8_t seed[32], pk[32], sk[64];
	memset(seed, 7, sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	if (note_vkey(ORIGIN, pk, s_vkey, sizeof s_vkey) != 0)
		abort();
	return 0;
}

static uint64_t s_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void s_merkle(const uint8_t *data, size_t size)
{
	if (size < 80)
		return;
	uint64_t a = s_u64(data), b = s_u64(data + 8);
	const uint8_t *h1 = data + 16, *h2 = data + 48;
	size_t n = (size - 80) / 32;
	if (n > 64)
		n = 64;
	const uint8_t(*proof)[32] = n ? (const uint8_t(*)[32])(data + 80) : NULL;
	(void)merkle_verify_inclusion(a, b, h1, proof, n, h2);
	(void)merkle_verify_inclusion(a % 70000, b % 70000 + 1, h1, proof, n, h2);
	(void)merkle_verify_consistency(a, b, h1, h2, proof, n);
	(void)merkle_verify_consistency(a % 70000, b % 70000, h1, h2, proof, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	/* A copy exactly `size` long (ASan catches reads past the end), and a
	 * NUL-terminated one for the string APIs. */
	char *buf = malloc(size ? size : 1);
	char *s = fz_cstr(data, size);
	if (!buf || !s) {
		free(buf);
		free(s);
		return 0;
	}
	if (size)
		memcpy(buf, data, size);
	char why[256], name[300], origin[CHECKPOINT_ORIGIN_MAX + 1];
	uint32_t id;
	uint8_t pk[32], root[32];
	uint64_t tsize, idx;
	(void)note_vkey_parse(s, name, sizeof name, &id, pk);
	(void)note_vkey_parse(s, name, 4, &id, pk);

	const char *end = NULL;
	if (note_verify_why(buf, size, s_vkey, &end, why, sizeof why) == 0) {
		if (!end || end < buf || end > buf + size)
			abort();
		(void)checkpoint_parse_why(buf, (size_t)(end - buf), origin, sizeof origin, &tsize, root, why,
					   sizeof why);
	}
	(void)checkpoint_parse_why(buf, size, origin, sizeof origin, &tsize, root, why, sizeof why);
	(void)checkpoint_parse(buf, size, origin, 3, &tsize, root);

	struct tlog_proof *tp = malloc(sizeof *tp);
	if (tp && tlog_proof_parse(buf, size, tp, why, sizeof why) == 0) {
		if (tp->checkpoint < buf || tp->checkpoint_len == 0 ||
		    tp->checkpoint + tp->checkpoint_len > buf + size || tp->n > TLOG_PROOF_MAX_HASHES)
			abort();
		uint8_t leaf[32] = {0};
		if (tp->has_extra) {
			size_t bl = 0;
			uint8_t raw[64];
			if (sodium_base642bin(raw, sizeof raw, tp->extra_b64, tp->extra_b64_len, NULL, &bl, NULL,
					      sodium_base64_VARIANT_ORIGINAL) == 0 &&
			    bl >= 32)
				memcpy(leaf, raw, 32);
		}
		(void)tlog_proof_verify(buf, size, s_vkey, ORIGIN, leaf, &idx, why, sizeof why);
		(void)tlog_proof_verify(buf, size, s_vkey, NULL, leaf, NULL, why, sizeof why);
	}
	free(tp);
	s_merkle(data, size);
	free(buf);
	free(s);
	return 0;
}
