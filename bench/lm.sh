#!/bin/sh
# The language-model measurements of docs/LM.md, on the King James Bible (scripts/corpus.sh):
# a 4-layer teacher, then three 2-layer students on the same step budget: CE only, token-level KD
# (distill lm kd, forward KL + CE), sequence-level KD (trained on text the teacher generated);
# held-out bits/byte of each, fp32/q8/q4 bits/byte and generation tokens/s, and training step time
# against PyTorch (bench/lm_pytorch.py) on the same model and batch; then a BPE-512 student, and
# sequence-level KD mixed with the real text (T = 1 and 0.7, synthetic text once or four times).
# One thread throughout.
# Usage: bench/lm.sh   (env: DISTILL, TEXT, OUT, TSTEPS, SSTEPS, SYNTH; ~75 min with the defaults)
set -e
B=${DISTILL:-build-lm/distill}
TEXT=${TEXT:-out/kjv.txt}
OUT=${OUT:-out/lm}
TSTEPS=${TSTEPS:-2000}   # teacher steps
SSTEPS=${SSTEPS:-1000}   # steps of every student
SYNTH=${SYNTH:-500000}   # bytes of synthetic text for sequence-level KD
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
[ -f "$TEXT" ] || scripts/corpus.sh "$TEXT"
common="--text $TEXT --ctx 128 --dim 256 --heads 8 --batch 16 -j 1 --lr 1e-3 --warmup 100"
run() { # name, command...: runs it, keeps its log, prints its last line
    name=$1; shift
    echo "== $name: $*" >&2
    "$@" > "$OUT/$name.log" 2> "$OUT/$name.err" || { cat "$OUT/$name.err" >&2; exit 1; }
    tail -1 "$OUT/$name.log"
}
run teacher $B lm train $common --layers 4 --steps "$TSTEPS" -q -o "$OUT/teacher.safetensors"
run student-ce $B lm train $common --layers 2 --steps "$SSTEPS" -q -o "$OUT/student-ce.safetensors"
run student-kd $B lm kd $common --teacher "$OUT/teacher.safetensors" --layers 2 --steps "$SSTEPS" -q \
    -o "$OUT/student-kd.safetensors"
# the same, the student starting from teacher layers 0 and 2 (not the same budget: it inherits the
# teacher's training)
run student-kd-init $B lm kd $common --teacher "$OUT/teacher.safetensors" --layers 2 --steps "$SSTEPS" -q \
    --init-from-teacher -o "$OUT/student-kd-init.safetensors"
# sequence-level KD: the teacher writes a corpus (temperature 1: its own distribution), the student
# trains on it with plain CE, and is evaluated on the real held-out text
$B lm generate --teacher "$OUT/teacher.safetensors" --temperature 1 --seed 1 --tokens "$SYNTH" \
    --out "$OUT/synth.txt" -q 2> "$OUT/synth.err"
run student-seqkd $B lm train --text "$OUT/synth.txt" --holdout 0 --ctx 128 --dim 256 --heads 8 --batch 16 -j 1 \
    --lr 1e-3 --warmup 100 --layers 2 --steps "$SSTEPS" -q -o "$OUT/student-seqkd.safetensors"
# BPE-512 against bytes: the CE-only student again, the same steps, batch and context (in tokens)
run student-bpe $B lm train $common --layers 2 --steps "$SSTEPS" --tokenizer bpe --vocab 512 -q \
    -o "$OUT/student-bpe.safetensors"
# sequence-level KD mixed with the real training split (the DeepSeek-R1-distill recipe trains on
# teacher text plus real data): --mix appends the teacher's text to the training split; the
# held-out tail stays the real text's
$B lm generate --teacher "$OUT/teacher.safetensors" --temperature 0.7 --seed 1 --tokens "$SYNTH" \
    --out "$OUT/synth-t07.txt" -q 2> "$OUT/synth-t07.err"
run student-seq-t07 $B lm train --text "$OUT/synth-t07.txt" --holdout 0 --ctx 128 --dim 256 --heads 8 --batch 16 \
    -j 1 --lr 1e-3 --warmup 100 --layers 2 --steps "$SSTEPS" -q -o "$OUT/student-seq-t07.safetensors"
S="$OUT/synth.txt"
for v in "mix-t1:--mix $S" "mix-t07:--mix $OUT/synth-t07.txt" "mix-t1x4:--mix $S --mix $S --mix $S --mix $S"; do
    run "student-${v%%:*}" $B lm train $common ${v#*:} --layers 2 --steps "$SSTEPS" -q \
        -o "$OUT/student-${v%%:*}.safetensors"
done
echo
echo "| student (2 layers, $SSTEPS steps) | held-out bits/byte | train tokens/s | train bytes/s |"
echo "|---|---|---|---|"
for m in student-ce student-bpe student-seqkd student-seq-t07 student-mix-t1 student-mix-t07 student-mix-t1x4; do
    bpb=$($B lm eval -m "$OUT/$m.safetensors" --text "$TEXT" | sed 's/.*: \([0-9.]*\) bits\/byte.*/\1/')
    tps=$(sed -n 's/.*ms\/step, \([0-9]*\) tokens\/s.*/\1/p' "$OUT/$m.log")
    bps=$(sed -n 's/.*tokens\/s, \([0-9]*\) bytes\/s.*/\1/p' "$OUT/$m.log")
    echo "| $m | $bpb | $tps | ${bps:-$tps} |"
done

echo
echo "| model | layers | held-out bits/byte f32 | q8 | q4 | train tokens/s | generate tokens/s f32 | q8 | q4 |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in teacher student-ce student-kd student-kd-init student-seqkd; do
    layers=$([ $m = teacher ] && echo 4 || echo 2)
    row="| $m | $layers"
    for q in f32 q8 q4; do
        bpb=$($B lm eval -m "$OUT/$m.safetensors" --text "$TEXT" --quant $q | sed 's/.*: \([0-9.]*\) bits\/byte.*/\1/')
        row="$row | $bpb"
    done
    tps=$(sed -n 's/.*ms\/step, \([0-9]*\) tokens\/s.*/\1/p' "$OUT/$m.log")
    row="$row | $tps"
    for q in f32 q8 q4; do
        best=0
        for r in 1 2 3; do # best of three: the machine is shared
            g=$($B lm generate -m "$OUT/$m.safetensors" --prompt "And God said" --tokens 2000 --seed 1 --quant $q 2>&1 \
                >/dev/null | sed -n 's/.*s: \([0-9]*\) tokens\/s.*/\1/p')
            [ "$g" -gt "$best" ] && best=$g
        done
        row="$row | $best"
    done
    echo "$row |"
done

echo
echo "Training step time, batch 16 x 128 tokens, 1 thread (mean over 12 steps, both including the first):"
for L in 4 2; do
    ours=$($B lm train $common --layers $L --steps 12 --warmup 1 --ckpt-every 0 -q -o "$OUT/steptime.safetensors" |
           sed -n 's/.*(\([0-9.]*\) ms\/step.*/\1/p')
    torch=$(/usr/bin/python3 bench/lm_pytorch.py --layers $L --dim 256 --heads 8 --ctx 128 --batch 16 --steps 12 --threads 1)
    echo "  layers $L: distill $ours ms/step (mean of 12); PyTorch $torch"
done
rm -f "$OUT"/steptime.safetensors*
