/* init.c: making the process heap, and the fork handlers.
 *
 * Lock order for fork: the process heap's lock is the only lock libfastmem holds
 * across fork().  The handlers are registered while the heap is being made, which is
 * before main and usually before any other library registers its own, so our prepare
 * handler runs last (handlers run in reverse order): whatever the others allocate in
 * theirs is done before we take the heap lock.
 */
#include "init.h"
#include "diag.h"
#include "libc.h"
#include "os.h"
#include "stats.h"
#include "tcache.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

struct fm_heap fm_process_heap;
struct fm_options fm_process_options;

/* Where the MEMSTATS report goes: a private duplicate of stderr taken at start, since
 * programs may close stderr before they exit (coreutils does, in an atexit handler
 * that runs before our destructor). */
static int report_fd = 2;
_Atomic int fm_init_state;
static _Atomic pid_t init_thread;

/* The first commit: the engine's tables and a little room.  More comes as needed. */
#define FIRST_COMMIT ((size_t)256 * 1024)

/* Below this a default-sized heap is not lowered further to fit an address-space
 * limit (ulimit -v). */
#define DEFAULT_FLOOR ((size_t)64 * 1024 * 1024)

static void prefork(void)
{
    fm_heap_prefork(&fm_process_heap);
}

static void postfork_parent(void)
{
    fm_heap_postfork_parent(&fm_process_heap);
}

static void postfork_child(void)
{
    fm_heap_postfork_child(&fm_process_heap);
}

/* MEMPOPULATE=all: fault in every page of the pool [base, base+cap), committed
 * already, before the engine is laid over it, so that no allocation takes a page
 * fault.  One MADV_POPULATE_WRITE; a kernel without it (before Linux 5.14) has each
 * page written instead.  Not enough memory stops the process, as a cap it cannot
 * have would. */
static void populate_all(char *base, size_t cap, const char *size)
{
    int e = fm_os_populate(base, cap);
    if (e == EINVAL) {
        size_t page = fm_os_page_size();
        for (size_t off = 0; off < cap; off += page)
            ((volatile char *)base)[off] = 0;
        e = 0;
    }
    if (e != 0)
        fm_exit_with(1, "MEMPOPULATE=all: cannot fault in the whole heap of %s (MEMSIZE): %s (%d); "
                     "lower MEMSIZE", size, fm_errno_name(e), e);
}

/* Read the options, reserve the range, lay the engine over its start.  Anything
 * refused stops the process: it has not reached main yet. */
static void make_process_heap(void)
{
    struct fm_options *o = &fm_process_options;
    char err[512];
    if (fm_options_load(o, fm_os_getenv, err, sizeof err) != 0)
        fm_exit_with(1, "%s", err);
    if (o->stats)
        report_fd = fm_os_dup_private(2);

    size_t page = fm_os_page_size();
    size_t cap = fm_align_down((size_t)o->memsize, page);
    if (o->engine->system) {
        if (fm_heap_init(&fm_process_heap, o->engine, NULL, cap, 0, 0, NULL, false) != 0)
            fm_exit_with(1, "MEMMNG=%s: glibc's allocator cannot be found in libc.so.6", o->engine->name);
        return;
    }
    int e = 0;
    void *base = fm_os_reserve(cap, &e);
    while (base == NULL && !o->memsize_set && cap / 2 >= DEFAULT_FLOOR) {
        cap = fm_align_down(cap / 2, page);
        base = fm_os_reserve(cap, &e);
    }
    char size[32];
    fm_format_size(size, sizeof size, cap);
    if (base == NULL)
        fm_exit_with(1, "cannot reserve %s of address space for the heap (MEMSIZE): %s (%d); "
                     "lower MEMSIZE or raise the address-space limit (ulimit -v)",
                     size, fm_errno_name(e), e);

    size_t first = o->populate_all || cap < FIRST_COMMIT ? cap : FIRST_COMMIT;
    e = fm_os_commit(base, first);
    if (e != 0 && o->populate_all)
        fm_exit_with(1, "MEMPOPULATE=all: cannot commit the whole heap of %s (MEMSIZE): %s (%d); "
                     "lower MEMSIZE", size, fm_errno_name(e), e);
    if (e != 0)
        fm_exit_with(1, "cannot commit the first %zu bytes of the heap: %s (%d)", first, fm_errno_name(e), e);
    if (o->populate_all)
        populate_all(base, cap, size);
    if (fm_heap_init(&fm_process_heap, o->engine, base, cap, 0, first, fm_os_commit, false) != 0)
        fm_exit_with(1, "MEMSIZE=%s is too small for engine %s", size, o->engine->name);
    fm_heap_set_release(&fm_process_heap, (size_t)o->release, FM_RELEASE_BATCH);
    /* (every page is in already: nothing for populate-ahead to do) */
    fm_heap_set_populate(&fm_process_heap, o->populate && !o->populate_all);
    /* the one heap with thread caches in libfastmem.so: the exported malloc and free
     * take a thread's cache for this heap's without looking (preload.c) */
    fm_tcache_setup(&fm_process_heap);
}

struct fm_heap *fm_init_slow(void)
{
    int expect = FM_INIT_NONE;
    if (atomic_compare_exchange_strong(&fm_init_state, &expect, FM_INIT_RUNNING)) {
        int saved = errno;
        atomic_store(&init_thread, fm_os_thread_id());
        if (!fm_libc_preloaded()) {
            if (fm_libc_resolve()) {
                atomic_store_explicit(&fm_init_state, FM_INIT_FORWARD, memory_order_release);
                errno = saved;
                return NULL;
            }
            fm_message("linked without LD_PRELOAD, but glibc's malloc cannot be found: "
                       "libfastmem serves malloc");
        }
        make_process_heap();
        atomic_store_explicit(&fm_init_state, FM_INIT_DONE, memory_order_release);
        /* pthread_atfork may allocate: the heap is ready for it now. */
        if (pthread_atfork(prefork, postfork_parent, postfork_child) != 0)
            fm_message("cannot register fork handlers: a child forked while another thread "
                       "allocates may deadlock");
        errno = saved;
        return &fm_process_heap;
    }
    if (expect == FM_INIT_DONE)
        return &fm_process_heap;
    if (expect == FM_INIT_FORWARD)
        return NULL;
    if (atomic_load(&init_thread) == fm_os_thread_id())
        return NULL; /* a call from inside make_process_heap: cannot be served */
    int state;
    while ((state = atomic_load_explicit(&fm_init_state, memory_order_acquire)) == FM_INIT_RUNNING)
        fm_os_yield();
    return state == FM_INIT_DONE ? &fm_process_heap : NULL;
}

void fm_init_at_exit(void)
{
    struct fm_heap *h = fm_main_heap_if_ready();
    if (h == NULL)
        return;
    /* The debugging engine looks at every block one last time: damage nothing freed
     * since (a write past a block never freed, a write to a block still in
     * quarantine) is caught here at the latest. */
    if (fm_engine_debugging(h->engine)) {
        const char *why = fm_heap_check(h);
        if (why != NULL)
            fm_die("the heap is damaged at exit of pid %d: %s", (int)getpid(), why);
    }
    if (!fm_process_options.stats)
        return;
    char title[128];
    fm_format(title, sizeof title, "statistics at exit of pid %d (%s)", (int)getpid(),
              program_invocation_short_name ? program_invocation_short_name : "?");
    fm_stats_write(h, report_fd, title);
    static char leaks[16384]; /* no malloc here: the heap may be the one reporting */
    size_t n = fm_heap_leaks(h, leaks, sizeof leaks);
    if (n > 0)
        fm_os_write_all(report_fd, leaks, n);
}
