/* stats.c: one printer for every heap's statistics. */
#include "stats.h"
#include "diag.h"
#include "heap.h"
#include "os.h"

#define KIND_B 1
#define KIND_N 0

size_t fm_stats_format(char *buf, size_t size, const char *title, const struct fastmem_stats *st)
{
    size_t n = fm_format(buf, size, "libfastmem: %s, engine %s\n", title, st->engine);
    char val[32];
#define LINE(name, kind, doc)                                                                  \
    if (n < size) {                                                                            \
        if (KIND_##kind)                                                                       \
            fm_format_size(val, sizeof val, st->name);                                         \
        else                                                                                   \
            fm_format(val, sizeof val, "%llu", (unsigned long long)st->name);                  \
        n += fm_format(buf + n, size - n, "libfastmem:   %-15s %12s  %s\n", #name, val, doc);  \
    }
    FASTMEM_STATS_FIELDS(LINE)
#undef LINE
    return n;
}

int fm_stats_write(struct fm_heap *h, int fd, const char *title)
{
    struct fastmem_stats st;
    char report[FM_STATS_REPORT_MAX];
    fm_heap_stats(h, &st);
    size_t n = fm_stats_format(report, sizeof report, title, &st);
    if (n < sizeof report)
        n += fm_heap_report(h, report + n, sizeof report - n);
    return fm_os_write_all(fd, report, n);
}
