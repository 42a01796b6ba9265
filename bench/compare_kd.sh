#!/bin/sh
# Distillation training throughput, Distill (`distill kd`) vs PyTorch (bench/pytorch_kd.py): teacher
# cnn-t, students cnn-s and mlp-s, online teacher with --translate 2 and cached teacher outputs, same
# recipe, batch 128, same thread count, one run (PyTorch first, then Distill, back to back).
# Usage: sh bench/compare_kd.sh [BUILD]      (BUILD/distill; default build)
# Environment: THREADS (2), STEPS timed steps (100), WARMUP PyTorch's untimed steps before them
#              (10), STUDENTS ("cnn-s mlp-s"), MODES ("online cached"), DISTILL (binary; BUILD/distill).
#
# Distill's samples/s: the CLI's own "trained ...: N samples/s" divides by the whole training loop,
# which also holds the first steps and the end-of-epoch checkpoint writes, so it is not what
# PyTorch times (it is shown in parentheses). Instead Distill runs 2 epochs of --max-steps STEPS:
# the first is the warm-up, and the second epoch's "seconds" in --log (that epoch's steps only:
# after the reshuffle, before the checkpoint write; no validation with --val 0) gives samples/s.
# Dataset and teacher loading and the teacher cache come before both epochs.
set -eu
BUILD=${1:-build}
D=${DISTILL:-$BUILD/distill}
T=${THREADS:-2}
N=${STEPS:-100}
W=${WARMUP:-10}
STUDENTS=${STUDENTS:-"cnn-s mlp-s"}
MODES=${MODES:-"online cached"}
B=128
# Fashion-MNIST, --val 0: 60,000 images, 469 steps per epoch, the last of 96 images.
if [ "$N" -gt 468 ] || [ "$N" -lt 1 ] || [ "$W" -lt 0 ]; then
    echo "compare_kd.sh: need 1 <= STEPS <= 468 (full batches of one epoch) and WARMUP >= 0" >&2
    exit 2
fi
[ -x "$D" ] || { echo "compare_kd.sh: no Distill binary at $D" >&2; exit 2; }
export OMP_NUM_THREADS="$T" OPENBLAS_NUM_THREADS="$T"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same recipe as pytorch_kd.py, spelt out (distill kd's defaults but for T, now 2; T does not change the compute).
RECIPE="-T 4 -a 0.9 --optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 5e-4 --schedule cosine
        --clip-grad 5 --batch $B --val 0 --threads $T -q"

# A teacher checkpoint: 2 steps of training, which is as good as random for a throughput test.
"$D" train --model cnn-t --epochs 1 --max-steps 2 --val 0 --threads "$T" -q -o "$tmp/t.safetensors" >/dev/null 2>&1

/usr/bin/python3 "$(dirname "$0")/pytorch_kd.py" --threads "$T" --steps "$N" --warmup "$W" --batch $B \
    --students "$(echo $STUDENTS | tr ' ' ,)" --modes "$(echo $MODES | tr ' ' ,)" > "$tmp/pt"

# distill_kd STUDENT MODE: 2 epochs of STEPS steps; prints the second epoch's samples/s
distill_kd() {
    aug=
    [ "$2" = online ] && aug="--translate 2"
    rm -f "$tmp/log.jsonl"
    # shellcheck disable=SC2086
    "$D" kd --teacher "$tmp/t.safetensors" --student "$1" --epochs 2 --max-steps "$N" $aug $RECIPE \
        --log "$tmp/log.jsonl" -o "$tmp/s.safetensors" > "$tmp/out.$1.$2" 2> "$tmp/err.$1.$2" || {
        echo "compare_kd.sh: distill kd --student $1 ($2) failed:" >&2
        cat "$tmp/err.$1.$2" >&2
        exit 1
    }
    sed -n '2s/.*"samples_per_sec": \([0-9.]*\).*/\1/p' "$tmp/log.jsonl"
}
for s in $STUDENTS; do
    for m in $MODES; do
        echo "$s $m $(distill_kd "$s" "$m")" >> "$tmp/d"
    done
done

head -1 "$tmp/pt"
echo "$("$D" --version 2>/dev/null | head -1 || echo distill), $(sed -n 's/.*, \([0-9]* threads\), GEMM .*/\1/p' "$tmp/err.$s.$m"), binary $D, loadavg $(cut -d' ' -f1 /proc/loadavg) (after the Distill runs)"
echo "$N timed steps of batch $B after $W (PyTorch) / $N (Distill: its first epoch) warm-up steps, see bench/README.md"
printf '%-8s %-7s %14s %14s %15s %12s\n' student mode "PyTorch smp/s" "Distill smp/s" "Distill/PyTorch" "(CLI smp/s)"
for s in $STUDENTS; do
    for m in $MODES; do
        p=$(awk -v s="$s" -v m="$m" '$1=="kd" && $2==s && $3==m {print $4}' "$tmp/pt")
        cli=$(sed -n 's/^trained .* \([0-9]*\) samples\/s.*/\1/p' "$tmp/out.$s.$m")
        awk -v s="$s" -v m="$m" -v p="$p" -v cli="$cli" '$1==s && $2==m {
            printf "%-8s %-7s %14s %14.0f %14.2fx %12s\n", s, m, p, $3, $3 / p, cli
        }' "$tmp/d"
    done
done
case " $MODES " in *" cached "*)
    printf 'teacher cache (cnn-t over 60000 images, batch %d): PyTorch %ss; Distill' $B \
        "$(awk '$1=="cache" {print $4}' "$tmp/pt")"
    for s in $STUDENTS; do
        printf ' %ss (%s run)' "$(sed -n 's/.*computed once and cached (\([0-9.]*\)s[,)].*/\1/p' "$tmp/err.$s.cached")" "$s"
    done
    echo
esac
