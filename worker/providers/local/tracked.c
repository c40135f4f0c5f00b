/* tracked.c - a source reader over another one that adds what the local
 * provider needs and the inner reader may lack:
 *   - cancellation: once the task is cancelled, reads and extent queries
 *     fail with EK_E_CANCELED, which stops the transfer engine (it saves its
 *     state: a re-run resumes);
 *   - change tracking by block hashes, for sources without their own (an
 *     NBD export of a qcow2 image): the same map file as the raw reader's
 *     ("EKHMAP01", u64 size, u32 block size, u32 0, one LE u64 XXH3 per
 *     64 KiB block; 0 is "unknown"). Holes compare with the hash of a zero
 *     block without being read; data is hashed as the engine reads it. The
 *     new map is written to "<map>.new" and renamed over the old one only
 *     when the engine commits a verified transfer.
 * Without a hash map (raw files track changes themselves) it forwards. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "proto/dataplane.h"

#define MAP_MAGIC  "EKHMAP01"
#define MAP_HEADER 24
#define MAP_BATCH  4096

struct ek_local_tracked {
    const ek_reader_ops_t *inner;
    void *ih;
    uint64_t size;
    const ek_task_ctx_t *ctx;
    bool tracking, committed;
    int old_fd, new_fd;
    char *map_path, *new_path;
    uint64_t zero_hash, zero_hash_tail;
};

static ek_err_t *cancelled(const ek_local_tracked_t *t)
{
    if (t->ctx && ek_task_cancelled(t->ctx))
        return ek_err_new(EK_E_CANCELED, "cancelled");
    return NULL;
}

static uint64_t nblocks(uint64_t size)
{
    return ek_dp_block_count(size, EK_HASHMAP_BLOCK);
}

static ek_err_t *map_open(ek_local_tracked_t *t, const char *map)
{
    t->map_path = ek_xstrdup(map);
    t->new_path = ek_xasprintf("%s.new", map);
    uint64_t n = nblocks(t->size);
    t->old_fd = open(map, O_RDONLY | O_CLOEXEC);
    if (t->old_fd >= 0) {
        uint8_t h[MAP_HEADER];
        struct stat st;
        if (pread(t->old_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
            memcmp(h, MAP_MAGIC, 8) != 0 || ek_dp_get64(h + 8) != t->size ||
            ek_dp_get32(h + 16) != EK_HASHMAP_BLOCK || fstat(t->old_fd, &st) != 0 ||
            (uint64_t)st.st_size != MAP_HEADER + n * 8) {
            ek_warn("hash map \"%s\" is not for this disk (%llu bytes): sending every block", map,
                    (unsigned long long)t->size);
            close(t->old_fd);
            t->old_fd = -1;
        }
    } else if (errno != ENOENT) {
        return ek_err_errno(errno, "could not open hash map \"%s\"", map);
    }
    t->new_fd = open(t->new_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->new_fd < 0)
        return ek_err_errno(errno, "could not create hash map \"%s\"", t->new_path);
    uint8_t h[MAP_HEADER] = {0};
    memcpy(h, MAP_MAGIC, 8);
    ek_dp_put64(h + 8, t->size);
    ek_dp_put32(h + 16, EK_HASHMAP_BLOCK);
    if (pwrite(t->new_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        ftruncate(t->new_fd, (off_t)(MAP_HEADER + n * 8)) != 0)
        return ek_err_errno(errno, "could not write hash map \"%s\"", t->new_path);
    uint8_t *z = ek_xcalloc(1, EK_HASHMAP_BLOCK);
    t->zero_hash = ek_dp_checksum(z, EK_HASHMAP_BLOCK);
    uint64_t tail = t->size % EK_HASHMAP_BLOCK;
    t->zero_hash_tail = tail ? ek_dp_checksum(z, tail) : t->zero_hash;
    free(z);
    t->tracking = true;
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
    t->old_fd = t->new_fd = -1;
    ek_err_t *err = hash_map ? map_open(t, hash_map) : NULL;
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
    if (t->old_fd >= 0)
        close(t->old_fd);
    if (t->new_fd >= 0) {
        close(t->new_fd);
        if (!t->committed)
            unlink(t->new_path);
    }
    free(t->map_path);
    free(t->new_path);
    free(t);
}

/* Old entries of blocks [first, first+n) (zeros without an old map). */
static ek_err_t *map_read(ek_local_tracked_t *t, uint64_t first, size_t n, uint64_t *old)
{
    if (t->old_fd < 0) {
        memset(old, 0, n * 8);
        return NULL;
    }
    uint8_t buf[MAP_BATCH * 8];
    ssize_t got = pread(t->old_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (got != (ssize_t)(n * 8))
        return ek_err_errno(got < 0 ? errno : EIO, "could not read hash map \"%s\"", t->map_path);
    for (size_t i = 0; i < n; i++)
        old[i] = ek_dp_get64(buf + i * 8);
    return NULL;
}

static ek_err_t *map_write(ek_local_tracked_t *t, uint64_t first, size_t n, const uint64_t *v)
{
    uint8_t buf[MAP_BATCH * 8];
    for (size_t i = 0; i < n; i++)
        ek_dp_put64(buf + i * 8, v[i]);
    ssize_t put = pwrite(t->new_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (put != (ssize_t)(n * 8))
        return ek_err_errno(put < 0 ? errno : EIO, "could not write hash map \"%s\"", t->new_path);
    return NULL;
}

/* Whole blocks [first, first+n) that read as zeros: UNCHANGED where they
 * were zeros at the last sync, ZERO (sent as a zero range) elsewhere. */
static ek_err_t *zero_blocks(ek_local_tracked_t *t, uint64_t first, uint64_t n, ek_extents_t *out)
{
    uint64_t last = nblocks(t->size) - 1, bs = EK_HASHMAP_BLOCK;
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    for (uint64_t b = first; b < first + n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, first + n - b);
        ek_err_t *err = map_read(t, b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t blk = b + i, off = blk * bs, len = EK_MIN(bs, t->size - off);
            now[i] = blk == last ? t->zero_hash_tail : t->zero_hash;
            ek_extents_push(out, off, len, old[i] == now[i] ? EK_EXTENT_UNCHANGED : EK_EXTENT_ZERO);
        }
        if ((err = map_write(t, b, k, now)))
            return err;
        b += k;
    }
    return NULL;
}

static ek_err_t *tr_extents(void *h, uint64_t offset, uint64_t length, ek_extents_t *out)
{
    ek_local_tracked_t *t = h;
    ek_err_t *err = cancelled(t);
    if (err)
        return err;
    if (!t->tracking)
        return t->inner->extents(t->ih, offset, length, out);
    ek_extents_t raw = {0};
    if ((err = t->inner->extents(t->ih, offset, length, &raw))) {
        ek_extents_release(&raw);
        return err;
    }
    /* Whole blocks of zeros compare here; a block only partly zero is data
     * (changes() hashes it). Every non-data extent pushed covers whole
     * blocks, so data extents stay aligned once merged. */
    uint64_t bs = EK_HASHMAP_BLOCK;
    for (size_t i = 0; i < raw.n && !err; i++) {
        const ek_extent_t *x = &raw.v[i];
        uint64_t s = x->offset, e = x->offset + x->length;
        if (x->kind != EK_EXTENT_ZERO) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        uint64_t first = (s + bs - 1) / bs, end = e == t->size ? nblocks(e) : e / bs;
        if (first >= end) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        ek_extents_push(out, s, first * bs - s, EK_EXTENT_DATA);
        err = zero_blocks(t, first, end - first, out);
        uint64_t tail = EK_MIN(end * bs, t->size);
        ek_extents_push(out, tail, e > tail ? e - tail : 0, EK_EXTENT_DATA);
    }
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
    if (!t->tracking) {
        if (t->inner->changes)
            return t->inner->changes(t->ih, buf, offset, len, out);
        ek_extents_push(out, offset, len, EK_EXTENT_DATA);
        return NULL;
    }
    uint64_t bs = EK_HASHMAP_BLOCK, first = offset / bs, n = ek_dp_block_count(len, (uint32_t)bs);
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    const uint8_t *p = buf;
    for (uint64_t b = 0; b < n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, n - b);
        ek_err_t *err = map_read(t, first + b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t rel = (b + i) * bs, blen = EK_MIN(bs, len - rel);
            now[i] = ek_dp_checksum(p + rel, blen);
            bool same = old[i] != 0 && old[i] == now[i];
            ek_extents_push(out, offset + rel, blen, same ? EK_EXTENT_UNCHANGED : EK_EXTENT_DATA);
        }
        if ((err = map_write(t, first + b, k, now)))
            return err;
        b += k;
    }
    return NULL;
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
    if (err || !t->tracking)
        return err;
    if (fsync(t->new_fd) != 0 || rename(t->new_path, t->map_path) != 0)
        return ek_err_errno(errno, "could not save hash map \"%s\"", t->map_path);
    t->committed = true;
    return NULL;
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
