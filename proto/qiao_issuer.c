/*
 * qiao_issuer.c - see qiao_issuer.h.
 */
#include "qiao_issuer.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qiao_envelope.h"
#include "qiao_err.h"

void qiao_issuer_key_id(const char *member, const uint8_t pk[32], char out[QIAO_KEY_ID_MAX])
{
	uint8_t h[32];
	crypto_hash_sha256(h, pk, 32);
	char hex[17];
	qiao_hex(h, 8, hex);
	snprintf(out, QIAO_KEY_ID_MAX, "%s#%s", member, hex);
}

/* domain || 0x00 || data, malloc'd */
static uint8_t *s_signed_bytes(const char *domain, const void *data, size_t len, size_t *out_len)
{
	size_t dl = strlen(domain);
	uint8_t *b = malloc(dl + 1 + len + 1);
	if (!b)
		return NULL;
	memcpy(b, domain, dl);
	b[dl] = 0;
	if (len)
		memcpy(b + dl + 1, data, len);
	*out_len = dl + 1 + len;
	return b;
}

int qiao_issuer_sign(const char *domain, const void *data, size_t len, const char *member, const uint8_t *sk,
		     const uint8_t pk[32], Qiao__V1__IssuerSignature *sig, char keyid_buf[QIAO_KEY_ID_MAX],
		     uint8_t sig_buf[64])
{
	if (!domain || !member || !sk || !pk || !sig || (len && !data))
		return QIAO_EINVAL;
	if (sodium_init() < 0)
		return QIAO_ECRYPTO;
	size_t n;
	uint8_t *b = s_signed_bytes(domain, data, len, &n);
	if (!b)
		return QIAO_ENOMEM;
	crypto_sign_detached(sig_buf, NULL, b, n, sk);
	free(b);
	qiao__v1__issuer_signature__init(sig);
	sig->algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	qiao_issuer_key_id(member, pk, keyid_buf);
	sig->key_id = keyid_buf;
	sig->signature.data = sig_buf;
	sig->signature.len = 64;
	sig->domain = (char *)domain;
	sig->signed_ms = qiao_now_ms();
	return 0;
}

int qiao_issuer_verify(const Qiao__V1__IssuerSignature *sig, const char *domain, const void *data, size_t len,
		       const char *member, const uint8_t pk[32], char *why, size_t whylen)
{
#define FAIL(...)                                                                                  \
	do {                                                                                       \
		if (why && whylen)                                                                 \
			snprintf(why, whylen, __VA_ARGS__);                                         \
		return QIAO_EBADSIG;                                                               \
	} while (0)
	if (!sig)
		FAIL("no issuer signature");
	if (sig->algorithm != QIAO__V1__ALGORITHM__ED25519_SHA256)
		FAIL("issuer signature algorithm %d is not ED25519_SHA256", sig->algorithm);
	if (!sig->domain || strcmp(sig->domain, domain) != 0)
		FAIL("issuer signature is for '%.60s', not '%s'", sig->domain ? sig->domain : "", domain);
	char kid[QIAO_KEY_ID_MAX];
	qiao_issuer_key_id(member, pk, kid);
	if (!sig->key_id || strcmp(sig->key_id, kid) != 0)
		FAIL("issuer key id '%.80s' is not %s's registered key %s", sig->key_id ? sig->key_id : "", member,
		     kid);
	if (sig->signature.len != 64)
		FAIL("issuer signature is %zu bytes, not 64", sig->signature.len);
	if (sodium_init() < 0)
		FAIL("libsodium cannot be initialised");
	size_t n;
	uint8_t *b = s_signed_bytes(domain, data, len, &n);
	if (!b)
		FAIL("out of memory");
	int rc = crypto_sign_verify_detached(sig->signature.data, b, n, pk);
	free(b);
	if (rc != 0)
		FAIL("the issuer signature by %s does not verify", member);
	return 0;
#undef FAIL
}
