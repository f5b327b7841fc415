#!/bin/bash
# run.sh: compare allocators on bench/workloads in one run.
#
#   bench/run.sh [-r RUNS] [-s SCALE] [-w "WORKLOADS"] [ALLOCATOR...]
#
# ALLOCATOR is glibc (no preload), jemalloc, tcmalloc, mimalloc (the Debian packages
# libjemalloc2, libtcmalloc-minimal4, libmimalloc2.0, preloaded), or one of
# libfastmem's engines (tlsf, fm, qm, sys: FASTMEM_LIB preloaded with MEMMNG set).
# Default: all but qm and sys (the debugging engine, and glibc under the cap, measured
# on request); a peer that is not installed is skipped with a note.  Every workload
# runs RUNS times (default 5) per allocator, interleaved so that a noisy moment on a
# shared machine hits every allocator alike, and the table shows the median, with
# each time also as a ratio to glibc's (below 1 is faster than glibc).
#
# Environment: FASTMEM_LIB (default src/.libs/libfastmem.so under the current
# directory), WORKLOADS_BIN (default bench/workloads under the current directory).
set -eu

runs=5
scale=1
workloads="same-inorder same-random churn fragment larson prodcons latency release idle-threads"
while getopts "r:s:w:h" opt; do
    case $opt in
    r) runs=$OPTARG ;;
    s) scale=$OPTARG ;;
    w) workloads=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
allocators=${*:-glibc jemalloc tcmalloc mimalloc tlsf fm}

lib=${FASTMEM_LIB:-$PWD/src/.libs/libfastmem.so}
bin=${WORKLOADS_BIN:-$PWD/bench/workloads}
[ -x "$bin" ] || { echo "run.sh: no workloads program at $bin (make bench builds it)" >&2; exit 2; }

. "$(dirname "$0")/allocators.sh"
pick_allocators run.sh "$lib" $allocators

results=$(mktemp)
trap 'rm -f "$results"' EXIT

for w in $workloads; do
    for ((r = 1; r <= runs; r++)); do
        for a in $usable; do
            out=$(env ${preload[$a]:+LD_PRELOAD=${preload[$a]}} ${engine[$a]:+MEMMNG=${engine[$a]}} \
                "$bin" "$w" "$scale") || { echo "run.sh: $a failed on $w" >&2; exit 1; }
            printf '%s\n' "$out" | sed "s/^/alloc=$a /" >>"$results"
        done
    done
done

echo "# $(date -u +%Y-%m-%d), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"
echo "# $(ldd --version | head -n1 | sed 's/.*) //;s/^/glibc /'), kernel $(uname -r); median of $runs runs, scale $scale"
awk -v order="$usable" -v workloads="$workloads" '
function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) { t = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
    a = ""; w = ""
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    a = f["alloc"]; w = f["workload"]
    for (k in f) if (k != "alloc" && k != "workload" && k != "calls") val[w, a, k] = val[w, a, k] " " f[k]
    delete f
}
END {
    na = split(order, al, " "); nw = split(workloads, wl, " ")
    for (i = 1; i <= nw; i++) {
        w = wl[i]
        g = median(val[w, "glibc", "ns_per_call"])
        printf "\n## %s\n\n", w
        if (w == "fragment") {
            gr = median(val[w, "glibc", "rss_over_live"])
            printf "| %-9s | %9s | %8s | %13s | %8s |\n", "allocator", "ns/call", "vs glibc", "rss/peak live", "vs glibc"
            printf "|-----------|-----------|----------|---------------|----------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]; t = median(val[w, a, "ns_per_call"]); r = median(val[w, a, "rss_over_live"])
                printf "| %-9s | %9.1f | %8s | %13.3f | %8s |\n", a, t, g ? sprintf("%.2fx", t / g) : "-", r, gr ? sprintf("%.2fx", r / gr) : "-"
            }
        } else if (w == "latency") {
            printf "| %-9s | %10s | %10s | %12s | %10s | %10s | %10s | %12s | %10s |\n", "allocator", "malloc p50", "malloc p99", "malloc p99.99", "malloc max", "free p50", "free p99", "free p99.99", "free max"
            printf "|-----------|------------|------------|---------------|------------|------------|------------|--------------|------------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]
                printf "| %-9s | %10d | %10d | %13d | %10d | %10d | %10d | %12d | %10d |\n", a, median(val[w, a, "malloc_p50"]), median(val[w, a, "malloc_p99"]), median(val[w, a, "malloc_p9999"]), median(val[w, a, "malloc_max"]), median(val[w, a, "free_p50"]), median(val[w, a, "free_p99"]), median(val[w, a, "free_p9999"]), median(val[w, a, "free_max"])
            }
        } else if (w == "release-contended") {
            printf "| %-9s | %8s | %12s | %9s | %9s | %10s | %10s |\n", "allocator", "free ns", "after frees", "pair p50", "pair p99", "pair p99.9", "pair max"
            printf "|-----------|----------|--------------|-----------|-----------|------------|------------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]; o = w "-other"
                printf "| %-9s | %8.1f | %12.1f | %9d | %9d | %10d | %10d |\n", a, median(val[o, a, "free_ns"]), median(val[w, a, "rss_after_mib"]), median(val[o, a, "pair_p50"]), median(val[o, a, "pair_p99"]), median(val[o, a, "pair_p999"]), median(val[o, a, "pair_max"])
            }
        } else if (w ~ /^release/) {
            printf "| %-9s | %8s | %8s | %11s | %8s | %12s | %12s | %12s | %11s |\n", "allocator", "free p50", "free p99", "free p99.99", "free max", "RSS peak MiB", "after frees", "after more", "live MiB"
            printf "|-----------|----------|----------|-------------|----------|--------------|--------------|--------------|-------------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]
                printf "| %-9s | %8d | %8d | %11d | %8d | %12.1f | %12.1f | %12.1f | %11.1f |\n", a, median(val[w, a, "free_p50"]), median(val[w, a, "free_p99"]), median(val[w, a, "free_p9999"]), median(val[w, a, "free_max"]), median(val[w, a, "rss_peak_mib"]), median(val[w, a, "rss_after_mib"]), median(val[w, a, "rss_later_mib"]), median(val[w, a, "live_after_mib"])
            }
        } else if (w == "idle-threads") {
            gh = median(val[w, "glibc", "rss_held_mib"])
            printf "| %-9s | %12s | %13s | %8s |\n", "allocator", "RSS peak MiB", "held idle MiB", "vs glibc"
            printf "|-----------|--------------|---------------|----------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]; h = median(val[w, a, "rss_held_mib"])
                printf "| %-9s | %12.1f | %13.1f | %8s |\n", a, median(val[w, a, "rss_peak_mib"]), h, gh ? sprintf("%.2fx", h / gh) : "-"
            }
        } else if (w ~ /^same/) {
            gm = median(val[w, "glibc", "malloc_ns"]); gf = median(val[w, "glibc", "free_ns"])
            printf "| %-9s | %9s | %8s | %9s | %8s | %9s | %8s |\n", "allocator", "ns/call", "vs glibc", "malloc ns", "vs glibc", "free ns", "vs glibc"
            printf "|-----------|-----------|----------|-----------|----------|-----------|----------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]; t = median(val[w, a, "ns_per_call"]); m = median(val[w, a, "malloc_ns"]); fr = median(val[w, a, "free_ns"])
                printf "| %-9s | %9.1f | %8s | %9.1f | %8s | %9.1f | %8s |\n", a, t, g ? sprintf("%.2fx", t / g) : "-", m, gm ? sprintf("%.2fx", m / gm) : "-", fr, gf ? sprintf("%.2fx", fr / gf) : "-"
            }
        } else {
            printf "| %-9s | %9s | %8s |\n", "allocator", "ns/call", "vs glibc"
            printf "|-----------|-----------|----------|\n"
            for (j = 1; j <= na; j++) {
                a = al[j]; t = median(val[w, a, "ns_per_call"])
                printf "| %-9s | %9.1f | %8s |\n", a, t, g ? sprintf("%.2fx", t / g) : "-"
            }
        }
    }
}' "$results"
