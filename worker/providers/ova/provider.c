/* provider.c - the `ova` provider's table (worker/provider.h) and its
 * endpoint calls: the instances of an endpoint are the .ova files and
 * unpacked .ovf descriptors of its directory; its networks are the ones
 * their NICs name. A source only (proto/providers.c). */
#include "worker/providers/ova/ova.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "common/mem.h"
#include "proto/providers.h"

static const char *arg_string(json_object *args, const char *key)
{
    json_object *v;
    if (!args || !json_object_object_get_ex(args, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static ek_err_t *ep_validate_connection(ek_task_ctx_t *ctx, const ek_endpoint_t *ep,
                                        json_object *args, json_object **out)
{
    int dirfd;
    (void)args;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), ep, &dirfd);
    if (err)
        return err;
    close(dirfd);
    *out = json_object_new_object();
    return NULL;
}

/* What a listing shows of an instance: the descriptor's view (no disk is
 * probed and no digest computed: that is the tasks' work). */
static json_object *instance_json(const ek_ova_instance_t *inst)
{
    const ek_ova_vm_t *vm = inst->vm;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(vm->name));
    json_object_object_add(o, "name", json_object_new_string(vm->name));
    json_object_object_add(o, "instance_name", json_object_new_string(vm->name));
    json_object_object_add(o, "num_cpu", json_object_new_int(vm->vcpus));
    json_object_object_add(o, "memory_mb", json_object_new_int64((int64_t)vm->memory_mb));
    json_object_object_add(o, "firmware", json_object_new_string(vm->firmware));
    json_object_object_add(o, "os_type", json_object_new_string(vm->os_type));
    if (vm->vmw_ostype)
        json_object_object_add(o, "guest_os_id", json_object_new_string(vm->vmw_ostype));
    json_object_object_add(o, "source_file", json_object_new_string(inst->file));
    json_object *disks = json_object_new_array();
    for (size_t i = 0; i < vm->n_disks; i++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(vm->disks[i].id));
        json_object_object_add(x, "file", json_object_new_string(vm->disks[i].href));
        json_object_object_add(x, "size_bytes",
                               json_object_new_int64((int64_t)vm->disks[i].capacity));
        json_object_object_add(x, "bus", json_object_new_string(vm->disks[i].bus));
        json_object_object_add(x, "controller", json_object_new_string(vm->disks[i].controller));
        json_object_array_add(disks, x);
    }
    json_object_object_add(o, "disks", disks);
    json_object *nics = json_object_new_array();
    for (size_t i = 0; i < vm->n_nics; i++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "mac", json_object_new_string(vm->nics[i].mac));
        json_object_object_add(x, "mac_generated",
                               json_object_new_boolean(vm->nics[i].mac_generated));
        json_object_object_add(x, "network_name",
                               vm->nics[i].network ? json_object_new_string(vm->nics[i].network)
                                                   : NULL);
        json_object_object_add(x, "model", json_object_new_string(vm->nics[i].model));
        json_object_array_add(nics, x);
    }
    json_object_object_add(o, "nics", nics);
    return o;
}

static ek_err_t *ep_list_instances(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                   json_object **out)
{
    const char *pattern = arg_string(args, "name"), *marker = arg_string(args, "marker");
    const char *limit_s = arg_string(args, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
    int dirfd;
    ek_ova_instance_t **v;
    size_t n;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), ep, &dirfd);
    if (err)
        return err;
    err = ek_ova_instance_list(dirfd, &v, &n);
    close(dirfd);
    if (err)
        return err;
    json_object *list = json_object_new_array();
    bool past_marker = !marker || !*marker;
    for (size_t i = 0; i < n; i++) {
        if (!past_marker)
            past_marker = strcmp(v[i]->vm->name, marker) == 0;
        else if ((!pattern || !*pattern || strcasestr(v[i]->vm->name, pattern)) &&
                 (limit <= 0 || json_object_array_length(list) < (size_t)limit))
            json_object_array_add(list, instance_json(v[i]));
        ek_ova_instance_free(v[i]);
    }
    free(v);
    *out = list;
    return NULL;
}

static ek_err_t *ep_get_instance(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                 json_object **out)
{
    const char *name = arg_string(args, "name");
    int dirfd;
    ek_ova_instance_t *inst;
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the instance name is missing");
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), ep, &dirfd);
    if (err)
        return err;
    err = ek_ova_instance_find(dirfd, name, &inst);
    close(dirfd);
    if (err)
        return err;
    *out = instance_json(inst);
    ek_ova_instance_free(inst);
    return NULL;
}

static ek_err_t *ep_list_networks(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                  json_object **out)
{
    int dirfd;
    ek_ova_instance_t **v;
    size_t n;
    (void)args;
    ek_err_t *err = ek_ova_endpoint_open(ek_task_config(ctx), ep, &dirfd);
    if (err)
        return err;
    err = ek_ova_instance_list(dirfd, &v, &n);
    close(dirfd);
    if (err)
        return err;
    json_object *seen = json_object_new_object();
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i]->vm->n_nics; k++) {
            const char *net = v[i]->vm->nics[k].network;
            if (net && !json_object_object_get_ex(seen, net, NULL))
                json_object_object_add(seen, net, NULL);
        }
        ek_ova_instance_free(v[i]);
    }
    free(v);
    json_object *list = json_object_new_array();
    json_object_object_foreach(seen, name, unused)
    {
        (void)unused;
        json_object *x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(name));
        json_object_object_add(x, "name", json_object_new_string(name));
        json_object_object_add(x, "type", json_object_new_string("network"));
        json_object_array_add(list, x);
    }
    json_object_put(seen);
    *out = list;
    return NULL;
}

static const ek_task_impl_t ova_tasks[] = {
    {"VALIDATE_TRANSFER_SOURCE_INPUTS", ek_ova_task_validate_source_inputs},
    {"GET_INSTANCE_INFO", ek_ova_task_get_instance_info},
    {"DEPLOY_TRANSFER_SOURCE_RESOURCES", ek_ova_task_deploy_source_resources},
    {"DELETE_TRANSFER_SOURCE_RESOURCES", ek_ova_task_delete_source_resources},
    {"SHUTDOWN_INSTANCE", ek_ova_task_shutdown_instance},
    {"REPLICATE_DISKS", ek_ova_task_replicate_disks},
    {"DELETE_TRANSFER_SOURCE_DISK_SNAPSHOTS", ek_ova_task_delete_source_snapshots},
    {"UPDATE_SOURCE_TRANSFER", ek_ova_task_update_source},
    {NULL, NULL},
};

const ek_provider_t ek_provider_ova = {
    .name = "ova",
    .capabilities = EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |
                    EK_CAP_TRANSFER_EXPORT | EK_CAP_VALIDATE_TRANSFER_EXPORT,
    .validate_connection = ep_validate_connection, /* the directory, under an allowed root */
    .list_instances = ep_list_instances,           /* name, marker, limit */
    .get_instance = ep_get_instance,               /* args.name */
    .list_networks = ep_list_networks,             /* networks the descriptors' NICs name */
    .list_storage = NULL,                          /* a source only */
    .source_options = NULL,                        /* none */
    .destination_options = NULL,                   /* a source only */
    .tasks = ova_tasks,
};
