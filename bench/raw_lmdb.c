/*
 * raw_lmdb.c - in-process LMDB floors for the benchmarks, with the same
 * flags the store uses (WRITEMAP; NOSYNC unless measuring fsync):
 *
 *   one_txn_puts     N puts of key-<i> = 43 bytes in one transaction
 *   txn_per_op       a transaction per put, NOSYNC (what commit mode pays)
 *   txn_per_op_sync  a transaction per put with LMDB's synchronous commit
 *                    (the fsync floor)
 *   random_gets      N random gets in one read transaction
 *
 * usage: raw_lmdb DIR N    prints "name ops_per_second" lines
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static MDB_env *open_env(const char *dir, unsigned flags)
{
    MDB_env *env;
    mkdir(dir, 0755);
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)4 << 30) ||
        mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NORDAHEAD | flags, 0644)) {
        fprintf(stderr, "raw_lmdb: cannot open %s\n", dir);
        exit(1);
    }
    return env;
}

static int key(char *buf, int i) { return snprintf(buf, 32, "key-%d", i); }

static double puts_per_txn(MDB_env *env, int n, int per_txn)
{
    char k[32], v[43];
    memset(v, 'v', sizeof v);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (!txn) {
            mdb_txn_begin(env, NULL, 0, &txn);
            mdb_dbi_open(txn, NULL, 0, &dbi);
        }
        MDB_val kv = {(size_t)key(k, i), k}, vv = {sizeof v, v};
        mdb_put(txn, dbi, &kv, &vv, 0);
        if ((i + 1) % per_txn == 0 || i + 1 == n) {
            mdb_txn_commit(txn);
            txn = NULL;
        }
    }
    return n / (now() - t0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: raw_lmdb DIR N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/nosync", argv[1]);
    MDB_env *env = open_env(dir, MDB_NOSYNC);
    printf("one_txn_puts %.0f\n", puts_per_txn(env, n, n));
    printf("txn_per_op %.0f\n", puts_per_txn(env, n / 4, 1));

    MDB_txn *txn;
    MDB_dbi dbi;
    char k[32];
    unsigned seed = 1;
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    double t0 = now();
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        MDB_val kv = {(size_t)key(k, rand_r(&seed) % n), k}, vv;
        if (mdb_get(txn, dbi, &kv, &vv) == 0)
            sum += vv.mv_size;
    }
    printf("random_gets %.0f\n", n / (now() - t0));
    mdb_txn_abort(txn);
    mdb_env_close(env);
    if (sum == 0)
        fprintf(stderr, "raw_lmdb: no key found\n");

    snprintf(dir, sizeof dir, "%s/sync", argv[1]);
    env = open_env(dir, 0);
    printf("txn_per_op_sync %.0f\n", puts_per_txn(env, n < 2000 ? n : 2000, 1));
    mdb_env_close(env);
    return 0;
}
