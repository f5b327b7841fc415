/* preload.c: the names a program calls.  Nothing but one forwarding line each; the
 * semantics live in posix.c.
 *
 * The whole family is replaced, including the __libc_* names and cfree, so that no
 * entry point is left to glibc's allocator: a block from one allocator reaching the
 * other's free is how preloaded allocators crash programs.
 *
 * Each name goes to glibc instead when libfastmem was linked rather than preloaded
 * (libc.c): FWD picks, on one load and compare.
 *
 * malloc and free first try this thread's cache (tcache.h's fast paths), inline: a
 * thread has a cache only for the process heap, once it exists and serves malloc, so
 * a thread with one needs neither FWD nor SITE (no engine with caches records call
 * sites) nor a look at which heap the cache is for, and its misses go straight to
 * the heap. */
#include "heap.h"
#include "init.h"
#include "libc.h"
#include "posix.h"
#include "tcache.h"

#include <stdlib.h>

/* Names glibc exports but no header declares (cfree left <stdlib.h> in glibc 2.26). */
void cfree(void *p);
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t align, size_t size);

#define FWD() fm_unlikely(fm_forwarding())

/* The allocation calls record their caller's address for the qm engine's reports
 * (one thread-local store). */
#define SITE() (fm_call_site = __builtin_return_address(0))

/* malloc and free without a cache, apart: the first call's initialisation
 * (fm_init_slow, which FWD may call) is a call that needs a stack frame, and kept
 * inline it made the fast paths build one too. */
FM_NOINLINE static void *malloc_uncached(size_t size, void *site)
{
    fm_call_site = site;
    return FWD() ? fm_libc.malloc(size) : fm_malloc(size);
}

FM_NOINLINE static void free_uncached(void *p)
{
    FWD() ? fm_libc.free(p) : fm_free(p);
}

FM_EXPORT void *malloc(size_t size)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_likely(tc != NULL))
        return fm_tcache_malloc_in(tc, &fm_process_heap, size);
    return malloc_uncached(size, __builtin_return_address(0));
}

FM_EXPORT void free(void *p)
{
    struct fm_tcache *tc = fm_tcache_mine;
    if (fm_likely(tc != NULL)) {
        fm_tcache_free_in(tc, &fm_process_heap, p, "free");
        return;
    }
    free_uncached(p);
}

FM_EXPORT void *calloc(size_t n, size_t size) { SITE(); return FWD() ? fm_libc.calloc(n, size) : fm_calloc(n, size); }
FM_EXPORT void *realloc(void *p, size_t size) { SITE(); return FWD() ? fm_libc.realloc(p, size) : fm_realloc(p, size); }
FM_EXPORT void *reallocarray(void *p, size_t n, size_t size) { SITE(); return FWD() ? fm_libc.reallocarray(p, n, size) : fm_reallocarray(p, n, size); }
FM_EXPORT void *memalign(size_t align, size_t size) { SITE(); return FWD() ? fm_libc.memalign(align, size) : fm_memalign(align, size); }
FM_EXPORT int posix_memalign(void **out, size_t align, size_t size) { SITE(); return FWD() ? fm_libc.posix_memalign(out, align, size) : fm_posix_memalign(out, align, size); }
FM_EXPORT void *aligned_alloc(size_t align, size_t size) { SITE(); return FWD() ? fm_libc.aligned_alloc(align, size) : fm_aligned_alloc(align, size); }
FM_EXPORT void *valloc(size_t size) { SITE(); return FWD() ? fm_libc.valloc(size) : fm_valloc(size); }
FM_EXPORT void *pvalloc(size_t size) { SITE(); return FWD() ? fm_libc.pvalloc(size) : fm_pvalloc(size); }
FM_EXPORT size_t malloc_usable_size(void *p) { return FWD() ? fm_libc.malloc_usable_size(p) : fm_malloc_usable_size(p); }
FM_EXPORT void cfree(void *p) { FWD() ? fm_libc.free(p) : fm_free(p); }
FM_EXPORT struct mallinfo2 mallinfo2(void) { return FWD() ? fm_libc.mallinfo2() : fm_mallinfo2(); }
FM_EXPORT struct mallinfo mallinfo(void) { return FWD() ? fm_libc.mallinfo() : fm_mallinfo(); }
FM_EXPORT int malloc_trim(size_t pad) { return FWD() ? fm_libc.malloc_trim(pad) : fm_malloc_trim(pad); }
FM_EXPORT void malloc_stats(void) { FWD() ? fm_libc.malloc_stats() : fm_malloc_stats(); }
FM_EXPORT int malloc_info(int options, FILE *fp) { return FWD() ? fm_libc.malloc_info(options, fp) : fm_malloc_info(options, fp); }

/* glibc's internal names, which some programs and libraries call directly. */
FM_EXPORT void *__libc_malloc(size_t size) { SITE(); return FWD() ? fm_libc.malloc(size) : fm_malloc(size); }
FM_EXPORT void __libc_free(void *p) { FWD() ? fm_libc.free(p) : fm_free(p); }
FM_EXPORT void *__libc_calloc(size_t n, size_t size) { SITE(); return FWD() ? fm_libc.calloc(n, size) : fm_calloc(n, size); }
FM_EXPORT void *__libc_realloc(void *p, size_t size) { SITE(); return FWD() ? fm_libc.realloc(p, size) : fm_realloc(p, size); }
FM_EXPORT void *__libc_memalign(size_t align, size_t size) { SITE(); return FWD() ? fm_libc.memalign(align, size) : fm_memalign(align, size); }
FM_EXPORT void *__libc_valloc(size_t size) { SITE(); return FWD() ? fm_libc.valloc(size) : fm_valloc(size); }
FM_EXPORT void *__libc_pvalloc(size_t size) { SITE(); return FWD() ? fm_libc.pvalloc(size) : fm_pvalloc(size); }
FM_EXPORT int __posix_memalign(void **out, size_t align, size_t size) { SITE(); return FWD() ? fm_libc.posix_memalign(out, align, size) : fm_posix_memalign(out, align, size); }

/* libfastmem's own API (include/fastmem.h). */
FM_EXPORT int fastmem_stats_get(struct fastmem_stats *st, size_t size) { return fm_stats_get(st, size); }
FM_EXPORT int fastmem_stats_print(int fd) { return fm_stats_print(fd); }
FM_EXPORT int fastmem_check(void) { return fm_check(); }
FM_EXPORT const char *fastmem_version(void) { return PACKAGE_VERSION; }

/* Make the heap before main, so a configuration we refuse stops the program there. */
__attribute__((constructor(101))) static void preload_init(void) { fm_main_heap(); }
__attribute__((destructor(101))) static void preload_fini(void) { fm_init_at_exit(); }
