%%% @doc Tools over a whole store: dump and load, format conversion, and a
%%% consistency check.  The CLI (`bin/hyper_lmdb') is a thin shell over
%%% these; they work on a directory a node is serving (LMDB allows several
%%% processes on one environment).
%%%
%%% Keys are copied as they are stored: first every value and group, then
%%% the links in reverse key order, so that no key is redirected by a link
%%% at one of its prefixes while it is being written (a link always sorts
%%% before the keys below it).
%%% @end
-module(hyper_lmdb_tools).

-export([fold/3, dump/2, load/2, convert/3, check/1, tree/3]).

-type entry() :: {binary(), value | link | group, binary()}.
-export_type([entry/0]).

-define(PAGE, 1000).

%% @doc Folds Fun over every stored key in key order (links not followed).
-spec fold(hyper_lmdb:store(), fun((entry(), Acc) -> Acc), Acc) -> {ok, Acc} | {error, term()}.
fold(S, Fun, Acc0) ->
    fold(S, Fun, Acc0, undefined).

fold(S, Fun, Acc, From) ->
    Opts = case From of undefined -> #{limit => ?PAGE}; _ -> #{from => From, limit => ?PAGE} end,
    case hyper_lmdb:scan(S, Opts) of
        {ok, Entries, Next} ->
            Acc2 = lists:foldl(Fun, Acc, Entries),
            case Next of
                undefined -> {ok, Acc2};
                _ -> fold(S, Fun, Acc2, Next)
            end;
        {error, _} = E ->
            E
    end.

%% @doc Writes every key of the store to File as Erlang terms
%% (`{Key, Kind, Data}.' per line, readable with file:consult/1).
%% Returns the number of keys.
-spec dump(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
dump(S, File) ->
    case file:open(File, [write, raw, binary, delayed_write]) of
        {ok, Fd} ->
            R = fold(S, fun(E, N) ->
                            ok = file:write(Fd, io_lib:format("~0p.~n", [E])),
                            N + 1
                        end, 0),
            ok = file:close(Fd),
            R;
        {error, Why} ->
            {error, {File, Why}}
    end.

%% @doc Loads a file written by dump/2 into the store; returns the number
%% of keys written.
-spec load(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
load(S, File) ->
    case file:consult(File) of
        {ok, Entries} -> put_entries(S, Entries);
        {error, Why} -> {error, {File, Why}}
    end.

%% @doc Copies the store in directory Src into a new store in directory Dst
%% written in Format (`<<"tagged">>' or `<<"hb_store_lmdb">>'), offline,
%% then checks both hold the same number of keys.
-spec convert(file:filename_all(), file:filename_all(), binary()) ->
    {ok, non_neg_integer()} | {error, term()}.
convert(Src, Dst, Format) ->
    From = #{<<"name">> => to_bin(Src), <<"read-only">> => true},
    To = #{<<"name">> => to_bin(Dst), <<"format">> => Format},
    case filelib:is_file(filename:join(Dst, "data.mdb")) of
        true ->
            {error, {exists, Dst}};
        false ->
            try
                {ok, _} = ok(hyper_lmdb:start(From)),
                {ok, _} = ok(hyper_lmdb:start(To)),
                {ok, Entries} = ok(fold(From, fun(E, Acc) -> [E | Acc] end, [])),
                {ok, N} = ok(put_entries(To, lists:reverse(Entries))),
                ok = ok(hyper_lmdb:sync(To)),
                #{entries := Ns} = hyper_lmdb:stats(From),
                #{entries := Nd, format := Fmt} = hyper_lmdb:stats(To),
                case {Ns, Nd, atom_to_binary(Fmt)} of
                    {N, N, Format} -> {ok, N};
                    Other -> {error, {count_mismatch, Other}}
                end
            catch
                error:{badmatch, {error, _} = E} -> E
            after
                hyper_lmdb:stop(From),
                hyper_lmdb:stop(To)
            end
    end.

ok({error, _} = E) -> error({badmatch, E});
ok(R) -> R.

put_entries(S, Entries) ->
    {Links, Rest} = lists:partition(fun({_, Kind, _}) -> Kind =:= link end, Entries),
    Ops = [case Kind of
               value -> {write, K, D};
               group -> {make_group, K}
           end || {K, Kind, D} <- Rest] ++
          [{make_link, T, K} || {K, link, T} <- lists:reverse(lists:keysort(1, Links))],
    write_chunks(S, Ops, 0).

write_chunks(_S, [], N) -> {ok, N};
write_chunks(S, Ops, N) ->
    {Chunk, Rest} = lists:split(min(?PAGE, length(Ops)), Ops),
    case hyper_lmdb:write_many(S, Chunk) of
        ok -> write_chunks(S, Rest, N + length(Chunk));
        {error, _} = E -> E
    end.

%% @doc Walks every key and reports what is wrong: links whose target does
%% not exist (`dangling'), links that never resolve (`loop': a cycle or a
%% chain past max-link-hops), and keys or targets that are not in normal
%% form (`malformed': empty segments, a leading or trailing '/').
-spec check(hyper_lmdb:store()) ->
    {ok, #{keys := non_neg_integer(), links := non_neg_integer(),
           problems := [{dangling | loop | malformed, binary(), binary()}]}} | {error, term()}.
check(S) ->
    Walk = fun({K, Kind, D}, #{keys := N, links := L, problems := P} = Acc) ->
                   P1 = case normal(K) of true -> P; false -> [{malformed, K, <<"key">>} | P] end,
                   case Kind of
                       link ->
                           P2 = case normal(D) of
                                    true -> P1;
                                    false -> [{malformed, K, <<"link target">>} | P1]
                                end,
                           Acc#{keys := N + 1, links := L + 1, problems := link_problem(S, K, D) ++ P2};
                       _ ->
                           Acc#{keys := N + 1, problems := P1}
                   end
           end,
    case fold(S, Walk, #{keys => 0, links => 0, problems => []}) of
        {ok, R = #{problems := P}} -> {ok, R#{problems := lists:reverse(P)}};
        E -> E
    end.

link_problem(S, K, Target) ->
    case hyper_lmdb:type(S, K) of
        not_found ->
            %% an unresolvable path resolves to itself
            case hyper_lmdb:resolve(S, K) of
                K -> [{loop, K, Target}];
                _ -> [{dangling, K, Target}]
            end;
        _ ->
            []
    end.

normal(<<>>) -> false;
normal(P) ->
    binary:first(P) =/= $/ andalso binary:last(P) =/= $/ andalso binary:match(P, <<"//">>) =:= nomatch.

%% @doc The tree below Path as indented lines, Depth levels deep, links
%% shown with their targets and not followed further.
-spec tree(hyper_lmdb:store(), hyper_lmdb:path(), non_neg_integer()) -> iolist().
tree(S, Path, Depth) ->
    Root = hyper_lmdb:path(S, Path),
    [case Root of <<>> -> "/"; _ -> Root end, "\n" | tree(S, Root, Depth, "  ")].

tree(_S, _P, 0, _Indent) -> [];
tree(S, P, Depth, Indent) ->
    case hyper_lmdb:list(S, P) of
        {ok, Children} ->
            [begin
                 Child = case P of <<>> -> C; _ -> <<P/binary, "/", C/binary>> end,
                 case raw_kind(S, Child) of
                     {link, T} -> [Indent, C, " -> ", T, "\n"];
                     value -> [Indent, C, "\n"];
                     _ -> [Indent, C, "/\n" | tree(S, Child, Depth - 1, ["  " | Indent])]
                 end
             end || C <- Children];
        _ ->
            []
    end.

raw_kind(S, Key) ->
    case hyper_lmdb:scan(S, #{from => Key, limit => 1}) of
        {ok, [{Key, link, T}], _} -> {link, T};
        {ok, [{Key, value, _}], _} -> value;
        _ -> group
    end.

to_bin(B) when is_binary(B) -> B;
to_bin(L) -> unicode:characters_to_binary(L).
