#!/bin/sh
# Decode throughput of the image-folder loader on real data no one here made: Fashion-MNIST written out
# as a folder of PNGs (RGB, 32x32, train/ and test/, class folders named after the classes) by
# bench/imgdir_write.py, then read by bench/imgdir_decode.c (the library's kd_dataset_load_ex) with 1
# and with 2 OpenMP threads. The first epoch decodes every file once; the second is in memory (no
# file read, no decode): that is what each later epoch of `distill train` costs. The reference is PIL
# decoding the same files (bench/imgdir_pil.py), which a PyTorch ImageFolder loader pays every epoch.
# Usage: bench/imgdir_decode.sh [N (images per split; default all: 60,000 + 10,000)] [DIR (default
#        /tmp/fashion-png[-N])] [BUILD_DIR (default build)]
set -eu
cd "$(dirname "$0")/.."
N=${1:-}
DIR=${2:-/tmp/fashion-png${N:+-$N}}
BUILD=${3:-build}
cmake --build "$BUILD" -j2 --target imgdir_decode >/dev/null
if [ ! -f "$DIR/.complete" ]; then
    rm -rf "$DIR"
    /usr/bin/python3 bench/imgdir_write.py "$DIR" $N
    touch "$DIR/.complete"
fi
# ROUNDS interleaved rounds (the machine is noisy): Distill's loader with 1 and 2 threads, then PIL
# (bench/imgdir_pil.py: what torchvision's ImageFolder does for every epoch), on the training split;
# then the test split once.
for r in $(seq 1 "${ROUNDS:-3}"); do
    echo "round $r"
    for t in 1 2; do
        printf 'OMP_NUM_THREADS=%s ' "$t"
        OMP_NUM_THREADS=$t "$BUILD/imgdir_decode" "$DIR" train | tr '\n' ' '
        echo
    done
    /usr/bin/python3 bench/imgdir_pil.py "$DIR" train
done
OMP_NUM_THREADS=2 "$BUILD/imgdir_decode" "$DIR" test
