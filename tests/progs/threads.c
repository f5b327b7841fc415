/* threads.c MODE: the heap under threads, and fork while threads allocate.
 *
 *   threads churn   4 threads do random malloc/calloc/realloc/posix_memalign/free,
 *                   handing blocks to each other so that most are freed by a thread
 *                   that did not allocate them; every block's contents are checked
 *                   before it is freed.  Under a small MEMSIZE some calls fail: they
 *                   must fail with ENOMEM, never crash.
 *   threads fork    2 threads allocate without pause while the main thread forks 200
 *                   children; each child must be able to allocate, reallocate and
 *                   free (a heap lock inherited as held would hang it: an alarm turns
 *                   that into a failure).
 * Prints "ok" and exits 0, or a FAIL line and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { THREADS = 4, SLOTS = 1024, OPS = 60000 };

struct slot {
    unsigned char *p;
    size_t n;
    unsigned char seed;
};

static struct slot shared[SLOTS];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int failed;
static atomic_long refused;
static atomic_int stop;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fill(struct slot *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->p[i] = (unsigned char)(s->seed + i);
}

static int intact(const struct slot *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] != (unsigned char)(s->seed + i))
            return 0;
    return 1;
}

static void fail(const char *what)
{
    printf("FAIL: %s\n", what);
    atomic_store(&failed, 1);
}

/* A new block for slot s, of a random size and kind; false if the heap said ENOMEM. */
static int fresh(struct slot *s, uint64_t *rng)
{
    uint64_t r = next_rand(rng);
    s->n = (r % 100 == 0) ? (1 << 20) : (size_t)(r >> 8) % 65536 + 1;
    s->seed = (unsigned char)(r >> 40);
    errno = 0;
    switch ((r >> 50) % 4) {
    case 0:
        s->p = calloc(1, s->n);
        if (s->p)
            for (size_t i = 0; i < s->n; i++)
                if (s->p[i] != 0) {
                    fail("calloc returned memory that is not zero");
                    break;
                }
        break;
    case 1:
        if (posix_memalign((void **)&s->p, 256, s->n) != 0) {
            s->p = NULL;
            errno = ENOMEM;
        } else if ((uintptr_t)s->p % 256 != 0) {
            fail("posix_memalign(256) misaligned");
        }
        break;
    default:
        s->p = malloc(s->n);
        break;
    }
    if (s->p == NULL) {
        if (errno != ENOMEM)
            fail("an allocation failed without ENOMEM");
        atomic_fetch_add(&refused, 1);
        return 0;
    }
    fill(s);
    return 1;
}

static void *churn(void *arg)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
    for (int op = 0; op < OPS && !atomic_load(&failed); op++) {
        size_t i = (size_t)(next_rand(&rng) % SLOTS);
        pthread_mutex_lock(&shared_lock);
        struct slot s = shared[i];
        shared[i].p = NULL;
        pthread_mutex_unlock(&shared_lock);
        if (s.p) {
            if (!intact(&s))
                fail("a block's contents changed under another thread");
            if (next_rand(&rng) % 4 == 0) {
                size_t n = (size_t)(next_rand(&rng) % 20000) + 1;
                unsigned char *q = realloc(s.p, n);
                if (q == NULL) {
                    atomic_fetch_add(&refused, 1);
                    free(s.p);
                    continue;
                }
                s.p = q;
                size_t keep = s.n < n ? s.n : n;
                s.n = keep;
                if (!intact(&s))
                    fail("realloc lost the contents");
                s.n = n;
                fill(&s);
            } else {
                free(s.p);
                continue;
            }
        } else if (!fresh(&s, &rng)) {
            continue;
        }
        pthread_mutex_lock(&shared_lock); /* hand it over: another thread frees it */
        if (shared[i].p == NULL) {
            shared[i] = s;
            s.p = NULL;
        }
        pthread_mutex_unlock(&shared_lock);
        free(s.p);
    }
    return NULL;
}

static int run_churn(void)
{
    pthread_t t[THREADS];
    for (uintptr_t k = 0; k < THREADS; k++)
        if (pthread_create(&t[k], NULL, churn, (void *)k) != 0)
            return fail("pthread_create"), 1;
    for (int k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    for (int i = 0; i < SLOTS; i++)
        if (shared[i].p) {
            if (!intact(&shared[i]))
                fail("a block's contents changed");
            free(shared[i].p);
        }
    if (atomic_load(&failed))
        return 1;
    printf("ok (%ld requests refused with ENOMEM)\n", atomic_load(&refused));
    return 0;
}

static void *allocate_forever(void *arg)
{
    uint64_t rng = (uintptr_t)arg + 99;
    struct slot s;
    while (!atomic_load(&stop)) {
        if (fresh(&s, &rng)) {
            if (!intact(&s))
                fail("contents changed");
            free(s.p);
        }
    }
    return NULL;
}

static int run_fork(void)
{
    pthread_t t[2];
    for (uintptr_t k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, allocate_forever, (void *)k);
    int bad = 0;
    for (int c = 0; c < 200 && !bad; c++) {
        pid_t pid = fork();
        if (pid < 0) {
            fail("fork");
            bad = 1;
            break;
        }
        if (pid == 0) {
            alarm(20); /* a child stuck on an inherited lock dies of SIGALRM */
            uint64_t rng = (uint64_t)c + 1;
            for (int i = 0; i < 300; i++) {
                struct slot s;
                if (!fresh(&s, &rng))
                    continue;
                unsigned char *q = realloc(s.p, s.n + 100);
                if (q == NULL)
                    _exit(3);
                s.p = q;
                if (!intact(&s))
                    _exit(4);
                free(s.p);
            }
            _exit(atomic_load(&failed) ? 5 : 0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAIL: child %d: %s %d\n", c, WIFSIGNALED(status) ? "killed by signal" : "exit status",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            bad = 1;
        }
    }
    atomic_store(&stop, 1);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    if (bad || atomic_load(&failed))
        return 1;
    printf("ok (200 children allocated while their parent's threads did)\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "churn") == 0)
        return run_churn();
    if (argc == 2 && strcmp(argv[1], "fork") == 0)
        return run_fork();
    fprintf(stderr, "usage: threads churn|fork\n");
    return 2;
}
