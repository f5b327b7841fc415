# preload_config.sh: every refused configuration stops the program before main, with
# exit status 1 and one line naming the variable, the value and what is accepted; every
# accepted form runs the program, and the cap it reports is the one asked for.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"

# Engine names that are not (yet) engines: refused like any unknown name.
refused_engines="bogus 3 4 tlsf2 f-malloc q-malloc systems"

refused() { # VAR VALUE
    local var=$1 value=$2
    env "$var=$value" LD_PRELOAD="$FASTMEM_LIB" /bin/echo reached-main >"$WORK/out" 2>"$WORK/err"
    local status=$?
    if [ $status -eq 1 ] && [ ! -s "$WORK/out" ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
        grep -qF "$var='$value'" "$WORK/err" && grep -q "expected" "$WORK/err"; then
        pass "$var='$value' refused: $(cut -c1-90 "$WORK/err")"
    else
        fail "$var='$value': status $status, stdout '$(cat "$WORK/out")', stderr '$(cat "$WORK/err")'"
    fi
}

accepted() { # expected-cap-or-empty VAR=VALUE...
    local cap=$1
    shift
    env "$@" MEMSTATS=1 LD_PRELOAD="$FASTMEM_LIB" /bin/echo reached-main >"$WORK/out" 2>"$WORK/err"
    local status=$?
    if [ $status -ne 0 ] || [ "$(cat "$WORK/out")" != reached-main ]; then
        fail "$*: status $status, stderr: $(head -n 2 "$WORK/err")"
    elif [ -n "$cap" ] && ! grep -qE "^libfastmem:   cap +$cap " "$WORK/err"; then
        fail "$*: the report does not show a cap of $cap: $(grep ' cap ' "$WORK/err")"
    else
        pass "$* accepted${cap:+ (cap $cap)}"
    fi
}

refused_together() { # TEXT VAR=VALUE...: a combination that cannot be had
    local text=$1
    shift
    env "$@" LD_PRELOAD="$FASTMEM_LIB" /bin/echo reached-main >"$WORK/out" 2>"$WORK/err"
    local status=$?
    if [ $status -eq 1 ] && [ ! -s "$WORK/out" ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
        grep -qF "$text" "$WORK/err"; then
        pass "$* refused: $(cut -c1-90 "$WORK/err")"
    else
        fail "$*: status $status, stdout '$(cat "$WORK/out")', stderr '$(cat "$WORK/err")'"
    fi
}

for value in $refused_engines ''; do refused MEMMNG "$value"; done
for value in abc 0 -5 12Q '' 99999999999999999999999 1K 255K 1P 65T ' 64M' '64M ' 64M5 1.5G 0x100000; do
    refused MEMSIZE "$value"
done
for value in maybe '' 2 yess; do refused MEMSTATS "$value"; done
for value in 1 255K 1P on abc ''; do refused MEMRELEASE "$value"; done
for value in 2 maybe 64K '' al allx; do refused MEMPOPULATE "$value"; done
refused_together "MEMPOPULATE=all needs MEMSIZE" MEMPOPULATE=all
refused_together "MEMRELEASE must be unset, 0 or off" MEMPOPULATE=all MEMSIZE=64M MEMRELEASE=1M
refused_together "more than this machine's memory" MEMPOPULATE=All MEMSIZE=64T

for e in tlsf TLSF Tlsf_Malloc 2 fm FM f_malloc F_Malloc fmalloc 0; do accepted "" MEMMNG=$e; done
for e in $FASTMEM_ENGINES tlsf_malloc 2 f_malloc fmalloc 0 q_malloc qmalloc 1 system QM SYS; do
    accepted "" MEMMNG=$e
done
for s in 67108864 65536K 64M 64m 64MB 64MiB 64mib; do accepted "64 MiB" MEMSIZE=$s; done
accepted "1 GiB" MEMSIZE=1G
accepted "1 TiB" MEMSIZE=1T
accepted "256 KiB" MEMSIZE=256K
accepted "1 MiB" MEMSIZE=1048576B
for v in 0 off OFF no 256K 1M 64m 2G; do accepted "" MEMRELEASE=$v; done
for v in 0 1 off on No YES false True; do accepted "" MEMPOPULATE=$v; done
accepted "64 MiB" MEMPOPULATE=all MEMSIZE=64M
accepted "64 MiB" MEMPOPULATE=ALL MEMSIZE=64M MEMRELEASE=off
for v in 0 1 yes no on off true false YES Off; do
    env MEMSTATS=$v LD_PRELOAD="$FASTMEM_LIB" /bin/echo reached-main >"$WORK/out" 2>"$WORK/err"
    lines=$(grep -c '^libfastmem:' "$WORK/err")
    case $v in 1 | yes | on | true | YES) want=yes ;; *) want=no ;; esac
    got=no
    [ "$lines" -gt 5 ] && got=yes
    if [ "$(cat "$WORK/out")" = reached-main ] && [ $got = $want ] && { [ $want = yes ] || [ "$lines" -eq 0 ]; }; then
        pass "MEMSTATS=$v: report $want"
    else
        fail "MEMSTATS=$v: $lines report lines, wanted report: $want"
    fi
done
env -u MEMSIZE -u MEMMNG -u MEMSTATS LD_PRELOAD="$FASTMEM_LIB" /bin/echo reached-main >"$WORK/out" 2>"$WORK/err"
if [ "$(cat "$WORK/out")" = reached-main ] && [ ! -s "$WORK/err" ]; then pass "nothing set: runs with the defaults, silently"
else fail "defaults: $(cat "$WORK/err")"; fi
finish
