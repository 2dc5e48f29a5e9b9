%%% Helpers shared by the EUnit tests and the Common Test suites.
-module(hyper_lmdb_test_util).

-export([wait_until/2, pair_writer/5, pairs_applied_once/2]).

%% Polls Pred every 10 ms until it holds, for at most Ms: whether it did
%% (measured by the clock, so a slow Pred does not stretch the bound).
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> boolean().
wait_until(Pred, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    fun Poll() ->
        Pred() orelse
            (erlang:monotonic_time(millisecond) < Deadline andalso
                 begin timer:sleep(10), Poll() end)
    end().

%% A linked writer of write_many calls a second application would betray:
%% N/a/b, then a link N/d -> N/a's place (N/a made a link to N/d), so a
%% replay of the pair puts the key N/d/b.  It writes until Done (an
%% atomics array) holds 1 at index 1, pausing 1 ms every Pause calls (0:
%% never), counting the calls answered ok in Oks (a counters array, index
%% 1), and then sends the parent {written, Pid, Ns}: the names N of those.
-spec pair_writer(map(), pos_integer(), atomics:atomics_ref(), non_neg_integer(),
                  counters:counters_ref()) -> pid().
pair_writer(S, W, Done, Pause, Oks) ->
    Parent = self(),
    spawn_link(fun() ->
        Loop = fun L(I, Acc) ->
                   case atomics:get(Done, 1) of
                       1 ->
                           Acc;
                       0 ->
                           Pause > 0 andalso I rem Pause =:= 0 andalso timer:sleep(1),
                           N = iolist_to_binary(io_lib:format("w~b-~b", [W, I])),
                           Ops = [{write, <<N/binary, "/a/b">>, <<"1">>},
                                  {make_link, <<N/binary, "/d">>, <<N/binary, "/a">>}],
                           case hyper_lmdb:write_many(S, Ops) of
                               ok -> counters:add(Oks, 1, 1), L(I + 1, [N | Acc]);
                               _ -> L(I + 1, Acc)
                           end
                   end
               end,
        Parent ! {written, self(), Loop(1, [])}
    end).

%% What pair_writer/5's writes left, once Written (their names) were
%% acknowledged: the keys applied twice (N/d/b) and the names whose key
%% N/a/b is missing, both [] when each was applied once.  (A read of N/a/b
%% goes through the link: the keys are scanned.)
-spec pairs_applied_once(map(), [binary()]) -> {Twice :: [binary()], Missing :: [binary()]}.
pairs_applied_once(S, Written) ->
    Keys = fun Scan(From, Acc) ->
               case hyper_lmdb:scan(S, #{from => From, limit => 1000}) of
                   {ok, Es, undefined} -> Acc ++ [K || {K, _, _} <- Es];
                   {ok, Es, Next} -> Scan(Next, Acc ++ [K || {K, _, _} <- Es])
               end
           end(<<>>, []),
    Present = maps:from_keys(Keys, []),
    {[K || K <- Keys, binary:longest_common_suffix([K, <<"/d/b">>]) =:= 4],
     [N || N <- Written, not is_map_key(<<N/binary, "/a/b">>, Present)]}.
