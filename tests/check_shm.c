/* check_shm.c: the shm_* API, with real processes.
 *
 * Each test runs in its own process (Check forks one per test), makes its region
 * with shm_init, and forks workers that use it: children build structures the parent
 * reads and frees, churn concurrently with data checks, are killed with SIGKILL at
 * random moments, fill the region to its cap.  Every test ends with the heap's
 * invariant check.  Engines: every registered one, chosen through MEMMNG as a user
 * would.
 */
#include "testutil.h"

#include "diag.h"
#include "engine.h"
#include "heap.h"

#include <errno.h>
#include <fastmem.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static void use_engine(int i)
{
    ck_assert_int_eq(setenv("MEMMNG", fm_engines[i]->name, 1), 0);
}

static struct fastmem_stats shm_stats(void)
{
    struct fastmem_stats st;
    ck_assert_int_eq(shm_stats_get(&st, sizeof st), 0);
    return st;
}

/* Wait for a child; it must have exited with status 0. */
static void reap_ok(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child %d: %s %d", (int)pid, WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* Run fn(arg) in a child process that exits 0 if fn returns 0.  (The child makes no
 * Check assertion: those write to the runner's message file, shared with the parent.) */
static pid_t spawn(int (*fn)(int), int arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg) == 0 ? 0 : 1);
    ck_assert_int_ge(pid, 0);
    return pid;
}

/* ------------------------------------------------- structures across processes */

struct node {
    struct node *next;
    uint32_t child, seq;
    size_t len;
    unsigned char data[];
};

enum { CHILDREN = 4, NODES = 2000 };
static struct node **roots; /* in the region, made before fork */

static int build_list(int child)
{
    uint64_t rng = 1000 + (uint64_t)child;
    struct node *head = NULL;
    for (uint32_t i = 0; i < NODES; i++) {
        size_t len = tu_rand(&rng) % 300;
        struct node *n = shm_malloc(sizeof *n + len);
        if (n == NULL)
            return 1;
        n->next = head;
        n->child = (uint32_t)child;
        n->seq = i;
        n->len = len;
        tu_fill(n->data, len, i * 31u + (uint32_t)child);
        head = n;
    }
    roots[child] = head;
    return 0;
}

START_TEST(children_build_parent_reads_and_frees)
{
    use_engine(_i);
    ck_assert_int_eq(shm_init(16 * MiB), 0);
    roots = shm_calloc(CHILDREN, sizeof *roots);
    ck_assert_ptr_nonnull(roots);
    pid_t pid[CHILDREN];
    for (int c = 0; c < CHILDREN; c++)
        pid[c] = spawn(build_list, c);
    for (int c = 0; c < CHILDREN; c++)
        reap_ok(pid[c]);
    ck_assert_uint_eq(shm_stats().live_blocks, 1 + CHILDREN * NODES);
    for (int c = 0; c < CHILDREN; c++) {
        uint32_t expect = NODES;
        for (struct node *n = roots[c], *next; n; n = next) {
            next = n->next;
            expect--;
            TU_REQUIRE(n->child == (uint32_t)c && n->seq == expect, "child %d node %u: found %u/%u",
                       c, expect, n->child, n->seq);
            TU_REQUIRE(tu_verify(n->data, n->len, n->seq * 31u + (uint32_t)c) == n->len,
                       "child %d node %u: data damaged", c, n->seq);
            shm_free(n);
        }
        ck_assert_uint_eq(expect, 0);
    }
    shm_free(roots);
    struct fastmem_stats st = shm_stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_int_eq(shm_check(), 0);
    ck_assert_str_eq(st.engine, fm_engines[_i]->name);
}
END_TEST

/* ---------------------------------------------------------- concurrent churn */

/* A churning child found its data changed: say where (the child's exit status alone
 * says nothing), and return code. */
static int churn_damage(uint64_t seed, long op, const void *p, size_t len, size_t at, int code)
{
    fprintf(stderr, "churn (pid %d, seed %llu): op %ld: block %p of %zu bytes differs at byte %zu "
            "(%s)\n", (int)getpid(), (unsigned long long)seed, op, p, len, at,
            code == 1 ? "before it was changed" : code == 2 ? "after realloc" : "at the end");
    return code;
}

/* Random malloc, realloc and free over `slots` slots (at most 256), each block
 * filled with a pattern and verified before it is changed or freed; a quarter of the
 * sizes up to `big`, the rest up to 256.  Returns non-zero on damage. */
static int churn_sized(uint64_t seed, long ops, _Atomic int *stop, size_t slots, size_t big)
{
    enum { SLOTS = 256 };
    unsigned char *p[SLOTS] = {0};
    size_t n[SLOTS] = {0};
    uint32_t tag[SLOTS] = {0};
    uint64_t rng = seed;
    for (long k = 0; ops < 0 || k < ops; k++) {
        if (stop && (k & 63) == 0 && atomic_load(stop))
            break;
        size_t i = tu_rand(&rng) % slots;
        size_t good = p[i] ? tu_verify(p[i], n[i], tag[i]) : 0;
        if (good != n[i])
            return churn_damage(seed, k, p[i], n[i], good, 1);
        uint64_t r = tu_rand(&rng);
        size_t len = (r & 3) == 0 ? 1 + (r >> 8) % big : 1 + (r >> 8) % 256;
        if (p[i] && (r & 16)) {
            unsigned char *q = shm_realloc(p[i], len);
            if (q == NULL)
                continue; /* full: p[i] is untouched */
            size_t kept = n[i] < len ? n[i] : len;
            size_t same = tu_verify(q, kept, tag[i]);
            if (same != kept)
                return churn_damage(seed, k, q, kept, same, 2);
            p[i] = q;
        } else {
            shm_free(p[i]);
            p[i] = shm_malloc(len);
            if (p[i] == NULL) {
                n[i] = 0;
                continue;
            }
        }
        n[i] = len;
        tag[i] = (uint32_t)r;
        tu_fill(p[i], len, tag[i]);
    }
    for (size_t i = 0; i < SLOTS; i++) {
        size_t good = p[i] ? tu_verify(p[i], n[i], tag[i]) : 0;
        if (good != n[i])
            return churn_damage(seed, -1, p[i], n[i], good, 3);
        shm_free(p[i]);
    }
    return 0;
}

static int churn(uint64_t seed, long ops, _Atomic int *stop)
{
    return churn_sized(seed, ops, stop, 256, 20000);
}

static int churn_child(int c)
{
    return churn(77 + (uint64_t)c, 30000, NULL);
}

START_TEST(children_churn_concurrently)
{
    use_engine(_i);
    ck_assert_int_eq(shm_init(32 * MiB), 0);
    pid_t pid[CHILDREN];
    for (int c = 0; c < CHILDREN; c++)
        pid[c] = spawn(churn_child, c);
    ck_assert_int_eq(churn(5, 30000, NULL), 0);
    for (int c = 0; c < CHILDREN; c++)
        reap_ok(pid[c]);
    struct fastmem_stats st = shm_stats();
    ck_assert_uint_eq(st.live_blocks, 0);
    ck_assert_uint_ge(st.calls_malloc, 5 * 10000);
    ck_assert_int_eq(shm_check(), 0);
}
END_TEST

/* ------------------------------------------------------------------ SIGKILL */

static _Atomic int *stop_flag; /* in the region */
static _Atomic int *started;   /* in the region: the victim running, numbered from 1 */

static int survivor(int c)
{
    return churn(900 + (uint64_t)c, -1, stop_flag);
}

/* Victims keep few, small blocks: whatever a killed process held is leaked. */
static int victim(int c)
{
    if (churn_sized(5000 + (uint64_t)c, 200, NULL, 16, 256) != 0)
        return 1;
    atomic_store(started, c + 1);
    return churn_sized(7000 + (uint64_t)c, -1, NULL, 16, 256);
}

/* The sigkill test's processes (survivors, then the victim of the moment), for the
 * watchdog: a test that stops making progress says what every process is doing,
 * and who holds the heap's lock, instead of waiting for Check's timeout in silence. */
enum { WATCH_SECONDS = 60 };
static pid_t watched[3];
static volatile sig_atomic_t watched_kill;

static void say(const char *s)
{
    ssize_t n = write(2, s, strlen(s));
    (void)n;
}

/* /proc/pid/what into buf (size bytes, NUL-terminated): the bytes read, or -1 if it
 * cannot be read.  Async-signal-safe (the watchdog calls it), so fm_format. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size)
{
    char path[64];
    fm_format(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* The text of a small /proc file, on one line after a label. */
static void say_proc(pid_t pid, const char *what)
{
    char label[64], buf[512];
    fm_format(label, sizeof label, "  /proc/%d/%s: ", (int)pid, what);
    say(label);
    ssize_t n = read_proc(pid, what, buf, sizeof buf);
    int fields = strcmp(what, "stat") == 0 ? 0 : -1; /* stat: pid, name, state */
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n')
            buf[i] = ' ';
        if (buf[i] == ' ' && fields >= 0 && ++fields == 3)
            buf[i] = '\0';
    }
    say(n > 0 ? buf : "(gone)");
    say("\n");
}

static void watchdog(int sig)
{
    (void)sig;
    char line[256];
    const struct fm_heap *h = fm_shm_heap();
    fm_format(line, sizeof line, "sigkill: no progress in %d s at kill %d; the heap's lock word "
              "is 0x%x, its owner %d\n", WATCH_SECONDS, (int)watched_kill,
              (unsigned)h->mutex.__data.__lock, h->mutex.__data.__owner);
    say(line);
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        if (watched[i] <= 0)
            continue;
        say_proc(watched[i], "stat");
        say_proc(watched[i], "wchan");
        say_proc(watched[i], "syscall");
    }
    _exit(99);
}

/* Processes killed at random moments, a few hundred times, while others keep
 * allocating: nobody deadlocks, every survivor's data stays intact, the dead owners
 * are noticed (recovered counts them), and the heap checks sound throughout. */
START_TEST(sigkill_at_random_moments)
{
    use_engine(_i);
    ck_assert_int_eq(shm_init(64 * MiB), 0);
    stop_flag = shm_calloc(1, sizeof *stop_flag);
    started = shm_calloc(1, sizeof *started);
    ck_assert(stop_flag && started);
    enum { SURVIVORS = 2, KILLS = 300 };
    pid_t surv[SURVIVORS];
    for (int c = 0; c < SURVIVORS; c++)
        watched[c] = surv[c] = spawn(survivor, c);
    signal(SIGALRM, watchdog);
    uint64_t rng = 42;
    for (int k = 0; k < KILLS; k++) {
        watched_kill = k;
        alarm(WATCH_SECONDS);
        pid_t v = spawn(victim, k);
        watched[SURVIVORS] = v;
        while (atomic_load(started) != k + 1) {
            int status;
            pid_t w = waitpid(v, &status, WNOHANG);
            TU_REQUIRE(w == 0, "victim %d ended before it started: %s %d", k,
                       WIFEXITED(status) ? "exit" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            sched_yield();
        }
        struct timespec ts = {0, (long)(tu_rand(&rng) % 500000)};
        nanosleep(&ts, NULL);
        ck_assert_int_eq(kill(v, SIGKILL), 0);
        int status;
        ck_assert_int_eq(waitpid(v, &status, 0), v);
        TU_REQUIRE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                   "victim %d ended otherwise: status %#x", k, status);
        if (k % 25 == 0)
            TU_REQUIRE(shm_check() == 0, "heap damaged after kill %d", k);
    }
    watched[SURVIVORS] = 0;
    atomic_store(stop_flag, 1);
    for (int c = 0; c < SURVIVORS; c++)
        reap_ok(surv[c]);
    alarm(0);
    ck_assert_int_eq(shm_check(), 0);
    struct fastmem_stats st = shm_stats();
    /* The victims spend much of their time inside the lock; some died there. */
    ck_assert_uint_gt(st.recovered, 0);
    /* The region still serves, and can be emptied of everything but the leaks. */
    void *p = shm_malloc(1000);
    ck_assert_ptr_nonnull(p);
    shm_free(p);
    fprintf(stderr, "sigkill[%s]: %d kills, %llu recovered, %llu blocks leaked by victims\n",
            fm_engines[_i]->name, KILLS, (unsigned long long)st.recovered,
            (unsigned long long)st.live_blocks - 1);
}
END_TEST

/* ------------------------------------------------------- a waiter's wake lost */

/* Whether process pid is waiting in the futex call (its lock wait). */
static bool in_futex_wait(pid_t pid)
{
    char buf[64], want[16];
    snprintf(want, sizeof want, "%d ", (int)SYS_futex);
    ck_assert_msg(read_proc(pid, "syscall", buf, sizeof buf) >= 0, "cannot read /proc/%d/syscall",
                  (int)pid);
    return strncmp(buf, want, strlen(want)) == 0;
}

static void wait_until_in_futex(pid_t pid)
{
    for (int i = 0;; i++) {
        int status = 0;
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
                      "process %d ended before it waited for the lock: status %#x", (int)pid, status);
        if (in_futex_wait(pid))
            return;
        ck_assert_msg(i < 5000, "process %d never waited for the lock", (int)pid);
        usleep(1000);
    }
}

static int malloc_and_free(int unused)
{
    (void)unused;
    void *p = shm_malloc(100);
    shm_free(p);
    return p == NULL;
}

/* The kernel wakes one waiter when the lock is freed.  Here that waiter (b) is killed
 * before it can run, and the lock is taken and freed again uncontended meanwhile,
 * which wakes nobody: without more, the other waiter (c) sleeps on a free lock for
 * good.  b runs at idle priority on a CPU a busy process holds, so it is still
 * waiting to run when it is killed. */
START_TEST(a_waiter_whose_wake_was_lost_gets_the_lock)
{
    ck_assert_int_eq(shm_init(4 * MiB), 0);
    struct fm_heap *h = fm_shm_heap();
    cpu_set_t allowed, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &allowed))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_mutex_lock(&h->mutex);
    pid_t hog = fork();
    if (hog == 0) {
        sched_setaffinity(0, sizeof one, &one);
        for (;;)
            __asm__ __volatile__("");
    }
    pid_t b = fork();
    if (b == 0) {
        struct sched_param sp = {0};
        if (sched_setaffinity(0, sizeof one, &one) != 0 || sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
            _exit(3);
        _exit(malloc_and_free(0));
    }
    wait_until_in_futex(b);
    pid_t c = spawn(malloc_and_free, 0);
    wait_until_in_futex(c);
    pthread_mutex_unlock(&h->mutex); /* wakes b, which the hog keeps from running */
    pthread_mutex_lock(&h->mutex);
    ck_assert_int_eq(kill(b, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(b, &status, 0), b);
    pthread_mutex_unlock(&h->mutex); /* uncontended, as far as the lock word says */
    pid_t done = 0;
    for (int ms = 0; ms < 5000 && done == 0; ms++) {
        done = waitpid(c, &status, WNOHANG);
        if (done == 0)
            usleep(1000);
    }
    kill(hog, SIGKILL);
    waitpid(hog, NULL, 0);
    ck_assert_msg(done == c, "the waiter was left asleep on a free lock (lock word 0x%x)",
                  (unsigned)h->mutex.__data.__lock);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(shm_check(), 0);
}
END_TEST

/* A process that dies holding the lock after scribbling over a block header: the
 * next caller finds the heap damaged, says so, and it is never used again. */
static int die_damaging(int unused)
{
    (void)unused;
    struct fm_heap *h = fm_shm_heap();
    char *p = shm_malloc(100);
    pthread_mutex_lock(&h->mutex);
    memset(p - 8, 0x5a, 8); /* the block's size word */
    _exit(0);               /* still holding the lock */
}

static char captured[4096];

/* Run fn with stderr going to a file; its text lands in captured. */
#define CAPTURE_STDERR(stmt)                                                       \
    do {                                                                           \
        char path_[] = "/tmp/fastmem-shm-XXXXXX";                                  \
        int fd_ = mkstemp(path_);                                                  \
        ck_assert_int_ge(fd_, 0);                                                  \
        unlink(path_);                                                             \
        int saved_ = dup(2);                                                       \
        dup2(fd_, 2);                                                              \
        stmt;                                                                      \
        dup2(saved_, 2);                                                           \
        close(saved_);                                                             \
        ssize_t n_ = pread(fd_, captured, sizeof captured - 1, 0);                 \
        captured[n_ > 0 ? n_ : 0] = '\0';                                          \
        close(fd_);                                                                \
    } while (0)

START_TEST(damage_found_after_death_is_reported)
{
    use_engine(_i);
    ck_assert_int_eq(shm_init(4 * MiB), 0);
    reap_ok(spawn(die_damaging, 0));
    void *p = (void *)1;
    int err = 0;
    CAPTURE_STDERR(p = shm_malloc(10); err = errno);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err, EIO);
    ck_assert_msg(strstr(captured, "a process died holding its lock and left the heap damaged") != NULL,
                  "%s", captured);
    int rc = 0;
    CAPTURE_STDERR(rc = shm_check(); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EIO);
    ck_assert_msg(strstr(captured, "shm_check: the shared heap") != NULL, "%s", captured);
    ck_assert_uint_eq(shm_stats().recovered, 1);
}
END_TEST

/* ------------------------------------------------------------------ the cap */

enum { FILL_MAX = 1 << 16 };

static size_t fill(void **blk, size_t size, size_t *usable)
{
    size_t n = 0;
    *usable = 0;
    while (n < FILL_MAX && (blk[n] = shm_malloc(size)) != NULL) {
        memset(blk[n], (int)n, size);
        *usable += shm_usable_size(blk[n]);
        n++;
    }
    ck_assert_uint_lt(n, FILL_MAX);
    ck_assert_int_eq(errno, ENOMEM);
    return n;
}

START_TEST(fill_to_cap_and_refill)
{
    use_engine(_i);
    const size_t cap = 4 * MiB;
    ck_assert_int_eq(shm_init(cap), 0);
    void **blk = calloc(FILL_MAX, sizeof *blk); /* private: not in the region */
    size_t usable;
    size_t n1 = fill(blk, 1000, &usable);
    ck_assert_uint_le(usable, cap);
    /* qm: 40 bytes of header and guard on each block */
    ck_assert_uint_ge(usable, cap / 100 * (fm_engine_debugging(fm_engines[_i]) ? 94 : 97));
    for (size_t i = 0; i < n1; i++) {
        TU_REQUIRE(((unsigned char *)blk[i])[999] == (unsigned char)i, "block %zu damaged", i);
        shm_free(blk[i]);
    }
    size_t n2 = fill(blk, 1000, &usable);
    ck_assert_uint_ge(n2, n1);
    for (size_t i = 0; i < n2; i++)
        shm_free(blk[i]);
    /* A child fills it; the parent sees it full, then frees the child's blocks. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        size_t u;
        size_t n = fill(blk, 1000, &u);
        _exit(n == n2 ? 0 : 1);
    }
    reap_ok(pid);
    errno = 0;
    ck_assert_ptr_null(shm_malloc(1000));
    ck_assert_int_eq(errno, ENOMEM);
    struct fastmem_stats st = shm_stats();
    ck_assert_uint_eq(st.live_blocks, n2);
    ck_assert_uint_ge(st.failed_cap, 3);
    ck_assert_int_eq(shm_check(), 0);
    free(blk);
}
END_TEST

/* ---------------------------------------------------------------- bad calls */

START_TEST(calls_before_init)
{
    void *p = (void *)1;
    int err = 0;
    CAPTURE_STDERR(p = shm_malloc(10); err = errno);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err, EINVAL);
    ck_assert_msg(strstr(captured, "shm_malloc: called before shm_init") != NULL, "%s", captured);
    CAPTURE_STDERR(p = shm_calloc(1, 10); err = errno);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err, EINVAL);
    int local;
    CAPTURE_STDERR(p = shm_realloc(&local, 10); err = errno);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err, EINVAL);
    CAPTURE_STDERR(shm_free(&local));
    ck_assert_msg(strstr(captured, "shm_free: called before shm_init") != NULL, "%s", captured);
    struct fastmem_stats st;
    ck_assert_int_eq(shm_stats_get(&st, sizeof st), -1);
    ck_assert_int_eq(shm_check(), -1);
    ck_assert_int_eq(errno, EINVAL);
    CAPTURE_STDERR(shm_destroy());
    ck_assert_msg(strstr(captured, "shm_destroy: there is no shared region") != NULL, "%s", captured);
    ck_assert_uint_eq(shm_usable_size(&local), 0);
}
END_TEST

START_TEST(bad_init_and_bad_pointers)
{
    int rc = 0, err = 0;
    CAPTURE_STDERR(rc = shm_init(0); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EINVAL);
    ck_assert_msg(strstr(captured, "shm_init: size 0") != NULL, "%s", captured);
    CAPTURE_STDERR(rc = shm_init((size_t)1 << 47); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EINVAL);
    CAPTURE_STDERR(rc = shm_init_flags(MiB, 0x80); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EINVAL);
    setenv("MEMMNG", "bogus", 1);
    CAPTURE_STDERR(rc = shm_init(MiB); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EINVAL);
    ck_assert_msg(strstr(captured, "MEMMNG='bogus' is not an engine: expected one of tlsf") != NULL,
                  "%s", captured);
    unsetenv("MEMMNG");

    /* A region too small for the engine's tables is made big enough. */
    ck_assert_int_eq(shm_init(1), 0);
    ck_assert_ptr_nonnull(shm_malloc(1));
    CAPTURE_STDERR(rc = shm_init(MiB); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err, EBUSY);
    ck_assert_msg(strstr(captured, "already exists") != NULL, "%s", captured);
    shm_destroy();

    ck_assert_int_eq(shm_init(MiB), 0);
    void *p = (void *)1;
    errno = 0;
    p = shm_malloc(SIZE_MAX);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(shm_calloc(SIZE_MAX / 2, 3));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(shm_malloc(2 * MiB)); /* past the cap */
    ck_assert_int_eq(errno, ENOMEM);
    char *q = shm_strdup("kept");
    ck_assert_ptr_nonnull(q);
    errno = 0;
    ck_assert_ptr_null(shm_realloc(q, 4 * MiB));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_str_eq(q, "kept"); /* a failed realloc keeps the block */
    int local;
    CAPTURE_STDERR(shm_free(&local));
    ck_assert_msg(strstr(captured, "not a pointer into the shared region; ignored") != NULL, "%s", captured);
    CAPTURE_STDERR(p = shm_realloc(&local, 10); err = errno);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err, EINVAL);
    struct fastmem_stats st = shm_stats();
    ck_assert_uint_eq(st.foreign_frees, 1);
    ck_assert_uint_eq(st.live_blocks, 1);
    ck_assert_uint_le(st.cap, 2 * MiB);
    shm_free(q);
    ck_assert_int_eq(shm_check(), 0);
    shm_destroy();
    /* After destroy, the calls are refused again. */
    CAPTURE_STDERR(p = shm_malloc(1));
    ck_assert_ptr_null(p);
}
END_TEST

/* calloc zeroes a reused block; realloc keeps the contents, grows in place when the
 * next block is free, and a child can grow (and move) a block the parent made. */
static char **slot; /* in the region: where the child leaves the moved block */

static int grow_in_child(int unused)
{
    (void)unused;
    char *q = shm_realloc(*slot, 50000);
    if (q == NULL || strcmp(q, "parent's data") != 0)
        return 1;
    strcpy(q + 40000, "child's data");
    *slot = q;
    return 0;
}

START_TEST(calloc_and_realloc_semantics)
{
    use_engine(_i);
    ck_assert_int_eq(shm_init(4 * MiB), 0);
    unsigned char *a = shm_malloc(1000);
    void *guard = shm_malloc(16);
    memset(a, 0xab, 1000);
    shm_free(a);
    unsigned char *z = shm_calloc(10, 100);
    if (!fm_engine_debugging(fm_engines[_i])) /* qm holds a freed block in quarantine */
        ck_assert_ptr_eq(z, a);                /* the same block, reused */
    for (int i = 0; i < 1000; i++)
        TU_REQUIRE(z[i] == 0, "byte %d not zeroed", i);
    slot = shm_malloc(sizeof *slot);
    char *p = shm_malloc(100);
    void *after = shm_malloc(100);
    void *fence = shm_malloc(16);
    shm_free(after);
    strcpy(p, "parent's data");
    char *q = shm_realloc(p, 180); /* the free block after p lets it grow in place */
    if (!fm_engine_debugging(fm_engines[_i])) /* qm: `after` is in its quarantine */
        ck_assert_ptr_eq(q, p);
    ck_assert_str_eq(q, "parent's data");
    *slot = q;
    reap_ok(spawn(grow_in_child, 0));
    if (!fm_engine_debugging(fm_engines[_i])) /* qm's p may have been placed last */
        ck_assert_ptr_ne(*slot, q);             /* 50,000 bytes did not fit there: it moved */
    ck_assert_str_eq(*slot, "parent's data");
    ck_assert_str_eq(*slot + 40000, "child's data");
    shm_free(*slot);
    shm_free(slot);
    shm_free(fence);
    shm_free(guard);
    shm_free(z);
    ck_assert_uint_eq(shm_stats().live_blocks, 0);
    ck_assert_int_eq(shm_check(), 0);
}
END_TEST

START_TEST(double_free_aborts)
{
    ck_assert_int_eq(shm_init(MiB), 0);
    void *p = shm_malloc(10);
    shm_free(p);
    shm_free(p);
}
END_TEST

/* --------------------------------------------------------- mlock and prefault */

/* AddressSanitizer and ThreadSanitizer replace mlock with a no-op that succeeds, so
 * under them there is nothing to test. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MLOCK_TESTABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MLOCK_TESTABLE 0
#endif
#endif
#ifndef MLOCK_TESTABLE
#define MLOCK_TESTABLE 1
#endif

/* Drop CAP_IPC_LOCK, which lets root lock past RLIMIT_MEMLOCK. */
static void drop_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    ck_assert_int_eq(syscall(SYS_capget, &hdr, data), 0);
    data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    data[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    ck_assert_int_eq(syscall(SYS_capset, &hdr, data), 0);
}

static uint64_t status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            sscanf(line + n + 1, "%llu", &kb);
    if (f)
        fclose(f);
    return kb;
}

START_TEST(mlock_refused_past_rlimit)
{
    if (!MLOCK_TESTABLE) {
        fprintf(stderr, "mlock_refused_past_rlimit: not testable under a sanitizer\n");
        return;
    }
    drop_ipc_lock();
    struct rlimit rl = {64 * 1024, 64 * 1024};
    ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
    int rc = 0, err = 0;
    CAPTURE_STDERR(rc = shm_init_flags(8 * MiB, FASTMEM_SHM_LOCK); err = errno);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(err == ENOMEM || err == EPERM, "errno %d", err);
    ck_assert_msg(strstr(captured, "shm_init: cannot lock 8 MiB in RAM") != NULL &&
                      strstr(captured, "RLIMIT_MEMLOCK is 64 KiB") != NULL,
                  "%s", captured);
    /* Nothing is left behind: a region without the lock can be made. */
    ck_assert_int_eq(shm_init(8 * MiB), 0);
}
END_TEST

START_TEST(mlock_and_prefault)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * MiB && geteuid() != 0)
        return; /* cannot lock 2 MiB here, and cannot raise the limit */
    if (!MLOCK_TESTABLE) {
        fprintf(stderr, "mlock_and_prefault: not testable under a sanitizer\n");
        return;
    }
    ck_assert_int_eq(shm_init_flags(2 * MiB, FASTMEM_SHM_LOCK | FASTMEM_SHM_PREFAULT), 0);
    ck_assert_uint_ge(status_kb("VmLck"), 2048);
    void *p = shm_malloc(100);
    struct fastmem_stats st = shm_stats();
    ck_assert_uint_eq(st.cap, 2 * MiB);
    unsigned char vec[512];
    ck_assert_int_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, vec), 0);
    ck_assert(vec[0] & 1);
}
END_TEST

START_TEST(prefault_touches_every_page)
{
    const size_t size = 8 * MiB;
    ck_assert_int_eq(shm_init_flags(size, FASTMEM_SHM_PREFAULT), 0);
    void *p = shm_malloc(100);
    char *base = (char *)((uintptr_t)p & ~(uintptr_t)(4096 - 1));
    struct fastmem_stats st = shm_stats();
    static unsigned char vec[8 * 256];
    /* every page from the block to the end of the region is resident */
    size_t len = (size_t)((char *)fm_shm_heap()->base + st.cap - base);
    ck_assert_int_eq(mincore(base, len, vec), 0);
    for (size_t i = 0; i < len / 4096; i++)
        TU_REQUIRE(vec[i] & 1, "page %zu of the region is not resident", i);
}
END_TEST

/* glibc's allocator cannot serve memory shared between processes: under MEMMNG=sys
 * the region is tlsf's, and works. */
START_TEST(sys_region_is_tlsf)
{
    ck_assert_int_eq(setenv("MEMMNG", "sys", 1), 0);
    ck_assert_int_eq(shm_init(4 * MiB), 0);
    ck_assert_str_eq(shm_stats().engine, "tlsf");
    char *p = shm_malloc(1000);
    ck_assert_ptr_nonnull(p);
    memset(p, 7, 1000);
    pid_t pid = fork();
    if (pid == 0)
        _exit(p[999] == 7 ? 0 : 1);
    reap_ok(pid);
    shm_free(p);
    ck_assert_int_eq(shm_check(), 0);
    shm_destroy();
}
END_TEST

static Suite *shm_suite(void)
{
    Suite *s = suite_create("shm");
    /* every engine that manages a pool: all but sys, the last (sys_region_is_tlsf) */
    int n = 0;
    while (fm_engines[n] && !fm_engines[n]->system)
        n++;
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, children_build_parent_reads_and_frees, 0, n);
    tcase_add_loop_test(tc, children_churn_concurrently, 0, n);
    tcase_add_loop_test(tc, sigkill_at_random_moments, 0, n);
    tcase_add_loop_test(tc, damage_found_after_death_is_reported, 0, n);
    tcase_add_test(tc, a_waiter_whose_wake_was_lost_gets_the_lock);
    tcase_add_loop_test(tc, fill_to_cap_and_refill, 0, n);
    tcase_add_loop_test(tc, calloc_and_realloc_semantics, 0, n);
    suite_add_tcase(s, tc);
    TCase *bad = tcase_create("misuse");
    tcase_add_test(bad, calls_before_init);
    tcase_add_test(bad, bad_init_and_bad_pointers);
    tcase_add_test_raise_signal(bad, double_free_aborts, SIGABRT);
    suite_add_tcase(s, bad);
    TCase *opt = tcase_create("options");
    tcase_add_test(opt, mlock_refused_past_rlimit);
    tcase_add_test(opt, mlock_and_prefault);
    tcase_add_test(opt, prefault_touches_every_page);
    tcase_add_test(opt, sys_region_is_tlsf);
    suite_add_tcase(s, opt);
    return s;
}

int main(void)
{
    return tu_run(shm_suite());
}
