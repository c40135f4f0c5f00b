/* disk.c - the target disks of ekman-writer: opening only what --allow-path
 * permits, writing at offsets, zeroing (punch hole, zero range or plain
 * zeros, whichever the file or device supports), flushing and hashing.
 *
 * A second descriptor opened with O_DIRECT reads blocks back from the
 * device (not the page cache) for verification and, with --direct, takes
 * the data too: it spares the copy into the page cache (CPU), but each
 * write then waits for the device, which on the benchmark machine made a
 * transfer 1.6 times slower than buffered writes with early write-back.
 * What O_DIRECT cannot take (an unaligned head or tail, a filesystem that
 * refuses it, such as tmpfs) goes through the buffered descriptor.
 *
 * Buffered writes keep a bounded part of the page cache (--cache-limit):
 * a written range starts its write-back at once, and once more than the
 * limit is cached behind it, the oldest range is waited for and dropped.
 * New writes then reuse pages that were just freed instead of taking fresh
 * ones: on a VM whose host reclaims free guest memory, a first touch of a
 * page costs a hypervisor fault, which made the page-cache copy 2 to 8
 * times dearer than the rest of the writer's work; a small disk-copy VM
 * also keeps its memory for what it does rather than for a disk it will
 * not read. */
#include "worker/writer/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/mem.h"

#define ZERO_BUF (1u << 20)
/* .bss: the zero page, no memory; aligned so that it can go with O_DIRECT */
static const uint8_t zeros[ZERO_BUF] __attribute__((aligned(EK_WRITER_ALIGN)));

/* Ranges written through the page cache and not dropped yet, oldest first. */
#define CACHED_MAX 4096u
typedef struct cached_range {
    uint64_t off, len;
} cached_range_t;

/* Writes to one file are serialised by the kernel (the inode lock), and
 * threads that wait for it there spin: four writers burn six times the CPU
 * of one. One mutex per inode, shared by the sessions of this process, makes
 * them sleep instead. */
typedef struct ek_disk_lock {
    dev_t dev;
    ino_t ino;
    unsigned refs;
    pthread_mutex_t mutex;
    ek_writer_record_t *record; /* lives as long as a session has the inode open */
    cached_range_t *cached;     /* ring of CACHED_MAX, under mutex */
    unsigned cached_head, cached_n;
    uint64_t cached_bytes;
    struct ek_disk_lock *next;
} ek_disk_lock_t;

static pthread_mutex_t locks_lock = PTHREAD_MUTEX_INITIALIZER;
static ek_disk_lock_t *locks;

static ek_disk_lock_t *disk_lock_get(dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&locks_lock);
    ek_disk_lock_t *l = locks;
    while (l && !(l->dev == dev && l->ino == ino))
        l = l->next;
    if (!l) {
        l = ek_xcalloc(1, sizeof(*l));
        l->dev = dev;
        l->ino = ino;
        pthread_mutex_init(&l->mutex, NULL);
        l->record = ek_writer_record_new();
        l->cached = ek_xcalloc(CACHED_MAX, sizeof(*l->cached));
        l->next = locks;
        locks = l;
    }
    l->refs++;
    pthread_mutex_unlock(&locks_lock);
    return l;
}

static void disk_lock_put(ek_disk_lock_t *l)
{
    pthread_mutex_lock(&locks_lock);
    if (--l->refs == 0) {
        for (ek_disk_lock_t **pp = &locks; *pp; pp = &(*pp)->next) {
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        }
        pthread_mutex_destroy(&l->mutex);
        ek_writer_record_free(l->record);
        free(l->cached);
        free(l);
    }
    pthread_mutex_unlock(&locks_lock);
}

char *ek_writer_allow_canonical(const char *prefix)
{
    char buf[PATH_MAX];
    if (realpath(prefix, buf))
        return ek_xstrdup(buf);
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    return ek_xstrndup(prefix, n);
}

static bool under_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strcmp(prefix, "/") == 0)
        return true;
    return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/* The canonical path of an existing file, or of a file to create in an
 * existing directory. */
static bool canonical(const char *path, bool create, char out[PATH_MAX])
{
    if (realpath(path, out))
        return true;
    if (errno != ENOENT || !create)
        return false;
    _cleanup_free_ char *d = ek_xstrdup(path), *b = ek_xstrdup(path);
    const char *base = basename(b);
    char dir[PATH_MAX];
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || !realpath(dirname(d), dir))
        return false;
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "", base) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return false;
    }
    errno = ENOENT;
    return true;
}

/* The O_DIRECT descriptor of the file st describes, or -1 (--no-direct, or
 * a filesystem that refuses it: tmpfs). *align: the alignment its I/O needs. */
static int open_direct(const ek_writer_opts_t *opts, const char *canon, const struct stat *st,
                       uint32_t *align)
{
    *align = EK_WRITER_ALIGN;
    if (opts->no_direct)
        return -1;
    int dfd = open(canon, O_RDWR | O_CLOEXEC | O_DIRECT);
    struct stat st2;
    if (dfd < 0) {
        ek_log_kv(EK_LOG_INFO, "O_DIRECT refused: writing through the page cache", "disk", canon,
                  "error", strerror(errno), NULL);
        return -1;
    }
    if (fstat(dfd, &st2) != 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
        close(dfd); /* the path changed between the two opens: no second file */
        return -1;
    }
    int lbs = 0;
    if (S_ISBLK(st->st_mode) && ioctl(dfd, BLKSSZGET, &lbs) == 0 && lbs > EK_WRITER_ALIGN) {
        if (lbs & (lbs - 1)) {
            close(dfd);
            return -1;
        }
        *align = (uint32_t)lbs;
    }
    return dfd;
}

ek_dp_errcode_t ek_writer_disk_open(const ek_writer_opts_t *opts, const char *path, uint64_t size,
                                    uint32_t flags, ek_writer_disk_t **out, char *msg,
                                    size_t msglen)
{
    char canon[PATH_MAX];
    _cleanup_free_ char *by_serial = NULL;
    if (strncmp(path, EK_WRITER_SERIAL_PREFIX, strlen(EK_WRITER_SERIAL_PREFIX)) == 0) {
        by_serial = ek_writer_resolve_serial(opts, path + strlen(EK_WRITER_SERIAL_PREFIX), msg,
                                             msglen);
        if (!by_serial)
            return EK_DP_E_NOT_FOUND;
        path = by_serial;
    }
    if (path[0] != '/') {
        snprintf(msg, msglen, "disk path \"%s\" is not absolute", path);
        return EK_DP_E_FORBIDDEN;
    }
    if (!canonical(path, flags & EK_DP_OPEN_CREATE, canon)) {
        snprintf(msg, msglen, "disk \"%s\": %s", path, strerror(errno));
        return errno == ENOENT ? EK_DP_E_NOT_FOUND : EK_DP_E_IO;
    }
    bool allowed = false;
    for (size_t i = 0; i < opts->n_allow && !allowed; i++)
        allowed = under_prefix(canon, opts->allow[i]);
    if (!allowed) {
        snprintf(msg, msglen, "disk \"%s\" is outside the paths this writer may open%s", path,
                 opts->n_allow ? "" : " (it was started without --allow-path)");
        return EK_DP_E_FORBIDDEN;
    }
    /* O_EXCL first: a file this open creates is known to read as zeros. */
    uint64_t zero_from = UINT64_MAX;
    int fd = -1;
    if (flags & EK_DP_OPEN_CREATE) {
        fd = open(canon, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0644);
        if (fd >= 0)
            zero_from = 0;
    }
    if (fd < 0)
        fd = open(canon, O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(msg, msglen, "could not open disk \"%s\": %s", canon, strerror(errno));
        return errno == ENOENT ? EK_DP_E_NOT_FOUND : EK_DP_E_IO;
    }
    struct stat st;
    uint64_t real = 0;
    bool blockdev = false;
    if (fstat(fd, &st) != 0) {
        snprintf(msg, msglen, "could not stat disk \"%s\": %s", canon, strerror(errno));
        goto fail_io;
    }
    if (S_ISBLK(st.st_mode)) {
        blockdev = true;
        if (ioctl(fd, BLKGETSIZE64, &real) != 0) {
            snprintf(msg, msglen, "could not get the size of \"%s\": %s", canon, strerror(errno));
            goto fail_io;
        }
    } else if (S_ISREG(st.st_mode)) {
        real = (uint64_t)st.st_size;
        if (real < size && (flags & EK_DP_OPEN_RESIZE)) {
            if (zero_from > real)
                zero_from = real; /* what ftruncate adds reads as zeros */
            if (ftruncate(fd, (off_t)size) != 0) {
                snprintf(msg, msglen, "could not grow \"%s\" to %llu bytes: %s", canon,
                         (unsigned long long)size, strerror(errno));
                goto fail_io;
            }
            real = size;
        }
    } else {
        snprintf(msg, msglen, "\"%s\" is neither a block device nor a regular file", canon);
        close(fd);
        return EK_DP_E_FORBIDDEN;
    }
    if (real < size) {
        snprintf(msg, msglen, "disk \"%s\" holds %llu bytes, %llu were asked for", canon,
                 (unsigned long long)real, (unsigned long long)size);
        close(fd);
        return EK_DP_E_SIZE;
    }
    ek_writer_disk_t *d = ek_xcalloc(1, sizeof(*d));
    d->fd = fd;
    d->path = ek_xstrdup(canon);
    d->size = size;
    d->real_size = real;
    d->blockdev = blockdev;
    d->zero_from = zero_from < real ? zero_from : real;
    d->wlock = disk_lock_get(st.st_dev, st.st_ino);
    d->record = d->wlock->record;
    d->readback = opts->verify_readback;
    d->dfd = open_direct(opts, canon, &st, &d->align);
    d->write_direct = opts->direct;
    d->cache_limit = opts->cache_limit;
    *out = d;
    return EK_DP_OK;
fail_io:
    close(fd);
    return EK_DP_E_IO;
}

static int disk_write(ek_writer_disk_t *d, const void *buf, size_t len, uint64_t offset);

/* ---- the page cache a disk's writes hold ---- */

#define DROP_BATCH 16

/* Under the write lock: [off, off+len) was just written through the cache. */
static void cached_add(ek_writer_disk_t *d, uint64_t off, uint64_t len)
{
    ek_disk_lock_t *l = d->wlock;
    if (!d->cache_limit || !len)
        return;
    l->cached_bytes += len;
    if (l->cached_n) { /* sequential writes: one range, up to 1/8 of the limit */
        cached_range_t *last = &l->cached[(l->cached_head + l->cached_n - 1) % CACHED_MAX];
        if (last->off + last->len == off && last->len + len <= d->cache_limit / 8) {
            last->len += len;
            return;
        }
    }
    if (l->cached_n == CACHED_MAX) { /* forget the oldest: the kernel reclaims it when it likes */
        l->cached_bytes -= l->cached[l->cached_head].len;
        l->cached_head = (l->cached_head + 1) % CACHED_MAX;
        l->cached_n--;
    }
    l->cached[(l->cached_head + l->cached_n) % CACHED_MAX] = (cached_range_t){off, len};
    l->cached_n++;
}

/* Under the write lock: takes the oldest ranges beyond limit bytes into out. */
static unsigned cached_take(ek_writer_disk_t *d, uint64_t limit, cached_range_t out[DROP_BATCH])
{
    ek_disk_lock_t *l = d->wlock;
    unsigned k = 0;
    while (k < DROP_BATCH && l->cached_n && l->cached_bytes > limit) {
        out[k] = l->cached[l->cached_head];
        l->cached_bytes -= out[k++].len;
        l->cached_head = (l->cached_head + 1) % CACHED_MAX;
        l->cached_n--;
    }
    return k;
}

/* Outside the lock: waits for the write-back of the ranges and drops their
 * pages. A write-back error is kept for the next FLUSH: waiting here moves
 * the descriptor past it, and fsync would no longer see it. */
static void cached_drop(ek_writer_disk_t *d, const cached_range_t *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (sync_file_range(d->fd, (off_t)r[i].off, (off_t)r[i].len,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            int e = errno;
            if (e == EIO || e == ENOSPC || e == EDQUOT) {
                int none = 0;
                if (__atomic_compare_exchange_n(&d->wb_error, &none, e, false, __ATOMIC_RELAXED,
                                                __ATOMIC_RELAXED))
                    ek_log_kv(EK_LOG_ERROR, "write-back failed", "disk", d->path, "error",
                              strerror(e), NULL);
            }
            continue; /* not dropped: what failed stays dirty */
        }
        posix_fadvise(d->fd, (off_t)r[i].off, (off_t)r[i].len, POSIX_FADV_DONTNEED);
    }
}

/* Releases the write lock, then drops what is cached beyond the limit. */
static void unlock_and_drop(ek_writer_disk_t *d)
{
    cached_range_t drop[DROP_BATCH];
    unsigned nd = cached_take(d, d->cache_limit, drop);
    pthread_mutex_unlock(&d->wlock->mutex);
    cached_drop(d, drop, nd);
}

int ek_writer_disk_write(ek_writer_disk_t *d, const void *buf, size_t len, uint64_t offset,
                         const uint64_t *sum)
{
    pthread_mutex_lock(&d->wlock->mutex);
    int rc = disk_write(d, buf, len, offset);
    /* Under the write lock: the record changes in the order of the writes. */
    if (!rc && sum && len <= UINT32_MAX)
        ek_writer_record_data(d->record, offset, (uint32_t)len, *sum);
    else
        ek_writer_record_forget(d->record, offset, len);
    unlock_and_drop(d);
    return rc;
}

static int pwrite_full(int fd, const uint8_t *p, size_t left, uint64_t off)
{
    while (left) {
        ssize_t n = pwrite(fd, p, left, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;
        p += n;
        off += (uint64_t)n;
        left -= (size_t)n;
    }
    return 0;
}

/* The bytes of [off, off+len) at p that can go with O_DIRECT: from an
 * aligned offset and buffer, a multiple of the alignment (0: none). */
static size_t direct_part(const ek_writer_disk_t *d, const void *p, size_t len, uint64_t off)
{
    if (d->dfd < 0 || __atomic_load_n(&d->direct_off, __ATOMIC_RELAXED) || off % d->align ||
        (uintptr_t)p % EK_WRITER_ALIGN)
        return 0;
    return len - len % d->align;
}

/* A filesystem that opens with O_DIRECT but refuses its I/O: from now on
 * this disk goes through the page cache. */
static void direct_refused(ek_writer_disk_t *d, int rc)
{
    ek_log_kv(EK_LOG_INFO, "O_DIRECT I/O refused: writing through the page cache", "disk", d->path,
              "error", strerror(rc), NULL);
    __atomic_store_n(&d->direct_off, true, __ATOMIC_RELAXED);
}

static int disk_write(ek_writer_disk_t *d, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    size_t direct = d->write_direct ? direct_part(d, p, len, offset) : 0;
    if (direct) {
        int rc = pwrite_full(d->dfd, p, direct, offset);
        if (rc == EINVAL) {
            direct_refused(d, rc);
            direct = 0;
        } else if (rc) {
            return rc;
        }
    }
    __atomic_add_fetch(&d->direct_bytes, direct, __ATOMIC_RELAXED);
    if (direct == len)
        return 0;
    int rc = pwrite_full(d->fd, p + direct, len - direct, offset + direct);
    if (rc)
        return rc;
    __atomic_add_fetch(&d->buffered_bytes, len - direct, __ATOMIC_RELAXED);
    /* Start write-back now, without waiting: the disk works while the network
     * does, and the final flush has little left to do. */
    sync_file_range(d->fd, (off_t)(offset + direct), (off_t)(len - direct),
                    SYNC_FILE_RANGE_WRITE);
    cached_add(d, offset + direct, len - direct);
    return 0;
}

static int disk_zero(ek_writer_disk_t *d, uint64_t offset, uint64_t len);

int ek_writer_disk_zero(ek_writer_disk_t *d, uint64_t offset, uint64_t len)
{
    pthread_mutex_lock(&d->wlock->mutex);
    int rc = disk_zero(d, offset, len);
    ek_writer_record_forget(d->record, offset, len);
    unlock_and_drop(d);
    return rc;
}

static int disk_zero(ek_writer_disk_t *d, uint64_t offset, uint64_t len)
{
    int mode = __atomic_load_n(&d->zero_mode, __ATOMIC_RELAXED);
    if (mode == 0) {
        if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                      (off_t)len) == 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
            return errno;
        mode = 1;
        __atomic_store_n(&d->zero_mode, mode, __ATOMIC_RELAXED);
    }
    if (mode == 1) {
        if (fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                      (off_t)len) == 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
            return errno;
        __atomic_store_n(&d->zero_mode, 2, __ATOMIC_RELAXED);
    }
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < ZERO_BUF ? (size_t)(len - done) : ZERO_BUF;
        int rc = disk_write(d, zeros, n, offset + done);
        if (rc)
            return rc;
        done += n;
    }
    return 0;
}

int ek_writer_disk_flush(ek_writer_disk_t *d)
{
    if (fsync(d->fd) != 0)
        return errno;
    return __atomic_load_n(&d->wb_error, __ATOMIC_RELAXED); /* sticky: data was lost */
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0) { /* past the end of a file: reads as zeros */
            memset(buf, 0, len);
            return 0;
        }
        buf += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads [off, off+len) from the disk itself (O_DIRECT) where it can: what
 * the page cache holds is not what the device will return. The kernel
 * writes cached dirty pages of the range back before such a read. */
static int read_at(ek_writer_disk_t *d, uint8_t *buf, size_t len, uint64_t off)
{
    size_t direct = direct_part(d, buf, len, off);
    if (direct) {
        int rc = read_full(d->dfd, buf, direct, off);
        if (rc == EINVAL)
            direct = 0; /* refused: read it all through the cache */
        else if (rc)
            return rc;
    }
    return direct == len ? 0 : read_full(d->fd, buf + direct, len - direct, off + direct);
}

/* Reads [off, off+len): data ranges with pread, holes as zeros in buf (reading
 * a hole would make the kernel allocate and clear page cache for it). */
static int read_data(ek_writer_disk_t *d, uint8_t *buf, size_t len, uint64_t off)
{
    if (d->blockdev)
        return read_at(d, buf, len, off);
    uint64_t end = off + len;
    for (uint64_t pos = off; pos < end;) {
        off_t data = lseek(d->fd, (off_t)pos, SEEK_DATA);
        uint64_t ds = data < 0 ? end : EK_MIN((uint64_t)data, end);
        if (data < 0 && errno != ENXIO)
            return read_at(d, buf + (pos - off), (size_t)(end - pos), pos);
        memset(buf + (pos - off), 0, (size_t)(ds - pos));
        if (ds >= end)
            break;
        off_t hole = lseek(d->fd, (off_t)ds, SEEK_HOLE);
        uint64_t he = hole < 0 ? end : EK_MIN((uint64_t)hole, end);
        int rc = read_at(d, buf + (ds - off), (size_t)(he - ds), ds);
        if (rc)
            return rc;
        pos = he;
    }
    return 0;
}

int ek_writer_disk_hash(ek_writer_disk_t *d, uint64_t offset, uint64_t len, uint32_t block_size,
                        uint8_t *out, uint8_t *buf, uint64_t *recorded)
{
    uint64_t end = offset + len, zero_hash = 0, hole_end = 0, h;
    bool have_zero_hash = false;
    for (uint64_t off = offset; off < end; off += block_size, out += EK_DP_HASH_SIZE) {
        size_t blen = end - off < block_size ? (size_t)(end - off) : block_size;
        if (!d->readback && ek_writer_record_lookup(d->record, off, blen, &h)) {
            ek_dp_hash_put(out, h);
            if (recorded)
                (*recorded)++;
            continue;
        }
        bool hole = off + blen <= hole_end;
        if (!hole && !d->blockdev) {
            off_t data = lseek(d->fd, (off_t)off, SEEK_DATA);
            if (data < 0 && errno == ENXIO) {
                hole_end = UINT64_MAX; /* nothing allocated up to the end */
                hole = true;
            } else if (data >= 0 && (uint64_t)data >= off + blen) {
                hole_end = (uint64_t)data;
                hole = true;
            }
        }
        if (hole && blen == block_size) {
            if (!have_zero_hash) {
                memset(buf, 0, block_size);
                zero_hash = ek_dp_checksum(buf, block_size);
                have_zero_hash = true;
            }
            ek_dp_hash_put(out, zero_hash);
            continue;
        }
        if (hole) {
            memset(buf, 0, blen);
        } else {
            int rc = read_data(d, buf, blen, off);
            if (rc)
                return rc;
        }
        ek_dp_hash_put(out, ek_dp_checksum(buf, blen));
    }
    return 0;
}

void ek_writer_disk_close(ek_writer_disk_t *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&locks_lock);
    bool last = d->wlock->refs == 1; /* other sessions still writing keep their ranges */
    pthread_mutex_unlock(&locks_lock);
    if (d->cache_limit && last) { /* what was written is of no use in this VM's memory */
        cached_range_t drop[DROP_BATCH];
        unsigned nd;
        do {
            pthread_mutex_lock(&d->wlock->mutex);
            nd = cached_take(d, 0, drop);
            pthread_mutex_unlock(&d->wlock->mutex);
            for (unsigned i = 0; i < nd; i++)
                posix_fadvise(d->fd, (off_t)drop[i].off, (off_t)drop[i].len, POSIX_FADV_DONTNEED);
        } while (nd == DROP_BATCH);
    }
    close(d->fd);
    if (d->dfd >= 0)
        close(d->dfd);
    disk_lock_put(d->wlock);
    free(d->path);
    free(d);
}
