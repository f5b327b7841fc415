/* os_linux.c: the Linux side of os.h. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

extern char **environ;

size_t fm_os_page_size(void)
{
    static size_t page;
    if (fm_unlikely(page == 0)) {
        unsigned long p = getauxval(AT_PAGESZ);
        page = p ? (size_t)p : 4096;
    }
    return page;
}

void *fm_os_reserve(size_t size, int *err)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        *err = errno;
        errno = saved;
        return NULL;
    }
    return p;
}

int fm_os_commit(void *addr, size_t size)
{
    int saved = errno;
    int rc = mprotect(addr, size, PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
    errno = saved;
    return rc;
}

int fm_os_reset(void *addr, size_t size)
{
    int saved = errno;
    int rc = madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
    errno = saved;
    return rc;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int fm_os_populate(void *addr, size_t size)
{
    static _Atomic bool unsupported;
    if (atomic_load_explicit(&unsupported, memory_order_relaxed))
        return EINVAL;
    int saved = errno;
    int rc = madvise(addr, size, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
    errno = saved;
    if (rc == EINVAL)
        atomic_store_explicit(&unsupported, true, memory_order_relaxed);
    return rc;
}

void fm_os_release(void *addr, size_t size)
{
    int saved = errno;
    munmap(addr, size);
    errno = saved;
}

void fm_os_futex_wait(_Atomic uint32_t *word, uint32_t expected, bool shared)
{
    int saved = errno;
    syscall(SYS_futex, word, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
    errno = saved;
}

void fm_os_futex_wake(_Atomic uint32_t *word, int count, bool shared)
{
    int saved = errno;
    syscall(SYS_futex, word, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    errno = saved;
}

pid_t fm_os_thread_id(void)
{
    return (pid_t)syscall(SYS_gettid);
}

void fm_os_yield(void)
{
    sched_yield();
}

/* The commands, from <linux/membarrier.h> (Linux 4.14), which not every libc's
 * headers carry. */
enum { MB_QUERY = 0, MB_PRIVATE_EXPEDITED = 1 << 3, MB_REGISTER_PRIVATE_EXPEDITED = 1 << 4 };

int fm_os_membarrier_register(void)
{
#ifdef SYS_membarrier
    int saved = errno;
    long q = syscall(SYS_membarrier, MB_QUERY, 0, 0);
    int rc = 0;
    if (q < 0)
        rc = errno;
    else if (!(q & MB_PRIVATE_EXPEDITED) || !(q & MB_REGISTER_PRIVATE_EXPEDITED))
        rc = ENOSYS;
    else if (syscall(SYS_membarrier, MB_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
        rc = errno;
    errno = saved;
    return rc;
#else
    return ENOSYS;
#endif
}

int fm_os_membarrier(void)
{
#ifdef SYS_membarrier
    int saved = errno;
    int rc = syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
    errno = saved;
    return rc;
#else
    return ENOSYS;
#endif
}

int fm_os_write_all(int fd, const void *buf, size_t len)
{
    int saved = errno;
    const char *p = buf;
    int rc = 0;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    errno = saved;
    return rc;
}

int fm_os_dup_private(int fd)
{
    int saved = errno;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    errno = saved;
    return d >= 0 ? d : fd;
}

/* A copy of /proc/self/environ, for the rare process whose first malloc comes before
 * libc has set `environ`.  It lives in .bss, so it costs nothing unless read. */
static char proc_env[64 * 1024];
static size_t proc_env_len;
static bool proc_env_read;

static void read_proc_environ(void)
{
    proc_env_len = fm_os_read_file("/proc/self/environ", proc_env, sizeof proc_env - 1);
    proc_env[proc_env_len] = '\0';
    proc_env_read = true;
}

/* If entry is "name=value", the value; else NULL. */
static const char *match(const char *entry, const char *name)
{
    while (*name && *entry == *name) {
        entry++;
        name++;
    }
    return (*name == '\0' && *entry == '=') ? entry + 1 : NULL;
}

const char *fm_os_getenv(const char *name)
{
    if (environ != NULL) {
        for (char **e = environ; *e; e++) {
            const char *v = match(*e, name);
            if (v)
                return v;
        }
        return NULL;
    }
    if (!proc_env_read)
        read_proc_environ();
    for (size_t i = 0; i < proc_env_len; i += fm_strlen(proc_env + i) + 1) {
        const char *v = match(proc_env + i, name);
        if (v)
            return v;
    }
    return NULL;
}

size_t fm_os_read_file(const char *path, char *buf, size_t size)
{
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    if (fd >= 0) {
        while (n < size) {
            ssize_t r = read(fd, buf + n, size - n);
            if (r > 0)
                n += (size_t)r;
            else if (r == 0 || errno != EINTR)
                break;
        }
        close(fd);
    }
    errno = saved;
    return n;
}

uint64_t fm_os_physical_memory(void)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    return (uint64_t)si.totalram * si.mem_unit;
}

void fm_os_exit(int status)
{
    _exit(status);
}
