/* syncer.c - background flushes of the data file (syncer.h). */
#include "syncer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void *run(void *arg)
{
    struct syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !(s->busy && s->asked > s->done))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop)
            break;
        uint64_t asked = s->asked;
        pthread_mutex_unlock(&s->mu);
        int rc = fdatasync(s->fd) == 0 ? 0 : errno;
        pthread_mutex_lock(&s->mu);
        if (rc == 0) {
            s->done = asked;
            s->flushes++;
        }
        s->failed = rc;
        s->busy = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int syncer_start(struct syncer *s, int fd)
{
    memset(s, 0, sizeof *s);
    s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (s->fd < 0)
        return errno;
    int rc = pthread_mutex_init(&s->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&s->cv, NULL)) != 0)
        pthread_mutex_destroy(&s->mu);
    if (rc == 0 && (rc = pthread_create(&s->thread, NULL, run, s)) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    if (rc) {
        close(s->fd);
        s->fd = -1;
        return rc;
    }
    s->running = 1;
    return 0;
}

int syncer_ask(struct syncer *s, uint64_t commits)
{
    int asked = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->busy && commits > s->done) {
        s->asked = commits;
        s->busy = 1;
        asked = 1;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return asked;
}

void syncer_poll(struct syncer *s, uint64_t *done, int *busy, int *failed, uint64_t *flushes)
{
    pthread_mutex_lock(&s->mu);
    *done = s->done;
    *busy = s->busy;
    *failed = s->failed;
    *flushes = s->flushes;
    s->failed = 0;
    pthread_mutex_unlock(&s->mu);
}

void syncer_stop(struct syncer *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1; /* a flush under way finishes first: the thread checks stop only between them */
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    close(s->fd);
    s->running = 0;
}
