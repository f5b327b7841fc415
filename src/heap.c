/* heap.c: growth under the cap, the lock discipline, and the counters. */
#include "heap.h"
#include "diag.h"
#include "heap_sys.h"
#include "os.h"
#include "tcache.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

__thread const void *fm_call_site __attribute__((tls_model("initial-exec")));

/* The least the heap commits at a time: small enough that a tiny program stays tiny,
 * large enough that growing is rare (the step is also at least 1/8 of the heap). */
#define GROW_MIN ((size_t)256 * 1024)

/* A private heap's lock is elided while the process has one thread (lock.h): two
 * atomic operations fewer per call.  A shared heap is always locked, since other
 * processes use it.  lock() says whether it took the lock; unlock() is given it. */
static void lock_shared(struct fm_heap *h);

static inline bool lock(struct fm_heap *h)
{
    if (fm_unlikely(h->shared)) {
        lock_shared(h);
        return true;
    }
    return fm_lock_acquire_if_threaded(&h->lock);
}

/* The populates-ahead this thread owes, done once the heap's lock is released
 * (populate_ahead): n ranges [lo, hi). */
enum { POPULATE_OWED_MAX = 4 };
static __thread struct {
    unsigned n;
    char *lo[POPULATE_OWED_MAX], *hi[POPULATE_OWED_MAX];
} populate_due __attribute__((tls_model("initial-exec")));

static void populate_owed(struct fm_heap *h);

/* The heap in whose slots this thread owes releases (release_pages), or NULL; its
 * address names the thread in a slot. */
static __thread struct fm_heap *release_due __attribute__((tls_model("initial-exec")));

static void release_owed(struct fm_heap *h);

static inline void unlock(struct fm_heap *h, bool held)
{
    if (fm_unlikely(h->shared)) {
        pthread_mutex_unlock(&h->mutex);
        return;
    }
    fm_lock_release_if(&h->lock, held);
    if (fm_unlikely(populate_due.n != 0))
        populate_owed(h);
    if (fm_unlikely(release_due != NULL))
        release_owed(release_due);
}

/* The previous holder of a shared heap's lock died: make the heap whole again or
 * mark it damaged.  Called holding the lock. */
FM_COLD static void recover(struct fm_heap *h)
{
    h->c.recovered++;
    if (h->damaged)
        return;
    uint64_t live = 0, in_use = 0;
    const char *why = h->engine->rebuild(h->eng, &live, &in_use);
    if (why == NULL)
        why = h->engine->check(h->eng);
    if (why != NULL) {
        h->damaged = true;
        fm_message("shared heap at %p: a process died holding its lock and left the heap "
                   "damaged (%s); every further call on it fails with EIO", (void *)h->base, why);
        return;
    }
    h->c.live_blocks = live;
    h->c.in_use = in_use;
}

FM_NOINLINE static void lock_shared(struct fm_heap *h)
{
    int rc = fm_robust_lock(&h->mutex);
    if (fm_likely(rc == 0))
        return;
    if (rc == EOWNERDEAD) {
        recover(h);
        pthread_mutex_consistent(&h->mutex);
        return;
    }
    fm_die("shared heap at %p: its lock cannot be taken (error %d)", (void *)h->base, rc);
}

/* Refuse a call on a damaged heap (shared heaps only); true if refused. */
static inline bool refused_damaged(struct fm_heap *h, bool held)
{
    if (fm_likely(!h->damaged))
        return false;
    unlock(h, held);
    errno = EIO;
    return true;
}

static inline size_t eng_bytes(const struct fm_heap *h)
{
    return h->committed - (size_t)((char *)h->eng - h->base);
}

/* Releases after the lock.  Giving pages back is a system call of tens of microseconds
 * (the release workload's: 50 us typical, 300 us at most, on the machine of
 * bench/README), and under the heap's lock it would stall every other thread that
 * needs the engine meanwhile (bench/README: release-contended).  So while the process
 * has threads, the range is decided under the lock (the engine's pending list and the
 * counters move at once) and owed: it takes a slot of the heap's table, and the thread
 * makes the call after its unlock().  Until then the pages still hold whatever they
 * held, and must not be written: the engine calls release_wait before it writes into
 * or hands out a free block whose pages it gave to release_pages (block.h,
 * released_reused), and a release owed there and not begun is made at once by the
 * caller, under the lock; one begun is waited for (it takes what the system call
 * takes).  Slots are claimed by a compare-and-swap on their ticket, so each release is
 * made exactly once, by its owner or a waiter; a ticket is never reused, so an owner
 * late to its slot cannot make another's.  FM_RELEASING_MAX slots: 8 left a lock hold
 * that sheds and purges several runs short of them, and its calls under the lock
 * (release-contended's pair p99.9 179 us against 47 with 32; 64 gave 51).  With no
 * slot free, or while the process has one thread, or in malloc_trim (whose runs
 * include blocks that are not marked released, so no waiter would know of them), the
 * call is made at once, as before.  Signals are blocked while the owed are made: a
 * handler's malloc that met a release this thread has begun would wait for itself. */

/* Make the release in slot r whose ticket is t, unless another thread claimed it. */
static void make_release(struct fm_heap *h, struct fm_releasing *r, uint64_t t)
{
    uint64_t want = t;
    if (!__atomic_compare_exchange_n(&r->state, &want, t | 1, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return;
    fm_os_reset(r->lo, (size_t)(r->hi - r->lo));
    __atomic_store_n(&r->state, 0, __ATOMIC_RELEASE);
    __atomic_fetch_sub(&h->releasing_n, 1, __ATOMIC_RELEASE);
}

static void release_owed(struct fm_heap *h)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    release_due = NULL;
    for (unsigned i = 0; i < FM_RELEASING_MAX; i++) {
        struct fm_releasing *r = &h->releasing[i];
        uint64_t t = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
        if (t != 0 && !(t & 1) && __atomic_load_n(&r->owner, __ATOMIC_RELAXED) == &release_due)
            make_release(h, r, t);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Owe the release of [start, start+len) in a free slot; false if none is free, or if
 * this thread owes releases in another heap still (a hold of two heaps' locks). */
static bool owe_release(struct fm_heap *h, void *start, size_t len)
{
    if (release_due != NULL && release_due != h)
        return false;
    for (unsigned i = 0; i < FM_RELEASING_MAX; i++) {
        struct fm_releasing *r = &h->releasing[i];
        if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != 0)
            continue;
        r->lo = start;
        r->hi = (char *)start + len;
        __atomic_store_n(&r->owner, (const void *)&release_due, __ATOMIC_RELAXED);
        h->release_ticket += 2;
        __atomic_fetch_add(&h->releasing_n, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&r->state, h->release_ticket, __ATOMIC_RELEASE);
        release_due = h;
        return true;
    }
    return false;
}

/* The engine is about to write into [start, start+len), free memory: every release
 * owed inside it is made first (see above).  Called with the lock held. */
static void release_wait(void *arg, void *start, size_t len)
{
    struct fm_heap *h = arg;
    char *lo = start, *hi = lo + len;
    for (unsigned i = 0; i < FM_RELEASING_MAX; i++) {
        struct fm_releasing *r = &h->releasing[i];
        uint64_t t = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
        if (t == 0 || r->hi <= lo || hi <= r->lo)
            continue;
        if (!(t & 1))
            make_release(h, r, t);
        while (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == (t | 1))
            sched_yield();
    }
}

/* Give [start, start+len) of free memory back to the kernel (malloc_trim, and free
 * runs under MEMRELEASE) and count it: at once, or after the lock (above). */
static void release_pages(void *arg, void *start, size_t len)
{
    struct fm_heap *h = arg;
    bool owed = !fm_lock_elided() && !h->trimming && owe_release(h, start, len);
    if (!owed) {
        /* what this thread owes first, as it would have been without threads: made
         * after, it would fault in again the pages given back here (an owed release
         * is made after the owed populates, in unlock()) */
        if (populate_due.n != 0)
            populate_owed(h);
        fm_os_reset(start, len);
    }
    h->c.trimmed += len;
    if (h->caches) { /* the caches' full lists may pin runs like this one */
        h->shed_due = true;
        __atomic_store_n(&h->shed_epoch, h->shed_epoch + 1, __ATOMIC_RELAXED);
    }
    /* populate-ahead may fault these in again for the small blocks that come */
    if ((char *)start < h->populated)
        h->populated = start;
}

int fm_heap_init(struct fm_heap *h, const struct fm_engine *e, void *base, size_t cap,
                 size_t eng_off, size_t committed, int (*commit)(void *, size_t), bool shared)
{
    memset(h, 0, sizeof *h);
    fm_lock_init(&h->lock);
    h->shared = shared;
    h->engine = e;
    if (e->system) {
        h->cap = cap;
        return shared ? EINVAL : fm_sys_init(h);
    }
    h->base = base;
    h->cap = cap;
    h->committed = committed;
    h->commit = commit;
    h->populated = h->base;
    /* Only the private heap: a shared region is populated or not as its owner asks. */
    h->populate = !shared && commit != NULL;
    if (shared) {
        pthread_mutexattr_t a;
        if (pthread_mutexattr_init(&a) != 0 ||
            pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
            pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
            pthread_mutex_init(&h->mutex, &a) != 0)
            return ENOTSUP;
        pthread_mutexattr_destroy(&a);
    }
    if (eng_off >= committed)
        return EINVAL;
    h->eng = e->create(h->base + eng_off, committed - eng_off);
    return h->eng ? 0 : EINVAL;
}

void fm_heap_set_release(struct fm_heap *h, size_t min, size_t batch)
{
    fm_assert(!h->shared && "a shared region's pages are not given back this way");
    if (h->sys)
        return; /* glibc gives memory back by its own rules */
    h->release_ops = (struct fm_release_ops){release_pages, release_wait, &h->releasing_n, h};
    h->engine->set_release(h->eng, min, batch, fm_os_page_size(), &h->release_ops);
}

void fm_heap_set_populate(struct fm_heap *h, bool on)
{
    if (!on)
        h->populate = false;
}

/* Commit more of the range so that a request needing `need` bytes can fit.  Under
 * strict overcommit the kernel may refuse a generous step and grant a smaller one, so
 * the exact need is tried before giving up. */
static bool grow(struct fm_heap *h, size_t need)
{
    size_t room = h->cap - h->committed;
    if (room == 0 || h->commit == NULL)
        return false;
    size_t page = fm_os_page_size();
    /* need + 1/16: TLSF's good-fit search rounds a request up by at most 1/32. */
    size_t least = fm_align_up(need + need / 16 + 4 * page, page);
    size_t step = least;
    if (step < h->committed / 8)
        step = fm_align_up(h->committed / 8, page);
    if (step < GROW_MIN)
        step = GROW_MIN;
    if (step > room)
        step = room;
    if (h->commit(h->base + h->committed, step) != 0) {
        if (least >= step || h->commit(h->base + h->committed, least) != 0)
            return false;
        step = least;
    }
    /* (free_slow reads committed without the lock: one whole word, as pool.h's block_word) */
    __atomic_store_n(&h->committed, h->committed + step, __ATOMIC_RELAXED);
    h->engine->grow(h->eng, eng_bytes(h));
    return true;
}

/* Populate-ahead.  A fresh page costs a page fault when first written (1.3 us on the
 * virtual machine of bench/README, up to 20 us there on a slow day), and a malloc
 * that writes a header on one is a slow call: a run of small allocations touches a
 * new page every few calls, and a split writes its remainder's header inside a free
 * block, on a page the program may never have touched.  So when a block of up to
 * POPULATE_SMALL ends past the pages already faulted in, the private heap faults in
 * its pages and the next POPULATE_AHEAD bytes with one MADV_POPULATE_WRITE (about as
 * much a page as a fault, but one call for 128 pages and more).  The pages are the
 * same; what changes is how many calls pay for them: in the latency workload, ~700
 * mallocs in a million took a fault with 16 KiB blocks and 64 KiB ahead (the blocks
 * of 16-64 KiB the program wrote only at their ends left untouched pages inside the
 * heap, for later splits to fault on), ~70 populates with 128 KiB ahead, malloc
 * p99.99 3.3 -> 1.0 us; and when the heap grew more in that loop (the larger caches
 * of 7721c52), 97 with 128 KiB, so that the 100th slowest malloc, p99.99, was a
 * populate, and 30 with 512 KiB: p99.99 27 -> 15 us on a day of 20 us faults, below
 * every peer's (bench/README).  Larger blocks are left alone: a program may never
 * touch most of one, and RSS should say what it uses.  What it costs: RSS counts
 * the whole of a block of up to 64 KiB taken from fresh memory, written or not, and
 * up to POPULATE_AHEAD past the heap's last one; and the call that populates, up to
 * ~144 pages, is the slowest malloc while the heap grows (its max, bench/README).
 * MEMPOPULATE=0 turns it all off, for a program that keeps many such blocks mostly
 * unwritten.  Building with -DFM_POPULATE_SMALL= and -DFM_POPULATE_AHEAD= (heap.h)
 * measures other values. */
#define POPULATE_SMALL ((size_t)FM_POPULATE_SMALL)
#define POPULATE_AHEAD ((size_t)FM_POPULATE_AHEAD)

/* Fault in [lo, hi) of h's private pool; a kernel before 5.14, which has no
 * MADV_POPULATE_WRITE, turns populate-ahead off for good. */
static void populate_range(struct fm_heap *h, char *lo, char *hi)
{
    if (fm_os_populate(lo, (size_t)(hi - lo)) == EINVAL)
        __atomic_store_n(&h->populate, false, __ATOMIC_RELAXED);
}

static void populate_owed(struct fm_heap *h)
{
    unsigned n = populate_due.n;
    populate_due.n = 0;
    for (unsigned i = 0; i < n; i++)
        populate_range(h, populate_due.lo[i], populate_due.hi[i]);
}

/* Called with the lock held, which pages are populated is decided here (populated
 * moves on at once, so no other thread asks for the same pages), and the system call,
 * tens of microseconds, is made under the lock only while the process has one thread
 * (the lock is elided then).  With threads it is owed, and made by unlock(): another
 * thread that wants the heap's lock meanwhile does not wait for it.  A block handed
 * out in the range meanwhile is written as any fresh page is, and a page given back
 * meanwhile may be faulted in again: what RSS counts, not what a block holds.  A
 * refill's blocks may lie far apart: each range is owed on its own (one that meets
 * the last extends it), never one range over the pages between. */
FM_NOINLINE static void populate_ahead(struct fm_heap *h, char *start, char *end)
{
    size_t page = fm_os_page_size();
    char *lo = (char *)fm_align_down((uintptr_t)start, page);
    if (lo < h->populated)
        lo = h->populated;
    char *hi = (char *)fm_align_up((uintptr_t)end, page) + POPULATE_AHEAD;
    if (hi > h->base + h->committed)
        hi = h->base + h->committed;
    if (hi <= lo)
        return;
    h->populated = hi;
    unsigned n = populate_due.n;
    if (fm_lock_elided() || n == POPULATE_OWED_MAX)
        populate_range(h, lo, hi);
    else if (n > 0 && lo == populate_due.hi[n - 1])
        populate_due.hi[n - 1] = hi;
    else {
        populate_due.lo[n] = lo;
        populate_due.hi[n] = hi;
        populate_due.n = n + 1;
    }
}

/* The usable size of block p, just handed out by the engine: a pool engine's is in
 * its size word (pool.h), read without the indirect call. */
static inline uint64_t usable_of(const struct fm_heap *h, void *p)
{
    if (fm_likely(h->engine->pool_layout))
        return bsize(from_ptr(p)) - OVERHEAD;
    return h->engine->usable_size(h->eng, p);
}

/* Count block p, just handed out by the engine, as live, and populate ahead of it.
 * Its second word may hold the cached mark from an earlier life (a cached block given
 * back): cleared, since no block the program holds may carry it (tcache.c, "Double
 * free").  Called with the lock held. */
static inline void handed_out(struct fm_heap *h, void *p)
{
    uint64_t u = usable_of(h, p);
    if (__atomic_load_n(&h->populate, __ATOMIC_RELAXED) && (char *)p + u > h->populated &&
        u <= POPULATE_SMALL)
        populate_ahead(h, p, (char *)p + u);
    if (h->caches)
        ((void **)p)[1] = NULL;
    h->c.live_blocks++;
    h->c.in_use += u;
    if (h->c.in_use > h->c.peak_in_use)
        h->c.peak_in_use = h->c.in_use;
}

/* A block from the engine, growing the pool as needed; NULL when the cap is reached.
 * Called with the lock held. */
static void *alloc_locked(struct fm_heap *h, size_t align, size_t size)
{
    if (fm_unlikely(h->engine->set_site != NULL))
        h->engine->set_site(h->eng, fm_call_site);
    bool rings_settled = false;
    for (;;) {
        void *p = align > FM_ALIGN ? h->engine->memalign(h->eng, align, size)
                                   : h->engine->malloc(h->eng, size);
        if (fm_likely(p != NULL)) {
            handed_out(h, p);
            return p;
        }
        /* Before the pool grows, the frees waiting in threads' rings are done: one of
         * them may be a buffer an idle thread freed (tcache.c, "The ring"). */
        if (!rings_settled && h->caches && !fm_lock_elided()) {
            rings_settled = true;
            if (fm_tcache_release_rings(h))
                continue;
        }
        if (!grow(h, size + align)) {
            /* Blocks held in thread caches are part of the cap: they go back first. */
            if (h->caches && fm_tcache_flush_all(h))
                continue;
            return NULL;
        }
    }
}

/* alloc_locked within the cap, a refusal counted.  Called with the lock held. */
static inline void *alloc_capped(struct fm_heap *h, size_t align, size_t size)
{
    void *p = size <= h->cap ? alloc_locked(h, align, size) : NULL;
    if (fm_unlikely(p == NULL))
        h->c.failed_cap++;
    return p;
}

/* The one path every allocation call takes that the thread caches do not refill;
 * `count` is its kind's call counter. */
static void *alloc(struct fm_heap *h, size_t align, size_t size, uint64_t *count)
{
    if (fm_unlikely(h->sys))
        return fm_sys_alloc(h, align, size, false, count);
    if (fm_unlikely(size > FM_MAX_REQUEST)) {
        bool held = lock(h);
        (*count)++;
        h->c.failed_invalid++;
        unlock(h, held);
        errno = ENOMEM;
        return NULL;
    }
    bool held = lock(h);
    (*count)++;
    if (refused_damaged(h, held))
        return NULL;
    void *p = alloc_capped(h, align, size);
    unlock(h, held);
    if (fm_unlikely(p == NULL))
        errno = ENOMEM;
    return p;
}

/* The refill of a thread's cache that had no block of the size.  A miss takes
 * FM_TCACHE_BATCH blocks of the size in one engine visit (malloc_batch, which cuts a
 * free block into as many as it holds), hands out the first and stocks this thread's
 * cache with the rest, lowest address first.  With threads, that is one acquisition
 * of the heap's lock for a batch; with one thread (the lock elided) it still saves
 * the whole way in (the calls, the checks, the counters) and an index search per
 * block, for a program that allocates more than it frees misses on every call.  The
 * batch takes only what the pool has: when the pool has no block of the size, the
 * one block comes from alloc_locked, which grows the pool or, at the cap, flushes the
 * caches before giving up.  So the cap stays exact: stocked blocks count as live
 * until they are handed out, and go back to the engine before any ENOMEM.  Caches are
 * only in front of the private heap, which is never shared, so never damaged, and
 * size is at most FM_TCACHE_MAX_USABLE. */
FM_NOINLINE static void *alloc_refill(struct fm_heap *h, size_t size, uint64_t *count)
{
    size_t want = fm_tcache_refill_batch(h, size);
    bool held = lock(h);
    (*count)++;
    void *blk[FM_TCACHE_BATCH];
    size_t n = h->engine->malloc_batch(h->eng, size, blk, want);
    void *p;
    if (fm_likely(n > 0)) {
        for (size_t i = 0; i < n; i++)
            handed_out(h, blk[i]);
        p = blk[0];
        if (n > 1)
            fm_tcache_stock(h, blk + 1, n - 1);
    } else {
        p = alloc_capped(h, FM_ALIGN, size);
    }
    unlock(h, held);
    if (fm_unlikely(p == NULL))
        errno = ENOMEM;
    return p;
}

/* malloc and calloc after this thread's cache had no block of the size (or there is
 * no cache): while threaded, a batch another thread left in the depot; else a batch
 * from the engine (alloc_refill).  A thread that only allocates gets its cache here. */
static inline void *alloc_small(struct fm_heap *h, size_t size, bool zero, uint64_t *count)
{
    void *p;
    if (h->caches && size <= FM_TCACHE_MAX_USABLE && (fm_tcache_is_mine(h) || fm_tcache_make(h))) {
        fm_tcache_unshed(h, fm_block_stride(size) >> 4);
        if (!fm_lock_elided()) {
            /* another thread's batch, kept in the depot, before the engine (tcache.c) */
            p = fm_tcache_restock(h, size, zero);
            if (p)
                return p;
        }
        p = alloc_refill(h, size, count);
    } else {
        p = alloc(h, FM_ALIGN, size, count);
    }
    if (p && zero)
        memset(p, 0, size);
    return p;
}

/* A large malloc that this thread's cache for h did not serve: the block will be
 * cached when freed, so it comes from the engine at the stride its list starts at,
 * and serves any request of the list. */
static inline void *malloc_large_engine(struct fm_heap *h, size_t size)
{
    size_t s = fm_tcache_large_round(fm_block_stride(size));
    fm_tcache_unshed(h, fm_tcache_large_class(s));
    return alloc(h, FM_ALIGN, s - 8, &h->c.calls_malloc);
}

/* malloc of a size a thread's cache keeps in its large lists (tcache.c). */
FM_NOINLINE static void *malloc_large(struct fm_heap *h, size_t size)
{
    if (fm_tcache_is_mine(h)) {
        void *p = fm_tcache_malloc_large(h, size);
        return p ? p : malloc_large_engine(h, size);
    }
    return alloc(h, FM_ALIGN, size, &h->c.calls_malloc);
}

void *fm_heap_malloc_large_miss(struct fm_heap *h, size_t size)
{
    /* a ring left from when the process had threads may hold the size */
    if (fm_unlikely(fm_tcache_mine->nring != 0) && fm_tcache_settle(h))
        return fm_tcache_malloc(h, size);
    return malloc_large_engine(h, size);
}

void *fm_heap_malloc_miss(struct fm_heap *h, size_t size)
{
    /* the frees waiting in this thread's ring may hold the size (tcache.c) */
    if (h->caches && fm_tcache_settle_due(h) && fm_tcache_settle(h))
        return fm_tcache_malloc(h, size);
    if (fm_unlikely(size > FM_TCACHE_MAX_USABLE) && size <= FM_TCACHE_LARGE_MAX_USABLE && h->caches)
        return malloc_large(h, size);
    return alloc_small(h, size, false, &h->c.calls_malloc);
}

void *fm_heap_malloc(struct fm_heap *h, size_t size)
{
    return fm_tcache_malloc(h, size);
}

void *fm_heap_calloc(struct fm_heap *h, size_t size)
{
    if (fm_unlikely(h->sys))
        return fm_sys_alloc(h, FM_ALIGN, size, true, &h->c.calls_calloc);
    if (h->caches && size <= FM_TCACHE_MAX_USABLE) {
        void *p = fm_tcache_calloc(h, size);
        if (p == NULL && fm_tcache_settle_due(h) && fm_tcache_settle(h))
            p = fm_tcache_calloc(h, size);
        if (p)
            return p;
    }
    return alloc_small(h, size, true, &h->c.calls_calloc);
}

void *fm_heap_memalign(struct fm_heap *h, size_t align, size_t size)
{
    fm_assert(fm_is_pow2(align) && align <= FM_MAX_ALIGN);
    return alloc(h, align < FM_ALIGN ? FM_ALIGN : align, size, &h->c.calls_aligned);
}

bool fm_heap_product(struct fm_heap *h, size_t n, size_t size, size_t *out)
{
    if (fm_unlikely(__builtin_mul_overflow(n, size, out))) {
        fm_heap_count_invalid(h);
        errno = ENOMEM;
        return false;
    }
    return true;
}

void fm_heap_count_invalid(struct fm_heap *h)
{
    bool held = lock(h);
    h->c.failed_invalid++;
    unlock(h, held);
}

/* Whether p is a block a thread cache holds (freed already): the engine would take
 * it back while the cache still lists it, and hand it out twice.  p may be anything
 * in the heap's reserved range, past the memory made usable too: nothing is read
 * before the pool says p lies in it (caches exist only in front of pool engines). */
static inline bool held_by_cache(struct fm_heap *h, void *p)
{
    if (!h->caches || !pool_in_range(h->eng, p))
        return false;
    const struct fm_tcache *tc = fm_tcache_mine; /* its own: see fm_tcache_holds */
    bool waiting = tc != NULL && tc->nring != 0;
    return (waiting || ((void **)p)[1] == fm_tcache_key) && fm_tcache_holds(h, p);
}

/* Report a pointer that is in our range but is no live block, and stop: the program
 * has damaged its heap, and going on would spread the damage. */
_Noreturn FM_COLD static void bad_pointer(struct fm_heap *h, bool held, const char *caller, const void *p)
{
    if (h->engine->diagnose) {
        char why[1024];
        fm_format(why, sizeof why, "%s", h->engine->diagnose(h->eng, p));
        unlock(h, held);
        fm_die("%s(%p): %s", caller, p, why);
    }
    int kind = held_by_cache(h, (void *)p) ? FM_FREE_DOUBLE
                                            : (int)h->engine->free(h->eng, (void *)p); /* classifies; changes nothing */
    unlock(h, held);
    if (kind == FM_FREE_DOUBLE)
        fm_die("%s(%p): double free: the block was already freed", caller, p);
    fm_die("%s(%p): not the start of a live block of this heap (freed before, or a pointer into a block)",
           caller, p);
}

void fm_heap_foreign(struct fm_heap *h, const char *caller, const void *p)
{
    if (fm_engine_debugging(h->engine))
        fm_die("%s(%p): not a pointer libfastmem handed out (it is outside the heap)", caller, p);
}

/* Heap lock held: p back to the engine; false if it is no live block, or one a
 * thread cache holds (the caller reports which, with bad_pointer). */
static bool free_locked(struct fm_heap *h, void *p)
{
    if (fm_unlikely(held_by_cache(h, p)))
        return false; /* bad_pointer names it a double free */
    ptrdiff_t r = h->engine->free(h->eng, p);
    if (fm_unlikely(r < 0))
        return false;
    h->c.calls_free++;
    h->c.live_blocks--;
    h->c.in_use -= (uint64_t)r;
    return true;
}

/* Heap lock held: the engine gave pages back.  While the process has one thread, its
 * cache sheds lists that free more than it takes; with threads, the depot goes back,
 * and each thread sheds its own lists at its next settling (tcache.c, "Shedding"). */
FM_NOINLINE static void shed(struct fm_heap *h)
{
    h->shed_due = false;
    if (fm_lock_elided())
        fm_tcache_shed(h);
    else
        fm_tcache_shed_depot(h);
}

/* Heap lock held (held: by this call's lock()): p back to the engine, or the program
 * dies naming what p is. */
static inline void free_or_die(struct fm_heap *h, bool held, void *p, const char *caller)
{
    if (fm_unlikely(!free_locked(h, p)))
        bad_pointer(h, held, caller, p);
    if (fm_unlikely(h->shed_due))
        shed(h);
}

/* Free a block of this thread's cache's size range whose list is full: under one
 * lock, the list's oldest blocks go back to the engine and p joins the list. */
FM_NOINLINE static void free_flushing(struct fm_heap *h, void *p, size_t usable, const char *caller)
{
    bool held = lock(h);
    int r = fm_tcache_push_flush(h, p, usable);
    if (fm_likely(r > 0)) {
        unlock(h, held);
        return;
    }
    if (r < 0) {
        unlock(h, held);
        fm_die("%s(%p): double free: the block was already freed", caller, p);
    }
    free_or_die(h, held, p, caller);
    unlock(h, held);
}

/* fm_heap_free when this thread's cache did not take p at once: every other case. */
static enum fm_free_result free_slow(struct fm_heap *h, void *p, const char *caller)
{
    if (fm_unlikely(h->sys))
        return fm_sys_free(h, p, caller);
    if (fm_unlikely(!fm_heap_owns(h, p))) {
        fm_heap_foreign(h, caller, p);
        bool held = lock(h);
        h->c.foreign_frees++;
        unlock(h, held);
        return FM_FOREIGN;
    }
    /* A small live block goes to this thread's cache.  The checks read the block's
     * size word and neighbours without the heap's lock: another thread may be changing
     * the neighbours, which can only make a valid block look invalid, and then the
     * locked path below decides.  (committed only grows: a stale value is smaller.) */
    char *committed_end = h->base + __atomic_load_n(&h->committed, __ATOMIC_RELAXED);
    if (h->caches && ((uintptr_t)p & 15) == 0 && (char *)p >= h->base + FM_ALIGN &&
        (char *)p < committed_end) {
        if (fm_unlikely(((void **)p)[1] == fm_tcache_key))
            fm_tcache_check_marked(h, p, caller, true); /* in another thread's cache? */
        size_t u = fm_block_usable_unchecked(p);
        if (u <= FM_TCACHE_MAX_USABLE && u >= 24) {
            if (fm_tcache_may_take(h, u)) {
                if (fm_tcache_push(h, p, u))
                    return FM_FREED;
            } else if (fm_tcache_may_be_full(h, u) && !fm_lock_elided()) {
                fm_heap_free_full(h, p, u, caller); /* the depot, or the locked path */
                return FM_FREED;
            }
        }
    }
    bool held = lock(h);
    if (fm_unlikely(h->damaged)) {
        unlock(h, held); /* a damaged heap is left as it is */
        return FM_FREED;
    }
    free_or_die(h, held, p, caller);
    unlock(h, held);
    return FM_FREED;
}

static inline void free_engine(struct fm_heap *h, void *p, const char *caller)
{
    bool held = lock(h);
    free_or_die(h, held, p, caller);
    unlock(h, held);
}

void fm_heap_free_engine(struct fm_heap *h, void *p, const char *caller)
{
    free_engine(h, p, caller);
}

void fm_heap_free_full(struct fm_heap *h, void *p, size_t usable, const char *caller)
{
    if (!fm_lock_elided()) {
        /* a batch to the depot, without the heap's lock (tcache.c) */
        int r = fm_tcache_flush_to_depot(h, p, usable);
        if (fm_unlikely(r < 0))
            fm_die("%s(%p): double free: the block was already freed", caller, p);
        if (r == 0)
            free_flushing(h, p, usable, caller);
        return;
    }
    free_engine(h, p, caller);
}

void fm_heap_free_slow(struct fm_heap *h, void *p, const char *caller)
{
    free_slow(h, p, caller);
}

enum fm_free_result fm_heap_free(struct fm_heap *h, void *p, const char *caller)
{
    /* (A pointer outside the range must get its answer, FM_FOREIGN, from free_slow.) */
    if (h->caches && fm_heap_owns(h, p) && fm_tcache_free(h, p, caller))
        return FM_FREED;
    return free_slow(h, p, caller);
}

void *fm_heap_realloc(struct fm_heap *h, void *p, size_t size, const char *caller)
{
    fm_assert(fm_heap_owns(h, p) && size != 0);
    if (fm_unlikely(h->sys))
        return fm_sys_realloc(h, p, size, caller);
    if (h->caches)
        fm_tcache_check_marked(h, p, caller, false); /* in another thread's cache? */
    bool held = lock(h);
    h->c.calls_realloc++;
    if (refused_damaged(h, held))
        return NULL;
    if (fm_unlikely(!h->engine->owns_block(h->eng, p) || held_by_cache(h, p)))
        bad_pointer(h, held, caller, p);
    if (fm_unlikely(size > FM_MAX_REQUEST)) {
        h->c.failed_invalid++;
        unlock(h, held);
        errno = ENOMEM;
        return NULL;
    }
    size_t old = h->engine->usable_size(h->eng, p);
    if (h->engine->resize(h->eng, p, size)) {
        h->c.in_use += h->engine->usable_size(h->eng, p);
        h->c.in_use -= old;
        if (h->c.in_use > h->c.peak_in_use)
            h->c.peak_in_use = h->c.in_use;
        unlock(h, held);
        return p;
    }
    void *q = alloc_capped(h, FM_ALIGN, size);
    if (q == NULL) {
        unlock(h, held);
        errno = ENOMEM;
        return NULL;
    }
    unlock(h, held);
    /* Copy outside the lock: p and q are both ours alone until p is freed. */
    memcpy(q, p, old < size ? old : size);
    held = lock(h);
    if (fm_likely(!h->damaged) && free_locked(h, p))
        h->c.calls_free--; /* the caller asked for a realloc, not a free */
    unlock(h, held);
    return q;
}

size_t fm_heap_usable_size(struct fm_heap *h, const void *p)
{
    if (fm_unlikely(h->sys))
        return fm_sys_usable_size(h, p);
    if (!fm_heap_owns(h, p))
        return 0;
    bool held = lock(h);
    size_t n = h->engine->owns_block(h->eng, p) ? h->engine->usable_size(h->eng, p) : 0;
    unlock(h, held);
    return n;
}

size_t fm_heap_trim(struct fm_heap *h)
{
    if (fm_unlikely(h->sys))
        return fm_sys_trim(h);
    bool held = lock(h);
    if (h->caches)
        fm_tcache_flush_all(h);
    h->trimming = true;
    size_t n = h->engine->free_pages(h->eng, fm_os_page_size(), release_pages, h);
    h->trimming = false;
    h->shed_due = false; /* the caches were emptied first: nothing pins what went back */
    unlock(h, held);
    return n;
}

void fm_heap_copy_calls(const struct fm_counters *c, struct fastmem_stats *st)
{
    st->calls_malloc = c->calls_malloc;
    st->calls_calloc = c->calls_calloc;
    st->calls_realloc = c->calls_realloc;
    st->calls_aligned = c->calls_aligned;
    st->calls_free = c->calls_free;
    st->failed_cap = c->failed_cap;
    st->failed_invalid = c->failed_invalid;
    st->foreign_frees = c->foreign_frees;
    st->trimmed = c->trimmed;
    st->recovered = c->recovered;
}

void fm_heap_stats(struct fm_heap *h, struct fastmem_stats *st)
{
    struct fm_engine_stats es;
    memset(st, 0, sizeof *st);
    if (fm_unlikely(h->sys)) {
        fm_sys_stats(h, st);
        fm_format(st->engine, sizeof st->engine, "%s", h->engine->name);
        return;
    }
    bool held = lock(h);
    h->engine->stats(h->eng, &es);
    const struct fm_counters *c = &h->c;
    size_t prefix = (size_t)((char *)h->eng - h->base);
    size_t uncommitted = h->cap - h->committed;
    st->cap = h->cap;
    st->committed = h->committed;
    st->in_use = c->in_use;
    st->peak_in_use = c->peak_in_use;
    st->live_blocks = c->live_blocks;
    st->pool_used = prefix + es.used_bytes;
    st->free_bytes = h->cap - st->pool_used;
    st->free_fragments = es.free_blocks;
    /* A free block at the end of the pool grows with whatever is still uncommitted. */
    st->largest_free = es.largest_free;
    if (uncommitted > 0 && es.tail_free + uncommitted > st->largest_free)
        st->largest_free = es.tail_free + uncommitted;
    fm_heap_copy_calls(c, st);
    if (h->caches) {
        struct fm_tcache_totals t;
        fm_tcache_totals(h, &t);
        st->in_use -= t.bytes;
        st->live_blocks -= t.blocks;
        /* cached blocks are free to the program (a flush gives them back before any
         * ENOMEM): the engine's used bytes count them, pool_used does not */
        st->pool_used -= t.bytes + t.blocks * OVERHEAD;
        st->free_bytes = h->cap - st->pool_used;
        st->cached = t.bytes;
        st->calls_malloc += t.mallocs;
        st->calls_calloc += t.callocs;
        st->calls_free += t.frees;
    }
    unlock(h, held);
    fm_format(st->engine, sizeof st->engine, "%s", h->engine->name);
}

size_t fm_heap_report(struct fm_heap *h, char *buf, size_t size)
{
    if (fm_unlikely(h->sys))
        return fm_sys_report(h, buf, size);
    if (h->engine->report == NULL)
        return 0;
    bool held = lock(h);
    size_t n = h->engine->report(h->eng, buf, size);
    unlock(h, held);
    return n;
}

const char *fm_heap_check(struct fm_heap *h)
{
    if (fm_unlikely(h->sys))
        return fm_sys_check(h);
    bool held = lock(h);
    const char *why = h->damaged ? "the heap was found damaged after a process died holding its lock"
                                 : h->engine->check(h->eng);
    unlock(h, held);
    return why;
}

/* Always the real lock here: a thread may be created between prefork and fork.  The
 * thread caches' locks are held too, so no cache is mid-change in the child. */
void fm_heap_prefork(struct fm_heap *h)
{
    fm_lock_acquire(&h->lock, h->shared);
    if (h->caches)
        fm_tcache_prefork(h);
}

void fm_heap_postfork_parent(struct fm_heap *h)
{
    if (h->caches)
        fm_tcache_postfork_parent(h);
    fm_lock_release(&h->lock, h->shared);
}

void *fm_heap_alloc_internal(struct fm_heap *h, size_t size)
{
    bool held = lock(h);
    void *p = alloc_locked(h, FM_ALIGN, size);
    if (p) {
        h->c.live_blocks--;
        h->c.in_use -= usable_of(h, p);
    }
    unlock(h, held);
    return p;
}

void fm_heap_free_held(struct fm_heap *h, void *p, const char *caller)
{
    free_or_die(h, false, p, caller);
}

void fm_heap_release_cached(struct fm_heap *h, void *p)
{
    ptrdiff_t r = h->engine->free(h->eng, p);
    if (fm_likely(r > 0)) {
        h->c.live_blocks--;
        h->c.in_use -= (uint64_t)r;
    }
}

int fm_heap_check_call(struct fm_heap *h, const char *caller, const char *what)
{
    const char *why = fm_heap_check(h);
    if (why == NULL)
        return 0;
    /* qm stops at damage it finds; a heap already marked damaged (a process died
     * holding a shared heap's lock) is refused with EIO like any engine's */
    if (fm_engine_debugging(h->engine) && !h->damaged)
        fm_die("%s: the %s at %p is damaged: %s", caller, what, (void *)h->base, why);
    fm_message("%s: the %s at %p is damaged: %s", caller, what, (void *)h->base, why);
    errno = EIO;
    return -1;
}

size_t fm_heap_leaks(struct fm_heap *h, char *buf, size_t size)
{
    if (h->sys || h->engine->leaks == NULL)
        return 0;
    bool held = lock(h);
    size_t n = h->engine->leaks(h->eng, buf, size);
    unlock(h, held);
    return n;
}

void fm_heap_with_lock(struct fm_heap *h, void (*fn)(struct fm_heap *, void *), void *arg)
{
    bool held = lock(h);
    fn(h, arg);
    unlock(h, held);
}

void fm_heap_postfork_child(struct fm_heap *h)
{
    fm_lock_init(&h->lock);
    /* Releases other threads owed or were making: those threads are gone here, and the
     * child's copy of the pages is the child's to give back. */
    for (unsigned i = 0; i < FM_RELEASING_MAX; i++) {
        struct fm_releasing *r = &h->releasing[i];
        if (r->state != 0) {
            fm_os_reset(r->lo, (size_t)(r->hi - r->lo));
            r->state = 0;
        }
    }
    h->releasing_n = 0;
    release_due = NULL;
    if (h->caches)
        fm_tcache_postfork_child(h);
}
