/*
 * gw_cache.h - the gateway's cache of electronic licences (电子证照) and
 * credit records, and the durable outbox of licence events (docs/cache.md).
 *
 * Tables in the gateway's store:
 *   cache_licence  licence id                       -> cached SignedLicence
 *   cache_credit   16-byte subject key || 16-byte query key -> cached CreditRecordsReply
 *   cache_outbox   u64 BE sequence                   -> LicenceEvent (issuer, bytes)
 *   cache_meta     "seq" -> u64; "cur/<member>" -> u64 (events delivered to it)
 *
 * A cached value: u64 version, i64 fetched_ms, i64 fresh_until_ms, u16
 * issuer length, issuer member id, then the object bytes exactly as the
 * issuer signed them (SignedLicence) or answered them (CreditRecordsReply,
 * every record's signature verified before it was stored).
 *
 * Nothing is stored that was not verified: gw_cache_verify_licence() and
 * gw_cache_verify_credit() check the issuer's signature over the exact
 * bytes before a caller may put them.  Writes happen inside group-commit
 * transactions; reads in short read transactions.
 */
#ifndef QIAO_GW_CACHE_H
#define QIAO_GW_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "credit.pb-c.h"
#include "licence.pb-c.h"
#include "qiao_store.h"

typedef struct gw_cache gw_cache_t;

struct gw_cached {
	uint64_t version;
	int64_t fetched_ms, fresh_until_ms;
	char issuer[96];
	uint8_t *bytes; /* malloc'd, caller frees */
	size_t len;
};

int gw_cache_open(qiao_store_t *st, gw_cache_t **out);
void gw_cache_close(gw_cache_t **c);

/* Reads: 0 and *out, QIAO_ENOTFOUND, or a store error. */
int gw_cache_licence_get(gw_cache_t *c, qiao_txn_t *t, const char *licence_id, struct gw_cached *out);
int gw_cache_credit_get(gw_cache_t *c, qiao_txn_t *t, const uint8_t key[32], struct gw_cached *out);

/* Writes (in a write transaction).  A licence is stored only when its
 * version is newer than the cached one's, or the same with replace_equal
 * (a refresh); an event never goes backwards.  *stored says whether it
 * was. */
int gw_cache_licence_put(gw_cache_t *c, qiao_txn_t *t, const char *licence_id, const struct gw_cached *v,
			 int replace_equal, int *stored);
int gw_cache_credit_put(gw_cache_t *c, qiao_txn_t *t, const uint8_t key[32], const struct gw_cached *v);
/* Drop every cached credit answer about a subject (its 16-byte key). */
int gw_cache_credit_invalidate(gw_cache_t *c, qiao_txn_t *t, const uint8_t subject16[16], size_t *removed);

/* The outbox.  gw_cache_outbox_publish() appends an issuer's event about
 * a licence unless an event of that version or a newer one was already
 * appended (*appended says). */
int gw_cache_outbox_publish(gw_cache_t *c, qiao_txn_t *t, const char *licence_id, uint64_t version,
			    const char *issuer, const uint8_t *event, size_t len, int *appended);
int gw_cache_outbox_append(gw_cache_t *c, qiao_txn_t *t, const char *issuer, const uint8_t *event, size_t len,
			   uint64_t *seq);
/* The event after `after` (the first has seq 1): 0 and *seq, *bytes
 * (malloc'd), or QIAO_ENOTFOUND when there is none yet. */
int gw_cache_outbox_next(gw_cache_t *c, qiao_txn_t *t, uint64_t after, uint64_t *seq, uint8_t **bytes, size_t *len);
int gw_cache_outbox_size(gw_cache_t *c, qiao_txn_t *t, uint64_t *last_seq);
int gw_cache_cursor_get(gw_cache_t *c, qiao_txn_t *t, const char *member, uint64_t *seq);
int gw_cache_cursor_put(gw_cache_t *c, qiao_txn_t *t, const char *member, uint64_t seq);

/* Counts of cached objects (for qiao status). */
int gw_cache_counts(gw_cache_t *c, qiao_txn_t *t, uint64_t *licences, uint64_t *credit);

/* The keys of a credit query: subject key = SHA-256("subject" || type ||
 * id)[0..16), query key = SHA-256 of the request's filter fields. */
void gw_cache_credit_key(const Qiao__V1__CreditRecordsRequest *q, uint8_t key[32]);
void gw_cache_subject_key(int type, const char *id, uint8_t out[16]);

/*
 * Verify a SignedLicence from `issuer` (member id, Ed25519 key pk): the
 * issuer signature over the exact licence bytes (domain qiao.v1.licence),
 * then the licence decodes, its id is valid and its issuer_uscc is the
 * issuer member's USCC.  0 and *out (free with
 * qiao__v1__electronic_licence__free_unpacked), or QIAO_EBADSIG /
 * QIAO_EDECODE / QIAO_EIDENT with why[].
 */
__attribute__((warn_unused_result))
int gw_cache_verify_licence(const Qiao__V1__SignedLicence *sl, const char *issuer, const uint8_t pk[32],
			    Qiao__V1__ElectronicLicence **out, char *why, size_t whylen);
/* Every record of a credit answer, likewise (domain qiao.v1.credit-record). */
__attribute__((warn_unused_result))
int gw_cache_verify_credit(const Qiao__V1__CreditRecordsReply *r, const char *issuer, const uint8_t pk[32], char *why,
			   size_t whylen);

#endif
