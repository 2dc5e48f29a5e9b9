%%% A pure Erlang model of hyper_lmdb's data model and operations (SPEC
%%% sections 2-3), for the PropEr state-machine test in
%%% hyper_lmdb_prop_SUITE.  No I/O, no store: every function maps a model
%%% and a request to the answer the store must give (and the new model).
%%%
%%% The model is #{hops => MaxLinkHops, format => tagged | hb_store_lmdb,
%%% kv => #{Key => Entry}} where Key is a normalised path binary and Entry
%%% is {value, Bin} | {link, Target} | group.  The decisions it encodes,
%%% beyond SPEC's prose:
%%%  - resolve: scan the prefixes of the path from the shortest to the
%%%    whole path; at the first one whose key holds a link to T, replace
%%%    that prefix by T (T ++ rest, normalised) and start again from the
%%%    first segment.  The (MaxHops+1)-th link makes the path unresolvable,
%%%    and so does a step that makes the path longer than ?MAX_PATH (what
%%%    resolution works on).  Prefixes longer than ?MAX_KEY are no keys.
%%%  - lengths (SPEC 2: keys are at most 511 bytes; README: a path as
%%%    given may be up to 4096 bytes when a link at a prefix shortens it):
%%%    a write whose path (normalised) or link target is over ?MAX_PATH,
%%%    or whose key (once its parent is resolved) is over ?MAX_KEY, is
%%%    {error, {key_too_long, Len}}.  Readers never hear it: a path that
%%%    names no key a write could make is a miss (SPEC 3: read answers
%%%    {ok, Bin} | not_found, type simple | composite | not_found, list
%%%    {ok, []} for a missing path, resolve a path: a path over ?MAX_PATH
%%%    resolves to itself).
%%%  - a write (value, group, link, delete) lands on
%%%    resolve(parent(P)) ++ "/" ++ last(P): the last segment is never
%%%    followed, so writing over a link replaces it; an unresolvable parent
%%%    answers {error, link_loop} and changes nothing.
%%%  - read/type/list of an unresolvable path: not_found / not_found /
%%%    {ok, []}; resolve of an unresolvable path: the path normalised.
%%%  - write_many: first every op is checked in order (an empty path or
%%%    link target: empty_path; one over ?MAX_PATH: key_too_long), the
%%%    first failure is the answer; otherwise applied in order, all or
%%%    nothing (the first failing op's error).
%%%  - format hb_store_lmdb (SPEC 2): a written value <<"group">> IS a
%%%    group marker and <<"link:", T>> with T non-empty IS a link to T (as
%%%    stored: T is normalised when followed).  In the tagged format every
%%%    written value is data.  In hb_store_lmdb's format make_link also
%%%    marks as a group every parent of the link's key that holds nothing
%%%    (as hb_store_lmdb's own make_link does: ensure_parent_groups).
%%%  - durability async (SPEC 5): an op is answered `ok' once queued; only
%%%    what the server can refuse without the store (async_answer/2) is
%%%    answered otherwise.  The store changes exactly as in commit mode.
-module(hyper_lmdb_model).

-export([new/1, new/2, path/1, norm/1, value/1]).
-export([resolve/2, read/2, type/2, list/3, resolve_path/2, write/2, async_answer/2, dump/1]).

-define(MAX_KEY, 511).
-define(MAX_PATH, 4096).

-type entry() :: {value, binary()} | {link, binary()} | group.
-type format() :: tagged | hb_store_lmdb.
-type model() :: #{hops := non_neg_integer(), format := format(), kv := #{binary() => entry()}}.
-export_type([model/0]).

%% An empty store that follows at most MaxHops links per resolution.
-spec new(non_neg_integer()) -> model().
new(MaxHops) -> new(MaxHops, tagged).

-spec new(non_neg_integer(), format()) -> model().
new(MaxHops, Format) -> #{hops => MaxHops, format => Format, kv => #{}}.

%%% ---------------------------------------------------------------------
%%% paths and values as the API takes them

%% A path term as hyper_lmdb's API reads it (binary, flat printable
%% string, or list of segments: binaries, strings, atoms, integers),
%% normalised.
-spec path(term()) -> binary().
path(B) when is_binary(B) -> norm(B);
path([]) -> <<>>;
path(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) of
        true -> norm(unicode:characters_to_binary(L));
        false -> norm(iolist_to_binary(lists:join($/, [segment(S) || S <- L])))
    end.

segment(B) when is_binary(B) -> B;
segment(A) when is_atom(A) -> atom_to_binary(A);
segment(I) when is_integer(I) -> integer_to_binary(I);
segment(L) when is_list(L) -> unicode:characters_to_binary(L).

-spec value(iodata()) -> binary().
value(V) -> iolist_to_binary(V).

segs(P) -> binary:split(P, <<"/">>, [global, trim_all]).
join(Segs) -> iolist_to_binary(lists:join($/, Segs)).

-spec norm(binary()) -> binary().
norm(P) -> join(segs(P)).

too_long(P) when byte_size(P) > ?MAX_PATH -> {error, {key_too_long, byte_size(P)}};
too_long(_) -> ok.

%%% ---------------------------------------------------------------------
%%% resolution (SPEC 3: links at the whole path and at every prefix,
%%% iteratively; a link at a prefix takes precedence over keys below it)

%% {ok, ResolvedPath} | unresolvable.  P is a normalised binary.
-spec resolve(model(), binary()) -> {ok, binary()} | unresolvable.
resolve(#{kv := KV, hops := Max}, P) ->
    resolve(KV, Max, segs(P), 0).

resolve(KV, Max, Segs, Hops) ->
    case first_link(KV, Segs, <<>>) of
        none -> {ok, join(Segs)};
        {_Target, _Rest} when Hops + 1 > Max -> unresolvable;
        {Target, Rest} ->
            Next = segs(Target) ++ Rest,
            case byte_size(join(Next)) > ?MAX_PATH of
                true -> unresolvable;
                false -> resolve(KV, Max, Next, Hops + 1)
            end
    end.

%% The shortest prefix of Segs whose key is a link: {Target, RestSegs}.
first_link(_KV, [], _Prefix) -> none;
first_link(KV, [S | Rest], Prefix) ->
    P = case Prefix of
            <<>> -> S;
            _ -> <<Prefix/binary, "/", S/binary>>
        end,
    case KV of
        #{P := {link, T}} -> {T, Rest};
        _ when byte_size(P) > ?MAX_KEY -> none;  % no longer prefix is a key
        _ -> first_link(KV, Rest, P)
    end.

%%% ---------------------------------------------------------------------
%%% reads

-spec read(model(), binary()) -> {ok, binary()} | not_found.
read(M = #{kv := KV}, P) ->
    case reach(M, P) of
        {ok, K} ->
            case KV of
                #{K := {value, V}} -> {ok, V};
                _ -> not_found
            end;
        _ ->
            not_found
    end.

-spec type(model(), binary()) -> simple | composite | not_found.
type(M = #{kv := KV}, P) ->
    case reach(M, P) of
        root -> composite;
        none -> not_found;
        {ok, K} ->
            case KV of
                #{K := {value, _}} -> simple;
                #{K := group} -> composite;
                _ ->
                    case children(KV, K) of
                        [] -> not_found;
                        _ -> composite
                    end
            end
    end.

%% list/2 is list/3 with #{}.
-spec list(model(), binary(), map()) -> {ok, [binary()]}.
list(M = #{kv := KV}, P, Opts) ->
    Dir = maps:get(direction, Opts, asc),
    From = maps:get(from, Opts, undefined),
    Limit = maps:get(limit, Opts, 0),
    Asc = case reach(M, P) of
              root -> children(KV, <<>>);
              {ok, K} -> children(KV, K);
              none -> []
          end,
    Ordered = case Dir of asc -> Asc; desc -> lists:reverse(Asc) end,
    In = [C || C <- Ordered,
               From =:= undefined
                   orelse (Dir =:= asc andalso C >= From)
                   orelse (Dir =:= desc andalso C =< From)],
    {ok, case Limit of 0 -> In; _ -> lists:sublist(In, Limit) end}.

%% The key a read of P looks at: {ok, Key}, root, or none when P names
%% nothing a write could make (unresolvable, or too long for a key).
reach(M, P) ->
    case byte_size(P) =< ?MAX_PATH andalso resolve(M, P) of
        {ok, <<>>} -> root;
        {ok, K} when byte_size(K) =< ?MAX_KEY -> {ok, K};
        _ -> none
    end.

%% The first segments of the keys below K (all keys for the root),
%% unique, sorted bytewise.
children(KV, <<>>) ->
    lists:usort([hd(segs(Key)) || Key <- maps:keys(KV)]);
children(KV, K) ->
    Prefix = <<K/binary, "/">>,
    L = byte_size(Prefix),
    lists:usort([hd(segs(Rest)) || <<Pre:L/binary, Rest/binary>> <- maps:keys(KV),
                                   Pre =:= Prefix, Rest =/= <<>>]).

-spec resolve_path(model(), binary()) -> binary().
resolve_path(M, P) ->
    case byte_size(P) =< ?MAX_PATH andalso resolve(M, P) of
        {ok, R} -> R;
        _ -> P      % unresolvable, or too long to work on
    end.

%%% ---------------------------------------------------------------------
%%% writes

%% Applies write ops in order, all or nothing.  Ops are
%% {write, P, V} | {make_group, P} | {make_link, E, N} | {delete, P}
%% with P, E, N normalised binaries and V a binary.
%% Returns {ok, NewModel} | {{error, Why}, Model}.
-spec write(model(), [tuple()]) -> {ok | {error, term()}, model()}.
write(M, Ops) ->
    case check(Ops) of
        ok ->
            case apply_ops(M, Ops) of
                {ok, M2} -> {ok, M2};
                {error, _} = E -> {E, M}
            end;
        E ->
            {E, M}
    end.

%% What can be refused from the request alone, before anything is
%% applied: the first op (in order) with an empty or over-long path.
check([]) -> ok;
check([Op | T]) ->
    Paths = case Op of
                {make_link, Existing, New} -> [Existing, New];
                _ -> [element(2, Op)]
            end,
    case lists:dropwhile(fun(R) -> R =:= ok end, [path_check(P) || P <- Paths]) of
        [] -> check(T);
        [Err | _] -> Err
    end.

path_check(<<>>) -> {error, empty_path};
path_check(P) -> too_long(P).

%% The answer of the same ops in async durability: what the server can
%% tell without the store (check/1) is answered at once; an op whose key
%% path is longer than a key might name one through a link, so the
%% server waits for the port's answer; anything else is `ok' once queued
%% (a failure the port finds later changes nothing, as write/2 says).
-spec async_answer(model(), [tuple()]) -> ok | {error, term()}.
async_answer(M, Ops) ->
    case check(Ops) of
        ok ->
            Keys = [case Op of {make_link, _, N} -> N; _ -> element(2, Op) end || Op <- Ops],
            case lists:any(fun(P) -> byte_size(P) > ?MAX_KEY end, Keys) of
                true -> element(1, write(M, Ops));
                false -> ok
            end;
        E ->
            E
    end.

apply_ops(M, []) ->
    {ok, M};
apply_ops(M = #{kv := KV, format := F}, [Op | T]) ->
    Path = case Op of
               {make_link, _, N} -> N;
               _ -> element(2, Op)
           end,
    case write_key(M, Path) of
        {error, _} = Err ->
            Err;
        {ok, K} ->
            KV2 = case Op of
                      {write, _, V} -> KV#{K => written(F, V)};
                      {make_group, _} -> KV#{K => group};
                      {make_link, E, _} -> (parent_groups(F, K, KV))#{K => {link, E}};
                      {delete, _} -> maps:remove(K, KV)
                  end,
            apply_ops(M#{kv := KV2}, T)
    end.

%% hb_store_lmdb's make_link writes a group marker at every parent of
%% the link that holds nothing (its ensure_parent_groups: its list/3 lists
%% only below a marker), so in that format this store does too, at the
%% parents of the key the link lands on.  None in the tagged format.
parent_groups(hb_store_lmdb, K, KV) ->
    Segs = segs(K),
    Parents = [join(lists:sublist(Segs, N)) || N <- lists:seq(1, length(Segs) - 1)],
    maps:merge(maps:from_list([{P, group} || P <- Parents]), KV);
parent_groups(tagged, _K, KV) ->
    KV.

%% What a written value is (SPEC 2, formats).
written(hb_store_lmdb, <<"group">>) -> group;
written(hb_store_lmdb, <<"link:", T/binary>>) when T =/= <<>> -> {link, T};
written(_, V) -> {value, V}.

%% The key a write to P lands on: the parent resolved, the last segment
%% as it is.
write_key(M, P) ->
    case lists:split(length(segs(P)) - 1, segs(P)) of
        {[], [Last]} ->
            key(Last);
        {Parent, [Last]} ->
            case resolve(M, join(Parent)) of
                unresolvable -> {error, link_loop};
                {ok, <<>>} -> key(Last);
                {ok, R} -> key(<<R/binary, "/", Last/binary>>)
            end
    end.

key(K) when byte_size(K) > ?MAX_KEY -> {error, {key_too_long, byte_size(K)}};
key(K) -> {ok, K}.

%%% ---------------------------------------------------------------------
%%% the whole content, as hyper_lmdb:scan/2 reports it

-spec dump(model()) -> [{binary(), value | link | group, binary()}].
dump(#{kv := KV}) ->
    lists:sort([case E of
                    {value, V} -> {K, value, V};
                    {link, T} -> {K, link, T};
                    group -> {K, group, <<>>}
                end || {K, E} <- maps:to_list(KV)]).
