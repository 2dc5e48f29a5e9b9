#!/usr/bin/env bash
# Builds the libFuzzer target and runs it for FUZZ_SECONDS (default 60) on a
# copy of the committed corpus (new inputs go to _build/fuzz/corpus).
# Closes with "N passed, N failed"; exit 0 only if nothing was found.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=_build/fuzz
mkdir -p "$out/corpus" "$out/artifacts"
srcs=$(ls port_src/*.c | grep -v main.c)
clang -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
  -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iport_src \
  -o "$out/fuzz_request" test/fuzz/fuzz_request.c $srcs -llmdb || { echo "0 passed, 1 failed"; exit 1; }
cp -n test/fuzz/corpus/* "$out/corpus/" 2>/dev/null
"$out/fuzz_request" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/" \
  "$out/corpus" 2> "$out/fuzz.log"
rc=$?
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$out/fuzz.log" | tail -3
if [ $rc -eq 0 ]; then
  echo "fuzz: no crash, no leak, no invariant broken"
  echo "1 passed, 0 failed"
  exit 0
fi
tail -40 "$out/fuzz.log"
echo "fuzz: found a problem; reproduce with: $out/fuzz_request $(ls -t $out/artifacts/* 2>/dev/null | head -1)"
echo "0 passed, 1 failed"
exit 1
