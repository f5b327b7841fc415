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

#endif
