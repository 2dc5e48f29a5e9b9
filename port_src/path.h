/*
 * path.h - keys as paths: pure functions on byte strings, no LMDB.
 *
 * A path is segments joined by '/'.  The normal form drops empty segments,
 * so it has no leading, trailing or doubled '/'; the empty path is the root.
 * Segments are bytes: NUL and non-UTF-8 bytes are ordinary key bytes.
 */
#ifndef HYPER_LMDB_PATH_H
#define HYPER_LMDB_PATH_H

#include <stddef.h>
#include <stdint.h>

/* LMDB's default maximum key size (mdb_env_get_maxkeysize). */
#define PATH_MAX_KEY 511

/* Longest path the resolver builds while following links (a target plus
 * the rest of the path); longer intermediate paths resolve to not_found. */
#define PATH_MAX_WORK 4096

/* Writes the normal form of <in, len> to out (which has room for len
 * bytes and may not overlap in) and returns its length. */
size_t path_normalize(const uint8_t *in, size_t len, uint8_t *out);

/* Length of the parent of the normalised <p, len> (0 for a single segment
 * or the root). */
size_t path_parent_len(const uint8_t *p, size_t len);

/* Length of the child name that starts <rest, len> (bytes up to the first
 * '/' or the end). */
size_t path_segment_len(const uint8_t *rest, size_t len);

/* Bytewise comparison, shorter-is-smaller on a common prefix: the order
 * LMDB sorts keys in, and the order of list results. */
int path_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
