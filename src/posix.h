/* posix.h: the malloc family with glibc's semantics, as internal functions.  preload.c
 * gives them their libc names. */
#ifndef FM_POSIX_H
#define FM_POSIX_H

#include "fm.h"

#include <fastmem.h>
#include <malloc.h>
#include <stdio.h>

void *fm_malloc(size_t size) FM_HIDDEN;
void fm_free(void *p) FM_HIDDEN;
void *fm_calloc(size_t n, size_t size) FM_HIDDEN;
void *fm_realloc(void *p, size_t size) FM_HIDDEN;
void *fm_reallocarray(void *p, size_t n, size_t size) FM_HIDDEN;
void *fm_memalign(size_t align, size_t size) FM_HIDDEN;
int fm_posix_memalign(void **out, size_t align, size_t size) FM_HIDDEN;
void *fm_aligned_alloc(size_t align, size_t size) FM_HIDDEN;
void *fm_valloc(size_t size) FM_HIDDEN;
void *fm_pvalloc(size_t size) FM_HIDDEN;
size_t fm_malloc_usable_size(void *p) FM_HIDDEN;
struct mallinfo2 fm_mallinfo2(void) FM_HIDDEN;
struct mallinfo fm_mallinfo(void) FM_HIDDEN;
int fm_malloc_trim(size_t pad) FM_HIDDEN;
void fm_malloc_stats(void) FM_HIDDEN;
int fm_malloc_info(int options, FILE *fp) FM_HIDDEN;
int fm_stats_get(struct fastmem_stats *st, size_t size) FM_HIDDEN;
int fm_stats_print(int fd) FM_HIDDEN;
int fm_check(void) FM_HIDDEN;

#endif
