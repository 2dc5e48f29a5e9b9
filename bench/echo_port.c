/*
 * echo_port.c - the floor of the benchmarks: a port program that speaks
 * the framing of hyper_lmdb_port (protocol.h: 4-byte big-endian length,
 * then one external term) and never touches LMDB.  Whatever hyper_lmdb
 * costs above this program is the store's own work plus the Erlang side.
 *
 * It decodes only what it needs with the project's checked codec:
 *
 *   {Id, read, ...}   -> {Id, {ok, <<43 bytes>>}}   the size of a real read's reply
 *   {Id, echo, Size}  -> {Id, {ok, <<Size bytes>>}} a read reply of any size
 *                        (Size =< ECHO_MAX; larger: {Id, {error,
 *                        {bad_request, echo_size}}}, as the real port's
 *                        refusals look)
 *   {Id, ...}         -> {Id, ok}                   e.g. a write of any size
 *   anything else     -> {0, ok}                    (the Id could not be read)
 *
 * The loop is the real port's (port_src/main.c): spin briefly on a
 * non-blocking poll before sleeping in poll, read everything available
 * with one read(), answer every complete frame of it, and send all the
 * replies of that chunk with one write.  Without the same spin, the floor
 * would pay a wake-up per round trip that the store does not, and every
 * single-caller ratio would flatter the store.  (The real port spins only
 * while its reads bring about one frame each; this one always spins.  The
 * lockstep floor is the same either way, and the pipelined one measured
 * the same with and without spinning: 750k and 753k round trips/s.)
 *
 * usage: echo_port [SPIN_US]   (default 200, hyper_lmdb_port's default)
 * Exits 0 on EOF, 4 on a broken stream, 5 when stdout fails.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "frame.h"
#include "protocol.h"

/* 43 bytes: the value size of HyperBEAM's store benchmark. */
static const char read_value[] = "0123456789012345678901234567890123456789012";
#define READ_VALUE_LEN 43

/* The largest {Id, echo, Size} answered: the benchmark asks for 1 MiB. */
#define ECHO_MAX ((uint64_t)64 << 20)

/* The bytes of echo replies, grown on demand and kept: a real read's
 * value comes from the map, not from a fresh allocation per request. */
static struct {
    uint8_t *buf;
    size_t cap;
} echo_buf;

/* Returns at least n bytes of echo_buf, or NULL when out of memory. */
static const uint8_t *echo_bytes(size_t n)
{
    if (n > echo_buf.cap) {
        uint8_t *b = realloc(echo_buf.buf, n);
        if (!b)
            return NULL;
        memset(b + echo_buf.cap, 'e', n - echo_buf.cap);
        echo_buf.buf = b;
        echo_buf.cap = n;
    }
    return echo_buf.buf ? echo_buf.buf : (const uint8_t *)read_value;
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Appends the reply to one request frame <frame, len> to out.  A frame
 * that does not decode still gets a reply (id 0), as the real port's
 * {bad_request, _} would: every request is answered exactly once. */
static void echo_reply(struct codec_enc *out, const uint8_t *frame, size_t len)
{
    struct codec_dec d;
    uint32_t arity = 0;
    uint64_t id = 0, size = 0;
    int is_read = 0, is_echo = 0;

    codec_dec_init(&d, frame, len);
    if (codec_dec_version(&d) == 0 && codec_dec_tuple(&d, &arity) == 0 && arity >= 2 &&
        codec_dec_u64(&d, &id) == 0) {
        is_read = codec_dec_is_atom(&d, "read");
        is_echo = !is_read && arity == 3 && codec_dec_is_atom(&d, "echo") &&
                  codec_dec_u64(&d, &size) == 0;
    } else {
        id = 0;
    }

    const uint8_t *bytes = is_echo && size <= ECHO_MAX ? echo_bytes((size_t)size) : NULL;
    size_t start = frame_begin(out);
    codec_enc_version(out);
    codec_enc_tuple(out, 2);
    codec_enc_u64(out, id);
    if (is_read || bytes) {
        codec_enc_tuple(out, 2);
        codec_enc_atom(out, "ok");
        if (is_read)
            codec_enc_binary(out, read_value, READ_VALUE_LEN);
        else
            codec_enc_binary(out, bytes, (size_t)size);
    } else if (is_echo) {
        codec_enc_tuple(out, 2);
        codec_enc_atom(out, "error");
        codec_enc_tuple(out, 2);
        codec_enc_atom(out, "bad_request");
        codec_enc_atom(out, "echo_size");
    } else {
        codec_enc_atom(out, "ok");
    }
    frame_end(out, start);
}

/* Waits until stdin is readable: spins up to spin_us first (as main.c),
 * then blocks.  Returns poll's result. */
static int wait_input(unsigned spin_us)
{
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    if (n == 0 && spin_us) {
        uint64_t until = now_us() + spin_us;
        while (n == 0 && now_us() < until)
            n = poll(&pfd, 1, 0);
    }
    if (n == 0)
        n = poll(&pfd, 1, -1);
    return n;
}

int main(int argc, char **argv)
{
    unsigned spin_us = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200;
    struct frame_in in;
    struct codec_enc out;
    int status = EXIT_OK;

    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error value */
    frame_in_init(&in, DEFAULT_MAX_FRAME);
    codec_enc_init(&out);
    for (;;) {
        int n = wait_input(spin_us);
        if (n < 0 && errno == EINTR)
            continue;
        long got = frame_in_read(&in, STDIN_FILENO);
        if (got == 0)
            break; /* EOF: the port was closed */
        if (got < 0) {
            status = EXIT_STREAM;
            break;
        }
        size_t off, len;
        int rc;
        while ((rc = frame_in_next(&in, &off, &len)) == 1)
            echo_reply(&out, in.buf + off, len);
        if (out.err || frame_flush(&out, STDOUT_FILENO)) {
            status = EXIT_OUTPUT;
            break;
        }
        if (rc < 0) {
            status = EXIT_STREAM;
            break;
        }
        frame_in_compact(&in);
    }
    codec_enc_free(&out);
    frame_in_free(&in);
    free(echo_buf.buf);
    return status;
}
