/*
 * test_codec.c - the checked term codec (port_src/codec.h): round trips,
 * agreement with erl_interface's ei in both directions, and that no
 * truncated or lying frame is ever read past its end (ASan watches).
 */
#include <ei.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec.h"
#include "errors.h"

/* Our encoder's bytes decode with ei to the same values. */
static void encoder_agrees_with_ei(void)
{
    static const uint64_t ints[] = {0, 1, 255, 256, 65535, 2147483647ULL, 2147483648ULL,
                                    (1ULL << 60) + 12345, UINT64_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        struct codec_enc e;
        codec_enc_init(&e);
        codec_enc_version(&e);
        codec_enc_u64(&e, ints[i]);
        int idx = 0, version;
        unsigned long long got = 0;
        CHECK_EQ_INT(ei_decode_version((char *)e.buf, &idx, &version), 0);
        CHECK_EQ_INT(ei_decode_ulonglong((char *)e.buf, &idx, &got), 0);
        CHECK(got == ints[i]);
        CHECK_EQ_INT((size_t)idx, e.len);
        codec_enc_free(&e);
    }
    static const int64_t negs[] = {-1, -128, -2147483648LL, -2147483649LL, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof negs / sizeof negs[0]; i++) {
        struct codec_enc e;
        codec_enc_init(&e);
        codec_enc_version(&e);
        codec_enc_i64(&e, negs[i]);
        int idx = 0, version;
        long long got = 0;
        CHECK_EQ_INT(ei_decode_version((char *)e.buf, &idx, &version), 0);
        CHECK_EQ_INT(ei_decode_longlong((char *)e.buf, &idx, &got), 0);
        CHECK(got == negs[i]);
        codec_enc_free(&e);
    }
    /* {ok, [<<"ab">>, <<>>], pong} */
    struct codec_enc e;
    codec_enc_init(&e);
    codec_enc_version(&e);
    codec_enc_tuple(&e, 3);
    codec_enc_atom(&e, "ok");
    codec_enc_list(&e, 2);
    codec_enc_binary(&e, "ab", 2);
    codec_enc_binary(&e, "", 0);
    codec_enc_nil(&e);
    codec_enc_atom(&e, "pong");
    CHECK_EQ_INT(e.err, 0);
    int idx = 0, version, arity, type, size;
    char atom[MAXATOMLEN_UTF8];
    char bin[8];
    long blen;
    CHECK_EQ_INT(ei_decode_version((char *)e.buf, &idx, &version), 0);
    CHECK_EQ_INT(ei_decode_tuple_header((char *)e.buf, &idx, &arity), 0);
    CHECK_EQ_INT(arity, 3);
    CHECK_EQ_INT(ei_decode_atom((char *)e.buf, &idx, atom), 0);
    CHECK(strcmp(atom, "ok") == 0);
    CHECK_EQ_INT(ei_decode_list_header((char *)e.buf, &idx, &arity), 0);
    CHECK_EQ_INT(arity, 2);
    CHECK_EQ_INT(ei_get_type((char *)e.buf, &idx, &type, &size), 0);
    CHECK_EQ_INT(size, 2);
    CHECK_EQ_INT(ei_decode_binary((char *)e.buf, &idx, bin, &blen), 0);
    CHECK_MEM(bin, blen, "ab", 2);
    CHECK_EQ_INT(ei_decode_binary((char *)e.buf, &idx, bin, &blen), 0);
    CHECK_EQ_INT(blen, 0);
    CHECK_EQ_INT(ei_decode_list_header((char *)e.buf, &idx, &arity), 0);
    CHECK_EQ_INT(arity, 0);
    CHECK_EQ_INT(ei_decode_atom((char *)e.buf, &idx, atom), 0);
    CHECK(strcmp(atom, "pong") == 0);
    CHECK_EQ_INT((size_t)idx, e.len);
    codec_enc_free(&e);
}

/* A request frame made by ei: {Id, write_many, [{write, <<"a/b">>, <<"v">>}]}. */
static ei_x_buff ei_request(unsigned long long id)
{
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_ulonglong(&x, id);
    ei_x_encode_atom(&x, "write_many");
    ei_x_encode_list_header(&x, 1);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "write");
    ei_x_encode_binary(&x, "a/b", 3);
    ei_x_encode_binary(&x, "v", 1);
    ei_x_encode_empty_list(&x);
    return x;
}

/* Walks a request like dispatch.c does; returns 0 or the first error. */
static int walk(const uint8_t *buf, size_t len, uint64_t *id)
{
    struct codec_dec d;
    uint32_t arity, n, inner;
    const char *a;
    size_t alen, plen, vlen;
    const uint8_t *p, *v;
    codec_dec_init(&d, buf, len);
    int rc;
    if ((rc = codec_dec_version(&d)) || (rc = codec_dec_tuple(&d, &arity)) ||
        (rc = codec_dec_u64(&d, id)) || (rc = codec_dec_atom(&d, &a, &alen)) ||
        (rc = codec_dec_list(&d, &n)))
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = codec_dec_tuple(&d, &inner)) || (rc = codec_dec_atom(&d, &a, &alen)) ||
            (rc = codec_dec_binary(&d, &p, &plen)) || (rc = codec_dec_binary(&d, &v, &vlen)))
            return rc;
    if (n && (rc = codec_dec_list_end(&d)))
        return rc;
    return codec_dec_at_end(&d) ? 0 : HL_EBADTERM;
}

/* ei's bytes decode with the checked decoder, and every strict prefix of
 * them is refused without a read past its end. */
static void decoder_reads_ei_and_refuses_truncation(void)
{
    static const unsigned long long ids[] = {0, 200, 70000, (1ULL << 60) + 7};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        ei_x_buff x = ei_request(ids[k]);
        uint64_t id = 0;
        CHECK_EQ_INT(walk((const uint8_t *)x.buff, (size_t)x.index, &id), 0);
        CHECK(id == ids[k]);
        for (int cut = 0; cut < x.index; cut++) {
            uint8_t *prefix = malloc(cut ? (size_t)cut : 1);
            memcpy(prefix, x.buff, (size_t)cut);
            CHECK_EQ_INT(walk(prefix, (size_t)cut, &id), HL_EBADTERM);
            free(prefix);
        }
        ei_x_free(&x);
    }
}

static void lying_lengths_are_refused(void)
{
    const uint8_t *p;
    size_t len;
    uint32_t n;
    struct codec_dec d;
    /* a binary claiming more bytes than the frame has */
    static const uint8_t bin[] = {109, 0, 0, 0, 9, 'a', 'b'};
    codec_dec_init(&d, bin, sizeof bin);
    CHECK_EQ_INT(codec_dec_binary(&d, &p, &len), HL_EBADTERM);
    /* a binary of 2^32 - 1 bytes */
    static const uint8_t huge[] = {109, 255, 255, 255, 255, 0};
    codec_dec_init(&d, huge, sizeof huge);
    CHECK_EQ_INT(codec_dec_binary(&d, &p, &len), HL_EBADTERM);
    /* a list of 2^32 - 1 elements in a 6-byte frame */
    static const uint8_t list[] = {108, 255, 255, 255, 255, 106};
    codec_dec_init(&d, list, sizeof list);
    CHECK_EQ_INT(codec_dec_list(&d, &n), HL_EBADTERM);
    /* a large tuple of 2^32 - 1 elements: the header may read, skipping may not */
    static const uint8_t tuple[] = {105, 255, 255, 255, 255, 97, 1};
    codec_dec_init(&d, tuple, sizeof tuple);
    CHECK_EQ_INT(codec_dec_skip(&d), HL_EBADTERM);
    /* an atom longer than the frame */
    static const uint8_t atom[] = {119, 50, 'o', 'k'};
    const char *a;
    codec_dec_init(&d, atom, sizeof atom);
    CHECK_EQ_INT(codec_dec_atom(&d, &a, &len), HL_EBADTERM);
    /* a big integer of 9 bytes does not fit 64 bits; a negative one is no id */
    static const uint8_t big9[] = {110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint64_t v;
    codec_dec_init(&d, big9, sizeof big9);
    CHECK_EQ_INT(codec_dec_u64(&d, &v), HL_EBADTERM);
    static const uint8_t neg[] = {98, 255, 255, 255, 255};
    codec_dec_init(&d, neg, sizeof neg);
    CHECK_EQ_INT(codec_dec_u64(&d, &v), HL_EBADTERM);
    /* an improper list tail */
    static const uint8_t improper[] = {108, 0, 0, 0, 1, 97, 1, 97, 2};
    codec_dec_init(&d, improper, sizeof improper);
    CHECK_EQ_INT(codec_dec_list(&d, &n), 0);
    CHECK_EQ_INT(codec_dec_u64(&d, &v), 0);
    CHECK_EQ_INT(codec_dec_list_end(&d), HL_EBADTERM);
    /* nothing at all */
    codec_dec_init(&d, bin, 0);
    CHECK_EQ_INT(codec_dec_version(&d), HL_EBADTERM);
}

static void skip_is_bounded(void)
{
    /* [[[[...]]]] nested 40 deep: deeper than the skip limit */
    uint8_t deep[40 * 5 + 40 + 1];
    size_t n = 0;
    for (int i = 0; i < 40; i++) {
        uint8_t h[5] = {108, 0, 0, 0, 1};
        memcpy(deep + n, h, 5);
        n += 5;
    }
    deep[n++] = 106;
    for (int i = 0; i < 40; i++)
        deep[n++] = 106;
    struct codec_dec d;
    codec_dec_init(&d, deep, n);
    CHECK_EQ_INT(codec_dec_skip(&d), HL_EBADTERM);
    /* a shallow nested term skips exactly */
    ei_x_buff x = ei_request(5);
    codec_dec_init(&d, (const uint8_t *)x.buff, (size_t)x.index);
    CHECK_EQ_INT(codec_dec_version(&d), 0);
    CHECK_EQ_INT(codec_dec_skip(&d), 0);
    CHECK(codec_dec_at_end(&d));
    ei_x_free(&x);
}

static void atoms_match_exactly(void)
{
    static const uint8_t atom[] = {119, 4, 'r', 'e', 'a', 'd'};
    struct codec_dec d;
    codec_dec_init(&d, atom, sizeof atom);
    CHECK(!codec_dec_is_atom(&d, "rea"));
    CHECK(!codec_dec_is_atom(&d, "reads"));
    CHECK_EQ_INT(d.pos, 0);
    CHECK(codec_dec_is_atom(&d, "read"));
    CHECK(codec_dec_at_end(&d));
}

int main(void)
{
    encoder_agrees_with_ei();
    decoder_reads_ei_and_refuses_truncation();
    lying_lengths_are_refused();
    skip_is_bounded();
    atoms_match_exactly();
    return check_summary();
}
