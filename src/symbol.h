/* symbol.h: name the code at an address, without allocating (symbol.c). */
#ifndef FM_SYMBOL_H
#define FM_SYMBOL_H

#include "fm.h"

/* "main+0x2f (prog)", "libfoo.so.1+0x1a2b" when the object has no symbol for it, or
 * the bare address when no loaded object holds it.  Returns the length written.
 * Never allocates; takes the loader's lock (dl_iterate_phdr) and maps the object's
 * file for a moment. */
size_t fm_symbolize(const void *addr, char *buf, size_t size) FM_HIDDEN;

#endif
