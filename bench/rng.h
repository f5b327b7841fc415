/* rng.h: the benchmarks' random numbers: xorshift64*, seeded, so every allocator and
 * every build sees the same sequence. */
#ifndef BENCH_RNG_H
#define BENCH_RNG_H

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* The generator over any state (one per thread). */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static inline uint64_t rng(void)
{
    return rng_next(&rng_state);
}

#endif
