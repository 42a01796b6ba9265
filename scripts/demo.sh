#!/bin/sh
# `make demo`: train the default teacher (cnn-t) on Fashion-MNIST, a small student (cnn-s) with
# plain cross-entropy, and the same student distilled from the teacher; then print accuracy, size
# and speed side by side.
# Short schedule by default (a few minutes on 2 cores); FULL=1 runs the full 15-epoch schedule.
# Later stages (distillation, pruning, int8, the runtime) are added as they land.
set -eu
DISTILL=${1:-build/distill}
OUT=${OUT:-out/demo}
if [ "${FULL:-0}" = 1 ]; then T_EPOCHS=15; S_EPOCHS=15; else T_EPOCHS=${T_EPOCHS:-3}; S_EPOCHS=${S_EPOCHS:-5}; fi
THREADS=${THREADS:-2}
mkdir -p "$OUT"

echo "== 1/4 teacher: cnn-t, $T_EPOCHS epochs (FULL=1 for 15) =="
"$DISTILL" train --model cnn-t --epochs "$T_EPOCHS" --translate 2 --threads "$THREADS" \
    --log "$OUT/teacher.jsonl" -o "$OUT/teacher.safetensors"
echo
echo "== 2/4 student: cnn-s, $S_EPOCHS epochs, cross-entropy only (the baseline) =="
"$DISTILL" train --model cnn-s --epochs "$S_EPOCHS" --threads "$THREADS" \
    --log "$OUT/student-ce.jsonl" -o "$OUT/student-ce.safetensors"
echo
echo "== 3/4 student: cnn-s, $S_EPOCHS epochs, distilled from the teacher (T=4, alpha=0.9) =="
"$DISTILL" kd --teacher "$OUT/teacher.safetensors" --student cnn-s --epochs "$S_EPOCHS" --threads "$THREADS" \
    --log "$OUT/student-kd.jsonl" -o "$OUT/student-kd.safetensors"
echo
echo "== 4/4 evaluation on the 10,000 test images =="
summary="$OUT/summary.txt"
printf '%-11s %9s %10s %12s %12s %14s\n' model "accuracy" "params" "file bytes" "MACs/image" "batch-1 latency" > "$summary"
for who in teacher student-ce student-kd; do
    f="$OUT/$who.safetensors"
    "$DISTILL" eval "$f" --threads "$THREADS" --latency > "$OUT/$who.eval.txt"
    acc=$(sed -n 's/.*accuracy \([0-9.]*%\).*/\1/p' "$OUT/$who.eval.txt" | head -1)
    lat=$(sed -n 's/.*batch-1 latency: median \([0-9.]* us\).*/\1/p' "$OUT/$who.eval.txt" | head -1)
    "$DISTILL" info "$f" > "$OUT/$who.info.txt"
    params=$(sed -n 's/^parameters *\([0-9]*\).*/\1/p' "$OUT/$who.info.txt")
    macs=$(sed -n 's/^MACs\/image *\([0-9]*\).*/\1/p' "$OUT/$who.info.txt")
    bytes=$(wc -c < "$f")
    printf '%-11s %9s %10s %12s %12s %14s\n' "$who" "$acc" "$params" "$bytes" "$macs" "$lat" >> "$summary"
done
cat "$summary"
echo
echo "Made, in $OUT/:"
echo "  teacher.safetensors     the cnn-t teacher   (distill info/eval/predict work on any of these)"
echo "  student-ce.safetensors  the cnn-s student trained with cross-entropy only"
echo "  student-kd.safetensors  the cnn-s student distilled from the teacher"
echo "  *.jsonl                 per-epoch training logs; *.eval.txt, *.info.txt: reports; summary.txt"
echo "Try: $DISTILL predict $OUT/teacher.safetensors --count 5"
