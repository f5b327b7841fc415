/* populate.c on|off|all MIB: what MEMPOPULATE does to the resident set.
 *
 * Allocates 1,000 blocks of 40 KiB, writes each block's first and last byte only, and
 * reads VmRSS before and after.  "on" (populate-ahead, the default): RSS must grow by
 * at least 90% of the blocks' bytes, since each was faulted in whole as it was handed
 * out; "off": by at most 35%, the pages written (each block's first and last, where
 * the headers are too).  Then every block must still hold its two bytes.  Prints "ok"
 * or "FAIL" with the figures; "skip" for "on" on a kernel without
 * MADV_POPULATE_WRITE (before Linux 5.14), which populates nothing.
 * "all MIB" (MEMPOPULATE=all, MEMSIZE=MIB M): the whole pool is resident before main
 * (VmRSS at least MIB), and the blocks, written whole this time, take no page fault
 * (fewer than 10 minor faults for 10,000 pages, getrusage). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rss.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { N = 1000, SIZE = 40 * 1024 };

static int kernel_populates(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    int ok = madvise(p, (size_t)page, MADV_POPULATE_WRITE) == 0 || errno != EINVAL;
    munmap(p, (size_t)page);
    return ok;
}

/* MEMPOPULATE=all with a pool of mib MiB. */
static int all(long mib)
{
    long start = rss_kib();
    struct rusage a, b;
    static unsigned char *p[N];
    getrusage(RUSAGE_SELF, &a);
    if (!fill_blocks(p, N, SIZE))
        return 1;
    getrusage(RUSAGE_SELF, &b);
    long faults = b.ru_minflt - a.ru_minflt + b.ru_majflt - a.ru_majflt;
    int intact = 1;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < SIZE; k += 4096)
            intact = intact && p[i][k] == (unsigned char)(i & 0xff);
    int ok = intact && start >= mib * 1024 && faults < 10;
    printf("%s: RSS %ld KiB at start for a pool of %ld MiB; page faults: %ld, for %ld KiB of blocks written "
           "whole%s\n", ok ? "ok" : "FAIL", start, mib, faults, (long)N * SIZE / 1024,
           intact ? "" : "; blocks damaged");
    for (int i = 0; i < N; i++)
        free(p[i]);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "all") == 0)
        return all(atol(argv[2]));
    if (argc != 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0)) {
        fprintf(stderr, "usage: populate on|off|all MIB\n");
        return 2;
    }
    int on = strcmp(argv[1], "on") == 0;
    if (on && !kernel_populates()) {
        printf("skip: the kernel has no MADV_POPULATE_WRITE\n");
        return 0;
    }
    static unsigned char *p[N];
    long before = rss_kib();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(SIZE);
        if (p[i] == NULL) {
            printf("FAIL: malloc %d\n", i);
            return 1;
        }
        p[i][0] = (unsigned char)i;
        p[i][SIZE - 1] = (unsigned char)~i;
    }
    long grew = rss_kib() - before, blocks = (long)N * SIZE / 1024;
    int intact = 1;
    for (int i = 0; i < N; i++)
        intact = intact && p[i][0] == (unsigned char)i && p[i][SIZE - 1] == (unsigned char)~i;
    int ok = intact && (on ? grew * 10 >= blocks * 9 : grew * 100 <= blocks * 35);
    printf("%s: RSS grew by %ld KiB for %ld KiB of blocks written at their ends%s\n", ok ? "ok" : "FAIL",
           grew, blocks, intact ? "" : "; blocks damaged");
    for (int i = 0; i < N; i++)
        free(p[i]);
    return ok ? 0 : 1;
}
