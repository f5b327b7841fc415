/* check_options.c: every accepted and every refused form of MEMMNG, MEMSIZE and
 * MEMSTATS, and the messages the refused ones get. */
#include "testutil.h"

#include "diag.h"
#include "options.h"
#include "os.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    for (const char *const *e = fake_env; e && e[0]; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

static int load(struct fm_options *o, char *err, size_t n, const char *const *env)
{
    fake_env = env;
    err[0] = '\0';
    return fm_options_load(o, fake_getenv, err, n);
}

START_TEST(sizes_accepted)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"67108864", 64ULL << 20},
        {"1048576B", 1ULL << 20},
        {"1048576b", 1ULL << 20},
        {"256K", 256ULL << 10},
        {"256k", 256ULL << 10},
        {"256KB", 256ULL << 10},
        {"256KiB", 256ULL << 10},
        {"256kib", 256ULL << 10},
        {"64M", 64ULL << 20},
        {"64m", 64ULL << 20},
        {"64MB", 64ULL << 20},
        {"64MiB", 64ULL << 20},
        {"64mIb", 64ULL << 20},
        {"2G", 2ULL << 30},
        {"2GiB", 2ULL << 30},
        {"1T", 1ULL << 40},
        {"1TB", 1ULL << 40},
        {"16777215T", 16777215ULL << 40},
        {"18446744073709551615", UINT64_MAX},
        {"007M", 7ULL << 20},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        ck_assert_msg(fm_parse_size(ok[i].s, &v) == 0, "'%s' refused", ok[i].s);
        ck_assert_msg(v == ok[i].v, "'%s' -> %llu", ok[i].s, (unsigned long long)v);
    }
}
END_TEST

START_TEST(sizes_refused)
{
    static const char *const bad[] = {
        "", "abc", "-5", "+5", " 64M", "64M ", "64 M", "12Q", "64M5", "1P", "1E", "1.5G",
        "0x10", "64MiBB", "64Mi", "64iB", "K", "M64", "18446744073709551616",
        "99999999999999999999999", "16777216T", "17179869184G", "64Kb5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 777;
        ck_assert_msg(fm_parse_size(bad[i], &v) == -1, "'%s' accepted", bad[i]);
        ck_assert_uint_eq(v, 777);
    }
}
END_TEST

START_TEST(switches)
{
    static const char *const on[] = {"1", "yes", "YES", "on", "On", "true", "TRUE"};
    static const char *const off[] = {"0", "no", "No", "off", "OFF", "false", "False"};
    static const char *const bad[] = {"", "2", "maybe", "y", "n", "onn", " 1", "1 "};
    bool b;
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        b = false;
        ck_assert_int_eq(fm_parse_switch(on[i], &b), 0);
        ck_assert(b);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        b = true;
        ck_assert_int_eq(fm_parse_switch(off[i], &b), 0);
        ck_assert(!b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(fm_parse_switch(bad[i], &b) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(defaults)
{
    struct fm_options o;
    char err[256];
    static const char *const env[] = {NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, env), 0);
    ck_assert_ptr_eq(o.engine, fm_engine_default());
    ck_assert_str_eq(o.engine->name, "tlsf");
    ck_assert(!o.memsize_set);
    ck_assert(!o.stats);
    ck_assert_uint_eq(o.memsize, fm_options_default_memsize());
    ck_assert_uint_ge(o.memsize, FM_MEMSIZE_DEFAULT_MIN);
    ck_assert_uint_le(o.memsize, FM_MEMSIZE_MAX);
}
END_TEST

START_TEST(accepted_environment)
{
    struct fm_options o;
    char err[256];
    static const char *const env[] = {"MEMMNG", "Tlsf_Malloc", "MEMSIZE", "64MiB",
                                      "MEMSTATS", "yes", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, env), 0);
    ck_assert_str_eq(o.engine->name, "tlsf");
    ck_assert_uint_eq(o.memsize, 64ULL << 20);
    ck_assert(o.memsize_set);
    ck_assert(o.stats);
    static const char *const bounds[] = {"MEMSIZE", "256K", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, bounds), 0);
    ck_assert_uint_eq(o.memsize, FM_MEMSIZE_MIN);
    ck_assert_uint_eq(o.release, 256u << 10); /* the default: free runs of 256 KiB go back */
    ck_assert(o.populate);                     /* the default: populate-ahead */
    static const char *const popoff[] = {"MEMPOPULATE", "Off", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, popoff), 0);
    ck_assert(!o.populate);
    static const char *const pop0[] = {"MEMPOPULATE", "0", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, pop0), 0);
    ck_assert(!o.populate);
    static const char *const popon[] = {"MEMPOPULATE", "TRUE", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, popon), 0);
    ck_assert(o.populate);
    static const char *const rel[] = {"MEMRELEASE", "4M", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, rel), 0);
    ck_assert_uint_eq(o.release, 4u << 20);
    static const char *const reloff[] = {"MEMRELEASE", "Off", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, reloff), 0);
    ck_assert_uint_eq(o.release, 0);
    static const char *const fm[] = {"MEMMNG", "F_Malloc", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, fm), 0);
    ck_assert_str_eq(o.engine->name, "fm");
    static const char *const zero[] = {"MEMMNG", "0", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, zero), 0);
    ck_assert_str_eq(o.engine->name, "fm");
    static const char *const top[] = {"MEMSIZE", "64T", "MEMMNG", "2", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, top), 0);
    ck_assert_uint_eq(o.memsize, FM_MEMSIZE_MAX);
}
END_TEST

/* Every refused value: -1, and one line naming the variable, the value as given and
 * what is accepted. */
START_TEST(refused_environment)
{
    static const struct {
        const char *name, *value, *expected;
    } bad[] = {
        {"MEMMNG", "bogus", "expected one of tlsf (also tlsf_malloc, 2), fm (also f_malloc, fmalloc, 0)"},
        {"MEMMNG", "", "expected one of tlsf"},
        {"MEMMNG", "f-malloc", "expected one of tlsf"},
        {"MEMMNG", "3", "expected one of tlsf"},
        {"MEMSIZE", "abc", "expected bytes, or a number with K, M, G or T"},
        {"MEMSIZE", "0", "from 256K to 64T"},
        {"MEMSIZE", "-5", "from 256K to 64T"},
        {"MEMSIZE", "12Q", "(also KB/KiB, MB/MiB, ...; powers of 1024)"},
        {"MEMSIZE", "", "expected bytes"},
        {"MEMSIZE", "99999999999999999999999", "expected bytes"},
        {"MEMSIZE", "255K", "from 256K to 64T"},
        {"MEMSIZE", "65T", "from 256K to 64T"},
        {"MEMSTATS", "maybe", "expected 0 or 1 (also no/yes, off/on, false/true)"},
        {"MEMSTATS", "", "expected 0 or 1"},
        {"MEMRELEASE", "1", "expected a size from 256K to 64T (K, M, G or T as for MEMSIZE), or 0/off"},
        {"MEMRELEASE", "on", "expected a size from 256K"},
        {"MEMPOPULATE", "2", "expected 0 or 1 (also no/yes, off/on, false/true)"},
        {"MEMPOPULATE", "", "expected 0 or 1"},
        {"MEMPOPULATE", "64K", "expected 0 or 1"},
        {"MEMPOPULATE", "al", "expected 0 or 1 (also no/yes, off/on, false/true), or all"},
        {"MEMPOPULATE", "allx", "or all"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i].name, bad[i].value, NULL};
        struct fm_options o;
        char err[512], want[128];
        ck_assert_int_eq(load(&o, err, sizeof err, env), -1);
        snprintf(want, sizeof want, "%s='%s' is not accepted: ", bad[i].name, bad[i].value);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got: %s", err);
        ck_assert_msg(strstr(err, bad[i].expected) != NULL, "got: %s", err);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
}
END_TEST

/* MEMPOPULATE=all (any case): the whole pool resident at start, so only with a
 * MEMSIZE that the machine can hold, and never with pages going back (MEMRELEASE
 * off, whatever its default); a combination that cannot be had is refused in one
 * line naming both variables. */
START_TEST(populate_all)
{
    struct fm_options o;
    char err[512];
    static const char *const ok[] = {"MEMSIZE", "64M", "MEMPOPULATE", "All", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, ok), 0);
    ck_assert(o.populate_all);
    ck_assert(o.populate);
    ck_assert_uint_eq(o.release, 0); /* turned off: the default would give pages back */
    ck_assert_uint_eq(o.memsize, 64u << 20);
    static const char *const off[] = {"MEMSIZE", "64M", "MEMPOPULATE", "ALL", "MEMRELEASE", "off", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, off), 0);
    ck_assert(o.populate_all);
    ck_assert_uint_eq(o.release, 0);
    static const char *const one[] = {"MEMSIZE", "64M", "MEMPOPULATE", "1", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, one), 0);
    ck_assert(!o.populate_all);
    ck_assert_uint_eq(o.release, FM_RELEASE_DEFAULT);

    static const char *const nosize[] = {"MEMPOPULATE", "all", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, nosize), -1);
    ck_assert_msg(strstr(err, "MEMPOPULATE=all needs MEMSIZE") == err, "got: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    static const char *const rel[] = {"MEMSIZE", "64M", "MEMPOPULATE", "all", "MEMRELEASE", "1M", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, rel), -1);
    ck_assert_msg(strstr(err, "MEMPOPULATE=all keeps the whole pool resident: MEMRELEASE must be") == err,
                  "got: %s", err);
    /* more than the machine has: named with both sizes */
    uint64_t phys = fm_os_physical_memory();
    if (phys != 0 && phys < FM_MEMSIZE_MAX) {
        char size[32], want[128];
        snprintf(size, sizeof size, "%lluK", (unsigned long long)(phys / 1024 + 1));
        const char *big[] = {"MEMSIZE", size, "MEMPOPULATE", "all", NULL};
        ck_assert_int_eq(load(&o, err, sizeof err, big), -1);
        char have[32];
        fm_format_size(have, sizeof have, phys);
        snprintf(want, sizeof want, "more than this machine's memory (%s)", have);
        ck_assert_msg(strstr(err, "MEMPOPULATE=all would make MEMSIZE=") == err, "got: %s", err);
        ck_assert_msg(strstr(err, want) != NULL, "got: %s", err);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
}
END_TEST

/* A value full of control bytes, or very long, still makes one short line. */
START_TEST(refused_value_is_quoted_safely)
{
    char long_value[300];
    memset(long_value, '7', sizeof long_value - 2);
    long_value[sizeof long_value - 2] = 'Q';
    long_value[sizeof long_value - 1] = '\0';
    const char *env[] = {"MEMSIZE", long_value, NULL};
    struct fm_options o;
    char err[512];
    ck_assert_int_eq(load(&o, err, sizeof err, env), -1);
    ck_assert_ptr_nonnull(strstr(err, "'7777777777"));
    ck_assert_ptr_nonnull(strstr(err, "...'"));
    ck_assert_uint_lt(strlen(err), 300);
    const char *env2[] = {"MEMMNG", "tl\nsf\x1b", NULL};
    ck_assert_int_eq(load(&o, err, sizeof err, env2), -1);
    ck_assert_ptr_nonnull(strstr(err, "MEMMNG='tl?sf?'"));
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* The first refused variable is the one reported. */
START_TEST(first_error_wins)
{
    const char *env[] = {"MEMSTATS", "x", "MEMMNG", "y", NULL};
    struct fm_options o;
    char err[512];
    ck_assert_int_eq(load(&o, err, sizeof err, env), -1);
    ck_assert_msg(strncmp(err, "MEMMNG='y'", 10) == 0, "got: %s", err);
}
END_TEST

START_TEST(formatter)
{
    char b[128];
    fm_format(b, sizeof b, "%s|%d|%u|%x|%zu|%lld|%5s|%-5s|%05d|%c|%%|%p", "str", -42, 42u, 255u,
              (size_t)7, -9LL, "ab", "ab", 42, 'z', (void *)0x1234);
    ck_assert_str_eq(b, "str|-42|42|ff|7|-9|   ab|ab   |00042|z|%|0x1234");
    ck_assert_uint_eq(fm_format(b, 6, "%s", "truncated"), 5);
    ck_assert_str_eq(b, "trunc");
    fm_format_size(b, sizeof b, 64ULL << 20);
    ck_assert_str_eq(b, "64 MiB");
    fm_format_size(b, sizeof b, 3ULL << 29);
    ck_assert_str_eq(b, "1.5 GiB");
    fm_format_size(b, sizeof b, 1ULL << 40);
    ck_assert_str_eq(b, "1 TiB");
    fm_format_size(b, sizeof b, 100);
    ck_assert_str_eq(b, "100 B");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, sizes_accepted);
    tcase_add_test(tc, sizes_refused);
    tcase_add_test(tc, switches);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, accepted_environment);
    tcase_add_test(tc, refused_environment);
    tcase_add_test(tc, populate_all);
    tcase_add_test(tc, refused_value_is_quoted_safely);
    tcase_add_test(tc, first_error_wins);
    tcase_add_test(tc, formatter);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
