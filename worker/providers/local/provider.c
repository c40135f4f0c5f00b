/* provider.c - the `local` provider's table (worker/provider.h) and its
 * endpoint calls: the instances of a source directory are the domains of
 * its *.xml files; its networks are the ones those domains name; its
 * storage is the directory itself. Capabilities: proto/providers.c. */
#include "worker/providers/local/local.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/json.h"
#include "common/mem.h"
#include "proto/providers.h"

/* A query argument that may come as a string (from the URL) or a number. */
static const char *arg_string(json_object *args, const char *key)
{
    json_object *v;
    if (!args || !json_object_object_get_ex(args, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

/* The endpoint's directory, beneath the operator's [local] allowed_roots. */
static ek_err_t *ep_dir(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, const char **dir)
{
    return ek_local_endpoint_dir(ctx ? ek_task_config(ctx) : NULL, ep, false, dir);
}

static ek_local_scope_t ep_scope(ek_task_ctx_t *ctx, const ek_endpoint_t *ep)
{
    return (ek_local_scope_t){ctx ? ek_task_config(ctx) : NULL, ep && ep->name ? ep->name : "?"};
}

static ek_err_t *ep_validate_connection(ek_task_ctx_t *ctx, const ek_endpoint_t *ep,
                                        json_object *args, json_object **out)
{
    const char *dir;
    (void)args;
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err)
        return err;
    *out = json_object_new_object();
    return NULL;
}

/* The images' sizes where they can be read; a domain whose image is
 * missing is still listed, with the error on the disk. */
static json_object *instance_json(const ek_local_scope_t *sc, ek_local_domain_t *d)
{
    json_object *o = ek_local_domain_export_info(d);
    json_object *disks = json_object_object_get(o, "disks");
    for (size_t i = 0; i < d->n_disks; i++) {
        const char *fmt;
        uint64_t size;
        ek_err_t *err = ek_local_image_probe(sc, d->disks[i].path, d->disks[i].format, &fmt, &size);
        json_object *x = json_object_array_get_idx(disks, i);
        if (err) {
            json_object_object_add(x, "error", json_object_new_string(err->message));
            ek_err_free(err);
            continue;
        }
        json_object_object_add(x, "format", json_object_new_string(fmt));
        json_object_object_add(x, "size_bytes", json_object_new_int64((int64_t)size));
    }
    return o;
}

static ek_err_t *ep_list_instances(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                   json_object **out)
{
    const char *dir, *pattern = arg_string(args, "name"), *marker = arg_string(args, "marker");
    const char *limit_s = arg_string(args, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
    ek_local_domain_t **v;
    size_t n;
    ek_local_scope_t sc = ep_scope(ctx, ep);
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err || (err = ek_local_domain_list(&sc, dir, false, &v, &n)))
        return err;
    json_object *list = json_object_new_array();
    bool past_marker = !marker || !*marker;
    for (size_t i = 0; i < n; i++) {
        ek_local_domain_t *d = v[i];
        if (!past_marker) {
            past_marker = strcmp(d->name, marker) == 0;
        } else if ((!pattern || !*pattern || strcasestr(d->name, pattern)) &&
                   (limit <= 0 || json_object_array_length(list) < (size_t)limit)) {
            json_object_array_add(list, instance_json(&sc, d));
        }
        ek_local_domain_free(d);
    }
    free(v);
    *out = list;
    return NULL;
}

static ek_err_t *ep_get_instance(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                 json_object **out)
{
    const char *dir, *name = arg_string(args, "name");
    ek_local_domain_t *d;
    ek_local_scope_t sc = ep_scope(ctx, ep);
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the instance name is missing");
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err || (err = ek_local_domain_find(&sc, dir, name, false, &d)))
        return err;
    *out = instance_json(&sc, d);
    ek_local_domain_free(d);
    return NULL;
}

static ek_err_t *ep_list_networks(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                  json_object **out)
{
    const char *dir;
    ek_local_domain_t **v;
    size_t n;
    ek_local_scope_t sc = ep_scope(ctx, ep);
    (void)args;
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err || (err = ek_local_domain_list(&sc, dir, false, &v, &n)))
        return err;
    json_object *seen = json_object_new_object(); /* name -> kind */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i]->n_nics; k++) {
            const ek_local_nic_t *nic = &v[i]->nics[k];
            if (nic->network && !json_object_object_get_ex(seen, nic->network, NULL))
                json_object_object_add(seen, nic->network, json_object_new_string(nic->kind));
        }
        ek_local_domain_free(v[i]);
    }
    free(v);
    json_object *list = json_object_new_array();
    json_object_object_foreach(seen, name, kind)
    {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(name));
        json_object_object_add(x, "name", json_object_new_string(name));
        json_object_object_add(x, "type", json_object_get(kind));
        json_object_array_add(list, x);
    }
    json_object_put(seen);
    *out = list;
    return NULL;
}

static ek_err_t *ep_list_storage(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                 json_object **out)
{
    const char *dir;
    uint64_t free_bytes, total_bytes;
    (void)args;
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err || (err = ek_local_fs_space(dir, &free_bytes, &total_bytes)))
        return err;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "id", json_object_new_string(dir));
    json_object_object_add(b, "name", json_object_new_string(dir));
    json_object_object_add(b, "free_bytes", json_object_new_int64((int64_t)free_bytes));
    json_object_object_add(b, "total_bytes", json_object_new_int64((int64_t)total_bytes));
    json_object *backends = json_object_new_array();
    json_object_array_add(backends, b);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "storage_backends", backends);
    json_object_object_add(o, "config_default", json_object_new_string(dir));
    *out = o;
    return NULL;
}

/* The local provider has no environment options. */
static ek_err_t *ep_no_options(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                               json_object **out)
{
    const char *dir;
    (void)args;
    ek_err_t *err = ep_dir(ctx, ep, &dir);
    if (err)
        return err;
    *out = json_object_new_array();
    return NULL;
}

static const ek_task_impl_t local_tasks[] = {
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", ek_local_task_validate_source_inputs},
    {"GET_INSTANCE_INFO", ek_local_task_get_instance_info},
    {"VALIDATE_TRANSFER_DESTINATION_INPUTS", ek_local_task_validate_destination_inputs},
    {"DEPLOY_TRANSFER_DISKS", ek_local_task_deploy_disks},
    {"DELETE_TRANSFER_DISKS", ek_local_task_delete_disks},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", ek_local_task_deploy_source_resources},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", ek_local_task_delete_source_resources},
    {"DEPLOY_TRANSFER_TARGET_RESOURCES", ek_local_task_deploy_target_resources},
    {"DELETE_TRANSFER_TARGET_RESOURCES", ek_local_task_delete_target_resources},
    {"SHUTDOWN_INSTANCE", ek_local_task_shutdown_instance},
    {"REPLICATE_DISKS", ek_local_task_replicate_disks},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", ek_local_task_delete_source_snapshots},
    {"CREATE_TRANSFER_DISK_SNAPSHOTS", ek_local_task_create_snapshots},
    {"DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", ek_local_task_delete_snapshots},
    {"RESTORE_TRANSFER_DISK_SNAPSHOTS", ek_local_task_restore_snapshots},
    {"VALIDATE_DEPLOYMENT_INPUTS", ek_local_task_validate_deployment_inputs},
    {"DEPLOY_INSTANCE_RESOURCES", ek_local_task_deploy_instance_resources},
    {"DEPLOY_OS_MORPHING_RESOURCES", ek_local_task_deploy_os_morphing_resources},
    {"OS_MORPHING", ek_local_task_os_morphing},
    {"DELETE_OS_MORPHING_RESOURCES", ek_local_task_delete_os_morphing_resources},
    {"FINALIZE_INSTANCE_DEPLOYMENT", ek_local_task_finalize_deployment},
    {"CLEANUP_FAILED_INSTANCE_DEPLOYMENT", ek_local_task_cleanup_failed_deployment},
    {"UPDATE_SOURCE_TRANSFER", ek_local_task_update_source},
    {"UPDATE_DESTINATION_TRANSFER", ek_local_task_update_destination},
    {NULL, NULL},
};

const ek_provider_t ek_provider_local = {
    .name = "local",
    .capabilities = EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |
                    EK_CAP_ENDPOINT_STORAGE | EK_CAP_TRANSFER_EXPORT | EK_CAP_TRANSFER_IMPORT |
                    EK_CAP_VALIDATE_TRANSFER_EXPORT | EK_CAP_VALIDATE_TRANSFER_IMPORT |
                    EK_CAP_SOURCE_ENDPOINT_OPTIONS | EK_CAP_DESTINATION_ENDPOINT_OPTIONS,
    .validate_connection = ep_validate_connection, /* the directory exists and is readable */
    .list_instances = ep_list_instances,           /* domains of DIR/ *.xml; name, marker, limit */
    .get_instance = ep_get_instance,               /* args.name */
    .list_networks = ep_list_networks,             /* networks and bridges the domains name */
    .list_storage = ep_list_storage,               /* the directory and its free space */
    .source_options = ep_no_options,               /* none */
    .destination_options = ep_no_options,          /* none */
    .tasks = local_tasks,
};
