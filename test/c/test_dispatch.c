/*
 * test_dispatch.c - the dispatcher's replies when memory runs out.
 *
 * A reply that cannot be encoded is answered {Id, {error, nomem}}; when
 * not even that fits, no half-made frame may stay in the output (its
 * length never filled in, it would be sent and put every later reply out
 * of step), and the port must exit rather than leave the request
 * unanswered.  Built with -Wl,--wrap=realloc (Makefile) so that the
 * test decides when our code's realloc fails; LMDB's own calls are not
 * wrapped.  Bad-header requests are answered without touching the store,
 * so no store is opened.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec.h"
#include "dispatch.h"
#include "protocol.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int fail_realloc;

void *__wrap_realloc(void *p, size_t n) { return fail_realloc ? NULL : __real_realloc(p, n); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 1 when out holds nothing but whole frames, each empty or a term. */
static int whole_frames(const struct codec_enc *out, int *frames)
{
    size_t pos = 0;
    *frames = 0;
    while (pos + 4 <= out->len) {
        size_t n = get32(out->buf + pos);
        if (pos + 4 + n > out->len || (n && out->buf[pos + 4] != 131))
            return 0;
        pos += 4 + n;
        (*frames)++;
    }
    return pos == out->len;
}

static void nomem_fallback_fails_too(void)
{
    struct dispatch d;
    dispatch_init(&d, NULL, 1);
    static const uint8_t not_a_request[] = {131, 97, 1}; /* answered {0, {error, ...}} */
    static const uint8_t empty_frame[4] = {0};
    dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    size_t one = d.out.len;
    if (!CHECK(one > 4 && d.out.err == 0))
        return;
    /* fill the output buffer to a dozen bytes short of its capacity, so
     * that the next reply, and its shorter fallback, must grow it */
    while (d.out.cap - d.out.len >= one + 20)
        dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    while (d.out.cap - d.out.len >= 14)
        codec_enc_raw(&d.out, empty_frame, sizeof empty_frame);
    int before;
    CHECK(whole_frames(&d.out, &before));
    CHECK_EQ_INT(d.fatal, 0);
    fail_realloc = 1;
    dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    fail_realloc = 0;
    int after;
    CHECK(whole_frames(&d.out, &after));
    CHECK_EQ_INT(after, before); /* no reply, and no part of one */
    CHECK_EQ_INT(d.fatal, EXIT_NOMEM); /* the port exits: the server settles it */
    dispatch_free(&d);
}

/* The usual case: the reply does not fit, the shorter fallback does. */
static void nomem_fallback_fits(void)
{
    struct dispatch d;
    dispatch_init(&d, NULL, 1);
    static const uint8_t not_a_request[] = {131, 97, 1};
    static const uint8_t empty_frame[4] = {0};
    /* {0, {error, nomem}}, the id as the fixed 8-byte integer every reply
     * carries: 4 + 1 + 2 + 11 + 2 + 7 + 7 bytes */
    const size_t fallback = 34;
    dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    size_t one = d.out.len;
    if (!CHECK(one > fallback + 4))
        return;
    while (d.out.cap - d.out.len >= one + 20)
        dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    while (d.out.cap - d.out.len >= fallback + 4)
        codec_enc_raw(&d.out, empty_frame, sizeof empty_frame);
    if (!CHECK(d.out.cap - d.out.len >= fallback))
        return;
    int before, after;
    CHECK(whole_frames(&d.out, &before));
    size_t at = d.out.len;
    fail_realloc = 1;
    dispatch_frame(&d, not_a_request, 0, sizeof not_a_request);
    fail_realloc = 0;
    CHECK(whole_frames(&d.out, &after));
    CHECK_EQ_INT(after, before + 1);
    CHECK_EQ_INT(d.out.len - at, fallback);
    CHECK(memmem(d.out.buf + at, d.out.len - at, "nomem", 5) != NULL);
    CHECK_EQ_INT(d.fatal, 0); /* answered: the port serves on */
    dispatch_free(&d);
}

int main(void)
{
    nomem_fallback_fails_too();
    nomem_fallback_fits();
    return check_summary();
}
