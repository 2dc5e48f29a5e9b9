#!/usr/bin/env bash
# Runs every test stage, keeps going after a failure, and closes with one
# line "N passed, N failed" summing the stages' own counts.  Exit status 1
# if anything failed.  Each stage's full output is in _build/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=_build/test-logs
mkdir -p "$logs"
passed=0
failed=0

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

stage() { # name command...: runs it, tees the log, returns its status
  local name=$1; shift
  echo "==> $name"
  local start=$SECONDS
  "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  echo "    $name: exit $rc in $((SECONDS - start)) s (log: $logs/$name.log)"
  return $rc
}

# C unit tests under ASan + UBSan: each program prints "N passed, N failed".
stage c-unit make -s test-c
rc=$?
read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ {p += $1; f += $3} END {print p+0, f+0}' "$logs/c-unit.log")
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # a crash or build failure
add "$p" "$f"; echo "    $p passed, $f failed"

# EUnit.
stage eunit rebar3 eunit
rc=$?
p=$(grep -oE 'All [0-9]+ tests passed' "$logs/eunit.log" | grep -oE '[0-9]+' | tail -1)
if [ -z "$p" ]; then
  line=$(grep -E 'Failed: [0-9]+\.' "$logs/eunit.log" | tail -1)
  f=$(echo "$line" | grep -oE 'Failed: [0-9]+' | grep -oE '[0-9]+'); p=$(echo "$line" | grep -oE 'Passed: [0-9]+' | grep -oE '[0-9]+')
  p=${p:-0}; f=${f:-1}
else f=0; fi
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
add "$p" "$f"; echo "    $p passed, $f failed"

# Common Test.
stage ct rebar3 ct
rc=$?
p=$(grep -oE 'All [0-9]+ tests passed' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
if [ -z "$p" ]; then
  f=$(grep -oE 'Failed [0-9]+ tests' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
  p=$(grep -oE 'Passed [0-9]+ tests' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
  p=${p:-0}; f=${f:-1}
else f=0; fi
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
add "$p" "$f"; echo "    $p passed, $f failed"

# libFuzzer over the request decoder and dispatcher (FUZZ_SECONDS, 60 s).
stage fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-60}" bash test/fuzz/run.sh
rc=$?
if [ $rc -eq 0 ]; then add 1 0; echo "    1 passed, 0 failed"; else add 0 1; echo "    0 passed, 1 failed"; fi

# The port under valgrind, and dialyzer: one test each.
if stage valgrind bash test/valgrind_smoke.sh; then add 1 0; else add 0 1; fi
if stage dialyzer rebar3 dialyzer; then add 1 0; else add 0 1; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
