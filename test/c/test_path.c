/* test_path.c - path normal form and segment helpers (port_src/path.h). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "path.h"

static void norm(const char *in, size_t len, const char *want, size_t wlen)
{
    uint8_t out[256];
    size_t n = path_normalize((const uint8_t *)in, len, out);
    CHECK_MEM(out, n, want, wlen);
}

#define NORM(in, want) norm(in, sizeof in - 1, want, sizeof want - 1)

int main(void)
{
    NORM("", "");
    NORM("/", "");
    NORM("///", "");
    NORM("a", "a");
    NORM("/a/", "a");
    NORM("//a//b/", "a/b");
    NORM("a/b/c", "a/b/c");
    NORM("..//./x", ".././x");   /* dots are ordinary segments */
    NORM("a/./x", "a/./x");
    NORM("a\0b/\0", "a\0b/\0");          /* NUL is a key byte */
    NORM("\xff\xfe//z", "\xff\xfe/z");   /* so are non-UTF-8 bytes */

    CHECK_EQ_INT(path_parent_len((const uint8_t *)"a/b/c", 5), 3);
    CHECK_EQ_INT(path_parent_len((const uint8_t *)"abc", 3), 0);
    CHECK_EQ_INT(path_parent_len((const uint8_t *)"", 0), 0);
    CHECK_EQ_INT(path_parent_len((const uint8_t *)"a/b", 3), 1);

    CHECK_EQ_INT(path_segment_len((const uint8_t *)"ab/c", 4), 2);
    CHECK_EQ_INT(path_segment_len((const uint8_t *)"abc", 3), 3);
    CHECK_EQ_INT(path_segment_len((const uint8_t *)"", 0), 0);

    /* bytewise, a proper prefix first: the order LMDB keeps keys in */
    CHECK(path_cmp((const uint8_t *)"a", 1, (const uint8_t *)"b", 1) < 0);
    CHECK(path_cmp((const uint8_t *)"c", 1, (const uint8_t *)"c-x", 3) < 0);
    CHECK(path_cmp((const uint8_t *)"c-x", 3, (const uint8_t *)"c/x", 3) < 0);
    CHECK(path_cmp((const uint8_t *)"c/x", 3, (const uint8_t *)"c0", 2) < 0);
    CHECK(path_cmp((const uint8_t *)"\xff", 1, (const uint8_t *)"a", 1) > 0);
    CHECK(path_cmp((const uint8_t *)"", 0, (const uint8_t *)"", 0) == 0);
    CHECK(path_cmp((const uint8_t *)"", 0, (const uint8_t *)"a", 1) < 0);
    return check_summary();
}
