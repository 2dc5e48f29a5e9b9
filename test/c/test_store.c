/*
 * test_store.c - the store (port_src/store.h) in a real LMDB environment
 * in a mkdtemp directory.
 *
 * Writes go through the commit batch (batch.h) with a tiny apply function
 * of our own, as dispatch.c does with request frames, so commits, the link
 * cache invalidation and the map-full replay are the real ones.  The last
 * part drives the same store through dispatch.h with frames made by the
 * codec encoder and decodes the replies.
 *
 *   - open and close, formats, read-only;
 *   - write and read, groups, links at prefixes and at the whole path,
 *     loops and hop limits;
 *   - the link cache against a brute-force model of resolution through
 *     random relinks, overwrites and deletes (both formats);
 *   - store_list against a brute-force model over random key sets whose
 *     bytes sit just below and above '/';
 *   - store_list with every limit and paging, on foreign keys ("P/", "P//x",
 *     keys of PATH_MAX_KEY bytes, a `from` longer than any key), and a
 *     group of 20,000 "c-<N>" children paged 100 at a time: the pages join
 *     up, and each costs about one cursor call per name;
 *   - map growth from the smallest map, through the batch and dispatch;
 *   - the children index: built at open from a store without one, then
 *     kept through random changes, each listing read both off the index
 *     and by the walk of the keys, and the list model and paging above
 *     run again on it;
 *   - the reader slots other processes hold (store_other_readers): a
 *     live reader counts, one that closed or was killed does not;
 *   - dispatch: truncated and lying frames are answered bad_request; a
 *     reply too long for a frame is answered too_large, in step.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "batch.h"
#include "check.h"
#include "codec.h"
#include "dispatch.h"
#include "errors.h"
#include "marks.h"
#include "store.h"

/* ---- random numbers -------------------------------------------------------- */

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* ---- a store with a batch of tiny write frames ------------------------------ */

/* Our own write "frames": op byte, then <u32 len, bytes> twice. */
enum { W_WRITE = 'w', W_GROUP = 'g', W_LINK = 'l', W_DELETE = 'd', W_RESET = 'R' };

struct env {
    struct store s;
    struct batch b;
    char dir[64];
    char path[80];
    uint8_t *buf; /* the open batch's frames; batch entries are offsets into it */
    size_t len, cap;
    uint64_t next_id;
    uint64_t applies; /* apply calls, replays included */
};

static void put32(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t get32(const uint8_t *p)
{
    return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* batch_apply_fn for our frames. */
static int env_apply(void *ctx, const uint8_t *frame, size_t len, int *touched)
{
    struct env *e = ctx;
    e->applies++;
    if (len < 9)
        return HL_EBADREQ;
    size_t alen = get32(frame + 1);
    const uint8_t *a = frame + 5;
    size_t blen = get32(frame + 5 + alen);
    const uint8_t *b = frame + 9 + alen;
    int rc;
    switch (frame[0]) {
    case W_WRITE:
        rc = store_write(&e->s, a, alen, b, blen);
        break;
    case W_GROUP:
        rc = store_make_group(&e->s, a, alen);
        break;
    case W_LINK: /* a = existing, b = new */
        rc = store_make_link(&e->s, a, alen, b, blen);
        break;
    case W_DELETE:
        rc = store_delete(&e->s, a, alen);
        break;
    case W_RESET:
        *touched = 1;
        return store_reset(&e->s);
    default:
        return HL_EBADREQ;
    }
    /* store.h: argument errors (the HL_E* codes) leave the transaction
     * untouched; an LMDB or errno code may have changed it half-way. */
    if (rc > 0 || rc < HL_ELOOP)
        *touched = 1;
    return rc;
}

/* Stores opened from here on build the children index (store.h). */
static int with_children_index;

static int env_open_cfg(struct env *e, const char *sub, enum store_format format,
                        size_t map_size, unsigned max_hops, int read_only)
{
    struct store_config cfg = {.dir = NULL, .map_size = map_size, .max_readers = 16,
                               .read_ahead = 0, .read_only = read_only, .max_hops = max_hops,
                               .format = format, .durability = DURABILITY_COMMIT,
                               .cache_slots = 4096, .children_index = with_children_index};
    snprintf(e->path, sizeof e->path, "%s/%s", e->dir, sub);
    cfg.dir = e->path;
    char why[128];
    int rc = store_open(&e->s, &cfg, why, sizeof why);
    batch_init(&e->b, env_apply, e);
    e->len = 0;
    return rc;
}

static int env_open(struct env *e, enum store_format format, size_t map_size, unsigned max_hops)
{
    memset(e, 0, sizeof *e);
    strcpy(e->dir, "/tmp/hyper_lmdb_store.XXXXXX");
    if (!CHECK(mkdtemp(e->dir) != NULL))
        return -1;
    return env_open_cfg(e, "db", format, map_size, max_hops, 0);
}

static void env_close_store(struct env *e)
{
    batch_free(&e->b);
    store_close(&e->s);
}

static void env_close(struct env *e)
{
    env_close_store(e);
    free(e->buf);
    e->buf = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* Adds one write to the open batch (opening it if needed); returns what
 * batch_add returns: 0 when applied, or the request's own error. */
static int env_add(struct env *e, int op, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t need = 9 + alen + blen;
    if (e->len + need > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap < e->len + need)
            cap *= 2;
        e->buf = realloc(e->buf, cap); /* offsets, not pointers: moving is fine */
        e->cap = cap;
    }
    size_t off = e->len;
    uint8_t *p = e->buf + off;
    p[0] = (uint8_t)op;
    put32(p + 1, alen);
    if (alen)
        memcpy(p + 5, a, alen);
    put32(p + 5 + alen, blen);
    if (blen)
        memcpy(p + 9 + alen, b, blen);
    e->len += need;
    int rc = batch_add(&e->b, &e->s, e->buf, ++e->next_id, off, need);
    if (rc)
        e->len = off; /* not remembered by the batch: its bytes may go */
    return rc;
}

static int env_commit(struct env *e)
{
    int rc = batch_commit(&e->b, &e->s, e->buf);
    batch_clear(&e->b);
    e->len = 0;
    return rc;
}

static int w(struct env *e, const char *p, const char *v)
{
    return env_add(e, W_WRITE, p, strlen(p), v, strlen(v));
}
static int grp(struct env *e, const char *p) { return env_add(e, W_GROUP, p, strlen(p), "", 0); }
static int lnk(struct env *e, const char *existing, const char *p)
{
    return env_add(e, W_LINK, existing, strlen(existing), p, strlen(p));
}
static int del(struct env *e, const char *p) { return env_add(e, W_DELETE, p, strlen(p), "", 0); }

/* Reads <p> on the pooled read transaction: 0 and the value, or the error. */
static int rd_n(struct env *e, const void *p, size_t n, const uint8_t **v, size_t *vlen)
{
    MDB_txn *txn;
    int rc = store_read_txn(&e->s, &txn);
    if (rc)
        return rc;
    return store_read(&e->s, txn, p, n, v, vlen);
}

/* 1 when <p> reads as the value want (NULL: as not found). */
static int reads_as(struct env *e, const char *p, const char *want)
{
    const uint8_t *v;
    size_t vlen;
    int rc = rd_n(e, p, strlen(p), &v, &vlen);
    if (!want)
        return rc == HL_ENOTFOUND;
    return rc == 0 && vlen == strlen(want) && memcmp(v, want, vlen) == 0;
}

static enum store_type type_of(struct env *e, const char *p)
{
    MDB_txn *txn;
    enum store_type t = (enum store_type)-1;
    if (store_read_txn(&e->s, &txn) || store_type(&e->s, txn, (const uint8_t *)p, strlen(p), &t))
        return (enum store_type)-1;
    return t;
}

/* The resolution of p as a string in out, or "<loop>" / "<error>". */
static const char *resolved(struct env *e, const char *p, char *out)
{
    MDB_txn *txn;
    uint8_t buf[PATH_MAX_WORK];
    size_t n;
    int rc = store_read_txn(&e->s, &txn);
    if (!rc)
        rc = store_resolve(&e->s, txn, (const uint8_t *)p, strlen(p), buf, &n);
    if (rc == HL_ELOOP)
        return "<loop>";
    if (rc)
        return "<error>";
    memcpy(out, buf, n);
    out[n] = 0;
    return out;
}

/* The list of p (from NULL, no limit, asc) joined with ',' into out. */
static const char *listed(struct env *e, const char *p, char *out, size_t cap)
{
    MDB_txn *txn;
    struct store_names names = {0};
    int rc = store_read_txn(&e->s, &txn);
    if (!rc)
        rc = store_list(&e->s, txn, (const uint8_t *)p, strlen(p), NULL, 0, 0, 0, &names);
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; !rc && i < names.n; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", i ? "," : "", (int)names.v[i].len,
                              (const char *)names.v[i].p);
    free(names.v);
    return rc ? "<error>" : out;
}

#define CHECK_RESOLVES(e, p, want)                                                             \
    do {                                                                                       \
        char check_buf_[PATH_MAX_WORK + 1];                                                    \
        const char *check_got_ = resolved(e, p, check_buf_);                                   \
        CHECK_STR(check_got_, strlen(check_got_), want);                                       \
    } while (0)

#define CHECK_LISTS(e, p, want)                                                                \
    do {                                                                                       \
        char check_buf_[4096];                                                                 \
        const char *check_got_ = listed(e, p, check_buf_, sizeof check_buf_);                  \
        CHECK_STR(check_got_, strlen(check_got_), want);                                       \
    } while (0)

/* ---- open and close ------------------------------------------------------------- */

static void open_close(void)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_AUTO, 1 << 20, 8), 0))
        return;
    CHECK_EQ_INT(e.s.format, FORMAT_TAGGED); /* a new store is tagged */
    CHECK(!e.s.read_only);
    CHECK_EQ_INT(w(&e, "k", "v"), 0);
    CHECK_EQ_INT(lnk(&e, "k", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l", "v"));
    env_close_store(&e);
    store_close(&e.s); /* closing twice is harmless */

    /* reopened: the format is detected and the data is there */
    CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_AUTO, 1 << 20, 8, 0), 0);
    CHECK_EQ_INT(e.s.format, FORMAT_TAGGED);
    CHECK(reads_as(&e, "k", "v"));
    CHECK(reads_as(&e, "l", "v"));
    env_close_store(&e);

    /* asking for the other format is refused */
    CHECK(env_open_cfg(&e, "db", FORMAT_HB, 1 << 20, 8, 0) != 0);
    CHECK(e.s.env == NULL);
    batch_free(&e.b);

    /* read-only: reads work, every write is refused before it begins */
    CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_AUTO, 1 << 20, 8, 1), 0);
    CHECK(e.s.read_only);
    CHECK(reads_as(&e, "k", "v"));
    CHECK_EQ_INT(store_write(&e.s, (const uint8_t *)"k", 1, (const uint8_t *)"x", 1), HL_ERDONLY);
    CHECK_EQ_INT(store_make_group(&e.s, (const uint8_t *)"g", 1), HL_ERDONLY);
    CHECK_EQ_INT(store_make_link(&e.s, (const uint8_t *)"k", 1, (const uint8_t *)"m", 1),
                 HL_ERDONLY);
    CHECK_EQ_INT(store_make_link(&e.s, (const uint8_t *)"", 0, (const uint8_t *)"m", 1),
                 HL_ERDONLY);
    CHECK_EQ_INT(store_delete(&e.s, (const uint8_t *)"k", 1), HL_ERDONLY);
    CHECK_EQ_INT(store_reset(&e.s), HL_ERDONLY);
    env_close_store(&e);

    /* a directory that does not exist cannot be opened read-only */
    CHECK(env_open_cfg(&e, "missing", FORMAT_AUTO, 1 << 20, 8, 1) != 0);
    CHECK(e.s.env == NULL);
    store_close(&e.s);
    batch_free(&e.b);

    /* A map too small for even the metadata: an LMDB error, and the
     * reason written into err names it (store.h: "a short reason"). */
    {
        struct store s;
        struct store_config cfg = {.dir = NULL, .map_size = 4096, .max_readers = 8,
                                   .max_hops = 8, .format = FORMAT_AUTO, .cache_slots = 16};
        char dir[96], why[128];
        snprintf(dir, sizeof dir, "%s/tiny", e.dir);
        cfg.dir = dir;
        int rc = store_open(&s, &cfg, why, sizeof why);
        CHECK(rc != 0);
        CHECK(s.env == NULL);
        if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) {
            if (!CHECK_STR(why, strlen(why), mdb_strerror(rc)))
                fprintf(stderr, "  store_open(map 4096): rc %d, reason \"%s\"\n", rc, why);
        }
    }

    /* an empty directory opened as hb_store_lmdb stays in that format */
    CHECK_EQ_INT(env_open_cfg(&e, "hb", FORMAT_HB, 1 << 20, 8, 0), 0);
    CHECK_EQ_INT(e.s.format, FORMAT_HB);
    CHECK_EQ_INT(w(&e, "k", "v"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    env_close_store(&e);
    CHECK_EQ_INT(env_open_cfg(&e, "hb", FORMAT_AUTO, 1 << 20, 8, 0), 0);
    CHECK_EQ_INT(e.s.format, FORMAT_HB);
    CHECK(reads_as(&e, "k", "v"));
    env_close_store(&e);
    CHECK(env_open_cfg(&e, "hb", FORMAT_TAGGED, 1 << 20, 8, 0) != 0);
    batch_free(&e.b);
    e.s.env = NULL;
    env_close(&e);
}

/* ---- write, read, groups ---------------------------------------------------------- */

static void write_read(enum store_format format)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 20, 8), 0))
        return;
    CHECK_EQ_INT(w(&e, "a", "1"), 0);
    CHECK_EQ_INT(w(&e, "b/c", "bc"), 0);
    /* before the commit a read sees the committed snapshot only */
    CHECK(reads_as(&e, "a", NULL));
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "a", "1"));
    CHECK(reads_as(&e, "b/c", "bc"));
    CHECK(reads_as(&e, "b", NULL)); /* an implicit group is no value */
    CHECK(reads_as(&e, "", NULL));
    CHECK(reads_as(&e, "zz", NULL));

    /* overwrite, odd bytes, the empty value, a value on overflow pages */
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 131 + 7);
    CHECK_EQ_INT(w(&e, "a", "2"), 0);
    CHECK_EQ_INT(env_add(&e, W_WRITE, "n\0/\xff", 4, "\0v\xff\0", 4), 0);
    CHECK_EQ_INT(w(&e, "empty", ""), 0);
    CHECK_EQ_INT(env_add(&e, W_WRITE, "big", 3, big, sizeof big), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    const uint8_t *v;
    size_t vlen;
    CHECK(reads_as(&e, "a", "2"));
    CHECK(rd_n(&e, "n\0/\xff", 4, &v, &vlen) == 0);
    CHECK_MEM(v, vlen, "\0v\xff\0", 4);
    CHECK(rd_n(&e, "n\0", 2, &v, &vlen) == HL_ENOTFOUND);
    CHECK(reads_as(&e, "empty", ""));
    CHECK(rd_n(&e, "big", 3, &v, &vlen) == 0);
    CHECK_MEM(v, vlen, big, sizeof big);
    if (format == FORMAT_TAGGED) {
        /* caller bytes are data, whatever they look like */
        CHECK_EQ_INT(w(&e, "lk", "link:a"), 0);
        CHECK_EQ_INT(w(&e, "gr", "group"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(reads_as(&e, "lk", "link:a"));
        CHECK(reads_as(&e, "gr", "group"));
        CHECK_EQ_INT(type_of(&e, "gr"), TYPE_SIMPLE);
    }

    /* key limits: refused before anything changes, the batch goes on */
    char k511[512], k512[513];
    memset(k511, 'k', 511);
    k511[511] = 0;
    memset(k512, 'k', 512);
    k512[512] = 0;
    CHECK_EQ_INT(w(&e, k511, "max"), 0);
    CHECK_EQ_INT(w(&e, k512, "over"), HL_ETOOLONG);
    CHECK_EQ_INT(e.s.err_key_len, 512);
    CHECK_EQ_INT(w(&e, "", "v"), HL_EEMPTY);
    CHECK_EQ_INT(grp(&e, ""), HL_EEMPTY);
    CHECK_EQ_INT(del(&e, ""), HL_EEMPTY);
    CHECK_EQ_INT(lnk(&e, "", "x"), HL_EEMPTY);
    CHECK_EQ_INT(lnk(&e, "a", ""), HL_EEMPTY);
    CHECK_EQ_INT(w(&e, "after", "ok"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, k511, "max"));
    /* a read of a key no write can make: a miss */
    CHECK(reads_as(&e, k512, NULL));
    CHECK(reads_as(&e, "after", "ok"));
    CHECK_EQ_INT(e.b.replays, 0);

    /* delete, and deleting what is not there */
    CHECK_EQ_INT(del(&e, "a"), 0);
    CHECK_EQ_INT(del(&e, "never"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "a", NULL));
    CHECK(reads_as(&e, "b/c", "bc"));

    /* groups, explicit and implicit */
    CHECK_EQ_INT(grp(&e, "g"), 0);
    CHECK_EQ_INT(w(&e, "i/j/k", "ijk"), 0);
    CHECK_EQ_INT(w(&e, "c-x", "dash"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_EQ_INT(type_of(&e, "g"), TYPE_COMPOSITE);
    CHECK(reads_as(&e, "g", NULL));
    CHECK_LISTS(&e, "g", "");
    CHECK_EQ_INT(type_of(&e, ""), TYPE_COMPOSITE);
    CHECK_EQ_INT(type_of(&e, "i"), TYPE_COMPOSITE);
    CHECK_EQ_INT(type_of(&e, "i/j"), TYPE_COMPOSITE);
    CHECK_EQ_INT(type_of(&e, "i/j/k"), TYPE_SIMPLE);
    CHECK_EQ_INT(type_of(&e, "i/j/k/l"), TYPE_NOT_FOUND);
    CHECK_EQ_INT(type_of(&e, "i/jj"), TYPE_NOT_FOUND);
    CHECK_EQ_INT(type_of(&e, "c"), TYPE_NOT_FOUND); /* "c-x" is no child of "c" */
    CHECK_EQ_INT(type_of(&e, "nothing"), TYPE_NOT_FOUND);
    CHECK_EQ_INT(w(&e, "g/x", "gx"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_LISTS(&e, "g", "x");
    CHECK_LISTS(&e, "i", "j");
    CHECK_EQ_INT(type_of(&e, "g/x"), TYPE_SIMPLE);
    /* a value over a group, a group over a value */
    CHECK_EQ_INT(w(&e, "g", "now a value"), 0);
    CHECK_EQ_INT(grp(&e, "after"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_EQ_INT(type_of(&e, "g"), TYPE_SIMPLE);
    CHECK(reads_as(&e, "g", "now a value"));
    CHECK_EQ_INT(type_of(&e, "after"), TYPE_COMPOSITE);
    CHECK(reads_as(&e, "after", NULL));

    /* reset empties everything */
    CHECK_EQ_INT(env_add(&e, W_RESET, "", 0, "", 0), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "b/c", NULL));
    CHECK(reads_as(&e, "g/x", NULL));
    CHECK_LISTS(&e, "", "");
    CHECK_EQ_INT(w(&e, "fresh", "f"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "fresh", "f"));
    CHECK_LISTS(&e, "", "fresh");
    env_close(&e);
}

/* ---- links ------------------------------------------------------------------------ */

static void links(enum store_format format)
{
    struct env e;
    enum { HOPS = 8 };
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 20, HOPS), 0))
        return;
    CHECK_EQ_INT(w(&e, "d/x", "dx"), 0);
    CHECK_EQ_INT(w(&e, "d/sub/y", "dsy"), 0);
    CHECK_EQ_INT(w(&e, "p/x", "under"), 0);
    CHECK_EQ_INT(lnk(&e, "d", "l"), 0);      /* a link at a prefix */
    CHECK_EQ_INT(lnk(&e, "d/x", "lx"), 0);   /* a link at a whole path */
    CHECK_EQ_INT(lnk(&e, "l", "l2"), 0);     /* a chain */
    CHECK_EQ_INT(lnk(&e, "l/sub", "m"), 0);  /* a target through a linked prefix */
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "dx"));
    CHECK(reads_as(&e, "lx", "dx"));
    CHECK(reads_as(&e, "l2/x", "dx"));
    CHECK(reads_as(&e, "l2/sub/y", "dsy"));
    CHECK(reads_as(&e, "m/y", "dsy"));
    CHECK(reads_as(&e, "l", NULL)); /* d has no value of its own */
    CHECK_RESOLVES(&e, "l/x", "d/x");
    CHECK_RESOLVES(&e, "lx", "d/x");
    CHECK_RESOLVES(&e, "l2/sub/y", "d/sub/y");
    CHECK_RESOLVES(&e, "m/y/z", "d/sub/y/z");
    CHECK_RESOLVES(&e, "d/x", "d/x");
    CHECK_RESOLVES(&e, "none", "none");
    CHECK_EQ_INT(type_of(&e, "l"), TYPE_COMPOSITE);
    CHECK_EQ_INT(type_of(&e, "lx"), TYPE_SIMPLE);
    CHECK_EQ_INT(type_of(&e, "m"), TYPE_COMPOSITE);
    CHECK_LISTS(&e, "l2", "sub,x");
    CHECK_LISTS(&e, "m", "y");
    CHECK_LISTS(&e, "", "d,l,l2,lx,m,p");

    /* a link at a prefix takes precedence over keys stored below it */
    CHECK_EQ_INT(lnk(&e, "d", "p"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "p/x", "dx"));
    CHECK_RESOLVES(&e, "p/x", "d/x");
    CHECK_LISTS(&e, "p", "sub,x");

    /* writes through a linked prefix land in the target */
    CHECK_EQ_INT(w(&e, "l2/new", "n"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "d/new", "n"));
    CHECK(reads_as(&e, "l/new", "n"));

    /* a dangling link, then its target appears */
    CHECK_EQ_INT(lnk(&e, "nowhere", "dang"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "dang", NULL));
    CHECK_EQ_INT(type_of(&e, "dang"), TYPE_NOT_FOUND);
    CHECK_RESOLVES(&e, "dang", "nowhere");
    CHECK_EQ_INT(w(&e, "nowhere", "late"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "dang", "late"));

    /* delete through a link removes the target's key; deleting a link
     * removes the link only */
    CHECK_EQ_INT(del(&e, "l2/new"), 0);
    CHECK_EQ_INT(del(&e, "lx"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "d/new", NULL));
    CHECK(reads_as(&e, "lx", NULL));
    CHECK(reads_as(&e, "d/x", "dx"));

    /* a write over the link itself replaces it */
    CHECK_EQ_INT(w(&e, "l", "plain"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l", "plain"));
    CHECK(reads_as(&e, "l/x", NULL));
    CHECK(reads_as(&e, "l2", "plain")); /* l2 -> l, now a value */
    CHECK(reads_as(&e, "l2/x", NULL));
    CHECK(reads_as(&e, "m/y", NULL)); /* m -> l/sub, no longer through d */

    /* loops: two links, one link to itself, one to its own child */
    CHECK_EQ_INT(lnk(&e, "b", "a"), 0);
    CHECK_EQ_INT(lnk(&e, "a", "b"), 0);
    CHECK_EQ_INT(lnk(&e, "s", "s"), 0);
    CHECK_EQ_INT(lnk(&e, "c/c", "c"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    static const char *const loops[] = {"a", "b", "a/x", "b/x/y", "s", "s/t", "c", "c/d"};
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        CHECK(reads_as(&e, loops[i], NULL));
        CHECK_EQ_INT(type_of(&e, loops[i]), TYPE_NOT_FOUND);
        CHECK_RESOLVES(&e, loops[i], "<loop>");
        CHECK_LISTS(&e, loops[i], "");
        CHECK(reads_as(&e, loops[i], NULL)); /* again: from the cache */
        CHECK_RESOLVES(&e, loops[i], "<loop>");
    }
    /* a write below a loop is refused; the rest of its batch commits */
    CHECK_EQ_INT(w(&e, "ok1", "1"), 0);
    CHECK_EQ_INT(w(&e, "a/x", "v"), HL_ELOOP);
    CHECK_EQ_INT(w(&e, "s/x", "v"), HL_ELOOP);
    CHECK_EQ_INT(w(&e, "ok2", "2"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "ok1", "1"));
    CHECK(reads_as(&e, "ok2", "2"));
    /* the loop itself can be written over: a loop is just two links */
    CHECK_EQ_INT(w(&e, "a", "broken"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "a", "broken"));
    CHECK(reads_as(&e, "b", "broken"));

    /* hop limit: h0 -> t, h1 -> h0, ...; h_k takes k + 1 hops */
    CHECK_EQ_INT(w(&e, "t", "T"), 0);
    CHECK_EQ_INT(lnk(&e, "t", "h0"), 0);
    for (int i = 1; i <= HOPS + 1; i++) {
        char from[16], to[16];
        snprintf(from, sizeof from, "h%d", i - 1);
        snprintf(to, sizeof to, "h%d", i);
        CHECK_EQ_INT(lnk(&e, from, to), 0);
    }
    CHECK_EQ_INT(env_commit(&e), 0);
    char hname[16];
    snprintf(hname, sizeof hname, "h%d", HOPS - 1);
    CHECK(reads_as(&e, hname, "T"));
    CHECK_RESOLVES(&e, hname, "t");
    snprintf(hname, sizeof hname, "h%d", HOPS);
    CHECK(reads_as(&e, hname, NULL));
    CHECK_RESOLVES(&e, hname, "<loop>");

    /* a link whose target grows the path on every hop: resolution stops
     * at PATH_MAX_WORK (or the hop limit), never overruns a buffer */
    char target[480];
    memset(target, 'q', sizeof target - 1);
    target[0] = 'g';
    target[1] = '/';
    target[sizeof target - 1] = 0;
    CHECK_EQ_INT(lnk(&e, target, "g"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "g", NULL));
    CHECK(reads_as(&e, "g/x", NULL));
    CHECK_RESOLVES(&e, "g", "<loop>");
    env_close(&e);

    /* the same growing link with a hop limit high enough that only
     * PATH_MAX_WORK can stop it */
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 20, 100000), 0))
        return;
    CHECK_EQ_INT(lnk(&e, target, "g"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "g", NULL));
    CHECK_RESOLVES(&e, "g", "<loop>");
    CHECK_LISTS(&e, "g", "");
    CHECK_EQ_INT(type_of(&e, "g"), TYPE_NOT_FOUND);
    env_close(&e);
}

/* ---- the link cache against a model ----------------------------------------------- */

/* A brute-force model of the store: every key with its kind and data. */
enum { M_VALUE = 1, M_LINK, M_GROUP };
struct mkey {
    uint8_t k[600];
    size_t kn;
    int kind;
    uint8_t d[600];
    size_t dn;
};
struct model {
    struct mkey *v;
    size_t n, cap;
    enum store_format format;
    unsigned max_hops;
};

static long model_find(const struct model *m, const uint8_t *k, size_t kn)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].kn == kn && memcmp(m->v[i].k, k, kn) == 0)
            return (long)i;
    return -1;
}

static void model_put(struct model *m, const uint8_t *k, size_t kn, int kind, const uint8_t *d,
                      size_t dn)
{
    if (kind == M_VALUE && m->format == FORMAT_HB) {
        /* hb_store_lmdb's values are their own tags */
        if (dn == 5 && memcmp(d, "group", 5) == 0)
            kind = M_GROUP;
        else if (dn > 5 && memcmp(d, "link:", 5) == 0) {
            kind = M_LINK;
            d += 5;
            dn -= 5;
        }
    }
    long i = model_find(m, k, kn);
    if (i < 0) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->v = realloc(m->v, m->cap * sizeof *m->v);
        }
        i = (long)m->n++;
    }
    struct mkey *e = &m->v[i];
    memcpy(e->k, k, kn);
    e->kn = kn;
    e->kind = kind;
    memcpy(e->d, d, dn);
    e->dn = dn;
}

static void model_del(struct model *m, const uint8_t *k, size_t kn)
{
    long i = model_find(m, k, kn);
    if (i >= 0)
        m->v[i] = m->v[--m->n];
}

static size_t model_norm(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || in[i] == '/') {
            if (i > start) {
                if (n)
                    out[n++] = '/';
                memcpy(out + n, in + start, i - start);
                n += i - start;
            }
            start = i + 1;
        }
    return n;
}

/* SPEC resolution: a link at any prefix (or the whole path) is replaced by
 * its target, and the walk starts again from the first segment. */
static int model_resolve(const struct model *m, const uint8_t *p, size_t n, uint8_t *out,
                         size_t *on)
{
    uint8_t cur[PATH_MAX_WORK], tmp[2 * PATH_MAX_WORK];
    size_t cn = n;
    memcpy(cur, p, n);
    unsigned hops = 0;
again:
    for (size_t end = 1; end <= cn; end++) {
        if (end < cn && cur[end] != '/')
            continue;
        long i = end <= PATH_MAX_KEY ? model_find(m, cur, end) : -1;
        if (i >= 0 && m->v[i].kind == M_LINK) {
            if (++hops > m->max_hops || m->v[i].dn + (cn - end) > PATH_MAX_WORK)
                return HL_ELOOP;
            memcpy(tmp, m->v[i].d, m->v[i].dn);
            memcpy(tmp + m->v[i].dn, cur + end, cn - end);
            cn = model_norm(tmp, m->v[i].dn + (cn - end), cur);
            goto again;
        }
    }
    memcpy(out, cur, cn);
    *on = cn;
    return 0;
}

static int model_read(const struct model *m, const uint8_t *p, size_t n, const uint8_t **v,
                      size_t *vn)
{
    uint8_t r[PATH_MAX_WORK];
    size_t rn;
    if (model_resolve(m, p, n, r, &rn))
        return HL_ENOTFOUND;
    long i = model_find(m, r, rn);
    if (i < 0 || m->v[i].kind != M_VALUE)
        return HL_ENOTFOUND;
    *v = m->v[i].d;
    *vn = m->v[i].dn;
    return 0;
}

/* Where a write to p lands: the parent resolved, then the last segment. */
static int model_write_key(const struct model *m, const uint8_t *p, size_t n, uint8_t *key,
                           size_t *kn)
{
    if (n == 0)
        return HL_EEMPTY;
    size_t parent = 0;
    for (size_t i = n; i > 0; i--)
        if (p[i - 1] == '/') {
            parent = i - 1;
            break;
        }
    if (parent == 0) {
        memcpy(key, p, n);
        *kn = n;
        return 0;
    }
    size_t rn;
    if (model_resolve(m, p, parent, key, &rn))
        return HL_ELOOP;
    if (rn == 0) {
        memcpy(key, p + parent + 1, n - parent - 1);
        *kn = n - parent - 1;
    } else {
        memcpy(key + rn, p + parent, n - parent);
        *kn = rn + n - parent;
    }
    return 0;
}

/* A child name: <ptr, len> into a model key. */
struct mname {
    const uint8_t *p;
    size_t n;
};

static int mname_cmp(const void *a, const void *b)
{
    const struct mname *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    for (size_t i = 0; i < n; i++)
        if (x->p[i] != y->p[i])
            return x->p[i] < y->p[i] ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Sorted unique first segments of every key below prefix p (p may be
 * empty: the root).  keys/kn: the key set; returns the count in out. */
static size_t model_children(const uint8_t *const *keys, const size_t *klens, size_t nkeys,
                             const uint8_t *p, size_t pn, struct mname *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nkeys; i++) {
        const uint8_t *k = keys[i];
        size_t kn = klens[i], start;
        if (pn == 0)
            start = 0;
        else if (kn > pn + 1 && memcmp(k, p, pn) == 0 && k[pn] == '/')
            start = pn + 1;
        else
            continue;
        size_t end = start;
        while (end < kn && k[end] != '/')
            end++;
        if (end == start)
            continue; /* an empty segment: no normalised key has one */
        out[n].p = k + start;
        out[n].n = end - start;
        n++;
    }
    qsort(out, n, sizeof *out, mname_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || mname_cmp(&out[i], &out[u - 1]) != 0)
            out[u++] = out[i];
    return u;
}

static enum store_type model_type(const struct model *m, const uint8_t *p, size_t n)
{
    uint8_t r[PATH_MAX_WORK];
    size_t rn;
    if (model_resolve(m, p, n, r, &rn))
        return TYPE_NOT_FOUND;
    if (rn == 0)
        return TYPE_COMPOSITE;
    long i = model_find(m, r, rn);
    if (i >= 0 && m->v[i].kind == M_VALUE)
        return TYPE_SIMPLE;
    if (i >= 0 && m->v[i].kind == M_GROUP)
        return TYPE_COMPOSITE;
    for (size_t j = 0; j < m->n; j++)
        if (m->v[j].kn > rn + 1 && memcmp(m->v[j].k, r, rn) == 0 && m->v[j].k[rn] == '/')
            return TYPE_COMPOSITE;
    return TYPE_NOT_FOUND;
}

/* Appends a path of 1..3 segments over {a, b, c} to out. */
static size_t random_small_path(uint8_t *out)
{
    size_t n = 0, segs = 1 + rnd(3);
    for (size_t i = 0; i < segs; i++) {
        if (i)
            out[n++] = '/';
        out[n++] = (uint8_t)("abc"[rnd(3)]);
    }
    return n;
}

/* Compares every read-side answer for one path with the model; counts
 * mismatches and prints the first few. */
static int compare_path(struct env *e, const struct model *m, const uint8_t *p, size_t n,
                        const char *when)
{
    MDB_txn *txn;
    int bad = 0;
    if (store_read_txn(&e->s, &txn))
        return 1;
    const uint8_t *v, *mv;
    size_t vn, mvn;
    int rc = store_read(&e->s, txn, p, n, &v, &vn);
    int mrc = model_read(m, p, n, &mv, &mvn);
    if (rc != mrc || (rc == 0 && (vn != mvn || memcmp(v, mv, vn))))
        bad |= 1;
    uint8_t r[PATH_MAX_WORK], mr[PATH_MAX_WORK];
    size_t rn, mrn;
    rc = store_resolve(&e->s, txn, p, n, r, &rn);
    mrc = model_resolve(m, p, n, mr, &mrn);
    if (rc != mrc || (rc == 0 && (rn != mrn || memcmp(r, mr, rn))))
        bad |= 2;
    enum store_type t;
    rc = store_type(&e->s, txn, p, n, &t);
    if (rc || t != model_type(m, p, n))
        bad |= 4;
    /* list of the resolved path */
    struct store_names names = {0};
    rc = store_list(&e->s, txn, p, n, NULL, 0, 0, 0, &names);
    size_t mn = 0;
    if (model_resolve(m, p, n, mr, &mrn) == 0) {
        const uint8_t **keys = malloc((m->n + 1) * sizeof *keys);
        size_t *klens = malloc((m->n + 1) * sizeof *klens);
        struct mname *want = malloc((m->n + 1) * sizeof *want);
        for (size_t i = 0; i < m->n; i++) {
            keys[i] = m->v[i].k;
            klens[i] = m->v[i].kn;
        }
        mn = model_children(keys, klens, m->n, mr, mrn, want);
        if (rc == 0 && names.n == mn)
            for (size_t i = 0; i < mn; i++)
                if (names.v[i].len != want[i].n || memcmp(names.v[i].p, want[i].p, want[i].n))
                    bad |= 8;
        free(keys);
        free(klens);
        free(want);
    }
    if (rc || names.n != mn)
        bad |= 8;
    free(names.v);
    static int printed;
    if (bad && printed++ < 5) {
        fprintf(stderr, "link model mismatch (%s, %s) on \"%.*s\": mask %d\n", when,
                store_format_name(m->format), (int)n, (const char *)p, bad);
        rc = store_resolve(&e->s, txn, p, n, r, &rn);
        mrc = model_resolve(m, p, n, mr, &mrn);
        fprintf(stderr, "  resolve: store %d \"%.*s\", model %d \"%.*s\"\n", rc,
                rc ? 0 : (int)rn, (const char *)r, mrc, mrc ? 0 : (int)mrn, (const char *)mr);
        for (size_t i = 0; i < m->n; i++)
            fprintf(stderr, "  %.*s = %d:%.*s\n", (int)m->v[i].kn, (const char *)m->v[i].k,
                    m->v[i].kind, (int)m->v[i].dn, (const char *)m->v[i].d);
    }
    return bad != 0;
}

static void link_cache_model(enum store_format format, int rounds)
{
    struct env e;
    enum { HOPS = 4 };
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 22, HOPS), 0))
        return;
    struct model m = {.format = format, .max_hops = HOPS};
    struct model snap = m; /* the model as of the last commit */
    /* every path of 1..3 segments over {a, b, c} */
    uint8_t probes[39][8];
    size_t probe_len[39], np = 0;
    for (int a = 0; a < 3; a++) {
        probes[np][0] = (uint8_t)("abc"[a]);
        probe_len[np++] = 1;
        for (int b = 0; b < 3; b++) {
            memcpy(probes[np], (uint8_t[]){(uint8_t)("abc"[a]), '/', (uint8_t)("abc"[b])}, 3);
            probe_len[np++] = 3;
            for (int c = 0; c < 3; c++) {
                memcpy(probes[np],
                       (uint8_t[]){(uint8_t)("abc"[a]), '/', (uint8_t)("abc"[b]), '/',
                                   (uint8_t)("abc"[c])},
                       5);
                probe_len[np++] = 5;
            }
        }
    }
    long mismatches = 0, op_mismatches = 0, commits = 0, link_ops = 0;
    int value_no = 0;
    for (int round = 0; round < rounds; round++) {
        int nops = 1 + (int)rnd(5);
        for (int i = 0; i < nops; i++) {
            uint8_t p[16], t[16], key[PATH_MAX_WORK];
            size_t pn = random_small_path(p), tn = random_small_path(t), kn;
            char val[32];
            int vn = snprintf(val, sizeof val, "v%d", ++value_no);
            uint32_t what = rnd(10);
            int mrc = model_write_key(&m, p, pn, key, &kn), rc;
            if (what < 4) {
                if (format == FORMAT_HB && rnd(4) == 0) {
                    /* a value that hb_store_lmdb reads as a link */
                    memcpy(val, "link:", 5);
                    memcpy(val + 5, t, tn);
                    vn = (int)(5 + tn);
                }
                rc = env_add(&e, W_WRITE, p, pn, val, (size_t)vn);
                if (mrc == 0)
                    model_put(&m, key, kn, M_VALUE, (const uint8_t *)val, (size_t)vn);
            } else if (what < 7) {
                rc = env_add(&e, W_LINK, t, tn, p, pn);
                link_ops++;
                if (mrc == 0)
                    model_put(&m, key, kn, M_LINK, t, tn);
            } else if (what < 9) {
                rc = env_add(&e, W_DELETE, p, pn, "", 0);
                if (mrc == 0)
                    model_del(&m, key, kn);
            } else {
                rc = env_add(&e, W_GROUP, p, pn, "", 0);
                if (mrc == 0)
                    model_put(&m, key, kn, M_GROUP, (const uint8_t *)"", 0);
            }
            if (rc != mrc && op_mismatches++ < 5)
                fprintf(stderr, "op %u on \"%.*s\" (%s): store %d, model %d\n", what, (int)pn,
                        (const char *)p, store_format_name(format), rc, mrc);
            /* A read while the batch is open sees the committed snapshot
             * (dispatch never does this, store.h allows it): the cache
             * must not hold what the open write transaction resolved. */
            if (rnd(3) == 0) {
                size_t k = rnd((uint32_t)np);
                mismatches += compare_path(&e, &snap, probes[k], probe_len[k], "mid-batch");
            }
        }
        if (!CHECK_EQ_INT(env_commit(&e), 0))
            break;
        commits++;
        if (snap.cap < m.n) {
            snap.cap = m.cap;
            snap.v = realloc(snap.v, snap.cap * sizeof *snap.v);
        }
        if (m.n)
            memcpy(snap.v, m.v, m.n * sizeof *m.v);
        snap.n = m.n;
        /* every probe, twice: the second time from the cache */
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < np; i++)
                mismatches += compare_path(&e, &m, probes[i], probe_len[i],
                                           pass ? "cached" : "after commit");
    }
    CHECK_EQ_INT(op_mismatches, 0);
    CHECK_EQ_INT(mismatches, 0);
    CHECK(commits == rounds);
    CHECK(link_ops > rounds / 2);
    struct link_cache_stats cs;
    link_cache_stats(e.s.cache, &cs);
    CHECK(cs.hits > 0);          /* the cache was really in use */
    CHECK(cs.invalidations > 0); /* and really invalidated */
    free(m.v);
    free(snap.v);
    env_close(&e);
}

/* The specific sequences the cache could get wrong, one by one. */
static void link_cache_cases(enum store_format format)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 20, 8), 0))
        return;
    CHECK_EQ_INT(w(&e, "d1/x", "one"), 0);
    CHECK_EQ_INT(w(&e, "d2/x", "two"), 0);
    CHECK_EQ_INT(lnk(&e, "d1", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "one"));
    CHECK(reads_as(&e, "l/x", "one"));
    /* relink */
    CHECK_EQ_INT(lnk(&e, "d2", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "two"));
    /* overwrite the link with a value */
    CHECK_EQ_INT(w(&e, "l", "val"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", NULL));
    CHECK(reads_as(&e, "l", "val"));
    /* the link again, then a group over it */
    CHECK_EQ_INT(lnk(&e, "d1", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "one"));
    CHECK_EQ_INT(grp(&e, "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", NULL));
    /* the link again, then deleted */
    CHECK_EQ_INT(lnk(&e, "d2", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "two"));
    CHECK_EQ_INT(del(&e, "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", NULL));
    /* a link deleted through a linked prefix */
    CHECK_EQ_INT(lnk(&e, "d1", "ld"), 0);
    CHECK_EQ_INT(lnk(&e, "d2", "d1/sub"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "ld/sub/x", "two"));
    CHECK_EQ_INT(del(&e, "ld/sub"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "ld/sub/x", NULL));
    /* reset drops links too */
    CHECK_EQ_INT(lnk(&e, "d1", "l"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "one"));
    CHECK_EQ_INT(env_add(&e, W_RESET, "", 0, "", 0), 0);
    CHECK_EQ_INT(w(&e, "l/x", "direct"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "l/x", "direct"));
    /* a loop that is broken, and a path that was a loop */
    CHECK_EQ_INT(lnk(&e, "y", "x"), 0);
    CHECK_EQ_INT(lnk(&e, "x", "y"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "x/k", NULL));
    CHECK_RESOLVES(&e, "x/k", "<loop>");
    CHECK_EQ_INT(del(&e, "y"), 0);
    CHECK_EQ_INT(w(&e, "y/k", "broke"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "x/k", "broke"));
    CHECK_RESOLVES(&e, "x/k", "y/k");
    /* a write inside the batch resolves through a link the same batch
     * just changed (the cache must not answer for the write txn) */
    CHECK_EQ_INT(w(&e, "e1/k", "e1"), 0);
    CHECK_EQ_INT(lnk(&e, "e1", "le"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "le/k", "e1"));
    CHECK_EQ_INT(lnk(&e, "e2", "le"), 0);
    CHECK_EQ_INT(w(&e, "le/k", "via new link"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK(reads_as(&e, "e2/k", "via new link"));
    CHECK(reads_as(&e, "e1/k", "e1"));
    CHECK(reads_as(&e, "le/k", "via new link"));
    if (format == FORMAT_HB) {
        /* In hb_store_lmdb's format a value "link:T" is a link: writing
         * one changes resolution like make_link does. */
        CHECK_EQ_INT(w(&e, "h1/k", "h1"), 0);
        CHECK_EQ_INT(w(&e, "h2/k", "h2"), 0);
        CHECK_EQ_INT(w(&e, "hl", "link:h1"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(reads_as(&e, "hl/k", "h1"));
        CHECK_EQ_INT(w(&e, "hl", "link:h2"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(reads_as(&e, "hl/k", "h2"));
        CHECK_EQ_INT(w(&e, "hv/k", "plain"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(reads_as(&e, "hv/k", "plain")); /* cached: hv/k resolves to itself */
        CHECK_EQ_INT(w(&e, "hv", "link:h1"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(reads_as(&e, "hv/k", "h1"));
        CHECK_RESOLVES(&e, "hv/k", "h1/k");
    }
    env_close(&e);
}

/* ---- store_list against a model ---------------------------------------------------- */

/* Bytes around '/' (0x2f): NUL, '-' and '.' below, '0' above, 'a', 0xff. */
static const uint8_t ALPHABET[] = {0x00, '-', '.', '0', 'a', 0xff};

static size_t random_segment(uint8_t *out)
{
    size_t n = 1 + rnd(3);
    for (size_t i = 0; i < n; i++)
        out[i] = ALPHABET[rnd(sizeof ALPHABET)];
    return n;
}

struct lkey {
    uint8_t b[64];
    size_t n;
};

static void print_name(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"')
            fputc(p[i], f);
        else
            fprintf(f, "\\x%02x", p[i]);
    fputc('"', f);
}

static void list_model(enum store_format format, int rounds)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 22, 8), 0))
        return;
    struct lkey *keys = malloc(200 * sizeof *keys);
    const uint8_t **kp = malloc(200 * sizeof *kp);
    size_t *kl = malloc(200 * sizeof *kl);
    struct mname *all = malloc(200 * sizeof *all);
    struct store_names names = {0};
    long queries = 0, bad = 0, bad_slash = 0, nonempty = 0, limited = 0;
    for (int round = 0; round < rounds; round++) {
        /* a fresh key set, in one or a few batches */
        if (round) {
            CHECK_EQ_INT(env_add(&e, W_RESET, "", 0, "", 0), 0);
            CHECK_EQ_INT(env_commit(&e), 0);
        }
        size_t nk = 0, want_keys = 1 + rnd(60);
        for (size_t i = 0; i < want_keys; i++) {
            struct lkey k;
            k.n = 0;
            size_t segs = 1 + (rnd(3) ? rnd(3) : rnd(5));
            /* often below an existing key, to make deep and shared subtrees */
            if (nk && rnd(2)) {
                const struct lkey *base = &keys[rnd((uint32_t)nk)];
                size_t cut = base->n;
                while (cut && rnd(2)) { /* some prefix of it, at a segment end */
                    while (cut && base->b[cut - 1] != '/')
                        cut--;
                    if (cut)
                        cut--;
                }
                memcpy(k.b, base->b, cut);
                k.n = cut;
            }
            for (size_t s = 0; s < segs && k.n + 4 < sizeof k.b; s++) {
                if (k.n)
                    k.b[k.n++] = '/';
                k.n += random_segment(k.b + k.n);
            }
            int dup = 0;
            for (size_t j = 0; j < nk; j++)
                dup |= keys[j].n == k.n && memcmp(keys[j].b, k.b, k.n) == 0;
            if (dup)
                continue;
            keys[nk++] = k;
            int rc = rnd(8) ? env_add(&e, W_WRITE, k.b, k.n, "v", 1)
                            : env_add(&e, W_GROUP, k.b, k.n, "", 0);
            CHECK_EQ_INT(rc, 0);
            if (rnd(20) == 0)
                CHECK_EQ_INT(env_commit(&e), 0);
        }
        CHECK_EQ_INT(env_commit(&e), 0);
        /* sometimes delete a few, so listings see holes */
        if (rnd(4) == 0) {
            for (size_t i = 0; i < nk; i++)
                if (rnd(4) == 0) {
                    CHECK_EQ_INT(env_add(&e, W_DELETE, keys[i].b, keys[i].n, "", 0), 0);
                    keys[i] = keys[--nk];
                }
            CHECK_EQ_INT(env_commit(&e), 0);
        }
        for (size_t i = 0; i < nk; i++) {
            kp[i] = keys[i].b;
            kl[i] = keys[i].n;
        }
        MDB_txn *txn;
        if (!CHECK_EQ_INT(store_read_txn(&e.s, &txn), 0))
            break;
        for (int q = 0; q < 40; q++) {
            /* the parent: the root, a prefix of a key, a key, or noise */
            uint8_t parent[64];
            size_t pn = 0;
            uint32_t how = rnd(8);
            if (how == 0 || !nk) {
                pn = 0;
            } else if (how < 6) {
                /* the first 1..all segments of a key */
                const struct lkey *k = &keys[rnd((uint32_t)nk)];
                size_t segs = 1;
                for (size_t i = 0; i < k->n; i++)
                    segs += k->b[i] == '/';
                size_t keep = 1 + rnd((uint32_t)segs), cut = 0;
                while (cut < k->n && (k->b[cut] != '/' || --keep))
                    cut++;
                memcpy(parent, k->b, cut);
                pn = cut;
            } else if (how == 6) {
                const struct lkey *k = &keys[rnd((uint32_t)nk)];
                memcpy(parent, k->b, k->n);
                pn = k->n;
            } else {
                pn = random_segment(parent);
            }
            struct mname *want = all;
            size_t nw = model_children(kp, kl, nk, parent, pn, want);
            /* from: none, a child, a child cut or extended, or noise */
            uint8_t from[16];
            size_t fn = 0;
            int has_from = rnd(3) != 0;
            if (has_from) {
                if (nw && rnd(3)) {
                    const struct mname *c = &want[rnd((uint32_t)nw)];
                    fn = c->n < 8 ? c->n : 8;
                    memcpy(from, c->p, fn);
                    uint32_t tweak = rnd(4);
                    if (tweak == 1 && fn > 1)
                        fn--;
                    else if (tweak == 2)
                        from[fn++] = ALPHABET[rnd(sizeof ALPHABET)];
                    else if (tweak == 3)
                        from[fn++] = '/'; /* no name holds a '/' */
                } else {
                    fn = random_segment(from);
                }
            }
            int desc = (int)rnd(2);
            /* no limit, or one that often cuts the listing short */
            uint64_t limit = rnd(2) ? 0 : 1 + rnd(rnd(2) ? 3 : (uint32_t)nw + 2);
            /* the model: filter, order, truncate */
            struct mname exp[200];
            size_t ne = 0;
            for (size_t i = 0; i < nw; i++) {
                if (has_from) {
                    struct mname f = {from, fn};
                    int c = mname_cmp(&want[i], &f);
                    if (desc ? c > 0 : c < 0)
                        continue;
                }
                exp[ne++] = want[i];
            }
            if (desc)
                for (size_t i = 0; i < ne / 2; i++) {
                    struct mname t = exp[i];
                    exp[i] = exp[ne - 1 - i];
                    exp[ne - 1 - i] = t;
                }
            if (limit && ne > limit)
                ne = (size_t)limit;
            int rc = store_list(&e.s, txn, parent, pn, has_from ? from : NULL, fn, limit, desc,
                                &names);
            int ok = rc == 0 && names.n == ne;
            for (size_t i = 0; ok && i < ne; i++)
                ok = names.v[i].len == exp[i].n && memcmp(names.v[i].p, exp[i].p, exp[i].n) == 0;
            queries++;
            nonempty += ne > 0;
            limited += limit && nw > limit;
            /* Names never hold a '/', but a From may (it is any binary):
             * counted apart, as it is a different case to the reader. */
            int slash = has_from && memchr(from, '/', fn) != NULL;
            long *badp = slash ? &bad_slash : &bad;
            if (!ok && (*badp)++ < 5) {
                fprintf(stderr, "store_list mismatch (%s, round %d, %zu keys): parent ",
                        store_format_name(format), round, nk);
                print_name(stderr, parent, pn);
                fprintf(stderr, " from ");
                if (has_from)
                    print_name(stderr, from, fn);
                else
                    fprintf(stderr, "undefined");
                fprintf(stderr, " limit %llu %s, rc %d\n  got ", (unsigned long long)limit,
                        desc ? "desc" : "asc", rc);
                for (size_t i = 0; i < names.n; i++) {
                    print_name(stderr, names.v[i].p, names.v[i].len);
                    fputc(' ', stderr);
                }
                fprintf(stderr, "\n  want ");
                for (size_t i = 0; i < ne; i++) {
                    print_name(stderr, exp[i].p, exp[i].n);
                    fputc(' ', stderr);
                }
                fprintf(stderr, "\n  keys ");
                for (size_t i = 0; i < nk; i++) {
                    print_name(stderr, keys[i].b, keys[i].n);
                    fputc(' ', stderr);
                }
                fputc('\n', stderr);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);       /* From without '/' */
    CHECK_EQ_INT(bad_slash, 0); /* From with a '/' */
    CHECK(queries == (long)rounds * 40);
    CHECK(nonempty > queries / 3); /* the queries were not all trivial */
    CHECK(limited > queries / 20);
    fprintf(stderr, "list model (%s): %ld queries, %ld non-empty, %ld cut short by limit\n",
            store_format_name(format), queries, nonempty, limited);
    free(names.v);
    free(keys);
    free(kp);
    free(kl);
    free(all);
    env_close(&e);
}

/* ---- bounded listing: paging, cost, foreign and long keys ------------------------ */

/* Names copied out of listings (store_names point into a snapshot), each
 * as two length bytes and the name, so two listings compare with memcmp. */
struct nbuf {
    uint8_t *b;
    size_t len, cap, n;
};

static void nbuf_add(struct nbuf *nb, const uint8_t *p, size_t n)
{
    if (nb->len + n + 2 > nb->cap) {
        nb->cap = (nb->len + n + 2) * 2;
        nb->b = realloc(nb->b, nb->cap);
    }
    nb->b[nb->len++] = (uint8_t)(n >> 8);
    nb->b[nb->len++] = (uint8_t)n;
    if (n)
        memcpy(nb->b + nb->len, p, n);
    nb->len += n;
    nb->n++;
}

/* One store_list on a fresh read snapshot; *ops: the cursor calls it made. */
static int list_call(struct env *e, const uint8_t *parent, size_t pn, const uint8_t *from,
                     size_t fn, uint64_t limit, int desc, struct store_names *names, uint64_t *ops)
{
    MDB_txn *txn;
    txn_pool_release(&e->s.pool);
    int rc = store_read_txn(&e->s, &txn);
    uint64_t before = e->s.list_ops;
    if (!rc)
        rc = store_list(&e->s, txn, parent, pn, from, fn, limit, desc, names);
    if (ops)
        *ops = e->s.list_ops - before;
    return rc;
}

/* Pages through the children of parent `page` names at a time, as a
 * caller would: each page starts from the last name of the one before
 * (from is inclusive, so that name comes first again and is dropped).
 * Appends the names to out.  Returns the number of calls, or -1 when a
 * call failed or a page did not start with that name; *max_ops: the most
 * cursor calls one call made. */
static long page_through(struct env *e, const uint8_t *parent, size_t pn, uint64_t page, int desc,
                         struct nbuf *out, uint64_t *max_ops)
{
    struct store_names names = {0};
    uint8_t last[PATH_MAX_KEY];
    size_t ln = 0;
    int have = 0;
    long calls = 0;
    *max_ops = 0;
    for (;;) {
        uint64_t ops;
        int rc = list_call(e, parent, pn, have ? last : NULL, ln, have ? page + 1 : page, desc,
                           &names, &ops);
        calls++;
        if (ops > *max_ops)
            *max_ops = ops;
        size_t skip = have;
        if (rc || (have &&
                   (names.n == 0 || names.v[0].len != ln || memcmp(names.v[0].p, last, ln) != 0))) {
            calls = -1;
            break;
        }
        for (size_t i = skip; i < names.n; i++)
            nbuf_add(out, names.v[i].p, names.v[i].len);
        if (names.n - skip < page)
            break;
        ln = names.v[names.n - 1].len;
        memcpy(last, names.v[names.n - 1].p, ln);
        have = 1;
    }
    free(names.v);
    return calls;
}

/* A group of 20,000 children "c-<N>" (names with a byte below '/': every
 * one is met before the subtree of "c"), with a few subtrees, prefixes
 * that are children only by their subtree ("c", "k", "c-5-a"), one child
 * with thousands of descendants and neighbours outside the group, paged
 * 100 at a time in both directions.  The pages must join up to the whole
 * listing, and each call must cost about one cursor call per name.  (The
 * old listing found no name final in such a group: each page walked every
 * child, re-sorting all it had collected at every key, so paging took time
 * cubic in the group size: two minutes for 10,000 children at -O2.) */
static void list_paging(enum store_format format, int nchildren)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, format, (size_t)1 << 27, 8), 0))
        return;
    static const char *const extra[] = {
        "g/c/x", "g/c-7/x", "g/c-123/y/z", "g/c-5-a/q", "g/c--/q", "g/c-19/t-", "g/b",
        "g/d/e", "g/k-1",   "g/k-2",       "g/k/z",     "g/c-3-",  "g-x",       "g.a/b",
        "g0",    "gg/h",    "g/\x7f",      "g/c\x01/u", "g/c./v/w"};
    size_t nextra = sizeof extra / sizeof *extra;
    char key[64];
    int ok = 1;
    for (int i = 0; ok && i < nchildren; i++) {
        snprintf(key, sizeof key, "g/c-%d", i);
        ok = CHECK_EQ_INT(w(&e, key, "v"), 0);
        if (i % 5000 == 4999)
            ok = ok && CHECK_EQ_INT(env_commit(&e), 0);
    }
    for (size_t i = 0; ok && i < nextra; i++)
        ok = CHECK_EQ_INT(w(&e, extra[i], "v"), 0);
    for (int i = 0; ok && i < 3000; i++) { /* descendants, not children */
        snprintf(key, sizeof key, "g/c-42/d%d/e", i);
        ok = CHECK_EQ_INT(w(&e, key, "v"), 0);
    }
    if (!ok || !CHECK_EQ_INT(env_commit(&e), 0)) {
        env_close(&e);
        return;
    }

    /* the expected children, sorted */
    size_t nwant = 0;
    char(*want)[16] = malloc(((size_t)nchildren + nextra) * sizeof *want);
    struct mname *wv = malloc(((size_t)nchildren + nextra) * sizeof *wv);
    for (int i = 0; i < nchildren; i++)
        snprintf(want[nwant++], sizeof *want, "c-%d", i);
    for (size_t i = 0; i < nextra; i++) {
        if (strncmp(extra[i], "g/", 2) != 0)
            continue;
        size_t n = strcspn(extra[i] + 2, "/");
        memcpy(want[nwant], extra[i] + 2, n);
        want[nwant++][n] = 0;
    }
    for (size_t i = 0; i < nwant; i++) {
        wv[i].p = (const uint8_t *)want[i];
        wv[i].n = strlen(want[i]);
    }
    qsort(wv, nwant, sizeof *wv, mname_cmp);
    size_t u = 0;
    for (size_t i = 0; i < nwant; i++)
        if (u == 0 || mname_cmp(&wv[i], &wv[u - 1]) != 0)
            wv[u++] = wv[i];
    nwant = u;
    struct nbuf exp_asc = {0}, exp_desc = {0};
    for (size_t i = 0; i < nwant; i++)
        nbuf_add(&exp_asc, wv[i].p, wv[i].n);
    for (size_t i = nwant; i-- > 0;)
        nbuf_add(&exp_desc, wv[i].p, wv[i].n);

    const uint8_t *g = (const uint8_t *)"g";
    struct store_names names = {0};
    for (int desc = 0; desc < 2; desc++) {
        const struct nbuf *exp = desc ? &exp_desc : &exp_asc;
        const char *dir = desc ? "desc" : "asc";
        /* the whole listing, no limit: one step or seek per child */
        uint64_t ops;
        struct nbuf all = {0};
        CHECK_EQ_INT(list_call(&e, g, 1, NULL, 0, 0, desc, &names, &ops), 0);
        for (size_t i = 0; i < names.n; i++)
            nbuf_add(&all, names.v[i].p, names.v[i].len);
        CHECK_MEM(all.b, all.len, exp->b, exp->len);
        CHECK(ops <= 3 * nwant + 8);
        fprintf(stderr, "list %s, %zu children, no limit: %llu cursor calls\n", dir, nwant,
                (unsigned long long)ops);
        /* paged */
        struct nbuf paged = {0};
        uint64_t max_ops;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        uint64_t before = e.s.list_ops;
        long calls = page_through(&e, g, 1, 100, desc, &paged, &max_ops);
        uint64_t total = e.s.list_ops - before;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        CHECK(calls > 0);
        CHECK_EQ_INT(paged.n, nwant);
        CHECK_MEM(paged.b, paged.len, exp->b, exp->len);
        /* about one cursor call per name (a seek and a step or two for the
         * odd subtree and prefix), whatever the size of the group: the
         * bound is 4 per name and 16 per call */
        CHECK(max_ops <= 4 * 101 + 16);
        CHECK(total <= 4 * (uint64_t)nwant + 16 * (uint64_t)calls);
        fprintf(stderr,
                "list %s, %zu children in pages of 100: %ld calls, %llu cursor calls "
                "(%.2f per name, at most %llu per call), %.3f s\n",
                dir, nwant, calls, (unsigned long long)total, (double)total / (double)nwant,
                (unsigned long long)max_ops, secs);
        free(all.b);
        free(paged.b);
        /* one short page from the middle, and one at the child with
         * thousands of descendants: costs that do not grow with the group */
        static const char *const starts[] = {"c-5000", "c-42", "c", "c-5-a", "k", "c-1"};
        for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
            const uint8_t *f = (const uint8_t *)starts[i];
            CHECK_EQ_INT(list_call(&e, g, 1, f, strlen(starts[i]), 10, desc, &names, &ops), 0);
            CHECK(ops <= 4 * 10 + 16);
            /* the same names as the whole listing has from there */
            struct mname fm = {f, strlen(starts[i])};
            size_t at = 0, avail;
            if (!desc) {
                while (at < nwant && mname_cmp(&wv[at], &fm) < 0)
                    at++;
                avail = nwant - at;
            } else {
                at = nwant;
                while (at > 0 && mname_cmp(&wv[at - 1], &fm) > 0)
                    at--;
                avail = at;
            }
            size_t nx = avail < 10 ? avail : 10;
            int same = names.n == nx;
            for (size_t j = 0; same && j < nx; j++) {
                const struct mname *x = desc ? &wv[at - 1 - j] : &wv[at + j];
                same = names.v[j].len == x->n && memcmp(names.v[j].p, x->p, x->n) == 0;
            }
            if (!CHECK(same))
                fprintf(stderr, "  from %s %s\n", starts[i], dir);
        }
    }
    free(names.v);
    free(exp_asc.b);
    free(exp_desc.b);
    free(want);
    free(wv);
    env_close(&e);
}

struct bigkey {
    uint8_t b[PATH_MAX_KEY];
    size_t n;
};

/* Replaces every key of the store's database with raw keys, in one
 * transaction, as a
 * foreign writer (HyperBEAM, a tool) could: keys store_write never makes,
 * "P/", "P//x", "/x", "P/x/", with a value that reads as a plain value. */
static int raw_put(struct env *e, const struct bigkey *keys, size_t n)
{
    static const uint8_t tagged[] = {1, 'v'}; /* TAG_VALUE, 'v' */
    MDB_txn *t;
    int rc = mdb_txn_begin(e->s.env, NULL, 0, &t);
    if (rc)
        return rc;
    rc = mdb_drop(t, e->s.dbi, 0);
    for (size_t i = 0; !rc && i < n; i++) {
        MDB_val k = {keys[i].n, (void *)keys[i].b};
        MDB_val v =
            e->s.format == FORMAT_TAGGED ? (MDB_val){2, (void *)tagged} : (MDB_val){1, (void *)"v"};
        rc = mdb_put(t, e->s.dbi, &k, &v, 0);
    }
    if (rc) {
        mdb_txn_abort(t);
        return rc;
    }
    txn_pool_release(&e->s.pool);
    return mdb_txn_commit(t);
}

/* The children of parent among raw keys, by brute force: for each key
 * "P/" + r (r not empty; at the root, each key r), the bytes of r up to
 * its first '/', perhaps none (a foreign "P//x" names the child "").
 * Sorted, unique. */
static size_t brute_children(const struct bigkey *keys, size_t nk, const uint8_t *p, size_t pn,
                             struct mname *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nk; i++) {
        const uint8_t *k = keys[i].b;
        size_t kn = keys[i].n, start = pn ? pn + 1 : 0;
        if (pn && !(kn > pn + 1 && memcmp(k, p, pn) == 0 && k[pn] == '/'))
            continue;
        size_t end = start;
        while (end < kn && k[end] != '/')
            end++;
        out[n].p = k + start;
        out[n].n = end - start;
        n++;
    }
    qsort(out, n, sizeof *out, mname_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || mname_cmp(&out[i], &out[u - 1]) != 0)
            out[u++] = out[i];
    return u;
}

/* Bytes around '/' and the bytes '/' itself, for foreign keys. */
static const uint8_t FOREIGN[] = {0x00, '-', '.', '/', '0', 'a', 0xff};

/* A random foreign key: short runs of FOREIGN bytes, a '/' or two, and
 * sometimes a long run so that keys reach PATH_MAX_KEY.  Often built on a
 * prefix of an earlier key, for shared and nested prefixes. */
static size_t foreign_key(const struct bigkey *keys, size_t nk, uint8_t *out)
{
    size_t n = 0;
    if (nk && rnd(2)) {
        const struct bigkey *base = &keys[rnd((uint32_t)nk)];
        n = rnd((uint32_t)base->n + 1);
        memcpy(out, base->b, n);
    }
    size_t parts = 1 + rnd(4);
    for (size_t i = 0; i < parts && n < PATH_MAX_KEY; i++) {
        size_t len = rnd(8) == 0 ? 100 + rnd(PATH_MAX_KEY) : 1 + rnd(3);
        uint8_t run = rnd(3) == 0 ? 'a' : 0;
        for (size_t j = 0; j < len && n < PATH_MAX_KEY; j++)
            out[n++] = run ? run : FOREIGN[rnd(sizeof FOREIGN)];
    }
    return n;
}

/* store_list with every limit, both directions, from none / a child /
 * a child cut or extended / a '/' / a `from` longer than any key, and
 * paging with small pages, against the brute force: on random foreign
 * keys up to PATH_MAX_KEY bytes.  The unlimited walk is checked too. */
static void list_foreign(enum store_format format, int rounds)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, format, 1 << 24, 8), 0))
        return;
    enum { NK = 48 };
    struct bigkey *keys = malloc(NK * sizeof *keys);
    struct mname *kids = malloc(NK * sizeof *kids);
    struct store_names names = {0};
    uint8_t *from = malloc(PATH_MAX_KEY + 300);
    long queries = 0, bad = 0, with_cut = 0;
    for (int round = 0; round < rounds; round++) {
        size_t nk = 0, want = 1 + rnd(NK);
        while (nk < want) {
            size_t n = foreign_key(keys, nk, keys[nk].b);
            int dup = n == 0;
            for (size_t j = 0; !dup && j < nk; j++)
                dup = keys[j].n == n && memcmp(keys[j].b, keys[nk].b, n) == 0;
            if (dup)
                continue;
            keys[nk++].n = n;
        }
        if (!CHECK_EQ_INT(raw_put(&e, keys, nk), 0))
            break;
        for (int q = 0; q < 6; q++) {
            /* the parent: the root, or a key cut at a '/', normalised */
            uint8_t parent[PATH_MAX_KEY];
            size_t pn = 0;
            if (rnd(4)) {
                const struct bigkey *k = &keys[rnd((uint32_t)nk)];
                size_t cut = rnd((uint32_t)k->n + 1);
                while (cut < k->n && k->b[cut] != '/')
                    cut++;
                pn = path_normalize(k->b, cut, parent);
            }
            size_t nw = brute_children(keys, nk, parent, pn, kids);
            for (size_t i = 0; i < nw; i++)
                for (size_t j = 0; j < kids[i].n; j++)
                    with_cut += kids[i].p[j] < '/';
            size_t fn = 0;
            int has_from = rnd(4) != 0;
            if (has_from) {
                uint32_t how = rnd(6);
                if (nw && how < 4) {
                    const struct mname *c = &kids[rnd((uint32_t)nw)];
                    fn = c->n;
                    memcpy(from, c->p, fn);
                    if (how == 1 && fn)
                        fn = rnd((uint32_t)fn);
                    else if (how == 2)
                        from[fn++] = FOREIGN[rnd(sizeof FOREIGN)];
                    else if (how == 3)
                        while (fn < PATH_MAX_KEY + 200 && rnd(64))
                            from[fn++] = rnd(2) ? 'a' : FOREIGN[rnd(sizeof FOREIGN)];
                } else if (how == 4) {
                    fn = 1 + rnd(3);
                    for (size_t i = 0; i < fn; i++)
                        from[i] = FOREIGN[rnd(sizeof FOREIGN)];
                } else { /* longer than any key */
                    fn = PATH_MAX_KEY - 10 + rnd(300);
                    memset(from, 'a', fn);
                    if (rnd(2))
                        from[rnd((uint32_t)fn)] = FOREIGN[rnd(sizeof FOREIGN)];
                }
            }
            for (int desc = 0; desc < 2; desc++) {
                /* the expected order, from applied */
                struct mname exp[NK];
                size_t ne = 0;
                for (size_t i = 0; i < nw; i++) {
                    size_t j = desc ? nw - 1 - i : i;
                    struct mname f = {from, fn};
                    int c = has_from ? mname_cmp(&kids[j], &f) : 0;
                    if (desc ? c <= 0 : c >= 0)
                        exp[ne++] = kids[j];
                }
                for (uint64_t limit = 0; limit <= ne + 1; limit++) {
                    int rc = list_call(&e, parent, pn, has_from ? from : NULL, fn, limit, desc,
                                       &names, NULL);
                    size_t nx = limit && limit < ne ? (size_t)limit : ne;
                    int ok = rc == 0 && names.n == nx;
                    for (size_t i = 0; ok && i < nx; i++)
                        ok = names.v[i].len == exp[i].n &&
                             memcmp(names.v[i].p, exp[i].p, exp[i].n) == 0;
                    queries++;
                    if (!ok && bad++ < 5) {
                        fprintf(stderr, "foreign list mismatch (%s, round %d): parent ",
                                store_format_name(format), round);
                        print_name(stderr, parent, pn);
                        fprintf(stderr, " from ");
                        if (has_from)
                            print_name(stderr, from, fn < 40 ? fn : 40);
                        else
                            fprintf(stderr, "undefined");
                        fprintf(stderr, " (%zu bytes) limit %llu %s, rc %d: %zu names, want %zu\n",
                                fn, (unsigned long long)limit, desc ? "desc" : "asc", rc, names.n,
                                nx);
                    }
                }
                /* paging in small pages joins up to the whole listing */
                if (!has_from) {
                    struct nbuf whole = {0}, paged = {0};
                    for (size_t i = 0; i < ne; i++)
                        nbuf_add(&whole, exp[i].p, exp[i].n);
                    uint64_t max_ops;
                    uint64_t page = 1 + rnd(3);
                    long calls = page_through(&e, parent, pn, page, desc, &paged, &max_ops);
                    queries++;
                    if ((calls < 0 || paged.len != whole.len ||
                         (whole.len && memcmp(paged.b, whole.b, whole.len) != 0)) &&
                        bad++ < 5)
                        fprintf(stderr, "foreign paging mismatch (%s, round %d, page %llu %s)\n",
                                store_format_name(format), round, (unsigned long long)page,
                                desc ? "desc" : "asc");
                    free(whole.b);
                    free(paged.b);
                }
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(with_cut > 0);
    fprintf(stderr, "foreign list (%s): %ld listings\n", store_format_name(format), queries);
    free(names.v);
    free(keys);
    free(kids);
    free(from);
    env_close(&e);
}

/* ---- map growth ------------------------------------------------------------------ */

/* The smallest map store_open accepts, in powers of two from one page. */
static size_t smallest_map(void)
{
    for (size_t size = 4096; size <= (1 << 20); size *= 2) {
        struct env e;
        int rc = env_open(&e, FORMAT_AUTO, size, 8);
        if (rc == 0) {
            env_close(&e);
            return size;
        }
        batch_free(&e.b);
        e.s.env = NULL;
        env_close(&e);
    }
    return 0;
}

/* Value number i of generation gen: a length and bytes that tell them apart. */
static size_t gen_value(uint8_t *out, int i, int gen)
{
    size_t n = 1 + (size_t)((i * 7919 + gen * 104729) % 4000);
    if (i % 97 == 13)
        n = 300000 + (size_t)i; /* now and then one larger than the whole map */
    for (size_t j = 0; j < n; j++)
        out[j] = (uint8_t)(i + gen * 31 + j * 17);
    return n;
}

static void map_growth_batch(size_t map)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_AUTO, map, 8), 0))
        return;
    MDB_txn *txn;
    struct store_info info;
    CHECK(store_read_txn(&e.s, &txn) == 0 && store_info(&e.s, txn, &info) == 0);
    size_t start_map = (size_t)info.map_size;
    enum { N = 1200 };
    uint8_t *val = malloc(400000);
    char key[32];
    long bad_add = 0, bad_commit = 0, bad_read = 0;
    for (int gen = 0; gen < 2; gen++) {
        for (int i = 0; i < N; i++) {
            size_t n = gen_value(val, i, gen);
            int kn = snprintf(key, sizeof key, "k/%05d", i);
            if (env_add(&e, W_WRITE, key, (size_t)kn, val, n))
                bad_add++;
            if (i % 5 == 0) { /* links too: replays must redo them */
                char lk[32];
                int ln = snprintf(lk, sizeof lk, "l/%05d", i);
                if (env_add(&e, W_LINK, key, (size_t)kn, lk, (size_t)ln))
                    bad_add++;
            }
            /* batches of varied size; generation 1 is one batch of all */
            if (gen == 0 && rnd(25) == 0 && env_commit(&e))
                bad_commit++;
        }
        if (env_commit(&e))
            bad_commit++;
        for (int i = 0; i < N; i++) {
            size_t n = gen_value(val, i, gen);
            const uint8_t *v;
            size_t vn;
            int kn = snprintf(key, sizeof key, gen ? "l/%05d" : "k/%05d", gen ? i - i % 5 : i);
            if (gen)
                n = gen_value(val, i - i % 5, gen);
            if (rd_n(&e, key, (size_t)kn, &v, &vn) || vn != n || memcmp(v, val, n))
                bad_read++;
        }
    }
    CHECK_EQ_INT(bad_add, 0);
    CHECK_EQ_INT(bad_commit, 0);
    CHECK_EQ_INT(bad_read, 0);
    CHECK(e.s.map_grows > 0);
    CHECK(e.b.replays > 0);
    CHECK(store_read_txn(&e.s, &txn) == 0 && store_info(&e.s, txn, &info) == 0);
    CHECK(info.map_size > start_map);
    CHECK_EQ_INT(info.entries, N + N / 5);
    free(val);
    env_close(&e);
}

/* ---- through dispatch: frames in, replies out -------------------------------------- */

struct proto {
    struct env e;
    struct dispatch d;
    struct codec_enc in; /* one chunk of request frames, back to back */
    size_t offs[4096], lens[4096];
    int n;
};

static int proto_open(struct proto *pr, size_t map)
{
    if (env_open(&pr->e, FORMAT_AUTO, map, 8))
        return -1;
    dispatch_init(&pr->d, &pr->e.s, 4096);
    codec_enc_init(&pr->in);
    pr->n = 0;
    return 0;
}

static void proto_close(struct proto *pr)
{
    dispatch_free(&pr->d);
    codec_enc_free(&pr->in);
    env_close(&pr->e);
}

static void req(struct proto *pr, uint64_t id, const char *op, uint32_t nargs)
{
    pr->offs[pr->n] = pr->in.len;
    codec_enc_version(&pr->in);
    codec_enc_tuple(&pr->in, 2 + nargs);
    codec_enc_u64(&pr->in, id);
    codec_enc_atom(&pr->in, op);
}

static void req_end(struct proto *pr)
{
    pr->lens[pr->n] = pr->in.len - pr->offs[pr->n];
    pr->n++;
}

static void bin(struct proto *pr, const char *s) { codec_enc_binary(&pr->in, s, strlen(s)); }

/* Feeds the chunk to the dispatcher as the main loop does. */
static void run(struct proto *pr)
{
    CHECK_EQ_INT(pr->in.err, 0);
    pr->d.out.len = 0;
    for (int i = 0; i < pr->n; i++)
        dispatch_frame(&pr->d, pr->in.buf, pr->offs[i], pr->lens[i]);
    dispatch_end_of_input(&pr->d);
    pr->in.len = 0;
    pr->n = 0;
}

/* A reply term as text: atoms bare, binaries <<"...">> with \xNN escapes,
 * integers in decimal, tuples {..}, lists [..]. */
struct str {
    char *s;
    size_t n, cap;
};

static void sput(struct str *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (t->s && (size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        t->cap = (t->cap + (size_t)k + 1) * 2;
        t->s = realloc(t->s, t->cap);
    }
}

static int term_text(struct codec_dec *d, struct str *t)
{
    if (d->pos >= d->len)
        return HL_EBADTERM;
    uint8_t tag = d->buf[d->pos];
    int rc;
    if (tag == 97 || tag == 98 || tag == 110) {
        uint64_t v;
        size_t save = d->pos;
        if (codec_dec_u64(d, &v) == 0) {
            sput(t, "%llu", (unsigned long long)v);
            return 0;
        }
        d->pos = save;
        sput(t, "neg");
        return codec_dec_skip(d);
    }
    if (tag == 100 || tag == 115 || tag == 118 || tag == 119) {
        const char *a;
        size_t n;
        if ((rc = codec_dec_atom(d, &a, &n)))
            return rc;
        sput(t, "%.*s", (int)n, a);
        return 0;
    }
    if (tag == 109) {
        const uint8_t *b;
        size_t n;
        if ((rc = codec_dec_binary(d, &b, &n)))
            return rc;
        sput(t, "<<\"");
        for (size_t i = 0; i < n; i++)
            if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
                sput(t, "%c", b[i]);
            else
                sput(t, "\\x%02x", b[i]);
        sput(t, "\">>");
        return 0;
    }
    if (tag == 104 || tag == 105) {
        uint32_t arity;
        if ((rc = codec_dec_tuple(d, &arity)))
            return rc;
        sput(t, "{");
        for (uint32_t i = 0; i < arity; i++) {
            if (i)
                sput(t, ",");
            if ((rc = term_text(d, t)))
                return rc;
        }
        sput(t, "}");
        return 0;
    }
    if (tag == 106 || tag == 108) {
        uint32_t count;
        if ((rc = codec_dec_list(d, &count)))
            return rc;
        sput(t, "[");
        for (uint32_t i = 0; i < count; i++) {
            if (i)
                sput(t, ",");
            if ((rc = term_text(d, t)))
                return rc;
        }
        sput(t, "]");
        return count ? codec_dec_list_end(d) : 0;
    }
    return HL_EBADTERM;
}

/* The replies in d.out: how many, and each one well-formed {Id, Result}. */
static int count_replies(struct proto *pr)
{
    int n = 0;
    size_t pos = 0;
    while (pos + 4 <= pr->d.out.len) {
        size_t len = get32(pr->d.out.buf + pos);
        struct codec_dec d;
        struct str t = {0};
        uint32_t arity;
        codec_dec_init(&d, pr->d.out.buf + pos + 4, len);
        if (pos + 4 + len > pr->d.out.len || codec_dec_version(&d) ||
            codec_dec_tuple(&d, &arity) || arity != 2 || term_text(&d, &t) ||
            term_text(&d, &t) || !codec_dec_at_end(&d))
            n += 100000; /* a malformed reply */
        free(t.s);
        n++;
        pos += 4 + len;
    }
    return pos == pr->d.out.len ? n : -1;
}

/* The result of the reply to `id` as text (caller frees), or NULL. */
static char *reply_text(struct proto *pr, uint64_t id)
{
    size_t pos = 0;
    while (pos + 4 <= pr->d.out.len) {
        size_t len = get32(pr->d.out.buf + pos);
        struct codec_dec d;
        uint32_t arity;
        uint64_t rid;
        codec_dec_init(&d, pr->d.out.buf + pos + 4, len);
        if (codec_dec_version(&d) == 0 && codec_dec_tuple(&d, &arity) == 0 && arity == 2 &&
            codec_dec_u64(&d, &rid) == 0 && rid == id) {
            struct str t = {0};
            if (term_text(&d, &t) || !codec_dec_at_end(&d)) {
                free(t.s);
                return NULL;
            }
            return t.s ? t.s : calloc(1, 1);
        }
        pos += 4 + len;
    }
    return NULL;
}

static int reply_is(struct proto *pr, uint64_t id, const char *want)
{
    char *got = reply_text(pr, id);
    int ok = got && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "  reply %llu: got %s, want %s\n", (unsigned long long)id,
                got ? got : "(none)", want);
    free(got);
    return ok;
}

/* 1 when the reply starts with prefix. */
static int reply_starts(struct proto *pr, uint64_t id, const char *prefix)
{
    char *got = reply_text(pr, id);
    int ok = got && strncmp(got, prefix, strlen(prefix)) == 0;
    if (!ok)
        fprintf(stderr, "  reply %llu: got %s, want %s...\n", (unsigned long long)id,
                got ? got : "(none)", prefix);
    free(got);
    return ok;
}

static void w_req(struct proto *pr, uint64_t id, const char *p, const char *v)
{
    req(pr, id, "write", 2);
    bin(pr, p);
    bin(pr, v);
    req_end(pr);
}

static void r_req(struct proto *pr, uint64_t id, const char *p)
{
    req(pr, id, "read", 1);
    bin(pr, p);
    req_end(pr);
}

/* --read-committed (the server's choice in commit and fsync mode): a read
 * amid a burst's writes is answered from the last commit and leaves the
 * batch open, so the burst commits once; its writers hear ok after that
 * commit, and what comes after sees it.  A resolution cached from the
 * old snapshot does not outlive the commit of a link.  A sync still
 * commits what came before it. */
static void read_committed_batches(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    pr->d.read_committed = 1;
    w_req(pr, 1, "k", "1");
    w_req(pr, 2, "d/x", "dx");
    run(pr);
    uint64_t c0 = pr->d.batch.commits;
    w_req(pr, 3, "k", "2");
    r_req(pr, 4, "k");
    req(pr, 5, "make_link", 2);
    bin(pr, "d");
    bin(pr, "m");
    req_end(pr);
    r_req(pr, 6, "m/x");
    w_req(pr, 7, "k2", "x");
    r_req(pr, 8, "k2");
    run(pr);
    CHECK_EQ_INT(count_replies(pr), 6);
    CHECK(reply_is(pr, 3, "ok"));
    CHECK(reply_is(pr, 4, "{ok,<<\"1\">>}")); /* the last commit's */
    CHECK(reply_is(pr, 5, "ok"));
    CHECK(reply_is(pr, 6, "not_found"));
    CHECK(reply_is(pr, 7, "ok"));
    CHECK(reply_is(pr, 8, "not_found"));
    CHECK_EQ_INT(pr->d.batch.commits - c0, 1); /* one commit for the burst */
    r_req(pr, 9, "k");
    r_req(pr, 10, "m/x");
    r_req(pr, 11, "k2");
    run(pr);
    CHECK(reply_is(pr, 9, "{ok,<<\"2\">>}"));
    CHECK(reply_is(pr, 10, "{ok,<<\"dx\">>}"));
    CHECK(reply_is(pr, 11, "{ok,<<\"x\">>}"));
    w_req(pr, 12, "k3", "3");
    req(pr, 13, "sync", 0);
    req_end(pr);
    r_req(pr, 14, "k3");
    run(pr);
    CHECK(reply_is(pr, 12, "ok"));
    CHECK(reply_is(pr, 13, "ok"));
    CHECK(reply_is(pr, 14, "{ok,<<\"3\">>}"));
    /* without the option, a read commits the writes before it */
    pr->d.read_committed = 0;
    w_req(pr, 15, "k4", "4");
    r_req(pr, 16, "k4");
    run(pr);
    CHECK(reply_is(pr, 16, "{ok,<<\"4\">>}"));
    proto_close(pr);
    free(pr);
}

static void dispatch_basics(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    w_req(pr, 1, "/d//x/", "dx");
    req(pr, 2, "make_link", 2);
    bin(pr, "d");
    bin(pr, "l");
    req_end(pr);
    r_req(pr, 3, "l/x"); /* a read after writes in one chunk sees them */
    req(pr, 4, "list", 4);
    bin(pr, "");
    codec_enc_atom(&pr->in, "undefined");
    codec_enc_u64(&pr->in, 0);
    codec_enc_atom(&pr->in, "desc");
    req_end(pr);
    req(pr, 5, "type", 1);
    bin(pr, "l");
    req_end(pr);
    req(pr, 6, "resolve", 1);
    bin(pr, "l/x/y");
    req_end(pr);
    r_req(pr, 7, "nothing");
    req(pr, (1ULL << 60) + 5, "ping", 0);
    req_end(pr);
    req(pr, 9, "read_many", 1);
    codec_enc_list(&pr->in, 2);
    bin(pr, "d/x");
    bin(pr, "zz");
    codec_enc_nil(&pr->in);
    req_end(pr);
    run(pr);
    CHECK_EQ_INT(count_replies(pr), 9);
    CHECK(reply_is(pr, 1, "ok"));
    CHECK(reply_is(pr, 2, "ok"));
    CHECK(reply_is(pr, 3, "{ok,<<\"dx\">>}"));
    CHECK(reply_is(pr, 4, "{ok,[<<\"l\">>,<<\"d\">>]}"));
    CHECK(reply_is(pr, 5, "composite"));
    CHECK(reply_is(pr, 6, "<<\"d/x/y\">>"));
    CHECK(reply_is(pr, 7, "not_found"));
    CHECK(reply_is(pr, (1ULL << 60) + 5, "pong"));
    CHECK(reply_is(pr, 9, "{packed,<<\"\\x01\\x00\\x00\\x00\\x02dx\\x00\">>}"));

    /* write_many is all or nothing, even when an op fails only while it
     * is applied (below a loop) after an earlier op changed the txn */
    req(pr, 10, "make_link", 2);
    bin(pr, "lb");
    bin(pr, "la");
    req_end(pr);
    req(pr, 11, "make_link", 2);
    bin(pr, "la");
    bin(pr, "lb");
    req_end(pr);
    run(pr);
    w_req(pr, 12, "one", "1");
    req(pr, 13, "write_many", 1);
    codec_enc_list(&pr->in, 3);
    codec_enc_tuple(&pr->in, 3);
    codec_enc_atom(&pr->in, "write");
    bin(pr, "two");
    bin(pr, "2");
    codec_enc_tuple(&pr->in, 3);
    codec_enc_atom(&pr->in, "make_link");
    bin(pr, "one");
    bin(pr, "d");
    codec_enc_tuple(&pr->in, 3);
    codec_enc_atom(&pr->in, "write");
    bin(pr, "la/below");
    bin(pr, "x");
    codec_enc_nil(&pr->in);
    req_end(pr);
    w_req(pr, 14, "three", "3");
    r_req(pr, 15, "one");
    r_req(pr, 16, "two");
    r_req(pr, 17, "three");
    r_req(pr, 18, "l/x"); /* the link d -> l was not replaced */
    run(pr);
    CHECK(reply_is(pr, 12, "ok"));
    CHECK(reply_is(pr, 13, "{error,link_loop}"));
    CHECK(reply_is(pr, 14, "ok"));
    CHECK(reply_is(pr, 15, "{ok,<<\"1\">>}"));
    CHECK(reply_is(pr, 16, "not_found"));
    CHECK(reply_is(pr, 17, "{ok,<<\"3\">>}"));
    CHECK(reply_is(pr, 18, "{ok,<<\"dx\">>}"));

    /* list through dispatch agrees with store_list on from/limit/dir */
    static const char *const kids[] = {"p/c", "p/c-x", "p/c/y", "p/c.z/q", "p/c0", "p/b", "p/d"};
    for (int i = 0; i < 7; i++)
        w_req(pr, 20 + (uint64_t)i, kids[i], "v");
    req(pr, 30, "list", 4);
    bin(pr, "p");
    bin(pr, "c");
    codec_enc_u64(&pr->in, 3);
    codec_enc_atom(&pr->in, "asc");
    req_end(pr);
    req(pr, 31, "list", 4);
    bin(pr, "p");
    bin(pr, "c-x");
    codec_enc_u64(&pr->in, 0);
    codec_enc_atom(&pr->in, "desc");
    req_end(pr);
    req(pr, 32, "list", 4);
    bin(pr, "p");
    codec_enc_atom(&pr->in, "undefined");
    codec_enc_u64(&pr->in, 2);
    codec_enc_atom(&pr->in, "desc");
    req_end(pr);
    req(pr, 33, "list", 4);
    bin(pr, "p");
    codec_enc_atom(&pr->in, "undefined");
    codec_enc_u64(&pr->in, 0);
    codec_enc_atom(&pr->in, "sideways");
    req_end(pr);
    run(pr);
    CHECK(reply_is(pr, 30, "{ok,[<<\"c\">>,<<\"c-x\">>,<<\"c.z\">>]}"));
    CHECK(reply_is(pr, 31, "{ok,[<<\"c-x\">>,<<\"c\">>,<<\"b\">>]}"));
    CHECK(reply_is(pr, 32, "{ok,[<<\"d\">>,<<\"c0\">>]}"));
    CHECK(reply_is(pr, 33, "{error,{bad_request,bad_direction}}"));
    proto_close(pr);
    free(pr);
}

/* Every prefix of every valid request, each in a block of exactly its
 * size, is answered with one bad_request reply and changes nothing. */
static void dispatch_truncation(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    w_req(pr, 1, "keep", "k");
    run(pr);
    /* the frames, built but not run */
    w_req(pr, 2, "t/w", "value");
    req(pr, 3, "make_link", 2);
    bin(pr, "keep");
    bin(pr, "t/l");
    req_end(pr);
    req(pr, 4, "write_many", 1);
    codec_enc_list(&pr->in, 2);
    codec_enc_tuple(&pr->in, 3);
    codec_enc_atom(&pr->in, "write");
    bin(pr, "t/m1");
    bin(pr, "v");
    codec_enc_tuple(&pr->in, 2);
    codec_enc_atom(&pr->in, "delete");
    bin(pr, "keep");
    codec_enc_nil(&pr->in);
    req_end(pr);
    req(pr, 5, "delete", 1);
    bin(pr, "keep");
    req_end(pr);
    req(pr, 6, "make_group", 1);
    bin(pr, "t/g");
    req_end(pr);
    req(pr, (1ULL << 60) + 7, "list", 4);
    bin(pr, "");
    bin(pr, "a");
    codec_enc_u64(&pr->in, 70000);
    codec_enc_atom(&pr->in, "asc");
    req_end(pr);
    req(pr, 8, "read_many", 1);
    codec_enc_list(&pr->in, 2);
    bin(pr, "keep");
    bin(pr, "x");
    codec_enc_nil(&pr->in);
    req_end(pr);
    req(pr, 9, "match", 1);
    codec_enc_list(&pr->in, 1);
    codec_enc_tuple(&pr->in, 2);
    bin(pr, "n");
    bin(pr, "t");
    codec_enc_nil(&pr->in);
    req_end(pr);
    req(pr, 10, "scan", 2);
    bin(pr, "a");
    codec_enc_u64(&pr->in, 5);
    req_end(pr);
    req(pr, 11, "reset", 0);
    req_end(pr);
    r_req(pr, 12, "keep");
    CHECK_EQ_INT(pr->in.err, 0);
    int bad = 0, frames = pr->n;
    long prefixes = 0;
    uint8_t *all = malloc(pr->in.len);
    memcpy(all, pr->in.buf, pr->in.len);
    for (int f = 0; f < frames; f++) {
        for (size_t cut = 0; cut < pr->lens[f]; cut++) {
            uint8_t *p = malloc(cut);
            if (cut)
                memcpy(p, all + pr->offs[f], cut);
            pr->d.out.len = 0;
            dispatch_frame(&pr->d, p, 0, cut);
            dispatch_end_of_input(&pr->d); /* p must live until here */
            free(p);
            prefixes++;
            if (count_replies(pr) != 1) {
                bad++;
                continue;
            }
            /* the one reply, whatever id it carries */
            struct codec_dec d;
            struct str t = {0};
            uint32_t arity;
            codec_dec_init(&d, pr->d.out.buf + 4, pr->d.out.len - 4);
            if (codec_dec_version(&d) || codec_dec_tuple(&d, &arity) || term_text(&d, &t) ||
                term_text(&d, &t) || !t.s || !strstr(t.s, "{error,{bad_request,")) {
                if (bad < 5)
                    fprintf(stderr, "  frame %d cut %zu: %s\n", f, cut, t.s ? t.s : "?");
                bad++;
            }
            free(t.s);
        }
    }
    free(all);
    pr->in.len = 0;
    pr->n = 0;
    CHECK_EQ_INT(bad, 0);
    CHECK(prefixes > 300);
    CHECK(!batch_open(&pr->e.s));
    /* nothing was written, deleted or reset */
    r_req(pr, 20, "keep");
    r_req(pr, 21, "t/w");
    req(pr, 22, "list", 4);
    bin(pr, "");
    codec_enc_atom(&pr->in, "undefined");
    codec_enc_u64(&pr->in, 0);
    codec_enc_atom(&pr->in, "asc");
    req_end(pr);
    run(pr);
    CHECK(reply_is(pr, 20, "{ok,<<\"k\">>}"));
    CHECK(reply_is(pr, 21, "not_found"));
    CHECK(reply_is(pr, 22, "{ok,[<<\"keep\">>]}"));
    proto_close(pr);
    free(pr);
}

/* Frames whose lengths and counts lie, each in an exact-size block. */
static void dispatch_lying(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    static const uint8_t read_many_huge[] = {131, 104, 3, 97, 1, 119, 9, 'r', 'e', 'a', 'd',
                                             '_', 'm', 'a', 'n', 'y', 108, 255, 255, 255, 255,
                                             106};
    static const uint8_t write_many_huge[] = {131, 104, 3, 97, 2, 119, 10, 'w', 'r', 'i', 't',
                                              'e', '_', 'm', 'a', 'n', 'y', 108, 255, 255, 255,
                                              255, 104, 2, 119, 6, 'd', 'e', 'l', 'e', 't', 'e',
                                              109, 0, 0, 0, 1, 'k', 106};
    static const uint8_t tuple_huge[] = {131, 105, 255, 255, 255, 255, 97, 3, 119, 4, 'p',
                                         'i', 'n', 'g'};
    static const uint8_t read_bin_huge[] = {131, 104, 3, 97, 4, 119, 4, 'r', 'e', 'a', 'd',
                                            109, 255, 255, 255, 255, 'k'};
    static const uint8_t write_bin_long[] = {131, 104, 4, 97, 5, 119, 5, 'w', 'r', 'i', 't',
                                             'e', 109, 0, 0, 0, 1, 'k', 109, 0, 0, 0, 9, 'v'};
    static const uint8_t atom_long[] = {131, 104, 3, 97, 6, 119, 200, 'r', 'e', 'a', 'd'};
    static const uint8_t id_big9[] = {131, 104, 2, 110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                      119, 4, 'p', 'i', 'n', 'g'};
    static const uint8_t id_negative[] = {131, 104, 2, 98, 255, 255, 255, 255, 119, 4, 'p', 'i',
                                          'n', 'g'};
    static const uint8_t not_131[] = {130, 104, 2, 97, 1, 119, 4, 'p', 'i', 'n', 'g'};
    const struct {
        const uint8_t *p;
        size_t n;
        uint64_t id; /* the id the reply must carry */
    } frames[] = {
        {read_many_huge, sizeof read_many_huge, 1},
        {write_many_huge, sizeof write_many_huge, 2},
        {tuple_huge, sizeof tuple_huge, 3},
        {read_bin_huge, sizeof read_bin_huge, 4},
        {write_bin_long, sizeof write_bin_long, 5},
        {atom_long, sizeof atom_long, 6},
        {id_big9, sizeof id_big9, 0},
        {id_negative, sizeof id_negative, 0},
        {not_131, sizeof not_131, 0},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        uint8_t *p = malloc(frames[i].n);
        memcpy(p, frames[i].p, frames[i].n);
        pr->d.out.len = 0;
        dispatch_frame(&pr->d, p, 0, frames[i].n);
        dispatch_end_of_input(&pr->d);
        free(p);
        CHECK_EQ_INT(count_replies(pr), 1);
        CHECK(reply_starts(pr, frames[i].id, "{error,{bad_request,"));
    }
    /* and the dispatcher still serves */
    w_req(pr, 40, "k", "v");
    r_req(pr, 41, "k");
    run(pr);
    CHECK(reply_is(pr, 40, "ok"));
    CHECK(reply_is(pr, 41, "{ok,<<\"v\">>}"));
    proto_close(pr);
    free(pr);
}

/* A payload is one term: bytes after a well-formed request tuple are
 * refused with {bad_request, trailing_bytes}, and a write so refused is
 * not applied (it was, and answered ok).  The dispatcher serves on. */
static void dispatch_trailing_bytes(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    static const uint8_t junk[] = {131, 106, 'J', 'U', 'N', 'K'};
    static const uint8_t half_binary[] = {109, 0, 0, 0};
    req(pr, 1, "write", 2);
    bin(pr, "k");
    bin(pr, "v");
    codec_enc_raw(&pr->in, junk, sizeof junk);
    req_end(pr);
    r_req(pr, 2, "k");
    req(pr, 3, "read", 1);
    bin(pr, "k");
    codec_enc_raw(&pr->in, half_binary, sizeof half_binary);
    req_end(pr);
    req(pr, 4, "write_many", 1);
    codec_enc_list(&pr->in, 1);
    codec_enc_tuple(&pr->in, 3);
    codec_enc_atom(&pr->in, "write");
    bin(pr, "m");
    bin(pr, "1");
    codec_enc_nil(&pr->in);
    codec_enc_raw(&pr->in, junk + 1, 1); /* a second [] */
    req_end(pr);
    r_req(pr, 5, "m");
    w_req(pr, 6, "k", "w");
    r_req(pr, 7, "k");
    run(pr);
    CHECK_EQ_INT(count_replies(pr), 7);
    CHECK(reply_is(pr, 1, "{error,{bad_request,trailing_bytes}}"));
    CHECK(reply_is(pr, 2, "not_found"));
    CHECK(reply_is(pr, 3, "{error,{bad_request,trailing_bytes}}"));
    CHECK(reply_is(pr, 4, "{error,{bad_request,trailing_bytes}}"));
    CHECK(reply_is(pr, 5, "not_found"));
    CHECK(reply_is(pr, 6, "ok"));
    CHECK(reply_is(pr, 7, "{ok,<<\"w\">>}"));
    proto_close(pr);
    free(pr);
}

/* Map growth through dispatch: one chunk of writes far larger than the
 * map, all acknowledged ok, all read back. */
/* Paths longer than the resolver's work buffer (found by the fuzzer: a
 * list of a 4566-byte path overflowed a stack buffer).  Nothing can lie
 * below such a path: list answers no names, type not_found, and a read
 * or resolve refuses it as too long for a key. */
static void dispatch_long_paths(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    size_t sizes[] = {PATH_MAX_KEY + 1, PATH_MAX_WORK, PATH_MAX_WORK + 1, 4566, 3 * PATH_MAX_WORK};
    char *p = malloc(3 * PATH_MAX_WORK + 3);
    req(pr, 9, "make_link", 2);
    bin(pr, "d");
    bin(pr, "l");
    req_end(pr);
    run(pr);
    CHECK(reply_is(pr, 9, "ok"));
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        memset(p, 'a', n);
        p[0] = 'l'; /* through a link at a prefix, too */
        p[1] = '/';
        p[n] = 0;
        req(pr, 1, "list", 4);
        bin(pr, p);
        codec_enc_atom(&pr->in, "undefined");
        codec_enc_u64(&pr->in, 0);
        codec_enc_atom(&pr->in, i % 2 ? "desc" : "asc");
        req_end(pr);
        req(pr, 2, "type", 1);
        bin(pr, p);
        req_end(pr);
        r_req(pr, 3, p);
        req(pr, 4, "resolve", 1);
        bin(pr, p);
        req_end(pr);
        run(pr);
        CHECK_EQ_INT(count_replies(pr), 4);
        CHECK(reply_is(pr, 1, "{ok,[]}"));
        /* no key a write can make: a miss for readers */
        CHECK(reply_is(pr, 2, "not_found"));
        CHECK(reply_is(pr, 3, "not_found"));
        /* resolve is about paths, not keys: up to what resolution works
         * on, the path comes back with the link followed, beyond it as
         * given */
        CHECK(reply_starts(pr, 4, n <= PATH_MAX_WORK ? "<<\"d/aaa" : "<<\"l/aaa"));
    }
    free(p);
    proto_close(pr);
    free(pr);
}

static void map_growth_dispatch(size_t map)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, map), 0)) {
        free(pr);
        return;
    }
    uint8_t *val = malloc(400000);
    char key[32];
    enum { N = 400 };
    for (int i = 0; i < N; i++) {
        size_t n = gen_value(val, i, 5);
        snprintf(key, sizeof key, "m/%04d", i);
        req(pr, 1000 + (uint64_t)i, "write", 2);
        bin(pr, key);
        codec_enc_binary(&pr->in, val, n);
        req_end(pr);
    }
    run(pr);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        char *t = reply_text(pr, 1000 + (uint64_t)i);
        ok += t && strcmp(t, "ok") == 0;
        free(t);
    }
    CHECK_EQ_INT(ok, N);
    CHECK(pr->e.s.map_grows > 0);
    CHECK(pr->d.batch.replays > 0);
    /* read back, 64 reads a chunk: compare the binaries in the replies */
    int good = 0;
    for (int base = 0; base < N; base += 64) {
        int top = base + 64 < N ? base + 64 : N;
        for (int j = base; j < top; j++) {
            snprintf(key, sizeof key, "m/%04d", j);
            r_req(pr, 5000 + (uint64_t)j, key);
        }
        run(pr);
        for (size_t pos = 0; pos + 4 <= pr->d.out.len;) {
            size_t len = get32(pr->d.out.buf + pos);
            struct codec_dec d;
            uint32_t arity;
            uint64_t rid;
            const uint8_t *b;
            size_t bn;
            codec_dec_init(&d, pr->d.out.buf + pos + 4, len);
            if (codec_dec_version(&d) == 0 && codec_dec_tuple(&d, &arity) == 0 &&
                codec_dec_u64(&d, &rid) == 0 && rid >= 5000 + (uint64_t)base &&
                rid < 5000 + (uint64_t)top && codec_dec_tuple(&d, &arity) == 0 &&
                codec_dec_is_atom(&d, "ok") && codec_dec_binary(&d, &b, &bn) == 0) {
                size_t n = gen_value(val, (int)(rid - 5000), 5);
                good += bn == n && memcmp(b, val, n) == 0;
            }
            pos += 4 + len;
        }
    }
    CHECK_EQ_INT(good, N);
    free(val);
    proto_close(pr);
    free(pr);
}

/* A write refused before it changed anything, first in its batch, leaves
 * no transaction open: nothing is committed for it (an empty commit would
 * count, set off a background sync, and in fsync mode make the main loop
 * wait for more writers to join a batch of none). */
static void dispatch_refused_first_write(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    char longkey[601];
    memset(longkey, 'k', 600);
    longkey[600] = 0;
    w_req(pr, 1, "k", "v");
    run(pr);
    uint64_t commits = pr->d.batch.commits;
    w_req(pr, 2, "", "v");
    CHECK_EQ_INT(pr->in.err, 0);
    pr->d.out.len = 0;
    dispatch_frame(&pr->d, pr->in.buf, pr->offs[0], pr->lens[0]);
    CHECK(!batch_open(&pr->e.s)); /* before the end of input commits it */
    dispatch_end_of_input(&pr->d);
    CHECK(reply_is(pr, 2, "{error,empty_path}"));
    pr->in.len = 0;
    pr->n = 0;
    w_req(pr, 3, longkey, "v");
    run(pr);
    CHECK(reply_is(pr, 3, "{error,{key_too_long,600}}"));
    CHECK(!batch_open(&pr->e.s));
    CHECK_EQ_INT(pr->d.batch.commits, commits);
    /* refused after another write: that one still commits, once */
    w_req(pr, 4, "k2", "v2");
    w_req(pr, 5, "", "v");
    r_req(pr, 6, "k2");
    run(pr);
    CHECK(reply_is(pr, 4, "ok"));
    CHECK(reply_is(pr, 5, "{error,empty_path}"));
    CHECK(reply_is(pr, 6, "{ok,<<\"v2\">>}"));
    CHECK_EQ_INT(pr->d.batch.commits, commits + 1);
    proto_close(pr);
    free(pr);
}

/* A reply longer than a frame can carry (d.max_reply, lowered here from
 * the 32-bit limit so no 4 GiB is needed) is answered {error, {too_large,
 * Bytes}} with its true size, and the replies after it stay in step. */
static void dispatch_too_large(void)
{
    struct proto *pr = malloc(sizeof *pr);
    if (!CHECK_EQ_INT(proto_open(pr, 1 << 20), 0)) {
        free(pr);
        return;
    }
    char v[101];
    memset(v, 'v', 100);
    v[100] = 0;
    w_req(pr, 1, "a", v);
    w_req(pr, 2, "b", v);
    w_req(pr, 3, "c", v);
    run(pr);
    /* read_many of two: 1 + 2 + 11 (id) + 2 + 8 (packed) + 5 + 2 * 105 */
    pr->d.max_reply = 239;
    req(pr, 10, "read_many", 1);
    codec_enc_list(&pr->in, 2);
    bin(pr, "a");
    bin(pr, "b");
    codec_enc_nil(&pr->in);
    req_end(pr);
    req(pr, 11, "read_many", 1); /* of three: 105 bytes more */
    codec_enc_list(&pr->in, 3);
    bin(pr, "a");
    bin(pr, "b");
    bin(pr, "c");
    codec_enc_nil(&pr->in);
    req_end(pr);
    req(pr, 12, "scan", 2);
    codec_enc_atom(&pr->in, "undefined");
    codec_enc_u64(&pr->in, 0);
    req_end(pr);
    req(pr, 13, "ping", 0);
    req_end(pr);
    run(pr);
    CHECK_EQ_INT(count_replies(pr), 4);
    CHECK(reply_starts(pr, 10, "{packed,<<\"\\x01\\x00\\x00\\x00dvvv"));
    CHECK(reply_is(pr, 11, "{error,{too_large,344}}"));
    CHECK(reply_starts(pr, 12, "{error,{too_large,"));
    CHECK(reply_is(pr, 13, "pong"));
    proto_close(pr);
    free(pr);
}

/* A slot count no power of two can hold is refused, not looped on. */
static void link_cache_bounds(void)
{
    CHECK(link_cache_new(SIZE_MAX) == NULL);
    CHECK(link_cache_new(((size_t)1 << 63) + 1) == NULL);
    struct link_cache *c = link_cache_new(3);
    CHECK(c != NULL);
    link_cache_free(c);
}

/* ---- other processes reading the environment ------------------------------ */

/* A child that opens the store read-only (which takes its reader slot),
 * says so on `ready`, and closes it when `go` is closed or written to. */
static pid_t reader_child(const char *dir, int *ready_fd, int *go_fd)
{
    int ready[2], go[2];
    if (!CHECK_EQ_INT(pipe(ready), 0) || !CHECK_EQ_INT(pipe(go), 0))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        struct store s;
        struct store_config cfg = {.dir = dir, .map_size = 1 << 20, .max_readers = 16,
                                   .read_only = 1, .max_hops = 8, .format = FORMAT_AUTO,
                                   .durability = DURABILITY_COMMIT, .cache_slots = 64};
        char why[128];
        char ok = store_open(&s, &cfg, why, sizeof why) == 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(2);
        char c;
        (void)!read(go[0], &c, 1);
        if (ok == 'y')
            store_close(&s);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    *ready_fd = ready[0];
    *go_fd = go[1];
    return pid;
}

static void other_readers(void)
{
    struct env e;
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_TAGGED, 1 << 20, 8), 0))
        return;
    CHECK_EQ_INT(store_other_readers(&e.s), 0); /* our own slot is not counted */
    for (int kill_it = 0; kill_it <= 1; kill_it++) {
        int ready, go;
        pid_t pid = reader_child(e.path, &ready, &go);
        if (!CHECK(pid > 0))
            break;
        char ok = 0;
        CHECK_EQ_INT(read(ready, &ok, 1), 1);
        CHECK(ok == 'y');
        CHECK_EQ_INT(store_other_readers(&e.s), 1);
        if (kill_it)
            kill(pid, SIGKILL); /* its slot stays in the table, its process does not */
        close(go);
        int status;
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        CHECK(kill_it ? WIFSIGNALED(status) : WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(ready);
        CHECK_EQ_INT(store_other_readers(&e.s), 0);
    }
    env_close(&e);
}

/* Only async mode records the last request a commit applied: the server
 * reads it only then, and in the other modes it would be a page more for
 * every commit to flush. */
static void last_request_async_only(void)
{
    struct env e;
    uint64_t session = 0, id = 0;
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_TAGGED, 1 << 20, 8), 0))
        return;
    e.s.session = 7;
    CHECK_EQ_INT(w(&e, "k", "v"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 0); /* commit mode */
    e.s.durability = DURABILITY_FSYNC;
    CHECK_EQ_INT(w(&e, "k", "w"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 0);
    e.s.durability = DURABILITY_ASYNC;
    CHECK_EQ_INT(w(&e, "k", "x"), 0);
    CHECK_EQ_INT(w(&e, "j", "y"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1);
    CHECK(session == 7 && id == e.next_id);
    env_close(&e);
}

/* What a port killed between a batch's record and its commit leaves. */
static void record_and_die(struct env *e)
{
    CHECK_EQ_INT(store_note_last(&e->s, e->next_id), 0);
    mdb_txn_abort(e->s.wtxn);
    e->s.wtxn = NULL;
    store_write_ended(&e->s, 0, 0);
    batch_clear(&e->b);
    e->len = 0;
}

/* hb_store_lmdb's format: the commit records beside the store (marks.h),
 * in every mode.  A transaction that recorded a request and died before
 * its commit leaves its id to the next writer, whose record (a session of
 * nobody's, here a process beside) is the one that counts. */
static void hb_commit_marks(void)
{
    struct env e;
    uint64_t session = 0, id = 0;
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_HB, 1 << 20, 8), 0))
        return;
    e.s.session = 7;
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 0); /* nothing recorded yet */
    CHECK_EQ_INT(w(&e, "k", "v"), 0);
    CHECK_EQ_INT(w(&e, "j", "v"), 0);
    CHECK_EQ_INT(env_commit(&e), 0);
    uint64_t last = e.next_id;
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1); /* commit mode too */
    CHECK(session == 7 && id == last);

    /* Died between its record and its commit: not committed. */
    CHECK_EQ_INT(w(&e, "k", "w"), 0);
    record_and_die(&e);
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1);
    CHECK(id == last);

    /* Again, and a writer beside commits that very transaction id. */
    CHECK_EQ_INT(w(&e, "k", "x"), 0);
    uint64_t dead_txn = (uint64_t)mdb_txn_id(e.s.wtxn);
    record_and_die(&e);
    pid_t pid = fork();
    if (pid == 0) {
        struct env c;
        memset(&c, 0, sizeof c);
        strcpy(c.dir, e.dir);
        int ok = env_open_cfg(&c, "db", FORMAT_HB, 1 << 20, 8, 0) == 0 && w(&c, "b", "1") == 0 &&
                 (uint64_t)mdb_txn_id(c.s.wtxn) == dead_txn && env_commit(&c) == 0;
        env_close_store(&c);
        _exit(ok ? 0 : 1);
    }
    int status;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(reads_as(&e, "b", "1"));
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1);
    CHECK(id == last); /* not the dead transaction's request */

    /* Round the ring of records more than once: the newest still counts,
     * another session's records are not ours, a broken record is none. */
    for (unsigned i = 0; i < MARK_SLOTS + 10; i++) {
        CHECK_EQ_INT(w(&e, "k", i % 2 ? "a" : "b"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
    }
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1);
    CHECK(session == 7 && id == e.next_id);
    e.s.session = 8;
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 0);
    e.s.session = 7;
    MDB_envinfo info;
    CHECK_EQ_INT(mdb_env_info(e.s.env, &info), 0);
    e.s.marks[info.me_last_txnid % MARK_SLOTS][2] ^= 1; /* as a writer killed half-way leaves it */
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 1);
    CHECK(id == e.next_id - 1); /* the commit before it */

    /* Made sparse (a copy of the directory may make holes of zeros):
     * opened again, every block is there, so no record needs one. */
    env_close_store(&e);
    char file[sizeof e.path + 32];
    snprintf(file, sizeof file, "%s/%s", e.path, MARKS_FILE);
    CHECK_EQ_INT(truncate(file, 0), 0);
    CHECK_EQ_INT(truncate(file, MARK_SLOTS * sizeof(mark_rec)), 0);
    struct stat st;
    CHECK(stat(file, &st) == 0 && st.st_blocks == 0);
    CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_HB, 1 << 20, 8, 0), 0);
    CHECK(e.s.marks != NULL);
    CHECK(stat(file, &st) == 0 && (uint64_t)st.st_blocks * 512 >= MARK_SLOTS * sizeof(mark_rec));

    /* A read-only port neither makes nor needs them. */
    env_close_store(&e);
    CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_AUTO, 1 << 20, 8, 1), 0);
    CHECK(e.s.marks == NULL);
    e.s.session = 7;
    CHECK_EQ_INT(store_last_request(&e.s, &session, &id), 0);
    env_close(&e);
}


/* ---- the children index ------------------------------------------------------ */

/* Lists <parent> both ways, from the index and by the walk of the keys,
 * with the same from, limit and direction: 1 when they agree. */
static int index_agrees(struct env *e, const uint8_t *parent, size_t pn, const uint8_t *from,
                        size_t fn, uint64_t limit, int desc, uint64_t *ops)
{
    static struct store_names a, b;
    struct nbuf x = {0}, y = {0};
    CHECK(e->s.idx_lists);
    int rc1 = list_call(e, parent, pn, from, fn, limit, desc, &a, ops);
    for (size_t i = 0; i < a.n; i++)
        nbuf_add(&x, a.v[i].p, a.v[i].len);
    e->s.idx_lists = 0;
    int rc2 = list_call(e, parent, pn, from, fn, limit, desc, &b, NULL);
    e->s.idx_lists = 1;
    for (size_t i = 0; i < b.n; i++)
        nbuf_add(&y, b.v[i].p, b.v[i].len);
    int ok = rc1 == 0 && rc2 == 0 && a.n == b.n && x.len == y.len &&
             (x.len == 0 || memcmp(x.b, y.b, x.len) == 0);
    if (!ok) {
        fprintf(stderr, "children index disagrees (rc %d/%d, %zu/%zu names): parent ", rc1, rc2,
                a.n, b.n);
        print_name(stderr, parent, pn);
        fprintf(stderr, " limit %llu %s\n", (unsigned long long)limit, desc ? "desc" : "asc");
    }
    free(x.b);
    free(y.b);
    return ok;
}

/* Random keys of up to four segments over a small alphabet, so that
 * subtrees nest, share prefixes and empty out again. */
static size_t index_key(uint8_t *k)
{
    static const char *const seg[] = {"a", "b", "a-", "a.b", "c0", "\xff"};
    size_t n = 0, segs = 1 + rnd(4);
    for (size_t i = 0; i < segs; i++) {
        const char *g = seg[rnd(6)];
        if (n)
            k[n++] = '/';
        memcpy(k + n, g, strlen(g));
        n += strlen(g);
    }
    return n;
}

/* Lists every prefix of every key of the last round, and a few others,
 * through the index and by the walk. */
static int index_check_all(struct env *e, uint8_t (*keys)[32], const size_t *kn, size_t nk)
{
    int ok = index_agrees(e, (const uint8_t *)"", 0, NULL, 0, 0, 0, NULL);
    for (size_t i = 0; ok && i < nk; i++)
        for (size_t cut = 0; ok && cut <= kn[i]; cut++) {
            if (cut < kn[i] && keys[i][cut] != '/')
                continue;
            int desc = (int)rnd(2);
            uint64_t limit = rnd(3) ? 0 : 1 + rnd(3);
            const char *from = rnd(3) ? NULL : rnd(2) ? "a-" : "b";
            ok = index_agrees(e, keys[i], cut, (const uint8_t *)from, from ? strlen(from) : 0,
                              limit, desc, NULL);
        }
    return ok;
}

static void children_index(void)
{
    struct env e;
    /* a store made without the index, which a later open builds */
    if (!CHECK_EQ_INT(env_open(&e, FORMAT_TAGGED, 1 << 24, 8), 0))
        return;
    CHECK(!e.s.has_idx && !e.s.idx_lists);
    enum { NK = 64 };
    uint8_t keys[NK][32];
    size_t kn[NK], nk = 0;
    for (size_t i = 0; i < NK; i++) {
        kn[nk] = index_key(keys[nk]);
        CHECK_EQ_INT(env_add(&e, W_WRITE, keys[nk], kn[nk], "v", 1), 0);
        nk++;
    }
    CHECK_EQ_INT(lnk(&e, "a", "l"), 0);
    for (int i = 0; i < 200; i++) { /* deep subtrees under g/c<N> */
        char k[32];
        snprintf(k, sizeof k, "g/c%d/d/%d", i % 10, i);
        CHECK_EQ_INT(w(&e, k, "v"), 0);
    }
    CHECK_EQ_INT(env_commit(&e), 0);
    env_close_store(&e);
    with_children_index = 1;
    if (!CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_TAGGED, 1 << 24, 8, 0), 0))
        goto out;
    CHECK(e.s.has_idx && e.s.idx_lists);
    CHECK(index_check_all(&e, keys, kn, nk));
    CHECK(index_agrees(&e, (const uint8_t *)"l", 1, NULL, 0, 0, 0, NULL)); /* through a link */
    for (int desc = 0; desc < 2; desc++) /* from "", which LMDB cannot seek */
        CHECK(index_agrees(&e, (const uint8_t *)"g", 1, (const uint8_t *)"", 0, 0, desc, NULL));
    /* a group of 10 children with 20 descendants each: one seek and a
     * step per child, where the walk seeks past each subtree */
    uint64_t ops = 0;
    CHECK(index_agrees(&e, (const uint8_t *)"g", 1, NULL, 0, 0, 0, &ops));
    CHECK_EQ_INT(ops, 12);
    CHECK(index_agrees(&e, (const uint8_t *)"g", 1, (const uint8_t *)"c5", 2, 3, 1, &ops));
    CHECK(ops <= 4);

    /* kept through random writes, groups, links, deletes and a reset,
     * committed in batches of a few */
    long rounds = 0;
    int ok = 1;
    for (int step = 0; ok && step < 3000; step++) {
        uint32_t what = rnd(10);
        size_t i = rnd(NK);
        if (what < 4) {
            kn[i] = index_key(keys[i]);
            ok = CHECK_EQ_INT(env_add(&e, W_WRITE, keys[i], kn[i], "v", 1), 0);
        } else if (what < 5) {
            kn[i] = index_key(keys[i]);
            ok = CHECK_EQ_INT(env_add(&e, W_GROUP, keys[i], kn[i], "", 0), 0);
        } else if (what < 9) {
            ok = CHECK_EQ_INT(env_add(&e, W_DELETE, keys[i], kn[i], "", 0), 0);
        } else if (rnd(40) == 0) {
            ok = CHECK_EQ_INT(env_add(&e, W_RESET, "", 0, "", 0), 0);
        } else {
            ok = CHECK_EQ_INT(lnk(&e, "b", "l"), 0);
        }
        if (ok && rnd(5) == 0) {
            ok = CHECK_EQ_INT(env_commit(&e), 0) && index_check_all(&e, keys, kn, NK);
            rounds++;
        }
    }
    fprintf(stderr, "children index: %ld rounds of random changes listed both ways\n", rounds);
    CHECK_EQ_INT(env_commit(&e), 0);
    env_close_store(&e);
    /* opened without asking: a store that has the index keeps it */
    with_children_index = 0;
    if (CHECK_EQ_INT(env_open_cfg(&e, "db", FORMAT_TAGGED, 1 << 24, 8, 0), 0)) {
        CHECK(e.s.has_idx && e.s.idx_lists);
        CHECK_EQ_INT(w(&e, "new/key/here", "v"), 0);
        CHECK_EQ_INT(env_commit(&e), 0);
        CHECK(index_check_all(&e, keys, kn, NK));
        CHECK(index_agrees(&e, (const uint8_t *)"new/key", 7, NULL, 0, 0, 0, NULL));
        env_close_store(&e);
    }
    /* built in a map its keys fill: the map grows for it, as for a write */
    with_children_index = 0;
    if (CHECK_EQ_INT(env_open_cfg(&e, "full", FORMAT_TAGGED, 1 << 20, 8, 0), 0)) {
        char k[32];
        for (int i = 0; i < 3000; i++) {
            snprintf(k, sizeof k, "f/%d/x", i);
            CHECK_EQ_INT(w(&e, k, "v"), 0);
        }
        CHECK_EQ_INT(env_commit(&e), 0);
        env_close_store(&e);
        with_children_index = 1;
        if (CHECK_EQ_INT(env_open_cfg(&e, "full", FORMAT_TAGGED, 32 << 10, 8, 0), 0)) {
            CHECK(e.s.idx_lists);
            CHECK(index_agrees(&e, (const uint8_t *)"f", 1, NULL, 0, 0, 0, &ops));
            CHECK_EQ_INT(ops, 3002);
        }
        env_close_store(&e);
    }
    /* hb_store_lmdb's format cannot have one */
    with_children_index = 1;
    CHECK_EQ_INT(env_open_cfg(&e, "hb", FORMAT_HB, 1 << 24, 8, 0), HL_EBADREQ);
    env_close_store(&e);
out:
    with_children_index = 0;
    env_close(&e);
}

int main(void)
{
    link_cache_bounds();
    open_close();
    write_read(FORMAT_TAGGED);
    write_read(FORMAT_HB);
    links(FORMAT_TAGGED);
    links(FORMAT_HB);
    link_cache_cases(FORMAT_TAGGED);
    link_cache_cases(FORMAT_HB);
    link_cache_model(FORMAT_TAGGED, 300);
    link_cache_model(FORMAT_HB, 300);
    list_model(FORMAT_TAGGED, 400);
    list_model(FORMAT_HB, 100);
    list_foreign(FORMAT_TAGGED, 300);
    list_foreign(FORMAT_HB, 100);
    list_paging(FORMAT_TAGGED, 20000);
    list_paging(FORMAT_HB, 20000);
    children_index();
    with_children_index = 1;
    list_model(FORMAT_TAGGED, 400);
    list_paging(FORMAT_TAGGED, 20000);
    with_children_index = 0;
    size_t map = smallest_map();
    CHECK(map > 0 && map <= 64 * 1024);
    fprintf(stderr, "smallest map store_open accepts: %zu bytes\n", map);
    if (map) {
        map_growth_batch(map);
        map_growth_dispatch(map);
        with_children_index = 1; /* the index's pages fill the map too */
        map_growth_batch(map);
        with_children_index = 0;
    }
    dispatch_basics();
    read_committed_batches();
    dispatch_truncation();
    dispatch_lying();
    dispatch_trailing_bytes();
    dispatch_long_paths();
    dispatch_too_large();
    dispatch_refused_first_write();
    last_request_async_only();
    hb_commit_marks();
    other_readers();
    return check_summary();
}
