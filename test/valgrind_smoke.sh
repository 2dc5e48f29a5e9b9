#!/usr/bin/env bash
# The port program under valgrind: a scripted session of every request kind,
# malformed frames among them, fed on stdin.  Passes when valgrind reports
# no invalid access and no leak, the port exits 0 on EOF, and every request
# was answered exactly once.  Built without jemalloc so valgrind sees every
# allocation.  Once in each format (hb_store_lmdb's keeps its commit
# records in a shared map beside the store, port_src/marks.h).
set -euo pipefail
cd "$(dirname "$0")/.."
out=_build/valgrind
mkdir -p "$out"
srcs=$(ls port_src/*.c)
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O0 -g -Wall -Wextra -Werror \
   -Wno-missing-field-initializers -o "$out/hyper_lmdb_port" $srcs -llmdb
dir=$(mktemp -d /tmp/hyper_lmdb_vg.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# Requests as {packet,4} frames; N = how many must be answered.
erl -noshell -eval '
  Reqs = [{1, write, <<"a/b">>, <<"v">>}, {2, read, <<"a/b">>}, {3, make_group, <<"g">>},
          {4, make_link, <<"a">>, <<"l">>}, {5, read, <<"l/b">>}, {6, type, <<"l">>},
          {7, resolve, <<"l/b">>}, {8, list, <<"a">>, undefined, 0, asc},
          {9, list, <<>>, <<"b">>, 2, desc}, {10, read_many, [<<"a/b">>, <<"zz">>]},
          {11, write_many, [{write, <<"m">>, <<"1">>}, {make_group, <<"n">>},
                            {make_link, <<"m">>, <<"o">>}, {delete, <<"g">>}]},
          {12, write_many, [{write, <<"x">>, <<"1">>}, {write, <<>>, <<"2">>}]},
          {13, delete, <<"a/b">>}, {14, stats}, {15, sync}, {16, ping},
          {17, make_link, <<"y">>, <<"x1">>}, {18, make_link, <<"x1">>, <<"y">>},
          {19, read, <<"x1">>}, {20, write, binary:copy(<<"k">>, 600), <<"v">>},
          {21, bogus_op, 1}, {22, read}, {23, read, 42}, {24, write, <<"big">>, binary:copy(<<7>>, 3000000)},
          {25, read, <<"big">>}, {26, reset}, {27, read, <<"m">>}],
  Good = [term_to_binary(R) || R <- Reqs],
  Bad = [<<131, 104>>, <<1, 2, 3>>, <<131, 104, 2, 97, 99, 119, 200>>, <<131, 109, 255, 255, 255, 255>>],
  Frames = [<<(byte_size(F)):32, F/binary>> || F <- Good ++ Bad],
  ok = file:write_file("'"$out"'/frames.bin", Frames),
  ok = file:write_file("'"$out"'/expect", integer_to_list(length(Frames) + 1)),
  halt().'

for format in tagged hb_store_lmdb; do
  set +e
  valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 "$out/hyper_lmdb_port" --dir "$dir/$format" --format "$format" --map-size 1048576 \
    < "$out/frames.bin" > "$out/replies.bin" 2> "$out/valgrind.log"
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    echo "valgrind smoke ($format): port exited $rc"; cat "$out/valgrind.log"; exit 1
  fi
  if grep -q "==[0-9]*==" "$out/valgrind.log"; then
    echo "valgrind smoke ($format): valgrind reported problems"; cat "$out/valgrind.log"; exit 1
  fi
  erl -noshell -eval '
    {ok, B} = file:read_file("'"$out"'/replies.bin"),
    {ok, E} = file:read_file("'"$out"'/expect"),
    %% (an empty frame is a wake-up call, port_src/protocol.h: no reply)
    Split = fun F(<<0:32, R/binary>>, Acc) -> F(R, Acc);
                F(<<L:32, T:L/binary, R/binary>>, Acc) -> F(R, [binary_to_term(T) | Acc]);
                F(<<>>, Acc) -> lists:reverse(Acc) end,
    Replies = Split(B, []),
    Want = binary_to_integer(E),
    Ids = lists:sort([I || {I, _} <- Replies]),
    Check = [{length(Replies), Want},
             {lists:keyfind(2, 1, Replies), {2, {ok, <<"v">>}}},
             {lists:keyfind(5, 1, Replies), {5, {ok, <<"v">>}}},
             {lists:keyfind(19, 1, Replies), {19, not_found}},
             {lists:keyfind(20, 1, Replies), {20, {error, {key_too_long, 600}}}},
             {lists:keyfind(21, 1, Replies), {21, {error, {bad_request, unknown_op}}}},
             {lists:keyfind(27, 1, Replies), {27, not_found}},
             {[I || I <- Ids, I >= 1, I =< 27], lists:seq(1, 27)},
             {lists:keyfind(99, 1, Replies), {99, {error, {bad_request, bad_op}}}}],
    case [C || {A, Bx} = C <- Check, A =/= Bx] of
        [] -> io:format("valgrind smoke ('"$format"'): ~b replies, no errors, no leaks~n", [length(Replies)]), halt(0);
        Bad -> io:format("valgrind smoke ('"$format"'): wrong replies ~p~n", [Bad]), halt(1)
    end.'
done
