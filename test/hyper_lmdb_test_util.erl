%%% Helpers shared by the EUnit tests and the Common Test suites.
-module(hyper_lmdb_test_util).

-export([wait_until/2]).

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
