/* workloads.c: allocation workloads for comparing allocators.
 *
 *   workloads WORKLOAD [SCALE]
 *
 * runs one workload through plain malloc/free, so that the allocator under test is
 * whatever the process links or has preloaded (bench/run.sh chooses), and prints one
 * line of key=value pairs.  SCALE (default 1) multiplies the work.
 *
 *   same-inorder  1,000,000 blocks of 64 bytes allocated, then freed in allocation
 *                 order (the pattern of a table built and then torn down)
 *   same-random   the same, freed in random order (a cache flushed piecemeal)
 *   churn         20,000 live blocks of mixed sizes (mostly small, a few up to
 *                 64 KiB); 4,000,000 times, a random one is freed and replaced
 *   fragment      phases of small and larger blocks, most of each freed in random
 *                 order before the next: peak RSS over peak live bytes
 *   larson        two threads replacing blocks in one shared table of 10,000 slots
 *                 (mixed sizes up to 1 KiB), so most frees are of a block the other
 *                 thread allocated; 2,000,000 replacements each (after Larson and
 *                 Krishnan's server benchmark)
 *   prodcons      a producer thread allocates 2,000,000 blocks (16-512 bytes) and
 *                 passes them through a ring to a consumer thread, which frees them
 *   latency       one thread, churn as above, timing every call alone: p50, p99,
 *                 p99.99 and max of malloc and of free, in ns (each includes the
 *                 ~20 ns of reading the clock)
 *   release       a heap of 256 MiB built by sessions of ~50 mixed-size blocks, each
 *                 block written whole; nine sessions in ten freed, block by block in
 *                 random order, every free timed; RSS before and after, and after
 *                 200,000 more calls among the survivors (memory an allocator gives
 *                 back later, on later calls)
 *   release-threaded  the same, with a second thread that only sleeps
 *   release-contended  the same, the frees untimed, with a second thread timing
 *                 pairs of a ~100 KB malloc and its free from the first free to the
 *                 end: a second line, workload=release-contended-other, with the
 *                 frees' mean (free_ns) and the pairs' p50, p99, p99.9 and max
 *   idle-threads  32 threads, all at once, each allocate 160 blocks of 1-64 KiB (~5
 *                 MiB), write them whole and free them all, then wait: the RSS kept
 *                 while they wait (rss_held), freed memory that thread caches and
 *                 arenas hold for threads that may never allocate again
 *
 * Keys: ns_per_call (all malloc and free calls; for larson, per replacement in one
 * thread; for prodcons, per block), malloc_ns and free_ns (the two
 * phases of same-*), peak_live (bytes requested and not yet freed, at most),
 * rss_peak (VmHWM growth during the workload) and rss_over_live.  Every block is
 * written when allocated and checked before it is freed, as a program would use it,
 * so an allocator cannot win by leaving pages untouched.
 *
 * Bookkeeping arrays are allocated and touched before the clock starts.  latency
 * marks its timed loop for strace with a getpid() before it and a getppid() after,
 * so that the system calls the allocator makes inside the loop can be told from its
 * warm-up and teardown (bench/README: what sets malloc max).
 */
#define _GNU_SOURCE
#include "rng.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* VmRSS (resident set now) in bytes. */
static uint64_t rss_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* VmHWM (peak resident set) in bytes. */
static uint64_t rss_peak(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "workloads: out of memory for bookkeeping\n");
        exit(2);
    }
    memset(p, 0, n * size);
    return p;
}

static void *must_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "workloads: malloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

/* Write the block's first and last byte with a tag, and check them before freeing. */
static inline void mark(void *p, size_t n, unsigned char tag)
{
    ((unsigned char *)p)[0] = tag;
    ((unsigned char *)p)[n - 1] = tag;
}

static inline void check(const void *p, size_t n, unsigned char tag)
{
    if (((const unsigned char *)p)[0] != tag || ((const unsigned char *)p)[n - 1] != tag) {
        fprintf(stderr, "workloads: a block was damaged\n");
        exit(3);
    }
}

static void shuffle(uint32_t *a, size_t n)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng() % (i + 1);
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void same_size(const char *name, size_t scale, int random_order)
{
    size_t n = 1000000 * scale;
    const size_t size = 64;
    void **p = xcalloc(n, sizeof *p);
    uint32_t *order = xcalloc(n, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    if (random_order)
        shuffle(order, n);
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        p[i] = must_malloc(size);
        mark(p[i], size, (unsigned char)i);
    }
    double t1 = now_ns();
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        check(p[i], size, (unsigned char)i);
        free(p[i]);
    }
    double t2 = now_ns();
    printf("workload=%s calls=%zu ns_per_call=%.2f malloc_ns=%.2f free_ns=%.2f\n", name, 2 * n,
           (t2 - t0) / (double)(2 * n), (t1 - t0) / (double)n, (t2 - t1) / (double)n);
}

/* A size as a service's allocations are spread: mostly small strings and structs. */
static size_t mixed_size(void)
{
    uint64_t r = rng();
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 60)
        return 8 + r % 120;       /* 8..127 */
    if (pick < 85)
        return 128 + r % 896;     /* 128..1023 */
    if (pick < 97)
        return 1024 + r % 7168;   /* 1 KiB..8 KiB */
    return 8192 + r % 57344;      /* 8 KiB..64 KiB */
}

/* live blocks of mixed sizes, each marked. */
static void fill_live(void **p, size_t *sz, size_t live)
{
    for (size_t i = 0; i < live; i++) {
        sz[i] = mixed_size();
        p[i] = must_malloc(sz[i]);
        mark(p[i], sz[i], (unsigned char)i);
    }
}

static void churn(size_t scale)
{
    const size_t live = 20000;
    size_t ops = 4000000 * scale;
    void **p = xcalloc(live, sizeof *p);
    size_t *sz = xcalloc(live, sizeof *sz);
    double t0 = now_ns();
    fill_live(p, sz, live);
    for (size_t k = 0; k < ops; k++) {
        size_t i = rng() % live;
        check(p[i], sz[i], (unsigned char)i);
        free(p[i]);
        sz[i] = mixed_size();
        p[i] = must_malloc(sz[i]);
        mark(p[i], sz[i], (unsigned char)i);
    }
    for (size_t i = 0; i < live; i++)
        free(p[i]);
    double t1 = now_ns();
    size_t calls = 2 * (live + ops);
    printf("workload=churn calls=%zu ns_per_call=%.2f\n", calls, (t1 - t0) / (double)calls);
}

/* Phases that leave holes: a million small blocks, three quarters freed at random;
 * then 100,000 larger ones that the small holes cannot hold, three quarters freed;
 * then small ones again, which should fill the holes rather than grow the heap. */
static void fragment(size_t scale)
{
    size_t n = 1000000 * scale;
    void **p = xcalloc(n, sizeof *p);
    size_t *sz = xcalloc(n, sizeof *sz);
    uint32_t *order = xcalloc(n, sizeof *order);
    uint64_t base = rss_peak();
    uint64_t live = 0, peak = 0, calls = 0;
    double t0 = now_ns();
    static const struct {
        size_t count, lo, span;
    } phases[] = {{1000000, 16, 240}, {100000, 1024, 3072}, {1000000, 16, 496}};
    size_t used = 0; /* slots in use, from 0 */
    for (size_t ph = 0; ph < sizeof phases / sizeof phases[0]; ph++) {
        size_t count = phases[ph].count * scale;
        if (used + count > n) {
            /* reuse freed slots */
            size_t w = 0;
            for (size_t i = 0; i < used; i++)
                if (p[i]) {
                    p[w] = p[i];
                    sz[w] = sz[i];
                    w++;
                }
            used = w;
        }
        size_t first = used;
        for (size_t k = 0; k < count && used < n; k++, used++) {
            sz[used] = phases[ph].lo + rng() % phases[ph].span;
            p[used] = must_malloc(sz[used]);
            mark(p[used], sz[used], (unsigned char)used);
            live += sz[used];
            calls++;
            if (live > peak)
                peak = live;
        }
        /* free three quarters of this phase's blocks, in random order */
        size_t m = used - first;
        for (size_t k = 0; k < m; k++)
            order[k] = (uint32_t)(first + k);
        shuffle(order, m);
        for (size_t k = 0; k < m * 3 / 4; k++) {
            size_t i = order[k];
            check(p[i], sz[i], (unsigned char)i);
            free(p[i]);
            p[i] = NULL;
            live -= sz[i];
            calls++;
        }
    }
    double t1 = now_ns();
    uint64_t rss = rss_peak() - base;
    printf("workload=fragment calls=%llu ns_per_call=%.2f peak_live=%llu rss_peak=%llu rss_over_live=%.3f\n",
           (unsigned long long)calls, (t1 - t0) / (double)calls, (unsigned long long)peak,
           (unsigned long long)rss, (double)rss / (double)peak);
}

/* --------------------------------------------------------------- threads */

enum { LARSON_SLOTS = 10000, LARSON_THREADS = 2 };

struct larson {
    _Atomic(unsigned char *) slot[LARSON_SLOTS];
    long ops;
    double ns[LARSON_THREADS];
};

struct larson_arg {
    struct larson *l;
    int id;
};

static void *larson_thread(void *arg)
{
    struct larson_arg *a = arg;
    struct larson *l = a->l;
    uint64_t st = 0x1234 + (uint64_t)a->id * 77;
    double t0 = now_ns();
    for (long k = 0; k < l->ops; k++) {
        uint64_t r = rng_next(&st);
        size_t size = 16 + (size_t)(r >> 20) % 1008;
        unsigned char *p = must_malloc(size);
        p[0] = (unsigned char)size;
        unsigned char *old = atomic_exchange(&l->slot[r % LARSON_SLOTS], p);
        free(old);
    }
    l->ns[a->id] = (now_ns() - t0) / (double)l->ops;
    return NULL;
}

static void larson(size_t scale)
{
    struct larson *l = xcalloc(1, sizeof *l);
    l->ops = 2000000 * (long)scale;
    for (size_t i = 0; i < LARSON_SLOTS; i++)
        atomic_store(&l->slot[i], must_malloc(16 + i % 1008));
    pthread_t t[LARSON_THREADS];
    struct larson_arg a[LARSON_THREADS];
    for (int i = 0; i < LARSON_THREADS; i++) {
        a[i] = (struct larson_arg){l, i};
        pthread_create(&t[i], NULL, larson_thread, &a[i]);
    }
    double worst = 0;
    for (int i = 0; i < LARSON_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (l->ns[i] > worst)
            worst = l->ns[i];
    }
    for (size_t i = 0; i < LARSON_SLOTS; i++)
        free(atomic_load(&l->slot[i]));
    printf("workload=larson calls=%ld ns_per_call=%.2f\n", 2 * l->ops * LARSON_THREADS, worst);
}

enum { RING = 1024 };

struct ring {
    _Atomic(void *) cell[RING];
    long n;
};

static void *consumer(void *arg)
{
    struct ring *r = arg;
    for (long k = 0; k < r->n; k++) {
        void *p;
        while ((p = atomic_exchange_explicit(&r->cell[k % RING], NULL, memory_order_acquire)) == NULL)
            ;
        if (((unsigned char *)p)[0] != (unsigned char)k) {
            fprintf(stderr, "workloads: a block was damaged\n");
            exit(3);
        }
        free(p);
    }
    return NULL;
}

static void prodcons(size_t scale)
{
    struct ring *r = xcalloc(1, sizeof *r);
    r->n = 2000000 * (long)scale;
    uint64_t st = 99;
    pthread_t c;
    double t0 = now_ns();
    pthread_create(&c, NULL, consumer, r);
    for (long k = 0; k < r->n; k++) {
        size_t size = 16 + (size_t)(rng_next(&st) % 497);
        unsigned char *p = must_malloc(size);
        p[0] = (unsigned char)k;
        while (atomic_load_explicit(&r->cell[k % RING], memory_order_acquire) != NULL)
            ;
        atomic_store_explicit(&r->cell[k % RING], p, memory_order_release);
    }
    pthread_join(c, NULL);
    printf("workload=prodcons calls=%ld ns_per_call=%.2f\n", 2 * r->n, (now_ns() - t0) / (double)r->n);
}

/* ---------------------------------------------------------------- latency */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint32_t pct(uint32_t *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1));
    return v[i];
}

static void latency(size_t scale)
{
    const size_t live = 20000;
    size_t ops = 1000000 * scale;
    void **p = xcalloc(live, sizeof *p);
    size_t *sz = xcalloc(live, sizeof *sz);
    uint32_t *tm = xcalloc(ops, sizeof *tm), *tf = xcalloc(ops, sizeof *tf);
    fill_live(p, sz, live);
    syscall(SYS_getpid); /* the loop's start and end, for strace (above) */
    for (size_t k = 0; k < ops; k++) {
        size_t i = rng() % live;
        check(p[i], sz[i], (unsigned char)i);
        double a = now_ns();
        free(p[i]);
        double b = now_ns();
        sz[i] = mixed_size();
        p[i] = must_malloc(sz[i]);
        double c = now_ns();
        mark(p[i], sz[i], (unsigned char)i);
        tf[k] = (uint32_t)(b - a);
        tm[k] = (uint32_t)(c - b);
    }
    syscall(SYS_getppid);
    for (size_t i = 0; i < live; i++)
        free(p[i]);
    qsort(tm, ops, sizeof *tm, cmp_u32);
    qsort(tf, ops, sizeof *tf, cmp_u32);
    printf("workload=latency calls=%zu malloc_p50=%u malloc_p99=%u malloc_p9999=%u malloc_max=%u "
           "free_p50=%u free_p99=%u free_p9999=%u free_max=%u\n",
           2 * ops, pct(tm, ops, 0.5), pct(tm, ops, 0.99), pct(tm, ops, 0.9999), tm[ops - 1],
           pct(tf, ops, 0.5), pct(tf, ops, 0.99), pct(tf, ops, 0.9999), tf[ops - 1]);
}

/* ---------------------------------------------------------------- release */

/* release-threaded: the same with a second thread that only sleeps, so that the
 * process has threads (their caches' paths: rings, depot, batches). */
static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* release-contended: the same, its frees untimed (as fast as they go: free_ns, the
 * phase over its frees), with a second thread that, from the first of the frees to the
 * last of the final teardown, makes pairs of a malloc of ~100 KB (past every
 * allocator's small-block caches, so each reaches the shared heap) and its free, every
 * pair timed, 2 us apart: what a thread that needs the heap meets while another gives
 * a large heap back. */
enum { CONTEND_MAX = 1 << 20 };
static atomic_int contend_phase; /* 0 building, 1 freeing, 2 done */
static uint32_t *contend_t;
static size_t contend_n;

static void *contender(void *arg)
{
    (void)arg;
    uint64_t state = 0x1234567;
    while (atomic_load(&contend_phase) == 0)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    while (atomic_load(&contend_phase) == 1 && contend_n < CONTEND_MAX) {
        size_t n = 100000 + rng_next(&state) % 1000;
        double a = now_ns();
        unsigned char *volatile q = must_malloc(n);
        q[0] = 1;
        free(q);
        contend_t[contend_n++] = (uint32_t)(now_ns() - a);
        for (double until = now_ns() + 2000; now_ns() < until;)
            ;
    }
    return NULL;
}

/* ---------------------------------------------------------------- idle-threads */

enum { IDLE_THREADS = 32, IDLE_BLOCKS = 160 };
static pthread_barrier_t idle_start, idle_freed, idle_go;

static void *burst_then_idle(void *arg)
{
    uint64_t st = 1000 + (uint64_t)(uintptr_t)arg;
    void *p[IDLE_BLOCKS];
    size_t n[IDLE_BLOCKS];
    char *request = must_malloc(100); /* the burst's small bookkeeping */
    request[0] = 1;
    pthread_barrier_wait(&idle_start); /* all at once */
    for (int k = 0; k < IDLE_BLOCKS; k++) {
        n[k] = 1024 + (size_t)(rng_next(&st) % (64 * 1024 - 1024));
        p[k] = must_malloc(n[k]);
        memset(p[k], k, n[k]);
    }
    for (int k = 0; k < IDLE_BLOCKS; k++) {
        check(p[k], n[k], (unsigned char)k);
        free(p[k]);
    }
    free(request);
    pthread_barrier_wait(&idle_freed);
    pthread_barrier_wait(&idle_go);
    return NULL;
}

/* A service's worker threads after a burst: each allocated and freed ~5 MiB of
 * buffers and now waits for work.  What the process keeps resident while they wait,
 * over what it had before they started: freed memory held for them. */
static void idle_threads(void)
{
    pthread_t t[IDLE_THREADS];
    pthread_barrier_init(&idle_start, NULL, IDLE_THREADS);
    pthread_barrier_init(&idle_freed, NULL, IDLE_THREADS + 1);
    pthread_barrier_init(&idle_go, NULL, IDLE_THREADS + 1);
    uint64_t base = rss_now();
    for (size_t i = 0; i < IDLE_THREADS; i++)
        pthread_create(&t[i], NULL, burst_then_idle, (void *)i);
    pthread_barrier_wait(&idle_freed);
    uint64_t held = rss_now();
    uint64_t peak = rss_peak();
    pthread_barrier_wait(&idle_go);
    for (size_t i = 0; i < IDLE_THREADS; i++)
        pthread_join(t[i], NULL);
    const double mib = 1024.0 * 1024.0;
    printf("workload=idle-threads threads=%d rss_peak_mib=%.1f rss_held_mib=%.1f\n", IDLE_THREADS,
           (double)(peak - base) / mib, (double)(held > base ? held - base : 0) / mib);
}

/* A service after a burst: its heap grew to 256 MiB of sessions (about 50 blocks of
 * mixed sizes each, allocated together), then nine sessions in ten end and their
 * blocks are freed in random order.  How much of the freed memory goes back to the
 * kernel (RSS right after, and after 200,000 more calls among the survivors, for
 * allocators that give back later), and what the frees cost meanwhile. */
static void release(const char *name, size_t scale)
{
    const size_t target = ((size_t)256 << 20) * scale, per = 50;
    size_t cap = target / 512, n = 0, bytes = 0;
    void **p = xcalloc(cap, sizeof *p);
    size_t *sz = xcalloc(cap, sizeof *sz);
    uint32_t *order = xcalloc(cap, sizeof *order), *tf = xcalloc(cap, sizeof *tf);
    bool contended = strcmp(name, "release-contended") == 0;
    pthread_t other;
    if (contended) {
        contend_t = xcalloc(CONTEND_MAX, sizeof *contend_t);
        pthread_create(&other, NULL, contender, NULL);
    }
    uint64_t base = rss_now();
    while (bytes < target && n + per <= cap) {
        for (size_t k = 0; k < per; k++, n++) {
            sz[n] = mixed_size();
            p[n] = must_malloc(sz[n]);
            memset(p[n], (unsigned char)n, sz[n]);
            bytes += sz[n];
        }
    }
    uint64_t before = rss_now();
    size_t nf = 0, kept = 0;
    for (size_t i = 0; i < n; i += per) {
        bool keep = rng() % 10 == 0;
        for (size_t k = i; k < i + per; k++) {
            if (keep)
                kept += sz[k];
            else
                order[nf++] = (uint32_t)k;
        }
    }
    shuffle(order, nf);
    atomic_store(&contend_phase, 1);
    double phase = now_ns();
    for (size_t j = 0; j < nf; j++) {
        size_t i = order[j];
        check(p[i], sz[i], (unsigned char)i);
        if (contended) /* as fast as it can: the other thread's times are the point */
            free(p[i]);
        else {
            double a = now_ns();
            free(p[i]);
            tf[j] = (uint32_t)(now_ns() - a);
        }
        p[i] = NULL;
    }
    phase = now_ns() - phase;
    uint64_t after = rss_now();
    /* Later calls: survivors' small blocks replaced, the live size unchanged. */
    for (size_t k = 0, i = 0; k < 100000; k++) {
        do
            i = rng() % n;
        while (p[i] == NULL || sz[i] > 1024);
        check(p[i], sz[i], (unsigned char)i);
        free(p[i]);
        p[i] = must_malloc(sz[i]);
        memset(p[i], (unsigned char)i, sz[i]);
    }
    uint64_t later = rss_now();
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    atomic_store(&contend_phase, 2);
    if (contended)
        pthread_join(other, NULL);
    qsort(tf, nf, sizeof *tf, cmp_u32);
    double mib = 1024.0 * 1024.0;
    printf("workload=%s calls=%zu ", name, nf);
    if (!contended) /* its frees were not timed one by one */
        printf("free_p50=%u free_p99=%u free_p9999=%u free_max=%u ", pct(tf, nf, 0.5),
               pct(tf, nf, 0.99), pct(tf, nf, 0.9999), tf[nf - 1]);
    printf("rss_peak_mib=%.1f rss_after_mib=%.1f rss_later_mib=%.1f live_after_mib=%.1f\n",
           (double)(before - base) / mib, (double)(after - base) / mib, (double)(later - base) / mib,
           (double)kept / mib);
    if (contended && contend_n > 0) {
        qsort(contend_t, contend_n, sizeof *contend_t, cmp_u32);
        printf("workload=%s-other calls=%zu free_ns=%.1f pair_p50=%u pair_p99=%u pair_p999=%u "
               "pair_max=%u\n", name, contend_n, phase / (double)nf, pct(contend_t, contend_n, 0.5),
               pct(contend_t, contend_n, 0.99), pct(contend_t, contend_n, 0.999),
               contend_t[contend_n - 1]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: workloads same-inorder|same-random|churn|fragment|larson|prodcons|latency|release|release-threaded|release-contended|idle-threads [SCALE]\n");
        return 2;
    }
    size_t scale = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    if (scale == 0)
        scale = 1;
    if (strcmp(argv[1], "same-inorder") == 0)
        same_size(argv[1], scale, 0);
    else if (strcmp(argv[1], "same-random") == 0)
        same_size(argv[1], scale, 1);
    else if (strcmp(argv[1], "churn") == 0)
        churn(scale);
    else if (strcmp(argv[1], "fragment") == 0)
        fragment(scale);
    else if (strcmp(argv[1], "larson") == 0)
        larson(scale);
    else if (strcmp(argv[1], "prodcons") == 0)
        prodcons(scale);
    else if (strcmp(argv[1], "latency") == 0)
        latency(scale);
    else if (strcmp(argv[1], "release") == 0)
        release(argv[1], scale);
    else if (strcmp(argv[1], "release-contended") == 0)
        release(argv[1], scale);
    else if (strcmp(argv[1], "idle-threads") == 0)
        idle_threads();
    else if (strcmp(argv[1], "release-threaded") == 0) {
        pthread_t t; /* idle: the process has threads, and the allocator knows it */
        pthread_create(&t, NULL, idle_thread, NULL);
        release(argv[1], scale);
    }
    else {
        fprintf(stderr, "workloads: unknown workload '%s'\n", argv[1]);
        return 2;
    }
    return 0;
}
