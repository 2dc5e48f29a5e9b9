/*
 * test_path.c - path normal form and segment helpers (port_src/path.h):
 * fixed cases, then random byte strings against a brute-force model.
 * Outputs go into buffers of exactly the promised size so ASan sees any
 * write past them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "path.h"

/* path_normalize into a malloc'd buffer of exactly len bytes. */
static void norm(const char *in, size_t len, const char *want, size_t wlen)
{
    uint8_t *out = malloc(len ? len : 1);
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    size_t n = path_normalize(copy, len, out);
    CHECK_MEM(out, n, want, wlen);
    CHECK_MEM(copy, len, in, len); /* the input is left alone */
    free(out);
    free(copy);
}

/* String literals keep their NULs: sizeof - 1 is the real length. */
#define NORM(in, want) norm(in, sizeof in - 1, want, sizeof want - 1)

static void normalize_cases(void)
{
    NORM("", "");
    NORM("/", "");
    NORM("//", "");
    NORM("///", "");
    NORM("a", "a");
    NORM("/a", "a");
    NORM("a/", "a");
    NORM("/a/", "a");
    NORM("//a//b/", "a/b");
    NORM("a/b/c", "a/b/c");
    NORM("a///b////c", "a/b/c");
    NORM("..//./x", ".././x"); /* dots are ordinary segments, not resolved */
    NORM("a/./x", "a/./x");
    /* NUL bytes are key bytes, inside, at either end of a segment */
    NORM("a\0b/\0", "a\0b/\0");
    NORM("\0", "\0");
    NORM("/\0/\0\0/", "\0/\0\0");
    NORM("\0/", "\0");
    /* and so are 0xFF and other non-UTF-8 bytes */
    NORM("\xff\xfe//z", "\xff\xfe/z");
    NORM("//\xff/", "\xff");
    NORM("\x80\xc0/\xff\xff", "\x80\xc0/\xff\xff");
    /* bytes next to '/' are not separators */
    NORM("a-b/c.d/e0f", "a-b/c.d/e0f");
    NORM("\\a\\/b", "\\a\\/b");
}

static size_t parent(const char *p) { return path_parent_len((const uint8_t *)p, strlen(p)); }
static size_t seg(const char *p) { return path_segment_len((const uint8_t *)p, strlen(p)); }
static int cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = path_cmp((const uint8_t *)a, alen, (const uint8_t *)b, blen);
    return c < 0 ? -1 : c > 0;
}

static void helper_cases(void)
{
    CHECK_EQ_INT(parent(""), 0);
    CHECK_EQ_INT(parent("abc"), 0);
    CHECK_EQ_INT(parent("a/b"), 1);
    CHECK_EQ_INT(parent("a/b/c"), 3);
    CHECK_EQ_INT(parent("ab/cd/ef"), 5);
    CHECK_EQ_INT(path_parent_len((const uint8_t *)"a\0/b\0", 5), 2);

    CHECK_EQ_INT(seg(""), 0);
    CHECK_EQ_INT(seg("abc"), 3);
    CHECK_EQ_INT(seg("ab/c"), 2);
    CHECK_EQ_INT(seg("a/b/c"), 1);
    CHECK_EQ_INT(path_segment_len((const uint8_t *)"a\0b/c", 5), 3); /* NUL does not end it */
    CHECK_EQ_INT(path_segment_len((const uint8_t *)"ab/c", 1), 1);    /* stops at len */

    /* bytewise, a proper prefix first: the order LMDB keeps keys in */
    CHECK_EQ_INT(cmp("", 0, "", 0), 0);
    CHECK_EQ_INT(cmp("", 0, "a", 1), -1);
    CHECK_EQ_INT(cmp("a", 1, "", 0), 1);
    CHECK_EQ_INT(cmp("a", 1, "a", 1), 0);
    CHECK_EQ_INT(cmp("a", 1, "b", 1), -1);
    CHECK_EQ_INT(cmp("b", 1, "a", 1), 1);
    CHECK_EQ_INT(cmp("ab", 2, "abc", 3), -1);
    CHECK_EQ_INT(cmp("abc", 3, "ab", 2), 1);
    CHECK_EQ_INT(cmp("b", 1, "abc", 3), 1); /* the first difference wins over length */
    CHECK_EQ_INT(cmp("c", 1, "c-x", 3), -1);
    CHECK_EQ_INT(cmp("c-x", 3, "c/x", 3), -1); /* '-' < '/' */
    CHECK_EQ_INT(cmp("c.x", 3, "c/x", 3), -1); /* '.' < '/' */
    CHECK_EQ_INT(cmp("c/x", 3, "c0", 2), -1);  /* '/' < '0' */
    CHECK_EQ_INT(cmp("\xff", 1, "a", 1), 1);   /* unsigned bytes */
    CHECK_EQ_INT(cmp("\x80", 1, "\x7f", 1), 1);
    CHECK_EQ_INT(cmp("\0", 1, "", 0), 1);
    CHECK_EQ_INT(cmp("a\0", 2, "a", 1), 1);
    CHECK_EQ_INT(cmp("a\0b", 3, "a\0c", 3), -1); /* compares past a NUL */
}

/* ---- random strings against a model ------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* The model of normalisation: split on '/', keep non-empty segments. */
static size_t model_normalize(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || in[i] == '/') {
            if (i > start) {
                if (n)
                    out[n++] = '/';
                for (size_t j = start; j < i; j++)
                    out[n++] = in[j];
            }
            start = i + 1;
        }
    }
    return n;
}

static int model_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void random_against_model(void)
{
    static const uint8_t alphabet[] = {'/', '/', '/', 'a', 'b', '-', '.', '0', 0, 0xff, 0x80};
    long bad_norm = 0, bad_idem = 0, bad_form = 0, bad_parent = 0, bad_seg = 0, bad_cmp = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = rnd(24);
        uint8_t *in = malloc(len ? len : 1);
        uint8_t *out = malloc(len ? len : 1);
        uint8_t *again = malloc(len ? len : 1);
        uint8_t want[32];
        for (size_t i = 0; i < len; i++)
            in[i] = alphabet[rnd(sizeof alphabet)];
        size_t n = path_normalize(in, len, out);
        size_t wn = model_normalize(in, len, want);
        if (n != wn || (n && memcmp(out, want, n)))
            bad_norm++;
        /* the normal form is a fixed point and has no empty segment */
        if (path_normalize(out, n, again) != n || (n && memcmp(again, out, n)))
            bad_idem++;
        int doubled = 0;
        for (size_t i = 1; i < n; i++)
            doubled |= out[i - 1] == '/' && out[i] == '/';
        if (n && (out[0] == '/' || out[n - 1] == '/' || doubled))
            bad_form++;
        /* parent: everything before the last '/', or 0 */
        size_t p = path_parent_len(out, n), wp = 0;
        for (size_t i = n; i > 0; i--)
            if (out[i - 1] == '/') {
                wp = i - 1;
                break;
            }
        if (p != wp)
            bad_parent++;
        /* segment: bytes up to the first '/' */
        size_t s = path_segment_len(out, n), ws = 0;
        while (ws < n && out[ws] != '/')
            ws++;
        if (s != ws)
            bad_seg++;
        /* comparison against another random string, and its sign flips */
        size_t blen = rnd(6);
        uint8_t b[8];
        for (size_t i = 0; i < blen; i++)
            b[i] = alphabet[rnd(sizeof alphabet)];
        if (rnd(2) && blen <= len) /* often a prefix of in, to test length ties */
            memcpy(b, in, blen);
        int c = path_cmp(in, len, b, blen), wc = model_cmp(in, len, b, blen);
        int rc = path_cmp(b, blen, in, len);
        if ((c < 0) != (wc < 0) || (c > 0) != (wc > 0) || (rc < 0) != (wc > 0) ||
            (rc > 0) != (wc < 0))
            bad_cmp++;
        free(in);
        free(out);
        free(again);
    }
    CHECK_EQ_INT(bad_norm, 0);
    CHECK_EQ_INT(bad_idem, 0);
    CHECK_EQ_INT(bad_form, 0);
    CHECK_EQ_INT(bad_parent, 0);
    CHECK_EQ_INT(bad_seg, 0);
    CHECK_EQ_INT(bad_cmp, 0);
}

int main(void)
{
    normalize_cases();
    helper_cases();
    random_against_model();
    return check_summary();
}
