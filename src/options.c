/* options.c: parsing the environment variables (options.h), without malloc, stdio or
 * locale. */
#include "options.h"
#include "diag.h"
#include "os.h"

int fm_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (fm_ascii_lower(*p)) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    default: break;
    }
    if (shift) {
        p++;
        if (fm_ascii_lower(p[0]) == 'i' && fm_ascii_lower(p[1]) == 'b')
            p += 2;
        else if (fm_ascii_lower(p[0]) == 'b')
            p++;
    } else if (fm_ascii_lower(*p) == 'b') {
        p++;
    }
    if (*p != '\0')
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

int fm_parse_switch(const char *s, bool *out)
{
    static const char *const on[] = {"1", "yes", "on", "true"};
    static const char *const off[] = {"0", "no", "off", "false"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        if (fm_str_ieq(s, on[i])) {
            *out = true;
            return 0;
        }
        if (fm_str_ieq(s, off[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

uint64_t fm_options_default_memsize(void)
{
    uint64_t m = fm_os_physical_memory();
    if (m < FM_MEMSIZE_DEFAULT_MIN)
        m = FM_MEMSIZE_DEFAULT_MIN;
    if (m > FM_MEMSIZE_MAX)
        m = FM_MEMSIZE_MAX;
    return m;
}

/* ------------------------------------------------------------------ the table */

static int set_engine(const char *v, struct fm_options *o)
{
    o->engine = fm_engine_find(v);
    return o->engine ? 0 : -1;
}

static size_t expect_engine(char *buf, size_t size)
{
    size_t n = fm_format(buf, size, "one of ");
    return n + fm_engine_describe(buf + n, size - n);
}

static int set_memsize(const char *v, struct fm_options *o)
{
    uint64_t m;
    if (fm_parse_size(v, &m) != 0 || m < FM_MEMSIZE_MIN || m > FM_MEMSIZE_MAX)
        return -1;
    o->memsize = m;
    o->memsize_set = true;
    return 0;
}

static size_t expect_memsize(char *buf, size_t size)
{
    return fm_format(buf, size,
                     "bytes, or a number with K, M, G or T (also KB/KiB, MB/MiB, ...; powers of 1024), "
                     "from 256K to 64T");
}

static int set_stats(const char *v, struct fm_options *o)
{
    return fm_parse_switch(v, &o->stats);
}

static size_t expect_switch(char *buf, size_t size)
{
    return fm_format(buf, size, "0 or 1 (also no/yes, off/on, false/true)");
}

static int set_release(const char *v, struct fm_options *o)
{
    o->release_set = true;
    bool on;
    uint64_t m;
    if (fm_parse_switch(v, &on) == 0 && !on) {
        o->release = 0;
        return 0;
    }
    if (fm_parse_size(v, &m) != 0 || m < FM_RELEASE_MIN || m > FM_MEMSIZE_MAX)
        return -1;
    o->release = m;
    return 0;
}

static size_t expect_release(char *buf, size_t size)
{
    return fm_format(buf, size, "a size from 256K to 64T (K, M, G or T as for MEMSIZE), or 0/off");
}

static int set_populate(const char *v, struct fm_options *o)
{
    o->populate_all = fm_str_ieq(v, "all");
    if (o->populate_all) {
        o->populate = true;
        return 0;
    }
    return fm_parse_switch(v, &o->populate);
}

static size_t expect_populate(char *buf, size_t size)
{
    size_t n = expect_switch(buf, size);
    return n + fm_format(buf + n, size - n, ", or all");
}

static const struct option {
    const char *name;
    int (*set)(const char *value, struct fm_options *o);
    size_t (*expected)(char *buf, size_t size);
} options[] = {
    {"MEMMNG", set_engine, expect_engine},
    {"MEMSIZE", set_memsize, expect_memsize},
    {"MEMSTATS", set_stats, expect_switch},
    {"MEMRELEASE", set_release, expect_release},
    {"MEMPOPULATE", set_populate, expect_populate},
};

/* MEMPOPULATE=all makes the whole pool resident at start: of a size the user chose
 * and the machine can hold, and kept resident (no free run goes back, so MEMRELEASE
 * is turned off).  0, or -1 with the message in err. */
static int check_populate_all(struct fm_options *o, char *err, size_t errlen)
{
    if (!o->memsize_set) {
        fm_format(err, errlen, "MEMPOPULATE=all needs MEMSIZE: it faults in the whole pool at start, "
                               "and the default pool is the size of physical memory");
        return -1;
    }
    uint64_t phys = fm_os_physical_memory();
    if (phys != 0 && o->memsize > phys) {
        char want[32], have[32];
        fm_format_size(want, sizeof want, o->memsize);
        fm_format_size(have, sizeof have, phys);
        fm_format(err, errlen, "MEMPOPULATE=all would make MEMSIZE=%s resident, more than this "
                               "machine's memory (%s)", want, have);
        return -1;
    }
    if (o->release_set && o->release != 0) {
        fm_format(err, errlen, "MEMPOPULATE=all keeps the whole pool resident: MEMRELEASE must be "
                               "unset, 0 or off");
        return -1;
    }
    o->release = 0;
    return 0;
}

/* Copy value for a message: at most 64 bytes, control bytes shown as '?', so the
 * message stays one line whatever the environment holds. */
static void quote(char *buf, size_t size, const char *v)
{
    size_t i = 0, n = 0;
    for (; i < 64 && v[i] && n + 4 < size; i++)
        buf[n++] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
    if (v[i] && n + 4 < size) {
        buf[n++] = '.';
        buf[n++] = '.';
        buf[n++] = '.';
    }
    buf[n] = '\0';
}

int fm_options_load(struct fm_options *o, const char *(*getenv_fn)(const char *), char *err,
                    size_t errlen)
{
    o->engine = fm_engine_default();
    o->memsize = fm_options_default_memsize();
    o->memsize_set = false;
    o->stats = false;
    o->release = FM_RELEASE_DEFAULT;
    o->populate = true;
    o->populate_all = false;
    o->release_set = false;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const char *v = getenv_fn(options[i].name);
        if (v == NULL || options[i].set(v, o) == 0)
            continue;
        char shown[80];
        quote(shown, sizeof shown, v);
        size_t n = fm_format(err, errlen, "%s='%s' is not accepted: expected ", options[i].name, shown);
        options[i].expected(err + n, errlen - n);
        return -1;
    }
    return o->populate_all ? check_populate_all(o, err, errlen) : 0;
}
