/*
 * raw_lmdb.c - the in-process LMDB floors of the benchmarks: what LMDB
 * itself does on this machine, with no port, no pipe and no Erlang.
 *
 *   raw_put_one_txn_ops_per_sec          N puts of key-<i> = 43 bytes, one txn
 *   raw_get_ops_per_sec                  N random mdb_get in one read txn
 *   raw_put_txn_per_op_ops_per_sec       N/4 puts, one txn (and commit) each
 *   raw_put_txn_per_op_sync_ops_per_sec  puts, one synchronous commit each:
 *                                        the fsync floor (at most N/4 puts,
 *                                        for at most SYNC_MAX_SECS)
 *   raw_put_group_sync_ops_per_sec       puts, GROUP_PUTS to a synchronous
 *                                        commit: group commit with no
 *                                        process boundary, the ceiling of
 *                                        the fsync mode's 64 writers
 *   raw_list_flat_ops_per_sec            listings of a group of 100 children
 *   raw_list_deep_ops_per_sec            with no subtrees, and of one whose
 *                                        children have 100 descendants
 *                                        each, walked as the port walks
 *                                        them: the bare cost of a list's
 *                                        cursor calls (see list_walk)
 *
 * The first three run in DIR/nosync with the flags of the store's commit
 * mode: MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NORDAHEAD.  The
 * sync ones run in DIR/sync and DIR/group with those of its fsync mode,
 * MDB_WRITEMAP | MDB_NORDAHEAD: LMDB's own synchronous commit, which
 * flushes the data pages and then the meta page before mdb_txn_commit
 * returns.  The lists run in DIR/lists, laid out as the benchmark's list
 * store (list_keys).
 *
 * Keys are formatted before the clock starts, so only LMDB is timed.
 *
 * usage: raw_lmdb DIR [N [WHAT]]
 *   DIR is created if missing; N default 100000; WHAT = all (default) |
 *   get | put_one_txn | put_txn_per_op | put_txn_per_op_sync |
 *   put_group_sync | list picks one
 *   measurement (get also does, and prints, the one-txn puts it reads).
 * Prints "name value" lines on stdout; exits 1 on any LMDB error.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define VALUE_LEN 43
#define KEY_LEN 24
/* A synchronous commit costs a few milliseconds on a slow disk: the time
 * limit keeps one run (one slice of the benchmark) short whatever N is. */
#define SYNC_MAX_SECS 0.25
/* Puts to a commit in put_group_sync: the benchmark's 64 fsync writers. */
#define GROUP_PUTS 64
/* How long each list measurement lists for. */
#define LIST_SECS 0.1

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* n keys "<prefix><i>" in one block of n * KEY_LEN bytes, lengths in lens. */
static char *make_keys(const char *prefix, size_t n, size_t *lens)
{
    char *keys = malloc(n * KEY_LEN);
    if (!keys)
        return NULL;
    for (size_t i = 0; i < n; i++)
        lens[i] = (size_t)snprintf(keys + i * KEY_LEN, KEY_LEN, "%s%zu", prefix, i);
    return keys;
}

/* Creates DIR/sub and opens an environment there with `flags`.  Returns 0
 * or an errno / LMDB code; on success *envp is open and its main dbi in
 * *dbi. */
static int open_env(const char *dir, const char *sub, unsigned flags, MDB_env **envp, MDB_dbi *dbi)
{
    char path[4096];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(path, 0755) && errno != EEXIST))
        return errno;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)4 << 30)) ||
        (rc = mdb_env_open(env, path, flags, 0644)) || (rc = mdb_txn_begin(env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, NULL, 0, dbi)))
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto fail;
    *envp = env;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return rc;
}

/* Puts keys [0, n) with `per_txn` puts per transaction, stopping after
 * max_secs (0: no limit) at a transaction boundary.  Returns 0 or an LMDB
 * code; *done is the number of puts committed, *secs the time taken. */
static int put_keys(MDB_env *env, MDB_dbi dbi, const char *keys, const size_t *lens, size_t n,
                    size_t per_txn, double max_secs, size_t *done, double *secs)
{
    char value[VALUE_LEN];
    MDB_txn *txn = NULL;
    int rc = 0;
    memset(value, 'v', sizeof value);
    *done = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        if (!txn && (rc = mdb_txn_begin(env, NULL, 0, &txn)))
            goto fail;
        MDB_val k = {lens[i], (void *)(keys + i * KEY_LEN)}, v = {VALUE_LEN, value};
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)))
            goto fail;
        if ((i + 1) % per_txn == 0 || i + 1 == n) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
            if (rc)
                goto fail;
            *done = i + 1;
            if (max_secs > 0 && now_s() - t0 >= max_secs)
                break;
        }
    }
    *secs = now_s() - t0;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* n random gets of keys [0, n) in one read transaction. */
static int get_random(MDB_env *env, MDB_dbi dbi, const char *keys, const size_t *lens, size_t n,
                      double *secs)
{
    MDB_txn *txn = NULL;
    size_t *order = malloc(n * sizeof *order), found = 0;
    unsigned seed = 12345;
    int rc = ENOMEM;
    if (!order)
        goto out;
    for (size_t i = 0; i < n; i++)
        order[i] = (size_t)rand_r(&seed) % n;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
        goto out;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        size_t j = order[i];
        MDB_val k = {lens[j], (void *)(keys + j * KEY_LEN)}, v;
        if ((rc = mdb_get(txn, dbi, &k, &v)))
            goto out;
        found += v.mv_size == VALUE_LEN;
    }
    *secs = now_s() - t0;
    rc = found == n ? 0 : MDB_NOTFOUND; /* also keeps the loop from being optimised away */
out:
    if (txn)
        mdb_txn_abort(txn);
    free(order);
    return rc;
}

/* The benchmark's list store (bench/hyper_lmdb_bench.erl, links/3), in
 * one transaction: a group "flat" of 100 children "c-NNNNNN" with values;
 * "deep", whose 100 children are groups of 10 x 10 descendants
 * ("deep/c-NNNNNN/J/K/leaf"); "deeper", 10 x 100 each; "wide", 100,000
 * children.  Group markers are one byte, values VALUE_LEN. */
static int list_keys(MDB_env *env, MDB_dbi dbi)
{
    static const struct {
        const char *group;
        int kids; /* children of the group */
        int k;    /* descendants of each child: 10 x k, or none */
    } groups[] = {{"flat", 100, 0}, {"deep", 100, 10}, {"deeper", 100, 100}, {"wide", 100000, 0}};
    char value[VALUE_LEN], key[64];
    MDB_val marker = {1, "g"}, v = {VALUE_LEN, value};
    MDB_txn *txn;
    memset(value, 'v', sizeof value);
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t g = 0; !rc && g < sizeof groups / sizeof *groups; g++) {
        MDB_val k = {strlen(groups[g].group), (void *)groups[g].group};
        rc = mdb_put(txn, dbi, &k, &marker, 0);
        for (int i = 1; !rc && i <= groups[g].kids; i++) {
            k.mv_data = key;
            k.mv_size = (size_t)snprintf(key, sizeof key, "%s/c-%06d", groups[g].group, i);
            rc = mdb_put(txn, dbi, &k, groups[g].k ? &marker : &v, 0);
            for (int j = 1; !rc && groups[g].k && j <= 10; j++)
                for (int m = 1; !rc && m <= groups[g].k; m++) {
                    k.mv_size = (size_t)snprintf(key, sizeof key, "%s/c-%06d/%d/%d/leaf",
                                                 groups[g].group, i, j, m);
                    rc = mdb_put(txn, dbi, &k, &v, 0);
                }
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* The children of "<group>/" as the port's list_walk finds them: a step
 * to each key, and from a key inside a child's subtree one seek past the
 * subtree ("<group>/<child>0": '0' follows '/').  Returns 0 with the
 * number found in *n, or an LMDB code. */
static int list_walk(MDB_cursor *cur, const char *group, size_t *n)
{
    char prefix[64], seek[600];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", group);
    MDB_val k = {plen, prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *n = 0;
    while (rc == 0 && k.mv_size > plen && !memcmp(k.mv_data, prefix, plen)) {
        const char *rest = (const char *)k.mv_data + plen;
        size_t rlen = k.mv_size - plen, seg = 0;
        while (seg < rlen && rest[seg] != '/')
            seg++;
        if (seg == rlen) {
            ++*n;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        memcpy(seek, prefix, plen);
        memcpy(seek + plen, rest, seg);
        seek[plen + seg] = '0';
        k.mv_size = plen + seg + 1;
        k.mv_data = seek;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Lists `group` (100 children) over and over for LIST_SECS in one read
 * transaction; *rate is listings a second. */
static int list_rate(MDB_env *env, MDB_dbi dbi, const char *group, double *rate)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    size_t n = 0, lists = 0;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
        mdb_txn_abort(txn);
        return rc;
    }
    double t0 = now_s(), t = 0;
    do {
        for (int i = 0; !rc && i < 100; i++, lists++)
            if (!(rc = list_walk(cur, group, &n)) && n != 100)
                rc = MDB_NOTFOUND; /* (and keeps the walk from being optimised away) */
    } while (!rc && (t = now_s() - t0) < LIST_SECS);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    *rate = rc ? 0 : (double)lists / t;
    return rc;
}

/* 1 when measurement `name` was asked for (WHAT is all or name). */
static int wanted(const char *what, const char *name)
{
    return !strcmp(what, "all") || !strcmp(what, name);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: raw_lmdb DIR [N [WHAT]]\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t n = argc >= 3 ? strtoul(argv[2], NULL, 10) : 100000;
    const char *what = argc == 4 ? argv[3] : "all";
    size_t n_txn = n / 4 ? n / 4 : 1;
    size_t *lens = malloc(n * sizeof *lens), *tlens = malloc(n_txn * sizeof *tlens);
    char *keys = lens ? make_keys("key-", n, lens) : NULL;
    char *tkeys = tlens ? make_keys("txn-", n_txn, tlens) : NULL;
    MDB_env *env = NULL, *senv = NULL;
    MDB_dbi dbi, sdbi;
    double secs = 0;
    size_t done = 0;
    int rc = ENOMEM;
    const char *step = "malloc";

    if (n == 0 || !keys || !tkeys)
        goto out;
    rc = EINVAL;
    step = "WHAT";
    if (!wanted(what, "get") && !wanted(what, "put_one_txn") && !wanted(what, "put_txn_per_op") &&
        !wanted(what, "put_txn_per_op_sync") && !wanted(what, "put_group_sync") &&
        !wanted(what, "list"))
        goto out;

    if (wanted(what, "get") || wanted(what, "put_one_txn") || wanted(what, "put_txn_per_op")) {
        step = "open nosync";
        if ((rc = open_env(dir, "nosync", MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NORDAHEAD,
                           &env, &dbi)))
            goto out;
    }
    if (wanted(what, "get") || wanted(what, "put_one_txn")) {
        step = "one-txn puts";
        if ((rc = put_keys(env, dbi, keys, lens, n, n, 0, &done, &secs)))
            goto out;
        printf("raw_put_one_txn_ops_per_sec %.1f\n", (double)done / secs);
    }
    if (wanted(what, "get")) {
        step = "random gets";
        if ((rc = get_random(env, dbi, keys, lens, n, &secs)))
            goto out;
        printf("raw_get_ops_per_sec %.1f\n", (double)n / secs);
    }
    if (wanted(what, "put_txn_per_op")) {
        step = "txn-per-op puts";
        if ((rc = put_keys(env, dbi, tkeys, tlens, n_txn, 1, 0, &done, &secs)))
            goto out;
        printf("raw_put_txn_per_op_ops_per_sec %.1f\n", (double)done / secs);
    }
    if (wanted(what, "put_txn_per_op_sync")) {
        step = "open sync";
        if ((rc = open_env(dir, "sync", MDB_WRITEMAP | MDB_NORDAHEAD, &senv, &sdbi)))
            goto out;
        step = "txn-per-op synchronous puts";
        if ((rc = put_keys(senv, sdbi, tkeys, tlens, n_txn, 1, SYNC_MAX_SECS, &done, &secs)))
            goto out;
        printf("raw_put_txn_per_op_sync_ops_per_sec %.1f\n", (double)done / secs);
    }
    if (wanted(what, "put_group_sync")) {
        MDB_env *genv = NULL;
        MDB_dbi gdbi;
        step = "open group";
        if ((rc = open_env(dir, "group", MDB_WRITEMAP | MDB_NORDAHEAD, &genv, &gdbi)))
            goto out;
        step = "grouped synchronous puts";
        rc = put_keys(genv, gdbi, keys, lens, n, GROUP_PUTS, SYNC_MAX_SECS, &done, &secs);
        mdb_env_close(genv);
        if (rc)
            goto out;
        printf("raw_put_group_sync_ops_per_sec %.1f\n", (double)done / secs);
    }
    if (wanted(what, "list")) {
        MDB_env *lenv = NULL;
        MDB_dbi ldbi;
        double flat = 0, deep = 0;
        step = "open lists";
        if ((rc = open_env(dir, "lists", MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NORDAHEAD,
                           &lenv, &ldbi)))
            goto out;
        step = "list store";
        if (!(rc = list_keys(lenv, ldbi))) {
            step = "lists";
            if (!(rc = list_rate(lenv, ldbi, "flat", &flat)))
                rc = list_rate(lenv, ldbi, "deep", &deep);
        }
        mdb_env_close(lenv);
        if (rc)
            goto out;
        printf("raw_list_flat_ops_per_sec %.1f\nraw_list_deep_ops_per_sec %.1f\n", flat, deep);
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "raw_lmdb: %s: %s\n", step, rc > 0 ? strerror(rc) : mdb_strerror(rc));
    if (env)
        mdb_env_close(env);
    if (senv)
        mdb_env_close(senv);
    free(keys);
    free(tkeys);
    free(lens);
    free(tlens);
    return rc ? 1 : 0;
}
