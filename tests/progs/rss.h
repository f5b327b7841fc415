/* rss.h: the test programs' reading of their own resident set. */
#ifndef FM_TEST_RSS_H
#define FM_TEST_RSS_H

#include <stdio.h>

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

#endif
