/* engine.h: the contract between a heap and the engine that manages its pool.
 *
 * An engine is pure: it is handed memory and never asks the kernel for any, takes no
 * lock and keeps no global state.  Everything it knows lives in the memory it was given
 * (its tables first, then the pool), so the same engine serves the private heap, a
 * MAP_SHARED region seen by several processes, and a unit test over a plain buffer.
 * The caller serialises every call on one instance.
 *
 * What every engine guarantees:
 *  - each block it hands out is 16-byte aligned and has at least the requested size
 *    usable, all of it writable up to usable_size();
 *  - malloc and memalign return NULL, never a wrapped-around small block, for sizes
 *    up to FM_MAX_REQUEST that do not fit (callers refuse larger ones first);
 *  - free and resize never act on a pointer that fails the engine's cheap validity
 *    checks: they report it instead;
 *  - check() walks every invariant and names the first one broken.
 */
#ifndef FM_ENGINE_H
#define FM_ENGINE_H

#include "fm.h"

/* Results of free() other than success (which is the freed block's usable size). */
enum {
    FM_FREE_BAD_POINTER = -1, /* not the start of a block this engine handed out */
    FM_FREE_DOUBLE = -2,      /* a block that is already free */
    FM_FREE_DAMAGED = -3,     /* damage found (diagnose says what): the heap must stop */
};

struct fm_engine_stats {
    uint64_t pool_bytes;   /* the pool the engine manages now, its tables included */
    uint64_t used_bytes;   /* taken by live blocks and their headers, plus the tables */
    uint64_t used_blocks;
    uint64_t free_bytes;   /* in free blocks */
    uint64_t free_blocks;
    uint64_t largest_free; /* the largest free block's usable size */
    uint64_t tail_free;    /* usable size of a free block that ends the pool, else 0:
                              it is what grows when the pool grows */
};

/* How an engine gives pages back (set_release).  give(arg, start, len): the pages of
 * [start, start+len), inside a free block, are to go back.  The caller may make that
 * system call later (heap.c, "Releases after the lock"): while *owed is not 0, some
 * may still be on their way, and before the engine writes into or hands out a free
 * block whose pages it gave, it calls wait(arg, block, bytes), which returns once
 * none of that block's is.  owed and wait may be NULL: every give is made at once. */
struct fm_release_ops {
    void (*give)(void *arg, void *start, size_t len);
    void (*wait)(void *arg, void *start, size_t len);
    const unsigned *owed;
    void *arg;
};

struct fm_engine {
    const char *name;           /* canonical MEMMNG name */
    const char *const *aliases; /* other MEMMNG names, NULL-terminated */

    /* The least memory create() accepts. */
    size_t min_pool;

    /* Lay the engine's tables and an empty pool over [mem, mem+bytes); mem is 16-byte
     * aligned.  Returns the instance (which lives at mem) or NULL if bytes is too
     * small. */
    void *(*create)(void *mem, size_t bytes);

    /* The memory given to create() now extends to mem+bytes (bytes only grows, by a
     * multiple of 16).  The new space becomes free and joins a free block before it. */
    void (*grow)(void *eng, size_t bytes);

    /* A block of at least size usable bytes, or NULL. */
    void *(*malloc)(void *eng, size_t size);

    /* Up to want blocks of at least size usable bytes into out[], lowest address
     * first within each run carved, as many successive malloc(size) calls would hand
     * them out; returns how many (0 if none fits).  The thread caches refill with it
     * (heap.c): they are put only in front of an engine that has it (every pool
     * engine does); NULL otherwise. */
    size_t (*malloc_batch)(void *eng, size_t size, void **out, size_t want);

    /* A block of at least size usable bytes whose address is a multiple of align (a
     * power of two above 16 and at most FM_MAX_ALIGN), or NULL. */
    void *(*memalign)(void *eng, size_t align, size_t size);

    /* Make the live block p hold at least size bytes without moving it.  Returns true
     * if done (shrinking always succeeds); false leaves p untouched. */
    bool (*resize)(void *eng, void *p, size_t size);

    /* Free p.  Returns the usable size p had (> 0), or FM_FREE_BAD_POINTER or
     * FM_FREE_DOUBLE having changed nothing. */
    ptrdiff_t (*free)(void *eng, void *p);

    /* The usable size of live block p (which the caller has validated). */
    size_t (*usable_size)(void *eng, const void *p);

    /* Whether p looks like a live block of this engine (cheap, O(1)). */
    bool (*owns_block)(void *eng, const void *p);

    void (*stats)(void *eng, struct fm_engine_stats *st);

    /* From now on, when a free block reaches min bytes, the whole pages (of size page)
     * inside it are to go back to the kernel: once more than batch bytes of them wait,
     * the engine calls ops->give for the oldest (batch 0: at once), and the caller
     * gives them back, then or later (see struct fm_release_ops).  min 0 turns it off;
     * ops must outlive the instance. */
    void (*set_release)(void *eng, size_t min, size_t batch, size_t page,
                        const struct fm_release_ops *ops);

    /* Call fn(arg, start, len) for every page-aligned run inside free blocks that holds
     * no engine data, so the caller can give those pages back to the kernel.  Returns
     * the total length passed. */
    size_t (*free_pages)(void *eng, size_t page, void (*fn)(void *arg, void *start, size_t len),
                         void *arg);

    /* Lines the engine adds to the statistics report (each "libfastmem:   ..." and
     * newline-terminated) into buf; returns their length.  NULL if it adds none. */
    size_t (*report)(void *eng, char *buf, size_t size);

    /* After a process died in the middle of a call: rebuild the free-block index and
     * every counter from the blocks themselves.  Stores *live_blocks and *in_use (the
     * usable bytes of live blocks) and returns NULL, or a sentence saying why the
     * blocks cannot be trusted. */
    const char *(*rebuild)(void *eng, uint64_t *live_blocks, uint64_t *in_use);

    /* Walk every invariant; NULL if all hold, else a sentence naming the first broken. */
    const char *(*check)(void *eng);

    /* Call fn(arg, p, usable) for every live block p in address order, until fn
     * returns false.  fn must not change the pool. */
    void (*each_live)(void *eng, bool (*fn)(void *arg, void *p, size_t usable), void *arg);

    /* The rest is optional (NULL) and only the debugging engine has it. */

    /* The call site (a return address) of the allocation calls that follow. */
    void (*set_site)(void *eng, const void *site);

    /* After free or resize refused p, or owns_block said no: a sentence on what is
     * wrong (the kind of damage, the block, where it was allocated), for the report
     * the heap makes before it aborts. */
    const char *(*diagnose)(void *eng, const void *p);

    /* Lines on the live blocks grouped by call site, largest first (as report()
     * writes them): the leak summary at exit.  Returns their length. */
    size_t (*leaks)(void *eng, char *buf, size_t size);

    /* The engine wants every free to reach it (no thread caches in front). */
    bool no_caches;

    /* The instance starts with block.h's struct pool (pool.h) and the blocks are its
     * own: the thread caches check a freed pointer with pool_classify inline instead
     * of calling owns_block.  Caches are only put in front of such an engine. */
    bool pool_layout;

    /* Not a pool engine at all: the system allocator (heap_sys.c). */
    bool system;
};

/* Every engine lays its blocks out as block.h does: the 8 bytes before a block hold
 * its stride (a multiple of 16, below 2^48), flags (low 4 bits; bit 0: free) and, in
 * the top 16 bits, a check (pool.h, live_check).  The usable size
 * of what may be a live block, read without validating it (callers validate with
 * owns_block); only for p inside committed pool memory. */
#define FM_STRIDE_BITS ((((size_t)1) << 48) - 16)

static inline size_t fm_block_usable_unchecked(const void *p)
{
    size_t word = __atomic_load_n((const size_t *)p - 1, __ATOMIC_RELAXED); /* pool.h, block_word */
    return (word & FM_STRIDE_BITS) - 8;
}

/* The stride of a block with n usable bytes (n <= FM_MAX_REQUEST): n and the 8-byte
 * size word, rounded up to 16, and at least 32 (a free block's header and links). */
static inline size_t fm_block_stride(size_t n)
{
    size_t s = fm_align_up(n + 8, FM_ALIGN);
    return s < 32 ? 32 : s;
}

/* Whether e is the debugging engine (it diagnoses and checks at exit). */
static inline bool fm_engine_debugging(const struct fm_engine *e)
{
    return e->diagnose != NULL;
}

/* The engines, in the order `MEMMNG` documentation lists them; NULL-terminated. */
extern const struct fm_engine *const fm_engines[] FM_HIDDEN;

/* How many engines fm_engines lists. */
size_t fm_engine_count(void) FM_HIDDEN;

/* The engine `name` designates (canonical name or alias, ASCII case-insensitive), or
 * NULL. */
const struct fm_engine *fm_engine_find(const char *name) FM_HIDDEN;

/* "tlsf (also tlsf_malloc, 2)" for every engine, joined with ", ": for messages. */
size_t fm_engine_describe(char *buf, size_t size) FM_HIDDEN;

/* The default engine, used when MEMMNG is unset. */
const struct fm_engine *fm_engine_default(void) FM_HIDDEN;

extern const struct fm_engine fm_engine_tlsf FM_HIDDEN;
/* tlsf's min_pool, as a constant for the engines built on it (engine_tlsf.c checks). */
#define FM_TLSF_MIN_POOL ((size_t)10352)
extern const struct fm_engine fm_engine_fm FM_HIDDEN;
extern const struct fm_engine fm_engine_qm FM_HIDDEN;
extern const struct fm_engine fm_engine_sys FM_HIDDEN;

#endif
