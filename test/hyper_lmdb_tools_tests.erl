%%% EUnit tests of hyper_lmdb_tools (load, convert, tree) and of the
%%% command line's refusals and paging (bin/hyper_lmdb): each case is a
%%% bug that the code before it had.
-module(hyper_lmdb_tools_tests).
-include_lib("eunit/include/eunit.hrl").

%%% ---------------------------------------------------------------------
%%% fixtures (as in hyper_lmdb_tests)

store(Tag) ->
    store(Tag, #{}).

store(Tag, Extra) ->
    Dir = fresh_dir(Tag),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    S = maps:merge(#{<<"name">> => list_to_binary(Dir)}, Extra),
    {ok, _} = hyper_lmdb:start(S),
    S.

%% A directory name that nothing uses yet (and nothing is in), under
%% the run's own base directory (hyper_lmdb_tests:base_dir/0: another run
%% beside this one never clears it).
fresh_dir(Tag) ->
    {ok, _} = application:ensure_all_started(hyper_lmdb),
    filename:join(hyper_lmdb_tests:base_dir(),
                  "tools_" ++ atom_to_list(Tag) ++ "_" ++
                      integer_to_list(erlang:unique_integer([positive]))).

done(S = #{<<"name">> := Dir}) ->
    ok = hyper_lmdb:stop(S),
    rm(binary_to_list(Dir)).

rm(Dir) ->
    _ = os:cmd("rm -rf '" ++ Dir ++ "' '" ++ Dir ++ "'.*"),
    _ = file:del_dir(hyper_lmdb_tests:base_dir()),  % (once the run's last store is gone)
    ok.

dump_file(#{<<"name">> := Dir}) ->
    binary_to_list(Dir) ++ ".dump".

raw(S) ->
    {ok, Entries, undefined} = hyper_lmdb:scan(S, #{}),
    Entries.

%% A directory in hb_store_lmdb's format written by LMDB's own mdb_load,
%% so it can hold keys the API would normalise (`/lead', `a//b').
hb_dir(Tag, Pairs) ->
    Dir = fresh_dir(Tag),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Input = Dir ++ ".load",
    Hex = fun(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B] end,
    ok = file:write_file(Input, ["VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n",
                                 [[" ", Hex(K), "\n ", Hex(V), "\n"] || {K, V} <- lists:sort(Pairs)],
                                 "DATA=END\n"]),
    "" = os:cmd("mdb_load -f " ++ Input ++ " " ++ Dir ++ " 2>&1"),
    Dir.

%%% ---------------------------------------------------------------------
%%% load/2: nothing written somewhere other than the key the dump names

%% The store has `a' as a link to `x'; a dump's `a/b' would be written
%% through it, at `x/b' (and so would a link `a/l').  Refused, nothing
%% written, the key and the link named.
%% dump never writes into the store's own directory (a dump over its
%% data.mdb destroyed the store it read: found by a review), under any
%% spelling of it; elsewhere it replaces what the file held, and leaves no
%% partial file beside it.
dump_refuses_the_store_directory_test() ->
    S = #{<<"name">> := Name} = store(dumpinside),
    Dir = binary_to_list(Name),
    ok = hyper_lmdb:write(S, <<"a">>, <<"1">>),
    Data = filename:join(Dir, "data.mdb"),
    Size = filelib:file_size(Data),
    {error, {_, inside_store}} = hyper_lmdb_tools:dump(S, Data),
    {error, {_, inside_store}} = hyper_lmdb_tools:dump(S, filename:join([Dir, ".", "x.dump"])),
    ok = file:make_symlink(Dir, Dir ++ ".alias"),
    {error, {_, inside_store}} = hyper_lmdb_tools:dump(S, filename:join(Dir ++ ".alias", "data.mdb")),
    ?assertEqual(Size, filelib:file_size(Data)),
    ?assertEqual({ok, <<"1">>}, hyper_lmdb:read(S, <<"a">>)),
    File = dump_file(S),
    ok = file:write_file(File, <<"old">>),
    {ok, 1} = hyper_lmdb_tools:dump(S, File),
    {ok, [{<<"a">>, value, <<"1">>}]} = file:consult(File),
    ?assertEqual([], filelib:wildcard(File ++ ".partial-*")),
    done(S).

load_refuses_a_key_below_a_link_of_the_store_test() ->
    S = store(linksrc),
    ok = hyper_lmdb:write_many(S, [{write, <<"a/b">>, <<"1">>}, {make_link, <<"t">>, <<"a/l">>},
                                   {write, <<"k">>, <<"v">>}]),
    File = dump_file(S),
    {ok, 3} = hyper_lmdb_tools:dump(S, File),
    T = store(linkdst),
    ok = hyper_lmdb:make_link(T, <<"x">>, <<"a">>),
    ?assertEqual({error, {File, {would_change, 2, [{<<"a/b">>, {below_link, <<"a">>, <<"x">>}},
                                                   {<<"a/l">>, {below_link, <<"a">>, <<"x">>}}]}}},
                 hyper_lmdb_tools:load(T, File)),
    ?assertEqual([{<<"a">>, link, <<"x">>}], raw(T)),
    %% a dump that replaces the link by a value or group first writes below
    %% it where it says
    ok = file:write_file(File, ["{<<\"a\">>,group,<<>>}.\n", "{<<\"a/b\">>,value,<<\"1\">>}.\n"]),
    ?assertEqual({ok, 2}, hyper_lmdb_tools:load(T, File)),
    ?assertEqual([{<<"a">>, group, <<>>}, {<<"a/b">>, value, <<"1">>}], raw(T)),
    file:delete(File),
    [done(X) || X <- [S, T]],
    ok.

%% A dump loaded back into the store it came from, where a key is stored
%% below a link (written before the link was made): writing it again
%% would go through the link and change the link's target.
load_refuses_to_write_a_shadowed_key_through_its_link_test() ->
    S = store(shadow),
    ok = hyper_lmdb:write_many(S, [{write, <<"d/x">>, <<"1">>}, {write, <<"l/below">>, <<"mine">>},
                                   {make_link, <<"d">>, <<"l">>}]),
    File = dump_file(S),
    {ok, 3} = hyper_lmdb_tools:dump(S, File),
    Before = raw(S),
    ?assertMatch({error, {File, {would_change, 1, [{<<"l/below">>, {below_link, <<"l">>, <<"d">>}}]}}},
                 hyper_lmdb_tools:load(S, File)),
    ?assertEqual(Before, raw(S)),
    ?assertEqual(not_found, hyper_lmdb:read(S, <<"d/below">>)),
    %% into an empty store it loads as it is
    T = store(shadowcopy),
    ?assertEqual({ok, 3}, hyper_lmdb_tools:load(T, File)),
    ?assertEqual(Before, raw(T)),
    file:delete(File),
    [done(X) || X <- [S, T]],
    ok.

%% A tagged store's values `link:zz' and `group' would become a link and a
%% group marker in a store in the hb_store_lmdb format: refused there,
%% nothing written.  A dump of an hb_store_lmdb store loads into either.
load_refuses_values_that_would_read_differently_test() ->
    S = store(fmtsrc),
    ok = hyper_lmdb:write_many(S, [{write, <<"v">>, <<"link:zz">>}, {write, <<"g">>, <<"group">>},
                                   {write, <<"k">>, <<"plain">>}]),
    File = dump_file(S),
    {ok, 3} = hyper_lmdb_tools:dump(S, File),
    H = store(fmthb, #{<<"format">> => <<"hb_store_lmdb">>}),
    ?assertEqual({error, {File, {would_change, 2, [{<<"g">>, {reads_as, group}},
                                                   {<<"v">>, {reads_as, link}}]}}},
                 hyper_lmdb_tools:load(H, File)),
    ?assertEqual([], raw(H)),
    %% the other way: an hb_store_lmdb dump names kinds, nothing to refuse
    ok = hyper_lmdb:write_many(H, [{make_group, <<"g">>}, {make_link, <<"k">>, <<"v">>},
                                   {write, <<"k">>, <<"plain">>}, {write, <<"e">>, <<"link:">>}]),
    HFile = dump_file(H),
    {ok, 4} = hyper_lmdb_tools:dump(H, HFile),
    T = store(fmttagged),
    ?assertEqual({ok, 4}, hyper_lmdb_tools:load(T, HFile)),
    ?assertEqual(raw(H), raw(T)),
    H2 = store(fmthb2, #{<<"format">> => <<"hb_store_lmdb">>}),
    ?assertEqual({ok, 4}, hyper_lmdb_tools:load(H2, HFile)),
    ?assertEqual(raw(H), raw(H2)),
    [file:delete(F) || F <- [File, HFile]],
    [done(X) || X <- [S, H, T, H2]],
    ok.

%% Keys (and link targets) not in normal form would be stored normalised,
%% under another key: refused.
load_refuses_keys_not_in_normal_form_test() ->
    S = store(normal),
    File = dump_file(S),
    ok = file:write_file(File, ["{<<\"/lead\">>,value,<<\"x\">>}.\n{<<\"a//b\">>,value,<<\"y\">>}.\n",
                                "{<<\"l\">>,link,<<\"p//q/\">>}.\n{<<\"fine\">>,value,<<\"z\">>}.\n"]),
    ?assertEqual({error, {File, {would_change, 3, [{<<"/lead">>, not_normal}, {<<"a//b">>, not_normal},
                                                   {<<"l">>, {target_not_normal, <<"p//q/">>}}]}}},
                 hyper_lmdb_tools:load(S, File)),
    ?assertEqual([], raw(S)),
    %% the dump of a foreign directory with such a key says so too
    Hb = hb_dir(normalhb, [{<<"/lead">>, <<"x">>}, {<<"ok">>, <<"v">>}]),
    HS = #{<<"name">> => list_to_binary(Hb), <<"read-only">> => true},
    HFile = Hb ++ ".dump",
    {ok, 2} = hyper_lmdb_tools:dump(HS, HFile),
    ?assertMatch({error, {HFile, {would_change, 1, [{<<"/lead">>, not_normal}]}}},
                 hyper_lmdb_tools:load(S, HFile)),
    ok = hyper_lmdb:stop(HS),
    rm(Hb),
    file:delete(File),
    done(S).

%%% ---------------------------------------------------------------------
%%% load/2: parsing an untrusted file

%% file:consult/1 made an atom of every word in the file: a dump from
%% anywhere could fill the atom table.  Now no atom is made, and the line
%% is named.
load_makes_no_atoms_test() ->
    S = store(atoms),
    File = dump_file(S),
    Words = [<<"hyper_lmdb_tools_tests_fresh_", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 50)],
    Cases = [%% bare words, on line 2
             ["{<<\"k\">>,value,<<\"v\">>}.\n{", lists:join(",", Words), "}.\n"],
             %% a word in the place of a kind
             ["\n\n{<<\"k\">>,", hd(Words), ",<<\"v\">>}.\n"],
             %% quoted atoms and variables
             ["{'", lists:nth(2, Words), "',value,<<\"v\">>}.\n"],
             ["{<<\"k\">>,value,<<\"v\">>}.\n", "{<<\"k2\">>,value,<<\"v\">>}.\n",
              "{<<\"k3\">>,value,", string:titlecase(lists:nth(3, Words)), "}.\n"],
             %% a word glued to a kind
             ["{<<\"k\">>,value", lists:nth(4, Words), ",<<\"v\">>}.\n"]],
    Lines = [2, 3, 1, 3, 1],
    [begin
         ok = file:write_file(File, Text),
         ?assertEqual({error, {{File, Line}, not_a_dump}}, hyper_lmdb_tools:load(S, File))
     end || {Text, Line} <- lists:zip(Cases, Lines)],
    ?assertEqual([], [W || W <- Words, exists_atom(W)]),
    ?assertEqual([], raw(S)),
    file:delete(File),
    done(S).

exists_atom(W) ->
    try binary_to_existing_atom(W) of _ -> true
    catch error:badarg -> false
    end.

%% What dump/2 writes, what ~p wrote (escapes, several lines for one
%% entry, bytes and strings mixed), comments and blank lines all load;
%% anything else is refused with its line and changes nothing.
load_reads_every_dump_shape_test() ->
    S = store(shapes),
    File = dump_file(S),
    ok = file:write_file(File, [
        "% a comment\n",
        "{<<\"plain\">>,value,<<\"v\">>}.\n",
        "{<<\"esc\">>,value,<<\"a\\nb\\\"c\\\\d\\x{e9}\\t\">>}.\n",
        "{<<\"bytes\">>,\n  value,\n  <<0,255,\"mid\",10>>}.   % trailing comment\n",
        "\n",
        "{ << \"grp\" >> , group , << >> } .\n",
        "{<<\"lnk\">>,link,<<\"plain\">>}.\n",
        "{<<\"latin\">>,value,<<\"", 233, "\">>}."]),
    ?assertEqual({ok, 6}, hyper_lmdb_tools:load(S, File)),
    ?assertEqual([{<<"bytes">>, value, <<0, 255, "mid", 10>>},
                  {<<"esc">>, value, <<"a\nb\"c\\d", 233, "\t">>},
                  {<<"grp">>, group, <<>>},
                  {<<"latin">>, value, <<233>>},
                  {<<"lnk">>, link, <<"plain">>},
                  {<<"plain">>, value, <<"v">>}], raw(S)),
    T = store(shapesbad),
    Bad = [{"{<<\"k\">>,value,<<\"v\">>}\n", 2},            % no full stop
           {"{<<\"k\">>,value,<<256>>}.\n", 1},             % not a byte
           {"{<<\"k\">>,value,<<\"\\x{100}\">>}.\n", 1},     % not a byte
           {"{<<\"k\">>,link,<<>>}.\n", 1},                  % a link to nothing
           {"{<<>>,value,<<\"v\">>}.\n", 1},                 % no key
           {"{<<\"k\">>,value,<<\"v\">>}.x\n", 1},
           {"{<<\"k\">>,value,<<\"v\">>,extra}.\n", 1},
           {"{<<\"k\">>,value,<<\"unterminated>>}.\n", 1},
           {"{<<\"a\">>,value,<<\"1\">>}.\n{<<\"b\">>,value,<<>>}.\n{<<\"a\">>,group,<<>>}.\n", 3}],
    [begin
         ok = file:write_file(File, Text),
         ?assertEqual({Text, {error, {{File, Line}, not_a_dump}}}, {Text, hyper_lmdb_tools:load(T, File)})
     end || {Text, Line} <- Bad],
    ?assertEqual([], raw(T)),
    file:delete(File),
    [done(X) || X <- [S, T]],
    ok.

%%% ---------------------------------------------------------------------
%%% convert/3,4: a failure leaves no destination behind

%% A key a foreign writer stored as `/lead' makes the comparison fail.
%% The destination (and the missing parent convert made for it) is
%% removed, so the next attempt is not refused as `exists'; in a
%% directory that was there, only what convert made is removed.
convert_failure_leaves_no_destination_test() ->
    Src = hb_dir(convfail, [{<<"/lead">>, <<"x">>}, {<<"ok">>, <<"v">>}]),
    Parent = Src ++ ".parent",
    Dst = filename:join(Parent, "dst"),
    ?assertMatch({error, {differs, _, _}}, hyper_lmdb_tools:convert(Src, Dst, <<"tagged">>)),
    ?assertNot(filelib:is_dir(Parent)),
    ?assertMatch({error, {differs, _, _}}, hyper_lmdb_tools:convert(Src, Dst, <<"tagged">>, #{})),
    ?assertNot(filelib:is_dir(Parent)),
    %% an existing, empty destination with a file of the user's in it
    Kept = Src ++ ".kept",
    ok = filelib:ensure_dir(filename:join(Kept, "x")),
    ok = file:write_file(filename:join(Kept, "notes.txt"), <<"mine">>),
    ?assertMatch({error, {differs, _, _}}, hyper_lmdb_tools:convert(Src, Kept, <<"tagged">>)),
    ?assertEqual({ok, ["notes.txt"]}, file:list_dir(Kept)),
    %% a source that does not open: nothing made either
    ?assertMatch({error, _}, hyper_lmdb_tools:convert(Src ++ ".absent", Dst, <<"tagged">>)),
    ?assertNot(filelib:is_dir(Parent)),
    %% a file where the destination would go is not the destination's
    File = Src ++ ".file",
    ok = file:write_file(File, <<"keep">>),
    ?assertMatch({error, _}, hyper_lmdb_tools:convert(Src, File, <<"tagged">>)),
    ?assertMatch({error, _}, hyper_lmdb_tools:convert(Src, filename:join(File, "d"), <<"tagged">>)),
    ?assertEqual({ok, <<"keep">>}, file:read_file(File)),
    %% and a convert that succeeds keeps its destination
    Good = hb_dir(convgood, [{<<"ok">>, <<"v">>}]),
    ?assertEqual({ok, 1}, hyper_lmdb_tools:convert(Good, Dst, <<"tagged">>)),
    ?assert(filelib:is_regular(filename:join(Dst, "data.mdb"))),
    [rm(D) || D <- [Src, Good]],
    ok.

%% A store in hb_store_lmdb's format, converted to tagged with a children
%% index: the index is there and agrees with the keys; asked for in the
%% other direction, or not as a boolean, it is refused before anything is
%% made.
convert_with_children_index_test() ->
    Src = hb_dir(convindex, [{<<"a/b/c">>, <<"1">>}, {<<"a/d">>, <<"group">>}, {<<"e">>, <<"v">>},
                             {<<"l">>, <<"link:a/b">>}]),
    Dst = Src ++ ".tagged",
    ?assertMatch({ok, #{keys := 4}},
                 hyper_lmdb_tools:convert(Src, Dst, <<"tagged">>, #{children_index => true})),
    S = #{<<"name">> => list_to_binary(Dst)},
    {ok, _} = hyper_lmdb:start(S),
    ?assertMatch(#{children_index := true, format := tagged}, hyper_lmdb:stats(S)),
    ?assertEqual({ok, [<<"b">>, <<"d">>]}, hyper_lmdb:list(S, <<"a">>)),
    ?assertEqual({ok, [<<"c">>]}, hyper_lmdb:list(S, <<"l">>)),
    ?assertMatch({ok, #{problems := []}}, hyper_lmdb_tools:check(S)),
    ok = hyper_lmdb:stop(S),
    Back = Src ++ ".back",
    ?assertEqual({error, {bad_argument, children_index}},
                 hyper_lmdb_tools:convert(Dst, Back, <<"hb_store_lmdb">>, #{children_index => true})),
    ?assertEqual({error, {bad_argument, children_index}},
                 hyper_lmdb_tools:convert(Src, Back, <<"tagged">>, #{children_index => yes})),
    ?assertNot(filelib:is_dir(Back)),
    [rm(D) || D <- [Src, Dst]],
    ok.

%%% ---------------------------------------------------------------------
%%% tree/3,4: bounded

%% tree/3 listed every child of every group (a group of millions read at
%% once); now at most 100 per group, then `... N more', read a page at a
%% time.
tree_caps_the_children_shown_per_group_test() ->
    S = store(tree),
    Names = [iolist_to_binary(io_lib:format("n~4..0b", [I])) || I <- lists:seq(1, 2500)],
    [ok = hyper_lmdb:write_many(S, [{write, <<"big/", N/binary>>, <<"v">>} || N <- Chunk])
     || Chunk <- chunks(Names, 1000)],
    ok = hyper_lmdb:write_many(S, [{write, <<"small/a">>, <<"1">>}, {make_link, <<"small">>, <<"ln">>}]),
    Lines = fun(Out) -> string:split(iolist_to_binary(Out), "\n", all) end,
    Default = Lines(hyper_lmdb_tools:tree(S, <<>>, 2)),
    Shown = [<<"    ", N/binary>> || N <- lists:sublist(Names, 100)],
    ?assertEqual([<<"/">>, <<"  big/">>] ++ Shown ++
                 [<<"    ... 2400 more">>, <<"  ln -> small">>, <<"  small/">>, <<"    a">>, <<>>],
                 Default),
    %% across pages of the listing, and a group that fits shows no marker
    Wide = Lines(hyper_lmdb_tools:tree(S, <<"big">>, 1, #{max_children => 1500})),
    ?assertEqual([<<"big">>] ++ [<<"  ", N/binary>> || N <- lists:sublist(Names, 1500)] ++
                 [<<"  ... 1000 more">>, <<>>], Wide),
    ?assertEqual(2502, length(Lines(hyper_lmdb_tools:tree(S, <<"big">>, 1, #{max_children => 2500})))),
    ?assertEqual([<<"small">>, <<"  a">>, <<>>],
                 Lines(hyper_lmdb_tools:tree(S, <<"small">>, 3, #{max_children => 1}))),
    ?assertEqual({error, {bad_argument, max_children}},
                 hyper_lmdb_tools:tree(S, <<>>, 1, #{max_children => 0})),
    done(S).

%% check/1 compares a children index with the keys: clean after writes,
%% deletes and a link (keys below the link's own path list the target's
%% children, and are not compared), and a child the index lists with no
%% key below it (an edge a foreign program added to the LMDB files, here
%% mdb_load) is named; so is one it misses (an edge it deleted).
check_compares_the_children_index_test() ->
    S = store(check_index, #{<<"children-index">> => true}),
    ok = hyper_lmdb:write_many(S, [{write, <<"a/b/c">>, <<"1">>}, {write, <<"a/d">>, <<"2">>},
                                   {write, <<"e">>, <<"3">>}, {make_group, <<"g">>},
                                   {write, <<"x/y">>, <<"4">>}, {delete, <<"a/d">>}]),
    ok = hyper_lmdb:make_link(S, <<"a">>, <<"x">>),
    {ok, #{problems := [], keys := 5}} = hyper_lmdb_tools:check(S),
    #{<<"name">> := Dir} = S,
    ok = hyper_lmdb:stop(S),
    Hex = fun(B) -> [io_lib:format("~2.16.0b", [X]) || <<X>> <= B] end,
    Input = binary_to_list(Dir) ++ ".edges",
    Load = fun(Edges, Into) ->
        ok = file:write_file(Input, ["VERSION=3\nformat=bytevalue\ntype=btree\ndupsort=1\nHEADER=END\n",
                                     [[" ", Hex(K), "\n ", Hex(V), "\n"] || {K, V} <- Edges],
                                     "DATA=END\n"]),
        ok = sh("mdb_load -s hyper_lmdb.children -f " ++ Input ++ " " ++ Into)
    end,
    %% a copy of the store whose index misses the edge a -> b: its data
    %% and metadata dumped and loaded by LMDB's tools, the index by hand
    Copy = binary_to_list(Dir) ++ "-copy",
    [ok = file:write_file(Input ++ Db, os:cmd("mdb_dump -s " ++ Db ++ " " ++ binary_to_list(Dir)))
     || Db <- ["hyper_lmdb.meta", "hyper_lmdb.data"]],
    ok = filelib:ensure_dir(filename:join(Copy, "x")),
    [ok = sh("mdb_load -s " ++ Db ++ " -f " ++ Input ++ Db ++ " " ++ Copy)
     || Db <- ["hyper_lmdb.meta", "hyper_lmdb.data"]],
    ok = Load([{<<"/">>, <<"a">>}, {<<"/">>, <<"e">>}, {<<"/">>, <<"g">>}, {<<"/">>, <<"x">>},
               {<<"a/b/">>, <<"c">>}, {<<"x/">>, <<"y">>}], Copy),
    C = #{<<"name">> => list_to_binary(Copy)},
    {ok, _} = hyper_lmdb:start(C),
    #{children_index := true} = hyper_lmdb:stats(C),
    {ok, #{problems := [{index, <<"a">>, Missing}]}} = hyper_lmdb_tools:check(C),
    {match, _} = re:run(Missing, <<"lists none not held by keys and misses \"b\"">>),
    done(C),
    %% the store itself, an edge added to its index: a child with no key
    ok = Load([{<<"/">>, <<"ghost">>}], binary_to_list(Dir)),
    {ok, _} = hyper_lmdb:start(S),
    {ok, #{problems := [{index, <<>>, Ghost}]}} = hyper_lmdb_tools:check(S),
    {match, _} = re:run(Ghost, <<"lists \"ghost\" not held by keys and misses none">>),
    [ok = file:delete(F) || F <- [Input, Input ++ "hyper_lmdb.meta", Input ++ "hyper_lmdb.data"]],
    done(S).

%% A shell command that must exit 0 (its output, warnings included, aside).
sh(Cmd) ->
    Out = os:cmd(Cmd ++ " 2>&1; echo \"rc=$?\""),
    case lists:suffix("rc=0\n", Out) of
        true -> ok;
        false -> erlang:error({command, Cmd, Out})
    end.

chunks([], _) -> [];
chunks(L, N) when length(L) =< N -> [L];
chunks(L, N) -> {A, B} = lists:split(N, L), [A | chunks(B, N)].

%%% ---------------------------------------------------------------------
%%% the command line

cli() ->
    Lib = code:lib_dir(hyper_lmdb),
    Root = filename:join([Lib, "..", "..", "..", ".."]),
    Cli = "HYPER_LMDB_EBIN=" ++ filename:join(Lib, "ebin") ++ " " ++ filename:join([Root, "bin", "hyper_lmdb"]),
    fun(Args) -> os:cmd(Cli ++ " " ++ Args ++ " 2>&1; echo \"rc=$?\"") end.

has(Out, Re) ->
    case re:run(Out, Re, [multiline]) of
        {match, _} -> ok;
        nomatch -> erlang:error({output, Out, expected, Re})
    end.

%% put, link, load and bench on a misspelt directory made a new store
%% there; now they refuse a directory without data.mdb unless --create is
%% given.  Read commands refuse it too, and make nothing.
cli_refuses_a_directory_without_a_store_test_() ->
    {timeout, 120, fun() ->
        Run = cli(),
        Dir = fresh_dir(cli),
        Dump = Dir ++ ".dump",
        ok = file:write_file(Dump, "{<<\"k\">>,value,<<\"v\">>}.\n"),
        [begin
             Out = Run(Cmd),
             has(Out, "no store at " ++ Dir ++ " \\(no data.mdb\\); add --create"),
             has(Out, "rc=2"),
             ?assertNot(filelib:is_dir(Dir))
         end || Cmd <- ["put " ++ Dir ++ " k v", "link " ++ Dir ++ " a b",
                        "load " ++ Dir ++ " " ++ Dump, "bench " ++ Dir ++ " 10"]],
        [begin
             Out = Run(Cmd),
             has(Out, "no store at " ++ Dir ++ "\nrc=2"),
             ?assertNot(filelib:is_dir(Dir))
         end || Cmd <- ["get " ++ Dir ++ " k", "ls " ++ Dir, "tree " ++ Dir, "stat " ++ Dir,
                        "dump " ++ Dir ++ " " ++ Dir ++ ".out", "check " ++ Dir]],
        %% an empty directory holds no store either
        ok = filelib:ensure_dir(filename:join(Dir, "x")),
        has(Run("put " ++ Dir ++ " k v"), "add --create(.|\n)*rc=2"),
        ?assertEqual({ok, []}, file:list_dir(Dir)),
        %% --create, anywhere after the command
        has(Run("load --create " ++ Dir ++ " " ++ Dump), "loaded 1 keys(.|\n)*rc=0"),
        has(Run("get " ++ Dir ++ " k"), "^vrc=0"),
        has(Run("put " ++ Dir ++ " k2 v2"), "^rc=0"),
        has(Run("get " ++ Dir ++ " k --create"), "--create applies to put, link, load and bench only(.|\n)*rc=1"),
        Other = fresh_dir(clicreate),
        has(Run("put " ++ Other ++ " k v --create"), "^rc=0"),
        has(Run("get " ++ Other ++ " k"), "^vrc=0"),
        [rm(D) || D <- [Dir, Other]],
        ok
    end}.

%% What a review of the command line found: a refused --create command
%% left a new, empty store behind (and the next command needed no
%% --create); "-h" as a value was taken for help; a second PATH was
%% silently taken instead of the first; bench crashed with a stack trace
%% on a failed write, ran 0 as 1, and overwrote and removed keys of the
%% store's own under its path.
cli_refusals_leave_nothing_behind_test_() ->
    {timeout, 120, fun() ->
        Run = cli(),
        Dir = fresh_dir(cliundo),
        Bad = Dir ++ ".bad",
        ok = file:write_file(Bad, "{<<\"a//c\">>,value,<<\"v\">>}.\n"),
        has(Run("put " ++ Dir ++ " '' v --create"), "empty path(.|\n)*rc=2"),
        ?assertNot(filelib:is_dir(Dir)),
        has(Run("load " ++ Dir ++ " " ++ Bad ++ " --create"), "nothing was written(.|\n)*rc=2"),
        ?assertNot(filelib:is_dir(Dir)),
        has(Run("put " ++ Dir ++ " k v"), "add --create(.|\n)*rc=2"),
        %% an existing empty directory stays, emptied again
        ok = filelib:ensure_dir(filename:join(Dir, "x")),
        has(Run("put " ++ Dir ++ " '' v --create"), "rc=2"),
        ?assertEqual({ok, []}, file:list_dir(Dir)),
        has(Run("put " ++ Dir ++ " k -h --create"), "^rc=0"),
        has(Run("get " ++ Dir ++ " k"), "^-hrc=0"),
        has(Run("put " ++ Dir ++ " users/a 1"), "^rc=0"),
        has(Run("ls " ++ Dir ++ " users admins"), "one PATH at most(.|\n)*rc=1"),
        has(Run("tree " ++ Dir ++ " users admins"), "one PATH at most(.|\n)*rc=1"),
        has(Run("bench " ++ Dir ++ " 0"), "at least 1(.|\n)*rc=1"),
        has(Run("put " ++ Dir ++ " hyper_lmdb_cli_bench/mine kept"), "^rc=0"),
        has(Run("bench " ++ Dir ++ " 10"), "in use(.|\n)*rc=2"),
        has(Run("get " ++ Dir ++ " hyper_lmdb_cli_bench/mine"), "^keptrc=0"),
        has(Run("link " ++ Dir ++ " " ++ lists:duplicate(509, $a) ++ " lnk"), "^rc=0"),
        has(Run("link " ++ Dir ++ " lnk hyper_lmdb_cli_bench"), "^rc=0"),
        Out = Run("bench " ++ Dir ++ " 10"),
        has(Out, "bench: path too long(.|\n)*rc=2"),
        ?assertEqual(nomatch, re:run(Out, "internal error")),
        rm(Dir),
        ok
    end}.

%% ls read a whole group in one listing; now a page at a time, printed as
%% it comes, the same names in the same order, --limit and --desc across
%% pages.  tree shows --limit children per group.  load's refusal names
%% the keys.
cli_pages_and_refusals_test_() ->
    {timeout, 120, fun() ->
        Run = cli(),
        S = store(clils),
        #{<<"name">> := DirB} = S,
        Dir = binary_to_list(DirB),
        Names = [iolist_to_binary(io_lib:format("n~4..0b", [I])) || I <- lists:seq(1, 2500)],
        [ok = hyper_lmdb:write_many(S, [{write, <<"g/", N/binary>>, <<"v">>} || N <- Chunk])
         || Chunk <- chunks(Names, 1000)],
        ok = hyper_lmdb:make_link(S, <<"x">>, <<"a">>),
        ok = hyper_lmdb:stop(S),
        Out = fun(Args) -> [L || L <- string:split(Run(Args), "\n", all)] end,
        Strs = [binary_to_list(N) || N <- Names],
        ?assertEqual(Strs ++ ["rc=0", ""], Out("ls " ++ Dir ++ " g")),
        ?assertEqual(lists:sublist(Strs, 1500) ++ ["rc=0", ""], Out("ls " ++ Dir ++ " g --limit 1500")),
        Desc = lists:reverse(lists:sublist(Strs, 2100)),
        ?assertEqual(lists:sublist(Desc, 1200) ++ ["rc=0", ""],
                     Out("ls " ++ Dir ++ " g --from n2100 --limit 1200 --desc")),
        ?assertEqual(lists:nthtail(2000, Strs) ++ ["rc=0", ""], Out("ls " ++ Dir ++ " g --from n2001")),
        has(Run("tree " ++ Dir ++ " --limit 2"), "^/\n  a -> x\n  g/\n    n0001\n    n0002\n    ... 2498 more\nrc=0"),
        has(Run("tree " ++ Dir ++ " g --limit 0"), "at least 1(.|\n)*rc=1"),
        %% a dump whose key lies below the link `a'
        Dump = Dir ++ ".dump",
        ok = file:write_file(Dump, "{<<\"a/b\">>,value,<<\"1\">>}.\n"),
        Refused = Run("load " ++ Dir ++ " " ++ Dump),
        has(Refused, "refusing to load .*nothing was written"),
        has(Refused, "^  a/b: below the link a -> x"),
        has(Refused, "rc=2"),
        ok = file:write_file(Dump, "{<<\"k\">>,value,<<\"1\">>}.\n{k}.\n"),
        has(Run("load " ++ Dir ++ " " ++ Dump), "\\.dump:2: not a dump(.|\n)*rc=2"),
        has(Run("get " ++ Dir ++ " k"), "not found: k\nrc=2"),
        rm(Dir),
        ok
    end}.
