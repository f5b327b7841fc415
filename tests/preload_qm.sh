# preload_qm.sh: MEMMNG=qm catches each kind of memory bug, names it and the call site
# that allocated the block, and stops the program; a correct program runs with no
# false alarm; MEMSTATS=1 adds a leak summary by call site.  Every bug is committed
# in its own process (tests/progs/qmbugs.c).
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
prog=$FASTMEM_PROGS/qmbugs
site="allocated at allocate_here+0x[0-9a-f]* (qmbugs)"

# caught MODE PATTERN: MODE aborts (status 134), printing nothing on stdout and one
# report matching PATTERN on stderr (the only line from libfastmem; the shell adds
# its own "Aborted").
caught() {
    local mode=$1 want=$2
    shim qm "$prog" "$mode" >"$WORK/out" 2>"$WORK/err"
    local status=$?
    if [ $status -eq 134 ] && [ ! -s "$WORK/out" ] && grep -q "^libfastmem: $want" "$WORK/err" &&
        [ "$(grep -c "^libfastmem:" "$WORK/err")" -eq 1 ]; then
        pass "$mode: $(grep "^libfastmem:" "$WORK/err" | cut -c 1-150)"
    else
        fail "$mode: status $status, stdout '$(cat "$WORK/out")', stderr: $(cat "$WORK/err")"
    fi
}

caught overrun "free(0x[0-9a-f]*): the guard after the block was overwritten (a write past its end) (block 0x[0-9a-f]*, 24 bytes, $site)"
caught underrun "free(0x[0-9a-f]*): the guard before the block was overwritten (a write before its start) (block 0x[0-9a-f]*, 24 bytes, $site)"
caught double "free(0x[0-9a-f]*): double free: the block was already freed (block 0x[0-9a-f]*, 24 bytes, $site)"
caught wild "free(0x[0-9a-f]*): not the start of a live block of this heap"
caught realloc "realloc(0x[0-9a-f]*): the guard after the block was overwritten (a write past its end) (block 0x[0-9a-f]*, 24 bytes, $site)"
caught uaf-check "fastmem_check: the heap at 0x[0-9a-f]* is damaged: a block was written after it was freed (block 0x[0-9a-f]*, 24 bytes, $site)"
caught uaf-evict "qm: a block was written after it was freed (block 0x[0-9a-f]*, 24 bytes, $site)"
caught uaf-exit "the heap is damaged at exit of pid [0-9]*: a block was written after it was freed (block 0x[0-9a-f]*, 24 bytes, $site)"
caught overrun-exit "the heap is damaged at exit of pid [0-9]*: the guard after the block was overwritten (a write past its end) (block 0x[0-9a-f]*, 24 bytes, $site)"

# The same bugs under the other engines are not qm's to name: a correct program is.
out=$(shim qm "$prog" clean 2>"$WORK/err")
status=$?
if [ $status -eq 0 ] && [ "$out" = ok ] && [ ! -s "$WORK/err" ]; then
    pass "a correct program runs under qm with no report"
else
    fail "clean program under qm: status $status, stdout '$out', stderr: $(cat "$WORK/err")"
fi

# The leak summary: the largest call site first, with its count and bytes.
MEMSTATS=1 shim qm "$prog" leaks >"$WORK/out" 2>"$WORK/err"
status=$?
first=$(grep -A3 "still allocated at exit" "$WORK/err" | grep -E "leak_(small|large)" | head -n 2)
if [ $status -eq 0 ] && grep -q "^libfastmem: still allocated at exit: [0-9]* blocks, [0-9]* bytes, from [0-9]* call sites; the largest:" "$WORK/err" &&
    echo "$first" | head -n 1 | grep -qE "^libfastmem: +1000 +1  leak_large\+0x[0-9a-f]+ \(qmbugs\)$" &&
    echo "$first" | tail -n 1 | grep -qE "^libfastmem: +300 +3  leak_small\+0x[0-9a-f]+ \(qmbugs\)$"; then
    pass "MEMSTATS=1 leak summary by call site, largest first: $(echo "$first" | tr -s ' ' | tr '\n' ';')"
else
    fail "leak summary: status $status: $(grep -A8 'still allocated' "$WORK/err")"
fi

# Without MEMSTATS a leak is no error, and nothing is printed.
shim qm "$prog" leaks >"$WORK/out" 2>"$WORK/err"
if [ $? -eq 0 ] && [ ! -s "$WORK/err" ]; then pass "leaks print nothing without MEMSTATS"
else fail "leaks without MEMSTATS: $(cat "$WORK/err")"; fi
finish
