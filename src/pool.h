/* pool.h: the part of block.h's pool that is read outside the engines: the block
 * layout (block.h explains it), the pool's control struct, and pool_classify, the
 * check that a pointer is a live block.
 *
 * The engines include this through block.h.  The thread caches (tcache.h) include it
 * alone, so that a free they serve checks the pointer inline, without an indirect
 * call (pool_in_range, pool_cacheable; pool_classify when a block goes back to the
 * engine): every engine that has caches in front is a pool engine (engine.h,
 * pool_layout), whose instance starts with a struct pool.
 */
#ifndef FM_POOL_H
#define FM_POOL_H

#include "engine.h"

#define HEADER ((size_t)16)
#define OVERHEAD ((size_t)8)
#define BLOCK_MIN ((size_t)32)
#define F_FREE ((size_t)1)
#define F_PREV_FREE ((size_t)2)
#define F_RELEASED ((size_t)4) /* free, and its whole pages given back (block.h) */
#define F_MASK ((size_t)15)
#define F_KNOWN (F_FREE | F_PREV_FREE | F_RELEASED) /* every other flag bit is damage */

/* A live block's size word carries a check of 16 bits in its top bits (sizes stay
 * under 2^48: FM_MAX_REQUEST and FM_MEMSIZE_MAX are 2^46), a hash of the block's
 * place in the pool and its size.  A free block's top bits are zero, and so is the
 * word of a block that disappears into a neighbour, so only a header the engine wrote
 * for a block it handed out, at that place and of that size, carries the right check.
 * This is what lets pool_classify prove a pointer is a live block from its own size
 * word alone: a word inside some block's data passes by chance 1 time in 65536, and a
 * stale header never.  The boundary tags of the neighbours are only read on the
 * rare paths (a flag set), so a free does not touch the next block's header, a cache
 * line another thread may be writing. */
#define CHECK_SHIFT 48
_Static_assert(FM_STRIDE_BITS == (((size_t)1) << CHECK_SHIFT) - 16, "the stride is below the check");

typedef struct block block_t;
struct block {
    block_t *prev_phys;
    size_t size;
    block_t *next_free;
    block_t *prev_free;
};

/* The start of every pool engine's instance (block.h has what the fields are for). */
struct pool {
    uint64_t magic;
    uint64_t magic_inv; /* ~magic: lets pool_rebuild test the magic without knowing it */
    size_t release_min;
    size_t release_batch;
    size_t page;
    const struct fm_release_ops *release; /* how pages go back (engine.h) */
    char *mem;          /* where the instance starts */
    size_t bytes;       /* memory managed, from mem */
    char *start;        /* first block */
    block_t *sentinel;  /* the zero-size header that ends the pool */
    uint64_t free_bytes;
    uint64_t free_blocks;
    uint64_t used_blocks;
    block_t *pend_first, *pend_last; /* free blocks with grains waiting to go back */
    uint64_t pend_bytes;             /* the grains waiting, in bytes */
    uintptr_t lo;                    /* start + HEADER: the lowest pointer to a block */
    uintptr_t span16;                /* (sentinel - lo) / 16: pointers to blocks, from lo */
};

static inline size_t bsize(const block_t *b)
{
    return b->size & FM_STRIDE_BITS;
}

/* Threads read a live block's size word without the heap's lock (the caches' fast
 * paths, a ring being settled, free's slow path guessing), while the engine, under
 * the lock, may set or clear F_PREV_FREE in that very word because the block before
 * it was just freed or handed out.  No other bit of a live block's word changes while
 * the block lives, and the lock-free readers ignore F_PREV_FREE, so either value will
 * do; what matters is that the word is read and written whole, once.  These are
 * relaxed atomic accesses (a plain load or store on every target we build for) that
 * say so to the compiler and to ThreadSanitizer.  All other writes to size words are
 * made under the lock to blocks no other thread may look at. */
static inline size_t block_word(const block_t *b)
{
    return __atomic_load_n(&b->size, __ATOMIC_RELAXED);
}

static inline size_t bsize_unlocked(const block_t *b)
{
    return block_word(b) & FM_STRIDE_BITS;
}

static inline void set_prev_free(block_t *n)
{
    __atomic_store_n(&n->size, n->size | F_PREV_FREE, __ATOMIC_RELAXED);
}

static inline void clear_prev_free(block_t *n)
{
    __atomic_store_n(&n->size, n->size & ~F_PREV_FREE, __ATOMIC_RELAXED);
}

/* The check bits a live block of stride s at b carries (Fibonacci hashing of its
 * offset in the pool and its stride: the product's top bits depend on every bit). */
static inline size_t check_hash(size_t off, size_t s) /* the check is its top bits */
{
    return (off << 16 ^ s) * (size_t)0x9E3779B97F4A7C15u;
}

static inline size_t check_bits(size_t off, size_t s)
{
    return check_hash(off, s) >> CHECK_SHIFT << CHECK_SHIFT;
}

static inline size_t live_check(const struct pool *p, const block_t *b, size_t s)
{
    return check_bits((size_t)((uintptr_t)b + HEADER - p->lo), s); /* off: b - start */
}

/* The size word of a live block of stride s at b, without flags. */
static inline size_t live_word(const struct pool *p, const block_t *b, size_t s)
{
    return s | live_check(p, b, s);
}

static inline bool is_free(const block_t *b)
{
    return (b->size & F_FREE) != 0;
}

static inline bool prev_is_free(const block_t *b)
{
    return (b->size & F_PREV_FREE) != 0;
}

static inline block_t *next_phys(const block_t *b)
{
    return (block_t *)((char *)b + bsize(b));
}

static inline block_t *at(const void *base, size_t off)
{
    return (block_t *)((char *)base + off);
}

static inline void *to_ptr(block_t *b)
{
    return (char *)b + HEADER;
}

static inline block_t *from_ptr(const void *p)
{
    return (block_t *)((char *)p - HEADER);
}

/* What ptr is: 0 for a live block, else an FM_FREE_* code.  Cheap checks only, none
 * of which reads outside the pool: alignment, range, a size word with the right check
 * bits and a sane size and, when its flags say a neighbour is free, boundary tags that
 * agree with the neighbours.  Every free that reaches an engine runs this, and the
 * common case (a used block after a used block) is a short straight line that reads
 * nothing but the block's own size word: the range and alignment are one compare
 * (rotated right by 4, an offset with any of its low bits set is larger than any
 * offset in range, which is a multiple of 16), the flags and check bits one more, and
 * the size one (at least BLOCK_MIN, ending by the sentinel: room >= BLOCK_MIN here). */
static inline bool pool_off_in_range(const struct pool *p, uintptr_t off) /* off: ptr - lo */
{
    return ((off >> 4) | (off << 60)) < __atomic_load_n(&p->span16, __ATOMIC_RELAXED);
}

static inline bool pool_in_range(const struct pool *p, const void *ptr)
{
    return pool_off_in_range(p, (uintptr_t)ptr - p->lo);
}

/* Set span16 after the sentinel moved.  It changes under the heap's lock while
 * free's fast path reads it without (one whole word, as block_word): a thread that
 * sees the old span sends a pointer in the new memory the slow way, which takes the
 * lock, and a thread can only hold such a pointer through a malloc made after the
 * growth anyway. */
static inline void pool_set_span(struct pool *p)
{
    __atomic_store_n(&p->span16, ((uintptr_t)p->sentinel - p->lo) >> 4, __ATOMIC_RELAXED);
}

/* Set lo and span16 for a new pool (the start never moves). */
static inline void pool_set_range(struct pool *p)
{
    p->lo = (uintptr_t)p->start + HEADER;
    pool_set_span(p);
}

/* For a thread cache taking a freed block of a cached stride: whether ptr, which
 * pool_in_range accepted, is a live block, given its size word (stride s, no more
 * than a cache's largest).  Only the word's check bits and flags are read: whether
 * the block before it is free is left aside, and with it the boundary tags, which
 * only joining relies on; the block is checked whole (pool_classify) when it goes
 * back to the engine. */
/* pool_cacheable with the pool's lo given: a loop that checks many blocks keeps a
 * copy, which the blocks' stores cannot change (the compiler cannot know that). */
static inline bool pool_cacheable_off(uintptr_t off, size_t word, size_t s) /* off: ptr - lo */
{
    /* s is word's stride, so word is s | check_bits(off, s), give or take F_PREV_FREE,
     * exactly when its top bits match the hash and its other flags are clear: one xor
     * and one mask instead of rebuilding the word.  A stride below BLOCK_MIN is not
     * refused here: the caches' lists 0 and 1 (strides 0 and 16, which no block has)
     * never have room (tcache.c), so such a word goes to the engine, which refuses it. */
    const size_t top = ~(size_t)0 << CHECK_SHIFT;
    return ((word ^ check_hash(off, s)) & (top | (F_MASK & ~F_PREV_FREE))) == 0;
}

static inline bool pool_cacheable_lo(uintptr_t lo, const void *ptr, size_t word, size_t s)
{
    return pool_cacheable_off((uintptr_t)ptr - lo, word, s);
}

static inline bool pool_cacheable(const struct pool *p, const void *ptr, size_t word, size_t s)
{
    return pool_cacheable_lo(p->lo, ptr, word, s);
}

/* pool_classify of a pointer that pool_in_range accepted. */
static inline int pool_classify_in_range(const struct pool *p, const void *ptr)
{
    const block_t *b = from_ptr(ptr);
    size_t word = b->size;
    size_t s = word & FM_STRIDE_BITS;
    size_t room = (size_t)((char *)p->sentinel - (char *)b);
    if (fm_unlikely(s - BLOCK_MIN > room - BLOCK_MIN))
        return FM_FREE_BAD_POINTER;
    if (fm_likely(word == live_word(p, b, s))) /* used, after a used block */
        return 0;
    const block_t *n = at(b, s);
    size_t flags = word & F_MASK;
    if ((flags & ~F_KNOWN) != 0 || (flags & (F_FREE | F_RELEASED)) == F_RELEASED)
        return FM_FREE_BAD_POINTER;
    if (flags & F_FREE)
        return (word >> CHECK_SHIFT == 0 && prev_is_free(n) && n->prev_phys == b)
                   ? FM_FREE_DOUBLE
                   : FM_FREE_BAD_POINTER;
    if ((word & ~F_PREV_FREE) != live_word(p, b, s) || prev_is_free(n))
        return FM_FREE_BAD_POINTER;
    /* used, after a free block that must end here */
    const block_t *q = b->prev_phys;
    if ((uintptr_t)q < (uintptr_t)p->start || (uintptr_t)q >= (uintptr_t)b || !is_free(q) ||
        next_phys(q) != b)
        return FM_FREE_BAD_POINTER;
    return 0;
}

static inline int pool_classify(const struct pool *p, const void *ptr)
{
    if (fm_unlikely(!pool_in_range(p, ptr)))
        return FM_FREE_BAD_POINTER;
    return pool_classify_in_range(p, ptr);
}

#endif
