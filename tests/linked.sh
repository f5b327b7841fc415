# linked.sh: what linking -lfastmem does.  A program linked for the shm_* heap and run
# without LD_PRELOAD keeps glibc's malloc, and MEMSIZE cannot stop it; preloaded as
# well, its malloc is libfastmem's and the figures agree.  For every engine.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
for engine in $FASTMEM_ENGINES; do
    out=$(env -u LD_PRELOAD MEMSIZE=bogus MEMMNG=$engine timeout 60 "$FASTMEM_PROGS/linked" plain 2>&1)
    if [ "$(echo "$out" | tail -n 1 | cut -c1-3)" = "ok:" ]; then
        pass "linked, not preloaded: glibc serves malloc, MEMSIZE ignored, shm works [$engine]"
    else
        fail "linked, not preloaded [$engine]: $out"
    fi
    out=$(LD_PRELOAD="$FASTMEM_LIB" MEMSIZE=64M MEMMNG=$engine timeout 60 "$FASTMEM_PROGS/linked" preloaded 2>&1)
    if [ "$(echo "$out" | tail -n 1)" = "ok engine $engine" ] &&
        echo "$out" | grep -qE "^libfastmem:   cap +64 MiB "; then
        pass "linked and preloaded: libfastmem serves malloc, figures agree [$engine]"
    else
        fail "linked and preloaded [$engine]: $out"
    fi
done
finish
