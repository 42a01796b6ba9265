#!/bin/sh
# Batch-1 latency of exported int8 students: kdrt (`distill bench` on the .kdm) beside onnxruntime
# (onnxruntime-node, bench/onnx_latency.js on the int8 ONNX export), 1 thread each, interleaved
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
printf "%-14s %-42s %-42s\n" model "kdrt (distill bench, 1 thread)" "onnxruntime-node $(node -e "console.log(require('$(cd "$HERE/.." && pwd)/.peers/ort/node_modules/onnxruntime-node/package.json').version)" 2>/dev/null || echo '?') (1 thread)"
for nm in $MODELS; do
    n=${nm%%=*}; m=${nm#*=}
    $D export "$m" -o "$O/$n.kdm" >/dev/null
    $D export "$m" -o "$O/$n.int8.onnx" >/dev/null
    : > "$O/$n.kdrt"; : > "$O/$n.ort"
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        $D bench "$O/$n.kdm" -n "$RUNS" --limit 100 | sed -n 's/.*batch-1 latency *median \([0-9.]*\) us.*/\1/p' >> "$O/$n.kdrt"
        node "$HERE/onnx_latency.js" "$O/$n.int8.onnx" "$RUNS" | sed -n 's/^ort median \([0-9.]*\) us.*/\1/p' >> "$O/$n.ort"
        r=$((r + 1))
    done
    printf "%-14s %-42s %-42s\n" "$n" "$(stats < "$O/$n.kdrt")" "$(stats < "$O/$n.ort")"
done
