/* release.c [kept]: a program whose heap peaks, then is mostly freed, gives the
 * memory back (or, with "kept", keeps it, as libfastmem does with MEMRELEASE=off).
 *
 * Allocates 4,000 blocks of 64 KiB (250 MiB), writes all of them, then frees all but
 * every hundredth and reads its resident set size (VmRSS) before and after.  Prints
 * the two and "ok" if RSS fell by at least 80% of what the blocks took (with "kept":
 * by less than 20%), else "FAIL".  The kept blocks must still hold their data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 4000, SIZE = 64 * 1024 };

static long rss_kib(void)
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

int main(int argc, char **argv)
{
    int kept = argc > 1 && strcmp(argv[1], "kept") == 0;
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(SIZE);
        if (p[i] == NULL) {
            printf("FAIL: malloc %d\n", i);
            return 1;
        }
        memset(p[i], i & 0xff, SIZE);
    }
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
