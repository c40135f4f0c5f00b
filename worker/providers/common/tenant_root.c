/* tenant_root.c - opening tenant-named paths beneath the operator's
 * allowed roots (tenant_root.h). */
#include "worker/providers/common/tenant_root.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include "common/fsutil.h"
#include "common/mem.h"

/* A relative path that may be opened beneath a directory: not empty, not
 * absolute, no ".." component. */
static ek_err_t *rel_check(const char *rel)
{
    if (!rel || !*rel)
        return ek_err_new(EK_E_INVALID, "an empty file name");
    if (rel[0] == '/')
        return ek_err_new(EK_E_INVALID,
                          "\"%s\" is an absolute path: only names relative to the endpoint "
                          "directory are allowed",
                          rel);
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && strncmp(p, "..", 2) == 0)
            return ek_err_new(EK_E_INVALID, "\"%s\" names a parent directory (\"..\"): refused",
                              rel);
        p += n;
        while (*p == '/')
            p++;
    }
    return NULL;
}

static ek_err_t *open_error(int e, const char *rel)
{
    if (e == EXDEV || e == ELOOP)
        return ek_err_new(EK_E_FORBIDDEN,
                          "\"%s\" leads out of the allowed directory (a symbolic link or \"..\"): "
                          "refused; copy the file in instead of linking it",
                          rel);
    return ek_err_errno(e, "cannot open \"%s\"", rel);
}

ek_err_t *ek_tenant_open_beneath(int dirfd, const char *rel, int flags, int *fd)
{
    ek_err_t *err = rel_check(rel);
    if (err)
        return err;
    int f = ek_openat_beneath(dirfd, rel, flags, 0);
    if (f < 0)
        return open_error(errno, rel);
    *fd = f;
    return NULL;
}

/* Whether path equals root or lies beneath it (lexically; both absolute,
 * trailing slashes ignored). *rest points at the part below root. */
static bool under_root(const char *path, const char *root, const char **rest)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n == 1 && root[0] == '/') {
        *rest = path + 1;
        while (**rest == '/')
            (*rest)++;
        return true;
    }
    if (strncmp(path, root, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return false;
    *rest = path + n;
    while (**rest == '/')
        (*rest)++;
    return true;
}

ek_err_t *ek_tenant_root_open(const ek_config_t *cfg, const char *section, const char *kind,
                              const char *endpoint, const char *path, int flags, int *fd)
{
    const ek_strlist_t *roots = cfg ? ek_config_get_list(cfg, section, "allowed_roots") : NULL;
    if (!roots || roots->n == 0)
        return ek_err_new(EK_E_FORBIDDEN,
                          "endpoint '%s': no directory is allowed for %s: the operator must list "
                          "them in the workers' ekman.conf ([%s] allowed_roots = /srv/%s, ...)",
                          endpoint, kind, section, section);
    if (!path || path[0] != '/')
        return ek_err_new(EK_E_INVALID, "endpoint '%s': \"%s\" must be an absolute path", endpoint,
                          path ? path : "");
    for (size_t i = 0; i < roots->n; i++) {
        const char *root = roots->items[i], *rest;
        if (!root || root[0] != '/' || !under_root(path, root, &rest))
            continue;
        if (!*rest) {
            int f = open(root, flags);
            if (f < 0)
                return ek_err_prefix(ek_err_errno(errno, "cannot open \"%s\"", root),
                                     "endpoint '%s'", endpoint);
            *fd = f;
            return NULL;
        }
        int rfd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (rfd < 0)
            return ek_err_prefix(ek_err_errno(errno, "cannot open the allowed root \"%s\"", root),
                                 "endpoint '%s'", endpoint);
        ek_err_t *err = rel_check(rest);
        int f = err ? -1 : ek_openat_beneath(rfd, rest, flags, 0);
        int e = errno;
        close(rfd);
        if (err)
            return ek_err_prefix(err, "endpoint '%s'", endpoint);
        if (f < 0)
            return ek_err_prefix(open_error(e, path), "endpoint '%s'", endpoint);
        *fd = f;
        return NULL;
    }
    return ek_err_new(EK_E_FORBIDDEN,
                      "endpoint '%s': \"%s\" is not under any of the directories the operator "
                      "allows for %s ([%s] allowed_roots): move the files there or ask the "
                      "operator to add the directory",
                      endpoint, path, kind, section);
}
