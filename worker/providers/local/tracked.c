/* tracked.c - a source reader over another one that adds what the local
 * provider needs and the inner reader may lack:
 *   - cancellation: once the task is cancelled, reads and extent queries
 *     fail with EK_E_CANCELED, which stops the transfer engine (it saves its
 *     state: a re-run resumes);
 *   - change tracking by block hashes, for sources without their own (an
 *     NBD export of a qcow2 image): the raw reader's hash map
 *     (worker/transfer/hashmap.h). Holes compare with the hash of a zero
 *     block without being read; data is hashed as the engine reads it; the
 *     new map replaces the old one when the engine commits a verified
 *     transfer.
 * Without a hash map (raw files track changes themselves) it forwards. */
#include "worker/providers/local/local.h"

#include <stdlib.h>
#include "common/mem.h"
#include "proto/dataplane.h"
#include "worker/transfer/hashmap.h"

struct ek_local_tracked {
    const ek_reader_ops_t *inner;
    void *ih;
    uint64_t size;
    const ek_task_ctx_t *ctx;
    ek_hashmap_t *map; /* NULL: no tracking here (the inner reader's, if any) */
};

static ek_err_t *cancelled(const ek_local_tracked_t *t)
{
    if (t->ctx && ek_task_cancelled(t->ctx))
        return ek_err_new(EK_E_CANCELED, "cancelled");
    return NULL;
}

ek_err_t *ek_local_tracked_open(const ek_reader_ops_t *inner, void *inner_handle, uint64_t size,
                                const char *hash_map, const ek_task_ctx_t *ctx,
                                ek_local_tracked_t **out)
{
    ek_local_tracked_t *t = ek_xcalloc(1, sizeof(*t));
    t->inner = inner;
    t->ih = inner_handle;
    t->size = size;
    t->ctx = ctx;
    ek_err_t *err = hash_map ? ek_hashmap_open(hash_map, size, &t->map) : NULL;
    if (err) {
        t->inner = NULL; /* the caller still owns the inner reader */
        ek_local_tracked_close(t);
        return err;
    }
    *out = t;
    return NULL;
}

void ek_local_tracked_close(ek_local_tracked_t *t)
{
    if (!t)
        return;
    if (t->inner && t->inner->close)
        t->inner->close(t->ih);
    ek_hashmap_close(t->map);
    free(t);
}

static ek_err_t *tr_extents(void *h, uint64_t offset, uint64_t length, ek_extents_t *out)
{
    ek_local_tracked_t *t = h;
    ek_err_t *err = cancelled(t);
    if (err)
        return err;
    if (!t->map)
        return t->inner->extents(t->ih, offset, length, out);
    ek_extents_t raw = {0};
    if (!(err = t->inner->extents(t->ih, offset, length, &raw)))
        err = ek_hashmap_extents(t->map, &raw, out);
    ek_extents_release(&raw);
    return err;
}

static ek_err_t *tr_pread(void *h, void *buf, size_t len, uint64_t offset)
{
    ek_local_tracked_t *t = h;
    ek_err_t *err = cancelled(t);
    return err ? err : t->inner->pread(t->ih, buf, len, offset);
}

static ek_err_t *tr_changes(void *h, const void *buf, uint64_t offset, uint64_t len,
                            ek_extents_t *out)
{
    ek_local_tracked_t *t = h;
    if (!t->map) {
        if (t->inner->changes)
            return t->inner->changes(t->ih, buf, offset, len, out);
        ek_extents_push(out, offset, len, EK_EXTENT_DATA);
        return NULL;
    }
    return ek_hashmap_changes(t->map, buf, offset, len, out);
}

static ek_err_t *tr_block_hashes(void *h, uint64_t offset, uint64_t len, uint32_t block_size,
                                 uint64_t *out)
{
    ek_local_tracked_t *t = h;
    ek_err_t *err = cancelled(t);
    if (err)
        return err;
    if (t->inner->block_hashes)
        return t->inner->block_hashes(t->ih, offset, len, block_size, out);
    uint8_t *buf = ek_xmalloc(block_size);
    for (uint64_t off = offset; off < offset + len && !err; off += block_size, out++) {
        size_t blen = (size_t)EK_MIN((uint64_t)block_size, offset + len - off);
        if (!(err = t->inner->pread(t->ih, buf, blen, off)))
            *out = ek_dp_checksum(buf, blen);
    }
    free(buf);
    return err;
}

static ek_err_t *tr_commit(void *h)
{
    ek_local_tracked_t *t = h;
    ek_err_t *err = t->inner->commit ? t->inner->commit(t->ih) : NULL;
    if (err || !t->map)
        return err;
    return ek_hashmap_commit(t->map);
}

const ek_reader_ops_t ek_local_tracked_ops = {
    .name = "local",
    .open = NULL, /* ek_local_tracked_open: it needs the inner reader and the task */
    .extents = tr_extents,
    .pread = tr_pread,
    .changes = tr_changes,
    .block_hashes = tr_block_hashes,
    .commit = tr_commit,
    .close = NULL, /* ek_local_tracked_close */
};
