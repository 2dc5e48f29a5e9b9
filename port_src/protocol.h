/*
 * protocol.h - the wire protocol between hyper_lmdb_server (Erlang) and
 * hyper_lmdb_port (this program).  This comment is the one place the
 * protocol is written down; erl_src/hyper_lmdb_server.erl follows it.
 *
 * TRANSPORT
 *   The port is started with open_port({spawn_executable, Port},
 *   [stream, binary, exit_status, use_stdio, {args, Args}]); the server
 *   writes and splits the frames itself (the same bytes {packet, 4} would
 *   produce), so a burst of requests is one port_command and a burst of
 *   replies one message.  Every message in both directions is one frame:
 *
 *     byte 0..3   payload length L, unsigned 32-bit big endian
 *     byte 4..    L bytes of Erlang external term format: the version byte
 *                 131 followed by one term (no compression, no atom cache)
 *
 *   Requests arrive on fd 0, replies leave on fd 1.  Nothing but frames is
 *   ever written to fd 1; diagnostics go to fd 2.  The port may also write
 *   an empty frame (L = 0, four zero bytes) between replies: a wake-up
 *   call, which the server skips (see WAKE-UPS).  A frame longer than
 *   --max-frame bytes, or a read error, breaks the stream: the port exits
 *   with EXIT_STREAM (below) without reading further.
 *
 * HANDSHAKE
 *   After opening the environment the port sends, before anything else,
 *       {0, {hello, ProtocolVersion, Format, MapSize, Last}}
 *   ProtocolVersion = PROTOCOL_VERSION (integer), Format = tagged |
 *   hb_store_lmdb (atom), MapSize = current map size in bytes, Last =
 *   {Session, Id}: the last request the last commit of a port started with
 *   --session Session applied (tagged format, async mode: recorded in that
 *   commit; hb_store_lmdb format, this port's --session: in the commit
 *   records beside the store, marks.h), or none.  If the
 *   environment cannot be opened it sends {0, {error, Reason}} instead and
 *   exits with EXIT_OPEN.  The server sends no request before the hello.
 *
 * REQUESTS   {Id, Op, Arg...}
 *   Id is a non-negative integer (SMALL_INTEGER_EXT, INTEGER_EXT or a
 *   SMALL_BIG_EXT of at most 8 bytes) chosen by the caller; it comes back
 *   with the same value in the reply, always written as a SMALL_BIG_EXT of
 *   exactly 8 bytes (110, 8, 0, then the value little endian) whatever the
 *   value: a non-canonical form binary_to_term and ei read as the integer.
 *   So every reply starts 131, 104, 2, 110, 8, 0 and its id is bytes 6..13:
 *   the server routes replies without decoding them.  The server writes
 *   its ids (erlang:unique_integer, positive) in the same 8-byte form.
 *   Paths (P) and values (V) are binaries (BINARY_EXT); the server
 *   flattens list paths and iodata before sending.
 *   The port normalises paths itself (drops empty segments).
 *
 *     {Id, read, P}                  -> {ok, V} | not_found
 *     {Id, read_many, [P]}           -> {packed, Bin}   one snapshot
 *           Bin holds one entry per path, in order: <<0>> not_found,
 *           <<1, Len:32, V:Len/binary>> {ok, V}, <<2, Len:32, T:Len/binary>>
 *           {error, binary_to_term(T)}.  (One binary splits into values by
 *           pattern matching; a list of binaries costs one allocation each.)
 *     {Id, type, P}                  -> simple | composite | not_found
 *     {Id, resolve, P}               -> P2 (binary)
 *     {Id, list, P, From, Limit, Dir}-> {ok, [Name]}
 *           From = binary (inclusive start) | undefined,
 *           Limit = integer, 0 = no limit, Dir = asc | desc
 *     {Id, write, P, V}              -> ok
 *     {Id, make_group, P}            -> ok
 *     {Id, make_link, Existing, New} -> ok
 *     {Id, delete, P}                -> ok
 *     {Id, write_many, [WOp]}        -> ok          all or nothing
 *           WOp = {write, P, V} | {make_group, P} |
 *                 {make_link, Existing, New} | {delete, P}
 *     {Id, reset}                    -> ok          empties the store
 *     {Id, sync}                     -> ok          fsync of the environment
 *     {Id, stats}                    -> [{Key :: atom, integer | atom}]
 *     {Id, ping}                     -> pong
 *     {Id, scan, From, Limit}        -> {ok, [{Key, Kind, Data}], Next}
 *           every stored key from From (inclusive binary | undefined), in
 *           key order, links not followed; Kind = value | link | group,
 *           Data = the value, the link target, or <<>>; at most Limit
 *           (0 = all); Next = the key to continue from | undefined.
 *     {Id, match, [{Name, Target}]}  -> {ok, [ID]}
 *           every ID for which each key ID/Name holds a link to Target.
 *     {Id, match_values, [{Name, Bytes}]} -> {ok, [ID]}
 *           the same, each Bytes as HyperBEAM's cache writes a field:
 *           <<"link:", T>> a link to T, else a value of exactly Bytes (in
 *           hb_store_lmdb's format, "group" a group marker).
 *     {Id, fault, Point}             -> ok   test hook, refused unless the
 *           port runs with --fault-injection 1.  Point = crash_before_commit
 *           | crash_after_commit | crash_mid_reply (the next write batch
 *           dies there by SIGKILL; mid-reply writes half of the replies
 *           first) | hang (the next request never returns).
 *
 *   Every request may instead be answered {Id, {error, Reason}}.  Reasons:
 *     empty_path, {key_too_long, Bytes}, read_only,
 *     {bad_request, What}   malformed term, unknown op, wrong arity/type,
 *                           bytes after the request's term (trailing_bytes)
 *                           (Id is 0 when even the Id could not be read),
 *     {lmdb, Code, Text}    an LMDB error code and its mdb_strerror text,
 *     {too_large, Bytes}    the reply would be Bytes long, more than a
 *                           frame's 32-bit length can say (a read_many or
 *                           scan of large values: ask for fewer),
 *     nomem (when not even that reply fits, the port exits EXIT_NOMEM
 *           with the request unanswered),
 *     disk_full             a write refused: no disk blocks could be
 *                           reserved for the pages it may take (store.h).
 *
 * ORDERING AND BATCHING
 *   Requests are executed in arrival order.  Consecutive write requests
 *   (write, make_group, make_link, delete, write_many) share one LMDB write
 *   transaction (group commit); their replies are sent only after that
 *   transaction has committed (and, with --durability fsync, after the
 *   environment was flushed to disk).  A batch is closed by the first
 *   non-write request (with --read-committed 1 only by a sync: a read is
 *   answered from the last commit then, without the open batch's writes,
 *   whose clients have been told nothing yet; the server asks for this
 *   in commit and fsync mode), by an empty input pipe, or by --batch-max writes
 *   (by default 8 with --durability commit, 4096 otherwise);
 *   with --durability fsync an empty pipe first waits up to the last
 *   commit's duration (at most 2 ms) while the batch is smaller than the
 *   last one, so that concurrent writers share one flush (main.c).
 *   When fd 1 fails (the server closed the port) the port still serves
 *   its input to the end, answers dropped, so that writes sent before the
 *   close are committed.
 *   Reads run on a pooled read transaction that is renewed after every
 *   commit, so a read always sees every write acknowledged before it.
 *
 * WAKE-UPS
 *   While only a few requests come at a time (the port spins on its input
 *   then, see main.c), the port writes an empty frame as soon as it has
 *   read requests, before it serves them.  The BEAM side has gone idle
 *   meanwhile, and waking it takes several microseconds; started by the
 *   empty frame, that wake-up overlaps the serving, and the reply usually
 *   arrives in the same read as the empty frame.  A request that takes
 *   long to serve (a list, scan, match or read_many walk) writes more of
 *   them while it goes, one whenever 10 us pass without output, so that
 *   the BEAM is still awake when the reply comes.  Empty frames may come
 *   between any two frames; a reader takes none for a reply.
 *
 * EXIT STATUS (the server maps these to reasons; see exit_reason/1 there)
 */
#ifndef HYPER_LMDB_PROTOCOL_H
#define HYPER_LMDB_PROTOCOL_H

#define PROTOCOL_VERSION 4 /* 4: empty frames (WAKE-UPS) */

enum port_exit {
    EXIT_OK = 0,      /* stdin reached EOF: orderly shutdown */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_OPEN = 3,    /* the LMDB environment could not be opened */
    EXIT_STREAM = 4,  /* broken input stream: read error or frame too large */
    EXIT_OUTPUT = 5,  /* stdout closed or failed (the input is still served to
                         its end first: writes sent before are committed) */
    EXIT_NOMEM = 6,   /* out of memory outside any request */
    EXIT_LMDB = 7,    /* unrecoverable LMDB error (MDB_PANIC and friends) */
};

/* Default limit on one request frame: well above the largest value a
 * caller may write (the server refuses values over its own limit first). */
#define DEFAULT_MAX_FRAME ((size_t)1 << 30)

#endif
