#!/bin/sh
# test.sh: the whole test suite, as CI runs it.  From a fresh clone on Debian 12:
#   1. install what is missing (scripts/deps.sh test)
#   2. gcc build with -Werror: make check (unit tests and preload tests)
#   3. clang build with -Werror: make check
#   4. AddressSanitizer + UndefinedBehaviorSanitizer build: the unit tests;
#      ThreadSanitizer build: the thread-cache suite and the engines' threaded tests
#   5. make distcheck: build, test, install and uninstall from the tarball
#   6. strict overcommit (vm.overcommit_memory=2), when this machine lets us set it
# Build trees go to _build/; a failing step prints its logs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$top/scripts/deps.sh" test
cd "$top"
autoreconf -fi >/dev/null

step() { printf '\n=== %s\n' "$*"; }

show_logs() {
    for f in $(find "$1" -name '*.log' -path '*tests*' 2>/dev/null); do
        if grep -qE '^(FAIL|ERROR)' "$f" 2>/dev/null || grep -qE '^# (FAIL|ERROR): *[1-9]' "$f" 2>/dev/null; then
            printf '\n--- %s\n' "$f"; tail -n 80 "$f"
        fi
    done
}

build_and_check() { # dir, make target (and its variables, shell-quoted), configure arguments...
    dir=$1; target=$2; shift 2
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && "$top/configure" --quiet "$@" && make -j"$jobs" >/dev/null &&
        eval make -j"$jobs" "$target") || { show_logs "$dir"; echo "FAILED: $target in $dir" >&2; exit 1; }
}

step "gcc, -Werror: make check"
build_and_check _build/gcc check --enable-werror CC=gcc
step "clang, -Werror: make check"
build_and_check _build/clang check --enable-werror CC=clang
step "ASan + UBSan: unit tests"
build_and_check _build/asan check --enable-werror --enable-sanitizers CC=gcc
step "ThreadSanitizer: the thread-cache suite and the engines' threaded tests"
# Some kernels lay out memory where gcc 12's ThreadSanitizer runtime cannot start
# ("unexpected memory mapping"); on such a machine the step says so and is skipped.
probe=$(mktemp -d)
printf 'int main(void) { return 0; }\n' >"$probe/t.c"
if gcc -fsanitize=thread -o "$probe/t" "$probe/t.c" 2>/dev/null && "$probe/t" 2>/dev/null; then
    build_and_check _build/tsan "check TESTS='tests/check_tcache tests/check_engine'" --enable-werror --enable-sanitizers=thread CC=gcc
else
    echo "skipped: ThreadSanitizer's runtime cannot start on this machine"
fi
rm -rf "$probe"
step "make distcheck"
(cd _build/gcc && make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror) ||
    { show_logs _build/gcc; echo "FAILED: distcheck" >&2; exit 1; }
step "strict overcommit"
sh "$top/scripts/overcommit.sh" "$top/_build/gcc"
echo
echo "all tests passed"
