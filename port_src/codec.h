/*
 * codec.h - a checked decoder and a growing encoder for the subset of the
 * Erlang external term format the protocol uses (protocol.h).
 *
 * Why not ei: ei_decode_* trust every length in the buffer.  Here every
 * length and count read from the wire is checked against the end of the
 * frame before it is used, so a malformed or truncated frame is an error
 * value (HL_EBADTERM), never an out-of-bounds read.  Decoded binaries and
 * atoms are not copied: they point into the frame, which the caller keeps
 * alive while it uses them.
 */
#ifndef HYPER_LMDB_CODEC_H
#define HYPER_LMDB_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* A read cursor over one frame: [buf, buf + len), next byte at pos. */
struct codec_dec {
    const uint8_t *buf;
    size_t len;
    size_t pos;
};

/* Starts a cursor over <buf, len>. */
void codec_dec_init(struct codec_dec *d, const uint8_t *buf, size_t len);

/* Each decoder consumes one item and returns 0, or returns HL_EBADTERM and
 * leaves d->pos unspecified (the caller abandons the frame). */
int codec_dec_version(struct codec_dec *d);
int codec_dec_tuple(struct codec_dec *d, uint32_t *arity);
/* A list header: *count elements follow.  For a non-empty list the caller
 * decodes the elements and then calls codec_dec_list_end for the tail,
 * which must be [] (improper lists are refused). */
int codec_dec_list(struct codec_dec *d, uint32_t *count);
int codec_dec_list_end(struct codec_dec *d);
/* A non-negative integer that fits in 64 bits. */
int codec_dec_u64(struct codec_dec *d, uint64_t *v);
/* An atom: *name points into the frame, not NUL-terminated. */
int codec_dec_atom(struct codec_dec *d, const char **name, size_t *len);
/* True (and consumes it) when the next term is the atom `name`. */
int codec_dec_is_atom(struct codec_dec *d, const char *name);
/* A binary: *data points into the frame. */
int codec_dec_binary(struct codec_dec *d, const uint8_t **data, size_t *len);
/* Skips one term of any kind the decoder knows; nesting is bounded. */
int codec_dec_skip(struct codec_dec *d);
/* 1 when the cursor is exactly at the end of the frame, else 0. */
int codec_dec_at_end(const struct codec_dec *d);

/* A growing output buffer.  Encoders never fail individually: on
 * allocation failure they set err = HL_ENOMEM and do nothing more, so a
 * caller encodes a whole term and checks err once. */
struct codec_enc {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err;
};

void codec_enc_init(struct codec_enc *e);
void codec_enc_free(struct codec_enc *e);
/* Makes room for n more bytes; returns a pointer to them or NULL (err set).
 * The caller must fill them and add n to e->len itself. */
uint8_t *codec_enc_reserve(struct codec_enc *e, size_t n);
/* Appends n bytes as they are (inside a binary the caller is building). */
void codec_enc_raw(struct codec_enc *e, const void *p, size_t n);
void codec_enc_version(struct codec_enc *e);
void codec_enc_tuple(struct codec_enc *e, uint32_t arity);
void codec_enc_list(struct codec_enc *e, uint32_t count); /* count > 0 */
/* Sets the count of the list header codec_enc_list wrote at offset <at>
 * (for a list whose length is known only once it is written). */
void codec_enc_list_count(struct codec_enc *e, size_t at, uint32_t count);
void codec_enc_nil(struct codec_enc *e);
void codec_enc_atom(struct codec_enc *e, const char *name);
void codec_enc_u64(struct codec_enc *e, uint64_t v);
/* v as a SMALL_BIG_EXT of exactly 8 digit bytes, whatever its value (a
 * non-canonical form every ETF decoder reads as the integer): the form of
 * every reply id, so that a reply's id sits at a fixed offset (protocol.h). */
void codec_enc_u64_fixed(struct codec_enc *e, uint64_t v);
void codec_enc_i64(struct codec_enc *e, int64_t v);
void codec_enc_binary(struct codec_enc *e, const void *data, size_t len);

#endif
