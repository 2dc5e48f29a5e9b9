/* codec.c - checked external term format decoder and encoder (codec.h). */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

enum {
    TAG_VERSION = 131,
    TAG_SMALL_INTEGER = 97,
    TAG_INTEGER = 98,
    TAG_FLOAT = 99,
    TAG_ATOM = 100,
    TAG_SMALL_TUPLE = 104,
    TAG_LARGE_TUPLE = 105,
    TAG_NIL = 106,
    TAG_STRING = 107,
    TAG_LIST = 108,
    TAG_BINARY = 109,
    TAG_SMALL_BIG = 110,
    TAG_SMALL_ATOM = 115,
    TAG_NEW_FLOAT = 70,
    TAG_MAP = 116,
    TAG_ATOM_UTF8 = 118,
    TAG_SMALL_ATOM_UTF8 = 119,
};

/* Deepest nesting codec_dec_skip follows; requests are at most 4 deep. */
#define SKIP_MAX_DEPTH 16

void codec_dec_init(struct codec_dec *d, const uint8_t *buf, size_t len)
{
    d->buf = buf;
    d->len = len;
    d->pos = 0;
}

/* The one bounds check every decoder goes through: n more bytes exist. */
static int have(const struct codec_dec *d, size_t n)
{
    return d->pos <= d->len && n <= d->len - d->pos;
}

static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int codec_dec_version(struct codec_dec *d)
{
    if (!have(d, 1) || d->buf[d->pos] != TAG_VERSION)
        return HL_EBADTERM;
    d->pos++;
    return 0;
}

int codec_dec_tuple(struct codec_dec *d, uint32_t *arity)
{
    if (!have(d, 2))
        return HL_EBADTERM;
    if (d->buf[d->pos] == TAG_SMALL_TUPLE) {
        *arity = d->buf[d->pos + 1];
        d->pos += 2;
        return 0;
    }
    if (d->buf[d->pos] == TAG_LARGE_TUPLE && have(d, 5)) {
        *arity = get_u32(d->buf + d->pos + 1);
        d->pos += 5;
        return 0;
    }
    return HL_EBADTERM;
}

int codec_dec_list(struct codec_dec *d, uint32_t *count)
{
    if (!have(d, 1))
        return HL_EBADTERM;
    if (d->buf[d->pos] == TAG_NIL) {
        *count = 0;
        d->pos++;
        return 0;
    }
    if (d->buf[d->pos] != TAG_LIST || !have(d, 5))
        return HL_EBADTERM;
    *count = get_u32(d->buf + d->pos + 1);
    d->pos += 5;
    /* Every element takes at least one byte, plus the tail: a count the
     * frame cannot hold is refused before anyone loops over it. */
    if (!have(d, (size_t)*count + 1))
        return HL_EBADTERM;
    return 0;
}

int codec_dec_list_end(struct codec_dec *d)
{
    if (!have(d, 1) || d->buf[d->pos] != TAG_NIL)
        return HL_EBADTERM;
    d->pos++;
    return 0;
}

int codec_dec_u64(struct codec_dec *d, uint64_t *v)
{
    if (!have(d, 1))
        return HL_EBADTERM;
    const uint8_t *p = d->buf + d->pos;
    switch (p[0]) {
    case TAG_SMALL_INTEGER:
        if (!have(d, 2))
            return HL_EBADTERM;
        *v = p[1];
        d->pos += 2;
        return 0;
    case TAG_INTEGER: {
        if (!have(d, 5))
            return HL_EBADTERM;
        int32_t s = (int32_t)get_u32(p + 1);
        if (s < 0)
            return HL_EBADTERM;
        *v = (uint64_t)s;
        d->pos += 5;
        return 0;
    }
    case TAG_SMALL_BIG: {
        if (!have(d, 3))
            return HL_EBADTERM;
        size_t n = p[1];
        if (p[2] != 0 || n > 8 || !have(d, 3 + n))
            return HL_EBADTERM;
        uint64_t x = 0;
        for (size_t i = 0; i < n; i++)
            x |= (uint64_t)p[3 + i] << (8 * i);
        *v = x;
        d->pos += 3 + n;
        return 0;
    }
    default:
        return HL_EBADTERM;
    }
}

int codec_dec_atom(struct codec_dec *d, const char **name, size_t *len)
{
    if (!have(d, 2))
        return HL_EBADTERM;
    const uint8_t *p = d->buf + d->pos;
    size_t head, n;
    switch (p[0]) {
    case TAG_SMALL_ATOM:
    case TAG_SMALL_ATOM_UTF8:
        head = 2;
        n = p[1];
        break;
    case TAG_ATOM:
    case TAG_ATOM_UTF8:
        if (!have(d, 3))
            return HL_EBADTERM;
        head = 3;
        n = get_u16(p + 1);
        break;
    default:
        return HL_EBADTERM;
    }
    if (!have(d, head + n))
        return HL_EBADTERM;
    *name = (const char *)p + head;
    *len = n;
    d->pos += head + n;
    return 0;
}

int codec_dec_is_atom(struct codec_dec *d, const char *name)
{
    size_t save = d->pos, len;
    const char *a;
    if (codec_dec_atom(d, &a, &len) == 0 && len == strlen(name) && memcmp(a, name, len) == 0)
        return 1;
    d->pos = save;
    return 0;
}

int codec_dec_binary(struct codec_dec *d, const uint8_t **data, size_t *len)
{
    if (!have(d, 5) || d->buf[d->pos] != TAG_BINARY)
        return HL_EBADTERM;
    size_t n = get_u32(d->buf + d->pos + 1);
    if (!have(d, 5 + n))
        return HL_EBADTERM;
    *data = d->buf + d->pos + 5;
    *len = n;
    d->pos += 5 + n;
    return 0;
}

static int skip(struct codec_dec *d, int depth)
{
    if (depth > SKIP_MAX_DEPTH || !have(d, 1))
        return HL_EBADTERM;
    const uint8_t *p = d->buf + d->pos;
    const char *a;
    const uint8_t *b;
    size_t n;
    uint64_t u;
    uint32_t count;
    switch (p[0]) {
    case TAG_SMALL_INTEGER:
    case TAG_INTEGER:
        if (codec_dec_u64(d, &u) == 0)
            return 0;
        /* negative INTEGER_EXT is still a well-formed term */
        if (p[0] == TAG_INTEGER && have(d, 5)) {
            d->pos += 5;
            return 0;
        }
        return HL_EBADTERM;
    case TAG_SMALL_BIG:
        if (!have(d, 3) || !have(d, 3 + (size_t)p[1]))
            return HL_EBADTERM;
        d->pos += 3 + (size_t)p[1];
        return 0;
    case TAG_NEW_FLOAT:
        if (!have(d, 9))
            return HL_EBADTERM;
        d->pos += 9;
        return 0;
    case TAG_FLOAT:
        if (!have(d, 32))
            return HL_EBADTERM;
        d->pos += 32;
        return 0;
    case TAG_ATOM:
    case TAG_ATOM_UTF8:
    case TAG_SMALL_ATOM:
    case TAG_SMALL_ATOM_UTF8:
        return codec_dec_atom(d, &a, &n);
    case TAG_BINARY:
        return codec_dec_binary(d, &b, &n);
    case TAG_STRING:
        if (!have(d, 3) || !have(d, 3 + (size_t)get_u16(p + 1)))
            return HL_EBADTERM;
        d->pos += 3 + get_u16(p + 1);
        return 0;
    case TAG_NIL:
        d->pos++;
        return 0;
    case TAG_LIST:
        if (codec_dec_list(d, &count))
            return HL_EBADTERM;
        for (uint32_t i = 0; i < count; i++)
            if (skip(d, depth + 1))
                return HL_EBADTERM;
        return skip(d, depth + 1); /* the tail, proper or not */
    case TAG_SMALL_TUPLE:
    case TAG_LARGE_TUPLE:
        if (codec_dec_tuple(d, &count) || !have(d, count))
            return HL_EBADTERM;
        for (uint32_t i = 0; i < count; i++)
            if (skip(d, depth + 1))
                return HL_EBADTERM;
        return 0;
    case TAG_MAP:
        if (!have(d, 5))
            return HL_EBADTERM;
        count = get_u32(p + 1);
        if (count > (d->len - d->pos) / 2)
            return HL_EBADTERM;
        d->pos += 5;
        for (uint64_t i = 0; i < 2 * (uint64_t)count; i++)
            if (skip(d, depth + 1))
                return HL_EBADTERM;
        return 0;
    default:
        return HL_EBADTERM;
    }
}

int codec_dec_skip(struct codec_dec *d) { return skip(d, 0); }

int codec_dec_at_end(const struct codec_dec *d) { return d->pos == d->len; }

void codec_enc_init(struct codec_enc *e) { memset(e, 0, sizeof *e); }

void codec_enc_free(struct codec_enc *e)
{
    free(e->buf);
    codec_enc_init(e);
}

uint8_t *codec_enc_reserve(struct codec_enc *e, size_t n)
{
    if (e->err)
        return NULL;
    /* An encoder without a buffer gets one even for n == 0: NULL + 0 is
     * undefined behaviour, and callers take NULL to mean failure. */
    if (n > e->cap - e->len || !e->buf) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap - e->len < n) {
            if (cap > SIZE_MAX / 2) {
                e->err = HL_ENOMEM;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *nb = realloc(e->buf, cap);
        if (!nb) {
            e->err = HL_ENOMEM;
            return NULL;
        }
        e->buf = nb;
        e->cap = cap;
    }
    return e->buf + e->len;
}

void codec_enc_raw(struct codec_enc *e, const void *p, size_t n)
{
    uint8_t *dst = codec_enc_reserve(e, n);
    if (dst) {
        if (n)
            memcpy(dst, p, n);
        e->len += n;
    }
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_tag_u32(struct codec_enc *e, uint8_t tag, uint32_t v)
{
    uint8_t b[5] = {tag};
    put_u32(b + 1, v);
    codec_enc_raw(e, b, 5);
}

void codec_enc_version(struct codec_enc *e)
{
    uint8_t b = TAG_VERSION;
    codec_enc_raw(e, &b, 1);
}

void codec_enc_tuple(struct codec_enc *e, uint32_t arity)
{
    if (arity <= 255) {
        uint8_t b[2] = {TAG_SMALL_TUPLE, (uint8_t)arity};
        codec_enc_raw(e, b, 2);
    } else {
        put_tag_u32(e, TAG_LARGE_TUPLE, arity);
    }
}

void codec_enc_list(struct codec_enc *e, uint32_t count) { put_tag_u32(e, TAG_LIST, count); }

void codec_enc_list_count(struct codec_enc *e, size_t at, uint32_t count)
{
    if (e->err || at + 5 > e->len || e->buf[at] != TAG_LIST)
        return;
    put_u32(e->buf + at + 1, count);
}

void codec_enc_nil(struct codec_enc *e)
{
    uint8_t b = TAG_NIL;
    codec_enc_raw(e, &b, 1);
}

void codec_enc_atom(struct codec_enc *e, const char *name)
{
    size_t n = strlen(name);
    /* Atoms come from this program's own string literals: always short. */
    uint8_t b[2] = {TAG_SMALL_ATOM_UTF8, (uint8_t)(n > 255 ? 255 : n)};
    codec_enc_raw(e, b, 2);
    codec_enc_raw(e, name, b[1]);
}

void codec_enc_u64(struct codec_enc *e, uint64_t v)
{
    if (v <= 255) {
        uint8_t b[2] = {TAG_SMALL_INTEGER, (uint8_t)v};
        codec_enc_raw(e, b, 2);
    } else if (v <= INT32_MAX) {
        put_tag_u32(e, TAG_INTEGER, (uint32_t)v);
    } else {
        uint8_t b[11] = {TAG_SMALL_BIG, 0, 0};
        size_t n = 0;
        while (v) {
            b[3 + n++] = (uint8_t)v;
            v >>= 8;
        }
        b[1] = (uint8_t)n;
        codec_enc_raw(e, b, 3 + n);
    }
}

void codec_enc_u64_fixed(struct codec_enc *e, uint64_t v)
{
    uint8_t b[11] = {TAG_SMALL_BIG, 8, 0};
    for (int i = 0; i < 8; i++)
        b[3 + i] = (uint8_t)(v >> (8 * i));
    codec_enc_raw(e, b, sizeof b);
}

void codec_enc_i64(struct codec_enc *e, int64_t v)
{
    if (v >= 0) {
        codec_enc_u64(e, (uint64_t)v);
    } else if (v >= INT32_MIN) {
        put_tag_u32(e, TAG_INTEGER, (uint32_t)(int32_t)v);
    } else {
        uint64_t m = (uint64_t)(-(v + 1)) + 1; /* |v| without overflow */
        uint8_t b[11] = {TAG_SMALL_BIG, 0, 1};
        size_t n = 0;
        while (m) {
            b[3 + n++] = (uint8_t)m;
            m >>= 8;
        }
        b[1] = (uint8_t)n;
        codec_enc_raw(e, b, 3 + n);
    }
}

void codec_enc_binary(struct codec_enc *e, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        e->err = HL_ENOMEM;
        return;
    }
    put_tag_u32(e, TAG_BINARY, (uint32_t)len);
    codec_enc_raw(e, data, len);
}
