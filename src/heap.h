/* heap.h: a heap is one engine instance over one address range, with the lock that
 * serialises it, the cap it may never pass, and its statistics.
 *
 * The range [base, base+cap) is reserved whole when the heap is made, so a pointer
 * inside it can only have come from this heap: ownership is one compare, and no
 * foreign pointer (from ld.so, or a library with its own allocator) ever reaches the
 * engine.  Of that range, [base, base+committed) is usable; the heap commits more as
 * the engine runs out, and never past cap.
 *
 * The engine instance lives at eng (inside the range).  The private heap's struct is a
 * global; a shared heap keeps its struct inside its own region, so every process sees
 * the same lock and counters.
 *
 * A shared heap's lock is a robust, process-shared pthread mutex, because a process
 * may be killed while it holds it: the kernel then hands the lock to the next taker
 * with EOWNERDEAD, and only a robust mutex gets that notice.  The taker rebuilds the
 * engine's index from the boundary tags (which every engine keeps consistent at each
 * store that matters, see block.h), checks every invariant, and goes on; a heap that
 * fails the check is reported and marked damaged, and from then on every call on it
 * fails with EIO instead of spreading the damage.  A waiter never sleeps on the lock
 * for longer than a short period at a time (lock.c, fm_robust_lock): the kernel's one
 * wake-up can go to a process killed before it takes the lock.
 */
#ifndef FM_HEAP_H
#define FM_HEAP_H

#include "engine.h"
#include "lock.h"

/* Populate-ahead (heap.c): a block of up to FM_POPULATE_SMALL taken from fresh memory
 * is faulted in whole, with FM_POPULATE_AHEAD bytes past it. */
#ifndef FM_POPULATE_SMALL
#define FM_POPULATE_SMALL ((size_t)64 * 1024)
#endif
#ifndef FM_POPULATE_AHEAD
#define FM_POPULATE_AHEAD ((size_t)512 * 1024)
#endif

#include <fastmem.h>
#include <pthread.h>

struct fm_counters {
    uint64_t in_use, peak_in_use, live_blocks;
    uint64_t calls_malloc, calls_calloc, calls_realloc, calls_aligned, calls_free;
    uint64_t failed_cap, failed_invalid, foreign_frees, trimmed;
    uint64_t recovered;
};

/* A release of free pages decided under the lock and made after it (heap.c, "Releases
 * after the lock").  state: 0, the slot is free; an even ticket, owed and not begun;
 * the ticket | 1, being made. */
enum { FM_RELEASING_MAX = 32 };
struct fm_releasing {
    uint64_t state;
    char *lo, *hi;
    const void *owner; /* the thread that owes it */
};

struct fm_heap {
    fm_lock_t lock;                   /* a private heap's lock */
    bool shared;                      /* in a region several processes use: see below */
    bool damaged;                     /* found broken after a holder died: never used again */
    pthread_mutex_t mutex;            /* a shared heap's lock: robust and process-shared */
    const struct fm_engine *engine;
    void *eng;                        /* the engine instance */
    char *base;                       /* the reserved range */
    size_t cap;
    size_t committed;                 /* usable bytes from base, page-aligned */
    int (*commit)(void *addr, size_t len); /* makes more usable; NULL if all is */
    char *populated;                  /* pages below are faulted in (populate-ahead) */
    bool caches;                      /* per-thread caches in front (tcache.c) */
    bool shed_due;                    /* pages went back since the caches last shed */
    uint32_t shed_epoch;              /* pages given back so far: threads shed (tcache.c) */
    fm_lock_t tc_registry_lock;
    struct fm_tcache *tc_registry;
    uint32_t tc_count;                /* caches in the registry */
    size_t tc_large_share;            /* large bytes a cache may hold, with threads */
    struct fm_depot *depot;           /* batches between the caches (tcache.c) */
    bool populate;                    /* populate ahead (heap.c; MEMPOPULATE) */
    bool trimming;                    /* in malloc_trim: its releases are made at once */
    uint64_t release_ticket;          /* the last ticket given to a release owed */
    unsigned releasing_n;             /* slots not free */
    struct fm_releasing releasing[FM_RELEASING_MAX];
    struct fm_release_ops release_ops; /* the engine's way to them */
    bool sys;                         /* glibc's allocator does the work (heap_sys.c) */
    unsigned sys_log2;                /* a sys heap's table of live blocks: 2^log2 slots */
    struct fm_sys_slot *sys_slots;
    size_t sys_used, sys_bytes;       /* slots taken (live and tombstones); its size */
    struct fm_counters c;
};

/* The return address of the allocation call being served (set by the exported entry
 * points): the call site the debugging engine records. */
extern __thread const void *fm_call_site __attribute__((tls_model("initial-exec"))) FM_HIDDEN;

bool fm_sys_owns(const struct fm_heap *h, const void *p) FM_HIDDEN;

/* What fm_heap_free found. */
enum fm_free_result {
    FM_FREED = 0,
    FM_FOREIGN = 1, /* outside the heap's range: never ours; nothing done */
};

/* Make a heap over [base, base+cap), of which the first `committed` bytes are usable
 * (the rest is made so with commit()), with the engine instance at eng_off from base.
 * Returns 0, or EINVAL if the usable part cannot even hold the engine's tables.  For
 * the system engine only cap counts (base NULL, nothing committed); ENOTSUP if glibc's
 * allocator cannot be found. */
int fm_heap_init(struct fm_heap *h, const struct fm_engine *e, void *base, size_t cap,
                 size_t eng_off, size_t committed, int (*commit)(void *, size_t),
                 bool shared) FM_HIDDEN;

/* Whether p is in the heap's range (a sys heap: is one of its live blocks). */
static inline bool fm_heap_owns(const struct fm_heap *h, const void *p)
{
    if (fm_unlikely(h->sys))
        return fm_sys_owns(h, p);
    return (uintptr_t)p - (uintptr_t)h->base < h->cap;
}

/* The allocation calls.  They count themselves under their own kind, and fail with
 * NULL and errno ENOMEM.  align is a power of two (callers validate). */
void *fm_heap_malloc(struct fm_heap *h, size_t size) FM_HIDDEN;
void *fm_heap_calloc(struct fm_heap *h, size_t size) FM_HIDDEN;
void *fm_heap_memalign(struct fm_heap *h, size_t align, size_t size) FM_HIDDEN;

/* realloc of block p (owned, non-NULL) to size (non-zero): in place when the engine
 * can, else allocate, copy, free.  On failure p is untouched. */
void *fm_heap_realloc(struct fm_heap *h, void *p, size_t size, const char *caller) FM_HIDDEN;

/* Free p (non-NULL).  A pointer inside the range that is not a live block (a double
 * free, a pointer into a block) means the program has damaged its heap: that is
 * reported, naming caller, and the process aborts, as glibc does. */
enum fm_free_result fm_heap_free(struct fm_heap *h, void *p, const char *caller) FM_HIDDEN;

/* malloc when this thread's cache had no block of the size (fm_tcache_malloc_fast
 * missed): fm_heap_malloc without trying the cache again. */
void *fm_heap_malloc_miss(struct fm_heap *h, size_t size) FM_HIDDEN;

/* fm_heap_free after this thread's cache did not take p (fm_tcache_free). */
void fm_heap_free_slow(struct fm_heap *h, void *p, const char *caller) FM_HIDDEN;

/* free of p, which lies in the pool and whose size word says it has usable bytes (a
 * cached size), but whose list in this thread's cache is full: p is checked here. */
void fm_heap_free_full(struct fm_heap *h, void *p, size_t usable, const char *caller) FM_HIDDEN;

/* While the process has one thread (the lock elided), with the thread's cache for h:
 * free p, a pointer in the pool that the cache does not take (a large block over its
 * bounds, or one the fast path's checks refused), straight to the engine, which
 * checks it (a double free or a pointer that is no block dies there, as it would in
 * fm_heap_free_slow). */
void fm_heap_free_engine(struct fm_heap *h, void *p, const char *caller) FM_HIDDEN;

/* While the process has one thread, with the thread's cache for h, whose large list
 * for size (FM_TCACHE_MAX_USABLE < size <= FM_TCACHE_LARGE_MAX_USABLE) is empty: the
 * block from the engine, at the stride the list starts at (fm_heap_malloc_miss,
 * without looking in the list again). */
void *fm_heap_malloc_large_miss(struct fm_heap *h, size_t size) FM_HIDDEN;

/* The usable size of p, or 0 if p is not a live block of this heap. */
size_t fm_heap_usable_size(struct fm_heap *h, const void *p) FM_HIDDEN;

/* n * size in *out, or false having counted an impossible request and set ENOMEM
 * (calloc's overflow check). */
bool fm_heap_product(struct fm_heap *h, size_t n, size_t size, size_t *out) FM_HIDDEN;

/* p, passed to caller, is outside the heap: under the debugging engine that is a bug
 * to report, and the process stops; otherwise this returns and the caller ignores p
 * (free) or refuses it (realloc). */
void fm_heap_foreign(struct fm_heap *h, const char *caller, const void *p) FM_HIDDEN;

/* Count one refused impossible request (an overflowing size, a bad alignment). */
void fm_heap_count_invalid(struct fm_heap *h) FM_HIDDEN;

/* From now on give the pages of free blocks of min bytes or more back to the kernel,
 * the oldest first once more than batch bytes of them wait (batch 0: as they form;
 * block.h, "Giving memory back"); min 0: never.  Private heaps only. */
void fm_heap_set_release(struct fm_heap *h, size_t min, size_t batch) FM_HIDDEN;

/* on false: fault in no page ahead of the program (heap.c, "Populate-ahead"); pages
 * are faulted in as the program and the engine's headers first touch them.  on true
 * leaves the default: private heaps populate ahead, shared ones never. */
void fm_heap_set_populate(struct fm_heap *h, bool on) FM_HIDDEN;

/* Give the pages of free blocks back to the kernel; returns the bytes released. */
size_t fm_heap_trim(struct fm_heap *h) FM_HIDDEN;

/* The call and refusal counters (calls_*, failed_*, foreign_frees, trimmed,
 * recovered) into st: the part every kind of heap reports alike. */
void fm_heap_copy_calls(const struct fm_counters *c, struct fastmem_stats *st) FM_HIDDEN;

/* A consistent snapshot of the heap's statistics. */
void fm_heap_stats(struct fm_heap *h, struct fastmem_stats *st) FM_HIDDEN;

/* The engine's own report lines (engine.h), under the lock; 0 if it has none. */
size_t fm_heap_report(struct fm_heap *h, char *buf, size_t size) FM_HIDDEN;

/* fastmem_check and shm_check (what names the heap in the message): 0 if the heap
 * is sound; else one line on stderr and -1 with errno EIO, or, under the debugging
 * engine, the report and abort(). */
int fm_heap_check_call(struct fm_heap *h, const char *caller, const char *what) FM_HIDDEN;

/* The debugging engine's leak summary (engine.h, leaks), under the lock; 0 if the
 * engine has none. */
size_t fm_heap_leaks(struct fm_heap *h, char *buf, size_t size) FM_HIDDEN;

/* The engine's invariant check, under the lock: NULL if the heap is sound. */
const char *fm_heap_check(struct fm_heap *h) FM_HIDDEN;

/* For tcache.c.  A block for the heap's own use, not counted as the program's. */
void *fm_heap_alloc_internal(struct fm_heap *h, size_t size) FM_HIDDEN;
/* With the lock held: free a block that sat in a thread cache (the program's free of
 * it was counted when it was cached). */
void fm_heap_release_cached(struct fm_heap *h, void *p) FM_HIDDEN;

/* Heap lock held: p, which a free was given (a thread's ring, tcache.c), back to the
 * engine with every check a free makes; dies naming p if it is no live block. */
void fm_heap_free_held(struct fm_heap *h, void *p, const char *caller) FM_HIDDEN;
/* Run fn(h, arg) holding the heap's lock. */
void fm_heap_with_lock(struct fm_heap *h, void (*fn)(struct fm_heap *, void *), void *arg) FM_HIDDEN;

/* The shm_* region's heap, or NULL before shm_init (shm.c; for the tests). */
struct fm_heap *fm_shm_heap(void) FM_HIDDEN;

/* Fork: hold the lock across fork() so the child never inherits it held by a thread
 * that does not exist there. */
void fm_heap_prefork(struct fm_heap *h) FM_HIDDEN;
void fm_heap_postfork_parent(struct fm_heap *h) FM_HIDDEN;
void fm_heap_postfork_child(struct fm_heap *h) FM_HIDDEN;

#endif
