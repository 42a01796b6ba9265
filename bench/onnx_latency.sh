#!/bin/sh
# Batch-1 latency of exported int8 students: kdrt (`distill bench` on the .kdm) beside onnxruntime
# (onnxruntime-node, bench/onnx_latency.js on the int8 ONNX export in both --int8-ops forms, and on
# an empty graph: the binding's floor), 1 thread each, interleaved
# (kdrt, ORT, kdrt, ORT, ...) over ROUNDS rounds (default 3) so that a change in the machine's
# load hits both; prints each one's median over the rounds' medians and their range.
# Usage: sh bench/onnx_latency.sh BUILD_DIR "NAME=INT8_MODEL ..." [OUT_DIR]
#   INT8_MODEL: an int8 model from `distill quantize -o` (or a .kdm)
#   e.g. sh bench/onnx_latency.sh build "cnn-s=runs/cnns.int8.safetensors" out/onnx
# Needs onnxruntime-node (scripts/install-peers.sh). Run on an idle machine; RUNS (default 5000)
# timed images per round and runtime.
set -eu
B=${1:?build dir}; MODELS=${2:?NAME=INT8_MODEL list}; O=${3:-out/onnx-latency}
D=$B/distill; HERE=$(dirname "$0"); ROUNDS=${ROUNDS:-3}; RUNS=${RUNS:-5000}
mkdir -p "$O"
# median and range of the numbers on stdin
stats() { sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "median %.2f us (range %.2f-%.2f)", m, v[1], v[NR]}'; }
ORTV=$(node -e "console.log(require('$(cd "$HERE/.." && pwd)/.peers/ort/node_modules/onnxruntime-node/package.json').version)" 2>/dev/null || echo '?')
# The floor: what one call into onnxruntime-node costs with no work (a graph of one Flatten), measured
# in the same rounds; a native C caller of onnxruntime does not pay most of it.
printf 'name: floor\ninput: [1, 28, 28]\nlayers:\n  - {name: f, type: flatten}\n' > "$O/floor.yaml"
$D export "$O/floor.yaml" --format onnx -o "$O/floor.onnx" >/dev/null
echo "batch-1 latency, 1 thread, $ROUNDS interleaved rounds of $RUNS images: median of the rounds' medians (range)"
echo "onnxruntime-node $ORTV: the int8 export in both forms (--int8-ops exact, qlinear); floor = an empty graph"
for nm in $MODELS; do
    n=${nm%%=*}; m=${nm#*=}
    $D export "$m" -o "$O/$n.kdm" >/dev/null
    $D export "$m" --int8-ops exact -o "$O/$n.exact.onnx" >/dev/null
    $D export "$m" --int8-ops qlinear -o "$O/$n.qlinear.onnx" >/dev/null
    : > "$O/$n.kdrt"; : > "$O/$n.exact"; : > "$O/$n.qlinear"; : > "$O/$n.floor"
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        $D bench "$O/$n.kdm" -n "$RUNS" --limit 100 | sed -n 's/.*batch-1 latency *median \([0-9.]*\) us.*/\1/p' >> "$O/$n.kdrt"
        for f in exact qlinear floor; do
            o="$O/$n.$f.onnx"; [ $f = floor ] && o="$O/floor.onnx"
            node "$HERE/onnx_latency.js" "$o" "$RUNS" | sed -n 's/^ort median \([0-9.]*\) us.*/\1/p' >> "$O/$n.$f"
        done
        r=$((r + 1))
    done
    echo "$n:"
    for f in kdrt exact qlinear floor; do printf '  %-8s %s\n' "$f" "$(stats < "$O/$n.$f")"; done
done
