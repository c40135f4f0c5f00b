/* hashmap.c - the block-hash map of a disk (hashmap.h). */
#include "worker/transfer/hashmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "proto/dataplane.h"

#define MAP_MAGIC  "EKHMAP01"
#define MAP_HEADER 24
#define MAP_BATCH  4096 /* entries read or written per system call */

struct ek_hashmap {
    uint64_t size;
    int old_fd, new_fd; /* old_fd -1: no usable previous map */
    char *path, *new_path;
    uint64_t zero_hash, zero_hash_tail; /* of a full block and of the last block */
    bool committed;
};

static uint64_t nblocks(uint64_t size)
{
    return ek_dp_block_count(size, EK_HASHMAP_BLOCK);
}

ek_err_t *ek_hashmap_open(const char *path, uint64_t size, ek_hashmap_t **out)
{
    ek_hashmap_t *m = ek_xcalloc(1, sizeof(*m));
    m->size = size;
    m->path = ek_xstrdup(path);
    m->new_path = ek_xasprintf("%s.new", path);
    m->new_fd = -1;
    uint64_t n = nblocks(size);
    ek_err_t *err = NULL;
    m->old_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->old_fd >= 0) {
        uint8_t h[MAP_HEADER];
        struct stat st;
        if (pread(m->old_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
            memcmp(h, MAP_MAGIC, 8) != 0 || ek_dp_get64(h + 8) != size ||
            ek_dp_get32(h + 16) != EK_HASHMAP_BLOCK || fstat(m->old_fd, &st) != 0 ||
            (uint64_t)st.st_size != MAP_HEADER + n * 8) {
            ek_warn("hash map \"%s\" is not for this disk (%llu bytes): sending every block", path,
                    (unsigned long long)size);
            close(m->old_fd);
            m->old_fd = -1;
        }
    } else if (errno != ENOENT) {
        err = ek_err_errno(errno, "could not open hash map \"%s\"", path);
    }
    if (!err) {
        m->new_fd = open(m->new_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (m->new_fd < 0)
            err = ek_err_errno(errno, "could not create hash map \"%s\"", m->new_path);
    }
    if (!err) {
        uint8_t h[MAP_HEADER] = {0};
        memcpy(h, MAP_MAGIC, 8);
        ek_dp_put64(h + 8, size);
        ek_dp_put32(h + 16, EK_HASHMAP_BLOCK);
        if (pwrite(m->new_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
            ftruncate(m->new_fd, (off_t)(MAP_HEADER + n * 8)) != 0)
            err = ek_err_errno(errno, "could not write hash map \"%s\"", m->new_path);
    }
    if (err) {
        ek_hashmap_close(m);
        return err;
    }
    uint8_t *z = ek_xcalloc(1, EK_HASHMAP_BLOCK);
    m->zero_hash = ek_dp_checksum(z, EK_HASHMAP_BLOCK);
    uint64_t tail = size % EK_HASHMAP_BLOCK;
    m->zero_hash_tail = tail ? ek_dp_checksum(z, tail) : m->zero_hash;
    free(z);
    *out = m;
    return NULL;
}

void ek_hashmap_close(ek_hashmap_t *m)
{
    if (!m)
        return;
    if (m->old_fd >= 0)
        close(m->old_fd);
    if (m->new_fd >= 0) {
        close(m->new_fd);
        if (!m->committed)
            unlink(m->new_path);
    }
    free(m->path);
    free(m->new_path);
    free(m);
}

/* Old entries of blocks [first, first+n) (zeros without an old map). */
static ek_err_t *map_read(ek_hashmap_t *m, uint64_t first, size_t n, uint64_t *old)
{
    if (m->old_fd < 0) {
        memset(old, 0, n * 8);
        return NULL;
    }
    uint8_t buf[MAP_BATCH * 8];
    ssize_t got = pread(m->old_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (got != (ssize_t)(n * 8))
        return ek_err_errno(got < 0 ? errno : EIO, "could not read hash map \"%s\"", m->path);
    for (size_t i = 0; i < n; i++)
        old[i] = ek_dp_get64(buf + i * 8);
    return NULL;
}

static ek_err_t *map_write(ek_hashmap_t *m, uint64_t first, size_t n, const uint64_t *v)
{
    uint8_t buf[MAP_BATCH * 8];
    for (size_t i = 0; i < n; i++)
        ek_dp_put64(buf + i * 8, v[i]);
    ssize_t put = pwrite(m->new_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (put != (ssize_t)(n * 8))
        return ek_err_errno(put < 0 ? errno : EIO, "could not write hash map \"%s\"", m->new_path);
    return NULL;
}

/* Whole blocks [first, first+n) that read as zeros: UNCHANGED where they
 * were zeros at the last sync, ZERO (sent as a zero range) elsewhere. */
static ek_err_t *zero_blocks(ek_hashmap_t *m, uint64_t first, uint64_t n, ek_extents_t *out)
{
    uint64_t last = nblocks(m->size) - 1, bs = EK_HASHMAP_BLOCK;
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    for (uint64_t b = first; b < first + n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, first + n - b);
        ek_err_t *err = map_read(m, b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t blk = b + i, off = blk * bs, len = EK_MIN(bs, m->size - off);
            now[i] = blk == last ? m->zero_hash_tail : m->zero_hash;
            ek_extents_push(out, off, len, old[i] == now[i] ? EK_EXTENT_UNCHANGED : EK_EXTENT_ZERO);
        }
        if ((err = map_write(m, b, k, now)))
            return err;
        b += k;
    }
    return NULL;
}

ek_err_t *ek_hashmap_extents(ek_hashmap_t *m, const ek_extents_t *raw, ek_extents_t *out)
{
    /* Every non-data extent pushed covers whole blocks, so data extents stay
     * aligned once merged. */
    uint64_t bs = EK_HASHMAP_BLOCK;
    ek_err_t *err = NULL;
    for (size_t i = 0; i < raw->n && !err; i++) {
        const ek_extent_t *x = &raw->v[i];
        uint64_t s = x->offset, e = x->offset + x->length;
        if (x->kind != EK_EXTENT_ZERO) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        uint64_t first = (s + bs - 1) / bs, end = e == m->size ? nblocks(e) : e / bs;
        if (first >= end) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        ek_extents_push(out, s, first * bs - s, EK_EXTENT_DATA);
        err = zero_blocks(m, first, end - first, out);
        uint64_t tail = EK_MIN(end * bs, m->size);
        ek_extents_push(out, tail, e > tail ? e - tail : 0, EK_EXTENT_DATA);
    }
    return err;
}

ek_err_t *ek_hashmap_changes(ek_hashmap_t *m, const void *buf, uint64_t offset, uint64_t len,
                             ek_extents_t *out)
{
    uint64_t bs = EK_HASHMAP_BLOCK, first = offset / bs, n = ek_dp_block_count(len, (uint32_t)bs);
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    const uint8_t *p = buf;
    for (uint64_t b = 0; b < n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, n - b);
        ek_err_t *err = map_read(m, first + b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t rel = (b + i) * bs, blen = EK_MIN(bs, len - rel);
            now[i] = ek_dp_checksum(p + rel, blen);
            bool same = old[i] != 0 && old[i] == now[i];
            ek_extents_push(out, offset + rel, blen, same ? EK_EXTENT_UNCHANGED : EK_EXTENT_DATA);
        }
        if ((err = map_write(m, first + b, k, now)))
            return err;
        b += k;
    }
    return NULL;
}

ek_err_t *ek_hashmap_commit(ek_hashmap_t *m)
{
    if (fsync(m->new_fd) != 0 || rename(m->new_path, m->path) != 0)
        return ek_err_errno(errno, "could not save hash map \"%s\"", m->path);
    m->committed = true;
    return NULL;
}
