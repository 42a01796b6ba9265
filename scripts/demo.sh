#!/bin/sh
# `make demo`: the whole path on Fashion-MNIST with `distill pipeline`: train the teacher (cnn-t),
# the student (cnn-s) on labels only as the baseline, the same student distilled from the teacher,
# then half of its channels pruned away and the smaller model fine-tuned with the teacher, then
# quantized to int8 (post-training, and quantization-aware with the teacher) and evaluated with
# integer arithmetic; ends
# with a table of accuracy, size and speed and a plot of accuracy against size.
# Short schedule by default (a few minutes on 2 cores); FULL=1 runs the full schedule of
# examples/fashion-mnist.yaml. Rerunning continues where an interrupted run stopped.
set -eu
DISTILL=${1:-build/distill}
OUT=${OUT:-out/demo}
THREADS=${THREADS:-2}
if [ "${FULL:-0}" = 1 ]; then
    T_EPOCHS=15; S_EPOCHS=10; P_EPOCHS=5; Q_EPOCHS=3
else
    T_EPOCHS=${T_EPOCHS:-3}; S_EPOCHS=${S_EPOCHS:-5}; P_EPOCHS=${P_EPOCHS:-3}; Q_EPOCHS=${Q_EPOCHS:-1}
fi
mkdir -p "$OUT"
cat > "$OUT/pipeline.yaml" <<EOF
# written by scripts/demo.sh; see examples/fashion-mnist.yaml
out: $OUT
data: fashion-mnist
threads: $THREADS
teacher: {model: cnn-t, epochs: $T_EPOCHS, translate: 2, log: $OUT/teacher.jsonl}
baseline: {model: cnn-s, epochs: $S_EPOCHS}
student: {student: cnn-s, epochs: $S_EPOCHS, log: $OUT/student.jsonl}
prune: {channels: 0.5, epochs: $P_EPOCHS}
quantize: {calib-images: 1000, method: minmax}
qat: {qat: 8, epochs: $Q_EPOCHS}
EOF
echo "distill demo: teacher $T_EPOCHS epochs, students $S_EPOCHS, pruned fine-tune $P_EPOCHS, QAT $Q_EPOCHS (FULL=1 for the full schedule)"
"$DISTILL" pipeline "$OUT/pipeline.yaml"
echo
echo "Made, in $OUT/:"
echo "  teacher.safetensors    the cnn-t teacher          (distill info/eval/predict work on any of these)"
echo "  baseline.safetensors   cnn-s trained on the labels only"
echo "  student.safetensors    cnn-s distilled from the teacher"
echo "  pruned.safetensors     the distilled student with half its channels removed, before fine-tuning"
echo "  pruned-kd.safetensors  ... fine-tuned with the teacher"
echo "  int8.safetensors       that model in int8, post-training (evaluated with the integer kernels)"
echo "  qat.int8.safetensors   ... and after quantization-aware distillation (qat.safetensors: its fp32)"
echo "  student.kdm            the deployable model for the kdrt runtime (distill bench student.kdm)"
echo "  report.md, report.tsv  the table above; accuracy_size.png: accuracy against bytes on disk"
echo "  pipeline.yaml          the run; rerun 'distill pipeline $OUT/pipeline.yaml' to continue it"
echo "Try: $DISTILL predict $OUT/pruned-kd.safetensors --count 5"
echo "     $DISTILL bench $OUT/student.kdm --verify        # the int8 model as a device runs it"
echo "     $DISTILL export $OUT/student.kdm -f c -o model.h  # ... as a C array for a microcontroller"
