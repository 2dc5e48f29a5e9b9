#!/usr/bin/env bash
# Runs every test stage, keeps going after a failure, and closes with one
# line "N passed, N failed" summing the stages' own counts: the last line
# it prints, also when a stage fails or hangs.  Exit status 1 if anything
# failed.  Each stage's full output is in _build/test-logs/.
#
# A stage still running after its time (TEST_STAGE_TIMEOUT seconds for
# every stage, when set; otherwise its own, below) is killed and counted
# as failed, so a hang still ends in the summary.  `run_all.sh c-unit`
# runs the C stage alone.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# C unit tests under ASan + UBSan: every program is run, each a time limit
# of its own, and each prints "== PROGRAM: N passed, N failed (exit R)"
# from its own "N passed, N failed".  A program that exits non-zero without
# a failure counted (a crash, a leak found at exit) or was not built counts
# one failure.  (`make test-c` runs them all too, without the time limit.)
if [ "${1:-}" = c-unit ]; then
  progs=()
  for c in test/c/test_*.c; do p=${c#test/c/}; progs+=("_build/c/${p%.c}"); done
  make -s -k "${progs[@]}" || echo "(some C tests did not build)"
  rc=0
  for t in "${progs[@]}"; do
    echo "== $t"
    if [ -x "$t" ]; then
      # (--foreground: left in the stage's process group, which its limit kills)
      ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        timeout --foreground -k 10 "${C_TEST_TIMEOUT:-300}" "$t" > "$t.out" 2>&1
      r=$?
      cat "$t.out"
      read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ {p = $1; f = $3} END {print p+0, f+0}' "$t.out")
    else
      r=127; p=0; f=0; echo "not built"
    fi
    if [ "$r" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "== $t: $p passed, $f failed (exit $r)"
    [ "$r" -eq 0 ] && [ "$f" -eq 0 ] || rc=1
  done
  exit $rc
fi

logs=_build/test-logs
mkdir -p "$logs"
passed=0
failed=0

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

stage() { # name seconds command...: runs it into its log, returns its status
  local name=$1 limit=${TEST_STAGE_TIMEOUT:-$2}; shift 2
  echo "==> $name"
  local start=$SECONDS
  # (stdin from /dev/null: a stage in timeout's own process group must
  # not stop on reading a terminal)
  timeout -k 30 "$limit" "$@" > "$logs/$name.log" 2>&1 < /dev/null
  local rc=$?
  local how="exit $rc"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    how="timed out after $limit s"; echo "(run_all.sh: $how)" >> "$logs/$name.log"
  fi
  echo "    $name: $how in $((SECONDS - start)) s (log: $logs/$name.log)"
  return $rc
}

# C unit tests: the per-program lines above, summed.
stage c-unit 1200 bash test/run_all.sh c-unit
rc=$?
read -r p f < <(awk '/^== .*: [0-9]+ passed, [0-9]+ failed \(exit [0-9]+\)$/ {
                       n = split($0, w, " "); p += w[n-5]; f += w[n-3] }
                     END {print p+0, f+0}' "$logs/c-unit.log")
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # a build failure, a time out
add "$p" "$f"; echo "    $p passed, $f failed"

# EUnit.
stage eunit 1800 rebar3 eunit
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
stage ct 3600 rebar3 ct
rc=$?
p=$(grep -oE 'All [0-9]+ tests passed' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
if [ -z "$p" ]; then
  f=$(grep -oE 'Failed [0-9]+ tests' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
  p=$(grep -oE 'Passed [0-9]+ tests' "$logs/ct.log" | grep -oE '[0-9]+' | tail -1)
  # ("Skipped N ... Passed N tests." and no failure line: a case skipped,
  # the disk-full one where no tmpfs can be mounted, fails nothing)
  if [ -n "$p" ] && [ -z "$f" ]; then f=0; fi
  p=${p:-0}; f=${f:-1}
else f=0; fi
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
add "$p" "$f"; echo "    $p passed, $f failed"

# libFuzzer over the request decoder and dispatcher (FUZZ_SECONDS, 60 s).
fuzz_seconds=${FUZZ_SECONDS:-60}
stage fuzz $((fuzz_seconds + 900)) env FUZZ_SECONDS="$fuzz_seconds" bash test/fuzz/run.sh
rc=$?
if [ $rc -eq 0 ]; then add 1 0; echo "    1 passed, 0 failed"; else add 0 1; echo "    0 passed, 1 failed"; fi

# The port under valgrind, and dialyzer: one test each.
if stage valgrind 900 bash test/valgrind_smoke.sh; then add 1 0; else add 0 1; fi
if stage dialyzer 1800 rebar3 dialyzer; then add 1 0; else add 0 1; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
