%%% @doc The hyper_lmdb application: starts the store supervisor.
-module(hyper_lmdb_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    hyper_lmdb_sup:start_link().

%% @private
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
