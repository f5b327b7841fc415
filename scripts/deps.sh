#!/bin/sh
# deps.sh [build|test]: install the Debian packages libfastmem needs, if any is missing.
#   build: what ./configure && make need.
#   test:  that, plus the real programs the preload tests run and clang for the
#          warning check.
set -eu
build="autoconf automake libtool pkg-config check make gcc libc6-dev"
test="$build binutils clang python3 sqlite3 git xz-utils coreutils"
case ${1:-build} in
build) want=$build ;;
test) want=$test ;;
*) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac
missing=
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
