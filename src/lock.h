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

#endif
