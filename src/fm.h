/* fm.h: what every libfastmem source file shares.
 *
 * Naming, project-wide: public names are fastmem_* and shm_* (include/fastmem.h);
 * names shared between our own files are fm_<module>_<verb> and hidden; names local to
 * one file are static and carry no prefix.  Functions returning int return 0 on
 * success and a positive errno value (or -1 with errno, where stated) on failure.
 */
#ifndef FM_FM_H
#define FM_FM_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FM_EXPORT __attribute__((visibility("default")))
#define FM_HIDDEN __attribute__((visibility("hidden")))
#define FM_NOINLINE __attribute__((noinline))
#define FM_COLD __attribute__((cold, noinline))
#define FM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define fm_likely(x) __builtin_expect(!!(x), 1)
#define fm_unlikely(x) __builtin_expect(!!(x), 0)

/* Every block of 16 bytes or more is 16-byte aligned (glibc's promise on x86-64;
 * SSE code, long double and wolfSSL rely on it), so every block is. */
#define FM_ALIGN ((size_t)16)

/* The largest request any heap considers.  Above it nothing can succeed (no pool is
 * that big), and keeping requests below it means size arithmetic never wraps. */
#define FM_MAX_REQUEST (((size_t)1) << 46)

/* The largest alignment memalign and friends accept: far past any page size, and
 * small enough that size + alignment stays far from overflow. */
#define FM_MAX_ALIGN (((size_t)1) << 30)

static inline size_t fm_align_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

static inline size_t fm_align_down(size_t x, size_t a)
{
    return x & ~(a - 1);
}

static inline bool fm_is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* ASCII-only helpers: the allocator never touches locale. */
static inline char fm_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool fm_str_ieq(const char *a, const char *b) FM_HIDDEN;
size_t fm_strlen(const char *s) FM_HIDDEN;

/* Debug tiers.  The conditions are always compiled (so they keep type-checking in
 * release builds) and the optimiser drops them when FM_DEBUG is below their tier.
 *   fm_assert:          misuse of an internal API           (FM_DEBUG >= 1)
 *   fm_assert_internal: a data-structure invariant          (FM_DEBUG >= 2)
 * Write the reason into the condition: fm_assert(p != NULL && "caller checked"). */
_Noreturn void fm_assert_fail(const char *cond, const char *file, int line) FM_COLD FM_HIDDEN;
#define fm_assert(c) \
    ((FM_DEBUG >= 1 && !(c)) ? fm_assert_fail(#c, __FILE__, __LINE__) : (void)0)
#define fm_assert_internal(c) \
    ((FM_DEBUG >= 2 && !(c)) ? fm_assert_fail(#c, __FILE__, __LINE__) : (void)0)

#endif
