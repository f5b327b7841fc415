/* tcache.h: per-thread caches of small free blocks in front of the private heap
 * (tcache.c explains). */
#ifndef FM_TCACHE_H
#define FM_TCACHE_H

#include "engine.h"
#include "lock.h"

struct fm_heap;

/* Blocks of this stride or less are cached: usable sizes up to 1016 bytes; at most
 * FM_TCACHE_LIMIT of each stride per thread.  The heap's lock is taken once for a
 * batch of FM_TCACHE_BATCH blocks: a miss takes that many from the engine, and a free
 * that finds its list full gives that many back (tcache.c). */
#define FM_TCACHE_MAX_STRIDE ((size_t)1024)
#define FM_TCACHE_MAX_USABLE (FM_TCACHE_MAX_STRIDE - 8)
#define FM_TCACHE_NCLASS (FM_TCACHE_MAX_STRIDE / 16 + 1) /* stride >> 4, 2..64 */
#ifndef FM_TCACHE_LIMIT
#define FM_TCACHE_LIMIT 32
#endif
#ifndef FM_TCACHE_BATCH
#define FM_TCACHE_BATCH (FM_TCACHE_LIMIT / 4)
#endif

struct fm_tcache {
    fm_owned_t own; /* the owner thread's, seized by others (lock.h) */
    struct fm_heap *heap;
    struct fm_tcache *next, *prev; /* the heap's registry */
    void *head[FM_TCACHE_NCLASS];
    uint8_t count[FM_TCACHE_NCLASS];
    uint64_t bytes, blocks;           /* usable bytes and blocks held */
    uint64_t mallocs, callocs, frees; /* calls served here */
};

/* This thread's cache; the state says whether it may have one (0 not yet, 1 yes, 2
 * never again: the thread is exiting). */
extern __thread struct fm_tcache *fm_tcache_mine __attribute__((tls_model("initial-exec"))) FM_HIDDEN;
extern __thread int fm_tcache_state __attribute__((tls_model("initial-exec"))) FM_HIDDEN;

/* Quick guesses, without the cache's lock, so that a call the cache cannot serve
 * costs next to nothing: whether this thread's cache for h has a block of the stride
 * size needs, and whether it may have room for a block of this usable size.  The
 * calls below decide under the lock. */
static inline bool fm_tcache_may_have(const struct fm_heap *h, size_t size)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    return tc != NULL && tc->heap == h && tc->head[fm_block_stride(size) >> 4] != NULL;
}

static inline bool fm_tcache_may_take(const struct fm_heap *h, size_t usable)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL)
        return fm_tcache_state == 0;
    return tc->heap == h && tc->count[(usable + 8) >> 4] < FM_TCACHE_LIMIT;
}

/* Whether this thread has a cache for h (then a miss refills it, fm_tcache_stock). */
static inline bool fm_tcache_is_mine(const struct fm_heap *h)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    return tc != NULL && tc->heap == h;
}

/* Whether this thread's list for blocks of this usable size is full (a guess, as
 * above: then the free goes to fm_tcache_push_flush). */
static inline bool fm_tcache_may_be_full(const struct fm_heap *h, size_t usable)
{
    const struct fm_tcache *tc = fm_tcache_mine;
    return tc != NULL && tc->heap == h && tc->count[(usable + 8) >> 4] >= FM_TCACHE_LIMIT;
}

struct fm_tcache_totals {
    uint64_t bytes, blocks, mallocs, callocs, frees;
};

/* Turn caches on for h (the process heap). */
void fm_tcache_setup(struct fm_heap *h) FM_HIDDEN;

/* A cached block of at least size (<= FM_TCACHE_MAX_USABLE) usable bytes, zeroed for
 * size bytes if zero; NULL if this thread has none. */
void *fm_tcache_pop(struct fm_heap *h, size_t size, bool zero) FM_HIDDEN;

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
 * FM_TCACHE_BATCH blocks of its list back to the engine, in address order, if the list
 * is full.  1 if done; 0 if p is no live block or the thread has no cache for h (the
 * caller frees it to the engine, which checks it); -1 if p is in the cache already
 * (a double free: the caller reports it). */
int fm_tcache_push_flush(struct fm_heap *h, void *p, size_t usable) FM_HIDDEN;

/* With the heap's lock held: every cache back to the engine; true if any held a block. */
bool fm_tcache_flush_all(struct fm_heap *h) FM_HIDDEN;

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
