/* lock.h: a small mutex on one 32-bit futex word, usable in private memory and in a
 * MAP_SHARED region alike (Drepper, "Futexes Are Tricky", mutex 2).
 *
 * States: 0 free, 1 held, 2 held and someone may be asleep on it.  Taking a free lock
 * is one compare-and-swap; releasing an uncontended one is one exchange; the kernel
 * is entered only when a thread has to wait.  A spin first (lock.c, FM_LOCK_SPINS:
 * ~50 us) covers the common case of a holder that is about to finish (the
 * allocator's critical sections are short, but a batch's cache misses make them
 * microseconds).
 */
#ifndef FM_LOCK_H
#define FM_LOCK_H

#include "os.h"

#include <pthread.h>
#include <stdatomic.h>
#if HAVE_SYS_SINGLE_THREADED_H
#include <sys/single_threaded.h>
#endif

typedef struct {
    _Atomic uint32_t word;
} fm_lock_t;

#define FM_LOCK_INIT {0}

void fm_lock_wait(fm_lock_t *l, bool shared) FM_HIDDEN;

/* Take robust mutex m (a shared heap's lock): pthread_mutex_lock's results (0,
 * EOWNERDEAD, ENOTRECOVERABLE...), but a wait never sleeps longer than
 * FM_ROBUST_WAIT_NS at a time before it looks at the lock again (lock.c says why). */
int fm_robust_lock(pthread_mutex_t *m) FM_HIDDEN;
#define FM_ROBUST_WAIT_NS 10000000L

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
 * (glibc keeps __libc_single_threaded true until the first pthread_create; it stays
 * false after the threads are joined, and glibc 2.36 leaves it false in the child a
 * threaded process forks, so such a child takes its locks, uncontended), nothing can
 * contend, so the lock is skipped.  Returns
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

/* An owned lock: guards data one thread (the owner) uses all the time and others
 * only rarely (a thread cache: the owner on every malloc and free; another thread
 * when the heap must flush every cache, for statistics, and at fork).  The owner's
 * way in and out is two plain stores and a load, without a locked instruction: it
 * marks itself busy and checks that nobody has seized the data.  A seizer takes the
 * lock, marks the data seized, and then makes every running thread of the process
 * execute a memory barrier (membarrier(2), fm_owned_barrier), after which either
 * the owner's busy mark is visible to it (and it waits for the owner to leave) or
 * the owner will see the seized mark when it next comes in (and waits on the lock
 * instead).  That is Dekker's mutual exclusion with the owner's half of the fences
 * paid by the rare side.  Without membarrier (a kernel before 4.14, or a sandbox
 * that refuses it), fm_owned_fast is false and the owner takes the lock each time,
 * as a plain mutex. */
typedef struct {
    _Atomic uint32_t busy;   /* the owner is inside, on its fast path */
    _Atomic uint32_t seized; /* another thread has it (or is taking it) */
    fm_lock_t lock;          /* held by a seizer, or by the owner while seized */
} fm_owned_t;

extern bool fm_owned_fast FM_HIDDEN;

/* Decide fm_owned_fast, once, before any fm_owned_t is used. */
void fm_owned_setup(void) FM_HIDDEN;

/* The owner's fast way in alone: true if in (leave with fm_owned_leave(o, 1)); false
 * if not (no membarrier, or the data seized): nothing is held, fm_owned_enter decides. */
static inline bool fm_owned_try(fm_owned_t *o)
{
    if (!fm_owned_fast)
        return false;
    atomic_store_explicit(&o->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (fm_likely(atomic_load_explicit(&o->seized, memory_order_acquire) == 0))
        return true;
    atomic_store_explicit(&o->busy, 0, memory_order_release);
    return false;
}

/* The owner comes in; returns what fm_owned_leave needs (0: the process has one
 * thread, nothing to exclude; 1: the fast way; 2: the lock). */
static inline int fm_owned_enter(fm_owned_t *o)
{
    if (fm_lock_elided())
        return 0;
    if (fm_likely(fm_owned_try(o)))
        return 1;
    fm_lock_acquire(&o->lock, false);
    return 2;
}

static inline void fm_owned_leave(fm_owned_t *o, int how)
{
    if (how == 1)
        atomic_store_explicit(&o->busy, 0, memory_order_release);
    else if (how == 2)
        fm_lock_release(&o->lock, false);
}

/* Seizing, for another thread: fm_owned_seize on each, then one fm_owned_barrier
 * for them all, then fm_owned_wait on each; the data are then the seizer's until
 * fm_owned_yield. */
static inline void fm_owned_seize(fm_owned_t *o)
{
    fm_lock_acquire(&o->lock, false);
    atomic_store_explicit(&o->seized, 1, memory_order_relaxed);
}

void fm_owned_barrier(void) FM_HIDDEN;

static inline void fm_owned_wait(fm_owned_t *o)
{
    while (atomic_load_explicit(&o->busy, memory_order_acquire) != 0)
        fm_os_yield();
}

static inline void fm_owned_yield(fm_owned_t *o)
{
    atomic_store_explicit(&o->seized, 0, memory_order_release);
    fm_lock_release(&o->lock, false);
}

/* In a forked child, where no other thread exists: free, whatever state it was in. */
static inline void fm_owned_init(fm_owned_t *o)
{
    atomic_store_explicit(&o->busy, 0, memory_order_relaxed);
    atomic_store_explicit(&o->seized, 0, memory_order_relaxed);
    fm_lock_init(&o->lock);
}

#endif
