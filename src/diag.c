/* diag.c: a printf subset over a caller's buffer, and the message paths built on it. */
#include "diag.h"
#include "os.h"

#include <errno.h>
#include <stdlib.h>

#define LINE_MAX_BYTES 1024

struct out {
    char *buf;
    size_t size; /* capacity including the NUL */
    size_t len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

/* Emit s (n bytes) padded to width: left-justified when left is set, else padded on
 * the left with pad. */
static void put_field(struct out *o, const char *s, size_t n, size_t width, bool left, char pad)
{
    size_t fill = width > n ? width - n : 0;
    if (!left)
        while (fill--)
            put(o, pad);
    for (size_t i = 0; i < n; i++)
        put(o, s[i]);
    if (left)
        while (fill--)
            put(o, ' ');
}

/* Digits of v in base 10 or 16 into the end of tmp; returns where they start. */
static char *utoa(uint64_t v, unsigned base, char *end)
{
    char *p = end;
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    return p;
}

size_t fm_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        f++;
        bool left = false;
        char pad = ' ';
        for (;; f++) {
            if (*f == '-')
                left = true;
            else if (*f == '0')
                pad = '0';
            else
                break;
        }
        size_t width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (size_t)(*f++ - '0');
        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
        if (*f == 'l') {
            lng = 1;
            if (*++f == 'l') {
                lng = 2;
                f++;
            }
        } else if (*f == 'z') {
            lng = 3;
            f++;
        }
        char tmp[24];
        char *end = tmp + sizeof tmp;
        char *s;
        switch (*f) {
        case '%':
            put(&o, '%');
            break;
        case 'c':
            tmp[0] = (char)va_arg(ap, int);
            put_field(&o, tmp, 1, width, left, ' ');
            break;
        case 's':
            s = va_arg(ap, char *);
            if (s == NULL)
                s = "(null)";
            put_field(&o, s, fm_strlen(s), width, left, ' ');
            break;
        case 'd':
        case 'i': {
            int64_t v = lng == 0 ? va_arg(ap, int)
                      : lng == 1 ? va_arg(ap, long)
                      : lng == 2 ? va_arg(ap, long long)
                                 : (int64_t)va_arg(ap, ptrdiff_t);
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            s = utoa(mag, 10, end);
            if (v < 0)
                *--s = '-';
            put_field(&o, s, (size_t)(end - s), width, left, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = lng == 0 ? va_arg(ap, unsigned)
                       : lng == 1 ? va_arg(ap, unsigned long)
                       : lng == 2 ? va_arg(ap, unsigned long long)
                                  : va_arg(ap, size_t);
            s = utoa(v, *f == 'x' ? 16 : 10, end);
            put_field(&o, s, (size_t)(end - s), width, left, pad);
            break;
        }
        case 'p':
            s = utoa((uintptr_t)va_arg(ap, void *), 16, end);
            *--s = 'x';
            *--s = '0';
            put_field(&o, s, (size_t)(end - s), width, left, ' ');
            break;
        default: /* unknown conversion: show it rather than guess at va_arg */
            put(&o, '%');
            if (*f)
                put(&o, *f);
            else
                f--;
            break;
        }
    }
    if (size > 0)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return o.len < size ? o.len : (size ? size - 1 : 0);
}

size_t fm_format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = fm_vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

size_t fm_format_size(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    uint64_t scale = 1;
    while (u + 1 < sizeof units / sizeof units[0] && bytes >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    uint64_t whole = bytes / scale;
    uint64_t tenths = (bytes % scale) * 10 / scale;
    if (bytes % scale == 0)
        return fm_format(buf, size, "%llu %s", (unsigned long long)whole, units[u]);
    return fm_format(buf, size, "%llu.%llu %s", (unsigned long long)whole,
                     (unsigned long long)tenths, units[u]);
}

static void vmessage(const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    static const char prefix[] = "libfastmem: ";
    size_t n = sizeof prefix - 1;
    for (size_t i = 0; i < n; i++)
        line[i] = prefix[i];
    n += fm_vformat(line + n, sizeof line - n - 1, fmt, ap);
    line[n++] = '\n';
    fm_os_write_all(2, line, n);
}

void fm_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

void fm_exit_with(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fm_os_exit(status);
}

void fm_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    abort();
}

void fm_assert_fail(const char *cond, const char *file, int line)
{
    fm_die("internal check failed: %s (%s:%d)", cond, file, line);
}

const char *fm_errno_name(int e)
{
    switch (e) {
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    default: return "error";
    }
}

size_t fm_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

bool fm_str_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (fm_ascii_lower(*a) != fm_ascii_lower(*b))
            return false;
    return *a == *b;
}
