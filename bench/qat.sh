#!/bin/sh
# Quantization-aware distillation vs post-training quantization, int8 and int4 weights, on distilled
# students. Usage: sh bench/qat.sh BUILD_DIR TEACHER.safetensors "STUDENT.safetensors ..." [OUT_DIR]
# For each student: fp32 test accuracy, PTQ int8 and int4 (distill quantize), then QAT+KD for
# 3 epochs with the teacher (distill kd --qat 8 / --qat 4), integer accuracy after each.
# TEACHER may also be a .npy of the teacher's training-set logits (--teacher-logits).
set -eu
B=${1:?build dir}; T=${2:?teacher}; S=${3:?students}; O=${4:-out/qat}
D=$B/distill
mkdir -p "$O"
case "$T" in *.npy) TA="--teacher-logits $T" ;; *) TA="--teacher $T" ;; esac
for s in $S; do
  n=$(basename "$s" .safetensors)
  for bits in 8 4; do
    $D quantize "$s" -w $bits -j ${THREADS:-2} | sed -n '1,4p'
    $D kd $TA --student "$s" --qat $bits -j ${THREADS:-2} -q ${QAT_ARGS:-} -o "$O/$n.qat$bits.safetensors" 2>&1 |
      grep -E "trained|integer test accuracy"
  done
done
