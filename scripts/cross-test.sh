#!/bin/sh
# Cross-builds kdrt (runtime/ only: no libdistill, no oneDNN) and its runtime-only kernel test
# (tests/runtime/test_kernels_rt.c: NEON vs _ref, bit for bit) for aarch64 Linux with Debian's
# aarch64-linux-gnu-gcc, and runs it under qemu-aarch64-static: once for baseline ARMv8-A (NEON,
# int16 multiply-accumulate) and once for ARMv8.2-A with the dot-product extension (SDOT).
# Installs gcc-aarch64-linux-gnu and qemu-user-static with apt-get when missing.
#   scripts/cross-test.sh [build-dir]       (default build-aarch64; problems: KD_CROSS_PROBLEMS=300)
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build-aarch64}
PROBLEMS=${KD_CROSS_PROBLEMS:-300}

if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1; then
    echo "cross-test: installing gcc-aarch64-linux-gnu qemu-user-static"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static >/dev/null
fi

CFLAGS="-std=c99 -O2 -Wall -Wextra -Wshadow -Werror -pedantic"
mkdir -p "$OUT"
status=0
for arch in armv8-a armv8.2-a+dotprod; do
    tag=$(echo "$arch" | tr '.+' '__')
    exe="$OUT/test_kernels_rt_$tag"
    # shellcheck disable=SC2086
    aarch64-linux-gnu-gcc $CFLAGS -march=$arch -Iruntime/include -Itests/runtime \
        tests/runtime/test_kernels_rt.c runtime/src/*.c -static -o "$exe"
    echo "== aarch64 -march=$arch: $exe under qemu-aarch64-static"
    if ! qemu-aarch64-static -cpu max "$exe" "$PROBLEMS"; then
        status=1
    fi
done
# The same through CMake with cmake/aarch64-linux-gnu.cmake, as a user embedding kdrt would build it:
# a throw-away runtime-only project (the top-level CMakeLists.txt also needs the training side's host
# libraries), whose ctest runs the test through the toolchain's qemu emulator.
PROJ="$OUT/cmake-project"
mkdir -p "$PROJ"
cat >"$PROJ/CMakeLists.txt" <<EOC
cmake_minimum_required(VERSION 3.18)
project(kdrt_cross C)
enable_testing()
file(GLOB KDRT_SOURCES $(pwd)/runtime/src/*.c)
add_library(kdrt STATIC \${KDRT_SOURCES})
target_include_directories(kdrt PUBLIC $(pwd)/runtime/include)
target_compile_options(kdrt PRIVATE $CFLAGS)
add_executable(test_kernels_rt $(pwd)/tests/runtime/test_kernels_rt.c)
target_include_directories(test_kernels_rt PRIVATE $(pwd)/tests/runtime)
target_link_libraries(test_kernels_rt PRIVATE kdrt -static)
add_test(NAME test_kernels_rt COMMAND test_kernels_rt 100)
EOC
if cmake -S "$PROJ" -B "$PROJ/build" -DCMAKE_TOOLCHAIN_FILE="$(pwd)/cmake/aarch64-linux-gnu.cmake" \
        -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$PROJ/build" -j1 >/dev/null &&
    (cd "$PROJ/build" && ctest --output-on-failure >/dev/null); then
    echo "== cmake toolchain build (libkdrt.a + test_kernels_rt) and ctest under qemu: ok"
else
    echo "== cmake toolchain build or ctest under qemu: FAILED"
    status=1
fi
exit $status
