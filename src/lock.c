/* lock.c: the contended path of fm_lock_acquire, the seizing side of owned locks,
 * and the shared heap's robust lock. */
#include "lock.h"
#include "diag.h"

#include <errno.h>
#include <time.h>

/* How long a waiter spins before it sleeps.  A pause is 23 ns on the EPYC the
 * benchmarks run on (10-40 ns elsewhere), so 2000 are ~50 us: longer than a refill
 * or a flush under the heap's lock takes even with its cache misses, shorter than a
 * futex sleep and wake-up costs the two threads together.  At 100 (~2 us) larson's
 * threads slept on the heap's lock ~90 times a run (strace), and each sleep left
 * its thread behind: against 100, 15 interleaved runs, larson 19.3 -> 17.9 ns a
 * call and prodcons 35-40 -> 30.7 with a third of the spread (5000 gave the same). */
#ifndef FM_LOCK_SPINS
#define FM_LOCK_SPINS 2000
#endif
#define SPINS FM_LOCK_SPINS

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void fm_lock_wait(fm_lock_t *l, bool shared)
{
    for (int i = 0; i < SPINS; i++) {
        cpu_relax();
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 && fm_lock_try(l))
            return;
    }
    /* Mark the lock contended before sleeping, so the holder knows to wake us; if the
     * exchange finds it free we now hold it (marked 2, which costs one spare wake). */
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
        fm_os_futex_wait(&l->word, 2, shared);
}

/* The kernel wakes one waiter when a robust mutex is freed (and glibc clears the
 * word's waiters flag then).  If that process is killed before it takes the lock,
 * and meanwhile another one takes and frees it uncontended, which wakes nobody, the
 * other waiters sleep on a free lock until someone contends again, and forever if
 * nobody does.  The kernel's own repair, a wake when a waiter dies in the middle of
 * its robust-list operation, fires only if the lock is free at that moment.  So a
 * wait is bounded and looked at again: a lost wake-up costs a pause of at most
 * FM_ROBUST_WAIT_NS.  Uncontended this is a trylock, a little cheaper than
 * pthread_mutex_lock (bench/locks.c). */
int fm_robust_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_trylock(m);
    while (rc == EBUSY || rc == ETIMEDOUT) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_nsec += FM_ROBUST_WAIT_NS;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &t);
    }
    return rc;
}

bool fm_owned_fast;

void fm_owned_setup(void)
{
    static bool done;
    if (!done) {
        done = true;
#if defined(__SANITIZE_THREAD__)
        fm_owned_fast = false; /* ThreadSanitizer cannot see membarrier(2)'s fences */
#else
        fm_owned_fast = fm_os_membarrier_register() == 0;
#endif
    }
}

void fm_owned_barrier(void)
{
    /* With one thread (this one) there is no owner inside to wait for. */
    if (!fm_owned_fast || fm_lock_elided())
        return;
    int e = fm_os_membarrier();
    if (e != 0) {
        /* Registration is per address space; should a child's ever be lost, register
         * again.  Without the barrier an owner could be inside unseen: no way on. */
        if (fm_os_membarrier_register() != 0 || (e = fm_os_membarrier()) != 0)
            fm_die("membarrier failed (%d) after it had worked: cannot stop the other threads' caches", e);
    }
}
