#!/bin/sh
# Data-parallel training on MPI (issue 16): what N ranks buy on this machine.
#  1. allreduce: builds bench/allreduce_time.c (mpicc -O2) and times the per-step gradient
#     MPI_Allreduce at NP ranks for every built-in model's parameter count and the LM sizes.
#  2. scaling: samples/s of `distill train -m cnn-t` and of `distill kd --no-cache` (online cnn-t
#     teacher, cnn-s student) at 1 process and at NP ranks, 1 thread each (-j 1), same global batch,
#     interleaved rounds; prints each round, the NP-rank / 1-process ratio (median and range) and
#     the allreduce's share of an NP-rank step (step time from samples/s, allreduce from part 1).
#   sh bench/mpi_scaling.sh [BUILD]          (BUILD/distill; default build)
# Environment: PART (all | allreduce | scaling; default all), NP (2), ROUNDS (3), BATCH (128),
#   TRAIN_STEPS (100), KD_STEPS (250): steps of one epoch of --limit STEPS*BATCH images (about
#   30 s at 1 process, 1 thread here), TEACHER (a cnn-t checkpoint; default: one epoch on 2,048
#   images is trained first, it need not be good), REPEATS (200 timed allreduces per size),
#   NARGS (more options for the N-rank runs only, e.g. "--bucket-kb 256" on a binary that has it).
set -eu
BUILD=${1:-build}
D="$BUILD/distill"
PART=${PART:-all}
NP=${NP:-2}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-128}
TRAIN_STEPS=${TRAIN_STEPS:-100}
KD_STEPS=${KD_STEPS:-250}
REPEATS=${REPEATS:-200}
NARGS=${NARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$D" ] || { echo "mpi_scaling.sh: no Distill binary at $D" >&2; exit 2; }
for t in mpicc mpirun; do
    command -v "$t" >/dev/null || { echo "mpi_scaling.sh: $t not found (apt-get install libopenmpi-dev openmpi-bin)" >&2; exit 2; }
done
MPIRUN="mpirun --allow-run-as-root --oversubscribe -np $NP"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# LM parameters (GPT-style, biases, tied head; docs/LM.md): 12 L d^2 + 13 L d + (vocab + ctx) d + 2 d
lm_params() { awk -v L="$1" -v d="$2" -v V="$3" -v c="$4" 'BEGIN { printf "%d", 12*L*d*d + 13*L*d + (V+c)*d + 2*d }'; }

if [ "$PART" = all ] || [ "$PART" = allreduce ]; then
    mpicc -O2 -std=c11 -Wall -Wextra "$HERE/allreduce_time.c" -o "$tmp/allreduce_time"
    # shellcheck disable=SC2046
    set -- $("$D" models | awk 'NR > 2 && $2 ~ /^[0-9]+$/ { printf "%s=%s ", $1, $2 }') \
        "lm-teacher-4L-d256=$(lm_params 4 256 256 128)" "lm-student-2L-d256=$(lm_params 2 256 256 128)"
    echo "== allreduce at $NP ranks (LM: bytes vocab 256, dim 256, 8 heads, ctx 128; teacher 4 layers, student 2)"
    $MPIRUN "$tmp/allreduce_time" -r "$REPEATS" "$@" | tee "$tmp/allreduce.txt"
    echo
fi
[ "$PART" = all ] || [ "$PART" = scaling ] || exit 0

echo "== scaling: 1 process vs $NP ranks, -j 1 each, global batch $BATCH, $ROUNDS interleaved rounds"
echo "before: $(uptime)"
top -bn1 | sed -n '7,15p'
if [ -z "${TEACHER:-}" ]; then
    TEACHER="$tmp/teacher.safetensors"
    "$D" train -m cnn-t -d fashion-mnist --limit 2048 -e 1 --val 0 -q -j 1 -o "$TEACHER" >/dev/null 2>&1 ||
        { echo "mpi_scaling.sh: training the quick teacher failed" >&2; exit 1; }
fi
C="-d fashion-mnist -e 1 -b $BATCH --val 0 -q -j 1 -o $tmp/out.safetensors"
TRAIN="train -m cnn-t --limit $((TRAIN_STEPS * BATCH))"
KD="kd --no-cache --teacher $TEACHER -s cnn-s --limit $((KD_STEPS * BATCH))"
sps() { sed -n 's/^trained .* \([0-9][0-9]*\) samples\/s.*/\1/p' | tail -1; }
run1() { rm -f "$tmp/out.safetensors.ckpt"; "$D" "$@" >"$tmp/log" 2>&1; sps <"$tmp/log"; }
# shellcheck disable=SC2086
runN() { rm -f "$tmp/out.safetensors.ckpt"; $MPIRUN "$D" "$@" $NARGS >"$tmp/log" 2>&1; sps <"$tmp/log"; }
# newer binaries print "on N ranks (P% of the time in the gradient sums, waits included)"
comm_share() { sed -n 's/.* on [0-9]* ranks (\([0-9]*%\) of the time in the gradient sums.*/, \1 in the sums/p' "$tmp/log" | tail -1; }
: >"$tmp/r"
for r in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086
    t1=$(run1 $TRAIN $C)
    # shellcheck disable=SC2086
    tn=$(runN $TRAIN $C)
    tc=$(comm_share)
    grep -q "data-parallel on $NP ranks" "$tmp/log" || { cat "$tmp/log" >&2; echo "mpi_scaling.sh: not data-parallel" >&2; exit 1; }
    # shellcheck disable=SC2086
    k1=$(run1 $KD $C)
    # shellcheck disable=SC2086
    kn=$(runN $KD $C)
    kc=$(comm_share)
    for v in "$t1" "$tn" "$k1" "$kn"; do [ -n "$v" ] || { cat "$tmp/log" >&2; echo "mpi_scaling.sh: a run failed" >&2; exit 1; }; done
    echo "round $r: train cnn-t $t1 -> $tn samples/s ($(awk -v a="$t1" -v b="$tn" 'BEGIN { printf "%.2fx", b / a }')$tc), kd online cnn-t -> cnn-s $k1 -> $kn samples/s ($(awk -v a="$k1" -v b="$kn" 'BEGIN { printf "%.2fx", b / a }')$kc)"
    echo "$t1 $tn $k1 $kn" >>"$tmp/r"
done
echo "after: $(uptime)"
top -bn1 | sed -n '7,15p'
for k in 2 4; do
    name=$(echo "x train-cnn-t x kd-online-cnn-s" | cut -d' ' -f"$k")
    awk -v k="$k" '{ print $k / $(k - 1) }' "$tmp/r" | sort -n |
        awk -v n="$name" -v np="$NP" '{ v[NR] = $1 } END { printf "%s: %d ranks / 1 process: median %.2fx (%.2f - %.2f)\n", n, np, v[int((NR + 1) / 2)], v[1], v[NR] }'
done
# the allreduce's share of an NP-rank step: median allreduce time (part 1) / (BATCH / samples/s)
if [ -s "${tmp}/allreduce.txt" ]; then
    for mk in cnn-t:2 cnn-s:4; do
        m=${mk%:*} k=${mk#*:}
        ar=$(awk -F'|' -v m="$m" '$2 == " " m " " { split($5, a, " "); print a[1] }' "$tmp/allreduce.txt")
        awk -v k="$k" '{ print $k }' "$tmp/r" | sort -n |
            awk -v ar="$ar" -v b="$BATCH" -v m="$m" -v np="$NP" '{ v[NR] = $1 } END { s = v[int((NR + 1) / 2)];
                printf "%s at %d ranks: step %.1f ms (median samples/s %d), gradient allreduce %.3f ms = %.1f%% of the step\n",
                    m, np, 1000 * b / s, s, ar / 1000, 100 * (ar / 1e6) / (b / s) }'
    done
fi
