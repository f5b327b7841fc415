#!/bin/bash
# tune.sh: measure the engines' memory policies (bench/tune.c explains the metrics
# and traces).  Builds tune.c with the engines compiled under each policy variant and
# prints one line per variant, engine and trace.  Run from a built build directory
# (it needs config.h, and the rest of the library from src/.libs/libfastmem_core.a):
#   bash ../bench/tune.sh
#
#   split-1-8       the default: split when the remainder is >= 32 B and >= 1/8,
#                   or >= 64 KiB
#   split-1-8-only  without the 64 KiB clause (the rule before 2026-11-23)
#   split-always    split whenever the remainder can be a block (TLSF's own rule)
#   split-kamailio  Kamailio's MEM_FRAG_AVOIDANCE (remainder >= request + 48, or
#                   > 32 KiB + 48)
#   fm-exact-1K, fm-exact-4K  fm's exact buckets ending at 1 KiB and 4 KiB instead
#                   of 32 KiB
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=$PWD
[ -f "$build/config.h" ] && [ -f "$build/src/.libs/libfastmem_core.a" ] ||
    { echo "tune.sh: run from a built build directory" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

variant() { # label cflags...
    local label=$1
    shift
    ${CC:-cc} -std=c11 -O2 -DNDEBUG -I"$build" -I"$src/include" -I"$src/src" "$@" -o "$out/$label" \
        "$src/bench/tune.c" "$src/src/engine.c" "$src/src/engine_tlsf.c" "$src/src/engine_fm.c" \
        "$build/src/.libs/libfastmem_core.a" -pthread
    "$out/$label" "$label"
}

variant split-1-8
variant split-1-8-only -DFM_SPLIT_LARGE='((size_t)1 << 62)'
variant split-always -DFM_SPLIT_SHIFT=63
variant split-kamailio -DFM_BENCH_KAMAILIO_SPLIT
variant fm-exact-1K -DFM_EXACT_LOG2=10
variant fm-exact-4K -DFM_EXACT_LOG2=12
