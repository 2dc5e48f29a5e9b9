/*
 * slow_flush.c - an LD_PRELOAD shim that makes every flush to disk take
 * FLUSH_DELAY_US microseconds longer: fdatasync, fsync and msync with
 * MS_SYNC return only after the real call and then the delay.  Nothing
 * else changes.
 *
 * For `make bench-slow-disk': the fsync mode's 64 writers against the
 * txn-per-op floor on a disk whose flushes cost what a disk's usually do,
 * not the few hundred microseconds of the virtual disks the benchmark
 * runs on, where one round of 64 Erlang processes costs as much as a
 * synchronous commit (bench/RESULTS.md).  The port, raw_lmdb and the
 * BEAM all inherit it; of them only LMDB flushes.
 *
 *   LD_PRELOAD=_build/bench/slow_flush.so FLUSH_DELAY_US=4000 command...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);
int fsync(int fd);
int msync(void *addr, size_t len, int flags);

static void delay(void)
{
    static long us = -1;
    if (us < 0) {
        const char *e = getenv("FLUSH_DELAY_US");
        us = e ? atol(e) : 0;
        if (us < 0)
            us = 0;
    }
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    while (us > 0 && nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real(fd);
    delay();
    return rc;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real(fd);
    delay();
    return rc;
}

int msync(void *addr, size_t len, int flags)
{
    static int (*real)(void *, size_t, int);
    if (!real)
        real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    int rc = real(addr, len, flags);
    if (flags & MS_SYNC)
        delay();
    return rc;
}
