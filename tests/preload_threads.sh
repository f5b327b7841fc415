# preload_threads.sh: threads freeing each other's blocks, with and without a tight
# cap, and fork while other threads allocate.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
prog=$FASTMEM_PROGS/threads
for engine in $FASTMEM_ENGINES; do
    for size in 1G 8M; do
        if out=$(MEMSIZE=$size shim "$engine" "$prog" churn 2>&1); then
            pass "4 threads, cross-thread frees, MEMSIZE=$size [$engine]: $out"
        else
            fail "threads churn, MEMSIZE=$size [$engine]: $out"
        fi
    done
    if out=$(shim "$engine" "$prog" fork 2>&1); then
        pass "fork while threads allocate [$engine]: $out"
    else
        fail "fork while threads allocate [$engine]: $out"
    fi
done
finish
