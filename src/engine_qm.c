/* engine_qm.c: the debugging engine (MEMMNG=qm), for finding memory bugs.
 *
 * Kamailio's q_malloc is the manager its users run to find memory bugs: canaries
 * around every fragment, the allocating source location in its header, a double-free
 * check, and a per-call-site summary of what is still allocated at exit.  qm here
 * keeps that purpose and checks more.  Placement is TLSF's (this engine wraps
 * fm_engine_tlsf, so malloc and free stay O(1) apart from the checks); what qm adds is
 * the layout of each block and a quarantine:
 *
 *     b          the TLSF block
 *     u - 32     offset (u - b) and state (LIVE or FREED, mixed with u's address)
 *     u - 24     the call site: the return address of the malloc call
 *     u - 16     the requested size
 *     u - 8      the head guard, GUARD
 *     u          the program's size bytes
 *     u + size   the tail guard: TAIL_BYTE in every byte up to the block's end (at
 *                least TAIL_MIN, checked up to TAIL_CHECKED)
 *
 * so a write of even one byte past the end is caught, where q_malloc's word-sized
 * canary after the rounded size misses writes into the rounding.  The usable size is
 * exactly the requested size, so a program that asks malloc_usable_size never writes
 * into the guard.  An aligned block puts a LEAD word at b giving the offset, so a walk
 * over TLSF's blocks finds every header.
 *
 * On free the guards are checked and the block is poisoned (POISON_BYTE) and held in
 * a FIFO quarantine of at most RING blocks and budget() bytes instead of going back
 * to TLSF.  A block leaving the quarantine is checked to be still all poison, which
 * catches writes to freed memory; a second free of a quarantined block is a double
 * free named as such.  Blocks over POISON_MAX go straight back.  Before malloc fails
 * the quarantine is emptied, so the cap is reached at the size it claims.
 *
 * A damaged block passed to free or realloc is refused with FM_FREE_DAMAGED (or
 * owns_block says no) and diagnose() words the report; damage found in a block
 * leaving the quarantine, which no caller passed, is reported here and the process
 * stops.  check() walks every block.  Nothing here allocates, and a call site is named
 * with fm_symbolize (symbol.c) only when something is reported.
 */
#include "engine.h"
#include "diag.h"
#include "symbol.h"

#include <string.h>

#define IN (&fm_engine_tlsf)
#define QM_MAGIC 0x716d2d6465627567ULL /* "qm-debug" */
#define HEAD ((size_t)32)
#define TAIL_MIN ((size_t)8)
#define TAIL_CHECKED ((size_t)64)
#define RING 1024
#define RING_SLOTS (RING + 2) /* a rebuild may find one more freed block per death */
#define BUDGET_MAX ((uint64_t)8 << 20)
#define POISON_MAX ((size_t)256 << 10)
#define GUARD 0xf0f0f0f0f0f0f0f0ULL
#define TAIL_BYTE 0xc5
#define POISON_BYTE 0x6b
#define POISON_WORD 0x6b6b6b6b6b6b6b6bULL

enum { ST_LIVE = 0x6c697665, ST_FREED = 0x66726565, ST_LEAD = 0x6c656164 };
enum { K_NONE, K_LIVE, K_FREED };

struct head {
    uint32_t offset; /* u - b */
    uint32_t state;  /* ST_* ^ mix(u) */
    uint64_t site;
    uint64_t size;
    uint64_t guard;
};

struct lead {
    uint32_t offset;
    uint32_t state; /* ST_LEAD ^ mix(b) */
};

struct qm {
    uint64_t magic;
    size_t bytes;       /* given to create/grow, from this struct */
    void *inner;        /* the TLSF instance, after this struct */
    const void *site;   /* for the allocations that follow (set_site) */
    uint64_t q_bytes;   /* requested bytes of the quarantined blocks */
    void *busy;         /* the live block whose guards are being rewritten */
    uint32_t q_first, q_count;
    char msg[768];      /* diagnose/check sentences */
    void *ring[RING_SLOTS];
};

#define OWN fm_align_up(sizeof(struct qm), FM_ALIGN)
/* Room for malloc(1) past TLSF's own minimum: its block is HEAD + 1 + TAIL_MIN. */
#define QM_MIN_EXTRA ((size_t)32)

static inline uint32_t mix(const void *p)
{
    return (uint32_t)((uintptr_t)p >> 4) * 0x9e3779b1u;
}

static inline struct head *head_of(const void *u)
{
    return (struct head *)((char *)u - HEAD);
}

static inline uint64_t budget(const struct qm *q)
{
    uint64_t b = q->bytes / 16;
    return b < BUDGET_MAX ? b : BUDGET_MAX;
}

static void *qm_create(void *mem, size_t bytes)
{
    struct qm *q = mem;
    if (bytes < OWN + IN->min_pool + QM_MIN_EXTRA)
        return NULL;
    memset(q, 0, OWN);
    q->inner = IN->create((char *)mem + OWN, bytes - OWN);
    if (q->inner == NULL)
        return NULL;
    q->magic = QM_MAGIC;
    q->bytes = bytes;
    return q;
}

static void qm_grow(void *eng, size_t bytes)
{
    struct qm *q = eng;
    q->bytes = bytes;
    IN->grow(q->inner, bytes - OWN);
}

static void qm_set_site(void *eng, const void *site)
{
    ((struct qm *)eng)->site = site;
}

/* What u is: the start of a live block, of a quarantined one, or neither.  For a
 * block, *b is the TLSF block under it and *room the bytes from u to that block's end.
 * Reads nothing outside the pool. */
static int find(const struct qm *q, const void *u, char **b, size_t *room)
{
    uintptr_t a = (uintptr_t)u;
    if (a % FM_ALIGN != 0 || a < (uintptr_t)q->inner + HEAD || a >= (uintptr_t)q + q->bytes)
        return K_NONE;
    const struct head *h = head_of(u);
    uint32_t st = h->state ^ mix(u);
    if (st != ST_LIVE && st != ST_FREED)
        return K_NONE;
    if (h->offset < HEAD || h->offset % FM_ALIGN != 0 || h->offset > a - (uintptr_t)q->inner)
        return K_NONE;
    char *start = (char *)u - h->offset;
    if (!IN->owns_block(q->inner, start))
        return K_NONE;
    size_t usable = IN->usable_size(q->inner, start);
    if (usable < h->offset + TAIL_MIN || h->size > usable - h->offset - TAIL_MIN)
        return K_NONE;
    *b = start;
    *room = usable - h->offset;
    return st == ST_LIVE ? K_LIVE : K_FREED;
}

/* The guard bytes written after a block of size bytes with room bytes to its end. */
static inline size_t tail_len(size_t room, size_t size)
{
    size_t n = room - size;
    return n < TAIL_CHECKED ? n : TAIL_CHECKED;
}

/* What is wrong with the guards of block u, or NULL. */
static const char *guard_damage(const void *u, const struct head *h, size_t room)
{
    if (h->guard != GUARD)
        return "the guard before the block was overwritten (a write before its start)";
    const unsigned char *t = (const unsigned char *)u + h->size;
    for (size_t i = 0, n = tail_len(room, h->size); i < n; i++)
        if (t[i] != TAIL_BYTE)
            return "the guard after the block was overwritten (a write past its end)";
    return NULL;
}

/* Whether quarantined block u is still all poison. */
static bool poison_intact(const void *u, size_t size)
{
    const unsigned char *c = u;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, c + i, 8);
        if (w != POISON_WORD)
            return false;
    }
    for (; i < size; i++)
        if (c[i] != POISON_BYTE)
            return false;
    return true;
}

/* "24 bytes, allocated at main+0x1f (prog)" into q->msg after `what`. */
static const char *describe(struct qm *q, const void *u, const struct head *h, const char *what)
{
    char site[320];
    if (h->site)
        fm_symbolize((const void *)(uintptr_t)h->site, site, sizeof site);
    else
        fm_format(site, sizeof site, "an unknown call site");
    fm_format(q->msg, sizeof q->msg, "%s (block %p, %llu bytes, allocated at %s)", what, u,
              (unsigned long long)h->size, site);
    return q->msg;
}

/* Lay qm's header and guards over TLSF block b, for a block of size at b+offset. */
static void *place(struct qm *q, char *b, size_t offset, size_t size)
{
    char *u = b + offset;
    size_t room = IN->usable_size(q->inner, b) - offset;
    if (offset > HEAD) {
        struct lead *l = (struct lead *)b;
        l->offset = (uint32_t)offset;
        l->state = ST_LEAD ^ mix(b);
    }
    struct head *h = head_of(u);
    q->busy = u;
    h->offset = (uint32_t)offset;
    h->site = (uint64_t)(uintptr_t)q->site;
    h->size = size;
    h->guard = GUARD;
    memset(u + size, TAIL_BYTE, tail_len(room, size));
    __asm__ __volatile__("" ::: "memory"); /* the state last: a rebuild trusts it */
    h->state = ST_LIVE ^ mix(u);
    q->busy = NULL;
    return u;
}

/* The oldest quarantined block back to TLSF, after checking nothing wrote to it. */
static void evict(struct qm *q)
{
    void *u = q->ring[q->q_first];
    q->q_first = (q->q_first + 1) % RING_SLOTS;
    q->q_count--;
    char *b;
    size_t room;
    struct head *h = head_of(u);
    if (find(q, u, &b, &room) != K_FREED)
        fm_die("qm: freed block %p: its header was overwritten after it was freed (a write "
               "to freed memory, or past the end of the block before it)", u);
    if (!poison_intact(u, h->size) || guard_damage(u, h, room) != NULL)
        fm_die("qm: %s", describe(q, u, h, "a block was written after it was freed"));
    q->q_bytes -= h->size;
    h->state = 0;
    IN->free(q->inner, b);
}

/* Empty the quarantine; true if it held anything. */
static bool drain(struct qm *q)
{
    bool any = q->q_count != 0;
    while (q->q_count)
        evict(q);
    return any;
}

static void *qm_malloc(void *eng, size_t size)
{
    struct qm *q = eng;
    if (size > FM_MAX_REQUEST)
        return NULL;
    size_t need = HEAD + size + TAIL_MIN;
    char *b = IN->malloc(q->inner, need);
    if (b == NULL && drain(q))
        b = IN->malloc(q->inner, need);
    return b ? place(q, b, HEAD, size) : NULL;
}

static void *qm_memalign(void *eng, size_t align, size_t size)
{
    struct qm *q = eng;
    if (size > FM_MAX_REQUEST)
        return NULL;
    size_t need = align + size + TAIL_MIN;
    char *b = IN->memalign(q->inner, align, need);
    if (b == NULL && drain(q))
        b = IN->memalign(q->inner, align, need);
    return b ? place(q, b, align, size) : NULL;
}

static ptrdiff_t qm_free(void *eng, void *u)
{
    struct qm *q = eng;
    char *b;
    size_t room;
    int k = find(q, u, &b, &room);
    if (k == K_FREED)
        return FM_FREE_DOUBLE;
    if (k != K_LIVE)
        return FM_FREE_BAD_POINTER;
    struct head *h = head_of(u);
    if (guard_damage(u, h, room) != NULL)
        return FM_FREE_DAMAGED;
    size_t size = h->size;
    if (size > POISON_MAX) {
        h->state = 0;
        IN->free(q->inner, b);
        return (ptrdiff_t)size;
    }
    memset(u, POISON_BYTE, size);
    h->state = ST_FREED ^ mix(u);
    q->ring[(q->q_first + q->q_count) % RING_SLOTS] = u;
    q->q_count++;
    q->q_bytes += size;
    while (q->q_count > RING || q->q_bytes > budget(q))
        evict(q);
    return (ptrdiff_t)size;
}

static bool qm_owns_block(void *eng, const void *u)
{
    char *b;
    size_t room;
    return find(eng, u, &b, &room) == K_LIVE && guard_damage(u, head_of(u), room) == NULL;
}

static size_t qm_usable_size(void *eng, const void *u)
{
    (void)eng;
    return head_of(u)->size;
}

/* In place: within the TLSF block, or by growing it into a free neighbour.  When that
 * fails for a request larger than the quarantine may hold, the quarantine is emptied
 * first (the neighbour may be in it): a large realloc near the cap must not fail
 * because freed blocks are held back. */
static bool qm_resize(void *eng, void *u, size_t size)
{
    struct qm *q = eng;
    char *b;
    size_t room;
    if (size > FM_MAX_REQUEST || find(q, u, &b, &room) != K_LIVE)
        return false;
    struct head *h = head_of(u);
    /* From here until the guards are rewritten they may look damaged (a grown block
     * ends past its old tail guard): a process killed meanwhile leaves them to the
     * rebuild. */
    q->busy = u;
    if (size + TAIL_MIN > room) {
        size_t need = h->offset + size + TAIL_MIN;
        if (!IN->resize(q->inner, b, need) &&
            (size <= budget(q) || !drain(q) || !IN->resize(q->inner, b, need))) {
            q->busy = NULL;
            return false;
        }
        room = IN->usable_size(q->inner, b) - h->offset;
    }
    h->size = size;
    memset((char *)u + size, TAIL_BYTE, tail_len(room, size));
    q->busy = NULL;
    return true;
}

static const char *qm_diagnose(void *eng, const void *u)
{
    struct qm *q = eng;
    char *b;
    size_t room;
    int k = find(q, u, &b, &room);
    if (k == K_FREED)
        return describe(q, u, head_of(u), "double free: the block was already freed");
    if (k == K_LIVE) {
        const char *why = guard_damage(u, head_of(u), room);
        if (why)
            return describe(q, u, head_of(u), why);
    }
    if ((uintptr_t)u % FM_ALIGN == 0 && (uintptr_t)u >= (uintptr_t)q->inner + HEAD &&
        (uintptr_t)u < (uintptr_t)q + q->bytes && IN->owns_block(q->inner, (const char *)u - HEAD))
        return "the block's header was overwritten (a write past the end of the block before "
               "it, or before this one's start)";
    return "not the start of a live block of this heap (freed before, or a pointer into a block)";
}

/* The offset of the qm block inside TLSF block b (which has usable bytes). */
static size_t offset_in(const char *b, size_t usable)
{
    const struct lead *l = (const struct lead *)b;
    if (l->state == (ST_LEAD ^ mix(b)) && l->offset > HEAD && l->offset % FM_ALIGN == 0 &&
        l->offset + TAIL_MIN <= usable)
        return l->offset;
    return HEAD;
}

struct walk {
    struct qm *q;
    uint64_t live, bytes;
    const char *why;
};

static bool check_one(void *arg, void *bp, size_t usable)
{
    struct walk *w = arg;
    char *b = bp;
    char *u = b + offset_in(b, usable);
    struct head *h = head_of(u);
    char *start;
    size_t room;
    int k = find(w->q, u, &start, &room);
    if (k == K_NONE || start != b) {
        fm_format(w->q->msg, sizeof w->q->msg,
                  "block %p: its header was overwritten (a write past the end of the block "
                  "before it, or before this one's start)", (void *)u);
        w->why = w->q->msg;
        return false;
    }
    const char *why = guard_damage(u, h, room);
    if (why == NULL && k == K_FREED && !poison_intact(u, h->size))
        why = "a block was written after it was freed";
    if (why) {
        w->why = describe(w->q, u, h, why);
        return false;
    }
    return true;
}

static const char *qm_check(void *eng)
{
    struct qm *q = eng;
    if (q->magic != QM_MAGIC)
        return "the engine's control block has lost its magic number";
    const char *why = IN->check(q->inner);
    if (why)
        return why;
    struct walk w = {.q = q};
    IN->each_live(q->inner, check_one, &w);
    return w.why;
}

/* Rebuild: count live blocks, put every freed one back in the quarantine, and turn a
 * block whose process died before its header was written into a freed one. */
static bool rebuild_one(void *arg, void *bp, size_t usable)
{
    struct walk *w = arg;
    struct qm *q = w->q;
    char *b = bp;
    size_t offset = offset_in(b, usable);
    char *u = b + offset;
    struct head *h = head_of(u);
    char *start;
    size_t room;
    int k = find(q, u, &start, &room);
    if (k == K_LIVE && start == b) {
        if (u == q->busy) { /* its process died rewriting its guards: finish that */
            h->guard = GUARD;
            memset(u + h->size, TAIL_BYTE, tail_len(room, h->size));
        }
        w->live++;
        w->bytes += h->size;
        return true;
    }
    if (k != K_FREED || start != b) { /* an orphan: into the quarantine, empty */
        h->offset = (uint32_t)offset;
        h->site = 0;
        h->size = 0;
        h->guard = GUARD;
        room = usable - offset;
        memset(u, TAIL_BYTE, tail_len(room, 0));
        h->state = ST_FREED ^ mix(u);
    }
    if (q->q_count < RING_SLOTS) {
        q->ring[(q->q_first + q->q_count) % RING_SLOTS] = u;
        q->q_count++;
        q->q_bytes += h->size;
    }
    return true;
}

static const char *qm_rebuild(void *eng, uint64_t *live, uint64_t *in_use)
{
    struct qm *q = eng;
    if (q->magic != QM_MAGIC)
        return "the engine's control block has lost its magic number";
    const char *why = IN->rebuild(q->inner, live, in_use);
    if (why)
        return why;
    q->q_first = q->q_count = 0;
    q->q_bytes = 0;
    struct walk w = {.q = q};
    IN->each_live(q->inner, rebuild_one, &w);
    q->busy = NULL;
    *live = w.live;
    *in_use = w.bytes;
    return NULL;
}

static void qm_stats(void *eng, struct fm_engine_stats *st)
{
    struct qm *q = eng;
    IN->stats(q->inner, st);
    st->pool_bytes += OWN;
    st->used_bytes += OWN;
    /* what a request can have of a free block: less qm's header and guard */
    st->largest_free = st->largest_free > HEAD + TAIL_MIN ? st->largest_free - HEAD - TAIL_MIN : 0;
    st->tail_free = st->tail_free > HEAD + TAIL_MIN ? st->tail_free - HEAD - TAIL_MIN : 0;
}

static void qm_set_release(void *eng, size_t min, size_t batch, size_t page,
                           const struct fm_release_ops *ops)
{
    IN->set_release(((struct qm *)eng)->inner, min, batch, page, ops);
}

/* A trim (malloc_trim) empties the quarantine first, so every free page goes back. */
static size_t qm_free_pages(void *eng, size_t page, void (*fn)(void *, void *, size_t), void *arg)
{
    struct qm *q = eng;
    drain(q);
    return IN->free_pages(q->inner, page, fn, arg);
}

static void qm_each_live(void *eng, bool (*fn)(void *, void *, size_t), void *arg)
{
    IN->each_live(((struct qm *)eng)->inner, fn, arg);
}

static size_t qm_report(void *eng, char *buf, size_t size)
{
    struct qm *q = eng;
    return fm_format(buf, size, "libfastmem:   qm quarantine: %u freed blocks, %llu bytes, held back "
                     "to catch writes to freed memory\n", q->q_count, (unsigned long long)q->q_bytes);
}

/* ------------------------------------------------------------ leak summary */

#define SITES 1024
#define SHOWN 20

struct site_sum {
    uint64_t site, blocks, bytes;
};

struct leak_walk {
    struct qm *q;
    struct site_sum *t;
    struct site_sum other; /* sites past the table's room */
    uint64_t blocks, bytes;
};

static bool leak_one(void *arg, void *bp, size_t usable)
{
    struct leak_walk *w = arg;
    char *b = bp;
    char *u = b + offset_in(b, usable);
    char *start;
    size_t room;
    if (find(w->q, u, &start, &room) != K_LIVE || start != b)
        return true;
    const struct head *h = head_of(u);
    w->blocks++;
    w->bytes += h->size;
    uint64_t site = h->site;
    size_t i = (size_t)((site * 0x9e3779b97f4a7c15ULL) >> 54) % SITES;
    for (size_t n = 0; n < SITES; n++, i = (i + 1) % SITES) {
        struct site_sum *s = &w->t[i];
        if (s->blocks == 0 || s->site == site) {
            s->site = site;
            s->blocks++;
            s->bytes += h->size;
            return true;
        }
    }
    w->other.blocks++;
    w->other.bytes += h->size;
    return true;
}

static size_t qm_leaks(void *eng, char *buf, size_t size)
{
    struct qm *q = eng;
    struct site_sum t[SITES];
    memset(t, 0, sizeof t);
    struct leak_walk w = {.q = q, .t = t};
    IN->each_live(q->inner, leak_one, &w);
    size_t sites = 0;
    for (size_t i = 0; i < SITES; i++)
        sites += t[i].blocks != 0;
    size_t n = fm_format(buf, size, "libfastmem: still allocated at exit: %llu blocks, %llu bytes, "
                         "from %zu call sites%s\n", (unsigned long long)w.blocks,
                         (unsigned long long)w.bytes, sites, w.blocks ? "; the largest:" : "");
    if (w.blocks)
        n += fm_format(buf + n, size - n, "libfastmem:   %14s %10s  %s\n", "bytes", "blocks", "call site");
    for (size_t shown = 0; shown < SHOWN; shown++) {
        struct site_sum *best = NULL;
        for (size_t i = 0; i < SITES; i++)
            if (t[i].blocks && (best == NULL || t[i].bytes > best->bytes ||
                                (t[i].bytes == best->bytes && t[i].blocks > best->blocks)))
                best = &t[i];
        if (best == NULL)
            break;
        char name[320];
        if (best->site)
            fm_symbolize((const void *)(uintptr_t)best->site, name, sizeof name);
        else
            fm_format(name, sizeof name, "(unknown)");
        n += fm_format(buf + n, size - n, "libfastmem:   %14llu %10llu  %s\n",
                       (unsigned long long)best->bytes, (unsigned long long)best->blocks, name);
        best->blocks = 0;
        sites--;
    }
    if (sites || w.other.blocks)
        n += fm_format(buf + n, size - n, "libfastmem:   (and %zu more call sites%s)\n", sites,
                       w.other.blocks ? ", some not counted apart" : "");
    return n;
}

static const char *const qm_aliases[] = {"q_malloc", "qmalloc", "1", NULL};

const struct fm_engine fm_engine_qm = {
    .name = "qm",
    .aliases = qm_aliases,
    .min_pool = (sizeof(struct qm) + FM_ALIGN - 1) / FM_ALIGN * FM_ALIGN + FM_TLSF_MIN_POOL + QM_MIN_EXTRA,
    .create = qm_create,
    .grow = qm_grow,
    .malloc = qm_malloc,
    .memalign = qm_memalign,
    .resize = qm_resize,
    .free = qm_free,
    .usable_size = qm_usable_size,
    .owns_block = qm_owns_block,
    .stats = qm_stats,
    .set_release = qm_set_release,
    .free_pages = qm_free_pages,
    .report = qm_report,
    .rebuild = qm_rebuild,
    .check = qm_check,
    .each_live = qm_each_live,
    .set_site = qm_set_site,
    .diagnose = qm_diagnose,
    .leaks = qm_leaks,
    .no_caches = true,
};
