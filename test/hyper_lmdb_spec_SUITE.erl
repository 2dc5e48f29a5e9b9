%%% Every operation of SPEC section 3, as a user of hb_store would notice
%%% it: values, groups, links (prefixes, chains, loops), listing, types,
%%% resolve, paths, reset, restart, isolation, sizes, bad arguments, the
%%% link cache never answering stale, and many processes at once.
-module(hyper_lmdb_spec_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("eunit/include/eunit.hrl").

-compile([export_all, nowarn_export_all]).

suite() -> [{timetrap, {minutes, 5}}].

%% Every case twice: on a store that lists by walking its keys, and on one
%% with a children index (lists read off the index, every write keeping
%% it), plus the cases of the index itself.
all() -> [{group, walk}, {group, children_index}, children_index_kept, children_index_refused,
          children_index_built_beside].

groups() -> [{walk, [], cases()}, {children_index, [], cases()}].

init_per_group(children_index, Config) -> [{children_index, true} | Config];
init_per_group(_, Config) -> Config.

end_per_group(_, _) -> ok.

cases() ->
    [value_roundtrip, overwrite, explicit_group, implicit_group, group_reads_not_found,
     link_chain, link_at_prefix, link_to_group, dangling_link, loop_of_two, loop_of_three,
     relink, link_replaced_by_value, write_through_linked_prefix, prefix_link_wins,
     list_sorted_unique_nested, list_tricky_order, list_through_link, list_missing,
     list_paged, type_of_every_kind, resolve_paths, path_and_add_path, reset_keeps_usable,
     stop_start_keeps_data, stores_isolated, lookalike_values_are_data, value_sizes,
     key_sizes, long_path_through_link, link_target_sizes, empty_path, bad_arguments, read_many_snapshot, write_many_atomic, delete_one,
     cache_stale_after_overwrite, cache_stale_after_delete, cache_stale_after_make_link,
     cache_stale_after_reset, cache_stale_after_relink_chain, sync_and_stats,
     map_grown_by_another_writer, port_refuses_numbers_out_of_range,
     refused_write_commits_nothing,
     concurrent_writers_and_readers].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    Config.

end_per_suite(_) -> ok.

init_per_testcase(Case, Config) ->
    Group = case ?config(children_index, Config) of true -> "-index"; _ -> "" end,
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case) ++ Group),
    S0 = #{<<"name">> => list_to_binary(Dir)},
    S = case Group of "" -> S0; _ -> S0#{<<"children-index">> => true} end,
    {ok, _} = hyper_lmdb:start(S),
    #{children_index := Index} = hyper_lmdb:stats(S),
    Index = Group =/= "",
    [{s, S} | Config].

end_per_testcase(_, Config) ->
    hyper_lmdb:stop(?config(s, Config)).

s(Config) -> ?config(s, Config).

%%% values and groups

value_roundtrip(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"a">>, <<"1">>),
    ok = hyper_lmdb:write(S, [<<"b">>, "c", d, 4], [<<"io">>, $d, [<<"ata">>]]),
    {ok, <<"1">>} = hyper_lmdb:read(S, <<"a">>),
    {ok, <<"iodata">>} = hyper_lmdb:read(S, <<"b/c/d/4">>),
    {ok, <<"iodata">>} = hyper_lmdb:read(S, <<"/b//c/d/4/">>),
    not_found = hyper_lmdb:read(S, <<"nope">>).

overwrite(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"k">>, <<"1">>),
    ok = hyper_lmdb:write(S, <<"k">>, <<"2">>),
    {ok, <<"2">>} = hyper_lmdb:read(S, <<"k">>).

explicit_group(C) ->
    S = s(C),
    ok = hyper_lmdb:make_group(S, <<"g">>),
    composite = hyper_lmdb:type(S, <<"g">>),
    {ok, []} = hyper_lmdb:list(S, <<"g">>),
    ok = hyper_lmdb:write(S, <<"g/x">>, <<"1">>),
    {ok, [<<"x">>]} = hyper_lmdb:list(S, <<"g">>).

implicit_group(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"a/b/c">>, <<"v">>),
    composite = hyper_lmdb:type(S, <<"a">>),
    composite = hyper_lmdb:type(S, <<"a/b">>),
    {ok, [<<"b">>]} = hyper_lmdb:list(S, <<"a">>),
    {ok, [<<"c">>]} = hyper_lmdb:list(S, <<"a/b">>).

group_reads_not_found(C) ->
    S = s(C),
    ok = hyper_lmdb:make_group(S, <<"g">>),
    ok = hyper_lmdb:write(S, <<"i/x">>, <<"v">>),
    not_found = hyper_lmdb:read(S, <<"g">>),
    not_found = hyper_lmdb:read(S, <<"i">>).

%%% links

link_chain(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"target">>, <<"v">>),
    ok = hyper_lmdb:make_link(S, <<"target">>, <<"l1">>),
    ok = hyper_lmdb:make_link(S, <<"l1">>, <<"l2">>),
    ok = hyper_lmdb:make_link(S, <<"l2">>, <<"l3">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"l3">>),
    simple = hyper_lmdb:type(S, <<"l3">>),
    <<"target">> = hyper_lmdb:resolve(S, <<"l3">>).

link_at_prefix(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"d/x">>, <<"dx">>),
    ok = hyper_lmdb:write(S, <<"d/y/z">>, <<"dyz">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    {ok, <<"dx">>} = hyper_lmdb:read(S, <<"l/x">>),
    {ok, <<"dyz">>} = hyper_lmdb:read(S, <<"l/y/z">>),
    %% a link inside the target, reached through a linked prefix
    ok = hyper_lmdb:make_link(S, <<"d/y">>, <<"d/w">>),
    {ok, <<"dyz">>} = hyper_lmdb:read(S, <<"l/w/z">>).

link_to_group(C) ->
    S = s(C),
    ok = hyper_lmdb:make_group(S, <<"g">>),
    ok = hyper_lmdb:write(S, <<"g/a">>, <<"1">>),
    ok = hyper_lmdb:make_link(S, <<"g">>, <<"l">>),
    composite = hyper_lmdb:type(S, <<"l">>),
    not_found = hyper_lmdb:read(S, <<"l">>),
    {ok, [<<"a">>]} = hyper_lmdb:list(S, <<"l">>).

dangling_link(C) ->
    S = s(C),
    ok = hyper_lmdb:make_link(S, <<"nowhere">>, <<"l">>),
    not_found = hyper_lmdb:read(S, <<"l">>),
    not_found = hyper_lmdb:type(S, <<"l">>),
    {ok, []} = hyper_lmdb:list(S, <<"l">>),
    ok = hyper_lmdb:write(S, <<"nowhere">>, <<"now here">>),
    {ok, <<"now here">>} = hyper_lmdb:read(S, <<"l">>).

prompt(Fun) ->
    {Us, R} = timer:tc(Fun),
    ?assert(Us < 2000000),
    R.

loop_of_two(C) ->
    S = s(C),
    ok = hyper_lmdb:make_link(S, <<"b">>, <<"a">>),
    ok = hyper_lmdb:make_link(S, <<"a">>, <<"b">>),
    not_found = prompt(fun() -> hyper_lmdb:read(S, <<"a">>) end),
    not_found = prompt(fun() -> hyper_lmdb:type(S, <<"b/x">>) end),
    {ok, []} = prompt(fun() -> hyper_lmdb:list(S, <<"a">>) end).

loop_of_three(C) ->
    S = s(C),
    ok = hyper_lmdb:make_link(S, <<"b">>, <<"a">>),
    ok = hyper_lmdb:make_link(S, <<"c">>, <<"b">>),
    ok = hyper_lmdb:make_link(S, <<"a">>, <<"c">>),
    not_found = prompt(fun() -> hyper_lmdb:read(S, <<"a">>) end),
    not_found = prompt(fun() -> hyper_lmdb:read(S, <<"c/deep/path">>) end).

relink(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"x">>, <<"X">>),
    ok = hyper_lmdb:write(S, <<"y">>, <<"Y">>),
    ok = hyper_lmdb:make_link(S, <<"x">>, <<"l">>),
    {ok, <<"X">>} = hyper_lmdb:read(S, <<"l">>),
    ok = hyper_lmdb:make_link(S, <<"y">>, <<"l">>),
    {ok, <<"Y">>} = hyper_lmdb:read(S, <<"l">>).

link_replaced_by_value(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"x">>, <<"X">>),
    ok = hyper_lmdb:make_link(S, <<"x">>, <<"l">>),
    ok = hyper_lmdb:write(S, <<"l">>, <<"own">>),
    {ok, <<"own">>} = hyper_lmdb:read(S, <<"l">>),
    {ok, <<"X">>} = hyper_lmdb:read(S, <<"x">>).

write_through_linked_prefix(C) ->
    S = s(C),
    ok = hyper_lmdb:make_group(S, <<"d">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    ok = hyper_lmdb:write(S, <<"l/new">>, <<"v">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"d/new">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"l/new">>),
    {ok, [<<"new">>]} = hyper_lmdb:list(S, <<"d">>).

prefix_link_wins(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"t/f">>, <<"below the link">>),
    ok = hyper_lmdb:write(S, <<"d/f">>, <<"in the target">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"t">>),
    {ok, <<"in the target">>} = hyper_lmdb:read(S, <<"t/f">>).

%%% listing

list_sorted_unique_nested(C) ->
    S = s(C),
    [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- [<<"p/z">>, <<"p/a/deep/er">>, <<"p/a">>,
                                                   <<"p/m/1">>, <<"p/m/2">>, <<"q/x">>]],
    {ok, [<<"a">>, <<"m">>, <<"z">>]} = hyper_lmdb:list(S, <<"p">>),
    {ok, [<<"p">>, <<"q">>]} = hyper_lmdb:list(S, <<>>).

list_tricky_order(C) ->
    S = s(C),
    [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- [<<"p/c">>, <<"p/c/x">>, <<"p/c-x">>, <<"p/c0">>,
                                                   <<"q/c/x">>, <<"q/c-x">>, <<"q/c0">>]],
    Want = [<<"c">>, <<"c-x">>, <<"c0">>],
    {ok, Want} = hyper_lmdb:list(S, <<"p">>),
    {ok, Want} = hyper_lmdb:list(S, <<"q">>),
    RevWant = lists:reverse(Want),
    {ok, RevWant} = hyper_lmdb:list(S, <<"q">>, #{direction => desc}),
    {ok, [<<"c">>]} = hyper_lmdb:list(S, <<"q">>, #{limit => 1}),
    {ok, [<<"c">>, <<"c-x">>]} = hyper_lmdb:list(S, <<"q">>, #{limit => 2}),
    {ok, [<<"c-x">>, <<"c">>]} = hyper_lmdb:list(S, <<"q">>, #{from => <<"c-x">>, direction => desc}).

list_through_link(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"d/a">>, <<"1">>),
    ok = hyper_lmdb:write(S, <<"d/b/c">>, <<"2">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    {ok, [<<"a">>, <<"b">>]} = hyper_lmdb:list(S, <<"l">>),
    {ok, [<<"c">>]} = hyper_lmdb:list(S, <<"l/b">>).

list_missing(C) ->
    {ok, []} = hyper_lmdb:list(s(C), <<"no/such/path">>).

list_paged(C) ->
    S = s(C),
    Names = [iolist_to_binary(io_lib:format("n~3..0b", [I])) || I <- lists:seq(1, 50)],
    ok = hyper_lmdb:write_many(S, [{write, [<<"g">>, N], <<"v">>} || N <- Names]),
    {ok, Names} = hyper_lmdb:list(S, <<"g">>),
    {ok, First10} = hyper_lmdb:list(S, <<"g">>, #{limit => 10}),
    First10 = lists:sublist(Names, 10),
    {ok, Page} = hyper_lmdb:list(S, <<"g">>, #{from => <<"n020">>, limit => 5}),
    Page = lists:sublist(Names, 20, 5),
    {ok, Down} = hyper_lmdb:list(S, <<"g">>, #{from => <<"n020">>, limit => 3, direction => desc}),
    Down = [<<"n020">>, <<"n019">>, <<"n018">>],
    Last = lists:last(Names),
    {ok, [Last]} = hyper_lmdb:list(S, <<"g">>, #{limit => 1, direction => desc}),
    %% paging through everything gives everything once
    Pages = page_all(S, undefined, []),
    Names = Pages.

page_all(S, From, Acc) ->
    Opts = case From of undefined -> #{limit => 7}; _ -> #{from => From, limit => 8} end,
    {ok, Got} = hyper_lmdb:list(S, <<"g">>, Opts),
    New = case From of undefined -> Got; _ -> tl(Got) end,
    case New of
        [] -> Acc;
        _ -> page_all(S, lists:last(New), Acc ++ New)
    end.

%%% type, resolve, paths

type_of_every_kind(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"v">>, <<"1">>),
    ok = hyper_lmdb:make_group(S, <<"g">>),
    ok = hyper_lmdb:write(S, <<"i/x">>, <<"1">>),
    ok = hyper_lmdb:make_link(S, <<"v">>, <<"lv">>),
    ok = hyper_lmdb:make_link(S, <<"g">>, <<"lg">>),
    ok = hyper_lmdb:make_link(S, <<"gone">>, <<"ld">>),
    simple = hyper_lmdb:type(S, <<"v">>),
    composite = hyper_lmdb:type(S, <<"g">>),
    composite = hyper_lmdb:type(S, <<"i">>),
    simple = hyper_lmdb:type(S, <<"lv">>),
    composite = hyper_lmdb:type(S, <<"lg">>),
    not_found = hyper_lmdb:type(S, <<"ld">>),
    not_found = hyper_lmdb:type(S, <<"missing">>),
    simple = hyper_lmdb:type(S, <<"i/x">>).

resolve_paths(C) ->
    S = s(C),
    <<"a/b/c">> = hyper_lmdb:resolve(S, <<"/a//b/c/">>),
    ok = hyper_lmdb:make_link(S, <<"real/dir">>, <<"l">>),
    ok = hyper_lmdb:make_link(S, <<"l">>, <<"m">>),
    <<"real/dir/x/y">> = hyper_lmdb:resolve(S, <<"m/x/y">>),
    <<"real/dir">> = hyper_lmdb:resolve(S, [<<"m">>]).

path_and_add_path(C) ->
    S = s(C),
    <<"a/b/c">> = hyper_lmdb:path(S, [<<"a">>, <<"b">>, <<"c">>]),
    <<"a/b">> = hyper_lmdb:path(S, <<"a//b/">>),
    [<<"a">>, <<"b">>, <<"c">>] = hyper_lmdb:add_path(S, [<<"a">>], [<<"b">>, <<"c">>]),
    <<"a/b/c">> = hyper_lmdb:add_path(S, <<"a">>, <<"b/c">>).

%%% lifecycle

reset_keeps_usable(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"a/b">>, <<"1">>),
    ok = hyper_lmdb:make_link(S, <<"a">>, <<"l">>),
    ok = hyper_lmdb:reset(S),
    not_found = hyper_lmdb:read(S, <<"a/b">>),
    not_found = hyper_lmdb:read(S, <<"l/b">>),
    {ok, []} = hyper_lmdb:list(S, <<>>),
    ok = hyper_lmdb:write(S, <<"after">>, <<"reset">>),
    {ok, <<"reset">>} = hyper_lmdb:read(S, <<"after">>),
    #{entries := 1} = hyper_lmdb:stats(S).

stop_start_keeps_data(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"k">>, <<"kept">>),
    ok = hyper_lmdb:make_link(S, <<"k">>, <<"l">>),
    ok = hyper_lmdb:stop(S),
    {ok, _} = hyper_lmdb:start(S),
    {ok, <<"kept">>} = hyper_lmdb:read(S, <<"l">>).

stores_isolated(C) ->
    S1 = s(C),
    S2 = #{<<"name">> => <<(maps:get(<<"name">>, S1))/binary, "-other">>},
    {ok, #{<<"pid">> := P1}} = hyper_lmdb:start(S1),
    {ok, #{<<"pid">> := P2}} = hyper_lmdb:start(S2),
    ?assertNotEqual(P1, P2),
    ok = hyper_lmdb:write(S1, <<"k">>, <<"one">>),
    ok = hyper_lmdb:write(S2, <<"k">>, <<"two">>),
    {ok, <<"one">>} = hyper_lmdb:read(S1, <<"k">>),
    {ok, <<"two">>} = hyper_lmdb:read(S2, <<"k">>),
    ok = hyper_lmdb:reset(S2),
    {ok, <<"one">>} = hyper_lmdb:read(S1, <<"k">>),
    %% start is idempotent
    {ok, #{<<"pid">> := P1}} = hyper_lmdb:start(S1),
    ok = hyper_lmdb:stop(S2).

lookalike_values_are_data(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"secret">>, <<"s">>),
    ok = hyper_lmdb:write(S, <<"a">>, <<"link:secret">>),
    ok = hyper_lmdb:write(S, <<"b">>, <<"group">>),
    {ok, <<"link:secret">>} = hyper_lmdb:read(S, <<"a">>),
    {ok, <<"group">>} = hyper_lmdb:read(S, <<"b">>),
    simple = hyper_lmdb:type(S, <<"b">>),
    <<"a">> = hyper_lmdb:resolve(S, <<"a">>),
    #{format := tagged} = hyper_lmdb:stats(S).

value_sizes(C) ->
    S = s(C),
    [begin
         V = crypto:strong_rand_bytes(N),
         ok = hyper_lmdb:write(S, [<<"size">>, N], V),
         {ok, V} = hyper_lmdb:read(S, [<<"size">>, N])
     end || N <- [0, 1, 1 bsl 20, 64 bsl 20]],
    [{ok, <<>>}, {ok, One}] = hyper_lmdb:read_many(S, [[<<"size">>, 0], [<<"size">>, 1 bsl 20]]),
    1048576 = byte_size(One).

key_sizes(C) ->
    S = s(C),
    K511 = binary:copy(<<"k">>, 511),
    K512 = binary:copy(<<"k">>, 512),
    ok = hyper_lmdb:write(S, K511, <<"v">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, K511),
    {error, {key_too_long, 512}} = hyper_lmdb:write(S, K512, <<"v">>),
    {error, {key_too_long, 512}} = hyper_lmdb:make_group(S, K512),
    not_found = hyper_lmdb:read(S, K512),       % no such key can exist: a miss
    not_found = hyper_lmdb:type(S, K512),
    %% 511 after normalisation of a longer raw path
    ok = hyper_lmdb:write(S, <<"/", K511/binary, "/">>, <<"w">>),
    {ok, <<"w">>} = hyper_lmdb:read(S, K511),
    #{entries := 1} = hyper_lmdb:stats(S).

%% SPEC 2 limits keys to 511 bytes, not paths: a longer path that a link
%% at a prefix shortens to a key names that key, for every operation.
long_path_through_link(C) ->
    S = s(C),
    L = binary:copy(<<"l">>, 400),
    R = binary:copy(<<"r">>, 200),
    ok = hyper_lmdb:make_link(S, <<"d">>, L),
    ok = hyper_lmdb:write(S, <<"d/", R/binary>>, <<"reachable">>),
    Long = <<L/binary, "/", R/binary>>,                       % 601 bytes
    {ok, <<"reachable">>} = hyper_lmdb:read(S, Long),
    simple = hyper_lmdb:type(S, Long),
    <<"d/", R/binary>> = hyper_lmdb:resolve(S, Long),
    [{ok, <<"reachable">>}, not_found] =
        hyper_lmdb:read_many(S, [Long, <<L/binary, "/nothing">>]),
    {ok, [R]} = hyper_lmdb:list(S, L),
    ok = hyper_lmdb:write(S, <<Long/binary, "/below">>, <<"w">>),
    {ok, <<"w">>} = hyper_lmdb:read(S, <<"d/", R/binary, "/below">>),
    ok = hyper_lmdb:write_many(S, [{write, <<L/binary, "/x">>, <<"x">>},
                                   {make_group, <<Long/binary, "/g">>}]),
    {ok, <<"x">>} = hyper_lmdb:read(S, <<"d/x">>),
    composite = hyper_lmdb:type(S, <<"d/", R/binary, "/g">>),
    ok = hyper_lmdb:delete(S, <<L/binary, "/x">>),
    not_found = hyper_lmdb:read(S, <<"d/x">>),
    %% without a link the key itself is too long: writers hear it, readers
    %% miss (the classic callbacks answer {ok, Bin} | not_found)
    Plain = binary:copy(<<"p">>, 600),
    not_found = hyper_lmdb:read(S, Plain),
    not_found = hyper_lmdb:type(S, Plain),
    [not_found] = hyper_lmdb:read_many(S, [Plain]),
    {error, {key_too_long, 600}} = hyper_lmdb:write(S, Plain, <<"v">>),
    {error, {key_too_long, 600}} = hyper_lmdb:write_many(S, [{write, <<"q">>, <<"1">>},
                                                             {write, Plain, <<"v">>}]),
    not_found = hyper_lmdb:read(S, <<"q">>),
    {ok, []} = hyper_lmdb:list(S, Plain),
    Plain = hyper_lmdb:resolve(S, Plain),
    %% a link whose target and the rest make a key too long
    ok = hyper_lmdb:make_link(S, binary:copy(<<"t">>, 400), <<"s">>),
    {error, {key_too_long, 601}} = hyper_lmdb:write(S, <<"s/", R/binary>>, <<"v">>),
    not_found = hyper_lmdb:read(S, <<"s/", R/binary>>),
    %% beyond what resolution works on, whatever links say
    Huge = binary:copy(<<"h">>, 5000),
    not_found = hyper_lmdb:read(S, Huge),
    not_found = hyper_lmdb:type(S, Huge),
    {ok, []} = hyper_lmdb:list(S, Huge),
    Huge = hyper_lmdb:resolve(S, Huge),
    {error, {key_too_long, 5401}} = hyper_lmdb:write(S, <<L/binary, "/", Huge/binary>>, <<"v">>),
    #{entries := 5} = hyper_lmdb:stats(S).

%% A link's target is a path: at most 4096 bytes (what resolution works
%% on), refused with its own length, and a write_many holding one writes
%% nothing.  A link to a path too long for a key reads as not_found, as that
%% key would.
link_target_sizes(C) ->
    S = s(C),
    T4096 = binary:copy(<<"e">>, 4096),
    Big = binary:copy(<<"e">>, 5000),
    ok = hyper_lmdb:make_link(S, T4096, <<"n4096">>),
    not_found = hyper_lmdb:read(S, <<"n4096">>),
    {error, {key_too_long, 5000}} = hyper_lmdb:make_link(S, Big, <<"n">>),
    {error, {key_too_long, 700}} = hyper_lmdb:write(S, binary:copy(<<"a">>, 700), <<"v">>),
    {error, {key_too_long, 5000}} = hyper_lmdb:make_link(S, Big, <<"n">>),
    {error, {key_too_long, 5000}} =
        hyper_lmdb:write_many(S, [{write, <<"q">>, <<"1">>}, {make_link, Big, <<"n">>}]),
    not_found = hyper_lmdb:read(S, <<"q">>),
    #{entries := 1} = hyper_lmdb:stats(S).

empty_path(C) ->
    S = s(C),
    {error, empty_path} = hyper_lmdb:write(S, <<>>, <<"v">>),
    {error, empty_path} = hyper_lmdb:write(S, <<"//">>, <<"v">>),
    {error, empty_path} = hyper_lmdb:write(S, [], <<"v">>),
    {error, empty_path} = hyper_lmdb:make_group(S, <<"/">>),
    {error, empty_path} = hyper_lmdb:make_link(S, <<"x">>, <<>>),
    {error, empty_path} = hyper_lmdb:make_link(S, <<>>, <<"x">>),
    {error, empty_path} = hyper_lmdb:delete(S, <<>>),
    #{entries := 0} = hyper_lmdb:stats(S).

bad_arguments(C) ->
    S = s(C),
    BadPath = {error, {bad_argument, path}},
    BadValue = {error, {bad_argument, value}},
    BadPath = hyper_lmdb:read(S, 42),
    BadPath = hyper_lmdb:read(S, self()),
    BadPath = hyper_lmdb:write(S, {not_a, path}, <<"v">>),
    %% a map in second place is the device-style write (issue 6): empty, it is a bad request
    {error, {bad_argument, request}} = hyper_lmdb:write(S, #{}, <<"v">>),
    BadPath = hyper_lmdb:type(S, {a, b}),
    BadPath = hyper_lmdb:list(S, 1.5),
    BadPath = hyper_lmdb:make_link(S, 1, <<"x">>),
    BadValue = hyper_lmdb:write(S, <<"k">>, 42),
    BadValue = hyper_lmdb:write(S, <<"k">>, atom),
    BadValue = hyper_lmdb:write(S, <<"k">>, [1 | 2]),
    {error, {bad_argument, list_opts}} = hyper_lmdb:list(S, <<"a">>, #{limit => -1}),
    {error, {bad_argument, op}} = hyper_lmdb:write_many(S, [{frob, <<"k">>}]),
    {error, {bad_argument, _}} = hyper_lmdb:read_many(S, not_a_list),
    #{entries := 0} = hyper_lmdb:stats(S).

%%% extensions

read_many_snapshot(C) ->
    S = s(C),
    ok = hyper_lmdb:write_many(S, [{write, <<"a">>, <<"1">>}, {write, <<"b">>, <<"2">>},
                                   {make_link, <<"a">>, <<"la">>}]),
    [{ok, <<"1">>}, {ok, <<"2">>}, not_found, {ok, <<"1">>}] =
        hyper_lmdb:read_many(S, [<<"a">>, <<"b">>, <<"c">>, <<"la">>]),
    [] = hyper_lmdb:read_many(S, []),
    [not_found] = hyper_lmdb:read_many(S, [binary:copy(<<"x">>, 600)]).

write_many_atomic(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"keep">>, <<"old">>),
    {error, empty_path} = hyper_lmdb:write_many(S, [{write, <<"keep">>, <<"new">>},
                                                     {write, <<"other">>, <<"x">>},
                                                     {make_group, <<>>}]),
    {ok, <<"old">>} = hyper_lmdb:read(S, <<"keep">>),
    not_found = hyper_lmdb:read(S, <<"other">>),
    ok = hyper_lmdb:write_many(S, [{write, <<"keep">>, <<"new">>}, {make_group, <<"g">>},
                                   {make_link, <<"keep">>, <<"g/l">>}, {delete, <<"nothing">>}]),
    {ok, <<"new">>} = hyper_lmdb:read(S, <<"g/l">>).

delete_one(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"a">>, <<"1">>),
    ok = hyper_lmdb:write(S, <<"a/b">>, <<"2">>),
    ok = hyper_lmdb:delete(S, <<"a">>),
    not_found = hyper_lmdb:read(S, <<"a">>),
    {ok, <<"2">>} = hyper_lmdb:read(S, <<"a/b">>),
    ok = hyper_lmdb:delete(S, <<"never">>).

%%% the link cache can never answer stale

cache_stale_after_overwrite(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"d/x">>, <<"through link">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    {ok, <<"through link">>} = hyper_lmdb:read(S, <<"l/x">>),  % cached: l/x -> d/x
    ok = hyper_lmdb:write(S, <<"l">>, <<"now a value">>),
    not_found = hyper_lmdb:read(S, <<"l/x">>),
    %% and a key below the former link is read literally now
    ok = hyper_lmdb:write(S, <<"l/x">>, <<"literal">>),
    {ok, <<"literal">>} = hyper_lmdb:read(S, <<"l/x">>).

cache_stale_after_delete(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"d/x">>, <<"via">>),
    ok = hyper_lmdb:write(S, <<"l/x">>, <<"own">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    {ok, <<"via">>} = hyper_lmdb:read(S, <<"l/x">>),
    ok = hyper_lmdb:delete(S, <<"l">>),
    {ok, <<"own">>} = hyper_lmdb:read(S, <<"l/x">>).

cache_stale_after_make_link(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"p/x">>, <<"plain">>),
    ok = hyper_lmdb:write(S, <<"q/x">>, <<"linked">>),
    {ok, <<"plain">>} = hyper_lmdb:read(S, <<"p/x">>),  % cached: no link on the way
    ok = hyper_lmdb:make_link(S, <<"q">>, <<"p">>),
    {ok, <<"linked">>} = hyper_lmdb:read(S, <<"p/x">>),
    composite = hyper_lmdb:type(S, <<"p">>),
    {ok, [<<"x">>]} = hyper_lmdb:list(S, <<"p">>).

cache_stale_after_reset(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"d/x">>, <<"before">>),
    ok = hyper_lmdb:make_link(S, <<"d">>, <<"l">>),
    {ok, <<"before">>} = hyper_lmdb:read(S, <<"l/x">>),
    ok = hyper_lmdb:reset(S),
    not_found = hyper_lmdb:read(S, <<"l/x">>),
    ok = hyper_lmdb:write(S, <<"l/x">>, <<"after">>),
    {ok, <<"after">>} = hyper_lmdb:read(S, <<"l/x">>).

cache_stale_after_relink_chain(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"a/v">>, <<"A">>),
    ok = hyper_lmdb:write(S, <<"b/v">>, <<"B">>),
    ok = hyper_lmdb:make_link(S, <<"a">>, <<"m">>),
    ok = hyper_lmdb:make_link(S, <<"m">>, <<"top">>),
    {ok, <<"A">>} = hyper_lmdb:read(S, <<"top/v">>),
    ok = hyper_lmdb:make_link(S, <<"b">>, <<"m">>),   % the middle of the chain moves
    {ok, <<"B">>} = hyper_lmdb:read(S, <<"top/v">>),
    %% and within one atomic batch
    ok = hyper_lmdb:write_many(S, [{make_link, <<"a">>, <<"m">>}, {write, <<"top/w">>, <<"W">>}]),
    {ok, <<"W">>} = hyper_lmdb:read(S, <<"a/w">>),
    {ok, <<"A">>} = hyper_lmdb:read(S, <<"top/v">>).

sync_and_stats(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    ok = hyper_lmdb:sync(S),
    #{entries := 1, format := tagged, durability := commit, commits := Commits,
      cache_hits := _, cache_misses := _, port_restarts := 0, map_size := Map} =
        hyper_lmdb:stats(S),
    ?assert(Commits >= 1),
    ?assert(Map >= 16 bsl 30).

%% Another process writing the directory (a store beside this one with
%% exclusive false, as the command line's put is) grows the map past this
%% store's: LMDB then answers MDB_MAP_RESIZED to every transaction this
%% store begins until it adopts the new size.  Reads and writes through
%% the first store must go on as if nothing happened, whether a write
%% (a write transaction) or a read (the pooled read transaction) meets
%% the grown map first.  A reader of the first store (a read-only port of
%% its own) adopts the new size as well.
map_grown_by_another_writer(C) ->
    Dir = <<(maps:get(<<"name">>, s(C)))/binary, "-small">>,
    S = #{<<"name">> => Dir, <<"capacity">> => 1 bsl 20, <<"format">> => <<"tagged">>},
    {ok, _} = hyper_lmdb:start(S),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"k">>),
    {ok, R} = hyper_lmdb:open_reader(S),
    {ok, <<"v">>} = hyper_lmdb:read(R, <<"k">>),
    #{map_size := Before} = hyper_lmdb:stats(S),
    Alias = <<Dir/binary, "-alias">>,
    ok = file:make_symlink(Dir, Alias),
    Beside = #{<<"name">> => Alias, <<"exclusive">> => false, <<"capacity">> => 1 bsl 20},
    Big = binary:copy(<<"b">>, 1 bsl 20),
    Grow = fun(Ns) ->
        {ok, _} = hyper_lmdb:start(Beside),
        [ok = hyper_lmdb:write(Beside, [<<"big">>, N], Big) || N <- Ns],
        ok = hyper_lmdb:stop(Beside)
    end,
    Grow(lists:seq(1, 6)),
    ok = hyper_lmdb:write(S, <<"k2">>, <<"v2">>),
    {ok, <<"v2">>} = hyper_lmdb:read(S, <<"k2">>),
    {ok, Big} = hyper_lmdb:read(S, <<"big/6">>),
    {ok, Big} = hyper_lmdb:read(R, <<"big/6">>),
    #{map_size := Grown} = hyper_lmdb:stats(S),
    ?assert(Grown >= Before + 6 * byte_size(Big)),
    Grow(lists:seq(7, 20)),
    {ok, Big} = hyper_lmdb:read(S, <<"big/20">>),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"k">>),
    ok = hyper_lmdb:write(S, <<"big/21">>, Big),
    {ok, Big} = hyper_lmdb:read(S, <<"big/21">>),
    [ok = hyper_lmdb:write(S, [<<"own">>, N], Big) || N <- lists:seq(1, 40)],  % its own growth
    {ok, Big} = hyper_lmdb:read(R, <<"big/21">>),
    {ok, Big} = hyper_lmdb:read(R, <<"own/40">>),
    ok = hyper_lmdb:close_reader(R),
    #{map_size := After} = hyper_lmdb:stats(S),
    ?assert(After >= Before + 20 * byte_size(Big)),
    ok = hyper_lmdb:stop(S).

%% A store given a children index keeps it: built at an open from the keys
%% it already holds, used and kept by every later open, with or without
%% the option, and emptied by a reset like the rest.
children_index_kept(C) ->
    S = s(C),
    Keys = [<<"g/c", (integer_to_binary(I rem 7))/binary, "/d/", (integer_to_binary(I))/binary>>
            || I <- lists:seq(1, 200)] ++ [<<"g/a">>, <<"g/a-b/x">>, <<"top">>],
    [ok = hyper_lmdb:write(S, K, <<"v">>) || K <- Keys],
    ok = hyper_lmdb:make_link(S, <<"g">>, <<"l">>),
    {ok, Walked} = hyper_lmdb:list(S, <<"g">>),
    #{children_index := false} = hyper_lmdb:stats(S),
    ok = hyper_lmdb:stop(S),
    Indexed = S#{<<"children-index">> => true},
    {ok, _} = hyper_lmdb:start(Indexed),
    #{children_index := true} = hyper_lmdb:stats(S),
    {ok, Walked} = hyper_lmdb:list(S, <<"g">>),
    {ok, Walked} = hyper_lmdb:list(S, <<"l">>),
    {ok, [<<"g">>, <<"l">>, <<"top">>]} = hyper_lmdb:list(S, <<>>),
    {ok, [<<"c1">>, <<"c0">>, <<"a-b">>]} =
        hyper_lmdb:list(S, <<"g">>, #{from => <<"c1">>, limit => 3, direction => desc}),
    %% a reader (a read-only port of its own) lists off the index too
    {ok, R} = hyper_lmdb:open_reader(S),
    {ok, Walked} = hyper_lmdb:list(R, <<"l">>),
    {ok, [<<"c3">>, <<"c4">>]} = hyper_lmdb:list(R, <<"g">>, #{from => <<"c3">>, limit => 2}),
    ok = hyper_lmdb:close_reader(R),
    ok = hyper_lmdb:stop(S),
    {ok, _} = hyper_lmdb:start(S),
    #{children_index := true} = hyper_lmdb:stats(S),
    ok = hyper_lmdb:write_many(S, [{delete, <<"g/a">>}, {delete, <<"g/a-b/x">>},
                                   {write, <<"g/new/x/y">>, <<"v">>}]),
    {ok, [<<"c0">>, <<"c1">>, <<"c2">>, <<"c3">>, <<"c4">>, <<"c5">>, <<"c6">>, <<"new">>]} =
        hyper_lmdb:list(S, <<"g">>),
    ok = hyper_lmdb:reset(S),
    {ok, []} = hyper_lmdb:list(S, <<>>),
    ok = hyper_lmdb:write(S, <<"after/reset">>, <<"v">>),
    {ok, [<<"after">>]} = hyper_lmdb:list(S, <<>>),
    #{children_index := true, entries := 1} = hyper_lmdb:stats(S).

%% A store in hb_store_lmdb's format cannot have one (nothing hb_store_lmdb
%% would see may be added to it): the start says so, and leaves it as it was.
children_index_refused(C) ->
    Dir = <<(maps:get(<<"name">>, s(C)))/binary, "-hb">>,
    Hb = #{<<"name">> => Dir, <<"format">> => <<"hb_store_lmdb">>},
    {ok, _} = hyper_lmdb:start(Hb),
    ok = hyper_lmdb:write(Hb, <<"a/b">>, <<"v">>),
    ok = hyper_lmdb:stop(Hb),
    {error, _} = hyper_lmdb:start(#{<<"name">> => Dir, <<"children-index">> => true}),
    {ok, _} = hyper_lmdb:start(Hb),
    #{children_index := false, format := hb_store_lmdb, entries := 1} = hyper_lmdb:stats(Hb),
    {ok, [<<"b">>]} = hyper_lmdb:list(Hb, <<"a">>),
    ok = hyper_lmdb:stop(Hb),
    {error, {bad_option, <<"children-index">>}} =
        hyper_lmdb:start(#{<<"name">> => Dir, <<"children-index">> => <<"yes">>}).

%% A writer beside the store (exclusive false, as the command line's put
%% is), running since before the store was given its index, sees the
%% index appear and keeps it too: its new keys are listed.
children_index_built_beside(C) ->
    S = s(C),
    Dir = maps:get(<<"name">>, S),
    ok = hyper_lmdb:write(S, <<"g/old/x">>, <<"v">>),
    Alias = <<Dir/binary, "-alias">>,
    ok = file:make_symlink(Dir, Alias),
    Beside = #{<<"name">> => Alias, <<"exclusive">> => false},
    {ok, _} = hyper_lmdb:start(Beside),
    ok = hyper_lmdb:write(Beside, <<"g/before/x">>, <<"v">>),
    #{children_index := false} = hyper_lmdb:stats(Beside),
    ok = hyper_lmdb:stop(S),
    {ok, _} = hyper_lmdb:start(S#{<<"children-index">> => true}),
    #{children_index := true} = hyper_lmdb:stats(S),
    ok = hyper_lmdb:write(Beside, <<"g/beside/x/y">>, <<"v">>),
    #{children_index := true} = hyper_lmdb:stats(Beside),
    ok = hyper_lmdb:write_many(Beside, [{delete, <<"g/old/x">>}, {write, <<"h">>, <<"v">>}]),
    {ok, [<<"before">>, <<"beside">>]} = hyper_lmdb:list(S, <<"g">>),
    {ok, [<<"x">>]} = hyper_lmdb:list(S, <<"g/beside">>),
    {ok, [<<"g">>, <<"h">>]} = hyper_lmdb:list(S, <<>>),
    ok = hyper_lmdb:stop(Beside).

%% The port's numeric options are range-checked, not cast: a number its
%% field cannot hold (or that makes no sense) ends the port with the usage
%% status (2) before it opens anything, where a cast used to run it with
%% another setting (--max-hops 2^32 as 0, --max-readers 2^32 + 1 as 1) or
%% hang it (--cache-slots above 2^63).  The largest sane values still run.
port_refuses_numbers_out_of_range(C) ->
    Dir = binary_to_list(maps:get(<<"name">>, s(C))) ++ "-cli",
    Bad = [{"--max-hops", "4294967296"}, {"--sync-interval", "2147483648"},
           {"--cache-slots", "9223372036854775809"}, {"--max-readers", "4294967297"},
           {"--max-frame", "4294967296"}, {"--spin-us", "4294967296"},
           {"--batch-max", "18446744073709551615"}, {"--batch-max", "0"}, {"--map-size", "0"},
           {"--read-only", "2"}, {"--sync-interval", "0"}],
    [?assertEqual({Opt, Val, {exit_status, 2}}, {Opt, Val, run_port(["--dir", Dir, Opt, Val])})
     || {Opt, Val} <- Bad],
    false = filelib:is_dir(Dir),
    hello = run_port(["--dir", Dir, "--max-hops", "1048576", "--sync-interval", "86400000",
                      "--max-readers", "1048576", "--cache-slots", "16777216",
                      "--max-frame", "4294967295", "--spin-us", "1000000"]).

%% Runs the port with Args: {exit_status, N} if it exits first, hello if
%% it opens and says hello (it is then closed).
run_port(Args) ->
    Exe = filename:join(code:priv_dir(hyper_lmdb), "hyper_lmdb_port"),
    Port = open_port({spawn_executable, Exe}, [stream, binary, exit_status, use_stdio,
                                                 {args, Args}]),
    receive
        {Port, {exit_status, St}} -> {exit_status, St};
        {Port, {data, _}} -> port_close(Port), hello
    after 10000 ->
        port_close(Port),
        timeout
    end.

%% A write the port refuses (a key over LMDB's 511 bytes) changes nothing,
%% and commits nothing either: not even an empty transaction.
refused_write_commits_nothing(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, <<"k">>, <<"v">>),
    #{commits := Commits} = hyper_lmdb:stats(S),
    Long = binary:copy(<<"x">>, 600),
    {error, {key_too_long, 600}} = hyper_lmdb:write(S, Long, <<"v">>),
    {error, {key_too_long, 600}} = hyper_lmdb:write(S, Long, <<"v">>),
    ?assertMatch(#{commits := Commits, entries := 1}, hyper_lmdb:stats(S)).

%%% many processes

%% 100 processes write their own keys and read each other's for three
%% seconds; afterwards another process reads back every write that was
%% acknowledged.  A reader never sees a key go back to an older value.
concurrent_writers_and_readers(C) ->
    S = s(C),
    Parent = self(),
    Deadline = erlang:monotonic_time(millisecond) + 3000,
    Pids = [spawn_link(fun() -> Parent ! {self(), worker(S, N, Deadline, 0, #{}, #{})} end)
            || N <- lists:seq(1, 100)],
    Results = [receive {P, R} -> R end || P <- Pids],
    Acked = lists:append([A || {A, _} <- Results]),
    Reads = lists:sum([R || {_, R} <- Results]),
    ct:pal("100 processes: ~b writes acknowledged, ~b reads checked", [length(Acked), Reads]),
    ?assert(length(Acked) > 1000),
    Checker = spawn_link(fun() ->
        Parent ! {checked, [K || {K, V} <- Acked, hyper_lmdb:read(S, K) =/= {ok, V}]}
    end),
    receive {checked, Missing} -> ?assertEqual([], Missing) end,
    unlink(Checker).

%% Worker N writes p<N>/k<M> = M (increasing), and reads a random other
%% worker's latest key, which must never go backwards.
worker(S, N, Deadline, M, Seen, Acc) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true ->
            {maps:to_list(Acc), maps:size(Seen)};
        false ->
            Key = key(N, M rem 20),
            Val = integer_to_binary(M),
            ok = hyper_lmdb:write(S, Key, Val),
            Other = rand:uniform(100),
            Seen2 = check_monotonic(S, Other, Seen),
            worker(S, N, Deadline, M + 1, Seen2, Acc#{Key => Val})
    end.

key(N, M) ->
    iolist_to_binary(io_lib:format("p~b/k~b", [N, M])).

check_monotonic(S, Other, Seen) ->
    K = key(Other, 0),
    case hyper_lmdb:read(S, K) of
        {ok, V} ->
            I = binary_to_integer(V),
            Prev = maps:get(K, Seen, -1),
            ?assert(I >= Prev),
            Seen#{K => I};
        not_found ->
            ?assertEqual(error, maps:find(K, Seen)),
            Seen
    end.
