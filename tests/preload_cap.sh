# preload_cap.sh: MEMSIZE is a hard cap.  Filling it with one size fails with ENOMEM
# at the size claimed, freeing makes all of it usable again; python3 gets a
# MemoryError, not a crash; a forked child has its own copy of the heap.
. "${FASTMEM_TESTS_SRCDIR:-$(dirname "$0")}/preload_lib.sh"
cap=$((32 * 1024 * 1024))
# block size, and the least share of MEMSIZE it must fill (measured: see README);
# qm spends 40 bytes of header and guards on every block
cases="16:74 64:89 1000:98 4096:99 65536:99 1048576:93"
qm_cases="16:24 64:56 1000:94 4096:98 65536:99 1048576:93"
for engine in $FASTMEM_ENGINES; do
    if [ "$engine" = qm ]; then this=$qm_cases; else this=$cases; fi
    for c in $this; do
        size=${c%%:*}
        min=${c#*:}
        if out=$(MEMSIZE=32M shim "$engine" "$FASTMEM_PROGS/fill" "$size" "$min" $cap 2>&1); then
            pass "fill, free, refill with $size-byte blocks [$engine]: $(echo "$out" | head -n 1)"
        else
            fail "fill with $size-byte blocks [$engine]: $out"
        fi
    done

    out=$(MEMSIZE=64M shim "$engine" $PY -c '
try:
    b = bytearray(200 * 2**20)
    print("allocated")
except MemoryError:
    print("MemoryError")' 2>&1)
    if [ "$out" = MemoryError ]; then pass "python3: 200 MiB under MEMSIZE=64M is a MemoryError [$engine]"
    else fail "python3 past the cap [$engine]: $out"; fi

    out=$(MEMSIZE=64M PYTHONMALLOC=malloc shim "$engine" $PY -c '
chunks = []
try:
    while True:
        chunks.append(bytes(2**20))
except MemoryError:
    n = len(chunks)
del chunks
again = bytearray(32 * 2**20)
print("filled", "yes" if 40 <= n <= 64 else "no", "refilled", len(again) // 2**20)' 2>&1)
    if [ "$out" = "filled yes refilled 32" ]; then pass "python3: MiB objects to the cap, MemoryError, then 32 MiB again [$engine]"
    else fail "python3 fill and refill [$engine]: $out"; fi

    out=$(MEMSIZE=64M PYTHONMALLOC=malloc shim "$engine" $PY -c '
import os
pid = os.fork()
if pid == 0:
    try:
        hog = [bytes(2**20) for _ in range(100)]
        os._exit(1)
    except MemoryError:
        os._exit(0)
_, status = os.waitpid(pid, 0)
mine = bytearray(40 * 2**20)
print("child capped" if os.WEXITSTATUS(status) == 0 else "child not capped", "parent", len(mine) // 2**20)' 2>&1)
    if [ "$out" = "child capped parent 40" ]; then pass "a forked child is capped and its parent keeps its own room [$engine]"
    else fail "fork and cap [$engine]: $out"; fi
done
finish
