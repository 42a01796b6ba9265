#!/bin/sh
# The image-folder path against the IDX path on the same images: Fashion-MNIST as a folder of PNGs
# (RGB, 32x32: bench/imgdir_write.py, as bench/imgdir_decode.sh writes it) and as Debian's IDX files
# (1x28x28), the same model (a built-in one takes the data's shape) trained with the same options
# and seeds. Prints one line per run and the mean of each path; the two must agree within seed noise.
# Usage: sh bench/imgdir_accuracy.sh [BUILD (default build)] [PNG_DIR (default /tmp/fashion-png)]
# Environment: MODEL (cnn-s), EPOCHS (10), SEEDS ("1 2 3"), THREADS (2), DISTILL (BUILD/distill).
set -eu
BUILD=${1:-build}
DIR=${2:-/tmp/fashion-png}
D=${DISTILL:-$BUILD/distill}
MODEL=${MODEL:-cnn-s}
EPOCHS=${EPOCHS:-10}
SEEDS=${SEEDS:-"1 2 3"}
T=${THREADS:-2}
[ -f "$DIR/.complete" ] || { /usr/bin/python3 "$(dirname "$0")/imgdir_write.py" "$DIR" && touch "$DIR/.complete"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for s in $SEEDS; do
    for src in idx png; do
        data=fashion-mnist
        [ $src = png ] && data=$DIR
        start=$(date +%s)
        "$D" train --model "$MODEL" --data "$data" --epochs "$EPOCHS" --seed "$s" --threads "$T" -q \
            -o "$tmp/$src.$s.safetensors" > "$tmp/$src.$s.log" 2>&1 || { cat "$tmp/$src.$s.log" >&2; exit 1; }
        secs=$(( $(date +%s) - start ))
        acc=$("$D" eval "$tmp/$src.$s.safetensors" --data "$data" --threads "$T" 2>&1 |
              sed -n 's/.*: accuracy \([0-9.]*\)%.*/\1/p' | head -1)
        shape=$("$D" info "$tmp/$src.$s.safetensors" 2>&1 | sed -n 's/.*input \[\([0-9, ]*\)\].*/\1/p' | head -1)
        echo "$src seed $s: test accuracy $acc%  (input [$shape], training ${secs}s)"
        echo "$src $acc" >> "$tmp/acc"
    done
done
awk '{ s[$1] += $2; n[$1]++ } END { for (k in s) printf "%s mean over %d seeds: %.2f%%\n", k, n[k], s[k] / n[k] }' "$tmp/acc" | sort
