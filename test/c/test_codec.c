/*
 * test_codec.c - the checked term decoder and the encoder (port_src/codec.h).
 *
 *   - every encoder round-trips through the checked decoder;
 *   - agreement with erl_interface's ei in both directions: bytes ei makes
 *     decode with ours to the same values, bytes we make decode with ei
 *     (random terms, compared through a canonical text form);
 *   - every truncation of every valid request frame is refused with
 *     HL_EBADTERM; each prefix sits in a malloc'd block of exactly its
 *     size, so ASan reports any read past the end;
 *   - lying lengths and counts are refused before they are used;
 *   - codec_dec_skip on nested terms of every kind, and its depth bound.
 */
#include <ei.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "errors.h"

/* ---- a canonical text form of a term, two ways ------------------------ */

/* Terms are compared as text: integers in decimal ("neg" for any negative
 * one: the checked decoder reads only non-negative integers), atoms as
 * 'name', binaries as <<hex>>, tuples {a,b}, lists [a,b]. */
struct text {
    char s[1 << 20];
    size_t n;
    int overflow;
};

static void tput(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof t->s - t->n;
    int k = vsnprintf(t->s + t->n, room, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= room)
        t->overflow = 1;
    else
        t->n += (size_t)k;
}

static void tput_hex(struct text *t, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tput(t, "%02x", p[i]);
}

/* Reads one term with the checked decoder into t.  Returns 0 or the
 * decoder's error. */
static int ours_text(struct codec_dec *d, struct text *t)
{
    int rc;
    if (d->pos >= d->len)
        return HL_EBADTERM;
    uint8_t tag = d->buf[d->pos];
    switch (tag) {
    case 97:
    case 98:
    case 110: {
        uint64_t v;
        size_t save = d->pos;
        if (codec_dec_u64(d, &v) == 0) {
            tput(t, "%llu", (unsigned long long)v);
            return 0;
        }
        /* Not a u64: a negative or a too large integer is still a term. */
        d->pos = save;
        if ((rc = codec_dec_skip(d)))
            return rc;
        tput(t, "neg");
        return 0;
    }
    case 100:
    case 115:
    case 118:
    case 119: {
        const char *a;
        size_t n;
        if ((rc = codec_dec_atom(d, &a, &n)))
            return rc;
        tput(t, "'%.*s'", (int)n, a);
        return 0;
    }
    case 109: {
        const uint8_t *b;
        size_t n;
        if ((rc = codec_dec_binary(d, &b, &n)))
            return rc;
        tput(t, "<<");
        tput_hex(t, b, n);
        tput(t, ">>");
        return 0;
    }
    case 104:
    case 105: {
        uint32_t arity;
        if ((rc = codec_dec_tuple(d, &arity)))
            return rc;
        tput(t, "{");
        for (uint32_t i = 0; i < arity; i++) {
            if (i)
                tput(t, ",");
            if ((rc = ours_text(d, t)))
                return rc;
        }
        tput(t, "}");
        return 0;
    }
    case 106:
    case 108: {
        uint32_t count;
        if ((rc = codec_dec_list(d, &count)))
            return rc;
        tput(t, "[");
        for (uint32_t i = 0; i < count; i++) {
            if (i)
                tput(t, ",");
            if ((rc = ours_text(d, t)))
                return rc;
        }
        if (count && (rc = codec_dec_list_end(d)))
            return rc;
        tput(t, "]");
        return 0;
    }
    default:
        return HL_EBADTERM;
    }
}

/* A whole frame (version + one term, nothing after) with our decoder. */
static int ours_frame_text(const uint8_t *buf, size_t len, struct text *t)
{
    struct codec_dec d;
    int rc;
    t->n = 0;
    t->overflow = 0;
    codec_dec_init(&d, buf, len);
    if ((rc = codec_dec_version(&d)) || (rc = ours_text(&d, t)))
        return rc;
    return codec_dec_at_end(&d) ? 0 : HL_EBADTERM;
}

/* The same with ei.  Returns 0, or -1 where ei refuses. */
static int ei_text(const char *buf, int *idx, struct text *t)
{
    int type, size;
    if (ei_get_type(buf, idx, &type, &size))
        return -1;
    switch (type) {
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT:
    case ERL_SMALL_BIG_EXT: {
        long long s;
        unsigned long long u;
        int save = *idx;
        if (ei_decode_longlong(buf, idx, &s) == 0) {
            if (s < 0)
                tput(t, "neg");
            else
                tput(t, "%llu", (unsigned long long)s);
            return 0;
        }
        *idx = save;
        if (ei_decode_ulonglong(buf, idx, &u))
            return -1;
        tput(t, "%llu", u);
        return 0;
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char atom[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, atom))
            return -1;
        tput(t, "'%s'", atom);
        return 0;
    }
    case ERL_BINARY_EXT: {
        uint8_t *b = malloc(size ? (size_t)size : 1);
        long n;
        int rc = ei_decode_binary(buf, idx, b, &n);
        if (rc == 0) {
            tput(t, "<<");
            tput_hex(t, b, (size_t)n);
            tput(t, ">>");
        }
        free(b);
        return rc ? -1 : 0;
    }
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT: {
        int arity;
        if (ei_decode_tuple_header(buf, idx, &arity))
            return -1;
        tput(t, "{");
        for (int i = 0; i < arity; i++) {
            if (i)
                tput(t, ",");
            if (ei_text(buf, idx, t))
                return -1;
        }
        tput(t, "}");
        return 0;
    }
    case ERL_NIL_EXT:
    case ERL_LIST_EXT: {
        int count, tail;
        if (ei_decode_list_header(buf, idx, &count))
            return -1;
        tput(t, "[");
        for (int i = 0; i < count; i++) {
            if (i)
                tput(t, ",");
            if (ei_text(buf, idx, t))
                return -1;
        }
        if (count && (ei_decode_list_header(buf, idx, &tail) || tail != 0))
            return -1;
        tput(t, "]");
        return 0;
    }
    default:
        return -1;
    }
}

static int ei_frame_text(const uint8_t *buf, size_t len, struct text *t)
{
    int idx = 0, version;
    t->n = 0;
    t->overflow = 0;
    if (ei_decode_version((const char *)buf, &idx, &version) ||
        ei_text((const char *)buf, &idx, t))
        return -1;
    return (size_t)idx == len ? 0 : -1;
}

/* ---- round trips through the checked decoder --------------------------- */

static void u64_round_trip(uint64_t v, size_t want_len, uint8_t want_tag)
{
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_u64(&e, v);
    CHECK_EQ_INT(e.err, 0);
    CHECK_EQ_INT(e.len, want_len);
    CHECK_EQ_INT(e.buf[0], want_tag);
    struct codec_dec d;
    uint64_t got = ~v;
    codec_dec_init(&d, e.buf, e.len);
    CHECK_EQ_INT(codec_dec_u64(&d, &got), 0);
    CHECK(got == v);
    CHECK(codec_dec_at_end(&d));
    /* i64 writes the same bytes for a non-negative value */
    if (v <= INT64_MAX) {
        struct codec_enc e2;
        codec_enc_init(&e2);
        codec_enc_i64(&e2, (int64_t)v);
        CHECK_MEM(e2.buf, e2.len, e.buf, e.len);
        codec_enc_free(&e2);
    }
    codec_enc_free(&e);
}

static void round_trips(void)
{
    /* integers: the canonical external format picks the smallest form */
    u64_round_trip(0, 2, 97);
    u64_round_trip(1, 2, 97);
    u64_round_trip(255, 2, 97);
    u64_round_trip(256, 5, 98);
    u64_round_trip(65535, 5, 98);
    u64_round_trip(2147483647ULL, 5, 98);   /* 2^31 - 1 */
    u64_round_trip(2147483648ULL, 7, 110);  /* 2^31: 4-byte big */
    u64_round_trip(4294967295ULL, 7, 110);  /* 2^32 - 1 */
    u64_round_trip(4294967296ULL, 8, 110);  /* 2^32 */
    u64_round_trip(1ULL << 60, 11, 110);
    u64_round_trip(9223372036854775808ULL, 11, 110); /* 2^63 */
    u64_round_trip(UINT64_MAX, 11, 110);

    /* the reply prefix protocol.h promises for ids 2^60 + N */
    for (uint64_t n = 0; n < 70000; n += 6999) {
        struct codec_enc e;
        codec_enc_init(&e);
        codec_enc_version(&e);
        codec_enc_tuple(&e, 2);
        codec_enc_u64(&e, (1ULL << 60) + n);
        static const uint8_t head[] = {131, 104, 2, 110, 8, 0};
        CHECK(e.len == 14 && memcmp(e.buf, head, sizeof head) == 0);
        uint64_t le = 0;
        for (int i = 0; i < 8; i++)
            le |= (uint64_t)e.buf[6 + i] << (8 * i);
        CHECK(le == (1ULL << 60) + n);
        codec_enc_free(&e);
    }

    /* version, tuples (small and large), lists, nil, atoms, binaries */
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 0);
    codec_enc_tuple(&e, 255);
    codec_enc_tuple(&e, 256);
    codec_enc_tuple(&e, UINT32_MAX);
    codec_enc_list(&e, 1);
    codec_enc_nil(&e);
    codec_enc_list(&e, 2);
    codec_enc_atom(&e, "");
    codec_enc_atom(&e, "write_many");
    codec_enc_binary(&e, "", 0);
    codec_enc_binary(&e, "a\0b", 3);
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 8));
    codec_enc_binary(&e, big, sizeof big);
    codec_enc_nil(&e);
    CHECK_EQ_INT(e.err, 0);

    struct codec_dec d;
    uint32_t n;
    const char *a;
    const uint8_t *b;
    size_t alen, blen;
    codec_dec_init(&d, e.buf, e.len);
    CHECK_EQ_INT(codec_dec_version(&d), 0);
    CHECK(codec_dec_tuple(&d, &n) == 0 && n == 0);
    CHECK(codec_dec_tuple(&d, &n) == 0 && n == 255);
    CHECK_EQ_INT(d.pos, 5); /* 255 still fits SMALL_TUPLE_EXT */
    CHECK(codec_dec_tuple(&d, &n) == 0 && n == 256);
    CHECK_EQ_INT(d.pos, 10); /* 256 needs LARGE_TUPLE_EXT */
    CHECK(codec_dec_tuple(&d, &n) == 0 && n == UINT32_MAX);
    CHECK(codec_dec_list(&d, &n) == 0 && n == 1);
    CHECK(codec_dec_list(&d, &n) == 0 && n == 0); /* the nil element */
    CHECK(codec_dec_list(&d, &n) == 0 && n == 2);
    CHECK(codec_dec_atom(&d, &a, &alen) == 0 && alen == 0);
    CHECK(codec_dec_atom(&d, &a, &alen) == 0 && alen == 10 && memcmp(a, "write_many", 10) == 0);
    CHECK(codec_dec_binary(&d, &b, &blen) == 0 && blen == 0);
    CHECK(codec_dec_binary(&d, &b, &blen) == 0);
    CHECK_MEM(b, blen, "a\0b", 3);
    CHECK(codec_dec_binary(&d, &b, &blen) == 0);
    CHECK_MEM(b, blen, big, sizeof big);
    CHECK(b > e.buf && b < e.buf + e.len); /* not copied: points into the frame */
    CHECK(!codec_dec_at_end(&d));
    CHECK_EQ_INT(codec_dec_list_end(&d), 0);
    CHECK(codec_dec_at_end(&d));
    /* past the end, every decoder refuses */
    uint64_t v;
    CHECK_EQ_INT(codec_dec_version(&d), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_tuple(&d, &n), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_list(&d, &n), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_list_end(&d), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_u64(&d, &v), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_atom(&d, &a, &alen), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_binary(&d, &b, &blen), HL_EBADTERM);
    CHECK_EQ_INT(codec_dec_skip(&d), HL_EBADTERM);
    CHECK(!codec_dec_is_atom(&d, ""));
    codec_enc_free(&e);

    /* an atom of 255 bytes, the longest SMALL_ATOM_UTF8_EXT */
    char long_atom[256];
    memset(long_atom, 'x', 255);
    long_atom[255] = 0;
    codec_enc_init(&e);
    codec_enc_atom(&e, long_atom);
    codec_dec_init(&d, e.buf, e.len);
    CHECK(codec_dec_atom(&d, &a, &alen) == 0 && alen == 255 && codec_dec_at_end(&d));
    codec_enc_free(&e);

    /* is_atom: exact names only, and the cursor stays put on a mismatch */
    static const uint8_t atom[] = {119, 4, 'r', 'e', 'a', 'd', 109, 0, 0, 0, 4, 'r', 'e', 'a', 'd'};
    codec_dec_init(&d, atom, sizeof atom);
    CHECK(!codec_dec_is_atom(&d, "rea"));
    CHECK(!codec_dec_is_atom(&d, "reads"));
    CHECK(!codec_dec_is_atom(&d, "READ"));
    CHECK_EQ_INT(d.pos, 0);
    CHECK(codec_dec_is_atom(&d, "read"));
    CHECK_EQ_INT(d.pos, 6);
    CHECK(!codec_dec_is_atom(&d, "read")); /* a binary "read" is no atom */
    CHECK_EQ_INT(d.pos, 6);

    /* the version byte is 131 and nothing else */
    static const uint8_t v130[] = {130, 97, 1};
    codec_dec_init(&d, v130, sizeof v130);
    CHECK_EQ_INT(codec_dec_version(&d), HL_EBADTERM);

    /* raw and reserve: what a packed binary is built with */
    codec_enc_init(&e);
    size_t total = 0;
    for (int i = 0; i < 300; i++) {
        size_t k = (size_t)((i * 37 + 1) % 5000);
        uint8_t *p = codec_enc_reserve(&e, k);
        CHECK(p != NULL);
        memset(p, i & 0xff, k);
        e.len += k;
        total += k;
        codec_enc_raw(&e, "", 0);
    }
    CHECK_EQ_INT(e.len, total);
    CHECK(e.cap >= e.len);
    size_t at = 0, bad = 0;
    for (int i = 0; i < 300; i++) {
        size_t k = (size_t)((i * 37 + 1) % 5000);
        for (size_t j = 0; j < k; j++)
            bad += e.buf[at + j] != (uint8_t)(i & 0xff);
        at += k;
    }
    CHECK_EQ_INT(bad, 0);
    codec_enc_free(&e);
    CHECK(e.buf == NULL && e.len == 0 && e.cap == 0 && e.err == 0);

    /* A binary too long for BINARY_EXT sets err, and the encoder then does
     * nothing more (the data pointer is never read). */
    codec_enc_init(&e);
    codec_enc_version(&e);
    if (sizeof(size_t) > 4) {
        codec_enc_binary(&e, big, (size_t)UINT32_MAX + 1);
        CHECK_EQ_INT(e.err, HL_ENOMEM);
        CHECK_EQ_INT(e.len, 1);
        codec_enc_atom(&e, "ok");
        codec_enc_u64(&e, 5);
        CHECK_EQ_INT(e.len, 1);
        CHECK(codec_enc_reserve(&e, 1) == NULL);
    }
    codec_enc_free(&e);
}

/* Runs fn in a child process, so that a sanitizer abort in it is one
 * failed check, not the end of the whole program.  Returns 1 when the
 * child returned 0 and exited cleanly. */
static int in_child(int (*fn)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Zero bytes on an encoder that has no buffer yet: codec.h promises a
 * pointer, or NULL with err set, and no undefined behaviour (UBSan). */
static int empty_reserve_child(void)
{
    struct codec_enc e;
    codec_enc_init(&e);
    uint8_t *p = codec_enc_reserve(&e, 0);
    int ok = p != NULL || e.err != 0;
    codec_enc_raw(&e, "", 0);
    ok = ok && e.len == 0;
    codec_enc_free(&e);
    return ok ? 0 : 1;
}

static void empty_reserve(void)
{
    CHECK(in_child(empty_reserve_child));
}

/* A list whose length is known only once it is written (the port's
 * stats): its header's count set afterwards; a wrong offset is ignored. */
static void list_count_patched(void)
{
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    size_t head = e.len;
    codec_enc_list(&e, 1);
    codec_enc_atom(&e, "a");
    codec_enc_atom(&e, "b");
    codec_enc_atom(&e, "c");
    codec_enc_nil(&e);
    codec_enc_list_count(&e, head, 3);
    codec_enc_list_count(&e, head + 1, 7); /* not a list header: untouched */
    codec_enc_list_count(&e, e.len, 7);    /* past the end: untouched */
    CHECK_EQ_INT(e.err, 0);
    struct codec_dec d;
    uint32_t n = 0;
    const char *a;
    size_t alen;
    codec_dec_init(&d, e.buf, e.len);
    CHECK(codec_dec_version(&d) == 0 && codec_dec_list(&d, &n) == 0 && n == 3);
    for (uint32_t i = 0; i < 3 && i < n; i++)
        CHECK(codec_dec_atom(&d, &a, &alen) == 0 && alen == 1 && a[0] == (char)('a' + i));
    CHECK(codec_dec_list_end(&d) == 0);
    codec_enc_free(&e);
}

/* ---- ei -> checked decoder ---------------------------------------------- */

/* A frame made by ei, and the text it must decode to. */
static void ei_frame_decodes(ei_x_buff *x, const char *want)
{
    struct text *t = malloc(sizeof *t);
    uint8_t *copy = malloc((size_t)x->index);
    memcpy(copy, x->buff, (size_t)x->index);
    CHECK_EQ_INT(ours_frame_text(copy, (size_t)x->index, t), 0);
    CHECK_STR(t->s, t->n, want);
    /* skip consumes exactly the term */
    struct codec_dec d;
    codec_dec_init(&d, copy, (size_t)x->index);
    CHECK_EQ_INT(codec_dec_version(&d), 0);
    CHECK_EQ_INT(codec_dec_skip(&d), 0);
    CHECK(codec_dec_at_end(&d));
    free(copy);
    free(t);
}

static void ei_u64(unsigned long long v, const char *want)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_ulonglong(&x, v);
    ei_frame_decodes(&x, want);
    struct codec_dec d;
    uint64_t got = 0;
    codec_dec_init(&d, (const uint8_t *)x.buff + 1, (size_t)x.index - 1);
    CHECK_EQ_INT(codec_dec_u64(&d, &got), 0);
    CHECK(got == v);
    ei_x_free(&x);
    /* the same value through ei's signed encoder, where it fits */
    if (v <= INT64_MAX) {
        ei_x_new_with_version(&x);
        ei_x_encode_longlong(&x, (long long)v);
        ei_frame_decodes(&x, want);
        ei_x_free(&x);
    }
}

/* A negative integer is a well-formed term but no u64. */
static void ei_negative(long long v)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_longlong(&x, v);
    struct codec_dec d;
    uint64_t got;
    codec_dec_init(&d, (const uint8_t *)x.buff + 1, (size_t)x.index - 1);
    CHECK_EQ_INT(codec_dec_u64(&d, &got), HL_EBADTERM);
    codec_dec_init(&d, (const uint8_t *)x.buff + 1, (size_t)x.index - 1);
    CHECK_EQ_INT(codec_dec_skip(&d), 0);
    CHECK(codec_dec_at_end(&d));
    ei_x_free(&x);
}

static void ei_to_ours(void)
{
    ei_u64(0, "0");
    ei_u64(1, "1");
    ei_u64(255, "255");
    ei_u64(256, "256");
    ei_u64(65536, "65536");
    ei_u64((1ULL << 27) - 1, "134217727");
    ei_u64(1ULL << 27, "134217728");
    ei_u64(2147483647ULL, "2147483647");
    ei_u64(2147483648ULL, "2147483648");
    ei_u64(4294967296ULL, "4294967296");
    ei_u64((1ULL << 60) + 42, "1152921504606847018");
    ei_u64(9223372036854775807ULL, "9223372036854775807");
    ei_u64(9223372036854775808ULL, "9223372036854775808"); /* 2^63 */
    ei_u64(UINT64_MAX, "18446744073709551615");
    ei_negative(-1);
    ei_negative(-255);
    ei_negative(-256);
    ei_negative(-2147483647LL - 1);
    ei_negative(-2147483649LL);
    ei_negative(INT64_MIN);

    /* a request as the server sends it, with every kind of argument */
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_ulonglong(&x, (1ULL << 60) + 7);
    ei_x_encode_atom(&x, "write_many");
    ei_x_encode_list_header(&x, 3);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "write");
    ei_x_encode_binary(&x, "a/b", 3);
    ei_x_encode_binary(&x, "v\0\xff", 3);
    ei_x_encode_tuple_header(&x, 2);
    ei_x_encode_atom(&x, "make_group");
    ei_x_encode_binary(&x, "", 0);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "make_link");
    ei_x_encode_binary(&x, "x", 1);
    ei_x_encode_binary(&x, "y", 1);
    ei_x_encode_empty_list(&x);
    ei_frame_decodes(&x, "{1152921504606846983,'write_many',[{'write',<<612f62>>,<<7600ff>>},"
                         "{'make_group',<<>>},{'make_link',<<78>>,<<79>>}]}");
    ei_x_free(&x);

    /* every atom encoding ei can produce */
    static const erlang_char_encoding encs[] = {ERLANG_LATIN1, ERLANG_UTF8};
    for (int i = 0; i < 2; i++) {
        ei_x_new_with_version(&x);
        ei_x_encode_atom_len_as(&x, "undefined", 9, ERLANG_LATIN1, encs[i]);
        ei_frame_decodes(&x, "'undefined'");
        struct codec_dec d;
        codec_dec_init(&d, (const uint8_t *)x.buff + 1, (size_t)x.index - 1);
        CHECK(codec_dec_is_atom(&d, "undefined"));
        ei_x_free(&x);
    }
    static const uint8_t atoms[][8] = {
        {100, 0, 3, 'a', 's', 'c'},  /* ATOM_EXT */
        {115, 3, 'a', 's', 'c'},     /* SMALL_ATOM_EXT */
        {118, 0, 3, 'a', 's', 'c'},  /* ATOM_UTF8_EXT */
        {119, 3, 'a', 's', 'c'},     /* SMALL_ATOM_UTF8_EXT */
    };
    static const size_t atom_lens[] = {6, 5, 6, 5};
    for (int i = 0; i < 4; i++) {
        struct codec_dec d;
        const char *a;
        size_t n;
        codec_dec_init(&d, atoms[i], atom_lens[i]);
        CHECK(codec_dec_atom(&d, &a, &n) == 0 && n == 3 && memcmp(a, "asc", 3) == 0);
        CHECK(codec_dec_at_end(&d));
        codec_dec_init(&d, atoms[i], atom_lens[i]);
        CHECK(codec_dec_is_atom(&d, "asc"));
        int idx = 0;
        char buf[MAXATOMLEN_UTF8];
        CHECK(ei_decode_atom((const char *)atoms[i], &idx, buf) == 0 && strcmp(buf, "asc") == 0);
    }

    /* a large tuple */
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 300);
    char want[300 * 4 + 3] = "{";
    for (int i = 0; i < 300; i++) {
        ei_x_encode_ulonglong(&x, (unsigned long long)i);
        char num[8];
        snprintf(num, sizeof num, i ? ",%d" : "%d", i);
        strcat(want, num);
    }
    strcat(want, "}");
    ei_frame_decodes(&x, want);
    ei_x_free(&x);

    /* binaries of awkward sizes */
    static uint8_t blob[70000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i ^ (i >> 9));
    static const size_t sizes[] = {0, 1, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ei_x_new_with_version(&x);
        ei_x_encode_binary(&x, blob, (int)sizes[i]);
        struct codec_dec d;
        const uint8_t *b;
        size_t n;
        codec_dec_init(&d, (const uint8_t *)x.buff, (size_t)x.index);
        CHECK_EQ_INT(codec_dec_version(&d), 0);
        CHECK_EQ_INT(codec_dec_binary(&d, &b, &n), 0);
        CHECK_MEM(b, n, blob, sizes[i]);
        CHECK(codec_dec_at_end(&d));
        ei_x_free(&x);
    }
}

/* ---- checked encoder -> ei ----------------------------------------------- */

static void ours_u64_to_ei(uint64_t v)
{
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_u64(&e, v);
    int idx = 0, version;
    unsigned long long got = 0;
    CHECK_EQ_INT(ei_decode_version((const char *)e.buf, &idx, &version), 0);
    CHECK_EQ_INT(ei_decode_ulonglong((const char *)e.buf, &idx, &got), 0);
    CHECK(got == v);
    CHECK_EQ_INT((size_t)idx, e.len);
    codec_enc_free(&e);
}

static void ours_i64_to_ei(int64_t v)
{
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_i64(&e, v);
    int idx = 0, version;
    long long got = 0;
    CHECK_EQ_INT(ei_decode_version((const char *)e.buf, &idx, &version), 0);
    if (CHECK_EQ_INT(ei_decode_longlong((const char *)e.buf, &idx, &got), 0))
        CHECK_EQ_INT(got, v);
    CHECK_EQ_INT((size_t)idx, e.len);
    /* skip knows every form i64 writes */
    struct codec_dec d;
    codec_dec_init(&d, e.buf, e.len);
    CHECK(codec_dec_version(&d) == 0 && codec_dec_skip(&d) == 0 && codec_dec_at_end(&d));
    codec_enc_free(&e);
}

static void ours_to_ei(void)
{
    static const uint64_t us[] = {0,
                                  1,
                                  255,
                                  256,
                                  65535,
                                  (1ULL << 27) - 1,
                                  1ULL << 27,
                                  2147483647ULL,
                                  2147483648ULL,
                                  4294967295ULL,
                                  4294967296ULL,
                                  (1ULL << 60) + 12345,
                                  9223372036854775807ULL,
                                  9223372036854775808ULL,
                                  UINT64_MAX};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
        ours_u64_to_ei(us[i]);
    static const int64_t is[] = {0,
                                 1,
                                 -1,
                                 -128,
                                 -255,
                                 -256,
                                 -65536,
                                 -2147483647LL,
                                 -2147483647LL - 1, /* INT32_MIN: still INTEGER_EXT */
                                 -2147483649LL,
                                 -4294967296LL,
                                 -30792, /* MDB_MAP_FULL, as an lmdb error reply has it */
                                 INT64_MIN + 1,
                                 INT64_MIN,
                                 INT64_MAX};
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++)
        ours_i64_to_ei(is[i]);

    /* an error reply as dispatch.c builds it */
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 2);
    codec_enc_u64(&e, (1ULL << 60) + 3);
    codec_enc_tuple(&e, 2);
    codec_enc_atom(&e, "error");
    codec_enc_tuple(&e, 3);
    codec_enc_atom(&e, "lmdb");
    codec_enc_i64(&e, -30792);
    codec_enc_binary(&e, "MDB_MAP_FULL", 12);
    int idx = 0, version, arity;
    char atom[MAXATOMLEN_UTF8];
    unsigned long long id;
    long long code;
    char text[32];
    long tlen;
    const char *b = (const char *)e.buf;
    CHECK_EQ_INT(ei_decode_version(b, &idx, &version), 0);
    CHECK(ei_decode_tuple_header(b, &idx, &arity) == 0 && arity == 2);
    CHECK(ei_decode_ulonglong(b, &idx, &id) == 0 && id == (1ULL << 60) + 3);
    CHECK(ei_decode_tuple_header(b, &idx, &arity) == 0 && arity == 2);
    CHECK(ei_decode_atom(b, &idx, atom) == 0 && strcmp(atom, "error") == 0);
    CHECK(ei_decode_tuple_header(b, &idx, &arity) == 0 && arity == 3);
    CHECK(ei_decode_atom(b, &idx, atom) == 0 && strcmp(atom, "lmdb") == 0);
    CHECK(ei_decode_longlong(b, &idx, &code) == 0 && code == -30792);
    CHECK(ei_decode_binary(b, &idx, text, &tlen) == 0);
    CHECK_MEM(text, tlen, "MDB_MAP_FULL", 12);
    CHECK_EQ_INT((size_t)idx, e.len);
    codec_enc_free(&e);

    /* a large tuple and a long list */
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 1000);
    for (uint64_t i = 0; i < 1000; i++)
        codec_enc_u64(&e, i * 1000003);
    idx = 0;
    b = (const char *)e.buf;
    CHECK_EQ_INT(ei_decode_version(b, &idx, &version), 0);
    CHECK(ei_decode_tuple_header(b, &idx, &arity) == 0 && arity == 1000);
    int bad = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        unsigned long long u;
        bad += ei_decode_ulonglong(b, &idx, &u) != 0 || u != i * 1000003;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT((size_t)idx, e.len);
    codec_enc_free(&e);
}

/* ---- random terms: ours, ei and a model agree ---------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3ULL;
static uint64_t rnd64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static uint32_t rnd(uint32_t n) { return (uint32_t)(rnd64() % n); }

/* Emits one random term into both encoders and its text into the model. */
static void random_term(struct codec_enc *e, ei_x_buff *x, struct text *model, int depth)
{
    static const char *const names[] = {"ok", "read", "write_many", "undefined", "asc", "x"};
    uint32_t kind = rnd(depth > 3 ? 4 : 6);
    switch (kind) {
    case 0: { /* integer, biased to the edges of each encoding */
        static const uint64_t edges[] = {0, 255, 256, 2147483647ULL, 2147483648ULL,
                                         1ULL << 63, UINT64_MAX};
        uint64_t v = rnd(2) ? edges[rnd(7)] : rnd64() >> rnd(64);
        codec_enc_u64(e, v);
        ei_x_encode_ulonglong(x, v);
        tput(model, "%llu", (unsigned long long)v);
        break;
    }
    case 1: {
        const char *a = names[rnd(6)];
        codec_enc_atom(e, a);
        ei_x_encode_atom(x, a);
        tput(model, "'%s'", a);
        break;
    }
    case 2:
    case 3: {
        uint8_t b[300];
        size_t n = rnd(4) ? rnd(8) : rnd(300);
        for (size_t i = 0; i < n; i++)
            b[i] = (uint8_t)rnd(256);
        codec_enc_binary(e, b, n);
        ei_x_encode_binary(x, b, (int)n);
        tput(model, "<<");
        tput_hex(model, b, n);
        tput(model, ">>");
        break;
    }
    case 4: {
        uint32_t n = rnd(5) ? rnd(5) : 256 + rnd(10); /* sometimes a large tuple */
        codec_enc_tuple(e, n);
        ei_x_encode_tuple_header(x, n);
        tput(model, "{");
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                tput(model, ",");
            random_term(e, x, model, depth + 3);
        }
        tput(model, "}");
        break;
    }
    default: {
        uint32_t n = rnd(5);
        if (n) {
            codec_enc_list(e, n);
            ei_x_encode_list_header(x, n);
        }
        tput(model, "[");
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                tput(model, ",");
            random_term(e, x, model, depth + 1);
        }
        codec_enc_nil(e);
        ei_x_encode_empty_list(x);
        tput(model, "]");
        break;
    }
    }
}

static void random_terms(void)
{
    struct text *model = malloc(sizeof *model), *t = malloc(sizeof *t);
    int bad_ours = 0, bad_ei_of_ours = 0, bad_ours_of_ei = 0, bad_skip = 0;
    for (int round = 0; round < 2000; round++) {
        struct codec_enc e;
        ei_x_buff x;
        codec_enc_init(&e);
        ei_x_new_with_version(&x);
        codec_enc_version(&e);
        model->n = 0;
        model->overflow = 0;
        random_term(&e, &x, model, 0);
        if (e.err || model->overflow) {
            bad_ours++;
            continue;
        }
        /* our bytes: our decoder and ei both read the model's term */
        if (ours_frame_text(e.buf, e.len, t) || t->n != model->n ||
            memcmp(t->s, model->s, t->n))
            bad_ours++;
        if (ei_frame_text(e.buf, e.len, t) || t->n != model->n || memcmp(t->s, model->s, t->n))
            bad_ei_of_ours++;
        /* ei's bytes: our decoder reads the model's term */
        if (ours_frame_text((const uint8_t *)x.buff, (size_t)x.index, t) || t->n != model->n ||
            memcmp(t->s, model->s, t->n))
            bad_ours_of_ei++;
        struct codec_dec d;
        codec_dec_init(&d, (const uint8_t *)x.buff, (size_t)x.index);
        if (codec_dec_version(&d) || codec_dec_skip(&d) || !codec_dec_at_end(&d))
            bad_skip++;
        codec_enc_free(&e);
        ei_x_free(&x);
    }
    CHECK_EQ_INT(bad_ours, 0);
    CHECK_EQ_INT(bad_ei_of_ours, 0);
    CHECK_EQ_INT(bad_ours_of_ei, 0);
    CHECK_EQ_INT(bad_skip, 0);
    free(model);
    free(t);
}

/* ---- truncation ----------------------------------------------------------- */

/* Every valid request frame of protocol.h, built with our encoder. */
static void bin(struct codec_enc *e, const char *s) { codec_enc_binary(e, s, strlen(s)); }

static void head(struct codec_enc *e, uint64_t id, const char *op, uint32_t nargs)
{
    codec_enc_version(e);
    codec_enc_tuple(e, 2 + nargs);
    codec_enc_u64(e, id);
    codec_enc_atom(e, op);
}

static int build_request(struct codec_enc *e, int which)
{
    uint64_t id = which % 3 == 0 ? (1ULL << 60) + (uint64_t)which : which % 3 == 1 ? 7 : 70000;
    switch (which) {
    case 0:
        head(e, id, "read", 1);
        bin(e, "a/b/c");
        return 1;
    case 1:
        head(e, id, "read_many", 1);
        codec_enc_list(e, 3);
        bin(e, "a");
        bin(e, "");
        bin(e, "b/c");
        codec_enc_nil(e);
        return 1;
    case 2:
        head(e, id, "type", 1);
        bin(e, "g");
        return 1;
    case 3:
        head(e, id, "resolve", 1);
        bin(e, "l/x");
        return 1;
    case 4:
        head(e, id, "list", 4);
        bin(e, "p");
        bin(e, "c-x");
        codec_enc_u64(e, 10);
        codec_enc_atom(e, "desc");
        return 1;
    case 5:
        head(e, id, "list", 4);
        bin(e, "");
        codec_enc_atom(e, "undefined");
        codec_enc_u64(e, 0);
        codec_enc_atom(e, "asc");
        return 1;
    case 6:
        head(e, id, "write", 2);
        bin(e, "k");
        codec_enc_binary(e, "v\0\0\xff", 4);
        return 1;
    case 7:
        head(e, id, "make_group", 1);
        bin(e, "g");
        return 1;
    case 8:
        head(e, id, "make_link", 2);
        bin(e, "d");
        bin(e, "l");
        return 1;
    case 9:
        head(e, id, "delete", 1);
        bin(e, "k");
        return 1;
    case 10:
        head(e, id, "write_many", 1);
        codec_enc_list(e, 4);
        codec_enc_tuple(e, 3);
        codec_enc_atom(e, "write");
        bin(e, "a/b");
        bin(e, "v");
        codec_enc_tuple(e, 2);
        codec_enc_atom(e, "make_group");
        bin(e, "g");
        codec_enc_tuple(e, 3);
        codec_enc_atom(e, "make_link");
        bin(e, "a");
        bin(e, "l");
        codec_enc_tuple(e, 2);
        codec_enc_atom(e, "delete");
        bin(e, "x");
        codec_enc_nil(e);
        return 1;
    case 11:
        head(e, id, "reset", 0);
        return 1;
    case 12:
        head(e, id, "sync", 0);
        return 1;
    case 13:
        head(e, id, "stats", 0);
        return 1;
    case 14:
        head(e, id, "ping", 0);
        return 1;
    case 15:
        head(e, id, "scan", 2);
        bin(e, "a");
        codec_enc_u64(e, 100);
        return 1;
    case 16:
        head(e, id, "scan", 2);
        codec_enc_atom(e, "undefined");
        codec_enc_u64(e, 0);
        return 1;
    case 17:
        head(e, id, "match", 1);
        codec_enc_list(e, 2);
        codec_enc_tuple(e, 2);
        bin(e, "type");
        bin(e, "t");
        codec_enc_tuple(e, 2);
        bin(e, "owner");
        bin(e, "o");
        codec_enc_nil(e);
        return 1;
    case 18:
        head(e, id, "fault", 1);
        codec_enc_atom(e, "crash_mid_reply");
        return 1;
    case 19:
        head(e, id, "write_many", 1);
        codec_enc_nil(e);
        return 1;
    default:
        return 0;
    }
}

/* Copies <buf, cut> into a block of exactly cut bytes. */
static uint8_t *exact_copy(const uint8_t *buf, size_t cut)
{
    uint8_t *p = malloc(cut); /* ASan: even malloc(0) is a block of its own */
    if (cut)
        memcpy(p, buf, cut);
    return p;
}

/* Every strict prefix of a valid frame is refused by the generic decoder
 * and by skip, with HL_EBADTERM and no read past the prefix. */
static void prefixes_refused(const uint8_t *frame, size_t len, int *bad_full, int *bad_prefix)
{
    struct text *t = malloc(sizeof *t);
    if (ours_frame_text(frame, len, t) != 0)
        (*bad_full)++;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = exact_copy(frame, cut);
        struct codec_dec d;
        if (ours_frame_text(p, cut, t) != HL_EBADTERM)
            (*bad_prefix)++;
        codec_dec_init(&d, p, cut);
        int rc = codec_dec_version(&d);
        if (rc == 0)
            rc = codec_dec_skip(&d);
        if (rc != HL_EBADTERM)
            (*bad_prefix)++;
        free(p);
    }
    free(t);
}

static void truncation(void)
{
    int bad_full = 0, bad_prefix = 0, frames = 0;
    for (int which = 0;; which++) {
        struct codec_enc e;
        codec_enc_init(&e);
        if (!build_request(&e, which)) {
            codec_enc_free(&e);
            break;
        }
        CHECK_EQ_INT(e.err, 0);
        prefixes_refused(e.buf, e.len, &bad_full, &bad_prefix);
        frames++;
        codec_enc_free(&e);
    }
    CHECK(frames >= 20);
    /* and frames made by ei, including random ones */
    for (int round = 0, kept = 0; kept < 200 && round < 5000; round++) {
        struct codec_enc e;
        ei_x_buff x;
        struct text *model = malloc(sizeof *model);
        model->n = 0;
        codec_enc_init(&e);
        ei_x_new_with_version(&x);
        ei_x_encode_tuple_header(&x, 3);
        ei_x_encode_ulonglong(&x, (1ULL << 60) + (unsigned long long)round);
        ei_x_encode_atom(&x, "write_many");
        random_term(&e, &x, model, 0);
        if (x.index <= 600) { /* quadratic in the size: keep them small */
            prefixes_refused((const uint8_t *)x.buff, (size_t)x.index, &bad_full, &bad_prefix);
            kept++;
        }
        codec_enc_free(&e);
        ei_x_free(&x);
        free(model);
    }
    CHECK_EQ_INT(bad_full, 0);
    CHECK_EQ_INT(bad_prefix, 0);

    /* each decoder on its own, on every prefix of its item */
    static const uint8_t items[][12] = {
        {97, 5},
        {98, 0, 1, 0, 0},
        {110, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8},
        {100, 0, 2, 'o', 'k'},
        {119, 2, 'o', 'k'},
        {109, 0, 0, 0, 3, 'a', 'b', 'c'},
        {104, 1, 106},
        {105, 0, 0, 0, 1, 106},
        {108, 0, 0, 0, 1, 106, 106},
    };
    static const size_t item_lens[] = {2, 5, 11, 5, 4, 8, 3, 6, 7};
    int bad = 0;
    for (size_t i = 0; i < sizeof item_lens / sizeof item_lens[0]; i++) {
        for (size_t cut = 0; cut < item_lens[i]; cut++) {
            uint8_t *p = exact_copy(items[i], cut);
            struct codec_dec d;
            uint64_t v;
            const char *a;
            const uint8_t *b;
            size_t n;
            uint32_t c;
            int rc;
            codec_dec_init(&d, p, cut);
            switch (items[i][0]) {
            case 97:
            case 98:
            case 110:
                rc = codec_dec_u64(&d, &v);
                break;
            case 100:
            case 119:
                rc = codec_dec_atom(&d, &a, &n);
                codec_dec_init(&d, p, cut);
                if (codec_dec_is_atom(&d, "ok") || d.pos != 0)
                    bad++;
                break;
            case 109:
                rc = codec_dec_binary(&d, &b, &n);
                break;
            case 104:
            case 105:
                rc = codec_dec_tuple(&d, &c);
                if (rc == 0) /* the header is whole: the element is cut */
                    rc = codec_dec_list(&d, &c);
                break;
            default:
                rc = codec_dec_list(&d, &c);
                break;
            }
            if (rc != HL_EBADTERM)
                bad++;
            free(p);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- lying lengths ------------------------------------------------------- */

/* Decodes <bytes> in an exact-size block with decoder `fn`. */
enum which_dec { D_BIN, D_LIST, D_TUPLE, D_ATOM, D_U64, D_SKIP, D_TEXT };

static int dec_exact(const uint8_t *bytes, size_t len, enum which_dec which)
{
    uint8_t *p = exact_copy(bytes, len);
    struct codec_dec d;
    const uint8_t *b;
    const char *a;
    size_t n;
    uint32_t c;
    uint64_t v;
    struct text *t = malloc(sizeof *t);
    t->n = 0;
    t->overflow = 0;
    int rc;
    codec_dec_init(&d, p, len);
    switch (which) {
    case D_BIN:
        rc = codec_dec_binary(&d, &b, &n);
        break;
    case D_LIST:
        rc = codec_dec_list(&d, &c);
        break;
    case D_TUPLE:
        rc = codec_dec_tuple(&d, &c);
        break;
    case D_ATOM:
        rc = codec_dec_atom(&d, &a, &n);
        break;
    case D_U64:
        rc = codec_dec_u64(&d, &v);
        break;
    case D_SKIP:
        rc = codec_dec_skip(&d);
        if (rc == 0 && !codec_dec_at_end(&d))
            rc = 1; /* these tests hold exactly one term */
        break;
    default:
        rc = ours_text(&d, t);
        break;
    }
    free(t);
    free(p);
    return rc;
}

#define DEC(which, ...)                                                                        \
    dec_exact((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), which)

static void lying_lengths(void)
{
    /* binaries: one byte too long, 2^32 - 1, and exactly right */
    CHECK_EQ_INT(DEC(D_BIN, 109, 0, 0, 0, 9, 'a', 'b'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_BIN, 109, 0, 0, 0, 3, 'a', 'b'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_BIN, 109, 0, 0, 0, 2, 'a', 'b'), 0);
    CHECK_EQ_INT(DEC(D_BIN, 109, 255, 255, 255, 255, 0), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_BIN, 109, 128, 0, 0, 0), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 109, 255, 255, 255, 255, 0), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_BIN, 109, 0, 0, 0), HL_EBADTERM);
    /* lists: 2^32 - 1 elements, and one more than the frame can hold
     * (each element takes a byte, plus one for the tail) */
    CHECK_EQ_INT(DEC(D_LIST, 108, 255, 255, 255, 255, 106), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 108, 255, 255, 255, 255, 106), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_TEXT, 108, 255, 255, 255, 255, 106), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_LIST, 108, 0, 0, 0, 4, 106, 106, 106, 106), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_LIST, 108, 0, 0, 0, 3, 106, 106, 106, 106), 0);
    CHECK_EQ_INT(DEC(D_TEXT, 108, 0, 0, 0, 3, 106, 106, 106, 106), 0);
    CHECK_EQ_INT(DEC(D_SKIP, 108, 0, 0, 0, 3, 106, 106, 106, 106), 0);
    CHECK_EQ_INT(DEC(D_LIST, 108, 128, 0, 0, 0, 97, 1, 106), HL_EBADTERM);
    /* tuples: arity 2^32 - 1 with two bytes of elements.  The header alone
     * is well-formed; reading the elements must stop at the frame's end. */
    CHECK_EQ_INT(DEC(D_SKIP, 105, 255, 255, 255, 255, 97, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_TEXT, 105, 255, 255, 255, 255, 97, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 105, 255, 255, 255, 255), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 104, 255, 97, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_TEXT, 104, 255, 97, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 104, 2, 97, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 104, 2, 97, 1, 106), 0);
    CHECK_EQ_INT(DEC(D_TUPLE, 105, 0, 0, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_TUPLE, 104), HL_EBADTERM);
    /* atoms */
    CHECK_EQ_INT(DEC(D_ATOM, 119, 50, 'o', 'k'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_ATOM, 115, 3, 'o', 'k'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_ATOM, 100, 255, 255, 'o', 'k'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_ATOM, 118, 0, 3, 'o', 'k'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 118, 0, 3, 'o', 'k'), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_ATOM, 109, 0, 0, 0, 2, 'o', 'k'), HL_EBADTERM); /* a binary */
    /* integers */
    CHECK_EQ_INT(DEC(D_U64, 110, 255, 0, 1, 2), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 110, 255, 0, 1, 2), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_U64, 110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9), HL_EBADTERM); /* > 64 bits */
    CHECK_EQ_INT(DEC(D_SKIP, 110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9), 0);
    CHECK_EQ_INT(DEC(D_U64, 110, 1, 1, 5), HL_EBADTERM); /* negative */
    CHECK_EQ_INT(DEC(D_SKIP, 110, 1, 1, 5), 0);
    CHECK_EQ_INT(DEC(D_U64, 98, 255, 255, 255, 255), HL_EBADTERM); /* -1 */
    CHECK_EQ_INT(DEC(D_SKIP, 98, 255, 255, 255, 255), 0);
    CHECK_EQ_INT(DEC(D_U64, 98, 0, 0, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 98, 0, 0, 1), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_U64, 99, 0), HL_EBADTERM); /* a float is no integer */
    /* kinds only skip knows */
    CHECK_EQ_INT(DEC(D_SKIP, 107, 255, 255, 'a'), HL_EBADTERM);  /* STRING_EXT */
    CHECK_EQ_INT(DEC(D_SKIP, 107, 0, 2, 'a', 'b'), 0);
    CHECK_EQ_INT(DEC(D_SKIP, 116, 255, 255, 255, 255, 106, 106), HL_EBADTERM); /* MAP_EXT */
    CHECK_EQ_INT(DEC(D_SKIP, 116, 0, 0, 0, 2, 106, 106, 106), HL_EBADTERM);
    CHECK_EQ_INT(DEC(D_SKIP, 116, 0, 0, 0, 1, 106, 106), 0);
    CHECK_EQ_INT(DEC(D_SKIP, 70, 0, 0, 0, 0, 0, 0, 0), HL_EBADTERM);  /* NEW_FLOAT, short */
    CHECK_EQ_INT(DEC(D_SKIP, 70, 0, 0, 0, 0, 0, 0, 0, 0), 0);
    CHECK_EQ_INT(DEC(D_SKIP, 99, '1', '.', '0'), HL_EBADTERM);        /* FLOAT_EXT, short */
    CHECK_EQ_INT(DEC(D_SKIP, 103, 0), HL_EBADTERM);                   /* PID_EXT: unknown */
    CHECK_EQ_INT(DEC(D_SKIP, 0), HL_EBADTERM);
    /* improper lists: skip accepts the term, list_end refuses the tail */
    CHECK_EQ_INT(DEC(D_SKIP, 108, 0, 0, 0, 1, 97, 1, 97, 2), 0);
    CHECK_EQ_INT(DEC(D_TEXT, 108, 0, 0, 0, 1, 97, 1, 97, 2), HL_EBADTERM);
}

/* ---- skip on nested terms ------------------------------------------------ */

static void skip_nested(void)
{
    /* every kind skip knows, nested, with a second term after it */
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 4);
    ei_x_encode_map_header(&x, 2);
    ei_x_encode_atom(&x, "k");
    ei_x_encode_list_header(&x, 2);
    ei_x_encode_double(&x, 1.5);
    ei_x_encode_longlong(&x, -5000000000LL);
    ei_x_encode_empty_list(&x);
    ei_x_encode_string(&x, "a string");
    ei_x_encode_tuple_header(&x, 0);
    ei_x_encode_tuple_header(&x, 260);
    for (int i = 0; i < 260; i++)
        ei_x_encode_long(&x, -i);
    ei_x_encode_binary(&x, "bin", 3);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_tuple_header(&x, 1);
    ei_x_encode_ulonglong(&x, UINT64_MAX);
    ei_x_encode_empty_list(&x);
    ei_x_encode_empty_list(&x);
    size_t first = (size_t)x.index;
    ei_x_encode_atom(&x, "after");
    uint8_t *p = exact_copy((const uint8_t *)x.buff, (size_t)x.index);
    struct codec_dec d;
    codec_dec_init(&d, p, (size_t)x.index);
    CHECK_EQ_INT(codec_dec_version(&d), 0);
    CHECK_EQ_INT(codec_dec_skip(&d), 0);
    CHECK_EQ_INT(d.pos, first); /* exactly one term */
    CHECK(codec_dec_is_atom(&d, "after"));
    CHECK(codec_dec_at_end(&d));
    /* and every prefix of it is refused */
    int bad = 0;
    for (size_t cut = 1; cut < first; cut++) {
        uint8_t *q = exact_copy(p, cut);
        codec_dec_init(&d, q, cut);
        if (codec_dec_version(&d) != 0 || codec_dec_skip(&d) != HL_EBADTERM)
            bad++;
        free(q);
    }
    CHECK_EQ_INT(bad, 0);
    free(p);
    ei_x_free(&x);

    /* Depth: nested one-element lists [[...[]...]] and tuples {{...{}...}}.
     * Requests nest four deep; skip must follow at least that far, must
     * stop somewhere (no unbounded recursion on hostile input), and the
     * set of accepted depths must be a prefix 0..D. */
    enum { DEEP = 100000 };
    uint8_t *lists = malloc((size_t)DEEP * 6 + 1);
    uint8_t *tuples = malloc((size_t)DEEP * 2 + 1);
    for (int kind = 0; kind < 2; kind++) {
        int max_ok = -1, holes = 0;
        for (int depth = 0; depth <= 200; depth++) {
            size_t n = 0;
            uint8_t *b = kind ? tuples : lists;
            for (int i = 0; i < depth; i++) {
                if (kind) {
                    b[n++] = 104;
                    b[n++] = 1;
                } else {
                    b[n++] = 108;
                    b[n++] = 0;
                    b[n++] = 0;
                    b[n++] = 0;
                    b[n++] = 1;
                }
            }
            b[n++] = 106;
            if (!kind)
                for (int i = 0; i < depth; i++)
                    b[n++] = 106;
            uint8_t *q = exact_copy(b, n);
            codec_dec_init(&d, q, n);
            int rc = codec_dec_skip(&d);
            if (rc == 0 && codec_dec_at_end(&d)) {
                if (max_ok != depth - 1)
                    holes++;
                max_ok = depth;
            } else if (rc != HL_EBADTERM) {
                holes++;
            }
            free(q);
        }
        CHECK(max_ok >= 4);
        CHECK(max_ok < 200);
        CHECK_EQ_INT(holes, 0);
        /* very deep: refused, without exhausting the stack */
        size_t n = 0;
        uint8_t *b = kind ? tuples : lists;
        for (int i = 0; i < DEEP; i++) {
            if (kind) {
                b[n++] = 104;
                b[n++] = 1;
            } else {
                b[n++] = 108;
                b[n++] = 0;
                b[n++] = 0;
                b[n++] = 0;
                b[n++] = 1;
            }
        }
        b[n++] = 106;
        if (!kind)
            for (int i = 0; i < DEEP; i++)
                b[n++] = 106;
        codec_dec_init(&d, b, n);
        CHECK_EQ_INT(codec_dec_skip(&d), HL_EBADTERM);
    }
    free(lists);
    free(tuples);
}

int main(void)
{
    round_trips();
    empty_reserve();
    list_count_patched();
    ei_to_ours();
    ours_to_ei();
    random_terms();
    truncation();
    lying_lengths();
    skip_nested();
    return check_summary();
}
