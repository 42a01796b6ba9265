#!/bin/sh
# Fuzz every parser of file or command-line input with libFuzzer under ASan+UBSan, each for a bounded
# time: tests/fuzz/fuzz_<format>.c for kdm (the runtime's loader), kdm_read (the training side's),
# safetensors (fp32 checkpoints), train_state (their resume path), int8 (int8 checkpoints), lm_ckpt
# (language-model checkpoints), lm_text (LM text and BPE merges), npy, idx, model_yaml, run_yaml,
# pipeline_yaml, spec (--loss terms, --init-from-teacher maps), onnx (the ONNX importer) and the data
# readers image (image decoders and folders), cifar, npz (NumPy .npz and .npy headers) and csv.
# docs/TESTING.md lists them.
# Usage: scripts/fuzz.sh [SECONDS per target (default 60)] [BUILD_DIR (default build-fuzz)]
# Builds with clang and KD_FUZZ=ON (CMake). Seeds: tests/fuzz/corpus/<format>/ (valid files, a few
# broken ones, inputs found before). Anything that crashes, leaks, hangs or allocates too much is
# written to BUILD_DIR/<format>-crash-* (or -leak-, -timeout-, -oom-) and the script fails once all
# targets ran; fix the parser, then add the input to tests/fuzz/corpus/<format>/, so
# test_fuzz_corpus (ctest) keeps it as a regression test.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
OUT=${2:-build-fuzz}
TARGETS="kdm kdm_read safetensors train_state int8 lm_ckpt lm_text npy idx model_yaml run_yaml pipeline_yaml spec onnx image cifar npz csv"
for p in clang libclang-rt-14-dev libomp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || sh scripts/install-deps.sh $p
done
# KD_WERROR=OFF: the gcc builds hold the code to -Werror; clang adds its own optimizer remarks
# (loops under `#pragma omp simd` it did not vectorize), which are not defects.
cmake -S . -B "$OUT" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKD_FUZZ=ON -DKD_NATIVE=OFF -DKD_WERROR=OFF \
    -DKD_BUILD_TESTS=OFF -DKD_BUILD_BENCH=OFF -DKD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$OUT" -j2 --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done)
failed=""
for t in $TARGETS; do
    rm -rf "$OUT/work/$t"
    mkdir -p "$OUT/work/$t"
    cp tests/fuzz/corpus/$t/* "$OUT/work/$t/"
    if (cd "$OUT" && ./fuzz_$t -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$t-" "work/$t" > "fuzz_$t.log" 2>&1); then
        echo "fuzz $t: $(grep -E '^stat::number_of_executed_units' "$OUT/fuzz_$t.log" | awk '{print $2}') inputs in $SECS s, no crash"
    else
        tail -40 "$OUT/fuzz_$t.log"
        echo "fuzz $t: FAILED (the input is in $OUT/$t-*)" >&2
        failed="$failed $t"
    fi
done
[ -z "$failed" ] || { echo "fuzz: FAILED:$failed" >&2; exit 1; }
echo "fuzz: no crash in any target ($SECS s each)"
