/* locks.c: what the shared heap's lock costs.
 *
 * The shm_* heap takes one process-shared lock per call.  libfastmem's own futex lock
 * (src/lock.h: one compare-and-swap to take, one exchange to release) is the lightest
 * such lock, but only a robust pthread mutex is told by the kernel that its owner
 * died, which the shared heap needs (shm_malloc(3)).  This measures the price, for
 * three locks living in a MAP_SHARED page:
 *
 *   futex    fm_lock_t, process-shared
 *   pshared  a pthread mutex, PTHREAD_PROCESS_SHARED
 *   robust   a pthread mutex, PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST
 *   bounded  the same mutex taken as the shared heap takes it (fm_robust_lock: a
 *            trylock, then waits of at most 10 ms at a time; used)
 *
 * in two situations: one process taking and releasing it (uncontended), and two
 * processes each taking it 2,000,000 times around a tiny critical section.  Then the
 * API itself: shm_malloc + shm_free pairs of 64 bytes, one process.  Prints one
 * key=value line per measurement: ns per lock+unlock pair (per pair in either process,
 * for the contended case), median of RUNS runs (argument, default 5).
 */
#define _GNU_SOURCE
#include "lock.h"

#include <fastmem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { FUTEX, PSHARED, ROBUST, BOUNDED, KINDS };
static const char *const names[KINDS] = {"futex", "pshared", "robust", "bounded"};

struct shared {
    fm_lock_t futex;
    pthread_mutex_t pshared, robust;
    volatile uint64_t counter;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void take(struct shared *s, int kind)
{
    if (kind == FUTEX)
        fm_lock_acquire(&s->futex, true);
    else if (kind == BOUNDED)
        fm_robust_lock(&s->robust);
    else
        pthread_mutex_lock(kind == PSHARED ? &s->pshared : &s->robust);
}

static void give(struct shared *s, int kind)
{
    if (kind == FUTEX)
        fm_lock_release(&s->futex, true);
    else
        pthread_mutex_unlock(kind == PSHARED ? &s->pshared : &s->robust);
}

static void loop(struct shared *s, int kind, long n)
{
    for (long i = 0; i < n; i++) {
        take(s, kind);
        s->counter++;
        give(s, kind);
    }
}

static double uncontended(struct shared *s, int kind)
{
    const long n = 5000000;
    double t0 = now_ns();
    loop(s, kind, n);
    return (now_ns() - t0) / (double)n;
}

static double contended(struct shared *s, int kind)
{
    const long n = 2000000;
    s->counter = 0;
    double t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        loop(s, kind, n);
        _exit(0);
    }
    loop(s, kind, n);
    waitpid(pid, NULL, 0);
    double t = (now_ns() - t0) / (double)(2 * n);
    if (s->counter != 2 * (uint64_t)n) {
        fprintf(stderr, "locks: %s lost updates\n", names[kind]);
        exit(1);
    }
    return t;
}

static double shm_pairs(void)
{
    const long n = 2000000;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        void *p = shm_malloc(64);
        *(volatile char *)p = 1;
        shm_free(p);
    }
    return (now_ns() - t0) / (double)n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 99)
        runs = 5;
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return 2;
    fm_lock_init(&s->futex);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->pshared, &a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->robust, &a);
    double u[KINDS][99], c[KINDS][99], api[99];
    if (shm_init(64 << 20) != 0)
        return 2;
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < KINDS; k++) {
            u[k][r] = uncontended(s, k);
            c[k][r] = contended(s, k);
        }
        api[r] = shm_pairs();
    }
    for (int k = 0; k < KINDS; k++)
        printf("lock=%s uncontended_ns=%.2f contended_ns=%.2f\n", names[k], median(u[k], runs),
               median(c[k], runs));
    printf("api=shm_malloc+shm_free pair_ns=%.2f\n", median(api, runs));
    return 0;
}
