#!/bin/sh
# Hinton, Vinyals & Dean (2015), section 3 ("Preliminary experiments on MNIST"), redone on
# Fashion-MNIST with the paper's protocol:
#   - teacher: mlp-1200 (784-1200-1200-10, dropout 0.2 on the input and 0.5 on the hidden layers)
#     trained with jitter (random shifts of up to 2 pixels),
#   - student: mlp-800 (784-800-800-10) with no regularisation (no dropout, no weight decay,
#     no jitter) trained on the labels only,
#   - the same student distilled from the teacher at T = 20.
# All on the 60,000 training images (no validation hold-out), tested on the 10,000 test images.
# Prints test errors out of 10,000 like the paper's table (its MNIST figures: 67 / 146 / 74) and
# the share of the student-to-teacher error gap the distilled student closes (the paper's: 92%).
# TEACHER=FILE uses that checkpoint as the teacher instead of training mlp-1200 (the dropout MLP
# underfits Fashion-MNIST; docs/BENCHMARKS.md uses the cnn-t teacher of "Accuracy" this way).
#   sh bench/hinton_mnist.sh BUILD [TEACHER_EPOCHS] [STUDENT_EPOCHS]
set -eu
BUILD=${1:-build}
TE=${2:-30}
SE=${3:-30}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
OUT=${OUT:-out/hinton}
D="$BUILD/distill"
mkdir -p "$OUT"
errors() { # checkpoint -> test errors out of 10,000
    "$D" eval "$1" -j "$THREADS" | sed -n 's/.*(\([0-9]*\)\/\([0-9]*\)).*/\2 \1/p' | head -1 | awk '{ print $1 - $2 }'
}
TFILE=${TEACHER:-$OUT/teacher.safetensors}
[ -n "${TEACHER:-}" ] || [ -f "$OUT/teacher.safetensors" ] ||
    "$D" train --model mlp-1200 --epochs "$TE" --translate 2 --val 0 --seed "$SEED" -j "$THREADS" -q \
        -o "$OUT/teacher.safetensors"
[ -f "$OUT/student-ce.safetensors" ] ||
    "$D" train --model mlp-800 --epochs "$SE" --weight-decay 0 --val 0 --seed "$SEED" -j "$THREADS" -q \
        -o "$OUT/student-ce.safetensors"
[ -f "$OUT/student-kd.safetensors" ] ||
    "$D" kd --teacher "$TFILE" --student mlp-800 --temperature 20 --alpha 0.9 --epochs "$SE" \
        --weight-decay 0 --val 0 --seed "$SEED" -j "$THREADS" -q -o "$OUT/student-kd.safetensors"
t=$(errors "$TFILE")
c=$(errors "$OUT/student-ce.safetensors")
k=$(errors "$OUT/student-kd.safetensors")
printf '%-58s %s\n' "model (Fashion-MNIST, seed $SEED, $([ -n "${TEACHER:-}" ] || echo "teacher $TE, ")students $SE epochs)" "test errors / 10,000"
printf '%-58s %s\n' "$([ -n "${TEACHER:-}" ] && echo "teacher $TEACHER" || echo "mlp-1200 teacher, dropout + jitter")" "$t"
printf '%-58s %s\n' "mlp-800 student, no regularisation, labels only" "$c"
printf '%-58s %s\n' "mlp-800 student, distilled at T=20 (alpha 0.9)" "$k"
awk -v t="$t" -v c="$c" -v k="$k" 'BEGIN { if (c > t) printf "share of the gap closed: %.0f%% ((%d - %d) / (%d - %d))\n", 100 * (c - k) / (c - t), c, k, c, t; else print "the teacher does not beat the student: no gap to close" }'
