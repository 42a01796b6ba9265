#!/bin/sh
# The example firmware (examples/firmware/) with a model in flash, built for a Cortex-M4 and run on
# qemu-system-arm's Arm MPS2 AN386 board, its output checked byte for byte against the host:
#   1. `distill export MODEL -o model_kdm.h` (the model as a const array, MODEL_KDM_ARENA_SIZE),
#      and the first N Fashion-MNIST test images as test_images.h (examples/firmware/gen_images.c);
#   2. kdrt + main.c + startup.c built with arm-none-eabi-gcc -mcpu=cortex-m4 -Os, and a size report
#      (text/data/bss, and how much of it is the model array, the test images, the runtime, ...);
#   3. the firmware run under qemu-system-arm -M mps2-an386 -semihosting (with a timeout);
#   4. the same main.c built for the host (stdio instead of semihosting; the host's dispatched
#      AVX2 / AVX-512 kernels instead of the device's reference ones) and run on the same images:
#      the predicted classes and int8 logits must be identical (diff), else the script fails;
#   5. `distill bench --verify` on the same images: the host runtime's int8 logits equal the
#      training side's integer evaluation (so all three agree).
# Installs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm with apt-get when missing.
#
#   scripts/firmware.sh [MODEL] [build-dir]
#     MODEL      a .kdm, an int8 model (distill quantize -o) or an fp32 checkpoint / built-in model;
#                default cnn-s: the zoo's untrained cnn-s calibrated on 100 training images (as
#                CMakeLists.txt does for examples/classify), so the predictions are not meaningful
#                but still must match the host's
#     build-dir  default build-firmware
#   Environment: DISTILL (the distill binary; default build/distill or build-test/distill, else
#   built into build-dir/host), KD_FW_IMAGES (N, default 20), KD_FW_DATA (a directory with
#   t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, default
#   /usr/share/datasets/fashion-mnist), KD_FW_TIMEOUT (seconds for qemu, default 120).
set -eu
cd "$(dirname "$0")/.."
MODEL=${1:-cnn-s}
OUT=${2:-build-firmware}
N=${KD_FW_IMAGES:-20}
DATA=${KD_FW_DATA:-/usr/share/datasets/fashion-mnist}
TIMEOUT=${KD_FW_TIMEOUT:-120}
FW=examples/firmware

need=""
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need="$need gcc-arm-none-eabi"
[ -d /usr/lib/arm-none-eabi/newlib ] || need="$need libnewlib-arm-none-eabi"
command -v qemu-system-arm >/dev/null 2>&1 || need="$need qemu-system-arm"
if [ -n "$need" ]; then
    echo "firmware: installing$need"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

mkdir -p "$OUT/kdrt" "$OUT/gen"
OUT_ABS=$(cd "$OUT" && pwd)

# ---- 1. the generated headers
if [ -z "${DISTILL:-}" ]; then
    for d in build/distill build-test/distill; do
        if [ -x "$d" ]; then DISTILL=$d; break; fi
    done
fi
if [ -z "${DISTILL:-}" ]; then
    echo "firmware: building distill into $OUT/host"
    cmake -S . -B "$OUT/host" -DCMAKE_BUILD_TYPE=Release -DKD_BUILD_TESTS=OFF -DKD_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$OUT/host" --target distill_cli -j "${JOBS:-1}" >/dev/null
    DISTILL=$OUT/host/distill
fi
case "$MODEL" in
*.kdm | *.int8.safetensors) CALIB="" ;;
*) CALIB="-n 100 -j 1" ;; # an fp32 model is quantized here, calibrated as CMakeLists.txt does
esac
# the .kdm first (the training side checks it in step 5), then its C header: the same bytes
# shellcheck disable=SC2086
"$DISTILL" export "$MODEL" $CALIB -o "$OUT/gen/model.kdm"
"$DISTILL" export "$OUT/gen/model.kdm" -o "$OUT/gen/model_kdm.h" >/dev/null

cc -std=c99 -O2 -Wall -Wextra -Werror -o "$OUT/gen_images" "$FW/gen_images.c" -lz
"$OUT/gen_images" "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" "$N" "$OUT/gen/test_images.h"

# ---- 2. the firmware
FLAGS="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -std=c99 -ffunction-sections -fdata-sections"
WARN="-Wall -Wextra -Wshadow -Werror -pedantic"
objs=""
for src in runtime/src/*.c; do
    obj="$OUT/kdrt/$(basename "$src" .c).o"
    # shellcheck disable=SC2086
    arm-none-eabi-gcc $FLAGS $WARN -Iruntime/include -c "$src" -o "$obj"
    objs="$objs $obj"
done
for src in main startup; do
    # shellcheck disable=SC2086
    arm-none-eabi-gcc $FLAGS $WARN -Iruntime/include -I"$OUT/gen" -I"$FW" -c "$FW/$src.c" -o "$OUT/$src.o"
    objs="$objs $OUT/$src.o"
done
# shellcheck disable=SC2086
arm-none-eabi-gcc $FLAGS -nostartfiles --specs=nano.specs -T "$FW/link.ld" -Wl,--gc-sections \
    -Wl,-Map="$OUT/fw.map" -o "$OUT/fw.elf" $objs

echo
echo "firmware for Cortex-M4 ($FLAGS; newlib-nano for memcpy/memset):"
arm-none-eabi-size "$OUT/fw.elf"
# Each input section of the link map, by what it holds: text (flash: code, constants, the vector
# table), data (flash and RAM), bss (RAM: the arena, buffers) and the stack (RAM, reserved).
awk '
function hex(s,   i, v) {
    v = 0; s = tolower(s); sub(/^0x/, "", s)
    for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return v
}
function add(sec, size, file,   g, r) {
    if (outsec == ".text" || outsec == ".ARM.exidx") r = "text"
    else if (outsec == ".data") r = "data"
    else if (outsec == ".bss") r = "bss"
    else if (outsec == ".stack") { stack += size; return }
    else return
    if (sec ~ /^\.rodata\.model_kdm/) g = "model"
    else if (sec ~ /^\.rodata\.test_(images|labels)/) g = "images"
    else if (sec ~ /^\.bss\.arena/) g = "arena"
    else if (file ~ /\/kdrt\/[^\/]*\.o$/) g = "runtime"
    else if (file ~ /\/(main|startup)\.o$/) g = "app"
    else if (file ~ /libgcc\.a\(/) g = "libgcc"
    else if (file ~ /\.a\(/) g = "libc"
    else g = "other"
    sz[g, r] += size; tot[r] += size
}
/^Linker script and memory map/ { on = 1; next }
!on { next }
/^\.[A-Za-z_]/ { outsec = $1; pending = ""; next }
pending != "" && /^ +0x/ && NF >= 3 && $2 ~ /^0x/ { add(pending, hex($2), $3); pending = ""; next }
/^ [^ ]/ && NF == 1 && ($1 ~ /^\./ || $1 == "COMMON") { pending = $1; next }
/^ [^ ]/ && NF >= 4 && $2 ~ /^0x/ && $3 ~ /^0x/ { add($1, hex($3), $4); next }
/^ \*fill\*/ && NF >= 3 { add("*fill*", hex($3), "fill"); next }
END {
    n = split("model images runtime libgcc libc app other arena", gs, " ")
    split("the model array (model_kdm, read in place)|the test images (test_images.h)|kdrt (runtime/src)|libgcc (soft double, for kdrt)|newlib-nano (memcpy, memset, memcmp)|main.c + startup.c|alignment padding|the arena (MODEL_KDM_ARENA_SIZE)", names, "|")
    printf "%-44s %7s %7s %7s\n", "of which", "text", "data", "bss"
    for (i = 1; i <= n; i++) {
        g = gs[i]
        if (sz[g, "text"] + sz[g, "data"] + sz[g, "bss"] == 0) continue
        printf "  %-42s %7d %7d %7d\n", names[i], sz[g, "text"], sz[g, "data"], sz[g, "bss"]
    }
    printf "  %-42s %7d %7d %7d\n", "total (the stack not included)", tot["text"], tot["data"], tot["bss"]
    printf "flash: %d bytes (text + data); RAM: %d bytes (data + bss) + %d bytes of stack reserved\n",
        tot["text"] + tot["data"], tot["data"] + tot["bss"], stack
    printf "flash without the test images: %d bytes (model %d + code %d)\n",
        tot["text"] + tot["data"] - sz["images", "text"], sz["model", "text"],
        tot["text"] + tot["data"] - sz["images", "text"] - sz["model", "text"]
}' "$OUT/fw.map" | tee "$OUT/size.txt"
# qemu's "flash" is RAM (a write would go unnoticed): check where the linker put the const arrays
for sym in model_kdm test_images; do
    addr=$(arm-none-eabi-nm "$OUT/fw.elf" | awk -v s="$sym" '$3 == s { print $1 }')
    echo "$sym at 0x$addr"
    case "$addr" in
    00[0-3]?????) ;;
    *) echo "firmware: FAILED: $sym is not in flash (0x00000000-0x003fffff)" >&2; exit 1 ;;
    esac
done

# ---- 3. the emulated Cortex-M4
echo
echo "qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel $OUT/fw.elf  (timeout ${TIMEOUT}s)"
rc=0
# (qemu writes the semihosting console to its stderr when no chardev is given)
timeout "$TIMEOUT" qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel "$OUT/fw.elf" \
    </dev/null >"$OUT/qemu.raw" 2>&1 || rc=$?
tr -d '\r' <"$OUT/qemu.raw" >"$OUT/qemu.out"
cat "$OUT/qemu.out"
if [ "$rc" -ne 0 ]; then
    echo "firmware: FAILED: qemu exited with status $rc$([ "$rc" -eq 124 ] && echo " (timeout)")" >&2
    exit 1
fi
# the header's arena size for this architecture must be what the runtime asks for, exactly
awk '/^# arena: / { found = 1; if ($4 != $7) bad = 1 } END { exit !found || bad }' "$OUT/qemu.out" ||
    { echo "firmware: FAILED: MODEL_KDM_ARENA_SIZE is not kdrt_arena_size on the device" >&2; exit 1; }

# ---- 4. the host, same main.c
# shellcheck disable=SC2086
cc -std=c99 -O2 $WARN -Iruntime/include -I"$OUT/gen" -I"$FW" -o "$OUT/fw-host" \
    "$FW/main.c" "$FW/host_io.c" runtime/src/*.c
"$OUT/fw-host" >"$OUT/host.out"
grep -v '^#' "$OUT/qemu.out" >"$OUT/qemu.cmp" || true
grep -v '^#' "$OUT/host.out" >"$OUT/host.cmp" || true
if ! grep -q '^correct ' "$OUT/qemu.cmp" || ! diff -u "$OUT/host.cmp" "$OUT/qemu.cmp"; then
    echo "firmware: FAILED: the emulated Cortex-M4 and the host disagree ($OUT_ABS/host.out, $OUT_ABS/qemu.out)" >&2
    exit 1
fi
images=$(grep -c '^image ' "$OUT/qemu.cmp")
echo
echo "firmware: the Cortex-M4 (qemu, reference kernels) and the host runtime (dispatched kernels) agree on $images/$N images: same classes, same int8 logits"

# ---- 5. and the host runtime agrees with the training side's integer evaluation on those images
"$DISTILL" bench "$OUT/gen/model.kdm" -d "$DATA" --limit "$N" -n 10 --verify >"$OUT/bench.out" ||
    { cat "$OUT/bench.out"; echo "firmware: FAILED: distill bench --verify" >&2; exit 1; }
grep -E 'accuracy|verify' "$OUT/bench.out" | sed 's/^ */distill bench: /'
