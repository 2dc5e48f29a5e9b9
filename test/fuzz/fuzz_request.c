/*
 * fuzz_request.c - libFuzzer target over the request decoder and the
 * dispatcher, against a real store (a 1 MiB map in a temporary directory,
 * so map growth and batch replay run too).
 *
 * Each input is used twice: as a stream of {packet, 4} frames, split with
 * the same bounds checks as the port (frame.c), and as one raw frame
 * payload.  Invariants, checked with abort(): every frame gets exactly
 * one reply, and every reply is a well-formed {Id, Result}.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "dispatch.h"
#include "frame.h"
#include "store.h"

static struct store store;
static struct dispatch disp;
static char dir[] = "/tmp/hyper_lmdb_fuzz.XXXXXX";
static unsigned long runs;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cleanup(void)
{
    dispatch_free(&disp);
    store_close(&store);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    struct store_config cfg = {.dir = dir, .map_size = 1 << 20, .max_readers = 8,
                               .max_hops = 20, .format = FORMAT_AUTO,
                               .durability = DURABILITY_COMMIT, .cache_slots = 256};
    char why[128];
    if (store_open(&store, &cfg, why, sizeof why) != 0)
        abort();
    dispatch_init(&disp, &store, 64);
    atexit(cleanup);
    return 0;
}

/* Counts the reply frames in disp.out and checks each is {Id, _}. */
static size_t check_replies(void)
{
    size_t n = 0, pos = 0;
    while (pos < disp.out.len) {
        if (disp.out.len - pos < 4)
            abort();
        const uint8_t *p = disp.out.buf + pos;
        size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (len > disp.out.len - pos - 4)
            abort();
        struct codec_dec d;
        uint32_t arity;
        uint64_t id;
        codec_dec_init(&d, p + 4, len);
        if (codec_dec_version(&d) || codec_dec_tuple(&d, &arity) || arity != 2 ||
            codec_dec_u64(&d, &id) || codec_dec_skip(&d) || !codec_dec_at_end(&d))
            abort();
        pos += 4 + len;
        n++;
    }
    disp.out.len = 0;
    return n;
}

/* Empties the store now and then so it stays small. */
static void maybe_reset(void)
{
    if (++runs % 2000)
        return;
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 2);
    codec_enc_u64(&e, 1);
    codec_enc_atom(&e, "reset");
    dispatch_frame(&disp, e.buf, 0, e.len);
    dispatch_end_of_input(&disp);
    if (check_replies() != 1)
        abort();
    codec_enc_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the input as a stream of frames, one chunk */
    struct frame_in in;
    frame_in_init(&in, 1 << 20);
    in.buf = malloc(size ? size : 1);
    if (!in.buf)
        return 0;
    memcpy(in.buf, data, size);
    in.len = in.cap = size;
    size_t off, len, frames = 0;
    while (frame_in_next(&in, &off, &len) == 1) {
        dispatch_frame(&disp, in.buf, off, len);
        frames++;
    }
    dispatch_end_of_input(&disp);
    if (check_replies() != frames)
        abort();
    frame_in_free(&in);

    /* the input as one frame payload */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    dispatch_frame(&disp, copy, 0, size);
    dispatch_end_of_input(&disp);
    if (check_replies() != 1)
        abort();
    free(copy);
    maybe_reset();
    return 0;
}
