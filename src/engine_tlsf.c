/* engine_tlsf.c: two-level segregated fit (Masmano et al., "TLSF: a new dynamic
 * memory allocator for real-time systems", 2004), with 16-byte blocks and pools far
 * past 4 GiB.
 *
 * Free blocks sit in one of FL_COUNT x SL_COUNT lists: the first level is the power of
 * two below the block size, the second splits that range into 32 equal parts.  Two
 * bitmaps say which lists are non-empty, so malloc finds a block with two bit scans
 * and no loop, and free coalesces with both neighbours through boundary tags; both
 * are O(1).
 *
 * Block layout.  Every block starts 16-byte aligned with a 16-byte header:
 *
 *     b+0   prev_phys   the previous block, valid only while that block is free
 *     b+8   size        the stride to the next block (a multiple of 16), | flags
 *     b+16  payload     (a free block keeps its list links here)
 *
 * The next block's prev_phys word is only meaningful while this block is free, so a
 * live block's payload runs over it: usable size = stride - 8, and the whole cost of
 * a live block is its size word.  The smallest block has a 32-byte stride (24 usable;
 * a free one needs room for two links).  The pool ends with a sentinel header of size
 * 0 that is never free; growing the pool turns the old sentinel into a free block.
 *
 * Good fit.  malloc rounds the request up to the next second-level boundary before
 * searching, so the head of any list it finds fits without a walk; the cost is that a
 * block in the request's own list can be overlooked.  When the rounded search finds
 * nothing, the head of the request's own list is tried too (still O(1)): that is what
 * lets a pool hand out its one remaining block, however large, in full.
 */
#include "engine.h"

#include <string.h>

enum {
    ALIGN_LOG2 = 4,
    SL_LOG2 = 5,
    SL_COUNT = 1 << SL_LOG2,
    FL_SHIFT = SL_LOG2 + ALIGN_LOG2, /* below 2^FL_SHIFT, lists are exact 16-byte classes */
    FL_MAX = 47,                     /* blocks are smaller than 2^FL_MAX (128 TiB) */
    FL_COUNT = FL_MAX - FL_SHIFT + 1,
};

#define SMALL_SIZE ((size_t)1 << FL_SHIFT)
#define HEADER ((size_t)16)
#define OVERHEAD ((size_t)8)
#define BLOCK_MIN ((size_t)32)
#define F_FREE ((size_t)1)
#define F_PREV_FREE ((size_t)2)
#define F_MASK ((size_t)15)
#define TLSF_MAGIC 0x464d544c53463031ULL /* "FMTLSF01" */

_Static_assert(FL_COUNT <= 64, "the first-level bitmap is one 64-bit word");
_Static_assert(FM_MAX_REQUEST + FM_MAX_ALIGN + 64 < ((size_t)1 << FL_MAX),
               "every request a heap passes on maps to a first-level list");

typedef struct block block_t;
struct block {
    block_t *prev_phys;
    size_t size;
    block_t *next_free;
    block_t *prev_free;
};

struct tlsf {
    uint64_t magic;
    uint64_t fl_bitmap;
    uint32_t sl_bitmap[FL_COUNT];
    char *mem;          /* where the instance starts */
    size_t bytes;       /* memory managed, from mem */
    char *pool;         /* first block */
    block_t *sentinel;  /* the zero-size header that ends the pool */
    uint64_t free_bytes;
    uint64_t free_blocks;
    uint64_t used_blocks;
    block_t *heads[FL_COUNT][SL_COUNT];
};

/* ---------------------------------------------------------------- block helpers */

static inline size_t bsize(const block_t *b)
{
    return b->size & ~F_MASK;
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

/* The stride of a block with n usable bytes; n <= FM_MAX_REQUEST. */
static inline size_t stride_for(size_t n)
{
    size_t s = fm_align_up(n + OVERHEAD, FM_ALIGN);
    return s < BLOCK_MIN ? BLOCK_MIN : s;
}

static inline int fls64(uint64_t x)
{
    return 63 - __builtin_clzll(x);
}

/* The list a block of this stride belongs to. */
static inline void mapping(size_t size, int *fl, int *sl)
{
    if (size < SMALL_SIZE) {
        *fl = 0;
        *sl = (int)(size >> ALIGN_LOG2);
    } else {
        int f = fls64(size);
        *sl = (int)((size >> (f - SL_LOG2)) ^ SL_COUNT);
        *fl = f - (FL_SHIFT - 1);
    }
}

/* ----------------------------------------------------------------- free lists */

static void insert(struct tlsf *t, block_t *b)
{
    int fl, sl;
    mapping(bsize(b), &fl, &sl);
    block_t *head = t->heads[fl][sl];
    b->next_free = head;
    b->prev_free = NULL;
    if (head)
        head->prev_free = b;
    t->heads[fl][sl] = b;
    t->fl_bitmap |= 1ULL << fl;
    t->sl_bitmap[fl] |= 1U << sl;
    t->free_bytes += bsize(b);
    t->free_blocks++;
}

static void unlink_free(struct tlsf *t, block_t *b)
{
    int fl, sl;
    mapping(bsize(b), &fl, &sl);
    if (b->next_free)
        b->next_free->prev_free = b->prev_free;
    if (b->prev_free) {
        b->prev_free->next_free = b->next_free;
    } else {
        t->heads[fl][sl] = b->next_free;
        if (b->next_free == NULL) {
            t->sl_bitmap[fl] &= ~(1U << sl);
            if (t->sl_bitmap[fl] == 0)
                t->fl_bitmap &= ~(1ULL << fl);
        }
    }
    t->free_bytes -= bsize(b);
    t->free_blocks--;
}

/* A free block with a stride of at least size, or NULL; O(1). */
static block_t *find_fit(struct tlsf *t, size_t size)
{
    size_t rounded = size;
    if (size >= SMALL_SIZE)
        rounded += ((size_t)1 << (fls64(size) - SL_LOG2)) - 1;
    int fl, sl;
    mapping(rounded, &fl, &sl);
    if (fl < FL_COUNT) {
        uint32_t sl_map = t->sl_bitmap[fl] & (~0U << sl);
        if (sl_map == 0) {
            uint64_t fl_map = fl + 1 < 64 ? t->fl_bitmap & (~0ULL << (fl + 1)) : 0;
            if (fl_map) {
                fl = __builtin_ctzll(fl_map);
                sl_map = t->sl_bitmap[fl];
            }
        }
        if (sl_map)
            return t->heads[fl][__builtin_ctz(sl_map)];
    }
    mapping(size, &fl, &sl);
    block_t *b = t->heads[fl][sl];
    return (b && bsize(b) >= size) ? b : NULL;
}

/* ------------------------------------------------------- splitting and joining */

/* Hand out free block b (already unlinked) with stride s, returning any remainder
 * worth a block to the free lists. */
static void *take(struct tlsf *t, block_t *b, size_t s)
{
    size_t have = bsize(b);
    if (have - s >= BLOCK_MIN) {
        block_t *rest = at(b, s);
        rest->size = (have - s) | F_FREE;
        b->size = s | (b->size & F_PREV_FREE);
        block_t *n = next_phys(rest);
        n->prev_phys = rest; /* n's F_PREV_FREE is already set: b was free */
        insert(t, rest);
    } else {
        b->size &= ~F_FREE;
        next_phys(b)->size &= ~F_PREV_FREE;
    }
    t->used_blocks++;
    return to_ptr(b);
}

/* Make used block b (unlinked, counted in used_blocks) free: join it with free
 * neighbours on both sides and list the result. */
static void release(struct tlsf *t, block_t *b)
{
    t->used_blocks--;
    if (prev_is_free(b)) {
        block_t *p = b->prev_phys;
        unlink_free(t, p);
        p->size += bsize(b);
        b = p;
    }
    block_t *n = next_phys(b);
    if (is_free(n)) {
        unlink_free(t, n);
        b->size += bsize(n);
        n = next_phys(b);
    }
    b->size |= F_FREE;
    n->prev_phys = b;
    n->size |= F_PREV_FREE;
    insert(t, b);
}

/* Cut used block b down to stride s, returning the tail (joined with a free next
 * block) to the free lists when it is worth a block. */
static void trim_used(struct tlsf *t, block_t *b, size_t s)
{
    size_t have = bsize(b);
    if (have - s < BLOCK_MIN)
        return;
    block_t *rest = at(b, s);
    rest->size = have - s;
    b->size = s | (b->size & F_PREV_FREE);
    block_t *n = next_phys(rest);
    if (is_free(n)) {
        unlink_free(t, n);
        rest->size += bsize(n);
        n = next_phys(rest);
    }
    rest->size |= F_FREE;
    n->prev_phys = rest;
    n->size |= F_PREV_FREE;
    insert(t, rest);
}

/* What p is: 0 for a live block, else an FM_FREE_* code.  Cheap checks only, none
 * of which reads outside the pool: alignment, range, a sane size, and boundary tags
 * that agree with the neighbours. */
static int classify(const struct tlsf *t, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if ((a & (FM_ALIGN - 1)) != 0 || a < (uintptr_t)t->pool + HEADER ||
        a >= (uintptr_t)t->sentinel)
        return FM_FREE_BAD_POINTER;
    const block_t *b = from_ptr(p);
    size_t s = bsize(b);
    if ((b->size & (F_MASK & ~(F_FREE | F_PREV_FREE))) != 0 || s < BLOCK_MIN ||
        s > (size_t)((char *)t->sentinel - (char *)b))
        return FM_FREE_BAD_POINTER;
    const block_t *n = next_phys(b);
    if (is_free(b))
        return (prev_is_free(n) && n->prev_phys == b) ? FM_FREE_DOUBLE : FM_FREE_BAD_POINTER;
    if (prev_is_free(n))
        return FM_FREE_BAD_POINTER;
    if (prev_is_free(b)) {
        const block_t *q = b->prev_phys;
        if ((uintptr_t)q < (uintptr_t)t->pool || (uintptr_t)q >= (uintptr_t)b || !is_free(q) ||
            next_phys(q) != b)
            return FM_FREE_BAD_POINTER;
    }
    return 0;
}

/* ------------------------------------------------------------ the engine calls */

static void *tlsf_create(void *mem, size_t bytes)
{
    struct tlsf *t = mem;
    char *start = (char *)fm_align_up((uintptr_t)mem + sizeof *t, FM_ALIGN);
    char *end = (char *)fm_align_down((uintptr_t)mem + bytes, FM_ALIGN);
    if (end < start || (size_t)(end - start) < BLOCK_MIN + HEADER)
        return NULL;
    memset(t, 0, sizeof *t);
    t->magic = TLSF_MAGIC;
    t->mem = mem;
    t->bytes = (size_t)(end - (char *)mem);
    t->pool = start;
    t->sentinel = (block_t *)(end - HEADER);
    block_t *b = (block_t *)start;
    b->prev_phys = NULL;
    b->size = (size_t)((char *)t->sentinel - start);
    t->sentinel->size = 0;
    t->used_blocks = 1;
    release(t, b);
    return t;
}

static void tlsf_grow(void *eng, size_t bytes)
{
    struct tlsf *t = eng;
    char *end = (char *)fm_align_down((uintptr_t)t->mem + bytes, FM_ALIGN);
    block_t *old = t->sentinel;
    size_t delta = (size_t)(end - HEADER - (char *)old);
    fm_assert(end - HEADER >= (char *)old && "a pool only grows");
    if (delta < BLOCK_MIN)
        return;
    /* The old sentinel becomes a used block spanning the new space, then is freed,
     * which joins it with a free block before it. */
    old->size = delta | (old->size & F_PREV_FREE);
    t->sentinel = at(old, delta);
    t->sentinel->size = 0;
    t->bytes = (size_t)(end - t->mem);
    t->used_blocks++;
    release(t, old);
}

static void *tlsf_malloc(void *eng, size_t n)
{
    struct tlsf *t = eng;
    if (n > FM_MAX_REQUEST)
        return NULL;
    size_t s = stride_for(n);
    block_t *b = find_fit(t, s);
    if (b == NULL)
        return NULL;
    unlink_free(t, b);
    return take(t, b, s);
}

static void *tlsf_memalign(void *eng, size_t align, size_t n)
{
    struct tlsf *t = eng;
    fm_assert(fm_is_pow2(align) && align > FM_ALIGN && align <= FM_MAX_ALIGN);
    if (n > FM_MAX_REQUEST)
        return NULL;
    size_t s = stride_for(n);
    /* Room for the block plus a leading gap that is either empty or big enough to
     * stand as a free block of its own (gap <= align + 16). */
    block_t *b = find_fit(t, s + align + BLOCK_MIN);
    if (b == NULL)
        return NULL;
    unlink_free(t, b);
    uintptr_t p = (uintptr_t)to_ptr(b);
    size_t gap = fm_align_up(p, align) - p;
    if (gap != 0 && gap < BLOCK_MIN)
        gap += align;
    if (gap != 0) {
        block_t *nb = at(b, gap);
        nb->size = (bsize(b) - gap) | F_PREV_FREE;
        nb->prev_phys = b;
        b->size = gap | (b->size & F_PREV_FREE) | F_FREE;
        insert(t, b);
        b = nb;
    }
    return take(t, b, s);
}

static bool tlsf_resize(void *eng, void *p, size_t n)
{
    struct tlsf *t = eng;
    if (n > FM_MAX_REQUEST)
        return false;
    block_t *b = from_ptr(p);
    size_t s = stride_for(n);
    if (s > bsize(b)) {
        block_t *n2 = next_phys(b);
        if (!is_free(n2) || bsize(b) + bsize(n2) < s)
            return false;
        unlink_free(t, n2);
        b->size += bsize(n2);
        next_phys(b)->size &= ~F_PREV_FREE;
    }
    trim_used(t, b, s);
    return true;
}

static ptrdiff_t tlsf_free(void *eng, void *p)
{
    struct tlsf *t = eng;
    int kind = classify(t, p);
    if (kind != 0)
        return kind;
    block_t *b = from_ptr(p);
    size_t usable = bsize(b) - OVERHEAD;
    release(t, b);
    return (ptrdiff_t)usable;
}

static size_t tlsf_usable_size(void *eng, const void *p)
{
    (void)eng;
    return bsize(from_ptr(p)) - OVERHEAD;
}

static bool tlsf_owns_block(void *eng, const void *p)
{
    return classify(eng, p) == 0;
}

static void tlsf_stats(void *eng, struct fm_engine_stats *st)
{
    struct tlsf *t = eng;
    st->pool_bytes = t->bytes;
    st->free_bytes = t->free_bytes;
    st->free_blocks = t->free_blocks;
    st->used_bytes = t->bytes - t->free_bytes;
    st->used_blocks = t->used_blocks;
    st->largest_free = 0;
    if (t->fl_bitmap) {
        int fl = fls64(t->fl_bitmap);
        int sl = 31 - __builtin_clz(t->sl_bitmap[fl]);
        size_t best = 0;
        for (block_t *b = t->heads[fl][sl]; b; b = b->next_free)
            if (bsize(b) > best)
                best = bsize(b);
        st->largest_free = best - OVERHEAD;
    }
    st->tail_free = prev_is_free(t->sentinel) ? bsize(t->sentinel->prev_phys) - OVERHEAD : 0;
}

static size_t tlsf_free_pages(void *eng, size_t page, void (*fn)(void *, void *, size_t), void *arg)
{
    struct tlsf *t = eng;
    size_t total = 0;
    for (int fl = 0; fl < FL_COUNT; fl++) {
        for (int sl = 0; sl < SL_COUNT; sl++) {
            for (block_t *b = t->heads[fl][sl]; b; b = b->next_free) {
                uintptr_t lo = fm_align_up((uintptr_t)b + sizeof(block_t), page);
                uintptr_t hi = fm_align_down((uintptr_t)b + bsize(b), page);
                if (hi > lo) {
                    fn(arg, (void *)lo, hi - lo);
                    total += hi - lo;
                }
            }
        }
    }
    return total;
}

static const char *tlsf_check(void *eng)
{
    struct tlsf *t = eng;
    if (t->magic != TLSF_MAGIC)
        return "the TLSF control block has lost its magic number";
    uint64_t nfree = 0, nused = 0, free_bytes = 0;
    bool prev_free = false;
    const block_t *prev = NULL;
    const block_t *b = (const block_t *)t->pool;
    for (;;) {
        if ((uintptr_t)b < (uintptr_t)t->pool || (uintptr_t)b > (uintptr_t)t->sentinel)
            return "a block lies outside the pool";
        if (prev_is_free(b) != prev_free)
            return "a block's prev-free flag disagrees with the block before it";
        if (prev_free && b->prev_phys != prev)
            return "a block's prev_phys does not point at the free block before it";
        if (b == t->sentinel)
            break;
        size_t s = bsize(b);
        if (s < BLOCK_MIN || (b->size & (F_MASK & ~(F_FREE | F_PREV_FREE))) != 0)
            return "a block has an impossible size";
        if (s > (size_t)((const char *)t->sentinel - (const char *)b))
            return "a block runs past the end of the pool";
        if (is_free(b)) {
            if (prev_free)
                return "two free blocks are adjacent (coalescing missed)";
            nfree++;
            free_bytes += s;
        } else {
            nused++;
        }
        prev_free = is_free(b);
        prev = b;
        b = next_phys(b);
    }
    if (bsize(t->sentinel) != 0 || is_free(t->sentinel))
        return "the pool's end sentinel is damaged";

    uint64_t listed = 0;
    for (int fl = 0; fl < FL_COUNT; fl++) {
        if (((t->fl_bitmap >> fl) & 1) != (t->sl_bitmap[fl] != 0))
            return "the first-level bitmap disagrees with the second level";
        for (int sl = 0; sl < SL_COUNT; sl++) {
            const block_t *h = t->heads[fl][sl];
            if (((t->sl_bitmap[fl] >> sl) & 1) != (h != NULL))
                return "a second-level bit disagrees with its list";
            const block_t *back = NULL;
            for (const block_t *f = h; f; f = f->next_free) {
                if (++listed > nfree)
                    return "the free lists hold more blocks than the pool (a cycle?)";
                if ((uintptr_t)f < (uintptr_t)t->pool || (uintptr_t)f >= (uintptr_t)t->sentinel)
                    return "a free list points outside the pool";
                if (!is_free(f))
                    return "a block in a free list is marked used";
                if (f->prev_free != back)
                    return "a free list's back link is wrong";
                int ffl, fsl;
                mapping(bsize(f), &ffl, &fsl);
                if (ffl != fl || fsl != sl)
                    return "a free block is in the wrong list for its size";
                back = f;
            }
        }
    }
    if (listed != nfree)
        return "a free block is missing from the free lists";
    if (t->free_blocks != nfree || t->free_bytes != free_bytes || t->used_blocks != nused)
        return "the block counters disagree with the pool";
    return NULL;
}

static const char *const tlsf_aliases[] = {"tlsf_malloc", "2", NULL};

const struct fm_engine fm_engine_tlsf = {
    .name = "tlsf",
    .aliases = tlsf_aliases,
    .min_pool = (sizeof(struct tlsf) + FM_ALIGN - 1) / FM_ALIGN * FM_ALIGN + BLOCK_MIN + HEADER,
    .create = tlsf_create,
    .grow = tlsf_grow,
    .malloc = tlsf_malloc,
    .memalign = tlsf_memalign,
    .resize = tlsf_resize,
    .free = tlsf_free,
    .usable_size = tlsf_usable_size,
    .owns_block = tlsf_owns_block,
    .stats = tlsf_stats,
    .free_pages = tlsf_free_pages,
    .check = tlsf_check,
};
