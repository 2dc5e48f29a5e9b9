%%% @doc The gen_server that owns one store's port program.
%%%
%%% One server per store directory.  Callers send requests through
%%% `gen_server:call/3'; the server gives each an id, writes it to the port
%%% (the wire protocol is documented in port_src/protocol.h) and keeps the
%%% caller in a map from id to caller.  It never waits for the port inside
%%% a call: replies come back as port messages and are routed with
%%% `gen_server:reply/2', so many requests are in flight at once and the
%%% port can batch the writes among them into one commit.
%%%
%%% If the port dies the server restarts it at once: reads that were in
%%% flight are sent again (once), writes whose outcome is unknown are
%%% answered `{error, {port_exit, Reason}}' (in `async' mode, where callers
%%% were already answered, they are replayed in order instead).  A watchdog
%%% kills a port that has answered nothing for `watchdog' ms while requests
%%% were waiting, and the same restart follows.
%%% @end
-module(hyper_lmdb_server).
-behaviour(gen_server).

-export([start_link/1, request/4, stop/2, validate/1, registry/0, lookup/1,
         inject_fault/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(REGISTRY, hyper_lmdb_registry).
-define(HELLO_TIMEOUT, 60000).
-define(PROTOCOL_VERSION, 1).
%% Restart policy: up to ?FREE_RESTARTS restarts within a second happen at
%% once; beyond that each waits twice as long (at most a second); more
%% than ?MAX_RESTARTS within ?RESTART_WINDOW ms and the server gives up.
-define(FREE_RESTARTS, 5).
-define(MAX_RESTARTS, 100).
-define(RESTART_WINDOW, 10000).
%% Unconfirmed async writes kept before writers wait for confirmation.
-define(ASYNC_MAX, 10000).

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
    max_value = (1 bsl 30) - (1 bsl 16) :: pos_integer(),
    timeout = 60000 :: timeout(),
    watchdog = 30000 :: pos_integer() | infinity,
    fault_injection = false :: boolean()
}).

-record(state, {
    cfg :: #cfg{},
    port :: port() | undefined,
    format :: atom(),
    next_id = 1 :: pos_integer(),
    %% Id => {From | async, Kind, Request, Tries}
    pending = #{} :: #{pos_integer() => pending()},
    async_count = 0 :: non_neg_integer(),
    %% when the port last answered, or was given work while idle
    last_progress = 0 :: integer(),
    restarts = 0 :: non_neg_integer(),
    recent_restarts = [] :: [integer()],
    last_exit :: term()
}).

-type pending() :: {gen_server:from() | async, read | write | control, tuple(),
                    non_neg_integer()}.

-type cfg() :: #cfg{}.
-export_type([cfg/0]).

%%% ---------------------------------------------------------------------
%%% API (used by hyper_lmdb)

%% @doc Starts a server for a validated configuration (from validate/1).
-spec start_link(cfg()) -> {ok, pid()} | {error, term()}.
start_link(Cfg) ->
    gen_server:start_link(?MODULE, Cfg, []).

%% @doc Sends one request and waits at most Timeout ms for its answer;
%% never raises.
-spec request(pid(), read | write | control, tuple(), timeout()) -> term().
request(Pid, Kind, Req, Timeout) ->
    try
        gen_server:call(Pid, {req, Kind, Req}, Timeout)
    catch
        exit:{timeout, _} -> {error, timeout};
        exit:{noproc, _} -> {error, not_started};
        exit:{normal, _} -> {error, not_started};
        exit:{shutdown, _} -> {error, not_started};
        exit:{Reason, _} -> {error, {store_down, Reason}}
    end.

%% @doc Test hook: arms a fault in the port (crash_before_commit,
%% crash_after_commit, crash_mid_reply, hang).  The port refuses it unless
%% the store was started with `<<"fault-injection">> => true'.
-spec inject_fault(pid(), atom()) -> term().
inject_fault(Pid, Point) ->
    %% `control': neither retried after a crash nor acknowledged early
    request(Pid, control, {fault, Point}, 5000).

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
    try ets:lookup(?REGISTRY, Name) of
        [{_, Pid}] ->
            case is_process_alive(Pid) of
                true -> {ok, Pid};
                false -> error
            end;
        [] ->
            error
    catch
        error:badarg -> error
    end.

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

name(N) when is_binary(N), N =/= <<>> ->
    case binary:match(N, <<0>>) of
        nomatch -> {ok, N};
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

option(_, _, {error, _} = E) -> E;
option(K, V, {ok, C}) ->
    case set(K, V, C) of
        {ok, C2} -> {ok, C2};
        error -> {error, {bad_option, K}}
    end.

set(<<"store-module">>, _, C) -> {ok, C};
set(<<"pid">>, _, C) -> {ok, C};
set(<<"capacity">>, V, C) when is_integer(V), V >= 1 bsl 20 -> {ok, C#cfg{capacity = V}};
set(<<"durability">>, V, C) ->
    case to_bin(V) of
        D when D =:= <<"commit">>; D =:= <<"fsync">>; D =:= <<"async">> ->
            {ok, C#cfg{durability = D}};
        _ ->
            error
    end;
set(<<"sync-interval">>, V, C) when is_integer(V), V > 0 -> {ok, C#cfg{sync_interval = V}};
set(<<"format">>, V, C) ->
    case to_bin(V) of
        F when F =:= <<"tagged">>; F =:= <<"hb_store_lmdb">> -> {ok, C#cfg{format = F}};
        _ -> error
    end;
set(<<"read-only">>, V, C) when is_boolean(V) -> {ok, C#cfg{read_only = V}};
set(<<"max-link-hops">>, V, C) when is_integer(V), V >= 0 -> {ok, C#cfg{max_hops = V}};
set(<<"max-readers">>, V, C) when is_integer(V), V > 0 -> {ok, C#cfg{max_readers = V}};
set(<<"read-ahead">>, V, C) when is_boolean(V) -> {ok, C#cfg{read_ahead = V}};
set(<<"max-value-size">>, V, C) when is_integer(V), V > 0, V =< (1 bsl 30) - (1 bsl 16) ->
    {ok, C#cfg{max_value = V}};
set(<<"timeout">>, V, C) when is_integer(V), V > 0; V =:= infinity -> {ok, C#cfg{timeout = V}};
set(<<"watchdog">>, V, C) when is_integer(V), V > 0; V =:= infinity -> {ok, C#cfg{watchdog = V}};
set(<<"fault-injection">>, V, C) when is_boolean(V) -> {ok, C#cfg{fault_injection = V}};
set(_, _, _) -> error.

to_bin(V) when is_binary(V) -> V;
to_bin(V) when is_atom(V) -> atom_to_binary(V);
to_bin(_) -> undefined.

%%% ---------------------------------------------------------------------
%%% gen_server

%% @private
-spec init(cfg()) -> {ok, #state{}} | {stop, term()}.
init(Cfg = #cfg{name = Name}) ->
    process_flag(trap_exit, true),
    case ets:insert_new(?REGISTRY, {Name, self()}) of
        false ->
            case lookup(Name) of
                {ok, Pid} ->
                    {stop, {shutdown, {already_started, Pid}}};
                error ->
                    %% A dead server's entry: take it over.
                    ets:insert(?REGISTRY, {Name, self()}),
                    open(Cfg)
            end;
        true ->
            open(Cfg)
    end.

open(Cfg) ->
    case open_port(Cfg) of
        {ok, Port, Format} ->
            watchdog_tick(Cfg),
            {ok, #state{cfg = Cfg, port = Port, format = Format, last_progress = now_ms()}};
        {error, Reason} ->
            ets:delete_object(?REGISTRY, {Cfg#cfg.name, self()}),
            %% {shutdown, _}: an expected failure, reported to the caller
            %% as a value, not logged as a crash.
            {stop, {shutdown, Reason}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}} | {noreply, #state{}} | {stop, normal, ok, #state{}}.
handle_call({req, Kind, Req}, From, S = #state{cfg = Cfg}) ->
    case Kind =:= write andalso Cfg#cfg.durability =:= <<"async">>
             andalso S#state.async_count < ?ASYNC_MAX of
        true ->
            %% async: acknowledged once queued; kept until the port
            %% confirms it, to be replayed if the port dies first.  When
            %% too many are unconfirmed, writers wait for their commit.
            {reply, ok, send(async, Kind, Req, S)};
        false ->
            {noreply, send(From, Kind, Req, S)}
    end;
handle_call(stop, _From, S) ->
    {stop, normal, ok, S};
handle_call(port_info, _From, S = #state{port = Port}) ->
    {reply, #{port => Port, os_pid => os_pid(Port), restarts => S#state.restarts,
              pending => map_size(S#state.pending), format => S#state.format,
              last_exit => S#state.last_exit}, S};
handle_call(_, _From, S) ->
    {reply, {error, {bad_argument, request}}, S}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Port, {data, Bin}}, S0 = #state{port = Port, pending = P}) ->
    {Id, Result} = binary_to_term(Bin),
    S = S0#state{last_progress = now_ms()},
    case maps:take(Id, P) of
        {{async, _, _, _}, P2} ->
            case Result of
                ok -> ok;
                _ -> logger:error("hyper_lmdb ~s: async write failed: ~p",
                                  [S#state.cfg#cfg.name, Result])
            end,
            {noreply, S#state{pending = P2, async_count = S#state.async_count - 1}};
        {{From, _, _, _}, P2} ->
            gen_server:reply(From, Result),
            {noreply, S#state{pending = P2}};
        error ->
            {noreply, S}
    end;
handle_info(watchdog, S = #state{cfg = Cfg, port = Port, pending = P}) ->
    watchdog_tick(Cfg),
    case map_size(P) > 0 andalso now_ms() - S#state.last_progress > Cfg#cfg.watchdog of
        true ->
            %% Requests wait and nothing has come back for too long: the
            %% port is hung.  Kill it hard and restart as after a crash.
            logger:error("hyper_lmdb ~s: port silent for ~b ms with ~b requests waiting; killing it",
                         [Cfg#cfg.name, now_ms() - S#state.last_progress, map_size(P)]),
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
handle_info({'EXIT', _, _}, S) ->
    %% A port we already replaced.  (Our parent's exit is handled by
    %% gen_server itself, which calls terminate/2.)
    {noreply, S};
handle_info(_, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, S = #state{cfg = Cfg, port = Port}) ->
    catch port_close(Port),
    %% Callers still waiting hear why instead of hanging.
    fail_all(S#state.pending, not_started),
    catch ets:delete_object(?REGISTRY, {Cfg#cfg.name, self()}),
    ok.

%%% ---------------------------------------------------------------------
%%% the port

send(From, Kind, Req, S) ->
    send(From, Kind, Req, 0, S).

send(From, Kind, Req, Tries, S = #state{port = Port, next_id = Id, pending = P}) ->
    try
        port_command(Port, term_to_binary(erlang:insert_element(1, Req, Id)))
    catch
        %% The port is already closed; its 'EXIT' is on its way, and
        %% port_died/2 settles this request with the others.
        error:badarg -> ok
    end,
    S1 = case map_size(P) of
             0 -> S#state{last_progress = now_ms()};
             _ -> S
         end,
    Async = case From of async -> 1; _ -> 0 end,
    S1#state{next_id = Id + 1, pending = P#{Id => {From, Kind, Req, Tries}},
             async_count = S#state.async_count + Async}.

now_ms() ->
    erlang:monotonic_time(millisecond).

watchdog_tick(#cfg{watchdog = infinity}) -> ok;
watchdog_tick(#cfg{watchdog = W}) ->
    _ = erlang:send_after(max(10, W div 4), self(), watchdog),
    ok.

kill_port(Port) ->
    case os_pid(Port) of
        undefined -> ok;
        OsPid -> _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)), ok
    end,
    catch port_close(Port),
    ok.

port_args(#cfg{dir = Dir} = C) ->
    ["--dir", Dir,
     "--map-size", integer_to_list(C#cfg.capacity),
     "--max-readers", integer_to_list(C#cfg.max_readers),
     "--read-ahead", bool(C#cfg.read_ahead),
     "--read-only", bool(C#cfg.read_only),
     "--max-hops", integer_to_list(C#cfg.max_hops),
     "--durability", binary_to_list(C#cfg.durability),
     "--sync-interval", integer_to_list(C#cfg.sync_interval),
     "--format", case C#cfg.format of auto -> "auto"; F -> binary_to_list(F) end,
     "--fault-injection", bool(C#cfg.fault_injection)].

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
                         [{packet, 4}, binary, exit_status, use_stdio,
                          {args, port_args(Cfg)},
                          %% a 64 MiB value must not mark the port busy
                          {busy_limits_port, {256 bsl 20, 512 bsl 20}}])
    of
        Port -> hello(Port)
    catch
        error:Why -> {error, {port_start, Why, Exe}}
    end.

hello(Port) ->
    receive
        {Port, {data, Bin}} ->
            case binary_to_term(Bin) of
                {0, {hello, ?PROTOCOL_VERSION, Format, _MapSize}} ->
                    {ok, Port, Format};
                {0, {error, Reason}} ->
                    wait_exit(Port),
                    {error, Reason};
                Other ->
                    catch port_close(Port),
                    {error, {bad_hello, Other}}
            end;
        {Port, {exit_status, Status}} ->
            {error, exit_reason(Status)}
    after ?HELLO_TIMEOUT ->
        catch port_close(Port),
        {error, {port_start, timeout}}
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

%% The port is gone: restart it, then settle what was in flight.  Reads
%% are sent again, once (a read that kills the port twice is answered with
%% the error); writes whose commit we cannot know are answered with an
%% error, except async writes, which are replayed in order.
port_died(Reason, S = #state{cfg = Cfg, pending = P}) ->
    Now = now_ms(),
    Recent = [T || T <- S#state.recent_restarts, Now - T < ?RESTART_WINDOW],
    logger:warning("hyper_lmdb ~s: port exited (~p), restarting", [Cfg#cfg.name, Reason]),
    S1 = S#state{port = undefined, recent_restarts = [Now | Recent], async_count = 0,
                 restarts = S#state.restarts + 1, last_exit = Reason, pending = #{}},
    case length(Recent) >= ?MAX_RESTARTS of
        true ->
            fail_all(P, {port_exit, Reason}),
            {stop, {port_restart_limit, Reason}, S1};
        false ->
            timer:sleep(backoff([T || T <- Recent, Now - T < 1000])),
            case open_port(Cfg) of
                {ok, Port, Format} ->
                    S2 = S1#state{port = Port, format = Format, last_progress = now_ms()},
                    {noreply, resend(lists:sort(maps:to_list(P)), Reason, S2)};
                {error, Why} ->
                    fail_all(P, {port_exit, Reason}),
                    {stop, {port_restart_failed, Why}, S1}
            end
    end.

backoff(LastSecond) when length(LastSecond) < ?FREE_RESTARTS -> 0;
backoff(LastSecond) -> min(1000, 10 bsl (length(LastSecond) - ?FREE_RESTARTS)).

resend([], _Reason, S) ->
    S;
resend([{_, {async, write, Req, Tries}} | T], Reason, S) ->
    resend(T, Reason, send(async, write, Req, Tries + 1, S));
resend([{_, {From, read, Req, 0}} | T], Reason, S) ->
    resend(T, Reason, send(From, read, Req, 1, S));
resend([{_, {From, _, _, _}} | T], Reason, S) ->
    gen_server:reply(From, {error, {port_exit, Reason}}),
    resend(T, Reason, S).

%% Answers every waiting caller with {error, Error}.
fail_all(P, Error) ->
    maps:foreach(fun(_, {async, _, _, _}) -> ok;
                    (_, {From, _, _, _}) -> gen_server:reply(From, {error, Error})
                 end, P).
