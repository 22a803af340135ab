/*
 * gw_cache.c - see gw_cache.h.
 */
#include "gw_cache.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qiao_err.h"
#include "qiao_id.h"
#include "qiao_issuer.h"

#define T_LIC 0x434c /* "CL" */
#define T_CRED 0x4343 /* "CC" */
#define T_OUT 0x434f  /* "CO" */
#define T_META 0x434d /* "CM" */
#define QIAO_PUB_KEY_MAX 256

struct gw_cache {
	qiao_table_t *lic, *cred, *out, *meta;
};

static void s_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t s_rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int gw_cache_open(qiao_store_t *st, gw_cache_t **out)
{
	*out = NULL;
	gw_cache_t *c = calloc(1, sizeof *c);
	if (!c)
		return QIAO_ENOMEM;
	int rc = qiao_store_table(st, "cache_licence", T_LIC, &c->lic);
	if (rc == 0)
		rc = qiao_store_table(st, "cache_credit", T_CRED, &c->cred);
	if (rc == 0)
		rc = qiao_store_table(st, "cache_outbox", T_OUT, &c->out);
	if (rc == 0)
		rc = qiao_store_table(st, "cache_meta", T_META, &c->meta);
	if (rc != 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void gw_cache_close(gw_cache_t **c)
{
	if (c && *c) {
		free(*c);
		*c = NULL;
	}
}

/* ---- values ---------------------------------------------------------- */

static uint8_t *s_encode(const struct gw_cached *v, size_t *len)
{
	size_t il = strlen(v->issuer);
	*len = 8 + 8 + 8 + 2 + il + v->len;
	uint8_t *b = malloc(*len);
	if (!b)
		return NULL;
	s_be64(b, v->version);
	s_be64(b + 8, (uint64_t)v->fetched_ms);
	s_be64(b + 16, (uint64_t)v->fresh_until_ms);
	b[24] = (uint8_t)(il >> 8);
	b[25] = (uint8_t)il;
	memcpy(b + 26, v->issuer, il);
	memcpy(b + 26 + il, v->bytes, v->len);
	return b;
}

static int s_decode(const uint8_t *b, size_t len, struct gw_cached *v)
{
	memset(v, 0, sizeof *v);
	if (len < 26)
		return QIAO_ESTORECORRUPT;
	size_t il = (size_t)b[24] << 8 | b[25];
	if (26 + il > len || il >= sizeof v->issuer)
		return QIAO_ESTORECORRUPT;
	v->version = s_rd64(b);
	v->fetched_ms = (int64_t)s_rd64(b + 8);
	v->fresh_until_ms = (int64_t)s_rd64(b + 16);
	memcpy(v->issuer, b + 26, il);
	v->issuer[il] = '\0';
	v->len = len - 26 - il;
	v->bytes = malloc(v->len ? v->len : 1);
	if (!v->bytes)
		return QIAO_ENOMEM;
	memcpy(v->bytes, b + 26 + il, v->len);
	return 0;
}

static int s_get(qiao_txn_t *t, qiao_table_t *tbl, const void *k, size_t kl, struct gw_cached *out)
{
	void *b = NULL;
	size_t len = 0;
	int rc = qiao_store_get(t, tbl, k, kl, &b, &len, NULL);
	if (rc == 0)
		rc = s_decode(b, len, out);
	free(b);
	return rc;
}

static int s_put(qiao_txn_t *t, qiao_table_t *tbl, const void *k, size_t kl, const struct gw_cached *v)
{
	size_t len;
	uint8_t *b = s_encode(v, &len);
	if (!b)
		return QIAO_ENOMEM;
	int rc = qiao_store_put(t, tbl, k, kl, b, len, 0);
	free(b);
	return rc;
}

int gw_cache_licence_get(gw_cache_t *c, qiao_txn_t *t, const char *id, struct gw_cached *out)
{
	return s_get(t, c->lic, id, strlen(id), out);
}

int gw_cache_credit_get(gw_cache_t *c, qiao_txn_t *t, const uint8_t key[32], struct gw_cached *out)
{
	return s_get(t, c->cred, key, 32, out);
}

int gw_cache_licence_put(gw_cache_t *c, qiao_txn_t *t, const char *id, const struct gw_cached *v, int replace_equal,
			 int *stored)
{
	*stored = 0;
	struct gw_cached old;
	int rc = s_get(t, c->lic, id, strlen(id), &old);
	if (rc == 0) {
		uint64_t ov = old.version;
		free(old.bytes);
		if (ov > v->version || (ov == v->version && !replace_equal))
			return 0; /* never backwards */
	} else if (rc != QIAO_ENOTFOUND) {
		return rc;
	}
	rc = s_put(t, c->lic, id, strlen(id), v);
	*stored = rc == 0;
	return rc;
}

int gw_cache_credit_put(gw_cache_t *c, qiao_txn_t *t, const uint8_t key[32], const struct gw_cached *v)
{
	return s_put(t, c->cred, key, 32, v);
}

struct inval {
	qiao_table_t *tbl;
	uint8_t keys[256][32];
	size_t n;
};

static int s_collect(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)v, (void)vl, (void)exp;
	struct inval *w = arg;
	if (kl != 32)
		return 0;
	if (w->n == 256)
		return 1;
	memcpy(w->keys[w->n++], k, 32);
	return 0;
}

int gw_cache_credit_invalidate(gw_cache_t *c, qiao_txn_t *t, const uint8_t subject16[16], size_t *removed)
{
	*removed = 0;
	for (;;) {
		struct inval *w = calloc(1, sizeof *w);
		if (!w)
			return QIAO_ENOMEM;
		int rc = qiao_store_iter_prefix(t, c->cred, subject16, 16, s_collect, w);
		if (rc < 0) {
			free(w);
			return rc;
		}
		for (size_t i = 0; i < w->n; i++) {
			int d = qiao_store_del(t, c->cred, w->keys[i], 32);
			if (d != 0 && d != QIAO_ENOTFOUND) {
				free(w);
				return d;
			}
			(*removed)++;
		}
		size_t n = w->n;
		free(w);
		if (n < 256)
			return 0;
	}
}

/* ---- outbox ----------------------------------------------------------- */

static int s_meta_get(gw_cache_t *c, qiao_txn_t *t, const char *k, uint64_t *v)
{
	void *b = NULL;
	size_t len = 0;
	*v = 0;
	int rc = qiao_store_get(t, c->meta, k, strlen(k), &b, &len, NULL);
	if (rc == 0 && len == 8)
		*v = s_rd64(b);
	else if (rc == 0)
		rc = QIAO_ESTORECORRUPT;
	free(b);
	return rc == QIAO_ENOTFOUND ? 0 : rc;
}

static int s_meta_put(gw_cache_t *c, qiao_txn_t *t, const char *k, uint64_t v)
{
	uint8_t b[8];
	s_be64(b, v);
	return qiao_store_put(t, c->meta, k, strlen(k), b, 8, 0);
}

int gw_cache_outbox_append(gw_cache_t *c, qiao_txn_t *t, const char *issuer, const uint8_t *ev, size_t len,
			   uint64_t *seq)
{
	uint64_t s;
	int rc = s_meta_get(c, t, "seq", &s);
	if (rc != 0)
		return rc;
	s++;
	struct gw_cached v = {.version = s, .bytes = (uint8_t *)ev, .len = len};
	snprintf(v.issuer, sizeof v.issuer, "%s", issuer);
	uint8_t k[8];
	s_be64(k, s);
	rc = s_put(t, c->out, k, 8, &v);
	if (rc == 0)
		rc = s_meta_put(c, t, "seq", s);
	if (rc == 0 && seq)
		*seq = s;
	return rc;
}

int gw_cache_outbox_publish(gw_cache_t *c, qiao_txn_t *t, const char *licence_id, uint64_t version,
			    const char *issuer, const uint8_t *event, size_t len, int *appended)
{
	*appended = 0;
	char k[QIAO_PUB_KEY_MAX];
	snprintf(k, sizeof k, "pub/%s", licence_id);
	uint64_t last;
	int rc = s_meta_get(c, t, k, &last);
	if (rc != 0 || version <= last)
		return rc;
	rc = gw_cache_outbox_append(c, t, issuer, event, len, NULL);
	if (rc == 0)
		rc = s_meta_put(c, t, k, version);
	*appended = rc == 0;
	return rc;
}

int gw_cache_outbox_next(gw_cache_t *c, qiao_txn_t *t, uint64_t after, uint64_t *seq, uint8_t **bytes, size_t *len)
{
	uint8_t k[8];
	s_be64(k, after + 1);
	struct gw_cached v;
	int rc = s_get(t, c->out, k, 8, &v);
	if (rc != 0)
		return rc;
	*seq = after + 1;
	*bytes = v.bytes;
	*len = v.len;
	return 0;
}

int gw_cache_outbox_size(gw_cache_t *c, qiao_txn_t *t, uint64_t *last)
{
	return s_meta_get(c, t, "seq", last);
}

int gw_cache_cursor_get(gw_cache_t *c, qiao_txn_t *t, const char *member, uint64_t *seq)
{
	char k[128];
	snprintf(k, sizeof k, "cur/%s", member);
	return s_meta_get(c, t, k, seq);
}

int gw_cache_cursor_put(gw_cache_t *c, qiao_txn_t *t, const char *member, uint64_t seq)
{
	char k[128];
	snprintf(k, sizeof k, "cur/%s", member);
	uint64_t cur;
	int rc = s_meta_get(c, t, k, &cur);
	if (rc != 0)
		return rc;
	return seq > cur ? s_meta_put(c, t, k, seq) : 0;
}

int gw_cache_counts(gw_cache_t *c, qiao_txn_t *t, uint64_t *licences, uint64_t *credit)
{
	int rc = qiao_store_count(t, c->lic, licences);
	if (rc == 0)
		rc = qiao_store_count(t, c->cred, credit);
	return rc;
}

/* ---- keys -------------------------------------------------------------- */

void gw_cache_subject_key(int type, const char *id, uint8_t out[16])
{
	crypto_hash_sha256_state st;
	uint8_t h[32], tb = (uint8_t)type;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)"subject", 7);
	crypto_hash_sha256_update(&st, &tb, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_hash_sha256_final(&st, h);
	memcpy(out, h, 16);
}

void gw_cache_credit_key(const Qiao__V1__CreditRecordsRequest *q, uint8_t key[32])
{
	const Qiao__V1__DataSubject *s = q->subject;
	gw_cache_subject_key(s ? s->type : 0, s && s->id ? s->id : "", key);
	crypto_hash_sha256_state st;
	uint8_t h[32];
	crypto_hash_sha256_init(&st);
	for (size_t i = 0; i < q->n_kinds; i++) {
		uint8_t k = (uint8_t)q->kinds[i];
		crypto_hash_sha256_update(&st, &k, 1);
	}
	uint8_t f = q->include_repaired ? 1 : 0;
	crypto_hash_sha256_update(&st, (const unsigned char *)"|", 1);
	crypto_hash_sha256_update(&st, &f, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)q->from_date, strlen(q->from_date));
	crypto_hash_sha256_update(&st, (const unsigned char *)"|", 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)q->until_date, strlen(q->until_date));
	crypto_hash_sha256_final(&st, h);
	memcpy(key + 16, h, 16);
}

/* ---- verification --------------------------------------------------------- */

int gw_cache_verify_licence(const Qiao__V1__SignedLicence *sl, const char *issuer, const uint8_t pk[32],
			    Qiao__V1__ElectronicLicence **out, char *why, size_t whylen)
{
	*out = NULL;
	if (!sl || !sl->signature || !sl->licence.len) {
		snprintf(why, whylen, "no signed licence");
		return QIAO_EBADSIG;
	}
	int rc = qiao_issuer_verify(sl->signature, QIAO_DOMAIN_LICENCE, sl->licence.data, sl->licence.len, issuer, pk,
				    why, whylen);
	if (rc != 0)
		return rc;
	Qiao__V1__ElectronicLicence *l = qiao__v1__electronic_licence__unpack(NULL, sl->licence.len, sl->licence.data);
	if (!l) {
		snprintf(why, whylen, "the signed licence bytes do not decode as qiao.v1.ElectronicLicence");
		return QIAO_EDECODE;
	}
	char w2[200];
	if (qiao_id_check_licence(l->licence_id, w2, sizeof w2) != 0) {
		snprintf(why, whylen, "licence id '%.80s': %s", l->licence_id, w2);
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
		return QIAO_EIDENT;
	}
	size_t ul = strcspn(issuer, "/");
	if (strlen(l->issuer_uscc) != ul || strncmp(l->issuer_uscc, issuer, ul) != 0) {
		snprintf(why, whylen, "licence %s names issuer %.30s, but %s served it", l->licence_id, l->issuer_uscc,
			 issuer);
		qiao__v1__electronic_licence__free_unpacked(l, NULL);
		return QIAO_EBADSIG;
	}
	*out = l;
	return 0;
}

int gw_cache_verify_credit(const Qiao__V1__CreditRecordsReply *r, const char *issuer, const uint8_t pk[32], char *why,
			   size_t whylen)
{
	for (size_t i = 0; i < r->n_records; i++) {
		const Qiao__V1__ServedCreditRecord *s = r->records[i];
		if (!s || !s->record || !s->record->signature) {
			snprintf(why, whylen, "record %zu carries no issuer signature", i);
			return QIAO_EBADSIG;
		}
		int rc = qiao_issuer_verify(s->record->signature, QIAO_DOMAIN_CREDIT_RECORD, s->record->record.data,
					    s->record->record.len, issuer, pk, why, whylen);
		if (rc != 0)
			return rc;
	}
	return 0;
}
