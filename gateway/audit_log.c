/*
 * audit_log.c - see audit_log.h.
 */
#include "audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_merkle.h"
#include "audit_note.h"
#include "control.pb-c.h"
#include "envelope.pb-c.h"
#include "qiao_envelope.h"
#include "qiao_err.h"
#include "qiao_keys.h"

#define T_ENTRY 0x4145 /* record types: "AE", "AN", "AC", "AI", "AM" */
#define T_NODE 0x414e
#define T_CKPT 0x4143
#define T_INDEX 0x4149
#define T_META 0x414d
#define KEY_FILE "audit-index.key"
#define MAX_ENTRY (1u << 20)

struct audit_log {
	qiao_table_t *entry, *node, *ckpt, *index, *meta;
	uint8_t ikey[32];
	char origin[256];
	char gateway[QIAO_MEMBER_MAX];
	uint64_t every;
	const uint8_t *sk;
	uint8_t pk[32];
	int writer;
};

/* ---- helpers ------------------------------------------------------------- */

static void s_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t s_rd_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

struct getter {
	audit_log_t *l;
	qiao_txn_t *t;
};

static int s_get_node(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	struct getter *g = arg;
	uint8_t k[9];
	k[0] = (uint8_t)level;
	s_be64(k + 1, index);
	void *v = NULL;
	size_t vl = 0;
	int rc = qiao_store_get(g->t, g->l->node, k, sizeof k, &v, &vl, NULL);
	if (rc == 0 && vl != 32)
		rc = QIAO_ESTORECORRUPT;
	if (rc == 0)
		memcpy(out, v, 32);
	free(v);
	return rc;
}

static int s_put_node(void *arg, unsigned level, uint64_t index, const uint8_t h[32])
{
	struct getter *g = arg;
	uint8_t k[9];
	k[0] = (uint8_t)level;
	s_be64(k + 1, index);
	return qiao_store_put(g->t, g->l->node, k, sizeof k, h, 32, 0);
}

static int s_meta_u64(audit_log_t *l, qiao_txn_t *t, const char *key, uint64_t *out)
{
	void *v = NULL;
	size_t vl = 0;
	int rc = qiao_store_get(t, l->meta, key, strlen(key), &v, &vl, NULL);
	*out = 0;
	if (rc == QIAO_ENOTFOUND) {
		free(v);
		return 0;
	}
	if (rc == 0 && vl != 8)
		rc = QIAO_ESTORECORRUPT;
	if (rc == 0)
		for (int i = 7; i >= 0; i--)
			*out = *out << 8 | ((uint8_t *)v)[i];
	free(v);
	return rc;
}

static int s_meta_put_u64(audit_log_t *l, qiao_txn_t *t, const char *key, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++, v >>= 8)
		b[i] = (uint8_t)v;
	return qiao_store_put(t, l->meta, key, strlen(key), b, 8, 0);
}

/* ---- the index key -------------------------------------------------------- */

static int s_index_key(audit_log_t *l, const char *dir, int create, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, KEY_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		char b64[45];
		randombytes_buf(l->ikey, sizeof l->ikey);
		qiao_b64_32(l->ikey, b64);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return -errno;
		}
		char text[128];
		int n = snprintf(text, sizeof text, "# Qiao audit subject index key (HMAC-SHA-256). Secret.\n"
						    "audit-index-key-%d: %s\n",
				 AUDIT_SUBJECT_KEY_ID, b64);
		if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return QIAO_EIO;
		}
		close(fd);
		sodium_memzero(b64, sizeof b64);
		return 0;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return errno == ENOENT ? QIAO_ENOTFOUND : -errno;
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077)) {
		close(fd);
		snprintf(err, errlen, "%s may be read by group or others: chmod 600 it", path);
		return QIAO_EKEYPERM;
	}
	char text[256];
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0) {
		snprintf(err, errlen, "cannot read %s", path);
		return QIAO_EKEYFILE;
	}
	text[n] = '\0';
	char want[40];
	snprintf(want, sizeof want, "audit-index-key-%d: ", AUDIT_SUBJECT_KEY_ID);
	char *p = strstr(text, want);
	if (!p) {
		snprintf(err, errlen, "%s: no line '%s<base64>'", path, want);
		return QIAO_EKEYFILE;
	}
	p += strlen(want);
	char *nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	int rc = qiao_b64_decode_exact(p, l->ikey, sizeof l->ikey);
	sodium_memzero(text, sizeof text);
	if (rc != 0) {
		snprintf(err, errlen, "%s: the key is not base64 of 32 bytes", path);
		return QIAO_EKEYFILE;
	}
	return 0;
}

/* ---- open / close --------------------------------------------------------- */

int audit_log_open(qiao_store_t *st, const struct audit_cfg *cfg, audit_log_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (qiao_crypto_init() != 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		return QIAO_ECRYPTO;
	}
	audit_log_t *l = sodium_malloc(sizeof *l);
	if (!l)
		return QIAO_ENOMEM;
	memset(l, 0, sizeof *l);
	struct {
		const char *name;
		uint16_t type;
		qiao_table_t **tbl;
	} t[] = {
		{"audit_entry", T_ENTRY, &l->entry}, {"audit_node", T_NODE, &l->node},
		{"audit_ckpt", T_CKPT, &l->ckpt},    {"audit_index", T_INDEX, &l->index},
		{"audit_meta", T_META, &l->meta},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		rc = qiao_store_table(st, t[i].name, t[i].type, t[i].tbl);
		if (rc != 0) {
			if (rc == QIAO_ENOTFOUND)
				snprintf(err, errlen, "this store holds no audit log (table %s missing)", t[i].name);
			else
				snprintf(err, errlen, "table %s: %s", t[i].name, qiao_strerror(rc));
			goto fail;
		}
	}
	rc = s_index_key(l, cfg->store_dir, !cfg->read_only, err, errlen);
	if (rc != 0)
		goto fail;
	if (!cfg->read_only) {
		if (!cfg->sign_sk || !cfg->origin || !cfg->gateway || strlen(cfg->origin) >= sizeof l->origin ||
		    strlen(cfg->gateway) >= sizeof l->gateway) {
			rc = QIAO_EINVAL;
			snprintf(err, errlen, "audit log writer: origin, gateway and signing key required");
			goto fail;
		}
		l->writer = 1;
		l->sk = cfg->sign_sk;
		memcpy(l->pk, cfg->sign_pk, 32);
		snprintf(l->origin, sizeof l->origin, "%s", cfg->origin);
		snprintf(l->gateway, sizeof l->gateway, "%s", cfg->gateway);
		l->every = cfg->checkpoint_entries ? cfg->checkpoint_entries : 1000;
		/* record the verifier key (informational) */
		char vkey[512];
		if (note_vkey(l->origin, l->pk, vkey, sizeof vkey) == 0) {
			qiao_txn_t *tx = NULL;
			rc = qiao_txn_begin(st, 1, &tx);
			if (rc == 0)
				rc = qiao_store_put(tx, l->meta, "vkey", 4, vkey, strlen(vkey), 0);
			if (rc == 0)
				rc = qiao_txn_commit(&tx);
			else
				qiao_txn_abort(&tx);
			if (rc != 0) {
				snprintf(err, errlen, "audit log: cannot record the verifier key: %s", qiao_strerror(rc));
				goto fail;
			}
		}
	}
	*out = l;
	return 0;
fail:
	sodium_free(l);
	return rc;
}

void audit_log_close(audit_log_t **lp)
{
	if (!lp || !*lp)
		return;
	sodium_free(*lp);
	*lp = NULL;
}

void audit_log_subject_hash(const audit_log_t *l, const char *type, const char *id, uint8_t out[AUDIT_HASH])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, l->ikey, sizeof l->ikey);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)type, strlen(type));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_auth_hmacsha256_final(&st, out);
}

/* ---- writing -------------------------------------------------------------- */

static void s_key16(char kind, const char *value, uint8_t out[16])
{
	uint8_t h[32];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)&kind, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)value, strlen(value));
	crypto_hash_sha256_final(&st, h);
	memcpy(out, h, 16);
}

static int s_index_put(audit_log_t *l, qiao_txn_t *t, char kind, const uint8_t key16[16], uint64_t index)
{
	uint8_t k[25];
	k[0] = (uint8_t)kind;
	memcpy(k + 1, key16, 16);
	s_be64(k + 17, index);
	return qiao_store_put(t, l->index, k, sizeof k, "", 0, 0);
}

static int s_index_str(audit_log_t *l, qiao_txn_t *t, char kind, const char *v, uint64_t index)
{
	if (!v || !v[0])
		return 0;
	uint8_t k[16];
	s_key16(kind, v, k);
	return s_index_put(l, t, kind, k, index);
}

static int s_checkpoint_make(audit_log_t *l, qiao_txn_t *t, uint64_t size, int64_t now_ms)
{
	struct getter g = {l, t};
	uint8_t root[32];
	int rc = merkle_root(s_get_node, &g, size, root);
	if (rc != 0)
		return rc;
	char *body = NULL, *note = NULL;
	rc = checkpoint_format(l->origin, size, root, &body);
	if (rc != 0)
		return rc;
	rc = note_sign(body, strlen(body), l->origin, l->sk, &note);
	free(body);
	if (rc != 0)
		return rc;
	Qiao__V1__Checkpoint c = QIAO__V1__CHECKPOINT__INIT;
	c.origin = l->origin;
	c.tree_size = size;
	c.root_hash.data = root;
	c.root_hash.len = 32;
	c.note = note;
	c.time_ms = now_ms;
	size_t len = qiao__v1__checkpoint__get_packed_size(&c);
	uint8_t *buf = malloc(len);
	if (!buf) {
		free(note);
		return QIAO_ENOMEM;
	}
	qiao__v1__checkpoint__pack(&c, buf);
	uint8_t k[8];
	s_be64(k, size);
	rc = qiao_store_put(t, l->ckpt, k, 8, buf, len, 0);
	free(buf);
	free(note);
	if (rc == 0)
		rc = s_meta_put_u64(l, t, "ckpt", size);
	return rc;
}

int audit_log_checkpoint(audit_log_t *l, qiao_txn_t *t, int64_t now_ms, int *made)
{
	if (made)
		*made = 0;
	if (!l->writer)
		return QIAO_EINVAL;
	uint64_t size, last;
	int rc = s_meta_u64(l, t, "size", &size);
	if (rc == 0)
		rc = s_meta_u64(l, t, "ckpt", &last);
	if (rc != 0)
		return rc;
	if (size == 0 || size <= last)
		return 0;
	rc = s_checkpoint_make(l, t, size, now_ms);
	if (rc == 0 && made)
		*made = 1;
	return rc;
}

int audit_log_append(audit_log_t *l, qiao_txn_t *t, Qiao__V1__AuditEntry *e, uint64_t *index)
{
	if (!l->writer)
		return QIAO_EINVAL;
	uint64_t size;
	int rc = s_meta_u64(l, t, "size", &size);
	if (rc != 0)
		return rc;
	e->index = size;
	e->gateway = l->gateway;
	if (!e->time_ms)
		e->time_ms = qiao_now_ms();
	size_t len = qiao__v1__audit_entry__get_packed_size(e);
	if (len > MAX_ENTRY)
		return QIAO_ETOOBIG;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return QIAO_ENOMEM;
	qiao__v1__audit_entry__pack(e, buf);
	uint8_t k[8];
	s_be64(k, size);
	rc = qiao_store_insert(t, l->entry, k, 8, buf, len, 0);
	uint8_t leaf[32];
	merkle_leaf_hash(buf, len, leaf);
	free(buf);
	if (rc != 0)
		return rc == QIAO_EEXIST ? QIAO_ESTORECORRUPT : rc;

	struct getter g = {l, t};
	struct merkle_frontier fr;
	rc = merkle_frontier_load(&fr, size, s_get_node, &g);
	if (rc == 0)
		rc = merkle_frontier_append(&fr, leaf, s_put_node, &g);
	if (rc != 0)
		return rc;

	rc = s_index_str(l, t, 'c', e->case_id, size);
	if (rc == 0)
		rc = s_index_str(l, t, 'm', e->requester, size);
	if (rc == 0 && e->provider && e->provider[0] && (!e->requester || strcmp(e->provider, e->requester) != 0))
		rc = s_index_str(l, t, 'm', e->provider, size);
	if (rc == 0)
		rc = s_index_str(l, t, 'u', e->end_user, size);
	if (rc == 0)
		rc = s_index_str(l, t, 's', e->service, size);
	for (size_t i = 0; rc == 0 && i < e->n_subject_hashes; i++)
		if (e->subject_hashes[i].len == 32)
			rc = s_index_put(l, t, 'd', e->subject_hashes[i].data, size);
	if (rc == 0) {
		uint8_t tk[17];
		tk[0] = 't';
		s_be64(tk + 1, (uint64_t)e->time_ms);
		s_be64(tk + 9, size);
		rc = qiao_store_put(t, l->index, tk, sizeof tk, "", 0, 0);
	}
	if (rc == 0)
		rc = s_meta_put_u64(l, t, "size", size + 1);
	if (rc != 0)
		return rc;
	uint64_t last;
	rc = s_meta_u64(l, t, "ckpt", &last);
	if (rc == 0 && size + 1 - last >= l->every)
		rc = s_checkpoint_make(l, t, size + 1, e->time_ms);
	if (rc == 0 && index)
		*index = size;
	return rc;
}

/* ---- reading -------------------------------------------------------------- */

int audit_log_size(audit_log_t *l, qiao_txn_t *t, uint64_t *size)
{
	return s_meta_u64(l, t, "size", size);
}

int audit_log_vkey(audit_log_t *l, qiao_txn_t *t, char *out, size_t outlen)
{
	void *v = NULL;
	size_t vl = 0;
	int rc = qiao_store_get(t, l->meta, "vkey", 4, &v, &vl, NULL);
	if (outlen)
		out[0] = '\0';
	if (rc == 0 && vl < outlen) {
		memcpy(out, v, vl);
		out[vl] = '\0';
	}
	free(v);
	return rc == QIAO_ENOTFOUND ? 0 : rc;
}

int audit_log_entry(audit_log_t *l, qiao_txn_t *t, uint64_t index, uint8_t **bytes, size_t *len)
{
	uint8_t k[8];
	s_be64(k, index);
	void *v = NULL;
	int rc = qiao_store_get(t, l->entry, k, 8, &v, len, NULL);
	*bytes = v;
	return rc;
}

int audit_log_checkpoint_get(audit_log_t *l, qiao_txn_t *t, uint64_t size, Qiao__V1__Checkpoint **out)
{
	*out = NULL;
	int rc;
	if (size == UINT64_MAX) {
		rc = s_meta_u64(l, t, "ckpt", &size);
		if (rc != 0)
			return rc;
		if (size == 0)
			return QIAO_ENOTFOUND;
	}
	uint8_t k[8];
	s_be64(k, size);
	void *v = NULL;
	size_t vl = 0;
	rc = qiao_store_get(t, l->ckpt, k, 8, &v, &vl, NULL);
	if (rc == 0) {
		*out = qiao__v1__checkpoint__unpack(NULL, vl, v);
		if (!*out)
			rc = QIAO_ESTORECORRUPT;
	}
	free(v);
	return rc;
}

struct ck_walk {
	int (*fn)(void *, const Qiao__V1__Checkpoint *);
	void *arg;
};

static int s_ck_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)k, (void)kl, (void)exp;
	struct ck_walk *w = arg;
	Qiao__V1__Checkpoint *c = qiao__v1__checkpoint__unpack(NULL, vl, v);
	if (!c)
		return QIAO_ESTORECORRUPT;
	int rc = w->fn(w->arg, c);
	qiao__v1__checkpoint__free_unpacked(c, NULL);
	return rc;
}

int audit_log_checkpoints(audit_log_t *l, qiao_txn_t *t, int (*fn)(void *, const Qiao__V1__Checkpoint *), void *arg)
{
	struct ck_walk w = {fn, arg};
	return qiao_store_iter_prefix(t, l->ckpt, NULL, 0, s_ck_cb, &w);
}

int audit_log_root(audit_log_t *l, qiao_txn_t *t, uint64_t size, uint8_t out[AUDIT_HASH])
{
	struct getter g = {l, t};
	return merkle_root(s_get_node, &g, size, out);
}

int audit_log_prove(audit_log_t *l, qiao_txn_t *t, uint64_t index, uint64_t size, uint8_t (*proof)[AUDIT_HASH],
		    size_t *n)
{
	struct getter g = {l, t};
	return merkle_inclusion_proof(s_get_node, &g, index, size, proof, AUDIT_MAX_PROOF, n);
}

/*
 * The node cache of audit_log_prove_cached.  Stored nodes never change once
 * written, so a node read for one proof serves every later proof that
 * needs it: the proofs of a page of recent entries share their upper
 * levels and the ragged right edge of the tree.
 */
#define PC_SLOTS 2048u

struct audit_proof_cache {
	struct pc_slot {
		uint64_t index;
		uint8_t level, used;
		uint8_t h[32];
	} slot[PC_SLOTS];
	uint64_t lookups, reads;
};

audit_proof_cache_t *audit_proof_cache_new(void)
{
	return calloc(1, sizeof(audit_proof_cache_t));
}

void audit_proof_cache_free(audit_proof_cache_t **c)
{
	if (c) {
		free(*c);
		*c = NULL;
	}
}

void audit_proof_cache_stats(const audit_proof_cache_t *c, uint64_t *lookups, uint64_t *reads)
{
	*lookups = c->lookups;
	*reads = c->reads;
}

struct cgetter {
	struct getter g;
	audit_proof_cache_t *c;
};

static int s_get_node_cached(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	struct cgetter *cg = arg;
	audit_proof_cache_t *c = cg->c;
	struct pc_slot *s = &c->slot[((index ^ (uint64_t)level << 58) * 0x9e3779b97f4a7c15ULL) >> 53 & (PC_SLOTS - 1)];
	c->lookups++;
	if (s->used && s->level == level && s->index == index) {
		memcpy(out, s->h, 32);
		return 0;
	}
	c->reads++;
	int rc = s_get_node(&cg->g, level, index, out);
	if (rc == 0) {
		s->used = 1;
		s->level = (uint8_t)level;
		s->index = index;
		memcpy(s->h, out, 32);
	}
	return rc;
}

int audit_log_prove_cached(audit_log_t *l, qiao_txn_t *t, audit_proof_cache_t *c, uint64_t index, uint64_t size,
			   uint8_t (*proof)[AUDIT_HASH], size_t *n)
{
	if (!c)
		return audit_log_prove(l, t, index, size, proof, n);
	struct cgetter cg = {{l, t}, c};
	return merkle_inclusion_proof(s_get_node_cached, &cg, index, size, proof, AUDIT_MAX_PROOF, n);
}

int audit_log_consistency(audit_log_t *l, qiao_txn_t *t, uint64_t size1, uint64_t size2, uint8_t (*proof)[AUDIT_HASH],
			  size_t *n)
{
	struct getter g = {l, t};
	return merkle_consistency_proof(s_get_node, &g, size1, size2, proof, AUDIT_MAX_PROOF, n);
}

/* ---- queries -------------------------------------------------------------- */

struct qwalk {
	audit_log_t *l;
	qiao_txn_t *t;
	const struct audit_query *q;
	audit_query_fn fn;
	void *arg;
	uint64_t found;
	size_t keylen; /* index key length: the entry index is its last 8 bytes */
};

static int s_match_str(const char *want, const char *have)
{
	return !want || !want[0] || (have && strcmp(want, have) == 0);
}

static int s_match(const struct audit_query *q, const Qiao__V1__AuditEntry *e)
{
	if (!s_match_str(q->case_id, e->case_id) || !s_match_str(q->user, e->end_user) ||
	    !s_match_str(q->service, e->service))
		return 0;
	if (q->member && q->member[0] && !s_match_str(q->member, e->requester) && !s_match_str(q->member, e->provider))
		return 0;
	if (q->since_ms && e->time_ms < q->since_ms)
		return 0;
	if (q->until_ms && e->time_ms >= q->until_ms)
		return 0;
	if (q->subject) {
		int hit = 0;
		for (size_t i = 0; i < e->n_subject_hashes && !hit; i++)
			hit = e->subject_hashes[i].len == 32 && memcmp(e->subject_hashes[i].data, q->subject, 32) == 0;
		if (!hit)
			return 0;
	}
	return 1;
}

/* Visit entry `index`: decode, filter, call. */
static int s_visit(struct qwalk *w, uint64_t index)
{
	uint8_t *b = NULL;
	size_t len = 0;
	int rc = audit_log_entry(w->l, w->t, index, &b, &len);
	if (rc == QIAO_ENOTFOUND) {
		free(b);
		return 0; /* an index key without its entry: verify reports it */
	}
	if (rc != 0) {
		free(b);
		return rc;
	}
	Qiao__V1__AuditEntry *e = qiao__v1__audit_entry__unpack(NULL, len, b);
	if (!e) {
		free(b);
		return 0;
	}
	if (s_match(w->q, e)) {
		rc = w->fn(w->arg, index, b, len, e);
		w->found++;
		if (rc == 0 && w->q->limit && w->found >= w->q->limit)
			rc = 1; /* stop */
	}
	qiao__v1__audit_entry__free_unpacked(e, NULL);
	free(b);
	return rc;
}

static int s_index_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)v, (void)vl, (void)exp;
	struct qwalk *w = arg;
	if (kl != w->keylen)
		return 0;
	return s_visit(w, s_rd_be64((const uint8_t *)k + kl - 8));
}

static int s_entry_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)v, (void)vl, (void)exp;
	struct qwalk *w = arg;
	if (kl != 8)
		return 0;
	return s_visit(w, s_rd_be64(k));
}

int audit_log_query(audit_log_t *l, qiao_txn_t *t, const struct audit_query *q, audit_query_fn fn, void *arg)
{
	struct qwalk w = {l, t, q, fn, arg, 0, 25};
	uint8_t pre[17];
	int have = 0;
	/* the most selective index first */
	if (q->case_id && q->case_id[0]) {
		pre[0] = 'c';
		s_key16('c', q->case_id, pre + 1);
		have = 1;
	} else if (q->subject) {
		pre[0] = 'd';
		memcpy(pre + 1, q->subject, 16);
		have = 1;
	} else if (q->user && q->user[0]) {
		pre[0] = 'u';
		s_key16('u', q->user, pre + 1);
		have = 1;
	} else if (q->service && q->service[0]) {
		pre[0] = 's';
		s_key16('s', q->service, pre + 1);
		have = 1;
	} else if (q->member && q->member[0]) {
		pre[0] = 'm';
		s_key16('m', q->member, pre + 1);
		have = 1;
	}
	int rc;
	if (have) {
		uint8_t end[17];
		memcpy(end, pre, 17);
		/* prefix range [pre, pre+1) */
		int i = 16;
		while (i >= 0 && end[i] == 0xff)
			end[i--] = 0;
		if (i < 0)
			return QIAO_EINVAL;
		end[i]++;
		rc = q->newest_first ? qiao_store_iter_range_rev(t, l->index, pre, 17, end, 17, s_index_cb, &w)
				     : qiao_store_iter_range(t, l->index, pre, 17, end, 17, s_index_cb, &w);
	} else if (q->since_ms || q->until_ms) {
		uint8_t s[9] = {'t'}, e[9] = {'t'};
		s_be64(s + 1, (uint64_t)q->since_ms);
		if (q->until_ms)
			s_be64(e + 1, (uint64_t)q->until_ms);
		else {
			e[0] = 'u';
			memset(e + 1, 0, 8);
		}
		w.keylen = 17;
		rc = q->newest_first ? qiao_store_iter_range_rev(t, l->index, s, 9, e, 9, s_index_cb, &w)
				     : qiao_store_iter_range(t, l->index, s, 9, e, 9, s_index_cb, &w);
	} else {
		rc = q->newest_first ? qiao_store_iter_range_rev(t, l->entry, NULL, 0, NULL, 0, s_entry_cb, &w)
				     : qiao_store_iter_range(t, l->entry, NULL, 0, NULL, 0, s_entry_cb, &w);
	}
	return rc == 1 ? 0 : rc;
}

/* ---- verify --------------------------------------------------------------- */

/*
 * The walk reads the log in chunks of VCHUNK entries, in key order, and
 * checks each chunk in three stages:
 *
 *   A (all threads)  decode every entry, check its own index, hash its
 *                    stored bytes and compare the leaf with the stored one;
 *   B (this thread)  in index order: the key directory, which keys each
 *                    signature needs, the Merkle frontier with every interior
 *                    node it completes, and the checkpoints;
 *   C (all threads)  the header signatures (Ed25519), with the keys B chose.
 *
 * While the other threads do stage A of a chunk, this one reads the next.
 * Every fault is recorded with its position: the entry's index, then the
 * stage within the entry (decoding and leaf, directory, signature, tree and
 * checkpoints, the order the checks of one entry had when the walk was one
 * loop).  The report names the fault with the lowest position, so the same
 * log always gives the same first bad entry whatever the threads do.
 */

#define VCHUNK 4096u      /* entries per chunk: a power of two (node checks) */
#define VITEM_A 32u       /* entries per stage-A work item */
#define VITEM_C 8u        /* entries per stage-C work item */
#define VMAX_THREADS 16u
#define VDUP_SLOTS 256u   /* remembered signatures (the same header logged twice) */
#define VDUP_MAXHDR 2048u
#define VMAXKEYS 4        /* keys tried per signer (two during a rotation) */

/* positions: entry index * 4 + stage */
#define POS_DECODE 0u
#define POS_KEYS 1u
#define POS_SIG 2u
#define POS_TREE 3u
#define POS(i, s) ((i) > (UINT64_MAX >> 2) - 1 ? UINT64_MAX - 1 : (i) * 4 + (s))

struct dir_ent {
	char member[QIAO_MEMBER_MAX];
	uint8_t pk[32];
	uint64_t at; /* the entry whose directory listed it */
};

/* One entry of a chunk. */
struct ventry {
	size_t off, len;                  /* its bytes in the chunk's buffer */
	Qiao__V1__AuditEntry *e;          /* stage A */
	uint8_t leaf[32], stored[32];
	int have_stored;
	int sig;                          /* 0 none, 1 to verify (stage C), 2 seen before: verified */
	int sig_ok;
	uint8_t pk[VMAXKEYS][32];         /* the signer's keys in force (B) */
	int npk;
};

/* A node of the tree, as recomputed (stage B), to compare with the store. */
struct vnode {
	uint64_t index, at; /* at: the entry that completed it */
	uint8_t h[32];
};

/*
 * Decoded entries live in arenas, one per stage-A work item, emptied when
 * the chunk is done: protobuf-c would otherwise malloc every field and the
 * walk free them from another thread, which made malloc most of the work.
 */
struct varena_blk {
	struct varena_blk *prev;
	size_t used, cap;
	max_align_t data[];
};

struct varena {
	struct varena_blk *top;
	int oom;
};

static void *s_arena_alloc(void *arg, size_t size)
{
	struct varena *a = arg;
	size_t al = sizeof(max_align_t);
	size = (size + al - 1) / al * al;
	if (!a->top || a->top->cap - a->top->used < size) {
		size_t cap = size > 60000 ? size : 60000;
		struct varena_blk *b = malloc(sizeof *b + cap);
		if (!b) {
			a->oom = 1;
			return NULL;
		}
		b->prev = a->top;
		b->used = 0;
		b->cap = cap;
		a->top = b;
	}
	void *p = (uint8_t *)a->top->data + a->top->used;
	a->top->used += size;
	return p;
}

static void s_arena_free(void *arg, void *p)
{
	(void)arg, (void)p; /* all at once, in s_arena_reset */
}

/* Empty the arena, keeping its newest block for the next chunk. */
static void s_arena_reset(struct varena *a, int release)
{
	struct varena_blk *b = a->top;
	if (b && !release) {
		b->used = 0;
		b = b->prev;
		a->top->prev = NULL;
	} else {
		a->top = NULL;
	}
	while (b) {
		struct varena_blk *p = b->prev;
		free(b);
		b = p;
	}
	a->oom = 0;
}

struct vchunk {
	uint64_t first;
	size_t n;
	struct ventry *v;
	struct varena arena[VCHUNK / VITEM_A];
	uint8_t *buf;
	size_t used, cap;
	int err;           /* a store or memory error while reading it */
};

struct vpool {
	pthread_t th[VMAX_THREADS];
	unsigned nth;
	pthread_mutex_t mu;
	pthread_cond_t go, idle;
	void (*fn)(void *ctx, size_t item);
	void *ctx;
	size_t nitems, next, done;
	int quit;
};

struct vdup {
	uint8_t sig[64], pk[VMAXKEYS][32];
	int npk;
	size_t hlen;
	uint8_t hdr[VDUP_MAXHDR];
	int used;
};

struct vwalk {
	audit_log_t *l;
	qiao_txn_t *t;
	struct audit_verify_report *r;
	int check_sigs;
	struct merkle_frontier fr;
	uint64_t next;          /* entries read so far, in order */
	int read_end;           /* no more chunks to read */
	/* checkpoints, by size */
	uint64_t *ck_sizes;
	uint8_t (*ck_roots)[32];
	size_t nck, ick;
	struct dir_ent *dir;
	size_t ndir, capdir;
	void (*progress)(void *, uint64_t, uint64_t);
	void *parg;
	/* the first fault so far */
	pthread_mutex_t fmu;
	uint64_t fault_pos;
	/* stage B's nodes of the current chunk, per level (level 0: compared in A) */
	struct vnode *nodes[64];
	size_t nnodes[64], capnodes[64];
	int node_err;
	struct vdup *dup;
	uint64_t sigs_checked, sigs_dup;
	struct vpool pool;
	int oom; /* under fmu: a worker ran out of memory (the walk stops there; not a fault of the log) */
};

static void s_vfault(struct vwalk *w, uint64_t pos, uint64_t index, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void s_vfault(struct vwalk *w, uint64_t pos, uint64_t index, const char *fmt, ...)
{
	pthread_mutex_lock(&w->fmu);
	if (pos < w->fault_pos) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->r->reason, sizeof w->r->reason, fmt, ap);
		va_end(ap);
		w->fault_pos = pos;
		w->r->ok = 0;
		w->r->bad_index = index;
	}
	pthread_mutex_unlock(&w->fmu);
}

/* A worker ran out of memory at pos: the walk stops there as at a fault
 * (nothing after it is counted as checked), but the result is QIAO_ENOMEM,
 * not a verdict on the log. */
static void s_voom(struct vwalk *w, uint64_t pos, uint64_t index, const char *what)
{
	s_vfault(w, pos, index, "entry %llu: out of memory %s", (unsigned long long)index, what);
	pthread_mutex_lock(&w->fmu);
	w->oom = 1;
	pthread_mutex_unlock(&w->fmu);
}

static uint64_t s_vfault_pos(struct vwalk *w)
{
	pthread_mutex_lock(&w->fmu);
	uint64_t p = w->fault_pos;
	pthread_mutex_unlock(&w->fmu);
	return p;
}

/* A fault outside the walk (checkpoints, the end): first in line unless
 * an entry already failed. */
static int s_fail(struct vwalk *w, uint64_t index, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(struct vwalk *w, uint64_t index, const char *fmt, ...)
{
	pthread_mutex_lock(&w->fmu);
	if (w->r->ok) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->r->reason, sizeof w->r->reason, fmt, ap);
		va_end(ap);
		w->r->ok = 0;
		w->r->bad_index = index;
		w->fault_pos = 0;
	}
	pthread_mutex_unlock(&w->fmu);
	return QIAO_EBADSIG;
}

/* ---- the worker threads ---- */

static void *s_pool_main(void *arg)
{
	struct vpool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->quit && p->next >= p->nitems)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		/* the item and its job are taken together: never a stale job */
		size_t i = p->next++;
		void (*fn)(void *, size_t) = p->fn;
		void *ctx = p->ctx;
		pthread_mutex_unlock(&p->mu);
		fn(ctx, i);
		pthread_mutex_lock(&p->mu);
		if (++p->done == p->nitems)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* threads: all of them, this one included; fewer when some cannot start. */
static void s_pool_init(struct vpool *p, unsigned threads)
{
	memset(p, 0, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (unsigned i = 0; i + 1 < threads && i < VMAX_THREADS; i++) {
		if (pthread_create(&p->th[p->nth], NULL, s_pool_main, p) != 0)
			break; /* this thread does the work of the missing ones */
		p->nth++;
	}
}

static void s_pool_destroy(struct vpool *p)
{
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->idle);
	pthread_mutex_destroy(&p->mu);
}

/* Hand nitems items of fn to the workers and return at once. */
static void s_pool_start(struct vpool *p, void (*fn)(void *, size_t), void *ctx, size_t nitems)
{
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->nitems = nitems;
	p->next = p->done = 0;
	if (p->nth)
		pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
}

/* Work on the started job's items with the workers until all are done. */
static void s_pool_finish(struct vpool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->next < p->nitems) {
		size_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		p->fn(p->ctx, i);
		pthread_mutex_lock(&p->mu);
		p->done++;
	}
	while (p->done < p->nitems)
		pthread_cond_wait(&p->idle, &p->mu);
	p->nitems = p->next = p->done = 0;
	pthread_mutex_unlock(&p->mu);
}

/* ---- the key directory ---- */

/* The member's keys in force: its entries in the directory, from *from
 * on; the next one or NULL. */
static const uint8_t *s_dir_key(struct vwalk *w, const char *member, size_t *from)
{
	for (size_t i = *from; i < w->ndir; i++)
		if (strcmp(w->dir[i].member, member) == 0) {
			*from = i + 1;
			return w->dir[i].pk;
		}
	*from = w->ndir;
	return NULL;
}

/* A directory lists one key per member, or two during a key rotation
 * (docs/protocol.md "Keys"): the member's keys of entry `at` replace
 * those of earlier entries; members it does not list keep theirs. */
static int s_dir_set(struct vwalk *w, const char *member, const uint8_t *pk, uint64_t at)
{
	int fresh = 1;
	for (size_t i = 0; i < w->ndir; i++)
		if (strcmp(w->dir[i].member, member) == 0 && w->dir[i].at == at)
			fresh = 0;
	if (fresh) {
		size_t k = 0;
		for (size_t i = 0; i < w->ndir; i++)
			if (strcmp(w->dir[i].member, member) != 0)
				w->dir[k++] = w->dir[i];
		w->ndir = k;
	}
	if (w->ndir == w->capdir) {
		size_t nc = w->capdir ? 2 * w->capdir : 64;
		struct dir_ent *nd = realloc(w->dir, nc * sizeof *nd);
		if (!nd)
			return QIAO_ENOMEM;
		w->dir = nd;
		w->capdir = nc;
	}
	snprintf(w->dir[w->ndir].member, sizeof w->dir[w->ndir].member, "%s", member);
	memcpy(w->dir[w->ndir].pk, pk, 32);
	w->dir[w->ndir].at = at;
	w->ndir++;
	return 0;
}

/* ---- reading a chunk (this thread) ---- */

struct vread {
	struct vwalk *w;
	struct vchunk *c;
	int stop;
};

static int s_read_entry(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)exp;
	struct vread *rd = arg;
	struct vwalk *w = rd->w;
	struct vchunk *c = rd->c;
	uint64_t want = c->first + c->n;
	if (kl != 8) {
		s_vfault(w, POS(want, POS_DECODE), UINT64_MAX, "a malformed key in table audit_entry");
		return rd->stop = 1;
	}
	uint64_t index = s_rd_be64(k);
	if (c->n >= VCHUNK) /* never: the chunk's range holds at most VCHUNK keys */
		return rd->stop = 1;
	if (index != want) {
		if (index > want)
			s_vfault(w, POS(want, POS_DECODE), want, "entry %llu is missing (the next stored entry is %llu)",
				 (unsigned long long)want, (unsigned long long)index);
		else
			s_vfault(w, POS(index, POS_DECODE), index, "entry key %llu out of order",
				 (unsigned long long)index);
		return rd->stop = 1;
	}
	if (c->used + vl > c->cap) {
		size_t nc = c->cap ? c->cap : 1 << 20;
		while (nc < c->used + vl)
			nc *= 2;
		uint8_t *nb = realloc(c->buf, nc);
		if (!nb) {
			c->err = QIAO_ENOMEM;
			return rd->stop = 1;
		}
		c->buf = nb;
		c->cap = nc;
	}
	struct ventry *e = &c->v[c->n++];
	memset(e, 0, sizeof *e);
	e->off = c->used;
	e->len = vl;
	if (vl)
		memcpy(c->buf + c->used, v, vl);
	c->used += vl;
	return 0;
}

static int s_read_leaf(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)exp;
	struct vread *rd = arg;
	struct vchunk *c = rd->c;
	if (kl != 9 || vl != 32)
		return 0; /* a leaf that is not there or not a hash: stage A says so */
	uint64_t i = s_rd_be64((const uint8_t *)k + 1);
	if (i >= c->first && i - c->first < c->n) {
		memcpy(c->v[i - c->first].stored, v, 32);
		c->v[i - c->first].have_stored = 1;
	}
	return 0;
}

/* Read chunk [first, first + VCHUNK): its entries (until the first gap)
 * and their stored leaves.  Sets w->read_end when this is the last. */
static int s_read_chunk(struct vwalk *w, struct vchunk *c, uint64_t first)
{
	c->first = first;
	c->n = c->used = 0;
	c->err = 0;
	struct vread rd = {w, c, 0};
	uint8_t from[8], to[8];
	s_be64(from, first);
	s_be64(to, first + VCHUNK);
	/* the first chunk from the table's first key, so a malformed key
	 * sorting before entry 0 is seen too */
	int rc = qiao_store_iter_range(w->t, w->l->entry, first ? from : NULL, first ? 8 : 0, to, 8, s_read_entry,
				       &rd);
	if (rc == 1)
		rc = 0;
	if (rc == 0)
		rc = c->err;
	if (rc != 0)
		return rc;
	if (rd.stop || c->n < VCHUNK) {
		w->read_end = 1;
		if (!rd.stop) {
			/* anything stored after the last entry read is a gap */
			s_be64(from, first + c->n);
			rc = qiao_store_iter_range(w->t, w->l->entry, from, 8, NULL, 0, s_read_entry, &rd);
			if (rc == 1)
				rc = 0;
			if (rc == 0)
				rc = c->err;
			if (rc != 0)
				return rc;
		}
	}
	if (c->n == 0)
		return 0;
	uint8_t lf[9], lt[9];
	lf[0] = lt[0] = 0;
	s_be64(lf + 1, first);
	s_be64(lt + 1, first + c->n);
	rc = qiao_store_iter_range(w->t, w->l->node, lf, 9, lt, 9, s_read_leaf, &rd);
	return rc;
}

/* ---- stage A (any thread) ---- */

static void s_stage_a(void *arg, size_t item)
{
	void **a = arg;
	struct vwalk *w = a[0];
	struct vchunk *c = a[1];
	size_t end = (item + 1) * VITEM_A < c->n ? (item + 1) * VITEM_A : c->n;
	for (size_t i = item * VITEM_A; i < end; i++) {
		struct ventry *v = &c->v[i];
		uint64_t index = c->first + i;
		const uint8_t *b = c->buf + v->off;
		struct varena *ar = &c->arena[item];
		ProtobufCAllocator pa = {s_arena_alloc, s_arena_free, ar};
		v->e = qiao__v1__audit_entry__unpack(&pa, v->len, b);
		if (!v->e && ar->oom) {
			s_voom(w, POS(index, POS_DECODE), index, "decoding it");
			return;
		}
		if (!v->e) {
			s_vfault(w, POS(index, POS_DECODE), index, "entry %llu does not decode as qiao.v1.AuditEntry",
				 (unsigned long long)index);
			return;
		}
		if (v->e->index != index) {
			s_vfault(w, POS(index, POS_DECODE), index, "entry %llu says it is entry %llu (moved or swapped)",
				 (unsigned long long)index, (unsigned long long)v->e->index);
			return;
		}
		merkle_leaf_hash(b, v->len, v->leaf);
		/* public hashes: no need for a constant-time comparison */
		if (!v->have_stored || memcmp(v->leaf, v->stored, 32) != 0) {
			s_vfault(w, POS(index, POS_DECODE), index,
				 "entry %llu: its bytes do not hash to the stored leaf (changed after it was logged)",
				 (unsigned long long)index);
			return;
		}
	}
}

/* ---- stage B (this thread) ---- */

static int s_emit_node(void *arg, unsigned level, uint64_t index, const uint8_t h[32])
{
	struct vwalk *w = arg;
	if (level == 0)
		return 0; /* the leaves: compared in stage A */
	if (w->nnodes[level] == w->capnodes[level]) {
		size_t nc = w->capnodes[level] ? 2 * w->capnodes[level] : 64;
		struct vnode *nn = realloc(w->nodes[level], nc * sizeof *nn);
		if (!nn)
			return QIAO_ENOMEM;
		w->nodes[level] = nn;
		w->capnodes[level] = nc;
	}
	struct vnode *n = &w->nodes[level][w->nnodes[level]++];
	n->index = index;
	n->at = ((index + 1) << level) - 1;
	memcpy(n->h, h, 32);
	return 0;
}

/* The signature of v was checked before, on the same bytes with the same
 * keys (the gateway logs some headers twice, e.g. a request and the cache
 * invalidation it caused): if that check failed, the walk reports that
 * earlier entry, so this one needs no check of its own. */
static int s_dup_seen(struct vwalk *w, const struct ventry *v, const Qiao__V1__AuditEntry *e, int remember)
{
	if (!w->dup || e->header.len > VDUP_MAXHDR)
		return 0;
	const uint8_t *s = e->header_signature.data;
	struct vdup *d = &w->dup[(s[0] | (unsigned)s[1] << 8) % VDUP_SLOTS];
	if (d->used && d->npk == v->npk && d->hlen == e->header.len && memcmp(d->sig, s, 64) == 0 &&
	    memcmp(d->pk, v->pk, (size_t)v->npk * 32) == 0 && memcmp(d->hdr, e->header.data, d->hlen) == 0)
		return 1;
	if (remember) {
		memcpy(d->sig, s, 64);
		memcpy(d->pk, v->pk, sizeof d->pk);
		d->npk = v->npk;
		d->hlen = e->header.len;
		memcpy(d->hdr, e->header.data, d->hlen);
		d->used = 1;
	}
	return 0;
}

/* Entries of the chunk in order, up to the first fault. */
static int s_stage_b(struct vwalk *w, struct vchunk *c)
{
	for (unsigned L = 0; L < 64; L++)
		w->nnodes[L] = 0;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t index = c->first + i;
		if (POS(index, POS_KEYS) >= s_vfault_pos(w))
			break;
		struct ventry *v = &c->v[i];
		const Qiao__V1__AuditEntry *e = v->e;
		for (size_t d = 0; d < e->n_directory; d++)
			if (e->directory[d]->sign_public.len == 32 && e->directory[d]->member) {
				int rc = s_dir_set(w, e->directory[d]->member, e->directory[d]->sign_public.data, index);
				if (rc != 0)
					return rc;
			}
		/* Signatures of the messages the gateway accepted (docs/audit.md):
		 * a refusal may record a message whose signature was the problem
		 * (BAD_SIGNATURE, a sender that is not the connection's member). */
		if (w->check_sigs && e->header.len &&
		    e->event_type != QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_REQUEST_REFUSED) {
			size_t from = 0;
			const uint8_t *pk = s_dir_key(w, e->signer, &from);
			if (!pk) {
				s_vfault(w, POS(index, POS_KEYS), index,
					 "entry %llu: signer %s is not in the key directory the log recorded",
					 (unsigned long long)index, e->signer);
				break;
			}
			/* any key the directory lists for the signer (two during a rotation) */
			for (v->npk = 0; pk && v->npk < VMAXKEYS; pk = s_dir_key(w, e->signer, &from))
				memcpy(v->pk[v->npk++], pk, 32);
			if (pk) { /* never written by a gateway: a member has at most 2 */
				s_vfault(w, POS(index, POS_KEYS), index,
					 "entry %llu: the key directory lists more than %d keys for signer %s",
					 (unsigned long long)index, VMAXKEYS, e->signer);
				break;
			}
			if (e->header_signature.len != 64) {
				s_vfault(w, POS(index, POS_SIG), index, "entry %llu: the header signature by %s does not verify",
					 (unsigned long long)index, e->signer);
				break;
			}
			v->sig = s_dup_seen(w, v, e, 1) ? 2 : 1;
		}
		int rc = merkle_frontier_append(&w->fr, v->leaf, s_emit_node, w);
		if (rc != 0)
			return rc;
		w->next = index + 1;
		while (w->ick < w->nck && w->ck_sizes[w->ick] == w->next) {
			uint8_t root[32];
			merkle_frontier_root(&w->fr, root);
			if (sodium_memcmp(root, w->ck_roots[w->ick], 32) != 0) {
				s_vfault(w, POS(index, POS_TREE), index,
					 "checkpoint at size %llu does not match the entries: an entry before %llu was "
					 "changed, removed or reordered",
					 (unsigned long long)w->next, (unsigned long long)w->next);
				return 0;
			}
			w->ick++;
		}
	}
	return 0;
}

struct vnodecmp {
	struct vwalk *w;
	unsigned level;
	size_t i;
};

static int s_cmp_node(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)exp;
	struct vnodecmp *nc = arg;
	struct vwalk *w = nc->w;
	const struct vnode *want = &w->nodes[nc->level][nc->i];
	if (kl != 9)
		return 0;
	uint64_t index = s_rd_be64((const uint8_t *)k + 1);
	if (index != want->index)
		return 1; /* the node we want is missing: said below */
	if (vl != 32 || memcmp(v, want->h, 32) != 0) {
		s_vfault(w, POS(want->at, POS_TREE), UINT64_MAX,
			 "the stored Merkle node at level %u, index %llu (entries %llu to %llu) does not match the entries",
			 nc->level, (unsigned long long)want->index, (unsigned long long)(want->index << nc->level),
			 (unsigned long long)want->at);
		return 2;
	}
	nc->i++;
	return nc->i < w->nnodes[nc->level] ? 0 : 1;
}

/* Every interior node stage B completed must be the stored one: proofs
 * are made of stored nodes. */
static int s_check_nodes(struct vwalk *w)
{
	for (unsigned L = 1; L < 64; L++) {
		if (!w->nnodes[L])
			continue;
		struct vnodecmp nc = {w, L, 0};
		const struct vnode *a = &w->nodes[L][0], *z = &w->nodes[L][w->nnodes[L] - 1];
		uint8_t from[9], to[9];
		from[0] = to[0] = (uint8_t)L;
		s_be64(from + 1, a->index);
		s_be64(to + 1, z->index + 1);
		int rc = qiao_store_iter_range(w->t, w->l->node, from, 9, to, 9, s_cmp_node, &nc);
		if (rc < 0)
			return rc;
		if (rc != 2 && nc.i < w->nnodes[L]) {
			const struct vnode *m = &w->nodes[L][nc.i];
			s_vfault(w, POS(m->at, POS_TREE), UINT64_MAX,
				 "the stored Merkle node at level %u, index %llu (entries %llu to %llu) is missing", L,
				 (unsigned long long)m->index, (unsigned long long)(m->index << L),
				 (unsigned long long)m->at);
		}
	}
	return 0;
}

/* ---- stage C (any thread) ---- */

static void s_stage_c(void *arg, size_t item)
{
	void **a = arg;
	struct vwalk *w = a[0];
	struct vchunk *c = a[1];
	size_t end = (item + 1) * VITEM_C < c->n ? (item + 1) * VITEM_C : c->n;
	uint8_t stack[4096], *heap = NULL;
	size_t heapcap = 0;
	for (size_t i = item * VITEM_C; i < end; i++) {
		struct ventry *v = &c->v[i];
		if (v->sig != 1)
			continue;
		const Qiao__V1__AuditEntry *e = v->e;
		size_t need = QIAO_SIG_PREFIX_LEN + e->header.len;
		uint8_t *m = stack;
		if (need > sizeof stack) {
			if (need > heapcap) {
				free(heap);
				heap = malloc(need);
				heapcap = heap ? need : 0;
			}
			m = heap;
		}
		uint64_t index = c->first + i;
		if (!m) {
			s_voom(w, POS(index, POS_SIG), index, "checking its signature");
			continue;
		}
		memcpy(m, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
		memcpy(m + QIAO_SIG_PREFIX_LEN, e->header.data, e->header.len);
		for (int k = 0; k < v->npk && !v->sig_ok; k++)
			v->sig_ok = crypto_sign_verify_detached(e->header_signature.data, m, need, v->pk[k]) == 0;
		if (!v->sig_ok)
			s_vfault(w, POS(index, POS_SIG), index, "entry %llu: the header signature by %s does not verify",
				 (unsigned long long)index, e->signer);
	}
	free(heap);
}

static void s_chunk_free_entries(struct vchunk *c, int release)
{
	for (size_t i = 0; i < c->n; i++)
		c->v[i].e = NULL;
	for (size_t i = 0; i < VCHUNK / VITEM_A; i++)
		s_arena_reset(&c->arena[i], release);
}

/* ---- checkpoints ---- */

struct ckcollect {
	struct vwalk *w;
	const char *vkey;
	Qiao__V1__Checkpoint **ck;
	size_t n, cap;
	int rc;
};

static int s_ck_keep(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)k, (void)kl, (void)exp;
	struct ckcollect *cc = arg;
	Qiao__V1__Checkpoint *c = qiao__v1__checkpoint__unpack(NULL, vl, v);
	if (!c)
		return QIAO_ESTORECORRUPT;
	if (cc->n == cc->cap) {
		size_t nc = cc->cap ? 2 * cc->cap : 64;
		Qiao__V1__Checkpoint **nck = realloc(cc->ck, nc * sizeof *nck);
		if (!nck) {
			qiao__v1__checkpoint__free_unpacked(c, NULL);
			return QIAO_ENOMEM;
		}
		cc->ck = nck;
		cc->cap = nc;
	}
	cc->ck[cc->n++] = c;
	return 0;
}

/* The note signatures, on all threads: a quiet gateway checkpoints every
 * checkpoint_ms, which may be one checkpoint for every few entries. */
static void s_ck_verify(void *arg, size_t item)
{
	struct ckcollect *cc = arg;
	const Qiao__V1__Checkpoint *c = cc->ck[item];
	const char *end = NULL;
	/* the position of the checkpoint among the faults: by its place in
	 * the table, before any entry */
	if (!c->note || note_verify(c->note, strlen(c->note), cc->vkey, &end) != 0) {
		s_vfault(cc->w, item, UINT64_MAX, "checkpoint at size %llu: its signature does not verify with %s",
			 (unsigned long long)c->tree_size, cc->vkey);
		return;
	}
	char origin[256];
	uint64_t size;
	uint8_t root[32];
	if (checkpoint_parse(c->note, (size_t)(end - c->note), origin, sizeof origin, &size, root) != 0 ||
	    size != c->tree_size || c->root_hash.len != 32 || memcmp(root, c->root_hash.data, 32) != 0)
		s_vfault(cc->w, item, UINT64_MAX, "checkpoint at size %llu: its signed text does not match its record",
			 (unsigned long long)c->tree_size);
}

static int s_ck_collect(struct vwalk *w, const char *vkey)
{
	struct ckcollect cc = {.w = w, .vkey = vkey};
	int rc = qiao_store_iter_prefix(w->t, w->l->ckpt, NULL, 0, s_ck_keep, &cc);
	if (rc == 0 && cc.n) {
		s_pool_start(&w->pool, s_ck_verify, &cc, cc.n);
		s_pool_finish(&w->pool);
		w->ck_sizes = malloc(cc.n * sizeof *w->ck_sizes);
		w->ck_roots = malloc(cc.n * sizeof *w->ck_roots);
		if (!w->ck_sizes || !w->ck_roots)
			rc = QIAO_ENOMEM;
		for (size_t i = 0; rc == 0 && i < cc.n; i++) {
			w->ck_sizes[i] = cc.ck[i]->tree_size;
			if (cc.ck[i]->root_hash.len == 32)
				memcpy(w->ck_roots[i], cc.ck[i]->root_hash.data, 32);
			else
				memset(w->ck_roots[i], 0, 32); /* a fault already */
		}
		if (rc == 0) {
			w->nck = cc.n;
			w->r->checkpoints = w->r->ok ? cc.n : 0;
		}
	}
	for (size_t i = 0; i < cc.n; i++)
		qiao__v1__checkpoint__free_unpacked(cc.ck[i], NULL);
	free(cc.ck);
	if (rc == 0 && !w->r->ok)
		rc = QIAO_EBADSIG;
	return rc;
}

/* ---- the walk ---- */

static unsigned s_verify_threads(unsigned want)
{
	if (want == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		want = n > 0 ? (unsigned)n : 1;
	}
	return want > VMAX_THREADS ? VMAX_THREADS : want;
}

static int s_walk(struct vwalk *w)
{
	struct vchunk ch[2];
	memset(ch, 0, sizeof ch);
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		ch[i].v = malloc(VCHUNK * sizeof *ch[i].v);
		if (!ch[i].v)
			rc = QIAO_ENOMEM;
	}
	if (rc == 0 && w->check_sigs)
		w->dup = calloc(VDUP_SLOTS, sizeof *w->dup); /* NULL: no dedup, still correct */
	int cur = 0;
	uint64_t first = 0;
	if (rc == 0)
		rc = s_read_chunk(w, &ch[cur], first);
	while (rc == 0 && ch[cur].n) {
		struct vchunk *c = &ch[cur], *nx = &ch[cur ^ 1];
		void *args[2] = {w, c};
		s_pool_start(&w->pool, s_stage_a, args, (c->n + VITEM_A - 1) / VITEM_A);
		nx->n = 0;
		if (!w->read_end && s_vfault_pos(w) == UINT64_MAX) {
			first += VCHUNK;
			rc = s_read_chunk(w, nx, first);
		}
		s_pool_finish(&w->pool);
		if (rc == 0)
			rc = s_stage_b(w, c);
		if (rc == 0)
			rc = s_check_nodes(w);
		if (rc == 0 && w->check_sigs) {
			s_pool_start(&w->pool, s_stage_c, args, (c->n + VITEM_C - 1) / VITEM_C);
			s_pool_finish(&w->pool);
		}
		uint64_t fpos = s_vfault_pos(w);
		for (size_t i = 0; i < c->n; i++) {
			if (POS(c->first + i, POS_TREE) >= fpos)
				break;
			w->r->entries++;
			w->r->signatures += c->v[i].sig == 1 && c->v[i].sig_ok;
			w->sigs_dup += c->v[i].sig == 2;
		}
		s_chunk_free_entries(c, 0);
		/* a fault found while reading the next chunk ahead (a gap, a
		 * malformed or misplaced key) lies in that chunk: its entries
		 * before the fault are still checked, so that the report names
		 * the lowest fault; the read ahead stopped at the fault */
		if (fpos != UINT64_MAX && fpos < POS(c->first + c->n, 0))
			break;
		if (w->progress && c->n == VCHUNK && ((c->first + VCHUNK) & 0xffff) == 0)
			w->progress(w->parg, c->first + VCHUNK, w->r->size);
		cur ^= 1;
	}
	for (int i = 0; i < 2; i++) {
		s_chunk_free_entries(&ch[i], 1);
		free(ch[i].v);
		free(ch[i].buf);
	}
	free(w->dup);
	w->dup = NULL;
	for (unsigned L = 0; L < 64; L++)
		free(w->nodes[L]);
	pthread_mutex_lock(&w->fmu);
	int oom = w->oom;
	pthread_mutex_unlock(&w->fmu);
	if (rc == 0 && oom)
		rc = QIAO_ENOMEM;
	if (rc == 0 && s_vfault_pos(w) != UINT64_MAX)
		rc = QIAO_EBADSIG;
	return rc;
}

int audit_log_verify_opts(audit_log_t *l, qiao_txn_t *t, const struct audit_verify_opts *o,
			  struct audit_verify_report *r)
{
	memset(r, 0, sizeof *r);
	r->ok = 1;
	r->bad_index = UINT64_MAX;
	struct vwalk w = {.l = l,
			  .t = t,
			  .r = r,
			  .check_sigs = o->check_sigs,
			  .progress = o->progress,
			  .parg = o->parg,
			  .fault_pos = UINT64_MAX};
	merkle_frontier_init(&w.fr);
	char stored_vkey[512];
	const char *vkey = o->vkey;
	int rc = audit_log_size(l, t, &r->size);
	if (rc != 0)
		return rc;
	if (!vkey) {
		rc = audit_log_vkey(l, t, stored_vkey, sizeof stored_vkey);
		if (rc != 0)
			return rc;
		vkey = stored_vkey;
	}
	pthread_mutex_init(&w.fmu, NULL);
	r->threads = s_verify_threads(o->threads);
	s_pool_init(&w.pool, r->threads);
	r->threads = w.pool.nth + 1;
	rc = s_ck_collect(&w, vkey);
	if (rc == 0)
		for (size_t i = 0; i < w.nck; i++)
			if (w.ck_sizes[i] > r->size) {
				rc = s_fail(&w, r->size,
					    "checkpoint at size %llu, but the log says it has %llu entries (truncated)",
					    (unsigned long long)w.ck_sizes[i], (unsigned long long)r->size);
				break;
			}
	if (rc == 0)
		rc = s_walk(&w);
	s_pool_destroy(&w.pool);
	if (rc == 0 && w.next != r->size)
		rc = s_fail(&w, w.next, "the log says it has %llu entries but only %llu are stored (truncated at %llu)",
			    (unsigned long long)r->size, (unsigned long long)w.next, (unsigned long long)w.next);
	if (rc == 0 && w.ick != w.nck)
		rc = s_fail(&w, w.next, "checkpoint at size %llu covers entries that are not stored",
			    (unsigned long long)w.ck_sizes[w.ick]);
	if (rc == 0) {
		/* the stored tree must be the recomputed one */
		uint8_t a[32], b[32];
		merkle_frontier_root(&w.fr, a);
		rc = audit_log_root(l, t, r->size, b);
		if (rc == 0 && sodium_memcmp(a, b, 32) != 0)
			rc = s_fail(&w, UINT64_MAX, "the stored Merkle nodes do not match the entries");
		else if (rc != 0 && r->size)
			rc = s_fail(&w, UINT64_MAX, "the stored Merkle nodes are incomplete (%s)", qiao_strerror(rc));
		else
			rc = 0;
	}
	if (rc == 0)
		r->uncovered = r->size - (w.nck ? w.ck_sizes[w.nck - 1] : 0);
	r->signatures_repeated = w.sigs_dup;
	if (w.progress && rc == 0)
		w.progress(w.parg, w.next, r->size);
	free(w.ck_sizes);
	free(w.ck_roots);
	free(w.dir);
	pthread_mutex_destroy(&w.fmu);
	if (rc == QIAO_EBADSIG || !r->ok) {
		r->ok = 0;
		return QIAO_EBADSIG;
	}
	return rc;
}

int audit_log_verify(audit_log_t *l, qiao_txn_t *t, const char *vkey, int check_sigs,
		     void (*progress)(void *, uint64_t, uint64_t), void *parg, struct audit_verify_report *r)
{
	struct audit_verify_opts o = {.vkey = vkey, .check_sigs = check_sigs, .progress = progress, .parg = parg};
	return audit_log_verify_opts(l, t, &o, r);
}
