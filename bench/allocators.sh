# allocators.sh: sourced by run.sh and instructions.sh.  Which shared object each
# allocator name preloads, and which of them this machine has.
#
#   pick_allocators PROGRAM LIB NAME...
#
# sets preload[NAME] (empty for glibc: nothing preloaded), engine[NAME] (MEMMNG, for
# libfastmem's engines, whose LIB is the built libfastmem.so) and usable (the names
# that can run, in order); a peer that is not installed is skipped with a note on
# stderr, and an unknown name ends the program.

declare -A preload engine
usable=

# The shared object a Debian package installs, found through the linker cache.
peer_lib() {
    /sbin/ldconfig -p | awk -v n="$1" '$1 == n && /x86-64|x86_64|AArch64/ { print $NF; exit }'
}

pick_allocators() {
    local prog=$1 lib=$2 a
    shift 2
    for a in "$@"; do
        case $a in
        glibc) preload[$a]= ;;
        jemalloc) preload[$a]=$(peer_lib libjemalloc.so.2) ;;
        tcmalloc) preload[$a]=$(peer_lib libtcmalloc_minimal.so.4) ;;
        mimalloc) preload[$a]=$(peer_lib libmimalloc.so.2) ;;
        tlsf | fm | qm | sys) preload[$a]=$lib; engine[$a]=$a ;;
        *) echo "$prog: unknown allocator '$a'" >&2; exit 2 ;;
        esac
        if [ "$a" != glibc ] && [ ! -f "${preload[$a]}" ]; then
            echo "$prog: skipping $a: not installed" >&2
            continue
        fi
        usable="$usable $a"
    done
}
