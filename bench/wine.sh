#!/bin/sh
# Tabular distillation on real data no one here made: the wine table bundled in Debian's
# python3-sklearn (sklearn/datasets/data/wine_data.csv, 178 wines, 13 features, 3 classes). One fixed
# stratified split (test fraction 0.3, seed 1) is written once by bench/wine_sklearn.py, which also
# trains scikit-learn's MLPClassifier on it over 5 seeds; Distill reads the same train.csv,test.csv:
# a teacher (TEACHER, trained with cross-entropy), then the student (STUDENT) trained alone (CE) and
# distilled from the teacher (KD), 5 seeds each. Prints one table: mean, min and max test accuracy.
# Usage: sh bench/wine.sh [BUILD]      (BUILD/distill; default build)
# Environment: TEACHER (mlp-tab), STUDENT (mlp-tab: a YAML file of a smaller mlp-tab works too),
#              EPOCHS (100), SEEDS ("1 2 3 4 5"), THREADS (2), DISTILL (binary; BUILD/distill).
set -eu
BUILD=${1:-build}
D=${DISTILL:-$BUILD/distill}
TEACHER=${TEACHER:-mlp-tab}
STUDENT=${STUDENT:-mlp-tab}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-"1 2 3 4 5"}
T=${THREADS:-2}
[ -x "$D" ] || { echo "wine.sh: no Distill binary at $D" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS="$T" OPENBLAS_NUM_THREADS="$T"

/usr/bin/python3 "$(dirname "$0")/wine_sklearn.py" "$tmp" > "$tmp/sklearn.txt"
DATA="$tmp/train.csv,$tmp/test.csv"
# 124 training rows: small batches, no validation split, the tables' default (no augmentation).
COMMON="--data $DATA --val 0 --epochs $EPOCHS --batch 16 --optimizer adamw --lr 0.003 --threads $T -q"

# accuracy MODEL: its test accuracy by `distill eval` on the test file ("...: accuracy X% (..)")
accuracy() { "$D" eval "$1" --data "$DATA" --threads "$T" 2>&1 | sed -n 's/.*: accuracy \([0-9.]*\)%.*/\1/p' | head -1; }

# shellcheck disable=SC2086
"$D" train --model "$TEACHER" $COMMON --seed 1 -o "$tmp/teacher.safetensors" > "$tmp/teacher.txt" 2>&1 || {
    cat "$tmp/teacher.txt" >&2; exit 1; }
for s in $SEEDS; do
    # shellcheck disable=SC2086
    "$D" train --model "$STUDENT" $COMMON --seed "$s" -o "$tmp/ce.$s.safetensors" > "$tmp/ce.$s.txt" 2>&1 || {
        cat "$tmp/ce.$s.txt" >&2; exit 1; }
    # shellcheck disable=SC2086
    "$D" kd --teacher "$tmp/teacher.safetensors" --student "$STUDENT" $COMMON --seed "$s" \
        -o "$tmp/kd.$s.safetensors" > "$tmp/kd.$s.txt" 2>&1 || { cat "$tmp/kd.$s.txt" >&2; exit 1; }
    echo "ce $(accuracy "$tmp/ce.$s.safetensors")" >> "$tmp/acc"
    echo "kd $(accuracy "$tmp/kd.$s.safetensors")" >> "$tmp/acc"
done

n=$(echo $SEEDS | wc -w)
echo "wine (sklearn's wine_data.csv): 124 train / 54 test, stratified split seed 1; $n seeds"
echo "teacher $TEACHER: $(accuracy "$tmp/teacher.safetensors")%"
printf '%-34s %8s %8s %8s\n' "model" "mean %" "min" "max"
for k in ce kd; do
    awk -v k="$k" -v name="$STUDENT $( [ "$k" = ce ] && echo '(CE alone)' || echo '(KD from teacher)')" \
        '$1 == k { s += $2; n++; if (n == 1 || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2 }
         END { printf "%-34s %8.2f %8.2f %8.2f\n", name, s / n, lo, hi }' "$tmp/acc"
done
sed -n 's/^sklearn MLPClassifier: mean \([0-9.]*\)% (min \([0-9.]*\), max \([0-9.]*\)).*/\1 \2 \3/p' "$tmp/sklearn.txt" |
    awk '{ printf "%-34s %8.2f %8.2f %8.2f\n", "sklearn MLPClassifier (64 hidden)", $1, $2, $3 }'
