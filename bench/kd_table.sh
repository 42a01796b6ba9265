#!/bin/sh
# The distillation table of docs/BENCHMARKS.md: students mlp-s and cnn-s, teacher cnn-t, CE baseline
# vs each distillation method vs the best combination, 3 seeds, mean and spread, time per epoch.
#   sh bench/kd_table.sh BUILD TEACHER.safetensors [EPOCHS] [STUDENTS] [METHODS]
# e.g. sh bench/kd_table.sh build runs/cnn-t.seed2.safetensors 10 "mlp-s cnn-s"
# Every run is one line in $OUT/kd_table.tsv (student, method, epochs, seed, test acc, s/epoch);
# the summary (mean, min-max) is printed at the end. Runs already in the file are skipped, so an
# interrupted table continues where it stopped. Long: never part of the test suite.
set -eu
BUILD=${1:?build dir}
TEACHER=${2:?teacher checkpoint}
EPOCHS=${3:-10}
STUDENTS=${4:-"mlp-s cnn-s"}
METHODS=${5:-"ce hinton dkd fitnet at cosine rkd sp hinton+fitnet hinton+at"}
SEEDS=${SEEDS:-"1 2 3"}
# Response-only methods may read the teacher's logits from a .npy (distill eval TEACHER --split train
# --save-logits F) instead of computing them again in every run; same soft targets.
TEACHER_LOGITS=${TEACHER_LOGITS:-}
THREADS=${THREADS:-2}
OUT=${OUT:-out/kd}
D="$BUILD/distill"
mkdir -p "$OUT"
TSV="$OUT/kd_table.tsv"
touch "$TSV"

# The loss list of each method. Feature and relation methods X are added to cross-entropy, as in
# their papers; "hinton+X" adds X to Hinton's loss instead (the combinations).
# Layers: cnn-s pool2 (16x7x7) vs cnn-t pool2 (128x7x7); cnn-s relu2 (16x14x14) vs cnn-t relu3
# (128x14x14); penultimate (default) cnn-s flatten (784) / mlp-s relu1 (128) vs cnn-t drop (256).
feat_spec() { # student feature-method
    case "$2" in
    fitnet) [ "$1" = cnn-s ] && echo "fitnet:student=pool2,teacher=pool2" || echo "fitnet" ;;
    at) [ "$1" = cnn-s ] && echo "at:student=relu2,teacher=relu3,weight=1000" || echo SKIP ;;
    cosine) echo "cosine" ;;
    rkd) echo "rkd:distance=25,angle=50" ;;
    sp) echo "sp:weight=3000" ;;
    *) echo SKIP ;;
    esac
}
loss_args() { # student method
    case "$2" in
    hinton) echo "" ;;
    dkd) echo "--dkd-beta 8" ;;
    hinton+*) f=$(feat_spec "$1" "${2#hinton+}"); [ "$f" = SKIP ] && echo SKIP || echo "--loss hinton --loss $f" ;;
    *) f=$(feat_spec "$1" "$2"); [ "$f" = SKIP ] && echo SKIP || echo "--loss ce --loss $f" ;;
    esac
}

for s in $STUDENTS; do
    for m in $METHODS; do
        args=$(loss_args "$s" "$m")
        [ "$m" != ce ] && [ "$args" = SKIP ] && continue
        for seed in $SEEDS; do
            grep -q "^$s	$m	$EPOCHS	$seed	" "$TSV" && continue
            o="$OUT/$s.$m.e$EPOCHS.s$seed.safetensors"
            if [ "$m" = ce ]; then
                log=$("$D" train --model "$s" --epochs "$EPOCHS" --seed "$seed" -j "$THREADS" -q -o "$o" 2>&1)
                acc=$("$D" eval "$o" -j "$THREADS" | sed -n 's/.*accuracy \([0-9.]*\)%.*/\1/p' | head -1)
            else
                tflag="--teacher $TEACHER"
                case "$m" in hinton | dkd) [ -n "$TEACHER_LOGITS" ] && tflag="--teacher-logits $TEACHER_LOGITS" ;; esac
                # shellcheck disable=SC2086
                log=$("$D" kd $tflag --student "$s" --epochs "$EPOCHS" --seed "$seed" -j "$THREADS" -q \
                    $args -o "$o" 2>&1)
                acc=$(echo "$log" | sed -n 's/.*student [a-z0-9-]* \([0-9.]*\)%.*/\1/p')
            fi
            sps=$(echo "$log" | sed -n 's/.*, \([0-9]*\) samples\/s.*/\1/p' | tail -1)
            spe=$(awk -v s="$sps" 'BEGIN { printf "%.1f", (s > 0 ? 55000 / s : 0) }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$m" "$EPOCHS" "$seed" "${acc:-NA}" "$spe" | tee -a "$TSV"
            rm -f "$o" "$o.ckpt" "$o".ckpt.kd*
        done
    done
done

echo "== summary ($TSV): student method epochs | mean test accuracy (min-max) over seeds | s/epoch"
sort -k1,1 -k3,3n -k2,2 "$TSV" | awk -F'\t' '
    { k = $1 "\t" $2 "\t" $3; n[k]++; s[k] += $5; t[k] += $6
      if (!(k in lo) || $5 < lo[k]) lo[k] = $5; if (!(k in hi) || $5 > hi[k]) hi[k] = $5; order[k] = NR }
    END { for (k in n) printf "%s\t%.2f (%.2f-%.2f, n=%d)\t%.1f\n", k, s[k] / n[k], lo[k], hi[k], n[k], t[k] / n[k] }' |
    sort
