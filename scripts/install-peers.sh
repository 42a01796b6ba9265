#!/bin/sh
# Installs the peers that the ONNX tests and benchmarks check distill against (docs/ONNX.md), if
# missing: onnxruntime-node 1.30 from the npm registry into .peers/ort (git-ignored; its CPU
# binaries ship in the package, so --ignore-scripts), and, when run as root, Debian's PyTorch and
# ONNX (python3-torch, python3-onnx, libopenblas0-openmp) for the golden-fixture generators.
# It never fails: what it could not get is printed, and the tests that need it say SKIP.
# Usage: scripts/install-peers.sh [DIR]   (DIR: where onnxruntime-node goes, default .peers/ort)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORT_DIR=${1:-$ROOT/.peers/ort}
ORT_VERSION=1.30.0
missing=""

ort_version() { # the installed onnxruntime-node's version, or nothing
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ORT_DIR/node_modules/onnxruntime-node/package.json" 2>/dev/null | head -n 1
}
if [ "$(ort_version)" != "$ORT_VERSION" ]; then
    if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
        echo "distill: installing onnxruntime-node@$ORT_VERSION into $ORT_DIR"
        mkdir -p "$ORT_DIR" &&
            npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
                "onnxruntime-node@$ORT_VERSION" >/dev/null
        [ "$(ort_version)" = "$ORT_VERSION" ] || missing="$missing onnxruntime-node@$ORT_VERSION(npm)"
    else
        missing="$missing onnxruntime-node@$ORT_VERSION(needs node and npm)"
    fi
fi

PKGS="python3-torch python3-onnx libopenblas0-openmp"
apt_missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || apt_missing="$apt_missing $p"
done
if [ -n "$apt_missing" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "distill: installing Debian packages:$apt_missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends $apt_missing >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq --no-install-recommends $apt_missing >/dev/null 2>&1; }
        for p in $apt_missing; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p(apt)"
        done
    else
        missing="$missing$apt_missing(apt, needs root)"
    fi
fi
[ -n "$missing" ] && echo "distill: could not install these peers (the tests that need them are skipped):$missing"
exit 0
