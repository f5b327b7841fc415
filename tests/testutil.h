/* testutil.h: helpers shared by the Check suites. */
#ifndef FM_TESTUTIL_H
#define FM_TESTUTIL_H

#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Whether the page holding addr is resident (mincore). */
static inline bool tu_resident(const void *addr)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    unsigned char v = 0;
    ck_assert_int_eq(mincore((void *)((uintptr_t)addr & ~(page - 1)), page, &v), 0);
    return (v & 1) != 0;
}

/* Whether the kernel has MADV_POPULATE_WRITE (Linux 5.14 and later), without which
 * the heap populates nothing ahead (heap.c, "Populate-ahead"). */
static inline bool tu_kernel_populates(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    bool ok = madvise(p, page, MADV_POPULATE_WRITE) == 0 || errno != EINVAL;
    munmap(p, page);
    return ok;
}

/* Check's ck_assert_* records every assertion that passes (a write(2) each), which
 * dominates a loop of millions of checks; TU_REQUIRE costs nothing until it fails. */
#define TU_REQUIRE(cond, ...)                  \
    do {                                       \
        if (__builtin_expect(!(cond), 0))      \
            ck_abort_msg(__VA_ARGS__);         \
    } while (0)

/* A repeatable generator (xorshift64*), so a failing random run can be replayed. */
static inline uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Fill n bytes at p with a pattern derived from seed; tu_verify finds the first byte
 * that differs from it, or returns n. */
static inline void tu_fill(void *p, size_t n, uint32_t seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

static inline size_t tu_verify(const void *p, size_t n, uint32_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7 + (i >> 8)))
            return i;
    return n;
}

/* Whether this is a ThreadSanitizer build (gcc says so with a macro, clang with a
 * feature test). */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

/* Run a suite and turn its result into an exit status for the automake harness. */
static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
