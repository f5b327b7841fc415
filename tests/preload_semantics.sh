# preload_semantics.sh: glibc's malloc semantics, case by case, from a program running
# under the shim (tests/progs/semantics.c), for every engine.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    if out=$(MEMSIZE=16M shim "$engine" "$FASTMEM_PROGS/semantics" 2>&1); then
        pass "glibc semantics [$engine]: $(echo "$out" | tail -n 1)"
    else
        fail "glibc semantics [$engine]"
        echo "$out" | grep -v '^ok' | head -n 30
    fi
done
finish
