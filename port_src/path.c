/* path.c - path normal form and segment helpers (path.h). */
#include "path.h"

#include <string.h>

size_t path_normalize(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && in[i] == '/')
            i++;
        size_t start = i;
        while (i < len && in[i] != '/')
            i++;
        if (i > start) {
            if (n)
                out[n++] = '/';
            memcpy(out + n, in + start, i - start);
            n += i - start;
        }
    }
    return n;
}

size_t path_parent_len(const uint8_t *p, size_t len)
{
    while (len && p[len - 1] != '/')
        len--;
    return len ? len - 1 : 0;
}

size_t path_segment_len(const uint8_t *rest, size_t len)
{
    const uint8_t *slash = memchr(rest, '/', len);
    return slash ? (size_t)(slash - rest) : len;
}

int path_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}
