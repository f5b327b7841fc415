/* qmbugs.c MODE: memory bugs committed on purpose, for MEMMNG=qm to catch.
 * Every block is allocated in allocate_here() (or leak_small()/leak_large()), so the
 * report must name that function as the call site.
 *   overrun     one byte written past a 24-byte block, then free
 *   underrun    one byte written before a block, then free
 *   double      a block freed twice
 *   wild        free of a pointer into a block
 *   realloc     realloc of a block written past its end
 *   uaf-check   a freed block written, then fastmem_check()
 *   uaf-evict   a freed block written, then enough frees that it leaves the quarantine
 *   uaf-exit    a freed block written, then a normal exit
 *   overrun-exit  a block written past its end, never freed, then a normal exit
 *   leaks       blocks left allocated: 3 x 100 bytes from leak_small, 1 x 1000 from
 *               leak_large (the MEMSTATS=1 summary names them)
 *   clean       a correct program: every call, thousands of blocks; prints "ok" */
#define _GNU_SOURCE
#include <fastmem.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak: this program is not linked with libfastmem, which it gets by LD_PRELOAD. */
int fastmem_check(void) __attribute__((weak));

/* Through volatile pointers, so the compiler cannot see (and refuse) the bugs. */
static void (*volatile free_)(void *) = free;
static void *(*volatile realloc_)(void *, size_t) = realloc;

/* Not static, and given sizes the compiler cannot know, so that it neither clones
 * these (allocate_here.constprop.0) nor turns their malloc into a tail call. */
static volatile size_t size24 = 24, size100 = 100, size1000 = 1000;

__attribute__((noinline)) char *allocate_here(size_t n);
__attribute__((noinline)) void *leak_small(void);
__attribute__((noinline)) void *leak_large(void);

char *allocate_here(size_t n)
{
    char *p = malloc(n);
    if (p == NULL)
        abort();
    memset(p, 'a', n);
    return p;
}

void *leak_small(void)
{
    char *p = malloc(size100);
    if (p)
        memset(p, 's', size100);
    return p;
}

void *leak_large(void)
{
    char *p = malloc(size1000);
    if (p)
        memset(p, 'l', size1000);
    return p;
}

static void *volatile keep[4];

static int clean(void)
{
    enum { N = 5000 };
    static char *blocks[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(i * 37 % 3000);
            blocks[i] = i % 7 == 0 ? calloc(1, n) : malloc(n);
            if (blocks[i] == NULL)
                return 1;
            memset(blocks[i], i & 0xff, n);
        }
        for (int i = 0; i < N; i += 3) {
            size_t n = (size_t)(i * 37 % 3000);
            char *q = realloc(blocks[i], n * 2 + 1);
            if (q == NULL)
                return 1;
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)q[k] != (unsigned char)(i & 0xff))
                    return 2;
            blocks[i] = q;
        }
        for (int i = 0; i < N; i++)
            free(blocks[i]);
    }
    void *a = NULL;
    if (posix_memalign(&a, 4096, 100) != 0 || (size_t)a % 4096 != 0)
        return 3;
    memset(a, 1, 100);
    if (malloc_usable_size(a) < 100)
        return 4;
    free(a);
    char *s = strdup("a string");
    if (strcmp(s, "a string") != 0)
        return 5;
    free(s);
    if (fastmem_check == NULL || fastmem_check() != 0)
        return 6;
    puts("ok");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "clean") == 0)
        return clean();
    if (strcmp(mode, "leaks") == 0) {
        for (int i = 0; i < 3; i++)
            keep[i] = leak_small();
        keep[3] = leak_large();
        return 0;
    }
    char *p = allocate_here(size24);
    if (strcmp(mode, "overrun") == 0) {
        p[24] = 'x';
        free_(p);
    } else if (strcmp(mode, "underrun") == 0) {
        p[-1] = 'x';
        free_(p);
    } else if (strcmp(mode, "double") == 0) {
        free_(p);
        free_(p);
    } else if (strcmp(mode, "wild") == 0) {
        free_(p + 16);
    } else if (strcmp(mode, "realloc") == 0) {
        p[30] = 'x';
        p = realloc_(p, 100);
    } else if (strcmp(mode, "uaf-check") == 0) {
        free_(p);
        p[3] = 'x';
        if (fastmem_check)
            fastmem_check();
    } else if (strcmp(mode, "uaf-evict") == 0) {
        free_(p);
        p[3] = 'x';
        for (int i = 0; i < 5000; i++)
            free_(malloc(64));
    } else if (strcmp(mode, "uaf-exit") == 0) {
        free_(p);
        p[3] = 'x';
        return 0;
    } else if (strcmp(mode, "overrun-exit") == 0) {
        p[25] = 'x';
        keep[0] = p;
        return 0;
    } else {
        return 2;
    }
    puts("not caught");
    return 0;
}
