/* stats.c: one printer for every heap's statistics. */
#include "stats.h"
#include "diag.h"
#include "heap.h"
#include "os.h"

#include <errno.h>
#include <string.h>

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

int fm_stats_print_titled(struct fm_heap *h, int fd, const char *title)
{
    int e = fm_stats_write(h, fd, title);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

bool fm_stats_size_ok(const struct fastmem_stats *st, size_t size)
{
    if (st == NULL || size < sizeof st->engine) {
        errno = EINVAL;
        return false;
    }
    return true;
}

void fm_stats_copy(struct fm_heap *h, struct fastmem_stats *st, size_t size)
{
    struct fastmem_stats full;
    fm_heap_stats(h, &full);
    memcpy(st, &full, size < sizeof full ? size : sizeof full);
}
