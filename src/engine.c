/* engine.c: what MEMMNG names mean. */
#include "engine.h"
#include "diag.h"

const struct fm_engine *const fm_engines[] = {
    &fm_engine_tlsf,
    &fm_engine_fm,
    &fm_engine_qm,
    &fm_engine_sys,
    NULL,
};

size_t fm_engine_count(void)
{
    size_t n = 0;
    while (fm_engines[n])
        n++;
    return n;
}

const struct fm_engine *fm_engine_default(void)
{
    return &fm_engine_tlsf;
}

const struct fm_engine *fm_engine_find(const char *name)
{
    for (const struct fm_engine *const *e = fm_engines; *e; e++) {
        if (fm_str_ieq(name, (*e)->name))
            return *e;
        for (const char *const *a = (*e)->aliases; *a; a++)
            if (fm_str_ieq(name, *a))
                return *e;
    }
    return NULL;
}

size_t fm_engine_describe(char *buf, size_t size)
{
    size_t n = 0;
    for (const struct fm_engine *const *e = fm_engines; *e; e++) {
        n += fm_format(buf + n, size - n, "%s%s", e == fm_engines ? "" : ", ", (*e)->name);
        for (const char *const *a = (*e)->aliases; *a; a++)
            n += fm_format(buf + n, size - n, "%s%s", a == (*e)->aliases ? " (also " : ", ", *a);
        if ((*e)->aliases[0])
            n += fm_format(buf + n, size - n, ")");
    }
    return n;
}
