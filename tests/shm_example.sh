# shm_example.sh: the README's shm example is tests/progs/shm_example.c, word for word,
# and it does what the README says, linked alone and also preloaded, for every engine.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
readme="$FASTMEM_TESTS_SRCDIR/../README"
sed -n '/^    \/\* shm_example.c:/,/^    }$/p' "$readme" | sed 's/^    //' >"$WORK/from_readme.c"
if diff -u "$FASTMEM_TESTS_SRCDIR/progs/shm_example.c" "$WORK/from_readme.c" >"$WORK/diff"; then
    pass "the README's example is tests/progs/shm_example.c"
else
    fail "the README's example differs from tests/progs/shm_example.c: $(head -n 20 "$WORK/diff")"
fi
for engine in $FASTMEM_ENGINES; do
    for how in linked preloaded; do
        if [ $how = linked ]; then
            out=$(env -u LD_PRELOAD MEMMNG=$engine timeout 60 "$FASTMEM_PROGS/shm_example" 2>&1)
        else
            out=$(LD_PRELOAD="$FASTMEM_LIB" MEMMNG=$engine timeout 60 "$FASTMEM_PROGS/shm_example" 2>&1)
        fi
        if [ "$out" = "read 4000 messages; 0 blocks left" ]; then
            pass "shm example, $how [$engine]: $out"
        else
            fail "shm example, $how [$engine]: $out"
        fi
    done
done
finish
