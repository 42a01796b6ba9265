#!/bin/sh
# Batch-1 inference of the shipped int8 model (kdrt, `distill bench`) against the fp32 model in our
# training engine (`distill eval --latency`) and PyTorch fp32 on the same machine, 1 thread each.
# Usage: sh bench/runtime.sh BUILD_DIR "NAME=CHECKPOINT ..." [OUT_DIR]
#   e.g. sh bench/runtime.sh build "cnn-s=runs/cnns.safetensors mobilenet-s=runs/mbs.safetensors mlp-s=runs/mlps.safetensors"
# Each checkpoint is exported to OUT_DIR/NAME.kdm (int8, default calibration). Run on an idle machine.
set -eu
B=${1:?build dir}; MODELS=${2:?NAME=CHECKPOINT list}; O=${3:-out/runtime}
D=$B/distill
mkdir -p "$O"
names=""
for nm in $MODELS; do
    n=${nm%%=*}; ck=${nm#*=}
    names="$names${names:+,}$n"
    echo "== $n ($ck)"
    $D eval "$ck" --latency -j 1 | grep "batch-1 latency"
    $D export "$ck" -o "$O/$n.kdm" | grep -E "wrote|arena"
    $D bench "$O/$n.kdm" --verify -n ${RUNS:-20000}
done
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') fp32, 1 thread"
/usr/bin/python3 "$(dirname "$0")/pytorch_ref.py" --mode latency --threads 1 --latency-runs ${PT_RUNS:-5000} --models "$names"
