/*
 * check.h - the smallest useful assertion kit for the C unit tests.
 *
 * Every CHECK* macro counts one pass, or prints file:line with what was
 * expected and counts one failure, and evaluates to 1 (pass) or 0 (fail),
 * so a test can stop early when later checks would only repeat the news:
 *     if (!CHECK_EQ_INT(rc, 0)) return;
 * check_summary() prints exactly one line, "N passed, N failed", and
 * returns the exit code: 0 when nothing failed, 1 otherwise.
 *
 * Each test program is one translation unit, so the counters are static.
 */
#ifndef HYPER_LMDB_CHECK_H
#define HYPER_LMDB_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static long check_passed, check_failed;

static inline int check_record(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
    return 0;
}

static inline int check_eq_int(long long a, long long b, const char *file, int line,
                               const char *as, const char *bs)
{
    if (a == b) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s == %s: %lld != %lld\n", file, line, as, bs,
            a, b);
    return 0;
}

/* Prints a byte string readably: printable ASCII as is, the rest as \xNN. */
static inline void check_print_bytes(const void *p, size_t len)
{
    const unsigned char *b = p;
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < 200; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
            fputc(b[i], stderr);
        else
            fprintf(stderr, "\\x%02x", b[i]);
    }
    fputs(len > 200 ? "\"..." : "\"", stderr);
}

static inline int check_mem(const void *a, size_t alen, const void *b, size_t blen,
                            const char *file, int line, const char *as, const char *bs)
{
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0)) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: CHECK_MEM failed: %s == %s: ", file, line, as, bs);
    check_print_bytes(a, alen);
    fprintf(stderr, " (%zu bytes) != ", alen);
    check_print_bytes(b, blen);
    fprintf(stderr, " (%zu bytes)\n", blen);
    return 0;
}

#define CHECK(cond) check_record((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b) check_eq_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_MEM(a, alen, b, blen)                                                             \
    check_mem((a), (size_t)(alen), (b), (size_t)(blen), __FILE__, __LINE__, #a, #b)
/* A NUL-terminated string against <p, len>. */
#define CHECK_STR(p, len, s) CHECK_MEM((p), (len), (s), strlen(s))

static inline int check_summary(void)
{
    printf("%ld passed, %ld failed\n", check_passed, check_failed);
    fflush(stdout);
    return check_failed ? 1 : 0;
}

#endif
