# preload_foreign.sh: a pointer the heap never gave out never reaches the engine, and
# a damaged heap (double free, pointer into a block, a pointer into the heap's range
# past the memory it has made usable) stops the program, saying why
# (sys: a pointer into a block is one it never gave out; qm: a pointer it never gave
# out is a bug it reports, and stops the program).
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
prog=$FASTMEM_PROGS/foreign
for engine in $FASTMEM_ENGINES; do
    if [ "$engine" = qm ]; then
        # the debugging engine treats a foreign pointer as the bug it is
        shim qm "$prog" ignore >"$WORK/out" 2>"$WORK/err"
        status=$?
        if [ $status -eq 134 ] && grep -q "^libfastmem: free(0x[0-9a-f]*): not a pointer libfastmem handed out (it is outside the heap)" "$WORK/err"; then
            pass "foreign pointer: reported, and the program stops [qm]"
        else
            fail "foreign pointer [qm]: status $status: $(cat "$WORK/err")"
        fi
    else
        out=$(shim "$engine" "$prog" ignore 2>"$WORK/err")
        if [ "$out" = ok ] && grep -q "realloc(0x[0-9a-f]*): not a block of this heap" "$WORK/err" &&
            [ "$(wc -l <"$WORK/err")" -eq 1 ]; then
            pass "foreign pointers ignored, realloc of one refused with one line [$engine]"
        else
            fail "foreign pointers [$engine]: $out / $(cat "$WORK/err")"
        fi
    fi
    modes="double interior beyond beyond-realloc"
    if [ "$engine" = sys ]; then
        # sys knows the blocks it gave out, not their extents: a pointer into one is a
        # pointer it never gave out, ignored and counted (glibc never sees it)
        modes=double
        out=$(MEMSTATS=1 shim sys "$prog" interior 2>"$WORK/err")
        if [ "$out" = "survived freeing a pointer into a block" ] &&
            grep -qE "^libfastmem:   foreign_frees +1 " "$WORK/err"; then
            pass "interior: ignored and counted as foreign [sys]"
        else
            fail "interior [sys]: $out / $(cat "$WORK/err")"
        fi
    fi
    for mode in $modes; do
        # (beyond: 768 MiB past a block, inside a 1 GiB reservation, never committed)
        MEMSIZE=1G shim "$engine" "$prog" $mode >"$WORK/out" 2>"$WORK/err"
        status=$?
        case $mode in
        double) want="free(0x[0-9a-f]*): double free" ;;
        interior | beyond) want="free(0x[0-9a-f]*): not the start of a live block" ;;
        beyond-realloc) want="realloc(0x[0-9a-f]*): not the start of a live block" ;;
        esac
        # 134 = 128 + SIGABRT: the shell's status for a process that aborted
        if [ $status -eq 134 ] && grep -q "^libfastmem: $want" "$WORK/err" && [ ! -s "$WORK/out" ]; then
            pass "$mode: aborts with '$(head -c 60 "$WORK/err")...' [$engine]"
        else
            fail "$mode [$engine]: status $status, stderr: $(cat "$WORK/err"), stdout: $(cat "$WORK/out")"
        fi
    done
done
finish
