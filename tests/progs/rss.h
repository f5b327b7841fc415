/* rss.h: what the test programs that watch their own resident set share. */
#ifndef FM_TEST_RSS_H
#define FM_TEST_RSS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* VmRSS in KiB, from /proc/self/status; -1 if it cannot be read. */
static inline long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* n blocks of size bytes into p, block i written whole with i's low byte; false
 * (and "FAIL: malloc i" printed) if one is refused. */
static inline int fill_blocks(unsigned char **p, int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        p[i] = malloc(size);
        if (p[i] == NULL) {
            printf("FAIL: malloc %d\n", i);
            return 0;
        }
        memset(p[i], i & 0xff, size);
    }
    return 1;
}

#endif
