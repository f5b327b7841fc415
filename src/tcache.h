/* tcache.h: per-thread caches of small free blocks in front of the private heap
 * (tcache.c explains). */
#ifndef FM_TCACHE_H
#define FM_TCACHE_H

#include "engine.h"
#include "heap.h"
#include "lock.h"
#include "pool.h"

struct fm_heap;

/* Blocks of this stride or less are cached: usable sizes up to 1016 bytes; at most
 * FM_TCACHE_LIMIT of each stride per thread (FM_TCACHE_DEEP, or up to
 * FM_TCACHE_DEEP_MAX for the smallest strides, for a list that bounces between full
 * and empty, tcache.c "Depth").  The heap's lock is taken once for a
 * batch of FM_TCACHE_BATCH blocks: a miss takes that many from the engine, and a free
 * that finds its list full gives that many back (tcache.c). */
#define FM_TCACHE_MAX_STRIDE ((size_t)1024)
#define FM_TCACHE_MAX_USABLE (FM_TCACHE_MAX_STRIDE - 8)
#define FM_TCACHE_NSMALL (FM_TCACHE_MAX_STRIDE / 16 + 1) /* stride >> 4, 2..64 */

/* Larger blocks, up to FM_TCACHE_LARGE_MAX, are cached too (tcache.c, "Large
 * blocks"), in lists of sixteen size ranges per doubling, at most
 * FM_TCACHE_LARGE_LIMIT a list, and in all per thread FM_TCACHE_LARGE_BYTES while the
 * process has one thread and its share of FM_TCACHE_LARGE_BUDGET while it has more. */
#define FM_TCACHE_LARGE_MAX ((size_t)64 * 1024)
#define FM_TCACHE_LARGE_MAX_USABLE (FM_TCACHE_LARGE_MAX - 8)
#ifndef FM_TCACHE_LARGE_LIMIT
#define FM_TCACHE_LARGE_LIMIT 32
#endif
#ifndef FM_TCACHE_LARGE_BYTES
#define FM_TCACHE_LARGE_BYTES ((size_t)8 * 1024 * 1024)
#endif
#ifndef FM_TCACHE_LARGE_BYTES_THREADED
#define FM_TCACHE_LARGE_BYTES_THREADED ((size_t)4 * 1024 * 1024)
#endif
/* With threads, the caches' large blocks share a process-wide budget: a thread may
 * hold FM_TCACHE_LARGE_BUDGET over the number of caches, no more than
 * FM_TCACHE_LARGE_BYTES_THREADED and no less than FM_TCACHE_LARGE_SHARE_MIN (so the
 * budget holds up to 128 threads, past which each keeps a few blocks). */
#ifndef FM_TCACHE_LARGE_BUDGET
#define FM_TCACHE_LARGE_BUDGET ((size_t)32 * 1024 * 1024)
#endif
#ifndef FM_TCACHE_LARGE_SHARE_MIN
#define FM_TCACHE_LARGE_SHARE_MIN ((size_t)256 * 1024)
#endif
#ifndef FM_TCACHE_LARGE_RANGES_LOG2
#define FM_TCACHE_LARGE_RANGES_LOG2 4 /* ranges per doubling: 16 */
#endif
#define FM_TCACHE_LARGE_RANGES (1u << FM_TCACHE_LARGE_RANGES_LOG2)
/* How many lists above its own a large malloc looks in when its own is empty
 * (tcache.c, "Large blocks"). */
#ifndef FM_TCACHE_LARGE_UP
#define FM_TCACHE_LARGE_UP 1
#endif
#define FM_TCACHE_NCLASS (FM_TCACHE_NSMALL + 6 * FM_TCACHE_LARGE_RANGES + 1)
/* The smallest stride a large malloc asks for (fm_tcache_large_round of anything
 * above 1 KiB): a block between that and 1 KiB (calloc, realloc and memalign take
 * strides as they come) fits no large request, and is not cached. */
#define FM_TCACHE_LARGE_MIN (FM_TCACHE_MAX_STRIDE + FM_TCACHE_MAX_STRIDE / FM_TCACHE_LARGE_RANGES)

/* The list of a block of stride s, FM_TCACHE_MAX_STRIDE < s <= FM_TCACHE_LARGE_MAX:
 * its doubling above 1 KiB, and which of the doubling's FM_TCACHE_LARGE_RANGES
 * ranges (rounding down: every block in a list has at least the stride where its
 * range starts). */
static inline size_t fm_tcache_large_class(size_t s)
{
    unsigned e = 63u - (unsigned)__builtin_clzll(s); /* 10..16 */
    return FM_TCACHE_NSMALL + (e - 10) * FM_TCACHE_LARGE_RANGES +
           ((s >> (e - FM_TCACHE_LARGE_RANGES_LOG2)) & (FM_TCACHE_LARGE_RANGES - 1));
}

/* A large stride rounded up to where a range starts: what a large malloc asks the
 * engine for, so that the block goes back to the list it is looked for in. */
static inline size_t fm_tcache_large_round(size_t s)
{
    unsigned e = 63u - (unsigned)__builtin_clzll(s);
    size_t step = (size_t)1 << (e - FM_TCACHE_LARGE_RANGES_LOG2);
    return (s + step - 1) & ~(step - 1);
}
#ifndef FM_TCACHE_LIMIT
#define FM_TCACHE_LIMIT 32
#endif
#ifndef FM_TCACHE_BATCH
#define FM_TCACHE_BATCH (FM_TCACHE_LIMIT / 2)
#endif
/* A small list that both overflows and runs dry (a free found it full, and then a
 * malloc found it empty) holds up to this many instead (tcache.c, "Depth"). */
#ifndef FM_TCACHE_DEEP
#define FM_TCACHE_DEEP (2 * FM_TCACHE_LIMIT)
#endif
/* A deepened list of the smallest strides holds more still: up to FM_TCACHE_DEEP_BYTES
 * of blocks, FM_TCACHE_DEEP_MAX at most (tcache.c, "Depth"). */
#ifndef FM_TCACHE_DEEP_BYTES
#define FM_TCACHE_DEEP_BYTES ((size_t)16 * 1024)
#endif
#ifndef FM_TCACHE_DEEP_MAX
#define FM_TCACHE_DEEP_MAX 128
#endif
/* While the process has threads, a free is only noted in its thread's ring, and
 * this many are checked and put in their lists together (tcache.c, "The ring"). */
#ifndef FM_TCACHE_RING
#define FM_TCACHE_RING 16
#endif

/* When pages go back to the kernel, the caches shed this many blocks at a time at
 * most (tcache.c, "Shedding"). */
#ifndef FM_TCACHE_SHED_BUDGET
#define FM_TCACHE_SHED_BUDGET 64
#endif

/* The depot between threads' caches (tcache.c): batches of a stride it holds, and
 * bytes in all. */
#define FM_TCACHE_DEPOT_SLOTS 8
#define FM_TCACHE_DEPOT_BYTES ((size_t)2 * 1024 * 1024)

/* The lists come first: they and the fields the fast paths read share the first
 * cache lines.  The cache counts only what it must count per call (a free, a calloc);
 * what it holds and the mallocs it served are derived when asked (fm_tcache_totals). */
struct fm_tcache {
    void *head[FM_TCACHE_NCLASS];
    uint8_t count[FM_TCACHE_NCLASS];
    /* What a free may bring each list to: its limit (FM_TCACHE_LIMIT, FM_TCACHE_DEEP
     * for a small list that bounces between full and empty, or FM_TCACHE_LARGE_LIMIT),
     * or 0 while the list is shed (tcache.c, "Shedding" and "Depth"). */
    uint8_t room[FM_TCACHE_NCLASS];
    fm_owned_t own; /* the owner thread's, seized by others (lock.h) */
    struct fm_heap *heap;
    const struct pool *pool;          /* the heap's engine instance (pool.h) */
    uint64_t frees, callocs;          /* calls served here */
    uint64_t stocked, given_back;     /* blocks in from the engine, and back to it */
    uint64_t large_bytes;             /* usable bytes of the large blocks held */
    struct fm_tcache *next, *prev;    /* the heap's registry */
    uint8_t nring;                    /* frees noted in ring, not yet settled */
    uint8_t shed_next;                /* the list shedding looks at first */
    uint32_t shed_seen;               /* the heap's shed_epoch when this cache last shed */
    uint32_t misses;                  /* small misses so far: the refills' clock */
    uint32_t miss_at[FM_TCACHE_NSMALL];    /* each list's last miss, on that clock */
    uint32_t miss_frees[FM_TCACHE_NSMALL]; /* and frees (low bits) then */
    uint8_t miss_run[FM_TCACHE_NSMALL];    /* its misses in a row, up to BATCH_AFTER */
    void *ring[FM_TCACHE_RING];
    uint8_t overflowed[FM_TCACHE_NSMALL];  /* a free found list c full since its last miss */
};

/* This thread's cache; the state says whether it may have one (0 not yet, 1 yes, 2
 * never again: the thread is exiting). */
extern __thread struct fm_tcache *fm_tcache_mine __attribute__((tls_model("initial-exec"))) FM_HIDDEN;
extern __thread int fm_tcache_state __attribute__((tls_model("initial-exec"))) FM_HIDDEN;

/* What a cached block carries in its second word: random per process (tcache.c,
 * "Double free"). */
extern void *fm_tcache_key FM_HIDDEN;

/* The fast paths (tcache.c, "Fast paths"): a whole malloc or free served by this
 * thread's cache for h.  They read the thread-local pointer once, are inlined into
 * the exported malloc and free, and, while the process has one thread, run straight
 * through without a call; every other case leaves by a tail call to a function that
 * finishes the call (the miss and slow paths, and the locked versions). */

/* The out-of-line parts (tcache.c). */
/* (fm_tcache_malloc_locked goes on to fm_heap_malloc_miss itself.) */
void *fm_tcache_malloc_locked(struct fm_tcache *tc, size_t size) FM_HIDDEN;
void fm_tcache_free_threaded(struct fm_tcache *tc, void *p) FM_HIDDEN;
/* The frees waiting in this thread's ring for h, checked and put in their lists (or
 * sent on); false if there were none. */
bool fm_tcache_settle(struct fm_heap *h) FM_HIDDEN;

/* Whether fm_tcache_settle(h) has anything to look at: inline, for the misses of a
 * one-thread process, which have no ring to settle (the call's prologue alone cost
 * more than this test). */
static inline bool fm_tcache_settle_due(const struct fm_heap *h)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    /* (nring only read with one thread: with threads, one that seizes the cache may
     * be settling the ring meanwhile) */
    return tc != NULL && tc->heap == h && (!fm_lock_elided() || tc->nring != 0);
}
void fm_tcache_free_marked(struct fm_tcache *tc, void *p, const char *caller) FM_HIDDEN;
/* Whether p, a pointer in the pool, is held by this thread's cache (its lists or its
 * ring) or by the depot: freed already.  Called before a block that free or realloc
 * was given goes to the engine by another way than the caches (a full list, a large
 * block over the cache's bounds, realloc, a ring settled), with the heap's lock held.
 * Costs a look at the ring and a load unless p carries the cached mark.  (Blocks in
 * other threads' caches are not searched.) */
bool fm_tcache_holds(struct fm_heap *h, void *p) FM_HIDDEN;
/* While the process has threads, for free or realloc of p, a pointer in the pool that
 * carries the cached mark: if any thread's cache or ring, or the depot, holds p, the
 * program dies ("double free", naming caller); else the mark was the program's data,
 * and is cleared if clear (a free's).  Seizes every cache: the caller holds no cache's
 * critical section nor the registry's lock (tcache.c, "Double free"). */
void fm_tcache_check_marked(struct fm_heap *h, void *p, const char *caller, bool clear) FM_HIDDEN;

/* malloc of a large size (FM_TCACHE_MAX_USABLE < size <= FM_TCACHE_LARGE_MAX_USABLE)
 * from this thread's cache for h; NULL if it has no block that fits. */
void *fm_tcache_malloc_large(struct fm_heap *h, size_t size) FM_HIDDEN;

/* The large list a malloc that rounds to list c takes from: c, or while c is empty
 * the next of the FM_TCACHE_LARGE_UP lists above it that is not (tcache.c, "Large
 * blocks"); a list that is empty if they all are. */
static inline size_t fm_tcache_large_pick(const struct fm_tcache *tc, size_t c)
{
#if FM_TCACHE_LARGE_UP > 0
    for (unsigned up = 0; tc->head[c] == NULL && up < FM_TCACHE_LARGE_UP && c + 1 < FM_TCACHE_NCLASS; up++)
        c++;
#else
    (void)tc;
#endif
    return c;
}

/* fm_tcache_malloc of a size above the small lists': while the process has one
 * thread, a hit in the large lists is served here; anything else goes on to
 * fm_heap_malloc_miss (heap.c, malloc_large). */
static inline void *fm_tcache_malloc_big(struct fm_tcache *tc, struct fm_heap *h, size_t size)
{
    if (size <= FM_TCACHE_LARGE_MAX_USABLE && fm_lock_elided()) {
        size_t c = fm_tcache_large_class(fm_tcache_large_round(fm_block_stride(size)));
        c = fm_tcache_large_pick(tc, c);
        void **p = tc->head[c];
        if (p != NULL) {
            tc->head[c] = p[0];
            tc->count[c]--;
            tc->large_bytes -= bsize_unlocked(from_ptr(p)) - OVERHEAD;
            p[1] = NULL; /* no longer marked cached */
            return p;
        }
        return fm_heap_malloc_large_miss(h, size);
    }
    return fm_heap_malloc_miss(h, size);
}

/* malloc(size) from tc, this thread's cache, which is for h; a miss (or a size too
 * large to be cached) goes on to fm_heap_malloc_miss.  The exported malloc and free
 * call this and fm_tcache_free_in directly: in libfastmem.so a thread's cache is
 * always the process heap's (init.c turns caches on for that heap alone), so once
 * they have found the thread's cache they need not compare its heap. */
static inline void *fm_tcache_malloc_in(struct fm_tcache *tc, struct fm_heap *h, size_t size)
{
    if (fm_unlikely(size > FM_TCACHE_MAX_USABLE))
        return fm_tcache_malloc_big(tc, h, size);
    if (fm_unlikely(!fm_lock_elided()))
        return fm_tcache_malloc_locked(tc, size);
    size_t c = fm_block_stride(size) >> 4;
    void **p = tc->head[c];
    if (fm_unlikely(p == NULL))
        return fm_heap_malloc_miss(h, size);
    tc->head[c] = p[0];
    tc->count[c]--;
    p[1] = NULL; /* no longer marked cached */
    return p;
}

/* malloc(size) from this thread's cache for h; a miss (or a size too large to be
 * cached, or no cache) goes on to fm_heap_malloc_miss. */
static inline void *fm_tcache_malloc(struct fm_heap *h, size_t size)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_unlikely(tc == NULL) || fm_unlikely(tc->heap != h))
        return fm_heap_malloc_miss(h, size);
    return fm_tcache_malloc_in(tc, h, size);
}

/* free(ptr) through tc, this thread's cache, which is for h.  While the process has
 * threads, a pointer in the pool is noted in the thread's ring, and checked with the
 * ring's others (tcache.c, "The ring").  Else a live block of a cached stride joins
 * its list; a full list sends it to fm_heap_free_full; anything else goes to
 * fm_heap_free_slow, which decides under the heap's lock.  The size word is only a
 * guess until pool_cacheable has seen its check bits (a full list's engine checks the
 * pointer itself).  caller names the call in messages (a ring's: "free"). */
static inline void fm_tcache_free_in(struct fm_tcache *tc, struct fm_heap *h, void *ptr, const char *caller)
{
    const struct pool *pl = tc->pool;
    uintptr_t off = (uintptr_t)ptr - pl->lo; /* once: the range's atomic load keeps the
                                                compiler from reusing lo past it */
    if (fm_unlikely(!pool_off_in_range(pl, off))) {
        if (ptr != NULL)
            fm_heap_free_slow(h, ptr, caller);
        return;
    }
    if (fm_unlikely(!fm_lock_elided())) {
        fm_tcache_free_threaded(tc, ptr);
        return;
    }
    size_t word = block_word(from_ptr(ptr));
    size_t s = word & FM_STRIDE_BITS;
    void *key = fm_tcache_key;
    if (s > FM_TCACHE_MAX_STRIDE) {
        /* a large block: its list's push inline, when nothing stands in the way */
        void **p = ptr;
        size_t c = fm_tcache_large_class(s), usable = s - OVERHEAD;
        if (s - FM_TCACHE_LARGE_MIN <= FM_TCACHE_LARGE_MAX - FM_TCACHE_LARGE_MIN &&
            tc->count[c] < tc->room[c] &&
            tc->large_bytes + usable <= FM_TCACHE_LARGE_BYTES && pool_cacheable_off(off, word, s) &&
            p[1] != key) {
            p[0] = tc->head[c];
            p[1] = key;
            tc->head[c] = p;
            tc->count[c]++;
            tc->frees++;
            tc->large_bytes += usable;
        } else {
            /* over the bounds, marked, refused, or no large stride: the engine checks it */
            fm_heap_free_engine(h, ptr, caller);
        }
        return;
    }
    size_t c = s >> 4;
    if (fm_unlikely(tc->count[c] >= tc->room[c])) {
        tc->overflowed[c] = 1; /* (a guess until the engine checks it: harmless) */
        fm_heap_free_full(h, ptr, s - OVERHEAD, caller);
        return;
    }
    void **p = ptr;
    if (fm_unlikely(!pool_cacheable_off(off, word, s)))
        fm_heap_free_slow(h, ptr, caller);
    else if (fm_unlikely(p[1] == key))
        fm_tcache_free_marked(tc, ptr, caller);
    else {
        p[0] = tc->head[c];
        p[1] = key;
        tc->head[c] = p;
        tc->count[c]++;
        tc->frees++;
    }
}

/* fm_tcache_free_in, through this thread's cache for h: false (nothing done) if this
 * thread has none for h. */
static inline bool fm_tcache_free(struct fm_heap *h, void *ptr, const char *caller)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_unlikely(tc == NULL) || fm_unlikely(tc->heap != h))
        return false;
    fm_tcache_free_in(tc, h, ptr, caller);
    return true;
}

/* Quick guesses, without the cache's lock, for the slow paths: whether this thread's
 * cache for h may have room for a block of this usable size.  The calls below decide
 * under the lock. */
static inline bool fm_tcache_may_take(const struct fm_heap *h, size_t usable)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL)
        return fm_tcache_state == 0;
    size_t c = (usable + 8) >> 4;
    return tc->heap == h && tc->count[c] < tc->room[c];
}

/* The most blocks list c (small or large) holds. */
static inline uint8_t fm_tcache_limit(size_t c)
{
    return c < FM_TCACHE_NSMALL ? FM_TCACHE_LIMIT : FM_TCACHE_LARGE_LIMIT;
}

/* Small list c of tc deepened (tcache.c, "Depth"): out of line, a division, and once
 * a list at most between sheddings. */
void fm_tcache_deepen(struct fm_tcache *tc, size_t c) FM_HIDDEN;

/* After a miss in this thread's cache for h of a block of stride class c (small or
 * large): the list takes frees up to its limit again, if it was shed; a small list
 * that overflowed since its last miss is deepened (fm_tcache_deepen; tcache.c,
 * "Depth"). */
static inline void fm_tcache_unshed(const struct fm_heap *h, size_t c)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h)
        return;
    if (c >= FM_TCACHE_NSMALL) {
        tc->room[c] = FM_TCACHE_LARGE_LIMIT;
        return;
    }
    if (tc->room[c] == 0 || !fm_lock_elided())
        tc->room[c] = FM_TCACHE_LIMIT; /* (a shed list, or threads: see "Depth") */
    else if (tc->overflowed[c])
        fm_tcache_deepen(tc, c);
    tc->overflowed[c] = 0;
}

/* With the heap's lock held, while the process has one thread, after the engine gave
 * pages back (tcache.c, "Shedding"): this thread's full lists, some of them, to the
 * engine, and shed until their next miss. */
void fm_tcache_shed(struct fm_heap *h) FM_HIDDEN;

/* With the heap's lock held, while the process has threads, after the engine gave
 * pages back: some of the depot's batches to the engine. */
void fm_tcache_shed_depot(struct fm_heap *h) FM_HIDDEN;

/* How many blocks a miss of this usable size (<= FM_TCACHE_MAX_USABLE) takes from the
 * engine for this thread's cache for h, which it has (tcache.c, "Batches"). */
size_t fm_tcache_refill_batch(struct fm_heap *h, size_t size) FM_HIDDEN;

/* Whether this thread has a cache for h (then a miss refills it, fm_tcache_stock). */
static inline bool fm_tcache_is_mine(const struct fm_heap *h)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    return tc != NULL && tc->heap == h;
}

/* Whether this thread has a cache for h, making it if the thread has none yet (and
 * may have one).  Without the heap's lock: making one takes it. */
bool fm_tcache_make(struct fm_heap *h) FM_HIDDEN;

/* Whether this thread's list for blocks of this usable size is full (a guess, as
 * above: then the free goes to fm_tcache_push_flush). */
static inline bool fm_tcache_may_be_full(const struct fm_heap *h, size_t usable)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h)
        return false;
    size_t c = (usable + 8) >> 4;
    return tc->room[c] != 0 && tc->count[c] >= tc->room[c];
}

struct fm_tcache_totals {
    uint64_t bytes, blocks, mallocs, callocs, frees;
};

/* Turn caches on for h (the process heap). */
void fm_tcache_setup(struct fm_heap *h) FM_HIDDEN;

/* calloc's: a cached block of at least size (<= FM_TCACHE_MAX_USABLE) usable bytes,
 * zeroed for size bytes; NULL if this thread has none. */
void *fm_tcache_calloc(struct fm_heap *h, size_t size) FM_HIDDEN;

/* Keep live block p, which lies in the committed pool and whose size word says it has
 * usable bytes (24 to FM_TCACHE_MAX_USABLE), in this thread's cache instead of
 * freeing it; false if it is no live block or the cache has no room. */
bool fm_tcache_push(struct fm_heap *h, void *p, size_t usable) FM_HIDDEN;

/* With the heap's lock held, in a thread whose cache is for h: keep the n blocks at
 * blk, just allocated and counted as live (at most FM_TCACHE_BATCH), in this thread's
 * cache, the first to be handed out first; any it has no room for go back to the
 * engine. */
void fm_tcache_stock(struct fm_heap *h, void **blk, size_t n) FM_HIDDEN;

/* With the heap's lock held: free block p, whose size word says it has usable bytes
 * (24 to FM_TCACHE_MAX_USABLE), into this thread's cache, first giving the oldest
 * FM_TCACHE_BATCH blocks of its list to the depot, or if that is full back to the
 * engine, in address order, if the list is full.  1 if done; 0 if p is no live block
 * or the thread has no cache for h (the caller frees it to the engine, which checks
 * it); -1 if p is in the cache already (a double free: the caller reports it). */
int fm_tcache_push_flush(struct fm_heap *h, void *p, size_t usable) FM_HIDDEN;

/* In a thread whose cache is for h, after a miss: a block of at least size usable
 * bytes (zeroed for size bytes if zero) from a batch another thread left in the depot,
 * the rest of the batch kept in this thread's cache; NULL if the depot has none of the
 * stride.  Takes no heap lock. */
void *fm_tcache_restock(struct fm_heap *h, size_t size, bool zero) FM_HIDDEN;

/* Free block p, whose size word says it has usable bytes (24 to
 * FM_TCACHE_MAX_USABLE), into this thread's cache without the heap's lock, giving the
 * oldest FM_TCACHE_BATCH blocks of a full list to the depot.  1 if done; 0 if the
 * heap's lock is needed (no cache, the check failed, the depot is full: the caller
 * goes on to fm_tcache_push_flush under it); -1 if p is cached already (a double
 * free). */
int fm_tcache_flush_to_depot(struct fm_heap *h, void *p, size_t usable) FM_HIDDEN;

/* With the heap's lock held: every cache back to the engine; true if any held a block. */
bool fm_tcache_flush_all(struct fm_heap *h) FM_HIDDEN;

/* With the heap's lock held: every thread's ring settled to the engine (the frees
 * waiting there done); true if any ring held a free. */
bool fm_tcache_release_rings(struct fm_heap *h) FM_HIDDEN;

/* With the heap's lock held: what the caches hold and the calls they served. */
void fm_tcache_totals(struct fm_heap *h, struct fm_tcache_totals *t) FM_HIDDEN;

/* Fork, after/before the heap's own handlers (heap.c calls these). */
void fm_tcache_prefork(struct fm_heap *h) FM_HIDDEN;
void fm_tcache_postfork_parent(struct fm_heap *h) FM_HIDDEN;
void fm_tcache_postfork_child(struct fm_heap *h) FM_HIDDEN;

/* Heap-lock callbacks (fm_heap_with_lock). */
void fm_tcache_retire(struct fm_heap *h, void *tc) FM_HIDDEN;
void fm_tcache_retire_unlisted(struct fm_heap *h, void *tc) FM_HIDDEN;

#endif
