%%% A pure Erlang model of hyper_lmdb's data model and operations (SPEC
%%% sections 2-3), for the PropEr state-machine test in
%%% hyper_lmdb_prop_SUITE.  No I/O, no store: every function maps a model
%%% and a request to the answer the store must give (and the new model).
%%%
%%% The model is #{hops => MaxLinkHops, kv => #{Key => Entry}} where Key is
%%% a normalised path binary and Entry is {value, Bin} | {link, Target} |
%%% group.  The decisions it encodes, beyond SPEC's prose:
%%%  - resolve: scan the prefixes of the path from the shortest to the
%%%    whole path; at the first one whose key holds a link to T, replace
%%%    that prefix by T (T ++ rest, normalised) and start again from the
%%%    first segment.  The (MaxHops+1)-th link makes the path unresolvable.
%%%  - a write (value, group, link, delete) lands on
%%%    resolve(parent(P)) ++ "/" ++ last(P): the last segment is never
%%%    followed, so writing over a link replaces it; an unresolvable parent
%%%    answers {error, link_loop} and changes nothing.
%%%  - read/type/list of an unresolvable path: not_found / not_found /
%%%    {ok, []}; resolve of an unresolvable path: the path normalised.
%%%  - write_many: any empty path (or empty link target) -> empty_path
%%%    before anything is applied; otherwise applied in order, all or
%%%    nothing.
-module(hyper_lmdb_model).

-export([new/1, path/1, norm/1, value/1]).
-export([resolve/2, read/2, type/2, list/3, resolve_path/2, write/2, dump/1]).

-define(MAX_KEY, 511).

-type entry() :: {value, binary()} | {link, binary()} | group.
-type model() :: #{hops := non_neg_integer(), kv := #{binary() => entry()}}.
-export_type([model/0]).

%% An empty store that follows at most MaxHops links per resolution.
-spec new(non_neg_integer()) -> model().
new(MaxHops) -> #{hops => MaxHops, kv => #{}}.

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

%%% ---------------------------------------------------------------------
%%% resolution

%% {ok, ResolvedKey} | unresolvable.  P is a normalised binary.
-spec resolve(model(), binary()) -> {ok, binary()} | unresolvable.
resolve(#{kv := KV, hops := Max}, P) ->
    resolve(KV, Max, segs(P), 0).

resolve(KV, Max, Segs, Hops) ->
    case first_link(KV, Segs, <<>>) of
        none -> {ok, join(Segs)};
        {_Target, _Rest} when Hops + 1 > Max -> unresolvable;
        {Target, Rest} -> resolve(KV, Max, segs(Target) ++ Rest, Hops + 1)
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
    case resolve(M, P) of
        {ok, K} ->
            case KV of
                #{K := {value, V}} -> {ok, V};
                _ -> not_found
            end;
        unresolvable ->
            not_found
    end.

-spec type(model(), binary()) -> simple | composite | not_found.
type(M = #{kv := KV}, P) ->
    case resolve(M, P) of
        unresolvable -> not_found;
        {ok, <<>>} -> composite;
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
    case resolve(M, P) of
        unresolvable ->
            {ok, []};
        {ok, K} ->
            Dir = maps:get(direction, Opts, asc),
            From = maps:get(from, Opts, undefined),
            Limit = maps:get(limit, Opts, 0),
            Asc = children(KV, K),
            Ordered = case Dir of asc -> Asc; desc -> lists:reverse(Asc) end,
            In = [C || C <- Ordered,
                       From =:= undefined
                           orelse (Dir =:= asc andalso C >= From)
                           orelse (Dir =:= desc andalso C =< From)],
            {ok, case Limit of 0 -> In; _ -> lists:sublist(In, Limit) end}
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
    case resolve(M, P) of
        {ok, R} -> R;
        unresolvable -> P
    end.

%%% ---------------------------------------------------------------------
%%% writes

%% Applies write ops in order, all or nothing.  Ops are
%% {write, P, V} | {make_group, P} | {make_link, E, N} | {delete, P}
%% with P, E, N normalised binaries and V a binary.
%% Returns {ok, NewModel} | {{error, Why}, Model}.
-spec write(model(), [tuple()]) -> {ok | {error, term()}, model()}.
write(M, Ops) ->
    case [empty_path || Op <- Ops, empty(Op)] of
        [_ | _] -> {{error, empty_path}, M};
        [] ->
            case apply_ops(M, Ops) of
                {ok, M2} -> {ok, M2};
                {error, _} = E -> {E, M}
            end
    end.

empty({make_link, E, N}) -> E =:= <<>> orelse N =:= <<>>;
empty(Op) -> element(2, Op) =:= <<>>.

apply_ops(M, []) ->
    {ok, M};
apply_ops(M = #{kv := KV}, [Op | T]) ->
    Path = case Op of
               {make_link, _, N} -> N;
               _ -> element(2, Op)
           end,
    case write_key(M, Path) of
        {error, _} = E ->
            E;
        {ok, K} ->
            KV2 = case Op of
                      {write, _, V} -> KV#{K => {value, V}};
                      {make_group, _} -> KV#{K => group};
                      {make_link, E, _} -> KV#{K => {link, E}};
                      {delete, _} -> maps:remove(K, KV)
                  end,
            apply_ops(M#{kv := KV2}, T)
    end.

%% The key a write to P lands on: the parent resolved, the last segment
%% as it is.
write_key(_M, P) when byte_size(P) > ?MAX_KEY ->
    {error, {key_too_long, byte_size(P)}};
write_key(M, P) ->
    case lists:split(length(segs(P)) - 1, segs(P)) of
        {[], [Last]} ->
            {ok, Last};
        {Parent, [Last]} ->
            case resolve(M, join(Parent)) of
                unresolvable -> {error, link_loop};
                {ok, <<>>} -> {ok, Last};
                {ok, R} ->
                    K = <<R/binary, "/", Last/binary>>,
                    case byte_size(K) > ?MAX_KEY of
                        true -> {error, {key_too_long, byte_size(K)}};
                        false -> {ok, K}
                    end
            end
    end.

%%% ---------------------------------------------------------------------
%%% the whole content, as hyper_lmdb:scan/2 reports it

-spec dump(model()) -> [{binary(), value | link | group, binary()}].
dump(#{kv := KV}) ->
    lists:sort([case E of
                    {value, V} -> {K, value, V};
                    {link, T} -> {K, link, T};
                    group -> {K, group, <<>>}
                end || {K, E} <- maps:to_list(KV)]).
