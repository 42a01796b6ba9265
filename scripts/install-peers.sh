#!/bin/sh
# Installs the peers that the ONNX tests and benchmarks check distill against (docs/ONNX.md), if
# missing: onnxruntime-node 1.30 from the npm registry into .peers/ort (git-ignored; its CPU
# binaries ship in the package, so --ignore-scripts; Debian's nodejs and npm first when they are
# missing and we are root), and with --torch Debian's PyTorch and ONNX (python3-torch, python3-onnx,
# libopenblas0-openmp) for the golden-fixture generators and the benchmarks (no test needs them:
# the fixtures are committed, so `make test` does not install them).
# It never fails: what it could not get is printed, and the tests that need it say SKIP.
# Usage: scripts/install-peers.sh [--torch] [DIR]   (DIR: where onnxruntime-node goes, default .peers/ort)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TORCH=0
[ "${1:-}" = --torch ] && { TORCH=1; shift; }
ORT_DIR=${1:-$ROOT/.peers/ort}
ORT_VERSION=1.30.0
missing=""

apt_install() { # packages...: install the missing ones as root; print nothing on success
    want=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
    done
    [ -z "$want" ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "distill: installing Debian packages:$want"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends $want >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq --no-install-recommends $want >/dev/null 2>&1; }
        for p in $want; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p(apt)"
        done
    else
        missing="$missing$want(apt, needs root)"
    fi
}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm

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

[ "$TORCH" = 1 ] && apt_install python3-torch python3-onnx libopenblas0-openmp
[ -n "$missing" ] && echo "distill: could not install these peers (the tests that need them are skipped):$missing"
exit 0
