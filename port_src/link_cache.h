/*
 * link_cache.h - remembers where a path resolves to, so a read of a path
 * costs one hash probe and one LMDB get instead of one get per prefix and
 * per link hop.
 *
 * An entry maps a normalised input path to the path it resolves to in the
 * committed snapshot the read transaction sees (or to "unresolvable": a
 * loop or too many hops).  Only links decide where a path resolves, so the
 * cache is exact as long as no link is created, replaced or removed: the
 * batch code calls link_cache_invalidate() for every commit that touched a
 * link (or reset the store), before the next read can run.  Invalidation
 * is O(1): it bumps a generation number and stale slots are ignored.
 *
 * The table is direct-mapped: one entry per slot, a colliding insert
 * replaces the old entry.  That bounds memory at slots * (key + target).
 */
#ifndef HYPER_LMDB_LINK_CACHE_H
#define HYPER_LMDB_LINK_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct link_cache;

/* Creates a cache of `slots` entries (rounded up to a power of two; 0
 * disables caching).  Returns NULL when out of memory, or when so many
 * slots could not be allocated at all. */
struct link_cache *link_cache_new(size_t slots);
void link_cache_free(struct link_cache *c);

/* Looks up <path, len>.  On a hit returns 1 and sets *target, *target_len
 * (pointing into the cache, valid until the next insert or free) and
 * *unresolvable; on a miss returns 0. */
int link_cache_get(struct link_cache *c, const uint8_t *path, size_t len, const uint8_t **target,
                   size_t *target_len, int *unresolvable);

/* Remembers that <path, len> resolves to <target, target_len> (or is
 * unresolvable).  Out of memory just leaves the slot empty. */
void link_cache_put(struct link_cache *c, const uint8_t *path, size_t len, const uint8_t *target,
                    size_t target_len, int unresolvable);

/* Forgets every entry. */
void link_cache_invalidate(struct link_cache *c);

struct link_cache_stats {
    uint64_t hits, misses, invalidations;
    size_t slots;
};
void link_cache_stats(const struct link_cache *c, struct link_cache_stats *out);

#endif
