/* batch.c - group commit with replay (batch.h). */
#include "batch.h"

#include <time.h>

#include <stdlib.h>

#include "errors.h"


void batch_init(struct batch *b, batch_apply_fn apply, void *ctx)
{
    *b = (struct batch){.apply = apply, .ctx = ctx};
}

void batch_free(struct batch *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

int batch_open(const struct store *s) { return s->wtxn != NULL; }

static int begin(struct store *s)
{
    s->wtxn_links = 0;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->wtxn);
    /* Another process (a store beside us with exclusive false, the command
     * line) grew the map past ours: take its size and begin again. */
    if (rc == MDB_MAP_RESIZED && (rc = store_adopt_map(s)) == 0)
        rc = mdb_txn_begin(s->env, NULL, 0, &s->wtxn);
    if (rc) {
        s->wtxn = NULL;
        return rc;
    }
    store_reserve_begin(s);
    /* Another process committed since the snapshot the cache describes:
     * its changes may include links. */
    if ((uint64_t)mdb_txn_id(s->wtxn) != s->known_txnid + 1)
        link_cache_invalidate(s->cache);
    if ((rc = store_write_begun(s))) {
        mdb_txn_abort(s->wtxn);
        s->wtxn = NULL;
        return rc;
    }
    return 0;
}

static void abort_txn(struct store *s)
{
    if (s->wtxn) {
        mdb_txn_abort(s->wtxn);
        store_write_ended(s, 0, 0);
    }
    s->wtxn = NULL;
    s->wtxn_links = 0;
}

/* Aborts and re-applies every remembered request into a new transaction,
 * doubling the map first when `grow` is set or whenever the map fills up
 * during the replay. */
static int replay(struct batch *b, struct store *s, const uint8_t *base, int grow)
{
    int rc;
    b->replays++;
again:
    abort_txn(s);
    if (grow) {
        txn_pool_close(&s->pool); /* a resize needs no transaction open */
        if ((rc = store_grow_map(s))) {
            b->failed = rc;
            return rc;
        }
        grow = 0;
    }
    if ((rc = begin(s))) {
        b->failed = rc;
        return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        int touched = 0;
        rc = b->apply(b->ctx, base + b->v[i].off, b->v[i].len, &touched);
        if (rc == MDB_MAP_FULL) {
            grow = 1;
            goto again;
        }
        if (rc) {
            /* It applied cleanly before: only a resource failure can
             * make it fail now, and then the whole batch fails. */
            abort_txn(s);
            b->failed = rc;
            return rc;
        }
    }
    return 0;
}

/* Takes a failed request's changes back out of the transaction: replays
 * the others into a fresh one, or, when it was the only one, drops the
 * transaction.  An empty transaction left open would be committed at the
 * end of input: a commit counted for nothing, a background sync after
 * it, and in fsync mode the main loop waiting up to 2 ms for writers to
 * join a batch that holds none. */
static int take_back(struct batch *b, struct store *s, const uint8_t *base)
{
    if (b->n == 0) {
        abort_txn(s);
        return 0;
    }
    return replay(b, s, base, 0);
}

int batch_add(struct batch *b, struct store *s, const uint8_t *base, uint64_t id, size_t off,
              size_t len)
{
    int rc;
    if (!s->wtxn && (rc = begin(s)))
        return rc;
    for (;;) {
        int touched = 0;
        rc = b->apply(b->ctx, base + off, len, &touched);
        if (rc == 0)
            break;
        if (rc == MDB_MAP_FULL) {
            int rrc = replay(b, s, base, 1);
            if (rrc)
                return rrc; /* the transaction is gone: batch_commit fails too */
            continue;
        }
        if (b->n == 0 || touched || !(rc < 0 && rc >= HL_ELOOP)) {
            /* Undo this request's partial changes, keep the others.  An
             * LMDB or system error (not one of our refusals, which come
             * before any change) may also have left the transaction
             * unusable (MDB_TXN_ERROR): every write batched with this one
             * would then fail at commit for nothing.  A refusal that was
             * first in its batch leaves an empty transaction: drop it. */
            int rrc = take_back(b, s, base);
            if (rrc)
                return rrc;
        }
        return rc;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct batch_entry *v = realloc(b->v, cap * sizeof *v);
        if (!v) {
            /* Cannot remember it for a replay: take it back out. */
            rc = take_back(b, s, base);
            return rc ? rc : HL_ENOMEM;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (struct batch_entry){id, off, len};
    return 0;
}

static uint64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

int batch_commit(struct batch *b, struct store *s, const uint8_t *base)
{
    int rc;
    if (!s->wtxn)
        return b->failed; /* a replay failed: answer them all with why */
    for (;;) {
        int links = s->wtxn_links;
        uint64_t id = (uint64_t)mdb_txn_id(s->wtxn);
        rc = b->n ? store_note_last(s, b->v[b->n - 1].id) : 0;
        if (rc == MDB_MAP_FULL) {
            if ((rc = replay(b, s, base, 1)))
                break;
            continue;
        }
        if (rc) {
            abort_txn(s);
            break;
        }
        uint64_t t0 = mono_us();
        rc = mdb_txn_commit(s->wtxn);
        b->commit_us += mono_us() - t0;
        s->wtxn = NULL;
        store_write_ended(s, rc == 0, id);
        if (rc == MDB_MAP_FULL) {
            if ((rc = replay(b, s, base, 1)))
                break;
            continue;
        }
        if (rc)
            break;
        b->commits++;
        b->writes += b->n;
        if (b->n > b->max_size)
            b->max_size = b->n;
        /* The next read must see this commit, and must not be answered
         * from resolutions that a changed link made wrong. */
        txn_pool_release(&s->pool);
        if (links)
            link_cache_invalidate(s->cache);
        s->known_txnid = id; /* our own commit: the cache still holds */
        if (s->durability == DURABILITY_FSYNC)
            b->syncs++; /* the commit itself synced (store_open's flags) */
        break;
    }
    s->wtxn_links = 0;
    return rc;
}

void batch_clear(struct batch *b)
{
    b->n = 0;
    b->failed = 0;
}
