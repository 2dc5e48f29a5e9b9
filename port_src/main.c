/*
 * main.c - hyper_lmdb_port: command line, start-up and the event loop.
 *
 * usage: hyper_lmdb_port --dir DIR [--map-size BYTES] [--max-readers N]
 *          [--read-ahead 0|1] [--read-only 0|1] [--max-hops N]
 *          [--format auto|tagged|hb_store_lmdb]
 *          [--durability commit|fsync|async] [--sync-interval MS]
 *          [--max-frame BYTES] [--cache-slots N] [--batch-max N]
 *          [--spin-us MICROSECONDS] [--exclusive 0|1] [--fault-injection 0|1]
 *          [--session N] [--read-committed 0|1] [--children-index 0|1]
 *
 * A number outside its option's bound (number(), below) exits with
 * EXIT_USAGE before anything is opened.
 *
 * The loop: wait for input (or for the sync interval to pass), read what
 * is there, serve every complete frame in order, commit the batch of
 * writes those frames made, write the replies, repeat.  The protocol is
 * in protocol.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "errors.h"
#include "frame.h"
#include "protocol.h"
#include "store.h"
#include "syncer.h"

/* Replies are written once this much is pending, even mid-chunk, so a
 * read_many of large values does not hold everything in memory. */
#define FLUSH_AT (1u << 20)

/* Answers leave mid-burst every this many frames (serve_frames).
 * Measured against one write per burst (alternating 250 ms slices, two
 * port builds, three pairs at each size): 16 readers 1.13-1.28x reads/s,
 * 64 readers 1.00-1.10x with p50 latency 11-26% lower, 1 and 4 readers
 * 0.99-1.03x; every 4 frames lost 5% at 4 readers, every 16 gained less,
 * once per burst (after the first 8) nothing at 64. */
#define EARLY_EVERY 8

/* 1 when the input buffer holds a whole frame not yet served. */
static int frame_ready(const struct frame_in *in)
{
    size_t have = in->len - in->pos;
    if (have < 4)
        return 0;
    const uint8_t *p = in->buf + in->pos;
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return have - 4 >= len;
}

/* The spin before sleeping pays off for callers that ask again within
 * microseconds of their answers: a few callers, bursts of a few frames.
 * burst_avg is a moving average of frames per read, in 1/16ths; where the
 * CPUs' pressure is unknown (struct pressure) the port spins only while it
 * stays below SPIN_BELOW_AVG (see the loop).  Eight frames:
 * measured against two (alternating 250 ms slices, two runs), 4 callers
 * +22-26% reads/s, 8 callers +9-13%, 1, 32 and 64 callers within +-2%;
 * sixteen lost 2-6% at 32 and 64 callers. */
#define SPIN_BELOW_AVG (8 * 16)

/* A spin that ends with no input was a waste of a core, and on a machine
 * shared by many ports (a reader per caller: see hyper_lmdb:open_reader/1)
 * it takes the core from the very callers it waits for.  So a miss makes
 * the port sleep through its next waits without spinning, one after the
 * first miss and twice as many after each further one, up to
 * SPIN_BACKOFF_MAX; a spin that catches input, or a sleep that ends within
 * --spin-us (a spin would have caught it), spins again from the next wait. */
#define SPIN_BACKOFF_MAX 256u

/* And a spin is worth its core only while no other task waits for one:
 * with several ports on a small machine (readers, other stores) a spinning
 * port keeps the BEAM, and the other ports, off the core they need to
 * answer it.  Linux tells how much: /proc/pressure/cpu (PSI) sums the time
 * some task was runnable but not running.  Over each PRESSURE_PERIOD_US,
 * when that share passed PRESSURE_BUSY_PERMILLE the port does not spin
 * until the next period; below it, it spins whatever its bursts (see the
 * loop).  Measured (2 cores, spin 200 us): one caller through the store
 * 2-8% of the time, 16 callers 20%, 4 or 16 readers (a port each) 70-80%;
 * 4 readers made 28-32k reads/s spinning 200 us, 56-58k spinning 50 us or
 * not at all; 16 readers 34-43k spinning a quarter as long while busy.
 * Not spinning while busy, 200 us against 50 us otherwise (A/B): 1, 4, 16
 * and 64 readers 1.17x, 1.05x, 1.00-1.09x, 1.06x; through the store 1, 16
 * and 64 callers 1.66x, 1.12x, 1.06x.  Without PSI (an older kernel,
 * psi=0) the port spins after small bursts only.  Looked at every 10 ms
 * (a read of the file costs ~3 us): every 100 ms, a port whose 64 callers
 * had kept the pressure up still slept after each read of the one caller
 * that came next, for up to a period; 64 then 1 caller in turn, 250 ms
 * each (A/B): that one caller 1.47-2.11x reads/s every 20 ms, 1.02-1.22x
 * more every 10 ms; one caller alone, 4 or 16 readers: even. */
#define PRESSURE_PERIOD_US 10000u
#define PRESSURE_BUSY_PERMILLE 200u

/* Except the one port many callers share (bursts of SPIN_BELOW_AVG or
 * more): each of its sleeps stalls all of them for a wake-up, and they
 * keep the pressure up by themselves (64 callers through the store:
 * 34-37%).  It spins after its bursts whatever the pressure, as long as
 * no other process reads the store beside it (store_other_readers, looked
 * at every SHARED_PERIOD_US): a reader the kernel preempts for the
 * spinning port holds its snapshot meanwhile, and every page the commits
 * free stays pinned (make soak-memory: the map at 21.7 MB against 9.1
 * spinning so with readers beside; below, the figures without).
 * Measured (A/B, 2 cores, the eleventh session): 64 callers 1.22-1.64x
 * reads/s in five runs, 16 callers 1.45-1.50x, 4 callers 1.08x. */
#define SHARED_PERIOD_US 10000u

struct shared {
    uint64_t at_us; /* when it was looked at */
    int others;     /* reader slots of other processes then (-1: unknown) */
};

static int shared_now(struct shared *sh, struct store *s, uint64_t now)
{
    if (now - sh->at_us >= SHARED_PERIOD_US) {
        sh->others = store_other_readers(s);
        sh->at_us = now;
    }
    return sh->others != 0;
}

/* What stdin holds now, without waiting: bytes read (> 0), 0 at its end,
 * -EAGAIN when nothing has come, or another negative error.  One read
 * with RWF_NOWAIT where the kernel can (*nowait), else poll and then
 * read: a spin (the loop below) that catches a request saves a system
 * call on its way to the answer.  Measured (A/B, two stores in turn,
 * 250 ms slices, 2 cores, Linux 6.18): one caller through the store
 * 0.97-1.10x reads/s (eight runs, mean 1.03x; p50 0.27 us less), a
 * reader 1.03-1.14x; 16 and 64 callers within the harness's spread
 * (0.90-1.11x and 0.96-1.03x).  Spinning on poll and reading only once
 * it says so (the read takes the pipe's lock, the poll does not): one
 * caller 1.01x, 16 callers the same spread. */
static long input_now(struct frame_in *in, int *nowait)
{
    if (*nowait) {
        long got = frame_in_try(in, STDIN_FILENO);
        if (got != -EOPNOTSUPP)
            return got;
        *nowait = 0;
    }
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    if (n == 0 || (n < 0 && errno == EINTR))
        return -EAGAIN;
    return frame_in_read(in, STDIN_FILENO); /* (a failed poll: the read tells why) */
}

struct pressure {
    int fd;            /* /proc/pressure/cpu, or -1 */
    uint64_t at_us;    /* when total_us was read */
    uint64_t total_us; /* the stall time it said, cumulative */
    int busy;          /* the last period's share passed the line */
};

/* The "some" line's total=, or -1 when the file cannot be read. */
static int pressure_total(int fd, uint64_t *total)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *nl = strchr(buf, '\n'), *t = strstr(buf, "total=");
    if (strncmp(buf, "some ", 5) != 0 || !t || (nl && t > nl))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(t + 6, &end, 10);
    if (errno || end == t + 6)
        return -1;
    *total = v;
    return 0;
}

static void pressure_open(struct pressure *p, uint64_t now)
{
    *p = (struct pressure){.fd = open("/proc/pressure/cpu", O_RDONLY | O_CLOEXEC), .at_us = now};
    if (p->fd >= 0 && pressure_total(p->fd, &p->total_us)) {
        close(p->fd);
        p->fd = -1;
    }
}

/* 1 when the CPUs were busy over the last period that ended, 0 when not,
 * -1 when there is no telling (no PSI). */
static int pressure_busy(struct pressure *p, uint64_t now)
{
    if (p->fd < 0)
        return -1;
    if (now - p->at_us < PRESSURE_PERIOD_US)
        return p->busy;
    uint64_t total;
    if (pressure_total(p->fd, &total)) {
        close(p->fd);
        p->fd = -1;
        return -1;
    }
    p->busy = (total - p->total_us) * 1000 > (now - p->at_us) * PRESSURE_BUSY_PERMILLE;
    p->at_us = now;
    p->total_us = total;
    return p->busy;
}

struct spin_policy {
    unsigned skip;    /* waits left to sleep through without spinning */
    unsigned backoff; /* what the next miss sets skip to */
};

static void spin_hit(struct spin_policy *p)
{
    p->skip = 0;
    p->backoff = 1;
}

static void spin_miss(struct spin_policy *p)
{
    p->skip = p->backoff;
    if (p->backoff < SPIN_BACKOFF_MAX)
        p->backoff *= 2;
}

/* How long a new port waits for the one before it to let go of the
 * directory (lock_dir): longer than the server's default watchdog, after
 * which a closed port that is hung is killed (hyper_lmdb_server, reap). */
#define LOCK_WAIT_MS 40000

/* Writes a commit, unless --batch-max says otherwise.  A commit mode
 * commit costs no flush (a microsecond or two with the last request's id),
 * so a burst's writes commit every EARLY_EVERY and their answers leave
 * with the early ones (serve_frames): measured against one commit per
 * burst (alternating 250 ms slices, two port builds, three pairs), 16
 * writers 1.18-1.32x writes/s, 64 writers 1.03-1.09x with p50 9-16%
 * lower, 1 and 4 writers 0.98-1.05x; sixteen a commit gained less.  In
 * fsync mode every commit is a disk flush, and async mode's answers went
 * out before the port saw the writes: a batch takes all a burst brings. */
#define BATCH_MAX_COMMIT EARLY_EVERY
#define BATCH_MAX_OTHER 4096

/* The longest group_wait, whatever the last flush took. */
#define GROUP_WAIT_MAX_US 2000

struct options {
    struct store_config store;
    size_t max_frame;
    size_t batch_max; /* 0 until given: then by durability (BATCH_MAX_*) */
    int sync_interval_ms;
    int fault_injection;
    int exclusive;
    int read_committed;
    unsigned spin_us;
};

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Where replies go: fd 1's duplicate, and whether it has failed. */
struct output {
    int fd;
    int closed;
    uint64_t last_us; /* when something was last written */
};

/* Writes the pending replies.  Once stdout fails (the server closed the
 * port: EPIPE) replies are dropped, but the loop goes on serving its input
 * to the end: what the server handed over before closing, async writes it
 * already answered ok among them, must still be committed. */
static void flush_output(struct codec_enc *out, struct output *o)
{
    if (out->len)
        o->last_us = now_us();
    if (!o->closed) {
        int rc = frame_flush(out, o->fd);
        if (rc == 0)
            return;
        fprintf(stderr, "hyper_lmdb_port: stdout: %s; serving the rest of the input unanswered\n",
                strerror(-rc));
        o->closed = 1;
    }
    out->len = 0;
}

/* Wake-up ticks (protocol.h, WAKE-UPS).  A request that takes long to
 * serve (a list of children with subtrees, a read_many of many keys, a
 * scan) outlasts the BEAM's idle spin, so its reply waits for the BEAM to
 * wake up: ~60 us on a VM that halts idle vCPUs.  While wake-up calls are
 * on (a few callers), such a walk (struct store, tick) writes another
 * empty frame whenever WAKE_TICK_US pass without output, which keeps the
 * BEAM awake for the reply.  Measured, A/B in alternating rounds, a list
 * of 100 children with 100 descendants each (45 us in the port): p50 136.5
 * -> 94.1 us, mean 284 -> 124, p90 593 -> 136; every 5 us: p50 112. */
#define WAKE_TICK_US 10

struct waker {
    struct output *out;
    struct codec_enc frame; /* the empty frame, while it is written */
    uint64_t *count;        /* the wake-up frames written (dispatch) */
    int on;
};

static void wake_tick(void *ctx)
{
    static const uint8_t wake[4] = {0, 0, 0, 0};
    struct waker *w = ctx;
    if (!w->on || w->out->closed || now_us() - w->out->last_us < WAKE_TICK_US)
        return;
    codec_enc_raw(&w->frame, wake, sizeof wake);
    flush_output(&w->frame, w->out);
    ++*w->count;
}

/* Writes the pending replies, having let the read snapshot go: every
 * answer is a copy by now, and the write wakes the BEAM, which on a busy
 * machine the kernel may run at once in our place, for as long as its
 * time slice, while a snapshot we still held would pin every page the
 * store's commits freed meanwhile.  (Measured with readers opened and
 * closed beside 16 writers, bench/RESULTS.md: pins of 5 ms and more came
 * from readers preempted between their answer and their next wait.)  The
 * next read renews it, tens of nanoseconds. */
static void answer(struct dispatch *d, struct output *o)
{
    if (d->out.len)
        txn_pool_release(&d->store->pool);
    flush_output(&d->out, o);
}

/* Serves every complete frame in the input buffer.  Returns EXIT_OK, or
 * the exit status the loop must stop with; counts the frames in *served.
 * The answers so far go out every EARLY_EVERY frames, so that the server
 * routes them, and their callers ask again, while the port serves the
 * rest (a write's answer waits for its commit, so this only sends reads').
 * Not while a mid-reply crash is armed: the main loop must be the one to
 * write that reply, half of it. */
static int serve_frames(struct dispatch *d, struct frame_in *in, struct output *o, size_t *served)
{
    size_t off, len;
    int rc = 0;
    while (!d->fatal && (rc = frame_in_next(in, &off, &len)) == 1) {
        (*served)++;
        dispatch_frame(d, in->buf, off, len);
        if (d->out.len >= FLUSH_AT ||
            (*served % EARLY_EVERY == 0 && d->out.len && !d->crash_on_flush))
            answer(d, o);
    }
    if (d->fatal)
        return d->fatal;
    if (rc < 0) {
        fprintf(stderr, "hyper_lmdb_port: frame longer than --max-frame %zu\n", in->max_frame);
        return EXIT_STREAM;
    }
    return EXIT_OK;
}

/* Group commit in fsync mode.  A commit costs a disk flush, and writers
 * whose requests arrive just after it starts wait for it and then for a
 * flush of their own.  So when the open batch is smaller than the last one
 * (more writers are on their way: their answers went out a moment ago),
 * wait up to budget_us, about one flush, for them to join it.  A lone
 * writer's batch is never smaller than the last one: it never waits.
 * Stops early once the batch is as large as the last one or closes (a read
 * commits it, unless --read-committed: then the read's answer goes out at
 * once, and the batch waits on).  Returns EXIT_OK or an exit status; sets
 * *eof at the end of input.  (Measured with 64 writers: 64 writes a commit
 * and 105k writes/s, against 33 and 80k without the wait.) */
static int group_wait(struct dispatch *d, struct frame_in *in, struct output *o, size_t want,
                      uint64_t budget_us, int *eof)
{
    uint64_t until = now_us() + budget_us;
    answer(d, o); /* answers to reads before the batch go out now */
    while (batch_open(d->store) && d->batch.n < want) {
        uint64_t now = now_us();
        if (now >= until)
            break;
        uint64_t left = until - now;
        struct timeval tv = {.tv_sec = (time_t)(left / 1000000u),
                             .tv_usec = (suseconds_t)(left % 1000000u)};
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        int n = select(STDIN_FILENO + 1, &fds, NULL, NULL, &tv);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        long got = frame_in_read(in, STDIN_FILENO);
        /* The read may have moved the buffer the open batch's frames live
         * in (their offsets hold: nothing is compacted until it commits);
         * a commit that must replay them reads them from d->base, on every
         * way out of here. */
        d->base = in->buf;
        if (got == 0) {
            *eof = 1;
            break;
        }
        if (got < 0) {
            fprintf(stderr, "hyper_lmdb_port: read: %s\n",
                    strerror(got == HL_ENOMEM ? ENOMEM : (int)-got));
            return got == HL_ENOMEM ? EXIT_NOMEM : EXIT_STREAM;
        }
        size_t served = 0;
        int status = serve_frames(d, in, o, &served);
        if (status)
            return status;
        if (d->out.len && !d->crash_on_flush)
            answer(d, o);
    }
    return EXIT_OK;
}

/* mkdir -p: the directory and any parents missing (SPEC: the store's
 * directory is created if missing; HyperBEAM names stores such as
 * "cache-mainnet/lmdb" on a fresh node).  Returns 0 or an errno. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return n ? ENAMETOOLONG : ENOENT;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        if (path[i - 1] == '/')
            continue; /* "a//b": the empty part is no directory */
        char c = path[i];
        path[i] = '\0';
        int rc = mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : errno;
        path[i] = c;
        if (rc)
            return rc;
    }
    return 0; /* (a file of that name: the lock file's open says so) */
}

/*
 * One port per store directory (SPEC section 1).  A writable port holds an
 * exclusive flock on DIR/hyper_lmdb.lock for as long as it lives; the
 * kernel lets go of it however the port ends, kill -9 included.  A port
 * may outlive its server's interest in it: after a stop, or when its server
 * was killed outright, it still commits the input it was handed before it
 * sees EOF.  A new port of the same store waits here for it, so that the
 * old port's last commits cannot land after the new port's (an old value
 * overwriting a newer one, read-your-writes broken right after a restart).
 * Gives up after LOCK_WAIT_MS (another node serves the directory), or
 * when our own stdin closes (our server gave up on us).  Returns 0, or an
 * errno with *why; *fd stays open for the life of the process.
 */
static int lock_dir(const char *dir, int *fd, int *existed, char *why, size_t whylen)
{
    char path[PATH_MAX];
    int made = make_dirs(dir);
    if (made) {
        snprintf(why, whylen, "mkdir");
        return made;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/hyper_lmdb.lock", dir) >= sizeof path) {
        snprintf(why, whylen, "lock file path too long");
        return ENAMETOOLONG;
    }
    *existed = access(path, F_OK) == 0; /* a port of ours opened it before */
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        int e = errno;
        snprintf(why, whylen, "open hyper_lmdb.lock");
        return e;
    }
    uint64_t start = now_us(), until = start + (uint64_t)LOCK_WAIT_MS * 1000u;
    int told = 0;
    while (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EWOULDBLOCK || now_us() >= until) {
            snprintf(why, whylen, e == EWOULDBLOCK
                                      ? "another port still serves this directory (hyper_lmdb.lock)"
                                      : "flock hyper_lmdb.lock");
            close(*fd);
            *fd = -1;
            return e;
        }
        if (!told && now_us() - start > 1000000u) { /* a short wait is the common case */
            fprintf(stderr, "hyper_lmdb_port: waiting for the port before us to leave %s\n", dir);
            told = 1;
        }
        /* No request comes before our hello: input now can only be EOF
         * (a hang-up on a pipe; readable with nothing to read otherwise). */
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&p, 1, 2), avail = 0;
        if (n > 0 && ((p.revents & (POLLHUP | POLLERR)) ||
                      (ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail == 0))) {
            snprintf(why, whylen, "stdin closed while waiting for hyper_lmdb.lock");
            close(*fd);
            *fd = -1;
            return EPIPE;
        }
        if (n > 0) {
            struct timespec t = {0, 2000000};
            nanosleep(&t, NULL);
        }
    }
    return 0;
}

/*
 * commit and async mode's flushes to disk, within a sync interval of the
 * oldest commit not yet flushed, busy or idle.  On the syncer's thread
 * (syncer.h); on this one if the thread could not start.  A failed flush
 * leaves its commits unflushed, tried again at the next deadline.
 */
struct flusher {
    struct syncer sync;
    int threaded;
    uint64_t synced;   /* commits on disk */
    uint64_t due;      /* when the oldest commit not on disk must be */
    int pending;       /* commits not on disk, and `due` is set */
    int busy;          /* the syncer is flushing */
};

static void flusher_start(struct flusher *f, struct store *s)
{
    int fd;
    *f = (struct flusher){0};
    f->threaded = mdb_env_get_fd(s->env, &fd) == 0 && syncer_start(&f->sync, fd) == 0;
    if (!f->threaded)
        fprintf(stderr, "hyper_lmdb_port: no sync thread; flushing on the event loop\n");
}

/* Takes in what the syncer finished; then, when the deadline has come,
 * asks for a flush of every commit so far.  Returns the poll timeout, in
 * ms, that keeps the deadline (-1: none). */
static int flusher_tick(struct flusher *f, struct dispatch *d, struct store *s,
                        unsigned interval_ms)
{
    uint64_t commits = d->batch.commits;
    if (f->threaded && f->busy) { /* (nothing to take in otherwise: no lock, no clock) */
        uint64_t flushes;
        int failed;
        syncer_poll(&f->sync, &f->synced, &f->busy, &failed, &flushes);
        d->background_syncs = flushes;
        if (failed)
            fprintf(stderr, "hyper_lmdb_port: background sync: %s\n", strerror(failed));
    }
    int dirty = commits != f->synced && !s->read_only && s->durability != DURABILITY_FSYNC;
    if (!dirty) {
        f->pending = 0;
        return -1;
    }
    uint64_t now = now_us();
    if (!f->pending) {
        f->pending = 1;
        f->due = now + (uint64_t)interval_ms * 1000u;
    }
    if (now >= f->due) {
        if (f->threaded) {
            if (!syncer_ask(&f->sync, commits))
                return 10; /* still flushing the last lot: look again soon */
            f->busy = 1;
        } else {
            int rc = mdb_env_sync(s->env, 1);
            if (rc)
                fprintf(stderr, "hyper_lmdb_port: background sync: %s\n", mdb_strerror(rc));
            else {
                f->synced = commits;
                d->background_syncs++;
            }
        }
        /* what is committed from now on is due an interval from now */
        f->due = now + (uint64_t)interval_ms * 1000u;
    }
    return (int)((f->due - now + 999) / 1000);
}

static void usage(const char *why)
{
    fprintf(stderr, "hyper_lmdb_port: %s\n", why);
    exit(EXIT_USAGE);
}

/* A decimal number for option `name`, within [min, max]; anything else
 * ends the port with EXIT_USAGE.  Each option's bound is checked here,
 * before a cast to its field's type: a cast would wrap (--max-hops
 * 4294967296 became 0, --sync-interval 2147483648 a negative interval,
 * --max-readers 2^32 + 1 one reader slot) and run the port with a
 * setting nobody asked for. */
static unsigned long long number(const char *s, const char *name, unsigned long long min,
                                 unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "hyper_lmdb_port: bad number for %s: %s\n", name, s);
        exit(EXIT_USAGE);
    }
    if (v < min || v > max) {
        fprintf(stderr, "hyper_lmdb_port: %s %s is outside [%llu, %llu]\n", name, s, min, max);
        exit(EXIT_USAGE);
    }
    return v;
}

static int flag(const char *s, const char *name) { return number(s, name, 0, 1) != 0; }

/* The bounds.  Beyond each, the setting is a mistake, not a wish: */
/* a map beyond 2^62 bytes can never be mapped, and doubling it
 * (store_grow_map) must not overflow */
#define MAX_MAP_SIZE ((unsigned long long)1 << 62)
/* each reader slot is a cache line of the lock file, and more slots than
 * a machine has threads are never used */
#define MAX_READERS (1u << 20)
/* a link loop is walked max-hops times before it is not_found: a million
 * hops is about a second of one read, and the hop counter must not wrap */
#define MAX_HOPS (1u << 20)
/* link cache slots are rounded up to a power of two and calloc'd */
#define MAX_CACHE_SLOTS ((unsigned long long)1 << 24)
/* a frame's length is 32 bits */
#define MAX_FRAME_LIMIT 0xffffffffull
/* a batch holds its writes' frames and answers until it commits */
#define MAX_BATCH (1u << 20)
/* ms: a day between flushes to disk; poll takes an int */
#define MAX_SYNC_INTERVAL_MS (24u * 3600 * 1000)
/* a spin longer than a second is a busy loop, not a spin */
#define MAX_SPIN_US 1000000u
/* the size_t options' bounds fit size_t (the port is 64-bit only: its
 * default map is 16 GiB) */
_Static_assert(SIZE_MAX >= MAX_MAP_SIZE, "size_t narrower than 64 bits");

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){
        .store = {.map_size = (size_t)16 << 30,
                  .max_readers = 126,
                  .max_hops = 1000,
                  .format = FORMAT_AUTO,
                  .durability = DURABILITY_COMMIT,
                  .cache_slots = 65536},
        .max_frame = DEFAULT_MAX_FRAME,
        .sync_interval_ms = 1000,
        .spin_us = 200,
        .exclusive = 1,
    };
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage("option without a value");
        if (!strcmp(k, "--dir"))
            o->store.dir = v;
        else if (!strcmp(k, "--map-size"))
            o->store.map_size = (size_t)number(v, k, 1, MAX_MAP_SIZE);
        else if (!strcmp(k, "--max-readers"))
            o->store.max_readers = (unsigned)number(v, k, 1, MAX_READERS);
        else if (!strcmp(k, "--read-ahead"))
            o->store.read_ahead = flag(v, k);
        else if (!strcmp(k, "--read-only"))
            o->store.read_only = flag(v, k);
        else if (!strcmp(k, "--max-hops"))
            o->store.max_hops = (unsigned)number(v, k, 0, MAX_HOPS);
        else if (!strcmp(k, "--cache-slots"))
            o->store.cache_slots = (size_t)number(v, k, 0, MAX_CACHE_SLOTS);
        else if (!strcmp(k, "--max-frame"))
            o->max_frame = (size_t)number(v, k, 1, MAX_FRAME_LIMIT);
        else if (!strcmp(k, "--batch-max"))
            o->batch_max = (size_t)number(v, k, 1, MAX_BATCH);
        else if (!strcmp(k, "--sync-interval"))
            o->sync_interval_ms = (int)number(v, k, 1, MAX_SYNC_INTERVAL_MS);
        else if (!strcmp(k, "--exclusive"))
            o->exclusive = flag(v, k);
        else if (!strcmp(k, "--spin-us"))
            o->spin_us = (unsigned)number(v, k, 0, MAX_SPIN_US);
        else if (!strcmp(k, "--session"))
            o->store.session = number(v, k, 0, UINT64_MAX);
        else if (!strcmp(k, "--fault-injection"))
            o->fault_injection = flag(v, k);
        else if (!strcmp(k, "--read-committed"))
            o->read_committed = flag(v, k);
        else if (!strcmp(k, "--children-index"))
            o->store.children_index = flag(v, k);
        else if (!strcmp(k, "--format")) {
            if (!strcmp(v, "auto"))
                o->store.format = FORMAT_AUTO;
            else if (!strcmp(v, "tagged"))
                o->store.format = FORMAT_TAGGED;
            else if (!strcmp(v, "hb_store_lmdb"))
                o->store.format = FORMAT_HB;
            else
                usage("bad --format");
        } else if (!strcmp(k, "--durability")) {
            if (!strcmp(v, "commit"))
                o->store.durability = DURABILITY_COMMIT;
            else if (!strcmp(v, "fsync"))
                o->store.durability = DURABILITY_FSYNC;
            else if (!strcmp(v, "async"))
                o->store.durability = DURABILITY_ASYNC;
            else
                usage("bad --durability");
        } else {
            usage("unknown option");
        }
    }
    if (!o->store.dir)
        usage("--dir is required");
    if (!o->batch_max)
        o->batch_max = o->store.durability == DURABILITY_COMMIT ? BATCH_MAX_COMMIT : BATCH_MAX_OTHER;
}

int main(int argc, char **argv)
{
    struct options opt;
    parse_args(argc, argv, &opt);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error value, not a signal */

    /* A closed fd 2 would make the dup below return 2, and every
     * diagnostic would land in the protocol: give it /dev/null. */
    if (fcntl(STDERR_FILENO, F_GETFD) < 0 && open("/dev/null", O_WRONLY) != STDERR_FILENO)
        return EXIT_OUTPUT;
    /* fd 1 is the protocol.  Keep it private and point fd 1 at stderr, so
     * a stray printf from anywhere can never corrupt a frame. */
    int out_fd = dup(STDOUT_FILENO);
    if (out_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        perror("hyper_lmdb_port: dup");
        return EXIT_OUTPUT;
    }

    struct store store;
    char why[128];
    int lock_fd = -1;
    int rc = 0;
    if (!opt.store.read_only && opt.exclusive)
        rc = lock_dir(opt.store.dir, &lock_fd, &opt.store.ours, why, sizeof why);
    if (rc == 0)
        rc = store_open(&store, &opt.store, why, sizeof why);
    if (rc) {
        struct codec_enc err_out;
        codec_enc_init(&err_out);
        dispatch_open_error(&err_out, rc, why);
        frame_flush(&err_out, out_fd);
        codec_enc_free(&err_out);
        fprintf(stderr, "hyper_lmdb_port: cannot open %s: %s (%d)\n", opt.store.dir, why, rc);
        return EXIT_OPEN;
    }

    struct dispatch d;
    struct frame_in in;
    dispatch_init(&d, &store, opt.batch_max);
    d.faults_enabled = opt.fault_injection;
    d.read_committed = opt.read_committed;
    frame_in_init(&in, opt.max_frame);
    dispatch_hello(&d);
    struct output out = {.fd = out_fd};
    struct waker waker = {.out = &out, .count = &d.wake_frames};
    codec_enc_init(&waker.frame);
    store.tick = wake_tick;
    store.tick_ctx = &waker;
    int status = EXIT_OK;
    struct flusher flush;
    flusher_start(&flush, &store);
    size_t last_burst = 0;        /* frames the last read brought */
    unsigned burst_avg = 16;      /* moving average of last_burst, x16 */
    size_t last_batch = 0;        /* fsync mode: writes in the last commit */
    uint64_t commit_us = 0;       /* ... and how long it took (group_wait) */
    struct spin_policy spin = {.skip = 0, .backoff = 1};
    struct pressure cpu;
    pressure_open(&cpu, now_us());
    struct shared shared = {.at_us = now_us(), .others = -1};
    int nowait = 1; /* frame_in_try works here (input_now) */

    for (;;) {
        if (d.crash_on_flush) { /* fault injection: die mid-reply */
            if (write(out.fd, d.out.buf, d.out.len / 2) < 0)
                perror("hyper_lmdb_port: write");
            dispatch_crash();
        }
        answer(&d, &out);
        if (d.fault_next) { /* its caller has heard ok: now it may fire */
            d.fault = d.fault_next;
            d.fault_next = 0;
        }
        /* Commits reach the disk within a sync interval (fsync mode's at
         * once). */
        int timeout = flusher_tick(&flush, &d, &store, (unsigned)opt.sync_interval_ms);
        /* Spin briefly (--spin-us) before sleeping: a caller that just got
         * its reply often sends the next request within microseconds, and
         * a wake-up from a blocking poll costs tens of them (on a VM that
         * halts idle vCPUs, over a hundred).  Not while the CPUs are busy
         * (struct pressure), unless many callers share this port and no
         * other process reads beside it (struct shared), and, where the
         * pressure is unknown, not when
         * reads bring several frames on average: then many callers queue
         * on a busy BEAM, the next burst is many microseconds away, and on
         * a small machine the spinning takes the core the BEAM needs to
         * make it (measured with 64 readers on 2 cores: 200k reads/s
         * spinning, 230k not; perf showed 40% of the port's time in the
         * spin when it spun after bursts of up to four).  With the CPUs
         * not busy, large bursts spin too: 16 callers 1.65-1.71x reads/s,
         * 8 callers 1.12x, 32 and 64 unchanged (A/B, 2 cores). */
        long got = input_now(&in, &nowait);
        int n = got != -EAGAIN;
        /* Nothing to serve: let the read snapshot go before waiting.  A
         * snapshot held pins every page a commit frees after it, and a
         * port may wait long (a reader whose owner is busy elsewhere, a
         * port the kernel does not run): measured with 16 writers and two
         * readers reading all along, 20 s, the store's map grew to 5.8 MB
         * against 0.46 MB with no readers, and to 17.5 MB with readers
         * opened and closed in turn.  The next read renews it (tens of ns). */
        if (n == 0)
            txn_pool_release(&store.pool);
        int busy = n == 0 && opt.spin_us ? pressure_busy(&cpu, now_us()) : -1;
        int many = burst_avg >= SPIN_BELOW_AVG;
        int may_spin = n == 0 && opt.spin_us &&
                       (busy == 0 || (busy < 0 && !many) ||
                        (busy == 1 && many && !shared_now(&shared, &store, now_us())));
        if (busy == 1 && !may_spin)
            d.busy_waits++;
        if (may_spin && spin.skip) {
            spin.skip--;
        } else if (may_spin) {
            if (busy == 1)
                d.busy_spins++; /* many callers, no reader beside */
            uint64_t until = now_us() + opt.spin_us;
            while (n == 0 && now_us() < until)
                n = (got = input_now(&in, &nowait)) != -EAGAIN;
            if (n == 0) {
                spin_miss(&spin);
                d.spin_misses++;
                may_spin = 0; /* the sleep below says nothing more */
            } else {
                spin_hit(&spin);
            }
        }
        if (n == 0) {
            uint64_t slept = may_spin ? now_us() : 0;
            d.input_waits++;
            struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
            n = poll(&pfd, 1, timeout);
            if (may_spin && n > 0 && now_us() - slept <= opt.spin_us)
                spin_hit(&spin);
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                continue; /* a flush is due */
            got = frame_in_read(&in, STDIN_FILENO);
        }
        d.base = in.buf; /* (the batch is empty here: for form's sake) */
        if (got == 0)
            break; /* EOF: the server closed the port or the BEAM is gone */
        if (got < 0) {
            fprintf(stderr, "hyper_lmdb_port: read: %s\n", strerror(got == HL_ENOMEM ? ENOMEM : (int)-got));
            status = got == HL_ENOMEM ? EXIT_NOMEM : EXIT_STREAM;
            break;
        }
        /* A wake-up call (protocol.h, WAKE-UPS): with a few callers the
         * BEAM side has gone idle by now, and a reply that finds it asleep
         * waits for it to wake up, several microseconds on this kind of
         * machine.  An empty frame written now starts that wake-up, and
         * the reply is usually there by the time the BEAM reads.  Measured
         * with one caller in lockstep on a bare port, random keys of
         * 10,000: 13.3-22.4 -> 10.2-13.1 us a read (three runs); commit
         * mode writes 20.7-26.9 -> 17.0-18.8 us.  Not with many callers:
         * the BEAM is busy then, and each one would be a message more. */
        if (burst_avg < SPIN_BELOW_AVG && frame_ready(&in)) {
            static const uint8_t wake[4] = {0, 0, 0, 0};
            codec_enc_raw(&d.out, wake, sizeof wake);
            flush_output(&d.out, &out);
            d.wake_frames++;
        }
        waker.on = burst_avg < SPIN_BELOW_AVG;
        last_burst = 0;
        status = serve_frames(&d, &in, &out, &last_burst);
        waker.on = 0;
        int eof = 0;
        if (status == EXIT_OK && store.durability == DURABILITY_FSYNC && batch_open(&store) &&
            d.batch.n < last_batch)
            status = group_wait(&d, &in, &out, last_batch, commit_us, &eof);
        if (status)
            break;
        if (d.fatal) { /* what it failed on stays unanswered (dispatch.c) */
            status = d.fatal;
            break;
        }
        if (batch_open(&store) && store.durability == DURABILITY_FSYNC) {
            size_t writes = d.batch.n;
            uint64_t t0 = now_us();
            dispatch_end_of_input(&d);
            uint64_t took = now_us() - t0;
            last_batch = writes;
            commit_us = took > GROUP_WAIT_MAX_US ? GROUP_WAIT_MAX_US : took;
        } else {
            dispatch_end_of_input(&d);
        }
        if (last_burst) {
            d.input_chunks++;
            size_t b = last_burst > 64 ? 64 : last_burst;
            burst_avg = (burst_avg * 7 + (unsigned)b * 16) / 8;
        }
        if (eof || d.fatal) {
            status = d.fatal ? d.fatal : status;
            break;
        }
        frame_in_compact(&in);
    }
    if (!d.fatal)
        dispatch_end_of_input(&d);
    flush_output(&d.out, &out);
    if (out.closed && status == EXIT_OK)
        status = EXIT_OUTPUT;
    store.tick = NULL;
    codec_enc_free(&waker.frame);
    dispatch_free(&d);
    frame_in_free(&in);
    if (flush.threaded)
        syncer_stop(&flush.sync);
    store_close(&store); /* flushes everything, on this thread */
    if (lock_fd >= 0)
        close(lock_fd); /* after the last commit and sync: the next port may go */
    return status;
}
