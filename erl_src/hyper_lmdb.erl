%%% @doc hyper_lmdb: an LMDB store for HyperBEAM, served by a port program.
%%%
%%% Every function takes the store's options map (the one HyperBEAM passes
%%% to its `hb_store' callbacks, e.g. `#{<<"store-module">> => hyper_lmdb,
%%% <<"name">> => <<"cache-mainnet">>}') or the instance map returned by
%%% {@link start/1}.  The store is found by its `<<"name">>' and started on
%%% first use.  No function raises for a miss or a bad argument: failures
%%% are `{error, Reason}' values (SPEC section 6).  The device-style
%%% functions (arity 3) answer a transient failure (the port died under
%%% the call, the call timed out) as `{failure, Reason}', which HyperBEAM's
%%% store manager retries; see dev/1.
%%%
%%% Paths are binaries (`<<"a/b/c">>') or lists of segments (binaries,
%%% strings, atoms, integers); empty segments are dropped.  Links are
%%% followed at every prefix and at the whole path.
%%% @end
-module(hyper_lmdb).

-export([start/1, stop/1, reset/1, scope/0, scope/1]).
-export([read/2, write/3, list/2, list/3, type/2, make_group/2, make_link/3,
         resolve/2, path/2, add_path/3]).
-export([read_many/2, write_many/2, delete/2, sync/1, stats/1]).
-export([match/2, scan/2]).
-export([open_reader/1, close_reader/1]).
%% HyperBEAM's device-style store API (2026): Fun(StoreOpts, Request, NodeOpts)
-export([start/3, stop/3, reset/3, read/3, type/3, group/3, link/3, resolve/3, match/3,
         sync/3]).

-export_type([store/0, reader/0, path/0, write_op/0, list_opts/0]).

-type store() :: #{binary() => term()}.
%% Store options (SPEC section 1) or an instance returned by start/1.
-type path() :: binary() | [binary() | string() | atom() | integer()] | string().
-type write_op() :: {write, path(), iodata()} | {make_link, path(), path()}
                  | {make_group, path()} | {delete, path()}.
-type list_opts() :: #{from => binary(), limit => non_neg_integer(),
                       direction => asc | desc}.
-type error() :: {error, term()}.
-type failure() :: {failure, {port_exit, term()} | timeout | not_started}.
%% A device-style call's transient failure (dev/1).
-opaque reader() :: {hyper_lmdb_reader, reference(), timeout()}.
%% A store's reader, for the process that opened it (open_reader/1).

-define(DEFAULT_TIMEOUT, 60000).
-define(DEFAULT_MAX_VALUE, (1 bsl 30) - (1 bsl 16)).
%% how long a caller waits for a store another caller is opening: the
%% port's lock wait (40 s) and its hello (the server gives up at 60 s)
-define(OPEN_WAIT, 120000).

%%% ---------------------------------------------------------------------
%%% lifecycle

%% @doc Starts the store named by `<<"name">>' (a directory, created if
%% missing), or finds it if it is already running.  Returns the options
%% with `<<"pid">>' added: the server that owns the store's port.  A
%% running store started with other settings than `Opts' gives (say
%% `<<"read-only">>', `<<"durability">>') answers
%% `{error, {already_started, Keys}}': stop it first.
-spec start(store()) -> {ok, store()} | error().
start(Opts) ->
    start(Opts, check).

%% `check': a running store with other settings is refused (start/1);
%% `any': calls use the store as it runs, and start it if it is not.
start(Opts, Running) ->
    case hyper_lmdb_server:validate(Opts) of
        {ok, Cfg} ->
            {ok, _} = application:ensure_all_started(hyper_lmdb),
            {ok, Name} = name(Opts),
            case hyper_lmdb_server:lookup(Name) of
                {ok, Pid} ->
                    running(Running, Cfg, Opts, Pid);
                error ->
                    case hyper_lmdb_sup:start_store(Cfg) of
                        {ok, Pid} -> {ok, Opts#{<<"pid">> => Pid}};
                        {error, {shutdown, {already_started, Pid}}} -> running(Running, Cfg, Opts, Pid);
                        {error, {shutdown, Reason}} -> {error, Reason};
                        {error, _} = E -> E
                    end
            end;
        {error, _} = E ->
            E
    end.

%% Options take effect when a store starts: one already running with other
%% settings is not handed out as if it had these.
running(any, _Cfg, Opts, Pid) ->
    {ok, Opts#{<<"pid">> => Pid}};
running(check, Cfg, Opts, Pid) ->
    case hyper_lmdb_server:conflicts(Cfg, Opts) of
        [] -> {ok, Opts#{<<"pid">> => Pid}};
        Keys -> {error, {already_started, Keys}}
    end.

%% @doc Opens a reader of the store for the calling process: a read-only
%% port of the store's directory that this process owns and talks to
%% directly.  Pass it instead of the store to read/2, read_many/2, list/2,3,
%% type/2, resolve/2, match/2 and scan/2: their answers are the same
%% (every write acknowledged before a read is seen by it), without the
%% store's server between the caller and the port, which is most of a
%% single caller's round trip.  Only the process that opened it may use
%% it; it costs a port (an OS process and an LMDB reader slot, see
%% `<<"max-readers">>') until close_reader/1 or the end of its owner.  A
%% store's readers take at most two fewer slots than `max-readers' (the
%% store's own port keeps one): beyond, `{error, {readers_full, Max}}'.  A
%% reader whose port dies is started again and the read retried.  Not for
%% a store in `async' mode, whose writes may still be queued in the server
%% (`{error, {bad_option, <<"durability">>}}').  Other calls with a reader,
%% writes among them, answer `{error, {bad_argument, reader}}'.
-spec open_reader(store()) -> {ok, reader()} | error().
open_reader(Opts) ->
    case server(Opts) of
        {ok, {Pid, _, _}} ->
            case hyper_lmdb_server:open_reader(Pid, ?OPEN_WAIT) of
                {ok, Ref} -> {ok, {hyper_lmdb_reader, Ref, timeout(Opts)}};
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    end.

%% @doc Closes a reader opened by this process; `ok' also if it was closed.
-spec close_reader(reader()) -> ok.
close_reader({hyper_lmdb_reader, Ref, _}) ->
    hyper_lmdb_server:close_reader(Ref);
close_reader(_) ->
    ok.

%% @doc Stops the store; its data stays on disk.  `ok' also when it was
%% not running.
-spec stop(store()) -> ok.
stop(Opts) ->
    case name(Opts) of
        {ok, Name} ->
            case hyper_lmdb_server:lookup(Name) of
                {ok, Pid} -> hyper_lmdb_server:stop(Pid, timeout(Opts));
                error -> ok
            end;
        error ->
            ok
    end.

%% @doc Empties the store (inside LMDB, in one transaction); it stays
%% open and usable.
-spec reset(store()) -> ok | error().
reset(Opts) ->
    call(Opts, write, {reset}).

%% @doc The store is local to this node.
-spec scope() -> local.
scope() -> local.

%% @doc The store is local to this node.
-spec scope(store()) -> local.
scope(_) -> local.

%%% ---------------------------------------------------------------------
%%% hb_store callbacks

%% @doc Reads a value, following links at every prefix.  Groups, missing
%% keys, dangling links and link loops read as `not_found'.
-spec read(store() | reader(), path()) -> {ok, binary()} | not_found | error().
read(Opts, Path) when is_binary(Path) ->
    call(Opts, read, {read, Path});  % the common case, without a closure
read(Opts, Path) ->
    with_path(Path, fun(P) -> call(Opts, read, {read, P}) end).

%% @doc Writes a value (a binary or iodata), replacing whatever the key
%% held.  A write through a linked prefix lands in the link's target.
%% With a map as second argument, the device-style write: every
%% `Path => Value' of the map in one atomic commit (a value that is itself
%% a map becomes a group of its children).
-spec write(store(), path() | #{path() => iodata() | map()}, iodata() | map()) ->
          ok | error() | failure().
write(Opts, Req, _NodeOpts) when is_map(Req) ->
    dev(dev_write(Opts, Req));
write(Opts, Path, Value) ->
    with_path(Path, fun(P) ->
        with_value(Opts, Value, fun(V) -> call(Opts, write, {write, P, V}) end)
    end).

%% @doc The immediate children of a group, sorted bytewise and unique;
%% `{ok, []}' for a missing path.
-spec list(store() | reader(), path()) -> {ok, [binary()]} | error().
list(Opts, Path) ->
    list(Opts, Path, #{}).

%% @doc A bounded listing: at most `limit' children, starting at `from'
%% (inclusive), in `direction' order (default ascending).  With a request
%% map as second argument, the device-style list: `#{<<"list">> => Path,
%% <<"from">> => Name, <<"limit">> => N, <<"direction">> => <<"asc">> |
%% <<"desc">>}'.
-spec list(store() | reader(), path() | map(), list_opts() | map()) ->
          {ok, [binary()]} | error() | failure().
list(Opts, Req, _NodeOpts) when is_map(Req) ->
    dev(dev_list(Opts, Req));
list(Opts, Path, ListOpts) when is_map(ListOpts) ->
    From = maps:get(from, ListOpts, undefined),
    Limit = maps:get(limit, ListOpts, 0),
    Dir = maps:get(direction, ListOpts, asc),
    case is_list_opts(From, Limit, Dir) of
        true ->
            with_path(Path, fun(P) ->
                call(Opts, read, {list, P, From, Limit, Dir})
            end);
        false ->
            {error, {bad_argument, list_opts}}
    end;
list(_, _, _) ->
    {error, {bad_argument, list_opts}}.

%% @doc `simple' for a value, `composite' for a group (explicit or
%% implicit), `not_found' otherwise; links are followed as by read/2.
-spec type(store() | reader(), path()) -> simple | composite | not_found | error().
type(Opts, Path) ->
    with_path(Path, fun(P) -> call(Opts, read, {type, P}) end).

%% @doc Marks a path as a group.
-spec make_group(store(), path()) -> ok | error().
make_group(Opts, Path) ->
    with_path(Path, fun(P) -> call(Opts, write, {make_group, P}) end).

%% @doc Makes `New' a link to `Existing' (which need not exist).
-spec make_link(store(), path(), path()) -> ok | error().
make_link(Opts, Existing, New) ->
    with_path(Existing, fun(E) ->
        with_path(New, fun(N) -> call(Opts, write, {make_link, E, N}) end)
    end).

%% @doc The path with every link followed, at every prefix and the whole
%% path; a path without links comes back normalised.
-spec resolve(store() | reader(), path()) -> binary() | error().
resolve(Opts, Path) ->
    with_path(Path, fun(P) -> call(Opts, read, {resolve, P}) end).

%% @doc A path as one normalised binary.
-spec path(store(), path()) -> binary() | error().
path(_Opts, Path) ->
    with_path(Path, fun normalise/1).

%% @doc Joins two paths: two lists give a list, anything else a binary.
-spec add_path(store(), path(), path()) -> path() | error().
add_path(_Opts, A, B) when is_list(A), is_list(B) ->
    case segments(A) andalso segments(B) of
        true ->
            case valid_segments(A) andalso valid_segments(B) of
                true -> A ++ B;
                false -> {error, {bad_argument, path}}
            end;
        false ->
            join_paths(A, B)
    end;
add_path(_Opts, A, B) ->
    join_paths(A, B).

join_paths(A, B) ->
    with_path(A, fun(PA) ->
        with_path(B, fun(PB) -> normalise(<<PA/binary, "/", PB/binary>>) end)
    end).

%%% ---------------------------------------------------------------------
%%% extensions

%% @doc Reads many paths from one snapshot in one round trip.
-spec read_many(store() | reader(), [path()]) -> [{ok, binary()} | not_found | error()] | error().
read_many(Opts, Paths) when is_list(Paths) ->
    case all_binaries(Paths) orelse paths(Paths, []) of
        true -> call(Opts, read, {read_many, Paths});
        {ok, Ps} -> call(Opts, read, {read_many, Ps});
        {error, _} = E -> E
    end;
read_many(_, _) ->
    {error, {bad_argument, paths}}.

%% @doc Applies many writes atomically in one commit: all or nothing.
-spec write_many(store(), [write_op()]) -> ok | error().
write_many(Opts, Ops) when is_list(Ops) ->
    case ops(Opts, Ops, []) of
        {ok, Encoded} -> call(Opts, write, {write_many, Encoded});
        {error, _} = E -> E
    end;
write_many(_, _) ->
    {error, {bad_argument, ops}}.

%% @doc Removes one key (`ok' if it was not there).
-spec delete(store(), path()) -> ok | error().
delete(Opts, Path) ->
    with_path(Path, fun(P) -> call(Opts, write, {delete, P}) end).

%% @doc The IDs (key prefixes) for which every `Key' child is a link to
%% its `Path': `match(S, [{<<"type">>, <<"types/message">>}])' finds every
%% `ID' with `ID/type' linking to `types/message'.  One pass over the keys.
%% A map is the pattern of HyperBEAM's cache (classic hb_cache:match passes
%% one): as match/3 with a map of `Key => Value'.
-spec match(store() | reader(), [{binary(), path()}] | map()) -> {ok, [binary()]} | error().
match(Opts, Pairs) when is_list(Pairs), Pairs =/= [] ->
    case match_pairs(Pairs, []) of
        {ok, Ps} -> call(Opts, read, {match, Ps});
        error -> {error, {bad_argument, match}}
    end;
match(Opts, Pattern) when is_map(Pattern), map_size(Pattern) > 0,
                          not is_map_key(<<"match">>, Pattern) ->
    match(Opts, Pattern, #{});
match(_, _) ->
    {error, {bad_argument, match}}.

match_pairs([], Acc) -> {ok, lists:reverse(Acc)};
match_pairs([{K, P} | T], Acc) when is_binary(K), K =/= <<>> ->
    case to_path(P) of
        {ok, B} when B =/= <<>> -> match_pairs(T, [{K, B} | Acc]);
        _ -> error
    end;
match_pairs(_, _) -> error.

%% @doc Every stored key as it is (links not followed), in key order:
%% `{ok, [{Key, value | link | group, Data}], Next}', at most `limit' keys
%% (default 1000) from `from' (inclusive); pass `Next' as `from' to go on
%% (`undefined' at the end).  For tools: dump, check, conversion.
-spec scan(store() | reader(), #{from => binary(), limit => pos_integer()}) ->
    {ok, [{binary(), value | link | group, binary()}], binary() | undefined} | error().
scan(Opts, #{} = ScanOpts) ->
    From = maps:get(from, ScanOpts, undefined),
    Limit = maps:get(limit, ScanOpts, 1000),
    case (From =:= undefined orelse is_binary(From)) andalso is_integer(Limit) andalso Limit > 0 of
        true -> call(Opts, read, {scan, From, Limit});
        false -> {error, {bad_argument, scan_opts}}
    end;
scan(_, _) ->
    {error, {bad_argument, scan_opts}}.

%% @doc Returns once everything acknowledged so far is on disk.  An
%% acknowledged async write the store could not keep (refused at its
%% commit, by a full disk say, or dropped after it killed the port again
%% and again) is on no disk: the next sync answers
%% `{error, {async_writes_lost, N}}' for the N lost since a sync last said
%% so, and `stats/1' counts them all (`async_writes_lost').
-spec sync(store()) -> ok | error().
sync(Opts) ->
    case call(Opts, read, {sync}) of
        ok ->
            {ok, Name} = name(Opts),  % (call/3 found the store by it)
            case hyper_lmdb_server:took_lost(Name) of
                0 -> ok;
                N -> {error, {async_writes_lost, N}}
            end;
        Other ->
            Other
    end.

%% @doc The device-style sync (hb_store_lmdb's `sync/3'): any request,
%% `#{<<"level">> => commit | fsync}' included, is sync/1, which is both:
%% every acknowledged write is committed and on disk when it returns.  A
%% read-only store has nothing to sync: `ok'.
-spec sync(store(), map(), map()) -> ok | error() | failure().
sync(Opts, Req, _NodeOpts) when is_map(Req) ->
    case sync(Opts) of
        {error, read_only} -> ok;
        R -> dev(R)
    end;
sync(_, _, _) ->
    {error, {bad_argument, request}}.

%% @doc Counters and sizes: entries, map size and use, format, durability,
%% cache hits and misses, commits and batch sizes, port restarts, the
%% readers open on the store (`readers_open', see open_reader/1), the async
%% writes acknowledged and then lost (`async_writes_lost', see sync/1).
-spec stats(store()) -> map() | error().
stats(Opts) ->
    %% (through call/3: a store whose server was killed starts again)
    case call(Opts, read, {stats}) of
        Props when is_list(Props) ->
            Info = port_info(Opts),
            {ok, Name} = name(Opts),
            (maps:from_list(Props))#{port_restarts => maps:get(restarts, Info),
                                     last_port_exit => maps:get(last_exit, Info, undefined),
                                     in_flight => maps:get(pending, Info),
                                     readers_open => maps:get(readers, Info, 0),
                                     async_writes_lost => hyper_lmdb_server:lost_total(Name),
                                     os_pid => maps:get(os_pid, Info, undefined)};
        Other ->
            Other
    end.

port_info(Opts) ->
    {ok, Name} = name(Opts),  % (call/3 found the store by it)
    try
        {ok, {Pid, _, _}} = hyper_lmdb_server:find(Name),
        hyper_lmdb_server:port_info(Pid)
    catch
        _:_ -> #{restarts => 0, pending => 0, readers => 0}
    end.

%%% ---------------------------------------------------------------------
%%% HyperBEAM's device-style API: Fun(StoreOpts, Request, NodeOpts)

%% @doc Device-style start: as start/1.
-spec start(store(), map(), map()) -> {ok, store()} | error().
start(Opts, _Req, _NodeOpts) -> start(Opts).

%% @doc Device-style stop: as stop/1.
-spec stop(store(), map(), map()) -> ok.
stop(Opts, _Req, _NodeOpts) -> stop(Opts).

%% @doc Device-style reset: as reset/1.
-spec reset(store(), map(), map()) -> ok | error() | failure().
reset(Opts, _Req, _NodeOpts) -> dev(reset(Opts)).

%% @doc `#{<<"read">> => Path}': `{ok, Value}' for a value, `{composite,
%% Children}' (sorted names) for a group, explicit or implicit, and
%% `{error, not_found}' otherwise.  Links are followed as by read/2.
-spec read(store(), map(), map()) ->
          {ok, binary()} | {composite, [binary()]} | error() | failure().
read(Opts, #{<<"read">> := Path}, _NodeOpts) ->
    dev(dev_read(Opts, Path, 2));
read(_, _, _) ->
    {error, {bad_argument, request}}.

%% HyperBEAM's store manager (hb_store) takes `{failure, Reason}' for "try
%% again": it stops the store, starts it and calls once more before it
%% moves on to the next store, where `{error, Reason}' moves on at once.
%% A port that died under the call (a write's outcome unknown, a read
%% that failed again on the new port), a call that timed out, a server
%% that went away meanwhile: the store serves again within milliseconds,
%% so these are failures.  Every other error (a bad argument, a read-only
%% store, a key too long) stays `{error, Reason}': calling again would not
%% change it.  The classic API answers SPEC's `{error, Reason}' for all.
dev({error, {port_exit, _} = Why}) -> {failure, Why};
dev({error, timeout}) -> {failure, timeout};
dev({error, not_started}) -> {failure, not_started};
dev(Result) -> Result.

%% A value is the common case: one round trip.  Otherwise the type says
%% whether it is a group; a concurrent write between the calls can turn it
%% into a value, so look again (a bounded number of times).
dev_read(Opts, Path, Tries) ->
    case read(Opts, Path) of
        {ok, _} = Found ->
            Found;
        not_found ->
            case type(Opts, Path) of
                composite ->
                    case list(Opts, Path) of
                        {ok, Children} -> {composite, Children};
                        {error, _} = E -> E
                    end;
                simple when Tries > 0 -> dev_read(Opts, Path, Tries - 1);
                simple -> {error, not_found};
                not_found -> {error, not_found};
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    end.

%% @doc `#{<<"type">> => Path}': `{ok, simple | composite}' or
%% `{error, not_found}'.
-spec type(store(), map(), map()) -> {ok, simple | composite} | error() | failure().
type(Opts, #{<<"type">> := Path}, _NodeOpts) ->
    case type(Opts, Path) of
        not_found -> {error, not_found};
        {error, _} = E -> dev(E);
        T -> {ok, T}
    end;
type(_, _, _) ->
    {error, {bad_argument, request}}.

%% @doc `#{<<"group">> => Path}': makes Path a group.
-spec group(store(), map(), map()) -> ok | error() | failure().
group(Opts, #{<<"group">> := Path}, _NodeOpts) -> dev(make_group(Opts, Path));
group(_, _, _) -> {error, {bad_argument, request}}.

%% @doc `#{New => Existing, ...}': makes every New a link to its Existing,
%% in one atomic commit.
-spec link(store(), map(), map()) -> ok | error() | failure().
link(Opts, Req, _NodeOpts) when is_map(Req), map_size(Req) > 0 ->
    dev(write_many(Opts, [{make_link, key_arg(Existing), key_arg(New)}
                          || {New, Existing} <- maps:to_list(Req)]));
link(_, _, _) ->
    {error, {bad_argument, request}}.

%% @doc `#{<<"resolve">> => Path}': `{ok, ResolvedPath}'.
-spec resolve(store(), map(), map()) -> {ok, binary()} | error() | failure().
resolve(Opts, #{<<"resolve">> := Path}, _NodeOpts) ->
    case resolve(Opts, Path) of
        B when is_binary(B) -> {ok, B};
        E -> dev(E)
    end;
resolve(_, _, _) ->
    {error, {bad_argument, request}}.

%% @doc `#{<<"match">> => [{Key, Path}] | #{Key => Path}}': `{ok, IDs}',
%% the IDs whose every Key child is a link to its Path (see match/2).  A
%% Key is one segment (a binary without `/').
%%
%% Any other map is HyperBEAM's own form (`hb_store:match/3' passes the
%% pattern map itself): `#{Key => Value}' with each Value as HyperBEAM's
%% cache writes a field, `<<"link:", Path/binary>>' for a link to Path and
%% anything else for a value of exactly those bytes (in hb_store_lmdb's
%% format the bytes are read as that format reads them, so `<<"group">>'
%% is a group marker).  Answers `{ok, IDs}', or `{error, not_found}' when
%% no ID matches, as hb_store_lmdb does.
-spec match(store(), map(), map()) -> {ok, [binary()]} | error() | failure().
match(Opts, #{<<"match">> := Pairs}, NodeOpts) when is_map(Pairs) ->
    match(Opts, #{<<"match">> => maps:to_list(Pairs)}, NodeOpts);
match(Opts, #{<<"match">> := Pairs}, _NodeOpts) when is_list(Pairs) ->
    %% a Key is one segment: the child's name below an ID
    case match_keys(Pairs) of
        true -> dev(match(Opts, Pairs));
        false -> {error, {bad_argument, match}}
    end;
match(Opts, Pattern, _NodeOpts) when is_map(Pattern), map_size(Pattern) > 0 ->
    case value_pairs(maps:to_list(Pattern), []) of
        {ok, Pairs} ->
            case call(Opts, read, {match_values, Pairs}) of
                {ok, []} -> {error, not_found};
                Result -> dev(Result)
            end;
        error ->
            {error, {bad_argument, match}}
    end;
match(_, _, _) ->
    {error, {bad_argument, request}}.

%% HyperBEAM's pattern: each key one segment, each value bytes (as
%% hb_util:bin makes them: binaries, atoms, integers, strings).
value_pairs([], Acc) ->
    {ok, lists:reverse(Acc)};
value_pairs([{K, V} | T], Acc) ->
    case {segment(K), bytes(V)} of
        {{ok, KB}, {ok, VB}} when KB =/= <<>> ->
            case binary:match(KB, <<"/">>) of
                nomatch -> value_pairs(T, [{KB, VB} | Acc]);
                _ -> error
            end;
        _ ->
            error
    end.

bytes(B) when is_binary(B) -> {ok, B};
bytes(A) when is_atom(A) -> {ok, atom_to_binary(A)};
bytes(I) when is_integer(I) -> {ok, integer_to_binary(I)};
bytes(L) when is_list(L) ->
    try {ok, iolist_to_binary(L)} catch error:badarg -> error end;
bytes(_) -> error.

%% A proper list of {Key, _}, each Key one segment.
match_keys([{K, _} | T]) when is_binary(K) ->
    binary:match(K, <<"/">>) =:= nomatch andalso match_keys(T);
match_keys([]) -> true;
match_keys(_) -> false.

%% An empty request is refused, as a classic write/3 with a map for a path
%% would be.
dev_write(_Opts, Req) when Req =:= #{} ->
    {error, {bad_argument, request}};
dev_write(Opts, Req) ->
    case dev_write_ops(maps:to_list(Req), <<>>, []) of
        {ok, Ops} -> write_many(Opts, Ops);
        {error, _} = E -> E
    end.

%% A map value is a group: its marker, then its children below it.
dev_write_ops([], _Prefix, Acc) ->
    {ok, lists:reverse(Acc)};
dev_write_ops([{K, V} | T], Prefix, Acc) ->
    case key_path(K) of
        {ok, P0} when Prefix =/= <<>> ->
            case normalise(P0) of
                %% "m/" would land on the group itself
                <<>> -> {error, empty_path};
                _ -> dev_write_op(V, T, <<Prefix/binary, "/", P0/binary>>, Prefix, Acc)
            end;
        {ok, P0} ->
            dev_write_op(V, T, P0, Prefix, Acc);
        error ->
            {error, {bad_argument, path}}
    end.

dev_write_op(V, T, P, Prefix, Acc) ->
    case V of
        #{} ->
            case dev_write_ops(maps:to_list(V), P, [{make_group, P} | Acc]) of
                {ok, Sub} -> dev_write_ops(T, Prefix, lists:reverse(Sub));
                E -> E
            end;
        _ ->
            dev_write_ops(T, Prefix, [{write, P, V} | Acc])
    end.

%% The bounds as HyperBEAM's hb_store_utils:list_request_bounds reads
%% them: `from' a name or `none', `limit' a count (digits too), `all' or
%% `batch' (every child), `direction' asc or desc as atom or binary.  A
%% limit of 0 is no children (list/3's own 0 means no limit).
dev_list(Opts, #{<<"list">> := Path} = Req) ->
    Dir = case maps:get(<<"direction">>, Req, <<"asc">>) of
              <<"desc">> -> desc;
              desc -> desc;
              <<"asc">> -> asc;
              asc -> asc;
              _ -> bad
          end,
    From = case maps:get(<<"from">>, Req, undefined) of
               none -> undefined;
               <<"none">> -> undefined;
               F -> F
           end,
    case dev_limit(maps:get(<<"limit">>, Req, undefined)) of
        0 ->
            %% nothing to list, but the request is checked as any other
            case list(Opts, Path, dev_list_opts(From, 1, Dir)) of
                {ok, _} -> {ok, []};
                E -> E
            end;
        Limit ->
            list(Opts, Path, dev_list_opts(From, Limit, Dir))
    end;
dev_list(_, _) ->
    {error, {bad_argument, request}}.

dev_list_opts(From, Limit, Dir) ->
    maps:filter(fun(_, V) -> V =/= undefined end,
                #{from => From, limit => Limit, direction => Dir}).

%% A limit may arrive as digits from an HTTP request; anything else that
%% is not a count is left for list/3 to refuse.
dev_limit(all) -> undefined;
dev_limit(batch) -> undefined;
dev_limit(<<"all">>) -> undefined;
dev_limit(<<"batch">>) -> undefined;
dev_limit(L) when is_binary(L) ->
    try binary_to_integer(L) catch error:badarg -> L end;
dev_limit(L) ->
    L.

%%% ---------------------------------------------------------------------
%%% internals

call({hyper_lmdb_reader, Ref, Timeout}, read, Req) ->
    hyper_lmdb_server:reader_request(Ref, Req, Timeout);
call({hyper_lmdb_reader, _, _}, _, _) ->
    {error, {bad_argument, reader}};
call(Opts, Kind, Req) ->
    case server(Opts) of
        {ok, Ref} ->
            case hyper_lmdb_server:request(Ref, Kind, Req, timeout(Opts)) of
                {error, not_started} -> call_again(Opts, Kind, Req, 3);
                Result -> Result
            end;
        {error, not_started} ->
            %% the server found was stopping or failed to open meanwhile
            call_again(Opts, Kind, Req, 3);
        {error, _} = E ->
            E
    end.

%% The server we found had died (killed, or stopped under us): start the
%% store again and send the call once more.  A few times: a stop/1 from
%% elsewhere can come between our start and our call again.
call_again(Opts, Kind, Req, Tries) ->
    {ok, Name} = name(Opts),  % (server/1 found it by this name)
    ok = hyper_lmdb_server:forget(Name),
    case start(Opts, any) of
        {ok, #{<<"pid">> := Pid}} ->
            case started(Name, Pid) of
                {ok, Ref} ->
                    case hyper_lmdb_server:request(Ref, Kind, Req, timeout(Opts)) of
                        {error, not_started} when Tries > 1 ->
                            call_again(Opts, Kind, Req, Tries - 1);
                        Result ->
                            Result
                    end;
                {error, not_started} when Tries > 1 ->
                    call_again(Opts, Kind, Req, Tries - 1);
                {error, _} = E ->
                    E
            end;
        {error, _} = E ->
            E
    end.

%% How to reach the running store, started if need be.
server(Opts) ->
    case name(Opts) of
        {ok, Name} ->
            case hyper_lmdb_server:find(Name) of
                {ok, Ref} ->
                    {ok, Ref};
                error ->
                    case start(Opts, any) of
                        {ok, #{<<"pid">> := Pid}} -> started(Name, Pid);
                        {error, _} = E -> E
                    end
            end;
        error ->
            {error, {bad_option, <<"name">>}}
    end.

%% A server another caller is still starting publishes its port once it
%% opened it (after its init, which may wait for the directory's lock,
%% tens of seconds at worst); a call to it returns only then.
started(Name, Pid) ->
    case hyper_lmdb_server:find(Name) of
        {ok, Ref} ->
            {ok, Ref};
        error ->
            try hyper_lmdb_server:port_info(Pid, ?OPEN_WAIT) of
                _ -> case hyper_lmdb_server:find(Name) of
                         {ok, Ref} -> {ok, Ref};
                         error -> {error, not_started}
                     end
            catch
                %% It could not open the directory (another node holds it,
                %% say, after the 40 s the port waits for it): that is the
                %% answer, for every caller that waited on this start,
                %% rather than each starting the store again and waiting
                %% as long once more.
                exit:{{shutdown, {open_failed, _, _} = Why}, _} -> {error, Why};
                exit:_ -> {error, not_started}
            end
    end.

name(#{<<"name">> := N}) when is_binary(N), N =/= <<>> -> {ok, N};
name(#{<<"name">> := N}) when is_list(N), N =/= [] ->
    try unicode:characters_to_binary(N) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    catch
        _:_ -> error
    end;
name(_) -> error.

timeout(Opts) when is_map(Opts) ->
    case maps:get(<<"timeout">>, Opts, ?DEFAULT_TIMEOUT) of
        T when is_integer(T), T > 0, T =< 16#ffffffff; T =:= infinity -> T;  % (a receive's bound)
        _ -> ?DEFAULT_TIMEOUT
    end;
timeout(_) ->
    ?DEFAULT_TIMEOUT.

with_path(Path, Fun) ->
    case to_path(Path) of
        {ok, P} -> Fun(P);
        error -> {error, {bad_argument, path}}
    end.

with_value(Opts, Value, Fun) ->
    Max = case Opts of
              #{<<"max-value-size">> := M} when is_integer(M), M > 0 -> M;
              _ -> ?DEFAULT_MAX_VALUE
          end,
    case to_value(Value) of
        {ok, V} when byte_size(V) > Max -> {error, {too_large, byte_size(V)}};
        {ok, V} -> Fun(V);
        error -> {error, {bad_argument, value}}
    end.

to_value(V) when is_binary(V) -> {ok, V};
to_value(V) when is_list(V) ->
    try {ok, iolist_to_binary(V)}
    catch error:_ -> error
    end;
to_value(_) -> error.

%% A path as one binary (the port normalises it).  A flat printable list
%% is a string; any other list is a list of segments.
to_path(P) when is_binary(P) -> {ok, P};
to_path([]) -> {ok, <<>>};
to_path(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) of
        true -> segment(L);
        false -> join(L, [])
    end;
to_path(_) -> error.

%% A key of a device-style request map: a path, or an atom or integer
%% naming one segment (hb_store_lmdb takes them through hb_path:to_binary).
key_path(A) when is_atom(A); is_integer(A) -> segment(A);
key_path(P) -> to_path(P).

key_arg(K) ->
    case key_path(K) of
        {ok, B} -> B;
        error -> K  % for write_many to refuse as any bad path
    end.

join([], Acc) ->
    {ok, iolist_to_binary(lists:join($/, lists:reverse(Acc)))};
join([S | T], Acc) ->
    case segment(S) of
        {ok, B} -> join(T, [B | Acc]);
        error -> error
    end;
join(_, _) ->
    error.

segment(B) when is_binary(B) -> {ok, B};
segment(A) when is_atom(A) -> {ok, atom_to_binary(A)};
segment(I) when is_integer(I) -> {ok, integer_to_binary(I)};
segment(L) when is_list(L) ->
    try unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    catch
        _:_ -> error
    end;
segment(_) -> error.

%% A proper list of things segment/1 takes.
valid_segments([S | T]) -> segment(S) =/= error andalso valid_segments(T);
valid_segments([]) -> true;
valid_segments(_) -> false.

%% A list of segments, as opposed to a string.
segments(L) ->
    L =:= [] orelse not io_lib:printable_unicode_list(L).

normalise(B) ->
    iolist_to_binary(lists:join($/, binary:split(B, <<"/">>, [global, trim_all]))).

%% The common case, checked without building a new list.
all_binaries([P | T]) when is_binary(P) -> all_binaries(T);
all_binaries([]) -> true;
all_binaries(_) -> false.

paths([], Acc) -> {ok, lists:reverse(Acc)};
paths([P | T], Acc) ->
    case to_path(P) of
        {ok, B} -> paths(T, [B | Acc]);
        error -> {error, {bad_argument, path}}
    end;
paths(_, _) -> {error, {bad_argument, paths}}.

ops(_Opts, [], Acc) -> {ok, lists:reverse(Acc)};
ops(Opts, [Op | T], Acc) ->
    case op(Opts, Op) of
        {ok, E} -> ops(Opts, T, [E | Acc]);
        {error, _} = Err -> Err
    end;
ops(_, _, _) -> {error, {bad_argument, ops}}.

op(Opts, {write, P, V}) ->
    with_path(P, fun(B) -> with_value(Opts, V, fun(Bin) -> {ok, {write, B, Bin}} end) end);
op(_, {make_link, E, N}) ->
    with_path(E, fun(BE) -> with_path(N, fun(BN) -> {ok, {make_link, BE, BN}} end) end);
op(_, {make_group, P}) ->
    with_path(P, fun(B) -> {ok, {make_group, B}} end);
op(_, {delete, P}) ->
    with_path(P, fun(B) -> {ok, {delete, B}} end);
op(_, _) ->
    {error, {bad_argument, op}}.

is_list_opts(From, Limit, Dir) ->
    (From =:= undefined orelse is_binary(From))
        andalso is_integer(Limit) andalso Limit >= 0 andalso Limit < (1 bsl 64)
        andalso (Dir =:= asc orelse Dir =:= desc).
