#!/bin/sh
# Teachers from PyTorch via ONNX (issue 13; docs/BENCHMARKS.md "Teachers brought from PyTorch via ONNX").
#   sh bench/onnx_teachers.sh BUILD [EPOCHS] [SEEDS]
# 1. bench/onnx_teachers.py trains a ResNet-18-style and a MobileNetV2-style teacher in PyTorch on
#    Fashion-MNIST and exports them to ONNX (skipped when $OUT/NAME.onnx exists; TEACHER_EPOCHS,
#    default 3).
# 2. `distill import` each (--mean/--std of the training set, as PyTorch fed it) and `distill eval`
#    it on the 10,000 test images: its accuracy must equal PyTorch's to 0.01 points, and the script
#    counts the images whose top-1 differs from PyTorch's.
# 3. cnn-s and mobilenet-s trained on labels (CE) and distilled from each teacher (`distill kd
#    --teacher NAME.safetensors`, the imported file with its normalisation, Hinton's loss at the defaults), EPOCHS epochs
#    (default 10), each seed of SEEDS (default "1 2"). TEACHERS (default "resnet18s mobilenetv2s"). One line per run in $OUT/kd.tsv; runs already
#    there are skipped.
# Long (tens of minutes): never part of the test suite.
set -eu
BUILD=${1:?build dir}
EPOCHS=${2:-10}
SEEDS=${3:-"1 2"}
OUT=${OUT:-bench/results/onnx}
THREADS=${THREADS:-2}
TEACHERS=${TEACHERS:-"resnet18s mobilenetv2s"}
D="$BUILD/distill"
mkdir -p "$OUT"
sh scripts/install-peers.sh --torch >&2
MEAN=0.2860
STD=0.3530

for t in $TEACHERS; do
    [ -f "$OUT/$t.onnx" ] || /usr/bin/python3 bench/onnx_teachers.py --out "$OUT" --models "$t" \
        --epochs "${TEACHER_EPOCHS:-3}" --threads "$THREADS"
done

echo "== imported teachers: distill's test accuracy vs PyTorch's"
for t in $TEACHERS; do
    "$D" import "$OUT/$t.onnx" --mean $MEAN --std $STD -o "$OUT/$t.safetensors" >/dev/null
    "$D" eval "$OUT/$t.safetensors" -j "$THREADS" --save-logits "$OUT/$t.test-logits.npy" > "$OUT/$t.eval.txt"
    /usr/bin/python3 - "$OUT" "$t" <<'EOF'
import json, re, sys
import numpy as np
out, t = sys.argv[1], sys.argv[2]
ref = json.load(open(f"{out}/{t}.json"))
pred = np.load(f"{out}/{t}.test-logits.npy").argmax(1)
tp = np.load(f"{out}/{t}.pred.npy")
labels = None
import gzip
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
acc = 100.0 * (pred == labels).mean()
print(f"{t}: PyTorch {ref['test_acc']:.2f}%  distill {acc:.2f}%  difference {acc - ref['test_acc']:+.2f}  "
      f"top-1 differs on {(pred != tp).sum()} of {len(tp)} images  ({ref['params']} parameters)")
EOF
done

TSV="$OUT/kd.tsv"
touch "$TSV"
echo "== students: CE vs KD from each teacher ($EPOCHS epochs)"
for s in cnn-s mobilenet-s; do
    for seed in $SEEDS; do
        for m in ce $TEACHERS; do
            grep -q "^$s	$m	$EPOCHS	$seed	" "$TSV" && continue
            o="$OUT/$s.$m.e$EPOCHS.s$seed.safetensors"
            t0=$(date +%s)
            if [ "$m" = ce ]; then
                "$D" train -m "$s" -e "$EPOCHS" --seed "$seed" -j "$THREADS" -o "$o" > "$o.log" 2>&1
            else
                "$D" kd --teacher "$OUT/$m.safetensors" -s "$s" -e "$EPOCHS" --seed "$seed" -j "$THREADS" -o "$o" > "$o.log" 2>&1
            fi
            t1=$(date +%s)
            acc=$("$D" eval "$o" -j "$THREADS" | sed -n 's/.*accuracy[^0-9]*\([0-9.]*\)%.*/\1/p' | head -1)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$m" "$EPOCHS" "$seed" "$acc" "$((t1 - t0))" | tee -a "$TSV"
        done
    done
done
