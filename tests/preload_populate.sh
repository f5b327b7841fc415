# preload_populate.sh: MEMPOPULATE.  By default (and set to 1) a block of 40 KiB from
# fresh memory is faulted in whole, and the resident set says so; with 0 only the
# pages the program writes are resident; with all the whole pool is resident before
# main and the blocks take no page fault.  For every engine with a pool.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    if [ "$engine" = sys ]; then
        echo "(sys: glibc's heap; MEMPOPULATE does not apply)"
        continue
    fi
    for setting in "" 1 0 off; do
        case $setting in "" | 1) mode=on ;; *) mode=off ;; esac
        if [ -n "$setting" ]; then export MEMPOPULATE=$setting; else unset MEMPOPULATE; fi
        out=$(MEMSIZE=1G shim "$engine" "$FASTMEM_PROGS/populate" $mode 2>&1)
        unset MEMPOPULATE
        case $out in
        ok:* | skip:*) pass "MEMPOPULATE=${setting:-(unset)}: $out [$engine]" ;;
        *) fail "MEMPOPULATE=${setting:-(unset)} [$engine]: $out" ;;
        esac
    done
    out=$(MEMSIZE=96M MEMPOPULATE=all shim "$engine" "$FASTMEM_PROGS/populate" all 96 2>&1)
    case $out in
    ok:*) pass "MEMPOPULATE=all: $out [$engine]" ;;
    *) fail "MEMPOPULATE=all [$engine]: $out" ;;
    esac
done
finish
