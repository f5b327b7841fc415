/* early.c: a shared library whose constructor allocates.  A program that links it
 * runs that constructor before the constructor of a preloaded libfastmem (libraries a
 * program needs are initialised before the preloaded ones, as libstdc++ is in every
 * C++ program), so the first malloc reaches libfastmem before libfastmem's own
 * constructor has run.  early_report() says what the constructor saw. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fastmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *early_report(void);

static char report[256] = "constructor did not run";

__attribute__((constructor)) static void allocate_first(void)
{
    char *a = malloc(100);
    char *b = calloc(10, 100);
    void *c = NULL;
    int rc = posix_memalign(&c, 4096, 1000);
    char *d = malloc(1 << 20);
    if (!a || !b || rc || !d) {
        snprintf(report, sizeof report, "FAIL: an allocation failed in the constructor");
        return;
    }
    memset(a, 'a', 100);
    memset(d, 'd', 1 << 20);
    for (int i = 0; i < 1000; i++)
        if (b[i] != 0) {
            snprintf(report, sizeof report, "FAIL: calloc memory not zero");
            return;
        }
    a = realloc(a, 5000);
    if (!a || a[99] != 'a' || (uintptr_t)c % 4096 != 0) {
        snprintf(report, sizeof report, "FAIL: realloc or posix_memalign wrong");
        return;
    }
    /* Served by libfastmem?  Only the shim defines fastmem_stats_get. */
    int (*get)(struct fastmem_stats *, size_t) =
        (int (*)(struct fastmem_stats *, size_t))dlsym(RTLD_DEFAULT, "fastmem_stats_get");
    struct fastmem_stats st;
    int served = get && get(&st, sizeof st) == 0 && st.in_use >= (1 << 20) && st.calls_malloc >= 2;
    snprintf(report, sizeof report, "constructor allocated; served by libfastmem: %s", served ? "yes" : "no");
    free(a);
    free(b);
    free(c);
    free(d);
}

const char *early_report(void)
{
    return report;
}
