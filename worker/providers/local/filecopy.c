/* filecopy.c - copies of replica disks for snapshots and clones, done as
 * `cp --reflink=auto --sparse=always` does them: a clone sharing the
 * extents (FICLONE: btrfs, XFS) costs nothing; elsewhere only the data
 * ranges (SEEK_DATA/SEEK_HOLE) are read, and 64 KiB blocks of zeros inside
 * them stay holes. The copy goes to "<dst>.part" and is renamed over dst
 * once synced, so dst is never seen half-written. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/mem.h"
#include "proto/dataplane.h"

#define COPY_BUF   (1u << 20)
#define ZERO_GRAIN (64u * 1024)

static ek_err_t *write_all(int fd, const uint8_t *p, size_t len, uint64_t off, const char *path)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ek_err_errno(n < 0 ? errno : EIO, "could not write \"%s\"", path);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return NULL;
}

/* Copies the data ranges of [0, size), leaving zeros as holes. */
static ek_err_t *copy_sparse(int in, int out, uint64_t size, const char *src, const char *dst,
                             ek_local_copy_progress_fn fn, void *opaque)
{
    uint8_t *buf = ek_xmalloc(COPY_BUF);
    ek_err_t *err = NULL;
    uint64_t pos = 0;
    while (pos < size && !err) {
        off_t d = lseek(in, (off_t)pos, SEEK_DATA);
        if (d < 0) {
            if (errno != ENXIO)
                err = ek_err_errno(errno, "could not map the allocation of \"%s\"", src);
            break; /* ENXIO: only a hole is left */
        }
        off_t h = lseek(in, d, SEEK_HOLE);
        uint64_t end = h < 0 ? size : EK_MIN((uint64_t)h, size);
        for (uint64_t off = (uint64_t)d; off < end && !err;) {
            size_t len = (size_t)EK_MIN((uint64_t)COPY_BUF, end - off);
            ssize_t n = pread(in, buf, len, (off_t)off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                err = ek_err_errno(n < 0 ? errno : EIO, "could not read \"%s\"", src);
                break;
            }
            for (size_t i = 0; i < (size_t)n && !err; i += ZERO_GRAIN) {
                size_t k = EK_MIN((size_t)ZERO_GRAIN, (size_t)n - i);
                if (!ek_dp_is_zero(buf + i, k))
                    err = write_all(out, buf + i, k, off + i, dst);
            }
            off += (uint64_t)n;
            if (fn)
                fn(opaque, off, size);
        }
        pos = end;
    }
    free(buf);
    return err;
}

ek_err_t *ek_local_file_copy(const char *src, const char *dst, ek_local_copy_progress_fn fn,
                             void *opaque, bool *cloned)
{
    *cloned = false;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ek_err_errno(errno, "could not open \"%s\"", src);
    struct stat st;
    if (fstat(in, &st) != 0) {
        int e = errno;
        close(in);
        return ek_err_errno(e, "could not stat \"%s\"", src);
    }
    if (!S_ISREG(st.st_mode)) {
        close(in);
        return ek_err_new(EK_E_INVALID, "\"%s\" is not a regular file", src);
    }
    _cleanup_free_ char *part = ek_xasprintf("%s.part", dst);
    int out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        close(in);
        return ek_err_errno(e, "could not create \"%s\"", part);
    }
    ek_err_t *err = NULL;
    uint64_t size = (uint64_t)st.st_size;
    if (ioctl(out, FICLONE, in) == 0) {
        *cloned = true;
        if (fn)
            fn(opaque, size, size);
    } else if (ftruncate(out, (off_t)size) != 0) {
        err = ek_err_errno(errno, "could not size \"%s\"", part);
    } else {
        err = copy_sparse(in, out, size, src, part, fn, opaque);
    }
    if (!err && fsync(out) != 0)
        err = ek_err_errno(errno, "could not sync \"%s\"", part);
    close(out);
    close(in);
    if (!err && rename(part, dst) != 0)
        err = ek_err_errno(errno, "could not rename \"%s\" to \"%s\"", part, dst);
    if (err)
        unlink(part);
    return err;
}
