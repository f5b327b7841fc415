/* stats.c: one printer for every heap's statistics. */
#include "stats.h"
#include "diag.h"

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
