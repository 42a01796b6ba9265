#!/bin/sh
# Distillation recipes against plain training, as docs/BENCHMARKS.md "Distillation that pays off"
# reports them: for each student and seed, every recipe of RECIPES (a file of lines
# "name|train-or-kd|options", # comments) is run through the CLI as a user runs it, on
# Fashion-MNIST unless DATA says otherwise; each run is one line of $OUT/recipes.tsv (student,
# recipe, seed, epochs, test accuracy, validation accuracy, top-1 agreement with the teacher,
# seconds). Runs already in the file are skipped, so an interrupted table continues. The summary
# prints per student and recipe the mean test accuracy, its standard error, min-max, the
# difference to the CE recipe named BASE, the agreement, and the share of the teacher-minus-BASE gap
# closed ((recipe - BASE) / (teacher - BASE)).
#   sh bench/kd_recipes.sh BUILD TEACHER.safetensors RECIPES [STUDENTS]
# Environment: SEEDS ("1 2 3 4 5"), EPOCHS (10; a recipe's own --epochs wins), THREADS (2),
#   OUT (out/recipes), BASE (ce), DATA (fashion-mnist), EXTRA (options added to every run).
# Long: never part of the test suite.
set -eu
BUILD=${1:?build dir}
TEACHER=${2:?teacher checkpoint}
RECIPES=${3:?recipes file}
STUDENTS=${4:-"cnn-s mlp-s"}
SEEDS=${SEEDS:-"1 2 3 4 5"}
EPOCHS=${EPOCHS:-10}
THREADS=${THREADS:-2}
OUT=${OUT:-out/recipes}
BASE=${BASE:-ce}
DATA=${DATA:-fashion-mnist}
EXTRA=${EXTRA:-}
D="$BUILD/distill"
mkdir -p "$OUT"
TSV="$OUT/recipes.tsv"
touch "$TSV"
# the teacher's test accuracy and its predictions are the reference of the agreement
tacc=$("$D" eval "$TEACHER" --data "$DATA" -j "$THREADS" | sed -n 's/.*: accuracy \([0-9.]*\)%.*/\1/p' | head -1)

grep -v '^#' "$RECIPES" | grep -v '^ *$' > "$OUT/recipes.list"
for s in $STUDENTS; do
    while IFS='|' read -r name mode args; do
        for seed in $SEEDS; do
            grep -q "^$s	$name	$seed	" "$TSV" && continue
            o="$OUT/$(basename "$s" .yaml).$name.s$seed.safetensors"
            t0=$(date +%s.%N)
            if [ "$mode" = kd ]; then
                # shellcheck disable=SC2086
                log=$("$D" kd --teacher "$TEACHER" --student "$s" --data "$DATA" --epochs "$EPOCHS" --seed "$seed" \
                      -j "$THREADS" -q $EXTRA $args -o "$o" 2>&1) || { echo "$log" >&2; exit 1; }
                acc=$(echo "$log" | sed -n 's/.*student [^ ]* \([0-9.]*\)%.*/\1/p' | tail -1)
                agree=$(echo "$log" | sed -n 's/.*top-1 agreement \([0-9.]*\)%.*/\1/p' | tail -1)
            else
                # shellcheck disable=SC2086
                log=$("$D" train --model "$s" --data "$DATA" --epochs "$EPOCHS" --seed "$seed" -j "$THREADS" -q \
                      $EXTRA $args -o "$o" 2>&1) || { echo "$log" >&2; exit 1; }
                acc=$("$D" eval "$o" --data "$DATA" -j "$THREADS" | sed -n 's/.*: accuracy \([0-9.]*\)%.*/\1/p' | head -1)
                agree=-
            fi
            t1=$(date +%s.%N)
            val=$(echo "$log" | sed -n 's/.*validation accuracy \([0-9.]*\)%.*/\1/p' | tail -1)
            ep=$(echo "$log" | sed -n 's/^trained [^:]*: \([0-9]*\) epochs.*/\1/p' | tail -1)
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\n' "$s" "$name" "$seed" "$ep" "$acc" "${val:--}" "$agree" \
                "$(awk -v a="$t0" -v b="$t1" "BEGIN { print b - a }")" >> "$TSV"
            echo "$s $name seed $seed: test $acc% (val ${val:--}%, agreement $agree%), $ep epochs" >&2
        done
    done < "$OUT/recipes.list"
done

echo "teacher $TEACHER: test $tacc%"
printf '| student | recipe | epochs | test accuracy, mean +- s.e. (min - max) | vs %s | agreement | gap closed | s/run |\n' "$BASE"
echo '|---|---|---:|---|---:|---:|---:|---:|'
for s in $STUDENTS; do
    awk -F'\t' -v s="$s" -v base="$BASE" -v t="$tacc" '
        $1 == s { n[$2]++; sum[$2] += $5; sq[$2] += $5 * $5; ep[$2] = $4; sec[$2] += $8
                  if (!($2 in mn) || $5 < mn[$2]) mn[$2] = $5; if (!($2 in mx) || $5 > mx[$2]) mx[$2] = $5
                  if ($7 != "-") { ag[$2] += $7; nag[$2]++ }
                  if (!($2 in order)) { order[$2] = ++k; names[k] = $2 } }
        END { b = n[base] ? sum[base] / n[base] : 0
              for (i = 1; i <= k; i++) { r = names[i]; m = sum[r] / n[r]
                  v = n[r] > 1 ? (sq[r] - n[r] * m * m) / (n[r] - 1) : 0; se = sqrt(v > 0 ? v : 0) / sqrt(n[r])
                  printf "| %s | %s | %s | %.2f +- %.2f (%.2f - %.2f), n=%d | %s | %s | %s | %.0f |\n", s, r, ep[r], m,
                         se, mn[r], mx[r], n[r], b ? sprintf("%+.2f", m - b) : "-",
                         nag[r] ? sprintf("%.2f%%", ag[r] / nag[r]) : "-",
                         (b && t - b > 0 && r != base) ? sprintf("%.0f%%", 100 * (m - b) / (t - b)) : "-", sec[r] / n[r] } }' "$TSV"
done
