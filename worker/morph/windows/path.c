/* path.c - case-insensitive lookups on a mounted NTFS volume (path.h). */
#include "worker/morph/windows/path.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/mem.h"
#include "common/strbuf.h"

/* The entry of dir named name, ignoring case (an exact match wins); malloc'ed
 * or NULL. */
static char *entry_find(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, name) == 0) {
            free(found);
            found = ek_xstrdup(e->d_name);
            break;
        }
        if (!found && strcasecmp(e->d_name, name) == 0)
            found = ek_xstrdup(e->d_name);
    }
    closedir(d);
    return found;
}

static ek_err_t *walk(const char *base, const char *rel, bool create, ek_win_undo_t *undo,
                      char **out)
{
    char *cur = ek_xstrdup(base);
    _cleanup_free_ char *copy = ek_xstrdup(rel);
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        char *name = entry_find(cur, part);
        char *next = ek_xasprintf("%s/%s", cur, name ? name : part);
        bool missing = !name;
        free(name);
        if (missing && !create) {
            ek_err_t *err = ek_err_new(EK_E_NOTFOUND, "\"%s\" has no \"%s\" (looked for \"%s\")",
                                       cur, part, rel);
            free(cur);
            free(next);
            return err;
        }
        if (missing) {
            if (mkdir(next, 0755) < 0) {
                ek_err_t *err = ek_err_errno(errno, "could not create the directory \"%s\"", next);
                free(cur);
                free(next);
                return err;
            }
            if (undo)
                ek_win_undo_add(undo, next);
        }
        if (create) {
            struct stat st;
            if (stat(next, &st) < 0 || !S_ISDIR(st.st_mode)) {
                ek_err_t *err = ek_err_new(EK_E_IO, "\"%s\" exists but is not a directory", next);
                free(cur);
                free(next);
                return err;
            }
        }
        free(cur);
        cur = next;
    }
    *out = cur;
    return NULL;
}

ek_err_t *ek_win_path_find(const char *base, const char *rel, char **out)
{
    return walk(base, rel, false, NULL, out);
}

bool ek_win_path_exists(const char *base, const char *rel)
{
    char *p = NULL;
    ek_err_t *err = walk(base, rel, false, NULL, &p);
    bool found = !err;
    free(p);
    ek_err_free(err);
    return found;
}

ek_err_t *ek_win_path_mkdirs(const char *base, const char *rel, ek_win_undo_t *undo, char **out)
{
    return walk(base, rel, true, undo, out);
}

void ek_win_undo_add(ek_win_undo_t *u, const char *path)
{
    if (u->n == u->alloc) {
        u->alloc = u->alloc ? 2 * u->alloc : 16;
        u->paths = ek_xrealloc(u->paths, u->alloc * sizeof(*u->paths));
    }
    u->paths[u->n++] = ek_xstrdup(path);
}

void ek_win_undo_run(ek_win_undo_t *u)
{
    while (u->n) {
        char *p = u->paths[--u->n];
        if (unlink(p) < 0) /* a directory (it is empty by now) */
            rmdir(p);
        free(p);
    }
    ek_win_undo_release(u);
}

void ek_win_undo_release(ek_win_undo_t *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->paths[i]);
    free(u->paths);
    *u = (ek_win_undo_t)EK_WIN_UNDO_INIT;
}

static ek_err_t *write_all(int fd, const char *p, size_t len, const char *dst)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ek_err_errno(errno, "could not write \"%s\"", dst);
        p += n;
        len -= (size_t)n;
    }
    return NULL;
}

/* Opens dst for writing, noting in undo whether it is new. */
static ek_err_t *open_new(const char *dst, ek_win_undo_t *undo, int *fd)
{
    bool existed = access(dst, F_OK) == 0;
    *fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", dst);
    if (!existed && undo)
        ek_win_undo_add(undo, dst);
    return NULL;
}

static ek_err_t *close_checked(int fd, const char *dst, ek_err_t *err)
{
    if (close(fd) < 0 && !err)
        err = ek_err_errno(errno, "could not write \"%s\"", dst);
    return err;
}

ek_err_t *ek_win_file_copy(const char *src, const char *dst, ek_win_undo_t *undo)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ek_err_errno(errno, "could not open \"%s\"", src);
    int out;
    ek_err_t *err = open_new(dst, undo, &out);
    if (err) {
        close(in);
        return err;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = ek_err_errno(errno, "could not read \"%s\"", src);
            break;
        }
        if (n == 0 || (err = write_all(out, buf, (size_t)n, dst)))
            break;
    }
    close(in);
    return close_checked(out, dst, err);
}

ek_err_t *ek_win_file_write_crlf(const char *dst, const char *text, ek_win_undo_t *undo)
{
    ek_strbuf_t sb = EK_STRBUF_INIT;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r'))
            ek_strbuf_addch(&sb, '\r');
        ek_strbuf_addch(&sb, *p);
    }
    int fd;
    ek_err_t *err = open_new(dst, undo, &fd);
    if (!err)
        err = close_checked(fd, dst, write_all(fd, sb.buf, sb.len, dst));
    ek_strbuf_release(&sb);
    return err;
}
