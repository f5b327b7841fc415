#!/bin/sh
# quickstart.sh: install what is missing, build libfastmem in _build/quick, and run a
# real program (python3) under it with its statistics printed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
command -v python3 >/dev/null 2>&1 || "$top/scripts/deps.sh" test
cd "$top"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p _build/quick
cd _build/quick
[ -f Makefile ] || ../../configure --quiet
make -j"$(nproc)" >/dev/null
echo "built $PWD/src/.libs/libfastmem.so; running python3 under it (MEMSIZE=256M, PYTHONMALLOC=malloc):"
# PYTHONMALLOC=malloc sends every Python object through malloc, so all of it is capped.
FASTMEM_LIB=$PWD/src/.libs/libfastmem.so PYTHONMALLOC=malloc \
    sh scripts/fastmem -e tlsf -s 256M -S /usr/bin/python3 -c \
    'import json; d = {str(i): list(range(i % 50)) for i in range(100000)}; print("python3 ran; json of", len(json.dumps(d)), "bytes")'
