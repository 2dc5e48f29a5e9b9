/*
 * txn_pool.h - the one pooled read transaction.
 *
 * Beginning an LMDB read transaction takes a reader slot and a lock; reset
 * and renew reuse both.  The port keeps one read-only transaction, and its
 * reader slot from the moment it opens the store, and serves every read
 * from it.  It is released (reset) after every commit, before answers are
 * written and whenever the port waits for input, and renewed on the next
 * read, so a read always sees the latest committed snapshot, including
 * every acknowledged write, and a port that waits, or loses its core to
 * the BEAM its answers woke, pins no pages (a snapshot held keeps every
 * page a later commit frees from being used again).
 */
#ifndef HYPER_LMDB_TXN_POOL_H
#define HYPER_LMDB_TXN_POOL_H

#include <lmdb.h>
#include <stdint.h>

struct txn_pool {
    MDB_env *env;
    MDB_txn *txn; /* NULL until txn_pool_hold or the first read */
    int live;     /* txn is active (not reset) */
    uint64_t renewals;
};

void txn_pool_init(struct txn_pool *p, MDB_env *env);
/* Sets *txn to an active read transaction on the latest snapshot the pool
 * has taken since the last release.  Returns 0 or an LMDB error. */
int txn_pool_read(struct txn_pool *p, MDB_txn **txn);
/* Takes the transaction's reader slot now, if it has none, and keeps it
 * with no snapshot (reset): the slot is the port's from then on, whatever
 * other processes of the directory (readers) take.  Returns 0 or an LMDB
 * error (MDB_READERS_FULL). */
int txn_pool_hold(struct txn_pool *p);
/* Ends the snapshot; the next txn_pool_read takes a fresh one. */
void txn_pool_release(struct txn_pool *p);
/* Frees the transaction and its reader slot (before a map resize). */
void txn_pool_close(struct txn_pool *p);

#endif
