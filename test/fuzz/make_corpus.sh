#!/usr/bin/env bash
# Regenerates the seed corpus: real request frames of every operation in
# port_src/protocol.h, one frame per file (with its {packet,4} header) and a
# few multi-frame sequences.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf corpus && mkdir corpus
erl -noshell -eval '
  F = fun(T) -> B = term_to_binary(T), <<(byte_size(B)):32, B/binary>> end,
  Reqs = [{1, read, <<"a/b">>}, {2, read_many, [<<"a">>, <<"b/c">>]}, {3, type, <<"a">>},
          {4, resolve, <<"l/x">>}, {5, list, <<"a">>, undefined, 0, asc},
          {6, list, <<>>, <<"c-x">>, 3, desc}, {7, write, <<"a/b">>, <<"v">>},
          {8, make_group, <<"g">>}, {9, make_link, <<"a">>, <<"l">>}, {10, delete, <<"a/b">>},
          {11, write_many, [{write, <<"x">>, <<"1">>}, {make_group, <<"y">>},
                            {make_link, <<"x">>, <<"z">>}, {delete, <<"w">>}]},
          {12, reset}, {13, sync}, {14, stats}, {15, ping}, {16, scan, undefined, 10},
          {17, match, [{<<"type">>, <<"t/m">>}]}, {1 bsl 60 + 5, read, <<"k">>}],
  [ok = file:write_file("corpus/op_" ++ integer_to_list(I), F(R)) || {I, R} <- lists:zip(lists:seq(1, length(Reqs)), Reqs)],
  Seqs = [[{1, write, <<"d/x">>, <<"v">>}, {2, make_link, <<"d">>, <<"l">>}, {3, read, <<"l/x">>}],
          [{1, make_link, <<"b">>, <<"a">>}, {2, make_link, <<"a">>, <<"b">>}, {3, read, <<"a/x">>},
           {4, write, <<"a/y">>, <<"v">>}],
          [{1, write, <<"p/c">>, <<"1">>}, {2, write, <<"p/c/x">>, <<"2">>}, {3, write, <<"p/c-x">>, <<"3">>},
           {4, list, <<"p">>, <<"c">>, 2, asc}]],
  [ok = file:write_file("corpus/seq_" ++ integer_to_list(I), [F(R) || R <- S]) || {I, S} <- lists:zip(lists:seq(1, length(Seqs)), Seqs)],
  halt().'
ls corpus | wc -l
