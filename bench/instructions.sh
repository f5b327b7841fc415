#!/bin/bash
# instructions.sh: the workloads' instruction counts under callgrind, per allocator.
#
#   bench/instructions.sh [-w "WORKLOADS"] [ALLOCATOR...]
#
# Times on a shared machine move by 10-50% from one minute to the next; instruction
# counts do not.  Each workload runs once per allocator under valgrind --tool=callgrind
# (the allocator preloaded, as run.sh does), and the table gives, per malloc or free
# call:
#
#   total        every instruction the process ran, the workload's own included
#   allocator    those outside the workloads program itself: the allocator, and the
#                little of libc and the loader the workload calls (its start, its
#                printf): the same few for every allocator
#   vs glibc, vs best   the allocator column as a ratio to glibc's and to the lowest
#                peer's (jemalloc, tcmalloc, mimalloc)
#
# An instruction count is not a time: it leaves out cache misses, page faults and the
# kernel (a page fault or madvise counts nothing here), which is where the memory
# layouts differ.  Use it to see what a change to a path costs, deterministically,
# and run.sh for time.  Single-threaded workloads count the same on every run;
# larson depends on how valgrind interleaves its two threads (it runs one at a time),
# within a few percent.  prodcons is left out: its threads wait for each other by
# spinning, and under valgrind the spinning is most of what it counts.  So is
# latency: its clock reads and sorting outweigh the calls it times.
#
# Allocators and the environment as for run.sh.  Default workloads: the
# single-threaded ones and larson.  Needs valgrind.
set -eu

workloads="same-inorder same-random churn fragment larson"
while getopts "w:h" opt; do
    case $opt in
    w) workloads=$OPTARG ;;
    *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
allocators=${*:-glibc jemalloc tcmalloc mimalloc tlsf fm}

command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
lib=${FASTMEM_LIB:-$PWD/src/.libs/libfastmem.so}
bin=${WORKLOADS_BIN:-$PWD/bench/workloads}
[ -x "$bin" ] || { echo "instructions.sh: no workloads program at $bin (make bench/workloads)" >&2; exit 2; }

. "$(dirname "$0")/allocators.sh"
pick_allocators instructions.sh "$lib" $allocators

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Self cost by object in a callgrind profile: "object instructions" lines.  A cost
# line right after calls= is the call's inclusive cost, counted in the callee already.
by_object() {
    awk '
    /^c?ob=/ { id = $1; sub(/^c?ob=/, "", id); if (NF > 1) { n = $0; sub(/^c?ob=\([0-9]+\) /, "", n); name[id] = n }
               if ($0 ~ /^ob=/) ob = id; next }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ { if (skip) { skip = 0; next } cost[ob] += $2; next }
    { skip = 0 }
    END { for (o in cost) print name[o], cost[o] }' "$1"
}

printf '# %s, %s, valgrind %s\n' "$(date -u +%Y-%m-%d)" "$(ldd --version | head -n1 | sed 's/.*) //;s/^/glibc /')" "$(valgrind --version | sed 's/valgrind-//')"
for w in $workloads; do
    for a in $usable; do
        out=$(env ${preload[$a]:+LD_PRELOAD=${preload[$a]}} ${engine[$a]:+MEMMNG=${engine[$a]}} \
            valgrind --tool=callgrind --callgrind-out-file="$tmp/$w.$a.cg" "$bin" "$w" 2>/dev/null) ||
            { echo "instructions.sh: $a failed on $w" >&2; exit 1; }
        calls=$(echo "$out" | sed -n 's/.*calls=\([0-9]*\).*/\1/p')
        by_object "$tmp/$w.$a.cg" | awk -v a="$a" -v calls="$calls" -v prog="$(realpath "$bin")" '
            { c = $NF; $NF = ""; sub(/ $/, ""); total += c; if ($0 != prog) other += c }
            END { printf "%s %s %.1f %.1f\n", a, calls, total / calls, other / calls }' >>"$tmp/$w.table"
    done
    printf '\n## %s (instructions per call)\n\n' "$w"
    awk '
    { a[NR] = $1; t[NR] = $3; o[NR] = $4; if ($1 == "glibc") g = $4
      if ($1 == "jemalloc" || $1 == "tcmalloc" || $1 == "mimalloc") if (best == "" || $4 < best) best = $4 }
    END {
        printf "| %-9s | %8s | %9s | %8s | %8s |\n", "allocator", "total", "allocator", "vs glibc", "vs best"
        printf "|-----------|----------|-----------|----------|----------|\n"
        for (i = 1; i <= NR; i++)
            printf "| %-9s | %8.1f | %9.1f | %8s | %8s |\n", a[i], t[i], o[i], g ? sprintf("%.2fx", o[i] / g) : "-", best ? sprintf("%.2fx", o[i] / best) : "-"
    }' "$tmp/$w.table"
done
