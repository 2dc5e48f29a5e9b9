/*
 * fuzz_request.c - libFuzzer target over the request decoder and the
 * dispatcher, against a real store.
 *
 * The store is opened once (LLVMFuzzerInitialize) in a fresh mkdtemp
 * directory under $TMPDIR with a small map, so a few large writes fill it
 * and map growth and batch replay run; max_hops is small so link chains
 * and loops hit the hop limit; the link cache is on and small, so it
 * fills, collides and is invalidated.  Fault injection stays off
 * ({fault, _} must be refused).
 *
 * Each input is served twice, as main.c serves a chunk of stdin:
 *   1. as a stream of {packet, 4} frames, split by frame.c's own
 *      frame_in_next, each complete frame passed to dispatch_frame, then
 *      dispatch_end_of_input (a trailing partial frame is left unread, as
 *      the port would wait for the rest of it);
 *   2. as one frame payload with no length prefix, so raw term bytes reach
 *      the decoder directly.
 * Both copies are heap buffers of exactly the input's size, so
 * AddressSanitizer sees any read past a frame's end.  Every RESET_EVERY
 * inputs a {Id, reset} request empties the store so it stays small, and a
 * store whose map has grown a few times starts over in a new directory
 * (a map never shrinks, and the map-full paths should keep running).
 *
 * A custom mutator (LLVMFuzzerCustomMutator) now and then grows or
 * shrinks one binary and fixes its length fields, so paths and values
 * cross the size limits of path.h; every other mutation is libFuzzer's.
 *
 * Invariants, checked with abort() (libFuzzer then saves the input):
 *   - every request frame gets exactly one reply frame, and the reply ids
 *     are the request ids (as a multiset: a write refused at once is
 *     answered before the earlier writes of its batch, which wait for the
 *     commit), 0 for a frame whose Id cannot be read (protocol.h);
 *   - every reply is a well-formed frame: version byte, a 2-tuple, an
 *     integer id, one term the checked decoder can skip, nothing after
 *     it; the binary of a {packed, Bin} reply splits into whole entries;
 *   - after dispatch_end_of_input no write transaction is open, no write
 *     waits in the batch, and the output buffer carries no encoder error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "codec.h"
#include "dispatch.h"
#include "frame.h"
#include "protocol.h"
#include "store.h"

#define MAP_SIZE ((size_t)64 << 10) /* a few large writes fill it */
#define REOPEN_AT (MAP_SIZE << 1)    /* grown past this: start over */
#define MAX_HOPS 8
#define CACHE_SLOTS 64
#define BATCH_MAX 16     /* small: long inputs also fill a batch */
#define RESET_EVERY 5000 /* inputs between two resets */
#define RESET_ID 0x7e5e7 /* the id of the harness's own reset requests */

/* A growing list of request or reply ids. */
struct id_list {
    uint64_t *v;
    size_t n, cap;
};

/* The one piece of state: the store, its dispatcher, the bookkeeping. */
static struct fuzz_state {
    struct store store;
    struct dispatch disp;
    char dir[4096];
    unsigned long inputs;
    struct id_list want, got; /* ids of the requests fed, of the replies seen */
} fz;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size); /* libFuzzer's own */

static _Noreturn void die(const char *why)
{
    fprintf(stderr, "fuzz_request: invariant broken: %s\n", why);
    abort();
}

static void ids_push(struct id_list *l, uint64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            die("out of memory in the harness");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The id the port must answer a frame with: the Id when the version, a
 * tuple of arity >= 2 and a readable Id are there, else 0 (protocol.h:
 * "Id is 0 when even the Id could not be read"). */
static uint64_t expected_id(const uint8_t *frame, size_t len)
{
    struct codec_dec d;
    uint32_t arity;
    uint64_t id;
    codec_dec_init(&d, frame, len);
    if (codec_dec_version(&d) || codec_dec_tuple(&d, &arity) || arity < 2 ||
        codec_dec_u64(&d, &id))
        return 0;
    return id;
}

/* The binary of a {packed, Bin} reply must be whole entries (protocol.h):
 * <<0>>, <<1, Len:32, V:Len>>, or <<2, Len:32, T:Len>> with T a term. */
static void check_packed(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        uint8_t tag = p[pos++];
        if (tag == 0)
            continue;
        if ((tag != 1 && tag != 2) || len - pos < 4)
            die("packed entry header");
        size_t n = (size_t)p[pos] << 24 | (size_t)p[pos + 1] << 16 | (size_t)p[pos + 2] << 8 |
                   p[pos + 3];
        pos += 4;
        if (n > len - pos)
            die("packed entry length");
        if (tag == 2) {
            struct codec_dec t;
            codec_dec_init(&t, p + pos, n);
            if (codec_dec_version(&t) || codec_dec_skip(&t) || !codec_dec_at_end(&t))
                die("packed error term");
        }
        pos += n;
    }
}

/* Checks one reply payload and returns its id. */
static uint64_t check_reply(const uint8_t *p, size_t len)
{
    struct codec_dec d;
    uint32_t arity;
    uint64_t id;
    codec_dec_init(&d, p, len);
    if (codec_dec_version(&d) || codec_dec_tuple(&d, &arity) || arity != 2 ||
        codec_dec_u64(&d, &id))
        die("reply is not {Id, _}");
    size_t result = d.pos;
    if (codec_dec_skip(&d) || !codec_dec_at_end(&d))
        die("reply result is not exactly one well-formed term");
    d.pos = result;
    if (codec_dec_tuple(&d, &arity) == 0 && arity == 2 && codec_dec_is_atom(&d, "packed")) {
        const uint8_t *bin;
        size_t blen;
        if (codec_dec_binary(&d, &bin, &blen))
            die("packed reply without a binary");
        check_packed(bin, blen);
    }
    return id;
}

/* Walks the reply frames in disp.out by their length prefixes, checks
 * each, compares their ids with those of the requests fed since the last
 * call, and discards the output. */
static void check_replies(void)
{
    struct dispatch *d = &fz.disp;
    if (d->out.err)
        die("encoder error left in the output buffer");
    if (batch_open(&fz.store) || d->batch.n)
        die("write batch still open after dispatch_end_of_input");
    fz.got.n = 0;
    size_t pos = 0;
    while (pos < d->out.len) {
        if (d->out.len - pos < 4)
            die("truncated reply length prefix");
        const uint8_t *p = d->out.buf + pos;
        size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (len > d->out.len - pos - 4)
            die("reply frame longer than the output");
        ids_push(&fz.got, check_reply(p + 4, len));
        pos += 4 + len;
    }
    if (fz.got.n != fz.want.n) {
        fprintf(stderr, "fuzz_request: %zu request frame(s), %zu reply frame(s)\n", fz.want.n,
                fz.got.n);
        die("not exactly one reply per request");
    }
    if (fz.want.n) {
        qsort(fz.want.v, fz.want.n, sizeof *fz.want.v, cmp_u64);
        qsort(fz.got.v, fz.got.n, sizeof *fz.got.v, cmp_u64);
        if (memcmp(fz.want.v, fz.got.v, fz.want.n * sizeof *fz.want.v) != 0)
            die("reply ids differ from request ids");
    }
    fz.want.n = 0;
    d->out.len = 0;
}

/* Serves the request frame <base + off, len>, noting the id it must get. */
static void feed(const uint8_t *base, size_t off, size_t len)
{
    ids_push(&fz.want, expected_id(base + off, len));
    dispatch_frame(&fz.disp, base, off, len);
}

/* An exact-size heap copy of the input (never NULL, even for size 0). */
static uint8_t *copy_input(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        die("out of memory in the harness");
    if (size)
        memcpy(p, data, size);
    return p;
}

/* The input as the port's stdin: a stream of {packet, 4} frames. */
static void serve_as_frames(const uint8_t *data, size_t size)
{
    struct frame_in in;
    frame_in_init(&in, DEFAULT_MAX_FRAME);
    in.buf = copy_input(data, size);
    in.len = in.cap = size;
    size_t off, len;
    while (frame_in_next(&in, &off, &len) == 1)
        feed(in.buf, off, len);
    dispatch_end_of_input(&fz.disp);
    check_replies();
    frame_in_free(&in); /* only now: batched frames point into it */
}

/* The input as one frame payload. */
static void serve_as_payload(const uint8_t *data, size_t size)
{
    uint8_t *frame = copy_input(data, size);
    feed(frame, 0, size);
    dispatch_end_of_input(&fz.disp);
    check_replies();
    free(frame);
}

/* Sends {RESET_ID, reset}, built with the codec's own encoder. */
static void reset_store(void)
{
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 2);
    codec_enc_u64(&e, RESET_ID);
    codec_enc_atom(&e, "reset");
    if (e.err)
        die("out of memory in the harness");
    feed(e.buf, 0, e.len);
    dispatch_end_of_input(&fz.disp);
    check_replies();
    codec_enc_free(&e);
}

/* Opens a store with the fuzzing configuration in a fresh directory under
 * $TMPDIR, and a dispatcher on it. */
static void store_start(void)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf(fz.dir, sizeof fz.dir, "%s/hyper_lmdb_fuzz.XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof fz.dir || !mkdtemp(fz.dir)) {
        perror("fuzz_request: mkdtemp");
        abort();
    }
    struct store_config cfg = {
        .dir = fz.dir,
        .map_size = MAP_SIZE,
        .max_readers = 8,
        .max_hops = MAX_HOPS,
        .format = FORMAT_AUTO, /* a new directory: tagged */
        .durability = DURABILITY_COMMIT,
        .cache_slots = CACHE_SLOTS,
    };
    char why[128];
    int rc = store_open(&fz.store, &cfg, why, sizeof why);
    if (rc) {
        fprintf(stderr, "fuzz_request: store_open %s: %s (%d)\n", fz.dir, why, rc);
        abort();
    }
    dispatch_init(&fz.disp, &fz.store, BATCH_MAX);
    fz.disp.faults_enabled = 0;
}

/* Closes the store and removes its directory: LMDB's two files, then the
 * directory itself. */
static void store_stop(void)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[sizeof fz.dir + 16];
    dispatch_free(&fz.disp);
    store_close(&fz.store);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fz.dir, files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            perror(path);
    }
    if (rmdir(fz.dir) != 0)
        perror(fz.dir);
}

static void fuzz_cleanup(void)
{
    store_stop();
    free(fz.want.v);
    free(fz.got.v);
}

/* Empties the store with a reset request; once the map has grown a few
 * times, starts over with a new store, whose map is small again. */
static void maintain(void)
{
    reset_store();
    MDB_envinfo info;
    if (mdb_env_info(fz.store.env, &info) == 0 && info.me_mapsize > REOPEN_AT) {
        store_stop();
        store_start();
    }
}

/* ---- mutation -------------------------------------------------------- */

/* libFuzzer's byte mutations almost never change a binary's size and its
 * 4-byte length (and the frame's) together, so without help every path
 * and value keeps the size a seed gave it.  One mutation in RESIZE_ONE_IN
 * therefore picks a BINARY_EXT in the input, grows or shrinks its
 * contents and fixes its length and its frame's length; the rest are
 * libFuzzer's own. */
#define RESIZE_ONE_IN 4
#define MAX_BINARIES 64

static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A binary that fits its frame: tag at `at`, in the frame whose length
 * prefix is at `head` (SIZE_MAX: the input is one bare payload). */
struct bin_site {
    size_t at, head;
};

/* Collects the binaries of the payload <start, end) into sites. */
static size_t find_binaries(const uint8_t *data, size_t start, size_t end, size_t head,
                            struct bin_site *sites, size_t n)
{
    for (size_t i = start; i + 5 <= end && n < MAX_BINARIES; i++)
        if (data[i] == 109 && get_be32(data + i + 1) <= end - i - 5)
            sites[n++] = (struct bin_site){i, head};
    return n;
}

/* Grows or shrinks one binary; returns the new size, or 0 if none fits. */
static size_t resize_binary(uint8_t *data, size_t size, size_t max_size, uint32_t *rng)
{
    struct bin_site sites[MAX_BINARIES];
    size_t n = 0, off = 0;
    while (size - off >= 4) { /* the frames, as frame.c splits them */
        size_t flen = get_be32(data + off);
        if (flen > size - off - 4)
            break;
        n = find_binaries(data, off + 4, off + 4 + flen, off, sites, n);
        off += 4 + flen;
    }
    if (off == 0) /* not even one frame: a bare payload */
        n = find_binaries(data, 0, size, SIZE_MAX, sites, 0);
    if (n == 0)
        return 0;
    struct bin_site b = sites[rng_next(rng) % n];
    uint32_t blen = get_be32(data + b.at + 1);
    size_t end = b.at + 5 + blen; /* first byte after the contents */
    if (rng_next(rng) % 3 == 0) { /* shrink */
        if (blen == 0)
            return 0;
        uint32_t cut = 1 + rng_next(rng) % blen;
        memmove(data + end - cut, data + end, size - end);
        put_be32(data + b.at + 1, blen - cut);
        if (b.head != SIZE_MAX)
            put_be32(data + b.head, get_be32(data + b.head) - cut);
        return size - cut;
    }
    /* steps that cross the key and work-buffer limits (path.h) */
    static const size_t grow[] = {1, 16, 256, PATH_MAX_KEY, PATH_MAX_WORK, 2 * PATH_MAX_WORK};
    size_t add = grow[rng_next(rng) % (sizeof grow / sizeof grow[0])];
    if (add > max_size - size)
        add = max_size - size;
    if (add == 0 || (b.head != SIZE_MAX && get_be32(data + b.head) > UINT32_MAX - add) ||
        blen > UINT32_MAX - add)
        return 0;
    /* the new bytes: repeat the last byte, or a path-like pattern */
    uint8_t fill = blen ? data[end - 1] : 'a';
    memmove(data + end + add, data + end, size - end);
    for (size_t i = 0; i < add; i++)
        data[end + i] = rng_next(rng) % 4 ? fill : '/';
    put_be32(data + b.at + 1, blen + (uint32_t)add);
    if (b.head != SIZE_MAX)
        put_be32(data + b.head, get_be32(data + b.head) + (uint32_t)add);
    return size + add;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    uint32_t rng = seed | 1;
    if (rng_next(&rng) % RESIZE_ONE_IN == 0) {
        size_t n = resize_binary(data, size, max_size, &rng);
        if (n)
            return n;
    }
    return LLVMFuzzerMutate(data, size, max_size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    store_start();
    atexit(fuzz_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serve_as_frames(data, size);
    serve_as_payload(data, size);
    if (++fz.inputs % RESET_EVERY == 0)
        maintain();
    return 0;
}
