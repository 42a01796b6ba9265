#!/bin/sh
# Builds kdrt (runtime/src/*.c; the x86 and NEON kernel files compile to nothing there) for a
# Cortex-M4 with arm-none-eabi-gcc -Os and prints arm-none-eabi-size's text/data/bss per object and
# in total. Target (issue 5): runtime text <= 24 KiB; the script fails above it.
# Installs gcc-arm-none-eabi and libnewlib-arm-none-eabi with apt-get when missing.
#   scripts/cortex-m-size.sh [build-dir]     (default build-cortex-m4)
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build-cortex-m4}
LIMIT=${KD_CORTEX_M_TEXT_LIMIT:-24576}

if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 || ! [ -d /usr/lib/arm-none-eabi/newlib ]; then
    echo "cortex-m-size: installing gcc-arm-none-eabi libnewlib-arm-none-eabi"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi >/dev/null
fi

mkdir -p "$OUT"
FLAGS="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -std=c99 -ffunction-sections -fdata-sections"
objs=""
for src in runtime/src/*.c; do
    obj="$OUT/$(basename "$src" .c).o"
    # shellcheck disable=SC2086
    arm-none-eabi-gcc $FLAGS -Wall -Wextra -Wshadow -Werror -pedantic -Iruntime/include -c "$src" -o "$obj"
    objs="$objs $obj"
done
echo "kdrt for Cortex-M4 ($FLAGS):"
# shellcheck disable=SC2086
arm-none-eabi-size -t $objs | tee "$OUT/size.txt"
text=$(awk '/TOTALS/ {print $1}' "$OUT/size.txt")
echo "runtime text: $text bytes ($(awk "BEGIN {printf \"%.1f\", $text / 1024}") KiB; target <= $((LIMIT / 1024)) KiB)"
[ "$text" -le "$LIMIT" ]
