%%% The main job (`make run`): opens a store in a directory (./data by
%%% default), exercises every kind of operation, measures a quick
%%% throughput figure, and prints what happened.  Data stays in the
%%% directory; running it again reuses it.
-module(hyper_lmdb_demo).
-export([main/1]).

-define(KEYS, 10000).

main(Dir) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    S = #{<<"store-module">> => hyper_lmdb, <<"name">> => list_to_binary(Dir)},
    {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
    Before = maps:get(entries, hyper_lmdb:stats(S)),
    io:format("hyper_lmdb demo: store ~s (server ~p), ~b entries at start~n", [Dir, Pid, Before]),

    %% Message-shaped data, as HyperBEAM writes it.
    Id = binary:encode_hex(crypto:strong_rand_bytes(32)),
    ok = hyper_lmdb:write(S, [<<"data">>, Id], <<"hello from hyper_lmdb">>),
    ok = hyper_lmdb:make_group(S, [<<"messages">>, <<"msg1">>]),
    ok = hyper_lmdb:make_link(S, [<<"data">>, Id], [<<"messages">>, <<"msg1">>, <<"body">>]),
    ok = hyper_lmdb:write(S, [<<"messages">>, <<"msg1">>, <<"type">>], <<"Message">>),
    ok = hyper_lmdb:make_link(S, [<<"messages">>, <<"msg1">>], <<"latest">>),
    show("read latest/body (two links)", hyper_lmdb:read(S, <<"latest/body">>)),
    show("type latest", hyper_lmdb:type(S, <<"latest">>)),
    show("list latest", hyper_lmdb:list(S, <<"latest">>)),
    show("resolve latest/body", hyper_lmdb:resolve(S, <<"latest/body">>)),

    %% Bulk: write_many then concurrent callers reading.
    Keys = [<<"bench/key-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, ?KEYS)],
    Value = binary:copy(<<"v">>, 43),
    {WUs, ok} = timer:tc(fun() ->
        lists:foreach(fun(Chunk) ->
                          ok = hyper_lmdb:write_many(S, [{write, K, Value} || K <- Chunk])
                      end, chunks(Keys, 1000))
    end),
    io:format("wrote ~b keys with write_many in ~.1f ms~n", [?KEYS, WUs / 1000]),
    KeyTuple = list_to_tuple(Keys),
    [readers(S, KeyTuple, N, 1000) || N <- [1, 64]],
    %% A reader: a port of this process's own, no server in between.
    {ok, R} = hyper_lmdb:open_reader(S),
    show("read latest/body via a reader", hyper_lmdb:read(R, <<"latest/body">>)),
    RCount = read_loop(R, KeyTuple, erlang:monotonic_time(millisecond) + 1000, 0),
    io:format(" 1 reader with its own port (open_reader/1): ~b reads/s~n", [RCount]),
    ok = hyper_lmdb:close_reader(R),
    {RmUs, Many} = timer:tc(fun() -> hyper_lmdb:read_many(S, lists:sublist(Keys, 100)) end),
    io:format("read_many of 100 keys (first call, cold): ~b found in ~b us~n",
              [length([ok || {ok, _} <- Many]), RmUs]),

    Stats = hyper_lmdb:stats(S),
    io:format("stats: ~p~n", [maps:with([entries, format, durability, commits, batched_writes,
                                         max_batch, cache_hits, cache_misses, map_size,
                                         map_used, port_restarts], Stats)]),
    ok = hyper_lmdb:stop(S),
    io:format("stopped; data is in ~s~n", [Dir]).

show(What, Result) ->
    io:format("~-32s -> ~p~n", [What, Result]).

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) ->
    {H, T} = lists:split(N, L),
    [H | chunks(T, N)].

%% N processes read random keys for Ms milliseconds; prints ops/s.
readers(S, Keys, N, Ms) ->
    Parent = self(),
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    Pids = [spawn_link(fun() -> Parent ! {self(), read_loop(S, Keys, Deadline, 0)} end)
            || _ <- lists:seq(1, N)],
    Total = lists:sum([receive {P, C} -> C end || P <- Pids]),
    io:format("~2b concurrent callers: ~b reads/s~n", [N, Total * 1000 div Ms]).

read_loop(S, Keys, Deadline, Count) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        false ->
            Count;
        true ->
            K = element(rand:uniform(tuple_size(Keys)), Keys),
            {ok, _} = hyper_lmdb:read(S, K),
            read_loop(S, Keys, Deadline, Count + 1)
    end.
