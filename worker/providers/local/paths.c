/* paths.c - where the local provider's files are: the endpoints'
 * directories (checked before use), names that become path components,
 * the destination layout of local.h, the ekman-writer binary to run, and
 * small file-system helpers. A tenant's path is used only when it lies
 * beneath one of the operator's [local] allowed_roots. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "worker/providers/common/tenant_root.h"

ek_err_t *ek_local_path_open(const ek_local_scope_t *sc, const char *path, int flags, int *fd)
{
    return ek_tenant_root_open(sc ? sc->cfg : NULL, "local", "local endpoints",
                               sc && sc->endpoint ? sc->endpoint : "?", path, flags, fd);
}

ek_err_t *ek_local_endpoint_dir(const ek_config_t *cfg, const ek_endpoint_t *ep, bool writable,
                                const char **dir)
{
    const char *name = ep && ep->name ? ep->name : "?";
    const char *path;
    ek_err_t *err;
    if (!ep || !ep->connection_info || !json_object_is_type(ep->connection_info, json_type_object))
        return ek_err_new(EK_E_INVALID, "endpoint '%s': connection_info.path is missing", name);
    if ((err = ek_json_req_string(ep->connection_info, "connection_info", "path", &path)))
        return ek_err_prefix(err, "endpoint '%s'", name);
    if (path[0] != '/')
        return ek_err_new(EK_E_INVALID,
                          "endpoint '%s': connection_info.path \"%s\" must be an absolute path",
                          name, path);
    /* The operator's roots, reached without a link out of them: what a
     * tenant may point an endpoint at. */
    ek_local_scope_t sc = {cfg, name};
    int fd;
    if ((err = ek_local_path_open(&sc, path, O_DIRECTORY | O_RDONLY | O_CLOEXEC, &fd)))
        return err;
    close(fd);
    struct stat st;
    if (stat(path, &st) != 0)
        return ek_err_prefix(ek_err_errno(errno, "cannot use \"%s\"", path), "endpoint '%s'", name);
    if (!S_ISDIR(st.st_mode))
        return ek_err_new(EK_E_INVALID, "endpoint '%s': \"%s\" is not a directory", name, path);
    if (access(path, R_OK | X_OK) != 0)
        return ek_err_prefix(ek_err_errno(errno, "cannot read the directory \"%s\"", path),
                             "endpoint '%s'", name);
    if (writable && access(path, W_OK) != 0)
        return ek_err_prefix(ek_err_errno(errno, "cannot write into the directory \"%s\"", path),
                             "endpoint '%s'", name);
    *dir = path;
    return NULL;
}

ek_err_t *ek_local_task_dirs(const ek_task_ctx_t *ctx, const ek_task_input_t *in, const char **src,
                             const char **dst)
{
    const ek_config_t *cfg = ctx ? ek_task_config(ctx) : NULL;
    ek_err_t *err = NULL;
    if (src && (err = ek_local_endpoint_dir(cfg, in->origin, false, src)))
        return err;
    if (dst && (err = ek_local_endpoint_dir(cfg, in->destination, true, dst)))
        return err;
    return NULL;
}

ek_err_t *ek_local_name_check(const char *name, const char *what)
{
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the %s is empty", what);
    if (strlen(name) > 200)
        return ek_err_new(EK_E_INVALID, "the %s '%.40s...' is longer than 200 bytes", what, name);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == '.')
        return ek_err_new(EK_E_INVALID, "the %s '%s' cannot start with a dot", what, name);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f)
            return ek_err_new(EK_E_INVALID,
                              "the %s '%s' cannot be used as a file name (no '/' or control "
                              "characters)",
                              what, name);
    return NULL;
}

char *ek_local_instance_dir(const char *dest_dir, const char *instance)
{
    return ek_xasprintf("%s/%s", dest_dir, instance);
}

char *ek_local_replica_path(const char *inst_dir, const char *disk_id, const char *suffix)
{
    return ek_xasprintf("%s/disk-%s%s", inst_dir, disk_id, suffix);
}

ek_err_t *ek_local_unlink(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return ek_err_errno(errno, "could not remove \"%s\"", path);
    return NULL;
}

ek_err_t *ek_local_fs_space(const char *path, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0)
        return ek_err_errno(errno, "could not read the free space of \"%s\"", path);
    *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    *total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    return NULL;
}
