/* fill.c SIZE MIN_PERCENT MEMSIZE_BYTES: the cap, with blocks of one size.
 *
 * Allocates SIZE-byte blocks (each written with a pattern) until malloc fails, and
 * requires: errno ENOMEM; the usable bytes handed out at most MEMSIZE and at least
 * MIN_PERCENT of it; every block intact.  Then frees everything, fills again and
 * requires at least the same count; frees again and requires one block of 90% of
 * MEMSIZE to fit.  Prints the figures (quoted in the README).  The pointer array is
 * static so that it does not take room in the heap being measured. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *blk[1 << 22];

static size_t fill_up(size_t size, double *usable)
{
    size_t n = 0;
    *usable = 0;
    for (;;) {
        errno = 0;
        void *p = malloc(size);
        if (p == NULL)
            break;
        if (n == sizeof blk / sizeof blk[0]) {
            printf("FAIL: more than %zu blocks\n", n);
            exit(1);
        }
        memset(p, (int)(n & 0xff), size < 64 ? size : 64);
        *usable += (double)malloc_usable_size(p);
        blk[n++] = p;
    }
    if (errno != ENOMEM) {
        printf("FAIL: malloc failed with errno %d, not ENOMEM\n", errno);
        exit(1);
    }
    return n;
}

static void check_and_free(size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = blk[i];
        for (size_t k = 0; k < (size < 64 ? size : 64); k++)
            if (b[k] != (unsigned char)(i & 0xff)) {
                printf("FAIL: block %zu damaged\n", i);
                exit(1);
            }
        free(blk[i]);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fill SIZE MIN_PERCENT MEMSIZE_BYTES\n");
        return 2;
    }
    size_t size = strtoull(argv[1], NULL, 0);
    double min_percent = strtod(argv[2], NULL);
    double cap = strtod(argv[3], NULL);
    double usable;
    size_t n1 = fill_up(size, &usable);
    double percent = 100.0 * usable / cap;
    printf("size %zu: %zu blocks, %.1f%% of MEMSIZE usable\n", size, n1, percent);
    if (usable > cap || percent < min_percent) {
        printf("FAIL: %.1f%% usable, expected between %.1f%% and 100%%\n", percent, min_percent);
        return 1;
    }
    check_and_free(n1, size);
    /* The second fill fits at least as many.  It may fit a few more: while the heap
     * grew during the first fill, the block carved just before each old end could
     * not split off a sliver below the smallest block (16 bytes), so a few blocks
     * came out 16 bytes larger; freed, the pool is one block and packs perfectly. */
    size_t n2 = fill_up(size, &usable);
    if (n2 < n1 || n2 > n1 + n1 / 1000 + 1) {
        printf("FAIL: %zu blocks fitted the second time, %zu the first\n", n2, n1);
        return 1;
    }
    check_and_free(n2, size);
    size_t big = (size_t)(cap * 0.9);
    void *p = malloc(big);
    if (p == NULL) {
        printf("FAIL: after freeing everything, %zu bytes (90%% of MEMSIZE) do not fit\n", big);
        return 1;
    }
    memset(p, 1, big);
    free(p);
    printf("ok\n");
    return 0;
}
