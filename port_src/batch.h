/*
 * batch.h - group commit: consecutive write requests share one LMDB write
 * transaction, and their replies wait until it has committed.
 *
 * LMDB with MDB_WRITEMAP has no nested transactions, so one request's
 * failure cannot be rolled back on its own.  Instead the batch remembers
 * every request it applied (as an offset into the input buffer, which the
 * main loop keeps intact until the batch is committed) and, when a request
 * fails half-way or the map fills up, aborts the transaction and applies
 * the remembered requests again into a fresh one.  Failures are rare; the
 * common path costs one array append per write.
 */
#ifndef HYPER_LMDB_BATCH_H
#define HYPER_LMDB_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Applies one write request frame to s->wtxn.  Returns 0 or an error; sets
 * *touched when it may have changed the transaction before failing. */
typedef int (*batch_apply_fn)(void *ctx, const uint8_t *frame, size_t len, int *touched);

struct batch_entry {
    uint64_t id;
    size_t off, len; /* the frame, relative to the input buffer's base */
};

struct batch {
    struct batch_entry *v;
    size_t n, cap;
    batch_apply_fn apply;
    void *ctx;
    int failed; /* a replay failed: the transaction is gone */
    /* counters for stats */
    uint64_t commits, writes, max_size, replays, syncs;
    uint64_t commit_us; /* time spent in mdb_txn_commit, the flush included */
};

void batch_init(struct batch *b, batch_apply_fn apply, void *ctx);
void batch_free(struct batch *b);

/* 1 while a write transaction is open. */
int batch_open(const struct store *s);

/* Applies the request <base + off, len> with id `id` inside the batch,
 * opening the write transaction if needed.  Returns 0 when it is applied
 * (its reply waits for batch_commit), or the error to answer it with now;
 * the other requests of the batch are unaffected (a refused request that
 * would have been the batch's first leaves no transaction open), unless a
 * replay failed:
 * then the transaction is gone (batch_open is false) and the caller must
 * answer the remembered requests at once through batch_commit. */
int batch_add(struct batch *b, struct store *s, const uint8_t *base, uint64_t id, size_t off,
              size_t len);

/* Commits the open transaction (growing the map and replaying if it is
 * full), flushes it to disk in fsync mode, and makes the next read see it.
 * Returns 0 or the error every request of the batch must be answered
 * with.  The caller then answers b->v[0 .. b->n) and calls batch_clear. */
int batch_commit(struct batch *b, struct store *s, const uint8_t *base);
void batch_clear(struct batch *b);

#endif
