/* fastmem.h: the public interface of libfastmem.
 *
 * Preloaded (LD_PRELOAD=libfastmem.so), libfastmem replaces the whole malloc family of
 * a program and serves it from one pool of MEMSIZE bytes, managed by the engine MEMMNG
 * names.  This header adds what a program can ask of it directly: the statistics of
 * that pool, and a heap in shared memory for a process and the processes it forks.  Link with `pkg-config --cflags --libs fastmem`.  See libfastmem(7) and
 * fastmem_stats(3).
 */
#ifndef FASTMEM_H
#define FASTMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTMEM_VERSION_MAJOR 0
#define FASTMEM_VERSION_MINOR 1
#define FASTMEM_VERSION_PATCH 0
#define FASTMEM_VERSION_STRING "0.1.0"


/* The statistics of a heap.  One list generates the struct, the report printed by
 * MEMSTATS=1 and malloc_stats(), and the field names; B marks a byte count, N a count. */
#define FASTMEM_STATS_FIELDS(X)                                                            \
    X(cap,            B, "the most the heap may ever use (MEMSIZE)")                       \
    X(committed,      B, "address space made usable so far")                               \
    X(in_use,         B, "in live blocks, as malloc_usable_size counts them")              \
    X(peak_in_use,    B, "the most in_use has been")                                       \
    X(live_blocks,    N, "blocks handed out and not freed")                                \
    X(pool_used,      B, "pool taken by live blocks, their headers and the engine tables") \
    X(free_bytes,     B, "cap - pool_used: what is left (cached blocks too), in pieces or not") \
    X(free_fragments, N, "free blocks in the committed pool")                              \
    X(largest_free,   B, "the largest block that can be handed out now")                   \
    X(calls_malloc,   N, "malloc calls")                                                   \
    X(calls_calloc,   N, "calloc calls")                                                   \
    X(calls_realloc,  N, "realloc and reallocarray calls")                                 \
    X(calls_aligned,  N, "memalign, posix_memalign, aligned_alloc, valloc, pvalloc calls") \
    X(calls_free,     N, "free calls that freed a block")                                  \
    X(failed_cap,     N, "requests refused with ENOMEM: no room left under the cap")       \
    X(failed_invalid, N, "requests refused as impossible (size overflow, bad alignment)")  \
    X(foreign_frees,  N, "frees of pointers the heap never gave out, ignored")             \
    X(trimmed,        B, "given back to the kernel (malloc_trim; MEMRELEASE)")                    \
    X(recovered,      N, "times a process died holding a shared heap's lock, recovered")   \
    X(cached,         B, "in freed blocks the thread caches and their depot hold: free")

struct fastmem_stats {
    char engine[16]; /* the engine's MEMMNG name, NUL-terminated */
#define FASTMEM_STATS_FIELD_(name, kind, doc) uint64_t name;
    FASTMEM_STATS_FIELDS(FASTMEM_STATS_FIELD_)
#undef FASTMEM_STATS_FIELD_
};

/* Fill *st (of size `size`, normally sizeof *st) with the statistics of the process
 * heap.  A caller built against an older, shorter struct gets its prefix.  Returns 0,
 * or -1 with errno EINVAL (st NULL or size too small for the engine name) or ENOSYS
 * (libfastmem does not serve this process's malloc). */
int fastmem_stats_get(struct fastmem_stats *st, size_t size);

/* Write the statistics report (what MEMSTATS=1 prints at exit) to file descriptor fd.
 * Returns 0, or -1 with errno as write(2) sets it, or ENOSYS as above. */
int fastmem_stats_print(int fd);

/* Walk every block of the process heap and check every invariant (MEMMNG=qm: every
 * guard and every quarantined block's poison too).  Returns 0 if the heap is sound.
 * If not: under qm the damage is reported on stderr and the process aborts; under the
 * other engines one line on stderr and -1 with errno EIO.  -1 with ENOSYS if
 * libfastmem does not serve this process's malloc. */
int fastmem_check(void);

/* The version of the library actually loaded, e.g. "0.1.0". */
const char *fastmem_version(void);

/* ------------------------------------------------------------------ shared memory
 *
 * One heap in one shared mapping, made by shm_init before fork: every process forked
 * after it sees the region at the same address, so pointers stored inside it are
 * valid in all of them, and any of them may allocate and free in it.  The size given
 * to shm_init is a hard cap.  The engine is the one MEMMNG names (default tlsf).
 * Every call takes a robust process-shared lock kept in the region; a process killed
 * while holding it is detected by the next caller, which repairs the heap's index and
 * checks it.  See shm_malloc(3).
 */

/* shm_init_flags: lock the region in RAM (mlock; Kamailio's mlock_pages). */
#define FASTMEM_SHM_LOCK 1u
/* shm_init_flags: touch every page now (Kamailio's shm_force_alloc). */
#define FASTMEM_SHM_PREFAULT 2u

/* Make the region: size bytes (rounded up to a page).  0, or -1 with errno: EINVAL
 * (size 0, too small for the engine's tables, or past 64 TiB; MEMMNG not an engine),
 * EBUSY (the region exists), ENOMEM (the kernel refused the mapping, or, with
 * FASTMEM_SHM_LOCK, RLIMIT_MEMLOCK is too low), EPERM (mlock not permitted). */
int shm_init(size_t size);
int shm_init_flags(size_t size, unsigned flags);

void *shm_malloc(size_t size);                 /* NULL with ENOMEM when full */
void *shm_calloc(size_t nmemb, size_t size);
void *shm_realloc(void *ptr, size_t size);     /* keeps the contents; on failure ptr stays */
void shm_free(void *ptr);
char *shm_strdup(const char *s);
size_t shm_usable_size(const void *ptr);      /* 0 if ptr is not a live block of the region */

/* Unmap the region in this process.  Other processes keep their mapping. */
void shm_destroy(void);

/* The region's statistics, in the private heap's form (fastmem_stats_get), and its
 * report.  -1 with errno EINVAL before shm_init. */
int shm_stats_get(struct fastmem_stats *st, size_t size);
int shm_stats_print(int fd);

/* Walk every invariant of the region's heap: 0 if it is sound, else -1 with errno EIO
 * (and one line on stderr naming what is broken), or EINVAL before shm_init. */
int shm_check(void);

#ifdef __cplusplus
}
#endif

#endif
