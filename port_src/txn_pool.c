/* txn_pool.c - the pooled read transaction (txn_pool.h). */
#include "txn_pool.h"

#include <stddef.h>

void txn_pool_init(struct txn_pool *p, MDB_env *env)
{
    p->env = env;
    p->txn = NULL;
    p->live = 0;
    p->renewals = 0;
}

int txn_pool_read(struct txn_pool *p, MDB_txn **txn)
{
    int rc = 0;
    if (!p->txn) {
        rc = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &p->txn);
        if (rc) {
            p->txn = NULL;
            return rc;
        }
        p->live = 1;
    } else if (!p->live) {
        rc = mdb_txn_renew(p->txn);
        if (rc) {
            /* A transaction that failed to renew is unusable: drop it so
             * the next read begins a new one. */
            mdb_txn_abort(p->txn);
            p->txn = NULL;
            return rc;
        }
        p->live = 1;
        p->renewals++;
    }
    *txn = p->txn;
    return 0;
}

int txn_pool_hold(struct txn_pool *p)
{
    if (p->txn)
        return 0;
    int rc = mdb_txn_begin(p->env, NULL, MDB_RDONLY, &p->txn);
    if (rc) {
        p->txn = NULL;
        return rc;
    }
    mdb_txn_reset(p->txn);
    p->live = 0;
    return 0;
}

void txn_pool_release(struct txn_pool *p)
{
    if (p->txn && p->live) {
        mdb_txn_reset(p->txn);
        p->live = 0;
    }
}

void txn_pool_close(struct txn_pool *p)
{
    if (p->txn) {
        mdb_txn_abort(p->txn);
        p->txn = NULL;
        p->live = 0;
    }
}
