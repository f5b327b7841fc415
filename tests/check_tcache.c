/* check_tcache.c: the per-thread caches in front of the private heap.
 *
 * Each test makes a heap as the shim does (caches on) over every engine, and checks
 * what the caches promise: a freed small block is reused by the same thread without
 * the engine; the statistics count cached blocks as free; the cap stays exact with
 * several threads holding caches (they are flushed before ENOMEM); a thread that
 * exits gives its cache back; fork leaves the child a heap without the other threads'
 * caches; a double free of a cached block is caught; threads churning at once keep
 * their data, also while another thread keeps seizing their caches.
 */
#include "testutil.h"

#include "engine.h"
#include "heap.h"
#include "os.h"
#include "tcache.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static struct fm_heap heap;

static void open_heap(int engine, size_t cap)
{
    int err = 0;
    void *base = fm_os_reserve(cap, &err);
    ck_assert_ptr_nonnull(base);
    size_t first = 256 * 1024;
    ck_assert_int_eq(fm_os_commit(base, first), 0);
    ck_assert_int_eq(fm_heap_init(&heap, fm_engines[engine], base, cap, 0, first, fm_os_commit, false), 0);
    fm_tcache_setup(&heap);
    ck_assert(heap.caches == !fm_engines[engine]->no_caches);
}

static struct fastmem_stats stats(void)
{
    struct fastmem_stats st;
    fm_heap_stats(&heap, &st);
    return st;
}

/* This thread's cache, made (a thread gets one at its first small miss) and empty. */
static void make_my_cache(void)
{
    fm_heap_free(&heap, fm_heap_malloc(&heap, 16), "test");
    fm_heap_trim(&heap);
}

#define assert_sound()                                                        \
    do {                                                                      \
        const char *why_ = fm_heap_check(&heap);                              \
        ck_assert_msg(why_ == NULL, "heap damaged: %s", why_);                \
    } while (0)

START_TEST(reuse_without_the_engine)
{
    open_heap(_i, 64 * MiB);
    char *p = fm_heap_malloc(&heap, 100);
    strcpy(p, "x");
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 1);
    /* the miss took one block: the thread's first (single_threaded_miss_takes_a_batch) */
    const uint64_t stocked = 0;
    ck_assert_uint_eq(st.cached, stocked);
    ck_assert_int_eq(fm_heap_free(&heap, p, "test"), FM_FREED);
    st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.cached, stocked + 104);
    ck_assert_uint_eq(st.calls_free, 1);
    char *q = fm_heap_malloc(&heap, 97); /* same stride: the cached block */
    ck_assert_ptr_eq(q, p);
    char *z = fm_heap_calloc(&heap, 100);
    ck_assert_ptr_nonnull(z);
    fm_heap_free(&heap, z, "test");
    z = fm_heap_calloc(&heap, 100); /* from the cache, and zeroed */
    for (int i = 0; i < 100; i++)
        TU_REQUIRE(z[i] == 0, "byte %d", i);
    st = stats();
    ck_assert_uint_eq(st.calls_malloc, 2);
    ck_assert_uint_eq(st.calls_calloc, 2);
    ck_assert_uint_eq(st.calls_free, 2);
    ck_assert_uint_eq(st.live_blocks, 2);
    /* the thread has freed since: calloc's miss took a batch, and the cache serves */
    const uint64_t refill = (FM_TCACHE_BATCH - 1) * 104;
    ck_assert_uint_eq(st.cached, refill);
    /* Blocks above FM_TCACHE_LARGE_MAX bypass the cache. */
    void *big = fm_heap_malloc(&heap, FM_TCACHE_LARGE_MAX + 1000);
    fm_heap_free(&heap, big, "test");
    ck_assert_uint_eq(stats().cached, refill);
    /* malloc_trim empties the caches. */
    fm_heap_free(&heap, q, "test");
    fm_heap_free(&heap, z, "test");
    ck_assert_uint_gt(stats().cached, 0);
    fm_heap_trim(&heap);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, 0);
    assert_sound();
}
END_TEST

/* The batches are taken only while the process has more than one thread (with one,
 * the heap's lock is skipped, so there is nothing to save): these tests keep a
 * second thread waiting while they run. */
static pthread_t companion;
static sem_t companion_done;

static void *wait_for_the_test(void *arg)
{
    (void)arg;
    while (sem_wait(&companion_done) != 0)
        ;
    return NULL;
}

static void companion_start(void)
{
    ck_assert_int_eq(sem_init(&companion_done, 0, 0), 0);
    ck_assert_int_eq(pthread_create(&companion, NULL, wait_for_the_test, NULL), 0);
}

static void companion_stop(void)
{
    sem_post(&companion_done);
    pthread_join(companion, NULL);
}

/* With threads, a refill's populates-ahead are made once the heap's lock is released
 * (heap.c, "Populate-ahead"), each range on its own: a batch whose first blocks lie
 * far apart faults in the pages around each, never the pages between.  Two holes of
 * a stride, 2 MiB apart (populate-ahead off while they are laid out), are the first
 * blocks of a threaded refill. */
START_TEST(threaded_refill_populates_each_range_alone)
{
    enum { B = FM_TCACHE_BATCH };
    open_heap(_i, 64 * MiB);
    heap.populate = false;
    make_my_cache();
    /* a block too large to populate: what follows lies past the populated pages */
    void *g0 = fm_heap_malloc(&heap, 1 * MiB);
    char *low[B], *high[B];
    for (int k = 0; k < B; k++) /* one refill's batch, then its blocks from the cache */
        low[k] = fm_heap_malloc(&heap, 100);
    char *pad = fm_heap_malloc(&heap, 2 * MiB);
    for (int k = 0; k < B; k++)
        high[k] = fm_heap_malloc(&heap, 100);
    ck_assert(g0 && pad);
    char *h1 = low[1], *h2 = high[1]; /* holes between live neighbours */
    for (int k = 0; k < B; k++)
        ck_assert(low[k] == low[0] + k * 112 && high[k] == high[0] + k * 112);
    ck_assert((char *)g0 + MiB <= low[0] && h1 < pad && pad + 2 * MiB <= h2);
    fm_heap_free(&heap, h2, "test");
    fm_heap_trim(&heap); /* to the engine: h2 a hole of its own */
    fm_heap_free(&heap, h1, "test");
    fm_heap_trim(&heap); /* then h1, the first a malloc of the stride finds */
    /* which of pad's pages the heap's own headers have touched already (an old end
     * of the pool lies inside it) */
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), pages = 2 * MiB / pg;
    static bool before[2 * MiB / 4096];
    for (size_t k = 0; k < pages; k++)
        before[k] = tu_resident(pad + k * pg);
    heap.populate = true;
    companion_start();
    char *p = fm_heap_malloc(&heap, 100); /* a threaded miss: a batch, h1 and h2 first */
    ck_assert_ptr_eq(p, h1);
    if (tu_kernel_populates()) {
        ck_assert(tu_resident(h1 + 64 * 1024));
        ck_assert(tu_resident(h2 + 64 * 1024));
        /* h1's range runs FM_POPULATE_AHEAD into pad; the rest of pad is between */
        const size_t from = FM_POPULATE_AHEAD + 128 * 1024;
        ck_assert_uint_le(from + 256 * 1024, 2 * MiB - 256 * 1024);
        for (size_t k = from / pg; k < pages - 256 * 1024 / pg; k++)
            TU_REQUIRE(before[k] || !tu_resident(pad + k * pg),
                       "page %zu of the block between the two populated", k);
    }
    fm_heap_free(&heap, p, "test");
    for (int k = 0; k < B; k++) {
        if (k == 1)
            continue; /* h1 is p now, and h2 went with p's batch */
        fm_heap_free(&heap, low[k], "test");
        fm_heap_free(&heap, high[k], "test");
    }
    fm_heap_free(&heap, pad, "test");
    fm_heap_free(&heap, g0, "test");
    fm_tcache_settle(&heap);
    assert_sound();
    companion_stop();
}
END_TEST

/* The depot: a thread that frees more than its list holds leaves a batch there, and
 * another thread whose list is empty takes that batch before it asks the engine. */
enum { GIVEN = FM_TCACHE_LIMIT + FM_TCACHE_BATCH };
static void *given[GIVEN];

static void *free_more_than_a_list(void *arg)
{
    (void)arg;
    for (int k = 0; k < GIVEN; k++)
        fm_heap_free(&heap, given[k], "test"); /* the BATCH oldest go to the depot */
    return NULL;
}

/* given[] allocated here and freed by another thread, which exits: its list goes back
 * to the engine, its first batch stays in the depot. */
static void leave_a_batch_in_the_depot(void)
{
    for (int k = 0; k < GIVEN; k++) {
        given[k] = fm_heap_malloc(&heap, 200);
        ck_assert_ptr_nonnull(given[k]);
    }
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_more_than_a_list, NULL), 0);
    pthread_join(t, NULL);
}

/* A miss takes a batch from the engine under one lock: one block handed out, the
 * rest cached and handed out next, lowest address first. */
/* A refill cuts blocks of the stride it was asked for: a hole a little larger (too
 * little to split) is the caller's block if it comes first, as a malloc's would be,
 * and otherwise ends the batch and stays free; blocks of a larger stride would go to
 * another list. */
START_TEST(refill_stops_at_a_hole_of_another_stride)
{
    open_heap(_i, 64 * MiB);
    enum { HOLES = 40 };
    void *hole[HOLES], *wall[HOLES];
    for (int k = 0; k < HOLES; k++) {
        hole[k] = fm_heap_malloc(&heap, 136); /* stride 144 */
        wall[k] = fm_heap_malloc(&heap, 40);  /* keeps the holes apart */
        ck_assert_ptr_nonnull(hole[k]);
        ck_assert_ptr_nonnull(wall[k]);
    }
    char *big = fm_heap_malloc(&heap, 64 * 1024); /* so the holes lie between live blocks */
    ck_assert_ptr_nonnull(big);
    for (int k = 0; k < HOLES; k++)
        fm_heap_free(&heap, hole[k], "test");
    fm_heap_trim(&heap); /* the holes to the engine: 144 bytes, 16 over a stride of 128 */
    ck_assert_uint_eq(stats().cached, 0);
    char *p = fm_heap_malloc(&heap, 120); /* stride 128: a miss, a refill */
    ck_assert_ptr_nonnull(p);
    memset(p, 0x5a, 120);
    /* (Where the holes are not the first blocks the engine finds, as with a sanitizer's
     * thread, the batch is of 128s; either way, no block of 144 is cached.) */
    ck_assert_ptr_nonnull(fm_tcache_mine);
    TU_REQUIRE(fm_tcache_mine->count[144 >> 4] == 0, "the refill cached %u blocks of stride 144",
               (unsigned)fm_tcache_mine->count[144 >> 4]);
    ck_assert_uint_eq(stats().live_blocks, HOLES + 2);
    fm_heap_free(&heap, p, "test");
    fm_heap_free(&heap, big, "test");
    for (int k = 0; k < HOLES; k++)
        fm_heap_free(&heap, wall[k], "test");
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().live_blocks, 0);
    assert_sound();
}
END_TEST

START_TEST(miss_takes_a_batch)
{
    open_heap(_i, 64 * MiB);
    fm_heap_free(&heap, fm_heap_malloc(&heap, 500), "test"); /* this thread's cache */
    fm_heap_trim(&heap);                                      /* empty */
    companion_start();
    ck_assert_uint_eq(stats().cached, 0);
    char *p = fm_heap_calloc(&heap, 100);
    ck_assert_ptr_nonnull(p);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.cached, (FM_TCACHE_BATCH - 1) * 104);
    ck_assert_uint_eq(st.live_blocks, 1);
    ck_assert_uint_eq(st.in_use, 104);
    ck_assert_uint_eq(st.calls_calloc, 1);
    char *prev = p;
    for (int k = 1; k < FM_TCACHE_BATCH; k++) {
        char *q = fm_heap_calloc(&heap, 100);
        ck_assert((uintptr_t)q > (uintptr_t)prev);
        for (int i = 0; i < 100; i++)
            TU_REQUIRE(q[i] == 0, "byte %d", i);
        memset(q, 0xa5, 100);
        prev = q;
    }
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, FM_TCACHE_BATCH);
    ck_assert_uint_eq(st.calls_calloc, FM_TCACHE_BATCH);
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
    companion_stop();
}
END_TEST

/* With one thread a miss takes a batch too, in one engine visit: the first block is
 * handed out, the rest cached, lowest address first and contiguous (cut from one free
 * block); the counts say so throughout, and every block is handed out once.  A thread
 * that has freed nothing takes one block at each of its first two misses of a size,
 * and batches from the third in a row (growing_heap_keeps_sizes_together). */
START_TEST(single_threaded_miss_takes_a_batch)
{
    open_heap(_i, 64 * MiB);
    enum { SINGLE = 2, ROUNDS = 5, N = ROUNDS * FM_TCACHE_BATCH + SINGLE };
    char *p[N];
    for (int k = 0; k < N; k++) {
        p[k] = fm_heap_malloc(&heap, 200);
        ck_assert_ptr_nonnull(p[k]);
        memset(p[k], k, 200);
        struct fastmem_stats st = stats();
        uint64_t held = k < SINGLE ? 0 : (uint64_t)(FM_TCACHE_BATCH - 1 - (k - SINGLE) % FM_TCACHE_BATCH);
        TU_REQUIRE(st.cached == held * 200, "after %d mallocs: cached %llu", k + 1,
                   (unsigned long long)st.cached);
        ck_assert_uint_eq(st.live_blocks, (uint64_t)k + 1);
        ck_assert_uint_eq(st.in_use, ((uint64_t)k + 1) * 200);
        ck_assert_uint_eq(st.calls_malloc, (uint64_t)k + 1);
        if (k > SINGLE && (k - SINGLE) % FM_TCACHE_BATCH != 0) /* from the cache, in address order */
            TU_REQUIRE(p[k] == p[k - 1] + 208, "block %d at %p after %p", k, (void *)p[k],
                       (void *)p[k - 1]);
    }
    for (int k = 0; k < N; k++)
        for (int i = 0; i < 200; i++)
            TU_REQUIRE((unsigned char)p[k][i] == (unsigned char)k, "block %d byte %d", k, i);
    assert_sound();
    /* A batch takes free blocks the pool has before new space: freed blocks of the
     * size come back (the cache full, the rest went to the engine). */
    for (int k = 0; k < N; k++)
        fm_heap_free(&heap, p[k], "test");
    fm_heap_trim(&heap);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.cached, 0);
    char *q = fm_heap_calloc(&heap, 200);
    ck_assert_ptr_nonnull(q);
    for (int i = 0; i < 200; i++)
        TU_REQUIRE(q[i] == 0, "byte %d", i);
    st = stats();
    ck_assert_uint_eq(st.cached, (FM_TCACHE_BATCH - 1) * 200);
    ck_assert_uint_eq(st.calls_calloc, 1);
    fm_heap_free(&heap, q, "test");
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
}
END_TEST

/* Depth (tcache.c): with one thread, a list that a free found full and a malloc then
 * found empty holds more: FM_TCACHE_DEEP blocks, or for the smallest strides as many
 * as FM_TCACHE_DEEP_BYTES holds, up to FM_TCACHE_DEEP_MAX; one that only overflows
 * keeps its limit.  Freeing more blocks of a size than a list holds leaves exactly
 * that many cached. */
static uint64_t cached_after_freeing(char **p, int n)
{
    for (int k = 0; k < n; k++)
        fm_heap_free(&heap, p[k], "test");
    return stats().cached;
}

START_TEST(bouncing_list_holds_more)
{
    open_heap(_i, 64 * MiB);
    /* The three cases with the defaults (16 KiB, 64 and 128), worked out by hand: a
     * 48-byte stride fits 341 in 16 KiB, held to DEEP_MAX; a 208-byte one 78, the
     * byte bound; a 608-byte one 26, raised to DEEP. */
    static const size_t sizes[] = {40, 200, 600}, depths[] = {128, 78, 64};
    ck_assert_uint_eq(FM_TCACHE_DEEP_BYTES, 16 * 1024);
    ck_assert_uint_eq(FM_TCACHE_DEEP, 64);
    ck_assert_uint_eq(FM_TCACHE_DEEP_MAX, 128);
    enum { NMAX = FM_TCACHE_DEEP_MAX + 8, OTHER = 1000 };
    char *p[NMAX];
    uint64_t deep_bytes = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        const size_t usable = sizes[z], depth = depths[z];
        const int n = (int)depth + 8;
        ck_assert_uint_eq(fm_block_stride(usable) - 8, usable); /* usable is what a block gives */
        for (int k = 0; k <= FM_TCACHE_LIMIT; k++)
            p[k] = fm_heap_malloc(&heap, usable);
        /* the last free finds the list full */
        ck_assert_uint_eq(cached_after_freeing(p, FM_TCACHE_LIMIT + 1) - deep_bytes, FM_TCACHE_LIMIT * usable);
        for (int k = 0; k < FM_TCACHE_LIMIT; k++) /* the list, emptied */
            p[k] = fm_heap_malloc(&heap, usable);
        ck_assert_uint_eq(stats().cached, deep_bytes);
        for (int k = FM_TCACHE_LIMIT; k < n; k++) /* the first is a miss: the list deepens */
            p[k] = fm_heap_malloc(&heap, usable);
        for (int k = 0; k < n; k++) {
            ck_assert_ptr_nonnull(p[k]);
            memset(p[k], k, usable);
        }
        for (int k = 0; k < n; k++)
            for (size_t i = 0; i < usable; i++)
                TU_REQUIRE((unsigned char)p[k][i] == (unsigned char)k, "block %d byte %zu", k, i);
        ck_assert_uint_eq(cached_after_freeing(p, n) - deep_bytes, depth * usable);
        deep_bytes += depth * usable;
        ck_assert_uint_eq(stats().live_blocks, 0);
        assert_sound();
    }
    /* A list that only overflowed since its last miss keeps the depth it has; a size
     * that never ran dry after overflowing keeps its limit. */
    for (int k = 0; k < NMAX; k++)
        p[k] = fm_heap_malloc(&heap, OTHER);
    ck_assert_uint_eq(cached_after_freeing(p, NMAX) - deep_bytes, FM_TCACHE_LIMIT * OTHER);
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
}
END_TEST

/* With threads, a list that overflowed and then ran dry, as above, keeps its limit
 * at the miss (a full list's oldest batch goes to the depot there, tcache.c). */
START_TEST(lists_keep_their_limit_with_threads)
{
    open_heap(_i, 64 * MiB);
    enum { N = FM_TCACHE_DEEP + 8, USABLE = 200 };
    char *p[N];
    for (int k = 0; k <= FM_TCACHE_LIMIT; k++)
        p[k] = fm_heap_malloc(&heap, USABLE);
    ck_assert_uint_eq(cached_after_freeing(p, FM_TCACHE_LIMIT + 1), FM_TCACHE_LIMIT * USABLE);
    for (int k = 0; k < FM_TCACHE_LIMIT; k++)
        p[k] = fm_heap_malloc(&heap, USABLE);
    companion_start();
    for (int k = FM_TCACHE_LIMIT; k < N; k++) /* a miss, with threads */
        p[k] = fm_heap_malloc(&heap, USABLE);
    size_t c = fm_block_stride(USABLE) >> 4;
    ck_assert_uint_eq(fm_tcache_mine->room[c], FM_TCACHE_LIMIT);
    /* the frees wait in the ring; settled, the list holds no more than its limit, and
     * the rest went on to the depot or the engine */
    for (int k = 0; k < N; k++)
        fm_heap_free(&heap, p[k], "test");
    fm_tcache_settle(&heap);
    ck_assert_uint_le(fm_tcache_mine->count[c], FM_TCACHE_LIMIT);
    ck_assert_uint_eq(stats().live_blocks, 0);
    companion_stop();
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
}
END_TEST

/* A thread that only allocates, going round several sizes, takes one block at each
 * miss: a batch of a size would be handed out over many rounds, its blocks mixed
 * with every round's others, so that a round freed later (a session, a request)
 * leaves no free run behind, only holes between the other rounds' blocks.  One block
 * at a time, each round's blocks lie together, in the order they were asked for. */
START_TEST(growing_heap_keeps_sizes_together)
{
    open_heap(_i, 64 * MiB);
    static const size_t sizes[] = {40, 200, 700, 100};
    enum { ROUNDS = 200, NS = sizeof sizes / sizeof sizes[0] };
    static char *p[ROUNDS * NS];
    for (int k = 0; k < ROUNDS * NS; k++) {
        p[k] = fm_heap_malloc(&heap, sizes[k % NS]);
        ck_assert_ptr_nonnull(p[k]);
        memset(p[k], k, sizes[k % NS]);
    }
    for (int k = 1; k < ROUNDS * NS; k++) {
        char *end = p[k - 1] + fm_heap_usable_size(&heap, p[k - 1]) + 8;
        TU_REQUIRE(p[k] == end, "block %d (%zu bytes) at %p, not right after block %d at %p", k,
                   sizes[k % NS], (void *)p[k], k - 1, (void *)p[k - 1]);
    }
    ck_assert_uint_eq(stats().cached, 0);
    for (int k = 0; k < ROUNDS * NS; k++)
        for (size_t i = 0; i < sizes[k % NS]; i++)
            TU_REQUIRE((unsigned char)p[k][i] == (unsigned char)k, "block %d byte %zu", k, i);
    /* Once the thread frees, a miss takes its batch again: blocks freed and asked
     * for again are what the caches are for. */
    fm_heap_free(&heap, p[0], "test");
    char *q = fm_heap_malloc(&heap, 500);
    ck_assert_uint_eq(stats().cached, 40 + (FM_TCACHE_BATCH - 1) * 504);
    fm_heap_free(&heap, q, "test");
    for (int k = 1; k < ROUNDS * NS; k++)
        fm_heap_free(&heap, p[k], "test");
    ck_assert_uint_eq(stats().live_blocks, 0);
    assert_sound();
}
END_TEST

/* Blocks a thread cache holds are live to the engine: inside a free run they split it,
 * and the run's pages cannot go back (MEMRELEASE).  When pages go back, a thread's
 * full lists (more freed into them than taken) are shed to the engine, where their
 * blocks join the runs around them, and a shed list takes no frees until its size
 * misses again.  Here the list fills with blocks spread over the first half of a
 * heap of one size; freeing the rest leaves, without shedding, runs of 28 KiB between
 * them, none long enough to go back, and with it one run, given back whole. */
static void lists_shed_when_pages_go_back(bool threaded)
{
    fm_heap_set_release(&heap, 256 * 1024, 0);
    enum { N = 16384, STEP = 256 };
    static void *p[N];
    for (int k = 0; k < N; k++)
        p[k] = fm_heap_malloc(&heap, 100);
    void *fence = fm_heap_malloc(&heap, 100);
    fm_heap_trim(&heap); /* the refills' stock back: nothing cached */
    if (threaded)
        companion_start(); /* frees through the ring, full lists' batches to the depot */
    for (int k = 0; k < FM_TCACHE_LIMIT; k++) {
        fm_heap_free(&heap, p[k * STEP], "test");
        fm_tcache_settle(&heap);
        p[k * STEP] = NULL;
    }
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.cached, FM_TCACHE_LIMIT * 104);
    uint64_t trimmed = st.trimmed;
    for (int k = 0; k < N; k++)
        if (p[k] != NULL)
            fm_heap_free(&heap, p[k], "test");
    fm_tcache_settle(&heap); /* (threaded: the ring's last frees, and the shedding) */
    st = stats();
    ck_assert_uint_eq(st.cached, 0); /* shed */
    ck_assert_uint_eq(st.live_blocks, 1);
    /* all of the run went back but the partial grains at its ends */
    TU_REQUIRE(st.trimmed - trimmed >= (uint64_t)N * 112 - 2 * 64 * 1024, "given back: %llu of %llu",
               (unsigned long long)(st.trimmed - trimmed), (unsigned long long)N * 112);
    /* shed: a free of the size goes to the engine */
    void *a = fm_heap_malloc(&heap, 200);
    fm_heap_free(&heap, fence, "test");
    fm_tcache_settle(&heap);
    ck_assert_uint_eq(stats().cached, (FM_TCACHE_BATCH - 1) * 200);
    /* a miss of the size opens the list again */
    void *b = fm_heap_malloc(&heap, 100);
    fm_heap_free(&heap, b, "test");
    fm_tcache_settle(&heap);
    ck_assert_uint_eq(stats().cached, (FM_TCACHE_BATCH - 1) * 200 + FM_TCACHE_BATCH * 104);
    fm_heap_free(&heap, a, "test");
    fm_tcache_settle(&heap);
    ck_assert_uint_eq(stats().live_blocks, 0);
    assert_sound();
    if (threaded)
        companion_stop();
}

/* Large lists are shed whenever they hold a block, full or not: one large block
 * keeps a good part of a run resident (tcache.c, "Shedding").  Here a few 3000-byte
 * blocks, spread between blocks too large to be cached, are cached (their list far
 * from full), and then the large blocks around them are freed: their pages go back,
 * and the list with them. */
static void large_lists_shed(bool threaded)
{
    fm_heap_set_release(&heap, 256 * 1024, 0);
    enum { N = 256, STEP = 64, KEPT = N / STEP, SIZE = 3000 };
    _Static_assert(KEPT < FM_TCACHE_LARGE_LIMIT, "the list must not be full");
    const size_t uncached = FM_TCACHE_LARGE_MAX + 36 * 1024;
    static void *big[N], *kept[KEPT];
    make_my_cache();
    for (int k = 0; k < N; k++) {
        if (k % STEP == 0)
            kept[k / STEP] = fm_heap_malloc(&heap, SIZE);
        big[k] = fm_heap_malloc(&heap, uncached);
        ck_assert_ptr_nonnull(big[k]);
    }
    fm_heap_trim(&heap);
    if (threaded) {
        companion_start();
        fm_tcache_settle(&heap); /* the shedding due after the trim's pages: nothing */
    }
    for (int k = 0; k < KEPT; k++) {
        fm_heap_free(&heap, kept[k], "test");
        fm_tcache_settle(&heap);
    }
    struct fastmem_stats st = stats();
    ck_assert_uint_ge(st.cached, (uint64_t)KEPT * SIZE); /* cached, the list not full */
    uint64_t trimmed = st.trimmed;
    for (int k = 0; k < N - 1; k++)
        fm_heap_free(&heap, big[k], "test");
    fm_tcache_settle(&heap);
    st = stats();
    ck_assert_uint_gt(st.trimmed, trimmed); /* pages went back */
    ck_assert_uint_eq(st.cached, 0);        /* and the list with them */
    ck_assert_uint_eq(st.live_blocks, 1);
    fm_heap_free(&heap, big[N - 1], "test");
    fm_tcache_settle(&heap);
    ck_assert_uint_eq(stats().live_blocks, 0);
    assert_sound();
    if (threaded)
        companion_stop();
}

/* Two tests of one body over a heap of cap: name calls fn(false), name_threaded
 * fn(true), which starts a companion thread so that the frees go through the ring. */
#define ALONE_AND_THREADED(name, fn, cap)                                                \
    START_TEST(name)                                                                   \
    {                                                                                  \
        open_heap(_i, cap);                                                            \
        fn(false);                                                                     \
    }                                                                                  \
    END_TEST                                                                           \
    START_TEST(name##_threaded)                                                        \
    {                                                                                  \
        open_heap(_i, cap);                                                            \
        fn(true);                                                                      \
    }                                                                                  \
    END_TEST

ALONE_AND_THREADED(large_lists_shed_when_pages_go_back, large_lists_shed, 64 * MiB)
/* With threads, the frees go through the ring and a full list's batches through the
 * depot: the depot goes back when pages do, and the thread's full lists at its next
 * settling. */
ALONE_AND_THREADED(full_lists_shed_when_pages_go_back, lists_shed_when_pages_go_back, 64 * MiB)

/* The cap stays exact with one thread whose refills stock its cache: blocks of every
 * size are handed out until the cap, and those stocked go back before ENOMEM, so the
 * last request that fits is served, whichever size filled the cache. */
START_TEST(single_threaded_refill_keeps_cap_exact)
{
    const size_t cap = 2 * MiB;
    open_heap(_i, cap);
    enum { MAXN = 100000 };
    static void *p[MAXN];
    size_t n = 0;
    /* alternate sizes: each miss stocks its size's list, then the other's runs dry */
    while (n < MAXN && (p[n] = fm_heap_malloc(&heap, n % 2 ? 1000 : 24)) != NULL)
        n++;
    ck_assert_uint_lt(n, MAXN);
    ck_assert_int_eq(errno, ENOMEM);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.cached, 0); /* flushed before refusing */
    ck_assert_uint_eq(st.live_blocks, n);
    /* every byte the cap allows went to live blocks, not the caches: what is left
     * cannot hold the block refused */
    ck_assert_uint_lt(st.free_bytes, 1024 + 1024 / 8 + 64);
    assert_sound();
    for (size_t k = 0; k < n; k++)
        fm_heap_free(&heap, p[k], "test");
    fm_heap_trim(&heap);
    st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.cached, 0);
    assert_sound();
}
END_TEST

/* A thread that only allocates (a producer) gets a cache at its first miss, so that
 * its refills come in batches (from the depot, or the engine), not a block a lock. */
static void *allocate_only(void *arg)
{
    struct fastmem_stats *st = arg;
    void *first = fm_heap_malloc(&heap, 100);
    fm_heap_stats(&heap, st);
    return first;
}

START_TEST(allocating_thread_gets_a_cache)
{
    open_heap(_i, 64 * MiB);
    companion_start();
    pthread_t t;
    struct fastmem_stats st;
    ck_assert_int_eq(pthread_create(&t, NULL, allocate_only, &st), 0);
    void *first;
    pthread_join(t, &first);
    ck_assert_ptr_nonnull(first);
    /* one block handed out, the rest of its batch in the thread's cache then */
    ck_assert_uint_eq(st.live_blocks, 1);
    ck_assert_uint_eq(st.cached, (FM_TCACHE_BATCH - 1) * 104);
    ck_assert_uint_eq(stats().cached, 0); /* it went back when the thread exited */
    fm_heap_free(&heap, first, "test");
    assert_sound();
    companion_stop();
}
END_TEST

/* A thread whose first malloc comes while the heap is at its cap cannot have a cache
 * made then (the cache is itself a block of the heap): its malloc fails with ENOMEM,
 * and once there is room again its next call makes the cache, as for any thread. */
static sem_t at_cap_tried, at_cap_room;

static void *allocate_at_the_cap(void *arg)
{
    bool *got = arg;
    errno = 0;
    void *p = fm_heap_malloc(&heap, 100);
    got[0] = p == NULL && errno == ENOMEM && fm_tcache_mine == NULL;
    sem_post(&at_cap_tried);
    sem_wait(&at_cap_room);
    p = fm_heap_malloc(&heap, 100);
    got[1] = p != NULL && fm_tcache_mine != NULL;
    if (p != NULL) {
        memset(p, 7, 100);
        fm_heap_free(&heap, p, "test");
    }
    return NULL;
}

START_TEST(thread_at_the_cap_gets_a_cache_later)
{
    open_heap(_i, 1 * MiB);
    static void *held[1 << 16];
    size_t n = 0;
    static const size_t sizes[] = {64 * 1024, 4096, 256, 24};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (void *p; n < sizeof held / sizeof held[0] && (p = fm_heap_malloc(&heap, sizes[k])) != NULL;)
            held[n++] = p;
    ck_assert_ptr_null(fm_heap_malloc(&heap, 24)); /* full */
    sem_init(&at_cap_tried, 0, 0);
    sem_init(&at_cap_room, 0, 0);
    bool got[2] = {false, false};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, allocate_at_the_cap, got), 0);
    sem_wait(&at_cap_tried);
    for (size_t k = 0; k < n; k++)
        fm_heap_free(&heap, held[k], "test");
    sem_post(&at_cap_room);
    pthread_join(t, NULL);
    ck_assert_msg(got[0], "at the cap: the malloc fails with ENOMEM, and no cache is made");
    ck_assert_msg(got[1], "with room again: the malloc succeeds, and the thread has a cache");
    assert_sound();
}
END_TEST

/* A free that finds its list full gives the oldest BATCH blocks back under one lock
 * and keeps the block freed: to the depot, where they are still cached, until it holds
 * FM_TCACHE_DEPOT_SLOTS batches of the size, then to the engine (the frees go on
 * past that: a settled free whose depot is full still keeps its block and gives the
 * batch); the counts stay right throughout. */
START_TEST(full_list_gives_back_a_batch)
{
    open_heap(_i, 64 * MiB);
    enum { N = FM_TCACHE_LIMIT + (FM_TCACHE_DEPOT_SLOTS + 2) * FM_TCACHE_BATCH + 3 };
    void *p[N];
    for (int k = 0; k < N; k++)
        p[k] = fm_heap_malloc(&heap, 40);
    fm_heap_trim(&heap); /* what the single-threaded refills stocked */
    companion_start();
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, N);
    ck_assert_uint_eq(st.cached, 0);
    for (int k = 0; k < N; k++) {
        fm_heap_free(&heap, p[k], "test");
        fm_tcache_settle(&heap); /* each free settled at once (the ring is no matter here) */
        st = stats();
        uint64_t held = (uint64_t)k + 1, flushes = 0;
        if (held > FM_TCACHE_LIMIT) {
            flushes = 1 + (held - FM_TCACHE_LIMIT - 1) / FM_TCACHE_BATCH;
            held = FM_TCACHE_LIMIT - FM_TCACHE_BATCH + 1 + (held - FM_TCACHE_LIMIT - 1) % FM_TCACHE_BATCH;
        }
        if (flushes > FM_TCACHE_DEPOT_SLOTS)
            flushes = FM_TCACHE_DEPOT_SLOTS;
        held += flushes * FM_TCACHE_BATCH; /* in the depot */
        TU_REQUIRE(st.cached == held * 40, "after %d frees: cached %llu", k + 1,
                   (unsigned long long)st.cached);
        TU_REQUIRE(st.live_blocks == (uint64_t)(N - k - 1), "after %d frees: live %llu", k + 1,
                   (unsigned long long)st.live_blocks);
        ck_assert_uint_eq(st.calls_free, (uint64_t)k + 1);
        ck_assert_uint_eq(st.in_use, (uint64_t)(N - k - 1) * 40);
    }
    assert_sound();
    /* The newest blocks are the ones kept: the last freed comes back first. */
    ck_assert_ptr_eq(fm_heap_malloc(&heap, 40), p[N - 1]);
    fm_heap_trim(&heap);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, 1);
    assert_sound();
    companion_stop();
}
END_TEST

START_TEST(depot_passes_batches_between_threads)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    companion_start();
    leave_a_batch_in_the_depot();
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.cached, FM_TCACHE_BATCH * 200);
    ck_assert_uint_eq(st.live_blocks, 0);
    uint64_t pool_used = st.pool_used;
    /* BATCH mallocs: the batch's blocks, the oldest freed, none from the engine. */
    for (int k = 0; k < FM_TCACHE_BATCH; k++) {
        char *p = fm_heap_malloc(&heap, 190);
        bool known = false;
        for (int i = 0; i < FM_TCACHE_BATCH; i++)
            known = known || p == given[i];
        TU_REQUIRE(known, "malloc %d: %p is not from the batch", k, (void *)p);
        memset(p, 0x3c, 190);
    }
    st = stats();
    /* the engine handed out nothing: only the batch's blocks became used */
    ck_assert_uint_eq(st.pool_used, pool_used + FM_TCACHE_BATCH * 208);
    ck_assert_uint_eq(st.live_blocks, FM_TCACHE_BATCH);
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.calls_malloc, GIVEN + 1 + FM_TCACHE_BATCH);
    ck_assert_uint_eq(st.calls_free, GIVEN + 1);
    for (int i = 0; i < FM_TCACHE_BATCH; i++)
        fm_heap_free(&heap, given[i], "test");
    /* A flush of every cache empties the depot too. */
    leave_a_batch_in_the_depot();
    ck_assert_uint_gt(stats().cached, 0);
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
    companion_stop();
}
END_TEST

/* A block in the depot is still free: freeing it again aborts. */
START_TEST(double_free_of_depot_block_aborts)
{
    open_heap(_i, 64 * MiB);
    companion_start();
    leave_a_batch_in_the_depot();
    fm_heap_free(&heap, given[0], "free");
    fm_tcache_settle(&heap); /* threaded: the ring's check (ring_reports_a_double_free) */
}
END_TEST

/* A batch taken from the depot becomes this thread's list as it is, its blocks not
 * touched: those not handed out still carry the cached mark, so freeing one of them
 * again aborts too. */
START_TEST(double_free_of_restocked_block_aborts)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    companion_start();
    leave_a_batch_in_the_depot();
    void *p = fm_heap_malloc(&heap, 200); /* a miss: the batch, one block handed out */
    ck_assert_uint_eq(stats().cached, (FM_TCACHE_BATCH - 1) * 200);
    void *listed = NULL;
    for (int i = 0; i < FM_TCACHE_BATCH && listed == NULL; i++)
        if (given[i] != p)
            listed = given[i];
    fm_heap_free(&heap, listed, "free");
    fm_tcache_settle(&heap); /* must not return */
}
END_TEST

/* A double free caught on the batched path: the list is full when it comes. */
START_TEST(double_free_into_full_list_aborts)
{
    open_heap(_i, 64 * MiB);
    void *p[FM_TCACHE_LIMIT];
    for (int k = 0; k < FM_TCACHE_LIMIT; k++)
        p[k] = fm_heap_malloc(&heap, 64);
    companion_start();
    for (int k = 0; k < FM_TCACHE_LIMIT; k++)
        fm_heap_free(&heap, p[k], "free");
    fm_heap_free(&heap, p[FM_TCACHE_LIMIT - 1], "free");
    fm_tcache_settle(&heap);
}
END_TEST

/* The same with one thread: a free into a full list goes to the engine at once, and
 * must not hand the engine a block the list still holds. */
START_TEST(double_free_into_full_list_single_threaded_aborts)
{
    open_heap(_i, 64 * MiB);
    void *p[FM_TCACHE_LIMIT + 1];
    for (int k = 0; k <= FM_TCACHE_LIMIT; k++)
        p[k] = fm_heap_malloc(&heap, 64);
    for (int k = 0; k <= FM_TCACHE_LIMIT; k++) /* the last one to the engine */
        fm_heap_free(&heap, p[k], "free");
    fm_heap_free(&heap, p[5], "free");
}
END_TEST

/* A header forged inside a block, agreeing with the boundary tags around it, is no
 * block to the cache either (it checks the size word's check bits, pool.h). */
START_TEST(forged_header_inside_a_block_aborts)
{
    open_heap(_i, 64 * MiB);
    char *a = fm_heap_malloc(&heap, 640);
    memset(a, 0, 640);
    size_t *fake = (size_t *)(a + 256);
    fake[1] = 64;     /* a used block of 64 after a used block */
    fake[8 + 1] = 32; /* and a used block after it */
    fm_heap_free(&heap, a + 256 + 16, "free"); /* must not return */
}
END_TEST

/* A header forged inside a block with the right check bits for a stride no block has
 * (0 or 16, below BLOCK_MIN): the caches' check leaves such strides to the lists that
 * never have room (pool.h, pool_cacheable_off), so the free reaches the engine, which
 * refuses it.  Computing the check bits is what a forger cannot do; the test can. */
static void *forge_header_of_stride(size_t stride)
{
    char *a = fm_heap_malloc(&heap, 640);
    memset(a, 0, 640);
    const struct pool *pl = heap.eng;
    char *ptr = a + 256 + 16;
    size_t *fake = (size_t *)(a + 256);
    fake[1] = stride | check_bits((uintptr_t)ptr - pl->lo, stride);
    ck_assert(pool_cacheable(pl, ptr, fake[1], stride)); /* the check alone lets it by */
    return ptr;
}

START_TEST(forged_header_of_no_blocks_stride_aborts)
{
    open_heap(_i, 64 * MiB);
    fm_heap_free(&heap, forge_header_of_stride(16), "free"); /* must not return */
}
END_TEST

START_TEST(forged_header_of_stride_zero_aborts)
{
    open_heap(_i, 64 * MiB);
    fm_heap_free(&heap, forge_header_of_stride(0), "free"); /* must not return */
}
END_TEST

/* The same through a ring: settled at the next miss, under the heap's lock. */
START_TEST(ring_reports_a_forged_header_of_no_blocks_stride)
{
    open_heap(_i, 64 * MiB);
    void *ptr = forge_header_of_stride(16);
    companion_start();
    fm_heap_free(&heap, ptr, "free");
    fm_heap_malloc(&heap, 2000); /* a miss: must not return */
}
END_TEST

/* realloc of a block freed into the cache: moving it would free it a second time. */
START_TEST(realloc_of_cached_block_aborts)
{
    open_heap(_i, 64 * MiB);
    void *p = fm_heap_malloc(&heap, 64);
    fm_heap_free(&heap, p, "free");
    fm_heap_realloc(&heap, p, 4000, "realloc");
}
END_TEST

/* Double free across threads (tcache.c, "Double free"): a block this thread's cache
 * lists, freed (or realloc'ed) by another thread, whether that thread has no cache
 * yet (its free goes the slow way), or has one (the free waits in its ring until a
 * miss settles it). */
static void *cached_here; /* listed by the test's main thread */

static void *free_it_without_a_cache(void *arg)
{
    (void)arg;
    fm_heap_free(&heap, cached_here, "free"); /* must not return */
    return NULL;
}

static void *free_it_from_a_ring(void *arg)
{
    (void)arg;
    fm_heap_free(&heap, fm_heap_malloc(&heap, 48), "free"); /* this thread's cache */
    fm_heap_free(&heap, cached_here, "free");               /* into the ring */
    fm_heap_malloc(&heap, 700); /* a miss settles the ring: must not return */
    return NULL;
}

static void *realloc_it(void *arg)
{
    (void)arg;
    fm_heap_realloc(&heap, cached_here, 100, "realloc"); /* must not return */
    return NULL;
}

/* Over a heap of this engine, cache a block of size in the test's thread while the
 * process has threads; then let another thread run fn on it. */
static void cache_here_and_run(int engine, size_t size, void *(*fn)(void *))
{
    open_heap(engine, 64 * MiB);
    fm_heap_free(&heap, fm_heap_malloc(&heap, 48), "free"); /* this thread's cache */
    companion_start();
    cached_here = fm_heap_malloc(&heap, size);
    fm_heap_free(&heap, cached_here, "free"); /* into this thread's ring */
    fm_heap_malloc(&heap, 300);               /* a miss: the ring settled, the block listed */
    ck_assert_ptr_eq(((void **)cached_here)[1], fm_tcache_key);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fn, NULL), 0);
    pthread_join(t, NULL);
}

START_TEST(double_free_across_threads_aborts)
{
    cache_here_and_run(_i, 64, free_it_without_a_cache);
}
END_TEST

START_TEST(double_free_across_threads_through_a_ring_aborts)
{
    cache_here_and_run(_i, 64, free_it_from_a_ring);
}
END_TEST

START_TEST(double_free_of_large_block_across_threads_aborts)
{
    cache_here_and_run(_i, 5000, free_it_from_a_ring);
}
END_TEST

START_TEST(realloc_across_threads_of_cached_block_aborts)
{
    cache_here_and_run(_i, 64, realloc_it);
}
END_TEST

/* A live block whose data hold the key (as a copy of freed memory would) is freed by
 * another thread as any block: looked for, found nowhere, freed, and reused. */
static void *free_both_ways(void *arg)
{
    void **p = arg;
    fm_heap_free(&heap, p[0], "free"); /* the slow way: no cache yet */
    fm_heap_free(&heap, fm_heap_malloc(&heap, 48), "free");
    fm_heap_free(&heap, p[1], "free"); /* through the ring */
    fm_heap_malloc(&heap, 700);        /* settles it */
    return NULL;
}

START_TEST(key_in_data_is_no_double_free)
{
    open_heap(_i, 64 * MiB);
    companion_start();
    void *p[2];
    for (int k = 0; k < 2; k++) {
        p[k] = fm_heap_malloc(&heap, 64);
        memset(p[k], 0x5a, 64);
        ((void **)p[k])[1] = fm_tcache_key;
    }
    uint64_t frees = stats().calls_free;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_both_ways, p), 0);
    pthread_join(t, NULL);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.calls_free, frees + 3);
    /* Both went to the freeing thread's cache, which gave them back when it exited:
     * the engine hands the first out again, without the key. */
    void *q = fm_heap_malloc(&heap, 64);
    ck_assert_ptr_ne(((void **)q)[1], fm_tcache_key);
    assert_sound();
    companion_stop();
}
END_TEST

/* A buffer an idle thread freed (its free waiting in its ring) is reused before the
 * pool grows: the rings are settled first (tcache.c, "The ring"). */
static sem_t buffer_freed, may_exit;
static void *idle_buffer;

static void *free_a_buffer_and_sleep(void *arg)
{
    (void)arg;
    fm_heap_free(&heap, fm_heap_malloc(&heap, 48), "free"); /* this thread's cache */
    idle_buffer = fm_heap_malloc(&heap, MiB);
    memset(idle_buffer, 1, MiB);
    fm_heap_free(&heap, idle_buffer, "free"); /* into the ring, and nothing more */
    sem_post(&buffer_freed);
    while (sem_wait(&may_exit) != 0)
        ;
    return NULL;
}

START_TEST(idle_threads_ring_is_settled_before_the_pool_grows)
{
    open_heap(_i, 64 * MiB);
    ck_assert_int_eq(sem_init(&buffer_freed, 0, 0), 0);
    ck_assert_int_eq(sem_init(&may_exit, 0, 0), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_a_buffer_and_sleep, NULL), 0);
    while (sem_wait(&buffer_freed) != 0)
        ;
    struct fastmem_stats before = stats();
    ck_assert_uint_ge(before.cached, MiB); /* waiting in the ring, counted as cached */
    void *q = fm_heap_malloc(&heap, MiB);
    struct fastmem_stats after = stats();
    ck_assert_ptr_eq(q, idle_buffer);
    ck_assert_uint_eq(after.committed, before.committed);
    ck_assert_uint_lt(after.cached, MiB);
    sem_post(&may_exit);
    pthread_join(t, NULL);
    assert_sound();
}
END_TEST

/* A ring being settled: the frees that need the heap's lock (here a buffer over the
 * caches' bounds) stay in the ring until that lock is held, so a thread that holds it
 * meanwhile (a malloc at the cap flushing every cache, fork, statistics) still finds
 * them there.  The settling thread is made to wait for the lock with the buffer's
 * free pending: before, the buffer sat in a local array then, seen by nobody, and an
 * ENOMEM could come though its free had returned. */
static sem_t settler_ready, settler_go;
static void *settler_buffer;

static void *free_a_buffer_then_settle(void *arg)
{
    (void)arg;
    enum { SMALL = FM_TCACHE_RING - 1 };
    void *small[SMALL];
    settler_buffer = fm_heap_malloc(&heap, MiB);
    for (int k = 0; k < SMALL; k++)
        small[k] = fm_heap_malloc(&heap, 64);
    sem_post(&settler_ready);
    while (sem_wait(&settler_go) != 0)
        ;
    fm_heap_free(&heap, settler_buffer, "free"); /* noted in the ring */
    for (int k = 0; k < SMALL; k++)
        fm_heap_free(&heap, small[k], "free"); /* the last fills the ring: settled */
    return NULL;
}

static uint64_t live_seen_under_the_lock;

static void flush_while_the_settler_waits(struct fm_heap *h, void *arg)
{
    (void)arg;
    sem_post(&settler_go);
    usleep(200 * 1000); /* the settler frees, and waits for this lock */
    fm_tcache_release_rings(h);
    fm_tcache_flush_all(h);
    live_seen_under_the_lock = h->c.live_blocks;
}

START_TEST(frees_being_settled_stay_visible)
{
    open_heap(_i, 64 * MiB);
    ck_assert_int_eq(sem_init(&settler_ready, 0, 0), 0);
    ck_assert_int_eq(sem_init(&settler_go, 0, 0), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_a_buffer_then_settle, NULL), 0);
    while (sem_wait(&settler_ready) != 0)
        ;
    fm_heap_with_lock(&heap, flush_while_the_settler_waits, NULL);
    pthread_join(t, NULL);
    ck_assert_uint_eq(live_seen_under_the_lock, 0); /* the buffer's free done */
    ck_assert_uint_eq(stats().live_blocks, 0);
    assert_sound();
}
END_TEST

/* The engine may hand out a block whose second word held the key in an earlier life
 * (the inside of a block that was cached, then joined into a free neighbour): the
 * block the program gets carries no mark (else its free would search every cache for
 * it).  Here the key is planted in every second word of a large block's data, which
 * is freed and then cut up by memalign. */
START_TEST(engine_hands_out_no_mark)
{
    open_heap(_i, 64 * MiB);
    fm_heap_free(&heap, fm_heap_malloc(&heap, 100), "free"); /* this thread's cache */
    size_t big = 200 * 1024;
    void **y = fm_heap_malloc(&heap, big);
    for (size_t k = 1; k < big / sizeof *y; k += 2)
        y[k] = fm_tcache_key;
    fm_heap_free(&heap, y, "free");
    fm_heap_malloc(&heap, 700); /* a miss: with threads, y's free waited in the ring */
    for (int k = 0; k < 8; k++) {
        void **q = fm_heap_memalign(&heap, 4096, 100 + 100 * (size_t)k);
        ck_assert((char *)q > (char *)y && (char *)q < (char *)y + big); /* where the keys were */
        ck_assert_ptr_ne(q[1], fm_tcache_key);
    }
    assert_sound();
}
END_TEST

/* While the process has threads, a free waits in its thread's ring (tcache.c, "The
 * ring"): counted as done, its block as cached, at once; a miss settles the ring
 * before it asks anyone else, so the block freed last is the one handed out. */
START_TEST(ring_frees_count_at_once_and_settle_at_a_miss)
{
    open_heap(_i, 64 * MiB);
    void *p[10];
    for (int k = 0; k < 10; k++)
        p[k] = fm_heap_malloc(&heap, 100);
    fm_heap_trim(&heap); /* the refill's stock: no block of the size cached */
    companion_start();
    for (int k = 0; k < 10; k++)
        fm_heap_free(&heap, p[k], "test");
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_eq(st.cached, 10 * 104);
    ck_assert_uint_eq(st.calls_free, 10);
    ck_assert_ptr_eq(fm_heap_malloc(&heap, 100), p[9]);
    ck_assert_ptr_eq(fm_heap_malloc(&heap, 100), p[8]);
    st = stats();
    ck_assert_uint_eq(st.live_blocks, 2);
    ck_assert_uint_eq(st.cached, 8 * 104);
    companion_stop();
    assert_sound();
}
END_TEST

/* A double free waits in the ring like any free, and dies when the ring is settled:
 * here when it fills. */
START_TEST(ring_reports_a_double_free)
{
    open_heap(_i, 64 * MiB);
    void *q[FM_TCACHE_RING];
    for (int k = 0; k < FM_TCACHE_RING; k++)
        q[k] = fm_heap_malloc(&heap, 64);
    companion_start();
    fm_heap_free(&heap, q[0], "free");
    fm_heap_free(&heap, q[0], "free");
    for (int k = 1; k < FM_TCACHE_RING - 1; k++)
        fm_heap_free(&heap, q[k], "free"); /* the ring's last: settled, must not return */
}
END_TEST

/* A pointer into a block, aligned like a block, waits in the ring too, and dies at
 * the next miss (which settles the ring first). */
START_TEST(ring_reports_a_pointer_into_a_block)
{
    open_heap(_i, 64 * MiB);
    char *a = fm_heap_malloc(&heap, 640);
    memset(a, 0, 640);
    companion_start();
    fm_heap_free(&heap, a + 64, "free");
    fm_heap_malloc(&heap, 2000); /* a miss: must not return */
}
END_TEST

/* realloc of a block whose free waits in the ring: it is no live block any more. */
START_TEST(realloc_of_block_waiting_in_ring_aborts)
{
    open_heap(_i, 64 * MiB);
    void *p = fm_heap_malloc(&heap, 64);
    companion_start();
    fm_heap_free(&heap, p, "free");
    fm_heap_realloc(&heap, p, 4000, "realloc"); /* must not return */
}
END_TEST

START_TEST(double_free_of_cached_block_aborts)
{
    open_heap(_i, 64 * MiB);
    void *p = fm_heap_malloc(&heap, 64);
    fm_heap_free(&heap, p, "free");
    fm_heap_free(&heap, p, "free");
}
END_TEST

/* Large blocks (above 1 KiB, up to FM_TCACHE_LARGE_MAX) are cached in lists of size
 * ranges; a block is asked of the engine at the size its range starts at, so any
 * request of the range can have it back. */
/* This thread's cache is made by its first small free. */
START_TEST(large_blocks_reused_without_the_engine)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    char *p = fm_heap_malloc(&heap, 5000);
    ck_assert_ptr_nonnull(p);
    size_t u = fm_heap_usable_size(&heap, p);
    ck_assert_uint_ge(u, 5000);
    memset(p, 7, 5000);
    fm_heap_free(&heap, p, "test");
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.cached, u);
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.in_use, 0);
    char *other = fm_heap_malloc(&heap, 5400); /* another range: not p */
    ck_assert_ptr_ne(other, p);
    char *q = fm_heap_malloc(&heap, 4990); /* the same range: p */
    ck_assert_ptr_eq(q, p);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, 2);
    ck_assert_uint_eq(st.calls_malloc, 4); /* make_my_cache's too */
    ck_assert_uint_eq(st.calls_free, 2);
    fm_heap_free(&heap, q, "test");
    fm_heap_free(&heap, other, "test");
    ck_assert_uint_gt(stats().cached, 0);
    fm_heap_trim(&heap);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, 0);
    assert_sound();
}
END_TEST

/* Cached blocks are free to the program: pool_used counts live blocks only, and
 * free_bytes (cap - pool_used) includes what the caches hold. */
START_TEST(cached_blocks_count_as_free_pool)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    fm_heap_trim(&heap);
    struct fastmem_stats st0 = stats();
    char *p = fm_heap_malloc(&heap, 100); /* a miss: a batch, one handed out */
    memset(p, 1, 100);
    struct fastmem_stats st1 = stats();
    ck_assert_uint_eq(st1.cached, (FM_TCACHE_BATCH - 1) * 104);
    ck_assert_uint_eq(st1.pool_used, st0.pool_used + 112);
    ck_assert_uint_eq(st1.free_bytes, st1.cap - st1.pool_used);
    fm_heap_free(&heap, p, "test");
    fm_tcache_settle(&heap);
    struct fastmem_stats st2 = stats();
    ck_assert_uint_eq(st2.cached, FM_TCACHE_BATCH * 104);
    ck_assert_uint_eq(st2.pool_used, st0.pool_used);
    ck_assert_uint_eq(st2.free_bytes, st0.free_bytes);
}
END_TEST

/* m large blocks over many lists (sizes 2000-61700, ~31.9 KB a block, few enough a
 * list that no list fills), written, then all freed, and this thread's ring settled. */
static void free_large_spread(int m)
{
    void **q = malloc((size_t)m * sizeof *q);
    ck_assert_ptr_nonnull(q);
    for (int k = 0; k < m; k++) {
        q[k] = fm_heap_malloc(&heap, 2000 + (size_t)(k % 200) * 300);
        ck_assert_ptr_nonnull(q[k]);
        memset(q[k], k, 2000);
    }
    for (int k = 0; k < m; k++)
        fm_heap_free(&heap, q[k], "test");
    fm_tcache_settle(&heap);
    free(q);
}

/* A thread's large blocks are bounded: FM_TCACHE_LARGE_LIMIT a list, and in all
 * FM_TCACHE_LARGE_BYTES alone, FM_TCACHE_LARGE_BYTES_THREADED while the process has
 * threads (the frees then go through the ring); the rest go back to the engine. */
static void large_blocks_are_bounded(bool threaded)
{
    const size_t bound = threaded ? FM_TCACHE_LARGE_BYTES_THREADED : FM_TCACHE_LARGE_BYTES;
    make_my_cache();
    if (threaded)
        companion_start();
    enum { N = 200 };
    static void *p[N];
    for (int k = 0; k < N; k++) {
        p[k] = fm_heap_malloc(&heap, 60000);
        ck_assert_ptr_nonnull(p[k]);
    }
    size_t u = fm_heap_usable_size(&heap, p[0]);
    for (int k = 0; k < N; k++)
        fm_heap_free(&heap, p[k], "test");
    fm_tcache_settle(&heap);
    /* a list's worth (a block the engine left unsplit may sit in the next list) */
    struct fastmem_stats st = stats();
    ck_assert_uint_ge(st.cached, FM_TCACHE_LARGE_LIMIT * u);
    ck_assert_uint_le(st.cached, bound);
    ck_assert_uint_eq(st.live_blocks, 0);
    fm_heap_trim(&heap);
    /* many lists, twice the larger bound in all */
    free_large_spread((int)(2 * FM_TCACHE_LARGE_BYTES / 31000) + 1);
    st = stats();
    ck_assert_uint_le(st.cached, bound);
    ck_assert_uint_gt(st.cached, bound - 64 * 1024);
    ck_assert_uint_eq(st.live_blocks, 0);
    assert_sound();
    if (threaded)
        companion_stop();
}

ALONE_AND_THREADED(large_blocks_bounded, large_blocks_are_bounded, 256 * MiB)

/* A large malloc asks for a stride rounded up to where a list's range starts, 1088
 * bytes at least; a block of 1040-1072 (a calloc, a realloc or an aligned block of
 * about 1 KiB) fits no large request, so it goes back to the engine rather than into
 * a list nothing takes from.  Alone and with another thread (through the ring). */
static void smallest_large_strides_are_not_cached(bool threaded)
{
    make_my_cache();
    if (threaded)
        companion_start();
    for (size_t size = 1017; size <= 1064; size += 16) {
        char *p = fm_heap_calloc(&heap, size);
        ck_assert_ptr_nonnull(p);
        size_t u = fm_heap_usable_size(&heap, p);
        ck_assert_uint_lt(u + 8, 1088);
        ck_assert_uint_gt(u + 8, FM_TCACHE_MAX_STRIDE);
        uint64_t before = stats().cached;
        fm_heap_free(&heap, p, "test");
        fm_tcache_settle(&heap);
        ck_assert_uint_eq(stats().cached, before);
        char *q = fm_heap_malloc(&heap, size); /* what a large malloc takes: 1088 */
        ck_assert_uint_ge(fm_heap_usable_size(&heap, q) + 8, 1088);
        fm_heap_free(&heap, q, "test");
        fm_tcache_settle(&heap);
        ck_assert_uint_eq(stats().cached, before + fm_heap_usable_size(&heap, q));
        fm_heap_trim(&heap);
    }
    assert_sound();
    if (threaded)
        companion_stop();
}

ALONE_AND_THREADED(smallest_large_strides_not_cached, smallest_large_strides_are_not_cached, 64 * MiB)

/* A large malloc whose list is empty takes a block from the FM_TCACHE_LARGE_UP lists
 * above it (a block at most that many ranges larger), before the engine; not from a
 * list further up, nor from a list below.  Alone and with another thread (the locked
 * path). */
static void large_malloc_looks_up(bool threaded)
{
    make_my_cache();
    if (threaded)
        companion_start();
    /* ranges of 4-8 KiB are FM_TCACHE_LARGE_RANGES to the doubling: 4096/16 = 256 */
    const size_t step = 4096 / FM_TCACHE_LARGE_RANGES, top = 7680;
    for (size_t k = 0; k <= FM_TCACHE_LARGE_UP + 1; k++) {
        char *p = fm_heap_malloc(&heap, top - 8);
        ck_assert_ptr_nonnull(p);
        size_t u = fm_heap_usable_size(&heap, p);
        ck_assert_uint_eq(u + 8, top);
        memset(p, (int)k + 1, u);
        fm_heap_free(&heap, p, "test");
        fm_tcache_settle(&heap);
        ck_assert_uint_eq(stats().cached, u);
        /* k ranges below p's, and one byte past the start of the range under that,
         * so that the request rounds up to the range k below */
        size_t want = top - k * step - step + 1 - 8;
        char *q = fm_heap_malloc(&heap, want);
        ck_assert_ptr_nonnull(q);
        if (k <= FM_TCACHE_LARGE_UP) {
            ck_assert_ptr_eq(q, p);
            ck_assert_uint_eq(fm_heap_usable_size(&heap, q), u);
            ck_assert_uint_eq(stats().cached, 0);
            ck_assert_uint_eq(stats().in_use, u);
            /* written before it was freed (but for the list's two words) */
            for (size_t i = 2 * sizeof(void *); i < u; i++)
                ck_assert_int_eq(q[i], (int)k + 1);
        } else {
            ck_assert_ptr_ne(q, p);
            ck_assert_uint_eq(stats().cached, u);
            ck_assert_uint_lt(fm_heap_usable_size(&heap, q), u);
        }
        char *r = fm_heap_malloc(&heap, top + 4 * step); /* above p's range: never p */
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_ne(r, p);
        fm_heap_free(&heap, r, "test");
        fm_heap_free(&heap, q, "test");
        fm_tcache_settle(&heap);
        fm_heap_trim(&heap);
        ck_assert_uint_eq(stats().cached, 0);
    }
    assert_sound();
    if (threaded)
        companion_stop();
}

ALONE_AND_THREADED(large_malloc_takes_from_the_lists_above, large_malloc_looks_up, 64 * MiB)

START_TEST(double_free_of_cached_large_block_aborts)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    void *p = fm_heap_malloc(&heap, 3000);
    fm_heap_free(&heap, p, "free");
    fm_heap_free(&heap, p, "free");
}
END_TEST

/* A large list full (FM_TCACHE_LARGE_LIMIT blocks): the next free of its size goes to
 * the engine, and a block the list holds, freed again, must die there. */
START_TEST(double_free_into_full_large_list_aborts)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    void *p[FM_TCACHE_LARGE_LIMIT + 1];
    for (int k = 0; k <= FM_TCACHE_LARGE_LIMIT; k++)
        p[k] = fm_heap_malloc(&heap, 3000);
    for (int k = 0; k <= FM_TCACHE_LARGE_LIMIT; k++)
        fm_heap_free(&heap, p[k], "free");
    fm_heap_free(&heap, p[2], "free");
}
END_TEST

/* A pointer into a large block is no block: it never reaches a list. */
START_TEST(pointer_into_large_block_aborts)
{
    open_heap(_i, 64 * MiB);
    make_my_cache();
    char *p = fm_heap_malloc(&heap, 3000);
    memset(p, 0, 3000);
    fm_heap_free(&heap, p + 1024, "free");
}
END_TEST

/* Threads that fill their caches and wait (while more than one thread runs, a
 * cache's lists are filled and emptied in batches: the counts below hold either way). */
enum { THREADS = 4 };
static pthread_barrier_t filled, release_threads;

static void *fill_cache_and_wait(void *arg)
{
    (void)arg;
    void *p[64][8];
    for (int c = 0; c < 62; c++)
        for (int k = 0; k < 8; k++)
            p[c][k] = fm_heap_malloc(&heap, 24 + (size_t)c * 16);
    for (int c = 0; c < 62; c++)
        for (int k = 0; k < 8; k++)
            fm_heap_free(&heap, p[c][k], "test");
    pthread_barrier_wait(&filled);
    pthread_barrier_wait(&release_threads);
    return NULL;
}

/* Start THREADS threads running fn, which fills something and waits at both
 * barriers, and wait until they have filled it. */
static void start_holders(pthread_t *t, void *(*fn)(void *))
{
    pthread_barrier_init(&filled, NULL, THREADS + 1);
    pthread_barrier_init(&release_threads, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    pthread_barrier_wait(&filled);
}

/* Start THREADS threads that fill their caches, and wait until they have. */
static void start_cache_holders(pthread_t *t)
{
    start_holders(t, fill_cache_and_wait);
}

/* Blocks of 4000 bytes into blk until ENOMEM; their number in *n, their usable bytes
 * returned. */
static size_t fill_to_the_cap(void **blk, size_t *n)
{
    size_t usable = 0;
    *n = 0;
    while ((blk[*n] = fm_heap_malloc(&heap, 4000)) != NULL) {
        usable += fm_heap_usable_size(&heap, blk[*n]);
        ++*n;
    }
    ck_assert_int_eq(errno, ENOMEM);
    return usable;
}

/* The holders let go and joined, blk's n blocks freed and the heap trimmed: nothing
 * live, nothing cached, the heap sound. */
static void let_go_and_empty(pthread_t *t, void **blk, size_t n)
{
    pthread_barrier_wait(&release_threads);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < n; i++)
        fm_heap_free(&heap, blk[i], "test");
    fm_heap_trim(&heap);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.cached, 0);
    assert_sound();
}

/* With four threads holding full caches and a batch in the depot, one thread can
 * still fill the heap to the cap: the caches and the depot are flushed before ENOMEM. */
START_TEST(cap_exact_with_threads_holding_caches)
{
    const size_t cap = 8 * MiB;
    open_heap(_i, cap);
    pthread_t t[THREADS];
    start_cache_holders(t);
    leave_a_batch_in_the_depot();
    struct fastmem_stats st = stats();
    ck_assert_uint_ge(st.cached, THREADS * 62 * 8 * 24 + FM_TCACHE_BATCH * 200);
    ck_assert_uint_eq(st.live_blocks, 0);
    static void *blk[1 << 14];
    size_t n;
    size_t usable = fill_to_the_cap(blk, &n);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_ge(usable, cap / 100 * 97);
    let_go_and_empty(t, blk, n);
}
END_TEST

/* Threads that each free twice a thread's large bound of large blocks over many lists
 * into their caches, and wait to be let go. */
enum { SHARERS = 12, SHARER_BLOCKS = (int)(2 * FM_TCACHE_LARGE_BYTES_THREADED / 31000) + 1 };
static pthread_barrier_t shared_made, shared_filled, shared_release;

static void *free_large_and_wait(void *arg)
{
    (void)arg;
    make_my_cache();
    pthread_barrier_wait(&shared_made); /* every cache made: the share is the final one */
    free_large_spread(SHARER_BLOCKS);
    pthread_barrier_wait(&shared_filled);
    pthread_barrier_wait(&shared_release);
    return NULL;
}

/* With many threads, the large blocks their caches hold share FM_TCACHE_LARGE_BUDGET:
 * twelve threads (with this one, thirteen caches; the companion that gives the
 * process threads from the start makes none) that each free twice the 4 MiB a thread
 * may hold keep no more than the budget in all, where four MiB each would be 48 MiB,
 * and still most of it; once they have exited, one thread again keeps its 4 MiB. */
START_TEST(large_blocks_share_a_budget_across_threads)
{
    open_heap(_i, 256 * MiB);
    make_my_cache();
    companion_start();
    ck_assert_uint_gt(SHARERS * FM_TCACHE_LARGE_BYTES_THREADED, FM_TCACHE_LARGE_BUDGET);
    const size_t share = FM_TCACHE_LARGE_BUDGET / (SHARERS + 1);
    pthread_t t[SHARERS];
    pthread_barrier_init(&shared_made, NULL, SHARERS + 1);
    pthread_barrier_init(&shared_filled, NULL, SHARERS + 1);
    pthread_barrier_init(&shared_release, NULL, SHARERS + 1);
    for (int i = 0; i < SHARERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, free_large_and_wait, NULL), 0);
    pthread_barrier_wait(&shared_made);
    pthread_barrier_wait(&shared_filled);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    /* small blocks: each thread's first miss left a batch of one small stride */
    const size_t small = (SHARERS + 1) * FM_TCACHE_DEEP * FM_TCACHE_MAX_STRIDE;
    ck_assert_uint_le(st.cached, FM_TCACHE_LARGE_BUDGET + small);
    ck_assert_uint_le(st.cached, SHARERS * share + small);
    ck_assert_uint_gt(st.cached, SHARERS * (share - 64 * 1024));
    pthread_barrier_wait(&shared_release);
    for (int i = 0; i < SHARERS; i++)
        pthread_join(t[i], NULL);
    fm_heap_trim(&heap);
    ck_assert_uint_eq(stats().cached, 0);
    /* this thread's cache alone (the process still has threads): a thread's full bound */
    free_large_spread(SHARER_BLOCKS);
    st = stats();
    ck_assert_uint_le(st.cached, FM_TCACHE_LARGE_BYTES_THREADED);
    ck_assert_uint_gt(st.cached, FM_TCACHE_LARGE_BYTES_THREADED - 64 * 1024);
    fm_heap_trim(&heap);
    assert_sound();
    companion_stop();
    pthread_barrier_destroy(&shared_made);
    pthread_barrier_destroy(&shared_filled);
    pthread_barrier_destroy(&shared_release);
}
END_TEST

/* Threads that free blocks and keep them waiting in their rings (fewer than a ring
 * holds), then wait to be let go. */
enum { WAITING = FM_TCACHE_RING - 3 };

static void *free_into_ring_and_wait(void *arg)
{
    (void)arg;
    void *p[WAITING];
    for (int k = 0; k < WAITING; k++)
        p[k] = fm_heap_malloc(&heap, 500); /* a small miss makes the thread's cache */
    for (int k = 0; k < WAITING; k++)
        fm_heap_free(&heap, p[k], "test");
    pthread_barrier_wait(&filled);
    pthread_barrier_wait(&release_threads);
    return NULL;
}

/* The cap stays exact with frees waiting in other threads' rings: ENOMEM's flush
 * settles them, to the engine, before anyone is refused. */
START_TEST(cap_exact_with_frees_waiting_in_rings)
{
    const size_t cap = 8 * MiB;
    open_heap(_i, cap);
    pthread_t t[THREADS];
    start_holders(t, free_into_ring_and_wait);
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_ge(st.cached, THREADS * WAITING * 504);
    ck_assert_uint_eq(st.calls_free, THREADS * WAITING);
    static void *blk[1 << 14];
    size_t n;
    size_t usable = fill_to_the_cap(blk, &n);
    ck_assert_uint_ge(usable, cap / 100 * 97);
    st = stats();
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.calls_free, THREADS * WAITING);
    let_go_and_empty(t, blk, n);
}
END_TEST

enum { EXIT_FREES = 2 * FM_TCACHE_RING + 5 }; /* 5 still waiting in the ring at exit */

static void *fill_cache_and_exit(void *arg)
{
    (void)arg;
    void *p[EXIT_FREES];
    for (int k = 0; k < EXIT_FREES; k++)
        p[k] = fm_heap_malloc(&heap, 16 + (size_t)k * 8);
    for (int k = 0; k < EXIT_FREES; k++)
        fm_heap_free(&heap, p[k], "test");
    return NULL;
}

START_TEST(thread_exit_returns_its_cache)
{
    open_heap(_i, 64 * MiB);
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        pthread_create(&t, NULL, fill_cache_and_exit, NULL);
        pthread_join(t, NULL);
        struct fastmem_stats st = stats();
        TU_REQUIRE(st.cached == 0 && st.live_blocks == 0 && st.in_use == 0,
                   "round %d: cached %llu, live %llu", round, (unsigned long long)st.cached,
                   (unsigned long long)st.live_blocks);
        TU_REQUIRE(st.calls_free == (uint64_t)(round + 1) * EXIT_FREES, "round %d: frees %llu", round,
                   (unsigned long long)st.calls_free);
    }
    assert_sound();
}
END_TEST

/* A thread that allocates and frees more than its list holds, its first batch going
 * to the depot, and exits. */
static void *fill_depot_and_exit(void *arg)
{
    (void)arg;
    for (int k = 0; k < GIVEN; k++)
        given[k] = fm_heap_malloc(&heap, 200);
    for (int k = 0; k < GIVEN; k++)
        fm_heap_free(&heap, given[k], "test");
    return NULL;
}

/* The depot's batches are for the caches: when the last cache goes (its thread
 * exits), they go back to the engine too, or they would stay cached for nobody. */
START_TEST(depot_goes_back_with_the_last_cache)
{
    open_heap(_i, 64 * MiB);
    for (int round = 0; round < 5; round++) {
        pthread_t t;
        pthread_create(&t, NULL, fill_depot_and_exit, NULL);
        pthread_join(t, NULL);
        struct fastmem_stats st = stats();
        TU_REQUIRE(st.cached == 0 && st.live_blocks == 0 && st.in_use == 0,
                   "round %d: cached %llu, live %llu", round, (unsigned long long)st.cached,
                   (unsigned long long)st.live_blocks);
    }
    assert_sound();
}
END_TEST

static void *churn(void *arg);

/* fork while other threads hold caches: the child's heap has none of theirs, can run
 * threads of its own, and can fill to the cap. */
START_TEST(fork_while_threads_hold_caches)
{
    const size_t cap = 8 * MiB;
    open_heap(_i, cap);
    pthread_t t[THREADS];
    start_cache_holders(t);
    fm_heap_prefork(&heap);
    pid_t pid = fork();
    if (pid == 0) {
        fm_heap_postfork_child(&heap);
        struct fastmem_stats st = stats();
        if (st.cached != 0 || st.live_blocks != 0 || fm_heap_check(&heap) != NULL)
            _exit(1);
        /* The child starts a thread of its own, whose batches pass through the depot
         * (its lock was held across the fork, and is free in the child). */
        pthread_t worker;
        void *r = (void *)1;
        if (pthread_create(&worker, NULL, churn, (void *)7) != 0 || pthread_join(worker, &r) != 0 ||
            r != NULL)
            _exit(3);
        size_t usable = 0;
        void *p;
        while ((p = fm_heap_malloc(&heap, 4000)) != NULL)
            usable += fm_heap_usable_size(&heap, p);
        _exit(usable >= cap / 100 * 97 && fm_heap_check(&heap) == NULL ? 0 : 2);
    }
    fm_heap_postfork_parent(&heap);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    ck_assert_uint_gt(stats().cached, 0); /* the parent's threads still hold theirs */
    pthread_barrier_wait(&release_threads);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(stats().cached, 0);
    assert_sound();
}
END_TEST

static void *churn(void *arg)
{
    uint64_t rng = 17 + (uint64_t)(uintptr_t)arg;
    enum { SLOTS = 128 };
    unsigned char *p[SLOTS] = {0};
    size_t n[SLOTS] = {0};
    for (long k = 0; k < 200000; k++) {
        size_t i = tu_rand(&rng) % SLOTS;
        if (p[i]) {
            if (tu_verify(p[i], n[i], (uint32_t)i) != n[i])
                return (void *)1;
            fm_heap_free(&heap, p[i], "test");
        }
        n[i] = 1 + tu_rand(&rng) % 1500;
        p[i] = fm_heap_malloc(&heap, n[i]);
        if (p[i] == NULL)
            return (void *)2;
        tu_fill(p[i], n[i], (uint32_t)i);
    }
    for (size_t i = 0; i < SLOTS; i++)
        fm_heap_free(&heap, p[i], "test");
    return NULL;
}

START_TEST(threads_churn_with_caches)
{
    open_heap(_i, 256 * MiB);
    pthread_t t[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.cached, 0); /* the threads exited */
    ck_assert_uint_eq(st.calls_malloc, st.calls_free);
    assert_sound();
}
END_TEST

static void flush_caches(struct fm_heap *h, void *arg)
{
    (void)arg;
    fm_tcache_flush_all(h);
}

static _Atomic int churners_done;

static void *churn_and_count(void *arg)
{
    void *r = churn(arg);
    atomic_fetch_add(&churners_done, 1);
    return r;
}

/* The owners' fast path has no locked instruction: another thread takes their caches
 * by seizing them (lock.h).  Threads churn and check their data while this thread
 * seizes every cache again and again, to read the statistics and to flush them, as
 * ENOMEM and fork do: no block may be lost, handed out twice or damaged. */
START_TEST(seizing_caches_while_threads_churn)
{
    open_heap(_i, 256 * MiB);
    pthread_t t[THREADS];
    atomic_store(&churners_done, 0);
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn_and_count, (void *)i);
    while (atomic_load(&churners_done) < THREADS) {
        struct fastmem_stats st = stats();
        ck_assert_uint_le(st.cached, st.committed);
        fm_heap_with_lock(&heap, flush_caches, NULL);
    }
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    struct fastmem_stats st = stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.calls_malloc, st.calls_free);
    assert_sound();
}
END_TEST

/* qm must see every free (to check it) and sys has no pool: no cache in front, so a
 * freed block is back in the engine at once. */
START_TEST(no_caches_for_them)
{
    open_heap(_i, 16 * MiB);
    ck_assert(!heap.caches);
    void *p = fm_heap_malloc(&heap, 64);
    ck_assert_ptr_nonnull(p);
    fm_heap_free(&heap, p, "test");
    struct fastmem_stats st;
    fm_heap_stats(&heap, &st);
    ck_assert_uint_eq(st.cached, 0);
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.calls_free, 1);
}
END_TEST

#if defined(__SANITIZE_THREAD__)
static const bool one_thread_process = false;
#else
static const bool one_thread_process = true;
#endif

static Suite *tcache_suite(void)
{
    Suite *s = suite_create("tcache");
    /* The engines with caches in front come first; the rest (qm, sys) want every free
     * themselves: no_caches_for_them checks they get none. */
    int n = 0;
    while (fm_engines[n] && !fm_engines[n]->no_caches)
        n++;
    TCase *tc = tcase_create("caches");
    tcase_set_timeout(tc, 120);
    /* Under ThreadSanitizer the process always has a second thread (the sanitizer's
     * own), so the paths of a one-thread process are never taken there, and these
     * tests of them are left out (scripts/test.sh runs the rest under it); so is the
     * fork test, whose child starts a thread, which the sanitizer cannot follow
     * after a fork of a process with threads. */
    if (one_thread_process) {
        tcase_add_loop_test(tc, reuse_without_the_engine, 0, n);
        tcase_add_loop_test(tc, threaded_refill_populates_each_range_alone, 0, n);
        tcase_add_loop_test(tc, single_threaded_miss_takes_a_batch, 0, n);
        tcase_add_loop_test(tc, bouncing_list_holds_more, 0, n);
        tcase_add_loop_test(tc, lists_keep_their_limit_with_threads, 0, n);
        tcase_add_loop_test(tc, growing_heap_keeps_sizes_together, 0, n);
        tcase_add_loop_test(tc, full_lists_shed_when_pages_go_back, 0, n);
        tcase_add_loop_test(tc, large_lists_shed_when_pages_go_back, 0, n);
        tcase_add_loop_test(tc, single_threaded_refill_keeps_cap_exact, 0, n);
        tcase_add_loop_test(tc, cached_blocks_count_as_free_pool, 0, n);
        tcase_add_loop_test_raise_signal(tc, double_free_of_cached_block_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, double_free_into_full_list_single_threaded_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, double_free_into_full_large_list_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, forged_header_inside_a_block_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, forged_header_of_no_blocks_stride_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, forged_header_of_stride_zero_aborts, SIGABRT, 0, n);
        tcase_add_loop_test(tc, large_blocks_bounded, 0, n);
        tcase_add_loop_test(tc, smallest_large_strides_not_cached, 0, n);
        tcase_add_loop_test(tc, large_malloc_takes_from_the_lists_above, 0, n);
        tcase_add_loop_test_raise_signal(tc, double_free_of_cached_large_block_aborts, SIGABRT, 0, n);
        tcase_add_loop_test_raise_signal(tc, pointer_into_large_block_aborts, SIGABRT, 0, n);
        tcase_add_loop_test(tc, fork_while_threads_hold_caches, 0, n);
    }
    tcase_add_loop_test(tc, refill_stops_at_a_hole_of_another_stride, 0, n);
    tcase_add_loop_test(tc, miss_takes_a_batch, 0, n);
    tcase_add_loop_test(tc, full_list_gives_back_a_batch, 0, n);
    tcase_add_loop_test(tc, full_lists_shed_when_pages_go_back_threaded, 0, n);
    tcase_add_loop_test(tc, large_lists_shed_when_pages_go_back_threaded, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_into_full_list_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, realloc_of_cached_block_aborts, SIGABRT, 0, n);
    tcase_add_loop_test(tc, depot_passes_batches_between_threads, 0, n);
    tcase_add_loop_test(tc, allocating_thread_gets_a_cache, 0, n);
    tcase_add_loop_test(tc, thread_at_the_cap_gets_a_cache_later, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_of_depot_block_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_of_restocked_block_aborts, SIGABRT, 0, n);
    tcase_add_loop_test(tc, large_blocks_reused_without_the_engine, 0, n);
    tcase_add_loop_test(tc, large_blocks_bounded_threaded, 0, n);
    tcase_add_loop_test(tc, smallest_large_strides_not_cached_threaded, 0, n);
    tcase_add_loop_test(tc, large_malloc_takes_from_the_lists_above_threaded, 0, n);
    tcase_add_loop_test(tc, large_blocks_share_a_budget_across_threads, 0, n);
    tcase_add_loop_test(tc, cap_exact_with_threads_holding_caches, 0, n);
    tcase_add_loop_test(tc, cap_exact_with_frees_waiting_in_rings, 0, n);
    tcase_add_loop_test(tc, ring_frees_count_at_once_and_settle_at_a_miss, 0, n);
    tcase_add_loop_test_raise_signal(tc, ring_reports_a_double_free, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, ring_reports_a_pointer_into_a_block, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, ring_reports_a_forged_header_of_no_blocks_stride, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, realloc_of_block_waiting_in_ring_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_across_threads_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_across_threads_through_a_ring_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, double_free_of_large_block_across_threads_aborts, SIGABRT, 0, n);
    tcase_add_loop_test_raise_signal(tc, realloc_across_threads_of_cached_block_aborts, SIGABRT, 0, n);
    tcase_add_loop_test(tc, key_in_data_is_no_double_free, 0, n);
    tcase_add_loop_test(tc, idle_threads_ring_is_settled_before_the_pool_grows, 0, n);
    tcase_add_loop_test(tc, frees_being_settled_stay_visible, 0, n);
    tcase_add_loop_test(tc, engine_hands_out_no_mark, 0, n);
    tcase_add_loop_test(tc, thread_exit_returns_its_cache, 0, n);
    tcase_add_loop_test(tc, depot_goes_back_with_the_last_cache, 0, n);
    tcase_add_loop_test(tc, threads_churn_with_caches, 0, n);
    tcase_add_loop_test(tc, seizing_caches_while_threads_churn, 0, n);
    tcase_add_loop_test(tc, no_caches_for_them, n, (int)fm_engine_count());
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(tcache_suite());
}
