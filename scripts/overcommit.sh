#!/bin/sh
# overcommit.sh BUILDDIR: run programs under the shim with vm.overcommit_memory=2
# (strict accounting: the kernel refuses to commit more than CommitLimit), then put
# the setting back.  The heap reserves its whole cap without committing it, so a cap
# larger than CommitLimit must still start, use what it needs, and fail cleanly with
# ENOMEM (not SIGSEGV, not the OOM killer) where the kernel refuses more.
# Needs root; elsewhere it says it skipped, and succeeds.
set -u
build=$1
lib=$build/src/.libs/libfastmem.so
knob=/proc/sys/vm/overcommit_memory
py=/usr/bin/python3
if ! old=$(cat $knob 2>/dev/null) || ! (echo "$old" > $knob) 2>/dev/null; then
    echo "overcommit: skipped (cannot write $knob: needs root on a machine that allows it)"
    exit 0
fi
trap 'echo "$old" > $knob' EXIT INT TERM
echo 2 > $knob
limit_kb=$(awk '/^CommitLimit/ {print $2}' /proc/meminfo)
echo "overcommit: vm.overcommit_memory=2, CommitLimit $((limit_kb / 1024)) MiB"
fail=0
check() { # name, expected output, command...
    name=$1; want=$2; shift 2
    got=$("$@" 2>&1); rc=$?
    if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then echo "PASS: $name"
    else echo "FAIL: $name (status $rc): $got"; fail=1; fi
}
big=$(( (limit_kb / 1024 / 1024) * 2 + 2 ))G   # a cap twice CommitLimit
check "a program starts with MEMSIZE=$big, above CommitLimit" "ok" \
    env MEMSIZE="$big" PYTHONMALLOC=malloc LD_PRELOAD="$lib" $py -c 'x = [bytes(1000) for i in range(100000)]; print("ok")'
check "the default MEMSIZE (physical memory) starts" "ok" \
    env PYTHONMALLOC=malloc LD_PRELOAD="$lib" $py -c 'x = bytearray(200 * 2**20); print("ok")'
check "asking for more than the kernel will commit is a MemoryError" "MemoryError" \
    env MEMSIZE="$big" LD_PRELOAD="$lib" $py -c "
try:
    x = bytearray($limit_kb * 1024 + 2**30)
    print('allocated')
except MemoryError:
    print('MemoryError')"
check "after the refusal the heap still serves" "ok" \
    env MEMSIZE="$big" LD_PRELOAD="$lib" $py -c "
try:
    x = bytearray($limit_kb * 1024 + 2**30)
except MemoryError:
    pass
y = bytearray(100 * 2**20); print('ok')"
exit $fail
