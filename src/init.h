/* init.h: the process heap, made on first use.
 *
 * The first malloc can come before any constructor of ours has run (a C++ program's
 * libstdc++ allocates in its own constructor), so the heap is made lazily by whichever
 * call comes first; the constructor in preload.c only makes sure it happens before
 * main, so that a configuration we refuse stops the program there.
 */
#ifndef FM_INIT_H
#define FM_INIT_H

#include "heap.h"
#include "options.h"

#include <stdatomic.h>

/* FM_INIT_FORWARD: libfastmem was linked, not preloaded, and the malloc family goes
 * to glibc (libc.c). */
enum { FM_INIT_NONE, FM_INIT_RUNNING, FM_INIT_DONE, FM_INIT_FORWARD };

extern struct fm_heap fm_process_heap FM_HIDDEN;
extern struct fm_options fm_process_options FM_HIDDEN;
extern _Atomic int fm_init_state FM_HIDDEN;

struct fm_heap *fm_init_slow(void) FM_HIDDEN;

/* The process heap, made if need be; NULL when libfastmem does not serve this
 * process's malloc (FM_INIT_FORWARD), or for a call made from inside the making of it
 * (which nothing in libfastmem does). */
static inline struct fm_heap *fm_main_heap(void)
{
    if (fm_likely(atomic_load_explicit(&fm_init_state, memory_order_acquire) == FM_INIT_DONE))
        return &fm_process_heap;
    return fm_init_slow();
}

/* The process heap if it exists, without making it. */
static inline struct fm_heap *fm_main_heap_if_ready(void)
{
    return atomic_load_explicit(&fm_init_state, memory_order_acquire) == FM_INIT_DONE
               ? &fm_process_heap
               : NULL;
}

/* Whether calls go to glibc: decides on the first call. */
static inline bool fm_forwarding(void)
{
    int s = atomic_load_explicit(&fm_init_state, memory_order_acquire);
    if (fm_likely(s == FM_INIT_DONE))
        return false;
    if (s != FM_INIT_FORWARD) {
        fm_main_heap();
        s = atomic_load_explicit(&fm_init_state, memory_order_acquire);
    }
    return s == FM_INIT_FORWARD;
}

/* At exit: the MEMSTATS report, if asked for. */
void fm_init_at_exit(void) FM_HIDDEN;

#endif
