/*
 * audit_log.c - see audit_log.h.
 */
#include "audit_log.h"

#include <errno.h>
#include <fcntl.h>
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

struct dir_ent {
	char member[QIAO_MEMBER_MAX];
	uint8_t pk[32];
	uint64_t at; /* the entry whose directory listed it */
};

struct vwalk {
	audit_log_t *l;
	qiao_txn_t *t;
	struct audit_verify_report *r;
	int check_sigs;
	struct merkle_frontier fr;
	uint64_t next;
	/* checkpoints, by size */
	uint64_t *ck_sizes;
	uint8_t (*ck_roots)[32];
	size_t nck, ick;
	struct dir_ent *dir;
	size_t ndir, capdir;
	void (*progress)(void *, uint64_t, uint64_t);
	void *parg;
	uint8_t *sigbuf;
	size_t sigcap;
};

static int s_fail(struct vwalk *w, uint64_t index, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(struct vwalk *w, uint64_t index, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->r->reason, sizeof w->r->reason, fmt, ap);
	va_end(ap);
	w->r->ok = 0;
	w->r->bad_index = index;
	return QIAO_EBADSIG;
}

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

static int s_verify_entry(struct vwalk *w, uint64_t index, const uint8_t *b, size_t len)
{
	if (index != w->next) {
		if (index > w->next)
			return s_fail(w, w->next, "entry %llu is missing (the next stored entry is %llu)",
				      (unsigned long long)w->next, (unsigned long long)index);
		return s_fail(w, index, "entry key %llu out of order", (unsigned long long)index);
	}
	Qiao__V1__AuditEntry *e = qiao__v1__audit_entry__unpack(NULL, len, b);
	if (!e)
		return s_fail(w, index, "entry %llu does not decode as qiao.v1.AuditEntry", (unsigned long long)index);
	int rc = 0;
	if (e->index != index) {
		rc = s_fail(w, index, "entry %llu says it is entry %llu (moved or swapped)", (unsigned long long)index,
			    (unsigned long long)e->index);
		goto out;
	}
	uint8_t leaf[32], stored[32];
	merkle_leaf_hash(b, len, leaf);
	struct getter g = {w->l, w->t};
	if (s_get_node(&g, 0, index, stored) != 0 || sodium_memcmp(leaf, stored, 32) != 0) {
		rc = s_fail(w, index, "entry %llu: its bytes do not hash to the stored leaf (changed after it was logged)",
			    (unsigned long long)index);
		goto out;
	}
	for (size_t i = 0; i < e->n_directory; i++)
		if (e->directory[i]->sign_public.len == 32 && e->directory[i]->member) {
			rc = s_dir_set(w, e->directory[i]->member, e->directory[i]->sign_public.data, index);
			if (rc != 0)
				goto out;
		}
	/* Signatures of the messages the gateway accepted (docs/audit.md):
	 * a refusal may record a message whose signature was the problem
	 * (BAD_SIGNATURE, a sender that is not the connection's member). */
	if (w->check_sigs && e->header.len &&
	    e->event_type != QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_REQUEST_REFUSED) {
		size_t from = 0;
		const uint8_t *pk = s_dir_key(w, e->signer, &from);
		if (!pk) {
			rc = s_fail(w, index, "entry %llu: signer %s is not in the key directory the log recorded",
				    (unsigned long long)index, e->signer);
			goto out;
		}
		size_t need = QIAO_SIG_PREFIX_LEN + e->header.len;
		if (need > w->sigcap) {
			uint8_t *nb = realloc(w->sigbuf, need);
			if (!nb) {
				rc = QIAO_ENOMEM;
				goto out;
			}
			w->sigbuf = nb;
			w->sigcap = need;
		}
		memcpy(w->sigbuf, QIAO_SIG_PREFIX, QIAO_SIG_PREFIX_LEN);
		memcpy(w->sigbuf + QIAO_SIG_PREFIX_LEN, e->header.data, e->header.len);
		/* any key the directory lists for the signer (two during a rotation) */
		int good = 0;
		for (; pk && !good && e->header_signature.len == 64; pk = s_dir_key(w, e->signer, &from))
			good = crypto_sign_verify_detached(e->header_signature.data, w->sigbuf, need, pk) == 0;
		if (!good) {
			rc = s_fail(w, index, "entry %llu: the header signature by %s does not verify",
				    (unsigned long long)index, e->signer);
			goto out;
		}
		w->r->signatures++;
	}
	rc = merkle_frontier_append(&w->fr, leaf, NULL, NULL);
	if (rc != 0)
		goto out;
	w->next++;
	w->r->entries++;
	while (w->ick < w->nck && w->ck_sizes[w->ick] == w->next) {
		uint8_t root[32];
		merkle_frontier_root(&w->fr, root);
		if (sodium_memcmp(root, w->ck_roots[w->ick], 32) != 0) {
			rc = s_fail(w, index,
				    "checkpoint at size %llu does not match the entries: an entry before %llu was "
				    "changed, removed or reordered",
				    (unsigned long long)w->next, (unsigned long long)w->next);
			goto out;
		}
		w->ick++;
	}
	if (w->progress && (w->next & 0xffff) == 0)
		w->progress(w->parg, w->next, w->r->size);
out:
	qiao__v1__audit_entry__free_unpacked(e, NULL);
	return rc;
}

static int s_verify_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
	(void)exp;
	struct vwalk *w = arg;
	if (kl != 8)
		return s_fail(w, UINT64_MAX, "a malformed key in table audit_entry");
	return s_verify_entry(w, s_rd_be64(k), v, vl);
}

struct ckcollect {
	struct vwalk *w;
	const char *vkey;
	int rc;
};

static int s_ck_collect(void *arg, const Qiao__V1__Checkpoint *c)
{
	struct ckcollect *cc = arg;
	struct vwalk *w = cc->w;
	const char *end = NULL;
	if (!c->note || note_verify(c->note, strlen(c->note), cc->vkey, &end) != 0)
		return s_fail(w, UINT64_MAX, "checkpoint at size %llu: its signature does not verify with %s",
			      (unsigned long long)c->tree_size, cc->vkey);
	char origin[256];
	uint64_t size;
	uint8_t root[32];
	if (checkpoint_parse(c->note, (size_t)(end - c->note), origin, sizeof origin, &size, root) != 0 ||
	    size != c->tree_size || c->root_hash.len != 32 || memcmp(root, c->root_hash.data, 32) != 0)
		return s_fail(w, UINT64_MAX, "checkpoint at size %llu: its signed text does not match its record",
			      (unsigned long long)c->tree_size);
	if (w->nck % 64 == 0) {
		uint64_t *ns = realloc(w->ck_sizes, (w->nck + 64) * sizeof *ns);
		if (!ns)
			return QIAO_ENOMEM;
		w->ck_sizes = ns;
		uint8_t(*nr)[32] = realloc(w->ck_roots, (w->nck + 64) * sizeof *nr);
		if (!nr)
			return QIAO_ENOMEM;
		w->ck_roots = nr;
	}
	w->ck_sizes[w->nck] = size;
	memcpy(w->ck_roots[w->nck], root, 32);
	w->nck++;
	w->r->checkpoints++;
	return 0;
}

int audit_log_verify(audit_log_t *l, qiao_txn_t *t, const char *vkey, int check_sigs,
		     void (*progress)(void *, uint64_t, uint64_t), void *parg, struct audit_verify_report *r)
{
	memset(r, 0, sizeof *r);
	r->ok = 1;
	r->bad_index = UINT64_MAX;
	struct vwalk w = {.l = l, .t = t, .r = r, .check_sigs = check_sigs, .progress = progress, .parg = parg};
	merkle_frontier_init(&w.fr);
	char stored_vkey[512];
	int rc = audit_log_size(l, t, &r->size);
	if (rc != 0)
		return rc;
	if (!vkey) {
		rc = audit_log_vkey(l, t, stored_vkey, sizeof stored_vkey);
		if (rc != 0)
			return rc;
		vkey = stored_vkey;
	}
	struct ckcollect cc = {&w, vkey, 0};
	rc = audit_log_checkpoints(l, t, s_ck_collect, &cc);
	if (rc == 0)
		for (size_t i = 0; i < w.nck; i++)
			if (w.ck_sizes[i] > r->size) {
				rc = s_fail(&w, r->size,
					    "checkpoint at size %llu, but the log says it has %llu entries (truncated)",
					    (unsigned long long)w.ck_sizes[i], (unsigned long long)r->size);
				break;
			}
	if (rc == 0)
		rc = qiao_store_iter_range(t, l->entry, NULL, 0, NULL, 0, s_verify_cb, &w);
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
	if (w.progress && rc == 0)
		w.progress(w.parg, w.next, r->size);
	free(w.ck_sizes);
	free(w.ck_roots);
	free(w.dir);
	free(w.sigbuf);
	if (rc == QIAO_EBADSIG || !r->ok) {
		r->ok = 0;
		return QIAO_EBADSIG;
	}
	return rc;
}
