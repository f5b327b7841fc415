# preload_release.sh: MEMRELEASE.  By default (256K) and when set, a program that frees
# most of a large heap sees its RSS drop (free runs that large go back to the kernel,
# in batches of 4 MiB); off, or above the size of the runs, the memory stays with the
# heap, as documented.  A heap built by sessions of mixed sizes gives back what its
# freed sessions took.  For every engine with a pool.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    if [ "$engine" = sys ]; then
        echo "(sys: glibc gives memory back by its own rules; MEMRELEASE does not apply)"
        continue
    fi
    for setting in "" 1M 4M; do
        if [ -n "$setting" ]; then export MEMRELEASE=$setting; else unset MEMRELEASE; fi
        out=$(MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/release" 2>&1)
        unset MEMRELEASE
        case $out in
        ok:*) pass "MEMRELEASE=${setting:-(unset)}: $out [$engine]" ;;
        *) fail "MEMRELEASE=${setting:-(unset)} [$engine]: $out" ;;
        esac
    done
    # A heap built session by session, nine sessions in ten freed at random: their
    # memory goes back too, by default (the thread caches neither spread a session
    # over batches nor keep blocks inside its free runs: README, "Thread caches").
    # qm keeps freed blocks in its quarantine, spread over the heap, by design.
    if [ "$engine" != qm ]; then
        out=$(MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/release" sessions 2>&1)
        case $out in
        ok:*) pass "sessions: $out [$engine]" ;;
        *) fail "sessions [$engine]: $out" ;;
        esac
    fi
    # The program frees runs of 6.2 MiB: a 16M threshold keeps them too.
    for setting in off 16M; do
        out=$(MEMRELEASE=$setting MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/release" kept 2>&1)
        case $out in
        ok:*) pass "MEMRELEASE=$setting: kept: $out [$engine]" ;;
        *) fail "MEMRELEASE=$setting [$engine]: $out" ;;
        esac
    done
done
finish
