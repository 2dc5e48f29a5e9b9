#!/usr/bin/env bash
# Builds the libFuzzer target test/fuzz/fuzz_request.c (request decoder +
# dispatcher + store, under ASan and UBSan) and runs it for FUZZ_SECONDS
# (default 60) on a copy of the committed corpus: new inputs go to
# _build/fuzz/corpus, test/fuzz/corpus is never written.
#
#   FUZZ_SECONDS=300 bash test/fuzz/run.sh      (from anywhere)
#
# Closes with one line "N passed, N failed": 1 passed when libFuzzer exited
# 0 and saved no crash, leak, timeout or OOM input; else 1 failed, after the
# path of the saved input and the command that replays it.  Exit status 0
# only on a pass.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

out=_build/fuzz
seconds=${FUZZ_SECONDS:-60}
run_id=$(date +%Y%m%d-%H%M%S)-$$
artifacts=$out/artifacts/$run_id
log=$out/fuzz-$run_id.log

# The store directories of runs that died (atexit never ran) live here.
rm -rf "$out/tmp"
mkdir -p "$out/corpus" "$artifacts" "$out/tmp" || exit 1

srcs=()
for f in port_src/*.c; do
    [ "$f" = port_src/main.c ] || srcs+=("$f")
done

echo "fuzz: building $out/fuzz_request"
if ! "${CLANG:-clang}" -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
    -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
    -Wno-missing-field-initializers \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iport_src \
    -o "$out/fuzz_request" test/fuzz/fuzz_request.c "${srcs[@]}" -llmdb; then
    echo "fuzz: build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

# Seed the working corpus from the committed one (never the other way).
cp test/fuzz/corpus/* "$out/corpus/" || exit 1

echo "fuzz: running for ${seconds}s, log in $log"
TMPDIR=$PWD/$out/tmp "$out/fuzz_request" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$out/corpus" >"$log" 2>&1
rc=$?

# Progress lines look like "#123 REDUCE cov: 1234 ft: 2345 corp: ... exec/s: 999".
grep -E '^#[0-9]+' "$log" | tail -1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"

crash=$(ls -t "$artifacts"/* 2>/dev/null | head -1)
if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
    rmdir "$artifacts" 2>/dev/null
    echo "fuzz: no crash, leak, timeout or broken invariant"
    echo "1 passed, 0 failed"
    exit 0
fi

echo "fuzz: libFuzzer exited $rc; from $log:"
# The report from its first line (sanitizer, invariant or libFuzzer error).
first=$(grep -n -m1 -E '==ERROR|runtime error|invariant broken|ERROR: libFuzzer|deadly signal' "$log" | cut -d: -f1)
if [ -n "$first" ]; then
    sed -n "$((first > 1 ? first - 1 : 1)),$((first + 30))p" "$log"
else
    grep -v 'map grown to' "$log" | tail -40
fi
grep -E '^SUMMARY' "$log"
if [ -n "$crash" ]; then
    echo "fuzz: input saved as $crash"
    echo "fuzz: reproduce with: (cd $PWD && TMPDIR=/tmp $out/fuzz_request $crash)"
else
    echo "fuzz: no input was saved"
fi
echo "0 passed, 1 failed"
exit 1
