/* foreign.c MODE: pointers libfastmem never handed out, and damaged heaps.
 *   foreign.c ignore   free() of a static, a stack and an mmap'd pointer does
 *                      nothing; malloc_usable_size says 0; realloc refuses; the heap
 *                      goes on working; the statistics count the foreign frees.
 *   foreign.c double   a double free (must abort, naming it)
 *   foreign.c interior a pointer into a block (must abort, naming it)
 *   foreign.c beyond   free() of a pointer 768 MiB past a block: under MEMSIZE=1G, in
 *                      the heap's reserved range but past the memory it has made
 *                      usable (malloc_usable_size says 0; must abort, naming it,
 *                      not fault)
 *   foreign.c beyond-realloc  the same pointer to realloc() */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fastmem.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static char static_buf[64];

/* This program frees what it must not, on purpose; called through these pointers the
 * calls are opaque to the compiler, which would otherwise refuse to build it. */
static void (*volatile free_)(void *) = free;
static void *(*volatile realloc_)(void *, size_t) = realloc;
static size_t (*volatile usable_)(void *) = malloc_usable_size;

static int ignore(void)
{
    int (*get)(struct fastmem_stats *, size_t) =
        (int (*)(struct fastmem_stats *, size_t))dlsym(RTLD_DEFAULT, "fastmem_stats_get");
    if (get == NULL) {
        puts("FAIL: not running under libfastmem");
        return 1;
    }
    struct fastmem_stats before, after;
    get(&before, sizeof before);
    char stack_buf[64];
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *foreign[] = {static_buf + 16, stack_buf, page};
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        free_(foreign[i]);
        if (usable_(foreign[i]) != 0) {
            puts("FAIL: malloc_usable_size of a foreign pointer is not 0");
            bad = 1;
        }
    }
    errno = 0;
    if (realloc_(page, 100) != NULL || errno != EINVAL) {
        puts("FAIL: realloc of a foreign pointer did not fail with EINVAL");
        bad = 1;
    }
    memset(page, 7, 4096); /* still ours to use: nothing freed it */
    get(&after, sizeof after);
    if (after.foreign_frees != before.foreign_frees + 3) {
        printf("FAIL: foreign_frees %llu -> %llu\n", (unsigned long long)before.foreign_frees,
               (unsigned long long)after.foreign_frees);
        bad = 1;
    }
    char *p = malloc(1000);
    memset(p, 1, 1000);
    free(p);
    if (!bad)
        puts("ok");
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "ignore") == 0)
        return ignore();
    if (argc == 2 && strcmp(argv[1], "double") == 0) {
        char *a = malloc(64), *b = malloc(64);
        free_(a);
        free_(a);
        free(b);
        puts("survived a double free");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "interior") == 0) {
        char *a = malloc(640);
        free_(a + 64);
        puts("survived freeing a pointer into a block");
        return 0;
    }
    if (argc == 2 && strncmp(argv[1], "beyond", 6) == 0) {
        char *a = malloc(64);
        char *far = a + ((size_t)768 << 20);
        if (usable_(far) != 0)
            puts("FAIL: malloc_usable_size of a pointer past the heap's memory is not 0");
        if (strcmp(argv[1], "beyond-realloc") == 0)
            realloc_(far, 100);
        else
            free_(far);
        puts("survived freeing a pointer past the heap's memory");
        return 0;
    }
    fprintf(stderr, "usage: foreign ignore|double|interior|beyond|beyond-realloc\n");
    return 2;
}
