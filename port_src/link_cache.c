/* link_cache.c - direct-mapped path resolution cache (link_cache.h). */
#include "link_cache.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    uint64_t hash;
    uint64_t gen;      /* valid only while equal to the cache's gen */
    uint8_t *bytes;    /* path then target, one allocation */
    uint32_t len;
    uint32_t target_len;
    int unresolvable;
};

struct link_cache {
    struct slot *slots;
    size_t mask;
    uint64_t gen;
    uint64_t hits, misses, invalidations;
};

/* FNV-1a: paths are short and this is far from the hot cost (LMDB gets). */
static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct link_cache *link_cache_new(size_t slots)
{
    struct link_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->gen = 1; /* calloc'd slots have gen 0: all start stale */
    if (slots) {
        size_t n = 1;
        while (n < slots && n <= SIZE_MAX / 2 / sizeof *c->slots)
            n <<= 1; /* (bounded: above 2^63 it would shift to 0 and loop) */
        c->slots = n < slots ? NULL : calloc(n, sizeof *c->slots);
        if (!c->slots) {
            free(c);
            return NULL;
        }
        c->mask = n - 1;
    }
    return c;
}

void link_cache_free(struct link_cache *c)
{
    if (!c)
        return;
    if (c->slots)
        for (size_t i = 0; i <= c->mask; i++)
            free(c->slots[i].bytes);
    free(c->slots);
    free(c);
}

int link_cache_get(struct link_cache *c, const uint8_t *path, size_t len, const uint8_t **target,
                   size_t *target_len, int *unresolvable)
{
    if (!c->slots)
        return 0;
    uint64_t h = hash_bytes(path, len);
    struct slot *s = &c->slots[h & c->mask];
    if (s->gen != c->gen || s->hash != h || s->len != len ||
        (len && memcmp(s->bytes, path, len) != 0)) {
        c->misses++;
        return 0;
    }
    c->hits++;
    *target = s->bytes + len;
    *target_len = s->target_len;
    *unresolvable = s->unresolvable;
    return 1;
}

void link_cache_put(struct link_cache *c, const uint8_t *path, size_t len, const uint8_t *target,
                    size_t target_len, int unresolvable)
{
    if (!c->slots)
        return;
    uint64_t h = hash_bytes(path, len);
    struct slot *s = &c->slots[h & c->mask];
    uint8_t *b = realloc(s->bytes, len + target_len + 1);
    if (!b) {
        /* realloc failure leaves the old block: drop it and the entry */
        free(s->bytes);
        memset(s, 0, sizeof *s);
        return;
    }
    if (len)
        memcpy(b, path, len);
    if (target_len)
        memcpy(b + len, target, target_len);
    s->bytes = b;
    s->hash = h;
    s->gen = c->gen;
    s->len = (uint32_t)len;
    s->target_len = (uint32_t)target_len;
    s->unresolvable = unresolvable;
}

void link_cache_invalidate(struct link_cache *c)
{
    c->gen++;
    c->invalidations++;
}

void link_cache_stats(const struct link_cache *c, struct link_cache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->invalidations = c->invalidations;
    out->slots = c->slots ? c->mask + 1 : 0;
}
