/* roots.c - where an ova endpoint may point, and how its files are opened.
 *
 * The operator lists the directories OVAs may come from ([ova]
 * allowed_roots); an endpoint's path must be one of them or lie beneath
 * one. The rule and its openat2(2) RESOLVE_BENEATH resolution are shared
 * with the other providers that read tenant-named paths
 * (worker/providers/common/tenant_root.h); this file applies it to ova
 * endpoints. */
#include "worker/providers/ova/ova.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "worker/providers/common/tenant_root.h"

ek_err_t *ek_ova_open_beneath(int dirfd, const char *rel, int *fd)
{
    int f;
    ek_err_t *err = ek_tenant_open_beneath(dirfd, rel, O_RDONLY, &f);
    if (err)
        return err;
    struct stat st;
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return ek_err_new(EK_E_INVALID, "\"%s\" is not a regular file", rel);
    }
    *fd = f;
    return NULL;
}

ek_err_t *ek_ova_root_open_dir(const ek_config_t *cfg, const char *endpoint, const char *dir,
                               int *dirfd)
{
    return ek_tenant_root_open(cfg, "ova", "OVA sources", endpoint, dir,
                               O_DIRECTORY | O_RDONLY | O_CLOEXEC, dirfd);
}

ek_err_t *ek_ova_endpoint_open(const ek_config_t *cfg, const ek_endpoint_t *ep, int *dirfd)
{
    const char *name = ep && ep->name ? ep->name : "?";
    const char *path;
    if (!ep || !ep->connection_info || !json_object_is_type(ep->connection_info, json_type_object))
        return ek_err_new(EK_E_INVALID, "endpoint '%s': connection_info.path is missing", name);
    ek_err_t *err = ek_json_req_string(ep->connection_info, "connection_info", "path", &path);
    if (err)
        return ek_err_prefix(err, "endpoint '%s'", name);
    return ek_ova_root_open_dir(cfg, name, path, dirfd);
}
