/* semantics.c: glibc's malloc semantics, case by case, checked from an ordinary
 * program with libfastmem preloaded (run by tests/preload_semantics.sh with a
 * MEMSIZE of 16M).  Prints a FAIL line per broken rule and exits non-zero if any.
 * It refuses to run without the shim: every rule would then be glibc's own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fastmem.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *__libc_malloc(size_t size);
void __libc_free(void *p);

static int failures;

/* Called through these so the compiler does not know them: the point of several
 * checks is to use a block after realloc failed, which it would flag as use after
 * free (-Wuse-after-free cannot know the call failed). */
static void *(*volatile realloc_)(void *, size_t) = realloc;
static void *(*volatile reallocarray_)(void *, size_t, size_t) = reallocarray;
static int (*stats_get)(struct fastmem_stats *, size_t);

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            printf("FAIL %s:%d: ", __func__, __LINE__);   \
            printf(__VA_ARGS__);                          \
            printf("  [%s]\n", #cond);                    \
            failures++;                                   \
        }                                                 \
    } while (0)

static struct fastmem_stats stats(void)
{
    struct fastmem_stats st;
    memset(&st, 0, sizeof st);
    stats_get(&st, sizeof st);
    return st;
}

static void fill(void *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + i);
}

static int intact(const void *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(seed + i))
            return 0;
    return 1;
}

static void zero_and_null(void)
{
    void *a = malloc(0), *b = malloc(0);
    CHECK(a != NULL && b != NULL && a != b, "malloc(0) must give unique pointers: %p %p\n", a, b);
    free(a);
    free(b);
    free(NULL);
    void *c = realloc(NULL, 100);
    CHECK(c != NULL, "realloc(NULL, 100) is malloc\n");
    uint64_t live = stats().live_blocks;
    errno = 0;
    void *d = realloc(c, 0);
    CHECK(d == NULL, "realloc(p, 0) returns NULL, got %p\n", d);
    CHECK(stats().live_blocks == live - 1, "realloc(p, 0) frees p\n");
}

static void errno_kept_by_free(void)
{
    void *p = malloc(100);
    errno = 1234;
    free(p);
    CHECK(errno == 1234, "free changed errno to %d\n", errno);
    errno = 4321;
    free(NULL);
    CHECK(errno == 4321, "free(NULL) changed errno\n");
}

static void overflow(void)
{
    volatile size_t half = SIZE_MAX / 2; /* volatile: the compiler would refuse the constant */
    errno = 0;
    CHECK(calloc(half, 3) == NULL && errno == ENOMEM, "calloc overflow: errno %d\n", errno);
    char *p = malloc(64);
    fill(p, 64, 7);
    errno = 0;
    CHECK(reallocarray_(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "reallocarray overflow\n");
    CHECK(intact(p, 64, 7), "reallocarray overflow damaged the old block\n");
    const size_t huge[] = {SIZE_MAX, SIZE_MAX - 100, (size_t)PTRDIFF_MAX};
    for (int i = 0; i < 3; i++) {
        errno = 0;
        void *q = malloc(huge[i]);
        CHECK(q == NULL && errno == ENOMEM, "malloc(%zu): %p errno %d\n", huge[i], q, errno);
    }
    errno = 0;
    CHECK(realloc_(p, SIZE_MAX - 10) == NULL && errno == ENOMEM, "realloc_(p, SIZE_MAX-10)\n");
    CHECK(intact(p, 64, 7), "a failed realloc damaged the block\n");
    free(p);
}

/* MEMSIZE is 16M: growing a block to 64M must fail and leave it as it was. */
static void realloc_at_cap(void)
{
    uint64_t refused = stats().failed_cap;
    char *p = malloc(1 << 20);
    fill(p, 1 << 20, 3);
    errno = 0;
    char *q = realloc_(p, 64 << 20);
    CHECK(q == NULL && errno == ENOMEM, "realloc past the cap: %p errno %d\n", (void *)q, errno);
    CHECK(intact(p, 1 << 20, 3), "realloc at the cap damaged the block\n");
    CHECK(malloc_usable_size(p) >= (1 << 20), "the block shrank\n");
    CHECK(stats().failed_cap == refused + 1, "failed_cap did not count the refusal\n");
    free(p);
}

static void posix_memalign_rules(void)
{
    const size_t bad[] = {0, 3, 4, 24, 48, 12};
    void *sentinel = (void *)0x5a5a;
    for (int i = 0; i < 6; i++) {
        void *out = sentinel;
        int rc = posix_memalign(&out, bad[i], 16);
        CHECK(rc == EINVAL && out == sentinel, "posix_memalign(align %zu): rc %d out %p\n", bad[i], rc, out);
    }
    void *out = sentinel;
    int rc = posix_memalign(&out, 64, SIZE_MAX - 4096);
    CHECK(rc == ENOMEM && out == sentinel, "posix_memalign huge: rc %d\n", rc);
    for (size_t a = sizeof(void *); a <= (1 << 20); a *= 2) {
        void *p = NULL;
        rc = posix_memalign(&p, a, 1000);
        CHECK(rc == 0 && p && (uintptr_t)p % a == 0, "posix_memalign(%zu): rc %d %p\n", a, rc, p);
        if (p) {
            memset(p, 0xcd, 1000);
            free(p);
        }
    }
    out = NULL;
    CHECK(posix_memalign(&out, 64, 0) == 0 && out != NULL, "posix_memalign(64, 0)\n");
    free(out);
}

static void aligned_family(void)
{
    for (size_t a = 32; a <= 65536; a *= 2) {
        void *p = memalign(a, 333), *q = aligned_alloc(a, a * 2);
        CHECK(p && (uintptr_t)p % a == 0, "memalign(%zu)\n", a);
        CHECK(q && (uintptr_t)q % a == 0, "aligned_alloc(%zu)\n", a);
        free(p);
        free(q);
    }
    volatile size_t odd = 24; /* volatile: clang refuses a literal that is not a power of 2 */
    void *r = memalign(odd, 10); /* glibc 2.36 rounds the alignment up: 32 */
    CHECK(r && (uintptr_t)r % 32 == 0, "memalign(24) is 32-aligned\n");
    free(r);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(100), *pv = pvalloc(100);
    CHECK(v && (uintptr_t)v % page == 0, "valloc is page-aligned\n");
    CHECK(pv && (uintptr_t)pv % page == 0, "pvalloc is page-aligned\n");
    CHECK(pv && malloc_usable_size(pv) >= page, "pvalloc rounds up to a page\n");
    free(v);
    free(pv);
}

/* Every size up to 5000: usable >= request, all of it writable without touching any
 * other block, and every block 16-byte aligned. */
static void usable_sizes(void)
{
    enum { N = 5001 };
    static unsigned char *p[N];
    static size_t u[N];
    for (size_t n = 0; n < N; n++) {
        p[n] = malloc(n);
        u[n] = malloc_usable_size(p[n]);
        CHECK(p[n] != NULL, "malloc(%zu)\n", n);
        CHECK(u[n] >= n, "malloc_usable_size(malloc(%zu)) = %zu\n", n, u[n]);
        CHECK((uintptr_t)p[n] % 16 == 0, "malloc(%zu) = %p not 16-aligned\n", n, (void *)p[n]);
        fill(p[n], u[n], (unsigned char)n);
    }
    for (size_t n = 0; n < N; n++) {
        CHECK(intact(p[n], u[n], (unsigned char)n), "block of %zu damaged by a neighbour\n", n);
        free(p[n]);
    }
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)\n");
}

static void introspection(void)
{
    struct mallinfo2 before = mallinfo2();
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    struct mallinfo2 after = mallinfo2();
    CHECK(after.uordblks >= before.uordblks + (1 << 20), "mallinfo2 uordblks %zu -> %zu\n",
          before.uordblks, after.uordblks);
    CHECK(after.arena <= (16u << 20) && after.arena >= (1u << 20), "mallinfo2 arena %zu\n", after.arena);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* deprecated, still called */
    struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
    CHECK(mi.uordblks >= (1 << 20), "mallinfo uordblks %d\n", mi.uordblks);
    free(p);
    int t = malloc_trim(0);
    CHECK(t == 0 || t == 1, "malloc_trim returned %d\n", t);
    void *q = malloc(2 << 20);
    CHECK(q != NULL, "malloc after malloc_trim\n");
    free(q);
    FILE *f = tmpfile();
    CHECK(f && malloc_info(0, f) == 0, "malloc_info(0)\n");
    if (f) {
        char buf[4096] = "";
        rewind(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        CHECK(strstr(buf, "<malloc") && strstr(buf, "engine="), "malloc_info wrote: %.80s\n", buf);
        errno = 0;
        CHECK(malloc_info(1, f) == -1 && errno == EINVAL, "malloc_info(1) must be EINVAL\n");
        fclose(f);
    }
}

static void glibc_names(void)
{
    void *p = __libc_malloc(50);
    CHECK(p != NULL, "__libc_malloc\n");
    memset(p, 2, 50);
    uint64_t frees = stats().calls_free;
    __libc_free(p);
    CHECK(stats().calls_free == frees + 1, "__libc_free is ours\n");
    /* cfree is only a compat symbol in glibc 2.36: it cannot be linked to by name. */
    void (*cfree_)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(cfree_ != NULL, "no cfree\n");
    if (cfree_) {
        cfree_(malloc(10));
        CHECK(stats().calls_free == frees + 2, "cfree is ours\n");
    }
}

int main(void)
{
    stats_get = (int (*)(struct fastmem_stats *, size_t))dlsym(RTLD_DEFAULT, "fastmem_stats_get");
    if (stats_get == NULL) {
        printf("FAIL: libfastmem is not preloaded (no fastmem_stats_get)\n");
        return 1;
    }
    zero_and_null();
    errno_kept_by_free();
    overflow();
    realloc_at_cap();
    posix_memalign_rules();
    aligned_family();
    usable_sizes();
    introspection();
    glibc_names();
    struct fastmem_stats st = stats();
    CHECK(st.failed_invalid >= 5, "impossible sizes were counted: %llu\n", (unsigned long long)st.failed_invalid);
    printf("%s: %d failures\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
