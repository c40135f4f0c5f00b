/* record.c - what this writer process wrote on a disk, for the end-of-disk
 * check: for each data chunk whose checksum matched and whose write
 * returned, its offset, length and checksum (XXH3-64 of exactly the bytes
 * written). The engine sends a whole hash block as one chunk whenever it can,
 * so the chunk's verified checksum IS that block's hash, and a HASH request
 * for that block can be answered without reading the disk back.
 *
 * A record holds only while nothing else wrote over it: every write and
 * zeroing, and every write that failed, removes the records it overlaps
 * before (for data) its own goes in. Updates are made under the disk's write
 * lock, in the order of the writes themselves. What is not recorded (another
 * process wrote it, the record was full, a block went in pieces) is read
 * back from the disk.
 *
 * Layout: records are kept in buckets of 16 MiB of disk (by their start), in
 * an open-addressing table of buckets; a chunk is at most EK_DP_MAX_DATA
 * (16 MiB), so the records overlapping a range start in the range's buckets
 * or the one before. Memory is bounded by REC_MAX records (24 bytes each). */
#include "worker/writer/writer.h"

#include <pthread.h>
#include <string.h>
#include "common/mem.h"

#define BUCKET_SHIFT 24
#define REC_MAX      (UINT64_C(1) << 21) /* 48 MiB of records: 2 TiB in 1 MiB chunks */

_Static_assert(EK_DP_MAX_DATA <= (1u << BUCKET_SHIFT), "a chunk must fit in a bucket");

typedef struct rec {
    uint64_t off;
    uint64_t sum;
    uint32_t len;
} rec_t;

typedef struct bucket {
    uint64_t key; /* bucket index + 1; 0: empty slot */
    rec_t *v;
    uint32_t n, alloc;
} bucket_t;

struct ek_writer_record {
    pthread_mutex_t lock;
    bucket_t *tab;
    size_t cap, used; /* slots (a power of two), used slots */
    uint64_t nrecs;
};

ek_writer_record_t *ek_writer_record_new(void)
{
    ek_writer_record_t *r = ek_xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void ek_writer_record_free(ek_writer_record_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->cap; i++)
        free(r->tab[i].v);
    free(r->tab);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static size_t slot_of(const ek_writer_record_t *r, uint64_t key)
{
    uint64_t h = key * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 20) & (r->cap - 1);
}

static bucket_t *bucket_find(ek_writer_record_t *r, uint64_t idx)
{
    if (!r->cap)
        return NULL;
    for (size_t i = slot_of(r, idx + 1);; i = (i + 1) & (r->cap - 1)) {
        if (r->tab[i].key == idx + 1)
            return &r->tab[i];
        if (!r->tab[i].key)
            return NULL;
    }
}

static void grow(ek_writer_record_t *r)
{
    bucket_t *old = r->tab;
    size_t ocap = r->cap;
    r->cap = ocap ? ocap * 2 : 64;
    r->tab = ek_xcalloc(r->cap, sizeof(bucket_t));
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key)
            continue;
        size_t j = slot_of(r, old[i].key);
        while (r->tab[j].key)
            j = (j + 1) & (r->cap - 1);
        r->tab[j] = old[i];
    }
    free(old);
}

static bucket_t *bucket_get(ek_writer_record_t *r, uint64_t idx)
{
    bucket_t *b = bucket_find(r, idx);
    if (b)
        return b;
    if ((r->used + 1) * 4 > r->cap * 3)
        grow(r);
    size_t i = slot_of(r, idx + 1);
    while (r->tab[i].key)
        i = (i + 1) & (r->cap - 1);
    r->used++;
    r->tab[i].key = idx + 1;
    return &r->tab[i];
}

/* Removes the records overlapping [off, off+len) (lock held). Emptied
 * buckets stay (their slot, not their records' memory). */
static void forget(ek_writer_record_t *r, uint64_t off, uint64_t len)
{
    if (!r->nrecs || !len)
        return;
    uint64_t end = off + len, first = off >> BUCKET_SHIFT, last = (end - 1) >> BUCKET_SHIFT;
    if (first)
        first--;
    for (uint64_t idx = first; idx <= last; idx++) {
        bucket_t *b = bucket_find(r, idx);
        if (!b)
            continue;
        uint32_t k = 0;
        for (uint32_t i = 0; i < b->n; i++)
            if (b->v[i].off >= end || b->v[i].off + b->v[i].len <= off)
                b->v[k++] = b->v[i];
        r->nrecs -= b->n - k;
        b->n = k;
        if (!k) {
            free(b->v);
            b->v = NULL;
            b->alloc = 0;
        }
    }
}

void ek_writer_record_forget(ek_writer_record_t *r, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&r->lock);
    forget(r, off, len);
    pthread_mutex_unlock(&r->lock);
}

void ek_writer_record_data(ek_writer_record_t *r, uint64_t off, uint32_t len, uint64_t sum)
{
    pthread_mutex_lock(&r->lock);
    forget(r, off, len);
    if (r->nrecs < REC_MAX) {
        bucket_t *b = bucket_get(r, off >> BUCKET_SHIFT);
        if (b->n == b->alloc) {
            b->alloc = b->alloc ? b->alloc * 2 : 16;
            b->v = ek_xrealloc(b->v, b->alloc * sizeof(rec_t));
        }
        b->v[b->n++] = (rec_t){off, sum, len};
        r->nrecs++;
    }
    pthread_mutex_unlock(&r->lock);
}

bool ek_writer_record_lookup(ek_writer_record_t *r, uint64_t off, uint64_t len, uint64_t *sum)
{
    bool found = false;
    pthread_mutex_lock(&r->lock);
    bucket_t *b = bucket_find(r, off >> BUCKET_SHIFT);
    for (uint32_t i = 0; b && i < b->n && !found; i++) {
        if (b->v[i].off == off && b->v[i].len == len) {
            *sum = b->v[i].sum;
            found = true;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}
