# preload_release.sh: MEMRELEASE.  Set, a program that frees most of a large heap sees
# its RSS drop (free runs of that size go back to the kernel as they form); unset or
# off, the memory stays with the heap, as documented.  For every engine with a pool.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    if [ "$engine" = sys ]; then
        echo "(sys: glibc gives memory back by its own rules; MEMRELEASE does not apply)"
        continue
    fi
    out=$(MEMRELEASE=1M MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/release" 2>&1)
    case $out in
    ok:*) pass "MEMRELEASE=1M: $out [$engine]" ;;
    *) fail "MEMRELEASE=1M [$engine]: $out" ;;
    esac
    for setting in "" off; do
        if [ -n "$setting" ]; then export MEMRELEASE=$setting; else unset MEMRELEASE; fi
        out=$(MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/release" kept 2>&1)
        unset MEMRELEASE
        case $out in
        ok:*) pass "MEMRELEASE=${setting:-(unset)}: kept: $out [$engine]" ;;
        *) fail "MEMRELEASE=${setting:-(unset)} [$engine]: $out" ;;
        esac
    done
done
finish
