/*
 * errors.h - the project's error codes.
 *
 * Functions return int: 0 on success, one of the negative HL_E* codes
 * below, or an LMDB / errno code passed through unchanged (LMDB's own codes
 * are <= MDB_KEYEXIST = -30799, errno values are positive), so one int
 * carries every failure up to dispatch.c, which turns it into a reply term.
 */
#ifndef HYPER_LMDB_ERRORS_H
#define HYPER_LMDB_ERRORS_H

enum hl_error {
    HL_OK = 0,
    HL_EBADTERM = -1,   /* malformed external term, or frame overrun */
    HL_EBADREQ = -2,    /* well-formed term that is not a valid request */
    HL_ENOMEM = -3,     /* allocation failed */
    HL_EEMPTY = -4,     /* empty path where a key is needed */
    HL_ETOOLONG = -5,   /* key longer than LMDB's maximum */
    HL_ERDONLY = -6,    /* write to a read-only store */
    HL_ENOTFOUND = -7,  /* no such key (ordinary miss, not a failure) */
    HL_ELOOP = -8,      /* link loop or more than max-link-hops links */
    HL_ETOOBIG = -9,    /* a reply longer than a frame can carry */
    HL_ENOSPC = -10,    /* no disk space for the pages a write may take */
};

#endif
