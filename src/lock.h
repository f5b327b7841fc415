/* lock.h: a small mutex on one 32-bit futex word, usable in private memory and in a
 * MAP_SHARED region alike (Drepper, "Futexes Are Tricky", mutex 2).
 *
 * States: 0 free, 1 held, 2 held and someone may be asleep on it.  Taking a free lock
 * is one compare-and-swap; releasing an uncontended one is one exchange; the kernel
 * is entered only when a thread has to wait.  A short spin first covers the common
 * case of a holder that is about to finish (the allocator's critical sections are
 * short).
 */
#ifndef FM_LOCK_H
#define FM_LOCK_H

#include "os.h"

#include <stdatomic.h>
#if HAVE_SYS_SINGLE_THREADED_H
#include <sys/single_threaded.h>
#endif

typedef struct {
    _Atomic uint32_t word;
} fm_lock_t;

#define FM_LOCK_INIT {0}

void fm_lock_wait(fm_lock_t *l, bool shared) FM_HIDDEN;

static inline void fm_lock_init(fm_lock_t *l)
{
    atomic_store_explicit(&l->word, 0, memory_order_relaxed);
}

static inline bool fm_lock_try(fm_lock_t *l)
{
    uint32_t expect = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, &expect, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void fm_lock_acquire(fm_lock_t *l, bool shared)
{
    if (fm_unlikely(!fm_lock_try(l)))
        fm_lock_wait(l, shared);
}

static inline void fm_lock_release(fm_lock_t *l, bool shared)
{
    if (fm_unlikely(atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2))
        fm_os_futex_wake(&l->word, 1, shared);
}

/* Lock elision for locks no other process sees: while the process has one thread
 * (glibc keeps __libc_single_threaded true until the first pthread_create, and sets
 * it again in a forked child), nothing can contend, so the lock is skipped.  Returns
 * whether it was taken; give the answer to fm_lock_release_if, so that a thread
 * created in between cannot unbalance the pair. */
static inline bool fm_lock_acquire_if_threaded(fm_lock_t *l)
{
#if HAVE_SYS_SINGLE_THREADED_H
    if (__libc_single_threaded)
        return false;
#endif
    fm_lock_acquire(l, false);
    return true;
}

/* Whether fm_lock_acquire_if_threaded would skip the lock now. */
static inline bool fm_lock_elided(void)
{
#if HAVE_SYS_SINGLE_THREADED_H
    return __libc_single_threaded;
#else
    return false;
#endif
}

static inline void fm_lock_release_if(fm_lock_t *l, bool held)
{
    if (held)
        fm_lock_release(l, false);
}

#endif
