/*
 * store.h - the data model of SPEC sections 2 and 3 on top of LMDB: paths,
 * values, groups and links, their on-disk formats, link resolution and
 * listing.  Knows nothing about frames or terms.
 *
 * Paths passed in are already normalised (path_normalize).  Reads take a
 * transaction from the caller (the pooled read transaction, or the open
 * write transaction); writes go into the store's one write transaction,
 * which batch.c opens, commits and replays.
 */
#ifndef HYPER_LMDB_STORE_H
#define HYPER_LMDB_STORE_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "link_cache.h"
#include "marks.h"
#include "path.h"
#include "txn_pool.h"

enum store_format { FORMAT_AUTO, FORMAT_TAGGED, FORMAT_HB };
enum store_durability { DURABILITY_COMMIT, DURABILITY_FSYNC, DURABILITY_ASYNC };

struct store_config {
    const char *dir;
    size_t map_size;
    unsigned max_readers;
    int read_ahead;
    int read_only;
    unsigned max_hops;
    enum store_format format;
    enum store_durability durability;
    size_t cache_slots;
    uint64_t session;
    int ours;                    /* a port of ours opened the directory before */
    int children_index;          /* build the children index when it is missing */
};

struct store {
    MDB_env *env;
    MDB_dbi dbi;                 /* where the keys live */
    enum store_format format;    /* never FORMAT_AUTO once open */
    enum store_durability durability;
    int read_only;
    unsigned max_hops;
    struct txn_pool pool;
    struct link_cache *cache;
    MDB_txn *wtxn;               /* open write transaction or NULL */
    int wtxn_links;              /* wtxn created, replaced or removed a link */
    uint64_t map_grows;
    uint64_t known_txnid;        /* the snapshot the link cache describes */
    size_t err_key_len;          /* the key length behind an HL_ETOOLONG */
    uint64_t list_ops;           /* cursor calls store_list made: its cost, for tests */
    MDB_dbi meta_dbi;            /* tagged format: our metadata */
    int has_meta;
    /* The children index (tagged format, when the store has one): every
     * parent's child names, kept apart from their subtrees, so that a list
     * is one seek and a step per child.  has_idx: writes keep it;
     * idx_lists: lists read it (once the handle is in the environment);
     * idx_new: the handle came with the open write transaction and goes
     * if it aborts; idx_absent_at: the last commit known to have left the
     * store without one (another process may build it later). */
    MDB_dbi idx_dbi;
    int has_idx, idx_lists, idx_new;
    uint64_t idx_absent_at;
    uint64_t session;            /* the server's, for store_note_last (0: none) */
    /* hb_store_lmdb format, writable: the commit records (marks.h) */
    mark_rec *marks;             /* NULL: none (not open, or failed to) */
    char *dir;                   /* to open them again if they failed to */
    /* Disk blocks reserved ahead of LMDB's pages (store_reserve) */
    int data_fd;                 /* data.mdb (LMDB's descriptor), -1: no reserving */
    size_t psize;                /* LMDB's page size */
    uint64_t reserved;           /* bytes of data.mdb known to have their blocks */
    uint64_t txn_need;           /* wtxn: bytes its pages may reach, at most */
    uint64_t txn_copies_left;    /* wtxn: pages in use it has not counted a copy of */
    /* Called now and then (every STORE_TICK_EVERY steps) during long
     * walks: lists, scans, matches, read_many.  NULL: none. */
    void (*tick)(void *ctx);
    void *tick_ctx;
    unsigned tick_steps;
};

#define STORE_TICK_EVERY 8

/* One step of a long walk (struct store, tick). */
static inline void store_tick(struct store *s)
{
    if (s->tick && ++s->tick_steps % STORE_TICK_EVERY == 0)
        s->tick(s->tick_ctx);
}

/* What a key holds. */
enum store_kind { KIND_NONE, KIND_VALUE, KIND_LINK, KIND_GROUP };
enum store_type { TYPE_NOT_FOUND, TYPE_SIMPLE, TYPE_COMPOSITE };

/* A child name pointing into LMDB's pages: valid while the transaction
 * that produced it is alive. */
struct store_name {
    const uint8_t *p;
    size_t len;
};

struct store_names {
    struct store_name *v;
    size_t n, cap;
};

/* Appends a name (not copied); 0 or HL_ENOMEM. */
int store_names_push(struct store_names *names, const uint8_t *p, size_t len);

/* Opens (creating if needed, unless read-only) the environment in
 * cfg->dir, detects or creates the format, and runs mdb_reader_check.
 * On failure returns an error code and writes a short reason into err. */
int store_open(struct store *s, const struct store_config *cfg, char *err, size_t errlen);
void store_close(struct store *s);

/* With MDB_WRITEMAP, LMDB writes a page that is new to the file straight
 * into the map of data.mdb, a sparse file: on a full filesystem the page
 * fault that should give it a block raises SIGBUS and kills the port
 * where a write(2) would have said ENOSPC.  So the blocks are reserved
 * (fallocate) ahead of the pages a write transaction may take: the file
 * in use when it began (store_reserve_begin, when it begins), plus a
 * bound on what each change adds (store_reserve, before every put,
 * delete and drop of the store's own).  A change that cannot have them
 * is refused with HL_ENOSPC before it touches a page; what the
 * transaction holds already stays safe.  store_reserve answers 0 when
 * the filesystem cannot reserve (no fallocate): nothing is checked then,
 * as before. */
void store_reserve_begin(struct store *s);
int store_reserve(struct store *s, size_t bytes);

/* Sets *txn to the pooled read transaction on the latest snapshot.  A
 * snapshot committed by another process (a CLI writing the same
 * directory) drops the link cache, whose entries may no longer hold; a
 * map that process grew past ours is adopted (store_adopt_map). */
int store_read_txn(struct store *s, MDB_txn **txn);

/* Resolves every link at every prefix and at the whole of <path, len>
 * into out (PATH_MAX_WORK bytes).  Returns 0, HL_ELOOP (loop, too many
 * hops, a path longer than PATH_MAX_WORK as given or as it grew) or an
 * LMDB error.  The cache is used when txn sees the committed snapshot the
 * cache describes. */
int store_resolve(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len, uint8_t *out,
                  size_t *out_len);

/* read: 0 with <*val, *vlen> pointing into the map (valid while txn
 * lives), HL_ENOTFOUND for a miss, a group, a loop; or an LMDB error. */
int store_read(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               const uint8_t **val, size_t *vlen);
int store_type(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               enum store_type *type);

/* Immediate children of the resolved path, sorted (asc or desc), unique,
 * starting at `from` (inclusive, may be NULL; any binary: one holding a
 * '/' or longer than any key works too) and at most `limit` names (0 =
 * all).  Cost never follows the number of descendants.  With a children
 * index (s->idx_lists): one seek, then a step per name, in order.  Without,
 * with no limit: one cursor step or seek per child (a child's subtree is
 * skipped with one seek), then a sort.  With a limit: O(limit * (1 + cuts)) cursor calls,
 * whatever the number of children, where cuts are the bytes below '/' in
 * the names met, or up to '/' in `from` (a child "c" is met out of order,
 * its subtree "c/..." sorting after "c-1"; see store.c).  Each call adds
 * its cursor calls to s->list_ops.  The names point into the map (valid
 * while txn lives); names->v is reused across calls; the caller frees it. */
int store_list(struct store *s, MDB_txn *txn, const uint8_t *path, size_t len,
               const uint8_t *from, size_t from_len, uint64_t limit, int desc,
               struct store_names *names);

/* One stored key as it is: what scan and match see. */
struct store_entry {
    const uint8_t *key;
    size_t klen;
    enum store_kind kind;
    const uint8_t *data; /* the value, or the link's target; empty for a group */
    size_t dlen;
};

/* Calls fn for each stored key from `from` (inclusive, NULL = the first)
 * in key order, at most `limit` keys (0 = all), without following links.
 * Stops early when fn returns non-zero.  Sets *next to the key after the
 * last one given (pointing into the map), or NULL at the end.  For tools
 * (dump, check, conversion), not for the data model. */
int store_scan(struct store *s, MDB_txn *txn, const uint8_t *from, size_t from_len,
               uint64_t limit, int (*fn)(void *ctx, const struct store_entry *e), void *ctx,
               const uint8_t **next, size_t *next_len);

/* Finds every ID such that, for each i, the key ID/names[i] holds what
 * kinds[i] and targets[i] ask for: a link whose target is targets[i]
 * (normalised, KIND_LINK), a value of exactly those bytes (KIND_VALUE) or
 * a group marker (KIND_GROUP).  One pass over the keys finds the IDs that
 * satisfy the first pair, then one get per remaining pair.  Calls fn(ctx,
 * id, id_len) for each (id points into the map). */
int store_match(struct store *s, MDB_txn *txn, size_t n, const uint8_t *const *names,
                const size_t *name_lens, const enum store_kind *kinds,
                const uint8_t *const *targets, const size_t *target_lens,
                int (*fn)(void *ctx, const uint8_t *id, size_t id_len), void *ctx);

/* What a match pattern given as stored bytes asks for, as HyperBEAM's
 * cache writes them: in hb_store_lmdb's format the bytes read as that
 * format reads a value ("link:T" a link, "group" a group); in tagged format
 * "link:T" is a link to T and anything else a value of those bytes.  The
 * payload (the target, or the value's bytes) in <*data, *dlen>. */
enum store_kind store_pattern_kind(const struct store *s, const uint8_t *bytes, size_t len,
                                   const uint8_t **data, size_t *dlen);

/* Write operations, inside s->wtxn (batch.c opens it).  Each one checks
 * its arguments before it changes anything: HL_EEMPTY, HL_ETOOLONG,
 * HL_ERDONLY, HL_ELOOP (the parent path does not resolve) leave the
 * transaction untouched; an LMDB error may leave it half-changed, and the
 * caller must abort it. */
int store_write(struct store *s, const uint8_t *path, size_t len, const uint8_t *val, size_t vlen);
int store_make_group(struct store *s, const uint8_t *path, size_t len);
int store_make_link(struct store *s, const uint8_t *existing, size_t elen, const uint8_t *path,
                    size_t len);
int store_delete(struct store *s, const uint8_t *path, size_t len);
/* Empties the store inside s->wtxn (the format metadata stays). */
int store_reset(struct store *s);

/* Called by batch.c once s->wtxn has begun, and once it has committed
 * (committed = 1, with its id) or been aborted (0): a store without a
 * children index looks for one that another process (a port opened with
 * children-index beside a command line writing with exclusive false)
 * built since, so that its own writes keep it too. */
int store_write_begun(struct store *s);
void store_write_ended(struct store *s, int committed, uint64_t id);

/* Checks a normalised path can be a key: HL_EEMPTY, HL_ETOOLONG or 0. */
int store_check_key(size_t len);

/* Records that the request <id> of the store's session is the last one
 * s->wtxn applies, so that after a crash the server knows which of the
 * writes it had not heard back about were committed (and must not be
 * applied twice: a write replayed after a link it made lands elsewhere).
 * Tagged format, async mode, with a session: inside the transaction.
 * hb_store_lmdb format: in the commit records beside the store (marks.h),
 * in every mode and without a session too (a record of nobody's, over
 * that of a dead port's transaction that never committed).  A no-op
 * otherwise.  Called just before the commit. */
int store_note_last(struct store *s, uint64_t id);
/* What store_note_last recorded last for the store's session, from the
 * committed store: 1 and <*session, *id>, or 0 when nothing is recorded
 * (tagged format: the last record, whatever its session). */
int store_last_request(struct store *s, uint64_t *session, uint64_t *id);
/* HL_ETOOLONG for a path (as given, or a link's target) longer than
 * PATH_MAX_WORK, the most resolution works on; else 0. */
int store_check_path(size_t len);

/* Doubles the map size.  No transaction may be open: the caller aborts
 * the write transaction and closes the read pool first. */
int store_grow_map(struct store *s);

/* Takes the map size another process grew the environment to, after
 * mdb_txn_begin answered MDB_MAP_RESIZED (until then every transaction
 * this process begins fails so).  Closes the read pool itself; the write
 * transaction must not be open.  Returns 0 (the caller begins again once)
 * or an LMDB error. */
int store_adopt_map(struct store *s);

struct store_info {
    uint64_t entries, map_size, map_used, last_txnid;
    unsigned max_readers, readers_used;
};
int store_info(struct store *s, MDB_txn *txn, struct store_info *out);

/* The reader slots of the environment that other processes, alive, hold
 * (readers: hyper_lmdb:open_reader/1; the command line): they read beside
 * this port, and pin the pages their snapshots see.  -1: no telling. */
int store_other_readers(struct store *s);

const char *store_format_name(enum store_format f);
const char *store_durability_name(enum store_durability d);

#endif
