/* check_engine.c: the engine conformance suite.
 *
 * Every test here runs once per registered engine (tcase_add_loop_test over
 * fm_engines[]), through the heap layer the shim uses (so growth under the cap is
 * covered) and, where the point is the engine alone, over a plain buffer.  After
 * every scenario the engine's invariant checker must find the heap sound.
 */
#include "testutil.h"

#include "engine.h"
#include "heap.h"
#include "os.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* A heap as the shim makes one: a reserved range of cap bytes, 256 KiB committed,
 * the engine at its start. */
struct fixture {
    const struct fm_engine *e;
    struct fm_heap h;
};

/* Engine i manages a pool (all but sys, which hands every call to glibc). */
static bool pool_engine(int i)
{
    return !fm_engines[i]->system;
}

/* Engine i's frees reach its pool at once: what the placement tests look at (the
 * debugging engine holds freed blocks in a quarantine first). */
static bool frees_at_once(int i)
{
    return pool_engine(i) && !fm_engine_debugging(fm_engines[i]);
}

/* A test about something engine i does not have ends here (sys has no pool; the
 * debugging engine's quarantine holds freed blocks back from the pool). */
#define APPLIES_ONLY_IF(cond) \
    do {                      \
        if (!(cond))          \
            return;           \
    } while (0)

static void heap_open(struct fixture *f, int engine, size_t cap)
{
    f->e = fm_engines[engine];
    if (f->e->system) {
        ck_assert_int_eq(fm_heap_init(&f->h, f->e, NULL, cap, 0, 0, NULL, false), 0);
        return;
    }
    int err = 0;
    void *base = fm_os_reserve(cap, &err);
    ck_assert_msg(base != NULL, "reserve %zu: errno %d", cap, err);
    size_t first = cap < 256 * 1024 ? cap : 256 * 1024;
    ck_assert_int_eq(fm_os_commit(base, first), 0);
    ck_assert_int_eq(fm_heap_init(&f->h, f->e, base, cap, 0, first, fm_os_commit, false), 0);
    /* Free runs of 1 MiB go back at once: the tests below see each release as it
     * happens.  (The shim lets them wait in batches: release_waits_for_a_batch.) */
    fm_heap_set_release(&f->h, 1024 * 1024, 0);
}

static void heap_close(struct fixture *f)
{
    if (f->h.sys) {
        if (f->h.sys_slots)
            fm_os_release(f->h.sys_slots, f->h.sys_bytes);
        return;
    }
    fm_os_release(f->h.base, f->h.cap);
}

/* With every block freed: a pool is one free block again (the debugging engine's
 * quarantine emptied first, by a trim); sys holds nothing. */
static void assert_whole(struct fixture *f)
{
    if (fm_engine_debugging(f->e))
        fm_heap_trim(&f->h);
    struct fastmem_stats st;
    fm_heap_stats(&f->h, &st);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.live_blocks, 0);
    if (!f->e->system)
        ck_assert_uint_eq(st.free_fragments, 1);
}

#define assert_sound(f)                                                              \
    do {                                                                             \
        const char *why_ = fm_heap_check(&(f)->h);                                   \
        ck_assert_msg(why_ == NULL, "%s: heap damaged: %s", (f)->e->name, why_);     \
    } while (0)

static struct fastmem_stats stats_of(struct fixture *f)
{
    struct fastmem_stats st;
    fm_heap_stats(&f->h, &st);
    return st;
}

static void must_free(struct fixture *f, void *p)
{
    ck_assert_int_eq(fm_heap_free(&f->h, p, "test"), FM_FREED);
}

/* ---------------------------------------------------------------------- sizes */

/* Every size from 0 to 4 KiB: aligned, at least as large as asked, all of it
 * writable without touching any other block. */
START_TEST(small_sizes)
{
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    enum { N = 4097 };
    static void *p[N];
    for (size_t n = 0; n < N; n++) {
        p[n] = fm_heap_malloc(&f.h, n);
        TU_REQUIRE(p[n] != NULL && (uintptr_t)p[n] % 16 == 0, "malloc(%zu) -> %p", n, p[n]);
        size_t u = fm_heap_usable_size(&f.h, p[n]);
        TU_REQUIRE(u >= n, "malloc(%zu): usable %zu", n, u);
        tu_fill(p[n], u, (uint32_t)n);
    }
    for (size_t n = 0; n < N; n++) {
        size_t u = fm_heap_usable_size(&f.h, p[n]);
        TU_REQUIRE(tu_verify(p[n], u, (uint32_t)n) == u, "block of %zu damaged", n);
    }
    assert_sound(&f);
    for (size_t n = 0; n < N; n += 2)
        TU_REQUIRE(fm_heap_free(&f.h, p[n], "test") == FM_FREED, "free");
    assert_sound(&f);
    for (size_t n = 1; n < N; n += 2)
        TU_REQUIRE(fm_heap_free(&f.h, p[n], "test") == FM_FREED, "free");
    assert_sound(&f);
    ck_assert_uint_eq(stats_of(&f).in_use, 0);
    ck_assert_uint_eq(stats_of(&f).live_blocks, 0);
    heap_close(&f);
}
END_TEST

/* malloc(0) is a real block, distinct from every other. */
START_TEST(zero_size_unique)
{
    struct fixture f;
    heap_open(&f, _i, 16 * MiB);
    void *a = fm_heap_malloc(&f.h, 0), *b = fm_heap_malloc(&f.h, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    must_free(&f, a);
    must_free(&f, b);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* Powers of two and their neighbours up to 64 MiB: ends written and read back. */
START_TEST(large_sizes)
{
    struct fixture f;
    heap_open(&f, _i, 512 * MiB);
    for (int k = 12; k <= 26; k++) {
        for (int d = -1; d <= 1; d++) {
            size_t n = ((size_t)1 << k) + (size_t)d;
            unsigned char *p = fm_heap_malloc(&f.h, n);
            ck_assert_ptr_nonnull(p);
            ck_assert_uint_eq((uintptr_t)p % 16, 0);
            ck_assert_uint_ge(fm_heap_usable_size(&f.h, p), n);
            tu_fill(p, 2048, (uint32_t)k);
            p[n - 1] = 0x5a;
            ck_assert_uint_eq(tu_verify(p, 2048, (uint32_t)k), 2048);
            ck_assert_uint_eq(p[n - 1], 0x5a);
            must_free(&f, p);
        }
    }
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* Sizes no heap can hold are refused with ENOMEM, never wrapped into a small block. */
START_TEST(impossible_sizes)
{
    struct fixture f;
    heap_open(&f, _i, 16 * MiB);
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 16, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                          FM_MAX_REQUEST + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ck_assert_ptr_null(fm_heap_malloc(&f.h, bad[i]));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(fm_heap_memalign(&f.h, 4096, bad[i]));
        ck_assert_int_eq(errno, ENOMEM);
    }
    ck_assert_uint_eq(stats_of(&f).failed_invalid, 2 * (sizeof bad / sizeof bad[0]));
    /* Bigger than the cap, but not impossible: refused at the cap. */
    errno = 0;
    ck_assert_ptr_null(fm_heap_malloc(&f.h, 16 * MiB + 1));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_uint_eq(stats_of(&f).failed_cap, 1);
    /* The engine alone refuses the largest request it may be passed. */
    if (pool_engine(_i)) {
        ck_assert_ptr_null(f.e->malloc(f.h.eng, FM_MAX_REQUEST));
        ck_assert_ptr_null(f.e->memalign(f.h.eng, FM_MAX_ALIGN, FM_MAX_REQUEST));
    }
    ck_assert_uint_eq(stats_of(&f).live_blocks, 0);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------------ alignment */

START_TEST(alignment)
{
    struct fixture f;
    heap_open(&f, _i, 256 * MiB);
    static const size_t sizes[] = {0, 1, 17, 4000, 70000};
    void *keep[64];
    size_t nkeep = 0;
    for (size_t align = 32; align <= 4 * MiB; align *= 2) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            /* A small block first, so the aligned one rarely starts where it wants. */
            void *pad = fm_heap_malloc(&f.h, 40 + s * 16);
            ck_assert_ptr_nonnull(pad);
            void *p = fm_heap_memalign(&f.h, align, sizes[s]);
            ck_assert_ptr_nonnull(p);
            ck_assert_msg((uintptr_t)p % align == 0, "%p not aligned to %zu", p, align);
            size_t u = fm_heap_usable_size(&f.h, p);
            ck_assert_uint_ge(u, sizes[s]);
            tu_fill(p, u, (uint32_t)align);
            ck_assert_uint_eq(tu_verify(p, u, (uint32_t)align), u);
            must_free(&f, pad);
            if (nkeep < 64 && s == 1)
                keep[nkeep++] = p;
            else
                must_free(&f, p);
            assert_sound(&f);
        }
    }
    for (size_t i = 0; i < nkeep; i++)
        must_free(&f, keep[i]);
    assert_sound(&f);
    ck_assert_uint_eq(stats_of(&f).live_blocks, 0);
    heap_close(&f);
}
END_TEST

/* -------------------------------------------------------------------- realloc */

START_TEST(realloc_edges)
{
    struct fixture f;
    heap_open(&f, _i, 32 * MiB);
    /* Grow in place into a free neighbour. */
    char *a = fm_heap_malloc(&f.h, 100);
    char *b = fm_heap_malloc(&f.h, 5000);
    char *guard = fm_heap_malloc(&f.h, 100);
    tu_fill(a, 100, 1);
    must_free(&f, b);
    char *a2 = fm_heap_realloc(&f.h, a, 3000, "test");
    if (frees_at_once(_i)) /* else b is in quarantine, or glibc's */
        ck_assert_ptr_eq(a2, a);
    ck_assert_uint_eq(tu_verify(a2, 100, 1), 100);
    assert_sound(&f);
    /* Shrink in place. */
    tu_fill(a2, 3000, 2);
    char *a3 = fm_heap_realloc(&f.h, a2, 200, "test");
    if (pool_engine(_i))
        ck_assert_ptr_eq(a3, a2);
    ck_assert_uint_eq(tu_verify(a3, 200, 2), 200);
    assert_sound(&f);
    /* Grow by moving: the old contents follow, the old block is freed. */
    char *c = fm_heap_malloc(&f.h, 64);
    char *c2 = fm_heap_realloc(&f.h, a3, 100000, "test");
    ck_assert_ptr_nonnull(c2);
    ck_assert_uint_eq(tu_verify(c2, 200, 2), 200);
    ck_assert_uint_eq(stats_of(&f).live_blocks, 3);
    assert_sound(&f);
    /* Impossible and too-large requests fail and keep the block. */
    tu_fill(c2, 100000, 3);
    errno = 0;
    ck_assert_ptr_null(fm_heap_realloc(&f.h, c2, SIZE_MAX - 10, "test"));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(fm_heap_realloc(&f.h, c2, 64 * MiB, "test"));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_uint_eq(tu_verify(c2, 100000, 3), 100000);
    ck_assert_uint_ge(fm_heap_usable_size(&f.h, c2), 100000);
    assert_sound(&f);
    must_free(&f, c2);
    must_free(&f, c);
    must_free(&f, guard);
    assert_sound(&f);
    ck_assert_uint_eq(stats_of(&f).in_use, 0);
    heap_close(&f);
}
END_TEST

/* Realloc at the cap: when no bigger block can be had, the old one stays intact. */
START_TEST(realloc_at_cap)
{
    struct fixture f;
    heap_open(&f, _i, 4 * MiB);
    void *filler[64];
    int n = 0;
    char *p = fm_heap_malloc(&f.h, MiB);
    ck_assert_ptr_nonnull(p);
    tu_fill(p, MiB, 9);
    while (n < 64 && (filler[n] = fm_heap_malloc(&f.h, 256 * 1024)) != NULL)
        n++;
    errno = 0;
    ck_assert_ptr_null(fm_heap_realloc(&f.h, p, 3 * MiB, "test"));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_uint_eq(tu_verify(p, MiB, 9), MiB);
    for (int i = 0; i < n; i++)
        must_free(&f, filler[i]);
    char *q = fm_heap_realloc(&f.h, p, 3 * MiB, "test");
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(tu_verify(q, MiB, 9), MiB);
    must_free(&f, q);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------------------- cap */

/* Fill to exhaustion with one size, free everything, fill again: the pool is whole
 * again, the same number of blocks fits, and the largest free block is what the
 * statistics say it is. */
START_TEST(fill_free_refill)
{
    static const size_t sizes[] = {0, 16, 100, 4096, 100000, 3 * MiB};
    const size_t cap = 16 * MiB;
    struct fixture f;
    heap_open(&f, _i, cap);
    enum { MAXB = 1 << 20 };
    void **blk = malloc(MAXB * sizeof *blk);
    ck_assert_ptr_nonnull(blk);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t counts[2];
        for (int round = 0; round < 2; round++) {
            size_t n = 0, usable = 0;
            for (;;) {
                errno = 0;
                void *p = fm_heap_malloc(&f.h, sizes[s]);
                if (p == NULL)
                    break;
                TU_REQUIRE(n < MAXB, "too many blocks");
                usable += fm_heap_usable_size(&f.h, p);
                blk[n++] = p;
            }
            ck_assert_int_eq(errno, ENOMEM);
            ck_assert_uint_le(usable, cap);
            ck_assert_uint_le(stats_of(&f).pool_used, cap);
            if (pool_engine(_i)) /* sys: committed is what glibc holds */
                ck_assert_uint_eq(stats_of(&f).committed, cap);
            assert_sound(&f);
            counts[round] = n;
            uint64_t seed = 42 + s;
            for (size_t i = n; i > 1; i--) { /* free in random order */
                size_t j = (size_t)(tu_rand(&seed) % i);
                void *t = blk[i - 1];
                blk[i - 1] = blk[j];
                blk[j] = t;
            }
            for (size_t i = 0; i < n; i++)
                TU_REQUIRE(fm_heap_free(&f.h, blk[i], "test") == FM_FREED, "free");
            assert_sound(&f);
            assert_whole(&f);
        }
        /* The same again.  qm's 48-byte strides do not divide the pages the pool grew
         * by in the first round, and a block at each step kept a 16-byte tail: a
         * handful of blocks more fit in a pool that was whole from the start. */
        bool exact = frees_at_once(_i);
        ck_assert_msg(exact ? counts[0] == counts[1] : counts[1] >= counts[0] && counts[1] - counts[0] <= counts[0] / 1000,
                      "%s: size %zu: %zu blocks, then %zu", f.e->name, sizes[s], counts[0], counts[1]);
        ck_assert_uint_gt(counts[0], 0);
    }
    /* After everything is freed, the largest free block can be had in one piece, and
     * it is nearly the whole cap. */
    struct fastmem_stats st = stats_of(&f);
    ck_assert_uint_ge(st.largest_free, cap - cap / 64);
    void *big = fm_heap_malloc(&f.h, st.largest_free);
    ck_assert_msg(big != NULL, "%s: largest_free %llu not allocatable", f.e->name,
                  (unsigned long long)st.largest_free);
    must_free(&f, big);
    assert_sound(&f);
    free(blk);
    heap_close(&f);
}
END_TEST

/* The pool grows by commits as it is used and never past the cap. */
START_TEST(growth_under_cap)
{
    const size_t cap = 64 * MiB;
    struct fixture f;
    heap_open(&f, _i, cap);
    if (pool_engine(_i))
        ck_assert_uint_eq(stats_of(&f).committed, 256 * 1024);
    void *p[100];
    size_t last = 0;
    /* 64 MiB holds at least 125 such blocks, so none of these 100 may fail. */
    for (int i = 0; i < 100; i++) {
        p[i] = fm_heap_malloc(&f.h, 500 * 1024);
        ck_assert_ptr_nonnull(p[i]);
        size_t c = stats_of(&f).pool_used;
        ck_assert_uint_ge(c, last);
        ck_assert_uint_le(c, cap);
        last = c;
        memset(p[i], 0xab, 500 * 1024);
    }
    ck_assert_uint_lt(stats_of(&f).pool_used, cap);
    if (pool_engine(_i))
        ck_assert_uint_lt(stats_of(&f).committed, cap);
    assert_sound(&f);
    for (int i = 0; i < 100; i++)
        must_free(&f, p[i]);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* Pools past 4 GiB (the reference TLSF stops there): a 5 GiB block, then two of
 * 3 GiB in the same space.  Only a few pages are touched. */
START_TEST(pool_over_4gib)
{
    struct fixture f;
    heap_open(&f, _i, 8 * GiB);
    size_t n = 5 * GiB;
    unsigned char *p = fm_heap_malloc(&f.h, n);
    ck_assert_ptr_nonnull(p);
    p[0] = 1;
    p[n - 1] = 2;
    ck_assert_uint_ge(fm_heap_usable_size(&f.h, p), n);
    assert_sound(&f);
    must_free(&f, p);
    unsigned char *a = fm_heap_malloc(&f.h, 3 * GiB), *b = fm_heap_malloc(&f.h, 3 * GiB);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    a[3 * GiB - 1] = 3;
    b[3 * GiB - 1] = 4;
    ck_assert_ptr_null(fm_heap_malloc(&f.h, 3 * GiB));
    assert_sound(&f);
    must_free(&f, a);
    must_free(&f, b);
    ck_assert_uint_ge(stats_of(&f).largest_free, 8 * GiB - 8 * GiB / 64);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ---------------------------------------------------------- random operations */

/* A long random sequence of every call, checked against a model that remembers each
 * block's size and pattern: contents survive, realloc keeps the prefix, calloc gives
 * zeros, and the invariants hold throughout. */
START_TEST(random_against_model)
{
    struct fixture f;
    heap_open(&f, _i, 128 * MiB);
    enum { SLOTS = 2048, OPS = 200000 };
    static struct {
        unsigned char *p;
        size_t n;
        uint32_t seed;
    } m[SLOTS];
    memset(m, 0, sizeof m);
    uint64_t rng = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
    uint64_t live = 0;
    for (int op = 0; op < OPS; op++) {
        size_t i = (size_t)(tu_rand(&rng) % SLOTS);
        uint64_t r = tu_rand(&rng);
        size_t n = (r >> 8) % 100 < 90 ? (r >> 16) % 512
                 : (r >> 8) % 100 < 99 ? (r >> 16) % 65536
                                       : (r >> 16) % (2 * MiB);
        uint32_t seed = (uint32_t)(r >> 40);
        if (m[i].p) {
            TU_REQUIRE(tu_verify(m[i].p, m[i].n, m[i].seed) == m[i].n, "op %d: block %zu damaged", op, i);
            if (r % 3 == 0) {
                unsigned char *q = fm_heap_realloc(&f.h, m[i].p, n ? n : 1, "test");
                TU_REQUIRE(q != NULL, "op %d: realloc to %zu failed", op, n);
                size_t keep = m[i].n < n ? m[i].n : n;
                TU_REQUIRE(tu_verify(q, keep, m[i].seed) == keep, "op %d: realloc lost contents", op);
                tu_fill(q, n, seed);
                m[i].p = q;
                m[i].n = n;
                m[i].seed = seed;
            } else {
                TU_REQUIRE(fm_heap_free(&f.h, m[i].p, "test") == FM_FREED, "op %d: free", op);
                m[i].p = NULL;
                live--;
            }
        } else {
            unsigned kind = (unsigned)(r % 4);
            if (kind == 0) {
                m[i].p = fm_heap_calloc(&f.h, n);
                TU_REQUIRE(m[i].p != NULL, "op %d: calloc(%zu) failed", op, n);
                for (size_t k = 0; k < n; k++)
                    TU_REQUIRE(m[i].p[k] == 0, "op %d: calloc byte %zu not zero", op, k);
            } else if (kind == 1) {
                size_t align = (size_t)32 << (r % 8);
                m[i].p = fm_heap_memalign(&f.h, align, n);
                TU_REQUIRE(m[i].p != NULL && (uintptr_t)m[i].p % align == 0, "op %d: memalign(%zu, %zu)", op, align, n);
            } else {
                m[i].p = fm_heap_malloc(&f.h, n);
                TU_REQUIRE(m[i].p != NULL, "op %d: malloc(%zu) failed", op, n);
            }
            TU_REQUIRE((uintptr_t)m[i].p % 16 == 0, "op %d: misaligned", op);
            TU_REQUIRE(fm_heap_usable_size(&f.h, m[i].p) >= n, "op %d: usable size short", op);
            tu_fill(m[i].p, n, seed);
            m[i].n = n;
            m[i].seed = seed;
            live++;
        }
        if (op % 10000 == 0) {
            assert_sound(&f);
            ck_assert_uint_eq(stats_of(&f).live_blocks, live);
        }
    }
    assert_sound(&f);
    for (size_t i = 0; i < SLOTS; i++)
        if (m[i].p) {
            ck_assert_uint_eq(tu_verify(m[i].p, m[i].n, m[i].seed), m[i].n);
            must_free(&f, m[i].p);
        }
    assert_sound(&f);
    assert_whole(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------ bad pointers */

/* The engine alone, over a plain buffer: it needs no OS, and it refuses what is not
 * a live block without changing anything. */
static void ignore_pages(void *arg, void *start, size_t len)
{
    (void)arg;
    (void)start;
    (void)len;
}

START_TEST(engine_over_buffer_refuses_bad_pointers)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[1 << 20];
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    char *a = e->malloc(eng, 100), *b = e->malloc(eng, 100), *c = e->malloc(eng, 100);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(e->check(eng));
    char local[64];
    ck_assert_int_eq(e->free(eng, b), (ptrdiff_t)e->usable_size(eng, a));
    ck_assert_int_eq(e->free(eng, b), FM_FREE_DOUBLE);
    ck_assert_int_eq(e->free(eng, a + 16), FM_FREE_BAD_POINTER);
    ck_assert_int_eq(e->free(eng, a + 1), FM_FREE_BAD_POINTER);
    ck_assert_int_eq(e->free(eng, local), FM_FREE_BAD_POINTER);
    ck_assert_int_eq(e->free(eng, buf), FM_FREE_BAD_POINTER);
    ck_assert(!e->owns_block(eng, b));
    ck_assert(!e->owns_block(eng, a + 16));
    ck_assert(e->owns_block(eng, a));
    ck_assert_ptr_null(e->check(eng));
    ck_assert_int_gt(e->free(eng, a), 0);
    ck_assert_int_gt(e->free(eng, c), 0);
    ck_assert_ptr_null(e->check(eng));
    /* Fill the buffer, then free all: one free block again. */
    void *blocks[1 << 13];
    size_t n = 0;
    while (n < (1 << 13) && (blocks[n] = e->malloc(eng, 200)) != NULL)
        n++;
    ck_assert_uint_gt(n, (sizeof buf / 256) * 9 / 10);
    ck_assert_uint_lt(n, 1 << 13);
    for (size_t i = 0; i < n; i++)
        TU_REQUIRE(e->free(eng, blocks[i]) > 0, "free of block %zu", i);
    if (fm_engine_debugging(e)) /* its quarantine empties on a trim */
        e->free_pages(eng, 4096, ignore_pages, NULL);
    struct fm_engine_stats st;
    e->stats(eng, &st);
    ck_assert_uint_eq(st.free_blocks, 1);
    ck_assert_uint_eq(st.used_blocks, 0);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

/* A free is checked against the block's own size word alone (pool.h): a header forged
 * inside a live block's data, one that agrees with the boundary tags around it, and a
 * live block's real size word copied elsewhere are refused; the engine check notices a
 * live header whose check bits were damaged. */
START_TEST(engine_refuses_forged_headers)
{
    APPLIES_ONLY_IF(fm_engines[_i]->pool_layout); /* block.h's headers */
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[1 << 20];
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    char *a = e->malloc(eng, 1000), *b = e->malloc(eng, 100);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    memset(a, 0, 1000);
    memset(b, 0x5a, 100);
    /* a used 64-byte block after a used block, and a used block after it: the
     * boundary tags agree, as they would for a real one */
    size_t *fake = (size_t *)(a + 256);
    fake[1] = 64;
    fake[8 + 1] = 32;
    ck_assert_int_eq(e->free(eng, a + 256 + 16), FM_FREE_BAD_POINTER);
    /* b's own size word, at another place */
    fake[1] = ((size_t *)b)[-1];
    ck_assert_int_eq(e->free(eng, a + 256 + 16), FM_FREE_BAD_POINTER);
    ck_assert(!e->owns_block(eng, a + 256 + 16));
    ck_assert_ptr_null(e->check(eng));
    /* b's size word with one check bit flipped: no longer b's */
    ((size_t *)b)[-1] ^= (size_t)1 << 60;
    ck_assert(!e->owns_block(eng, b));
    ck_assert_str_eq(e->check(eng), "a block's size word has the wrong check bits");
    ((size_t *)b)[-1] ^= (size_t)1 << 60;
    ck_assert_ptr_null(e->check(eng));
    ck_assert_int_gt(e->free(eng, b), 0);
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(a[i], 0);
    ck_assert_int_gt(e->free(eng, a), 0);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

/* Freeing joins a block with free neighbours on both sides at once. */
START_TEST(engine_coalesces_both_sides)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[1 << 20];
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    void *a = e->malloc(eng, 1000), *b = e->malloc(eng, 1000), *c = e->malloc(eng, 1000);
    void *guard = e->malloc(eng, 1000);
    ck_assert(a && b && c && guard);
    struct fm_engine_stats st;
    e->stats(eng, &st);
    ck_assert_uint_eq(st.free_blocks, 1); /* the rest of the buffer */
    ck_assert_int_gt(e->free(eng, a), 0);
    ck_assert_int_gt(e->free(eng, c), 0);
    e->stats(eng, &st);
    ck_assert_uint_eq(st.free_blocks, 3);
    ck_assert_int_gt(e->free(eng, b), 0); /* joins a before it and c after it */
    e->stats(eng, &st);
    ck_assert_uint_eq(st.free_blocks, 2);
    ck_assert_uint_ge(st.largest_free, 3000);
    ck_assert_ptr_null(e->check(eng));
    /* The joined block serves a request as large as the three. */
    void *big = e->malloc(eng, 3000);
    ck_assert_ptr_eq(big, a);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

/* A free block is split only when the remainder is worth a block of its own (at least
 * 32 bytes and 1/8 of the request); otherwise the whole block is handed out. */
START_TEST(engine_split_rule)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[1 << 20];
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    char *hole = e->malloc(eng, 1000);
    void *guard = e->malloc(eng, 16);
    ck_assert(hole && guard);
    ck_assert_uint_eq(e->usable_size(eng, hole), 1000);
    ck_assert_int_gt(e->free(eng, hole), 0);
    /* 960 bytes need a 976-byte stride; the 32 left over are under 1/8 of it. */
    char *p = e->malloc(eng, 960);
    ck_assert_ptr_eq(p, hole);
    ck_assert_uint_eq(e->usable_size(eng, p), 1000);
    ck_assert_int_gt(e->free(eng, p), 0);
    /* 500 bytes need 512; the 496 left over are kept as a free block. */
    p = e->malloc(eng, 500);
    ck_assert_ptr_eq(p, hole);
    ck_assert_uint_eq(e->usable_size(eng, p), 504);
    char *q = e->malloc(eng, 480);
    ck_assert_ptr_eq(q, hole + 512);
    ck_assert_uint_eq(e->usable_size(eng, q), 488);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

/* Past 1/8, a remainder of 64 KiB or more is split off too: a request of 80 MiB given
 * a free block of 85 MiB takes 80 MiB of it, not all 85 (which under a cap is 5 MiB
 * the program cannot have), and the rest serves the next request. */
START_TEST(engine_splits_large_tails)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[100 << 20]; /* only the touched pages are mapped */
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    const size_t MB = (size_t)1 << 20;
    char *hole = e->malloc(eng, 85 * MB);
    void *guard = e->malloc(eng, 16);
    ck_assert(hole && guard);
    ck_assert_int_gt(e->free(eng, hole), 0);
    char *p = e->malloc(eng, 80 * MB);
    ck_assert_ptr_eq(p, hole);
    ck_assert_uint_ge(e->usable_size(eng, p), 80 * MB);
    ck_assert_uint_lt(e->usable_size(eng, p), 80 * MB + 64 * 1024);
    char *q = e->malloc(eng, 4 * MB); /* from the tail */
    ck_assert(q > p && q < hole + 85 * MB);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

static void note_release(void *arg, void *start, size_t len)
{
    (void)start;
    *(size_t *)arg += len;
}

/* malloc_batch hands out what as many successive mallocs would, at the same places:
 * holes first, a hole of several strides cut into several blocks, the split rule on
 * the last; a pool with fewer blocks left gives what it has; a block whose pages went
 * back to the kernel is cut up with its waiting grains accounted for. */
START_TEST(engine_malloc_batch_as_successive_mallocs)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    const struct fm_engine *e = fm_engines[_i];
    ck_assert_ptr_nonnull(e->malloc_batch);
    static alignas(16) unsigned char buf[2][1 << 20];
    void *eng[2];
    char *base[2];
    for (int k = 0; k < 2; k++) {
        eng[k] = e->create(buf[k], sizeof buf[k]);
        ck_assert_ptr_nonnull(eng[k]);
        base[k] = (char *)buf[k];
    }
    /* the same holes in both: single blocks, a run of three, a run of 3.5 strides */
    enum { N = 60 };
    for (int k = 0; k < 2; k++) {
        void *p[N];
        for (int i = 0; i < N; i++)
            p[i] = e->malloc(eng[k], 100);
        for (int i = 0; i < N; i += 7)
            e->free(eng[k], p[i]);
        e->free(eng[k], p[30]);
        e->free(eng[k], p[31]);
        e->free(eng[k], p[32]);
    }
    static const size_t sizes[] = {100, 100, 40, 100, 1000, 300};
    for (size_t r = 0; r < sizeof sizes / sizeof sizes[0]; r++) {
        void *out[8];
        size_t got = e->malloc_batch(eng[0], sizes[r], out, 8);
        ck_assert_uint_eq(got, 8);
        for (size_t i = 0; i < got; i++) {
            char *q = e->malloc(eng[1], sizes[r]);
            TU_REQUIRE((char *)out[i] - base[0] == q - base[1], "round %zu block %zu: offset %td, not %td",
                       r, i, (char *)out[i] - base[0], q - base[1]);
            ck_assert_uint_eq(e->usable_size(eng[0], out[i]), e->usable_size(eng[1], q));
            memset(out[i], 0xa5, sizes[r]);
        }
        ck_assert_ptr_null(e->check(eng[0]));
    }
    /* the pool runs dry mid-batch: what there is, then nothing */
    for (;;) {
        void *out[8];
        size_t got = e->malloc_batch(eng[0], 4000, out, 8);
        ck_assert_uint_le(got, 8);
        ck_assert_ptr_null(e->check(eng[0]));
        if (got < 8) {
            ck_assert_uint_eq(e->malloc_batch(eng[0], 4000, out, 8), 0);
            break;
        }
    }
    /* released space: a large free block whose grains went back is cut up */
    void *eng2 = e->create(buf[0], sizeof buf[0]);
    size_t released = 0;
    const struct fm_release_ops note = {note_release, NULL, NULL, &released};
    e->set_release(eng2, 128 * 1024, 0, 4096, &note);
    void *big = e->malloc(eng2, 600 * 1024);
    void *guard = e->malloc(eng2, 16);
    ck_assert(big && guard);
    e->free(eng2, big);
    ck_assert_uint_gt(released, 0);
    for (int r = 0; r < 200; r++) {
        void *out[8];
        ck_assert_uint_eq(e->malloc_batch(eng2, 600, out, 8), 8);
        for (int i = 0; i < 8; i++)
            memset(out[i], 0x5a, 600);
        ck_assert_ptr_null(e->check(eng2));
    }
}
END_TEST

/* Many same-size blocks freed in order and in reverse, the case that stalled
 * Kamailio's sorted free lists: every one is freed and the pool is whole again. */
START_TEST(engine_many_same_size_frees)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    const struct fm_engine *e = fm_engines[_i];
    enum { N = 150000 };
    size_t bytes = (size_t)N * 64 + (1 << 20);
    void *mem = aligned_alloc(16, bytes);
    void **p = malloc(N * sizeof *p);
    ck_assert(mem && p);
    void *eng = e->create(mem, bytes);
    ck_assert_ptr_nonnull(eng);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            p[i] = e->malloc(eng, 48);
            TU_REQUIRE(p[i] != NULL, "block %zu", i);
            memset(p[i], (int)i, 48);
        }
        for (size_t k = 0; k < N; k++) {
            size_t i = round == 0 ? k : N - 1 - k;
            TU_REQUIRE(((unsigned char *)p[i])[47] == (unsigned char)i, "block %zu damaged", i);
            TU_REQUIRE(e->free(eng, p[i]) == 56, "free of block %zu", i);
        }
        struct fm_engine_stats st;
        e->stats(eng, &st);
        ck_assert_uint_eq(st.free_blocks, 1);
        ck_assert_uint_eq(st.used_blocks, 0);
        ck_assert_ptr_null(e->check(eng));
    }
    free(p);
    free(mem);
}
END_TEST

/* fm's report names the buckets that hold the most free blocks. */
START_TEST(fm_report_names_fullest_buckets)
{
    const struct fm_engine *e = fm_engine_find("fm");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(e->report);
    static alignas(16) unsigned char buf[1 << 20];
    void *eng = e->create(buf, sizeof buf);
    ck_assert_ptr_nonnull(eng);
    static void *p[2000];
    for (int i = 0; i < 2000; i++)
        ck_assert_ptr_nonnull(p[i] = e->malloc(eng, 40));
    void *big[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(big[i] = e->malloc(eng, 40000));
        ck_assert_ptr_nonnull(e->malloc(eng, 16)); /* keeps the big ones apart */
    }
    for (int i = 0; i < 2000; i += 2)
        ck_assert_int_gt(e->free(eng, p[i]), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_gt(e->free(eng, big[i]), 0);
    char out[4096];
    size_t n = e->report(eng, out, sizeof out);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_msg(strstr(out, "libfastmem:   fm buckets        3 of 2304 size classes hold free blocks") != NULL, "%s", out);
    /* The fullest first: 1,000 blocks of 40 bytes (48 each; sizes print truncated). */
    const char *first = strstr(out, "\nlibfastmem:     40 B blocks: 1000 free, 46.8 KiB\n");
    const char *second = strstr(out, "\nlibfastmem:     35.9 KiB to 39.9 KiB blocks: 3 free");
    ck_assert_msg(first != NULL && second != NULL && first < second, "%s", out);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* Gives the process a second thread, one that only sleeps, so that the heap takes its
 * lock from now on (and makes its releases after it): the paths of a threaded program. */
static void start_sleeper(void)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sleeper, NULL), 0);
    ck_assert_int_eq(pthread_detach(t), 0);
}

/* The private heap faults in the pages a block up to 64 KiB covers, and
 * FM_POPULATE_AHEAD (512 KiB) past it, in one call, so a run of allocations does not
 * take a page fault every few calls, nor a later split a fault on a page inside a
 * block the program wrote only in part (heap.c, "Populate-ahead"); a larger block's
 * pages stay untouched until the program touches them. */
static void populate_ahead(int engine, bool threaded)
{
    if (threaded) { /* the heap's lock is taken then, and the populate made after it */
        start_sleeper();
    }
    int _i = engine;
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    const size_t KiB = 1024;
    /* First the large block, so that the pool grows once, before anything is
     * populated, and keeps ~2 MiB free after it for the rest. */
    const size_t ahead = FM_POPULATE_AHEAD;
    ck_assert_uint_gt(ahead, FM_POPULATE_SMALL); /* the filler below is not populated */
    char *large = fm_heap_malloc(&f.h, 32 * MiB);
    char *small = fm_heap_malloc(&f.h, 100);
    char *filler = fm_heap_malloc(&f.h, ahead + 72 * KiB);
    char *mid = fm_heap_malloc(&f.h, 40 * KiB); /* past the pages populated so far */
    char *big = fm_heap_malloc(&f.h, ahead + 512 * KiB);
    ck_assert(large && small && filler && mid && big);
    ck_assert(small > large + 32 * MiB && filler > small + 100 && mid > filler + ahead + 72 * KiB &&
              big > mid + 40 * KiB); /* one after the other, as the test needs */
    size_t page = fm_os_page_size();
    if (tu_kernel_populates()) {
        for (size_t off = 0; off < ahead; off += page)
            TU_REQUIRE(tu_resident(small + 100 + off), "page %zu past a small block not populated", off);
        for (size_t off = 0; off < 40 * KiB + ahead; off += page)
            TU_REQUIRE(tu_resident(mid + off), "page %zu of a 40 KiB block or past it not populated", off);
        ck_assert(!tu_resident(large + 4 * MiB));
        ck_assert(!tu_resident(big + ahead + 256 * KiB));
    }
    ck_assert(!tu_resident(large + 7 * MiB));
    memset(large, 1, 8 * MiB);
    ck_assert(tu_resident(large + 7 * MiB));
    must_free(&f, large);
    must_free(&f, small);
    must_free(&f, filler);
    must_free(&f, mid);
    must_free(&f, big);
    assert_sound(&f);
    heap_close(&f);
}

START_TEST(populate_ahead_of_small_blocks)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    populate_ahead(_i, false);
}
END_TEST

/* With threads, the system call is made once the heap's lock is released, before the
 * malloc returns. */
START_TEST(populate_ahead_of_small_blocks_threaded)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    populate_ahead(_i, true);
}
END_TEST

/* An engine refuses memory too small for its tables, and works on the least it
 * claims to need. */
START_TEST(engine_minimum_pool)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    const struct fm_engine *e = fm_engines[_i];
    static alignas(16) unsigned char buf[1 << 20];
    ck_assert_uint_lt(e->min_pool, sizeof buf);
    ck_assert_ptr_null(e->create(buf, e->min_pool - 16));
    void *eng = e->create(buf, e->min_pool);
    ck_assert_ptr_nonnull(eng);
    void *p = e->malloc(eng, 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_gt(e->free(eng, p), 0);
    ck_assert_ptr_null(e->check(eng));
}
END_TEST

/* A pointer outside the range is foreign: the heap ignores and counts it. */
START_TEST(heap_foreign_pointer)
{
    APPLIES_ONLY_IF(!fm_engine_debugging(fm_engines[_i])); /* qm: preload_foreign.sh */
    struct fixture f;
    heap_open(&f, _i, 16 * MiB);
    char local[32];
    ck_assert_int_eq(fm_heap_free(&f.h, local, "test"), FM_FOREIGN);
    ck_assert_int_eq(fm_heap_free(&f.h, f.h.base + f.h.cap, "test"), FM_FOREIGN);
    ck_assert_uint_eq(fm_heap_usable_size(&f.h, local), 0);
    ck_assert_uint_eq(stats_of(&f).foreign_frees, 2);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* A double free inside the range stops the process (as glibc does). */
START_TEST(heap_double_free_aborts)
{
    struct fixture f;
    heap_open(&f, _i, 16 * MiB);
    void *a = fm_heap_malloc(&f.h, 64), *b = fm_heap_malloc(&f.h, 64);
    (void)b;
    must_free(&f, a);
    fm_heap_free(&f.h, a, "test"); /* must not return */
}
END_TEST

/* (Registered for the pool engines only: see sys_interior_pointer_is_foreign.) */
START_TEST(heap_interior_pointer_aborts)
{
    struct fixture f;
    heap_open(&f, _i, 16 * MiB);
    char *a = fm_heap_malloc(&f.h, 640);
    fm_heap_free(&f.h, a + 64, "test"); /* must not return */
}
END_TEST

/* sys knows the blocks it handed out, not their extents: a pointer into one is a
 * pointer it never gave out, ignored and counted (glibc never sees it). */
START_TEST(sys_interior_pointer_is_foreign)
{
    struct fixture f;
    heap_open(&f, (int)(fm_engine_count() - 1), 16 * MiB);
    ck_assert(f.e->system);
    char *a = fm_heap_malloc(&f.h, 640);
    tu_fill(a, 640, 3);
    ck_assert_int_eq(fm_heap_free(&f.h, a + 64, "test"), FM_FOREIGN);
    ck_assert_uint_eq(stats_of(&f).foreign_frees, 1);
    ck_assert_uint_eq(tu_verify(a, 640, 3), 640);
    must_free(&f, a);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------ statistics */

START_TEST(statistics_add_up)
{
    struct fixture f;
    heap_open(&f, _i, 32 * MiB);
    void *a = fm_heap_malloc(&f.h, 1000);
    void *b = fm_heap_calloc(&f.h, 3000);
    void *c = fm_heap_memalign(&f.h, 4096, 10);
    void *d = fm_heap_realloc(&f.h, a, 5000, "test");
    struct fastmem_stats st = stats_of(&f);
    ck_assert_str_eq(st.engine, f.e->name);
    ck_assert_uint_eq(st.cap, 32 * MiB);
    ck_assert_uint_eq(st.calls_malloc, 1);
    ck_assert_uint_eq(st.calls_calloc, 1);
    ck_assert_uint_eq(st.calls_aligned, 1);
    ck_assert_uint_eq(st.calls_realloc, 1);
    ck_assert_uint_eq(st.calls_free, 0);
    ck_assert_uint_eq(st.live_blocks, 3);
    ck_assert_uint_eq(st.in_use, fm_heap_usable_size(&f.h, b) + fm_heap_usable_size(&f.h, c) +
                                     fm_heap_usable_size(&f.h, d));
    ck_assert_uint_ge(st.peak_in_use, st.in_use);
    ck_assert_uint_gt(st.pool_used, st.in_use);
    ck_assert_uint_le(st.pool_used, st.committed);
    ck_assert_uint_eq(st.free_bytes, st.cap - st.pool_used);
    ck_assert_uint_le(st.largest_free, st.free_bytes);
    ck_assert_uint_ge(st.free_fragments, 1);
    uint64_t peak = st.peak_in_use;
    must_free(&f, b);
    must_free(&f, c);
    must_free(&f, d);
    st = stats_of(&f);
    ck_assert_uint_eq(st.calls_free, 3);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.peak_in_use, peak);
    heap_close(&f);
}
END_TEST

/* malloc_trim's work: the pages of free blocks go back to the kernel (they read as
 * zero afterwards), and the heap stays sound and usable. */
START_TEST(trim_releases_free_pages)
{
    APPLIES_ONLY_IF(pool_engine(_i)); /* sys: glibc gives back by its own rules */
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    void *guard0 = fm_heap_malloc(&f.h, 64);
    unsigned char *p = fm_heap_malloc(&f.h, 8 * MiB);
    void *guard1 = fm_heap_malloc(&f.h, 64);
    memset(p, 0xee, 8 * MiB);
    must_free(&f, p);
    /* A free block of 1 MiB or more gives its pages back at once, in 64 KiB grains... */
    uint64_t automatic = stats_of(&f).trimmed;
    ck_assert_uint_ge(automatic, 8 * MiB - 2 * 64 * 1024);
    ck_assert(!tu_resident(p + 4 * MiB));
    ck_assert_uint_eq(p[4 * MiB], 0); /* a page in the middle was dropped */
    /* ...and malloc_trim gives back the pages of every free block, small ones too. */
    unsigned char *small = fm_heap_malloc(&f.h, 64 * 1024);
    void *guard2 = fm_heap_malloc(&f.h, 64);
    memset(small, 0xdd, 64 * 1024);
    must_free(&f, small);
    ck_assert(tu_resident(small + 32 * 1024));
    size_t released = fm_heap_trim(&f.h);
    ck_assert_uint_ge(released, 8 * MiB);
    ck_assert_uint_eq(stats_of(&f).trimmed, automatic + released);
    ck_assert(!tu_resident(small + 32 * 1024));
    assert_sound(&f);
    unsigned char *q = fm_heap_malloc(&f.h, 8 * MiB);
    ck_assert_ptr_nonnull(q);
    tu_fill(q, 8 * MiB, 5);
    ck_assert_uint_eq(tu_verify(q, 8 * MiB, 5), 8 * MiB);
    must_free(&f, q);
    must_free(&f, guard0);
    must_free(&f, guard1);
    must_free(&f, guard2);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* Many small blocks freed in random order join into one large free run, whose pages
 * go back to the kernel once it reaches 1 MiB; blocks allocated there again work. */
START_TEST(freed_runs_go_back_to_the_kernel)
{
    APPLIES_ONLY_IF(frees_at_once(_i)); /* qm: a block goes back as it leaves the quarantine */
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    enum { N = 8192 };
    static unsigned char *p[N];
    void *guard0 = fm_heap_malloc(&f.h, 64);
    for (size_t i = 0; i < N; i++) {
        p[i] = fm_heap_malloc(&f.h, 1000);
        memset(p[i], 0x77, 1000);
    }
    void *guard1 = fm_heap_malloc(&f.h, 64);
    uint64_t seed = 9;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = tu_rand(&seed) % (i + 1);
        unsigned char *t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (size_t i = 0; i < N; i++)
        must_free(&f, p[i]);
    assert_sound(&f);
    struct fastmem_stats st = stats_of(&f);
    ck_assert_uint_ge(st.trimmed, 7 * MiB);
    size_t resident_pages = 0, page = fm_os_page_size();
    unsigned char *lo = (unsigned char *)guard0 + page, *hi = (unsigned char *)guard1 - page;
    for (unsigned char *a = lo; a < hi; a += page)
        resident_pages += tu_resident(a);
    /* Only the partial 64 KiB grains at the run's two ends stay resident. */
    ck_assert_uint_le(resident_pages, 2 * (64 * 1024) / page + 2);
    for (size_t i = 0; i < N; i++) {
        p[i] = fm_heap_malloc(&f.h, 1000);
        tu_fill(p[i], 1000, (uint32_t)i);
    }
    for (size_t i = 0; i < N; i++)
        TU_REQUIRE(tu_verify(p[i], 1000, (uint32_t)i) == 1000, "block %zu damaged", i);
    for (size_t i = 0; i < N; i++)
        must_free(&f, p[i]);
    must_free(&f, guard0);
    must_free(&f, guard1);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* A free block whose release is owed (decided, the system call not made yet), and a
 * taker that writes into it before the owner makes it: the release is made first, by
 * the taker, so nothing written is lost to it.  Each case frees the block with the
 * engine under the lock (fm_heap_with_lock), so that the release stays owed, and
 * takes it in the same hold, as a thread taking the lock between another's unlock and
 * its system call would. */
struct owed_case {
    struct fixture f;
    unsigned char *before, *p, *after; /* p's neighbours, live */
    unsigned char *again;              /* what the taker got */
    size_t size;
    bool resident_while_owed;
    unsigned owed_slots, slots_after_take;
    int child_status;
};

static unsigned slots_in_use(const struct fm_heap *h)
{
    unsigned n = 0;
    for (unsigned i = 0; i < FM_RELEASING_MAX; i++)
        n += h->releasing[i].state != 0;
    return n;
}

/* A process with threads (the heap's lock taken, releases owed), and a block of size
 * bytes written whole between two small live ones. */
static void owed_case_open(struct owed_case *c, int engine, size_t size)
{
    start_sleeper();
    heap_open(&c->f, engine, 64 * MiB);
    c->size = size;
    c->before = fm_heap_malloc(&c->f.h, 64);
    c->p = fm_heap_malloc(&c->f.h, c->size);
    c->after = fm_heap_malloc(&c->f.h, 64);
    ck_assert(c->before && c->p && c->after);
    ck_assert(c->p > c->before && c->p - c->before < 128); /* right after it */
    memset(c->p, 0xee, c->size);
}

static void owed_case_close(struct owed_case *c)
{
    must_free(&c->f, c->before);
    must_free(&c->f, c->after);
    assert_sound(&c->f);
    heap_close(&c->f);
}

/* Under the lock: the engine frees p, and its release is owed, not made. */
static void owe_release_of_p(struct fm_heap *h, struct owed_case *c)
{
    fm_heap_release_cached(h, c->p);
    c->owed_slots = slots_in_use(h);
    c->resident_while_owed = tu_resident(c->p + c->size / 2);
}

/* With threads, a release is decided under the heap's lock and its system call made
 * after it (heap.c, "Releases after the lock"), still inside the free that decided
 * it: when the free returns, the pages are gone. */
START_TEST(threaded_release_made_after_the_lock)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    struct owed_case c = {0};
    owed_case_open(&c, _i, 8 * MiB);
    must_free(&c.f, c.p);
    ck_assert_uint_ge(stats_of(&c.f).trimmed, 8 * MiB - 2 * 64 * 1024);
    ck_assert(!tu_resident(c.p + 4 * MiB));
    ck_assert_uint_eq(c.p[4 * MiB], 0);
    ck_assert_uint_eq(slots_in_use(&c.f.h), 0); /* made, and the slot free again */
    owed_case_close(&c);
}
END_TEST

/* Under the lock: a block of n bytes from the engine, counted as the heap counts it. */
static void *engine_take(struct fm_heap *h, size_t n)
{
    void *m = h->engine->malloc(h->eng, n);
    if (m) {
        h->c.live_blocks++;
        h->c.in_use += h->engine->usable_size(h->eng, m);
    }
    return m;
}

static void free_then_take_under_lock(struct fm_heap *h, void *arg)
{
    struct owed_case *c = arg;
    owe_release_of_p(h, c);
    c->again = engine_take(h, c->size);
    c->slots_after_take = slots_in_use(h);
    if (c->again)
        tu_fill(c->again, c->size, 77);
}

START_TEST(owed_release_made_before_its_block_is_handed_out)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    struct owed_case c = {0};
    owed_case_open(&c, _i, 4 * MiB);
    fm_heap_with_lock(&c.f.h, free_then_take_under_lock, &c);
    ck_assert_uint_ge(c.owed_slots, 1);       /* the release was owed... */
    ck_assert(c.resident_while_owed);          /* ...and not made at the free */
    ck_assert_ptr_eq(c.again, c.p);            /* the same block handed out */
    ck_assert_uint_eq(c.slots_after_take, 0);  /* made by the taker, before it wrote */
    /* The owner's turn came at the unlock, and found nothing left to make. */
    TU_REQUIRE(tu_verify(c.again, c.size, 77) == c.size, "the block handed out lost what was written");
    must_free(&c.f, c.again);
    owed_case_close(&c);
}
END_TEST

/* The same through realloc in place: the block before grows into the free one. */
static void free_then_grow_under_lock(struct fm_heap *h, void *arg)
{
    struct owed_case *c = arg;
    owe_release_of_p(h, c);
    size_t was = h->engine->usable_size(h->eng, c->before);
    if (h->engine->resize(h->eng, c->before, 64 + c->size)) {
        h->c.in_use += h->engine->usable_size(h->eng, c->before) - was;
        c->again = c->before;
        c->slots_after_take = slots_in_use(h);
        tu_fill(c->again, 64 + c->size, 78);
    }
}

START_TEST(owed_release_made_before_a_block_grows_into_it)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    struct owed_case c = {0};
    owed_case_open(&c, _i, 4 * MiB);
    fm_heap_with_lock(&c.f.h, free_then_grow_under_lock, &c);
    ck_assert_uint_ge(c.owed_slots, 1);
    ck_assert(c.resident_while_owed);
    ck_assert_ptr_eq(c.again, c.before); /* grown in place */
    ck_assert_uint_eq(c.slots_after_take, 0);
    TU_REQUIRE(tu_verify(c.again, 64 + c.size, 78) == 64 + c.size, "the grown block lost what was written");
    owed_case_close(&c);
}
END_TEST

/* A released block's remainder can be smaller than release_min, and a release can be
 * owed in it; when a join leaves it unmarked (too small to stay released), it is
 * handed out without the hand-out's wait, so the join itself must make what is owed
 * there (block.h, unrelease and absorb).  Without that, the owner's system call came
 * after the block was handed out and written, and took what was written (seen as
 * SIGBUS in a fork child of the preload test, a free block's header zeroed). */
struct unmarked_case {
    unsigned char *p, *q, *after, *rest, *again;
    size_t rest_size;
    unsigned owed_in_rest;
    bool rest_resident;
};

static void owe_in_a_remainder_then_join_it(struct fm_heap *h, void *arg)
{
    struct unmarked_case *c = arg;
    /* p was freed and waits in the batch: most of it goes out again, the remainder
     * (under 1 MiB) stays released, its grains waiting */
    void *a = engine_take(h, MiB);
    ck_assert_ptr_eq(a, c->p);
    c->rest = c->p + h->engine->usable_size(h->eng, a) + 8;
    /* q's free overflows the batch: the oldest waiting, the remainder's grains, are
     * given back, owed while the lock is held */
    fm_heap_release_cached(h, c->q);
    c->owed_in_rest = slots_in_use(h);
    c->rest_resident = tu_resident(c->rest + 256 * 1024);
    /* after joins the remainder, which is too small to stay released */
    fm_heap_release_cached(h, c->after);
    c->again = engine_take(h, c->rest_size);
    if (c->again)
        tu_fill(c->again, c->rest_size, 81);
    fm_heap_release_cached(h, a);
}

START_TEST(owed_release_made_before_a_join_unmarks_its_block)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    start_sleeper();
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    fm_heap_set_release(&f.h, 1 * MiB, 4 * MiB);
    struct unmarked_case c = {0};
    void *before = fm_heap_malloc(&f.h, 64);
    c.p = fm_heap_malloc(&f.h, 3 * MiB / 2);
    c.after = fm_heap_malloc(&f.h, 64);
    void *between = fm_heap_malloc(&f.h, 64); /* keeps q's free run apart */
    c.q = fm_heap_malloc(&f.h, 5 * MiB);
    void *guard = fm_heap_malloc(&f.h, 64);
    ck_assert(before && c.p && c.after && between && c.q && guard);
    memset(c.p, 0x5a, 3 * MiB / 2);
    memset(c.q, 0x5b, 5 * MiB);
    must_free(&f, c.p); /* 1.5 MiB waits: under the 4 MiB batch */
    ck_assert_uint_eq(slots_in_use(&f.h), 0);
    c.rest_size = 256 * 1024;
    fm_heap_with_lock(&f.h, owe_in_a_remainder_then_join_it, &c);
    ck_assert_uint_ge(c.owed_in_rest, 1); /* the remainder's release was owed... */
    ck_assert(c.rest_resident);           /* ...and not made yet */
    ck_assert_ptr_eq(c.again, c.rest);   /* the joined remainder handed out */
    TU_REQUIRE(tu_verify(c.again, c.rest_size, 81) == c.rest_size,
               "a block handed out of a joined remainder lost what was written to an owed release");
    must_free(&f, c.again);
    must_free(&f, before);
    must_free(&f, between);
    must_free(&f, guard);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* A fork while a release is owed (the owner between its unlock and its system call,
 * here still under the lock): the owner does not exist in the child, and the child's
 * fork handler makes the release there, freeing the slot, so no later hand-out in the
 * child waits for it.  The child's verdict is its exit status. */
static void free_then_fork_under_lock(struct fm_heap *h, void *arg)
{
    struct owed_case *c = arg;
    owe_release_of_p(h, c);
    pid_t pid = fork();
    if (pid == 0) {
        fm_heap_postfork_child(h);
        int bad = slots_in_use(h) != 0 || tu_resident(c->p + c->size / 2);
        void *q = fm_heap_malloc(h, c->size); /* the lock is the child's own again */
        bad |= q != c->p;
        if (q) {
            tu_fill(q, c->size, 79);
            bad |= tu_verify(q, c->size, 79) != c->size;
        }
        _exit(bad ? 1 : 0);
    }
    c->child_status = -1;
    if (pid > 0)
        waitpid(pid, &c->child_status, 0);
}

START_TEST(fork_makes_the_releases_owed_in_the_child)
{
    APPLIES_ONLY_IF(frees_at_once(_i));
    struct owed_case c = {0};
    owed_case_open(&c, _i, 4 * MiB);
    fm_heap_with_lock(&c.f.h, free_then_fork_under_lock, &c);
    ck_assert_uint_ge(c.owed_slots, 1);
    ck_assert_msg(WIFEXITED(c.child_status) && WEXITSTATUS(c.child_status) == 0,
                  "the child found the release owed, or the block lost what it wrote (status %#x)",
                  (unsigned)c.child_status);
    /* and the parent's owner made its own at its unlock */
    ck_assert_uint_eq(slots_in_use(&c.f.h), 0);
    ck_assert(!tu_resident(c.p + c.size / 2));
    owed_case_close(&c);
}
END_TEST

/* As the shim runs by default: free runs of 1 MiB or more go back to the kernel, but
 * only once more than 4 MiB of them wait, the oldest first.  A run freed and filled
 * again before then costs no system call and no page fault. */
START_TEST(release_waits_for_a_batch)
{
    APPLIES_ONLY_IF(frees_at_once(_i)); /* qm: a block goes back as it leaves the quarantine */
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    fm_heap_set_release(&f.h, 1 * MiB, 4 * MiB);
    enum { N = 8 };
    const size_t size = 3 * MiB / 2;
    unsigned char *p[N];
    void *guard[N + 1];
    guard[0] = fm_heap_malloc(&f.h, 64);
    tu_fill(guard[0], 64, 0);
    for (size_t i = 0; i < N; i++) {
        p[i] = fm_heap_malloc(&f.h, size);
        guard[i + 1] = fm_heap_malloc(&f.h, 64);
        ck_assert(p[i] && guard[i + 1]);
        memset(p[i], 0x5a, size);
        tu_fill(guard[i + 1], 64, (uint32_t)i + 1);
    }
    /* Two runs (about 2.6 MiB of whole grains) wait: nothing has gone back. */
    must_free(&f, p[0]);
    must_free(&f, p[1]);
    ck_assert_uint_eq(stats_of(&f).trimmed, 0);
    ck_assert(tu_resident(p[0] + size / 2) && tu_resident(p[1] + size / 2));
    assert_sound(&f);
    /* Filled again: it leaves the list, and still nothing went back. */
    unsigned char *again = fm_heap_malloc(&f.h, size);
    ck_assert_ptr_eq(again, p[1]); /* the newest free block of the size: both engines */
    ck_assert_uint_eq(stats_of(&f).trimmed, 0);
    ck_assert_uint_eq(again[size / 2], 0x5a); /* its pages were kept */
    assert_sound(&f);
    p[1] = again;
    /* Six more runs: past 4 MiB waiting, the oldest go back first, and no more than
     * 4 MiB of free runs stay resident. */
    for (size_t i = 1; i < N; i++)
        must_free(&f, p[i]);
    assert_sound(&f);
    uint64_t trimmed = stats_of(&f).trimmed;
    ck_assert_uint_ge(trimmed, (uint64_t)N * (size - 2 * 64 * 1024) - 4 * MiB);
    ck_assert(!tu_resident(p[0] + size / 2));
    ck_assert(tu_resident(p[N - 1] + size / 2));
    size_t page = fm_os_page_size(), resident_pages = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t off = page; off + page < size; off += page)
            resident_pages += tu_resident(p[i] + off);
    ck_assert_uint_le(resident_pages * page, 4 * MiB + (uint64_t)N * 2 * 64 * 1024);
    /* The guards between the runs kept their bytes. */
    for (size_t i = 0; i <= N; i++)
        ck_assert_uint_eq(tu_verify(guard[i], 64, (uint32_t)i), 64);
    /* malloc_trim gives back what still waits. */
    size_t released = fm_heap_trim(&f.h);
    ck_assert_uint_ge(released, 2 * MiB);
    ck_assert(!tu_resident(p[N - 1] + size / 2));
    assert_sound(&f);
    for (size_t i = 0; i <= N; i++)
        must_free(&f, guard[i]);
    assert_whole(&f);
    heap_close(&f);
}
END_TEST

/* Grains waiting to go back are always inside free blocks: whatever splits, joins,
 * grows in place or aligns them, a purge never takes a page from a live block.  Random
 * large and small blocks, with a batch small enough that purges run all the time, and
 * every live block checked byte for byte as it goes. */
START_TEST(waiting_grains_never_touch_live_blocks)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    struct fixture f;
    heap_open(&f, _i, 256 * MiB);
    fm_heap_set_release(&f.h, 256 * 1024, 512 * 1024);
    enum { SLOTS = 64, STEPS = 4000 };
    unsigned char *p[SLOTS] = {0};
    size_t sz[SLOTS] = {0};
    uint32_t tag[SLOTS] = {0};
    uint64_t seed = 2026;
    for (uint32_t step = 1; step <= STEPS; step++) {
        size_t i = tu_rand(&seed) % SLOTS;
        unsigned r = (unsigned)(tu_rand(&seed) % 100);
        size_t n = r < 50 ? 1 + tu_rand(&seed) % 2048 : 64 * 1024 + tu_rand(&seed) % (2 * MiB);
        if (p[i] == NULL) {
            if (r % 10 == 0)
                p[i] = fm_heap_memalign(&f.h, (size_t)1 << (6 + tu_rand(&seed) % 12), n);
            else
                p[i] = fm_heap_malloc(&f.h, n);
            ck_assert_ptr_nonnull(p[i]);
        } else if (r < 30) {
            TU_REQUIRE(tu_verify(p[i], sz[i], tag[i]) == sz[i], "step %u: block %zu damaged", step, i);
            unsigned char *q = fm_heap_realloc(&f.h, p[i], n, "realloc");
            ck_assert_ptr_nonnull(q);
            size_t kept = n < sz[i] ? n : sz[i];
            TU_REQUIRE(tu_verify(q, kept, tag[i]) == kept, "step %u: realloc lost data", step);
            p[i] = q;
        } else {
            TU_REQUIRE(tu_verify(p[i], sz[i], tag[i]) == sz[i], "step %u: block %zu damaged", step, i);
            must_free(&f, p[i]);
            p[i] = NULL;
            continue;
        }
        sz[i] = n;
        tag[i] = step;
        tu_fill(p[i], n, step);
        if (step % 500 == 0) {
            for (size_t k = 0; k < SLOTS; k++)
                if (p[k])
                    TU_REQUIRE(tu_verify(p[k], sz[k], tag[k]) == sz[k], "step %u: block %zu damaged", step, k);
            assert_sound(&f);
        }
    }
    ck_assert_uint_gt(stats_of(&f).trimmed, 0); /* the purges did run */
    for (size_t k = 0; k < SLOTS; k++)
        if (p[k]) {
            TU_REQUIRE(tu_verify(p[k], sz[k], tag[k]) == sz[k], "block %zu damaged", k);
            must_free(&f, p[k]);
        }
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------ threads */

struct thread_arg {
    struct fixture *f;
    uint64_t seed;
    int bad;
};

/* n threads running fn over one heap, seeds seed, seed + step, ...; each must report
 * nothing bad. */
static void run_threads(struct fixture *f, int n, void *(*fn)(void *), uint64_t seed, uint64_t step)
{
    pthread_t t[8];
    struct thread_arg args[8];
    ck_assert_int_le(n, 8);
    for (int k = 0; k < n; k++) {
        args[k] = (struct thread_arg){f, seed + (uint64_t)k * step, 0};
        ck_assert_int_eq(pthread_create(&t[k], NULL, fn, &args[k]), 0);
    }
    for (int k = 0; k < n; k++) {
        pthread_join(t[k], NULL);
        ck_assert_int_eq(args[k].bad, 0);
    }
}

static void *churn(void *v)
{
    struct thread_arg *a = v;
    enum { K = 256 };
    unsigned char *p[K] = {0};
    size_t n[K] = {0};
    for (int op = 0; op < 100000; op++) {
        size_t i = (size_t)(tu_rand(&a->seed) % K);
        if (p[i]) {
            if (tu_verify(p[i], n[i], (uint32_t)i) != n[i])
                a->bad++;
            fm_heap_free(&a->f->h, p[i], "test");
            p[i] = NULL;
        } else {
            n[i] = (size_t)(tu_rand(&a->seed) % 2000);
            p[i] = fm_heap_malloc(&a->f->h, n[i]);
            if (p[i] == NULL)
                a->bad++;
            else
                tu_fill(p[i], n[i], (uint32_t)i);
        }
    }
    for (size_t i = 0; i < K; i++)
        if (p[i])
            fm_heap_free(&a->f->h, p[i], "test");
    return NULL;
}

/* The heap lock: four threads at once, contents intact, counters exact. */
START_TEST(threads_share_one_heap)
{
    struct fixture f;
    heap_open(&f, _i, 64 * MiB);
    run_threads(&f, 4, churn, 1234, 77);
    struct fastmem_stats st = stats_of(&f);
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.calls_malloc, st.calls_free);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* Blocks of 1-3 MiB, each page's first word written and checked: every free makes a
 * run of 1 MiB or more that goes back to the kernel (the fixture's setting), owed and
 * made after the lock while the other thread takes blocks from the same runs; a
 * release made after a block was handed out would zero what its owner wrote. */
static void *churn_released(void *v)
{
    struct thread_arg *a = v;
    enum { K = 8 };
    size_t page = fm_os_page_size();
    uint64_t *p[K] = {0};
    size_t n[K] = {0};
    unsigned got = 0;
    for (int op = 0; op < 400; op++) {
        size_t i = (size_t)(tu_rand(&a->seed) % K);
        if (p[i]) {
            for (size_t off = 0; off + 8 <= n[i]; off += page)
                if (p[i][off / 8] != (uint64_t)(uintptr_t)p[i] + off)
                    a->bad++;
            fm_heap_free(&a->f->h, p[i], "test");
            p[i] = NULL;
        } else {
            n[i] = MiB + (size_t)(tu_rand(&a->seed) % (2 * MiB));
            p[i] = fm_heap_malloc(&a->f->h, n[i]);
            if (p[i] == NULL)
                continue;
            got++;
            for (size_t off = 0; off + 8 <= n[i]; off += page)
                p[i][off / 8] = (uint64_t)(uintptr_t)p[i] + off;
        }
    }
    for (size_t i = 0; i < K; i++)
        if (p[i])
            fm_heap_free(&a->f->h, p[i], "test");
    if (got < 100)
        a->bad++; /* the heap should have room for nearly all of them */
    return NULL;
}

START_TEST(threads_share_released_runs)
{
    APPLIES_ONLY_IF(pool_engine(_i));
    struct fixture f;
    heap_open(&f, _i, 128 * MiB);
    run_threads(&f, 2, churn_released, 99, 31);
    struct fastmem_stats st = stats_of(&f);
    ck_assert_uint_eq(st.live_blocks, 0);
    if (frees_at_once(_i))
        ck_assert_uint_ge(st.trimmed, 100 * MiB); /* the runs did go back */
    ck_assert_uint_eq(slots_in_use(&f.h), 0);
    assert_sound(&f);
    heap_close(&f);
}
END_TEST

/* ------------------------------------------------------------ the registry */

/* The preload tests run over the engines tests/local.mk lists: it must be exactly
 * the registry, so that no engine escapes them. */
START_TEST(preload_tests_cover_every_engine)
{
    const char *listed = getenv("FASTMEM_ENGINES");
    if (listed == NULL)
        return; /* run by hand, outside make check */
    char want[256] = "";
    for (size_t i = 0; fm_engines[i]; i++) {
        strcat(want, i ? " " : "");
        strcat(want, fm_engines[i]->name);
    }
    ck_assert_str_eq(listed, want);
}
END_TEST

START_TEST(engine_names)
{
    for (size_t i = 0; fm_engines[i]; i++) {
        const struct fm_engine *e = fm_engines[i];
        ck_assert_ptr_eq(fm_engine_find(e->name), e);
        for (const char *const *a = e->aliases; *a; a++)
            ck_assert_ptr_eq(fm_engine_find(*a), e);
    }
    ck_assert_ptr_eq(fm_engine_find("TLSF"), &fm_engine_tlsf);
    ck_assert_ptr_eq(fm_engine_find("Tlsf_Malloc"), &fm_engine_tlsf);
    ck_assert_ptr_eq(fm_engine_find("2"), &fm_engine_tlsf);
    ck_assert_ptr_eq(fm_engine_find("FM"), &fm_engine_fm);
    ck_assert_ptr_eq(fm_engine_find("F_Malloc"), &fm_engine_fm);
    ck_assert_ptr_eq(fm_engine_find("fmalloc"), &fm_engine_fm);
    ck_assert_ptr_eq(fm_engine_find("0"), &fm_engine_fm);
    ck_assert_ptr_null(fm_engine_find("f-malloc"));
    ck_assert_ptr_null(fm_engine_find("tlsf "));
    ck_assert_ptr_null(fm_engine_find(""));
    ck_assert_ptr_null(fm_engine_find("bogus"));
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    int n = (int)fm_engine_count();
    /* The tests that run threads over one heap, every engine's.  A ThreadSanitizer
     * build (scripts/test.sh) runs these alone: the rest have one thread, and take
     * minutes under it for nothing it could find. */
    TCase *th = tcase_create("threads");
    tcase_set_timeout(th, 120);
    tcase_add_loop_test(th, populate_ahead_of_small_blocks_threaded, 0, n);
    tcase_add_loop_test(th, threaded_release_made_after_the_lock, 0, n);
    tcase_add_loop_test(th, threads_share_one_heap, 0, n);
    tcase_add_loop_test(th, threads_share_released_runs, 0, n);
    suite_add_tcase(s, th);
#if TU_TSAN
    return s;
#endif
    TCase *tc = tcase_create("conformance");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, small_sizes, 0, n);
    tcase_add_loop_test(tc, zero_size_unique, 0, n);
    tcase_add_loop_test(tc, large_sizes, 0, n);
    tcase_add_loop_test(tc, impossible_sizes, 0, n);
    tcase_add_loop_test(tc, alignment, 0, n);
    tcase_add_loop_test(tc, realloc_edges, 0, n);
    tcase_add_loop_test(tc, realloc_at_cap, 0, n);
    tcase_add_loop_test(tc, fill_free_refill, 0, n);
    tcase_add_loop_test(tc, growth_under_cap, 0, n);
    tcase_add_loop_test(tc, pool_over_4gib, 0, n);
    tcase_add_loop_test(tc, random_against_model, 0, n);
    tcase_add_loop_test(tc, engine_over_buffer_refuses_bad_pointers, 0, n);
    tcase_add_loop_test(tc, engine_refuses_forged_headers, 0, n);
    tcase_add_loop_test(tc, engine_minimum_pool, 0, n);
    tcase_add_loop_test(tc, engine_coalesces_both_sides, 0, n);
    tcase_add_loop_test(tc, populate_ahead_of_small_blocks, 0, n);
    tcase_add_loop_test(tc, engine_split_rule, 0, n);
    tcase_add_loop_test(tc, engine_splits_large_tails, 0, n);
    tcase_add_loop_test(tc, engine_many_same_size_frees, 0, n);
    tcase_add_loop_test(tc, engine_malloc_batch_as_successive_mallocs, 0, n);
    tcase_add_loop_test(tc, heap_foreign_pointer, 0, n);
    tcase_add_loop_test_raise_signal(tc, heap_double_free_aborts, SIGABRT, 0, n);
    /* sys is last, the pool engines before it */
    tcase_add_loop_test_raise_signal(tc, heap_interior_pointer_aborts, SIGABRT, 0, n - 1);
    tcase_add_test(tc, sys_interior_pointer_is_foreign);
    tcase_add_loop_test(tc, statistics_add_up, 0, n);
    tcase_add_loop_test(tc, trim_releases_free_pages, 0, n);
    tcase_add_loop_test(tc, release_waits_for_a_batch, 0, n);
    tcase_add_loop_test(tc, owed_release_made_before_its_block_is_handed_out, 0, n);
    tcase_add_loop_test(tc, owed_release_made_before_a_block_grows_into_it, 0, n);
    tcase_add_loop_test(tc, owed_release_made_before_a_join_unmarks_its_block, 0, n);
    tcase_add_loop_test(tc, fork_makes_the_releases_owed_in_the_child, 0, n);
    tcase_add_loop_test(tc, waiting_grains_never_touch_live_blocks, 0, n);
    tcase_add_loop_test(tc, freed_runs_go_back_to_the_kernel, 0, n);
    suite_add_tcase(s, tc);
    TCase *reg = tcase_create("registry");
    tcase_add_test(reg, preload_tests_cover_every_engine);
    tcase_add_test(reg, engine_names);
    tcase_add_test(reg, fm_report_names_fullest_buckets);
    suite_add_tcase(s, reg);
    return s;
}

int main(void)
{
    return tu_run(engine_suite());
}
