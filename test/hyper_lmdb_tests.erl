%%% EUnit tests: pure helpers, listing against a model, options, map
%%% growth, a killed port.  The per-operation API cases are in
%%% hyper_lmdb_api_SUITE (Common Test).
-module(hyper_lmdb_tests).
-include_lib("eunit/include/eunit.hrl").
-export([base_dir/0]).  % (also hyper_lmdb_tools_tests' fixture)

%%% ---------------------------------------------------------------------
%%% fixtures

store(Tag) ->
    store(Tag, #{}).

store(Tag, Extra) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    Dir = fresh_dir(Tag),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    S = maps:merge(#{<<"name">> => list_to_binary(Dir)}, Extra),
    {ok, _} = hyper_lmdb:start(S),
    S.

done(S = #{<<"name">> := Dir}) ->
    ok = hyper_lmdb:stop(S),
    _ = os:cmd("rm -rf '" ++ binary_to_list(Dir) ++ "' '" ++ binary_to_list(Dir) ++ "-alias'"),
    _ = file:del_dir(base_dir()),  % (once the run's last store is gone)
    ok.

%% A directory name under this run's base directory that nothing uses yet.
fresh_dir(Tag) ->
    filename:join(base_dir(), atom_to_list(Tag) ++ "_" ++
                                  integer_to_list(erlang:unique_integer([positive]))).

%% One directory per run of the tests, made on first use: under $TMPDIR
%% (or /tmp), named by this VM's OS pid and its start time, so that runs
%% side by side (a single test beside `make test`) never share, and never
%% clear, each other's stores (unique_integer/1 alone starts alike in
%% every fresh VM).  hyper_lmdb_tools_tests shares it.  It is removed
%% once empty; a failed test's store stays in it to be looked at.
base_dir() ->
    Base = case persistent_term:get(hyper_lmdb_eunit_base, undefined) of
               undefined ->
                   Tmp = case os:getenv("TMPDIR") of
                             T when is_list(T), T =/= "" -> T;
                             _ -> "/tmp"
                         end,
                   B = filename:join(Tmp, "hyper_lmdb_eunit." ++ os:getpid() ++ "." ++
                                         integer_to_list(erlang:system_time(millisecond))),
                   persistent_term:put(hyper_lmdb_eunit_base, B),
                   B;
               B ->
                   B
           end,
    ok = filelib:ensure_dir(filename:join(Base, "x")),
    Base.

%%% ---------------------------------------------------------------------
%%% pure helpers

path_test_() ->
    S = #{<<"name">> => <<"unused">>},
    [?_assertEqual(<<"a/b/c">>, hyper_lmdb:path(S, [<<"a">>, "b", c])),
     ?_assertEqual(<<"a/1">>, hyper_lmdb:path(S, [a, 1])),
     ?_assertEqual(<<"a/b">>, hyper_lmdb:path(S, <<"//a//b/">>)),
     ?_assertEqual(<<"ab/c">>, hyper_lmdb:path(S, "ab/c")),
     ?_assertEqual(<<>>, hyper_lmdb:path(S, [])),
     ?_assertEqual({error, {bad_argument, path}}, hyper_lmdb:path(S, 42)),
     ?_assertEqual({error, {bad_argument, path}}, hyper_lmdb:path(S, [self()])),
     ?_assertEqual([<<"a">>, <<"b">>], hyper_lmdb:add_path(S, [<<"a">>], [<<"b">>])),
     ?_assertEqual(<<"a/b">>, hyper_lmdb:add_path(S, <<"a/">>, <<"/b">>)),
     ?_assertEqual(<<"a/b/c">>, hyper_lmdb:add_path(S, "a", [<<"b">>, <<"c">>])),
     ?_assertEqual(local, hyper_lmdb:scope()),
     ?_assertEqual(local, hyper_lmdb:scope(S))].

options_test_() ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    N = list_to_binary(fresh_dir(opts)),
    [?_assertEqual({error, {bad_option, <<"name">>}}, hyper_lmdb:start(#{})),
     ?_assertEqual({error, {bad_option, <<"name">>}}, hyper_lmdb:start(#{<<"name">> => 42})),
     ?_assertEqual({error, {bad_option, <<"bogus">>}},
                   hyper_lmdb:start(#{<<"name">> => N, <<"bogus">> => 1})),
     ?_assertEqual({error, {bad_option, <<"durability">>}},
                   hyper_lmdb:start(#{<<"name">> => N, <<"durability">> => <<"maybe">>})),
     ?_assertEqual({error, {bad_option, <<"capacity">>}},
                   hyper_lmdb:start(#{<<"name">> => N, <<"capacity">> => -1})),
     ?_assertEqual({error, {bad_option, <<"read-only">>}},
                   hyper_lmdb:start(#{<<"name">> => N, <<"read-only">> => yes})),
     ?_assertEqual({error, {bad_option, <<"exclusive">>}},
                   hyper_lmdb:start(#{<<"name">> => N, <<"exclusive">> => 0})),
     ?_assertEqual({error, {bad_argument, store}}, hyper_lmdb:start(not_a_map))].

%%% ---------------------------------------------------------------------
%%% listing against a model

%% Segments drawn from bytes around '/' ('-' and '.' sort before it, '0'
%% after it) so children are met out of name order in key order.
segment() ->
    Alphabet = [<<"c">>, <<"c-">>, <<"c-x">>, <<"c.">>, <<"c0">>, <<"d">>, <<"-">>, <<"a">>,
                <<"c", 0>>, <<255>>, <<"c", 255>>],
    lists:nth(rand:uniform(length(Alphabet)), Alphabet).

random_key(Parents) ->
    P = lists:nth(rand:uniform(length(Parents)), Parents),
    Rest = [segment() || _ <- lists:seq(1, rand:uniform(3))],
    iolist_to_binary(lists:join($/, [P | Rest])).

model_list(Keys, Parent, From, Limit, Dir) ->
    Prefix = <<Parent/binary, "/">>,
    PL = byte_size(Prefix),
    Children = lists:usort([hd(binary:split(R, <<"/">>)) ||
                               <<P:PL/binary, R/binary>> <- Keys, P =:= Prefix, R =/= <<>>]),
    Ordered = case Dir of asc -> Children; desc -> lists:reverse(Children) end,
    InRange = [C || C <- Ordered,
                    From =:= undefined orelse
                        (Dir =:= asc andalso C >= From) orelse
                        (Dir =:= desc andalso C =< From)],
    case Limit of
        0 -> InRange;
        _ -> lists:sublist(InRange, Limit)
    end.

list_model_test_() ->
    {timeout, 120, fun() ->
        S = store(list_model),
        rand:seed(exsss, {1, 2, 3}),
        Parents = [<<"p">>, <<"p/c">>, <<"q">>],
        lists:foreach(
            fun(Round) ->
                ok = hyper_lmdb:reset(S),
                Keys = lists:usort([random_key(Parents) || _ <- lists:seq(1, 1 + rand:uniform(40))]),
                [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys],
                lists:foreach(
                    fun(_) ->
                        Parent = lists:nth(rand:uniform(length(Parents)), Parents),
                        From = case rand:uniform(3) of 1 -> undefined; _ -> segment() end,
                        Limit = rand:uniform(5) - 1,
                        Dir = case rand:uniform(2) of 1 -> asc; 2 -> desc end,
                        Opts = maps:filter(fun(_, V) -> V =/= undefined end,
                                           #{from => From, limit => Limit, direction => Dir}),
                        Expect = model_list(Keys, Parent, From, Limit, Dir),
                        Got = hyper_lmdb:list(S, Parent, Opts),
                        Context = {Round, Keys, Parent, Opts},
                        ?assertEqual({{ok, Expect}, Context}, {Got, Context})
                    end,
                    lists:seq(1, 30))
            end,
            lists:seq(1, 200)),
        done(S)
    end}.

%%% ---------------------------------------------------------------------
%%% the store as a whole

map_growth_test_() ->
    {timeout, 120, fun() ->
        S = store(growth, #{<<"capacity">> => 1 bsl 20}),
        Big = crypto:strong_rand_bytes(8 bsl 20),
        [?assertEqual(ok, hyper_lmdb:write(S, [<<"big">>, I], Big)) || I <- lists:seq(1, 4)],
        [?assertEqual({ok, Big}, hyper_lmdb:read(S, [<<"big">>, I])) || I <- lists:seq(1, 4)],
        #{map_grows := Grows, map_size := Size} = hyper_lmdb:stats(S),
        ?assert(Grows > 0),
        ?assert(Size >= 32 bsl 20),
        done(S)
    end}.

read_only_test() ->
    S = store(ro),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    ok = hyper_lmdb:stop(S),
    RO = S#{<<"read-only">> => true},
    {ok, _} = hyper_lmdb:start(RO),
    ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(RO, <<"k">>)),
    ?assertEqual({error, read_only}, hyper_lmdb:write(RO, <<"k">>, <<"w">>)),
    ?assertEqual({error, read_only}, hyper_lmdb:make_link(RO, <<"k">>, <<"l">>)),
    ?assertEqual({error, read_only}, hyper_lmdb:write_many(RO, [{delete, <<"k">>}])),
    ?assertEqual({error, read_only}, hyper_lmdb:reset(RO)),
    ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(RO, <<"k">>)),
    ?assertMatch(#{read_only := true}, hyper_lmdb:stats(RO)),
    done(RO).

%% A port killed with SIGKILL is restarted; committed data is there and
%% the store serves again.
killed_port_test_() ->
    {timeout, 60, fun() ->
        S = store(kill),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        #{os_pid := OsPid} = hyper_lmdb:stats(S),
        os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ?assertEqual({ok, <<"v">>}, wait_read(S, <<"k">>, 100)),
        #{port_restarts := R, os_pid := NewPid} = hyper_lmdb:stats(S),
        ?assertEqual(1, R),
        ?assertNotEqual(OsPid, NewPid),
        ok = hyper_lmdb:write(S, <<"k2">>, <<"v2">>),
        ?assertEqual({ok, <<"v2">>}, hyper_lmdb:read(S, <<"k2">>)),
        done(S)
    end}.

%% Requests the store's server has sent its port and not had answered.
pending(Pid) ->
    maps:get(pending, hyper_lmdb_server:port_info(Pid)).

%% exit(Pid, kill), returning once Pid is dead.
kill_and_wait(Pid) ->
    Ref = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.

wait_read(S, K, 0) -> hyper_lmdb:read(S, K);
wait_read(S, K, N) ->
    case hyper_lmdb:read(S, K) of
        {ok, _} = R -> R;
        _ -> timer:sleep(10), wait_read(S, K, N - 1)
    end.

%% Stopping the store closes the port's stdin; the port exits by itself.
port_exits_on_stop_test() ->
    S = store(stopexit),
    #{os_pid := OsPid} = hyper_lmdb:stats(S),
    ok = hyper_lmdb:stop(S),
    ?assert(gone(OsPid, 200)),
    os:cmd("rm -rf '" ++ binary_to_list(maps:get(<<"name">>, S)) ++ "'").

%% Runs Fun, then kills OsPid if it still runs: a port that Fun makes
%% hang never reads its input to the end, so once its store is gone
%% nothing else would end it.  Pass or fail; and a test that outlives its
%% timeout is killed (EUnit kills the process running the module's
%% tests), skipping the after clause: a guard watching it kills it then.
with_hung_port(OsPid, Fun) ->
    {alive, Start} = os_proc(OsPid),
    Self = self(),
    Guard = spawn(fun() ->
                      Ref = monitor(process, Self),
                      receive
                          done -> ok;
                          {'DOWN', Ref, process, _, _} -> kill_if_same(OsPid, Start)
                      end
                  end),
    try
        Fun()
    after
        kill_if_same(OsPid, Start),
        Guard ! done
    end.

%% kill -9 OsPid if it still runs and is the process that started at
%% Start (its pid, once free, may name another process).
kill_if_same(OsPid, Start) ->
    case os_proc(OsPid) of
        {alive, Start} -> _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)), ok;
        _ -> ok
    end.

%% Whether the OS process OsPid has ended, asked N times 10 ms apart.
gone(_, 0) -> false;
gone(OsPid, N) ->
    case os_proc(OsPid) of
        gone -> true;
        {alive, _} -> timer:sleep(10), gone(OsPid, N - 1)
    end.

%% {alive, StartTime} of a running process, from /proc/PID/stat; gone
%% when there is none, or only a zombie: kill -0 succeeds on one, and a
%% process whose parent died is reparented to PID 1, which in some
%% containers never reaps it.  Without /proc (not Linux), kill -0.
os_proc(OsPid) ->
    P = integer_to_list(OsPid),
    case file:read_file("/proc/" ++ P ++ "/stat") of
        {ok, B} ->
            try
                [_, Rest] = string:split(B, <<") ">>, trailing),  % (the name may hold one)
                [State | F] = binary:split(Rest, <<" ">>, [global]),
                case State of
                    <<"Z">> -> gone;
                    <<"X">> -> gone;
                    _ -> {alive, lists:nth(19, F)}
                end
            catch
                error:_ -> gone  % (it ended while we read)
            end;
        {error, _} ->
            case filelib:is_dir("/proc/self") of
                true -> gone;
                false ->
                    case os:cmd("kill -0 " ++ P ++ " 2>/dev/null && echo alive") of
                        "alive\n" -> {alive, unknown};
                        _ -> gone
                    end
            end
    end.

async_durability_test() ->
    S = store(async, #{<<"durability">> => <<"async">>}),
    [ok = hyper_lmdb:write(S, [<<"a">>, I], integer_to_binary(I)) || I <- lists:seq(1, 500)],
    %% read-your-writes: the read is queued behind the writes
    ?assertEqual({ok, <<"500">>}, hyper_lmdb:read(S, [<<"a">>, 500])),
    ok = hyper_lmdb:sync(S),
    ?assertMatch(#{durability := async, entries := 500}, hyper_lmdb:stats(S)),
    done(S).

%% In commit mode a burst's writes commit eight at a time (the port's
%% BATCH_MAX_COMMIT), so that their answers leave while it serves the rest;
%% every one of them is there all the same.
commit_batches_of_eight_test() ->
    S = store(commit_batches, #{}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                [ok = hyper_lmdb:write(S, [<<"w">>, N, I], <<"v">>) || I <- lists:seq(1, 50)],
                Self ! {done, self()}
            end) || N <- lists:seq(1, 32)],
    [receive {done, P} -> ok end || P <- Pids],
    #{batched_writes := 1600, max_batch := Max, entries := 1600} = hyper_lmdb:stats(S),
    ?assert(Max =< 8),
    ?assertEqual([{ok, <<"v">>}], lists:usort(hyper_lmdb:read_many(
        S, [[<<"w">>, N, I] || N <- lists:seq(1, 32), I <- lists:seq(1, 50)]))),
    done(S).

fsync_durability_test() ->
    S = store(fsync, #{<<"durability">> => <<"fsync">>}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                [ok = hyper_lmdb:write(S, [<<"w">>, N, I], <<"v">>) || I <- lists:seq(1, 20)],
                Self ! {done, self()}
            end) || N <- lists:seq(1, 16)],
    [receive {done, P} -> ok end || P <- Pids],
    #{fsyncs := F, commits := C, batched_writes := W} = hyper_lmdb:stats(S),
    ?assertEqual(320, W),
    ?assertEqual(C, F),
    done(S).

%% Callers wait without a monitor (hyper_lmdb_server:request/4): a server
%% killed outright, which never runs terminate/2, is noticed by the
%% waiting callers' liveness probe.  Every call returns a value within a
%% bounded time, and the store serves again (the next call starts it).
server_killed_outright_test_() ->
    {timeout, 60, fun() ->
        S = store(killserver),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        Self = self(),
        Callers = [spawn_link(fun() -> Self ! {self(), call_loop(S, 0, [])} end)
                   || _ <- lists:seq(1, 8)],
        timer:sleep(50),
        T0 = erlang:monotonic_time(millisecond),
        exit(Pid, kill),
        timer:sleep(100),
        [C ! stop || C <- Callers],
        Results = lists:append([receive {C, R} -> R after 10000 -> [stuck] end || C <- Callers]),
        Took = erlang:monotonic_time(millisecond) - T0,
        ?assertEqual([], [R || R <- Results, not expected_result(R)]),
        ?assert(Took < 5000),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
        {ok, #{<<"pid">> := Pid2}} = hyper_lmdb:start(S),
        ?assertNotEqual(Pid, Pid2),
        done(S)
    end}.

call_loop(S, N, Acc) ->
    receive
        stop -> Acc
    after 0 ->
        R = case N rem 2 of
                0 -> hyper_lmdb:read(S, <<"k">>);
                1 -> hyper_lmdb:write(S, <<"k">>, <<"v">>)
            end,
        call_loop(S, N + 1, [R | Acc])
    end.

expected_result({ok, <<"v">>}) -> true;
expected_result(ok) -> true;
expected_result({error, _}) -> true;
expected_result(_) -> false.

%% A call that times out gets {error, timeout}, and its late answer never
%% reaches the caller's mailbox; the caller's next call works.
timeout_leaves_no_message_test_() ->
    {timeout, 60, fun() ->
        S = store(timeout, #{<<"fault-injection">> => true, <<"watchdog">> => 1000}),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        #{os_pid := OsPid} = hyper_lmdb_server:port_info(Pid),
        with_hung_port(OsPid, fun() ->
            ok = hyper_lmdb_server:inject_fault(maps:get(<<"name">>, S), hang),
            %% (the call under test; the others have the default timeout)
            ?assertEqual({error, timeout}, hyper_lmdb:read(S#{<<"timeout">> => 200}, <<"k">>)),
            %% the watchdog kills the hung port and the server retries the
            %% reads it held; the answer to ours must be dropped.  The retry
            %% reaches the new port before the next read, so a stray
            %% answer would be in the mailbox before that read's.
            ?assert(hyper_lmdb_test_util:wait_until(fun() -> maps:get(restarts, hyper_lmdb_server:port_info(Pid)) >= 1 end,
                               10000)),
            ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
            receive Stray -> ?assertEqual(no_stray_message, Stray)
            after 100 -> ok
            end
        end),
        done(S)
    end}.

%% async: ok means queued.  Stopping the store while other processes
%% write loses none of their acknowledged writes, also those still in the
%% server's mailbox when it stops (terminate/2 hands them to the port).
%% The writers go on: their next call starts the store again.
async_writes_survive_stop_test_() ->
    {timeout, 60, fun() ->
        S = store(asyncstop, #{<<"durability">> => <<"async">>}),
        Self = self(),
        N = 3000,
        Writers = [spawn_link(fun() ->
                       Acked = [I || I <- lists:seq(1, N),
                                     hyper_lmdb:write(S, [W, I], integer_to_binary(I)) =:= ok],
                       Self ! {self(), W, Acked}
                   end) || W <- [<<"w1">>, <<"w2">>, <<"w3">>, <<"w4">>]],
        timer:sleep(5),
        ok = hyper_lmdb:stop(S),
        Acked = [receive {P, W, A} -> {W, A} end || P <- Writers],
        {ok, _} = hyper_lmdb:start(S),
        ok = hyper_lmdb:sync(S),
        Missing = [{W, I} || {W, A} <- Acked, {I, R} <- lists:zip(A, hyper_lmdb:read_many(S, [[W, I] || I <- A])),
                             R =/= {ok, integer_to_binary(I)}],
        ?assertEqual([], Missing),
        ?assert(lists:sum([length(A) || {_, A} <- Acked]) > N),
        done(S)
    end}.

%% A stopped store's port goes on committing what it was handed until it
%% sees EOF; a store started again at once must not run a second port
%% beside it (the old port's last commits would land after the new
%% port's writes).  The new port waits for the old one to leave the
%% directory (port_src/main.c, lock_dir).  Async mode, with a long queue
%% handed over at the stop, makes the old port's tail long.
restart_waits_for_old_port_test_() ->
    {timeout, 120, fun() ->
        S = store(restartorder, #{<<"durability">> => <<"async">>}),
        Bulk = binary:copy(<<"x">>, 100),
        ok = hyper_lmdb:write_many(S, [{write, [<<"bulk">>, I], Bulk} || I <- lists:seq(1, 50000)]),
        ok = hyper_lmdb:write(S, <<"last">>, <<"old">>),
        {ok, #{<<"pid">> := Pid1}} = hyper_lmdb:start(S),
        OsPid1 = maps:get(os_pid, hyper_lmdb_server:port_info(Pid1)),
        ok = hyper_lmdb:stop(S),
        %% the first call starts the store again
        ?assertEqual({ok, <<"old">>}, hyper_lmdb:read(S, <<"last">>)),
        ?assert(gone(OsPid1, 100)),  % (it let go of the lock just before it exits)
        ok = hyper_lmdb:write(S, <<"last">>, <<"new">>),
        ok = hyper_lmdb:sync(S),
        ?assertEqual({ok, <<"new">>}, hyper_lmdb:read(S, <<"last">>)),
        timer:sleep(300),
        ?assertEqual({ok, <<"new">>}, hyper_lmdb:read(S, <<"last">>)),
        ?assertMatch(#{entries := 50001}, hyper_lmdb:stats(S)),
        done(S)
    end}.

%% The same directory served twice at once: this node refuses a second
%% name for a directory it serves (here a symbolic link) at once, and a
%% port whose directory's lock another process holds (another node, or a
%% port still finishing its input after its store stopped; here flock(1))
%% waits for it, and opens once it is let go.  Meanwhile other stores start
%% as ever.  (Names that differ only in slashes name one store:
%% same_store_whatever_the_slashes.)
second_port_waits_test_() ->
    {timeout, 120, fun() ->
        S = store(twice),
        #{<<"name">> := Dir} = S,
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        S2 = S#{<<"name">> => alias_of(S)},
        ?assertMatch({error, {open_failed, ebusy, _}}, hyper_lmdb:start(S2)),
        ok = hyper_lmdb:stop(S),
        Lock = binary_to_list(Dir) ++ "/hyper_lmdb.lock",
        Holder = open_port({spawn_executable, os:find_executable("flock")},
                           [{args, [Lock, "sh", "-c", "echo held; read x"]}, binary, use_stdio]),
        receive {Holder, {data, <<"held\n">>}} -> ok after 10000 -> ?assert(false) end,
        Self = self(),
        spawn_link(fun() -> Self ! {second, hyper_lmdb:start(S2)} end),
        timer:sleep(300),
        receive {second, Early} -> ?assertEqual(still_waiting, Early) after 0 -> ok end,
        %% meanwhile other stores start as ever: the wait is not the
        %% supervisor's (hyper_lmdb_server:start_link/2)
        Other = store(other),
        ?assertEqual(ok, hyper_lmdb:write(Other, <<"k">>, <<"v">>)),
        done(Other),
        receive {second, Early2} -> ?assertEqual(still_waiting, Early2) after 0 -> ok end,
        port_close(Holder),  % (its shell reads end of input and exits: the lock goes)
        receive {second, R} -> ?assertMatch({ok, _}, R) after 20000 -> ?assert(false) end,
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S2, <<"k">>)),
        ok = hyper_lmdb:stop(S2),
        done(S)
    end}.

%% Ids are taken before a request is sent, so a caller preempted in
%% between reaches the server after a caller with a later id.  A port that
%% dies after committing both must see them replayed in the order they
%% reached it, not in id order: here the later id arrives first, and after
%% the crash the store must hold what it held before it.
replay_keeps_arrival_order_test_() ->
    {timeout, 60, fun() ->
        Final = fun(Crash) ->
            S = store(arrival, #{<<"durability">> => <<"async">>, <<"fault-injection">> => true}),
            #{<<"name">> := Name} = S,
            ok = hyper_lmdb:write(S, <<"warm">>, <<"up">>),
            {ok, {Pid, Counter, true}} = hyper_lmdb_server:find(Name),
            [ok = hyper_lmdb_server:inject_fault(Name, crash_after_commit) || Crash],
            sys:suspend(Pid),
            I1 = hyper_lmdb_server:new_id(),
            I2 = hyper_lmdb_server:new_id(),
            atomics:add(Counter, 1, 2),  % as request/4 counts an async write
            Pid ! {req, I2, async, write, hyper_lmdb_server:frame(I2, {write, <<"k">>, <<"b">>})},
            Pid ! {req, I1, async, write, hyper_lmdb_server:frame(I1, {write, <<"k">>, <<"a">>})},
            sys:resume(Pid),
            ok = hyper_lmdb:sync(S),
            R = hyper_lmdb:read(S, <<"k">>),
            #{restarts := Restarts} = hyper_lmdb_server:port_info(Pid),
            done(S),
            {R, Restarts > 0}
        end,
        ?assertEqual({{ok, <<"a">>}, false}, Final(false)),
        ?assertEqual({{ok, <<"a">>}, true}, Final(true))
    end}.

%% An async write is answered before the port sees it, but a write the
%% port refuses whatever the store holds is refused as in commit mode, not
%% answered ok and lost.  A read-only store is never early.
async_refuses_what_commit_refuses_test_() ->
    {timeout, 60, fun() ->
        Long = binary:copy(<<"k">>, 600),
        Huge = binary:copy(<<"h">>, 5000),
        Bad = [fun(S) -> hyper_lmdb:write(S, Long, <<"v">>) end,
               fun(S) -> hyper_lmdb:write(S, <<"/">>, <<"v">>) end,
               fun(S) -> hyper_lmdb:make_group(S, Long) end,
               fun(S) -> hyper_lmdb:delete(S, Long) end,
               fun(S) -> hyper_lmdb:make_link(S, <<"a">>, Long) end,
               fun(S) -> hyper_lmdb:write_many(S, [{write, <<"ok1">>, <<"v">>},
                                                   {write, Long, <<"v">>}]) end,
               %% a link's target: a path of at most 4096 bytes, not empty
               fun(S) -> hyper_lmdb:make_link(S, Huge, <<"n">>) end,
               fun(S) -> hyper_lmdb:make_link(S, <<"//">>, <<"n">>) end,
               fun(S) -> hyper_lmdb:write_many(S, [{write, <<"ok1">>, <<"v">>},
                                                   {make_link, Huge, <<"n">>}]) end,
               fun(S) -> hyper_lmdb:write(S, <<Long/binary, "/", Huge/binary>>, <<"v">>) end],
        Answers = fun(Extra) ->
            S = store(asyncbad, Extra),
            R = [F(S) || F <- Bad],
            ok = hyper_lmdb:sync(S),
            R2 = {R, hyper_lmdb:read(S, <<"ok1">>)},
            done(S),
            R2
        end,
        {Commit, not_found} = Answers(#{}),
        ?assertEqual([], [A || A <- Commit, A =:= ok]),
        ?assertEqual({Commit, not_found}, Answers(#{<<"durability">> => <<"async">>})),
        %% read-only
        Dir = fresh_dir(asyncro),
        W = #{<<"name">> => list_to_binary(Dir)},
        {ok, _} = hyper_lmdb:start(W),
        ok = hyper_lmdb:stop(W),
        RO = W#{<<"read-only">> => true, <<"durability">> => <<"async">>},
        {ok, _} = hyper_lmdb:start(RO),
        ?assertEqual({error, read_only}, hyper_lmdb:write(RO, <<"k">>, <<"v">>)),
        done(RO)
    end}.

%% An async write that kills the port whenever it is applied (fault
%% injection's poison key stands for a port bug that one request sets off)
%% is replayed into every new port with the writes it was sent with.  It
%% must die alone: after two deaths the server replays one request at a
%% time, so the poison reaches the retry limit and is dropped (logged) while
%% every other acknowledged write, before and after it, lands.
async_poison_write_dies_alone_test_() ->
    {timeout, 120, fun() ->
        S = store(asyncpoison, #{<<"durability">> => <<"async">>,
                                 <<"fault-injection">> => true}),
        Keys = fun(P) -> [<<P/binary, (integer_to_binary(I))/binary>> || I <- lists:seq(1, 10)] end,
        [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys(<<"a">>)],
        ok = hyper_lmdb:write(S, <<"hyper_lmdb.fault/crash">>, <<"boom">>),
        [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys(<<"b">>)],
        %% sync/1 is answered port_exit while the port keeps dying; then
        %% it says, once, that one acknowledged write was lost
        Synced = fun Sync(0) -> timeout;
                     Sync(N) -> case hyper_lmdb:sync(S) of
                                    {error, {port_exit, _}} -> timer:sleep(100), Sync(N - 1);
                                    Other -> Other
                                end
                 end(600),
        ?assertEqual({error, {async_writes_lost, 1}}, Synced),
        ?assertEqual(ok, hyper_lmdb:sync(S)),
        ?assertMatch(#{async_writes_lost := 1}, hyper_lmdb:stats(S)),
        ?assertEqual([{ok, <<"v">>} || _ <- lists:seq(1, 20)],
                     hyper_lmdb:read_many(S, Keys(<<"a">>) ++ Keys(<<"b">>))),
        ?assertEqual(not_found, hyper_lmdb:read(S, <<"hyper_lmdb.fault/crash">>)),
        #{port_restarts := R} = hyper_lmdb:stats(S),
        ?assert(R >= 20),
        %% and the store is back to normal: a burst of writes and reads
        ok = hyper_lmdb:write_many(S, [{write, <<"c">>, <<"1">>}]),
        ?assertEqual({ok, <<"1">>}, hyper_lmdb:read(S, <<"c">>)),
        done(S)
    end}.

%% Acknowledged async writes lost with a server that gave up on its port
%% (its directory gone for longer than a restart is tried): the next
%% store's sync says so, and its stats count them, though the count's
%% server is gone (found by a review: a new server began from nothing).
async_loss_outlives_its_server_test_() ->
    {timeout, 120, fun() ->
        S = #{<<"name">> := Name} = store(asyncgaveup, #{<<"durability">> => <<"async">>}),
        Dir = binary_to_list(Name),
        ok = hyper_lmdb:write(S, <<"first">>, <<"v">>),
        ok = hyper_lmdb:sync(S),
        #{os_pid := OsPid} = hyper_lmdb:stats(S),
        {ok, #{<<"pid">> := Server}} = hyper_lmdb:start(S),
        Mon = monitor(process, Server),
        %% the port stopped, so that the writes stay unconfirmed
        "" = os:cmd("kill -STOP " ++ integer_to_list(OsPid)),
        [ok = hyper_lmdb:write(S, <<"k", (integer_to_binary(I))/binary>>, <<"v">>)
         || I <- lists:seq(1, 20)],
        "" = os:cmd("mv '" ++ Dir ++ "' '" ++ Dir ++ ".away' && touch '" ++ Dir ++ "'"),
        "" = os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
        receive {'DOWN', Mon, process, _, _} -> ok after 60000 -> ?assert(false) end,
        "" = os:cmd("rm '" ++ Dir ++ "' && mv '" ++ Dir ++ ".away' '" ++ Dir ++ "'"),
        ?assertEqual({error, {async_writes_lost, 20}}, hyper_lmdb:sync(S)),
        ?assertEqual(ok, hyper_lmdb:sync(S)),
        ?assertMatch(#{async_writes_lost := 20}, hyper_lmdb:stats(S)),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"first">>)),
        done(S)
    end}.

%% stop/1 right after acknowledged async writes, one of which kills the
%% port: the server serves the port until every write is confirmed, with
%% the usual restarts and one-at-a-time replay, before it lets it go
%% (found by a review: stopping at once lost every write in flight).
async_stop_confirms_every_write_test_() ->
    {timeout, 120, fun() ->
        S = store(asyncstop, #{<<"durability">> => <<"async">>,
                               <<"fault-injection">> => true}),
        Keys = fun(P) -> [<<P/binary, (integer_to_binary(I))/binary>> || I <- lists:seq(1, 10)] end,
        [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys(<<"a">>)],
        ok = hyper_lmdb:write(S, <<"hyper_lmdb.fault/crash">>, <<"boom">>),
        [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys(<<"b">>)],
        ok = hyper_lmdb:stop(S),
        R = maps:remove(<<"fault-injection">>, S#{<<"durability">> => <<"commit">>}),
        ?assertEqual([{ok, <<"v">>} || _ <- lists:seq(1, 20)],
                     hyper_lmdb:read_many(R, Keys(<<"a">>) ++ Keys(<<"b">>))),
        ?assertEqual(not_found, hyper_lmdb:read(R, <<"hyper_lmdb.fault/crash">>)),
        done(R)
    end}.

%% Async writers while the store is stopped and started again under them:
%% a write is applied once (in the old store, or, refused there, in the
%% new one), never in both.  Each write_many is one a second application
%% would betray: its write of N/a/b would go through the link N/d -> N/a's
%% target... that is, leave the key N/d/b behind.
async_writes_across_stops_apply_once_test_() ->
    {timeout, 120, fun() -> across_stops(<<"async">>) end}.

%% The same with writes that wait for their commit: one in flight at a stop
%% is answered by the old port, not answered not_started and sent again.
writes_across_stops_apply_once_test_() ->
    {timeout, 120, fun() -> across_stops(<<"commit">>) end}.

across_stops(Durability) ->
        S = store(asyncgate, #{<<"durability">> => Durability}),
        %% Writes and stops for 2 s, and then on until there were more
        %% than 10 stops and 500 writes answered ok (a slow machine gets
        %% there later), for at most 60 s.
        T0 = erlang:monotonic_time(millisecond),
        Done = atomics:new(1, []),
        Oks = counters:new(1, [write_concurrency]),
        Pids = [hyper_lmdb_test_util:pair_writer(S, W, Done, 0, Oks) || W <- lists:seq(1, 8)],
        Stops = fun St(K) ->
                    Ms = erlang:monotonic_time(millisecond) - T0,
                    Enough = Ms >= 2000 andalso K > 10 andalso counters:get(Oks, 1) > 500,
                    case Enough orelse Ms >= 60000 of
                        false -> timer:sleep(40), ok = hyper_lmdb:stop(S), St(K + 1);
                        true -> K
                    end
                end(0),
        atomics:put(Done, 1, 1),
        ?assert(Stops > 10),
        Written = lists:append([receive {written, P, D} -> D end || P <- Pids]),
        ok = hyper_lmdb:sync(S),
        ?assertEqual({[], []}, hyper_lmdb_test_util:pairs_applied_once(S, Written)),
        ?assert(length(Written) > 500),
        done(S).

%% The port dies after it committed async writes and before the server
%% heard: replaying them would apply them twice, and a write after a link
%% it made lands elsewhere the second time (found by the model test: a
%% key nobody wrote).  The new port reports the last request committed
%% (recorded in the commit in the tagged format, beside the store in
%% hb_store_lmdb's), and the server replays only what came after it.
async_committed_writes_are_not_replayed_test_() ->
    [{atom_to_list(F), {timeout, 60, fun() -> not_replayed(F) end}}
     || F <- [tagged, hb_store_lmdb]].

not_replayed(Format) ->
        S = store(asyncreplay, #{<<"durability">> => <<"async">>,
                                 <<"format">> => atom_to_binary(Format),
                                 <<"fault-injection">> => true}),
        #{<<"name">> := Name} = S,
        ok = hyper_lmdb_server:inject_fault(Name, crash_after_commit),
        ok = hyper_lmdb:write_many(S, [{write, <<"a/b">>, <<"1">>}, {make_link, <<"d">>, <<"a">>}]),
        Synced = fun() -> fun Sync(0) -> timeout;
                             Sync(N) -> case hyper_lmdb:sync(S) of
                                            ok -> ok;
                                            {error, {port_exit, _}} -> timer:sleep(50), Sync(N - 1)
                                        end
                          end(100)
                 end,
        ?assertEqual(ok, Synced()),
        ?assertMatch(#{port_restarts := 1}, hyper_lmdb:stats(S)),
        ?assertEqual({ok, [{<<"a">>, link, <<"d">>}, {<<"a/b">>, value, <<"1">>}], undefined},
                     hyper_lmdb:scan(S, #{})),
        ?assertEqual(not_found, hyper_lmdb:read(S, <<"d/b">>)),
        %% and writes after the restart are replayed as ever when the port
        %% dies before it commits them
        ok = hyper_lmdb_server:inject_fault(Name, crash_before_commit),
        ok = hyper_lmdb:write(S, <<"e">>, <<"2">>),
        ?assertEqual(ok, Synced()),
        ?assertMatch(#{port_restarts := 2}, hyper_lmdb:stats(S)),
        ?assertEqual({ok, <<"2">>}, hyper_lmdb:read(S, <<"e">>)),
        done(S).

%% A path longer than a key may name one through a link at a prefix: an
%% async store cannot tell before the port does, so it waits for the
%% port's answer, and the write lands (or is refused) as in commit mode.
async_long_path_through_link_test_() ->
    {timeout, 60, fun() ->
        S = store(asynclong, #{<<"durability">> => <<"async">>}),
        L = binary:copy(<<"l">>, 400),
        ok = hyper_lmdb:make_link(S, <<"d">>, L),
        ok = hyper_lmdb:write(S, <<L/binary, "/", (binary:copy(<<"r">>, 200))/binary>>, <<"v">>),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"d/", (binary:copy(<<"r">>, 200))/binary>>)),
        ?assertEqual({error, {key_too_long, 601}},
                     hyper_lmdb:write(S, binary:copy(<<"k">>, 601), <<"v">>)),
        ?assertEqual(ok, hyper_lmdb:write_many(S, [{write, <<L/binary, "/x">>, <<"x">>},
                                                   {write, <<"y">>, <<"y">>}])),
        ?assertEqual([{ok, <<"x">>}, {ok, <<"y">>}], hyper_lmdb:read_many(S, [<<"d/x">>, <<"y">>])),
        done(S)
    end}.

%% A server killed outright raises no stopping flag: an async write sent
%% to it afterwards must not be answered ok (it would go nowhere).  The
%% write starts the store again instead, and lands.
async_write_after_server_killed_test_() ->
    {timeout, 60, fun() ->
        S = store(asynckill, #{<<"durability">> => <<"async">>}),
        ok = hyper_lmdb:write(S, <<"before">>, <<"1">>),
        ok = hyper_lmdb:sync(S),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        kill_and_wait(Pid),
        Acks = [hyper_lmdb:write(S, [<<"after">>, I], <<"v">>) || I <- lists:seq(1, 200)],
        ?assertEqual([ok], lists:usort(Acks)),
        ok = hyper_lmdb:sync(S),
        Rs = hyper_lmdb:read_many(S, [[<<"after">>, I] || I <- lists:seq(1, 200)]),
        ?assertEqual([{ok, <<"v">>}], lists:usort(Rs)),
        ?assertEqual({ok, <<"1">>}, hyper_lmdb:read(S, <<"before">>)),
        done(S)
    end}.

%% The caller's own messages are its own: one shaped like {Id, Term},
%% with Id the integer the next request will take, is neither taken for
%% the answer nor consumed.
callers_messages_are_left_alone_test() ->
    S = store(ownmsgs),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    Next = hyper_lmdb_server:new_id() + 1,
    Mine = [{Next + I, {ok, <<"not yours">>}} || I <- lists:seq(0, 20)],
    [self() ! M || M <- Mine],
    ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
    ?assertEqual(ok, hyper_lmdb:write(S, <<"k">>, <<"w">>)),
    ?assertEqual({ok, <<"w">>}, hyper_lmdb:read(S, <<"k">>)),
    Got = [receive M -> M after 0 -> missing end || _ <- Mine],
    ?assertEqual(Mine, Got),
    done(S).

%% A port that cannot be started again at once (here its directory is
%% briefly not a directory) is tried again: the unconfirmed async writes
%% wait for it, and land once it runs.
async_writes_wait_for_a_restart_test_() ->
    {timeout, 60, fun() ->
        S = store(reopen, #{<<"durability">> => <<"async">>, <<"fault-injection">> => true}),
        #{<<"name">> := Name} = S,
        ok = hyper_lmdb:write(S, <<"warm">>, <<"up">>),
        ok = hyper_lmdb:sync(S),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        #{os_pid := OsPid} = hyper_lmdb_server:port_info(Pid),
        Keys = [[<<"k">>, I] || I <- lists:seq(1, 5)],
        Dir = binary_to_list(Name),
        with_hung_port(OsPid, fun() ->
            ok = hyper_lmdb_server:inject_fault(Name, hang),
            [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys],
            ok = file:rename(Dir, Dir ++ ".away"),
            ok = file:write_file(Dir, <<"not a directory">>),
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid))
        end),
        timer:sleep(500),
        %% back in one step (a retry must never find no name there: it
        %% would make a new, empty store): a link to the directory
        %% replaces the file
        ok = file:make_symlink(Dir ++ ".away", Dir ++ ".link"),
        ok = file:rename(Dir ++ ".link", Dir),
        ok = hyper_lmdb:sync(S),
        ?assertEqual(lists:duplicate(5, {ok, <<"v">>}), hyper_lmdb:read_many(S, Keys)),
        ?assertEqual(Pid, maps:get(<<"pid">>, element(2, hyper_lmdb:start(S)))),
        done(S),
        os:cmd("rm -rf '" ++ Dir ++ ".away'")
    end}.

%% commit mode: the disk is flushed within a sync interval of a commit,
%% also while writes never stop (an idle timer alone would never fire).
sync_interval_holds_under_load_test_() ->
    {timeout, 60, fun() ->
        S = store(syncload, #{<<"sync-interval">> => 100}),
        #{background_syncs := B0} = hyper_lmdb:stats(S),
        %% every 100 ms if the disk keeps up; the old idle timer made none.
        %% Writes without a pause until there were three (a slow disk
        %% takes longer), for at most 20 s.
        Until = erlang:monotonic_time(millisecond) + 20000,
        B1 = write_until_syncs(S, B0 + 3, Until, 0),
        ?assert(B1 - B0 >= 2),
        done(S)
    end}.

%% Writes until the store has made Syncs background syncs or Until has
%% come; the count then.
write_until_syncs(S, Syncs, Until, I) ->
    ok = hyper_lmdb:write(S, [<<"w">>, I rem 1000], <<"v">>),
    case I rem 50 of
        49 ->
            #{background_syncs := B} = hyper_lmdb:stats(S),
            case B >= Syncs orelse erlang:monotonic_time(millisecond) >= Until of
                true -> B;
                false -> write_until_syncs(S, Syncs, Until, I + 1)
            end;
        _ ->
            write_until_syncs(S, Syncs, Until, I + 1)
    end.

%% A write made beside a busy store (the command line's put opens its own
%% port, not exclusive) is seen by the store's next read, though a steady
%% load of reads never lets the port sit idle.
foreign_commit_seen_under_load_test_() ->
    {timeout, 60, fun() ->
        S = store(foreign),
        ok = hyper_lmdb:write(S, <<"k">>, <<"old">>),
        Self = self(),
        Loader = spawn_link(fun() -> read_loop(S, Self) end),
        receive {Loader, reading} -> ok end,
        Beside = #{<<"name">> => alias_of(S), <<"exclusive">> => false},
        {ok, _} = hyper_lmdb:start(Beside),
        ok = hyper_lmdb:write(Beside, <<"k">>, <<"new">>),
        ok = hyper_lmdb:stop(Beside),
        ?assertEqual({ok, <<"new">>}, hyper_lmdb:read(S, <<"k">>)),
        Loader ! stop,
        receive {Loader, done} -> ok end,
        done(S)
    end}.

%% A port that is hung when its store stops never reads to the end of its
%% input, so it would hold the directory's lock for good.  It is killed
%% once the watchdog's time has gone by, and the store opens again.
hung_port_at_stop_is_reaped_test_() ->
    {timeout, 60, fun() ->
        S = store(reap, #{<<"fault-injection">> => true, <<"watchdog">> => 1000,
                          <<"timeout">> => 500}),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        #{os_pid := OsPid} = hyper_lmdb_server:port_info(Pid),
        with_hung_port(OsPid, fun() ->
            ok = hyper_lmdb_server:inject_fault(maps:get(<<"name">>, S), hang),
            Self = self(),
            spawn(fun() -> Self ! {reader, hyper_lmdb_server:request(element(2,
                      hyper_lmdb_server:find(maps:get(<<"name">>, S))), read, {read, <<"k">>}, 5000)} end),
            %% (the port hangs on that read: it must be at the port first)
            ?assert(hyper_lmdb_test_util:wait_until(fun() -> pending(Pid) >= 1 end, 10000)),
            ok = hyper_lmdb:stop(S),
            receive {reader, _} -> ok after 5000 -> ?assert(false) end,
            T0 = erlang:monotonic_time(millisecond),
            ?assertMatch({ok, _}, hyper_lmdb:start(S)),
            Took = erlang:monotonic_time(millisecond) - T0,
            ?assert(Took < 10000),
            ?assert(gone(OsPid, 10))
        end),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
        done(S)
    end}.

%% A port still hung when stop/1 gives up on it (no watchdog to replace
%% it) keeps the requests it was given; it may yet apply them, since it
%% serves its input to the end.  A read is answered not_started (sent
%% again to the store started again: harmless), a write its outcome is
%% unknown, never not_started (which would send it once more).
unanswered_at_stop_timeout_test_() ->
    {timeout, 60, fun() ->
        S = store(stoptimeout, #{<<"fault-injection">> => true, <<"watchdog">> => infinity}),
        #{<<"name">> := Name} = S,
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, Ref} = hyper_lmdb_server:find(Name),
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        #{os_pid := OsPid} = hyper_lmdb_server:port_info(Pid),
        Self = self(),
        Ask = fun(Tag, Kind, Req) ->
                  spawn(fun() -> Self ! {Tag, hyper_lmdb_server:request(Ref, Kind, Req, 30000)} end)
              end,
        %% (nothing would ever kill the hung port: the test does, pass or fail)
        with_hung_port(OsPid, fun() ->
            ok = hyper_lmdb_server:inject_fault(Name, hang),
            Ask(reader, read, {read, <<"k">>}),
            Ask(writer, write, {write, <<"k">>, <<"w">>}),
            ?assert(hyper_lmdb_test_util:wait_until(fun() -> pending(Pid) >= 2 end, 10000)),
            ok = hyper_lmdb:stop(S),
            Got = fun(Tag) -> receive {Tag, R} -> R after 5000 -> no_answer end end,
            ?assertEqual({error, not_started}, Got(reader)),
            ?assertEqual({error, {port_exit, stop_timeout}}, Got(writer))
        end),
        ?assert(gone(OsPid, 100)),
        done(S)
    end}.

%% dump/2 then load/2 gives back every byte: values and keys of any bytes
%% (from 160 up ~p wrote Latin-1 characters that file:consult refused, or
%% read back changed), quotes and backslashes, links.  A dump with one bad
%% line changes nothing.
dump_load_round_trips_every_byte_test() ->
    S = store(dumpsrc),
    Keys = [<<"latin">>, <<"utf8">>, <<"q\"b\\c">>, <<"all">>, <<"k", 200, 1>>],
    ok = hyper_lmdb:write_many(S, [{write, <<"latin">>, <<233>>}, {write, <<"utf8">>, <<195, 169>>},
                                   {write, <<"q\"b\\c">>, <<"plain">>},
                                   {write, <<"all">>, list_to_binary(lists:seq(0, 255))},
                                   {write, <<"k", 200, 1>>, <<"v">>},
                                   {make_link, <<"utf8">>, <<"l">>}]),
    #{<<"name">> := Dir} = S,
    File = binary_to_list(Dir) ++ ".dump",
    ?assertEqual({ok, 6}, hyper_lmdb_tools:dump(S, File)),
    T = store(dumpdst),
    ?assertEqual({ok, 6}, hyper_lmdb_tools:load(T, File)),
    ?assertEqual([hyper_lmdb:read(S, K) || K <- [<<"l">> | Keys]],
                 [hyper_lmdb:read(T, K) || K <- [<<"l">> | Keys]]),
    {ok, Text} = file:read_file(File),
    ?assertEqual([], [C || <<C>> <= Text, C > 126]),
    %% one line too long for a key, at the end: nothing is written
    ok = file:write_file(File, [Text, "{<<\"", binary:copy(<<"x">>, 600), "\">>,value,<<\"v\">>}.\n"]),
    U = store(dumpbad),
    ?assertMatch({error, {_, not_a_dump}}, hyper_lmdb_tools:load(U, File)),
    ?assertMatch(#{entries := 0}, hyper_lmdb:stats(U)),
    file:delete(File),
    [done(X) || X <- [S, T, U]],
    ok.

%% convert/3 of a store this node serves reads it through its server and
%% leaves it running.
convert_leaves_a_served_source_running_test() ->
    S = store(convsrc),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
    #{<<"name">> := Dir} = S,
    Dst = binary_to_list(Dir) ++ "-alias",  % (removed by done/1)
    ?assertEqual({ok, 1}, hyper_lmdb_tools:convert(Dir, Dst, <<"hb_store_lmdb">>)),
    ?assertEqual({ok, Pid}, hyper_lmdb_server:lookup(Dir)),
    ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
    done(S).

%% Another name for the store's directory: a symbolic link to it.
alias_of(#{<<"name">> := Dir}) ->
    Link = <<Dir/binary, "-alias">>,
    ok = file:make_symlink(Dir, Link),
    Link.

%% "/d", "/d/" and "/d//", as binaries or strings, are one store.
same_store_whatever_the_slashes_test() ->
    S = store(slashes),
    #{<<"name">> := Dir} = S,
    {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
    Names = [<<Dir/binary, "/">>, <<Dir/binary, "//">>, binary_to_list(Dir) ++ "/"],
    ?assertEqual([Pid], lists:usort([maps:get(<<"pid">>, element(2, hyper_lmdb:start(#{<<"name">> => N})))
                                     || N <- Names])),
    ok = hyper_lmdb:write(#{<<"name">> => hd(Names)}, <<"k">>, <<"v">>),
    ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),
    ok = hyper_lmdb:stop(#{<<"name">> => lists:last(Names)}),
    ?assertEqual(error, hyper_lmdb_server:lookup(Dir)),
    done(S).

read_loop(S, Parent) ->
    {ok, _} = hyper_lmdb:read(S, <<"k">>),
    Parent ! {self(), reading},
    read_loop(S, Parent, 0).

read_loop(S, Parent, N) ->
    receive
        stop -> Parent ! {self(), done}
    after 0 ->
        {ok, _} = hyper_lmdb:read(S, <<"k">>),
        read_loop(S, Parent, N + 1)
    end.

%% Callers keep the store's reference in their process dictionary
%% (hyper_lmdb_server:find/1).  After a stop and a restart, or a server
%% killed outright and replaced by another caller's call, a process that
%% still holds the old reference reaches the new server at once: the old
%% one's stopping flag was raised (by itself, or by its successor).
cached_reference_follows_restarts_test_() ->
    {timeout, 60, fun() ->
        S = store(cachedref),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        Self = self(),
        %% B holds a cached reference, then waits for its turn
        Cached = fun() ->
                     spawn_link(fun() ->
                         {ok, <<"v">>} = hyper_lmdb:read(S, <<"k">>),
                         Self ! {self(), cached},
                         receive go -> ok end,
                         {T, R} = timer:tc(hyper_lmdb, read, [S, <<"k">>]),
                         Self ! {self(), T div 1000, R}
                     end)
                 end,
        B = Cached(),
        receive {B, cached} -> ok end,
        %% stopped and started again
        ok = hyper_lmdb:stop(S),
        {ok, _} = hyper_lmdb:start(S),
        B ! go,
        receive {B, Ms1, R1} -> ?assertEqual({ok, <<"v">>}, R1), ?assert(Ms1 < 300) end,
        %% killed outright; this process restarts it with one call
        B2 = Cached(),
        receive {B2, cached} -> ok end,
        {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S),
        kill_and_wait(Pid),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(S, <<"k">>)),  % probes, restarts
        B2 ! go,
        receive {B2, Ms2, R2} -> ?assertEqual({ok, <<"v">>}, R2), ?assert(Ms2 < 300) end,
        done(S)
    end}.

%% The store used last is cached apart from the others (find/1): calls
%% that alternate between two stores each reach their own, and one of
%% them stopped and started again is found afresh, at once.
cached_last_store_test_() ->
    {timeout, 60, fun() ->
        S1 = store(last1),
        S2 = store(last2),
        ok = hyper_lmdb:write(S1, <<"k">>, <<"one">>),
        ok = hyper_lmdb:write(S2, <<"k">>, <<"two">>),
        [begin
             ?assertEqual({ok, <<"one">>}, hyper_lmdb:read(S1, <<"k">>)),
             ?assertEqual({ok, <<"two">>}, hyper_lmdb:read(S2, <<"k">>)),
             ?assertEqual({ok, <<"two">>}, hyper_lmdb:read(S2, <<"k">>))
         end || _ <- lists:seq(1, 5)],
        %% a name equal to the cached one, but another term
        Copy = #{<<"name">> => binary:copy(maps:get(<<"name">>, S1))},
        ?assertEqual({ok, <<"one">>}, hyper_lmdb:read(Copy, <<"k">>)),
        ok = hyper_lmdb:stop(S1),
        {ok, _} = hyper_lmdb:start(S1),
        {T, R} = timer:tc(hyper_lmdb, read, [Copy, <<"k">>]),
        ?assertEqual({ok, <<"one">>}, R),
        ?assert(T < 300000),
        ?assertEqual({ok, <<"two">>}, hyper_lmdb:read(S2, <<"k">>)),
        ?assertEqual({ok, <<"one">>}, hyper_lmdb:read(S1, <<"k">>)),
        done(S1),
        done(S2)
    end}.

%%% ---------------------------------------------------------------------
%%% readers (hyper_lmdb:open_reader/1)

%% The reader's port, as its owner keeps it.
reader_port({hyper_lmdb_reader, Ref, _}) ->
    {Port, _, _, _} = get({'$hyper_lmdb_reader', Ref}),
    Port.

reader_os_pid(R) ->
    {os_pid, P} = erlang:port_info(reader_port(R), os_pid),
    P.

os_alive(OsPid) ->
    filelib:is_dir("/proc/" ++ integer_to_list(OsPid)) andalso
        not lists:prefix("Z", zombie_state(OsPid)).

zombie_state(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, B} -> [_, Rest] = binary:split(B, <<") ">>), binary_to_list(Rest);
        _ -> "Z"
    end.

%% A reader answers as the store does, links and all, and sees every
%% write acknowledged before its read.
reader_answers_as_the_store_test_() ->
    {timeout, 60, fun() ->
        S = store(reader),
        ok = hyper_lmdb:write(S, <<"d/x">>, <<"1">>),
        ok = hyper_lmdb:make_group(S, <<"d/g">>),
        ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
        {ok, R} = hyper_lmdb:open_reader(S),
        Same = fun(F) -> ?assertEqual(F(S), F(R)) end,
        Same(fun(T) -> hyper_lmdb:read(T, <<"l/x">>) end),
        Same(fun(T) -> hyper_lmdb:read(T, [<<"d">>, <<"x">>]) end),
        Same(fun(T) -> hyper_lmdb:read(T, <<"nope">>) end),
        Same(fun(T) -> hyper_lmdb:list(T, <<"l">>) end),
        Same(fun(T) -> hyper_lmdb:list(T, <<"d">>, #{limit => 1, direction => desc}) end),
        Same(fun(T) -> hyper_lmdb:type(T, <<"d/g">>) end),
        Same(fun(T) -> hyper_lmdb:resolve(T, <<"l/x">>) end),
        Same(fun(T) -> hyper_lmdb:read_many(T, [<<"d/x">>, <<"l/x">>, <<"none">>]) end),
        Same(fun(T) -> hyper_lmdb:read(T, <<>>) end),
        [begin
             V = integer_to_binary(I),
             ok = hyper_lmdb:write(S, <<"d/x">>, V),
             ?assertEqual({ok, V}, hyper_lmdb:read(R, <<"l/x">>))
         end || I <- lists:seq(1, 200)],
        ok = hyper_lmdb:delete(S, <<"d/x">>),
        ?assertEqual(not_found, hyper_lmdb:read(R, <<"d/x">>)),
        %% what is not a read is refused, not sent
        ?assertEqual({error, {bad_argument, reader}}, hyper_lmdb:write(R, <<"k">>, <<"v">>)),
        ?assertEqual({error, {bad_argument, reader}}, hyper_lmdb:sync(R)),
        ?assertEqual({error, {bad_argument, reader}}, hyper_lmdb:stats(R)),
        ?assertEqual(not_found, hyper_lmdb:read(S, <<"k">>)),
        ok = hyper_lmdb:close_reader(R),
        ?assertEqual({error, {bad_argument, reader}}, hyper_lmdb:read(R, <<"l/x">>)),
        ok = hyper_lmdb:close_reader(R),
        done(S)
    end}.

%% Only its owner may use a reader; an async store has none.
reader_belongs_to_its_owner_test_() ->
    {timeout, 60, fun() ->
        S = store(reader_owner),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, R} = hyper_lmdb:open_reader(S),
        Self = self(),
        spawn_link(fun() -> Self ! {other, hyper_lmdb:read(R, <<"k">>)} end),
        ?assertEqual({error, {bad_argument, reader}}, receive {other, X} -> X end),
        ?assertEqual({ok, <<"v">>}, hyper_lmdb:read(R, <<"k">>)),
        ok = hyper_lmdb:close_reader(R),
        done(S),
        A = store(reader_async, #{<<"durability">> => <<"async">>}),
        ?assertEqual({error, {bad_option, <<"durability">>}}, hyper_lmdb:open_reader(A)),
        done(A)
    end}.

%% Readers take at most max-readers less two LMDB reader slots: the
%% store's port keeps its own, also through a restart with every reader
%% open, and a slot comes back when a reader closes or its owner ends.
readers_leave_the_store_its_slot_test_() ->
    {timeout, 60, fun() ->
        S = store(reader_slots, #{<<"max-readers">> => 6}),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        Self = self(),
        %% each reader in a process of its own, which keeps it open
        Open = fun() ->
                   P = spawn(fun() ->
                                 Got = case hyper_lmdb:open_reader(S) of
                                           {ok, R} -> hyper_lmdb:read(R, <<"k">>);
                                           E -> E
                                       end,
                                 Self ! {self(), Got},
                                 receive never -> ok end
                             end),
                   put(owners, [P | case get(owners) of undefined -> []; L -> L end]),
                   P
               end,
        Answer = fun(P) -> receive {P, X} -> X after 10000 -> no_answer end end,
        Owners = [Open() || _ <- lists:seq(1, 4)],
        ?assertEqual([{ok, <<"v">>} || _ <- Owners], [Answer(P) || P <- Owners]),
        ?assertEqual({error, {readers_full, 6}}, Answer(Open())),
        %% the store's port killed and started again, every reader open:
        %% it still reads, and sees its writes
        #{os_pid := OsPid} = hyper_lmdb:stats(S),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> maps:get(os_pid, hyper_lmdb:stats(S)) =/= OsPid end, 5000)),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v2">>),
        ?assertEqual({ok, <<"v2">>}, hyper_lmdb:read(S, <<"k">>)),
        %% an owner gone gives its slot back
        [First | _] = Owners,
        exit(First, kill),
        ?assert(hyper_lmdb_test_util:wait_until(fun() ->
                               P = Open(),
                               case Answer(P) of
                                   {ok, <<"v2">>} -> true;
                                   {error, {readers_full, 6}} -> false
                               end
                           end, 5000)),
        ?assertEqual({error, {readers_full, 6}}, Answer(Open())),
        [exit(P, kill) || P <- erase(owners)],
        done(S)
    end}.

%% A reader outlives the server that leased its slot (it is its owner's
%% port): a server started again counts the slots still held, frees those
%% of owners that ended meanwhile, and takes back a lease an earlier
%% server gave.  Counted afresh, the slots would run out in LMDB
%% (MDB_READERS_FULL) before readers_full.
reader_slots_outlive_the_server_test_() ->
    {timeout, 60, fun() ->
        S = store(reader_slots_restart, #{<<"max-readers">> => 6}),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        Self = self(),
        Owner = fun Loop(R) ->
                    receive
                        read -> Self ! {self(), hyper_lmdb:read(R, <<"k">>)}, Loop(R);
                        close -> Self ! {self(), hyper_lmdb:close_reader(R)}, Loop(R)
                    end
                end,
        Open = fun() ->
                   P = spawn(fun() ->
                                 case hyper_lmdb:open_reader(S) of
                                     {ok, R} -> Self ! {self(), opened}, Owner(R);
                                     E -> Self ! {self(), E}
                                 end
                             end),
                   receive {P, Got} -> {P, Got} after 10000 -> {P, no_answer} end
               end,
        Ask = fun(P, What) -> P ! What, receive {P, X} -> X after 10000 -> no_answer end end,
        Readers = [P || {P, opened} <- [Open() || _ <- lists:seq(1, 4)]],
        ?assertEqual(4, length(Readers)),
        ?assertMatch({_, {error, {readers_full, 6}}}, Open()),
        Restart = fun() -> ok = hyper_lmdb:stop(S), {ok, _} = hyper_lmdb:start(S) end,
        Restart(),
        ?assertMatch(#{readers_open := 4}, hyper_lmdb:stats(S)),
        ?assertMatch({_, {error, {readers_full, 6}}}, Open()),
        [?assertEqual({ok, <<"v">>}, Ask(P, read)) || P <- Readers],
        %% an owner that ends while no server runs frees its slot for the next
        [Gone, Closer | _] = Readers,
        ok = hyper_lmdb:stop(S),
        kill_and_wait(Gone),
        {ok, _} = hyper_lmdb:start(S),
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> maps:get(readers_open, hyper_lmdb:stats(S)) =:= 3 end, 5000)),
        {New, opened} = Open(),
        ?assertMatch({_, {error, {readers_full, 6}}}, Open()),
        %% a lease given by the server before this one, given back to it
        Restart(),
        ?assertEqual(ok, Ask(Closer, close)),
        ?assertMatch(#{readers_open := 3}, hyper_lmdb:stats(S)),
        {Last, opened} = Open(),
        ?assertEqual({ok, <<"v">>}, Ask(Last, read)),
        ?assertMatch({_, {error, {readers_full, 6}}}, Open()),
        %% and the store's own port, started again, still finds a slot
        #{os_pid := OsPid} = hyper_lmdb:stats(S),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> maps:get(os_pid, hyper_lmdb:stats(S)) =/= OsPid end, 5000)),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v2">>),
        ?assertEqual({ok, <<"v2">>}, hyper_lmdb:read(S, <<"k">>)),
        ?assertEqual({ok, <<"v2">>}, Ask(New, read)),
        [kill_and_wait(P) || P <- Readers ++ [New, Last], P =/= Gone],
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> maps:get(readers_open, hyper_lmdb:stats(S)) =:= 0 end, 5000)),
        done(S)
    end}.

%% A reader whose port is killed starts it again and answers; its port
%% ends with its owner (no orphan), and with close_reader/1.
reader_port_dies_and_ends_test_() ->
    {timeout, 60, fun() ->
        S = store(reader_kill),
        ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
        {ok, R} = hyper_lmdb:open_reader(S),
        %% read at once after the kill, or once the process is gone (the
        %% port then closes on the failed write, with no exit status)
        [begin
             Old = reader_os_pid(R),
             _ = os:cmd("kill -9 " ++ integer_to_list(Old)),
             _ = Wait andalso hyper_lmdb_test_util:wait_until(fun() -> not os_alive(Old) end, 5000),
             {T, Got} = timer:tc(hyper_lmdb, read, [R, <<"k">>]),
             ?assertEqual({ok, <<"v">>}, Got),
             ?assert(T < 5000000),
             ?assertNotEqual(Old, reader_os_pid(R))
         end || Wait <- [true, false, true, false, true]],
        New = reader_os_pid(R),
        ?assertEqual([], [M || M = {P, _} <- element(2, process_info(self(), messages)),
                               is_port(P)]),
        ok = hyper_lmdb:close_reader(R),
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> not os_alive(New) end, 5000)),
        %% owned by a process that ends
        Self = self(),
        Owner = spawn(fun() ->
                          {ok, R2} = hyper_lmdb:open_reader(S),
                          {ok, <<"v">>} = hyper_lmdb:read(R2, <<"k">>),
                          Self ! {pid, reader_os_pid(R2)},
                          receive never -> ok end
                      end),
        OsPid = receive {pid, P} -> P end,
        ?assert(os_alive(OsPid)),
        kill_and_wait(Owner),
        ?assert(hyper_lmdb_test_util:wait_until(fun() -> not os_alive(OsPid) end, 5000)),
        done(S)
    end}.
