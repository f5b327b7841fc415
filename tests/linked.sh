# linked.sh: a program linked with -lfastmem (not preloaded) gets the heap's figures
# through the calls declared in <fastmem.h>, for every engine.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    out=$(MEMSIZE=64M MEMMNG=$engine timeout 60 "$FASTMEM_PROGS/linked" 2>&1)
    if [ "$(echo "$out" | tail -n 1)" = "ok engine $engine" ] &&
        echo "$out" | grep -qE "^libfastmem:   cap +64 MiB "; then
        pass "linked program reads and prints the statistics [$engine]"
    else
        fail "linked program [$engine]: $out"
    fi
done
finish
