#!/bin/sh
# Training throughput, Distill vs PyTorch, same models, batch 128, same thread count, one run
# (the two run back to back so they see the same machine). Usage: sh bench/compare_pytorch.sh [BUILD]
set -eu
BUILD=${1:-build}
T=${THREADS:-2}
MODELS="cnn-t cnn-s mlp-s mobilenet-s mlp-1200"
d=$(mktemp); p=$(mktemp)
"$BUILD/bench_train" --threads "$T" --steps 30 $MODELS > "$d"
/usr/bin/python3 bench/pytorch_ref.py --mode speed --threads "$T" --models "$(echo $MODELS | tr ' ' ,)" > "$p"
head -1 "$d"; head -1 "$p"
printf '%-12s %14s %14s %8s\n' model "Distill smp/s" "PyTorch smp/s" ratio
for m in $MODELS; do
    a=$(awk -v m=$m '$1==m {print $4}' "$d"); b=$(awk -v m=$m '$1==m {print $2}' "$p")
    printf '%-12s %14s %14s %7.2fx\n' $m "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
rm -f "$d" "$p"
