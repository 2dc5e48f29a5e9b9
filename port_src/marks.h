/*
 * marks.h - which writer made each commit of a store in hb_store_lmdb's
 * format.
 *
 * After a crash the server must know which of its async writes the dead
 * port had committed (applied twice, a write after a link it made lands
 * elsewhere).  The tagged format records it inside each commit
 * (store_note_last); a store in hb_store_lmdb's format can hold no key of
 * ours, so its records go into a file beside it, DIR/hyper_lmdb.commits:
 * MARK_SLOTS records of <transaction id, session, request>, the one of
 * transaction N in slot N % MARK_SLOTS.
 *
 * Every writable port of ours writes its record just before each commit,
 * holding LMDB's writer lock (a port without a session writes session 0,
 * nobody's).  So of the records ever written for an id N, the last is the
 * one of the transaction that committed as N: a transaction that aborted
 * or died before its commit leaves its id to the next writer, who writes
 * over its record.  A new port takes, of its session's records, the one
 * with the highest id the environment has committed.
 *
 * A record is a store into the file's shared map (a pwrite was 2 us a
 * commit more in lockstep, the inode's time updated each time; the map
 * costs a fault each time writeback has cleaned its page).  The file's
 * blocks are written when it is made and allocated at every open (holes
 * a copy made included), so a record never needs one.  It is not
 * flushed, and need not be: what loses the page cache (an
 * OS crash) took the BEAM too, and with it the writes to replay.  A
 * writer that is not ours (elmdb's NIF, mdb_load) writes no record: if it
 * committed the very id a dead port of ours had recorded, that port's
 * batch would look committed (README, durability).
 */
#ifndef HYPER_LMDB_MARKS_H
#define HYPER_LMDB_MARKS_H

#include <stdint.h>

#define MARK_SLOTS 1024u
#define MARKS_FILE "hyper_lmdb.commits"

/* One record: <transaction id, session, request, check>. */
typedef uint64_t mark_rec[4];

/* Opens (creating and sizing it if it is not yet) DIR/hyper_lmdb.commits
 * and maps it: its MARK_SLOTS records, or NULL with errno set. */
mark_rec *marks_open(const char *dir);
void marks_close(mark_rec *m);
/* Records that transaction <txnid> applies <session>'s request <request>
 * last. */
void marks_put(mark_rec *m, uint64_t txnid, uint64_t session, uint64_t request);
/* The request of <session>'s record with the highest transaction id at
 * most <committed>: 1 and *request, or 0 when there is none. */
int marks_last(const mark_rec *m, uint64_t committed, uint64_t session, uint64_t *request);

#endif
