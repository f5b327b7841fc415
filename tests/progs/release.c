/* release.c [kept|sessions]: a program whose heap peaks, then is mostly freed, gives
 * the memory back (or, with "kept", keeps it, as libfastmem does with MEMRELEASE=off).
 *
 * Allocates 4,000 blocks of 64 KiB (250 MiB), writes all of them, then frees all but
 * every hundredth and reads its resident set size (VmRSS) before and after.  Prints
 * the two and "ok" if RSS fell by at least 80% of what the blocks took (with "kept":
 * by less than 20%), else "FAIL".  The kept blocks must still hold their data.
 *
 * With "sessions", a server's heap instead: 160 MiB built by sessions of 50 blocks of
 * mixed sizes (most under 1 KiB, a few up to 64 KiB), each allocated together; then
 * nine sessions in ten end, their blocks freed in random order.  "ok" if RSS fell by
 * at least 60% of what the freed blocks took, and the surviving sessions' blocks
 * still hold their data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rss.h"

enum { N = 4000, SIZE = 64 * 1024 };

static uint64_t seed = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* 60% 8-127 bytes, 25% to 1 KiB, 12% to 8 KiB, 3% to 64 KiB (bench/workloads.c's mix) */
static size_t mixed_size(void)
{
    uint64_t r = rng();
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 60)
        return 8 + r % 120;
    if (pick < 85)
        return 128 + r % 896;
    if (pick < 97)
        return 1024 + r % 7168;
    return 8192 + r % 57344;
}

static int sessions(void)
{
    enum { PER = 50, MAX = 200000 };
    static unsigned char *p[MAX];
    static size_t size[MAX];
    static uint32_t order[MAX];
    size_t n = 0, bytes = 0, freed = 0, nf = 0;
    while (bytes < ((size_t)160 << 20) && n + PER <= MAX)
        for (int k = 0; k < PER; k++, n++) {
            size[n] = mixed_size();
            p[n] = malloc(size[n]);
            if (p[n] == NULL) {
                printf("FAIL: malloc %zu\n", n);
                return 1;
            }
            memset(p[n], (int)(n & 0xff), size[n]);
            bytes += size[n];
        }
    long before = rss_kib();
    for (size_t i = 0; i < n; i += PER)
        if (rng() % 10 != 0)
            for (size_t k = i; k < i + PER; k++) {
                order[nf++] = (uint32_t)k;
                freed += size[k];
            }
    for (size_t i = nf; i > 1; i--) {
        size_t j = rng() % i;
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < nf; i++) {
        free(p[order[i]]);
        p[order[i]] = NULL;
    }
    long after = rss_kib();
    int intact = 1;
    for (size_t i = 0; i < n; i++)
        if (p[i] != NULL)
            for (size_t b = 0; b < size[i]; b += 97)
                intact = intact && p[i][b] == (unsigned char)(i & 0xff);
    int ok = intact && (before - after) * 1024 >= (long)(freed / 10 * 6);
    printf("%s: RSS %ld KiB at the peak, %ld KiB after freeing %zu KiB of sessions%s\n",
           ok ? "ok" : "FAIL", before, after, freed / 1024, intact ? "" : "; kept blocks damaged");
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sessions") == 0)
        return sessions();
    int kept = argc > 1 && strcmp(argv[1], "kept") == 0;
    static unsigned char *p[N];
    if (!fill_blocks(p, N, SIZE))
        return 1;
    long before = rss_kib();
    for (int i = 0; i < N; i++)
        if (i % 100 != 0) {
            free(p[i]);
            p[i] = NULL;
        }
    long after = rss_kib();
    int intact = 1;
    for (int i = 0; i < N; i += 100)
        intact = intact && p[i][0] == (i & 0xff) && p[i][SIZE - 1] == (i & 0xff);
    long taken = (long)N * SIZE / 1024;
    int ok = intact && (kept ? before - after < taken * 2 / 10 : before - after >= taken * 8 / 10);
    printf("%s: RSS %ld KiB at the peak, %ld KiB after freeing 99%%%s\n", ok ? "ok" : "FAIL",
           before, after, intact ? "" : "; kept blocks damaged");
    for (int i = 0; i < N; i += 100)
        free(p[i]);
    return ok ? 0 : 1;
}
