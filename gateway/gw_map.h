/*
 * gw_map.h - a hash map from short byte strings (routing ids, message ids)
 * to pointers.  Open addressing with linear probing and backward-shift
 * deletion; grows at 70 % load.  Keys are copied (at most GW_MAP_KEY bytes);
 * values are borrowed.  Not thread-safe: the reactor thread owns its maps.
 */
#ifndef GW_MAP_H
#define GW_MAP_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAP_KEY 32

typedef struct gw_map gw_map_t;

gw_map_t *gw_map_new(void);
void gw_map_destroy(gw_map_t **m);
/* 0, QIAO_EEXIST (key present: value unchanged), QIAO_ENOMEM, QIAO_EINVAL (key too long). */
int gw_map_put(gw_map_t *m, const void *key, size_t klen, void *val);
void *gw_map_get(const gw_map_t *m, const void *key, size_t klen);
/* Remove and return the value, or NULL. */
void *gw_map_del(gw_map_t *m, const void *key, size_t klen);
size_t gw_map_count(const gw_map_t *m);
/* Call fn for every entry; fn must not modify the map. */
void gw_map_each(const gw_map_t *m, void (*fn)(void *arg, const void *key, size_t klen, void *val), void *arg);

#endif
