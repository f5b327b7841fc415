/* block.h: the boundary-tag pool both engines manage.  The engines differ only in how
 * they index free blocks; everything about blocks themselves (layout, splitting,
 * coalescing, validating pointers, walking the pool) is here, once.
 *
 * Block layout.  Every block starts 16-byte aligned with a 16-byte header:
 *
 *     b+0   prev_phys   the previous block, valid only while that block is free
 *     b+8   size        the stride to the next block (a multiple of 16), | flags,
 *                       | a live block's check bits (top 16; pool.h, live_check)
 *     b+16  payload     (a free block keeps its list links here)
 *
 * The next block's prev_phys word is only meaningful while this block is free, so a
 * live block's payload runs over it: usable size = stride - 8, and the whole cost of a
 * live block is its size word.  The smallest block has a 32-byte stride (24 usable; a
 * free one needs room for two links).  The pool ends with a sentinel header of size 0
 * that is never free; growing the pool turns the old sentinel into a free block.
 *
 * Free blocks are joined with both physical neighbours as they are freed (the flags
 * say whether the previous block is free, and prev_phys where it starts), so no two
 * free blocks are ever adjacent and nothing needs a later defragmentation pass.
 *
 * The layout itself, struct pool and the check of a pointer (pool_classify) are in
 * pool.h, which the thread caches read too.
 *
 * How to use: an engine's instance struct starts with a `struct pool`; the engine
 * defines the list operations declared below, then includes this file, and most of
 * its vtable is the pool_* functions themselves (their first argument is the engine
 * instance).  Everything here is static, so each engine gets its own copy
 * specialised to its lists.
 */
#ifndef FM_BLOCK_H
#define FM_BLOCK_H

#include "pool.h"

#include <string.h>

/* Crash order.  A shared heap outlives a process killed in the middle of a call, and
 * the next process rebuilds the free-block index from the blocks' size words alone
 * (pool_rebuild).  So every change to the chain of blocks is made by one 8-byte
 * store of a size word, the commit point, after every header it makes visible is
 * written; commit_point() keeps the compiler from moving those writes past it (x86
 * and ARM both keep one CPU's stores in program order for the CPU itself, which is
 * all a killed process needs).  Flags other than F_FREE, prev_phys links, the lists
 * and the counters are rebuilt, so their order does not matter.  A process killed
 * between commit points leaks at worst the block it was handing out. */
#define commit_point() __asm__ __volatile__("" ::: "memory")

/* Splitting.  A free block larger than a request is split only when the remainder is
 * worth keeping: at least a minimal block and at least 1/2^FM_SPLIT_SHIFT of the
 * request, or FM_SPLIT_LARGE bytes whatever the request.  Smaller remainders stay
 * with the block (its usable size says so) instead of becoming slivers that no later
 * request fits and that cost a list operation each way; the bound keeps a block's
 * idle tail under 12.5%, where Kamailio's rule (split only if the remainder exceeds
 * the request) lets it reach 50%.  bench/tune.sh measures the alternatives (building
 * with other values of these macros); bench/README has the figures. */
#ifndef FM_SPLIT_SHIFT
#define FM_SPLIT_SHIFT 3
#endif
/* A remainder of FM_SPLIT_LARGE bytes or more is split off whatever the request: a
 * tail that size is no sliver (it holds any small request), and under a cap an idle
 * tail of 1/8 of a request of megabytes is megabytes the program cannot have. */
#ifndef FM_SPLIT_LARGE
#define FM_SPLIT_LARGE ((size_t)64 * 1024)
#endif

/* Giving memory back.  A private heap may ask (pool_set_release; MEMRELEASE) that free
 * blocks of release_min bytes or more keep almost no resident pages.  When a free block
 * reaches that size, the whole 64 KiB grains inside it (settle(), below) are marked
 * F_RELEASED: each of them is either given back already or waiting on the pool's
 * pending list, oldest first.  The mark lets later joins add only what they bring, so
 * the work of a free is bounded by the blocks it joins that were not released
 * already, never by the size of the free block it lands next to.
 *
 * Waiting is the point.  Giving a page back costs a system call (~0.3 us a page on
 * the machines we measured) and using it again a page fault (~2 us a page), so a run
 * that a program frees and fills again soon, as a server's working set does, is
 * better left alone.  Grains go back only when more than release_batch bytes are
 * waiting, oldest first, and then the free that went past the batch gives back what
 * it added, or PURGE_STEP (256 KiB) if it added less: a system call for four grains
 * or more, instead of one per grain, costing about as much as the free's own joins
 * touched, and none at all for runs reused before the batch fills.  A waiting grain
 * that is handed out again simply leaves the list.  About release_batch bytes of free
 * runs stay resident at most (malloc_trim gives those back too).  release_batch 0:
 * at once, as each grain completes.
 *
 * A released block handed out faults its pages back in as the program touches them;
 * the remainder split off it stays released.  release_min 0 (shared heaps, tests over
 * buffers): nothing is released this way.  (struct pool, in pool.h, holds the
 * release settings and the pending list.) */

/* The engine's free-block index.  list_insert and list_unlink add and remove a free
 * block (flags and size already set); list_take returns a free block with a stride
 * of at least s, already removed from the index, or NULL; list_same says whether two
 * strides share a list.  None of them touches the pool's counters. */
static void list_insert(struct pool *p, block_t *b);
static void list_unlink(struct pool *p, block_t *b);
static block_t *list_take(struct pool *p, size_t s);
/* Empty every list. */
static void list_clear(struct pool *p);
/* Whether free blocks of strides a and b belong in the same list. */
static inline bool list_same(size_t a, size_t b);

/* ------------------------------------------------------------------ free lists */

/* The engines' free lists are unsorted and doubly linked through next_free and
 * prev_free, newest first; these do the linking, and the engines keep their heads and
 * bitmaps.  Push b onto the list at *head; true if the list was empty. */
static inline bool dlist_push(block_t **head, block_t *b)
{
    block_t *old = *head;
    b->next_free = old;
    b->prev_free = NULL;
    if (old)
        old->prev_free = b;
    *head = b;
    return old == NULL;
}

/* Take b out of its list's links.  True if b headed the list: the caller then sets
 * the head to b->next_free (and the list is empty if that is NULL). */
static inline bool dlist_detach(block_t *b)
{
    if (b->next_free)
        b->next_free->prev_free = b->prev_free;
    if (b->prev_free) {
        b->prev_free->next_free = b->next_free;
        return false;
    }
    return true;
}

/* Take the head of the non-empty list at *head off it. */
static inline block_t *dlist_pop(block_t **head)
{
    block_t *b = *head;
    *head = b->next_free;
    if (*head)
        (*head)->prev_free = NULL;
    return b;
}

/* ---------------------------------------------------------------- block helpers */

/* The stride of a block with n usable bytes; n <= FM_MAX_REQUEST. */
static inline size_t stride_for(size_t n)
{
    return fm_block_stride(n);
}

_Static_assert(OVERHEAD == 8 && BLOCK_MIN == 32, "engine.h's block helpers assume this layout");

static inline int fls64(uint64_t x)
{
    return 63 - __builtin_clzll(x);
}

/* Whether a block of stride have, given out for stride s, should leave its tail free. */
static inline bool worth_splitting(size_t have, size_t s)
{
    size_t rest = have - s;
#ifdef FM_BENCH_KAMAILIO_SPLIT /* bench/tune.sh only: MEM_FRAG_AVOIDANCE, for comparison */
    return rest >= BLOCK_MIN && (rest >= s + 48 || rest > 48 + 32768);
#else
    return rest >= BLOCK_MIN && (rest >= (s >> FM_SPLIT_SHIFT) || rest >= FM_SPLIT_LARGE);
#endif
}

static inline void pool_insert(struct pool *p, block_t *b)
{
    list_insert(p, b);
    p->free_bytes += bsize(b);
    p->free_blocks++;
}

static inline void pool_unlink(struct pool *p, block_t *b)
{
    list_unlink(p, b);
    p->free_bytes -= bsize(b);
    p->free_blocks--;
}

static inline block_t *pool_take(struct pool *p, size_t s)
{
    block_t *b = list_take(p, s);
    if (b) {
        p->free_bytes -= bsize(b);
        p->free_blocks--;
    }
    return b;
}

/* ------------------------------------------------------- splitting and joining */

/* The pending list.  A released free block keeps, after its list links, the links
 * of the pending list and the range of its grains still waiting to go back (lo == hi:
 * none, and the block is off the list).  Only a block with a whole grain inside is
 * ever marked released, so there is always room for them. */
struct pend {
    block_t *next, *prev;
    uintptr_t lo, hi;
};
#define RELEASE_GRAIN ((size_t)64 * 1024)
#define PURGE_STEP ((uint64_t)256 * 1024) /* the least a purge gives back */
#define FREE_HEAD (sizeof(block_t) + sizeof(struct pend)) /* what a released block keeps */

static inline struct pend *pend_of(const block_t *m)
{
    return (struct pend *)((char *)m + sizeof(block_t));
}

static inline size_t grain(const struct pool *p)
{
    return p->page > RELEASE_GRAIN ? p->page : RELEASE_GRAIN;
}

/* The whole grains inside free block m, past what it keeps: [*first, *last). */
static inline void grains_of(const struct pool *p, const block_t *m, uintptr_t *first, uintptr_t *last)
{
    size_t g = grain(p);
    *first = fm_align_up((uintptr_t)m + FREE_HEAD, g);
    *last = fm_align_down((uintptr_t)m + bsize(m), g);
}

/* Released block m leaves the pending list, if it is on it; the range it had waiting
 * is added to [*lo, *hi) (which grows to cover both). */
static inline void pend_take(struct pool *p, block_t *m, uintptr_t *lo, uintptr_t *hi)
{
    struct pend *e = pend_of(m);
    if (e->lo == e->hi)
        return;
    if (*lo == *hi || e->lo < *lo)
        *lo = e->lo;
    if (e->hi > *hi)
        *hi = e->hi;
    if (e->prev)
        pend_of(e->prev)->next = e->next;
    else
        p->pend_first = e->next;
    if (e->next)
        pend_of(e->next)->prev = e->prev;
    else
        p->pend_last = e->prev;
    p->pend_bytes -= e->hi - e->lo;
    e->lo = e->hi = 0;
}

/* Give back grains waiting, oldest first (the first block's range from its low end),
 * until no more than keep bytes wait. */
FM_NOINLINE static void pool_purge(struct pool *p, uint64_t keep)
{
    size_t g = grain(p);
    while (p->pend_bytes > keep) {
        block_t *m = p->pend_first;
        struct pend *e = pend_of(m);
        uintptr_t lo = e->lo, hi = e->hi;
        uint64_t over = p->pend_bytes - keep;
        if (hi - lo > over)
            hi = lo + fm_align_up(over, g);
        p->release->give(p->release->arg, (void *)lo, hi - lo);
        if (hi == e->hi) {
            uintptr_t a = 0, z = 0;
            pend_take(p, m, &a, &z);
        } else {
            e->lo = hi;
            p->pend_bytes -= hi - lo;
        }
    }
}

/* Released block m's grains in [lo, hi) (rounded out to grains, cut to m's own) may
 * hold resident pages: they join what m has waiting, and a purge runs if the batch is
 * full. */
static inline void pend_add(struct pool *p, block_t *m, uintptr_t lo, uintptr_t hi)
{
    size_t g = grain(p);
    uintptr_t first, last;
    grains_of(p, m, &first, &last);
    lo = fm_align_down(lo, g);
    hi = fm_align_up(hi, g);
    if (lo < first)
        lo = first;
    if (hi > last)
        hi = last;
    if (hi <= lo)
        return;
    struct pend *e = pend_of(m);
    uint64_t added;
    if (e->lo == e->hi) {
        e->lo = lo;
        e->hi = hi;
        e->next = NULL;
        e->prev = p->pend_last;
        if (p->pend_last)
            pend_of(p->pend_last)->next = m;
        else
            p->pend_first = m;
        p->pend_last = m;
        added = hi - lo;
    } else {
        /* One range a block: the two become the one that covers both.  Grains between
         * them went back already, and giving them back again costs only a walk of
         * their page tables. */
        uint64_t before = e->hi - e->lo;
        if (lo < e->lo)
            e->lo = lo;
        if (hi > e->hi)
            e->hi = hi;
        added = (e->hi - e->lo) - before;
    }
    p->pend_bytes += added;
    /* Past the batch, each call gives back what it added, and at least PURGE_STEP:
     * what waits never grows, and no call pays for much more than its own free. */
    if (fm_unlikely(p->pend_bytes > p->release_batch)) {
        uint64_t step = added > PURGE_STEP ? added : PURGE_STEP;
        pool_purge(p, p->pend_bytes > step ? p->pend_bytes - step : 0);
    }
}

/* Mark free block m released, its grains in [lo, hi) waiting and the others given
 * back already; a block without a whole grain inside stays unmarked (its few pages
 * count as resident, which is always safe to assume). */
static inline void mark_released(struct pool *p, block_t *m, uintptr_t lo, uintptr_t hi)
{
    uintptr_t first, last;
    grains_of(p, m, &first, &last);
    if (first >= last)
        return;
    struct pend *e = pend_of(m);
    e->lo = e->hi = 0;
    m->size |= F_RELEASED;
    pend_add(p, m, lo, hi);
}

/* Released free block m is about to be handed out, and written: pages of it given
 * back may still be on their way (the heap makes that system call after its lock,
 * heap.c), and must be gone before anything is written there.  The engine's lock is
 * held, so no release can be owed anew meanwhile: a count of 0 read now stays 0. */
static inline void released_reused(struct pool *p, block_t *m)
{
    const struct fm_release_ops *r = p->release;
    if (r && r->owed && __atomic_load_n(r->owed, __ATOMIC_RELAXED) != 0)
        r->wait(r->arg, m, bsize(m));
}

/* Free block m stops being released (too small now, or handed out): off the list.
 * Unmarked, it would be handed out without released_reused, so nothing may stay owed
 * in it. */
static inline void unrelease(struct pool *p, block_t *m)
{
    released_reused(p, m);
    uintptr_t a = 0, z = 0;
    pend_take(p, m, &a, &z);
    m->size &= ~F_RELEASED;
}

/* Free block m has reached its final size after a join; [lo, hi) covers the part of
 * it that may still hold resident pages.  If m is large enough, that part's whole
 * grains wait to go back (above), and F_RELEASED stays true to what was done.  Memory
 * goes back in whole grains of RELEASE_GRAIN (64 KiB) aligned to it: the part of a
 * free block before its first whole grain and after its last stays resident (under
 * 128 KiB a block), and in exchange a free that adds a few bytes to a large free
 * block adds work only when that completes a grain, not a page. */
static inline void settle(struct pool *p, block_t *m, uintptr_t lo, uintptr_t hi)
{
    if (fm_likely(p->release_min == 0 || bsize(m) < p->release_min)) {
        if (fm_unlikely(m->size & F_RELEASED))
            unrelease(p, m);
        return;
    }
    if (m->size & F_RELEASED)
        pend_add(p, m, lo, hi);
    else
        mark_released(p, m, lo, hi);
}

/* Free block n is being joined to the block before it: it leaves the pending list,
 * and the returned end covers what of it may be resident (all of n, or only what it
 * keeps and its grains still waiting, if n is released). */
static inline uintptr_t absorb(struct pool *p, block_t *n)
{
    if (!(n->size & F_RELEASED))
        return (uintptr_t)n + bsize(n);
    /* The joined block may be left unmarked (smaller than release_min: n can be, as a
     * released block's remainder), and handed out unmarked, without a wait: a release
     * still owed in n must be made first. */
    released_reused(p, n);
    uintptr_t lo = 0, hi = 0, end = (uintptr_t)n + FREE_HEAD;
    pend_take(p, n, &lo, &hi);
    return hi > end ? hi : end;
}

/* Hand out free block b (already out of the index) with stride s, returning any
 * remainder worth keeping to the index. */
static inline void *hand_out_range(struct pool *p, block_t *b, size_t s, bool released,
                                   uintptr_t lo, uintptr_t hi)
{
    size_t have = bsize(b);
    if (worth_splitting(have, s)) {
        block_t *rest = at(b, s);
        rest->size = (have - s) | F_FREE;
        commit_point();
        b->size = live_word(p, b, s) | (b->size & F_PREV_FREE);
        next_phys(rest)->prev_phys = rest; /* its F_PREV_FREE is already set: b was free */
        if (released)
            mark_released(p, rest, lo, hi); /* its other grains went back with b's */
        pool_insert(p, rest);
    } else {
        b->size = live_word(p, b, have) | (b->size & F_PREV_FREE);
        clear_prev_free(next_phys(b));
    }
    p->used_blocks++;
    return to_ptr(b);
}

/* Free block b, just taken out of the index to be handed out: off the pending list.
 * Returns whether it was released, with the range of its grains that were waiting to
 * go back in [*lo, *hi) (empty if none), for hand_out_range. */
static inline bool take_released(struct pool *p, block_t *b, uintptr_t *lo, uintptr_t *hi)
{
    *lo = *hi = 0;
    if (!(b->size & F_RELEASED))
        return false;
    released_reused(p, b);
    pend_take(p, b, lo, hi);
    return true;
}

static inline void *pool_hand_out(struct pool *p, block_t *b, size_t s)
{
    uintptr_t lo, hi;
    bool released = take_released(p, b, &lo, &hi);
    return hand_out_range(p, b, s, released, lo, hi);
}

/* Make used block b free: join it with free neighbours on both sides and index the
 * result.  O(1).  When the block before absorbs b and stays in its list (the list
 * covers the joined size too, as a range bucket mostly does), it is not moved: that
 * keeps tearing down a structure in allocation order to a size update per free.
 * clean: b's pages past its header were never touched (new pool space). */
static inline void pool_release_ex(struct pool *p, block_t *b, bool clean)
{
    p->used_blocks--;
    size_t s = bsize(b);
    block_t *n = at(b, s);
    uintptr_t lo = (uintptr_t)b;
    uintptr_t hi = (uintptr_t)b + (clean ? sizeof(block_t) : s);
    if (is_free(n)) {
        hi = absorb(p, n);
        pool_unlink(p, n);
        s += bsize(n);
        n = at(b, s);
    }
    if (prev_is_free(b)) {
        block_t *q = b->prev_phys;
        if (!(q->size & F_RELEASED))
            lo = (uintptr_t)q;
        size_t joined = bsize(q) + s;
        if (list_same(bsize(q), joined)) {
            q->size += s;
            p->free_bytes += s;
        } else {
            pool_unlink(p, q);
            q->size += s;
            pool_insert(p, q);
        }
        n->prev_phys = q;
        set_prev_free(n);
        b->size = 0; /* inside q now: no stale header may pass for a live block */
        settle(p, q, lo, hi);
        return;
    }
    b->size = s | F_FREE; /* b's F_PREV_FREE is clear here */
    n->prev_phys = b;
    set_prev_free(n);
    pool_insert(p, b);
    settle(p, b, lo, hi);
}

static inline void pool_release(struct pool *p, block_t *b)
{
    pool_release_ex(p, b, false);
}

/* Cut used block b down to stride s (<= its own), returning the tail to the index
 * joined with a free next block, or alone when it is worth keeping. */
static inline void pool_trim_used(struct pool *p, block_t *b, size_t s)
{
    size_t have = bsize(b);
    block_t *n = next_phys(b);
    bool join = is_free(n);
    /* A tail of any size can join a free next block; alone it must be worth a block. */
    if (have == s || (!join && !worth_splitting(have, s)))
        return;
    block_t *rest = at(b, s);
    size_t rs = have - s + (join ? bsize(n) : 0);
    uintptr_t hi = join ? absorb(p, n) : (uintptr_t)n; /* before rest's words are written */
    rest->size = rs | F_FREE;
    commit_point();
    b->size = live_word(p, b, s) | (b->size & F_PREV_FREE);
    if (join)
        pool_unlink(p, n); /* its header is inside rest now, but still reads as before */
    n = at(rest, rs);
    n->prev_phys = rest;
    set_prev_free(n);
    pool_insert(p, rest);
    settle(p, rest, (uintptr_t)rest, hi);
}

/* ------------------------------------------------------------ the engine calls */

/* Lay an empty pool over [mem+header, mem+bytes), the engine's own struct (of
 * `header` bytes, beginning with the struct pool, already zeroed) in front.  Returns
 * false if the memory cannot hold a single block. */
static inline bool pool_create(struct pool *p, size_t header, uint64_t magic, size_t bytes)
{
    char *mem = (char *)p;
    char *start = (char *)fm_align_up((uintptr_t)mem + header, FM_ALIGN);
    char *end = (char *)fm_align_down((uintptr_t)mem + bytes, FM_ALIGN);
    if (end < start || (size_t)(end - start) < BLOCK_MIN + HEADER)
        return false;
    p->magic = magic;
    p->magic_inv = ~magic;
    p->mem = mem;
    p->bytes = (size_t)(end - mem);
    p->start = start;
    p->sentinel = (block_t *)(end - HEADER);
    pool_set_range(p);
    block_t *b = (block_t *)start;
    b->prev_phys = NULL;
    b->size = (size_t)((char *)p->sentinel - start);
    p->sentinel->size = 0;
    p->used_blocks = 1;
    pool_release_ex(p, b, true);
    return true;
}

static inline void pool_grow(void *eng, size_t bytes)
{
    struct pool *p = eng;
    char *end = (char *)fm_align_down((uintptr_t)p->mem + bytes, FM_ALIGN);
    block_t *old = p->sentinel;
    fm_assert(end - HEADER >= (char *)old && "a pool only grows");
    size_t delta = (size_t)(end - HEADER - (char *)old);
    if (delta < BLOCK_MIN)
        return;
    /* The old sentinel becomes a used block spanning the new space, then is freed,
     * which joins it with a free block before it. */
    old->size = delta | (old->size & F_PREV_FREE);
    p->sentinel = at(old, delta);
    pool_set_span(p);
    p->sentinel->size = 0;
    p->bytes = (size_t)(end - p->mem);
    p->used_blocks++;
    pool_release_ex(p, old, true); /* the new space was never touched */
}

static inline void pool_set_release(void *eng, size_t min, size_t batch, size_t page,
                                    const struct fm_release_ops *ops)
{
    struct pool *p = eng;
    p->page = page;
    p->release = ops;
    p->release_min = min;
    p->release_batch = batch;
}

static inline void *pool_malloc(void *eng, size_t n)
{
    struct pool *p = eng;
    if (n > FM_MAX_REQUEST)
        return NULL;
    size_t s = stride_for(n);
    block_t *b = pool_take(p, s);
    return b ? pool_hand_out(p, b, s) : NULL;
}

/* A batch of blocks of one size (the thread caches' refill, heap.c): what want
 * successive pool_malloc calls would hand out, in one visit, except that the batch
 * stops at a free block that would go out whole as a larger stride (too little over
 * s to split): that one stays in the index.  The first block is handed out whatever
 * it is, as pool_malloc would.  (Taken whole, such blocks went to other lists of the
 * cache, full ones often, and so straight back: in churn a third of what refills
 * took.)  Each free block taken is cut into as many blocks of the stride as it holds
 * (up to what is still wanted), front to back, with the split rule applied only to
 * the last: a pool_malloc that
 * split a block leaves the rest at the head of a list the next pool_malloc of the
 * stride looks in first, so the blocks and the remainder are the same, but the index
 * is visited once per free block instead of once per block.  Crash order: the headers
 * of the blocks cut off the front, and of the last piece (still free, out of the
 * index), are written before the one store that makes the first block used; a process
 * killed after it leaks the blocks of the batch, the way a single malloc leaks one. */
static inline size_t pool_malloc_batch(void *eng, size_t n, void **out, size_t want)
{
    struct pool *p = eng;
    if (n > FM_MAX_REQUEST)
        return 0;
    size_t s = stride_for(n);
    size_t got = 0;
    while (got < want) {
        block_t *b = pool_take(p, s);
        if (b == NULL)
            break;
        if (got > 0 && bsize(b) != s && bsize(b) < 2 * s && !worth_splitting(bsize(b), s)) {
            /* a hole a little larger than s: whole, it would be a block of a larger
             * stride, for another list of the cache (full, often: back it would go) */
            pool_insert(p, b);
            break;
        }
        uintptr_t lo, hi;
        bool released = take_released(p, b, &lo, &hi);
        size_t have = bsize(b);
        size_t k = have / s; /* >= 1: the block fits s */
        if (k > want - got)
            k = want - got;
        if (k > 1) {
            size_t front = (k - 1) * s;
            for (size_t i = 1; i < k - 1; i++)
                at(b, i * s)->size = live_word(p, at(b, i * s), s); /* after a used block */
            block_t *last = at(b, front);
            last->size = (have - front) | F_FREE;
            commit_point();
            b->size = live_word(p, b, s) | (b->size & F_PREV_FREE);
            for (size_t i = 0; i < k - 1; i++)
                out[got++] = to_ptr(at(b, i * s));
            p->used_blocks += k - 1;
            b = last; /* its next block's F_PREV_FREE and prev_phys are set: b was free */
        }
        out[got++] = hand_out_range(p, b, s, released, lo, hi);
    }
    return got;
}

static inline void *pool_memalign(void *eng, size_t align, size_t n)
{
    struct pool *p = eng;
    fm_assert(fm_is_pow2(align) && align > FM_ALIGN && align <= FM_MAX_ALIGN);
    if (n > FM_MAX_REQUEST)
        return NULL;
    size_t s = stride_for(n);
    /* Room for the block plus a leading gap that is either empty or big enough to
     * stand as a free block of its own (gap <= align + 16). */
    block_t *b = pool_take(p, s + align + BLOCK_MIN);
    if (b == NULL)
        return NULL;
    uintptr_t a = (uintptr_t)to_ptr(b);
    size_t gap = fm_align_up(a, align) - a;
    if (gap != 0 && gap < BLOCK_MIN)
        gap += align;
    uintptr_t lo, hi;
    bool released = take_released(p, b, &lo, &hi);
    b->size &= ~F_RELEASED;
    if (gap != 0) {
        block_t *nb = at(b, gap);
        nb->size = (bsize(b) - gap) | F_PREV_FREE;
        nb->prev_phys = b;
        commit_point();
        b->size = gap | (b->size & F_PREV_FREE) | F_FREE;
        if (released)
            mark_released(p, b, lo, hi);
        pool_insert(p, b);
        b = nb;
    }
    return hand_out_range(p, b, s, released, lo, hi);
}

static inline bool pool_resize(void *eng, void *ptr, size_t n)
{
    struct pool *p = eng;
    if (n > FM_MAX_REQUEST)
        return false;
    block_t *b = from_ptr(ptr);
    size_t s = stride_for(n);
    if (s > bsize(b)) {
        block_t *nx = next_phys(b);
        if (!is_free(nx) || bsize(b) + bsize(nx) < s)
            return false;
        if (nx->size & F_RELEASED)
            unrelease(p, nx); /* its grains are b's now: none may be given back */
        pool_unlink(p, nx);
        size_t grown = bsize(b) + bsize(nx);
        b->size = live_word(p, b, grown) | (b->size & F_PREV_FREE);
        clear_prev_free(next_phys(b));
    }
    pool_trim_used(p, b, s);
    return true;
}

static inline ptrdiff_t pool_free(void *eng, void *ptr)
{
    struct pool *p = eng;
    int kind = pool_classify(p, ptr);
    if (fm_unlikely(kind != 0))
        return kind;
    block_t *b = from_ptr(ptr);
    size_t usable = bsize(b) - OVERHEAD;
    pool_release(p, b);
    return (ptrdiff_t)usable;
}

static inline size_t pool_usable_size(void *eng, const void *ptr)
{
    (void)eng;
    return bsize(from_ptr(ptr)) - OVERHEAD;
}

static inline bool pool_owns_block(void *eng, const void *ptr)
{
    return pool_classify(eng, ptr) == 0;
}

static inline void pool_each_live(void *eng, bool (*fn)(void *arg, void *ptr, size_t usable), void *arg)
{
    struct pool *p = eng;
    for (block_t *b = (block_t *)p->start; b != p->sentinel; b = next_phys(b))
        if (!is_free(b) && !fn(arg, to_ptr(b), bsize(b) - OVERHEAD))
            return;
}

/* The vtable entries every engine takes from here as they are. */
#define POOL_ENGINE_CALLS                                                                   \
    .grow = pool_grow, .malloc = pool_malloc, .malloc_batch = pool_malloc_batch,             \
    .memalign = pool_memalign,                                                              \
    .resize = pool_resize, .free = pool_free, .usable_size = pool_usable_size,              \
    .owns_block = pool_owns_block, .set_release = pool_set_release, .rebuild = pool_rebuild, \
    .each_live = pool_each_live, .pool_layout = true

/* The counters every engine reports; largest_free is the engine's to fill. */
static inline void pool_stats(const struct pool *p, struct fm_engine_stats *st)
{
    st->pool_bytes = p->bytes;
    st->free_bytes = p->free_bytes;
    st->free_blocks = p->free_blocks;
    st->used_bytes = p->bytes - p->free_bytes;
    st->used_blocks = p->used_blocks;
    st->largest_free = 0;
    st->tail_free = prev_is_free(p->sentinel) ? bsize(p->sentinel->prev_phys) - OVERHEAD : 0;
}

/* The largest usable size among the free blocks of one list (0 if it is empty). */
static inline size_t list_largest(const block_t *head)
{
    size_t best = 0;
    for (const block_t *b = head; b; b = b->next_free)
        if (bsize(b) > best)
            best = bsize(b);
    return best ? best - OVERHEAD : 0;
}

/* pool_free_pages over an engine's array of list heads.  Every page inside a free
 * block goes back, the grains waiting with the rest, so nothing waits afterwards. */
static inline size_t pool_free_pages(struct pool *p, block_t *const *heads, size_t nheads, size_t page,
                                     void (*fn)(void *, void *, size_t), void *arg)
{
    size_t total = 0;
    for (size_t i = 0; i < nheads; i++) {
        for (block_t *b = heads[i]; b; b = b->next_free) {
            uintptr_t keep = (b->size & F_RELEASED) ? FREE_HEAD : sizeof(block_t);
            uintptr_t lo = fm_align_up((uintptr_t)b + keep, page);
            uintptr_t hi = fm_align_down((uintptr_t)b + bsize(b), page);
            if (hi > lo) {
                fn(arg, (void *)lo, hi - lo);
                total += hi - lo;
            }
        }
    }
    while (p->pend_first) {
        uintptr_t lo = 0, hi = 0;
        pend_take(p, p->pend_first, &lo, &hi);
    }
    return total;
}

/* After a process died mid-call (see commit_point): re-derive everything from the
 * chain of size words.  The chain itself is checked (every block inside the pool with
 * a sane size, the last one ending at the sentinel); the flags and prev_phys links
 * are set from it, free neighbours joined, the lists rebuilt and the counters
 * recounted.  Returns NULL, or why the chain cannot be trusted (then nothing has
 * been indexed). */
static inline const char *pool_rebuild(void *eng, uint64_t *live, uint64_t *in_use)
{
    struct pool *p = eng;
    if (p->magic != ~p->magic_inv)
        return "the engine's control block has lost its magic number";
    for (block_t *b = (block_t *)p->start; b != p->sentinel; b = next_phys(b)) {
        size_t s = bsize(b);
        if (s < BLOCK_MIN || (b->size & (F_MASK & ~F_KNOWN)) != 0 ||
            s > (size_t)((char *)p->sentinel - (char *)b))
            return "a block has an impossible size or runs past the end of the pool";
    }
    if (bsize(p->sentinel) != 0)
        return "the pool's end sentinel is damaged";
    list_clear(p);
    p->free_bytes = p->free_blocks = p->used_blocks = 0;
    p->pend_first = p->pend_last = NULL;
    p->pend_bytes = 0;
    uint64_t usable = 0;
    block_t *prev = NULL;
    for (block_t *b = (block_t *)p->start;;) {
        bool prev_free = prev != NULL && is_free(prev);
        if (b != p->sentinel && is_free(b) && prev_free) {
            block_t *next = next_phys(b);
            prev->size += bsize(b); /* join: b disappears into prev */
            b = next;
            continue;
        }
        /* F_RELEASED is dropped: it is an economy, not an invariant */
        size_t keep = is_free(b) ? bsize(b) | F_FREE : b == p->sentinel ? 0 : live_word(p, b, bsize(b));
        b->size = keep | (prev_free ? F_PREV_FREE : 0);
        if (prev_free)
            b->prev_phys = prev;
        if (b == p->sentinel)
            break;
        if (!is_free(b)) {
            p->used_blocks++;
            usable += bsize(b) - OVERHEAD;
        }
        prev = b;
        b = next_phys(b);
    }
    for (block_t *b = (block_t *)p->start; b != p->sentinel; b = next_phys(b))
        if (is_free(b))
            pool_insert(p, b);
    *live = p->used_blocks;
    *in_use = usable;
    return NULL;
}

/* The physical walk of the invariant check: every block inside the pool with a sane
 * size, boundary tags that agree, no two free blocks adjacent, and counters that
 * match.  *nfree receives the number of free blocks, for the engine's list check. */
static inline const char *pool_check_blocks(const struct pool *p, uint64_t magic, uint64_t *nfree)
{
    if (p->magic != magic || p->magic_inv != ~magic)
        return "the engine's control block has lost its magic number";
    uint64_t free_n = 0, used_n = 0, free_bytes = 0, pending_n = 0, pending_bytes = 0;
    bool prev_free = false;
    const block_t *prev = NULL;
    const block_t *b = (const block_t *)p->start;
    for (;;) {
        if ((uintptr_t)b < (uintptr_t)p->start || (uintptr_t)b > (uintptr_t)p->sentinel)
            return "a block lies outside the pool";
        if (prev_is_free(b) != prev_free)
            return "a block's prev-free flag disagrees with the block before it";
        if (prev_free && b->prev_phys != prev)
            return "a block's prev_phys does not point at the free block before it";
        if (b == p->sentinel)
            break;
        size_t s = bsize(b);
        if (s < BLOCK_MIN || (b->size & (F_MASK & ~F_KNOWN)) != 0)
            return "a block has an impossible size";
        if ((b->size & (F_FREE | F_RELEASED)) == F_RELEASED)
            return "a live block is marked as released";
        if ((b->size & ~F_MASK) != (is_free(b) ? s : live_word(p, b, s)))
            return "a block's size word has the wrong check bits";
        if (b->size & F_RELEASED) {
            uintptr_t first, last;
            grains_of(p, b, &first, &last);
            const struct pend *e = pend_of(b);
            if (first >= last)
                return "a block without a whole grain is marked as released";
            if (e->lo != e->hi) {
                if (e->lo > e->hi || e->lo < first || e->hi > last ||
                    ((e->lo | e->hi) & (grain(p) - 1)) != 0)
                    return "a released block's waiting grains lie outside it";
                pending_n++;
                pending_bytes += e->hi - e->lo;
            }
        }
        if (s > (size_t)((const char *)p->sentinel - (const char *)b))
            return "a block runs past the end of the pool";
        if (is_free(b)) {
            if (prev_free)
                return "two free blocks are adjacent (coalescing missed)";
            free_n++;
            free_bytes += s;
        } else {
            used_n++;
        }
        prev_free = is_free(b);
        prev = b;
        b = next_phys(b);
    }
    if (bsize(p->sentinel) != 0 || is_free(p->sentinel))
        return "the pool's end sentinel is damaged";
    if (p->free_blocks != free_n || p->free_bytes != free_bytes || p->used_blocks != used_n)
        return "the block counters disagree with the pool";
    if (p->pend_bytes != pending_bytes)
        return "the bytes waiting to go back disagree with the blocks";
    /* The pending list: exactly the released blocks with grains waiting, linked both
     * ways (each one was checked in the walk above, so only the links are left). */
    const block_t *back = NULL;
    uint64_t seen = 0;
    for (const block_t *m = p->pend_first; m; m = pend_of(m)->next) {
        if (++seen > pending_n || (uintptr_t)m < (uintptr_t)p->start ||
            (uintptr_t)m + FREE_HEAD > (uintptr_t)p->sentinel || !is_free(m) || !(m->size & F_RELEASED) ||
            pend_of(m)->lo == pend_of(m)->hi)
            return "the list of blocks waiting to go back holds a block that is not waiting";
        if (pend_of(m)->prev != back)
            return "the list of blocks waiting to go back has a wrong back link";
        back = m;
    }
    if (seen != pending_n || p->pend_last != back)
        return "the list of blocks waiting to go back misses a block";
    *nfree = free_n;
    return NULL;
}

/* The check of one free list: links inside the pool, blocks marked free, back links
 * right, and each block where index_of says it belongs.  *listed counts the blocks
 * seen, and stops a cycle once it passes nfree. */
static inline const char *pool_check_list(const struct pool *p, const block_t *head, size_t want,
                                          size_t (*index_of)(size_t stride), uint64_t nfree,
                                          uint64_t *listed)
{
    const block_t *back = NULL;
    for (const block_t *f = head; f; f = f->next_free) {
        if (++*listed > nfree)
            return "the free lists hold more blocks than the pool (a cycle?)";
        if ((uintptr_t)f < (uintptr_t)p->start || (uintptr_t)f >= (uintptr_t)p->sentinel)
            return "a free list points outside the pool";
        if (!is_free(f))
            return "a block in a free list is marked used";
        if (f->prev_free != back)
            return "a free list's back link is wrong";
        if (index_of(bsize(f)) != want)
            return "a free block is in the wrong list for its size";
        back = f;
    }
    return NULL;
}

#endif
