#!/bin/sh
# Fuzz the kdrt model loader (tests/fuzz/fuzz_kdm.c) with libFuzzer under ASan+UBSan for a bounded
# time. Usage: scripts/fuzz.sh [SECONDS (default 60)] [BUILD_DIR (default build-fuzz)]
# Seeds: tests/fuzz/corpus/ (valid .kdm files and interesting inputs found before). Anything that
# crashes is written to BUILD_DIR/crash-* and the script fails; add it to tests/fuzz/corpus/ once
# fixed, so test_fuzz_corpus keeps it as a regression test.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
OUT=${2:-build-fuzz}
for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || sh scripts/install-deps.sh $p
done
mkdir -p "$OUT/work"
clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iruntime/include \
    tests/fuzz/fuzz_kdm.c runtime/src/*.c -o "$OUT/fuzz_kdm"
cp tests/fuzz/corpus/* "$OUT/work/" 2>/dev/null || true
cd "$OUT"
if ./fuzz_kdm -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 work \
    > fuzz.log 2>&1; then
    grep -E "^Done|stat::(number_of_executed_units|new_units_added)" fuzz.log
    echo "fuzz: no crash in $SECS s"
else
    tail -40 fuzz.log
    echo "fuzz: FAILED (the input is in $OUT/crash-*)" >&2
    exit 1
fi
