#!/bin/sh
# Installs the Debian packages Distill needs to build, test and run its demo, if any is missing.
# Usage: scripts/install-deps.sh [extra packages...]
set -e
PKGS="build-essential cmake pkg-config libdnnl-dev zlib1g-dev libyaml-dev libcjson-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev libpng-dev libjpeg-dev dataset-fashion-mnist gnuplot-nox bible-kjv libopenmpi-dev openmpi-bin $*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "distill: installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "distill: error: these packages are missing and installing them needs root:" >&2
        echo "    sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
${SUDO:-} apt-get update -qq || true
${SUDO:-} apt-get install -y -qq --no-install-recommends $missing
