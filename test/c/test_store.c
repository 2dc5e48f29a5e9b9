/*
 * test_store.c - the store behind the dispatcher, in a real LMDB
 * environment: requests are encoded as the server would, fed to
 * dispatch_frame in batches as the main loop does, and the replies
 * decoded.  Covers group commit with a failed request in the middle of a
 * batch, map growth and replay, the link cache, and bad frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "dispatch.h"
#include "errors.h"
#include "frame.h"
#include "store.h"

struct h {
    struct store s;
    struct dispatch d;
    char dir[64];
    struct codec_enc in;     /* the batch's request frames, back to back */
    size_t offs[256], lens[256];
    int n;
};

static void h_open(struct h *h, size_t map_size)
{
    memset(h, 0, sizeof *h);
    strcpy(h->dir, "/tmp/hyper_lmdb_ctest.XXXXXX");
    CHECK(mkdtemp(h->dir) != NULL);
    struct store_config cfg = {.dir = h->dir, .map_size = map_size, .max_readers = 8,
                               .max_hops = 50, .format = FORMAT_AUTO,
                               .durability = DURABILITY_COMMIT, .cache_slots = 1024};
    char why[128];
    CHECK_EQ_INT(store_open(&h->s, &cfg, why, sizeof why), 0);
    dispatch_init(&h->d, &h->s, 4096);
    codec_enc_init(&h->in);
}

static void h_close(struct h *h)
{
    dispatch_free(&h->d);
    store_close(&h->s);
    codec_enc_free(&h->in);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", h->dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* Request builders: start a frame, the caller adds the arguments. */
static void req(struct h *h, uint64_t id, const char *op, uint32_t nargs)
{
    h->offs[h->n] = h->in.len;
    codec_enc_version(&h->in);
    codec_enc_tuple(&h->in, 2 + nargs);
    codec_enc_u64(&h->in, id);
    codec_enc_atom(&h->in, op);
}

static void end_req(struct h *h)
{
    h->lens[h->n] = h->in.len - h->offs[h->n];
    h->n++;
}

static void bin(struct h *h, const char *s) { codec_enc_binary(&h->in, s, strlen(s)); }

static void write_req(struct h *h, uint64_t id, const char *p, const char *v)
{
    req(h, id, "write", 2);
    bin(h, p);
    bin(h, v);
    end_req(h);
}

static void read_req(struct h *h, uint64_t id, const char *p)
{
    req(h, id, "read", 1);
    bin(h, p);
    end_req(h);
}

static void link_req(struct h *h, uint64_t id, const char *existing, const char *new_path)
{
    req(h, id, "make_link", 2);
    bin(h, existing);
    bin(h, new_path);
    end_req(h);
}

/* Runs the batch like one chunk of input; replies go to h->d.out. */
static void run(struct h *h)
{
    CHECK_EQ_INT(h->in.err, 0);
    h->d.out.len = 0;
    for (int i = 0; i < h->n; i++)
        dispatch_frame(&h->d, h->in.buf, h->offs[i], h->lens[i]);
    dispatch_end_of_input(&h->d);
    h->in.len = 0;
    h->n = 0;
}

/* Finds the reply to `id` in d.out: a decoder positioned on its result. */
static int reply(struct h *h, uint64_t id, struct codec_dec *res)
{
    size_t pos = 0;
    while (pos + 4 <= h->d.out.len) {
        const uint8_t *p = h->d.out.buf + pos;
        size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        uint32_t arity;
        uint64_t rid;
        codec_dec_init(res, p + 4, len);
        if (codec_dec_version(res) == 0 && codec_dec_tuple(res, &arity) == 0 && arity == 2 &&
            codec_dec_u64(res, &rid) == 0 && rid == id)
            return 1;
        pos += 4 + len;
    }
    return 0;
}

static int replies(struct h *h)
{
    int n = 0;
    for (size_t pos = 0; pos + 4 <= h->d.out.len; n++) {
        const uint8_t *p = h->d.out.buf + pos;
        pos += 4 + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
    }
    return n;
}

static int is_ok(struct h *h, uint64_t id)
{
    struct codec_dec r;
    return reply(h, id, &r) && codec_dec_is_atom(&r, "ok");
}

static int is_not_found(struct h *h, uint64_t id)
{
    struct codec_dec r;
    return reply(h, id, &r) && codec_dec_is_atom(&r, "not_found");
}

/* {ok, Value} with Value == want */
static int is_value(struct h *h, uint64_t id, const char *want)
{
    struct codec_dec r;
    uint32_t arity;
    const uint8_t *v;
    size_t vlen;
    return reply(h, id, &r) && codec_dec_tuple(&r, &arity) == 0 && arity == 2 &&
           codec_dec_is_atom(&r, "ok") && codec_dec_binary(&r, &v, &vlen) == 0 &&
           vlen == strlen(want) && memcmp(v, want, vlen) == 0;
}

/* {error, Atom} or {error, {Atom, ...}} */
static int is_error(struct h *h, uint64_t id, const char *atom)
{
    struct codec_dec r;
    uint32_t arity;
    if (!reply(h, id, &r) || codec_dec_tuple(&r, &arity) || arity != 2 ||
        !codec_dec_is_atom(&r, "error"))
        return 0;
    size_t save = r.pos;
    if (codec_dec_is_atom(&r, atom))
        return 1;
    r.pos = save;
    return codec_dec_tuple(&r, &arity) == 0 && codec_dec_is_atom(&r, atom);
}

static void basics(void)
{
    struct h h;
    h_open(&h, 1 << 20);
    write_req(&h, 1, "d/x", "dx");
    link_req(&h, 2, "d", "l");
    read_req(&h, 3, "l/x");
    run(&h);
    CHECK_EQ_INT(replies(&h), 3);
    CHECK(is_ok(&h, 1));
    CHECK(is_ok(&h, 2));
    CHECK(is_value(&h, 3, "dx")); /* a read after writes in one chunk sees them */

    /* the cache must not answer stale after a relink in a later batch */
    write_req(&h, 4, "e/x", "ex");
    link_req(&h, 5, "e", "l");
    read_req(&h, 6, "l/x");
    run(&h);
    CHECK(is_value(&h, 6, "ex"));
    write_req(&h, 7, "l", "plain");
    read_req(&h, 8, "l/x");
    read_req(&h, 9, "l");
    run(&h);
    CHECK(is_not_found(&h, 8));
    CHECK(is_value(&h, 9, "plain"));
    h_close(&h);
}

/* One request of a batch fails after the batch changed things: the others
 * still commit, it alone is answered with its error. */
static void failure_inside_a_batch(void)
{
    struct h h;
    h_open(&h, 1 << 20);
    link_req(&h, 1, "b", "a");
    link_req(&h, 2, "a", "b"); /* a loop: a -> b -> a */
    run(&h);
    write_req(&h, 3, "one", "1");
    /* an atomic batch whose second op writes below the loop */
    req(&h, 4, "write_many", 1);
    codec_enc_list(&h.in, 2);
    codec_enc_tuple(&h.in, 3);
    codec_enc_atom(&h.in, "write");
    bin(&h, "two");
    bin(&h, "2");
    codec_enc_tuple(&h.in, 3);
    codec_enc_atom(&h.in, "write");
    bin(&h, "a/below");
    bin(&h, "x");
    codec_enc_nil(&h.in);
    end_req(&h);
    write_req(&h, 5, "three", "3");
    read_req(&h, 6, "one");
    read_req(&h, 7, "two");
    read_req(&h, 8, "three");
    run(&h);
    CHECK(is_ok(&h, 3));
    CHECK(is_error(&h, 4, "link_loop"));
    CHECK(is_ok(&h, 5));
    CHECK(is_value(&h, 6, "1"));
    CHECK(is_not_found(&h, 7)); /* all or nothing */
    CHECK(is_value(&h, 8, "3"));
    CHECK(h.d.batch.replays >= 1);
    h_close(&h);
}

/* A map far too small: the batch fills it, the map doubles, the batch is
 * replayed, and every write is there. */
static void map_growth(void)
{
    struct h h;
    h_open(&h, 64 * 1024);
    static char value[3001];
    memset(value, 'v', sizeof value - 1);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k/%d", i);
        write_req(&h, (uint64_t)i + 1, key, value);
    }
    run(&h);
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += is_ok(&h, (uint64_t)i + 1);
    CHECK_EQ_INT(ok, 200);
    CHECK(h.s.map_grows > 0);
    for (int i = 0; i < 200; i += 37) {
        snprintf(key, sizeof key, "k/%d", i);
        read_req(&h, 1000 + (uint64_t)i, key);
    }
    run(&h);
    for (int i = 0; i < 200; i += 37)
        CHECK(is_value(&h, 1000 + (uint64_t)i, value));
    h_close(&h);
}

/* Malformed frames are answered, never crash; the store is unchanged. */
static void bad_frames(void)
{
    struct h h;
    h_open(&h, 1 << 20);
    static const uint8_t junk[][8] = {{131}, {131, 104, 1, 97, 5}, {1, 2, 3}, {131, 104, 2, 97, 9, 100}};
    static const size_t junk_len[] = {1, 5, 3, 6};
    for (int i = 0; i < 4; i++) {
        h.offs[h.n] = h.in.len;
        uint8_t *p = codec_enc_reserve(&h.in, junk_len[i]);
        memcpy(p, junk[i], junk_len[i]);
        h.in.len += junk_len[i];
        h.lens[h.n++] = junk_len[i];
    }
    req(&h, 10, "no_such_op", 0);
    end_req(&h);
    req(&h, 11, "read", 0); /* wrong arity */
    end_req(&h);
    req(&h, 12, "read", 1);
    codec_enc_u64(&h.in, 42); /* wrong type */
    end_req(&h);
    req(&h, 13, "fault", 1); /* refused: fault injection is off */
    codec_enc_atom(&h.in, "hang");
    end_req(&h);
    run(&h);
    CHECK_EQ_INT(replies(&h), 8);
    CHECK(is_error(&h, 10, "bad_request"));
    CHECK(is_error(&h, 11, "bad_request"));
    CHECK(is_error(&h, 12, "bad_request"));
    CHECK(is_error(&h, 13, "bad_request"));
    CHECK_EQ_INT(h.d.bad_requests, 8);
    CHECK_EQ_INT(h.d.fault, 0);
    h_close(&h);
}

static void key_limits(void)
{
    struct h h;
    h_open(&h, 1 << 20);
    char k511[512], k512[513];
    memset(k511, 'k', 511);
    k511[511] = 0;
    memset(k512, 'k', 512);
    k512[512] = 0;
    write_req(&h, 1, k511, "v");
    write_req(&h, 2, k512, "v");
    write_req(&h, 3, "//", "v");
    read_req(&h, 4, k511);
    run(&h);
    CHECK(is_ok(&h, 1));
    CHECK(is_error(&h, 2, "key_too_long"));
    CHECK(is_error(&h, 3, "empty_path"));
    CHECK(is_value(&h, 4, "v"));
    h_close(&h);
}

int main(void)
{
    basics();
    failure_inside_a_batch();
    map_growth();
    bad_frames();
    key_limits();
    return check_summary();
}
