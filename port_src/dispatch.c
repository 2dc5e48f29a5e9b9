/* dispatch.c - request decoding, execution and reply encoding (dispatch.h). */
#include "dispatch.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "frame.h"
#include "protocol.h"

enum op_code {
    OP_READ, OP_READ_MANY, OP_TYPE, OP_RESOLVE, OP_LIST, OP_STATS, OP_SYNC, OP_PING, OP_FAULT,
    OP_SCAN, OP_MATCH, OP_MATCH_VALUES,
    /* writes: everything from OP_WRITE on goes through the batch */
    OP_WRITE, OP_MAKE_GROUP, OP_MAKE_LINK, OP_DELETE, OP_WRITE_MANY, OP_RESET,
};

static const struct op {
    const char *name;
    enum op_code code;
    uint32_t arity; /* of the whole request tuple, Id and Op included */
} OPS[] = {
    {"read", OP_READ, 3},           {"read_many", OP_READ_MANY, 3},
    {"type", OP_TYPE, 3},           {"resolve", OP_RESOLVE, 3},
    {"list", OP_LIST, 6},           {"stats", OP_STATS, 2},
    {"sync", OP_SYNC, 2},           {"ping", OP_PING, 2},
    {"fault", OP_FAULT, 3},         {"scan", OP_SCAN, 4},
    {"match", OP_MATCH, 3},         {"match_values", OP_MATCH_VALUES, 3},
    {"write", OP_WRITE, 4},         {"make_group", OP_MAKE_GROUP, 3},
    {"make_link", OP_MAKE_LINK, 4}, {"delete", OP_DELETE, 3},
    {"write_many", OP_WRITE_MANY, 3}, {"reset", OP_RESET, 2},
};

static int is_write(enum op_code c) { return c >= OP_WRITE; }

static int bad(struct dispatch *d, const char *what)
{
    d->bad_what = what;
    return HL_EBADREQ;
}

/* ---- request decoding ------------------------------------------------- */

/* Decodes {Id, Op, ...}: the header every request shares.  On failure *id
 * holds whatever could be read (0 if not even the Id). */
static int decode_header(struct dispatch *d, struct codec_dec *dec, uint64_t *id,
                         const struct op **op)
{
    uint32_t arity;
    const char *name;
    size_t nlen;
    *id = 0;
    if (codec_dec_version(dec) || codec_dec_tuple(dec, &arity) || arity < 2)
        return bad(d, "not_a_request_tuple");
    if (codec_dec_u64(dec, id))
        return bad(d, "bad_id");
    if (codec_dec_atom(dec, &name, &nlen))
        return bad(d, "bad_op");
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strlen(OPS[i].name) == nlen && memcmp(OPS[i].name, name, nlen) == 0) {
            if (OPS[i].arity != arity)
                return bad(d, "bad_arity");
            *op = &OPS[i];
            return 0;
        }
    return bad(d, "unknown_op");
}

/* Decodes a binary path and normalises it into sc: <*p, *len>. */
static int decode_path(struct dispatch *d, struct codec_dec *dec, struct scratch *sc,
                       const uint8_t **p, size_t *len)
{
    const uint8_t *raw;
    size_t rlen;
    if (codec_dec_binary(dec, &raw, &rlen))
        return bad(d, "bad_path");
    if (rlen > sc->cap) {
        uint8_t *np = realloc(sc->p, rlen);
        if (!np)
            return HL_ENOMEM;
        sc->p = np;
        sc->cap = rlen;
    }
    *len = path_normalize(raw, rlen, sc->p);
    *p = sc->p;
    return 0;
}

/* A path longer than any resolution works on (PATH_MAX_WORK) is
 * key_too_long, remembering the length for the reply.  A path longer than
 * a key (511) is not: a link at a prefix may shorten it, so only the key
 * it resolves to is held to LMDB's limit (by the store, as it writes; a
 * read of a longer key is not_found). */
static int check_path(struct dispatch *d, size_t len)
{
    int rc = store_check_path(len);
    if (rc == HL_ETOOLONG)
        d->store->err_key_len = len;
    return rc;
}

/* A path that names a key to write: not empty, not beyond PATH_MAX_WORK. */
static int check_write_path(struct dispatch *d, size_t len)
{
    return len == 0 ? HL_EEMPTY : check_path(d, len);
}

/* A path to read: the empty path is the root, and any length will do.  A
 * path that names no key a write could make (longer than a key once
 * resolved, or than resolution works on) reads as not_found, types as
 * not_found, lists as empty and resolves to itself, as a miss: the classic
 * hb_store callbacks answer {ok, Bin} | not_found, and HyperBEAM's cache
 * has no clause for an error there. */
static int decode_read_path(struct dispatch *d, struct codec_dec *dec, const uint8_t **p,
                            size_t *len)
{
    return decode_path(d, dec, &d->path_a, p, len);
}

/* ---- replies ---------------------------------------------------------- */

static size_t reply_begin(struct dispatch *d, uint64_t id)
{
    size_t start = frame_begin(&d->out);
    codec_enc_version(&d->out);
    codec_enc_tuple(&d->out, 2);
    codec_enc_u64_fixed(&d->out, id);
    return start;
}

static void encode_reason(struct dispatch *d, int rc)
{
    struct codec_enc *o = &d->out;
    switch (rc) {
    case HL_EEMPTY:
        codec_enc_atom(o, "empty_path");
        break;
    case HL_ETOOLONG:
        codec_enc_tuple(o, 2);
        codec_enc_atom(o, "key_too_long");
        codec_enc_u64(o, d->store->err_key_len);
        break;
    case HL_ERDONLY:
        codec_enc_atom(o, "read_only");
        break;
    case HL_ELOOP:
        codec_enc_atom(o, "link_loop");
        break;
    case HL_ENOMEM:
        codec_enc_atom(o, "nomem");
        break;
    case HL_ENOSPC:
        codec_enc_atom(o, "disk_full");
        break;
    case HL_EBADTERM:
    case HL_EBADREQ:
        codec_enc_tuple(o, 2);
        codec_enc_atom(o, "bad_request");
        codec_enc_atom(o, d->bad_what ? d->bad_what : "malformed");
        break;
    default: {
        const char *text = mdb_strerror(rc);
        codec_enc_tuple(o, 3);
        codec_enc_atom(o, "lmdb");
        codec_enc_i64(o, rc);
        codec_enc_binary(o, text, strlen(text));
    }
    }
}

/* Finishes a reply.  One that could not be encoded (out of memory) is
 * answered {Id, {error, nomem}} instead, and one longer than d->max_reply
 * (a read_many or scan of large values: the frame's 32-bit length cannot
 * say more) {Id, {error, {too_large, Bytes}}}, so the caller still hears
 * back and every later frame stays in step. */
static void reply_end(struct dispatch *d, size_t start, uint64_t id)
{
    size_t n = 0;
    int rc = d->out.err;
    if (!rc) {
        n = d->out.len - start - 4;
        rc = n > d->max_reply ? HL_ETOOBIG : frame_end(&d->out, start);
    }
    if (!rc)
        return;
    frame_cancel(&d->out, start);
    start = reply_begin(d, id);
    codec_enc_tuple(&d->out, 2);
    codec_enc_atom(&d->out, "error");
    if (rc == HL_ETOOBIG) {
        codec_enc_tuple(&d->out, 2);
        codec_enc_atom(&d->out, "too_large");
        codec_enc_u64(&d->out, n);
    } else {
        codec_enc_atom(&d->out, "nomem");
    }
    if (frame_end(&d->out, start)) {
        /* Not even that fitted: no frame may be left half made, and a
         * request left unanswered would stall its caller, so the port
         * exits (main.c) and the server settles the request as one in
         * flight. */
        frame_cancel(&d->out, start);
        d->fatal = EXIT_NOMEM;
    }
}

static void reply_error(struct dispatch *d, uint64_t id, int rc)
{
    if (rc == HL_EBADREQ || rc == HL_EBADTERM)
        d->bad_requests++;
    if (rc == MDB_PANIC) {
        /* The environment is gone.  No answer: the port exits (main.c)
         * with this request unanswered, so the server settles it as one
         * in flight (a read retried, an async write replayed into the
         * next port, a write of unknown outcome answered port_exit). */
        d->fatal = EXIT_LMDB;
        return;
    }
    size_t start = reply_begin(d, id);
    codec_enc_tuple(&d->out, 2);
    codec_enc_atom(&d->out, "error");
    encode_reason(d, rc);
    reply_end(d, start, id);
    d->bad_what = NULL;
}

static void reply_atom(struct dispatch *d, uint64_t id, const char *atom)
{
    size_t start = reply_begin(d, id);
    codec_enc_atom(&d->out, atom);
    reply_end(d, start, id);
}

/* ---- reads ------------------------------------------------------------ */

/* Raw bytes inside a packed binary (do_read_many). */
static void put_u8(struct codec_enc *o, uint8_t b) { codec_enc_raw(o, &b, 1); }

/* put_len and patch_len write 32 bits of a length that may be longer in a
 * read_many of huge values; each such length lies inside the reply, so the
 * reply is longer still and reply_end refuses it whole (too_large). */
static void put_len(struct codec_enc *o, size_t n)
{
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    codec_enc_raw(o, b, 4);
}

/* Fills in the 4-byte length at `at` with the bytes written after it. */
static void patch_len(struct codec_enc *o, size_t at)
{
    if (o->err)
        return;
    size_t n = o->len - at - 4;
    uint8_t *b = o->buf + at;
    b[0] = (uint8_t)(n >> 24);
    b[1] = (uint8_t)(n >> 16);
    b[2] = (uint8_t)(n >> 8);
    b[3] = (uint8_t)n;
}

/* Encodes one read result ({ok, V} | not_found | {error, R}). */
static void encode_read(struct dispatch *d, MDB_txn *txn, const uint8_t *p, size_t len, int rc)
{
    const uint8_t *val;
    size_t vlen;
    if (rc == 0)
        rc = store_read(d->store, txn, p, len, &val, &vlen);
    if (rc == 0) {
        codec_enc_tuple(&d->out, 2);
        codec_enc_atom(&d->out, "ok");
        codec_enc_binary(&d->out, val, vlen);
    } else if (rc == HL_ENOTFOUND) {
        codec_enc_atom(&d->out, "not_found");
    } else {
        codec_enc_tuple(&d->out, 2);
        codec_enc_atom(&d->out, "error");
        encode_reason(d, rc);
    }
}

static int do_read_many(struct dispatch *d, struct codec_dec *dec, MDB_txn *txn, uint64_t id)
{
    uint32_t n;
    if (codec_dec_list(dec, &n))
        return bad(d, "bad_path_list");
    /* Check the whole request before answering any of it. */
    size_t first = dec->pos;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *raw;
        size_t rlen;
        if (codec_dec_binary(dec, &raw, &rlen))
            return bad(d, "bad_path");
    }
    if (n && codec_dec_list_end(dec))
        return bad(d, "bad_path_list");
    dec->pos = first;
    /* The answer is one binary, not a list of terms: decoding a list of n
     * binaries costs the caller an allocation per value, while the packed
     * form splits into sub-binaries by pattern matching (protocol.h). */
    size_t start = reply_begin(d, id);
    codec_enc_tuple(&d->out, 2);
    codec_enc_atom(&d->out, "packed");
    size_t bin = d->out.len;
    uint8_t *head = codec_enc_reserve(&d->out, 5);
    if (head)
        d->out.len += 5;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p, *val;
        size_t len, vlen;
        store_tick(d->store);
        int rc = decode_read_path(d, dec, &p, &len);
        if (rc == 0)
            rc = store_read(d->store, txn, p, len, &val, &vlen);
        if (rc == HL_ENOTFOUND) {
            put_u8(&d->out, 0);
        } else if (rc == 0) {
            put_u8(&d->out, 1);
            put_len(&d->out, vlen);
            codec_enc_raw(&d->out, val, vlen);
        } else {
            /* an error: its reason as a term of its own */
            put_u8(&d->out, 2);
            size_t at = d->out.len;
            put_len(&d->out, 0);
            codec_enc_version(&d->out);
            encode_reason(d, rc);
            patch_len(&d->out, at);
        }
    }
    if (!d->out.err) {
        d->out.buf[bin] = 109; /* BINARY_EXT */
        patch_len(&d->out, bin + 1);
    }
    reply_end(d, start, id);
    return 0;
}

/* Answers {ok, [Name]} with the names collected in d->names. */
static void reply_names(struct dispatch *d, uint64_t id)
{
    size_t start = reply_begin(d, id);
    codec_enc_tuple(&d->out, 2);
    codec_enc_atom(&d->out, "ok");
    if (d->names.n)
        codec_enc_list(&d->out, (uint32_t)d->names.n);
    for (size_t i = 0; i < d->names.n; i++)
        codec_enc_binary(&d->out, d->names.v[i].p, d->names.v[i].len);
    codec_enc_nil(&d->out);
    reply_end(d, start, id);
}

static int do_list(struct dispatch *d, struct codec_dec *dec, MDB_txn *txn, uint64_t id)
{
    const uint8_t *p, *from = NULL;
    size_t len, from_len = 0;
    uint64_t limit;
    int rc = decode_path(d, dec, &d->path_a, &p, &len);
    if (rc)
        return rc;
    if (!codec_dec_is_atom(dec, "undefined") && codec_dec_binary(dec, &from, &from_len))
        return bad(d, "bad_from");
    if (codec_dec_u64(dec, &limit))
        return bad(d, "bad_limit");
    int desc = codec_dec_is_atom(dec, "desc");
    if (!desc && !codec_dec_is_atom(dec, "asc"))
        return bad(d, "bad_direction");
    if ((rc = store_list(d->store, txn, p, len, from, from_len, limit, desc, &d->names)))
        return rc;
    reply_names(d, id);
    return 0;
}

/* Collects scanned entries (pointing into the map) for encoding. */
struct entries {
    struct store_entry *v;
    size_t n, cap;
    int err;
};

static int collect_entry(void *ctx, const struct store_entry *e)
{
    struct entries *es = ctx;
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 256;
        struct store_entry *v = realloc(es->v, cap * sizeof *v);
        if (!v) {
            es->err = HL_ENOMEM;
            return 1;
        }
        es->v = v;
        es->cap = cap;
    }
    es->v[es->n++] = *e;
    return 0;
}

static int do_scan(struct dispatch *d, struct codec_dec *dec, MDB_txn *txn, uint64_t id)
{
    const uint8_t *from = NULL, *next;
    size_t from_len = 0, next_len;
    uint64_t limit;
    if (!codec_dec_is_atom(dec, "undefined") && codec_dec_binary(dec, &from, &from_len))
        return bad(d, "bad_from");
    if (codec_dec_u64(dec, &limit))
        return bad(d, "bad_limit");
    struct entries es = {0};
    int rc = store_scan(d->store, txn, from, from_len, limit, collect_entry, &es, &next,
                        &next_len);
    if (!rc)
        rc = es.err;
    if (rc) {
        free(es.v);
        return rc;
    }
    static const char *const kinds[] = {"none", "value", "link", "group"};
    size_t start = reply_begin(d, id);
    codec_enc_tuple(&d->out, 3);
    codec_enc_atom(&d->out, "ok");
    if (es.n)
        codec_enc_list(&d->out, (uint32_t)es.n);
    for (size_t i = 0; i < es.n; i++) {
        codec_enc_tuple(&d->out, 3);
        codec_enc_binary(&d->out, es.v[i].key, es.v[i].klen);
        codec_enc_atom(&d->out, kinds[es.v[i].kind]);
        codec_enc_binary(&d->out, es.v[i].data, es.v[i].dlen);
    }
    codec_enc_nil(&d->out);
    if (next)
        codec_enc_binary(&d->out, next, next_len);
    else
        codec_enc_atom(&d->out, "undefined");
    reply_end(d, start, id);
    free(es.v);
    return 0;
}

static int collect_name(void *ctx, const uint8_t *p, size_t len)
{
    return store_names_push(ctx, p, len) != 0;
}

/* {Id, match, [{Name, Target}]}: names are single segments, targets
 * paths; both normalised into one buffer owned here. */
/* {match, [{Name, Target}]}: IDs whose every ID/Name is a link to Target.
 * {match_values, [{Name, Bytes}]} (values): every ID/Name holds Bytes as
 * HyperBEAM's cache writes a field, "link:T" for a link (see
 * store_pattern_kind). */
static int do_match(struct dispatch *d, struct codec_dec *dec, MDB_txn *txn, uint64_t id,
                    int values)
{
    uint32_t n, arity;
    int rc = 0;
    if (codec_dec_list(dec, &n) || n == 0)
        return bad(d, "bad_match_list");
    const uint8_t **names = calloc(n, sizeof *names), **targets = calloc(n, sizeof *targets);
    size_t *nlens = calloc(n, sizeof *nlens), *tlens = calloc(n, sizeof *tlens);
    enum store_kind *kinds = calloc(n, sizeof *kinds);
    uint8_t *buf = malloc(dec->len - dec->pos + 1);
    size_t used = 0;
    if (!names || !targets || !nlens || !tlens || !kinds || !buf) {
        rc = HL_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *raw;
        size_t rlen;
        if (codec_dec_tuple(dec, &arity) || arity != 2 || codec_dec_binary(dec, &raw, &rlen)) {
            rc = bad(d, "bad_match_pair");
            goto out;
        }
        names[i] = buf + used;
        nlens[i] = path_normalize(raw, rlen, buf + used);
        used += nlens[i];
        if (codec_dec_binary(dec, &raw, &rlen)) {
            rc = bad(d, "bad_match_pair");
            goto out;
        }
        kinds[i] = KIND_LINK;
        if (values)
            kinds[i] = store_pattern_kind(d->store, raw, rlen, &raw, &rlen);
        if (kinds[i] == KIND_LINK) {
            targets[i] = buf + used;
            tlens[i] = path_normalize(raw, rlen, buf + used);
            used += tlens[i];
        } else { /* a value's bytes as they are (they lie in the frame) */
            targets[i] = raw;
            tlens[i] = rlen;
        }
        if (nlens[i] == 0 || memchr(names[i], '/', nlens[i]) ||
            (kinds[i] == KIND_LINK && tlens[i] == 0)) {
            rc = bad(d, "bad_match_pair");
            goto out;
        }
    }
    if (codec_dec_list_end(dec)) {
        rc = bad(d, "bad_match_list");
        goto out;
    }
    d->names.n = 0;
    if ((rc = store_match(d->store, txn, n, names, nlens, kinds, targets, tlens, collect_name,
                          &d->names)))
        goto out;
    reply_names(d, id);
out:
    free(names);
    free(targets);
    free(nlens);
    free(tlens);
    free(kinds);
    free(buf);
    return rc;
}

/* One {Key, Value} of the stats list, counted in *n. */
static void stat_u64(struct codec_enc *o, uint32_t *n, const char *key, uint64_t v)
{
    ++*n;
    codec_enc_tuple(o, 2);
    codec_enc_atom(o, key);
    codec_enc_u64(o, v);
}

static void stat_atom(struct codec_enc *o, uint32_t *n, const char *key, const char *v)
{
    ++*n;
    codec_enc_tuple(o, 2);
    codec_enc_atom(o, key);
    codec_enc_atom(o, v);
}

static int do_stats(struct dispatch *d, MDB_txn *txn, uint64_t id)
{
    struct store *s = d->store;
    struct store_info info;
    struct link_cache_stats cs;
    int rc = store_info(s, txn, &info);
    if (rc)
        return rc;
    link_cache_stats(s->cache, &cs);
    struct codec_enc *o = &d->out;
    size_t start = reply_begin(d, id);
    size_t head = o->len; /* the list's count, written once it is known */
    uint32_t n = 0;
    codec_enc_list(o, 1);
    stat_u64(o, &n, "entries", info.entries);
    stat_u64(o, &n, "map_size", info.map_size);
    stat_u64(o, &n, "map_used", info.map_used);
    stat_u64(o, &n, "map_grows", s->map_grows);
    stat_u64(o, &n, "last_txnid", info.last_txnid);
    stat_u64(o, &n, "max_readers", info.max_readers);
    stat_u64(o, &n, "readers_used", info.readers_used);
    stat_atom(o, &n, "format", store_format_name(s->format));
    stat_atom(o, &n, "durability", store_durability_name(s->durability));
    stat_atom(o, &n, "read_only", s->read_only ? "true" : "false");
    stat_atom(o, &n, "children_index", s->has_idx ? "true" : "false");
    stat_u64(o, &n, "max_link_hops", s->max_hops);
    stat_u64(o, &n, "commits", d->batch.commits);
    stat_u64(o, &n, "batched_writes", d->batch.writes);
    stat_u64(o, &n, "max_batch", d->batch.max_size);
    stat_u64(o, &n, "batch_replays", d->batch.replays);
    stat_u64(o, &n, "fsyncs", d->batch.syncs);
    stat_u64(o, &n, "commit_us", d->batch.commit_us);
    stat_u64(o, &n, "background_syncs", d->background_syncs);
    stat_u64(o, &n, "cache_hits", cs.hits);
    stat_u64(o, &n, "cache_misses", cs.misses);
    stat_u64(o, &n, "cache_invalidations", cs.invalidations);
    stat_u64(o, &n, "cache_slots", cs.slots);
    stat_u64(o, &n, "txn_renewals", s->pool.renewals);
    stat_u64(o, &n, "requests", d->requests);
    stat_u64(o, &n, "bad_requests", d->bad_requests);
    stat_u64(o, &n, "input_chunks", d->input_chunks);
    stat_u64(o, &n, "input_waits", d->input_waits);
    stat_u64(o, &n, "wake_frames", d->wake_frames);
    stat_u64(o, &n, "spin_misses", d->spin_misses);
    stat_u64(o, &n, "busy_waits", d->busy_waits);
    stat_u64(o, &n, "busy_spins", d->busy_spins);
    stat_u64(o, &n, "protocol_version", PROTOCOL_VERSION);
    codec_enc_nil(o);
    codec_enc_list_count(o, head, n);
    reply_end(d, start, id);
    return 0;
}

/* Serves a request that is not a write.  Returns 0 once it has replied,
 * or an error for the caller to answer with. */
static int serve_read(struct dispatch *d, const struct op *op, struct codec_dec *dec, uint64_t id)
{
    struct store *s = d->store;
    MDB_txn *txn;
    const uint8_t *p;
    size_t len;
    int rc;
    if (op->code == OP_PING) {
        reply_atom(d, id, "pong");
        return 0;
    }
    if (op->code == OP_FAULT) {
        static const char *const points[] = {"crash_before_commit", "crash_after_commit",
                                             "crash_mid_reply", "hang"};
        if (!d->faults_enabled)
            return bad(d, "fault_injection_disabled");
        for (int i = 0; i < 4; i++)
            if (codec_dec_is_atom(dec, points[i])) {
                d->fault_next = FAULT_BEFORE_COMMIT + i;
                reply_atom(d, id, "ok");
                return 0;
            }
        return bad(d, "bad_fault");
    }
    if (op->code == OP_SYNC) {
        if (!s->read_only && (rc = mdb_env_sync(s->env, 1)))
            return rc;
        reply_atom(d, id, "ok");
        return 0;
    }
    if ((rc = store_read_txn(s, &txn)))
        return rc;
    switch (op->code) {
    case OP_READ: {
        if ((rc = decode_read_path(d, dec, &p, &len)))
            return rc;
        size_t start = reply_begin(d, id);
        encode_read(d, txn, p, len, 0);
        reply_end(d, start, id);
        return 0;
    }
    case OP_READ_MANY:
        return do_read_many(d, dec, txn, id);
    case OP_TYPE: {
        enum store_type t;
        if ((rc = decode_read_path(d, dec, &p, &len)) ||
            (rc = store_type(s, txn, p, len, &t)))
            return rc;
        reply_atom(d, id,
                   t == TYPE_SIMPLE ? "simple" : t == TYPE_COMPOSITE ? "composite" : "not_found");
        return 0;
    }
    case OP_RESOLVE: {
        uint8_t out[PATH_MAX_WORK];
        size_t olen;
        if ((rc = decode_read_path(d, dec, &p, &len)))
            return rc;
        rc = store_resolve(s, txn, p, len, out, &olen);
        if (rc && rc != HL_ELOOP)
            return rc;
        /* unresolvable (a loop, or too long to work on): the path as given */
        size_t start = reply_begin(d, id);
        codec_enc_binary(&d->out, rc ? p : out, rc ? len : olen);
        reply_end(d, start, id);
        return 0;
    }
    case OP_LIST:
        return do_list(d, dec, txn, id);
    case OP_STATS:
        return do_stats(d, txn, id);
    case OP_SCAN:
        return do_scan(d, dec, txn, id);
    case OP_MATCH:
    case OP_MATCH_VALUES:
        return do_match(d, dec, txn, id, op->code == OP_MATCH_VALUES);
    default:
        return bad(d, "unknown_op");
    }
}

/* ---- writes ----------------------------------------------------------- */

/* Decodes one {write, P, V} | {make_group, P} | {make_link, E, N} |
 * {delete, P} of a write_many, and applies it when `apply` is set (else
 * only checks it). */
static int many_op(struct dispatch *d, struct codec_dec *dec, int apply)
{
    uint32_t arity;
    const uint8_t *p, *e, *v;
    size_t len, elen, vlen;
    int rc;
    if (codec_dec_tuple(dec, &arity) || arity < 2)
        return bad(d, "bad_write_op");
    if (arity == 3 && codec_dec_is_atom(dec, "write")) {
        if ((rc = decode_path(d, dec, &d->path_a, &p, &len)))
            return rc;
        if (codec_dec_binary(dec, &v, &vlen))
            return bad(d, "bad_value");
        if (!apply)
            return check_write_path(d, len);
        return store_write(d->store, p, len, v, vlen);
    }
    if (arity == 3 && codec_dec_is_atom(dec, "make_link")) {
        if ((rc = decode_path(d, dec, &d->path_b, &e, &elen)) ||
            (rc = decode_path(d, dec, &d->path_a, &p, &len)))
            return rc;
        if (!apply)
            return elen == 0 ? HL_EEMPTY : (rc = check_path(d, elen)) ? rc : check_write_path(d, len);
        return store_make_link(d->store, e, elen, p, len);
    }
    int group = 0;
    if (arity == 2 && ((group = codec_dec_is_atom(dec, "make_group")) ||
                       codec_dec_is_atom(dec, "delete"))) {
        if ((rc = decode_path(d, dec, &d->path_a, &p, &len)))
            return rc;
        if (!apply)
            return check_write_path(d, len);
        return group ? store_make_group(d->store, p, len) : store_delete(d->store, p, len);
    }
    return bad(d, "bad_write_op");
}

static int apply_write_many(struct dispatch *d, struct codec_dec *dec, int *touched)
{
    uint32_t n;
    int rc;
    if (d->store->read_only)
        return HL_ERDONLY;
    if (codec_dec_list(dec, &n))
        return bad(d, "bad_write_list");
    /* All or nothing: check every op before changing anything. */
    size_t first = dec->pos;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = many_op(d, dec, 0)))
            return rc;
    if (n && codec_dec_list_end(dec))
        return bad(d, "bad_write_list");
    dec->pos = first;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = many_op(d, dec, 1)))
            return rc;
        *touched = 1;
    }
    return 0;
}

/* With fault injection on, a write to this key crashes the port. */
#define POISON_KEY "hyper_lmdb.fault/crash"

/* batch_apply_fn: applies one write request frame to the write txn. */
static int apply_frame(void *ctx, const uint8_t *frame, size_t len, int *touched)
{
    struct dispatch *d = ctx;
    struct codec_dec dec;
    uint64_t id;
    const struct op *op;
    const uint8_t *p, *e, *v;
    size_t plen, elen, vlen;
    int rc;
    codec_dec_init(&dec, frame, len);
    if ((rc = decode_header(d, &dec, &id, &op)))
        return rc;
    switch (op->code) {
    case OP_WRITE:
        if ((rc = decode_path(d, &dec, &d->path_a, &p, &plen)))
            return rc;
        if (codec_dec_binary(&dec, &v, &vlen))
            return bad(d, "bad_value");
        /* Fault injection: a write that kills the port whenever it is
         * applied, as a port bug set off by one request would (the
         * server's replays must not let it take other writes along). */
        if (d->faults_enabled && plen == sizeof POISON_KEY - 1 && !memcmp(p, POISON_KEY, plen))
            dispatch_crash();
        return store_write(d->store, p, plen, v, vlen);
    case OP_MAKE_GROUP:
        if ((rc = decode_path(d, &dec, &d->path_a, &p, &plen)))
            return rc;
        return store_make_group(d->store, p, plen);
    case OP_DELETE:
        if ((rc = decode_path(d, &dec, &d->path_a, &p, &plen)))
            return rc;
        return store_delete(d->store, p, plen);
    case OP_MAKE_LINK:
        if ((rc = decode_path(d, &dec, &d->path_b, &e, &elen)) ||
            (rc = decode_path(d, &dec, &d->path_a, &p, &plen)))
            return rc;
        return store_make_link(d->store, e, elen, p, plen);
    case OP_WRITE_MANY:
        return apply_write_many(d, &dec, touched);
    case OP_RESET:
        *touched = 1;
        return store_reset(d->store);
    default:
        return bad(d, "unknown_op");
    }
}

/* ---- the loop's entry points ------------------------------------------ */

/* A payload is one term (protocol.h): bytes after the request tuple make
 * the frame malformed, whatever the tuple says (a write is not applied).
 * A tuple that cannot even be skipped is left for its own decoding to
 * refuse, with a reason that says where. */
static int one_term(struct dispatch *d, const uint8_t *frame, size_t len)
{
    struct codec_dec all;
    codec_dec_init(&all, frame, len);
    if (codec_dec_version(&all) || codec_dec_skip(&all) || codec_dec_at_end(&all))
        return 0;
    return bad(d, "trailing_bytes");
}

void dispatch_init(struct dispatch *d, struct store *s, size_t batch_max)
{
    memset(d, 0, sizeof *d);
    d->store = s;
    d->max_reply = FRAME_MAX_PAYLOAD;
    d->batch_max = batch_max ? batch_max : 1;
    batch_init(&d->batch, apply_frame, d);
    codec_enc_init(&d->out);
}

void dispatch_free(struct dispatch *d)
{
    batch_free(&d->batch);
    codec_enc_free(&d->out);
    free(d->names.v);
    free(d->path_a.p);
    free(d->path_b.p);
}

void dispatch_crash(void)
{
    raise(SIGKILL);
    _exit(127); /* not reached */
}

void dispatch_end_of_input(struct dispatch *d)
{
    struct batch *b = &d->batch;
    if (!batch_open(d->store) && b->n == 0)
        return;
    if (d->fault == FAULT_BEFORE_COMMIT)
        dispatch_crash();
    int rc = batch_commit(b, d->store, d->base);
    if (d->fault == FAULT_AFTER_COMMIT)
        dispatch_crash();
    if (d->fault == FAULT_MID_REPLY)
        d->crash_on_flush = 1;
    for (size_t i = 0; i < b->n; i++) {
        if (rc)
            reply_error(d, b->v[i].id, rc);
        else
            reply_atom(d, b->v[i].id, "ok");
    }
    batch_clear(b);
}

void dispatch_frame(struct dispatch *d, const uint8_t *base, size_t off, size_t len)
{
    struct codec_dec dec;
    uint64_t id;
    const struct op *op;
    d->requests++;
    d->base = base;
    if (d->fault == FAULT_HANG)
        for (;;)
            pause(); /* until the server's watchdog kills us */
    codec_dec_init(&dec, base + off, len);
    int rc = decode_header(d, &dec, &id, &op);
    if (!rc)
        rc = one_term(d, base + off, len);
    if (rc) {
        reply_error(d, id, rc);
        return;
    }
    if (is_write(op->code)) {
        if (d->store->read_only) { /* no write transaction can even begin */
            reply_error(d, id, HL_ERDONLY);
            return;
        }
        rc = batch_add(&d->batch, d->store, base, id, off, len);
        if (rc)
            reply_error(d, id, rc);
        /* A failed replay lost the transaction: answer its writes now.
         * A full batch is committed so its writers are not kept waiting. */
        if ((!batch_open(d->store) && d->batch.n) || d->batch.n >= d->batch_max)
            dispatch_end_of_input(d);
        return;
    }
    /* Requests run in arrival order: earlier writes commit first, so a
     * read sees every write that was sent before it.  Unless the client
     * asked for reads of the last commit (--read-committed: the server,
     * whose writers hear nothing before their commit, protocol.h): then
     * the open batch stays open, and a burst of reads and writes from
     * many callers commits once instead of at every read. */
    if (!d->read_committed || op->code == OP_SYNC)
        dispatch_end_of_input(d);
    rc = serve_read(d, op, &dec, id);
    if (rc)
        reply_error(d, id, rc);
}

void dispatch_hello(struct dispatch *d)
{
    MDB_envinfo info;
    mdb_env_info(d->store->env, &info);
    uint64_t session, last;
    int noted = store_last_request(d->store, &session, &last);
    size_t start = reply_begin(d, 0);
    codec_enc_tuple(&d->out, 5);
    codec_enc_atom(&d->out, "hello");
    codec_enc_u64(&d->out, PROTOCOL_VERSION);
    codec_enc_atom(&d->out, store_format_name(d->store->format));
    codec_enc_u64(&d->out, info.me_mapsize);
    if (noted) {
        codec_enc_tuple(&d->out, 2);
        codec_enc_u64(&d->out, session);
        codec_enc_u64(&d->out, last);
    } else {
        codec_enc_atom(&d->out, "none");
    }
    reply_end(d, start, 0);
}

/* The POSIX name of an errno value, as file:format_error/1 knows them. */
static const char *errno_atom(int code)
{
    switch (code) {
    case ENOENT: return "enoent";
    case EACCES: return "eacces";
    case EPERM: return "eperm";
    case ENOTDIR: return "enotdir";
    case EROFS: return "erofs";
    case ENOSPC: return "enospc";
    case EEXIST: return "eexist";
    case EINVAL: return "einval";
    case ENOMEM: return "enomem";
    case EAGAIN: return "eagain";
    case EBUSY: return "ebusy";
    case EIO: return "eio";
    case ENAMETOOLONG: return "enametoolong";
    case EISDIR: return "eisdir";
    default: return NULL;
    }
}

void dispatch_open_error(struct codec_enc *out, int code, const char *text)
{
    size_t start = frame_begin(out);
    codec_enc_version(out);
    codec_enc_tuple(out, 2);
    codec_enc_u64_fixed(out, 0);
    codec_enc_tuple(out, 2);
    codec_enc_atom(out, "error");
    codec_enc_tuple(out, 3);
    codec_enc_atom(out, "open_failed");
    const char *posix = code > 0 ? errno_atom(code) : NULL;
    if (posix)
        codec_enc_atom(out, posix);
    else if (code == HL_EBADREQ)
        codec_enc_atom(out, "format");
    else
        codec_enc_i64(out, code);
    codec_enc_binary(out, text, strlen(text));
    frame_end(out, start);
}
