/* diag.h: messages without malloc or stdio.
 *
 * Everything libfastmem says goes through here: formatted into a stack buffer by a
 * small printf subset, then written with one write(2), so a line is never interleaved
 * with another process's and nothing here can recurse into the allocator.
 *
 * Supported conversions: %% %c %s %d %i %u %x %p, with the length modifiers l, ll, z,
 * the flags '-' and '0', and a decimal field width.
 */
#ifndef FM_DIAG_H
#define FM_DIAG_H

#include "fm.h"

#include <stdarg.h>

/* Format into buf (always NUL-terminated when size > 0).  Returns the length written,
 * truncating silently: diagnostics must never fail. */
size_t fm_vformat(char *buf, size_t size, const char *fmt, va_list ap) FM_HIDDEN;
size_t fm_format(char *buf, size_t size, const char *fmt, ...) FM_PRINTF(3, 4) FM_HIDDEN;

/* "64 MiB", "1.5 GiB", "512 B": a byte count for humans, exact when it is a whole
 * number of the unit, one decimal otherwise. */
size_t fm_format_size(char *buf, size_t size, uint64_t bytes) FM_HIDDEN;

/* "ENOMEM", "EPERM", "EINVAL", "EAGAIN" (the values our system calls give), else
 * "error": for messages that also print the number. */
const char *fm_errno_name(int e) FM_HIDDEN;

/* One line on stderr, prefixed "libfastmem: " and ended with a newline. */
void fm_message(const char *fmt, ...) FM_PRINTF(1, 2) FM_HIDDEN;

/* A message, then _exit(status): for configuration refused before main. */
_Noreturn void fm_exit_with(int status, const char *fmt, ...) FM_PRINTF(2, 3) FM_COLD FM_HIDDEN;

/* A message, then abort(): for a heap found damaged, which must never be used on. */
_Noreturn void fm_die(const char *fmt, ...) FM_PRINTF(1, 2) FM_COLD FM_HIDDEN;

#endif
