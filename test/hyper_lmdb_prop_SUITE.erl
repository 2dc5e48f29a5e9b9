%%% PropEr state-machine test: random sequences of every classic
%%% operation and the extensions (write, read, delete, make_group,
%%% make_link, list/2, list/3, type, resolve, read_many, write_many, reset)
%%% against the pure model in hyper_lmdb_model (SPEC sections 2-3), with
%%% `kill -9' of the port program, injected crashes just before and just
%%% after a commit, and stop/start of the whole store mixed in.  After each
%%% of those, and at the end of every sequence, the whole store (scan/2:
%%% every key as stored) must equal the model.
%%%
%%% Each sequence opens a fresh store directory (its first command) with a
%%% random configuration: format tagged (explicit or by default) or
%%% hb_store_lmdb (where the values <<"group">> and <<"link:T">> are a
%%% group and a link), durability commit, async (read-your-writes, replay
%%% into a restarted port) or fsync, max-link-hops default or tiny.  Paths
%%% come from a small alphabet so links, prefixes, loops and collisions are
%%% frequent; rare long segments (254, 508 and 4000 bytes) take paths and
%%% keys across the 511-byte key limit and the 4096-byte path limit, also
%%% through links that shorten them.  Paths are given as binaries (clean
%%% or with extra slashes), lists of segments (atoms, strings, integers,
%%% binaries) and flat strings.  On failure PropEr shrinks and the case
%%% fails with the shrunk command sequence.
%%%
%%% An injected crash right after an async commit: the new port reports
%%% the last request committed (recorded in the commit in the tagged
%%% format, beside the store in hb_store_lmdb's) and the server does not
%%% replay it (a replay is not always idempotent: a write after a link it
%%% made lands elsewhere the second time).
%%%
%%% HYPER_LMDB_PROPTEST_N sets the number of sequences (default 300).
-module(hyper_lmdb_prop_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("proper/include/proper.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, model_matches_store/1]).
-export([initial_state/0, command/1, precondition/2, next_state/3, postcondition/3]).
-export([open_store/3, kill_port/1, restart/2, crash/3, dump/1]).
%% the API under test, called through wrappers that turn an exception
%% into a value (see ?SAFE)
-export([write/3, read/2, delete/2, make_group/2, make_link/3, list/2, list/3, type/2,
         resolve/2, read_many/2, write_many/2, reset/1]).

%% An exception as a value: PropEr 1.2 crashes on one (it calls
%% erlang:get_stacktrace/0, gone since OTP 23) instead of shrinking.
-define(SAFE(Call), try Call catch C:E -> {raised, C, E} end).

-define(DEFAULT_N, 300).
-define(DEFAULT_HOPS, 1000).
%% PropEr's size bounds a sequence's length (default 42): longer sequences
%% let chains, loops and overwrites build up
-define(MAX_SIZE, 150).


suite() -> [{timetrap, {minutes, 10}}].
all() -> [model_matches_store].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    %% a restart after each kill or injected crash is expected here, and
    %% so is an async write the port refuses after it was answered `ok'
    %% (the model knows it changes nothing): not worth a log line
    ok = logger:set_module_level(hyper_lmdb_server, critical),
    Root = filename:join(?config(priv_dir, Config), "prop"),
    ok = filelib:ensure_path(Root),
    persistent_term:put({?MODULE, root}, Root),
    Config.

end_per_suite(_Config) ->
    _ = persistent_term:erase({?MODULE, root}),
    _ = logger:unset_module_level(hyper_lmdb_server),
    ok.

%% Every command and configuration, injected crashes before and after a
%% commit included.
model_matches_store(_Config) ->
    run_property(numtests()).

numtests() ->
    case os:getenv("HYPER_LMDB_PROPTEST_N") of
        false -> ?DEFAULT_N;
        "" -> ?DEFAULT_N;
        V -> list_to_integer(V)
    end.

run_property(N) ->
    %% about 0.15 s a sequence; leave ample room for shrinking
    ct:timetrap({seconds, max(600, N)}),
    T0 = erlang:monotonic_time(millisecond),
    Result = proper:quickcheck(prop_model(), [{numtests, N}, {max_size, ?MAX_SIZE}, {to_file, user}]),
    T = erlang:monotonic_time(millisecond) - T0,
    case Result of
        true ->
            ct:pal("~b sequences in ~.1f s", [N, T / 1000]),
            io:format(user, "~n~b sequences in ~.1f s~n", [N, T / 1000]),
            ok;
        _ ->
            CE = proper:counterexample(),
            ct:pal("shrunk counterexample:~n~p", [CE]),
            ct:fail({counterexample, CE})
    end.

prop_model() ->
    ?FORALL(Cmds, proper_statem:commands(?MODULE),
        begin
            {History, State, Result} = proper_statem:run_commands(?MODULE, Cmds),
            %% the whole store must equal the model at the end, too, and
            %% hold nothing else (stats' entries: no key beside the data)
            {Final, FinalOk} =
                case {Result, State} of
                    {ok, #{store := S, model := M}} when is_map(S) ->
                        D = dump(S),
                        Entries = ?SAFE(maps:get(entries, hyper_lmdb:stats(S))),
                        {{D, Entries}, D =:= hyper_lmdb_model:dump(M)
                                           andalso Entries =:= length(D)};
                    _ ->
                        {none, true}
                end,
            close(State),
            ?WHENFAIL(report(Cmds, History, State, Result, Final),
                      aggregate(outcomes(Cmds, History),
                                Result =:= ok andalso FinalOk))
        end).

close(#{store := S}) when is_map(S) ->
    _ = (catch hyper_lmdb:stop(S)),
    _ = file:del_dir_r(maps:get(<<"name">>, S)),
    ok;
close(_) ->
    ok.

report(Cmds, History, State, Result, Final) ->
    Steps = proper_statem:zip(Cmds, History),
    Detail =
        case {Result, lists:reverse(Steps)} of
            {ok, _} ->
                #{final_store_and_entries => Final,
                  final_model => hyper_lmdb_model:dump(maps:get(model, State))};
            {_, [{{set, _, {call, _, open_store, _} = Call}, {_, Got}} | _]} ->
                #{call => Call, expected => a_store, got => Got};
            {_, [{{set, _, Call}, {Before, Got}} | _]} ->
                #{call => Call, expected => expected(Before, Call), got => Got};
            _ ->
                #{}
        end,
    ct:pal("result: ~p~n~p~nsteps:~n~p", [Result, Detail,
                                           [{C, R} || {{set, _, C}, {_, R}} <- Steps]]).

%% What was exercised: each command with the kind of answer it got.
%% (`unresolvable': the path ran into a link loop, the hop limit or the
%% path limit; `long': a path or key beyond a key's 511 bytes.)
outcomes(Cmds, History) ->
    [{name(Call), case unresolvable(St, Call) of
                      true -> unresolvable;
                      false -> case long(Call) of
                                   true -> {long, outcome(R)};
                                   false -> outcome(R)
                               end
                  end} || {{set, _, Call}, {St, R}} <- proper_statem:zip(Cmds, History)].

unresolvable(#{model := M}, {call, ?MODULE, F, [_, P | _]})
  when F =:= read; F =:= type; F =:= list; F =:= resolve ->
    hyper_lmdb_model:resolve(M, hyper_lmdb_model:path(P)) =:= unresolvable;
unresolvable(_, _) ->
    false.

long({call, ?MODULE, F, [_ | Args]}) when F =/= open_store ->
    lists:any(fun(P) -> byte_size(P) > 511 end, call_paths(F, Args));
long(_) ->
    false.

call_paths(F, [Ps]) when F =:= read_many -> [hyper_lmdb_model:path(P) || P <- Ps];
call_paths(F, [Ops]) when F =:= write_many -> [P || {ok, Os} <- [write_ops({call, ?MODULE, F, [x, Ops]})],
                                                   Op <- Os, P <- op_paths(Op)];
call_paths(crash, [_, Ops]) -> call_paths(write_many, [Ops]);
call_paths(F, Args) when F =:= write; F =:= read; F =:= delete; F =:= make_group; F =:= type;
                         F =:= list; F =:= resolve ->
    [hyper_lmdb_model:path(hd(Args))];
call_paths(make_link, [E, N]) -> [hyper_lmdb_model:path(E), hyper_lmdb_model:path(N)];
call_paths(_, _) -> [].

name({call, ?MODULE, list, [_, _, _]}) -> list3;
name({call, ?MODULE, open_store, [_, F, D]}) -> {open_store, F, D};
name({call, ?MODULE, crash, [_, Point, _]}) -> {crash, Point};
name({call, _, F, _}) -> F.

outcome({ok, [{_, _, _} | _]}) -> ok;                % crash
outcome({ok, L}) when is_list(L) -> case L of [] -> empty; _ -> some end;
outcome({ok, _}) -> found;
outcome({error, E}) when is_atom(E) -> E;
outcome({error, E}) -> element(1, E);
outcome({{error, E}, L}) when is_list(L) -> E;     % crash
outcome({A, L}) when is_atom(A), is_list(L) -> A;  % restart
outcome(L) when is_list(L) -> list;
outcome(B) when is_binary(B) -> path;
outcome(A) when is_atom(A) -> A;
outcome(M) when is_map(M) -> opened;
outcome(_) -> other.

%%% ---------------------------------------------------------------------
%%% generators

%% Mostly a small alphabet (an integer segment too); rarely a long one:
%% 254 bytes (two make 509, three cross 511), 508 bytes (a key with a
%% one-byte parent: 510; with "c0/": 511; with "c-x/": 512) and 4000
%% bytes (a key never; a link target, and with a little more a path
%% beyond 4096).
segment() ->
    frequency([{40, elements([a, b, c, "c-x", "c0", 7])},
               {4, ?LET(K, elements([l, l, m, h]), long_segment(K))}]).

long_segment(l) -> binary:copy(<<"l">>, 254);
long_segment(m) -> binary:copy(<<"m">>, 508);
long_segment(h) -> binary:copy(<<"h">>, 4000).

%% 1-3 segments, as a list of segments, a clean binary, a flat string or
%% a binary with extra slashes (normalised by the store).
path() ->
    ?LET({Segs, Style}, {?LET(N, frequency([{4, 1}, {4, 2}, {2, 3}]), vector(N, segment())),
                         frequency([{3, list}, {3, bin}, {1, string}, {1, messy}])},
         render(Segs, Style)).

render(Segs, list) -> Segs;
render(Segs, bin) -> hyper_lmdb_model:path(Segs);
render(Segs, string) ->
    %% (a long list would cost PropEr dearly: it walks every element)
    case hyper_lmdb_model:path(Segs) of
        B when byte_size(B) < 32 -> binary_to_list(B);
        B -> B
    end;
render(Segs, messy) ->
    iolist_to_binary(["/", lists:join("//", [hyper_lmdb_model:path([S]) || S <- Segs]), "/"]).

%% A path: mostly from the alphabet or one the sequence has used already
%% (a key, a link target or a path written to), sometimes the root (empty)
%% in one of its spellings.  K is known/1's paths as one type, built once
%% per command (PropEr builds a type in time linear in its choices).
any_path(K) -> any_path(K, 2).

any_path(none, Empty) ->
    frequency([{30, path()}, {Empty, root()}]);
any_path(KnownT, Empty) ->
    frequency([{12, path()}, {18, KnownT}, {6, below(KnownT)}, {Empty, root()}]).

%% A known path with a segment more: reaches through a known link or
%% into a known group.
below(KnownT) ->
    ?LET({P, S}, {KnownT, segment()}, <<P/binary, "/", (hyper_lmdb_model:path([S]))/binary>>).

%% Listing is most interesting where there are many children: the root.
list_path(Known) -> frequency([{3, any_path(Known, 0)}, {1, root()}]).

root() -> elements([<<>>, <<"/">>, [], <<"//">>]).

%% Values; those that look like links or groups are links and groups in
%% hb_store_lmdb's format and plain data in the tagged one.
value() ->
    frequency([{8, elements([<<"1">>, <<"2">>, <<"v">>, <<>>, <<"link:a">>, <<"link:c/b">>,
                             <<"group">>, <<"link:">>])},
               {2, elements([<<"link://c-x/">>, <<"link:a/c0">>, <<"link:/">>, <<"groups">>,
                             <<"link:b">>])},
               {1, elements([["x", <<"y">>], [<<"link:">>, "a"], ["gr", <<"oup">>]])}]).

%% Ops of write_many: an empty path (which voids the whole batch) rarely.
write_op(K) ->
    frequency([{4, {write, any_path(K, 1), value()}}, {1, {make_group, any_path(K, 1)}},
               {3, {make_link, any_path(K, 1), any_path(K, 1)}},
               {1, {delete, any_path(K, 1)}}]).

list_opts() ->
    ?LET(Opts, {oneof([none, name()]), oneof([none, choose(0, 4)]),
                oneof([none, asc, desc])},
         maps:from_list([{K, V} || {K, V} <- lists:zip([from, limit, direction],
                                                       tuple_to_list(Opts)),
                                   V =/= none])).

%% A `from': a name of the alphabet or a binary between/around them.
name() ->
    oneof([?LET(S, segment(), hyper_lmdb_model:path([S])),
           elements([<<>>, <<"b0">>, <<"c-">>, <<"c-y">>, <<"c00">>, <<"0">>, <<"z">>])]).

%% The store's max-link-hops: mostly the default, sometimes tiny, so the
%% hop limit itself is exercised.
hops() -> frequency([{6, default}, {1, elements([0, 1, 2, 3])}]).

%% tagged: the option given; default: a new store without the option
%% (tagged); children_index: tagged, with its children index (lists read
%% off it, every write keeping it); hb_store_lmdb: the option given.
format() -> frequency([{1, tagged}, {2, default}, {2, children_index}, {3, hb_store_lmdb}]).

durability() -> frequency([{4, commit}, {3, async}, {1, fsync}]).

%%% ---------------------------------------------------------------------
%%% the state machine

initial_state() -> #{store => undefined, model => undefined, seen => [], mode => undefined,
                     format => undefined}.

command(#{store := undefined}) ->
    {call, ?MODULE, open_store, [hops(), format(), durability()]};
command(#{store := S, model := M, seen := Seen}) ->
    K = case known(M, Seen) of
            [] -> none;
            Known -> elements(Known)
        end,
    %% ?LAZY: only the command chosen is built (building every choice's
    %% type for every command costs more than running it)
    frequency([
        {10, ?LAZY({call, ?MODULE, write, [S, any_path(K), value()]})},
        {10, ?LAZY({call, ?MODULE, read, [S, any_path(K)]})},
        {3, ?LAZY({call, ?MODULE, delete, [S, any_path(K)]})},
        {3, ?LAZY({call, ?MODULE, make_group, [S, any_path(K)]})},
        {8, ?LAZY({call, ?MODULE, make_link, [S, any_path(K), any_path(K)]})},
        {4, ?LAZY({call, ?MODULE, list, [S, list_path(K)]})},
        {5, ?LAZY({call, ?MODULE, list, [S, list_path(K), list_opts()]})},
        {5, ?LAZY({call, ?MODULE, type, [S, any_path(K)]})},
        {5, ?LAZY({call, ?MODULE, resolve, [S, any_path(K)]})},
        {3, ?LAZY({call, ?MODULE, read_many, [S, resize(6, list(any_path(K)))]})},
        {4, ?LAZY({call, ?MODULE, write_many, [S, resize(6, list(write_op(K)))]})},
        {1, {call, ?MODULE, reset, [S]}},
        {1, {call, ?MODULE, kill_port, [S]}},
        {1, ?LAZY({call, ?MODULE, restart, [S, boolean()]})},
        {2, ?LAZY({call, ?MODULE, crash, [S, elements([before_commit, after_commit]),
                                          resize(4, non_empty(list(write_op(K))))]})}
    ]).

precondition(#{store := undefined}, {call, _, F, _}) -> F =:= open_store;
precondition(#{model := M}, {call, _, crash, [_, _Point, Ops]}) ->
    %% the fault fires at the next commit: the batch must be one (a write
    %% the port refuses commits nothing, and would leave it armed)
    Ops =/= [] andalso element(1, hyper_lmdb_model:write(M, [model_op(Op) || Op <- Ops])) =:= ok;
precondition(_, {call, _, F, _}) -> F =/= open_store.

next_state(State, S, {call, ?MODULE, open_store, [Hops, Format, Durability]}) ->
    State#{store := S, mode := Durability, format := model_format(Format),
           model := hyper_lmdb_model:new(hops(Hops), model_format(Format))};
next_state(State = #{model := M, seen := Seen, mode := Mode}, _Res, Call) ->
    case write_ops(Call) of
        {ok, Ops} ->
            M2 = case Call of
                     {call, _, crash, [_, before_commit, _]} when Mode =/= async ->
                         M;
                     {call, _, crash, [_, before_commit, _]} ->
                         case queued(Ops) of
                             true -> element(2, hyper_lmdb_model:write(M, Ops));
                             false -> M   % waited for the port: port_exit
                         end;
                     _ ->
                         element(2, hyper_lmdb_model:write(M, Ops))
                 end,
            Paths = [P || Op <- Ops, P <- op_paths(Op), P =/= <<>>],
            State#{model := M2, seen := lists:usort(Paths ++ Seen)};
        reset ->
            State#{model := hyper_lmdb_model:new(maps:get(hops, M), maps:get(format, M))};
        none ->
            State
    end.

postcondition(_State, {call, ?MODULE, open_store, _}, Res) ->
    is_map(Res);
postcondition(State, Call, Res) ->
    try Res =:= expected(State, Call)
    catch C:E:St ->
        ct:pal("model crashed on ~p: ~p:~p~n~p", [Call, C, E, St]),
        false
    end.

%% The answer the store must give to Call in State.
expected(#{model := M, mode := Mode}, Call) ->
    P = fun hyper_lmdb_model:path/1,
    case Call of
        {call, ?MODULE, read, [_, Path]} -> hyper_lmdb_model:read(M, P(Path));
        {call, ?MODULE, read_many, [_, Ps]} -> [hyper_lmdb_model:read(M, P(X)) || X <- Ps];
        {call, ?MODULE, type, [_, Path]} -> hyper_lmdb_model:type(M, P(Path));
        {call, ?MODULE, list, [_, Path]} -> hyper_lmdb_model:list(M, P(Path), #{});
        {call, ?MODULE, list, [_, Path, O]} -> hyper_lmdb_model:list(M, P(Path), O);
        {call, ?MODULE, resolve, [_, Path]} -> hyper_lmdb_model:resolve_path(M, P(Path));
        {call, ?MODULE, reset, [_]} -> ok;
        {call, ?MODULE, kill_port, [_]} -> hyper_lmdb_model:dump(M);
        {call, ?MODULE, restart, [_, _]} -> {maps:get(format, M), hyper_lmdb_model:dump(M)};
        {call, ?MODULE, crash, [_, Point, _]} ->
            {ok, Ops} = write_ops(Call),
            {ok, M2} = hyper_lmdb_model:write(M, Ops),
            case Mode =:= async andalso queued(Ops) of
                true ->
                    %% answered once queued; replayed into the new port
                    {ok, hyper_lmdb_model:dump(M2)};
                false ->
                    %% in flight when the port died: outcome unknown to the
                    %% caller, but the store holds what was committed
                    {{error, port_exit},
                     hyper_lmdb_model:dump(case Point of before_commit -> M; after_commit -> M2 end)}
            end;
        _ ->
            {ok, Ops} = write_ops(Call),
            case Mode of
                async -> hyper_lmdb_model:async_answer(M, Ops);
                _ -> element(1, hyper_lmdb_model:write(M, Ops))
            end
    end.

%% In async durability, ops the server answers as soon as it queues them
%% (a key path longer than a key waits for the port's answer instead).
queued(Ops) ->
    lists:all(fun(P) -> byte_size(P) =< 511 end,
              [case Op of {make_link, _, N} -> N; _ -> element(2, Op) end || Op <- Ops]).

%% A write command as the model's ops (paths normalised, values binaries).
write_ops({call, ?MODULE, write, [_, P, V]}) -> {ok, [model_op({write, P, V})]};
write_ops({call, ?MODULE, delete, [_, P]}) -> {ok, [model_op({delete, P})]};
write_ops({call, ?MODULE, make_group, [_, P]}) -> {ok, [model_op({make_group, P})]};
write_ops({call, ?MODULE, make_link, [_, E, N]}) -> {ok, [model_op({make_link, E, N})]};
write_ops({call, ?MODULE, write_many, [_, Ops]}) -> {ok, [model_op(Op) || Op <- Ops]};
write_ops({call, ?MODULE, crash, [_, _, Ops]}) -> {ok, [model_op(Op) || Op <- Ops]};
write_ops({call, ?MODULE, reset, _}) -> reset;
write_ops(_) -> none.

model_op({write, P, V}) -> {write, hyper_lmdb_model:path(P), hyper_lmdb_model:value(V)};
model_op({make_link, E, N}) -> {make_link, hyper_lmdb_model:path(E), hyper_lmdb_model:path(N)};
model_op({Op, P}) -> {Op, hyper_lmdb_model:path(P)}.

op_paths({write, P, _}) -> [P];
op_paths({make_link, E, N}) -> [E, N];
op_paths({_, P}) -> [P].

%% Paths worth coming back to: every key, link target and path written,
%% and their prefixes.
known(M, Seen) ->
    Paths = Seen ++ [P || {K, Kind, T} <- hyper_lmdb_model:dump(M), P <- [K | [T || Kind =:= link]]],
    lists:usort([Pre || P <- Paths, Pre <- prefixes(hyper_lmdb_model:norm(P)), Pre =/= <<>>]).

prefixes(P) ->
    Segs = binary:split(P, <<"/">>, [global]),
    [iolist_to_binary(lists:join($/, lists:sublist(Segs, N))) || N <- lists:seq(1, length(Segs))].

hops(default) -> ?DEFAULT_HOPS;
hops(N) -> N.

model_format(hb_store_lmdb) -> hb_store_lmdb;
model_format(_) -> tagged.

%%% ---------------------------------------------------------------------
%%% commands of this module

write(S, P, V) -> ?SAFE(hyper_lmdb:write(S, P, V)).
read(S, P) -> ?SAFE(hyper_lmdb:read(S, P)).
delete(S, P) -> ?SAFE(hyper_lmdb:delete(S, P)).
make_group(S, P) -> ?SAFE(hyper_lmdb:make_group(S, P)).
make_link(S, E, N) -> ?SAFE(hyper_lmdb:make_link(S, E, N)).
list(S, P) -> ?SAFE(hyper_lmdb:list(S, P)).
list(S, P, O) -> ?SAFE(hyper_lmdb:list(S, P, O)).
type(S, P) -> ?SAFE(hyper_lmdb:type(S, P)).
resolve(S, P) -> ?SAFE(hyper_lmdb:resolve(S, P)).
read_many(S, Ps) -> ?SAFE(hyper_lmdb:read_many(S, Ps)).
write_many(S, Ops) -> ?SAFE(hyper_lmdb:write_many(S, Ops)).
reset(S) -> ?SAFE(hyper_lmdb:reset(S)).

%% A fresh, empty store in its own directory: max-link-hops unless
%% `default', the format (none given for `default'), the durability.
%% Fault injection is on (crash/3).
open_store(Hops, Format, Durability) -> ?SAFE(open_store1(Hops, Format, Durability)).

open_store1(Hops, Format, Durability) ->
    Root = persistent_term:get({?MODULE, root}),
    Dir = filename:join(Root, integer_to_list(erlang:unique_integer([positive]))),
    Opts0 = #{<<"name">> => list_to_binary(Dir),
              <<"durability">> => atom_to_binary(Durability),
              <<"fault-injection">> => true},
    Opts1 = case Hops of
                default -> Opts0;
                _ -> Opts0#{<<"max-link-hops">> => Hops}
            end,
    Opts = case Format of
               default -> Opts1;
               children_index -> Opts1#{<<"format">> => <<"tagged">>, <<"children-index">> => true};
               _ -> Opts1#{<<"format">> => atom_to_binary(Format)}
           end,
    {ok, S} = hyper_lmdb:start(Opts),
    #{children_index := Index} = hyper_lmdb:stats(S),
    Index = Format =:= children_index,
    S.

%% Kills the port program with SIGKILL (no request is in flight: one
%% caller, between two calls), waits until the server runs a new one,
%% then returns everything the store holds.
kill_port(S) -> ?SAFE(kill_port1(S)).

kill_port1(S) ->
    #{os_pid := Os, port_restarts := R0} = hyper_lmdb:stats(S),
    [] = os:cmd("kill -9 " ++ integer_to_list(Os)),
    ok = wait_restart(S, Os, R0, erlang:monotonic_time(millisecond) + 10000),
    dump(S).

wait_restart(S, Os, R0, Deadline) ->
    case hyper_lmdb:stats(S) of
        #{os_pid := New, port_restarts := R} when R > R0, is_integer(New), New =/= Os ->
            ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, no_restart};
                false -> timer:sleep(2), wait_restart(S, Os, R0, Deadline)
            end
    end.

%% Stops the store and starts it again (without its format option when
%% DropFormat: the format is then detected from the directory); returns
%% the format it reports and everything it holds.
restart(S, DropFormat) -> ?SAFE(restart1(S, DropFormat)).

restart1(S, DropFormat) ->
    ok = hyper_lmdb:stop(S),
    Opts0 = maps:remove(<<"pid">>, S),
    Opts = case DropFormat of
               true -> maps:remove(<<"format">>, Opts0);
               false -> Opts0
           end,
    {ok, _} = hyper_lmdb:start(Opts),
    #{format := Format} = hyper_lmdb:stats(S),
    {Format, dump(S)}.

%% The port crashes (SIGKILL) at the next commit, just before or just
%% after it, which is the commit of write_many(Ops): returns its answer
%% (a port_exit reason dropped) and, once a new port runs, everything the
%% store holds.
crash(S, Point, Ops) -> ?SAFE(crash1(S, Point, Ops)).

crash1(S, Point, Ops) ->
    #{os_pid := Os, port_restarts := R0} = hyper_lmdb:stats(S),
    Fault = case Point of
                before_commit -> crash_before_commit;
                after_commit -> crash_after_commit
            end,
    ok = hyper_lmdb_server:inject_fault(maps:get(<<"name">>, S), Fault),
    Answer = case hyper_lmdb:write_many(S, Ops) of
                 {error, {port_exit, _}} -> {error, port_exit};
                 Other -> Other
             end,
    ok = wait_restart(S, Os, R0, erlang:monotonic_time(millisecond) + 10000),
    {Answer, dump(S)}.

%% Every key as stored, in key order.
dump(S) -> ?SAFE(dump(S, undefined, [])).

dump(S, From, Acc) ->
    Opts = case From of undefined -> #{limit => 1000}; _ -> #{from => From, limit => 1000} end,
    case hyper_lmdb:scan(S, Opts) of
        {ok, Entries, undefined} -> lists:append(lists:reverse([Entries | Acc]));
        {ok, Entries, Next} -> dump(S, Next, [Entries | Acc]);
        Other -> {scan_failed, Other}
    end.
