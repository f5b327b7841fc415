/* linked.c: a program linked with -lfastmem reads the heap's figures through the
 * calls <fastmem.h> declares, and they agree with what it did. */
#include <fastmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    struct fastmem_stats before, after;
    if (fastmem_stats_get(&before, sizeof before) != 0) {
        perror("FAIL: fastmem_stats_get");
        return 1;
    }
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    fastmem_stats_get(&after, sizeof after);
    int ok = after.calls_malloc == before.calls_malloc + 1 &&
             after.in_use >= before.in_use + (1 << 20) && after.live_blocks == before.live_blocks + 1 &&
             after.cap == 64u << 20 && strcmp(after.engine, before.engine) == 0;
    /* An older caller's shorter struct gets its prefix. */
    struct fastmem_stats small;
    memset(&small, 0xff, sizeof small);
    fastmem_stats_get(&small, offsetof(struct fastmem_stats, committed));
    ok = ok && small.cap == after.cap && small.committed == (uint64_t)-1;
    free(p);
    if (fastmem_stats_print(1) != 0 || strcmp(fastmem_version(), FASTMEM_VERSION_STRING) != 0)
        ok = 0;
    printf("%s engine %s\n", ok ? "ok" : "FAIL", after.engine);
    return ok ? 0 : 1;
}
