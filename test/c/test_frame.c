/*
 * test_frame.c - {packet, 4} framing (port_src/frame.h).
 *
 *   - frame_end refuses a payload longer than its 32-bit length can say,
 *     instead of writing the low 32 bits (a reply of 4 GiB + 5 bytes
 *     announced as 5 bytes would desynchronise every later reply).  The
 *     length is faked: frame_end reads only out->len and writes only the
 *     4-byte header, so no 4 GiB buffer is needed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    frame_end_length_bound();
    return check_summary();
}
