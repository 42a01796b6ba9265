#!/usr/bin/env bash
# Hostile-input and fault campaign against the `distill` CLI (issue 12's "Done means").
# Usage: scripts/hostile.sh [--quick] BUILD_DIR [WORKDIR (default /tmp/hostile)]
#   HOSTILE_SEED=N (default 12) picks the flip positions; the same seed and binary give the same
#   cases. --quick: 2 flips, 2 truncations and 2 huge fields per type, a quarter of the wrong-kind
#   pairs, no pipeline mutations; outputs at a FIFO, a directory, /dev/full and a full disk only.
#
# It writes small valid files of every type the CLI reads, with BUILD_DIR/distill itself on tiny
# data (the first 600/200 Fashion-MNIST images, 1 epoch): fp32 checkpoints (mlp-s, cnn-s), a
# training state (.ckpt), an int8 checkpoint, a .kdm, model/run/pipeline YAML, .npy teacher
# logits, IDX and IDX.gz images and labels, LM text, LM checkpoints (bytes, BPE) and an LM
# training state. Each input type is then fed, mutated, to a command that reads it:
#   empty; truncated at several points; single-byte flips at seeded random positions; huge or
#   negative numeric fields (dimensions 2^31, 2^63, -1, offsets past the end, header lengths,
#   deep nesting); another type's valid file (wrong kind); a directory; a FIFO; /dev/null.
# And every output option is pointed at a FIFO, a directory, /dev/full (root only; afterwards
# /dev/full must still be a character device, it is restored if not), a full disk (a small
# tmpfs, root only; else "skipped") and a read-only directory, each holding a good file first;
# and an output path naming the command's own input (eval --save-logits, kd, quantize, lm generate).
#
# The oracle, per run (timeout 20 s, then KILL):
#   crash      signal, exit >= 128, or a sanitizer / glibc heap report on stderr
#   hang       the timeout fired
#   exit0-fail exit 0 where a failure is expected (below), or exit 0 with NaN/inf in the output
#   lost-file  a good file that was at an output path (or /dev/full, a FIFO, a directory) is
#              changed or gone after a run that failed, or an input is changed by any run
#   valid-failed  the unmutated file's run failed (the campaign or the build is broken)
#   no-name    refused (good) but stderr does not name the file the case is about
#   litter     refused (good) but a temporary file was left beside the output
#   rejected   refused with the file named (good)
#   same       exit 0 and the same normalised output as the unmutated file (harmless mutation)
#   valid      exit 0 on a mutation that is semantically valid and a finite result (good)
#   review     exit 0 with a different result after a printable text change that may be valid
#              (a YAML or JSON digit, letter or white space): listed for a human, not a failure
# Which mutations are semantically valid: containers without a checksum carry raw numbers after
# their header (safetensors after 8 + header length, .npy after its header, raw IDX pixels after
# 16 bytes, LM text everywhere): a flip there is a different but valid model/data set, so exit 0
# is fine if the result is finite. An IDX label flipped above 9 is not (a 10-class model). A flip
# in a header, in gzip data (CRC) or anywhere in a .kdm (CRC) must be refused unless the result is
# the same. Everything else (empty, truncated, huge, wrong kind, directory, FIFO) must be refused.
#
# Prints a table of counts per type and category, writes every failure (category, type, case and
# the command line, run in WORKDIR/run) to WORKDIR/failures.txt and exits 1 if any crash, hang,
# exit0-fail, lost-file or valid-failed remains. Needs bash, coreutils, gzip and (for the mounts)
# util-linux.
set -u
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
[ $# -ge 1 ] || { echo "usage: scripts/hostile.sh [--quick] BUILD_DIR [WORKDIR]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
W=${2:-/tmp/hostile}
SEED=${HOSTILE_SEED:-12}
FM=${KD_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[ -x "$BUILD/distill" ] || { echo "hostile: no $BUILD/distill" >&2; exit 2; }
[ -f "$FM/train-images-idx3-ubyte.gz" ] || { echo "hostile: no Fashion-MNIST in $FM" >&2; exit 2; }
if [ -n "$(ls -A "$W" 2>/dev/null)" ] && [ ! -e "$W/.hostile" ]; then
    echo "hostile: $W is not empty and not a campaign's WORKDIR; not deleting it" >&2; exit 2
fi
for m in "$W/mnt-full" "$W/mnt-ro"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done # a killed run's
rm -rf "$W"
mkdir -p "$W/bin" "$W/v" "$W/run" "$W/out"
W=$(cd "$W" && pwd)
: > "$W/.hostile"
cp "$BUILD/distill" "$W/bin/distill" # a copy: rebuilding meanwhile cannot mix two versions
D="$W/bin/distill"
V="$W/v"     # the valid files
R="$W/run"   # where every case runs
FAIL="$W/failures.txt"
: > "$FAIL"
RANDOM=$SEED
T0=$(date +%s)
FLIPS=12; [ $QUICK = 1 ] && FLIPS=2
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
MNT_FULL="$W/mnt-full"; MNT_RO="$W/mnt-ro"; FULL_OK=0; RO_MOUNT=0

cleanup() {
    for m in "$MNT_FULL" "$MNT_RO"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
    restore_dev_full
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /dev/full must stay a character device (an output replacing it is issue 12 item 2).
DEV_FULL_NOTE=""
restore_dev_full() {
    [ $IS_ROOT = 1 ] || return 0
    if [ ! -c /dev/full ]; then
        rm -f /dev/full && mknod -m 666 /dev/full c 1 7 && DEV_FULL_NOTE="/dev/full was replaced and has been restored"
    fi
    for f in /dev/full.*; do [ -f "$f" ] && rm -f "$f"; done # FILE.ckpt / temporaries beside it
    return 0
}

# ------------------------------------------------------------------ byte helpers
# rnd N: RND := a number in [0, N) from $RANDOM, seeded once. Never in $(...): bash reseeds
# RANDOM in every subshell, and the parent's sequence would not advance.
rnd() { RND=$(( ((RANDOM << 15) | RANDOM) % $1 )); }
fsize() { stat -c %s "$1"; }
byte_at() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
# put_le FILE POS NBYTES VALUE [REPEAT]: VALUE little-endian at POS (REPEAT times); put_be big-endian.
put_n() { # FILE POS NBYTES VALUE REPEAT BIG
    local s="" e i r
    for ((r = 0; r < $5; r++)); do for ((i = 0; i < $3; i++)); do
        if [ "$6" = 1 ]; then printf -v e '\\%03o' $((($4 >> (8 * ($3 - 1 - i))) & 255)); else printf -v e '\\%03o' $((($4 >> (8 * i)) & 255)); fi
        s+=$e
    done; done
    printf "$s" | dd of="$1" bs=4096 seek="$2" oflag=seek_bytes conv=notrunc status=none
}
put_le() { put_n "$1" "$2" "$3" "$4" "${5:-1}" 0; }
put_be() { put_n "$1" "$2" "$3" "$4" 1 1; }
put_byte() { put_n "$1" "$2" 1 "$3" 1 0; }
u64le() { od -An -tu8 -N8 "$1" | tr -d ' '; }
# The payload offset of a safetensors file: 8 + its header length.
st_payload() { echo $((8 + $(u64le "$1"))); }
# .npy v1: 10 + the u16 header length.
npy_payload() { echo $((10 + $(od -An -tu2 -j8 -N2 "$1" | tr -d ' '))); }
# Rewrite a safetensors header with sed -E EXPR, padded with spaces to its old length when shorter.
st_patch() { # IN OUT EXPR
    local n; n=$(u64le "$1")
    tail -c +9 "$1" | head -c "$n" | sed -E "$3" > "$2.h"
    local m; m=$(fsize "$2.h")
    if [ "$m" -lt "$n" ]; then printf '%*s' $((n - m)) '' >> "$2.h"; m=$n; fi
    : > "$2"; put_le "$2" 0 8 "$m"; cat "$2.h" >> "$2"; tail -c +$((9 + n)) "$1" >> "$2"; rm -f "$2.h"
}
# Rewrite a .npy header dict with sed -E EXPR (realigned to 64 bytes).
npy_patch() { # IN OUT EXPR
    local p; p=$(npy_payload "$1")
    local d; d=$(head -c "$p" "$1" | tail -c +11 | tr -d '\n' | sed -E 's/ +$//' | sed -E "$3")
    local len=$(( ${#d} + 1 )); local pad=$(( (64 - (10 + len) % 64) % 64 ))
    head -c 8 "$1" > "$2"; printf '\0\0' >> "$2"; put_le "$2" 8 2 $((len + pad))
    printf '%s%*s\n' "$d" "$pad" '' >> "$2"; tail -c +$((p + 1)) "$1" >> "$2"
}
# Rewrite the CRC-32 of a .kdm (bytes 8-11 hold the CRC of bytes 12..end; gzip's trailer is the same CRC).
kdm_fix_crc() { tail -c +13 "$1" | gzip -c | tail -c 8 | head -c 4 | dd of="$1" bs=1 seek=8 conv=notrunc status=none; }

# ------------------------------------------------------------------ the oracle
declare -A CNT
TYPES=()
CATS=(rejected same valid review no-name litter crash hang exit0-fail lost-file valid-failed)
FATAL="crash hang exit0-fail lost-file valid-failed"
count() { # TYPE CAT
    [ -n "${SEEN[$1]:-}" ] || { TYPES+=("$1"); SEEN[$1]=1; }
    CNT["$1|$2"]=$(( ${CNT["$1|$2"]:-0} + 1 ))
}
declare -A SEEN
norm() { grep -a -v -i -e 'samples/s' -e 'images/s' -e 'tokens/s' -e 'elapsed' -e 'latency' -e 'throughput' -e '[0-9] *us\b' -e 'µs' |
    sed -E 's/[0-9]+(\.[0-9]+)? ?(s|ms|us|µs)\b/TIME/g'; }
nonfinite() { grep -a -E -i -q '(^|[^a-z])[-+]?(nan|inf)([^a-z]|$)' "$1"; }
has_report() { grep -a -E -q 'Sanitizer|runtime error:|double free|corrupted|stack smashing|Segmentation fault|free\(\): invalid|malloc\(\)' "$1"; }

# Guards of one case: paths that must hold the same bytes after a failed run (lost-file check).
GUARDS=()
guard() { GUARDS+=("$1"); cp -a "$1" "$W/out/guard.$(( ${#GUARDS[@]} - 1 ))" 2>/dev/null || true; }
# guard_input: the same for a file the command reads, which must survive even a run that succeeds
declare -a GUARD_ALWAYS
guard_input() { guard "$1"; GUARD_ALWAYS[$(( ${#GUARDS[@]} - 1 ))]=1; }
guard_kind() { if [ -p "$1" ]; then echo fifo; elif [ -d "$1" ]; then echo dir; elif [ -c "$1" ]; then echo chr; elif [ -f "$1" ]; then echo file; else echo none; fi; }
declare -a GUARD_KIND
guard_node() { GUARDS+=("$1"); GUARD_KIND[$(( ${#GUARDS[@]} - 1 ))]=$(guard_kind "$1"); }

LAST=""
# run_case TYPE CASE EXPECT NAME REF -- CMD...   (in $R)
#   EXPECT: fail (refuse, or exit 0 with output equal to REF), valid (exit 0 fine if finite),
#           text (fail, but exit 0 with a changed result after a printable change is "review"),
#           ok (a valid run: must succeed and be finite)
#   NAME: the file name the error must mention; REF: the unmutated run's normalised stdout, or -
run_case() {
    local type=$1 cas=$2 expect=$3 name=$4 ref=$5; shift 6
    local rc cat
    { (cd "$R" && exec timeout -k 5 20 "$@" > "$W/out/stdout" 2> "$W/out/stderr" < /dev/null); } 2> /dev/null # no "Aborted" note
    rc=$?
    norm < "$W/out/stdout" > "$W/out/stdout.n"
    if [ $rc = 124 ] || [ $rc = 137 ]; then cat=hang
    elif [ $rc -ge 128 ] || has_report "$W/out/stderr"; then cat=crash
    elif [ $rc = 0 ]; then
        if nonfinite "$W/out/stdout"; then cat=exit0-fail
        elif [ "$ref" != - ] && cmp -s "$ref" "$W/out/stdout.n"; then cat=same
        else case $expect in
            valid | ok) cat=valid ;;
            text) cat=review ;;
            *) cat=exit0-fail ;;
            esac
        fi
    else
        if [ "$expect" = ok ]; then cat=valid-failed # the harness or the product is broken
        elif [ -n "$name" ] && ! grep -a -q -F -- "${name##*/}" "$W/out/stderr"; then cat=no-name
        else cat=rejected; fi
    fi
    # lost-file: guarded paths must be untouched after a failure (and nodes keep their kind always)
    local i g
    for i in "${!GUARDS[@]}"; do
        g=${GUARDS[$i]}
        if [ -n "${GUARD_KIND[$i]:-}" ]; then
            [ "$(guard_kind "$g")" = "${GUARD_KIND[$i]}" ] || cat=lost-file
        elif { [ $rc != 0 ] || [ -n "${GUARD_ALWAYS[$i]:-}" ]; } && ! cmp -s "$g" "$W/out/guard.$i"; then cat=lost-file
        fi
    done
    GUARDS=(); GUARD_KIND=(); GUARD_ALWAYS=()
    # litter: a temporary file left beside an output after the run
    if [ "$cat" = rejected ] && [ -n "$(find "$R" "$MNT_FULL" "$MNT_RO" -name '*.tmp.*' 2>/dev/null | head -1)" ]; then cat=litter; fi
    restore_dev_full
    count "$type" "$cat"
    LAST=$cat
    case " $FATAL no-name review litter " in *" $cat "*)
        { printf '%s\t%s\t%s\texit %s\t(cd %s &&' "$cat" "$type" "$cas" "$rc" "$R"; printf ' %q' "$@"; printf ')\n'
          printf '\t%s\n' "$(grep -a -v '^\s*$' "$W/out/stderr" | head -3 | tr '\n' '|' | cut -c1-300)"; } >> "$FAIL" ;;
    esac
    return 0
}

# ------------------------------------------------------------------ valid files
say() { printf '%s\n' "$*" >&2; }
die() { exec 2>&3; tail -5 "$W/out/setup.log" >&2; say "hostile: $*"; exit 2; }
say "hostile: building valid inputs in $V"
mkidx() { # SRC.gz N HDR OUT: the first N records of an IDX file, count patched
    local rec; if [ "$3" = 16 ]; then rec=784; else rec=1; fi
    zcat "$1" | head -c $(($3 + $2 * rec)) > "$4"; put_be "$4" 4 4 "$2"
}
mkdir -p "$V/data"
mkidx "$FM/train-images-idx3-ubyte.gz" 600 16 "$V/data/train-images-idx3-ubyte"
mkidx "$FM/train-labels-idx1-ubyte.gz" 600 8 "$V/data/train-labels-idx1-ubyte"
mkidx "$FM/t10k-images-idx3-ubyte.gz" 200 16 "$V/data/t10k-images-idx3-ubyte"
mkidx "$FM/t10k-labels-idx1-ubyte.gz" 200 8 "$V/data/t10k-labels-idx1-ubyte"
cp "$V/data/t10k-images-idx3-ubyte" "$V/img.idx"; cp "$V/data/t10k-labels-idx1-ubyte" "$V/lbl.idx"
gzip -n -c "$V/img.idx" > "$V/img.idx.gz"; gzip -n -c "$V/lbl.idx" > "$V/lbl.idx.gz"
DATA="$V/data"
TR="-q -j 1 -d $DATA --val 0 -e 1"
exec 3>&2 2> "$W/out/setup.log" # the setup's banners; `die` shows the log
(cd "$V" && $D train $TR -m mlp-s -o mlp.safetensors > /dev/null) || die "train mlp-s failed"
(cd "$V" && $D train $TR -m cnn-s -e 2 -o cnn.safetensors > /dev/null) || die "train cnn-s failed"
mv "$V/mlp.safetensors.ckpt" "$V/state.ckpt"; rm -f "$V/cnn.safetensors.ckpt"
(cd "$V" && $D quantize cnn.safetensors -d $DATA -n 100 -j 1 -o q8.int8.safetensors > /dev/null) || die "quantize failed"
(cd "$V" && $D export q8.int8.safetensors -o m.kdm > /dev/null && $D export q8.int8.safetensors -o m.h > /dev/null) || die "export failed"
(cd "$V" && $D eval mlp.safetensors -d $DATA -s train -j 1 --save-logits logits.npy > /dev/null) || die "eval --save-logits failed"
cat "$ROOT"/docs/*.md | head -c 40000 > "$V/text.txt"
LMO="-q -j 1 --ctx 32 --dim 32 --heads 2 --layers 1 -b 4 --steps 6 --warmup 1 --text $V/text.txt"
(cd "$V" && $D lm train $LMO -o lm.safetensors > /dev/null) || die "lm train failed"
(cd "$V" && $D lm train $LMO --tokenizer bpe --vocab 280 -o bpe.safetensors > /dev/null) || die "lm train bpe failed"
mv "$V/lm.safetensors.ckpt" "$V/lmstate.ckpt"; rm -f "$V/bpe.safetensors.ckpt"
exec 2>&3 3>&-
cp "$ROOT/examples/models/cnn-s.yaml" "$V/model.yaml"
cat > "$V/run.yaml" <<EOF
model: mlp-s
data: $DATA
val: 0
limit: 200
epochs: 1
max-steps: 2
threads: 1
quiet: true
EOF
cat > "$V/pipe.yaml" <<EOF
data: $DATA
threads: 1
teacher: {model: mlp-s, epochs: 1, max-steps: 2, val: 0, limit: 200}
student: {student: mlp-s, epochs: 1, max-steps: 2, val: 0, limit: 200}
quantize: {calib-images: 50}
EOF
# Each input type: name | valid file | slot name in $R | payload mode | command (IN = the slot)
# payload modes: st (safetensors), npy, idximg, idxlbl, none (every flip must be refused), text
#   (all flips valid), yaml (printable flips may be valid: review)
INPUTS=(
 "ckpt|mlp.safetensors|in.safetensors|st|eval IN -d $DATA -j 1"
 "ckpt-cnn|cnn.safetensors|in.safetensors|st|predict IN -d $DATA -n 20"
 "train-state|state.ckpt|st.safetensors.ckpt|st|train $TR -m mlp-s --resume -o st.safetensors"
 "int8|q8.int8.safetensors|in.int8.safetensors|st|export IN -d $DATA -n 50 -j 1 -o o.kdm"
 "kdm|m.kdm|in.kdm|none|bench IN -d $DATA -n 5 --limit 50"
 "model-yaml|model.yaml|in.yaml|yaml|info IN"
 "run-yaml|run.yaml|in.yaml|yaml|train --config IN -o ry.safetensors"
 "pipeline-yaml|pipe.yaml|in.yaml|yaml|pipeline IN --out pipe"
 "npy|logits.npy|in.npy|npy|kd $TR --limit 600 --teacher-logits IN -s mlp-s --max-steps 2 -o kn.safetensors"
 "idx-images|img.idx|in-img|idximg|eval $V/mlp.safetensors -j 1 -d IN,$V/lbl.idx"
 "idx-labels|lbl.idx|in-lbl|idxlbl|eval $V/mlp.safetensors -j 1 -d $V/img.idx,IN"
 "idx-images-gz|img.idx.gz|in-img.gz|none|eval $V/mlp.safetensors -j 1 -d IN,$V/lbl.idx"
 "idx-labels-gz|lbl.idx.gz|in-lbl.gz|none|eval $V/mlp.safetensors -j 1 -d $V/img.idx,IN"
 "lm-text|text.txt|in.txt|text|lm eval -m $V/lm.safetensors -j 1 --text IN"
 "lm-ckpt|lm.safetensors|in.safetensors|st|lm eval -m IN -j 1 --text $V/text.txt"
 "lm-ckpt-bpe|bpe.safetensors|in.safetensors|st|lm generate -m IN -j 1 -q --tokens 20"
 "lm-state|lmstate.ckpt|ls.safetensors.ckpt|st|lm train $LMO --resume -o ls.safetensors"
)
field() { local a; IFS='|' read -r -a a <<< "$1"; echo "${a[$(($2 - 1))]}"; }
# The command of an input with its slot filled in, as words.
cmd_of() { local c; c=$(field "$1" 5); echo "${c//IN/$2}"; }
# Reference output of the valid file in its slot (also checks that the valid run works).
declare -A REF
reset_run() { rm -rf "$R"; mkdir -p "$R"; }
for spec in "${INPUTS[@]}"; do
    t=$(field "$spec" 1); f=$(field "$spec" 2); slot=$(field "$spec" 3)
    reset_run; cp "$V/$f" "$R/$slot"
    run_case "$t" valid ok "" - -- $D $(cmd_of "$spec" "$slot")
    [ "$LAST" = valid ] || say "hostile: the valid $t run failed: $(head -2 "$W/out/stderr")"
    cp "$W/out/stdout.n" "$W/out/ref.$t"; REF[$t]="$W/out/ref.$t"
done

# ------------------------------------------------------------------ input mutations
# mutate_run SPEC CASE EXPECT: the mutated file is already in $R/$slot.
mutate_run() { # (no subshells: it runs a thousand times)
    local a c; IFS='|' read -r -a a <<< "$1"; c=${a[4]}
    run_case "${a[0]}" "$2" "$3" "${a[2]}" "${REF[${a[0]}]}" -- $D ${c//IN/${a[2]}}
}
payload_of() { # SPEC FILE -> offset where semantically free data starts (size = none)
    case $(field "$1" 4) in
    st) st_payload "$2" ;; npy) npy_payload "$2" ;; idximg) echo 16 ;; idxlbl) echo 8 ;; text) echo 0 ;;
    *) fsize "$2" ;;
    esac
}
huge_cases() { # SPEC: writes $R/h.N files for the type's huge/negative fields
    local spec=$1 src="$V/$(field "$1" 2)" n=0 v
    case $(field "$spec" 4) in
    st)
        for v in 9223372036854775807 2147483648 0 $(( $(fsize "$src") )); do cp "$src" "$R/h.$n"; put_le "$R/h.$n" 0 8 "$v"; n=$((n+1)); done
        for v in 2147483648 9223372036854775808 -1 4294967296 0; do
            st_patch "$src" "$R/h.$n" "0,/\"shape\":\[[0-9]+/s//\"shape\":[$v/"; n=$((n+1)); done
        for v in '0,99999999999' '99999999999,99999999999' '0,18446744073709551616' '-4,0'; do
            st_patch "$src" "$R/h.$n" "0,/\"data_offsets\":\[[0-9]+,[0-9]+\]/s//\"data_offsets\":[$v]/"; n=$((n+1)); done
        case $(field "$spec" 1) in
        lm-*) for v in vocab=4294967552 ctx=2147483647 layers=1000000 dim=-32 heads=0; do
                st_patch "$src" "$R/h.$n" "s/${v%%=*}=[0-9]+/$v/"; n=$((n+1)); done ;;
        *) for v in 2147483648 -1 99999999999999999999; do
                st_patch "$src" "$R/h.$n" "s/out: [0-9]+/out: $v/"; n=$((n+1)); done ;;
        esac ;;
    npy)
        for v in '(2147483648, 10)' '(9223372036854775807, 10)' '(-1, 10)' '(600, 4294967296)' '(0, 10)' '(600,)' '(600, 10, 10)'; do
            npy_patch "$src" "$R/h.$n" "s/\(600, 10\)/$v/"; n=$((n+1)); done
        npy_patch "$src" "$R/h.$n" "s/<f4/<f8/"; n=$((n+1))
        npy_patch "$src" "$R/h.$n" "s/'fortran_order': False/'fortran_order': True/"; n=$((n+1))
        cp "$src" "$R/h.$n"; put_le "$R/h.$n" 8 2 65535; n=$((n+1)) ;;
    idximg | idxlbl | none)
        local raw="$src" gz=0
        case $src in *.gz) gz=1; zcat "$src" > "$R/raw"; raw="$R/raw" ;; *.kdm) raw="" ;; esac
        if [ -n "$raw" ]; then
            for v in 2147483648 4294967295 0 601; do cp "$raw" "$R/h.$n"; put_be "$R/h.$n" 4 4 "$v"; n=$((n+1)); done
            if [ "$(byte_at "$raw" 3)" = 3 ]; then
                for v in 65536 2147483647 0; do cp "$raw" "$R/h.$n"; put_be "$R/h.$n" 8 4 "$v"; n=$((n+1)); done
            fi
            for v in 255 0 9; do cp "$raw" "$R/h.$n"; put_byte "$R/h.$n" 3 "$v"; n=$((n+1)); done
            cp "$raw" "$R/h.$n"; put_byte "$R/h.$n" 2 13; n=$((n+1))
            if [ $gz = 1 ]; then local i; for ((i = 0; i < n; i++)); do gzip -n -c "$R/h.$i" > "$R/h.$i.z"; mv "$R/h.$i.z" "$R/h.$i"; done
                gzip -n -c "$raw" > "$R/h.$n"; cat "$src" >> "$R/h.$n"; n=$((n+1))  # two members
                { cat "$src"; printf 'garbage'; } > "$R/h.$n"; n=$((n+1))          # trailing garbage
                rm -f "$R/raw"
            fi
        else # .kdm header fields, CRC fixed so they reach the structural checks
            local f
            for f in "12 4 4294967295" "12 4 64" "16 2 32767" "16 2 0" "18 2 65535" "20 2 65535" "22 2 0" "24 2 65535" "26 2 1" \
                     "28 4 4294967295" "28 4 0" "32 4 2143289344" "36 4 4096" "44 4 0" "6 2 65535" "4 2 2" \
                     "72 2 65535" "74 2 65535" "76 2 65535" "68 2 32767" "64 1 99"; do
                set -- $f; cp "$src" "$R/h.$n"; put_le "$R/h.$n" "$1" "$2" "$3"; kdm_fix_crc "$R/h.$n"; n=$((n+1))
            done
        fi ;;
    yaml)
        local t; t=$(field "$spec" 1)
        case $t in
        model-yaml)
            for v in '[1, 65536, 65536]' '[2147483648, 28, 28]' '[-1, 28, 28]' '[1, 28]' '[1, 0, 28]'; do
                sed -E "s/^input: .*/input: $v/" "$src" > "$R/h.$n"; n=$((n+1)); done
            for v in 2147483648 9223372036854775808 -5 0 1e9; do sed -E "0,/out: 8/s//out: $v/" "$src" > "$R/h.$n"; n=$((n+1)); done
            { cat "$src"; echo "colour: red"; } > "$R/h.$n"; n=$((n+1)) ;;
        *)
            local key
            for v in 'epochs: 9223372036854775808' 'epochs: -1' 'batch: 2147483648' 'limit: -1' 'lr: 1e999' 'seed: 18446744073709551616' \
                     'threads: 100000' 'max-steps: 2.5'; do
                key=${v%%:*}
                if [ $t = run-yaml ]; then { grep -v "^$key:" "$src"; echo "$v"; } > "$R/h.$n"
                elif grep -q "^teacher:.*[{ ]$key:" "$src"; then sed -E "s/^(teacher:.*[{ ])$key: [^,}]+/\1$v/" "$src" > "$R/h.$n"
                else sed -E "s/^teacher: \{/teacher: {$v, /" "$src" > "$R/h.$n"; fi
                n=$((n+1)); done
            { cat "$src"; echo "bogus-option: 1"; } > "$R/h.$n"; n=$((n+1)) ;;
        esac
        # deep nesting and a long list (issue 12 item 6): bounded here to keep the campaign short
        { printf 'x: '; printf '[%.0s' $(seq 3000); printf ']%.0s' $(seq 3000); echo; } > "$R/h.$n"; n=$((n+1))
        { printf 'x: ['; seq -s, 200000 | tr -d '\n'; echo ']'; } > "$R/h.$n"; n=$((n+1))
        printf '\xef\xbb\xbf\xff\xfe: 1\n' > "$R/h.$n"; n=$((n+1)) ;;
    esac
    echo $n
}

for spec in "${INPUTS[@]}"; do
    t=$(field "$spec" 1); f=$(field "$spec" 2); slot=$(field "$spec" 3); mode=$(field "$spec" 4)
    src="$V/$f"; size=$(fsize "$src")
    [ $QUICK = 1 ] && [ $t = pipeline-yaml ] && continue
    say "hostile: $t ($(( $(date +%s) - T0 )) s)"
    nflip=$FLIPS; [ $t = pipeline-yaml ] && nflip=4
    # empty and truncated
    pts="0 1 8 $((size / 2)) $((size - 1))"
    p=$(payload_of "$spec" "$src")
    [ "$p" -lt "$size" ] && pts="$pts $((p - 1)) $p $((p + 1))"
    [ $QUICK = 1 ] && pts="0 $((size - 1))"
    [ $t = pipeline-yaml ] && pts="0 $((size / 2))"
    for k in $pts; do
        reset_run; head -c "$k" "$src" > "$R/$slot"
        exp=fail; [ "$mode" = text ] && [ "$k" -ge 1000 ] && exp=valid # a shorter text is still text
        mutate_run "$spec" "trunc@$k" $exp
    done
    # flips
    for ((i = 0; i < nflip; i++)); do
        rnd "$size"; pos=$RND; rnd 255; x=$((1 + RND))
        reset_run; cp "$src" "$R/$slot"
        old=$(byte_at "$R/$slot" "$pos"); new=$(( old ^ x )); put_byte "$R/$slot" "$pos" "$new"
        exp=fail
        if [ "$pos" -ge "$p" ]; then exp=valid; [ $mode = idxlbl ] && [ $new -gt 9 ] && exp=fail; fi
        if [ $mode = yaml ] || [ $mode = st ] && [ "$pos" -lt "$p" ]; then
            { [ $new -ge 32 ] && [ $new -lt 127 ]; } || [ $new = 9 ] || [ $new = 10 ] || [ $new = 13 ] && exp=text
        fi
        mutate_run "$spec" "flip@$pos:$old->$new" $exp
    done
    # a weight (or logit, pixel) huge but finite: the result must be finite or refused
    if [ "$p" -lt "$size" ] && { [ $mode = st ] || [ $mode = npy ]; }; then
        reset_run; cp "$src" "$R/$slot"
        put_le "$R/$slot" "$p" 4 2130706432 64 # 64 floats of 1.7e38
        mutate_run "$spec" "floats=1.7e38" valid
    fi
    # huge / negative fields
    reset_run; nh=$(huge_cases "$spec")
    [ $QUICK = 1 ] && [ "$nh" -gt 2 ] && nh=2 # the first two (header length / count / shape)
    for ((k = 0; k < nh; k++)); do mv "$R/h.$k" "$W/out/h.$k"; done
    for ((k = 0; k < nh; k++)); do
        reset_run; cp "$W/out/h.$k" "$R/$slot"
        mutate_run "$spec" "huge#$k" fail
    done
    # wrong kind: every other type's valid file in this slot
    for other in "${INPUTS[@]}"; do
        of=$(field "$other" 2); [ "$of" = "$f" ] && continue
        [ $QUICK = 1 ] && [ $((RANDOM % 4)) != 0 ] && continue
        reset_run; cp "$V/$of" "$R/$slot"
        # a valid file of a kind this slot also takes is not hostile: cnn for mlp (eval), bpe for lm
        exp=fail
        case "$t:$of" in
        ckpt:cnn.safetensors | ckpt-cnn:mlp.safetensors | ckpt*:state.ckpt | int8:mlp.safetensors | int8:cnn.safetensors | int8:state.ckpt | \
            lm-ckpt*:lmstate.ckpt | \
            lm-ckpt:bpe.safetensors | lm-ckpt-bpe:lm.safetensors | lm-text:* | idx-images:img.idx.gz | idx-labels:lbl.idx.gz | \
            idx-images-gz:img.idx | idx-labels-gz:lbl.idx) exp=valid ;;
        esac
        mutate_run "$spec" "wrong-kind:$of" $exp
    done
    reset_run; cp "$V/m.h" "$R/$slot"; mutate_run "$spec" "wrong-kind:m.h" "$([ $mode = text ] && echo valid || echo fail)"
    # not a regular file
    reset_run; mkdir -p "$R/$slot"; mutate_run "$spec" directory fail
    reset_run; mkfifo "$R/$slot"; mutate_run "$spec" fifo fail
    reset_run; ln -s /dev/null "$R/$slot"; mutate_run "$spec" /dev/null fail
    exp=fail; case $t in *-state) exp=valid ;; esac # --resume without a state starts afresh
    reset_run; mutate_run "$spec" missing $exp
done

# ------------------------------------------------------------------ outputs
say "hostile: outputs ($(( $(date +%s) - T0 )) s)"
if [ $IS_ROOT = 1 ]; then
    mkdir -p "$MNT_FULL" "$MNT_RO"
    mount -t tmpfs -o size=4m tmpfs "$MNT_FULL" 2>/dev/null && FULL_OK=1
    mount -t tmpfs -o size=4m tmpfs "$MNT_RO" 2>/dev/null && RO_MOUNT=1
else
    mkdir -p "$MNT_RO"
fi
# Each output: type | a valid file of that output (kept at the target first) | command with OUT
OUTPUTS=(
 "out-train|mlp.safetensors|train $TR -m mlp-s --limit 200 -o OUT"
 "out-log|mlp.safetensors|train $TR -m mlp-s --limit 200 -o t.safetensors --log OUT"
 "out-kd|mlp.safetensors|kd $TR -m mlp-s --limit 200 --teacher $V/mlp.safetensors -s mlp-s -o OUT"
 "out-logits|logits.npy|eval $V/mlp.safetensors -d $DATA -j 1 --save-logits OUT"
 "out-prune|mlp.safetensors|prune $V/mlp.safetensors --sparsity 0.5 -o OUT"
 "out-quantize|q8.int8.safetensors|quantize $V/cnn.safetensors -d $DATA -n 50 -j 1 -o OUT"
 "out-kdm|m.kdm|export $V/q8.int8.safetensors -o OUT"
 "out-header|m.h|export $V/q8.int8.safetensors --format c -o OUT"
 "out-lm|lm.safetensors|lm train $LMO -o OUT"
 "out-lm-kd|lm.safetensors|lm kd -q -j 1 --text $V/text.txt -b 4 --steps 2 --teacher $V/lm.safetensors --layers 1 -o OUT"
 "out-generate|text.txt|lm generate -m $V/lm.safetensors -q --tokens 20 --out OUT"
)
out_run() { # SPEC CASE TARGET EXPECT
    local t c; t=$(field "$1" 1); c=$(field "$1" 3)
    run_case "$t" "$2" "$4" "$3" - -- $D ${c//OUT/$3}
}
fill_disk() { # fill the tmpfs to the last byte
    dd if=/dev/zero of="$MNT_FULL/filler" bs=64k status=none 2>/dev/null
    dd if=/dev/zero of="$MNT_FULL/filler2" bs=1 status=none 2>/dev/null
    return 0
}
for spec in "${OUTPUTS[@]}"; do
    t=$(field "$spec" 1); good="$V/$(field "$spec" 2)"
    base=$(basename "$good"); [ $t = out-log ] && base=run.log
    reset_run; out_run "$spec" plain "$R/o-$base" ok
    reset_run; mkfifo "$R/fifo-$base"; guard_node "$R/fifo-$base"; out_run "$spec" fifo "$R/fifo-$base" fail
    reset_run; mkdir "$R/dir-$base"; guard_node "$R/dir-$base"; out_run "$spec" directory "$R/dir-$base" fail
    [ $QUICK = 0 ] && { reset_run; out_run "$spec" missing-dir "$R/nodir/$base" fail; }
    if [ $IS_ROOT = 1 ] && [ -c /dev/full ]; then
        reset_run; guard_node /dev/full; out_run "$spec" /dev/full /dev/full fail
    fi
    if [ $FULL_OK = 1 ]; then
        rm -rf "${MNT_FULL:?}"/*; cp "$good" "$MNT_FULL/$base"; fill_disk
        # the log is appended to: the slack of its last page would still take a line, a write
        # that rightly succeeds, so that slack is filled too (with spaces)
        [ $t = out-log ] && { tr '\0' ' ' </dev/zero | dd of="$MNT_FULL/$base" bs=1 oflag=append conv=notrunc status=none 2>/dev/null; true; }
        reset_run; guard "$MNT_FULL/$base"; out_run "$spec" full-disk "$MNT_FULL/$base" fail
        if [ $QUICK = 0 ]; then rm -rf "${MNT_FULL:?}"/*; fill_disk
            reset_run; out_run "$spec" full-disk-new "$MNT_FULL/$base" fail; fi
    fi
    if [ $QUICK = 1 ]; then :
    elif [ $RO_MOUNT = 1 ]; then
        mount -o remount,rw "$MNT_RO"; rm -rf "${MNT_RO:?}"/*; cp "$good" "$MNT_RO/$base"; mount -o remount,ro "$MNT_RO"
        reset_run; guard "$MNT_RO/$base"; out_run "$spec" read-only "$MNT_RO/$base" fail
    elif [ $IS_ROOT = 0 ]; then
        chmod u+w "$MNT_RO"; rm -rf "${MNT_RO:?}"/*; cp "$good" "$MNT_RO/$base"; chmod a-w "$MNT_RO"
        reset_run; guard "$MNT_RO/$base"; out_run "$spec" read-only "$MNT_RO/$base" fail
    fi
    # a good file at the output, and the command's input broken: the good file stays
    [ $QUICK = 0 ] && case $t in
    out-prune | out-kdm | out-header | out-quantize | out-logits)
        reset_run; cp "$good" "$R/keep-$base"; guard "$R/keep-$base"; c=$(field "$spec" 3)
        : > "$R/empty.safetensors"
        run_case "$t" input-broken fail "$R/empty.safetensors" - -- $D $(echo "${c//OUT/$R/keep-$base}" | sed -E "s#$V/(mlp|cnn|q8.int8)\.safetensors#$R/empty.safetensors#") ;;
    esac
done
# an output naming the command's own input: the input must survive (the command refuses)
reset_run; cp "$V/mlp.safetensors" "$R/m.safetensors"; guard_input "$R/m.safetensors"
run_case out-is-input eval-logits fail m.safetensors - -- $D eval m.safetensors -d "$DATA" -j 1 --save-logits m.safetensors
reset_run; cp "$V/mlp.safetensors" "$R/t.safetensors"; guard_input "$R/t.safetensors"
run_case out-is-input kd-teacher fail t.safetensors - -- $D kd $TR --limit 200 --teacher t.safetensors -s mlp-s -o t.safetensors
reset_run; cp "$V/cnn.safetensors" "$R/c.safetensors"; guard_input "$R/c.safetensors"
run_case out-is-input quantize fail c.safetensors - -- $D quantize c.safetensors -d "$DATA" -n 50 -j 1 -o c.safetensors
reset_run; cp "$V/lm.safetensors" "$R/lm.safetensors"; guard_input "$R/lm.safetensors"
run_case out-is-input lm-generate fail lm.safetensors - -- $D lm generate -m lm.safetensors -q --tokens 20 --out lm.safetensors
# the pipeline's --out: a file, a FIFO, a full disk
reset_run; : > "$R/afile"; guard "$R/afile"
run_case out-pipeline file fail "$R/afile" - -- $D pipeline "$V/pipe.yaml" --out "$R/afile"
reset_run; mkfifo "$R/fifo"; guard_node "$R/fifo"
run_case out-pipeline fifo fail "$R/fifo" - -- $D pipeline "$V/pipe.yaml" --out "$R/fifo"
if [ $FULL_OK = 1 ]; then
    rm -rf "${MNT_FULL:?}"/*; fill_disk
    reset_run; run_case out-pipeline full-disk fail "" - -- $D pipeline "$V/pipe.yaml" --out "$MNT_FULL/p"
fi

# ------------------------------------------------------------------ report
SECS=$(( $(date +%s) - T0 ))
printf '\nhostile: %s, seed %s, %s s%s\n' "$(basename "$BUILD")/distill" "$SEED" "$SECS" "$([ $QUICK = 1 ] && echo ' (quick)')"
[ $FULL_OK = 1 ] || echo "hostile: full disk: skipped (needs root and a tmpfs mount)"
[ $IS_ROOT = 1 ] || echo "hostile: /dev/full: skipped (not root)"
[ -n "$DEV_FULL_NOTE" ] && echo "hostile: $DEV_FULL_NOTE"
printf '%-15s' type; for c in "${CATS[@]}"; do printf '%13s' "$c"; done; printf '%8s\n' total
declare -A TOT
all=0
for t in "${TYPES[@]}"; do
    printf '%-15s' "$t"; s=0
    for c in "${CATS[@]}"; do v=${CNT["$t|$c"]:-0}; printf '%13s' "$v"; s=$((s + v)); TOT[$c]=$(( ${TOT[$c]:-0} + v )); done
    printf '%8s\n' "$s"; all=$((all + s))
done
printf '%-15s' total; for c in "${CATS[@]}"; do printf '%13s' "${TOT[$c]:-0}"; done; printf '%8s\n' "$all"
bad=0; for c in $FATAL; do bad=$((bad + ${TOT[$c]:-0})); done
if [ $bad -gt 0 ]; then
    echo "hostile: $bad runs crashed, hung, exited 0 on a failure or lost a good file: see $FAIL"
    exit 1
fi
echo "hostile: no crash, no hang, no exit 0 on failure, no good file lost ($all runs; no-name and review cases in $FAIL)"
