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
 * Blocks, splitting and coalescing are block.h's, shared with the f_malloc engine;
 * this file is the TLSF index over the free blocks.
 *
 * Good fit.  malloc rounds the request up to the next second-level boundary before
 * searching, so the head of any list it finds fits without a walk; the cost is that a
 * block in the request's own list can be overlooked.  When the rounded search finds
 * nothing, the head of the request's own list is tried too (still O(1)): that is what
 * lets a pool hand out its one remaining block, however large, in full.
 */
#include "block.h"

enum {
    ALIGN_LOG2 = 4,
    SL_LOG2 = 5,
    SL_COUNT = 1 << SL_LOG2,
    FL_SHIFT = SL_LOG2 + ALIGN_LOG2, /* below 2^FL_SHIFT, lists are exact 16-byte classes */
    FL_MAX = 47,                     /* blocks are smaller than 2^FL_MAX (128 TiB) */
    FL_COUNT = FL_MAX - FL_SHIFT + 1,
};

#define SMALL_SIZE ((size_t)1 << FL_SHIFT)
#define TLSF_MAGIC 0x464d544c53463031ULL /* "FMTLSF01" */

_Static_assert(FL_COUNT <= 64, "the first-level bitmap is one 64-bit word");
_Static_assert(FM_MAX_REQUEST + FM_MAX_ALIGN + 64 < ((size_t)1 << FL_MAX),
               "every request a heap passes on maps to a first-level list");

struct tlsf {
    struct pool pool; /* first: block.h's part */
    uint64_t fl_bitmap;
    uint32_t sl_bitmap[FL_COUNT];
    block_t *heads[FL_COUNT][SL_COUNT];
};

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

static inline size_t list_index(size_t size)
{
    int fl, sl;
    mapping(size, &fl, &sl);
    return (size_t)fl * SL_COUNT + (size_t)sl;
}

/* ----------------------------------------------------------------- free lists */

static inline bool list_same(size_t a, size_t b)
{
    return list_index(a) == list_index(b);
}

static void list_insert(struct pool *p, block_t *b)
{
    struct tlsf *t = (struct tlsf *)p;
    int fl, sl;
    mapping(bsize(b), &fl, &sl);
    if (dlist_push(&t->heads[fl][sl], b)) {
        t->fl_bitmap |= 1ULL << fl;
        t->sl_bitmap[fl] |= 1U << sl;
    }
}

static inline void list_emptied(struct tlsf *t, int fl, int sl)
{
    t->sl_bitmap[fl] &= ~(1U << sl);
    if (t->sl_bitmap[fl] == 0)
        t->fl_bitmap &= ~(1ULL << fl);
}

static void list_unlink(struct pool *p, block_t *b)
{
    struct tlsf *t = (struct tlsf *)p;
    if (dlist_detach(b)) {
        int fl, sl;
        mapping(bsize(b), &fl, &sl);
        t->heads[fl][sl] = b->next_free;
        if (b->next_free == NULL)
            list_emptied(t, fl, sl);
    }
}

static void list_clear(struct pool *p)
{
    struct tlsf *t = (struct tlsf *)p;
    t->fl_bitmap = 0;
    memset(t->sl_bitmap, 0, sizeof t->sl_bitmap);
    memset(t->heads, 0, sizeof t->heads);
}

/* The head of list (fl, sl), taken off it. */
static inline block_t *pop(struct tlsf *t, int fl, int sl)
{
    block_t *b = dlist_pop(&t->heads[fl][sl]);
    if (t->heads[fl][sl] == NULL)
        list_emptied(t, fl, sl);
    return b;
}

/* A free block with a stride of at least size, off its list, or NULL; O(1). */
static block_t *list_take(struct pool *p, size_t size)
{
    struct tlsf *t = (struct tlsf *)p;
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
            return pop(t, fl, __builtin_ctz(sl_map));
    }
    mapping(size, &fl, &sl);
    block_t *b = t->heads[fl][sl];
    return (b && bsize(b) >= size) ? pop(t, fl, sl) : NULL;
}

/* ------------------------------------------------------------ the engine calls */

static void *tlsf_create(void *mem, size_t bytes)
{
    struct tlsf *t = mem;
    if (bytes < sizeof *t)
        return NULL;
    memset(t, 0, sizeof *t);
    return pool_create(&t->pool, sizeof *t, TLSF_MAGIC, bytes) ? t : NULL;
}

static void tlsf_stats(void *eng, struct fm_engine_stats *st)
{
    struct tlsf *t = eng;
    pool_stats(&t->pool, st);
    if (t->fl_bitmap) {
        int fl = fls64(t->fl_bitmap);
        st->largest_free = list_largest(t->heads[fl][31 - __builtin_clz(t->sl_bitmap[fl])]);
    }
}

static size_t tlsf_free_pages(void *eng, size_t page, void (*fn)(void *, void *, size_t), void *arg)
{
    struct tlsf *t = eng;
    /* a row at a time: walking heads as one flat array would index past a row */
    size_t total = 0;
    for (size_t fl = 0; fl < FL_COUNT; fl++)
        total += pool_free_pages(&t->pool, t->heads[fl], SL_COUNT, page, fn, arg);
    return total;
}

static const char *tlsf_check(void *eng)
{
    struct tlsf *t = eng;
    uint64_t nfree = 0, listed = 0;
    const char *why = pool_check_blocks(&t->pool, TLSF_MAGIC, &nfree);
    if (why)
        return why;
    for (int fl = 0; fl < FL_COUNT; fl++) {
        if (((t->fl_bitmap >> fl) & 1) != (t->sl_bitmap[fl] != 0))
            return "the first-level bitmap disagrees with the second level";
        for (int sl = 0; sl < SL_COUNT; sl++) {
            const block_t *h = t->heads[fl][sl];
            if (((t->sl_bitmap[fl] >> sl) & 1) != (h != NULL))
                return "a second-level bit disagrees with its list";
            why = pool_check_list(&t->pool, h, (size_t)fl * SL_COUNT + (size_t)sl, list_index,
                                  nfree, &listed);
            if (why)
                return why;
        }
    }
    return listed == nfree ? NULL : "a free block is missing from the free lists";
}

_Static_assert(FM_TLSF_MIN_POOL == (sizeof(struct tlsf) + FM_ALIGN - 1) / FM_ALIGN * FM_ALIGN + BLOCK_MIN + HEADER,
               "engine.h's FM_TLSF_MIN_POOL is the tables and one minimal block");

static const char *const tlsf_aliases[] = {"tlsf_malloc", "2", NULL};

const struct fm_engine fm_engine_tlsf = {
    .name = "tlsf",
    .aliases = tlsf_aliases,
    .min_pool = FM_TLSF_MIN_POOL,
    .create = tlsf_create,
    POOL_ENGINE_CALLS,
    .stats = tlsf_stats,
    .free_pages = tlsf_free_pages,
    .check = tlsf_check,
};
