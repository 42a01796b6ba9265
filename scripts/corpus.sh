#!/bin/sh
# Writes the default text corpus of `distill lm`: the King James Bible from Debian's bible-kjv
# package (4.4 MB, one verse a line: "Ge1:1 In the beginning God created the heaven and the earth.").
# Usage: scripts/corpus.sh [OUT]   (default out/kjv.txt)
set -e
out="${1:-out/kjv.txt}"
if ! command -v bible >/dev/null 2>&1; then
    echo "corpus.sh: the 'bible' program is missing: install the Debian package bible-kjv" >&2
    echo "    (scripts/install-deps.sh installs it)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
bible -f Gen1:1-Rev22:21 > "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
echo "corpus.sh: wrote $out ($(wc -c < "$out") bytes)"
