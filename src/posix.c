/* posix.c: glibc's malloc semantics over the process heap.
 *
 * The rules kept here, case by case (glibc 2.36, the one Debian 12 ships):
 *  - malloc(0) returns a unique pointer; free(NULL) does nothing; free keeps errno.
 *  - realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL; a failed
 *    realloc returns NULL with ENOMEM and leaves p as it was.
 *  - calloc and reallocarray refuse an overflowing n * size with ENOMEM.
 *  - posix_memalign returns EINVAL for an alignment that is not a power of two
 *    multiple of sizeof(void *), ENOMEM when out of memory, and touches *out only on
 *    success.
 *  - memalign and aligned_alloc round an alignment that is not a power of two up to
 *    the next one (aligned_alloc is memalign in glibc 2.36), and refuse one above
 *    SIZE_MAX/2+1 with EINVAL.
 *  - valloc aligns to the page; pvalloc also rounds the size up to whole pages.
 * A pointer outside the heap's range was never ours (ld.so's, or another allocator's):
 * free ignores it and counts it, malloc_usable_size says 0, and realloc refuses it,
 * since its size cannot be known.
 */
#include "posix.h"
#include "diag.h"
#include "init.h"
#include "os.h"
#include "stats.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* The heap, or NULL with errno ENOMEM (only from inside the heap's own making). */
static inline struct fm_heap *heap(void)
{
    struct fm_heap *h = fm_main_heap();
    if (fm_unlikely(h == NULL))
        errno = ENOMEM;
    return h;
}

void *fm_malloc(size_t size)
{
    struct fm_heap *h = heap();
    return h ? fm_heap_malloc(h, size) : NULL;
}

void fm_free(void *p)
{
    if (p == NULL)
        return;
    struct fm_heap *h = fm_main_heap_if_ready();
    if (h == NULL)
        return; /* no heap yet, so p cannot be ours */
    /* free keeps errno: nothing on this path sets it (os.h's calls preserve it). */
    fm_heap_free(h, p, "free");
}

void *fm_calloc(size_t n, size_t size)
{
    struct fm_heap *h = heap();
    size_t total;
    if (h == NULL || !fm_heap_product(h, n, size, &total))
        return NULL;
    return fm_heap_calloc(h, total);
}

void *fm_realloc(void *p, size_t size)
{
    if (p == NULL)
        return fm_malloc(size);
    if (size == 0) {
        fm_free(p);
        return NULL;
    }
    struct fm_heap *h = heap();
    if (h == NULL)
        return NULL;
    if (fm_unlikely(!fm_heap_owns(h, p))) {
        fm_heap_foreign(h, "realloc", p);
        fm_message("realloc(%p): not a block of this heap (another allocator's?); refused", p);
        fm_heap_count_invalid(h);
        errno = EINVAL;
        return NULL;
    }
    return fm_heap_realloc(h, p, size, "realloc");
}

void *fm_reallocarray(void *p, size_t n, size_t size)
{
    struct fm_heap *h = heap();
    size_t total;
    if (h == NULL || !fm_heap_product(h, n, size, &total))
        return NULL;
    return fm_realloc(p, total);
}

/* The aligned allocations, once the alignment is a power of two. */
static void *aligned(struct fm_heap *h, size_t align, size_t size)
{
    if (fm_unlikely(align > FM_MAX_ALIGN)) {
        fm_heap_count_invalid(h);
        errno = ENOMEM;
        return NULL;
    }
    return fm_heap_memalign(h, align, size);
}

void *fm_memalign(size_t align, size_t size)
{
    struct fm_heap *h = heap();
    if (h == NULL)
        return NULL;
    if (fm_unlikely(align > SIZE_MAX / 2 + 1)) {
        fm_heap_count_invalid(h);
        errno = EINVAL;
        return NULL;
    }
    if (!fm_is_pow2(align))
        align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzll(align));
    return aligned(h, align, size);
}

void *fm_aligned_alloc(size_t align, size_t size)
{
    return fm_memalign(align, size);
}

int fm_posix_memalign(void **out, size_t align, size_t size)
{
    struct fm_heap *h = heap();
    if (h == NULL)
        return ENOMEM;
    if (align % sizeof(void *) != 0 || !fm_is_pow2(align)) {
        fm_heap_count_invalid(h);
        return EINVAL;
    }
    int saved = errno;
    void *p = aligned(h, align, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void *fm_valloc(size_t size)
{
    struct fm_heap *h = heap();
    return h ? aligned(h, fm_os_page_size(), size) : NULL;
}

void *fm_pvalloc(size_t size)
{
    struct fm_heap *h = heap();
    if (h == NULL)
        return NULL;
    size_t page = fm_os_page_size();
    if (size > SIZE_MAX - page) {
        fm_heap_count_invalid(h);
        errno = ENOMEM;
        return NULL;
    }
    size = size ? fm_align_up(size, page) : page;
    return aligned(h, page, size);
}

size_t fm_malloc_usable_size(void *p)
{
    struct fm_heap *h = fm_main_heap_if_ready();
    return (p && h) ? fm_heap_usable_size(h, p) : 0;
}

/* --------------------------------------------------- introspection, on the pool */

static struct fastmem_stats snapshot(void)
{
    struct fastmem_stats st;
    struct fm_heap *h = fm_main_heap();
    if (h)
        fm_heap_stats(h, &st);
    else
        memset(&st, 0, sizeof st);
    return st;
}

struct mallinfo2 fm_mallinfo2(void)
{
    struct fastmem_stats st = snapshot();
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = st.committed;                     /* memory the heap has made usable */
    mi.ordblks = st.free_fragments;              /* free blocks */
    mi.uordblks = st.in_use;                     /* handed out */
    mi.fordblks = st.pool_used < st.committed ? st.committed - st.pool_used : 0;
    mi.keepcost = st.largest_free;               /* what one more malloc could get */
    mi.usmblks = st.peak_in_use;                 /* glibc leaves this 0; the peak is more use */
    return mi;
}

static int clamp_int(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

struct mallinfo fm_mallinfo(void)
{
    struct mallinfo2 m2 = fm_mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = clamp_int(m2.arena);
    mi.ordblks = clamp_int(m2.ordblks);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.keepcost = clamp_int(m2.keepcost);
    mi.usmblks = clamp_int(m2.usmblks);
    return mi;
}

int fm_malloc_trim(size_t pad)
{
    (void)pad; /* the heap keeps no top slack to spare: every free page can go */
    struct fm_heap *h = fm_main_heap();
    return (h && fm_heap_trim(h) > 0) ? 1 : 0;
}

int fm_stats_print(int fd)
{
    struct fm_heap *h = fm_main_heap();
    if (h == NULL) {
        errno = ENOSYS;
        return -1;
    }
    char title[64];
    fm_format(title, sizeof title, "statistics of pid %d", (int)getpid());
    return fm_stats_print_titled(h, fd, title);
}

void fm_malloc_stats(void)
{
    fm_stats_print(2);
}

int fm_malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct fastmem_stats st = snapshot();
    char buf[2048];
    size_t n = fm_format(buf, sizeof buf, "<malloc version=\"fastmem-1\" engine=\"%s\">\n", st.engine);
#define XML(name, kind, doc) \
    n += fm_format(buf + n, sizeof buf - n, "<%s>%llu</%s>\n", #name, (unsigned long long)st.name, #name);
    FASTMEM_STATS_FIELDS(XML)
#undef XML
    n += fm_format(buf + n, sizeof buf - n, "</malloc>\n");
    /* The caller's stream: stdio is the caller's choice here, and no lock is held. */
    return fwrite(buf, 1, n, fp) == n ? 0 : -1;
}

int fm_check(void)
{
    struct fm_heap *h = fm_main_heap();
    if (h == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return fm_heap_check_call(h, "fastmem_check", "heap");
}

int fm_stats_get(struct fastmem_stats *st, size_t size)
{
    if (!fm_stats_size_ok(st, size))
        return -1;
    struct fm_heap *h = fm_main_heap();
    if (h == NULL) {
        errno = ENOSYS;
        return -1;
    }
    fm_stats_copy(h, st, size);
    return 0;
}
