/* options.h: the environment variables libfastmem reads, in one table.
 *
 *   MEMMNG    the engine (see engine.c for the names)        default: tlsf
 *   MEMSIZE   the cap: bytes, or a number with K, M, G, T     default: physical memory
 *   MEMSTATS  print the statistics report at exit: 0 or 1     default: 0
 *   MEMRELEASE  free runs this large go back to the kernel    default: 256K
 *   MEMPOPULATE  fault in fresh pages ahead of allocations:  default: 1
 *             0 or 1; all: the whole pool at start (needs MEMSIZE, and turns
 *             MEMRELEASE off)
 *
 * A value that cannot be understood is refused: the caller prints the message and
 * stops the program, because a cap the user asked for and did not get is worse than a
 * program that did not start.
 */
#ifndef FM_OPTIONS_H
#define FM_OPTIONS_H

#include "engine.h"

#define FM_MEMSIZE_MIN ((uint64_t)256 * 1024)
#define FM_MEMSIZE_MAX ((uint64_t)1 << 46) /* 64 TiB */
#define FM_MEMSIZE_DEFAULT_MIN ((uint64_t)1 << 30)

struct fm_options {
    const struct fm_engine *engine;
    uint64_t memsize;  /* bytes; not yet rounded to pages */
    bool memsize_set;  /* false: memsize is the default, which may be lowered to fit */
    bool stats;
    uint64_t release; /* MEMRELEASE in bytes; 0: never (only malloc_trim) */
    bool populate;    /* MEMPOPULATE: populate-ahead (heap.c) */
    bool populate_all; /* MEMPOPULATE=all: the whole pool faulted in at start (init.c) */
    bool release_set;  /* MEMRELEASE was given */
};

#define FM_RELEASE_DEFAULT ((uint64_t)256 * 1024)
/* How much of the free runs' memory may wait to go back (block.h explains). */
#define FM_RELEASE_BATCH ((size_t)4 * 1024 * 1024)
#define FM_RELEASE_MIN ((uint64_t)256 * 1024)

/* Read every option through getenv_fn into *o.  Returns 0, or -1 with a one-line
 * message (no prefix, no newline) in err naming the variable, the value refused and
 * what is accepted. */
int fm_options_load(struct fm_options *o, const char *(*getenv_fn)(const char *), char *err,
                    size_t errlen) FM_HIDDEN;

/* "64M" -> 67108864.  Digits, then optionally K, M, G or T (ASCII case-insensitive),
 * optionally followed by B or iB; or digits and a bare B.  Powers of 1024.  Returns 0,
 * or -1 if s is not such a size or does not fit in 64 bits. */
int fm_parse_size(const char *s, uint64_t *out) FM_HIDDEN;

/* 0/1, no/yes, off/on, false/true (case-insensitive).  Returns 0 or -1. */
int fm_parse_switch(const char *s, bool *out) FM_HIDDEN;

/* The MEMSIZE used when MEMSIZE is unset: the machine's physical memory, at least
 * FM_MEMSIZE_DEFAULT_MIN and at most FM_MEMSIZE_MAX. */
uint64_t fm_options_default_memsize(void) FM_HIDDEN;

#endif
