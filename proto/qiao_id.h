/*
 * qiao_id.h - validators for the identifiers Qiao meets at its edges.
 *
 * Every validator takes a NUL-terminated string and returns 0 when it is
 * valid, or QIAO_EIDENT when it is not.  When `why` is not NULL, a failure
 * writes a short English reason into it (at most `whylen` bytes, always
 * NUL-terminated), e.g. "check character is 4, expected X".  Validators never
 * allocate and are safe to call from any thread.
 *
 * Rules (see ../shared/DOMAIN.md):
 *  - 居民身份证号码, GB 11643-1999: 17 digits + check (digit or X), a real
 *    calendar date YYYYMMDD at positions 7-14 between 1900-01-01 and today;
 *  - 统一社会信用代码 (USCC), GB 32100-2015: 18 characters of
 *    "0123456789ABCDEFGHJKLMNPQRTUWXY", position 18 check, positions 9-17 a
 *    GB 11714 organisation code with its own check; legacy codes that fail a
 *    check can be admitted through a qiao_id_policy exception list;
 *  - 不动产单元代码, GB/T 37346-2019: 28 characters,
 *    ^\d{6}\d{3}\d{3}[GJZ][A-Z]\d{5}[FLQW]\d{8}$ and W => 00000000;
 *  - 不动产权证书号 / 不动产登记证明号: 省简称(YYYY)市县名不动产权第N号 /
 *    …不动产证明第N号, N 6-8 digits, brackets half- or full-width;
 *  - 电子证照标识, GB/T 36904-2018: 1.2.156.3005.2.T.I.N.V.C with ISO 7064
 *    MOD 37,36 check character C;
 *  - member id: "<USCC>/<subsystem>", subsystem [a-z0-9][a-z0-9-]{0,31}.
 */
#ifndef QIAO_ID_H
#define QIAO_ID_H

#include <stddef.h>

enum qiao_id_kind {
	QIAO_ID_UNKNOWN = 0,
	QIAO_ID_RESIDENT,  /* 居民身份证号码 */
	QIAO_ID_USCC,      /* 统一社会信用代码 */
	QIAO_ID_UNIT,      /* 不动产单元代码 */
	QIAO_ID_CERT,      /* 不动产权证书号 */
	QIAO_ID_PROOF,     /* 不动产登记证明号 */
	QIAO_ID_LICENCE,   /* 电子证照标识 */
	QIAO_ID_MEMBER,    /* Qiao member id, USCC/subsystem */
};

/* Exception list for legacy USCCs whose check characters do not hold.
 * Opaque; build with qiao_id_policy_new() + qiao_id_policy_add_legacy_uscc(). */
typedef struct qiao_id_policy qiao_id_policy_t;

/* A new, empty policy (no exceptions), or NULL when out of memory. */
qiao_id_policy_t *qiao_id_policy_new(void);
/* Admit `code` (18 characters of the USCC alphabet; its checks may fail).
 * Returns 0, QIAO_EIDENT when `code` is not 18 USCC characters, QIAO_ENOMEM. */
int qiao_id_policy_add_legacy_uscc(qiao_id_policy_t *p, const char *code);
/* Free the policy and set *p to NULL; safe on NULL and twice. */
void qiao_id_policy_destroy(qiao_id_policy_t **p);

/* The kind's human name: "resident-id", "uscc", "unit", "cert", "proof",
 * "licence", "member", "unknown".  Static string. */
const char *qiao_id_kind_name(enum qiao_id_kind kind);

__attribute__((warn_unused_result))
int qiao_id_check_resident(const char *s, char *why, size_t whylen);
/* `p` may be NULL (no exceptions). */
__attribute__((warn_unused_result))
int qiao_id_check_uscc(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen);
__attribute__((warn_unused_result))
int qiao_id_check_unit(const char *s, char *why, size_t whylen);
/* Certificate (不动产权) and proof (不动产证明) numbers.  On success, when
 * `norm` is not NULL, writes the normalised form (full-width brackets
 * （） replaced by half-width ()) into norm[normlen]; QIAO_EINVAL if it does
 * not fit. */
__attribute__((warn_unused_result))
int qiao_id_check_cert(const char *s, char *norm, size_t normlen, char *why, size_t whylen);
__attribute__((warn_unused_result))
int qiao_id_check_proof(const char *s, char *norm, size_t normlen, char *why, size_t whylen);
__attribute__((warn_unused_result))
int qiao_id_check_licence(const char *s, char *why, size_t whylen);
/* `p` may be NULL. */
__attribute__((warn_unused_result))
int qiao_id_check_member(const qiao_id_policy_t *p, const char *s, char *why, size_t whylen);

/* Guess the kind of `s` from its shape alone (no check digits), or
 * QIAO_ID_UNKNOWN. */
enum qiao_id_kind qiao_id_detect(const char *s);

/* Detect the kind, then validate it.  *kind (if not NULL) receives the
 * detected kind, QIAO_ID_UNKNOWN when the shape matched none. */
__attribute__((warn_unused_result))
int qiao_id_check(const qiao_id_policy_t *p, const char *s, enum qiao_id_kind *kind,
		  char *why, size_t whylen);

/* ISO 7064 MOD 37,36 check character over `s` (0-9A-Z only); returns the
 * character, or 0 when `s` holds another character. */
char qiao_id_mod3736(const char *s, size_t len);

#endif
