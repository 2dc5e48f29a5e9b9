/* frame.c - {packet, 4} frame input and output (frame.h). */
#define _GNU_SOURCE /* preadv2 and RWF_NOWAIT (Linux) */
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "errors.h"

/* Size of one read: large enough that a burst of pipelined requests is
 * taken in one system call and becomes one group commit. */
#define READ_CHUNK (256 * 1024)

static size_t be32(const uint8_t *p)
{
    return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* Waits until fd is ready for `events` (POLLIN or POLLOUT).  A descriptor
 * we were handed may be non-blocking (O_NONBLOCK lives in the open file
 * description, which the process that started us may share): its EAGAIN
 * means "not yet", not "closed", so the I/O below waits and tries again
 * as a blocking descriptor would have.  A hang-up or an error wakes poll
 * too, and the retried call reports it.  Returns 0 or -errno. */
static int wait_ready(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

void frame_in_init(struct frame_in *in, size_t max_frame)
{
    memset(in, 0, sizeof *in);
    in->max_frame = max_frame;
}

void frame_in_free(struct frame_in *in)
{
    free(in->buf);
    in->buf = NULL;
    in->len = in->pos = in->cap = 0;
}

static int reserve(struct frame_in *in, size_t need)
{
    if (need <= in->cap - in->len)
        return 0;
    size_t cap = in->cap ? in->cap : READ_CHUNK;
    while (cap - in->len < need) {
        if (cap > SIZE_MAX / 2)
            return HL_ENOMEM;
        cap *= 2;
    }
    uint8_t *nb = realloc(in->buf, cap);
    if (!nb)
        return HL_ENOMEM;
    in->buf = nb;
    in->cap = cap;
    return 0;
}

/* Room in the buffer for the next read: at least READ_CHUNK, or all of
 * the frame in progress whose header is known. */
static int room(struct frame_in *in)
{
    size_t want = READ_CHUNK;
    /* A frame in progress whose header is known: make room for all of it
     * (max_frame was checked by frame_in_next before it got here). */
    size_t pending = in->len - in->pos;
    if (pending >= 4) {
        size_t flen = be32(in->buf + in->pos);
        if (flen <= in->max_frame && 4 + flen > pending && 4 + flen - pending > want)
            want = 4 + flen - pending;
    }
    return reserve(in, want);
}

long frame_in_read(struct frame_in *in, int fd)
{
    if (room(in))
        return HL_ENOMEM;
    for (;;) {
        ssize_t n = read(fd, in->buf + in->len, in->cap - in->len);
        if (n >= 0) {
            in->len += (size_t)n;
            return (long)n;
        }
        if (would_block(errno)) {
            int rc = wait_ready(fd, POLLIN);
            if (rc)
                return rc;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
}

long frame_in_try(struct frame_in *in, int fd)
{
#ifdef RWF_NOWAIT
    if (room(in))
        return HL_ENOMEM;
    for (;;) {
        struct iovec iov = {.iov_base = in->buf + in->len, .iov_len = in->cap - in->len};
        ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
        if (n >= 0) {
            in->len += (size_t)n;
            return (long)n;
        }
        if (would_block(errno))
            return -EAGAIN;
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return -EOPNOTSUPP;
        if (errno != EINTR)
            return -errno;
    }
#else
    (void)in;
    (void)fd;
    return -EOPNOTSUPP;
#endif
}

int frame_in_next(struct frame_in *in, size_t *off, size_t *len)
{
    size_t avail = in->len - in->pos;
    if (avail < 4)
        return 0;
    size_t flen = be32(in->buf + in->pos);
    if (flen > in->max_frame)
        return HL_EBADTERM;
    if (avail - 4 < flen)
        return 0;
    *off = in->pos + 4;
    *len = flen;
    in->pos += 4 + flen;
    return 1;
}

void frame_in_compact(struct frame_in *in)
{
    size_t rest = in->len - in->pos;
    if (rest && in->pos)
        memmove(in->buf, in->buf + in->pos, rest);
    in->len = rest;
    in->pos = 0;
    /* Give back the memory of a huge frame once it is gone. */
    if (in->cap > 16 * READ_CHUNK && rest < READ_CHUNK) {
        uint8_t *nb = realloc(in->buf, READ_CHUNK);
        if (nb) {
            in->buf = nb;
            in->cap = READ_CHUNK;
        }
    }
}

size_t frame_begin(struct codec_enc *out)
{
    size_t start = out->len;
    if (codec_enc_reserve(out, 4))
        out->len += 4;
    return start;
}

int frame_end(struct codec_enc *out, size_t start)
{
    if (out->err)
        return out->err;
    size_t n = out->len - start - 4;
    if (n > FRAME_MAX_PAYLOAD)
        return HL_ETOOBIG;
    uint8_t *p = out->buf + start;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    return 0;
}

void frame_cancel(struct codec_enc *out, size_t start)
{
    out->len = start;
    out->err = 0;
}

int frame_flush(struct codec_enc *out, int fd)
{
    size_t done = 0;
    while (done < out->len) {
        ssize_t n = write(fd, out->buf + done, out->len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (would_block(errno)) {
                /* a full pipe to a busy BEAM: wait for room (the server's
                 * watchdog ends a port that waits for good) */
                int rc = wait_ready(fd, POLLOUT);
                if (rc)
                    return rc;
                continue;
            }
            return -errno;
        }
        done += (size_t)n;
    }
    out->len = 0;
    /* Give back the memory of a huge reply once it is written. */
    if (out->cap > 16 * READ_CHUNK)
        codec_enc_free(out);
    return 0;
}
