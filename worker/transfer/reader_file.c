/* reader_file.c - the raw-image source: a file or block device read with
 * pread, its holes found with SEEK_DATA/SEEK_HOLE, and, for incrementals,
 * the hash map of the previous sync (hashmap.h) so that only blocks whose
 * content changed are sent. */
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
#include "worker/transfer/hashmap.h"

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
    ek_hashmap_t *map; /* change tracking: NULL without a hash map */
} file_reader_t;

static ek_err_t *file_open(const char *source, const ek_reader_params_t *params, void **handle,
                           uint64_t *size)
{
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ek_err_errno(errno, "could not open source \"%s\"", source);
    file_reader_t *r = ek_xcalloc(1, sizeof(*r));
    r->fd = fd;
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
        err = ek_hashmap_open(params->hash_map, r->size, &r->map);
    if (err) {
        ek_reader_file.close(r);
        return err;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *handle = r;
    *size = r->size;
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
    /* Tracking works on whole map blocks: a block that is only partly a hole
     * is data (changes() will hash it); whole hole blocks compare here. */
    ek_err_t *err = NULL;
    if (r->map)
        err = ek_hashmap_extents(r->map, &raw, out);
    else
        for (size_t i = 0; i < raw.n; i++)
            ek_extents_push(out, raw.v[i].offset, raw.v[i].length, raw.v[i].kind);
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
    if (!r->map) {
        ek_extents_push(out, offset, len, EK_EXTENT_DATA);
        return NULL;
    }
    return ek_hashmap_changes(r->map, buf, offset, len, out);
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
    return r->map ? ek_hashmap_commit(r->map) : NULL;
}

static void file_close(void *h)
{
    file_reader_t *r = h;
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    ek_hashmap_close(r->map);
    free(r->path);
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
