/* linked.c MODE: a program linked with -lfastmem.
 *
 *   linked plain      run without LD_PRELOAD: malloc stays glibc's (libfastmem answers
 *                     ENOSYS for the private heap's figures, glibc's mallinfo2 sees the
 *                     allocation), MEMSIZE is not even read, and the shm_* heap works
 *   linked preloaded  run with libfastmem preloaded too: malloc is libfastmem's, and its
 *                     figures agree with what the program did
 *
 * Prints "ok ..." and exits 0, or "FAIL ..." and exits 1. */
#include <errno.h>
#include <fastmem.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int shm_works(void)
{
    if (shm_init(1 << 20) != 0)
        return 0;
    char *s = shm_strdup("shared");
    int ok = s != NULL && strcmp(s, "shared") == 0 && shm_usable_size(s) >= 7;
    struct fastmem_stats st;
    ok = ok && shm_stats_get(&st, sizeof st) == 0 && st.live_blocks == 1 && st.cap == 1 << 20;
    shm_free(s);
    ok = ok && shm_check() == 0;
    shm_destroy();
    return ok;
}

static int plain(void)
{
    struct fastmem_stats st;
    errno = 0;
    int refused = fastmem_stats_get(&st, sizeof st) == -1 && errno == ENOSYS;
    struct mallinfo2 before = mallinfo2();
    char *p = malloc(1000);
    memset(p, 1, 1000);
    struct mallinfo2 after = mallinfo2();
    int glibc = after.uordblks >= before.uordblks + 1000;
    free(p);
    int shm = shm_works();
    printf("%s: private heap figures refused with ENOSYS: %s, glibc's mallinfo2 saw the "
           "malloc: %s, shm heap: %s\n",
           refused && glibc && shm ? "ok" : "FAIL", refused ? "yes" : "no", glibc ? "yes" : "no",
           shm ? "works" : "FAILS");
    return refused && glibc && shm ? 0 : 1;
}

static int preloaded(void)
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
    ok = ok && shm_works();
    printf("%s engine %s\n", ok ? "ok" : "FAIL", after.engine);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "plain") == 0)
        return plain();
    if (argc == 2 && strcmp(argv[1], "preloaded") == 0)
        return preloaded();
    fprintf(stderr, "usage: linked plain|preloaded\n");
    return 2;
}
