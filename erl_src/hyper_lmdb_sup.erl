%%% @doc Supervises one hyper_lmdb_server per open store, and owns the
%%% registry table that maps store names to their servers.
-module(hyper_lmdb_sup).
-behaviour(supervisor).

-export([start_link/0, start_store/1]).
-export([init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc Starts the server of a validated store configuration and waits
%% for its port to open (outside the supervisor: see
%% hyper_lmdb_server:start_link/2).
-spec start_store(hyper_lmdb_server:cfg()) -> {ok, pid()} | {error, term()}.
start_store(Cfg) ->
    case supervisor:start_child(?MODULE, [Cfg, self()]) of
        {ok, Pid} -> hyper_lmdb_server:await_open(Pid);
        Other -> Other
    end.

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% The table lives as long as the supervisor: servers come and go.
    _ = ets:new(hyper_lmdb_server:registry(),
            [named_table, public, set, {read_concurrency, true}]),
    Flags = #{strategy => simple_one_for_one, intensity => 10, period => 10},
    Child = #{id => hyper_lmdb_server,
              start => {hyper_lmdb_server, start_link, []},
              %% not restarted here: the server restarts its own port, and
              %% the next call to a store whose server died starts a new
              %% one, so a crash loop cannot take the other stores down
              restart => temporary,
              shutdown => 30000,  % terminate/2 serves the port up to 8 s
              type => worker,
              modules => [hyper_lmdb_server]},
    {ok, {Flags, [Child]}}.
