#include "gw_map.h"
#include "qiao_err.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	uint8_t klen; /* 0 = empty */
	uint8_t key[GW_MAP_KEY];
	uint64_t hash;
	void *val;
};

struct gw_map {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t count;
};

/* FNV-1a, then a final mix: keys are random (message ids) or counters
 * (routing ids), so this is plenty. */
static uint64_t s_hash(const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

gw_map_t *gw_map_new(void)
{
	gw_map_t *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof *m->slots);
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void gw_map_destroy(gw_map_t **mp)
{
	if (!mp || !*mp)
		return;
	free((*mp)->slots);
	free(*mp);
	*mp = NULL;
}

static struct slot *s_find(const gw_map_t *m, const void *key, size_t klen, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (s->klen == 0)
			return s;
		if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
			return s;
	}
}

static int s_grow(gw_map_t *m)
{
	size_t ncap = m->cap * 2;
	struct slot *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return QIAO_ENOMEM;
	struct slot *old = m->slots;
	size_t ocap = m->cap;
	m->slots = ns;
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].klen)
			*s_find(m, old[i].key, old[i].klen, old[i].hash) = old[i];
	free(old);
	return 0;
}

int gw_map_put(gw_map_t *m, const void *key, size_t klen, void *val)
{
	if (klen == 0 || klen > GW_MAP_KEY)
		return QIAO_EINVAL;
	if ((m->count + 1) * 10 > m->cap * 7 && s_grow(m) != 0)
		return QIAO_ENOMEM;
	uint64_t h = s_hash(key, klen);
	struct slot *s = s_find(m, key, klen, h);
	if (s->klen)
		return QIAO_EEXIST;
	s->klen = (uint8_t)klen;
	memcpy(s->key, key, klen);
	s->hash = h;
	s->val = val;
	m->count++;
	return 0;
}

void *gw_map_get(const gw_map_t *m, const void *key, size_t klen)
{
	if (klen == 0 || klen > GW_MAP_KEY)
		return NULL;
	struct slot *s = s_find(m, key, klen, s_hash(key, klen));
	return s->klen ? s->val : NULL;
}

void *gw_map_del(gw_map_t *m, const void *key, size_t klen)
{
	if (klen == 0 || klen > GW_MAP_KEY)
		return NULL;
	struct slot *s = s_find(m, key, klen, s_hash(key, klen));
	if (!s->klen)
		return NULL;
	void *val = s->val;
	size_t mask = m->cap - 1;
	size_t i = (size_t)(s - m->slots);
	/* backward-shift deletion keeps probe chains intact without tombstones */
	for (size_t j = (i + 1) & mask; m->slots[j].klen; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].klen = 0;
	m->count--;
	return val;
}

size_t gw_map_count(const gw_map_t *m)
{
	return m->count;
}

void gw_map_each(const gw_map_t *m, void (*fn)(void *, const void *, size_t, void *), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].klen)
			fn(arg, m->slots[i].key, m->slots[i].klen, m->slots[i].val);
}
