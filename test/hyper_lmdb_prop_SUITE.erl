%%% PropEr state-machine test: random sequences of every classic
%%% operation and the extensions (write, read, delete, make_group,
%%% make_link, list/2, list/3, type, resolve, read_many, write_many, reset)
%%% against the pure model in hyper_lmdb_model (SPEC sections 2-3), with
%%% `kill -9' of the port program mixed in.  After each kill, and at the
%%% end of every sequence, the whole store (scan/2: every key as stored)
%%% must equal the model: in the default `commit' durability an answered
%%% write survives the kill.
%%%
%%% Each sequence opens a fresh store directory (its first command) and
%%% stops it at the end.  Paths come from a five-segment alphabet so links,
%%% prefixes, loops and collisions are frequent.  On failure PropEr
%%% shrinks and the case fails with the shrunk command sequence.
%%%
%%% HYPER_LMDB_PROPTEST_N sets the number of sequences (default 500).
-module(hyper_lmdb_prop_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("proper/include/proper.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, model_matches_store/1]).
-export([initial_state/0, command/1, precondition/2, next_state/3, postcondition/3]).
-export([open_store/1, kill_port/1, dump/1]).
%% the API under test, called through wrappers that turn an exception
%% into a value (see ?SAFE)
-export([write/3, read/2, delete/2, make_group/2, make_link/3, list/2, list/3, type/2,
         resolve/2, read_many/2, write_many/2, reset/1]).

%% An exception as a value: PropEr 1.2 crashes on one (it calls
%% erlang:get_stacktrace/0, gone since OTP 23) instead of shrinking.
-define(SAFE(Call), try Call catch C:E -> {raised, C, E} end).

-define(DEFAULT_N, 500).
-define(DEFAULT_HOPS, 1000).
%% PropEr's size bounds a sequence's length (default 42): longer sequences
%% let chains, loops and overwrites build up
-define(MAX_SIZE, 150).

suite() -> [{timetrap, {minutes, 10}}].
all() -> [model_matches_store].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    %% a restart after each kill is expected here, not worth a warning
    ok = logger:set_module_level(hyper_lmdb_server, error),
    Root = filename:join(?config(priv_dir, Config), "prop"),
    ok = filelib:ensure_path(Root),
    persistent_term:put({?MODULE, root}, Root),
    Config.

end_per_suite(_Config) ->
    _ = persistent_term:erase({?MODULE, root}),
    _ = logger:unset_module_level(hyper_lmdb_server),
    ok.

model_matches_store(_Config) ->
    N = case os:getenv("HYPER_LMDB_PROPTEST_N") of
            false -> ?DEFAULT_N;
            "" -> ?DEFAULT_N;
            V -> list_to_integer(V)
        end,
    %% about 0.1 s a sequence; leave ample room for shrinking
    ct:timetrap({seconds, max(600, N)}),
    T0 = erlang:monotonic_time(millisecond),
    Result = proper:quickcheck(prop_model(), [{numtests, N}, {max_size, ?MAX_SIZE}, {to_file, user}]),
    T = erlang:monotonic_time(millisecond) - T0,
    case Result of
        true ->
            ct:pal("~b sequences in ~.1f s", [N, T / 1000]),
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
            %% the whole store must equal the model at the end, too
            {Final, FinalOk} =
                case {Result, State} of
                    {ok, #{store := S, model := M}} when is_map(S) ->
                        D = dump(S),
                        {D, D =:= hyper_lmdb_model:dump(M)};
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
                #{final_store => Final,
                  final_model => hyper_lmdb_model:dump(maps:get(model, State))};
            {_, [{{set, _, Call}, {Before, Got}} | _]} ->
                #{call => Call, expected => expected(Before, Call), got => Got};
            _ ->
                #{}
        end,
    ct:pal("result: ~p~n~p~nsteps:~n~p", [Result, Detail,
                                           [{C, R} || {{set, _, C}, {_, R}} <- Steps]]).

%% What was exercised: each command with the kind of answer it got.
%% (`unresolvable': the path ran into a link loop or the hop limit.)
outcomes(Cmds, History) ->
    [{name(Call), case unresolvable(St, Call) of
                      true -> unresolvable;
                      false -> outcome(R)
                  end} || {{set, _, Call}, {St, R}} <- proper_statem:zip(Cmds, History)].

unresolvable(#{model := M}, {call, ?MODULE, F, [_, P | _]})
  when F =:= read; F =:= type; F =:= list; F =:= resolve ->
    hyper_lmdb_model:resolve(M, hyper_lmdb_model:path(P)) =:= unresolvable;
unresolvable(_, _) ->
    false.

name({call, ?MODULE, list, [_, _, _]}) -> list3;
name({call, _, F, _}) -> F.

outcome({ok, L}) when is_list(L) -> case L of [] -> empty; _ -> some end;
outcome({ok, _}) -> found;
outcome({error, E}) when is_atom(E) -> E;
outcome({error, E}) -> element(1, E);
outcome(L) when is_list(L) -> list;
outcome(B) when is_binary(B) -> path;
outcome(A) when is_atom(A) -> A;
outcome(M) when is_map(M) -> opened;
outcome(_) -> other.

%%% ---------------------------------------------------------------------
%%% generators

segment() -> elements([a, b, c, "c-x", "c0"]).

%% 1-3 segments, as a list of segments, a clean binary or a binary with
%% extra slashes (normalised by the store).
path() ->
    ?LET({Segs, Style}, {?LET(N, frequency([{4, 1}, {4, 2}, {2, 3}]), vector(N, segment())),
                         frequency([{3, list}, {3, bin}, {1, messy}])},
         render(Segs, Style)).

render(Segs, list) -> Segs;
render(Segs, bin) -> hyper_lmdb_model:path(Segs);
render(Segs, messy) ->
    iolist_to_binary(["/", lists:join("//", [hyper_lmdb_model:path([S]) || S <- Segs]), "/"]).

%% A path: mostly from the alphabet or one the sequence has used already
%% (a key, a link target or a path written to), sometimes the root (empty)
%% in one of its spellings.
any_path(Known) -> any_path(Known, 2).

any_path([], Empty) ->
    frequency([{30, path()}, {Empty, root()}]);
any_path(Known, Empty) ->
    frequency([{12, path()}, {18, elements(Known)}, {Empty, root()}]).

%% Listing is most interesting where there are many children: the root.
list_path(Known) -> frequency([{3, any_path(Known, 0)}, {1, root()}]).

root() -> elements([<<>>, <<"/">>, [], <<"//">>]).

value() ->
    frequency([{8, elements([<<"1">>, <<"2">>, <<"v">>, <<>>, <<"link:a">>, <<"link:c/b">>,
                             <<"group">>, <<"link:">>])},
               {1, elements([["x", <<"y">>], [<<"link:">>, "a"]])}]).

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

%%% ---------------------------------------------------------------------
%%% the state machine

initial_state() -> #{store => undefined, model => undefined, seen => []}.

command(#{store := undefined}) ->
    {call, ?MODULE, open_store, [hops()]};
command(#{store := S, model := M, seen := Seen}) ->
    K = known(M, Seen),
    frequency([
        {10, {call, ?MODULE, write, [S, any_path(K), value()]}},
        {10, {call, ?MODULE, read, [S, any_path(K)]}},
        {3, {call, ?MODULE, delete, [S, any_path(K)]}},
        {3, {call, ?MODULE, make_group, [S, any_path(K)]}},
        {8, {call, ?MODULE, make_link, [S, any_path(K), any_path(K)]}},
        {4, {call, ?MODULE, list, [S, list_path(K)]}},
        {5, {call, ?MODULE, list, [S, list_path(K), list_opts()]}},
        {5, {call, ?MODULE, type, [S, any_path(K)]}},
        {5, {call, ?MODULE, resolve, [S, any_path(K)]}},
        {3, {call, ?MODULE, read_many, [S, resize(6, list(any_path(K)))]}},
        {3, {call, ?MODULE, write_many, [S, resize(6, list(write_op(K)))]}},
        {1, {call, ?MODULE, reset, [S]}},
        {2, {call, ?MODULE, kill_port, [S]}}
    ]).

precondition(#{store := undefined}, {call, _, F, _}) -> F =:= open_store;
precondition(_, {call, _, F, _}) -> F =/= open_store.

next_state(State, S, {call, ?MODULE, open_store, [Hops]}) ->
    State#{store := S, model := hyper_lmdb_model:new(hops(Hops))};
next_state(State = #{model := M, seen := Seen}, _Res, Call) ->
    case write_ops(Call) of
        {ok, Ops} ->
            {_, M2} = hyper_lmdb_model:write(M, Ops),
            Paths = [P || Op <- Ops, P <- op_paths(Op), P =/= <<>>],
            State#{model := M2, seen := lists:usort(Paths ++ Seen)};
        reset ->
            State#{model := hyper_lmdb_model:new(maps:get(hops, M))};
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
expected(#{model := M}, Call) ->
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
        _ ->
            {ok, Ops} = write_ops(Call),
            {Answer, _} = hyper_lmdb_model:write(M, Ops),
            Answer
    end.

%% A write command as the model's ops (paths normalised, values binaries).
write_ops({call, ?MODULE, write, [_, P, V]}) -> {ok, [model_op({write, P, V})]};
write_ops({call, ?MODULE, delete, [_, P]}) -> {ok, [model_op({delete, P})]};
write_ops({call, ?MODULE, make_group, [_, P]}) -> {ok, [model_op({make_group, P})]};
write_ops({call, ?MODULE, make_link, [_, E, N]}) -> {ok, [model_op({make_link, E, N})]};
write_ops({call, ?MODULE, write_many, [_, Ops]}) -> {ok, [model_op(Op) || Op <- Ops]};
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
    lists:usort([Pre || P <- Paths, Pre <- prefixes(P)]).

prefixes(P) ->
    Segs = binary:split(P, <<"/">>, [global]),
    [iolist_to_binary(lists:join($/, lists:sublist(Segs, N))) || N <- lists:seq(1, length(Segs))].

hops(default) -> ?DEFAULT_HOPS;
hops(N) -> N.

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

%% A fresh, empty store in its own directory: default options, but for
%% max-link-hops when Hops is not `default'.
open_store(Hops) -> ?SAFE(open_store1(Hops)).

open_store1(Hops) ->
    Root = persistent_term:get({?MODULE, root}),
    Dir = filename:join(Root, integer_to_list(erlang:unique_integer([positive]))),
    Opts0 = #{<<"name">> => list_to_binary(Dir)},
    Opts = case Hops of
               default -> Opts0;
               _ -> Opts0#{<<"max-link-hops">> => Hops}
           end,
    {ok, S} = hyper_lmdb:start(Opts),
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

%% Every key as stored, in key order.
dump(S) -> ?SAFE(dump(S, undefined, [])).

dump(S, From, Acc) ->
    Opts = case From of undefined -> #{limit => 1000}; _ -> #{from => From, limit => 1000} end,
    case hyper_lmdb:scan(S, Opts) of
        {ok, Entries, undefined} -> lists:append(lists:reverse([Entries | Acc]));
        {ok, Entries, Next} -> dump(S, Next, [Entries | Acc]);
        Other -> {scan_failed, Other}
    end.
