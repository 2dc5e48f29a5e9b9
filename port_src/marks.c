/* marks.c - the commit records of a store in hb_store_lmdb's format
 * (marks.h). */
#include "marks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MARKS_BYTES (MARK_SLOTS * sizeof(mark_rec))

/* A record's fourth word: tells a whole record from zeros, or from one a
 * writer killed half-way through left. */
static uint64_t check_of(uint64_t txnid, uint64_t session, uint64_t request)
{
    uint64_t h = 0x68797065726c6d64u; /* "hyperlmd" */
    uint64_t w[3] = {txnid, session, request};
    for (int i = 0; i < 3; i++) {
        h ^= w[i];
        h *= 0x9e3779b97f4a7c15u;
        h ^= h >> 29;
    }
    return h;
}

mark_rec *marks_open(const char *dir)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, MARKS_FILE) >= sizeof path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    /* Its blocks written out at once (zeros), under a lock so that two
     * ports opening it together do not write zeros over a record, and
     * allocated (a copy of the directory may have made holes of its
     * zeros): a record that needed a block on a full disk would be a
     * SIGBUS.  A full disk fails this open instead, never a record. */
    struct stat st;
    int rc = flock(fd, LOCK_EX) ? errno : fstat(fd, &st) ? errno : 0;
    if (!rc && st.st_size < (off_t)MARKS_BYTES) {
        static const uint8_t zeros[MARKS_BYTES];
        size_t from = (size_t)st.st_size;
        ssize_t n = pwrite(fd, zeros + from, MARKS_BYTES - from, (off_t)from);
        rc = n == (ssize_t)(MARKS_BYTES - from) ? 0 : n < 0 ? errno : ENOSPC;
    }
    while (!rc && syscall(SYS_fallocate, fd, 0, (off_t)0, (off_t)MARKS_BYTES) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            break; /* a filesystem without it: the zeros written above */
        if (errno != EINTR)
            rc = errno;
    }
    flock(fd, LOCK_UN);
    void *m = rc ? MAP_FAILED : mmap(NULL, MARKS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!rc && m == MAP_FAILED)
        rc = errno;
    close(fd); /* the map keeps the file */
    if (rc) {
        errno = rc;
        return NULL;
    }
    return m;
}

void marks_close(mark_rec *m)
{
    if (m)
        munmap(m, MARKS_BYTES);
}

void marks_put(mark_rec *m, uint64_t txnid, uint64_t session, uint64_t request)
{
    mark_rec rec = {txnid, session, request, check_of(txnid, session, request)};
    memcpy(m[txnid % MARK_SLOTS], rec, sizeof rec);
}

int marks_last(const mark_rec *m, uint64_t committed, uint64_t session, uint64_t *request)
{
    int found = 0;
    uint64_t best = 0;
    for (size_t i = 0; i < MARK_SLOTS; i++) {
        mark_rec r;
        memcpy(r, m[i], sizeof r);
        if (r[3] != check_of(r[0], r[1], r[2]) || r[0] % MARK_SLOTS != i || r[1] != session ||
            r[0] > committed || (found && r[0] <= best))
            continue;
        found = 1;
        best = r[0];
        *request = r[2];
    }
    return found;
}
