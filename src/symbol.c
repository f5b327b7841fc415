/* symbol.c: name the code at an address, without allocating.
 *
 * The qm engine reports where a damaged or leaked block was allocated.  It has only
 * the return address of the malloc call, and must name it from inside the allocator,
 * often while the heap is damaged: nothing here may call malloc (dladdr can, and knows
 * only exported names).  So: dl_iterate_phdr finds the object that holds the address
 * and its load base; the object's file is mapped read-only and its symbol tables
 * searched by hand, .symtab first (a program built with symbols names its static
 * functions there) and .dynsym after (what a stripped Debian binary still has).
 */
#include "symbol.h"
#include "diag.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct where {
    uintptr_t addr;
    uintptr_t base;
    char path[256];
    bool found;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct where *w = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (w->addr >= lo && w->addr - lo < ph->p_memsz) {
            w->base = info->dlpi_addr;
            const char *name = info->dlpi_name;
            /* the program itself has an empty name */
            fm_format(w->path, sizeof w->path, "%s", name && *name ? name : "/proc/self/exe");
            w->found = true;
            return 1;
        }
    }
    return 0;
}

/* The function symbol of table [syms, syms+n) that holds off; its name in *name. */
static bool search(const ElfW(Sym) *syms, size_t n, const char *strs, size_t strs_len,
                   uintptr_t off, const char **name, uintptr_t *start)
{
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        const ElfW(Sym) *s = &syms[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_name >= strs_len)
            continue;
        if (off >= s->st_value && off - s->st_value < (s->st_size ? s->st_size : 1) &&
            (!found || s->st_value > *start)) {
            *name = strs + s->st_name;
            *start = s->st_value;
            found = true;
        }
    }
    return found;
}

/* Look off up in the ELF image at [img, img+len). */
static bool lookup(const char *img, size_t len, uintptr_t off, char *buf, size_t size)
{
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)img;
    if (len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff > len ||
        (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len - eh->e_shoff)
        return false;
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(img + eh->e_shoff);
    static const unsigned kinds[] = {SHT_SYMTAB, SHT_DYNSYM};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != kinds[k] || sh[i].sh_link >= eh->e_shnum)
                continue;
            const ElfW(Shdr) *st = &sh[sh[i].sh_link];
            if (sh[i].sh_offset > len || sh[i].sh_size > len - sh[i].sh_offset || st->sh_offset > len ||
                st->sh_size > len - st->sh_offset || st->sh_size == 0)
                continue;
            const char *name;
            uintptr_t start = 0;
            if (search((const ElfW(Sym) *)(img + sh[i].sh_offset), sh[i].sh_size / sizeof(ElfW(Sym)),
                       img + st->sh_offset, st->sh_size, off, &name, &start) &&
                memchr(name, 0, st->sh_size - (size_t)(name - (img + st->sh_offset)))) {
                fm_format(buf, size, "%s+0x%lx", name, (unsigned long)(off - start));
                return true;
            }
        }
    }
    return false;
}

size_t fm_symbolize(const void *addr, char *buf, size_t size)
{
    if (addr == NULL)
        return fm_format(buf, size, "(unknown)");
    int saved = errno;
    struct where w = {.addr = (uintptr_t)addr};
    dl_iterate_phdr(find_object, &w);
    if (!w.found) {
        errno = saved;
        return fm_format(buf, size, "%p", addr);
    }
    const char *base = strrchr(w.path, '/');
    base = base ? base + 1 : w.path;
    char shown[128];
    if (strcmp(w.path, "/proc/self/exe") == 0) {
        char exe[256];
        ssize_t n = readlink(w.path, exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        const char *s = strrchr(exe, '/');
        fm_format(shown, sizeof shown, "%s", n > 0 ? (s ? s + 1 : exe) : "program");
    } else {
        fm_format(shown, sizeof shown, "%s", base);
    }
    uintptr_t off = w.addr - w.base;
    char sym[256];
    bool named = false;
    int fd = open(w.path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        void *img = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img != MAP_FAILED) {
            named = lookup(img, (size_t)sb.st_size, off, sym, sizeof sym);
            munmap(img, (size_t)sb.st_size);
        }
    }
    if (fd >= 0)
        close(fd);
    errno = saved;
    if (named)
        return fm_format(buf, size, "%s (%s)", sym, shown);
    return fm_format(buf, size, "%s+0x%lx", shown, (unsigned long)off);
}
