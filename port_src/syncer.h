/*
 * syncer.h - flushes the store's file to disk on a thread of its own.
 *
 * commit and async mode commit with MDB_NOSYNC and flush every
 * sync-interval.  The flush of a second's commits takes tens of
 * milliseconds here; on the event loop it stalled every caller that long,
 * once a second.  The syncer runs fdatasync on a duplicate of LMDB's file
 * descriptor while the loop serves on: on Linux that writes back every
 * dirty page of the file, those written through the shared map
 * (MDB_WRITEMAP) and the meta pages included, so it is the same flush as
 * mdb_env_sync's msync, without touching the map (which a growing store
 * may move).
 */
#ifndef HYPER_LMDB_SYNCER_H
#define HYPER_LMDB_SYNCER_H

#include <pthread.h>
#include <stdint.h>

struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;            /* our own duplicate of the data file's fd */
    int running;       /* the thread exists */
    int stop;          /* asks the thread to end */
    int busy;          /* a flush is asked for or under way */
    uint64_t asked;    /* the commit count the flush in hand covers */
    uint64_t done;     /* the commit count the last good flush covered */
    int failed;        /* errno of the last flush, 0 if it went well */
    uint64_t flushes;  /* good flushes */
};

/* Starts the thread for data file descriptor fd (duplicated).  0 or an
 * errno. */
int syncer_start(struct syncer *s, int fd);

/* Asks for a flush covering `commits` commits, unless one is under way
 * (then returns 0 and asks nothing).  Returns 1 when asked. */
int syncer_ask(struct syncer *s, uint64_t commits);

/* What the flushes have reached: *done (commit count now on disk), *busy,
 * *failed (errno of the last flush, cleared by reading it).  Cheap: one
 * mutex. */
void syncer_poll(struct syncer *s, uint64_t *done, int *busy, int *failed, uint64_t *flushes);

/* Waits for the flush under way, ends the thread, closes the fd. */
void syncer_stop(struct syncer *s);

#endif
