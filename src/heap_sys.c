/* heap_sys.c: MEMMNG=sys, glibc's allocator under libfastmem's cap and statistics.
 *
 * Kamailio's maintainers planned a "system malloc" manager so users could go back to
 * the libc allocator without rebuilding; this is it.  glibc does all the work.  What
 * libfastmem keeps doing:
 *
 *  - The cap.  Every block costs its usable size plus glibc's 8-byte size word (what a
 *    chunk takes), and a request that would take that total past MEMSIZE fails with
 *    ENOMEM before glibc sees it.  glibc's own free memory and fragmentation are
 *    outside the count: the cap bounds what the program holds, not glibc's RSS.
 *  - The statistics, in the same form as the other engines'.
 *  - Pointer checks.  Every live block is in a table (open addressing, linear probing,
 *    in memory mapped apart from glibc's heap), so a pointer the library never gave
 *    out is never handed to glibc: free ignores and counts it as the other engines
 *    do.  A freed block stays in the table as a tombstone until glibc hands its
 *    address out again or the table is rebuilt, so a double free of a recently freed
 *    block is caught and named; a pointer into a block is, for sys, a pointer never
 *    handed out (ignored and counted), where the pool engines abort.
 *
 * One lock (the heap's, elided while single-threaded) covers the table and glibc's
 * call, so under threads sys is glibc serialised: it is for comparing and falling
 * back, not for speed.
 */
#include "heap_sys.h"
#include "diag.h"
#include "libc.h"
#include "os.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>

#define FREED ((uint64_t)1 << 63)
#define CHUNK_WORD 8 /* glibc's size word per chunk, counted against the cap */
#define MIN_SLOTS ((size_t)1024)
/* The most glibc rounds a request up: 16-byte chunks (at least 32 bytes), or whole
 * pages for a chunk it maps apart. */
#define ROUNDING ((uint64_t)4096 + 32)

struct fm_sys_slot {
    uintptr_t p;
    uint64_t v; /* usable size, | FREED for a tombstone */
};

/* The home slot of p in a table of 2^log2.  Neighbouring blocks get neighbouring
 * slots (p's own bits, not a scrambling hash), so a program working through its
 * blocks in address order works through the table in order too, instead of missing
 * the cache on every call; the bits above the table's span are folded in so that
 * distant regions (glibc's heap, its mapped chunks, other arenas) do not pile up on
 * the same slots. */
static inline size_t home(uintptr_t p, unsigned log2)
{
    uintptr_t k = p >> 4;
    return (size_t)((k ^ (k >> log2) * 0x9e3779b1u) & (((uintptr_t)1 << log2) - 1));
}

static inline size_t slot_of(const struct fm_heap *h, uintptr_t p)
{
    return home(p, h->sys_log2);
}

/* The slot holding p (live or tombstone), or NULL. */
static struct fm_sys_slot *find(const struct fm_heap *h, const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    if (h->sys_slots == NULL || p == 0)
        return NULL;
    size_t mask = ((size_t)1 << h->sys_log2) - 1;
    for (size_t i = slot_of(h, p);; i = (i + 1) & mask) {
        struct fm_sys_slot *s = &h->sys_slots[i];
        if (s->p == p)
            return s;
        if (s->p == 0)
            return NULL;
    }
}

/* Put p in table t (of 2^log2 slots), reusing its own slot if it has one. */
static void put(struct fm_sys_slot *t, unsigned log2, uintptr_t p, uint64_t v, size_t *used)
{
    size_t mask = ((size_t)1 << log2) - 1;
    for (size_t i = home(p, log2);; i = (i + 1) & mask) {
        if (t[i].p == p) {
            t[i].v = v;
            return;
        }
        if (t[i].p == 0) {
            t[i].p = p;
            t[i].v = v;
            ++*used;
            return;
        }
    }
}

/* Make room for one more entry: a new table of at least 4x the live blocks (and
 * MIN_SLOTS), without the tombstones.  false if the kernel refuses the memory. */
static bool make_room(struct fm_heap *h)
{
    size_t slots = (size_t)1 << h->sys_log2;
    if (h->sys_slots != NULL && (h->sys_used + 1) * 2 <= slots)
        return true;
    unsigned log2 = 10;
    while (((size_t)1 << log2) < MIN_SLOTS || ((size_t)1 << log2) < (h->c.live_blocks + 1) * 4)
        log2++;
    size_t bytes = fm_align_up(((size_t)1 << log2) * sizeof(struct fm_sys_slot), fm_os_page_size());
    int err = 0;
    struct fm_sys_slot *t = fm_os_reserve(bytes, &err);
    if (t == NULL)
        return false;
    if (fm_os_commit(t, bytes) != 0) {
        fm_os_release(t, bytes);
        return false;
    }
    fm_os_populate(t, bytes); /* one call, not a page fault per page of the new table */
    size_t used = 0;
    if (h->sys_slots != NULL) {
        for (size_t i = 0; i < slots; i++)
            if (h->sys_slots[i].p != 0 && !(h->sys_slots[i].v & FREED))
                put(t, log2, h->sys_slots[i].p, h->sys_slots[i].v, &used);
        fm_os_release(h->sys_slots, h->sys_bytes);
    }
    h->sys_slots = t;
    h->sys_log2 = log2;
    h->sys_used = used;
    h->sys_bytes = bytes;
    return true;
}

int fm_sys_init(struct fm_heap *h)
{
    h->sys = true;
    if (fm_libc.malloc == NULL && !fm_libc_resolve())
        return ENOTSUP;
    return 0;
}

bool fm_sys_owns(const struct fm_heap *h, const void *p)
{
    bool held = fm_lock_acquire_if_threaded((fm_lock_t *)&h->lock);
    const struct fm_sys_slot *s = find(h, p);
    bool live = s != NULL && !(s->v & FREED);
    fm_lock_release_if((fm_lock_t *)&h->lock, held);
    return live;
}

/* What the heap takes now, counted against the cap. */
static inline uint64_t taken(const struct fm_heap *h)
{
    return h->c.in_use + h->c.live_blocks * CHUNK_WORD;
}

/* Count block p, just handed out by glibc, or give it back if it passes the cap (the
 * check before malloc allowed for the request, not for glibc's rounding).  Lock held,
 * room in the table made; false if refused. */
static bool admit(struct fm_heap *h, void *p)
{
    uint64_t u = fm_libc.malloc_usable_size(p);
    if (u + CHUNK_WORD > h->cap - taken(h)) {
        fm_libc.free(p);
        return false;
    }
    put(h->sys_slots, h->sys_log2, (uintptr_t)p, u, &h->sys_used);
    h->c.in_use += u;
    h->c.live_blocks++;
    if (h->c.in_use > h->c.peak_in_use)
        h->c.peak_in_use = h->c.in_use;
    return true;
}

void *fm_sys_alloc(struct fm_heap *h, size_t align, size_t size, bool zero, uint64_t *count)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    (*count)++;
    void *p = NULL;
    if (fm_unlikely(size > FM_MAX_REQUEST)) {
        h->c.failed_invalid++;
    } else if (size + CHUNK_WORD > h->cap - taken(h)) {
        h->c.failed_cap++;
    } else {
        p = !make_room(h)         ? NULL
            : align > FM_ALIGN    ? fm_libc.memalign(align, size)
            : zero                ? fm_libc.calloc(1, size)
                                  : fm_libc.malloc(size);
        if (p != NULL && !admit(h, p))
            p = NULL;
        if (p == NULL)
            h->c.failed_cap++;
    }
    fm_lock_release_if(&h->lock, held);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void *fm_sys_realloc(struct fm_heap *h, void *p, size_t size, const char *caller)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    h->c.calls_realloc++;
    struct fm_sys_slot *s = find(h, p);
    if (s == NULL || (s->v & FREED)) {
        fm_lock_release_if(&h->lock, held);
        fm_die("%s(%p): %s", caller, p,
               s ? "the block was already freed" : "not a live block of this heap");
    }
    uint64_t old = s->v;
    void *q = NULL;
    /* glibc frees p when it moves the block, so the cap is checked before, allowing
     * for the most rounding: a failed realloc must keep p. */
    if (fm_unlikely(size > FM_MAX_REQUEST)) {
        h->c.failed_invalid++;
    } else if (size + ROUNDING > old && size + ROUNDING - old > h->cap - taken(h)) {
        h->c.failed_cap++;
    } else if (make_room(h) && (q = fm_libc.realloc(p, size)) != NULL) {
        s = find(h, p); /* make_room may have moved it */
        s->v |= FREED;
        h->c.in_use -= old;
        h->c.live_blocks--;
        uint64_t u = fm_libc.malloc_usable_size(q);
        put(h->sys_slots, h->sys_log2, (uintptr_t)q, u, &h->sys_used);
        h->c.in_use += u;
        h->c.live_blocks++;
        if (h->c.in_use > h->c.peak_in_use)
            h->c.peak_in_use = h->c.in_use;
    } else {
        h->c.failed_cap++;
    }
    fm_lock_release_if(&h->lock, held);
    if (q == NULL)
        errno = ENOMEM;
    return q;
}

enum fm_free_result fm_sys_free(struct fm_heap *h, void *p, const char *caller)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    struct fm_sys_slot *s = find(h, p);
    if (s == NULL) {
        h->c.foreign_frees++;
        fm_lock_release_if(&h->lock, held);
        return FM_FOREIGN;
    }
    if (s->v & FREED) {
        fm_lock_release_if(&h->lock, held);
        fm_die("%s(%p): double free: the block was already freed", caller, p);
    }
    h->c.in_use -= s->v;
    h->c.live_blocks--;
    h->c.calls_free++;
    s->v |= FREED;
    fm_libc.free(p);
    fm_lock_release_if(&h->lock, held);
    return FM_FREED;
}

size_t fm_sys_usable_size(struct fm_heap *h, const void *p)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    const struct fm_sys_slot *s = find(h, p);
    size_t n = s != NULL && !(s->v & FREED) ? (size_t)s->v : 0;
    fm_lock_release_if(&h->lock, held);
    return n;
}

/* Bytes glibc holds from the kernel. */
static uint64_t glibc_holds(void)
{
    struct mallinfo2 mi = fm_libc.mallinfo2();
    return (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
}

size_t fm_sys_trim(struct fm_heap *h)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    uint64_t before = glibc_holds();
    fm_libc.malloc_trim(0);
    uint64_t after = glibc_holds();
    size_t n = before > after ? (size_t)(before - after) : 0;
    h->c.trimmed += n;
    fm_lock_release_if(&h->lock, held);
    return n;
}

void fm_sys_stats(struct fm_heap *h, struct fastmem_stats *st)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    struct mallinfo2 mi = fm_libc.mallinfo2();
    const struct fm_counters *c = &h->c;
    st->cap = h->cap;
    st->committed = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    st->in_use = c->in_use;
    st->peak_in_use = c->peak_in_use;
    st->live_blocks = c->live_blocks;
    st->pool_used = taken(h);
    st->free_bytes = h->cap - st->pool_used;
    st->free_fragments = mi.ordblks;
    /* what a request is sure to get, whatever glibc's rounding */
    st->largest_free = st->free_bytes > ROUNDING + CHUNK_WORD ? st->free_bytes - ROUNDING - CHUNK_WORD : 0;
    fm_heap_copy_calls(c, st);
    fm_lock_release_if(&h->lock, held);
}

size_t fm_sys_report(struct fm_heap *h, char *buf, size_t size)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    size_t n = fm_format(buf, size, "libfastmem:   sys: glibc's allocator; live blocks tracked in a "
                         "table of %zu slots (%zu KiB)\n", h->sys_slots ? (size_t)1 << h->sys_log2 : 0,
                         h->sys_bytes / 1024);
    fm_lock_release_if(&h->lock, held);
    return n;
}

const char *fm_sys_check(struct fm_heap *h)
{
    bool held = fm_lock_acquire_if_threaded(&h->lock);
    uint64_t live = 0, bytes = 0;
    size_t slots = h->sys_slots ? (size_t)1 << h->sys_log2 : 0;
    for (size_t i = 0; i < slots; i++)
        if (h->sys_slots[i].p != 0 && !(h->sys_slots[i].v & FREED)) {
            live++;
            bytes += h->sys_slots[i].v;
        }
    const char *why = live != h->c.live_blocks || bytes != h->c.in_use
                          ? "the table of live blocks disagrees with the counters"
                          : NULL;
    fm_lock_release_if(&h->lock, held);
    return why;
}

static const char *const sys_aliases[] = {"system", NULL};

/* Only a name for MEMMNG: every call on a heap made with it goes to the functions
 * above, none to the vtable. */
const struct fm_engine fm_engine_sys = {
    .name = "sys",
    .aliases = sys_aliases,
    .no_caches = true,
    .system = true,
};
