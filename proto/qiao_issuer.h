/*
 * qiao_issuer.h - issuer signatures on licences, credit records and
 * credit reports (licence.proto "Issuer signatures").
 *
 * The issuing department signs the exact encoded bytes of the object:
 *
 *   signature = Ed25519(issuer key, domain || 0x00 || object bytes)
 *
 * with domain "qiao.v1.licence", "qiao.v1.credit-record" or
 * "qiao.v1.credit-report".  IssuerSignature.key_id is
 * "<member id>#<first 8 bytes of SHA-256(public key), lower-case hex>".
 * Verifiers check the signature over the bytes as received and decode them
 * afterwards; nobody re-encodes an object to check it.
 */
#ifndef QIAO_ISSUER_H
#define QIAO_ISSUER_H

#include <stddef.h>
#include <stdint.h>

#include "licence.pb-c.h"

#define QIAO_DOMAIN_LICENCE "qiao.v1.licence"
#define QIAO_DOMAIN_CREDIT_RECORD "qiao.v1.credit-record"
#define QIAO_DOMAIN_CREDIT_REPORT "qiao.v1.credit-report"
#define QIAO_KEY_ID_MAX 72

/* "<member>#<16 hex>" into out[QIAO_KEY_ID_MAX]. */
void qiao_issuer_key_id(const char *member, const uint8_t pk[32], char out[QIAO_KEY_ID_MAX]);

/*
 * Sign `data` for `domain` as `member` (64-byte libsodium secret key sk,
 * public key pk) and fill *sig: algorithm, key_id (into keyid_buf,
 * QIAO_KEY_ID_MAX bytes), signature (into sig_buf, 64 bytes), domain
 * (borrowed), signed_ms = now.  0, QIAO_EINVAL, QIAO_ECRYPTO.
 */
int qiao_issuer_sign(const char *domain, const void *data, size_t len, const char *member, const uint8_t *sk,
		     const uint8_t pk[32], Qiao__V1__IssuerSignature *sig, char keyid_buf[QIAO_KEY_ID_MAX],
		     uint8_t sig_buf[64]);

/*
 * Check *sig over `data`: the algorithm is Ed25519, the domain is
 * `domain`, the key id is that of (member, pk), the signature verifies.
 * 0 or QIAO_EBADSIG; why[] (may be NULL) says which check failed.
 */
__attribute__((warn_unused_result))
int qiao_issuer_verify(const Qiao__V1__IssuerSignature *sig, const char *domain, const void *data, size_t len,
		       const char *member, const uint8_t pk[32], char *why, size_t whylen);

#endif
