/* tune.c: how much memory an engine's policies cost, measured on allocation traces.
 *
 * bench/tune.sh compiles this file with the engines built under different policy
 * macros (the split rule, fm's exact-bucket range) and runs each build.  The engines
 * run over one large buffer, so what is measured is placement, not the kernel:
 *
 *   frontier/peak-live  the highest address any block ever reached, from the pool's
 *                       start, over the most bytes ever requested and live at once:
 *                       how much pool a workload needs per byte it uses (1.0 would
 *                       be perfect; fragmentation and slack push it up)
 *   slack               bytes handed out beyond what was asked (unsplit tails and
 *                       rounding), as a share of the usable bytes, when live bytes
 *                       peaked
 *
 * The traces are synthetic and seeded, so every build sees the same requests:
 *   server  a live set that grows to 60,000 blocks of mixed sizes (mostly small
 *           strings and structs, some buffers up to 64 KiB), then 3,000,000 random
 *           replacements, with a tenth of the blocks long-lived
 *   sip     SIP-proxy-like transactions: each allocates a message buffer (0.5-4 KiB),
 *           a dozen parsed headers (40-300 B) and a transaction (~600 B), and frees
 *           them a random number of transactions later; one in twenty also creates a
 *           dialog (~2 KiB) that lives fifty times longer
 */
#include "engine.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t range(size_t lo, size_t hi)
{
    return lo + (size_t)(rng() % (hi - lo + 1));
}

struct run {
    const struct fm_engine *e;
    void *eng;
    char *start;
    uint64_t live, peak_live, usable, usable_at_peak, live_at_peak, frontier;
};

static void *alloc(struct run *r, size_t n)
{
    char *p = r->e->malloc(r->eng, n);
    if (p == NULL) {
        fprintf(stderr, "tune: the pool is too small\n");
        exit(2);
    }
    size_t u = r->e->usable_size(r->eng, p);
    r->live += n;
    r->usable += u;
    if ((uint64_t)(p + u - r->start) > r->frontier)
        r->frontier = (uint64_t)(p + u - r->start);
    if (r->live > r->peak_live) {
        r->peak_live = r->live;
        r->usable_at_peak = r->usable;
        r->live_at_peak = r->live;
    }
    return p;
}

static void release(struct run *r, void *p, size_t n)
{
    r->usable -= r->e->usable_size(r->eng, p);
    r->live -= n;
    if (r->e->free(r->eng, p) <= 0) {
        fprintf(stderr, "tune: free refused\n");
        exit(2);
    }
}

static size_t mixed_size(void)
{
    unsigned pick = (unsigned)(rng() % 100);
    if (pick < 55)
        return range(8, 128);
    if (pick < 85)
        return range(129, 1024);
    if (pick < 97)
        return range(1025, 8192);
    return range(8193, 65536);
}

static void trace_server(struct run *r)
{
    enum { LIVE = 60000, OPS = 3000000 };
    static void *p[LIVE];
    static size_t sz[LIVE];
    for (size_t i = 0; i < LIVE; i++)
        p[i] = alloc(r, sz[i] = mixed_size());
    for (size_t k = 0; k < OPS; k++) {
        size_t i = (size_t)(rng() % LIVE);
        if (i % 10 == 0 && rng() % 100 != 0)
            continue; /* long-lived */
        release(r, p[i], sz[i]);
        p[i] = alloc(r, sz[i] = mixed_size());
    }
    for (size_t i = 0; i < LIVE; i++)
        release(r, p[i], sz[i]);
}

struct txn {
    void *block[16];
    size_t size[16];
    size_t n;
    uint64_t dies;
};

static void trace_sip(struct run *r)
{
    enum { TXNS = 400000, SLOTS = 1 << 16 };
    static struct txn t[SLOTS];
    for (uint64_t now = 0; now < TXNS + SLOTS; now++) {
        /* Free whatever dies now: each slot is revisited every SLOTS steps. */
        struct txn *x = &t[now % SLOTS];
        for (size_t j = 0; j < x->n; j++)
            release(r, x->block[j], x->size[j]);
        x->n = 0;
        if (now >= TXNS)
            continue;
        bool dialog = rng() % 20 == 0;
        /* A transaction lives 100-3000 steps, a dialog fifty times as long, wrapped to
         * the slot ring. */
        uint64_t life = range(100, 3000) * (dialog ? 50 : 1);
        if (life >= SLOTS)
            life = SLOTS - 1;
        struct txn *y = &t[(now + life) % SLOTS];
        if (y->n != 0)
            y = x; /* that slot is taken: use this one, which lives a full ring */
        y->size[y->n] = range(512, 4096); /* the message */
        y->block[y->n] = alloc(r, y->size[y->n]);
        y->n++;
        size_t headers = range(8, 13);
        for (size_t j = 0; j < headers; j++) {
            y->size[y->n] = range(40, 300);
            y->block[y->n] = alloc(r, y->size[y->n]);
            y->n++;
        }
        y->size[y->n] = dialog ? range(1800, 2400) : range(560, 640);
        y->block[y->n] = alloc(r, y->size[y->n]);
        y->n++;
    }
}

int main(int argc, char **argv)
{
    const char *label = argc > 1 ? argv[1] : "default";
    size_t bytes = (size_t)2 << 30;
    char *mem = aligned_alloc(4096, bytes); /* lazily mapped: only touched pages cost */
    if (mem == NULL)
        return 2;
    static const struct {
        const char *name;
        void (*run)(struct run *);
    } traces[] = {{"server", trace_server}, {"sip", trace_sip}};
    for (size_t e = 0; fm_engines[e]; e++) {
        if (!fm_engines[e]->pool_layout)
            continue; /* the pool engines: qm's quarantine and sys place nothing here */
        for (size_t k = 0; k < sizeof traces / sizeof traces[0]; k++) {
            struct run r = {.e = fm_engines[e]};
            rng_state = 0x9e3779b97f4a7c15ULL;
            r.eng = r.e->create(mem, bytes);
            r.start = mem;
            traces[k].run(&r);
            const char *why = r.e->check(r.eng);
            if (why) {
                fprintf(stderr, "tune: %s: %s\n", r.e->name, why);
                return 1;
            }
            printf("variant=%s engine=%s trace=%s frontier_over_peak=%.3f slack=%.1f%%\n", label,
                   r.e->name, traces[k].name, (double)r.frontier / (double)r.peak_live,
                   100.0 * (double)(r.usable_at_peak - r.live_at_peak) / (double)r.usable_at_peak);
        }
    }
    free(mem);
    return 0;
}
