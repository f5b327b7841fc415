# preload_early.sh: the first malloc comes before any constructor of libfastmem's (a
# library the program needs allocates in its own constructor, as libstdc++ does in
# every C++ program), and libfastmem serves it.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
prog=$FASTMEM_PROGS/early_main
plain=$(timeout 60 "$prog" 2>&1)
if [ "$plain" = "constructor allocated; served by libfastmem: no" ]; then
    pass "without the shim, glibc serves the constructor (the test can tell)"
else
    fail "without the shim: $plain"
fi
for engine in $FASTMEM_ENGINES; do
    out=$(shim "$engine" "$prog" 2>&1)
    if [ "$out" = "constructor allocated; served by libfastmem: yes" ]; then
        pass "an allocating constructor that runs before libfastmem's is served by it [$engine]"
    else
        fail "early constructor [$engine]: $out"
    fi
done
finish
