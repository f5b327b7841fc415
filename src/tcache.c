/* tcache.c: per-thread caches of small free blocks in front of the private heap.
 *
 * Each thread keeps, for each block stride from 32 to 1024 bytes, a short LIFO list
 * of blocks it freed (at most LIMIT).  malloc of a size whose stride has one pops it
 * without touching the heap's lock or the engine; free of such a block pushes it.
 * Cached blocks stay allocated as far as the engine is concerned, so they count
 * against the cap like any block, and the engines behind (both of them) are unchanged.
 *
 * Batches.  The heap's lock is taken once per BATCH blocks, not once per block, when
 * a thread allocates more than it frees or the reverse (a producer and a consumer): a
 * malloc that misses takes BATCH blocks of its stride from the engine and keeps the
 * rest for the next calls (fm_tcache_stock), and a free that finds its list full gives
 * the BATCH oldest blocks of the list back (fm_tcache_push_flush).  Those go back
 * sorted by address, lowest first: a block freed right after the block before it is
 * joined to it with one size update (block.h), so a structure torn down in allocation
 * order costs the engine what it cost without the caches, where blocks given back in
 * list order (newest first) would each be joined to the block after them, an unlink
 * and an insert.  For the same reason a refill's blocks are handed out lowest first.
 * A batch is handed out over the calls that follow, and between them go the blocks of
 * every other size the program asks for: a single-threaded program building up its
 * heap session by session (a request's or a connection's blocks, allocated together
 * and freed together) would find each session's blocks spread over the batches, and a
 * session freed later leaves holes between the other sessions' blocks, no run that
 * can go back to the kernel (bench/README, release: 235 of 263 MiB stayed resident
 * after nine sessions in ten were freed).  So while the process has one thread and
 * the pool has few free blocks (it grows at its end), a miss of a size takes one
 * block if the thread has freed nothing since the size's last miss
 * (fm_tcache_refill_batch): blocks come from the engine in the order they are asked
 * for, one after another.  Even batches of two kept 148 MiB of that heap resident
 * instead of 78.  A size that misses BATCH_AFTER times in a row, no other size
 * missing in between (a program allocating many blocks of one size), takes batches
 * again (its batches are handed out together anyway), and so does any miss after a
 * free, and any miss in a pool with holes: there a batch is cut from a hole in one
 * visit where single blocks would cost a search and a cache miss each (the fragment
 * workload, which fills the holes of a heap three quarters freed, took 40% longer
 * that way), and the holes lie wherever earlier frees left them anyway.  With
 * threads, a miss always takes a batch, one acquisition of a lock the others want.
 *
 * Depth.  A list's bounds cost engine visits: a free that finds it full sends a
 * block to the engine (with one thread) and a malloc that finds it empty refills.  A
 * program that churns a size, freeing and allocating it in random order, walks the
 * list's length up and down at random, and the longer the list, the rarer a walk
 * reaches either end.  So with one thread a small list that overflowed since its
 * last miss is deepened at that miss to FM_TCACHE_DEEP (twice LIMIT), and keeps that
 * depth until it is shed; a list that only overflows (a teardown) or only misses (a
 * heap being built) keeps LIMIT, and so do the memory they hold and the refill's
 * batch.  churn: 48.0 -> 45.3 allocator instructions a call (callgrind), the
 * release workload's RSS unchanged (bench/README).  A deepened list of a small
 * stride holds up to FM_TCACHE_DEEP_BYTES (16 KiB) of blocks instead, at most
 * FM_TCACHE_DEEP_MAX (128): strides up to 128 bytes hold 128, 144-240 between 113
 * and 68, the rest DEEP.  Most calls are of small sizes, and a list's overflows
 * go as one over its depth: churn's frees into full lists 46,600 -> 23,900, its
 * instructions a call 42.4 -> 41.5, for at most ~65 KiB more held by a thread (128
 * for every small list did as well, 41.4, but doubles what a thread's small lists
 * may hold, ~2.1 -> ~4.3 MiB).  With threads a miss leaves the
 * list at LIMIT: there a full list's oldest batch goes to the depot in one step, not
 * block by block to the engine, so depth buys less (deepening with threads too moved
 * larson by 1.4% of its instructions and its time and prodcons' within noise).
 *
 * Shedding.  A cached block is live to the engine, so one cached inside a free run
 * splits it, and the run's pages cannot go back; a thousand cached blocks spread over
 * a heap whose program freed most of it keep most of it resident, and with one thread
 * a full list never changes (a free into it goes to the engine).  So when the engine
 * gives pages back (MEMRELEASE), a one-thread process's cache sheds, at the next free
 * that reaches the engine (heap.c, shed): its full lists, the ones more was freed into
 * than taken from, go to the engine in address order, whole lists until SHED_BUDGET
 * blocks have gone (by default 64, so one shedding may take 191, the last list a
 * deepened one of 128), and each is closed (room 0) until its size misses again, so
 * frees of that size go to the engine meanwhile, as they did while the list was
 * full.  Large lists are shed whenever they hold a block: one large block keeps up to
 * 64 KiB of a run, and a list need not be full to hold many (shedding only full ones,
 * or all when the thread held its bound of large bytes, kept 78 MiB of the release
 * workload resident; shedding every one keeps 67, at the same latency and churn).  With
 * threads, the free that gave pages back sheds the depot's batches (the oldest frees
 * of full lists, spread like them), SHED_BUDGET blocks at a time, a stride after
 * another, and bumps the heap's shed_epoch;
 * each thread sheds its own lists at its next settling that sees the epoch moved
 * (its own cache, entered after the heap's lock, never seized from inside a flush),
 * and a closed list's frees stay in the ring for the heap's lock and the engine.
 *
 * The depot.  Between threads, a batch need not go through the engine at all: a full
 * list's oldest BATCH blocks go, still linked, into the heap's depot, and a thread
 * whose list is empty takes a whole batch from there before it asks the engine.  A
 * producer thread's refills are then its consumer's flushes, as tcmalloc's transfer
 * cache does it, instead of BATCH engine frees (joins) and BATCH engine mallocs
 * (splits) under the heap's lock.  The depot has a lock of its own, held for a few
 * stores; lock order: a cache, then the depot (a batch moves between them inside the
 * cache's critical section, so no flush or statistics can miss it in between).  It
 * holds at most DEPOT_SLOTS batches of a size and DEPOT_BYTES in all; past that,
 * batches go to the engine as before, so a structure torn down still reaches the
 * engine in address order.  Its blocks are cached blocks: the statistics count them
 * so, and a flush of every cache (ENOMEM, malloc_trim) empties it, as does the exit of
 * the last thread with a cache: nothing would take its batches then.
 *
 * The cap stays exact: before the heap refuses a request with ENOMEM it flushes every
 * thread's cache back to the engine and tries again.  A thread that exits flushes its
 * cache (a pthread key destructor); fork flushes, in the child, the caches of the
 * threads that do not exist there.
 *
 * Locking.  A cache is its owner's, except when another thread flushes it (ENOMEM,
 * fork, statistics), so each has an owned lock (lock.h): while the process has more
 * than one thread, the owner goes in and out with two plain stores and a load, and a
 * thread that flushes the caches seizes them all, with one membarrier(2) for the lot.
 * Lock order: the heap's lock, then the registry's, then a cache's, then the depot's.
 * The fast paths take only their cache's (and the depot's), and never take the heap's
 * lock while holding them.
 *
 * Double free.  A cached block carries this process's key in its second word; freeing
 * a block that carries it makes the owner search its own list for it, as glibc's
 * tcache does, and then the depot's batches of its size.  No block the program holds
 * carries the key: every cache pop clears it, and so does the heap when the engine
 * hands a block out (heap.c, handed_out), so the mark is only found on a block freed
 * twice, or on one whose data happen to hold the key (a program that copied freed
 * memory).  While the process has threads, the copy may be in another thread's cache
 * or ring: a marked block that settling finds in none of its own thread's lists is
 * looked for in every cache, all of them seized for the look (held_anywhere), and a
 * block found is a double free across threads; one found nowhere was data, and its
 * mark is cleared.  Not caught: a block the other thread has handed out again since
 * (it is live, and carries no mark), as with any allocator.
 *
 * Fast paths.  malloc and free of a cached size are inlined into the exported names
 * (tcache.h): one thread-local read finds the cache, and while the process has one
 * thread a hit is a few loads and stores with no call at all.  free checks the
 * pointer inline before a block joins a list (pool_cacheable, pool.h: the size
 * word's check bits, which the engine wrote when it handed the block out), so a
 * pointer the heap never handed out never reaches a cache: it goes to the slow path,
 * which reports it exactly as before.  Every other case leaves by a tail call to the
 * function that finishes it.
 *
 * Large blocks.  Strides above 1 KiB, up to FM_TCACHE_LARGE_MAX, are cached too: a
 * program that churns a few KiB blocks would otherwise pay the engine (a list search,
 * a split, a join) for each.  They are listed by range, sixteen ranges per doubling,
 * a block in the range its stride falls in (rounded down); a large malloc while the
 * thread has a cache rounds its request up to where a range starts, looks in that
 * range's list, and on a miss asks the engine for exactly that, so the head of the
 * list always fits and the block goes back to the list it will be looked for in.
 * The rounding costs at most 1/16 of a block (the engine's own split rule already
 * leaves up to 1/8).  So the first list a large malloc looks in starts at 1088, and
 * a block of a stride between 1 KiB and that (from calloc, realloc or memalign, which
 * take strides as they come) is not cached: no malloc would take it from its list.
 * A malloc whose list is empty takes the head of the next list up
 * (FM_TCACHE_LARGE_UP lists, 1) before the engine: a block at most two ranges, 1/8,
 * larger than asked.  With ~2 blocks a list (then 4 MiB over 48 ranges, churn),
 * the lists ran dry often: churn's engine visits for large mallocs 67,500 -> 27,300
 * (17,000 looking two up, 10,700 four), its instructions a call 44.5 -> 42.4, RSS
 * in fragment and release unchanged.
 * A thread holds at most FM_TCACHE_LARGE_LIMIT (32) blocks of a range and
 * FM_TCACHE_LARGE_BYTES (8 MiB) of large blocks in all, or while the process has
 * threads FM_TCACHE_LARGE_BYTES_THREADED (4 MiB) each (a ring's settling checks that:
 * below); they count against the cap and are flushed like the rest.  The byte bound
 * is what limits the memory, and it is what a churn of large blocks meets: with 4 MiB
 * and 16 a range, churn's large calls reached the engine 54,500 times, and each such
 * visit costs cache misses (the joins and list links of blocks kilobytes apart) that
 * its ~200 instructions do not show.  8 MiB and 32 a range: the latency loop's large
 * engine visits 12,100 -> 3,000, churn's time a call 32.7 -> 26.6 ns (tlsf; fm 33.3
 * -> 30.8, 9 interleaved runs), 41.6 -> 40.5 instructions, fragment's RSS unchanged
 * and release's 1.2 MiB higher after its frees (bench/README).  8 MiB with 16 a range
 * got less (the smaller ranges' lists filled), 16 MiB no more than 8 MiB.  That was
 * measured with one thread; with threads the memory it costs is paid once a thread,
 * so there a thread keeps the 4 MiB it had, and all the caches together share
 * FM_TCACHE_LARGE_BUDGET (32 MiB, tcmalloc's default for all its thread caches): past
 * eight caches each may hold the budget over their number, down to
 * FM_TCACHE_LARGE_SHARE_MIN (256 KiB, past 128), so a service of a hundred threads
 * does not keep 400 MiB of freed buffers.  The share changes as caches are made and
 * retired (set_large_share, under the registry's lock) and settling reads it; a cache
 * that holds more than its share (from before its process had threads, or before
 * more threads came) goes down to it as its blocks are taken, since only its owner
 * may take them, and any cache gives all back at ENOMEM.  Their bytes are counted as
 * they come and go, the one counter a hit updates beside the list.
 *
 * The ring.  While the process has threads, free does not read the block at all: it
 * notes the pointer (checked to lie in the pool, aligned) in its thread's ring, and
 * every RING frees, or at the thread's next miss, the ring is settled: each block's
 * header, prefetched when its free was noted, is checked (pool_cacheable, the cached
 * mark) and the block pushed on its list, or sent on as a free of it would have
 * been.  A
 * block freed by another thread than the one that wrote it has its header in a cache
 * line that thread holds; read at once, as a free must to know the size, each such
 * free waited for the line alone (larson, prodcons), and settled together the waits
 * overlap.  What changes for the program is when a bad free is reported: a double
 * free or a pointer that is no block dies when its ring is settled, at most RING
 * frees later, at the thread's next miss, malloc_trim, ENOMEM or thread exit, naming
 * the pointer as before (as "free"); statistics count a waiting free as done and its
 * block as cached.  One thread alone never uses the ring: its frees are checked at
 * the call, as the debugging engine's are.
 * A block in a ring is still live to the engine and counts against the cap; every
 * flush settles the rings it seizes, to the engine.  Settling does what the caches
 * can take inside the cache's critical section (a full list's oldest batch goes to
 * the depot there, a large block within the bounds to its list); the frees that need
 * the heap's lock (a full depot, a block over the bounds, a block marked or refused)
 * stay in the ring until that lock is held, so that a flush, fork or the statistics,
 * which all hold it, never miss a free the program has made.  A block waits there
 * whatever its size (its size is what the ring does not read): a thread that frees a
 * large buffer and then sleeps holds it until one of the above, or until the pool
 * would grow: before the heap commits more memory, every thread's ring is settled, to
 * the engine (fm_tcache_release_rings, one membarrier for a growth of an eighth of
 * the pool at least), so a buffer freed there is reused instead of added to.
 * (Looking at each block's size a few frees later, its header prefetched by then,
 * would bound the wait to a few frees; it cost larson ~4% and still leaves a sleeping
 * thread's last frees held.)
 *
 * Counting.  A hit stores only what it must: the list head and its length, and a
 * free (or calloc) counts itself.  What a cache holds is derived from the list
 * lengths, and the mallocs it served from the rest (held_by), when statistics are
 * asked for.
 */
#include "tcache.h"
#include "diag.h"
#include "heap.h"
#include "os.h"

#include <pthread.h>
#include <string.h>

enum { NCLASS = FM_TCACHE_NCLASS, NSMALL = FM_TCACHE_NSMALL, LIMIT = FM_TCACHE_LIMIT,
       BATCH = FM_TCACHE_BATCH, RING = FM_TCACHE_RING, SHED_BUDGET = FM_TCACHE_SHED_BUDGET,
       BATCH_AFTER = 3, FEW_HOLES = 64 };
_Static_assert(FM_TCACHE_NCLASS <= 255, "shed_next is a byte");
_Static_assert(RING >= 1 && RING <= 255, "ring out of range");
_Static_assert(FM_TCACHE_LARGE_LIMIT >= 1 && FM_TCACHE_LARGE_LIMIT <= 255, "large limit out of range");
_Static_assert(FM_TCACHE_LARGE_BYTES_THREADED <= FM_TCACHE_LARGE_BYTES, "a thread's bound only shrinks with threads");
_Static_assert(FM_TCACHE_LARGE_SHARE_MIN <= FM_TCACHE_LARGE_BYTES_THREADED &&
                   FM_TCACHE_LARGE_SHARE_MIN >= FM_TCACHE_LARGE_MAX,
               "a share holds at least one large block, and no more than a thread's bound");
_Static_assert(BATCH >= 1 && BATCH <= LIMIT && LIMIT <= 255, "batch and limit out of range");
_Static_assert(FM_TCACHE_DEEP >= LIMIT && FM_TCACHE_DEEP_MAX >= FM_TCACHE_DEEP && FM_TCACHE_DEEP_MAX <= 255,
               "depth out of range");

__thread struct fm_tcache *fm_tcache_mine __attribute__((tls_model("initial-exec")));
__thread int fm_tcache_state __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
void *fm_tcache_key; /* the double-free mark, random per process */

/* Registry lock held, h->tc_count just changed: each cache's share of the budget for
 * large blocks (read without the lock by settling: one whole word). */
static void set_large_share(struct fm_heap *h)
{
    size_t share = FM_TCACHE_LARGE_BUDGET / (h->tc_count ? h->tc_count : 1);
    if (share > FM_TCACHE_LARGE_BYTES_THREADED)
        share = FM_TCACHE_LARGE_BYTES_THREADED;
    if (share < FM_TCACHE_LARGE_SHARE_MIN)
        share = FM_TCACHE_LARGE_SHARE_MIN;
    __atomic_store_n(&h->tc_large_share, share, __ATOMIC_RELAXED);
}

/* The list a live block of stride s goes to (small or large), or 0 if none. */
static inline size_t class_of(size_t s)
{
    return s <= FM_TCACHE_MAX_STRIDE ? s >> 4 : s <= FM_TCACHE_LARGE_MAX ? fm_tcache_large_class(s) : 0;
}

/* Whether block p, if it carries the cached mark, is already in list c (a double
 * free, as glibc's tcache checks); a block freed and reused since only looks marked. */
static bool listed(const struct fm_tcache *tc, size_t c, void **p)
{
    if (p[1] != fm_tcache_key)
        return false;
    for (void **q = tc->head[c]; q; q = *q)
        if (q == p)
            return true;
    return false;
}

_Noreturn FM_COLD static void double_free(struct fm_tcache *tc, int how, const char *caller, void *p)
{
    fm_owned_leave(&tc->own, how);
    fm_die("%s(%p): double free: the block was already freed", caller, p);
}

/* Put block p at the head of list c, marked cached with key (fm_tcache_key: a loop
 * passes its copy). */
static inline void link_in_key(struct fm_tcache *tc, size_t c, void **p, void *key)
{
    p[0] = tc->head[c];
    p[1] = key;
    tc->head[c] = p;
    tc->count[c]++;
}

static inline void link_in(struct fm_tcache *tc, size_t c, void **p)
{
    link_in_key(tc, c, p, fm_tcache_key);
}

/* Whether tc's ring waits with p (its owner, or a thread that seized it, looking). */
static inline bool in_ring(const struct fm_tcache *tc, const void *p)
{
    for (unsigned i = 0; i < tc->nring; i++)
        if (tc->ring[i] == p)
            return true;
    return false;
}

/* ---------------------------------------------------------------- the depot */

enum { DEPOT_SLOTS = FM_TCACHE_DEPOT_SLOTS };
#define DEPOT_BYTES ((uint64_t)FM_TCACHE_DEPOT_BYTES)

struct fm_depot {
    fm_lock_t lock;                   /* its own: a batch in or out is a few stores */
    void *batch[NSMALL][DEPOT_SLOTS]; /* lists of blocks of one stride, linked by p[0] */
    uint8_t n[NSMALL];                /* batches of each stride */
    uint8_t shed_next;                /* the stride fm_tcache_shed_depot looks at first */
    uint8_t len[NSMALL][DEPOT_SLOTS]; /* blocks in each batch */
    uint64_t blocks, bytes;           /* what it holds (usable bytes) */
};

/* Keep the list of n blocks of stride class c at q; false if the depot is full. */
static bool depot_put(struct fm_heap *h, size_t c, void **q, size_t n)
{
    struct fm_depot *d = h->depot;
    uint64_t bytes = (uint64_t)n * ((c << 4) - OVERHEAD);
    if (d == NULL)
        return false;
    bool held = fm_lock_acquire_if_threaded(&d->lock);
    bool room = d->n[c] < DEPOT_SLOTS && d->bytes + bytes <= DEPOT_BYTES;
    if (room) {
        d->len[c][d->n[c]] = (uint8_t)n;
        d->batch[c][d->n[c]++] = q;
        d->blocks += n;
        d->bytes += bytes;
    }
    fm_lock_release_if(&d->lock, held);
    return room;
}

/* A batch of stride class c (a list, linked by p[0], its blocks still marked cached),
 * or NULL; *n is how many blocks it has. */
static void **depot_take(struct fm_heap *h, size_t c, size_t *n)
{
    struct fm_depot *d = h->depot;
    *n = 0;
    if (d == NULL)
        return NULL;
    void **q = NULL;
    bool held = fm_lock_acquire_if_threaded(&d->lock);
    if (d->n[c] > 0) {
        size_t i = --d->n[c];
        *n = d->len[c][i];
        d->blocks -= d->len[c][i];
        d->bytes -= (uint64_t)d->len[c][i] * ((c << 4) - OVERHEAD);
        q = d->batch[c][i];
    }
    fm_lock_release_if(&d->lock, held);
    return q;
}

/* Whether block p (of stride class c, carrying the cached mark) is in the depot. */
static bool depot_has(struct fm_heap *h, size_t c, const void *p)
{
    struct fm_depot *d = h->depot;
    if (d == NULL || c >= NSMALL)
        return false;
    bool found = false;
    bool held = fm_lock_acquire_if_threaded(&d->lock);
    for (size_t i = 0; i < d->n[c] && !found; i++)
        for (void **q = d->batch[c][i]; q && !found; q = *q)
            found = q == p;
    fm_lock_release_if(&d->lock, held);
    return found;
}

/* Heap lock held: every block of the depot back to the engine; true if it held any. */
static bool depot_drain(struct fm_heap *h)
{
    struct fm_depot *d = h->depot;
    if (d == NULL)
        return false;
    bool held = fm_lock_acquire_if_threaded(&d->lock);
    bool any = d->blocks != 0;
    for (size_t c = 0; c < NSMALL; c++) {
        while (d->n[c] > 0) {
            void **q = d->batch[c][--d->n[c]];
            while (q) {
                void **next = *q;
                fm_heap_release_cached(h, q);
                q = next;
            }
        }
    }
    d->blocks = d->bytes = 0;
    fm_lock_release_if(&d->lock, held);
    return any;
}

/* What the depot holds (usable bytes), for the statistics. */
static void depot_held(struct fm_heap *h, uint64_t *blocks, uint64_t *bytes)
{
    struct fm_depot *d = h->depot;
    *blocks = *bytes = 0;
    if (d == NULL)
        return;
    bool held = fm_lock_acquire_if_threaded(&d->lock);
    *blocks = d->blocks;
    *bytes = d->bytes;
    fm_lock_release_if(&d->lock, held);
}

/* In tc's critical section: whether p, of stride class c, is cached already, in tc's
 * list or in the depot (a double free). */
static inline bool cached_already(struct fm_heap *h, const struct fm_tcache *tc, size_t c, void **p)
{
    return listed(tc, c, p) || (p[1] == fm_tcache_key && depot_has(h, c, p));
}

/* Whether p, a pointer in the pool, is a live block that carries the cached mark and
 * is listed by tc (if not NULL; in tc's critical section) or by the depot. */
static bool marked_and_listed(struct fm_heap *h, const struct fm_tcache *tc, void **p)
{
    if (!pool_in_range(h->eng, p) || p[1] != fm_tcache_key || pool_classify(h->eng, p) != 0)
        return false; /* (p may lie past the memory made usable: read nothing first) */
    size_t c = class_of(bsize_unlocked(from_ptr(p)));
    if (c == 0)
        return false; /* a size never cached */
    return tc != NULL ? cached_already(h, tc, c, p) : depot_has(h, c, p);
}

bool fm_tcache_holds(struct fm_heap *h, void *ptr)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc != NULL && tc->heap != h)
        tc = NULL;
    /* The heap's lock is held, and every thread that takes caches from their owners
     * holds it too: nobody but this thread changes its own cache meanwhile, so it
     * looks in without entering. */
    if (tc != NULL && in_ring(tc, ptr))
        return true;
    return marked_and_listed(h, tc, ptr);
}

/* In tc's critical section, its list c full (at least BATCH blocks): cut off the
 * BATCH oldest blocks and return them (a list, oldest last; *n of them); *where is
 * the link they hung from, to hang them back.  Each block's first word is its link,
 * so the link to follow is the block itself. */
static void **cut_oldest(struct fm_tcache *tc, size_t c, void ***where, size_t *n)
{
    size_t keep = (size_t)tc->count[c] - BATCH;
    void **link = (void **)&tc->head[c];
    for (size_t k = 0; k < keep; k++)
        link = *link;
    void **q = *link;
    *link = NULL;
    *where = link;
    *n = BATCH;
    tc->count[c] = (uint8_t)keep;
    tc->given_back += BATCH;
    return q;
}

/* The frees noted in tc's ring, each to the engine as a free would have been (or the
 * program dies naming it).  Heap lock held, and tc seized (or out of the registry). */
static void ring_release(struct fm_heap *h, struct fm_tcache *tc)
{
    unsigned n = tc->nring;
    tc->nring = 0; /* first: fm_heap_free_held looks in the ring for what it frees */
    for (unsigned i = 0; i < n; i++) {
        void **p = tc->ring[i];
        if (marked_and_listed(h, tc, p)) /* tc's own lists are searched here */
            fm_die("free(%p): double free: the block was already freed", (void *)p);
        fm_heap_free_held(h, p, "free");
    }
}

/* Give every block tc holds back to the engine, its ring's first.  Heap lock held,
 * and tc seized (or out of the registry). */
static void drain(struct fm_heap *h, struct fm_tcache *tc)
{
    ring_release(h, tc);
    for (size_t c = 0; c < NCLASS; c++) {
        while (tc->head[c]) {
            void **p = tc->head[c];
            tc->head[c] = *p;
            fm_heap_release_cached(h, p);
        }
        tc->given_back += tc->count[c];
        tc->count[c] = 0;
    }
    tc->large_bytes = 0;
}

/* What tc holds, and the mallocs it served: every block that entered the cache (a
 * free, or stocked from the engine) is held still, or left it (a malloc, a calloc, or
 * given back).  tc seized, or not in use. */
static void held_by(const struct fm_tcache *tc, uint64_t *blocks, uint64_t *bytes, uint64_t *mallocs)
{
    uint64_t n = 0, b = 0;
    for (size_t c = 2; c < NCLASS; c++) {
        n += tc->count[c];
        if (c < NSMALL)
            b += (uint64_t)tc->count[c] * ((c << 4) - 8);
    }
    *blocks = n;
    *bytes = b + tc->large_bytes;
    *mallocs = tc->frees + tc->stocked - tc->given_back - n - tc->callocs;
}

static void thread_exit(void *arg)
{
    struct fm_tcache *tc = arg;
    fm_tcache_state = 2;
    fm_tcache_mine = NULL;
    struct fm_heap *h = tc->heap;
    fm_heap_with_lock(h, fm_tcache_retire, tc);
}

/* Heap lock held, tc out of the registry: its blocks back to the engine, its counts
 * into the heap's, and its own memory freed. */
static void dissolve(struct fm_heap *h, struct fm_tcache *tc)
{
    uint64_t blocks, bytes, mallocs;
    held_by(tc, &blocks, &bytes, &mallocs);
    drain(h, tc);
    h->c.calls_malloc += mallocs;
    h->c.calls_calloc += tc->callocs;
    h->c.calls_free += tc->frees;
    h->engine->free(h->eng, tc);
}

/* Heap lock held: unregister tc and dissolve it. */
void fm_tcache_retire(struct fm_heap *h, void *arg)
{
    struct fm_tcache *tc = arg;
    fm_lock_acquire(&h->tc_registry_lock, false);
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        h->tc_registry = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    h->tc_count--;
    set_large_share(h);
    bool last = h->tc_registry == NULL;
    fm_lock_release(&h->tc_registry_lock, false);
    dissolve(h, tc);
    /* The depot's batches are for the caches; with none left, nothing would take them
     * (a thread flushing a batch there just before it exited, after the others). */
    if (last)
        depot_drain(h);
}

void fm_tcache_setup(struct fm_heap *h)
{
    if (h->engine->no_caches || !h->engine->pool_layout || h->engine->malloc_batch == NULL)
        return; /* every free must reach the engine (qm), or there is none (sys) */
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        return; /* no caches: they could not be flushed at thread exit */
    fm_owned_setup();
    uint64_t k = (uint64_t)(uintptr_t)&k ^ ((uint64_t)fm_os_thread_id() << 32) ^ 0x9e3779b97f4a7c15ULL;
    fm_tcache_key = (void *)(uintptr_t)(k | 1);
    h->depot = fm_heap_alloc_internal(h, sizeof *h->depot); /* none: batches go to the engine */
    if (h->depot)
        memset(h->depot, 0, sizeof *h->depot);
    h->tc_count = 0;
    set_large_share(h);
    h->caches = true;
}

/* This thread's cache for h, made on first use; NULL if it cannot have one. */
static struct fm_tcache *cache(struct fm_heap *h)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_likely(tc != NULL))
        return tc->heap == h ? tc : NULL;
    if (fm_tcache_state != 0)
        return NULL;
    fm_tcache_state = 2; /* until it is made: the calls below must not recurse here */
    tc = fm_heap_alloc_internal(h, sizeof *tc);
    if (tc == NULL) {
        fm_tcache_state = 0; /* the heap at its cap: a later call tries again */
        return NULL;
    }
    memset(tc, 0, sizeof *tc);
    /* Lists 0 and 1 (strides 0 and 16) stay without room: no block has those strides,
     * so a size word that claims one goes to the engine, which refuses it (pool.h,
     * pool_cacheable_off, relies on this). */
    for (size_t c = 2; c < NCLASS; c++)
        tc->room[c] = fm_tcache_limit(c);
    tc->heap = h;
    tc->pool = h->eng;
    tc->shed_seen = __atomic_load_n(&h->shed_epoch, __ATOMIC_RELAXED);
    if (pthread_setspecific(exit_key, tc) != 0) {
        fm_heap_with_lock(h, fm_tcache_retire_unlisted, tc);
        fm_tcache_state = 0;
        return NULL;
    }
    fm_lock_acquire(&h->tc_registry_lock, false);
    tc->next = h->tc_registry;
    if (tc->next)
        tc->next->prev = tc;
    h->tc_registry = tc;
    h->tc_count++;
    set_large_share(h);
    fm_lock_release(&h->tc_registry_lock, false);
    fm_tcache_mine = tc;
    fm_tcache_state = 1;
    return tc;
}

bool fm_tcache_make(struct fm_heap *h)
{
    return cache(h) != NULL;
}

void fm_tcache_retire_unlisted(struct fm_heap *h, void *tc)
{
    h->engine->free(h->eng, tc);
}

/* In tc's critical section: the head of list c taken off it, or NULL. */
static inline void **pop(struct fm_tcache *tc, size_t c)
{
    void **p = tc->head[c];
    if (p) {
        tc->head[c] = p[0];
        tc->count[c]--;
    }
    return p;
}

void *fm_tcache_calloc(struct fm_heap *h, size_t size)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_unlikely(tc == NULL || tc->heap != h))
        return NULL;
    size_t c = fm_block_stride(size) >> 4;
    int how = fm_owned_enter(&tc->own);
    void **p = pop(tc, c);
    if (p)
        tc->callocs++;
    fm_owned_leave(&tc->own, how);
    if (p) {
        p[1] = NULL; /* no longer marked cached */
        memset(p, 0, size);
    }
    return p;
}

/* fm_tcache_free_threaded's every other case: the cache seized or locked, the ring
 * full.  (Apart, so that the common case needs no registers saved.) */
FM_NOINLINE static void free_threaded_slow(struct fm_tcache *tc, void *ptr)
{
    int how = fm_owned_enter(&tc->own);
    unsigned n = tc->nring;
    tc->ring[n++] = ptr;
    tc->nring = (uint8_t)n;
    fm_owned_leave(&tc->own, how);
    if (n == RING)
        fm_tcache_settle(tc->heap);
}

void fm_tcache_free_threaded(struct fm_tcache *tc, void *ptr)
{
    __builtin_prefetch((char *)ptr - HEADER, 1); /* for the settling, some frees later */
    if (fm_likely(fm_owned_try(&tc->own))) {
        unsigned n = tc->nring;
        if (fm_likely(n + 1 < RING)) {
            tc->ring[n] = ptr;
            tc->nring = (uint8_t)(n + 1);
            fm_owned_leave(&tc->own, 1);
            return;
        }
        fm_owned_leave(&tc->own, 1);
    }
    free_threaded_slow(tc, ptr);
}

/* In tc's critical section, list c full: its BATCH oldest blocks cut off and put in
 * the depot; NULL if the depot took them, else the batch, still cut off (*n blocks,
 * *where the link they hung from: hang_back puts them back). */
static void **batch_to_depot(struct fm_heap *h, struct fm_tcache *tc, size_t c, void ***where, size_t *n)
{
    void **q = cut_oldest(tc, c, where, n);
    if (depot_put(h, c, q, *n)) {
        *n = 0;
        return NULL;
    }
    return q;
}

static void hang_back(struct fm_tcache *tc, size_t c, void **where, void **q, size_t n)
{
    *where = q;
    tc->count[c] = (uint8_t)(tc->count[c] + n);
    tc->given_back -= n;
}

/* Heap lock held: the frees settling left in this thread's ring (tc), each done as a
 * free: a block marked cached is first looked for in every cache ("Double free"); a
 * small block joins its list, the list's oldest batch going to the engine (the depot
 * was full: fm_tcache_push_flush), and anything else goes to the engine, which checks
 * it.  A thread that seized tc before this one took the lock has done them already
 * (the ring is then empty). */
static void settle_rest_locked(struct fm_heap *h, void *arg)
{
    struct fm_tcache *tc = arg;
    void *rest[RING];
    int how = fm_owned_enter(&tc->own);
    unsigned n = tc->nring;
    memcpy(rest, tc->ring, n * sizeof rest[0]);
    tc->nring = 0;
    fm_owned_leave(&tc->own, how);
    for (unsigned i = 0; i < n; i++) {
        void **p = rest[i];
        if (fm_unlikely(p[1] == fm_tcache_key))
            fm_tcache_check_marked(h, p, "free", true);
        size_t s = bsize_unlocked(from_ptr(p)); /* a guess: push_flush checks p whole */
        int r = s <= FM_TCACHE_MAX_STRIDE && s >= BLOCK_MIN ? fm_tcache_push_flush(h, p, s - OVERHEAD) : 0;
        if (fm_unlikely(r < 0))
            fm_die("free(%p): double free: the block was already freed", (void *)p);
        if (r == 0)
            fm_heap_free_held(h, p, "free");
    }
}

static void shed_locked(struct fm_heap *h, void *tc);

bool fm_tcache_settle(struct fm_heap *h)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h)
        return false;
    if (fm_lock_elided() && tc->nring == 0)
        return false; /* (one thread: nobody else reads or writes tc) */
    unsigned nrest = 0; /* what the caches cannot take: kept at the ring's start */
    int how = fm_owned_enter(&tc->own);
    unsigned n = tc->nring; /* (each header was prefetched when its free was noted) */
    /* (The key and the pool's lo in locals, and the frees counted at the end: the
     * stores into the blocks would make the compiler load them again each time.) */
    void *key = fm_tcache_key;
    uintptr_t lo = tc->pool->lo;
    size_t share = __atomic_load_n(&h->tc_large_share, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n; i++) {
        void **p = tc->ring[i];
        size_t word = block_word(from_ptr(p)), s = word & FM_STRIDE_BITS, c;
        if (fm_unlikely(p[1] == key) || !pool_cacheable_lo(lo, p, word, s))
            goto keep; /* freed twice?  no block?  Decided under the heap's lock */
        if (s <= FM_TCACHE_MAX_STRIDE) {
            c = s >> 4;
            if (fm_unlikely(tc->count[c] >= tc->room[c])) {
                if (tc->room[c] == 0)
                    goto keep; /* shed (or no block's stride): decided under the heap's lock */
                /* a full list: its oldest batch to the depot, as a free's would go */
                void **where, **q;
                size_t nq;
                if ((q = batch_to_depot(h, tc, c, &where, &nq)) != NULL) {
                    hang_back(tc, c, where, q, nq);
                    goto keep;
                }
            }
            link_in_key(tc, c, p, key);
            continue;
        }
        c = fm_tcache_large_class(s);
        size_t usable = s - OVERHEAD;
        if (s - FM_TCACHE_LARGE_MIN <= FM_TCACHE_LARGE_MAX - FM_TCACHE_LARGE_MIN &&
            tc->count[c] < tc->room[c] && tc->large_bytes + usable <= share) {
            link_in_key(tc, c, p, key);
            tc->large_bytes += usable;
            continue;
        }
    keep:
        tc->ring[nrest++] = p;
    }
    tc->nring = (uint8_t)nrest;
    tc->frees += n - nrest;
    fm_owned_leave(&tc->own, how);
    /* The rest (a block marked cached, one the check refused, a full list with the
     * depot full, a large block over the bounds) stay in the ring until the heap's
     * lock is held: a malloc at the cap flushing every cache, fork and the statistics
     * all hold it, and so find them there. */
    if (nrest > 0)
        fm_heap_with_lock(h, settle_rest_locked, tc);
    /* Pages went back since this cache last shed: its overfull lists go to the engine
     * too (with one thread that happened at once, heap.c, shed). */
    uint32_t epoch = __atomic_load_n(&h->shed_epoch, __ATOMIC_RELAXED);
    if (fm_unlikely(epoch != tc->shed_seen)) {
        tc->shed_seen = epoch;
        fm_heap_with_lock(h, shed_locked, tc);
    }
    return n != 0;
}

/* fm_tcache_malloc_locked's every other case (as fm_tcache_free_threaded's). */
FM_NOINLINE static void *malloc_locked_slow(struct fm_tcache *tc, size_t size)
{
    size_t c = fm_block_stride(size) >> 4;
    int how = fm_owned_enter(&tc->own);
    void **p = pop(tc, c);
    fm_owned_leave(&tc->own, how);
    if (p == NULL)
        return fm_heap_malloc_miss(tc->heap, size);
    p[1] = NULL; /* no longer marked cached */
    return p;
}

void *fm_tcache_malloc_locked(struct fm_tcache *tc, size_t size)
{
    if (fm_likely(fm_owned_try(&tc->own))) {
        void **p = pop(tc, fm_block_stride(size) >> 4);
        fm_owned_leave(&tc->own, 1);
        if (fm_likely(p != NULL)) {
            p[1] = NULL; /* no longer marked cached */
            return p;
        }
    }
    return malloc_locked_slow(tc, size);
}

/* fm_tcache_free's path for a live block that carries the cached mark. */
void fm_tcache_free_marked(struct fm_tcache *tc, void *ptr, const char *caller)
{
    size_t c = bsize_unlocked(from_ptr(ptr)) >> 4;
    void **p = ptr;
    int how = fm_owned_enter(&tc->own);
    if (fm_unlikely(cached_already(tc->heap, tc, c, p)))
        double_free(tc, how, caller, ptr);
    link_in(tc, c, p);
    tc->frees++;
    fm_owned_leave(&tc->own, how);
}

FM_NOINLINE void fm_tcache_deepen(struct fm_tcache *tc, size_t c)
{
    size_t n = FM_TCACHE_DEEP_BYTES / (c << 4);
    tc->room[c] = (uint8_t)(n <= FM_TCACHE_DEEP ? FM_TCACHE_DEEP : n >= FM_TCACHE_DEEP_MAX ? FM_TCACHE_DEEP_MAX : n);
}

void *fm_tcache_malloc_large(struct fm_heap *h, size_t size)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h)
        return NULL;
    size_t c = fm_tcache_large_class(fm_tcache_large_round(fm_block_stride(size)));
    int how = fm_owned_enter(&tc->own);
    c = fm_tcache_large_pick(tc, c);
    void **p = pop(tc, c);
    if (p)
        tc->large_bytes -= bsize_unlocked(from_ptr(p)) - OVERHEAD;
    fm_owned_leave(&tc->own, how);
    if (p)
        p[1] = NULL; /* no longer marked cached */
    return p;
}

bool fm_tcache_push(struct fm_heap *h, void *ptr, size_t usable)
{
    struct fm_tcache *tc = cache(h);
    if (fm_unlikely(tc == NULL))
        return false;
    /* usable came from the size word before the block was known to be one:
     * pool_classify decides below. */
    size_t c = (usable + 8) >> 4;
    void **p = ptr;
    int how = fm_owned_enter(&tc->own);
    /* Full: the caller frees it to the engine, which checks it there, once. */
    if (tc->count[c] >= tc->room[c] || pool_classify(tc->pool, ptr) != 0) {
        fm_owned_leave(&tc->own, how);
        return false;
    }
    if (fm_unlikely(cached_already(h, tc, c, p)))
        double_free(tc, how, "free", ptr);
    link_in(tc, c, p);
    tc->frees++;
    fm_owned_leave(&tc->own, how);
    return true;
}

size_t fm_tcache_refill_batch(struct fm_heap *h, size_t size)
{
    struct fm_tcache *tc = fm_tcache_mine;
    fm_assert(tc != NULL && tc->heap == h);
    size_t c = fm_block_stride(size) >> 4;
    uint32_t frees = (uint32_t)tc->frees, clock = ++tc->misses;
    bool alone = frees == tc->miss_frees[c]; /* nothing freed since this size's last miss */
    bool again = alone && tc->miss_at[c] != 0 && clock - tc->miss_at[c] == 1; /* in a row */
    unsigned run = again ? tc->miss_run[c] + 1u : 1u;
    tc->miss_run[c] = (uint8_t)(run < BATCH_AFTER ? run : BATCH_AFTER);
    tc->miss_frees[c] = frees;
    tc->miss_at[c] = clock;
    /* (one thread: nobody else changes the pool's counts meanwhile) */
    bool at_the_end = fm_lock_elided() && tc->pool->free_blocks <= FEW_HOLES;
    return alone && run < BATCH_AFTER && at_the_end ? 1 : BATCH;
}

void fm_tcache_stock(struct fm_heap *h, void **blk, size_t n)
{
    struct fm_tcache *tc = fm_tcache_mine;
    fm_assert(tc != NULL && tc->heap == h && n <= BATCH);
    int how = fm_owned_enter(&tc->own);
    /* Last first, so that the list hands them out in the order given. */
    while (n > 0) {
        void **p = blk[--n];
        size_t usable = fm_block_usable_unchecked(p); /* the engine's own block */
        size_t c = (usable + 8) >> 4;
        if (usable > FM_TCACHE_MAX_USABLE || tc->count[c] >= tc->room[c]) {
            fm_heap_release_cached(h, p);
            continue;
        }
        link_in(tc, c, p);
        tc->stocked++;
    }
    fm_owned_leave(&tc->own, how);
}


void *fm_tcache_restock(struct fm_heap *h, size_t size, bool zero)
{
    struct fm_tcache *tc = fm_tcache_mine;
    size_t c = fm_block_stride(size) >> 4;
    void **p = NULL;
    int how = fm_owned_enter(&tc->own);
    /* Taken inside the cache, so that no flush or statistics can miss the batch. */
    size_t n;
    void **q = tc->head[c] == NULL ? depot_take(h, c, &n) : NULL;
    if (q) {
        /* The list was empty: the batch becomes the list as it is, without a look at
         * its blocks, whose lines another thread wrote last (each still carries its
         * link and the cached mark).  Only the block handed out is touched. */
        tc->head[c] = q;
        tc->count[c] = (uint8_t)n;
        tc->stocked += n;
    }
    p = pop(tc, c);
    if (p && zero)
        tc->callocs++;
    fm_owned_leave(&tc->own, how);
    if (p) {
        p[1] = NULL; /* no longer marked cached */
        if (zero)
            memset(p, 0, size);
    }
    return p;
}

/* Heap lock held: n blocks cut off a list (linked, oldest last) back to the engine,
 * lowest address first.  A block freed right after the block before it is joined to
 * it with one size update (block.h), so blocks freed in address order must go back in
 * that order; filled from the end, out holds such a run already sorted, and the sort
 * below is one pass. */
enum { LIST_MAX = FM_TCACHE_DEEP_MAX > FM_TCACHE_LARGE_LIMIT ? FM_TCACHE_DEEP_MAX : FM_TCACHE_LARGE_LIMIT };

static void release_sorted(struct fm_heap *h, void **q, size_t n)
{
    void *out[LIST_MAX];
    fm_assert(n <= LIST_MAX);
    for (size_t k = n; k > 0; q = *q)
        out[--k] = q;
    for (size_t i = 1; i < n; i++) {
        void *b = out[i];
        size_t j = i;
        for (; j > 0 && (uintptr_t)out[j - 1] > (uintptr_t)b; j--)
            out[j] = out[j - 1];
        out[j] = b;
    }
    for (size_t i = 0; i < n; i++)
        fm_heap_release_cached(h, out[i]);
}

/* Whether shedding takes list c of tc: a small list that is full (more was freed
 * into it than taken from it), a large one that holds any block ("Shedding"). */
static inline bool overfull(const struct fm_tcache *tc, size_t c)
{
    if (c < NSMALL)
        return tc->count[c] >= LIMIT;
    return tc->count[c] > 0;
}

/* Heap lock held, tc not seized: tc's overfull lists, from where the last shedding
 * stopped, to the engine, each whole and closed until its next miss, until SHED_BUDGET
 * blocks or more have gone. */
static void shed_lists(struct fm_heap *h, struct fm_tcache *tc)
{
    size_t budget = SHED_BUDGET;
    for (size_t k = 2; k < NCLASS && budget > 0; k++) {
        size_t c = tc->shed_next;
        tc->shed_next = (uint8_t)(c + 1 < NCLASS ? c + 1 : 2);
        int how = fm_owned_enter(&tc->own);
        if (!overfull(tc, c)) {
            fm_owned_leave(&tc->own, how);
            continue;
        }
        void **q = tc->head[c];
        size_t n = tc->count[c];
        if (c >= NSMALL)
            for (void **b = q; b; b = *b)
                tc->large_bytes -= bsize_unlocked(from_ptr(b)) - OVERHEAD;
        tc->head[c] = NULL;
        tc->count[c] = 0;
        tc->room[c] = 0;
        tc->given_back += n;
        fm_owned_leave(&tc->own, how);
        release_sorted(h, q, n); /* the heap's lock keeps them counted meanwhile */
        budget = budget > n ? budget - n : 0;
    }
}

void fm_tcache_shed(struct fm_heap *h)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc != NULL && tc->heap == h)
        shed_lists(h, tc);
}

/* Heap lock held: batches of the depot, up to SHED_BUDGET blocks, to the engine, a
 * batch of each stride in turn from where the last call stopped. */
void fm_tcache_shed_depot(struct fm_heap *h)
{
    size_t budget = SHED_BUDGET;
    struct fm_depot *d = h->depot;
    for (size_t k = 0; d != NULL && k < NSMALL && budget > 0; k++) {
        size_t c = d->shed_next; /* (only ever read and written under the heap's lock) */
        d->shed_next = (uint8_t)((c + 1) % NSMALL);
        size_t n;
        void **q = depot_take(h, c, &n);
        if (q == NULL)
            continue;
        release_sorted(h, q, n);
        budget = budget > n ? budget - n : 0;
    }
}

static void shed_locked(struct fm_heap *h, void *tc)
{
    shed_lists(h, tc);
}

/* Live block p, of usable bytes, into tc's list.  A full list's BATCH oldest go to
 * the depot, inside tc's critical section (so that no flush or statistics can miss
 * them); if the depot is full, to the engine when the heap's lock is held (locked),
 * else nothing is done.  1 if done; 0 if not (depot full, !locked); -1 if p is cached
 * already (a double free). */
static int push_giving_batch(struct fm_heap *h, struct fm_tcache *tc, void **p, size_t usable, bool locked)
{
    size_t c = (usable + 8) >> 4;
    void **q = NULL; /* the batch for the engine */
    size_t n = 0;
    int how = fm_owned_enter(&tc->own);
    if (fm_unlikely(cached_already(h, tc, c, p))) {
        fm_owned_leave(&tc->own, how);
        return -1;
    }
    if (fm_unlikely(tc->room[c] == 0)) { /* shed: the engine takes it */
        fm_owned_leave(&tc->own, how);
        return 0;
    }
    if (tc->count[c] >= tc->room[c]) {
        void **where;
        q = batch_to_depot(h, tc, c, &where, &n);
        if (q != NULL && !locked) {
            hang_back(tc, c, where, q, n); /* the engine takes them under the heap's lock */
            fm_owned_leave(&tc->own, how);
            return 0;
        }
    }
    link_in(tc, c, p);
    tc->frees++;
    fm_owned_leave(&tc->own, how);
    if (n > 0)
        release_sorted(h, q, n); /* no cache's now; the heap's lock keeps them counted */
    return 1;
}

int fm_tcache_push_flush(struct fm_heap *h, void *ptr, size_t usable)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h)
        return 0;
    /* The heap's lock is held, so the engine's answer here is final. */
    if (pool_classify(tc->pool, ptr) != 0)
        return 0;
    return push_giving_batch(h, tc, ptr, usable, true);
}

int fm_tcache_flush_to_depot(struct fm_heap *h, void *ptr, size_t usable)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (tc == NULL || tc->heap != h || h->depot == NULL)
        return 0;
    /* Without the heap's lock, the check can only take a valid block for an invalid
     * one (another thread changing its neighbours): then the locked path decides. */
    if (pool_classify(tc->pool, ptr) != 0)
        return 0;
    return push_giving_batch(h, tc, ptr, usable, false);
}

/* With the registry's lock held: every cache taken from its owner (lock.h), with one
 * barrier for them all; seize_all's caches go back with yield_all. */
static void seize_all(struct fm_heap *h)
{
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next)
        fm_owned_seize(&tc->own);
    fm_owned_barrier();
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next)
        fm_owned_wait(&tc->own);
}

static void yield_all(struct fm_heap *h)
{
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next)
        fm_owned_yield(&tc->own);
}

/* Double free (above): whether any thread's cache (this one's too) lists p, whose
 * stride class is c, or its ring waits with p, or the depot holds it.  Seizes every
 * cache: for the rare block that carries the cached mark where it should not.  Not in
 * any cache's critical section, nor with the registry's lock held. */
static bool held_anywhere(struct fm_heap *h, size_t c, void **p)
{
    fm_lock_acquire(&h->tc_registry_lock, false);
    seize_all(h);
    /* the depot after the seizing: a batch cut from a list meanwhile is in it */
    bool found = depot_has(h, c, p);
    for (struct fm_tcache *tc = h->tc_registry; tc && !found; tc = tc->next)
        found = listed(tc, c, p) || in_ring(tc, p);
    yield_all(h);
    fm_lock_release(&h->tc_registry_lock, false);
    return found;
}

void fm_tcache_check_marked(struct fm_heap *h, void *ptr, const char *caller, bool clear)
{
    void **p = ptr;
    const struct pool *pl = h->eng;
    if (fm_lock_elided() || !pool_in_range(pl, p) || p[1] != fm_tcache_key)
        return; /* one thread: its own lists were searched */
    /* Without the heap's lock: the block's own word alone, as the caches check it */
    size_t word = block_word(from_ptr(p)), s = word & FM_STRIDE_BITS, c = class_of(s);
    if (c == 0 || !pool_cacheable(pl, p, word, s))
        return; /* a size never cached, or no live block (reported on the way on) */
    if (held_anywhere(h, c, p))
        fm_die("%s(%p): double free: the block was already freed", caller, ptr);
    if (clear)
        p[1] = NULL; /* the program's data, which a free no longer needs */
}

bool fm_tcache_flush_all(struct fm_heap *h)
{
    bool any = false;
    fm_lock_acquire(&h->tc_registry_lock, false);
    seize_all(h);
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next) {
        uint64_t blocks, bytes, mallocs;
        held_by(tc, &blocks, &bytes, &mallocs);
        any = any || blocks != 0 || tc->nring != 0;
        drain(h, tc);
    }
    yield_all(h);
    any = depot_drain(h) || any;
    fm_lock_release(&h->tc_registry_lock, false);
    return any;
}

bool fm_tcache_release_rings(struct fm_heap *h)
{
    bool any = false;
    fm_lock_acquire(&h->tc_registry_lock, false);
    seize_all(h);
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next) {
        any = any || tc->nring != 0;
        ring_release(h, tc);
    }
    yield_all(h);
    fm_lock_release(&h->tc_registry_lock, false);
    return any;
}

void fm_tcache_totals(struct fm_heap *h, struct fm_tcache_totals *t)
{
    memset(t, 0, sizeof *t);
    fm_lock_acquire(&h->tc_registry_lock, false);
    seize_all(h);
    for (struct fm_tcache *tc = h->tc_registry; tc; tc = tc->next) {
        uint64_t blocks, bytes, mallocs;
        held_by(tc, &blocks, &bytes, &mallocs);
        t->bytes += bytes;
        t->blocks += blocks;
        t->mallocs += mallocs;
        t->callocs += tc->callocs;
        t->frees += tc->frees;
        /* A free waiting in the ring is a free done, and its block a cached one (one
         * that is no block is left for the settling to report). */
        for (unsigned i = 0; i < tc->nring; i++) {
            if (pool_classify(tc->pool, tc->ring[i]) == 0) {
                t->bytes += bsize_unlocked(from_ptr(tc->ring[i])) - OVERHEAD;
                t->blocks++;
                t->frees++;
            }
        }
    }
    yield_all(h);
    uint64_t blocks, bytes;
    depot_held(h, &blocks, &bytes);
    t->bytes += bytes;
    t->blocks += blocks;
    fm_lock_release(&h->tc_registry_lock, false);
}

/* Fork: every cache seized, and the depot's lock held, so that the child's copy of
 * each is whole (a thread caught inside a depot operation would leave it half done,
 * and its lock held for good once the child starts threads of its own). */
void fm_tcache_prefork(struct fm_heap *h)
{
    fm_lock_acquire(&h->tc_registry_lock, false);
    seize_all(h);
    if (h->depot)
        fm_lock_acquire(&h->depot->lock, false);
}

void fm_tcache_postfork_parent(struct fm_heap *h)
{
    if (h->depot)
        fm_lock_release(&h->depot->lock, false);
    yield_all(h);
    fm_lock_release(&h->tc_registry_lock, false);
}

/* In the child, with the heap's lock reset: only this thread exists.  The others'
 * caches go back to the engine, and their structs with them. */
void fm_tcache_postfork_child(struct fm_heap *h)
{
    fm_lock_init(&h->tc_registry_lock);
    if (h->depot)
        fm_lock_init(&h->depot->lock);
    struct fm_tcache *mine = fm_tcache_mine;
    struct fm_tcache *tc = h->tc_registry;
    h->tc_registry = NULL;
    h->tc_count = 0;
    while (tc) {
        struct fm_tcache *next = tc->next;
        fm_owned_init(&tc->own);
        if (tc == mine) {
            tc->prev = NULL;
            tc->next = h->tc_registry;
            h->tc_registry = tc;
            h->tc_count = 1;
        } else {
            dissolve(h, tc);
        }
        tc = next;
    }
    set_large_share(h);
}
