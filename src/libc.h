/* libc.h: glibc's allocator, for a process that links libfastmem without preloading
 * it (libc.c says why). */
#ifndef FM_LIBC_H
#define FM_LIBC_H

#include "fm.h"

#include <malloc.h>
#include <stdio.h>

struct fm_libc {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    void *(*memalign)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
    struct mallinfo2 (*mallinfo2)(void);
    struct mallinfo (*mallinfo)(void);
    int (*malloc_trim)(size_t);
    void (*malloc_stats)(void);
    int (*malloc_info)(int, FILE *);
};

/* glibc's functions, once fm_libc_resolve has succeeded. */
extern struct fm_libc fm_libc FM_HIDDEN;

/* Whether libfastmem was loaded through LD_PRELOAD or /etc/ld.so.preload. */
bool fm_libc_preloaded(void) FM_HIDDEN;

/* Fill fm_libc from libc.so.6's symbol table; false if any is missing. */
bool fm_libc_resolve(void) FM_HIDDEN;

#endif
