#!/bin/sh
# usage: run.sh MODE STUDENT EPOCHS "SEEDS" ARGS...
#   MODE kd: distill kd with cached teacher logits; MODE ce: distill train + eval on test
# appends one line per seed to results.tsv: mode student epochs seed args val test
D=${D:-build/distill}
R=${R:-out/kd_default}; mkdir -p $R/logs
# TEACHER="--teacher FILE" (environment) replaces the cached logits, for feature losses
MODE=$1; S=$2; E=$3; SEEDS=$4; shift 4
ARGS="$*"
for seed in $SEEDS; do
  tag=$(echo "$MODE $S $E $seed $ARGS" | tr -c 'A-Za-z0-9.=_-' '_')
  log=$R/logs/$tag.log
  o=/tmp/tune3_$S.safetensors
  if [ "$MODE" = kd ]; then
    $D kd ${TEACHER:---teacher-logits ${LOGITS:-t2_train.npy}} --student $S --epochs $E --seed $seed -j 1 -q $ARGS -o $o >$log 2>&1
    test=$(grep -o 'student [a-z-]* [0-9.]*%' $log | grep -o '[0-9.]*%' | tr -d %)
  else
    $D train --model $S --epochs $E --seed $seed -j 1 -q $ARGS -o $o >$log 2>&1
    $D eval $o -j 1 >>$log 2>&1
    test=$(grep -o 'test: accuracy [0-9.]*%' $log | grep -o '[0-9.]*%' | tr -d %)
  fi
  val=$(grep -o 'validation accuracy [0-9.]*%' $log | grep -o '[0-9.]*%' | tr -d %)
  err=$(grep -i -m1 error $log)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$MODE" "$S" "$E" "$seed" "$ARGS" "$val" "$test" "$err" | tee -a $R/results.tsv
done
