/* os.h: every call libfastmem makes to the kernel, behind one contract.
 *
 * os_linux.c is the only file that includes <sys/mman.h>, <sys/syscall.h> or
 * <linux/futex.h>.  Shared preconditions: addresses and sizes passed to the memory
 * calls are multiples of fm_os_page_size(); functions returning int return 0 or a
 * positive errno value and leave errno as they found it; nothing here allocates.
 */
#ifndef FM_OS_H
#define FM_OS_H

#include "fm.h"

#include <stdatomic.h>
#include <sys/types.h>

/* The page size, read once from the auxiliary vector. */
size_t fm_os_page_size(void) FM_HIDDEN;

/* Reserve size bytes of address space that cannot be accessed and costs no memory and
 * no commit charge (so it works under vm.overcommit_memory=2).  NULL and *err on
 * failure. */
void *fm_os_reserve(size_t size, int *err) FM_HIDDEN;

/* Make [addr, addr+size) of a reservation readable and writable.  Under strict
 * overcommit this is where the kernel charges the memory, and where it says ENOMEM. */
int fm_os_commit(void *addr, size_t size) FM_HIDDEN;

/* Drop the contents of [addr, addr+size) (they read as zero afterwards) and the
 * physical pages behind them; the range stays accessible. */
int fm_os_reset(void *addr, size_t size) FM_HIDDEN;

/* Fault [addr, addr+size) in, writable, in one call (MADV_POPULATE_WRITE): the kernel
 * maps the pages at a fraction of the cost of taking one page fault each.  Contents
 * are unchanged.  EINVAL where the kernel is older than 5.14 (and from then on, at
 * once). */
int fm_os_populate(void *addr, size_t size) FM_HIDDEN;

/* Give a reservation back. */
void fm_os_release(void *addr, size_t size) FM_HIDDEN;

/* Futex wait/wake on a 32-bit word.  shared selects the process-shared form (for
 * words in MAP_SHARED memory); otherwise the cheaper process-private one.  Waiting
 * returns when woken, on a spurious wake-up, or at once if *word != expected. */
void fm_os_futex_wait(_Atomic uint32_t *word, uint32_t expected, bool shared) FM_HIDDEN;
void fm_os_futex_wake(_Atomic uint32_t *word, int count, bool shared) FM_HIDDEN;

/* The caller's kernel thread id. */
pid_t fm_os_thread_id(void) FM_HIDDEN;

/* Give up the CPU for a moment (while another thread finishes initialising). */
void fm_os_yield(void) FM_HIDDEN;

/* membarrier(2), private expedited: register this process (0, or an errno), and make
 * every running thread of it execute a full memory barrier (0, or an errno). */
int fm_os_membarrier_register(void) FM_HIDDEN;
int fm_os_membarrier(void) FM_HIDDEN;

/* Write all of buf to fd, retrying short writes and EINTR.  0 or errno. */
int fm_os_write_all(int fd, const void *buf, size_t len) FM_HIDDEN;

/* A close-on-exec duplicate of fd (numbered 3 or above), or fd itself if that fails. */
int fm_os_dup_private(int fd) FM_HIDDEN;

/* The value of environment variable name, or NULL if it is unset.  Works before libc
 * has set `environ` (it then reads /proc/self/environ once). */
const char *fm_os_getenv(const char *name) FM_HIDDEN;

/* Read up to size bytes of the file at path into buf; the count read (0 if the file
 * cannot be read). */
size_t fm_os_read_file(const char *path, char *buf, size_t size) FM_HIDDEN;

/* Physical memory of the machine in bytes (0 if unknown). */
uint64_t fm_os_physical_memory(void) FM_HIDDEN;

/* _exit(status): leave at once, running no handler of the program's. */
_Noreturn void fm_os_exit(int status) FM_HIDDEN;

#endif
