/* tasks.c - the transfer tasks of the local provider other than the data
 * plane (replicate.c) and the replica files (disks.c): validations, instance
 * info, the (empty) source resources, the writer as target resource,
 * shutdown, updates; and the helpers every task file uses.
 *
 * A local source runs nothing: there is no VM to stop, no agent to deploy.
 * These tasks still check what they can (the directory, the domain, its
 * images) so that a transfer fails early with a message that says what to
 * fix, and return exactly the keys their type declares (proto/tasks.c). */
#include "worker/providers/local/local.h"
#include "worker/transfer/target.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "common/mem.h"
#include "common/tenantname.h"
#include "common/process.h"
#include "worker/providers/common/taskutil.h"

/* ---- helpers ------------------------------------------------------------------------- */

ek_err_t *ek_local_info_get(const ek_task_input_t *in, const char *key, json_type type,
                            json_object **out)
{
    return ek_task_info_get(in, key, type, out);
}

json_object *ek_local_volume_find(json_object *vols, const char *disk_id)
{
    return ek_volumes_find(vols, disk_id);
}

ek_err_t *ek_local_environment_check(json_object *env, const char *which)
{
    if (!env || json_object_is_type(env, json_type_null))
        return NULL;
    if (!json_object_is_type(env, json_type_object))
        return ek_err_new(EK_E_INVALID, "the %s environment must be an object", which);
    json_object_object_foreach(env, key, val)
    {
        (void)val;
        return ek_err_new(EK_E_INVALID,
                          "the local provider takes no %s environment options; remove '%s'", which,
                          key);
    }
    return NULL;
}

ek_err_t *ek_local_network_map_check(json_object *export_info, json_object *network_map)
{
    json_object *nics;
    if (!json_object_object_get_ex(export_info, "nics", &nics) ||
        !json_object_is_type(nics, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(nics); i++) {
        json_object *nic = json_object_array_get_idx(nics, i), *net, *mac;
        if (!json_object_object_get_ex(nic, "network_name", &net) || !net)
            return ek_err_new(EK_E_INVALID,
                              "NIC #%zu of the instance is on no network: it "
                              "cannot be mapped",
                              i + 1);
        bool bridge;
        const char *name = json_object_get_string(net);
        if (!ek_network_map_lookup(network_map, name, &bridge)) {
            json_object_object_get_ex(nic, "mac", &mac);
            return ek_err_new(EK_E_INVALID,
                              "network '%s' (NIC %s) is not in the transfer's network_map: map "
                              "it to a destination network",
                              name, mac ? json_object_get_string(mac) : "without MAC");
        }
    }
    return NULL;
}

/* The source domain of the task's instance, images probed. */
static ek_err_t *source_domain(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                               ek_local_domain_t **out)
{
    const char *src;
    ek_err_t *err = ek_local_task_dirs(ctx, in, &src, NULL);
    if (err)
        return err;
    ek_local_scope_t sc = {ek_task_config(ctx), in->origin->name};
    return ek_local_domain_find(&sc, src, in->instance, true, out);
}

/* ---- source tasks -------------------------------------------------------------------- */

ek_err_t *ek_local_task_validate_source_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                               json_object *result)
{
    ek_local_domain_t *d;
    ek_err_t *err = ek_local_environment_check(in->origin->environment, "source");
    if (err || (err = source_domain(ctx, in, &d)))
        return err;
    if (d->n_disks == 0)
        err = ek_err_new(EK_E_INVALID, "instance '%s' (\"%s\") has no disk to transfer", d->name,
                         d->xml_path);
    for (size_t i = 0; i < d->n_disks && !err; i++)
        if (access(d->disks[i].path, R_OK) != 0)
            err = ek_err_errno(errno, "disk '%s': cannot read \"%s\"", d->disks[i].id,
                               d->disks[i].path);
    if (!err)
        ek_task_event(ctx, "INFO", "instance '%s': %zu disk(s), %zu NIC(s), from \"%s\"", d->name,
                      d->n_disks, d->n_nics, d->xml_path);
    ek_local_domain_free(d);
    (void)result;
    return err;
}

ek_err_t *ek_local_task_get_instance_info(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result)
{
    ek_local_domain_t *d;
    ek_err_t *err = source_domain(ctx, in, &d);
    if (err)
        return err;
    uint64_t total = 0;
    for (size_t i = 0; i < d->n_disks; i++)
        total += d->disks[i].size;
    char sz[32];
    ek_task_event(ctx, "INFO",
                  "instance '%s': %d vCPU(s), %llu MiB, %s firmware, %zu disk(s) of "
                  "%s in all",
                  d->name, d->vcpus, (unsigned long long)d->memory_mb, d->firmware, d->n_disks,
                  ek_human_size(total, sz));
    json_object_object_add(result, "export_info", ek_local_domain_export_info(d));
    ek_local_domain_free(d);
    return NULL;
}

ek_err_t *ek_local_task_deploy_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    const char *src;
    ek_err_t *err = ek_local_task_dirs(ctx, in, &src, NULL);
    if (err)
        return err;
    (void)ctx;
    json_object *conn = json_object_new_object();
    json_object_object_add(conn, "kind", json_object_new_string("local"));
    json_object_object_add(result, "source_resources", json_object_new_object());
    json_object_object_add(result, "source_resources_connection_info", conn);
    return NULL;
}

ek_err_t *ek_local_task_delete_source_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    (void)ctx;
    (void)in;
    json_object_object_add(result, "source_resources", json_object_new_object());
    json_object_object_add(result, "source_resources_connection_info", json_object_new_object());
    return NULL;
}

ek_err_t *ek_local_task_shutdown_instance(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                          json_object *result)
{
    ek_local_domain_t *d;
    ek_err_t *err = source_domain(ctx, in, &d);
    if (err)
        return err;
    ek_task_event(ctx, "INFO",
                  "instance '%s' is a domain XML file (\"%s\"): nothing runs, nothing to shut "
                  "down",
                  d->name, d->xml_path);
    ek_local_domain_free(d);
    (void)result;
    return NULL;
}

ek_err_t *ek_local_task_delete_source_snapshots(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    const char *src;
    ek_err_t *err = ek_local_task_dirs(ctx, in, &src, NULL);
    if (!err)
        ek_task_event(ctx, "INFO", "the local source takes no snapshots: nothing to delete");
    (void)result;
    return err;
}

ek_err_t *ek_local_task_update_source(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                      json_object *result)
{
    const char *src;
    (void)ctx;
    (void)result;
    ek_err_t *err = ek_local_task_dirs(ctx, in, &src, NULL);
    return err ? err : ek_local_environment_check(in->origin->environment, "source");
}

/* ---- destination tasks --------------------------------------------------------------- */

/* What every destination validation checks. */
static ek_err_t *check_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                   json_object **export_info)
{
    const char *dst;
    json_object *disks;
    ek_err_t *err;
    if ((err = ek_local_task_dirs(ctx, in, NULL, &dst)) ||
        (err = ek_local_environment_check(in->destination->environment, "destination")) ||
        (err = ek_local_name_check(in->instance, "instance name")) ||
        (err = ek_local_info_get(in, "export_info", json_type_object, export_info)) ||
        (err = ek_json_req_array(*export_info, "export_info", "disks", &disks)))
        return err;
    uint64_t total = 0;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        json_object *d = json_object_array_get_idx(disks, i);
        const char *id;
        int64_t size;
        if ((err = ek_json_req_string(d, "export_info.disks[]", "id", &id)) ||
            (err = ek_json_opt_int(d, "export_info.disks[]", "size_bytes", 0, &size)) ||
            (err = ek_tenant_name_check(id, "disk id")))
            return err;
        total += (uint64_t)(size > 0 ? size : 0);
    }
    if ((err = ek_local_network_map_check(*export_info, in->destination->network_map)))
        return err;
    uint64_t free_bytes = 0, total_bytes = 0;
    ek_err_t *space = ek_local_fs_space(dst, &free_bytes, &total_bytes);
    if (space)
        ek_err_free(space); /* only a hint: the copy tells if space runs out */
    else if (free_bytes < total) {
        char f[32], t[32];
        ek_task_event(ctx, "WARNING",
                      "\"%s\" has %s free and the disks hold up to %s: the replicas are sparse, "
                      "so this is enough only if the disks are mostly empty",
                      dst, ek_human_size(free_bytes, f), ek_human_size(total, t));
    }
    return NULL;
}

ek_err_t *ek_local_task_validate_destination_inputs(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                    json_object *result)
{
    json_object *export_info;
    (void)result;
    return check_destination(ctx, in, &export_info);
}

ek_err_t *ek_local_task_update_destination(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                           json_object *result)
{
    json_object *export_info;
    (void)result;
    return check_destination(ctx, in, &export_info);
}

ek_err_t *ek_local_task_deploy_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    const char *dst;
    json_object *vols;
    ek_err_t *err;
    if ((err = ek_local_task_dirs(ctx, in, NULL, &dst)) ||
        (err = ek_local_name_check(in->instance, "instance name")) ||
        (err = ek_local_info_get(in, "volumes_info", json_type_array, &vols)))
        return err;
    _cleanup_free_ char *dir = ek_local_instance_dir(dst, in->instance);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ek_err_new(EK_E_CONFLICT,
                          "\"%s\" does not exist: DEPLOY_TRANSFER_DISKS must run "
                          "first",
                          dir);
    _cleanup_free_ char *writer = NULL;
    if ((err = ek_writer_binary(&writer)))
        return err;
    /* The writer may open only this instance's replicas. The worker that
     * connects runs its own ekman-writer (worker/transfer/target.c): the
     * message names the directory, never a command. */
    json_object *copy = NULL;
    if (json_object_deep_copy(vols, &copy, NULL) != 0)
        return ek_err_new(EK_E_INTERNAL, "could not copy volumes_info");
    json_object *res = json_object_new_object();
    json_object_object_add(res, "kind", json_object_new_string("local"));
    json_object_object_add(res, "directory", json_object_new_string(dir));
    json_object *conn = json_object_new_object();
    json_object_object_add(conn, "kind", json_object_new_string("exec"));
    json_object_object_add(conn, "allow_path", json_object_new_string(dir));
    json_object_object_add(result, "volumes_info", copy);
    json_object_object_add(result, "target_resources", res);
    json_object_object_add(result, "target_resources_connection_info", conn);
    ek_task_event(ctx, "INFO", "the replicas of '%s' are written by %s on this worker",
                  in->instance, writer);
    return NULL;
}

ek_err_t *ek_local_task_delete_target_resources(ek_task_ctx_t *ctx, const ek_task_input_t *in,
                                                json_object *result)
{
    (void)ctx;
    (void)in;
    /* the writers ran per connection and are gone with them */
    json_object_object_add(result, "target_resources", json_object_new_object());
    json_object_object_add(result, "target_resources_connection_info", json_object_new_object());
    return NULL;
}
