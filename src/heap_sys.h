/* heap_sys.h: a heap whose engine is glibc's allocator (MEMMNG=sys; heap_sys.c).
 * heap.c hands each call here when h->sys; the arguments and results are those of the
 * fm_heap_* call of the same name. */
#ifndef FM_HEAP_SYS_H
#define FM_HEAP_SYS_H

#include "heap.h"

/* Make h a sys heap (its cap already set); 0, or ENOTSUP if glibc's functions cannot
 * be found. */
int fm_sys_init(struct fm_heap *h) FM_HIDDEN;
bool fm_sys_owns(const struct fm_heap *h, const void *p) FM_HIDDEN;
void *fm_sys_alloc(struct fm_heap *h, size_t align, size_t size, bool zero, uint64_t *count) FM_HIDDEN;
void *fm_sys_realloc(struct fm_heap *h, void *p, size_t size, const char *caller) FM_HIDDEN;
enum fm_free_result fm_sys_free(struct fm_heap *h, void *p, const char *caller) FM_HIDDEN;
size_t fm_sys_usable_size(struct fm_heap *h, const void *p) FM_HIDDEN;
size_t fm_sys_trim(struct fm_heap *h) FM_HIDDEN;
void fm_sys_stats(struct fm_heap *h, struct fastmem_stats *st) FM_HIDDEN;
size_t fm_sys_report(struct fm_heap *h, char *buf, size_t size) FM_HIDDEN;
const char *fm_sys_check(struct fm_heap *h) FM_HIDDEN;

#endif
