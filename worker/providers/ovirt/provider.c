/* provider.c - the `ovirt` provider's table (worker/provider.h) and its
 * endpoint calls: the engine answers GET /api (validate), its VMs are the
 * instances, its VM networks with their vNIC profiles the networks, its
 * data storage domains the storage. Capabilities: proto/providers.c.
 * oVirt is a destination only: the source tasks are NULL. */
#include "worker/providers/ovirt/ovirt.h"

#include <stdlib.h>
#include <string.h>
#include "common/json.h"
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
    ek_ovirt_t *c;
    json_object *api;
    (void)args;
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    err = ek_ovirt_call(c, "GET", "", NULL, "reading the API root", &api);
    ek_ovirt_close(c);
    if (err)
        return err;
    json_object *o = json_object_new_object(), *pi = json_object_object_get(api, "product_info");
    const char *name = ek_ovirt_str(pi, "name");
    const char *ver = ek_ovirt_ref(pi, "version", "full_version");
    json_object_object_add(o, "product", json_object_new_string(name ? name : "oVirt"));
    if (ver)
        json_object_object_add(o, "version", json_object_new_string(ver));
    json_object_put(api);
    *out = o;
    return NULL;
}

static json_object *vm_json(json_object *vm)
{
    json_object *o = json_object_new_object();
    int64_t mem = 0, sockets = 1, cores = 1, threads = 1;
    json_object *topo = json_object_object_get(json_object_object_get(vm, "cpu"), "topology");
    ek_ovirt_int(vm, "memory", &mem);
    ek_ovirt_int(topo, "sockets", &sockets);
    ek_ovirt_int(topo, "cores", &cores);
    ek_ovirt_int(topo, "threads", &threads);
    json_object_object_add(o, "id", json_object_new_string(ek_ovirt_str(vm, "id")));
    json_object_object_add(o, "name", json_object_new_string(ek_ovirt_str(vm, "name")));
    json_object_object_add(o, "instance_name", json_object_new_string(ek_ovirt_str(vm, "name")));
    json_object_object_add(o, "status",
                           json_object_new_string(ek_ovirt_str(vm, "status")
                                                      ? ek_ovirt_str(vm, "status")
                                                      : "unknown"));
    json_object_object_add(o, "num_cpu", json_object_new_int64(sockets * cores * threads));
    json_object_object_add(o, "memory_mb", json_object_new_int64(mem / 1048576));
    const char *os = ek_ovirt_ref(vm, "os", "type");
    if (os)
        json_object_object_add(o, "os_type", json_object_new_string(os));
    return o;
}

static ek_err_t *ep_list_instances(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                   json_object **out)
{
    const char *pattern = arg_string(args, "name"), *marker = arg_string(args, "marker");
    const char *limit_s = arg_string(args, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
    ek_ovirt_t *c;
    json_object *vms;
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    _cleanup_free_ char *path = NULL;
    if (pattern && *pattern) {
        _cleanup_free_ char *q = ek_xasprintf("name=*%s*", pattern);
        _cleanup_free_ char *e = ek_ovirt_escape(q);
        path = ek_xasprintf("/vms?search=%s", e);
    } else {
        path = ek_xstrdup("/vms");
    }
    err = ek_ovirt_call(c, "GET", path, NULL, "listing VMs", &vms);
    ek_ovirt_close(c);
    if (err)
        return err;
    json_object *list = json_object_new_array(), *a = ek_ovirt_list(vms, "vm");
    bool past = !marker || !*marker;
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *vm = json_object_array_get_idx(a, i);
        const char *name = ek_ovirt_str(vm, "name");
        if (!past) {
            past = name && strcmp(name, marker) == 0;
            continue;
        }
        if (limit > 0 && json_object_array_length(list) >= (size_t)limit)
            break;
        json_object_array_add(list, vm_json(vm));
    }
    json_object_put(vms);
    *out = list;
    return NULL;
}

static ek_err_t *ep_get_instance(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                 json_object **out)
{
    const char *name = arg_string(args, "name");
    ek_ovirt_t *c;
    json_object *vm;
    if (!name || !*name)
        return ek_err_new(EK_E_INVALID, "the instance name is missing");
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    err = ek_ovirt_find(c, "vms", "vm", name, &vm);
    ek_ovirt_close(c);
    if (err)
        return err;
    if (!vm)
        return ek_err_new(EK_E_NOTFOUND, "oVirt endpoint '%s' has no VM called '%s'", ep->name,
                          name);
    *out = vm_json(vm);
    json_object_put(vm);
    return NULL;
}

/* VM networks, each with its vNIC profiles. */
static ek_err_t *ep_list_networks(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                  json_object **out)
{
    ek_ovirt_t *c;
    json_object *nets = NULL, *profs = NULL;
    (void)args;
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    if (!(err = ek_ovirt_call(c, "GET", "/networks", NULL, "listing networks", &nets)))
        err = ek_ovirt_call(c, "GET", "/vnicprofiles", NULL, "listing vNIC profiles", &profs);
    ek_ovirt_close(c);
    json_object *list = json_object_new_array(), *a = ek_ovirt_list(nets, "network");
    json_object *pa = ek_ovirt_list(profs, "vnic_profile");
    for (size_t i = 0; !err && a && i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i), *usages, *ul;
        /* only VM networks carry NICs (usages lists "vm") */
        if (json_object_object_get_ex(n, "usages", &usages) &&
            (ul = ek_ovirt_list(usages, "usage"))) {
            bool vm = false;
            for (size_t k = 0; k < json_object_array_length(ul); k++)
                vm |= strcmp(json_object_get_string(json_object_array_get_idx(ul, k)), "vm") == 0;
            if (!vm)
                continue;
        }
        const char *id = ek_ovirt_str(n, "id");
        json_object *x = json_object_new_object(), *pl = json_object_new_array();
        json_object_object_add(x, "id", json_object_new_string(id));
        json_object_object_add(x, "name", json_object_new_string(ek_ovirt_str(n, "name")));
        const char *dc = ek_ovirt_ref(n, "data_center", "id");
        if (dc)
            json_object_object_add(x, "data_center_id", json_object_new_string(dc));
        for (size_t k = 0; pa && k < json_object_array_length(pa); k++) {
            json_object *p = json_object_array_get_idx(pa, k);
            const char *nid = ek_ovirt_ref(p, "network", "id");
            if (!nid || strcmp(nid, id) != 0)
                continue;
            json_object *y = json_object_new_object();
            json_object_object_add(y, "id", json_object_new_string(ek_ovirt_str(p, "id")));
            json_object_object_add(y, "name", json_object_new_string(ek_ovirt_str(p, "name")));
            json_object_array_add(pl, y);
        }
        json_object_object_add(x, "vnic_profiles", pl);
        json_object_array_add(list, x);
    }
    json_object_put(nets);
    json_object_put(profs);
    if (err) {
        json_object_put(list);
        return err;
    }
    *out = list;
    return NULL;
}

static ek_err_t *ep_list_storage(ek_task_ctx_t *ctx, const ek_endpoint_t *ep, json_object *args,
                                 json_object **out)
{
    ek_ovirt_t *c;
    json_object *sds;
    (void)args;
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    err = ek_ovirt_call(c, "GET", "/storagedomains", NULL, "listing storage domains", &sds);
    ek_ovirt_close(c);
    if (err)
        return err;
    json_object *backends = json_object_new_array(), *a = ek_ovirt_list(sds, "storage_domain");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *sd = json_object_array_get_idx(a, i);
        const char *type = ek_ovirt_str(sd, "type");
        if (type && strcmp(type, "data") != 0 && strcmp(type, "managed_block_storage") != 0)
            continue; /* ISO and export domains hold no VM disks */
        int64_t avail = 0, used = 0;
        ek_ovirt_int(sd, "available", &avail);
        ek_ovirt_int(sd, "used", &used);
        json_object *b = json_object_new_object();
        json_object_object_add(b, "id", json_object_new_string(ek_ovirt_str(sd, "id")));
        json_object_object_add(b, "name", json_object_new_string(ek_ovirt_str(sd, "name")));
        json_object_object_add(b, "free_bytes", json_object_new_int64(avail));
        json_object_object_add(b, "total_bytes", json_object_new_int64(avail + used));
        json_object_array_add(backends, b);
    }
    json_object_put(sds);
    const char *def = ek_ovirt_opt_str(ctx, ep, "default_storage_domain");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "storage_backends", backends);
    json_object_object_add(o, "config_default", def && *def ? json_object_new_string(def) : NULL);
    *out = o;
    return NULL;
}

/* names of a collection, as the values of an option */
static json_object *names_of(json_object *coll, const char *singular)
{
    json_object *v = json_object_new_array(), *a = ek_ovirt_list(coll, singular);
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        const char *n = ek_ovirt_str(json_object_array_get_idx(a, i), "name");
        if (n)
            json_object_array_add(v, json_object_new_string(n));
    }
    return v;
}

/* The values the destination options may take on this engine. */
static ek_err_t *ep_destination_options(ek_task_ctx_t *ctx, const ek_endpoint_t *ep,
                                        json_object *args, json_object **out)
{
    static const char *const opts[][3] = {
        {"default_cluster", "/clusters", "cluster"},
        {"default_migr_minion_cluster", "/clusters", "cluster"},
        {"default_storage_domain", "/storagedomains", "storage_domain"},
        {"default_migr_minion_storage_domain", "/storagedomains", "storage_domain"},
        {"default_migr_blank_template", "/templates", "template"},
        {"default_os_release", "/operatingsystems", "operating_system"},
    };
    ek_ovirt_t *c;
    (void)args;
    ek_err_t *err = ek_ovirt_open(ep, ctx, &c);
    if (err)
        return err;
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < EK_ARRAY_SIZE(opts) && !err; i++) {
        json_object *coll;
        _cleanup_free_ char *what = ek_xasprintf("listing %s", opts[i][1] + 1);
        if ((err = ek_ovirt_get_opt(c, opts[i][1], what, &coll)))
            break;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(opts[i][0]));
        json_object_object_add(o, "values", names_of(coll, opts[i][2]));
        const char *cur = ek_ovirt_opt_str(ctx, ep, opts[i][0]);
        json_object_object_add(o, "config_default",
                               cur && *cur ? json_object_new_string(cur) : NULL);
        json_object_array_add(list, o);
        json_object_put(coll);
    }
    ek_ovirt_close(c);
    if (err) {
        json_object_put(list);
        return err;
    }
    *out = list;
    return NULL;
}

static const ek_task_impl_t ovirt_tasks[] = {
    {"VALIDATE_TRANSFER_DESTINATION_INPUTS", ek_ovirt_task_validate_destination_inputs},
    {"DEPLOY_TRANSFER_DISKS", ek_ovirt_task_deploy_disks},
    {"DELETE_TRANSFER_DISKS", ek_ovirt_task_delete_disks},
    {"DEPLOY_TRANSFER_TARGET_RESOURCES", ek_ovirt_task_deploy_target_resources},
    {"DELETE_TRANSFER_TARGET_RESOURCES", ek_ovirt_task_delete_target_resources},
    {"CREATE_TRANSFER_DISK_SNAPSHOTS", ek_ovirt_task_create_snapshots},
    {"DELETE_TRANSFER_TARGET_DISK_SNAPSHOTS", ek_ovirt_task_delete_snapshots},
    {"RESTORE_TRANSFER_DISK_SNAPSHOTS", ek_ovirt_task_restore_snapshots},
    {"VALIDATE_DEPLOYMENT_INPUTS", ek_ovirt_task_validate_deployment_inputs},
    {"DEPLOY_INSTANCE_RESOURCES", ek_ovirt_task_deploy_instance_resources},
    {"DEPLOY_OS_MORPHING_RESOURCES", ek_ovirt_task_deploy_os_morphing_resources},
    {"OS_MORPHING", ek_ovirt_task_os_morphing},
    {"DELETE_OS_MORPHING_RESOURCES", ek_ovirt_task_delete_os_morphing_resources},
    {"FINALIZE_INSTANCE_DEPLOYMENT", ek_ovirt_task_finalize_deployment},
    {"CLEANUP_FAILED_INSTANCE_DEPLOYMENT", ek_ovirt_task_cleanup_failed_deployment},
    {"UPDATE_DESTINATION_TRANSFER", ek_ovirt_task_update_destination},
    {NULL, NULL},
};

const ek_provider_t ek_provider_ovirt = {
    .name = "ovirt",
    .capabilities = EK_CAP_ENDPOINT | EK_CAP_ENDPOINT_INSTANCES | EK_CAP_ENDPOINT_NETWORKS |
                    EK_CAP_ENDPOINT_STORAGE | EK_CAP_TRANSFER_IMPORT | EK_CAP_OS_MORPHING |
                    EK_CAP_VALIDATE_TRANSFER_IMPORT | EK_CAP_DESTINATION_ENDPOINT_OPTIONS,
    .validate_connection = ep_validate_connection, /* SSO login and GET /api */
    .list_instances = ep_list_instances,           /* VMs; name (substring), marker, limit */
    .get_instance = ep_get_instance,               /* args.name */
    .list_networks = ep_list_networks,             /* VM networks with their vNIC profiles */
    .list_storage = ep_list_storage,               /* data storage domains, free space */
    .source_options = NULL,                        /* a destination only */
    .destination_options = ep_destination_options, /* clusters, domains, pools, templates */
    .tasks = ovirt_tasks,
};
