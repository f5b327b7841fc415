/* libc.c: when libfastmem serves a process's malloc, and glibc's allocator when it
 * does not.
 *
 * libfastmem.so is both the preload shim and the library a program links for the
 * shm_* heap.  Its malloc family is exported either way, and ELF interposition makes a
 * linked library's malloc the program's malloc just as a preloaded one's.  Someone who
 * links -lfastmem for the shared heap has not asked for their malloc to change (nor
 * for MEMSIZE or MEMMNG to be able to stop their program), so libfastmem serves malloc
 * only when it was preloaded: named in LD_PRELOAD or /etc/ld.so.preload (under a file
 * name that begins "libfastmem", as installed).  Otherwise every call of the family is
 * handed to glibc's own functions, found in libc.so.6's symbol table by hand: dlsym
 * may allocate, and would find our own names first.
 */
#include "libc.h"
#include "os.h"

#include <elf.h>
#include <link.h>
#include <string.h>

struct fm_libc fm_libc;

/* ----------------------------------------------------------- preloaded or not */

static bool separates(char c)
{
    return c == ' ' || c == '\t' || c == ':' || c == '\n';
}

/* Whether a list of paths (separated by spaces, tabs, colons or newlines, as ld.so
 * splits them) names a file whose name begins "libfastmem". */
static bool names_us(const char *list, size_t len)
{
    static const char want[] = "libfastmem";
    size_t i = 0;
    while (i < len) {
        while (i < len && separates(list[i]))
            i++;
        size_t start = i, base = i;
        while (i < len && !separates(list[i])) {
            if (list[i] == '/')
                base = i + 1;
            i++;
        }
        if (i > start && i - base >= sizeof want - 1 && memcmp(list + base, want, sizeof want - 1) == 0)
            return true;
    }
    return false;
}

bool fm_libc_preloaded(void)
{
    const char *env = fm_os_getenv("LD_PRELOAD");
    if (env != NULL && names_us(env, fm_strlen(env)))
        return true;
    char buf[4096];
    size_t n = fm_os_read_file("/etc/ld.so.preload", buf, sizeof buf);
    return n > 0 && names_us(buf, n);
}

/* --------------------------------------------------- glibc's symbols, by hand */

struct lookup {
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash;
    const uint32_t *sysv_hash;
    const ElfW(Half) *versym;
    ElfW(Addr) base;
    bool found;
};

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

/* A pointer a dynamic entry gives: ld.so has relocated most in place, but not all. */
static const void *dyn_ptr(ElfW(Addr) base, ElfW(Addr) v)
{
    return (const void *)(v < base ? v + base : v);
}

static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lookup *l = arg;
    const char *name = info->dlpi_name;
    const char *slash = strrchr(name, '/');
    if (strncmp(slash ? slash + 1 : name, "libc.so.", 8) != 0)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC)
            continue;
        const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        for (; d->d_tag != DT_NULL; d++) {
            switch (d->d_tag) {
            case DT_SYMTAB: l->symtab = dyn_ptr(info->dlpi_addr, d->d_un.d_ptr); break;
            case DT_STRTAB: l->strtab = dyn_ptr(info->dlpi_addr, d->d_un.d_ptr); break;
            case DT_GNU_HASH: l->gnu_hash = dyn_ptr(info->dlpi_addr, d->d_un.d_ptr); break;
            case DT_HASH: l->sysv_hash = dyn_ptr(info->dlpi_addr, d->d_un.d_ptr); break;
            case DT_VERSYM: l->versym = dyn_ptr(info->dlpi_addr, d->d_un.d_ptr); break;
            default: break;
            }
        }
        l->base = info->dlpi_addr;
        l->found = l->symtab && l->strtab && (l->gnu_hash || l->sysv_hash);
        return 1;
    }
    return 0;
}

/* Whether symbol i is a definition of name at its default version. */
static bool matches(const struct lookup *l, uint32_t i, const char *name)
{
    const ElfW(Sym) *s = &l->symtab[i];
    if (s->st_shndx == SHN_UNDEF || s->st_value == 0 || strcmp(l->strtab + s->st_name, name) != 0)
        return false;
    return l->versym == NULL || (l->versym[i] & 0x8000) == 0;
}

static void *lookup(const struct lookup *l, const char *name)
{
    uint32_t found = 0;
    if (l->gnu_hash) {
        const uint32_t *h = l->gnu_hash;
        uint32_t nbuckets = h[0], symoffset = h[1], bloom_size = h[2];
        const ElfW(Addr) *bloom = (const ElfW(Addr) *)(h + 4);
        const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size);
        const uint32_t *chain = buckets + nbuckets;
        uint32_t hv = gnu_hash(name);
        for (uint32_t i = buckets[hv % nbuckets]; i >= symoffset && i != 0; i++) {
            uint32_t ch = chain[i - symoffset];
            if ((ch | 1) == (hv | 1) && matches(l, i, name)) {
                found = i;
                break;
            }
            if (ch & 1)
                break;
        }
    } else {
        uint32_t nchain = l->sysv_hash[1];
        for (uint32_t i = 1; i < nchain; i++)
            if (matches(l, i, name)) {
                found = i;
                break;
            }
    }
    return found ? (void *)(l->base + l->symtab[found].st_value) : NULL;
}

bool fm_libc_resolve(void)
{
    struct lookup l = {0};
    dl_iterate_phdr(find_libc, &l);
    if (!l.found)
        return false;
#define GET(field, name) (fm_libc.field = (__typeof__(fm_libc.field))lookup(&l, name)) != NULL
    return GET(malloc, "malloc") && GET(free, "free") && GET(calloc, "calloc") &&
           GET(realloc, "realloc") && GET(reallocarray, "reallocarray") &&
           GET(memalign, "memalign") && GET(posix_memalign, "posix_memalign") &&
           GET(aligned_alloc, "aligned_alloc") && GET(valloc, "valloc") && GET(pvalloc, "pvalloc") &&
           GET(malloc_usable_size, "malloc_usable_size") && GET(mallinfo2, "mallinfo2") &&
           GET(mallinfo, "mallinfo") && GET(malloc_trim, "malloc_trim") &&
           GET(malloc_stats, "malloc_stats") && GET(malloc_info, "malloc_info");
#undef GET
}
