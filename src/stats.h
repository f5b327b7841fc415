/* stats.h: the statistics report, generated from FASTMEM_STATS_FIELDS. */
#ifndef FM_STATS_H
#define FM_STATS_H

#include "fm.h"

#include <fastmem.h>

/* Format the report for st into buf: a title line naming the process and the engine,
 * then one line per field with its value and meaning, every line prefixed
 * "libfastmem: ".  Returns the length. */
size_t fm_stats_format(char *buf, size_t size, const char *title, const struct fastmem_stats *st) FM_HIDDEN;

/* The report's size bound, for callers' buffers. */
#define FM_STATS_REPORT_MAX 4096

struct fm_heap;

/* Take h's statistics and write their report, titled, to fd in one write(2).
 * Returns 0 or an errno value. */
int fm_stats_write(struct fm_heap *h, int fd, const char *title) FM_HIDDEN;

/* fm_stats_write for the public calls: 0, or -1 with errno. */
int fm_stats_print_titled(struct fm_heap *h, int fd, const char *title) FM_HIDDEN;

/* Whether a caller's buffer (st, of size bytes) can take statistics: at least the
 * engine name.  False with errno EINVAL if not. */
bool fm_stats_size_ok(const struct fastmem_stats *st, size_t size) FM_HIDDEN;

/* h's statistics into the caller's st: a shorter, older struct gets its prefix. */
void fm_stats_copy(struct fm_heap *h, struct fastmem_stats *st, size_t size) FM_HIDDEN;

#endif
