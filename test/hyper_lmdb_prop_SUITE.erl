%%% PropEr model test: random sequences of every operation against a pure
%%% Erlang model of SPEC sections 2-3, with kills of the port mixed in.
%%% Shrinks on failure.  HYPER_LMDB_PROPTEST_N sets the number of
%%% sequences (default 500; `make proptest` runs more).
-module(hyper_lmdb_prop_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("proper/include/proper.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, model_matches_store/1]).
-export([initial_state/0, command/1, precondition/2, next_state/3, postcondition/3]).
-export([kill_port/0]).

-define(STORE, (persistent_term:get({?MODULE, store}))).
-define(MAX_HOPS, 1000).

suite() -> [{timetrap, {minutes, 10}}].
all() -> [model_matches_store].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    S = #{<<"name">> => list_to_binary(filename:join(?config(priv_dir, Config), "prop"))},
    {ok, _} = hyper_lmdb:start(S),
    persistent_term:put({?MODULE, store}, S),
    Config.

end_per_suite(_) ->
    hyper_lmdb:stop(?STORE),
    persistent_term:erase({?MODULE, store}),
    ok.

model_matches_store(_Config) ->
    N = case os:getenv("HYPER_LMDB_PROPTEST_N") of
            false -> 500;
            V -> list_to_integer(V)
        end,
    Prop = ?FORALL(Cmds, proper_statem:commands(?MODULE),
                   begin
                       ok = hyper_lmdb:reset(?STORE),
                       {History, State, Result} = proper_statem:run_commands(?MODULE, Cmds),
                       ?WHENFAIL(ct:pal("history: ~p~nmodel: ~p~nresult: ~p",
                                        [History, State, Result]),
                                 aggregate(proper_statem:command_names(Cmds), Result =:= ok))
                   end),
    true = proper:quickcheck(Prop, [{numtests, N}, {to_file, user}, {max_shrinks, 200}]).

%%% ---------------------------------------------------------------------
%%% generators

segment() -> elements([<<"a">>, <<"b">>, <<"c">>, <<"c-x">>, <<"c0">>]).

path() ->
    ?LET(N, choose(1, 3), ?LET(Segs, vector(N, segment()), join(Segs))).

any_path() -> frequency([{9, path()}, {1, elements([<<>>, <<"/">>, <<"a//b/">>])}]).

value() -> elements([<<"1">>, <<"2">>, <<>>, <<"link:a">>, <<"group">>, <<"v">>]).

write_op() ->
    oneof([{write, any_path(), value()}, {make_group, any_path()},
           {make_link, path(), any_path()}, {delete, any_path()}]).

list_opts() ->
    ?LET({From, Limit, Dir}, {oneof([undefined, segment()]), choose(0, 4), elements([asc, desc])},
         maps:filter(fun(_, V) -> V =/= undefined end,
                     #{from => From, limit => Limit, direction => Dir})).

%%% ---------------------------------------------------------------------
%%% the state machine: the model is a map Key => {value, V} | {link, T} | group

initial_state() -> #{}.

command(_M) ->
    S = ?STORE,
    frequency([
        {10, {call, hyper_lmdb, write, [S, any_path(), value()]}},
        {10, {call, hyper_lmdb, read, [S, any_path()]}},
        {3, {call, hyper_lmdb, delete, [S, any_path()]}},
        {4, {call, hyper_lmdb, make_group, [S, any_path()]}},
        {8, {call, hyper_lmdb, make_link, [S, path(), any_path()]}},
        {5, {call, hyper_lmdb, list, [S, any_path()]}},
        {4, {call, hyper_lmdb, list, [S, path(), list_opts()]}},
        {5, {call, hyper_lmdb, type, [S, any_path()]}},
        {4, {call, hyper_lmdb, resolve, [S, any_path()]}},
        {3, {call, hyper_lmdb, read_many, [S, list(any_path())]}},
        {3, {call, hyper_lmdb, write_many, [S, list(write_op())]}},
        {1, {call, hyper_lmdb, reset, [S]}},
        {1, {call, ?MODULE, kill_port, []}}
    ]).

precondition(_, _) -> true.

next_state(M, _Res, {call, hyper_lmdb, write, [_, P, V]}) -> apply_ops(M, [{write, P, V}]);
next_state(M, _Res, {call, hyper_lmdb, delete, [_, P]}) -> apply_ops(M, [{delete, P}]);
next_state(M, _Res, {call, hyper_lmdb, make_group, [_, P]}) -> apply_ops(M, [{make_group, P}]);
next_state(M, _Res, {call, hyper_lmdb, make_link, [_, E, N]}) -> apply_ops(M, [{make_link, E, N}]);
next_state(M, _Res, {call, hyper_lmdb, write_many, [_, Ops]}) -> apply_ops(M, Ops);
next_state(_M, _Res, {call, hyper_lmdb, reset, _}) -> #{};
next_state(M, _, _) -> M.

postcondition(M, {call, hyper_lmdb, write, [_, P, V]}, R) -> R =:= write_result(M, [{write, P, V}]);
postcondition(M, {call, hyper_lmdb, delete, [_, P]}, R) -> R =:= write_result(M, [{delete, P}]);
postcondition(M, {call, hyper_lmdb, make_group, [_, P]}, R) -> R =:= write_result(M, [{make_group, P}]);
postcondition(M, {call, hyper_lmdb, make_link, [_, E, N]}, R) -> R =:= write_result(M, [{make_link, E, N}]);
postcondition(M, {call, hyper_lmdb, write_many, [_, Ops]}, R) -> R =:= write_result(M, Ops);
postcondition(M, {call, hyper_lmdb, read, [_, P]}, R) -> R =:= m_read(M, P);
postcondition(M, {call, hyper_lmdb, read_many, [_, Ps]}, R) -> R =:= [m_read(M, P) || P <- Ps];
postcondition(M, {call, hyper_lmdb, list, [_, P]}, R) -> R =:= {ok, m_list(M, P, #{})};
postcondition(M, {call, hyper_lmdb, list, [_, P, O]}, R) -> R =:= {ok, m_list(M, P, O)};
postcondition(M, {call, hyper_lmdb, type, [_, P]}, R) -> R =:= m_type(M, P);
postcondition(M, {call, hyper_lmdb, resolve, [_, P]}, R) -> R =:= m_resolve_path(M, P);
postcondition(_M, {call, hyper_lmdb, reset, _}, R) -> R =:= ok;
postcondition(_M, {call, ?MODULE, kill_port, []}, R) -> R =:= ok.

%% Kills the port with SIGKILL and waits until the server has a new one,
%% so the next command meets a running port (no write is in flight now).
kill_port() ->
    {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(?STORE),
    #{restarts := R0, os_pid := Os} = hyper_lmdb_server:port_info(Pid),
    _ = os:cmd("kill -9 " ++ integer_to_list(Os)),
    wait_restart(Pid, R0, 500).

wait_restart(_Pid, _R0, 0) -> timeout;
wait_restart(Pid, R0, N) ->
    case hyper_lmdb_server:port_info(Pid) of
        #{restarts := R} when R > R0 -> ok;
        _ -> timer:sleep(5), wait_restart(Pid, R0, N - 1)
    end.

%%% ---------------------------------------------------------------------
%%% the model

join(Segs) -> iolist_to_binary(lists:join($/, Segs)).
segs(P) -> binary:split(P, <<"/">>, [global, trim_all]).
norm(P) -> join(segs(P)).

%% Follows links at every prefix, restarting after each; loop -> error.
resolve(M, P) -> resolve(M, segs(P), 0).

resolve(_M, _Segs, Hops) when Hops > ?MAX_HOPS -> error;
resolve(M, Segs, Hops) ->
    case first_link(M, Segs, 1) of
        none -> {ok, join(Segs)};
        {Target, Rest} -> resolve(M, segs(Target) ++ Rest, Hops + 1)
    end.

first_link(_M, Segs, I) when I > length(Segs) -> none;
first_link(M, Segs, I) ->
    {Prefix, Rest} = lists:split(I, Segs),
    case maps:find(join(Prefix), M) of
        {ok, {link, T}} -> {T, Rest};
        _ -> first_link(M, Segs, I + 1)
    end.

%% The key a write to P lands on: the parent resolved, the last segment not.
write_key(M, P) ->
    case segs(P) of
        [] -> {error, empty_path};
        [Last] -> {ok, Last};
        Segs ->
            {Parent, [Last]} = lists:split(length(Segs) - 1, Segs),
            case resolve(M, join(Parent)) of
                {ok, <<>>} -> {ok, Last};
                {ok, R} -> {ok, <<R/binary, "/", Last/binary>>};
                error -> {error, link_loop}
            end
    end.

%% Applies write ops in order, all or nothing: {ok, Model} | {error, Why}.
run_ops(M, Ops) ->
    Check = [Why || Op <- Ops, {error, Why} <- [precheck(Op)]],
    case Check of
        [Why | _] -> {error, Why};
        [] -> run_ops1(M, Ops)
    end.

precheck({make_link, E, N}) ->
    case {norm(E), norm(N)} of
        {<<>>, _} -> {error, empty_path};
        {_, <<>>} -> {error, empty_path};
        _ -> ok
    end;
precheck(Op) ->
    case norm(element(2, Op)) of
        <<>> -> {error, empty_path};
        _ -> ok
    end.

run_ops1(M, []) -> {ok, M};
run_ops1(M, [Op | T]) ->
    Path = case Op of {make_link, _, N} -> N; _ -> element(2, Op) end,
    case write_key(M, Path) of
        {error, _} = E -> E;
        {ok, K} ->
            M2 = case Op of
                     {write, _, V} -> M#{K => {value, V}};
                     {make_group, _} -> M#{K => group};
                     {make_link, E, _} -> M#{K => {link, norm(E)}};
                     {delete, _} -> maps:remove(K, M)
                 end,
            run_ops1(M2, T)
    end.

apply_ops(M, Ops) ->
    case run_ops(M, Ops) of
        {ok, M2} -> M2;
        {error, _} -> M
    end.

write_result(M, Ops) ->
    case run_ops(M, Ops) of
        {ok, _} -> ok;
        {error, _} = E -> E
    end.

m_read(M, P) ->
    case resolve(M, P) of
        {ok, K} ->
            case maps:find(K, M) of
                {ok, {value, V}} -> {ok, V};
                _ -> not_found
            end;
        error -> not_found
    end.

m_type(M, P) ->
    case resolve(M, P) of
        error -> not_found;
        {ok, <<>>} -> composite;
        {ok, K} ->
            case maps:find(K, M) of
                {ok, {value, _}} -> simple;
                {ok, group} -> composite;
                _ ->
                    case children(M, K) of
                        [] -> not_found;
                        _ -> composite
                    end
            end
    end.

m_resolve_path(M, P) ->
    case resolve(M, P) of
        {ok, R} -> R;
        error -> norm(P)
    end.

children(M, <<>>) ->
    lists:usort([hd(segs(K)) || K <- maps:keys(M)]);
children(M, K) ->
    Prefix = <<K/binary, "/">>,
    L = byte_size(Prefix),
    lists:usort([hd(segs(Rest)) || <<Pre:L/binary, Rest/binary>> <- maps:keys(M), Pre =:= Prefix]).

m_list(M, P, Opts) ->
    case resolve(M, P) of
        error -> [];
        {ok, K} ->
            Dir = maps:get(direction, Opts, asc),
            From = maps:get(from, Opts, undefined),
            Limit = maps:get(limit, Opts, 0),
            All = case Dir of asc -> children(M, K); desc -> lists:reverse(children(M, K)) end,
            In = [C || C <- All, From =:= undefined orelse
                                 (Dir =:= asc andalso C >= From) orelse
                                 (Dir =:= desc andalso C =< From)],
            case Limit of 0 -> In; _ -> lists:sublist(In, Limit) end
    end.
