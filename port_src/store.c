/* store.c - paths, values, groups and links on LMDB (store.h). */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"

/*
 * Formats (SPEC section 2).
 *
 * tagged: keys live in the named database DATA_DB; a second named database
 * META_DB marks the directory as ours.  Every stored value starts with one
 * tag byte that only this program writes, so caller bytes are always data:
 *     TAG_VALUE bytes...   a value
 *     TAG_LINK  target...  a link to the normalised target path
 *     TAG_GROUP            a group marker
 *
 * hb_store_lmdb: keys live in the unnamed database, values are raw, the
 * exact value "group" is a group marker and "link:" + non-empty target is
 * a link.  Nothing else is written, so HyperBEAM's own store can still
 * read the directory.
 */
#define DATA_DB "hyper_lmdb.data"
#define META_DB "hyper_lmdb.meta"
#define CHILDREN_DB "hyper_lmdb.children"
enum { TAG_VALUE = 1, TAG_LINK = 2, TAG_GROUP = 3 };
static const char HB_GROUP[] = "group";
static const char HB_LINK[] = "link:";

const char *store_format_name(enum store_format f)
{
    return f == FORMAT_HB ? "hb_store_lmdb" : f == FORMAT_TAGGED ? "tagged" : "auto";
}

const char *store_durability_name(enum store_durability d)
{
    return d == DURABILITY_FSYNC ? "fsync" : d == DURABILITY_ASYNC ? "async" : "commit";
}

int store_check_key(size_t len)
{
    if (len == 0)
        return HL_EEMPTY;
    if (len > PATH_MAX_KEY)
        return HL_ETOOLONG;
    return 0;
}

#define LAST_KEY "last_request"

/* Only async mode's server asks which request a commit applied last (to
 * replay only what came after it); in the other modes the tagged format's
 * put would cost every commit a page more to flush (fsync mode, 64
 * writers: 3-10% more writes/s without it, alternating slices, in both
 * orders).  hb_store_lmdb's record beside the store costs a store into a
 * map, and must be written by every writer (marks.h). */
int store_note_last(struct store *s, uint64_t id)
{
    if (s->format == FORMAT_HB && s->wtxn && !s->read_only) {
        /* every mode and session (0 included): marks.h says why */
        if (!s->marks && s->dir)
            s->marks = marks_open(s->dir); /* failed at the open: again */
        if (s->marks)
            marks_put(s->marks, (uint64_t)mdb_txn_id(s->wtxn), s->session, id);
        return 0; /* a write is never refused for want of its record */
    }
    if (!s->has_meta || !s->session || !s->wtxn || s->durability != DURABILITY_ASYNC)
        return 0;
    uint8_t b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(s->session >> (8 * i));
        b[8 + i] = (uint8_t)(id >> (8 * i));
    }
    MDB_val k = {sizeof LAST_KEY - 1, LAST_KEY}, v = {sizeof b, b};
    return mdb_put(s->wtxn, s->meta_dbi, &k, &v, 0);
}

int store_last_request(struct store *s, uint64_t *session, uint64_t *id)
{
    MDB_txn *txn;
    /* the pooled transaction: its slot is held (a slot of its own might
     * not be free, and "none recorded" would replay committed writes) */
    if (s->format == FORMAT_HB) {
        if (!s->session || !s->marks || store_read_txn(s, &txn))
            return 0;
        uint64_t committed = (uint64_t)mdb_txn_id(txn);
        txn_pool_release(&s->pool);
        *session = s->session;
        return marks_last(s->marks, committed, s->session, id);
    }
    if (!s->has_meta || store_read_txn(s, &txn))
        return 0;
    MDB_val k = {sizeof LAST_KEY - 1, LAST_KEY}, v;
    int found = mdb_get(txn, s->meta_dbi, &k, &v) == 0 && v.mv_size == 16;
    if (found) {
        const uint8_t *b = v.mv_data;
        *session = *id = 0;
        for (int i = 7; i >= 0; i--) {
            *session = *session << 8 | b[i];
            *id = *id << 8 | b[8 + i];
        }
    }
    txn_pool_release(&s->pool);
    return found;
}

int store_check_path(size_t len)
{
    return len > PATH_MAX_WORK ? HL_ETOOLONG : 0;
}

static int check_write_key(struct store *s, size_t len)
{
    int rc = store_check_key(len);
    if (rc == HL_ETOOLONG)
        s->err_key_len = len;
    return rc;
}

/* Classifies a stored value; <*data, *len> is the payload without tag. */
static enum store_kind classify(const struct store *s, const MDB_val *v, const uint8_t **data,
                                size_t *len)
{
    const uint8_t *p = v->mv_data;
    size_t n = v->mv_size;
    if (s->format == FORMAT_TAGGED) {
        if (n == 0) {
            /* Only a foreign writer leaves an untagged empty value. */
            *data = p;
            *len = 0;
            return KIND_VALUE;
        }
        *data = p + 1;
        *len = n - 1;
        return p[0] == TAG_LINK ? KIND_LINK : p[0] == TAG_GROUP ? KIND_GROUP : KIND_VALUE;
    }
    *data = p;
    *len = n;
    if (n == sizeof HB_GROUP - 1 && memcmp(p, HB_GROUP, n) == 0)
        return KIND_GROUP;
    if (n > sizeof HB_LINK - 1 && memcmp(p, HB_LINK, sizeof HB_LINK - 1) == 0) {
        *data = p + sizeof HB_LINK - 1;
        *len = n - (sizeof HB_LINK - 1);
        return KIND_LINK;
    }
    return KIND_VALUE;
}

/* Looks a key up: 0 and its kind/payload, HL_ENOTFOUND, or an LMDB error. */
static int get_entry(const struct store *s, MDB_txn *txn, const uint8_t *key, size_t klen,
                     enum store_kind *kind, const uint8_t **data, size_t *len)
{
    if (klen == 0 || klen > PATH_MAX_KEY)
        return HL_ENOTFOUND; /* no such key can exist */
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, s->dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return HL_ENOTFOUND;
    if (rc)
        return rc;
    *kind = classify(s, &v, data, len);
    return 0;
}

/* Puts <key> = tag + <a> + <b> with MDB_RESERVE, copying once. */
static int put_entry(struct store *s, const uint8_t *key, size_t klen, enum store_kind kind,
                     const uint8_t *a, size_t alen)
{
    const uint8_t *prefix = NULL;
    size_t plen = 0;
    uint8_t tag;
    if (s->format == FORMAT_TAGGED) {
        tag = kind == KIND_LINK ? TAG_LINK : kind == KIND_GROUP ? TAG_GROUP : TAG_VALUE;
        prefix = &tag;
        plen = 1;
    } else if (kind == KIND_LINK) {
        prefix = (const uint8_t *)HB_LINK;
        plen = sizeof HB_LINK - 1;
    } else if (kind == KIND_GROUP) {
        a = (const uint8_t *)HB_GROUP;
        alen = sizeof HB_GROUP - 1;
    }
    MDB_val k = {klen, (void *)key}, v = {plen + alen, NULL};
    int rc = store_reserve(s, klen + plen + alen);
    if (rc || (rc = mdb_put(s->wtxn, s->dbi, &k, &v, MDB_RESERVE)))
        return rc;
    if (plen)
        memcpy(v.mv_data, prefix, plen);
    if (alen)
        memcpy((uint8_t *)v.mv_data + plen, a, alen);
    return 0;
}

/* ---- the children index ---------------------------------------------
 *
 * Tagged format, when the store has one (opened once with children-index:
 * nothing may be added to a store in hb_store_lmdb's format).  A DUPSORT
 * database: for each parent P with anything below it, the key "P/" ("/"
 * for the root) holds one item per child name, in LMDB's default order of
 * duplicates, which is path_cmp's.  An edge P -> n is there exactly when
 * the key P/n exists or something lies below it.  A write of a new key adds
 * the edges of its path from the deepest up and stops at the first that is
 * there (the ones above it are there too); a delete takes away the edges
 * its key was the last thing below.  A list is then one seek and a step
 * per child, where the walk of the keys seeks past each child's subtree
 * from LMDB's root (bench/RESULTS.md, fourteenth session).
 */

/* The index's key for the children of <parent, plen> into buf
 * (PATH_MAX_KEY + 2 bytes). */
static size_t idx_key(uint8_t *buf, const uint8_t *parent, size_t plen)
{
    memcpy(buf, parent, plen);
    buf[plen] = '/';
    return plen + 1;
}

/* 1 with *plen the parent's length when key has a parent, 0 at the top. */
static int idx_split(const uint8_t *key, size_t klen, size_t *plen)
{
    size_t i = klen;
    while (i && key[i - 1] != '/')
        i--;
    *plen = i ? i - 1 : 0;
    return i != 0;
}

/* Adds the edges of <key, klen> (not pointing into the map) inside txn.
 * A parent P that has children already ("P/" is in the index) has its own
 * edge too: its edge is put (a no-op if there) and the walk up stops.
 * One that has none gets its first, and the walk goes on up.  So a new
 * key below an existing group costs one lookup and one put. */
static int idx_add(struct store *s, MDB_txn *txn, const uint8_t *key, size_t klen)
{
    uint8_t ik[PATH_MAX_KEY + 2];
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->idx_dbi, &cur);
    if (rc)
        return rc;
    for (;;) {
        size_t plen;
        int up = idx_split(key, klen, &plen);
        size_t at = up ? plen + 1 : 0, iklen = idx_key(ik, key, plen);
        if (klen == at)
            break; /* a name "" (a key ending in '/'): none of ours */
        MDB_val k = {iklen, ik}, v;
        int had = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (had != 0 && had != MDB_NOTFOUND) {
            rc = had;
            break;
        }
        k = (MDB_val){iklen, ik};
        v = (MDB_val){klen - at, (void *)(key + at)};
        if ((rc = store_reserve(s, iklen + v.mv_size)) ||
            (rc = mdb_cursor_put(cur, &k, &v, MDB_NODUPDATA)) || had == 0 || !up)
            break;
        klen = plen;
    }
    mdb_cursor_close(cur);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

/* Takes away, inside s->wtxn, the edges that <key, klen>, just deleted,
 * was the last thing below. */
static int idx_remove(struct store *s, const uint8_t *key, size_t klen)
{
    uint8_t ik[PATH_MAX_KEY + 2];
    int rc;
    for (;;) {
        MDB_val k, v;
        if (klen + 2 <= PATH_MAX_KEY) { /* else no key can lie below it */
            k = (MDB_val){idx_key(ik, key, klen), ik};
            if ((rc = mdb_get(s->wtxn, s->idx_dbi, &k, &v)) != MDB_NOTFOUND)
                return rc; /* 0: children left, so it stays a child */
        }
        size_t plen;
        int up = idx_split(key, klen, &plen);
        size_t at = up ? plen + 1 : 0;
        if (klen == at)
            return 0;
        k = (MDB_val){idx_key(ik, key, plen), ik};
        v = (MDB_val){klen - at, (void *)(key + at)};
        if ((rc = store_reserve(s, k.mv_size + v.mv_size)))
            return rc;
        if ((rc = mdb_del(s->wtxn, s->idx_dbi, &k, &v)) && rc != MDB_NOTFOUND)
            return rc;
        if (!up)
            return 0;
        enum store_kind kind; /* a parent holding a key of its own stays */
        const uint8_t *data;
        size_t dlen;
        if ((rc = get_entry(s, s->wtxn, key, plen, &kind, &data, &dlen)) != HL_ENOTFOUND)
            return rc;
        klen = plen;
    }
}

/* Opens the index inside the store's opening transaction, building it
 * from the keys when asked to and it is missing.  A store that has one
 * keeps it: every port that opens the store keeps it up to date. */
static int idx_open(struct store *s, MDB_txn *txn, int build)
{
    int rc = mdb_dbi_open(txn, CHILDREN_DB, MDB_DUPSORT, &s->idx_dbi);
    if (rc == MDB_NOTFOUND && !build) {
        s->idx_absent_at = (uint64_t)mdb_txn_id(txn) - !s->read_only;
        return 0;
    }
    if (rc == 0) {
        s->has_idx = s->idx_lists = 1;
        return 0;
    }
    if (rc != MDB_NOTFOUND ||
        (rc = mdb_dbi_open(txn, CHILDREN_DB, MDB_CREATE | MDB_DUPSORT, &s->idx_dbi)))
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->dbi, &cur)))
        return rc;
    uint8_t key[PATH_MAX_KEY];
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t klen = k.mv_size < sizeof key ? k.mv_size : sizeof key;
        memcpy(key, k.mv_data, klen);
        if ((rc = idx_add(s, txn, key, klen)))
            break;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    s->has_idx = s->idx_lists = 1;
    return 0;
}

int store_write_begun(struct store *s)
{
    if (s->format != FORMAT_TAGGED || s->has_idx)
        return 0;
    uint64_t last = (uint64_t)mdb_txn_id(s->wtxn) - 1;
    if (last == s->idx_absent_at)
        return 0; /* every commit since the last look was ours */
    int rc = mdb_dbi_open(s->wtxn, CHILDREN_DB, MDB_DUPSORT, &s->idx_dbi);
    if (rc == MDB_NOTFOUND) {
        s->idx_absent_at = last;
        return 0;
    }
    if (rc)
        return rc;
    s->has_idx = s->idx_new = 1;
    return 0;
}

void store_write_ended(struct store *s, int committed, uint64_t id)
{
    if (s->idx_new) {
        /* A handle opened in a transaction lives on only if it commits;
         * read transactions begun after the commit (the pool lets its own
         * go at every commit) can use it. */
        if (committed)
            s->idx_lists = 1;
        else
            s->has_idx = 0;
        s->idx_new = 0;
    } else if (committed && !s->has_idx && s->idx_absent_at + 1 == id) {
        s->idx_absent_at = id;
    }
}

/* ---- opening ---------------------------------------------------------- */

/* fresh: the environment is ours to tag when it has no metadata.  That is
 * when no transaction was ever committed to it and either its file is new
 * (did not exist, or was empty, before mdb_env_open) or a port of ours
 * opened the directory before (its lock file was there: a port killed
 * between mdb_env_open, which writes the file, and the commit that tags
 * it, which would otherwise leave a new store that opens as hb_store_lmdb
 * for good).  An environment that has held keys, even empty now (a
 * hb_store_lmdb store that was reset), or that another program made, is
 * hb_store_lmdb's, and tagging it would add keys hb_store_lmdb sees
 * (SPEC section 2). */
static int detect_format(struct store *s, MDB_txn *txn, enum store_format want, int fresh,
                         char *err, size_t errlen)
{
    MDB_dbi meta;
    unsigned ro = s->read_only ? 0 : MDB_CREATE;
    int rc = mdb_dbi_open(txn, META_DB, 0, &meta);
    if (rc == 0) {
        if (want == FORMAT_HB) {
            snprintf(err, errlen, "format_mismatch");
            return HL_EBADREQ;
        }
        s->format = FORMAT_TAGGED;
        s->meta_dbi = meta;
        s->has_meta = 1;
        return mdb_dbi_open(txn, DATA_DB, ro, &s->dbi);
    }
    /* MDB_INCOMPATIBLE: a plain key of that name, i.e. a foreign store. */
    if (rc != MDB_NOTFOUND && rc != MDB_INCOMPATIBLE)
        return rc;
    MDB_dbi main_db;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_db)))
        return rc;
    MDB_stat st;
    if ((rc = mdb_stat(txn, main_db, &st)))
        return rc;
    if (st.ms_entries > 0 || want == FORMAT_HB || s->read_only ||
        (want == FORMAT_AUTO && !fresh)) {
        if (want == FORMAT_TAGGED && st.ms_entries > 0) {
            snprintf(err, errlen, "format_mismatch");
            return HL_EBADREQ;
        }
        if (want == FORMAT_TAGGED && s->read_only) {
            snprintf(err, errlen, "not_a_store");
            return HL_EBADREQ;
        }
        s->format = FORMAT_HB;
        s->dbi = main_db;
        if (!s->read_only && mdb_txn_id(txn) == 1) {
            /* Never committed to (a new store made in this format, or one
             * hb_store_lmdb made and never wrote): commit a change that
             * leaves nothing (a key put and deleted), so that it never
             * looks new again, once our lock file is there, and opens in
             * this format without the option. */
            MDB_val k = {sizeof "hyper_lmdb.init" - 1, "hyper_lmdb.init"}, v = {0, ""};
            if ((rc = mdb_put(txn, main_db, &k, &v, 0)) || (rc = mdb_del(txn, main_db, &k, NULL)))
                return rc;
        }
        return 0;
    }
    /* A new environment, or an empty one we were told to tag. */
    s->format = FORMAT_TAGGED;
    if ((rc = mdb_dbi_open(txn, META_DB, MDB_CREATE, &meta)))
        return rc;
    MDB_val k = {6, "format"}, v = {6, "tagged"};
    if ((rc = mdb_put(txn, meta, &k, &v, 0)))
        return rc;
    s->meta_dbi = meta;
    s->has_meta = 1;
    return mdb_dbi_open(txn, DATA_DB, MDB_CREATE, &s->dbi);
}

/* The short reason store_open gives for rc.  LMDB's codes (MDB_KEYEXIST
 * = -30799 up to MDB_LAST_ERRCODE) and errno values (positive) have
 * mdb_strerror's text; only the project's own HL_E* codes (-1 .. HL_ETOOBIG,
 * errors.h) are "internal".  The old test, -30800 < rc < 0, also caught
 * every LMDB code, so a map too small for the metadata said "internal"
 * instead of MDB_MAP_FULL. */
static const char *open_reason(int rc)
{
    if (rc < 0 && rc >= HL_ETOOBIG)
        return "internal";
    return mdb_strerror(rc);
}

static void close_marks(struct store *s)
{
    marks_close(s->marks);
    s->marks = NULL;
    free(s->dir);
    s->dir = NULL;
}

int store_open(struct store *s, const struct store_config *cfg, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->data_fd = -1;
    s->read_only = cfg->read_only;
    s->durability = cfg->durability;
    s->max_hops = cfg->max_hops;
    s->session = cfg->session;
    err[0] = 0;
    int rc;
    MDB_txn *txn = NULL;

    if (!cfg->read_only && mkdir(cfg->dir, 0755) != 0 && errno != EEXIST) {
        rc = errno;
        snprintf(err, errlen, "mkdir");
        return rc;
    }
    char file[PATH_MAX];
    struct stat fst;
    int new_file = snprintf(file, sizeof file, "%s/data.mdb", cfg->dir) < (int)sizeof file &&
                   (stat(file, &fst) != 0 ? errno == ENOENT : fst.st_size == 0);
    if ((rc = mdb_env_create(&s->env)))
        goto fail;
    if ((rc = mdb_env_set_mapsize(s->env, cfg->map_size)) ||
        (rc = mdb_env_set_maxreaders(s->env, cfg->max_readers)) ||
        (rc = mdb_env_set_maxdbs(s->env, 4)))
        goto fail;
    /* WRITEMAP: commits write the map directly, no malloc'd dirty pages.
     * commit and async modes add NOSYNC: a commit survives a crash of this
     * process or of the BEAM (the pages are in the kernel's cache) and the
     * disk flush is batched, every sync-interval.  (LMDB's own warning
     * applies: with WRITEMAP + NOSYNC an operating-system crash between
     * flushes can damage the file, not just lose the newest commits.)
     * fsync mode keeps LMDB's synchronous commit, which flushes the data
     * pages before it writes and flushes the meta page: each group commit
     * is on disk, in an order that survives a system crash, before any of
     * its writers hears ok.  (Measured: flushing the meta page with the
     * next commit instead, NOMETASYNC with the answers held back until
     * then, saves little: the data flush is most of a commit, ~340 of
     * ~370 us here, and holding answers back halves the batches.) */
    unsigned flags = MDB_NOTLS;
    if (cfg->durability != DURABILITY_FSYNC)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    if (cfg->read_only)
        flags |= MDB_RDONLY;
    else
        flags |= MDB_WRITEMAP;
    if (!cfg->read_ahead)
        flags |= MDB_NORDAHEAD;
    if ((rc = mdb_env_open(s->env, cfg->dir, flags, 0644))) {
        snprintf(err, errlen, "mdb_env_open");
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead)
        fprintf(stderr, "hyper_lmdb_port: cleared %d stale reader slot(s)\n", dead);

    MDB_stat st;
    mdb_filehandle_t fd;
    MDB_envinfo ei;
    if (!cfg->read_only && mdb_env_stat(s->env, &st) == 0 && mdb_env_get_fd(s->env, &fd) == 0 &&
        mdb_env_info(s->env, &ei) == 0) {
        s->data_fd = fd;
        s->psize = st.ms_psize;
        /* every page in use has been written: its block exists */
        s->reserved = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
        /* A store never committed to is written below (its format's
         * records): that needs blocks too.  One already written needs
         * none to open, and opens on a full disk (to be read). */
        store_reserve_begin(s);
        if (store_reserve(s, 0) == HL_ENOSPC && ei.me_last_txnid == 0) {
            rc = ENOSPC;
            snprintf(err, errlen, "no disk space for a new store");
            goto fail;
        }
    }
    /* A read-only port (a reader: hyper_lmdb:open_reader/1; the command
     * line) is a process just started, and its first transaction, below,
     * takes a snapshot: every page a commit frees while it is held stays
     * pinned, and the store's file grows by them.  Started, loaded and the
     * environment opened, such a process has often used up the slice the
     * kernel gave it, and is preempted within the transaction, runnable
     * (state R) for as long as the busy processes beside it take: a
     * sampler of LMDB's reader table beside make soak-memory found every
     * snapshot 8 or more commits old held by a reader at most 20 ms old
     * (bench/RESULTS.md, fourteenth session).  So it
     * yields first and begins the transaction on a fresh slice.  Measured
     * (60 s soaks, five of each, in turn): such snapshots 10-18 per run
     * against 13-53, the oldest 34-75 commits behind against 35-194, the
     * map at the end 3.0-5.8 MB against 3.4-9.7. */
    if (cfg->read_only)
        sched_yield();
    MDB_envinfo info;
again:
    if ((rc = mdb_txn_begin(s->env, NULL, cfg->read_only ? MDB_RDONLY : 0, &txn)))
        goto fail;
    int fresh = mdb_env_info(s->env, &info) == 0 && info.me_last_txnid == 0 &&
                (new_file || cfg->ours);
    if ((rc = detect_format(s, txn, cfg->format, fresh, err, errlen)))
        goto fail;
    if (cfg->children_index && s->format != FORMAT_TAGGED) {
        rc = HL_EBADREQ;
        snprintf(err, errlen, "children_index_needs_tagged");
        goto fail;
    }
    if (s->format == FORMAT_TAGGED &&
        (rc = idx_open(s, txn, cfg->children_index && !cfg->read_only))) {
        /* The index of a store near the end of its map: a larger map,
         * as a write would get (store_grow_map), and the build again. */
        if (rc == MDB_MAP_FULL && mdb_env_info(s->env, &info) == 0 &&
            info.me_mapsize * 2 > info.me_mapsize) {
            mdb_txn_abort(txn);
            txn = NULL;
            if ((rc = mdb_env_set_mapsize(s->env, info.me_mapsize * 2)))
                goto fail;
            fprintf(stderr, "hyper_lmdb_port: map grown to %zu bytes for the children index\n",
                    info.me_mapsize * 2);
            store_reserve_begin(s);
            goto again;
        }
        snprintf(err, errlen, "children index: %s", open_reason(rc));
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto fail;
    if (s->format == FORMAT_HB && !s->read_only) {
        if (!(s->dir = strdup(cfg->dir))) {
            rc = HL_ENOMEM;
            goto fail;
        }
        s->marks = marks_open(s->dir); /* NULL: tried again at each commit */
    }
    if (!(s->cache = link_cache_new(cfg->cache_slots))) {
        rc = HL_ENOMEM;
        goto fail;
    }
    txn_pool_init(&s->pool, s->env);
    /* The read slot now, before readers of the directory (hyper_lmdb's
     * open_reader/1, each a process of its own) can take the last ones:
     * a store that could write but no longer read would be no store. */
    if ((rc = txn_pool_hold(&s->pool))) {
        link_cache_free(s->cache);
        s->cache = NULL;
        snprintf(err, errlen, "read slot: %s", open_reason(rc));
        goto fail;
    }
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    s->env = NULL;
    close_marks(s);
    if (!err[0])
        snprintf(err, errlen, "%s", open_reason(rc));
    return rc;
}

void store_close(struct store *s)
{
    if (!s->env)
        return;
    if (s->wtxn)
        mdb_txn_abort(s->wtxn);
    txn_pool_close(&s->pool);
    if (!s->read_only)
        mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    link_cache_free(s->cache);
    s->env = NULL;
    close_marks(s);
}

/* What store_reserve counts (store.h), for each change (every put and
 * delete, a write_many's ops one by one, ensure_parent_groups' markers
 * too), on top of the pages in use when the transaction began and
 * RESERVE_TXN_PAGES of its own (the root-to-leaf paths it copies first,
 * the free list it saves):
 *   - the pages its bytes take, at most twice its key, value and node
 *     header (a page is at least half full, a value's overflow pages
 *     rounded up);
 *   - RESERVE_OP_PAGES it may copy (the leaf, a split, its parents) and
 *     their free-list entries, but no more in a transaction than it had
 *     pages in use when it began: a page is copied once per transaction.
 *     (So a write_many of 20,000 new keys counts its bytes, and one of
 *     3,000 keys scattered over a large store a page each.)
 * What is counted must stay RESERVE_SLACK short of the blocks reserved;
 * past that they are reserved further ahead, by an eighth of what is
 * counted (at least RESERVE_SLACK, at most RESERVE_AHEAD_MAX), so that
 * fallocate runs once per that much growth and a small store does not
 * hold 16 MiB of disk it does not use.  Where that much is no longer
 * free, what is counted and RESERVE_SLACK more, or the change is
 * refused. */
#define RESERVE_TXN_PAGES 64
#define RESERVE_OP_PAGES 4
#define RESERVE_NODE 16
#define RESERVE_AHEAD_MAX ((uint64_t)16 << 20)
#define RESERVE_SLACK ((uint64_t)1 << 20)

void store_reserve_begin(struct store *s)
{
    MDB_envinfo info;
    if (s->data_fd < 0 || mdb_env_info(s->env, &info) != 0)
        return;
    s->txn_need = ((uint64_t)info.me_last_pgno + 1 + RESERVE_TXN_PAGES) * s->psize;
    s->txn_copies_left = (uint64_t)info.me_last_pgno + 1;
}

/* fallocate(2) without changing the file's size (LMDB set it to the map's):
 * 0, or an errno. */
static int allocate(int fd, uint64_t from, uint64_t len)
{
    for (;;) {
        if (syscall(SYS_fallocate, fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)len) == 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

int store_reserve(struct store *s, size_t bytes)
{
    if (s->data_fd < 0)
        return 0;
    uint64_t copies = s->txn_copies_left < RESERVE_OP_PAGES ? s->txn_copies_left : RESERVE_OP_PAGES;
    uint64_t need = s->txn_need + 2 * ((uint64_t)bytes + RESERVE_NODE) +
                    copies * (s->psize + sizeof(size_t));
    if (need + RESERVE_SLACK > s->reserved) {
        uint64_t more = need / 8 < RESERVE_SLACK         ? RESERVE_SLACK
                        : need / 8 > RESERVE_AHEAD_MAX ? RESERVE_AHEAD_MAX
                                                       : need / 8;
        uint64_t ahead = need + RESERVE_SLACK + more;
        int rc = allocate(s->data_fd, s->reserved, ahead - s->reserved);
        if (rc == ENOSPC || rc == EFBIG) { /* no room ahead: perhaps for this one */
            ahead = need + RESERVE_SLACK;
            rc = allocate(s->data_fd, s->reserved, ahead - s->reserved);
        }
        if (rc == EOPNOTSUPP || rc == ENOSYS) {
            s->data_fd = -1; /* this filesystem cannot reserve: unchecked, as before */
            return 0;
        }
        if (rc == ENOSPC || rc == EFBIG)
            return HL_ENOSPC;
        if (rc)
            return rc;
        s->reserved = ahead;
    }
    s->txn_need = need;
    s->txn_copies_left -= copies;
    return 0;
}

int store_grow_map(struct store *s)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc)
        return rc;
    size_t next = info.me_mapsize * 2;
    if (next < info.me_mapsize)
        return MDB_MAP_FULL;
    if ((rc = mdb_env_set_mapsize(s->env, next)))
        return rc;
    (void)txn_pool_hold(&s->pool); /* the slot again at once (store_open) */
    s->map_grows++;
    fprintf(stderr, "hyper_lmdb_port: map grown to %zu bytes\n", next);
    return 0;
}

int store_adopt_map(struct store *s)
{
    if (s->wtxn)
        return MDB_MAP_RESIZED; /* cannot remap under it: answered as an error (a read
                                   beside an open batch, --read-committed; no other
                                   process can have grown the map since it began) */
    txn_pool_close(&s->pool);
    int rc = mdb_env_set_mapsize(s->env, 0); /* 0: the size in the meta page */
    if (rc)
        return rc;
    (void)txn_pool_hold(&s->pool); /* the slot again at once (store_open) */
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0)
        fprintf(stderr, "hyper_lmdb_port: map grown by another process to %zu bytes; adopted\n",
                info.me_mapsize);
    return 0;
}

int store_read_txn(struct store *s, MDB_txn **txn)
{
    /* The pooled snapshot is let go after our own commits (batch.c),
     * before answers are written and whenever the port waits for input
     * (main.c); one older than a commit
     * of another process (the command line writing beside us, a foreign
     * writer) is let go here, so that a read sees every commit made
     * before it, also under a steady load of reads.  (mdb_env_info reads
     * the meta pages: no system call.) */
    if (s->pool.live) {
        MDB_envinfo info;
        if (mdb_env_info(s->env, &info) == 0 &&
            (uint64_t)info.me_last_txnid != (uint64_t)mdb_txn_id(s->pool.txn))
            txn_pool_release(&s->pool);
    }
    int rc = txn_pool_read(&s->pool, txn);
    /* Another process grew the map past ours; the pool has dropped the
     * transaction that failed, so the new size can be taken now. */
    if (rc == MDB_MAP_RESIZED && (rc = store_adopt_map(s)) == 0)
        rc = txn_pool_read(&s->pool, txn);
    if (rc)
        return rc;
    uint64_t id = (uint64_t)mdb_txn_id(*txn);
    if (id != s->known_txnid) {
        link_cache_invalidate(s->cache);
        s->known_txnid = id;
    }
    return 0;
}

/* ---- resolution ------------------------------------------------------- */

/* The uncached resolver: restarts from the first segment after every
 * link, because a link's target may itself run through linked prefixes.
 * buf and tmp are PATH_MAX_WORK bytes; the result is left in buf. */
static int resolve_walk(struct store *s, MDB_txn *txn, uint8_t *buf, size_t *len, uint8_t *tmp)
{
    unsigned hops = 0;
restart:
    for (size_t end = 0; end < *len;) {
        end += path_segment_len(buf + end, *len - end);
        if (end > PATH_MAX_KEY)
            break; /* neither this prefix nor any longer one can be a key */
        enum store_kind kind;
        const uint8_t *target;
        size_t tlen;
        int rc = get_entry(s, txn, buf, end, &kind, &target, &tlen);
        if (rc == 0 && kind == KIND_LINK) {
            if (++hops > s->max_hops)
                return HL_ELOOP;
            size_t rest = *len - end;
            if (tlen + rest > PATH_MAX_WORK)
                return HL_ELOOP;
            /* target + rest, normalised (a foreign target may be unclean) */
            memcpy(tmp, target, tlen);
            memcpy(tmp + tlen, buf + end, rest);
            *len = path_normalize(tmp, tlen + rest, buf);
            goto restart;
        }
        if (rc && rc != HL_ENOTFOUND)
            return rc;
        end++; /* step over the '/' */
    }
    return 0;
}

int store_resolve(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len, uint8_t *out,
                  size_t *out_len)
{
    /* The cache describes the committed snapshot: usable from the read
     * transaction, and from the write transaction until it changes a link. */
    int cacheable = txn != s->wtxn || !s->wtxn_links;
    /* A path longer than a key is rare, and would take a slot eight
     * times the size of a key's (path and target): resolved uncached. */
    if (len > PATH_MAX_KEY)
        cacheable = 0;
    /* A path longer than the work buffer cannot be held, and nothing can
     * lie at or below it (a link key is at most PATH_MAX_KEY bytes, so
     * what follows it would still be too long for a key). */
    if (len > PATH_MAX_WORK)
        return HL_ELOOP;
    const uint8_t *hit;
    size_t hit_len;
    int unresolvable;
    if (cacheable && link_cache_get(s->cache, path, len, &hit, &hit_len, &unresolvable)) {
        if (unresolvable)
            return HL_ELOOP;
        if (hit_len) /* (an empty path may come as NULL: memcpy must not see it) */
            memcpy(out, hit, hit_len);
        *out_len = hit_len;
        return 0;
    }
    uint8_t tmp[PATH_MAX_WORK];
    if (len)
        memcpy(out, path, len);
    *out_len = len;
    int rc = resolve_walk(s, txn, out, out_len, tmp);
    if (cacheable && (rc == 0 || rc == HL_ELOOP))
        link_cache_put(s->cache, path, len, out, rc ? 0 : *out_len, rc == HL_ELOOP);
    return rc;
}

/* ---- reads ------------------------------------------------------------ */

int store_read(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               const uint8_t **val, size_t *vlen)
{
    enum store_kind kind;
    /* One segment (paths come normalised): no prefix can be a link, so the
     * key itself is the only entry to look at, once.  The cache would save
     * nothing here and costs two memory misses a lookup (its slot, then
     * its bytes): 40% of the port's CPU for random reads of 10,000 keys. */
    if (len && len <= PATH_MAX_KEY && !memchr(path, '/', len)) {
        int rc = get_entry(s, txn, path, len, &kind, val, vlen);
        if (rc || kind == KIND_VALUE)
            return rc;
        if (kind != KIND_LINK)
            return HL_ENOTFOUND;
        /* a link: resolved in full below */
    }
    uint8_t key[PATH_MAX_WORK];
    size_t klen;
    int rc = store_resolve(s, txn, path, len, key, &klen);
    if (rc == HL_ELOOP)
        return HL_ENOTFOUND;
    if (rc)
        return rc;
    /* (a resolved key too long for a key is not found) */
    if ((rc = get_entry(s, txn, key, klen, &kind, val, vlen)))
        return rc;
    return kind == KIND_VALUE ? 0 : HL_ENOTFOUND;
}

/* 1 when some key starts with <prefix, plen> + '/' (an implicit group). */
static int has_children(struct store *s, MDB_txn *txn, const uint8_t *prefix, size_t plen)
{
    if (plen + 1 > PATH_MAX_KEY)
        return 0;
    uint8_t seek[PATH_MAX_KEY + 1];
    memcpy(seek, prefix, plen);
    seek[plen] = '/';
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, s->dbi, &cur))
        return 0;
    MDB_val k = {plen + 1, seek}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    /* the key "P/" itself, only a foreign writer's, holds no child (as in
     * list_walk): what follows it may */
    if (rc == 0 && k.mv_size == plen + 1 && memcmp(k.mv_data, seek, plen + 1) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    int found = rc == 0 && k.mv_size > plen + 1 && memcmp(k.mv_data, seek, plen + 1) == 0;
    mdb_cursor_close(cur);
    return found;
}

int store_type(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               enum store_type *type)
{
    uint8_t key[PATH_MAX_WORK];
    size_t klen;
    *type = TYPE_NOT_FOUND;
    int rc = store_resolve(s, txn, path, len, key, &klen);
    if (rc == HL_ELOOP)
        return 0;
    if (rc)
        return rc;
    if (klen == 0) {
        *type = TYPE_COMPOSITE; /* the root */
        return 0;
    }
    enum store_kind kind;
    const uint8_t *val;
    size_t vlen;
    rc = get_entry(s, txn, key, klen, &kind, &val, &vlen);
    if (rc == 0 && kind == KIND_VALUE)
        *type = TYPE_SIMPLE;
    else if ((rc == 0 && kind == KIND_GROUP) || has_children(s, txn, key, klen))
        *type = TYPE_COMPOSITE;
    return rc == HL_ENOTFOUND ? 0 : rc;
}

/* ---- listing ---------------------------------------------------------- */

int store_names_push(struct store_names *names, const uint8_t *p, size_t len)
{
    if (names->n == names->cap) {
        size_t cap = names->cap ? names->cap * 2 : 64;
        struct store_name *v = realloc(names->v, cap * sizeof *v);
        if (!v)
            return HL_ENOMEM;
        names->v = v;
        names->cap = cap;
    }
    names->v[names->n].p = p;
    names->v[names->n].len = len;
    names->n++;
    return 0;
}

static int name_cmp_asc(const void *a, const void *b)
{
    const struct store_name *x = a, *y = b;
    return path_cmp(x->p, x->len, y->p, y->len);
}

static int name_cmp_desc(const void *a, const void *b) { return name_cmp_asc(b, a); }

/* 1 when names are in order already (duplicates allowed): the common case,
 * names met out of order being names cut before a byte below '/'. */
static int names_in_order(const struct store_names *names, int desc)
{
    for (size_t r = 1; r < names->n; r++) {
        int c = name_cmp_asc(&names->v[r - 1], &names->v[r]);
        if (desc ? c < 0 : c > 0)
            return 0;
    }
    return 1;
}

/* Sorts and removes duplicates (a child can be met twice: once by its own
 * key, once by its subtree). */
static void names_sort_unique(struct store_names *names, int desc)
{
    if (names->n < 2)
        return;
    if (!names_in_order(names, desc))
        qsort(names->v, names->n, sizeof *names->v, desc ? name_cmp_desc : name_cmp_asc);
    size_t w = 1;
    for (size_t r = 1; r < names->n; r++)
        if (name_cmp_asc(&names->v[r], &names->v[w - 1]) != 0)
            names->v[w++] = names->v[r];
    names->n = w;
}

/*
 * Keys sort bytewise and '/' is not the smallest byte, so children are not
 * met in name order: "c-x" (key "P/c-x") comes before the subtree of "c"
 * ("P/c/..."), and a child "c" that has no key of its own is met after
 * "c-x".  The keys of a child m run from "P/m" to the end of its subtree
 * "P/m/...", and the only other children with keys in between are the
 * names m + a byte below '/' + ...  So a child met out of order is always
 * a prefix, cut before a byte below '/', of a name met before it, and is
 * met by its subtree.  Both listings below stand on that.
 *
 * Every cursor call of store_list goes through list_get, so s->list_ops
 * counts the cost.
 */
static int list_get(struct store *s, MDB_cursor *cur, MDB_val *k, MDB_cursor_op op)
{
    MDB_val v;
    s->list_ops++;
    store_tick(s);
    return mdb_cursor_get(cur, k, &v, op);
}

/* Positions cur at the first key >= <key, len>. */
static int seek_ge(struct store *s, MDB_cursor *cur, const uint8_t *key, size_t len, MDB_val *k)
{
    if (len == 0)
        return list_get(s, cur, k, MDB_FIRST);
    k->mv_size = len;
    k->mv_data = (void *)key;
    return list_get(s, cur, k, MDB_SET_RANGE);
}

/* Positions cur at the last key < <key, len>. */
static int seek_lt(struct store *s, MDB_cursor *cur, const uint8_t *key, size_t len, MDB_val *k)
{
    int rc = seek_ge(s, cur, key, len, k);
    if (rc == MDB_NOTFOUND)
        return list_get(s, cur, k, MDB_LAST);
    return rc ? rc : list_get(s, cur, k, MDB_PREV);
}

/* Writes <prefix> + <name> + the byte tail (none when tail < 0) into buf
 * (PATH_MAX_KEY + 1 bytes) and returns the length: a seek key, cut at
 * PATH_MAX_KEY + 1 bytes (a `from` may be of any length).  The cut seeks
 * the same: no key is longer than PATH_MAX_KEY, so every key compares with
 * the cut string as with the whole.  (LMDB takes a seek key of any
 * length.) */
static size_t seek_key(uint8_t *buf, const uint8_t *prefix, size_t plen, const uint8_t *name,
                       size_t nlen, int tail)
{
    size_t room = PATH_MAX_KEY + 1 - plen;
    size_t n = nlen < room ? nlen : room;
    memcpy(buf, prefix, plen);
    if (n)
        memcpy(buf + plen, name, n);
    if (tail >= 0 && plen + n <= PATH_MAX_KEY)
        buf[plen + n++] = (uint8_t)tail;
    return plen + n;
}

/* Positions cur on the first key of the walk: asc, the first key >= P/from
 * (every key of a child >= from is at or above it); desc, the last key
 * below every key of every child <= from, or the last key of the prefix.
 * For desc that is not simply below "P/from0": a child that is a prefix of
 * `from` followed by a byte up to '/' ("c" for from = "c-x", or for
 * from = "c/x": `from` is any binary and may hold a '/') has its subtree
 * ("P/c/...") above "P/c-x" or "P/c/x0".  The shortest such prefix has the
 * highest subtree, so the walk starts below "P/" + that prefix + "0".
 * (Children the seek takes in that sort above `from` are filtered out by
 * list_walk's range check.)  The empty prefix counts too: a foreign key
 * "P//x" names the child "" (below "-x"), whose subtree sorts above
 * "P/-x".  A `from` longer than any key still seeks where it sorts. */
static int list_start(struct store *s, MDB_cursor *cur, const uint8_t *prefix, size_t plen,
                      const uint8_t *from, size_t from_len, int desc, MDB_val *k)
{
    uint8_t seek[PATH_MAX_KEY + 1];
    if (!desc)
        return seek_ge(s, cur, seek, seek_key(seek, prefix, plen, from, from ? from_len : 0, -1),
                       k);
    if (from) {
        for (size_t i = 0; i < from_len; i++)
            if (from[i] <= '/') {
                from_len = i;
                break;
            }
        return seek_lt(s, cur, seek, seek_key(seek, prefix, plen, from, from_len, '/' + 1), k);
    }
    if (plen == 0)
        return list_get(s, cur, k, MDB_LAST);
    memcpy(seek, prefix, plen);
    seek[plen - 1] = '/' + 1; /* "P0": just past every "P/..." key */
    return seek_lt(s, cur, seek, plen, k);
}

/* The whole listing (no limit): one cursor step or seek per child, then a
 * sort, as children are met out of order. */
static int list_walk(struct store *s, MDB_cursor *cur, const uint8_t *prefix, size_t plen,
                     const uint8_t *from, size_t from_len, int desc, struct store_names *names)
{
    MDB_val k;
    uint8_t seek[PATH_MAX_KEY + 1];
    int rc;
    for (rc = list_start(s, cur, prefix, plen, from, from_len, desc, &k); rc == 0;) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break; /* left the prefix */
        const uint8_t *rest = (const uint8_t *)k.mv_data + plen;
        size_t rlen = k.mv_size - plen;
        if (rlen == 0) { /* the key "P/" itself: only a foreign writer */
            rc = list_get(s, cur, &k, desc ? MDB_PREV : MDB_NEXT);
            continue;
        }
        size_t seg = path_segment_len(rest, rlen);
        int in_range = !from || (desc ? path_cmp(rest, seg, from, from_len) <= 0
                                      : path_cmp(rest, seg, from, from_len) >= 0);
        if (in_range && (rc = store_names_push(names, rest, seg)))
            return rc;
        if (seg == rlen) {
            rc = list_get(s, cur, &k, desc ? MDB_PREV : MDB_NEXT);
            continue;
        }
        /* Inside the child's subtree: skip all of it with one seek, to
         * "P/child0" ascending ('0' follows '/'), or to just below
         * "P/child/" descending. */
        size_t slen = seek_key(seek, prefix, plen, rest, seg, desc ? '/' : '/' + 1);
        rc = desc ? seek_lt(s, cur, seek, slen, &k) : seek_ge(s, cur, seek, slen, &k);
    }
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    names_sort_unique(names, desc);
    return 0;
}

/* ---- bounded listing ----
 *
 * With a limit, children are found one at a time, in order, each from the
 * one before with O(1 + cuts) cursor calls (cuts: the bytes below '/' in
 * the names involved, or up to '/' in `from`), whatever the number of
 * children before or after and of descendants, and with nothing to sort.
 * In a group of names like "key-123" each name costs one cursor step. */

struct lister {
    struct store *s;
    MDB_cursor *cur;       /* stays where the next step starts */
    MDB_cursor *probe;     /* looks for subtrees without moving cur */
    const uint8_t *prefix; /* "P/", or "" at the root */
    size_t plen;
    MDB_val k; /* cur's key */
    uint8_t buf[PATH_MAX_KEY + 1];
};

/* The child key k belongs to: 1 with *m its name (pointing into the key)
 * and *below set when k lies in the child's subtree; 0 for the key "P/"
 * itself (only a foreign writer leaves it; it names no child, and it is
 * the smallest key of the prefix); -1 when k lies outside the prefix. */
static int key_child(const struct lister *l, const MDB_val *k, struct store_name *m, int *below)
{
    if (k->mv_size < l->plen || memcmp(k->mv_data, l->prefix, l->plen) != 0)
        return -1;
    const uint8_t *rest = (const uint8_t *)k->mv_data + l->plen;
    size_t rlen = k->mv_size - l->plen;
    if (rlen == 0)
        return 0;
    m->p = rest;
    m->len = path_segment_len(rest, rlen);
    *below = m->len < rlen;
    return 1;
}

/* Looks with the probe cursor for a key that starts "P/" + <q, qlen> +
 * "/", i.e. makes q a child (the old walk takes a key "P/q/" for one too).
 * Returns 0 with *at the name as stored in that key, or NULL when there is
 * none; or an LMDB error. */
static int probe_subtree(struct lister *l, const uint8_t *q, size_t qlen, const uint8_t **at)
{
    *at = NULL;
    if (l->plen + qlen + 1 > PATH_MAX_KEY)
        return 0;
    size_t len = seek_key(l->buf, l->prefix, l->plen, q, qlen, '/');
    MDB_val k;
    int rc = seek_ge(l->s, l->probe, l->buf, len, &k);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (k.mv_size >= len && memcmp(k.mv_data, l->buf, len) == 0)
        *at = (const uint8_t *)k.mv_data + l->plen;
    return 0;
}

/* 1 when name m lies beyond the bound b: above it, or at it when incl. */
static int beyond(const struct store_name *m, const struct store_name *b, int incl)
{
    int c = path_cmp(m->p, m->len, b->p, b->len);
    return incl ? c >= 0 : c > 0;
}

/*
 * Ascending.  The next child after the bound b (the last name, or `from`
 * inclusive): every key of every child beyond b is at or above "P/b\0"
 * ("P/from").  Seek there; a key whose child m is not beyond b lies in the
 * subtree of b or of a prefix of b cut before a byte up to '/' (each such
 * subtree sorts after "P/b"): skip it, at most once per such prefix.  The
 * key reached, of child m, has no key of another child beyond b below it,
 * so the answer is m, unless a prefix q of m cut before a byte below '/',
 * q beyond b, is a child by its subtree (which sorts above m's keys): then
 * the shortest such q.  After q, the next step starts at the same key.
 */
static int list_asc(struct lister *l, const uint8_t *from, size_t from_len, uint64_t limit,
                    struct store_names *names)
{
    struct store_name b = {from, from_len}, m = {NULL, 0};
    int have = from != NULL, incl = 1, below = 0, rc;
    enum { STAY, NEXT, SKIP } move = STAY;
    rc = seek_ge(l->s, l->cur, l->buf,
                 seek_key(l->buf, l->prefix, l->plen, from, have ? from_len : 0, -1), &l->k);
    while (rc == 0 && names->n < limit) {
        if (move == NEXT)
            rc = list_get(l->s, l->cur, &l->k, MDB_NEXT);
        else if (move == SKIP) /* past m's subtree, to "P/m0" */
            rc = seek_ge(l->s, l->cur, l->buf,
                         seek_key(l->buf, l->prefix, l->plen, m.p, m.len, '/' + 1), &l->k);
        while (rc == 0) {
            int c = key_child(l, &l->k, &m, &below);
            if (c < 0)
                rc = MDB_NOTFOUND;
            else if (c == 0)
                rc = list_get(l->s, l->cur, &l->k, MDB_NEXT);
            else if (have && !beyond(&m, &b, incl))
                rc = seek_ge(l->s, l->cur, l->buf,
                             seek_key(l->buf, l->prefix, l->plen, m.p, m.len, '/' + 1), &l->k);
            else
                break;
        }
        if (rc)
            break;
        struct store_name a = m;
        for (size_t i = 0; i < m.len; i++) {
            struct store_name q = {m.p, i};
            if (m.p[i] >= '/' || (have && !beyond(&q, &b, incl)))
                continue;
            const uint8_t *at;
            if ((rc = probe_subtree(l, q.p, q.len, &at)))
                return rc;
            if (at) {
                a = q;
                break;
            }
        }
        if ((rc = store_names_push(names, a.p, a.len)))
            return rc;
        move = a.len < m.len ? STAY : below ? SKIP : NEXT;
        b = a;
        have = 1;
        incl = 0;
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Descending, the mirror.  The next child below the bound b (the last
 * name, or `from` inclusive, which is "below from\0"): from the last key
 * below "P/b" ("P/from\0"), of child m, the greatest child with a key
 * there or lower is m, or, when that key lies in m's subtree, one of the
 * names m followed by a byte below '/', whose keys all sort between "P/m"
 * and "P/m/": the child of the last key below "P/m/", and so on down the
 * chain.  A child below b with no key that low has only a subtree above
 * "P/b": it is a prefix of b cut before a byte up to '/' (or b = from
 * itself when incl), and the longest such prefix above the chain's end
 * that has a subtree is the answer.
 */
static int list_desc(struct lister *l, const uint8_t *from, size_t from_len, uint64_t limit,
                     struct store_names *names)
{
    struct store_name b = {from, from_len};
    int have = from != NULL, incl = 1, rc, prc;
    if (have)
        rc = seek_lt(l->s, l->cur, l->buf, seek_key(l->buf, l->prefix, l->plen, from, from_len, 0),
                     &l->k);
    else if (l->plen == 0)
        rc = list_get(l->s, l->cur, &l->k, MDB_LAST);
    else {
        memcpy(l->buf, l->prefix, l->plen);
        l->buf[l->plen - 1] = '/' + 1; /* "P0": just past every "P/..." key */
        rc = seek_lt(l->s, l->cur, l->buf, l->plen, &l->k);
    }
    enum { STAY, PREV, SEEK } move = STAY;
    /* rc is cur's state: 0 on a key, MDB_NOTFOUND when there is none */
    while ((rc == 0 || rc == MDB_NOTFOUND) && names->n < limit) {
        if (move == PREV)
            rc = list_get(l->s, l->cur, &l->k, MDB_PREV);
        else if (move == SEEK)
            rc = seek_lt(l->s, l->cur, l->buf, seek_key(l->buf, l->prefix, l->plen, b.p, b.len, -1),
                         &l->k);
        if (rc && rc != MDB_NOTFOUND)
            break;
        struct store_name m = {NULL, 0};
        int below = 0, have_m = rc == 0 && key_child(l, &l->k, &m, &below) > 0;
        move = PREV; /* from "P/m" itself, to the last key below it */
        while (have_m && below) {
            struct store_name m2;
            int below2;
            rc = seek_lt(l->s, l->cur, l->buf,
                         seek_key(l->buf, l->prefix, l->plen, m.p, m.len, '/'), &l->k);
            if (rc && rc != MDB_NOTFOUND)
                return rc;
            if (rc == 0 && key_child(l, &l->k, &m2, &below2) > 0 && m2.len >= m.len &&
                memcmp(m2.p, m.p, m.len) == 0) {
                m = m2; /* m itself (its own key), or a name m + byte below '/' */
                below = below2;
                continue;
            }
            move = STAY; /* cur is at the last key below "P/m", or none is */
            break;
        }
        struct store_name a = m;
        int have_a = have_m;
        if (have) {
            /* q holds no '/'; b itself only when incl */
            for (size_t i = path_segment_len(b.p, b.len) + 1; i-- > 0;) {
                if (i == b.len ? !incl : b.p[i] > '/')
                    continue;
                struct store_name q = {b.p, i};
                if (have_m && path_cmp(q.p, q.len, m.p, m.len) <= 0)
                    break; /* shorter ones are smaller still */
                const uint8_t *at;
                if ((prc = probe_subtree(l, q.p, q.len, &at)))
                    return prc;
                if (at) {
                    a.p = at;
                    a.len = i;
                    have_a = 1;
                    move = SEEK;
                    break;
                }
            }
        }
        if (!have_a)
            break;
        if ((prc = store_names_push(names, a.p, a.len)))
            return prc;
        b = a;
        have = 1;
        incl = 0;
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int idx_get(struct store *s, MDB_cursor *cur, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    s->list_ops++;
    store_tick(s);
    return mdb_cursor_get(cur, k, v, op);
}

/* A listing read off the children index: the names come in order and
 * unique, one seek and then a step each.  (A `from` longer than any name
 * seeks cut to PATH_MAX_KEY bytes; the names it then meets that sort
 * below it are passed over.) */
static int list_index(struct store *s, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                      const uint8_t *from, size_t from_len, uint64_t limit, int desc,
                      struct store_names *names)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->idx_dbi, &cur);
    if (rc)
        return rc;
    MDB_val k = plen ? (MDB_val){plen, (void *)prefix} : (MDB_val){1, "/"}, v;
    if (from && from_len == 0) { /* every name is above "" (LMDB seeks no empty item) */
        if (desc) {
            mdb_cursor_close(cur);
            return 0;
        }
        from = NULL;
    }
    rc = idx_get(s, cur, &k, &v, MDB_SET);
    if (rc == 0 && !from)
        rc = idx_get(s, cur, &k, &v, desc ? MDB_LAST_DUP : MDB_FIRST_DUP);
    else if (rc == 0) {
        v = (MDB_val){from_len < PATH_MAX_KEY ? from_len : PATH_MAX_KEY,
                      from_len ? (void *)from : ""};
        rc = idx_get(s, cur, &k, &v, MDB_GET_BOTH_RANGE);
        if (desc && rc == MDB_NOTFOUND) { /* every name is below from */
            k = plen ? (MDB_val){plen, (void *)prefix} : (MDB_val){1, "/"};
            if ((rc = idx_get(s, cur, &k, &v, MDB_SET)) == 0)
                rc = idx_get(s, cur, &k, &v, MDB_LAST_DUP);
        } else if (desc && rc == 0 && path_cmp(v.mv_data, v.mv_size, from, from_len) > 0) {
            rc = idx_get(s, cur, &k, &v, MDB_PREV_DUP);
        }
    }
    while (rc == 0) {
        if (!from || desc || path_cmp(v.mv_data, v.mv_size, from, from_len) >= 0) {
            if ((rc = store_names_push(names, v.mv_data, v.mv_size)) ||
                (limit && names->n >= limit))
                break;
        }
        rc = idx_get(s, cur, &k, &v, desc ? MDB_PREV_DUP : MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_list(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               const uint8_t *from, size_t from_len, uint64_t limit, int desc,
               struct store_names *names)
{
    uint8_t prefix[PATH_MAX_WORK + 1];
    size_t plen;
    names->n = 0;
    int rc = store_resolve(s, txn, path, len, prefix, &plen);
    if (rc == HL_ELOOP)
        return 0;
    if (rc)
        return rc;
    if (plen >= PATH_MAX_KEY)
        return 0; /* no key can lie below it */
    if (plen)
        prefix[plen++] = '/';
    if (s->idx_lists)
        return list_index(s, txn, prefix, plen, from, from_len, limit, desc, names);

    MDB_cursor *cur, *probe;
    if ((rc = mdb_cursor_open(txn, s->dbi, &cur)))
        return rc;
    if (!limit) {
        rc = list_walk(s, cur, prefix, plen, from, from_len, desc, names);
    } else if (!(rc = mdb_cursor_open(txn, s->dbi, &probe))) {
        struct lister l = {.s = s, .cur = cur, .probe = probe, .prefix = prefix, .plen = plen};
        rc = desc ? list_desc(&l, from, from_len, limit, names)
                  : list_asc(&l, from, from_len, limit, names);
        mdb_cursor_close(probe);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* ---- scan and match ---------------------------------------------------- */

int store_scan(struct store *s, MDB_txn *txn, const uint8_t *from, size_t from_len,
               uint64_t limit, int (*fn)(void *ctx, const struct store_entry *e), void *ctx,
               const uint8_t **next, size_t *next_len)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi, &cur);
    if (rc)
        return rc;
    *next = NULL;
    *next_len = 0;
    if (from && from_len && from_len <= PATH_MAX_KEY) {
        k.mv_size = from_len;
        k.mv_data = (void *)from;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else if (from && from_len > PATH_MAX_KEY) {
        rc = MDB_NOTFOUND;
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (uint64_t n = 0; rc == 0; n++) {
        if (limit && n == limit) {
            *next = k.mv_data;
            *next_len = k.mv_size;
            break;
        }
        struct store_entry e = {k.mv_data, k.mv_size, KIND_VALUE, NULL, 0};
        e.kind = classify(s, &v, &e.data, &e.dlen);
        if (e.kind == KIND_GROUP)
            e.dlen = 0;
        if (fn(ctx, &e))
            break;
        store_tick(s);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* 1 when an entry of kind <kind> with payload <data> is what a match
 * pair asks for: a link to <want> (normalised), a value of exactly those
 * bytes, or a group marker. */
static int matches(enum store_kind kind, const uint8_t *data, size_t dlen, enum store_kind want_kind,
                   const uint8_t *want, size_t wlen)
{
    if (kind != want_kind)
        return 0;
    if (kind == KIND_LINK)
        return path_cmp(data, dlen, want, wlen) == 0;
    if (kind == KIND_VALUE)
        return dlen == wlen && (wlen == 0 || memcmp(data, want, wlen) == 0);
    return 1;
}

enum store_kind store_pattern_kind(const struct store *s, const uint8_t *bytes, size_t len,
                                   const uint8_t **data, size_t *dlen)
{
    if (s->format == FORMAT_HB) { /* the bytes as the format reads them */
        MDB_val v = {len, (void *)bytes};
        return classify(s, &v, data, dlen);
    }
    *data = bytes;
    *dlen = len;
    if (len > sizeof HB_LINK - 1 && memcmp(bytes, HB_LINK, sizeof HB_LINK - 1) == 0) {
        *data = bytes + sizeof HB_LINK - 1;
        *dlen = len - (sizeof HB_LINK - 1);
        return KIND_LINK;
    }
    return KIND_VALUE;
}

int store_match(struct store *s, MDB_txn *txn, size_t n, const uint8_t *const *names,
                const size_t *name_lens, const enum store_kind *kinds,
                const uint8_t *const *targets, const size_t *target_lens,
                int (*fn)(void *ctx, const uint8_t *id, size_t id_len), void *ctx)
{
    if (n == 0)
        return 0;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi, &cur);
    if (rc)
        return rc;
    uint8_t key[PATH_MAX_KEY + 1];
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         store_tick(s), rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* Is this key ID/names[0], holding what the first pair asks for? */
        const uint8_t *kp = k.mv_data;
        size_t klen = k.mv_size, nl = name_lens[0];
        if (klen < nl + 2 || kp[klen - nl - 1] != '/' || memcmp(kp + klen - nl, names[0], nl))
            continue;
        const uint8_t *data;
        size_t dlen;
        enum store_kind kind = classify(s, &v, &data, &dlen);
        if (!matches(kind, data, dlen, kinds[0], targets[0], target_lens[0]))
            continue;
        size_t idlen = klen - nl - 1;
        int all = 1;
        for (size_t i = 1; i < n && all; i++) {
            if (idlen + 1 + name_lens[i] > PATH_MAX_KEY) {
                all = 0;
                break;
            }
            memcpy(key, kp, idlen);
            key[idlen] = '/';
            memcpy(key + idlen + 1, names[i], name_lens[i]);
            all = get_entry(s, txn, key, idlen + 1 + name_lens[i], &kind, &data, &dlen) == 0 &&
                  matches(kind, data, dlen, kinds[i], targets[i], target_lens[i]);
        }
        if (all && fn(ctx, kp, idlen))
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- writes ----------------------------------------------------------- */

/* Where a write to <path> lands: its parent resolved (a link at a prefix
 * takes precedence over keys below it, so writing "l/x" with l -> d
 * writes "d/x", where a read of "l/x" will look), then the last segment.
 * The last segment itself is not followed: a write replaces a link. */
static int write_key(struct store *s, const uint8_t *path, size_t len, uint8_t *key, size_t *klen)
{
    int rc;
    if (s->read_only)
        return HL_ERDONLY;
    /* The path as given may be longer than a key when a link at a prefix
     * shortens it (SPEC 2 limits keys, not paths): only the key it
     * resolves to is held to 511 bytes, at the end. */
    if (len == 0)
        return HL_EEMPTY;
    if (store_check_path(len)) {
        s->err_key_len = len;
        return HL_ETOOLONG;
    }
    size_t parent = path_parent_len(path, len);
    if (parent == 0) {
        memcpy(key, path, len);
        *klen = len;
        return check_write_key(s, len);
    }
    if ((rc = store_resolve(s, s->wtxn, path, parent, key, klen)))
        return rc;
    size_t last = len - parent; /* includes the '/' */
    if (*klen == 0) {           /* parent resolved to the root */
        memmove(key, path + parent + 1, last - 1);
        *klen = last - 1;
    } else {
        if (*klen + last > PATH_MAX_WORK) {
            s->err_key_len = *klen + last;
            return HL_ETOOLONG;
        }
        memcpy(key + *klen, path + parent, last);
        *klen += last;
    }
    return check_write_key(s, *klen);
}

/* Notes whether the key being replaced or removed was a link, and
 * whether it was there at all (*existed). */
static int note_old_link(struct store *s, const uint8_t *key, size_t klen, int *existed)
{
    enum store_kind kind;
    const uint8_t *val;
    size_t vlen;
    int rc = get_entry(s, s->wtxn, key, klen, &kind, &val, &vlen);
    *existed = rc == 0;
    if (rc == 0 && kind == KIND_LINK)
        s->wtxn_links = 1;
    return rc == HL_ENOTFOUND ? 0 : rc;
}

/* 1 when a value about to be written will read back as a link.  In
 * hb_store_lmdb's format the value "link:" + target is a link (SPEC
 * section 2), so writing one changes resolution exactly as make_link does
 * and the link cache must be invalidated at commit, even when the key held
 * no link before.  In tagged format caller bytes are always data. */
static int new_value_is_link(const struct store *s, enum store_kind kind, const uint8_t *val,
                             size_t vlen)
{
    if (kind != KIND_VALUE || s->format != FORMAT_HB)
        return 0;
    MDB_val v = {vlen, (void *)val};
    const uint8_t *data;
    size_t len;
    return classify(s, &v, &data, &len) == KIND_LINK;
}

/* hb_store_lmdb's link/3 writes a group marker at every parent of the
 * link that holds nothing (ensure_parent_groups), and its list/3 lists
 * only below a marker: a directory written here in that format must have
 * them too, or hb_store_lmdb, switched back to, would not find the links'
 * parents.  (Implicit groups serve this store itself; tagged stores need
 * no markers.) */
static int ensure_parent_groups(struct store *s, const uint8_t *key, size_t klen)
{
    for (size_t end = 0; end < klen; end++) {
        end += path_segment_len(key + end, klen - end);
        if (end >= klen)
            break;
        enum store_kind kind;
        const uint8_t *data;
        size_t dlen;
        int rc = get_entry(s, s->wtxn, key, end, &kind, &data, &dlen);
        if (rc == HL_ENOTFOUND)
            rc = put_entry(s, key, end, KIND_GROUP, NULL, 0);
        if (rc)
            return rc;
    }
    return 0;
}

static int put_kind(struct store *s, const uint8_t *path, size_t len, enum store_kind kind,
                    const uint8_t *val, size_t vlen)
{
    uint8_t key[PATH_MAX_WORK];
    size_t klen;
    int rc = write_key(s, path, len, key, &klen);
    if (rc)
        return rc;
    if (kind == KIND_LINK && s->format == FORMAT_HB && (rc = ensure_parent_groups(s, key, klen)))
        return rc;
    int existed = 0; /* unknown for a link: idx_add looks */
    if (kind == KIND_LINK || new_value_is_link(s, kind, val, vlen))
        s->wtxn_links = 1;
    else if ((rc = note_old_link(s, key, klen, &existed)))
        return rc;
    if ((rc = put_entry(s, key, klen, kind, val, vlen)))
        return rc;
    /* an existing key has its edges: an overwrite pays nothing more */
    return s->has_idx && !existed ? idx_add(s, s->wtxn, key, klen) : 0;
}

int store_write(struct store *s, const uint8_t *path, size_t len, const uint8_t *val, size_t vlen)
{
    return put_kind(s, path, len, KIND_VALUE, val, vlen);
}

int store_make_group(struct store *s, const uint8_t *path, size_t len)
{
    return put_kind(s, path, len, KIND_GROUP, NULL, 0);
}

int store_make_link(struct store *s, const uint8_t *existing, size_t elen, const uint8_t *path,
                    size_t len)
{
    if (elen == 0)
        return s->read_only ? HL_ERDONLY : HL_EEMPTY;
    if (store_check_path(elen)) {
        s->err_key_len = elen;
        return HL_ETOOLONG;
    }
    return put_kind(s, path, len, KIND_LINK, existing, elen);
}

int store_delete(struct store *s, const uint8_t *path, size_t len)
{
    uint8_t key[PATH_MAX_WORK];
    size_t klen;
    int rc = write_key(s, path, len, key, &klen);
    if (rc)
        return rc;
    int existed;
    if ((rc = note_old_link(s, key, klen, &existed)))
        return rc;
    if (!existed)
        return 0;
    MDB_val k = {klen, key};
    if ((rc = store_reserve(s, klen)) || (rc = mdb_del(s->wtxn, s->dbi, &k, NULL)))
        return rc;
    return s->has_idx ? idx_remove(s, key, klen) : 0;
}

int store_reset(struct store *s)
{
    if (s->read_only)
        return HL_ERDONLY;
    /* every page it frees goes on the free list, a page number each */
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc || (rc = store_reserve(s, ((size_t)info.me_last_pgno + 1) * sizeof(size_t))))
        return rc;
    s->wtxn_links = 1;
    if ((rc = mdb_drop(s->wtxn, s->dbi, 0)))
        return rc;
    return s->has_idx ? mdb_drop(s->wtxn, s->idx_dbi, 0) : 0;
}

int store_info(struct store *s, MDB_txn *txn, struct store_info *out)
{
    MDB_stat st;
    MDB_envinfo info;
    MDB_stat est;
    int rc;
    if ((rc = mdb_stat(txn, s->dbi, &st)) || (rc = mdb_env_info(s->env, &info)) ||
        (rc = mdb_env_stat(s->env, &est)))
        return rc;
    out->entries = st.ms_entries;
    out->map_size = info.me_mapsize;
    out->map_used = (uint64_t)(info.me_last_pgno + 1) * est.ms_psize;
    out->last_txnid = info.me_last_txnid;
    out->max_readers = info.me_maxreaders;
    out->readers_used = info.me_numreaders;
    return 0;
}

/* mdb_reader_list's lines: a header, then "pid thread txnid" a slot. */
struct other_readers {
    pid_t self;
    int count;
};

static int count_other_reader(const char *line, void *ctx)
{
    struct other_readers *o = ctx;
    char *end;
    long pid = strtol(line, &end, 10);
    if (end == line || pid <= 0 || (pid_t)pid == o->self)
        return 0; /* the header, or ours */
    /* a slot a killed process left stays until a reader check clears it */
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        o->count++;
    return 0;
}

int store_other_readers(struct store *s)
{
    struct other_readers o = {.self = getpid(), .count = 0};
    if (mdb_reader_list(s->env, count_other_reader, &o) < 0)
        return -1;
    return o.count;
}
