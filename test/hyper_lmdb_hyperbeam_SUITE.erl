%%% HyperBEAM conformance, written from SPEC's semantics: both API
%%% generations (classic hb_store callbacks and the device-style API),
%%% message-shaped data, paging, match, a directory written in
%%% hb_store_lmdb's format by a separate writer (mdb_load), format
%%% conversion, and the CLI end to end.
-module(hyper_lmdb_hyperbeam_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("eunit/include/eunit.hrl").

-compile([export_all, nowarn_export_all]).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [resolution_scenarios_classic, resolution_scenarios_device, message_shaped_data,
     message_shaped_data_device, groups_of_five, paging_1500_children, match_1000_ids,
     device_api_shapes, compat_directory_from_separate_writer, compat_foreign_slash_keys,
     compat_explicit_format,
     compat_stays_when_emptied, compat_link_parents_and_bounds,
     check_reports_problems, convert_both_ways, convert_separate_writer_directory,
     cli_end_to_end, cli_while_node_serves, cli_errors].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    Config.
end_per_suite(_) -> ok.

init_per_testcase(Case, Config) ->
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case)),
    S = #{<<"store-module">> => hyper_lmdb, <<"name">> => list_to_binary(Dir)},
    [{s, S}, {dir, Dir} | Config].

end_per_testcase(_, Config) ->
    hyper_lmdb:stop(?config(s, Config)).

s(C) -> ?config(s, C).
none() -> #{}.

hash(I) ->
    %% 43 characters, like a base64url SHA-256 id
    B = base64:encode(crypto:hash(sha256, integer_to_binary(I))),
    binary:part(binary:replace(binary:replace(B, <<"/">>, <<"_">>, [global]), <<"+">>, <<"-">>, [global]), 0, 43).

%%% the three path-resolution scenarios

resolution_scenarios_classic(C) ->
    S = s(C),
    %% a link to a file
    ok = hyper_lmdb:write(S, <<"test-file">>, <<"test-data">>),
    ok = hyper_lmdb:make_link(S, <<"test-file">>, <<"test-link">>),
    {ok, <<"test-data">>} = hyper_lmdb:read(S, <<"test-link">>),
    %% a link to a link
    ok = hyper_lmdb:make_link(S, <<"test-link">>, <<"test-link-2">>),
    {ok, <<"test-data">>} = hyper_lmdb:read(S, <<"test-link-2">>),
    %% a linked directory read through a path
    ok = hyper_lmdb:make_group(S, <<"real-dir">>),
    ok = hyper_lmdb:write(S, [<<"real-dir">>, <<"sub">>, <<"file">>], <<"deep">>),
    ok = hyper_lmdb:make_link(S, <<"real-dir">>, <<"linked-dir">>),
    {ok, <<"deep">>} = hyper_lmdb:read(S, [<<"linked-dir">>, <<"sub">>, <<"file">>]),
    {ok, <<"deep">>} = hyper_lmdb:read(S, <<"linked-dir/sub/file">>),
    <<"real-dir/sub/file">> = hyper_lmdb:resolve(S, <<"linked-dir/sub/file">>).

resolution_scenarios_device(C) ->
    S = s(C),
    ok = hyper_lmdb:write(S, #{<<"test-file">> => <<"test-data">>}, none()),
    ok = hyper_lmdb:link(S, #{<<"test-link">> => <<"test-file">>}, none()),
    {ok, <<"test-data">>} = hyper_lmdb:read(S, #{<<"read">> => <<"test-link">>}, none()),
    ok = hyper_lmdb:link(S, #{<<"test-link-2">> => <<"test-link">>}, none()),
    {ok, <<"test-data">>} = hyper_lmdb:read(S, #{<<"read">> => <<"test-link-2">>}, none()),
    ok = hyper_lmdb:group(S, #{<<"group">> => <<"real-dir">>}, none()),
    ok = hyper_lmdb:write(S, #{<<"real-dir/sub/file">> => <<"deep">>}, none()),
    ok = hyper_lmdb:link(S, #{<<"linked-dir">> => <<"real-dir">>}, none()),
    {ok, <<"deep">>} = hyper_lmdb:read(S, #{<<"read">> => <<"linked-dir/sub/file">>}, none()),
    {ok, <<"real-dir/sub/file">>} = hyper_lmdb:resolve(S, #{<<"resolve">> => <<"linked-dir/sub/file">>}, none()),
    {composite, [<<"sub">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"linked-dir">>}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"nothing">>}, none()).

%%% message-shaped data

%% A message is a group of keys, each a link to data/<hash>; its
%% commitments sub-group is reached through a link of its own.
message_shaped_data(C) ->
    S = s(C),
    Fields = [{<<"type">>, <<"Message">>}, {<<"target">>, <<"process-1">>}, {<<"data">>, <<"payload">>}],
    Ops = lists:append(
        [[{write, [<<"data">>, hash(I)], V}, {make_link, [<<"data">>, hash(I)], [<<"msg1">>, K]}]
         || {I, {K, V}} <- lists:zip(lists:seq(1, 3), Fields)]),
    ok = hyper_lmdb:write_many(S, [{make_group, <<"msg1">>} | Ops]),
    ok = hyper_lmdb:make_group(S, <<"commitments-of-msg1">>),
    ok = hyper_lmdb:write(S, <<"commitments-of-msg1/sig-1/signature">>, <<"sig">>),
    ok = hyper_lmdb:write(S, <<"commitments-of-msg1/sig-1/committer">>, <<"addr">>),
    ok = hyper_lmdb:make_link(S, <<"commitments-of-msg1">>, <<"msg1/commitments">>),
    {ok, [<<"commitments">>, <<"data">>, <<"target">>, <<"type">>]} = hyper_lmdb:list(S, <<"msg1">>),
    composite = hyper_lmdb:type(S, <<"msg1">>),
    simple = hyper_lmdb:type(S, <<"msg1/type">>),
    composite = hyper_lmdb:type(S, <<"msg1/commitments">>),
    composite = hyper_lmdb:type(S, <<"msg1/commitments/sig-1">>),
    {ok, [<<"sig-1">>]} = hyper_lmdb:list(S, <<"msg1/commitments">>),
    {ok, [<<"committer">>, <<"signature">>]} = hyper_lmdb:list(S, <<"msg1/commitments/sig-1">>),
    {ok, <<"Message">>} = hyper_lmdb:read(S, <<"msg1/type">>),
    {ok, <<"sig">>} = hyper_lmdb:read(S, <<"msg1/commitments/sig-1/signature">>),
    %% the same through the device API
    {composite, [<<"commitments">>, <<"data">>, <<"target">>, <<"type">>]} =
        hyper_lmdb:read(S, #{<<"read">> => <<"msg1">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"msg1/commitments">>}, none()),
    {ok, simple} = hyper_lmdb:type(S, #{<<"type">> => <<"msg1/data">>}, none()),
    43 = byte_size(hash(1)),
    <<"data/", H/binary>> = hyper_lmdb:resolve(S, <<"msg1/data">>),
    43 = byte_size(H).

%% The same message written and read through the device API only.
message_shaped_data_device(C) ->
    S = s(C),
    Fields = [{<<"type">>, <<"Message">>}, {<<"target">>, <<"process-1">>}, {<<"data">>, <<"payload">>}],
    Data = maps:from_list([{<<"data/", (hash(I))/binary>>, V} || {I, {_, V}} <- enum(Fields)]),
    ok = hyper_lmdb:write(S, Data, none()),
    ok = hyper_lmdb:group(S, #{<<"group">> => <<"msg2">>}, none()),
    ok = hyper_lmdb:link(S, maps:from_list([{<<"msg2/", K/binary>>, <<"data/", (hash(I))/binary>>}
                                            || {I, {K, _}} <- enum(Fields)]), none()),
    Sig = hash(100),
    ok = hyper_lmdb:write(S, #{<<"commitments-of-msg2">> =>
                                   #{Sig => #{<<"signature">> => <<"sig">>,
                                              <<"committer">> => <<"addr">>}}}, none()),
    ok = hyper_lmdb:link(S, #{<<"msg2/commitments">> => <<"commitments-of-msg2">>}, none()),
    {composite, [<<"commitments">>, <<"data">>, <<"target">>, <<"type">>]} =
        hyper_lmdb:read(S, #{<<"read">> => <<"msg2">>}, none()),
    {ok, [<<"commitments">>, <<"data">>, <<"target">>, <<"type">>]} =
        hyper_lmdb:list(S, #{<<"list">> => <<"msg2">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"msg2">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"msg2/commitments">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => [<<"msg2">>, <<"commitments">>, Sig]}, none()),
    {ok, simple} = hyper_lmdb:type(S, #{<<"type">> => <<"msg2/type">>}, none()),
    {composite, [Sig]} = hyper_lmdb:read(S, #{<<"read">> => <<"msg2/commitments">>}, none()),
    {composite, [<<"committer">>, <<"signature">>]} =
        hyper_lmdb:read(S, #{<<"read">> => [<<"msg2">>, <<"commitments">>, Sig]}, none()),
    {ok, <<"sig">>} = hyper_lmdb:read(S, #{<<"read">> => [<<"msg2">>, <<"commitments">>, Sig,
                                                          <<"signature">>]}, none()),
    {ok, <<"Message">>} = hyper_lmdb:read(S, #{<<"read">> => <<"msg2/type">>}, none()),
    {ok, <<"data/", H/binary>>} = hyper_lmdb:resolve(S, #{<<"resolve">> => <<"msg2/data">>}, none()),
    43 = byte_size(H),
    %% and the classic API sees the same
    {ok, <<"payload">>} = hyper_lmdb:read(S, <<"msg2/data">>),
    composite = hyper_lmdb:type(S, <<"msg2/commitments">>).

enum(L) -> lists:zip(lists:seq(1, length(L)), L).

groups_of_five(C) ->
    S = s(C),
    Names = [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>],
    [begin
         ok = hyper_lmdb:make_group(S, [<<"g">>, I]),
         [ok = hyper_lmdb:write(S, [<<"g">>, I, N], N) || N <- Names]
     end || I <- lists:seq(1, 200)],
    [{ok, Names} = hyper_lmdb:list(S, [<<"g">>, I]) || I <- lists:seq(1, 200)],
    [{composite, Names} = hyper_lmdb:read(S, #{<<"read">> => [<<"g">>, I]}, none())
     || I <- lists:seq(1, 200, 17)],
    %% written as nested maps through the device API, listed at once
    [ok = hyper_lmdb:write(S, #{[<<"h">>, I] => maps:from_list([{N, N} || N <- Names])}, none())
     || I <- lists:seq(1, 50)],
    [{composite, Names} = hyper_lmdb:read(S, #{<<"read">> => [<<"h">>, I]}, none())
     || I <- lists:seq(1, 50)],
    [{ok, Names} = hyper_lmdb:list(S, [<<"h">>, I]) || I <- lists:seq(1, 50)],
    %% rewriting a group of five keeps five
    ok = hyper_lmdb:write(S, #{<<"h/1/c">> => <<"new">>}, none()),
    {ok, Names} = hyper_lmdb:list(S, <<"h/1">>),
    {ok, <<"new">>} = hyper_lmdb:read(S, <<"h/1/c">>).

paging_1500_children(C) ->
    S = s(C),
    Names = lists:sort([hash(I) || I <- lists:seq(1, 1500)]),
    ok = hyper_lmdb:write_many(S, [{write, [<<"big">>, N], <<"v">>} || N <- Names]),
    {ok, Names} = hyper_lmdb:list(S, <<"big">>),
    %% ascending pages of 100, each starting after the last one seen
    Asc = page(S, asc, undefined, []),
    Names = Asc,
    Desc = page(S, desc, undefined, []),
    Desc = lists:reverse(Names),
    %% device-style request maps
    {ok, First} = hyper_lmdb:list(S, #{<<"list">> => <<"big">>, <<"limit">> => 10}, none()),
    First = lists:sublist(Names, 10),
    Mid = lists:nth(700, Names),
    {ok, Back} = hyper_lmdb:list(S, #{<<"list">> => <<"big">>, <<"from">> => Mid,
                                      <<"limit">> => 5, <<"direction">> => <<"desc">>}, none()),
    Back = lists:reverse(lists:sublist(Names, 696, 5)),
    %% a limit that arrives as digits, and device-style pages all the way
    {ok, Back} = hyper_lmdb:list(S, #{<<"list">> => <<"big">>, <<"from">> => Mid,
                                      <<"limit">> => <<"5">>, <<"direction">> => <<"desc">>}, none()),
    Names = dev_page(S, <<"asc">>, undefined, []),
    Desc = dev_page(S, <<"desc">>, undefined, []),
    {error, {bad_argument, _}} =
        hyper_lmdb:list(S, #{<<"list">> => <<"big">>, <<"direction">> => <<"sideways">>}, none()),
    {ok, []} = hyper_lmdb:list(S, #{<<"list">> => <<"no-such-group">>}, none()).

dev_page(S, Dir, From, Acc) ->
    Req = #{<<"list">> => <<"big">>, <<"limit">> => 250, <<"direction">> => Dir},
    {ok, Got} = hyper_lmdb:list(S, case From of undefined -> Req; _ -> Req#{<<"from">> => From} end,
                                none()),
    New = case From of undefined -> Got; _ -> tl(Got) end,
    case New of
        [] -> Acc;
        _ -> dev_page(S, Dir, lists:last(New), Acc ++ New)
    end.

page(S, Dir, From, Acc) ->
    Opts = case From of
               undefined -> #{limit => 100, direction => Dir};
               _ -> #{from => From, limit => 101, direction => Dir}
           end,
    {ok, Got} = hyper_lmdb:list(S, <<"big">>, Opts),
    New = case From of undefined -> Got; _ -> tl(Got) end,
    case New of
        [] -> Acc;
        _ -> page(S, Dir, lists:last(New), Acc ++ New)
    end.

%% 1,000 IDs with 4 fields each; a third match every field.
match_1000_ids(C) ->
    S = s(C),
    Fields = [{<<"type">>, <<"types/message">>}, {<<"owner">>, <<"people/alice">>},
              {<<"kind">>, <<"kinds/a">>}, {<<"tag">>, <<"tags/x">>}],
    Ops = lists:append([[{make_link, case I rem 3 =:= 0 orelse F =/= <<"tag">> of
                                         true -> T;
                                         false -> <<"tags/other">>
                                     end, [<<"ids">>, id(I), F]}
                         || {F, T} <- Fields] || I <- lists:seq(1, 1000)]),
    ok = hyper_lmdb:write_many(S, Ops),
    %% near misses: a field missing, a value holding the path's bytes
    %% instead of a link, a link to a link to the path
    ok = hyper_lmdb:write_many(S,
        [{make_link, T, [<<"ids">>, <<"missing">>, F]} || {F, T} <- tl(Fields)] ++
        [{write, [<<"ids">>, <<"as-value">>, F], T} || {F, T} <- Fields] ++
        [{write, [<<"ids">>, <<"as-link-text">>, F], <<"link:", T/binary>>} || {F, T} <- Fields] ++
        [{make_link, <<"alias-", F/binary>>, [<<"ids">>, <<"indirect">>, F]} || {F, _} <- Fields] ++
        [{make_link, T, <<"alias-", F/binary>>} || {F, T} <- Fields]),
    Want = lists:sort([<<"ids/", (id(I))/binary>> || I <- lists:seq(1, 1000), I rem 3 =:= 0]),
    {Us, {ok, Got}} = timer:tc(fun() -> hyper_lmdb:match(S, Fields) end),
    ct:pal("match over 1000 IDs x 4 fields: ~b found in ~b us", [length(Got), Us]),
    Want = lists:sort(Got),
    %% one pass: well under a second for thousands of candidates
    true = Us < 1000000,
    {ok, Got2} = hyper_lmdb:match(S, #{<<"match">> => maps:from_list(Fields)}, none()),
    Want = lists:sort(Got2),
    {ok, All} = hyper_lmdb:match(S, lists:sublist(Fields, 3)),
    1000 = length(All),
    {ok, Got3} = hyper_lmdb:match(S, #{<<"match">> => Fields}, none()),
    Want = lists:sort(Got3),
    {error, {bad_argument, _}} = hyper_lmdb:match(S, #{<<"match">> => [{<<"a/b">>, <<"x">>}]}, none()),
    {error, {bad_argument, _}} = hyper_lmdb:match(S, #{<<"match">> => []}, none()),
    %% HyperBEAM's own form (hb_store:match/3 passes the pattern map as
    %% it is): each value as its cache writes a field, "link:" for a link
    LinkSpec = maps:from_list([{F, <<"link:", T/binary>>} || {F, T} <- Fields]),
    {ok, Got4} = hyper_lmdb:match(S, LinkSpec, none()),
    Want = lists:sort(Got4),
    {ok, Got5} = hyper_lmdb:match(S, LinkSpec),     % classic hb_cache passes a map too
    Want = lists:sort(Got5),
    %% a value of the same bytes is data in this (tagged) store: only the
    %% ID holding the bytes themselves matches the plain values
    {ok, [<<"ids/as-value">>]} = hyper_lmdb:match(S, maps:from_list(Fields), none()),
    {ok, [<<"ids/as-value">>]} = hyper_lmdb:match(S, #{type => 'types/message'}, none()),
    {error, not_found} = hyper_lmdb:match(S, #{<<"type">> => <<"link:types/none">>}, none()),
    {error, not_found} = hyper_lmdb:match(S, #{<<"nomatch">> => []}, none()),
    {error, {bad_argument, _}} = hyper_lmdb:match(S, #{<<"a/b">> => <<"x">>}, none()),
    {error, {bad_argument, _}} = hyper_lmdb:match(S, #{<<"a">> => self()}, none()),
    {error, {bad_argument, _}} = hyper_lmdb:match(S, #{}, none()),
    %% in hb_store_lmdb's format a "link:" value is a link and "group" a group
    H = #{<<"name">> => list_to_binary(?config(dir, C) ++ "-hb"), <<"format">> => <<"hb_store_lmdb">>},
    ok = hyper_lmdb:write_many(H, [{make_link, <<"types/message">>, <<"m1/type">>},
                                   {write, <<"m2/type">>, <<"link:types/message">>},
                                   {write, <<"m3/type">>, <<"types/message">>},
                                   {make_group, <<"m1/body">>}, {make_group, <<"m3/body">>}]),
    {ok, [<<"m1">>, <<"m2">>]} = hyper_lmdb:match(H, #{<<"type">> => <<"link:types/message">>}, none()),
    {ok, [<<"m3">>]} = hyper_lmdb:match(H, #{<<"type">> => <<"types/message">>}, none()),
    {ok, [<<"m1">>, <<"m3">>]} = hyper_lmdb:match(H, #{<<"body">> => <<"group">>}, none()),
    ok = hyper_lmdb:stop(H).

id(I) -> iolist_to_binary(io_lib:format("id~4..0b", [I])).

device_api_shapes(C) ->
    S = s(C),
    {ok, #{<<"pid">> := Pid}} = hyper_lmdb:start(S, #{}, none()),
    true = is_process_alive(Pid),
    ok = hyper_lmdb:write(S, #{<<"a">> => <<"1">>, <<"m">> => #{<<"x">> => <<"2">>,
                                                                <<"y">> => #{<<"z">> => <<"3">>}}}, none()),
    {ok, <<"1">>} = hyper_lmdb:read(S, #{<<"read">> => <<"a">>}, none()),
    {composite, [<<"x">>, <<"y">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"m">>}, none()),
    {ok, <<"3">>} = hyper_lmdb:read(S, #{<<"read">> => <<"m/y/z">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"m/y">>}, none()),
    {error, not_found} = hyper_lmdb:type(S, #{<<"type">> => <<"nope">>}, none()),
    {error, {bad_argument, request}} = hyper_lmdb:read(S, #{<<"reed">> => <<"a">>}, none()),
    {error, empty_path} = hyper_lmdb:write(S, #{<<>> => <<"v">>}, none()),
    {error, empty_path} = hyper_lmdb:write(S, #{<<"m2">> => #{<<"/">> => <<"v">>}}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"m2">>}, none()),
    %% lists of segments as keys, a value given as iodata, NodeOpts ignored
    Node = #{<<"store">> => [S], <<"anything">> => else},
    ok = hyper_lmdb:write(S, #{[<<"seg">>, <<"ments">>] => [<<"io">>, "data"]}, Node),
    {ok, <<"iodata">>} = hyper_lmdb:read(S, #{<<"read">> => <<"seg/ments">>}, Node),
    %% empty requests are refused; an empty group reads as one
    {error, {bad_argument, request}} = hyper_lmdb:write(S, #{}, none()),
    {error, {bad_argument, request}} = hyper_lmdb:link(S, #{}, none()),
    ok = hyper_lmdb:group(S, #{<<"group">> => <<"empty">>}, none()),
    {composite, []} = hyper_lmdb:read(S, #{<<"read">> => <<"empty">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"empty">>}, none()),
    %% a map value replaces a value with a group; a value replaces a group
    ok = hyper_lmdb:write(S, #{<<"a">> => #{<<"k">> => <<"v">>}}, none()),
    {composite, [<<"k">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"a">>}, none()),
    ok = hyper_lmdb:write(S, #{<<"empty">> => <<"now a value">>}, none()),
    {ok, simple} = hyper_lmdb:type(S, #{<<"type">> => <<"empty">>}, none()),
    %% atomic: one bad entry, nothing written
    {error, _} = hyper_lmdb:write(S, #{<<"fine">> => <<"1">>, <<"bad">> => 42}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"fine">>}, none()),
    {error, _} = hyper_lmdb:write(S, #{binary:copy(<<"k">>, 600) => <<"1">>, <<"fine">> => <<"1">>}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"fine">>}, none()),
    %% links, several at once, dangling allowed; a loop reads as not_found
    ok = hyper_lmdb:link(S, #{<<"l1">> => <<"a/k">>, <<"l2">> => <<"nowhere">>,
                              <<"loop1">> => <<"loop2">>, <<"loop2">> => <<"loop1">>}, none()),
    {ok, <<"v">>} = hyper_lmdb:read(S, #{<<"read">> => <<"l1">>}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"l2">>}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"loop1">>}, none()),
    {error, not_found} = hyper_lmdb:type(S, #{<<"type">> => <<"loop1">>}, none()),
    %% the classic forms still answer as before
    ok = hyper_lmdb:write(S, <<"classic">>, <<"c">>),
    {ok, [<<"k">>]} = hyper_lmdb:list(S, <<"a">>, #{limit => 5}),
    not_found = hyper_lmdb:read(S, <<"nope">>),
    ok = hyper_lmdb:reset(S, #{}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"a">>}, none()),
    ok = hyper_lmdb:stop(S, #{}, none()).

%%% hb_store_lmdb's own format

%% Writes a directory the way HyperBEAM's hb_store_lmdb lays it out
%% (unnamed database, raw values, "group", "link:" + target) with LMDB's
%% own mdb_load: a separate writer that knows nothing of hyper_lmdb.
hb_dir(C, Name, Pairs) ->
    Dir = filename:join(?config(priv_dir, C), Name),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Input = Dir ++ ".load",
    ok = file:write_file(Input, ["VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n",
                                 [[" ", hex(K), "\n ", hex(V), "\n"] || {K, V} <- lists:sort(Pairs)],
                                 "DATA=END\n"]),
    "" = os:cmd("mdb_load -f " ++ Input ++ " " ++ Dir ++ " 2>&1"),
    Dir.

%% Every key of the unnamed database, as mdb_dump (LMDB's own tool) sees
%% it: what hb_store_lmdb would see.  A named database would show up here
%% too, as a key holding its record.
raw_keys(Dir) ->
    Dump = os:cmd("mdb_dump -p " ++ Dir),
    [_ | Body] = string:split(Dump, "HEADER=END\n"),
    Lines = [L || " " ++ L <- string:split(Body, "\n", all)],
    pairs(Lines).

pairs([K, V | T]) -> [{list_to_binary(K), list_to_binary(V)} | pairs(T)];
pairs([]) -> [].

hb_pairs() ->
    [{<<"data/h1">>, <<"payload">>}, {<<"msg">>, <<"group">>},
     {<<"msg/body">>, <<"link:data/h1">>}, {<<"msg/type">>, <<"Message">>},
     {<<"alias">>, <<"link:msg">>}].

%% Detected, served read and write through both API generations, and
%% nothing added that hb_store_lmdb would see as a key.
compat_directory_from_separate_writer(C) ->
    Dir = hb_dir(C, "hb-writer", hb_pairs()),
    S = #{<<"store-module">> => hyper_lmdb, <<"name">> => list_to_binary(Dir)},
    #{format := hb_store_lmdb, entries := 5} = hyper_lmdb:stats(S),
    {ok, <<"payload">>} = hyper_lmdb:read(S, <<"alias/body">>),
    composite = hyper_lmdb:type(S, <<"msg">>),
    {ok, [<<"body">>, <<"type">>]} = hyper_lmdb:list(S, <<"alias">>),
    <<"data/h1">> = hyper_lmdb:resolve(S, <<"alias/body">>),
    {composite, [<<"body">>, <<"type">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"alias">>}, none()),
    {ok, <<"payload">>} = hyper_lmdb:read(S, #{<<"read">> => <<"alias/body">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"msg">>}, none()),
    ok = hyper_lmdb:write(S, <<"msg/new">>, <<"written by hyper_lmdb">>),
    ok = hyper_lmdb:make_link(S, <<"msg/type">>, <<"alias2">>),
    ok = hyper_lmdb:write(S, #{<<"dev/m">> => #{<<"k">> => <<"v">>}}, none()),
    ok = hyper_lmdb:link(S, #{<<"alias3">> => <<"dev/m">>}, none()),
    {composite, [<<"k">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"alias3">>}, none()),
    ok = hyper_lmdb:stop(S),
    %% on disk: exactly hb_store_lmdb's encoding, and nothing else
    Want = lists:sort(hb_pairs() ++
                      [{<<"msg/new">>, <<"written by hyper_lmdb">>}, {<<"alias2">>, <<"link:msg/type">>},
                       {<<"dev/m">>, <<"group">>}, {<<"dev/m/k">>, <<"v">>},
                       {<<"alias3">>, <<"link:dev/m">>}]),
    Want = raw_keys(Dir),
    %% reopened, still detected; the stats say so
    #{format := hb_store_lmdb, entries := 10} = hyper_lmdb:stats(S),
    ok = hyper_lmdb:stop(S),
    %% an explicit format that contradicts the directory is refused
    {error, {open_failed, format, _}} = hyper_lmdb:start(S#{<<"format">> => <<"tagged">>}),
    %% the explicit, matching one is accepted
    {ok, _} = hyper_lmdb:start(S#{<<"format">> => <<"hb_store_lmdb">>}),
    ok = hyper_lmdb:stop(S).

%% hb_store_lmdb stores a path's bytes as given, so a directory it wrote
%% may hold the key "p/" beside "p/q": that key names no child, and `p' is
%% still a group with the child `q' to type/2 as to list/2, also through a
%% link.
compat_foreign_slash_keys(C) ->
    Dir = hb_dir(C, "hb-slash", [{<<"p/">>, <<"x">>}, {<<"p/q">>, <<"v">>},
                                 {<<"lp">>, <<"link:p">>}, {<<"r/">>, <<"y">>}]),
    S = #{<<"name">> => list_to_binary(Dir)},
    #{format := hb_store_lmdb} = hyper_lmdb:stats(S),
    {ok, <<"v">>} = hyper_lmdb:read(S, <<"p/q">>),
    {ok, [<<"q">>]} = hyper_lmdb:list(S, <<"p">>),
    composite = hyper_lmdb:type(S, <<"p">>),
    composite = hyper_lmdb:type(S, <<"lp">>),
    {ok, [<<"q">>]} = hyper_lmdb:list(S, <<"lp">>),
    %% "r/" alone: nothing below r
    {ok, []} = hyper_lmdb:list(S, <<"r">>),
    not_found = hyper_lmdb:type(S, <<"r">>),
    ok = hyper_lmdb:stop(S).

%% A new directory with an explicit format: hb_store_lmdb's layout from
%% the first write; the tagged default keeps caller bytes as data.
compat_explicit_format(C) ->
    Dir = ?config(dir, C),
    Hb = #{<<"name">> => list_to_binary(Dir ++ "-hb"), <<"format">> => <<"hb_store_lmdb">>},
    ok = hyper_lmdb:write(Hb, <<"a/b">>, <<"1">>),
    ok = hyper_lmdb:make_link(Hb, <<"a">>, <<"l">>),
    ok = hyper_lmdb:make_group(Hb, <<"g">>),
    #{format := hb_store_lmdb, entries := 3} = hyper_lmdb:stats(Hb),
    ok = hyper_lmdb:stop(Hb),
    [{<<"a/b">>, <<"1">>}, {<<"g">>, <<"group">>}, {<<"l">>, <<"link:a">>}] = raw_keys(Dir ++ "-hb"),
    Tagged = #{<<"name">> => list_to_binary(Dir ++ "-tagged"), <<"format">> => <<"tagged">>},
    ok = hyper_lmdb:write(Tagged, <<"v">>, <<"link:a">>),
    ok = hyper_lmdb:write(Tagged, <<"g">>, <<"group">>),
    {ok, <<"link:a">>} = hyper_lmdb:read(Tagged, <<"v">>),
    simple = hyper_lmdb:type(Tagged, <<"g">>),
    #{format := tagged} = hyper_lmdb:stats(Tagged),
    ok = hyper_lmdb:stop(Tagged),
    %% the default for a new directory is tagged; a bad format is refused
    #{format := tagged} = hyper_lmdb:stats(s(C)),
    {error, {bad_option, <<"format">>}} =
        hyper_lmdb:start(#{<<"name">> => list_to_binary(Dir ++ "-bad"), <<"format">> => <<"xml">>}).

%% An hb_store_lmdb directory that holds no keys (reset, or every key
%% deleted, or made empty by a separate writer) is still hb_store_lmdb's:
%% opened again without a format it must not be tagged, which would add
%% keys hb_store_lmdb sees and turn its link values into data.
compat_stays_when_emptied(C) ->
    Dir = ?config(dir, C),
    Hb = #{<<"name">> => list_to_binary(Dir), <<"format">> => <<"hb_store_lmdb">>},
    Auto = maps:remove(<<"format">>, Hb),
    ok = hyper_lmdb:write(Hb, <<"a">>, <<"1">>),
    ok = hyper_lmdb:reset(Hb),
    ok = hyper_lmdb:stop(Hb),
    #{format := hb_store_lmdb, entries := 0} = hyper_lmdb:stats(Auto),
    ok = hyper_lmdb:write(Auto, <<"b">>, <<"link:a">>),
    ok = hyper_lmdb:write(Auto, <<"a">>, <<"1">>),
    {ok, <<"1">>} = hyper_lmdb:read(Auto, <<"b">>),       % a link in this format
    ok = hyper_lmdb:delete(Auto, <<"a">>),
    ok = hyper_lmdb:delete(Auto, <<"b">>),
    ok = hyper_lmdb:stop(Auto),
    #{format := hb_store_lmdb, entries := 0} = hyper_lmdb:stats(Auto),
    ok = hyper_lmdb:write(Auto, <<"c">>, <<"3">>),
    ok = hyper_lmdb:stop(Auto),
    [{<<"c">>, <<"3">>}] = raw_keys(Dir),
    {ok, _} = hyper_lmdb:start(Hb),
    ok = hyper_lmdb:stop(Hb),
    %% an empty environment made by another program
    Empty = Dir ++ "-empty",
    ok = filelib:ensure_dir(filename:join(Empty, "x")),
    Input = Empty ++ ".dump",
    ok = file:write_file(Input, "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\nDATA=END\n"),
    "" = os:cmd("mdb_load -f " ++ Input ++ " " ++ Empty ++ " 2>&1"),
    E = #{<<"name">> => list_to_binary(Empty)},
    #{format := hb_store_lmdb} = hyper_lmdb:stats(E),
    ok = hyper_lmdb:stop(E),
    [] = raw_keys(Empty),
    #{format := hb_store_lmdb} = hyper_lmdb:stats(E),      % and again (our lock file is there now)
    ok = hyper_lmdb:stop(E),
    [] = raw_keys(Empty),
    %% but an environment never committed to in a directory a port of ours
    %% opened before (its lock file is there: the port was killed between
    %% creating the file and tagging it) is a new store: tagged
    Ours = Dir ++ "-ours",
    ok = filelib:ensure_dir(filename:join(Ours, "x")),
    ok = file:write_file(filename:join(Ours, "hyper_lmdb.lock"), <<>>),
    "" = os:cmd("mdb_load -f " ++ Input ++ " " ++ Ours ++ " 2>&1"),
    O = #{<<"name">> => list_to_binary(Ours)},
    #{format := tagged} = hyper_lmdb:stats(O),
    ok = hyper_lmdb:write(O, <<"k">>, <<"link:secret">>),
    {ok, <<"link:secret">>} = hyper_lmdb:read(O, <<"k">>),
    ok = hyper_lmdb:stop(O),
    %% while a new directory is tagged
    #{format := tagged} = hyper_lmdb:stats(#{<<"name">> => list_to_binary(Dir ++ "-new")}),
    ok = hyper_lmdb:stop(#{<<"name">> => list_to_binary(Dir ++ "-new")}).

%% What hb_store_lmdb does and a node switched back to it relies on: its
%% link/3 makes a group marker at every empty parent of the link (its list/3
%% lists only below one); list bounds as hb_store_utils reads them; atom
%% keys in request maps; sync/3.
compat_link_parents_and_bounds(C) ->
    Dir = ?config(dir, C),
    Hb = #{<<"name">> => list_to_binary(Dir), <<"format">> => <<"hb_store_lmdb">>},
    ok = hyper_lmdb:write(Hb, <<"data/u">>, <<"payload">>),
    ok = hyper_lmdb:link(Hb, #{<<"location/signer1">> => <<"data/u">>}, none()),
    ok = hyper_lmdb:make_link(Hb, <<"data/u">>, <<"a/b/c">>),
    ok = hyper_lmdb:write(Hb, <<"v/x">>, <<"1">>),
    ok = hyper_lmdb:make_link(Hb, <<"data/u">>, <<"v/x/y">>),   % a value parent stays a value
    ok = hyper_lmdb:make_link(Hb, <<"data/u">>, <<"l1">>),
    ok = hyper_lmdb:make_link(Hb, <<"a">>, <<"via">>),
    ok = hyper_lmdb:make_link(Hb, <<"data/u">>, <<"via/d/e">>), % lands at a/d/e
    ok = hyper_lmdb:stop(Hb),
    [{<<"a">>, <<"group">>}, {<<"a/b">>, <<"group">>}, {<<"a/b/c">>, <<"link:data/u">>},
     {<<"a/d">>, <<"group">>}, {<<"a/d/e">>, <<"link:data/u">>},
     {<<"data/u">>, <<"payload">>}, {<<"l1">>, <<"link:data/u">>},
     {<<"location">>, <<"group">>}, {<<"location/signer1">>, <<"link:data/u">>},
     {<<"v">>, <<"group">>}, {<<"v/x">>, <<"1">>}, {<<"v/x/y">>, <<"link:data/u">>},
     {<<"via">>, <<"link:a">>}]
        = raw_keys(Dir),
    %% tagged stores need no markers: implicit groups
    T = #{<<"name">> => list_to_binary(Dir ++ "-tagged")},
    ok = hyper_lmdb:make_link(T, <<"x">>, <<"p/q/r">>),
    {ok, [{<<"p/q/r">>, link, <<"x">>}], undefined} = hyper_lmdb:scan(T, #{}),
    %% list bounds: limit all | batch | a count (0: none), from none
    [ok = hyper_lmdb:write(T, <<"g/", N>>, <<"v">>) || N <- "abcd"],
    L = fun(Req) -> hyper_lmdb:list(T, Req#{<<"list">> => <<"g">>}, none()) end,
    {ok, [<<"a">>, <<"b">>, <<"c">>, <<"d">>]} = L(#{<<"limit">> => all}),
    {ok, [<<"a">>, <<"b">>, <<"c">>, <<"d">>]} = L(#{<<"limit">> => batch}),
    {ok, []} = L(#{<<"limit">> => 0}),
    {ok, [<<"a">>, <<"b">>]} = L(#{<<"limit">> => <<"2">>, <<"from">> => none}),
    {ok, [<<"c">>, <<"b">>]} = L(#{<<"limit">> => 2, <<"from">> => <<"c">>, <<"direction">> => desc}),
    {error, {bad_argument, _}} = L(#{<<"limit">> => some}),
    %% atom keys, as hb_path:to_binary takes them
    ok = hyper_lmdb:write(T, #{atomkey => <<"x">>, 7 => <<"seven">>}, none()),
    {ok, <<"x">>} = hyper_lmdb:read(T, <<"atomkey">>),
    {ok, <<"seven">>} = hyper_lmdb:read(T, <<"7">>),
    ok = hyper_lmdb:link(T, #{alias => atomkey}, none()),
    {ok, <<"x">>} = hyper_lmdb:read(T, <<"alias">>),
    ok = hyper_lmdb:sync(T, #{<<"level">> => <<"fsync">>}, none()),
    ok = hyper_lmdb:stop(T),
    %% converted to hb_store_lmdb's format, the link's parents get their
    %% markers, and the verification knows them for the source's implicit
    %% groups
    {ok, #{keys := 8}} = hyper_lmdb_tools:convert(Dir ++ "-tagged", Dir ++ "-back", <<"hb_store_lmdb">>, #{}),
    [{<<"p">>, <<"group">>}, {<<"p/q">>, <<"group">>}, {<<"p/q/r">>, <<"link:x">>}]
        = [E || {<<"p", _/binary>>, _} = E <- raw_keys(Dir ++ "-back")].

hex(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B].

%% check: dangling links, loops, malformed keys and values, in a directory
%% a foreign writer filled.
check_reports_problems(C) ->
    Dir = hb_dir(C, "hb-broken", [{<<"ok/v">>, <<"1">>}, {<<"good">>, <<"link:ok">>},
                                  {<<"dangling">>, <<"link:nowhere">>},
                                  {<<"loop-a">>, <<"link:loop-b">>}, {<<"loop-b">>, <<"link:loop-a">>},
                                  {<<"empty-link">>, <<"link:">>}, {<<"/leading">>, <<"x">>},
                                  {<<"odd">>, <<"link:ok//v">>}]),
    S = #{<<"name">> => list_to_binary(Dir), <<"read-only">> => true},
    {ok, #{keys := 8, links := 5, format := hb_store_lmdb, problems := P}} = hyper_lmdb_tools:check(S),
    ct:pal("~p", [P]),
    [{malformed, <<"/leading">>, _}, {dangling, <<"dangling">>, <<"nowhere">>},
     {malformed, <<"empty-link">>, _}, {loop, <<"loop-a">>, <<"loop-b">>},
     {loop, <<"loop-b">>, <<"loop-a">>}, {malformed, <<"odd">>, _}] = P,
    ok = hyper_lmdb:stop(S),
    %% a healthy tagged store has none
    T = s(C),
    ok = hyper_lmdb:write_many(T, [{write, <<"d/x">>, <<"1">>}, {make_link, <<"d">>, <<"l">>},
                                   {make_link, <<"l/x">>, <<"l2">>}]),
    {ok, #{keys := 3, links := 2, problems := []}} = hyper_lmdb_tools:check(T),
    ok = hyper_lmdb:make_link(T, <<"self">>, <<"self">>),
    {ok, #{problems := [{loop, <<"self">>, <<"self">>}]}} = hyper_lmdb_tools:check(T),
    %% links stored below a prefix that became a link later: checked by
    %% their own targets, not through the prefix (which leads elsewhere)
    U = #{<<"name">> => list_to_binary(filename:join(?config(priv_dir, C), "shadowed"))},
    {ok, _} = hyper_lmdb:start(U),
    ok = hyper_lmdb:write_many(U, [{write, <<"t/x">>, <<"1">>}, {make_link, <<"t/x">>, <<"p/good">>},
                                   {make_link, <<"nowhere">>, <<"p/bad">>}, {make_group, <<"q">>}]),
    ok = hyper_lmdb:make_link(U, <<"q">>, <<"p">>),
    {ok, #{links := 3, problems := [{dangling, <<"p/bad">>, <<"nowhere">>}]}} =
        hyper_lmdb_tools:check(U),
    ok = hyper_lmdb:stop(U).

convert_both_ways(C) ->
    S = s(C),
    ok = hyper_lmdb:write_many(S, [{write, <<"d/x">>, <<"1">>}, {make_group, <<"g">>},
                                   {make_link, <<"d">>, <<"l">>}, {write, <<"l2/below">>, <<"shadowed">>},
                                   {make_link, <<"d">>, <<"l2">>}, {write, <<"v">>, <<"link:not-a-link">>},
                                   {write, <<"v/under">>, <<"u">>}, {write, <<"w">>, <<"group">>},
                                   {write, <<"bin">>, <<0, 255, 1>>}]),
    ok = hyper_lmdb:stop(S),
    Dir = ?config(dir, C),
    Hb = Dir ++ "-hb",
    Back = Dir ++ "-back",
    %% to hb_store_lmdb: the values that read differently there are named
    {ok, #{keys := 9, reinterpreted := [<<"v">>, <<"w">>]}} =
        hyper_lmdb_tools:convert(Dir, Hb, <<"hb_store_lmdb">>, #{}),
    H = #{<<"name">> => list_to_binary(Hb)},
    #{format := hb_store_lmdb, entries := 9} = hyper_lmdb:stats(H),
    %% a key below a value that became a link was written literally
    {ok, RawH, undefined} = hyper_lmdb:scan(H, #{}),
    {<<"v/under">>, value, <<"u">>} = lists:keyfind(<<"v/under">>, 1, RawH),
    {<<"v">>, link, <<"not-a-link">>} = lists:keyfind(<<"v">>, 1, RawH),
    ok = hyper_lmdb:stop(H),
    %% and back
    {ok, 9} = hyper_lmdb_tools:convert(Hb, Back, <<"tagged">>),
    B = #{<<"name">> => list_to_binary(Back)},
    #{format := tagged, entries := 9} = hyper_lmdb:stats(B),
    {ok, <<"1">>} = hyper_lmdb:read(B, <<"l/x">>),
    {ok, <<0, 255, 1>>} = hyper_lmdb:read(B, <<"bin">>),
    composite = hyper_lmdb:type(B, <<"g">>),
    %% a key stored below a link survives the trip literally
    {ok, Raw, _} = hyper_lmdb:scan(B, #{}),
    {<<"l2/below">>, value, <<"shadowed">>} = lists:keyfind(<<"l2/below">>, 1, Raw),
    %% the value that looks like a link became one in hb_store_lmdb format:
    %% that format cannot tell them apart (SPEC section 2)
    {<<"v">>, link, <<"not-a-link">>} = lists:keyfind(<<"v">>, 1, Raw),
    {error, {exists, _}} = hyper_lmdb_tools:convert(Dir, Back, <<"tagged">>),
    {error, {bad_argument, format}} = hyper_lmdb_tools:convert(Dir, Dir ++ "-x", <<"json">>),
    hyper_lmdb:stop(B).

%% The directory a separate writer made, converted to tagged: every path
%% reads the same through both stores.
convert_separate_writer_directory(C) ->
    Pairs = hb_pairs() ++ [{<<"ids/", (hash(I))/binary>>, integer_to_binary(I)} || I <- lists:seq(1, 2500)],
    Src = hb_dir(C, "hb-big", Pairs),
    Dst = ?config(dir, C) ++ "-tagged",
    {ok, #{keys := 2505, reinterpreted := []}} = hyper_lmdb_tools:convert(Src, Dst, <<"tagged">>, #{}),
    A = #{<<"name">> => list_to_binary(Src), <<"read-only">> => true},
    B = #{<<"name">> => list_to_binary(Dst)},
    #{format := tagged, entries := 2505} = hyper_lmdb:stats(B),
    Paths = [<<"alias">>, <<"alias/body">>, <<"alias/type">>, <<"msg">>, <<"data/h1">>, <<"nope">>]
            ++ [K || {K, _} <- lists:sublist(Pairs, 6, 50)],
    Same = hyper_lmdb:read_many(A, Paths),
    Same = hyper_lmdb:read_many(B, Paths),
    [{P, T} = {P, hyper_lmdb:type(B, P)} || P <- Paths, T <- [hyper_lmdb:type(A, P)]],
    {ok, Ls} = hyper_lmdb:list(A, <<"ids">>),
    {ok, Ls} = hyper_lmdb:list(B, <<"ids">>),
    2500 = length(Ls),
    %% the source is untouched
    Raw = raw_keys(Src),
    2505 = length(Raw),
    hyper_lmdb:stop(A),
    hyper_lmdb:stop(B).

%%% the CLI

cli(C) ->
    Root = filename:join([code:lib_dir(hyper_lmdb), "..", "..", "..", ".."]),
    Ebin = filename:join(code:lib_dir(hyper_lmdb), "ebin"),
    Cli = "HYPER_LMDB_EBIN=" ++ Ebin ++ " " ++ filename:join([Root, "bin", "hyper_lmdb"]),
    Dir = ?config(dir, C),
    fun(Args) ->
        Cmd = Cli ++ " " ++ lists:flatten(string:replace(Args, "DIR", Dir, all)),
        Out = os:cmd(Cmd ++ " 2>&1; echo \"rc=$?\""),
        ct:log("hyper_lmdb ~s~n~s", [Args, Out]),
        Out
    end.

has(Out, Re) ->
    case re:run(Out, Re, [multiline]) of
        {match, _} -> ok;
        nomatch -> ct:fail({output, Out, expected, Re})
    end.

cli_end_to_end(C) ->
    Dir = ?config(dir, C),
    Run = cli(C),
    has(Run("--help"), "usage: hyper_lmdb"),
    has(Run("--help"), "rc=0"),
    has(Run("put DIR docs/readme hello --create"), "rc=0"),
    has(Run("link DIR docs latest"), "rc=0"),
    has(Run("get DIR latest/readme"), "^hellorc=0"),
    has(Run("ls DIR"), "^docs\nlatest\nrc=0"),
    has(Run("tree DIR"), "^/\n  docs/\n    readme\n  latest -> docs\nrc=0"),
    has(Run("tree DIR latest"), "^latest\n  readme\nrc=0"),
    has(Run("resolve DIR latest/readme"), "^docs/readme\nrc=0"),
    has(Run("stat DIR"), "^entries: 2$"),
    has(Run("stat DIR"), "^format: tagged$"),
    has(Run("check DIR"), "no problems\nrc=0"),
    %% values from stdin, bytes as they are
    %% (beside the store: priv_dir is shared with the other suites, whose
    %% stores take names like "bytes")
    Bytes = Dir ++ ".stdin",
    ok = file:write_file(Bytes, <<"a", 0, "b", 255>>),
    has(Run("put DIR bin - < " ++ Bytes), "rc=0"),
    {ok, <<"a", 0, "b", 255>>} = hyper_lmdb:read(#{<<"name">> => list_to_binary(Dir),
                                                   <<"read-only">> => true}, <<"bin">>),
    hyper_lmdb:stop(#{<<"name">> => list_to_binary(Dir)}),
    has(Run("get DIR bin | od -An -c"), "a  \\\\0   b 377"),
    %% paging
    [has(Run("put DIR page/" ++ [N] ++ " x"), "rc=0") || N <- "abcdef"],
    has(Run("ls DIR page --from c --limit 2"), "^c\nd\nrc=0"),
    has(Run("ls DIR page --from c --limit 2 --desc"), "^c\nb\nrc=0"),
    %% check: dangling links and loops
    has(Run("link DIR missing dangling"), "rc=0"),
    has(Run("link DIR loop2 loop1"), "rc=0"),
    has(Run("link DIR loop1 loop2"), "rc=0"),
    Check = Run("check DIR"),
    has(Check, "^dangling dangling: missing$"),
    has(Check, "^loop loop1: loop2$"),
    has(Check, "^loop loop2: loop1$"),
    has(Check, "^3 problem\\(s\\)"),
    has(Check, "rc=3"),
    %% dump, load, convert
    Dump = filename:join(?config(priv_dir, C), "cli.dump"),
    has(Run("dump DIR " ++ Dump), "dumped 12 keys"),
    has(Run("load DIR-loaded " ++ Dump ++ " --create"), "loaded 12 keys"),
    has(Run("get DIR-loaded latest/readme"), "^hellorc=0"),
    has(Run("get DIR-loaded bin | od -An -c"), "a  \\\\0   b 377"),
    has(Run("convert DIR DIR-hb --to hb_store_lmdb"), "converted 12 keys .*verified"),
    has(Run("stat DIR-hb"), "^format: hb_store_lmdb$"),
    has(Run("get DIR-hb latest/readme"), "^hellorc=0"),
    has(Run("convert DIR-hb DIR-back --to tagged"), "converted 12 keys"),
    has(Run("put DIR v group"), "rc=0"),
    Warn = Run("convert DIR DIR-hb2 --to hb_store_lmdb"),
    has(Warn, "warning: v: this value reads as a group in the hb_store_lmdb format"),
    has(Warn, "rc=0"),
    has(Run("bench DIR 500"), "^write \\(one commit each\\) +500 +[0-9]+$"),
    has(Run("ls DIR hyper_lmdb_cli_bench"), "^rc=0"),
    ok.

%% A node serves the store while the CLI reads and writes it.
cli_while_node_serves(C) ->
    Run = cli(C),
    S = s(C),
    ok = hyper_lmdb:write(S, <<"from-node">>, <<"yes">>),
    ok = hyper_lmdb:make_link(S, <<"from-node">>, <<"alias">>),
    has(Run("get DIR alias"), "^yesrc=0"),
    has(Run("stat DIR"), "^entries: 2$"),
    has(Run("put DIR from-cli again"), "rc=0"),
    {ok, <<"again">>} = hyper_lmdb:read(S, <<"from-cli">>),
    %% the node keeps writing between CLI calls; each call sees the last
    [begin
         ok = hyper_lmdb:write(S, <<"counter">>, integer_to_binary(I)),
         has(Run("get DIR counter"), "^" ++ integer_to_list(I) ++ "rc=0")
     end || I <- lists:seq(1, 3)],
    has(Run("check DIR"), "rc=0"),
    has(Run("dump DIR " ++ filename:join(?config(priv_dir, C), "live.dump")), "dumped 4 keys"),
    %% and the node still writes after the CLI wrote (no lock left behind)
    ok = hyper_lmdb:write(S, <<"after">>, <<"1">>),
    {ok, <<"1">>} = hyper_lmdb:read(S, <<"after">>).

cli_errors(C) ->
    Run = cli(C),
    has(Run("put DIR a/b 1 --create"), "rc=0"),
    %% not found and friends: exit 2, with a message
    has(Run("get DIR no/such"), "not found: no/such\nrc=2"),
    has(Run("get DIR a"), "a is a group; list it with: hyper_lmdb ls DIR a\nrc=2"),
    has(Run("get DIR-absent x"), "no store at .*-absent\nrc=2"),
    has(Run("tree DIR zz"), "not found: zz\nrc=2"),
    has(Run("load DIR /no/such/file"), "/no/such/file: no such file or directory\nrc=2"),
    has(Run("convert DIR DIR --to tagged"), "already holds a store.*\nrc=2"),
    %% usage errors: exit 1
    has(Run(""), "no command.*\n\nRun 'hyper_lmdb --help' for usage.\nrc=1"),
    has(Run("frobnicate DIR"), "unknown command: frobnicate"),
    has(Run("frobnicate DIR"), "rc=1"),
    has(Run("link DIR a"), "usage: hyper_lmdb link DIR EXISTING NEW"),
    has(Run("link DIR a"), "rc=1"),
    has(Run("convert DIR DIR-x --to xml"), "usage: hyper_lmdb convert SRC DST --to tagged\\|hb_store_lmdb"),
    BadLimit = Run("ls DIR --limit lots"),
    has(BadLimit, "not a number: lots"),
    has(BadLimit, "rc=1"),
    has(Run("ls DIR --sideways"), "unknown option or missing value: --sideways\n(.|\n)*rc=1"),
    has(Run("get DIR a --help"), "usage: hyper_lmdb(.|\n)*rc=0").
