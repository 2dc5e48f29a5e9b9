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
     groups_of_five, paging_1500_children, match_1000_ids, device_api_shapes,
     compat_directory_from_separate_writer, convert_both_ways, cli_end_to_end].

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

groups_of_five(C) ->
    S = s(C),
    Names = [<<"a">>, <<"b">>, <<"c">>, <<"d">>, <<"e">>],
    [begin
         ok = hyper_lmdb:make_group(S, [<<"g">>, I]),
         [ok = hyper_lmdb:write(S, [<<"g">>, I, N], N) || N <- Names]
     end || I <- lists:seq(1, 200)],
    [{ok, Names} = hyper_lmdb:list(S, [<<"g">>, I]) || I <- lists:seq(1, 200)],
    [{composite, Names} = hyper_lmdb:read(S, #{<<"read">> => [<<"g">>, I]}, none())
     || I <- lists:seq(1, 200, 17)].

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
    Back = lists:reverse(lists:sublist(Names, 696, 5)).

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
    Want = lists:sort([<<"ids/", (id(I))/binary>> || I <- lists:seq(1, 1000), I rem 3 =:= 0]),
    {Us, {ok, Got}} = timer:tc(fun() -> hyper_lmdb:match(S, Fields) end),
    ct:pal("match over 1000 IDs x 4 fields: ~b found in ~b us", [length(Got), Us]),
    Want = lists:sort(Got),
    {ok, Got2} = hyper_lmdb:match(S, #{<<"match">> => maps:from_list(Fields)}, none()),
    Want = lists:sort(Got2),
    {ok, All} = hyper_lmdb:match(S, lists:sublist(Fields, 3)),
    1000 = length(All).

id(I) -> iolist_to_binary(io_lib:format("id~4..0b", [I])).

device_api_shapes(C) ->
    S = s(C),
    {ok, _} = hyper_lmdb:start(S, #{}, none()),
    ok = hyper_lmdb:write(S, #{<<"a">> => <<"1">>, <<"m">> => #{<<"x">> => <<"2">>,
                                                                <<"y">> => #{<<"z">> => <<"3">>}}}, none()),
    {ok, <<"1">>} = hyper_lmdb:read(S, #{<<"read">> => <<"a">>}, none()),
    {composite, [<<"x">>, <<"y">>]} = hyper_lmdb:read(S, #{<<"read">> => <<"m">>}, none()),
    {ok, <<"3">>} = hyper_lmdb:read(S, #{<<"read">> => <<"m/y/z">>}, none()),
    {ok, composite} = hyper_lmdb:type(S, #{<<"type">> => <<"m/y">>}, none()),
    {error, not_found} = hyper_lmdb:type(S, #{<<"type">> => <<"nope">>}, none()),
    {error, {bad_argument, request}} = hyper_lmdb:read(S, #{<<"reed">> => <<"a">>}, none()),
    {error, empty_path} = hyper_lmdb:write(S, #{<<>> => <<"v">>}, none()),
    ok = hyper_lmdb:reset(S, #{}, none()),
    {error, not_found} = hyper_lmdb:read(S, #{<<"read">> => <<"a">>}, none()),
    ok = hyper_lmdb:stop(S, #{}, none()).

%%% hb_store_lmdb's own format

%% Writes a directory the way HyperBEAM's hb_store_lmdb does (unnamed
%% database, raw values, "group", "link:" + target) with LMDB's own
%% mdb_load, then opens it: detected, served read/write, nothing added.
compat_directory_from_separate_writer(C) ->
    Dir = ?config(dir, C),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Pairs = [{<<"data/h1">>, <<"payload">>}, {<<"msg">>, <<"group">>},
             {<<"msg/body">>, <<"link:data/h1">>}, {<<"msg/type">>, <<"Message">>},
             {<<"alias">>, <<"link:msg">>}],
    Input = filename:join(?config(priv_dir, C), "hb.load"),
    ok = file:write_file(Input, ["VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n",
                                 [[" ", hex(K), "\n ", hex(V), "\n"] || {K, V} <- lists:sort(Pairs)],
                                 "DATA=END\n"]),
    "" = os:cmd("mdb_load -f " ++ Input ++ " " ++ Dir ++ " 2>&1"),
    S = s(C),
    #{format := hb_store_lmdb, entries := 5} = hyper_lmdb:stats(S),
    {ok, <<"payload">>} = hyper_lmdb:read(S, <<"alias/body">>),
    composite = hyper_lmdb:type(S, <<"msg">>),
    {ok, [<<"body">>, <<"type">>]} = hyper_lmdb:list(S, <<"alias">>),
    ok = hyper_lmdb:write(S, <<"msg/new">>, <<"written by hyper_lmdb">>),
    ok = hyper_lmdb:make_link(S, <<"msg/type">>, <<"alias2">>),
    ok = hyper_lmdb:stop(S),
    %% what is on disk is exactly hb_store_lmdb's encoding, and nothing else
    Dump = os:cmd("mdb_dump -p " ++ Dir),
    ?assertMatch({match, _}, re:run(Dump, "\n msg/new\n written by hyper_lmdb\n")),
    ?assertMatch({match, _}, re:run(Dump, "\n alias2\n link:msg/type\n")),
    Keys = [L || " " ++ L <- string:split(Dump, "\n", all)],
    7 = length(Keys) div 2,
    nomatch = re:run(Dump, "hyper_lmdb\\.(data|meta)"),
    %% an explicit format that contradicts the directory is refused
    {error, {open_failed, format, _}} = hyper_lmdb:start(S#{<<"format">> => <<"tagged">>}).

hex(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B].

convert_both_ways(C) ->
    S = s(C),
    ok = hyper_lmdb:write_many(S, [{write, <<"d/x">>, <<"1">>}, {make_group, <<"g">>},
                                   {make_link, <<"d">>, <<"l">>}, {write, <<"l2/below">>, <<"shadowed">>},
                                   {make_link, <<"d">>, <<"l2">>}, {write, <<"v">>, <<"link:not-a-link">>}]),
    ok = hyper_lmdb:stop(S),
    Dir = ?config(dir, C),
    Hb = Dir ++ "-hb",
    Back = Dir ++ "-back",
    {ok, 6} = hyper_lmdb_tools:convert(Dir, Hb, <<"hb_store_lmdb">>),
    {ok, 6} = hyper_lmdb_tools:convert(Hb, Back, <<"tagged">>),
    B = #{<<"name">> => list_to_binary(Back)},
    #{format := tagged, entries := 6} = hyper_lmdb:stats(B),
    {ok, <<"1">>} = hyper_lmdb:read(B, <<"l/x">>),
    composite = hyper_lmdb:type(B, <<"g">>),
    %% a key stored below a link survives the trip literally
    {ok, Raw, _} = hyper_lmdb:scan(B, #{}),
    {<<"l2/below">>, value, <<"shadowed">>} = lists:keyfind(<<"l2/below">>, 1, Raw),
    %% the value that looks like a link became one in hb_store_lmdb format:
    %% that format cannot tell them apart (SPEC section 2)
    {<<"v">>, link, <<"not-a-link">>} = lists:keyfind(<<"v">>, 1, Raw),
    {error, {exists, _}} = hyper_lmdb_tools:convert(Dir, Back, <<"tagged">>),
    hyper_lmdb:stop(B).

%%% the CLI

cli_end_to_end(C) ->
    Dir = ?config(dir, C),
    Cli = filename:join([code:lib_dir(hyper_lmdb), "..", "..", "..", "..", "bin", "hyper_lmdb"]),
    Run = fun(Args) ->
              Out = os:cmd(Cli ++ " " ++ Args ++ " 2>&1; echo \"rc=$?\""),
              ct:pal("hyper_lmdb ~s~n~s", [Args, Out]),
              Out
          end,
    Has = fun(Out, Re) -> ?assertMatch({match, _}, re:run(Out, Re, [multiline])) end,
    Has(Run("--help"), "usage: hyper_lmdb"),
    Has(Run("put " ++ Dir ++ " docs/readme hello"), "rc=0"),
    Has(Run("link " ++ Dir ++ " docs latest"), "rc=0"),
    Has(Run("get " ++ Dir ++ " latest/readme"), "^hellorc=0"),
    Has(Run("ls " ++ Dir), "^docs\nlatest\nrc=0"),
    Has(Run("tree " ++ Dir), "latest -> docs"),
    Has(Run("resolve " ++ Dir ++ " latest/readme"), "^docs/readme\nrc=0"),
    Has(Run("stat " ++ Dir), "entries: 2"),
    Has(Run("check " ++ Dir), "no problems\nrc=0"),
    Has(Run("link " ++ Dir ++ " missing dangling"), "rc=0"),
    Has(Run("check " ++ Dir), "dangling dangling -> missing"),
    Has(Run("check " ++ Dir), "rc=3"),
    Dump = filename:join(?config(priv_dir, C), "cli.dump"),
    Has(Run("dump " ++ Dir ++ " " ++ Dump), "dumped 3 keys"),
    Has(Run("load " ++ Dir ++ "-loaded " ++ Dump), "loaded 3 keys"),
    Has(Run("get " ++ Dir ++ "-loaded latest/readme"), "^hellorc=0"),
    Has(Run("convert " ++ Dir ++ " " ++ Dir ++ "-hb --to hb_store_lmdb"), "converted 3 keys"),
    Has(Run("stat " ++ Dir ++ "-hb"), "format: hb_store_lmdb"),
    Has(Run("bench " ++ Dir ++ " 500"), "500 writes: [0-9]+/s"),
    %% errors are clear and the exit status says which kind
    Has(Run("get " ++ Dir ++ " no/such"), "not found: no/such\nrc=2"),
    Has(Run("get " ++ Dir ++ "-absent x"), "no store at .*\nrc=2"),
    Has(Run("frobnicate " ++ Dir), "rc=1"),
    BadLimit = Run("ls " ++ Dir ++ " --limit lots"),
    Has(BadLimit, "not a number: lots"),
    Has(BadLimit, "rc=1"),
    %% a node serving the store sees what the CLI wrote, and vice versa
    S = #{<<"name">> => list_to_binary(Dir)},
    {ok, <<"hello">>} = hyper_lmdb:read(S, <<"latest/readme">>),
    ok = hyper_lmdb:write(S, <<"from-node">>, <<"yes">>),
    Has(Run("get " ++ Dir ++ " from-node"), "^yesrc=0"),
    Has(Run("put " ++ Dir ++ " from-cli again"), "rc=0"),
    {ok, <<"again">>} = hyper_lmdb:read(S, <<"from-cli">>),
    hyper_lmdb:stop(S).
