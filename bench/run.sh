#!/bin/sh
# `make bench`: the measurements behind docs/BENCHMARKS.md. Long (about an hour on 2 cores with
# ACCURACY=1); never part of the test suite.
#   sh bench/run.sh BUILD_DIR            speed: our engine and PyTorch side by side, SGEMM peak
#   ACCURACY=1 sh bench/run.sh BUILD_DIR  also test accuracy of cnn-t (15 epochs, 3 seeds), cnn-s, mlp-s
set -eu
BUILD=${1:-build}
OUT=${OUT:-out/bench}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
echo "== machine"; (nproc; grep -m1 'model name' /proc/cpuinfo; date -u) | tee "$OUT/machine.txt"

echo "== training speed, batch 128, $THREADS threads: Distill"
"$BUILD/bench_train" --threads "$THREADS" --batch 128 --steps 30 cnn-t cnn-s mlp-s mobilenet-s mlp-1200 | tee "$OUT/distill_speed.txt"
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "== training speed, batch 128, $THREADS threads: PyTorch (same models, same data)"
    /usr/bin/python3 bench/pytorch_ref.py --mode speed --threads "$THREADS" | tee "$OUT/pytorch_speed.txt"
else
    echo "(python3-torch not installed: apt-get install python3-torch for the PyTorch side)"
fi

if [ "${ACCURACY:-0}" = 1 ]; then
    for seed in 1 2 3; do
        "$BUILD/distill" train --model cnn-t --epochs 15 --translate 2 --seed $seed --threads "$THREADS" -q \
            --log "$OUT/cnn-t.seed$seed.jsonl" -o "$OUT/cnn-t.seed$seed.safetensors"
        "$BUILD/distill" eval "$OUT/cnn-t.seed$seed.safetensors" | head -1 | tee -a "$OUT/accuracy.txt"
    done
    for model in cnn-s mlp-s; do
        for seed in 1 2 3; do
            "$BUILD/distill" train --model $model --epochs 15 --seed $seed --threads "$THREADS" -q \
                -o "$OUT/$model.seed$seed.safetensors"
            "$BUILD/distill" eval "$OUT/$model.seed$seed.safetensors" | head -1 | tee -a "$OUT/accuracy.txt"
        done
    done
fi
