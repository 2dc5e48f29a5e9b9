%%% The benchmark suite (`make bench`, `make bench BENCH_ARGS=quick`).
%%%
%%% Everything is measured in one run, against floors measured in the same
%%% run: an echo port (same framing, does nothing), a gen_server that
%%% multiplexes callers over an echo port, raw LMDB in-process (C), ETS
%%% and DETS.  These machines are small and noisy, so the ratios matter,
%%% not the absolute figures.  Prints a table, writes bench/out/latest.md,
%%% the data files and, with gnuplot, bench/out/throughput.png and
%%% bench/out/latency_cdf.png.
-module(hyper_lmdb_bench).
-export([main/1]).
%% the gen_server-multiplexed echo floor
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(VALUE, <<"0123456789012345678901234567890123456789012">>). % 43 bytes
-define(OUT, "bench/out").

main(Args) ->
    Quick = lists:member("quick", Args),
    Secs = case Quick of true -> 1; false -> 3 end,
    Ms = Secs * 1000,
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    ok = filelib:ensure_dir(filename:join(?OUT, "x")),
    Tmp = string:trim(os:cmd("mktemp -d /tmp/hyper_lmdb_bench.XXXXXX")),
    io:format("hyper_lmdb benchmark (~s mode, ~b s per row), data in ~s~n",
              [case Quick of true -> "quick"; false -> "full" end, Secs, Tmp]),
    Rows = lists:append([
        section("floors", fun() -> floors(Tmp, Ms) end),
        section("reads", fun() -> reads(Tmp, Ms) end),
        section("writes", fun() -> writes(Tmp, Ms) end),
        section("links and lists", fun() -> links_lists(Tmp, Ms) end),
        section("large values", fun() -> large(Tmp, Ms) end),
        section("HyperBEAM workloads", fun() -> hyperbeam(Tmp, Quick) end),
        section("peers", fun() -> peers(Tmp, Ms) end)
    ]),
    note("BEAM: ~.1f CPU s in all; ~s", [element(1, erlang:statistics(runtime)) / 1000,
                                          proc_usage(list_to_integer(os:getpid()))]),
    Table = table(Rows),
    Notes = [["- ", N, "\n"] || N <- lists:reverse(get_notes())],
    io:format("~n~s~n~s", [Table, Notes]),
    Date = string:trim(os:cmd("date -u '+%Y-%m-%d %H:%M UTC'")),
    ok = file:write_file(filename:join(?OUT, "latest.md"),
                         ["Measured ", Date, ", ", machine(), "\n\n", Table, "\n", Notes]),
    plots(Rows),
    os:cmd("rm -rf " ++ Tmp),
    ok.

note(Fmt, Args) ->
    Line = lists:flatten(io_lib:format(Fmt, Args)),
    io:format("  ~s~n", [Line]),
    put(notes, [Line | get_notes()]).

get_notes() ->
    case get(notes) of undefined -> []; L -> L end.

%% CPU seconds and peak RSS of an OS process, from /proc.
proc_usage(OsPid) ->
    P = "/proc/" ++ integer_to_list(OsPid),
    case {file:read_file(P ++ "/stat"), file:read_file(P ++ "/status")} of
        {{ok, Stat}, {ok, Status}} ->
            [_, AfterComm] = string:split(binary_to_list(Stat), ") "),
            F = string:split(AfterComm, " ", all),
            Ticks = list_to_integer(lists:nth(12, F)) + list_to_integer(lists:nth(13, F)),
            {match, [Hwm]} = re:run(Status, "VmHWM:\\s+(\\d+)", [{capture, all_but_first, list}]),
            io_lib:format("~.1f CPU s, peak RSS ~b MiB", [Ticks / 100, list_to_integer(Hwm) div 1024]);
        _ ->
            "(no /proc figures)"
    end.

section(Name, Fun) ->
    io:format("== ~s~n", [Name]),
    Fun().

%%% ---------------------------------------------------------------------
%%% rows: #{name, ops (per second), lat (sorted us samples), floor, note}

row(Name, Ops, Lat, Floor) ->
    R = #{name => Name, ops => Ops, lat => Lat, floor => Floor},
    io:format("  ~-46s ~12s ops/s ~s~n", [Name, fmt(Ops), lat_text(Lat)]),
    R.

floors(Tmp, Ms) ->
    Echo = echo_port(),
    {LOps, LLat} = lockstep(fun() -> echo_call(Echo, read) end, Ms),
    L = row("echo port, lockstep, 1 caller", LOps, LLat, none),
    P = row("echo port, pipelined (64 in flight)", pipelined(Echo, Ms), [], none),
    catch port_close(Echo),
    {ok, Mux} = gen_server:start(?MODULE, [], []),
    Mx = [row(io_lib:format("gen_server-mux echo, ~b callers", [N]),
              concurrent(N, fun() -> gen_server:call(Mux, read) end, Ms), [], none)
          || N <- [1, 4, 16, 64]],
    gen_server:stop(Mux),
    Raw = raw_lmdb(Tmp),
    put(floor_lockstep, L), put(floor_pipelined, P),
    [L, P | Mx] ++ Raw.

raw_lmdb(Tmp) ->
    ok = filelib:ensure_dir(Tmp ++ "/raw/x"),
    Out = os:cmd("_build/bench/raw_lmdb " ++ Tmp ++ "/raw 200000"),
    Vals = maps:from_list([{K, list_to_integer(V)} || L <- string:split(Out, "\n", all),
                                                       [K, V] <- [string:split(L, " ")],
                                                       lists:all(fun(C) -> C >= $0 andalso C =< $9 end, V),
                                                       V =/= ""]),
    Rows = [row("raw LMDB (C): " ++ K, maps:get(K, Vals, 0), [], none)
            || K <- ["random_gets", "one_txn_puts", "txn_per_op", "txn_per_op_sync"]],
    [put({raw, K}, R) || {K, R} <- lists:zip(["random_gets", "one_txn_puts", "txn_per_op",
                                              "txn_per_op_sync"], Rows)],
    Rows.

reads(Tmp, Ms) ->
    S = store(Tmp, "reads", #{}),
    %% in a persistent term: a closure's tuple would be copied into every
    %% caller process, and that copying would be measured too
    persistent_term:put({?MODULE, keys}, preload(S, 10000)),
    Key = fun() -> element(rand:uniform(10000), persistent_term:get({?MODULE, keys})) end,
    Keys = persistent_term:get({?MODULE, keys}),
    Read = fun() -> {ok, _} = hyper_lmdb:read(S, Key()) end,
    {Ops1, Lat1} = lockstep(Read, Ms),
    R1 = row("read, 1 caller", Ops1, Lat1, get(floor_lockstep)),
    RN = [row(io_lib:format("read, ~b callers", [N]), concurrent(N, Read, Ms), [],
              get(floor_pipelined)) || N <- [4, 16, 64]],
    RM = [begin
              Batches = list_to_tuple([[element(rand:uniform(10000), Keys) || _ <- lists:seq(1, K)]
                                       || _ <- lists:seq(1, 50)]),
              {Ops, Lat} = lockstep(fun() ->
                  [_ | _] = hyper_lmdb:read_many(S, element(rand:uniform(50), Batches)) end, Ms),
              row(io_lib:format("read_many of ~b, keys/s", [K]), K * Ops, Lat, get({raw, "random_gets"}))
          end || K <- [10, 100, 1000]],
    Stats = hyper_lmdb:stats(S),
    note("read store: cache hits ~b, misses ~b; port ~s", [maps:get(cache_hits, Stats),
                                                          maps:get(cache_misses, Stats),
                                                          proc_usage(maps:get(os_pid, Stats))]),
    hyper_lmdb:stop(S),
    [R1 | RN] ++ RM.

writes(Tmp, Ms) ->
    lists:append([begin
        S = store(Tmp, "writes_" ++ binary_to_list(Mode), #{<<"durability">> => Mode}),
        Counter = counters:new(1, []),
        W = fun() ->
            I = counters:get(Counter, 1), counters:add(Counter, 1, 1),
            ok = hyper_lmdb:write(S, <<"w/", (integer_to_binary(I))/binary>>, ?VALUE)
        end,
        {Ops1, Lat1} = lockstep(W, Ms),
        ok = hyper_lmdb:sync(S),
        Floor1 = case Mode of <<"fsync">> -> get({raw, "txn_per_op_sync"}); _ -> get(floor_lockstep) end,
        R1 = row(io_lib:format("write ~s, 1 caller", [Mode]), Ops1, Lat1, Floor1),
        Ops64 = concurrent(64, W, Ms),
        ok = hyper_lmdb:sync(S),
        Floor64 = case Mode of <<"fsync">> -> get({raw, "txn_per_op_sync"}); _ -> get(floor_pipelined) end,
        R64 = row(io_lib:format("write ~s, 64 callers", [Mode]), Ops64, [], Floor64),
        #{commits := C, batched_writes := BW, os_pid := OsPid} = hyper_lmdb:stats(S),
        note("~s: ~b commits, ~.1f writes per commit; port ~s", [Mode, C, BW / max(1, C), proc_usage(OsPid)]),
        hyper_lmdb:stop(S),
        [R1, R64]
     end || Mode <- [<<"commit">>, <<"fsync">>, <<"async">>]]) ++ write_many(Tmp, Ms).

write_many(Tmp, Ms) ->
    S = store(Tmp, "write_many", #{}),
    Counter = counters:new(1, []),
    {Ops, Lat} = lockstep(fun() ->
        I = counters:get(Counter, 1), counters:add(Counter, 1, 1),
        ok = hyper_lmdb:write_many(S, [{write, <<"m/", (integer_to_binary(I))/binary, "/",
                                                 (integer_to_binary(J))/binary>>, ?VALUE}
                                       || J <- lists:seq(1, 100)])
    end, Ms),
    hyper_lmdb:stop(S),
    [row("write_many of 100 (atomic), writes/s", Ops * 100, Lat, get({raw, "one_txn_puts"}))].

links_lists(Tmp, Ms) ->
    S = store(Tmp, "links", #{}),
    ok = hyper_lmdb:write_many(S, [{write, [<<"d">>, I], ?VALUE} || I <- lists:seq(1, 1000)]),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l1">>),
    ok = hyper_lmdb:make_link(S, <<"l1">>, <<"l2">>),
    ok = hyper_lmdb:make_link(S, <<"l2">>, <<"l3">>),
    ok = hyper_lmdb:make_link(S, <<"d/1">>, <<"direct-link">>),
    Via = fun(P) -> fun() -> {ok, _} = hyper_lmdb:read(S, [P, rand:uniform(1000)]) end end,
    Direct = row("read direct d/N, 16 callers", concurrent(16, Via(<<"d">>), Ms), [], none),
    Hop1 = row("read via 1-hop prefix link, 16 callers", concurrent(16, Via(<<"l1">>), Ms), [], Direct),
    Hop3 = row("read via 3-hop prefix link, 16 callers", concurrent(16, Via(<<"l3">>), Ms), [], Direct),
    Whole = row("read of a whole-path link, 16 callers",
                concurrent(16, fun() -> {ok, _} = hyper_lmdb:read(S, <<"direct-link">>) end, Ms), [], Direct),
    %% listing: 100 children without subtrees vs 100 children with deep ones
    ok = hyper_lmdb:write_many(S, [{write, [<<"flat">>, I], ?VALUE} || I <- lists:seq(1, 100)]),
    lists:foreach(fun(I) ->
        ok = hyper_lmdb:write_many(S, [{write, [<<"deep">>, I, J, K], ?VALUE}
                                       || J <- lists:seq(1, 10), K <- lists:seq(1, 10)])
    end, lists:seq(1, 100)),
    {FOps, FLat} = lockstep(fun() -> {ok, [_ | _]} = hyper_lmdb:list(S, <<"flat">>) end, Ms),
    Flat = row("list 100 childless children", FOps, FLat, none),
    {DOps, DLat} = lockstep(fun() -> {ok, [_ | _]} = hyper_lmdb:list(S, <<"deep">>) end, Ms),
    Deep = row("list 100 children with 100 descendants each", DOps, DLat, Flat),
    ok = hyper_lmdb:write_many(S, [{write, [<<"wide">>, I], <<>>} || I <- lists:seq(1, 20000)]),
    {POps, PLat} = lockstep(fun() ->
        From = integer_to_binary(rand:uniform(20000)),
        {ok, [_ | _]} = hyper_lmdb:list(S, <<"wide">>, #{from => From, limit => 100}) end, Ms),
    Paged = row("list page of 100 in 20k children", POps, PLat, Flat),
    hyper_lmdb:stop(S),
    [Direct, Hop1, Hop3, Whole, Flat, Deep, Paged].

large(Tmp, Ms) ->
    S = store(Tmp, "large", #{}),
    Echo = echo_port(),
    Rows = lists:append([begin
        V = crypto:strong_rand_bytes(Size),
        ok = hyper_lmdb:write(S, <<"big">>, V),
        {EOps, ELat} = lockstep(fun() -> {ok, _} = echo_call(Echo, {big, Size}) end, Ms),
        E = row(io_lib:format("echo port, ~s reply, 1 caller", [size_name(Size)]), EOps, ELat, none),
        {ROps, RLat} = lockstep(fun() -> {ok, _} = hyper_lmdb:read(S, <<"big">>) end, Ms),
        R = row(io_lib:format("read of a ~s value, 1 caller", [size_name(Size)]), ROps, RLat, E),
        {WOps, WLat} = lockstep(fun() -> ok = hyper_lmdb:write(S, <<"big2">>, V) end, Ms),
        W = row(io_lib:format("write of a ~s value, 1 caller", [size_name(Size)]), WOps, WLat, E),
        [E, R, W]
     end || Size <- [100, 4096, 1 bsl 20]]),
    catch port_close(Echo),
    hyper_lmdb:stop(S),
    Rows.

size_name(1048576) -> "1 MiB";
size_name(4096) -> "4 KiB";
size_name(N) -> integer_to_list(N) ++ " B".

%% HyperBEAM's own store benchmarks: 50,000 writes then 50,000 random
%% reads of key-N with a 43-byte value; 10,000 groups of 5 keys then
%% 10,000 random lists, each checked complete.
hyperbeam(Tmp, Quick) ->
    N = case Quick of true -> 20000; false -> 50000 end,
    G = case Quick of true -> 4000; false -> 10000 end,
    S = store(Tmp, "hyperbeam", #{}),
    Keys = list_to_tuple([<<"key-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, N)]),
    {WUs, _} = timer:tc(fun() -> [ok = hyper_lmdb:write(S, element(I, Keys), ?VALUE) || I <- lists:seq(1, N)] end),
    W = row(io_lib:format("HyperBEAM: ~b writes (1 caller)", [N]), N * 1000000 div max(1, WUs), [], none),
    {RUs, _} = timer:tc(fun() -> [{ok, _} = hyper_lmdb:read(S, element(rand:uniform(N), Keys)) || _ <- lists:seq(1, N)] end),
    R = row(io_lib:format("HyperBEAM: ~b random reads (1 caller)", [N]), N * 1000000 div max(1, RUs), [], none),
    {GUs, _} = timer:tc(fun() ->
        [begin
             ok = hyper_lmdb:make_group(S, [<<"g">>, I]),
             [ok = hyper_lmdb:write(S, [<<"g">>, I, K], ?VALUE) || K <- [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>]]
         end || I <- lists:seq(1, G)] end),
    GW = row(io_lib:format("HyperBEAM: ~b groups of 5, written", [G]), G * 6 * 1000000 div max(1, GUs), [], none),
    {LUs, _} = timer:tc(fun() ->
        [{ok, [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>]} = hyper_lmdb:list(S, [<<"g">>, rand:uniform(G)])
         || _ <- lists:seq(1, G)] end),
    GL = row(io_lib:format("HyperBEAM: ~b random lists, each complete", [G]), G * 1000000 div max(1, LUs), [], none),
    hyper_lmdb:stop(S),
    [W, R, GW, GL].

peers(Tmp, Ms) ->
    Ets = ets:new(bench, [set, public, {read_concurrency, true}, {write_concurrency, true}]),
    [ets:insert(Ets, {I, ?VALUE}) || I <- lists:seq(1, 10000)],
    EtsRead = fun() -> [_] = ets:lookup(Ets, rand:uniform(10000)) end,
    EtsRows = [row(io_lib:format("ETS read, ~b callers", [N]), concurrent(N, EtsRead, Ms), [], none)
               || N <- [1, 4, 16, 64]],
    EW = row("ETS write, 64 callers",
             concurrent(64, fun() -> true = ets:insert(Ets, {rand:uniform(100000), ?VALUE}) end, Ms), [], none),
    {ok, D} = dets:open_file(bench_dets, [{file, Tmp ++ "/bench.dets"}]),
    [dets:insert(D, {I, ?VALUE}) || I <- lists:seq(1, 10000)],
    DR = [row(io_lib:format("DETS read, ~b callers", [N]),
              concurrent(N, fun() -> [_] = dets:lookup(D, rand:uniform(10000)) end, Ms), [], none)
          || N <- [1, 64]],
    DW = row("DETS write, 64 callers",
             concurrent(64, fun() -> ok = dets:insert(D, {rand:uniform(100000), ?VALUE}) end, Ms), [], none),
    dets:close(D),
    ets:delete(Ets),
    EtsRows ++ [EW | DR] ++ [DW].

%%% ---------------------------------------------------------------------
%%% drivers

store(Tmp, Name, Extra) ->
    S = maps:merge(#{<<"name">> => list_to_binary(Tmp ++ "/" ++ Name)}, Extra),
    {ok, _} = hyper_lmdb:start(S),
    S.

preload(S, N) ->
    Keys = [<<"key-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, N)],
    [ok = hyper_lmdb:write_many(S, [{write, K, ?VALUE} || K <- Chunk]) || Chunk <- chunks(Keys, 1000)],
    list_to_tuple(Keys).

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) -> {H, T} = lists:split(N, L), [H | chunks(T, N)].

%% One caller, one request at a time: ops/s and every latency (us).
lockstep(Fun, Ms) ->
    Fun(),  % warm up
    End = erlang:monotonic_time(microsecond) + Ms * 1000,
    lockstep(Fun, End, erlang:monotonic_time(microsecond), [], 0).

lockstep(Fun, End, T0, Lat, N) ->
    T = erlang:monotonic_time(microsecond),
    case T >= End of
        true -> {N * 1000000 div max(1, T - T0), lists:sort(Lat)};
        false ->
            Fun(),
            lockstep(Fun, End, T0, [erlang:monotonic_time(microsecond) - T | Lat], N + 1)
    end.

%% N processes call Fun in a loop for Ms: total ops/s.
concurrent(N, Fun, Ms) ->
    Parent = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() ->
                receive Go -> ok end,
                End = erlang:monotonic_time(millisecond) + Ms,
                Parent ! {self(), loop(Fun, End, 0)}
            end) || _ <- lists:seq(1, N)],
    T0 = erlang:monotonic_time(microsecond),
    [P ! Go || P <- Pids],
    Total = lists:sum([receive {P, C} -> C end || P <- Pids]),
    Total * 1000000 div max(1, erlang:monotonic_time(microsecond) - T0).

loop(Fun, End, C) ->
    case C band 15 =:= 0 andalso erlang:monotonic_time(millisecond) >= End of
        true -> C;
        false -> Fun(), loop(Fun, End, C + 1)
    end.

%%% the echo floors

echo_port() ->
    open_port({spawn_executable, "_build/bench/echo_port"}, [{packet, 4}, binary, exit_status, use_stdio]).

echo_call(Port, Req) ->
    Id = erlang:unique_integer([positive]),
    Op = case Req of read -> {Id, read, <<"k">>}; {big, N} -> {Id, big, N} end,
    port_command(Port, term_to_binary(Op)),
    receive {Port, {data, B}} -> {Id, R} = binary_to_term(B), R end.

%% One process keeps 64 requests in flight.
pipelined(Port, Ms) ->
    End = erlang:monotonic_time(millisecond) + Ms,
    [port_command(Port, term_to_binary({I, read, <<"k">>})) || I <- lists:seq(1, 64)],
    T0 = erlang:monotonic_time(microsecond),
    N = pipe(Port, End, 0),
    Ops = N * 1000000 div max(1, erlang:monotonic_time(microsecond) - T0),
    [receive {Port, {data, _}} -> ok end || _ <- lists:seq(1, 64)],
    Ops.

pipe(Port, End, N) ->
    receive {Port, {data, _}} -> ok end,
    port_command(Port, term_to_binary({N, read, <<"k">>})),
    case N band 255 =:= 0 andalso erlang:monotonic_time(millisecond) >= End of
        true -> N + 1;
        false -> pipe(Port, End, N + 1)
    end.

%% gen_server: a plain multiplexer over an echo port (the design the
%% store's server had to beat).
init([]) -> {ok, {echo_port(), 0, #{}}}.
handle_call(read, From, {Port, Id, Map}) ->
    port_command(Port, term_to_binary({Id, read, <<"k">>})),
    {noreply, {Port, Id + 1, Map#{Id => From}}}.
handle_cast(_, S) -> {noreply, S}.
handle_info({Port, {data, B}}, {Port, N, Map}) ->
    {Id, R} = binary_to_term(B),
    {From, Map2} = maps:take(Id, Map),
    gen_server:reply(From, R),
    {noreply, {Port, N, Map2}};
handle_info(_, S) -> {noreply, S}.

%%% ---------------------------------------------------------------------
%%% output

fmt(N) when N >= 1000000 -> io_lib:format("~.2fM", [N / 1000000]);
fmt(N) when N >= 1000 -> io_lib:format("~.1fk", [N / 1000]);
fmt(N) -> integer_to_list(N).

pct([], _) -> undefined;
pct(L, P) -> lists:nth(max(1, min(length(L), round(P * length(L)))), L).

lat_text([]) -> "";
lat_text(L) -> io_lib:format("p50 ~b us, p99 ~b us, p99.9 ~b us", [pct(L, 0.5), pct(L, 0.99), pct(L, 0.999)]).

%% Ratio against the row's floor: ops/s over the floor's ops/s, and for
%% latency rows p50 over the floor's p50.
ratio(#{floor := none}) -> "";
ratio(#{floor := undefined}) -> "";
ratio(#{ops := Ops, lat := Lat, floor := F = #{ops := FOps}}) ->
    Base = io_lib:format("~.2fx ~s", [Ops / max(1, FOps), short(maps:get(name, F))]),
    case {Lat, maps:get(lat, F)} of
        {[_ | _], [_ | _] = FL} -> [Base, io_lib:format("; p50 ~.2fx", [pct(Lat, 0.5) / max(1, pct(FL, 0.5))])];
        _ -> Base
    end.

short(Name) -> lists:flatten(io_lib:format("(~s)", [Name])).

table(Rows) ->
    Head = "| workload | ops/s | p50 us | p99 us | p99.9 us | vs floor |\n|---|---:|---:|---:|---:|---|\n",
    [Head | [io_lib:format("| ~s | ~s | ~s | ~s | ~s | ~s |~n",
                           [maps:get(name, R), fmt(maps:get(ops, R)),
                            p(maps:get(lat, R), 0.5), p(maps:get(lat, R), 0.99),
                            p(maps:get(lat, R), 0.999), ratio(R)]) || R <- Rows]].

p([], _) -> "";
p(L, P) -> integer_to_list(pct(L, P)).

machine() ->
    Cpu = string:trim(os:cmd("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")),
    io_lib:format("~s cores, ~s, OTP ~s", [string:trim(os:cmd("nproc")), Cpu,
                                          erlang:system_info(otp_release)]).

plots(Rows) ->
    Find = fun(Name) -> [R || R = #{name := N} <- Rows, lists:flatten(N) =:= Name] end,
    Series = [{"hyper_lmdb read", fun(1) -> "read, 1 caller"; (N) -> io_lib:format("read, ~b callers", [N]) end},
              {"gen_server-mux echo", fun(N) -> io_lib:format("gen_server-mux echo, ~b callers", [N]) end},
              {"ETS read", fun(N) -> io_lib:format("ETS read, ~b callers", [N]) end}],
    Dat = [["callers\t", lists:join("\t", [["\"", S, "\""] || {S, _} <- Series]), "\n"] |
           [[integer_to_list(N), [["\t", case Find(lists:flatten(F(N))) of
                                             [#{ops := O}] -> integer_to_list(O);
                                             [] -> "NaN"
                                         end] || {_, F} <- Series], "\n"] || N <- [1, 4, 16, 64]]],
    ok = file:write_file(filename:join(?OUT, "throughput.dat"), Dat),
    Cdf = fun(Name) -> case Find(Name) of
                           [#{lat := L = [_ | _]}] ->
                               Len = length(L),
                               [io_lib:format("~b\t~.4f~n", [V, I / Len])
                                || {I, V} <- lists:zip(lists:seq(1, Len), L), I rem max(1, Len div 500) =:= 0];
                           _ -> []
                       end end,
    ok = file:write_file(filename:join(?OUT, "latency_store.dat"), Cdf("read, 1 caller")),
    ok = file:write_file(filename:join(?OUT, "latency_echo.dat"), Cdf("echo port, lockstep, 1 caller")),
    case os:find_executable("gnuplot") of
        false ->
            io:format("(gnuplot not installed: no plots)~n");
        _ ->
            Script = "set terminal png size 900,540 noenhanced\n"
                     "set output '" ?OUT "/throughput.png'\n"
                     "set title 'Point reads: ops/s vs concurrent callers'\n"
                     "set logscale x 2\nset logscale y 10\nset xlabel 'callers'\nset ylabel 'ops/s (log)'\nset key left top\n"
                     "plot for [i=2:4] '" ?OUT "/throughput.dat' using 1:i with linespoints title columnheader(i)\n"
                     "set output '" ?OUT "/latency_cdf.png'\n"
                     "set title 'Single-caller latency CDF'\nunset logscale\nset logscale x 10\n"
                     "set xlabel 'microseconds'\nset ylabel 'fraction'\nset key right bottom\n"
                     "plot '" ?OUT "/latency_store.dat' using 1:2 with lines title 'hyper_lmdb read', "
                     "'" ?OUT "/latency_echo.dat' using 1:2 with lines title 'echo port'\n",
            ok = file:write_file(filename:join(?OUT, "plots.gp"), Script),
            io:format("~s", [os:cmd("gnuplot " ?OUT "/plots.gp 2>&1")]),
            io:format("plots: ~s/throughput.png, ~s/latency_cdf.png~n", [?OUT, ?OUT])
    end.
