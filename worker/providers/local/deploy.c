/* deploy.c - deploying a replica on a local destination: the deployed VM
 * is DST/<instance>/<instance>.xml, a libvirt domain, and its disks in
 * DST/<instance>/deployed/.
 *
 * DEPLOY_INSTANCE_RESOURCES gives the VM its disks by renaming files, which
 * costs nothing: with clone_disks the clones CREATE_TRANSFER_DISK_SNAPSHOTS
 * made (the replicas stay the transfer's); without, the replicas themselves
 * (the transfer then forgets them and the snapshots are what a rollback
 * restores). FINALIZE_INSTANCE_DEPLOYMENT writes the domain XML, never over
 * an existing one. CLEANUP_FAILED_INSTANCE_DEPLOYMENT undoes both: clones
 * are removed, replicas go back where they were.
 *
 * OS morphing needs the OS-morphing engine, which the local provider does
 * not have yet: OS_MORPHING fails and says so, rather than pretending. */
#include "worker/providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/tenantname.h"

typedef struct deploy_paths {
    char *dir, *deployed, *xml;
} deploy_paths_t;

static void paths_release(deploy_paths_t *p)
{
    free(p->dir);
    free(p->deployed);
    free(p->xml);
}

static ek_err_t *paths_get(ek_task_ctx_t *ctx, const ek_task_input_t *in, deploy_paths_t *p)
{
    const char *dst;
    ek_err_t *err;
    memset(p, 0, sizeof(*p));
    if ((err = ek_local_task_dirs(ctx, in, NULL, &dst)) ||
        (err = ek_local_name_check(in->instance, "instance name")))
        return err;
    p->dir = ek_local_instance_dir(dst, in->instance);
    p->deployed = ek_xasprintf("%s/deployed", p->dir);
    p->xml = ek_xasprintf("%s/%s.xml", p->dir, in->instance);
    return NULL;
}

static ek_err_t *no_deployed_vm(const deploy_paths_t *p, const char *instance)
{
    if (access(p->xml, F_OK) == 0)
        return ek_err_new(EK_E_CONFLICT,
                          "instance '%s' is already deployed (\"%s\"): remove that VM (its XML "
                          "and \"%s\") to deploy it again",
                          instance, p->xml, p->deployed);
    return NULL;
}

ek_err_t *ek_local_task_validate_deployment_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                   json_object *result)
{
    deploy_paths_t p;
    json_object *export_info, *disks, *vols = NULL;
    ek_err_t *err;
    (void)result;
    if ((err = paths_get(ctx, in, &p)))
        return err;
    if ((err = ek_local_environment_check(in->destination->environment, "destination")) ||
        (err = ek_local_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = ek_local_network_map_check(export_info, in->destination->network_map)) ||
        (err = no_deployed_vm(&p, in->instance)))
        goto out;
    if (in->task_info)
        json_object_object_get_ex(in->task_info, "volumes_info", &vols);
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        const char *id;
        if ((err = ek_json_req_string(json_object_array_get_idx(disks, i), "export_info.disks[]",
                                      "id", &id)) ||
            (err = ek_tenant_name_check(id, "disk id")))
            break;
        _cleanup_free_ char *path = ek_local_replica_path(p.dir, id, ".img");
        if (!ek_local_volume_find(vols, id) || access(path, R_OK) != 0)
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s' of '%s' has no replica on the destination: execute the "
                             "transfer (it must complete once) before deploying",
                             id, in->instance);
    }
    if (!err)
        ek_task_event(ctx, "INFO", "'%s' will be deployed as \"%s\"", in->instance, p.xml);
out:
    paths_release(&p);
    return err;
}

/* Renames the files of moves[0..n) back (rollback of a partial deploy). */
static void moves_undo(char *(*moves)[2], size_t n)
{
    for (size_t i = n; i-- > 0;)
        rename(moves[i][1], moves[i][0]);
}

ek_err_t *ek_local_task_deploy_instance_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    deploy_paths_t p;
    json_object *export_info, *disks, *vols;
    ek_err_t *err;
    if ((err = paths_get(ctx, in, &p)))
        return err;
    if ((err = ek_local_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_local_info_get(in, "volumes_info", json_type_array, &vols)) ||
        (err = ek_json_req_array(export_info, "export_info", "disks", &disks)) ||
        (err = no_deployed_vm(&p, in->instance))) {
        paths_release(&p);
        return err;
    }
    if (mkdir(p.deployed, 0700) != 0 && errno != EEXIST) {
        err = ek_err_errno(errno, "could not create \"%s\"", p.deployed);
        paths_release(&p);
        return err;
    }
    bool clone = in->clone_disks;
    size_t n = json_object_array_length(disks), moved = 0;
    char *(*moves)[2] = ek_xcalloc(n ? n : 1, sizeof(*moves));
    json_object *out_disks = json_object_new_array();
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *id, *bus;
        int64_t size, boot;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &id)) ||
            (err = ek_json_opt_string(d, "export_info.disks[]", "bus", "virtio", &bus)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "boot_order", 0, &boot)) ||
            (err = ek_tenant_name_check(id, "disk id")))
            break;
        json_object *vol = ek_local_volume_find(vols, id);
        if (!vol) {
            err = ek_err_new(EK_E_CONFLICT, "disk '%s' has no replica in volumes_info", id);
            break;
        }
        if (clone && !json_object_object_get_ex(vol, "snapshot_path", NULL)) {
            err = ek_err_new(EK_E_CONFLICT,
                             "disk '%s' has no clone: CREATE_TRANSFER_DISK_SNAPSHOTS must run "
                             "first",
                             id);
            break;
        }
        char *from = ek_local_replica_path(p.dir, id, clone ? ".snap.img" : ".img");
        char *to = ek_local_replica_path(p.deployed, id, ".img");
        if (access(to, F_OK) == 0) {
            /* no XML: a failed deployment whose cleanup did not run left it */
            ek_task_event(ctx, "WARNING", "replacing \"%s\", left by an earlier deployment", to);
        }
        if (rename(from, to) != 0) {
            err = ek_err_errno(errno, "disk '%s': could not move \"%s\" to \"%s\"", id, from, to);
            free(from);
            free(to);
            break;
        }
        moves[moved][0] = from;
        moves[moved][1] = to;
        moved++;
        json_object *x = json_object_new_object();
        json_object_object_add(x, "disk_id", json_object_new_string(id));
        json_object_object_add(x, "path", json_object_new_string(to));
        json_object_object_add(x, "origin", json_object_new_string(from));
        json_object_object_add(x, "bus", json_object_new_string(bus));
        json_object_object_add(x, "size_bytes", json_object_new_int64(size));
        if (boot > 0)
            json_object_object_add(x, "boot_order", json_object_new_int((int)boot));
        json_object_array_add(out_disks, x);
    }
    if (err) {
        moves_undo(moves, moved);
        json_object_put(out_disks);
    } else {
        json_object *info = json_object_new_object();
        json_object_object_add(info, "instance_name", json_object_new_string(in->instance));
        json_object_object_add(info, "directory", json_object_new_string(p.dir));
        json_object_object_add(info, "deployed_directory", json_object_new_string(p.deployed));
        json_object_object_add(info, "xml_path", json_object_new_string(p.xml));
        json_object_object_add(info, "clone_disks", json_object_new_boolean(clone));
        json_object_object_add(info, "disks", out_disks);
        json_object_object_add(result, "instance_deployment_info", info);
        ek_task_event(
            ctx, "INFO", "%zu disk(s) of '%s' are in \"%s\" (%s)", moved, in->instance, p.deployed,
            clone ? "clones; the replicas stay the transfer's" : "the replicas themselves");
    }
    for (size_t i = 0; i < moved; i++) {
        free(moves[i][0]);
        free(moves[i][1]);
    }
    free(moves);
    paths_release(&p);
    return err;
}

ek_err_t *ek_local_task_deploy_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result)
{
    json_object *info;
    ek_err_t *err = ek_local_info_get(in, "instance_deployment_info", json_type_object, &info);
    if (err)
        return err;
    json_object *disks = NULL, *copy = NULL;
    json_object_object_get_ex(info, "disks", &disks);
    if (disks && json_object_deep_copy(disks, &copy, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy the deployed disks");
    json_object *morph = json_object_new_object();
    json_object_object_add(morph, "disks", copy ? copy : json_object_new_array());
    json_object *conn = json_object_new_object();
    json_object_object_add(conn, "kind", json_object_new_string("none"));
    json_object_object_add(result, "os_morphing_resources", json_object_new_object());
    json_object_object_add(result, "osmorphing_info", morph);
    json_object_object_add(result, "osmorphing_connection_info", conn);
    ek_task_event(ctx, "WARNING",
                  "the local provider has no OS-morphing worker yet: OS morphing will fail "
                  "(deploy with skip_os_morphing)");
    return NULL;
}

ek_err_t *ek_local_task_os_morphing(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                    json_object *result)
{
    (void)ctx;
    (void)in;
    (void)result;
    return ek_err_new(EK_E_UNAVAILABLE, "OS morphing is not available for the local provider "
                                        "yet: deploy with skip_os_morphing");
}

ek_err_t *ek_local_task_delete_os_morphing_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                     json_object *result)
{
    (void)ctx;
    (void)in;
    json_object_object_add(result, "os_morphing_resources", json_object_new_object());
    json_object_object_add(result, "osmorphing_connection_info", json_object_new_object());
    return NULL;
}

/* Writes text to path, failing when path exists (link() does not replace). */
static ek_err_t *write_new_file(const char *path, const char *text)
{
    _cleanup_free_ char *tmp = ek_xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ek_err_errno(errno, "could not create \"%s\"", tmp);
    size_t len = strlen(text);
    const char *p = text;
    ek_err_t *err = NULL;
    while (len && !err) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            err = ek_err_errno(n < 0 ? errno : EIO, "could not write \"%s\"", tmp);
        else {
            p += n;
            len -= (size_t)n;
        }
    }
    if (!err && fsync(fd) != 0)
        err = ek_err_errno(errno, "could not sync \"%s\"", tmp);
    close(fd);
    if (!err && link(tmp, path) != 0)
        err = errno == EEXIST ? ek_err_new(EK_E_CONFLICT, "\"%s\" already exists", path)
                              : ek_err_errno(errno, "could not write \"%s\"", path);
    unlink(tmp);
    return err;
}

ek_err_t *ek_local_task_finalize_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                            json_object *result)
{
    json_object *info, *export_info, *disks;
    const char *xml_path, *name;
    ek_err_t *err;
    if ((err = ek_local_info_get(in, "instance_deployment_info", json_type_object, &info)) ||
        (err = ek_local_info_get(in, "export_info", json_type_object, &export_info)) ||
        (err = ek_json_req_string(info, "instance_deployment_info", "xml_path", &xml_path)) ||
        (err = ek_json_req_string(info, "instance_deployment_info", "instance_name", &name)) ||
        (err = ek_json_req_array(info, "instance_deployment_info", "disks", &disks)))
        return err;
    size_t n = json_object_array_length(disks);
    ek_local_deployed_disk_t *dd = ek_xcalloc(n ? n : 1, sizeof(*dd));
    for (size_t i = 0; i < n && !err; i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        int64_t boot;
        if ((err =
                 ek_json_req_string(d, "instance_deployment_info.disks[]", "disk_id", &dd[i].id)) ||
            (err =
                 ek_json_req_string(d, "instance_deployment_info.disks[]", "path", &dd[i].path)) ||
            (err = ek_json_opt_string(d, "instance_deployment_info.disks[]", "bus", "virtio",
                                      &dd[i].bus)) ||
            (err = ek_json_opt_int(d, "instance_deployment_info.disks[]", "boot_order", 0, &boot)))
            break;
        dd[i].boot_order = (int)boot;
        if (access(dd[i].path, R_OK) != 0)
            err = ek_err_errno(errno, "deployed disk '%s' (\"%s\")", dd[i].id, dd[i].path);
    }
    char *xml = NULL;
    if (!err)
        err = ek_local_domain_xml_build(export_info, dd, n, in->destination->network_map, &xml);
    if (!err)
        err = write_new_file(xml_path, xml);
    free(xml);
    if (err) {
        free(dd);
        return err;
    }
    json_object *tr = json_object_new_object();
    json_object_object_add(tr, "instance_name", json_object_new_string(name));
    json_object_object_add(tr, "xml_path", json_object_new_string(xml_path));
    json_object *out_disks = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_new_object();
        struct stat st;
        json_object_object_add(x, "disk_id", json_object_new_string(dd[i].id));
        json_object_object_add(x, "path", json_object_new_string(dd[i].path));
        json_object_object_add(x, "format", json_object_new_string("raw"));
        if (stat(dd[i].path, &st) == 0)
            json_object_object_add(x, "size_bytes", json_object_new_int64(st.st_size));
        json_object_array_add(out_disks, x);
    }
    json_object_object_add(tr, "disks", out_disks);
    json_object *v;
    if (json_object_object_get_ex(export_info, "num_cpu", &v))
        json_object_object_add(tr, "num_cpu", json_object_get(v));
    if (json_object_object_get_ex(export_info, "memory_mb", &v))
        json_object_object_add(tr, "memory_mb", json_object_get(v));
    if (json_object_object_get_ex(export_info, "firmware", &v))
        json_object_object_add(tr, "firmware", json_object_get(v));
    json_object_object_add(result, "transfer_result", tr);
    ek_task_event(ctx, "INFO", "'%s' deployed: \"%s\" (define it with virsh define)", name,
                  xml_path);
    free(dd);
    return NULL;
}

ek_err_t *ek_local_task_cleanup_failed_deployment(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                  json_object *result)
{
    json_object *info, *disks;
    const char *dir, *deployed, *xml;
    bool clone;
    ek_err_t *err;
    (void)result;
    if (!in->task_info ||
        !json_object_object_get_ex(in->task_info, "instance_deployment_info", &info) ||
        !json_object_is_type(info, json_type_object)) {
        ek_task_event(ctx, "INFO", "no deployed resources to clean up");
        return NULL;
    }
    deploy_paths_t p;
    if ((err = paths_get(ctx, in, &p)))
        return err;
    if ((err = ek_json_req_string(info, "instance_deployment_info", "directory", &dir)) ||
        (err = ek_json_req_string(info, "instance_deployment_info", "deployed_directory",
                                  &deployed)) ||
        (err = ek_json_req_string(info, "instance_deployment_info", "xml_path", &xml)) ||
        (err = ek_json_opt_bool(info, "instance_deployment_info", "clone_disks", true, &clone)) ||
        (err = ek_json_req_array(info, "instance_deployment_info", "disks", &disks)))
        goto out;
    /* Only the files this instance's layout names are touched. */
    if (strcmp(dir, p.dir) != 0 || strcmp(deployed, p.deployed) != 0 || strcmp(xml, p.xml) != 0) {
        err = ek_err_new(EK_E_INVALID, "instance_deployment_info is not for \"%s\"", p.dir);
        goto out;
    }
    /* The XML first: no VM may point at disks that go. DEPLOY_INSTANCE_RESOURCES
     * checked that none existed, so one there now is this deployment's. */
    if ((err = ek_local_unlink(p.xml)))
        goto out;
    for (size_t i = 0; i < json_object_array_length(disks) && !err; i++) {
        const char *id;
        if ((err = ek_json_req_string(json_object_array_get_idx(disks, i),
                                      "instance_deployment_info.disks[]", "disk_id", &id)) ||
            (err = ek_tenant_name_check(id, "disk id")))
            break;
        _cleanup_free_ char *path = ek_local_replica_path(p.deployed, id, ".img");
        _cleanup_free_ char *origin = ek_local_replica_path(p.dir, id, ".img");
        if (clone) {
            err = ek_local_unlink(path);
        } else if (access(path, F_OK) == 0 && access(origin, F_OK) != 0) {
            if (rename(path, origin) != 0)
                err = ek_err_errno(errno, "could not move \"%s\" back to \"%s\"", path, origin);
            else
                ek_task_event(ctx, "INFO", "disk '%s': the replica is back at \"%s\"", id, origin);
        } else if (access(path, F_OK) == 0) {
            ek_task_event(ctx, "WARNING", "disk '%s': \"%s\" exists: \"%s\" is left in place", id,
                          origin, path);
        }
    }
    if (!err && rmdir(p.deployed) != 0 && errno != ENOENT && errno != ENOTEMPTY)
        ek_task_event(ctx, "WARNING", "could not remove \"%s\": %s", p.deployed, strerror(errno));
    if (!err)
        ek_task_event(ctx, "INFO", "the failed deployment of '%s' was cleaned up", in->instance);
out:
    paths_release(&p);
    return err;
}
