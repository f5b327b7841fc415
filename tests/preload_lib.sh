# preload_lib.sh: sourced by the preload tests.  They run real programs under the
# built libfastmem.so and compare them with runs without it.
#
# The environment comes from tests/local.mk: FASTMEM_LIB (the .so), FASTMEM_ENGINES
# (every engine to test), FASTMEM_PROGS (the test programs), FASTMEM_SANITIZERS.
set -u
if [ "${FASTMEM_SANITIZERS:-0}" = 1 ]; then
    echo "SKIP: built with sanitizers: an ASan-built allocator cannot be preloaded"
    exit 77
fi
if [ ! -r "${FASTMEM_LIB:-}" ]; then
    echo "FAIL: FASTMEM_LIB='${FASTMEM_LIB:-}' is not a readable file (run through make check)"
    exit 99
fi
PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastmem-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passes=0
fails=0

pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# finish: the summary, and the exit status of the whole test.
finish() {
    echo "$passes passed, $fails failed"
    [ "$fails" -eq 0 ] && exit 0
    exit 1
}

# shim ENGINE COMMAND...: run COMMAND with libfastmem preloaded, engine ENGINE; one
# that runs 120 s (a deadlock) is stopped and fails.
shim() {
    local engine=$1
    shift
    timeout 120 env MEMMNG="$engine" LD_PRELOAD="$FASTMEM_LIB" "$@"
}

# compare NAME ENGINE SCRIPT: run the bash SCRIPT twice, in fresh directories, without
# and with the shim (so bash and everything it starts run under it), and require the
# same stdout and exit status.  A run that takes over 120 s (a deadlock) fails.
compare() {
    local name=$1 engine=$2 script=$3 dir
    for dir in plain shim; do
        rm -rf "$WORK/$dir"
        mkdir -p "$WORK/$dir"
    done
    (cd "$WORK/plain" && timeout 120 bash -c "$script" >"$WORK/plain.out" 2>"$WORK/plain.err")
    local want=$?
    (cd "$WORK/shim" && timeout 120 env MEMMNG="$engine" LD_PRELOAD="$FASTMEM_LIB" \
        bash -c "$script" >"$WORK/shim.out" 2>"$WORK/shim.err")
    local got=$?
    if [ "$got" -ne "$want" ]; then
        fail "$name [$engine]: exit status $got under the shim, $want without"
        tail -n 20 "$WORK/shim.err"
    elif ! cmp -s "$WORK/plain.out" "$WORK/shim.out"; then
        fail "$name [$engine]: output differs"
        diff "$WORK/plain.out" "$WORK/shim.out" | head -n 20
        tail -n 5 "$WORK/shim.err"
    elif [ ! -s "$WORK/plain.out" ]; then
        fail "$name [$engine]: the program printed nothing to compare"
        tail -n 5 "$WORK/plain.err"
    else
        pass "$name [$engine] ($(wc -l <"$WORK/shim.out") lines identical)"
    fi
}
