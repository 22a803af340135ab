/*
 * qiao_keys.h - a member's key file: Ed25519 signing pair + CURVE pair.
 *
 * File format (text, UTF-8, mode 0600), one "name: value" per line, '#'
 * starts a comment line:
 *
 *   qiao-key-file: 1
 *   member: 12150600MB0A12342K/realestate
 *   sign-public: <base64 of the 32-byte Ed25519 public key>
 *   sign-secret: <base64 of the 32-byte Ed25519 seed>
 *   curve-public: <base64 of the 32-byte Curve25519 public key>
 *   curve-secret: <base64 of the 32-byte Curve25519 secret key>
 *
 * The secret parts live in guarded memory (sodium_malloc: guard pages,
 * mlock'ed, wiped on free).  Loading checks that each public key matches its
 * secret and refuses a file that group or others may read.
 */
#ifndef QIAO_KEYS_H
#define QIAO_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define QIAO_MEMBER_MAX 96

typedef struct qiao_keys {
	char member[QIAO_MEMBER_MAX]; /* "USCC/subsystem" */
	uint8_t sign_pk[32];          /* Ed25519 public key */
	uint8_t curve_pk[32];         /* Curve25519 public key (ZeroMQ CURVE) */
	uint8_t *sign_sk;             /* 64 bytes, libsodium layout; guarded memory */
	uint8_t *curve_sk;            /* 32 bytes; guarded memory */
} qiao_keys_t;

/* Initialise libsodium once; QIAO_ECRYPTO if it cannot.  Every other function
 * here calls it, so callers need not, but daemons call it early. */
int qiao_crypto_init(void);

/* Fresh random keys for `member` (validated by the caller).  0, QIAO_ENOMEM,
 * QIAO_EINVAL (member too long), QIAO_ECRYPTO.  Free with qiao_keys_destroy. */
int qiao_keys_generate(const char *member, qiao_keys_t **out);

/* Deterministic keys from a 32-byte seed (tests and documented examples
 * only): the Ed25519 seed is `seed`, the CURVE secret is SHA-256("curve"||seed). */
int qiao_keys_from_seed(const char *member, const uint8_t seed[32], qiao_keys_t **out);

/* Write `k` to a new file `path` (O_EXCL, mode 0600).  QIAO_EEXIST when the
 * file exists, -errno on I/O errors. */
int qiao_keys_save(const qiao_keys_t *k, const char *path);

/* Read a key file.  QIAO_EKEYPERM when group/others have any access,
 * QIAO_EKEYFILE when malformed or a public key does not match its secret
 * (why[] says which line), -errno when it cannot be read. */
__attribute__((warn_unused_result))
int qiao_keys_load(const char *path, qiao_keys_t **out, char *why, size_t whylen);

/* Wipe and free; *k set to NULL; safe on NULL and twice. */
void qiao_keys_destroy(qiao_keys_t **k);

/* Base64 (standard alphabet, padded) of 32 bytes into out[45]. */
void qiao_b64_32(const uint8_t in[32], char out[45]);
/* Decode base64 that must hold exactly `len` bytes.  0 or QIAO_EKEYFILE. */
__attribute__((warn_unused_result))
int qiao_b64_decode_exact(const char *in, uint8_t *out, size_t len);

#endif
