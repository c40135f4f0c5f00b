/* fsutil.c - private temporary directories, whole-file reads and writes,
 * recursive removal. */
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common/mem.h"

ek_err_t *ek_private_dir(const char *base, const char *prefix, char **out)
{
    char *t = ek_xasprintf("%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(t)) {
        ek_err_t *err = ek_err_errno(errno, "could not create a private directory under \"%s\"",
                                     base && *base ? base : "/tmp");
        free(t);
        return err;
    }
    chmod(t, 0700);
    *out = t;
    return NULL;
}

ek_err_t *ek_file_write(const char *path, const void *data, size_t len, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", path);
    fchmod(fd, (mode_t)mode); /* an existing file keeps its mode on open */
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return ek_err_errno(e, "could not write \"%s\"", path);
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0)
        return ek_err_errno(errno, "could not write \"%s\"", path);
    return NULL;
}

ek_err_t *ek_file_read(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ek_err_errno(errno, "could not open \"%s\"", path);
    size_t cap = 4096, n = 0;
    char *buf = ek_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                close(fd);
                free(buf);
                return ek_err_new(EK_E_INVALID, "\"%s\" is larger than %zu bytes", path, max);
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = ek_xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return ek_err_errno(e, "could not read \"%s\"", path);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len)
        *len = n;
    return NULL;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = type == FTW_DP ? rmdir(path) : unlink(path);
    return r != 0 && errno != ENOENT ? errno : 0;
}

int ek_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 || errno == ENOENT ? 0 : errno;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* openat(O_NOFOLLOW) one component after the other ("." components
 * skipped, ".." refused): ek_openat_beneath where openat2 is not there. */
static int open_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
    _cleanup_free_ char *copy = ek_xstrdup(rel);
    int cur = dirfd;
    char *save = NULL, *part = strtok_r(copy, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(part, ".") == 0) {
            part = next;
            continue;
        }
        if (strcmp(part, "..") == 0) {
            if (cur != dirfd)
                close(cur);
            errno = EXDEV;
            return -1;
        }
        int fd = next ? openat(cur, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                      : openat(cur, part, flags | O_NOFOLLOW, mode);
        int e = errno;
        if (cur != dirfd)
            close(cur);
        if (fd < 0) {
            errno = e;
            return -1;
        }
        cur = fd;
        part = next;
    }
    if (cur == dirfd) /* rel named the directory itself */
        return openat(dirfd, ".", flags & ~(O_CREAT | O_EXCL));
    return cur;
}

int ek_openat_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {.flags = (uint64_t)flags,
                           .mode = (flags & O_CREAT) ? mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
        return (int)fd;
    return open_walk(dirfd, rel, flags, mode); /* an old kernel, or a seccomp filter */
}

ssize_t ek_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}
