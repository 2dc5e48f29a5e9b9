%%% @doc Tools over a whole store: dump and load, format conversion, a
%%% consistency check and a tree view.  The CLI (`bin/hyper_lmdb') is a
%%% thin shell over these.  They work on a directory a node is serving
%%% (LMDB allows several processes on one environment); only convert/3,4
%%% wants its source left alone while it runs.
%%%
%%% Keys are copied as they are stored (links not followed): first every
%%% value and group in key order, then the links in reverse key order, so
%%% that no key is redirected by a link at one of its prefixes while it is
%%% being written (a link sorts before the keys below it).  load/2 reads
%%% a dump without making atoms and refuses, before writing anything, a
%%% dump that would not be stored as it names its keys; a failed convert
%%% removes what it made; tree/3,4 reads groups a page at a time and shows
%%% a bounded number of children per group.
%%% @end
-module(hyper_lmdb_tools).

-include_lib("kernel/include/file.hrl").

-export([fold/3, dump/2, load/2, convert/3, convert/4, check/1, tree/3, tree/4]).

-type entry() :: {binary(), value | link | group, binary()}.
%% One stored key as scan/2 returns it: the key, its kind, and the value
%% bytes, the link's target, or `<<>>' for a group.
-type format() :: binary().
%% `<<"tagged">>' or `<<"hb_store_lmdb">>'.
-type problem() :: {dangling | loop | malformed | index | error, binary(), binary()}.
%% `{Kind, Key, Detail}': for a link, Detail is its target; for `index',
%% Key is a path whose children the children index lists otherwise than
%% the keys hold them.
-export_type([entry/0, format/0, problem/0]).

-define(PAGE, 1000).
%% A write_many batch is flushed at this many operations or bytes.
-define(BATCH_OPS, 1000).
-define(BATCH_BYTES, (8 bsl 20)).
%% tree/4: children shown per group by default, and how far the others
%% are counted.
-define(TREE_MAX, 100).
-define(COUNT_MAX, 100000).

%%% ---------------------------------------------------------------------
%%% walking

%% @doc Folds Fun over every stored key in key order (links not followed),
%% a page of keys per round trip.
-spec fold(hyper_lmdb:store(), fun((entry(), Acc) -> Acc), Acc) -> {ok, Acc} | {error, term()}.
fold(S, Fun, Acc0) ->
    fold_pages(S, fun(Page, Acc) -> {ok, lists:foldl(Fun, Acc, Page)} end, Acc0, undefined).

%% Folds over whole pages; the page function may stop the walk with an
%% error.
fold_pages(S, Fun, Acc, From) ->
    Opts = case From of undefined -> #{limit => ?PAGE}; _ -> #{from => From, limit => ?PAGE} end,
    case hyper_lmdb:scan(S, Opts) of
        {ok, Entries, Next} ->
            case Fun(Entries, Acc) of
                {ok, Acc2} when Next =:= undefined -> {ok, Acc2};
                {ok, Acc2} -> fold_pages(S, Fun, Acc2, Next);
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    end.

%%% ---------------------------------------------------------------------
%%% dump and load

%% @doc Writes every key of the store to File as Erlang terms, one
%% `{Key, Kind, Data}.' per line (readable with file:consult/1).  Returns
%% the number of keys.  The file is ASCII whatever the bytes: a binary of
%% printable ASCII is written as a string, any other as its bytes
%% (`<<233,1>>'), since ~p would write bytes from 160 up as Latin-1
%% characters that file:consult, reading UTF-8, refuses or changes.
%% Never into the store's own directory (`{error, {File, inside_store}}'):
%% a dump over its data.mdb would destroy what it reads.  Written to a
%% file beside File and renamed over it once complete, so a dump that
%% fails leaves File as it was.
-spec dump(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
dump(S = #{<<"name">> := Dir}, File) ->
    case same_dir(Dir, filename:dirname(filename:absname(File))) of
        true -> {error, {File, inside_store}};
        false -> dump_to(S, File)
    end;
dump(S, File) ->
    dump_to(S, File).

dump_to(S, File) ->
    Tmp = unicode:characters_to_list([File, ".partial-", os:getpid()]),
    case file:open(Tmp, [write, raw, binary, delayed_write, exclusive]) of
        {ok, Fd} ->
            R = fold_pages(S, fun(Page, N) ->
                                  Text = [entry_text(E) || E <- Page],
                                  case file:write(Fd, Text) of
                                      ok -> {ok, N + length(Page)};
                                      {error, Why} -> {error, {File, Why}}
                                  end
                              end, 0, undefined),
            Closed = file:close(Fd),
            case {R, Closed} of
                {{ok, _}, ok} ->
                    case file:rename(Tmp, File) of
                        ok -> R;
                        {error, Why} -> _ = file:delete(Tmp), {error, {File, Why}}
                    end;
                {{ok, _}, {error, Why}} ->
                    _ = file:delete(Tmp),
                    {error, {File, Why}};
                {Err, _} ->
                    _ = file:delete(Tmp),
                    Err
            end;
        {error, Why} ->
            {error, {File, Why}}
    end.

%% The same directory, by device and inode (a symbolic link or another
%% spelling of the path included).
same_dir(A, B) ->
    case {file:read_file_info(A), file:read_file_info(B)} of
        {{ok, #file_info{major_device = D, inode = I}}, {ok, #file_info{major_device = D, inode = I}}} ->
            true;
        _ ->
            false
    end.

%% @doc Loads a file written by dump/2 into the store (keys it already has
%% are replaced); returns the number of keys written.
%%
%% The file is parsed without creating atoms (it may come from anywhere):
%% each entry must be `{Key, value | link | group, Data}.' with two
%% binaries, written as dump/2 writes them (or as `~p' did), else
%% `{error, {{File, Line}, not_a_dump}}' names the first line that is not.
%% A key longer than 511 bytes, an empty key or link target and a key
%% given twice are refused the same way.
%%
%% Then every key is checked against the store before the first write,
%% and the load is refused, with nothing written, if any key would not be
%% stored as the dump names it: `{error, {File, {would_change, N,
%% Examples}}}', N keys in all and the first 20 as `{Key, Why}':
%% `{below_link, Prefix, Target}' (a prefix of the key is a link in the
%% store, so the write would land below Target; the dump does not replace
%% that link by a value or group first), `{reads_as, link | group}' (the
%% store is in the hb_store_lmdb format, where this value is a link or a
%% group marker: load into a tagged store instead), `not_normal' (the key
%% has empty segments or a leading or trailing `/' and would be stored
%% normalised) and `{target_not_normal, Target}' (the same for a link's
%% target).  The check costs one lookup per distinct key prefix, none in
%% an empty store.  A writer beside this one (a node serving the store)
%% that makes a link after the check can still redirect a later write.
%%
%% The writes go in batches of ?BATCH_OPS (one commit each): values and
%% groups in key order, then links in reverse key order, so a store that
%% fails part-way (a full disk) keeps the batches before the failure.
-spec load(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
load(S, File) ->
    case file:read_file(File) of
        {ok, Text} ->
            case parse_dump(Text) of
                {ok, Lined} ->
                    load_entries(S, File, Lined);
                {error, Line} ->
                    {error, {{File, Line}, not_a_dump}}
            end;
        {error, Why} ->
            {error, {File, Why}}
    end.

load_entries(S, File, Lined) ->
    Sorted = lists:keysort(1, [{K, L, E} || {L, {K, _, _} = E} <- Lined]),
    case duplicate(Sorted) of
        {yes, Line} ->
            {error, {{File, Line}, not_a_dump}};
        no ->
            Entries = [E || {_, _, E} <- Sorted],
            case changes(S, Entries) of
                {ok, []} ->
                    {Links, Rest} = lists:partition(fun({_, Kind, _}) -> Kind =:= link end, Entries),
                    write_ops(S, [op(E) || E <- Rest] ++ [op(E) || E <- lists:reverse(Links)]);
                {ok, Changes} ->
                    {error, {File, {would_change, length(Changes), lists:sublist(Changes, 20)}}};
                {error, _} = E ->
                    E
            end
    end.

%% The second line of a key given twice (Sorted is sorted by key, stably).
duplicate([{K, _, _}, {K, L, _} | _]) -> {yes, L};
duplicate([_ | T]) -> duplicate(T);
duplicate([]) -> no.

%% Every entry (sorted by key) that would not be stored as it is named:
%% see load/2.  A prefix is looked up once, and only in a store that holds
%% anything.
changes(S, Entries) ->
    case hyper_lmdb:stats(S) of
        #{format := Format, entries := N} ->
            Own = maps:from_list([{K, []} || {K, Kind, _} <- Entries, Kind =/= link]),
            Fmt = atom_to_binary(Format),
            Check = fun({K, _, _} = E, {Acc, Memo}) ->
                            case change(S, E, Fmt, N > 0, Own, Memo) of
                                {none, Memo2} -> {Acc, Memo2};
                                {Why, Memo2} -> {[{K, Why} | Acc], Memo2}
                            end
                    end,
            try lists:foldl(Check, {[], #{}}, Entries) of
                {Changes, _} -> {ok, lists:reverse(Changes)}
            catch
                throw:{store_error, E} -> E
            end;
        {error, _} = E ->
            E
    end.

%% Why one entry would not be stored as named, or `none'.
change(S, {K, Kind, D} = E, Format, Check, Own, Memo) ->
    case {normal(K), Kind =/= link orelse normal(D), reinterpret(E, Format)} of
        {false, _, _} -> {not_normal, Memo};
        {_, false, _} -> {{target_not_normal, D}, Memo};
        {_, _, {_, As, _}} when As =/= Kind -> {{reads_as, As}, Memo};
        _ when not Check -> {none, Memo};
        _ ->
            case below_link(S, prefixes(K), Own, Memo) of
                {none, Memo2} -> {none, Memo2};
                {{Prefix, T}, Memo2} -> {{below_link, Prefix, T}, Memo2}
            end
    end.

%% The proper prefixes of a key, shortest first.
prefixes(K) ->
    [binary:part(K, 0, At) || {At, _} <- binary:matches(K, <<"/">>)].

%% The first prefix that is a link in the store and that the dump does
%% not replace by a value or group before the key below it is written.
below_link(_S, [], _Own, Memo) ->
    {none, Memo};
below_link(S, [P | T], Own, Memo) ->
    {Kind, Memo2} = case Memo of
                        #{P := Known} -> {Known, Memo};
                        _ -> K = stored_kind(S, P), {K, Memo#{P => K}}
                    end,
    case Kind of
        {link, Target} when not is_map_key(P, Own) -> {{P, Target}, Memo2};
        _ -> below_link(S, T, Own, Memo2)
    end.

%% What the key P itself stores, links not followed.
stored_kind(S, P) ->
    case hyper_lmdb:scan(S, #{from => P, limit => 1}) of
        {ok, [{P, link, T}], _} -> {link, T};
        {ok, [{P, Kind, _}], _} -> Kind;
        {ok, _, _} -> none;
        {error, _} = E -> throw({store_error, E})
    end.

entry_text({K, Kind, D}) ->
    [${, bin_text(K), $,, atom_to_list(Kind), $,, bin_text(D), "}.\n"].

bin_text(B) ->
    case plain(B) of
        true -> [<<"<<\"">>, B, <<"\">>">>];
        false -> io_lib:format("~w", [B])
    end.

plain(<<C, R/binary>>) when C >= 32, C =< 126, C =/= $", C =/= $\\ -> plain(R);
plain(<<>>) -> true;
plain(_) -> false.

%% A line load/2 can write: checked for every line before anything is
%% written, so that a bad dump changes nothing (a failure of the store
%% itself part-way through still leaves the batches before it).
is_entry({K, Kind, D}) when is_binary(K), K =/= <<>>, byte_size(K) =< 511, is_binary(D) ->
    Kind =:= value orelse Kind =:= group orelse (Kind =:= link andalso D =/= <<>>);
is_entry(_) ->
    false.

%% Parses a dump without creating atoms: `{Key, Kind, Data}.' entries,
%% each binary `<<"text">>' or `<<Byte, ...>>' (or a mix, as `~p' wrote
%% them), Kind one of three words compared as bytes, `%' comments and
%% white space between tokens.  {ok, [{Line, Entry}]} or {error, Line}.
parse_dump(Text) ->
    try
        {ok, entries(Text, 1, [])}
    catch
        throw:{not_a_dump, Line} -> {error, Line}
    end.

entries(B0, L0, Acc) ->
    case ws(B0, L0) of
        {<<>>, _} ->
            lists:reverse(Acc);
        {B1, L1} ->
            {B2, L2} = punct(${, B1, L1),
            {K, B3, L3} = binary_term(B2, L2),
            {B4, L4} = punct($,, B3, L3),
            {Kind, B5, L5} = kind(B4, L4),
            {B6, L6} = punct($,, B5, L5),
            {D, B7, L7} = binary_term(B6, L6),
            {B8, L8} = punct($}, B7, L7),
            {B9, L9} = punct($., B8, L8),
            case B9 of
                <<C, _/binary>> when C > $\s, C =/= $% -> throw({not_a_dump, L9});
                _ -> ok
            end,
            E = {K, Kind, D},
            is_entry(E) orelse throw({not_a_dump, L1}),
            entries(B9, L9, [{L1, E} | Acc])
    end.

%% Skips white space and comments, counting lines.
ws(<<$\n, B/binary>>, L) -> ws(B, L + 1);
ws(<<C, B/binary>>, L) when C =< $\s -> ws(B, L);
ws(<<$%, B/binary>>, L) ->
    case binary:match(B, <<"\n">>) of
        {At, 1} -> ws(binary:part(B, At, byte_size(B) - At), L);
        nomatch -> {<<>>, L}
    end;
ws(B, L) -> {B, L}.

punct(C, B0, L0) ->
    case ws(B0, L0) of
        {<<C, B/binary>>, L} -> {B, L};
        {_, L} -> throw({not_a_dump, L})
    end.

kind(B0, L0) ->
    {B, L} = ws(B0, L0),
    case B of
        <<"value", R/binary>> -> {end_word(value, R, L), R, L};
        <<"link", R/binary>> -> {end_word(link, R, L), R, L};
        <<"group", R/binary>> -> {end_word(group, R, L), R, L};
        _ -> throw({not_a_dump, L})
    end.

%% A word goes on with letters, digits, `_' and `@' (`values' is not
%% `value').
end_word(_Kind, <<C, _/binary>>, L)
  when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9; C =:= $_; C =:= $@ ->
    throw({not_a_dump, L});
end_word(Kind, _, _) ->
    Kind.

%% `<<>>', `<<"...">>', `<<1,2,3>>' or a mix of strings and bytes.
binary_term(B0, L0) ->
    case ws(B0, L0) of
        {<<"<<", B1/binary>>, L1} ->
            case ws(B1, L1) of
                {<<">>", B2/binary>>, L2} -> {<<>>, B2, L2};
                {B2, L2} -> segments(B2, L2, [])
            end;
        {_, L} ->
            throw({not_a_dump, L})
    end.

segments(B0, L0, Acc) ->
    {Seg, B1, L1} = segment(B0, L0),
    case ws(B1, L1) of
        {<<",", B2/binary>>, L2} -> segments(B2, L2, [Seg | Acc]);
        {<<">>", B2/binary>>, L2} -> {iolist_to_binary(lists:reverse(Acc, [Seg])), B2, L2};
        {_, L2} -> throw({not_a_dump, L2})
    end.

segment(B0, L0) ->
    case ws(B0, L0) of
        {<<$", B1/binary>>, L1} -> string_literal(B1, L1);
        {<<C, _/binary>> = B1, L1} when C >= $0, C =< $9 -> byte_literal(B1, L1, 0);
        {_, L1} -> throw({not_a_dump, L1})
    end.

byte_literal(<<C, B/binary>>, L, N) when C >= $0, C =< $9, N =< 255 ->
    byte_literal(B, L, N * 10 + C - $0);
byte_literal(B, L, N) when N =< 255 ->
    {<<N>>, B, L};
byte_literal(_, L, _) ->
    throw({not_a_dump, L}).

%% The bytes of a string literal (after its opening quote) are the bytes
%% of the segment; escapes (`\"', `\n', `\x{e9}', as `~p' wrote them) are
%% read by erl_scan, which, given nothing but a string, makes no atom.
string_literal(B, L) ->
    case binary:match(B, <<"\"">>) of
        {At, 1} ->
            <<Bytes:At/binary, _, Rest/binary>> = B,
            case binary:match(Bytes, <<"\\">>) of
                nomatch -> {Bytes, Rest, L + newlines(Bytes)};
                _ -> escaped_literal(B, L, 0)
            end;
        nomatch ->
            throw({not_a_dump, L})
    end.

escaped_literal(B, L, At) ->
    case B of
        <<_:At/binary, $\\, _, _/binary>> ->
            escaped_literal(B, L, At + 2);
        <<Lit:At/binary, $", Rest/binary>> ->
            case erl_scan:string([$" | binary_to_list(Lit)] ++ [$"]) of
                {ok, [{string, _, Chars}], _} ->
                    case lists:all(fun(C) -> C =< 255 end, Chars) of
                        true -> {list_to_binary(Chars), Rest, L + newlines(Lit)};
                        false -> throw({not_a_dump, L})
                    end;
                _ ->
                    throw({not_a_dump, L})
            end;
        <<_:At/binary, _, _/binary>> ->
            escaped_literal(B, L, At + 1);
        _ ->
            throw({not_a_dump, L})
    end.

newlines(B) ->
    case binary:match(B, <<"\n">>) of
        nomatch -> 0;
        _ -> length(binary:matches(B, <<"\n">>))
    end.

op({K, value, D}) -> {write, K, D};
op({K, group, _}) -> {make_group, K};
op({K, link, T}) -> {make_link, T, K}.

%% Writes Ops in batches of at most ?BATCH_OPS operations or
%% ?BATCH_BYTES bytes; returns how many were written.
write_ops(S, Ops) ->
    write_ops(S, Ops, [], 0, 0, 0).

write_ops(S, [], Batch, _, _, Done) ->
    flush(S, Batch, Done);
write_ops(S, [Op | T] = Ops, Batch, NOps, Bytes, Done) ->
    Size = op_size(Op),
    %% Flushed before an op would take the batch past its bound (not
    %% after): a batch just under it plus a value near max-value-size would
    %% be a request larger than the port takes (too_large).
    case Batch =/= [] andalso (NOps >= ?BATCH_OPS orelse Bytes + Size > ?BATCH_BYTES) of
        true ->
            case flush(S, Batch, Done) of
                {ok, Done2} -> write_ops(S, Ops, [], 0, 0, Done2);
                {error, _} = E -> E
            end;
        false ->
            write_ops(S, T, [Op | Batch], NOps + 1, Bytes + Size, Done)
    end.

op_size({write, K, V}) -> byte_size(K) + byte_size(V);
op_size({make_link, T, K}) -> byte_size(K) + byte_size(T);
op_size({make_group, K}) -> byte_size(K).

flush(_S, [], Done) ->
    {ok, Done};
flush(S, Batch, Done) ->
    case hyper_lmdb:write_many(S, lists:reverse(Batch)) of
        ok -> {ok, Done + length(Batch)};
        {error, _} = E -> E
    end.

%%% ---------------------------------------------------------------------
%%% conversion

%% @doc Copies the store in directory Src into a new store in directory
%% Dst written in Format (`<<"tagged">>' or `<<"hb_store_lmdb">>'), then
%% compares the two key by key.  Offline: nothing should write to Src
%% meanwhile.  Returns the number of keys copied.  See convert/4.
-spec convert(file:filename_all(), file:filename_all(), format()) ->
    {ok, non_neg_integer()} | {error, term()}.
convert(Src, Dst, Format) ->
    case convert(Src, Dst, Format, #{}) of
        {ok, #{keys := N}} -> {ok, N};
        {error, _} = E -> E
    end.

%% @doc As convert/3, with a report: `keys', the number of keys copied, and
%% `reinterpreted', the keys whose value will read differently in the new
%% format: converting to `hb_store_lmdb', a value that is exactly `group'
%% becomes a group marker and a value `link:' + target becomes a link,
%% because that format cannot tell them apart (SPEC section 2).  Option:
%% `children_index => true' (to `tagged' only) gives Dst a children index
%% (hyper_lmdb's `children-index'), kept as the keys are copied.  Refuses
%% a Dst that already holds a store (`{error, {exists, Dst}}'); creates
%% Dst and its parents otherwise.
%%
%% A convert that fails (the copy, or the comparison, say for a key a
%% foreign writer stored as `a//b') leaves no destination behind: it
%% removes the directories it created, or, in a Dst directory that was
%% already there, the files it created.  Should that removal fail, the
%% answer is `{error, {Reason, {left_behind, Path, Posix}}}'.
-spec convert(file:filename_all(), file:filename_all(), format(), map()) ->
    {ok, #{keys := non_neg_integer(), reinterpreted := [binary()]}} | {error, term()}.
convert(Src, Dst, Format, Opts) when is_map(Opts) ->
    Index = maps:get(children_index, Opts, false),
    case lists:member(Format, [<<"tagged">>, <<"hb_store_lmdb">>]) of
        false ->
            {error, {bad_argument, format}};
        true when not is_boolean(Index); Index andalso Format =/= <<"tagged">> ->
            {error, {bad_argument, children_index}};
        true ->
            case filelib:is_file(filename:join(Dst, "data.mdb")) of
                true ->
                    {error, {exists, Dst}};
                false ->
                    %% A source this node serves already is read through
                    %% its server (as it runs), and left running afterwards.
                    Served = hyper_lmdb_server:lookup(to_bin(Src)) =/= error,
                    From = case Served of
                               true -> #{<<"name">> => to_bin(Src)};
                               false -> #{<<"name">> => to_bin(Src), <<"read-only">> => true}
                           end,
                    To = #{<<"name">> => to_bin(Dst), <<"format">> => Format,
                           <<"children-index">> => Index},
                    Made = made_by_us(Dst),
                    _ = filelib:ensure_dir(filename:join(Dst, "x")),
                    R = try convert_open(From, To, Format)
                        catch Class:Why:Stack -> {raise, Class, Why, Stack}
                        end,
                    _ = [hyper_lmdb:stop(From) || not Served],
                    ok = hyper_lmdb:stop(To),
                    case R of
                        {ok, _} -> R;
                        _ -> failed(R, remove_made(Made))
                    end
            end
    end;
convert(_, _, _, _) ->
    {error, {bad_argument, opts}}.

%% What a failed convert removes: the outermost directory it is about to
%% create for Dst (a new Dst, or a missing parent of it), or, in a Dst
%% that is already there, the names that are not in it now.
made_by_us(Dst) ->
    Abs = filename:absname(Dst),
    case missing(Abs) of
        true ->
            {dir, outermost_missing(Abs)};
        false ->
            case file:list_dir(Abs) of
                {ok, Names} -> {inside, Abs, Names};
                {error, _} -> nothing  % not a directory we can use: convert fails, removes nothing
            end
    end.

%% Only a path that is certainly not there counts as missing (a file, a
%% dangling symbolic link or an unreadable parent is never removed).
missing(P) ->
    file:read_link_info(P) =:= {error, enoent}.

outermost_missing(Dir) ->
    Parent = filename:dirname(Dir),
    case Parent =:= Dir orelse not missing(Parent) of
        true -> Dir;
        false -> outermost_missing(Parent)
    end.

remove_made(nothing) ->
    ok;
remove_made({dir, Dir}) ->
    remove([Dir]);
remove_made({inside, Dir, Before}) ->
    case file:list_dir(Dir) of
        {ok, Now} -> remove([filename:join(Dir, N) || N <- Now -- Before]);
        {error, enoent} -> ok;
        {error, Why} -> {error, Dir, Why}
    end.

remove([]) -> ok;
remove([P | T]) ->
    case file:del_dir_r(P) of
        ok -> remove(T);
        {error, enoent} -> remove(T);
        {error, Why} -> {error, P, Why}
    end.

%% A failed convert's answer once what it made is removed; if that fails
%% too, the path left behind is named.
failed({raise, Class, Why, Stack}, _) -> erlang:raise(Class, Why, Stack);
failed({error, Why}, ok) -> {error, Why};
failed({error, Why}, {error, Path, Posix}) -> {error, {Why, {left_behind, to_bin(Path), Posix}}}.

convert_open(From, To, Format) ->
    case {hyper_lmdb:start(From), hyper_lmdb:start(To)} of
        {{ok, _}, {ok, _}} -> convert_copy(From, To, Format);
        {{error, _} = E, _} -> E;
        {_, {error, _} = E} -> E
    end.

%% Pass 1 streams values and groups, a page at a time; the links (and the
%% values that become links) are kept, in reverse key order, for pass 2.
convert_copy(From, To, Format) ->
    Page = fun(Entries, {N, Late, Re}) ->
               {Now, Late2, Re2} = split_page(Entries, Format, Late, Re),
               case write_ops(To, [op(E) || E <- Now]) of
                   {ok, W} -> {ok, {N + W, Late2, Re2}};
                   {error, _} = E -> E
               end
           end,
    maybe_ok(fold_pages(From, Page, {0, [], []}, undefined),
        fun({N1, Late, Re}) ->
            maybe_ok(write_ops(To, [op(E) || E <- Late]),
                fun(N2) ->
                    maybe_ok(hyper_lmdb:sync(To),
                        fun(_) -> verify(From, To, Format, N1 + N2, lists:reverse(Re)) end)
                end)
        end).

split_page(Entries, Format, Late0, Re0) ->
    Split = fun({K, Kind, _} = E, {Now, Late, Re}) ->
                case {Kind, reinterpret(E, Format)} of
                    {link, _} -> {Now, [E | Late], Re};
                    {_, {_, link, _}} -> {Now, [E | Late], [K | Re]};
                    {_, E} -> {[E | Now], Late, Re};
                    {_, _} -> {[E | Now], Late, [K | Re]}
                end
            end,
    {Now, Late, Re} = lists:foldl(Split, {[], Late0, Re0}, Entries),
    {lists:reverse(Now), Late, Re}.

%% What an entry becomes once written in Format.
reinterpret({K, value, <<"group">>}, <<"hb_store_lmdb">>) ->
    {K, group, <<>>};
reinterpret({K, value, <<"link:", T/binary>>}, <<"hb_store_lmdb">>) when T =/= <<>> ->
    {K, link, T};
reinterpret(E, _) ->
    E.

%% Walks both stores side by side: every key of the source must be in the
%% destination as reinterpret/2 says, and nothing else.
verify(From, To, Format, Written, Re) ->
    case compare(cursor(From), cursor(To), Format, From, 0) of
        {ok, Added} ->
            case {hyper_lmdb:stats(From), hyper_lmdb:stats(To)} of
                {#{entries := Ns}, #{entries := Nd, format := Fmt}} ->
                    case {Ns, Nd - Added, atom_to_binary(Fmt)} of
                        {Written, Written, Format} ->
                            {ok, #{keys => Written, reinterpreted => Re}};
                        Other ->
                            {error, {count_mismatch, Other}}
                    end;
                {{error, _} = E, _} -> E;
                {_, {error, _} = E} -> E
            end;
        {error, _} = E ->
            E
    end.

cursor(S) -> {S, [], first}.

next({_S, [E | T], Next} = C) -> {E, setelement(2, C, T), Next};
next({_S, [], undefined}) -> eof;
next({S, [], From}) ->
    Opts = case From of first -> #{limit => ?PAGE}; _ -> #{from => From, limit => ?PAGE} end,
    case hyper_lmdb:scan(S, Opts) of
        {ok, [], _} -> eof;
        {ok, Entries, Next} -> next({S, Entries, Next});
        {error, _} = E -> E
    end.

%% Walks both stores side by side; {ok, Added}: the group markers the
%% destination has and the source lacks, each at a key that is an implicit
%% group of the source.  In hb_store_lmdb's format a link's empty parents
%% get one, as hb_store_lmdb's own link/3 makes them (its list/3 lists
%% nothing without one).
compare(A, B, Format, From, Added) ->
    case {next(A), next(B)} of
        {eof, eof} ->
            {ok, Added};
        {{error, _} = E, _} ->
            E;
        {_, {error, _} = E} ->
            E;
        {Na, {{Kb, group, _} = Eb, B2, _}} when Format =:= <<"hb_store_lmdb">> ->
            case Na of
                {Ea, A2, _} when element(1, Ea) =:= Kb ->
                    same(Ea, Eb, Format, A2, B2, From, Added);
                _ ->
                    case implicit_group(From, Kb) of
                        true -> compare(A, B2, Format, From, Added + 1);
                        false when Na =:= eof -> {error, {extra, Kb}};
                        false -> same(element(1, Na), Eb, Format, element(2, Na), B2, From, Added)
                    end
            end;
        {{Ea, A2, _}, {Eb, B2, _}} ->
            same(Ea, Eb, Format, A2, B2, From, Added);
        {{Ea, _, _}, eof} ->
            {error, {missing, element(1, Ea)}};
        {eof, {Eb, _, _}} ->
            {error, {extra, element(1, Eb)}}
    end.

same(Ea, Eb, Format, A2, B2, From, Added) ->
    case reinterpret(Ea, Format) of
        Eb -> compare(A2, B2, Format, From, Added);
        Want -> {error, {differs, Want, Eb}}
    end.

%% The source holds no key K but keys below it.
implicit_group(S, K) ->
    Below = <<K/binary, "/">>,
    case {hyper_lmdb:scan(S, #{from => K, limit => 1}), hyper_lmdb:scan(S, #{from => Below, limit => 1})} of
        {{ok, [{K, _, _}], _}, _} -> false;
        {_, {ok, [{C, _, _}], _}} -> binary:longest_common_prefix([C, Below]) =:= byte_size(Below);
        _ -> false
    end.

maybe_ok({ok, V}, Fun) -> Fun(V);
maybe_ok(ok, Fun) -> Fun(ok);
maybe_ok({error, _} = E, _) -> E.

%%% ---------------------------------------------------------------------
%%% check

%% @doc Walks every key and reports what is wrong: links whose target does
%% not exist (`dangling'), links that never resolve (`loop': a cycle or a
%% chain past max-link-hops), keys or link targets not in normal form
%% (`malformed': empty segments, a leading or trailing `/'), and, in the
%% hb_store_lmdb format, a value that is exactly `link:' (`malformed': a
%% link with no target, which HyperBEAM's own store would follow to the
%% root).  A store with a children index (the `children-index' option) has
%% it compared with the keys: every path that has keys below it, and does
%% not run through a link, must list (off the index) exactly the children
%% its keys name (`index': a program other than this store wrote the LMDB
%% files).
-spec check(hyper_lmdb:store()) ->
    {ok, #{keys := non_neg_integer(), links := non_neg_integer(), format := atom(),
           problems := [problem()]}} | {error, term()}.
check(S) ->
    case hyper_lmdb:stats(S) of
        #{format := Format} = Stats ->
            Index = maps:get(children_index, Stats, false),
            Walk = fun(E, Acc) -> index_entry(Index, E, check_entry(S, Format, E, Acc)) end,
            case fold(S, Walk, #{keys => 0, links => 0, problems => [], parents => #{<<>> => []}}) of
                {ok, R = #{problems := P, parents := Parents}} ->
                    Wrong = case Index of
                                true -> index_problems(S, Parents);
                                false -> []
                            end,
                    {ok, (maps:remove(parents, R))#{problems := lists:reverse(P) ++ Wrong,
                                                     format => Format}};
                {error, _} = E ->
                    E
            end;
        {error, _} = E ->
            E
    end.

%% Every parent of key K with the name of its child on the way to K.
index_entry(false, _, Acc) ->
    Acc;
index_entry(true, {K, _, _}, #{parents := Parents} = Acc) ->
    Segs = binary:split(K, <<"/">>, [global]),
    {_, Parents2} = lists:foldl(
        fun(Seg, {Parent, M}) ->
            Path = case Parent of <<>> -> Seg; _ -> <<Parent/binary, "/", Seg/binary>> end,
            {Path, maps:update_with(Parent, fun(Cs) -> [Seg | Cs] end, [Seg], M)}
        end, {<<>>, Parents}, Segs),
    Acc#{parents := Parents2}.

index_problems(S, Parents) ->
    lists:append(
      [case Parent =:= <<>> orelse hyper_lmdb:resolve(S, Parent) =:= Parent of
           false ->
               [];  % lists the link's target: a key stored below a link is not reached
           true ->
               Want = lists:usort(Children),
               case hyper_lmdb:list(S, Parent) of
                   {ok, Want} ->
                       [];
                   {ok, Got} ->
                       [{index, Parent,
                         iolist_to_binary(
                           ["the children index lists ", names(Got -- Want), " not held by keys",
                            " and misses ", names(Want -- Got)])}];
                   {error, Why} ->
                       [{error, Parent, iolist_to_binary(io_lib:format("~0p", [Why]))}]
               end
       end || {Parent, Children} <- lists:sort(maps:to_list(Parents))]).

names([]) -> "none";
names(Ns) -> lists:join(", ", [[$", N, $"] || N <- Ns]).

check_entry(S, Format, {K, Kind, D}, #{keys := N, links := L, problems := P} = Acc) ->
    P1 = case normal(K) of
             true -> P;
             false -> [{malformed, K, <<"key not in normal form">>} | P]
         end,
    case Kind of
        link ->
            P2 = case normal(D) of
                     true -> P1;
                     false -> [{malformed, K, <<"link target not in normal form: ", D/binary>>} | P1]
                 end,
            Acc#{keys := N + 1, links := L + 1, problems := link_problem(S, K, D) ++ P2};
        value when Format =:= hb_store_lmdb, D =:= <<"link:">> ->
            Acc#{keys := N + 1, problems := [{malformed, K, <<"link: with no target">>} | P1]};
        _ ->
            Acc#{keys := N + 1, problems := P1}
    end.

%% A link reachable as its own key is followed from there.  One stored
%% below a linked prefix is never met that way (the path K means the
%% prefix's target's K): its own target is looked at instead.
link_problem(S, K, Target) ->
    Parent = parent(K),
    case Parent =:= <<>> orelse hyper_lmdb:resolve(S, Parent) =:= Parent of
        true ->
            case hyper_lmdb:type(S, K) of
                not_found ->
                    %% an unresolvable path (a loop, a chain past the hop
                    %% limit) resolves to itself
                    case hyper_lmdb:resolve(S, K) of
                        K -> [{loop, K, Target}];
                        _ -> [{dangling, K, Target}]
                    end;
                {error, Why} ->
                    [{error, K, iolist_to_binary(io_lib:format("~0p", [Why]))}];
                _ ->
                    []
            end;
        false ->
            case hyper_lmdb:type(S, Target) of
                not_found -> [{dangling, K, Target}];
                {error, Why} -> [{error, K, iolist_to_binary(io_lib:format("~0p", [Why]))}];
                _ -> []
            end
    end.

parent(K) ->
    case binary:matches(K, <<"/">>) of
        [] -> <<>>;
        Ms -> {At, _} = lists:last(Ms), binary:part(K, 0, At)
    end.

normal(<<>>) -> false;
normal(P) ->
    binary:first(P) =/= $/ andalso binary:last(P) =/= $/ andalso binary:match(P, <<"//">>) =:= nomatch.

%%% ---------------------------------------------------------------------
%%% tree

%% @doc As tree/4 with the default options: at most 100 children shown
%% per group.
-spec tree(hyper_lmdb:store(), hyper_lmdb:path(), non_neg_integer()) -> iolist() | {error, term()}.
tree(S, Path, Depth) ->
    tree(S, Path, Depth, #{}).

%% @doc The tree below Path as indented lines, Depth levels deep; links are
%% shown with their targets and not followed further, groups end in `/'.
%% A group shows at most `max_children' children (default 100, in name
%% order), then one line `... N more' at their indent, where N counts the
%% others up to 100000 (`... 100000+ more' beyond).  Children are read a
%% page at a time (list/3), so no group is read into memory whole,
%% whatever its size.
-spec tree(hyper_lmdb:store(), hyper_lmdb:path(), non_neg_integer(),
           #{max_children => pos_integer()}) -> iolist() | {error, term()}.
tree(S, Path, Depth, Opts) when is_integer(Depth), Depth >= 0, is_map(Opts) ->
    case maps:get(max_children, Opts, ?TREE_MAX) of
        Max when is_integer(Max), Max > 0 ->
            case hyper_lmdb:path(S, Path) of
                Root when is_binary(Root) ->
                    [case Root of <<>> -> "/"; _ -> Root end, "\n" | tree(S, Root, Depth, Max, "  ")];
                {error, _} = E ->
                    E
            end;
        _ ->
            {error, {bad_argument, max_children}}
    end;
tree(_, _, _, _) ->
    {error, {bad_argument, tree}}.

tree(_S, _P, 0, _Max, _Indent) -> [];
tree(S, P, Depth, Max, Indent) ->
    {Children, More} = children(S, P, Max),
    [[begin
          Child = case P of <<>> -> C; _ -> <<P/binary, "/", C/binary>> end,
          case raw_kind(S, Child) of
              {link, T} -> [Indent, C, " -> ", T, "\n"];
              value -> [Indent, C, "\n"];
              _ -> [Indent, C, "/\n" | tree(S, Child, Depth - 1, Max, ["  " | Indent])]
          end
      end || C <- Children],
     case More of
         0 -> [];
         N when N > ?COUNT_MAX -> [Indent, "... ", integer_to_list(?COUNT_MAX), "+ more\n"];
         N -> [Indent, "... ", integer_to_list(N), " more\n"]
     end].

%% The first Max children of P, and how many more there are (counted up
%% to just past ?COUNT_MAX), a page at a time.
children(S, P, Max) ->
    Shown = list_pages(S, P, undefined, Max, fun(Page, Acc) -> [Page | Acc] end, []),
    Names = lists:append(lists:reverse(Shown)),
    More = case length(Names) of
               Max ->
                   From = <<(lists:last(Names))/binary, 0>>,  % the next name up
                   list_pages(S, P, From, ?COUNT_MAX + 1,
                              fun(Page, N) -> N + length(Page) end, 0);
               _ ->
                   0
           end,
    {Names, More}.

%% Folds Fun over the pages of at most Want children of P from From.
list_pages(_S, _P, _From, 0, _Fun, Acc) ->
    Acc;
list_pages(S, P, From, Want, Fun, Acc) ->
    Limit = min(Want, ?PAGE),
    Opts = case From of undefined -> #{limit => Limit}; _ -> #{from => From, limit => Limit} end,
    case hyper_lmdb:list(S, P, Opts) of
        {ok, []} ->
            Acc;
        {ok, Page} when length(Page) < Limit ->
            Fun(Page, Acc);
        {ok, Page} ->
            list_pages(S, P, <<(lists:last(Page))/binary, 0>>, Want - Limit, Fun, Fun(Page, Acc));
        _ ->
            Acc
    end.

%% What the key holding Key itself stores (not followed).  A child listed
%% below a linked prefix is the target's child, so its parent is resolved.
raw_kind(S, Key0) ->
    Key = case binary:split(Key0, <<"/">>, [global]) of
              [_] ->
                  Key0;
              Segs ->
                  Parent = iolist_to_binary(lists:join($/, lists:droplast(Segs))),
                  case hyper_lmdb:resolve(S, Parent) of
                      P when is_binary(P), P =/= <<>> -> <<P/binary, "/", (lists:last(Segs))/binary>>;
                      _ -> Key0
                  end
          end,
    case hyper_lmdb:scan(S, #{from => Key, limit => 1}) of
        {ok, [{Key, link, T}], _} -> {link, T};
        {ok, [{Key, value, _}], _} -> value;
        _ -> group
    end.

to_bin(B) when is_binary(B) -> B;
to_bin(L) -> unicode:characters_to_binary(L).
