# exports.sh: the .so exports exactly the intended names (tests/exports.list): the
# whole malloc family glibc's manual asks a replacement for, glibc's __libc_* names,
# the introspection calls that must answer about the pool, and libfastmem's API.
# And it starts without dlsym: it must not even import it.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
nm -D --defined-only "$FASTMEM_LIB" | awk '$2 ~ /^[TWiV]$/ {print $3}' | LC_ALL=C sort >"$WORK/exported"
if diff -u "$FASTMEM_TESTS_SRCDIR/exports.list" "$WORK/exported"; then
    pass "exported symbols are exactly tests/exports.list ($(wc -l <"$WORK/exported") names)"
else
    fail "exported symbols differ from tests/exports.list (- intended, + exported)"
fi
nm -D --undefined-only "$FASTMEM_LIB" | awk '{print $2}' | sed 's/@.*//' >"$WORK/imported"
if grep -qxE 'dlsym|dlvsym|dlopen|malloc|calloc|realloc|free' "$WORK/imported"; then
    fail "the .so imports: $(grep -xE 'dlsym|dlvsym|dlopen|malloc|calloc|realloc|free' "$WORK/imported" | tr '\n' ' ')"
else
    pass "the .so imports neither dlsym/dlopen nor anyone else's malloc"
fi
finish
