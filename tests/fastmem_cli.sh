# fastmem_cli.sh: the fastmem command (scripts/fastmem.in, fastmem(1)).  Each option
# reaches the program as the variable it stands for, and the library takes it (the
# MEMSTATS report shows the engine and the cap asked for); a value the library refuses
# stops the command with status 1 and its one line; a bad option or no command is a
# usage error (2), a missing library 127, -V the version; LD_PRELOAD already set is
# kept after libfastmem.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
cli=${FASTMEM_CLI:-}
unset MEMMNG MEMSIZE MEMSTATS MEMRELEASE MEMPOPULATE LD_PRELOAD
if [ ! -r "$cli" ]; then
    fail "FASTMEM_CLI='$cli' is not a readable file (run through make check)"
    finish
fi

run() { # what is expected of: status, then "stdout pattern" "stderr pattern", then args
    local want=$1 out_pat=$2 err_pat=$3
    shift 3
    sh "$cli" "$@" >"$WORK/out" 2>"$WORK/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        fail "fastmem $*: status $got, wanted $want; stderr: $(head -n 3 "$WORK/err")"
    elif [ -n "$out_pat" ] && ! grep -qE -- "$out_pat" "$WORK/out"; then
        fail "fastmem $*: stdout lacks /$out_pat/: $(head -n 3 "$WORK/out")"
    elif [ -n "$err_pat" ] && ! grep -qE -- "$err_pat" "$WORK/err"; then
        fail "fastmem $*: stderr lacks /$err_pat/: $(head -n 3 "$WORK/err")"
    else
        pass "fastmem $*: status $got"
    fi
}

# The variables the program sees.
run 0 '^MEMMNG=fm$' '' -e fm -s 64M /usr/bin/env
grep -qx 'MEMSIZE=64M' "$WORK/out" && pass "-s sets MEMSIZE" || fail "-s: $(grep MEM "$WORK/out")"
case $(grep -c '^LD_PRELOAD=' "$WORK/out") in
1) grep -q "^LD_PRELOAD=$FASTMEM_LIB\$" "$WORK/out" && pass "LD_PRELOAD is the library" ||
    fail "LD_PRELOAD: $(grep LD_PRELOAD "$WORK/out")" ;;
*) fail "LD_PRELOAD: $(grep LD_PRELOAD "$WORK/out")" ;;
esac
run 0 '^MEMPOPULATE=0$' '' -p 0 -r off /usr/bin/env
grep -qx 'MEMRELEASE=off' "$WORK/out" && pass "-r sets MEMRELEASE" || fail "-r: $(grep MEM "$WORK/out")"
run 0 '' '' -- /usr/bin/env
if grep -q '^MEM' "$WORK/out"; then fail "no option: a MEM variable is set: $(grep '^MEM' "$WORK/out")"
else pass "no option: no MEM variable set"; fi

# What the library makes of them: the report at exit.
run 0 '^hello$' '^libfastmem:   cap +48 MiB ' -S -s 48M -e tlsf /bin/echo hello
grep -q 'engine tlsf' "$WORK/err" && pass "-S: the report names engine tlsf" || fail "-S: $(head -n 1 "$WORK/err")"
run 0 '^hello$' '^libfastmem:   committed +64 MiB ' -S -s 64M -p all /bin/echo hello
run 0 '^hello$' '' -s 64M -p 1 -r 1M /bin/echo hello

# Refused by the library: status 1 and its line, the command never started.
run 1 '' "MEMMNG='bogus' is not accepted" -e bogus /bin/echo hello
[ -s "$WORK/out" ] && fail "-e bogus: the command ran" || pass "-e bogus: the command did not run"
run 1 '' "MEMSIZE='12Q' is not accepted" -s 12Q /bin/echo hello
run 1 '' "MEMPOPULATE='sometimes' is not accepted" -p sometimes /bin/echo hello
run 1 '' "MEMRELEASE='1' is not accepted" -r 1 /bin/echo hello
run 1 '' 'MEMPOPULATE=all needs MEMSIZE' -p all /bin/echo hello

# The command's own status comes back.
run 3 '' '' -s 64M /bin/sh -c 'exit 3'

# Usage errors, the version, a missing library, LD_PRELOAD kept.
run 2 '' '^usage: fastmem ' -x /bin/echo hello
run 2 '' '^usage: fastmem ' -s 64M
run 2 '' '-p MODE' -h
run 0 '^fastmem [0-9]' '' -V
FASTMEM_LIB=$WORK/none.so run 127 '' 'library not found' /bin/echo hello
LD_PRELOAD=/nonexistent/extra.so run 0 '' '' /usr/bin/env
grep -qx "LD_PRELOAD=$FASTMEM_LIB /nonexistent/extra.so" "$WORK/out" &&
    pass "an LD_PRELOAD already set is kept, after libfastmem" ||
    fail "LD_PRELOAD kept: $(grep LD_PRELOAD "$WORK/out")"
finish
