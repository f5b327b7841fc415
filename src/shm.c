/* shm.c: the shm_* API, one heap in a shared mapping for a process and the
 * processes it forks (include/fastmem.h, shm_malloc(3)).
 *
 * The region is one MAP_SHARED|MAP_ANONYMOUS mapping.  It starts with a small header
 * (a magic number and the struct fm_heap, whose lock and counters every process must
 * see), then the engine's tables, then the pool; so the region's size is the cap,
 * all of it.  The pages are the kernel's shared memory: nothing is touched until it
 * is used, unless FASTMEM_SHM_PREFAULT asks.
 *
 * What this process knows of the region is one pointer, inherited by fork.  Misuse
 * (a call before shm_init, a pointer from elsewhere) is answered with errno and one
 * line on stderr and changes nothing; a pointer inside the region that is no live
 * block means the heap is being damaged, and aborts, as for the private heap.
 */
#include "diag.h"
#include "engine.h"
#include "heap.h"
#include "os.h"
#include "stats.h"

#include <errno.h>
#include <fastmem.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define SHM_MAGIC 0x464d53484d303031ULL /* "FMSHM001" */
#define SHM_MAX ((size_t)1 << 46)      /* 64 TiB, as MEMSIZE */

struct region {
    uint64_t magic;
    size_t size;
    pid_t creator;
    struct fm_heap heap;
};

static struct region *_Atomic region;

/* The engine offset: the header, rounded to a cache line. */
#define ENGINE_OFFSET ((sizeof(struct region) + 63) & ~(size_t)63)

static struct fm_heap *heap_or_complain(const char *caller)
{
    struct region *r = atomic_load_explicit(&region, memory_order_acquire);
    if (fm_likely(r != NULL))
        return &r->heap;
    fm_message("%s: called before shm_init (or after shm_destroy)", caller);
    errno = EINVAL;
    return NULL;
}

/* Refuse with errno e and a message; returns -1. */
#define refuse(e, ...) (fm_message(__VA_ARGS__), errno = (e), -1)

FM_EXPORT int shm_init_flags(size_t size, unsigned flags)
{
    if (atomic_load(&region) != NULL)
        return refuse(EBUSY, "shm_init: the shared region already exists (%zu bytes at %p)",
                      atomic_load(&region)->size, (void *)atomic_load(&region));
    if (flags & ~(FASTMEM_SHM_LOCK | FASTMEM_SHM_PREFAULT))
        return refuse(EINVAL, "shm_init_flags: unknown flags 0x%x", flags & ~3u);
    const struct fm_engine *e = fm_engine_default();
    const char *name = fm_os_getenv("MEMMNG");
    if (name != NULL && (e = fm_engine_find(name)) == NULL) {
        char names[256];
        fm_engine_describe(names, sizeof names);
        return refuse(EINVAL, "shm_init: MEMMNG='%s' is not an engine: expected one of %s", name, names);
    }
    /* glibc's allocator cannot serve memory shared between processes */
    if (e->system)
        e = fm_engine_default();
    size_t page = fm_os_page_size();
    size_t least = fm_align_up(ENGINE_OFFSET + e->min_pool, page);
    if (size == 0 || size > SHM_MAX)
        return refuse(EINVAL, "shm_init: size %zu: expected from 1 to 64 TiB (at least %zu is used)",
                      size, least);
    size = fm_align_up(size, page);
    if (size < least)
        size = least;

    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        int err = errno;
        char sz[32];
        fm_format_size(sz, sizeof sz, size);
        return refuse(err, "shm_init: cannot map %s of shared memory: %s (%d)", sz, fm_errno_name(err), err);
    }
    if (flags & FASTMEM_SHM_LOCK) {
        if (mlock(mem, size) != 0) {
            int err = errno;
            struct rlimit rl;
            char want[32], have[32] = "unlimited";
            fm_format_size(want, sizeof want, size);
            if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                fm_format_size(have, sizeof have, rl.rlim_cur);
            munmap(mem, size);
            return refuse(err, "shm_init: cannot lock %s in RAM: %s (%d); RLIMIT_MEMLOCK is %s "
                          "(raise it with ulimit -l, or give the process CAP_IPC_LOCK)",
                          want, fm_errno_name(err), err, have);
        }
    }
    if (flags & FASTMEM_SHM_PREFAULT) {
        int err = fm_os_populate(mem, size);
        if (err == EINVAL) { /* before Linux 5.14: touch each page */
            err = 0;
            for (size_t off = 0; off < size; off += page)
                ((volatile char *)mem)[off] = 0;
        }
        if (err != 0) {
            munmap(mem, size);
            return refuse(err, "shm_init: cannot fault in the %zu bytes of the region: %s (%d)",
                          size, fm_errno_name(err), err);
        }
    }
    struct region *r = mem;
    r->magic = SHM_MAGIC;
    r->size = size;
    r->creator = getpid();
    int err = fm_heap_init(&r->heap, e, mem, size, ENGINE_OFFSET, size, NULL, true);
    if (err != 0) {
        munmap(mem, size);
        return refuse(err, "shm_init: cannot set up the heap's lock or engine (%d)", err);
    }
    struct region *expect = NULL;
    if (!atomic_compare_exchange_strong(&region, &expect, r)) {
        munmap(mem, size);
        return refuse(EBUSY, "shm_init: the shared region already exists");
    }
    return 0;
}

FM_EXPORT int shm_init(size_t size)
{
    return shm_init_flags(size, 0);
}

FM_EXPORT void shm_destroy(void)
{
    struct region *r = atomic_exchange(&region, NULL);
    if (r == NULL) {
        fm_message("shm_destroy: there is no shared region");
        return;
    }
    munmap(r, r->size);
}

/* The allocation calls record their caller's address, for the qm engine: an entry
 * point sets it once, and calls inside libfastmem go through do_malloc. */
#define SITE() (fm_call_site = __builtin_return_address(0))

static void *do_malloc(size_t size)
{
    struct fm_heap *h = heap_or_complain("shm_malloc");
    return h ? fm_heap_malloc(h, size) : NULL;
}

FM_EXPORT void *shm_malloc(size_t size)
{
    SITE();
    return do_malloc(size);
}

FM_EXPORT void *shm_calloc(size_t n, size_t size)
{
    SITE();
    struct fm_heap *h = heap_or_complain("shm_calloc");
    if (h == NULL)
        return NULL;
    size_t total;
    if (!fm_heap_product(h, n, size, &total))
        return NULL;
    /* The region's pages are zero until first written, but a block may be reused. */
    return fm_heap_calloc(h, total);
}

FM_EXPORT void shm_free(void *p)
{
    if (p == NULL)
        return;
    struct fm_heap *h = heap_or_complain("shm_free");
    if (h == NULL)
        return;
    if (fm_heap_free(h, p, "shm_free") == FM_FOREIGN)
        fm_message("shm_free(%p): not a pointer into the shared region; ignored", p);
}

FM_EXPORT void *shm_realloc(void *p, size_t size)
{
    SITE();
    if (p == NULL)
        return do_malloc(size);
    struct fm_heap *h = heap_or_complain("shm_realloc");
    if (h == NULL)
        return NULL;
    if (!fm_heap_owns(h, p)) {
        fm_heap_foreign(h, "shm_realloc", p);
        fm_message("shm_realloc(%p): not a pointer into the shared region; refused", p);
        fm_heap_count_invalid(h);
        errno = EINVAL;
        return NULL;
    }
    if (size == 0) {
        fm_heap_free(h, p, "shm_realloc");
        return NULL;
    }
    return fm_heap_realloc(h, p, size, "shm_realloc");
}

FM_EXPORT char *shm_strdup(const char *s)
{
    SITE();
    size_t n = fm_strlen(s) + 1;
    char *d = do_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

FM_EXPORT size_t shm_usable_size(const void *p)
{
    struct region *r = atomic_load_explicit(&region, memory_order_acquire);
    return (r && p) ? fm_heap_usable_size(&r->heap, p) : 0;
}

FM_EXPORT int shm_stats_get(struct fastmem_stats *st, size_t size)
{
    if (!fm_stats_size_ok(st, size))
        return -1;
    struct fm_heap *h = heap_or_complain("shm_stats_get");
    if (h == NULL)
        return -1;
    fm_stats_copy(h, st, size);
    return 0;
}

FM_EXPORT int shm_stats_print(int fd)
{
    struct fm_heap *h = heap_or_complain("shm_stats_print");
    if (h == NULL)
        return -1;
    char title[96];
    fm_format(title, sizeof title, "shared region at %p, seen by pid %d", (void *)h->base, (int)getpid());
    return fm_stats_print_titled(h, fd, title);
}

FM_EXPORT int shm_check(void)
{
    struct fm_heap *h = heap_or_complain("shm_check");
    if (h == NULL)
        return -1;
    return fm_heap_check_call(h, "shm_check", "shared heap");
}

struct fm_heap *fm_shm_heap(void)
{
    struct region *r = atomic_load_explicit(&region, memory_order_acquire);
    return r ? &r->heap : NULL;
}
