/* engine_fm.c: segregated fit in the tradition of SER's "fast malloc" (f_malloc), the
 * allocator Kamailio and OpenSIPS have shipped for twenty years, without the slow
 * cases their trackers record.
 *
 * Free blocks are indexed by stride in 2,304 buckets:
 *  - below 32 KiB, one bucket per 16-byte stride (2,048 exact lists): any block in a
 *    request's own bucket fits it exactly, so the common small request is a pop;
 *  - from 32 KiB up, each power-of-two range [2^k, 2^(k+1)) is cut into 8 equal
 *    sub-buckets, up to 2^47.
 * A two-level bitmap (36 words and a summary word) says which buckets hold blocks,
 * so finding the first non-empty bucket at or above a request's is two bit scans,
 * where OpenSIPS probes list heads one by one and Kamailio walks its hash.
 *
 * Why exact lists up to 32 KiB: most of what C services allocate is small, and an
 * exact bucket both fits without a search and leaves nothing to split.  bench/tune.sh
 * measured the pool a trace needs over its peak live bytes with the exact range
 * ending at 1 KiB, 4 KiB and 32 KiB: 32 KiB needed 2-3% less on a server-like trace and
 * the same on a SIP-like one (bench/README).  The price is table size: 2,304 list
 * heads, 18 KiB, in front of the pool.  Past 32 KiB the bitmap would need more than
 * the 64 words one summary word covers.
 *
 * Above 32 KiB a sub-bucket spans 1/8 of its power of two, so blocks in a request's
 * own bucket may be too small.  malloc searches from the next bucket up (any block
 * there fits) and only when that finds nothing looks at the head of its own bucket,
 * so it never walks a list: O(1) like TLSF, at the cost of handing a large request a
 * block up to 1/8 bigger, whose tail is split off and kept when worth it (block.h).
 *
 * Freeing is O(1): lists are unsorted and doubly linked, blocks are pushed at the
 * head, and coalescing with both neighbours happens at free time through block.h's
 * boundary tags.  (Kamailio's f_malloc inserts sorted, which is what made freeing
 * 150,000 same-size chunks take twenty minutes, and joins only with the next block,
 * and only on request.)
 */
#include "block.h"
#include "diag.h"

/* bench/tune.sh builds other values to measure the choice. */
#ifndef FM_EXACT_LOG2
#define FM_EXACT_LOG2 15
#endif

enum {
    EXACT_LOG2 = FM_EXACT_LOG2,    /* exact buckets below 32 KiB */
    NEXACT = 1 << (EXACT_LOG2 - 4), /* 2,048 (indices 0 and 1 stay empty) */
    SUB_LOG2 = 3,                  /* 8 sub-buckets per power of two above */
    TOP_LOG2 = 47,                 /* strides are below 2^47 */
    NBUCKETS = NEXACT + ((TOP_LOG2 - EXACT_LOG2) << SUB_LOG2),
    NWORDS = (NBUCKETS + 63) / 64,
};

#define FM_MAGIC 0x464d464d414c4c31ULL /* "FMFMALL1" */
#define EXACT_LIMIT ((size_t)1 << EXACT_LOG2)

_Static_assert(FM_EXACT_LOG2 != 15 || NBUCKETS == 2304, "the layout the comment above describes");
_Static_assert(FM_EXACT_LOG2 >= 8 && FM_EXACT_LOG2 <= 15, "exact range: the bitmap has at most 64 words");
_Static_assert(NWORDS <= 64, "the summary bitmap is one 64-bit word");
_Static_assert(FM_MAX_REQUEST + FM_MAX_ALIGN + 64 < ((size_t)1 << TOP_LOG2),
               "every request a heap passes on maps to a bucket");

struct fm {
    struct pool pool; /* first: block.h's part */
    uint64_t summary;        /* bit w: words[w] != 0 */
    uint64_t words[NWORDS];  /* bit i: buckets[i] holds a block */
    block_t *buckets[NBUCKETS];
};

/* The bucket of a block of stride s. */
static inline size_t bucket_of(size_t s)
{
    if (s < EXACT_LIMIT)
        return s >> 4;
    int k = fls64(s);
    return NEXACT + ((size_t)(k - EXACT_LOG2) << SUB_LOG2) + ((s >> (k - SUB_LOG2)) & 7);
}

/* The smallest stride bucket i holds. */
static inline size_t bucket_floor(size_t i)
{
    if (i < NEXACT)
        return i << 4;
    size_t r = i - NEXACT;
    int k = (int)(r >> SUB_LOG2) + EXACT_LOG2;
    return (8 + (r & 7)) << (k - SUB_LOG2);
}

static inline void mark(struct fm *f, size_t i)
{
    f->words[i >> 6] |= 1ULL << (i & 63);
    f->summary |= 1ULL << (i >> 6);
}

static inline void unmark(struct fm *f, size_t i)
{
    f->words[i >> 6] &= ~(1ULL << (i & 63));
    if (f->words[i >> 6] == 0)
        f->summary &= ~(1ULL << (i >> 6));
}

/* The first non-empty bucket at or above i, or NBUCKETS. */
static inline size_t first_at_or_above(const struct fm *f, size_t i)
{
    if (i >= NBUCKETS)
        return NBUCKETS;
    size_t w = i >> 6;
    uint64_t m = f->words[w] & (~0ULL << (i & 63));
    if (m)
        return (w << 6) + (size_t)__builtin_ctzll(m);
    uint64_t s = w + 1 < 64 ? f->summary & (~0ULL << (w + 1)) : 0;
    if (s == 0)
        return NBUCKETS;
    w = (size_t)__builtin_ctzll(s);
    return (w << 6) + (size_t)__builtin_ctzll(f->words[w]);
}

/* ----------------------------------------------------------------- free lists */

static inline bool list_same(size_t a, size_t b)
{
    return bucket_of(a) == bucket_of(b);
}

static void list_insert(struct pool *p, block_t *b)
{
    struct fm *f = (struct fm *)p;
    size_t i = bucket_of(bsize(b));
    if (dlist_push(&f->buckets[i], b))
        mark(f, i);
}

static void list_unlink(struct pool *p, block_t *b)
{
    struct fm *f = (struct fm *)p;
    if (dlist_detach(b)) {
        size_t i = bucket_of(bsize(b));
        f->buckets[i] = b->next_free;
        if (b->next_free == NULL)
            unmark(f, i);
    }
}

static void list_clear(struct pool *p)
{
    struct fm *f = (struct fm *)p;
    f->summary = 0;
    memset(f->words, 0, sizeof f->words);
    memset(f->buckets, 0, sizeof f->buckets);
}

static inline block_t *pop(struct fm *f, size_t i)
{
    block_t *b = dlist_pop(&f->buckets[i]);
    if (f->buckets[i] == NULL)
        unmark(f, i);
    return b;
}

static block_t *list_take(struct pool *p, size_t s)
{
    struct fm *f = (struct fm *)p;
    size_t own = bucket_of(s);
    /* Every block in a bucket whose floor is at least s fits. */
    size_t from = bucket_floor(own) >= s ? own : own + 1;
    size_t i = first_at_or_above(f, from);
    if (fm_likely(i < NBUCKETS))
        return pop(f, i);
    block_t *b = from != own ? f->buckets[own] : NULL;
    return (b && bsize(b) >= s) ? pop(f, own) : NULL;
}

/* ------------------------------------------------------------ the engine calls */

static void *fm_create(void *mem, size_t bytes)
{
    struct fm *f = mem;
    if (bytes < sizeof *f)
        return NULL;
    memset(f, 0, sizeof *f);
    return pool_create(&f->pool, sizeof *f, FM_MAGIC, bytes) ? f : NULL;
}

static inline size_t last_bucket(const struct fm *f)
{
    size_t w = (size_t)fls64(f->summary);
    return (w << 6) + (size_t)fls64(f->words[w]);
}

static void fm_stats(void *eng, struct fm_engine_stats *st)
{
    struct fm *f = eng;
    pool_stats(&f->pool, st);
    if (f->summary)
        st->largest_free = list_largest(f->buckets[last_bucket(f)]);
}

static size_t fm_free_pages(void *eng, size_t page, void (*fn)(void *, void *, size_t), void *arg)
{
    struct fm *f = eng;
    return pool_free_pages(&f->pool, f->buckets, NBUCKETS, page, fn, arg);
}

/* The buckets holding the most free blocks, fullest first: where a heap's free memory
 * has gone when a large request fails with plenty free. */
enum { REPORT_TOP = 8 };

static size_t fm_report(void *eng, char *buf, size_t size)
{
    struct fm *f = eng;
    struct {
        size_t bucket;
        uint64_t count, bytes;
    } top[REPORT_TOP];
    size_t ntop = 0, nonempty = 0;
    for (size_t i = first_at_or_above(f, 0); i < NBUCKETS; i = first_at_or_above(f, i + 1)) {
        uint64_t count = 0, bytes = 0;
        for (const block_t *b = f->buckets[i]; b; b = b->next_free) {
            count++;
            bytes += bsize(b);
        }
        nonempty++;
        size_t at_ = ntop < REPORT_TOP ? ntop++ : REPORT_TOP;
        if (at_ == REPORT_TOP) {
            if (count <= top[REPORT_TOP - 1].count)
                continue;
            at_ = REPORT_TOP - 1;
        }
        while (at_ > 0 && top[at_ - 1].count < count) {
            top[at_] = top[at_ - 1];
            at_--;
        }
        top[at_].bucket = i;
        top[at_].count = count;
        top[at_].bytes = bytes;
    }
    size_t n = fm_format(buf, size, "libfastmem:   fm buckets    %5zu of %d size classes hold free blocks%s\n",
                         nonempty, NBUCKETS, ntop ? "; the fullest:" : "");
    for (size_t k = 0; k < ntop && n < size; k++) {
        char lo[32], hi[32], total[32];
        size_t i = top[k].bucket;
        fm_format_size(total, sizeof total, top[k].bytes);
        fm_format_size(lo, sizeof lo, bucket_floor(i) - OVERHEAD);
        if (i < NEXACT) {
            n += fm_format(buf + n, size - n, "libfastmem:     %s blocks: %llu free, %s\n", lo,
                           (unsigned long long)top[k].count, total);
        } else {
            fm_format_size(hi, sizeof hi, bucket_floor(i + 1) - OVERHEAD);
            n += fm_format(buf + n, size - n, "libfastmem:     %s to %s blocks: %llu free, %s\n",
                           lo, hi, (unsigned long long)top[k].count, total);
        }
    }
    return n;
}

static const char *fm_check(void *eng)
{
    struct fm *f = eng;
    uint64_t nfree = 0, listed = 0;
    const char *why = pool_check_blocks(&f->pool, FM_MAGIC, &nfree);
    if (why)
        return why;
    for (size_t w = 0; w < NWORDS; w++) {
        if (((f->summary >> w) & 1) != (f->words[w] != 0))
            return "the summary bitmap disagrees with the bucket bitmap";
        for (size_t j = 0; j < 64 && (w << 6) + j < NBUCKETS; j++) {
            size_t i = (w << 6) + j;
            if (((f->words[w] >> j) & 1) != (f->buckets[i] != NULL))
                return "a bucket's bitmap bit disagrees with its list";
            why = pool_check_list(&f->pool, f->buckets[i], i, bucket_of, nfree, &listed);
            if (why)
                return why;
        }
    }
    if (NBUCKETS % 64 && (f->words[NWORDS - 1] >> (NBUCKETS % 64)) != 0)
        return "the bucket bitmap marks a bucket past the last";
    return listed == nfree ? NULL : "a free block is missing from the buckets";
}

static const char *const fm_aliases[] = {"f_malloc", "fmalloc", "0", NULL};

const struct fm_engine fm_engine_fm = {
    .name = "fm",
    .aliases = fm_aliases,
    .min_pool = (sizeof(struct fm) + FM_ALIGN - 1) / FM_ALIGN * FM_ALIGN + BLOCK_MIN + HEADER,
    .create = fm_create,
    POOL_ENGINE_CALLS,
    .stats = fm_stats,
    .free_pages = fm_free_pages,
    .report = fm_report,
    .check = fm_check,
};
