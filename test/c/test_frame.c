/*
 * test_frame.c - {packet, 4} framing (port_src/frame.h).
 *
 *   - frame_end refuses a payload longer than its 32-bit length can say,
 *     instead of writing the low 32 bits (a reply of 4 GiB + 5 bytes
 *     announced as 5 bytes would desynchronise every later reply).  The
 *     length is faked: frame_end reads only out->len and writes only the
 *     4-byte header, so no 4 GiB buffer is needed;
 *   - on a non-blocking pipe, EAGAIN is "not yet": frame_flush waits for
 *     room and writes everything, frame_in_read waits for bytes, instead
 *     of failing (the port took a full stdout for a closed one and
 *     dropped every later reply).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "errors.h"
#include "frame.h"

static void frame_end_length_bound(void)
{
    struct codec_enc out;
    codec_enc_init(&out);
    codec_enc_raw(&out, "xy", 2); /* a reply before this one */
    size_t start = frame_begin(&out);
    codec_enc_raw(&out, "abc", 3);
    if (!CHECK_EQ_INT(out.err, 0))
        return;
    CHECK_EQ_INT(frame_end(&out, start), 0);
    CHECK_MEM(out.buf + start, 4, "\0\0\0\3", 4);

    size_t real = out.len;
    memcpy(out.buf + start, "HDR!", 4);
    out.len = start + 4 + FRAME_MAX_PAYLOAD; /* the longest frame: fits */
    CHECK_EQ_INT(frame_end(&out, start), 0);
    CHECK_MEM(out.buf + start, 4, "\xff\xff\xff\xff", 4);

    memcpy(out.buf + start, "HDR!", 4);
    out.len = start + 4 + FRAME_MAX_PAYLOAD + 1 + 5; /* 2^32 + 5: would say 5 */
    CHECK_EQ_INT(frame_end(&out, start), HL_ETOOBIG);
    CHECK_MEM(out.buf + start, 4, "HDR!", 4); /* nothing written */

    out.len = real;
    frame_cancel(&out, start);
    CHECK_EQ_INT(out.len, 2);
    codec_enc_free(&out);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The other end of a pipe, on a thread: after a pause, drains `want`
 * bytes from fd into buf, or writes `want` bytes of buf to it. */
struct peer {
    int fd;
    uint8_t *buf;
    size_t want, done;
    int writes;
};

static void *peer_run(void *arg)
{
    struct peer *p = arg;
    sleep_ms(50); /* long enough for the other side to meet EAGAIN */
    while (p->done < p->want) {
        ssize_t n = p->writes ? write(p->fd, p->buf + p->done, p->want - p->done)
                              : read(p->fd, p->buf + p->done, p->want - p->done);
        if (n <= 0)
            break;
        p->done += (size_t)n;
    }
    return NULL;
}

static void nonblocking_pipes(void)
{
    enum { BIG = 4 << 20 }; /* far more than a pipe holds */
    int fds[2];
    if (!CHECK_EQ_INT(pipe(fds), 0))
        return;
    CHECK_EQ_INT(fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK), 0);
    struct codec_enc out;
    codec_enc_init(&out);
    uint8_t *src = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (uint8_t)(i * 131 + (i >> 12));
    codec_enc_raw(&out, src, BIG);
    struct peer rd = {.fd = fds[0], .buf = malloc(BIG), .want = BIG};
    pthread_t t;
    pthread_create(&t, NULL, peer_run, &rd);
    CHECK_EQ_INT(frame_flush(&out, fds[1]), 0);
    CHECK_EQ_INT(out.len, 0);
    close(fds[1]); /* a flush that gave up must not leave the reader waiting */
    pthread_join(t, NULL);
    CHECK_EQ_INT(rd.done, BIG);
    CHECK(memcmp(rd.buf, src, BIG) == 0);
    free(rd.buf);
    codec_enc_free(&out);
    close(fds[0]);

    /* reading: nothing there yet is a wait, not an error or an EOF */
    if (!CHECK_EQ_INT(pipe(fds), 0))
        return;
    CHECK_EQ_INT(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
    struct frame_in in;
    frame_in_init(&in, 1 << 20);
    struct peer wr = {.fd = fds[1], .buf = src, .want = 10, .writes = 1};
    pthread_create(&t, NULL, peer_run, &wr);
    long got = frame_in_read(&in, fds[0]);
    pthread_join(t, NULL);
    CHECK(got > 0 && got <= 10);
    CHECK(got > 0 && memcmp(in.buf, src, (size_t)got) == 0);
    close(fds[1]);
    /* the end of the input is still an EOF (once what is left is read) */
    while (got > 0 && in.len < 10)
        got = frame_in_read(&in, fds[0]);
    CHECK_EQ_INT(frame_in_read(&in, fds[0]), 0);
    frame_in_free(&in);
    close(fds[0]);
    free(src);

    /* a reader that is gone is still EPIPE, not a wait */
    if (!CHECK_EQ_INT(pipe(fds), 0))
        return;
    CHECK_EQ_INT(fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK), 0);
    close(fds[0]);
    codec_enc_init(&out);
    codec_enc_raw(&out, "x", 1);
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(frame_flush(&out, fds[1]), -EPIPE);
    codec_enc_free(&out);
    close(fds[1]);
}

/* frame_in_try on a blocking pipe: "nothing yet" without waiting, then
 * the bytes, then the end, and never a blocked read (the port's spin
 * tries its input so; where the kernel cannot, it says so and the port
 * polls instead). */
static void reads_without_waiting(void)
{
    int fds[2];
    if (!CHECK_EQ_INT(pipe(fds), 0))
        return;
    struct frame_in in;
    frame_in_init(&in, 1 << 20);
    long got = frame_in_try(&in, fds[0]);
    if (got == -EOPNOTSUPP) {
        fprintf(stderr, "test_frame: no RWF_NOWAIT on pipes here (Linux < 6.4)\n");
    } else {
        CHECK_EQ_INT(got, -EAGAIN);
        CHECK_EQ_INT(write(fds[1], "abc", 3), 3);
        CHECK_EQ_INT(frame_in_try(&in, fds[0]), 3);
        CHECK(in.len == 3 && memcmp(in.buf, "abc", 3) == 0);
        CHECK_EQ_INT(frame_in_try(&in, fds[0]), -EAGAIN);
        CHECK_EQ_INT(write(fds[1], "de", 2), 2);
        close(fds[1]);
        fds[1] = -1;
        CHECK_EQ_INT(frame_in_try(&in, fds[0]), 2); /* appended */
        CHECK(in.len == 5 && memcmp(in.buf, "abcde", 5) == 0);
        CHECK_EQ_INT(frame_in_try(&in, fds[0]), 0); /* the writer is gone */
    }
    frame_in_free(&in);
    close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
}

int main(void)
{
    frame_end_length_bound();
    nonblocking_pipes();
    reads_without_waiting();
    return check_summary();
}
