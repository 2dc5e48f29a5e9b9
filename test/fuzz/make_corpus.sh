#!/usr/bin/env bash
# Regenerates test/fuzz/corpus, the seed inputs of fuzz_request.c, with
# Erlang's own term_to_binary:
#   op_*   one request frame ({packet, 4} header + term) of every operation
#          in port_src/protocol.h, with the argument variants that take
#          different paths (list from undefined | binary, asc | desc, ...);
#   seq_*  several frames in one input: the port serves them as one chunk
#          (one group commit for consecutive writes);
#   raw_*  a bare term with no length header, for the target's second use
#          of each input (the whole input as one frame payload).
# Usage: bash test/fuzz/make_corpus.sh   (needs erl; replaces the corpus)
set -euo pipefail
cd "$(dirname "$0")"
rm -rf corpus
mkdir corpus
erl -noshell -eval '
  Frame = fun(T) -> B = term_to_binary(T), <<(byte_size(B)):32, B/binary>> end,
  Put = fun(Name, Bytes) -> ok = file:write_file("corpus/" ++ Name, Bytes) end,
  Big = fun(N, C) -> binary:copy(<<C>>, N) end,
  Ops = [
    {"read", {1, read, <<"a/b">>}},
    {"read_root", {2, read, <<"//">>}},
    {"read_many", {3, read_many, [<<"a">>, <<"a/b">>, <<"">>, <<"l/x">>]}},
    {"read_many_empty", {4, read_many, []}},
    {"type", {5, type, <<"a">>}},
    {"resolve", {6, resolve, <<"l/x/y">>}},
    {"list_undefined_asc", {7, list, <<"p">>, undefined, 0, asc}},
    {"list_undefined_desc", {8, list, <<"p">>, undefined, 2, desc}},
    {"list_from_asc", {9, list, <<"p">>, <<"c">>, 0, asc}},
    {"list_from_desc", {10, list, <<"">>, <<"c-x">>, 3, desc}},
    {"list_long_path", {30, list, Big(600, $p), Big(600, $f), 1, asc}},
    {"write", {11, write, <<"a/b">>, <<"value">>}},
    {"write_empty_value", {12, write, <<"/e/">>, <<>>}},
    {"write_key_too_long", {13, write, Big(600, $k), <<"v">>}},
    {"write_large_value", {14, write, <<"big/1">>, Big(4000, $v)}},
    {"make_group", {15, make_group, <<"g">>}},
    {"make_link", {16, make_link, <<"a">>, <<"l">>}},
    {"delete", {17, delete, <<"a/b">>}},
    {"write_many", {18, write_many, [{write, <<"x">>, <<"1">>}, {make_group, <<"y">>},
                                     {make_link, <<"x">>, <<"z">>}, {delete, <<"w">>}]}},
    {"write_many_empty", {19, write_many, []}},
    {"reset", {20, reset}},
    {"sync", {21, sync}},
    {"stats", {22, stats}},
    {"ping", {23, ping}},
    {"scan", {24, scan, undefined, 0}},
    {"scan_from", {25, scan, <<"a">>, 2}},
    {"match", {26, match, [{<<"type">>, <<"t/m">>}, {<<"kind">>, <<"k">>}]}},
    {"fault_refused", {27, fault, crash_before_commit}},
    {"id_integer_ext", {100000, ping}},
    {"id_small_big", {1 bsl 60 + 5, read, <<"k">>}},
    {"bad_op", {28, frobnicate, <<"a">>}},
    {"bad_arity", {29, read, <<"a">>, <<"b">>}}],
  [Put("op_" ++ N, Frame(T)) || {N, T} <- Ops],
  Chain = [{I, make_link, <<"c", (integer_to_binary(I + 1))/binary>>,
                          <<"c", (integer_to_binary(I))/binary>>} || I <- lists:seq(1, 10)],
  Seqs = [
    {"write_read_through_link",
     [{1, write, <<"d/x">>, <<"v">>}, {2, make_link, <<"d">>, <<"l">>}, {3, read, <<"l/x">>},
      {4, write, <<"l/y">>, <<"w">>}, {5, read_many, [<<"d/y">>, <<"l/x">>]}]},
    {"link_loop",
     [{1, make_link, <<"b">>, <<"a">>}, {2, make_link, <<"a">>, <<"b">>}, {3, read, <<"a/x">>},
      {4, write, <<"a/y">>, <<"v">>}, {5, resolve, <<"a/x">>}, {6, type, <<"b">>},
      {7, list, <<"a">>, undefined, 0, asc}]},
    {"link_chain_past_max_hops",
     [{11, write, <<"c11/v">>, <<"end">>} | Chain] ++ [{12, read, <<"c1/v">>}, {13, resolve, <<"c1">>}]},
    {"list_order",
     [{1, write, <<"p/c">>, <<"1">>}, {2, write, <<"p/c/x">>, <<"2">>},
      {3, write, <<"p/c-x">>, <<"3">>}, {4, make_group, <<"p/b">>},
      {5, list, <<"p">>, <<"c">>, 2, asc}, {6, list, <<"p">>, <<"c-x">>, 1, desc},
      {7, list, <<"p">>, undefined, 0, desc}, {8, type, <<"p/c">>}]},
    {"group_commit",
     [{1, write, <<"k1">>, <<"a">>}, {2, write, <<"k2">>, <<"b">>}, {3, delete, <<"k1">>},
      {4, read, <<"k1">>}, {5, write, <<"k3">>, <<"c">>}, {6, stats}]},
    {"write_many_all_or_nothing",
     [{1, write_many, [{write, <<"m/a">>, <<"1">>}, {make_group, <<"">>}]},
      {2, read, <<"m/a">>},
      {3, write_many, [{write, <<"m/a">>, <<"1">>}, {make_link, <<"m">>, <<"n">>},
                       {write, <<"n/b">>, <<"2">>}, {delete, <<"m/a">>}]},
      {4, read_many, [<<"m/b">>, <<"n/a">>]}]},
    {"fill_map",
     [{1, write_many, [{write, <<"f/", C>>, Big(4000, C)} || C <- "abcd"]}, {2, stats}]},
    {"scan_and_match",
     [{1, make_link, <<"t/m">>, <<"id1/type">>}, {2, make_link, <<"t/m">>, <<"id2/type">>},
      {3, make_link, <<"k">>, <<"id1/kind">>}, {4, make_group, <<"t">>},
      {5, match, [{<<"type">>, <<"t/m">>}, {<<"kind">>, <<"k">>}]},
      {6, scan, undefined, 2}, {7, scan, <<"id2">>, 0}]},
    {"reset_between",
     [{1, write, <<"r">>, <<"v">>}, {2, reset}, {3, read, <<"r">>}, {4, make_group, <<"r">>},
      {5, type, <<"r">>}]},
    {"replace_link",
     [{1, write, <<"u/v">>, <<"1">>}, {2, make_link, <<"u">>, <<"q">>}, {3, read, <<"q/v">>},
      {4, write, <<"q">>, <<"plain">>}, {5, read, <<"q/v">>}, {6, delete, <<"q">>},
      {7, type, <<"q">>}]}],
  [Put("seq_" ++ N, [Frame(T) || T <- Ts]) || {N, Ts} <- Seqs],
  %% Frames the port must refuse, after a good one.
  Good = Frame({1, ping}),
  Put("seq_truncated_tail", [Good, <<0, 0, 0, 40, 131, 104, 2, 97>>]),
  Put("seq_bad_terms", [Good, <<0, 0, 0, 3, 130, 104, 0>>, <<0, 0, 0, 0>>,
                        <<0, 0, 0, 6, 131, 104, 2, 97, 7, 106>>, Frame([1, ping])]),
  Raw = [{"read", {1, read, <<"a/b">>}},
         {"write_many", {2, write_many, [{write, <<"x/y">>, <<"v">>}, {make_link, <<"x">>, <<"z">>}]}},
         {"list", {3, list, <<"x">>, <<"a">>, 5, desc}}],
  [Put("raw_" ++ N, term_to_binary(T)) || {N, T} <- Raw],
  halt().'
echo "$(ls corpus | wc -l) seed inputs in $(pwd)/corpus"
