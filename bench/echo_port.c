/*
 * echo_port.c - the floor of the benchmarks: a port program that speaks
 * the same framing and term format as hyper_lmdb_port and does nothing
 * else.  It reads every frame available, answers each {Id, Op, ...} and
 * writes the replies of a chunk with one write, like the real port's loop
 * (and spins the same way before sleeping), so the difference between it
 * and the store is the store's own work.
 *
 *   {Id, read, _}     -> {Id, {ok, <<43 bytes>>}}   the size of a HyperBEAM value
 *   {Id, big, N}      -> {Id, {ok, <<N bytes>>}}    large-value round trips
 *   anything else     -> {Id, ok}
 *
 * usage: echo_port [SPIN_US]   (default 50, as hyper_lmdb_port)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "frame.h"

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void reply(struct codec_enc *out, const uint8_t *frame, size_t len, const uint8_t *big)
{
    struct codec_dec d;
    uint32_t arity;
    uint64_t id = 0, n = 0;
    const char *op = "";
    size_t oplen = 0;
    codec_dec_init(&d, frame, len);
    if (codec_dec_version(&d) || codec_dec_tuple(&d, &arity) || arity < 2 ||
        codec_dec_u64(&d, &id) || codec_dec_atom(&d, &op, &oplen))
        oplen = 0;
    size_t start = frame_begin(out);
    codec_enc_version(out);
    codec_enc_tuple(out, 2);
    codec_enc_u64(out, id);
    if (oplen == 4 && !memcmp(op, "read", 4)) {
        codec_enc_tuple(out, 2);
        codec_enc_atom(out, "ok");
        codec_enc_binary(out, big, 43);
    } else if (oplen == 3 && !memcmp(op, "big", 3) && codec_dec_u64(&d, &n) == 0 &&
               n <= (64u << 20)) {
        codec_enc_tuple(out, 2);
        codec_enc_atom(out, "ok");
        codec_enc_binary(out, big, n);
    } else {
        codec_enc_atom(out, "ok");
    }
    frame_end(out, start);
}

int main(int argc, char **argv)
{
    unsigned spin_us = argc > 1 ? (unsigned)atoi(argv[1]) : 50;
    uint8_t *big = calloc(64u << 20, 1);
    struct frame_in in;
    struct codec_enc out;
    if (!big)
        return 6;
    frame_in_init(&in, 1u << 30);
    codec_enc_init(&out);
    for (;;) {
        if (frame_flush(&out, STDOUT_FILENO))
            return 5;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 0);
        if (n == 0 && spin_us) {
            uint64_t until = now_us() + spin_us;
            while (n == 0 && now_us() < until)
                n = poll(&pfd, 1, 0);
        }
        if (n == 0)
            n = poll(&pfd, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        long got = frame_in_read(&in, STDIN_FILENO);
        if (got <= 0)
            break;
        size_t off, len;
        while (frame_in_next(&in, &off, &len) == 1)
            reply(&out, in.buf + off, len, big);
        frame_in_compact(&in);
    }
    free(big);
    return 0;
}
