%%% @doc Tools over a whole store: dump and load, format conversion, a
%%% consistency check and a tree view.  The CLI (`bin/hyper_lmdb') is a
%%% thin shell over these.  They work on a directory a node is serving
%%% (LMDB allows several processes on one environment); only convert/3,4
%%% wants its source left alone while it runs.
%%%
%%% Keys are copied as they are stored (links not followed): first every
%%% value and group in key order, then the links in reverse key order, so
%%% that no key is redirected by a link at one of its prefixes while it is
%%% being written (a link sorts before the keys below it).
%%% @end
-module(hyper_lmdb_tools).

-export([fold/3, dump/2, load/2, convert/3, convert/4, check/1, tree/3]).

-type entry() :: {binary(), value | link | group, binary()}.
%% One stored key as scan/2 returns it: the key, its kind, and the value
%% bytes, the link's target, or `<<>>' for a group.
-type format() :: binary().
%% `<<"tagged">>' or `<<"hb_store_lmdb">>'.
-type problem() :: {dangling | loop | malformed, binary(), binary()}.
%% `{Kind, Key, Detail}': for a link, Detail is its target.
-export_type([entry/0, format/0, problem/0]).

-define(PAGE, 1000).
%% A write_many batch is flushed at this many operations or bytes.
-define(BATCH_OPS, 1000).
-define(BATCH_BYTES, (8 bsl 20)).

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
-spec dump(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
dump(S, File) ->
    case file:open(File, [write, raw, binary, delayed_write]) of
        {ok, Fd} ->
            R = fold_pages(S, fun(Page, N) ->
                                  Text = [entry_text(E) || E <- Page],
                                  case file:write(Fd, Text) of
                                      ok -> {ok, N + length(Page)};
                                      {error, Why} -> {error, {File, Why}}
                                  end
                              end, 0, undefined),
            case file:close(Fd) of
                ok -> R;
                {error, Why} -> {error, {File, Why}}
            end;
        {error, Why} ->
            {error, {File, Why}}
    end.

%% @doc Loads a file written by dump/2 into the store (keys it already has
%% are replaced); returns the number of keys written.  Every line is
%% checked before the first write; the writes then go in batches of
%% ?BATCH_OPS (one commit each), so a store that fails part-way (a full
%% disk) keeps the batches before the failure.
-spec load(hyper_lmdb:store(), file:filename_all()) -> {ok, non_neg_integer()} | {error, term()}.
load(S, File) ->
    case file:consult(File) of
        {ok, Terms} ->
            case lists:all(fun is_entry/1, Terms) of
                true ->
                    {Links, Rest} = lists:partition(fun({_, Kind, _}) -> Kind =:= link end, Terms),
                    write_ops(S, [op(E) || E <- Rest] ++
                                 [op(E) || E <- lists:reverse(lists:keysort(1, Links))]);
                false ->
                    {error, {File, not_a_dump}}
            end;
        {error, Why} ->
            {error, {File, Why}}
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

op({K, value, D}) -> {write, K, D};
op({K, group, _}) -> {make_group, K};
op({K, link, T}) -> {make_link, T, K}.

%% Writes Ops in batches of at most ?BATCH_OPS operations or
%% ?BATCH_BYTES bytes; returns how many were written.
write_ops(S, Ops) ->
    write_ops(S, Ops, [], 0, 0, 0).

write_ops(S, [], Batch, _, _, Done) ->
    flush(S, Batch, Done);
write_ops(S, Ops, Batch, NOps, Bytes, Done) when NOps >= ?BATCH_OPS; Bytes >= ?BATCH_BYTES ->
    case flush(S, Batch, Done) of
        {ok, Done2} -> write_ops(S, Ops, [], 0, 0, Done2);
        {error, _} = E -> E
    end;
write_ops(S, [Op | T], Batch, NOps, Bytes, Done) ->
    write_ops(S, T, [Op | Batch], NOps + 1, Bytes + op_size(Op), Done).

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
%% because that format cannot tell them apart (SPEC section 2).  No options
%% are defined yet.  Refuses a Dst that already holds a store (`{error,
%% {exists, Dst}}'); creates Dst and its parents otherwise.
-spec convert(file:filename_all(), file:filename_all(), format(), map()) ->
    {ok, #{keys := non_neg_integer(), reinterpreted := [binary()]}} | {error, term()}.
convert(Src, Dst, Format, Opts) when is_map(Opts) ->
    case lists:member(Format, [<<"tagged">>, <<"hb_store_lmdb">>]) of
        false ->
            {error, {bad_argument, format}};
        true ->
            case filelib:is_file(filename:join(Dst, "data.mdb")) of
                true ->
                    {error, {exists, Dst}};
                false ->
                    From = #{<<"name">> => to_bin(Src), <<"read-only">> => true},
                    To = #{<<"name">> => to_bin(Dst), <<"format">> => Format},
                    %% A source this node serves already is read through
                    %% its server, and left running afterwards.
                    Served = hyper_lmdb_server:lookup(to_bin(Src)) =/= error,
                    _ = filelib:ensure_dir(filename:join(Dst, "x")),
                    try
                        convert_open(From, To, Format)
                    after
                        _ = [hyper_lmdb:stop(From) || not Served],
                        hyper_lmdb:stop(To)
                    end
            end
    end;
convert(_, _, _, _) ->
    {error, {bad_argument, opts}}.

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
    case {hyper_lmdb:stats(From), hyper_lmdb:stats(To)} of
        {#{entries := Ns}, #{entries := Nd, format := Fmt}} ->
            case {Ns, Nd, atom_to_binary(Fmt)} of
                {Written, Written, Format} ->
                    case compare(cursor(From), cursor(To), Format) of
                        ok -> {ok, #{keys => Written, reinterpreted => Re}};
                        {error, _} = E -> E
                    end;
                Other ->
                    {error, {count_mismatch, Other}}
            end;
        {{error, _} = E, _} -> E;
        {_, {error, _} = E} -> E
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

compare(A, B, Format) ->
    case {next(A), next(B)} of
        {eof, eof} ->
            ok;
        {{error, _} = E, _} ->
            E;
        {_, {error, _} = E} ->
            E;
        {{Ea, A2, _}, {Eb, B2, _}} ->
            case reinterpret(Ea, Format) of
                Eb -> compare(A2, B2, Format);
                Want -> {error, {differs, Want, Eb}}
            end;
        {{Ea, _, _}, eof} ->
            {error, {missing, element(1, Ea)}};
        {eof, {Eb, _, _}} ->
            {error, {extra, element(1, Eb)}}
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
%% root).
-spec check(hyper_lmdb:store()) ->
    {ok, #{keys := non_neg_integer(), links := non_neg_integer(), format := atom(),
           problems := [problem()]}} | {error, term()}.
check(S) ->
    case hyper_lmdb:stats(S) of
        #{format := Format} ->
            Walk = fun(E, Acc) -> check_entry(S, Format, E, Acc) end,
            case fold(S, Walk, #{keys => 0, links => 0, problems => []}) of
                {ok, R = #{problems := P}} ->
                    {ok, R#{problems := lists:reverse(P), format => Format}};
                {error, _} = E ->
                    E
            end;
        {error, _} = E ->
            E
    end.

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

%% @doc The tree below Path as indented lines, Depth levels deep; links are
%% shown with their targets and not followed further, groups end in `/'.
-spec tree(hyper_lmdb:store(), hyper_lmdb:path(), non_neg_integer()) -> iolist() | {error, term()}.
tree(S, Path, Depth) ->
    case hyper_lmdb:path(S, Path) of
        Root when is_binary(Root) ->
            [case Root of <<>> -> "/"; _ -> Root end, "\n" | tree(S, Root, Depth, "  ")];
        {error, _} = E ->
            E
    end.

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
