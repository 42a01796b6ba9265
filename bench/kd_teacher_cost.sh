#!/bin/sh
# What the teacher costs a distillation step, as `distill kd` prints it (samples/s over the run's
# steps and its validation), against plain training of the same student: the teacher's outputs
# cached once (no augmentation), the fp32 teacher run on every augmented batch, and the int8
# teacher (--teacher-int8, the runtime's kernels) on every augmented batch. Interleaved rounds on
# the same machine state; prints each round and the median and range of each mode's ratio to plain
# training. The cached mode's one pass over the training set is printed by distill kd itself.
#   sh bench/kd_teacher_cost.sh BUILD TEACHER.safetensors [STUDENT]
# Environment: ROUNDS (3), STEPS (150 steps of batch 128), THREADS (2).
set -eu
BUILD=${1:?build dir}
TEACHER=${2:?teacher checkpoint}
STUDENT=${3:-cnn-s}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-150}
THREADS=${THREADS:-2}
D="$BUILD/distill"
[ -x "$D" ] || { echo "kd_teacher_cost.sh: no Distill binary at $D" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
C="-e 1 --max-steps $STEPS --val 1000 -j $THREADS -q -o $tmp/s.safetensors"
sps() { sed -n 's/^trained .* \([0-9]*\) samples\/s.*/\1/p' | tail -1; }
: > "$tmp/r"
for r in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086
    ce=$("$D" train --model "$STUDENT" --translate 2 $C 2>&1 | sps)
    # shellcheck disable=SC2086
    cached=$("$D" kd --teacher "$TEACHER" --student "$STUDENT" $C 2>&1 | tee "$tmp/cached.txt" | sps)
    # shellcheck disable=SC2086
    fp32=$("$D" kd --teacher "$TEACHER" --student "$STUDENT" --translate 2 $C 2>&1 | sps)
    # shellcheck disable=SC2086
    int8=$("$D" kd --teacher "$TEACHER" --student "$STUDENT" --translate 2 --teacher-int8 $C 2>&1 | sps)
    for v in "$ce" "$cached" "$fp32" "$int8"; do [ -n "$v" ] || { echo "kd_teacher_cost.sh: a run failed" >&2; exit 1; }; done
    echo "round $r: samples/s train $ce, kd cached $cached, kd online fp32 $fp32, kd online int8 $int8"
    echo "$ce $cached $fp32 $int8" >> "$tmp/r"
done
grep "computed once and cached" "$tmp/cached.txt" || true
for k in 2 3 4; do
    name=$(echo "x kd-cached kd-online-fp32 kd-online-int8" | cut -d' ' -f"$k")
    awk -v k="$k" '{ print $k / $1 }' "$tmp/r" | sort -n |
        awk -v n="$name" '{ v[NR] = $1 } END { printf "%s / train: median %.2f (%.2f - %.2f)\n", n, v[int((NR + 1) / 2)], v[1], v[NR] }'
done
