/*
 * dispatch.h - turns request frames into store calls and reply frames.
 *
 * One dispatcher serves one store.  The main loop feeds it the frames of
 * each chunk of input in order (dispatch_frame) and then calls
 * dispatch_end_of_input, which commits the open write batch and answers
 * its writes.  Replies accumulate in `out`; the main loop flushes it.
 */
#ifndef HYPER_LMDB_DISPATCH_H
#define HYPER_LMDB_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "codec.h"
#include "store.h"

/* A growable scratch buffer for one normalised path argument. */
struct scratch {
    uint8_t *p;
    size_t cap;
};

/* Test-only failure points (protocol.h, {Id, fault, Point}). */
enum dispatch_fault {
    FAULT_NONE, FAULT_BEFORE_COMMIT, FAULT_AFTER_COMMIT, FAULT_MID_REPLY, FAULT_HANG,
};

struct dispatch {
    struct store *store;
    struct batch batch;
    struct codec_enc out;
    struct store_names names;
    struct scratch path_a, path_b;
    const uint8_t *base;   /* input buffer the current frames live in */
    const char *bad_what;  /* detail for the last HL_EBADREQ */
    size_t batch_max;      /* writes per group commit */
    size_t max_reply;      /* longest reply payload: FRAME_MAX_PAYLOAD (tests
                              lower it to reach too_large without 4 GiB) */
    int faults_enabled;    /* --fault-injection: accept {fault, Point} */
    int read_committed;    /* --read-committed: a read leaves the batch open
                              and is answered from the last commit */
    int fault;             /* the armed enum dispatch_fault */
    int fault_next;        /* armed once the reply to {fault, _} is out */
    int crash_on_flush;    /* write half of `out`, then die (mid-reply) */
    int fatal;             /* 0, or the status the port exits with, the
                              request that caused it unanswered: EXIT_LMDB
                              (MDB_PANIC: the environment is unusable) or
                              EXIT_NOMEM (not even an error reply fitted) */
    uint64_t requests, bad_requests, background_syncs;
    /* input chunks that held frames, and the sleeps in poll between them:
     * requests / input_chunks is the burst size the server achieves */
    uint64_t input_chunks, input_waits;
    uint64_t wake_frames; /* empty frames written ahead of and during serving (main.c) */
    uint64_t spin_misses; /* spins before sleeping that caught no input (main.c) */
    uint64_t busy_waits;  /* waits with no spin, as the CPUs were busy (main.c) */
    uint64_t busy_spins;  /* spins although the CPUs were busy: many callers (main.c) */
};

void dispatch_init(struct dispatch *d, struct store *s, size_t batch_max);
void dispatch_free(struct dispatch *d);

/* Serves the request frame <base + off, len>.  base must stay valid, and
 * the frame where it is, until dispatch_end_of_input returns. */
void dispatch_frame(struct dispatch *d, const uint8_t *base, size_t off, size_t len);

/* Dies by SIGKILL, as a crash would: no cleanup, no more output. */
void dispatch_crash(void);

/* Commits the open write batch, if any, and answers its requests. */
void dispatch_end_of_input(struct dispatch *d);

/* Encodes the handshake frame (protocol.h). */
void dispatch_hello(struct dispatch *d);

/* Encodes {0, {error, {open_failed, Why, Text}}}: why the store did not
 * open, for the server to report.  Why is a POSIX atom (enoent, eacces,
 * enotdir, ...) for an errno, `format` for a format mismatch, else the
 * numeric LMDB code; Text is the step or LMDB's message. */
void dispatch_open_error(struct codec_enc *out, int code, const char *text);

#endif
