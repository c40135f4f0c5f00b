/* disk.c - the target disks of ekman-writer: opening only what --allow-path
 * permits, writing at offsets, zeroing (punch hole, zero range or plain
 * zeros, whichever the file or device supports), flushing and hashing.
 *
 * A disk is opened beneath the --allow-path directory that holds its name,
 * in one step: openat2(RESOLVE_BENEATH) with O_NOFOLLOW, so that neither
 * "..", nor a link in the path, nor a link planted at the disk's own name
 * reaches anything else (no check of a resolved path followed by an open of
 * the name, which a swap in between would defeat). Files it creates are
 * 0600: they hold a tenant's disk.
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
#include <limits.h>
#include <pthread.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common/log.h"
#include "common/fsutil.h"
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

/* Whether path lies under prefix (lexically; both absolute). *rest points at
 * what follows the prefix, without leading slashes ("" for the prefix itself). */
static bool under_prefix(const char *path, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1 && prefix[0] == '/')
        n = 0;
    else if (strncmp(path, prefix, n) != 0 || (path[n] != 0 && path[n] != '/'))
        return false;
    while (path[n] == '/')
        n++;
    *rest = path + n;
    return true;
}

/* Whether an absolute path has a "." or ".." component: such a path is
 * refused rather than resolved, so that what is checked is what is opened. */
static bool has_dot_component(const char *path)
{
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
    }
    return false;
}

/* Opens rel beneath dirfd (common/fsutil.h: openat2 RESOLVE_BENEATH, or a
 * walk that refuses every link), the last component never a link: one
 * system call resolves and opens, nothing can be swapped between a check
 * and the open. */
static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    return ek_openat_beneath(dirfd, rel, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

/* The directory a disk is opened beneath (*rel: the name below it): the
 * --allow-path prefix the path lies under, or the parent of a prefix that
 * names one disk (--allow-path /dev/vdb). The prefix is the operator's: it
 * may be reached through links. -1 with errno, or EACCES when no prefix
 * holds the path. */
static int allowed_dir(const ek_writer_opts_t *opts, const char *path, const char **rel)
{
    for (size_t i = 0; i < opts->n_allow; i++) {
        const char *rest;
        if (!under_prefix(path, opts->allow[i], &rest))
            continue;
        if (*rest) {
            *rel = rest;
            return open(opts->allow[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        /* the prefix is the disk itself: open it beneath its parent */
        const char *slash = strrchr(path, '/');
        if (!slash || !slash[1]) {
            errno = EISDIR;
            return -1;
        }
        _cleanup_free_ char *parent = ek_xstrndup(path, (size_t)(slash - path));
        *rel = slash + 1;
        return open(*parent ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    errno = EACCES;
    return -1;
}

/* The O_DIRECT descriptor of the file st describes, or -1 (--no-direct, or
 * a filesystem that refuses it: tmpfs). *align: the alignment its I/O needs. */
static int open_direct(const ek_writer_opts_t *opts, int dirfd, const char *rel, const char *path,
                       const struct stat *st, uint32_t *align)
{
    *align = EK_WRITER_ALIGN;
    if (opts->no_direct)
        return -1;
    int dfd = open_beneath(dirfd, rel, O_RDWR | O_DIRECT, 0);
    struct stat st2;
    if (dfd < 0) {
        ek_log_kv(EK_LOG_INFO, "O_DIRECT refused: writing through the page cache", "disk", path,
                  "error", strerror(errno), NULL);
        return -1;
    }
    if (fstat(dfd, &st2) != 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
        close(dfd); /* the name changed between the two opens: no second file */
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

/* Why a name beneath the allowed directory did not open, as the client
 * should read it. */
static ek_dp_errcode_t open_failed(int e, const char *path, char *msg, size_t msglen)
{
    if (e == ELOOP || e == EXDEV) {
        snprintf(msg, msglen,
                 "disk \"%s\" is or goes through a symbolic link%s: refused (name the disk "
                 "itself, beneath an --allow-path directory)",
                 path, e == EXDEV ? " that leads out of the allowed directory" : "");
        return EK_DP_E_FORBIDDEN;
    }
    snprintf(msg, msglen, "could not open disk \"%s\": %s", path, strerror(e));
    return e == ENOENT ? EK_DP_E_NOT_FOUND : EK_DP_E_IO;
}

ek_dp_errcode_t ek_writer_disk_open(const ek_writer_opts_t *opts, const char *path, uint64_t size,
                                    uint32_t flags, ek_writer_disk_t **out, char *msg,
                                    size_t msglen)
{
    _cleanup_free_ char *by_serial = NULL;
    if (strncmp(path, EK_WRITER_SERIAL_PREFIX, strlen(EK_WRITER_SERIAL_PREFIX)) == 0) {
        by_serial =
            ek_writer_resolve_serial(opts, path + strlen(EK_WRITER_SERIAL_PREFIX), msg, msglen);
        if (!by_serial)
            return EK_DP_E_NOT_FOUND;
        path = by_serial;
    }
    if (path[0] != '/') {
        snprintf(msg, msglen, "disk path \"%s\" is not absolute", path);
        return EK_DP_E_FORBIDDEN;
    }
    if (has_dot_component(path)) {
        snprintf(msg, msglen,
                 "disk path \"%s\" has a \".\" or \"..\" component: name the disk "
                 "by its plain path",
                 path);
        return EK_DP_E_FORBIDDEN;
    }
    const char *rel;
    int dirfd = allowed_dir(opts, path, &rel);
    if (dirfd < 0 && errno == EACCES) {
        snprintf(msg, msglen, "disk \"%s\" is outside the paths this writer may open%s", path,
                 opts->n_allow ? "" : " (it was started without --allow-path)");
        return EK_DP_E_FORBIDDEN;
    }
    if (dirfd < 0) {
        snprintf(msg, msglen, "disk \"%s\": the directory it may be in cannot be opened: %s", path,
                 strerror(errno));
        return errno == ENOENT ? EK_DP_E_NOT_FOUND : EK_DP_E_IO;
    }
    /* A file this open creates (O_EXCL) is known to read as zeros, and is
     * private to the writer's user: it holds a tenant's disk. */
    uint64_t zero_from = UINT64_MAX;
    int fd = -1;
    if (flags & EK_DP_OPEN_CREATE) {
        fd = open_beneath(dirfd, rel, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0)
            zero_from = 0;
        else if (errno != EEXIST) {
            ek_dp_errcode_t rc = open_failed(errno, path, msg, msglen);
            close(dirfd);
            return rc;
        }
    }
    struct stat st;
    if (fd < 0) {
        /* Look before opening for real: opening a character device or a FIFO
         * can act on it (a watchdog starts, a terminal is taken). */
        int pfd = open_beneath(dirfd, rel, O_PATH, 0);
        if (pfd < 0 || fstat(pfd, &st) != 0) {
            ek_dp_errcode_t rc = open_failed(errno, path, msg, msglen);
            if (pfd >= 0)
                close(pfd);
            close(dirfd);
            return rc;
        }
        close(pfd);
        if (S_ISLNK(st.st_mode)) { /* O_PATH | O_NOFOLLOW opens the link itself */
            close(dirfd);
            return open_failed(ELOOP, path, msg, msglen);
        }
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
            snprintf(msg, msglen, "\"%s\" is neither a block device nor a regular file", path);
            close(dirfd);
            return EK_DP_E_FORBIDDEN;
        }
        fd = open_beneath(dirfd, rel, O_RDWR, 0);
        if (fd < 0) {
            ek_dp_errcode_t rc = open_failed(errno, path, msg, msglen);
            close(dirfd);
            return rc;
        }
    }
    uint64_t real = 0;
    bool blockdev = false;
    if (fstat(fd, &st) != 0) {
        snprintf(msg, msglen, "could not stat disk \"%s\": %s", path, strerror(errno));
        goto fail_io;
    }
    if (S_ISBLK(st.st_mode)) {
        blockdev = true;
        if (ioctl(fd, BLKGETSIZE64, &real) != 0) {
            snprintf(msg, msglen, "could not get the size of \"%s\": %s", path, strerror(errno));
            goto fail_io;
        }
    } else if (S_ISREG(st.st_mode)) {
        real = (uint64_t)st.st_size;
        if (real < size && (flags & EK_DP_OPEN_RESIZE)) {
            if (zero_from > real)
                zero_from = real; /* what ftruncate adds reads as zeros */
            if (ftruncate(fd, (off_t)size) != 0) {
                snprintf(msg, msglen, "could not grow \"%s\" to %llu bytes: %s", path,
                         (unsigned long long)size, strerror(errno));
                goto fail_io;
            }
            real = size;
        }
    } else {
        snprintf(msg, msglen, "\"%s\" is neither a block device nor a regular file", path);
        close(fd);
        close(dirfd);
        return EK_DP_E_FORBIDDEN;
    }
    if (real < size) {
        snprintf(msg, msglen, "disk \"%s\" holds %llu bytes, %llu were asked for", path,
                 (unsigned long long)real, (unsigned long long)size);
        close(fd);
        close(dirfd);
        return EK_DP_E_SIZE;
    }
    ek_writer_disk_t *d = ek_xcalloc(1, sizeof(*d));
    d->fd = fd;
    d->path = ek_xstrdup(path);
    d->size = size;
    d->real_size = real;
    d->blockdev = blockdev;
    d->zero_from = zero_from < real ? zero_from : real;
    d->wlock = disk_lock_get(st.st_dev, st.st_ino);
    d->record = d->wlock->record;
    d->readback = opts->verify_readback;
    d->dfd = open_direct(opts, dirfd, rel, path, &st, &d->align);
    d->write_direct = opts->direct;
    d->cache_limit = opts->cache_limit;
    close(dirfd);
    *out = d;
    return EK_DP_OK;
fail_io:
    close(fd);
    close(dirfd);
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
    sync_file_range(d->fd, (off_t)(offset + direct), (off_t)(len - direct), SYNC_FILE_RANGE_WRITE);
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
