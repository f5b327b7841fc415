/* lock.c: the contended path of fm_lock_acquire. */
#include "lock.h"

#define SPINS 100

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
