/* reader_file.c - the raw-image source: a file or block device read with
 * pread, its holes found with SEEK_DATA/SEEK_HOLE, and, for incrementals,
 * a hash map of the previous sync (one XXH3-64 per 64 KiB block) so that
 * only blocks whose content changed are sent.
 *
 * Hash map file: "EKHMAP01", u64 disk size, u32 block size, u32 0, then one
 * little-endian u64 per block. A 0 entry means "unknown" (always sent). The
 * new map is written beside the old one (".new") and renamed over it by
 * commit, once the transfer is verified: a failed run never loses the base. */
#include "worker/transfer/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"
#include "proto/dataplane.h"

#define MAP_MAGIC  "EKHMAP01"
#define MAP_HEADER 24
#define MAP_BATCH  4096 /* entries read or written per system call */

void ek_extents_push(ek_extents_t *e, uint64_t offset, uint64_t length, ek_extent_kind_t kind)
{
    if (!length)
        return;
    if (e->n && e->v[e->n - 1].kind == kind &&
        e->v[e->n - 1].offset + e->v[e->n - 1].length == offset) {
        e->v[e->n - 1].length += length;
        return;
    }
    if (e->n == e->alloc) {
        e->alloc = e->alloc ? e->alloc * 2 : 16;
        e->v = ek_xrealloc(e->v, e->alloc * sizeof(*e->v));
    }
    e->v[e->n++] = (ek_extent_t){offset, length, kind};
}

void ek_extents_release(ek_extents_t *e)
{
    free(e->v);
    e->v = NULL;
    e->n = e->alloc = 0;
}

typedef struct file_reader {
    int fd;
    char *path;
    uint64_t size;
    bool blockdev;
    /* change tracking */
    bool tracking;
    int old_fd, new_fd; /* old_fd -1: no usable previous map */
    char *map_path, *new_path;
    uint64_t zero_hash, zero_hash_tail; /* of a full block and of the last block */
    bool committed;
} file_reader_t;

static ek_err_t *map_open(file_reader_t *r, const char *map)
{
    r->map_path = ek_xstrdup(map);
    r->new_path = ek_xasprintf("%s.new", map);
    r->old_fd = open(map, O_RDONLY | O_CLOEXEC);
    if (r->old_fd >= 0) {
        uint8_t h[MAP_HEADER];
        struct stat st;
        uint64_t n = ek_dp_block_count(r->size, EK_HASHMAP_BLOCK);
        if (pread(r->old_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
            memcmp(h, MAP_MAGIC, 8) != 0 || ek_dp_get64(h + 8) != r->size ||
            ek_dp_get32(h + 16) != EK_HASHMAP_BLOCK || fstat(r->old_fd, &st) != 0 ||
            (uint64_t)st.st_size != MAP_HEADER + n * 8) {
            ek_warn("hash map \"%s\" is not for this disk (%llu bytes): sending every block", map,
                    (unsigned long long)r->size);
            close(r->old_fd);
            r->old_fd = -1;
        }
    } else if (errno != ENOENT) {
        return ek_err_errno(errno, "could not open hash map \"%s\"", map);
    }
    r->new_fd = open(r->new_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->new_fd < 0)
        return ek_err_errno(errno, "could not create hash map \"%s\"", r->new_path);
    uint8_t h[MAP_HEADER] = {0};
    memcpy(h, MAP_MAGIC, 8);
    ek_dp_put64(h + 8, r->size);
    ek_dp_put32(h + 16, EK_HASHMAP_BLOCK);
    uint64_t n = ek_dp_block_count(r->size, EK_HASHMAP_BLOCK);
    if (pwrite(r->new_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        ftruncate(r->new_fd, (off_t)(MAP_HEADER + n * 8)) != 0)
        return ek_err_errno(errno, "could not write hash map \"%s\"", r->new_path);
    uint8_t *z = ek_xcalloc(1, EK_HASHMAP_BLOCK);
    r->zero_hash = ek_dp_checksum(z, EK_HASHMAP_BLOCK);
    uint64_t tail = r->size % EK_HASHMAP_BLOCK;
    r->zero_hash_tail = tail ? ek_dp_checksum(z, tail) : r->zero_hash;
    free(z);
    r->tracking = true;
    return NULL;
}

static ek_err_t *file_open(const char *source, const ek_reader_params_t *params, void **handle,
                           uint64_t *size)
{
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ek_err_errno(errno, "could not open source \"%s\"", source);
    file_reader_t *r = ek_xcalloc(1, sizeof(*r));
    r->fd = fd;
    r->old_fd = r->new_fd = -1;
    r->path = ek_xstrdup(source);
    struct stat st;
    ek_err_t *err = NULL;
    if (fstat(fd, &st) != 0) {
        err = ek_err_errno(errno, "could not stat source \"%s\"", source);
    } else if (S_ISBLK(st.st_mode)) {
        r->blockdev = true;
        if (ioctl(fd, BLKGETSIZE64, &r->size) != 0)
            err = ek_err_errno(errno, "could not get the size of \"%s\"", source);
    } else if (S_ISREG(st.st_mode)) {
        r->size = (uint64_t)st.st_size;
    } else {
        err =
            ek_err_new(EK_E_INVALID, "source \"%s\" is neither a file nor a block device", source);
    }
    if (!err && r->size == 0)
        err = ek_err_new(EK_E_INVALID, "source \"%s\" is empty", source);
    if (!err && params && params->hash_map)
        err = map_open(r, params->hash_map);
    if (err) {
        ek_reader_file.close(r);
        return err;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *handle = r;
    *size = r->size;
    return NULL;
}

/* Old and new entries of blocks [first, first+n): the caller's arrays. */
static ek_err_t *map_read(file_reader_t *r, uint64_t first, size_t n, uint64_t *old)
{
    if (r->old_fd < 0) {
        memset(old, 0, n * 8);
        return NULL;
    }
    uint8_t buf[MAP_BATCH * 8];
    ssize_t got = pread(r->old_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (got != (ssize_t)(n * 8))
        return ek_err_errno(got < 0 ? errno : EIO, "could not read hash map \"%s\"", r->map_path);
    for (size_t i = 0; i < n; i++)
        old[i] = ek_dp_get64(buf + i * 8);
    return NULL;
}

static ek_err_t *map_write(file_reader_t *r, uint64_t first, size_t n, const uint64_t *v)
{
    uint8_t buf[MAP_BATCH * 8];
    for (size_t i = 0; i < n; i++)
        ek_dp_put64(buf + i * 8, v[i]);
    ssize_t put = pwrite(r->new_fd, buf, n * 8, (off_t)(MAP_HEADER + first * 8));
    if (put != (ssize_t)(n * 8))
        return ek_err_errno(put < 0 ? errno : EIO, "could not write hash map \"%s\"", r->new_path);
    return NULL;
}

/* Hole blocks [first, first+n) under change tracking: ZERO where the old
 * content was not zeros, UNCHANGED where it was. */
static ek_err_t *holes_tracked(file_reader_t *r, uint64_t first, uint64_t n, ek_extents_t *out)
{
    uint64_t last = ek_dp_block_count(r->size, EK_HASHMAP_BLOCK) - 1;
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    for (uint64_t b = first; b < first + n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, first + n - b);
        ek_err_t *err = map_read(r, b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t blk = b + i, off = blk * EK_HASHMAP_BLOCK;
            uint64_t len = EK_MIN((uint64_t)EK_HASHMAP_BLOCK, r->size - off);
            now[i] = blk == last ? r->zero_hash_tail : r->zero_hash;
            ek_extents_push(out, off, len, old[i] == now[i] ? EK_EXTENT_UNCHANGED : EK_EXTENT_ZERO);
        }
        if ((err = map_write(r, b, k, now)))
            return err;
        b += k;
    }
    return NULL;
}

static ek_err_t *file_extents(void *h, uint64_t offset, uint64_t length, ek_extents_t *out)
{
    file_reader_t *r = h;
    uint64_t end = offset + length;
    if (r->blockdev) {
        ek_extents_push(out, offset, length, EK_EXTENT_DATA);
        return NULL;
    }
    ek_extents_t raw = {0};
    for (uint64_t pos = offset; pos < end;) {
        off_t d = lseek(r->fd, (off_t)pos, SEEK_DATA);
        if (d < 0 && errno != ENXIO) {
            ek_extents_release(&raw);
            return ek_err_errno(errno, "could not map the allocation of \"%s\"", r->path);
        }
        uint64_t data = d < 0 ? end : EK_MIN((uint64_t)d, end);
        ek_extents_push(&raw, pos, data - pos, EK_EXTENT_ZERO);
        if (data >= end)
            break;
        off_t hole = lseek(r->fd, (off_t)data, SEEK_HOLE);
        uint64_t hend = hole < 0 ? end : EK_MIN((uint64_t)hole, end);
        ek_extents_push(&raw, data, hend - data, EK_EXTENT_DATA);
        pos = hend;
    }
    if (!r->tracking) {
        for (size_t i = 0; i < raw.n; i++)
            ek_extents_push(out, raw.v[i].offset, raw.v[i].length, raw.v[i].kind);
        ek_extents_release(&raw);
        return NULL;
    }
    /* Tracking works on whole map blocks: a block that is only partly a hole
     * is data (changes() will hash it); whole hole blocks compare here. */
    ek_err_t *err = NULL;
    uint64_t bs = EK_HASHMAP_BLOCK;
    for (size_t i = 0; i < raw.n && !err; i++) {
        ek_extent_t *x = &raw.v[i];
        uint64_t s = x->offset, e = x->offset + x->length;
        if (x->kind == EK_EXTENT_DATA) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        uint64_t first = (s + bs - 1) / bs,
                 lastb = e == r->size ? ek_dp_block_count(e, bs) : e / bs;
        if (first >= lastb) {
            ek_extents_push(out, s, e - s, EK_EXTENT_DATA);
            continue;
        }
        ek_extents_push(out, s, first * bs - s, EK_EXTENT_DATA);
        err = holes_tracked(r, first, lastb - first, out);
        uint64_t tail = EK_MIN(lastb * bs, r->size);
        ek_extents_push(out, tail, e > tail ? e - tail : 0, EK_EXTENT_DATA);
    }
    ek_extents_release(&raw);
    return err;
}

static ek_err_t *file_pread(void *h, void *buf, size_t len, uint64_t offset)
{
    file_reader_t *r = h;
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(r->fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ek_err_errno(errno, "could not read %zu bytes at offset %llu of \"%s\"", len,
                                (unsigned long long)offset, r->path);
        }
        if (n == 0) { /* the file shrank under us: reads as zeros */
            memset(p, 0, len);
            break;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return NULL;
}

static ek_err_t *file_changes(void *h, const void *buf, uint64_t offset, uint64_t len,
                              ek_extents_t *out)
{
    file_reader_t *r = h;
    if (!r->tracking) {
        ek_extents_push(out, offset, len, EK_EXTENT_DATA);
        return NULL;
    }
    uint64_t bs = EK_HASHMAP_BLOCK, first = offset / bs;
    uint64_t n = ek_dp_block_count(len, (uint32_t)bs);
    uint64_t old[MAP_BATCH], now[MAP_BATCH];
    const uint8_t *p = buf;
    for (uint64_t b = 0; b < n;) {
        size_t k = (size_t)EK_MIN((uint64_t)MAP_BATCH, n - b);
        ek_err_t *err = map_read(r, first + b, k, old);
        if (err)
            return err;
        for (size_t i = 0; i < k; i++) {
            uint64_t rel = (b + i) * bs, blen = EK_MIN(bs, len - rel);
            now[i] = ek_dp_checksum(p + rel, blen);
            bool same = old[i] != 0 && old[i] == now[i];
            ek_extents_push(out, offset + rel, blen, same ? EK_EXTENT_UNCHANGED : EK_EXTENT_DATA);
        }
        if ((err = map_write(r, first + b, k, now)))
            return err;
        b += k;
    }
    return NULL;
}

static ek_err_t *file_block_hashes(void *h, uint64_t offset, uint64_t len, uint32_t block_size,
                                   uint64_t *out)
{
    file_reader_t *r = h;
    uint8_t *buf = ek_xmalloc(block_size);
    ek_err_t *err = NULL;
    for (uint64_t off = offset; off < offset + len && !err; off += block_size, out++) {
        size_t blen = (size_t)EK_MIN((uint64_t)block_size, offset + len - off);
        off_t d = r->blockdev ? (off_t)off : lseek(r->fd, (off_t)off, SEEK_DATA);
        if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= off + blen)) {
            memset(buf, 0, blen);
        } else if ((err = file_pread(r, buf, blen, off))) {
            break;
        }
        *out = ek_dp_checksum(buf, blen);
    }
    free(buf);
    return err;
}

static ek_err_t *file_commit(void *h)
{
    file_reader_t *r = h;
    if (!r->tracking)
        return NULL;
    if (fsync(r->new_fd) != 0 || rename(r->new_path, r->map_path) != 0)
        return ek_err_errno(errno, "could not save hash map \"%s\"", r->map_path);
    r->committed = true;
    return NULL;
}

static void file_close(void *h)
{
    file_reader_t *r = h;
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->old_fd >= 0)
        close(r->old_fd);
    if (r->new_fd >= 0) {
        close(r->new_fd);
        if (!r->committed)
            unlink(r->new_path);
    }
    free(r->path);
    free(r->map_path);
    free(r->new_path);
    free(r);
}

const ek_reader_ops_t ek_reader_file = {
    .name = "file",
    .open = file_open,
    .extents = file_extents,
    .pread = file_pread,
    .changes = file_changes,
    .block_hashes = file_block_hashes,
    .commit = file_commit,
    .close = file_close,
};
