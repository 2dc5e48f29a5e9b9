/*
 * frame.h - {packet, 4} framing on file descriptors (protocol.h).
 *
 * Input: bytes are read into one growing buffer and complete frames are
 * handed out as <pointer, length> into it, without copying.  The buffer is
 * compacted only when the caller says so (frame_in_compact), so frames
 * handed out stay where they are (as offsets from buf) until then.
 *
 * Output: replies are encoded straight into a codec_enc buffer between
 * frame_begin and frame_end, which fills in the length; frame_flush writes
 * the buffer out.
 */
#ifndef HYPER_LMDB_FRAME_H
#define HYPER_LMDB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct frame_in {
    uint8_t *buf;
    size_t len;       /* bytes held */
    size_t pos;       /* start of the first frame not yet handed out */
    size_t cap;
    size_t max_frame; /* larger frames break the stream */
};

void frame_in_init(struct frame_in *in, size_t max_frame);
void frame_in_free(struct frame_in *in);

/* Reads what fd has (one read call, retrying on EINTR, and waiting in
 * poll when a non-blocking fd has nothing yet) into the buffer, growing
 * it to hold at least the frame in progress.  Returns the number of bytes
 * read, 0 at end of file, or a negative value on error (HL_ENOMEM, or
 * -errno). */
long frame_in_read(struct frame_in *in, int fd);

/* As frame_in_read, without waiting: -EAGAIN when fd has nothing yet, and
 * -EOPNOTSUPP where the kernel cannot read fd so (RWF_NOWAIT: pipes from
 * Linux 6.4 on).  One system call where poll and then read take two. */
long frame_in_try(struct frame_in *in, int fd);

/* Hands out the next complete frame: returns 1 and sets *off, *len (the
 * payload is in->buf + *off), 0 if no complete frame is buffered, or
 * HL_EBADTERM if the next frame is longer than max_frame. */
int frame_in_next(struct frame_in *in, size_t *off, size_t *len);

/* Drops the frames handed out, moving a partial frame to the front. */
void frame_in_compact(struct frame_in *in);

/* The longest payload a frame can carry: its length field is 32 bits. */
#define FRAME_MAX_PAYLOAD ((size_t)UINT32_MAX)

/* Starts a frame in out; returns where it starts (pass it to frame_end). */
size_t frame_begin(struct codec_enc *out);
/* Fills in the length of the frame started at `start`.  Returns 0;
 * out->err if encoding failed; or HL_ETOOBIG, the length left unwritten,
 * when the payload is longer than FRAME_MAX_PAYLOAD (its low 32 bits
 * would announce a shorter frame and desynchronise the stream).  On an
 * error the caller must frame_cancel the frame. */
int frame_end(struct codec_enc *out, size_t start);
/* Drops a half-encoded frame started at `start` and clears out->err. */
void frame_cancel(struct codec_enc *out, size_t start);

/* Writes all of out to fd (looping on short writes and EINTR, and waiting
 * in poll while a non-blocking fd is full) and empties it.  Returns 0 or
 * -errno: EPIPE when the reader is gone. */
int frame_flush(struct codec_enc *out, int fd);

#endif
