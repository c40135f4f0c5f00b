/* reader_nbd.c - an NBD export as the source (libnbd): what the libvirt
 * provider gets from a backup job in pull mode. Zeros and holes come from
 * the base:allocation context; with a dirty-bitmap context (an incremental
 * backup's "qemu:dirty-bitmap:backup-vda"), clean ranges are unchanged.
 *
 * A libnbd handle runs one command at a time, so reads go through a few
 * handles (NBD allows several connections to a read-only export), each
 * taken under its own mutex. */
#include "worker/transfer/reader.h"

#include <libnbd.h>
#include <pthread.h>
#include <string.h>
#include "common/mem.h"
#include "proto/dataplane.h"

#define NBD_HANDLES 4
#define NBD_MAX_REQ (32u << 20)

typedef struct nbd_reader {
    char *uri, *bitmap;
    struct nbd_handle *h[NBD_HANDLES];
    pthread_mutex_t lock[NBD_HANDLES];
    unsigned n, next;
    uint64_t size;
} nbd_reader_t;

static ek_err_t *nbd_fail(const char *what, const char *uri)
{
    return ek_err_new(EK_E_IO, "NBD source \"%s\": %s: %s", uri, what,
                      nbd_get_error() ? nbd_get_error() : "unknown error");
}

static void nbdr_close(void *p)
{
    nbd_reader_t *r = p;
    if (!r)
        return;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->h[i])
            nbd_shutdown(r->h[i], 0);
        nbd_close(r->h[i]);
        pthread_mutex_destroy(&r->lock[i]);
    }
    free(r->uri);
    free(r->bitmap);
    free(r);
}

static ek_err_t *nbdr_open(const char *source, const ek_reader_params_t *params, void **handle,
                           uint64_t *size)
{
    nbd_reader_t *r = ek_xcalloc(1, sizeof(*r));
    r->uri = ek_xstrdup(source);
    if (params && params->dirty_bitmap)
        r->bitmap = ek_xstrdup(params->dirty_bitmap);
    ek_err_t *err = NULL;
    for (unsigned i = 0; i < NBD_HANDLES && !err; i++) {
        struct nbd_handle *h = nbd_create();
        if (!h) {
            err = nbd_fail("cannot create a handle", source);
            break;
        }
        pthread_mutex_init(&r->lock[i], NULL);
        r->h[r->n++] = h;
        if (nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
            (r->bitmap && nbd_add_meta_context(h, r->bitmap) == -1) ||
            nbd_connect_uri(h, source) == -1) {
            err = nbd_fail("cannot connect", source);
            break;
        }
        if (i == 0) {
            int64_t s = nbd_get_size(h);
            if (s <= 0) {
                err = nbd_fail("cannot get the size", source);
                break;
            }
            r->size = (uint64_t)s;
            if (r->bitmap && nbd_can_meta_context(h, r->bitmap) != 1) {
                err = ek_err_new(EK_E_INVALID, "NBD source \"%s\" does not offer \"%s\"", source,
                                 r->bitmap);
                break;
            }
            if (nbd_can_multi_conn(h) != 1 && !nbd_is_read_only(h))
                break; /* one handle: writable exports may not be consistent across several */
        }
    }
    if (err) {
        nbdr_close(r);
        return err;
    }
    *handle = r;
    *size = r->size;
    return NULL;
}

typedef struct bs_acc {
    const char *bitmap;
    ek_extents_t alloc, dirty;
} bs_acc_t;

static int extent_cb(void *opaque, const char *ctx, uint64_t offset, uint32_t *entries, size_t n,
                     int *error)
{
    bs_acc_t *a = opaque;
    bool base = strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0;
    if (!base && (!a->bitmap || strcmp(ctx, a->bitmap) != 0))
        return 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        ek_extent_kind_t k =
            base ? ((entries[i + 1] & LIBNBD_STATE_ZERO) ? EK_EXTENT_ZERO : EK_EXTENT_DATA)
                 : ((entries[i + 1] & 1) ? EK_EXTENT_DATA : EK_EXTENT_UNCHANGED);
        ek_extents_push(base ? &a->alloc : &a->dirty, offset, entries[i], k);
        offset += entries[i];
    }
    return 0;
}

static uint64_t covered(const ek_extents_t *e, uint64_t from)
{
    return e->n ? e->v[e->n - 1].offset + e->v[e->n - 1].length : from;
}

static ek_err_t *nbdr_extents(void *p, uint64_t offset, uint64_t length, ek_extents_t *out)
{
    nbd_reader_t *r = p;
    uint64_t end = offset + length, pos = offset;
    ek_err_t *err = NULL;
    pthread_mutex_lock(&r->lock[0]);
    while (pos < end && !err) {
        bs_acc_t a = {.bitmap = r->bitmap};
        uint64_t count = EK_MIN(end - pos, (uint64_t)1 << 30);
        nbd_extent_callback cb = {.callback = extent_cb, .user_data = &a};
        if (nbd_block_status(r->h[0], count, pos, cb, 0) == -1) {
            err = nbd_fail("block status failed", r->uri);
        } else {
            /* Combine the contexts over what both described. */
            uint64_t upto = EK_MIN(covered(&a.alloc, pos), pos + count);
            if (r->bitmap)
                upto = EK_MIN(upto, covered(&a.dirty, pos));
            if (upto <= pos) {
                err = ek_err_new(EK_E_PROTOCOL, "NBD source \"%s\": no extents at %llu", r->uri,
                                 (unsigned long long)pos);
            }
            size_t i = 0, j = 0;
            while (!err && pos < upto) {
                while (i < a.alloc.n && a.alloc.v[i].offset + a.alloc.v[i].length <= pos)
                    i++;
                uint64_t stop = EK_MIN(a.alloc.v[i].offset + a.alloc.v[i].length, upto);
                ek_extent_kind_t k = a.alloc.v[i].kind;
                if (r->bitmap) {
                    while (j < a.dirty.n && a.dirty.v[j].offset + a.dirty.v[j].length <= pos)
                        j++;
                    stop = EK_MIN(stop, a.dirty.v[j].offset + a.dirty.v[j].length);
                    if (a.dirty.v[j].kind == EK_EXTENT_UNCHANGED)
                        k = EK_EXTENT_UNCHANGED;
                }
                ek_extents_push(out, pos, stop - pos, k);
                pos = stop;
            }
        }
        ek_extents_release(&a.alloc);
        ek_extents_release(&a.dirty);
    }
    pthread_mutex_unlock(&r->lock[0]);
    return err;
}

static ek_err_t *nbdr_pread(void *p, void *buf, size_t len, uint64_t offset)
{
    nbd_reader_t *r = p;
    unsigned i = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED) % r->n;
    pthread_mutex_lock(&r->lock[i]);
    ek_err_t *err = NULL;
    for (size_t done = 0; done < len && !err;) {
        size_t n = EK_MIN(len - done, (size_t)NBD_MAX_REQ);
        if (nbd_pread(r->h[i], (uint8_t *)buf + done, n, offset + done, 0) == -1)
            err = nbd_fail("read failed", r->uri);
        done += n;
    }
    pthread_mutex_unlock(&r->lock[i]);
    return err;
}

const ek_reader_ops_t ek_reader_nbd = {
    .name = "nbd",
    .open = nbdr_open,
    .extents = nbdr_extents,
    .pread = nbdr_pread,
    .changes = NULL,      /* the dirty bitmap already says what changed */
    .block_hashes = NULL, /* the engine reads and hashes */
    .commit = NULL,       /* the next checkpoint is libvirt's business */
    .close = nbdr_close,
};
