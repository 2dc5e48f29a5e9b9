%%% @doc The gen_server that owns one store's port program.
%%%
%%% One server per store directory, and the only process that talks to the
%%% port.  The path of a request is kept short on purpose, because a store
%%% is judged against NIFs:
%%%
%%% <ul>
%%% <li>The caller encodes its request frame itself (in parallel in the
%%%     callers) and sends it to the server as a plain message, with an alias
%%%     to answer to; no gen_server:call and no monitor per call (see
%%%     request/4).</li>
%%% <li>The server takes every request waiting in its mailbox at once and
%%%     writes them to the port with one `port_command/2': one system call
%%%     for a burst of requests, which the port then also reads in one go
%%%     and group-commits.</li>
%%% <li>The port runs in stream mode, so one message from it carries many
%%%     replies.  The server does not decode them: request ids travel as
%%%     8-byte SMALL_BIGs both ways (protocol.h), so the id sits at bytes
%%%     6..13 of every reply.  It forwards the undecoded frame; the caller
%%%     decodes it.</li>
%%% </ul>
%%%
%%% The server keeps every request until its reply, by id, in its process
%%% dictionary (pending/0).  If the port dies the server restarts it at
%%% once and walks them in the order they reached it: reads are sent
%%% again (once), writes whose outcome is unknown are answered
%%% `{error, {port_exit, Reason}}', and `async' writes (already answered
%%% `ok') are replayed.  Requests still in its mailbox simply go to
%%% the new port.  A watchdog kills a port that has answered nothing for
%%% `watchdog' ms while requests were waiting.  (The wire protocol is in
%%% port_src/protocol.h.)
%%% @end
-module(hyper_lmdb_server).
-behaviour(gen_server).

-export([start_link/2, await_open/1, request/4, stop/2, validate/1, conflicts/2, registry/0,
         lookup/1, find/1, forget/1, inject_fault/2, port_info/1, port_info/2]).
-export([new_id/0, frame/2, took_lost/1, lost_total/1]).
-export([open_reader/2, close_reader/1, reader_request/3]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/file.hrl").

-define(REGISTRY, hyper_lmdb_registry).
-define(HELLO_TIMEOUT, 60000).
%% A port asked for a children index builds it before its hello when the
%% store has none: about 1.3 us a key (bench/RESULTS.md, seventeenth
%% session), so some hundreds of millions of keys within this.
-define(BUILD_HELLO_TIMEOUT, 1800000).
-define(PROTOCOL_VERSION, 4).  % 4: the port writes empty frames (wake-ups)
%% Restart policy: up to ?FREE_RESTARTS restarts within a second happen at
%% once; beyond that each waits twice as long (at most a second); more
%% than ?MAX_RESTARTS within ?RESTART_WINDOW ms and the server gives up.
-define(FREE_RESTARTS, 5).
-define(MAX_RESTARTS, 100).
-define(RESTART_WINDOW, 10000).
-define(REOPEN_MS, 10000).
-define(ASYNC_TRIES, 20).
%% An async write in flight at this many port deaths makes the server
%% replay the requests it died with one at a time (settle/3).
-define(SOLO_AFTER, 2).
%% How long terminate/2 serves the port for the async writes it has not
%% confirmed (below the supervisor's shutdown time, hyper_lmdb_sup).
-define(STOP_CONFIRM_MS, 8000).
%% ... and does not start a port again with less than this left.
-define(STOP_REOPEN_MIN, 1000).
%% Unconfirmed async writes beyond which async writers wait for their commit.
-define(ASYNC_MAX, 10000).
%% The slots of the atomics shared with the writers (#state.async_count).
-define(UNCONFIRMED, 1).
-define(STOPPING, 2).
%% ?STOPPING holds ?STOP_BIT once terminate/2 began, plus the async writers
%% between deciding to send and having sent (send_async/5).
-define(STOP_BIT, (1 bsl 40)).
%% Requests taken from the mailbox for one port_command, at most.
-define(BURST, 512).
%% How often a waiting caller checks that the server still lives (ms).
-define(PROBE_MS, 500).
-define(ALIAS_KEY, '$hyper_lmdb_reply_alias').
-define(REF_KEY, '$hyper_lmdb_store').
-define(READER_KEY, '$hyper_lmdb_reader').
%% The requests a reader serves: those that only read the store (not
%% sync/stats, which speak of the store's own port).
-define(READER_REQUESTS, [read, read_many, list, type, resolve, match, scan, match_values]).
%% LMDB reader slots (max-readers) that readers may not take: the store's
%% own port holds one, and one more covers a port started again while the
%% one before still holds its slot, or a command-line tool.
-define(READER_RESERVE, 2).
-define(LAST_KEY, '$hyper_lmdb_last_store').
%% A reply frame taken from a port chunk larger than this is copied before
%% it is sent on (see detach/1).
-define(DETACH_CHUNK, 16384).
%% LMDB's longest key (port_src/path.h, PATH_MAX_KEY)
-define(MAX_KEY, 511).
%% The longest path the port resolves (PATH_MAX_WORK): a longer one, or a
%% link target, is key_too_long whatever the store holds.
-define(MAX_PATH, 4096).
%% The longest request frame the port takes (--max-frame): a longer one
%% would end its stream, and one past 4 GiB would not even say its length.
-define(MAX_FRAME, (1 bsl 30)).
%% Bounds of options the port keeps in C integers (within its own bounds,
%% port_src/main.c), or that become a receive timeout (at most 2^32 - 1
%% ms): past them an option is refused, not cut down to another number.
-define(DAY_MS, 86400000).
-define(MAX_AFTER, 16#ffffffff).
-define(MAX_HOPS, 1000000).
-define(MAX_READERS, 65536).
%% Options whose value is a count: given as digits, they are read as one.
-define(COUNT_OPTIONS, [<<"capacity">>, <<"sync-interval">>, <<"max-link-hops">>,
                        <<"max-readers">>, <<"watchdog">>, <<"spin-us">>]).

-record(cfg, {
    name :: binary(),
    dir :: file:filename_all(),
    capacity = 16 bsl 30 :: pos_integer(),
    durability = <<"commit">> :: binary(),
    sync_interval = 1000 :: pos_integer(),
    format = auto :: auto | binary(),
    read_only = false :: boolean(),
    max_hops = 1000 :: non_neg_integer(),
    max_readers = 126 :: pos_integer(),
    read_ahead = false :: boolean(),
    watchdog = 30000 :: pos_integer() | infinity,
    spin_us = 200 :: non_neg_integer(),
    exclusive = true :: boolean(),
    fault_injection = false :: boolean(),
    %% build the children index when the store has none (tagged format)
    children_index = false :: boolean(),
    %% this server's, passed to each port it starts: the port records the
    %% last request each commit applied with it (in the commit in the
    %% tagged format, beside the store in hb_store_lmdb's), and a new
    %% port reports it, so a replay after a crash skips what was committed
    session = 0 :: non_neg_integer()
}).

-record(state, {
    cfg :: #cfg{},
    port :: port() | undefined,
    format :: atom(),
    %% how many requests were sent and not yet answered: each is kept in
    %% the process dictionary, Id => {Dest, Kind, Frame, Tries, Seq}, Seq
    %% the order it reached us (see pending/0)
    inflight = 0 :: non_neg_integer(),
    %% the Seq of the next request (ids give the order only within one
    %% caller: a caller can be preempted between taking its id and sending)
    seq = 0 :: integer(),
    %% ?UNCONFIRMED: async writes not yet confirmed by the port (shared
    %% with the writers: backpressure); ?STOPPING: ?STOP_BIT once
    %% terminate/2 began, plus the async writers sending (send_async/5)
    async_count :: atomics:atomics_ref(),
    %% when the port last answered, or was given work while idle
    last_progress = 0 :: integer(),
    %% a reply frame received in part (see frames/2)
    partial = none :: none | {pos_integer(), non_neg_integer(), [binary()]},
    restarts = 0 :: non_neg_integer(),
    %% each with whether the port that died had answered anything
    recent_restarts = [] :: [{integer(), boolean()}],
    %% the current port has answered something
    answered = false :: boolean(),
    %% while terminate/2 serves the port: when it lets it go
    deadline = infinity :: integer() | infinity,
    last_exit :: term(),
    %% After the port died twice with the same async write in flight
    %% (settle/3): the requests it died with (Suspects, by Seq), sent one
    %% at a time so that a write that kills the port dies alone, and the
    %% requests that came since (Later, newest first), sent once every
    %% suspect is settled.  Requests are kept in order throughout.
    solo = none :: none | {[entry()], [entry()]},
    %% the leases of the readers open on this store (open_reader/2), by
    %% the monitor of their owner; each holds an LMDB reader slot, and is
    %% kept in the registry too (leases/1), which outlives this server
    readers = #{} :: #{reference() => reference()}
}).

-type entry() :: {integer(), {dest(), kind(), iodata(), non_neg_integer(), integer()}}.

-type dest() :: reference() | async | cancelled.
-type cfg() :: #cfg{}.
-type kind() :: read | write | control.
%% What callers need to reach a store: its server, the async counter and
%% whether writes are async.
-type store_ref() :: {pid(), atomics:atomics_ref(), Async :: boolean()}.
-export_type([cfg/0, store_ref/0, kind/0]).

%%% ---------------------------------------------------------------------
%%% API (used by hyper_lmdb)

%% @doc Starts a server for a validated configuration (from validate/1).
%% Its port opens after init/1 returns (handle_continue/2): opening can
%% wait up to 40 s for the directory's lock, and init/1 runs in the
%% supervisor, which would hold up every other store's start meanwhile.
%% The result goes to `Requester' (await_open/1).
-spec start_link(cfg(), pid()) -> {ok, pid()} | {error, term()}.
start_link(Cfg, Requester) ->
    gen_server:start_link(?MODULE, {Cfg, Requester}, []).

%% @doc Waits for the port of a server just started (start_link/2, by
%% this process) to open: `{ok, Pid}', or `{error, {shutdown, Reason}}'
%% when it could not.
-spec await_open(pid()) -> {ok, pid()} | {error, term()}.
await_open(Pid) ->
    MRef = erlang:monitor(process, Pid),
    receive
        {?MODULE, opened, Pid, Result} ->
            erlang:demonitor(MRef, [flush]),
            case Result of
                ok -> {ok, Pid};
                {error, Reason} -> {error, {shutdown, Reason}}
            end;
        {'DOWN', MRef, process, Pid, Reason} ->
            {error, Reason}
    end.

%% @doc Sends one request to the store and waits at most Timeout ms for
%% its answer; never raises.  An async-mode write returns `ok' as soon as
%% it is queued (the server replays it into a new port if the port dies
%% before confirming it), unless ?ASYNC_MAX writes are unconfirmed already.
%%
%% No monitor per call: a monitor and its removal are two signals the
%% server must handle, on top of the request itself, and the server is
%% the one process every caller goes through.  Instead the caller answers
%% to an alias it keeps for its lifetime, and checks that the server is
%% alive every ?PROBE_MS while it waits.  A server that stops or crashes
%% answers every request it holds from terminate/2; only one killed
%% outright is noticed by the probe.
-spec request(store_ref(), kind(), tuple(), timeout()) -> term().
request({Pid, Counter, Async}, Kind, Req, Timeout) ->
    Id = new_id(),
    case checked_frame(Id, Req) of
        {too_large, Size} ->
            %% (a write_many of large values, each within max-value-size)
            {error, {too_large, Size}};
        Frame when Async, Kind =:= write ->
            case atomics:get(Counter, ?UNCONFIRMED) < ?ASYNC_MAX of
                true ->
                    %% Answered before the port sees it: what the port would
                    %% refuse whatever the store holds is refused here.
                    case async_check(Req) of
                        ok -> send_async(Pid, Counter, Id, Kind, Frame);
                        sync -> call_port(Pid, Id, Kind, Frame, Timeout);
                        {error, _} = E -> E
                    end;
                false ->
                    call_port(Pid, Id, Kind, Frame, Timeout)
            end;
        Frame ->
            call_port(Pid, Id, Kind, Frame, Timeout)
    end.

%% Async writes answered ok and then lost (refused at their commit, the
%% disk full say, or dropped after ?ASYNC_TRIES port deaths, or with a
%% server that gave up on its port): counted under the store's name in the
%% registry, which outlives the servers, {{lost, Name}, SinceReported,
%% Ever}.  A sync is `ok' only if every write acknowledged before it is on
%% disk, so the next sync says so, once (took_lost/1), and stats/1 shows
%% the total (lost_total/1).
lost_async(S) ->
    atomics:sub(S#state.async_count, ?UNCONFIRMED, 1),
    Key = {lost, S#state.cfg#cfg.name},
    _ = ets:update_counter(?REGISTRY, Key, [{2, 1}, {3, 1}], {Key, 0, 0}),
    ok.

%% @doc The async writes of store `Name' lost since this was last asked,
%% taken (each is told once).
-spec took_lost(binary()) -> non_neg_integer().
took_lost(Name) ->
    Key = {lost, Name},
    case ets:lookup(?REGISTRY, Key) of
        [{_, N, _}] when N > 0 ->
            _ = ets:update_counter(?REGISTRY, Key, {2, -N, 0, 0}),
            N;
        _ ->
            0
    end.

%% @doc The async writes of store `Name' lost since the application began.
-spec lost_total(binary()) -> non_neg_integer().
lost_total(Name) ->
    case ets:lookup(?REGISTRY, {lost, Name}) of
        [{_, _, Total}] -> Total;
        [] -> 0
    end.

call_port(Pid, Id, Kind, Frame, Timeout) ->
    Alias = reply_alias(),
    Pid ! {req, Id, Alias, Kind, Frame},
    wait(Pid, Id, Alias, Timeout).

%% Sent, and ok, only if the server had not begun to stop: the writer
%% counts itself in (?STOPPING) before it sends and out after, and
%% terminate/2 raises ?STOP_BIT, waits until no writer is in between, and
%% then finds every write it let through in its mailbox and confirms it.
%% A writer that finds the bit up sends nothing: not_started, and
%% hyper_lmdb starts the store again and sends the write there (sent to
%% both, a write could be applied twice).  Nor ok if the server is dead:
%% killed outright, it raised no bit (its successor will, but there may be
%% none yet), and the write went nowhere.  (is_process_alive/1 is ordered
%% after the send.)  A server killed outright after it took a write loses
%% it with the rest of its mailbox, as the BEAM's death would.
send_async(Pid, Counter, Id, Kind, Frame) ->
    case atomics:add_get(Counter, ?STOPPING, 1) of
        N when N >= ?STOP_BIT ->
            atomics:sub(Counter, ?STOPPING, 1),
            {error, not_started};
        _ ->
            Pid ! {req, Id, async, Kind, Frame},
            %% Counted once sent (the server may confirm it first: the
            %% count dips below for a moment).  Counted before, a writer
            %% killed in between would have left the count one too high for
            %% good, and 10,000 of those would make every async write wait
            %% for its commit; killed after the send, it leaves it one low,
            %% which lets one more write through unconfirmed.
            atomics:add(Counter, ?UNCONFIRMED, 1),
            %% Alive while we are counted in: a stopping server waits for
            %% us (senders_done/2), and takes the write.
            Alive = is_process_alive(Pid),
            atomics:sub(Counter, ?STOPPING, 1),
            case Alive of
                true -> ok;
                false -> {error, not_started}
            end
    end.

%% True once the server of this counter began to stop.
stopping(Counter) ->
    atomics:get(Counter, ?STOPPING) >= ?STOP_BIT.

%% The port's refusals that do not depend on what the store holds: an
%% async write is answered before the port sees it, so these must be
%% answered here.  A binary path comes as the caller gave it; the port
%% normalises it (no empty segments) before it checks it, and so do we,
%% only when it matters.  A path longer than a key may still name one, when
%% a link at a prefix shortens it: only the port can tell, so such a write
%% waits for the port's answer (`sync').  A link's target is not a key of
%% its own: it must only be a path at all (not empty, not beyond
%% ?MAX_PATH).  What fails only because of what links say (a loop) is the
%% port's to find; it logs it (route/4).
async_check({write, P, _}) -> async_key(P);
async_check({make_group, P}) -> async_key(P);
async_check({delete, P}) -> async_key(P);
async_check({make_link, E, P}) ->
    case async_target(E) of
        ok -> async_key(P);
        Err -> Err
    end;
async_check({write_many, Ops}) -> async_check_all(Ops, ok);
async_check(_) -> ok.

async_check_all([Op | T], Acc) ->
    case async_check(Op) of
        ok -> async_check_all(T, Acc);
        sync -> async_check_all(T, sync);
        E -> E
    end;
async_check_all([], Acc) -> Acc.

async_key(P) when byte_size(P) > ?MAX_KEY ->
    case normal_size(P) of
        0 -> {error, empty_path};
        N when N > ?MAX_PATH -> {error, {key_too_long, N}};
        N when N > ?MAX_KEY -> sync;
        _ -> ok
    end;
async_key(P) ->
    case only_slashes(P) of
        true -> {error, empty_path};
        false -> ok
    end.

async_target(E) when byte_size(E) > ?MAX_PATH ->
    case normal_size(E) of
        0 -> {error, empty_path};
        N when N > ?MAX_PATH -> {error, {key_too_long, N}};
        _ -> ok
    end;
async_target(E) ->
    case only_slashes(E) of
        true -> {error, empty_path};
        false -> ok
    end.

%% The size of a path once the port has dropped its empty segments.
normal_size(P) ->
    byte_size(iolist_to_binary(lists:join($/, binary:split(P, <<"/">>, [global, trim_all])))).

only_slashes(<<$/, R/binary>>) -> only_slashes(R);
only_slashes(<<>>) -> true;
only_slashes(_) -> false.

%% @private A request id: see the module doc for why it always travels as
%% an 8-byte integer.  Monotonic for its size only (the plain unique
%% integers are bignums here); it is not the order requests reach the
%% server, which is the order kept for replays (`seq').
-spec new_id() -> pos_integer().
new_id() ->
    erlang:unique_integer([positive, monotonic]).

%% The calling process's reply alias, made on its first request.  Kept in
%% the process dictionary; dropped after a timeout, so that a late answer
%% is discarded by the runtime instead of reaching the caller's mailbox.
reply_alias() ->
    case get(?ALIAS_KEY) of
        undefined ->
            A = alias([explicit_unalias]),
            put(?ALIAS_KEY, A),
            A;
        A ->
            A
    end.

%% Waits for the answer in steps of at most ?PROBE_MS, Left ms in all
%% (counted down by the steps: no clock read on the way, it costs more
%% than the rest of a round trip's Erlang side here).
wait(Pid, Id, Alias, Left) ->
    Step = case Left of
               infinity -> ?PROBE_MS;
               _ -> min(Left, ?PROBE_MS)
           end,
    %% The alias in the answer: nothing else the caller may be sent (ids
    %% are small integers, {1, x} is an ordinary message) can match.
    receive
        {Alias, Id, Reply} ->
            decode(Reply)
    after Step ->
        Left2 = case Left of
                    infinity -> infinity;
                    _ -> Left - Step
                end,
        %% is_process_alive/1 is ordered after our request: true means
        %% the server took it and still lives.
        case is_process_alive(Pid) of
            true when Left2 =:= infinity; Left2 > 0 ->
                wait(Pid, Id, Alias, Left2);
            true ->
                Pid ! {cancel, Id},
                give_up(Id, Alias, {error, timeout});
            false ->
                %% Killed outright: terminate/2 never ran.  As for a
                %% server that stopped (not_started), the caller starts
                %% the store again and sends the request once more; writes
                %% set a key to a value, so sending one twice is harmless.
                give_up(Id, Alias, {error, not_started})
        end
    end.

%% Drops the alias (so a late answer is discarded by the runtime), then
%% takes an answer that came in meanwhile, if any.
give_up(Id, Alias, Error) ->
    unalias(Alias),
    erase(?ALIAS_KEY),
    receive
        {Alias, Id, Reply} -> decode(Reply)
    after 0 ->
        Error
    end.

%% Decodes a reply frame.  The two answers that carry values, and the two
%% commonest atoms, are matched by hand, so a value comes out as a
%% sub-binary of the frame rather than a fresh copy (binary_to_term
%% allocates and copies every binary): a large value is not copied at all,
%% and read_many's packed answer splits into values without an allocation
%% each.  A small value inside a large frame is copied, so that keeping it
%% does not keep the frame alive.
decode(<<131, 104, 2, 110, 8, 0, _:8/binary, 104, 2, 119, 2, "ok", 109, Len:32,
         Value:Len/binary>>) ->
    {ok, own(Value)};
decode(<<131, 104, 2, 110, 8, 0, _:8/binary, 104, 2, 119, 6, "packed", 109, Len:32,
         Packed:Len/binary>>) ->
    unpack(Packed);
decode(<<131, 104, 2, 110, 8, 0, _:8/binary, 119, 2, "ok">>) ->
    ok;  % every write's answer: no binary_to_term for it
decode(<<131, 104, 2, 110, 8, 0, _:8/binary, 119, 9, "not_found">>) ->
    not_found;
decode(Frame) when is_binary(Frame) ->
    {_, Result} = binary_to_term(Frame),
    Result;
decode({result, Result}) ->
    Result.

unpack(<<0, Rest/binary>>) -> [not_found | unpack(Rest)];
unpack(<<1, Len:32, Value:Len/binary, Rest/binary>>) -> [{ok, own(Value)} | unpack(Rest)];
unpack(<<2, Len:32, Reason:Len/binary, Rest/binary>>) ->
    [{error, binary_to_term(Reason)} | unpack(Rest)];
unpack(<<>>) -> [].

own(Value) when byte_size(Value) =< 64 ->
    binary:copy(Value);  % a heap binary: cheap, and frees the frame
own(Value) ->
    case binary:referenced_byte_size(Value) > 2 * byte_size(Value) of
        true -> binary:copy(Value);
        false -> Value
    end.

%%% ---------------------------------------------------------------------
%%% readers

%% @doc Opens a reader of the store served by `Pid': a read-only port of
%% the store's directory that belongs to the calling process, which then
%% talks to it with no server in between (reader_request/3).  One caller's
%% round trip is then the port's own, the server's two hops gone.  LMDB
%% lets many processes read one directory; the reader's port checks the
%% store's last commit before every read, so it sees every write
%% acknowledged before the read was sent.  Not for an async store: a read
%% must not pass its caller's writes still queued in the server.
-spec open_reader(pid(), timeout()) -> {ok, reference()} | {error, term()}.
open_reader(Pid, Timeout) ->
    try gen_server:call(Pid, reader_cfg, Timeout) of
        {ok, #cfg{durability = <<"async">>, read_only = false}, Lease} ->
            give_back(Lease),
            {error, {bad_option, <<"durability">>}};
        {ok, Cfg, Lease} ->
            ReaderCfg = Cfg#cfg{read_only = true, exclusive = false, session = 0,
                                fault_injection = false},
            Ref = make_ref(),
            case start_reader(ReaderCfg) of
                {ok, Port, Watch} ->
                    put({?READER_KEY, Ref}, {Port, Watch, ReaderCfg, Lease}),
                    {ok, Ref};
                {error, _} = E ->
                    give_back(Lease),
                    E
            end;
        {error, _} = E ->
            E
    catch
        exit:_ -> {error, not_started}
    end.

%% The port, unlinked so that a port that dies cannot take its owner with
%% it (an exit signal other than `normal', epipe say, would kill a
%% caller that does not trap exits), but monitored: a port closed by a
%% failed write (its program dead) sends no exit status.  And a watcher
%% that closes it when the owner ends (a port outlives an owner it is not
%% linked to).  {ok, Port, {Monitor, Watcher}}.
start_reader(Cfg) ->
    case open_port(Cfg) of
        {ok, Port, _, _} ->
            unlink(Port),
            MRef = erlang:monitor(port, Port),
            Owner = self(),
            Watcher = spawn(fun() ->
                                M = erlang:monitor(process, Owner),
                                receive
                                    {'DOWN', M, process, _, _} -> catch port_close(Port);
                                    close -> ok
                                end
                            end),
            {ok, Port, {MRef, Watcher}};
        {error, _} = E ->
            E
    end.

%% @doc Closes a reader (its port exits on end of input).  Only its owner
%% may.
-spec close_reader(reference()) -> ok.
close_reader(Ref) ->
    case erase({?READER_KEY, Ref}) of
        {Port, Watch, _, Lease} -> stop_reader(Port, Watch), give_back(Lease);
        undefined -> ok
    end.

%% The reader slot back: its lease's row out of the registry, and the
%% store's server (the one running now: the lease may be older than it)
%% told to stop watching its owner.
give_back({Name, Lease}) ->
    catch ets:delete(?REGISTRY, {reader, Name, Lease}),
    case catch ets:lookup(?REGISTRY, Name) of
        [{_, Pid, _, _}] -> gen_server:cast(Pid, {reader_closed, Lease});
        _ -> ok
    end.

%% The leases of a store's readers, as the registry keeps them: rows
%% {{reader, Name, Lease}, Owner}.  They outlive the server that gave
%% them, as the readers do their ports (a reader is its owner's), so that
%% a server started again counts the slots its predecessor's readers
%% still hold.
leases(Name) ->
    ets:match(?REGISTRY, {{reader, Name, '$1'}, '$2'}).

%% The readers' owners watched by this server: those of the leases an
%% earlier server gave (an owner already gone gives its lease back at
%% once, by its 'DOWN').
adopt_leases(S = #state{cfg = #cfg{name = Name}}) ->
    Rs = maps:from_list([{erlang:monitor(process, Owner), Lease}
                         || [Lease, Owner] <- leases(Name)]),
    S#state{readers = Rs}.

stop_reader(Port, {MRef, Watcher}) ->
    Watcher ! close,
    erlang:demonitor(MRef, [flush]),
    catch port_close(Port),
    flush_port(Port).

flush_port(Port) ->
    receive
        {Port, _} -> flush_port(Port)
    after 0 ->
        ok
    end.

%% @doc One request through a reader, by its owner: the port is written
%% and read by the calling process itself.  A reader whose port died is
%% started again and the read sent once more; one that does not answer
%% within Timeout ms is killed (and started again on the next call).
-spec reader_request(reference(), tuple(), timeout()) -> term().
reader_request(Ref, Req, Timeout) ->
    case get({?READER_KEY, Ref}) of
        undefined ->
            {error, {bad_argument, reader}};  % closed, or another process's
        Reader ->
            case lists:member(element(1, Req), ?READER_REQUESTS) of
                true ->
                    Id = new_id(),
                    case checked_frame(Id, Req) of
                        {too_large, Size} -> {error, {too_large, Size}};
                        Frame -> reader_send(Ref, Reader, Id, Frame, Timeout, 1)
                    end;
                false ->
                    {error, {bad_argument, reader}}
            end
    end.

%% Reader: {Port, Watch, Cfg, Lease}, as kept under Ref.
reader_send(Ref, {Port, Watch, Cfg, Lease}, Id, Frame, Timeout, Tries) ->
    Sent = try port_command(Port, Frame) catch error:badarg -> false end,
    Result = case Sent of
                 true -> reader_wait(Port, element(1, Watch), Id, Timeout, none);
                 false -> {died, port_closed}
             end,
    case Result of
        {died, Why} when Tries > 0 ->
            stop_reader(Port, Watch),
            case start_reader(Cfg) of
                {ok, Port2, Watch2} ->
                    Reader = {Port2, Watch2, Cfg, Lease},
                    put({?READER_KEY, Ref}, Reader),
                    reader_send(Ref, Reader, Id, Frame, Timeout, Tries - 1);
                {error, _} ->
                    {error, {port_exit, Why}}  % (the next call tries again)
            end;
        {died, Why} ->
            {error, {port_exit, Why}};
        timeout ->
            %% hung, or too slow for this caller: its answer must not come
            %% later, so this port goes, and the next call starts another
            kill_port(Port),
            stop_reader(Port, Watch),
            case start_reader(Cfg) of
                {ok, Port2, Watch2} -> put({?READER_KEY, Ref}, {Port2, Watch2, Cfg, Lease});
                {error, _} -> ok  % (the next call tries again)
            end,
            {error, timeout};
        {ok, Reply} ->
            decode(Reply)
    end.

reader_wait(Port, MRef, Id, Timeout, Partial0) ->
    receive
        {Port, {data, Chunk}} ->
            case frames(Chunk, Partial0) of
                {[], Partial} ->
                    reader_wait(Port, MRef, Id, Timeout, Partial);  % wake-ups, or part of it
                {[Reply], none} ->
                    case reply_id(Reply) of
                        Id -> {ok, Reply};
                        _ -> {died, {bad_reply, Reply}}
                    end;
                Other ->
                    {died, {bad_reply, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {died, exit_reason(Status)};
        {'DOWN', MRef, port, Port, Reason} ->
            {died, {port_closed, Reason}}
    after Timeout ->
        timeout
    end.

%% @doc Test hook: arms a fault in the port of the running store `Name'
%% (crash_before_commit, crash_after_commit, crash_mid_reply, hang).  The
%% port refuses it unless the store was started with
%% `<<"fault-injection">> => true'.
-spec inject_fault(binary(), atom()) -> term().
inject_fault(Name, Point) ->
    case find(Name) of
        %% `control': neither retried after a crash nor acknowledged early
        {ok, Ref} -> request(Ref, control, {fault, Point}, 5000);
        error -> {error, not_started}
    end.

%% @doc The server's own view: restarts, last exit, requests in flight,
%% readers open (their slot leases), the port's OS pid.
-spec port_info(pid()) -> map().
port_info(Pid) ->
    gen_server:call(Pid, port_info).

%% @doc port_info/1 waiting at most Timeout ms: a server still opening its
%% port answers only once it is open.
-spec port_info(pid(), timeout()) -> map().
port_info(Pid, Timeout) ->
    gen_server:call(Pid, port_info, Timeout).

%% @doc Stops the server: closes the port, which then exits on EOF.
-spec stop(pid(), timeout()) -> ok.
stop(Pid, Timeout) ->
    try
        gen_server:call(Pid, stop, Timeout)
    catch
        exit:_ -> ok
    end.

%% @doc The ETS table mapping store names to servers; owned by the
%% supervisor.
-spec registry() -> atom().
registry() -> ?REGISTRY.

%% @doc The live server of a store name, if any.
-spec lookup(binary()) -> {ok, pid()} | error.
lookup(Name) ->
    case find(Name) of
        {ok, {Pid, _, _}} ->
            case is_process_alive(Pid) of
                true -> {ok, Pid};
                false -> error
            end;
        error ->
            error
    end.

%% @doc What a caller needs to send a store requests.  Kept in the
%% calling process's dictionary once found (one entry per store name):
%% the registry is an ETS table with read concurrency, and its read lock
%% is a cache line both schedulers fight over on every call (measured, 64
%% readers: 237k reads/s through ETS, 271k through the dictionary).  The
%% cached reference is good while its ?STOP_BIT is down (stopping/1): a
%% server raises it when it stops, and a new server raises it for a dead one whose
%% name it takes over (init/1), so no process keeps talking to a server
%% that is gone for longer than one probe (request/4).  The store used
%% last is kept apart, under a fixed key: a caller that sticks to one
%% store (the common case) then finds it without hashing its name, and
%% the name it passes is usually the very term it passed before, which
%% compares equal at once.
-spec find(binary()) -> {ok, store_ref()} | error.
find(Name) ->
    case get(?LAST_KEY) of
        {Name, {_, A, _} = Ref} ->
            case stopping(A) of
                false -> {ok, Ref};
                true -> find_cached(Name)
            end;
        _ ->
            find_cached(Name)
    end.

find_cached(Name) ->
    Key = {?REF_KEY, Name},
    case get(Key) of
        {_, A, _} = Ref ->
            case stopping(A) of
                false ->
                    put(?LAST_KEY, {Name, Ref}),
                    {ok, Ref};
                true ->
                    find_registered(Key, Name)
            end;
        _ ->
            find_registered(Key, Name)
    end.

find_registered(Key, Name) ->
    try ets:lookup(?REGISTRY, dir_key(Name)) of
        [{_, Pid, Counter, Async}] when Counter =/= starting ->
            %% No liveness check here (it costs more than the rest of the
            %% lookup): a dead server shows in the waiting caller's probe.
            %% One that has begun to stop (its row not yet deleted) is no
            %% longer handed out.
            case stopping(Counter) of
                false ->
                    Ref = {Pid, Counter, Async},
                    put(Key, Ref),
                    put(?LAST_KEY, {Name, Ref}),
                    {ok, Ref};
                true ->
                    forget(Name),
                    error
            end;
        _ ->
            forget(Name),
            error
    catch
        error:badarg -> error
    end.

%% @doc Forgets this process's cached reference to the store `Name' (see
%% find/1): after its server was found dead.
-spec forget(binary()) -> ok.
forget(Name) ->
    erase({?REF_KEY, Name}),
    case get(?LAST_KEY) of
        {Name, _} -> erase(?LAST_KEY);
        _ -> ok
    end,
    ok.

%% @doc Checks a store-options map (SPEC section 1) and turns it into a
%% configuration.
-spec validate(term()) -> {ok, cfg()} | {error, term()}.
validate(Opts) when is_map(Opts) ->
    case maps:find(<<"name">>, Opts) of
        error ->
            {error, {bad_option, <<"name">>}};
        {ok, Name0} ->
            case name(Name0) of
                {ok, Name} ->
                    Cfg0 = #cfg{name = Name, dir = Name},
                    maps:fold(fun option/3, {ok, Cfg0}, maps:remove(<<"name">>, Opts));
                error ->
                    {error, {bad_option, <<"name">>}}
            end
    end;
validate(_) ->
    {error, {bad_argument, store}}.

%% @doc The options of `Opts' (validated into `Cfg') that the store's
%% running server `Pid' was started with otherwise: options take effect
%% when a store starts, so start/1 of a running store with, say,
%% `<<"read-only">> => true' must not hand out a writable one.  Only the
%% options given count (a map without `<<"durability">>' asks for no
%% particular mode); a capacity is a starting size and never conflicts.
-spec conflicts(cfg(), map()) -> [term()].
conflicts(Cfg = #cfg{name = Name}, Opts) ->
    case ets:lookup(?REGISTRY, {cfg, Name}) of
        [{_, _, Running}] ->
            [K || K <- lists:sort(maps:keys(Opts)), differs(setting(K, Cfg), setting(K, Running))];
        [] ->
            []
    end.

%% (a store still opening has not found its format yet: none conflicts)
differs(_, auto) -> false;
differs(Asked, Runs) -> Asked =/= Runs.

setting(<<"durability">>, C) -> C#cfg.durability;
setting(<<"sync-interval">>, C) -> C#cfg.sync_interval;
setting(<<"format">>, C) -> C#cfg.format;
setting(<<"read-only">>, C) -> C#cfg.read_only;
setting(<<"max-link-hops">>, C) -> C#cfg.max_hops;
setting(<<"max-readers">>, C) -> C#cfg.max_readers;
setting(<<"read-ahead">>, C) -> C#cfg.read_ahead;
setting(<<"watchdog">>, C) -> C#cfg.watchdog;
setting(<<"spin-us">>, C) -> C#cfg.spin_us;
setting(<<"exclusive">>, C) -> C#cfg.exclusive;
setting(<<"fault-injection">>, C) -> C#cfg.fault_injection;
setting(<<"children-index">>, C) -> C#cfg.children_index;
setting(_, _) -> same.

name(N) when is_binary(N), N =/= <<>> ->
    case binary:match(N, <<0>>) of
        nomatch -> {ok, dir_key(N)};
        _ -> error
    end;
name(N) when is_list(N), N =/= [] ->
    try unicode:characters_to_binary(N) of
        B when is_binary(B) -> name(B);
        _ -> error
    catch
        _:_ -> error
    end;
name(_) ->
    error.

%% One directory, one key: "/d", "/d/" and "/d//" name the same store (two
%% servers would run two ports on it, and the second would wait on the
%% first's lock).  Only the slashes are made canonical: "d" and "/cwd/d"
%% stay two names.  Names that are canonical already, the common case,
%% come back as they are.
dir_key(N) ->
    case binary:last(N) =/= $/ andalso binary:match(N, <<"//">>) =:= nomatch of
        true ->
            N;
        false ->
            Joined = iolist_to_binary(lists:join($/, binary:split(N, <<"/">>, [global, trim_all]))),
            case N of
                <<"/", _/binary>> -> <<"/", Joined/binary>>;
                _ when Joined =:= <<>> -> N;
                _ -> Joined
            end
    end.

option(_, _, {error, _} = E) -> E;
option(K, V, {ok, C}) ->
    case set(K, V, C) of
        {ok, C2} -> {ok, C2};
        error -> {error, {bad_option, K}}
    end.

set(<<"store-module">>, _, C) -> {ok, C};
set(<<"pid">>, _, C) -> {ok, C};
%% Keys HyperBEAM's hb_store keeps in every store's map (access control,
%% retries, scope, its key/value pipeline) or that hb_store_lmdb reads
%% (batch-size, lock): they reach start/1 and every call with the map, and
%% refusing them would keep the store from starting in a node.  None
%% changes what this store does.
set(K, _, C) when K =:= <<"access">>; K =:= <<"max-retries">>; K =:= <<"scope">>;
                  K =:= <<"prefix">>; K =:= <<"prefix-strip">>; K =:= <<"to-key">>;
                  K =:= <<"from-key">>; K =:= <<"to-value">>; K =:= <<"from-value">>;
                  K =:= <<"batch-size">>; K =:= <<"lock">>; K =:= <<"benchmark-scale">> ->
    {ok, C};
set(K, V, C) when is_binary(V); is_list(V) ->
    %% A count may come as digits, as HyperBEAM's own options do
    %% (hb_util:int): the same option, as an integer.
    case lists:member(K, ?COUNT_OPTIONS) andalso digits(V) of
        N when is_integer(N) -> set(K, N, C);
        _ -> set_other(K, V, C)
    end;
set(K, V, C) ->
    set_other(K, V, C).

digits(V) ->
    try
        if is_binary(V) -> binary_to_integer(V);
           true -> list_to_integer(V)
        end
    catch
        error:badarg -> false
    end.

%% A map smaller than LMDB needs to work in (1 MiB) starts at 1 MiB: it
%% grows when it fills up anyway.
set_other(<<"capacity">>, V, C) when is_integer(V), V > 0, V =< 1 bsl 62 ->
    {ok, C#cfg{capacity = max(V, 1 bsl 20)}};
set_other(<<"durability">>, V, C) ->
    case to_bin(V) of
        D when D =:= <<"commit">>; D =:= <<"fsync">>; D =:= <<"async">> ->
            {ok, C#cfg{durability = D}};
        _ ->
            error
    end;
set_other(<<"sync-interval">>, V, C) when is_integer(V), V > 0, V =< ?DAY_MS ->
    {ok, C#cfg{sync_interval = V}};
set_other(<<"format">>, V, C) ->
    case to_bin(V) of
        F when F =:= <<"tagged">>; F =:= <<"hb_store_lmdb">> -> {ok, C#cfg{format = F}};
        _ -> error
    end;
set_other(<<"read-only">>, V, C) when is_boolean(V) -> {ok, C#cfg{read_only = V}};
set_other(<<"max-link-hops">>, V, C) when is_integer(V), V >= 0, V =< ?MAX_HOPS ->
    {ok, C#cfg{max_hops = V}};
set_other(<<"max-readers">>, V, C) when is_integer(V), V > 0, V =< ?MAX_READERS ->
    {ok, C#cfg{max_readers = V}};
set_other(<<"read-ahead">>, V, C) when is_boolean(V) -> {ok, C#cfg{read_ahead = V}};
%% checked here, applied by hyper_lmdb on each call (they are per caller)
set_other(<<"max-value-size">>, V, C) when is_integer(V), V > 0, V =< (1 bsl 30) - (1 bsl 16) -> {ok, C};
set_other(<<"timeout">>, V, C) when is_integer(V), V > 0, V =< ?MAX_AFTER; V =:= infinity -> {ok, C};
set_other(<<"watchdog">>, V, C) when is_integer(V), V > 0, V =< ?MAX_AFTER; V =:= infinity ->
    {ok, C#cfg{watchdog = V}};
set_other(<<"fault-injection">>, V, C) when is_boolean(V) -> {ok, C#cfg{fault_injection = V}};
set_other(<<"children-index">>, V, C) when is_boolean(V) -> {ok, C#cfg{children_index = V}};
set_other(<<"exclusive">>, V, C) when is_boolean(V) -> {ok, C#cfg{exclusive = V}};
set_other(<<"spin-us">>, V, C) when is_integer(V), V >= 0, V =< 100000 -> {ok, C#cfg{spin_us = V}};
set_other(_, _, _) -> error.

to_bin(V) when is_binary(V) -> V;
to_bin(V) when is_atom(V) -> atom_to_binary(V);
to_bin(_) -> undefined.

%%% ---------------------------------------------------------------------
%%% gen_server

%% @private
-spec init({cfg(), pid()}) -> {ok, #state{}, {continue, {open, pid()}}} | {stop, term()}.
init({Cfg0 = #cfg{name = Name}, Requester}) ->
    process_flag(trap_exit, true),
    %% Unique to this server, also across nodes and restarts of the BEAM
    %% (a session of an earlier server may be recorded in the store).
    <<Session:64>> = <<(erlang:system_time(microsecond)):40, (erlang:unique_integer([positive])):24>>,
    Cfg = Cfg0#cfg{session = Session},
    Open = {ok, #state{cfg = Cfg, async_count = atomics:new(2, [{signed, true}])},
            {continue, {open, Requester}}},
    %% Claim the name first (a row without a port yet): two starts of one
    %% store race here, and only one opens it.
    case ets:insert_new(?REGISTRY, {Name, self(), starting, false}) of
        true ->
            ets:insert(?REGISTRY, {{cfg, Name}, self(), Cfg}),
            Open;
        false ->
            case ets:lookup(?REGISTRY, Name) of
                [{_, Pid, Old, _}] when Pid =/= self() ->
                    case is_process_alive(Pid) of
                        true ->
                            {stop, {shutdown, {already_started, Pid}}};
                        false ->
                            %% A dead server's row (it was killed outright
                            %% and never ran terminate/2): take it over, and
                            %% raise its flag, so that callers holding its
                            %% reference look again (find/1).
                            _ = Old =/= starting andalso atomics:add(Old, ?STOPPING, ?STOP_BIT) =:= ok,
                            ets:insert(?REGISTRY, {Name, self(), starting, false}),
                            ets:insert(?REGISTRY, {{cfg, Name}, self(), Cfg}),
                            Open
                    end;
                _ ->
                    ets:insert(?REGISTRY, {Name, self(), starting, false}),
                    ets:insert(?REGISTRY, {{cfg, Name}, self(), Cfg}),
                    Open
            end
    end.

%% @private
-spec handle_continue({open, pid()}, #state{}) ->
    {noreply, #state{}} | {stop, {shutdown, term()}, #state{}}.
handle_continue({open, Requester}, S = #state{cfg = Cfg}) ->
    case open_once(Cfg) of
        {ok, Port, Format, _} ->
            S2 = adopt_leases(S#state{port = Port, format = Format, last_progress = now_ms()}),
            %% the format found, for conflicts/2
            ets:insert(?REGISTRY, {{cfg, Cfg#cfg.name}, self(),
                                   Cfg#cfg{format = atom_to_binary(Format)}}),
            %% A read-only store answers every write read_only: never early.
            ets:insert(?REGISTRY, {Cfg#cfg.name, self(), S2#state.async_count,
                                   Cfg#cfg.durability =:= <<"async">> andalso
                                       not Cfg#cfg.read_only}),
            watchdog_tick(Cfg),
            Requester ! {?MODULE, opened, self(), ok},
            {noreply, S2};
        {error, Reason} ->
            ets:delete_object(?REGISTRY, {Cfg#cfg.name, self(), starting, false}),
            ets:match_delete(?REGISTRY, {{cfg, Cfg#cfg.name}, self(), '_'}),
            ets:match_delete(?REGISTRY, {{dir, '_'}, self(), '_'}),
            Requester ! {?MODULE, opened, self(), {error, Reason}},
            %% {shutdown, _}: an expected failure, reported to the caller
            %% as a value, not logged as a crash.
            {stop, {shutdown, Reason}, S}
    end.

%% One writable port per directory, whatever it is called: a second name
%% for a directory this node serves already ("d/./x", a symbolic link) would
%% make its port wait 40 s on the first one's lock and then fail, and every
%% call through that name again.  Known by the directory's device and inode
%% (one missing yet is made by the port, and has no other name in use).
open_once(Cfg = #cfg{name = Name, dir = Dir}) ->
    Id = case Cfg of
             #cfg{read_only = false, exclusive = true} -> dir_id(Dir);
             _ -> none
         end,
    case Id =:= none orelse claim_dir(Id, Name) of
        true ->
            case open_port(Cfg) of
                {ok, _, _, _} = Ok when Id =:= none, Cfg#cfg.exclusive, not Cfg#cfg.read_only ->
                    _ = [claim_dir(Made, Name) || Made <- [dir_id(Dir)], Made =/= none],
                    Ok;
                Other ->
                    Other
            end;
        {served_as, Other} ->
            {error, {open_failed, ebusy, <<"this node serves the directory as ", Other/binary>>}}
    end.

dir_id(Dir) ->
    case file:read_file_info(Dir, [raw]) of
        {ok, #file_info{type = directory, major_device = Dev, inode = Ino}} -> {Dev, Ino};
        _ -> none
    end.

claim_dir(Id, Name) ->
    case ets:insert_new(?REGISTRY, {{dir, Id}, self(), Name}) of
        true ->
            true;
        false ->
            case ets:lookup(?REGISTRY, {dir, Id}) of
                [{_, Pid, Other} = Dead] when Pid =/= self() ->
                    case is_process_alive(Pid) of
                        true ->
                            {served_as, Other};
                        false ->
                            %% a server killed outright left it: taken over
                            %% by one of those who find it so, not by each
                            ets:delete_object(?REGISTRY, Dead),
                            claim_dir(Id, Name)
                    end;
                [_] ->
                    true;  % ours already
                [] ->
                    claim_dir(Id, Name)  % let go meanwhile
            end
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}} | {stop, normal, ok, #state{}}.
handle_call(stop, _From, S) ->
    {stop, normal, ok, S};
handle_call(reader_cfg, {Owner, _}, S = #state{cfg = Cfg, format = Format, readers = Rs}) ->
    %% A lease of a reader slot, given back by close_reader/1 or when its
    %% owner ends: readers that took every slot would leave none for a
    %% port of the store started again.
    Name = Cfg#cfg.name,
    case length(leases(Name)) < Cfg#cfg.max_readers - ?READER_RESERVE of
        true ->
            Lease = make_ref(),
            ets:insert(?REGISTRY, {{reader, Name, Lease}, Owner}),
            {reply, {ok, Cfg#cfg{format = atom_to_binary(Format)}, {Name, Lease}},
             S#state{readers = Rs#{erlang:monitor(process, Owner) => Lease}}};
        false ->
            {reply, {error, {readers_full, Cfg#cfg.max_readers}}, S}
    end;
handle_call(port_info, _From, S = #state{port = Port}) ->
    {reply, #{port => Port, os_pid => os_pid(Port), restarts => S#state.restarts,
              pending => S#state.inflight + length(held(S#state.solo)),
              readers => length(leases(S#state.cfg#cfg.name)),
              format => S#state.format,
              last_exit => S#state.last_exit}, S};
handle_call(_, _From, S) ->
    {reply, {error, {bad_argument, request}}, S}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast({reader_closed, Lease}, S = #state{readers = Rs}) ->
    case [M || {M, L} <- maps:to_list(Rs), L =:= Lease] of
        [MRef] ->
            erlang:demonitor(MRef, [flush]),
            {noreply, S#state{readers = maps:remove(MRef, Rs)}};
        [] ->
            {noreply, S}
    end;
handle_cast(_, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({req, Id, Dest, Kind, Frame}, S) ->
    {noreply, handle_requests(Id, Dest, Kind, Frame, S)};
handle_info({Port, {data, Chunk}}, S = #state{port = Port}) ->
    case frames(Chunk, S#state.partial) of
        {[], none} ->
            %% only wake-up calls (port_src/protocol.h): no answer, no
            %% progress (a port that dies after one has answered nothing)
            {noreply, S};
        {Frames, Partial} ->
            Done = route_all(Frames, S, 0),
            {noreply, solo_next(S#state{last_progress = now_ms(), partial = Partial,
                                        inflight = S#state.inflight - Done, answered = true})}
    end;
handle_info({cancel, Id}, S) when is_integer(Id) ->
    %% Its caller gave up.  The request stays in flight, marked, until
    %% the port answers it: the watchdog must still see that the port owes
    %% an answer (a hung port whose every caller timed out is a hung port
    %% all the same), but the answer goes nowhere and it is not retried.
    %% One held back in solo mode (not sent yet) is simply dropped.
    case get(Id) of
        {Dest, Kind, Frame, Tries, Seq} when Dest =/= async ->
            put(Id, {cancelled, Kind, Frame, Tries, Seq}),
            {noreply, S};
        _ when S#state.solo =/= none ->
            {Suspects, Later} = S#state.solo,
            Keep = fun({I, {Dest, _, _, _, _}}) -> I =/= Id orelse Dest =:= async end,
            {noreply, S#state{solo = {lists:filter(Keep, Suspects), lists:filter(Keep, Later)}}};
        _ ->
            {noreply, S}
    end;
handle_info(watchdog, S = #state{cfg = Cfg, port = Port, inflight = N}) ->
    watchdog_tick(Cfg),
    Silent = now_ms() - S#state.last_progress,
    case N > 0 andalso Silent > Cfg#cfg.watchdog of
        true ->
            %% Requests wait and nothing has come back for too long: the
            %% port is hung.  Kill it hard and restart as after a crash.
            logger:error("hyper_lmdb ~s: port silent for ~b ms with ~b requests waiting; "
                         "killing it", [Cfg#cfg.name, Silent, N]),
            kill_port(Port),
            port_died(hung, S);
        false ->
            {noreply, S}
    end;
handle_info({Port, {exit_status, Status}}, S = #state{port = Port}) ->
    port_died(exit_reason(Status), S);
handle_info({'EXIT', Port, Reason}, S = #state{port = Port}) ->
    %% A write to a dead port (epipe) closes it before any exit status.
    port_died({port_closed, Reason}, S);
handle_info({'DOWN', MRef, process, _, _}, S = #state{readers = Rs})
  when is_map_key(MRef, Rs) ->
    %% a reader's owner ended (its watcher closes the port)
    ets:delete(?REGISTRY, {reader, S#state.cfg#cfg.name, map_get(MRef, Rs)}),
    {noreply, S#state{readers = maps:remove(MRef, Rs)}};
handle_info({'EXIT', _, _}, S) ->
    %% A port we already replaced.  (Our parent's exit is handled by
    %% gen_server itself, which calls terminate/2.)
    {noreply, S};
handle_info(_, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, S0 = #state{cfg = Cfg, async_count = A}) ->
    %% First, so that an async writer whose message comes later hears it
    %% (request/4).  Then no new callers: they find no store and start one.
    atomics:add(A, ?STOPPING, ?STOP_BIT),
    catch ets:match_delete(?REGISTRY, {Cfg#cfg.name, self(), '_', '_'}),
    catch ets:match_delete(?REGISTRY, {{cfg, Cfg#cfg.name}, self(), '_'}),
    catch ets:match_delete(?REGISTRY, {{dir, '_'}, self(), '_'}),
    Until = now_ms() + ?STOP_CONFIRM_MS,
    senders_done(A, now_ms() + 1000),
    %% Requests still in the mailbox: async writes were answered ok, so
    %% they join the others in their order; the rest are answered below,
    %% unsent.
    Unsent = drain_requests([]),
    S1 = lists:foldl(fun({Id, async, Kind, Frame}, S) -> handle_requests(Id, async, Kind, Frame, S);
                        (_, S) -> S
                     end, S0, Unsent),
    %% Every request given to the port is answered, every acknowledged
    %% async write confirmed, before the port is let go: a port that dies
    %% meanwhile is started again and they are replayed (one at a time
    %% after two deaths), as in service; a write that kills the port takes
    %% no other with it.  Bounded, within the supervisor's shutdown time;
    %% what is left then is handed to the port as it is.
    #state{port = Port, solo = Solo} = confirm_async(S1#state{deadline = Until}, Until),
    P = pending(),
    %% (the port gave up meanwhile: fail_all/3 logged those it held)
    _ = [logger:error("hyper_lmdb ~s: async write lost: the store stopped without a port",
                      [Cfg#cfg.name]) || Port =:= undefined, {_, {async, _, _, _, _}} <- P],
    catch port_command(Port, [Frame || {_, {async, _, Frame, _, _}} <- held(Solo)]),
    OsPid = os_pid(Port),
    catch port_close(Port),
    reap(Cfg, OsPid),
    %% Callers still waiting hear why at once (they have no monitor: see
    %% request/4).  Those never sent start the store again, and so do reads;
    %% a write the port was given may still be applied by it (it serves its
    %% input to the end), so its outcome is unknown, as after a crash.
    [case Kind of
         read -> answer(Dest, Id, {error, not_started});
         _ -> answer(Dest, Id, {error, {port_exit, stop_timeout}})
     end || {Id, {Dest, Kind, _, _, _}} <- P],
    [answer(Dest, Id, {error, not_started}) || {Id, {Dest, _, _, _, _}} <- held(Solo)],
    [answer(Dest, Id, {error, not_started}) || {Id, Dest, _, _} <- Unsent],
    ok.

%% Serves the port (answers, deaths, the watchdog) until every request it
%% was given is answered, or until Until: a write in flight would otherwise
%% be answered not_started and sent again to the next store while this
%% port, which serves its input to the end, applies it too.
confirm_async(S = #state{port = Port, inflight = N, solo = Solo}, Until) ->
    Unconfirmed = N > 0 orelse held(Solo) =/= [],
    Left = Until - now_ms(),
    case Unconfirmed andalso Left > 0 andalso Port =/= undefined of
        false ->
            S;
        true ->
            receive
                {Port, _} = M -> confirm_async(served(M, S), Until);
                {'EXIT', Port, _} = M -> confirm_async(served(M, S), Until);
                watchdog -> confirm_async(served(watchdog, S), Until)
            after Left ->
                S
            end
    end.

served(M, S) ->
    case handle_info(M, S) of
        {noreply, S2} -> S2;
        {stop, _, S2} -> S2#state{port = undefined}
    end.

%% Until no async writer is between counting itself in and having sent
%% (send_async/5): every write let through is in the mailbox then.  Bounded:
%% a writer killed in between never counts itself out.
senders_done(A, Until) ->
    case atomics:get(A, ?STOPPING) > ?STOP_BIT andalso now_ms() < Until of
        true -> erlang:yield(), senders_done(A, Until);
        false -> ok
    end.

drain_requests(Acc) ->
    receive
        {req, Id, Dest, Kind, Frame} -> drain_requests([{Id, Dest, Kind, Frame} | Acc])
    after 0 ->
        lists:reverse(Acc)
    end.

%%% ---------------------------------------------------------------------
%%% requests and replies

%% Takes up to ?BURST requests waiting in the mailbox and writes them all
%% to the port at once.  One pass: each request is kept (pending/0) and
%% its frame goes into the iolist as it is taken (this runs in the one
%% process every caller waits on).
handle_requests(Id, Dest, Kind, Frame, S = #state{solo = {Suspects, Later}, seq = Seq}) ->
    %% Behind the suspects, in order.
    S#state{solo = {Suspects, [{Id, {Dest, Kind, Frame, 0, Seq}} | Later]}, seq = Seq + 1};
handle_requests(Id, Dest, Kind, Frame, S = #state{inflight = N0, seq = Seq0}) ->
    put(Id, {Dest, Kind, Frame, 0, Seq0}),
    {Frames, Seq} = take_burst([Frame], Seq0 + 1, Seq0 + ?BURST),
    %% A closed port's exit is on its way; port_died/2 then settles these
    %% with the rest.
    catch port_command(S#state.port, lists:reverse(Frames)),
    S1 = S#state{inflight = N0 + (Seq - Seq0), seq = Seq},
    case N0 of
        0 -> S1#state{last_progress = now_ms()};
        _ -> S1
    end.

take_burst(Frames, Seq, Last) when Seq < Last ->
    receive
        {req, Id, Dest, Kind, Frame} ->
            put(Id, {Dest, Kind, Frame, 0, Seq}),
            take_burst([Frame | Frames], Seq + 1, Last)
    after 0 ->
        {Frames, Seq}
    end;
take_burst(Frames, Seq, _) ->
    {Frames, Seq}.

%% The requests in flight, {Id, {Dest, Kind, Frame, Tries, Seq}}.  Kept in
%% the process dictionary, by id, and counted in #state.inflight: every
%% request goes in and out of this once, in the one process every caller
%% waits on, and a map of that many entries costs several times more per
%% insertion and removal than the dictionary (measured: 0.42 against
%% 0.07 us with 64 in flight), and makes garbage.  Ids are integers, and
%% nothing else the server keeps there is one.
pending() ->
    [E || {Id, _} = E <- get(), is_integer(Id)].

%% Replaces the requests in flight with Entries.
set_pending(Entries, S) ->
    _ = [erase(Id) || {Id, _} <- pending()],
    _ = [put(Id, V) || {Id, V} <- Entries],
    S#state{inflight = length(Entries)}.

answer(async, _Id, _Result) -> ok;
answer(cancelled, _Id, _Result) -> ok;
answer(Dest, Id, Result) -> Dest ! {Dest, Id, {result, Result}}, ok.

%% @private One request frame: the port runs in stream mode, so the
%% 4-byte length is ours to write.  One port_command is never interleaved
%% with another.
%% The id is written as an 8-byte SMALL_BIG whatever its value (binary_to_term
%% reads that as the integer), so the port can echo it at a fixed place.
%% The two hot requests are written by hand, a value as its own binary in
%% the iolist so that a large one is never copied; the rest splice the
%% id into term_to_binary's tuple.
-spec frame(pos_integer(), tuple()) -> iodata().
frame(Id, {read, P}) ->
    Body = <<131, 104, 3, 110, 8, 0, Id:64/little, 119, 4, "read", 109, (byte_size(P)):32,
             P/binary>>,
    <<(byte_size(Body)):32, Body/binary>>;
frame(Id, {write, P, V}) ->
    Head = <<131, 104, 4, 110, 8, 0, Id:64/little, 119, 5, "write", 109, (byte_size(P)):32,
             P/binary, 109, (byte_size(V)):32>>,
    [<<(byte_size(Head) + byte_size(V)):32>>, Head, V];
frame(Id, Req) ->
    <<131, 104, Arity, Rest/binary>> = term_to_binary(Req),
    Head = <<131, 104, (Arity + 1), 110, 8, 0, Id:64/little>>,
    [<<(byte_size(Head) + byte_size(Rest)):32>>, Head, Rest].

%% A request's frame, or {too_large, Bytes} for one the port would not
%% take (past ?MAX_FRAME; past 4 GiB its head could not even say its length).
checked_frame(Id, {read, _} = Req) -> sized(frame(Id, Req));
checked_frame(Id, {write, _, _} = Req) -> sized(frame(Id, Req));
checked_frame(Id, Req) ->
    %% Sized before term_to_binary/1 would copy every value into one binary
    %% (external_size/1 is an upper bound; 11 bytes for the id).
    case erlang:external_size(Req) + 11 of
        Size when Size > ?MAX_FRAME -> {too_large, Size};
        _ -> frame(Id, Req)
    end.

sized(Frame) ->
    case frame_size(Frame) of
        Size when Size > ?MAX_FRAME -> {too_large, Size};
        _ -> Frame
    end.

%% The length a frame's head says, before it is cut to 32 bits.
frame_size(Frame) when is_binary(Frame) -> byte_size(Frame) - 4;
frame_size([_, Head, Value]) -> byte_size(Head) + byte_size(Value).

%% Splits the port's output into frames.  The port runs in stream mode:
%% one message carries whatever one read returned (many replies at once,
%% or part of a large one), which costs far fewer messages than one per
%% frame.  A partial frame waits in `partial': {BytesNeeded, BytesHeld,
%% ChunksReversed}, joined once (not re-appended per chunk, which would
%% copy a large value over and over).
frames(Chunk, none) ->
    frames(Chunk, []);
frames(Chunk, {Need, Have, Chunks}) when Have + byte_size(Chunk) < Need ->
    {[], {Need, Have + byte_size(Chunk), [Chunk | Chunks]}};
frames(Chunk, {_, _, Chunks}) ->
    frames(iolist_to_binary(lists:reverse([Chunk | Chunks])), []);
frames(<<0:32, Rest/binary>>, Acc) ->
    frames(Rest, Acc);  % a wake-up call (port_src/protocol.h): no reply
frames(<<Len:32, Frame:Len/binary, Rest/binary>>, Acc) ->
    frames(Rest, [Frame | Acc]);
frames(<<>>, Acc) ->
    {lists:reverse(Acc), none};
frames(<<Len:32, _/binary>> = Part, Acc) ->
    {lists:reverse(Acc), {Len + 4, byte_size(Part), [Part]}};
frames(Part, Acc) ->
    {lists:reverse(Acc), {4, byte_size(Part), [Part]}}.

%% The id of a reply frame: at a fixed place for our 8-byte ids (see the module
%% doc); anything else (the hello, a reply to an unreadable request) is
%% decoded.
reply_id(<<131, 104, 2, 110, 8, 0, Id:64/little, _/binary>>) when Id > 0 -> Id;
reply_id(Frame) ->
    case catch binary_to_term(Frame) of
        {Id, _} when is_integer(Id) -> Id;
        _ -> 0
    end.

%% Sends each reply on; how many requests they answered.
route_all([F | T], S, N) -> route_all(T, S, N + route(reply_id(F), F, S));
route_all([], _, N) -> N.

route(0, Frame, S) ->
    logger:warning("hyper_lmdb ~s: reply to no request: ~0p",
                   [S#state.cfg#cfg.name, catch binary_to_term(Frame)]),
    0;
route(Id, Frame, S) ->
    case erase(Id) of
        {async, _, _, _, _} ->
            case binary:longest_common_suffix([Frame, <<119, 2, "ok">>]) of
                4 ->
                    atomics:sub(S#state.async_count, ?UNCONFIRMED, 1);
                _ ->
                    lost_async(S),
                    logger:error("hyper_lmdb ~s: async write failed: ~0p",
                                 [S#state.cfg#cfg.name, decode(Frame)])
            end,
            1;
        {cancelled, _, _, _, _} ->
            1;
        {Dest, _, _, _, _} ->
            Dest ! {Dest, Id, detach(Frame)},
            1;
        undefined ->
            0  % none such (a port's bug)
    end.

%% A reply that is a small part of a large chunk from the port is copied
%% before it is sent: a sub-binary would keep the whole chunk alive in
%% the caller until its next garbage collection, and with many callers
%% that is many chunks (measured: a gigabyte with 1000 callers).  A small
%% chunk (a burst of a few dozen replies) is shared instead: the copies
%% would cost the server, which every caller waits on, more than the few
%% kilobytes a caller holds on to until it next collects.
detach(Frame) ->
    Ref = binary:referenced_byte_size(Frame),
    case Ref > ?DETACH_CHUNK andalso Ref > 2 * byte_size(Frame) of
        true -> binary:copy(Frame);
        false -> Frame
    end.

now_ms() ->
    erlang:monotonic_time(millisecond).

watchdog_tick(#cfg{watchdog = infinity}) -> ok;
watchdog_tick(#cfg{watchdog = W}) ->
    _ = erlang:send_after(max(10, W div 4), self(), watchdog),
    ok.

%% The closed port serves what it was handed and exits.  One that is hung
%% never reads to its end: it would hold the directory's lock (and the
%% store) for good.  A watcher kills it once it has used no CPU for the
%% watchdog's time, as the watchdog would have had the server lived (a
%% port still committing a long tail uses CPU, a hung one none); its
%% unconfirmed async writes are lost then, and it says so.  The watcher is
%% not linked: it outlives the server.  With the watchdog off it only
%% warns.  It knows the process by /proc (Linux): its start time, so that
%% a recycled pid is never taken for it, and its CPU time.
reap(_, undefined) ->
    ok;
reap(#cfg{name = Name, watchdog = W}, OsPid) ->
    case proc_stat(OsPid) of
        {ok, Started, Cpu} ->
            _ = spawn(fun() -> reap_wait(Name, OsPid, W, Started, Cpu, 0, 5) end),
            ok;
        gone ->
            ok
    end.

reap_wait(Name, OsPid, W, Started, Cpu0, Silent, Step) ->
    timer:sleep(Step),
    case proc_stat(OsPid) of
        {ok, Started, Cpu} ->
            Quiet = case Cpu of
                        Cpu0 -> Silent + Step;
                        _ -> 0
                    end,
            if
                W =:= infinity, Quiet >= 30000 ->
                    logger:warning("hyper_lmdb ~s: the closed port (os pid ~b) has done nothing "
                                   "for 30 s; the store cannot open again until it ends",
                                   [Name, OsPid]);
                W =/= infinity, Quiet >= W ->
                    logger:error("hyper_lmdb ~s: the closed port (os pid ~b) has done nothing for "
                                 "~b ms; killing it (writes it held unconfirmed are lost)",
                                 [Name, OsPid, W]),
                    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
                    ok;
                true ->
                    reap_wait(Name, OsPid, W, Started, Cpu, Quiet, min(1000, 2 * Step))
            end;
        _ ->
            ok  % it ended (or its pid now names another process)
    end.

%% {ok, StartTime, CpuTicks} of a live process, from /proc/PID/stat;
%% gone when there is none (or no /proc: then no watcher either).
proc_stat(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, B} ->
            try
                [_, Rest] = binary:split(B, <<") ">>),
                F = binary:split(Rest, <<" ">>, [global]),
                State = lists:nth(1, F),
                Utime = binary_to_integer(lists:nth(12, F)),
                Stime = binary_to_integer(lists:nth(13, F)),
                Start = binary_to_integer(lists:nth(20, F)),
                case State of
                    <<"Z">> -> gone;
                    _ -> {ok, Start, Utime + Stime}
                end
            catch
                _:_ -> gone
            end;
        {error, _} ->
            gone
    end.

kill_port(Port) ->
    case os_pid(Port) of
        undefined -> ok;
        OsPid -> _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)), ok
    end,
    catch port_close(Port),
    ok.

%%% ---------------------------------------------------------------------
%%% the port

port_args(#cfg{dir = Dir} = C) ->
    ["--dir", Dir,
     "--map-size", integer_to_list(C#cfg.capacity),
     "--max-readers", integer_to_list(C#cfg.max_readers),
     "--read-ahead", bool(C#cfg.read_ahead),
     "--read-only", bool(C#cfg.read_only),
     "--max-hops", integer_to_list(C#cfg.max_hops),
     "--max-frame", integer_to_list(?MAX_FRAME),
     "--durability", binary_to_list(C#cfg.durability),
     "--sync-interval", integer_to_list(C#cfg.sync_interval),
     "--format", case C#cfg.format of auto -> "auto"; F -> binary_to_list(F) end,
     "--spin-us", integer_to_list(C#cfg.spin_us),
     "--exclusive", bool(C#cfg.exclusive),
     "--fault-injection", bool(C#cfg.fault_injection),
     "--children-index", bool(C#cfg.children_index),
     %% A read need not wait for the open batch's commit (protocol.h):
     %% no writer has heard of it yet.  In async mode they have.
     "--read-committed", bool(C#cfg.durability =/= <<"async">>),
     %% Only the port holding the directory's lock notes its commits: one
     %% writing beside it (exclusive false, the command line) would
     %% overwrite the note its crash needs (committed/3).
     "--session", integer_to_list(case C#cfg.exclusive of true -> C#cfg.session; false -> 0 end)].

bool(true) -> "1";
bool(false) -> "0".

executable() ->
    case code:priv_dir(hyper_lmdb) of
        {error, _} ->
            filename:join([filename:dirname(code:which(?MODULE)), "..", "priv",
                           "hyper_lmdb_port"]);
        Dir ->
            filename:join(Dir, "hyper_lmdb_port")
    end.

%% Starts the port program and waits for its hello.
open_port(Cfg) ->
    Exe = executable(),
    try
        erlang:open_port({spawn_executable, Exe},
                         [stream, binary, exit_status, use_stdio,
                          {args, port_args(Cfg)},
                          %% a 64 MiB value must not mark the port busy
                          {busy_limits_port, {256 bsl 20, 512 bsl 20}}])
    of
        Port -> hello(Port, none, case Cfg#cfg.children_index of
                                      true -> ?BUILD_HELLO_TIMEOUT;
                                      false -> ?HELLO_TIMEOUT
                                  end)
    catch
        error:Why -> {error, {port_start, Why, Exe}}
    end.

hello(Port, Partial0, Timeout) ->
    receive
        {Port, {data, Chunk}} ->
            case frames(Chunk, Partial0) of
                {[], Partial} -> hello(Port, Partial, Timeout);
                {[Bin], none} -> hello_frame(Port, Bin);
                Other -> catch port_close(Port), {error, {bad_hello, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, exit_reason(Status)}
    after Timeout ->
        catch port_close(Port),
        {error, {port_start, timeout}}
    end.

hello_frame(Port, Bin) ->
            case binary_to_term(Bin) of
                {0, {hello, ?PROTOCOL_VERSION, Format, _MapSize, Last}} ->
                    {ok, Port, Format, Last};
                {0, {error, Reason}} ->
                    wait_exit(Port),
                    {error, Reason};
                Other ->
                    catch port_close(Port),
                    {error, {bad_hello, Other}}
            end.

wait_exit(Port) ->
    receive
        {Port, {exit_status, _}} -> ok
    after 5000 ->
        catch port_close(Port),
        ok
    end.

os_pid(Port) ->
    case catch erlang:port_info(Port, os_pid) of
        {os_pid, Pid} -> Pid;
        _ -> undefined
    end.

%% Exit codes of port_src/protocol.h.
exit_reason(0) -> normal;
exit_reason(2) -> usage;
exit_reason(3) -> open_failed;
exit_reason(4) -> broken_stream;
exit_reason(5) -> output_failed;
exit_reason(6) -> out_of_memory;
exit_reason(7) -> lmdb_fatal;
exit_reason(S) when S > 128 -> {signal, S - 128};
exit_reason(S) -> {exit, S}.

%% The port is gone: restart it, then settle what was in flight, in the
%% order it reached us (the port's order).  Reads are sent again, once (a
%% read that kills the port twice is answered with the error); writes
%% whose commit we cannot know are answered with an error; async writes
%% are replayed.  Requests still in the mailbox go to the new port after
%% these, in the order they came.  A port that cannot be started again at
%% once (the directory briefly unreachable, no file descriptors left) is
%% tried again for ?REOPEN_MS before the store gives up: giving up loses
%% the unconfirmed async writes.
port_died(Reason, S = #state{cfg = Cfg}) ->
    P = pending(),
    Now = now_ms(),
    Recent = [R || {T, _} = R <- S#state.recent_restarts, Now - T < ?RESTART_WINDOW],
    logger:warning("hyper_lmdb ~s: port exited (~0p), restarting", [Cfg#cfg.name, Reason]),
    Held = held(S#state.solo),
    S1 = (set_pending([], S))#state{port = undefined, partial = none, solo = none,
                 recent_restarts = [{Now, S#state.answered} | Recent], answered = false,
                 restarts = S#state.restarts + 1, last_exit = Reason},
    Sorted = [{Id, V} || {_, Id, V} <- lists:sort([{element(5, V), Id, V}
                                                  || {Id, V} <- P])],
    %% While terminate/2 serves the port, within its deadline: no backoff,
    %% and no restart that could not finish in time.
    Left = case S#state.deadline of
               infinity -> infinity;
               D -> D - Now
           end,
    case length(Recent) >= ?MAX_RESTARTS orelse Left < ?STOP_REOPEN_MIN of
        true ->
            fail_all(Sorted ++ Held, Reason, S1),
            {stop, {port_restart_limit, Reason}, S1};
        false ->
            %% Only a port that keeps dying without answering anything is
            %% a crash loop worth slowing down: one killed while it served
            %% (kill -9 of a busy port, however often) is back at once.
            timer:sleep(case S#state.answered orelse Left =/= infinity of
                            true -> 0;
                            false -> backoff([T || {T, false} <- Recent, Now - T < 1000])
                        end),
            case reopen(Cfg, now_ms() + min(?REOPEN_MS, Left), 20) of
                {ok, Port, Format, Last} ->
                    S2 = S1#state{port = Port, format = Format, last_progress = now_ms()},
                    {noreply, settle(committed(Sorted, Last, S2), Reason,
                                     S2#state{solo = S#state.solo})};
                {error, Why} ->
                    fail_all(Sorted ++ Held, Reason, S1),
                    {stop, {port_restart_failed, Why}, S1}
            end
    end.

reopen(Cfg, Until, Wait) ->
    case open_port(Cfg) of
        {ok, _, _, _} = Ok ->
            Ok;
        {error, Why} = E ->
            case now_ms() + Wait < Until of
                true ->
                    logger:warning("hyper_lmdb ~s: cannot start the port again (~0p); "
                                   "trying again in ~b ms", [Cfg#cfg.name, Why, Wait]),
                    timer:sleep(Wait),
                    reopen(Cfg, Until, min(1000, 2 * Wait));
                false ->
                    E
            end
    end.

%% The async writes the dead port had committed without our hearing of
%% it: the new port reports the last request of our session that the
%% store's commits applied (either format).  Requests reach the port in Seq
%% order and are committed in that order, so every async write up to it
%% is in the store: confirmed now, not replayed (applied twice, a write
%% after a link it made would land elsewhere).  The others are settled as
%% after any death (reads retried, other writes of unknown outcome).
committed(Sorted, {Session, Last}, #state{cfg = #cfg{session = Session}} = S) ->
    case lists:keymember(Last, 1, Sorted) of
        true ->
            {Done, [L | Rest]} = lists:splitwith(fun({Id, _}) -> Id =/= Last end, Sorted),
            [atomics:sub(S#state.async_count, ?UNCONFIRMED, 1)
             || {_, {async, _, _, _, _}} <- [L | Done]],
            [E || {_, {Dest, _, _, _, _}} = E <- [L | Done], Dest =/= async] ++ Rest;
        false ->
            Sorted
    end;
committed(Sorted, _, _) ->
    Sorted.

settle(Sorted, Reason, S = #state{port = Port}) ->
    Again = [{Id, {Dest, Kind, Frame, Tries + 1, Seq}}
             || {Id, {Dest, Kind, Frame, Tries, Seq}} <- Sorted, again(Dest, Kind, Tries)],
    [case Dest of
         async -> give_up_async(S, Tries);
         _ -> answer(Dest, Id, {error, {port_exit, Reason}})
     end || {Id, {Dest, Kind, _, Tries, _}} <- Sorted, not again(Dest, Kind, Tries)],
    Twice = lists:any(fun({_, {async, _, _, Tries, _}}) -> Tries >= ?SOLO_AFTER;
                         (_) -> false
                      end, Again),
    case S#state.solo of
        none when not Twice ->
            catch port_command(Port, [Frame || {_, {_, _, Frame, _, _}} <- Again]),
            set_pending(Again, S);
        none ->
            %% The port died twice with some async write in flight: one
            %% that kills it (a port bug it sets off, or work that outlasts
            %% the watchdog) would take every write it was sent with to
            %% ?ASYNC_TRIES deaths, and all would be dropped.  One at a
            %% time, it dies alone.
            logger:warning("hyper_lmdb ~s: replaying ~b requests one at a time",
                           [S#state.cfg#cfg.name, length(Again)]),
            solo_next((set_pending([], S))#state{solo = {Again, []}});
        {Suspects, Later} ->
            %% The one in flight died again (or was dropped): it stays first.
            solo_next((set_pending([], S))#state{solo = {by_seq(Again ++ Suspects), Later}})
    end.

%% In solo mode with nothing in flight: the next suspect, alone; once none
%% is left, every request that came meanwhile, and normal mode again.
solo_next(S = #state{solo = none}) ->
    S;
solo_next(S = #state{inflight = N}) when N > 0 ->
    S;
solo_next(S = #state{port = Port, solo = {[{Id, {_, _, Frame, _, _} = V} | Rest], Later}}) ->
    catch port_command(Port, Frame),
    (set_pending([{Id, V}], S))#state{solo = {Rest, Later}, last_progress = now_ms()};
solo_next(S = #state{port = Port, solo = {[], Later}}) ->
    Entries = lists:reverse(Later),
    catch port_command(Port, [Frame || {_, {_, _, Frame, _, _}} <- Entries]),
    (set_pending(Entries, S))#state{solo = none, last_progress = now_ms()}.

by_seq(Entries) ->
    [E || {_, E} <- lists:sort([{element(5, V), {Id, V}} || {Id, V} <- Entries])].

%% Every request held back in solo mode, in order.
held(none) -> [];
held({Suspects, Later}) -> Suspects ++ lists:reverse(Later).

%% What a restarted port is sent again: async writes (already answered
%% ok), unless the port died with one in flight ?ASYNC_TRIES times (a
%% write that kills the port, or outlasts the watchdog, would otherwise
%% wedge the store for good, replayed first into every new port); and
%% reads the port died on for the first time.  Not a request whose caller
%% gave up.
again(async, _, Tries) -> Tries < ?ASYNC_TRIES;
again(cancelled, _, _) -> false;
again(_, read, 0) -> true;
again(_, _, _) -> false.

give_up_async(S, Tries) ->
    lost_async(S),
    logger:error("hyper_lmdb ~s: async write dropped: the port died ~b times with it in flight",
                 [S#state.cfg#cfg.name, Tries + 1]).

fail_all(Sorted, Reason, S) ->
    [case Dest of
         async ->
             lost_async(S),
             logger:error("hyper_lmdb ~s: async write lost: port gave up",
                          [S#state.cfg#cfg.name]);
         _ ->
             answer(Dest, Id, {error, {port_exit, Reason}})
     end || {Id, {Dest, _, _, _, _}} <- Sorted],
    ok.

backoff(LastSecond) when length(LastSecond) < ?FREE_RESTARTS -> 0;
backoff(LastSecond) -> min(1000, 10 bsl (length(LastSecond) - ?FREE_RESTARTS)).
